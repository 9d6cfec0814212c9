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

/* ------------------------------------------------------------------------ */
/* Lifecycle: membership, snapshots, transfer, reads, memory mode. */

static hamok_sim_config lifecycle_cfg(uint64_t seed, int n)
{
    hamok_sim_config cfg;
    hamok_sim_config_default(&cfg, seed, n);
    cfg.snapshot_entries = 20;
    cfg.snapshot_trailing = 5;
    cfg.chunk_bytes = 64;
    return cfg;
}

/* Propose n entries in batches of 10 to whoever leads; wait until every
 * live member applied them. */
static void load(hamok_sim *s, size_t n)
{
    uint64_t idx = 0, t = 0;
    for (size_t k = 0; k < n; k += 10) {
        int l = wait_leader(s, 10 * T_EL);
        idx = propose(s, l, 10, &t) + 9;
        assert_true(hamok_sim_run_for(s, 20));
    }
    if (!hamok_sim_wait_applied(s, idx, t, 10 * T_EL)) {
        SIM_OK(s);
        fail_msg("%zu entries not applied everywhere (seed %" PRIu64 ")", n, hamok_sim_seed(s));
    }
}

typedef struct cfg_arg {
    int node;
    bool member; /* wanted: a member (voter if voter) or not a member */
    bool voter;
} cfg_arg;

static bool pred_committed_cfg(hamok_sim *s, void *ud)
{
    const cfg_arg *a = ud;
    uint64_t voters = 0;
    uint64_t members = hamok_sim_committed_members(s, &voters);
    bool m = (members >> a->node) & 1u;
    bool v = (voters >> a->node) & 1u;
    return a->member ? (m && (!a->voter || v)) : !m;
}

/* Propose a membership change to whoever leads until it is accepted, then
 * wait until the committed configuration shows it. */
static void change_until(hamok_sim *s, hamok_raft_change_op op, int target, bool voter,
                         uint64_t max_ms)
{
    cfg_arg a = {target, op != HAMOK_RAFT_REMOVE, voter};
    uint64_t t0 = hamok_sim_now(s);
    while (!pred_committed_cfg(s, &a)) {
        SIM_OK(s);
        if (hamok_sim_now(s) - t0 > max_ms) {
            fail_msg("membership change (op %d, n%d) not committed within %" PRIu64
                     " ms (seed %" PRIu64 ")",
                     (int)op, target, max_ms, hamok_sim_seed(s));
        }
        int l = hamok_sim_leader(s);
        if (l >= 0) {
            uint64_t vm = 0;
            uint64_t mm = hamok_sim_config_members(s, l, &vm);
            bool member = ((mm >> target) & 1u) != 0;
            bool in_log = op == HAMOK_RAFT_REMOVE ? !member : member;
            if (!in_log) {
                hamok_sim_change(s, l, op, target, NULL);
            }
        }
        hamok_sim_run_until_pred(s, pred_committed_cfg, &a, 200);
    }
}

static int popcount64(uint64_t x)
{
    int k = 0;
    while (x != 0) {
        x &= x - 1;
        k++;
    }
    return k;
}

/* Thesis §4.2.2: the leader removes itself, keeps leading until the entry
 * commits (counting only the new configuration), then steps down; the rest
 * elect a leader and the removed node never leads again (the checker's
 * removed-leader invariant after every event). */
static void test_remove_leader(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1100), 5);
    hamok_sim *s = make(&cfg);
    int l = wait_leader(s, 10 * T_EL);
    load(s, 30);
    uint64_t idx = 0;
    assert_int_equal(hamok_sim_change(s, l, HAMOK_RAFT_REMOVE, l, &idx), HAMOK_OK);
    assert_true(idx > 0);
    cfg_arg gone = {l, false, false};
    wait_for(s, pred_committed_cfg, &gone, 2 * T_EL, "the leader's removal to commit");
    node_arg na = {l, 0};
    wait_for(s, pred_not_leader, &na, 1, "the removed leader to step down at commit");
    uint64_t removed_at = hamok_sim_now(s);
    int l2 = wait_leader(s, 10 * T_EL);
    assert_int_not_equal(l2, l);
    uint64_t voters = 0;
    hamok_sim_committed_members(s, &voters);
    assert_int_equal(popcount64(voters), 4);
    printf("  n%d removed itself (entry %" PRIu64 "); n%d leads %" PRIu64 " ms later\n", l, idx, l2,
           hamok_sim_now(s) - removed_at);
    load(s, 20);
    assert_true(hamok_sim_run_for(s, 5 * T_EL));
    assert_int_not_equal(hamok_sim_role(s, l), HAMOK_RAFT_LEADER);
    hamok_sim_retire(s, l);
    finish(&s);
}

/* A member cut off from the others is removed; the rest commit without it,
 * and once it is back (never told) its campaigns disrupt nobody: members
 * ignore a non-member's (pre-)votes. */
static void test_remove_partitioned_node(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1200), 5);
    hamok_sim *s = make(&cfg);
    int l = wait_leader(s, 10 * T_EL);
    int f = (l + 1) % 5;
    load(s, 10);
    hamok_sim_isolate(s, f);
    assert_int_equal(hamok_sim_change(s, l, HAMOK_RAFT_REMOVE, f, NULL), HAMOK_OK);
    cfg_arg gone = {f, false, false};
    wait_for(s, pred_committed_cfg, &gone, 2 * T_EL, "the partitioned node's removal to commit");
    load(s, 40);
    uint64_t term = hamok_sim_term(s, l);
    assert_true(hamok_sim_run_for(s, 3 * T_EL)); /* f times out meanwhile */
    hamok_sim_heal(s);
    assert_true(hamok_sim_run_for(s, 10 * T_EL));
    assert_int_equal(hamok_sim_agreed_leader(s), l);
    assert_int_equal(hamok_sim_term(s, l), term);
    assert_int_not_equal(hamok_sim_role(s, f), HAMOK_RAFT_LEADER);
    printf("  removed n%d while cut off; after healing: leader n%d, term %" PRIu64
           " unchanged; n%d at term %" PRIu64 ", %s\n",
           f, l, term, f, hamok_sim_term(s, f), hamok__raft_role_name(hamok_sim_role(s, f)));
    finish(&s);
}

typedef struct drop_chunks {
    uint64_t seen;
    uint64_t dropped;
} drop_chunks;

/* Every third INSTALL_SNAPSHOT chunk is lost. */
static bool filter_chunks(void *ud, int from, int to, const hamok_msg *m)
{
    (void)from;
    (void)to;
    drop_chunks *d = ud;
    if (m->type != HAMOK_MSG_INSTALL_SNAPSHOT) {
        return true;
    }
    if (d->seen++ % 3 == 1) {
        d->dropped++;
        return false;
    }
    return true;
}

/* A fresh node joins a cluster whose log was compacted long ago: it must get
 * the snapshot, in ~35 chunks of 64 bytes, a third of which are lost and
 * resent; then the log tail; then it is promoted. The checker verifies the
 * installed state against the committed state at the snapshot's index. */
static void test_add_node_snapshot_dropped_chunks(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1300), 3);
    hamok_sim *s = make(&cfg);
    int l = wait_leader(s, 10 * T_EL);
    load(s, 200);
    assert_true(hamok_sim_disk_snapshot(s, l) > 100);
    assert_true(hamok__raft_first_index(hamok_sim_core(s, l)) > 100); /* compacted */
    drop_chunks d = {0, 0};
    hamok_sim_set_filter(s, filter_chunks, &d);
    int j = hamok_sim_add_node(s);
    assert_true(j == 3);
    uint64_t t0 = hamok_sim_now(s);
    change_until(s, HAMOK_RAFT_ADD_LEARNER, j, true, 30 * T_EL); /* added and promoted */
    load(s, 10);
    hamok_sim_stats st;
    hamok_sim_stats_get(s, &st);
    printf("  n%d joined by snapshot (index %" PRIu64 ") in %" PRIu64 " ms: %" PRIu64
           " chunks sent, %" PRIu64 " lost, %" PRIu64 " installs\n",
           j, hamok_sim_disk_snapshot(s, j), hamok_sim_now(s) - t0, st.chunks_sent, d.dropped,
           st.installs);
    assert_true(st.installs >= 1);
    assert_true(d.dropped > 0);
    assert_true(hamok_sim_disk_snapshot(s, j) > 0);
    hamok_sim_set_filter(s, NULL, NULL);
    finish(&s);
}

/* Thesis §3.10 under 20% loss: the target is far behind; the leader brings
 * it up to date and hands over; a lost TimeoutNow makes the attempt time out
 * and the transfer is asked again. */
static void test_transfer_to_lagging_follower_under_drops(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(1400), 5);
    int l = wait_leader(s, 10 * T_EL);
    int f = (l + 2) % 5;
    hamok_sim_isolate(s, f);
    for (int k = 0; k < 30; k++) {
        propose(s, l, 10, NULL);
        assert_true(hamok_sim_run_for(s, 20));
    }
    assert_true(hamok_sim_run_for(s, 500));
    uint64_t behind = last_of(s, l) - last_of(s, f);
    hamok_sim_heal(s);
    hamok_sim_net_set(s, 0.2, 0.0, 1, 10);
    uint64_t t0 = hamok_sim_now(s);
    int attempts = 0;
    while (hamok_sim_leader(s) != f && attempts < 20) {
        int cur = hamok_sim_leader(s);
        if (cur >= 0 && hamok_sim_transfer(s, cur, f) == HAMOK_OK) {
            attempts++;
        }
        assert_true(hamok_sim_run_for(s, 3 * T_EL / 2));
    }
    SIM_OK(s);
    if (hamok_sim_leader(s) != f) {
        fail_msg("n%d never took over after %d transfers (seed %" PRIu64 ")", f, attempts,
                 hamok_sim_seed(s));
    }
    printf("  n%d (%" PRIu64 " entries behind) leads after %d transfer request(s), %" PRIu64
           " ms, under 20%% loss\n",
           f, behind, attempts, hamok_sim_now(s) - t0);
    propose(s, f, 5, NULL);
    finish(&s);
}

typedef struct read_watch {
    int node;
    bool active;
    uint64_t ok, failed; /* on `node` while active */
    uint64_t ok_total;
} read_watch;

static void on_read(hamok_sim *s, void *ud, int node, uint64_t id, hamok_status st,
                    uint64_t read_index, uint64_t applied)
{
    (void)s;
    (void)id;
    (void)read_index;
    (void)applied;
    read_watch *w = ud;
    if (node != w->node) {
        return;
    }
    if (st == HAMOK_OK) {
        w->ok_total++;
    }
    if (!w->active) {
        return;
    }
    if (st == HAMOK_OK) {
        w->ok++;
    } else {
        w->failed++;
    }
}

/* Thesis §6.4: a leader cut off with one follower (a minority of 5) keeps
 * believing it leads for up to an election timeout, but none of its read
 * barriers completes: its rounds never reach a majority. Meanwhile the
 * majority elects a leader and commits. */
static void test_read_on_partitioned_old_leader(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(1500), 5);
    int l = wait_leader(s, 10 * T_EL);
    int f = (l + 1) % 5;
    load(s, 10);
    read_watch w = {l, true, 0, 0, 0};
    hamok_sim_on_read(s, on_read, &w);
    hamok_sim_partition(s, (1ULL << l) | (1ULL << f));
    bool stepped_down = false;
    uint64_t issued = 0;
    for (int k = 0; k < 80; k++) {
        if (hamok_sim_read(s, l, NULL) == HAMOK_OK) {
            issued++;
        }
        int l2 = hamok_sim_leader(s);
        if (l2 >= 0 && l2 != l && l2 != f && hamok_sim_role(s, l2) == HAMOK_RAFT_LEADER) {
            hamok_sim_propose(s, l2, 1, NULL, NULL); /* the majority moves on */
        }
        stepped_down = stepped_down || hamok_sim_role(s, l) != HAMOK_RAFT_LEADER;
        assert_true(hamok_sim_run_for(s, 50));
    }
    SIM_OK(s);
    w.active = false;
    printf("  %" PRIu64 " reads on the cut-off leader n%d: %" PRIu64 " OK, %" PRIu64
           " failed (stepped down: %s)\n",
           issued, l, w.ok, w.failed, stepped_down ? "yes" : "no");
    assert_int_equal(w.ok, 0);
    assert_true(w.failed > 0);
    assert_true(stepped_down);
    hamok_sim_heal(s);
    wait_leader(s, 10 * T_EL);
    uint64_t before = w.ok_total;
    for (int k = 0; k < 20 && w.ok_total == before; k++) {
        hamok_sim_read(s, l, NULL);
        assert_true(hamok_sim_run_for(s, 100));
    }
    assert_true(w.ok_total > before); /* back in the majority: reads complete */
    hamok_sim_on_read(s, NULL, NULL);
    finish(&s);
}

/* Memory mode: a node loses its state; it comes back as a fresh peer with a
 * new id; the operator adds the new id (it catches up by snapshot and is
 * promoted) and removes the old one, which never comes back. */
static void test_memory_mode_replace(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1600), 3);
    cfg.chunk_bytes = 256;
    hamok_sim *s = make(&cfg);
    int l = wait_leader(s, 10 * T_EL);
    load(s, 100);
    int x = (l + 1) % 3;
    assert_true(hamok_chk_wipe_safe(hamok_sim_checker(s), x, 0x7));
    hamok_sim_wipe(s, x);
    load(s, 30); /* two of three voters left: still a quorum */
    int j = hamok_sim_add_node(s);
    assert_true(j == 3);
    change_until(s, HAMOK_RAFT_ADD_LEARNER, j, true, 30 * T_EL);
    change_until(s, HAMOK_RAFT_REMOVE, x, false, 10 * T_EL);
    load(s, 10);
    uint64_t voters = 0;
    hamok_sim_committed_members(s, &voters);
    assert_int_equal(voters, (0x7ULL & ~(1ULL << x)) | (1ULL << j));
    printf("  n%d wiped, replaced by n%d (snapshot at %" PRIu64 "); voters %#" PRIx64 "\n", x, j,
           hamok_sim_disk_snapshot(s, j), voters);
    finish(&s);
}

/* Durable mode: a follower crashes after snapshots; it restarts from its
 * snapshot and the log after it (the checker compares the restored state
 * with the committed state at the snapshot's index), then catches up. */
static void test_restart_from_snapshot(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1700), 3);
    hamok_sim *s = make(&cfg);
    int l = wait_leader(s, 10 * T_EL);
    int f = (l + 1) % 3;
    load(s, 100);
    uint64_t snap = hamok_sim_disk_snapshot(s, f);
    assert_true(snap > 0);
    hamok_sim_crash(s, f);
    load(s, 60);
    assert_true(hamok_sim_restart(s, f));
    SIM_OK(s);
    assert_int_equal(hamok__raft_applied_index(hamok_sim_core(s, f)), snap);
    assert_int_equal(hamok__raft_snapshot_index(hamok_sim_core(s, f), NULL), snap);
    load(s, 10);
    printf("  n%d restarted from its snapshot at %" PRIu64 " and caught up to %" PRIu64 "\n", f,
           snap, hamok__raft_applied_index(hamok_sim_core(s, f)));
    finish(&s);
}

/* ------------------------------------------------------------------------ */
/* Core bugs found by the simulator (tests/sim/FINDINGS.md), now regression
 * tests: each fails on the core before its fix. */

typedef struct f4_filter {
    int from, to;
    uint64_t below; /* drop AppendEntries from->to unless prev < below */
    bool on;
} f4_filter;

static bool filter_f4(void *ud, int from, int to, const hamok_msg *m)
{
    const f4_filter *f = ud;
    return !(f->on && from == f->from && to == f->to && m->type == HAMOK_MSG_APPEND_ENTRIES &&
             m->u.append.prev_log_index >= f->below);
}

/* Finding 4 (regression): n2 compacted its log (snapshots); n1 never
 * snapshots. n1 becomes leader; its first probe to n2 is lost; a read
 * barrier's heartbeat anchored at n1's log start (0) reaches n2 first. Before
 * b99e37b n2 answered "success, match 0" (everything in it is below its own
 * log start) and n1 looped between that answer and re-probing below n2's log
 * start: n2 never caught up again. It must catch up. */
static void test_finding4_compacted_follower(void **state)
{
    (void)state;
    hamok_sim_config cfg = lifecycle_cfg(pick_seed(1800), 3);
    cfg.max_batch_entries = 1;
    cfg.max_inflight = 1;
    hamok_sim *s = make(&cfg);
    hamok_sim_set_snapshots(s, 1, false);
    int l = -1;
    for (int k = 0; k < 50 && l != 0; k++) { /* n0 leads */
        l = wait_leader(s, 10 * T_EL);
        if (l != 0) {
            hamok_sim_transfer(s, l, 0);
            assert_true(hamok_sim_run_for(s, T_EL));
        }
    }
    assert_int_equal(l, 0);
    load(s, 60);
    uint64_t lo2 = hamok__raft_first_index(hamok_sim_core(s, 2)) - 1;
    assert_true(lo2 > 20);
    assert_int_equal(hamok__raft_first_index(hamok_sim_core(s, 1)), 1);
    f4_filter f = {1, 2, 1, true}; /* n1 -> n2: only heartbeats anchored at 0 */
    hamok_sim_set_filter(s, filter_f4, &f);
    assert_int_equal(hamok_sim_transfer(s, 0, 1), HAMOK_OK);
    for (int k = 0; k < 100 && hamok_sim_role(s, 1) != HAMOK_RAFT_LEADER; k++) {
        assert_true(hamok_sim_run_for(s, 10));
    }
    assert_int_equal(hamok_sim_role(s, 1), HAMOK_RAFT_LEADER);
    hamok_sim_read(s, 1, NULL); /* its round heartbeats n2 at prev 0 */
    assert_true(hamok_sim_run_for(s, 200));
    f.on = false;
    uint64_t t = 0;
    uint64_t idx = propose(s, 1, 1, &t);
    bool n2_caught_up = hamok_sim_wait_applied(s, idx, t, 20 * T_EL);
    SIM_OK(s);
    hamok_sim_set_filter(s, NULL, NULL);
    if (!n2_caught_up) {
        fail_msg("FINDINGS.md 4 is back: n2 (log start %" PRIu64 ") stuck at applied %" PRIu64
                 " while n1 committed %" PRIu64 " (seed %" PRIu64 ")",
                 lo2 + 1, hamok__raft_applied_index(hamok_sim_core(s, 2)), idx, hamok_sim_seed(s));
    }
    printf("  n2 (log start %" PRIu64
           ") caught up with leader n1 (log start 1) after a read "
           "round anchored below it\n",
           lo2 + 1);
    finish(&s);
}

typedef struct f5_filter {
    int from;
    bool on;
} f5_filter;

static bool filter_f5(void *ud, int from, int to, const hamok_msg *m)
{
    (void)to;
    const f5_filter *f = ud;
    return !(f->on && from == f->from && m->type == HAMOK_MSG_APPEND_ENTRIES &&
             m->u.append.n_entries > 0);
}

/* Finding 5 (regression): four voters, one of them (n3) gone for good. The
 * leader removes itself; the entry reaches nobody; the leader is cut off and
 * steps down. It holds the most up-to-date log but is no voter of its own
 * latest configuration; the two others need three votes of the old
 * configuration and it refuses them theirs (its log is more up to date).
 * Before the fix it never campaigned: no leader, ever. Thesis §4.2.2: a
 * server removed by an entry it does not know committed still campaigns,
 * without counting its own vote; it wins with the two others' votes, commits
 * its removal and steps down; one of the others then leads. */
static void test_finding5_self_removal_deadlock(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(1900), 4);
    int l = wait_leader(s, 10 * T_EL);
    load(s, 10);
    int dead = (l + 3) % 4;
    hamok_sim_retire(s, dead);
    load(s, 10); /* three of four: still a quorum */
    f5_filter f = {l, true};
    hamok_sim_set_filter(s, filter_f5, &f);
    uint64_t idx = 0;
    assert_int_equal(hamok_sim_change(s, l, HAMOK_RAFT_REMOVE, l, &idx), HAMOK_OK);
    hamok_sim_isolate(s, l);
    node_arg na = {l, 0};
    wait_for(s, pred_not_leader, &na, 3 * T_EL, "the cut-off leader to step down");
    assert_int_equal(last_of(s, l), idx); /* the removal is in its log only */
    for (int i = 0; i < 4; i++) {
        if (i != l && i != dead) {
            assert_true(last_of(s, i) < idx);
        }
    }
    hamok_sim_heal(s);
    f.on = false;
    hamok_sim_set_filter(s, NULL, NULL);
    cfg_arg gone = {l, false, false};
    if (!hamok_sim_run_until_pred(s, pred_committed_cfg, &gone, 30 * T_EL)) {
        SIM_OK(s);
        fail_msg("FINDINGS.md 5 is back: n%d's removal (entry %" PRIu64
                 ") not committed within 30 election timeouts after healing (seed %" PRIu64 ")",
                 l, idx, hamok_sim_seed(s));
    }
    int l2 = wait_leader(s, 10 * T_EL);
    assert_int_not_equal(l2, l);
    assert_int_not_equal(hamok_sim_role(s, l), HAMOK_RAFT_LEADER);
    printf("  n%d, removed by its own uncommitted entry %" PRIu64
           ", campaigned, committed it and stepped down; n%d leads term %" PRIu64 "\n",
           l, idx, l2, hamok_sim_term(s, l2));
    load(s, 10);
    finish(&s);
}

typedef struct f9_filter {
    int leader;
    int to[2];
    uint64_t limit[2]; /* drop leader -> to[k] AppendEntries carrying entries past limit[k] */
} f9_filter;

static bool filter_f9(void *ud, int from, int to, const hamok_msg *m)
{
    const f9_filter *f = ud;
    if (from != f->leader || m->type != HAMOK_MSG_APPEND_ENTRIES || m->u.append.n_entries == 0) {
        return true;
    }
    for (int k = 0; k < 2; k++) {
        if (to == f->to[k] && m->u.append.prev_log_index + m->u.append.n_entries > f->limit[k]) {
            return false;
        }
    }
    return true;
}

typedef struct voter_arg {
    int node; /* whose configuration in force */
    int who;  /* must list this node as a voter */
} voter_arg;

static bool pred_sees_voter(hamok_sim *s, void *ud)
{
    const voter_arg *a = ud;
    uint64_t v = 0;
    hamok_sim_config_members(s, a->node, &v);
    return (v >> a->who) & 1u;
}

static bool pred_disk_len(hamok_sim *s, void *ud)
{
    const node_arg *a = ud;
    return hamok_sim_disk_len(s, a->node) >= a->value;
}

/* Finding 9 (regression; chaos seed 1602 before the fix): voters {a, b, L}
 * and the learner d. L promotes d (entry p): p reaches b and d but not a, so
 * a still knows d as a learner; one more entry (p + 1) reaches d only; then
 * L is lost for good. d holds the most up-to-date log and needs three of
 * {a, b, L, d}: b grants, and a must answer. Before the fix a ignored vote
 * requests from learners of its configuration: d got two votes, b needed d's
 * (refused: d's log is longer), a needed b's (refused: b holds p): no leader,
 * ever. Members, learners included, must be answered (non-members still not:
 * the removed-leader invariant). */
static void test_finding9_promoted_learner_elected(void **state)
{
    (void)state;
    hamok_sim *s = make_default(pick_seed(2000), 3);
    int l = wait_leader(s, 10 * T_EL);
    int a = (l + 1) % 3;
    int b = (l + 2) % 3;
    load(s, 10);
    int d = hamok_sim_add_node(s);
    assert_int_equal(d, 3);
    uint64_t add = 0;
    assert_int_equal(hamok_sim_change(s, l, HAMOK_RAFT_ADD_LEARNER, d, &add), HAMOK_OK);
    assert_true(add > 0);
    f9_filter f = {l, {a, b}, {add, UINT64_MAX}};
    hamok_sim_set_filter(s, filter_f9, &f);
    /* Auto-promotion once d caught up: stop b right after the promotion. */
    voter_arg promoted = {l, d};
    wait_for(s, pred_sees_voter, &promoted, 10 * T_EL, "the leader to promote the learner");
    uint64_t p = 0;
    hamok__raft_members(hamok_sim_core(s, l), NULL, &p);
    assert_int_equal(last_of(s, l), p);
    f.limit[1] = p;
    voter_arg at_b = {b, d};
    wait_for(s, pred_sees_voter, &at_b, 10 * T_EL, "b to receive the promotion");
    node_arg committed = {l, p};
    wait_for(s, pred_disk_len, &committed, 10 * T_EL, "the promotion on the leader's disk");
    uint64_t q = propose(s, l, 1, NULL);
    assert_int_equal(q, p + 1);
    node_arg at_d = {d, q};
    wait_for(s, pred_disk_len, &at_d, 10 * T_EL, "entry p + 1 on d's disk");
    assert_true(hamok_sim_run_for(s, 50));
    /* The shape of the deadlock. */
    uint64_t av = 0;
    uint64_t am = hamok_sim_config_members(s, a, &av);
    assert_true((am >> d) & 1u);
    assert_false((av >> d) & 1u);
    assert_true(last_of(s, a) < p);
    assert_int_equal(last_of(s, b), p);
    assert_int_equal(last_of(s, d), q);
    hamok_sim_retire(s, l);
    hamok_sim_set_filter(s, NULL, NULL);
    int l2 = hamok_sim_wait_leader(s, 30 * T_EL);
    SIM_OK(s);
    if (l2 < 0) {
        fail_msg(
            "FINDINGS.md 9 is back: no leader within 30 election timeouts after n%d was "
            "lost: n%d (a voter since entry %" PRIu64 ") is a learner for n%d (seed %" PRIu64 ")",
            l, d, p, a, hamok_sim_seed(s));
    }
    assert_int_equal(l2, d);
    printf("  n%d (promoted at %" PRIu64 ", log %" PRIu64 ") elected by n%d (log %" PRIu64
           ", knows it as a learner) and n%d (log %" PRIu64 ") after n%d was lost\n",
           d, p, q, a, p - 1, b, p, l);
    load(s, 10);
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
        cmocka_unit_test(test_remove_leader),
        cmocka_unit_test(test_remove_partitioned_node),
        cmocka_unit_test(test_add_node_snapshot_dropped_chunks),
        cmocka_unit_test(test_transfer_to_lagging_follower_under_drops),
        cmocka_unit_test(test_read_on_partitioned_old_leader),
        cmocka_unit_test(test_memory_mode_replace),
        cmocka_unit_test(test_restart_from_snapshot),
        cmocka_unit_test(test_finding4_compacted_follower),
        cmocka_unit_test(test_finding5_self_removal_deadlock),
        cmocka_unit_test(test_finding9_promoted_learner_elected),
    };
    return cmocka_run_group_tests_name("sim_scenarios", tests, NULL, NULL);
}
