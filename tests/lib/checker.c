#include "checker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Small containers. */

typedef struct chk_ent {
    uint64_t term;
    uint64_t hash;
} chk_ent;

/* A log: index i (1-based) lives at v[i - 1]. */
typedef struct chk_log {
    chk_ent *v;
    uint64_t len;
    uint64_t cap;
} chk_log;

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

static bool log_push(chk_log *l, uint64_t term, uint64_t hash)
{
    if (!log_reserve(l, l->len + 1)) {
        return false;
    }
    l->v[l->len].term = term;
    l->v[l->len].hash = hash;
    l->len++;
    return true;
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
    chk_log view;         /* the core's log as the update stream describes it */
    chk_log disk;         /* the durable log */
    uint64_t leader_term; /* term it leads, 0 if not leader */
    uint64_t term;
    uint64_t commit;
    uint64_t applied;
    bool has_hs;
    uint64_t hs_term;
    int hs_vote;
    size_t *pending; /* indexes into c->props */
    size_t n_pending, cap_pending;
} chk_node;

struct hamok_chk {
    int n;
    uint64_t now;
    chk_node nodes[HAMOK_CHK_MAX_NODES];
    chk_map leaders; /* (term, 0) -> (node, time) */
    chk_map oracle;  /* (index, term) -> (hash, prev term) */
    chk_log committed;
    /* Per committed index: the term of the node that first applied it, an
     * upper bound of the term in which it was committed. */
    uint64_t *known_in;
    uint64_t cap_known;
    chk_prop *props;
    size_t n_props, cap_props;
    uint64_t lost;
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
    for (int i = 0; i < n_nodes; i++) {
        c->nodes[i].hs_vote = -1;
    }
    return c;
}

void hamok_chk_destroy(hamok_chk **pc)
{
    if (pc == NULL || *pc == NULL) {
        return;
    }
    hamok_chk *c = *pc;
    for (int i = 0; i < HAMOK_CHK_MAX_NODES; i++) {
        free(c->nodes[i].view.v);
        free(c->nodes[i].disk.v);
        free(c->nodes[i].pending);
    }
    free(c->leaders.s);
    free(c->oracle.s);
    free(c->committed.v);
    free(c->known_in);
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

/* Store entries into a log model after checking them. */
static bool log_store(hamok_chk *c, int node, const char *where, chk_log *l, uint64_t first,
                      const hamok_entry *e, size_t n, uint64_t max_term)
{
    if (n == 0) {
        return true;
    }
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
        l->v[l->len].term = e[k].term;
        l->v[l->len].hash = h;
        l->len++;
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

static int majority(const hamok_chk *c)
{
    return c->n / 2 + 1;
}

static int disks_holding(const hamok_chk *c, uint64_t index, uint64_t term, uint64_t hash)
{
    int k = 0;
    for (int i = 0; i < c->n; i++) {
        const chk_log *d = &c->nodes[i].disk;
        if (index <= d->len && d->v[index - 1].term == term && d->v[index - 1].hash == hash) {
            k++;
        }
    }
    return k;
}

/* An entry applied by `node` at `index`: it must be the committed one. */
static bool apply_one(hamok_chk *c, int node, uint64_t index, const hamok_entry *e,
                      uint64_t node_term)
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
    /* First time anyone applies this index: it must be durable on a majority. */
    int on_disk = disks_holding(c, index, e->term, h);
    if (on_disk < majority(c)) {
        return fail(c, "commit-durability", node, index, e->term,
                    "entry (index %" PRIu64 ", term %" PRIu64
                    ") applied while only %d of %d disks hold it (majority %d)",
                    index, e->term, on_disk, c->n, majority(c));
    }
    if (c->committed.len == c->cap_known) {
        uint64_t cap = c->cap_known ? c->cap_known * 2 : 256;
        uint64_t *k = realloc(c->known_in, (size_t)cap * sizeof *k);
        if (k == NULL) {
            return oom(c);
        }
        c->known_in = k;
        c->cap_known = cap;
    }
    if (!log_push(&c->committed, e->term, h)) {
        return oom(c);
    }
    c->known_in[c->committed.len - 1] = node_term;
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

    /* 2. Log writes. */
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
        nd->view.len = s->truncate_from - 1;
    }
    if (s->n_persist > 0 && s->persist_first <= nd->view.len && !rewrote) {
        rewrote = true;
        rewrote_at = s->persist_first;
    }
    bool stored = log_store(c, node, "log write", &nd->view, s->persist_first, s->persist,
                            s->n_persist, s->term);
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
            /* New leader: it must hold every entry committed in an earlier
             * term (Leader Completeness). An entry first applied by a node
             * in term A was committed in a term <= A, so entries with
             * A < this term must be here. (A leader of an older term can be
             * elected late, after newer terms committed entries.) */
            for (uint64_t i = 1; i <= c->committed.len; i++) {
                const chk_ent *g = &c->committed.v[i - 1];
                if (c->known_in[i - 1] >= s->term) {
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

    /* 4. Applied entries. */
    if (s->n_apply > 0) {
        if (s->apply_first != nd->applied + 1) {
            return fail(c, "state-machine-safety", node, s->apply_first, 0,
                        "applies from index %" PRIu64 " but had applied up to %" PRIu64,
                        s->apply_first, nd->applied);
        }
        for (size_t k = 0; k < s->n_apply; k++) {
            if (!apply_one(c, node, s->apply_first + k, &s->apply[k], s->term)) {
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

    /* 6. The view must be the core's log. */
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
    return true;
}

bool hamok_chk_disk_write(hamok_chk *c, int node, uint64_t truncate_from, uint64_t first,
                          const hamok_entry *e, size_t n)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_log *d = &c->nodes[node].disk;
    chk_saved saved = {0};
    if (truncate_from != 0 && truncate_from <= d->len) {
        /* A committed entry may leave a disk only to be rewritten as itself. */
        uint64_t upto = c->committed.len;
        if (!saved_take(c, &saved, d, truncate_from, upto)) {
            return false;
        }
        d->len = truncate_from - 1;
    }
    bool stored = log_store(c, node, "disk write", d, first, e, n, 0);
    uint64_t lost_at = 0;
    int left = 0;
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
             * majority of disks must keep it. */
            left = disks_holding(c, i, g->term, g->hash);
            if (left < majority(c)) {
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
                    ") removed from a disk: only %d of %d disks still hold it (majority %d)",
                    lost_at, c->committed.v[lost_at - 1].term, left, c->n, majority(c));
    }
    return true;
}

bool hamok_chk_disk_preset(hamok_chk *c, int node, uint64_t term, int vote, const hamok_entry *e,
                           size_t n)
{
    if (c->failed || bad_node(c, node)) {
        return false;
    }
    chk_node *nd = &c->nodes[node];
    nd->disk.len = 0;
    nd->has_hs = true;
    nd->hs_term = term;
    nd->hs_vote = vote;
    return log_store(c, node, "disk preset", &nd->disk, 1, e, n, term);
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

bool hamok_chk_restart(hamok_chk *c, int node, uint64_t term, uint64_t commit_index,
                       uint64_t applied_index, uint64_t last_index)
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
        c->props[c->n_props] = (chk_prop){.node = node, .index = idx, .term = term, .hash = h};
        nd->pending[nd->n_pending++] = c->n_props;
        c->n_props++;
    }
    return true;
}

bool hamok_chk_final(hamok_chk *c, unsigned live_mask)
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
                if (!(live_mask & (1u << i))) {
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
}
