/* hamok-example-record-events: a replicated record (an object of named
 * fields): the same events on every peer, compare-and-set of one field and
 * of several at once, and insert races (the original's
 * record-events-example, record-insert-get-example and
 * record-update-if).
 *
 * Two peers, one record "room":
 *   1. events: peer 0 sets foo=1 (insert), foo=2 (update), deletes foo
 *      (remove); peer 1 sets bar=1 (insert); update_if(bar, 1, expected 2)
 *      fails (bar is 1), update_if(bar, 2, expected 1) succeeds (update).
 *      Both peers must log exactly these events, in this order.
 *   2. insert race on one field, --rounds times: both peers insert
 *      "owner-<r>" at once (a barrier); exactly one gets "inserted".
 *   3. multi-field races: both insert_instance {name=me, state=free} at
 *      once: exactly one inserts both fields (the loser gets the winner's
 *      fields back; the original returned {} there, spec §7 A5); then both
 *      try update_instance_if({state=taken, host=me}, expected
 *      {name=<winner>, state=free}) at once: exactly one succeeds (the
 *      original could let both "succeed").
 *   4. the record is the same on both peers (hamok_record_instance).
 *
 *   hamok-example-record-events [--transport mem|zmq|nats] [--rounds N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/record.h"

#define PEERS 2

static hamok_node *node[PEERS];
static hamok_record *rec[PEERS];
static ex_event_log logs[PEERS];
static pthread_barrier_t start_line;
static int rounds = 10;

/* What each racer got. */
typedef struct racer {
    bool inserted[1000]; /* step 2: the field was absent, this peer set it */
    bool instance_won;   /* step 3: insert_instance inserted every field */
    hamok_kvs existing;  /* ... else the fields that were there */
    bool updated;        /* step 3: update_instance_if succeeded */
} racer;

static racer racers[PEERS];

/* Peer `no`'s thread. */
static void race(int no)
{
    racer *me = &racers[no];
    hamok_record *r = rec[no];
    char mine[16];
    snprintf(mine, sizeof mine, "peer-%d", no);
    size_t ml = strlen(mine);

    /* 2. One field, both at once: insert writes only an absent field. */
    for (int i = 0; i < rounds; i++) {
        char field[32];
        snprintf(field, sizeof field, "owner-%d", i);
        hamok_value existing;
        pthread_barrier_wait(&start_line);
        ex_must(hamok_record_insert(r, field, mine, ml, &existing, EX_TIMEOUT_MS), "insert");
        me->inserted[i] = !existing.present;
        hamok_value_free(&existing);
    }

    /* 3a. Several fields at once: name and state, atomically. */
    hamok_kv fields[] = {{"name", 4, true, mine, ml}, {"state", 5, true, "free", 4}};
    pthread_barrier_wait(&start_line);
    ex_must(hamok_record_insert_instance(r, fields, 2, &me->existing, EX_TIMEOUT_MS),
            "insert_instance");
    me->instance_won = me->existing.n == 0;

    /* 3b. Both expect what the winner of 3a wrote (its name, state free);
     *     both try to take the room as its host. The first one in the log
     *     wins, the second finds the state changed. */
    pthread_barrier_wait(&start_line); /* both know the winner now */
    hamok_value winner;
    ex_must(hamok_record_get(r, "name", &winner), "get name");
    hamok_kv expect[] = {{"name", 4, true, winner.data, winner.len}, {"state", 5, true, "free", 4}};
    hamok_kv take[] = {{"state", 5, true, "taken", 5}, {"host", 4, true, mine, ml}};
    pthread_barrier_wait(&start_line);
    ex_must(hamok_record_update_instance_if(r, take, 2, expect, 2, &me->updated, EX_TIMEOUT_MS),
            "update_instance_if");
    hamok_value_free(&winner);
}

static bool field_is(hamok_record *r, const char *field, const char *want)
{
    hamok_value v;
    return ex_value_is(hamok_record_get(r, field, &v), &v, want);
}

int main(int argc, char **argv)
{
    const ex_int_option opts[] = {{"rounds", &rounds, 1, 1000, "single-field insert races"}};
    ex_init(argc, argv, "a replicated record: events, compare-and-set, races", opts, 1);
    for (int i = 0; i < PEERS; i++) {
        ex_event_log_init(&logs[i]);
        node[i] = ex_node_new();
        ex_must(hamok_record_open(node[i], "room", &rec[i]), "open");
        ex_must(hamok_record_on(rec[i], ex_event_log_add, &logs[i]), "listen");
    }
    ex_join_all(node, PEERS);
    ex_say("two peers joined and listen to the record");

    /* 1. Events for writes from both peers. */
    const int T = EX_TIMEOUT_MS;
    bool updated = true;
    ex_must(hamok_record_set(rec[0], "foo", "1", 1, NULL, T), "set foo=1");
    ex_must(hamok_record_set(rec[0], "foo", "2", 1, NULL, T), "set foo=2");
    ex_must(hamok_record_delete(rec[0], "foo", NULL, T), "delete foo");
    ex_must(hamok_record_set(rec[1], "bar", "1", 1, NULL, T), "set bar=1");
    ex_must(hamok_record_update_if(rec[1], "bar", "1", 1, "2", 1, &updated, T), "update_if");
    ex_check(!updated, "update_if(bar, 1, expected 2) fails: bar is 1");
    ex_must(hamok_record_update_if(rec[0], "bar", "2", 1, "1", 1, &updated, T), "update_if");
    ex_check(updated, "update_if(bar, 2, expected 1) succeeds");
    static const char *const expected[] = {
        "insert foo=1", "update foo: 1 -> 2", "remove foo (was 2)",
        "insert bar=1", "update bar: 1 -> 2",
    };
    ex_event_logs_expect(logs, PEERS, expected, 5);
    ex_say("1. both peers logged the same 5 events");
    for (int i = 0; i < PEERS; i++) {
        hamok_record_off(rec[i], ex_event_log_add, &logs[i]);
    }

    /* 2 and 3. The races, one thread per peer. */
    pthread_barrier_init(&start_line, NULL, PEERS);
    ex_parallel(PEERS, race);
    pthread_barrier_destroy(&start_line);

    int wins[PEERS] = {0};
    for (int k = 0; k < rounds; k++) {
        int winners = 0;
        for (int p = 0; p < PEERS; p++) {
            winners += racers[p].inserted[k];
            wins[p] += racers[p].inserted[k];
        }
        ex_check(winners == 1, "owner-%d: exactly one insert wins (%d)", k, winners);
    }
    ex_say("2. %d insert races, one winner each (wins: %d and %d)", rounds, wins[0], wins[1]);

    int inst = racers[0].instance_won + racers[1].instance_won;
    ex_check(inst == 1, "insert_instance: exactly one peer inserts the fields (%d)", inst);
    int winner = racers[0].instance_won ? 0 : 1;
    hamok_kvs *lost = &racers[1 - winner].existing;
    ex_check(lost->n == 2, "the loser of insert_instance gets the 2 existing fields back (%zu)",
             lost->n);
    int upd = racers[0].updated + racers[1].updated;
    ex_check(upd == 1, "update_instance_if: exactly one peer succeeds (%d)", upd);
    int host = racers[0].updated ? 0 : 1;
    ex_say("3. insert_instance won by peer %d; update_instance_if won by peer %d", winner, host);

    /* 4. Both peers hold the same record. */
    char name[16], hostname[16];
    snprintf(name, sizeof name, "peer-%d", winner);
    snprintf(hostname, sizeof hostname, "peer-%d", host);
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], T), "sync");
        ex_check(field_is(rec[i], "name", name), "peer %d: name = %s", i, name);
        ex_check(field_is(rec[i], "host", hostname), "peer %d: host = %s", i, hostname);
        ex_check(field_is(rec[i], "state", "taken"), "peer %d: state = taken", i);
        ex_check(field_is(rec[i], "bar", "2"), "peer %d: bar = 2", i);
    }
    hamok_kvs a, b;
    ex_must(hamok_record_instance(rec[0], &a), "instance");
    ex_must(hamok_record_instance(rec[1], &b), "instance");
    bool same = a.n == b.n;
    for (size_t k = 0; same && k < a.n; k++) {
        same = a.items[k].key_len == b.items[k].key_len &&
               memcmp(a.items[k].key, b.items[k].key, a.items[k].key_len) == 0 &&
               a.items[k].value_len == b.items[k].value_len &&
               memcmp(a.items[k].value, b.items[k].value, a.items[k].value_len) == 0;
    }
    ex_check(same, "both peers hold the same record (%zu and %zu fields)", a.n, b.n);
    ex_say("4. both peers hold the same %zu fields", a.n);
    hamok_kvs_free(&a);
    hamok_kvs_free(&b);

    for (int i = 0; i < PEERS; i++) {
        hamok_kvs_free(&racers[i].existing);
        hamok_record_close(&rec[i]);
        ex_node_destroy(&node[i]);
        ex_event_log_destroy(&logs[i]);
    }
    return ex_finish();
}
