/* The Redis store of examples/redis_store.c against a real redis-server that
 * this test starts on a free loopback port (`--save '' --appendonly no`) and
 * stops by pid: the commit contract (conditional on the token, binary-safe,
 * clear), a remote map over Redis on three peers (every op, the same events
 * everywhere, reads through HMGET/HSCAN/HLEN over many entries), the leader
 * lost between its Redis commit and its outcomes (exactly once, from the
 * token and outcome kept in Redis), a new cluster on a hash left by an old
 * one, Redis errors answered with HAMOK_ERR_STORE, and the example program
 * run end to end. Label: redis. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/remote_map.h"
#include "loopback_server.h"
#include "redis_store.h"
#include "remote_test.h"

#define WAIT_MS 15000

static hamok_test_server g_redis;
static int g_port;

/* ------------------------------------------------------------------------ */
/* The server */

static redisContext *connect_direct(void)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    if (c != NULL && c->err != 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int start_server(void **state)
{
    (void)state;
    if (!hamok_test_server_start(&g_redis, HAMOK_TEST_REDIS, HAMOK_REDIS_SERVER)) {
        return -1;
    }
    g_port = g_redis.port;
    return 0;
}

static int stop_server_teardown(void **state)
{
    (void)state;
    hamok_test_server_stop(&g_redis);
    return 0;
}

/* A command on a direct connection; the reply (caller frees). */
static redisReply *cmd(const char *fmt, ...)
{
    redisContext *c = connect_direct();
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static hamok_redis_store *new_store(const char *hash)
{
    hamok_redis_store *s = NULL;
    assert_int_equal(hamok_redis_store_new("127.0.0.1", g_port, hash, 2000, &s), HAMOK_OK);
    return s;
}

/* ------------------------------------------------------------------------ */

static void test_commit_contract(void **state)
{
    (void)state;
    freeReplyObject(cmd("DEL c c:hamok"));
    hamok_redis_store *s = new_store("c");
    const hamok_remote_store_ops *ops = &hamok_redis_store_ops;
    /* Binary keys and values, an empty value. */
    hamok_remote_change ch[3] = {
        {"a\0b", 3, true, "v\0w", 3}, {"e", 1, true, "", 0}, {"gone", 4, false, NULL, 0}};
    hamok_remote_commit c = {false, ch, 3, "", 0, "T1", 2, "O1", 2, NULL, 0};
    assert_int_equal(ops->commit(s, &c), HAMOK_OK);
    redisReply *r = cmd("HGET c %b", "a\0b", (size_t)3);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 3);
    assert_memory_equal(r->str, "v\0w", 3);
    freeReplyObject(r);
    r = cmd("HGET c e");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 0);
    freeReplyObject(r);
    r = cmd("HMGET c:hamok token outcome");
    assert_string_equal(r->element[0]->str, "T1");
    assert_string_equal(r->element[1]->str, "O1");
    freeReplyObject(r);
    /* The wrong expected token: nothing written. */
    hamok_remote_change ch2[1] = {{"x", 1, true, "1", 1}};
    hamok_remote_commit c2 = {true, ch2, 1, "T0", 2, "T2", 2, "O2", 2, NULL, 0};
    assert_int_equal(ops->commit(s, &c2), HAMOK_ERR_CONFLICT);
    uint64_t n = 0;
    assert_int_equal(ops->size(s, &n), HAMOK_OK);
    assert_int_equal(n, 2);
    /* The right one: clear, then the changes, then the new token. */
    c2.expect_token = "T1";
    assert_int_equal(ops->commit(s, &c2), HAMOK_OK);
    assert_int_equal(ops->size(s, &n), HAMOK_OK);
    assert_int_equal(n, 1);
    r = cmd("HGET c:hamok token");
    assert_string_equal(r->str, "T2");
    freeReplyObject(r);
    /* A delete. */
    hamok_remote_change ch3[1] = {{"x", 1, false, NULL, 0}};
    hamok_remote_commit c3 = {false, ch3, 1, "T2", 2, "T3", 2, "", 0, NULL, 0};
    assert_int_equal(ops->commit(s, &c3), HAMOK_OK);
    assert_int_equal(ops->size(s, &n), HAMOK_OK);
    assert_int_equal(n, 0);
    hamok_redis_store_destroy(&s);
    assert_null(s);
    /* Nobody there. */
    int closed = hamok_test_free_port();
    assert_int_equal(hamok_redis_store_new("127.0.0.1", closed, "c", 500, &s), HAMOK_ERR_TRANSPORT);
    assert_null(s);
    assert_int_equal(hamok_redis_store_new("127.0.0.1", g_port, "", 500, &s), HAMOK_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Peers */

#define N 3

typedef struct peers {
    hamok_mem_hub *hub;
    hamok_node *node[N];
    hamok_redis_store *store[N];
    hamok_remote_map *map[N];
    ev_log ev[N];
    size_t n;
} peers;

static void peers_start(peers *p, size_t n, const char *hash, const hamok_remote_store_ops *ops)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    assert_int_equal(hamok_mem_hub_new(&p->hub), HAMOK_OK);
    for (size_t i = 0; i < n; i++) {
        hamok_config *cfg;
        assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
        assert_int_equal(hamok_config_set_cluster(cfg, "redis-test"), HAMOK_OK);
        assert_int_equal(hamok_config_set_timing(cfg, 150, 30), HAMOK_OK);
        assert_int_equal(hamok_config_set_peer_timeout(cfg, 0), HAMOK_OK);
        assert_int_equal(hamok_config_set_request_timeout(cfg, 1500), HAMOK_OK);
        hamok_transport *t;
        assert_int_equal(hamok_mem_transport_new(p->hub, &t), HAMOK_OK);
        assert_int_equal(hamok_node_new(&p->node[i], cfg, &t), HAMOK_OK);
        hamok_config_destroy(&cfg);
    }
    for (size_t i = 0; i < n; i++) {
        hamok_node_join_async(p->node[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hamok_node_join(p->node[i], WAIT_MS), HAMOK_OK);
    }
    for (size_t i = 0; i < n; i++) {
        ev_init(&p->ev[i]);
        p->store[i] = new_store(hash);
        assert_int_equal(hamok_remote_map_open(p->node[i], "rm", ops, p->store[i], &p->map[i]),
                         HAMOK_OK);
        assert_int_equal(hamok_remote_map_on(p->map[i], on_event, &p->ev[i]), HAMOK_OK);
    }
}

static void peers_stop(peers *p)
{
    for (size_t i = 0; i < p->n; i++) {
        hamok_remote_map_close(&p->map[i]);
        hamok_redis_store_destroy(&p->store[i]);
    }
    for (size_t i = 0; i < p->n; i++) {
        hamok_node_destroy(&p->node[i]);
    }
    assert_int_equal(hamok_mem_hub_destroy(&p->hub), HAMOK_OK);
}

static size_t leader(peers *p, size_t not )
{
    for (size_t i = 0; i < p->n; i++) {
        if (i != not &&p->node[i] != NULL && hamok_node_is_leader(p->node[i])) {
            return i;
        }
    }
    return SIZE_MAX;
}

typedef struct ev_want {
    peers *p;
    int n;
} ev_want;

static bool all_events(void *ud)
{
    ev_want *w = ud;
    for (size_t i = 0; i < w->p->n; i++) {
        if (ev_count(&w->p->ev[i]) < w->n) {
            return false;
        }
    }
    return true;
}

static void same_events(peers *p, int n)
{
    ev_want w = {p, n};
    assert_true(wait_for(all_events, &w, WAIT_MS));
    for (size_t i = 0; i < p->n; i++) {
        assert_int_equal(ev_count(&p->ev[i]), n);
        for (int k = 0; k < n; k++) {
            assert_string_equal(p->ev[i].lines[k], p->ev[0].lines[k]);
        }
    }
}

static bool stop_after_3(void *ud, const hamok_kv *e)
{
    (void)e;
    return ++*(int *)ud < 3;
}

static void test_remote_map_over_redis(void **state)
{
    (void)state;
    freeReplyObject(cmd("DEL rm1 rm1:hamok"));
    static peers p;
    peers_start(&p, 3, "rm1", &hamok_redis_store_ops);
    size_t l = leader(&p, SIZE_MAX);
    assert_true(l != SIZE_MAX);
    size_t f = (l + 1) % 3;
    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(p.map[f], "k", "1", &old, WAIT_MS), HAMOK_OK);
    assert_false(old.present);
    assert_int_equal(hamok_remote_map_set_str(p.map[l], "k", "2", &old, WAIT_MS), HAMOK_OK);
    assert_string_equal(old.data, "1");
    hamok_value_free(&old);
    hamok_value ex;
    assert_int_equal(hamok_remote_map_insert(p.map[f], "k", 1, "3", 1, &ex, WAIT_MS), HAMOK_OK);
    assert_string_equal(ex.data, "2");
    hamok_value_free(&ex);
    assert_int_equal(hamok_remote_map_insert(p.map[f], "z\0", 2, "", 0, &ex, WAIT_MS), HAMOK_OK);
    assert_false(ex.present);
    bool done = false;
    assert_int_equal(hamok_remote_map_update_if(p.map[f], "z\0", 2, "Z", 1, "", 0, &done, WAIT_MS),
                     HAMOK_OK);
    assert_true(done);
    hamok_value v;
    assert_int_equal(hamok_remote_map_get(p.map[(f + 1) % 3], "z\0", 2, &v), HAMOK_OK);
    assert_int_equal(v.len, 1);
    assert_memory_equal(v.data, "Z", 1);
    hamok_value_free(&v);
    /* Many entries: HSCAN pages, HLEN, HMGET. */
    static hamok_kv kvs[1500];
    static char keys[1500][12];
    for (int i = 0; i < 1500; i++) {
        snprintf(keys[i], sizeof keys[i], "m%d", i);
        kvs[i] = (hamok_kv){keys[i], strlen(keys[i]), true, keys[i], strlen(keys[i])};
    }
    for (int i = 0; i < 1500; i += 500) {
        assert_int_equal(hamok_remote_map_set_all(p.map[i / 500], &kvs[i], 500, NULL, WAIT_MS),
                         HAMOK_OK);
    }
    uint64_t size = 0;
    assert_int_equal(hamok_remote_map_size(p.map[f], &size), HAMOK_OK);
    assert_int_equal(size, 1502);
    hamok_kvs all;
    assert_int_equal(hamok_remote_map_entries(p.map[l], &all), HAMOK_OK);
    /* (HSCAN may repeat an entry changed during the scan: none was) */
    assert_int_equal(all.n, 1502);
    hamok_kvs_free(&all);
    assert_int_equal(hamok_remote_map_get_all(p.map[f], kvs, 10, &all), HAMOK_OK);
    assert_int_equal(all.n, 10);
    hamok_kvs_free(&all);
    int seen = 0;
    assert_int_equal(hamok_remote_map_foreach(p.map[f], stop_after_3, &seen), HAMOK_OK);
    assert_int_equal(seen, 3);
    /* Remove and clear. */
    hamok_value rem;
    assert_int_equal(hamok_remote_map_remove(p.map[f], "k", 1, &rem, WAIT_MS), HAMOK_OK);
    assert_string_equal(rem.data, "2");
    hamok_value_free(&rem);
    assert_int_equal(hamok_remote_map_clear(p.map[l], WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_remote_map_size(p.map[f], &size), HAMOK_OK);
    assert_int_equal(size, 0);
    /* insert k, update k, insert z, update z, 1500 inserts, remove k, clear */
    same_events(&p, 4 + 1500 + 2);
    assert_string_equal(p.ev[0].lines[0], "insert k v=1");
    assert_string_equal(p.ev[0].lines[1], "update k old=1 v=2");
    assert_string_equal(p.ev[0].lines[1505], "clear");
    peers_stop(&p);
}

/* The leader cut off right after its Redis commit. */
typedef struct crash {
    peers *p;
    atomic_int armed;
    atomic_int fired;
} crash;

static crash g_crash;

static hamok_status crash_commit(void *store, const hamok_remote_commit *c)
{
    hamok_status st = hamok_redis_store_ops.commit(store, c);
    if (st == HAMOK_OK && atomic_exchange(&g_crash.armed, 0) == 1) {
        size_t l = leader(g_crash.p, SIZE_MAX);
        hamok_id id = hamok_node_id(g_crash.p->node[l]);
        hamok_mem_hub_isolate(g_crash.p->hub, &id, true);
        atomic_store(&g_crash.fired, 1);
    }
    return st;
}

static void test_leader_lost_after_redis_commit(void **state)
{
    (void)state;
    freeReplyObject(cmd("DEL rm2 rm2:hamok"));
    static hamok_remote_store_ops ops;
    ops = hamok_redis_store_ops;
    ops.commit = crash_commit;
    static peers p;
    peers_start(&p, 3, "rm2", &ops);
    g_crash.p = &p;
    size_t l = leader(&p, SIZE_MAX);
    size_t f = (l + 1) % 3;
    assert_int_equal(hamok_remote_map_set_str(p.map[f], "k", "before", NULL, WAIT_MS), HAMOK_OK);
    atomic_store(&g_crash.armed, 1);
    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(p.map[f], "k", "after", &old, WAIT_MS), HAMOK_OK);
    assert_int_equal(atomic_load(&g_crash.fired), 1);
    assert_true(old.present);
    assert_string_equal(old.data, "before"); /* from the outcome kept in Redis */
    hamok_value_free(&old);
    size_t nl = leader(&p, l);
    assert_true(nl != SIZE_MAX);
    hamok_remote_map_stats st;
    hamok_remote_map_stats_get(p.map[nl], &st);
    assert_true(st.recovered >= 1);
    hamok_id id = hamok_node_id(p.node[l]);
    assert_int_equal(hamok_mem_hub_isolate(p.hub, &id, false), HAMOK_OK);
    assert_int_equal(hamok_remote_map_set_str(p.map[l], "k", "again", &old, WAIT_MS), HAMOK_OK);
    assert_string_equal(old.data, "after");
    hamok_value_free(&old);
    same_events(&p, 3);
    assert_string_equal(p.ev[0].lines[1], "update k old=before v=after");
    peers_stop(&p);
}

/* A new cluster (a new epoch) on a hash an old one left behind. */
static void test_new_cluster_same_hash(void **state)
{
    (void)state;
    freeReplyObject(cmd("DEL rm3 rm3:hamok"));
    static peers p;
    peers_start(&p, 1, "rm3", &hamok_redis_store_ops);
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(hamok_remote_map_set_str(p.map[0], k, "old", NULL, WAIT_MS), HAMOK_OK);
    }
    peers_stop(&p);
    redisReply *r = cmd("HGET rm3:hamok token");
    assert_int_equal(r->type, REDIS_REPLY_STRING); /* the old lineage's token */
    freeReplyObject(r);
    /* Fresh peers: the log starts over at small indices. */
    peers_start(&p, 1, "rm3", &hamok_redis_store_ops);
    hamok_value old;
    assert_int_equal(hamok_remote_map_set_str(p.map[0], "k0", "new", &old, WAIT_MS), HAMOK_OK);
    assert_string_equal(old.data, "old");
    hamok_value_free(&old);
    uint64_t size = 0;
    assert_int_equal(hamok_remote_map_size(p.map[0], &size), HAMOK_OK);
    assert_int_equal(size, 20);
    peers_stop(&p);
}

/* Redis refuses: the key holds a string, not a hash. */
static void test_redis_errors(void **state)
{
    (void)state;
    freeReplyObject(cmd("DEL rm4 rm4:hamok"));
    freeReplyObject(cmd("SET rm4 not-a-hash"));
    static peers p;
    peers_start(&p, 1, "rm4", &hamok_redis_store_ops);
    uint64_t t0 = now_ms();
    assert_int_equal(hamok_remote_map_set_str(p.map[0], "k", "v", NULL, WAIT_MS), HAMOK_ERR_STORE);
    assert_true(now_ms() - t0 < 1500); /* an answer, not a timeout */
    hamok_value v;
    assert_int_equal(hamok_remote_map_get_str(p.map[0], "k", &v), HAMOK_ERR_STORE);
    uint64_t size;
    assert_int_equal(hamok_remote_map_size(p.map[0], &size), HAMOK_ERR_STORE);
    /* Fixed: the map works again. */
    freeReplyObject(cmd("DEL rm4"));
    assert_int_equal(hamok_remote_map_set_str(p.map[0], "k", "v", NULL, WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_remote_map_get_str(p.map[0], "k", &v), HAMOK_OK);
    assert_string_equal(v.data, "v");
    hamok_value_free(&v);
    peers_stop(&p);
}

/* examples/remote_map_redis.c, end to end. */
static void test_example_program(void **state)
{
    (void)state;
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
        }
        execl(HAMOK_REDIS_EXAMPLE, "hamok-example-remote-map-redis", "--port", port, "--hash",
              "example-test", (char *)NULL);
        _exit(127);
    }
    uint64_t end = now_ms() + 60000;
    int status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("the example did not finish within 60 s");
        }
        pause_ms(10);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    redisReply *r = cmd("HLEN example-test");
    assert_int_equal(r->integer, 0); /* it cleans up */
    freeReplyObject(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_contract),
        cmocka_unit_test(test_remote_map_over_redis),
        cmocka_unit_test(test_leader_lost_after_redis_commit),
        cmocka_unit_test(test_new_cluster_same_hash),
        cmocka_unit_test(test_redis_errors),
        cmocka_unit_test(test_example_program),
    };
    return cmocka_run_group_tests(tests, start_server, stop_server_teardown);
}
