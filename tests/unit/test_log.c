/* Unit tests of the in-memory Raft log (src/raft/log.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raft/log.h"

static void append_terms(hamok_log *l, const uint64_t *terms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hamok_entry e = {0};
        e.type = HAMOK_ENTRY_COMMAND;
        uint8_t byte = (uint8_t)i;
        e.data = &byte;
        e.len = 1;
        assert_int_equal(hamok__log_append_copy(l, &e, terms[i]), HAMOK_OK);
    }
}

static void empty_log_has_sentinel(void **state)
{
    (void)state;
    hamok_log l;
    hamok__log_init(&l);
    uint64_t t = 99;
    assert_int_equal(hamok__log_first(&l), 1);
    assert_int_equal(hamok__log_last(&l), 0);
    assert_true(hamok__log_term(&l, 0, &t));
    assert_int_equal(t, 0);
    assert_false(hamok__log_term(&l, 1, &t));
    assert_null(hamok__log_get(&l, 0));
    assert_null(hamok__log_get(&l, 1));
    assert_int_equal(hamok__log_last_term(&l), 0);
    hamok__log_free(&l);
}

static void append_get_truncate(void **state)
{
    (void)state;
    hamok_log l;
    hamok__log_init(&l);
    const uint64_t terms[] = {1, 1, 2, 2, 2, 5, 7};
    append_terms(&l, terms, 7);
    assert_int_equal(hamok__log_last(&l), 7);
    assert_int_equal(hamok__log_last_term(&l), 7);
    for (uint64_t i = 1; i <= 7; i++) {
        uint64_t t;
        assert_true(hamok__log_term(&l, i, &t));
        assert_int_equal(t, terms[i - 1]);
        const hamok_entry *e = hamok__log_get(&l, i);
        assert_non_null(e);
        assert_int_equal(e->data[0], (uint8_t)(i - 1));
    }
    hamok__log_truncate(&l, 9); /* beyond the end: no-op */
    assert_int_equal(hamok__log_last(&l), 7);
    hamok__log_truncate(&l, 4);
    assert_int_equal(hamok__log_last(&l), 3);
    assert_int_equal(hamok__log_last_term(&l), 2);
    hamok__log_truncate(&l, 0); /* clamps to the first index */
    assert_int_equal(hamok__log_last(&l), 0);
    hamok__log_free(&l);
}

static void append_take_steals_data(void **state)
{
    (void)state;
    hamok_log l;
    hamok__log_init(&l);
    hamok_entry e = {0};
    e.type = HAMOK_ENTRY_NOOP;
    e.term = 3;
    assert_int_equal(hamok__log_append_take(&l, &e), HAMOK_OK); /* NULL data is fine */
    assert_null(e.data);
    assert_non_null(hamok__log_get(&l, 1)->data);
    hamok__log_free(&l);
}

static void last_with_term_at_most(void **state)
{
    (void)state;
    hamok_log l;
    hamok__log_init(&l);
    const uint64_t terms[] = {1, 1, 2, 2, 2, 5, 7};
    append_terms(&l, terms, 7);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 0), 0);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 1), 2);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 2), 5);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 4), 5);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 6), 6);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 7, 100), 7);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 0, 4, 100), 4);
    assert_int_equal(hamok__log_last_with_term_at_most(&l, 3, 7, 1), 2); /* none in range */
    hamok__log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_log_has_sentinel),
        cmocka_unit_test(append_get_truncate),
        cmocka_unit_test(append_take_steals_data),
        cmocka_unit_test(last_with_term_at_most),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
