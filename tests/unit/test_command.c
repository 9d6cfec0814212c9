/* Unit tests of the command codec (src/codec/command.c): every op and shape
 * round-trips; truncations, bit flips and hostile counts are refused cleanly
 * (the sanitizer build checks for leaks and overreads); nothing is allocated
 * before the input has been validated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/command.h"
#include "hamok/hamok.h"
#include "util/prng.h"

/* ------------------------------------------------------------------------- */
/* Counting allocator: how many allocations, and optionally fail the Nth. */

static unsigned long g_allocs;
static unsigned long g_fail_at;

static void *count_malloc(void *ud, size_t n)
{
    (void)ud;
    if (g_fail_at != 0 && ++g_allocs == g_fail_at) {
        return NULL;
    }
    if (g_fail_at == 0) {
        g_allocs++;
    }
    return malloc(n);
}

static void *count_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    if (g_fail_at != 0 && ++g_allocs == g_fail_at) {
        return NULL;
    }
    if (g_fail_at == 0) {
        g_allocs++;
    }
    return realloc(p, n);
}

static void count_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static void counting_on(unsigned long fail_at)
{
    static const hamok_allocator a = {count_malloc, count_realloc, count_free, NULL};
    g_allocs = 0;
    g_fail_at = fail_at;
    assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
}

static void counting_off(void)
{
    assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
    g_fail_at = 0;
}

/* ------------------------------------------------------------------------- */
/* Helpers */

static bool is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void assert_item_eq(const hamok_cmd_item *a, const hamok_cmd_item *b)
{
    assert_true(bytes_eq(a->key, a->key_len, b->key, b->key_len));
    assert_int_equal(a->has_value, b->has_value);
    if (a->has_value) {
        assert_true(bytes_eq(a->value, a->value_len, b->value, b->value_len));
    }
    assert_int_equal(a->has_expected, b->has_expected);
    if (a->has_expected) {
        assert_true(bytes_eq(a->expected, a->expected_len, b->expected, b->expected_len));
    }
}

/* Decoded items: present strings never NULL, absent ones NULL. */
static void assert_item_pointers(const hamok_cmd_item *it)
{
    assert_non_null(it->key);
    assert_true(it->has_value ? it->value != NULL : it->value == NULL && it->value_len == 0);
    assert_true(it->has_expected ? it->expected != NULL
                                 : it->expected == NULL && it->expected_len == 0);
}

static void assert_cmd_eq(const hamok_cmd *a, const hamok_cmd *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->op, b->op);
    assert_true(bytes_eq(a->name, a->name_len, b->name, b->name_len));
    assert_true(a->arg == b->arg);
    assert_int_equal(a->n_items, b->n_items);
    for (size_t i = 0; i < a->n_items; i++) {
        assert_item_eq(&a->items[i], &b->items[i]);
    }
}

/* Encode, decode, compare; encode the decoded command again: same bytes. */
static void roundtrip_cmd(const hamok_cmd *c)
{
    hamok_buf b = HAMOK_BUF_INIT, b2 = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(c, &b), HAMOK_OK);
    hamok_cmd d;
    assert_int_equal(hamok__cmd_decode(b.data, b.len, &d), HAMOK_OK);
    assert_cmd_eq(c, &d);
    for (size_t i = 0; i < d.n_items; i++) {
        assert_item_pointers(&d.items[i]);
    }
    assert_int_equal(hamok__cmd_encode(&d, &b2), HAMOK_OK);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    hamok__cmd_clear(&d);
    assert_true(is_zero(&d, sizeof d));
    hamok__buf_free(&b);
    hamok__buf_free(&b2);
}

static void roundtrip_result(const hamok_cmd_result *r)
{
    hamok_buf b = HAMOK_BUF_INIT, b2 = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_result_encode(r, &b), HAMOK_OK);
    hamok_cmd_result d;
    assert_int_equal(hamok__cmd_result_decode(b.data, b.len, &d), HAMOK_OK);
    assert_int_equal(d.status, r->status);
    assert_int_equal(d.flag, r->flag);
    assert_int_equal(d.n_items, r->n_items);
    for (size_t i = 0; i < d.n_items; i++) {
        assert_item_eq(&r->items[i], &d.items[i]);
        assert_item_pointers(&d.items[i]);
    }
    assert_int_equal(hamok__cmd_result_encode(&d, &b2), HAMOK_OK);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    hamok__cmd_result_clear(&d);
    assert_true(is_zero(&d, sizeof d));
    hamok__buf_free(&b);
    hamok__buf_free(&b2);
}

static uint8_t K1[] = "key-1";
static uint8_t V1[] = "value-1";
static uint8_t E1[] = "expected";

static hamok_cmd_item item(uint8_t *k, size_t kl, uint8_t *v, size_t vl, bool hv, uint8_t *e,
                           size_t el, bool he)
{
    hamok_cmd_item it = {k, kl, hv, v, vl, he, e, el};
    return it;
}

static hamok_cmd make_cmd(uint8_t kind, uint8_t op, hamok_cmd_item *items, size_t n)
{
    static uint8_t name[] = "orders";
    hamok_cmd c = {kind, op, name, 6, 0, items, n};
    return c;
}

/* ------------------------------------------------------------------------- */
/* Round trips */

static void every_op_of_every_kind_roundtrips(void **state)
{
    (void)state;
    hamok_cmd_item items[4] = {
        item(K1, 5, V1, 7, true, NULL, 0, false),
        item(K1, 0, V1, 0, true, NULL, 0, false), /* empty key, empty value: values */
        item(K1, 5, NULL, 0, false, E1, 8, true),
        item(K1, 3, V1, 7, true, E1, 0, true),
    };
    uint64_t args[] = {0,     1,     127,         128,          255,       256,
                       65535, 65536, 0xffffffffu, 0x100000000u, UINT64_MAX};
    for (uint8_t kind = 1; kind <= HAMOK_KIND_MAX_; kind++) {
        for (uint8_t op = 1; op <= HAMOK_OP_MAX_; op++) {
            for (size_t n = 0; n <= 4; n++) {
                hamok_cmd c = make_cmd(kind, op, items, n);
                c.arg = args[(kind * 13u + op + n) % (sizeof args / sizeof args[0])];
                roundtrip_cmd(&c);
            }
        }
    }
    for (size_t a = 0; a < sizeof args / sizeof args[0]; a++) {
        hamok_cmd c = make_cmd(HAMOK_KIND_QUEUE, HAMOK_OP_POP, NULL, 0);
        c.arg = args[a];
        roundtrip_cmd(&c);
    }
}

static void lengths_of_every_width_roundtrip(void **state)
{
    (void)state;
    size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 300000};
    uint8_t *big = malloc(300000);
    assert_non_null(big);
    for (size_t i = 0; i < 300000; i++) {
        big[i] = (uint8_t)(i * 7u);
    }
    for (size_t a = 0; a < sizeof lens / sizeof lens[0]; a++) {
        for (size_t b = 0; b < sizeof lens / sizeof lens[0]; b += 2) {
            hamok_cmd_item it = item(big, lens[a], big + 1, lens[b] > 0 ? lens[b] - 1 : 0, true,
                                     big + 2, lens[a] > 2 ? lens[a] - 2 : 0, true);
            hamok_cmd c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_UPDATE_IF, &it, 1);
            roundtrip_cmd(&c);
            hamok_cmd_result r = {HAMOK_OK, true, &it, 1};
            roundtrip_result(&r);
        }
    }
    /* Names of 1 and 255 bytes. */
    hamok_cmd c = make_cmd(HAMOK_KIND_RECORD, HAMOK_OP_CLEAR, NULL, 0);
    c.name = big;
    c.name_len = 1;
    roundtrip_cmd(&c);
    c.name_len = HAMOK_NAME_MAX;
    roundtrip_cmd(&c);
    free(big);
}

/* Item counts that need array16 and array32 headers, up to the limit. */
static void item_counts_of_every_width_roundtrip(void **state)
{
    (void)state;
    size_t counts[] = {15, 16, 65535, 65536};
    hamok_cmd_item *items = calloc(65536, sizeof *items);
    uint8_t *keys = malloc(65536 * 4);
    assert_non_null(items);
    assert_non_null(keys);
    for (size_t i = 0; i < 65536; i++) {
        memcpy(keys + i * 4, &i, 4);
        items[i] = item(keys + i * 4, 4, keys + i * 4, i % 5, (i & 1) != 0, NULL, 0, false);
    }
    for (size_t a = 0; a < sizeof counts / sizeof counts[0]; a++) {
        hamok_cmd c = make_cmd(HAMOK_KIND_QUEUE, HAMOK_OP_PUSH, items, counts[a]);
        roundtrip_cmd(&c);
        hamok_cmd_result r = {HAMOK_ERR_WRONG_KIND, false, items, counts[a]};
        roundtrip_result(&r);
    }
    free(items);
    free(keys);
}

static void results_roundtrip(void **state)
{
    (void)state;
    hamok_cmd_item items[3] = {
        item(K1, 5, V1, 7, true, NULL, 0, false),
        item(K1, 5, NULL, 0, false, NULL, 0, false),
        item(K1, 0, V1, 0, true, NULL, 0, false),
    };
    uint32_t statuses[] = {HAMOK_OK, HAMOK_ERR_INVALID, HAMOK_ERR_EXPIRED, 1000, UINT32_MAX};
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
        for (size_t n = 0; n <= 3; n++) {
            hamok_cmd_result r = {statuses[s], (n & 1) != 0, n > 0 ? items : NULL, n};
            roundtrip_result(&r);
        }
    }
}

/* The layout is pinned (docs/PROTOCOL.md, "Commands", worked example). */
static void golden_bytes(void **state)
{
    (void)state;
    uint8_t name[] = "m";
    uint8_t k[] = "k";
    uint8_t v[] = "v";
    hamok_cmd_item it = item(k, 1, v, 1, true, NULL, 0, false);
    hamok_cmd c = {HAMOK_KIND_MAP, HAMOK_OP_SET, name, 1, 0, &it, 1};
    static const uint8_t want[] = {0x95, 0x01, 0x01, 0xc4, 0x01, 'm',  0x00, 0x91,
                                   0x93, 0xc4, 0x01, 'k',  0xc4, 0x01, 'v',  0xc0};
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    hamok__buf_reset(&b);
    hamok_cmd_item old = item(k, 1, v, 1, true, NULL, 0, false);
    hamok_cmd_result r = {HAMOK_OK, true, &old, 1};
    static const uint8_t want_r[] = {0x93, 0x00, 0xc3, 0x91, 0x93, 0xc4,
                                     0x01, 'k',  0xc4, 0x01, 'v',  0xc0};
    assert_int_equal(hamok__cmd_result_encode(&r, &b), HAMOK_OK);
    assert_int_equal(b.len, sizeof want_r);
    assert_memory_equal(b.data, want_r, sizeof want_r);
    hamok__buf_free(&b);
}

/* ------------------------------------------------------------------------- */
/* Encoder refusals */

static void encoder_refuses_what_decoder_would(void **state)
{
    (void)state;
    uint8_t big_name[HAMOK_NAME_MAX + 1];
    memset(big_name, 'n', sizeof big_name);
    hamok_cmd_item it = item(K1, 5, V1, 7, true, NULL, 0, false);
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__buf_append(&b, "xyz", 3), HAMOK_OK);

    hamok_cmd c = make_cmd(0, HAMOK_OP_SET, &it, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAX_ + 1, HAMOK_OP_SET, &it, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAP, 0, &it, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_MAX_ + 1, &it, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, &it, 1);
    c.name_len = 0;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c.name = NULL;
    c.name_len = 3;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c.name = big_name;
    c.name_len = sizeof big_name;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, NULL, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, &it, (size_t)HAMOK_CODEC_DEFAULT_MAX_ELEMENTS + 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    hamok_cmd_item bad = item(NULL, 2, NULL, 0, false, NULL, 0, false);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, &bad, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    bad = item(K1, 1, NULL, 2, true, NULL, 0, false);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    bad = item(K1, 1, NULL, 0, true, NULL, 2, true);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_INVALID);
    /* An absent value with a stale length is just absent. */
    bad = item(K1, 1, NULL, 9, false, NULL, 9, false);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK);
    b.len = 3;

    /* Over the frame limit: TOO_BIG, `out` unchanged. */
    size_t n = HAMOK_CMD_MAX_ENCODED;
    uint8_t *big = calloc(1, n);
    assert_non_null(big);
    hamok_cmd_item huge = item(K1, 1, big, n - 30, true, NULL, 0, false);
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, &huge, 1);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK); /* just fits */
    b.len = 3;
    huge.value_len = n - 20;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_TOO_BIG);
    huge.value_len = SIZE_MAX; /* would wrap a naive sum */
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_TOO_BIG);
    hamok_cmd_item two[2] = {item(K1, 1, big, n / 2, true, NULL, 0, false),
                             item(K1, 1, big, n / 2, true, NULL, 0, false)};
    c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, two, 2);
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_ERR_TOO_BIG);
    hamok_cmd_result r = {0, false, two, 2};
    assert_int_equal(hamok__cmd_result_encode(&r, &b), HAMOK_ERR_TOO_BIG);
    r.n_items = (size_t)HAMOK_CODEC_DEFAULT_MAX_ELEMENTS + 1;
    assert_int_equal(hamok__cmd_result_encode(&r, &b), HAMOK_ERR_INVALID);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "xyz", 3);
    assert_int_equal(hamok__cmd_encode(NULL, &b), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__cmd_result_encode(NULL, &b), HAMOK_ERR_INVALID);
    free(big);
    hamok__buf_free(&b);
}

/* ------------------------------------------------------------------------- */
/* Decoder refusals */

/* Decode as a command and as a result; every outcome must be clean. Returns
 * true if either decoded. */
static bool decode_both(const uint8_t *d, size_t n)
{
    bool any = false;
    hamok_cmd c;
    memset(&c, 0xa5, sizeof c);
    hamok_status st = hamok__cmd_decode(d, n, &c);
    if (st == HAMOK_OK) {
        any = true;
        hamok_buf b = HAMOK_BUF_INIT;
        /* A decoded command re-encodes (maybe shorter: canonical widths). */
        assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK);
        assert_true(b.len <= n);
        hamok_cmd c2;
        assert_int_equal(hamok__cmd_decode(b.data, b.len, &c2), HAMOK_OK);
        assert_cmd_eq(&c, &c2);
        hamok__cmd_clear(&c2);
        hamok__buf_free(&b);
        hamok__cmd_clear(&c);
    } else {
        assert_true(st == HAMOK_ERR_CODEC || st == HAMOK_ERR_TOO_BIG);
        assert_true(is_zero(&c, sizeof c));
    }
    /* The borrowing decoder agrees with the copying one. */
    static hamok_cmd_item room[1024];
    hamok_cmd v;
    hamok_status vst = hamok__cmd_decode_view(d, n, &v, room, 1024);
    assert_int_equal(vst, st);
    hamok_cmd_result r;
    memset(&r, 0xa5, sizeof r);
    st = hamok__cmd_result_decode(d, n, &r);
    if (st == HAMOK_OK) {
        any = true;
        hamok_buf b = HAMOK_BUF_INIT;
        assert_int_equal(hamok__cmd_result_encode(&r, &b), HAMOK_OK);
        assert_true(b.len <= n);
        hamok__buf_free(&b);
        hamok__cmd_result_clear(&r);
    } else {
        assert_true(st == HAMOK_ERR_CODEC || st == HAMOK_ERR_TOO_BIG);
        assert_true(is_zero(&r, sizeof r));
    }
    return any;
}

static void sample_encodings(hamok_buf *cmds, size_t *offs, size_t *n_out)
{
    static uint8_t big[300];
    hamok_cmd_item items[3] = {
        item(K1, 5, V1, 7, true, NULL, 0, false),
        item(K1, 0, V1, 0, true, E1, 8, true),
        item(big, sizeof big, NULL, 0, false, big, 40, true),
    };
    size_t n = 0;
    for (uint8_t op = 1; op <= HAMOK_OP_MAX_; op++) {
        hamok_cmd c = make_cmd((uint8_t)(1 + op % HAMOK_KIND_MAX_), op, items, op % 4);
        c.arg = (uint64_t)op << (op * 4);
        offs[n++] = cmds->len;
        assert_int_equal(hamok__cmd_encode(&c, cmds), HAMOK_OK);
    }
    for (size_t k = 0; k <= 3; k++) {
        hamok_cmd_result r = {(uint32_t)k * 7000u, k == 2, items, k};
        offs[n++] = cmds->len;
        assert_int_equal(hamok__cmd_result_encode(&r, cmds), HAMOK_OK);
    }
    offs[n] = cmds->len;
    *n_out = n;
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    hamok_buf all = HAMOK_BUF_INIT;
    size_t offs[32], n;
    sample_encodings(&all, offs, &n);
    for (size_t s = 0; s < n; s++) {
        const uint8_t *d = all.data + offs[s];
        size_t len = offs[s + 1] - offs[s];
        assert_true(decode_both(d, len));
        for (size_t cut = 0; cut < len; cut++) {
            /* A copy of exactly `cut` bytes: ASan sees any overread. */
            uint8_t *p = malloc(cut > 0 ? cut : 1);
            assert_non_null(p);
            memcpy(p, d, cut);
            assert_false(decode_both(p, cut));
            free(p);
        }
        /* One trailing byte too many. */
        uint8_t *p = malloc(len + 1);
        assert_non_null(p);
        memcpy(p, d, len);
        p[len] = 0xc0;
        assert_false(decode_both(p, len + 1));
        free(p);
    }
    hamok__buf_free(&all);
}

static void bit_flips_decode_cleanly(void **state)
{
    (void)state;
    hamok_buf all = HAMOK_BUF_INIT;
    size_t offs[32], n;
    sample_encodings(&all, offs, &n);
    unsigned long ok = 0, refused = 0;
    for (size_t s = 0; s < n; s++) {
        size_t len = offs[s + 1] - offs[s];
        uint8_t *p = malloc(len);
        assert_non_null(p);
        for (size_t bit = 0; bit < len * 8; bit++) {
            memcpy(p, all.data + offs[s], len);
            p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            if (decode_both(p, len)) {
                ok++;
            } else {
                refused++;
            }
        }
        /* Random multi-byte corruption. */
        hamok_prng rng;
        hamok__prng_seed(&rng, 42 + s);
        for (int t = 0; t < 2000; t++) {
            memcpy(p, all.data + offs[s], len);
            for (int k = 0; k < 3; k++) {
                p[hamok__prng_below(&rng, len)] = (uint8_t)hamok__prng_next(&rng);
            }
            if (decode_both(p, len)) {
                ok++;
            } else {
                refused++;
            }
        }
        free(p);
    }
    printf("  corrupted encodings: %lu decoded, %lu refused\n", ok, refused);
    assert_true(refused > 0 && ok > 0);
    hamok__buf_free(&all);
}

static void shapes_and_types_are_strict(void **state)
{
    (void)state;
    /* The golden SET command, then variants. */
    uint8_t good[] = {0x95, 0x01, 0x01, 0xc4, 0x01, 'm',  0x00, 0x91,
                      0x93, 0xc4, 0x01, 'k',  0xc4, 0x01, 'v',  0xc0};
    hamok_cmd c;
    assert_int_equal(hamok__cmd_decode(good, sizeof good, &c), HAMOK_OK);
    hamok__cmd_clear(&c);
    struct {
        size_t at;
        uint8_t to;
        hamok_status want;
    } cases[] = {
        {0, 0x96, HAMOK_ERR_CODEC},  /* 6 fields */
        {0, 0x94, HAMOK_ERR_CODEC},  /* 4 fields */
        {0, 0x85, HAMOK_ERR_CODEC},  /* a map */
        {1, 0x00, HAMOK_ERR_CODEC},  /* kind 0 */
        {1, 0x06, HAMOK_ERR_CODEC},  /* kind 6 */
        {1, 0xff, HAMOK_ERR_CODEC},  /* negative fixint */
        {2, 0x0f, HAMOK_ERR_CODEC},  /* op 15 */
        {2, 0xc0, HAMOK_ERR_CODEC},  /* nil op */
        {3, 0xa1, HAMOK_ERR_CODEC},  /* name as str */
        {3, 0xc0, HAMOK_ERR_CODEC},  /* nil name */
        {4, 0x00, HAMOK_ERR_CODEC},  /* empty name (then trailing garbage) */
        {6, 0xc2, HAMOK_ERR_CODEC},  /* arg false */
        {6, 0xe0, HAMOK_ERR_CODEC},  /* arg -32 */
        {7, 0x90, HAMOK_ERR_CODEC},  /* 0 items, then trailing bytes */
        {8, 0x92, HAMOK_ERR_CODEC},  /* item of 2 fields */
        {8, 0x94, HAMOK_ERR_CODEC},  /* item of 4 fields */
        {9, 0xc0, HAMOK_ERR_CODEC},  /* nil key */
        {9, 0xa1, HAMOK_ERR_CODEC},  /* str key */
        {12, 0xa1, HAMOK_ERR_CODEC}, /* str value */
        {15, 0xc2, HAMOK_ERR_CODEC}, /* bool expected */
        {15, 0xc1, HAMOK_ERR_CODEC}, /* never-used byte */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[sizeof good];
        memcpy(b, good, sizeof b);
        b[cases[i].at] = cases[i].to;
        memset(&c, 0x5a, sizeof c);
        assert_int_equal(hamok__cmd_decode(b, sizeof b, &c), cases[i].want);
        assert_true(is_zero(&c, sizeof c));
    }
    /* Wider encodings of the same values are accepted (any width). */
    uint8_t wide[] = {0xdc, 0x00, 0x05, 0xd0, 0x01, 0xcd, 0x00, 0x01, 0xc5, 0x00, 0x01, 'm', 0xcf,
                      0,    0,    0,    0,    0,    0,    0,    0,    0xdd, 0,    0,    0,   1,
                      0x93, 0xc6, 0,    0,    0,    1,    'k',  0xc4, 0x01, 'v',  0xc0};
    assert_int_equal(hamok__cmd_decode(wide, sizeof wide, &c), HAMOK_OK);
    assert_int_equal(c.kind, HAMOK_KIND_MAP);
    assert_int_equal(c.op, HAMOK_OP_SET);
    assert_int_equal(c.n_items, 1);
    assert_memory_equal(c.items[0].key, "k", 1);
    hamok__cmd_clear(&c);
    /* Negative int8 arg refused. */
    uint8_t neg[] = {0x95, 0x01, 0x01, 0xc4, 0x01, 'm', 0xd0, 0xff, 0x90};
    assert_int_equal(hamok__cmd_decode(neg, sizeof neg, &c), HAMOK_ERR_CODEC);
    /* Result: status over 32 bits, non-bool flag. */
    uint8_t r1[] = {0x93, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0, 0xc2, 0x90};
    uint8_t r2[] = {0x93, 0x00, 0x01, 0x90};
    uint8_t r3[] = {0x93, 0xce, 0xff, 0xff, 0xff, 0xff, 0xc3, 0x90};
    hamok_cmd_result r;
    assert_int_equal(hamok__cmd_result_decode(r1, sizeof r1, &r), HAMOK_ERR_CODEC);
    assert_int_equal(hamok__cmd_result_decode(r2, sizeof r2, &r), HAMOK_ERR_CODEC);
    assert_int_equal(hamok__cmd_result_decode(r3, sizeof r3, &r), HAMOK_OK);
    assert_int_equal(r.status, UINT32_MAX);
    assert_true(r.flag);
    assert_null(r.items);
    /* NULL / empty / NULL out. */
    assert_int_equal(hamok__cmd_decode(NULL, 0, &c), HAMOK_ERR_CODEC);
    assert_int_equal(hamok__cmd_decode(good, 0, &c), HAMOK_ERR_CODEC);
    assert_int_equal(hamok__cmd_decode(good, sizeof good, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__cmd_result_decode(NULL, 0, &r), HAMOK_ERR_CODEC);
    assert_int_equal(hamok__cmd_result_decode(r3, sizeof r3, NULL), HAMOK_ERR_INVALID);
    hamok__cmd_clear(NULL);
    hamok__cmd_result_clear(NULL);
}

/* Declared counts and lengths are checked against the bytes that remain and
 * the limits before anything is allocated. */
static void hostile_counts_refused_before_allocation(void **state)
{
    (void)state;
    hamok_cmd c;
    hamok_cmd_result r;
    counting_on(0);
    /* items array32 claiming 4 billion items. */
    uint8_t a[] = {0x95, 0x01, 0x01, 0xc4, 0x01, 'm', 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x93};
    assert_int_equal(hamok__cmd_decode(a, sizeof a, &c), HAMOK_ERR_CODEC);
    /* bin32 value claiming 4 GiB. */
    uint8_t b[] = {0x95, 0x01, 0x01, 0xc4, 0x01, 'm',  0x00, 0x91, 0x93,
                   0xc4, 0x00, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    assert_int_equal(hamok__cmd_decode(b, sizeof b, &c), HAMOK_ERR_CODEC);
    /* Result: array16 of 65535 items with 3 bytes behind it. */
    uint8_t d[] = {0x93, 0x00, 0xc2, 0xdc, 0xff, 0xff, 0x93, 0xc4, 0x00};
    assert_int_equal(hamok__cmd_result_decode(d, sizeof d, &r), HAMOK_ERR_CODEC);
    assert_int_equal(g_allocs, 0);
    counting_off();

    /* 65537 real items: over the element limit (TOO_BIG), still nothing
     * allocated. */
    size_t n = 65537;
    hamok_buf big = HAMOK_BUF_INIT;
    static const uint8_t head[] = {0x95, 0x01, 0x08, 0xc4, 0x01, 'q',
                                   0x00, 0xdd, 0x00, 0x01, 0x00, 0x01};
    assert_int_equal(hamok__buf_append(&big, head, sizeof head), HAMOK_OK);
    static const uint8_t it[] = {0x93, 0xc4, 0x00, 0xc0, 0xc0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(hamok__buf_append(&big, it, sizeof it), HAMOK_OK);
    }
    counting_on(0);
    assert_int_equal(hamok__cmd_decode(big.data, big.len, &c), HAMOK_ERR_TOO_BIG);
    assert_int_equal(g_allocs, 0);
    /* One fewer fits: exactly one allocation. */
    big.data[11] = 0x00;
    big.len -= sizeof it;
    assert_int_equal(hamok__cmd_decode(big.data, big.len, &c), HAMOK_OK);
    assert_int_equal(g_allocs, 1);
    assert_int_equal(c.n_items, 65536);
    counting_off();
    hamok__cmd_clear(&c);
    hamok__buf_free(&big);

    /* Over the byte limit. */
    uint8_t *huge = calloc(1, HAMOK_CMD_MAX_ENCODED + 1);
    assert_non_null(huge);
    memset(&c, 1, sizeof c);
    assert_int_equal(hamok__cmd_decode(huge, HAMOK_CMD_MAX_ENCODED + 1, &c), HAMOK_ERR_TOO_BIG);
    assert_true(is_zero(&c, sizeof c));
    assert_int_equal(hamok__cmd_result_decode(huge, HAMOK_CMD_MAX_ENCODED + 1, &r),
                     HAMOK_ERR_TOO_BIG);
    free(huge);
}

static void allocation_failure_leaves_output_zeroed(void **state)
{
    (void)state;
    hamok_cmd_item items[2] = {item(K1, 5, V1, 7, true, NULL, 0, false),
                               item(K1, 2, V1, 0, true, E1, 3, true)};
    hamok_cmd c = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_SET, items, 2);
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_buf rb = HAMOK_BUF_INIT;
    hamok_cmd_result res = {0, true, items, 2};
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK);
    assert_int_equal(hamok__cmd_result_encode(&res, &rb), HAMOK_OK);
    counting_on(1);
    hamok_cmd d;
    memset(&d, 1, sizeof d);
    assert_int_equal(hamok__cmd_decode(b.data, b.len, &d), HAMOK_ERR_NOMEM);
    assert_true(is_zero(&d, sizeof d));
    g_allocs = 0;
    hamok_cmd_result r;
    memset(&r, 1, sizeof r);
    assert_int_equal(hamok__cmd_result_decode(rb.data, rb.len, &r), HAMOK_ERR_NOMEM);
    assert_true(is_zero(&r, sizeof r));
    /* Encoding into an empty buffer needs one allocation: NOMEM, unchanged. */
    g_allocs = 0;
    hamok_buf e = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(&c, &e), HAMOK_ERR_NOMEM);
    assert_int_equal(e.len, 0);
    g_allocs = 0;
    assert_int_equal(hamok__cmd_result_encode(&res, &e), HAMOK_ERR_NOMEM);
    assert_int_equal(e.len, 0);
    counting_off();
    hamok__buf_free(&b);
    hamok__buf_free(&rb);
}

/* The borrowing decoder: same checks, pointers into the input, items in the
 * caller's array (BUSY with the count needed when it is too small). */
static void view_decode(void **state)
{
    (void)state;
    hamok_cmd_item items[3] = {
        item(K1, 5, V1, 7, true, NULL, 0, false),
        item(K1, 0, V1, 0, true, E1, 0, true),
        item(K1, 2, NULL, 0, false, E1, 8, true),
    };
    hamok_cmd c = make_cmd(HAMOK_KIND_RECORD, HAMOK_OP_UPDATE_IF, items, 3);
    c.arg = 77;
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(&c, &b), HAMOK_OK);
    hamok_cmd v;
    hamok_cmd_item room[3];
    counting_on(0);
    assert_int_equal(hamok__cmd_decode_view(b.data, b.len, &v, room, 2), HAMOK_ERR_BUSY);
    assert_int_equal(v.n_items, 3);
    assert_null(v.items);
    assert_int_equal(hamok__cmd_decode_view(b.data, b.len, &v, room, 3), HAMOK_OK);
    assert_int_equal(g_allocs, 0);
    counting_off();
    assert_cmd_eq(&c, &v);
    assert_ptr_equal(v.items, room);
    for (size_t i = 0; i < 3; i++) {
        assert_item_pointers(&v.items[i]);
        assert_true(v.items[i].key >= b.data && v.items[i].key <= b.data + b.len);
    }
    assert_true(v.name > b.data && v.name < b.data + b.len);
    /* Errors: zeroed, same statuses as the copying decoder. */
    for (size_t cut = 0; cut < b.len; cut++) {
        memset(&v, 1, sizeof v);
        hamok_status st = hamok__cmd_decode_view(b.data, cut, &v, room, 3);
        assert_true(st == HAMOK_ERR_CODEC);
        assert_true(is_zero(&v, sizeof v));
    }
    assert_int_equal(hamok__cmd_decode_view(b.data, b.len, NULL, room, 3), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__cmd_decode_view(b.data, b.len, &v, NULL, 3), HAMOK_ERR_INVALID);
    hamok_cmd none = make_cmd(HAMOK_KIND_MAP, HAMOK_OP_CLEAR, NULL, 0);
    hamok__buf_reset(&b);
    assert_int_equal(hamok__cmd_encode(&none, &b), HAMOK_OK);
    assert_int_equal(hamok__cmd_decode_view(b.data, b.len, &v, NULL, 0), HAMOK_OK);
    assert_null(v.items);
    assert_int_equal(v.op, HAMOK_OP_CLEAR);
    hamok__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_op_of_every_kind_roundtrips),
        cmocka_unit_test(lengths_of_every_width_roundtrip),
        cmocka_unit_test(item_counts_of_every_width_roundtrip),
        cmocka_unit_test(results_roundtrip),
        cmocka_unit_test(golden_bytes),
        cmocka_unit_test(encoder_refuses_what_decoder_would),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(bit_flips_decode_cleanly),
        cmocka_unit_test(shapes_and_types_are_strict),
        cmocka_unit_test(hostile_counts_refused_before_allocation),
        cmocka_unit_test(allocation_failure_leaves_output_zeroed),
        cmocka_unit_test(view_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
