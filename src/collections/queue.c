/* QUEUE: a FIFO of byte strings. Semantics: registry.h. The log orders the
 * pops, so each item goes to exactly one popper. */
#include <string.h>

#include "collections/coll.h"
#include "util/alloc.h"

#define QUEUE_MIN_CAP 8u

void hamok__queue_init(hamok_coll *c)
{
    memset(&c->u.queue, 0, sizeof c->u.queue);
}

void hamok__queue_free(hamok_coll *c)
{
    coll_queue *q = &c->u.queue;
    for (size_t i = 0; i < q->n; i++) {
        hamok__hrec_free(hamok__queue_at(q, i));
    }
    hamok__free(q->ring);
    memset(q, 0, sizeof *q);
}

bool hamok__queue_supports(uint8_t op)
{
    return op == HAMOK_OP_PUSH || op == HAMOK_OP_POP || op == HAMOK_OP_CLEAR;
}

hamok_hrec *hamok__queue_at(const coll_queue *q, size_t i)
{
    return q->ring[(q->head + i) & (q->cap - 1)];
}

/* Move the items into a ring of `cap` slots (>= n). */
static hamok_status regrow(coll_queue *q, size_t cap)
{
    hamok_hrec **ring = hamok__malloc(cap * sizeof *ring);
    if (ring == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    for (size_t i = 0; i < q->n; i++) {
        ring[i] = hamok__queue_at(q, i);
    }
    hamok__free(q->ring);
    q->ring = ring;
    q->cap = cap;
    q->head = 0;
    return HAMOK_OK;
}

hamok_status hamok__queue_reserve(coll_queue *q, size_t extra)
{
    if (extra > SIZE_MAX / 2 / sizeof(hamok_hrec *) - q->n) {
        return HAMOK_ERR_TOO_BIG;
    }
    size_t need = q->n + extra;
    if (need <= q->cap) {
        return HAMOK_OK;
    }
    size_t cap = q->cap > 0 ? q->cap * 2 : QUEUE_MIN_CAP;
    while (cap < need) {
        cap *= 2;
    }
    return regrow(q, cap);
}

void hamok__queue_push(coll_queue *q, hamok_hrec *item)
{
    q->ring[(q->head + q->n) & (q->cap - 1)] = item;
    q->n++;
}

static hamok_hrec *queue_pop(coll_queue *q)
{
    hamok_hrec *item = q->ring[q->head];
    q->head = (q->head + 1) & (q->cap - 1);
    q->n--;
    return item;
}

/* Give memory back once the queue is much smaller than its ring. */
static void queue_tidy(coll_queue *q)
{
    if (q->n == 0) {
        hamok__free(q->ring);
        memset(q, 0, sizeof *q);
        return;
    }
    if (q->cap > 8 * QUEUE_MIN_CAP && q->n < q->cap / 8) {
        size_t cap = QUEUE_MIN_CAP;
        while (cap < 2 * q->n) {
            cap *= 2;
        }
        (void)regrow(q, cap); /* on failure the larger ring stays */
    }
}

hamok_status hamok__queue_prepare(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    coll_queue *q = &c->coll->u.queue;
    size_t n = cmd->n_items;
    switch (cmd->op) {
    case HAMOK_OP_PUSH:
        if (n == 0) {
            return HAMOK_ERR_INVALID;
        }
        for (size_t i = 0; i < n; i++) {
            if (!cmd->items[i].has_value) {
                return HAMOK_ERR_INVALID;
            }
        }
        for (size_t i = 0; i < n; i++) {
            const hamok_cmd_item *it = &cmd->items[i];
            c->prep[i].rec = hamok__hrec_new(NULL, 0, it->value, it->value_len);
            if (c->prep[i].rec == NULL) {
                return HAMOK_ERR_NOMEM;
            }
        }
        return hamok__queue_reserve(q, n);
    case HAMOK_OP_POP: {
        if (n != 0) {
            return HAMOK_ERR_INVALID;
        }
        uint64_t want = cmd->arg == 0 ? 1 : cmd->arg;
        size_t size = HAMOK_CMD_RESULT_HEAD_MAX;
        for (size_t i = 0; i < q->n && i < want && i < c->res_cap; i++) {
            const hamok_hrec *item = hamok__queue_at(q, i);
            hamok_cmd_item ri = {NULL, 0, true, NULL, item->vlen, false, NULL, 0};
            size += hamok__cmd_item_size(&ri);
            if (size > HAMOK_CMD_RESULT_MAX) {
                if (i == 0) {
                    return HAMOK_ERR_TOO_BIG; /* not even one fits an answer */
                }
                break; /* fewer than asked: the rest stays queued */
            }
            hamok__coll_res_add(c, NULL, 0, true, hamok__hrec_cvalue(item), item->vlen);
        }
        c->res.flag = c->res.n_items > 0;
        return HAMOK_OK;
    }
    case HAMOK_OP_CLEAR:
        if (n != 0) {
            return HAMOK_ERR_INVALID;
        }
        c->res.flag = q->n > 0;
        return HAMOK_OK;
    default: return HAMOK_ERR_INVALID;
    }
}

static void emit_simple(const coll_ctx *c, uint8_t type, const hamok_hrec *item)
{
    hamok_coll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    if (item != NULL) {
        ev.has_value = true;
        ev.value = hamok__hrec_cvalue(item);
        ev.value_len = item->vlen;
    }
    hamok__coll_emit(c, &ev);
}

void hamok__queue_commit(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    coll_queue *q = &c->coll->u.queue;
    bool was_empty = q->n == 0;
    switch (cmd->op) {
    case HAMOK_OP_PUSH:
        for (size_t i = 0; i < cmd->n_items; i++) {
            hamok_hrec *item = c->prep[i].rec;
            c->prep[i].rec = NULL;
            hamok__queue_push(q, item);
            emit_simple(c, HAMOK_CEV_ADD, item);
        }
        if (was_empty) {
            emit_simple(c, HAMOK_CEV_NOT_EMPTY, NULL);
        }
        break;
    case HAMOK_OP_POP:
        for (size_t i = 0; i < c->res.n_items; i++) {
            hamok_hrec *item = queue_pop(q);
            emit_simple(c, HAMOK_CEV_REMOVE, item);
            hamok__hrec_free(item);
        }
        if (!was_empty && q->n == 0) {
            emit_simple(c, HAMOK_CEV_EMPTY, NULL);
        }
        queue_tidy(q);
        break;
    case HAMOK_OP_CLEAR:
        hamok__queue_free(c->coll);
        emit_simple(c, HAMOK_CEV_CLEAR, NULL);
        if (!was_empty) {
            emit_simple(c, HAMOK_CEV_EMPTY, NULL);
        }
        break;
    default: break;
    }
}
