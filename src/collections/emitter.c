/* EMITTER: the replicated subscription table, event -> peer -> metadata?.
 * Publishing itself is not replicated (the node sends to the subscribers it
 * reads here). Semantics: registry.h. */
#include <string.h>

#include "collections/coll.h"
#include "util/alloc.h"

void hamok__emitter_init(hamok_coll *c)
{
    hamok__hmap_init(&c->u.em.events, HAMOK_HMAP_SEED);
    c->u.em.n_subs = 0;
}

coll_event *hamok__event_of(const hamok_hrec *rec)
{
    coll_event *ev;
    memcpy(&ev, hamok__hrec_cvalue(rec), sizeof ev);
    return ev;
}

void hamok__event_free(coll_event *ev)
{
    if (ev == NULL) {
        return;
    }
    for (size_t i = 0; i < ev->n; i++) {
        hamok__free(ev->v[i].meta);
    }
    hamok__free(ev->v);
    hamok__free(ev);
}

void hamok__emitter_free(hamok_coll *c)
{
    size_t cur = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(&c->u.em.events, &cur, &rec)) {
        hamok__event_free(hamok__event_of(rec));
    }
    hamok__hmap_clear(&c->u.em.events);
    c->u.em.n_subs = 0;
}

bool hamok__emitter_supports(uint8_t op)
{
    return op == HAMOK_OP_SUBSCRIBE || op == HAMOK_OP_UNSUBSCRIBE ||
           op == HAMOK_OP_UPDATE_METADATA || op == HAMOK_OP_CLEANUP;
}

static long sub_find(const coll_event *ev, const hamok_id *peer)
{
    for (size_t i = 0; i < ev->n; i++) {
        if (hamok__id_eq(&ev->v[i].peer, peer)) {
            return (long)i;
        }
    }
    return -1;
}

/* The event's subscriber list, or NULL. */
static coll_event *event_find(const coll_emitter *em, const uint8_t *event, size_t len)
{
    const hamok_hrec *rec = hamok__hmap_find(&em->events, event, len);
    return rec != NULL ? hamok__event_of(rec) : NULL;
}

static bool subscribed_anywhere(const coll_emitter *em, const hamok_id *peer)
{
    size_t cur = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(&em->events, &cur, &rec)) {
        if (sub_find(hamok__event_of(rec), peer) >= 0) {
            return true;
        }
    }
    return false;
}

static uint8_t *copy_meta(const hamok_cmd_item *it)
{
    return hamok__memdup(it->value, it->value_len); /* an empty one is a 1-byte block */
}

static hamok_status prepare_subscribe(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    coll_emitter *em = &c->coll->u.em;
    size_t new_events = 0;
    for (size_t i = 0; i < cmd->n_items; i++) {
        const hamok_cmd_item *it = &cmd->items[i];
        coll_prep *p = &c->prep[i];
        coll_event *ev = event_find(em, it->key, it->key_len);
        if (ev != NULL && sub_find(ev, c->client) >= 0) {
            continue; /* already subscribed: keeps its metadata */
        }
        p->act = true;
        c->res.flag = true;
        if (it->has_value && (p->bytes = copy_meta(it)) == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        if (ev == NULL) {
            p->ev = hamok__calloc(1, sizeof *p->ev);
            if (p->ev == NULL || (p->ev->v = hamok__malloc(sizeof *p->ev->v)) == NULL) {
                return HAMOK_ERR_NOMEM;
            }
            p->ev->cap = 1;
            p->rec = hamok__hrec_new(it->key, it->key_len, &p->ev, sizeof p->ev);
            if (p->rec == NULL) {
                return HAMOK_ERR_NOMEM;
            }
            new_events++;
        } else if (ev->n == ev->cap) {
            /* Growing the list now changes nothing visible. */
            size_t cap = ev->cap * 2;
            coll_sub *v = hamok__realloc(ev->v, cap * sizeof *v);
            if (v == NULL) {
                return HAMOK_ERR_NOMEM;
            }
            ev->v = v;
            ev->cap = cap;
        }
    }
    return hamok__hmap_reserve(&em->events, new_events);
}

static hamok_status prepare_update(coll_ctx *c)
{
    const hamok_cmd_item *it = &c->cmd->items[0];
    coll_event *ev = event_find(&c->coll->u.em, it->key, it->key_len);
    long at = ev != NULL ? sub_find(ev, c->client) : -1;
    if (at < 0) {
        return HAMOK_OK; /* not subscribed: flag false */
    }
    const coll_sub *s = &ev->v[at];
    bool ok;
    if (it->has_expected) {
        ok = s->meta != NULL &&
             hamok__bytes_eq(s->meta, s->meta_len, it->expected, it->expected_len);
    } else {
        /* arg bit 0: an absent expected value is compared too (must be
         * absent now); otherwise no expectation. */
        ok = (c->cmd->arg & 1u) == 0 || s->meta == NULL;
    }
    if (!ok) {
        return HAMOK_OK;
    }
    c->prep[0].act = true;
    c->res.flag = true;
    if (it->has_value && (c->prep[0].bytes = copy_meta(it)) == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    return HAMOK_OK;
}

hamok_status hamok__emitter_prepare(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    coll_emitter *em = &c->coll->u.em;
    size_t n = cmd->n_items;
    bool needs_client = cmd->op != HAMOK_OP_CLEANUP;
    if (n == 0 || (cmd->op == HAMOK_OP_UPDATE_METADATA && n != 1) ||
        (needs_client && (c->client == NULL || hamok__id_is_nil(c->client)))) {
        return HAMOK_ERR_INVALID;
    }
    if (cmd->op == HAMOK_OP_CLEANUP) {
        for (size_t i = 0; i < n; i++) {
            if (cmd->items[i].key_len != HAMOK_ID_LEN) {
                return HAMOK_ERR_INVALID;
            }
        }
    }
    hamok_status st = hamok__coll_distinct_keys(c);
    if (st != HAMOK_OK) {
        return st;
    }
    switch (cmd->op) {
    case HAMOK_OP_SUBSCRIBE: return prepare_subscribe(c);
    case HAMOK_OP_UNSUBSCRIBE:
        for (size_t i = 0; i < n; i++) {
            const hamok_cmd_item *it = &cmd->items[i];
            coll_event *ev = event_find(em, it->key, it->key_len);
            if (ev != NULL && sub_find(ev, c->client) >= 0) {
                c->prep[i].act = true;
                c->res.flag = true;
            }
        }
        return HAMOK_OK;
    case HAMOK_OP_UPDATE_METADATA: return prepare_update(c);
    case HAMOK_OP_CLEANUP:
        for (size_t i = 0; i < n; i++) {
            const hamok_cmd_item *it = &cmd->items[i];
            hamok_id peer;
            memcpy(peer.b, it->key, HAMOK_ID_LEN);
            if (subscribed_anywhere(em, &peer)) {
                c->prep[i].act = true;
                c->res.flag = true;
                hamok__coll_res_add(c, it->key, it->key_len, false, NULL, 0);
            }
        }
        return HAMOK_OK;
    default: return HAMOK_ERR_INVALID;
    }
}

static void emit_sub(const coll_ctx *c, uint8_t type, const hamok_hrec *event_rec,
                     const hamok_id *peer, const uint8_t *old, size_t old_len, const uint8_t *value,
                     size_t value_len)
{
    hamok_coll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = type;
    ev.key = hamok__hrec_key(event_rec);
    ev.key_len = event_rec->klen;
    ev.peer = *peer;
    if (old != NULL) {
        ev.has_old = true;
        ev.old = old;
        ev.old_len = old_len;
    }
    if (value != NULL) {
        ev.has_value = true;
        ev.value = value;
        ev.value_len = value_len;
    }
    hamok__coll_emit(c, &ev);
}

/* Remove subscriber `at` of the event in `rec`; drops the event when it was
 * the last. Safe during an iteration of the events table. */
static void remove_sub(const coll_ctx *c, coll_emitter *em, hamok_hrec *rec, size_t at)
{
    coll_event *ev = hamok__event_of(rec);
    coll_sub s = ev->v[at];
    memmove(&ev->v[at], &ev->v[at + 1], (ev->n - at - 1) * sizeof *ev->v);
    ev->n--;
    em->n_subs--;
    bool last = ev->n == 0;
    if (last) {
        (void)hamok__hmap_take(&em->events, hamok__hrec_key(rec), rec->klen); /* == rec */
    }
    emit_sub(c, HAMOK_CEV_SUB_REMOVED, rec, &s.peer, s.meta, s.meta_len, NULL, 0);
    hamok__free(s.meta);
    if (last) {
        hamok__event_free(ev);
        hamok__hrec_free(rec);
    }
}

void hamok__emitter_retain(coll_ctx *c, bool (*keep)(void *ud, const hamok_id *peer), void *keep_ud)
{
    coll_emitter *em = &c->coll->u.em;
    size_t cur = 0;
    hamok_hrec *rec;
    while (hamok__hmap_next(&em->events, &cur, &rec)) {
        coll_event *ev = hamok__event_of(rec);
        size_t j = 0;
        while (j < ev->n) {
            if (keep(keep_ud, &ev->v[j].peer)) {
                j++;
                continue;
            }
            bool last = ev->n == 1;
            remove_sub(c, em, rec, j);
            if (last) {
                break; /* ev and rec are gone */
            }
        }
    }
    hamok__hmap_tidy(&em->events);
}

static bool not_this_peer(void *ud, const hamok_id *peer)
{
    return !hamok__id_eq(ud, peer);
}

void hamok__emitter_commit(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    coll_emitter *em = &c->coll->u.em;
    for (size_t i = 0; i < cmd->n_items; i++) {
        coll_prep *p = &c->prep[i];
        if (!p->act) {
            continue;
        }
        const hamok_cmd_item *it = &cmd->items[i];
        switch (cmd->op) {
        case HAMOK_OP_SUBSCRIBE: {
            hamok_hrec *rec;
            if (p->rec != NULL) {
                if (hamok__hmap_put(&em->events, p->rec, NULL) != HAMOK_OK) {
                    continue; /* unreachable: room was reserved */
                }
                rec = p->rec;
                p->rec = NULL;
                p->ev = NULL; /* now owned through rec */
            } else {
                rec = hamok__hmap_find(&em->events, it->key, it->key_len);
            }
            coll_event *ev = hamok__event_of(rec);
            coll_sub *s = &ev->v[ev->n++];
            s->peer = *c->client;
            s->meta = p->bytes;
            s->meta_len = it->has_value ? it->value_len : 0;
            p->bytes = NULL;
            em->n_subs++;
            emit_sub(c, HAMOK_CEV_SUB_ADDED, rec, c->client, NULL, 0, s->meta, s->meta_len);
            break;
        }
        case HAMOK_OP_UNSUBSCRIBE: {
            hamok_hrec *rec = hamok__hmap_find(&em->events, it->key, it->key_len);
            long at = rec != NULL ? sub_find(hamok__event_of(rec), c->client) : -1;
            if (at >= 0) {
                remove_sub(c, em, rec, (size_t)at);
            }
            break;
        }
        case HAMOK_OP_UPDATE_METADATA: {
            hamok_hrec *rec = hamok__hmap_find(&em->events, it->key, it->key_len);
            coll_event *ev = hamok__event_of(rec);
            coll_sub *s = &ev->v[sub_find(ev, c->client)];
            uint8_t *old = s->meta;
            size_t old_len = s->meta_len;
            s->meta = p->bytes;
            s->meta_len = it->has_value ? it->value_len : 0;
            p->bytes = NULL;
            emit_sub(c, HAMOK_CEV_SUB_UPDATED, rec, c->client, old, old_len, s->meta, s->meta_len);
            hamok__free(old);
            break;
        }
        case HAMOK_OP_CLEANUP: {
            hamok_id peer;
            memcpy(peer.b, it->key, HAMOK_ID_LEN);
            hamok__emitter_retain(c, not_this_peer, &peer);
            break;
        }
        default: break;
        }
    }
    if (cmd->op == HAMOK_OP_UNSUBSCRIBE) {
        hamok__hmap_tidy(&em->events);
    }
}
