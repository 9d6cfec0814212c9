#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "sm.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/prng.h"

#define SIM_CLUSTER   "sim"
#define SIM_MAX_TYPES 32
/* Events processed at one virtual instant before we call it a livelock. */
#define SIM_MAX_SAME_TIME  200000u
#define SIM_MAX_TICK_LOOPS 1000u

enum { EV_DELIVER = 1, EV_TIMER = 2, EV_PERSIST = 3, EV_CALL = 4, EV_SNAPSHOT = 5 };

typedef struct sim_event {
    uint64_t at;
    uint64_t seq;
    int kind;
    int node;       /* receiver / owner; -1 for calls */
    int from;       /* DELIVER: sender */
    uint32_t inc;   /* TIMER / PERSIST / SNAPSHOT: incarnation at schedule time */
    uint64_t arg;   /* TIMER: global deadline; PERSIST: write id; SNAPSHOT: write id;
                       CALL: arg */
    uint8_t *bytes; /* DELIVER (owned) */
    size_t len;
    hamok_sim_fn fn; /* CALL */
    void *ud;
} sim_event;

typedef struct sim_link {
    double drop;
    double dup;
    uint32_t dmin;
    uint32_t dmax;
    bool up;
} sim_link;

typedef struct sim_write {
    uint64_t id;
    uint64_t truncate_from;
    uint64_t first;
    hamok_entry *e; /* owned copies */
    size_t n;
    /* Already on disk (synced by a snapshot install); only the PERSISTED
     * notification is still due. */
    bool flushed;
    uint64_t last_index, last_term;
} sim_write;

/* A read started on a node: waiting for its barrier (done false), then for
 * the node to apply `index`. */
typedef struct sim_read {
    uint64_t id;
    uint64_t start;
    uint64_t lower; /* committed length when it started */
    bool done;
    uint64_t index;
} sim_read;

typedef struct sim_node {
    hamok_raft *core; /* NULL while crashed */
    bool paused;
    bool dead;      /* wiped or retired: never restarted */
    bool wiped;     /* memory mode: its messages in flight die with it */
    bool bootstrap; /* starts with the bootstrap voters */
    bool no_snapshots;
    uint32_t inc;
    bool timer_armed;
    uint64_t timer_at;
    uint64_t last_tick_at;
    uint32_t same_time_ticks;
    /* Disk: hard state, snapshot slot, the log after the snapshot. */
    uint64_t d_term;
    int d_vote;
    bool d_has_snap;
    uint64_t d_snap_index, d_snap_term;
    hamok_buf d_snap;   /* the blob (sm.h) */
    uint64_t d_base;    /* == d_snap_index: the log holds d_base + 1 .. d_base + d_len */
    hamok_entry *d_log; /* owned copies; index i at d_log[i - d_base - 1] */
    size_t d_len, d_cap;
    /* A local snapshot being written (one at a time). */
    bool s_pending;
    uint64_t s_id;
    uint64_t s_index, s_term, s_members, s_voters, s_hash;
    hamok_buf s_blob;
    /* Chunks of an incoming snapshot (lost in a crash). */
    hamok_buf in_blob;
    /* State machine (lost in a crash, restored from the snapshot). */
    hamok_sm sm;
    /* Configuration the core reported in force. */
    bool cfg_known;
    uint64_t cfg_members, cfg_voters;
    /* Reads in progress. */
    sim_read *reads;
    size_t n_reads, cap_reads;
    sim_write *w; /* pending writes, FIFO: w[0..w_len) */
    size_t w_len, w_cap;
    uint64_t w_next_id;
    uint64_t w_last_done;
    /* Events waiting for resume. */
    sim_event *def;
    size_t n_def, cap_def;
    /* Clock. */
    double rate;
    uint64_t offset;
    /* Counters. */
    uint64_t sent[SIM_MAX_TYPES];
    uint64_t rejects;
    /* Trace. */
    hamok_raft_role last_role;
    uint64_t last_term;
    uint64_t last_commit;
} sim_node;

struct hamok_sim {
    hamok_sim_config cfg;
    int n;
    uint64_t now;
    uint64_t seq;
    uint64_t same_time_steps;
    uint64_t same_time_at;
    sim_event *heap;
    size_t hn, hcap;
    sim_link link[HAMOK_SIM_MAX_NODES][HAMOK_SIM_MAX_NODES];
    sim_node nodes[HAMOK_SIM_MAX_NODES];
    hamok_id ids[HAMOK_SIM_MAX_NODES];
    int n_boot; /* bootstrap voters: nodes 0..n_boot-1 */
    hamok_prng net;
    hamok_prng disk;
    hamok_prng clk;
    hamok_chk *chk;
    hamok_buf enc;
    hamok_sim_filter filter;
    void *filter_ud;
    hamok_sim_role_fn on_role;
    void *on_role_ud;
    hamok_sim_commit_fn on_commit;
    void *on_commit_ud;
    hamok_sim_read_fn on_read;
    void *on_read_ud;
    uint64_t read_counter;
    bool failed;
    hamok_chk_violation v;
    char err[1400];
    uint64_t prop_counter;
    hamok_sim_stats st;
    bool trace;
};

/* ------------------------------------------------------------------------ */
/* Failures. */

static void format_error(hamok_sim *s)
{
    const hamok_chk_violation *v = &s->v;
    char node[16] = "-";
    if (v->node >= 0) {
        snprintf(node, sizeof node, "n%d", v->node);
    }
    char hint[256];
    if (s->cfg.replay_hint != NULL) {
        snprintf(hint, sizeof hint, "%s", s->cfg.replay_hint);
    } else {
        snprintf(hint, sizeof hint,
                 "HAMOK_SIM_SEED=%" PRIu64
                 " <this test> (HAMOK_SIM_TRACE=1 prints the event trace)",
                 s->cfg.seed);
    }
    snprintf(s->err, sizeof s->err,
             "INVARIANT VIOLATED: %s\n"
             "  seed=%" PRIu64 " nodes=%d virtual_time=%" PRIu64 " ms node=%s index=%" PRIu64
             " term=%" PRIu64
             "\n"
             "  %s\n"
             "  replay: %s",
             v->invariant, s->cfg.seed, s->n, v->time_ms, node, v->index, v->term, v->detail, hint);
}

static void sim_failv(hamok_sim *s, const char *inv, int node, uint64_t index, uint64_t term,
                      const char *fmt, va_list ap)
{
    if (s->failed) {
        return;
    }
    s->failed = true;
    memset(&s->v, 0, sizeof s->v);
    s->v.invariant = inv;
    s->v.time_ms = s->now;
    s->v.node = node;
    s->v.index = index;
    s->v.term = term;
    vsnprintf(s->v.detail, sizeof s->v.detail, fmt, ap);
    format_error(s);
    if (s->trace) {
        printf("%s\n", s->err);
    }
}

static bool sim_fail(hamok_sim *s, const char *inv, int node, uint64_t index, uint64_t term,
                     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static bool sim_fail(hamok_sim *s, const char *inv, int node, uint64_t index, uint64_t term,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sim_failv(s, inv, node, index, term, fmt, ap);
    va_end(ap);
    return false;
}

void hamok_sim_fail(hamok_sim *s, const char *invariant, int node, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sim_failv(s, invariant, node, 0, 0, fmt, ap);
    va_end(ap);
}

/* Pull a checker violation into the simulator's report. */
static bool chk_ok(hamok_sim *s, bool ok)
{
    if (ok || s->failed) {
        return ok && !s->failed;
    }
    const hamok_chk_violation *v = hamok_chk_failed(s->chk);
    if (v == NULL) {
        return sim_fail(s, "checker", -1, 0, 0, "checker returned false without a report");
    }
    s->failed = true;
    s->v = *v;
    format_error(s);
    if (s->trace) {
        printf("%s\n", s->err);
    }
    return false;
}

bool hamok_sim_failed(const hamok_sim *s)
{
    return s->failed;
}

const char *hamok_sim_error(const hamok_sim *s)
{
    return s->failed ? s->err : "";
}

const hamok_chk_violation *hamok_sim_violation(const hamok_sim *s)
{
    return s->failed ? &s->v : NULL;
}

hamok_chk *hamok_sim_checker(hamok_sim *s)
{
    return s->chk;
}

/* ------------------------------------------------------------------------ */
/* Event heap. */

static bool ev_less(const sim_event *a, const sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(hamok_sim *s, sim_event ev)
{
    if (s->hn == s->hcap) {
        size_t cap = s->hcap ? s->hcap * 2 : 1024;
        sim_event *h = realloc(s->heap, cap * sizeof *h);
        if (h == NULL) {
            free(ev.bytes);
            sim_fail(s, "sim-oom", -1, 0, 0, "simulator out of memory");
            return;
        }
        s->heap = h;
        s->hcap = cap;
    }
    ev.seq = s->seq++;
    size_t i = s->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ev_less(&ev, &s->heap[p])) {
            break;
        }
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}

static sim_event heap_pop(hamok_sim *s)
{
    sim_event top = s->heap[0];
    sim_event last = s->heap[--s->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= s->hn) {
            break;
        }
        size_t m = l;
        if (l + 1 < s->hn && ev_less(&s->heap[l + 1], &s->heap[l])) {
            m = l + 1;
        }
        if (!ev_less(&s->heap[m], &last)) {
            break;
        }
        s->heap[i] = s->heap[m];
        i = m;
    }
    if (s->hn > 0) {
        s->heap[i] = last;
    }
    return top;
}

/* ------------------------------------------------------------------------ */
/* Helpers. */

hamok_id hamok_sim_node_id(int node)
{
    return hamok__id_from_u64((uint64_t)node + 1);
}

int hamok_sim_node_of(const hamok_sim *s, const hamok_id *id)
{
    /* ids are hamok__id_from_u64(i + 1): zeros, then i + 1 big-endian. */
    uint64_t v = 0;
    for (int k = 0; k < 8; k++) {
        if (id->b[k] != 0) {
            return -1;
        }
        v = (v << 8) | id->b[8 + k];
    }
    return v >= 1 && v <= (uint64_t)s->n ? (int)(v - 1) : -1;
}

static void members_mask(const hamok_sim *s, const hamok_member *ms, size_t n, uint64_t *members,
                         uint64_t *voters)
{
    uint64_t m = 0, v = 0;
    for (size_t k = 0; k < n; k++) {
        int i = hamok_sim_node_of(s, &ms[k].id);
        uint64_t bit = i >= 0 ? 1ULL << i : HAMOK_CHK_FOREIGN;
        m |= bit;
        if (ms[k].role == HAMOK_MEMBER_VOTER) {
            v |= bit;
        }
    }
    *members = m;
    *voters = v;
}

static uint64_t local_time(const sim_node *nd, uint64_t g)
{
    return nd->offset + (uint64_t)((double)g * nd->rate);
}

/* Smallest global time >= now at which the node's clock reads >= D. */
static uint64_t to_global(const sim_node *nd, uint64_t d, uint64_t now)
{
    if (d <= local_time(nd, now)) {
        return now;
    }
    double x = (double)(d - nd->offset) / nd->rate;
    uint64_t g = x > (double)now ? (uint64_t)x : now;
    while (local_time(nd, g) < d) {
        g++;
    }
    while (g > now && local_time(nd, g - 1) >= d) {
        g--;
    }
    return g;
}

static bool entry_copy(hamok_entry *dst, const hamok_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len > 0) {
        dst->data = malloc(src->len);
        if (dst->data == NULL) {
            dst->len = 0;
            return false;
        }
        memcpy(dst->data, src->data, src->len);
    }
    return true;
}

static void entries_free(hamok_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].data);
    }
}

/* With an application (config.app), the snapshot slot holds
 * [length of the simulator's part: u32 LE][sm.h blob][the application's
 * part]; without one, the sm.h blob alone. */
static bool snap_split(const hamok_sim *s, const uint8_t *b, size_t len, const uint8_t **sm,
                       size_t *sm_len, const uint8_t **app, size_t *app_len)
{
    *app = NULL;
    *app_len = 0;
    if (s->cfg.app == NULL) {
        *sm = b;
        *sm_len = len;
        return true;
    }
    if (len < 4) {
        return false;
    }
    size_t n = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
    if (n > len - 4) {
        return false;
    }
    *sm = b + 4;
    *sm_len = n;
    *app = b + 4 + n;
    *app_len = len - 4 - n;
    return true;
}

static const char *role_name(hamok_raft_role r)
{
    switch (r) {
    case HAMOK_RAFT_FOLLOWER: return "follower";
    case HAMOK_RAFT_PRECANDIDATE: return "precandidate";
    case HAMOK_RAFT_CANDIDATE: return "candidate";
    case HAMOK_RAFT_LEADER: return "leader";
    default: return "down";
    }
}

static void trace_msg(const hamok_sim *s, const char *what, int from, int to, const hamok_msg *m)
{
    printf("[%8" PRIu64 " ms] n%d %s %s n%d->n%d", s->now, what[0] == 'R' ? to : from, what,
           hamok__msg_type_name(m->type), from, to);
    switch (m->type) {
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST:
        printf(" t=%" PRIu64 " last=%" PRIu64 "/%" PRIu64 "%s", m->u.vote.term,
               m->u.vote.last_log_index, m->u.vote.last_log_term,
               m->u.vote.transfer ? " transfer" : "");
        break;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        printf(" t=%" PRIu64 " granted=%d", m->u.vote_response.term, m->u.vote_response.granted);
        break;
    case HAMOK_MSG_APPEND_ENTRIES: {
        const hamok_msg_append *a = &m->u.append;
        printf(" t=%" PRIu64 " prev=%" PRIu64 "/%" PRIu64 " commit=%" PRIu64 " n=%zu", a->term,
               a->prev_log_index, a->prev_log_term, a->leader_commit, a->n_entries);
        if (a->n_entries > 0) {
            printf(" [%" PRIu64 "/%" PRIu64 "..%" PRIu64 "/%" PRIu64 "]", a->prev_log_index + 1,
                   a->entries[0].term, a->prev_log_index + a->n_entries,
                   a->entries[a->n_entries - 1].term);
        }
        break;
    }
    case HAMOK_MSG_APPEND_RESPONSE: {
        const hamok_msg_append_response *r = &m->u.append_response;
        if (r->success) {
            printf(" t=%" PRIu64 " ok match=%" PRIu64 " last=%" PRIu64, r->term, r->match_index,
                   r->last_log_index);
        } else {
            printf(" t=%" PRIu64 " REJECT at=%" PRIu64 " conflict=%" PRIu64 "/%" PRIu64
                   " last=%" PRIu64,
                   r->term, r->reject_index, r->conflict_index, r->conflict_term,
                   r->last_log_index);
        }
        break;
    }
    case HAMOK_MSG_TIMEOUT_NOW: printf(" t=%" PRIu64, m->u.timeout_now.term); break;
    case HAMOK_MSG_INSTALL_SNAPSHOT:
        printf(" t=%" PRIu64 " snap=%" PRIu64 "/%" PRIu64 " off=%" PRIu64 " len=%zu%s",
               m->u.snapshot.term, m->u.snapshot.last_index, m->u.snapshot.last_term,
               m->u.snapshot.offset, m->u.snapshot.len, m->u.snapshot.done ? " done" : "");
        break;
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE:
        printf(" t=%" PRIu64 " snap=%" PRIu64 " next=%" PRIu64 "%s", m->u.snapshot_response.term,
               m->u.snapshot_response.last_index, m->u.snapshot_response.next_offset,
               m->u.snapshot_response.done ? " done" : "");
        break;
    case HAMOK_MSG_READ_INDEX_REQUEST: printf(" id=%" PRIu64, m->u.read_index.request_id); break;
    case HAMOK_MSG_READ_INDEX_RESPONSE:
        printf(" id=%" PRIu64 " %s index=%" PRIu64, m->u.read_index_response.request_id,
               hamok_status_str((hamok_status)m->u.read_index_response.status),
               m->u.read_index_response.read_index);
        break;
    default: break;
    }
    printf("\n");
}

/* ------------------------------------------------------------------------ */
/* Node stepping. */

static bool send_msgs(hamok_sim *s, int i, const hamok_msg *msgs, size_t n);
static bool send_one(hamok_sim *s, int i, const hamok_msg *m);
static void arm_timer(hamok_sim *s, int i, uint64_t deadline_local);
static bool node_step(hamok_sim *s, int i, hamok_raft_event *ev, hamok_raft_update *up,
                      hamok_status *status, bool client_op);

/* ---- disk ------------------------------------------------------------------ */

static const hamok_entry *disk_entry(const sim_node *nd, uint64_t index)
{
    if (index <= nd->d_base || index > nd->d_base + nd->d_len) {
        return NULL;
    }
    return &nd->d_log[index - nd->d_base - 1];
}

/* The disk's log holds (index, term) (or its snapshot ends there). */
static bool disk_holds(const sim_node *nd, uint64_t index, uint64_t term)
{
    if (nd->d_has_snap && index == nd->d_snap_index) {
        return nd->d_snap_term == term;
    }
    const hamok_entry *e = disk_entry(nd, index);
    return e != NULL && e->term == term;
}

/* Drop the disk log up to `upto` (a snapshot covers it), or all of it. */
static void disk_drop_prefix(sim_node *nd, uint64_t upto, bool all)
{
    size_t drop = 0;
    if (all) {
        drop = nd->d_len;
    } else if (upto > nd->d_base) {
        uint64_t k = upto - nd->d_base;
        drop = k > nd->d_len ? nd->d_len : (size_t)k;
    }
    entries_free(nd->d_log, drop);
    if (nd->d_len > drop) {
        memmove(nd->d_log, nd->d_log + drop, (nd->d_len - drop) * sizeof *nd->d_log);
    }
    nd->d_len -= drop;
    nd->d_base = upto;
}

static void write_free(sim_write *w)
{
    entries_free(w->e, w->n);
    free(w->e);
    w->e = NULL;
    w->n = 0;
}

/* Make a write durable: truncate, then append, both clipped at the disk's
 * snapshot (what it covers stays). Takes the write's entries. */
static bool disk_apply_write(hamok_sim *s, int i, sim_write *w)
{
    sim_node *nd = &s->nodes[i];
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_disk_write(s->chk, i, w->truncate_from, w->first, w->e, w->n))) {
        write_free(w);
        return false;
    }
    uint64_t tf = w->truncate_from;
    if (tf != 0 && tf <= nd->d_base) {
        tf = nd->d_base + 1;
    }
    if (tf != 0 && tf <= nd->d_base + nd->d_len) {
        size_t keep = (size_t)(tf - nd->d_base - 1);
        entries_free(nd->d_log + keep, nd->d_len - keep);
        nd->d_len = keep;
    }
    size_t k0 = 0;
    if (w->n > 0 && w->first <= nd->d_base) {
        uint64_t skip = nd->d_base - w->first + 1;
        k0 = skip > w->n ? w->n : (size_t)skip;
        entries_free(w->e, k0);
        for (size_t k = 0; k < k0; k++) {
            w->e[k].data = NULL;
        }
    }
    if (k0 < w->n) {
        uint64_t first = w->first + k0;
        size_t n = w->n - k0;
        if (first != nd->d_base + nd->d_len + 1) {
            write_free(w);
            return sim_fail(s, "sim-internal", i, first, 0, "non-contiguous disk write");
        }
        if (nd->d_len + n > nd->d_cap) {
            size_t cap = nd->d_cap ? nd->d_cap : 256;
            while (cap < nd->d_len + n) {
                cap *= 2;
            }
            hamok_entry *d = realloc(nd->d_log, cap * sizeof *d);
            if (d == NULL) {
                write_free(w);
                return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
            }
            nd->d_log = d;
            nd->d_cap = cap;
        }
        memcpy(nd->d_log + nd->d_len, w->e + k0, n * sizeof *w->e);
        nd->d_len += n;
    }
    if (w->n > 0) {
        w->last_index = w->first + w->n - 1;
        w->last_term = w->e[w->n - 1].term;
    }
    free(w->e);
    w->e = NULL;
    w->n = 0;
    w->flushed = true;
    return true;
}

/* A snapshot install syncs whatever is pending first (src/storage does). */
static bool disk_flush(hamok_sim *s, int i)
{
    sim_node *nd = &s->nodes[i];
    for (size_t k = 0; k < nd->w_len; k++) {
        if (!nd->w[k].flushed && !disk_apply_write(s, i, &nd->w[k])) {
            return false;
        }
    }
    return true;
}

/* ---- reads ----------------------------------------------------------------- */

static void read_report(hamok_sim *s, int i, uint64_t id, hamok_status st, uint64_t index,
                        uint64_t applied)
{
    if (st == HAMOK_OK) {
        s->st.reads_ok++;
    } else {
        s->st.reads_failed++;
    }
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d READ %" PRIu64 " %s index=%" PRIu64 " applied=%" PRIu64 "\n",
               s->now, i, id, hamok_status_str(st), index, applied);
    }
    if (s->on_read != NULL) {
        s->on_read(s, s->on_read_ud, i, id, st, index, applied);
    }
}

/* Serve a read from the node's state machine now. */
static bool read_serve(hamok_sim *s, int i, const sim_read *rd, uint64_t index)
{
    sim_node *nd = &s->nodes[i];
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_read(s->chk, i, rd->lower, rd->start, index, nd->sm.applied,
                                  hamok_sm_hash(&nd->sm), s->now))) {
        return false;
    }
    read_report(s, i, rd->id, HAMOK_OK, index, nd->sm.applied);
    return true;
}

static sim_read *read_add(hamok_sim *s, int i)
{
    sim_node *nd = &s->nodes[i];
    if (nd->n_reads == nd->cap_reads) {
        size_t cap = nd->cap_reads ? nd->cap_reads * 2 : 8;
        sim_read *p = realloc(nd->reads, cap * sizeof *p);
        if (p == NULL) {
            sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
            return NULL;
        }
        nd->reads = p;
        nd->cap_reads = cap;
    }
    sim_read *rd = &nd->reads[nd->n_reads++];
    memset(rd, 0, sizeof *rd);
    return rd;
}

/* Barriers that completed in this update, then reads whose index is now
 * applied. */
static bool reads_progress(hamok_sim *s, int i, const hamok_raft_update *up)
{
    sim_node *nd = &s->nodes[i];
    for (size_t k = 0; k < up->n_reads; k++) {
        const hamok_raft_read *r = &up->reads[k];
        size_t at = SIZE_MAX;
        for (size_t j = 0; j < nd->n_reads; j++) {
            if (nd->reads[j].id == r->id && !nd->reads[j].done) {
                at = j;
                break;
            }
        }
        if (at == SIZE_MAX) {
            continue; /* not ours (any more) */
        }
        if (r->status != HAMOK_OK) {
            uint64_t id = nd->reads[at].id;
            nd->reads[at] = nd->reads[--nd->n_reads];
            read_report(s, i, id, r->status, 0, nd->sm.applied);
            continue;
        }
        nd->reads[at].done = true;
        nd->reads[at].index = r->index;
    }
    for (size_t j = 0; j < nd->n_reads;) {
        sim_read *rd = &nd->reads[j];
        if (rd->done && nd->sm.applied >= rd->index) {
            sim_read copy = *rd;
            nd->reads[j] = nd->reads[--nd->n_reads];
            if (!read_serve(s, i, &copy, copy.index)) {
                return false;
            }
            continue;
        }
        j++;
    }
    return true;
}

/* ---- snapshots ------------------------------------------------------------- */

/* Leader: the chunk the core asks for, from the disk's snapshot slot. */
static bool send_chunk(hamok_sim *s, int i, const hamok_raft_snapshot_send *snd)
{
    sim_node *nd = &s->nodes[i];
    if (!nd->d_has_snap || snd->index != nd->d_snap_index || snd->snap_term != nd->d_snap_term ||
        snd->offset > nd->d_snap.len) {
        return sim_fail(s, "update-contract", i, snd->index, snd->snap_term,
                        "asked to send the snapshot (index %" PRIu64 ", term %" PRIu64
                        ") from offset %" PRIu64 " but the disk holds (index %" PRIu64
                        ", term %" PRIu64 ", %zu bytes)",
                        snd->index, snd->snap_term, snd->offset, nd->d_snap_index, nd->d_snap_term,
                        nd->d_snap.len);
    }
    size_t off = (size_t)snd->offset;
    size_t len = nd->d_snap.len - off;
    if (len > s->cfg.chunk_bytes) {
        len = s->cfg.chunk_bytes;
    }
    hamok_msg m;
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_INSTALL_SNAPSHOT;
    m.src = s->ids[i];
    m.dst = snd->to;
    m.u.snapshot.term = snd->term;
    m.u.snapshot.last_index = snd->index;
    m.u.snapshot.last_term = snd->snap_term;
    m.u.snapshot.offset = off;
    m.u.snapshot.done = off + len == nd->d_snap.len;
    m.u.snapshot.data = nd->d_snap.data + off;
    m.u.snapshot.len = len;
    if (off == 0) {
        m.u.snapshot.members = (hamok_member *)(uintptr_t)snd->members;
        m.u.snapshot.n_members = snd->n_members;
    }
    s->st.chunks_sent++;
    return send_one(s, i, &m);
}

/* snapshot_wanted: serialize the state machine and write it (after the log
 * writes already issued), or with probability snapshot_skip never. */
static bool snapshot_request(hamok_sim *s, int i, const hamok_raft_update *up)
{
    sim_node *nd = &s->nodes[i];
    double r = hamok__prng_unit(&s->disk);
    uint64_t delay = hamok__prng_below(&s->disk, (uint64_t)s->cfg.snapshot_delay_max_ms + 1);
    if (nd->sm.applied != up->snapshot_want_index) {
        return sim_fail(s, "update-contract", i, up->snapshot_want_index, 0,
                        "snapshot wanted at index %" PRIu64 " but the node applied up to %" PRIu64,
                        up->snapshot_want_index, nd->sm.applied);
    }
    if (nd->s_pending || r < s->cfg.snapshot_skip || nd->no_snapshots) {
        s->st.snapshots_skipped++;
        return true; /* one at a time (src/storage), or never: the core copes */
    }
    uint64_t term = 0;
    if (!hamok__raft_term_at(nd->core, up->snapshot_want_index, &term)) {
        return sim_fail(s, "update-contract", i, up->snapshot_want_index, 0,
                        "snapshot wanted at an index the log does not hold");
    }
    hamok__buf_reset(&nd->s_blob);
    const hamok_sim_app *app = s->cfg.app;
    static const uint8_t zero4[4] = {0, 0, 0, 0};
    if ((app != NULL && hamok__buf_append(&nd->s_blob, zero4, 4) != HAMOK_OK) ||
        hamok_sm_encode(&nd->sm, term, up->snapshot_members, up->n_snapshot_members, &nd->s_blob) !=
            HAMOK_OK) {
        return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
    }
    if (app != NULL) {
        size_t n = nd->s_blob.len - 4;
        for (int k = 0; k < 4; k++) {
            nd->s_blob.data[k] = (uint8_t)(n >> (8 * k));
        }
        if (app->snapshot != NULL &&
            !app->snapshot(s, app->ud, i, up->snapshot_want_index, &nd->s_blob)) {
            return sim_fail(s, "app", i, up->snapshot_want_index, term,
                            "the application could not take a snapshot");
        }
    }
    nd->s_pending = true;
    nd->s_id++;
    nd->s_index = up->snapshot_want_index;
    nd->s_term = term;
    nd->s_hash = hamok_sm_hash(&nd->sm);
    members_mask(s, up->snapshot_members, up->n_snapshot_members, &nd->s_members, &nd->s_voters);
    uint64_t done = s->now + delay;
    if (done < nd->w_last_done) {
        done = nd->w_last_done;
    }
    nd->w_last_done = done;
    heap_push(s, (sim_event){.at = done,
                             .kind = EV_SNAPSHOT,
                             .node = i,
                             .from = -1,
                             .inc = nd->inc,
                             .arg = nd->s_id});
    return true;
}

/* Follower: the last chunk arrived and the core installed the snapshot. */
static bool snapshot_install(hamok_sim *s, int i, const hamok_raft_update *up, hamok_chk_step *cs)
{
    sim_node *nd = &s->nodes[i];
    hamok_sm sm;
    uint64_t term = 0;
    hamok_member *ms = NULL;
    size_t n = 0;
    const uint8_t *smb = NULL, *appb = NULL;
    size_t smb_len = 0, appb_len = 0;
    if (!snap_split(s, nd->in_blob.data, nd->in_blob.len, &smb, &smb_len, &appb, &appb_len) ||
        !hamok_sm_decode(smb, smb_len, &sm, &term, &ms, &n) || sm.applied != up->installed_index ||
        term != up->installed_term) {
        hamok__members_free(ms, n);
        return sim_fail(s, "snapshot", i, up->installed_index, up->installed_term,
                        "installed snapshot (index %" PRIu64 ", term %" PRIu64
                        ") but the %zu bytes received do not decode to it",
                        up->installed_index, up->installed_term, nd->in_blob.len);
    }
    uint64_t m, v;
    members_mask(s, ms, n, &m, &v);
    hamok__members_free(ms, n);
    /* The core's base configuration is now the snapshot's. */
    size_t cn = 0;
    const hamok_member *cms = hamok__raft_config_at(nd->core, up->installed_index, &cn);
    uint64_t cm = 0, cv = 0;
    if (cms != NULL) {
        members_mask(s, cms, cn, &cm, &cv); /* NULL: none (FINDINGS.md 8) */
    }
    if (cm != m || cv != v) {
        return sim_fail(s, "update-contract", i, up->installed_index, up->installed_term,
                        "installed snapshot carries members %#" PRIx64 " voters %#" PRIx64
                        " but the core's configuration at its index is members %#" PRIx64
                        " voters %#" PRIx64,
                        m, v, cm, cv);
    }
    /* Sync what is pending, then the snapshot; the log stays after it if it
     * holds its last entry, else it is emptied. */
    if (!disk_flush(s, i)) {
        return false;
    }
    nd->s_pending = false; /* a local snapshot being written is abandoned */
    bool held = disk_holds(nd, up->installed_index, up->installed_term);
    hamok_buf tmp = nd->d_snap;
    nd->d_snap = nd->in_blob;
    nd->in_blob = tmp;
    hamok__buf_reset(&nd->in_blob);
    nd->d_has_snap = true;
    nd->d_snap_index = up->installed_index;
    nd->d_snap_term = up->installed_term;
    disk_drop_prefix(nd, up->installed_index, !held);
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_disk_snapshot(s->chk, i, up->installed_index, up->installed_term, m, v,
                                           hamok_sm_hash(&sm), held))) {
        return false;
    }
    nd->sm = sm;
    if (s->cfg.app != NULL && s->cfg.app->restore != NULL) {
        snap_split(s, nd->d_snap.data, nd->d_snap.len, &smb, &smb_len, &appb, &appb_len);
        if (!s->cfg.app->restore(s, s->cfg.app->ud, i, up->installed_index, appb, appb_len)) {
            return sim_fail(s, "app", i, up->installed_index, up->installed_term,
                            "the application could not restore an installed snapshot");
        }
    }
    s->st.installs++;
    cs->installed = true;
    cs->installed_index = up->installed_index;
    cs->installed_term = up->installed_term;
    cs->installed_members = m;
    cs->installed_voters = v;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d INSTALLED snapshot %" PRIu64 "/%" PRIu64 " (%s log)\n",
               s->now, i, up->installed_index, up->installed_term, held ? "kept" : "reset");
    }
    return true;
}

static bool handle_update(hamok_sim *s, int i, const hamok_raft_update *up)
{
    sim_node *nd = &s->nodes[i];
    hamok_chk_step cs;
    memset(&cs, 0, sizeof cs);

    /* 1. Hard state, synchronously. */
    int vote = -1;
    if (up->hard_state_changed) {
        if (up->has_vote) {
            vote = hamok_sim_node_of(s, &up->vote);
            if (vote < 0) {
                return sim_fail(s, "update-contract", i, 0, up->term, "vote for an unknown peer");
            }
        }
        nd->d_term = up->term;
        nd->d_vote = vote;
    }
    /* A chunk is stored before anything is sent; the last one installs. */
    if (up->has_chunk) {
        if (up->chunk.offset == 0) {
            hamok__buf_reset(&nd->in_blob);
        }
        if (up->chunk.offset != nd->in_blob.len) {
            return sim_fail(s, "update-contract", i, up->chunk.index, up->chunk.term,
                            "snapshot chunk to store at offset %" PRIu64
                            " but %zu bytes are stored",
                            up->chunk.offset, nd->in_blob.len);
        }
        if (up->chunk.len > 0 &&
            hamok__buf_append(&nd->in_blob, up->chunk.data, up->chunk.len) != HAMOK_OK) {
            return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
        }
    }
    if (up->snapshot_installed && !snapshot_install(s, i, up, &cs)) {
        return false;
    }

    /* 2. Log: truncate the pending stream now, queue the write. Only
     * uncommitted entries are truncated: never at or below a snapshot (an
     * install's reset of the log is part of snapshot_installed; FINDINGS.md
     * observation 6). */
    if (up->truncate_from != 0 && up->truncate_from <= hamok__raft_snapshot_index(nd->core, NULL)) {
        return sim_fail(s, "update-contract", i, up->truncate_from, 0,
                        "truncate_from %" PRIu64 " at or below the snapshot at %" PRIu64,
                        up->truncate_from, hamok__raft_snapshot_index(nd->core, NULL));
    }
    if (up->truncate_from != 0) {
        for (size_t k = 0; k < nd->w_len; k++) {
            sim_write *w = &nd->w[k];
            if (!w->flushed && w->n > 0 && w->first + w->n > up->truncate_from) {
                size_t keep =
                    up->truncate_from > w->first ? (size_t)(up->truncate_from - w->first) : 0;
                if (keep > w->n) {
                    keep = w->n;
                }
                entries_free(w->e + keep, w->n - keep);
                w->n = keep;
            }
        }
    }
    if (up->truncate_from != 0 || up->n_persist > 0) {
        if (nd->w_len == nd->w_cap) {
            size_t cap = nd->w_cap ? nd->w_cap * 2 : 16;
            sim_write *w = realloc(nd->w, cap * sizeof *w);
            if (w == NULL) {
                return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
            }
            nd->w = w;
            nd->w_cap = cap;
        }
        sim_write *w = &nd->w[nd->w_len];
        memset(w, 0, sizeof *w);
        w->id = nd->w_next_id++;
        w->truncate_from = up->truncate_from;
        w->first = up->persist_first;
        if (up->n_persist > 0) {
            w->e = calloc(up->n_persist, sizeof *w->e);
            if (w->e == NULL) {
                return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
            }
            for (size_t k = 0; k < up->n_persist; k++) {
                if (!entry_copy(&w->e[k], &up->persist[k])) {
                    w->n = k;
                    nd->w_len++;
                    return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
                }
            }
            w->n = up->n_persist;
        }
        nd->w_len++;
        uint64_t done =
            s->now + hamok__prng_below(&s->disk, (uint64_t)s->cfg.disk_delay_max_ms + 1);
        if (done < nd->w_last_done) {
            done = nd->w_last_done;
        }
        nd->w_last_done = done;
        heap_push(s, (sim_event){.at = done,
                                 .kind = EV_PERSIST,
                                 .node = i,
                                 .from = -1,
                                 .inc = nd->inc,
                                 .arg = w->id});
    }

    /* 4 (the state machine first, so the checker sees it). Apply. */
    for (size_t k = 0; k < up->n_apply; k++) {
        const hamok_entry *e = &up->apply[k];
        uint64_t index = up->apply_first + k;
        if (index != nd->sm.applied + 1) {
            return sim_fail(s, "update-contract", i, index, e->term,
                            "applies index %" PRIu64 " but the state machine is at %" PRIu64, index,
                            nd->sm.applied);
        }
        hamok_sm_apply(&nd->sm, index, e->type, e->seq, hamok_chk_entry_hash(e));
        if (s->cfg.app != NULL && s->cfg.app->apply != NULL &&
            !s->cfg.app->apply(s, s->cfg.app->ud, i, index, e)) {
            return sim_fail(s, "app", i, index, e->term, "the application could not apply");
        }
    }
    if (up->config_changed) {
        members_mask(s, up->members, up->n_members, &nd->cfg_members, &nd->cfg_voters);
        nd->cfg_known = true;
        if (s->trace) {
            printf("[%8" PRIu64 " ms] n%d CONFIG members=%#" PRIx64 " voters=%#" PRIx64
                   " (entry %" PRIu64 ")\n",
                   s->now, i, nd->cfg_members, nd->cfg_voters, up->config_index);
        }
    }

    /* Check the step (hard state, log, leadership, applies, commit, state). */
    cs.node = i;
    cs.hard_state_changed = up->hard_state_changed;
    cs.hs_term = up->term;
    cs.hs_vote = vote;
    cs.truncate_from = up->truncate_from;
    cs.persist_first = up->persist_first;
    cs.persist = up->persist;
    cs.n_persist = up->n_persist;
    cs.apply_first = up->apply_first;
    cs.apply = up->apply;
    cs.n_apply = up->n_apply;
    hamok_raft_role role = hamok__raft_role(nd->core);
    cs.is_leader = role == HAMOK_RAFT_LEADER;
    cs.term = hamok__raft_term(nd->core);
    cs.commit_index = hamok__raft_commit_index(nd->core);
    cs.has_core_log = true;
    cs.core_last_index = hamok__raft_last_index(nd->core);
    if (!hamok__raft_term_at(nd->core, cs.core_last_index, &cs.core_last_term)) {
        return sim_fail(s, "update-contract", i, cs.core_last_index, 0,
                        "the core has no term for its own last index");
    }
    cs.has_core_config = nd->cfg_known;
    cs.core_members = nd->cfg_members;
    cs.core_voters = nd->cfg_voters;
    cs.has_sm = true;
    cs.sm_applied = nd->sm.applied;
    cs.sm_hash = hamok_sm_hash(&nd->sm);
    if (hamok__raft_applied_index(nd->core) != nd->sm.applied) {
        return sim_fail(s, "update-contract", i, nd->sm.applied, 0,
                        "the core says applied %" PRIu64 " but its updates applied up to %" PRIu64,
                        hamok__raft_applied_index(nd->core), nd->sm.applied);
    }
    if (!chk_ok(s, hamok_chk_node_step(s->chk, &cs))) {
        return false;
    }
    if (s->trace && (role != nd->last_role || cs.term != nd->last_term)) {
        printf("[%8" PRIu64 " ms] n%d ROLE %s t=%" PRIu64 " -> %s t=%" PRIu64 " (last=%" PRIu64
               " commit=%" PRIu64 ")\n",
               s->now, i, role_name(nd->last_role), nd->last_term, role_name(role), cs.term,
               cs.core_last_index, cs.commit_index);
    }
    bool changed = role != nd->last_role || cs.term != nd->last_term;
    nd->last_role = role;
    nd->last_term = cs.term;
    if (changed && s->on_role != NULL) {
        s->on_role(s, s->on_role_ud, i, role, cs.term);
    }
    if (cs.commit_index > nd->last_commit && s->on_commit != NULL) {
        s->on_commit(s, s->on_commit_ud, i, role, cs.term, cs.commit_index);
    }
    nd->last_commit = cs.commit_index;
    if (s->trace && up->n_apply > 0) {
        printf("[%8" PRIu64 " ms] n%d APPLY %" PRIu64 "..%" PRIu64 "\n", s->now, i, up->apply_first,
               up->apply_first + up->n_apply - 1);
    }

    /* 3. Messages. */
    if (!send_msgs(s, i, up->msgs, up->n_msgs)) {
        return false;
    }

    /* 4. Snapshot chunks, a snapshot to take, reads. */
    for (size_t k = 0; k < up->n_snapshot_sends; k++) {
        if (!send_chunk(s, i, &up->snapshot_sends[k])) {
            return false;
        }
    }
    if (up->snapshot_wanted && !snapshot_request(s, i, up)) {
        return false;
    }
    if ((up->n_reads > 0 || nd->n_reads > 0) && !reads_progress(s, i, up)) {
        return false;
    }

    /* 5. Timer. */
    arm_timer(s, i, up->next_deadline_ms);
    if (s->cfg.app != NULL && s->cfg.app->stepped != NULL) {
        s->cfg.app->stepped(s, s->cfg.app->ud, i);
    }
    return !s->failed;
}

/* Step the core. A client operation (client_op) may fail with an expected
 * status (NOT_LEADER, BUSY, ...); its update is handled all the same: the
 * core fires overdue timers before a client operation, so it may carry a new
 * term, a vote, messages. */
static bool node_step(hamok_sim *s, int i, hamok_raft_event *ev, hamok_raft_update *up,
                      hamok_status *status, bool client_op)
{
    sim_node *nd = &s->nodes[i];
    ev->now_ms = local_time(nd, s->now);
    hamok_chk_set_time(s->chk, s->now);
    hamok_status st = hamok__raft_step(nd->core, ev, up);
    if (status != NULL) {
        *status = st;
    }
    if (st != HAMOK_OK) {
        bool expected = client_op && (st == HAMOK_ERR_NOT_LEADER || st == HAMOK_ERR_BUSY ||
                                      st == HAMOK_ERR_NOT_FOUND || st == HAMOK_ERR_INVALID ||
                                      st == HAMOK_ERR_STATE || st == HAMOK_ERR_TOO_BIG);
        if (!expected) {
            return sim_fail(s, "core-error", i, 0, 0, "hamok__raft_step(type %d) returned %s",
                            (int)ev->type, hamok_status_str(st));
        }
    }
    return handle_update(s, i, up);
}

static void arm_timer(hamok_sim *s, int i, uint64_t deadline_local)
{
    sim_node *nd = &s->nodes[i];
    if (deadline_local == UINT64_MAX) {
        nd->timer_armed = false;
        return;
    }
    uint64_t g = to_global(nd, deadline_local, s->now);
    if (nd->timer_armed && nd->timer_at == g) {
        return;
    }
    nd->timer_armed = true;
    nd->timer_at = g;
    heap_push(
        s, (sim_event){.at = g, .kind = EV_TIMER, .node = i, .from = -1, .inc = nd->inc, .arg = g});
}

static bool send_one(hamok_sim *s, int i, const hamok_msg *m)
{
    sim_node *nd = &s->nodes[i];
    if (!hamok__id_eq(&m->src, &s->ids[i])) {
        return sim_fail(s, "update-contract", i, 0, 0, "%s with a foreign source id",
                        hamok__msg_type_name(m->type));
    }
    int to_one = -1;
    if (!m->broadcast) {
        to_one = hamok_sim_node_of(s, &m->dst);
        if (to_one < 0) {
            return sim_fail(s, "update-contract", i, 0, 0, "%s to an unknown peer",
                            hamok__msg_type_name(m->type));
        }
    }
    hamok__buf_reset(&s->enc);
    hamok_status st = hamok__codec_encode(m, SIM_CLUSTER, NULL, &s->enc);
    if (st != HAMOK_OK) {
        return sim_fail(s, "codec", i, 0, 0, "encoding %s failed: %s",
                        hamok__msg_type_name(m->type), hamok_status_str(st));
    }
    for (int j = 0; j < s->n; j++) {
        if ((to_one >= 0 && j != to_one) || (to_one < 0 && j == i)) {
            continue;
        }
        s->st.msgs_sent++;
        s->st.bytes_sent += s->enc.len;
        if (m->type < SIM_MAX_TYPES) {
            nd->sent[m->type]++;
        }
        if (m->type == HAMOK_MSG_APPEND_RESPONSE && !m->u.append_response.success) {
            nd->rejects++;
        }
        const sim_link *l = &s->link[i][j];
        /* Draw every random number whatever the outcome, so that a
         * filter or a link state does not shift later draws. */
        double r_drop = hamok__prng_unit(&s->net);
        double r_dup = hamok__prng_unit(&s->net);
        bool pass = l->up && r_drop >= l->drop;
        if (pass && s->filter != NULL && !s->filter(s->filter_ud, i, j, m)) {
            pass = false;
        }
        if (s->trace) {
            trace_msg(s, pass ? "SEND" : "LOST", i, j, m);
        }
        if (!pass) {
            s->st.msgs_dropped++;
            continue;
        }
        int copies = r_dup < l->dup ? 2 : 1;
        if (copies == 2) {
            s->st.msgs_duplicated++;
        }
        for (int c = 0; c < copies; c++) {
            uint32_t span = l->dmax >= l->dmin ? l->dmax - l->dmin : 0;
            uint64_t delay = l->dmin + hamok__prng_below(&s->net, (uint64_t)span + 1);
            if (s->cfg.straggle > 0 && hamok__prng_unit(&s->net) < s->cfg.straggle) {
                delay += hamok__prng_below(&s->net, (uint64_t)s->cfg.straggle_max_ms + 1);
            }
            uint8_t *b = malloc(s->enc.len ? s->enc.len : 1);
            if (b == NULL) {
                return sim_fail(s, "sim-oom", i, 0, 0, "simulator out of memory");
            }
            memcpy(b, s->enc.data, s->enc.len);
            heap_push(s, (sim_event){.at = s->now + delay,
                                     .kind = EV_DELIVER,
                                     .node = j,
                                     .from = i,
                                     .bytes = b,
                                     .len = s->enc.len});
        }
    }
    return true;
}

static bool send_msgs(hamok_sim *s, int i, const hamok_msg *msgs, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        if (!send_one(s, i, &msgs[k])) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Event handlers. */

static void defer(hamok_sim *s, sim_node *nd, sim_event *ev)
{
    if (nd->n_def == nd->cap_def) {
        size_t cap = nd->cap_def ? nd->cap_def * 2 : 64;
        sim_event *d = realloc(nd->def, cap * sizeof *d);
        if (d == NULL) {
            free(ev->bytes);
            sim_fail(s, "sim-oom", -1, 0, 0, "simulator out of memory");
            return;
        }
        nd->def = d;
        nd->cap_def = cap;
    }
    nd->def[nd->n_def++] = *ev;
}

/* Messages of the layers above the Raft core (node runtime), for the
 * application (hamok_sim_app.receive). */
static bool is_app_msg(uint8_t type)
{
    return type == HAMOK_MSG_SUBMIT_REQUEST || type == HAMOK_MSG_SUBMIT_RESPONSE ||
           type == HAMOK_MSG_EMIT_REQUEST || type == HAMOK_MSG_EMIT_RESPONSE ||
           type == HAMOK_MSG_EMIT_NOTIFICATION;
}

static void on_deliver(hamok_sim *s, sim_event *ev)
{
    int i = ev->node;
    sim_node *nd = &s->nodes[i];
    if (nd->core == NULL || !s->link[ev->from][i].up || s->nodes[ev->from].wiped) {
        s->st.msgs_dropped++;
        free(ev->bytes);
        return;
    }
    if (nd->paused) {
        defer(s, nd, ev);
        return;
    }
    s->st.steps++;
    hamok_msg m;
    memset(&m, 0, sizeof m);
    hamok_codec_reject why = HAMOK_REJECT_NONE;
    hamok_status st = hamok__codec_decode(ev->bytes, ev->len, SIM_CLUSTER, NULL, &m, &why);
    free(ev->bytes);
    ev->bytes = NULL;
    if (st != HAMOK_OK) {
        sim_fail(s, "codec", i, 0, 0, "decoding a %zu-byte frame from n%d failed: %s (%s)", ev->len,
                 ev->from, hamok_status_str(st), hamok__codec_reject_str(why));
        return;
    }
    if (!hamok__id_eq(&m.src, &s->ids[ev->from]) ||
        (!m.broadcast && !hamok__id_eq(&m.dst, &s->ids[i]))) {
        sim_fail(s, "delivery", i, 0, 0, "%s from n%d decoded with a wrong source or destination",
                 hamok__msg_type_name(m.type), ev->from);
        hamok__msg_clear(&m);
        return;
    }
    s->st.msgs_delivered++;
    if (s->trace) {
        trace_msg(s, "RECV", ev->from, i, &m);
    }
    if (s->cfg.app != NULL && is_app_msg(m.type)) {
        if (s->cfg.app->receive != NULL) {
            s->cfg.app->receive(s, s->cfg.app->ud, i, &m);
        }
        hamok__msg_clear(&m);
        return;
    }
    hamok_raft_event rev;
    memset(&rev, 0, sizeof rev);
    rev.type = HAMOK_RAFT_EV_RECEIVE;
    rev.u.msg = &m;
    hamok_raft_update up;
    node_step(s, i, &rev, &up, NULL, false);
    hamok__msg_clear(&m);
}

static void on_timer(hamok_sim *s, sim_event *ev)
{
    int i = ev->node;
    sim_node *nd = &s->nodes[i];
    if (nd->core == NULL || ev->inc != nd->inc || !nd->timer_armed || ev->arg != nd->timer_at) {
        return; /* stale */
    }
    if (nd->paused) {
        defer(s, nd, ev);
        return;
    }
    s->st.steps++;
    nd->timer_armed = false;
    if (nd->last_tick_at == s->now) {
        if (++nd->same_time_ticks > SIM_MAX_TICK_LOOPS) {
            sim_fail(
                s, "liveness", i, 0, 0,
                "the core keeps asking for a TICK at the current time (deadline does not advance)");
            return;
        }
    } else {
        nd->last_tick_at = s->now;
        nd->same_time_ticks = 0;
    }
    hamok_raft_event tev;
    memset(&tev, 0, sizeof tev);
    tev.type = HAMOK_RAFT_EV_TICK;
    hamok_raft_update up;
    node_step(s, i, &tev, &up, NULL, false);
}

static void on_persist(hamok_sim *s, sim_event *ev)
{
    int i = ev->node;
    sim_node *nd = &s->nodes[i];
    if (nd->core == NULL || ev->inc != nd->inc) {
        return; /* the write died with the crash */
    }
    if (nd->paused) {
        defer(s, nd, ev);
        return;
    }
    if (nd->w_len == 0 || nd->w[0].id != ev->arg) {
        sim_fail(s, "sim-internal", i, 0, 0, "disk writes completed out of order");
        return;
    }
    s->st.steps++;
    s->st.disk_writes++;
    sim_write w = nd->w[0];
    memmove(nd->w, nd->w + 1, (nd->w_len - 1) * sizeof *nd->w);
    nd->w_len--;
    if (!w.flushed && !disk_apply_write(s, i, &w)) {
        return;
    }
    if (w.last_index == 0) {
        return; /* a truncation alone */
    }
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d PERSISTED %" PRIu64 "/%" PRIu64 "\n", s->now, i, w.last_index,
               w.last_term);
    }
    hamok_raft_event pev;
    memset(&pev, 0, sizeof pev);
    pev.type = HAMOK_RAFT_EV_PERSISTED;
    pev.u.persisted.index = w.last_index;
    pev.u.persisted.term = w.last_term;
    hamok_raft_update up;
    node_step(s, i, &pev, &up, NULL, false);
}

/* A local snapshot write completed: the slot holds it, the disk log drops
 * what it covers, the core may compact. */
static void on_snapshot(hamok_sim *s, sim_event *ev)
{
    int i = ev->node;
    sim_node *nd = &s->nodes[i];
    if (nd->core == NULL || ev->inc != nd->inc || !nd->s_pending || ev->arg != nd->s_id) {
        return; /* lost in a crash, or abandoned for an installed snapshot */
    }
    if (nd->paused) {
        defer(s, nd, ev);
        return;
    }
    s->st.steps++;
    nd->s_pending = false;
    if (nd->d_has_snap && nd->s_index <= nd->d_snap_index) {
        return; /* a newer one was installed meanwhile */
    }
    if (!disk_holds(nd, nd->s_index, nd->s_term)) {
        sim_fail(s, "sim-internal", i, nd->s_index, nd->s_term,
                 "local snapshot completed but the disk log lacks its last entry");
        return;
    }
    hamok_buf tmp = nd->d_snap;
    nd->d_snap = nd->s_blob;
    nd->s_blob = tmp;
    nd->d_has_snap = true;
    nd->d_snap_index = nd->s_index;
    nd->d_snap_term = nd->s_term;
    disk_drop_prefix(nd, nd->s_index, false);
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_disk_snapshot(s->chk, i, nd->s_index, nd->s_term, nd->s_members,
                                           nd->s_voters, nd->s_hash, true))) {
        return;
    }
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d SNAPSHOT_TAKEN %" PRIu64 "/%" PRIu64 " (%zu bytes)\n", s->now,
               i, nd->s_index, nd->s_term, nd->d_snap.len);
    }
    s->st.snapshots_taken++;
    hamok_raft_event sev;
    memset(&sev, 0, sizeof sev);
    sev.type = HAMOK_RAFT_EV_SNAPSHOT_TAKEN;
    sev.u.snapshot.index = nd->s_index;
    hamok_raft_update up;
    node_step(s, i, &sev, &up, NULL, false);
}

bool hamok_sim_step(hamok_sim *s)
{
    if (s->failed || s->hn == 0) {
        return false;
    }
    sim_event ev = heap_pop(s);
    if (ev.at < s->now) {
        free(ev.bytes);
        return sim_fail(s, "sim-internal", ev.node, 0, 0, "event in the past");
    }
    if (ev.at == s->same_time_at) {
        if (++s->same_time_steps > SIM_MAX_SAME_TIME) {
            free(ev.bytes);
            return sim_fail(s, "liveness", ev.node, 0, 0,
                            "%u events at one virtual instant: virtual time does not advance",
                            SIM_MAX_SAME_TIME);
        }
    } else {
        s->same_time_at = ev.at;
        s->same_time_steps = 0;
    }
    s->now = ev.at;
    switch (ev.kind) {
    case EV_DELIVER: on_deliver(s, &ev); break;
    case EV_TIMER: on_timer(s, &ev); break;
    case EV_PERSIST: on_persist(s, &ev); break;
    case EV_SNAPSHOT: on_snapshot(s, &ev); break;
    case EV_CALL:
        s->st.steps++;
        hamok_chk_set_time(s->chk, s->now);
        ev.fn(s, ev.ud, ev.arg);
        break;
    default: free(ev.bytes); break;
    }
    return !s->failed;
}

bool hamok_sim_run_until(hamok_sim *s, uint64_t t_ms)
{
    while (!s->failed && s->hn > 0 && s->heap[0].at <= t_ms) {
        hamok_sim_step(s);
    }
    if (!s->failed && t_ms > s->now) {
        s->now = t_ms;
    }
    return !s->failed;
}

bool hamok_sim_run_for(hamok_sim *s, uint64_t ms)
{
    return hamok_sim_run_until(s, s->now + ms);
}

bool hamok_sim_run_until_pred(hamok_sim *s, hamok_sim_pred pred, void *ud, uint64_t max_ms)
{
    uint64_t deadline = s->now + max_ms;
    if (pred(s, ud)) {
        return true;
    }
    while (!s->failed) {
        if (s->hn == 0 || s->heap[0].at > deadline) {
            s->now = deadline;
            return pred(s, ud);
        }
        hamok_sim_step(s);
        if (!s->failed && pred(s, ud)) {
            return true;
        }
    }
    return false;
}

uint64_t hamok_sim_now(const hamok_sim *s)
{
    return s->now;
}

uint64_t hamok_sim_seed(const hamok_sim *s)
{
    return s->cfg.seed;
}

int hamok_sim_n(const hamok_sim *s)
{
    return s->n;
}

const hamok_sim_config *hamok_sim_config_get(const hamok_sim *s)
{
    return &s->cfg;
}

void hamok_sim_schedule(hamok_sim *s, uint64_t at_ms, hamok_sim_fn fn, void *ud, uint64_t arg)
{
    if (at_ms < s->now) {
        at_ms = s->now;
    }
    heap_push(
        s,
        (sim_event){
            .at = at_ms, .kind = EV_CALL, .node = -1, .from = -1, .arg = arg, .fn = fn, .ud = ud});
}

/* ------------------------------------------------------------------------ */
/* Nodes. */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static bool node_start(hamok_sim *s, int i)
{
    sim_node *nd = &s->nodes[i];
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = s->ids[i];
    if (nd->bootstrap) {
        o.voters = s->ids;
        o.n_voters = (size_t)s->n_boot;
    }
    if (s->cfg.election_timeout_ms) {
        o.election_timeout_ms = s->cfg.election_timeout_ms;
    }
    if (s->cfg.heartbeat_ms) {
        o.heartbeat_ms = s->cfg.heartbeat_ms;
    }
    if (s->cfg.max_inflight) {
        o.max_inflight = s->cfg.max_inflight;
    }
    if (s->cfg.max_batch_entries) {
        o.max_batch_entries = s->cfg.max_batch_entries;
    }
    if (s->cfg.max_batch_bytes) {
        o.max_batch_bytes = s->cfg.max_batch_bytes;
    }
    if (s->cfg.snapshot_entries) {
        o.snapshot_entries = s->cfg.snapshot_entries;
        o.snapshot_trailing = s->cfg.snapshot_trailing;
    }
    o.pre_vote = s->cfg.pre_vote;
    o.check_quorum = s->cfg.check_quorum;
    nd->inc++;
    o.seed = mix64(s->cfg.seed ^ mix64(((uint64_t)i << 32) | nd->inc));
    hamok_status st = hamok__raft_new(&nd->core, &o);
    if (st != HAMOK_OK) {
        nd->core = NULL;
        return sim_fail(s, "core-error", i, 0, 0, "hamok__raft_new: %s", hamok_status_str(st));
    }
    hamok_sm_init(&nd->sm);
    const hamok_sim_app *app = s->cfg.app;
    if (app != NULL && app->start != NULL && !app->start(s, app->ud, i)) {
        hamok__raft_destroy(&nd->core);
        return sim_fail(s, "app", i, 0, 0, "the application could not start");
    }
    if (nd->d_has_snap) {
        hamok_member *ms = NULL;
        size_t n = 0;
        uint64_t term = 0;
        const uint8_t *smb = NULL, *appb = NULL;
        size_t smb_len = 0, appb_len = 0;
        if (!snap_split(s, nd->d_snap.data, nd->d_snap.len, &smb, &smb_len, &appb, &appb_len) ||
            !hamok_sm_decode(smb, smb_len, &nd->sm, &term, &ms, &n) ||
            nd->sm.applied != nd->d_snap_index || term != nd->d_snap_term) {
            hamok__members_free(ms, n);
            hamok__raft_destroy(&nd->core);
            return sim_fail(s, "snapshot", i, nd->d_snap_index, nd->d_snap_term,
                            "the snapshot on disk does not decode");
        }
        st = hamok__raft_restore_snapshot(nd->core, nd->d_snap_index, nd->d_snap_term, ms, n);
        hamok__members_free(ms, n);
        if (st != HAMOK_OK) {
            hamok__raft_destroy(&nd->core);
            return sim_fail(s, "core-error", i, nd->d_snap_index, nd->d_snap_term,
                            "hamok__raft_restore_snapshot: %s", hamok_status_str(st));
        }
        if (app != NULL && app->restore != NULL &&
            !app->restore(s, app->ud, i, nd->d_snap_index, appb, appb_len)) {
            hamok__raft_destroy(&nd->core);
            return sim_fail(s, "app", i, nd->d_snap_index, nd->d_snap_term,
                            "the application could not restore the snapshot on disk");
        }
    }
    if (nd->d_term != 0 || nd->d_len != 0 || nd->d_has_snap) {
        hamok_id vote;
        if (nd->d_vote >= 0) {
            vote = s->ids[nd->d_vote];
        }
        st = hamok__raft_restore(nd->core, nd->d_term, nd->d_vote >= 0 ? &vote : NULL, nd->d_log,
                                 nd->d_len);
        if (st != HAMOK_OK) {
            hamok__raft_destroy(&nd->core);
            return sim_fail(s, "core-error", i, 0, nd->d_term, "hamok__raft_restore: %s",
                            hamok_status_str(st));
        }
    }
    nd->paused = false;
    nd->timer_armed = false;
    nd->cfg_known = false;
    nd->w_last_done = s->now;
    nd->last_role = hamok__raft_role(nd->core);
    nd->last_term = hamok__raft_term(nd->core);
    nd->last_commit = hamok__raft_commit_index(nd->core);
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_restart(s->chk, i, hamok__raft_term(nd->core),
                                     hamok__raft_commit_index(nd->core),
                                     hamok__raft_applied_index(nd->core),
                                     hamok__raft_last_index(nd->core), hamok_sm_hash(&nd->sm)))) {
        return false;
    }
    /* First TICK now. */
    nd->timer_armed = true;
    nd->timer_at = s->now;
    heap_push(
        s,
        (sim_event){
            .at = s->now, .kind = EV_TIMER, .node = i, .from = -1, .inc = nd->inc, .arg = s->now});
    return true;
}

void hamok_sim_pause(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (nd->core == NULL || nd->paused) {
        return;
    }
    nd->paused = true;
    s->st.pauses++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d PAUSE\n", s->now, node);
    }
}

void hamok_sim_resume(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (!nd->paused) {
        return;
    }
    nd->paused = false;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d RESUME (%zu deferred events)\n", s->now, node, nd->n_def);
    }
    for (size_t k = 0; k < nd->n_def; k++) {
        sim_event ev = nd->def[k];
        ev.at = s->now;
        heap_push(s, ev);
    }
    nd->n_def = 0;
}

static void node_drop_volatile(sim_node *nd)
{
    for (size_t k = 0; k < nd->w_len; k++) {
        entries_free(nd->w[k].e, nd->w[k].n);
        free(nd->w[k].e);
    }
    nd->w_len = 0;
    for (size_t k = 0; k < nd->n_def; k++) {
        free(nd->def[k].bytes);
    }
    nd->n_def = 0;
    nd->s_pending = false;
    hamok__buf_reset(&nd->in_blob);
    nd->n_reads = 0; /* their clients time out */
    nd->cfg_known = false;
}

void hamok_sim_crash(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (nd->core == NULL) {
        return;
    }
    hamok__raft_destroy(&nd->core);
    node_drop_volatile(nd);
    nd->paused = false;
    nd->timer_armed = false;
    nd->inc++;
    nd->last_role = 0;
    nd->last_term = 0;
    hamok_chk_crash(s->chk, node);
    if (s->cfg.app != NULL && s->cfg.app->stop != NULL) {
        s->cfg.app->stop(s, s->cfg.app->ud, node, false);
    }
    s->st.crashes++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d CRASH (disk: term %" PRIu64 ", %zu entries)\n", s->now, node,
               nd->d_term, nd->d_len);
    }
}

bool hamok_sim_restart(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (nd->core != NULL || nd->dead || s->failed) {
        return false;
    }
    s->st.restarts++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d RESTART (disk: term %" PRIu64 ", vote %d, %zu entries)\n",
               s->now, node, nd->d_term, nd->d_vote, nd->d_len);
    }
    return node_start(s, node);
}

bool hamok_sim_preset(hamok_sim *s, int node, uint64_t term, int vote, const hamok_entry *entries,
                      size_t n)
{
    sim_node *nd = &s->nodes[node];
    bool was_up = nd->core != NULL;
    if (was_up) {
        hamok_sim_crash(s, node);
        s->st.crashes--;
    }
    entries_free(nd->d_log, nd->d_len);
    nd->d_len = 0;
    nd->d_base = 0;
    nd->d_has_snap = false;
    nd->d_snap_index = nd->d_snap_term = 0;
    hamok__buf_reset(&nd->d_snap);
    if (n > nd->d_cap) {
        hamok_entry *d = realloc(nd->d_log, n * sizeof *d);
        if (d == NULL) {
            return sim_fail(s, "sim-oom", node, 0, 0, "simulator out of memory");
        }
        nd->d_log = d;
        nd->d_cap = n;
    }
    for (size_t k = 0; k < n; k++) {
        if (!entry_copy(&nd->d_log[k], &entries[k])) {
            nd->d_len = k;
            return sim_fail(s, "sim-oom", node, 0, 0, "simulator out of memory");
        }
    }
    nd->d_len = n;
    nd->d_term = term;
    nd->d_vote = vote;
    hamok_chk_set_time(s->chk, s->now);
    if (!chk_ok(s, hamok_chk_disk_preset(s->chk, node, term, vote, nd->d_log, nd->d_len))) {
        return false;
    }
    return node_start(s, node);
}

uint64_t hamok_sim_disk_len(const hamok_sim *s, int node)
{
    return s->nodes[node].d_base + s->nodes[node].d_len;
}

uint64_t hamok_sim_disk_snapshot(const hamok_sim *s, int node)
{
    return s->nodes[node].d_has_snap ? s->nodes[node].d_snap_index : 0;
}

void hamok_sim_set_snapshots(hamok_sim *s, int node, bool enabled)
{
    s->nodes[node].no_snapshots = !enabled;
}

static void node_init(hamok_sim *s, int i, bool bootstrap)
{
    sim_node *nd = &s->nodes[i];
    nd->d_vote = -1;
    nd->rate = 1.0;
    nd->bootstrap = bootstrap;
    if (s->cfg.clock_skew) {
        nd->rate = 0.5 + hamok__prng_unit(&s->clk);
        nd->offset = hamok__prng_below(&s->clk, 1000000);
    }
    hamok_sm_init(&nd->sm);
}

int hamok_sim_add_node(hamok_sim *s)
{
    if (s->failed || s->n >= HAMOK_SIM_MAX_NODES) {
        return -1;
    }
    int i = s->n;
    s->ids[i] = hamok_sim_node_id(i);
    if (hamok_chk_add_node(s->chk, &s->ids[i]) != i) {
        sim_fail(s, "sim-internal", i, 0, 0, "the checker has no room for node %d", i);
        return -1;
    }
    s->n++;
    node_init(s, i, false);
    for (int j = 0; j < s->n; j++) {
        hamok_sim_link_set(s, i, j, s->cfg.drop, s->cfg.dup, s->cfg.delay_min_ms,
                           s->cfg.delay_max_ms);
        hamok_sim_link_set(s, j, i, s->cfg.drop, s->cfg.dup, s->cfg.delay_min_ms,
                           s->cfg.delay_max_ms);
        s->link[i][j].up = true;
        s->link[j][i].up = true;
    }
    s->st.adds++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d ADDED (fresh peer, clock rate=%.3f)\n", s->now, i,
               s->nodes[i].rate);
    }
    if (!node_start(s, i)) {
        return -1;
    }
    return i;
}

static void node_free_disk(sim_node *nd)
{
    entries_free(nd->d_log, nd->d_len);
    nd->d_len = 0;
    nd->d_base = 0;
    nd->d_term = 0;
    nd->d_vote = -1;
    nd->d_has_snap = false;
    nd->d_snap_index = nd->d_snap_term = 0;
    hamok__buf_reset(&nd->d_snap);
}

void hamok_sim_wipe(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (nd->dead) {
        return;
    }
    hamok__raft_destroy(&nd->core);
    node_drop_volatile(nd);
    node_free_disk(nd);
    nd->paused = false;
    nd->timer_armed = false;
    nd->inc++;
    nd->last_role = 0;
    nd->last_term = 0;
    nd->dead = true;
    nd->wiped = true;
    hamok_chk_wipe(s->chk, node);
    if (s->cfg.app != NULL && s->cfg.app->stop != NULL) {
        s->cfg.app->stop(s, s->cfg.app->ud, node, true);
    }
    s->st.wipes++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d WIPED (memory mode: state and id gone)\n", s->now, node);
    }
}

void hamok_sim_retire(hamok_sim *s, int node)
{
    sim_node *nd = &s->nodes[node];
    if (nd->dead) {
        return;
    }
    if (nd->core != NULL) {
        hamok_sim_crash(s, node);
        s->st.crashes--;
    }
    nd->dead = true;
    if (s->cfg.app != NULL && s->cfg.app->stop != NULL) {
        s->cfg.app->stop(s, s->cfg.app->ud, node, true);
    }
    s->st.retires++;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d RETIRED\n", s->now, node);
    }
}

bool hamok_sim_is_dead(const hamok_sim *s, int node)
{
    return s->nodes[node].dead;
}

bool hamok_sim_is_member(const hamok_sim *s, int node)
{
    return (hamok_chk_committed_members(s->chk, NULL) >> node) & 1u;
}

uint64_t hamok_sim_config_members(const hamok_sim *s, int node, uint64_t *voters)
{
    const sim_node *nd = &s->nodes[node];
    if (voters != NULL) {
        *voters = nd->core != NULL ? nd->cfg_voters : 0;
    }
    return nd->core != NULL ? nd->cfg_members : 0;
}

uint64_t hamok_sim_committed_members(const hamok_sim *s, uint64_t *voters)
{
    return hamok_chk_committed_members(s->chk, voters);
}

bool hamok_sim_is_up(const hamok_sim *s, int node)
{
    return s->nodes[node].core != NULL;
}

bool hamok_sim_is_paused(const hamok_sim *s, int node)
{
    return s->nodes[node].paused;
}

bool hamok_sim_is_live(const hamok_sim *s, int node)
{
    return s->nodes[node].core != NULL && !s->nodes[node].paused;
}

hamok_raft *hamok_sim_core(hamok_sim *s, int node)
{
    return s->nodes[node].core;
}

hamok_raft_role hamok_sim_role(const hamok_sim *s, int node)
{
    const hamok_raft *r = s->nodes[node].core;
    return r ? hamok__raft_role(r) : (hamok_raft_role)0;
}

uint64_t hamok_sim_term(const hamok_sim *s, int node)
{
    const hamok_raft *r = s->nodes[node].core;
    return r ? hamok__raft_term(r) : 0;
}

int hamok_sim_leader(const hamok_sim *s)
{
    int best = -1;
    uint64_t best_term = 0;
    for (int i = 0; i < s->n; i++) {
        if (!hamok_sim_is_live(s, i) || hamok__raft_role(s->nodes[i].core) != HAMOK_RAFT_LEADER) {
            continue;
        }
        uint64_t t = hamok__raft_term(s->nodes[i].core);
        if (best < 0 || t > best_term) {
            best = i;
            best_term = t;
        }
    }
    return best;
}

int hamok_sim_agreed_leader(const hamok_sim *s)
{
    int l = hamok_sim_leader(s);
    if (l < 0) {
        return -1;
    }
    uint64_t t = hamok__raft_term(s->nodes[l].core);
    uint64_t members = s->nodes[l].cfg_members;
    for (int i = 0; i < s->n; i++) {
        if (i == l || !hamok_sim_is_live(s, i) || !((members >> i) & 1u)) {
            continue; /* a node outside the leader's configuration follows nobody */
        }
        const hamok_raft *r = s->nodes[i].core;
        hamok_id lid;
        if (hamok__raft_term(r) != t || !hamok__raft_leader(r, &lid) ||
            !hamok__id_eq(&lid, &s->ids[l])) {
            return -1;
        }
    }
    return l;
}

static bool pred_agreed(hamok_sim *s, void *ud)
{
    (void)ud;
    return hamok_sim_agreed_leader(s) >= 0;
}

int hamok_sim_wait_leader(hamok_sim *s, uint64_t max_ms)
{
    if (!hamok_sim_run_until_pred(s, pred_agreed, NULL, max_ms)) {
        return -1;
    }
    return hamok_sim_agreed_leader(s);
}

bool hamok_sim_node_applied(const hamok_sim *s, int node, uint64_t index, uint64_t term)
{
    const hamok_raft *r = s->nodes[node].core;
    uint64_t t = 0;
    /* Applied entries are the committed ones (the checker verifies it). */
    return r != NULL && hamok__raft_applied_index(r) >= index &&
           hamok_chk_committed_at(s->chk, index, &t, NULL) && t == term;
}

typedef struct applied_arg {
    uint64_t index, term;
} applied_arg;

static bool pred_applied(hamok_sim *s, void *ud)
{
    const applied_arg *a = ud;
    uint64_t members = hamok_chk_committed_members(s->chk, NULL);
    for (int i = 0; i < s->n; i++) {
        if (hamok_sim_is_live(s, i) && ((members >> i) & 1u) &&
            !hamok_sim_node_applied(s, i, a->index, a->term)) {
            return false;
        }
    }
    return true;
}

/* The proposal at (index, term) can no longer commit. */
static bool proposal_lost(const hamok_sim *s, uint64_t index, uint64_t term)
{
    uint64_t ct = 0, last_t = 0;
    uint64_t len = hamok_chk_committed_len(s->chk);
    hamok_chk_committed_at(s->chk, len, &last_t, NULL);
    return hamok_chk_committed_at(s->chk, index, &ct, NULL) ? ct != term : last_t > term;
}

static bool pred_applied_or_lost(hamok_sim *s, void *ud)
{
    const applied_arg *a = ud;
    return pred_applied(s, ud) || proposal_lost(s, a->index, a->term);
}

bool hamok_sim_wait_applied(hamok_sim *s, uint64_t index, uint64_t term, uint64_t max_ms)
{
    applied_arg a = {index, term};
    return hamok_sim_run_until_pred(s, pred_applied, &a, max_ms);
}

/* ------------------------------------------------------------------------ */
/* Network. */

void hamok_sim_link_set(hamok_sim *s, int from, int to, double drop, double dup,
                        uint32_t delay_min_ms, uint32_t delay_max_ms)
{
    sim_link *l = &s->link[from][to];
    l->drop = drop;
    l->dup = dup;
    l->dmin = delay_min_ms;
    l->dmax = delay_max_ms < delay_min_ms ? delay_min_ms : delay_max_ms;
}

void hamok_sim_net_set(hamok_sim *s, double drop, double dup, uint32_t delay_min_ms,
                       uint32_t delay_max_ms)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            hamok_sim_link_set(s, i, j, drop, dup, delay_min_ms, delay_max_ms);
        }
    }
}

void hamok_sim_link_enable(hamok_sim *s, int from, int to, bool up)
{
    s->link[from][to].up = up;
}

bool hamok_sim_link_is_up(const hamok_sim *s, int from, int to)
{
    return s->link[from][to].up;
}

void hamok_sim_connect(hamok_sim *s, int a, int b, bool up)
{
    s->link[a][b].up = up;
    s->link[b][a].up = up;
}

static void trace_net(hamok_sim *s, const char *what)
{
    if (!s->trace) {
        return;
    }
    printf("[%8" PRIu64 " ms] NET %s:", s->now, what);
    for (int i = 0; i < s->n; i++) {
        printf(" n%d->{", i);
        for (int j = 0; j < s->n; j++) {
            if (j != i && s->link[i][j].up) {
                printf("%d", j);
            }
        }
        printf("}");
    }
    printf("\n");
}

void hamok_sim_partition(hamok_sim *s, uint64_t mask_a)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            bool ai = (mask_a >> i) & 1u;
            bool aj = (mask_a >> j) & 1u;
            s->link[i][j].up = ai == aj;
        }
    }
    trace_net(s, "partition");
}

void hamok_sim_isolate(hamok_sim *s, int node)
{
    for (int j = 0; j < s->n; j++) {
        if (j != node) {
            s->link[node][j].up = false;
            s->link[j][node].up = false;
        }
    }
    trace_net(s, "isolate");
}

void hamok_sim_star(hamok_sim *s, int center, uint64_t leaves_mask)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            if (i == j) {
                continue;
            }
            bool up = false;
            if (i == center && ((leaves_mask >> j) & 1u)) {
                up = true;
            }
            if (j == center && ((leaves_mask >> i) & 1u)) {
                up = true;
            }
            s->link[i][j].up = up;
        }
    }
    trace_net(s, "star");
}

void hamok_sim_heal(hamok_sim *s)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            s->link[i][j].up = true;
        }
    }
    trace_net(s, "heal");
}

void hamok_sim_on_role(hamok_sim *s, hamok_sim_role_fn fn, void *ud)
{
    s->on_role = fn;
    s->on_role_ud = ud;
}

void hamok_sim_on_commit(hamok_sim *s, hamok_sim_commit_fn fn, void *ud)
{
    s->on_commit = fn;
    s->on_commit_ud = ud;
}

void hamok_sim_on_read(hamok_sim *s, hamok_sim_read_fn fn, void *ud)
{
    s->on_read = fn;
    s->on_read_ud = ud;
}

void hamok_sim_set_filter(hamok_sim *s, hamok_sim_filter f, void *ud)
{
    s->filter = f;
    s->filter_ud = ud;
}

/* ------------------------------------------------------------------------ */
/* Clients. */

hamok_status hamok_sim_propose_entries(hamok_sim *s, int node, const hamok_entry *entries, size_t n,
                                       uint64_t *index, uint64_t *term)
{
    if (s->failed || node < 0 || node >= s->n || !hamok_sim_is_live(s, node) || n == 0) {
        return HAMOK_ERR_STATE;
    }
    hamok_entry *e = calloc(n, sizeof *e);
    if (e == NULL) {
        sim_fail(s, "sim-oom", node, 0, 0, "simulator out of memory");
        return HAMOK_ERR_NOMEM;
    }
    memcpy(e, entries, n * sizeof *e);
    s->st.steps++;
    hamok_raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HAMOK_RAFT_EV_PROPOSE;
    ev.u.propose.entries = e;
    ev.u.propose.n = n;
    hamok_raft_update up;
    memset(&up, 0, sizeof up);
    hamok_status st = HAMOK_OK;
    bool ok = node_step(s, node, &ev, &up, &st, true);
    if (ok && st == HAMOK_OK) {
        if (s->trace) {
            printf("[%8" PRIu64 " ms] n%d PROPOSE %zu entries at %" PRIu64 "/%" PRIu64 "\n", s->now,
                   node, n, up.proposed_index, up.proposed_term);
        }
        for (size_t k = 0; k < n; k++) {
            e[k].term = up.proposed_term;
        }
        ok = chk_ok(s, hamok_chk_propose(s->chk, node, up.proposed_index, up.proposed_term, e, n));
        if (index) {
            *index = up.proposed_index;
        }
        if (term) {
            *term = up.proposed_term;
        }
    }
    free(e);
    if (!ok) {
        return HAMOK_ERR_STATE;
    }
    return st;
}

hamok_status hamok_sim_propose(hamok_sim *s, int node, size_t n, uint64_t *index, uint64_t *term)
{
    if (s->failed || node < 0 || node >= s->n || !hamok_sim_is_live(s, node) || n == 0) {
        return HAMOK_ERR_STATE;
    }
    hamok_entry *e = calloc(n, sizeof *e);
    char(*payload)[48] = calloc(n, sizeof *payload);
    if (e == NULL || payload == NULL) {
        free(e);
        free(payload);
        sim_fail(s, "sim-oom", node, 0, 0, "simulator out of memory");
        return HAMOK_ERR_NOMEM;
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t p = ++s->prop_counter;
        int len = snprintf(payload[k], sizeof payload[k], "s%" PRIu64 "-p%" PRIu64, s->cfg.seed, p);
        e[k].type = HAMOK_ENTRY_COMMAND;
        e[k].client = hamok__id_from_u64(0xC11E47);
        e[k].seq = p;
        e[k].data = (uint8_t *)payload[k];
        e[k].len = (size_t)len;
    }
    hamok_status st = hamok_sim_propose_entries(s, node, e, n, index, term);
    free(e);
    free(payload);
    return st;
}

bool hamok_sim_send(hamok_sim *s, int node, const hamok_msg *m)
{
    if (s->failed || node < 0 || node >= s->n) {
        return false;
    }
    return send_one(s, node, m);
}

hamok_status hamok_sim_propose_leader(hamok_sim *s, size_t n, uint64_t *index, uint64_t *term,
                                      int *node)
{
    int l = hamok_sim_leader(s);
    if (node) {
        *node = l;
    }
    if (l < 0) {
        return HAMOK_ERR_NO_LEADER;
    }
    return hamok_sim_propose(s, l, n, index, term);
}

hamok_status hamok_sim_change(hamok_sim *s, int node, hamok_raft_change_op op, int target,
                              uint64_t *index)
{
    if (index != NULL) {
        *index = 0;
    }
    if (s->failed || node < 0 || node >= s->n || !hamok_sim_is_live(s, node) || target < 0 ||
        target >= s->n) {
        return HAMOK_ERR_STATE;
    }
    char ep[32];
    snprintf(ep, sizeof ep, "sim:n%d", target);
    s->st.steps++;
    hamok_raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HAMOK_RAFT_EV_CHANGE;
    ev.u.change.op = op;
    ev.u.change.id = s->ids[target];
    ev.u.change.endpoint = ep;
    hamok_raft_update up;
    memset(&up, 0, sizeof up);
    hamok_status st = HAMOK_OK;
    uint64_t pi = 0;
    bool ok = node_step(s, node, &ev, &up, &st, true);
    if (ok && st == HAMOK_OK) {
        pi = up.proposed_index;
        if (pi != 0) {
            s->st.changes_ok++;
        }
    }
    if (s->trace) {
        static const char *ops[] = {"?", "ADD_LEARNER", "PROMOTE", "REMOVE"};
        printf("[%8" PRIu64 " ms] n%d CHANGE %s n%d -> %s (index %" PRIu64 ")\n", s->now, node,
               ops[op >= 1 && op <= 3 ? op : 0], target, hamok_status_str(st), pi);
    }
    if (index != NULL) {
        *index = pi;
    }
    return ok ? st : HAMOK_ERR_STATE;
}

hamok_status hamok_sim_transfer(hamok_sim *s, int node, int target)
{
    if (s->failed || node < 0 || node >= s->n || !hamok_sim_is_live(s, node) || target >= s->n) {
        return HAMOK_ERR_STATE;
    }
    s->st.steps++;
    hamok_raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HAMOK_RAFT_EV_TRANSFER;
    ev.u.transfer.has_target = target >= 0;
    if (target >= 0) {
        ev.u.transfer.target = s->ids[target];
    }
    hamok_raft_update up;
    memset(&up, 0, sizeof up);
    hamok_status st = HAMOK_OK;
    bool ok = node_step(s, node, &ev, &up, &st, true);
    if (ok && st == HAMOK_OK) {
        s->st.transfers_ok++;
    }
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d TRANSFER to %d -> %s\n", s->now, node, target,
               hamok_status_str(st));
    }
    return ok ? st : HAMOK_ERR_STATE;
}

uint64_t hamok_sim_next_read_id(const hamok_sim *s)
{
    return s->read_counter + 1;
}

hamok_status hamok_sim_read(hamok_sim *s, int node, uint64_t *id)
{
    if (s->failed || node < 0 || node >= s->n || !hamok_sim_is_live(s, node)) {
        return HAMOK_ERR_STATE;
    }
    sim_node *nd = &s->nodes[node];
    uint64_t rid = ++s->read_counter;
    if (id != NULL) {
        *id = rid;
    }
    s->st.reads++;
    hamok_chk_set_time(s->chk, s->now);
    sim_read rd = {rid, s->now, hamok_chk_read_start(s->chk), false, 0};
    if (s->cfg.read_mode == HAMOK_SIM_READ_LOCAL ||
        (s->cfg.read_mode == HAMOK_SIM_READ_LEADER_LOCAL &&
         hamok__raft_role(nd->core) == HAMOK_RAFT_LEADER)) {
        /* Negative control: no barrier at all. */
        return read_serve(s, node, &rd, nd->sm.applied) ? HAMOK_OK : HAMOK_ERR_STATE;
    }
    sim_read *p = read_add(s, node);
    if (p == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    *p = rd;
    if (s->trace) {
        printf("[%8" PRIu64 " ms] n%d READ_INDEX %" PRIu64 " (committed %" PRIu64 ")\n", s->now,
               node, rid, rd.lower);
    }
    s->st.steps++;
    hamok_raft_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = HAMOK_RAFT_EV_READ_INDEX;
    ev.u.read.id = rid;
    hamok_raft_update up;
    memset(&up, 0, sizeof up);
    hamok_status st = HAMOK_OK;
    bool ok = node_step(s, node, &ev, &up, &st, true);
    return ok ? st : HAMOK_ERR_STATE;
}

/* ------------------------------------------------------------------------ */
/* Final phase. */

void hamok_sim_heal_all(hamok_sim *s)
{
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            s->link[i][j].up = true;
            s->link[i][j].drop = 0;
            s->link[i][j].dup = 0;
        }
    }
    s->filter = NULL;
    trace_net(s, "heal all");
    for (int i = 0; i < s->n; i++) {
        if (s->nodes[i].dead) {
            continue;
        }
        if (s->nodes[i].core == NULL) {
            hamok_sim_restart(s, i);
        } else if (s->nodes[i].paused) {
            hamok_sim_resume(s, i);
        }
    }
}

bool hamok_sim_check_liveness(hamok_sim *s)
{
    return hamok_sim_check_recovery(s) && hamok_sim_check_final(s);
}

bool hamok_sim_check_final(hamok_sim *s)
{
    if (s->failed) {
        return false;
    }
    uint64_t live = 0;
    uint64_t members = hamok_chk_committed_members(s->chk, NULL);
    for (int i = 0; i < s->n; i++) {
        if (hamok_sim_is_up(s, i) && ((members >> i) & 1u)) {
            live |= 1ULL << i;
        }
    }
    hamok_chk_set_time(s->chk, s->now);
    return chk_ok(s, hamok_chk_final(s->chk, live));
}

bool hamok_sim_check_recovery(hamok_sim *s)
{
    if (s->failed) {
        return false;
    }
    hamok_sim_heal_all(s);
    if (s->failed) {
        return false;
    }
    double min_rate = 1.0;
    for (int i = 0; i < s->n; i++) {
        if (s->nodes[i].rate < min_rate) {
            min_rate = s->nodes[i].rate;
        }
    }
    uint64_t t_el = s->cfg.election_timeout_ms ? s->cfg.election_timeout_ms : 1000;
    uint64_t bound = (uint64_t)(10.0 * (double)t_el / min_rate);
    uint64_t t0 = s->now;
    /* Committing the fresh entry may first need to repair divergent logs:
     * the conflict hints skip one term per round trip, and with small
     * batches catching up takes one round trip per batch. Allow one slow
     * round trip (longest link delay both ways, a heartbeat, a disk write)
     * per log entry on top of the election bound: generous, but finite, so
     * a stall is still reported. */
    uint64_t dmax = 0, longest = 0;
    for (int i = 0; i < s->n; i++) {
        for (int j = 0; j < s->n; j++) {
            if (s->link[i][j].dmax > dmax) {
                dmax = s->link[i][j].dmax;
            }
        }
        if (s->nodes[i].core != NULL) {
            uint64_t last = hamok__raft_last_index(s->nodes[i].core);
            longest = last > longest ? last : longest;
        }
    }
    uint64_t hb = s->cfg.heartbeat_ms ? s->cfg.heartbeat_ms : 100;
    uint64_t per_rtt = (uint64_t)((double)(2 * dmax + hb + s->cfg.disk_delay_max_ms) / min_rate);
    uint64_t end = t0 + 2 * bound + (longest + 1) * per_rtt;
    int l = hamok_sim_wait_leader(s, bound);
    if (l < 0) {
        if (!s->failed) {
            sim_fail(s, "liveness", -1, 0, 0,
                     "no leader that every node follows within %" PRIu64
                     " ms (10 election timeouts) after healing",
                     bound);
        }
        return false;
    }
    uint64_t leader_at = s->now;
    for (;;) {
        uint64_t idx = 0, term = 0;
        hamok_status st = hamok_sim_propose(s, l, 1, &idx, &term);
        if (s->failed) {
            return false;
        }
        if (st == HAMOK_OK) {
            applied_arg a = {idx, term};
            hamok_sim_run_until_pred(s, pred_applied_or_lost, &a, end > s->now ? end - s->now : 0);
            if (s->failed) {
                return false;
            }
            if (pred_applied(s, &a)) {
                break;
            }
            /* Lost to a newer leader: try again. Otherwise it is stuck. */
            if (!proposal_lost(s, idx, term)) {
                return sim_fail(s, "liveness", l, idx, term,
                                "fresh proposal (index %" PRIu64 ", term %" PRIu64
                                ") not applied on every node within %" PRIu64
                                " ms of the leader's election",
                                idx, term, s->now - leader_at);
            }
        } else if (!hamok_sim_run_for(s, 10)) {
            /* BUSY (a leadership transfer in progress) or NOT_LEADER: let
             * time pass before asking again. */
            return false;
        }
        if (s->now >= end) {
            return sim_fail(s, "liveness", -1, 0, 0,
                            "no fresh proposal committed within %" PRIu64 " ms after healing",
                            end - t0);
        }
        l = hamok_sim_wait_leader(s, end - s->now);
        if (l < 0) {
            if (!s->failed) {
                sim_fail(s, "liveness", -1, 0, 0, "leadership lost after healing and not regained");
            }
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Statistics. */

void hamok_sim_stats_get(const hamok_sim *s, hamok_sim_stats *out)
{
    *out = s->st;
    out->virtual_ms = s->now;
    hamok_chk_stats_get(s->chk, &out->chk);
}

uint64_t hamok_sim_sent(const hamok_sim *s, int node, uint8_t type)
{
    return type < SIM_MAX_TYPES ? s->nodes[node].sent[type] : 0;
}

uint64_t hamok_sim_append_rejects(const hamok_sim *s, int node)
{
    return s->nodes[node].rejects;
}

void hamok_sim_reset_counters(hamok_sim *s)
{
    for (int i = 0; i < s->n; i++) {
        memset(s->nodes[i].sent, 0, sizeof s->nodes[i].sent);
        s->nodes[i].rejects = 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Lifecycle. */

void hamok_sim_config_default(hamok_sim_config *c, uint64_t seed, int n_nodes)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    c->n_nodes = n_nodes;
    c->election_timeout_ms = 1000;
    c->heartbeat_ms = 100;
    c->pre_vote = true;
    c->check_quorum = true;
    c->delay_min_ms = 1;
    c->delay_max_ms = 10;
    c->disk_delay_max_ms = 5;
}

hamok_sim *hamok_sim_new(const hamok_sim_config *c)
{
    if (c->n_nodes < 1 || c->n_nodes > HAMOK_SIM_MAX_NODES) {
        return NULL;
    }
    hamok_sim *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->cfg = *c;
    s->n = c->n_nodes;
    const char *tr = getenv("HAMOK_SIM_TRACE");
    s->trace = c->trace || (tr != NULL && tr[0] != '\0' && strcmp(tr, "0") != 0);
    s->chk = hamok_chk_new(s->n);
    if (s->chk == NULL) {
        free(s);
        return NULL;
    }
    if (s->cfg.chunk_bytes == 0) {
        s->cfg.chunk_bytes = 512;
    }
    s->n_boot = s->n;
    hamok__prng_seed(&s->net, mix64(c->seed ^ 0x6e6574ULL));
    hamok__prng_seed(&s->disk, mix64(c->seed ^ 0x6469736bULL));
    hamok__prng_seed(&s->clk, mix64(c->seed ^ 0x636c6f636bULL));
    for (int i = 0; i < s->n; i++) {
        s->ids[i] = hamok_sim_node_id(i);
        node_init(s, i, true);
    }
    hamok_sim_net_set(s, c->drop, c->dup, c->delay_min_ms, c->delay_max_ms);
    hamok_sim_heal(s);
    if (s->trace) {
        printf("[%8d ms] SIM seed=%" PRIu64 " nodes=%d election=%u heartbeat=%u\n", 0, c->seed,
               s->n, c->election_timeout_ms, c->heartbeat_ms);
        for (int i = 0; i < s->n; i++) {
            printf("           n%d clock rate=%.3f offset=%" PRIu64 "\n", i, s->nodes[i].rate,
                   s->nodes[i].offset);
        }
    }
    for (int i = 0; i < s->n; i++) {
        if (!node_start(s, i)) {
            break; /* reported through hamok_sim_error() */
        }
    }
    return s;
}

void hamok_sim_destroy(hamok_sim **ps)
{
    if (ps == NULL || *ps == NULL) {
        return;
    }
    hamok_sim *s = *ps;
    for (int i = 0; i < HAMOK_SIM_MAX_NODES; i++) {
        sim_node *nd = &s->nodes[i];
        hamok__raft_destroy(&nd->core);
        node_drop_volatile(nd);
        free(nd->w);
        free(nd->def);
        free(nd->reads);
        entries_free(nd->d_log, nd->d_len);
        free(nd->d_log);
        hamok__buf_free(&nd->d_snap);
        hamok__buf_free(&nd->s_blob);
        hamok__buf_free(&nd->in_blob);
    }
    for (size_t k = 0; k < s->hn; k++) {
        free(s->heap[k].bytes);
    }
    free(s->heap);
    hamok__buf_free(&s->enc);
    hamok_chk_destroy(&s->chk);
    free(s);
    *ps = NULL;
}
