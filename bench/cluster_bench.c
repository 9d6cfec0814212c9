/* hamok-cluster-bench: a cluster of separate processes on loopback over a
 * real transport — this process runs one peer through the public API, and
 * starts the others as `hamokctl peer` processes — measuring what an
 * application on one of the peers gets:
 *
 *   sequential map_set p50/p99 issued on the leader (this peer made leader
 *   by a leadership transfer) and on a follower (leadership handed away),
 *   then sets/s with K writes in flight (async API) from the leader.
 *
 *   hamok-cluster-bench --transport zmq|nats [--nats-url URL] [--peers N]
 *                       [--ops K] [--inflight K] [--seconds S] [--value B]
 *
 * With nats and no --nats-url it starts its own nats-server (JetStream on)
 * on a free port. First, in the same run, the floor to compare with: a bare
 * zmq DEALER<->ROUTER ping-pong between two processes (hamok-zmq-pingpong),
 * or nats.c request/reply with SendAsap and JetStream KV puts (R1) through
 * the same server (hamok-nats-floor); --no-floor skips it. No pass/fail
 * here: the figures go in bench/README.md. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "hamok/hamok.h"
#include "hamok/map.h"
#include "hamok/node.h"
#include "pcluster.h"
#ifdef BENCH_WITH_ZMQ
#include "hamok/zmq.h"
#endif
#ifdef BENCH_WITH_NATS
#include "hamok/nats.h"
#include "natsd.h"
#else
typedef struct natsd natsd;
static void natsd_stop_all(void)
{
}
static void natsd_stop(natsd **d)
{
    (void)d;
}
#endif

#ifndef HAMOKCTL_PATH
#error "HAMOKCTL_PATH must name the hamokctl binary"
#endif

#define MAXP 7

/* Run a floor program to completion, its output on ours. */
static void run_floor(char *const argv[])
{
    fflush(stdout);
    pid_t pid;
    extern char **environ;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) {
        fprintf(stderr, "hamok-cluster-bench: cannot run %s\n", argv[0]);
        return;
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "hamok-cluster-bench: %s failed\n", argv[0]);
    }
    printf("\n");
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static pc_cluster C;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "hamok-cluster-bench: %s: %s\n", what, why);
    pc_destroy(&C, true);
    natsd_stop_all();
    exit(1);
}

typedef struct local {
    hamok_node *node;
    hamok_map *map;
    char id[HAMOK_ID_STR_LEN + 1];
} local;

static void start_local(local *l, pc_transport t, size_t peers)
{
    hamok_config *cfg;
    hamok_config_new(&cfg);
    hamok_config_set_cluster(cfg, C.name);
    hamok_config_set_timing(cfg, C.election_ms, C.heartbeat_ms);
    hamok_config_set_peer_timeout(cfg, C.election_ms * 5);
    hamok_transport *tr = NULL;
    hamok_status st = HAMOK_ERR_INVALID;
    if (t == PC_ZMQ) {
#ifdef BENCH_WITH_ZMQ
        hamok_zmq_options zo;
        hamok_zmq_options_init(&zo);
        const char *seeds[MAXP];
        size_t n = 0;
        for (size_t i = 0; i < C.n; i++) {
            seeds[n++] = C.peers[i].endpoint;
        }
        zo.seeds = seeds;
        zo.n_seeds = n;
        st = hamok_zmq_transport_new(&zo, &tr);
#endif
    } else {
#ifdef BENCH_WITH_NATS
        hamok_nats_options no;
        hamok_nats_options_init(&no);
        no.url = C.nats_url;
        st = hamok_nats_transport_new(&no, &tr);
#endif
    }
    if (st != HAMOK_OK) {
        die("transport", hamok_status_str(st));
    }
    if ((st = hamok_node_new(&l->node, cfg, &tr)) != HAMOK_OK) {
        die("node", hamok_status_str(st));
    }
    hamok_config_destroy(&cfg);
    if ((st = hamok_node_join(l->node, 30000)) != HAMOK_OK) {
        die("join", hamok_status_str(st));
    }
    if ((st = hamok_map_open(l->node, "bench", &l->map)) != HAMOK_OK) {
        die("open", hamok_status_str(st));
    }
    hamok_id id = hamok_node_id(l->node);
    hamok_id_format(&id, l->id);
    /* Every member sees all the voters. */
    uint64_t end = now_ns() + 30000000000ull;
    for (;;) {
        hamok_peer_info p[MAXP + 1];
        size_t k = hamok_node_peers(l->node, p, MAXP + 1), v = 0;
        for (size_t j = 0; j < k && j <= MAXP; j++) {
            v += p[j].voter ? 1u : 0u;
        }
        if (v == peers && pc_leader(&C, peers, 0, 100) != SIZE_MAX) {
            return;
        }
        if (now_ns() > end) {
            die("cluster", "did not settle");
        }
    }
}

/* Make this peer the leader (leader = true) or a follower. */
static void place(local *l, bool leader)
{
    uint64_t end = now_ns() + 20000000000ull;
    while (hamok_node_is_leader(l->node) != leader) {
        if (now_ns() > end) {
            die("transfer", "leadership did not move");
        }
        if (leader) {
            size_t li = pc_leader(&C, 0, 0, 5000);
            if (li != SIZE_MAX) {
                char path[128];
                snprintf(path, sizeof path, "/v1/transfer?to=%s", l->id);
                pc_http(&C, li, "POST", path, NULL, 0, 5000, NULL);
            }
        } else {
            hamok_node_transfer_leadership(l->node, NULL, 5000);
        }
        hamok_node_sync(l->node, 5000);
    }
}

static void key_of(char *k, size_t cap, uint64_t i)
{
    snprintf(k, cap, "key-%011" PRIu64, i);
}

static void latency(local *l, int ops, size_t vlen, const char *label)
{
    uint64_t *lat = malloc((size_t)ops * sizeof *lat);
    char *val = malloc(vlen);
    memset(val, 'v', vlen);
    char key[32];
    for (int i = 0; i < ops; i++) {
        key_of(key, sizeof key, (uint64_t)i % 1000u);
        uint64_t t0 = now_ns();
        hamok_status st = hamok_map_set(l->map, key, 16, val, vlen, NULL, 5000);
        lat[i] = now_ns() - t0;
        if (st != HAMOK_OK) {
            die("set", hamok_status_str(st));
        }
    }
    qsort(lat, (size_t)ops, sizeof *lat, cmp_u64);
    printf("| sequential set, %-8s | %6zu B | %7d | p50 %7.1f us | p99 %7.1f us |\n", label, vlen,
           ops, (double)lat[ops / 2] / 1000.0, (double)lat[(size_t)ops * 99 / 100] / 1000.0);
    fflush(stdout);
    free(lat);
    free(val);
}

typedef struct tp_state {
    atomic_long done;
    atomic_long inflight;
    atomic_int errors;
} tp_state;

static void tp_done(void *ud, hamok_status st, const hamok_result *r)
{
    (void)r;
    tp_state *s = ud;
    if (st != HAMOK_OK) {
        atomic_fetch_add(&s->errors, 1);
    }
    atomic_fetch_add(&s->done, 1);
    atomic_fetch_sub(&s->inflight, 1);
}

static void throughput(local *l, long inflight, double seconds, size_t vlen, const char *label)
{
    tp_state s;
    atomic_init(&s.done, 0);
    atomic_init(&s.inflight, 0);
    atomic_init(&s.errors, 0);
    char *val = malloc(vlen);
    memset(val, 'w', vlen);
    char key[32];
    uint64_t i = 0, t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        if (atomic_load(&s.inflight) >= inflight) {
            hamok_proc_poll_pause(0);
            continue;
        }
        key_of(key, sizeof key, i++ % 100000u);
        atomic_fetch_add(&s.inflight, 1);
        hamok_map_set_async(l->map, key, 16, val, vlen, 10000, tp_done, &s);
    }
    while (atomic_load(&s.inflight) > 0) {
        hamok_proc_poll_pause(1);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| throughput, %-13s | %6zu B | %7ld in flight | %9.0f sets/s | errors %d |\n", label,
           vlen, inflight, (double)atomic_load(&s.done) / secs, atomic_load(&s.errors));
    fflush(stdout);
    free(val);
}

int main(int argc, char **argv)
{
    const char *transport = NULL, *nats_url = NULL;
    int peers = 3, ops = 5000;
    long inflight = 1000;
    double seconds = 3.0;
    size_t value = 16;
    bool floor = true;
    static const struct option longopts[] = {
        {"transport", required_argument, NULL, 't'},
        {"nats-url", required_argument, NULL, 'u'},
        {"peers", required_argument, NULL, 'p'},
        {"ops", required_argument, NULL, 'o'},
        {"inflight", required_argument, NULL, 'i'},
        {"seconds", required_argument, NULL, 's'},
        {"value", required_argument, NULL, 'v'},
        {"no-floor", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 't': transport = optarg; break;
        case 'u': nats_url = optarg; break;
        case 'p': peers = atoi(optarg); break;
        case 'o': ops = atoi(optarg); break;
        case 'i': inflight = atol(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'v': value = (size_t)atol(optarg); break;
        case 'f': floor = false; break;
        default:
            fprintf(stderr,
                    "usage: hamok-cluster-bench --transport zmq|nats [--nats-url URL] "
                    "[--peers N] [--ops K] [--inflight K] [--seconds S] [--value B] "
                    "[--no-floor]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    pc_transport t = transport != NULL && strcmp(transport, "nats") == 0  ? PC_NATS
                     : transport != NULL && strcmp(transport, "zmq") == 0 ? PC_ZMQ
                                                                          : 0;
    if (t == 0 || peers < 2 || peers > MAXP || ops < 2 || inflight < 1 || seconds <= 0 ||
        value < 1 || value > 512 * 1024) {
        fprintf(stderr, "hamok-cluster-bench: bad arguments (--help)\n");
        return 2;
    }
    if (!pc_init(&C, t, HAMOKCTL_PATH, "bench", 500)) {
        return 1;
    }
    natsd *server = NULL;
    if (t == PC_NATS) {
#ifdef BENCH_WITH_NATS
        if (nats_url == NULL) {
            natsd_config nc = {.jetstream = true}; /* the KV floor needs it */
            if ((server = natsd_start(&nc)) == NULL) {
                die("nats-server", "cannot start");
            }
            nats_url = natsd_url(server);
        }
#endif
        snprintf(C.nats_url, sizeof C.nats_url, "%s", nats_url != NULL ? nats_url : "");
    }
    if (floor) {
        char n_ops[24], n_in[24], secs[32];
        snprintf(n_ops, sizeof n_ops, "%d", ops);
        snprintf(n_in, sizeof n_in, "%ld", inflight);
        snprintf(secs, sizeof secs, "%g", seconds);
        printf("floor (same run, before the cluster starts):\n\n");
        if (t == PC_ZMQ) {
#ifdef ZMQ_FLOOR_PATH
            char *fa[] = {ZMQ_FLOOR_PATH, "--count",   n_ops, "--inflight",
                          n_in,           "--seconds", secs,  NULL};
            run_floor(fa);
#endif
        } else {
#ifdef NATS_FLOOR_PATH
            char *fa[] = {
                NATS_FLOOR_PATH, "--url", (char *)nats_url, "--only", "rr", "--count", n_ops,
                "--inflight",    n_in,    "--seconds",      secs,     NULL};
            run_floor(fa);
            char *fk[] = {
                NATS_FLOOR_PATH, "--url", (char *)nats_url, "--only", "kv", "--count", n_ops,
                "--inflight",    n_in,    "--seconds",      secs,     NULL};
            run_floor(fk);
#endif
        }
    }
    for (int i = 0; i < peers - 1; i++) {
        if (!pc_start(&C, (size_t)i, false, 15000)) {
            die("peer", "did not start");
        }
        if (pc_leader(&C, (size_t)i + 1, 0, 15000) == SIZE_MAX) {
            die("peer", "did not join");
        }
    }
    local l;
    start_local(&l, t, (size_t)peers);
    printf(
        "hamok-cluster-bench: %d peer processes over %s on loopback (1 here + %d hamokctl), "
        "hamok %s\n\n",
        peers, transport, peers - 1, hamok_version());
    place(&l, true);
    latency(&l, ops, value, "leader");
    place(&l, false);
    latency(&l, ops, value, "follower");
    place(&l, true);
    throughput(&l, inflight, seconds, value, "leader");
    hamok_map_close(&l.map);
    hamok_node_destroy(&l.node);
    pc_destroy(&C, false);
    natsd_stop(&server);
    return 0;
}
