#include "util/hmap.h"

#include <string.h>

#include "util/alloc.h"

/* ------------------------------------------------------------------------- */
/* XXH64 (xxHash specification, 64-bit variant). */

#define P1 UINT64_C(0x9E3779B185EBCA87)
#define P2 UINT64_C(0xC2B2AE3D27D4EB4F)
#define P3 UINT64_C(0x165667B19E3779F9)
#define P4 UINT64_C(0x85EBCA77C2B2AE63)
#define P5 UINT64_C(0x27D4EB2F165667C5)

static inline uint64_t rotl(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64u - r));
}

/* Little-endian loads, whatever the host (compilers turn these into one
 * load on little-endian machines). */
static inline uint64_t le64(const uint8_t *p)
{
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
           (uint64_t)p[7] << 56;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t xround(uint64_t acc, uint64_t input)
{
    acc += input * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v)
{
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

uint64_t hamok__hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    const uint8_t *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = seed + P1 + P2;
        uint64_t v2 = seed + P2;
        uint64_t v3 = seed;
        uint64_t v4 = seed - P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xround(v1, le64(p));
            v2 = xround(v2, le64(p + 8));
            v3 = xround(v3, le64(p + 16));
            v4 = xround(v4, le64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
        h = xmerge(h, v1);
        h = xmerge(h, v2);
        h = xmerge(h, v3);
        h = xmerge(h, v4);
    } else {
        h = seed + P5;
    }
    h += (uint64_t)len;
    while ((size_t)(end - p) >= 8) {
        h ^= xround(0, le64(p));
        h = rotl(h, 27) * P1 + P4;
        p += 8;
    }
    if ((size_t)(end - p) >= 4) {
        h ^= (uint64_t)le32(p) * P1;
        h = rotl(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)*p * P5;
        h = rotl(h, 11) * P1;
        p++;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ------------------------------------------------------------------------- */
/* Records */

hamok_hrec *hamok__hrec_new(const void *key, size_t klen, const void *value, size_t vlen)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX) {
        return NULL;
    }
    hamok_hrec *r = hamok__malloc(sizeof *r + klen + vlen);
    if (r == NULL) {
        return NULL;
    }
    r->klen = (uint32_t)klen;
    r->vlen = (uint32_t)vlen;
    if (klen > 0) {
        memcpy(r->data, key, klen);
    }
    if (vlen > 0 && value != NULL) {
        memcpy(r->data + klen, value, vlen);
    }
    return r;
}

void hamok__hrec_free(hamok_hrec *r)
{
    hamok__free(r);
}

/* ------------------------------------------------------------------------- */
/* Table */

#define SLOT_EMPTY   UINT64_C(0)
#define SLOT_DELETED UINT64_C(1)
#define MIN_CAP      8u

static inline uint32_t tag_of(const hamok_hmap *m, const void *key, size_t klen)
{
    uint64_t h = hamok__hash64(key, klen, m->seed);
    return (uint32_t)(h ^ (h >> 32));
}

static inline uint64_t slot_make(uint32_t tag, size_t pos)
{
    return (uint64_t)tag << 32 | (uint64_t)(pos + 2);
}

static inline size_t slot_pos(uint64_t s)
{
    return (size_t)(s & UINT32_MAX) - 2;
}

static inline bool key_eq(const hamok_hrec *r, const void *key, size_t klen)
{
    return r->klen == klen && (klen == 0 || memcmp(r->data, key, klen) == 0);
}

/* Index slots for `cap` entries: the smallest power of two >= cap * 4/3, so
 * that live + deleted slots (<= cap) keep the load <= 3/4. 0 when too big. */
static size_t slots_for(size_t cap)
{
    size_t want = cap + cap / 3 + 1;
    size_t s = 8;
    while (s < want) {
        if (s > SIZE_MAX / 2 / sizeof(uint64_t)) {
            return 0;
        }
        s *= 2;
    }
    return s;
}

void hamok__hmap_init(hamok_hmap *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    m->seed = seed;
}

void hamok__hmap_clear(hamok_hmap *m)
{
    for (size_t i = 0; i < m->n_ents; i++) {
        hamok__hrec_free(m->ents[i]);
    }
    hamok__free(m->ents);
    hamok__free(m->slots);
    hamok__hmap_init(m, m->seed);
}

hamok_hrec *hamok__hmap_find(const hamok_hmap *m, const void *key, size_t klen)
{
    if (m->live == 0) {
        return NULL;
    }
    uint32_t tag = tag_of(m, key, klen);
    for (size_t i = tag & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == SLOT_EMPTY) {
            return NULL;
        }
        if (s != SLOT_DELETED && (uint32_t)(s >> 32) == tag) {
            hamok_hrec *r = m->ents[slot_pos(s)];
            if (key_eq(r, key, klen)) {
                return r;
            }
        }
    }
}

/* Index the live entries, which occupy ents[0 .. n_ents) without holes, into
 * a zeroed slot array. */
static void reindex(hamok_hmap *m)
{
    for (size_t pos = 0; pos < m->n_ents; pos++) {
        const hamok_hrec *r = m->ents[pos];
        uint32_t tag = tag_of(m, r->data, r->klen);
        size_t i = tag & m->mask;
        while (m->slots[i] != SLOT_EMPTY) {
            i = (i + 1) & m->mask;
        }
        m->slots[i] = slot_make(tag, pos);
    }
}

/* Squeeze the holes out of ents, in place, keeping the order. */
static void squeeze(hamok_hmap *m)
{
    size_t w = 0;
    for (size_t i = 0; i < m->n_ents; i++) {
        if (m->ents[i] != NULL) {
            m->ents[w++] = m->ents[i];
        }
    }
    m->n_ents = w;
}

static void compact_in_place(hamok_hmap *m)
{
    squeeze(m);
    memset(m->slots, 0, (m->mask + 1) * sizeof *m->slots);
    reindex(m);
}

/* New arrays for `cap` entries (>= live), compacted and reindexed. */
static hamok_status resize(hamok_hmap *m, size_t cap)
{
    if (cap > HAMOK_HMAP_MAX_ENTRIES) {
        return HAMOK_ERR_TOO_BIG;
    }
    size_t n_slots = slots_for(cap);
    if (n_slots == 0) {
        return HAMOK_ERR_TOO_BIG;
    }
    hamok_hrec **ents = hamok__malloc(cap * sizeof *ents);
    uint64_t *slots = hamok__calloc(n_slots, sizeof *slots);
    if (ents == NULL || slots == NULL) {
        hamok__free(ents);
        hamok__free(slots);
        return HAMOK_ERR_NOMEM;
    }
    size_t w = 0;
    for (size_t i = 0; i < m->n_ents; i++) {
        if (m->ents[i] != NULL) {
            ents[w++] = m->ents[i];
        }
    }
    bool moved = w != m->n_ents; /* holes squeezed out: positions changed */
    uint64_t *old_slots = m->slots;
    size_t old_n_slots = m->cap > 0 ? m->mask + 1 : 0;
    hamok__free(m->ents);
    m->ents = ents;
    m->slots = slots;
    m->n_ents = w;
    m->cap = cap;
    m->mask = n_slots - 1;
    if (moved) {
        reindex(m); /* rehash every key */
    } else {
        /* Same positions: move the slots over by their tags, without
         * touching (and missing the cache on) a single record. */
        for (size_t i = 0; i < old_n_slots; i++) {
            uint64_t sl = old_slots[i];
            if (sl > SLOT_DELETED) {
                size_t k = (uint32_t)(sl >> 32) & m->mask;
                while (m->slots[k] != SLOT_EMPTY) {
                    k = (k + 1) & m->mask;
                }
                m->slots[k] = sl;
            }
        }
    }
    hamok__free(old_slots);
    return HAMOK_OK;
}

hamok_status hamok__hmap_reserve(hamok_hmap *m, size_t extra)
{
    if (extra > HAMOK_HMAP_MAX_ENTRIES - m->live) {
        return HAMOK_ERR_TOO_BIG;
    }
    if (m->n_ents + extra <= m->cap) {
        return HAMOK_OK;
    }
    size_t need = m->live + extra;
    /* Squeezing the holes out is enough, and leaves a quarter free (so that
     * inserting and removing at the same rate does not compact every time). */
    if (need <= m->cap - m->cap / 4) {
        compact_in_place(m);
        return HAMOK_OK;
    }
    size_t cap = m->cap + m->cap / 2;
    if (cap < need) {
        cap = need;
    }
    if (cap < MIN_CAP) {
        cap = MIN_CAP;
    }
    if (cap > HAMOK_HMAP_MAX_ENTRIES) {
        cap = HAMOK_HMAP_MAX_ENTRIES;
    }
    return resize(m, cap);
}

hamok_status hamok__hmap_put(hamok_hmap *m, hamok_hrec *rec, hamok_hrec **old)
{
    const uint8_t *key = rec->data;
    size_t klen = rec->klen;
    uint32_t tag = tag_of(m, key, klen);
    if (m->live > 0) {
        for (size_t i = tag & m->mask;; i = (i + 1) & m->mask) {
            uint64_t s = m->slots[i];
            if (s == SLOT_EMPTY) {
                break;
            }
            if (s != SLOT_DELETED && (uint32_t)(s >> 32) == tag) {
                size_t pos = slot_pos(s);
                hamok_hrec *r = m->ents[pos];
                if (key_eq(r, key, klen)) {
                    m->ents[pos] = rec;
                    if (old != NULL) {
                        *old = r;
                    } else {
                        hamok__hrec_free(r);
                    }
                    return HAMOK_OK;
                }
            }
        }
    }
    /* A new key. */
    hamok_status st = hamok__hmap_reserve(m, 1);
    if (st != HAMOK_OK) {
        return st;
    }
    size_t i = tag & m->mask;
    while (m->slots[i] > SLOT_DELETED) {
        i = (i + 1) & m->mask;
    }
    m->slots[i] = slot_make(tag, m->n_ents);
    m->ents[m->n_ents++] = rec;
    m->live++;
    if (old != NULL) {
        *old = NULL;
    }
    return HAMOK_OK;
}

hamok_hrec *hamok__hmap_take(hamok_hmap *m, const void *key, size_t klen)
{
    if (m->live == 0) {
        return NULL;
    }
    uint32_t tag = tag_of(m, key, klen);
    for (size_t i = tag & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == SLOT_EMPTY) {
            return NULL;
        }
        if (s != SLOT_DELETED && (uint32_t)(s >> 32) == tag) {
            size_t pos = slot_pos(s);
            hamok_hrec *r = m->ents[pos];
            if (key_eq(r, key, klen)) {
                /* If the next slot is empty no probe sequence runs through
                 * this one: it can become empty instead of deleted. */
                m->slots[i] = m->slots[(i + 1) & m->mask] == SLOT_EMPTY ? SLOT_EMPTY : SLOT_DELETED;
                m->ents[pos] = NULL;
                m->live--;
                return r;
            }
        }
    }
}

void hamok__hmap_tidy(hamok_hmap *m)
{
    if (m->live == 0) {
        if (m->cap > 0) {
            hamok__hmap_clear(m); /* nothing live: give everything back */
        }
        return;
    }
    if (m->cap > 4 * MIN_CAP && m->live < m->cap / 4) {
        size_t cap = m->live * 2;
        if (resize(m, cap < MIN_CAP ? MIN_CAP : cap) == HAMOK_OK) {
            return;
        }
    }
    size_t holes = m->n_ents - m->live;
    if (holes > 0 && holes >= m->n_ents / 2) {
        compact_in_place(m);
    }
}

hamok_status hamok__hmap_set(hamok_hmap *m, const void *key, size_t klen, const void *value,
                             size_t vlen)
{
    hamok_hrec *r = hamok__hrec_new(key, klen, value, vlen);
    if (r == NULL) {
        return klen > UINT32_MAX || vlen > UINT32_MAX ? HAMOK_ERR_TOO_BIG : HAMOK_ERR_NOMEM;
    }
    hamok_status st = hamok__hmap_put(m, r, NULL);
    if (st != HAMOK_OK) {
        hamok__hrec_free(r);
    }
    return st;
}

bool hamok__hmap_del(hamok_hmap *m, const void *key, size_t klen)
{
    hamok_hrec *r = hamok__hmap_take(m, key, klen);
    hamok__hrec_free(r);
    return r != NULL;
}
