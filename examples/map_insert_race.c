/* hamok-example-map-insert-race: several peers insert the same key at the
 * same moment; exactly one wins (the original's map-insert-get-example).
 *
 * Three peers, one thread each, released together by a barrier:
 *   1. single-key race, --rounds times: every peer inserts "race-<r>" with
 *      its own value. Insert writes only if the key is absent and returns
 *      the value that stays otherwise. Exactly one peer must get "absent"
 *      (it won), every other one the winner's value, and after a read
 *      barrier every peer reads the winner's value.
 *   2. batch race: peer i inserts keys batch-<r>-i .. batch-<r>-(i+2), so
 *      neighbours overlap. A batch is one log entry: per key exactly one
 *      peer wins and the losers are told the winner's value.
 *   3. plain writes through a follower: set, read on the leader after sync,
 *      delete through the follower (it existed), gone everywhere.
 *
 * (The original's in-memory store took a falsy stored value for absent, so
 * a race of 0, 1, 2 could have two winners: spec §7 A1. Here an empty
 * value is a value and byte strings are compared, never "truthiness".)
 *
 *   hamok-example-map-insert-race [--transport mem|zmq|nats] [--rounds N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 3
#define BATCH 3 /* keys per batch; peer i's batch starts at key i */

static hamok_node *node[PEERS];
static hamok_map *map[PEERS];
static pthread_barrier_t start_line;
static int rounds = 20;

/* What each racer got, per round. */
typedef struct racer {
    hamok_value got[1000];    /* single-key race: what insert returned */
    hamok_kvs existing[1000]; /* batch race: the keys that existed */
    hamok_status st[1000][2]; /* the calls' statuses */
} racer;

static racer racers[PEERS];

/* The value peer p inserts: "peer-<p>". */
static bool is_value_of(int p, const char *value)
{
    char mine[16];
    snprintf(mine, sizeof mine, "peer-%d", p);
    return strcmp(value, mine) == 0;
}

/* Peer `no`'s thread. */
static void race(int no)
{
    racer *me = &racers[no];
    hamok_map *m = map[no];
    char mine[16];
    snprintf(mine, sizeof mine, "peer-%d", no);
    for (int r = 0; r < rounds; r++) {
        /* 1. Everyone inserts the same key, all at once. */
        char key[32];
        snprintf(key, sizeof key, "race-%d", r);
        pthread_barrier_wait(&start_line);
        me->st[r][0] =
            hamok_map_insert(m, key, strlen(key), mine, strlen(mine), &me->got[r], EX_TIMEOUT_MS);
        /* 2. Overlapping batches, all at once. */
        char keys[BATCH][32];
        hamok_kv batch[BATCH];
        for (int j = 0; j < BATCH; j++) {
            snprintf(keys[j], sizeof keys[j], "batch-%d-%d", r, no + j);
            batch[j] = (hamok_kv){keys[j], strlen(keys[j]), true, mine, strlen(mine)};
        }
        pthread_barrier_wait(&start_line);
        me->st[r][1] = hamok_map_insert_all(m, batch, BATCH, &me->existing[r], EX_TIMEOUT_MS);
    }
}

/* The value of `key` on peer i ("" if absent). */
static void read_value(int i, const char *key, char *out, size_t cap)
{
    hamok_value v;
    out[0] = '\0';
    if (hamok_map_get_str(map[i], key, &v) == HAMOK_OK) {
        snprintf(out, cap, "%s", (const char *)v.data);
        hamok_value_free(&v);
    }
}

/* Did racer p's batch of round r find `key` already there (and with what)? */
static const hamok_kv *found_existing(int p, int r, const char *key)
{
    for (size_t k = 0; k < racers[p].existing[r].n; k++) {
        const hamok_kv *kv = &racers[p].existing[r].items[k];
        if (kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0) {
            return kv;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const ex_int_option opts[] = {{"rounds", &rounds, 1, 1000, "races of each kind"}};
    ex_init(argc, argv, "peers race to insert the same keys; exactly one wins", opts, 1);

    for (int i = 0; i < PEERS; i++) {
        node[i] = ex_node_new();
        ex_must(hamok_map_open(node[i], "race", &map[i]), "open");
    }
    ex_join_all(node, PEERS);
    ex_say("three peers joined; %d rounds of racing inserts", rounds);

    /* Race: one thread per peer. */
    pthread_barrier_init(&start_line, NULL, PEERS);
    ex_parallel(PEERS, race);
    pthread_barrier_destroy(&start_line);
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
    }

    /* 1. Single key: one winner, the others told its value, all agree. */
    int wins[PEERS] = {0};
    for (int r = 0; r < rounds; r++) {
        char key[32], stored[64], other[64];
        snprintf(key, sizeof key, "race-%d", r);
        read_value(0, key, stored, sizeof stored);
        int winners = 0;
        for (int p = 0; p < PEERS; p++) {
            ex_must(racers[p].st[r][0], "insert");
            hamok_value *got = &racers[p].got[r];
            if (!got->present) {
                winners++;
                wins[p]++;
                ex_check(is_value_of(p, stored), "race-%d: the winner's value is stored", r);
            } else {
                ex_check(strcmp(got->data, stored) == 0,
                         "race-%d: peer %d was told the stored value %s (got %s)", r, p, stored,
                         (const char *)got->data);
            }
            read_value(p, key, other, sizeof other);
            ex_check(strcmp(other, stored) == 0, "race-%d: peer %d reads the same value", r, p);
            hamok_value_free(got);
        }
        ex_check(winners == 1, "race-%d: exactly one winner (%d)", r, winners);
    }
    ex_say("single-key races: exactly one winner each; wins per peer: %d %d %d", wins[0], wins[1],
           wins[2]);

    /* 2. Batches: per key, one winner among the peers that inserted it. */
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < PEERS + BATCH - 1; k++) {
            char key[32], stored[64];
            snprintf(key, sizeof key, "batch-%d-%d", r, k);
            read_value(0, key, stored, sizeof stored);
            int winners = 0;
            for (int p = 0; p < PEERS; p++) {
                if (k < p || k >= p + BATCH) {
                    continue; /* p's batch does not hold this key */
                }
                const hamok_kv *ex = found_existing(p, r, key);
                if (ex == NULL) {
                    winners++;
                    ex_check(is_value_of(p, stored), "%s: the winner's value is stored", key);
                } else {
                    ex_check(ex->value_len == strlen(stored) &&
                                 memcmp(ex->value, stored, ex->value_len) == 0,
                             "%s: peer %d was told the stored value", key, p);
                }
            }
            ex_check(winners == 1, "%s: exactly one winner (%d)", key, winners);
        }
        for (int p = 0; p < PEERS; p++) {
            ex_must(racers[p].st[r][1], "insert_all");
            hamok_kvs_free(&racers[p].existing[r]);
        }
    }
    ex_say("batch races: exactly one winner per key");

    /* 3. Plain writes through a follower. */
    int l = ex_wait_leader(node, PEERS, EX_TIMEOUT_MS);
    int f = (l + 1) % PEERS;
    hamok_value old;
    ex_must(hamok_map_set_str(map[f], "race-0", "overwritten", &old, EX_TIMEOUT_MS), "set");
    ex_check(old.present, "set through the follower returns the old value");
    hamok_value_free(&old);
    ex_must(hamok_node_sync(node[l], EX_TIMEOUT_MS), "sync");
    char v[64];
    read_value(l, "race-0", v, sizeof v);
    ex_check(strcmp(v, "overwritten") == 0, "the leader reads the follower's set");
    bool deleted = false;
    ex_must(hamok_map_delete_str(map[f], "race-0", &deleted, EX_TIMEOUT_MS), "delete");
    ex_check(deleted, "delete through the follower: the key existed");
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
        ex_check(!hamok_map_contains(map[i], "race-0", 6), "peer %d: race-0 is gone", i);
    }
    ex_say("set and delete through follower %d seen on every peer", f);

    for (int i = 0; i < PEERS; i++) {
        hamok_map_close(&map[i]);
        ex_node_destroy(&node[i]);
    }
    return ex_finish();
}
