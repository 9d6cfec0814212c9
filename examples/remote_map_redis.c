/* hamok-remote-map-redis: three peers share a Redis hash through a remote
 * map (the original's redis-remote-map-example and
 * redis-remote-requestmap-example).
 *
 * The peers run in one process on the in-process transport; each has its own
 * Redis connection, as separate processes would. The data lives only in
 * Redis; Hamok orders the writes: every write goes through the Raft log,
 * the leader alone executes it against Redis, and every peer gets the same
 * events in the same order.
 *
 *   hamok-remote-map-redis [--host 127.0.0.1] [--port 6379] [--hash name]
 *
 * It needs a Redis server (redis-server --port 6379 --save '' will do). It
 * writes to the hash `name` (default "hamok-example") and `name:hamok`, and
 * leaves the hash empty at the end. Exit status 0 when everything it checks
 * held. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/remote_map.h"
#include "redis_store.h"

#define PEERS 3
#define T_MS  10000

typedef struct peer {
    int no;
    hamok_node *node;
    hamok_redis_store *store;
    hamok_remote_map *map;
    atomic_int events;
} peer;

static peer peers[PEERS];
static int failures;

static void check(bool ok, const char *what)
{
    if (!ok) {
        printf("  FAILED: %s\n", what);
        failures++;
    }
}

static void check_st(hamok_status st, const char *what)
{
    if (st != HAMOK_OK) {
        printf("  FAILED: %s: %s\n", what, hamok_status_str(st));
        failures++;
    }
}

/* Events fire on each peer's loop thread. */
static void on_event(void *ud, const hamok_map_event *ev)
{
    peer *p = ud;
    atomic_fetch_add(&p->events, 1);
    switch (ev->type) {
    case HAMOK_MAP_INSERT:
        printf("  peer %d: insert %.*s = %.*s\n", p->no, (int)ev->key_len, (const char *)ev->key,
               (int)ev->value_len, (const char *)ev->value);
        break;
    case HAMOK_MAP_UPDATE:
        printf("  peer %d: update %.*s: %.*s -> %.*s\n", p->no, (int)ev->key_len,
               (const char *)ev->key, (int)ev->old_len, (const char *)ev->old, (int)ev->value_len,
               (const char *)ev->value);
        break;
    case HAMOK_MAP_REMOVE:
        printf("  peer %d: remove %.*s (was %.*s)\n", p->no, (int)ev->key_len,
               (const char *)ev->key, (int)ev->old_len, (const char *)ev->old);
        break;
    case HAMOK_MAP_CLEAR: printf("  peer %d: clear\n", p->no); break;
    }
    fflush(stdout);
}

/* Wait (with a deadline) until every peer has seen `n` events. */
static bool events_reach(int n)
{
    for (int waited = 0; waited < T_MS; waited += 5) {
        bool all = true;
        for (int i = 0; i < PEERS; i++) {
            all &= atomic_load(&peers[i].events) >= n;
        }
        if (all) {
            return true;
        }
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The request-map pattern: the requester writes a request under a fresh key;
 * a handler on another peer sees the insert, computes and writes the answer
 * (an update); the requester sees the update, takes the answer and deletes
 * the key. Handlers run on the loop thread, where blocking calls are not
 * allowed, so the handler answers with the _async write. */
static atomic_int answered;

static void on_answer_written(void *ud, hamok_status st, const hamok_result *r)
{
    (void)ud;
    (void)r;
    check_st(st, "handler's answer");
}

static void handler(void *ud, const hamok_map_event *ev)
{
    peer *p = ud;
    if (ev->type == HAMOK_MAP_INSERT && ev->key_len > 4 && memcmp(ev->key, "req:", 4) == 0) {
        char in[16] = "", answer[64];
        snprintf(in, sizeof in, "%.*s", (int)ev->value_len, (const char *)ev->value);
        int x = atoi(in);
        int n = snprintf(answer, sizeof answer, "%d (computed by peer %d)", x * x, p->no);
        hamok_remote_map_set_async(p->map, ev->key, ev->key_len, answer, (size_t)n, T_MS,
                                   on_answer_written, NULL);
    }
}

static void requester(void *ud, const hamok_map_event *ev)
{
    (void)ud;
    if (ev->type == HAMOK_MAP_UPDATE && ev->key_len > 4 && memcmp(ev->key, "req:", 4) == 0) {
        printf("  requester: %.*s -> %.*s\n", (int)ev->key_len, (const char *)ev->key,
               (int)ev->value_len, (const char *)ev->value);
        atomic_fetch_add(&answered, 1);
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *hash = "hamok-example";
    int port = 6379;
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"hash", required_argument, NULL, 'k'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'k': hash = optarg; break;
        default:
            fprintf(stderr, "usage: %s [--host H] [--port P] [--hash NAME]\n", argv[0]);
            return 2;
        }
    }

    /* 1. Three peers on one in-process hub. */
    hamok_mem_hub *hub;
    if (hamok_mem_hub_new(&hub) != HAMOK_OK) {
        return 1;
    }
    for (int i = 0; i < PEERS; i++) {
        peers[i].no = i + 1;
        hamok_config *cfg;
        hamok_config_new(&cfg);
        hamok_config_set_cluster(cfg, "redis-example");
        hamok_config_set_timing(cfg, 300, 50);
        hamok_transport *t;
        hamok_mem_transport_new(hub, &t);
        hamok_status st = hamok_node_new(&peers[i].node, cfg, &t);
        hamok_config_destroy(&cfg);
        if (st != HAMOK_OK) {
            fprintf(stderr, "node: %s\n", hamok_status_str(st));
            return 1;
        }
    }
    for (int i = 0; i < PEERS; i++) {
        hamok_node_join_async(peers[i].node, T_MS, NULL, NULL);
    }
    for (int i = 0; i < PEERS; i++) {
        check_st(hamok_node_join(peers[i].node, T_MS), "join");
    }
    printf("three peers joined\n");

    /* 2. Every peer opens the remote map over its own Redis connection:
     *    any of them may become leader and execute. */
    for (int i = 0; i < PEERS; i++) {
        hamok_status st = hamok_redis_store_new(host, port, hash, 2000, &peers[i].store);
        if (st != HAMOK_OK) {
            fprintf(stderr, "cannot reach Redis at %s:%d\n", host, port);
            return 1;
        }
        check_st(hamok_remote_map_open(peers[i].node, "cache", &hamok_redis_store_ops,
                                       peers[i].store, &peers[i].map),
                 "open");
        check_st(hamok_remote_map_on(peers[i].map, on_event, &peers[i]), "listen");
    }
    /* Start from an empty hash (left over from an earlier run, maybe). */
    check_st(hamok_remote_map_clear(peers[0].map, T_MS), "clear");
    check(events_reach(1), "clear event on every peer");

    /* 3. Writes from every peer; each returns once executed in Redis. */
    printf("writes from every peer:\n");
    hamok_value old;
    check_st(hamok_remote_map_set_str(peers[0].map, "alice", "1", &old, T_MS), "set alice");
    check_st(hamok_remote_map_set_str(peers[1].map, "bob", "2", &old, T_MS), "set bob");
    check_st(hamok_remote_map_set_str(peers[2].map, "alice", "3", &old, T_MS), "update alice");
    check(old.present && strcmp(old.data, "1") == 0, "set returns the old value");
    hamok_value_free(&old);
    /* insert never overwrites: it returns what stays */
    hamok_value existing;
    check_st(hamok_remote_map_insert(peers[1].map, "alice", 5, "9", 1, &existing, T_MS), "insert");
    check(existing.present && strcmp(existing.data, "3") == 0, "insert keeps the existing value");
    hamok_value_free(&existing);
    bool updated = false;
    check_st(hamok_remote_map_update_if(peers[2].map, "bob", 3, "20", 2, "2", 1, &updated, T_MS),
             "update_if");
    check(updated, "compare and set matched");
    check(events_reach(5), "five events on every peer (with the first clear)");

    /* 4. Reads go straight to Redis, from any peer. */
    hamok_value v;
    check_st(hamok_remote_map_get_str(peers[1].map, "alice", &v), "get");
    check(v.present && strcmp(v.data, "3") == 0, "peer 2 reads alice = 3");
    printf("peer 2 reads alice = %s\n", v.present ? (const char *)v.data : "(absent)");
    hamok_value_free(&v);
    uint64_t size = 0;
    check_st(hamok_remote_map_size(peers[2].map, &size), "size");
    check(size == 2, "two keys");

    /* 5. The request map: peer 3 handles requests that peer 1 makes. */
    printf("request map:\n");
    check_st(hamok_remote_map_on(peers[2].map, handler, &peers[2]), "handler");
    check_st(hamok_remote_map_on(peers[0].map, requester, &peers[0]), "requester");
    for (int i = 1; i <= 3; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "req:%d", i);
        snprintf(val, sizeof val, "%d", i * 7);
        check_st(
            hamok_remote_map_insert(peers[0].map, key, strlen(key), val, strlen(val), NULL, T_MS),
            "request");
    }
    for (int waited = 0; atomic_load(&answered) < 3 && waited < T_MS; waited += 5) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    check(atomic_load(&answered) == 3, "three answers");
    hamok_remote_map_off(peers[2].map, handler, &peers[2]);
    hamok_remote_map_off(peers[0].map, requester, &peers[0]);
    hamok_kv done[3] = {
        {"req:1", 5, false, NULL, 0}, {"req:2", 5, false, NULL, 0}, {"req:3", 5, false, NULL, 0}};
    hamok_kvs removed;
    check_st(hamok_remote_map_remove_all(peers[0].map, done, 3, &removed, T_MS), "remove");
    check(removed.n == 3, "three requests removed");
    hamok_kvs_free(&removed);

    /* 6. Clean up: remove, clear. */
    check_st(hamok_remote_map_remove(peers[1].map, "bob", 3, &v, T_MS), "remove bob");
    check(v.present && strcmp(v.data, "20") == 0, "remove returns the value");
    hamok_value_free(&v);
    check_st(hamok_remote_map_clear(peers[2].map, T_MS), "clear");
    /* clear; 4 writes (the refused insert changes nothing: no event); 3
     * requests, 3 answers, 3 removes; bob; clear */
    int want = 1 + 4 + 3 + 3 + 3 + 1 + 1;
    check(events_reach(want), "every event on every peer");
    for (int i = 0; i < PEERS; i++) {
        check(atomic_load(&peers[i].events) == want, "the same number of events everywhere");
    }
    for (int i = 0; i < PEERS; i++) {
        hamok_remote_map_close(&peers[i].map);
        hamok_redis_store_destroy(&peers[i].store);
    }
    for (int i = 0; i < PEERS; i++) {
        hamok_node_destroy(&peers[i].node);
    }
    hamok_mem_hub_destroy(&hub);
    printf("%s\n", failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
