/* Helpers of the NATS transport tests: nodes on NATS transports, agreement
 * and leader waits (deadline-polled), a background write load that records
 * every acknowledged write, and certificates made with openssl. */
#ifndef HAMOK_TEST_TNATS_H
#define HAMOK_TEST_TNATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "hamok/map.h"
#include "hamok/nats.h"
#include "hamok/node.h"

#define TN_WAIT_MS 20000 /* generous: the machine is shared and may run ASan */

uint64_t tn_now_ms(void);
/* Wait until cond(ud) holds or timeout_ms pass; true if it held. */
bool tn_wait(bool (*cond)(void *), void *ud, unsigned timeout_ms);

/* Options for a server URL: defaults, reconnecting every 100 ms. */
hamok_nats_options tn_opts(const char *url);
/* cmocka teardown of every test: stop whatever nats-server is still up. */
int tn_teardown(void **state);
/* A nats.c handler answering a request with its own payload. */
void tn_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);

typedef struct tnode {
    hamok_node *node;
    hamok_transport *t;  /* owned by the node; kept for hamok_nats_transport_stats */
    atomic_int links[5]; /* HAMOK_EVENT_TRANSPORT events, by hamok_transport_link */
} tnode;

typedef struct tn_conf {
    const char *cluster;       /* NULL = "test" */
    uint32_t bootstrap_expect; /* 0 = 1 */
    uint64_t snapshot_entries; /* 0 = the default */
    const char *peer_id;       /* NULL = random */
} tn_conf;

/* Make the transport from `o` and a node on it (not joined). On failure the
 * status of hamok_nats_transport_new or hamok_node_new is returned. */
hamok_status tn_start(tnode *n, const tn_conf *c, const hamok_nats_options *o);
void tn_stop(tnode *n);
/* join_async on every node, then a blocking join on each. */
bool tn_join_all(tnode *nodes, size_t n, int timeout_ms);
/* Every non-NULL node knows the same leader and `voters` voters. */
bool tn_agree(tnode *nodes, size_t n, size_t voters, unsigned timeout_ms);
/* Index of a node that believes it leads, or SIZE_MAX. */
size_t tn_leader(tnode *nodes, size_t n);
hamok_nats_stats tn_stats(const tnode *n);

/* A writer thread: map_set of fresh keys "<tag>-<n>" = "<n>" until stopped;
 * every acknowledged key is recorded. */
typedef struct tn_load {
    hamok_map *m;
    char tag[16];
    pthread_t th;
    atomic_bool stop;
    atomic_size_t acked;
    size_t cap;
    uint32_t *ok; /* numbers acknowledged, in order */
    atomic_int failed;
} tn_load;

void tn_load_start(tn_load *l, hamok_map *m, const char *tag, size_t cap);
void tn_load_stop(tn_load *l);
/* Every acknowledged write of `l` is in `m` (call after a sync on its node). */
bool tn_load_check(const tn_load *l, hamok_map *m);

/* Certificates under `dir`: ca.pem/ca.key (a test CA), server.pem/server.key
 * (CN=localhost, SAN DNS:localhost + IP:127.0.0.1, signed by the CA),
 * client.pem/client.key (signed by the CA), elsewhere.pem/elsewhere.key
 * (signed by the CA for DNS:elsewhere.example only), other-ca.pem (an
 * unrelated CA).
 * false when openssl fails (its output is in dir/openssl.log). */
bool tn_make_certs(const char *dir);

/* An NKey user under `dir`: its public key ("U...", 56 characters) and a
 * seed file ("SU..."), made with openssl's Ed25519. */
bool tn_make_nkey(const char *dir, char public_key[64], char seed_file[256]);

#endif
