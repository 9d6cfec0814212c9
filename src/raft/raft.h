/* Sans-I/O Raft core.
 *
 * One entry point, hamok__raft_step(): feed one event (a received message, the
 * passage of time, a proposal, or the news that entries reached stable
 * storage) together with the current time; get back an update that says what
 * to persist, what to send, what to apply and when to call again. The core has
 * no clock, thread, socket, file or global random source: time comes in with
 * every event and randomness from a PRNG seeded through the options. The same
 * inputs therefore give the same outputs, bit for bit (tests/sim relies on it).
 *
 * Thread: a hamok_raft is used by one thread at once: the node's loop
 * thread. Nothing here is thread-safe.
 *
 * See docs/RAFT.md for the rules and the paper sections they come from. */
#ifndef HAMOK_RAFT_RAFT_H
#define HAMOK_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"
#include "util/id.h"

typedef struct hamok_raft hamok_raft;

typedef enum hamok_raft_role {
    HAMOK_RAFT_FOLLOWER = 1,
    HAMOK_RAFT_PRECANDIDATE = 2, /* running a pre-vote; term unchanged */
    HAMOK_RAFT_CANDIDATE = 3,
    HAMOK_RAFT_LEADER = 4,
} hamok_raft_role;

const char *hamok__raft_role_name(hamok_raft_role role);

typedef struct hamok_raft_options {
    hamok_id self;
    /* Bootstrap configuration (copied): every listed peer is a voter. Used
     * when the log (or a restored log) holds no configuration entry; the
     * first leader writes it into the log as a CONFIG entry (in place of its
     * no-op), so a restart needs it no more. Empty for a peer that joins an
     * existing cluster (and for a restart from durable state): it learns the
     * configuration from the leader or its log and never campaigns until it
     * is a voter. */
    const hamok_id *voters;
    size_t n_voters;
    /* Endpoints of the bootstrap voters (copied), parallel to `voters`;
     * NULL, or a NULL element, = none (""). They travel in the configuration
     * so that peers of a transport that connects by address (zmq) can reach
     * the founders. */
    const char *const *voter_endpoints;
    uint32_t election_timeout_ms; /* base T; each timeout is drawn from [T, 2T) */
    uint32_t heartbeat_ms;        /* leader heartbeat period; < election_timeout_ms */
    uint32_t max_inflight;        /* AppendEntries in flight per follower (pipelining) */
    size_t max_batch_bytes;       /* entry bytes per AppendEntries (keep under the frame limit) */
    uint32_t max_batch_entries;   /* entries per AppendEntries */
    size_t max_entry_bytes;       /* one proposed entry (0 = max_batch_bytes); an entry
                                   * larger than max_batch_bytes travels alone */
    bool pre_vote;                /* thesis §9.6; default true */
    bool check_quorum;            /* thesis §6.2; default true */
    uint64_t seed;                /* PRNG seed for election jitter */
    bool auto_promote;            /* leader promotes caught-up learners; default true */
    /* Compaction (thesis §5): ask for a snapshot once this many entries, or
     * this many bytes of entry data, were applied since the last one (0 =
     * never by that measure); keep `snapshot_trailing` entries in the log
     * after it so followers slightly behind need no snapshot. Defaults:
     * 16384 entries, 64 MiB, 1024 trailing. */
    uint64_t snapshot_entries;
    uint64_t snapshot_bytes;
    uint64_t snapshot_trailing;
} hamok_raft_options;

/* Defaults: election 1000 ms, heartbeat 100 ms, 64 in flight, 256 KiB and 4096
 * entries per batch, pre-vote and check-quorum on, seed 0. self/voters empty. */
void hamok__raft_options_default(hamok_raft_options *o);

/* Create a core. HAMOK_ERR_INVALID for bad options (no voters, duplicate
 * voters, heartbeat >= election timeout, zero limits), HAMOK_ERR_NOMEM. */
hamok_status hamok__raft_new(hamok_raft **out, const hamok_raft_options *o);

/* Load the latest durable snapshot (crash recovery), before
 * hamok__raft_restore() and the first step: the state machine was restored
 * from it by the caller, so it counts as applied and committed. `members` is
 * the configuration stored with it (copied).
 * HAMOK_ERR_STATE after the first step or once the log is loaded;
 * HAMOK_ERR_INVALID for index 0 or term 0; HAMOK_ERR_NOMEM. */
hamok_status hamok__raft_restore_snapshot(hamok_raft *r, uint64_t index, uint64_t term,
                                          const hamok_member *members, size_t n);

/* Load durable state (crash recovery) before the first step: the term, the
 * vote (NULL for none) and the stored log, entries[0] being the entry right
 * after the restored snapshot (index 1 without one). Entry data is copied.
 * Everything restored counts as persisted. On any error the core must be
 * destroyed (it may hold part of the state).
 * HAMOK_ERR_STATE after the first step; HAMOK_ERR_INVALID if an entry's term
 * exceeds `term` or terms decrease; HAMOK_ERR_NOMEM. */
hamok_status hamok__raft_restore(hamok_raft *r, uint64_t term, const hamok_id *vote,
                                 const hamok_entry *entries, size_t n);

/* NULL-safe; sets *r = NULL. */
void hamok__raft_destroy(hamok_raft **r);

typedef enum hamok_raft_event_type {
    HAMOK_RAFT_EV_TICK = 1,       /* time passed; fire whatever timers are due */
    HAMOK_RAFT_EV_RECEIVE = 2,    /* a message addressed to this peer arrived */
    HAMOK_RAFT_EV_PROPOSE = 3,    /* append entries to the log (leader only) */
    HAMOK_RAFT_EV_PERSISTED = 4,  /* stored entries up to (index, term) are durable */
    HAMOK_RAFT_EV_READ_INDEX = 5, /* start a linearizable read barrier (thesis §6.4) */
    HAMOK_RAFT_EV_TRANSFER = 6,   /* leader: hand leadership to another voter (thesis §3.10) */
    HAMOK_RAFT_EV_CHANGE = 7,     /* leader: one membership change through the log (thesis §4) */
    HAMOK_RAFT_EV_SNAPSHOT_TAKEN = 8, /* a snapshot at u.snapshot.index is durable */
} hamok_raft_event_type;

typedef enum hamok_raft_change_op {
    HAMOK_RAFT_ADD_LEARNER = 1,
    HAMOK_RAFT_PROMOTE = 2,
    HAMOK_RAFT_REMOVE = 3,
} hamok_raft_change_op;

typedef struct hamok_raft_event {
    hamok_raft_event_type type;
    uint64_t now_ms; /* monotonic; a smaller value than before is treated as no time passed */
    union {
        /* RECEIVE: the core may take ownership of entry data (it sets the
         * entry's data pointer to NULL); the caller still owns the message and
         * releases it with hamok__msg_clear(). */
        hamok_msg *msg;
        /* PROPOSE: entries are copied; their `term` is ignored. */
        struct {
            const hamok_entry *entries;
            size_t n;
        } propose;
        struct {
            uint64_t index;
            uint64_t term;
        } persisted;
        /* READ_INDEX: `id` is the caller's; the answer comes back in
         * update.reads (possibly in a later step) with the same id. */
        struct {
            uint64_t id;
        } read;
        /* TRANSFER: to `target`, or (has_target false) to the most
         * up-to-date voter. */
        struct {
            bool has_target;
            hamok_id target;
        } transfer;
        /* CHANGE: add `id` as a learner (with `endpoint`, may be NULL),
         * promote a learner to voter, or remove a member. An add of a member
         * with a non-empty endpoint other than its recorded one records the
         * new endpoint (a configuration entry with the same roles). At most
         * one change is in flight, and only after the leader committed an
         * entry of its term: otherwise HAMOK_ERR_BUSY. A change that changes
         * nothing (add of a member at its recorded endpoint, promote of a
         * voter) returns HAMOK_OK with update.proposed_index 0. */
        struct {
            hamok_raft_change_op op;
            hamok_id id;
            const char *endpoint;
        } change;
        /* SNAPSHOT_TAKEN: the caller durably stored a snapshot of its state
         * machine as of `index` (<= the applied index) together with the
         * configuration hamok__raft_config_at(index) gave; the log before it
         * may now be compacted. */
        struct {
            uint64_t index;
        } snapshot;
    } u;
} hamok_raft_event;

/* A read barrier that completed. When status is HAMOK_OK, a read of the state
 * machine is linearizable once it has applied up to `index`. Otherwise status
 * is HAMOK_ERR_NO_LEADER (no leader known to ask), HAMOK_ERR_NOT_LEADER
 * (leadership changed before confirmation; retry) and index is 0. */
typedef struct hamok_raft_read {
    uint64_t id;
    hamok_status status;
    uint64_t index;
} hamok_raft_read;

/* Leader: send the chunk of the snapshot at `index` that starts at byte
 * `offset` to `to`, as an INSTALL_SNAPSHOT message with the given term,
 * last_index = index, last_term = snap_term, the members (on the chunk at
 * offset 0) and done set on the last chunk. The caller chooses the chunk size
 * (at most its frame limit) and reads the bytes from its snapshot store. */
typedef struct hamok_raft_snapshot_send {
    hamok_id to;
    uint64_t term;
    uint64_t index;
    uint64_t snap_term;
    uint64_t offset;
    const hamok_member *members;
    size_t n_members;
} hamok_raft_snapshot_send;

/* Follower: a chunk of an incoming snapshot to store at `offset` (offset 0
 * starts a new one, discarding any partial one). */
typedef struct hamok_raft_snapshot_chunk {
    uint64_t index;
    uint64_t term;
    uint64_t offset;
    const uint8_t *data;
    size_t len;
    bool done;
    const hamok_member *members; /* with the chunk at offset 0 */
    size_t n_members;
} hamok_raft_snapshot_chunk;

/* What the caller must do after a step, in this order:
 *  1. If hard_state_changed: durably store (term, vote) before sending any
 *     message of this update (a vote must never be granted twice).
 *     If has_chunk: store it before sending; if snapshot_installed, make the
 *     snapshot durable, restore the state machine from it and drop the stored
 *     log up to installed_index — all of it when the log does not hold
 *     (installed_index, installed_term) (Figure 13; what
 *     hamok__storage_snapshot_commit() does) — all before sending. That drop
 *     is not reported as a truncation.
 *  2. Log: if truncate_from != 0, drop stored entries with index >=
 *     truncate_from (always > any snapshot index: only uncommitted entries
 *     are truncated); then store persist[0..n_persist) at indexes
 *     persist_first.. . This may complete later (group commit): report it with
 *     a HAMOK_RAFT_EV_PERSISTED event naming the last stored (index, term).
 *     A PERSISTED event for entries that were truncated meanwhile is ignored.
 *  3. Send msgs[0..n_msgs) (src and dst are filled; the envelope's cluster is
 *     the caller's business).
 *  4. Apply apply[0..n_apply) (indexes apply_first..) in order: they are
 *     committed. The core counts them applied once returned.
 *     Send the snapshot chunks of snapshot_sends. If snapshot_wanted, take a
 *     snapshot as of snapshot_want_index (the applied index after this step)
 *     with the configuration in snapshot_members, and report it with a
 *     SNAPSHOT_TAKEN event once durable (it may take many steps).
 *  5. Call hamok__raft_step() with a TICK no later than next_deadline_ms.
 * Every pointer is borrowed from the core and valid until the next call into
 * it. */
typedef struct hamok_raft_update {
    bool hard_state_changed;
    uint64_t term;
    bool has_vote;
    hamok_id vote;

    uint64_t truncate_from;
    uint64_t persist_first;
    const hamok_entry *persist;
    size_t n_persist;

    const hamok_msg *msgs;
    size_t n_msgs;

    uint64_t apply_first;
    const hamok_entry *apply;
    size_t n_apply;

    /* PROPOSE: index and term of the first appended entry (the rest follow
     * consecutively). An entry is committed when it is applied at that index
     * with that term; a different term there means it was lost to a new leader. */
    uint64_t proposed_index;
    uint64_t proposed_term;

    /* Read barriers completed in this step (READ_INDEX events of this or
     * earlier steps, on this peer). */
    const hamok_raft_read *reads;
    size_t n_reads;

    bool has_chunk;
    hamok_raft_snapshot_chunk chunk;
    bool snapshot_installed;
    uint64_t installed_index;
    uint64_t installed_term;
    const hamok_raft_snapshot_send *snapshot_sends;
    size_t n_snapshot_sends;
    bool snapshot_wanted;
    uint64_t snapshot_want_index;
    const hamok_member *snapshot_members;
    size_t n_snapshot_members;

    /* The configuration in force (the latest in the log, committed or not,
     * thesis §4.1), set when it changed since the previous update (the first
     * update always carries it); borrowed. */
    bool config_changed;
    const hamok_member *members;
    size_t n_members;
    uint64_t config_index; /* log index of its CONFIG entry; 0 = bootstrap */

    bool role_changed;   /* role or term changed in this step */
    bool leader_changed; /* known leader changed in this step */

    uint64_t next_deadline_ms;
} hamok_raft_update;

/* Feed one event. `update` is overwritten (never NULL). Returns HAMOK_OK;
 * HAMOK_ERR_NOT_FOUND for a CHANGE naming a non-member (promote, remove);
 * HAMOK_ERR_NOT_LEADER for a proposal or a transfer on a non-leader (nothing
 * appended); HAMOK_ERR_BUSY for a proposal while leadership is being
 * transferred; HAMOK_ERR_STATE for a transfer with no other voter;
 * HAMOK_ERR_INVALID for a malformed event (unknown type, PROPOSE with n == 0
 * or an unknown entry type); HAMOK_ERR_NOMEM (the core stays consistent; the
 * event had no effect or a partial, safe effect). Messages that make no sense
 * (stale, from non-members, wrong destination) are ignored, not errors. */
hamok_status hamok__raft_step(hamok_raft *r, const hamok_raft_event *ev, hamok_raft_update *update);

/* Introspection (tests, stats). */
hamok_raft_role hamok__raft_role(const hamok_raft *r);
uint64_t hamok__raft_term(const hamok_raft *r);
bool hamok__raft_leader(const hamok_raft *r, hamok_id *out); /* false if none known */
bool hamok__raft_vote(const hamok_raft *r, hamok_id *out);   /* false if none */
const hamok_id *hamok__raft_self(const hamok_raft *r);
uint64_t hamok__raft_commit_index(const hamok_raft *r);
uint64_t hamok__raft_applied_index(const hamok_raft *r);
uint64_t hamok__raft_persisted_index(const hamok_raft *r);
uint64_t hamok__raft_first_index(const hamok_raft *r);
uint64_t hamok__raft_last_index(const hamok_raft *r);
/* Term of the entry at `index` (0 for index 0); false if not in the log. */
bool hamok__raft_term_at(const hamok_raft *r, uint64_t index, uint64_t *term);
/* Borrowed pointer to the entry at `index`, NULL if not in the log. */
const hamok_entry *hamok__raft_entry(const hamok_raft *r, uint64_t index);
/* The configuration in force at log index `index` (borrowed until the next
 * step); NULL if `index` is below the oldest configuration kept. */
const hamok_member *hamok__raft_config_at(const hamok_raft *r, uint64_t index, size_t *n);
/* Index and term of the latest snapshot (0 if none). */
uint64_t hamok__raft_snapshot_index(const hamok_raft *r, uint64_t *term);
/* The configuration in force (borrowed until the next step) and its index. */
const hamok_member *hamok__raft_members(const hamok_raft *r, size_t *n, uint64_t *index);
/* On a leader: the highest index known replicated on `peer` (false when not
 * leader or `peer` is no member). */
bool hamok__raft_match(const hamok_raft *r, const hamok_id *peer, uint64_t *match);

#ifdef HAMOK_RAFT_TESTING
/* Test-only fault injection: compiled only into the test build of the core
 * (target hamok_raft_testing); release builds contain none of this. */
typedef enum hamok_raft_bug {
    HAMOK_RAFT_BUG_NONE = 0,
    HAMOK_RAFT_BUG_VOTE_IGNORES_LAST_TERM, /* up-to-date check on last index only */
    HAMOK_RAFT_BUG_COMMIT_OLD_TERM,        /* commit by counting entries of any term */
    HAMOK_RAFT_BUG_QUORUM_RECENT_PEERS,    /* quorum over peers heard from lately */
} hamok_raft_bug;
extern hamok_raft_bug hamok__raft_bug;
#endif

#endif
