/* The node driver: loop thread, inbox, timers, Raft driving, discovery,
 * requests and the public node API. See include/hamok/node.h and
 * docs/API.md. The cores it drives (src/raft, src/grid, src/collections) are
 * sans-I/O; this file owns the clock, the threads and the transport. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "node/node_int.h"
#include "storage/storage.h"
#include "util/alloc.h"
#include "util/prng.h"

#define SNAPSHOT_CHUNK  (512u * 1024u)
#define INBOX_MAX_BYTES (256u * 1024u * 1024u)
#define MAX_LISTENERS   64

/* ------------------------------------------------------------------------ */
/* Inbox items */

typedef enum item_kind { ITEM_FRAME = 1, ITEM_REQ = 2, ITEM_STOP = 3, ITEM_LINK = 4 } item_kind;

typedef struct inbox_item {
    struct inbox_item *next;
    item_kind kind;
    hamok_req *req;
    bool has_from;             /* FRAME: the transport authenticated the sender */
    hamok_id from;             /* FRAME */
    hamok_transport_link link; /* LINK (data: the text, NUL-terminated) */
    size_t len;
    uint8_t data[]; /* FRAME, LINK */
} inbox_item;

typedef struct listener {
    hamok_node_event_fn fn;
    void *ud;
} listener;

/* A proposal waiting for the end of the loop turn: everything proposed in one
 * turn goes to the Raft core as one batch (one log append, one AppendEntries
 * per follower). */
typedef struct prop {
    hamok_entry e;   /* data borrowed from rq->cmd, or owned (remote) */
    hamok_req *rq;   /* local request, or NULL */
    hamok_id from;   /* remote proposer */
    uint64_t req_id; /* remote request id */
} prop;

/* Pending submits by sequence number (open addressing, seq 0 = empty). */
typedef struct seq_table {
    uint64_t *keys;
    hamok_req **vals;
    size_t cap; /* power of two */
    size_t n;
} seq_table;

typedef struct departed_peer {
    hamok_id id;
    uint64_t at; /* when it left the configuration */
} departed_peer;

struct hamok_node {
    hamok_config cfg; /* copy (storage_dir owned) */
    hamok_id self;
    char self_text[HAMOK_ID_STR_LEN + 1];
    hamok_transport *t;
    hamok_transport_sink sink;
    hamok_codec_limits limits;
    uint32_t frame_limit; /* the transport's max_frame (bytes) */

    /* Inbox: the one thread-safe door. */
    pthread_mutex_t inbox_mu;
    inbox_item *in_head;
    inbox_item *in_tail;
    size_t in_bytes;
    bool closing; /* no more items accepted */
    int efd;

    /* Loop. */
    pthread_t thread;
    bool has_thread;
    atomic_bool stop;
    int in_process; /* depth: > 0 while the loop thread runs node code */
    pthread_t loop_tid;
    atomic_bool loop_tid_set; /* published after loop_tid (release/acquire) */

    /* Cores. */
    hamok_raft *raft;
    hamok_grid *grid;
    hamok_registry *reg;
    pthread_rwlock_t reg_lock;
    hamok_storage *st; /* durable mode; NULL in memory */
    bool failed;       /* storage failed: the node stopped taking part */
    hamok_prng prng;

    /* In-memory snapshot store. */
    hamok_buf snap;
    uint64_t snap_index;
    uint64_t snap_term;
    hamok_buf snap_in;
    hamok_member *snap_in_members;
    size_t n_snap_in_members;

    /* Follow-up events after a step. */
    bool fu_persist;
    uint64_t fu_persist_index;
    uint64_t fu_persist_term;
    bool fu_snapshot;
    uint64_t fu_snapshot_index;

    /* Timers. */
    uint64_t raft_deadline;
    uint64_t grid_deadline;
    uint64_t req_check_at;

    /* Members that left the configuration: the transport forgets their
     * endpoints once they stayed away and silent for a while (a zmq link
     * per identity that ever joined would pile up otherwise). */
    departed_peer *departed;
    size_t n_departed;
    size_t cap_departed;
    uint64_t departed_check_at;

    /* Proposals of this turn. */
    prop *props;
    size_t n_props;
    size_t cap_props;

    /* Requests. */
    hamok_req *active;    /* doubly linked */
    hamok_req *graveyard; /* completed this turn, freed at its end */
    seq_table pending;
    uint64_t next_seq;
    uint64_t seq_reserved; /* durable mode: sequence numbers on disk as used up to here */
    uint64_t next_read_id;

    /* Role bookkeeping for events. */
    hamok_role last_role;
    uint64_t last_term;
    bool last_has_leader;
    hamok_id last_leader;
    uint64_t last_commit;
    hamok_member *members; /* last configuration seen (copy) */
    size_t n_members;

    /* Scratch. */
    hamok_buf enc;
    hamok_buf res;

    /* Mirror for other threads (state_mu). */
    pthread_mutex_t state_mu;
    hamok_node_stats stats;
    hamok_peer_info *peers;
    size_t n_peers;

    /* Listeners (listen_mu). */
    pthread_mutex_t listen_mu;
    listener listeners[MAX_LISTENERS];
    size_t n_listeners;

    /* Collection handles (handles_mu). */
    pthread_mutex_t handles_mu;
    hamok_handle **handles;
    size_t n_handles;
    size_t cap_handles;
};

/* ------------------------------------------------------------------------ */
/* Small helpers */

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hamok__nlog(hamok_node *n, hamok_log_level level, const char *module, const char *fmt, ...)
{
    if (level > n->cfg.log_level) {
        return;
    }
    char line[512];
    int off = snprintf(line, sizeof line, "[%.8s] ", n->self_text);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, sizeof line - (size_t)off, fmt, ap);
    va_end(ap);
    if (n->cfg.log_fn != NULL) {
        n->cfg.log_fn(n->cfg.log_ud, level, module, line);
    } else {
        hamok__log_default(NULL, level, module, line);
    }
}

static void wake(hamok_node *n)
{
    uint64_t one = 1;
    ssize_t w = write(n->efd, &one, sizeof one);
    (void)w; /* EAGAIN: the counter is already non-zero, the loop wakes anyway */
}

void hamok__waiter_init(hamok_waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

void hamok__waiter_fini(hamok_waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    hamok__buf_free(&w->result);
}

hamok_req *hamok__req_new(hamok_req_type type, int timeout_ms)
{
    hamok_req *rq = hamok__calloc(1, sizeof *rq);
    if (rq != NULL) {
        rq->type = type;
        rq->timeout_ms = timeout_ms;
    }
    return rq;
}

static void req_free(hamok_req *rq)
{
    hamok__free(rq->targets);
    hamok__free(rq->acked);
    hamok__buf_free(&rq->cmd);
    hamok__free(rq);
}

/* Complete a request exactly once (it is on no list any more). On the loop
 * thread the memory is kept until the end of the turn, so loops over the
 * active list can tell a request that completed under them (completed). */
static void req_complete(hamok_node *n, hamok_req *rq, hamok_status st, const uint8_t *res,
                         size_t len)
{
    if (rq->completed) {
        return;
    }
    rq->completed = true;
    if (n != NULL && rq->type == HAMOK_REQ_SUBMIT) {
        pthread_mutex_lock(&n->state_mu);
        if (st == HAMOK_OK) {
            n->stats.proposals_committed++;
        } else {
            n->stats.proposals_failed++;
        }
        pthread_mutex_unlock(&n->state_mu);
    }
    if (rq->w != NULL) {
        hamok_waiter *w = rq->w;
        pthread_mutex_lock(&w->mu);
        w->status = st;
        if (res != NULL && len > 0 && hamok__buf_append(&w->result, res, len) != HAMOK_OK) {
            w->status = HAMOK_ERR_NOMEM;
        }
        w->done = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    } else if (rq->result_fn != NULL) {
        rq->result_fn(rq->ud, st, res, len);
    } else if (rq->done != NULL) {
        rq->done(rq->ud, st);
    }
    if (n != NULL && n->in_process > 0 && hamok__node_on_loop(n)) {
        rq->next = n->graveyard;
        n->graveyard = rq;
    } else {
        req_free(rq);
    }
}

static void free_graveyard(hamok_node *n)
{
    while (n->graveyard != NULL) {
        hamok_req *rq = n->graveyard;
        n->graveyard = rq->next;
        req_free(rq);
    }
}

/* ------------------------------------------------------------------------ */
/* Pending submits */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static hamok_status seq_put(seq_table *t, uint64_t key, hamok_req *v)
{
    if ((t->n + 1) * 2 > t->cap) {
        size_t ncap = t->cap == 0 ? 64 : t->cap * 2;
        uint64_t *nk = hamok__calloc(ncap, sizeof *nk);
        hamok_req **nv = hamok__calloc(ncap, sizeof *nv);
        if (nk == NULL || nv == NULL) {
            hamok__free(nk);
            hamok__free(nv);
            return HAMOK_ERR_NOMEM;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->keys[i] != 0) {
                size_t j = mix64(t->keys[i]) & (ncap - 1);
                while (nk[j] != 0) {
                    j = (j + 1) & (ncap - 1);
                }
                nk[j] = t->keys[i];
                nv[j] = t->vals[i];
            }
        }
        hamok__free(t->keys);
        hamok__free(t->vals);
        t->keys = nk;
        t->vals = nv;
        t->cap = ncap;
    }
    size_t j = mix64(key) & (t->cap - 1);
    while (t->keys[j] != 0) {
        j = (j + 1) & (t->cap - 1);
    }
    t->keys[j] = key;
    t->vals[j] = v;
    t->n++;
    return HAMOK_OK;
}

static hamok_req *seq_take(seq_table *t, uint64_t key)
{
    if (t->cap == 0 || key == 0) {
        return NULL;
    }
    size_t mask = t->cap - 1;
    size_t j = mix64(key) & mask;
    while (t->keys[j] != key) {
        if (t->keys[j] == 0) {
            return NULL;
        }
        j = (j + 1) & mask;
    }
    hamok_req *v = t->vals[j];
    t->keys[j] = 0;
    t->vals[j] = NULL;
    t->n--;
    /* Backward-shift deletion. */
    size_t i = j;
    for (;;) {
        i = (i + 1) & mask;
        if (t->keys[i] == 0) {
            break;
        }
        size_t home = mix64(t->keys[i]) & mask;
        bool move = (j <= i) ? (home <= j || home > i) : (home <= j && home > i);
        if (move) {
            t->keys[j] = t->keys[i];
            t->vals[j] = t->vals[i];
            t->keys[i] = 0;
            t->vals[i] = NULL;
            j = i;
        }
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* Active requests */

static void active_add(hamok_node *n, hamok_req *rq)
{
    rq->prev = NULL;
    rq->next = n->active;
    if (n->active != NULL) {
        n->active->prev = rq;
    }
    n->active = rq;
}

static void active_remove(hamok_node *n, hamok_req *rq)
{
    if (rq->prev != NULL) {
        rq->prev->next = rq->next;
    } else {
        n->active = rq->next;
    }
    if (rq->next != NULL) {
        rq->next->prev = rq->prev;
    }
    rq->next = rq->prev = NULL;
}

static void finish(hamok_node *n, hamok_req *rq, hamok_status st, const uint8_t *res, size_t len)
{
    active_remove(n, rq);
    if (rq->type == HAMOK_REQ_SUBMIT) {
        seq_take(&n->pending, rq->seq);
    }
    req_complete(n, rq, st, res, len);
}

/* ------------------------------------------------------------------------ */
/* Events */

static void emit(hamok_node *n, const hamok_node_event *ev)
{
    listener copy[MAX_LISTENERS];
    pthread_mutex_lock(&n->listen_mu);
    size_t k = n->n_listeners;
    memcpy(copy, n->listeners, k * sizeof copy[0]);
    pthread_mutex_unlock(&n->listen_mu);
    for (size_t i = 0; i < k; i++) {
        copy[i].fn(copy[i].ud, ev);
    }
}

static void emit_error(hamok_node *n, hamok_status st, const char *text)
{
    hamok__nlog(n, HAMOK_LOG_ERROR, "node", "%s: %s", text, hamok_status_str(st));
    hamok_node_event ev = {.type = HAMOK_EVENT_ERROR, .status = st, .text = text};
    emit(n, &ev);
}

static void link_event(hamok_node *n, const inbox_item *it)
{
    const char *text = (const char *)it->data;
    hamok__nlog(n, it->link == HAMOK_LINK_CONNECTED ? HAMOK_LOG_INFO : HAMOK_LOG_WARN, "transport",
                "%s%s%s", hamok_transport_link_str(it->link), text[0] != '\0' ? ": " : "", text);
    pthread_mutex_lock(&n->state_mu);
    n->stats.link = it->link;
    n->stats.link_changes++;
    pthread_mutex_unlock(&n->state_mu);
    hamok_node_event ev = {
        .type = HAMOK_EVENT_TRANSPORT, .link = it->link, .text = text[0] != '\0' ? text : NULL};
    emit(n, &ev);
}

/* ------------------------------------------------------------------------ */
/* Sending */

static void send_msg(hamok_node *n, const hamok_msg *m)
{
    hamok__buf_reset(&n->enc);
    hamok_status st = hamok__codec_encode(m, n->cfg.cluster, &n->limits, &n->enc);
    if (st != HAMOK_OK) {
        hamok__nlog(n, HAMOK_LOG_WARN, "node", "cannot encode %s: %s",
                    hamok__msg_type_name(m->type), hamok_status_str(st));
        return;
    }
    st = n->t->ops->send(n->t, m->broadcast ? NULL : &m->dst, n->enc.data, n->enc.len);
    pthread_mutex_lock(&n->state_mu);
    n->stats.frames_sent++;
    pthread_mutex_unlock(&n->state_mu);
    if (st != HAMOK_OK && st != HAMOK_ERR_NOT_FOUND) {
        hamok__nlog(n, HAMOK_LOG_DEBUG, "transport", "send %s: %s", hamok__msg_type_name(m->type),
                    hamok_status_str(st));
    } else if (n->cfg.log_level >= HAMOK_LOG_TRACE) {
        char dst[HAMOK_ID_STR_LEN + 1] = "*";
        if (!m->broadcast) {
            hamok__id_format(&m->dst, dst);
        }
        hamok__nlog(n, HAMOK_LOG_TRACE, "transport", "send %s to %.8s (%zu bytes): %s",
                    hamok__msg_type_name(m->type), dst, n->enc.len, hamok_status_str(st));
    }
}

/* ------------------------------------------------------------------------ */
/* Raft driving */

static void handle_update(hamok_node *n, const hamok_raft_update *u);

static hamok_status step(hamok_node *n, const hamok_raft_event *ev, uint64_t *proposed_index)
{
    hamok_raft_update u;
    hamok_status st = hamok__raft_step(n->raft, ev, &u);
    if (proposed_index != NULL) {
        *proposed_index = st == HAMOK_OK ? u.proposed_index : 0;
    }
    handle_update(n, &u);
    /* Follow-ups the update asked for (memory mode: entries are stored as
     * soon as handed out; snapshots are taken synchronously). */
    while (n->fu_persist || n->fu_snapshot) {
        hamok_raft_event f = {.now_ms = ev->now_ms};
        if (n->fu_persist) {
            n->fu_persist = false;
            f.type = HAMOK_RAFT_EV_PERSISTED;
            f.u.persisted.index = n->fu_persist_index;
            f.u.persisted.term = n->fu_persist_term;
        } else {
            n->fu_snapshot = false;
            f.type = HAMOK_RAFT_EV_SNAPSHOT_TAKEN;
            f.u.snapshot.index = n->fu_snapshot_index;
        }
        hamok__raft_step(n->raft, &f, &u);
        handle_update(n, &u);
    }
    return st;
}

static hamok_status snap_write(void *ud, const void *data, size_t len)
{
    return hamok__buf_append(ud, data, len);
}

/* A storage error: what reached the disk is unknown, so this peer stops
 * taking part (it must not acknowledge anything any more). Restarting the
 * process recovers from the directory. */
static void storage_failed(hamok_node *n, hamok_status st, const char *what)
{
    if (n->failed) {
        return;
    }
    n->failed = true;
    char text[768];
    snprintf(text, sizeof text, "storage: %s: %s; the node stops", what,
             hamok__storage_error(n->st));
    emit_error(n, st, text);
    atomic_store(&n->stop, true);
}

/* Durably store a snapshot (state bytes + configuration) in the directory. */
static hamok_status store_snapshot(hamok_node *n, uint64_t index, uint64_t term,
                                   const hamok_member *ms, size_t k, const hamok_buf *state)
{
    hamok_buf meta = HAMOK_BUF_INIT;
    hamok_status st = hamok__codec_encode_config(ms, k, &meta);
    if (st == HAMOK_OK) {
        st = hamok__storage_snapshot_begin(n->st, index, term, meta.data, meta.len);
    }
    if (st == HAMOK_OK) {
        st = hamok__storage_snapshot_write(n->st, state->data, state->len);
        if (st == HAMOK_OK) {
            st = hamok__storage_snapshot_commit(n->st);
        } else {
            hamok__storage_snapshot_abort(n->st);
        }
    }
    hamok__buf_free(&meta);
    return st;
}

/* A committed command of ours was answered: complete its request. */
static void complete_own(hamok_node *n, uint64_t seq, const uint8_t *res, size_t len)
{
    hamok_req *rq = seq_take(&n->pending, seq);
    if (rq != NULL) {
        rq->seq = 0; /* already out of the table */
        active_remove(n, rq);
        req_complete(n, rq, HAMOK_OK, res, len);
    }
}

static void on_coll_event(void *ud, const hamok_coll_event *ev)
{
    hamok_node *n = ud;
    if (ev->type == HAMOK_CEV_ANSWER) {
        /* A remote-map request answered when its outcome is applied. */
        if (ev->seq != 0 && hamok__id_eq(&ev->peer, &n->self)) {
            complete_own(n, ev->seq, ev->value, ev->value_len);
        }
        return;
    }
    hamok__node_dispatch_event(n, ev);
}

static void apply_entries(hamok_node *n, const hamok_raft_update *u)
{
    if (u->n_apply == 0) {
        return;
    }
    pthread_rwlock_wrlock(&n->reg_lock);
    for (size_t i = 0; i < u->n_apply; i++) {
        const hamok_entry *e = &u->apply[i];
        uint64_t index = u->apply_first + i;
        hamok__buf_reset(&n->res);
        hamok_status st = hamok__registry_apply(n->reg, index, e, &n->res, on_coll_event, n);
        if (st == HAMOK_ERR_INVALID) {
            /* Already in the state (restored from a snapshot that covers it). */
            hamok__nlog(n, HAMOK_LOG_DEBUG, "node", "entry %" PRIu64 " already applied", index);
            continue;
        }
        if (st != HAMOK_OK) {
            pthread_rwlock_unlock(&n->reg_lock);
            emit_error(n, st, "cannot apply a committed entry; the node stops");
            atomic_store(&n->stop, true);
            return;
        }
        /* No result: a queued remote-map request, answered later (ANSWER). */
        if (e->type == HAMOK_ENTRY_COMMAND && e->seq != 0 && hamok__id_eq(&e->client, &n->self) &&
            n->res.len > 0) {
            complete_own(n, e->seq, n->res.data, n->res.len);
        }
    }
    pthread_rwlock_unlock(&n->reg_lock);
}

static void send_snapshot_chunks(hamok_node *n, const hamok_raft_update *u)
{
    for (size_t i = 0; i < u->n_snapshot_sends; i++) {
        const hamok_raft_snapshot_send *s = &u->snapshot_sends[i];
        if (s->index != n->snap_index || s->offset > n->snap.len) {
            continue; /* a newer snapshot replaced it; the core asks again */
        }
        size_t len = n->snap.len - (size_t)s->offset;
        size_t chunk = n->frame_limit / 2 < SNAPSHOT_CHUNK ? n->frame_limit / 2 : SNAPSHOT_CHUNK;
        if (len > chunk) {
            len = chunk;
        }
        hamok_msg m = {.type = HAMOK_MSG_INSTALL_SNAPSHOT, .src = n->self, .dst = s->to};
        m.u.snapshot.term = s->term;
        m.u.snapshot.last_index = s->index;
        m.u.snapshot.last_term = s->snap_term;
        m.u.snapshot.offset = s->offset;
        m.u.snapshot.done = s->offset + len == n->snap.len;
        m.u.snapshot.members = (hamok_member *)s->members;
        m.u.snapshot.n_members = s->n_members;
        m.u.snapshot.data = n->snap.data + s->offset;
        m.u.snapshot.len = len;
        send_msg(n, &m);
    }
}

static void take_snapshot(hamok_node *n, const hamok_raft_update *u)
{
    hamok_buf b = HAMOK_BUF_INIT;
    /* About the size of the last one: one allocation, no copies as it grows. */
    if (n->snap.len > 0 && hamok__buf_reserve(&b, n->snap.len + n->snap.len / 8) != HAMOK_OK) {
        hamok__nlog(n, HAMOK_LOG_WARN, "node", "snapshot failed: out of memory");
        return;
    }
    pthread_rwlock_rdlock(&n->reg_lock);
    hamok_status st = hamok__registry_snapshot(n->reg, snap_write, &b);
    pthread_rwlock_unlock(&n->reg_lock);
    if (st != HAMOK_OK) {
        hamok__buf_free(&b);
        hamok__nlog(n, HAMOK_LOG_WARN, "node", "snapshot failed: %s", hamok_status_str(st));
        return;
    }
    uint64_t term = 0;
    hamok__raft_term_at(n->raft, u->snapshot_want_index, &term);
    if (n->st != NULL) {
        st = store_snapshot(n, u->snapshot_want_index, term, u->snapshot_members,
                            u->n_snapshot_members, &b);
        if (st != HAMOK_OK) {
            hamok__buf_free(&b);
            if (st == HAMOK_ERR_IO) {
                storage_failed(n, st, "snapshot");
            }
            return;
        }
    }
    hamok__buf_free(&n->snap);
    n->snap = b;
    n->snap_index = u->snapshot_want_index;
    n->snap_term = term;
    n->fu_snapshot = true;
    n->fu_snapshot_index = u->snapshot_want_index;
    pthread_mutex_lock(&n->state_mu);
    n->stats.snapshots_taken++;
    pthread_mutex_unlock(&n->state_mu);
}

static void store_chunk(hamok_node *n, const hamok_raft_update *u)
{
    const hamok_raft_snapshot_chunk *c = &u->chunk;
    if (c->offset == 0) {
        hamok__buf_reset(&n->snap_in);
        hamok__members_free(n->snap_in_members, n->n_snap_in_members);
        n->snap_in_members = NULL;
        n->n_snap_in_members = 0;
        if (c->n_members > 0) {
            hamok_member *ms = hamok__calloc(c->n_members, sizeof *ms);
            for (size_t i = 0; ms != NULL && i < c->n_members; i++) {
                ms[i].id = c->members[i].id;
                ms[i].role = c->members[i].role;
                ms[i].endpoint =
                    hamok__strdup(c->members[i].endpoint != NULL ? c->members[i].endpoint : "");
                if (ms[i].endpoint == NULL) {
                    hamok__members_free(ms, i);
                    ms = NULL;
                }
            }
            if (ms != NULL) {
                n->snap_in_members = ms;
                n->n_snap_in_members = c->n_members;
            }
        }
    }
    if (c->offset != n->snap_in.len) {
        return; /* the core resumes from what we confirmed */
    }
    if (hamok__buf_append(&n->snap_in, c->data, c->len) != HAMOK_OK) {
        hamok__buf_reset(&n->snap_in);
    }
}

static void install_snapshot(hamok_node *n, const hamok_raft_update *u)
{
    if (n->st != NULL) {
        hamok_status s = store_snapshot(n, u->installed_index, u->installed_term,
                                        n->snap_in_members, n->n_snap_in_members, &n->snap_in);
        if (s != HAMOK_OK) {
            storage_failed(n, s, "installing a snapshot");
            return;
        }
    }
    pthread_rwlock_wrlock(&n->reg_lock);
    hamok_status st = hamok__registry_restore(n->reg, n->snap_in.data, n->snap_in.len);
    pthread_rwlock_unlock(&n->reg_lock);
    if (st != HAMOK_OK) {
        emit_error(n, st, "cannot restore an installed snapshot; the node stops");
        atomic_store(&n->stop, true);
        return;
    }
    hamok_buf t = n->snap;
    n->snap = n->snap_in;
    n->snap_in = t;
    hamok__buf_reset(&n->snap_in);
    n->snap_index = u->installed_index;
    n->snap_term = u->installed_term;
    pthread_mutex_lock(&n->state_mu);
    n->stats.snapshots_installed++;
    pthread_mutex_unlock(&n->state_mu);
}

static bool member_in(const hamok_member *ms, size_t k, const hamok_id *id)
{
    for (size_t i = 0; i < k; i++) {
        if (hamok__id_eq(&ms[i].id, id)) {
            return true;
        }
    }
    return false;
}

static void departed_add(hamok_node *n, const hamok_id *id)
{
    if (hamok__id_eq(id, &n->self)) {
        return;
    }
    for (size_t i = 0; i < n->n_departed; i++) {
        if (hamok__id_eq(&n->departed[i].id, id)) {
            n->departed[i].at = clock_ms();
            return;
        }
    }
    if (n->n_departed == n->cap_departed) {
        size_t cap = n->cap_departed ? n->cap_departed * 2 : 8;
        departed_peer *d = hamok__realloc(n->departed, cap * sizeof *d);
        if (d == NULL) {
            return; /* the endpoint stays known: harmless */
        }
        n->departed = d;
        n->cap_departed = cap;
    }
    n->departed[n->n_departed++] = (departed_peer){.id = *id, .at = clock_ms()};
}

/* Forget the endpoints of members that left the configuration and have
 * stayed out and silent for twice the peer timeout (at least 10 s): long
 * enough for a leaving peer to hear that it left, and for a removed one that
 * is alive to say HELLO again (which makes it known again). */
static void forget_departed(hamok_node *n, uint64_t now)
{
    if (n->n_departed == 0 || now < n->departed_check_at) {
        return;
    }
    n->departed_check_at = now + 1000;
    uint64_t after = 2u * (uint64_t)n->cfg.peer_timeout_ms;
    if (after < 10000) {
        after = 10000;
    }
    for (size_t i = 0; i < n->n_departed;) {
        departed_peer *d = &n->departed[i];
        bool back = member_in(n->members, n->n_members, &d->id);
        bool heard = hamok__grid_silence(n->grid, &d->id, now) < after;
        if (!back && (now < d->at + after || heard)) {
            i++;
            continue;
        }
        if (!back && n->t->ops->set_peer != NULL) {
            n->t->ops->set_peer(n->t, &d->id, NULL);
        }
        n->departed[i] = n->departed[--n->n_departed];
    }
}

static void config_changed(hamok_node *n, const hamok_member *ms, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        if (!hamok__id_eq(&ms[i].id, &n->self) && ms[i].endpoint != NULL &&
            ms[i].endpoint[0] != '\0' && n->t->ops->set_peer != NULL) {
            n->t->ops->set_peer(n->t, &ms[i].id, ms[i].endpoint);
        }
        if (!member_in(n->members, n->n_members, &ms[i].id)) {
            hamok_node_event ev = {.type = HAMOK_EVENT_PEER_JOINED, .peer = ms[i].id};
            emit(n, &ev);
        }
    }
    for (size_t i = 0; i < n->n_members; i++) {
        if (!member_in(ms, k, &n->members[i].id)) {
            departed_add(n, &n->members[i].id);
            hamok_node_event ev = {.type = HAMOK_EVENT_PEER_LEFT, .peer = n->members[i].id};
            emit(n, &ev);
        }
    }
    hamok_member *copy = hamok__calloc(k ? k : 1, sizeof *copy);
    if (copy == NULL) {
        return;
    }
    for (size_t i = 0; i < k; i++) {
        copy[i].id = ms[i].id;
        copy[i].role = ms[i].role;
        copy[i].endpoint = hamok__strdup(ms[i].endpoint != NULL ? ms[i].endpoint : "");
        if (copy[i].endpoint == NULL) {
            hamok__members_free(copy, i);
            return;
        }
    }
    hamok__members_free(n->members, n->n_members);
    n->members = copy;
    n->n_members = k;
}

static void resend_submits(hamok_node *n, uint64_t now);
static void complete_reads(hamok_node *n, const hamok_raft_update *u);

static void handle_update(hamok_node *n, const hamok_raft_update *u)
{
    if (n->failed) {
        return; /* nothing may be acknowledged any more */
    }
    /* 1. Hard state (durable mode; in memory the process forgets it with its
     *    id), snapshot chunks and installs. */
    if (n->st != NULL && u->hard_state_changed) {
        hamok_status st = hamok__storage_save_hard_state(n->st, u->term, u->has_vote, &u->vote);
        if (st != HAMOK_OK) {
            storage_failed(n, st, "saving term and vote");
            return;
        }
    }
    if (u->has_chunk) {
        store_chunk(n, u);
    }
    if (u->snapshot_installed) {
        install_snapshot(n, u);
        if (n->failed) {
            return;
        }
    }
    /* 2. Log: in memory, stored as soon as handed out; on disk, written now
     *    and acknowledged (PERSISTED) once synced by the policy. */
    if (n->st != NULL) {
        hamok_status st = HAMOK_OK;
        uint64_t now = clock_ms();
        if (u->truncate_from != 0) { /* never at or below a snapshot (raft.h) */
            st = hamok__storage_truncate(n->st, u->truncate_from, now);
        }
        if (st == HAMOK_OK && u->n_persist > 0) {
            st = hamok__storage_append(n->st, u->persist_first, u->persist, u->n_persist, now);
        }
        if (st == HAMOK_OK && hamok__storage_sync_due(n->st, now)) {
            uint64_t di = 0, dt = 0;
            st = hamok__storage_sync(n->st, &di, &dt);
            if (st == HAMOK_OK && di > 0) {
                n->fu_persist = true;
                n->fu_persist_index = di;
                n->fu_persist_term = dt;
            }
        }
        if (st != HAMOK_OK) {
            storage_failed(n, st, "writing the log");
            return;
        }
    } else if (u->n_persist > 0) {
        n->fu_persist = true;
        n->fu_persist_index = u->persist_first + u->n_persist - 1;
        n->fu_persist_term = u->persist[u->n_persist - 1].term;
    }
    /* 3. Messages. */
    for (size_t i = 0; i < u->n_msgs; i++) {
        send_msg(n, &u->msgs[i]);
    }
    /* 4. Apply, snapshot transfers, compaction. */
    apply_entries(n, u);
    send_snapshot_chunks(n, u);
    if (u->snapshot_wanted) {
        take_snapshot(n, u);
    }
    if (u->config_changed) {
        config_changed(n, u->members, u->n_members);
    }
    if (u->n_reads > 0) {
        complete_reads(n, u);
    }
    n->raft_deadline = u->next_deadline_ms;
}

/* ------------------------------------------------------------------------ */
/* Views for the grid */

static bool self_member(hamok_node *n, bool *voter)
{
    size_t k;
    uint64_t ci;
    const hamok_member *ms = hamok__raft_members(n->raft, &k, &ci);
    for (size_t i = 0; i < k; i++) {
        if (hamok__id_eq(&ms[i].id, &n->self)) {
            if (voter != NULL) {
                *voter = ms[i].role == HAMOK_MEMBER_VOTER;
            }
            return true;
        }
    }
    if (voter != NULL) {
        *voter = false;
    }
    return false;
}

static void grid_view(hamok_node *n, hamok_grid_view *v)
{
    memset(v, 0, sizeof *v);
    uint64_t ci;
    v->members = hamok__raft_members(n->raft, &v->n_members, &ci);
    v->is_member = self_member(n, NULL);
    v->is_leader = hamok__raft_role(n->raft) == HAMOK_RAFT_LEADER;
    v->has_leader = hamok__raft_leader(n->raft, &v->leader);
    v->term = hamok__raft_term(n->raft);
    v->commit_index = hamok__raft_commit_index(n->raft);
    v->committed = hamok__raft_config_at(n->raft, v->commit_index, &v->n_committed);
    if (v->committed == NULL) {
        v->committed = v->members;
        v->n_committed = v->n_members;
    }
    v->founded = v->term > 0 || hamok__raft_last_index(n->raft) > 0 || v->n_members > 0;
}

static hamok_status make_raft(hamok_node *n, bool founder)
{
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = n->self;
    const char *self_endpoint =
        n->t->ops->local_endpoint != NULL ? n->t->ops->local_endpoint(n->t) : NULL;
    o.voters = founder ? &n->self : NULL;
    o.n_voters = founder ? 1 : 0;
    o.voter_endpoints = founder ? &self_endpoint : NULL;
    o.election_timeout_ms = n->cfg.election_timeout_ms;
    o.heartbeat_ms = n->cfg.heartbeat_ms;
    o.seed = hamok__prng_next(&n->prng);
    o.snapshot_entries = n->cfg.snapshot_entries;
    /* A batch of small entries and its per-entry overhead fit in a frame;
     * one large entry travels alone, up to what a frame holds. */
    o.max_batch_bytes = n->frame_limit / 2;
    if (o.max_batch_entries > o.max_batch_bytes / HAMOK_CODEC_ENTRY_OVERHEAD) {
        o.max_batch_entries = (uint32_t)(o.max_batch_bytes / HAMOK_CODEC_ENTRY_OVERHEAD);
    }
    o.max_entry_bytes = n->frame_limit - 1024u;
    hamok_raft *r = NULL;
    hamok_status st = hamok__raft_new(&r, &o);
    if (st != HAMOK_OK) {
        return st;
    }
    hamok__raft_destroy(&n->raft);
    n->raft = r;
    n->raft_deadline = 0; /* step at once */
    return HAMOK_OK;
}

static void handle_grid_out(hamok_node *n, uint64_t now, const hamok_grid_out *out)
{
    for (size_t i = 0; i < out->n_learned; i++) {
        if (n->t->ops->set_peer != NULL) {
            n->t->ops->set_peer(n->t, &out->learned[i].id, out->learned[i].endpoint);
        }
    }
    for (size_t i = 0; i < out->n_msgs; i++) {
        send_msg(n, &out->msgs[i]);
    }
    n->grid_deadline = out->next_deadline_ms;
    if (out->found) {
        hamok__nlog(n, HAMOK_LOG_INFO, "grid", "no cluster found: founding one");
        if (make_raft(n, true) == HAMOK_OK) {
            hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TICK, .now_ms = now};
            step(n, &ev, NULL);
        }
    }
}

static void grid_tick(hamok_node *n, uint64_t now)
{
    hamok_grid_view v;
    grid_view(n, &v);
    hamok_grid_out out;
    hamok__grid_tick(n->grid, now, &v, &out);
    handle_grid_out(n, now, &out);
}

/* Leader: propose what discovery asks for (one change at a time). */
static void grid_changes(hamok_node *n, uint64_t now)
{
    if (hamok__raft_role(n->raft) != HAMOK_RAFT_LEADER) {
        hamok_grid_view v;
        hamok_grid_change c;
        grid_view(n, &v);
        hamok__grid_next_change(n->grid, now, &v, &c); /* drops stale requests */
        return;
    }
    for (int round = 0; round < 4; round++) {
        hamok_grid_view v;
        hamok_grid_change c;
        grid_view(n, &v);
        if (!hamok__grid_next_change(n->grid, now, &v, &c)) {
            return;
        }
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_CHANGE, .now_ms = now};
        ev.u.change.op = c.add ? HAMOK_RAFT_ADD_LEARNER : HAMOK_RAFT_REMOVE;
        ev.u.change.id = c.id;
        ev.u.change.endpoint = c.endpoint;
        hamok_id id = c.id;
        bool add = c.add;
        bool moved = add && member_in(v.members, v.n_members, &id);
        char endpoint[256];
        snprintf(endpoint, sizeof endpoint, "%s", c.endpoint != NULL ? c.endpoint : "");
        uint64_t idx = 0;
        hamok_status st = step(n, &ev, &idx);
        if (st == HAMOK_OK || st == HAMOK_ERR_NOT_FOUND) {
            char text[HAMOK_ID_STR_LEN + 1];
            hamok__id_format(&id, text);
            if (idx != 0 && moved) {
                hamok__nlog(n, HAMOK_LOG_INFO, "grid",
                            "recording %s at its new endpoint %s (entry %" PRIu64 ")", text,
                            endpoint, idx);
            } else if (idx != 0) {
                hamok__nlog(n, HAMOK_LOG_INFO, "grid", "%s %s (entry %" PRIu64 ")",
                            add ? "adding" : "removing", text, idx);
            }
            hamok__grid_change_done(n->grid, &id, add);
            continue;
        }
        return; /* BUSY: a change is in flight; try at the next turn */
    }
}

/* ------------------------------------------------------------------------ */
/* Submits */

static bool queue_prop(hamok_node *n, const hamok_entry *e, hamok_req *rq, const hamok_id *from,
                       uint64_t req_id)
{
    if (n->n_props == n->cap_props) {
        size_t nc = n->cap_props ? n->cap_props * 2 : 64;
        prop *p = hamok__realloc(n->props, nc * sizeof *p);
        if (p == NULL) {
            return false;
        }
        n->props = p;
        n->cap_props = nc;
    }
    prop *p = &n->props[n->n_props++];
    p->e = *e;
    p->rq = rq;
    if (from != NULL) {
        p->from = *from;
    }
    p->req_id = req_id;
    return true;
}

static void answer_submit(hamok_node *n, const hamok_id *to, uint64_t req_id, hamok_status st,
                          uint64_t index, uint64_t term)
{
    hamok_msg r = {.type = HAMOK_MSG_SUBMIT_RESPONSE, .src = n->self, .dst = *to};
    r.u.submit_response.request_id = req_id;
    r.u.submit_response.status = (uint32_t)st;
    r.u.submit_response.index = index;
    r.u.submit_response.term = term;
    r.u.submit_response.has_leader = hamok__raft_leader(n->raft, &r.u.submit_response.leader);
    send_msg(n, &r);
}

/* An accepted proposal is in the leader's log and commits unless that leader
 * loses its leadership (a leader change resends at once: resend_submits).
 * It is sent again only as a safety net: after 2 election timeouts, then 4,
 * 8, 16 and every 32. A fixed period shorter than the commit latency added
 * a duplicate entry per period and request, and under a backlog the
 * duplicates grew the backlog (tests/sim/FINDINGS.md finding 14). */
static uint64_t accepted_wait(const hamok_node *n, const hamok_req *rq)
{
    uint32_t k = rq->resends < 4 ? rq->resends : 4;
    return (2ull * n->cfg.election_timeout_ms) << k;
}

/* Propose everything queued this turn as one batch. */
static void flush_props(hamok_node *n, uint64_t now)
{
    if (n->n_props == 0) {
        return;
    }
    size_t k = n->n_props;
    prop *ps = n->props;
    n->props = NULL;
    n->n_props = n->cap_props = 0;
    hamok_entry *es = hamok__malloc(k * sizeof *es);
    hamok_status st = HAMOK_ERR_NOMEM;
    uint64_t first = 0;
    if (es != NULL) {
        for (size_t i = 0; i < k; i++) {
            es[i] = ps[i].e;
        }
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PROPOSE, .now_ms = now};
        ev.u.propose.entries = es;
        ev.u.propose.n = k;
        st = step(n, &ev, &first);
    }
    uint64_t term = hamok__raft_term(n->raft);
    size_t local = 0;
    for (size_t i = 0; i < k; i++) {
        prop *p = &ps[i];
        if (p->rq != NULL) {
            hamok_req *rq = p->rq;
            local++;
            if (rq->completed) {
                continue;
            }
            if (st == HAMOK_OK) {
                rq->accepted = true;
                rq->retry_at = now + accepted_wait(n, rq);
            } else if (st == HAMOK_ERR_BUSY || st == HAMOK_ERR_NOT_LEADER ||
                       st == HAMOK_ERR_NOMEM) {
                rq->retry_at = now + n->cfg.heartbeat_ms;
            } else {
                finish(n, rq, st, NULL, 0);
            }
        } else {
            answer_submit(n, &p->from, p->req_id, st, st == HAMOK_OK ? first + i : 0, term);
            hamok__free(p->e.data);
        }
    }
    if (st == HAMOK_OK) {
        pthread_mutex_lock(&n->state_mu);
        n->stats.proposals += local;
        pthread_mutex_unlock(&n->state_mu);
    }
    if (n->req_check_at > now + n->cfg.heartbeat_ms) {
        n->req_check_at = now + n->cfg.heartbeat_ms;
    }
    hamok__free(es);
    hamok__free(ps);
}

/* Retry a submit at `at`: the request check must run by then (otherwise a
 * lost frame waits for the next unrelated check, up to the deadline). */
static void retry_submit_at(hamok_node *n, hamok_req *rq, uint64_t at)
{
    rq->retry_at = at;
    if (at < n->req_check_at) {
        n->req_check_at = at;
    }
}

static void send_submit(hamok_node *n, hamok_req *rq, uint64_t now)
{
    if (rq->accepted) {
        rq->resends++; /* the safety net fired: the next one waits longer */
        rq->accepted = false;
    }
    uint32_t retry = n->cfg.election_timeout_ms;
    retry_submit_at(n, rq, now + retry); /* a lost SUBMIT_REQUEST is sent again */
    hamok_id leader;
    if (!hamok__raft_leader(n->raft, &leader)) {
        return; /* wait for a leader */
    }
    rq->saw_leader = true;
    hamok_entry e = {.type = HAMOK_ENTRY_COMMAND,
                     .client = n->self,
                     .seq = rq->seq,
                     .data = rq->cmd.data,
                     .len = rq->cmd.len};
    if (hamok__id_eq(&leader, &n->self)) {
        if (!queue_prop(n, &e, rq, NULL, 0)) {
            rq->retry_at = now + n->cfg.heartbeat_ms;
        }
        return;
    }
    hamok_msg m = {.type = HAMOK_MSG_SUBMIT_REQUEST, .src = n->self, .dst = leader};
    m.u.submit.request_id = rq->seq;
    m.u.submit.entry = e;
    send_msg(n, &m);
}

/* Durable mode: sequence numbers are reserved on disk in blocks before one
 * leaves this peer. A restarted peer keeps its id, and the session table
 * would answer a reused (client, seq) with the result of the old command
 * instead of applying the new one. */
#define SEQ_BLOCK 65536u

static void start_submit(hamok_node *n, hamok_req *rq, uint64_t now)
{
    rq->seq = ++n->next_seq;
    if (n->st != NULL && rq->seq > n->seq_reserved) {
        hamok_status st = hamok__storage_save_seq_floor(n->st, rq->seq + SEQ_BLOCK - 1);
        if (st != HAMOK_OK) {
            rq->seq = 0;
            finish(n, rq, st, NULL, 0);
            storage_failed(n, st, "reserving sequence numbers");
            return;
        }
        n->seq_reserved = rq->seq + SEQ_BLOCK - 1;
    }
    if (seq_put(&n->pending, rq->seq, rq) != HAMOK_OK) {
        rq->seq = 0;
        finish(n, rq, HAMOK_ERR_NOMEM, NULL, 0);
        return;
    }
    bool member = self_member(n, NULL);
    if (!member) {
        rq->retry_at = now + n->cfg.heartbeat_ms; /* not joined yet: wait */
        return;
    }
    send_submit(n, rq, now);
}

static void resend_submits(hamok_node *n, uint64_t now)
{
    for (hamok_req *rq = n->active, *next; rq != NULL; rq = next) {
        next = rq->next;
        if (rq->type == HAMOK_REQ_SUBMIT) {
            rq->accepted = false;
            rq->resends = 0;
            rq->retry_at = now; /* at the next check */
        }
    }
    n->req_check_at = now;
}

/* Leader side of SUBMIT_REQUEST: queued for this turn's batch. */
static void recv_submit(hamok_node *n, uint64_t now, hamok_msg *m)
{
    (void)now;
    hamok_entry e = m->u.submit.entry;
    if (e.type != HAMOK_ENTRY_COMMAND) {
        answer_submit(n, &m->src, m->u.submit.request_id, HAMOK_ERR_INVALID, 0, 0);
        return;
    }
    if (hamok__raft_role(n->raft) != HAMOK_RAFT_LEADER) {
        answer_submit(n, &m->src, m->u.submit.request_id, HAMOK_ERR_NOT_LEADER, 0, 0);
        return;
    }
    e.client = m->src; /* a peer proposes for itself only */
    if (!queue_prop(n, &e, NULL, &m->src, m->u.submit.request_id)) {
        answer_submit(n, &m->src, m->u.submit.request_id, HAMOK_ERR_NOMEM, 0, 0);
        return;
    }
    m->u.submit.entry.data = NULL; /* the batch owns it now */
    m->u.submit.entry.len = 0;
}

static void recv_submit_response(hamok_node *n, uint64_t now, const hamok_msg *m)
{
    const hamok_msg_submit_response *s = &m->u.submit_response;
    hamok_req *rq = NULL;
    /* Look the request up without taking it out of the table. */
    if (n->pending.cap > 0 && s->request_id != 0) {
        size_t mask = n->pending.cap - 1;
        for (size_t j = mix64(s->request_id) & mask; n->pending.keys[j] != 0; j = (j + 1) & mask) {
            if (n->pending.keys[j] == s->request_id) {
                rq = n->pending.vals[j];
                break;
            }
        }
    }
    if (rq == NULL) {
        return;
    }
    if (s->status == HAMOK_OK) {
        rq->accepted = true;
        retry_submit_at(n, rq, now + accepted_wait(n, rq));
    } else if (s->status == HAMOK_ERR_NOT_LEADER || s->status == HAMOK_ERR_BUSY ||
               s->status == HAMOK_ERR_NOMEM) {
        retry_submit_at(n, rq, now + n->cfg.heartbeat_ms);
    } else {
        finish(n, rq, (hamok_status)s->status, NULL, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Reads (sync) */

static void start_sync(hamok_node *n, hamok_req *rq, uint64_t now)
{
    rq->read_id = ++n->next_read_id;
    rq->read_ok = false;
    rq->retry_at = UINT64_MAX;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_READ_INDEX, .now_ms = now};
    ev.u.read.id = rq->read_id;
    step(n, &ev, NULL);
}

static void complete_reads(hamok_node *n, const hamok_raft_update *u)
{
    for (size_t i = 0; i < u->n_reads; i++) {
        for (hamok_req *rq = n->active; rq != NULL; rq = rq->next) {
            if (rq->type != HAMOK_REQ_SYNC || rq->read_id != u->reads[i].id) {
                continue;
            }
            if (u->reads[i].status == HAMOK_OK) {
                rq->saw_leader = true;
                rq->read_ok = true;
                rq->read_index = u->reads[i].index;
            } else {
                rq->read_id = 0; /* retry after a heartbeat */
                rq->retry_at = clock_ms() + n->cfg.heartbeat_ms;
            }
            n->req_check_at = 0;
            break;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Emitter publish / notify (direct messages, not logged) */

bool hamok__node_emit_local(hamok_node *n, const uint8_t *name, size_t name_len,
                            const uint8_t *event, size_t event_len, const uint8_t *payload,
                            size_t payload_len, const hamok_id *from)
{
    bool any = false;
    pthread_mutex_lock(&n->handles_mu);
    for (size_t i = 0; i < n->n_handles; i++) {
        any |= hamok__handle_emit(n->handles[i], name, name_len, event, event_len, payload,
                                  payload_len, from);
    }
    pthread_mutex_unlock(&n->handles_mu);
    return any;
}

static void finish_publish(hamok_node *n, hamok_req *rq)
{
    /* Result: u32 delivered, u32 missing, then the delivered ids. */
    size_t k = rq->n_acked + (rq->self_delivered ? 1u : 0u);
    uint32_t head[2] = {(uint32_t)k, (uint32_t)(rq->n_targets - rq->n_acked)};
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_status st = hamok__buf_append(&b, head, sizeof head);
    if (rq->self_delivered && st == HAMOK_OK) {
        st = hamok__buf_append(&b, n->self.b, HAMOK_ID_LEN);
    }
    for (size_t i = 0; i < rq->n_targets && st == HAMOK_OK; i++) {
        if (rq->acked[i]) {
            st = hamok__buf_append(&b, rq->targets[i].b, HAMOK_ID_LEN);
        }
    }
    finish(n, rq, st, b.data, b.len);
    hamok__buf_free(&b);
}

static void start_publish(hamok_node *n, hamok_req *rq, bool wait)
{
    const uint8_t *name = rq->cmd.data;
    const uint8_t *event = name + rq->pub_name_len;
    const uint8_t *payload = event + rq->pub_event_len;
    size_t plen = rq->cmd.len - rq->pub_name_len - rq->pub_event_len;
    const hamok_coll *c = NULL;
    hamok_status st =
        hamok__registry_lookup(n->reg, HAMOK_KIND_EMITTER, name, rq->pub_name_len, &c);
    if (st == HAMOK_ERR_WRONG_KIND) {
        finish(n, rq, st, NULL, 0);
        return;
    }
    size_t k = 0, cursor = 0;
    hamok_coll_view v;
    while (c != NULL && hamok__coll_next_subscriber(c, event, rq->pub_event_len, &cursor, &v)) {
        k++;
    }
    rq->targets = hamok__calloc(k ? k : 1, sizeof *rq->targets);
    rq->acked = hamok__calloc(k ? k : 1, sizeof *rq->acked);
    if (rq->targets == NULL || rq->acked == NULL) {
        finish(n, rq, HAMOK_ERR_NOMEM, NULL, 0);
        return;
    }
    rq->pub_id = ++n->next_read_id;
    bool self_sub = false;
    cursor = 0;
    while (c != NULL && hamok__coll_next_subscriber(c, event, rq->pub_event_len, &cursor, &v)) {
        if (hamok__id_eq(&v.peer, &n->self)) {
            self_sub = true;
            continue;
        }
        rq->targets[rq->n_targets++] = v.peer;
        hamok_msg m = {.type = wait ? HAMOK_MSG_EMIT_REQUEST : HAMOK_MSG_EMIT_NOTIFICATION,
                       .src = n->self,
                       .dst = v.peer};
        m.u.emit.request_id = rq->pub_id;
        m.u.emit.name = (uint8_t *)name;
        m.u.emit.name_len = rq->pub_name_len;
        m.u.emit.event = (uint8_t *)event;
        m.u.emit.event_len = rq->pub_event_len;
        m.u.emit.payload = (uint8_t *)payload;
        m.u.emit.payload_len = plen;
        send_msg(n, &m);
    }
    if (self_sub) {
        rq->self_delivered = hamok__node_emit_local(n, name, rq->pub_name_len, event,
                                                    rq->pub_event_len, payload, plen, &n->self);
    }
    if (!wait || rq->n_targets == 0) {
        if (!wait) {
            rq->n_acked = rq->n_targets; /* not waited for */
            memset(rq->acked, 0, rq->n_targets * sizeof *rq->acked);
        }
        finish_publish(n, rq);
    }
}

static void recv_emit(hamok_node *n, const hamok_msg *m)
{
    const hamok_msg_emit *e = &m->u.emit;
    bool got = hamok__node_emit_local(n, e->name, e->name_len, e->event, e->event_len, e->payload,
                                      e->payload_len, &m->src);
    if (m->type == HAMOK_MSG_EMIT_REQUEST && got) {
        hamok_msg r = {.type = HAMOK_MSG_EMIT_RESPONSE, .src = n->self, .dst = m->src};
        r.u.emit_response.request_id = e->request_id;
        send_msg(n, &r);
    }
}

static void recv_emit_response(hamok_node *n, const hamok_msg *m)
{
    for (hamok_req *rq = n->active; rq != NULL; rq = rq->next) {
        if (rq->type != HAMOK_REQ_PUBLISH || rq->pub_id != m->u.emit_response.request_id) {
            continue;
        }
        for (size_t i = 0; i < rq->n_targets; i++) {
            if (!rq->acked[i] && hamok__id_eq(&rq->targets[i], &m->src)) {
                rq->acked[i] = true;
                rq->n_acked++;
            }
        }
        if (rq->n_acked == rq->n_targets) {
            finish_publish(n, rq);
        }
        return;
    }
}

/* ------------------------------------------------------------------------ */
/* Request bookkeeping each turn */

static bool join_done(hamok_node *n)
{
    bool voter;
    if (!self_member(n, &voter) || !voter) {
        return false;
    }
    if (!hamok__raft_leader(n->raft, NULL)) {
        return false;
    }
    return hamok__raft_applied_index(n->raft) >= hamok__grid_join_commit(n->grid) &&
           hamok__raft_applied_index(n->raft) > 0;
}

static void leave_progress(hamok_node *n, hamok_req *rq, uint64_t now)
{
    bool leader = hamok__raft_role(n->raft) == HAMOK_RAFT_LEADER;
    if (!self_member(n, NULL) && !leader) {
        size_t k;
        const hamok_member *c =
            hamok__raft_config_at(n->raft, hamok__raft_commit_index(n->raft), &k);
        if (hamok__grid_left(n->grid) || (c != NULL && !member_in(c, k, &n->self))) {
            finish(n, rq, HAMOK_OK, NULL, 0);
            return;
        }
    }
    if (hamok__grid_left(n->grid)) {
        finish(n, rq, HAMOK_OK, NULL, 0);
        return;
    }
    if (leader && now >= rq->retry_transfer_at) {
        size_t k;
        uint64_t ci;
        const hamok_member *ms = hamok__raft_members(n->raft, &k, &ci);
        size_t voters = 0;
        for (size_t i = 0; i < k; i++) {
            voters += ms[i].role == HAMOK_MEMBER_VOTER ? 1u : 0u;
        }
        rq->retry_transfer_at = now + n->cfg.election_timeout_ms;
        if (voters <= 1) {
            /* The last voter: remove itself if others (learners) exist, else
             * there is no cluster left to leave. */
            if (k <= 1) {
                finish(n, rq, HAMOK_OK, NULL, 0);
                return;
            }
            hamok_raft_event ev = {.type = HAMOK_RAFT_EV_CHANGE, .now_ms = now};
            ev.u.change.op = HAMOK_RAFT_REMOVE;
            ev.u.change.id = n->self;
            step(n, &ev, NULL);
            return;
        }
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TRANSFER, .now_ms = now};
        step(n, &ev, NULL);
    }
}

static void check_requests(hamok_node *n, uint64_t now)
{
    bool has_leader = hamok__raft_leader(n->raft, NULL);
    uint64_t next = UINT64_MAX;
    bool again = false;
    for (hamok_req *rq = n->active, *nx; rq != NULL; rq = nx) {
        nx = rq->next;
        if (rq->completed) {
            again = true; /* the list changed under us: the rest at the next turn */
            break;
        }
        if (has_leader) {
            rq->saw_leader = true;
        }
        if (now >= rq->deadline && rq->type == HAMOK_REQ_PUBLISH) {
            finish_publish(n, rq); /* the silent ones are reported missing */
            continue;
        }
        if (now >= rq->deadline) {
            hamok_status st = rq->saw_leader || rq->type == HAMOK_REQ_JOIN ? HAMOK_ERR_TIMEOUT
                                                                           : HAMOK_ERR_NO_LEADER;
            finish(n, rq, st, NULL, 0);
            continue;
        }
        switch (rq->type) {
        case HAMOK_REQ_JOIN:
            if (join_done(n)) {
                finish(n, rq, HAMOK_OK, NULL, 0);
                continue;
            }
            break;
        case HAMOK_REQ_LEAVE: leave_progress(n, rq, now); break;
        case HAMOK_REQ_SYNC:
            if (rq->read_ok) {
                if (hamok__raft_applied_index(n->raft) >= rq->read_index) {
                    finish(n, rq, HAMOK_OK, NULL, 0);
                    continue;
                }
            } else if (rq->read_id == 0 && now >= rq->retry_at) {
                start_sync(n, rq, now);
            }
            break;
        case HAMOK_REQ_TRANSFER: {
            hamok_id leader;
            bool hl = hamok__raft_leader(n->raft, &leader);
            if (rq->transfer_started && hl && !hamok__id_eq(&leader, &n->self) &&
                (!rq->has_target || hamok__id_eq(&leader, &rq->target))) {
                finish(n, rq, HAMOK_OK, NULL, 0);
                continue;
            }
            break;
        }
        case HAMOK_REQ_PUBLISH:
        case HAMOK_REQ_NOTIFY: break;
        case HAMOK_REQ_SUBMIT:
            if (now >= rq->retry_at) {
                if (!self_member(n, NULL)) {
                    rq->retry_at = now + n->cfg.heartbeat_ms;
                } else {
                    send_submit(n, rq, now);
                }
            }
            break;
        }
        if (nx != NULL && nx->completed) {
            again = true; /* completed by what this request did: list changed */
            break;
        }
    }
    for (hamok_req *rq = n->active; rq != NULL; rq = rq->next) {
        if (rq->deadline < next) {
            next = rq->deadline;
        }
        if (rq->type == HAMOK_REQ_SUBMIT && rq->retry_at < next) {
            next = rq->retry_at;
        }
        if (rq->type == HAMOK_REQ_LEAVE || rq->type == HAMOK_REQ_JOIN ||
            (rq->type == HAMOK_REQ_SYNC && !rq->read_ok && rq->read_id == 0)) {
            uint64_t t = now + n->cfg.heartbeat_ms;
            if (t < next) {
                next = t;
            }
        }
    }
    n->req_check_at = again ? now : next;
}

static void start_request(hamok_node *n, hamok_req *rq, uint64_t now)
{
    int to = rq->timeout_ms;
    rq->deadline = to < 0 ? UINT64_MAX : now + (uint64_t)to;
    active_add(n, rq);
    /* Whatever the kind, the loop must wake at the deadline: kinds that wait
     * only on answers from peers (publish) have nothing else to wake it. */
    if (rq->deadline < n->req_check_at) {
        n->req_check_at = rq->deadline;
    }
    switch (rq->type) {
    case HAMOK_REQ_JOIN:
        hamok__grid_join(n->grid, now);
        grid_tick(n, now);
        break;
    case HAMOK_REQ_LEAVE:
        if (!self_member(n, NULL)) {
            finish(n, rq, HAMOK_ERR_STATE, NULL, 0);
            return;
        }
        hamok__grid_leave(n->grid, now);
        rq->retry_transfer_at = now;
        grid_tick(n, now);
        break;
    case HAMOK_REQ_SYNC: start_sync(n, rq, now); break;
    case HAMOK_REQ_TRANSFER: {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TRANSFER, .now_ms = now};
        ev.u.transfer.has_target = rq->has_target;
        ev.u.transfer.target = rq->target;
        hamok_status st = step(n, &ev, NULL);
        if (st != HAMOK_OK) {
            finish(n, rq, st, NULL, 0);
            return;
        }
        rq->transfer_started = true;
        break;
    }
    case HAMOK_REQ_SUBMIT: start_submit(n, rq, now); return;
    case HAMOK_REQ_PUBLISH:
    case HAMOK_REQ_NOTIFY: start_publish(n, rq, rq->type == HAMOK_REQ_PUBLISH); return;
    }
    n->req_check_at = now;
}

/* ------------------------------------------------------------------------ */
/* Inbound frames */

static hamok_frame_reject reject_reason(hamok_codec_reject why)
{
    switch (why) {
    case HAMOK_REJECT_TOO_BIG: return HAMOK_FRAME_TOO_BIG;
    case HAMOK_REJECT_VERSION: return HAMOK_FRAME_VERSION;
    case HAMOK_REJECT_CLUSTER: return HAMOK_FRAME_CLUSTER;
    case HAMOK_REJECT_TYPE: return HAMOK_FRAME_TYPE;
    default: return HAMOK_FRAME_MALFORMED;
    }
}

static void recv_frame(hamok_node *n, uint64_t now, const inbox_item *it)
{
    hamok_msg m;
    hamok_codec_reject why = HAMOK_REJECT_NONE;
    hamok_status st = hamok__codec_decode(it->data, it->len, n->cfg.cluster, &n->limits, &m, &why);
    bool spoofed = st == HAMOK_OK && it->has_from && !hamok__id_eq(&m.src, &it->from);
    pthread_mutex_lock(&n->state_mu);
    n->stats.frames_received++;
    if (st != HAMOK_OK || spoofed) {
        n->stats.frames_rejected++;
        n->stats.frames_rejected_by[spoofed ? HAMOK_FRAME_SOURCE : reject_reason(why)]++;
    }
    pthread_mutex_unlock(&n->state_mu);
    if (st != HAMOK_OK) {
        hamok__nlog(n, HAMOK_LOG_DEBUG, "node", "frame rejected: %s", hamok__codec_reject_str(why));
        return;
    }
    if (spoofed) {
        /* A flood must not flood the log: warn at the 1st, 2nd, 4th, 8th... */
        uint64_t k = n->stats.frames_rejected_by[HAMOK_FRAME_SOURCE];
        hamok_log_level lv = (k & (k - 1)) == 0 ? HAMOK_LOG_WARN : HAMOK_LOG_DEBUG;
        char claimed[HAMOK_ID_STR_LEN + 1], from[HAMOK_ID_STR_LEN + 1];
        hamok__id_format(&m.src, claimed);
        hamok__id_format(&it->from, from);
        hamok__nlog(n, lv, "node",
                    "frame rejected: it claims to come from %s, the transport says %s (%" PRIu64
                    " so far)",
                    claimed, from, k);
        hamok__msg_clear(&m);
        return;
    }
    if (hamok__id_eq(&m.src, &n->self) || (!m.broadcast && !hamok__id_eq(&m.dst, &n->self))) {
        hamok__msg_clear(&m);
        return;
    }
    if (n->cfg.log_level >= HAMOK_LOG_TRACE) {
        char src[HAMOK_ID_STR_LEN + 1];
        hamok__id_format(&m.src, src);
        hamok__nlog(n, HAMOK_LOG_TRACE, "transport", "recv %s from %.8s (%zu bytes)",
                    hamok__msg_type_name(m.type), src, it->len);
    }
    hamok__grid_heard(n->grid, &m.src, now);
    switch (m.type) {
    case HAMOK_MSG_HELLO:
    case HAMOK_MSG_ENDPOINT_STATES:
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE: {
        hamok_grid_view v;
        grid_view(n, &v);
        hamok_grid_out out;
        hamok__grid_receive(n->grid, now, &m, &v, &out);
        handle_grid_out(n, now, &out);
        break;
    }
    case HAMOK_MSG_SUBMIT_REQUEST: recv_submit(n, now, &m); break;
    case HAMOK_MSG_SUBMIT_RESPONSE: recv_submit_response(n, now, &m); break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION: recv_emit(n, &m); break;
    case HAMOK_MSG_EMIT_RESPONSE: recv_emit_response(n, &m); break;
    default: {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = now, .u.msg = &m};
        step(n, &ev, NULL);
        break;
    }
    }
    hamok__msg_clear(&m);
}

/* ------------------------------------------------------------------------ */
/* Role / leader / commit events and the mirror */

static hamok_role current_role(hamok_node *n)
{
    bool voter;
    if (!self_member(n, &voter)) {
        return HAMOK_ROLE_NONE;
    }
    switch (hamok__raft_role(n->raft)) {
    case HAMOK_RAFT_LEADER: return HAMOK_ROLE_LEADER;
    case HAMOK_RAFT_CANDIDATE:
    case HAMOK_RAFT_PRECANDIDATE: return HAMOK_ROLE_CANDIDATE;
    case HAMOK_RAFT_FOLLOWER: return voter ? HAMOK_ROLE_FOLLOWER : HAMOK_ROLE_LEARNER;
    }
    return HAMOK_ROLE_NONE;
}

static void after_turn(hamok_node *n, uint64_t now)
{
    hamok_role role = current_role(n);
    uint64_t term = hamok__raft_term(n->raft);
    hamok_id leader = {0};
    bool hl = hamok__raft_leader(n->raft, &leader);
    uint64_t commit = hamok__raft_commit_index(n->raft);

    if (role != n->last_role || term != n->last_term) {
        if (role == HAMOK_ROLE_LEADER && n->last_role != HAMOK_ROLE_LEADER) {
            hamok__grid_became_leader(n->grid, now);
        }
        if (role == HAMOK_ROLE_CANDIDATE && n->last_role != HAMOK_ROLE_CANDIDATE) {
            pthread_mutex_lock(&n->state_mu);
            n->stats.elections++;
            pthread_mutex_unlock(&n->state_mu);
        }
        n->last_role = role;
        n->last_term = term;
        hamok_node_event ev = {.type = HAMOK_EVENT_STATE_CHANGED, .role = role, .term = term};
        emit(n, &ev);
    }
    if (hl != n->last_has_leader || (hl && !hamok__id_eq(&leader, &n->last_leader))) {
        n->last_has_leader = hl;
        n->last_leader = leader;
        pthread_mutex_lock(&n->state_mu);
        n->stats.leader_changes++;
        pthread_mutex_unlock(&n->state_mu);
        char text[HAMOK_ID_STR_LEN + 1] = "none";
        if (hl) {
            hamok__id_format(&leader, text);
        }
        hamok__nlog(n, HAMOK_LOG_INFO, "raft", "leader %s (term %" PRIu64 ")", text, term);
        hamok_node_event ev = {
            .type = HAMOK_EVENT_LEADER_CHANGED, .has_leader = hl, .leader = leader, .term = term};
        emit(n, &ev);
        if (hl) {
            resend_submits(n, now);
        }
    }
    if (commit != n->last_commit) {
        n->last_commit = commit;
        hamok_node_event ev = {.type = HAMOK_EVENT_COMMIT, .commit_index = commit};
        emit(n, &ev);
    }

    /* Mirror. */
    size_t k;
    uint64_t ci;
    const hamok_member *ms = hamok__raft_members(n->raft, &k, &ci);
    pthread_mutex_lock(&n->state_mu);
    n->stats.role = role;
    n->stats.term = term;
    n->stats.has_leader = hl;
    n->stats.leader = leader;
    n->stats.commit_index = commit;
    n->stats.applied_index = hamok__raft_applied_index(n->raft);
    n->stats.last_log_index = hamok__raft_last_index(n->raft);
    n->stats.snapshot_index = n->snap_index;
    n->stats.members = k;
    if (k != n->n_peers) {
        hamok_peer_info *p = hamok__realloc(n->peers, (k ? k : 1) * sizeof *p);
        if (p != NULL) {
            n->peers = p;
            n->n_peers = k;
        }
    }
    for (size_t i = 0; i < k && i < n->n_peers; i++) {
        hamok_peer_info *p = &n->peers[i];
        memset(p, 0, sizeof *p);
        p->id = ms[i].id;
        p->voter = ms[i].role == HAMOK_MEMBER_VOTER;
        p->is_self = hamok__id_eq(&ms[i].id, &n->self);
        p->is_leader = hl && hamok__id_eq(&ms[i].id, &leader);
        snprintf(p->endpoint, sizeof p->endpoint, "%s",
                 ms[i].endpoint != NULL ? ms[i].endpoint : "");
        if (role == HAMOK_ROLE_LEADER) {
            hamok__raft_match(n->raft, &p->id, &p->match_index);
        }
        if (role == HAMOK_ROLE_LEADER && !p->is_self) {
            uint64_t s = hamok__grid_silence(n->grid, &p->id, now);
            p->last_seen_ms = s == UINT64_MAX ? 0 : s;
        }
    }
    pthread_mutex_unlock(&n->state_mu);
}

/* ------------------------------------------------------------------------ */
/* The loop */

static void shutdown_requests(hamok_node *n)
{
    while (n->active != NULL) {
        finish(n, n->active, HAMOK_ERR_CLOSED, NULL, 0);
    }
}

static hamok_status process(hamok_node *n)
{
    if (atomic_load(&n->stop)) {
        return HAMOK_ERR_CLOSED;
    }
    n->in_process++;
    uint64_t now = clock_ms();
    uint64_t drained;
    ssize_t rd = read(n->efd, &drained, sizeof drained);
    (void)rd;
    pthread_mutex_lock(&n->inbox_mu);
    inbox_item *it = n->in_head;
    n->in_head = n->in_tail = NULL;
    n->in_bytes = 0;
    pthread_mutex_unlock(&n->inbox_mu);
    bool stop_seen = false;
    while (it != NULL) {
        inbox_item *next = it->next;
        switch (it->kind) {
        case ITEM_FRAME:
            if (!stop_seen) {
                recv_frame(n, now, it);
            }
            break;
        case ITEM_REQ:
            if (stop_seen) {
                req_complete(n, it->req, HAMOK_ERR_CLOSED, NULL, 0);
            } else {
                start_request(n, it->req, now);
            }
            break;
        case ITEM_STOP: stop_seen = true; break;
        case ITEM_LINK:
            if (!stop_seen) {
                link_event(n, it);
            }
            break;
        }
        hamok__free(it);
        it = next;
    }
    if (stop_seen) {
        atomic_store(&n->stop, true);
    }
    if (!atomic_load(&n->stop)) {
        flush_props(n, now);
        now = clock_ms();
        if (now >= n->raft_deadline) {
            hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TICK, .now_ms = now};
            step(n, &ev, NULL);
        }
        if (n->st != NULL && !n->failed && hamok__storage_sync_due(n->st, now)) {
            uint64_t di = 0, dt = 0;
            hamok_status st = hamok__storage_sync(n->st, &di, &dt);
            if (st != HAMOK_OK) {
                storage_failed(n, st, "syncing the log");
            } else if (di > 0) {
                hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = now};
                ev.u.persisted.index = di;
                ev.u.persisted.term = dt;
                step(n, &ev, NULL);
            }
        }
        if (now >= n->grid_deadline) {
            grid_tick(n, now);
        }
        forget_departed(n, now);
        grid_changes(n, now);
        after_turn(n, now);
        if (now >= n->req_check_at) {
            check_requests(n, now);
        }
        flush_props(n, now);
    }
    if (atomic_load(&n->stop)) {
        shutdown_requests(n);
    }
    free_graveyard(n);
    n->in_process--;
    return HAMOK_OK;
}

static int timeout_ms(hamok_node *n)
{
    uint64_t now = clock_ms();
    uint64_t next = n->raft_deadline;
    if (n->grid_deadline < next) {
        next = n->grid_deadline;
    }
    if (n->req_check_at < next) {
        next = n->req_check_at;
    }
    if (n->st != NULL) {
        uint64_t t = hamok__storage_next_sync_ms(n->st);
        if (t < next) {
            next = t;
        }
    }
    if (next <= now) {
        return 0;
    }
    uint64_t d = next - now;
    return d > 1000 ? 1000 : (int)d;
}

static void *loop_main(void *arg)
{
    hamok_node *n = arg;
    n->loop_tid = pthread_self();
    atomic_store_explicit(&n->loop_tid_set, true, memory_order_release);
    while (!atomic_load(&n->stop)) {
        struct pollfd p = {.fd = n->efd, .events = POLLIN};
        int to = timeout_ms(n);
        if (to > 0) {
            poll(&p, 1, to);
        }
        process(n);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The inbox door */

static bool post_item(hamok_node *n, inbox_item *it)
{
    pthread_mutex_lock(&n->inbox_mu);
    if (n->closing || (it->kind == ITEM_FRAME && n->in_bytes + it->len > INBOX_MAX_BYTES)) {
        pthread_mutex_unlock(&n->inbox_mu);
        return false;
    }
    bool was_empty = n->in_head == NULL;
    it->next = NULL;
    if (n->in_tail != NULL) {
        n->in_tail->next = it;
    } else {
        n->in_head = it;
    }
    n->in_tail = it;
    n->in_bytes += it->len;
    if (it->kind == ITEM_STOP) {
        n->closing = true;
    }
    pthread_mutex_unlock(&n->inbox_mu);
    if (was_empty) {
        wake(n);
    }
    return true;
}

static void deliver(hamok_node *n, const hamok_id *from, const void *bytes, size_t len)
{
    if (len == 0 || len > n->frame_limit) {
        pthread_mutex_lock(&n->state_mu);
        n->stats.frames_rejected++;
        n->stats.frames_rejected_by[len == 0 ? HAMOK_FRAME_MALFORMED : HAMOK_FRAME_TOO_BIG]++;
        pthread_mutex_unlock(&n->state_mu);
        return;
    }
    inbox_item *it = hamok__malloc(sizeof *it + len);
    if (it == NULL) {
        goto dropped;
    }
    it->kind = ITEM_FRAME;
    it->req = NULL;
    it->has_from = from != NULL;
    if (from != NULL) {
        it->from = *from;
    }
    it->len = len;
    memcpy(it->data, bytes, len);
    if (post_item(n, it)) {
        return;
    }
    hamok__free(it);
dropped:
    pthread_mutex_lock(&n->state_mu);
    n->stats.frames_dropped++;
    pthread_mutex_unlock(&n->state_mu);
}

static void sink_deliver(hamok_transport_sink *sink, const void *bytes, size_t len)
{
    deliver((hamok_node *)((char *)sink - offsetof(hamok_node, sink)), NULL, bytes, len);
}

static void sink_deliver_from(hamok_transport_sink *sink, const hamok_id *from, const void *bytes,
                              size_t len)
{
    deliver((hamok_node *)((char *)sink - offsetof(hamok_node, sink)), from, bytes, len);
}

/* The event fires on the loop thread: the state travels through the inbox. */
static void sink_link(hamok_transport_sink *sink, hamok_transport_link state, const char *text)
{
    hamok_node *n = (hamok_node *)((char *)sink - offsetof(hamok_node, sink));
    size_t len = text != NULL ? strlen(text) : 0;
    if (len > 1024) {
        len = 1024;
    }
    inbox_item *it = hamok__calloc(1, sizeof *it + len + 1);
    if (it == NULL) {
        return;
    }
    it->kind = ITEM_LINK;
    it->link = state;
    memcpy(it->data, text != NULL ? text : "", len);
    if (!post_item(n, it)) {
        hamok__free(it);
    }
}

static void sink_error(hamok_transport_sink *sink, hamok_status st, const char *text)
{
    hamok_node *n = (hamok_node *)((char *)sink - offsetof(hamok_node, sink));
    hamok__nlog(n, HAMOK_LOG_WARN, "transport", "%s: %s", text != NULL ? text : "error",
                hamok_status_str(st));
}

void hamok__node_post_req(hamok_node *n, hamok_req *rq)
{
    inbox_item *it = hamok__malloc(sizeof *it);
    if (it == NULL) {
        req_complete(n, rq, HAMOK_ERR_NOMEM, NULL, 0);
        return;
    }
    it->kind = ITEM_REQ;
    it->req = rq;
    it->len = 0;
    if (!post_item(n, it)) {
        hamok__free(it);
        req_complete(n, rq, HAMOK_ERR_CLOSED, NULL, 0);
    }
}

bool hamok__node_on_loop(const hamok_node *n)
{
    if (n->cfg.embedded) {
        return n->in_process > 0;
    }
    return atomic_load_explicit(&n->loop_tid_set, memory_order_acquire) &&
           pthread_equal(pthread_self(), n->loop_tid);
}

hamok_status hamok__node_call(hamok_node *n, hamok_req *rq)
{
    hamok_waiter *w = rq->w;
    if (hamok__node_on_loop(n)) {
        rq->w = NULL;
        req_free(rq);
        return HAMOK_ERR_STATE;
    }
    hamok__node_post_req(n, rq);
    if (n->cfg.embedded) {
        for (;;) {
            pthread_mutex_lock(&w->mu);
            bool done = w->done;
            pthread_mutex_unlock(&w->mu);
            if (done) {
                break;
            }
            struct pollfd p = {.fd = n->efd, .events = POLLIN};
            int to = timeout_ms(n);
            if (to > 0) {
                poll(&p, 1, to);
            }
            if (process(n) == HAMOK_ERR_CLOSED) {
                pthread_mutex_lock(&w->mu);
                done = w->done;
                pthread_mutex_unlock(&w->mu);
                if (!done) {
                    return HAMOK_ERR_CLOSED;
                }
            }
        }
    } else {
        pthread_mutex_lock(&w->mu);
        while (!w->done) {
            pthread_cond_wait(&w->cv, &w->mu);
        }
        pthread_mutex_unlock(&w->mu);
    }
    return w->status;
}

/* ------------------------------------------------------------------------ */
/* Public API */

static hamok_status random_id(hamok_id *out)
{
    uint8_t r[HAMOK_ID_LEN];
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL) {
        return HAMOK_ERR_IO;
    }
    size_t got = fread(r, 1, sizeof r, f);
    fclose(f);
    if (got != sizeof r) {
        return HAMOK_ERR_IO;
    }
    *out = hamok__id_uuid4(r);
    return HAMOK_OK;
}

/* Durable mode: open the directory and restore id, snapshot, term, vote and
 * log. The registry is restored from the snapshot; entries after it are
 * applied again as the commit index is learned. */
static hamok_status recover(hamok_node *n, const hamok_config *cfg)
{
    hamok_storage_options so;
    hamok__storage_options_default(&so);
    so.sync_policy = cfg->sync == HAMOK_FSYNC_BATCH ? HAMOK_SYNC_BATCH : HAMOK_SYNC_ALWAYS;
    so.batch_delay_ms = cfg->batch_delay_ms;
    hamok_storage_recovered rec;
    char err[512] = "";
    hamok_status st =
        hamok__storage_open(&n->st, cfg->storage_dir, &so, n->self.b, &rec, err, sizeof err);
    if (st != HAMOK_OK) {
        hamok__nlog(n, HAMOK_LOG_ERROR, "storage", "cannot open %s: %s", cfg->storage_dir, err);
        return st;
    }
    n->self = rec.id;
    hamok__id_format(&n->self, n->self_text);
    n->next_seq = n->seq_reserved = rec.seq_floor; /* never reuse a sequence number */
    if (rec.notice[0] != '\0') {
        hamok__nlog(n, HAMOK_LOG_WARN, "storage", "%s", rec.notice);
    }
    /* The core was made for the id given by the config; remake it for the
     * directory's. */
    if ((st = make_raft(n, false)) != HAMOK_OK) {
        goto out;
    }
    if (rec.has_snapshot) {
        hamok_snapshot_reader *r = NULL;
        uint64_t idx, term;
        const uint8_t *meta;
        size_t meta_len;
        st = hamok__storage_snapshot_open(n->st, &r, &idx, &term, &meta, &meta_len);
        hamok_member *ms = NULL;
        size_t k = 0;
        if (st == HAMOK_OK) {
            st = hamok__codec_decode_config(meta, meta_len, &ms, &k);
        }
        hamok__buf_reset(&n->snap);
        uint8_t chunk[65536];
        size_t got = 0;
        while (st == HAMOK_OK) {
            st = hamok__snapshot_read(r, chunk, sizeof chunk, &got);
            if (st != HAMOK_OK || got == 0) {
                break;
            }
            st = hamok__buf_append(&n->snap, chunk, got);
        }
        hamok__snapshot_reader_close(&r);
        if (st == HAMOK_OK) {
            st = hamok__registry_restore(n->reg, n->snap.data, n->snap.len);
        }
        if (st == HAMOK_OK) {
            st = hamok__raft_restore_snapshot(n->raft, idx, term, ms, k);
            n->snap_index = idx;
            n->snap_term = term;
        }
        hamok__members_free(ms, k);
        if (st != HAMOK_OK) {
            hamok__nlog(n, HAMOK_LOG_ERROR, "storage", "cannot restore the snapshot of %s: %s",
                        cfg->storage_dir, hamok_status_str(st));
            goto out;
        }
    }
    st = hamok__raft_restore(n->raft, rec.term, rec.has_vote ? &rec.vote : NULL, rec.entries,
                             rec.n_entries);
    if (st != HAMOK_OK) {
        hamok__nlog(n, HAMOK_LOG_ERROR, "storage", "cannot restore the log of %s: %s",
                    cfg->storage_dir, hamok_status_str(st));
        goto out;
    }
    hamok__nlog(n, HAMOK_LOG_INFO, "storage",
                "recovered %s: term %" PRIu64 ", snapshot %" PRIu64 ", %zu entries",
                cfg->storage_dir, rec.term, n->snap_index, rec.n_entries);
out:
    hamok__storage_recovered_free(&rec);
    return st;
}

hamok_status hamok_node_new(hamok_node **out, const hamok_config *cfg, hamok_transport **transport)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    if (transport == NULL || *transport == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_transport *t = *transport;
    *transport = NULL;
    if (cfg == NULL || t->ops == NULL || t->ops->abi != HAMOK_TRANSPORT_ABI ||
        t->ops->send == NULL || t->ops->start == NULL || t->ops->destroy == NULL) {
        if (t->ops != NULL && t->ops->destroy != NULL) {
            t->ops->destroy(t);
        }
        return HAMOK_ERR_INVALID;
    }
    if ((cfg->peer_timeout_ms != 0 && cfg->peer_timeout_ms < 2u * cfg->election_timeout_ms) ||
        (t->max_frame != 0 && t->max_frame < 64u * 1024u)) {
        t->ops->destroy(t);
        return HAMOK_ERR_INVALID;
    }
    hamok_node *n = hamok__calloc(1, sizeof *n);
    if (n == NULL) {
        t->ops->destroy(t);
        return HAMOK_ERR_NOMEM;
    }
    bool started = false;
    n->cfg = *cfg;
    n->cfg.storage_dir = NULL;
    n->t = t;
    n->efd = -1;
    hamok_status st = HAMOK_OK;
    if (cfg->has_id) {
        n->self = cfg->id;
    } else if ((st = random_id(&n->self)) != HAMOK_OK) {
        goto fail;
    }
    hamok__id_format(&n->self, n->self_text);
    t->self = n->self;
    n->frame_limit = t->max_frame == 0 || t->max_frame > HAMOK_TRANSPORT_MAX_FRAME
                         ? HAMOK_TRANSPORT_MAX_FRAME
                         : t->max_frame;
    hamok__codec_limits_default(&n->limits);
    n->limits.max_frame = n->frame_limit;
    uint64_t seed = 0;
    memcpy(&seed, n->self.b, sizeof seed);
    hamok__prng_seed(&n->prng, seed ^ clock_ms());
    pthread_mutex_init(&n->inbox_mu, NULL);
    pthread_mutex_init(&n->state_mu, NULL);
    pthread_mutex_init(&n->listen_mu, NULL);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE); /* handlers may close handles */
    pthread_mutex_init(&n->handles_mu, &ma);
    pthread_mutexattr_destroy(&ma);
    pthread_rwlock_init(&n->reg_lock, NULL);
    n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->efd < 0) {
        st = HAMOK_ERR_IO;
        goto fail;
    }
    if ((st = hamok__registry_new(&n->reg, 0)) != HAMOK_OK ||
        (st = make_raft(n, false)) != HAMOK_OK) {
        goto fail;
    }
    if (cfg->storage_dir != NULL && (st = recover(n, cfg)) != HAMOK_OK) {
        goto fail;
    }
    t->self = n->self;
    snprintf(t->cluster, sizeof t->cluster, "%s", n->cfg.cluster);
    /* Inbound frames wait in the inbox until the loop runs. The endpoint is
     * read after start(): a transport may learn it there. */
    n->sink.deliver = sink_deliver;
    n->sink.deliver_from = sink_deliver_from;
    n->sink.error = sink_error;
    n->sink.link = sink_link;
    if ((st = t->ops->start(t, &n->sink)) != HAMOK_OK) {
        goto fail;
    }
    started = true;
    hamok_grid_options go = {
        .self = n->self,
        .endpoint = t->ops->local_endpoint != NULL ? t->ops->local_endpoint(t) : "",
        .hello_ms = cfg->heartbeat_ms * 2 < 250 ? cfg->heartbeat_ms * 2 : 250,
        .discovery_ms = cfg->election_timeout_ms,
        .peer_timeout_ms = cfg->peer_timeout_ms,
        .bootstrap_expect = cfg->bootstrap_expect,
    };
    if ((st = hamok__grid_new(&n->grid, &go)) != HAMOK_OK) {
        goto fail;
    }
    n->raft_deadline = 0;
    n->grid_deadline = UINT64_MAX;
    n->req_check_at = UINT64_MAX;
    if (!cfg->embedded) {
        if (pthread_create(&n->thread, NULL, loop_main, n) != 0) {
            st = HAMOK_ERR_STATE;
            goto fail;
        }
        n->has_thread = true;
    }
    hamok__nlog(n, HAMOK_LOG_INFO, "node", "started (cluster %s, transport %s)", n->cfg.cluster,
                t->ops->name != NULL ? t->ops->name : "?");
    *out = n;
    return HAMOK_OK;
fail:
    if (started && t->ops->stop != NULL) {
        t->ops->stop(t);
    }
    hamok__storage_close(&n->st);
    hamok__raft_destroy(&n->raft);
    hamok__grid_destroy(&n->grid);
    hamok__registry_destroy(&n->reg);
    if (n->efd >= 0) {
        close(n->efd);
    }
    t->ops->destroy(t);
    hamok__free(n);
    return st;
}

void hamok_node_destroy(hamok_node **np)
{
    if (np == NULL || *np == NULL) {
        return;
    }
    hamok_node *n = *np;
    *np = NULL;
    inbox_item *it = hamok__malloc(sizeof *it);
    if (it != NULL) {
        it->kind = ITEM_STOP;
        it->req = NULL;
        it->len = 0;
        if (!post_item(n, it)) {
            hamok__free(it);
        }
    }
    if (n->has_thread) {
        if (it == NULL) {
            atomic_store(&n->stop, true);
            wake(n);
        }
        pthread_join(n->thread, NULL);
    } else {
        process(n);
        atomic_store(&n->stop, true);
    }
    if (n->t->ops->stop != NULL) {
        n->t->ops->stop(n->t);
    }
    /* Nothing is delivered any more: drain what is left. */
    pthread_mutex_lock(&n->inbox_mu);
    n->closing = true;
    it = n->in_head;
    n->in_head = n->in_tail = NULL;
    pthread_mutex_unlock(&n->inbox_mu);
    while (it != NULL) {
        inbox_item *next = it->next;
        if (it->kind == ITEM_REQ) {
            req_complete(n, it->req, HAMOK_ERR_CLOSED, NULL, 0);
        }
        hamok__free(it);
        it = next;
    }
    shutdown_requests(n);
    hamok__node_close_handles(n);
    n->t->ops->destroy(n->t);
    if (n->st != NULL) {
        hamok__storage_sync(n->st, NULL, NULL);
        hamok__storage_close(&n->st);
    }
    hamok__members_free(n->snap_in_members, n->n_snap_in_members);
    hamok__raft_destroy(&n->raft);
    hamok__grid_destroy(&n->grid);
    hamok__registry_destroy(&n->reg);
    for (size_t i = 0; i < n->n_props; i++) {
        if (n->props[i].rq == NULL) {
            hamok__free(n->props[i].e.data);
        }
    }
    hamok__free(n->props);
    hamok__free(n->pending.keys);
    hamok__free(n->pending.vals);
    hamok__buf_free(&n->snap);
    hamok__buf_free(&n->snap_in);
    hamok__buf_free(&n->enc);
    hamok__buf_free(&n->res);
    hamok__members_free(n->members, n->n_members);
    hamok__free(n->departed);
    hamok__free(n->peers);
    hamok__free(n->handles);
    close(n->efd);
    pthread_mutex_destroy(&n->inbox_mu);
    pthread_mutex_destroy(&n->state_mu);
    pthread_mutex_destroy(&n->listen_mu);
    pthread_mutex_destroy(&n->handles_mu);
    pthread_rwlock_destroy(&n->reg_lock);
    hamok__free(n);
}

static hamok_status blocking(hamok_node *n, hamok_req_type type, int timeout_ms, bool has_target,
                             const hamok_id *target)
{
    if (n == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_req *rq = hamok__req_new(type, timeout_ms);
    if (rq == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    rq->has_target = has_target;
    if (target != NULL) {
        rq->target = *target;
    }
    hamok_waiter w;
    hamok__waiter_init(&w);
    rq->w = &w;
    hamok_status st = hamok__node_call(n, rq);
    hamok__waiter_fini(&w);
    return st;
}

static void async_call(hamok_node *n, hamok_req_type type, int timeout_ms, hamok_done_fn cb,
                       void *ud)
{
    hamok_req *rq = n != NULL ? hamok__req_new(type, timeout_ms) : NULL;
    if (rq == NULL) {
        if (cb != NULL) {
            cb(ud, n == NULL ? HAMOK_ERR_INVALID : HAMOK_ERR_NOMEM);
        }
        return;
    }
    rq->done = cb;
    rq->ud = ud;
    hamok__node_post_req(n, rq);
}

hamok_status hamok_node_join(hamok_node *n, int timeout_ms)
{
    return blocking(n, HAMOK_REQ_JOIN, timeout_ms, false, NULL);
}

void hamok_node_join_async(hamok_node *n, int timeout_ms, hamok_done_fn cb, void *ud)
{
    async_call(n, HAMOK_REQ_JOIN, timeout_ms, cb, ud);
}

hamok_status hamok_node_leave(hamok_node *n, int timeout_ms)
{
    return blocking(n, HAMOK_REQ_LEAVE, timeout_ms, false, NULL);
}

void hamok_node_leave_async(hamok_node *n, int timeout_ms, hamok_done_fn cb, void *ud)
{
    async_call(n, HAMOK_REQ_LEAVE, timeout_ms, cb, ud);
}

hamok_status hamok_node_sync(hamok_node *n, int timeout_ms)
{
    return blocking(n, HAMOK_REQ_SYNC, timeout_ms, false, NULL);
}

void hamok_node_sync_async(hamok_node *n, int timeout_ms, hamok_done_fn cb, void *ud)
{
    async_call(n, HAMOK_REQ_SYNC, timeout_ms, cb, ud);
}

hamok_status hamok_node_transfer_leadership(hamok_node *n, const hamok_id *target, int timeout_ms)
{
    return blocking(n, HAMOK_REQ_TRANSFER, timeout_ms, target != NULL, target);
}

hamok_id hamok_node_id(const hamok_node *n)
{
    return n->self;
}

bool hamok_node_is_leader(const hamok_node *n)
{
    hamok_node *m = (hamok_node *)n;
    pthread_mutex_lock(&m->state_mu);
    bool r = m->stats.role == HAMOK_ROLE_LEADER;
    pthread_mutex_unlock(&m->state_mu);
    return r;
}

bool hamok_node_leader_id(const hamok_node *n, hamok_id *out)
{
    hamok_node *m = (hamok_node *)n;
    pthread_mutex_lock(&m->state_mu);
    bool r = m->stats.has_leader;
    if (r && out != NULL) {
        *out = m->stats.leader;
    }
    pthread_mutex_unlock(&m->state_mu);
    return r;
}

uint32_t hamok__node_frame_limit(const hamok_node *n)
{
    return n->frame_limit;
}

const char *hamok__node_cluster(const hamok_node *n)
{
    return n->cfg.cluster;
}

const char *hamok__node_transport_name(const hamok_node *n)
{
    return n->t->ops->name != NULL ? n->t->ops->name : "";
}

const char *hamok_frame_reject_str(hamok_frame_reject reason)
{
    switch (reason) {
    case HAMOK_FRAME_MALFORMED: return "malformed";
    case HAMOK_FRAME_TOO_BIG: return "too_big";
    case HAMOK_FRAME_VERSION: return "version";
    case HAMOK_FRAME_CLUSTER: return "cluster";
    case HAMOK_FRAME_TYPE: return "type";
    case HAMOK_FRAME_SOURCE: return "source";
    }
    return "unknown";
}

const char *hamok_coll_kind_str(hamok_coll_kind kind)
{
    switch (kind) {
    case HAMOK_COLL_MAP: return "map";
    case HAMOK_COLL_RECORD: return "record";
    case HAMOK_COLL_QUEUE: return "queue";
    case HAMOK_COLL_EMITTER: return "emitter";
    case HAMOK_COLL_REMOTE_MAP: return "remote_map";
    }
    return "unknown";
}

size_t hamok_node_collections(hamok_node *n, hamok_coll_info *out, size_t cap)
{
    if (n == NULL) {
        return 0;
    }
    size_t k = 0, cursor = 0;
    const hamok_coll *c;
    hamok__node_read_lock(n);
    while (hamok__registry_next_coll(n->reg, &cursor, &c)) {
        if (out != NULL && k < cap) {
            hamok_coll_info *ci = &out[k];
            size_t len;
            const uint8_t *name = hamok__coll_name(c, &len);
            ci->kind = (hamok_coll_kind)hamok__coll_kind(c);
            ci->name_len = len < sizeof ci->name ? len : sizeof ci->name - 1;
            memcpy(ci->name, name, ci->name_len);
            ci->name[ci->name_len] = '\0';
            ci->entries = hamok__coll_size(c);
        }
        k++;
    }
    hamok__node_read_unlock(n);
    return k;
}

const char *hamok_transport_link_str(hamok_transport_link state)
{
    switch (state) {
    case HAMOK_LINK_CONNECTED: return "connected";
    case HAMOK_LINK_DISCONNECTED: return "disconnected";
    case HAMOK_LINK_RECONNECTED: return "reconnected";
    case HAMOK_LINK_CLOSED: return "closed";
    }
    return "unknown";
}

const char *hamok_role_str(hamok_role role)
{
    switch (role) {
    case HAMOK_ROLE_NONE: return "none";
    case HAMOK_ROLE_FOLLOWER: return "follower";
    case HAMOK_ROLE_CANDIDATE: return "candidate";
    case HAMOK_ROLE_LEADER: return "leader";
    case HAMOK_ROLE_LEARNER: return "learner";
    }
    return "unknown";
}

size_t hamok_node_peers(hamok_node *n, hamok_peer_info *out, size_t cap)
{
    pthread_mutex_lock(&n->state_mu);
    size_t k = n->n_peers;
    for (size_t i = 0; i < k && i < cap; i++) {
        out[i] = n->peers[i];
    }
    pthread_mutex_unlock(&n->state_mu);
    return k;
}

void hamok_node_stats_get(hamok_node *n, hamok_node_stats *out)
{
    pthread_mutex_lock(&n->state_mu);
    *out = n->stats;
    pthread_mutex_unlock(&n->state_mu);
}

hamok_status hamok_node_on(hamok_node *n, hamok_node_event_fn fn, void *ud)
{
    if (n == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&n->listen_mu);
    hamok_status st = HAMOK_ERR_NOMEM;
    if (n->n_listeners < MAX_LISTENERS) {
        n->listeners[n->n_listeners++] = (listener){fn, ud};
        st = HAMOK_OK;
    }
    pthread_mutex_unlock(&n->listen_mu);
    return st;
}

hamok_status hamok_node_off(hamok_node *n, hamok_node_event_fn fn, void *ud)
{
    if (n == NULL || fn == NULL) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&n->listen_mu);
    hamok_status st = HAMOK_ERR_NOT_FOUND;
    for (size_t i = 0; i < n->n_listeners; i++) {
        if (n->listeners[i].fn == fn && n->listeners[i].ud == ud) {
            memmove(&n->listeners[i], &n->listeners[i + 1],
                    (n->n_listeners - i - 1) * sizeof n->listeners[0]);
            n->n_listeners--;
            st = HAMOK_OK;
            break;
        }
    }
    pthread_mutex_unlock(&n->listen_mu);
    return st;
}

int hamok_node_fd(const hamok_node *n)
{
    return n->cfg.embedded ? n->efd : -1;
}

int hamok_node_next_timeout_ms(hamok_node *n)
{
    return timeout_ms(n);
}

hamok_status hamok_node_process(hamok_node *n)
{
    if (!n->cfg.embedded) {
        return HAMOK_ERR_STATE;
    }
    if (n->in_process > 0) {
        return HAMOK_ERR_STATE;
    }
    return process(n);
}

/* ------------------------------------------------------------------------ */
/* For the collection handles (coll.c) */

void hamok__node_read_lock(hamok_node *n)
{
    if (!hamok__node_on_loop(n)) {
        pthread_rwlock_rdlock(&n->reg_lock);
    }
}

void hamok__node_read_unlock(hamok_node *n)
{
    if (!hamok__node_on_loop(n)) {
        pthread_rwlock_unlock(&n->reg_lock);
    }
}

hamok_registry *hamok__node_registry(hamok_node *n)
{
    return n->reg;
}

uint32_t hamok__node_request_timeout(const hamok_node *n)
{
    return n->cfg.request_timeout_ms;
}

hamok_id hamok__node_self(const hamok_node *n)
{
    return n->self;
}

hamok_status hamok__node_add_handle(hamok_node *n, hamok_handle *h)
{
    pthread_mutex_lock(&n->handles_mu);
    if (n->n_handles == n->cap_handles) {
        size_t nc = n->cap_handles ? n->cap_handles * 2 : 8;
        hamok_handle **p = hamok__realloc(n->handles, nc * sizeof *p);
        if (p == NULL) {
            pthread_mutex_unlock(&n->handles_mu);
            return HAMOK_ERR_NOMEM;
        }
        n->handles = p;
        n->cap_handles = nc;
    }
    n->handles[n->n_handles++] = h;
    pthread_mutex_unlock(&n->handles_mu);
    return HAMOK_OK;
}

void hamok__node_remove_handle(hamok_node *n, hamok_handle *h)
{
    pthread_mutex_lock(&n->handles_mu);
    for (size_t i = 0; i < n->n_handles; i++) {
        if (n->handles[i] == h) {
            n->handles[i] = n->handles[--n->n_handles];
            break;
        }
    }
    pthread_mutex_unlock(&n->handles_mu);
}

void hamok__node_dispatch_event(hamok_node *n, const hamok_coll_event *ev)
{
    pthread_mutex_lock(&n->handles_mu);
    for (size_t i = 0; i < n->n_handles; i++) {
        if (hamok__handle_matches(n->handles[i], ev)) {
            hamok__handle_dispatch(n->handles[i], ev);
        }
    }
    pthread_mutex_unlock(&n->handles_mu);
}
