#include "raft/log.h"

#include <string.h>

#include "util/alloc.h"

void hamok__log_init(hamok_log *l)
{
    memset(l, 0, sizeof *l);
}

void hamok__log_free(hamok_log *l)
{
    for (size_t i = 0; i < l->n; i++) {
        hamok__entry_clear(&l->ents[i]);
    }
    hamok__free(l->ents);
    memset(l, 0, sizeof *l);
}

bool hamok__log_term(const hamok_log *l, uint64_t index, uint64_t *term)
{
    if (index == l->snap_index) {
        *term = l->snap_term;
        return true;
    }
    if (index < l->snap_index || index > hamok__log_last(l)) {
        return false;
    }
    *term = l->ents[index - l->snap_index - 1].term;
    return true;
}

uint64_t hamok__log_last_term(const hamok_log *l)
{
    return l->n == 0 ? l->snap_term : l->ents[l->n - 1].term;
}

hamok_entry *hamok__log_get(const hamok_log *l, uint64_t index)
{
    if (index <= l->snap_index || index > hamok__log_last(l)) {
        return NULL;
    }
    return &l->ents[index - l->snap_index - 1];
}

hamok_status hamok__log_reserve(hamok_log *l, size_t extra)
{
    if (extra > SIZE_MAX / sizeof(hamok_entry) - l->n) {
        return HAMOK_ERR_TOO_BIG;
    }
    size_t need = l->n + extra;
    if (need <= l->cap) {
        return HAMOK_OK;
    }
    size_t cap = l->cap ? l->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    hamok_entry *p = hamok__realloc(l->ents, cap * sizeof *p);
    if (p == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    l->ents = p;
    l->cap = cap;
    return HAMOK_OK;
}

hamok_status hamok__log_append_copy(hamok_log *l, const hamok_entry *e, uint64_t term)
{
    hamok_status st = hamok__log_reserve(l, 1);
    if (st != HAMOK_OK) {
        return st;
    }
    uint8_t *data = hamok__memdup(e->data, e->len);
    if (data == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_entry *dst = &l->ents[l->n++];
    *dst = *e;
    dst->term = term;
    dst->data = data;
    return HAMOK_OK;
}

hamok_status hamok__log_append_take(hamok_log *l, hamok_entry *e)
{
    hamok_status st = hamok__log_reserve(l, 1);
    if (st != HAMOK_OK) {
        return st;
    }
    if (e->data == NULL) {
        /* Keep the invariant that stored entries own a valid block. */
        e->data = hamok__malloc(1);
        if (e->data == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        e->len = 0;
    }
    l->ents[l->n++] = *e;
    e->data = NULL;
    e->len = 0;
    return HAMOK_OK;
}

void hamok__log_truncate(hamok_log *l, uint64_t from)
{
    if (from <= l->snap_index) {
        from = l->snap_index + 1;
    }
    while (hamok__log_last(l) >= from && l->n > 0) {
        hamok__entry_clear(&l->ents[--l->n]);
    }
}

uint64_t hamok__log_last_with_term_at_most(const hamok_log *l, uint64_t lo, uint64_t hi,
                                           uint64_t term)
{
    /* Binary search for the last index whose term <= term. */
    uint64_t t;
    uint64_t ans = lo - 1;
    while (lo <= hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (!hamok__log_term(l, mid, &t)) {
            break;
        }
        if (t <= term) {
            ans = mid;
            lo = mid + 1;
        } else {
            if (mid == 0) {
                break;
            }
            hi = mid - 1;
        }
    }
    return ans;
}

void hamok__log_compact(hamok_log *l, uint64_t upto)
{
    if (upto <= l->snap_index || upto > hamok__log_last(l)) {
        return;
    }
    size_t drop = (size_t)(upto - l->snap_index);
    uint64_t term = l->ents[drop - 1].term;
    for (size_t i = 0; i < drop; i++) {
        hamok__entry_clear(&l->ents[i]);
    }
    memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof *l->ents);
    l->n -= drop;
    l->snap_index = upto;
    l->snap_term = term;
}

void hamok__log_reset(hamok_log *l, uint64_t index, uint64_t term)
{
    for (size_t i = 0; i < l->n; i++) {
        hamok__entry_clear(&l->ents[i]);
    }
    l->n = 0;
    l->snap_index = index;
    l->snap_term = term;
}
