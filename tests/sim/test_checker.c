/* The checker is tested on hand-made histories: each violating history must
 * be reported with the right invariant, and a valid one must pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "checker.h"

static uint8_t payload_a[] = "a";
static uint8_t payload_b[] = "b";
static uint8_t payload_c[] = "c";

static hamok_entry ent(uint64_t term, uint8_t *data)
{
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = term;
    e.type = HAMOK_ENTRY_COMMAND;
    e.data = data;
    e.len = 1;
    return e;
}

static hamok_chk_step role_step(int node, bool leader, uint64_t term, uint64_t commit)
{
    hamok_chk_step s;
    memset(&s, 0, sizeof s);
    s.node = node;
    s.is_leader = leader;
    s.term = term;
    s.commit_index = commit;
    return s;
}

/* Node `node` appends entries at `first` (no truncation). */
static bool append(hamok_chk *c, int node, bool leader, uint64_t term, uint64_t first,
                   const hamok_entry *e, size_t n)
{
    hamok_chk_step s = role_step(node, leader, term, 0);
    s.persist_first = first;
    s.persist = e;
    s.n_persist = n;
    return hamok_chk_node_step(c, &s);
}

static bool apply(hamok_chk *c, int node, bool leader, uint64_t term, uint64_t commit,
                  uint64_t first, const hamok_entry *e, size_t n)
{
    hamok_chk_step s = role_step(node, leader, term, commit);
    s.apply_first = first;
    s.apply = e;
    s.n_apply = n;
    return hamok_chk_node_step(c, &s);
}

static void expect_violation(hamok_chk *c, const char *invariant)
{
    const hamok_chk_violation *v = hamok_chk_failed(c);
    assert_non_null(v);
    if (strcmp(v->invariant, invariant) != 0) {
        fail_msg("expected %s, got %s: %s", invariant, v->invariant, v->detail);
    }
}

static void test_valid_history_passes(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    assert_non_null(c);
    hamok_entry e[2] = {ent(1, payload_a), ent(1, payload_b)};
    /* n0 leads term 1 and replicates two entries to n1; both durable on n0, n1. */
    assert_true(append(c, 0, true, 1, 1, e, 2));
    assert_true(hamok_chk_propose(c, 0, 1, 1, e, 2));
    assert_true(append(c, 1, false, 1, 1, e, 2));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, e, 2));
    assert_true(hamok_chk_disk_write(c, 1, 0, 1, e, 2));
    assert_true(apply(c, 0, true, 1, 2, 1, e, 2));
    assert_true(apply(c, 1, false, 1, 2, 1, e, 2));
    /* n2 catches up later. */
    assert_true(append(c, 2, false, 1, 1, e, 2));
    assert_true(apply(c, 2, false, 1, 2, 1, e, 2));
    assert_true(hamok_chk_final(c, 7u));
    hamok_chk_stats st;
    hamok_chk_stats_get(c, &st);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.committed, 2);
    assert_null(hamok_chk_failed(c));
    hamok_chk_destroy(&c);
    assert_null(c);
}

static void test_two_leaders_in_one_term(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_chk_step s = role_step(0, true, 2, 0);
    assert_true(hamok_chk_node_step(c, &s));
    s = role_step(1, false, 2, 0);
    assert_true(hamok_chk_node_step(c, &s));
    s = role_step(2, true, 2, 0);
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "election-safety");
    assert_int_equal(hamok_chk_failed(c)->node, 2);
    assert_int_equal(hamok_chk_failed(c)->term, 2);
    /* Sticky: later calls fail too and the first report stays. */
    s = role_step(1, false, 3, 0);
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "election-safety");
    hamok_chk_destroy(&c);
}

static void test_divergent_committed_entry(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    hamok_entry b = ent(2, payload_b);
    /* n0 (term 1) commits a at index 1 on n0 and n1. */
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(append(c, 1, false, 1, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 1, 0, 1, &a, 1));
    assert_true(apply(c, 0, true, 1, 1, 1, &a, 1));
    /* n2 gets b at index 1 in term 2 and applies it: divergence. */
    assert_true(append(c, 2, false, 2, 1, &b, 1));
    assert_true(hamok_chk_disk_write(c, 2, 0, 1, &b, 1));
    assert_false(apply(c, 2, false, 2, 1, 1, &b, 1));
    expect_violation(c, "state-machine-safety");
    assert_int_equal(hamok_chk_failed(c)->index, 1);
    hamok_chk_destroy(&c);
}

static void test_log_matching(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    hamok_entry b = ent(1, payload_b);
    assert_true(append(c, 0, false, 1, 1, &a, 1));
    /* Same (index, term), other payload. */
    assert_false(append(c, 1, false, 1, 1, &b, 1));
    expect_violation(c, "log-matching");
    hamok_chk_destroy(&c);

    /* Same (index, term) after a different predecessor term. */
    c = hamok_chk_new(3);
    hamok_entry x1 = ent(1, payload_a), x2 = ent(3, payload_c);
    hamok_entry y1 = ent(2, payload_b), y2 = ent(3, payload_c);
    hamok_entry xs[2] = {x1, x2}, ys[2] = {y1, y2};
    assert_true(append(c, 0, false, 3, 1, xs, 2));
    assert_false(append(c, 1, false, 3, 1, ys, 2));
    expect_violation(c, "log-matching");
    hamok_chk_destroy(&c);
}

static void test_leader_append_only(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry e[2] = {ent(1, payload_a), ent(1, payload_b)};
    assert_true(append(c, 0, true, 1, 1, e, 2));
    hamok_chk_step s = role_step(0, true, 1, 0);
    s.truncate_from = 2;
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "leader-append-only");
    hamok_chk_destroy(&c);
}

static void test_commit_goes_back(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(1);
    hamok_entry a = ent(1, payload_a);
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, &a, 1));
    assert_true(apply(c, 0, true, 1, 1, 1, &a, 1));
    hamok_chk_step s = role_step(0, true, 1, 0);
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "commit-monotonic");
    hamok_chk_destroy(&c);
}

static void test_commit_without_majority_on_disk(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, &a, 1));
    /* Only one disk of three holds it. */
    assert_false(apply(c, 0, true, 1, 1, 1, &a, 1));
    expect_violation(c, "commit-durability");
    hamok_chk_destroy(&c);
}

/* A stale leader of an older term may rewrite a committed entry on one
 * follower; the entry must stay on a majority of disks. */
static void test_committed_entry_leaves_disks(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    hamok_entry b = ent(2, payload_b);
    for (int i = 0; i < 3; i++) {
        assert_true(append(c, i, i == 0, 1, 1, &a, 1));
        assert_true(hamok_chk_disk_write(c, i, 0, 1, &a, 1));
    }
    assert_true(apply(c, 0, true, 1, 1, 1, &a, 1));
    /* n2 (commit index 0, it never learned) has it replaced: still on 2 of 3. */
    hamok_chk_step s = role_step(2, false, 2, 0);
    s.truncate_from = 1;
    s.persist_first = 1;
    s.persist = &b;
    s.n_persist = 1;
    assert_true(hamok_chk_node_step(c, &s));
    assert_true(hamok_chk_disk_write(c, 2, 1, 1, &b, 1));
    /* n1 too: now on 1 of 3. */
    s.node = 1;
    assert_true(hamok_chk_node_step(c, &s));
    assert_false(hamok_chk_disk_write(c, 1, 1, 1, &b, 1));
    expect_violation(c, "commit-durability");
    hamok_chk_destroy(&c);
}

static void test_new_leader_lacks_committed_entry(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(append(c, 1, false, 1, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 1, 0, 1, &a, 1));
    assert_true(apply(c, 0, true, 1, 1, 1, &a, 1));
    /* n2 never got it but becomes leader of term 2. */
    hamok_chk_step s = role_step(2, true, 2, 0);
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "leader-completeness");
    hamok_chk_destroy(&c);
}

static void test_double_vote(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_chk_step s = role_step(0, false, 4, 0);
    s.hard_state_changed = true;
    s.hs_term = 4;
    s.hs_vote = 1;
    assert_true(hamok_chk_node_step(c, &s));
    s.hs_vote = 2;
    assert_false(hamok_chk_node_step(c, &s));
    expect_violation(c, "vote-once");
    hamok_chk_destroy(&c);
}

static void test_acked_write_lost(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(hamok_chk_propose(c, 0, 1, 1, &a, 1));
    assert_true(append(c, 1, false, 1, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 0, 0, 1, &a, 1));
    assert_true(hamok_chk_disk_write(c, 1, 0, 1, &a, 1));
    assert_true(apply(c, 0, true, 1, 1, 1, &a, 1));
    /* n2 is live at the end but never received it. */
    assert_false(hamok_chk_final(c, 7u));
    expect_violation(c, "acked-durable");
    assert_int_equal(hamok_chk_failed(c)->node, 2);
    hamok_chk_destroy(&c);
}

static void test_unresolved_proposal(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    assert_true(append(c, 0, true, 1, 1, &a, 1));
    assert_true(hamok_chk_propose(c, 0, 1, 1, &a, 1));
    assert_false(hamok_chk_final(c, 7u));
    expect_violation(c, "liveness");
    hamok_chk_destroy(&c);
}

static void test_contiguous_writes(void **state)
{
    (void)state;
    hamok_chk *c = hamok_chk_new(3);
    hamok_entry a = ent(1, payload_a);
    assert_false(append(c, 0, false, 1, 3, &a, 1)); /* log is empty: index 3 leaves a gap */
    expect_violation(c, "update-contract");
    hamok_chk_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_history_passes),
        cmocka_unit_test(test_two_leaders_in_one_term),
        cmocka_unit_test(test_divergent_committed_entry),
        cmocka_unit_test(test_log_matching),
        cmocka_unit_test(test_leader_append_only),
        cmocka_unit_test(test_commit_goes_back),
        cmocka_unit_test(test_commit_without_majority_on_disk),
        cmocka_unit_test(test_committed_entry_leaves_disks),
        cmocka_unit_test(test_new_leader_lacks_committed_entry),
        cmocka_unit_test(test_double_vote),
        cmocka_unit_test(test_acked_write_lost),
        cmocka_unit_test(test_unresolved_proposal),
        cmocka_unit_test(test_contiguous_writes),
    };
    return cmocka_run_group_tests_name("sim_checker", tests, NULL, NULL);
}
