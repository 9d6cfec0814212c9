/* A cluster of `hamokctl peer` processes on loopback, driven over their HTTP
 * addresses: the harness of the multi-process tests (tests/cluster) and of
 * the compose-topology test. Every wait is deadline-polled; every process
 * is killed at exit (proc.h).
 *
 * Peers are started one at a time: each waits for its --info-file (id, HTTP
 * address, transport endpoint). A zmq peer is given one seed, the running
 * peer started last before it (a chain: gossip must close the mesh); a NATS
 * peer needs only the server URL. */
#ifndef HAMOK_TESTS_PCLUSTER_H
#define HAMOK_TESTS_PCLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

#define PC_MAX 8

typedef enum pc_transport { PC_ZMQ = 1, PC_NATS = 2 } pc_transport;

typedef struct pc_peer {
    hamok_proc proc;
    bool running;
    bool durable;
    unsigned generation; /* restarts */
    char id[40];
    char http[128];
    char endpoint[256];
    char info_path[600];
    char log_path[600];
    char data_dir[600];
    void *curl; /* a CURL * kept alive per peer */
} pc_peer;

typedef struct pc_cluster {
    pc_transport transport;
    char hamokctl[512];
    char dir[512];
    char name[64];
    unsigned election_ms;
    unsigned heartbeat_ms;
    char nats_url[256];
    const char *const *extra; /* more flags for every peer (NULL-terminated), or NULL */
    size_t n;                 /* peers slots used */
    pc_peer peers[PC_MAX];
} pc_cluster;

/* Prepare a cluster in a fresh temporary directory. `hamokctl` is the path
 * of the binary (HAMOKCTL in the environment overrides it). */
bool pc_init(pc_cluster *c, pc_transport t, const char *hamokctl, const char *name,
             unsigned election_ms);
/* Start (or restart) peer i: durable = with a data directory (kept across
 * restarts). Waits up to timeout_ms for its info file. */
bool pc_start(pc_cluster *c, size_t i, bool durable, unsigned timeout_ms);
/* Signals. */
void pc_kill(pc_cluster *c, size_t i);                           /* SIGKILL */
void pc_pause(pc_cluster *c, size_t i);                          /* SIGSTOP */
void pc_resume(pc_cluster *c, size_t i);                         /* SIGCONT */
bool pc_terminate(pc_cluster *c, size_t i, unsigned timeout_ms); /* SIGTERM: leave, exit 0 */
/* Kill every peer, print the tail of each log when `failed`, remove the
 * directory (kept when HAMOK_KEEP_LOGS is set). */
void pc_destroy(pc_cluster *c, bool failed);

/* One HTTP request to peer i. Returns the status code (0: unreachable); the
 * body (NUL-terminated, malloc'ed) goes to *resp when resp is not NULL. */
long pc_http(pc_cluster *c, size_t i, const char *method, const char *path, const void *body,
             size_t len, long timeout_ms, char **resp);
/* GET /v1/status as JSON (NULL when unreachable). */
json_t *pc_status(pc_cluster *c, size_t i);
/* The index of the leader every running, unpaused peer agrees on, with
 * `voters` voters known to each (0 = do not check), within timeout_ms;
 * SIZE_MAX if none. `skip` (bit per index) excludes peers from the vote. */
size_t pc_leader(pc_cluster *c, size_t voters, unsigned skip, unsigned timeout_ms);
/* Map writes and reads through peer i's HTTP API. */
bool pc_put(pc_cluster *c, size_t i, const char *map, const char *key, const char *value,
            long timeout_ms);
/* The map's entries on peer i after a read barrier (NULL on failure):
 * a JSON object key -> value. */
json_t *pc_entries(pc_cluster *c, size_t i, const char *map, long timeout_ms);
/* Index of the peer with this id, SIZE_MAX if none. */
size_t pc_find(const pc_cluster *c, const char *id);

#endif
