/* The registry: collections by name, the session table, apply, reads,
 * snapshot/restore. Per-kind behaviour lives in map.c, queue.c, emitter.c,
 * remote.c (see coll.h for the prepare/commit split that makes every entry
 * all or nothing). */
#include <string.h>

#include "codec/codec.h"
#include "collections/coll.h"
#include "collections/remote.h"
#include "collections/session.h"
#include "util/alloc.h"
#include "util/crc32c.h"

/* Scratch arrays larger than this are given back after each entry. */
#define SCRATCH_KEEP 1024u

/* What the session table holds for a queued remote-map request until its
 * outcome is applied: a byte that begins no MessagePack value, so no result
 * can be mistaken for it. A duplicate of a queued request answers nothing
 * (the proposer is answered when the outcome is applied). */
static const uint8_t PENDING_MARK[1] = {0xc1};

struct hamok_registry {
    hamok_hmap colls; /* name -> hamok_coll * (pointer bytes in the value) */
    hamok_sessions *sessions;
    uint32_t window;
    uint64_t applied;
    hamok_buf res; /* the encoded result of the entry being applied */
    coll_prep *prep;
    size_t prep_cap;
    hamok_cmd_item *ritems;
    size_t ritems_cap;
    hamok_cmd_item *citems; /* the items of the command being applied */
    size_t citems_cap;
};

/* ------------------------------------------------------------------------- */
/* Collections */

static hamok_coll *coll_of(const hamok_hrec *rec)
{
    hamok_coll *c;
    memcpy(&c, hamok__hrec_cvalue(rec), sizeof c);
    return c;
}

static hamok_coll *coll_new(uint8_t kind)
{
    hamok_coll *c = hamok__calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->kind = kind;
    switch (kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: hamok__map_init(c); break;
    case HAMOK_KIND_QUEUE: hamok__queue_init(c); break;
    case HAMOK_KIND_EMITTER: hamok__emitter_init(c); break;
    case HAMOK_KIND_REMOTE_MAP: hamok__remote_init(c); break;
    default: break;
    }
    return c;
}

static void coll_free(hamok_coll *c)
{
    if (c == NULL) {
        return;
    }
    switch (c->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: hamok__map_free(c); break;
    case HAMOK_KIND_QUEUE: hamok__queue_free(c); break;
    case HAMOK_KIND_EMITTER: hamok__emitter_free(c); break;
    case HAMOK_KIND_REMOTE_MAP: hamok__remote_free(c); break;
    default: break;
    }
    hamok__free(c);
}

/* A collection and its registry record (name -> pointer), not yet linked. */
static hamok_hrec *coll_make(uint8_t kind, const uint8_t *name, size_t name_len)
{
    hamok_coll *c = coll_new(kind);
    if (c == NULL) {
        return NULL;
    }
    hamok_hrec *rec = hamok__hrec_new(name, name_len, &c, sizeof c);
    if (rec == NULL) {
        coll_free(c);
        return NULL;
    }
    c->name = hamok__hrec_key(rec);
    c->name_len = rec->klen;
    return rec;
}

static void coll_unmake(hamok_hrec *rec)
{
    if (rec != NULL) {
        coll_free(coll_of(rec));
        hamok__hrec_free(rec);
    }
}

static void colls_clear(hamok_hmap *colls)
{
    size_t cur = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(colls, &cur, &rec)) {
        coll_free(coll_of(rec));
    }
    hamok__hmap_clear(colls);
}

/* ------------------------------------------------------------------------- */
/* Registry */

hamok_status hamok__registry_new(hamok_registry **out, uint32_t session_window)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    if (session_window > HAMOK_SESSION_MAX_WINDOW) {
        return HAMOK_ERR_INVALID;
    }
    hamok_registry *r = hamok__calloc(1, sizeof *r);
    if (r == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = hamok__sessions_new(&r->sessions, session_window);
    if (st != HAMOK_OK) {
        hamok__free(r);
        return st;
    }
    r->window = session_window;
    hamok__hmap_init(&r->colls, HAMOK_HMAP_SEED);
    *out = r;
    return HAMOK_OK;
}

static void registry_free_contents(hamok_registry *r)
{
    colls_clear(&r->colls);
    hamok__sessions_destroy(&r->sessions);
    hamok__buf_free(&r->res);
    hamok__free(r->prep);
    hamok__free(r->ritems);
    hamok__free(r->citems);
}

void hamok__registry_destroy(hamok_registry **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    registry_free_contents(*rp);
    hamok__free(*rp);
    *rp = NULL;
}

uint64_t hamok__registry_applied(const hamok_registry *r)
{
    return r->applied;
}

/* ------------------------------------------------------------------------- */
/* Helpers for the kinds (coll.h) */

void hamok__coll_emit(const coll_ctx *c, hamok_coll_event *ev)
{
    if (c->sink == NULL) {
        return;
    }
    ev->kind = c->coll->kind;
    ev->name = c->coll->name;
    ev->name_len = c->coll->name_len;
    ev->index = c->index;
    c->sink(c->ud, ev);
}

/* A context for events of `coll` outside a command's prepare/commit. */
static void ctx_for(coll_ctx *c, uint64_t index, hamok_coll *coll, hamok_coll_event_fn sink,
                    void *ud)
{
    memset(c, 0, sizeof *c);
    c->index = index;
    c->coll = coll;
    c->sink = sink;
    c->ud = ud;
}

void hamok__coll_prep_release(coll_ctx *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        coll_prep *p = &c->prep[i];
        hamok__hrec_free(p->rec);
        hamok__event_free(p->ev);
        hamok__free(p->bytes);
        memset(p, 0, sizeof *p);
    }
}

void hamok__coll_res_add(coll_ctx *c, const uint8_t *key, size_t key_len, bool has_value,
                         const uint8_t *value, size_t value_len)
{
    if (c->res.n_items >= c->res_cap) {
        return; /* unreachable: the registry sized it */
    }
    hamok_cmd_item *it = &c->res.items[c->res.n_items++];
    memset(it, 0, sizeof *it);
    it->key = (uint8_t *)(uintptr_t)key;
    it->key_len = key_len;
    it->has_value = has_value;
    it->value = (uint8_t *)(uintptr_t)value;
    it->value_len = value_len;
}

bool hamok__bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

hamok_status hamok__coll_distinct_keys(coll_ctx *c)
{
    const hamok_cmd_item *it = c->cmd->items;
    size_t n = c->cmd->n_items;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            for (size_t j = 0; j < i; j++) {
                if (hamok__bytes_eq(it[i].key, it[i].key_len, it[j].key, it[j].key_len)) {
                    return HAMOK_ERR_INVALID;
                }
            }
        }
        return HAMOK_OK;
    }
    /* Open addressing over item numbers + 1 (n <= 65536 items). */
    size_t size = 32;
    while (size < 2 * n) {
        size *= 2;
    }
    uint32_t *t = hamok__calloc(size, sizeof *t);
    if (t == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = HAMOK_OK;
    for (size_t i = 0; i < n && st == HAMOK_OK; i++) {
        size_t h = (size_t)hamok__hash64(it[i].key, it[i].key_len, HAMOK_HMAP_SEED) & (size - 1);
        for (;; h = (h + 1) & (size - 1)) {
            if (t[h] == 0) {
                t[h] = (uint32_t)i + 1;
                break;
            }
            const hamok_cmd_item *o = &it[t[h] - 1];
            if (hamok__bytes_eq(it[i].key, it[i].key_len, o->key, o->key_len)) {
                st = HAMOK_ERR_INVALID;
                break;
            }
        }
    }
    hamok__free(t);
    return st;
}

/* ------------------------------------------------------------------------- */
/* Apply */

static void scratch_trim(hamok_registry *r)
{
    if (r->prep_cap > SCRATCH_KEEP) {
        hamok__free(r->prep);
        r->prep = NULL;
        r->prep_cap = 0;
    }
    if (r->ritems_cap > SCRATCH_KEEP) {
        hamok__free(r->ritems);
        r->ritems = NULL;
        r->ritems_cap = 0;
    }
    if (r->citems_cap > SCRATCH_KEEP) {
        hamok__free(r->citems);
        r->citems = NULL;
        r->citems_cap = 0;
    }
    if (r->res.cap > 64u * 1024u) {
        hamok__buf_free(&r->res);
    }
}

static hamok_status scratch_ensure(hamok_registry *r, size_t n_prep, size_t n_res)
{
    if (n_prep > r->prep_cap) {
        coll_prep *p = hamok__realloc(r->prep, n_prep * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        r->prep = p;
        r->prep_cap = n_prep;
    }
    if (n_res > r->ritems_cap) {
        hamok_cmd_item *p = hamok__realloc(r->ritems, n_res * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        r->ritems = p;
        r->ritems_cap = n_res;
    }
    if (n_prep > 0) {
        memset(r->prep, 0, n_prep * sizeof *r->prep);
    }
    return HAMOK_OK;
}

/* Make delivering r->res (to `result` and to the session table) unable to
 * fail. */
static hamok_status answer_reserve(hamok_registry *r, const hamok_entry *e, hamok_buf *result)
{
    if (result != NULL) {
        hamok_status st = hamok__buf_reserve(result, r->res.len);
        if (st != HAMOK_OK) {
            return st;
        }
    }
    return hamok__sessions_reserve(r->sessions, &e->client, e->seq, r->res.len);
}

static void answer_deliver(hamok_registry *r, const hamok_entry *e, hamok_buf *result)
{
    if (result != NULL) {
        (void)hamok__buf_append(result, r->res.data, r->res.len); /* reserved */
    }
    (void)hamok__sessions_record(r->sessions, &e->client, e->seq, r->res.data, r->res.len);
}

static hamok_status encode_status(hamok_registry *r, hamok_status status)
{
    hamok_cmd_result res = {(uint32_t)status, false, NULL, 0};
    hamok__buf_reset(&r->res);
    return hamok__cmd_result_encode(&res, &r->res);
}

/* A command that has no effect: answer `status`. */
static hamok_status answer_status(hamok_registry *r, const hamok_entry *e, hamok_buf *result,
                                  hamok_status status)
{
    hamok_status st = encode_status(r, status);
    if (st == HAMOK_OK) {
        st = answer_reserve(r, e, result);
    }
    if (st != HAMOK_OK) {
        return st;
    }
    answer_deliver(r, e, result);
    return HAMOK_OK;
}

static bool kind_supports(uint8_t kind, uint8_t op)
{
    switch (kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: return hamok__map_supports(kind, op);
    case HAMOK_KIND_QUEUE: return hamok__queue_supports(op);
    case HAMOK_KIND_EMITTER: return hamok__emitter_supports(op);
    default: return false;
    }
}

static hamok_status kind_prepare(coll_ctx *c)
{
    switch (c->coll->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: return hamok__map_prepare(c);
    case HAMOK_KIND_QUEUE: return hamok__queue_prepare(c);
    case HAMOK_KIND_EMITTER: return hamok__emitter_prepare(c);
    default: return HAMOK_ERR_INVALID;
    }
}

static void kind_commit(coll_ctx *c)
{
    switch (c->coll->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: hamok__map_commit(c); break;
    case HAMOK_KIND_QUEUE: hamok__queue_commit(c); break;
    case HAMOK_KIND_EMITTER: hamok__emitter_commit(c); break;
    default: break;
    }
}

/* ------------------------------------------------------------------------- */
/* Remote map (remote.h) */

/* A valid request is queued; its proposer is answered at its outcome. */
static hamok_status remote_request(hamok_registry *r, uint64_t index, const hamok_entry *e,
                                   const hamok_cmd *cmd, hamok_hrec *rec, hamok_buf *result,
                                   hamok_coll_event_fn sink, void *ud)
{
    hamok_status st = hamok__remote_check(cmd);
    if (st == HAMOK_ERR_NOMEM) {
        return st;
    }
    if (st != HAMOK_OK) {
        return answer_status(r, e, result, st);
    }
    hamok_hrec *fresh = NULL;
    if (rec == NULL) {
        fresh = coll_make(cmd->kind, cmd->name, cmd->name_len);
        if (fresh == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    hamok_coll *coll = coll_of(rec != NULL ? rec : fresh);
    coll_pend p = {index, e->client, e->seq, hamok__memdup(e->data, e->len), e->len};
    st = p.cmd == NULL ? HAMOK_ERR_NOMEM : hamok__remote_reserve(&coll->u.remote, 1);
    if (st == HAMOK_OK && fresh != NULL) {
        st = hamok__hmap_reserve(&r->colls, 1);
    }
    if (st == HAMOK_OK) {
        st = hamok__sessions_reserve(r->sessions, &e->client, e->seq, sizeof PENDING_MARK);
    }
    if (st != HAMOK_OK) {
        hamok__free(p.cmd);
        coll_unmake(fresh);
        return HAMOK_ERR_NOMEM; /* the only way the reservations fail */
    }
    /* Nothing can fail from here on. */
    if (fresh != NULL) {
        coll->u.remote.epoch_client = e->client;
        coll->u.remote.epoch_index = index;
        (void)hamok__hmap_put(&r->colls, fresh, NULL); /* reserved */
    }
    hamok__remote_push(&coll->u.remote, &p);
    (void)hamok__sessions_record(r->sessions, &e->client, e->seq, PENDING_MARK,
                                 sizeof PENDING_MARK); /* reserved */
    coll_ctx c;
    ctx_for(&c, index, coll, sink, ud);
    hamok_coll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HAMOK_CEV_PENDING;
    hamok__coll_emit(&c, &ev);
    (void)result; /* deferred: nothing to append */
    return HAMOK_OK;
}

/* An answer that the session table does not remember (outcomes). */
static hamok_status answer_plain(hamok_registry *r, hamok_buf *result, hamok_status status,
                                 bool flag)
{
    hamok_cmd_result res = {(uint32_t)status, flag, NULL, 0};
    hamok__buf_reset(&r->res);
    hamok_status st = hamok__cmd_result_encode(&res, &r->res);
    if (st == HAMOK_OK && result != NULL) {
        st = hamok__buf_append(result, r->res.data, r->res.len);
    }
    return st;
}

/* The outcome of the oldest pending request resolves it. */
static hamok_status remote_outcome(hamok_registry *r, const hamok_cmd *cmd, hamok_hrec *rec,
                                   hamok_buf *result, hamok_coll_event_fn sink, void *ud)
{
    if (cmd->n_items != 1 || !cmd->items[0].has_value) {
        return answer_plain(r, result, HAMOK_ERR_INVALID, false);
    }
    hamok_coll *coll = rec != NULL ? coll_of(rec) : NULL;
    coll_pend *p = coll != NULL ? hamok__remote_head(&coll->u.remote) : NULL;
    if (p == NULL || p->index != cmd->arg) {
        return answer_plain(r, result, HAMOK_OK, false); /* stale or duplicate: nothing */
    }
    hamok_cmd req;
    hamok_cmd_result obs;
    memset(&obs, 0, sizeof obs);
    hamok_status st = hamok__cmd_decode(p->cmd, p->len, &req);
    if (st == HAMOK_OK) {
        st = hamok__cmd_result_decode(cmd->items[0].value, cmd->items[0].value_len, &obs);
        if (st != HAMOK_OK && st != HAMOK_ERR_NOMEM) {
            obs.status = HAMOK_ERR_CODEC; /* observations that do not decode */
            st = HAMOK_OK;
        }
    } else if (st != HAMOK_ERR_NOMEM) {
        obs.status = HAMOK_ERR_CODEC; /* unreachable: queued requests were checked */
        st = HAMOK_OK;
    }
    hamok_buf rb = HAMOK_BUF_INIT; /* the proposer's result */
    coll_ctx c;
    ctx_for(&c, p->index, coll, sink, ud);
    c.client = &p->client;
    c.cmd = &req;
    if (st == HAMOK_OK) {
        st = scratch_ensure(r, 0, req.n_items);
    }
    if (st == HAMOK_OK) {
        c.res.items = r->ritems;
        c.res_cap = req.n_items;
        hamok__remote_resolve(&c, &req, &obs, false);
        st = hamok__cmd_result_encode(&c.res, &rb);
    }
    if (st == HAMOK_OK) {
        hamok_cmd_result own = {HAMOK_OK, true, NULL, 0};
        hamok__buf_reset(&r->res);
        st = hamok__cmd_result_encode(&own, &r->res);
    }
    if (st == HAMOK_OK && result != NULL) {
        st = hamok__buf_reserve(result, r->res.len);
    }
    if (st == HAMOK_OK) {
        st = hamok__sessions_reserve(r->sessions, &p->client, p->seq, rb.len);
    }
    if (st == HAMOK_OK) {
        /* Nothing can fail from here on: events, the proposer's answer
         * (remembered for its retries), then the request leaves the queue. */
        c.res.n_items = 0;
        hamok__remote_resolve(&c, &req, &obs, true);
        (void)hamok__sessions_record(r->sessions, &p->client, p->seq, rb.data, rb.len);
        hamok_coll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = HAMOK_CEV_ANSWER;
        ev.peer = p->client;
        ev.seq = p->seq;
        ev.has_value = true;
        ev.value = rb.data;
        ev.value_len = rb.len;
        hamok__coll_emit(&c, &ev);
        coll->u.remote.resolved = p->index;
        hamok__remote_pop(&coll->u.remote);
        if (result != NULL) {
            (void)hamok__buf_append(result, r->res.data, r->res.len); /* reserved */
        }
    }
    hamok__buf_free(&rb);
    hamok__cmd_result_clear(&obs);
    hamok__cmd_clear(&req);
    return st; /* HAMOK_OK or HAMOK_ERR_NOMEM (no effect) */
}

static hamok_status run_remote(hamok_registry *r, uint64_t index, const hamok_entry *e,
                               const hamok_cmd *cmd, hamok_hrec *rec, hamok_buf *result,
                               hamok_coll_event_fn sink, void *ud)
{
    if (cmd->op == HAMOK_OP_OUTCOME) {
        return remote_outcome(r, cmd, rec, result, sink, ud);
    }
    return remote_request(r, index, e, cmd, rec, result, sink, ud);
}

/* ------------------------------------------------------------------------- */

static hamok_status run_command(hamok_registry *r, uint64_t index, const hamok_entry *e,
                                const hamok_cmd *cmd, hamok_buf *result, hamok_coll_event_fn sink,
                                void *ud)
{
    hamok_hrec *rec = hamok__hmap_find(&r->colls, cmd->name, cmd->name_len);
    if (rec != NULL && coll_of(rec)->kind != cmd->kind) {
        return answer_status(r, e, result, HAMOK_ERR_WRONG_KIND);
    }
    if (cmd->kind == HAMOK_KIND_REMOTE_MAP) {
        return run_remote(r, index, e, cmd, rec, result, sink, ud);
    }
    if (!kind_supports(cmd->kind, cmd->op)) {
        return answer_status(r, e, result, HAMOK_ERR_INVALID);
    }
    hamok_hrec *fresh = NULL; /* a collection this command creates */
    if (rec == NULL) {
        fresh = coll_make(cmd->kind, cmd->name, cmd->name_len);
        if (fresh == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    hamok_coll *coll = coll_of(rec != NULL ? rec : fresh);
    size_t n_res = cmd->n_items;
    if (cmd->op == HAMOK_OP_POP) {
        uint64_t want = cmd->arg == 0 ? 1 : cmd->arg;
        size_t have = coll->u.queue.n;
        n_res = want < have ? (size_t)want : have;
        if (n_res > HAMOK_CODEC_DEFAULT_MAX_ELEMENTS) {
            n_res = HAMOK_CODEC_DEFAULT_MAX_ELEMENTS;
        }
    }
    hamok_status st = scratch_ensure(r, cmd->n_items, n_res);
    if (st != HAMOK_OK) {
        coll_unmake(fresh);
        return st;
    }
    coll_ctx c;
    memset(&c, 0, sizeof c);
    c.index = index;
    c.client = &e->client;
    c.cmd = cmd;
    c.coll = coll;
    c.sink = sink;
    c.ud = ud;
    c.res.items = r->ritems;
    c.res_cap = n_res;
    c.prep = r->prep;

    hamok_status verdict = kind_prepare(&c);
    if (verdict == HAMOK_OK) {
        hamok__buf_reset(&r->res);
        st = hamok__cmd_result_encode(&c.res, &r->res);
        if (st == HAMOK_OK && r->res.len > HAMOK_CMD_RESULT_MAX) {
            verdict = HAMOK_ERR_TOO_BIG; /* the answer would not fit a frame */
        } else if (st != HAMOK_OK) {
            verdict = st; /* NOMEM (TOO_BIG is caught just above) */
        }
    }
    if (verdict == HAMOK_OK && fresh != NULL) {
        verdict = hamok__hmap_reserve(&r->colls, 1);
    }
    if (verdict == HAMOK_OK) {
        verdict = answer_reserve(r, e, result);
    }
    if (verdict != HAMOK_OK) {
        hamok__coll_prep_release(&c, cmd->n_items);
        coll_unmake(fresh);
        if (verdict == HAMOK_ERR_NOMEM) {
            return verdict;
        }
        return answer_status(r, e, result, verdict);
    }
    /* Nothing can fail from here on. */
    if (fresh != NULL) {
        (void)hamok__hmap_put(&r->colls, fresh, NULL); /* reserved */
    }
    kind_commit(&c);
    hamok__coll_prep_release(&c, cmd->n_items);
    answer_deliver(r, e, result);
    return HAMOK_OK;
}

static hamok_status apply_command(hamok_registry *r, uint64_t index, const hamok_entry *e,
                                  hamok_buf *result, hamok_coll_event_fn sink, void *ud)
{
    const uint8_t *recorded;
    size_t recorded_len;
    switch (hamok__sessions_check(r->sessions, &e->client, e->seq, &recorded, &recorded_len)) {
    case HAMOK_SESSION_DUPLICATE:
        if (recorded_len == sizeof PENDING_MARK && recorded[0] == PENDING_MARK[0]) {
            return HAMOK_OK; /* a queued remote-map request: answered at its outcome */
        }
        return result != NULL ? hamok__buf_append(result, recorded, recorded_len) : HAMOK_OK;
    case HAMOK_SESSION_EXPIRED: {
        /* Not recorded: the window has moved past it for good. */
        hamok_status st = encode_status(r, HAMOK_ERR_EXPIRED);
        if (st == HAMOK_OK && result != NULL) {
            st = hamok__buf_append(result, r->res.data, r->res.len);
        }
        return st;
    }
    default: break;
    }
    /* Decoded in place: the command borrows from the entry. */
    hamok_cmd cmd;
    hamok_status st = hamok__cmd_decode_view(e->data, e->len, &cmd, r->citems, r->citems_cap);
    if (st == HAMOK_ERR_BUSY) {
        size_t need = cmd.n_items;
        hamok_cmd_item *p = hamok__realloc(r->citems, need * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        r->citems = p;
        r->citems_cap = need;
        st = hamok__cmd_decode_view(e->data, e->len, &cmd, r->citems, r->citems_cap);
    }
    if (st != HAMOK_OK) {
        return answer_status(r, e, result, HAMOK_ERR_CODEC); /* every peer decides the same */
    }
    return run_command(r, index, e, &cmd, result, sink, ud);
}

typedef struct members_view {
    const hamok_member *m;
    size_t n;
} members_view;

static bool is_member(void *ud, const hamok_id *peer)
{
    const members_view *mv = ud;
    for (size_t i = 0; i < mv->n; i++) {
        if (hamok__id_eq(&mv->m[i].id, peer)) {
            return true;
        }
    }
    return false;
}

static hamok_status apply_config(hamok_registry *r, uint64_t index, const hamok_entry *e,
                                 hamok_coll_event_fn sink, void *ud)
{
    hamok_member *members = NULL;
    size_t n = 0;
    hamok_status st = hamok__codec_decode_config(e->data, e->len, &members, &n);
    if (st == HAMOK_ERR_NOMEM) {
        return st;
    }
    if (st != HAMOK_OK) {
        return HAMOK_OK; /* not a configuration: the Raft core never commits one */
    }
    st = hamok__sessions_expire(r->sessions, members, n);
    if (st != HAMOK_OK) {
        hamok__members_free(members, n);
        return st; /* NOMEM, nothing changed */
    }
    members_view mv = {members, n};
    size_t cur = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(&r->colls, &cur, &rec)) {
        hamok_coll *coll = coll_of(rec);
        if (coll->kind != HAMOK_KIND_EMITTER) {
            continue;
        }
        coll_ctx c;
        ctx_for(&c, index, coll, sink, ud);
        hamok__emitter_retain(&c, is_member, &mv);
    }
    hamok__members_free(members, n);
    return HAMOK_OK;
}

hamok_status hamok__registry_apply(hamok_registry *r, uint64_t index, const hamok_entry *entry,
                                   hamok_buf *result, hamok_coll_event_fn sink, void *ud)
{
    if (r == NULL || entry == NULL || index <= r->applied) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = HAMOK_OK;
    switch (entry->type) {
    case HAMOK_ENTRY_COMMAND: st = apply_command(r, index, entry, result, sink, ud); break;
    case HAMOK_ENTRY_CONFIG: st = apply_config(r, index, entry, sink, ud); break;
    default: break; /* NOOP */
    }
    scratch_trim(r);
    if (st == HAMOK_OK) {
        r->applied = index;
    }
    return st;
}

/* ------------------------------------------------------------------------- */
/* Reads */

hamok_status hamok__registry_lookup(const hamok_registry *r, uint8_t kind, const uint8_t *name,
                                    size_t name_len, const hamok_coll **out)
{
    *out = NULL;
    const hamok_hrec *rec = hamok__hmap_find(&r->colls, name, name_len);
    if (rec == NULL) {
        return HAMOK_ERR_NOT_FOUND;
    }
    const hamok_coll *c = coll_of(rec);
    if (c->kind != kind) {
        return HAMOK_ERR_WRONG_KIND;
    }
    *out = c;
    return HAMOK_OK;
}

bool hamok__registry_next_coll(const hamok_registry *r, size_t *cursor, const hamok_coll **out)
{
    hamok_hrec *rec;
    if (!hamok__hmap_next(&r->colls, cursor, &rec)) {
        return false;
    }
    *out = coll_of(rec);
    return true;
}

size_t hamok__registry_count(const hamok_registry *r)
{
    return hamok__hmap_size(&r->colls);
}

uint8_t hamok__coll_kind(const hamok_coll *c)
{
    return c->kind;
}

const uint8_t *hamok__coll_name(const hamok_coll *c, size_t *len)
{
    *len = c->name_len;
    return c->name;
}

size_t hamok__coll_size(const hamok_coll *c)
{
    switch (c->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: return hamok__hmap_size(&c->u.map);
    case HAMOK_KIND_QUEUE: return c->u.queue.n;
    case HAMOK_KIND_EMITTER: return c->u.em.n_subs;
    case HAMOK_KIND_REMOTE_MAP: return c->u.remote.n;
    default: return 0;
    }
}

bool hamok__coll_get(const hamok_coll *c, const uint8_t *key, size_t key_len, const uint8_t **value,
                     size_t *value_len)
{
    if (c->kind != HAMOK_KIND_MAP && c->kind != HAMOK_KIND_RECORD) {
        return false;
    }
    const hamok_hrec *rec = hamok__hmap_find(&c->u.map, key, key_len);
    if (rec == NULL) {
        return false;
    }
    *value = hamok__hrec_cvalue(rec);
    *value_len = rec->vlen;
    return true;
}

static void view_sub(hamok_coll_view *out, const hamok_hrec *event_rec, const coll_sub *s)
{
    out->key = hamok__hrec_key(event_rec);
    out->key_len = event_rec->klen;
    out->peer = s->peer;
    if (s->meta != NULL) {
        out->has_value = true;
        out->value = s->meta;
        out->value_len = s->meta_len;
    }
}

bool hamok__coll_next(const hamok_coll *c, size_t *cursor, hamok_coll_view *out)
{
    memset(out, 0, sizeof *out);
    switch (c->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: {
        hamok_hrec *rec;
        if (!hamok__hmap_next(&c->u.map, cursor, &rec)) {
            return false;
        }
        out->key = hamok__hrec_key(rec);
        out->key_len = rec->klen;
        out->has_value = true;
        out->value = hamok__hrec_cvalue(rec);
        out->value_len = rec->vlen;
        return true;
    }
    case HAMOK_KIND_QUEUE: {
        if (*cursor >= c->u.queue.n) {
            return false;
        }
        const hamok_hrec *item = hamok__queue_at(&c->u.queue, (*cursor)++);
        out->has_value = true;
        out->value = hamok__hrec_cvalue(item);
        out->value_len = item->vlen;
        return true;
    }
    case HAMOK_KIND_EMITTER: {
        /* The cursor counts subscriptions: skip whole events to reach it. */
        size_t k = *cursor;
        size_t cur = 0;
        hamok_hrec *rec;
        while (hamok__hmap_next(&c->u.em.events, &cur, &rec)) {
            const coll_event *ev = hamok__event_of(rec);
            if (k < ev->n) {
                view_sub(out, rec, &ev->v[k]);
                (*cursor)++;
                return true;
            }
            k -= ev->n;
        }
        return false;
    }
    default: return false;
    }
}

bool hamok__coll_next_subscriber(const hamok_coll *c, const uint8_t *event, size_t event_len,
                                 size_t *cursor, hamok_coll_view *out)
{
    memset(out, 0, sizeof *out);
    if (c->kind != HAMOK_KIND_EMITTER) {
        return false;
    }
    const hamok_hrec *rec = hamok__hmap_find(&c->u.em.events, event, event_len);
    if (rec == NULL) {
        return false;
    }
    const coll_event *ev = hamok__event_of(rec);
    if (*cursor >= ev->n) {
        return false;
    }
    view_sub(out, rec, &ev->v[(*cursor)++]);
    return true;
}

bool hamok__coll_peek(const hamok_coll *c, const uint8_t **value, size_t *value_len)
{
    if (c->kind != HAMOK_KIND_QUEUE || c->u.queue.n == 0) {
        return false;
    }
    const hamok_hrec *item = hamok__queue_at(&c->u.queue, 0);
    *value = hamok__hrec_cvalue(item);
    *value_len = item->vlen;
    return true;
}

bool hamok__coll_subscribed(const hamok_coll *c, const uint8_t *event, size_t event_len,
                            const hamok_id *peer, bool *has_meta, const uint8_t **meta,
                            size_t *meta_len)
{
    if (c->kind != HAMOK_KIND_EMITTER) {
        return false;
    }
    const hamok_hrec *rec = hamok__hmap_find(&c->u.em.events, event, event_len);
    if (rec == NULL) {
        return false;
    }
    const coll_event *ev = hamok__event_of(rec);
    for (size_t i = 0; i < ev->n; i++) {
        if (hamok__id_eq(&ev->v[i].peer, peer)) {
            if (has_meta != NULL) {
                *has_meta = ev->v[i].meta != NULL;
            }
            if (meta != NULL) {
                *meta = ev->v[i].meta;
            }
            if (meta_len != NULL) {
                *meta_len = ev->v[i].meta_len;
            }
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------- */
/* Snapshot: little-endian, CRC32C over everything before the trailer.
 *
 *   "HREG" version:u32=1 applied:u64
 *   sessions_len:u32 sessions (hamok__sessions_snapshot's own checked form)
 *   n_colls:u64, then per collection, in registry order:
 *     kind:u8 name_len:u8 name
 *     MAP, RECORD  n:u64  n x { klen:u32 key vlen:u32 value }   (insertion order)
 *     QUEUE        n:u64  n x { len:u32 item }                  (head to tail)
 *     EMITTER      n_events:u64  n_events x { elen:u32 event n_subs:u64 (>= 1)
 *                    n_subs x { peer:16 has_meta:u8 [mlen:u32 meta] } }
 *     REMOTE_MAP   epoch_client:16 epoch_index:u64 resolved:u64
 *                  n:u64  n x { index:u64 client:16 seq:u64 len:u32 command }
 *                  (pending requests, oldest first; never the data)
 *   crc:u32 */

static const uint8_t SNAP_MAGIC[4] = {'H', 'R', 'E', 'G'};
#define SNAP_VERSION 1u
#define SNAP_CHUNK   (64u * 1024u)

typedef struct snapw {
    hamok_write_fn write;
    void *ud;
    uint8_t *buf;
    size_t len;
    uint32_t crc;
    hamok_status err;
} snapw;

static void w_flush(snapw *w)
{
    if (w->err == HAMOK_OK && w->len > 0) {
        w->err = w->write(w->ud, w->buf, w->len);
    }
    w->len = 0;
}

static void w_bytes(snapw *w, const void *p, size_t n)
{
    if (w->err != HAMOK_OK || n == 0) {
        return;
    }
    w->crc = hamok__crc32c_update(w->crc, p, n);
    if (n > SNAP_CHUNK - w->len) {
        w_flush(w);
        if (n >= SNAP_CHUNK) {
            if (w->err == HAMOK_OK) {
                w->err = w->write(w->ud, p, n); /* big values go straight through */
            }
            return;
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void w_u8(snapw *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_u32(snapw *w, uint64_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, x, 4);
}

static void w_u64(snapw *w, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    w_bytes(w, x, 8);
}

static void snap_coll(snapw *w, const hamok_coll *c)
{
    w_u8(w, c->kind);
    w_u8(w, (uint8_t)c->name_len);
    w_bytes(w, c->name, c->name_len);
    switch (c->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: {
        w_u64(w, hamok__hmap_size(&c->u.map));
        size_t cur = 0;
        hamok_hrec *rec;
        while (hamok__hmap_next(&c->u.map, &cur, &rec)) {
            w_u32(w, rec->klen);
            w_bytes(w, hamok__hrec_key(rec), rec->klen);
            w_u32(w, rec->vlen);
            w_bytes(w, hamok__hrec_cvalue(rec), rec->vlen);
        }
        break;
    }
    case HAMOK_KIND_QUEUE:
        w_u64(w, c->u.queue.n);
        for (size_t i = 0; i < c->u.queue.n; i++) {
            const hamok_hrec *item = hamok__queue_at(&c->u.queue, i);
            w_u32(w, item->vlen);
            w_bytes(w, hamok__hrec_cvalue(item), item->vlen);
        }
        break;
    case HAMOK_KIND_EMITTER: {
        w_u64(w, hamok__hmap_size(&c->u.em.events));
        size_t cur = 0;
        hamok_hrec *rec;
        while (hamok__hmap_next(&c->u.em.events, &cur, &rec)) {
            const coll_event *ev = hamok__event_of(rec);
            w_u32(w, rec->klen);
            w_bytes(w, hamok__hrec_key(rec), rec->klen);
            w_u64(w, ev->n);
            for (size_t i = 0; i < ev->n; i++) {
                const coll_sub *s = &ev->v[i];
                w_bytes(w, s->peer.b, HAMOK_ID_LEN);
                w_u8(w, s->meta != NULL ? 1 : 0);
                if (s->meta != NULL) {
                    w_u32(w, s->meta_len);
                    w_bytes(w, s->meta, s->meta_len);
                }
            }
        }
        break;
    }
    case HAMOK_KIND_REMOTE_MAP: {
        const coll_remote *rm = &c->u.remote;
        w_bytes(w, rm->epoch_client.b, HAMOK_ID_LEN);
        w_u64(w, rm->epoch_index);
        w_u64(w, rm->resolved);
        w_u64(w, rm->n);
        for (size_t i = 0; i < rm->n; i++) {
            const coll_pend *p = &rm->v[rm->head + i];
            w_u64(w, p->index);
            w_bytes(w, p->client.b, HAMOK_ID_LEN);
            w_u64(w, p->seq);
            w_u32(w, p->len);
            w_bytes(w, p->cmd, p->len);
        }
        break;
    }
    default: break;
    }
}

hamok_status hamok__registry_snapshot(const hamok_registry *r, hamok_write_fn write, void *ud)
{
    if (r == NULL || write == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_buf sessions = HAMOK_BUF_INIT;
    hamok_status st = hamok__sessions_snapshot(r->sessions, &sessions);
    if (st != HAMOK_OK) {
        hamok__buf_free(&sessions);
        return st;
    }
    if (sessions.len > UINT32_MAX) {
        hamok__buf_free(&sessions);
        return HAMOK_ERR_TOO_BIG;
    }
    snapw w = {write, ud, hamok__malloc(SNAP_CHUNK), 0, 0, HAMOK_OK};
    if (w.buf == NULL) {
        hamok__buf_free(&sessions);
        return HAMOK_ERR_NOMEM;
    }
    w_bytes(&w, SNAP_MAGIC, sizeof SNAP_MAGIC);
    w_u32(&w, SNAP_VERSION);
    w_u64(&w, r->applied);
    w_u32(&w, sessions.len);
    w_bytes(&w, sessions.data, sessions.len);
    hamok__buf_free(&sessions);
    w_u64(&w, hamok__hmap_size(&r->colls));
    size_t cur = 0;
    hamok_hrec *rec;
    while (w.err == HAMOK_OK && hamok__hmap_next(&r->colls, &cur, &rec)) {
        snap_coll(&w, coll_of(rec));
    }
    uint32_t crc = w.crc;
    uint8_t x[4] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    w_bytes(&w, x, 4); /* (updates w.crc, no longer used) */
    w_flush(&w);
    hamok__free(w.buf);
    return w.err;
}

/* ------------------------------------------------------------------------- */
/* Restore */

typedef struct snapr {
    const uint8_t *p;
    size_t left;
} snapr;

static bool r_bytes(snapr *rd, const uint8_t **p, size_t n)
{
    if (rd->left < n) {
        return false;
    }
    *p = rd->p;
    rd->p += n;
    rd->left -= n;
    return true;
}

static bool r_u8(snapr *rd, uint8_t *v)
{
    const uint8_t *p;
    if (!r_bytes(rd, &p, 1)) {
        return false;
    }
    *v = p[0];
    return true;
}

static bool r_u32(snapr *rd, uint32_t *v)
{
    const uint8_t *p;
    if (!r_bytes(rd, &p, 4)) {
        return false;
    }
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return true;
}

static bool r_u64(snapr *rd, uint64_t *v)
{
    const uint8_t *p;
    if (!r_bytes(rd, &p, 8)) {
        return false;
    }
    *v = 0;
    for (int i = 7; i >= 0; i--) {
        *v = (*v << 8) | p[i];
    }
    return true;
}

/* A count of things of at least `min_bytes` each that must fit what is left. */
static bool r_count(snapr *rd, size_t min_bytes, size_t *n)
{
    uint64_t v;
    if (!r_u64(rd, &v) || v > rd->left / min_bytes) {
        return false;
    }
    *n = (size_t)v;
    return true;
}

/* A length-prefixed byte string. */
static bool r_blob(snapr *rd, const uint8_t **p, size_t *n)
{
    uint32_t len;
    if (!r_u32(rd, &len) || !r_bytes(rd, p, len)) {
        return false;
    }
    *n = len;
    return true;
}

#define RTRY(cond)                    \
    do {                              \
        if (!(cond)) {                \
            return HAMOK_ERR_CORRUPT; \
        }                             \
    } while (0)
#define STRY(expr)                   \
    do {                             \
        hamok_status stry_ = (expr); \
        if (stry_ != HAMOK_OK) {     \
            return stry_;            \
        }                            \
    } while (0)

static hamok_status restore_map(snapr *rd, hamok_coll *c)
{
    size_t n;
    RTRY(r_count(rd, 8, &n));
    STRY(hamok__hmap_reserve(&c->u.map, n));
    for (size_t i = 0; i < n; i++) {
        const uint8_t *k, *v;
        size_t klen, vlen;
        RTRY(r_blob(rd, &k, &klen) && r_blob(rd, &v, &vlen));
        RTRY(hamok__hmap_find(&c->u.map, k, klen) == NULL); /* duplicate key */
        hamok_hrec *rec = hamok__hrec_new(k, klen, v, vlen);
        if (rec == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        (void)hamok__hmap_put(&c->u.map, rec, NULL); /* reserved */
    }
    return HAMOK_OK;
}

static hamok_status restore_queue(snapr *rd, hamok_coll *c)
{
    size_t n;
    RTRY(r_count(rd, 4, &n));
    STRY(hamok__queue_reserve(&c->u.queue, n));
    for (size_t i = 0; i < n; i++) {
        const uint8_t *v;
        size_t vlen;
        RTRY(r_blob(rd, &v, &vlen));
        hamok_hrec *item = hamok__hrec_new(NULL, 0, v, vlen);
        if (item == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        hamok__queue_push(&c->u.queue, item);
    }
    return HAMOK_OK;
}

/* n subscribers into ev (room for n); `seen` tracks peers when n is large
 * (n^2 compares otherwise). */
static hamok_status restore_subs(snapr *rd, coll_emitter *em, coll_event *ev, size_t n,
                                 hamok_hmap *seen)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *peer;
        uint8_t has_meta;
        RTRY(r_bytes(rd, &peer, HAMOK_ID_LEN) && r_u8(rd, &has_meta) && has_meta <= 1);
        coll_sub s;
        memset(&s, 0, sizeof s);
        memcpy(s.peer.b, peer, HAMOK_ID_LEN);
        RTRY(!hamok__id_is_nil(&s.peer));
        if (n <= 32) {
            for (size_t j = 0; j < ev->n; j++) {
                RTRY(!hamok__id_eq(&ev->v[j].peer, &s.peer)); /* duplicate subscriber */
            }
        } else {
            RTRY(hamok__hmap_find(seen, s.peer.b, HAMOK_ID_LEN) == NULL);
            STRY(hamok__hmap_set(seen, s.peer.b, HAMOK_ID_LEN, NULL, 0));
        }
        if (has_meta) {
            const uint8_t *m;
            RTRY(r_blob(rd, &m, &s.meta_len));
            s.meta = hamok__memdup(m, s.meta_len);
            if (s.meta == NULL) {
                return HAMOK_ERR_NOMEM;
            }
        }
        ev->v[ev->n++] = s;
        em->n_subs++;
    }
    return HAMOK_OK;
}

static hamok_status restore_event(snapr *rd, coll_emitter *em)
{
    const uint8_t *name;
    size_t name_len, n;
    RTRY(r_blob(rd, &name, &name_len));
    RTRY(hamok__hmap_find(&em->events, name, name_len) == NULL); /* duplicate event */
    RTRY(r_count(rd, HAMOK_ID_LEN + 1, &n) && n > 0);            /* no empty events */
    coll_event *ev = hamok__calloc(1, sizeof *ev);
    if (ev == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_hrec *rec = hamok__hrec_new(name, name_len, &ev, sizeof ev);
    if (rec == NULL || hamok__hmap_put(&em->events, rec, NULL) != HAMOK_OK) {
        hamok__hrec_free(rec);
        hamok__event_free(ev);
        return HAMOK_ERR_NOMEM;
    }
    /* From here ev belongs to the table (freed with the collection). */
    ev->v = hamok__malloc(n * sizeof *ev->v);
    if (ev->v == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    ev->cap = n;
    hamok_hmap seen;
    hamok__hmap_init(&seen, HAMOK_HMAP_SEED);
    hamok_status st = restore_subs(rd, em, ev, n, &seen);
    hamok__hmap_clear(&seen);
    return st;
}

/* Pending requests: increasing indices after `resolved`, none beyond the
 * snapshot's applied index, each a valid request on this map. */
static hamok_status restore_remote(snapr *rd, hamok_coll *c, uint64_t applied)
{
    coll_remote *rm = &c->u.remote;
    const uint8_t *id;
    size_t n;
    RTRY(r_bytes(rd, &id, HAMOK_ID_LEN));
    memcpy(rm->epoch_client.b, id, HAMOK_ID_LEN);
    RTRY(r_u64(rd, &rm->epoch_index) && r_u64(rd, &rm->resolved));
    RTRY(r_count(rd, 8 + HAMOK_ID_LEN + 8 + 4, &n));
    STRY(hamok__remote_reserve(rm, n));
    uint64_t prev = rm->resolved;
    for (size_t i = 0; i < n; i++) {
        coll_pend p;
        const uint8_t *cmd;
        RTRY(r_u64(rd, &p.index) && p.index > prev && p.index <= applied);
        RTRY(r_bytes(rd, &id, HAMOK_ID_LEN));
        memcpy(p.client.b, id, HAMOK_ID_LEN);
        RTRY(r_u64(rd, &p.seq) && r_blob(rd, &cmd, &p.len));
        hamok_cmd req;
        hamok_status st = hamok__cmd_decode(cmd, p.len, &req);
        if (st == HAMOK_ERR_NOMEM) {
            return st;
        }
        RTRY(st == HAMOK_OK);
        bool ok = req.kind == HAMOK_KIND_REMOTE_MAP &&
                  hamok__bytes_eq(req.name, req.name_len, c->name, c->name_len);
        st = ok ? hamok__remote_check(&req) : HAMOK_ERR_INVALID;
        hamok__cmd_clear(&req);
        if (st == HAMOK_ERR_NOMEM) {
            return st;
        }
        RTRY(st == HAMOK_OK);
        p.cmd = hamok__memdup(cmd, p.len);
        if (p.cmd == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        hamok__remote_push(rm, &p);
        prev = p.index;
    }
    return HAMOK_OK;
}

static hamok_status restore_coll(snapr *rd, hamok_registry *t)
{
    uint8_t kind, name_len;
    const uint8_t *name;
    RTRY(r_u8(rd, &kind) && kind >= HAMOK_KIND_MAP && kind <= HAMOK_KIND_REMOTE_MAP);
    RTRY(r_u8(rd, &name_len) && name_len > 0 && r_bytes(rd, &name, name_len));
    RTRY(hamok__hmap_find(&t->colls, name, name_len) == NULL); /* duplicate name */
    hamok_hrec *rec = coll_make(kind, name, name_len);
    if (rec == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    if (hamok__hmap_put(&t->colls, rec, NULL) != HAMOK_OK) {
        coll_unmake(rec);
        return HAMOK_ERR_NOMEM;
    }
    hamok_coll *c = coll_of(rec); /* owned by t from here */
    switch (kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD: return restore_map(rd, c);
    case HAMOK_KIND_QUEUE: return restore_queue(rd, c);
    case HAMOK_KIND_REMOTE_MAP: return restore_remote(rd, c, t->applied);
    default: {
        size_t n;
        RTRY(r_count(rd, 4 + 8 + HAMOK_ID_LEN + 1, &n));
        for (size_t i = 0; i < n; i++) {
            STRY(restore_event(rd, &c->u.em));
        }
        return HAMOK_OK;
    }
    }
}

static hamok_status restore_parse(hamok_registry *t, const uint8_t *data, size_t len)
{
    RTRY(len >= sizeof SNAP_MAGIC + 4 + 8 + 4 + 8 + 4);
    RTRY(memcmp(data, SNAP_MAGIC, sizeof SNAP_MAGIC) == 0);
    uint32_t crc = (uint32_t)data[len - 4] | (uint32_t)data[len - 3] << 8 |
                   (uint32_t)data[len - 2] << 16 | (uint32_t)data[len - 1] << 24;
    RTRY(hamok__crc32c(data, len - 4) == crc);
    snapr rd = {data + sizeof SNAP_MAGIC, len - sizeof SNAP_MAGIC - 4};
    uint32_t version;
    RTRY(r_u32(&rd, &version) && version == SNAP_VERSION);
    RTRY(r_u64(&rd, &t->applied));
    const uint8_t *sessions;
    size_t sessions_len;
    RTRY(r_blob(&rd, &sessions, &sessions_len));
    STRY(hamok__sessions_restore(t->sessions, sessions, sessions_len));
    size_t n;
    RTRY(r_count(&rd, 2 + 1 + 8, &n));
    for (size_t i = 0; i < n; i++) {
        STRY(restore_coll(&rd, t));
    }
    RTRY(rd.left == 0);
    return HAMOK_OK;
}

hamok_status hamok__registry_restore(hamok_registry *r, const uint8_t *data, size_t len)
{
    if (r == NULL) {
        return HAMOK_ERR_INVALID;
    }
    if (data == NULL) {
        return HAMOK_ERR_CORRUPT;
    }
    hamok_registry *t;
    hamok_status st = hamok__registry_new(&t, r->window);
    if (st != HAMOK_OK) {
        return st;
    }
    st = restore_parse(t, data, len);
    if (st != HAMOK_OK) {
        hamok__registry_destroy(&t);
        return st;
    }
    /* Swap: r takes t's state, t takes r's (then destroyed). */
    hamok_registry tmp = *r;
    *r = *t;
    *t = tmp;
    hamok__registry_destroy(&t);
    return HAMOK_OK;
}
