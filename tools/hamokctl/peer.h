/* The state of a running `hamokctl peer`, shared by its option parsing and
 * node driver (peer.c) and its HTTP server (http.c). */
#ifndef HAMOKCTL_PEER_H
#define HAMOKCTL_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hamok/emitter.h"
#include "hamok/map.h"
#include "hamok/node.h"
#include "hamok/queue.h"
#include "hamok/record.h"

#define PEER_MAX_HANDLES 256

typedef struct peer_handle {
    hamok_coll_kind kind;
    char name[256];
    void *h; /* hamok_map *, hamok_record *, hamok_queue *, hamok_emitter * */
} peer_handle;

typedef struct peer {
    hamok_node *node;
    hamok_transport *transport; /* borrowed (the node owns it): for its stats */
    char transport_kind[8];     /* "zmq", "nats", "mem" */
    int request_timeout_ms;
    atomic_bool joined; /* join() succeeded once */
    atomic_bool stopping;

    pthread_mutex_t mu; /* handles */
    peer_handle handles[PEER_MAX_HANDLES];
    size_t n_handles;
} peer;

/* An open handle of `kind` for `name` (opened on first use, kept until the
 * peer stops). HAMOK_OK, HAMOK_ERR_WRONG_KIND, HAMOK_ERR_BUSY (too many),
 * HAMOK_ERR_INVALID. Thread: any. */
hamok_status peer_handle_get(peer *p, hamok_coll_kind kind, const char *name, void **out);

/* Is this peer joined and caught up (what /healthz answers)? `why` gets a
 * short reason when not. */
bool peer_healthy(peer *p, const char **why);

typedef struct http_server http_server;

/* Serve HTTP on `addr` ("host:port", port 0 = any free port). The bound
 * port is written to *port. NULL on failure (message on stderr). */
http_server *http_start(peer *p, const char *addr, unsigned *port);
void http_stop(http_server *s);

#endif
