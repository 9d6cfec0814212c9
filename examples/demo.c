/* hamok-demo: a live three-peer cluster in one process, on the in-process
 * transport. It shows, with timings:
 *   1. discovery and the first election;
 *   2. replicated writes issued from every peer, seen by every peer (events);
 *   3. the leader failing, a new leader elected, writes going on;
 *   4. a new peer joining and catching up.
 *
 *   hamok-demo [--peers N] [--writes K]
 *
 * Run it with scripts/demo.sh (which installs what it needs and builds). */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/map.h"
#include "hamok/mem.h"
#include "hamok/node.h"

#define MAXP 9

static uint64_t t0;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.3f s] ", (double)(now_ms() - t0) / 1000.0);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

typedef struct peer {
    int no;
    hamok_node *node;
    hamok_map *map;
    atomic_int events;
    char id[HAMOK_ID_STR_LEN + 1];
} peer;

static peer peers[MAXP + 1];
static int npeers;

static void on_node(void *ud, const hamok_node_event *ev)
{
    peer *p = ud;
    if (ev->type == HAMOK_EVENT_LEADER_CHANGED && ev->has_leader &&
        memcmp(&ev->leader, &(hamok_id){0}, sizeof ev->leader) != 0) {
        char l[HAMOK_ID_STR_LEN + 1];
        hamok_id_format(&ev->leader, l);
        say("peer %d sees leader %.8s (term %" PRIu64 ")", p->no, l, ev->term);
    }
}

static void on_map(void *ud, const hamok_map_event *ev)
{
    peer *p = ud;
    atomic_fetch_add(&p->events, 1);
    (void)ev;
}

static void check(hamok_status st, const char *what)
{
    if (st != HAMOK_OK) {
        fprintf(stderr, "hamok-demo: %s: %s\n", what, hamok_status_str(st));
        exit(1);
    }
}

static void start_peer(hamok_mem_hub *hub, int i)
{
    peer *p = &peers[i];
    p->no = i;
    atomic_init(&p->events, 0);
    hamok_config *cfg;
    check(hamok_config_new(&cfg), "config");
    hamok_config_set_cluster(cfg, "demo");
    hamok_config_set_timing(cfg, 300, 50);
    hamok_config_set_peer_timeout(cfg, 1500);
    hamok_transport *t;
    check(hamok_mem_transport_new(hub, &t), "transport");
    check(hamok_node_new(&p->node, cfg, &t), "node");
    hamok_config_destroy(&cfg);
    hamok_id id = hamok_node_id(p->node);
    hamok_id_format(&id, p->id);
    hamok_node_on(p->node, on_node, p);
    check(hamok_map_open(p->node, "inventory", &p->map), "open");
    hamok_map_on(p->map, on_map, p);
}

static int leader_index(void)
{
    for (int i = 0; i < MAXP + 1; i++) {
        if (peers[i].node != NULL && hamok_node_is_leader(peers[i].node)) {
            return i;
        }
    }
    return -1;
}

static void show_state(void)
{
    for (int i = 0; i < MAXP + 1; i++) {
        if (peers[i].node == NULL) {
            continue;
        }
        hamok_node_stats s;
        hamok_node_stats_get(peers[i].node, &s);
        printf("           peer %d %.8s  %-9s term %-3" PRIu64 " commit %-5" PRIu64
               " map size %-4zu events %d\n",
               i, peers[i].id, hamok_role_str(s.role), s.term, s.commit_index,
               hamok_map_size(peers[i].map), atomic_load(&peers[i].events));
    }
}

int main(int argc, char **argv)
{
    int writes = 10;
    npeers = 3;
    static const struct option longopts[] = {{"peers", required_argument, NULL, 'p'},
                                             {"writes", required_argument, NULL, 'w'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "p:w:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': npeers = atoi(optarg); break;
        case 'w': writes = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: hamok-demo [--peers N] [--writes K]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (npeers < 2 || npeers > MAXP || writes < 1 || writes > 100000) {
        fprintf(stderr, "hamok-demo: --peers 2..%d, --writes 1..100000\n", MAXP);
        return 2;
    }
    t0 = now_ms();
    hamok_mem_hub *hub;
    check(hamok_mem_hub_new(&hub), "hub");

    say("1. starting %d peers on the in-process transport; they discover each other", npeers);
    for (int i = 0; i < npeers; i++) {
        start_peer(hub, i);
    }
    for (int i = 0; i < npeers; i++) {
        hamok_node_join_async(peers[i].node, 10000, NULL, NULL);
    }
    for (int i = 0; i < npeers; i++) {
        check(hamok_node_join(peers[i].node, 10000), "join");
        say("peer %d (%.8s) joined", i, peers[i].id);
    }
    show_state();

    say("2. every peer writes %d keys (followers forward to the leader)", writes);
    uint64_t w0 = now_ms();
    for (int i = 0; i < npeers; i++) {
        for (int k = 0; k < writes; k++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "item-%d-%d", i, k);
            snprintf(val, sizeof val, "stock %d", k * 10 + i);
            check(hamok_map_set_str(peers[i].map, key, val, NULL, 5000), "set");
        }
    }
    say("%d writes committed in %" PRIu64 " ms", npeers * writes, now_ms() - w0);
    for (int i = 0; i < npeers; i++) {
        check(hamok_node_sync(peers[i].node, 5000), "sync");
    }
    show_state();

    int l = leader_index();
    say("3. the leader, peer %d, crashes", l);
    hamok_map_close(&peers[l].map);
    hamok_node_destroy(&peers[l].node);
    uint64_t f0 = now_ms();
    int survivor = (l + 1) % npeers;
    check(hamok_map_set_str(peers[survivor].map, "after-failover", "yes", NULL, 10000), "set");
    say("peer %d wrote again %" PRIu64 " ms after the crash (new leader: peer %d)", survivor,
        now_ms() - f0, leader_index());
    show_state();

    say("4. a new peer joins and catches up");
    start_peer(hub, MAXP);
    check(hamok_node_join(peers[MAXP].node, 10000), "join");
    check(hamok_node_sync(peers[MAXP].node, 5000), "sync");
    hamok_value v;
    check(hamok_map_get_str(peers[MAXP].map, "after-failover", &v), "get");
    say("new peer reads after-failover = %s; it holds %zu keys", (char *)v.data,
        hamok_map_size(peers[MAXP].map));
    hamok_value_free(&v);
    show_state();

    for (int i = 0; i < MAXP + 1; i++) {
        hamok_map_close(&peers[i].map);
        hamok_node_destroy(&peers[i].node);
    }
    hamok_mem_hub_destroy(&hub);
    say("done");
    return 0;
}
