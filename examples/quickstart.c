/* hamok-example-quickstart: the README quick start of the original
 * (common-readme-example).
 *
 * Two peers in one process. Each opens the map "quickstart" BEFORE joining
 * (opening needs no network), both join, and each writes a different key.
 * After a read barrier (hamok_node_sync) both peers see both keys. Then the
 * peers leave one after the other; the last one, alone, still writes: a
 * cluster of one works (the original could not elect a lone peer).
 *
 * Checks: both values readable on both peers; every write, leave and the
 * lone write succeed.
 *
 *   hamok-example-quickstart [--transport mem|zmq|nats] [--nats-url URL]
 */
#include <stdio.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 2

/* Is key = want on this peer (a local read)? */
static bool has(hamok_map *m, const char *key, const char *want)
{
    hamok_value v;
    return ex_value_is(hamok_map_get_str(m, key, &v), &v, want);
}

int main(int argc, char **argv)
{
    ex_init(argc, argv, "two peers share a map (the quick start)", NULL, 0);

    /* 1. Two nodes; each opens its handle on the map before joining. */
    hamok_node *node[PEERS];
    hamok_map *map[PEERS];
    for (int i = 0; i < PEERS; i++) {
        node[i] = ex_node_new();
        ex_must(hamok_map_open(node[i], "quickstart", &map[i]), "open the map");
    }
    ex_say("1. two nodes created, map opened on each (no network needed)");

    /* 2. Join: the first founds the cluster, the second joins it. */
    ex_join_all(node, PEERS);
    ex_say("2. both joined; leader: peer %d", ex_wait_leader(node, PEERS, EX_TIMEOUT_MS));

    /* 3. Each peer writes its own key. A write returns once committed and
     *    applied on the peer that wrote it. */
    ex_must(hamok_map_set_str(map[0], "from-peer-0", "hello", NULL, EX_TIMEOUT_MS), "set");
    ex_must(hamok_map_set_str(map[1], "from-peer-1", "world", NULL, EX_TIMEOUT_MS), "set");
    ex_say("3. each peer wrote one key");

    /* 4. A read barrier on each peer: afterwards its local reads see every
     *    write acknowledged anywhere before (the original's
     *    waitUntilCommitHead). */
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
        ex_check(has(map[i], "from-peer-0", "hello"), "peer %d reads from-peer-0 = hello", i);
        ex_check(has(map[i], "from-peer-1", "world"), "peer %d reads from-peer-1 = world", i);
        ex_check(hamok_map_size(map[i]) == 2, "peer %d holds 2 keys", i);
    }
    ex_say("4. after sync both peers read both keys");

    /* 5. Peer 1 leaves (if it leads, it hands leadership over first) and is
     *    closed; peer 0 goes on alone: a single peer is a cluster. */
    ex_must(hamok_node_leave(node[1], EX_TIMEOUT_MS), "leave (peer 1)");
    hamok_map_close(&map[1]);
    ex_node_destroy(&node[1]);
    ex_check(ex_wait_members(node, 1, 1, EX_TIMEOUT_MS), "peer 0 is alone in the configuration");
    ex_must(hamok_map_set_str(map[0], "alone", "still writing", NULL, EX_TIMEOUT_MS),
            "a write on the lone peer");
    ex_check(has(map[0], "alone", "still writing"), "the lone peer reads its write");
    ex_say("5. peer 1 left; peer 0 alone still writes");

    /* 6. The last one leaves and closes. */
    ex_must(hamok_node_leave(node[0], EX_TIMEOUT_MS), "leave (peer 0)");
    hamok_map_close(&map[0]);
    ex_node_destroy(&node[0]);
    ex_say("6. both left and closed");
    return ex_finish();
}
