/* Unit tests of the remote map's replicated part (src/collections/remote.c
 * and its registry integration): every request queued and resolved by an
 * outcome, the proposer's result and the events derived from it (empty
 * values are values, insert never overwrites), store errors, stale and
 * malformed outcomes, FIFO order, exactly-once sessions, the epoch, the
 * effect rules the leader uses, snapshot/restore of the pending queue and
 * corrupt snapshots. */
#include "collections/remote.h"
#include "registry_harness.h"
#include "util/crc32c.h"

#define RM HAMOK_KIND_REMOTE_MAP

/* Observation spec: NULL = the store held nothing for the key. */
typedef struct obs_spec {
    const char *v;
} obs_spec;

/* Queue a request from client `client` / `seq`: no result, one PENDING. */
static uint64_t rq(harness *h, uint8_t op, const char *name, uint64_t client, uint64_t seq,
                   const spec *specs, size_t n)
{
    assert_string_equal(h_cmd(h, RM, op, name, 0, client, seq, specs, n), "");
    uint64_t index = hamok__registry_applied(h->r);
    char want[64];
    snprintf(want, sizeof want, "PENDING %s", name);
    EVENTS(h, want);
    assert_int_equal(h->ev_index[0], index);
    assert_int_equal(h->ev_kind[0], RM);
    return index;
}

#define RQ(h, op, name, client, seq, ...) \
    rq(h, op, name, client, seq, (const spec[]){__VA_ARGS__}, NSPEC(((const spec[]){__VA_ARGS__})))
#define RQ0(h, op, name, client, seq) rq(h, op, name, client, seq, NULL, 0)

/* Apply an outcome (from client 9, no session) for the request at `index`;
 * returns the outcome's own answer. */
static const char *oc(harness *h, const char *name, uint64_t index, hamok_status status,
                      const obs_spec *obs, size_t n)
{
    hamok_cmd_item items[16];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof items[i]);
        if (obs[i].v != NULL) {
            items[i].has_value = true;
            items[i].value = (uint8_t *)(uintptr_t)obs[i].v;
            items[i].value_len = strlen(obs[i].v);
        }
    }
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__remote_outcome_encode((const uint8_t *)name, strlen(name), index,
                                                  status, items, n, &b),
                     HAMOK_OK);
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = 1;
    e.type = HAMOK_ENTRY_COMMAND;
    e.client = hamok__id_from_u64(9);
    e.data = b.data;
    e.len = b.len;
    assert_int_equal(h_apply_entry(h, &e), HAMOK_OK);
    hamok__buf_free(&b);
    return h->result;
}

#define OC(h, name, index, status, ...)                         \
    oc(h, name, index, status, (const obs_spec[]){__VA_ARGS__}, \
       NSPEC(((const obs_spec[]){__VA_ARGS__})))
#define OC0(h, name, index, status) oc(h, name, index, status, NULL, 0)

static const hamok_coll *rm_coll(harness *h, const char *name)
{
    const hamok_coll *c = NULL;
    assert_int_equal(hamok__registry_lookup(h->r, RM, (const uint8_t *)name, strlen(name), &c),
                     HAMOK_OK);
    return c;
}

/* A request with a session, as one item (k, v). */
#define CMD_SESSION(h, op, name, client, seq, k, v) \
    h_cmd(h, RM, op, name, 0, client, seq, &(const spec){k, v, NULL}, 1)

static size_t pending(harness *h, const char *name)
{
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h->r, RM, (const uint8_t *)name, strlen(name), &c),
                     HAMOK_OK);
    assert_int_equal(hamok__coll_size(c), hamok__coll_remote_pending(c));
    return hamok__coll_remote_pending(c);
}

static void every_op(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    /* SET: a new key and an existing one (the store held "old"). */
    uint64_t i1 = RQ(&h, HAMOK_OP_SET, "rm", 1, 1, {"a", "1", NULL}, {"b", "2", NULL});
    assert_int_equal(pending(&h, "rm"), 1);
    assert_string_equal(OC(&h, "rm", i1, HAMOK_OK, {NULL}, {"old"}), "OK true");
    EVENTS(&h, "INSERT rm k=a v=\"1\"", "UPDATE rm k=b old=\"old\" v=\"2\"",
           "ANSWER rm p1 s1 OK true [b=\"old\"]");
    assert_int_equal(h.ev_index[0], i1); /* events carry the request's index */
    assert_int_equal(h.ev_kind[0], RM);
    assert_int_equal(pending(&h, "rm"), 0);

    /* INSERT never overwrites: the existing value is the answer. */
    uint64_t i2 = RQ(&h, HAMOK_OP_INSERT, "rm", 1, 2, {"a", "x", NULL}, {"c", "3", NULL});
    OC(&h, "rm", i2, HAMOK_OK, {"1"}, {NULL});
    EVENTS(&h, "INSERT rm k=c v=\"3\"", "ANSWER rm p1 s2 OK true [a=\"1\"]");
    uint64_t i3 = RQ(&h, HAMOK_OP_INSERT, "rm", 1, 3, {"d", "4", NULL});
    OC(&h, "rm", i3, HAMOK_OK, {NULL});
    EVENTS(&h, "INSERT rm k=d v=\"4\"", "ANSWER rm p1 s3 OK");

    /* UPDATE_IF: mismatch, absent, match, and an empty value that matches. */
    uint64_t i4 = RQ(&h, HAMOK_OP_UPDATE_IF, "rm", 1, 4, {"a", "n", "wrong"});
    OC(&h, "rm", i4, HAMOK_OK, {"1"});
    EVENTS(&h, "ANSWER rm p1 s4 OK");
    uint64_t i5 = RQ(&h, HAMOK_OP_UPDATE_IF, "rm", 1, 5, {"zz", "n", ""});
    OC(&h, "rm", i5, HAMOK_OK, {NULL});
    EVENTS(&h, "ANSWER rm p1 s5 OK"); /* absent is not "" */
    uint64_t i6 = RQ(&h, HAMOK_OP_UPDATE_IF, "rm", 1, 6, {"a", "n", "1"});
    OC(&h, "rm", i6, HAMOK_OK, {"1"});
    EVENTS(&h, "UPDATE rm k=a old=\"1\" v=\"n\"", "ANSWER rm p1 s6 OK true");
    uint64_t i7 = RQ(&h, HAMOK_OP_UPDATE_IF, "rm", 1, 7, {"e", "full", ""});
    OC(&h, "rm", i7, HAMOK_OK, {""});
    EVENTS(&h, "UPDATE rm k=e old=\"\" v=\"full\"", "ANSWER rm p1 s7 OK true");

    /* DELETE answers keys, REMOVE the values; absent keys do nothing. */
    uint64_t i8 = RQ(&h, HAMOK_OP_DELETE, "rm", 1, 8, {"a", NULL, NULL}, {"zz", NULL, NULL},
                     {"e", NULL, NULL});
    OC(&h, "rm", i8, HAMOK_OK, {"n"}, {NULL}, {""});
    EVENTS(&h, "REMOVE rm k=a old=\"n\"", "REMOVE rm k=e old=\"\"",
           "ANSWER rm p1 s8 OK true [a, e]");
    uint64_t i9 = RQ(&h, HAMOK_OP_REMOVE, "rm", 1, 9, {"c", NULL, NULL}, {"zz", NULL, NULL});
    OC(&h, "rm", i9, HAMOK_OK, {"3"}, {NULL});
    EVENTS(&h, "REMOVE rm k=c old=\"3\"", "ANSWER rm p1 s9 OK true [c=\"3\"]");
    uint64_t i10 = RQ(&h, HAMOK_OP_DELETE, "rm", 1, 10, {"zz", NULL, NULL});
    OC(&h, "rm", i10, HAMOK_OK, {NULL});
    EVENTS(&h, "ANSWER rm p1 s10 OK");

    /* CLEAR: one event, no observations. */
    uint64_t i11 = RQ0(&h, HAMOK_OP_CLEAR, "rm", 1, 11);
    OC0(&h, "rm", i11, HAMOK_OK);
    EVENTS(&h, "CLEAR rm", "ANSWER rm p1 s11 OK");
    assert_int_equal(hamok__coll_remote_resolved(rm_coll(&h, "rm")), i11);
    h_free(&h);
}

static void errors_and_stale_outcomes(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    /* Invalid requests: answered at once, nothing queued or created. */
    assert_string_equal(CMD(&h, RM, HAMOK_OP_SET, "rm", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_UPDATE_IF, "rm", {"k", "v", NULL}), "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_UPDATE_IF, "rm", {"k", "v", "e"}, {"j", "v", "e"}),
                        "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_REMOVE_IF, "rm", {"k", NULL, "e"}), "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_PUSH, "rm", {"", "v", NULL}), "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_SET, "rm", {"k", "1", NULL}, {"k", "2", NULL}),
                        "INVALID");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_CLEAR, "rm", {"k", NULL, NULL}), "INVALID");
    NO_EVENTS(&h);
    assert_int_equal(hamok__registry_count(h.r), 0);
    /* An outcome for a map that does not exist: nothing, nothing created. */
    assert_string_equal(OC(&h, "rm", 1, HAMOK_OK, {NULL}), "OK");
    NO_EVENTS(&h);
    assert_int_equal(hamok__registry_count(h.r), 0);

    /* A store error: the proposer gets STORE, no events. */
    uint64_t a = RQ(&h, HAMOK_OP_SET, "rm", 1, 1, {"k", "v", NULL});
    assert_string_equal(OC0(&h, "rm", a, HAMOK_ERR_STORE), "OK true");
    EVENTS(&h, "ANSWER rm p1 s1 STORE");

    /* Stale outcomes: for a resolved request, for one that is not the
     * oldest pending, for an index that was never a request. */
    uint64_t b = RQ(&h, HAMOK_OP_SET, "rm", 1, 2, {"k", "v", NULL});
    uint64_t c = RQ(&h, HAMOK_OP_SET, "rm", 1, 3, {"j", "w", NULL});
    assert_string_equal(OC(&h, "rm", a, HAMOK_OK, {NULL}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(OC(&h, "rm", c, HAMOK_OK, {NULL}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(OC(&h, "rm", 999, HAMOK_OK, {NULL}), "OK");
    NO_EVENTS(&h);
    assert_int_equal(pending(&h, "rm"), 2);
    /* Observations that do not fit the request resolve it with CODEC. */
    assert_string_equal(OC(&h, "rm", b, HAMOK_OK, {NULL}, {NULL}), "OK true");
    EVENTS(&h, "ANSWER rm p1 s2 CODEC");
    /* So does a status outside the list, or observations with an error. */
    hamok_cmd_item junk = {(uint8_t *)"", 0,    true, (uint8_t *)"\x93\xcd\xff\xff\xc2\x90", 6,
                           false,         NULL, 0};
    hamok_cmd oc_cmd = {RM, HAMOK_OP_OUTCOME, (uint8_t *)"rm", 2, c, &junk, 1};
    assert_int_equal(h_cmd_raw(&h, &oc_cmd, 9, 0), HAMOK_OK);
    EVENTS(&h, "ANSWER rm p1 s3 CODEC");
    /* An outcome of another shape: INVALID, nothing resolved. */
    uint64_t d = RQ(&h, HAMOK_OP_SET, "rm", 1, 4, {"k", "v", NULL});
    hamok_cmd_item two[2] = {junk, junk};
    hamok_cmd bad = {RM, HAMOK_OP_OUTCOME, (uint8_t *)"rm", 2, d, two, 2};
    assert_int_equal(h_cmd_raw(&h, &bad, 9, 0), HAMOK_OK);
    assert_string_equal(h.result, "INVALID");
    NO_EVENTS(&h);
    junk.has_value = false;
    bad.n_items = 1;
    bad.items = &junk;
    assert_int_equal(h_cmd_raw(&h, &bad, 9, 0), HAMOK_OK);
    assert_string_equal(h.result, "INVALID");
    /* Undecodable observations: CODEC. */
    junk.has_value = true;
    junk.value = (uint8_t *)"xyz";
    junk.value_len = 3;
    assert_int_equal(h_cmd_raw(&h, &bad, 9, 0), HAMOK_OK);
    EVENTS(&h, "ANSWER rm p1 s4 CODEC");
    assert_int_equal(pending(&h, "rm"), 0);

    /* One namespace across kinds, both ways. */
    assert_string_equal(CMD(&h, HAMOK_KIND_MAP, HAMOK_OP_SET, "rm", {"k", "v", NULL}),
                        "WRONG_KIND");
    assert_string_equal(CMD(&h, HAMOK_KIND_MAP, HAMOK_OP_SET, "m", {"k", "v", NULL}), "OK");
    assert_string_equal(CMD(&h, RM, HAMOK_OP_SET, "m", {"k", "v", NULL}), "WRONG_KIND");
    assert_string_equal(OC(&h, "m", 1, HAMOK_OK, {NULL}), "WRONG_KIND");
    h_free(&h);
}

static void sessions_and_order(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    uint64_t a = RQ(&h, HAMOK_OP_SET, "rm", 1, 1, {"k", "1", NULL});
    /* A retry committed while the request is queued: nothing at all. */
    assert_string_equal(CMD_SESSION(&h, HAMOK_OP_SET, "rm", 1, 1, "k", "1"), "");
    NO_EVENTS(&h);
    assert_int_equal(pending(&h, "rm"), 1);
    /* Another client's request queues behind it. */
    uint64_t b = RQ(&h, HAMOK_OP_SET, "rm", 2, 1, {"k", "2", NULL});
    uint64_t c = RQ(&h, HAMOK_OP_DELETE, "rm", 1, 2, {"k", NULL, NULL});
    assert_int_equal(pending(&h, "rm"), 3);
    /* The pending queue, oldest first, holds the proposed commands. */
    const hamok_coll *coll = rm_coll(&h, "rm");
    uint64_t idx[3];
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *cmd;
        size_t len;
        assert_true(hamok__coll_remote_at(coll, i, &idx[i], &cmd, &len));
        hamok_cmd dec;
        assert_int_equal(hamok__cmd_decode(cmd, len, &dec), HAMOK_OK);
        assert_int_equal(dec.kind, RM);
        assert_int_equal(dec.op, i == 2 ? HAMOK_OP_DELETE : HAMOK_OP_SET);
        hamok__cmd_clear(&dec);
    }
    assert_false(hamok__coll_remote_at(coll, 3, &idx[0], &(const uint8_t *){NULL}, &(size_t){0}));
    assert_int_equal(idx[0], a);
    assert_int_equal(idx[1], b);
    assert_int_equal(idx[2], c);
    /* The epoch names the creating command. */
    hamok_id ec;
    uint64_t ei;
    hamok__coll_remote_epoch(coll, &ec, &ei);
    assert_int_equal(ec.b[15], 1);
    assert_int_equal(ei, a);

    OC(&h, "rm", a, HAMOK_OK, {NULL});
    EVENTS(&h, "INSERT rm k=k v=\"1\"", "ANSWER rm p1 s1 OK");
    OC(&h, "rm", b, HAMOK_OK, {"1"});
    EVENTS(&h, "UPDATE rm k=k old=\"1\" v=\"2\"", "ANSWER rm p2 s1 OK true [k=\"1\"]");
    /* A duplicate outcome (a retried submit): nothing. */
    OC(&h, "rm", b, HAMOK_OK, {"1"});
    NO_EVENTS(&h);
    /* A retry after the resolution gets the recorded answer. */
    assert_string_equal(CMD_SESSION(&h, HAMOK_OP_SET, "rm", 1, 1, "k", "1"), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD_SESSION(&h, HAMOK_OP_SET, "rm", 2, 1, "k", "2"), "OK true [k=\"1\"]");
    OC(&h, "rm", c, HAMOK_OK, {"2"});
    EVENTS(&h, "REMOVE rm k=k old=\"2\"", "ANSWER rm p1 s2 OK true [k]");
    assert_int_equal(pending(&h, "rm"), 0);
    assert_int_equal(hamok__coll_remote_resolved(coll), c);
    /* A request without a session is queued and answered all the same. */
    uint64_t d = RQ(&h, HAMOK_OP_SET, "rm", 0, 0, {"x", "y", NULL});
    OC(&h, "rm", d, HAMOK_OK, {NULL});
    EVENTS(&h, "INSERT rm k=x v=\"y\"", "ANSWER rm p0 s0 OK");
    h_free(&h);
}

static void effect_rules(void **state)
{
    (void)state;
    /* The leader's side of the same rules (remote_map.c decides what to
     * write with them). */
    hamok_cmd_item it = {(uint8_t *)"k", 1, true, (uint8_t *)"v", 1, true, (uint8_t *)"e", 1};
    hamok_cmd c = {RM, HAMOK_OP_SET, (uint8_t *)"rm", 2, 0, &it, 1};
    const uint8_t *e = (const uint8_t *)"e";
    assert_int_equal(hamok__remote_effect(&c, 0, false, NULL, 0), HAMOK_REMOTE_WRITE);
    assert_int_equal(hamok__remote_effect(&c, 0, true, e, 1), HAMOK_REMOTE_WRITE);
    c.op = HAMOK_OP_INSERT;
    assert_int_equal(hamok__remote_effect(&c, 0, false, NULL, 0), HAMOK_REMOTE_WRITE);
    assert_int_equal(hamok__remote_effect(&c, 0, true, (const uint8_t *)"", 0), HAMOK_REMOTE_KEEP);
    c.op = HAMOK_OP_UPDATE_IF;
    assert_int_equal(hamok__remote_effect(&c, 0, true, e, 1), HAMOK_REMOTE_WRITE);
    assert_int_equal(hamok__remote_effect(&c, 0, true, (const uint8_t *)"x", 1), HAMOK_REMOTE_KEEP);
    assert_int_equal(hamok__remote_effect(&c, 0, false, NULL, 0), HAMOK_REMOTE_KEEP);
    c.op = HAMOK_OP_DELETE;
    assert_int_equal(hamok__remote_effect(&c, 0, true, e, 1), HAMOK_REMOTE_DELETE);
    assert_int_equal(hamok__remote_effect(&c, 0, false, NULL, 0), HAMOK_REMOTE_KEEP);
    c.op = HAMOK_OP_REMOVE;
    assert_int_equal(hamok__remote_effect(&c, 0, true, (const uint8_t *)"", 0),
                     HAMOK_REMOTE_DELETE);
    c.op = HAMOK_OP_CLEAR;
    assert_int_equal(hamok__remote_effect(&c, 0, true, e, 1), HAMOK_REMOTE_KEEP);
    /* Validation. */
    c.op = HAMOK_OP_UPDATE_IF;
    assert_int_equal(hamok__remote_check(&c), HAMOK_OK);
    it.has_expected = false;
    assert_int_equal(hamok__remote_check(&c), HAMOK_ERR_INVALID);
    c.op = HAMOK_OP_OUTCOME;
    assert_int_equal(hamok__remote_check(&c), HAMOK_ERR_INVALID);
    c.op = HAMOK_OP_CLEAR;
    assert_int_equal(hamok__remote_check(&c), HAMOK_ERR_INVALID);
    c.n_items = 0;
    assert_int_equal(hamok__remote_check(&c), HAMOK_OK);
    c.op = HAMOK_OP_DELETE;
    assert_int_equal(hamok__remote_check(&c), HAMOK_ERR_INVALID);
    /* Outcome encoding refuses what the command codec refuses. */
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__remote_outcome_encode((const uint8_t *)"", 0, 1, HAMOK_OK, NULL, 0, &b),
                     HAMOK_ERR_INVALID);
    assert_int_equal(b.len, 0);
    hamok__buf_free(&b);
}

static void build_pending(harness *h)
{
    uint64_t a = RQ(h, HAMOK_OP_SET, "rm", 1, 1, {"k", "1", NULL}, {"e", "", NULL});
    OC(h, "rm", a, HAMOK_OK, {NULL}, {NULL});
    assert_string_equal(CMD(h, HAMOK_KIND_MAP, HAMOK_OP_SET, "m", {"k", "v", NULL}), "OK");
    RQ(h, HAMOK_OP_INSERT, "rm", 1, 2, {"k", "x", NULL});
    RQ(h, HAMOK_OP_UPDATE_IF, "rm", 2, 1, {"e", "y", ""});
    RQ0(h, HAMOK_OP_CLEAR, "rm", 1, 3);
    RQ(h, HAMOK_OP_REMOVE, "other", 3, 1, {"z", NULL, NULL});
}

/* Resolve everything pending in both registries the same way; the
 * answers and events must match. */
static void resolve_all_same(harness *a, harness *b)
{
    static const obs_spec one[1] = {{"1"}}, empty[1] = {{""}}, none[1] = {{NULL}};
    for (int round = 0; round < 8; round++) {
        const hamok_coll *ca = rm_coll(a, "rm");
        const hamok_coll *cb = rm_coll(b, "rm");
        assert_int_equal(hamok__coll_remote_pending(ca), hamok__coll_remote_pending(cb));
        if (hamok__coll_remote_pending(ca) == 0) {
            return;
        }
        uint64_t ia, ib;
        const uint8_t *cmd;
        size_t len;
        assert_true(hamok__coll_remote_at(ca, 0, &ia, &cmd, &len));
        hamok_cmd req;
        assert_int_equal(hamok__cmd_decode(cmd, len, &req), HAMOK_OK);
        const obs_spec *obs = req.op == HAMOK_OP_INSERT      ? one
                              : req.op == HAMOK_OP_UPDATE_IF ? empty
                                                             : none;
        size_t n = req.op == HAMOK_OP_CLEAR ? 0 : req.n_items;
        hamok__cmd_clear(&req);
        assert_true(hamok__coll_remote_at(cb, 0, &ib, &cmd, &len));
        assert_int_equal(ia, ib);
        char ra[256], rb[256];
        snprintf(ra, sizeof ra, "%s", oc(a, "rm", ia, HAMOK_OK, obs, n));
        snprintf(rb, sizeof rb, "%s", oc(b, "rm", ib, HAMOK_OK, obs, n));
        assert_string_equal(ra, rb);
        assert_int_equal(a->n_events, b->n_events);
        assert_true(a->n_events >= 1);
        for (int i = 0; i < a->n_events; i++) {
            assert_string_equal(a->events[i], b->events[i]);
        }
    }
    fail_msg("still pending");
}

static void snapshot_round_trip(void **state)
{
    (void)state;
    harness h, t;
    h_init(&h, 8);
    h_init(&t, 8);
    build_pending(&h);
    assert_int_equal(pending(&h, "rm"), 3);
    hamok_buf snap;
    h_snapshot(h.r, &snap);
    assert_int_equal(hamok__registry_restore(t.r, snap.data, snap.len), HAMOK_OK);
    char da[4096], db[4096];
    h_dump(h.r, da, sizeof da);
    h_dump(t.r, db, sizeof db);
    assert_string_equal(da, db);
    /* Same epoch, resolved index and queue. */
    const hamok_coll *ca = rm_coll(&h, "rm"), *cb = rm_coll(&t, "rm");
    hamok_id e1, e2;
    uint64_t x1, x2;
    hamok__coll_remote_epoch(ca, &e1, &x1);
    hamok__coll_remote_epoch(cb, &e2, &x2);
    assert_memory_equal(e1.b, e2.b, HAMOK_ID_LEN);
    assert_int_equal(x1, x2);
    assert_int_equal(hamok__coll_remote_resolved(ca), hamok__coll_remote_resolved(cb));
    assert_int_equal(hamok__coll_remote_resolved(ca), 1);
    /* A snapshot of the restored state is byte-identical. */
    hamok_buf snap2;
    h_snapshot(t.r, &snap2);
    assert_int_equal(snap.len, snap2.len);
    assert_memory_equal(snap.data, snap2.data, snap.len);
    /* Sessions came along: a queued request's retry does nothing, a resolved
     * one's gets its answer. */
    assert_string_equal(CMD_SESSION(&t, HAMOK_OP_INSERT, "rm", 1, 2, "k", "x"), "");
    assert_string_equal(CMD_SESSION(&t, HAMOK_OP_SET, "rm", 1, 1, "k", "1"), "OK");
    assert_string_equal(CMD_SESSION(&h, HAMOK_OP_INSERT, "rm", 1, 2, "k", "x"), "");
    assert_string_equal(CMD_SESSION(&h, HAMOK_OP_SET, "rm", 1, 1, "k", "1"), "OK");
    /* The rest resolves identically on both. */
    resolve_all_same(&h, &t);
    hamok__buf_free(&snap);
    hamok__buf_free(&snap2);
    h_free(&h);
    h_free(&t);
}

/* A hand-built snapshot with one remote map. */
typedef struct rb {
    hamok_buf b;
} rbuf;

static void put(rbuf *s, const void *p, size_t n)
{
    assert_int_equal(hamok__buf_append(&s->b, p, n), HAMOK_OK);
}

static void put_u32(rbuf *s, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(s, x, 4);
}

static void put_u64(rbuf *s, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) {
        x[i] = (uint8_t)(v >> (8 * i));
    }
    put(s, x, 8);
}

typedef struct pend_spec {
    uint64_t index;
    const char *name; /* of the map in the command */
    uint8_t op;
} pend_spec;

static hamok_status restore_remote(harness *h, uint64_t applied, uint64_t resolved,
                                   const pend_spec *ps, size_t n, uint64_t claimed_n)
{
    rbuf s = {HAMOK_BUF_INIT};
    put(&s, "HREG", 4);
    put_u32(&s, 1);
    put_u64(&s, applied);
    hamok_sessions *ss;
    assert_int_equal(hamok__sessions_new(&ss, 8), HAMOK_OK);
    hamok_buf sb = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(ss, &sb), HAMOK_OK);
    hamok__sessions_destroy(&ss);
    put_u32(&s, (uint32_t)sb.len);
    put(&s, sb.data, sb.len);
    hamok__buf_free(&sb);
    put_u64(&s, 1);
    uint8_t kind = RM, nl = 2;
    put(&s, &kind, 1);
    put(&s, &nl, 1);
    put(&s, "rm", 2);
    hamok_id epoch = hamok__id_from_u64(7);
    put(&s, epoch.b, HAMOK_ID_LEN);
    put_u64(&s, 3);
    put_u64(&s, resolved);
    put_u64(&s, claimed_n);
    for (size_t i = 0; i < n; i++) {
        put_u64(&s, ps[i].index);
        hamok_id cl = hamok__id_from_u64(1);
        put(&s, cl.b, HAMOK_ID_LEN);
        put_u64(&s, i + 1);
        hamok_cmd_item it = {(uint8_t *)"k", 1, true, (uint8_t *)"v", 1, false, NULL, 0};
        hamok_cmd c = {RM,  ps[i].op, (uint8_t *)(uintptr_t)ps[i].name, strlen(ps[i].name), 0,
                       &it, 1};
        hamok_buf cb = HAMOK_BUF_INIT;
        assert_int_equal(hamok__cmd_encode(&c, &cb), HAMOK_OK);
        put_u32(&s, (uint32_t)cb.len);
        put(&s, cb.data, cb.len);
        hamok__buf_free(&cb);
    }
    uint32_t crc = hamok__crc32c(s.b.data, s.b.len);
    put_u32(&s, crc);
    hamok_status st = hamok__registry_restore(h->r, s.b.data, s.b.len);
    hamok__buf_free(&s.b);
    return st;
}

static void corrupt_snapshots_refused(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    pend_spec good[2] = {{5, "rm", HAMOK_OP_SET}, {8, "rm", HAMOK_OP_INSERT}};
    assert_int_equal(restore_remote(&h, 10, 4, good, 2, 2), HAMOK_OK);
    assert_int_equal(pending(&h, "rm"), 2);
    hamok_id ec;
    uint64_t ei;
    hamok__coll_remote_epoch(rm_coll(&h, "rm"), &ec, &ei);
    assert_int_equal(ec.b[15], 7);
    assert_int_equal(ei, 3);
    char before[4096], after[4096];
    h_dump(h.r, before, sizeof before);
    pend_spec dec[2] = {{8, "rm", HAMOK_OP_SET}, {5, "rm", HAMOK_OP_SET}};
    assert_int_equal(restore_remote(&h, 10, 4, dec, 2, 2), HAMOK_ERR_CORRUPT); /* order */
    pend_spec dup[2] = {{5, "rm", HAMOK_OP_SET}, {5, "rm", HAMOK_OP_SET}};
    assert_int_equal(restore_remote(&h, 10, 4, dup, 2, 2), HAMOK_ERR_CORRUPT);
    assert_int_equal(restore_remote(&h, 10, 5, good, 2, 2), HAMOK_ERR_CORRUPT); /* resolved */
    assert_int_equal(restore_remote(&h, 7, 4, good, 2, 2), HAMOK_ERR_CORRUPT);  /* > applied */
    pend_spec name[1] = {{5, "xx", HAMOK_OP_SET}};
    assert_int_equal(restore_remote(&h, 10, 4, name, 1, 1), HAMOK_ERR_CORRUPT);
    pend_spec op[1] = {{5, "rm", HAMOK_OP_OUTCOME}};
    assert_int_equal(restore_remote(&h, 10, 4, op, 1, 1), HAMOK_ERR_CORRUPT);
    assert_int_equal(restore_remote(&h, 10, 4, good, 2, 3), HAMOK_ERR_CORRUPT); /* count */
    assert_int_equal(restore_remote(&h, 10, 4, good, 2, 1), HAMOK_ERR_CORRUPT); /* trailing */
    h_dump(h.r, after, sizeof after);
    assert_string_equal(before, after);
    h_free(&h);
}

/* docs/PROTOCOL.md §10.7 shows these bytes. */
static void outcome_golden_bytes(void **state)
{
    (void)state;
    static const uint8_t want[] = {0x95, 0x05, 0x0e, 0xc4, 0x01, 0x6d, 0x07, 0x91, 0x93,
                                   0xc4, 0x00, 0xc4, 0x0b, 0x93, 0x00, 0xc2, 0x91, 0x93,
                                   0xc4, 0x00, 0xc4, 0x01, 0x6f, 0xc0, 0xc0};
    hamok_cmd_item obs = {NULL, 0, true, (uint8_t *)"o", 1, false, NULL, 0};
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(
        hamok__remote_outcome_encode((const uint8_t *)"m", 1, 7, HAMOK_OK, &obs, 1, &b), HAMOK_OK);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    hamok__buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outcome_golden_bytes),
        cmocka_unit_test(every_op),
        cmocka_unit_test(errors_and_stale_outcomes),
        cmocka_unit_test(sessions_and_order),
        cmocka_unit_test(effect_rules),
        cmocka_unit_test(snapshot_round_trip),
        cmocka_unit_test(corrupt_snapshots_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
