/* A Hamok node: one peer of a cluster. It owns a transport, runs Raft and the
 * discovery protocol, applies committed entries to every collection, and
 * serves the collection handles (hamok/map.h, ...).
 *
 * Threads. A node runs on one loop thread (its own by default, or the
 * application's in embedded mode, see hamok_node_process()). Every callback
 * (events, _async completions, collection events, the log callback for
 * messages of the loop) fires on that thread; callbacks must not block and
 * must not call blocking Hamok functions (they return HAMOK_ERR_STATE there).
 * Every other function is safe from any thread.
 *
 * Blocking functions take `timeout_ms` (< 0 = wait forever, 0 = do not wait
 * beyond what is already known). `_async` variants take (cb, ud); the
 * callback fires exactly once on the loop thread, with HAMOK_ERR_CLOSED when
 * the node is destroyed first. */
#ifndef HAMOK_NODE_H
#define HAMOK_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/id.h"
#include "hamok/status.h"
#include "hamok/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Logging */

typedef enum hamok_log_level {
    HAMOK_LOG_ERROR = 1,
    HAMOK_LOG_WARN = 2,
    HAMOK_LOG_INFO = 3,
    HAMOK_LOG_DEBUG = 4,
    HAMOK_LOG_TRACE = 5,
} hamok_log_level;

/** A log sink. `module` is "node", "raft", "grid", "storage", "transport"...;
 * `msg` is one line without a newline. Both borrowed. Thread: any (the node's
 * loop thread, or the thread of the API call that logs). */
typedef void (*hamok_log_fn)(void *ud, hamok_log_level level, const char *module, const char *msg);

/** Name of a level ("error", "warn", ...). Thread: any. */
HAMOK_API const char *hamok_log_level_str(hamok_log_level level);

/* ------------------------------------------------------------------------ */
/* Configuration (a value object: set fields, hand it to hamok_node_new(),
 * which copies what it needs; reuse or destroy it afterwards).
 * Thread: a config is used by one thread at a time. Setters return HAMOK_OK or
 * HAMOK_ERR_INVALID (the config is then unchanged). */

typedef struct hamok_config hamok_config;

typedef enum hamok_fsync_mode {
    HAMOK_FSYNC_ALWAYS = 0, /**< fsync before acknowledging (default) */
    HAMOK_FSYNC_BATCH = 1,  /**< group commit: one fsync per batch_delay_ms */
} hamok_fsync_mode;

/** Defaults: cluster "hamok", fresh random peer id, no storage directory
 * (in-memory: a restart is a new peer), election timeout 1000 ms, heartbeat
 * 100 ms, peer timeout 5000 ms, request timeout 5000 ms, bootstrap_expect 1,
 * own loop thread, log level from the HAMOK_LOG environment variable
 * (error|warn|info|debug|trace; default warn) to stderr.
 * HAMOK_OK, HAMOK_ERR_NOMEM. */
HAMOK_API hamok_status hamok_config_new(hamok_config **out);
HAMOK_API void hamok_config_destroy(hamok_config **cfg);

/** Cluster name (1..255 bytes): frames of other clusters are dropped. */
HAMOK_API hamok_status hamok_config_set_cluster(hamok_config *cfg, const char *name);
/** Fixed peer id (canonical UUID text). Ignored when a storage directory
 * already holds an id (that one wins). */
HAMOK_API hamok_status hamok_config_set_peer_id(hamok_config *cfg, const char *uuid);
/** Durable mode: write-ahead log + snapshots in `dir` (created if missing);
 * NULL = in-memory. */
HAMOK_API hamok_status hamok_config_set_storage_dir(hamok_config *cfg, const char *dir);
/** fsync policy of the durable mode (batch_delay_ms used by HAMOK_FSYNC_BATCH, 1..1000). */
HAMOK_API hamok_status hamok_config_set_sync(hamok_config *cfg, hamok_fsync_mode mode,
                                             uint32_t batch_delay_ms);
/** Raft timing: election timeout base (each timeout is drawn from [T, 2T))
 * and heartbeat period; heartbeat < election timeout, both >= 1. */
HAMOK_API hamok_status hamok_config_set_timing(hamok_config *cfg, uint32_t election_timeout_ms,
                                               uint32_t heartbeat_ms);
/** A member silent this long is removed from the configuration by the
 * leader (>= 2 election timeouts; 0 = never remove). */
HAMOK_API hamok_status hamok_config_set_peer_timeout(hamok_config *cfg, uint32_t ms);
/** Default deadline of _async requests that take none. */
HAMOK_API hamok_status hamok_config_set_request_timeout(hamok_config *cfg, uint32_t ms);
/** A brand-new cluster is founded only once this many peers (this one
 * included) have announced themselves, by the one with the smallest id; the
 * others join it. 1 (default): a peer that finds no cluster founds one. */
HAMOK_API hamok_status hamok_config_set_bootstrap_expect(hamok_config *cfg, uint32_t peers);
/** Compaction: snapshot after this many applied entries (0 = never by count). */
HAMOK_API hamok_status hamok_config_set_snapshot_entries(hamok_config *cfg, uint64_t entries);
/** Embedded mode: no loop thread; the application drives the node with
 * hamok_node_fd() / hamok_node_next_timeout_ms() / hamok_node_process(). */
HAMOK_API hamok_status hamok_config_set_embedded(hamok_config *cfg, bool embedded);
/** Log sink and level (fn NULL = stderr). */
HAMOK_API hamok_status hamok_config_set_log(hamok_config *cfg, hamok_log_fn fn, void *ud,
                                            hamok_log_level level);

/* ------------------------------------------------------------------------ */
/* Node */

typedef struct hamok_node hamok_node;

/** Completion of an _async call: fires once, on the loop thread. */
typedef void (*hamok_done_fn)(void *ud, hamok_status status);

/** Create a node and start its transport (and loop thread unless embedded).
 * Takes ownership of *transport (sets it to NULL), also on failure.
 * The node does not talk to anyone until hamok_node_join().
 * HAMOK_OK; HAMOK_ERR_INVALID (NULL arguments, transport ABI mismatch);
 * HAMOK_ERR_IO / HAMOK_ERR_CORRUPT (storage directory unusable: the log names
 * the file and offset); HAMOK_ERR_BUSY (directory locked by another process);
 * HAMOK_ERR_TRANSPORT; HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_node_new(hamok_node **out, const hamok_config *cfg,
                                      hamok_transport **transport);

/** Stop everything and free the node: pending _async calls complete with
 * HAMOK_ERR_CLOSED, blocking calls in other threads return HAMOK_ERR_CLOSED,
 * collection handles become invalid (close them first). It does not leave
 * the cluster (call hamok_node_leave() for that). NULL-safe; sets *node = NULL.
 * Thread: any but the loop thread. */
HAMOK_API void hamok_node_destroy(hamok_node **node);

/** Discover the cluster and become a member: announce this peer, find the
 * leader (or found the cluster, see bootstrap_expect), ask to join, and wait
 * until this peer is a voter and has applied everything committed when it
 * joined. A node restarted from its storage directory is already a member
 * and returns once caught up.
 * HAMOK_OK; HAMOK_ERR_TIMEOUT (still trying: the node keeps going and a later
 * join() may succeed); HAMOK_ERR_CLOSED; HAMOK_ERR_STATE (on the loop thread). */
HAMOK_API hamok_status hamok_node_join(hamok_node *node, int timeout_ms);
HAMOK_API void hamok_node_join_async(hamok_node *node, int timeout_ms, hamok_done_fn cb, void *ud);

/** Leave the cluster gracefully: a leader hands leadership to the most
 * up-to-date voter first; then this peer's removal is committed. After that
 * the node stays alive but is no member; destroy it.
 * HAMOK_OK; HAMOK_ERR_TIMEOUT; HAMOK_ERR_NO_LEADER; HAMOK_ERR_CLOSED;
 * HAMOK_ERR_STATE (not a member, or on the loop thread). */
HAMOK_API hamok_status hamok_node_leave(hamok_node *node, int timeout_ms);
HAMOK_API void hamok_node_leave_async(hamok_node *node, int timeout_ms, hamok_done_fn cb, void *ud);

/** Read barrier (ReadIndex): when it returns HAMOK_OK, every local read made
 * afterwards on this node observes every write acknowledged anywhere before
 * the call (linearizable). HAMOK_ERR_TIMEOUT, HAMOK_ERR_NO_LEADER,
 * HAMOK_ERR_CLOSED, HAMOK_ERR_STATE (on the loop thread). */
HAMOK_API hamok_status hamok_node_sync(hamok_node *node, int timeout_ms);
HAMOK_API void hamok_node_sync_async(hamok_node *node, int timeout_ms, hamok_done_fn cb, void *ud);

/** Hand leadership to `target` (NULL: the most up-to-date voter). Only on the
 * leader: HAMOK_ERR_NOT_LEADER otherwise; HAMOK_ERR_STATE when there is no
 * other voter; HAMOK_ERR_TIMEOUT when leadership did not move in time. */
HAMOK_API hamok_status hamok_node_transfer_leadership(hamok_node *node, const hamok_id *target,
                                                      int timeout_ms);

/** This peer's id. Thread: any. */
HAMOK_API hamok_id hamok_node_id(const hamok_node *node);
/** Is this peer the leader right now (as far as it knows)? Thread: any. */
HAMOK_API bool hamok_node_is_leader(const hamok_node *node);
/** The known leader's id; false when none is known. Thread: any. */
HAMOK_API bool hamok_node_leader_id(const hamok_node *node, hamok_id *out);

typedef enum hamok_role {
    HAMOK_ROLE_NONE = 0, /**< not a member (not joined yet, or left) */
    HAMOK_ROLE_FOLLOWER = 1,
    HAMOK_ROLE_CANDIDATE = 2,
    HAMOK_ROLE_LEADER = 3,
    HAMOK_ROLE_LEARNER = 4, /**< member without a vote, catching up */
} hamok_role;
HAMOK_API const char *hamok_role_str(hamok_role role);

typedef struct hamok_peer_info {
    hamok_id id;
    bool voter;
    bool is_self;
    bool is_leader;
    char endpoint[256];    /**< as advertised (truncated to 255 bytes) */
    uint64_t match_index;  /**< on the leader: replicated up to; else 0 */
    uint64_t last_seen_ms; /**< on the leader: ms since last heard; else 0 */
} hamok_peer_info;

/** The members of the configuration in force. Writes up to `cap` entries to
 * `out` and returns the number of members (which may exceed cap). */
HAMOK_API size_t hamok_node_peers(hamok_node *node, hamok_peer_info *out, size_t cap);

/** Why an inbound frame was rejected (hamok_node_stats.frames_rejected_by). */
typedef enum hamok_frame_reject {
    HAMOK_FRAME_MALFORMED = 0, /**< not valid msgpack, wrong shape or types */
    HAMOK_FRAME_TOO_BIG = 1,   /**< over the frame limit or a structural limit */
    HAMOK_FRAME_VERSION = 2,   /**< unknown protocol version */
    HAMOK_FRAME_CLUSTER = 3,   /**< another cluster's frame */
    HAMOK_FRAME_TYPE = 4,      /**< unknown message or entry type */
    HAMOK_FRAME_SOURCE = 5,    /**< claims another source than the transport authenticated */
} hamok_frame_reject;
#define HAMOK_FRAME_REJECT_REASONS 6
/** Name of a reason ("malformed", "too_big", ...). Thread: any. */
HAMOK_API const char *hamok_frame_reject_str(hamok_frame_reject reason);

typedef struct hamok_node_stats {
    hamok_role role;
    uint64_t term;
    bool has_leader;
    hamok_id leader;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_log_index;
    uint64_t snapshot_index;
    size_t members;
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t frames_rejected;  /**< malformed, too big, other cluster/version */
    uint64_t frames_dropped;   /**< inbox full or node stopping */
    hamok_transport_link link; /**< last state the transport reported (0: none yet) */
    uint64_t link_changes;     /**< link state changes reported by the transport */
    uint64_t frames_rejected_by[HAMOK_FRAME_REJECT_REASONS]; /**< frames_rejected by reason */
    uint64_t leader_changes;      /**< times the known leader changed (to another or to none) */
    uint64_t proposals_committed; /**< this node's write requests that completed with HAMOK_OK */
    uint64_t proposals_failed;    /**< ... that completed with an error (timeouts included) */
    uint64_t proposals;           /**< commands proposed by this node */
    uint64_t elections;           /**< campaigns started by this node */
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;
} hamok_node_stats;
/** A consistent copy of the counters. Thread: any. */
HAMOK_API void hamok_node_stats_get(hamok_node *node, hamok_node_stats *out);

typedef enum hamok_coll_kind {
    HAMOK_COLL_MAP = 1,
    HAMOK_COLL_RECORD = 2,
    HAMOK_COLL_QUEUE = 3,
    HAMOK_COLL_EMITTER = 4,
    HAMOK_COLL_REMOTE_MAP = 5,
} hamok_coll_kind;
/** "map", "record", "queue", "emitter", "remote_map". Thread: any. */
HAMOK_API const char *hamok_coll_kind_str(hamok_coll_kind kind);

typedef struct hamok_coll_info {
    hamok_coll_kind kind;
    char name[256]; /**< NUL-terminated (names are 1..255 bytes; a NUL inside is kept) */
    size_t name_len;
    size_t entries; /**< map/record: entries, queue: items, emitter: subscriptions */
} hamok_coll_info;

/** The collections this peer holds (every collection of the cluster that has
 * seen a write: DESIGN decision 7), in creation order. Writes up to `cap`
 * entries and returns how many there are. Thread: any. */
HAMOK_API size_t hamok_node_collections(hamok_node *node, hamok_coll_info *out, size_t cap);

/** Render the node's metrics in the Prometheus text exposition format
 * (version 0.0.4) into `buf` (NUL-terminated when cap > 0), like snprintf:
 * returns the length of the whole text, so a return >= cap means the text
 * was cut; call again with a larger buffer. Families (all prefixed
 * `hamok_`): node info, role, term, is_leader, leader_changes_total,
 * commit/applied/last log/snapshot index, members, peer lag (leader only),
 * proposals committed/failed, frames sent/received/dropped and rejected by
 * reason, elections, snapshots taken/installed, transport link, and the
 * entries of every collection. Thread: any. */
HAMOK_API size_t hamok_node_metrics(hamok_node *node, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Events (fire on the loop thread) */

typedef enum hamok_node_event_type {
    HAMOK_EVENT_LEADER_CHANGED = 1, /**< has_leader/leader: the new leader (or none) */
    HAMOK_EVENT_STATE_CHANGED = 2,  /**< role, term */
    HAMOK_EVENT_PEER_JOINED = 3,    /**< peer joined the configuration */
    HAMOK_EVENT_PEER_LEFT = 4,      /**< peer left (or was removed from) the configuration */
    HAMOK_EVENT_COMMIT = 5,         /**< commit_index advanced */
    HAMOK_EVENT_ERROR = 6,          /**< status, text: something failed in the background */
    HAMOK_EVENT_TRANSPORT = 7,      /**< link, text: the transport's link changed state */
} hamok_node_event_type;

typedef struct hamok_node_event {
    hamok_node_event_type type;
    hamok_role role;
    uint64_t term;
    bool has_leader;
    hamok_id leader;
    hamok_id peer;
    uint64_t commit_index;
    hamok_status status;
    const char *text;          /**< ERROR, TRANSPORT: borrowed for the call (may be NULL) */
    hamok_transport_link link; /**< TRANSPORT */
} hamok_node_event;

typedef void (*hamok_node_event_fn)(void *ud, const hamok_node_event *ev);

/** Add a listener of node events (fn with ud is one listener). HAMOK_OK,
 * HAMOK_ERR_NOMEM. Thread: any; the listener may fire before this returns. */
HAMOK_API hamok_status hamok_node_on(hamok_node *node, hamok_node_event_fn fn, void *ud);
/** Remove a listener added with the same (fn, ud). HAMOK_ERR_NOT_FOUND. Once
 * it returns the listener is not called again (unless called on the loop
 * thread from within that very listener, which is allowed). */
HAMOK_API hamok_status hamok_node_off(hamok_node *node, hamok_node_event_fn fn, void *ud);

/* ------------------------------------------------------------------------ */
/* Embedded mode (hamok_config_set_embedded): the calling application's loop
 * is the node's loop thread. Poll hamok_node_fd() for reading (it becomes
 * readable when work arrives) with the timeout hamok_node_next_timeout_ms()
 * gives, then call hamok_node_process(). Blocking calls made on that thread
 * drive the node themselves until they complete. */

/** A file descriptor to poll for POLLIN; -1 when the node is not embedded. */
HAMOK_API int hamok_node_fd(const hamok_node *node);
/** Milliseconds until hamok_node_process() must be called at the latest
 * (0 = now). */
HAMOK_API int hamok_node_next_timeout_ms(hamok_node *node);
/** Do every piece of work that is due. HAMOK_OK; HAMOK_ERR_STATE when the
 * node is not embedded; HAMOK_ERR_CLOSED. */
HAMOK_API hamok_status hamok_node_process(hamok_node *node);

#ifdef __cplusplus
}
#endif
#endif
