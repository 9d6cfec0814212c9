/* A byte-keyed hash table that iterates in insertion order.
 *
 * Layout (the "compact dict" of CPython 3.6+ / PyPy): records live in an
 * entries array in insertion order; a separate open-addressing index of
 * 64-bit slots (32 hash bits | entry position) finds them. Removing leaves a
 * hole (tombstone) in the entries array and a "deleted" mark in the index;
 * both disappear when the table is compacted (hamok__hmap_tidy, or when an
 * insert finds the entries array full). Replacing the record of an existing
 * key keeps its position. Load of the index <= 3/4.
 *
 * A record (hamok_hrec) is one allocation holding the key and the value
 * bytes behind an 8-byte header. Records are created by the caller and
 * handed to the table, and come back out of it on replacement or removal,
 * so a caller can prepare every allocation first and then mutate without any
 * chance of failure (see hamok__hmap_reserve).
 *
 * Memory per entry, 64-bit: the record (8 + key + value, rounded up by
 * malloc) + 8 bytes of entries array + 10.7..21.3 bytes of index, times the
 * growth slack (entries grow by 1.5x).
 *
 * Hash: XXH64 (Yann Collet's xxHash, 64-bit variant; own implementation,
 * checked against the reference vectors) with a per-table seed. It is fast
 * and well distributed, but not keyed cryptographically: anyone who knows
 * the seed can build keys that collide and turn lookups into linear scans
 * (hash flooding). The iteration order never depends on the hash, so every
 * table may use its own secret seed where keys come from untrusted parties;
 * the node passes the seed it chooses (a fixed one by default, since keys
 * come from the cluster's own members).
 *
 * Not thread-safe; const functions do not modify anything (concurrent
 * readers are fine while no one writes). */
#ifndef HAMOK_UTIL_HMAP_H
#define HAMOK_UTIL_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/status.h"

/* Most records a table holds (positions are 32-bit in the index). */
#define HAMOK_HMAP_MAX_ENTRIES (UINT32_C(1) << 31)
#define HAMOK_HMAP_SEED        UINT64_C(0x9e3779b97f4a7c15)

typedef struct hamok_hrec {
    uint32_t klen;
    uint32_t vlen;
    uint8_t data[]; /* key, then value */
} hamok_hrec;

typedef struct hamok_hmap {
    hamok_hrec **ents; /* insertion order; NULL = tombstone */
    uint64_t *slots;   /* index: 0 empty, 1 deleted, else tag << 32 | (pos + 2) */
    size_t n_ents;     /* positions used in ents (live + tombstones) */
    size_t cap;        /* capacity of ents */
    size_t live;
    size_t mask; /* index slots - 1 (0 while nothing is allocated) */
    uint64_t seed;
} hamok_hmap;

/* XXH64 of `len` bytes. */
uint64_t hamok__hash64(const void *data, size_t len, uint64_t seed);

/* Records. new: NULL on NOMEM or a length over UINT32_MAX. free: NULL-safe. */
hamok_hrec *hamok__hrec_new(const void *key, size_t klen, const void *value, size_t vlen);
void hamok__hrec_free(hamok_hrec *r);
static inline const uint8_t *hamok__hrec_key(const hamok_hrec *r)
{
    return r->data;
}
static inline uint8_t *hamok__hrec_value(hamok_hrec *r)
{
    return r->data + r->klen;
}
static inline const uint8_t *hamok__hrec_cvalue(const hamok_hrec *r)
{
    return r->data + r->klen;
}

/* An empty table (allocates nothing). */
void hamok__hmap_init(hamok_hmap *m, uint64_t seed);
/* Free every record and the arrays; the table is empty and usable again. */
void hamok__hmap_clear(hamok_hmap *m);

static inline size_t hamok__hmap_size(const hamok_hmap *m)
{
    return m->live;
}

/* The record of `key`, or NULL. */
hamok_hrec *hamok__hmap_find(const hamok_hmap *m, const void *key, size_t klen);

/* Make sure the next `extra` insertions of new keys (hamok__hmap_put) cannot
 * fail: HAMOK_OK or HAMOK_ERR_NOMEM / HAMOK_ERR_TOO_BIG, the table unchanged
 * in content and order either way (it may have been compacted). */
hamok_status hamok__hmap_reserve(hamok_hmap *m, size_t extra);

/* Insert `rec`, or replace the record with an equal key (the position in the
 * iteration order stays). On HAMOK_OK the table owns `rec`; the record it
 * replaced goes to *old when `old` is not NULL (the caller frees it), else is
 * freed; *old = NULL for a new key. HAMOK_ERR_NOMEM / TOO_BIG (only when a
 * new key needs room that was not reserved): nothing changed, `rec` still
 * the caller's. */
hamok_status hamok__hmap_put(hamok_hmap *m, hamok_hrec *rec, hamok_hrec **old);

/* Remove `key`; returns its record (the caller frees it) or NULL. Never
 * compacts, so removing during an iteration is safe: the cursor stays valid
 * and the entries not yet visited are still visited. */
hamok_hrec *hamok__hmap_take(hamok_hmap *m, const void *key, size_t klen);

/* Compact when holes make up at least half of the entries array, and give
 * back memory when the table has shrunk to a quarter of its capacity.
 * Never fails (a failed shrink keeps the larger arrays). Invalidates
 * cursors. */
void hamok__hmap_tidy(hamok_hmap *m);

/* Iterate in insertion order: start with *cursor = 0; returns false at the
 * end. Any insertion or tidy invalidates the cursor. */
static inline bool hamok__hmap_next(const hamok_hmap *m, size_t *cursor, hamok_hrec **rec)
{
    while (*cursor < m->n_ents) {
        hamok_hrec *r = m->ents[(*cursor)++];
        if (r != NULL) {
            *rec = r;
            return true;
        }
    }
    return false;
}

/* Conveniences (tests, simple users): copy-in set, and remove-and-free. */
hamok_status hamok__hmap_set(hamok_hmap *m, const void *key, size_t klen, const void *value,
                             size_t vlen);
bool hamok__hmap_del(hamok_hmap *m, const void *key, size_t klen);

#endif
