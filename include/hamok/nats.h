/* The NATS transport (libhamok_nats, CMake target hamok::nats, pkg-config
 * hamok-nats): Hamok inside an existing NATS deployment. Peers talk only
 * through broker subjects:
 *
 *   <prefix>.<cluster>.bcast            discovery broadcasts (HELLO,
 *                                       ENDPOINT_STATES, JOIN)
 *   <prefix>.<cluster>.peer.<peer_id>   frames for one peer
 *
 * <cluster> is the node's cluster name (hamok_config_set_cluster), <prefix>
 * defaults to "hamok"; both must be valid subject tokens (no '.', '*', '>'
 * or whitespace in the cluster; the prefix may hold dots between tokens).
 * Two clusters with different names on one server never see each other's
 * frames. See docs/NATS.md (subjects, a permissions template, auth, TLS,
 * failure behaviour).
 *
 * nats.c delivery callbacks copy the payload into the node's inbox and
 * return; publishing happens on the node's loop thread and is sent as soon
 * as possible (never left to nats.c's flusher timer). Disconnect, reconnect
 * and close are reported as HAMOK_EVENT_TRANSPORT node events. The frame
 * limit is the server's max_payload. */
#ifndef HAMOK_NATS_H
#define HAMOK_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/status.h"
#include "hamok/transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hamok_nats_options {
    /** Server URL(s): "nats://127.0.0.1:4222", or several separated by
     * commas. Default "nats://127.0.0.1:4222". Ignored with `connection`. */
    const char *url;
    /** Subject prefix (default "hamok"). */
    const char *prefix;
    /** Connection name shown by the server (default "hamok-<peer id>"). */
    const char *name;

    /* Authentication (at most one of user/password, token, nkey seed file,
     * credentials file). */
    const char *user;
    const char *password;
    const char *token;
    const char *nkey_seed_file; /**< a file holding an NKey user seed */
    const char *creds_file;     /**< a .creds file (JWT + seed) */

    /* TLS: on when any of these is set or the URL says tls://. The server's
     * certificate is verified unless tls_skip_verify. */
    const char *tls_ca_file;
    const char *tls_cert_file; /**< client certificate (mutual TLS) */
    const char *tls_key_file;
    const char *tls_hostname; /**< expected name in the server's certificate */
    bool tls_skip_verify;

    /** Milliseconds between reconnect attempts (0 = 250). */
    uint32_t reconnect_wait_ms;
    /** Reconnect attempts after a loss (< 0 = forever, the default). */
    int max_reconnect;
    /** Timeout of the first connection (ms, 0 = 2000). */
    uint32_t connect_timeout_ms;

    /** An existing natsConnection * of the application (borrowed): the
     * connection options above are ignored, Hamok only subscribes and
     * publishes on it, and never closes it (nats_Close is never called
     * either). It must outlive the node. */
    void *connection;
} hamok_nats_options;

/** Fill `o` with the defaults. Thread: any. */
HAMOK_API void hamok_nats_options_init(hamok_nats_options *o);

/** Create the transport. Its own connection (no `connection` given) is
 * made here, so a server that cannot be reached, wrong credentials or an
 * untrusted certificate fail now: HAMOK_ERR_TRANSPORT (the log and
 * hamok_nats_last_error() say why). Everything in `o` is copied. Hand it to
 * hamok_node_new(), which takes ownership; that call fails with
 * HAMOK_ERR_INVALID when the cluster name is not a valid subject token.
 * HAMOK_OK; HAMOK_ERR_INVALID (malformed options or prefix);
 * HAMOK_ERR_TRANSPORT; HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_nats_transport_new(const hamok_nats_options *o, hamok_transport **out);

/** The text of the last connection error of this thread's last
 * hamok_nats_transport_new() call ("" if none). Thread: any (per thread). */
HAMOK_API const char *hamok_nats_last_error(void);

/** Counters of a NATS transport (monotonic). */
typedef struct hamok_nats_stats {
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t publish_failed; /**< nats.c refused a publish (disconnected, buffer full) */
    uint64_t too_big;        /**< frames over the server's max payload, refused */
    uint64_t reconnects;
    uint64_t disconnects;
    bool connected;
    uint64_t max_payload; /**< the server's, as the transport uses it */
} hamok_nats_stats;

/** A consistent copy of the counters of `t`, which must be a NATS transport
 * (HAMOK_ERR_INVALID otherwise). `t` may be owned by a node: keep the
 * pointer from before hamok_node_new(); it is valid until the node is
 * destroyed. Thread: any. */
HAMOK_API hamok_status hamok_nats_transport_stats(const hamok_transport *t, hamok_nats_stats *out);

#ifdef __cplusplus
}
#endif
#endif
