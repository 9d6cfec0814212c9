/* Collection handles and the map API (include/hamok/map.h): commands are
 * built here, proposed through the node, and their results decoded. */
#include <string.h>

#include "hamok/emitter.h"
#include "hamok/map.h"
#include "hamok/queue.h"
#include "hamok/record.h"
#include "node/coll_int.h"
#include "util/alloc.h"

struct hamok_record {
    hamok_map m; /* a map of field name -> value, kind RECORD */
};

struct hamok_queue {
    hamok_handle h;
};

/* Room for a command or a published payload in one frame: the transport's
 * frame limit less the envelope and the message around it. */
#define FRAME_ROOM(node)   ((size_t)hamok__node_frame_limit(node) - 2048u)
#define MAX_EMIT_LISTENERS 64

typedef struct emit_listener {
    char *event;
    hamok_emitter_fn fn;
    void *ud;
} emit_listener;

struct hamok_emitter {
    hamok_handle h;
    /* Listeners of published events (under h.mu). */
    emit_listener ls[MAX_EMIT_LISTENERS];
    size_t n_ls;
};

/* ------------------------------------------------------------------------ */
/* Values */

void hamok_value_free(hamok_value *v)
{
    if (v == NULL) {
        return;
    }
    hamok__free(v->data);
    v->data = NULL;
    v->len = 0;
    v->present = false;
}

static hamok_status value_set(hamok_value *v, const void *data, size_t len)
{
    if (v == NULL) {
        return HAMOK_OK;
    }
    uint8_t *p = hamok__malloc(len + 1);
    if (p == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    if (len > 0) {
        memcpy(p, data, len);
    }
    p[len] = 0;
    v->data = p;
    v->len = len;
    v->present = true;
    return HAMOK_OK;
}

void hamok_kvs_free(hamok_kvs *kvs)
{
    if (kvs == NULL) {
        return;
    }
    for (size_t i = 0; i < kvs->n; i++) {
        hamok__free((void *)kvs->items[i].key);
        hamok__free((void *)kvs->items[i].value);
    }
    hamok__free(kvs->items);
    kvs->items = NULL;
    kvs->n = 0;
}

static hamok_status kvs_push(hamok_kvs *kvs, size_t *cap, const void *k, size_t kl, bool hv,
                             const void *v, size_t vl)
{
    if (kvs->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        hamok_kv *p = hamok__realloc(kvs->items, nc * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        kvs->items = p;
        *cap = nc;
    }
    hamok_kv *e = &kvs->items[kvs->n];
    memset(e, 0, sizeof *e);
    e->key = hamok__memdup(kl ? k : "", kl ? kl : 1);
    e->value = hv ? hamok__memdup(vl ? v : "", vl ? vl : 1) : NULL;
    if (e->key == NULL || (hv && e->value == NULL)) {
        hamok__free((void *)e->key);
        hamok__free((void *)e->value);
        return HAMOK_ERR_NOMEM;
    }
    e->key_len = kl;
    e->has_value = hv;
    e->value_len = hv ? vl : 0;
    kvs->n++;
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------ */
/* Handles */

static hamok_status handle_init(hamok_handle *h, hamok_node *n, uint8_t kind, const char *name)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (n == NULL || len == 0 || len > HAMOK_NAME_MAX) {
        return HAMOK_ERR_INVALID;
    }
    hamok__node_read_lock(n);
    const hamok_coll *c;
    hamok_status st =
        hamok__registry_lookup(hamok__node_registry(n), kind, (const uint8_t *)name, len, &c);
    hamok__node_read_unlock(n);
    if (st == HAMOK_ERR_WRONG_KIND) {
        return st;
    }
    h->node = n;
    h->kind = kind;
    memcpy(h->name, name, len);
    h->name_len = len;
    pthread_mutex_init(&h->mu, NULL);
    st = hamok__node_add_handle(n, h);
    if (st != HAMOK_OK) {
        pthread_mutex_destroy(&h->mu);
    }
    return st;
}

static void handle_fini(hamok_handle *h)
{
    if (!h->closed) {
        hamok__node_remove_handle(h->node, h);
    }
    pthread_mutex_destroy(&h->mu);
}

void hamok__node_close_handles(hamok_node *n)
{
    (void)n; /* handles are owned by the application; nothing is freed here */
}

bool hamok__handle_matches(const hamok_handle *h, const hamok_coll_event *ev)
{
    return h->kind == ev->kind && h->name_len == ev->name_len &&
           memcmp(h->name, ev->name, ev->name_len) == 0;
}

static hamok_status handle_on(hamok_handle *h, void (*fn)(void *, const void *), void *ud)
{
    if (fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&h->mu);
    hamok_status st = HAMOK_ERR_NOMEM;
    if (h->n_listeners < MAX_HANDLE_LISTENERS) {
        h->listeners[h->n_listeners++] = (handle_listener){fn, ud};
        st = HAMOK_OK;
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

static hamok_status handle_off(hamok_handle *h, void (*fn)(void *, const void *), void *ud)
{
    pthread_mutex_lock(&h->mu);
    hamok_status st = HAMOK_ERR_NOT_FOUND;
    for (size_t i = 0; i < h->n_listeners; i++) {
        if (h->listeners[i].fn == fn && h->listeners[i].ud == ud) {
            memmove(&h->listeners[i], &h->listeners[i + 1],
                    (h->n_listeners - i - 1) * sizeof h->listeners[0]);
            h->n_listeners--;
            st = HAMOK_OK;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

static void map_dispatch(hamok_handle *h, const hamok_coll_event *ev, handle_listener *ls, size_t k)
{
    hamok_map_event me = {.index = ev->index,
                          .key = ev->key,
                          .key_len = ev->key_len,
                          .value = ev->value,
                          .value_len = ev->value_len,
                          .has_old = ev->has_old,
                          .old = ev->old,
                          .old_len = ev->old_len};
    switch (ev->type) {
    case HAMOK_CEV_INSERT: me.type = HAMOK_MAP_INSERT; break;
    case HAMOK_CEV_UPDATE: me.type = HAMOK_MAP_UPDATE; break;
    case HAMOK_CEV_REMOVE: me.type = HAMOK_MAP_REMOVE; break;
    case HAMOK_CEV_CLEAR: me.type = HAMOK_MAP_CLEAR; break;
    default: return;
    }
    (void)h;
    for (size_t i = 0; i < k; i++) {
        ((hamok_map_event_fn)(void (*)(void))ls[i].fn)(ls[i].ud, &me);
    }
}

static void queue_dispatch(const hamok_coll_event *ev, handle_listener *ls, size_t k)
{
    hamok_queue_event qe = {.index = ev->index, .item = ev->value, .len = ev->value_len};
    switch (ev->type) {
    case HAMOK_CEV_ADD: qe.type = HAMOK_QUEUE_ADD; break;
    case HAMOK_CEV_REMOVE: qe.type = HAMOK_QUEUE_REMOVE; break;
    case HAMOK_CEV_EMPTY: qe.type = HAMOK_QUEUE_EMPTY; break;
    case HAMOK_CEV_NOT_EMPTY: qe.type = HAMOK_QUEUE_NOT_EMPTY; break;
    case HAMOK_CEV_CLEAR: qe.type = HAMOK_QUEUE_CLEAR; break;
    default: return;
    }
    for (size_t i = 0; i < k; i++) {
        ((hamok_queue_event_fn)(void (*)(void))ls[i].fn)(ls[i].ud, &qe);
    }
}

static void sub_dispatch(const hamok_coll_event *ev, handle_listener *ls, size_t k)
{
    hamok_sub_event se = {.event = ev->key,
                          .event_len = ev->key_len,
                          .peer = ev->peer,
                          .has_meta = ev->has_value,
                          .meta = ev->value,
                          .meta_len = ev->value_len,
                          .has_old = ev->has_old,
                          .old = ev->old,
                          .old_len = ev->old_len};
    switch (ev->type) {
    case HAMOK_CEV_SUB_ADDED: se.type = HAMOK_SUB_ADDED; break;
    case HAMOK_CEV_SUB_UPDATED: se.type = HAMOK_SUB_UPDATED; break;
    case HAMOK_CEV_SUB_REMOVED: se.type = HAMOK_SUB_REMOVED; break;
    default: return;
    }
    for (size_t i = 0; i < k; i++) {
        ((hamok_sub_event_fn)(void (*)(void))ls[i].fn)(ls[i].ud, &se);
    }
}

void hamok__handle_dispatch(hamok_handle *h, const hamok_coll_event *ev)
{
    handle_listener copy[MAX_HANDLE_LISTENERS];
    pthread_mutex_lock(&h->mu);
    size_t k = h->n_listeners;
    memcpy(copy, h->listeners, k * sizeof copy[0]);
    pthread_mutex_unlock(&h->mu);
    if (h->kind == HAMOK_KIND_REMOTE_MAP && ev->type == HAMOK_CEV_PENDING) {
        hamok__remote_map_kick(h);
        return;
    }
    if (k == 0) {
        return;
    }
    switch (h->kind) {
    case HAMOK_KIND_MAP:
    case HAMOK_KIND_RECORD:
    case HAMOK_KIND_REMOTE_MAP: map_dispatch(h, ev, copy, k); break;
    case HAMOK_KIND_QUEUE: queue_dispatch(ev, copy, k); break;
    case HAMOK_KIND_EMITTER: sub_dispatch(ev, copy, k); break;
    default: break;
    }
}

/* ------------------------------------------------------------------------ */
/* Submitting commands */

typedef struct result_box {
    hamok_cmd_result r;
    hamok_status st;
} result_box;

static hamok_status build(const hamok_handle *h, uint8_t op, const hamok_cmd_item *items, size_t n,
                          uint64_t arg, hamok_buf *out)
{
    hamok_cmd c = {.kind = h->kind,
                   .op = op,
                   .name = (uint8_t *)h->name,
                   .name_len = h->name_len,
                   .arg = arg,
                   .items = (hamok_cmd_item *)items,
                   .n_items = n};
    hamok_status st = hamok__cmd_encode(&c, out);
    if (st == HAMOK_OK && out->len > FRAME_ROOM(h->node)) {
        return HAMOK_ERR_TOO_BIG;
    }
    return st;
}

/* Propose and wait; on HAMOK_OK *res holds the decoded result (its status
 * already turned into the return value). */
static hamok_status submit(const hamok_handle *h, uint8_t op, const hamok_cmd_item *items, size_t n,
                           uint64_t arg, int timeout_ms, hamok_cmd_result *res)
{
    memset(res, 0, sizeof *res);
    hamok_req *rq = hamok__req_new(HAMOK_REQ_SUBMIT, timeout_ms);
    if (rq == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = build(h, op, items, n, arg, &rq->cmd);
    if (st != HAMOK_OK) {
        hamok__buf_free(&rq->cmd);
        hamok__free(rq);
        return st;
    }
    hamok_waiter w;
    hamok__waiter_init(&w);
    rq->w = &w;
    st = hamok__node_call(h->node, rq);
    if (st == HAMOK_OK) {
        st = hamok__cmd_result_decode(w.result.data, w.result.len, res);
        if (st == HAMOK_OK && res->status != HAMOK_OK) {
            st = (hamok_status)res->status;
            hamok__cmd_result_clear(res);
        }
    }
    hamok__waiter_fini(&w);
    return st;
}

typedef struct async_ctx {
    hamok_result_fn cb;
    void *ud;
} async_ctx;

static void async_done(void *ud, hamok_status st, const uint8_t *data, size_t len)
{
    async_ctx *a = ud;
    hamok_cmd_result r;
    memset(&r, 0, sizeof r);
    hamok_kv *views = NULL;
    hamok_result pub = {0};
    if (st == HAMOK_OK) {
        st = hamok__cmd_result_decode(data, len, &r);
        if (st == HAMOK_OK && r.status != HAMOK_OK) {
            st = (hamok_status)r.status;
        }
        if (st == HAMOK_OK && r.n_items > 0) {
            views = hamok__calloc(r.n_items, sizeof *views);
            if (views == NULL) {
                st = HAMOK_ERR_NOMEM;
            } else {
                for (size_t i = 0; i < r.n_items; i++) {
                    views[i] = (hamok_kv){r.items[i].key, r.items[i].key_len, r.items[i].has_value,
                                          r.items[i].value, r.items[i].value_len};
                }
            }
        }
        pub = (hamok_result){r.flag, views, r.n_items};
    }
    if (a->cb != NULL) {
        a->cb(a->ud, st, st == HAMOK_OK ? &pub : NULL);
    }
    hamok__free(views);
    hamok__cmd_result_clear(&r);
    hamok__free(a);
}

static void submit_async(const hamok_handle *h, uint8_t op, const hamok_cmd_item *items, size_t n,
                         uint64_t arg, int timeout_ms, hamok_result_fn cb, void *ud)
{
    async_ctx *a = hamok__malloc(sizeof *a);
    hamok_req *rq = hamok__req_new(
        HAMOK_REQ_SUBMIT, timeout_ms < 0 ? (int)hamok__node_request_timeout(h->node) : timeout_ms);
    hamok_status st =
        a == NULL || rq == NULL ? HAMOK_ERR_NOMEM : build(h, op, items, n, arg, &rq->cmd);
    if (st != HAMOK_OK) {
        if (rq != NULL) {
            hamok__buf_free(&rq->cmd);
        }
        hamok__free(rq);
        hamok__free(a);
        if (cb != NULL) {
            cb(ud, st, NULL);
        }
        return;
    }
    a->cb = cb;
    a->ud = ud;
    rq->result_fn = async_done;
    rq->ud = a;
    hamok__node_post_req(h->node, rq);
}

static hamok_cmd_item kv_item(const void *k, size_t kl, const void *v, size_t vl, bool hv)
{
    return (hamok_cmd_item){.key = (uint8_t *)k,
                            .key_len = kl,
                            .has_value = hv,
                            .value = (uint8_t *)v,
                            .value_len = vl};
}

static hamok_status check_key(const void *k, size_t kl)
{
    return (k == NULL && kl > 0) || kl > 65535 ? HAMOK_ERR_INVALID : HAMOK_OK;
}

/* One result item's value into *out (absent if none). */
static hamok_status first_value(const hamok_cmd_result *r, hamok_value *out)
{
    if (out == NULL) {
        return HAMOK_OK;
    }
    memset(out, 0, sizeof *out);
    if (r->n_items > 0 && r->items[0].has_value) {
        return value_set(out, r->items[0].value, r->items[0].value_len);
    }
    return HAMOK_OK;
}

static hamok_status items_to_kvs(const hamok_cmd_result *r, hamok_kvs *out)
{
    if (out == NULL) {
        return HAMOK_OK;
    }
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    for (size_t i = 0; i < r->n_items; i++) {
        hamok_status st = kvs_push(out, &cap, r->items[i].key, r->items[i].key_len,
                                   r->items[i].has_value, r->items[i].value, r->items[i].value_len);
        if (st != HAMOK_OK) {
            hamok_kvs_free(out);
            return st;
        }
    }
    return HAMOK_OK;
}

static hamok_status kv_items(const hamok_kv *src, size_t n, bool values, hamok_cmd_item **out)
{
    *out = NULL;
    if (n == 0 || src == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item *items = hamok__calloc(n, sizeof *items);
    if (items == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (check_key(src[i].key, src[i].key_len) != HAMOK_OK ||
            (values && src[i].value == NULL && src[i].value_len > 0)) {
            hamok__free(items);
            return HAMOK_ERR_INVALID;
        }
        items[i] = kv_item(src[i].key, src[i].key_len, src[i].value, src[i].value_len, values);
    }
    *out = items;
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------ */
/* Map */

hamok_status hamok_map_open(hamok_node *node, const char *name, hamok_map **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_map *m = hamok__calloc(1, sizeof *m);
    if (m == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = handle_init(&m->h, node, HAMOK_KIND_MAP, name);
    if (st != HAMOK_OK) {
        hamok__free(m);
        return st;
    }
    *out = m;
    return HAMOK_OK;
}

void hamok_map_close(hamok_map **mp)
{
    if (mp == NULL || *mp == NULL) {
        return;
    }
    handle_fini(&(*mp)->h);
    hamok__free(*mp);
    *mp = NULL;
}

static const hamok_coll *handle_coll(const hamok_handle *h)
{
    const hamok_coll *c = NULL;
    if (hamok__registry_lookup(hamok__node_registry(h->node), h->kind, h->name, h->name_len, &c) !=
        HAMOK_OK) {
        return NULL;
    }
    return c;
}

static const hamok_coll *map_coll(hamok_map *m)
{
    return handle_coll(&m->h); /* kind MAP, or RECORD for a record's map */
}

hamok_status hamok_map_get(hamok_map *m, const void *key, size_t key_len, hamok_value *out)
{
    if (m == NULL || out == NULL || check_key(key, key_len) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    hamok__node_read_lock(m->h.node);
    const hamok_coll *c = map_coll(m);
    const uint8_t *v;
    size_t vl;
    hamok_status st = HAMOK_ERR_NOT_FOUND;
    if (c != NULL && hamok__coll_get(c, key, key_len, &v, &vl)) {
        st = value_set(out, v, vl);
    }
    hamok__node_read_unlock(m->h.node);
    return st;
}

bool hamok_map_contains(hamok_map *m, const void *key, size_t key_len)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK) {
        return false;
    }
    hamok__node_read_lock(m->h.node);
    const hamok_coll *c = map_coll(m);
    const uint8_t *v;
    size_t vl;
    bool r = c != NULL && hamok__coll_get(c, key, key_len, &v, &vl);
    hamok__node_read_unlock(m->h.node);
    return r;
}

size_t hamok_map_size(hamok_map *m)
{
    if (m == NULL) {
        return 0;
    }
    hamok__node_read_lock(m->h.node);
    const hamok_coll *c = map_coll(m);
    size_t n = c != NULL ? hamok__coll_size(c) : 0;
    hamok__node_read_unlock(m->h.node);
    return n;
}

hamok_status hamok_map_foreach(hamok_map *m, bool (*fn)(void *ud, const hamok_kv *entry), void *ud)
{
    if (m == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok__node_read_lock(m->h.node);
    const hamok_coll *c = map_coll(m);
    size_t cursor = 0;
    hamok_coll_view v;
    while (c != NULL && hamok__coll_next(c, &cursor, &v)) {
        hamok_kv kv = {v.key, v.key_len, v.has_value, v.value, v.value_len};
        if (!fn(ud, &kv)) {
            break;
        }
    }
    hamok__node_read_unlock(m->h.node);
    return HAMOK_OK;
}

hamok_status hamok_map_entries(hamok_map *m, hamok_kvs *out)
{
    if (m == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    hamok_status st = HAMOK_OK;
    hamok__node_read_lock(m->h.node);
    const hamok_coll *c = map_coll(m);
    size_t cursor = 0;
    hamok_coll_view v;
    while (st == HAMOK_OK && c != NULL && hamok__coll_next(c, &cursor, &v)) {
        st = kvs_push(out, &cap, v.key, v.key_len, v.has_value, v.value, v.value_len);
    }
    hamok__node_read_unlock(m->h.node);
    if (st != HAMOK_OK) {
        hamok_kvs_free(out);
    }
    return st;
}

hamok_status hamok_map_set(hamok_map *m, const void *key, size_t key_len, const void *value,
                           size_t value_len, hamok_value *old, int timeout_ms)
{
    if (old != NULL) {
        memset(old, 0, sizeof *old);
    }
    if (m == NULL || check_key(key, key_len) != HAMOK_OK || (value == NULL && value_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, value, value_len, true);
    hamok_cmd_result r;
    hamok_status st = submit(&m->h, HAMOK_OP_SET, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        st = first_value(&r, old);
        hamok__cmd_result_clear(&r);
    }
    return st;
}

static hamok_status map_multi(hamok_map *m, uint8_t op, const hamok_kv *kvs, size_t n, bool values,
                              hamok_kvs *out, int timeout_ms)
{
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    if (m == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item *items;
    hamok_status st = kv_items(kvs, n, values, &items);
    if (st != HAMOK_OK) {
        return st;
    }
    hamok_cmd_result r;
    st = submit(&m->h, op, items, n, 0, timeout_ms, &r);
    hamok__free(items);
    if (st == HAMOK_OK) {
        st = items_to_kvs(&r, out);
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_map_set_all(hamok_map *m, const hamok_kv *entries, size_t n, hamok_kvs *old,
                               int timeout_ms)
{
    return map_multi(m, HAMOK_OP_SET, entries, n, true, old, timeout_ms);
}

hamok_status hamok_map_insert(hamok_map *m, const void *key, size_t key_len, const void *value,
                              size_t value_len, hamok_value *existing, int timeout_ms)
{
    if (existing != NULL) {
        memset(existing, 0, sizeof *existing);
    }
    if (m == NULL || check_key(key, key_len) != HAMOK_OK || (value == NULL && value_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, value, value_len, true);
    hamok_cmd_result r;
    hamok_status st = submit(&m->h, HAMOK_OP_INSERT, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        st = first_value(&r, existing);
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_map_insert_all(hamok_map *m, const hamok_kv *entries, size_t n,
                                  hamok_kvs *existing, int timeout_ms)
{
    return map_multi(m, HAMOK_OP_INSERT, entries, n, true, existing, timeout_ms);
}

static hamok_status map_flag(hamok_map *m, uint8_t op, const hamok_cmd_item *it, bool *flag,
                             int timeout_ms)
{
    if (flag != NULL) {
        *flag = false;
    }
    hamok_cmd_result r;
    hamok_status st = submit(&m->h, op, it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        if (flag != NULL) {
            *flag = r.flag;
        }
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_map_update_if(hamok_map *m, const void *key, size_t key_len, const void *value,
                                 size_t value_len, const void *expected, size_t expected_len,
                                 bool *updated, int timeout_ms)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK || (value == NULL && value_len > 0) ||
        (expected == NULL && expected_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, value, value_len, true);
    it.has_expected = true;
    it.expected = (uint8_t *)expected;
    it.expected_len = expected_len;
    return map_flag(m, HAMOK_OP_UPDATE_IF, &it, updated, timeout_ms);
}

hamok_status hamok_map_delete(hamok_map *m, const void *key, size_t key_len, bool *deleted,
                              int timeout_ms)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, NULL, 0, false);
    return map_flag(m, HAMOK_OP_DELETE, &it, deleted, timeout_ms);
}

hamok_status hamok_map_delete_all(hamok_map *m, const hamok_kv *keys, size_t n, hamok_kvs *deleted,
                                  int timeout_ms)
{
    return map_multi(m, HAMOK_OP_DELETE, keys, n, false, deleted, timeout_ms);
}

hamok_status hamok_map_remove(hamok_map *m, const void *key, size_t key_len, hamok_value *removed,
                              int timeout_ms)
{
    if (removed != NULL) {
        memset(removed, 0, sizeof *removed);
    }
    if (m == NULL || check_key(key, key_len) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, NULL, 0, false);
    hamok_cmd_result r;
    hamok_status st = submit(&m->h, HAMOK_OP_REMOVE, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        st = first_value(&r, removed);
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_map_remove_all(hamok_map *m, const hamok_kv *keys, size_t n, hamok_kvs *removed,
                                  int timeout_ms)
{
    return map_multi(m, HAMOK_OP_REMOVE, keys, n, false, removed, timeout_ms);
}

hamok_status hamok_map_remove_if(hamok_map *m, const void *key, size_t key_len,
                                 const void *expected, size_t expected_len, bool *removed,
                                 int timeout_ms)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK ||
        (expected == NULL && expected_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(key, key_len, NULL, 0, false);
    it.has_expected = true;
    it.expected = (uint8_t *)expected;
    it.expected_len = expected_len;
    return map_flag(m, HAMOK_OP_REMOVE_IF, &it, removed, timeout_ms);
}

hamok_status hamok_map_clear(hamok_map *m, int timeout_ms)
{
    if (m == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_result r;
    hamok_status st = submit(&m->h, HAMOK_OP_CLEAR, NULL, 0, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_map_set_str(hamok_map *m, const char *key, const char *value, hamok_value *old,
                               int timeout_ms)
{
    if (key == NULL || value == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_set(m, key, strlen(key), value, strlen(value), old, timeout_ms);
}

hamok_status hamok_map_get_str(hamok_map *m, const char *key, hamok_value *out)
{
    if (key == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_get(m, key, strlen(key), out);
}

hamok_status hamok_map_delete_str(hamok_map *m, const char *key, bool *deleted, int timeout_ms)
{
    if (key == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_delete(m, key, strlen(key), deleted, timeout_ms);
}

void hamok_map_set_async(hamok_map *m, const void *key, size_t key_len, const void *value,
                         size_t value_len, int timeout_ms, hamok_result_fn cb, void *ud)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK || (value == NULL && value_len > 0)) {
        if (cb != NULL) {
            cb(ud, HAMOK_ERR_INVALID, NULL);
        }
        return;
    }
    hamok_cmd_item it = kv_item(key, key_len, value, value_len, true);
    submit_async(&m->h, HAMOK_OP_SET, &it, 1, 0, timeout_ms, cb, ud);
}

void hamok_map_delete_async(hamok_map *m, const void *key, size_t key_len, int timeout_ms,
                            hamok_result_fn cb, void *ud)
{
    if (m == NULL || check_key(key, key_len) != HAMOK_OK) {
        if (cb != NULL) {
            cb(ud, HAMOK_ERR_INVALID, NULL);
        }
        return;
    }
    hamok_cmd_item it = kv_item(key, key_len, NULL, 0, false);
    submit_async(&m->h, HAMOK_OP_DELETE, &it, 1, 0, timeout_ms, cb, ud);
}

hamok_status hamok_map_on(hamok_map *m, hamok_map_event_fn fn, void *ud)
{
    if (m == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return handle_on(&m->h, (void (*)(void *, const void *))(void (*)(void))fn, ud);
}

hamok_status hamok_map_off(hamok_map *m, hamok_map_event_fn fn, void *ud)
{
    if (m == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return handle_off(&m->h, (void (*)(void *, const void *))(void (*)(void))fn, ud);
}

/* ------------------------------------------------------------------------ */
/* Record: a map of fields with kind RECORD */

hamok_status hamok_record_open(hamok_node *node, const char *name, hamok_record **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_record *r = hamok__calloc(1, sizeof *r);
    if (r == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = handle_init(&r->m.h, node, HAMOK_KIND_RECORD, name);
    if (st != HAMOK_OK) {
        hamok__free(r);
        return st;
    }
    *out = r;
    return HAMOK_OK;
}

void hamok_record_close(hamok_record **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    handle_fini(&(*rp)->m.h);
    hamok__free(*rp);
    *rp = NULL;
}

static hamok_status field_ok(const hamok_record *r, const char *field)
{
    return r == NULL || field == NULL ? HAMOK_ERR_INVALID : HAMOK_OK;
}

hamok_status hamok_record_get(hamok_record *r, const char *field, hamok_value *out)
{
    if (field_ok(r, field) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_get(&r->m, field, strlen(field), out);
}

hamok_status hamok_record_instance(hamok_record *r, hamok_kvs *out)
{
    if (r == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_entries(&r->m, out);
}

hamok_status hamok_record_set(hamok_record *r, const char *field, const void *value, size_t len,
                              hamok_value *old, int timeout_ms)
{
    if (field_ok(r, field) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_set(&r->m, field, strlen(field), value, len, old, timeout_ms);
}

hamok_status hamok_record_insert(hamok_record *r, const char *field, const void *value, size_t len,
                                 hamok_value *existing, int timeout_ms)
{
    if (field_ok(r, field) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_insert(&r->m, field, strlen(field), value, len, existing, timeout_ms);
}

hamok_status hamok_record_insert_instance(hamok_record *r, const hamok_kv *fields, size_t n,
                                          hamok_kvs *existing, int timeout_ms)
{
    if (r == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_insert_all(&r->m, fields, n, existing, timeout_ms);
}

hamok_status hamok_record_update_if(hamok_record *r, const char *field, const void *value,
                                    size_t len, const void *expected, size_t expected_len,
                                    bool *updated, int timeout_ms)
{
    if (field_ok(r, field) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    hamok_kv v = {field, strlen(field), true, value, len};
    hamok_kv e = {field, strlen(field), true, expected, expected_len};
    return hamok_record_update_instance_if(r, &v, 1, &e, 1, updated, timeout_ms);
}

hamok_status hamok_record_update_instance_if(hamok_record *r, const hamok_kv *values,
                                             size_t n_values, const hamok_kv *expected,
                                             size_t n_expected, bool *updated, int timeout_ms)
{
    if (updated != NULL) {
        *updated = false;
    }
    if (r == NULL || (n_values > 0 && values == NULL) || (n_expected > 0 && expected == NULL) ||
        n_values + n_expected == 0) {
        return HAMOK_ERR_INVALID;
    }
    /* One item per field: (field, value?, expected?). */
    hamok_cmd_item *items = hamok__calloc(n_values + n_expected, sizeof *items);
    if (items == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    size_t n = 0;
    hamok_status st = HAMOK_OK;
    for (size_t i = 0; i < n_values && st == HAMOK_OK; i++) {
        if (check_key(values[i].key, values[i].key_len) != HAMOK_OK ||
            (values[i].value == NULL && values[i].value_len > 0)) {
            st = HAMOK_ERR_INVALID;
            break;
        }
        items[n++] =
            kv_item(values[i].key, values[i].key_len, values[i].value, values[i].value_len, true);
    }
    for (size_t i = 0; i < n_expected && st == HAMOK_OK; i++) {
        if (check_key(expected[i].key, expected[i].key_len) != HAMOK_OK ||
            (expected[i].value == NULL && expected[i].value_len > 0)) {
            st = HAMOK_ERR_INVALID;
            break;
        }
        hamok_cmd_item *it = NULL;
        for (size_t j = 0; j < n; j++) {
            if (items[j].key_len == expected[i].key_len &&
                memcmp(items[j].key, expected[i].key, expected[i].key_len) == 0) {
                it = &items[j];
            }
        }
        if (it == NULL) {
            it = &items[n++];
            *it = kv_item(expected[i].key, expected[i].key_len, NULL, 0, false);
        }
        it->has_expected = true;
        it->expected = (uint8_t *)expected[i].value;
        it->expected_len = expected[i].value_len;
    }
    if (st == HAMOK_OK) {
        hamok_cmd_result res;
        st = submit(&r->m.h, HAMOK_OP_UPDATE_IF, items, n, 0, timeout_ms, &res);
        if (st == HAMOK_OK) {
            if (updated != NULL) {
                *updated = res.flag;
            }
            hamok__cmd_result_clear(&res);
        }
    }
    hamok__free(items);
    return st;
}

hamok_status hamok_record_delete(hamok_record *r, const char *field, bool *deleted, int timeout_ms)
{
    if (field_ok(r, field) != HAMOK_OK) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_delete(&r->m, field, strlen(field), deleted, timeout_ms);
}

hamok_status hamok_record_clear(hamok_record *r, int timeout_ms)
{
    if (r == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return hamok_map_clear(&r->m, timeout_ms);
}

hamok_status hamok_record_on(hamok_record *r, hamok_map_event_fn fn, void *ud)
{
    return r == NULL ? HAMOK_ERR_INVALID : hamok_map_on(&r->m, fn, ud);
}

hamok_status hamok_record_off(hamok_record *r, hamok_map_event_fn fn, void *ud)
{
    return r == NULL ? HAMOK_ERR_INVALID : hamok_map_off(&r->m, fn, ud);
}

/* ------------------------------------------------------------------------ */
/* Queue */

hamok_status hamok_queue_open(hamok_node *node, const char *name, hamok_queue **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_queue *q = hamok__calloc(1, sizeof *q);
    if (q == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = handle_init(&q->h, node, HAMOK_KIND_QUEUE, name);
    if (st != HAMOK_OK) {
        hamok__free(q);
        return st;
    }
    *out = q;
    return HAMOK_OK;
}

void hamok_queue_close(hamok_queue **qp)
{
    if (qp == NULL || *qp == NULL) {
        return;
    }
    handle_fini(&(*qp)->h);
    hamok__free(*qp);
    *qp = NULL;
}

hamok_status hamok_queue_push(hamok_queue *q, const void *item, size_t len, int timeout_ms)
{
    hamok_kv kv = {"", 0, true, item, len};
    return hamok_queue_push_all(q, &kv, 1, timeout_ms);
}

hamok_status hamok_queue_push_all(hamok_queue *q, const hamok_kv *items, size_t n, int timeout_ms)
{
    if (q == NULL || items == NULL || n == 0) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item *its = hamok__calloc(n, sizeof *its);
    if (its == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (items[i].value == NULL && items[i].value_len > 0) {
            hamok__free(its);
            return HAMOK_ERR_INVALID;
        }
        its[i] = kv_item("", 0, items[i].value, items[i].value_len, true);
    }
    hamok_cmd_result r;
    hamok_status st = submit(&q->h, HAMOK_OP_PUSH, its, n, 0, timeout_ms, &r);
    hamok__free(its);
    if (st == HAMOK_OK) {
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_queue_pop(hamok_queue *q, hamok_value *out, int timeout_ms)
{
    if (out != NULL) {
        memset(out, 0, sizeof *out);
    }
    if (q == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_result r;
    hamok_status st = submit(&q->h, HAMOK_OP_POP, NULL, 0, 1, timeout_ms, &r);
    if (st == HAMOK_OK) {
        st = first_value(&r, out);
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_queue_clear(hamok_queue *q, int timeout_ms)
{
    if (q == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_result r;
    hamok_status st = submit(&q->h, HAMOK_OP_CLEAR, NULL, 0, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_queue_peek(hamok_queue *q, hamok_value *out)
{
    if (q == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    hamok__node_read_lock(q->h.node);
    const hamok_coll *c = handle_coll(&q->h);
    const uint8_t *v;
    size_t vl;
    hamok_status st = HAMOK_ERR_NOT_FOUND;
    if (c != NULL && hamok__coll_peek(c, &v, &vl)) {
        st = value_set(out, v, vl);
    }
    hamok__node_read_unlock(q->h.node);
    return st;
}

size_t hamok_queue_size(hamok_queue *q)
{
    if (q == NULL) {
        return 0;
    }
    hamok__node_read_lock(q->h.node);
    const hamok_coll *c = handle_coll(&q->h);
    size_t n = c != NULL ? hamok__coll_size(c) : 0;
    hamok__node_read_unlock(q->h.node);
    return n;
}

hamok_status hamok_queue_foreach(hamok_queue *q, bool (*fn)(void *ud, const void *item, size_t len),
                                 void *ud)
{
    if (q == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok__node_read_lock(q->h.node);
    const hamok_coll *c = handle_coll(&q->h);
    size_t cursor = 0;
    hamok_coll_view v;
    while (c != NULL && hamok__coll_next(c, &cursor, &v)) {
        if (!fn(ud, v.value, v.value_len)) {
            break;
        }
    }
    hamok__node_read_unlock(q->h.node);
    return HAMOK_OK;
}

hamok_status hamok_queue_on(hamok_queue *q, hamok_queue_event_fn fn, void *ud)
{
    if (q == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return handle_on(&q->h, (void (*)(void *, const void *))(void (*)(void))fn, ud);
}

hamok_status hamok_queue_off(hamok_queue *q, hamok_queue_event_fn fn, void *ud)
{
    if (q == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return handle_off(&q->h, (void (*)(void *, const void *))(void (*)(void))fn, ud);
}

/* ------------------------------------------------------------------------ */
/* Emitter */

hamok_status hamok_emitter_open(hamok_node *node, const char *name, hamok_emitter **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_emitter *e = hamok__calloc(1, sizeof *e);
    if (e == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = handle_init(&e->h, node, HAMOK_KIND_EMITTER, name);
    if (st != HAMOK_OK) {
        hamok__free(e);
        return st;
    }
    *out = e;
    return HAMOK_OK;
}

void hamok_emitter_close(hamok_emitter **ep)
{
    if (ep == NULL || *ep == NULL) {
        return;
    }
    hamok_emitter *e = *ep;
    handle_fini(&e->h);
    for (size_t i = 0; i < e->n_ls; i++) {
        hamok__free(e->ls[i].event);
    }
    hamok__free(e);
    *ep = NULL;
}

bool hamok__handle_emit(hamok_handle *h, const uint8_t *name, size_t name_len, const uint8_t *event,
                        size_t event_len, const uint8_t *payload, size_t payload_len,
                        const hamok_id *from)
{
    if (h->kind != HAMOK_KIND_EMITTER || h->name_len != name_len ||
        memcmp(h->name, name, name_len) != 0) {
        return false;
    }
    hamok_emitter *e = (hamok_emitter *)h;
    emit_listener copy[MAX_EMIT_LISTENERS];
    size_t k = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < e->n_ls; i++) {
        if (strlen(e->ls[i].event) == event_len && memcmp(e->ls[i].event, event, event_len) == 0) {
            copy[k++] = e->ls[i];
        }
    }
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < k; i++) {
        copy[i].fn(copy[i].ud, copy[i].event, payload, payload_len, from);
    }
    return k > 0;
}

static size_t local_listeners(hamok_emitter *e, const char *event)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_ls; i++) {
        k += strcmp(e->ls[i].event, event) == 0 ? 1u : 0u;
    }
    return k;
}

hamok_status hamok_emitter_subscribe(hamok_emitter *e, const char *event, hamok_emitter_fn fn,
                                     void *ud, const void *meta, size_t meta_len, int timeout_ms)
{
    if (e == NULL || event == NULL || fn == NULL || strlen(event) > 65535 ||
        (meta == NULL && meta_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    char *copy = hamok__strdup(event);
    if (copy == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    pthread_mutex_lock(&e->h.mu);
    if (e->n_ls == MAX_EMIT_LISTENERS) {
        pthread_mutex_unlock(&e->h.mu);
        hamok__free(copy);
        return HAMOK_ERR_NOMEM;
    }
    bool first = local_listeners(e, event) == 0;
    e->ls[e->n_ls++] = (emit_listener){copy, fn, ud};
    pthread_mutex_unlock(&e->h.mu);
    if (!first) {
        return HAMOK_OK;
    }
    hamok_cmd_item it = kv_item(event, strlen(event), meta, meta_len, meta != NULL);
    hamok_cmd_result r;
    hamok_status st = submit(&e->h, HAMOK_OP_SUBSCRIBE, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        hamok__cmd_result_clear(&r);
    } else if (st != HAMOK_ERR_TIMEOUT) {
        hamok_emitter_unsubscribe(e, event, fn, ud, 0); /* undo the listener only */
    }
    return st;
}

hamok_status hamok_emitter_unsubscribe(hamok_emitter *e, const char *event, hamok_emitter_fn fn,
                                       void *ud, int timeout_ms)
{
    if (e == NULL || event == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&e->h.mu);
    size_t i = 0;
    for (; i < e->n_ls; i++) {
        if (e->ls[i].fn == fn && e->ls[i].ud == ud && strcmp(e->ls[i].event, event) == 0) {
            break;
        }
    }
    if (i == e->n_ls) {
        pthread_mutex_unlock(&e->h.mu);
        return HAMOK_ERR_NOT_FOUND;
    }
    hamok__free(e->ls[i].event);
    e->ls[i] = e->ls[--e->n_ls];
    bool last = local_listeners(e, event) == 0;
    pthread_mutex_unlock(&e->h.mu);
    if (!last || timeout_ms == 0) {
        return HAMOK_OK;
    }
    hamok_cmd_item it = kv_item(event, strlen(event), NULL, 0, false);
    hamok_cmd_result r;
    hamok_status st = submit(&e->h, HAMOK_OP_UNSUBSCRIBE, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        hamok__cmd_result_clear(&r);
    }
    return st;
}

hamok_status hamok_emitter_update_metadata(hamok_emitter *e, const char *event, const void *meta,
                                           size_t meta_len, const void *expected,
                                           size_t expected_len, bool *updated, int timeout_ms)
{
    if (updated != NULL) {
        *updated = false;
    }
    if (e == NULL || event == NULL || (meta == NULL && meta_len > 0) ||
        (expected == NULL && expected_len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_cmd_item it = kv_item(event, strlen(event), meta, meta_len, meta != NULL);
    if (expected != NULL) {
        it.has_expected = true;
        it.expected = (uint8_t *)expected;
        it.expected_len = expected_len;
    }
    hamok_cmd_result r;
    hamok_status st = submit(&e->h, HAMOK_OP_UPDATE_METADATA, &it, 1, 0, timeout_ms, &r);
    if (st == HAMOK_OK) {
        if (updated != NULL) {
            *updated = r.flag;
        }
        hamok__cmd_result_clear(&r);
    }
    return st;
}

static hamok_req *publish_req(hamok_emitter *e, hamok_req_type type, const char *event,
                              const void *payload, size_t len, int timeout_ms)
{
    hamok_req *rq = hamok__req_new(type, timeout_ms);
    if (rq == NULL) {
        return NULL;
    }
    size_t elen = strlen(event);
    if (hamok__buf_append(&rq->cmd, e->h.name, e->h.name_len) != HAMOK_OK ||
        hamok__buf_append(&rq->cmd, event, elen) != HAMOK_OK ||
        (len > 0 && hamok__buf_append(&rq->cmd, payload, len) != HAMOK_OK)) {
        hamok__buf_free(&rq->cmd);
        hamok__free(rq);
        return NULL;
    }
    rq->pub_name_len = e->h.name_len;
    rq->pub_event_len = elen;
    return rq;
}

hamok_status hamok_emitter_publish(hamok_emitter *e, const char *event, const void *payload,
                                   size_t len, hamok_id *delivered, size_t cap, size_t *n_delivered,
                                   size_t *n_missing, int timeout_ms)
{
    if (n_delivered != NULL) {
        *n_delivered = 0;
    }
    if (n_missing != NULL) {
        *n_missing = 0;
    }
    if (e == NULL || event == NULL || (payload == NULL && len > 0) || len > FRAME_ROOM(e->h.node)) {
        return e != NULL && len > FRAME_ROOM(e->h.node) ? HAMOK_ERR_TOO_BIG : HAMOK_ERR_INVALID;
    }
    hamok_req *rq = publish_req(e, HAMOK_REQ_PUBLISH, event, payload, len, timeout_ms);
    if (rq == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_waiter w;
    hamok__waiter_init(&w);
    rq->w = &w;
    hamok_status st = hamok__node_call(e->h.node, rq);
    if (st == HAMOK_OK && w.result.len >= 8) {
        uint32_t head[2];
        memcpy(head, w.result.data, sizeof head);
        if (n_delivered != NULL) {
            *n_delivered = head[0];
        }
        if (n_missing != NULL) {
            *n_missing = head[1];
        }
        for (size_t i = 0; i < head[0] && i < cap && delivered != NULL; i++) {
            memcpy(delivered[i].b, w.result.data + 8 + i * HAMOK_ID_LEN, HAMOK_ID_LEN);
        }
    }
    hamok__waiter_fini(&w);
    return st;
}

bool hamok_emitter_notify(hamok_emitter *e, const char *event, const void *payload, size_t len)
{
    if (e == NULL || event == NULL || (payload == NULL && len > 0) || len > FRAME_ROOM(e->h.node)) {
        return false;
    }
    if (hamok_emitter_subscribers(e, event, NULL, 0) == 0) {
        return false;
    }
    hamok_req *rq = publish_req(e, HAMOK_REQ_NOTIFY, event, payload, len, -1);
    if (rq == NULL) {
        return false;
    }
    hamok__node_post_req(e->h.node, rq);
    return true;
}

hamok_status hamok_emitter_foreach(hamok_emitter *e,
                                   bool (*fn)(void *ud, const hamok_sub_event *sub), void *ud)
{
    if (e == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok__node_read_lock(e->h.node);
    const hamok_coll *c = handle_coll(&e->h);
    size_t cursor = 0;
    hamok_coll_view v;
    while (c != NULL && hamok__coll_next(c, &cursor, &v)) {
        hamok_sub_event s = {.type = HAMOK_SUB_ADDED,
                             .event = v.key,
                             .event_len = v.key_len,
                             .peer = v.peer,
                             .has_meta = v.has_value,
                             .meta = v.value,
                             .meta_len = v.value_len};
        if (!fn(ud, &s)) {
            break;
        }
    }
    hamok__node_read_unlock(e->h.node);
    return HAMOK_OK;
}

size_t hamok_emitter_subscribers(hamok_emitter *e, const char *event, hamok_id *out, size_t cap)
{
    if (e == NULL || event == NULL) {
        return 0;
    }
    size_t k = 0, cursor = 0;
    hamok__node_read_lock(e->h.node);
    const hamok_coll *c = handle_coll(&e->h);
    hamok_coll_view v;
    while (c != NULL &&
           hamok__coll_next_subscriber(c, (const uint8_t *)event, strlen(event), &cursor, &v)) {
        if (out != NULL && k < cap) {
            out[k] = v.peer;
        }
        k++;
    }
    hamok__node_read_unlock(e->h.node);
    return k;
}

bool hamok_emitter_has_subscriber(hamok_emitter *e, const char *event, const hamok_id *peer)
{
    if (e == NULL || event == NULL) {
        return false;
    }
    hamok_id self = hamok__node_self(e->h.node);
    hamok__node_read_lock(e->h.node);
    const hamok_coll *c = handle_coll(&e->h);
    bool r = c != NULL && hamok__coll_subscribed(c, (const uint8_t *)event, strlen(event),
                                                 peer != NULL ? peer : &self, NULL, NULL, NULL);
    hamok__node_read_unlock(e->h.node);
    return r;
}

hamok_status hamok_emitter_on_subscriptions(hamok_emitter *e, hamok_sub_event_fn fn, void *ud)
{
    if (e == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    return handle_on(&e->h, (void (*)(void *, const void *))(void (*)(void))fn, ud);
}

/* ------------------------------------------------------------------------ */
/* For remote_map.c (coll_int.h) */

hamok_status hamok__handle_init(hamok_handle *h, hamok_node *n, uint8_t kind, const char *name)
{
    return handle_init(h, n, kind, name);
}

void hamok__handle_fini(hamok_handle *h)
{
    handle_fini(h);
}

hamok_status hamok__value_set(hamok_value *v, const void *data, size_t len)
{
    return value_set(v, data, len);
}

hamok_status hamok__kvs_push(hamok_kvs *kvs, size_t *cap, const void *k, size_t kl, bool hv,
                             const void *v, size_t vl)
{
    return kvs_push(kvs, cap, k, kl, hv, v, vl);
}

hamok_status hamok__check_key(const void *k, size_t kl)
{
    return check_key(k, kl);
}
