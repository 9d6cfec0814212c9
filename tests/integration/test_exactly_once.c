/* Exactly-once proposals end to end, through the node runtime and its public
 * API (hamok_queue_push: an item pushed twice would be visible twice), on the
 * in-process transport with its fault injection (hamok/mem.h).
 *
 * Each node's mem transport is wrapped by a "tap" that only observes (it
 * decodes every frame the node sends with the real codec and forwards it
 * unchanged): it sees the SUBMIT_REQUESTs a client sends for one (client,
 * seq) and every index at which a leader's AppendEntries carry that (client,
 * seq). That is how the tests prove the retry happened and that the log did
 * hold the command twice, while the queue holds the item once. A tap can also
 * fire a fault at a chosen moment (cut a link or isolate the leader through
 * the hub) — the faults themselves are the hub's.
 *
 *   lost_response_retried_once    the client's link to the leader is cut when
 *                                 the leader first replicates its command: it
 *                                 never learns the outcome (committed by the
 *                                 two others); leadership moves on, the client
 *                                 resubmits, the new leader appends it again;
 *                                 applied once.
 *   leader_change_retried_once    the leader is isolated right after the
 *                                 command reached one follower: the new
 *                                 leader commits it and the client's retry;
 *                                 applied once.
 *   random_faults_every_push_once three clients push under loss, delay,
 *                                 reordering and leader isolation.
 *   durable_restart_new_writes    durable mode: a restarted peer keeps its id;
 *                                 its proposals after the restart must not be
 *                                 taken for its earlier ones (sequence
 *                                 numbers), and a lone founder comes back as
 *                                 leader of its configuration.
 *
 * Real threads and clock; every wait polls a condition with a deadline. */
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

#include "codec/codec.h"
#include "hamok/mem.h"
#include "hamok/node.h"
#include "hamok/queue.h"
#include "util/id.h"

#define MAXN    3
#define WAIT_MS 20000
#define T_EL    150 /* election timeout of every node; heartbeat 30 */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Poll interval of the condition waits (not a fixed wait for an outcome). */
static void poll_pause(void)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 2 * 1000000L};
    nanosleep(&ts, NULL);
}

static bool wait_for(bool (*cond)(void *), void *ud, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!cond(ud)) {
        if (now_ms() >= end) {
            return cond(ud);
        }
        poll_pause();
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Observer shared by the taps of one cluster. */

#define MAX_CMDS   4096
#define MAX_COPIES 8

typedef struct cmd_obs {
    hamok_id client;
    uint64_t seq;
    unsigned submits;         /* SUBMIT_REQUESTs the client sent for it */
    uint64_t idx[MAX_COPIES]; /* distinct log indexes leaders replicated it at */
    uint64_t term[MAX_COPIES];
    unsigned copies;
} cmd_obs;

typedef enum trigger_action {
    TRIG_NONE = 0,
    TRIG_CUT_CLIENT,     /* cut client <-> leader before the frame goes out */
    TRIG_ISOLATE_LEADER, /* isolate the leader after the frame to `to` went out */
} trigger_action;

typedef struct observer {
    pthread_mutex_t mu;
    hamok_mem_hub *hub;
    cmd_obs cmds[MAX_CMDS];
    size_t n_cmds;
    /* Trigger: the first AppendEntries carrying a command of `client` sent by
     * a leader (to `to`, when has_to). Fires once. */
    trigger_action action;
    hamok_id client;
    bool has_to;
    hamok_id to;
    bool fired;
    hamok_id fired_leader;
    uint64_t fired_seq;
} observer;

static cmd_obs *obs_cmd(observer *o, const hamok_id *client, uint64_t seq)
{
    for (size_t i = 0; i < o->n_cmds; i++) {
        if (o->cmds[i].seq == seq && hamok__id_eq(&o->cmds[i].client, client)) {
            return &o->cmds[i];
        }
    }
    if (o->n_cmds == MAX_CMDS) {
        return NULL;
    }
    cmd_obs *c = &o->cmds[o->n_cmds++];
    memset(c, 0, sizeof *c);
    c->client = *client;
    c->seq = seq;
    return c;
}

static void obs_copy(cmd_obs *c, uint64_t index, uint64_t term)
{
    for (unsigned k = 0; k < c->copies; k++) {
        if (c->idx[k] == index && c->term[k] == term) {
            return;
        }
    }
    if (c->copies < MAX_COPIES) {
        c->idx[c->copies] = index;
        c->term[c->copies] = term;
        c->copies++;
    }
}

/* Distinct indexes at which (client, seq) was replicated. */
static unsigned distinct_indexes(const cmd_obs *c)
{
    unsigned n = 0;
    for (unsigned k = 0; k < c->copies; k++) {
        bool seen = false;
        for (unsigned j = 0; j < k; j++) {
            seen = seen || c->idx[j] == c->idx[k];
        }
        n += seen ? 0u : 1u;
    }
    return n;
}

/* What one frame sent by `self` shows; returns the action to take. */
static trigger_action observe(observer *o, const hamok_id *self, const hamok_id *to,
                              const uint8_t *bytes, size_t len, bool *after)
{
    hamok_msg m;
    trigger_action act = TRIG_NONE;
    *after = false;
    if (hamok__codec_decode(bytes, len, NULL, NULL, &m, NULL) != HAMOK_OK) {
        return act;
    }
    pthread_mutex_lock(&o->mu);
    if (m.type == HAMOK_MSG_SUBMIT_REQUEST && m.u.submit.entry.seq != 0) {
        cmd_obs *c = obs_cmd(o, self, m.u.submit.entry.seq);
        if (c != NULL) {
            c->submits++;
        }
    } else if (m.type == HAMOK_MSG_APPEND_ENTRIES) {
        for (size_t k = 0; k < m.u.append.n_entries; k++) {
            const hamok_entry *e = &m.u.append.entries[k];
            if (e->type != HAMOK_ENTRY_COMMAND || e->seq == 0) {
                continue;
            }
            cmd_obs *c = obs_cmd(o, &e->client, e->seq);
            if (c != NULL) {
                obs_copy(c, m.u.append.prev_log_index + 1 + k, e->term);
            }
            if (o->action != TRIG_NONE && !o->fired && hamok__id_eq(&e->client, &o->client) &&
                (!o->has_to || (to != NULL && hamok__id_eq(to, &o->to)))) {
                o->fired = true;
                o->fired_leader = *self;
                o->fired_seq = e->seq;
                act = o->action;
                *after = act == TRIG_ISOLATE_LEADER;
            }
        }
    }
    pthread_mutex_unlock(&o->mu);
    hamok__msg_clear(&m);
    return act;
}

static void fire(observer *o, trigger_action act, const hamok_id *leader)
{
    if (act == TRIG_CUT_CLIENT) {
        hamok_mem_hub_set_link(o->hub, &o->client, leader, true);
    } else if (act == TRIG_ISOLATE_LEADER) {
        hamok_mem_hub_isolate(o->hub, leader, true);
    }
}

/* ------------------------------------------------------------------------ */
/* The tap: a transport around a mem transport. */

typedef struct tap {
    hamok_transport base; /* first member (transport.h) */
    hamok_transport *inner;
    observer *obs;
} tap;

static hamok_status tap_start(hamok_transport *t, hamok_transport_sink *sink)
{
    tap *p = (tap *)t;
    p->inner->self = t->self;
    memcpy(p->inner->cluster, t->cluster, sizeof p->inner->cluster);
    return p->inner->ops->start(p->inner, sink);
}

static hamok_status tap_send(hamok_transport *t, const hamok_id *to, const void *bytes, size_t len)
{
    tap *p = (tap *)t;
    bool after = false;
    trigger_action act = observe(p->obs, &t->self, to, bytes, len, &after);
    if (act != TRIG_NONE && !after) {
        fire(p->obs, act, &t->self);
    }
    hamok_status st = p->inner->ops->send(p->inner, to, bytes, len);
    if (act != TRIG_NONE && after) {
        fire(p->obs, act, &t->self);
    }
    return st;
}

static void tap_set_peer(hamok_transport *t, const hamok_id *peer, const char *endpoint)
{
    tap *p = (tap *)t;
    if (p->inner->ops->set_peer != NULL) {
        p->inner->ops->set_peer(p->inner, peer, endpoint);
    }
}

static const char *tap_endpoint(hamok_transport *t)
{
    tap *p = (tap *)t;
    return p->inner->ops->local_endpoint(p->inner);
}

static void tap_stop(hamok_transport *t)
{
    tap *p = (tap *)t;
    p->inner->ops->stop(p->inner);
}

static void tap_destroy(hamok_transport *t)
{
    tap *p = (tap *)t;
    p->inner->ops->destroy(p->inner);
    free(p);
}

static const hamok_transport_ops tap_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "tap",
    .start = tap_start,
    .send = tap_send,
    .set_peer = tap_set_peer,
    .local_endpoint = tap_endpoint,
    .stop = tap_stop,
    .destroy = tap_destroy,
};

static hamok_transport *tap_new(observer *o)
{
    tap *p = calloc(1, sizeof *p);
    assert_non_null(p);
    assert_int_equal(hamok_mem_transport_new(o->hub, &p->inner), HAMOK_OK);
    p->base.ops = &tap_ops;
    p->base.max_frame = p->inner->max_frame;
    p->obs = o;
    return &p->base;
}

/* ------------------------------------------------------------------------ */
/* Clusters. */

typedef struct cluster {
    observer obs;
    hamok_node *nodes[MAXN];
    hamok_queue *q[MAXN];
    size_t n;
} cluster;

static hamok_node *start_node(cluster *c, size_t i, const char *dir)
{
    hamok_config *cfg;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    assert_int_equal(hamok_config_set_cluster(cfg, "once"), HAMOK_OK);
    assert_int_equal(hamok_config_set_timing(cfg, T_EL, 30), HAMOK_OK);
    assert_int_equal(hamok_config_set_peer_timeout(cfg, 0), HAMOK_OK); /* nobody removed */
    assert_int_equal(hamok_config_set_storage_dir(cfg, dir), HAMOK_OK);
    hamok_transport *t = tap_new(&c->obs);
    hamok_node *n;
    assert_int_equal(hamok_node_new(&n, cfg, &t), HAMOK_OK);
    hamok_config_destroy(&cfg);
    c->nodes[i] = n;
    return n;
}

typedef struct agree_ctx {
    cluster *c;
    size_t voters;
} agree_ctx;

/* Every node knows the same leader and `voters` voters. */
static bool agree(void *ud)
{
    agree_ctx *a = ud;
    hamok_id leader = {0};
    for (size_t i = 0; i < a->c->n; i++) {
        hamok_id l;
        if (!hamok_node_leader_id(a->c->nodes[i], &l) || (i > 0 && !hamok__id_eq(&l, &leader))) {
            return false;
        }
        leader = l;
        hamok_peer_info peers[MAXN + 2];
        size_t k = hamok_node_peers(a->c->nodes[i], peers, MAXN + 2);
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

static void join_all(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        hamok_node_join_async(c->nodes[i], WAIT_MS, NULL, NULL);
    }
    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(hamok_node_join(c->nodes[i], WAIT_MS), HAMOK_OK);
    }
    agree_ctx a = {c, c->n};
    assert_true(wait_for(agree, &a, WAIT_MS));
}

static void cluster_start(cluster *c, size_t n)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->obs.mu, NULL);
    assert_int_equal(hamok_mem_hub_new(&c->obs.hub), HAMOK_OK);
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        start_node(c, i, NULL);
    }
    join_all(c);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hamok_queue_open(c->nodes[i], "jobs", &c->q[i]), HAMOK_OK);
    }
}

static void cluster_stop(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        hamok_queue_close(&c->q[i]);
        hamok_node_destroy(&c->nodes[i]);
    }
    assert_int_equal(hamok_mem_hub_destroy(&c->obs.hub), HAMOK_OK);
    pthread_mutex_destroy(&c->obs.mu);
}

static size_t leader_index(cluster *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (hamok_node_is_leader(c->nodes[i])) {
            return i;
        }
    }
    return SIZE_MAX;
}

static bool have_leader(void *ud)
{
    return leader_index(ud) != SIZE_MAX;
}

/* How often each item occurs in a queue. */
typedef struct count_ctx {
    const char *item;
    size_t hits;
    size_t total;
} count_ctx;

static bool count_item(void *ud, const void *item, size_t len)
{
    count_ctx *k = ud;
    k->total++;
    if (len == strlen(k->item) && memcmp(item, k->item, len) == 0) {
        k->hits++;
    }
    return true;
}

/* Every node, after a read barrier, holds `item` exactly once. */
static void assert_once_everywhere(cluster *c, const char *item)
{
    for (size_t i = 0; i < c->n; i++) {
        assert_int_equal(hamok_node_sync(c->nodes[i], WAIT_MS), HAMOK_OK);
        count_ctx k = {item, 0, 0};
        assert_int_equal(hamok_queue_foreach(c->q[i], count_item, &k), HAMOK_OK);
        if (k.hits != 1) {
            fail_msg("node %zu holds \"%s\" %zu times (of %zu items)", i, item, k.hits, k.total);
        }
    }
}

typedef struct pusher {
    hamok_queue *q;
    const char *item;
    int timeout_ms;
    atomic_int done;
    hamok_status st;
} pusher;

static void *push_thread(void *arg)
{
    pusher *p = arg;
    p->st = hamok_queue_push(p->q, p->item, strlen(p->item), p->timeout_ms);
    atomic_store(&p->done, 1);
    return NULL;
}

typedef struct cut_ctx {
    observer *o;
    hamok_node *client;
} cut_ctx;

/* The trigger cut the client off, and the client gave up on the leader: it
 * resubmitted into the cut link, or its election timer ran out and it knows
 * no leader any more (it resubmits once it learns one). */
static bool client_gave_up(void *ud)
{
    cut_ctx *r = ud;
    pthread_mutex_lock(&r->o->mu);
    bool ok = false;
    if (r->o->fired) {
        const cmd_obs *c = obs_cmd(r->o, &r->o->client, r->o->fired_seq);
        ok = c != NULL && c->submits >= 2;
    }
    pthread_mutex_unlock(&r->o->mu);
    hamok_id l;
    return ok || (r->o->fired && !hamok_node_leader_id(r->client, &l));
}

static bool push_done(void *ud)
{
    return atomic_load(&((pusher *)ud)->done) != 0;
}

static unsigned fired_copies(observer *o, unsigned *submits)
{
    pthread_mutex_lock(&o->mu);
    const cmd_obs *c = obs_cmd(o, &o->client, o->fired_seq);
    unsigned n = c != NULL ? distinct_indexes(c) : 0;
    *submits = c != NULL ? c->submits : 0;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* ------------------------------------------------------------------------ */

/* The leader replicates the client's command; at that moment the hub cuts
 * the client off from the leader, so the client learns nothing (no
 * SUBMIT_RESPONSE, no AppendEntries) while the leader and the other follower
 * commit the command. Leadership moves to the other follower; the client
 * learns the new leader before it can learn the log (the new leader's first
 * AppendEntries probes past the command) and resubmits, so the new leader
 * appends the command a second time. The push returns OK and the item is in
 * every queue once. */
static void lost_response_retried_once(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    size_t l = leader_index(&c);
    assert_true(l != SIZE_MAX);
    size_t ci = (l + 1) % 3;
    hamok_id client = hamok_node_id(c.nodes[ci]);
    hamok_id leader = hamok_node_id(c.nodes[l]);
    pthread_mutex_lock(&c.obs.mu);
    c.obs.action = TRIG_CUT_CLIENT;
    c.obs.client = client;
    pthread_mutex_unlock(&c.obs.mu);
    pusher p = {c.q[ci], "lost-response", WAIT_MS, 0, HAMOK_ERR_STATE};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, push_thread, &p), 0);
    cut_ctx r = {&c.obs, c.nodes[ci]};
    bool gave_up = wait_for(client_gave_up, &r, WAIT_MS);
    assert_false(atomic_load(&p.done)); /* it cannot know the outcome */
    /* Committed meanwhile by the leader and the other follower. */
    size_t other = (l + 2) % 3;
    count_ctx k = {"lost-response", 0, 0};
    for (uint64_t end = now_ms() + WAIT_MS; k.hits == 0 && now_ms() < end; poll_pause()) {
        k.hits = 0;
        assert_int_equal(hamok_queue_foreach(c.q[other], count_item, &k), HAMOK_OK);
    }
    hamok_id next = hamok_node_id(c.nodes[other]);
    hamok_status ts = hamok_node_transfer_leadership(c.nodes[l], &next, WAIT_MS);
    bool finished = wait_for(push_done, &p, WAIT_MS);
    pthread_join(th, NULL);
    hamok_mem_hub_set_link(c.obs.hub, &client, &leader, false);
    assert_true(gave_up);
    assert_int_equal(k.hits, 1);
    assert_int_equal(ts, HAMOK_OK);
    assert_true(finished);
    assert_int_equal(p.st, HAMOK_OK);
    unsigned submits = 0;
    unsigned copies = fired_copies(&c.obs, &submits);
    assert_true(submits >= 2);
    printf("  client n%zu: %u submits, the leader's log carried the command at %u indexes\n", ci,
           submits, copies);
    assert_true(copies >= 2);                    /* the retry was appended again ... */
    assert_once_everywhere(&c, "lost-response"); /* ... and applied once */
    cluster_stop(&c);
}

/* The leader is isolated right after its AppendEntries with the client's
 * command went to the other follower: the new leader commits that copy, and
 * the client retries with the new leader, which appends it again. */
static void leader_change_retried_once(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    size_t l = leader_index(&c);
    assert_true(l != SIZE_MAX);
    size_t ci = (l + 1) % 3;
    size_t other = (l + 2) % 3;
    hamok_id leader = hamok_node_id(c.nodes[l]);
    pthread_mutex_lock(&c.obs.mu);
    c.obs.action = TRIG_ISOLATE_LEADER;
    c.obs.client = hamok_node_id(c.nodes[ci]);
    c.obs.has_to = true;
    c.obs.to = hamok_node_id(c.nodes[other]);
    pthread_mutex_unlock(&c.obs.mu);
    pusher p = {c.q[ci], "leader-change", WAIT_MS, 0, HAMOK_ERR_STATE};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, push_thread, &p), 0);
    bool finished = wait_for(push_done, &p, WAIT_MS);
    pthread_join(th, NULL);
    assert_true(finished);
    assert_int_equal(p.st, HAMOK_OK);
    assert_true(c.obs.fired);
    hamok_id now_leader = {0};
    assert_true(hamok_node_leader_id(c.nodes[ci], &now_leader));
    assert_false(hamok__id_eq(&now_leader, &leader)); /* a new leader answered */
    size_t l2 = SIZE_MAX;
    for (size_t i = 0; i < 3; i++) {
        hamok_id id = hamok_node_id(c.nodes[i]);
        l2 = hamok__id_eq(&id, &now_leader) ? i : l2;
    }
    hamok_mem_hub_isolate(c.obs.hub, &leader, false);
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    unsigned submits = 0;
    unsigned copies = fired_copies(&c.obs, &submits);
    printf(
        "  old leader n%zu isolated; new leader n%zu; client n%zu: %u submits, the command "
        "at %u indexes\n",
        l, l2, ci, submits, copies);
    assert_true(copies >= 2);
    assert_once_everywhere(&c, "leader-change");
    cluster_stop(&c);
}

/* Three clients push under 10% loss, 0..15 ms delay (reordering) and
 * repeated leader isolation; every item ends up once in every queue, in each
 * client's order. */
#define ITEMS 40

typedef struct client_run {
    cluster *c;
    size_t node;
    hamok_status st;
    int pushed;
} client_run;

static void *client_loop(void *arg)
{
    client_run *r = arg;
    r->st = HAMOK_OK;
    for (int k = 0; k < ITEMS; k++) {
        char item[32];
        snprintf(item, sizeof item, "n%zu-%d", r->node, k);
        hamok_status st = hamok_queue_push(r->c->q[r->node], item, strlen(item), 60000);
        if (st != HAMOK_OK) {
            r->st = st;
            return NULL;
        }
        r->pushed++;
    }
    return NULL;
}

typedef struct order_ctx {
    int next[MAXN];
    int seen[MAXN][ITEMS];
    bool bad_order;
    size_t total;
} order_ctx;

static bool check_item(void *ud, const void *item, size_t len)
{
    order_ctx *o = ud;
    char buf[32];
    if (len >= sizeof buf) {
        o->bad_order = true;
        return true;
    }
    memcpy(buf, item, len);
    buf[len] = '\0';
    unsigned node = 0;
    int k = 0;
    if (sscanf(buf, "n%u-%d", &node, &k) != 2 || node >= MAXN || k < 0 || k >= ITEMS) {
        o->bad_order = true;
        return true;
    }
    o->seen[node][k]++;
    if (k != o->next[node]) {
        o->bad_order = true;
    }
    o->next[node] = k + 1;
    o->total++;
    return true;
}

static void random_faults_every_push_once(void **state)
{
    (void)state;
    cluster c;
    cluster_start(&c, 3);
    assert_int_equal(hamok_mem_hub_set_drop(c.obs.hub, 100), HAMOK_OK);
    assert_int_equal(hamok_mem_hub_set_delay(c.obs.hub, 0, 15), HAMOK_OK);
    client_run runs[MAXN];
    pthread_t th[MAXN];
    for (size_t i = 0; i < 3; i++) {
        runs[i] = (client_run){&c, i, HAMOK_OK, 0};
        assert_int_equal(pthread_create(&th[i], NULL, client_loop, &runs[i]), 0);
    }
    /* Nemesis: while the clients push, isolate whoever leads for 2..4
     * election timeouts, then heal its links (loss and delay stay). */
    unsigned isolations = 0;
    uint64_t end = now_ms() + 120000;
    srand(42);
    for (;;) {
        int done = 0;
        for (size_t i = 0; i < 3; i++) {
            done += runs[i].pushed == ITEMS || runs[i].st != HAMOK_OK ? 1 : 0;
        }
        if (done == 3 || now_ms() > end) {
            break;
        }
        uint64_t until = now_ms() + 2u * T_EL + (uint64_t)(rand() % (2 * T_EL));
        size_t l = leader_index(&c);
        if (l != SIZE_MAX && rand() % 2 == 0) {
            hamok_id id = hamok_node_id(c.nodes[l]);
            hamok_mem_hub_isolate(c.obs.hub, &id, true);
            while (now_ms() < until) {
                poll_pause();
            }
            hamok_mem_hub_isolate(c.obs.hub, &id, false);
            isolations++;
        }
        until = now_ms() + 2u * T_EL;
        while (now_ms() < until) {
            poll_pause();
        }
    }
    for (size_t i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    hamok_mem_hub_heal(c.obs.hub);
    for (size_t i = 0; i < 3; i++) {
        if (runs[i].st != HAMOK_OK) {
            fail_msg("client n%zu: push %d failed: %s", i, runs[i].pushed,
                     hamok_status_str(runs[i].st));
        }
        assert_int_equal(runs[i].pushed, ITEMS);
    }
    agree_ctx a = {&c, 3};
    assert_true(wait_for(agree, &a, WAIT_MS));
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hamok_node_sync(c.nodes[i], WAIT_MS), HAMOK_OK);
        order_ctx o;
        memset(&o, 0, sizeof o);
        assert_int_equal(hamok_queue_foreach(c.q[i], check_item, &o), HAMOK_OK);
        for (size_t n = 0; n < 3; n++) {
            for (int k = 0; k < ITEMS; k++) {
                if (o.seen[n][k] != 1) {
                    fail_msg("node %zu holds n%zu-%d %d times", i, n, k, o.seen[n][k]);
                }
            }
        }
        assert_false(o.bad_order);
        assert_int_equal(o.total, 3 * ITEMS);
    }
    unsigned retried = 0, twice = 0;
    pthread_mutex_lock(&c.obs.mu);
    for (size_t i = 0; i < c.obs.n_cmds; i++) {
        retried += c.obs.cmds[i].submits > 1 ? 1u : 0u;
        twice += distinct_indexes(&c.obs.cmds[i]) > 1 ? 1u : 0u;
    }
    pthread_mutex_unlock(&c.obs.mu);
    printf(
        "  %d items, %u leader isolations, %llu frames dropped by the hub; %u commands "
        "resubmitted, %u in the log at two or more indexes; each item applied once\n",
        3 * ITEMS, isolations, (unsigned long long)hamok_mem_hub_dropped(c.obs.hub), retried,
        twice);
    cluster_stop(&c);
}

/* Durable mode: a peer that restarts keeps its id, so its proposals after the
 * restart carry the same client id as those before it. They must be new
 * commands, not duplicates of the earlier ones. A lone founder also comes
 * back as the leader of its own configuration. */
static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void durable_restart_new_writes(void **state)
{
    (void)state;
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/hamok-once-XXXXXX");
    assert_non_null(mkdtemp(dir));
    cluster c;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.obs.mu, NULL);
    assert_int_equal(hamok_mem_hub_new(&c.obs.hub), HAMOK_OK);
    c.n = 1;
    for (int round = 0; round < 3; round++) {
        start_node(&c, 0, dir);
        join_all(&c);
        assert_true(wait_for(have_leader, &c, WAIT_MS));
        assert_int_equal(hamok_queue_open(c.nodes[0], "jobs", &c.q[0]), HAMOK_OK);
        assert_int_equal(hamok_queue_size(c.q[0]), (size_t)(5 * round));
        for (int k = 0; k < 5; k++) {
            char item[32];
            snprintf(item, sizeof item, "r%d-%d", round, k);
            assert_int_equal(hamok_queue_push(c.q[0], item, strlen(item), WAIT_MS), HAMOK_OK);
            assert_once_everywhere(&c, item);
        }
        assert_int_equal(hamok_queue_size(c.q[0]), (size_t)(5 * round + 5));
        hamok_queue_close(&c.q[0]);
        hamok_node_destroy(&c.nodes[0]);
    }
    assert_int_equal(hamok_mem_hub_destroy(&c.obs.hub), HAMOK_OK);
    pthread_mutex_destroy(&c.obs.mu);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(lost_response_retried_once),
        cmocka_unit_test(leader_change_retried_once),
        cmocka_unit_test(random_faults_every_push_once),
        cmocka_unit_test(durable_restart_new_writes),
    };
    return cmocka_run_group_tests_name("exactly_once", tests, NULL, NULL);
}
