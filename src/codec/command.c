/* Collection commands and results <-> MessagePack bytes. Layout:
 * docs/PROTOCOL.md, section "Commands".
 *
 * The shapes are fixed and small, so both directions are written by hand
 * (no msgpack-c): the encoder computes the exact size first, checks it
 * against the limit and reserves once; the decoder is a bounded reader in
 * two passes over the same code — the first validates everything and sizes
 * the output without allocating, the second fills one block. Hostile counts
 * and lengths are therefore refused before any allocation. */
#include "codec/command.h"

#include <string.h>

#include "util/alloc.h"

/* Fields of the arrays (docs/PROTOCOL.md). */
#define CMD_FIELDS    5u
#define RESULT_FIELDS 3u
#define ITEM_FIELDS   3u
/* Smallest encoded item: fixarray, empty bin8 key, nil, nil. */
#define ITEM_MIN_ENCODED 5u

/* ------------------------------------------------------------------------- */
/* Encoder */

static size_t uint_size(uint64_t v)
{
    return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static size_t arr_size(size_t n)
{
    return n <= 15 ? 1 : n <= 0xffff ? 3 : 5;
}

static size_t bin_size(size_t n)
{
    return (n <= 0xff ? 2 : n <= 0xffff ? 3 : 5) + n;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    return p + n;
}

static uint8_t *put_uint(uint8_t *p, uint64_t v)
{
    if (v <= 0x7f) {
        *p++ = (uint8_t)v;
    } else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= 0xffff) {
        *p++ = 0xcd;
        p = put_be(p, v, 2);
    } else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        p = put_be(p, v, 4);
    } else {
        *p++ = 0xcf;
        p = put_be(p, v, 8);
    }
    return p;
}

static uint8_t *put_arr(uint8_t *p, size_t n)
{
    if (n <= 15) {
        *p++ = (uint8_t)(0x90u | n);
    } else if (n <= 0xffff) {
        *p++ = 0xdc;
        p = put_be(p, n, 2);
    } else {
        *p++ = 0xdd;
        p = put_be(p, n, 4);
    }
    return p;
}

static uint8_t *put_bin(uint8_t *p, const uint8_t *d, size_t n)
{
    if (n <= 0xff) {
        *p++ = 0xc4;
        *p++ = (uint8_t)n;
    } else if (n <= 0xffff) {
        *p++ = 0xc5;
        p = put_be(p, n, 2);
    } else {
        *p++ = 0xc6;
        p = put_be(p, n, 4);
    }
    if (n > 0) {
        memcpy(p, d, n);
    }
    return p + n;
}

static uint8_t *put_opt_bin(uint8_t *p, bool has, const uint8_t *d, size_t n)
{
    if (!has) {
        *p++ = 0xc0;
        return p;
    }
    return put_bin(p, d, n);
}

/* Adds the encoded size of the items to *size (saturating at SIZE_MAX).
 * HAMOK_ERR_INVALID for a NULL pointer with a length or too many items. */
static hamok_status items_size(const hamok_cmd_item *items, size_t n, size_t *size)
{
    if (n > HAMOK_CODEC_DEFAULT_MAX_ELEMENTS || (n > 0 && items == NULL)) {
        return HAMOK_ERR_INVALID;
    }
    size_t s = arr_size(n);
    for (size_t i = 0; i < n; i++) {
        const hamok_cmd_item *it = &items[i];
        if ((it->key_len > 0 && it->key == NULL) ||
            (it->has_value && it->value_len > 0 && it->value == NULL) ||
            (it->has_expected && it->expected_len > 0 && it->expected == NULL)) {
            return HAMOK_ERR_INVALID;
        }
        /* Each length alone over the limit: stop before any sum can wrap. */
        if (it->key_len > HAMOK_CMD_MAX_ENCODED ||
            (it->has_value && it->value_len > HAMOK_CMD_MAX_ENCODED) ||
            (it->has_expected && it->expected_len > HAMOK_CMD_MAX_ENCODED)) {
            return HAMOK_ERR_TOO_BIG;
        }
        s += 1 + bin_size(it->key_len);
        s += it->has_value ? bin_size(it->value_len) : 1;
        s += it->has_expected ? bin_size(it->expected_len) : 1;
        if (s > HAMOK_CMD_MAX_ENCODED) {
            return HAMOK_ERR_TOO_BIG;
        }
    }
    *size += s;
    return HAMOK_OK;
}

size_t hamok__cmd_item_size(const hamok_cmd_item *it)
{
    return 1 + bin_size(it->key_len) + (it->has_value ? bin_size(it->value_len) : 1) +
           (it->has_expected ? bin_size(it->expected_len) : 1);
}

static uint8_t *put_items(uint8_t *p, const hamok_cmd_item *items, size_t n)
{
    p = put_arr(p, n);
    for (size_t i = 0; i < n; i++) {
        const hamok_cmd_item *it = &items[i];
        *p++ = (uint8_t)(0x90u | ITEM_FIELDS);
        p = put_bin(p, it->key, it->key_len);
        p = put_opt_bin(p, it->has_value, it->value, it->value_len);
        p = put_opt_bin(p, it->has_expected, it->expected, it->expected_len);
    }
    return p;
}

static bool kind_known(uint64_t k)
{
    return k >= 1 && k <= HAMOK_KIND_MAX_;
}

static bool op_known(uint64_t op)
{
    return op >= 1 && op <= HAMOK_OP_MAX_;
}

hamok_status hamok__cmd_encode(const hamok_cmd *c, hamok_buf *out)
{
    if (c == NULL || out == NULL || !kind_known(c->kind) || !op_known(c->op) || c->name == NULL ||
        c->name_len == 0 || c->name_len > HAMOK_NAME_MAX) {
        return HAMOK_ERR_INVALID;
    }
    size_t size = 1 + 1 + 1 + bin_size(c->name_len) + uint_size(c->arg);
    hamok_status st = items_size(c->items, c->n_items, &size);
    if (st != HAMOK_OK) {
        return st;
    }
    if (size > HAMOK_CMD_MAX_ENCODED) {
        return HAMOK_ERR_TOO_BIG;
    }
    st = hamok__buf_reserve(out, size);
    if (st != HAMOK_OK) {
        return st;
    }
    uint8_t *p = out->data + out->len;
    *p++ = (uint8_t)(0x90u | CMD_FIELDS);
    *p++ = c->kind; /* 1..5: positive fixints */
    *p++ = c->op;   /* 1..13 */
    p = put_bin(p, c->name, c->name_len);
    p = put_uint(p, c->arg);
    p = put_items(p, c->items, c->n_items);
    out->len += size;
    return HAMOK_OK;
}

hamok_status hamok__cmd_result_encode(const hamok_cmd_result *r, hamok_buf *out)
{
    if (r == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    size_t size = 1 + uint_size(r->status) + 1;
    hamok_status st = items_size(r->items, r->n_items, &size);
    if (st != HAMOK_OK) {
        return st;
    }
    if (size > HAMOK_CMD_MAX_ENCODED) {
        return HAMOK_ERR_TOO_BIG;
    }
    st = hamok__buf_reserve(out, size);
    if (st != HAMOK_OK) {
        return st;
    }
    uint8_t *p = out->data + out->len;
    *p++ = (uint8_t)(0x90u | RESULT_FIELDS);
    p = put_uint(p, r->status);
    *p++ = r->flag ? 0xc3 : 0xc2;
    p = put_items(p, r->items, r->n_items);
    out->len += size;
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------- */
/* Bounded reader */

typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
    hamok_status err; /* first error: HAMOK_ERR_CODEC or HAMOK_ERR_TOO_BIG */
    size_t n_items;   /* items read */
    size_t bytes;     /* bytes of every key/value/expected (and name) read */
    /* Filling pass only (NULL in the sizing pass): where byte strings go,
     * and where they go once a command's name has been read. */
    uint8_t *dst;
    uint8_t *after_name;
    /* View decoding: byte strings point into the input; items go to an
     * array of `view_cap`. */
    bool view;
    size_t view_cap;
} rd;

static bool fail(rd *r, hamok_status st)
{
    if (r->err == HAMOK_OK) {
        r->err = st;
    }
    return false;
}

static inline size_t left(const rd *r)
{
    return (size_t)(r->end - r->p);
}

static uint64_t get_be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Any MessagePack integer >= 0 (as the frame decoder: docs/PROTOCOL.md §2). */
static bool rd_uint(rd *r, uint64_t *v)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    uint8_t t = *r->p++;
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    bool sign = t >= 0xd0 && t <= 0xd3;
    if (!sign && (t < 0xcc || t > 0xcf)) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    unsigned n = 1u << (t - (sign ? 0xd0u : 0xccu));
    if (left(r) < n || (sign && (r->p[0] & 0x80) != 0)) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    *v = get_be(r->p, n);
    r->p += n;
    return true;
}

static bool rd_bool(rd *r, bool *v)
{
    if (left(r) < 1 || (*r->p != 0xc2 && *r->p != 0xc3)) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    *v = *r->p++ == 0xc3;
    return true;
}

/* An array header with exactly `want` elements, or (want == UINT32_MAX) any
 * count, checked against the bytes left (each element takes >= `min_bytes`)
 * and then against the element limit. */
static bool rd_arr(rd *r, uint32_t want, size_t min_bytes, size_t *n)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    uint8_t t = *r->p++;
    uint64_t count;
    if (t >= 0x90 && t <= 0x9f) {
        count = t & 0x0fu;
    } else if (t == 0xdc || t == 0xdd) {
        unsigned w = t == 0xdc ? 2u : 4u;
        if (left(r) < w) {
            return fail(r, HAMOK_ERR_CODEC);
        }
        count = get_be(r->p, w);
        r->p += w;
    } else {
        return fail(r, HAMOK_ERR_CODEC);
    }
    if (want != UINT32_MAX && count != want) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    if (count > left(r) / min_bytes) {
        return fail(r, HAMOK_ERR_CODEC); /* cannot be there: truncated or lying */
    }
    if (count > HAMOK_CODEC_DEFAULT_MAX_ELEMENTS) {
        return fail(r, HAMOK_ERR_TOO_BIG);
    }
    *n = (size_t)count;
    return true;
}

/* A bin, or nil when `opt` (then *has = false, *out = NULL). In the filling
 * pass the bytes are copied to r->dst and *out points there — also for an
 * empty bin, so a present string always has a valid address. */
static bool rd_bin(rd *r, bool opt, bool *has, uint8_t **out, size_t *len)
{
    *has = false;
    *out = NULL;
    *len = 0;
    if (left(r) < 1) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    uint8_t t = *r->p++;
    if (t == 0xc0 && opt) {
        return true;
    }
    if (t < 0xc4 || t > 0xc6) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    unsigned w = 1u << (t - 0xc4u); /* bin8/16/32: 1, 2, 4 length bytes */
    if (left(r) < w) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    uint64_t n = get_be(r->p, w);
    r->p += w;
    if (n > left(r)) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    *has = true;
    *len = (size_t)n;
    if (r->view) {
        *out = (uint8_t *)(uintptr_t)r->p;
    } else if (r->dst != NULL) {
        if (n > 0) {
            memcpy(r->dst, r->p, (size_t)n);
        }
        *out = r->dst;
        r->dst += n;
    }
    r->bytes += (size_t)n;
    r->p += n;
    return true;
}

/* The item array; `items` NULL in the sizing pass. */
static bool rd_items(rd *r, hamok_cmd_item *items)
{
    size_t n;
    if (!rd_arr(r, UINT32_MAX, ITEM_MIN_ENCODED, &n)) {
        return false;
    }
    r->n_items = n;
    if (r->view && n > r->view_cap) {
        return fail(r, HAMOK_ERR_BUSY); /* the caller needs more room */
    }
    for (size_t i = 0; i < n; i++) {
        hamok_cmd_item scratch;
        hamok_cmd_item *it = items != NULL ? &items[i] : &scratch;
        size_t k;
        bool has_key;
        if (!rd_arr(r, ITEM_FIELDS, 1, &k) || !rd_bin(r, false, &has_key, &it->key, &it->key_len) ||
            !rd_bin(r, true, &it->has_value, &it->value, &it->value_len) ||
            !rd_bin(r, true, &it->has_expected, &it->expected, &it->expected_len)) {
            return false;
        }
    }
    return true;
}

static bool rd_cmd(rd *r, hamok_cmd *c, hamok_cmd_item *items)
{
    size_t n;
    uint64_t kind, op;
    bool has;
    if (!rd_arr(r, CMD_FIELDS, 1, &n) || !rd_uint(r, &kind) || !rd_uint(r, &op)) {
        return false;
    }
    if (!kind_known(kind) || !op_known(op)) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    c->kind = (uint8_t)kind;
    c->op = (uint8_t)op;
    if (!rd_bin(r, false, &has, &c->name, &c->name_len)) {
        return false;
    }
    if (c->name_len == 0 || c->name_len > HAMOK_NAME_MAX) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    if (r->dst != NULL) {
        r->dst = r->after_name;
    }
    return rd_uint(r, &c->arg) && rd_items(r, items);
}

static bool rd_result(rd *r, hamok_cmd_result *res, hamok_cmd_item *items)
{
    size_t n;
    uint64_t status;
    if (!rd_arr(r, RESULT_FIELDS, 1, &n) || !rd_uint(r, &status)) {
        return false;
    }
    if (status > UINT32_MAX) {
        return fail(r, HAMOK_ERR_CODEC);
    }
    res->status = (uint32_t)status;
    return rd_bool(r, &res->flag) && rd_items(r, items);
}

static hamok_status finish(rd *r)
{
    if (r->err == HAMOK_OK && left(r) != 0) {
        fail(r, HAMOK_ERR_CODEC); /* trailing bytes */
    }
    return r->err;
}

/* The item array starts on an 8-byte boundary after the name. */
static size_t align8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

hamok_status hamok__cmd_decode(const uint8_t *data, size_t len, hamok_cmd *out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    if (len > HAMOK_CMD_MAX_ENCODED) {
        return HAMOK_ERR_TOO_BIG;
    }
    if (data == NULL || len == 0) {
        return HAMOK_ERR_CODEC;
    }
    /* Pass 1: validate and size; nothing allocated. */
    hamok_cmd c;
    rd r = {.p = data, .end = data + len, .err = HAMOK_OK};
    rd_cmd(&r, &c, NULL);
    hamok_status st = finish(&r);
    if (st != HAMOK_OK) {
        return st;
    }
    /* One block: name | pad | items | item bytes | 1 spare byte (an empty
     * string at the very end still gets an address inside the block). */
    size_t name_part = align8(c.name_len);
    size_t items_part = r.n_items * sizeof(hamok_cmd_item);
    uint8_t *block = hamok__malloc(name_part + items_part + (r.bytes - c.name_len) + 1);
    if (block == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    /* Pass 2: the same code over the same bytes, filling the block. */
    hamok_cmd_item *items = r.n_items > 0 ? (hamok_cmd_item *)(void *)(block + name_part) : NULL;
    rd w = {.p = data,
            .end = data + len,
            .err = HAMOK_OK,
            .dst = block,
            .after_name = block + name_part + items_part};
    rd_cmd(&w, out, items);
    if (finish(&w) != HAMOK_OK || out->name != block) {
        hamok__free(block); /* unreachable: pass 1 accepted the same bytes */
        memset(out, 0, sizeof *out);
        return HAMOK_ERR_CODEC;
    }
    out->items = items;
    out->n_items = r.n_items;
    return HAMOK_OK;
}

hamok_status hamok__cmd_decode_view(const uint8_t *data, size_t len, hamok_cmd *out,
                                    hamok_cmd_item *items, size_t cap)
{
    if (out == NULL || (cap > 0 && items == NULL)) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    if (len > HAMOK_CMD_MAX_ENCODED) {
        return HAMOK_ERR_TOO_BIG;
    }
    if (data == NULL || len == 0) {
        return HAMOK_ERR_CODEC;
    }
    rd r = {.p = data, .end = data + len, .err = HAMOK_OK, .view = true, .view_cap = cap};
    rd_cmd(&r, out, items);
    hamok_status st = finish(&r);
    if (st == HAMOK_ERR_BUSY) {
        size_t need = r.n_items;
        memset(out, 0, sizeof *out);
        out->n_items = need;
        return st;
    }
    if (st != HAMOK_OK) {
        memset(out, 0, sizeof *out);
        return st;
    }
    out->items = r.n_items > 0 ? items : NULL;
    out->n_items = r.n_items;
    return HAMOK_OK;
}

hamok_status hamok__cmd_result_decode(const uint8_t *data, size_t len, hamok_cmd_result *out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    if (len > HAMOK_CMD_MAX_ENCODED) {
        return HAMOK_ERR_TOO_BIG;
    }
    if (data == NULL || len == 0) {
        return HAMOK_ERR_CODEC;
    }
    hamok_cmd_result res;
    rd r = {.p = data, .end = data + len, .err = HAMOK_OK};
    rd_result(&r, &res, NULL);
    hamok_status st = finish(&r);
    if (st != HAMOK_OK) {
        return st;
    }
    if (r.n_items == 0) {
        out->status = res.status;
        out->flag = res.flag;
        return HAMOK_OK; /* nothing to own */
    }
    size_t items_part = r.n_items * sizeof(hamok_cmd_item);
    uint8_t *block = hamok__malloc(items_part + r.bytes + 1);
    if (block == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_cmd_item *items = (hamok_cmd_item *)(void *)block;
    rd w = {.p = data, .end = data + len, .err = HAMOK_OK, .dst = block + items_part};
    rd_result(&w, out, items);
    if (finish(&w) != HAMOK_OK) {
        hamok__free(block); /* unreachable */
        memset(out, 0, sizeof *out);
        return HAMOK_ERR_CODEC;
    }
    out->items = items;
    out->n_items = r.n_items;
    return HAMOK_OK;
}

void hamok__cmd_clear(hamok_cmd *c)
{
    if (c == NULL) {
        return;
    }
    hamok__free(c->name); /* the block */
    memset(c, 0, sizeof *c);
}

void hamok__cmd_result_clear(hamok_cmd_result *r)
{
    if (r == NULL) {
        return;
    }
    hamok__free(r->items); /* the block */
    memset(r, 0, sizeof *r);
}
