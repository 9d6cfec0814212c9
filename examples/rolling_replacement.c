/* hamok-example-rolling-replacement: replace every peer of a running
 * cluster, one at a time, without stopping it (the original's
 * common-join-leave-rejoin-example-2, common-3-peers and
 * common-rollout-example).
 *
 * Three peers hold a map. Each step a new peer joins, then one peer leaves
 * gracefully and is closed:
 *   - odd steps: the oldest peer (a rolling replacement);
 *   - even steps: the current leader (a rollout where the leader goes too:
 *     it hands leadership over before it leaves).
 * Each step writes one key. The run goes on until every original peer is
 * gone and at least --steps steps are done.
 *
 * Checks, every step: three members, all agreeing on a leader among them;
 * the step's write succeeds. At the end, on peers none of which was there at
 * the start, every key is there — the first one included.
 *
 *   hamok-example-rolling-replacement [--transport mem|zmq|nats] [--steps N]
 */
#include <stdio.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 3

/* The peers, oldest first; born = the step that started it (0: original). */
typedef struct peer {
    hamok_node *node;
    hamok_map *map;
    int born;
} peer;

static peer peers[PEERS + 1];
static int npeers;

static void add_peer(int born)
{
    peer *p = &peers[npeers++];
    p->node = ex_node_new();
    p->born = born;
    ex_must(hamok_map_open(p->node, "rolling", &p->map), "open");
}

static void remove_peer(int i)
{
    ex_must(hamok_node_leave(peers[i].node, EX_TIMEOUT_MS), "leave");
    hamok_map_close(&peers[i].map);
    ex_node_destroy(&peers[i].node);
    for (int k = i; k + 1 < npeers; k++) {
        peers[k] = peers[k + 1];
    }
    npeers--;
}

static int originals_left(void)
{
    int n = 0;
    for (int i = 0; i < npeers; i++) {
        n += peers[i].born == 0;
    }
    return n;
}

/* The leader among the current peers, once they all agree (-1: none). */
static int agreed_leader(void)
{
    hamok_node *nodes[PEERS + 1];
    for (int i = 0; i < npeers; i++) {
        nodes[i] = peers[i].node;
    }
    if (!ex_wait_members(nodes, (size_t)npeers, (size_t)npeers, EX_TIMEOUT_MS)) {
        return -1;
    }
    return ex_wait_leader(nodes, (size_t)npeers, EX_TIMEOUT_MS);
}

int main(int argc, char **argv)
{
    int steps = 6;
    const ex_int_option opts[] = {
        {"steps", &steps, 1, 1000, "replacements at least (odd: oldest leaves, even: leader)"}};
    ex_init(argc, argv, "replace every peer of a running cluster", opts, 1);

    /* Three original peers and a first write. */
    hamok_node *nodes[PEERS];
    for (int i = 0; i < PEERS; i++) {
        add_peer(0);
        nodes[i] = peers[i].node;
    }
    ex_join_all(nodes, PEERS);
    ex_must(
        hamok_map_set_str(peers[0].map, "step-0", "written by the originals", NULL, EX_TIMEOUT_MS),
        "first write");
    ex_say("three original peers joined and wrote step-0");

    int step = 0;
    while (step < steps || originals_left() > 0) {
        step++;
        /* 1. A new peer joins. */
        add_peer(step);
        ex_must(hamok_node_join(peers[npeers - 1].node, EX_TIMEOUT_MS), "join");

        /* 2. One leaves: the oldest, or the leader. */
        int l = agreed_leader();
        if (!ex_check(l >= 0, "step %d: four peers agree on a leader", step)) {
            break;
        }
        int out = step % 2 == 1 ? 0 : l;
        ex_say("step %d: %s joined; %s %s (born at step %d%s) leaves", step,
               ex_node_short(peers[npeers - 1].node).s, step % 2 == 1 ? "the oldest" : "the leader",
               ex_node_short(peers[out].node).s, peers[out].born, out == l ? ", leader" : "");
        remove_peer(out);

        /* 3. Three members, a leader among them, writes go on. */
        l = agreed_leader();
        if (!ex_check(l >= 0, "step %d: three peers agree on a leader", step)) {
            break;
        }
        char key[32];
        snprintf(key, sizeof key, "step-%d", step);
        ex_must(hamok_map_set_str(peers[npeers - 1].map, key, "ok", NULL, EX_TIMEOUT_MS), "write");
    }

    /* Every key on every peer, though none of them saw the first write. */
    ex_check(originals_left() == 0, "every original peer was replaced");
    for (int i = 0; i < npeers; i++) {
        ex_must(hamok_node_sync(peers[i].node, EX_TIMEOUT_MS), "sync");
        hamok_value v;
        ex_check(ex_value_is(hamok_map_get_str(peers[i].map, "step-0", &v), &v,
                             "written by the originals"),
                 "peer born at step %d reads the originals' write", peers[i].born);
        ex_check(hamok_map_size(peers[i].map) == (size_t)step + 1,
                 "peer born at step %d holds %d keys (%zu)", peers[i].born, step + 1,
                 hamok_map_size(peers[i].map));
    }
    ex_say("after %d steps the peers (born at steps %d, %d, %d) hold all %zu keys", step,
           peers[0].born, peers[1].born, peers[2].born, hamok_map_size(peers[0].map));
    while (npeers > 0) {
        hamok_map_close(&peers[npeers - 1].map);
        ex_node_destroy(&peers[npeers - 1].node);
        npeers--;
    }
    return ex_finish();
}
