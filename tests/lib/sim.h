/* Deterministic cluster simulator for the sans-I/O Raft core.
 *
 * N nodes (1..7) of the production core (hamok__raft_*) on a simulated
 * network, a simulated disk per node and a virtual clock, driven by one event
 * queue (a binary heap keyed by (virtual ms, insertion sequence)). One 64-bit
 * seed fixes the whole history, bit for bit: every random draw comes from
 * hamok_prng streams derived from it; nothing reads the real clock except the
 * wall-time statistics.
 *
 *  - Messages go through the real codec (cluster "sim"): every message the
 *    core emits is encoded, delivered as bytes, decoded at the receiver and
 *    stepped as RECEIVE.
 *  - Each directed link has a drop and a duplicate probability and a delay
 *    range (reordering emerges from it) and can be disabled (partitions).
 *  - A node can be paused (its events wait until it resumes), crashed (core
 *    destroyed, unflushed writes lost) and restarted from its disk (same peer
 *    id: durable mode), or wiped (memory mode: disk gone, the id never comes
 *    back; the operator adds a fresh node with a new id instead). Hard state
 *    is written synchronously; log writes are asynchronous (FIFO, seeded
 *    delay) and reported to the core with HAMOK_RAFT_EV_PERSISTED when they
 *    complete.
 *  - Every node runs a state machine (sm.h) fed by the applied entries. On
 *    update.snapshot_wanted it serializes it (about 2 KiB) and writes it to
 *    its disk's snapshot slot, in order after the log writes already issued
 *    (a storage that syncs everything pending before it commits a snapshot,
 *    like src/storage), after a seeded delay or, with probability
 *    snapshot_skip, never; then it steps SNAPSHOT_TAKEN and drops the disk
 *    log up to the snapshot. Leaders answer update.snapshot_sends with
 *    INSTALL_SNAPSHOT chunks of chunk_bytes read from that slot, through the
 *    codec and the faulty network; followers store update.chunk and, on
 *    snapshot_installed, sync what is pending, make the received snapshot
 *    durable (keeping the log after it if the log holds its last entry, else
 *    emptying it — src/storage's rule) and restore their state machine from
 *    it. A restart restores the snapshot (hamok__raft_restore_snapshot) and
 *    the log after it.
 *  - Membership: nodes beyond the bootstrap ones are added as fresh peers
 *    (hamok_sim_add_node) that know no configuration; CHANGE and TRANSFER go
 *    through hamok_sim_change / hamok_sim_transfer. Nodes are slots: a
 *    removed or wiped node's slot is never reused.
 *  - Reads: hamok_sim_read() steps READ_INDEX; when the barrier completes
 *    with HAMOK_OK at index i, the read is served once the node has applied
 *    i, from its state machine, and checked for linearizability.
 *  - Per-node clock skew: local = offset + global * rate, rate in [0.5, 1.5).
 *  - After every event the checker (checker.h) verifies the invariants; the
 *    first violation stops the run and hamok_sim_error() explains it, with
 *    the seed and how to replay it.
 *
 * Environment: HAMOK_SIM_TRACE=1 prints a readable event trace to stdout.
 * Nothing here is thread-safe; one simulator per thread. */
#ifndef HAMOK_TESTS_SIM_H
#define HAMOK_TESTS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checker.h"
#include "codec/msg.h"
#include "hamok/status.h"
#include "raft/raft.h"
#include "util/buf.h"

#define HAMOK_SIM_MAX_NODES HAMOK_CHK_MAX_NODES

typedef struct hamok_sim hamok_sim;

/* An application replicated on every node next to the simulator's own state
 * machine (sm.h): tests/lib/collsim.c runs the production collections
 * registry with it. Every hook is optional. A hook that finds a violation
 * reports it with hamok_sim_fail() and returns false.
 *
 *  - start: the node starts (first start or restart) with an empty state;
 *    restore follows when its disk holds a snapshot.
 *  - restore: replace the node's state with the application part of a
 *    snapshot at `index` (restart from disk, or an installed snapshot).
 *  - snapshot: append the state (everything applied: up to `index`) to out;
 *    stored in the snapshot slot after the simulator's own state.
 *  - apply: a committed entry, in log order, after the simulator's state
 *    machine took it.
 *  - stop: the node crashed, was wiped or retired (`wiped`: for good).
 *  - receive: a message of a type the Raft core does not take
 *    (SUBMIT_REQUEST/RESPONSE, EMIT_*), through the codec and the faulty
 *    network like every other (hamok_sim_send).
 *  - stepped: after every step of the node's core (apply, messages and
 *    timer done). It may only look and schedule (hamok_sim_schedule). */
typedef struct hamok_sim_app {
    void *ud;
    bool (*start)(hamok_sim *s, void *ud, int node);
    bool (*restore)(hamok_sim *s, void *ud, int node, uint64_t index, const uint8_t *data,
                    size_t len);
    bool (*snapshot)(hamok_sim *s, void *ud, int node, uint64_t index, hamok_buf *out);
    bool (*apply)(hamok_sim *s, void *ud, int node, uint64_t index, const hamok_entry *e);
    void (*stop)(hamok_sim *s, void *ud, int node, bool wiped);
    void (*receive)(hamok_sim *s, void *ud, int node, const hamok_msg *m);
    void (*stepped)(hamok_sim *s, void *ud, int node);
} hamok_sim_app;

/* How reads are served. Only BARRIER is correct; the others are negative
 * controls for the read checker (tests/sim/test_teeth.c). */
typedef enum hamok_sim_read_mode {
    HAMOK_SIM_READ_BARRIER = 0,      /* READ_INDEX through the core, served once applied */
    HAMOK_SIM_READ_LOCAL = 1,        /* any node serves at once from its local state */
    HAMOK_SIM_READ_LEADER_LOCAL = 2, /* a node that believes it leads serves at once
                                        (no quorum round); others use the barrier */
} hamok_sim_read_mode;

typedef struct hamok_sim_config {
    uint64_t seed;
    int n_nodes;
    /* Core options (0 = the core's default). */
    uint32_t election_timeout_ms; /* default 1000 */
    uint32_t heartbeat_ms;        /* default 100 */
    uint32_t max_inflight;
    uint32_t max_batch_entries;
    size_t max_batch_bytes;
    bool pre_vote;     /* default true */
    bool check_quorum; /* default true */
    /* Every link starts with these. */
    double drop;
    double dup;
    uint32_t delay_min_ms; /* default 1 */
    uint32_t delay_max_ms; /* default 10 */
    /* Stragglers: this fraction of messages gets up to straggle_max_ms of
     * extra delay (the tail of a real network's latency). */
    double straggle;
    uint32_t straggle_max_ms;
    /* A log write completes 0..disk_delay_max_ms after it is issued (FIFO). */
    uint32_t disk_delay_max_ms; /* default 5 */
    bool clock_skew;            /* draw a rate and an offset per node */
    /* Snapshots (0 = the core's defaults, i.e. practically never). */
    uint64_t snapshot_entries;
    uint64_t snapshot_trailing;
    uint32_t chunk_bytes;           /* INSTALL_SNAPSHOT chunk size; default 512 */
    uint32_t snapshot_delay_max_ms; /* a snapshot write takes 0..this (after pending writes) */
    double snapshot_skip;           /* a requested snapshot is never taken */
    hamok_sim_read_mode read_mode;
    const hamok_sim_app *app; /* NULL: none (borrowed; must outlive the simulator) */
    bool trace;               /* also switched on by HAMOK_SIM_TRACE=1 */
    const char *replay_hint;  /* how to replay, printed with failures; NULL = generic */
} hamok_sim_config;

void hamok_sim_config_default(hamok_sim_config *c, uint64_t seed, int n_nodes);

/* Creates the cluster and starts every node (empty disks) at virtual time 0.
 * NULL on bad config or out of memory. */
hamok_sim *hamok_sim_new(const hamok_sim_config *c);
void hamok_sim_destroy(hamok_sim **s);

/* ---- running ---------------------------------------------------------- */

/* Process the next event. False when the run failed or nothing is queued. */
bool hamok_sim_step(hamok_sim *s);
/* Process every event up to virtual time t (inclusive) and set the clock to
 * t. False if a violation was found. */
bool hamok_sim_run_until(hamok_sim *s, uint64_t t_ms);
bool hamok_sim_run_for(hamok_sim *s, uint64_t ms);
typedef bool (*hamok_sim_pred)(hamok_sim *s, void *ud);
/* Run until pred holds (checked before the first and after every event) or
 * max_ms pass. True when pred held; false on timeout or violation. */
bool hamok_sim_run_until_pred(hamok_sim *s, hamok_sim_pred pred, void *ud, uint64_t max_ms);
uint64_t hamok_sim_now(const hamok_sim *s);
uint64_t hamok_sim_seed(const hamok_sim *s);
int hamok_sim_n(const hamok_sim *s);
const hamok_sim_config *hamok_sim_config_get(const hamok_sim *s);

/* A callback event at virtual time at_ms (>= now). */
typedef void (*hamok_sim_fn)(hamok_sim *s, void *ud, uint64_t arg);
void hamok_sim_schedule(hamok_sim *s, uint64_t at_ms, hamok_sim_fn fn, void *ud, uint64_t arg);

/* Observer of role/term changes, called inside the step that made them; it
 * may only look and schedule (hamok_sim_schedule), not change nodes. */
typedef void (*hamok_sim_role_fn)(hamok_sim *s, void *ud, int node, hamok_raft_role role,
                                  uint64_t term);
void hamok_sim_on_role(hamok_sim *s, hamok_sim_role_fn fn, void *ud);
/* Observer of commit-index advances (same rules as on_role). */
typedef void (*hamok_sim_commit_fn)(hamok_sim *s, void *ud, int node, hamok_raft_role role,
                                    uint64_t term, uint64_t commit_index);
void hamok_sim_on_commit(hamok_sim *s, hamok_sim_commit_fn fn, void *ud);

/* ---- failures ----------------------------------------------------------- */

bool hamok_sim_failed(const hamok_sim *s);
/* The full report (invariant, seed, virtual time, node, index/term, detail,
 * replay hint); "" while nothing failed. */
const char *hamok_sim_error(const hamok_sim *s);
const hamok_chk_violation *hamok_sim_violation(const hamok_sim *s);
hamok_chk *hamok_sim_checker(hamok_sim *s);
/* Record a failure found by a test (first one wins). */
void hamok_sim_fail(hamok_sim *s, const char *invariant, int node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- network ------------------------------------------------------------ */

void hamok_sim_link_set(hamok_sim *s, int from, int to, double drop, double dup,
                        uint32_t delay_min_ms, uint32_t delay_max_ms);
/* The same parameters on every link. */
void hamok_sim_net_set(hamok_sim *s, double drop, double dup, uint32_t delay_min_ms,
                       uint32_t delay_max_ms);
/* One-way: messages from -> to pass (true) or vanish (false). Checked when
 * sent and again when delivered. */
void hamok_sim_link_enable(hamok_sim *s, int from, int to, bool up);
bool hamok_sim_link_is_up(const hamok_sim *s, int from, int to);
/* Both ways. */
void hamok_sim_connect(hamok_sim *s, int a, int b, bool up);
/* Nodes in mask_a talk among themselves, the rest among themselves, nobody
 * across. */
void hamok_sim_partition(hamok_sim *s, uint64_t mask_a);
void hamok_sim_isolate(hamok_sim *s, int node);
/* Only `center` talks to the others; they cannot talk to each other. */
void hamok_sim_star(hamok_sim *s, int center, uint64_t leaves_mask);
void hamok_sim_heal(hamok_sim *s); /* every link up */
/* Test hook called for every message sent (before the link decides);
 * return false to drop it. */
typedef bool (*hamok_sim_filter)(void *ud, int from, int to, const hamok_msg *m);
void hamok_sim_set_filter(hamok_sim *s, hamok_sim_filter f, void *ud);

/* ---- nodes -------------------------------------------------------------- */

void hamok_sim_pause(hamok_sim *s, int node);
void hamok_sim_resume(hamok_sim *s, int node);
void hamok_sim_crash(hamok_sim *s, int node);
bool hamok_sim_restart(hamok_sim *s, int node);
bool hamok_sim_is_up(const hamok_sim *s, int node); /* not crashed */
bool hamok_sim_is_paused(const hamok_sim *s, int node);
/* Up and not paused. */
bool hamok_sim_is_live(const hamok_sim *s, int node);
/* Replace a node's durable state (hard state + log) and restart it from
 * there; for building preset histories before (or during) a run. vote -1 =
 * none. Entry data is copied. */
bool hamok_sim_preset(hamok_sim *s, int node, uint64_t term, int vote, const hamok_entry *entries,
                      size_t n);
/* Highest index on a node's simulated disk (snapshot or log). */
uint64_t hamok_sim_disk_len(const hamok_sim *s, int node);
/* Index of the snapshot on a node's disk (0: none). */
uint64_t hamok_sim_disk_snapshot(const hamok_sim *s, int node);
/* Let a node take snapshots when its core asks (default) or never. */
void hamok_sim_set_snapshots(hamok_sim *s, int node, bool enabled);

/* A fresh peer (new id, empty disk, no configuration: it waits to be added),
 * started now. Its links get the config's drop/dup/delay. Returns its index,
 * -1 when every slot is used. */
int hamok_sim_add_node(hamok_sim *s);
/* Memory mode: the node crashes and loses its disk; its id never comes back
 * and its messages still in flight are lost with it. */
void hamok_sim_wipe(hamok_sim *s, int node);
/* Decommission: crash for good (disk kept, never restarted). */
void hamok_sim_retire(hamok_sim *s, int node);
/* Wiped or retired. */
bool hamok_sim_is_dead(const hamok_sim *s, int node);
/* In the latest committed configuration (per the checker). */
bool hamok_sim_is_member(const hamok_sim *s, int node);
/* Members / voters of the configuration the node's core reports in force. */
uint64_t hamok_sim_config_members(const hamok_sim *s, int node, uint64_t *voters);
/* Members / voters of the latest committed configuration. */
uint64_t hamok_sim_committed_members(const hamok_sim *s, uint64_t *voters);

/* The core of a node (NULL while crashed), for introspection. */
hamok_raft *hamok_sim_core(hamok_sim *s, int node);
hamok_raft_role hamok_sim_role(const hamok_sim *s, int node); /* 0 while crashed */
uint64_t hamok_sim_term(const hamok_sim *s, int node);        /* 0 while crashed */
/* A live node in the LEADER role (the one with the highest term), -1 if
 * none. */
int hamok_sim_leader(const hamok_sim *s);
/* A leader every live node follows: same term, same known leader. -1 if
 * none. */
int hamok_sim_agreed_leader(const hamok_sim *s);
/* Run until hamok_sim_agreed_leader() >= 0; returns it or -1. */
int hamok_sim_wait_leader(hamok_sim *s, uint64_t max_ms);
/* Run until every live member has applied `index` with `term`. */
bool hamok_sim_wait_applied(hamok_sim *s, uint64_t index, uint64_t term, uint64_t max_ms);
/* True when node applied `index` and the committed entry there has `term`. */
bool hamok_sim_node_applied(const hamok_sim *s, int node, uint64_t index, uint64_t term);

/* ---- clients ------------------------------------------------------------ */

/* Propose n fresh entries (payload "s<seed>-p<k>") to node, now. Returns the
 * core's status (HAMOK_ERR_NOT_LEADER is normal); HAMOK_ERR_STATE if the node
 * is down or paused. index/term (may be NULL) receive the first entry's. */
hamok_status hamok_sim_propose(hamok_sim *s, int node, size_t n, uint64_t *index, uint64_t *term);
/* Propose the given entries (type, client, seq, data; the term is the
 * core's) to node, now. Same statuses as hamok_sim_propose. */
hamok_status hamok_sim_propose_entries(hamok_sim *s, int node, const hamok_entry *e, size_t n,
                                       uint64_t *index, uint64_t *term);
/* Send an application message (hamok_sim_app.receive gets it at the other
 * end) from node through the codec and the node's links; m->src must be the
 * node's id. False if the simulator failed. */
bool hamok_sim_send(hamok_sim *s, int node, const hamok_msg *m);
/* Propose to the live leader (hamok_sim_leader()). HAMOK_ERR_NO_LEADER if none. */
hamok_status hamok_sim_propose_leader(hamok_sim *s, size_t n, uint64_t *index, uint64_t *term,
                                      int *node);

/* Membership change on `node` (should lead): ADD_LEARNER / PROMOTE / REMOVE
 * of node `target`. Returns the core's status (BUSY, NOT_LEADER, NOT_FOUND,
 * INVALID are normal); HAMOK_ERR_STATE if `node` is down or paused. *index
 * (may be NULL) receives the CONFIG entry's index (0 if none). */
hamok_status hamok_sim_change(hamok_sim *s, int node, hamok_raft_change_op op, int target,
                              uint64_t *index);
/* Leadership transfer on `node` to `target` (-1: the most up-to-date voter). */
hamok_status hamok_sim_transfer(hamok_sim *s, int node, int target);
/* Start a read on `node`; *id (may be NULL) receives its id. The outcome is
 * reported to the on_read observer: HAMOK_OK once served (and checked),
 * else the barrier's error. HAMOK_ERR_STATE if the node is down or paused. */
hamok_status hamok_sim_read(hamok_sim *s, int node, uint64_t *id);
/* The id the next hamok_sim_read() will use (its outcome may be reported
 * before hamok_sim_read() returns). */
uint64_t hamok_sim_next_read_id(const hamok_sim *s);
typedef void (*hamok_sim_read_fn)(hamok_sim *s, void *ud, int node, uint64_t id,
                                  hamok_status status, uint64_t read_index, uint64_t applied);
void hamok_sim_on_read(hamok_sim *s, hamok_sim_read_fn fn, void *ud);

/* ---- final phase -------------------------------------------------------- */

/* Heal every link, no drops or duplicates (delays stay), remove the filter,
 * resume paused nodes, restart crashed ones (not wiped or retired ones). */
void hamok_sim_heal_all(hamok_sim *s);
/* heal_all, then: an agreed leader within 10 election timeouts (scaled by the
 * slowest clock), a fresh proposal applied on every live member of the
 * committed configuration, and the final checks (acked-durable, liveness).
 * False with hamok_sim_error() set. */
bool hamok_sim_check_liveness(hamok_sim *s);
/* The two halves of hamok_sim_check_liveness: heal_all, an agreed leader
 * and a fresh entry applied everywhere (recovery); the final checks
 * (acked-durable, liveness of every proposal) over the live members. The
 * final checks assume no proposal is made after the fresh entry unless
 * every live member applied it too (a workload that keeps proposing runs
 * them once its clients are done and the members caught up). */
bool hamok_sim_check_recovery(hamok_sim *s);
bool hamok_sim_check_final(hamok_sim *s);

/* ---- statistics --------------------------------------------------------- */

typedef struct hamok_sim_stats {
    uint64_t steps; /* events processed (stale timers excluded) */
    uint64_t virtual_ms;
    uint64_t msgs_sent; /* per destination */
    uint64_t msgs_delivered;
    uint64_t msgs_dropped; /* by link loss, partitions, filter, dead receivers */
    uint64_t msgs_duplicated;
    uint64_t bytes_sent;
    uint64_t crashes, restarts, pauses;
    uint64_t disk_writes;
    uint64_t wipes, retires, adds;
    uint64_t snapshots_taken; /* SNAPSHOT_TAKEN stepped */
    uint64_t snapshots_skipped;
    uint64_t installs;
    uint64_t chunks_sent;
    uint64_t changes_ok, transfers_ok;
    uint64_t reads, reads_ok, reads_failed;
    hamok_chk_stats chk;
} hamok_sim_stats;
void hamok_sim_stats_get(const hamok_sim *s, hamok_sim_stats *out);
/* Messages of `type` a node sent (per destination) since the last reset. */
uint64_t hamok_sim_sent(const hamok_sim *s, int node, uint8_t type);
/* APPEND_RESPONSE rejections (success false) a node sent since the last reset. */
uint64_t hamok_sim_append_rejects(const hamok_sim *s, int node);
void hamok_sim_reset_counters(hamok_sim *s);

/* Peer id of node i (id_from_u64(i + 1)), and back (-1 if not a node). */
hamok_id hamok_sim_node_id(int node);
int hamok_sim_node_of(const hamok_sim *s, const hamok_id *id);

#endif
