/* hamok-example-reelection: the leader goes away, the others elect a new
 * one (the original's common-reelection-example).
 *
 * Three peers. Each round the current leader goes away and a fresh peer
 * takes its place:
 *   - odd rounds: it leaves gracefully (hamok_node_leave): it hands
 *     leadership to the most up-to-date follower first, then its removal is
 *     committed;
 *   - even rounds: it crashes (destroyed without leaving): the followers
 *     stop hearing heartbeats, elect a leader among themselves after an
 *     election timeout, and the new leader removes the silent peer after the
 *     peer timeout (1.5 s here).
 * Then a new peer joins (an in-memory peer that comes back is a new peer
 * with a new id).
 *
 * Checks, every round: the two that remain agree on a leader that is one of
 * them; each of them sees the peer-left event of the one that went away and
 * the peer-joined event of the new one; a write succeeds after the change;
 * at the end every peer, however new, holds every round's write.
 *
 *   hamok-example-reelection [--transport mem|zmq|nats] [--rounds N]
 */
#include <stdio.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 3

static hamok_node *node[PEERS];
static hamok_map *map[PEERS];
static ex_watcher watcher[PEERS];
static char names[PEERS][16];

/* Start a peer in slot i: node, map handle, event counters. */
static void start_peer(int i)
{
    node[i] = ex_node_new();
    snprintf(names[i], sizeof names[i], "peer %d", i);
    ex_watch(node[i], &watcher[i], names[i], true);
    ex_must(hamok_map_open(node[i], "rounds", &map[i]), "open");
}

static void stop_peer(int i)
{
    hamok_map_close(&map[i]);
    ex_node_destroy(&node[i]);
}

/* Condition for ex_wait: watcher counts reached the wanted values. */
typedef struct counts {
    ex_watcher *w[PEERS];
    int left[PEERS];
    int joined[PEERS];
    int n;
} counts;

static bool counts_reached(void *ud)
{
    counts *c = ud;
    for (int i = 0; i < c->n; i++) {
        if (atomic_load(&c->w[i]->left) < c->left[i] ||
            atomic_load(&c->w[i]->joined) < c->joined[i]) {
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    int rounds = 2;
    const ex_int_option opts[] = {
        {"rounds", &rounds, 1, 100, "leader departures (odd: leave, even: crash)"}};
    ex_init(argc, argv, "the leader goes away, the others elect a new one", opts, 1);

    for (int i = 0; i < PEERS; i++) {
        start_peer(i);
    }
    ex_join_all(node, PEERS);
    int leader = ex_wait_leader(node, PEERS, EX_TIMEOUT_MS);
    ex_check(leader >= 0, "three peers agree on a leader");
    ex_say("three peers joined, leader: peer %d (%s)", leader, ex_node_short(node[leader]).s);

    for (int r = 1; r <= rounds && leader >= 0; r++) {
        bool crash = r % 2 == 0;
        ex_say("--- round %d: the leader, peer %d, %s", r, leader,
               crash ? "crashes" : "leaves gracefully");

        /* The other two, and the counts of events they must reach. */
        hamok_node *rest[PEERS - 1];
        counts want = {.n = PEERS - 1};
        for (int i = 0, k = 0; i < PEERS; i++) {
            if (i != leader) {
                rest[k] = node[i];
                want.w[k] = &watcher[i];
                want.left[k] = atomic_load(&watcher[i].left) + 1;
                want.joined[k] = atomic_load(&watcher[i].joined) + 1;
                k++;
            }
        }

        /* 1. The leader goes away. */
        if (!crash) {
            ex_must(hamok_node_leave(node[leader], EX_TIMEOUT_MS), "leave");
        }
        stop_peer(leader);

        /* 2. The two that remain agree on a leader among themselves. */
        int l2 = ex_wait_leader(rest, PEERS - 1, EX_TIMEOUT_MS);
        if (!ex_check(l2 >= 0, "round %d: the remaining two elect a leader", r)) {
            break;
        }
        ex_say("round %d: new leader %s", r, ex_node_short(rest[l2]).s);

        /* 3. The departed peer is removed from the configuration: both see
         *    peer-left (after a crash, once the peer timeout has passed). */
        want.joined[0] = want.joined[1] = 0;
        ex_check(ex_wait(counts_reached, &want, EX_TIMEOUT_MS),
                 "round %d: both remaining peers see the peer-left event", r);
        ex_check(ex_wait_members(rest, PEERS - 1, PEERS - 1, EX_TIMEOUT_MS),
                 "round %d: the configuration has two members", r);

        /* 4. Writes go on, from a follower of the two. */
        char key[32];
        snprintf(key, sizeof key, "round-%d", r);
        int slot_follower = -1;
        for (int i = 0; i < PEERS; i++) {
            if (node[i] != NULL && node[i] != rest[l2]) {
                slot_follower = i;
            }
        }
        ex_must(hamok_map_set_str(map[slot_follower], key, "done", NULL, EX_TIMEOUT_MS),
                "write after the change");

        /* 5. A fresh peer takes the empty slot and joins; the two see it. */
        want.joined[0] = atomic_load(&want.w[0]->joined) + 1;
        want.joined[1] = atomic_load(&want.w[1]->joined) + 1;
        start_peer(leader);
        ex_must(hamok_node_join(node[leader], EX_TIMEOUT_MS), "join of the new peer");
        ex_check(ex_wait(counts_reached, &want, EX_TIMEOUT_MS),
                 "round %d: both see the peer-joined event of the new peer", r);
        ex_check(ex_wait_members(node, PEERS, PEERS, EX_TIMEOUT_MS),
                 "round %d: three members again", r);
        leader = ex_wait_leader(node, PEERS, EX_TIMEOUT_MS);
        ex_check(leader >= 0, "round %d: three peers agree on a leader", r);
    }

    /* Every peer holds every round's write (the newest one by catch-up). */
    for (int i = 0; i < PEERS; i++) {
        if (node[i] == NULL) {
            continue;
        }
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
        ex_check(hamok_map_size(map[i]) == (size_t)rounds, "peer %d holds the %d writes (%zu)", i,
                 rounds, hamok_map_size(map[i]));
    }
    ex_say("every peer holds the %d writes", rounds);
    for (int i = 0; i < PEERS; i++) {
        stop_peer(i);
    }
    return ex_finish();
}
