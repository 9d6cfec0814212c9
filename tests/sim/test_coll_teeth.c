/* Teeth of the collections simulation: each negative control of
 * tests/lib/collsim.h must be caught within TEETH_SEEDS seeds by the checks
 * named for it, and the seeds that caught them must pass without the bug.
 *
 *   stale reads       reads served from the local registry without a
 *                     barrier: the linearizability checker
 *   no sessions       the registry applies entries without (client, seq),
 *                     so a retry committed twice applies twice: the client
 *                     histories alone (linearizability or the queue
 *                     checks; the exactly-once check at apply is off), and
 *                     separately the exactly-once check
 *   early ack         a push acknowledged when the leader accepts it, before
 *                     it commits: the queue checks (an acknowledged item
 *                     lost)
 *
 *   HAMOK_SIM_SEED=<n>         that seed only, for every control
 *   HAMOK_TEETH_SEEDS=<count>  seeds per control (default 200)
 *   HAMOK_TEETH_ALL=1          run every seed and print the catch rate */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <inttypes.h>

#include "collsim.h"

#define TEETH_SEEDS 200

typedef struct control {
    const char *name;
    hamok_collsim_bug bug;
    bool history_only;
    const char *const *caught_by; /* invariants that count as a catch */
} control;

static const char *const by_lin[] = {"linearizability", NULL};
static const char *const by_history[] = {"linearizability", "queue-duplicate", "queue-phantom",
                                         "queue-lost",      "queue-fifo",      NULL};
static const char *const by_exactly_once[] = {"exactly-once", NULL};
static const char *const by_queue[] = {"queue-lost", "queue-fifo", "queue-duplicate", NULL};

static const control controls[] = {
    {"STALE_READS", HAMOK_COLLSIM_STALE_READS, false, by_lin},
    {"NO_SESSIONS (client histories only)", HAMOK_COLLSIM_NO_SESSIONS, true, by_history},
    {"NO_SESSIONS (exactly-once at apply)", HAMOK_COLLSIM_NO_SESSIONS, false, by_exactly_once},
    {"EARLY_ACK", HAMOK_COLLSIM_EARLY_ACK, false, by_queue},
};

static uint64_t catch_seed[sizeof controls / sizeof controls[0]];

static bool env_on(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

static bool is_catch(const control *c, const char *inv)
{
    for (size_t i = 0; inv != NULL && c->caught_by[i] != NULL; i++) {
        if (strcmp(inv, c->caught_by[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void run_control(size_t k)
{
    const control *c = &controls[k];
    uint64_t first, count;
    hamok_chaos_teeth_seeds(TEETH_SEEDS, &first, &count);
    bool all = env_on("HAMOK_TEETH_ALL");
    uint64_t catches = 0;
    double t0 = hamok_chaos_wall_ms();
    hamok_collsim_result *r = calloc(1, sizeof *r);
    assert_non_null(r);
    for (uint64_t seed = first; seed < first + count; seed++) {
        hamok_collsim_opts o;
        hamok_collsim_opts_default(&o, seed);
        o.bug = c->bug;
        o.history_only = c->history_only;
        o.test_name = "test_sim_coll_teeth";
        bool ok = hamok_collsim_run(&o, r);
        if (ok) {
            continue;
        }
        if (!is_catch(c, r->invariant)) {
            printf("teeth: %s seed %" PRIu64 " failed by %s, not by the checks it tests:\n%s\n",
                   c->name, seed, r->invariant ? r->invariant : "?", r->error);
            continue; /* does not count */
        }
        catches++;
        if (catch_seed[k] == 0) {
            catch_seed[k] = seed;
            printf("teeth: %s caught at seed %" PRIu64 " by %s (%.1f s wall for %" PRIu64
                   " seeds)\n%s\n",
                   c->name, seed, r->invariant, (hamok_chaos_wall_ms() - t0) / 1000.0,
                   seed - first + 1, r->error);
            fflush(stdout);
        }
        if (!all) {
            break;
        }
    }
    free(r);
    if (all) {
        printf("teeth: %s caught by %" PRIu64 " of %" PRIu64 " seeds (%.1f s wall)\n", c->name,
               catches, count, (hamok_chaos_wall_ms() - t0) / 1000.0);
    }
    if (catch_seed[k] == 0) {
        fail_msg("negative control %s survived %" PRIu64 " seeds: the checks are too weak", c->name,
                 count);
    }
}

static void test_stale_reads(void **state)
{
    (void)state;
    run_control(0);
}

static void test_no_sessions_history(void **state)
{
    (void)state;
    run_control(1);
}

static void test_no_sessions_exactly_once(void **state)
{
    (void)state;
    run_control(2);
}

static void test_early_ack(void **state)
{
    (void)state;
    run_control(3);
}

/* The seeds that caught a control pass without it. */
static void test_catching_seeds_pass(void **state)
{
    (void)state;
    hamok_collsim_result *r = calloc(1, sizeof *r);
    assert_non_null(r);
    for (size_t k = 0; k < sizeof controls / sizeof controls[0]; k++) {
        if (catch_seed[k] == 0) {
            continue;
        }
        hamok_collsim_opts o;
        hamok_collsim_opts_default(&o, catch_seed[k]);
        o.test_name = "test_sim_collections";
        bool ok = hamok_collsim_run(&o, r);
        if (!ok) {
            printf("seed %" PRIu64 " fails without the bug:\n%s\n%s", catch_seed[k], r->error,
                   r->history);
        }
        assert_true(ok);
    }
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_reads),
        cmocka_unit_test(test_no_sessions_history),
        cmocka_unit_test(test_no_sessions_exactly_once),
        cmocka_unit_test(test_early_ack),
        cmocka_unit_test(test_catching_seeds_pass),
    };
    return cmocka_run_group_tests_name("sim_coll_teeth", tests, NULL, NULL);
}
