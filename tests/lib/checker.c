#include "checker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "sm.h"

/* ------------------------------------------------------------------------ */
/* Small containers. */

typedef struct chk_ent {
    uint64_t term;
    uint64_t hash;
    uint32_t cfg; /* 0: not a CONFIG entry; else 1 + its configuration id */
} chk_ent;

/* A log: index i (1-based) lives at v[i - 1]. The configuration in force is
 * that of the last CONFIG entry after base_index (their indexes in cfgs,
 * increasing), else base_cfg. */
typedef struct chk_log {
    chk_ent *v;
    uint64_t len;
    uint64_t cap;
    uint64_t base_index;
    uint32_t base_cfg;
    uint64_t *cfgs;
    size_t n_cfgs, cap_cfgs;
} chk_log;

/* Configuration ids: 0 = empty, 1 = bootstrap; then one per distinct one. */
typedef struct chk_cfg {
    uint64_t members;
    uint64_t voters;
} chk_cfg;

enum { CFG_EMPTY = 0, CFG_BOOT = 1 };

static bool log_reserve(chk_log *l, uint64_t need)
{
    if (need <= l->cap) {
        return true;
    }
    uint64_t cap = l->cap ? l->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    chk_ent *v = realloc(l->v, (size_t)cap * sizeof *v);
    if (v == NULL) {
        return false;
    }
    l->v = v;
    l->cap = cap;
    return true;
}

static bool log_cfg_push(chk_log *l, uint64_t index)
{
    if (l->n_cfgs == l->cap_cfgs) {
        size_t cap = l->cap_cfgs ? l->cap_cfgs * 2 : 8;
        uint64_t *p = realloc(l->cfgs, cap * sizeof *p);
        if (p == NULL) {
            return false;
        }
        l->cfgs = p;
        l->cap_cfgs = cap;
    }
    l->cfgs[l->n_cfgs++] = index;
    return true;
}

static bool log_push(chk_log *l, uint64_t term, uint64_t hash, uint32_t cfg)
{
    if (!log_reserve(l, l->len + 1)) {
        return false;
    }
    l->v[l->len].term = term;
    l->v[l->len].hash = hash;
    l->v[l->len].cfg = cfg;
    l->len++;
    if (cfg != 0 && l->len > l->base_index && !log_cfg_push(l, l->len)) {
        return false;
    }
    return true;
}

static void log_truncate(chk_log *l, uint64_t from)
{
    if (from == 0 || from > l->len) {
        return;
    }
    l->len = from - 1;
    while (l->n_cfgs > 0 && l->cfgs[l->n_cfgs - 1] >= from) {
        l->n_cfgs--;
    }
}

static uint64_t log_term(const chk_log *l, uint64_t index)
{
    if (index == 0 || index > l->len) {
        return 0;
    }
    return l->v[index - 1].term;
}

static bool log_copy(chk_log *dst, const chk_log *src)
{
    if (!log_reserve(dst, src->len)) {
        return false;
    }
    if (src->len > 0) {
        memcpy(dst->v, src->v, (size_t)src->len * sizeof *src->v);
    }
    dst->len = src->len;
    dst->base_index = src->base_index;
    dst->base_cfg = src->base_cfg;
    dst->n_cfgs = 0;
    for (size_t k = 0; k < src->n_cfgs; k++) {
        if (!log_cfg_push(dst, src->cfgs[k])) {
            return false;
        }
    }
    return true;
}

static void log_clear(chk_log *l, uint32_t base_cfg)
{
    l->len = 0;
    l->base_index = 0;
    l->base_cfg = base_cfg;
    l->n_cfgs = 0;
}

static void log_free(chk_log *l)
{
    free(l->v);
    free(l->cfgs);
    memset(l, 0, sizeof *l);
}

static uint32_t log_cfg_in_force(const chk_log *l)
{
    return l->n_cfgs > 0 ? l->v[l->cfgs[l->n_cfgs - 1] - 1].cfg - 1 : l->base_cfg;
}

/* The configuration in force at `index` (UINT32_MAX if before the base). */
static uint32_t log_cfg_at(const chk_log *l, uint64_t index)
{
    if (index < l->base_index) {
        return UINT32_MAX;
    }
    size_t lo = 0, hi = l->n_cfgs; /* first k with cfgs[k] > index */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->cfgs[mid] <= index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo > 0 ? l->v[l->cfgs[lo - 1] - 1].cfg - 1 : l->base_cfg;
}

/* Replace 1..s by the committed prefix; keep s+1.. only if keep_tail. The
 * configuration base becomes (s, base_cfg). */
static bool log_install(chk_log *l, const chk_log *committed, uint64_t s, uint32_t base_cfg,
                        bool keep_tail)
{
    uint64_t len = keep_tail && l->len > s ? l->len : s;
    if (!log_reserve(l, len)) {
        return false;
    }
    memcpy(l->v, committed->v, (size_t)s * sizeof *l->v);
    l->len = len;
    size_t w = 0;
    if (keep_tail) {
        for (size_t k = 0; k < l->n_cfgs; k++) {
            if (l->cfgs[k] > s) {
                l->cfgs[w++] = l->cfgs[k];
            }
        }
    }
    l->n_cfgs = w;
    l->base_index = s;
    l->base_cfg = base_cfg;
    return true;
}

/* Open-addressing map (k1, k2) -> (v1, v2). */
typedef struct chk_slot {
    uint64_t k1, k2, v1, v2;
    bool used;
} chk_slot;

typedef struct chk_map {
    chk_slot *s;
    size_t cap; /* power of two */
    size_t n;
} chk_map;

static size_t map_hash(uint64_t k1, uint64_t k2)
{
    uint64_t h = k1 * 0x9e3779b97f4a7c15ULL ^ (k2 + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 31;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 29;
    return (size_t)h;
}

static chk_slot *map_find(const chk_map *m, uint64_t k1, uint64_t k2)
{
    if (m->cap == 0) {
        return NULL;
    }
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        chk_slot *s = &m->s[i];
        if (!s->used) {
            return NULL;
        }
        if (s->k1 == k1 && s->k2 == k2) {
            return s;
        }
    }
}

static bool map_put(chk_map *m, uint64_t k1, uint64_t k2, uint64_t v1, uint64_t v2);

static bool map_grow(chk_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 256;
    chk_slot *old = m->s;
    size_t old_cap = m->cap;
    m->s = calloc(cap, sizeof *m->s);
    if (m->s == NULL) {
        m->s = old;
        return false;
    }
    m->cap = cap;
    m->n = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].used) {
            map_put(m, old[i].k1, old[i].k2, old[i].v1, old[i].v2);
        }
    }
    free(old);
    return true;
}

static bool map_put(chk_map *m, uint64_t k1, uint64_t k2, uint64_t v1, uint64_t v2)
{
    if ((m->n + 1) * 2 > m->cap && !map_grow(m)) {
        return false;
    }
    size_t mask = m->cap - 1;
    for (size_t i = map_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        chk_slot *s = &m->s[i];
        if (!s->used) {
            s->used = true;
            s->k1 = k1;
            s->k2 = k2;
            s->v1 = v1;
            s->v2 = v2;
            m->n++;
            return true;
        }
        if (s->k1 == k1 && s->k2 == k2) {
            s->v1 = v1;
            s->v2 = v2;
            return true;
        }
    }
}

/* ------------------------------------------------------------------------ */

typedef struct chk_prop {
    int node;
    uint64_t index;
    uint64_t term;
    uint64_t hash;
    bool acked;
} chk_prop;

typedef struct chk_node {
    hamok_id id;
    uint32_t init_cfg; /* base configuration of a fresh start */
    bool wiped;
    chk_log view; /* the core's log as the update stream describes it */
    chk_log disk; /* the durable log; 1..disk_snap is the disk's snapshot */
    uint64_t disk_snap;
    uint64_t leader_term; /* term it leads, 0 if not leader */
    uint64_t term;
    uint64_t commit;
    uint64_t applied;
    bool has_hs;
    uint64_t hs_term;
    int hs_vote;
    size_t *pending; /* indexes into c->props */
    size_t n_pending, cap_pending;
    /* Removed by the committed configuration entry (removed_index, removed_term). */
    bool removed;
    uint64_t removed_index;
    uint64_t removed_term;
} chk_node;

struct hamok_chk {
    int n;
    uint64_t now;
    chk_node nodes[HAMOK_CHK_MAX_NODES];
    chk_cfg *cfgs;
    size_t n_cfgs, cap_cfgs;
    chk_map leaders; /* (term, 0) -> (node, time) */
    chk_map oracle;  /* (index, term) -> (hash, prev term) */
    chk_map prop_at; /* (index, term) -> (hash, proposal time) */
    chk_log committed;
    /* Per committed index i (arrays of committed.len + 1, [0] for "none"):
     * the term of the node that first applied it (an upper bound of the term
     * in which it was committed), the reference state digest after it, and
     * the latest proposal time of a client entry among 1..i. */
    uint64_t *known_in;
    uint64_t *ref_hash;
    uint64_t *prop_max;
    uint64_t cap_known;
    hamok_sm ref;
    chk_prop *props;
    size_t n_props, cap_props;
    uint64_t lost;
    uint64_t n_configs, n_installs, n_snapshots, n_reads;
    bool failed;
    hamok_chk_violation v;
};

static bool fail(hamok_chk *c, const char *inv, int node, uint64_t index, uint64_t term,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static bool fail(hamok_chk *c, const char *inv, int node, uint64_t index, uint64_t term,
                 const char *fmt, ...)
{
    if (c->failed) {
        return false;
    }
    c->failed = true;
    c->v.invariant = inv;
    c->v.time_ms = c->now;
    c->v.node = node;
    c->v.index = index;
    c->v.term = term;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->v.detail, sizeof c->v.detail, fmt, ap);
    va_end(ap);
    return false;
}

static bool oom(hamok_chk *c)
{
    return fail(c, "checker-oom", -1, 0, 0, "checker out of memory");
}

/* The id of configuration (members, voters), added if new; UINT32_MAX on
 * allocation failure. */
static uint32_t cfg_intern(hamok_chk *c, uint64_t members, uint64_t voters)
{
    for (size_t k = 0; k < c->n_cfgs; k++) {
        if (c->cfgs[k].members == members && c->cfgs[k].voters == voters) {
            return (uint32_t)k;
        }
    }
    if (c->n_cfgs == c->cap_cfgs) {
        size_t cap = c->cap_cfgs ? c->cap_cfgs * 2 : 16;
        chk_cfg *p = realloc(c->cfgs, cap * sizeof *p);
        if (p == NULL) {
            return UINT32_MAX;
        }
        c->cfgs = p;
        c->cap_cfgs = cap;
    }
    c->cfgs[c->n_cfgs] = (chk_cfg){members, voters};
    return (uint32_t)c->n_cfgs++;
}

static int popcount64(uint64_t x)
{
    int k = 0;
    while (x != 0) {
        x &= x - 1;
        k++;
    }
    return k;
}

static int majority_of(uint64_t voters)
{
    return popcount64(voters) / 2 + 1;
}

static int node_of_id(const hamok_chk *c, const hamok_id *id)
{
    for (int i = 0; i < c->n; i++) {
        if (hamok__id_eq(&c->nodes[i].id, id)) {
            return i;
        }
    }
    return -1;
}

void hamok_chk_members_mask(const hamok_chk *c, const hamok_member *ms, size_t n, uint64_t *members,
                            uint64_t *voters)
{
    uint64_t m = 0, v = 0;
    for (size_t k = 0; k < n; k++) {
        int i = node_of_id(c, &ms[k].id);
        uint64_t bit = i >= 0 ? 1ULL << i : HAMOK_CHK_FOREIGN;
        m |= bit;
        if (ms[k].role == HAMOK_MEMBER_VOTER) {
            v |= bit;
        }
    }
    *members = m;
    *voters = v;
}

hamok_chk *hamok_chk_new(int n_nodes)
{
    if (n_nodes < 1 || n_nodes > HAMOK_CHK_MAX_NODES) {
        return NULL;
    }
    hamok_chk *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    c->n = n_nodes;
    uint64_t boot = n_nodes >= 63 ? ~0ULL >> 1 : (1ULL << n_nodes) - 1;
    if (cfg_intern(c, 0, 0) != CFG_EMPTY || cfg_intern(c, boot, boot) != CFG_BOOT ||
        !log_reserve(&c->committed, 1)) {
        hamok_chk_destroy(&c);
        return NULL;
    }
    c->committed.base_cfg = CFG_BOOT;
    c->cap_known = 256;
    c->known_in = calloc(c->cap_known, sizeof *c->known_in);
    c->ref_hash = calloc(c->cap_known, sizeof *c->ref_hash);
    c->prop_max = calloc(c->cap_known, sizeof *c->prop_max);
    if (c->known_in == NULL || c->ref_hash == NULL || c->prop_max == NULL) {
        hamok_chk_destroy(&c);
        return NULL;
    }
    hamok_sm_init(&c->ref);
    c->ref_hash[0] = hamok_sm_hash(&c->ref);
    for (int i = 0; i < n_nodes; i++) {
        chk_node *nd = &c->nodes[i];
        nd->id = hamok__id_from_u64((uint64_t)i + 1);
        nd->hs_vote = -1;
        nd->init_cfg = CFG_BOOT;
        nd->view.base_cfg = CFG_BOOT;
        nd->disk.base_cfg = CFG_BOOT;
    }
    return c;
}

int hamok_chk_add_node(hamok_chk *c, const hamok_id *id)
{
    if (c->n >= HAMOK_CHK_MAX_NODES) {
        return -1;
    }
    int i = c->n++;
    chk_node *nd = &c->nodes[i];
    memset(nd, 0, sizeof *nd);
    nd->id = *id;
    nd->hs_vote = -1;
    nd->init_cfg = CFG_EMPTY;
    nd->view.base_cfg = CFG_EMPTY;
    nd->disk.base_cfg = CFG_EMPTY;
    return i;
}

int hamok_chk_n(const hamok_chk *c)
{
    return c->n;
}

void hamok_chk_destroy(hamok_chk **pc)
{
    if (pc == NULL || *pc == NULL) {
        return;
    }
    hamok_chk *c = *pc;
    for (int i = 0; i < HAMOK_CHK_MAX_NODES; i++) {
        log_free(&c->nodes[i].view);
        log_free(&c->nodes[i].disk);
        free(c->nodes[i].pending);
    }
    free(c->cfgs);
    free(c->leaders.s);
    free(c->oracle.s);
    free(c->prop_at.s);
    log_free(&c->committed);
    free(c->known_in);
    free(c->ref_hash);
    free(c->prop_max);
    free(c->props);
    free(c);
    *pc = NULL;
}

void hamok_chk_set_time(hamok_chk *c, uint64_t now_ms)
{
    c->now = now_ms;
}

uint64_t hamok_chk_entry_hash(const hamok_entry *e)
{
    uint64_t h = 0xcbf29ce484222325ULL;
#define MIX_(byte)             \
    do {                       \
        h ^= (uint8_t)(byte);  \
        h *= 0x100000001b3ULL; \
    } while (0)
    MIX_(e->type);
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        MIX_(e->client.b[i]);
    }
    for (int i = 0; i < 8; i++) {
        MIX_(e->seq >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        MIX_((uint64_t)e->len >> (8 * i));
    }
    for (size_t i = 0; i < e->len; i++) {
        MIX_(e->data[i]);
    }
#undef MIX_
    return h;
}

const hamok_chk_violation *hamok_chk_failed(const hamok_chk *c)
{
    return c->failed ? &c->v : NULL;
}

static bool bad_node(hamok_chk *c, int node)
{
    if (node < 0 || node >= c->n) {
        fail(c, "update-contract", node, 0, 0, "node %d out of range", node);
        return true;
    }
    return false;
}

/* The configuration id of a CONFIG entry (0 if not one: ids are 1 + id). */
static bool entry_cfg(hamok_chk *c, int node, uint64_t index, const hamok_entry *e, uint32_t *out)
{
    *out = 0;
    if (e->type != HAMOK_ENTRY_CONFIG) {
        return true;
    }
    hamok_member *ms = NULL;
    size_t n = 0;
    if (hamok__codec_decode_config(e->data, e->len, &ms, &n) != HAMOK_OK) {
        return fail(c, "update-contract", node, index, e->term,
                    "CONFIG entry at index %" PRIu64 " does not decode", index);
    }
    uint64_t m, v;
    hamok_chk_members_mask(c, ms, n, &m, &v);
    hamok__members_free(ms, n);
    uint32_t id = cfg_intern(c, m, v);
    if (id == UINT32_MAX) {
        return oom(c);
    }
    *out = id + 1;
    return true;
}

/* Log matching oracle: (index, term) -> (hash, term of index - 1). */
static bool oracle_check(hamok_chk *c, int node, const char *where, uint64_t index, uint64_t term,
                         uint64_t hash, uint64_t prev_term)
{
    chk_slot *s = map_find(&c->oracle, index, term);
    if (s == NULL) {
        if (!map_put(&c->oracle, index, term, hash, prev_term)) {
            return oom(c);
        }
        return true;
    }
    if (s->v1 != hash) {
        return fail(c, "log-matching", node, index, term,
                    "%s: entry (index %" PRIu64 ", term %" PRIu64
                    ") has a different payload than the same (index, term) stored elsewhere",
                    where, index, term);
    }
    if (s->v2 != prev_term) {
        return fail(c, "log-matching", node, index, term,
                    "%s: entry (index %" PRIu64 ", term %" PRIu64 ") follows term %" PRIu64
                    " but the same (index, term) elsewhere follows term %" PRIu64,
                    where, index, term, prev_term, s->v2);
    }
    return true;
}

/* Store entries into a log model after checking them. Entries at or below
 * `skip_upto` (a disk snapshot) are skipped. */
static bool log_store(hamok_chk *c, int node, const char *where, chk_log *l, uint64_t first,
                      const hamok_entry *e, size_t n, uint64_t max_term, uint64_t skip_upto)
{
    size_t k0 = 0;
    if (first <= skip_upto) {
        uint64_t skip = skip_upto - first + 1;
        k0 = skip >= n ? n : (size_t)skip;
        first += k0;
    }
    if (k0 >= n) {
        return true;
    }
    n -= k0;
    e += k0;
    if (first != l->len + 1) {
        return fail(c, "update-contract", node, first, 0,
                    "%s: %zu entries stored at index %" PRIu64 " but the log ends at %" PRIu64
                    " (writes must be contiguous; truncate first)",
                    where, n, first, l->len);
    }
    if (!log_reserve(l, l->len + n)) {
        return oom(c);
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t index = first + k;
        uint64_t prev = log_term(l, index - 1);
        if (e[k].term < prev) {
            return fail(c, "log-matching", node, index, e[k].term,
                        "%s: entry term %" PRIu64 " at index %" PRIu64
                        " is lower than the previous entry's term %" PRIu64,
                        where, e[k].term, index, prev);
        }
        if (max_term != 0 && e[k].term > max_term) {
            return fail(c, "update-contract", node, index, e[k].term,
                        "%s: entry term %" PRIu64 " exceeds the node's term %" PRIu64, where,
                        e[k].term, max_term);
        }
        if (e[k].term == 0) {
            return fail(c, "update-contract", node, index, 0, "%s: entry with term 0", where);
        }
        uint64_t h = hamok_chk_entry_hash(&e[k]);
        if (!oracle_check(c, node, where, index, e[k].term, h, prev)) {
            return false;
        }
        uint32_t cfg;
        if (!entry_cfg(c, node, index, &e[k], &cfg)) {
            return false;
        }
        if (!log_push(l, e[k].term, h, cfg)) {
            return oom(c);
        }
    }
    return true;
}

/* The entries [from, min(upto, len)] of a log about to be truncated. */
typedef struct chk_saved {
    chk_ent *v;
    uint64_t first;
    uint64_t n;
} chk_saved;

static bool saved_take(hamok_chk *c, chk_saved *sv, const chk_log *l, uint64_t from, uint64_t upto)
{
    sv->first = from;
    sv->n = 0;
    sv->v = NULL;
    uint64_t end = upto < l->len ? upto : l->len;
    if (from == 0 || end < from) {
        return true;
    }
    sv->n = end - from + 1;
    sv->v = malloc((size_t)sv->n * sizeof *sv->v);
    if (sv->v == NULL) {
        sv->n = 0;
        return oom(c);
    }
    memcpy(sv->v, &l->v[from - 1], (size_t)sv->n * sizeof *sv->v);
    return true;
}

/* First saved index the log no longer holds identically, 0 if none. */
static uint64_t saved_lost(const chk_saved *sv, const chk_log *l)
{
    for (uint64_t k = 0; k < sv->n; k++) {
        uint64_t i = sv->first + k;
        if (i > l->len || l->v[i - 1].term != sv->v[k].term || l->v[i - 1].hash != sv->v[k].hash) {
            return i;
        }
    }
    return 0;
}

static bool disk_holds(const chk_node *nd, uint64_t index, uint64_t term, uint64_t hash)
{
    const chk_log *d = &nd->disk;
    return index <= d->len && d->v[index - 1].term == term && d->v[index - 1].hash == hash;
}

/* Voters (bits of `voters`) whose disk holds the entry. */
static int disks_holding(const hamok_chk *c, uint64_t voters, uint64_t index, uint64_t term,
                         uint64_t hash)
{
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        if (((voters >> i) & 1u) && disk_holds(&c->nodes[i], index, term, hash)) {
            k++;
        }
    }
    return k;
}

/* The committed configuration in force at `index`. */
static const chk_cfg *committed_cfg_at(const hamok_chk *c, uint64_t index)
{
    return &c->cfgs[log_cfg_at(&c->committed, index)];
}

static const chk_cfg *committed_cfg(const hamok_chk *c)
{
    return &c->cfgs[log_cfg_in_force(&c->committed)];
}

static bool committed_push(hamok_chk *c, const chk_ent *g, const hamok_entry *e, uint64_t node_term)
{
    if (c->committed.len + 2 > c->cap_known) {
        uint64_t cap = c->cap_known * 2;
        uint64_t *k = realloc(c->known_in, (size_t)cap * sizeof *k);
        if (k == NULL) {
            return oom(c);
        }
        c->known_in = k;
        k = realloc(c->ref_hash, (size_t)cap * sizeof *k);
        if (k == NULL) {
            return oom(c);
        }
        c->ref_hash = k;
        k = realloc(c->prop_max, (size_t)cap * sizeof *k);
        if (k == NULL) {
            return oom(c);
        }
        c->prop_max = k;
        c->cap_known = cap;
    }
    if (!log_push(&c->committed, g->term, g->hash, g->cfg)) {
        return oom(c);
    }
    uint64_t i = c->committed.len;
    c->known_in[i] = node_term;
    hamok_sm_apply(&c->ref, i, e->type, e->seq, g->hash);
    c->ref_hash[i] = hamok_sm_hash(&c->ref);
    uint64_t pm = c->prop_max[i - 1];
    const chk_slot *p = map_find(&c->prop_at, i, g->term);
    if (p != NULL && p->v1 == g->hash && p->v2 > pm) {
        pm = p->v2;
    }
    c->prop_max[i] = pm;
    return true;
}

/* A CONFIG entry committed at index i, in term `term` (that of the node that
 * first applied it): one server changes; note removals. */
static bool config_committed(hamok_chk *c, int node, uint64_t i, uint64_t term, uint32_t cfg)
{
    const chk_cfg *prev = committed_cfg_at(c, i - 1);
    const chk_cfg *cur = &c->cfgs[cfg];
    uint64_t changed = (prev->members ^ cur->members) | (prev->voters ^ cur->voters);
    c->n_configs++;
    if (popcount64(changed) > 1) {
        return fail(
            c, "single-server-change", node, i, term,
            "committed configuration at index %" PRIu64 " (members %#" PRIx64 ", voters %#" PRIx64
            ") changes %d servers of the previous one (members %#" PRIx64 ", voters %#" PRIx64 ")",
            i, cur->members, cur->voters, popcount64(changed), prev->members, prev->voters);
    }
    uint64_t gone = prev->members & ~cur->members;
    for (int k = 0; k < c->n; k++) {
        chk_node *nd = &c->nodes[k];
        if ((gone >> k) & 1u) {
            nd->removed = true;
            nd->removed_index = i;
            nd->removed_term = term;
        } else if ((cur->members >> k) & 1u) {
            nd->removed = false;
        }
    }
    return true;
}

/* An entry applied by `node` at `index`: it must be the committed one. The
 * node's configurations in force at the start and at the end of the step
 * are cfg_a and cfg_b. */
static bool apply_one(hamok_chk *c, int node, uint64_t index, const hamok_entry *e,
                      uint64_t node_term, uint32_t cfg_a, uint32_t cfg_b)
{
    chk_node *nd = &c->nodes[node];
    uint64_t h = hamok_chk_entry_hash(e);
    if (index > nd->view.len || nd->view.v[index - 1].term != e->term ||
        nd->view.v[index - 1].hash != h) {
        return fail(c, "state-machine-safety", node, index, e->term,
                    "applied entry (index %" PRIu64 ", term %" PRIu64
                    ") is not the entry the node's own log holds there (log ends at %" PRIu64
                    ", term there %" PRIu64 ")",
                    index, e->term, nd->view.len, log_term(&nd->view, index));
    }
    if (index <= c->committed.len) {
        const chk_ent *g = &c->committed.v[index - 1];
        if (g->term != e->term || g->hash != h) {
            return fail(c, "state-machine-safety", node, index, e->term,
                        "applied (index %" PRIu64 ", term %" PRIu64
                        ") but another node applied term %" PRIu64
                        "%s at that index: divergent committed entry",
                        index, e->term, g->term, g->term == e->term ? " with another payload" : "");
        }
        return true;
    }
    if (index != c->committed.len + 1) {
        return fail(c, "state-machine-safety", node, index, e->term,
                    "applied index %" PRIu64 " leaves a gap after the committed sequence (%" PRIu64
                    ")",
                    index, c->committed.len);
    }
    /* First time anyone applies this index: it must be durable on a majority
     * of the voters of the configuration the node counted with. */
    const chk_cfg *ca = &c->cfgs[cfg_a];
    const chk_cfg *cb = &c->cfgs[cfg_b];
    int on_a = disks_holding(c, ca->voters, index, e->term, h);
    int on_b = disks_holding(c, cb->voters, index, e->term, h);
    if (on_a < majority_of(ca->voters) && on_b < majority_of(cb->voters)) {
        return fail(c, "commit-durability", node, index, e->term,
                    "entry (index %" PRIu64 ", term %" PRIu64
                    ") applied while only %d of the %d voters (%#" PRIx64
                    ") of the configuration in force hold it on disk (%d of %d in the "
                    "configuration at the start of the step)",
                    index, e->term, on_b, popcount64(cb->voters), cb->voters, on_a,
                    popcount64(ca->voters));
    }
    const chk_ent *g = &nd->view.v[index - 1];
    if (!committed_push(c, g, e, node_term)) {
        return false;
    }
    if (g->cfg != 0 && !config_committed(c, node, index, node_term, g->cfg - 1)) {
        return false;
    }
    return true;
}

static void pending_remove(chk_node *nd, size_t k)
{
    nd->pending[k] = nd->pending[nd->n_pending - 1];
    nd->n_pending--;
}

static void resolve_acks(hamok_chk *c, int node, uint64_t first, uint64_t last)
{
    chk_node *nd = &c->nodes[node];
    for (size_t k = 0; k < nd->n_pending;) {
        chk_prop *p = &c->props[nd->pending[k]];
        if (p->index >= first && p->index <= last) {
            const chk_ent *g = &nd->view.v[p->index - 1];
            p->acked = (g->term == p->term && g->hash == p->hash);
            pending_remove(nd, k);
            continue;
        }
        k++;
    }
}

/* A snapshot (index s, term t, configuration id cfg) claims the committed
 * state at s. */
static bool snapshot_is_committed(hamok_chk *c, int node, const char *what, uint64_t s, uint64_t t,
                                  uint32_t cfg)
{
    if (s == 0 || s > c->committed.len || c->committed.v[s - 1].term != t) {
        return fail(c, "snapshot", node, s, t,
                    "%s snapshot at (index %" PRIu64 ", term %" PRIu64
                    ") is not committed (committed sequence ends at %" PRIu64
                    ", term there %" PRIu64 ")",
                    what, s, t, c->committed.len, log_term(&c->committed, s));
    }
    const chk_cfg *want = committed_cfg_at(c, s);
    const chk_cfg *got = &c->cfgs[cfg];
    if (want->members != got->members || want->voters != got->voters) {
        return fail(c, "snapshot", node, s, t,
                    "%s snapshot at index %" PRIu64 " carries members %#" PRIx64 " voters %#" PRIx64
                    " but the committed configuration there is members %#" PRIx64
                    " voters %#" PRIx64,
                    what, s, got->members, got->voters, want->members, want->voters);
    }
    return true;
}

bool hamok_chk_node_step(hamok_chk *c, const hamok_chk_step *s)
{
    if (c->failed) {
        return false;
    }
    if (bad_node(c, s->node)) {
        return false;
    }
    int node = s->node;
    chk_node *nd = &c->nodes[node];
    uint32_t cfg_before = log_cfg_in_force(&nd->view);

    /* 1. Hard state (written synchronously). */
    if (s->hard_state_changed) {
        if (nd->has_hs && s->hs_term < nd->hs_term) {
            return fail(c, "term-monotonic", node, 0, s->hs_term,
                        "durable term goes back from %" PRIu64 " to %" PRIu64, nd->hs_term,
                        s->hs_term);
        }
        if (nd->has_hs && s->hs_term == nd->hs_term && nd->hs_vote >= 0 &&
            s->hs_vote != nd->hs_vote) {
            return fail(c, "vote-once", node, 0, s->hs_term,
                        "vote in term %" PRIu64 " changed from node %d to %d", s->hs_term,
                        nd->hs_vote, s->hs_vote);
        }
        nd->has_hs = true;
        nd->hs_term = s->hs_term;
        nd->hs_vote = s->hs_vote;
    }

    /* 2. Log writes (and a snapshot install). */
    bool rewrote = false;
    uint64_t rewrote_at = 0;
    chk_saved saved = {0};
    if (s->truncate_from != 0 && s->truncate_from <= nd->view.len) {
        rewrote = true;
        rewrote_at = s->truncate_from;
        /* Entries at or below the node's commit index may be rewritten only
         * with themselves. */
        if (!saved_take(c, &saved, &nd->view, s->truncate_from, nd->commit)) {
            return false;
        }
        log_truncate(&nd->view, s->truncate_from);
    }
    if (s->installed) {
        uint64_t si = s->installed_index;
        uint32_t cfg = cfg_intern(c, s->installed_members, s->installed_voters);
        if (cfg == UINT32_MAX) {
            free(saved.v);
            return oom(c);
        }
        if (si <= nd->applied) {
            free(saved.v);
            return fail(c, "state-machine-safety", node, si, s->installed_term,
                        "installed a snapshot at index %" PRIu64 " after applying up to %" PRIu64,
                        si, nd->applied);
        }
        if (!snapshot_is_committed(c, node, "installed", si, s->installed_term, cfg)) {
            free(saved.v);
            return false;
        }
        const chk_ent *g = &c->committed.v[si - 1];
        bool held = si <= nd->view.len && nd->view.v[si - 1].term == g->term &&
                    nd->view.v[si - 1].hash == g->hash;
        if (!log_install(&nd->view, &c->committed, si, cfg, held)) {
            free(saved.v);
            return oom(c);
        }
        c->n_installs++;
    }
    if (s->n_persist > 0 && s->persist_first <= nd->view.len && !rewrote) {
        rewrote = true;
        rewrote_at = s->persist_first;
    }
    bool stored = log_store(c, node, "log write", &nd->view, s->persist_first, s->persist,
                            s->n_persist, s->term, 0);
    uint64_t lost_at = stored ? saved_lost(&saved, &nd->view) : 0;
    free(saved.v);
    if (!stored) {
        return false;
    }
    if (lost_at != 0) {
        return fail(c, "state-machine-safety", node, lost_at, 0,
                    "truncated from index %" PRIu64 " and lost index %" PRIu64
                    " at or below its commit index %" PRIu64,
                    s->truncate_from, lost_at, nd->commit);
    }
    uint32_t cfg_after = log_cfg_in_force(&nd->view);

    /* 3. Leadership (after the step). */
    if (s->term < nd->term) {
        return fail(c, "term-monotonic", node, 0, s->term,
                    "term goes back from %" PRIu64 " to %" PRIu64, nd->term, s->term);
    }
    nd->term = s->term;
    if (s->is_leader) {
        if (s->term == 0) {
            return fail(c, "election-safety", node, 0, 0, "leader in term 0");
        }
        chk_slot *l = map_find(&c->leaders, s->term, 0);
        if (l != NULL && (int)l->v1 != node) {
            return fail(c, "election-safety", node, 0, s->term,
                        "node %d is leader in term %" PRIu64
                        " but node %d already led it (at %" PRIu64 " ms)",
                        node, s->term, (int)l->v1, l->v2);
        }
        if (l == NULL && !map_put(&c->leaders, s->term, 0, (uint64_t)node, c->now)) {
            return oom(c);
        }
        if (nd->leader_term == s->term) {
            if (rewrote) {
                return fail(c, "leader-append-only", node, rewrote_at, s->term,
                            "leader of term %" PRIu64 " rewrote its log from index %" PRIu64,
                            s->term, rewrote_at);
            }
        } else {
            /* Only a voter gets elected: of the configuration in force in
             * its log, or of the one before it while that is uncommitted
             * (thesis §4.2.2: a server removed by an uncommitted entry is
             * still needed, and still campaigns, until it commits). */
            bool voter = (c->cfgs[cfg_after].voters >> node) & 1u;
            const chk_log *v = &nd->view;
            if (!voter && v->n_cfgs > 0 && v->cfgs[v->n_cfgs - 1] > s->commit_index) {
                uint32_t prev = log_cfg_at(v, v->cfgs[v->n_cfgs - 1] - 1);
                voter = prev != UINT32_MAX && ((c->cfgs[prev].voters >> node) & 1u);
            }
            if (!voter) {
                return fail(c, "leader-membership", node, 0, s->term,
                            "node %d became leader of term %" PRIu64
                            " but is no voter of the configuration in force in its log "
                            "(voters %#" PRIx64 ")",
                            node, s->term, c->cfgs[cfg_after].voters);
            }
            /* New leader: it must hold every entry committed in an earlier
             * term (Leader Completeness). An entry first applied by a node
             * in term A was committed in a term <= A, so entries with
             * A < this term must be here. (A leader of an older term can be
             * elected late, after newer terms committed entries.) */
            for (uint64_t i = 1; i <= c->committed.len; i++) {
                const chk_ent *g = &c->committed.v[i - 1];
                if (c->known_in[i] >= s->term) {
                    continue;
                }
                if (i > nd->view.len || nd->view.v[i - 1].term != g->term ||
                    nd->view.v[i - 1].hash != g->hash) {
                    return fail(c, "leader-completeness", node, i, g->term,
                                "new leader of term %" PRIu64
                                " lacks committed entry (index %" PRIu64 ", term %" PRIu64
                                "); its log ends at %" PRIu64 " and holds term %" PRIu64 " there",
                                s->term, i, g->term, nd->view.len, log_term(&nd->view, i));
                }
            }
        }
        nd->leader_term = s->term;
    } else {
        nd->leader_term = 0;
    }

    /* 4. Applied entries (after an install, from its index on). */
    if (s->installed) {
        nd->applied = s->installed_index;
        if (nd->commit < nd->applied) {
            nd->commit = nd->applied;
        }
    }
    if (s->n_apply > 0) {
        if (s->apply_first != nd->applied + 1) {
            return fail(c, "state-machine-safety", node, s->apply_first, 0,
                        "applies from index %" PRIu64 " but had applied up to %" PRIu64,
                        s->apply_first, nd->applied);
        }
        for (size_t k = 0; k < s->n_apply; k++) {
            if (!apply_one(c, node, s->apply_first + k, &s->apply[k], s->term, cfg_before,
                           cfg_after)) {
                return false;
            }
        }
        nd->applied += s->n_apply;
        resolve_acks(c, node, s->apply_first, nd->applied);
    }

    /* 5. Commit index. */
    if (s->commit_index < nd->commit) {
        return fail(c, "commit-monotonic", node, s->commit_index, 0,
                    "commit index goes back from %" PRIu64 " to %" PRIu64, nd->commit,
                    s->commit_index);
    }
    nd->commit = s->commit_index;
    if (nd->applied > nd->commit) {
        return fail(c, "commit-monotonic", node, nd->applied, 0,
                    "applied index %" PRIu64 " exceeds commit index %" PRIu64, nd->applied,
                    nd->commit);
    }

    /* 6. A removed node leads no term after the one in which its removal
     * committed (nor that term once it knows the removal committed). A
     * leader of an older term may still believe it leads: it was elected
     * before, without the entry, and learns nothing from the majority. */
    if (s->is_leader && nd->removed &&
        (s->term > nd->removed_term ||
         (s->term == nd->removed_term && nd->commit >= nd->removed_index))) {
        return fail(c, "removed-leader", node, nd->removed_index, s->term,
                    "node %d leads term %" PRIu64 " (commit %" PRIu64
                    ") although the configuration entry (index %" PRIu64
                    ") that removed it was committed in term %" PRIu64,
                    node, s->term, nd->commit, nd->removed_index, nd->removed_term);
    }

    /* 7. The view must be the core's log, its configuration the core's, its
     * state machine the committed state. */
    if (s->has_core_log) {
        if (s->core_last_index != nd->view.len ||
            s->core_last_term != log_term(&nd->view, nd->view.len)) {
            return fail(c, "update-contract", node, s->core_last_index, s->core_last_term,
                        "the core's log ends at (%" PRIu64 ", term %" PRIu64
                        ") but its updates describe a log ending at (%" PRIu64 ", term %" PRIu64
                        ")",
                        s->core_last_index, s->core_last_term, nd->view.len,
                        log_term(&nd->view, nd->view.len));
        }
    }
    if (s->has_core_config) {
        const chk_cfg *d = &c->cfgs[cfg_after];
        if (d->members != s->core_members || d->voters != s->core_voters) {
            return fail(c, "config-consistency", node, 0, s->term,
                        "the core reports members %#" PRIx64 " voters %#" PRIx64
                        " in force, but its log implies members %#" PRIx64 " voters %#" PRIx64,
                        s->core_members, s->core_voters, d->members, d->voters);
        }
    }
    if (s->has_sm) {
        if (s->sm_applied != nd->applied || s->sm_hash != c->ref_hash[nd->applied]) {
            return fail(c, "state-machine-safety", node, s->sm_applied, 0,
                        "state machine at applied index %" PRIu64 " (digest %016" PRIx64
                        ") is not the committed state at index %" PRIu64 " (digest %016" PRIx64 ")",
                        s->sm_applied, s->sm_hash, nd->applied, c->ref_hash[nd->applied]);
        }
    }
    return true;
}

bool hamok_chk_disk_write(hamok_chk *c, int node, uint64_t truncate_from, uint64_t first,
                          const hamok_entry *e, size_t n)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    chk_log *d = &nd->disk;
    if (truncate_from != 0 && truncate_from <= nd->disk_snap) {
        truncate_from = nd->disk_snap + 1; /* the snapshot stays */
    }
    chk_saved saved = {0};
    if (truncate_from != 0 && truncate_from <= d->len) {
        /* A committed entry may leave a disk only to be rewritten as itself. */
        uint64_t upto = c->committed.len;
        if (!saved_take(c, &saved, d, truncate_from, upto)) {
            return false;
        }
        log_truncate(d, truncate_from);
    }
    bool stored = log_store(c, node, "disk write", d, first, e, n, 0, nd->disk_snap);
    uint64_t lost_at = 0;
    int left = 0;
    uint64_t voters = committed_cfg(c)->voters;
    if (stored) {
        for (uint64_t k = 0; k < saved.n && lost_at == 0; k++) {
            uint64_t i = saved.first + k;
            const chk_ent *g = &c->committed.v[i - 1];
            bool was_committed = saved.v[k].term == g->term && saved.v[k].hash == g->hash;
            bool still = i <= d->len && d->v[i - 1].term == g->term && d->v[i - 1].hash == g->hash;
            if (!was_committed || still) {
                continue;
            }
            /* A follower may lose a committed entry it was not needed for
             * (a stale leader of an older term can still rewrite it), but a
             * majority of the voters must keep it. */
            left = disks_holding(c, voters, i, g->term, g->hash);
            if (left < majority_of(voters)) {
                lost_at = i;
            }
        }
    }
    free(saved.v);
    if (!stored) {
        return false;
    }
    if (lost_at != 0) {
        return fail(c, "commit-durability", node, lost_at, c->committed.v[lost_at - 1].term,
                    "committed entry (index %" PRIu64 ", term %" PRIu64
                    ") removed from a disk: only %d of the %d voters (%#" PRIx64
                    ") of the committed configuration still hold it",
                    lost_at, c->committed.v[lost_at - 1].term, left, popcount64(voters), voters);
    }
    return true;
}

bool hamok_chk_disk_snapshot(hamok_chk *c, int node, uint64_t index, uint64_t term,
                             uint64_t members, uint64_t voters, uint64_t sm_hash, bool log_held)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    uint32_t cfg = cfg_intern(c, members, voters);
    if (cfg == UINT32_MAX) {
        return oom(c);
    }
    if (!snapshot_is_committed(c, node, "durable", index, term, cfg)) {
        return false;
    }
    if (sm_hash != c->ref_hash[index]) {
        return fail(c, "snapshot", node, index, term,
                    "snapshot at index %" PRIu64 " holds state digest %016" PRIx64
                    ", the committed state there is %016" PRIx64,
                    index, sm_hash, c->ref_hash[index]);
    }
    if (index <= nd->disk_snap) {
        return fail(c, "update-contract", node, index, term,
                    "snapshot at index %" PRIu64 " stored over a newer one at %" PRIu64, index,
                    nd->disk_snap);
    }
    const chk_ent *g = &c->committed.v[index - 1];
    bool held = disk_holds(nd, index, g->term, g->hash);
    if (held != log_held) {
        return fail(c, "sim-internal", node, index, term,
                    "the simulator says its disk log %s (index %" PRIu64 ", term %" PRIu64
                    ") but the checker's disk model %s",
                    log_held ? "holds" : "lacks", index, term, held ? "holds it" : "lacks it");
    }
    if (!log_install(&nd->disk, &c->committed, index, cfg, held)) {
        return oom(c);
    }
    nd->disk_snap = index;
    c->n_snapshots++;
    return true;
}

bool hamok_chk_disk_preset(hamok_chk *c, int node, uint64_t term, int vote, const hamok_entry *e,
                           size_t n)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    log_clear(&nd->disk, nd->init_cfg);
    nd->disk_snap = 0;
    nd->has_hs = true;
    nd->hs_term = term;
    nd->hs_vote = vote;
    return log_store(c, node, "disk preset", &nd->disk, 1, e, n, term, 0);
}

void hamok_chk_crash(hamok_chk *c, int node)
{
    if (node < 0 || node >= c->n) {
        return;
    }
    chk_node *nd = &c->nodes[node];
    nd->leader_term = 0;
    nd->n_pending = 0;
}

void hamok_chk_wipe(hamok_chk *c, int node)
{
    if (node < 0 || node >= c->n) {
        return;
    }
    chk_node *nd = &c->nodes[node];
    nd->leader_term = 0;
    nd->n_pending = 0;
    nd->wiped = true;
    log_clear(&nd->view, CFG_EMPTY);
    /* The disk stays as a ghost: acknowledgements the node sent before it
     * lost its memory may still be counted by a leader (it cannot know), so
     * commit-durability counts what the node held while it is a voter —
     * memory mode's assumption that only a minority loses its state at
     * once. hamok_chk_wipe_safe() never counts it. */
    nd->has_hs = false;
}

/* Length of the committed prefix the node's disk holds (a prefix: by Log
 * Matching a disk holding a committed (i, term) holds 1..i). */
static uint64_t disk_prefix(const hamok_chk *c, const chk_node *nd)
{
    uint64_t lo = 0, hi = nd->disk.len < c->committed.len ? nd->disk.len : c->committed.len;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        const chk_ent *g = &c->committed.v[mid - 1];
        if (disk_holds(nd, mid, g->term, g->hash)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    return lo;
}

static bool safe_without(const hamok_chk *c, uint64_t voters, int node)
{
    if (voters == 0) {
        return true; /* a peer that joined and knows no configuration yet */
    }
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        const chk_node *nd = &c->nodes[i];
        if (((voters >> i) & 1u) && i != node && !nd->wiped &&
            disk_prefix(c, nd) >= c->committed.len) {
            k++;
        }
    }
    return k >= majority_of(voters);
}

bool hamok_chk_wipe_safe(const hamok_chk *c, int node, uint64_t nodes)
{
    if (c->failed || node < 0 || node >= c->n) {
        return false;
    }
    if (!safe_without(c, committed_cfg(c)->voters, node)) {
        return false;
    }
    for (int i = 0; i < c->n; i++) {
        if (((nodes >> i) & 1u) && !c->nodes[i].wiped &&
            !safe_without(c, c->cfgs[log_cfg_in_force(&c->nodes[i].view)].voters, node)) {
            return false;
        }
    }
    return true;
}

bool hamok_chk_restart(hamok_chk *c, int node, uint64_t term, uint64_t commit_index,
                       uint64_t applied_index, uint64_t last_index, uint64_t sm_hash)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    nd->leader_term = 0;
    nd->n_pending = 0;
    if (!log_copy(&nd->view, &nd->disk)) {
        return oom(c);
    }
    if (nd->has_hs && term < nd->hs_term) {
        return fail(c, "term-monotonic", node, 0, term,
                    "restarted in term %" PRIu64 " below its durable term %" PRIu64, term,
                    nd->hs_term);
    }
    if (last_index != nd->disk.len) {
        return fail(c, "update-contract", node, last_index, 0,
                    "restarted with a log ending at %" PRIu64 " but the disk holds %" PRIu64,
                    last_index, nd->disk.len);
    }
    if (applied_index > commit_index) {
        return fail(c, "commit-monotonic", node, applied_index, 0,
                    "restarted with applied %" PRIu64 " > commit %" PRIu64, applied_index,
                    commit_index);
    }
    if (applied_index != nd->disk_snap) {
        return fail(c, "snapshot", node, applied_index, 0,
                    "restarted with applied index %" PRIu64
                    " but its disk's snapshot is at %" PRIu64,
                    applied_index, nd->disk_snap);
    }
    if (sm_hash != c->ref_hash[applied_index]) {
        return fail(c, "snapshot", node, applied_index, 0,
                    "state machine restored at index %" PRIu64 " has digest %016" PRIx64
                    ", the committed state there is %016" PRIx64,
                    applied_index, sm_hash, c->ref_hash[applied_index]);
    }
    nd->term = term;
    nd->commit = commit_index;
    nd->applied = applied_index;
    return true;
}

bool hamok_chk_propose(hamok_chk *c, int node, uint64_t index, uint64_t term, const hamok_entry *e,
                       size_t n)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    /* The node led `term` (it may have stepped down within the same step,
     * e.g. a check-quorum deadline that passed before the proposal). */
    const chk_slot *l = map_find(&c->leaders, term, 0);
    if (l == NULL || (int)l->v1 != node) {
        return fail(c, "update-contract", node, index, term,
                    "proposal accepted in term %" PRIu64 " by a node that did not lead it", term);
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t idx = index + k;
        uint64_t h = hamok_chk_entry_hash(&e[k]);
        if (idx == 0 || idx > nd->view.len || nd->view.v[idx - 1].term != term ||
            nd->view.v[idx - 1].hash != h) {
            return fail(c, "update-contract", node, idx, term,
                        "proposal reported at (index %" PRIu64 ", term %" PRIu64
                        ") but the log does not hold it there",
                        idx, term);
        }
        if (c->n_props == c->cap_props) {
            size_t cap = c->cap_props ? c->cap_props * 2 : 256;
            chk_prop *p = realloc(c->props, cap * sizeof *p);
            if (p == NULL) {
                return oom(c);
            }
            c->props = p;
            c->cap_props = cap;
        }
        if (nd->n_pending == nd->cap_pending) {
            size_t cap = nd->cap_pending ? nd->cap_pending * 2 : 64;
            size_t *p = realloc(nd->pending, cap * sizeof *p);
            if (p == NULL) {
                return oom(c);
            }
            nd->pending = p;
            nd->cap_pending = cap;
        }
        if (!map_put(&c->prop_at, idx, term, h, c->now)) {
            return oom(c);
        }
        c->props[c->n_props] = (chk_prop){.node = node, .index = idx, .term = term, .hash = h};
        nd->pending[nd->n_pending++] = c->n_props;
        c->n_props++;
    }
    return true;
}

uint64_t hamok_chk_read_start(const hamok_chk *c)
{
    return c->committed.len;
}

bool hamok_chk_read(hamok_chk *c, int node, uint64_t lower, uint64_t start_ms, uint64_t index,
                    uint64_t applied, uint64_t sm_hash, uint64_t served_ms)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    c->n_reads++;
    if (applied > c->committed.len || sm_hash != c->ref_hash[applied]) {
        return fail(c, "read-linearizability", node, applied, 0,
                    "read served from state digest %016" PRIx64 " at applied index %" PRIu64
                    ", which is not the committed state there (committed length %" PRIu64 ")",
                    sm_hash, applied, c->committed.len);
    }
    if (applied < index) {
        return fail(c, "read-linearizability", node, applied, 0,
                    "read served at applied index %" PRIu64 " below its read index %" PRIu64,
                    applied, index);
    }
    if (applied < lower) {
        return fail(c, "read-linearizability", node, applied, 0,
                    "stale read: started at %" PRIu64 " ms when %" PRIu64
                    " entries were committed, served from state at index %" PRIu64
                    " (read index %" PRIu64 ")",
                    start_ms, lower, applied, index);
    }
    if (c->prop_max[applied] > served_ms) {
        return fail(c, "read-linearizability", node, applied, 0,
                    "read served at %" PRIu64 " ms reflects a write proposed at %" PRIu64 " ms",
                    served_ms, c->prop_max[applied]);
    }
    return true;
}

bool hamok_chk_final(hamok_chk *c, uint64_t live_mask)
{
    if (c->failed) {
        return false;
    }
    c->lost = 0;
    for (size_t k = 0; k < c->n_props; k++) {
        const chk_prop *p = &c->props[k];
        bool in_seq = p->index <= c->committed.len;
        const chk_ent *g = in_seq ? &c->committed.v[p->index - 1] : NULL;
        bool committed = g != NULL && g->term == p->term && g->hash == p->hash;
        if (p->acked) {
            if (!committed) {
                return fail(c, "acked-durable", p->node, p->index, p->term,
                            "acknowledged proposal (index %" PRIu64 ", term %" PRIu64
                            ") is not in the final committed sequence (length %" PRIu64
                            ", term there %" PRIu64 ")",
                            p->index, p->term, c->committed.len, g ? g->term : 0);
            }
            for (int i = 0; i < c->n; i++) {
                if (!((live_mask >> i) & 1u)) {
                    continue;
                }
                const chk_log *v = &c->nodes[i].view;
                if (p->index > v->len || v->v[p->index - 1].term != p->term ||
                    v->v[p->index - 1].hash != p->hash) {
                    return fail(c, "acked-durable", i, p->index, p->term,
                                "node %d's final log lacks acknowledged entry (index %" PRIu64
                                ", term %" PRIu64 ")",
                                i, p->index, p->term);
                }
            }
            continue;
        }
        if (committed) {
            continue;
        }
        if (in_seq) {
            c->lost++;
            continue;
        }
        /* Beyond the committed sequence: lost only if a later term already
         * owns the tail (entries past it carry terms >= that one). */
        if (c->committed.len > 0 && c->committed.v[c->committed.len - 1].term > p->term) {
            c->lost++;
            continue;
        }
        return fail(c, "liveness", p->node, p->index, p->term,
                    "proposal (index %" PRIu64 ", term %" PRIu64
                    ") unresolved after heal: committed sequence ends at %" PRIu64,
                    p->index, p->term, c->committed.len);
    }
    return true;
}

uint64_t hamok_chk_committed_len(const hamok_chk *c)
{
    return c->committed.len;
}

bool hamok_chk_committed_at(const hamok_chk *c, uint64_t index, uint64_t *term, uint64_t *hash)
{
    if (index == 0 || index > c->committed.len) {
        return false;
    }
    if (term) {
        *term = c->committed.v[index - 1].term;
    }
    if (hash) {
        *hash = c->committed.v[index - 1].hash;
    }
    return true;
}

uint64_t hamok_chk_committed_members(const hamok_chk *c, uint64_t *voters)
{
    const chk_cfg *g = committed_cfg(c);
    if (voters != NULL) {
        *voters = g->voters;
    }
    return g->members;
}

bool hamok_chk_view_config_pending(const hamok_chk *c, int node)
{
    if (node < 0 || node >= c->n) {
        return false;
    }
    const chk_log *v = &c->nodes[node].view;
    if (v->n_cfgs == 0) {
        return false; /* the base: bootstrap, or a snapshot's (committed) */
    }
    uint64_t i = v->cfgs[v->n_cfgs - 1];
    return i > c->committed.len || c->committed.v[i - 1].term != v->v[i - 1].term ||
           c->committed.v[i - 1].hash != v->v[i - 1].hash;
}

uint64_t hamok_chk_view_members(const hamok_chk *c, int node, uint64_t *voters)
{
    if (node < 0 || node >= c->n) {
        if (voters != NULL) {
            *voters = 0;
        }
        return 0;
    }
    const chk_cfg *g = &c->cfgs[log_cfg_in_force(&c->nodes[node].view)];
    if (voters != NULL) {
        *voters = g->voters;
    }
    return g->members;
}

bool hamok_chk_is_removed(const hamok_chk *c, int node)
{
    return node >= 0 && node < c->n && c->nodes[node].removed;
}

uint64_t hamok_chk_view_len(const hamok_chk *c, int node)
{
    return (node >= 0 && node < c->n) ? c->nodes[node].view.len : 0;
}

bool hamok_chk_view_at(const hamok_chk *c, int node, uint64_t index, uint64_t *term, uint64_t *hash)
{
    if (node < 0 || node >= c->n) {
        return false;
    }
    const chk_log *v = &c->nodes[node].view;
    if (index == 0 || index > v->len) {
        return false;
    }
    if (term) {
        *term = v->v[index - 1].term;
    }
    if (hash) {
        *hash = v->v[index - 1].hash;
    }
    return true;
}

uint64_t hamok_chk_disk_len(const hamok_chk *c, int node)
{
    return (node >= 0 && node < c->n) ? c->nodes[node].disk.len : 0;
}

int hamok_chk_leader_of(const hamok_chk *c, uint64_t term)
{
    const chk_slot *s = map_find(&c->leaders, term, 0);
    return s ? (int)s->v1 : -1;
}

void hamok_chk_stats_get(const hamok_chk *c, hamok_chk_stats *out)
{
    memset(out, 0, sizeof *out);
    out->proposals = c->n_props;
    for (size_t k = 0; k < c->n_props; k++) {
        if (c->props[k].acked) {
            out->acked++;
        }
    }
    out->lost = c->lost;
    out->leaders = c->leaders.n;
    out->committed = c->committed.len;
    out->configs = c->n_configs;
    out->installs = c->n_installs;
    out->snapshots = c->n_snapshots;
    out->reads = c->n_reads;
}
