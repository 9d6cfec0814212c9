/* Unit tests of the exactly-once session table (src/collections/session.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "collections/session.h"
#include "util/crc32c.h"

static hamok_id C1;
static hamok_id C2;
static hamok_id C3;

static int setup(void **state)
{
    (void)state;
    C1 = hamok__id_from_u64(1);
    C2 = hamok__id_from_u64(2);
    C3 = hamok__id_from_u64(3);
    return 0;
}

static void record_str(hamok_sessions *s, const hamok_id *c, uint64_t seq, const char *r)
{
    assert_int_equal(hamok__sessions_record(s, c, seq, r, strlen(r)), HAMOK_OK);
}

static void expect_dup(hamok_sessions *s, const hamok_id *c, uint64_t seq, const char *r)
{
    const uint8_t *res = NULL;
    size_t len = 0;
    assert_int_equal(hamok__sessions_check(s, c, seq, &res, &len), HAMOK_SESSION_DUPLICATE);
    assert_int_equal(len, strlen(r));
    assert_memory_equal(res, r, len);
}

/* Thesis §6.3: a retried command is answered with the original result. */
static void duplicates_answered_with_original_result(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 8), HAMOK_OK);
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_NEW);
    record_str(s, &C1, 1, "old=none");
    record_str(s, &C1, 2, "old=a");
    expect_dup(s, &C1, 1, "old=none");
    expect_dup(s, &C1, 2, "old=a");
    assert_int_equal(hamok__sessions_check(s, &C1, 3, NULL, NULL), HAMOK_SESSION_NEW);
    /* another client's numbers are its own */
    assert_int_equal(hamok__sessions_check(s, &C2, 1, NULL, NULL), HAMOK_SESSION_NEW);
    /* no session: nil client or seq 0 */
    hamok_id nil = {0};
    assert_int_equal(hamok__sessions_check(s, &nil, 1, NULL, NULL), HAMOK_SESSION_NEW);
    assert_int_equal(hamok__sessions_check(s, &C1, 0, NULL, NULL), HAMOK_SESSION_NEW);
    record_str(s, &C1, 0, "ignored");
    assert_int_equal(hamok__sessions_count(s), 1);
    hamok__sessions_destroy(&s);
    assert_null(s);
}

/* Pipelined proposals and retries arrive out of order: a number inside the
 * window that was never recorded is new; one older than the window expired. */
static void out_of_order_and_window(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 4), HAMOK_OK);
    record_str(s, &C1, 5, "five");
    assert_int_equal(hamok__sessions_check(s, &C1, 3, NULL, NULL), HAMOK_SESSION_NEW);
    record_str(s, &C1, 3, "three");
    expect_dup(s, &C1, 3, "three");
    expect_dup(s, &C1, 5, "five");
    record_str(s, &C1, 9, "nine"); /* window is 6..9 now */
    assert_int_equal(hamok__sessions_check(s, &C1, 5, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(s, &C1, 3, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(s, &C1, 6, NULL, NULL), HAMOK_SESSION_NEW);
    expect_dup(s, &C1, 9, "nine");
    record_str(s, &C1, 1, "too old"); /* ignored */
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    hamok__sessions_destroy(&s);
}

static void departed_peers_expire(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 0), HAMOK_OK);
    record_str(s, &C1, 1, "a");
    record_str(s, &C2, 1, "b");
    hamok_member m = {0};
    m.id = C2;
    m.role = HAMOK_MEMBER_VOTER;
    assert_int_equal(hamok__sessions_expire(s, &m, 1), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(s), 1);
    assert_int_equal(hamok__sessions_departed(s), 1);
    /* C1's result is gone, and so a retry of its command 1 is EXPIRED, not
     * new: it was applied once already (regression: it was applied again). */
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_reserve(s, &C1, 1, 8), HAMOK_OK);
    record_str(s, &C1, 1, "again"); /* ignored */
    assert_int_equal(hamok__sessions_count(s), 1);
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    expect_dup(s, &C2, 1, "b");
    /* A later number starts a session, which keeps the floor. */
    assert_int_equal(hamok__sessions_check(s, &C1, 2, NULL, NULL), HAMOK_SESSION_NEW);
    record_str(s, &C1, 2, "c");
    assert_int_equal(hamok__sessions_count(s), 2);
    assert_int_equal(hamok__sessions_departed(s), 0);
    expect_dup(s, &C1, 2, "c");
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    /* Dropped again: the floor moves up to 2. */
    assert_int_equal(hamok__sessions_expire(s, &m, 1), HAMOK_OK);
    assert_int_equal(hamok__sessions_check(s, &C1, 2, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(s, &C1, 3, NULL, NULL), HAMOK_SESSION_NEW);
    /* A session that never recorded anything leaves nothing behind. */
    assert_int_equal(hamok__sessions_reserve(s, &C3, 4, 8), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(s), 2);
    assert_int_equal(hamok__sessions_expire(s, &m, 1), HAMOK_OK);
    assert_int_equal(hamok__sessions_departed(s), 1);
    assert_int_equal(hamok__sessions_check(s, &C3, 1, NULL, NULL), HAMOK_SESSION_NEW);
    hamok__sessions_destroy(&s);
}

/* Departed clients survive snapshots, in a canonical order; the form
 * before them ("HSE1") is still read. */
static void departed_in_snapshots(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 8), HAMOK_OK);
    record_str(s, &C3, 9, "x");
    record_str(s, &C1, 4, "y");
    record_str(s, &C2, 2, "z");
    hamok_member m = {0};
    m.id = C2;
    assert_int_equal(hamok__sessions_expire(s, &m, 1), HAMOK_OK);
    record_str(s, &C1, 6, "w"); /* back, with floor 4 */
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(s, &b), HAMOK_OK);
    hamok_sessions *t;
    assert_int_equal(hamok__sessions_new(&t, 8), HAMOK_OK);
    assert_int_equal(hamok__sessions_restore(t, b.data, b.len), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(t), 2);
    assert_int_equal(hamok__sessions_departed(t), 1);
    assert_int_equal(hamok__sessions_check(t, &C3, 9, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(t, &C3, 10, NULL, NULL), HAMOK_SESSION_NEW);
    assert_int_equal(hamok__sessions_check(t, &C1, 4, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(t, &C1, 5, NULL, NULL), HAMOK_SESSION_NEW);
    expect_dup(t, &C1, 6, "w");
    expect_dup(t, &C2, 2, "z");
    hamok_buf b2 = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(t, &b2), HAMOK_OK);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(hamok__sessions_restore(t, b.data, n), HAMOK_ERR_CORRUPT);
    }
    hamok__buf_free(&b);
    hamok__buf_free(&b2);

    /* HSE1: window 8, one session (C2, max 2, one slot: seq 2 "ok"). */
    hamok_buf v1 = HAMOK_BUF_INIT;
    const uint8_t head[] = {'H', 'S', 'E', '1', 8, 0, 0, 0, 1, 0, 0, 0};
    hamok__buf_append(&v1, head, sizeof head);
    hamok__buf_append(&v1, C2.b, HAMOK_ID_LEN);
    const uint8_t rest[] = {2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,   2,
                            0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'o', 'k'};
    hamok__buf_append(&v1, rest, sizeof rest);
    uint32_t crc = hamok__crc32c(v1.data, v1.len);
    const uint8_t c4[] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16),
                          (uint8_t)(crc >> 24)};
    hamok__buf_append(&v1, c4, 4);
    assert_int_equal(hamok__sessions_restore(t, v1.data, v1.len), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(t), 1);
    assert_int_equal(hamok__sessions_departed(t), 0);
    expect_dup(t, &C2, 2, "ok");
    assert_int_equal(hamok__sessions_check(t, &C3, 1, NULL, NULL), HAMOK_SESSION_NEW);
    hamok__buf_free(&v1);
    hamok__sessions_destroy(&s);
    hamok__sessions_destroy(&t);
}

/* The table survives snapshots; a damaged or truncated snapshot is refused
 * and leaves the table untouched. */
static void snapshot_round_trip_and_hostile_input(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 16), HAMOK_OK);
    for (uint64_t q = 1; q <= 20; q++) {
        char r[16];
        snprintf(r, sizeof r, "r%u", (unsigned)q);
        record_str(s, &C1, q, r);
    }
    record_str(s, &C2, 7, "");
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(s, &b), HAMOK_OK);

    hamok_sessions *t;
    assert_int_equal(hamok__sessions_new(&t, 2), HAMOK_OK);
    record_str(t, &C2, 1, "before");
    assert_int_equal(hamok__sessions_restore(t, b.data, b.len), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(t), 2);
    expect_dup(t, &C1, 20, "r20");
    expect_dup(t, &C1, 5, "r5");
    assert_int_equal(hamok__sessions_check(t, &C1, 4, NULL, NULL), HAMOK_SESSION_EXPIRED);
    expect_dup(t, &C2, 7, "");
    assert_int_equal(hamok__sessions_check(t, &C2, 1, NULL, NULL), HAMOK_SESSION_NEW);

    hamok_buf b2 = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(t, &b2), HAMOK_OK);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);

    /* every prefix, and every single flipped bit, is refused */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(hamok__sessions_restore(t, b.data, n), HAMOK_ERR_CORRUPT);
    }
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(hamok__sessions_restore(t, b.data, b.len), HAMOK_ERR_CORRUPT);
            b.data[i] ^= (uint8_t)(1u << bit);
        }
    }
    expect_dup(t, &C1, 20, "r20"); /* untouched by the failures */
    assert_int_equal(hamok__sessions_restore(t, NULL, 0), HAMOK_ERR_CORRUPT);
    hamok__buf_free(&b);
    hamok__buf_free(&b2);
    hamok__sessions_destroy(&s);
    hamok__sessions_destroy(&t);
}

static void bad_window(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, HAMOK_SESSION_MAX_WINDOW + 1), HAMOK_ERR_INVALID);
    assert_null(s);
    hamok__sessions_destroy(NULL);
}

/* A number that jumps ahead leaves older slots behind the window without
 * overwriting them all: they are stale, not snapshotted, and the snapshot
 * restores (regression: the fuzz_command target found restore refusing it). */
static void stale_slots_not_snapshotted(void **state)
{
    (void)state;
    hamok_sessions *s;
    assert_int_equal(hamok__sessions_new(&s, 4), HAMOK_OK);
    record_str(s, &C1, 1, "one");
    record_str(s, &C1, 2, "two");
    record_str(s, &C1, 6, "six"); /* slot of 2 reused; slot of 1 now stale */
    assert_int_equal(hamok__sessions_check(s, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(s, &b), HAMOK_OK);
    hamok_sessions *t;
    assert_int_equal(hamok__sessions_new(&t, 4), HAMOK_OK);
    assert_int_equal(hamok__sessions_restore(t, b.data, b.len), HAMOK_OK);
    expect_dup(t, &C1, 6, "six");
    assert_int_equal(hamok__sessions_check(t, &C1, 1, NULL, NULL), HAMOK_SESSION_EXPIRED);
    assert_int_equal(hamok__sessions_check(t, &C1, 3, NULL, NULL), HAMOK_SESSION_NEW);
    /* Reserve: the next record of that size cannot fail. */
    assert_int_equal(hamok__sessions_reserve(t, &C2, 1, 5), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(t), 2);
    assert_int_equal(hamok__sessions_check(t, &C2, 1, NULL, NULL), HAMOK_SESSION_NEW);
    record_str(t, &C2, 1, "fives");
    expect_dup(t, &C2, 1, "fives");
    hamok_id nil = {0};
    assert_int_equal(hamok__sessions_reserve(t, &nil, 1, 5), HAMOK_OK);
    assert_int_equal(hamok__sessions_reserve(t, &C2, 0, 5), HAMOK_OK);
    assert_int_equal(hamok__sessions_count(t), 2);
    hamok__buf_free(&b);
    hamok__sessions_destroy(&s);
    hamok__sessions_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(duplicates_answered_with_original_result),
        cmocka_unit_test(out_of_order_and_window),
        cmocka_unit_test(departed_peers_expire),
        cmocka_unit_test(departed_in_snapshots),
        cmocka_unit_test(snapshot_round_trip_and_hostile_input),
        cmocka_unit_test(bad_window),
        cmocka_unit_test(stale_slots_not_snapshotted),
    };
    return cmocka_run_group_tests_name("session", tests, setup, NULL);
}
