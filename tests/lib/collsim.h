/* The production collections under the simulator's faults.
 *
 * Every simulated node runs the production registry (src/collections:
 * map, record, queue, emitter subscription table and the exactly-once
 * session table) next to the simulator's own state machine: committed
 * entries are applied to it (hamok__registry_apply), snapshots carry its
 * production snapshot form (hamok__registry_snapshot / _restore), so
 * snapshot installs, crash/restarts (durable mode), wipes (memory mode) and
 * membership churn all reach the real state machines. The fault schedule
 * is the chaos runner's (chaos.h): one seed, one history, bit for bit.
 *
 * Clients: two application threads per node, each with one operation at a
 * time. A command is encoded with the production codec (hamok__cmd_encode)
 * and submitted the way the node runtime submits (src/node/node.c,
 * modelled here because the runtime is threaded): under the node's own
 * peer id and a per-node sequence number (reserved in blocks of 65,536 that
 * survive a restart, like the runtime's client-seq file), proposed locally
 * when the node leads, else sent as SUBMIT_REQUEST through the faulty
 * network to the leader it knows; retried with the same sequence number
 * after an election timeout, after NOT_LEADER/BUSY, and at every leader
 * change; answered when the node applies its own entry (the registry's
 * result, which for a retry committed twice is the session table's).
 * Reads are hamok_node_sync + hamok_map_get: a ReadIndex barrier on the
 * client's node, then a local get once it applied the read index. An
 * operation ends ok (the registry's result), failed (definitely no
 * effect), or indeterminate (its deadline passed, or its node crashed).
 *
 * Workload: a map and a record as registers — read, set, compare-and-set
 * (UPDATE_IF), insert, delete, remove, remove-if (map) — a queue (pushes of
 * unique items, pops of 1..2), and an emitter's subscription table
 * (subscribe, unsubscribe, update_metadata with and without an expected
 * value, and reads of any node's subscription) as one register per (event,
 * peer). Two keys (events) are in use at a time; every 20 operations on a
 * collection its clients move on to fresh ones, so that no key's history
 * grows long (the search is exponential in a key's operations of unknown
 * outcome). The fault phase ends with the clients: they stop invoking
 * (those in flight go on) before the heal and the recovery check.
 *
 * Checks (invariant names as reported):
 *   linearizability      per key, the recorded history (lincheck.h; after
 *                        healing, indeterminate operations of clients that
 *                        are still members are resolved by submitting the
 *                        same (client, seq) again — the session table then
 *                        answers the original result, or it takes effect
 *                        now — and a final barrier read of every key)
 *   queue-duplicate/-phantom/-lost/-fifo   the queue history (lincheck.h)
 *   exactly-once         ground truth at apply: a (client, seq) committed a
 *                        second time changes nothing and answers the first
 *                        result (or EXPIRED)
 *   apply-determinism    every node applying an index gets the same result
 *                        and the same events
 *   snapshot-determinism two registry snapshots at one index are the same
 *                        bytes
 *   event-stream         each node's collection events replayed on a mirror
 *                        (reset from the registry at every restore) are
 *                        consistent — no insert of a present key, no update
 *                        or removal with a wrong old value, no queue removal
 *                        other than the head, no subscription added twice —
 *                        and the mirror equals the registry at the end
 *   convergence          every live member's registry is the same bytes at
 *                        the end
 *   client               a registry answer a client could not expect */
#ifndef HAMOK_TESTS_COLLSIM_H
#define HAMOK_TESTS_COLLSIM_H

#include <stdbool.h>
#include <stdint.h>

#include "chaos.h"

/* Negative controls: each must be caught (tests/sim/test_coll_teeth.c). */
typedef enum hamok_collsim_bug {
    HAMOK_COLLSIM_CORRECT = 0,
    /* Reads served from the client node's registry at once, no barrier. */
    HAMOK_COLLSIM_STALE_READS = 1,
    /* The registry applies entries without their (client, seq): the
     * session table is bypassed and a retry committed twice applies twice. */
    HAMOK_COLLSIM_NO_SESSIONS = 2,
    /* A push is acknowledged as soon as the leader accepted it, before it
     * commits. */
    HAMOK_COLLSIM_EARLY_ACK = 3,
} hamok_collsim_bug;

typedef struct hamok_collsim_opts {
    uint64_t seed;
    uint32_t n_ops; /* operations before healing (default 200): commands a
                       leader accepted and reads served, as the chaos runner
                       counts its own proposals */
    hamok_collsim_bug bug;
    /* Skip the checks at apply (exactly-once, apply-determinism): only the
     * client histories and the final state are checked. */
    bool history_only;
    /* Keep the clients invoking through the heal and the recovery check
     * (by default they stop when the fault phase ends): liveness under load
     * (tests/sim/FINDINGS.md observation 12). */
    bool keep_load;
    bool trace;
    const char *test_name; /* for the replay hint */
} hamok_collsim_opts;

typedef struct hamok_collsim_stats {
    uint64_t ops; /* client operations invoked */
    uint64_t ok, failed, indeterminate;
    uint64_t resolved;      /* indeterminate ones resolved after healing */
    uint64_t reads, writes; /* register reads / register writes (map, record, emitter) */
    uint64_t pushes, pops;
    uint64_t retries;    /* submits sent again (same sequence number) */
    uint64_t duplicates; /* committed entries the session table answered */
    uint64_t expired;    /* answered EXPIRED */
    uint64_t restores;   /* registry restored from a snapshot */
    uint64_t snapshots;  /* registry snapshots taken */
    uint64_t events;     /* collection events replayed on the mirrors */
    uint64_t lin_keys, lin_ops, lin_steps;
    uint64_t q_items, q_popped, q_left;
} hamok_collsim_stats;

typedef struct hamok_collsim_result {
    bool ok;
    const char *invariant; /* of the first violation, NULL if ok */
    char error[2400];      /* report with the replay line; "" if ok */
    char history[6000];    /* the offending key's history, when it is one */
    hamok_chaos_result chaos;
    hamok_collsim_stats st;
} hamok_collsim_result;

void hamok_collsim_opts_default(hamok_collsim_opts *o, uint64_t seed);
bool hamok_collsim_run(const hamok_collsim_opts *o, hamok_collsim_result *r);

#endif
