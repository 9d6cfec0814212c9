/* Hamok clusters over real nats-server processes (started here on free
 * loopback ports, stopped by pid): three nodes in one process, each with its
 * own connection, find each other through the subjects alone; writes from
 * all are seen everywhere; the leader's node is destroyed; nats-server is
 * restarted under a write load; nodes attached to different servers of a
 * routed NATS cluster; two Hamok clusters on one server stay apart. Every
 * wait is a condition with a deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nats/nats.h>
#include <poll.h>
#include <signal.h>

#include "hamok/map.h"
#include "hamok/nats.h"
#include "hamok/node.h"
#include "natsd.h"
#include "tnats.h"

#define N 3

static void start_cluster(tnode *nodes, const char *const urls[N], const char *cluster)
{
    tn_conf c = {.cluster = cluster, .bootstrap_expect = N};
    for (size_t i = 0; i < N; i++) {
        hamok_nats_options o = tn_opts(urls[i]);
        assert_int_equal(tn_start(&nodes[i], &c, &o), HAMOK_OK);
    }
    assert_true(tn_join_all(nodes, N, TN_WAIT_MS));
    assert_true(tn_agree(nodes, N, N, TN_WAIT_MS));
}

static void stop_cluster(tnode *nodes)
{
    for (size_t i = 0; i < N; i++) {
        tn_stop(&nodes[i]);
    }
}

/* Writes from every node, read everywhere after a barrier. */
static void write_everywhere(tnode *nodes, const char *name, int per_node)
{
    hamok_map *maps[N];
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(hamok_map_open(nodes[i].node, name, &maps[i]), HAMOK_OK);
    }
    for (int k = 0; k < per_node; k++) {
        for (size_t i = 0; i < N; i++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "n%zu-%d", i, k);
            snprintf(val, sizeof val, "v%zu-%d", i, k);
            assert_int_equal(hamok_map_set_str(maps[i], key, val, NULL, 5000), HAMOK_OK);
        }
    }
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(hamok_node_sync(nodes[i].node, 5000), HAMOK_OK);
        assert_int_equal(hamok_map_size(maps[i]), (size_t)per_node * N);
        for (size_t j = 0; j < N; j++) {
            for (int k = 0; k < per_node; k++) {
                char key[32], val[32];
                snprintf(key, sizeof key, "n%zu-%d", j, k);
                snprintf(val, sizeof val, "v%zu-%d", j, k);
                hamok_value v;
                assert_int_equal(hamok_map_get_str(maps[i], key, &v), HAMOK_OK);
                assert_string_equal(v.data, val);
                hamok_value_free(&v);
            }
        }
    }
    for (size_t i = 0; i < N; i++) {
        hamok_map_close(&maps[i]);
    }
}

/* ------------------------------------------------------------------------ */

static void test_form_and_write(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    const char *urls[N] = {natsd_url(d), natsd_url(d), natsd_url(d)};
    tnode nodes[N];
    start_cluster(nodes, urls, "orders");
    /* Discovery came only through the subjects: the peers that joined
     * advertised their own peer subject (the founder's entry may carry
     * none: it was alone when it founded the cluster). */
    for (size_t n = 0; n < N; n++) {
        hamok_peer_info peers[N];
        assert_int_equal(hamok_node_peers(nodes[n].node, peers, N), N);
        size_t advertised = 0;
        for (size_t i = 0; i < N; i++) {
            char id[HAMOK_ID_STR_LEN + 1], want[128];
            hamok_id_format(&peers[i].id, id);
            snprintf(want, sizeof want, "hamok.orders.peer.%s", id);
            if (peers[i].endpoint[0] != '\0') {
                assert_string_equal(peers[i].endpoint, want);
                advertised++;
            }
        }
        assert_true(advertised >= N - 1);
    }
    write_everywhere(nodes, "m", 20);
    for (size_t i = 0; i < N; i++) {
        hamok_nats_stats s = tn_stats(&nodes[i]);
        assert_true(s.connected);
        assert_false(s.borrowed);
        assert_true(s.frames_sent > 0 && s.frames_received > 0);
        assert_int_equal(s.too_big, 0);
        assert_int_equal(s.max_payload, 1024 * 1024); /* nats-server's default */
        /* (The event itself may fire before a listener is added: the
         * node's stats keep the state.) */
        hamok_node_stats ns;
        hamok_node_stats_get(nodes[i].node, &ns);
        assert_int_equal(ns.frames_rejected, 0);
        assert_int_equal(ns.link, HAMOK_LINK_CONNECTED);
        assert_int_equal(ns.link_changes, 1);
    }
    stop_cluster(nodes);
    natsd_stop(&d);
}

static void test_leader_destroyed(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    const char *urls[N] = {natsd_url(d), natsd_url(d), natsd_url(d)};
    tnode nodes[N];
    start_cluster(nodes, urls, "failover");
    size_t l = tn_leader(nodes, N);
    assert_true(l < N);
    size_t f = (l + 1) % N;
    hamok_map *m;
    assert_int_equal(hamok_map_open(nodes[f].node, "f", &m), HAMOK_OK);
    tn_load load;
    tn_load_start(&load, m, "pre", 100000);
    /* Let some writes through, then take the leader's node away. */
    uint64_t end = tn_now_ms() + TN_WAIT_MS;
    while (atomic_load(&load.acked) < 50 && tn_now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    assert_true(atomic_load(&load.acked) >= 50);
    tn_stop(&nodes[l]);
    uint64_t t0 = tn_now_ms();
    size_t before = atomic_load(&load.acked);
    end = tn_now_ms() + TN_WAIT_MS;
    while (atomic_load(&load.acked) < before + 50 && tn_now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    printf("writes resumed %llu ms after the leader's node was destroyed\n",
           (unsigned long long)(tn_now_ms() - t0));
    tn_load_stop(&load);
    assert_true(atomic_load(&load.acked) >= before + 50);
    size_t l2 = tn_leader(nodes, N);
    assert_true(l2 < N && l2 != l);
    /* No acknowledged write lost, on either survivor. */
    for (size_t i = 0; i < N; i++) {
        if (nodes[i].node == NULL) {
            continue;
        }
        hamok_map *mi;
        assert_int_equal(hamok_map_open(nodes[i].node, "f", &mi), HAMOK_OK);
        assert_int_equal(hamok_node_sync(nodes[i].node, 5000), HAMOK_OK);
        assert_true(tn_load_check(&load, mi));
        hamok_map_close(&mi);
    }
    free(load.ok);
    hamok_map_close(&m);
    stop_cluster(nodes);
    natsd_stop(&d);
}

typedef struct links_ctx {
    tnode *nodes;
    hamok_transport_link state;
    int at_least;
} links_ctx;

static bool links_seen(void *ud)
{
    links_ctx *c = ud;
    for (size_t i = 0; i < N; i++) {
        if (atomic_load(&c->nodes[i].links[c->state]) < c->at_least) {
            return false;
        }
    }
    return true;
}

static tnode *tn_ctx_nodes;

static bool no_leader(void *ud)
{
    (void)ud;
    return tn_leader(tn_ctx_nodes, N) == SIZE_MAX;
}

static void test_server_restart(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    const char *urls[N] = {natsd_url(d), natsd_url(d), natsd_url(d)};
    tnode nodes[N];
    start_cluster(nodes, urls, "restart");
    hamok_map *maps[N];
    tn_load loads[N];
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(hamok_map_open(nodes[i].node, "r", &maps[i]), HAMOK_OK);
        char tag[8];
        snprintf(tag, sizeof tag, "w%zu", i);
        tn_load_start(&loads[i], maps[i], tag, 100000);
    }
    uint64_t end = tn_now_ms() + TN_WAIT_MS;
    while (atomic_load(&loads[0].acked) < 30 && tn_now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    /* The broker dies under the load and comes back on the same port. */
    assert_true(natsd_kill(d, SIGKILL));
    links_ctx down = {nodes, HAMOK_LINK_DISCONNECTED, 1};
    assert_true(tn_wait(links_seen, &down, TN_WAIT_MS));
    size_t during[N];
    for (size_t i = 0; i < N; i++) {
        during[i] = atomic_load(&loads[i].acked);
        assert_false(tn_stats(&nodes[i]).connected);
    }
    /* Down long enough for the leader to notice it lost its quorum
     * (check-quorum) and step down: recovery then needs a new election over
     * the restarted broker, and the frames nats.c kept meanwhile in its
     * reconnect buffer arrive late. */
    tn_ctx_nodes = nodes;
    assert_true(tn_wait(no_leader, NULL, TN_WAIT_MS));
    assert_true(natsd_restart(d));
    uint64_t t_up = tn_now_ms();
    links_ctx up = {nodes, HAMOK_LINK_RECONNECTED, 1};
    assert_true(tn_wait(links_seen, &up, TN_WAIT_MS));
    /* The cluster recovers by itself: every writer gets writes through again. */
    for (size_t i = 0; i < N; i++) {
        end = tn_now_ms() + TN_WAIT_MS;
        while (atomic_load(&loads[i].acked) < during[i] + 30 && tn_now_ms() < end) {
            (void)poll(NULL, 0, 5);
        }
    }
    printf("every writer had 30 more writes through %llu ms after the server was back\n",
           (unsigned long long)(tn_now_ms() - t_up));
    for (size_t i = 0; i < N; i++) {
        tn_load_stop(&loads[i]);
        printf("writer %zu: %zu acknowledged (%zu before the restart), %d failed or unknown\n", i,
               atomic_load(&loads[i].acked), during[i], atomic_load(&loads[i].failed));
        assert_true(atomic_load(&loads[i].acked) >= during[i] + 30);
    }
    assert_true(tn_agree(nodes, N, N, TN_WAIT_MS));
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(hamok_node_sync(nodes[i].node, 5000), HAMOK_OK);
        for (size_t j = 0; j < N; j++) {
            assert_true(tn_load_check(&loads[j], maps[i]));
        }
        hamok_nats_stats s = tn_stats(&nodes[i]);
        assert_true(s.connected);
        assert_true(s.disconnects >= 1 && s.reconnects >= 1);
        hamok_node_stats ns;
        hamok_node_stats_get(nodes[i].node, &ns);
        assert_int_equal(ns.link, HAMOK_LINK_RECONNECTED);
        assert_true(ns.link_changes >= 3); /* connected, disconnected, reconnected */
    }
    for (size_t i = 0; i < N; i++) {
        free(loads[i].ok);
        hamok_map_close(&maps[i]);
    }
    stop_cluster(nodes);
    natsd_stop(&d);
}

static void test_routed_servers(void **state)
{
    (void)state;
    natsd *servers[N];
    assert_true(natsd_cluster_start(servers, N, NULL));
    /* Each node knows only its own server. */
    const char *urls[N] = {natsd_url(servers[0]), natsd_url(servers[1]), natsd_url(servers[2])};
    tnode nodes[N];
    start_cluster(nodes, urls, "routed");
    write_everywhere(nodes, "m", 10);
    /* The leader's server goes away: its node reconnects to another server
     * (nats.c learned them from the cluster) and the cluster carries on. */
    size_t l = tn_leader(nodes, N);
    assert_true(l < N);
    natsd_stop(&servers[l]);
    uint64_t end = tn_now_ms() + TN_WAIT_MS;
    while (atomic_load(&nodes[l].links[HAMOK_LINK_RECONNECTED]) < 1 && tn_now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    assert_true(atomic_load(&nodes[l].links[HAMOK_LINK_RECONNECTED]) >= 1);
    write_everywhere(nodes, "after", 5);
    stop_cluster(nodes);
    for (size_t i = 0; i < N; i++) {
        natsd_stop(&servers[i]);
    }
}

static void test_two_clusters(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    const char *urls[N] = {natsd_url(d), natsd_url(d), natsd_url(d)};
    tnode a[N], b[N];
    start_cluster(a, urls, "alpha");
    start_cluster(b, urls, "beta");
    /* Same map name in both: each cluster sees only its own writes. */
    write_everywhere(a, "shared", 10);
    hamok_map *mb;
    assert_int_equal(hamok_map_open(b[0].node, "shared", &mb), HAMOK_OK);
    assert_int_equal(hamok_node_sync(b[0].node, 5000), HAMOK_OK);
    assert_int_equal(hamok_map_size(mb), 0);
    hamok_map_close(&mb);
    write_everywhere(b, "shared", 5);
    for (size_t i = 0; i < N; i++) {
        /* A frame of the other cluster would have been delivered and then
         * rejected by the envelope check: none was ever delivered. */
        hamok_node_stats sa, sb;
        hamok_node_stats_get(a[i].node, &sa);
        hamok_node_stats_get(b[i].node, &sb);
        assert_int_equal(sa.frames_rejected, 0);
        assert_int_equal(sb.frames_rejected, 0);
        assert_int_equal(sa.members, N);
        assert_int_equal(sb.members, N);
    }
    stop_cluster(a);
    stop_cluster(b);
    natsd_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_form_and_write, tn_teardown),
        cmocka_unit_test_teardown(test_leader_destroyed, tn_teardown),
        cmocka_unit_test_teardown(test_server_restart, tn_teardown),
        cmocka_unit_test_teardown(test_routed_servers, tn_teardown),
        cmocka_unit_test_teardown(test_two_clusters, tn_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    natsd_stop_all();
    /* The application's right: every node is gone, nats.c may be closed. */
    nats_CloseAndWait(5000);
    return rc;
}
