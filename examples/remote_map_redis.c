/* hamok-remote-map-redis: three peers share a Redis hash through a remote
 * map (the original's redis-remote-map-example and
 * redis-remote-requestmap-example).
 *
 * The data lives only in Redis; Hamok orders the writes: every write goes
 * through the Raft log, the leader alone executes it against Redis, and
 * every peer gets the same events in the same order. Each peer has its own
 * Redis connection, as separate processes would.
 *
 *   1. writes from every peer: set, set over an existing key (returns the
 *      old value), insert over an existing key (keeps it: the original
 *      overwrote it, spec §7 A8), compare-and-set that matches and one that
 *      does not;
 *   2. reads straight from Redis, on any peer;
 *   3. the request-map pattern: peer 1 writes requests under fresh keys; a
 *      handler on peer 3 sees each insert and writes the answer (an
 *      update); peer 1 sees the updates, then deletes the requests;
 *   4. remove, clear.
 *
 * Checks: every write's result; the first events exactly as expected and
 * every peer's whole event log identical (same events, same order, same
 * log indices); the reads; three answers; the hash empty at the end.
 *
 *   hamok-remote-map-redis [--transport mem|zmq|nats] [--host 127.0.0.1]
 *                          [--port 6379] [--hash name]
 *
 * It needs a Redis server (redis-server --port 6379 --save '' will do). It
 * writes to the hash `name` (default "hamok-example") and `name:hamok`, and
 * leaves the hash empty at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/remote_map.h"
#include "redis_store.h"

#define PEERS 3

typedef struct peer {
    int no;
    hamok_node *node;
    hamok_redis_store *store;
    hamok_remote_map *map;
} peer;

static peer peers[PEERS];
static ex_event_log logs[PEERS];

/* The request-map pattern: handlers run on the loop thread, where blocking
 * calls are not allowed, so the handler answers with the _async write. */
static atomic_int answered;

static void on_answer_written(void *ud, hamok_status st, const hamok_result *r)
{
    (void)ud;
    (void)r;
    ex_check(st == HAMOK_OK, "the handler's answer was written: %s", hamok_status_str(st));
}

static void handler(void *ud, const hamok_map_event *ev)
{
    peer *p = ud;
    if (ev->type == HAMOK_MAP_INSERT && ev->key_len > 4 && memcmp(ev->key, "req:", 4) == 0) {
        char in[16] = "", answer[64];
        snprintf(in, sizeof in, "%.*s", (int)ev->value_len, (const char *)ev->value);
        int x = atoi(in);
        int n = snprintf(answer, sizeof answer, "%d (computed by peer %d)", x * x, p->no);
        hamok_remote_map_set_async(p->map, ev->key, ev->key_len, answer, (size_t)n, EX_TIMEOUT_MS,
                                   on_answer_written, NULL);
    }
}

static void requester(void *ud, const hamok_map_event *ev)
{
    (void)ud;
    if (ev->type == HAMOK_MAP_UPDATE && ev->key_len > 4 && memcmp(ev->key, "req:", 4) == 0) {
        ex_say("requester: %.*s -> %.*s", (int)ev->key_len, (const char *)ev->key,
               (int)ev->value_len, (const char *)ev->value);
        atomic_fetch_add(&answered, 1);
    }
}

static bool three_answers(void *ud)
{
    (void)ud;
    return atomic_load(&answered) >= 3;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *hash = "hamok-example";
    int port = 6379;
    const ex_int_option opts[] = {{"port", &port, 1, 65535, "Redis port"}};
    ex_text_option("host", &host, "Redis host");
    ex_text_option("hash", &hash, "Redis hash holding the map");
    ex_init(argc, argv, "three peers share a Redis hash through a remote map", opts, 1);

    /* Three peers join. */
    hamok_node *nodes[PEERS];
    for (int i = 0; i < PEERS; i++) {
        peers[i].no = i + 1;
        peers[i].node = nodes[i] = ex_node_new();
        ex_event_log_init(&logs[i]);
    }
    ex_join_all(nodes, PEERS);
    ex_say("three peers joined");

    /* Every peer opens the remote map over its own Redis connection: any of
     * them may become leader and execute. */
    for (int i = 0; i < PEERS; i++) {
        hamok_status st = hamok_redis_store_new(host, port, hash, 2000, &peers[i].store);
        if (st != HAMOK_OK) {
            fprintf(stderr, "cannot reach Redis at %s:%d\n", host, port);
            return 1;
        }
        ex_must(hamok_remote_map_open(peers[i].node, "cache", &hamok_redis_store_ops,
                                      peers[i].store, &peers[i].map),
                "open");
        ex_must(hamok_remote_map_on(peers[i].map, ex_event_log_add, &logs[i]), "listen");
    }
    /* Start from an empty hash (left over from an earlier run, maybe). */
    const int T = EX_TIMEOUT_MS;
    ex_must(hamok_remote_map_clear(peers[0].map, T), "clear");

    /* 1. Writes from every peer; each returns once executed in Redis. */
    hamok_value old, existing;
    ex_must(hamok_remote_map_set_str(peers[0].map, "alice", "1", &old, T), "set alice");
    ex_check(!old.present, "alice was new");
    ex_must(hamok_remote_map_set_str(peers[1].map, "bob", "2", NULL, T), "set bob");
    ex_must(hamok_remote_map_set_str(peers[2].map, "alice", "3", &old, T), "update alice");
    ex_check(ex_value_is(HAMOK_OK, &old, "1"), "set returns the old value");
    ex_must(hamok_remote_map_insert(peers[1].map, "alice", 5, "9", 1, &existing, T), "insert");
    ex_check(ex_value_is(HAMOK_OK, &existing, "3"), "insert keeps the existing value");
    bool updated = false;
    ex_must(hamok_remote_map_update_if(peers[2].map, "bob", 3, "20", 2, "2", 1, &updated, T),
            "update_if");
    ex_check(updated, "compare and set matched");
    ex_must(hamok_remote_map_update_if(peers[0].map, "bob", 3, "21", 2, "2", 1, &updated, T),
            "update_if");
    ex_check(!updated, "compare and set with a stale expectation refused");
    static const char *const expected[] = {
        "clear", "insert alice=1", "insert bob=2", "update alice: 1 -> 3", "update bob: 2 -> 20",
    };
    ex_event_logs_expect(logs, PEERS, expected, 5);
    ex_say("1. writes from every peer; the same 5 events on every peer");

    /* 2. Reads go straight to Redis, from any peer. */
    hamok_value v;
    ex_check(ex_value_is(hamok_remote_map_get_str(peers[1].map, "alice", &v), &v, "3"),
             "peer 2 reads alice = 3");
    uint64_t size = 0;
    ex_must(hamok_remote_map_size(peers[2].map, &size), "size");
    ex_check(size == 2, "two keys (%llu)", (unsigned long long)size);
    ex_say("2. peers 2 and 3 read alice = 3 and 2 keys from Redis");

    /* 3. The request map: peer 3 handles requests that peer 1 makes. */
    ex_must(hamok_remote_map_on(peers[2].map, handler, &peers[2]), "handler");
    ex_must(hamok_remote_map_on(peers[0].map, requester, &peers[0]), "requester");
    for (int i = 1; i <= 3; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "req:%d", i);
        snprintf(val, sizeof val, "%d", i * 7);
        ex_must(hamok_remote_map_insert(peers[0].map, key, strlen(key), val, strlen(val), NULL, T),
                "request");
    }
    ex_check(ex_wait(three_answers, NULL, T), "three answers");
    hamok_remote_map_off(peers[2].map, handler, &peers[2]);
    hamok_remote_map_off(peers[0].map, requester, &peers[0]);
    hamok_kv done[3] = {
        {"req:1", 5, false, NULL, 0}, {"req:2", 5, false, NULL, 0}, {"req:3", 5, false, NULL, 0}};
    hamok_kvs removed;
    ex_must(hamok_remote_map_remove_all(peers[0].map, done, 3, &removed, T), "remove");
    ex_check(removed.n == 3, "three requests removed");
    hamok_kvs_free(&removed);
    ex_say("3. three requests answered through the map, then removed");

    /* 4. Clean up: remove, clear. */
    ex_must(hamok_remote_map_remove(peers[1].map, "bob", 3, &v, T), "remove bob");
    ex_check(ex_value_is(HAMOK_OK, &v, "20"), "remove returns the value");
    ex_must(hamok_remote_map_clear(peers[2].map, T), "clear");
    ex_must(hamok_remote_map_size(peers[0].map, &size), "size");
    ex_check(size == 0, "the hash is empty");
    /* 5 events of step 1; 3 requests, 3 answers, 3 removes; bob; clear */
    ex_event_logs_expect(logs, PEERS, NULL, 5 + 3 + 3 + 3 + 1 + 1);
    ex_say("4. every peer saw the same 16 events in the same order");

    for (int i = 0; i < PEERS; i++) {
        hamok_remote_map_close(&peers[i].map);
        hamok_redis_store_destroy(&peers[i].store);
    }
    for (int i = 0; i < PEERS; i++) {
        ex_node_destroy(&peers[i].node);
        ex_event_log_destroy(&logs[i]);
    }
    return ex_finish();
}
