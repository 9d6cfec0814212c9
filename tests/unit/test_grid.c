/* Discovery and membership upkeep (src/grid), white box: virtual time, no
 * network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "grid/grid.h"

static hamok_id id(uint64_t n)
{
    return hamok__id_from_u64(n);
}

static hamok_grid *mk(uint64_t self, uint32_t expect, uint32_t peer_timeout)
{
    hamok_grid_options o = {.self = id(self),
                            .endpoint = "tcp://self",
                            .hello_ms = 100,
                            .discovery_ms = 500,
                            .peer_timeout_ms = peer_timeout,
                            .bootstrap_expect = expect};
    hamok_grid *g = NULL;
    assert_int_equal(hamok__grid_new(&g, &o), HAMOK_OK);
    return g;
}

static size_t count_type(const hamok_grid_out *out, uint8_t type)
{
    size_t k = 0;
    for (size_t i = 0; i < out->n_msgs; i++) {
        k += out->msgs[i].type == type ? 1u : 0u;
    }
    return k;
}

static hamok_msg hello_from(uint64_t src)
{
    hamok_msg m = {.type = HAMOK_MSG_HELLO, .src = id(src), .broadcast = true};
    m.u.hello.endpoint = "tcp://other";
    return m;
}

static void test_new_invalid(void **state)
{
    (void)state;
    hamok_grid_options o = {.self = id(1), .hello_ms = 0, .bootstrap_expect = 1};
    hamok_grid *g = NULL;
    assert_int_equal(hamok__grid_new(&g, &o), HAMOK_ERR_INVALID);
    assert_null(g);
    hamok__grid_destroy(&g); /* NULL-safe */
}

static void test_founds_alone_after_window(void **state)
{
    (void)state;
    hamok_grid *g = mk(1, 1, 0);
    hamok_grid_view v = {0};
    hamok_grid_out out;
    hamok__grid_join(g, 0);
    assert_int_equal(hamok__grid_tick(g, 0, &v, &out), HAMOK_OK);
    assert_int_equal(count_type(&out, HAMOK_MSG_HELLO), 1);
    assert_false(out.found);
    /* Not before the discovery window. */
    hamok__grid_tick(g, 400, &v, &out);
    assert_false(out.found);
    hamok__grid_tick(g, 600, &v, &out);
    assert_true(out.found);
    hamok__grid_destroy(&g);
}

static void test_smallest_founds_with_expect(void **state)
{
    (void)state;
    hamok_grid *big = mk(5, 2, 0);
    hamok_grid *small = mk(2, 2, 0);
    hamok_grid_view v = {0};
    hamok_grid_out out;
    hamok__grid_join(big, 0);
    hamok__grid_join(small, 0);
    /* Alone, neither founds (expect 2). */
    hamok__grid_tick(small, 600, &v, &out);
    assert_false(out.found);
    hamok_msg h5 = hello_from(5), h2 = hello_from(2);
    hamok__grid_receive(small, 650, &h5, &v, &out);
    assert_int_equal(out.n_learned, 1); /* endpoint learned for the transport */
    hamok__grid_receive(big, 650, &h2, &v, &out);
    hamok__grid_tick(big, 700, &v, &out);
    assert_false(out.found); /* not the smallest */
    hamok__grid_tick(small, 700, &v, &out);
    assert_true(out.found);
    /* A peer heard long ago no longer counts. */
    hamok_grid *lone = mk(1, 2, 0);
    hamok__grid_join(lone, 0);
    hamok__grid_receive(lone, 10, &h5, &v, &out);
    hamok__grid_tick(lone, 2000, &v, &out);
    assert_false(out.found);
    hamok__grid_destroy(&lone);
    hamok__grid_destroy(&big);
    hamok__grid_destroy(&small);
}

static void test_joins_known_leader(void **state)
{
    (void)state;
    hamok_grid *g = mk(9, 1, 0);
    hamok_grid_view v = {0};
    hamok_grid_out out;
    hamok__grid_join(g, 0);
    hamok__grid_tick(g, 0, &v, &out);
    hamok_member ms[2] = {{id(1), HAMOK_MEMBER_VOTER, "tcp://one"},
                          {id(2), HAMOK_MEMBER_VOTER, "tcp://two"}};
    hamok_msg s = {.type = HAMOK_MSG_ENDPOINT_STATES, .src = id(2), .dst = id(9)};
    s.u.endpoint_states.term = 3;
    s.u.endpoint_states.has_leader = true;
    s.u.endpoint_states.leader = id(1);
    s.u.endpoint_states.commit_index = 42;
    s.u.endpoint_states.members = ms;
    s.u.endpoint_states.n_members = 2;
    hamok__grid_receive(g, 10, &s, &v, &out);
    assert_int_equal(out.n_learned, 2);
    assert_int_equal(hamok__grid_join_commit(g), 42);
    hamok__grid_tick(g, 10, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_JOIN), 1);
    for (size_t i = 0; i < out.n_msgs; i++) {
        if (out.msgs[i].type == HAMOK_MSG_JOIN) {
            assert_memory_equal(out.msgs[i].dst.b, id(1).b, HAMOK_ID_LEN);
        }
    }
    /* A cluster exists: never found one, even after the window. */
    hamok__grid_tick(g, 5000, &v, &out);
    assert_false(out.found);
    /* Once a member with a leader, no more HELLO / JOIN. */
    v.is_member = true;
    v.has_leader = true;
    hamok__grid_tick(g, 6000, &v, &out);
    assert_int_equal(out.n_msgs, 0);
    assert_true(out.next_deadline_ms > 6000);
    hamok__grid_destroy(&g);
}

static void test_leader_turns_joins_into_changes(void **state)
{
    (void)state;
    hamok_grid *g = mk(1, 1, 0);
    hamok_member ms[1] = {{id(1), HAMOK_MEMBER_VOTER, "tcp://one"}};
    hamok_grid_view v = {.is_member = true,
                         .is_leader = true,
                         .has_leader = true,
                         .leader = id(1),
                         .term = 2,
                         .members = ms,
                         .n_members = 1,
                         .committed = ms,
                         .n_committed = 1};
    hamok_grid_out out;
    /* A member answers a would-be member's HELLO with its states. */
    hamok_msg h = hello_from(7);
    hamok__grid_receive(g, 0, &h, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_ENDPOINT_STATES), 1);
    hamok_msg j = {.type = HAMOK_MSG_JOIN, .src = id(7), .dst = id(1)};
    j.u.join.endpoint = "tcp://seven";
    hamok__grid_receive(g, 1, &j, &v, &out);
    hamok__grid_receive(g, 2, &j, &v, &out); /* repeated: one request */
    hamok_grid_change c;
    assert_true(hamok__grid_next_change(g, 3, &v, &c));
    assert_true(c.add);
    assert_memory_equal(c.id.b, id(7).b, HAMOK_ID_LEN);
    assert_string_equal(c.endpoint, "tcp://seven");
    /* Until reported done it stays queued (a BUSY core). */
    assert_true(hamok__grid_next_change(g, 4, &v, &c));
    hamok__grid_change_done(g, &c.id, true);
    assert_false(hamok__grid_next_change(g, 5, &v, &c));
    /* Not the leader any more: requests are dropped. */
    hamok__grid_receive(g, 6, &j, &v, &out);
    v.is_leader = false;
    assert_false(hamok__grid_next_change(g, 7, &v, &c));
    v.is_leader = true;
    assert_false(hamok__grid_next_change(g, 8, &v, &c));
    hamok__grid_destroy(&g);
}

static void test_silent_member_removed(void **state)
{
    (void)state;
    hamok_grid *g = mk(1, 1, 1000);
    hamok_member ms[3] = {{id(1), HAMOK_MEMBER_VOTER, ""},
                          {id(2), HAMOK_MEMBER_VOTER, ""},
                          {id(3), HAMOK_MEMBER_VOTER, ""}};
    hamok_grid_view v = {.is_member = true,
                         .is_leader = true,
                         .has_leader = true,
                         .leader = id(1),
                         .members = ms,
                         .n_members = 3,
                         .committed = ms,
                         .n_committed = 3};
    hamok_grid_change c;
    hamok__grid_became_leader(g, 100);
    /* Nobody is judged within peer_timeout of the election. */
    assert_false(hamok__grid_next_change(g, 900, &v, &c));
    for (uint64_t t = 100; t <= 3000; t += 100) {
        hamok_id two = id(2);
        hamok__grid_heard(g, &two, t);
    }
    assert_true(hamok__grid_next_change(g, 1200, &v, &c));
    assert_false(c.add);
    assert_memory_equal(c.id.b, id(3).b, HAMOK_ID_LEN);
    hamok_id three = id(3);
    hamok__grid_heard(g, &three, 1300);
    assert_false(hamok__grid_next_change(g, 1400, &v, &c));
    assert_int_equal(hamok__grid_silence(g, &three, 1400), 100);
    hamok__grid_destroy(&g);
}

static void test_leave(void **state)
{
    (void)state;
    hamok_grid *g = mk(4, 1, 0);
    hamok_member ms[2] = {{id(1), HAMOK_MEMBER_VOTER, ""}, {id(4), HAMOK_MEMBER_VOTER, ""}};
    hamok_grid_view v = {.is_member = true,
                         .has_leader = true,
                         .leader = id(1),
                         .members = ms,
                         .n_members = 2,
                         .committed = ms,
                         .n_committed = 2};
    hamok_grid_out out;
    hamok__grid_leave(g, 0);
    hamok__grid_tick(g, 0, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_LEAVE), 1);
    assert_false(hamok__grid_left(g));
    /* The leader answers with a committed configuration without us. */
    hamok_msg s = {.type = HAMOK_MSG_ENDPOINT_STATES, .src = id(1), .dst = id(4)};
    s.u.endpoint_states.has_leader = true;
    s.u.endpoint_states.leader = id(1);
    s.u.endpoint_states.members = ms;
    s.u.endpoint_states.n_members = 1;
    hamok__grid_receive(g, 10, &s, &v, &out);
    assert_true(hamok__grid_left(g));

    /* Leader side: LEAVE from a member queues its removal; from a
     * non-member it answers with the committed configuration. */
    hamok_grid *l = mk(1, 1, 0);
    hamok_grid_view lv = {.is_member = true,
                          .is_leader = true,
                          .has_leader = true,
                          .leader = id(1),
                          .members = ms,
                          .n_members = 2,
                          .committed = ms,
                          .n_committed = 2};
    hamok_msg lm = {.type = HAMOK_MSG_LEAVE, .src = id(4), .dst = id(1)};
    lm.u.join.endpoint = "";
    hamok__grid_receive(l, 0, &lm, &lv, &out);
    hamok_grid_change c;
    assert_true(hamok__grid_next_change(l, 1, &lv, &c));
    assert_false(c.add);
    lv.n_members = 1;
    lv.n_committed = 1;
    hamok__grid_receive(l, 2, &lm, &lv, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_ENDPOINT_STATES), 1);
    hamok__grid_destroy(&l);
    hamok__grid_destroy(&g);
}

static void test_removed_member_rejoins(void **state)
{
    (void)state;
    hamok_grid *g = mk(4, 1, 0);
    hamok_member mine[2] = {{id(1), HAMOK_MEMBER_VOTER, ""}, {id(4), HAMOK_MEMBER_VOTER, ""}};
    hamok_grid_view v = {.is_member = true,
                         .has_leader = false,
                         .term = 5,
                         .members = mine,
                         .n_members = 2,
                         .committed = mine,
                         .n_committed = 2};
    hamok_grid_out out;
    hamok__grid_join(g, 0);
    /* Member without a leader: says HELLO. */
    hamok__grid_tick(g, 0, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_HELLO), 1);
    hamok_member theirs[1] = {{id(1), HAMOK_MEMBER_VOTER, ""}};
    hamok_msg s = {.type = HAMOK_MSG_ENDPOINT_STATES, .src = id(1), .dst = id(4)};
    s.u.endpoint_states.term = 4; /* older than ours: ignored */
    s.u.endpoint_states.has_leader = true;
    s.u.endpoint_states.leader = id(1);
    s.u.endpoint_states.members = theirs;
    s.u.endpoint_states.n_members = 1;
    hamok__grid_receive(g, 5, &s, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_JOIN), 0);
    s.u.endpoint_states.term = 6;
    hamok__grid_receive(g, 6, &s, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_JOIN), 1);
    hamok__grid_destroy(&g);
}

/* A member back on another address than the configuration records asks the
 * leader to record the new one (a JOIN with it); the leader turns that into
 * a change of an existing member, and nothing more once recorded. */
static void test_moved_member_records_endpoint(void **state)
{
    (void)state;
    hamok_grid *g = mk(2, 1, 0);
    hamok_member ms[2] = {{id(1), HAMOK_MEMBER_VOTER, "tcp://one"},
                          {id(2), HAMOK_MEMBER_VOTER, "tcp://old-address"}};
    hamok_grid_view v = {.is_member = true,
                         .has_leader = true,
                         .leader = id(1),
                         .term = 3,
                         .members = ms,
                         .n_members = 2,
                         .committed = ms,
                         .n_committed = 2};
    hamok_grid_out out;
    hamok__grid_join(g, 0);
    hamok__grid_tick(g, 0, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_JOIN), 1);
    assert_memory_equal(out.msgs[0].dst.b, id(1).b, HAMOK_ID_LEN);
    assert_string_equal(out.msgs[0].u.join.endpoint, "tcp://self");
    assert_true(out.next_deadline_ms <= 100); /* asks again until recorded */
    /* Recorded: quiet. */
    ms[1].endpoint = "tcp://self";
    hamok__grid_tick(g, 200, &v, &out);
    assert_int_equal(count_type(&out, HAMOK_MSG_JOIN), 0);
    hamok__grid_destroy(&g);

    /* The leader's side. */
    hamok_grid *l = mk(1, 1, 0);
    ms[1].endpoint = "tcp://old-address";
    v.is_leader = true;
    hamok_msg j = {.type = HAMOK_MSG_JOIN, .src = id(2), .dst = id(1)};
    j.u.join.endpoint = "tcp://new-address";
    hamok__grid_receive(l, 1, &j, &v, &out);
    hamok_grid_change c;
    assert_true(hamok__grid_next_change(l, 2, &v, &c));
    assert_true(c.add);
    assert_memory_equal(c.id.b, id(2).b, HAMOK_ID_LEN);
    assert_string_equal(c.endpoint, "tcp://new-address");
    ms[1].endpoint = "tcp://new-address"; /* committed */
    assert_false(hamok__grid_next_change(l, 3, &v, &c));
    /* A member's JOIN at its recorded endpoint changes nothing. */
    hamok__grid_receive(l, 4, &j, &v, &out);
    assert_false(hamok__grid_next_change(l, 5, &v, &c));
    hamok__grid_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_invalid),
        cmocka_unit_test(test_founds_alone_after_window),
        cmocka_unit_test(test_smallest_founds_with_expect),
        cmocka_unit_test(test_joins_known_leader),
        cmocka_unit_test(test_leader_turns_joins_into_changes),
        cmocka_unit_test(test_silent_member_removed),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_removed_member_rejoins),
        cmocka_unit_test(test_moved_member_records_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
