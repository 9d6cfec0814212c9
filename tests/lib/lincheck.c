#include "lincheck.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIN_DEFAULT_BUDGET 10000000u

/* ------------------------------------------------------------------------ */
/* Register model */

bool hamok_lin_step(const hamok_lin_op *op, int64_t s, int64_t *next)
{
    int64_t n = s;
    int64_t out = 0;
    int64_t v = op->value;
    int64_t e = op->expected;
    switch (op->kind) {
    case HAMOK_LIN_READ: out = s; break;
    case HAMOK_LIN_SET:
        out = s;
        n = v;
        break;
    case HAMOK_LIN_CAS:
        out = e != 0 && s == e;
        n = out ? v : s;
        break;
    case HAMOK_LIN_INSERT:
        out = s;
        n = s == 0 ? v : s;
        break;
    case HAMOK_LIN_DELETE:
        out = s != 0;
        n = 0;
        break;
    case HAMOK_LIN_REMOVE:
        out = s;
        n = 0;
        break;
    case HAMOK_LIN_REMOVE_IF:
        out = e != 0 && s == e;
        n = out ? 0 : s;
        break;
    case HAMOK_LIN_ADD:
        out = s == 0;
        n = out ? v : s;
        break;
    case HAMOK_LIN_UPDATE:
        out = s != 0;
        n = out ? v : s;
        break;
    case HAMOK_LIN_ERASE: *next = 0; return true;
    default: return false;
    }
    *next = n;
    return !op->known || op->out == out;
}

void hamok_lin_format(const hamok_lin_op *op, char *buf, size_t len)
{
    static const char *names[] = {"?",      "READ",      "SET", "CAS",    "INSERT", "DELETE",
                                  "REMOVE", "REMOVE_IF", "ADD", "UPDATE", "ERASE"};
    const char *name = op->kind <= HAMOK_LIN_ERASE ? names[op->kind] : "?";
    char args[64] = "";
    switch (op->kind) {
    case HAMOK_LIN_SET:
    case HAMOK_LIN_INSERT:
    case HAMOK_LIN_ADD:
    case HAMOK_LIN_UPDATE: snprintf(args, sizeof args, "%" PRId64, op->value); break;
    case HAMOK_LIN_CAS:
        snprintf(args, sizeof args, "%" PRId64 "->%" PRId64, op->expected, op->value);
        break;
    case HAMOK_LIN_REMOVE_IF: snprintf(args, sizeof args, "%" PRId64, op->expected); break;
    default: break;
    }
    if (op->known) {
        snprintf(buf, len, "#%" PRIu64 " %s(%s)=%" PRId64 " [%" PRIu64 ",%" PRIu64 "]", op->id,
                 name, args, op->out, op->call, op->ret);
    } else {
        snprintf(buf, len, "#%" PRIu64 " %s(%s)=? [%" PRIu64 ",inf)", op->id, name, args, op->call);
    }
}

/* ------------------------------------------------------------------------ */
/* Memo: a set of (linearized set, state) */

typedef struct memo_slot {
    uint64_t hash;
    int64_t state;
    size_t bits; /* offset in pool, + 1 (0 = empty slot) */
} memo_slot;

typedef struct memo {
    size_t words; /* per bitset */
    memo_slot *t;
    size_t cap, n;
    uint64_t *pool;
    size_t pool_len, pool_cap;
} memo;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t memo_hash(const uint64_t *bits, size_t words, int64_t state)
{
    uint64_t h = mix64((uint64_t)state);
    for (size_t i = 0; i < words; i++) {
        h = mix64(h ^ bits[i]);
    }
    return h;
}

static void memo_free(memo *m)
{
    free(m->t);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

static bool memo_grow(memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    memo_slot *t = calloc(cap, sizeof *t);
    if (t == NULL) {
        return false;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->t[i].bits != 0) {
            size_t j = (size_t)m->t[i].hash & (cap - 1);
            while (t[j].bits != 0) {
                j = (j + 1) & (cap - 1);
            }
            t[j] = m->t[i];
        }
    }
    free(m->t);
    m->t = t;
    m->cap = cap;
    return true;
}

/* Insert; *fresh false when it was there. False on out of memory. */
static bool memo_insert(memo *m, const uint64_t *bits, int64_t state, bool *fresh)
{
    if (2 * (m->n + 1) > m->cap && !memo_grow(m)) {
        return false;
    }
    uint64_t h = memo_hash(bits, m->words, state);
    size_t j = (size_t)h & (m->cap - 1);
    for (; m->t[j].bits != 0; j = (j + 1) & (m->cap - 1)) {
        const memo_slot *sl = &m->t[j];
        if (sl->hash == h && sl->state == state &&
            memcmp(m->pool + sl->bits - 1, bits, m->words * sizeof *bits) == 0) {
            *fresh = false;
            return true;
        }
    }
    if (m->pool_len + m->words > m->pool_cap) {
        size_t cap = m->pool_cap ? m->pool_cap * 2 : 4096;
        while (cap < m->pool_len + m->words) {
            cap *= 2;
        }
        uint64_t *p = realloc(m->pool, cap * sizeof *p);
        if (p == NULL) {
            return false;
        }
        m->pool = p;
        m->pool_cap = cap;
    }
    memcpy(m->pool + m->pool_len, bits, m->words * sizeof *bits);
    m->t[j] = (memo_slot){h, state, m->pool_len + 1};
    m->pool_len += m->words;
    m->n++;
    *fresh = true;
    return true;
}

/* ------------------------------------------------------------------------ */
/* One key */

typedef struct lin_ev {
    uint64_t t;
    size_t op; /* index into the key's ops */
    bool call;
    size_t match; /* call: its return event (list index) */
    size_t prev, next;
} lin_ev;

typedef struct lin_frame {
    size_t ev; /* the call event linearized */
    int64_t state;
} lin_frame;

static int ev_cmp(const void *a, const void *b)
{
    const lin_ev *x = a, *y = b;
    if (x->t != y->t) {
        return x->t < y->t ? -1 : 1;
    }
    if (x->op != y->op) {
        return x->op < y->op ? -1 : 1;
    }
    return x->call == y->call ? 0 : (x->call ? -1 : 1);
}

static void lift(lin_ev *e, size_t i)
{
    e[e[i].prev].next = e[i].next;
    if (e[i].next != 0) {
        e[e[i].next].prev = e[i].prev;
    }
    size_t m = e[i].match;
    e[e[m].prev].next = e[m].next;
    if (e[m].next != 0) {
        e[e[m].next].prev = e[m].prev;
    }
}

static void unlift(lin_ev *e, size_t i)
{
    size_t m = e[i].match;
    e[e[m].prev].next = m;
    if (e[m].next != 0) {
        e[e[m].next].prev = m;
    }
    e[e[i].prev].next = i;
    if (e[i].next != 0) {
        e[e[i].next].prev = i;
    }
}

/* 1 linearizable, 0 not, -1 budget or memory. */
static int check_key(const hamok_lin_op *const *ops, size_t n, uint64_t budget, uint64_t *steps,
                     size_t *best, uint64_t *stuck)
{
    *best = 0;
    *stuck = 0;
    for (size_t i = 0; i < n; i++) {
        if (ops[i]->known && ops[i]->ret <= ops[i]->call) {
            *stuck = ops[i]->id; /* a response before its call: a bad history */
            return 0;
        }
    }
    size_t ne = 2 * n + 1;
    lin_ev *e = calloc(ne, sizeof *e);
    size_t words = (n + 63) / 64;
    uint64_t *bits = calloc(words ? words : 1, sizeof *bits);
    lin_frame *calls = calloc(n ? n : 1, sizeof *calls);
    memo m;
    memset(&m, 0, sizeof m);
    m.words = words ? words : 1;
    int result = -1;
    uint64_t k = 0; /* steps */
    if (e == NULL || bits == NULL || calls == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        e[1 + 2 * i] = (lin_ev){.t = ops[i]->call, .op = i, .call = true};
        e[2 + 2 * i] =
            (lin_ev){.t = ops[i]->known ? ops[i]->ret : UINT64_MAX, .op = i, .call = false};
    }
    qsort(e + 1, 2 * n, sizeof *e, ev_cmp);
    size_t *ret_at = calloc(n ? n : 1, sizeof *ret_at);
    if (ret_at == NULL) {
        goto out;
    }
    for (size_t i = 1; i < ne; i++) {
        e[i].prev = i - 1;
        e[i].next = i + 1 < ne ? i + 1 : 0;
        if (!e[i].call) {
            ret_at[e[i].op] = i;
        }
    }
    e[0].next = ne > 1 ? 1 : 0;
    for (size_t i = 1; i < ne; i++) {
        if (e[i].call) {
            e[i].match = ret_at[e[i].op];
        }
    }
    free(ret_at);

    /* Two prunings, both exact. An operation of unknown outcome is tried
     * only where it changes the state: one that changes nothing at some
     * point can be moved to the end of any linearization (nothing depends
     * on its output). And the search ends once every operation with a
     * known outcome is linearized: the others go at the end (or never
     * happened). */
    size_t known_left = 0;
    for (size_t i = 0; i < n; i++) {
        known_left += ops[i]->known ? 1u : 0u;
    }
    int64_t state = 0;
    size_t depth = 0;
    size_t cur = e[0].next;
    while (e[0].next != 0 && known_left > 0) {
        if (++k > budget) {
            goto out; /* -1 */
        }
        if (cur == 0) {
            break; /* unreachable: a return always comes before the list ends */
        }
        if (e[cur].call) {
            size_t op = e[cur].op;
            int64_t next = 0;
            bool fresh = false;
            if (hamok_lin_step(ops[op], state, &next) && (ops[op]->known || next != state)) {
                bits[op / 64] |= 1ULL << (op % 64);
                if (!memo_insert(&m, bits, next, &fresh)) {
                    goto out;
                }
                if (fresh) {
                    calls[depth++] = (lin_frame){cur, state};
                    state = next;
                    known_left -= ops[op]->known ? 1u : 0u;
                    lift(e, cur);
                    cur = e[0].next;
                    continue;
                }
                bits[op / 64] &= ~(1ULL << (op % 64));
            }
            cur = e[cur].next;
        } else {
            if (*stuck == 0 || depth > *best) {
                *best = depth; /* the deepest dead end: the first response reached there */
                *stuck = ops[e[cur].op]->id;
            }
            if (depth == 0) {
                result = 0;
                goto out;
            }
            lin_frame f = calls[--depth];
            size_t op = e[f.ev].op;
            bits[op / 64] &= ~(1ULL << (op % 64));
            known_left += ops[op]->known ? 1u : 0u;
            state = f.state;
            unlift(e, f.ev);
            cur = e[f.ev].next;
        }
    }
    result = 1;
    *best = n - known_left; /* 0 left */
out:
    *steps += k;
    free(e);
    free(bits);
    free(calls);
    memo_free(&m);
    return result;
}

static int op_cmp(const void *a, const void *b)
{
    const hamok_lin_op *x = *(const hamok_lin_op *const *)a;
    const hamok_lin_op *y = *(const hamok_lin_op *const *)b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->call != y->call) {
        return x->call < y->call ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

bool hamok_lin_check(const hamok_lin_op *ops, size_t n, uint64_t budget, hamok_lin_report *r)
{
    memset(r, 0, sizeof *r);
    r->ok = true;
    if (budget == 0) {
        budget = LIN_DEFAULT_BUDGET;
    }
    if (n == 0) {
        return true;
    }
    const hamok_lin_op **v = malloc(n * sizeof *v);
    if (v == NULL) {
        r->ok = false;
        r->budget = true;
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = &ops[i];
    }
    qsort(v, n, sizeof *v, op_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && v[j]->key == v[i]->key) {
            j++;
        }
        r->keys++;
        size_t best = 0;
        uint64_t stuck = 0;
        int res = check_key(v + i, j - i, budget, &r->steps, &best, &stuck);
        if (res != 1) {
            r->ok = false;
            r->budget = res < 0;
            r->key = v[i]->key;
            r->key_ops = j - i;
            r->best = best;
            r->stuck = stuck;
            break;
        }
        i = j;
    }
    free(v);
    return r->ok;
}

/* ------------------------------------------------------------------------ */
/* Queue */

typedef struct q_push {
    uint64_t id;
    uint64_t call, ret;
    hamok_q_outcome outcome;
} q_push;

typedef struct q_pop {
    uint64_t id;
    uint64_t call, ret;
    hamok_q_outcome outcome;
    uint32_t max;
} q_pop;

/* Per item: its push and where it was consumed. */
enum { WHERE_NONE = 0, WHERE_POP = 1, WHERE_FINAL = 2 };
typedef struct q_item {
    uint64_t item;
    size_t push;
    int where;
    size_t at;  /* pop index, or position in the final contents */
    size_t pos; /* position within its pop */
} q_item;

struct hamok_qchk {
    q_push *pushes;
    size_t n_pushes, cap_pushes;
    q_pop *pops;
    size_t n_pops, cap_pops;
    /* Consumptions in order: (item, pop index or SIZE_MAX for final, position). */
    struct q_use {
        uint64_t item;
        size_t pop;
        size_t pos;
    } * uses;
    size_t n_uses, cap_uses;
    q_item *items;
    size_t n_items, cap_items;
    bool input_error;
    char input_detail[120];
};

hamok_qchk *hamok_qchk_new(void)
{
    return calloc(1, sizeof(hamok_qchk));
}

void hamok_qchk_destroy(hamok_qchk **qp)
{
    if (qp == NULL || *qp == NULL) {
        return;
    }
    hamok_qchk *q = *qp;
    free(q->pushes);
    free(q->pops);
    free(q->uses);
    free(q->items);
    free(q);
    *qp = NULL;
}

static bool grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return true;
    }
    size_t c = *cap ? *cap * 2 : 64;
    while (c < need) {
        c *= 2;
    }
    void *np = realloc(*p, c * size);
    if (np == NULL) {
        return false;
    }
    *p = np;
    *cap = c;
    return true;
}

bool hamok_qchk_push(hamok_qchk *q, uint64_t id, const uint64_t *items, size_t n, uint64_t call,
                     uint64_t ret, hamok_q_outcome outcome)
{
    if (!grow((void **)&q->pushes, &q->cap_pushes, q->n_pushes + 1, sizeof *q->pushes) ||
        !grow((void **)&q->items, &q->cap_items, q->n_items + n, sizeof *q->items)) {
        return false;
    }
    size_t p = q->n_pushes++;
    q->pushes[p] = (q_push){id, call, ret, outcome};
    for (size_t i = 0; i < n; i++) {
        q->items[q->n_items++] = (q_item){.item = items[i], .push = p};
    }
    return true;
}

static bool add_uses(hamok_qchk *q, const uint64_t *items, size_t n, size_t pop)
{
    if (!grow((void **)&q->uses, &q->cap_uses, q->n_uses + n, sizeof *q->uses)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        q->uses[q->n_uses++] = (struct q_use){items[i], pop, i};
    }
    return true;
}

bool hamok_qchk_pop(hamok_qchk *q, uint64_t id, const uint64_t *items, size_t n, uint32_t max,
                    uint64_t call, uint64_t ret, hamok_q_outcome outcome)
{
    if (!grow((void **)&q->pops, &q->cap_pops, q->n_pops + 1, sizeof *q->pops)) {
        return false;
    }
    size_t p = q->n_pops++;
    q->pops[p] = (q_pop){id, call, ret, outcome, max};
    return outcome != HAMOK_Q_OK || add_uses(q, items, n, p);
}

bool hamok_qchk_final(hamok_qchk *q, const uint64_t *items, size_t n)
{
    return add_uses(q, items, n, SIZE_MAX);
}

static int item_cmp(const void *a, const void *b)
{
    const q_item *x = a, *y = b;
    return x->item < y->item ? -1 : x->item > y->item;
}

static q_item *find_item(hamok_qchk *q, uint64_t item)
{
    if (q->n_items == 0) {
        return NULL;
    }
    q_item key = {.item = item};
    return bsearch(&key, q->items, q->n_items, sizeof *q->items, item_cmp);
}

static bool qfail(hamok_q_report *r, const char *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool qfail(hamok_q_report *r, const char *inv, const char *fmt, ...)
{
    r->ok = false;
    r->invariant = inv;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    return false;
}

/* x must leave the queue before y (x's push completed before y's was
 * invoked). */
static bool fifo_ok(const hamok_qchk *q, const q_item *x, const q_item *y)
{
    if (x->where == WHERE_NONE || y->where == WHERE_NONE) {
        return true; /* taken by a pop of unknown outcome, or lost (reported) */
    }
    if (y->where == WHERE_POP && x->where == WHERE_FINAL) {
        return false;
    }
    if (y->where == WHERE_FINAL && x->where == WHERE_FINAL) {
        return x->at < y->at;
    }
    if (y->where == WHERE_FINAL) {
        return true;
    }
    if (x->at == y->at) {
        return x->pos < y->pos;
    }
    return !(q->pops[y->at].ret < q->pops[x->at].call);
}

bool hamok_qchk_check(hamok_qchk *q, hamok_q_report *r)
{
    memset(r, 0, sizeof *r);
    r->ok = true;
    r->pushed = q->n_items;
    if (q->n_items > 0) {
        qsort(q->items, q->n_items, sizeof *q->items, item_cmp);
    }
    for (size_t i = 1; i < q->n_items; i++) {
        if (q->items[i].item == q->items[i - 1].item) {
            return qfail(r, "queue-input", "item %" PRIu64 " pushed twice by the workload",
                         q->items[i].item);
        }
    }
    for (size_t u = 0; u < q->n_uses; u++) {
        const struct q_use *use = &q->uses[u];
        q_item *it = find_item(q, use->item);
        bool final = use->pop == SIZE_MAX;
        const char *where = final ? "the final queue" : "a pop";
        uint64_t by = final ? 0 : q->pops[use->pop].id;
        if (it == NULL) {
            return qfail(r, "queue-phantom",
                         "item %" PRIu64 " in %s (op #%" PRIu64 ") was never pushed", use->item,
                         where, by);
        }
        const q_push *p = &q->pushes[it->push];
        if (p->outcome == HAMOK_Q_FAILED) {
            return qfail(r, "queue-phantom",
                         "item %" PRIu64 " in %s (op #%" PRIu64 ") but its push #%" PRIu64
                         " had no effect",
                         use->item, where, by, p->id);
        }
        if (!final && !(p->call < q->pops[use->pop].ret)) {
            return qfail(r, "queue-phantom",
                         "item %" PRIu64 " popped by #%" PRIu64 " before its push #%" PRIu64
                         " was invoked",
                         use->item, by, p->id);
        }
        if (it->where != WHERE_NONE) {
            char a[40], b[40];
            if (it->where == WHERE_POP) {
                snprintf(a, sizeof a, "pop #%" PRIu64, q->pops[it->at].id);
            } else {
                snprintf(a, sizeof a, "the final queue");
            }
            if (final) {
                snprintf(b, sizeof b, "the final queue");
            } else {
                snprintf(b, sizeof b, "pop #%" PRIu64, by);
            }
            return qfail(r, "queue-duplicate",
                         "item %" PRIu64 " (push #%" PRIu64 ") consumed twice: by %s and by %s",
                         use->item, p->id, a, b);
        }
        it->where = final ? WHERE_FINAL : WHERE_POP;
        it->at = final ? use->pos : use->pop;
        it->pos = use->pos;
        if (final) {
            r->left++;
        } else {
            r->popped++;
        }
    }
    uint64_t allowance = 0;
    for (size_t i = 0; i < q->n_pops; i++) {
        if (q->pops[i].outcome == HAMOK_Q_UNKNOWN) {
            allowance += q->pops[i].max;
            r->unknown_pops++;
        }
    }
    const q_item *first_lost = NULL;
    for (size_t i = 0; i < q->n_items; i++) {
        const q_item *it = &q->items[i];
        if (q->pushes[it->push].outcome == HAMOK_Q_OK) {
            r->acked++;
            if (it->where == WHERE_NONE) {
                r->lost++;
                first_lost = first_lost ? first_lost : it;
            }
        }
    }
    if (r->lost > allowance) {
        return qfail(r, "queue-lost",
                     "%zu acknowledged items neither popped nor queued at the end (pops of "
                     "unknown outcome could take %" PRIu64 "); e.g. item %" PRIu64
                     " of push #%" PRIu64,
                     r->lost, allowance, first_lost->item, q->pushes[first_lost->push].id);
    }
    /* FIFO in real time. */
    for (size_t i = 0; i < q->n_items; i++) {
        const q_item *x = &q->items[i];
        const q_push *px = &q->pushes[x->push];
        if (px->outcome != HAMOK_Q_OK) {
            continue;
        }
        for (size_t j = 0; j < q->n_items; j++) {
            const q_item *y = &q->items[j];
            const q_push *py = &q->pushes[y->push];
            if (y->push == x->push || !(px->ret < py->call)) {
                continue;
            }
            if (!fifo_ok(q, x, y)) {
                return qfail(r, "queue-fifo",
                             "item %" PRIu64 " (push #%" PRIu64 " done at %" PRIu64
                             ") left the queue after item %" PRIu64 " (push #%" PRIu64
                             " invoked at %" PRIu64 ")",
                             x->item, px->id, px->ret, y->item, py->id, py->call);
            }
        }
    }
    return true;
}
