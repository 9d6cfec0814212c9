/* Discovery and membership upkeep (DESIGN.md §1 decision 4), sans-I/O.
 *
 * Discovery proposes, the log decides:
 *  - A peer that wants to be a member broadcasts HELLO (its endpoint, its
 *    leader if it knows one) every hello period. Members answer a HELLO from
 *    a non-member with ENDPOINT_STATES (their configuration with endpoints,
 *    leader, term, commit index) sent to that peer.
 *  - A non-member that learns a leader sends it JOIN (repeated every hello
 *    period until it is a member). The leader turns a JOIN into a membership
 *    change (add as learner; the Raft core promotes it once caught up).
 *  - A brand-new cluster: a peer that has heard no member for the discovery
 *    window, and has heard HELLO from at least bootstrap_expect - 1 other
 *    would-be members, founds the cluster if its id is the smallest of them
 *    (the others then join it like anyone else).
 *  - The leader removes a member it has not heard from for peer_timeout
 *    (through the log; it never removes itself, and waits peer_timeout after
 *    its own election before judging anyone).
 *  - A member that hears from the leader that it is not in the configuration
 *    (removed while partitioned) joins again, unless it is leaving.
 *  - A leaving peer sends LEAVE to the leader until the leader answers with
 *    an ENDPOINT_STATES of the committed configuration without it.
 *
 * Time comes in with every call (now_ms); no clock, thread or socket here.
 * Thread: the node's loop thread only. */
#ifndef HAMOK_GRID_GRID_H
#define HAMOK_GRID_GRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"
#include "util/id.h"

typedef struct hamok_grid hamok_grid;

typedef struct hamok_grid_options {
    hamok_id self;
    const char *endpoint;      /* copied */
    uint32_t hello_ms;         /* HELLO / JOIN / LEAVE repeat period */
    uint32_t discovery_ms;     /* silence before founding a cluster */
    uint32_t peer_timeout_ms;  /* 0 = never remove silent members */
    uint32_t bootstrap_expect; /* >= 1 */
} hamok_grid_options;

/* What the node knows right now (from its Raft core). */
typedef struct hamok_grid_view {
    bool is_member; /* in the latest configuration */
    bool is_leader;
    bool has_leader;
    hamok_id leader;
    uint64_t term;
    uint64_t commit_index;
    const hamok_member *members; /* latest configuration */
    size_t n_members;
    const hamok_member *committed; /* configuration in force at the commit index */
    size_t n_committed;
    bool founded; /* the Raft core has state (a log, a term or a configuration) */
} hamok_grid_view;

/* A membership change the leader should propose now. */
typedef struct hamok_grid_change {
    bool add; /* true: add as learner; false: remove */
    hamok_id id;
    const char *endpoint; /* add: borrowed until the next call */
} hamok_grid_change;

/* Output of a call; every pointer borrowed until the next call. */
typedef struct hamok_grid_out {
    const hamok_msg *msgs; /* src/dst filled */
    size_t n_msgs;
    bool found; /* found a new cluster now (with this peer as its only voter) */
    /* Endpoints learned (peer, endpoint) for the transport. */
    const hamok_member *learned;
    size_t n_learned;
    uint64_t next_deadline_ms;
} hamok_grid_out;

hamok_status hamok__grid_new(hamok_grid **out, const hamok_grid_options *o);
void hamok__grid_destroy(hamok_grid **g);

/* Start (join requested) / leave. */
void hamok__grid_join(hamok_grid *g, uint64_t now_ms);
void hamok__grid_leave(hamok_grid *g, uint64_t now_ms);
bool hamok__grid_joining(const hamok_grid *g);
bool hamok__grid_leaving(const hamok_grid *g);
/* The leader confirmed this peer is not in its committed configuration
 * while leaving. */
bool hamok__grid_left(const hamok_grid *g);
/* The commit index the leader reported when this peer first heard of it
 * (0 if none): join() waits to apply this far. */
uint64_t hamok__grid_join_commit(const hamok_grid *g);

/* A frame from `from` arrived (any type): liveness. */
void hamok__grid_heard(hamok_grid *g, const hamok_id *from, uint64_t now_ms);

/* Handle HELLO, ENDPOINT_STATES, JOIN, LEAVE. */
hamok_status hamok__grid_receive(hamok_grid *g, uint64_t now_ms, const hamok_msg *m,
                                 const hamok_grid_view *v, hamok_grid_out *out);
/* Timers. */
hamok_status hamok__grid_tick(hamok_grid *g, uint64_t now_ms, const hamok_grid_view *v,
                              hamok_grid_out *out);

/* Leader: the next membership change to propose (false: none). The node
 * reports the outcome with hamok__grid_change_done(): proposed (or nothing to
 * do) removes it from the queue; otherwise it stays for the next call. */
bool hamok__grid_next_change(hamok_grid *g, uint64_t now_ms, const hamok_grid_view *v,
                             hamok_grid_change *out);
void hamok__grid_change_done(hamok_grid *g, const hamok_id *id, bool add);

/* Leadership: when this peer became leader (judging silence starts then). */
void hamok__grid_became_leader(hamok_grid *g, uint64_t now_ms);

/* Milliseconds since `peer` was last heard from (UINT64_MAX: never). */
uint64_t hamok__grid_silence(const hamok_grid *g, const hamok_id *peer, uint64_t now_ms);

#endif
