/* Raft history checker for the simulator (tests/lib/sim.c) and for hand-made
 * histories (tests/sim/test_checker.c).
 *
 * The checker keeps a model of every node — the in-memory log as the update
 * stream describes it (the "view"), the durable log and snapshot (the
 * "disk"), the hard state, the commit and applied indexes, the configuration
 * in force — plus global facts: which node led which term, an oracle of
 * every (index, term) ever stored, the committed sequence with the
 * configuration and the reference state machine (sm.h) after every committed
 * index, and the client proposals. Every call is incremental (O(entries
 * touched)); the simulator calls it after every event.
 *
 * Logs are modelled whole, from index 1: a snapshot at index s stands for the
 * committed prefix 1..s (the checker verifies that it is one), so compaction
 * is invisible here and an installed snapshot replaces the prefix of the view
 * by the committed one. Configurations are bitmasks of node indexes (bit 63:
 * an id that is no node), derived from the CONFIG entries of each log the
 * way the core derives them: the latest one in the log, committed or not
 * (thesis §4.1), else the base (bootstrap voters; nothing for a peer that
 * joins; a snapshot's members after an install or restore).
 *
 * Invariants (names as reported):
 *   election-safety      at most one leader per term over the whole history
 *   leader-append-only   a leader never truncates or overwrites its log while
 *                        it stays leader of the same term
 *   leader-completeness  a node that becomes leader of term T holds every
 *                        entry committed in a term < T (Raft §5.4); the
 *                        commit term is bounded by the term of the node that
 *                        first applied the entry
 *   leader-membership    a node becomes leader only as a voter of the
 *                        configuration in force in its own log
 *   removed-leader       a node removed by a committed configuration never
 *                        leads a term after the one in which the removal
 *                        committed, nor that term once it knows the removal
 *                        committed (a leader that removed itself steps down
 *                        at commit); a stale leader of an older term may
 *                        still believe it leads
 *   log-matching         an (index, term) pair always names the same entry
 *                        with the same predecessor term (by induction: Log
 *                        Matching)
 *   state-machine-safety every applied entry equals the globally committed
 *                        entry at that index; each node applies 1, 2, 3, ...
 *                        (after a snapshot install: from its index + 1); the
 *                        node's state machine equals the reference state
 *                        after the same index, after every step
 *   snapshot             a snapshot (taken, installed or restored) is the
 *                        committed state at its index: (index, term)
 *                        committed, state digest and configuration equal to
 *                        the committed ones there
 *   commit-durability    when an entry is first known committed, it is on the
 *                        disks of a majority of the voters of the applying
 *                        node's configuration in force — at the start or at
 *                        the end of that step (a leader's step appends at
 *                        most one CONFIG entry and may count under either) —
 *                        and it stays on a majority of the voters of the
 *                        latest committed configuration (a single follower
 *                        may still lose it to a stale leader of an older term)
 *   single-server-change consecutive committed configurations differ in one
 *                        server (added, removed, or promoted)
 *   config-consistency   the configuration the core reports in force is the
 *                        one its log implies
 *   read-linearizability a read served at node n with state s (applied index
 *                        a) reflects every entry committed before the read
 *                        started (a >= committed length then), no entry
 *                        proposed after it was served, and s is the committed
 *                        state at a (a >= the read index)
 *   commit-monotonic     a node's commit index never goes back (per
 *                        incarnation); applied <= commit
 *   term-monotonic       a node's term never goes back, even across restarts
 *   vote-once            a durable vote is never changed within a term
 *   update-contract      the update stream is consistent with itself and with
 *                        what the core reports (log end, contiguous writes)
 *   acked-durable        every acknowledged proposal is in the final committed
 *                        sequence and in every live member's log (final check)
 *   liveness             every proposal is resolved after heal (final check)
 *
 * The first violation is sticky: every later call returns false and the
 * report stays the one of the first violation. */
#ifndef HAMOK_TESTS_CHECKER_H
#define HAMOK_TESTS_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"

#define HAMOK_CHK_MAX_NODES 48
/* Configuration bit of a member id that is no node of the checker. */
#define HAMOK_CHK_FOREIGN (1ULL << 63)

typedef struct hamok_chk hamok_chk;

typedef struct hamok_chk_violation {
    const char *invariant; /* one of the names above */
    uint64_t time_ms;      /* virtual time given by hamok_chk_set_time() */
    int node;              /* -1 when not about one node */
    uint64_t index;        /* 0 when not about one entry */
    uint64_t term;
    char detail[320];
} hamok_chk_violation;

/* What one step of one node produced (fields mirror hamok_raft_update) and
 * the state the core reports after it. Zero-initialised optional parts are
 * not checked. */
typedef struct hamok_chk_step {
    int node;
    bool hard_state_changed;
    uint64_t hs_term;
    int hs_vote; /* node index voted for, -1 for none */

    uint64_t truncate_from;
    uint64_t persist_first;
    const hamok_entry *persist;
    size_t n_persist;

    /* A snapshot installed in this step (after the truncation, before the
     * entries of persist): its (index, term) and configuration. */
    bool installed;
    uint64_t installed_index;
    uint64_t installed_term;
    uint64_t installed_members; /* bitmask of node indexes */
    uint64_t installed_voters;

    uint64_t apply_first;
    const hamok_entry *apply;
    size_t n_apply;

    /* After the step. */
    bool is_leader;
    uint64_t term;
    uint64_t commit_index;
    bool has_core_log; /* when true, the view must end at (last_index, last_term) */
    uint64_t core_last_index;
    uint64_t core_last_term;
    bool has_core_config; /* the configuration the core reports in force */
    uint64_t core_members;
    uint64_t core_voters;
    bool has_sm; /* the node's state machine: applied index and digest */
    uint64_t sm_applied;
    uint64_t sm_hash;
} hamok_chk_step;

/* Returns NULL on allocation failure. 1 <= n_nodes <= HAMOK_CHK_MAX_NODES:
 * nodes 0..n-1 are the bootstrap voters, with ids hamok__id_from_u64(i + 1). */
hamok_chk *hamok_chk_new(int n_nodes);
void hamok_chk_destroy(hamok_chk **c);
/* A peer that joins later (its base configuration is empty). Returns its
 * node index, -1 when full. */
int hamok_chk_add_node(hamok_chk *c, const hamok_id *id);
int hamok_chk_n(const hamok_chk *c);

/* Virtual time stamped on reports. */
void hamok_chk_set_time(hamok_chk *c, uint64_t now_ms);

/* FNV-1a over (type, client, seq, data). */
uint64_t hamok_chk_entry_hash(const hamok_entry *e);
/* Bitmasks (members, voters) of a member list. */
void hamok_chk_members_mask(const hamok_chk *c, const hamok_member *ms, size_t n, uint64_t *members,
                            uint64_t *voters);

/* One node step (see hamok_chk_step). */
bool hamok_chk_node_step(hamok_chk *c, const hamok_chk_step *s);
/* A durable log write completed: truncate (if truncate_from != 0), then the
 * entries at first.. . Both are clipped at the disk's snapshot: what it
 * covers is committed and stays. */
bool hamok_chk_disk_write(hamok_chk *c, int node, uint64_t truncate_from, uint64_t first,
                          const hamok_entry *e, size_t n);
/* A snapshot at (index, term) with that configuration and state digest is
 * durable on the node's disk (taken locally, or installed from a leader).
 * log_held: the disk's log held (index, term), so the entries after it stay;
 * otherwise the log was reset. */
bool hamok_chk_disk_snapshot(hamok_chk *c, int node, uint64_t index, uint64_t term,
                             uint64_t members, uint64_t voters, uint64_t sm_hash, bool log_held);
/* Restore a node's disk wholesale (a preset state before its first start). */
bool hamok_chk_disk_preset(hamok_chk *c, int node, uint64_t term, int vote, const hamok_entry *e,
                           size_t n);
/* The node crashed: its in-memory state is gone, its proposals' clients too. */
void hamok_chk_crash(hamok_chk *c, int node);
/* Memory mode: the node crashed and lost everything (disk included); its id
 * never comes back. Its acknowledgements may still be in a leader's counts,
 * so for commit-durability its disk keeps counting as it was while the node
 * is a voter (memory mode assumes only a minority loses its state at once);
 * hamok_chk_wipe_safe() checks that the others keep every committed entry. */
void hamok_chk_wipe(hamok_chk *c, int node);
/* True when every committed entry stays on a majority of the voters of the
 * latest committed configuration and of the configuration in force of every
 * node of `nodes` (a bitmask) without `node`'s disk (and those of nodes
 * already wiped): wiping it cannot lose a committed entry. */
bool hamok_chk_wipe_safe(const hamok_chk *c, int node, uint64_t nodes);
/* The node restarted from its disk; the core reports these values, the
 * state machine restored from the disk's snapshot (or empty) has sm_hash. */
bool hamok_chk_restart(hamok_chk *c, int node, uint64_t term, uint64_t commit_index,
                       uint64_t applied_index, uint64_t last_index, uint64_t sm_hash);

/* A client proposal accepted by `node` at index.. with `term`. */
bool hamok_chk_propose(hamok_chk *c, int node, uint64_t index, uint64_t term, const hamok_entry *e,
                       size_t n);

/* Reads: hamok_chk_read_start() when a read starts (the committed length
 * then, which the read must reflect); hamok_chk_read() when it is served:
 * `index` the read index the barrier returned, `applied`/`sm_hash` the state
 * it was served from, at virtual time served_ms. */
uint64_t hamok_chk_read_start(const hamok_chk *c);
bool hamok_chk_read(hamok_chk *c, int node, uint64_t lower, uint64_t start_ms, uint64_t index,
                    uint64_t applied, uint64_t sm_hash, uint64_t served_ms);

/* Final checks (after the heal phase): acked-durable and liveness.
 * live_mask: bit i set when node i is up (and a member). */
bool hamok_chk_final(hamok_chk *c, uint64_t live_mask);

/* NULL while no violation was found. */
const hamok_chk_violation *hamok_chk_failed(const hamok_chk *c);

/* Introspection. */
uint64_t hamok_chk_committed_len(const hamok_chk *c);
bool hamok_chk_committed_at(const hamok_chk *c, uint64_t index, uint64_t *term, uint64_t *hash);
/* The latest committed configuration (members; *voters if not NULL). */
uint64_t hamok_chk_committed_members(const hamok_chk *c, uint64_t *voters);
/* The configuration in force in the node's view (members; *voters). */
uint64_t hamok_chk_view_members(const hamok_chk *c, int node, uint64_t *voters);
/* The configuration in force in the node's view comes from a CONFIG entry
 * that is not (yet) committed: a membership change in progress. */
bool hamok_chk_view_config_pending(const hamok_chk *c, int node);
/* Removed from the configuration by a committed entry. */
bool hamok_chk_is_removed(const hamok_chk *c, int node);
uint64_t hamok_chk_view_len(const hamok_chk *c, int node);
bool hamok_chk_view_at(const hamok_chk *c, int node, uint64_t index, uint64_t *term,
                       uint64_t *hash);
uint64_t hamok_chk_disk_len(const hamok_chk *c, int node);
/* Leader of `term` observed so far (-1 if none). */
int hamok_chk_leader_of(const hamok_chk *c, uint64_t term);

typedef struct hamok_chk_stats {
    uint64_t proposals;
    uint64_t acked;
    uint64_t lost;      /* resolved as not committed (another term won the index) */
    uint64_t leaders;   /* (term, leader) pairs seen */
    uint64_t committed; /* length of the committed sequence */
    uint64_t configs;   /* committed CONFIG entries */
    uint64_t installs;  /* snapshots installed from a leader */
    uint64_t snapshots; /* snapshots made durable (taken or installed) */
    uint64_t reads;     /* reads checked */
} hamok_chk_stats;
void hamok_chk_stats_get(const hamok_chk *c, hamok_chk_stats *out);

#endif
