/* Randomised fault runs over the simulator: one seed draws a fault mix
 * (drops, duplicates, delay jitter, partitions that come and go, one-way
 * cuts, leader isolation, pauses, crash/restart, clock skew) and a lifecycle
 * mix (snapshot thresholds and chunk sizes; memory mode, where a crash wipes
 * the node and an operator replaces it by a fresh peer; membership churn:
 * add, remove, replace, remove the leader, remove a partitioned node;
 * leadership transfers; linearizable reads), drives a client workload of at
 * least n_ops proposals through it, then heals everything and checks
 * liveness and the final invariants (sim.h, checker.h).
 *
 * Used by tests/sim/test_chaos.c (production core) and test_teeth.c (the
 * fault-injection build of the core). */
#ifndef HAMOK_TESTS_CHAOS_H
#define HAMOK_TESTS_CHAOS_H

#include <stdbool.h>
#include <stdint.h>

#include "sim.h"

/* What a workload learns about the run it drives. */
typedef struct hamok_chaos_info {
    uint64_t seed;
    uint32_t election_timeout_ms;
    uint32_t heartbeat_ms;
    uint64_t fault_ms;   /* planned length of the fault phase */
    uint32_t op_mean_ms; /* mean gap between two client operations */
    uint32_t n_ops;      /* operations wanted before healing */
    bool memory_mode;    /* a crash wipes the node (its id never comes back) */
} hamok_chaos_info;

/* A client workload in place of the runner's own proposals (chaos.c keeps
 * the fault mix, the operator, the read barriers and the final heal +
 * liveness): tests/lib/collsim.c drives the production collections with it. */
typedef struct hamok_chaos_workload {
    const hamok_sim_app *app; /* installed on every node (may be NULL) */
    void *ud;
    /* The simulator exists, nothing ran yet: schedule the clients. */
    bool (*start)(hamok_sim *s, void *ud, const hamok_chaos_info *info);
    /* Client operations that made progress so far (accepted by a leader):
     * the fault phase ends once n_ops did and its planned length passed. */
    uint32_t (*ops)(void *ud);
    /* The fault phase is over: no new operations from here on (those in
     * flight go on). Called before heal and the recovery check (may be
     * NULL). */
    void (*quiesce)(hamok_sim *s, void *ud);
    /* After heal and liveness: drain the clients, final reads, checks.
     * False with the violation reported through hamok_sim_fail(). */
    bool (*finish)(hamok_sim *s, void *ud);
} hamok_chaos_workload;

typedef struct hamok_chaos_opts {
    uint64_t seed;
    int n_nodes;           /* 0: 3 for odd seeds, 5 for even ones */
    uint32_t n_ops;        /* accepted client proposals before healing; default 300 */
    uint64_t max_fault_ms; /* virtual-time cap of the fault phase; 0 = 3 x the drawn length */
    bool trace;
    const char *test_name; /* for the replay hint; default "test_chaos" */
    bool classic;          /* no lifecycle mix: the foundation issue's faults only */
    /* Memory mode: let the wipe nemesis also lose a node for good while a
     * membership change is in progress (also set by HAMOK_SIM_FINDINGS=1).
     * That can leave no electable node (tests/sim/FINDINGS.md observation
     * 10: inherent to single-server changes, an operator must force a
     * reconfiguration), so by default the runner does not. */
    bool findings;
    hamok_sim_read_mode read_mode;        /* negative controls for the read checker */
    const hamok_chaos_workload *workload; /* NULL: the runner's own proposals */
} hamok_chaos_opts;

typedef struct hamok_chaos_result {
    bool ok;
    int n_nodes;
    const char *invariant; /* of the first violation, NULL if ok */
    char error[1900];      /* full report, "" if ok */
    char mix[560];         /* the fault mix this seed drew */
    char actions[400];     /* nemesis actions taken, by kind */
    hamok_sim_stats stats;
    uint32_t ops; /* accepted proposals (entries) */
} hamok_chaos_result;

void hamok_chaos_opts_default(hamok_chaos_opts *o, uint64_t seed);
bool hamok_chaos_run(const hamok_chaos_opts *o, hamok_chaos_result *r);

/* Seeds from the environment: HAMOK_SIM_SEED=<n> runs exactly that seed
 * (*first = *count... = n, 1); else HAMOK_SIM_SEEDS=<count> (default
 * def_count) seeds from 1. Returns true when a single seed was requested. */
bool hamok_chaos_seeds_from_env(uint64_t def_count, uint64_t *first, uint64_t *count);

/* Seeds of a negative-control test: HAMOK_SIM_SEED=<n> runs exactly that
 * seed, else HAMOK_TEETH_SEEDS=<count> (default def_count) seeds from 1. */
void hamok_chaos_teeth_seeds(uint64_t def_count, uint64_t *first, uint64_t *count);

/* Wall-clock milliseconds (statistics only). */
double hamok_chaos_wall_ms(void);

#endif
