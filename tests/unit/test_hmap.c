/* Unit tests of the insertion-ordered hash table (src/util/hmap.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hamok/hamok.h"
#include "util/hmap.h"
#include "util/prng.h"

static unsigned long g_allocs;
static unsigned long g_fail_at;

static void *t_malloc(void *ud, size_t n)
{
    (void)ud;
    if (++g_allocs == g_fail_at) {
        return NULL;
    }
    return malloc(n);
}

static void *t_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    if (++g_allocs == g_fail_at) {
        return NULL;
    }
    return realloc(p, n);
}

static void t_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static void counting_on(unsigned long fail_at)
{
    static const hamok_allocator a = {t_malloc, t_realloc, t_free, NULL};
    g_allocs = 0;
    g_fail_at = fail_at;
    assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
}

static void counting_off(void)
{
    assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
    g_fail_at = 0;
}

/* Reference vectors of the xxHash specification (XXH64). */
static void xxh64_reference_vectors(void **state)
{
    (void)state;
    assert_true(hamok__hash64("", 0, 0) == UINT64_C(0xEF46DB3751D8E999));
    assert_true(hamok__hash64("a", 1, 0) == UINT64_C(0xD24EC4F1A98C6E5B));
    assert_true(hamok__hash64("abc", 3, 0) == UINT64_C(0x44BC2CF5AD770999));
    assert_true(hamok__hash64("as", 2, 0) == UINT64_C(0x1C330FB2D66BE179));
    assert_true(hamok__hash64("asd", 3, 0) == UINT64_C(0x631C37CE72A97393));
    assert_true(hamok__hash64("asdf", 4, 0) == UINT64_C(0x415872F599CEA71E));
    assert_true(hamok__hash64("", 0, 1) == UINT64_C(0xD5AFBA1336A3BE4B));
    assert_true(hamok__hash64("Call me Ishmael.", 16, 0) == UINT64_C(0x6D04390FC9D61A90));
    const char *t = "Nobody inspects the spammish repetition";
    assert_true(hamok__hash64(t, strlen(t), 0) == UINT64_C(0xFBCEA83C8A378BF1));
    assert_true(hamok__hash64("abc", 3, 1) != hamok__hash64("abc", 3, 0));
}

static void get_set_replace_delete(void **state)
{
    (void)state;
    hamok_hmap m;
    hamok__hmap_init(&m, HAMOK_HMAP_SEED);
    assert_null(hamok__hmap_find(&m, "a", 1));
    assert_false(hamok__hmap_del(&m, "a", 1));
    assert_int_equal(hamok__hmap_set(&m, "a", 1, "1", 1), HAMOK_OK);
    assert_int_equal(hamok__hmap_set(&m, "", 0, "", 0), HAMOK_OK); /* empty key, empty value */
    assert_int_equal(hamok__hmap_set(&m, "b", 1, "22", 2), HAMOK_OK);
    assert_int_equal(hamok__hmap_size(&m), 3);
    hamok_hrec *r = hamok__hmap_find(&m, "", 0);
    assert_non_null(r);
    assert_int_equal(r->klen, 0);
    assert_int_equal(r->vlen, 0);
    r = hamok__hmap_find(&m, "b", 1);
    assert_non_null(r);
    assert_memory_equal(hamok__hrec_cvalue(r), "22", 2);
    /* Replace returns the old record and keeps the position. */
    hamok_hrec *nr = hamok__hrec_new("a", 1, "333", 3);
    hamok_hrec *old = NULL;
    assert_int_equal(hamok__hmap_put(&m, nr, &old), HAMOK_OK);
    assert_non_null(old);
    assert_memory_equal(hamok__hrec_cvalue(old), "1", 1);
    hamok__hrec_free(old);
    assert_int_equal(hamok__hmap_size(&m), 3);
    size_t cur = 0;
    const char *order[] = {"a", "", "b"};
    for (int i = 0; i < 3; i++) {
        assert_true(hamok__hmap_next(&m, &cur, &r));
        assert_int_equal(r->klen, strlen(order[i]));
        assert_memory_equal(hamok__hrec_key(r), order[i], r->klen);
    }
    assert_false(hamok__hmap_next(&m, &cur, &r));
    /* Prefix keys are different keys. */
    assert_null(hamok__hmap_find(&m, "bb", 2));
    assert_ptr_equal(hamok__hmap_find(&m, "b", 0), hamok__hmap_find(&m, "", 0));
    /* Delete, reinsert: goes to the end. */
    assert_true(hamok__hmap_del(&m, "a", 1));
    assert_null(hamok__hmap_find(&m, "a", 1));
    assert_int_equal(hamok__hmap_set(&m, "a", 1, "4", 1), HAMOK_OK);
    cur = 0;
    const char *order2[] = {"", "b", "a"};
    for (int i = 0; i < 3; i++) {
        assert_true(hamok__hmap_next(&m, &cur, &r));
        assert_int_equal(r->klen, strlen(order2[i]));
        assert_memory_equal(hamok__hrec_key(r), order2[i], r->klen);
    }
    assert_false(hamok__hmap_next(&m, &cur, &r));
    hamok__hmap_clear(&m);
    assert_int_equal(hamok__hmap_size(&m), 0);
    assert_null(hamok__hmap_find(&m, "a", 1));
    /* Usable again after clear. */
    assert_int_equal(hamok__hmap_set(&m, "z", 1, "z", 1), HAMOK_OK);
    hamok__hmap_clear(&m);
}

/* Reference model: keys in insertion order. */
typedef struct model {
    uint32_t keys[4096];
    uint32_t vals[4096];
    size_t n;
} model;

static long model_find(const model *md, uint32_t k)
{
    for (size_t i = 0; i < md->n; i++) {
        if (md->keys[i] == k) {
            return (long)i;
        }
    }
    return -1;
}

static void check_against(const hamok_hmap *m, const model *md)
{
    assert_int_equal(hamok__hmap_size(m), md->n);
    size_t cur = 0;
    hamok_hrec *r = NULL;
    for (size_t i = 0; i < md->n; i++) {
        assert_true(hamok__hmap_next(m, &cur, &r));
        assert_int_equal(r->klen, 4);
        assert_int_equal(r->vlen, md->vals[i] % 9);
        assert_memory_equal(hamok__hrec_key(r), &md->keys[i], 4);
        for (uint32_t b = 0; b < r->vlen; b++) {
            assert_int_equal(hamok__hrec_cvalue(r)[b], (uint8_t)(md->vals[i] + b));
        }
        assert_ptr_equal(hamok__hmap_find(m, &md->keys[i], 4), r);
    }
    assert_false(hamok__hmap_next(m, &cur, &r));
}

/* Random inserts, replaces and removals over a small key space (lots of
 * deleted slots, holes, compactions, shrinking and regrowth), compared with
 * the model after every step. */
static void churn_matches_model(void **state)
{
    (void)state;
    static model md;
    md.n = 0;
    hamok_hmap m;
    hamok__hmap_init(&m, 12345);
    hamok_prng rng;
    hamok__prng_seed(&rng, 7);
    for (int step = 0; step < 200000; step++) {
        /* Phases: grow, churn, shrink. */
        int phase = (step / 20000) % 3;
        uint32_t space = phase == 0 ? 4000 : phase == 1 ? 1000 : 4000;
        uint32_t k = (uint32_t)hamok__prng_below(&rng, space);
        uint32_t v = (uint32_t)hamok__prng_next(&rng);
        unsigned op = (unsigned)hamok__prng_below(&rng, 10);
        bool remove = phase == 2 ? op < 7 : op < 3;
        long at = model_find(&md, k);
        if (remove) {
            bool had = hamok__hmap_del(&m, &k, 4);
            assert_int_equal(had, at >= 0);
            if (at >= 0) {
                memmove(&md.keys[at], &md.keys[at + 1], (md.n - (size_t)at - 1) * 4);
                memmove(&md.vals[at], &md.vals[at + 1], (md.n - (size_t)at - 1) * 4);
                md.n--;
            }
        } else {
            uint8_t val[8];
            for (uint32_t b = 0; b < v % 9; b++) {
                val[b] = (uint8_t)(v + b);
            }
            assert_int_equal(hamok__hmap_set(&m, &k, 4, val, v % 9), HAMOK_OK);
            if (at >= 0) {
                md.vals[at] = v;
            } else {
                md.keys[md.n] = k;
                md.vals[md.n++] = v;
            }
        }
        if (op == 9) {
            hamok__hmap_tidy(&m);
        }
        if (step % 97 == 0 || step > 199000) {
            check_against(&m, &md);
        }
        /* Holes never outnumber the table by much: compaction works. */
        assert_true(m.n_ents <= m.cap);
    }
    check_against(&m, &md);
    hamok__hmap_clear(&m);
}

static void growth_to_many_entries(void **state)
{
    (void)state;
    hamok_hmap m;
    hamok__hmap_init(&m, HAMOK_HMAP_SEED);
    const uint32_t n = 300000;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k[16] = {0};
        memcpy(k, &i, 4);
        assert_int_equal(hamok__hmap_set(&m, k, 16, k, 16), HAMOK_OK);
    }
    assert_int_equal(hamok__hmap_size(&m), n);
    size_t cur = 0;
    hamok_hrec *r = NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t k[16] = {0};
        memcpy(k, &i, 4);
        assert_non_null(hamok__hmap_find(&m, k, 16));
        assert_true(hamok__hmap_next(&m, &cur, &r));
        assert_memory_equal(hamok__hrec_key(r), k, 16);
    }
    /* Remove every other one, tidy, still all there in order. */
    for (uint32_t i = 0; i < n; i += 2) {
        uint8_t k[16] = {0};
        memcpy(k, &i, 4);
        hamok_hrec *t = hamok__hmap_take(&m, k, 16);
        assert_non_null(t);
        hamok__hrec_free(t);
    }
    hamok__hmap_tidy(&m);
    assert_int_equal(m.n_ents, n / 2); /* compacted */
    cur = 0;
    for (uint32_t i = 1; i < n; i += 2) {
        uint8_t k[16] = {0};
        memcpy(k, &i, 4);
        assert_true(hamok__hmap_next(&m, &cur, &r));
        assert_memory_equal(hamok__hrec_key(r), k, 16);
    }
    /* Remove nearly all: tidy shrinks the arrays. */
    size_t big_cap = m.cap;
    for (uint32_t i = 1; i < n - 1000; i += 2) {
        uint8_t k[16] = {0};
        memcpy(k, &i, 4);
        assert_true(hamok__hmap_del(&m, k, 16));
    }
    hamok__hmap_tidy(&m);
    assert_true(m.cap < big_cap / 8);
    assert_int_equal(hamok__hmap_size(&m), 500);
    hamok__hmap_clear(&m);
}

/* Removing during an iteration visits every remaining entry once. */
static void take_during_iteration(void **state)
{
    (void)state;
    hamok_hmap m;
    hamok__hmap_init(&m, 1);
    for (uint32_t i = 0; i < 1000; i++) {
        assert_int_equal(hamok__hmap_set(&m, &i, 4, NULL, 0), HAMOK_OK);
    }
    size_t cur = 0, seen = 0;
    hamok_hrec *r = NULL;
    while (hamok__hmap_next(&m, &cur, &r)) {
        uint32_t k;
        memcpy(&k, hamok__hrec_key(r), 4);
        assert_int_equal(k, seen);
        seen++;
        if (k % 3 != 0) {
            hamok__hrec_free(hamok__hmap_take(&m, &k, 4));
        }
    }
    assert_int_equal(seen, 1000);
    assert_int_equal(hamok__hmap_size(&m), 334);
    hamok__hmap_clear(&m);
}

/* After reserve(n), n insertions of new keys allocate nothing (the records
 * are made beforehand); failures leave the table as it was. */
static void reserve_then_put_cannot_fail(void **state)
{
    (void)state;
    hamok_hmap m;
    hamok__hmap_init(&m, 3);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(hamok__hmap_set(&m, &i, 4, &i, 4), HAMOK_OK);
    }
    for (uint32_t i = 0; i < 100; i += 3) {
        assert_true(hamok__hmap_del(&m, &i, 4));
    }
    hamok_hrec *recs[500];
    for (uint32_t i = 0; i < 500; i++) {
        uint32_t k = 1000 + i;
        recs[i] = hamok__hrec_new(&k, 4, &k, 4);
        assert_non_null(recs[i]);
    }
    /* Failing reserve: nothing changes. */
    counting_on(1);
    assert_int_equal(hamok__hmap_reserve(&m, 500), HAMOK_ERR_NOMEM);
    counting_off();
    assert_int_equal(hamok__hmap_size(&m), 66);
    assert_int_equal(hamok__hmap_reserve(&m, 500), HAMOK_OK);
    counting_on(1);
    for (uint32_t i = 0; i < 500; i++) {
        hamok_hrec *old = (hamok_hrec *)1;
        assert_int_equal(hamok__hmap_put(&m, recs[i], &old), HAMOK_OK);
        assert_null(old);
    }
    assert_int_equal(g_allocs, 0);
    counting_off();
    assert_int_equal(hamok__hmap_size(&m), 566);
    /* Failing growth in put: the record stays the caller's. */
    while (m.n_ents < m.cap) {
        uint32_t k = 5000 + (uint32_t)m.n_ents;
        assert_int_equal(hamok__hmap_set(&m, &k, 4, NULL, 0), HAMOK_OK);
    }
    uint32_t k = 99999;
    hamok_hrec *r = hamok__hrec_new(&k, 4, NULL, 0);
    size_t before = hamok__hmap_size(&m);
    counting_on(1);
    assert_int_equal(hamok__hmap_put(&m, r, NULL), HAMOK_ERR_NOMEM);
    counting_off();
    assert_int_equal(hamok__hmap_size(&m), before);
    assert_null(hamok__hmap_find(&m, &k, 4));
    hamok__hrec_free(r);
    assert_int_equal(hamok__hmap_reserve(&m, SIZE_MAX), HAMOK_ERR_TOO_BIG);
    assert_null(hamok__hrec_new("x", (size_t)UINT32_MAX + 1, NULL, 0));
    hamok__hmap_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(xxh64_reference_vectors), cmocka_unit_test(get_set_replace_delete),
        cmocka_unit_test(churn_matches_model),     cmocka_unit_test(growth_to_many_entries),
        cmocka_unit_test(take_during_iteration),   cmocka_unit_test(reserve_then_put_cannot_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
