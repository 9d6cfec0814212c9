/* Node internals shared by the node's source files (node.c: loop, Raft
 * driving, discovery, requests; config.c; log.c; coll.c: collection
 * handles). Not installed. */
#ifndef HAMOK_NODE_NODE_INT_H
#define HAMOK_NODE_NODE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/codec.h"
#include "codec/command.h"
#include "collections/registry.h"
#include "grid/grid.h"
#include "hamok/node.h"
#include "raft/raft.h"
#include "util/buf.h"
#include "util/id.h"

struct hamok_config {
    char cluster[HAMOK_CLUSTER_NAME_MAX + 1];
    bool has_id;
    hamok_id id;
    char *storage_dir;
    hamok_fsync_mode sync;
    uint32_t batch_delay_ms;
    uint32_t election_timeout_ms;
    uint32_t heartbeat_ms;
    uint32_t peer_timeout_ms;
    uint32_t request_timeout_ms;
    uint32_t bootstrap_expect;
    uint64_t snapshot_entries;
    bool embedded;
    hamok_log_fn log_fn;
    void *log_ud;
    hamok_log_level log_level;
};

/* Logging (log.c). */
void hamok__log_default(void *ud, hamok_log_level level, const char *module, const char *msg);
hamok_log_level hamok__log_level_from_env(void);
void hamok__nlog(hamok_node *n, hamok_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Waiter of a blocking call. */
typedef struct hamok_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    hamok_status status;
    hamok_buf result;
} hamok_waiter;

typedef enum hamok_req_type {
    HAMOK_REQ_JOIN = 1,
    HAMOK_REQ_LEAVE = 2,
    HAMOK_REQ_SYNC = 3,
    HAMOK_REQ_TRANSFER = 4,
    HAMOK_REQ_SUBMIT = 5,
    HAMOK_REQ_PUBLISH = 6, /* emitter publish (waits for acknowledgements) */
    HAMOK_REQ_NOTIFY = 7,  /* emitter notify (fire and forget) */
} hamok_req_type;

/* Completion with result bytes (an encoded hamok_cmd_result for SUBMIT). */
typedef void (*hamok_raw_result_fn)(void *ud, hamok_status status, const uint8_t *result,
                                    size_t len);

typedef struct hamok_req {
    struct hamok_req *next; /* inbox / active list */
    struct hamok_req *prev;
    hamok_req_type type;
    bool completed;
    int timeout_ms;
    uint64_t deadline; /* absolute (node clock), UINT64_MAX = none */
    bool saw_leader;   /* a leader was known at some point (NO_LEADER vs TIMEOUT) */
    /* SUBMIT */
    uint64_t seq;
    hamok_buf cmd;
    uint64_t retry_at;
    bool accepted;    /* the leader appended it (we wait for it to apply) */
    uint32_t resends; /* sent again while accepted: each waits twice as long */
    /* SYNC */
    uint64_t read_id;
    bool read_ok;
    uint64_t read_index;
    /* TRANSFER / LEAVE */
    bool has_target;
    hamok_id target;
    bool transfer_started;
    uint64_t retry_transfer_at;
    /* PUBLISH / NOTIFY: cmd holds name, event, payload (lengths below) */
    size_t pub_name_len;
    size_t pub_event_len;
    uint64_t pub_id;
    hamok_id *targets;
    bool *acked;
    size_t n_targets;
    size_t n_acked;
    bool self_delivered;
    /* completion: exactly one of these */
    hamok_waiter *w;
    hamok_done_fn done;
    hamok_raw_result_fn result_fn;
    void *ud;
} hamok_req;

/* Queue a request to the loop and block until it completes (w must be
 * initialised); returns its status. HAMOK_ERR_STATE on the loop thread. */
hamok_status hamok__node_call(hamok_node *n, hamok_req *rq);
/* Queue a request to the loop (async). Completes with HAMOK_ERR_CLOSED when
 * the node is shutting down (then on the calling thread). */
void hamok__node_post_req(hamok_node *n, hamok_req *rq);
hamok_req *hamok__req_new(hamok_req_type type, int timeout_ms);
void hamok__waiter_init(hamok_waiter *w);
void hamok__waiter_fini(hamok_waiter *w);

/* Collection handles (coll.c). */
typedef struct hamok_handle hamok_handle;
void hamok__node_dispatch_event(hamok_node *n, const hamok_coll_event *ev);
void hamok__node_close_handles(hamok_node *n);
/* Registry access for readers on any thread: lock/unlock around lookups. */
void hamok__node_read_lock(hamok_node *n);
void hamok__node_read_unlock(hamok_node *n);
hamok_registry *hamok__node_registry(hamok_node *n);
bool hamok__node_on_loop(const hamok_node *n);
uint32_t hamok__node_request_timeout(const hamok_node *n);
hamok_id hamok__node_self(const hamok_node *n);
/* The transport's frame limit (bytes). Thread: any. */
uint32_t hamok__node_frame_limit(const hamok_node *n);
/* The cluster name and the transport's name (borrowed, for the node's life). */
const char *hamok__node_cluster(const hamok_node *n);
const char *hamok__node_transport_name(const hamok_node *n);
/* Register / unregister a handle for event dispatch (loop thread or under
 * the handles lock; see coll.c). */
hamok_status hamok__node_add_handle(hamok_node *n, hamok_handle *h);
void hamok__node_remove_handle(hamok_node *n, hamok_handle *h);
void hamok__handle_dispatch(hamok_handle *h, const hamok_coll_event *ev);
/* Deliver an emitter event to the local listeners of emitter `name` (loop
 * thread). True if at least one listener got it. */
bool hamok__node_emit_local(hamok_node *n, const uint8_t *name, size_t name_len,
                            const uint8_t *event, size_t event_len, const uint8_t *payload,
                            size_t payload_len, const hamok_id *from);
bool hamok__handle_emit(hamok_handle *h, const uint8_t *name, size_t name_len, const uint8_t *event,
                        size_t event_len, const uint8_t *payload, size_t payload_len,
                        const hamok_id *from);
bool hamok__handle_matches(const hamok_handle *h, const hamok_coll_event *ev);

#endif
