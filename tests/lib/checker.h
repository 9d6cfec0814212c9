/* Raft history checker for the simulator (tests/lib/sim.c) and for hand-made
 * histories (tests/sim/test_checker.c).
 *
 * The checker keeps a model of every node — the in-memory log as the update
 * stream describes it (the "view"), the durable log (the "disk"), the hard
 * state, the commit and applied indexes — plus global facts: which node led
 * which term, an oracle of every (index, term) ever stored, the committed
 * sequence, and the client proposals. Every call is incremental (O(entries
 * touched)); the simulator calls it after every event.
 *
 * Invariants (names as reported):
 *   election-safety      at most one leader per term over the whole history
 *   leader-append-only   a leader never truncates or overwrites its log while
 *                        it stays leader of the same term
 *   leader-completeness  a node that becomes leader of term T holds every
 *                        entry committed in a term < T (Raft §5.4); the
 *                        commit term is bounded by the term of the node that
 *                        first applied the entry
 *   log-matching         an (index, term) pair always names the same entry
 *                        with the same predecessor term (by induction: Log
 *                        Matching)
 *   state-machine-safety every applied entry equals the globally committed
 *                        entry at that index; each node applies 1, 2, 3, ...
 *   commit-durability    when an entry is first known committed, a majority
 *                        of disks hold it, and a majority keeps holding it
 *                        (a single follower may still lose it to a stale
 *                        leader of an older term)
 *   commit-monotonic     a node's commit index never goes back (per
 *                        incarnation); applied <= commit
 *   term-monotonic       a node's term never goes back, even across restarts
 *   vote-once            a durable vote is never changed within a term
 *   update-contract      the update stream is consistent with itself and with
 *                        what the core reports (log end, contiguous writes)
 *   acked-durable        every acknowledged proposal is in the final committed
 *                        sequence and in every live node's log (final check)
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

#define HAMOK_CHK_MAX_NODES 8

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
 * the state the core reports after it. */
typedef struct hamok_chk_step {
    int node;
    bool hard_state_changed;
    uint64_t hs_term;
    int hs_vote; /* node index voted for, -1 for none */

    uint64_t truncate_from;
    uint64_t persist_first;
    const hamok_entry *persist;
    size_t n_persist;

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
} hamok_chk_step;

/* Returns NULL on allocation failure. 1 <= n_nodes <= HAMOK_CHK_MAX_NODES. */
hamok_chk *hamok_chk_new(int n_nodes);
void hamok_chk_destroy(hamok_chk **c);

/* Virtual time stamped on reports. */
void hamok_chk_set_time(hamok_chk *c, uint64_t now_ms);

/* FNV-1a over (type, client, seq, data). */
uint64_t hamok_chk_entry_hash(const hamok_entry *e);

/* One node step (see hamok_chk_step). */
bool hamok_chk_node_step(hamok_chk *c, const hamok_chk_step *s);
/* A durable log write completed: truncate (if truncate_from != 0), then the
 * entries at first.. . */
bool hamok_chk_disk_write(hamok_chk *c, int node, uint64_t truncate_from, uint64_t first,
                          const hamok_entry *e, size_t n);
/* Restore a node's disk wholesale (a preset state before its first start). */
bool hamok_chk_disk_preset(hamok_chk *c, int node, uint64_t term, int vote, const hamok_entry *e,
                           size_t n);
/* The node crashed: its in-memory state is gone, its proposals' clients too. */
void hamok_chk_crash(hamok_chk *c, int node);
/* The node restarted from its disk; the core reports these values. */
bool hamok_chk_restart(hamok_chk *c, int node, uint64_t term, uint64_t commit_index,
                       uint64_t applied_index, uint64_t last_index);

/* A client proposal accepted by `node` at index.. with `term`. */
bool hamok_chk_propose(hamok_chk *c, int node, uint64_t index, uint64_t term, const hamok_entry *e,
                       size_t n);

/* Final checks (after the heal phase): acked-durable and liveness.
 * live_mask: bit i set when node i is up. */
bool hamok_chk_final(hamok_chk *c, unsigned live_mask);

/* NULL while no violation was found. */
const hamok_chk_violation *hamok_chk_failed(const hamok_chk *c);

/* Introspection. */
uint64_t hamok_chk_committed_len(const hamok_chk *c);
bool hamok_chk_committed_at(const hamok_chk *c, uint64_t index, uint64_t *term, uint64_t *hash);
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
} hamok_chk_stats;
void hamok_chk_stats_get(const hamok_chk *c, hamok_chk_stats *out);

#endif
