/* Test harness for the registry: build and apply commands, record events and
 * results as text, compare states. Header-only (static functions); used by
 * test_registry.c and test_registry_snapshot.c. */
#ifndef HAMOK_TEST_REGISTRY_HARNESS_H
#define HAMOK_TEST_REGISTRY_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "codec/command.h"
#include "collections/registry.h"
#include "collections/session.h"
#include "hamok/hamok.h"

/* Item spec: NULL = absent, "" = empty (a value). Keys are never absent. */
typedef struct spec {
    const char *k;
    const char *v;
    const char *e;
} spec;

#define MAXEV 256

typedef struct harness {
    hamok_registry *r;
    char events[MAXEV][256];
    uint8_t ev_kind[MAXEV];
    uint64_t ev_index[MAXEV];
    int n_events;
    char result[4096];
    hamok_status last; /* status returned by apply */
} harness;

static inline void h_bytes(char *out, size_t cap, const uint8_t *p, size_t n)
{
    size_t w = strlen(out);
    for (size_t i = 0; i < n && w + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"') {
            out[w++] = (char)p[i];
        } else {
            w += (size_t)snprintf(out + w, cap - w, "\\x%02x", p[i]);
        }
    }
    out[w] = '\0';
}

static inline void h_cat(char *out, size_t cap, const char *s)
{
    size_t w = strlen(out);
    snprintf(out + w, cap - w, "%s", s);
}

static inline const char *h_ev_name(uint8_t t)
{
    static const char *names[] = {"?",           "INSERT",  "UPDATE",    "REMOVE",    "CLEAR",
                                  "ADD",         "EMPTY",   "NOT_EMPTY", "SUB_ADDED", "SUB_UPDATED",
                                  "SUB_REMOVED", "PENDING", "ANSWER"};
    return t <= 12 ? names[t] : "?";
}

static inline void h_format_result(const uint8_t *data, size_t len, char *out, size_t cap);

static inline void h_sink(void *ud, const hamok_coll_event *ev)
{
    harness *h = ud;
    assert_true(h->n_events < MAXEV);
    h->ev_kind[h->n_events] = ev->kind;
    h->ev_index[h->n_events] = ev->index;
    char *o = h->events[h->n_events++];
    o[0] = '\0';
    snprintf(o, 256, "%s ", h_ev_name(ev->type));
    h_bytes(o, 256, ev->name, ev->name_len);
    if (ev->key != NULL) {
        h_cat(o, 256, " k=");
        h_bytes(o, 256, ev->key, ev->key_len);
    }
    if (ev->has_old) {
        h_cat(o, 256, " old=\"");
        h_bytes(o, 256, ev->old, ev->old_len);
        h_cat(o, 256, "\"");
    }
    if (ev->type == HAMOK_CEV_ANSWER) {
        /* The deferred answer of a remote-map request: client, seq, result. */
        char a[200];
        snprintf(a, sizeof a, " p%u s%llu ", ev->peer.b[15], (unsigned long long)ev->seq);
        h_cat(o, 256, a);
        h_format_result(ev->value, ev->value_len, a, sizeof a);
        h_cat(o, 256, a);
        return;
    }
    if (ev->has_value) {
        h_cat(o, 256, " v=\"");
        h_bytes(o, 256, ev->value, ev->value_len);
        h_cat(o, 256, "\"");
    }
    if (!hamok__id_is_nil(&ev->peer)) {
        char p[16];
        snprintf(p, sizeof p, " p%u", ev->peer.b[15]);
        h_cat(o, 256, p);
    }
    /* kind and index are checked separately where they matter */
}

static inline void h_init(harness *h, uint32_t window)
{
    memset(h, 0, sizeof *h);
    assert_int_equal(hamok__registry_new(&h->r, window), HAMOK_OK);
}

static inline void h_free(harness *h)
{
    hamok__registry_destroy(&h->r);
    assert_null(h->r);
}

static inline const char *h_status_name(uint32_t st)
{
    switch (st) {
    case HAMOK_OK: return "OK";
    case HAMOK_ERR_INVALID: return "INVALID";
    case HAMOK_ERR_WRONG_KIND: return "WRONG_KIND";
    case HAMOK_ERR_TOO_BIG: return "TOO_BIG";
    case HAMOK_ERR_CODEC: return "CODEC";
    case HAMOK_ERR_EXPIRED: return "EXPIRED";
    case HAMOK_ERR_STORE: return "STORE";
    default: return "OTHER";
    }
}

/* The result bytes as text: "OK" / "OK true" / "OK [k=v, k]" ... */
static inline void h_format_result(const uint8_t *data, size_t len, char *out, size_t cap)
{
    hamok_cmd_result res;
    assert_int_equal(hamok__cmd_result_decode(data, len, &res), HAMOK_OK);
    out[0] = '\0';
    h_cat(out, cap, h_status_name(res.status));
    if (res.flag) {
        h_cat(out, cap, " true");
    }
    if (res.n_items > 0) {
        h_cat(out, cap, " [");
        for (size_t i = 0; i < res.n_items; i++) {
            const hamok_cmd_item *it = &res.items[i];
            if (i > 0) {
                h_cat(out, cap, ", ");
            }
            h_bytes(out, cap, it->key, it->key_len);
            if (it->has_value) {
                h_cat(out, cap, "=\"");
                h_bytes(out, cap, it->value, it->value_len);
                h_cat(out, cap, "\"");
            }
            assert_false(it->has_expected);
        }
        h_cat(out, cap, "]");
    }
    hamok__cmd_result_clear(&res);
}

/* Apply an entry at the next index; the result (if any) formatted into
 * h->result; events recorded from scratch. */
static inline hamok_status h_apply_entry(harness *h, const hamok_entry *e)
{
    hamok_buf res = HAMOK_BUF_INIT;
    h->n_events = 0;
    h->result[0] = '\0';
    uint64_t index = hamok__registry_applied(h->r) + 1;
    h->last = hamok__registry_apply(h->r, index, e, &res, h_sink, h);
    if (h->last == HAMOK_OK) {
        assert_int_equal(hamok__registry_applied(h->r), index);
        if (e->type == HAMOK_ENTRY_COMMAND) {
            /* No result: a queued remote-map request (answered later by an
             * ANSWER event); h->result stays "". */
            if (res.len > 0) {
                h_format_result(res.data, res.len, h->result, sizeof h->result);
            }
        } else {
            assert_int_equal(res.len, 0);
        }
    }
    hamok__buf_free(&res);
    return h->last;
}

static inline void h_build(hamok_cmd *c, hamok_cmd_item *items, uint8_t kind, uint8_t op,
                           const char *name, uint64_t arg, const spec *specs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        hamok_cmd_item *it = &items[i];
        memset(it, 0, sizeof *it);
        it->key = (uint8_t *)(uintptr_t)specs[i].k;
        it->key_len = strlen(specs[i].k);
        if (specs[i].v != NULL) {
            it->has_value = true;
            it->value = (uint8_t *)(uintptr_t)specs[i].v;
            it->value_len = strlen(specs[i].v);
        }
        if (specs[i].e != NULL) {
            it->has_expected = true;
            it->expected = (uint8_t *)(uintptr_t)specs[i].e;
            it->expected_len = strlen(specs[i].e);
        }
    }
    c->kind = kind;
    c->op = op;
    c->name = (uint8_t *)(uintptr_t)name;
    c->name_len = strlen(name);
    c->arg = arg;
    c->items = items;
    c->n_items = n;
}

/* Apply a command as client `client` (0 = none) with sequence `seq`. */
static inline hamok_status h_cmd_raw(harness *h, const hamok_cmd *c, uint64_t client, uint64_t seq)
{
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(c, &b), HAMOK_OK);
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = 1;
    e.type = HAMOK_ENTRY_COMMAND;
    if (client != 0) {
        e.client = hamok__id_from_u64(client);
    }
    e.seq = seq;
    e.data = b.data;
    e.len = b.len;
    hamok_status st = h_apply_entry(h, &e);
    hamok__buf_free(&b);
    return st;
}

static inline const char *h_cmd(harness *h, uint8_t kind, uint8_t op, const char *name,
                                uint64_t arg, uint64_t client, uint64_t seq, const spec *specs,
                                size_t n)
{
    hamok_cmd_item items[64];
    hamok_cmd c;
    assert_true(n <= 64);
    h_build(&c, items, kind, op, name, arg, specs, n);
    assert_int_equal(h_cmd_raw(h, &c, client, seq), HAMOK_OK);
    return h->result;
}

#define NSPEC(a) (sizeof(a) / sizeof((a)[0]))
/* Commands without a session (client 0). */
#define CMD(h, kind, op, name, ...)                                \
    h_cmd(h, kind, op, name, 0, 0, 0, (const spec[]){__VA_ARGS__}, \
          NSPEC(((const spec[]){__VA_ARGS__})))
#define CMD0(h, kind, op, name, arg) h_cmd(h, kind, op, name, arg, 0, 0, NULL, 0)

static inline void h_expect_events(const harness *h, const char *const *want, int n)
{
    for (int i = 0; i < n && i < h->n_events; i++) {
        if (strcmp(h->events[i], want[i]) != 0) {
            fail_msg("event %d: got '%s', want '%s'", i, h->events[i], want[i]);
        }
    }
    if (h->n_events != n) {
        for (int i = 0; i < h->n_events; i++) {
            print_message("  event %d: %s\n", i, h->events[i]);
        }
        fail_msg("got %d events, want %d", h->n_events, n);
    }
}

#define EVENTS(h, ...)                                     \
    h_expect_events(h, (const char *const[]){__VA_ARGS__}, \
                    (int)NSPEC(((const char *const[]){__VA_ARGS__})))
#define NO_EVENTS(h) assert_int_equal((h)->n_events, 0)

/* The whole state (by iteration) as text, for comparing states. */
static inline void h_dump(const hamok_registry *r, char *out, size_t cap)
{
    out[0] = '\0';
    char head[64];
    snprintf(head, sizeof head, "applied=%llu n=%zu\n",
             (unsigned long long)hamok__registry_applied(r), hamok__registry_count(r));
    h_cat(out, cap, head);
    size_t cc = 0;
    const hamok_coll *c;
    while (hamok__registry_next_coll(r, &cc, &c)) {
        size_t nl;
        const uint8_t *name = hamok__coll_name(c, &nl);
        snprintf(head, sizeof head, "%u:", hamok__coll_kind(c));
        h_cat(out, cap, head);
        h_bytes(out, cap, name, nl);
        snprintf(head, sizeof head, " size=%zu {", hamok__coll_size(c));
        h_cat(out, cap, head);
        size_t cur = 0;
        hamok_coll_view v;
        while (hamok__coll_next(c, &cur, &v)) {
            if (v.key != NULL) {
                h_bytes(out, cap, v.key, v.key_len);
            }
            if (v.has_value) {
                h_cat(out, cap, "=\"");
                h_bytes(out, cap, v.value, v.value_len);
                h_cat(out, cap, "\"");
            }
            if (!hamok__id_is_nil(&v.peer)) {
                snprintf(head, sizeof head, "@p%u", v.peer.b[15]);
                h_cat(out, cap, head);
            }
            h_cat(out, cap, " ");
        }
        h_cat(out, cap, "}\n");
    }
}

/* Snapshot into one buffer. */
typedef struct h_snap {
    hamok_buf b;
    int calls;
    int fail_at_call; /* 0 = never */
} h_snap;

static inline hamok_status h_snap_write(void *ud, const void *data, size_t len)
{
    h_snap *s = ud;
    s->calls++;
    if (s->fail_at_call != 0 && s->calls == s->fail_at_call) {
        return HAMOK_ERR_IO;
    }
    assert_true(len > 0);
    return hamok__buf_append(&s->b, data, len);
}

static inline void h_snapshot(const hamok_registry *r, hamok_buf *out)
{
    h_snap s = {HAMOK_BUF_INIT, 0, 0};
    assert_int_equal(hamok__registry_snapshot(r, h_snap_write, &s), HAMOK_OK);
    *out = s.b;
}

#endif
