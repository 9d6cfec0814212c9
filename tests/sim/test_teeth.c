/* Teeth: the simulator must catch known Raft bugs. Linked against the
 * fault-injection build of the core (hamok_raft_testing): for each injected
 * bug, chaos seeds 1..200 run until the first violation; a bug that survives
 * all 200 seeds fails the test. The same seeds must pass with no bug.
 *
 *   HAMOK_SIM_SEED=<n>  run only that seed for every bug (replay)
 *   HAMOK_TEETH_SEEDS=<count>  seeds per bug (default 200)
 *   HAMOK_TEETH_ALL=1   do not stop at the first catch: report the catch rate
 *                       (how strong the fault mix is against each bug) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <inttypes.h>

#include "chaos.h"
#include "scenario.h"

#define TEETH_SEEDS 200

typedef struct bug_case {
    hamok_raft_bug bug;
    const char *name;
} bug_case;

static const bug_case bugs[] = {
    {HAMOK_RAFT_BUG_VOTE_IGNORES_LAST_TERM, "VOTE_IGNORES_LAST_TERM"},
    {HAMOK_RAFT_BUG_COMMIT_OLD_TERM, "COMMIT_OLD_TERM"},
    {HAMOK_RAFT_BUG_QUORUM_RECENT_PEERS, "QUORUM_RECENT_PEERS"},
};

/* Highest seed any bug needed: the no-bug sanity run covers at least these. */
static uint64_t max_catch_seed = 0;

static void run_bug(const bug_case *bc)
{
    uint64_t first, count;
    hamok_chaos_teeth_seeds(TEETH_SEEDS, &first, &count);
    hamok__raft_bug = bc->bug;
    double t0 = hamok_chaos_wall_ms();
    uint64_t steps = 0;
    bool caught = false;
    const char *all_env = getenv("HAMOK_TEETH_ALL");
    bool all = all_env != NULL && all_env[0] != '\0' && strcmp(all_env, "0") != 0;
    uint64_t catches = 0;
    for (uint64_t seed = first; seed < first + count; seed++) {
        hamok_chaos_opts o;
        hamok_chaos_opts_default(&o, seed);
        o.test_name = "test_sim_teeth";
        hamok_chaos_result r;
        bool ok = hamok_chaos_run(&o, &r);
        steps += r.stats.steps;
        if (!ok && all) {
            if (!caught && seed > max_catch_seed) {
                max_catch_seed = seed;
            }
            caught = true;
            catches++;
            printf("teeth: %s seed %" PRIu64 " (%d nodes): %s\n  mix: %s\n", bc->name, seed,
                   r.n_nodes, r.invariant, r.mix);
            continue;
        }
        if (!ok) {
            caught = true;
            if (seed > max_catch_seed) {
                max_catch_seed = seed;
            }
            printf("teeth: %s caught at seed %" PRIu64 " (%d nodes) by %s after %" PRIu64
                   " steps in that seed (%.1f s wall for %" PRIu64 " seeds)\n%s\n",
                   bc->name, seed, r.n_nodes, r.invariant, r.stats.steps,
                   (hamok_chaos_wall_ms() - t0) / 1000.0, seed - first + 1, r.error);
            fflush(stdout);
            break;
        }
    }
    hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
    if (all) {
        printf("teeth: %s caught by %" PRIu64 " of %" PRIu64 " seeds (%.1f s wall)\n", bc->name,
               catches, count, (hamok_chaos_wall_ms() - t0) / 1000.0);
    }
    if (!caught) {
        fail_msg("injected bug %s survived %" PRIu64 " chaos seeds (%" PRIu64
                 " steps): the simulator is too weak",
                 bc->name, count, steps);
    }
}

static void test_vote_ignores_last_term(void **state)
{
    (void)state;
    run_bug(&bugs[0]);
}

static void test_commit_old_term(void **state)
{
    (void)state;
    run_bug(&bugs[1]);
}

static void test_quorum_recent_peers(void **state)
{
    (void)state;
    run_bug(&bugs[2]);
}

/* The read checker has teeth: reads served without a barrier — from any
 * node's local state at once, or from a node that merely believes it leads
 * (no quorum round, i.e. a lease without clocks) — must be caught as
 * read-linearizability violations. Purely in the simulator: the core is the
 * production one. */
static void run_read_mode(hamok_sim_read_mode mode, const char *name, uint64_t max_seeds)
{
    uint64_t first, count;
    hamok_chaos_teeth_seeds(TEETH_SEEDS, &first, &count);
    if (count > max_seeds && getenv("HAMOK_TEETH_SEEDS") == NULL) {
        count = max_seeds;
    }
    hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
    double t0 = hamok_chaos_wall_ms();
    for (uint64_t seed = first; seed < first + count; seed++) {
        hamok_chaos_opts o;
        hamok_chaos_opts_default(&o, seed);
        o.test_name = "test_sim_teeth";
        o.read_mode = mode;
        hamok_chaos_result r;
        if (hamok_chaos_run(&o, &r)) {
            continue;
        }
        if (r.invariant == NULL || strcmp(r.invariant, "read-linearizability") != 0) {
            fail_msg("%s: seed %" PRIu64 " failed on something else:\n%s", name, seed, r.error);
        }
        printf("teeth: %s caught at seed %" PRIu64 " (%.1f s wall for %" PRIu64 " seeds)\n%s\n",
               name, seed, (hamok_chaos_wall_ms() - t0) / 1000.0, seed - first + 1, r.error);
        if (seed > max_catch_seed) {
            max_catch_seed = seed;
        }
        /* The same seed with the barrier passes. */
        o.read_mode = HAMOK_SIM_READ_BARRIER;
        if (!hamok_chaos_run(&o, &r)) {
            fail_msg("seed %" PRIu64 " fails with read barriers too:\n%s", seed, r.error);
        }
        return;
    }
    fail_msg("%s reads survived %" PRIu64 " chaos seeds: the read checker is too weak", name,
             count);
}

static void test_reads_local(void **state)
{
    (void)state;
    run_read_mode(HAMOK_SIM_READ_LOCAL, "LOCAL (no barrier)", 50);
}

static void test_reads_leader_local(void **state)
{
    (void)state;
    run_read_mode(HAMOK_SIM_READ_LEADER_LOCAL, "LEADER_LOCAL (no quorum round)", 200);
}

/* Sanity: the seeds that caught the bugs pass without them (and the first
 * 20 at least), so what fired was the bug, not the harness. */
static void test_no_bug_passes(void **state)
{
    (void)state;
    uint64_t first, count;
    hamok_chaos_teeth_seeds(TEETH_SEEDS, &first, &count);
    uint64_t last = first + (count == 1 ? 0 : (max_catch_seed > 20 ? max_catch_seed : 20) - 1);
    if (count == 1) {
        last = first;
    }
    hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
    for (uint64_t seed = first; seed <= last; seed++) {
        hamok_chaos_opts o;
        hamok_chaos_opts_default(&o, seed);
        o.test_name = "test_sim_teeth";
        hamok_chaos_result r;
        if (!hamok_chaos_run(&o, &r)) {
            fail_msg("seed %" PRIu64 " fails without any injected bug:\n%s", seed, r.error);
        }
    }
    printf("teeth: seeds %" PRIu64 "..%" PRIu64 " pass with HAMOK_RAFT_BUG_NONE\n", first, last);
}

/* The scripted Figure 8 (tests/lib/scenario.c) catches COMMIT_OLD_TERM
 * deterministically, through the checker, not through the script's own
 * expectations. */
static void test_figure8_catches_commit_old_term(void **state)
{
    (void)state;
    hamok_scenario_result r;
    hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
    if (!hamok_scenario_figure8(800, true, &r)) {
        fail_msg("figure 8 fails without any injected bug:\n%s", r.error);
    }
    hamok__raft_bug = HAMOK_RAFT_BUG_COMMIT_OLD_TERM;
    bool ok = hamok_scenario_figure8(800, true, &r);
    hamok__raft_bug = HAMOK_RAFT_BUG_NONE;
    assert_false(ok);
    if (r.invariant == NULL) {
        fail_msg("the checker did not fire; only the script noticed:\n%s", r.error);
    }
    printf("teeth: COMMIT_OLD_TERM caught by the Figure 8 script via %s\n%s\n", r.invariant,
           r.error);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vote_ignores_last_term),
        cmocka_unit_test(test_commit_old_term),
        cmocka_unit_test(test_quorum_recent_peers),
        cmocka_unit_test(test_figure8_catches_commit_old_term),
        cmocka_unit_test(test_reads_local),
        cmocka_unit_test(test_reads_leader_local),
        cmocka_unit_test(test_no_bug_passes),
    };
    return cmocka_run_group_tests_name("sim_teeth", tests, NULL, NULL);
}
