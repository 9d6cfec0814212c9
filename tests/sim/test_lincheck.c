/* The history checkers of tests/lib/lincheck.h on hand-written histories:
 * linearizable ones pass, non-linearizable ones are caught (with the key
 * and the operation reported); random histories built from a sequential
 * run pass, and each stops passing once one output is falsified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lincheck.h"
#include "util/prng.h"

#define INF 0 /* ret of an operation of unknown outcome (ignored) */

/* op(key, kind, value, expected, out, call, ret); ret INF = unknown. */
static hamok_lin_op op(uint64_t key, uint8_t kind, int64_t value, int64_t expected, int64_t out,
                       uint64_t call, uint64_t ret)
{
    static uint64_t next_id = 1;
    hamok_lin_op o;
    memset(&o, 0, sizeof o);
    o.key = key;
    o.kind = kind;
    o.value = value;
    o.expected = expected;
    o.out = out;
    o.call = call;
    o.ret = ret;
    o.known = ret != INF;
    o.id = next_id++;
    return o;
}

#define W(k, v, out, c, r)      op(k, HAMOK_LIN_SET, v, 0, out, c, r)
#define R(k, out, c, r)         op(k, HAMOK_LIN_READ, 0, 0, out, c, r)
#define CAS(k, e, v, out, c, r) op(k, HAMOK_LIN_CAS, v, e, out, c, r)

static bool lin(const hamok_lin_op *ops, size_t n, hamok_lin_report *r)
{
    return hamok_lin_check(ops, n, 0, r);
}

static void model_steps(void **state)
{
    (void)state;
    int64_t next = 0;
    hamok_lin_op o = W(1, 5, 0, 1, 2);
    assert_true(hamok_lin_step(&o, 0, &next));
    assert_int_equal(next, 5);
    o.out = 3; /* SET returns the old value */
    assert_false(hamok_lin_step(&o, 0, &next));
    assert_true(hamok_lin_step(&o, 3, &next));
    o = CAS(1, 5, 6, 1, 1, 2);
    assert_true(hamok_lin_step(&o, 5, &next));
    assert_int_equal(next, 6);
    assert_false(hamok_lin_step(&o, 4, &next)); /* would fail: out 0 */
    o = CAS(1, 0, 6, 0, 1, 2);                  /* expecting "absent" never matches */
    assert_true(hamok_lin_step(&o, 0, &next));
    assert_int_equal(next, 0);
    o = op(1, HAMOK_LIN_INSERT, 7, 0, 0, 1, 2);
    assert_true(hamok_lin_step(&o, 0, &next));
    assert_int_equal(next, 7);
    o.out = 9;
    assert_true(hamok_lin_step(&o, 9, &next));
    assert_int_equal(next, 9); /* present: unchanged, returns it */
    o = op(1, HAMOK_LIN_DELETE, 0, 0, 1, 1, 2);
    assert_true(hamok_lin_step(&o, 4, &next));
    assert_int_equal(next, 0);
    assert_false(hamok_lin_step(&o, 0, &next));
    o = op(1, HAMOK_LIN_REMOVE, 0, 0, 4, 1, 2);
    assert_true(hamok_lin_step(&o, 4, &next));
    assert_int_equal(next, 0);
    o = op(1, HAMOK_LIN_REMOVE_IF, 0, 4, 1, 1, 2);
    assert_true(hamok_lin_step(&o, 4, &next));
    assert_int_equal(next, 0);
    assert_false(hamok_lin_step(&o, 3, &next));
    o = op(1, HAMOK_LIN_ADD, 2, 0, 1, 1, 2);
    assert_true(hamok_lin_step(&o, 0, &next));
    assert_int_equal(next, 2);
    assert_false(hamok_lin_step(&o, 2, &next));
    o = op(1, HAMOK_LIN_UPDATE, 8, 0, 1, 1, 2);
    assert_true(hamok_lin_step(&o, 2, &next));
    assert_int_equal(next, 8);
    assert_false(hamok_lin_step(&o, 0, &next));
    o = op(1, HAMOK_LIN_ERASE, 0, 0, 12345, 1, 2); /* output not checked */
    assert_true(hamok_lin_step(&o, 3, &next));
    assert_int_equal(next, 0);
    o = W(1, 5, 77, 1, INF); /* unknown output: any */
    assert_true(hamok_lin_step(&o, 0, &next));
}

static void sequential_and_concurrent_pass(void **state)
{
    (void)state;
    hamok_lin_report r;
    /* Sequential. */
    hamok_lin_op a[] = {R(1, 0, 1, 2),    W(1, 1, 0, 3, 4),       R(1, 1, 5, 6),
                        W(1, 2, 1, 7, 8), CAS(1, 2, 3, 1, 9, 10), R(1, 3, 11, 12)};
    assert_true(lin(a, 6, &r));
    assert_int_equal(r.keys, 1);
    /* Two concurrent writes; reads during them see either, in an order that
     * one interleaving explains. */
    hamok_lin_op b[] = {W(1, 1, 0, 1, 10), W(1, 2, 1, 2, 11), R(1, 1, 3, 4), R(1, 2, 5, 6)};
    assert_true(lin(b, 4, &r)); /* W1, read, W2 (which saw 1), read */
    /* The same reads the other way round: W2 saw 1, so W1 came first and 1
     * cannot be read after 2. */
    hamok_lin_op b2[] = {W(1, 1, 0, 1, 10), W(1, 2, 1, 2, 11), R(1, 2, 3, 4), R(1, 1, 5, 6)};
    assert_false(lin(b2, 4, &r));
    /* A read concurrent with a write may see the old value. */
    hamok_lin_op c[] = {W(1, 1, 0, 1, 10), R(1, 0, 2, 3)};
    assert_true(lin(c, 2, &r));
}

static void stale_read_caught(void **state)
{
    (void)state;
    hamok_lin_report r;
    /* The write completed before the read started: reading the old value is
     * a stale read. */
    hamok_lin_op a[] = {W(7, 1, 0, 1, 2), R(7, 0, 3, 4)};
    assert_false(lin(a, 2, &r));
    assert_false(r.budget);
    assert_int_equal(r.key, 7);
    assert_int_equal(r.key_ops, 2);
    assert_int_equal(r.stuck, a[1].id);
    /* New then old: after a read saw 2, a later read sees 1. */
    hamok_lin_op b[] = {W(1, 1, 0, 1, 2), W(1, 2, 1, 3, 4), R(1, 2, 5, 6), R(1, 1, 7, 8)};
    assert_false(lin(b, 4, &r));
}

static void cas_both_win_caught(void **state)
{
    (void)state;
    hamok_lin_report r;
    /* Two concurrent CAS from the same expected value cannot both win. */
    hamok_lin_op a[] = {W(1, 5, 0, 1, 2), CAS(1, 5, 6, 1, 3, 10), CAS(1, 5, 7, 1, 4, 11)};
    assert_false(lin(a, 3, &r));
    /* One wins, the other fails: fine either way round. */
    hamok_lin_op b[] = {W(1, 5, 0, 1, 2), CAS(1, 5, 6, 1, 3, 10), CAS(1, 5, 7, 0, 4, 11),
                        R(1, 6, 12, 13)};
    assert_true(lin(b, 4, &r));
    /* A CAS that failed although nothing else could have changed the value. */
    hamok_lin_op c[] = {W(1, 5, 0, 1, 2), CAS(1, 5, 6, 0, 3, 4)};
    assert_false(lin(c, 2, &r));
}

static void unknown_outcomes(void **state)
{
    (void)state;
    hamok_lin_report r;
    /* A write of unknown outcome may take effect late... */
    hamok_lin_op a[] = {W(1, 3, 0, 1, INF), R(1, 0, 5, 6), R(1, 3, 7, 8)};
    assert_true(lin(a, 3, &r));
    /* ... or never. */
    hamok_lin_op b[] = {W(1, 3, 0, 1, INF), R(1, 0, 5, 6), R(1, 0, 7, 8)};
    assert_true(lin(b, 3, &r));
    /* ... but not before it was invoked. */
    hamok_lin_op c[] = {R(1, 3, 1, 2), W(1, 3, 0, 5, INF)};
    assert_false(lin(c, 2, &r));
    /* ... and only once: 3 cannot come back after 4 replaced it. */
    hamok_lin_op d[] = {W(1, 3, 0, 1, INF), W(1, 4, 0, 2, 3), R(1, 3, 4, 5), R(1, 4, 6, 7),
                        R(1, 3, 8, 9)};
    assert_false(lin(d, 5, &r));
    /* A CAS of unknown outcome that failed at one point may succeed later. */
    hamok_lin_op e[] = {W(1, 5, 0, 1, 2), CAS(1, 5, 6, 0, 3, INF), W(1, 9, 5, 4, 5),
                        W(1, 5, 9, 6, 7), R(1, 6, 8, 9)};
    assert_true(lin(e, 5, &r));
    /* An effect no client asked for (ERASE): known, output unchecked. */
    hamok_lin_op f[] = {W(1, 3, 0, 1, 2), op(1, HAMOK_LIN_ERASE, 0, 0, 0, 3, 4), R(1, 0, 5, 6)};
    assert_true(lin(f, 3, &r));
    hamok_lin_op g[] = {W(1, 3, 0, 1, 2), op(1, HAMOK_LIN_ERASE, 0, 0, 0, 3, 4), R(1, 3, 5, 6)};
    assert_false(lin(g, 3, &r));
}

static void keys_are_independent(void **state)
{
    (void)state;
    hamok_lin_report r;
    hamok_lin_op a[] = {W(1, 1, 0, 1, 2), R(2, 0, 3, 4),  R(1, 1, 5, 6),
                        W(3, 9, 0, 7, 8), R(3, 0, 9, 10), R(2, 0, 11, 12)};
    assert_false(lin(a, 6, &r));
    assert_int_equal(r.key, 3);
    assert_int_equal(r.key_ops, 2);
    /* Values of one key do not leak into another. */
    hamok_lin_op b[] = {W(1, 1, 0, 1, 2), R(2, 1, 3, 4)};
    assert_false(lin(b, 2, &r));
    assert_int_equal(r.key, 2);
}

static void emitter_register(void **state)
{
    (void)state;
    hamok_lin_report r;
    /* subscribe (1 = no metadata), update_metadata CAS, unsubscribe. */
    hamok_lin_op a[] = {op(1, HAMOK_LIN_ADD, 1, 0, 1, 1, 2),
                        op(1, HAMOK_LIN_ADD, 7, 0, 0, 3, 4), /* already subscribed */
                        op(1, HAMOK_LIN_UPDATE, 8, 0, 1, 5, 6),
                        op(1, HAMOK_LIN_CAS, 9, 8, 1, 7, 8),
                        R(1, 9, 9, 10),
                        op(1, HAMOK_LIN_DELETE, 0, 0, 1, 11, 12),
                        op(1, HAMOK_LIN_DELETE, 0, 0, 0, 13, 14),
                        R(1, 0, 15, 16)};
    assert_true(lin(a, 8, &r));
    /* A retried subscribe that was added twice: the second add saw it absent
     * although nothing removed it. */
    hamok_lin_op b[] = {op(1, HAMOK_LIN_ADD, 1, 0, 1, 1, 2), op(1, HAMOK_LIN_ADD, 1, 0, 1, 3, 4)};
    assert_false(lin(b, 2, &r));
}

static void budget_reported(void **state)
{
    (void)state;
    /* Many concurrent writes with unknown outcomes, then reads that no order
     * explains: the search must give up on a tiny budget, and say so. */
    hamok_lin_op ops[40];
    size_t n = 0;
    for (int i = 0; i < 30; i++) {
        ops[n++] = W(1, 100 + i, 0, (uint64_t)(1 + i), INF);
    }
    ops[n++] = R(1, 12345, 100, 101);
    hamok_lin_report r;
    assert_false(hamok_lin_check(ops, n, 50, &r));
    assert_true(r.budget);
    /* With 10 of them the default budget reaches a definite answer. */
    ops[10] = ops[30];
    assert_false(hamok_lin_check(ops, 11, 0, &r));
    assert_false(r.budget);
}

/* Random histories: a sequential run of random operations on 3 keys, each
 * given an interval around its linearization point; some outcomes
 * forgotten. They pass; falsifying one read breaks them. */
static void random_histories(void **state)
{
    (void)state;
    hamok_prng p;
    hamok__prng_seed(&p, 42);
    for (int round = 0; round < 200; round++) {
        size_t n = 30 + (size_t)hamok__prng_below(&p, 40);
        hamok_lin_op *ops = calloc(n, sizeof *ops);
        assert_non_null(ops);
        int64_t st[3] = {0, 0, 0};
        int64_t next_v = 2;
        for (size_t i = 0; i < n; i++) {
            uint64_t key = hamok__prng_below(&p, 3);
            uint8_t kinds[] = {HAMOK_LIN_READ,     HAMOK_LIN_SET,    HAMOK_LIN_CAS,
                               HAMOK_LIN_INSERT,   HAMOK_LIN_DELETE, HAMOK_LIN_REMOVE,
                               HAMOK_LIN_REMOVE_IF};
            hamok_lin_op *o = &ops[i];
            o->key = key;
            o->kind = kinds[hamok__prng_below(&p, sizeof kinds)];
            o->value = next_v++;
            o->expected = hamok__prng_below(&p, 2) ? st[key] : next_v - 2;
            o->known = true;
            o->id = i + 1;
            /* Linearization point 10 * i + 5; interval around it, up to 3
             * neighbours wide on each side. */
            uint64_t pt = 10 * (uint64_t)i + 5;
            o->call = pt - 1 - hamok__prng_below(&p, 30 < pt ? 30 : pt - 1);
            o->ret = pt + 1 + hamok__prng_below(&p, 30);
            int64_t nx;
            o->known = false; /* compute the true output */
            assert_true(hamok_lin_step(o, st[key], &nx));
            o->known = true;
            hamok_lin_op probe = *o;
            /* out: what the step returns */
            for (int64_t cand = 0; cand < next_v + 2; cand++) {
                probe.out = cand;
                int64_t tmp;
                if (hamok_lin_step(&probe, st[key], &tmp)) {
                    o->out = cand;
                    break;
                }
            }
            st[key] = nx;
            if (o->kind != HAMOK_LIN_READ && hamok__prng_below(&p, 6) == 0) {
                o->known = false; /* its client never learned */
            }
        }
        /* Stamps must be distinct: spread calls and rets apart. */
        for (size_t i = 0; i < n; i++) {
            ops[i].call = ops[i].call * 2;
            ops[i].ret = ops[i].ret * 2 + 1;
        }
        hamok_lin_report r;
        assert_true(hamok_lin_check(ops, n, 0, &r));
        /* Falsify the last known read: a value never written. */
        for (size_t i = n; i-- > 0;) {
            if (ops[i].kind == HAMOK_LIN_READ && ops[i].known) {
                ops[i].out = 999999;
                assert_false(hamok_lin_check(ops, n, 0, &r));
                assert_false(r.budget);
                break;
            }
        }
        free(ops);
    }
}

/* ---- queue -------------------------------------------------------------- */

static bool qcheck(hamok_qchk *q, hamok_q_report *r)
{
    bool ok = hamok_qchk_check(q, r);
    hamok_qchk_destroy(&q);
    return ok;
}

static void queue_valid(void **state)
{
    (void)state;
    hamok_qchk *q = hamok_qchk_new();
    uint64_t a[] = {1}, b[] = {2, 3}, c[] = {4};
    hamok_qchk_push(q, 1, a, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_push(q, 2, b, 2, 3, 4, HAMOK_Q_OK);
    hamok_qchk_push(q, 3, c, 1, 5, 0, HAMOK_Q_UNKNOWN); /* took effect, never acked */
    uint64_t p1[] = {1, 2};
    hamok_qchk_pop(q, 10, p1, 2, 2, 6, 7, HAMOK_Q_OK);
    hamok_qchk_pop(q, 11, NULL, 0, 1, 8, 0, HAMOK_Q_UNKNOWN); /* took 3, maybe */
    hamok_qchk_pop(q, 12, NULL, 0, 1, 8, 9, HAMOK_Q_OK);      /* got nothing? fine */
    uint64_t fin[] = {4};
    hamok_qchk_final(q, fin, 1);
    hamok_q_report r;
    assert_true(qcheck(q, &r));
    assert_int_equal(r.acked, 3);
    assert_int_equal(r.popped, 2);
    assert_int_equal(r.left, 1);
    assert_int_equal(r.lost, 1); /* 3: covered by the pop of unknown outcome */
}

static void queue_violations(void **state)
{
    (void)state;
    hamok_q_report r;
    uint64_t one[] = {1}, two[] = {2};
    /* Popped twice. */
    hamok_qchk *q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_pop(q, 2, one, 1, 1, 3, 4, HAMOK_Q_OK);
    hamok_qchk_pop(q, 3, one, 1, 1, 5, 6, HAMOK_Q_OK);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-duplicate");
    /* Popped and still queued. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_pop(q, 2, one, 1, 1, 3, 4, HAMOK_Q_OK);
    hamok_qchk_final(q, one, 1);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-duplicate");
    /* Never pushed. */
    q = hamok_qchk_new();
    hamok_qchk_pop(q, 2, one, 1, 1, 3, 4, HAMOK_Q_OK);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-phantom");
    /* Pushed with no effect, yet popped. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_FAILED);
    hamok_qchk_pop(q, 2, one, 1, 1, 3, 4, HAMOK_Q_OK);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-phantom");
    /* Popped before its push was invoked. */
    q = hamok_qchk_new();
    hamok_qchk_pop(q, 2, one, 1, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_push(q, 1, one, 1, 3, 0, HAMOK_Q_UNKNOWN);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-phantom");
    /* Acknowledged and gone. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_final(q, NULL, 0);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-lost");
    /* ... unless a pop of unknown outcome could have taken it. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_pop(q, 2, NULL, 0, 1, 3, 0, HAMOK_Q_UNKNOWN);
    hamok_qchk_final(q, NULL, 0);
    assert_true(qcheck(q, &r));
    /* FIFO: 1 was acked before 2 was pushed, yet 2 left first. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_push(q, 2, two, 1, 3, 4, HAMOK_Q_OK);
    hamok_qchk_pop(q, 3, two, 1, 1, 5, 6, HAMOK_Q_OK);
    hamok_qchk_final(q, one, 1);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-fifo");
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_push(q, 2, two, 1, 3, 4, HAMOK_Q_OK);
    hamok_qchk_pop(q, 3, two, 1, 1, 5, 6, HAMOK_Q_OK);
    hamok_qchk_pop(q, 4, one, 1, 1, 7, 8, HAMOK_Q_OK);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-fifo");
    /* Concurrent pushes: any order. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 4, HAMOK_Q_OK);
    hamok_qchk_push(q, 2, two, 1, 2, 3, HAMOK_Q_OK);
    uint64_t both[] = {2, 1};
    hamok_qchk_pop(q, 3, both, 2, 2, 5, 6, HAMOK_Q_OK);
    assert_true(qcheck(q, &r));
    /* Final contents out of order. */
    q = hamok_qchk_new();
    hamok_qchk_push(q, 1, one, 1, 1, 2, HAMOK_Q_OK);
    hamok_qchk_push(q, 2, two, 1, 3, 4, HAMOK_Q_OK);
    uint64_t rev[] = {2, 1};
    hamok_qchk_final(q, rev, 2);
    assert_false(qcheck(q, &r));
    assert_string_equal(r.invariant, "queue-fifo");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_steps),       cmocka_unit_test(sequential_and_concurrent_pass),
        cmocka_unit_test(stale_read_caught), cmocka_unit_test(cas_both_win_caught),
        cmocka_unit_test(unknown_outcomes),  cmocka_unit_test(keys_are_independent),
        cmocka_unit_test(emitter_register),  cmocka_unit_test(budget_reported),
        cmocka_unit_test(random_histories),  cmocka_unit_test(queue_valid),
        cmocka_unit_test(queue_violations),
    };
    return cmocka_run_group_tests_name("sim_lincheck", tests, NULL, NULL);
}
