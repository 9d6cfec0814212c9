/* The NATS transport (libhamok_nats, CMake target hamok::nats, pkg-config
 * hamok-nats): Hamok inside an existing NATS deployment. Peers talk only
 * through broker subjects:
 *
 *   <prefix>.<cluster>.bcast            discovery broadcasts (HELLO,
 *                                       ENDPOINT_STATES, JOIN)
 *   <prefix>.<cluster>.peer.<peer_id>   frames for one peer
 *
 * <cluster> is the node's cluster name (hamok_config_set_cluster), <prefix>
 * defaults to "hamok"; both must be valid subject tokens: no '*', '>',
 * whitespace or control characters and no empty token; the cluster is one
 * token (no '.'), the prefix may hold dots between tokens. A transport
 * subscribes to exactly two subjects: bcast and its own peer subject, so two
 * clusters with different names (or prefixes) on one server never see each
 * other's frames. See docs/NATS.md (subjects, a permissions template, auth,
 * TLS, failure behaviour).
 *
 * nats.c delivery callbacks copy the payload into the node's inbox and
 * return; publishing happens on the node's loop thread and is sent as soon
 * as possible (never left to nats.c's flusher timer): an own connection is
 * made with natsOptions_SetSendAsap(true); on a borrowed connection a
 * transport thread flushes (natsConnection_FlushTimeout) after publishes.
 * Disconnect, reconnect and close are reported as HAMOK_EVENT_TRANSPORT node
 * events. The frame limit (hamok_transport.max_frame) is the server's
 * max_payload, capped at HAMOK_TRANSPORT_MAX_FRAME; larger frames are
 * refused with HAMOK_ERR_TOO_BIG and counted, never truncated.
 *
 * Library lifetime: Hamok never calls nats_Close() (nats.c's process-wide
 * cleanup) nor changes nats.c's process-wide settings; an application that
 * uses nats.c itself may call nats_Close() once every node is destroyed. */
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

/** Longest subject prefix accepted (bytes). */
#define HAMOK_NATS_MAX_PREFIX 128

/** Options of a NATS transport. A zeroed struct means "every default";
 * hamok_nats_options_init() gives the same. Strings are borrowed for the
 * hamok_nats_transport_new() call (copied there). */
typedef struct hamok_nats_options {
    /** Server URL(s): "nats://127.0.0.1:4222", or several separated by
     * commas; "tls://" URLs turn TLS on; "nats://user:pass@host:port" works
     * as nats.c defines it. NULL = "nats://127.0.0.1:4222". Ignored with
     * `connection`. */
    const char *url;
    /** Subject prefix: one or more tokens separated by dots, at most
     * HAMOK_NATS_MAX_PREFIX bytes (NULL = "hamok"). Used with `connection`
     * too. */
    const char *prefix;
    /** Connection name shown by the server (NULL = "hamok"). */
    const char *name;

    /* Authentication: at most one of user/password, token, nkey, creds_file
     * (HAMOK_ERR_INVALID otherwise). */
    const char *user;
    const char *password;
    const char *token;
    const char *nkey;           /**< NKey user public key ("U...") ... */
    const char *nkey_seed_file; /**< ... and the file holding its seed ("SU..."); both or neither */
    const char *creds_file;     /**< a .creds file (user JWT + seed) */

    /* TLS: on when any of these is set or a URL says tls://. The server's
     * certificate is verified against tls_ca_file, and the name in it
     * against the URL's host (an IP address too) or tls_hostname when set,
     * unless tls_skip_verify. nats.c loads no default
     * trust store, so verification needs tls_ca_file (HAMOK_ERR_INVALID
     * without it); for a publicly signed server give the system bundle,
     * e.g. /etc/ssl/certs/ca-certificates.crt. */
    const char *tls_ca_file;
    const char *tls_cert_file; /**< client certificate (mutual TLS), with tls_key_file */
    const char *tls_key_file;
    const char *tls_hostname; /**< expected name in the server's certificate */
    bool tls_skip_verify;     /**< tests only: no verification at all */

    /** Milliseconds between reconnect attempts to one server (0 = 250). */
    uint32_t reconnect_wait_ms;
    /** Reconnect attempts per server after a loss: 0 = forever (the
     * default: a peer should come back whenever the broker does), n > 0 =
     * n attempts, < 0 = never reconnect. When they are exhausted the link is
     * CLOSED for good. */
    int max_reconnect;
    /** Bytes nats.c keeps of frames published while reconnecting, sent on
     * reconnection (0 = nats.c's default, 8 MiB). Further publishes fail
     * and are counted in publish_failed. */
    uint32_t reconnect_buffer_bytes;
    /** Timeout of a connection attempt (ms, 0 = 2000). */
    uint32_t connect_timeout_ms;
    /** Client PING interval (ms, 0 = nats.c's default, 2 minutes): how fast a
     * silently dead server is noticed (two missed PONGs). */
    uint32_t ping_interval_ms;
    /** Try the servers of `url` in the order given (first the first), on
     * connection and on every reconnection. nats.c shuffles the list by
     * default, which spreads clients over a NATS cluster; set this to pin
     * each peer to a preferred server. */
    bool no_randomize;

    /** An existing natsConnection * of the application (borrowed): every
     * connection option above is ignored (only `prefix` is used), Hamok only
     * subscribes, publishes and flushes on it, never closes it and never
     * calls nats_Close(). It must outlive the node. Link events come from
     * polling its status (every 50 ms), since its callbacks are the
     * application's. */
    void *connection;
} hamok_nats_options;

/** Fill `o` with the defaults (all zero). Thread: any. */
HAMOK_API void hamok_nats_options_init(hamok_nats_options *o);

/** Create the transport (o NULL = all defaults). Its own connection (no
 * `connection` given) is made here, so a server that cannot be reached,
 * wrong credentials or an untrusted certificate fail now:
 * HAMOK_ERR_TRANSPORT, and hamok_nats_last_error() says why (nats.c's
 * status and text). A server whose max_payload is below 64 KiB is refused
 * the same way. Hand the transport to hamok_node_new(), which takes
 * ownership; that call fails with HAMOK_ERR_INVALID when the cluster name
 * is not a valid subject token (hamok_nats_last_error() says so too).
 * HAMOK_OK; HAMOK_ERR_INVALID (NULL out, malformed options or prefix,
 * several authentication methods, half a key pair, a closed borrowed
 * connection); HAMOK_ERR_TRANSPORT; HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_nats_transport_new(const hamok_nats_options *o, hamok_transport **out);

/** The text of the last error of this thread's last
 * hamok_nats_transport_new() or hamok_node_new() on a NATS transport (""
 * if none). Valid until this thread's next such call. Thread: any (per
 * thread). */
HAMOK_API const char *hamok_nats_last_error(void);

/** Is `prefix` a valid subject prefix (the rules above)? Thread: any. */
HAMOK_API bool hamok_nats_valid_prefix(const char *prefix);

/** Counters of a NATS transport (monotonic, except connected and
 * max_payload). */
typedef struct hamok_nats_stats {
    uint64_t frames_sent;
    uint64_t frames_received;
    uint64_t publish_failed; /**< nats.c refused a publish (closed, reconnect buffer full) */
    uint64_t too_big;        /**< frames over the server's max payload, refused */
    uint64_t reconnects;
    uint64_t disconnects;
    uint64_t async_errors; /**< nats.c error callbacks (slow consumer, permission denied...) */
    bool connected;
    bool borrowed;        /**< the connection is the application's */
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
