/* Nodes on the in-process transport: discovery and founding, replicated
 * writes from every peer, read barriers, events, leader failure and
 * failover, graceful leave, a removed peer's return, embedded mode and API
 * misuse. Real threads, real clock; every wait is a condition with a
 * deadline (no fixed sleeps). */
#define _DEFAULT_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hamok/emitter.h"
#include "hamok/map.h"
#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/queue.h"
#include "hamok/record.h"

#define MAXN    5
#define WAIT_MS 10000

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until cond(ud) holds or the deadline passes; polls every 2 ms. */
static bool wait_for(bool (*cond)(void *), void *ud, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!cond(ud)) {
        if (now_ms() >= end) {
            return cond(ud);
        }
        pause_ms(2);
    }
    return true;
}

typedef struct cluster {
    hamok_mem_hub *hub;
    hamok_node *nodes[MAXN];
    size_t n;
} cluster;

static hamok_node *start_node_dir(cluster *c, size_t i, bool embedded, const char *dir)
{
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_storage_dir(cfg, dir), HAMOK_OK);
    assert_int_equal(hamok_config_set_cluster(cfg, "test"), HAMOK_OK);
    assert_int_equal(hamok_config_set_timing(cfg, 150, 30), HAMOK_OK);
    assert_int_equal(hamok_config_set_peer_timeout(cfg, 1500), HAMOK_OK);
    assert_int_equal(hamok_config_set_embedded(cfg, embedded), HAMOK_OK);
    hamok_transport *t;
    assert_int_equal(hamok_mem_transport_new(c->hub, &t), HAMOK_OK);
    hamok_node *n;
    assert_int_equal(hamok_node_new(&n, cfg, &t), HAMOK_OK);
    assert_null(t);
    hamok_config_destroy(&cfg);
    c->nodes[i] = n;
    return n;
}

static hamok_node *start_node(cluster *c, size_t i, bool embedded)
{
    return start_node_dir(c, i, embedded, NULL);
}

static void cluster_start(cluster *c, size_t n)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(hamok_mem_hub_new(&c->hub), HAMOK_OK);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        start_node(c, i, false);
    }
    for (size_t i = 0; i < n; i++) {
        hamok_node_join_async(c->nodes[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hamok_node_join(c->nodes[i], WAIT_MS), HAMOK_OK);
    }
}

static void cluster_stop(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        hamok_node_destroy(&c->nodes[i]);
    }
    assert_int_equal(hamok_mem_hub_destroy(&c->hub), HAMOK_OK);
}

typedef struct agree_ctx {
    cluster *c;
    size_t voters;
} agree_ctx;

/* Every live node knows the same leader and has `voters` voters. */
static bool agree(void *ud)
{
    agree_ctx *a = ud;
    hamok_id leader = {0};
    bool first = true;
    for (size_t i = 0; i < a->c->n; i++) {
        hamok_node *n = a->c->nodes[i];
        if (n == NULL) {
            continue;
        }
        hamok_id l;
        if (!hamok_node_leader_id(n, &l)) {
            return false;
        }
        if (!first && memcmp(&l, &leader, sizeof l) != 0) {
            return false;
        }
        first = false;
        leader = l;
        hamok_peer_info peers[MAXN + 2];
        size_t k = hamok_node_peers(n, peers, MAXN + 2);
        size_t v = 0;
        for (size_t j = 0; j < k && j < MAXN + 2; j++) {
            v += peers[j].voter ? 1u : 0u;
        }
        if (v != a->voters) {
            return false;
        }
    }
    return true;
}

static size_t leader_of(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->nodes[i] != NULL && hamok_node_is_leader(c->nodes[i])) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */

static void test_single_node(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 1);
    assert_true(hamok_node_is_leader(c.nodes[0]));
    hamok_map *m;
    assert_int_equal(hamok_map_open(c.nodes[0], "m", &m), HAMOK_OK);
    hamok_value old;
    assert_int_equal(hamok_map_set_str(m, "k", "v1", &old, 2000), HAMOK_OK);
    assert_false(old.present);
    assert_int_equal(hamok_map_set_str(m, "k", "v2", &old, 2000), HAMOK_OK);
    assert_true(old.present);
    assert_string_equal(old.data, "v1");
    hamok_value_free(&old);
    /* An empty value is a value (original bug A1). */
    assert_int_equal(hamok_map_set(m, "e", 1, "", 0, NULL, 2000), HAMOK_OK);
    assert_true(hamok_map_contains(m, "e", 1));
    bool deleted = false;
    assert_int_equal(hamok_map_delete(m, "e", 1, &deleted, 2000), HAMOK_OK);
    assert_true(deleted);
    assert_int_equal(hamok_node_sync(c.nodes[0], 2000), HAMOK_OK);
    hamok_value v;
    assert_int_equal(hamok_map_get_str(m, "k", &v), HAMOK_OK);
    assert_string_equal(v.data, "v2");
    hamok_value_free(&v);
    assert_int_equal(hamok_map_size(m), 1);
    hamok_map_close(&m);
    cluster_stop(&c);
}

typedef struct ev_count {
    int inserts;
    int updates;
    int removes;
} ev_count;

static void on_map(void *ud, const hamok_map_event *ev)
{
    ev_count *e = ud;
    if (ev->type == HAMOK_MAP_INSERT) {
        e->inserts++;
    } else if (ev->type == HAMOK_MAP_UPDATE) {
        e->updates++;
    } else if (ev->type == HAMOK_MAP_REMOVE) {
        e->removes++;
    }
}

typedef struct sized {
    hamok_map **maps;
    size_t n;
    size_t want;
} sized;

static bool all_sized(void *ud)
{
    sized *s = ud;
    for (size_t i = 0; i < s->n; i++) {
        if (s->maps[i] != NULL && hamok_map_size(s->maps[i]) != s->want) {
            return false;
        }
    }
    return true;
}

static void test_three_nodes(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));

    hamok_map *maps[3];
    ev_count evs[3] = {{0}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_map_open(c.nodes[i], "shared", &maps[i]), HAMOK_OK);
        assert_int_equal(hamok_map_on(maps[i], on_map, &evs[i]), HAMOK_OK);
    }
    /* Writes from every peer, leader and followers. */
    for (size_t i = 0; i < 3; i++) {
        for (int k = 0; k < 20; k++) {
            char key[32], val[32];
            snprintf(key, sizeof key, "n%zu-k%d", i, k);
            snprintf(val, sizeof val, "v%d", k);
            assert_int_equal(hamok_map_set_str(maps[i], key, val, NULL, 5000), HAMOK_OK);
            /* The writer reads its own write at once. */
            hamok_value v;
            assert_int_equal(hamok_map_get_str(maps[i], key, &v), HAMOK_OK);
            assert_string_equal(v.data, val);
            hamok_value_free(&v);
        }
    }
    sized s = {maps, 3, 60};
    assert_true(wait_for(all_sized, &s, WAIT_MS));
    /* After a barrier, a follower sees the leader's latest write. */
    size_t l = leader_of(&c);
    assert_true(l < 3);
    size_t f = (l + 1) % 3;
    assert_int_equal(hamok_map_set_str(maps[l], "latest", "x", NULL, 5000), HAMOK_OK);
    assert_int_equal(hamok_node_sync(c.nodes[f], 5000), HAMOK_OK);
    hamok_value v;
    assert_int_equal(hamok_map_get_str(maps[f], "latest", &v), HAMOK_OK);
    assert_string_equal(v.data, "x");
    hamok_value_free(&v);
    /* Compare and set / remove_if answer false on a mismatch (no timeout). */
    bool done = true;
    assert_int_equal(hamok_map_update_if(maps[f], "latest", 6, "y", 1, "nope", 4, &done, 5000),
                     HAMOK_OK);
    assert_false(done);
    assert_int_equal(hamok_map_update_if(maps[f], "latest", 6, "y", 1, "x", 1, &done, 5000),
                     HAMOK_OK);
    assert_true(done);
    assert_int_equal(hamok_map_remove_if(maps[f], "latest", 6, "x", 1, &done, 5000), HAMOK_OK);
    assert_false(done);
    assert_int_equal(hamok_map_remove_if(maps[f], "latest", 6, "y", 1, &done, 5000), HAMOK_OK);
    assert_true(done);
    /* Events fired on every peer: 61 inserts, 1 update, 1 remove each. */
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_node_sync(c.nodes[i], 5000), HAMOK_OK);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(evs[i].inserts, 61);
        assert_int_equal(evs[i].updates, 1);
        assert_int_equal(evs[i].removes, 1);
    }
    /* Wrong kind would be caught at open once the name holds another kind;
     * a map reopened under its own name is fine. */
    hamok_map *again;
    assert_int_equal(hamok_map_open(c.nodes[0], "shared", &again), HAMOK_OK);
    assert_int_equal(hamok_map_size(again), 60);
    hamok_map_close(&again);
    for (size_t i = 0; i < 3; i++) {
        hamok_map_close(&maps[i]);
    }
    cluster_stop(&c);
}

static void test_failover(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    size_t l = leader_of(&c);
    assert_true(l < 3);
    hamok_map *m;
    assert_int_equal(hamok_map_open(c.nodes[(l + 1) % 3], "f", &m), HAMOK_OK);
    assert_int_equal(hamok_map_set_str(m, "before", "1", NULL, 5000), HAMOK_OK);
    /* The leader dies (in-memory: gone for good). */
    hamok_node_destroy(&c.nodes[l]);
    uint64_t t0 = now_ms();
    /* A write from a survivor succeeds once a new leader is elected. */
    assert_int_equal(hamok_map_set_str(m, "after", "2", NULL, WAIT_MS), HAMOK_OK);
    uint64_t took = now_ms() - t0;
    printf("failover write took %llu ms\n", (unsigned long long)took);
    size_t l2 = leader_of(&c);
    assert_true(l2 < 3 && l2 != l);
    /* The dead peer is removed by the leader after peer_timeout. */
    agree_ctx a2 = {&c, 2};
    assert_true(wait_for(agree, &a2, WAIT_MS));
    hamok_value v;
    assert_int_equal(hamok_map_get_str(m, "before", &v), HAMOK_OK);
    hamok_value_free(&v);
    hamok_map_close(&m);
    cluster_stop(&c);
}

static void test_leave_and_rejoin(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    /* The leader leaves gracefully: leadership moves, then it is removed. */
    size_t l = leader_of(&c);
    assert_int_equal(hamok_node_leave(c.nodes[l], WAIT_MS), HAMOK_OK);
    hamok_node_destroy(&c.nodes[l]);
    agree_ctx a2 = {&c, 2};
    assert_true(wait_for(agree, &a2, WAIT_MS));
    /* A new peer joins the running cluster. */
    start_node(&c, l, false);
    assert_int_equal(hamok_node_join(c.nodes[l], WAIT_MS), HAMOK_OK);
    assert_true(wait_for(agree, &a, WAIT_MS));
    /* A follower cut off long enough is removed, and rejoins on healing. */
    size_t l2 = leader_of(&c);
    size_t f = (l2 + 1) % 3;
    hamok_id fid = hamok_node_id(c.nodes[f]);
    assert_int_equal(hamok_mem_hub_isolate(c.hub, &fid, true), HAMOK_OK);
    hamok_node *saved = c.nodes[f];
    c.nodes[f] = NULL; /* not part of the agreement while cut off */
    assert_true(wait_for(agree, &a2, WAIT_MS));
    assert_int_equal(hamok_mem_hub_isolate(c.hub, &fid, false), HAMOK_OK);
    c.nodes[f] = saved;
    assert_true(wait_for(agree, &a, WAIT_MS));
    cluster_stop(&c);
}

static void test_embedded(void **state)
{
    (void)state;
    cluster c;
    memset(&c, 0, sizeof c);
    assert_int_equal(hamok_mem_hub_new(&c.hub), HAMOK_OK);
    c.n = 1;
    hamok_node *n = start_node(&c, 0, true);
    assert_true(hamok_node_fd(n) >= 0);
    /* Blocking calls drive an embedded node themselves. */
    assert_int_equal(hamok_node_join(n, WAIT_MS), HAMOK_OK);
    hamok_map *m;
    assert_int_equal(hamok_map_open(n, "e", &m), HAMOK_OK);
    assert_int_equal(hamok_map_set_str(m, "a", "b", NULL, 2000), HAMOK_OK);
    assert_true(hamok_node_next_timeout_ms(n) >= 0);
    assert_int_equal(hamok_node_process(n), HAMOK_OK);
    hamok_map_close(&m);
    cluster_stop(&c);
}

/* Queue: items pushed from one peer, popped concurrently from three: each
 * item exactly once, none lost, FIFO per popper. */
typedef struct popper {
    hamok_queue *q;
    int got[200];
    int n;
    hamok_status st;
} popper;

static void *pop_loop(void *arg)
{
    popper *p = arg;
    for (;;) {
        hamok_value v;
        hamok_status st = hamok_queue_pop(p->q, &v, 5000);
        if (st != HAMOK_OK) {
            p->st = st;
            return NULL;
        }
        if (!v.present) {
            return NULL;
        }
        p->got[p->n++] = atoi(v.data);
        hamok_value_free(&v);
    }
}

static void test_queue(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    hamok_queue *qs[3];
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_queue_open(c.nodes[i], "jobs", &qs[i]), HAMOK_OK);
    }
    hamok_map *m;
    for (int i = 0; i < 150; i++) {
        char item[16];
        snprintf(item, sizeof item, "%d", i);
        assert_int_equal(hamok_queue_push(qs[i % 3], item, strlen(item), 5000), HAMOK_OK);
    }
    /* The name now belongs to a queue. */
    assert_int_equal(hamok_map_open(c.nodes[0], "jobs", &m), HAMOK_ERR_WRONG_KIND);
    assert_int_equal(hamok_node_sync(c.nodes[1], 5000), HAMOK_OK);
    assert_int_equal(hamok_queue_size(qs[1]), 150);
    hamok_value head;
    assert_int_equal(hamok_queue_peek(qs[1], &head), HAMOK_OK);
    assert_string_equal(head.data, "0");
    hamok_value_free(&head);
    popper ps[3];
    pthread_t th[3];
    for (size_t i = 0; i < 3; i++) {
        memset(&ps[i], 0, sizeof ps[i]);
        ps[i].q = qs[i];
        assert_int_equal(pthread_create(&th[i], NULL, pop_loop, &ps[i]), 0);
    }
    int seen[150] = {0};
    for (size_t i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].st, HAMOK_OK);
        for (int k = 0; k < ps[i].n; k++) {
            assert_true(ps[i].got[k] >= 0 && ps[i].got[k] < 150);
            seen[ps[i].got[k]]++;
            if (k > 0) {
                assert_true(ps[i].got[k] > ps[i].got[k - 1]); /* FIFO */
            }
        }
    }
    for (int i = 0; i < 150; i++) {
        assert_int_equal(seen[i], 1);
    }
    for (size_t i = 0; i < 3; i++) {
        hamok_queue_close(&qs[i]);
    }
    cluster_stop(&c);
}

static void test_record(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    hamok_record *r0, *r1;
    assert_int_equal(hamok_record_open(c.nodes[0], "profile", &r0), HAMOK_OK);
    assert_int_equal(hamok_record_open(c.nodes[1], "profile", &r1), HAMOK_OK);
    hamok_kv init[2] = {{"name", 4, true, "ada", 3}, {"age", 3, true, "36", 2}};
    hamok_kvs existing;
    assert_int_equal(hamok_record_insert_instance(r0, init, 2, &existing, 5000), HAMOK_OK);
    assert_int_equal(existing.n, 0);
    hamok_kvs_free(&existing);
    hamok_kv again[2] = {{"name", 4, true, "bob", 3}, {"city", 4, true, "paris", 5}};
    assert_int_equal(hamok_record_insert_instance(r1, again, 2, &existing, 5000), HAMOK_OK);
    assert_int_equal(existing.n, 1); /* name existed and was kept */
    hamok_kvs_free(&existing);
    /* All expectations must hold for any field to be written. */
    hamok_kv vals[1] = {{"age", 3, true, "37", 2}};
    hamok_kv bad[2] = {{"name", 4, true, "ada", 3}, {"city", 4, true, "rome", 4}};
    hamok_kv good[2] = {{"name", 4, true, "ada", 3}, {"city", 4, true, "paris", 5}};
    bool updated = true;
    assert_int_equal(hamok_record_update_instance_if(r1, vals, 1, bad, 2, &updated, 5000),
                     HAMOK_OK);
    assert_false(updated);
    assert_int_equal(hamok_record_update_instance_if(r1, vals, 1, good, 2, &updated, 5000),
                     HAMOK_OK);
    assert_true(updated);
    assert_int_equal(hamok_node_sync(c.nodes[0], 5000), HAMOK_OK);
    hamok_value v;
    assert_int_equal(hamok_record_get(r0, "age", &v), HAMOK_OK);
    assert_string_equal(v.data, "37");
    hamok_value_free(&v);
    hamok_kvs all;
    assert_int_equal(hamok_record_instance(r0, &all), HAMOK_OK);
    assert_int_equal(all.n, 3);
    hamok_kvs_free(&all);
    hamok_record_close(&r0);
    hamok_record_close(&r1);
    cluster_stop(&c);
}

typedef struct inbox {
    atomic_int got;
    char last[64];
} inbox;

static void on_msg(void *ud, const char *event, const void *payload, size_t len,
                   const hamok_id *from)
{
    (void)from;
    inbox *b = ud;
    assert_string_equal(event, "msg");
    snprintf(b->last, sizeof b->last, "%.*s", (int)len, (const char *)payload);
    atomic_fetch_add(&b->got, 1);
}

typedef struct subs_ctx {
    hamok_emitter *e;
    size_t want;
} subs_ctx;

static bool subs_are(void *ud)
{
    subs_ctx *s = ud;
    return hamok_emitter_subscribers(s->e, "msg", NULL, 0) == s->want;
}

typedef struct sub_tally {
    int n;
    int with_meta_m0;
} sub_tally;

static bool tally_sub(void *ud, const hamok_sub_event *sub)
{
    sub_tally *t = ud;
    assert_int_equal(sub->event_len, 3);
    assert_memory_equal(sub->event, "msg", 3);
    t->n++;
    if (sub->has_meta && sub->meta_len == 2 && memcmp(sub->meta, "m0", 2) == 0) {
        t->with_meta_m0++;
    }
    return true;
}

static void test_emitter(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    hamok_emitter *es[3];
    inbox boxes[3];
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_emitter_open(c.nodes[i], "chat", &es[i]), HAMOK_OK);
        atomic_init(&boxes[i].got, 0);
    }
    assert_int_equal(hamok_emitter_subscribe(es[0], "msg", on_msg, &boxes[0], "m0", 2, 5000),
                     HAMOK_OK);
    assert_int_equal(hamok_emitter_subscribe(es[1], "msg", on_msg, &boxes[1], NULL, 0, 5000),
                     HAMOK_OK);
    /* Nobody listens to another event. */
    size_t nd = 9, nm = 9;
    assert_int_equal(hamok_emitter_publish(es[2], "other", "x", 1, NULL, 0, &nd, &nm, 1000),
                     HAMOK_OK);
    assert_int_equal(nd, 0);
    subs_ctx sc = {es[2], 2};
    assert_true(wait_for(subs_are, &sc, WAIT_MS));
    sub_tally tally = {0};
    assert_int_equal(hamok_emitter_foreach(es[2], tally_sub, &tally), HAMOK_OK);
    assert_int_equal(tally.n, 2);
    assert_int_equal(tally.with_meta_m0, 1);
    hamok_id delivered[3];
    assert_int_equal(hamok_emitter_publish(es[2], "msg", "hello", 5, delivered, 3, &nd, &nm, 5000),
                     HAMOK_OK);
    assert_int_equal(nd, 2);
    assert_int_equal(nm, 0);
    assert_int_equal(atomic_load(&boxes[0].got), 1);
    assert_int_equal(atomic_load(&boxes[1].got), 1);
    assert_string_equal(boxes[1].last, "hello");
    /* Metadata compare-and-set. */
    bool updated = true;
    assert_int_equal(hamok_emitter_update_metadata(es[0], "msg", "m1", 2, "zz", 2, &updated, 5000),
                     HAMOK_OK);
    assert_false(updated);
    assert_int_equal(hamok_emitter_update_metadata(es[0], "msg", "m1", 2, "m0", 2, &updated, 5000),
                     HAMOK_OK);
    assert_true(updated);
    /* A subscriber that does not answer is reported missing, not a failure. */
    hamok_id id1 = hamok_node_id(c.nodes[1]);
    hamok_id id2 = hamok_node_id(c.nodes[2]);
    assert_int_equal(hamok_mem_hub_set_link(c.hub, &id1, &id2, true), HAMOK_OK);
    assert_int_equal(hamok_emitter_publish(es[2], "msg", "again", 5, delivered, 3, &nd, &nm, 300),
                     HAMOK_OK);
    assert_int_equal(nd, 1);
    assert_int_equal(nm, 1);
    assert_int_equal(hamok_mem_hub_set_link(c.hub, &id1, &id2, false), HAMOK_OK);
    /* notify: fire and forget. */
    assert_true(hamok_emitter_notify(es[2], "msg", "n", 1));
    assert_false(hamok_emitter_notify(es[2], "nobody", "n", 1));
    /* Unsubscribing removes this peer from that event only. */
    assert_int_equal(hamok_emitter_unsubscribe(es[1], "msg", on_msg, &boxes[1], 5000), HAMOK_OK);
    sc.want = 1;
    assert_true(wait_for(subs_are, &sc, WAIT_MS));
    assert_false(hamok_emitter_has_subscriber(es[2], "msg", &id1));
    /* A peer that leaves loses its subscriptions everywhere. */
    hamok_id id0 = hamok_node_id(c.nodes[0]);
    assert_true(hamok_emitter_has_subscriber(es[2], "msg", &id0));
    for (size_t i = 0; i < 3; i++) {
        hamok_emitter_close(&es[i]);
    }
    assert_int_equal(hamok_node_leave(c.nodes[0], WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_emitter_open(c.nodes[2], "chat", &es[2]), HAMOK_OK);
    sc.e = es[2];
    sc.want = 0;
    assert_true(wait_for(subs_are, &sc, WAIT_MS));
    hamok_emitter_close(&es[2]);
    cluster_stop(&c);
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Durable mode: a restarted peer keeps its id and its data. */
static void test_durable_restart(void **state)
{
    (void)state;
    char dirs[3][64];
    cluster c;
    memset(&c, 0, sizeof c);
    assert_int_equal(hamok_mem_hub_new(&c.hub), HAMOK_OK);
    c.n = 3;
    for (size_t i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "/tmp/hamok-node-XXXXXX");
        assert_non_null(mkdtemp(dirs[i]));
        start_node_dir(&c, i, false, dirs[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        hamok_node_join_async(c.nodes[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_node_join(c.nodes[i], WAIT_MS), HAMOK_OK);
    }
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    hamok_map *m;
    assert_int_equal(hamok_map_open(c.nodes[0], "d", &m), HAMOK_OK);
    for (int k = 0; k < 50; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(hamok_map_set_str(m, key, "v", NULL, 5000), HAMOK_OK);
    }
    hamok_map_close(&m);
    /* Every peer restarts from its directory (the whole cluster at once). */
    hamok_id ids[3];
    for (size_t i = 0; i < 3; i++) {
        ids[i] = hamok_node_id(c.nodes[i]);
        hamok_node_destroy(&c.nodes[i]);
    }
    for (size_t i = 0; i < 3; i++) {
        start_node_dir(&c, i, false, dirs[i]);
        hamok_id again = hamok_node_id(c.nodes[i]);
        assert_memory_equal(again.b, ids[i].b, HAMOK_ID_LEN);
    }
    for (size_t i = 0; i < 3; i++) {
        hamok_node_join_async(c.nodes[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_node_join(c.nodes[i], WAIT_MS), HAMOK_OK);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_node_sync(c.nodes[i], WAIT_MS), HAMOK_OK);
        assert_int_equal(hamok_map_open(c.nodes[i], "d", &m), HAMOK_OK);
        assert_int_equal(hamok_map_size(m), 50);
        hamok_map_close(&m);
    }
    /* A second process cannot open a directory in use. */
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_storage_dir(cfg, dirs[0]), HAMOK_OK);
    hamok_transport *t;
    assert_int_equal(hamok_mem_transport_new(c.hub, &t), HAMOK_OK);
    hamok_node *dup = NULL;
    assert_int_not_equal(hamok_node_new(&dup, cfg, &t), HAMOK_OK);
    assert_null(t);
    hamok_config_destroy(&cfg);
    cluster_stop(&c);
    for (size_t i = 0; i < 3; i++) {
        rm_rf(dirs[i]);
    }
}

static void test_misuse(void **state)
{
    (void)state;
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_cluster(cfg, ""), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_config_set_timing(cfg, 100, 100), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_config_set_peer_id(cfg, "not-a-uuid"), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_config_set_sync(cfg, HAMOK_FSYNC_BATCH, 0), HAMOK_ERR_INVALID);
    hamok_node *n = NULL;
    assert_int_equal(hamok_node_new(&n, cfg, NULL), HAMOK_ERR_INVALID);
    hamok_config_destroy(&cfg);
    hamok_config_destroy(&cfg); /* NULL-safe */
    hamok_node_destroy(&n);
    assert_int_equal(hamok_map_open(NULL, "x", NULL), HAMOK_ERR_INVALID);

    cluster c;
    cluster_start(&c, 1);
    hamok_map *m;
    assert_int_equal(hamok_map_open(c.nodes[0], "", &m), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_map_open(c.nodes[0], "m", &m), HAMOK_OK);
    assert_int_equal(hamok_map_set(m, NULL, 3, "v", 1, NULL, 1000), HAMOK_ERR_INVALID);
    /* A value too big for one frame is refused, not sent. */
    size_t big = 2u * 1024u * 1024u;
    char *buf = calloc(1, big);
    assert_non_null(buf);
    assert_int_equal(hamok_map_set(m, "k", 1, buf, big, NULL, 1000), HAMOK_ERR_TOO_BIG);
    free(buf);
    hamok_map_close(&m);
    cluster_stop(&c);
}

/* ------------------------------------------------------------------------ */
/* Metrics, statistics and the collections list. */

typedef struct leader_ctx {
    cluster *c;
} leader_ctx;

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p != NULL; p = strstr(p + 1, line)) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

/* Every line is a comment or `name{labels} value` with a numeric value. */
static void assert_exposition_format(const char *text)
{
    const char *p = text;
    while (*p != '\0') {
        const char *e = strchr(p, '\n');
        assert_non_null(e); /* every line ends with a newline */
        if (*p != '#') {
            const char *sp = memchr(p, ' ', (size_t)(e - p));
            assert_non_null(sp);
            assert_true(strncmp(p, "hamok_", 6) == 0);
            char *end = NULL;
            (void)strtod(sp + 1, &end);
            assert_ptr_equal(end, e);
        }
        p = e + 1;
    }
}

static void test_metrics(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    hamok_map *m;
    assert_int_equal(hamok_map_open(c.nodes[1], "orders", &m), HAMOK_OK);
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(hamok_map_set_str(m, k, "v", NULL, WAIT_MS), HAMOK_OK);
    }
    /* A value larger than half a frame travels as one entry of its own. */
    size_t big = 900u * 1024u;
    char *buf = calloc(1, big);
    assert_non_null(buf);
    assert_int_equal(hamok_map_set(m, "big", 3, buf, big, NULL, WAIT_MS), HAMOK_OK);
    free(buf);
    hamok_node_stats st;
    hamok_node_stats_get(c.nodes[1], &st);
    assert_int_equal(st.proposals_committed, 6);
    assert_int_equal(st.proposals_failed, 0);
    assert_true(st.leader_changes >= 1);

    hamok_coll_info ci[4];
    assert_int_equal(hamok_node_sync(c.nodes[2], WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_node_collections(c.nodes[2], ci, 4), 1);
    assert_int_equal(ci[0].kind, HAMOK_COLL_MAP);
    assert_string_equal(ci[0].name, "orders");
    assert_int_equal(ci[0].entries, 6);

    size_t li = leader_of(&c);
    assert_true(li < 3);
    /* The leader's mirror of match indexes is refreshed each loop turn. */
    assert_int_equal(hamok_node_sync(c.nodes[li], WAIT_MS), HAMOK_OK);
    size_t need = hamok_node_metrics(c.nodes[li], NULL, 0);
    assert_true(need > 0);
    char *text = malloc(need + 1);
    assert_non_null(text);
    assert_int_equal(hamok_node_metrics(c.nodes[li], text, need + 1), need);
    assert_int_equal(strlen(text), need);
    assert_exposition_format(text);
    assert_true(has_line(text, "hamok_is_leader 1"));
    assert_true(has_line(text, "hamok_role{role=\"leader\"} 1"));
    assert_true(has_line(text, "hamok_members 3"));
    assert_true(has_line(text, "hamok_collection_entries{kind=\"map\",name=\"orders\"} 6"));
    assert_true(has_line(text, "hamok_frames_rejected_total{reason=\"malformed\"} 0"));
    size_t lag_lines = 0;
    for (const char *p = strstr(text, "\nhamok_peer_lag_entries{"); p != NULL;
         p = strstr(p + 1, "\nhamok_peer_lag_entries{")) {
        lag_lines++;
    }
    assert_int_equal(lag_lines, 3);
    /* Cut like snprintf: same length reported, NUL-terminated, prefix kept. */
    char small[64];
    assert_int_equal(hamok_node_metrics(c.nodes[li], small, sizeof small), need);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, text, sizeof small - 1);
    free(text);
    /* On a follower: no per-peer lag. */
    size_t fi = (li + 1) % 3;
    char *ft = malloc(1u << 16);
    assert_non_null(ft);
    assert_true(hamok_node_metrics(c.nodes[fi], ft, 1u << 16) < (1u << 16));
    assert_true(has_line(ft, "hamok_is_leader 0"));
    assert_null(strstr(ft, "hamok_peer_lag_entries{"));
    free(ft);
    hamok_map_close(&m);
    cluster_stop(&c);
}

/* ------------------------------------------------------------------------ */
/* A transport that knows who sent each frame (deliver_from) and reports its
 * link: two taps wired to each other; a spoofing tap names another sender. */

typedef struct tap {
    hamok_transport base;
    hamok_transport_sink *sink;
    struct tap *other;
    pthread_mutex_t *mu;
    bool spoof;
    hamok_id fake;
} tap;

static hamok_status tap_start(hamok_transport *t, hamok_transport_sink *sink)
{
    tap *p = (tap *)t;
    pthread_mutex_lock(p->mu);
    p->sink = sink;
    pthread_mutex_unlock(p->mu);
    sink->link(sink, HAMOK_LINK_CONNECTED, "tap wired");
    return HAMOK_OK;
}

static hamok_status tap_send(hamok_transport *t, const hamok_id *to, const void *b, size_t len)
{
    (void)to;
    tap *p = (tap *)t;
    pthread_mutex_lock(p->mu);
    hamok_transport_sink *s = p->other != NULL ? p->other->sink : NULL;
    if (s != NULL) {
        s->deliver_from(s, p->spoof ? &p->fake : &p->base.self, b, len);
    }
    pthread_mutex_unlock(p->mu);
    return HAMOK_OK;
}

static const char *tap_endpoint(hamok_transport *t)
{
    (void)t;
    return "tap";
}

static void tap_stop(hamok_transport *t)
{
    tap *p = (tap *)t;
    pthread_mutex_lock(p->mu);
    p->sink = NULL;
    if (p->other != NULL) {
        p->other->other = NULL;
    }
    p->other = NULL;
    pthread_mutex_unlock(p->mu);
}

static void tap_destroy(hamok_transport *t)
{
    free(t);
}

static const hamok_transport_ops tap_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "tap",
    .start = tap_start,
    .send = tap_send,
    .local_endpoint = tap_endpoint,
    .stop = tap_stop,
    .destroy = tap_destroy,
};

typedef struct link_seen {
    atomic_int connected;
} link_seen;

static void on_link(void *ud, const hamok_node_event *ev)
{
    link_seen *l = ud;
    if (ev->type == HAMOK_EVENT_TRANSPORT && ev->link == HAMOK_LINK_CONNECTED && ev->text != NULL &&
        strcmp(ev->text, "tap wired") == 0) {
        atomic_fetch_add(&l->connected, 1);
    }
}

static bool link_connected(void *ud)
{
    return atomic_load(&((link_seen *)ud)->connected) > 0;
}

typedef struct rejected_ctx {
    hamok_node *n;
} rejected_ctx;

static bool source_rejected(void *ud)
{
    hamok_node_stats st;
    hamok_node_stats_get(((rejected_ctx *)ud)->n, &st);
    return st.frames_rejected_by[HAMOK_FRAME_SOURCE] > 0;
}

static bool link_stat_connected(void *ud)
{
    hamok_node_stats st;
    hamok_node_stats_get(((rejected_ctx *)ud)->n, &st);
    return st.link == HAMOK_LINK_CONNECTED && st.link_changes == 1;
}

static hamok_node *tap_node(tap *t, bool embedded)
{
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_cluster(cfg, "tap"), HAMOK_OK);
    assert_int_equal(hamok_config_set_timing(cfg, 150, 30), HAMOK_OK);
    assert_int_equal(hamok_config_set_bootstrap_expect(cfg, 2), HAMOK_OK);
    assert_int_equal(hamok_config_set_embedded(cfg, embedded), HAMOK_OK);
    hamok_transport *tt = &t->base;
    hamok_node *n;
    assert_int_equal(hamok_node_new(&n, cfg, &tt), HAMOK_OK);
    hamok_config_destroy(&cfg);
    return n;
}

static void run_taps(bool spoof)
{
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    tap *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    a->base.ops = b->base.ops = &tap_ops;
    a->mu = b->mu = &mu;
    a->other = b;
    b->other = a;
    b->spoof = spoof;
    memset(b->fake.b, 0x5a, sizeof b->fake.b);
    hamok_node *na = tap_node(a, false);
    hamok_node *nb = tap_node(b, false);
    /* The event may fire before the listener is added; the stats keep the
     * last state either way. */
    rejected_ctx lc = {na};
    assert_true(wait_for(link_stat_connected, &lc, WAIT_MS));
    hamok_node_stats st;
    hamok_node_join_async(na, 3000, NULL, NULL);
    hamok_node_join_async(nb, 3000, NULL, NULL);
    if (spoof) {
        rejected_ctx rc = {na};
        assert_true(wait_for(source_rejected, &rc, WAIT_MS));
        /* b never speaks for itself, so a never counts it: no cluster of 2. */
        assert_int_equal(hamok_node_join(na, 600), HAMOK_ERR_TIMEOUT);
        hamok_node_stats_get(nb, &st);
        assert_int_equal(st.frames_rejected_by[HAMOK_FRAME_SOURCE], 0);
    } else {
        assert_int_equal(hamok_node_join(na, WAIT_MS), HAMOK_OK);
        assert_int_equal(hamok_node_join(nb, WAIT_MS), HAMOK_OK);
        hamok_node_stats_get(na, &st);
        assert_int_equal(st.frames_rejected_by[HAMOK_FRAME_SOURCE], 0);
        assert_int_equal(st.members, 2);
    }
    hamok_node_destroy(&na);
    hamok_node_destroy(&nb);
}

static void test_authenticated_source(void **state)
{
    (void)state;
    run_taps(false);
    run_taps(true);
}

/* The link state reaches listeners as an event, on the loop thread. */
static void test_link_event(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    tap *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->base.ops = &tap_ops;
    a->mu = &mu;
    hamok_node *n = tap_node(a, true); /* embedded: nothing runs until process() */
    link_seen ls;
    atomic_init(&ls.connected, 0);
    assert_int_equal(hamok_node_on(n, on_link, &ls), HAMOK_OK);
    assert_false(link_connected(&ls));
    assert_int_equal(hamok_node_process(n), HAMOK_OK);
    assert_int_equal(atomic_load(&ls.connected), 1);
    hamok_node_stats st;
    hamok_node_stats_get(n, &st);
    assert_int_equal(st.link, HAMOK_LINK_CONNECTED);
    hamok_node_destroy(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_node),     cmocka_unit_test(test_three_nodes),
        cmocka_unit_test(test_failover),        cmocka_unit_test(test_leave_and_rejoin),
        cmocka_unit_test(test_embedded),        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_record),          cmocka_unit_test(test_emitter),
        cmocka_unit_test(test_durable_restart), cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_metrics),         cmocka_unit_test(test_authenticated_source),
        cmocka_unit_test(test_link_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
