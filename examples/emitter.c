/* hamok-example-emitter: distributed publish/subscribe with subscription
 * metadata (the original's emitter-example).
 *
 * Who listens to which event is replicated state, agreed through the log,
 * with optional metadata per subscription; the events themselves go
 * straight from the publisher to the subscribed peers.
 *
 * Three peers, emitter "chat":
 *   1. subscriptions: peer 0 to event-1 (metadata "role=a"), peer 1 to
 *      event-1 ("role=b") and event-2 ("v1", two local listeners), peer 2
 *      to event-2 (no metadata). Every peer sees the same "added" events
 *      and holds the same table.
 *   2. metadata compare-and-set by peer 1 on event-2: expecting "v0" fails,
 *      expecting "v1" sets "v2", no expectation sets "v3" ("updated").
 *   3. publish (waits for the subscribers' acknowledgements and says who
 *      delivered) and notify (fire and forget), from subscribers and
 *      non-subscribers; the listeners get the payload and the publisher id.
 *   4. peer 1 unsubscribes from event-1 only: it keeps event-2 (the
 *      original dropped every subscription of the peer, spec §7 A4).
 *   5. peer 2 crashes: a publish to event-2 still answers, listing peer 2
 *      as missing (the original failed the whole publish, spec §7 A9), and
 *      once peer 2 is removed from the cluster its subscription goes on
 *      every peer ("removed").
 *
 * Checks: the subscription events on every peer are exactly the expected
 * ones, in order; the table is the same everywhere; each listener got
 * exactly the messages meant for it, each with the right publisher; the
 * delivered/missing counts of every publish.
 *
 *   hamok-example-emitter [--transport mem|zmq|nats]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/emitter.h"

#define PEERS 3

static hamok_node *node[PEERS];
static hamok_emitter *em[PEERS];
static hamok_id ids[PEERS];
static ex_event_log subs[PEERS]; /* each peer's subscription events */

/* The name of a peer id ("peer-1"). */
static const char *name_of(const hamok_id *id)
{
    static const char *const names[PEERS] = {"peer-0", "peer-1", "peer-2"};
    for (int i = 0; i < PEERS; i++) {
        if (memcmp(id, &ids[i], sizeof *id) == 0) {
            return names[i];
        }
    }
    return "unknown";
}

static void on_subscription(void *ud, const hamok_sub_event *ev)
{
    ex_event_log *log = ud;
    int el = (int)ev->event_len, ml = (int)ev->meta_len, ol = (int)ev->old_len;
    const char *event = ev->event, *meta = ev->meta, *old = ev->old;
    switch (ev->type) {
    case HAMOK_SUB_ADDED:
        ex_event_log_addf(log, 0, "added %.*s %s meta=%.*s", el, event, name_of(&ev->peer),
                          ev->has_meta ? ml : 6, ev->has_meta ? meta : "(none)");
        break;
    case HAMOK_SUB_UPDATED:
        ex_event_log_addf(log, 0, "updated %.*s %s %.*s -> %.*s", el, event, name_of(&ev->peer), ol,
                          old, ml, meta);
        break;
    case HAMOK_SUB_REMOVED:
        ex_event_log_addf(log, 0, "removed %.*s %s", el, event, name_of(&ev->peer));
        break;
    }
}

/* A listener: counts the messages it gets and checks who sent them. The
 * payload says "from peer-<i>"; `from` must be that peer's id. */
typedef struct inbox {
    const char *name;
    atomic_int got;
    atomic_int wrong;
} inbox;

static inbox in01 = {.name = "peer 0 / event-1"}, in11 = {.name = "peer 1 / event-1"},
             in12a = {.name = "peer 1 / event-2 (a)"}, in12b = {.name = "peer 1 / event-2 (b)"},
             in22 = {.name = "peer 2 / event-2"};

static void on_message(void *ud, const char *event, const void *payload, size_t len,
                       const hamok_id *from)
{
    inbox *in = ud;
    char text[64];
    snprintf(text, sizeof text, "%.*s", (int)len, (const char *)payload);
    const char *p = strstr(text, "from peer-");
    int sender = p != NULL ? p[10] - '0' : -1;
    if (sender < 0 || sender >= PEERS || memcmp(from, &ids[sender], sizeof *from) != 0) {
        atomic_fetch_add(&in->wrong, 1);
    }
    atomic_fetch_add(&in->got, 1);
    ex_say("  %s got %s: \"%s\"", in->name, event, text);
}

/* ex_wait condition: the listeners reached the counts wanted. */
typedef struct counts {
    int c01, c11, c12, c22;
} counts;

static bool inboxes_reach(void *ud)
{
    counts *c = ud;
    return atomic_load(&in01.got) >= c->c01 && atomic_load(&in11.got) >= c->c11 &&
           atomic_load(&in12a.got) >= c->c12 && atomic_load(&in12b.got) >= c->c12 &&
           atomic_load(&in22.got) >= c->c22;
}

static void expect_inboxes(counts c, const char *when)
{
    ex_wait(inboxes_reach, &c, EX_TIMEOUT_MS);
    ex_check(atomic_load(&in01.got) == c.c01 && atomic_load(&in11.got) == c.c11 &&
                 atomic_load(&in12a.got) == c.c12 && atomic_load(&in12b.got) == c.c12 &&
                 atomic_load(&in22.got) == c.c22,
             "%s: listeners got %d %d %d %d %d messages (want %d %d %d %d %d)", when,
             atomic_load(&in01.got), atomic_load(&in11.got), atomic_load(&in12a.got),
             atomic_load(&in12b.got), atomic_load(&in22.got), c.c01, c.c11, c.c12, c.c12, c.c22);
}

/* Publish from peer `from` and check who delivered. */
static void publish(int from, const char *event, size_t want_delivered, size_t want_missing,
                    int timeout_ms)
{
    char payload[64];
    int len = snprintf(payload, sizeof payload, "%s from peer-%d", event, from);
    hamok_id delivered[PEERS];
    size_t n_delivered = 0, n_missing = 0;
    ex_must(hamok_emitter_publish(em[from], event, payload, (size_t)len, delivered, PEERS,
                                  &n_delivered, &n_missing, timeout_ms),
            "publish");
    ex_say("peer %d published %s: delivered by %zu peers, %zu missing", from, event, n_delivered,
           n_missing);
    ex_check(n_delivered == want_delivered && n_missing == want_missing,
             "publish %s from peer %d: %zu delivered, %zu missing (want %zu, %zu)", event, from,
             n_delivered, n_missing, want_delivered, want_missing);
}

static void subscribe(int i, const char *event, inbox *in, const char *meta)
{
    ex_must(hamok_emitter_subscribe(em[i], event, on_message, in, meta,
                                    meta != NULL ? strlen(meta) : 0, EX_TIMEOUT_MS),
            "subscribe");
}

int main(int argc, char **argv)
{
    ex_init(argc, argv, "publish/subscribe with subscription metadata", NULL, 0);
    for (int i = 0; i < PEERS; i++) {
        ex_event_log_init(&subs[i]);
        node[i] = ex_node_new();
        ids[i] = hamok_node_id(node[i]);
        ex_must(hamok_emitter_open(node[i], "chat", &em[i]), "open");
        ex_must(hamok_emitter_on_subscriptions(em[i], on_subscription, &subs[i]), "listen");
    }
    ex_join_all(node, PEERS);
    ex_say("three peers joined");

    /* 1. Subscriptions (each one a log entry; the second local listener of
     *    an event is local only). */
    subscribe(0, "event-1", &in01, "role=a");
    subscribe(1, "event-1", &in11, "role=b");
    subscribe(1, "event-2", &in12a, "v1");
    subscribe(1, "event-2", &in12b, NULL); /* local only: no log entry */
    subscribe(2, "event-2", &in22, NULL);
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
        ex_check(hamok_emitter_subscribers(em[i], "event-1", NULL, 0) == 2 &&
                     hamok_emitter_subscribers(em[i], "event-2", NULL, 0) == 2,
                 "peer %d: two subscribers on each event", i);
        ex_check(hamok_emitter_has_subscriber(em[i], "event-2", &ids[2]),
                 "peer %d: peer 2 listens to event-2", i);
    }
    ex_say("1. subscriptions agreed on every peer");

    /* 2. Metadata compare-and-set. */
    bool updated = true;
    ex_must(
        hamok_emitter_update_metadata(em[1], "event-2", "v2", 2, "v0", 2, &updated, EX_TIMEOUT_MS),
        "update metadata");
    ex_check(!updated, "metadata update expecting v0 (it is v1) fails");
    ex_must(
        hamok_emitter_update_metadata(em[1], "event-2", "v2", 2, "v1", 2, &updated, EX_TIMEOUT_MS),
        "update metadata");
    ex_check(updated, "metadata update expecting v1 succeeds");
    ex_must(
        hamok_emitter_update_metadata(em[1], "event-2", "v3", 2, NULL, 0, &updated, EX_TIMEOUT_MS),
        "update metadata");
    ex_check(updated, "metadata update without expectation succeeds");
    ex_say("2. metadata: v0 refused, v1 -> v2, then v3");

    /* 3. Publish and notify. */
    publish(2, "event-1", 2, 0, EX_TIMEOUT_MS); /* to peers 0 and 1 */
    publish(1, "event-2", 2, 0, EX_TIMEOUT_MS); /* to itself (two listeners) and peer 2 */
    ex_check(hamok_emitter_notify(em[0], "event-1", "event-1 from peer-0", 19),
             "notify of event-1 has subscribers");
    ex_check(!hamok_emitter_notify(em[0], "nobody", "x", 1), "notify of an event nobody hears");
    expect_inboxes((counts){2, 2, 1, 1}, "3. publish and notify");

    /* 4. Peer 1 drops event-1; it still hears event-2. */
    ex_must(hamok_emitter_unsubscribe(em[1], "event-1", on_message, &in11, EX_TIMEOUT_MS),
            "unsubscribe");
    publish(0, "event-2", 2, 0, EX_TIMEOUT_MS);
    publish(2, "event-1", 1, 0, EX_TIMEOUT_MS);
    expect_inboxes((counts){3, 2, 2, 2}, "4. after peer 1 unsubscribed from event-1");

    /* The subscription events so far, the same on every peer. */
    static const char *const expected[] = {
        "added event-1 peer-0 meta=role=a", "added event-1 peer-1 meta=role=b",
        "added event-2 peer-1 meta=v1",     "added event-2 peer-2 meta=(none)",
        "updated event-2 peer-1 v1 -> v2",  "updated event-2 peer-1 v2 -> v3",
        "removed event-1 peer-1",           "removed event-2 peer-2",
    };
    ex_event_logs_expect(subs, PEERS, expected, 7);
    ex_say("4. every peer saw the same 7 subscription events");

    /* 5. Peer 2 crashes. A publish to event-2 answers with peer 2 missing;
     *    then the cluster removes peer 2 and its subscription. */
    hamok_emitter_close(&em[2]);
    ex_node_destroy(&node[2]);
    uint64_t t0 = ex_now_ms();
    publish(0, "event-2", 1, 1, 500);
    ex_check(ex_now_ms() - t0 < 2000, "the publish answered within its timeout");
    ex_event_logs_expect(subs, 2, expected, 8);
    ex_check(hamok_emitter_subscribers(em[0], "event-2", NULL, 0) == 1,
             "peer 2's subscription is gone");
    expect_inboxes((counts){3, 2, 3, 2}, "5. after peer 2 crashed");
    ex_say("5. peer 2 crashed: the publish answered, its subscription was removed");

    ex_check(atomic_load(&in01.wrong) + atomic_load(&in11.wrong) + atomic_load(&in12a.wrong) +
                     atomic_load(&in12b.wrong) + atomic_load(&in22.wrong) ==
                 0,
             "every message came with its publisher's id");
    for (int i = 0; i < PEERS; i++) {
        hamok_emitter_close(&em[i]);
        ex_node_destroy(&node[i]);
        ex_event_log_destroy(&subs[i]);
    }
    return ex_finish();
}
