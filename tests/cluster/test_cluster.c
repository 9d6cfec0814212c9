/* Peers as separate processes (`hamokctl peer`) on loopback, over a real
 * transport (zmq, or nats against a nats-server the test starts): the
 * cluster forms from one seed each, every peer writes, the leader is killed
 * with SIGKILL and a new one must take over within two election timeouts,
 * and no acknowledged write is lost — every writer keeps what was
 * acknowledged, and after the run every survivor, after a read barrier,
 * holds each acknowledged value or a later attempt for that key. Then:
 * restarts in memory mode (a new identity) and in durable mode (the same
 * identity and log), and a follower stopped with SIGSTOP for three election
 * timeouts catches up after SIGCONT.
 *
 *   test_cluster zmq|nats [cmocka filter]
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcluster.h"
#ifdef HAVE_NATSD
#include "natsd.h"
#endif

#ifndef HAMOKCTL_PATH
#error "HAMOKCTL_PATH must name the hamokctl binary"
#endif

#define ELECTION_MS 500u
#define UP_MS       15000u
#define KEYS        40u
#define MAP         "acked"

static pc_transport transport = PC_ZMQ;
static char nats_url[256];

/* The cluster of the running test (static: a failing assertion jumps out of
 * the test, and teardown must still stop the peers and show their logs). */
static pc_cluster C;
static bool passed;

static int teardown(void **state)
{
    (void)state;
    pc_destroy(&C, !passed);
    passed = false;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* What was acknowledged: per key, the sequence number of the last
 * acknowledged write (writes to one key are issued one after the other, with
 * increasing sequence numbers). */

typedef struct ledger {
    unsigned long long acked[KEYS]; /* 0 = none */
    unsigned long long next_seq;
    size_t n_acked;
    size_t n_failed;
} ledger;

/* One write of key (seq % KEYS) through peer i. */
static bool write_one(pc_cluster *c, size_t i, ledger *l)
{
    unsigned long long seq = ++l->next_seq;
    char key[16], val[32];
    snprintf(key, sizeof key, "k%llu", seq % KEYS);
    snprintf(val, sizeof val, "%llu", seq);
    if (pc_put(c, i, MAP, key, val, 3000)) {
        l->acked[seq % KEYS] = seq;
        l->n_acked++;
        return true;
    }
    l->n_failed++;
    return false;
}

/* Every acknowledged write is on peer i (after a read barrier): the value of
 * each key is its last acknowledged write or a later attempt. */
static void check_ledger(pc_cluster *c, size_t i, const ledger *l)
{
    json_t *es = NULL;
    uint64_t end = hamok_proc_now_ms() + UP_MS;
    while ((es = pc_entries(c, i, MAP, 3000)) == NULL && hamok_proc_now_ms() < end) {
        hamok_proc_poll_pause(50);
    }
    assert_non_null(es);
    size_t checked = 0;
    for (unsigned k = 0; k < KEYS; k++) {
        if (l->acked[k] == 0) {
            continue;
        }
        char key[16];
        snprintf(key, sizeof key, "k%u", k);
        const char *v = json_string_value(json_object_get(es, key));
        if (v == NULL) {
            fail_msg("peer %zu lost acknowledged key %s (seq %llu)", i, key, l->acked[k]);
        }
        unsigned long long got = strtoull(v, NULL, 10);
        if (got < l->acked[k] || got > l->next_seq || got % KEYS != k) {
            fail_msg("peer %zu: %s = %s, but seq %llu was acknowledged", i, key, v, l->acked[k]);
        }
        checked++;
    }
    json_decref(es);
    assert_true(checked > 0);
}

static void start_cluster(pc_cluster *c, size_t n, bool durable, const char *name)
{
    assert_true(pc_init(c, transport, HAMOKCTL_PATH, name, ELECTION_MS));
    snprintf(c->nats_url, sizeof c->nats_url, "%s", nats_url);
    for (size_t i = 0; i < n; i++) {
        assert_true(pc_start(c, i, durable, UP_MS));
        /* The first peer founds the cluster; wait until each is a voter so
         * the next one finds a settled leader. */
        assert_true(pc_leader(c, i + 1, 0, UP_MS) != SIZE_MAX);
    }
}

/* Writes from every running peer. */
static void write_everywhere(pc_cluster *c, ledger *l, size_t per_peer)
{
    for (size_t r = 0; r < per_peer; r++) {
        for (size_t i = 0; i < c->n; i++) {
            if (c->peers[i].running) {
                assert_true(write_one(c, i, l));
            }
        }
    }
}

static size_t live_mask_skip(const pc_cluster *c)
{
    unsigned skip = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (!c->peers[i].running) {
            skip |= 1u << i;
        }
    }
    return skip;
}

/* Kill the leader with SIGKILL while writing; returns the milliseconds until
 * the survivors agreed on a new leader. */
static uint64_t kill_leader(pc_cluster *c, size_t n, ledger *l, size_t *killed)
{
    size_t li = pc_leader(c, n, 0, UP_MS);
    assert_true(li != SIZE_MAX);
    size_t follower = (li + 1) % n;
    for (int k = 0; k < 10; k++) {
        write_one(c, follower, l);
    }
    uint64_t t0 = hamok_proc_now_ms();
    pc_kill(c, li);
    *killed = li;
    size_t nl = pc_leader(c, 0, (unsigned)live_mask_skip(c), UP_MS);
    uint64_t took = hamok_proc_now_ms() - t0;
    assert_true(nl != SIZE_MAX);
    assert_true(nl != li);
    return took;
}

static void run_failover(size_t n)
{
    pc_cluster *c = &C;
    char name[32];
    snprintf(name, sizeof name, "failover%zu", n);
    start_cluster(c, n, false, name);
    ledger l = {0};
    write_everywhere(c, &l, 10);
    for (size_t i = 0; i < n; i++) {
        check_ledger(c, i, &l);
    }
    size_t killed;
    uint64_t took = kill_leader(c, n, &l, &killed);
    printf(
        "# %zu peers: new leader %llu ms after SIGKILL of the leader (election timeout %u "
        "ms)\n",
        n, (unsigned long long)took, ELECTION_MS);
    /* Two election timeouts, plus what polling the survivors' HTTP status
     * adds on a loaded machine. */
    assert_true(took <= 2u * ELECTION_MS + 300u);
    write_everywhere(c, &l, 10);
    for (size_t i = 0; i < n; i++) {
        if (c->peers[i].running) {
            check_ledger(c, i, &l);
        }
    }
    printf("# %zu writes acknowledged, %zu failed (in flight at the kill)\n", l.n_acked,
           l.n_failed);
    /* Memory mode: the killed peer comes back as a new identity, catches up
     * by snapshot and log, and holds every acknowledged write. */
    char old_id[40];
    snprintf(old_id, sizeof old_id, "%s", c->peers[killed].id);
    assert_true(pc_start(c, killed, false, UP_MS));
    assert_string_not_equal(c->peers[killed].id, old_id);
    assert_true(pc_leader(c, n, 0, 6u * UP_MS) != SIZE_MAX);
    check_ledger(c, killed, &l);
    passed = true;
}

static void test_failover_3(void **state)
{
    (void)state;
    run_failover(3);
}

static void test_failover_5(void **state)
{
    (void)state;
    run_failover(5);
}

/* Does every running peer record member `id` at `endpoint` (GET /v1/peers)? */
static bool all_record_endpoint(pc_cluster *c, const char *id, const char *endpoint)
{
    for (size_t i = 0; i < c->n; i++) {
        if (!c->peers[i].running) {
            continue;
        }
        char *body = NULL;
        if (pc_http(c, i, "GET", "/v1/peers", NULL, 0, 2000, &body) != 200) {
            free(body);
            return false;
        }
        json_t *j = json_loads(body, 0, NULL);
        free(body);
        bool found = false;
        json_t *m;
        size_t k;
        json_array_foreach(json_object_get(j, "members"), k, m)
        {
            const char *mid = json_string_value(json_object_get(m, "id"));
            const char *ep = json_string_value(json_object_get(m, "endpoint"));
            if (mid != NULL && strcmp(mid, id) == 0) {
                found = ep != NULL && strcmp(ep, endpoint) == 0;
            }
        }
        json_decref(j);
        if (!found) {
            return false;
        }
    }
    return true;
}

/* Durable mode: a killed peer restarts with its identity and its log. With
 * zmq it comes back on another port (it binds port 0): the configuration
 * records its new endpoint, so every member, and a peer that joins later,
 * reaches it. */
static void test_durable_restart(void **state)
{
    (void)state;
    pc_cluster *c = &C;
    start_cluster(c, 3, true, "durable");
    ledger l = {0};
    write_everywhere(c, &l, 10);
    size_t killed;
    kill_leader(c, 3, &l, &killed);
    write_everywhere(c, &l, 5);
    char old_id[40], old_endpoint[256];
    snprintf(old_id, sizeof old_id, "%s", c->peers[killed].id);
    snprintf(old_endpoint, sizeof old_endpoint, "%s", c->peers[killed].endpoint);
    assert_true(pc_start(c, killed, true, UP_MS));
    assert_string_equal(c->peers[killed].id, old_id);
    assert_true(pc_leader(c, 3, 0, UP_MS) != SIZE_MAX);
    write_everywhere(c, &l, 5);
    for (size_t i = 0; i < 3; i++) {
        check_ledger(c, i, &l);
    }
    if (transport == PC_ZMQ) {
        assert_string_not_equal(c->peers[killed].endpoint, old_endpoint);
        uint64_t end = hamok_proc_now_ms() + UP_MS;
        while (!all_record_endpoint(c, old_id, c->peers[killed].endpoint)) {
            assert_true(hamok_proc_now_ms() < end);
            hamok_proc_poll_pause(50);
        }
        /* A fourth peer learns the new endpoint from the configuration. */
        c->n = 4;
        assert_true(pc_start(c, 3, true, UP_MS));
        assert_true(pc_leader(c, 4, 0, UP_MS) != SIZE_MAX);
        assert_true(all_record_endpoint(c, old_id, c->peers[killed].endpoint));
        /* The restarted peer leads: every other peer must reach it. */
        char path[128];
        snprintf(path, sizeof path, "/v1/transfer?to=%s", old_id);
        size_t li = pc_leader(c, 4, 0, UP_MS);
        assert_true(li != SIZE_MAX);
        if (li != killed) {
            assert_int_equal(pc_http(c, li, "POST", path, "", 0, 5000, NULL), 200);
        }
        assert_int_equal(pc_leader(c, 4, 0, UP_MS), killed);
        write_everywhere(c, &l, 5);
        for (size_t i = 0; i < 4; i++) {
            check_ledger(c, i, &l);
        }
    }
    passed = true;
}

/* A follower stopped for three election timeouts catches up after SIGCONT;
 * the others keep committing meanwhile. */
static void test_pause_follower(void **state)
{
    (void)state;
    pc_cluster *c = &C;
    start_cluster(c, 3, false, "pause");
    ledger l = {0};
    write_everywhere(c, &l, 5);
    size_t li = pc_leader(c, 3, 0, UP_MS);
    assert_true(li != SIZE_MAX);
    size_t f = (li + 1) % 3;
    pc_pause(c, f);
    uint64_t until = hamok_proc_now_ms() + 3u * ELECTION_MS;
    size_t during = 0;
    while (hamok_proc_now_ms() < until) {
        if (write_one(c, li, &l)) {
            during++;
        }
    }
    assert_true(during > 0);
    pc_resume(c, f);
    write_everywhere(c, &l, 5);
    for (size_t i = 0; i < 3; i++) {
        check_ledger(c, i, &l);
    }
    printf("# %zu writes committed while a follower was stopped\n", during);
    passed = true;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "nats") == 0) {
        transport = PC_NATS;
    } else if (argc > 1 && strcmp(argv[1], "zmq") != 0) {
        fprintf(stderr, "usage: %s zmq|nats\n", argv[0]);
        return 2;
    }
#ifdef HAVE_NATSD
    natsd *server = NULL;
    if (transport == PC_NATS) {
        natsd_config nc = {0};
        server = natsd_start(&nc);
        if (server == NULL) {
            fprintf(stderr, "cannot start nats-server\n");
            return 1;
        }
        snprintf(nats_url, sizeof nats_url, "%s", natsd_url(server));
    }
#else
    if (transport == PC_NATS) {
        fprintf(stderr, "built without the nats-server launcher\n");
        return 1;
    }
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_failover_3, teardown),
        cmocka_unit_test_teardown(test_failover_5, teardown),
        cmocka_unit_test_teardown(test_durable_restart, teardown),
        cmocka_unit_test_teardown(test_pause_follower, teardown),
    };
    int rc = cmocka_run_group_tests_name(transport == PC_NATS ? "cluster/nats" : "cluster/zmq",
                                         tests, NULL, NULL);
    hamok_proc_kill_all();
#ifdef HAVE_NATSD
    natsd_stop(&server);
#endif
    return rc;
}
