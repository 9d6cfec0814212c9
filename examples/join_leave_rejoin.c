/* hamok-example-join-leave-rejoin: peers join, leave, come back, and one is
 * cut off from the network and heals (the original's
 * common-join-leave-rejoin-example).
 *
 *   1. Peers "server 1" and "server 2" join; "server 3" joins later.
 *   2. Server 1 leaves: the others see it leave and keep a leader.
 *   3. Server 1 comes back (a new node: a peer that left is done) and joins.
 *   4. Server 1 is cut off at the transport (its frames are dropped both
 *      ways, like a pulled cable): it loses its leader; the others remove it
 *      after the peer timeout (1.5 s) and go on writing.
 *   5. The cable is back: server 1 hears the cluster again, learns it was
 *      removed, joins again by itself and catches up with what was written
 *      while it was away.
 *
 * The cut is a transport that wraps the real one (hamok/transport.h): it
 * shows how little a transport is, and works the same on every transport.
 * (The original's onlyFollower option has no equivalent here: every member
 * may lead.)
 *
 * Checks: the peer-joined / peer-left events on the others at each step,
 * a leader among the members after each change, the cut-off peer losing its
 * leader and rejoining by itself, and the write made during the cut visible
 * on it afterwards.
 *
 *   hamok-example-join-leave-rejoin [--transport mem|zmq|nats]
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

/* ------------------------------------------------------------------------ */
/* A transport with a cable that can be pulled: it forwards everything to
 * the real transport (`inner`) unless `cut` is set, and then drops every
 * frame, sent or received. */

typedef struct cuttable {
    hamok_transport base; /* first member: a cuttable * is a hamok_transport * */
    hamok_transport *inner;
    hamok_transport_sink sink;   /* given to the inner transport */
    hamok_transport_sink *outer; /* the node's */
    atomic_bool cut;
} cuttable;

static cuttable *from_sink(hamok_transport_sink *s)
{
    return (cuttable *)(void *)((char *)s - offsetof(cuttable, sink));
}

static void c_deliver(hamok_transport_sink *s, const void *bytes, size_t len)
{
    cuttable *c = from_sink(s);
    if (!atomic_load(&c->cut)) {
        c->outer->deliver(c->outer, bytes, len);
    }
}

static void c_deliver_from(hamok_transport_sink *s, const hamok_id *from, const void *bytes,
                           size_t len)
{
    cuttable *c = from_sink(s);
    if (!atomic_load(&c->cut)) {
        c->outer->deliver_from(c->outer, from, bytes, len);
    }
}

static void c_error(hamok_transport_sink *s, hamok_status st, const char *text)
{
    cuttable *c = from_sink(s);
    c->outer->error(c->outer, st, text);
}

static void c_link(hamok_transport_sink *s, hamok_transport_link state, const char *text)
{
    cuttable *c = from_sink(s);
    c->outer->link(c->outer, state, text);
}

static hamok_status c_start(hamok_transport *t, hamok_transport_sink *sink)
{
    cuttable *c = (cuttable *)t;
    c->outer = sink;
    c->inner->self = t->self; /* the node filled these in for us */
    memcpy(c->inner->cluster, t->cluster, sizeof t->cluster);
    c->sink = (hamok_transport_sink){c_deliver, c_error, c_deliver_from, c_link};
    return c->inner->ops->start(c->inner, &c->sink);
}

static hamok_status c_send(hamok_transport *t, const hamok_id *to, const void *bytes, size_t len)
{
    cuttable *c = (cuttable *)t;
    if (atomic_load(&c->cut)) {
        return HAMOK_OK; /* lost on the way, as far as the node can tell */
    }
    return c->inner->ops->send(c->inner, to, bytes, len);
}

static void c_set_peer(hamok_transport *t, const hamok_id *peer, const char *endpoint)
{
    cuttable *c = (cuttable *)t;
    if (c->inner->ops->set_peer != NULL) {
        c->inner->ops->set_peer(c->inner, peer, endpoint);
    }
}

static const char *c_local_endpoint(hamok_transport *t)
{
    cuttable *c = (cuttable *)t;
    return c->inner->ops->local_endpoint != NULL ? c->inner->ops->local_endpoint(c->inner) : "";
}

static void c_stop(hamok_transport *t)
{
    cuttable *c = (cuttable *)t;
    c->inner->ops->stop(c->inner);
}

static void c_destroy(hamok_transport *t)
{
    cuttable *c = (cuttable *)t;
    c->inner->ops->destroy(c->inner);
    free(c);
}

static const hamok_transport_ops cuttable_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "cuttable",
    .start = c_start,
    .send = c_send,
    .set_peer = c_set_peer,
    .local_endpoint = c_local_endpoint,
    .stop = c_stop,
    .destroy = c_destroy,
};

/* A node on a cuttable transport (wrapping the chosen one). */
static hamok_node *cuttable_node(cuttable **out)
{
    char endpoint[256];
    cuttable *c = calloc(1, sizeof *c);
    if (c == NULL) {
        ex_must(HAMOK_ERR_NOMEM, "cuttable transport");
    }
    c->inner = ex_transport_new(endpoint);
    c->base.ops = &cuttable_ops;
    c->base.max_frame = c->inner->max_frame;
    atomic_init(&c->cut, false);
    *out = c; /* stays valid while the node lives: the node owns it */
    hamok_transport *t = &c->base;
    return ex_node_adopt(ex_config(), &t, endpoint);
}

/* ------------------------------------------------------------------------ */
/* The scenario */

static hamok_node *s1, *s2, *s3;
static ex_watcher w1, w2, w3;

/* Conditions for ex_wait. */
typedef struct want {
    ex_watcher *w;
    int left;
    int joined;
} want;

static bool reached(void *ud)
{
    for (want *x = ud; x->w != NULL; x++) {
        if (atomic_load(&x->w->left) < x->left || atomic_load(&x->w->joined) < x->joined) {
            return false;
        }
    }
    return true;
}

static bool lost_leader(void *ud)
{
    hamok_id l;
    return !hamok_node_leader_id(ud, &l);
}

static void expect_leader(hamok_node *const *nodes, size_t n, const char *when)
{
    int l = ex_wait_leader(nodes, n, EX_TIMEOUT_MS);
    if (ex_check(l >= 0, "%s: the members agree on a leader", when)) {
        ex_say("%s: leader %s", when, ex_node_short(nodes[l]).s);
    }
}

int main(int argc, char **argv)
{
    ex_init(argc, argv, "peers join, leave, rejoin, are cut off and heal", NULL, 0);
    cuttable *cable = NULL;

    /* 1. Server 1 and 2 join; server 3 joins later. */
    s1 = ex_node_new();
    s2 = ex_node_new();
    ex_watch(s1, &w1, "server 1", true);
    ex_watch(s2, &w2, "server 2", true);
    hamok_node *first[] = {s1, s2};
    ex_join_all(first, 2);
    ex_say("1. server 1 and server 2 joined");
    s3 = ex_node_new();
    ex_watch(s3, &w3, "server 3", true);
    ex_must(hamok_node_join(s3, EX_TIMEOUT_MS), "join server 3");
    hamok_node *all[] = {s1, s2, s3};
    ex_check(ex_wait_members(all, 3, 3, EX_TIMEOUT_MS), "three members");
    want j3[] = {{&w1, 0, 3}, {&w2, 0, 3}, {NULL, 0, 0}};
    ex_check(ex_wait(reached, j3, EX_TIMEOUT_MS),
             "servers 1 and 2 see three peers join (themselves and server 3)");
    expect_leader(all, 3, "1. three servers");

    /* 2. Server 1 leaves. */
    want l1[] = {{&w2, atomic_load(&w2.left) + 1, 0}, {&w3, atomic_load(&w3.left) + 1, 0}, {0}};
    ex_must(hamok_node_leave(s1, EX_TIMEOUT_MS), "leave server 1");
    ex_node_destroy(&s1);
    ex_check(ex_wait(reached, l1, EX_TIMEOUT_MS), "servers 2 and 3 see server 1 leave");
    hamok_node *two[] = {s2, s3};
    expect_leader(two, 2, "2. server 1 left");

    /* 3. Server 1 comes back: a new node (on a cuttable cable) joins. */
    want j1[] = {{&w2, 0, atomic_load(&w2.joined) + 1}, {&w3, 0, atomic_load(&w3.joined) + 1}, {0}};
    s1 = cuttable_node(&cable);
    ex_watch(s1, &w1, "server 1", true);
    ex_must(hamok_node_join(s1, EX_TIMEOUT_MS), "rejoin server 1");
    ex_check(ex_wait(reached, j1, EX_TIMEOUT_MS), "servers 2 and 3 see server 1 join again");
    all[0] = s1;
    ex_check(ex_wait_members(all, 3, 3, EX_TIMEOUT_MS), "three members again");
    expect_leader(all, 3, "3. server 1 is back");

    /* 4. Pull server 1's cable. */
    want cut[] = {{&w2, atomic_load(&w2.left) + 1, 0}, {&w3, atomic_load(&w3.left) + 1, 0}, {0}};
    want back[] = {
        {&w2, 0, atomic_load(&w2.joined) + 1}, {&w3, 0, atomic_load(&w3.joined) + 1}, {0}};
    ex_say("4. server 1 is cut off");
    atomic_store(&cable->cut, true);
    ex_check(ex_wait(lost_leader, s1, EX_TIMEOUT_MS), "server 1 notices: no leader any more");
    ex_check(ex_wait(reached, cut, EX_TIMEOUT_MS),
             "servers 2 and 3 remove the silent server 1 (peer-left)");
    expect_leader(two, 2, "4. server 1 cut off");
    hamok_map *m2, *m1;
    ex_must(hamok_map_open(s2, "log", &m2), "open");
    ex_must(hamok_map_set_str(m2, "while-cut", "written without server 1", NULL, EX_TIMEOUT_MS),
            "write while server 1 is away");

    /* 5. The cable is back: server 1 rejoins by itself and catches up. */
    atomic_store(&cable->cut, false);
    ex_say("5. server 1's cable is back");
    ex_check(ex_wait(reached, back, EX_TIMEOUT_MS), "servers 2 and 3 see server 1 join again");
    ex_check(ex_wait_members(all, 3, 3, EX_TIMEOUT_MS), "three members after the heal");
    expect_leader(all, 3, "5. healed");
    ex_must(hamok_node_sync(s1, EX_TIMEOUT_MS), "sync on server 1");
    ex_must(hamok_map_open(s1, "log", &m1), "open");
    hamok_value v;
    ex_check(ex_value_is(hamok_map_get_str(m1, "while-cut", &v), &v, "written without server 1"),
             "server 1 caught up with the write made while it was cut off");

    hamok_map_close(&m1);
    hamok_map_close(&m2);
    ex_node_destroy(&s1);
    ex_node_destroy(&s2);
    ex_node_destroy(&s3);
    return ex_finish();
}
