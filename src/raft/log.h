/* The in-memory Raft log: a contiguous array of entries starting after the
 * snapshot point (snap_index, snap_term). Index 0 with term 0 is the empty
 * log's sentinel. Entry terms never decrease along the log. */
#ifndef HAMOK_RAFT_LOG_H
#define HAMOK_RAFT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"

typedef struct hamok_log {
    hamok_entry *ents; /* ents[0] has index snap_index + 1 */
    size_t n;
    size_t cap;
    uint64_t snap_index;
    uint64_t snap_term;
} hamok_log;

void hamok__log_init(hamok_log *l);
void hamok__log_free(hamok_log *l);

static inline uint64_t hamok__log_first(const hamok_log *l)
{
    return l->snap_index + 1;
}

static inline uint64_t hamok__log_last(const hamok_log *l)
{
    return l->snap_index + l->n;
}

/* Term at `index`: the snapshot point and every stored entry have one. */
bool hamok__log_term(const hamok_log *l, uint64_t index, uint64_t *term);
uint64_t hamok__log_last_term(const hamok_log *l);
/* Entry at `index`, NULL outside [first, last]. */
hamok_entry *hamok__log_get(const hamok_log *l, uint64_t index);

/* Make room for `extra` more entries (so appends cannot fail halfway). */
hamok_status hamok__log_reserve(hamok_log *l, size_t extra);
/* Append a copy of `e` with term `term` (data copied). */
hamok_status hamok__log_append_copy(hamok_log *l, const hamok_entry *e, uint64_t term);
/* Append `e`, taking ownership of its data (e->data is set to NULL). */
hamok_status hamok__log_append_take(hamok_log *l, hamok_entry *e);
/* Remove every entry with index >= from (no-op when from > last). */
void hamok__log_truncate(hamok_log *l, uint64_t from);
/* Drop every entry with index <= upto (upto <= last), moving the snapshot
 * point there. */
void hamok__log_compact(hamok_log *l, uint64_t upto);
/* Drop everything and restart the log after (index, term). */
void hamok__log_reset(hamok_log *l, uint64_t index, uint64_t term);
/* Last index in [lo, hi] whose term is <= term (terms are sorted), or lo - 1
 * when there is none. Requires first - 1 <= lo <= hi <= last. */
uint64_t hamok__log_last_with_term_at_most(const hamok_log *l, uint64_t lo, uint64_t hi,
                                           uint64_t term);

#endif
