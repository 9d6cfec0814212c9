/* hamok-remote-bench: the remote map through its public API, three peers on
 * the mem transport sharing one store.
 *
 *   hamok-remote-bench [--store mem|redis] [--port 6379] [--ops 2000]
 *                      [--inflight 1000] [--value 16]
 *
 * Measures: sequential set latency (p50/p99) issued on the leader and on a
 * follower — each set is a request commit, a store read, a store commit and
 * an outcome commit —, then throughput with `inflight` async sets
 * outstanding (batches form: many requests per store commit). `mem` is an
 * in-process store (a hash table behind a mutex, exactly-once support like
 * a real one); `redis` is examples/redis_store.c against a server on
 * 127.0.0.1:port that you start (redis-server --port 6379 --save ''). */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/remote_map.h"
#ifdef HAMOK_BENCH_REDIS
#include "redis_store.h"
#endif

#define PEERS 3
#define T_MS  20000

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ------------------------------------------------------------------------ */
/* An in-process store: chained hash table, token and outcome. */

typedef struct bent {
    struct bent *next;
    size_t klen, vlen;
    char *k, *v;
} bent;

#define NB 65536u

typedef struct bstore {
    pthread_mutex_t mu;
    bent *b[NB];
    uint64_t n;
    char *token, *outcome;
    size_t token_len, outcome_len;
} bstore;

static uint32_t fnv(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 16777619u;
    }
    return h & (NB - 1);
}

static bent **slot(bstore *s, const void *k, size_t kl)
{
    bent **e = &s->b[fnv(k, kl)];
    while (*e != NULL && !((*e)->klen == kl && memcmp((*e)->k, k, kl) == 0)) {
        e = &(*e)->next;
    }
    return e;
}

static char *copy(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (n > 0) {
        memcpy(d, p, n);
    }
    return d;
}

static hamok_status b_get(void *ud, const hamok_kv *keys, size_t n, hamok_remote_out *out)
{
    bstore *s = ud;
    hamok_status st = HAMOK_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n && st == HAMOK_OK; i++) {
        bent *e = *slot(s, keys[i].key, keys[i].key_len);
        if (e != NULL) {
            st = hamok_remote_out_put(out, e->k, e->klen, e->v, e->vlen);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static hamok_status b_scan(void *ud, hamok_remote_out *out)
{
    bstore *s = ud;
    hamok_status st = HAMOK_OK;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < NB && st == HAMOK_OK; i++) {
        for (bent *e = s->b[i]; e != NULL && st == HAMOK_OK; e = e->next) {
            st = hamok_remote_out_put(out, e->k, e->klen, e->v, e->vlen);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static hamok_status b_size(void *ud, uint64_t *n)
{
    bstore *s = ud;
    pthread_mutex_lock(&s->mu);
    *n = s->n;
    pthread_mutex_unlock(&s->mu);
    return HAMOK_OK;
}

static void b_clear(bstore *s)
{
    for (size_t i = 0; i < NB; i++) {
        while (s->b[i] != NULL) {
            bent *e = s->b[i];
            s->b[i] = e->next;
            free(e->k);
            free(e->v);
            free(e);
        }
    }
    s->n = 0;
}

static hamok_status b_commit(void *ud, const hamok_remote_commit *c)
{
    bstore *s = ud;
    pthread_mutex_lock(&s->mu);
    if (c->expect_token_len != s->token_len ||
        (s->token_len > 0 && memcmp(c->expect_token, s->token, s->token_len) != 0)) {
        pthread_mutex_unlock(&s->mu);
        return HAMOK_ERR_CONFLICT;
    }
    if (c->clear) {
        b_clear(s);
    }
    for (size_t i = 0; i < c->n_changes; i++) {
        const hamok_remote_change *ch = &c->changes[i];
        bent **p = slot(s, ch->key, ch->key_len);
        if (ch->has_value) {
            if (*p == NULL) {
                *p = calloc(1, sizeof **p);
                (*p)->k = copy(ch->key, ch->key_len);
                (*p)->klen = ch->key_len;
                s->n++;
            }
            free((*p)->v);
            (*p)->v = copy(ch->value, ch->value_len);
            (*p)->vlen = ch->value_len;
        } else if (*p != NULL) {
            bent *e = *p;
            *p = e->next;
            free(e->k);
            free(e->v);
            free(e);
            s->n--;
        }
    }
    free(s->token);
    free(s->outcome);
    s->token = copy(c->token, c->token_len);
    s->token_len = c->token_len;
    s->outcome = copy(c->outcome, c->outcome_len);
    s->outcome_len = c->outcome_len;
    pthread_mutex_unlock(&s->mu);
    return HAMOK_OK;
}

static hamok_status b_load(void *ud, hamok_remote_out *out)
{
    bstore *s = ud;
    hamok_status st = HAMOK_OK;
    pthread_mutex_lock(&s->mu);
    if (s->token_len > 0) {
        st = hamok_remote_out_put(out, s->token, s->token_len, s->outcome, s->outcome_len);
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

static const hamok_remote_store_ops B_OPS = {
    HAMOK_REMOTE_STORE_ABI, b_get, b_scan, b_size, b_commit, b_load};

/* ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int n_ops = 2000, inflight = 1000, value_len = 16;

static void sequential(hamok_remote_map *m, const char *who, int base, const char *value)
{
    uint64_t *lat = malloc((size_t)n_ops * sizeof *lat);
    for (int i = 0; i < n_ops; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s-%d", who, base + i);
        uint64_t t = now_us();
        hamok_status st =
            hamok_remote_map_set(m, key, strlen(key), value, (size_t)value_len, NULL, T_MS);
        lat[i] = now_us() - t;
        if (st != HAMOK_OK) {
            fprintf(stderr, "set: %s\n", hamok_status_str(st));
            exit(1);
        }
    }
    qsort(lat, (size_t)n_ops, sizeof *lat, cmp_u64);
    printf("| sequential set from the %s | %d | %.1f µs | %.1f µs |\n", who, n_ops,
           (double)lat[n_ops / 2], (double)lat[n_ops * 99 / 100]);
    free(lat);
}

typedef struct flight {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int outstanding;
    int done;
    int failed;
} flight;

static void on_done(void *ud, hamok_status st, const hamok_result *r)
{
    (void)r;
    flight *f = ud;
    pthread_mutex_lock(&f->mu);
    f->outstanding--;
    f->done++;
    f->failed += st != HAMOK_OK;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void throughput(hamok_remote_map *m, const char *value, double seconds)
{
    flight f = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    uint64_t t0 = now_us(), end = t0 + (uint64_t)(seconds * 1e6);
    int i = 0;
    pthread_mutex_lock(&f.mu);
    while (now_us() < end) {
        while (f.outstanding >= inflight) {
            pthread_cond_wait(&f.cv, &f.mu);
        }
        f.outstanding++;
        pthread_mutex_unlock(&f.mu);
        char key[32];
        snprintf(key, sizeof key, "t-%d", i++ % 100000);
        hamok_remote_map_set_async(m, key, strlen(key), value, (size_t)value_len, T_MS, on_done,
                                   &f);
        pthread_mutex_lock(&f.mu);
    }
    while (f.outstanding > 0) {
        pthread_cond_wait(&f.cv, &f.mu);
    }
    pthread_mutex_unlock(&f.mu);
    double secs = (double)(now_us() - t0) / 1e6;
    printf("| sets/s with %d in flight (follower) | %d | %.0f/s | %d failed |\n", inflight, f.done,
           (double)f.done / secs, f.failed);
}

int main(int argc, char **argv)
{
    const char *store_kind = "mem";
    int port = 6379;
    double seconds = 3;
    static const struct option opts[] = {{"store", required_argument, NULL, 's'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"ops", required_argument, NULL, 'n'},
                                         {"inflight", required_argument, NULL, 'k'},
                                         {"value", required_argument, NULL, 'v'},
                                         {"seconds", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': store_kind = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': n_ops = atoi(optarg); break;
        case 'k': inflight = atoi(optarg); break;
        case 'v': value_len = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        default: return 2;
        }
    }
    if (n_ops < 1 || inflight < 1 || value_len < 0) {
        return 2;
    }
    hamok_mem_hub *hub;
    hamok_mem_hub_new(&hub);
    hamok_node *nodes[PEERS];
    for (int i = 0; i < PEERS; i++) {
        hamok_config *cfg;
        hamok_config_new(&cfg);
        hamok_config_set_cluster(cfg, "remote-bench");
        hamok_transport *t;
        hamok_mem_transport_new(hub, &t);
        if (hamok_node_new(&nodes[i], cfg, &t) != HAMOK_OK) {
            return 1;
        }
        hamok_config_destroy(&cfg);
    }
    for (int i = 0; i < PEERS; i++) {
        hamok_node_join_async(nodes[i], T_MS, NULL, NULL);
    }
    for (int i = 0; i < PEERS; i++) {
        if (hamok_node_join(nodes[i], T_MS) != HAMOK_OK) {
            return 1;
        }
    }
    static bstore mem;
    pthread_mutex_init(&mem.mu, NULL);
    void *stores[PEERS];
    const hamok_remote_store_ops *ops = &B_OPS;
    for (int i = 0; i < PEERS; i++) {
        stores[i] = &mem;
    }
    if (strcmp(store_kind, "redis") == 0) {
#ifdef HAMOK_BENCH_REDIS
        ops = &hamok_redis_store_ops;
        for (int i = 0; i < PEERS; i++) {
            hamok_redis_store *rs;
            if (hamok_redis_store_new("127.0.0.1", port, "hamok-bench", 5000, &rs) != HAMOK_OK) {
                return 1;
            }
            stores[i] = rs;
        }
#else
        (void)port;
        fprintf(stderr, "built without hiredis\n");
        return 2;
#endif
    }
    hamok_remote_map *maps[PEERS];
    for (int i = 0; i < PEERS; i++) {
        if (hamok_remote_map_open(nodes[i], "bench", ops, stores[i], &maps[i]) != HAMOK_OK) {
            return 1;
        }
    }
    int leader = 0;
    for (int i = 0; i < PEERS; i++) {
        leader = hamok_node_is_leader(nodes[i]) ? i : leader;
    }
    int follower = (leader + 1) % PEERS;
    char *value = malloc((size_t)value_len + 1);
    memset(value, 'v', (size_t)value_len);
    hamok_remote_map_clear(maps[leader], T_MS);
    printf("3 peers, mem transport, store %s, %d-byte values\n\n", store_kind, value_len);
    printf("| what | n | p50 / rate | p99 |\n|---|---|---|---|\n");
    sequential(maps[leader], "leader", 0, value);
    sequential(maps[follower], "follower", 0, value);
    throughput(maps[follower], value, seconds);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(maps[leader], &st);
    printf("\nleader's worker: %" PRIu64 " requests in %" PRIu64
           " store commits (%.1f per commit)\n",
           st.executed, st.batches, st.batches ? (double)st.executed / (double)st.batches : 0.0);
    hamok_remote_map_clear(maps[leader], T_MS);
    for (int i = 0; i < PEERS; i++) {
        hamok_remote_map_close(&maps[i]);
#ifdef HAMOK_BENCH_REDIS
        if (ops != &B_OPS) {
            hamok_redis_store *rs = stores[i];
            hamok_redis_store_destroy(&rs);
        }
#endif
    }
    for (int i = 0; i < PEERS; i++) {
        hamok_node_destroy(&nodes[i]);
    }
    hamok_mem_hub_destroy(&hub);
    pthread_mutex_lock(&mem.mu);
    b_clear(&mem);
    free(mem.token);
    free(mem.outcome);
    pthread_mutex_unlock(&mem.mu);
    free(value);
    return 0;
}
