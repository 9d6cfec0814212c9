/* The ZeroMQ mesh transport (libhamok_zmq, CMake target hamok::zmq,
 * pkg-config hamok-zmq): brokerless clusters. Each peer binds one ROUTER on
 * its endpoint and keeps one DEALER per known peer (routing id: the peer id
 * and a serial of the link);
 * a broadcast is a send to every known peer and to every seed not yet
 * identified. Bootstrap from a list of seed endpoints: discovery's HELLO
 * reaches the seeds, and the ENDPOINT_STATES answers carry every member's
 * endpoint, so the mesh closes itself. See docs/ZMQ.md.
 *
 * Every socket lives on one actor thread; send() only queues. Under
 * back-pressure a full queue drops the frame and counts it (Raft
 * retransmits): the node's loop never blocks on a socket.
 *
 * CURVE (optional): with a secret key set, the ROUTER is a CURVE server and
 * every DEALER a CURVE client; a ZAP handler admits only the listed public
 * keys, and a peer id is bound to the first key that spoke for it, so a
 * frame is delivered only when its claimed source matches the key its
 * connection authenticated with. */
#ifndef HAMOK_ZMQ_H
#define HAMOK_ZMQ_H

#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/status.h"
#include "hamok/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Length of a Z85-encoded CURVE key, without the terminating NUL. */
#define HAMOK_ZMQ_KEY_LEN 40

typedef struct hamok_zmq_options {
    /** Endpoint to bind: "tcp://host:port" (port 0 = pick a free one; see
     * hamok_transport_ops.local_endpoint for the result) or "ipc://path".
     * Default "tcp://127.0.0.1:0". */
    const char *bind;
    /** Endpoint the other peers connect to, when it differs from the bound
     * one (a wildcard bind such as "tcp://0.0.0.0:5555", NAT,
     * containers: "tcp://peer1:5555"). NULL = the bound endpoint; a
     * wildcard bind without it is refused (HAMOK_ERR_INVALID). */
    const char *advertise;
    /** Seed endpoints (borrowed for the call). Peers of a new cluster list
     * each other or one common seed; a peer may list itself. */
    const char *const *seeds;
    size_t n_seeds;

    /** CURVE: this peer's secret and public keys (Z85, 40 characters).
     * NULL secret = no encryption (the default). */
    const char *curve_secret_key;
    const char *curve_public_key;
    /** Public keys (Z85) admitted to talk to this peer; this peer's own key
     * is always admitted. Required with CURVE (at least the list or the
     * file). */
    const char *const *curve_allowed;
    size_t n_curve_allowed;
    /** A file of admitted public keys: one Z85 key per line, '#' comments. */
    const char *curve_allowed_file;

    /** High-water marks (frames) of each socket; 0 = 10,000. */
    uint32_t sndhwm;
    uint32_t rcvhwm;
    /** Reconnect interval of the DEALERs (ms); 0 = 100. */
    uint32_t reconnect_ms;
} hamok_zmq_options;

/** Fill `o` with the defaults. Thread: any. */
HAMOK_API void hamok_zmq_options_init(hamok_zmq_options *o);

/** Create the transport and bind its endpoint (so a port 0 is resolved on
 * return). Everything in `o` is copied. Hand it to hamok_node_new(), which
 * takes ownership. HAMOK_OK; HAMOK_ERR_INVALID (a malformed endpoint or
 * key, CURVE without admitted keys, a wildcard bind without advertise);
 * HAMOK_ERR_IO (cannot read the keys file); HAMOK_ERR_TRANSPORT (bind
 * failed: the log says why); HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_zmq_transport_new(const hamok_zmq_options *o, hamok_transport **out);

/** Why the last hamok_zmq_transport_new() on this thread failed (a
 * sentence naming the option or the system error), "" after a success.
 * Thread-local; valid until the next call on this thread. */
HAMOK_API const char *hamok_zmq_last_error(void);

/** Counters of a zmq transport (monotonic). */
typedef struct hamok_zmq_stats {
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t dropped_hwm;        /**< a full queue refused a frame */
    uint64_t dropped_unknown;    /**< addressed to a peer with no known endpoint */
    uint64_t rejected_size;      /**< over ZMQ_MAXMSGSIZE / the frame limit */
    uint64_t rejected_auth;      /**< ZAP refused a key, or a frame spoke for another key's peer */
    uint64_t rejected_malformed; /**< not [peer id][one frame] on the ROUTER */
    uint64_t peers;              /**< peers with a connection right now */
    uint64_t links; /**< DEALERs open: known peers (up or not) and seeds not identified yet */
} hamok_zmq_stats;

/** A consistent copy of the counters of `t`, which must be a zmq transport
 * (HAMOK_ERR_INVALID otherwise). `t` may be owned by a node: keep the
 * pointer from before hamok_node_new(); it is valid until the node is
 * destroyed. Thread: any. */
HAMOK_API hamok_status hamok_zmq_transport_stats(const hamok_transport *t, hamok_zmq_stats *out);

/** Generate a CURVE key pair as Z85 text (NUL-terminated). HAMOK_OK;
 * HAMOK_ERR_STATE when libzmq was built without CURVE. Thread: any. */
HAMOK_API hamok_status hamok_zmq_keygen(char public_key[HAMOK_ZMQ_KEY_LEN + 1],
                                        char secret_key[HAMOK_ZMQ_KEY_LEN + 1]);

/** Derive the public key of a Z85 secret key. HAMOK_OK, HAMOK_ERR_INVALID.
 * Thread: any. */
HAMOK_API hamok_status hamok_zmq_public_key(const char *secret_key,
                                            char public_key[HAMOK_ZMQ_KEY_LEN + 1]);

#ifdef __cplusplus
}
#endif
#endif
