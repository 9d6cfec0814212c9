/* Chaos: many seeds, each a random fault and lifecycle mix (snapshots,
 * memory mode, membership churn, transfers, reads; tests/lib/chaos.h) over
 * >= 300 client proposals on 3 nodes (odd seeds) or 5 nodes (even seeds) at
 * the start, then heal and liveness.
 *
 *   HAMOK_SIM_SEEDS=<count>  seeds 1..count (default 500)
 *   HAMOK_SIM_SEED=<n>       that seed only
 *   HAMOK_SIM_TRACE=1        event trace (use with HAMOK_SIM_SEED) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <inttypes.h>

#include "chaos.h"

#define DEFAULT_SEEDS 500

static void test_chaos_seeds(void **state)
{
    (void)state;
    uint64_t first = 1, count = DEFAULT_SEEDS;
    bool single = hamok_chaos_seeds_from_env(DEFAULT_SEEDS, &first, &count);
    uint64_t steps = 0, vms = 0, msgs = 0, ops = 0, acked = 0, lost = 0, crashes = 0;
    uint64_t snaps = 0, installs = 0, configs = 0, wipes = 0, transfers = 0, reads = 0;
    uint64_t failures = 0;
    uint32_t min_ops = UINT32_MAX;
    double t0 = hamok_chaos_wall_ms();
    for (uint64_t seed = first; seed < first + count; seed++) {
        hamok_chaos_opts o;
        hamok_chaos_opts_default(&o, seed);
        o.test_name = "test_sim_chaos";
        hamok_chaos_result r;
        bool ok = hamok_chaos_run(&o, &r);
        steps += r.stats.steps;
        vms += r.stats.virtual_ms;
        msgs += r.stats.msgs_sent;
        ops += r.ops;
        if (r.ops < min_ops) {
            min_ops = r.ops;
        }
        acked += r.stats.chk.acked;
        lost += r.stats.chk.lost;
        crashes += r.stats.crashes;
        snaps += r.stats.snapshots_taken;
        installs += r.stats.installs;
        configs += r.stats.chk.configs;
        wipes += r.stats.wipes;
        transfers += r.stats.transfers_ok;
        reads += r.stats.reads_ok;
        if (single) {
            printf("seed %" PRIu64 " (%d nodes): %s\n  mix: %s\n  actions: %s\n  %" PRIu64
                   " steps, %" PRIu64 " virtual ms, %u ops, %" PRIu64 " acked, %" PRIu64
                   " lost, %" PRIu64 " committed, %" PRIu64 " leaders\n  %" PRIu64
                   " snapshots taken, %" PRIu64 " installed (%" PRIu64 " chunks), %" PRIu64
                   " configs committed, %" PRIu64 " adds, %" PRIu64 " wipes, %" PRIu64
                   " retires, %" PRIu64 " transfers, %" PRIu64 " reads served (%" PRIu64
                   " failed)\n",
                   seed, r.n_nodes, ok ? "ok" : "FAILED", r.mix, r.actions, r.stats.steps,
                   r.stats.virtual_ms, r.ops, r.stats.chk.acked, r.stats.chk.lost,
                   r.stats.chk.committed, r.stats.chk.leaders, r.stats.snapshots_taken,
                   r.stats.installs, r.stats.chunks_sent, r.stats.chk.configs, r.stats.adds,
                   r.stats.wipes, r.stats.retires, r.stats.transfers_ok, r.stats.reads_ok,
                   r.stats.reads_failed);
        }
        if (!ok) {
            failures++;
            printf("chaos seed %" PRIu64 " (%d nodes) FAILED\n%s\n", seed, r.n_nodes, r.error);
            fflush(stdout);
            if (failures >= 5) {
                break;
            }
        }
    }
    double wall = hamok_chaos_wall_ms() - t0;
    printf("chaos: %" PRIu64 " seeds, %" PRIu64 " steps, %.1f virtual hours, %" PRIu64
           " messages, %" PRIu64 " client ops (at least %u per seed; %" PRIu64 " acked, %" PRIu64
           " lost), %" PRIu64 " crashes; %" PRIu64 " snapshots taken, %" PRIu64
           " installed, %" PRIu64 " configurations committed, %" PRIu64 " wipes, %" PRIu64
           " transfers, %" PRIu64 " reads checked; wall %.1f s, %.0f steps/s\n",
           count, steps, (double)vms / 3.6e6, msgs, ops, min_ops, acked, lost, crashes, snaps,
           installs, configs, wipes, transfers, reads, wall / 1000.0,
           wall > 0 ? (double)steps / (wall / 1000.0) : 0.0);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos_seeds),
    };
    return cmocka_run_group_tests_name("sim_chaos", tests, NULL, NULL);
}
