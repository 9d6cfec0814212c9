/* REMOTE_MAP: the pending requests of a map held in an external store, the
 * rules that turn a request and its outcome into a result and events, and
 * the OUTCOME encoding. Semantics: remote.h. */
#include <string.h>

#include "collections/coll.h"
#include "collections/remote.h"
#include "util/alloc.h"

/* ------------------------------------------------------------------------- */
/* Requests */

hamok_status hamok__remote_check(const hamok_cmd *req)
{
    size_t n = req->n_items;
    switch (req->op) {
    case HAMOK_OP_SET:
    case HAMOK_OP_INSERT:
        if (n == 0) {
            return HAMOK_ERR_INVALID;
        }
        for (size_t i = 0; i < n; i++) {
            if (!req->items[i].has_value) {
                return HAMOK_ERR_INVALID;
            }
        }
        break;
    case HAMOK_OP_UPDATE_IF:
        if (n != 1 || !req->items[0].has_value || !req->items[0].has_expected) {
            return HAMOK_ERR_INVALID;
        }
        break;
    case HAMOK_OP_DELETE:
    case HAMOK_OP_REMOVE:
        if (n == 0) {
            return HAMOK_ERR_INVALID;
        }
        break;
    case HAMOK_OP_CLEAR:
        if (n != 0) {
            return HAMOK_ERR_INVALID;
        }
        return HAMOK_OK;
    default: return HAMOK_ERR_INVALID;
    }
    coll_ctx c;
    memset(&c, 0, sizeof c);
    c.cmd = req;
    return hamok__coll_distinct_keys(&c);
}

hamok_remote_effect hamok__remote_effect(const hamok_cmd *req, size_t i, bool present,
                                         const uint8_t *old, size_t old_len)
{
    const hamok_cmd_item *it = &req->items[i];
    switch (req->op) {
    case HAMOK_OP_SET: return HAMOK_REMOTE_WRITE;
    case HAMOK_OP_INSERT: return present ? HAMOK_REMOTE_KEEP : HAMOK_REMOTE_WRITE;
    case HAMOK_OP_UPDATE_IF:
        return present && hamok__bytes_eq(old, old_len, it->expected, it->expected_len)
                   ? HAMOK_REMOTE_WRITE
                   : HAMOK_REMOTE_KEEP;
    case HAMOK_OP_DELETE:
    case HAMOK_OP_REMOVE: return present ? HAMOK_REMOTE_DELETE : HAMOK_REMOTE_KEEP;
    default: return HAMOK_REMOTE_KEEP;
    }
}

hamok_status hamok__remote_outcome_encode(const uint8_t *name, size_t name_len, uint64_t index,
                                          hamok_status status, const hamok_cmd_item *obs, size_t n,
                                          hamok_buf *out)
{
    hamok_cmd_item *items = NULL;
    if (status == HAMOK_OK && n > 0) {
        items = hamok__calloc(n, sizeof *items);
        if (items == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            items[i].has_value = obs[i].has_value;
            items[i].value = obs[i].value;
            items[i].value_len = obs[i].value_len;
        }
    }
    hamok_cmd_result r = {(uint32_t)status, false, items, status == HAMOK_OK ? n : 0};
    hamok_buf inner = HAMOK_BUF_INIT;
    hamok_status st = hamok__cmd_result_encode(&r, &inner);
    hamok__free(items);
    if (st == HAMOK_OK) {
        hamok_cmd_item it = {(uint8_t *)"", 0, true, inner.data, inner.len, false, NULL, 0};
        hamok_cmd c = {HAMOK_KIND_REMOTE_MAP,
                       HAMOK_OP_OUTCOME,
                       (uint8_t *)(uintptr_t)name,
                       name_len,
                       index,
                       &it,
                       1};
        st = hamok__cmd_encode(&c, out);
    }
    hamok__buf_free(&inner);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Pending requests */

void hamok__remote_init(hamok_coll *c)
{
    memset(&c->u.remote, 0, sizeof c->u.remote);
}

void hamok__remote_free(hamok_coll *c)
{
    coll_remote *rm = &c->u.remote;
    for (size_t i = 0; i < rm->n; i++) {
        hamok__free(rm->v[rm->head + i].cmd);
    }
    hamok__free(rm->v);
    memset(rm, 0, sizeof *rm);
}

hamok_status hamok__remote_reserve(coll_remote *rm, size_t extra)
{
    if (rm->head + rm->n + extra <= rm->cap) {
        return HAMOK_OK;
    }
    if (rm->n + extra <= rm->cap && rm->head >= rm->cap / 2) {
        memmove(rm->v, rm->v + rm->head, rm->n * sizeof *rm->v);
        rm->head = 0;
        return HAMOK_OK;
    }
    size_t cap = rm->cap ? rm->cap * 2 : 8;
    while (cap < rm->n + extra) {
        cap *= 2;
    }
    coll_pend *v = hamok__malloc(cap * sizeof *v);
    if (v == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    if (rm->n > 0) {
        memcpy(v, rm->v + rm->head, rm->n * sizeof *v);
    }
    hamok__free(rm->v);
    rm->v = v;
    rm->cap = cap;
    rm->head = 0;
    return HAMOK_OK;
}

void hamok__remote_push(coll_remote *rm, const coll_pend *p)
{
    if (rm->head + rm->n >= rm->cap) {
        return; /* unreachable: reserved */
    }
    rm->v[rm->head + rm->n++] = *p;
}

coll_pend *hamok__remote_head(coll_remote *rm)
{
    return rm->n > 0 ? &rm->v[rm->head] : NULL;
}

void hamok__remote_pop(coll_remote *rm)
{
    if (rm->n == 0) {
        return;
    }
    hamok__free(rm->v[rm->head].cmd);
    rm->head++;
    rm->n--;
    if (rm->n == 0) {
        rm->head = 0;
    }
}

size_t hamok__coll_remote_pending(const hamok_coll *c)
{
    return c->kind == HAMOK_KIND_REMOTE_MAP ? c->u.remote.n : 0;
}

bool hamok__coll_remote_at(const hamok_coll *c, size_t i, uint64_t *index, const uint8_t **cmd,
                           size_t *len)
{
    if (c->kind != HAMOK_KIND_REMOTE_MAP || i >= c->u.remote.n) {
        return false;
    }
    const coll_pend *p = &c->u.remote.v[c->u.remote.head + i];
    *index = p->index;
    *cmd = p->cmd;
    *len = p->len;
    return true;
}

void hamok__coll_remote_epoch(const hamok_coll *c, hamok_id *client, uint64_t *index)
{
    *client = c->u.remote.epoch_client;
    *index = c->u.remote.epoch_index;
}

uint64_t hamok__coll_remote_resolved(const hamok_coll *c)
{
    return c->kind == HAMOK_KIND_REMOTE_MAP ? c->u.remote.resolved : 0;
}

/* ------------------------------------------------------------------------- */
/* Resolution */

static void emit_kv(coll_ctx *c, uint8_t type, const hamok_cmd_item *req, const hamok_cmd_item *obs,
                    bool with_value)
{
    hamok_coll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.key = req->key;
    ev.key_len = req->key_len;
    if (with_value) {
        ev.has_value = true;
        ev.value = req->value;
        ev.value_len = req->value_len;
    }
    if (obs->has_value) {
        ev.has_old = true;
        ev.old = obs->value;
        ev.old_len = obs->value_len;
    }
    hamok__coll_emit(c, &ev);
}

void hamok__remote_resolve(coll_ctx *c, const hamok_cmd *req, const hamok_cmd_result *obs,
                           bool emit)
{
    c->res.status = obs->status;
    c->res.flag = false;
    c->res.n_items = 0;
    if (obs->status != HAMOK_OK) {
        if (obs->n_items != 0 || obs->status >= (uint32_t)HAMOK_STATUS_COUNT) {
            c->res.status = HAMOK_ERR_CODEC;
        }
        return;
    }
    size_t want = req->op == HAMOK_OP_CLEAR ? 0 : req->n_items;
    if (obs->n_items != want) {
        c->res.status = HAMOK_ERR_CODEC;
        return;
    }
    if (req->op == HAMOK_OP_CLEAR) {
        if (emit) {
            hamok_coll_event ev;
            memset(&ev, 0, sizeof ev);
            ev.type = HAMOK_CEV_CLEAR;
            hamok__coll_emit(c, &ev);
        }
        return;
    }
    for (size_t i = 0; i < req->n_items; i++) {
        const hamok_cmd_item *it = &req->items[i];
        const hamok_cmd_item *ob = &obs->items[i];
        bool present = ob->has_value;
        hamok_remote_effect eff = hamok__remote_effect(req, i, present, ob->value, ob->value_len);
        switch (req->op) {
        case HAMOK_OP_SET:
        case HAMOK_OP_INSERT:
            if (present) {
                c->res.flag = true;
                hamok__coll_res_add(c, it->key, it->key_len, true, ob->value, ob->value_len);
            }
            if (emit && eff == HAMOK_REMOTE_WRITE) {
                emit_kv(c, present ? HAMOK_CEV_UPDATE : HAMOK_CEV_INSERT, it, ob, true);
            }
            break;
        case HAMOK_OP_UPDATE_IF:
            c->res.flag = eff == HAMOK_REMOTE_WRITE;
            if (emit && c->res.flag) {
                emit_kv(c, HAMOK_CEV_UPDATE, it, ob, true);
            }
            break;
        case HAMOK_OP_DELETE:
        case HAMOK_OP_REMOVE:
            if (present) {
                c->res.flag = true;
                hamok__coll_res_add(c, it->key, it->key_len, req->op == HAMOK_OP_REMOVE, ob->value,
                                    ob->value_len);
                if (emit) {
                    emit_kv(c, HAMOK_CEV_REMOVE, it, ob, false);
                }
            }
            break;
        default: break;
        }
    }
}
