/* hamok-example-map-events: every peer gets the same events, in the same
 * order, for writes made anywhere (the original's map-events-example).
 *
 * Three peers listen to the map "events" (hamok_map_on). Peer 1 writes:
 *   set a=1 (insert), set a=2 (update), remove a, insert b=3, set b=4
 *   (update), set_all {c=5, b=6}, delete of a missing key and insert over
 *   an existing key (both change nothing: no event), clear.
 * Then peer 0 closes its handle (the original's close): its listener
 * stops, while the others go on seeing writes.
 *
 * Checks: every peer's event log equals the expected one — type, key,
 * value, old value — with the same log indices on every peer; after the
 * close, peer 0 gets nothing more and the others get the next write.
 *
 *   hamok-example-map-events [--transport mem|zmq|nats]
 */
#include <stdio.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 3

static hamok_node *node[PEERS];
static hamok_map *map[PEERS];
static ex_event_log logs[PEERS]; /* what each peer's listener saw */

/* ex_wait condition: peers 1 and 2 have one event more than `n`. */
static bool others_have_more(void *ud)
{
    int n = *(int *)ud;
    return ex_event_log_count(&logs[1]) > n && ex_event_log_count(&logs[2]) > n;
}

int main(int argc, char **argv)
{
    ex_init(argc, argv, "the same map events on every peer, in log order", NULL, 0);
    for (int i = 0; i < PEERS; i++) {
        ex_event_log_init(&logs[i]);
        node[i] = ex_node_new();
        ex_must(hamok_map_open(node[i], "events", &map[i]), "open");
        ex_must(hamok_map_on(map[i], ex_event_log_add, &logs[i]), "listen");
    }
    ex_join_all(node, PEERS);
    ex_say("three peers joined and listen; peer 1 writes");

    /* Peer 1 writes; each write's events fire on every peer. */
    hamok_map *m = map[1];
    const int T = EX_TIMEOUT_MS;
    ex_must(hamok_map_set_str(m, "a", "1", NULL, T), "set a=1");
    ex_must(hamok_map_set_str(m, "a", "2", NULL, T), "set a=2");
    ex_must(hamok_map_remove(m, "a", 1, NULL, T), "remove a");
    ex_must(hamok_map_insert(m, "b", 1, "3", 1, NULL, T), "insert b=3");
    ex_must(hamok_map_set_str(m, "b", "4", NULL, T), "set b=4");
    hamok_kv both[] = {{"c", 1, true, "5", 1}, {"b", 1, true, "6", 1}};
    ex_must(hamok_map_set_all(m, both, 2, NULL, T), "set_all c=5 b=6");
    bool deleted = true;
    ex_must(hamok_map_delete_str(m, "missing", &deleted, T), "delete missing");
    ex_check(!deleted, "deleting a missing key deletes nothing");
    hamok_value existing;
    ex_must(hamok_map_insert(m, "b", 1, "7", 1, &existing, T), "insert over b");
    ex_check(existing.present && strcmp(existing.data, "6") == 0, "insert keeps b=6");
    hamok_value_free(&existing);
    ex_must(hamok_map_clear(m, T), "clear");

    static const char *const expected[] = {
        "insert a=1",       "update a: 1 -> 2", "remove a (was 2)", "insert b=3",
        "update b: 3 -> 4", "insert c=5",       "update b: 4 -> 6", "clear",
    };
    int n = (int)(sizeof expected / sizeof expected[0]);
    ex_event_logs_expect(logs, PEERS, expected, n);
    ex_say("every peer got the %d events in the same order", n);

    /* Peer 0 closes its handle: its listener stops, the map lives on. */
    hamok_map_close(&map[0]);
    ex_must(hamok_map_set_str(map[2], "d", "8", NULL, T), "set d=8");
    ex_check(ex_wait(others_have_more, &n, EX_TIMEOUT_MS),
             "peers 1 and 2 see the write after the close");
    ex_must(hamok_node_sync(node[0], T), "sync"); /* peer 0 has applied it too */
    ex_check(ex_event_log_count(&logs[0]) == n, "peer 0's closed handle got no event");
    ex_say("after closing its handle, peer 0 gets no more events; the others do");

    for (int i = 0; i < PEERS; i++) {
        hamok_map_close(&map[i]);
        ex_node_destroy(&node[i]);
        ex_event_log_destroy(&logs[i]);
    }
    return ex_finish();
}
