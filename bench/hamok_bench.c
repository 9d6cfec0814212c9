/* hamok-bench: N peers in one process over the in-process transport, driven
 * through the public API only (what an application gets).
 *
 *   hamok-bench [--peers N] [--ops K] [--inflight K] [--entries N] [--value B]
 *               [--seconds S] [--only latency|throughput|rss]
 *
 * Prints a table: sequential map_set latency (p50/p99) issued on the leader
 * and on a follower; throughput with K writes in flight (async API);
 * resident memory after N entries. The figures go in bench/README.md with
 * the command and the machine; no pass/fail here. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/hamok.h"
#include "hamok/map.h"
#include "hamok/mem.h"
#include "hamok/node.h"

#define MAXP 7

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

typedef struct bench {
    hamok_mem_hub *hub;
    hamok_node *nodes[MAXP];
    hamok_map *maps[MAXP];
    int n;
    size_t leader;
} bench;

static void die(const char *what, hamok_status st)
{
    fprintf(stderr, "hamok-bench: %s: %s\n", what, hamok_status_str(st));
    exit(1);
}

static void start(bench *b, int peers)
{
    memset(b, 0, sizeof *b);
    b->n = peers;
    hamok_status st = hamok_mem_hub_new(&b->hub);
    if (st != HAMOK_OK) {
        die("hub", st);
    }
    for (int i = 0; i < peers; i++) {
        hamok_config *cfg;
        hamok_config_new(&cfg);
        hamok_config_set_cluster(cfg, "bench");
        hamok_config_set_timing(cfg, 300, 50);
        hamok_transport *t;
        hamok_mem_transport_new(b->hub, &t);
        if ((st = hamok_node_new(&b->nodes[i], cfg, &t)) != HAMOK_OK) {
            die("node", st);
        }
        hamok_config_destroy(&cfg);
    }
    for (int i = 0; i < peers; i++) {
        hamok_node_join_async(b->nodes[i], 20000, NULL, NULL);
    }
    for (int i = 0; i < peers; i++) {
        if ((st = hamok_node_join(b->nodes[i], 20000)) != HAMOK_OK) {
            die("join", st);
        }
        if ((st = hamok_map_open(b->nodes[i], "bench", &b->maps[i])) != HAMOK_OK) {
            die("open", st);
        }
    }
    /* Wait until every peer is a voter and they agree on the leader. */
    for (int tries = 0; tries < 5000; tries++) {
        int voters_ok = 1;
        for (int i = 0; i < peers; i++) {
            hamok_peer_info p[MAXP + 1];
            size_t k = hamok_node_peers(b->nodes[i], p, MAXP + 1);
            size_t v = 0;
            for (size_t j = 0; j < k && j < MAXP + 1; j++) {
                v += p[j].voter ? 1u : 0u;
            }
            voters_ok &= v == (size_t)peers;
        }
        b->leader = SIZE_MAX;
        for (int i = 0; i < peers; i++) {
            if (hamok_node_is_leader(b->nodes[i])) {
                b->leader = (size_t)i;
            }
        }
        if (voters_ok && b->leader != SIZE_MAX) {
            return;
        }
        sleep_ms(2);
    }
    die("cluster did not settle", HAMOK_ERR_TIMEOUT);
}

static void stop(bench *b)
{
    for (int i = 0; i < b->n; i++) {
        hamok_map_close(&b->maps[i]);
        hamok_node_destroy(&b->nodes[i]);
    }
    hamok_mem_hub_destroy(&b->hub);
}

static void key_of(char *k, size_t cap, uint64_t i)
{
    snprintf(k, cap, "key-%011" PRIu64, i); /* 15 bytes + NUL: 16-byte keys */
}

static void latency(bench *b, size_t who, int ops, size_t vlen, const char *label)
{
    uint64_t *lat = malloc((size_t)ops * sizeof *lat);
    char *val = malloc(vlen);
    memset(val, 'v', vlen);
    char key[32];
    for (int i = 0; i < ops; i++) {
        key_of(key, sizeof key, (uint64_t)i % 1000u);
        uint64_t t0 = now_ns();
        hamok_status st = hamok_map_set(b->maps[who], key, 16, val, vlen, NULL, 5000);
        lat[i] = now_ns() - t0;
        if (st != HAMOK_OK) {
            die("set", st);
        }
    }
    qsort(lat, (size_t)ops, sizeof *lat, cmp_u64);
    printf("| sequential set, %-8s | %6zu B | %7d | p50 %7.1f us | p99 %7.1f us |\n", label, vlen,
           ops, (double)lat[ops / 2] / 1000.0, (double)lat[(size_t)ops * 99 / 100] / 1000.0);
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

static void throughput(bench *b, size_t who, long inflight, double seconds, size_t vlen,
                       const char *label)
{
    tp_state s;
    atomic_init(&s.done, 0);
    atomic_init(&s.inflight, 0);
    atomic_init(&s.errors, 0);
    char *val = malloc(vlen);
    memset(val, 'w', vlen);
    char key[32];
    uint64_t i = 0;
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        if (atomic_load(&s.inflight) >= inflight) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            continue;
        }
        key_of(key, sizeof key, i++ % 100000u);
        atomic_fetch_add(&s.inflight, 1);
        hamok_map_set_async(b->maps[who], key, 16, val, vlen, 10000, tp_done, &s);
    }
    while (atomic_load(&s.inflight) > 0) {
        sleep_ms(1);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| throughput, %-13s | %6zu B | %7ld in flight | %9.0f sets/s | errors %d |\n", label,
           vlen, inflight, (double)atomic_load(&s.done) / secs, atomic_load(&s.errors));
    free(val);
}

static void rss(bench *b, long entries)
{
    long before = rss_kib();
    const long batch = 500;
    hamok_kv kvs[500];
    char keys[500][32];
    char val[16];
    memset(val, 'r', sizeof val);
    for (long i = 0; i < entries; i += batch) {
        long k = entries - i < batch ? entries - i : batch;
        for (long j = 0; j < k; j++) {
            key_of(keys[j], sizeof keys[j], (uint64_t)(i + j));
            kvs[j] = (hamok_kv){keys[j], 16, true, val, sizeof val};
        }
        hamok_status st = hamok_map_set_all(b->maps[b->leader], kvs, (size_t)k, NULL, 10000);
        if (st != HAMOK_OK) {
            die("set_all", st);
        }
    }
    for (int i = 0; i < b->n; i++) {
        hamok_node_sync(b->nodes[i], 10000);
    }
    long after = rss_kib();
    printf("| RSS, %d peers, %ld x 16 B entries | %ld KiB before | %ld KiB after (%.1f MiB) |\n",
           b->n, entries, before, after, (double)after / 1024.0);
}

int main(int argc, char **argv)
{
    int peers = 3, ops = 20000;
    long inflight = 1000, entries = 100000;
    double seconds = 3.0;
    const char *only = NULL;
    static const struct option longopts[] = {
        {"peers", required_argument, NULL, 'p'},    {"ops", required_argument, NULL, 'o'},
        {"inflight", required_argument, NULL, 'i'}, {"entries", required_argument, NULL, 'e'},
        {"seconds", required_argument, NULL, 's'},  {"only", required_argument, NULL, 'x'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "p:o:i:e:s:x:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': peers = atoi(optarg); break;
        case 'o': ops = atoi(optarg); break;
        case 'i': inflight = atol(optarg); break;
        case 'e': entries = atol(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'x': only = optarg; break;
        default:
            fprintf(stderr,
                    "usage: hamok-bench [--peers N] [--ops K] [--inflight K] [--entries N] "
                    "[--seconds S] [--only latency|throughput|rss]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (peers < 1 || peers > MAXP || ops < 1 || inflight < 1 || entries < 0 || seconds <= 0) {
        fprintf(stderr, "hamok-bench: bad arguments\n");
        return 2;
    }
    printf("hamok-bench: %d peers, mem transport, hamok %s\n\n", peers, hamok_version());
    bench b;
    if (only == NULL || strcmp(only, "latency") == 0 || strcmp(only, "throughput") == 0) {
        start(&b, peers);
        size_t follower = (b.leader + 1) % (size_t)peers;
        if (only == NULL || strcmp(only, "latency") == 0) {
            latency(&b, b.leader, ops, 16, "leader");
            if (peers > 1) {
                latency(&b, follower, ops, 16, "follower");
            }
            latency(&b, b.leader, ops, 1024, "leader");
            if (peers > 1) {
                latency(&b, follower, ops, 1024, "follower");
            }
        }
        if (only == NULL || strcmp(only, "throughput") == 0) {
            throughput(&b, b.leader, inflight, seconds, 16, "leader");
            if (peers > 1) {
                throughput(&b, follower, inflight, seconds, 16, "follower");
            }
            throughput(&b, b.leader, inflight, seconds, 1024, "leader");
        }
        stop(&b);
    }
    if (only == NULL || strcmp(only, "rss") == 0) {
        start(&b, peers);
        rss(&b, entries);
        stop(&b);
    }
    return 0;
}
