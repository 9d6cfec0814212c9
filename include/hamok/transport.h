/* The transport contract: how a node's frames travel between peers.
 *
 * For users: pick a transport (hamok/mem.h in-process, hamok/zmq.h brokerless
 * mesh, hamok/nats.h NATS subjects) and hand it to hamok_node_new(), which
 * takes ownership. For implementers of a third-party transport: fill a
 * hamok_transport_ops table and embed a hamok_transport as the FIRST member of
 * your object (so a hamok_transport * is also a pointer to your object).
 *
 * What the node expects:
 *  - Frames are opaque byte strings, at most HAMOK_TRANSPORT_MAX_FRAME bytes.
 *  - send() never blocks the caller for long (queue and return) and copies the
 *    bytes it keeps. Loss, duplication and reordering are tolerated (Raft and
 *    the discovery protocol cope), but per-peer FIFO order is expected for
 *    good performance.
 *  - Inbound frames go to sink->deliver(sink, bytes, len) from any thread, at
 *    any time between start() and the return of stop(). deliver() copies the
 *    bytes and never blocks for long; the bytes are the transport's again
 *    when it returns. Frames addressed to this peer and broadcasts are both
 *    delivered the same way (the frame says which it is). A transport MAY
 *    deliver this peer's own broadcasts back to it; the node ignores them.
 *  - The node fills in `self` and `cluster` of the hamok_transport header
 *    before start(); local_endpoint() is read after start() returns (a
 *    transport may resolve it there: a zmq port 0, a NATS subject).
 *  - set_peer() tells the transport the endpoint of a peer it learned through
 *    discovery (a zmq transport connects there; a NATS transport ignores it,
 *    subjects are derived from the id), and forgets the peer when endpoint is
 *    NULL.
 *
 * Threads: the node calls start, send, set_peer, local_endpoint and stop
 * from its loop thread only, and destroy once after stop (from the thread
 * that destroys the node). Implementations need no locking between those. */
#ifndef HAMOK_TRANSPORT_H
#define HAMOK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/id.h"
#include "hamok/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Version of this contract; a transport built against another version is
 * refused by hamok_node_new() with HAMOK_ERR_INVALID. */
#define HAMOK_TRANSPORT_ABI 1

/** The largest frame a node sends (and accepts). */
#define HAMOK_TRANSPORT_MAX_FRAME (1024u * 1024u)

typedef struct hamok_transport hamok_transport;
typedef struct hamok_transport_sink hamok_transport_sink;

/** States of a transport's link (sink->link, HAMOK_EVENT_TRANSPORT). */
typedef enum hamok_transport_link {
    HAMOK_LINK_CONNECTED = 1,    /**< first connection established */
    HAMOK_LINK_DISCONNECTED = 2, /**< lost; the transport keeps trying */
    HAMOK_LINK_RECONNECTED = 3,  /**< back after a loss */
    HAMOK_LINK_CLOSED = 4,       /**< gone for good (no more retries) */
} hamok_transport_link;

/** Name of a link state ("connected", ...). Thread: any. */
HAMOK_API const char *hamok_transport_link_str(hamok_transport_link state);

/** Where inbound frames go. Owned by the node; valid from start() until
 * stop() returns. */
struct hamok_transport_sink {
    /** Copy one inbound frame into the node. Thread: any. Never blocks for
     * long; frames over HAMOK_TRANSPORT_MAX_FRAME are dropped and counted. */
    void (*deliver)(hamok_transport_sink *sink, const void *bytes, size_t len);
    /** Report a transport-level problem (connection lost, auth failure...)
     * for the node's log and error event. Thread: any. May be NULL-checked
     * by callers; the node always sets it. `text` is borrowed. */
    void (*error)(hamok_transport_sink *sink, hamok_status status, const char *text);
    /** Like deliver(), for a transport that knows which peer sent the frame
     * (an authenticated connection: a CURVE key, a TLS identity). The node
     * drops and counts (frames_rejected) a frame whose envelope names
     * another source than `from`, so a peer cannot speak for another one.
     * Thread: any. */
    void (*deliver_from)(hamok_transport_sink *sink, const hamok_id *from, const void *bytes,
                         size_t len);
    /** Report a change of the transport's link to its network or broker
     * (connected, disconnected, reconnected, closed): the node logs it and
     * raises HAMOK_EVENT_TRANSPORT. `text` (borrowed) says more, or NULL.
     * Thread: any. */
    void (*link)(hamok_transport_sink *sink, hamok_transport_link state, const char *text);
};

typedef struct hamok_transport_ops {
    uint32_t abi;     /**< HAMOK_TRANSPORT_ABI */
    const char *name; /**< "mem", "zmq", "nats", ... (static string) */

    /** Begin delivering inbound frames to `sink`. HAMOK_OK or an error
     * (HAMOK_ERR_TRANSPORT, HAMOK_ERR_NOMEM, ...); after an error the node
     * calls destroy() without stop(). */
    hamok_status (*start)(hamok_transport *t, hamok_transport_sink *sink);

    /** Send a frame to one peer (`to` non-NULL) or to every peer of the
     * cluster (`to` NULL: broadcast). Copies the bytes. Returns HAMOK_OK when
     * queued (delivery is never guaranteed), HAMOK_ERR_NOT_FOUND when `to` is
     * unknown to the transport, HAMOK_ERR_TOO_BIG, HAMOK_ERR_TRANSPORT,
     * HAMOK_ERR_NOMEM. */
    hamok_status (*send)(hamok_transport *t, const hamok_id *to, const void *bytes, size_t len);

    /** Learn (endpoint non-NULL) or forget (NULL) a peer's endpoint. Optional
     * (NULL when the transport routes by id alone). `endpoint` borrowed. */
    void (*set_peer)(hamok_transport *t, const hamok_id *peer, const char *endpoint);

    /** What this peer advertises in discovery (e.g. "tcp://10.0.0.5:5555",
     * "hamok.orders.peer.<id>"); "" when there is nothing to advertise.
     * Borrowed; valid until destroy. */
    const char *(*local_endpoint)(hamok_transport *t);

    /** Stop delivering: when stop() returns, sink->deliver is never called
     * again. Idempotent. */
    void (*stop)(hamok_transport *t);

    /** Free everything (after stop, or after a failed start). */
    void (*destroy)(hamok_transport *t);
} hamok_transport_ops;

/** The header every transport object starts with. `self` is the node's peer
 * id, filled in by hamok_node_new() before start() (transports that route by
 * id, like NATS, read it there); so is `cluster`. */
struct hamok_transport {
    const hamok_transport_ops *ops;
    hamok_id self;
    /** The node's cluster name (NUL-terminated), filled in by
     * hamok_node_new() before start() (NATS derives its subjects from it). */
    char cluster[256];
    /** The largest frame this transport carries, set by the transport's
     * constructor (0 = HAMOK_TRANSPORT_MAX_FRAME; larger values are capped
     * there). The node sizes everything it sends to fit: Raft batches and
     * snapshot chunks are cut to half of it, and a command or a published
     * payload that cannot fit is refused with HAMOK_ERR_TOO_BIG. A NATS
     * transport sets the server's max_payload. Minimum 64 KiB. */
    uint32_t max_frame;
};

#ifdef __cplusplus
}
#endif
#endif
