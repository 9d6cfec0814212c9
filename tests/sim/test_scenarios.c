/* Named Raft scenarios on the simulator, driven explicitly with partitions,
 * crashes and message filters. Every step of every scenario is checked by the
 * invariant checker; each scenario ends with the heal phase and the final
 * checks (no acknowledged write lost, every proposal resolved, liveness).
 *
 *   HAMOK_SIM_SEED=<n>  run every scenario with that seed (default: fixed
 *                       seeds per scenario)
 *   HAMOK_SIM_TRACE=1   event trace */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <inttypes.h>

#include "scenario.h"
#include "sim.h"

#define T_EL 1000u /* election timeout of every scenario */

static bool seed_from_env(uint64_t *seed)
{
    const char *one = getenv("HAMOK_SIM_SEED");
    if (one != NULL && one[0] != '\0') {
        *seed = strtoull(one, NULL, 0);
        return true;
    }
    return false;
}

static uint64_t pick_seed(uint64_t def)
{
    uint64_t s = def;
    seed_from_env(&s);
    return s;
}

static hamok_sim *make(const hamok_sim_config *cfg)
{
    hamok_sim *s = hamok_sim_new(cfg);
    assert_non_null(s);
    if (hamok_sim_failed(s)) {
        fail_msg("%s", hamok_sim_error(s));
    }
    return s;
}

static hamok_sim *make_default(uint64_t seed, int n)
{
    hamok_sim_config cfg;
    hamok_sim_config_default(&cfg, seed, n);
    return make(&cfg);
}

#define SIM_OK(s)                               \
    do {                                        \
        if (hamok_sim_failed(s)) {              \
            fail_msg("%s", hamok_sim_error(s)); \
        }                                       \
    } while (0)

/* Finish a scenario: heal, liveness, final checks, destroy. */
static void finish(hamok_sim **s)
{
    if (!hamok_sim_check_liveness(*s)) {
        fail_msg("%s", hamok_sim_error(*s));
    }
    hamok_sim_destroy(s);
}

static int wait_leader(hamok_sim *s, uint64_t max_ms)
{
    int l = hamok_sim_wait_leader(s, max_ms);
    SIM_OK(s);
    if (l < 0) {
        fail_msg("no agreed leader within %" PRIu64 " ms (seed %" PRIu64 ")", max_ms,
                 hamok_sim_seed(s));
    }
    return l;
}

typedef struct node_arg {
    int node;
    uint64_t value;
} node_arg;

static bool pred_not_leader(hamok_sim *s, void *ud)
{
    const node_arg *a = ud;
    return hamok_sim_role(s, a->node) != HAMOK_RAFT_LEADER;
}

/* The node's disk holds `value` entries or more. */
static void wait_for(hamok_sim *s, hamok_sim_pred p, void *ud, uint64_t max_ms, const char *what)
{
    if (!hamok_sim_run_until_pred(s, p, ud, max_ms)) {
        SIM_OK(s);
        fail_msg("timed out after %" PRIu64 " ms waiting for %s (seed %" PRIu64 ")", max_ms, what,
                 hamok_sim_seed(s));
    }
}

/* Propose n entries to `node` (must be leader) and return the first index. */
static uint64_t propose(hamok_sim *s, int node, size_t n, uint64_t *term)
{
    uint64_t idx = 0, t = 0;
    hamok_status st = hamok_sim_propose(s, node, n, &idx, &t);
    SIM_OK(s);
    if (st != HAMOK_OK) {
        fail_msg("proposal to n%d failed: %s", node, hamok_status_str(st));
    }
    if (term) {
        *term = t;
    }
    return idx;
}

static uint64_t commit_of(hamok_sim *s, int node)
{
    return hamok__raft_commit_index(hamok_sim_core(s, node));
}

static uint64_t last_of(hamok_sim *s, int node)
{
    return hamok__raft_last_index(hamok_sim_core(s, node));
}

static uint64_t term_at(hamok_sim *s, int node, uint64_t index)
{
    uint64_t t = 0;
    hamok__raft_term_at(hamok_sim_core(s, node), index, &t);
    return t;
}

/* ------------------------------------------------------------------------ */
/* Elections. */

static void election(int n, uint64_t seed0)
{
    uint64_t one;
    bool single = seed_from_env(&one);
    uint64_t worst = 0;
    for (uint64_t seed = single ? one : seed0; seed < (single ? one + 1 : seed0 + 25); seed++) {
        hamok_sim *s = make_default(seed, n);
        int l = wait_leader(s, 10 * T_EL);
        uint64_t at = hamok_sim_now(s);
        worst = at > worst ? at : worst;
        /* Exactly one leader; everyone agrees on it and on the term. */
        int leaders = 0;
        for (int i = 0; i < n; i++) {
            if (hamok_sim_role(s, i) == HAMOK_RAFT_LEADER) {
                leaders++;
            }
            assert_int_equal(hamok_sim_term(s, i), hamok_sim_term(s, l));
        }
        assert_int_equal(leaders, 1);
        /* Stable without faults: no new election for 20 timeouts. */
        uint64_t term = hamok_sim_term(s, l);
        assert_true(hamok_sim_run_for(s, 20 * T_EL));
        assert_int_equal(hamok_sim_agreed_leader(s), l);
        assert_int_equal(hamok_sim_term(s, l), term);
        finish(&s);
    }
    /* The first timeout fires within [T, 2T); pre-vote and vote take a few
     * round trips. */
    printf("  %d nodes: leader agreed by %" PRIu64 " ms at worst\n", n, worst);
    assert_true(worst < 3 * T_EL);
}

static void test_election_3(void **state)
{
    (void)state;
    election(3, 100);
}

static void test_election_5(void **state)
{
    (void)state;
    election(5, 200);
}

/* ------------------------------------------------------------------------ */

static void test_single_node(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(300), 1);
    /* Leader at its very first step, without waiting for a timeout. */
    assert_true(hamok_sim_run_until(s, 0));
    assert_int_equal(hamok_sim_role(s, 0), HAMOK_RAFT_LEADER);
    uint64_t t;
    uint64_t idx = propose(s, 0, 5, &t);
    assert_true(hamok_sim_wait_applied(s, idx + 4, t, 100));
    SIM_OK(s);
    /* It commits alone, after its own disk write (at most disk_delay_max). */
    printf("  single node: committed 5 entries by %" PRIu64 " ms\n", hamok_sim_now(s));
    finish(&s);
}

/* ------------------------------------------------------------------------ */

static void test_leader_crash(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(400), 5);
    int l = wait_leader(s, 10 * T_EL);
    uint64_t t;
    uint64_t idx = propose(s, l, 20, &t);
    assert_true(hamok_sim_wait_applied(s, idx + 19, t, 2 * T_EL));
    SIM_OK(s);
    /* Some acknowledged, some in flight when the leader dies. */
    propose(s, l, 5, NULL);
    hamok_sim_crash(s, l);
    uint64_t crashed_at = hamok_sim_now(s);
    int l2 = wait_leader(s, 10 * T_EL);
    assert_int_not_equal(l2, l);
    printf("  new leader n%d %" PRIu64 " ms after the crash\n", l2, hamok_sim_now(s) - crashed_at);
    uint64_t idx2 = propose(s, l2, 10, &t);
    assert_true(hamok_sim_wait_applied(s, idx2 + 9, t, 2 * T_EL));
    SIM_OK(s);
    assert_true(hamok_sim_restart(s, l));
    finish(&s); /* acked-durable: all 30 acknowledged entries everywhere */
}

/* ------------------------------------------------------------------------ */

static void test_partitioned_leader_steps_down(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(500), 5);
    int l = wait_leader(s, 10 * T_EL);
    uint64_t t;
    uint64_t idx = propose(s, l, 3, &t);
    assert_true(hamok_sim_wait_applied(s, idx + 2, t, 2 * T_EL));
    int f = (l + 1) % 5;
    uint64_t old_term = hamok_sim_term(s, l);
    uint64_t commit_before = commit_of(s, l);
    hamok_sim_partition(s, (1u << l) | (1u << f));
    uint64_t cut_at = hamok_sim_now(s);
    /* The stale leader still takes proposals... */
    uint64_t stale_idx = propose(s, l, 10, NULL);
    /* ...but steps down once it misses its quorum (check-quorum). */
    node_arg a = {l, 0};
    wait_for(s, pred_not_leader, &a, 3 * T_EL, "the minority leader to step down");
    uint64_t down_after = hamok_sim_now(s) - cut_at;
    printf("  minority leader stepped down %" PRIu64 " ms after the cut\n", down_after);
    assert_true(down_after <= 2 * T_EL + 100);
    assert_int_equal(commit_of(s, l), commit_before); /* committed nothing */
    assert_true(commit_before < stale_idx);
    /* The majority elected a newer leader and commits. */
    int l2 = hamok_sim_leader(s);
    if (l2 < 0 || l2 == l || l2 == f) {
        for (int k = 0; k < 10 * (int)T_EL && (l2 < 0 || l2 == l || l2 == f); k += 10) {
            assert_true(hamok_sim_run_for(s, 10));
            l2 = hamok_sim_leader(s);
        }
    }
    assert_true(l2 >= 0 && l2 != l && l2 != f);
    assert_true(hamok_sim_term(s, l2) > old_term);
    uint64_t idx2 = propose(s, l2, 5, &t);
    assert_true(hamok_sim_run_for(s, T_EL));
    for (int i = 0; i < 5; i++) {
        if (i != l && i != f) {
            assert_true(hamok_sim_node_applied(s, i, idx2 + 4, t));
        }
    }
    /* The minority side committed nothing meanwhile. */
    assert_int_equal(commit_of(s, l), commit_before);
    assert_true(commit_of(s, f) <= commit_before);
    finish(&s); /* the stale leader's 10 entries are resolved as lost */
}

/* ------------------------------------------------------------------------ */

static void test_rejoin_does_not_depose(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(600), 5);
    int l = wait_leader(s, 10 * T_EL);
    uint64_t term = hamok_sim_term(s, l);
    int f = (l + 2) % 5;
    hamok_sim_isolate(s, f);
    for (int k = 0; k < 10; k++) {
        propose(s, l, 2, NULL);
        assert_true(hamok_sim_run_for(s, T_EL));
    }
    /* Pre-vote kept the isolated node's term from inflating. */
    assert_int_equal(hamok_sim_term(s, f), term);
    assert_int_not_equal(hamok_sim_role(s, f), HAMOK_RAFT_LEADER);
    hamok_sim_heal(s);
    assert_true(hamok_sim_run_for(s, 5 * T_EL));
    assert_int_equal(hamok_sim_agreed_leader(s), l);
    assert_int_equal(hamok_sim_term(s, l), term);
    assert_int_equal(hamok_sim_term(s, f), term);
    finish(&s);
}

/* ------------------------------------------------------------------------ */
/* Figure 8 of the Raft paper (§5.4.2), scripted in tests/lib/scenario.c:
 * an old-term entry X reaches a majority under a newer leader whose no-op
 * does not; X must not count as committed. Either a leader holding a
 * conflicting entry later replaces X, or X commits together with the newer
 * leader's no-op — never alone. */

static void figure8(bool overwrite)
{
    hamok_scenario_result r;
    bool ok = hamok_scenario_figure8(pick_seed(overwrite ? 800 : 801), overwrite, &r);
    if (!ok) {
        fail_msg("%s", r.error);
    }
    printf("  X = (index %" PRIu64 ", term %" PRIu64
           "); committed at that index at the end: term %" PRIu64,
           r.x_index, r.x_term, r.final_term_at_x);
    if (!overwrite) {
        printf("; S1 first covered X with commit index %" PRIu64 " (term %" PRIu64 ")",
               r.first_commit_over_x, r.term_at_first_commit);
    }
    printf("\n");
}

static void test_figure8_overwrite(void **state)
{
    (void)state;
    figure8(true);
}

static void test_figure8_commit_via_current_term(void **state)
{
    (void)state;
    figure8(false);
}

/* ------------------------------------------------------------------------ */
/* Repair of lagging and divergent followers. */

typedef struct caught_up {
    int node;
    int leader;
} caught_up;

static bool pred_caught_up(hamok_sim *s, void *ud)
{
    const caught_up *c = ud;
    if (!hamok_sim_is_live(s, c->node) || !hamok_sim_is_live(s, c->leader)) {
        return false;
    }
    uint64_t last = last_of(s, c->leader);
    return last_of(s, c->node) == last &&
           term_at(s, c->node, last) == term_at(s, c->leader, last) &&
           hamok_sim_disk_len(s, c->node) >= last;
}

static void test_far_behind_follower(void **state)
{
    (void)state;
    for (int variant = 0; variant < 2; variant++) {
        hamok_sim *s = make_default(pick_seed(900 + (uint64_t)variant), 3);
        int l = wait_leader(s, 10 * T_EL);
        int f = (l + 1) % 3;
        if (variant == 0) {
            hamok_sim_isolate(s, f); /* cut off, keeps running */
        } else {
            hamok_sim_crash(s, f); /* down while the others move on */
        }
        uint64_t t = 0, idx = 0;
        for (int k = 0; k < 20; k++) {
            idx = propose(s, l, 50, &t);
            assert_true(hamok_sim_run_for(s, 20));
        }
        assert_true(hamok_sim_run_for(s, 500));
        assert_true(commit_of(s, l) >= idx + 49);
        assert_true(last_of(s, l) >= 1000);
        hamok_sim_reset_counters(s);
        uint64_t start = hamok_sim_now(s);
        if (variant == 0) {
            hamok_sim_heal(s);
        } else {
            assert_true(hamok_sim_restart(s, f));
        }
        caught_up c = {f, l};
        wait_for(s, pred_caught_up, &c, 20 * T_EL, "the lagging follower to catch up");
        uint64_t rejects = hamok_sim_append_rejects(s, f);
        printf("  %s follower 1000+ entries behind: caught up in %" PRIu64 " ms with %" PRIu64
               " rejections, %" PRIu64 " AppendEntries\n",
               variant == 0 ? "isolated" : "restarted", hamok_sim_now(s) - start, rejects,
               hamok_sim_sent(s, l, HAMOK_MSG_APPEND_ENTRIES));
        assert_true(rejects <= 2);
        finish(&s);
    }
}

static void test_divergent_follower(void **state)
{
    (void)state;
    /* n0, n1: 10 entries of term 1 then 1000 of term 5 (term 5): longer than
     * n2's log, so the first probe lands in its newest divergent term.
     * n2: the same 10 of term 1, then 3 x 300 entries of terms 2, 3, 4 that
     * nobody else has (it led those terms alone). */
    enum { COMMON = 10, GOOD = 1000, SEG = 300, DIVERGENT_TERMS = 3 };
    static char text[COMMON + GOOD + DIVERGENT_TERMS * SEG][24];
    hamok_entry good[COMMON + GOOD];
    hamok_entry bad[COMMON + DIVERGENT_TERMS * SEG];
    size_t k = 0;
    for (size_t j = 0; j < COMMON + GOOD; j++, k++) {
        int len = snprintf(text[k], sizeof text[k], "good-%zu", j);
        memset(&good[j], 0, sizeof good[j]);
        good[j].term = j < COMMON ? 1 : 5;
        good[j].type = HAMOK_ENTRY_COMMAND;
        good[j].data = (uint8_t *)text[k];
        good[j].len = (size_t)len;
    }
    for (size_t j = 0; j < COMMON; j++) {
        bad[j] = good[j];
    }
    for (size_t j = COMMON; j < COMMON + DIVERGENT_TERMS * SEG; j++, k++) {
        int len = snprintf(text[k], sizeof text[k], "bad-%zu", j);
        memset(&bad[j], 0, sizeof bad[j]);
        bad[j].term = 2 + (j - COMMON) / SEG;
        bad[j].type = HAMOK_ENTRY_COMMAND;
        bad[j].data = (uint8_t *)text[k];
        bad[j].len = (size_t)len;
    }
    hamok_sim *s = make_default(pick_seed(1000), 3);
    assert_true(hamok_sim_preset(s, 0, 5, 0, good, COMMON + GOOD));
    assert_true(hamok_sim_preset(s, 1, 5, 0, good, COMMON + GOOD));
    assert_true(hamok_sim_preset(s, 2, 4, 2, bad, COMMON + DIVERGENT_TERMS * SEG));
    hamok_sim_reset_counters(s);
    int l = wait_leader(s, 10 * T_EL);
    assert_int_not_equal(l, 2); /* its last term (4) is older than theirs (5) */
    caught_up c = {2, l};
    wait_for(s, pred_caught_up, &c, 20 * T_EL, "the divergent follower to be repaired");
    uint64_t rejects = hamok_sim_append_rejects(s, 2);
    printf("  divergent follower (%d x %d entries of old terms): repaired with %" PRIu64
           " rejections\n",
           DIVERGENT_TERMS, SEG, rejects);
    /* One rejection per divergent term at most, plus the first probe. */
    assert_true(rejects <= DIVERGENT_TERMS + 1);
    assert_int_equal(last_of(s, 2), last_of(s, l));
    finish(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_election_3),
        cmocka_unit_test(test_election_5),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_leader_crash),
        cmocka_unit_test(test_partitioned_leader_steps_down),
        cmocka_unit_test(test_rejoin_does_not_depose),
        cmocka_unit_test(test_figure8_overwrite),
        cmocka_unit_test(test_figure8_commit_via_current_term),
        cmocka_unit_test(test_far_behind_follower),
        cmocka_unit_test(test_divergent_follower),
    };
    return cmocka_run_group_tests_name("sim_scenarios", tests, NULL, NULL);
}
