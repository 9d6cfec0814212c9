/* MAP and RECORD: key -> value, iterated in insertion order of the keys.
 * Semantics: registry.h. */
#include <string.h>

#include "collections/coll.h"

void hamok__map_init(hamok_coll *c)
{
    hamok__hmap_init(&c->u.map, HAMOK_HMAP_SEED);
}

void hamok__map_free(hamok_coll *c)
{
    hamok__hmap_clear(&c->u.map);
}

bool hamok__map_supports(uint8_t kind, uint8_t op)
{
    switch (op) {
    case HAMOK_OP_SET:
    case HAMOK_OP_INSERT:
    case HAMOK_OP_UPDATE_IF:
    case HAMOK_OP_DELETE:
    case HAMOK_OP_REMOVE:
    case HAMOK_OP_CLEAR: return true;
    case HAMOK_OP_REMOVE_IF: return kind == HAMOK_KIND_MAP;
    default: return false;
    }
}

static bool value_eq(const hamok_hrec *r, const uint8_t *v, size_t vlen)
{
    return hamok__bytes_eq(hamok__hrec_cvalue(r), r->vlen, v, vlen);
}

/* A record for item i (key, value); a key not in the map counts in
 * *new_keys. */
static hamok_status prep_write(coll_ctx *c, size_t i, bool exists, size_t *new_keys)
{
    const hamok_cmd_item *it = &c->cmd->items[i];
    c->prep[i].rec = hamok__hrec_new(it->key, it->key_len, it->value, it->value_len);
    if (c->prep[i].rec == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    c->prep[i].act = true;
    *new_keys += exists ? 0u : 1u;
    return HAMOK_OK;
}

static hamok_status prepare_record_update_if(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    const hamok_hmap *m = &c->coll->u.map;
    bool ok = true;
    for (size_t i = 0; i < cmd->n_items && ok; i++) {
        const hamok_cmd_item *it = &cmd->items[i];
        if (it->has_expected) {
            const hamok_hrec *cur = hamok__hmap_find(m, it->key, it->key_len);
            ok = cur != NULL && value_eq(cur, it->expected, it->expected_len);
        }
    }
    c->res.flag = ok;
    if (!ok) {
        return HAMOK_OK; /* answered false, nothing to change */
    }
    size_t new_keys = 0;
    for (size_t i = 0; i < cmd->n_items; i++) {
        const hamok_cmd_item *it = &cmd->items[i];
        if (it->has_value) {
            bool exists = hamok__hmap_find(m, it->key, it->key_len) != NULL;
            hamok_status st = prep_write(c, i, exists, &new_keys);
            if (st != HAMOK_OK) {
                return st;
            }
        }
    }
    return hamok__hmap_reserve(&c->coll->u.map, new_keys);
}

hamok_status hamok__map_prepare(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    hamok_hmap *m = &c->coll->u.map;
    size_t n = cmd->n_items;
    if (cmd->op == HAMOK_OP_CLEAR) {
        if (n != 0) {
            return HAMOK_ERR_INVALID;
        }
        c->res.flag = hamok__hmap_size(m) > 0;
        return HAMOK_OK;
    }
    if (n == 0) {
        return HAMOK_ERR_INVALID;
    }
    bool single = cmd->op == HAMOK_OP_REMOVE_IF ||
                  (cmd->op == HAMOK_OP_UPDATE_IF && c->coll->kind == HAMOK_KIND_MAP);
    if (single && n != 1) {
        return HAMOK_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        const hamok_cmd_item *it = &cmd->items[i];
        bool need_value = cmd->op == HAMOK_OP_SET || cmd->op == HAMOK_OP_INSERT ||
                          (cmd->op == HAMOK_OP_UPDATE_IF && single);
        bool need_expected = single;
        if ((need_value && !it->has_value) || (need_expected && !it->has_expected)) {
            return HAMOK_ERR_INVALID;
        }
    }
    hamok_status st = hamok__coll_distinct_keys(c);
    if (st != HAMOK_OK) {
        return st;
    }

    size_t new_keys = 0;
    switch (cmd->op) {
    case HAMOK_OP_SET:
    case HAMOK_OP_INSERT:
        for (size_t i = 0; i < n; i++) {
            const hamok_cmd_item *it = &cmd->items[i];
            const hamok_hrec *cur = hamok__hmap_find(m, it->key, it->key_len);
            if (cur != NULL) {
                hamok__coll_res_add(c, it->key, it->key_len, true, hamok__hrec_cvalue(cur),
                                    cur->vlen);
                c->res.flag = true;
                if (cmd->op == HAMOK_OP_INSERT) {
                    continue; /* not overwritten */
                }
            }
            st = prep_write(c, i, cur != NULL, &new_keys);
            if (st != HAMOK_OK) {
                return st;
            }
        }
        return hamok__hmap_reserve(m, new_keys);
    case HAMOK_OP_UPDATE_IF: {
        if (c->coll->kind == HAMOK_KIND_RECORD) {
            return prepare_record_update_if(c);
        }
        const hamok_cmd_item *it = &cmd->items[0];
        const hamok_hrec *cur = hamok__hmap_find(m, it->key, it->key_len);
        if (cur == NULL || !value_eq(cur, it->expected, it->expected_len)) {
            return HAMOK_OK; /* flag false */
        }
        c->res.flag = true;
        return prep_write(c, 0, true, &new_keys); /* an existing key: no room needed */
    }
    case HAMOK_OP_DELETE:
    case HAMOK_OP_REMOVE:
    case HAMOK_OP_REMOVE_IF:
        for (size_t i = 0; i < n; i++) {
            const hamok_cmd_item *it = &cmd->items[i];
            const hamok_hrec *cur = hamok__hmap_find(m, it->key, it->key_len);
            if (cur == NULL ||
                (cmd->op == HAMOK_OP_REMOVE_IF && !value_eq(cur, it->expected, it->expected_len))) {
                continue;
            }
            c->prep[i].act = true;
            c->res.flag = true;
            if (cmd->op == HAMOK_OP_DELETE) {
                hamok__coll_res_add(c, it->key, it->key_len, false, NULL, 0);
            } else if (cmd->op == HAMOK_OP_REMOVE) {
                hamok__coll_res_add(c, it->key, it->key_len, true, hamok__hrec_cvalue(cur),
                                    cur->vlen);
            }
        }
        return HAMOK_OK;
    default: return HAMOK_ERR_INVALID; /* hamok__map_supports() said no */
    }
}

/* Put a prepared record; event INSERT or UPDATE. */
static void commit_write(coll_ctx *c, size_t i)
{
    hamok_hrec *rec = c->prep[i].rec;
    hamok_hrec *old = NULL;
    if (hamok__hmap_put(&c->coll->u.map, rec, &old) != HAMOK_OK) {
        return; /* unreachable: room was reserved; prep_release frees rec */
    }
    c->prep[i].rec = NULL;
    hamok_coll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = old != NULL ? HAMOK_CEV_UPDATE : HAMOK_CEV_INSERT;
    ev.key = hamok__hrec_key(rec);
    ev.key_len = rec->klen;
    ev.has_value = true;
    ev.value = hamok__hrec_cvalue(rec);
    ev.value_len = rec->vlen;
    if (old != NULL) {
        ev.has_old = true;
        ev.old = hamok__hrec_cvalue(old);
        ev.old_len = old->vlen;
    }
    hamok__coll_emit(c, &ev);
    hamok__hrec_free(old);
}

void hamok__map_commit(coll_ctx *c)
{
    const hamok_cmd *cmd = c->cmd;
    hamok_hmap *m = &c->coll->u.map;
    switch (cmd->op) {
    case HAMOK_OP_SET:
    case HAMOK_OP_INSERT:
    case HAMOK_OP_UPDATE_IF:
        for (size_t i = 0; i < cmd->n_items; i++) {
            if (c->prep[i].rec != NULL) {
                commit_write(c, i);
            }
        }
        break;
    case HAMOK_OP_DELETE:
    case HAMOK_OP_REMOVE:
    case HAMOK_OP_REMOVE_IF:
        for (size_t i = 0; i < cmd->n_items; i++) {
            if (!c->prep[i].act) {
                continue;
            }
            const hamok_cmd_item *it = &cmd->items[i];
            hamok_hrec *old = hamok__hmap_take(m, it->key, it->key_len);
            if (old == NULL) {
                continue; /* unreachable: keys are distinct and were present */
            }
            hamok_coll_event ev;
            memset(&ev, 0, sizeof ev);
            ev.type = HAMOK_CEV_REMOVE;
            ev.key = hamok__hrec_key(old);
            ev.key_len = old->klen;
            ev.has_old = true;
            ev.old = hamok__hrec_cvalue(old);
            ev.old_len = old->vlen;
            hamok__coll_emit(c, &ev);
            hamok__hrec_free(old);
        }
        hamok__hmap_tidy(m);
        break;
    case HAMOK_OP_CLEAR: {
        hamok__hmap_clear(m);
        hamok_coll_event ev;
        memset(&ev, 0, sizeof ev);
        ev.type = HAMOK_CEV_CLEAR;
        hamok__coll_emit(c, &ev);
        break;
    }
    default: break;
    }
}
