/* The remote map (include/hamok/remote_map.h): the handle, reads straight to
 * the store, and the worker that executes committed requests against the
 * store while this peer leads.
 *
 * The replicated part is src/collections/remote.c: every peer queues the
 * committed requests; the leader's worker takes a batch of them (oldest
 * first), reads the values they touch from the store, decides each one's
 * effect with the shared rules (hamok__remote_effect) over an overlay of
 * the batch's own earlier effects, writes the net changes in one store
 * commit together with a token (epoch + the last request index) and the
 * batch's outcomes, then proposes one OUTCOME entry per request and waits
 * until they are applied. Every peer derives the requester's result and the
 * events from the outcome, in log order.
 *
 * After a leader change the new leader first passes a read barrier (every
 * committed outcome is then applied here), then reads the store's token: if
 * it names requests still pending here, their outcomes are republished from
 * the store instead of executing them again (exactly once); the commit's
 * token comparison fences a deposed leader still writing. A store without
 * `load` gets at-least-once: a batch whose outcomes were lost with a leader
 * is executed again. docs/API.md, "The remote map". */
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "collections/remote.h"
#include "hamok/remote_map.h"
#include "node/coll_int.h"
#include "util/alloc.h"
#include "util/hmap.h"

#define MAX_BATCH     256u                 /* requests per store commit */
#define MAX_BLOB      (4u * 1024u * 1024u) /* outcome bytes per store commit */
#define IDLE_POLL_MS  100u                 /* how often an idle worker looks at its role */
#define BACKOFF_MIN   50u
#define BACKOFF_MAX   1000u
#define TOKEN_LEN     36u
#define OUTCOME_SLACK 2048u /* a SUBMIT around an outcome, inside one frame */

static const uint8_t TOKEN_MAGIC[4] = {'H', 'R', 'T', '1'};

/* ------------------------------------------------------------------------ */
/* Store output */

typedef enum out_mode {
    OUT_VALUE = 1, /* one value */
    OUT_KVS,       /* entries */
    OUT_KEYS,      /* keys only */
    OUT_COUNT,
    OUT_FOREACH,
    OUT_MAP, /* key -> value table (the worker's reads) */
    OUT_LOAD /* token (key) and outcome (value) */
} out_mode;

struct hamok_remote_out {
    out_mode mode;
    hamok_status err; /* what put() failed with */
    bool found;
    hamok_value *value;
    hamok_kvs *kvs;
    size_t cap;
    uint64_t count;
    bool (*fn)(void *ud, const hamok_kv *entry);
    void *ud;
    bool stopped;
    hamok_hmap *map;
    hamok_buf token;
    hamok_buf outcome;
};

hamok_status hamok_remote_out_put(hamok_remote_out *out, const void *key, size_t key_len,
                                  const void *value, size_t value_len)
{
    if (out == NULL || (key == NULL && key_len > 0) || (value == NULL && value_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    if (out->err != HAMOK_OK) {
        return out->err;
    }
    hamok_status st = HAMOK_OK;
    switch (out->mode) {
    case OUT_VALUE:
        if (!out->found) {
            st = hamok__value_set(out->value, value, value_len);
            out->found = st == HAMOK_OK;
        }
        break;
    case OUT_KVS:
        st = hamok__kvs_push(out->kvs, &out->cap, key, key_len, true, value, value_len);
        break;
    case OUT_KEYS: st = hamok__kvs_push(out->kvs, &out->cap, key, key_len, false, NULL, 0); break;
    case OUT_COUNT: out->count++; break;
    case OUT_FOREACH: {
        hamok_kv kv = {key, key_len, true, value, value_len};
        if (!out->fn(out->ud, &kv)) {
            out->stopped = true;
            st = HAMOK_ERR_CLOSED; /* asks the store to stop */
        }
        break;
    }
    case OUT_MAP: st = hamok__hmap_set(out->map, key, key_len, value, value_len); break;
    case OUT_LOAD:
        if (!out->found) {
            st = hamok__buf_append(&out->token, key, key_len);
            if (st == HAMOK_OK) {
                st = hamok__buf_append(&out->outcome, value, value_len);
            }
            out->found = st == HAMOK_OK;
        }
        break;
    }
    out->err = st;
    return st;
}

/* ------------------------------------------------------------------------ */
/* The handle */

/* A wait on completions that fire on the loop thread. Shared by the worker
 * and the callbacks: freed by whoever lets go last. */
typedef struct rm_call {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    size_t waiting;
    hamok_status st; /* the first failure, or HAMOK_OK */
} rm_call;

typedef struct batch batch;
typedef struct exec_state exec_state;

struct hamok_remote_map {
    hamok_map m; /* the handle (kind REMOTE_MAP): the writes are the map's */
    const hamok_remote_store_ops *ops;
    void *store;
    pthread_t thread;
    pthread_mutex_t mu; /* kicked, cur, detached, stats, state below */
    pthread_cond_t cv;
    bool kicked;
    bool detached;
    atomic_bool closing;
    rm_call *cur;
    hamok_remote_map_stats stats;
    /* worker only */
    uint64_t synced_term;
    uint64_t solo_until; /* requests up to this index run one per commit */
    uint32_t backoff_ms;
    batch *b;      /* the requests of the current round */
    exec_state *x; /* its scratch */
    struct hamok_remote_map *next_open;
};

/* One executor per (node, name): the open maps of the process. */
static pthread_mutex_t g_open_mu = PTHREAD_MUTEX_INITIALIZER;
static hamok_remote_map *g_open;

static hamok_node *node_of(const hamok_remote_map *w)
{
    return w->m.h.node;
}

static void stat_add(hamok_remote_map *w, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&w->mu);
    *field += n;
    pthread_mutex_unlock(&w->mu);
}

void hamok__remote_map_kick(hamok_handle *h)
{
    hamok_remote_map *w = (hamok_remote_map *)(void *)h; /* h is the first member */
    pthread_mutex_lock(&w->mu);
    w->kicked = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------------ */
/* Waiting for the loop */

static rm_call *call_new(size_t waiting)
{
    rm_call *c = hamok__calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->refs = 1 + (int)waiting;
    c->waiting = waiting;
    return c;
}

static void call_release(rm_call *c)
{
    pthread_mutex_lock(&c->mu);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&c->mu);
    if (last) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        hamok__free(c);
    }
}

static void call_done(rm_call *c, hamok_status st)
{
    pthread_mutex_lock(&c->mu);
    if (st != HAMOK_OK && c->st == HAMOK_OK) {
        c->st = st;
    }
    c->waiting--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    call_release(c);
}

static void on_sync(void *ud, hamok_status st)
{
    call_done(ud, st);
}

static void on_submit(void *ud, hamok_status st, const uint8_t *res, size_t len)
{
    if (st == HAMOK_OK) {
        hamok_cmd_result r;
        st = hamok__cmd_result_decode(res, len, &r);
        if (st == HAMOK_OK) {
            st = (hamok_status)r.status;
            hamok__cmd_result_clear(&r);
        }
    }
    call_done(ud, st);
}

/* Wait until every completion fired or the map closes (HAMOK_ERR_CLOSED). */
static hamok_status call_wait(hamok_remote_map *w, rm_call *c)
{
    pthread_mutex_lock(&w->mu);
    w->cur = c;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&c->mu);
    while (c->waiting > 0 && !atomic_load(&w->closing)) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    hamok_status st = c->waiting > 0 ? HAMOK_ERR_CLOSED : c->st;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&w->mu);
    w->cur = NULL;
    pthread_mutex_unlock(&w->mu);
    call_release(c);
    return st;
}

static hamok_status await_sync(hamok_remote_map *w)
{
    rm_call *c = call_new(1);
    if (c == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_node_sync_async(node_of(w), (int)hamok__node_request_timeout(node_of(w)), on_sync, c);
    return call_wait(w, c);
}

/* Propose the outcomes (in order) and wait until they are applied here. */
static hamok_status publish(hamok_remote_map *w, const hamok_buf *outs, size_t n)
{
    if (n == 0) {
        return HAMOK_OK;
    }
    rm_call *c = call_new(n);
    if (c == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_node *node = node_of(w);
    for (size_t i = 0; i < n; i++) {
        hamok_req *rq = hamok__req_new(HAMOK_REQ_SUBMIT, (int)hamok__node_request_timeout(node));
        if (rq == NULL || hamok__buf_append(&rq->cmd, outs[i].data, outs[i].len) != HAMOK_OK) {
            if (rq != NULL) {
                hamok__buf_free(&rq->cmd);
                hamok__free(rq);
            }
            call_done(c, HAMOK_ERR_NOMEM);
            continue;
        }
        rq->result_fn = on_submit;
        rq->ud = c;
        hamok__node_post_req(node, rq);
    }
    return call_wait(w, c);
}

/* ------------------------------------------------------------------------ */
/* Tokens and the stored outcome blob */

static void put_le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

typedef struct epoch {
    hamok_id client;
    uint64_t index;
} epoch;

static void token_make(uint8_t out[TOKEN_LEN], const epoch *e, uint64_t applied)
{
    memcpy(out, TOKEN_MAGIC, 4);
    memcpy(out + 4, e->client.b, HAMOK_ID_LEN);
    put_le(out + 20, e->index);
    put_le(out + 28, applied);
}

/* The last request index a token of this map's epoch names; 0 for another
 * lineage (a previous cluster on the same data) or none. */
static uint64_t token_applied(const hamok_buf *t, const epoch *e)
{
    if (t->len != TOKEN_LEN || memcmp(t->data, TOKEN_MAGIC, 4) != 0 ||
        memcmp(t->data + 4, e->client.b, HAMOK_ID_LEN) != 0 || get_le(t->data + 20) != e->index) {
        return 0;
    }
    return get_le(t->data + 28);
}

static bool buf_eq(const hamok_buf *a, const void *b, size_t blen)
{
    return a->len == blen && (blen == 0 || memcmp(a->data, b, blen) == 0);
}

/* Blob: { len:u32 LE, an OUTCOME command }*. */
static hamok_status blob_add(hamok_buf *blob, const hamok_buf *outcome)
{
    uint8_t x[4] = {(uint8_t)outcome->len, (uint8_t)(outcome->len >> 8),
                    (uint8_t)(outcome->len >> 16), (uint8_t)(outcome->len >> 24)};
    hamok_status st = hamok__buf_append(blob, x, 4);
    return st == HAMOK_OK ? hamok__buf_append(blob, outcome->data, outcome->len) : st;
}

/* The outcome of request `index` in the blob (borrowed), or false. */
static bool blob_find(const hamok_buf *blob, const hamok_handle *h, uint64_t index,
                      const uint8_t **p, size_t *len)
{
    size_t off = 0;
    while (blob->len - off >= 4) {
        const uint8_t *b = blob->data + off;
        size_t n = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
        if (n > blob->len - off - 4) {
            return false;
        }
        hamok_cmd c;
        hamok_cmd_item items[1];
        if (hamok__cmd_decode_view(b + 4, n, &c, items, 1) == HAMOK_OK &&
            c.kind == HAMOK_KIND_REMOTE_MAP && c.op == HAMOK_OP_OUTCOME && c.arg == index &&
            c.name_len == h->name_len && memcmp(c.name, h->name, h->name_len) == 0) {
            *p = b + 4;
            *len = n;
            return true;
        }
        off += 4 + n;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Batches */

typedef struct rm_op {
    uint64_t index;
    hamok_cmd cmd; /* decoded copy */
} rm_op;

struct batch {
    rm_op ops[MAX_BATCH];
    size_t n;
    epoch ep;
};

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        hamok__cmd_clear(&b->ops[i].cmd);
    }
    b->n = 0;
}

/* Copy the oldest pending requests. */
static hamok_status batch_take(hamok_remote_map *w, batch *b, size_t max)
{
    b->n = 0;
    hamok_node *node = node_of(w);
    hamok_status st = HAMOK_OK;
    hamok__node_read_lock(node);
    const hamok_coll *c = NULL;
    if (hamok__registry_lookup(hamok__node_registry(node), HAMOK_KIND_REMOTE_MAP, w->m.h.name,
                               w->m.h.name_len, &c) == HAMOK_OK) {
        hamok__coll_remote_epoch(c, &b->ep.client, &b->ep.index);
        size_t n = hamok__coll_remote_pending(c);
        for (size_t i = 0; i < n && i < max && st == HAMOK_OK; i++) {
            const uint8_t *data;
            size_t len;
            rm_op *op = &b->ops[b->n];
            (void)hamok__coll_remote_at(c, i, &op->index, &data, &len);
            st = hamok__cmd_decode(data, len, &op->cmd);
            if (st == HAMOK_OK) {
                b->n++;
            }
        }
    }
    hamok__node_read_unlock(node);
    if (st != HAMOK_OK && st != HAMOK_ERR_NOMEM) {
        st = HAMOK_OK; /* unreachable: the registry checked every request */
    }
    return b->n > 0 ? HAMOK_OK : st;
}

static void outs_free(hamok_buf *outs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hamok__buf_free(&outs[i]);
    }
}

/* An outcome without effect (a status) for request `index`. */
static hamok_status fail_outcome(hamok_remote_map *w, uint64_t index, hamok_status why,
                                 hamok_buf *out)
{
    return hamok__remote_outcome_encode(w->m.h.name, w->m.h.name_len, index, why, NULL, 0, out);
}

typedef enum round_result { ROUND_IDLE, ROUND_AGAIN, ROUND_BACKOFF } round_result;

static round_result published(hamok_remote_map *w, hamok_buf *outs, size_t n)
{
    hamok_status st = publish(w, outs, n);
    outs_free(outs, n);
    if (st != HAMOK_OK) {
        /* Lost leadership, a timeout, closing: the next round looks again
         * (the store's token tells what was executed). */
        w->synced_term = 0;
        return ROUND_BACKOFF;
    }
    w->backoff_ms = 0;
    return ROUND_AGAIN;
}

/* Fail the first request of the batch with HAMOK_ERR_STORE (its own store
 * error), or, for a batch of several, retry them one by one so that only the
 * request the store refuses fails. */
static round_result store_failed(hamok_remote_map *w, const batch *b, size_t n)
{
    if (n > 1) {
        w->solo_until = b->ops[n - 1].index;
        return ROUND_AGAIN;
    }
    hamok_buf out = HAMOK_BUF_INIT;
    if (fail_outcome(w, b->ops[0].index, HAMOK_ERR_STORE, &out) != HAMOK_OK) {
        hamok__buf_free(&out);
        return ROUND_BACKOFF;
    }
    return published(w, &out, 1);
}

static void log_store(hamok_remote_map *w, const char *what, hamok_status st)
{
    stat_add(w, &w->stats.store_errors, 1);
    hamok__nlog(node_of(w), HAMOK_LOG_WARN, "remote", "map %.*s: store %s failed: %s",
                (int)w->m.h.name_len, (const char *)w->m.h.name, what, hamok_status_str(st));
}

struct exec_state {
    hamok_hmap old;     /* what the store held */
    hamok_hmap overlay; /* the batch's own effects so far */
    bool cleared;
    hamok_buf blob;
    hamok_buf outs[MAX_BATCH];
    uint64_t indices[MAX_BATCH];
    hamok_kv *keys; /* the keys the batch reads */
    size_t cap_keys;
};

/* Requests up to `applied` were executed by a previous leader: publish the
 * outcomes the store kept with its token. */
static round_result recover(hamok_remote_map *w, const batch *b, uint64_t applied,
                            const hamok_buf *blob)
{
    hamok_buf *outs = w->x->outs;
    size_t n = 0;
    for (size_t i = 0; i < b->n && b->ops[i].index <= applied; i++) {
        const uint8_t *p;
        size_t len;
        hamok_status st;
        hamok__buf_reset(&outs[n]);
        if (blob_find(blob, &w->m.h, b->ops[i].index, &p, &len)) {
            st = hamok__buf_append(&outs[n], p, len);
        } else {
            /* The store says it was executed but holds no outcome for it:
             * its result is lost. */
            hamok__nlog(node_of(w), HAMOK_LOG_ERROR, "remote",
                        "map %.*s: request %" PRIu64 " was executed but its outcome is lost",
                        (int)w->m.h.name_len, (const char *)w->m.h.name, b->ops[i].index);
            st = fail_outcome(w, b->ops[i].index, HAMOK_ERR_STORE, &outs[n]);
        }
        n++;
        if (st != HAMOK_OK) {
            outs_free(outs, n);
            return ROUND_BACKOFF;
        }
    }
    stat_add(w, &w->stats.recovered, n);
    return published(w, outs, n);
}

/* The overlay of a batch: key -> tag byte (1 present, 0 deleted) + value. */
static hamok_status overlay_put(hamok_hmap *ov, const hamok_cmd_item *it, bool present)
{
    hamok_hrec *rec =
        hamok__hrec_new(it->key, it->key_len, NULL, 1 + (present ? it->value_len : 0));
    if (rec == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    uint8_t *v = hamok__hrec_value(rec);
    v[0] = present ? 1 : 0;
    if (present && it->value_len > 0) {
        memcpy(v + 1, it->value, it->value_len);
    }
    hamok_status st = hamok__hmap_put(ov, rec, NULL);
    if (st != HAMOK_OK) {
        hamok__hrec_free(rec);
    }
    return st;
}

/* Observations of op (what the store would hold just before it) and its
 * outcome; then its effects on the overlay. *fits false when the outcome
 * does not fit the batch any more (op not taken). */
static hamok_status simulate(hamok_remote_map *w, exec_state *x, const rm_op *op, size_t k,
                             bool *fits)
{
    const hamok_cmd *req = &op->cmd;
    size_t n = req->op == HAMOK_OP_CLEAR ? 0 : req->n_items;
    hamok_cmd_item *obs = n > 0 ? hamok__calloc(n, sizeof *obs) : NULL;
    if (n > 0 && obs == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const hamok_cmd_item *it = &req->items[i];
        const hamok_hrec *r = hamok__hmap_find(&x->overlay, it->key, it->key_len);
        if (r != NULL) {
            const uint8_t *v = hamok__hrec_cvalue(r);
            if (v[0] == 1) {
                obs[i].has_value = true;
                obs[i].value = (uint8_t *)(uintptr_t)(v + 1);
                obs[i].value_len = r->vlen - 1u;
            }
        } else if (!x->cleared && (r = hamok__hmap_find(&x->old, it->key, it->key_len)) != NULL) {
            obs[i].has_value = true;
            obs[i].value = (uint8_t *)(uintptr_t)hamok__hrec_cvalue(r);
            obs[i].value_len = r->vlen;
        }
    }
    hamok_buf *out = &x->outs[k];
    hamok__buf_reset(out);
    hamok_status st = hamok__remote_outcome_encode(w->m.h.name, w->m.h.name_len, op->index,
                                                   HAMOK_OK, obs, n, out);
    size_t room = hamok__node_frame_limit(node_of(w)) - OUTCOME_SLACK;
    bool effects = true;
    if (st == HAMOK_ERR_TOO_BIG || (st == HAMOK_OK && out->len > room)) {
        /* Its outcome (the old values) would not fit an entry: refused,
         * no effect. */
        hamok__buf_reset(out);
        st = fail_outcome(w, op->index, HAMOK_ERR_TOO_BIG, out);
        effects = false;
    }
    *fits = st != HAMOK_OK || k == 0 || x->blob.len + out->len + 4 <= MAX_BLOB;
    if (st == HAMOK_OK && *fits && effects) {
        if (req->op == HAMOK_OP_CLEAR) {
            hamok__hmap_clear(&x->overlay);
            x->cleared = true;
        }
        for (size_t i = 0; i < n && st == HAMOK_OK; i++) {
            hamok_remote_effect eff =
                hamok__remote_effect(req, i, obs[i].has_value, obs[i].value, obs[i].value_len);
            if (eff != HAMOK_REMOTE_KEEP) {
                st = overlay_put(&x->overlay, &req->items[i], eff == HAMOK_REMOTE_WRITE);
            }
        }
    }
    if (st == HAMOK_OK && *fits) {
        st = blob_add(&x->blob, out);
    }
    hamok__free(obs);
    return st;
}

static void exec_free(exec_state *x)
{
    hamok__hmap_clear(&x->old);
    hamok__hmap_clear(&x->overlay);
    hamok__buf_free(&x->blob);
}

/* Read, decide, commit, publish. `token` is what the store holds now. */
static round_result execute(hamok_remote_map *w, const batch *b, const hamok_buf *token)
{
    exec_state *x = w->x;
    hamok__hmap_init(&x->old, HAMOK_HMAP_SEED);
    hamok__hmap_init(&x->overlay, HAMOK_HMAP_SEED);
    x->cleared = false;
    x->blob = (hamok_buf)HAMOK_BUF_INIT;
    round_result rr = ROUND_BACKOFF;
    size_t n = b->ops[0].index <= w->solo_until ? 1 : b->n;
    /* The keys the batch touches, read in one call (a key twice is fine:
     * the table keeps one). */
    size_t nk = 0;
    for (size_t k = 0; k < n; k++) {
        const hamok_cmd *c = &b->ops[k].cmd;
        nk += c->op == HAMOK_OP_CLEAR ? 0 : c->n_items;
    }
    if (nk > x->cap_keys) {
        hamok_kv *p = hamok__realloc(x->keys, nk * sizeof *p);
        if (p == NULL) {
            goto out;
        }
        x->keys = p;
        x->cap_keys = nk;
    }
    nk = 0;
    for (size_t k = 0; k < n; k++) {
        const hamok_cmd *c = &b->ops[k].cmd;
        for (size_t i = 0; c->op != HAMOK_OP_CLEAR && i < c->n_items; i++) {
            x->keys[nk++] = (hamok_kv){c->items[i].key, c->items[i].key_len, false, NULL, 0};
        }
    }
    hamok_status st = HAMOK_OK;
    if (nk > 0) {
        hamok_remote_out o = {.mode = OUT_MAP, .map = &x->old};
        st = w->ops->get(w->store, x->keys, nk, &o);
        if (o.err != HAMOK_OK) {
            st = o.err;
        }
    }
    if (st == HAMOK_ERR_NOMEM) {
        goto out;
    }
    if (st != HAMOK_OK) {
        log_store(w, "read", st);
        rr = store_failed(w, b, n);
        goto out;
    }
    size_t taken = 0;
    for (size_t k = 0; k < n; k++) {
        bool fits = true;
        st = simulate(w, x, &b->ops[k], k, &fits);
        if (st != HAMOK_OK) {
            outs_free(x->outs, k + 1);
            goto out;
        }
        if (!fits) {
            hamok__buf_free(&x->outs[k]);
            break;
        }
        x->indices[k] = b->ops[k].index;
        taken = k + 1;
    }
    /* The net changes, in the order of their first effect. */
    size_t nc = hamok__hmap_size(&x->overlay);
    hamok_remote_change *changes = hamok__calloc(nc ? nc : 1, sizeof *changes);
    if (changes == NULL) {
        outs_free(x->outs, taken);
        goto out;
    }
    size_t cur = 0, j = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(&x->overlay, &cur, &rec)) {
        const uint8_t *v = hamok__hrec_cvalue(rec);
        changes[j++] = (hamok_remote_change){hamok__hrec_key(rec), rec->klen, v[0] == 1, v + 1,
                                             v[0] == 1 ? rec->vlen - 1u : 0};
    }
    uint8_t tok[TOKEN_LEN];
    token_make(tok, &b->ep, b->ops[taken - 1].index);
    hamok_remote_commit cm = {x->cleared, changes,      nc,          token->data, token->len, tok,
                              TOKEN_LEN,  x->blob.data, x->blob.len, x->indices,  taken};
    st = w->ops->commit(w->store, &cm);
    hamok__free(changes);
    if (st == HAMOK_OK) {
        pthread_mutex_lock(&w->mu);
        w->stats.batches++;
        w->stats.executed += taken;
        pthread_mutex_unlock(&w->mu);
        rr = published(w, x->outs, taken);
        goto out;
    }
    if (st == HAMOK_ERR_CONFLICT && w->ops->load != NULL) {
        /* Another leader wrote first: this peer may be deposed. */
        stat_add(w, &w->stats.conflicts, 1);
        outs_free(x->outs, taken);
        w->synced_term = 0;
        rr = ROUND_AGAIN;
        goto out;
    }
    log_store(w, "commit", st);
    if (w->ops->load == NULL) {
        /* Cannot tell what reached the store: every request of the batch
         * fails (documented: the store may hold part of it). */
        for (size_t k = 0; k < taken; k++) {
            hamok__buf_reset(&x->outs[k]);
            if (fail_outcome(w, b->ops[k].index, HAMOK_ERR_STORE, &x->outs[k]) != HAMOK_OK) {
                outs_free(x->outs, taken);
                goto out;
            }
        }
        rr = published(w, x->outs, taken);
        goto out;
    }
    /* Did it reach the store? The token says. */
    hamok_remote_out lo = {.mode = OUT_LOAD};
    hamok_status ls = w->ops->load(w->store, &lo);
    if (ls != HAMOK_OK || lo.err != HAMOK_OK) {
        log_store(w, "load", ls != HAMOK_OK ? ls : lo.err);
        rr = ROUND_BACKOFF; /* unknown: try again later (callers may time out) */
    } else if (buf_eq(&lo.token, tok, TOKEN_LEN)) {
        rr = published(w, x->outs, taken); /* written after all */
        taken = 0;
    } else if (buf_eq(&lo.token, token->data, token->len)) {
        rr = store_failed(w, b, taken); /* not written */
    } else {
        rr = ROUND_AGAIN; /* someone else wrote */
    }
    outs_free(x->outs, taken);
    hamok__buf_free(&lo.token);
    hamok__buf_free(&lo.outcome);
out:
    exec_free(x);
    return rr;
}

static round_result round_once(hamok_remote_map *w)
{
    hamok_node *node = node_of(w);
    hamok_node_stats s;
    hamok_node_stats_get(node, &s);
    if (s.role != HAMOK_ROLE_LEADER) {
        w->synced_term = 0;
        return ROUND_IDLE;
    }
    if (w->synced_term != s.term) {
        /* A new term: apply every outcome committed so far before looking
         * at the queue (a read barrier needs a commit of this term). */
        if (await_sync(w) != HAMOK_OK) {
            return ROUND_BACKOFF;
        }
        w->synced_term = s.term;
    }
    batch *b = w->b;
    round_result rr = ROUND_IDLE;
    hamok_status st = batch_take(w, b, MAX_BATCH);
    if (st != HAMOK_OK) {
        rr = ROUND_BACKOFF;
    } else if (b->n > 0) {
        hamok_remote_out lo = {.mode = OUT_LOAD};
        hamok_status ls = HAMOK_OK;
        if (w->ops->load != NULL) {
            ls = w->ops->load(w->store, &lo);
            if (ls == HAMOK_OK) {
                ls = lo.err;
            }
        }
        if (ls != HAMOK_OK) {
            log_store(w, "load", ls);
            rr = ROUND_BACKOFF;
        } else {
            uint64_t applied = token_applied(&lo.token, &b->ep);
            rr = b->ops[0].index <= applied ? recover(w, b, applied, &lo.outcome)
                                            : execute(w, b, &lo.token);
        }
        hamok__buf_free(&lo.token);
        hamok__buf_free(&lo.outcome);
    }
    batch_free(b);
    return rr;
}

static void wait_ms(hamok_remote_map *w, uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000u;
    ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!w->kicked && !atomic_load(&w->closing)) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) {
            break; /* timed out */
        }
    }
}

static void map_free(hamok_remote_map *w)
{
    if (w->x != NULL) {
        hamok__free(w->x->keys);
    }
    hamok__free(w->x);
    hamok__free(w->b);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    hamok__free(w);
}

static void *worker_main(void *arg)
{
    hamok_remote_map *w = arg;
    round_result last = ROUND_IDLE;
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->closing)) {
        if (last != ROUND_AGAIN) {
            uint32_t ms = IDLE_POLL_MS;
            if (last == ROUND_BACKOFF) {
                w->backoff_ms = w->backoff_ms == 0 ? BACKOFF_MIN : w->backoff_ms * 2;
                if (w->backoff_ms > BACKOFF_MAX) {
                    w->backoff_ms = BACKOFF_MAX;
                }
                ms = w->backoff_ms;
            }
            wait_ms(w, ms);
        }
        w->kicked = false;
        if (atomic_load(&w->closing)) {
            break;
        }
        pthread_mutex_unlock(&w->mu);
        last = round_once(w);
        pthread_mutex_lock(&w->mu);
    }
    bool detached = w->detached;
    pthread_mutex_unlock(&w->mu);
    if (detached) {
        map_free(w);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Open / close */

hamok_status hamok_remote_map_open(hamok_node *node, const char *name,
                                   const hamok_remote_store_ops *ops, void *store,
                                   hamok_remote_map **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    if (node == NULL || ops == NULL || ops->abi != HAMOK_REMOTE_STORE_ABI || ops->get == NULL ||
        ops->scan == NULL || ops->commit == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_remote_map *w = hamok__calloc(1, sizeof *w);
    if (w == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = hamok__handle_init(&w->m.h, node, HAMOK_KIND_REMOTE_MAP, name);
    if (st != HAMOK_OK) {
        hamok__free(w);
        return st;
    }
    w->ops = ops;
    w->store = store;
    w->b = hamok__calloc(1, sizeof *w->b);
    w->x = hamok__calloc(1, sizeof *w->x);
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&w->closing, false);
    if (w->b == NULL || w->x == NULL) {
        hamok__handle_fini(&w->m.h);
        map_free(w);
        return HAMOK_ERR_NOMEM;
    }
    pthread_mutex_lock(&g_open_mu);
    for (hamok_remote_map *o = g_open; o != NULL; o = o->next_open) {
        if (o->m.h.node == node && o->m.h.name_len == w->m.h.name_len &&
            memcmp(o->m.h.name, w->m.h.name, w->m.h.name_len) == 0) {
            st = HAMOK_ERR_BUSY;
            break;
        }
    }
    if (st == HAMOK_OK && pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        st = HAMOK_ERR_STATE;
    }
    if (st == HAMOK_OK) {
        w->next_open = g_open;
        g_open = w;
    }
    pthread_mutex_unlock(&g_open_mu);
    if (st != HAMOK_OK) {
        hamok__handle_fini(&w->m.h);
        map_free(w);
        return st;
    }
    *out = w;
    return HAMOK_OK;
}

void hamok_remote_map_close(hamok_remote_map **mp)
{
    if (mp == NULL || *mp == NULL) {
        return;
    }
    hamok_remote_map *w = *mp;
    *mp = NULL;
    pthread_mutex_lock(&g_open_mu);
    for (hamok_remote_map **p = &g_open; *p != NULL; p = &(*p)->next_open) {
        if (*p == w) {
            *p = w->next_open;
            break;
        }
    }
    pthread_mutex_unlock(&g_open_mu);
    bool on_loop = hamok__node_on_loop(node_of(w));
    hamok__handle_fini(&w->m.h); /* no kick or event after this */
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->closing, true);
    w->detached = on_loop;
    if (w->cur != NULL) {
        pthread_mutex_lock(&w->cur->mu);
        pthread_cond_broadcast(&w->cur->cv);
        pthread_mutex_unlock(&w->cur->mu);
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (on_loop) {
        /* The worker may wait for this very thread: it frees itself. */
        pthread_detach(w->thread);
        return;
    }
    pthread_join(w->thread, NULL);
    map_free(w);
}

void hamok_remote_map_stats_get(hamok_remote_map *w, hamok_remote_map_stats *out)
{
    if (out == NULL) {
        return;
    }
    memset(out, 0, sizeof *out);
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
}

/* ------------------------------------------------------------------------ */
/* Reads */

static hamok_status read_ok(hamok_remote_map *w)
{
    if (w == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok__node_on_loop(node_of(w)) ? HAMOK_ERR_STATE : HAMOK_OK;
}

/* The status of a store read: the store's, put()'s, or a stop we asked. */
static hamok_status read_status(hamok_remote_map *w, hamok_status st, const hamok_remote_out *o)
{
    if (o->stopped) {
        return HAMOK_OK;
    }
    if (o->err != HAMOK_OK) {
        return o->err;
    }
    if (st != HAMOK_OK) {
        log_store(w, "read", st);
        return HAMOK_ERR_STORE;
    }
    return HAMOK_OK;
}

hamok_status hamok_remote_map_get(hamok_remote_map *w, const void *key, size_t key_len,
                                  hamok_value *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    hamok_status st = read_ok(w);
    if (st != HAMOK_OK) {
        return st;
    }
    if (out == NULL || hamok__check_key(key, key_len) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    hamok_kv kv = {key_len > 0 ? key : "", key_len, false, NULL, 0};
    hamok_remote_out o = {.mode = OUT_VALUE, .value = out};
    st = read_status(w, w->ops->get(w->store, &kv, 1, &o), &o);
    if (st != HAMOK_OK) {
        hamok_value_free(out);
        return st;
    }
    return o.found ? HAMOK_OK : HAMOK_ERR_NOT_FOUND;
}

hamok_status hamok_remote_map_get_str(hamok_remote_map *w, const char *key, hamok_value *out)
{
    if (key == NULL) {
        if (out != NULL) {
            memset(out, 0, sizeof *out);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_remote_map_get(w, key, strlen(key), out);
}

static hamok_status read_kvs(hamok_remote_map *w, out_mode mode, const hamok_kv *keys, size_t n,
                             hamok_kvs *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    hamok_status st = read_ok(w);
    if (st != HAMOK_OK) {
        return st;
    }
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_remote_out o = {.mode = mode, .kvs = out};
    if (keys != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (hamok__check_key(keys[i].key, keys[i].key_len) != HAMOK_OK) {
                return HAMOK_ERR_INVALID;
            }
        }
        st = n == 0 ? HAMOK_OK : w->ops->get(w->store, keys, n, &o);
    } else {
        st = w->ops->scan(w->store, &o);
    }
    st = read_status(w, st, &o);
    if (st != HAMOK_OK) {
        hamok_kvs_free(out);
    }
    return st;
}

hamok_status hamok_remote_map_get_all(hamok_remote_map *w, const hamok_kv *keys, size_t n,
                                      hamok_kvs *out)
{
    if (keys == NULL && n > 0) {
        if (out != NULL) {
            memset(out, 0, sizeof *out);
        }
        return HAMOK_ERR_INVALID;
    }
    static const hamok_kv none[1];
    return read_kvs(w, OUT_KVS, keys != NULL ? keys : none, n, out);
}

hamok_status hamok_remote_map_keys(hamok_remote_map *w, hamok_kvs *out)
{
    return read_kvs(w, OUT_KEYS, NULL, 0, out);
}

hamok_status hamok_remote_map_entries(hamok_remote_map *w, hamok_kvs *out)
{
    return read_kvs(w, OUT_KVS, NULL, 0, out);
}

hamok_status hamok_remote_map_size(hamok_remote_map *w, uint64_t *out)
{
    if (out != NULL) {
        *out = 0;
    }
    hamok_status st = read_ok(w);
    if (st != HAMOK_OK) {
        return st;
    }
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_remote_out o = {.mode = OUT_COUNT};
    if (w->ops->size != NULL) {
        st = read_status(w, w->ops->size(w->store, out), &o);
        if (st != HAMOK_OK) {
            *out = 0;
        }
        return st;
    }
    st = read_status(w, w->ops->scan(w->store, &o), &o);
    *out = st == HAMOK_OK ? o.count : 0;
    return st;
}

hamok_status hamok_remote_map_foreach(hamok_remote_map *w,
                                      bool (*fn)(void *ud, const hamok_kv *entry), void *ud)
{
    hamok_status st = read_ok(w);
    if (st != HAMOK_OK) {
        return st;
    }
    if (fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_remote_out o = {.mode = OUT_FOREACH, .fn = fn, .ud = ud};
    return read_status(w, w->ops->scan(w->store, &o), &o);
}

/* ------------------------------------------------------------------------ */
/* Writes: the map's, with kind REMOTE_MAP in the handle */

hamok_status hamok_remote_map_set(hamok_remote_map *w, const void *key, size_t key_len,
                                  const void *value, size_t value_len, hamok_value *old,
                                  int timeout_ms)
{
    if (w == NULL) {
        if (old != NULL) {
            memset(old, 0, sizeof *old);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_set(&w->m, key, key_len, value, value_len, old, timeout_ms);
}

hamok_status hamok_remote_map_set_str(hamok_remote_map *w, const char *key, const char *value,
                                      hamok_value *old, int timeout_ms)
{
    if (w == NULL) {
        if (old != NULL) {
            memset(old, 0, sizeof *old);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_set_str(&w->m, key, value, old, timeout_ms);
}

hamok_status hamok_remote_map_set_all(hamok_remote_map *w, const hamok_kv *entries, size_t n,
                                      hamok_kvs *old, int timeout_ms)
{
    if (w == NULL) {
        if (old != NULL) {
            memset(old, 0, sizeof *old);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_set_all(&w->m, entries, n, old, timeout_ms);
}

hamok_status hamok_remote_map_insert(hamok_remote_map *w, const void *key, size_t key_len,
                                     const void *value, size_t value_len, hamok_value *existing,
                                     int timeout_ms)
{
    if (w == NULL) {
        if (existing != NULL) {
            memset(existing, 0, sizeof *existing);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_insert(&w->m, key, key_len, value, value_len, existing, timeout_ms);
}

hamok_status hamok_remote_map_insert_all(hamok_remote_map *w, const hamok_kv *entries, size_t n,
                                         hamok_kvs *existing, int timeout_ms)
{
    if (w == NULL) {
        if (existing != NULL) {
            memset(existing, 0, sizeof *existing);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_insert_all(&w->m, entries, n, existing, timeout_ms);
}

hamok_status hamok_remote_map_update_if(hamok_remote_map *w, const void *key, size_t key_len,
                                        const void *value, size_t value_len, const void *expected,
                                        size_t expected_len, bool *updated, int timeout_ms)
{
    if (w == NULL) {
        if (updated != NULL) {
            *updated = false;
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_update_if(&w->m, key, key_len, value, value_len, expected, expected_len,
                               updated, timeout_ms);
}

hamok_status hamok_remote_map_delete(hamok_remote_map *w, const void *key, size_t key_len,
                                     bool *deleted, int timeout_ms)
{
    if (w == NULL) {
        if (deleted != NULL) {
            *deleted = false;
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_delete(&w->m, key, key_len, deleted, timeout_ms);
}

hamok_status hamok_remote_map_delete_all(hamok_remote_map *w, const hamok_kv *keys, size_t n,
                                         hamok_kvs *deleted, int timeout_ms)
{
    if (w == NULL) {
        if (deleted != NULL) {
            memset(deleted, 0, sizeof *deleted);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_delete_all(&w->m, keys, n, deleted, timeout_ms);
}

hamok_status hamok_remote_map_remove(hamok_remote_map *w, const void *key, size_t key_len,
                                     hamok_value *removed, int timeout_ms)
{
    if (w == NULL) {
        if (removed != NULL) {
            memset(removed, 0, sizeof *removed);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_remove(&w->m, key, key_len, removed, timeout_ms);
}

hamok_status hamok_remote_map_remove_all(hamok_remote_map *w, const hamok_kv *keys, size_t n,
                                         hamok_kvs *removed, int timeout_ms)
{
    if (w == NULL) {
        if (removed != NULL) {
            memset(removed, 0, sizeof *removed);
        }
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_remove_all(&w->m, keys, n, removed, timeout_ms);
}

hamok_status hamok_remote_map_clear(hamok_remote_map *w, int timeout_ms)
{
    return w == NULL ? HAMOK_ERR_INVALID : hamok_map_clear(&w->m, timeout_ms);
}

void hamok_remote_map_set_async(hamok_remote_map *w, const void *key, size_t key_len,
                                const void *value, size_t value_len, int timeout_ms,
                                hamok_result_fn cb, void *ud)
{
    if (w == NULL) {
        if (cb != NULL) {
            cb(ud, HAMOK_ERR_INVALID, NULL);
        }
        return;
    }
    hamok_map_set_async(&w->m, key, key_len, value, value_len, timeout_ms, cb, ud);
}

void hamok_remote_map_delete_async(hamok_remote_map *w, const void *key, size_t key_len,
                                   int timeout_ms, hamok_result_fn cb, void *ud)
{
    if (w == NULL) {
        if (cb != NULL) {
            cb(ud, HAMOK_ERR_INVALID, NULL);
        }
        return;
    }
    hamok_map_delete_async(&w->m, key, key_len, timeout_ms, cb, ud);
}

hamok_status hamok_remote_map_on(hamok_remote_map *w, hamok_map_event_fn fn, void *ud)
{
    return w == NULL ? HAMOK_ERR_INVALID : hamok_map_on(&w->m, fn, ud);
}

hamok_status hamok_remote_map_off(hamok_remote_map *w, hamok_map_event_fn fn, void *ud)
{
    return w == NULL ? HAMOK_ERR_INVALID : hamok_map_off(&w->m, fn, ud);
}
