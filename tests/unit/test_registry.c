/* Unit tests of the registry (src/collections): every op of every kind, its
 * result and its events (order and payload), empty values, wrong kinds,
 * invalid commands, exactly-once sessions, configuration-driven cleanup.
 * Snapshots and allocation failures: test_registry_snapshot.c. */
#include "registry_harness.h"

#define MAP     HAMOK_KIND_MAP
#define RECORD  HAMOK_KIND_RECORD
#define QUEUE   HAMOK_KIND_QUEUE
#define EMITTER HAMOK_KIND_EMITTER

static void expect_get(harness *h, const char *name, const char *key, const char *want)
{
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h->r, MAP, (const uint8_t *)name, strlen(name), &c),
                     HAMOK_OK);
    const uint8_t *v = NULL;
    size_t len = 99;
    bool found = hamok__coll_get(c, (const uint8_t *)key, strlen(key), &v, &len);
    if (want == NULL) {
        assert_false(found);
        return;
    }
    assert_true(found);
    assert_non_null(v);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
}

static void expect_dump(harness *h, const char *want)
{
    char got[8192];
    h_dump(h->r, got, sizeof got);
    /* skip the "applied=..." line */
    const char *body = strchr(got, '\n') + 1;
    if (strcmp(body, want) != 0) {
        fail_msg("state:\n%s\nwant:\n%s", body, want);
    }
}

static void map_every_op(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"k1", "v1", NULL}), "OK");
    EVENTS(&h, "INSERT m k=k1 v=\"v1\"");
    assert_int_equal(h.ev_kind[0], MAP);
    assert_int_equal(h.ev_index[0], 1);

    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"k1", "v2", NULL}, {"k2", "", NULL}),
                        "OK true [k1=\"v1\"]");
    EVENTS(&h, "UPDATE m k=k1 old=\"v1\" v=\"v2\"", "INSERT m k=k2 v=\"\"");
    assert_int_equal(h.ev_index[1], 2);

    assert_string_equal(CMD(&h, MAP, HAMOK_OP_INSERT, "m", {"k1", "x", NULL}, {"k3", "v3", NULL}),
                        "OK true [k1=\"v2\"]");
    EVENTS(&h, "INSERT m k=k3 v=\"v3\"");
    expect_get(&h, "m", "k1", "v2");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_INSERT, "m", {"k4", "v4", NULL}), "OK");
    EVENTS(&h, "INSERT m k=k4 v=\"v4\"");

    /* UPDATE_IF: mismatch, absent key, match. */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k1", "n1", "wrong"}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k9", "n1", "v2"}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k1", "n1", "v2"}), "OK true");
    EVENTS(&h, "UPDATE m k=k1 old=\"v2\" v=\"n1\"");
    expect_get(&h, "m", "k1", "n1");

    /* DELETE / REMOVE: present and absent keys. */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"k2", NULL, NULL}, {"zz", NULL, NULL}),
                        "OK true [k2]");
    EVENTS(&h, "REMOVE m k=k2 old=\"\"");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE, "m", {"zz", NULL, NULL}, {"k3", NULL, NULL}),
                        "OK true [k3=\"v3\"]");
    EVENTS(&h, "REMOVE m k=k3 old=\"v3\"");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"zz", NULL, NULL}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE, "m", {"zz", NULL, NULL}), "OK");
    NO_EVENTS(&h);

    /* REMOVE_IF: a mismatch answers false (never silence: bug A7). */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE_IF, "m", {"k1", NULL, "nope"}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE_IF, "m", {"k9", NULL, "n1"}), "OK");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE_IF, "m", {"k1", NULL, "n1"}), "OK true");
    EVENTS(&h, "REMOVE m k=k1 old=\"n1\"");
    expect_get(&h, "m", "k1", NULL);
    expect_dump(&h, "1:m size=1 {k4=\"v4\" }\n");

    /* CLEAR: one event, no per-key events; flag = it was not empty. */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"a", "1", NULL}), "OK");
    assert_string_equal(CMD0(&h, MAP, HAMOK_OP_CLEAR, "m", 0), "OK true");
    EVENTS(&h, "CLEAR m");
    assert_string_equal(CMD0(&h, MAP, HAMOK_OP_CLEAR, "m", 0), "OK");
    EVENTS(&h, "CLEAR m");
    expect_dump(&h, "1:m size=0 {}\n");
    h_free(&h);
}

/* Iteration follows the insertion order of keys; an update keeps the
 * position, a removed and re-added key goes last. */
static void map_iteration_order(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"c", "1", NULL}, {"a", "2", NULL}, {"b", "3", NULL});
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"a", "9", NULL});
    expect_dump(&h, "1:m size=3 {c=\"1\" a=\"9\" b=\"3\" }\n");
    CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"c", NULL, NULL});
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"c", "4", NULL});
    expect_dump(&h, "1:m size=3 {a=\"9\" b=\"3\" c=\"4\" }\n");
    h_free(&h);
}

/* An empty value is a value (bug A1 of the original treated falsy values as
 * absent); an empty key is a key. */
static void empty_values_are_values(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"k", "", NULL}), "OK");
    EVENTS(&h, "INSERT m k=k v=\"\"");
    expect_get(&h, "m", "k", "");
    /* insert does not overwrite it, and reports it */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_INSERT, "m", {"k", "x", NULL}), "OK true [k=\"\"]");
    NO_EVENTS(&h);
    expect_get(&h, "m", "k", "");
    /* set reports it as the previous value */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"k", "", NULL}), "OK true [k=\"\"]");
    EVENTS(&h, "UPDATE m k=k old=\"\" v=\"\"");
    /* conditional operations match it */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k", "y", ""}), "OK true");
    EVENTS(&h, "UPDATE m k=k old=\"\" v=\"y\"");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k", "", "y"}), "OK true");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE_IF, "m", {"k", NULL, ""}), "OK true");
    EVENTS(&h, "REMOVE m k=k old=\"\"");
    /* delete finds it */
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"k", "", NULL});
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"k", NULL, NULL}), "OK true [k]");
    /* the empty key */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"", "", NULL}), "OK");
    EVENTS(&h, "INSERT m k= v=\"\"");
    expect_get(&h, "m", "", "");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE, "m", {"", NULL, NULL}), "OK true [=\"\"]");
    /* an empty queue item and empty metadata */
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "", NULL}), "OK");
    EVENTS(&h, "ADD q v=\"\"", "NOT_EMPTY q");
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 0), "OK true [=\"\"]");
    EVENTS(&h, "REMOVE q v=\"\"", "EMPTY q");
    assert_string_equal(
        h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 1, (const spec[]){{"ev", "", NULL}}, 1),
        "OK true");
    EVENTS(&h, "SUB_ADDED e k=ev v=\"\" p1");
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, EMITTER, (const uint8_t *)"e", 1, &c), HAMOK_OK);
    hamok_id p1 = hamok__id_from_u64(1);
    bool has = false;
    const uint8_t *meta = NULL;
    size_t ml = 9;
    assert_true(hamok__coll_subscribed(c, (const uint8_t *)"ev", 2, &p1, &has, &meta, &ml));
    assert_true(has);
    assert_non_null(meta);
    assert_int_equal(ml, 0);
    h_free(&h);
}

static void record_every_op(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    assert_string_equal(
        CMD(&h, RECORD, HAMOK_OP_SET, "r", {"name", "ann", NULL}, {"age", "3", NULL}), "OK");
    EVENTS(&h, "INSERT r k=name v=\"ann\"", "INSERT r k=age v=\"3\"");
    assert_int_equal(h.ev_kind[0], RECORD);
    /* Every expectation must hold; then every value is written. */
    assert_string_equal(
        CMD(&h, RECORD, HAMOK_OP_UPDATE_IF, "r", {"name", "bob", "ann"}, {"age", NULL, "4"}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_UPDATE_IF, "r", {"name", "bob", "ann"},
                            {"age", "5", "3"}, {"city", "x", NULL}, {"note", NULL, NULL}),
                        "OK true");
    EVENTS(&h, "UPDATE r k=name old=\"ann\" v=\"bob\"", "UPDATE r k=age old=\"3\" v=\"5\"",
           "INSERT r k=city v=\"x\"");
    /* No expectations: always true. An expectation on an absent field fails. */
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_UPDATE_IF, "r", {"zip", "1", NULL}), "OK true");
    EVENTS(&h, "INSERT r k=zip v=\"1\"");
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_UPDATE_IF, "r", {"gone", "1", "1"}), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_INSERT, "r", {"zip", "2", NULL}),
                        "OK true [zip=\"1\"]");
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_REMOVE, "r", {"city", NULL, NULL}),
                        "OK true [city=\"x\"]");
    EVENTS(&h, "REMOVE r k=city old=\"x\"");
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_DELETE, "r", {"zip", NULL, NULL}),
                        "OK true [zip]");
    /* REMOVE_IF is a map operation. */
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_REMOVE_IF, "r", {"name", NULL, "bob"}), "INVALID");
    NO_EVENTS(&h);
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, RECORD, (const uint8_t *)"r", 1, &c), HAMOK_OK);
    const uint8_t *v;
    size_t vl;
    assert_true(hamok__coll_get(c, (const uint8_t *)"age", 3, &v, &vl));
    assert_memory_equal(v, "5", 1);
    expect_dump(&h, "2:r size=2 {name=\"bob\" age=\"5\" }\n");
    assert_string_equal(CMD0(&h, RECORD, HAMOK_OP_CLEAR, "r", 0), "OK true");
    EVENTS(&h, "CLEAR r");
    h_free(&h);
}

static void queue_every_op(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "a", NULL}, {"ignored", "b", NULL}),
                        "OK");
    EVENTS(&h, "ADD q v=\"a\"", "ADD q v=\"b\"", "NOT_EMPTY q");
    assert_int_equal(h.ev_kind[2], QUEUE);
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "c", NULL}), "OK");
    EVENTS(&h, "ADD q v=\"c\""); /* was not empty: no NOT_EMPTY */
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, QUEUE, (const uint8_t *)"q", 1, &c), HAMOK_OK);
    const uint8_t *v;
    size_t vl;
    assert_true(hamok__coll_peek(c, &v, &vl));
    assert_memory_equal(v, "a", 1);
    assert_int_equal(hamok__coll_size(c), 3);
    expect_dump(&h, "3:q size=3 {=\"a\" =\"b\" =\"c\" }\n");

    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 0), "OK true [=\"a\"]");
    EVENTS(&h, "REMOVE q v=\"a\"");
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 5), "OK true [=\"b\", =\"c\"]");
    EVENTS(&h, "REMOVE q v=\"b\"", "REMOVE q v=\"c\"", "EMPTY q");
    assert_false(hamok__coll_peek(c, &v, &vl));
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 1), "OK");
    NO_EVENTS(&h);
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_CLEAR, "q", 0), "OK");
    EVENTS(&h, "CLEAR q");
    /* Many pushes and pops: the ring wraps and grows. */
    for (int round = 0; round < 5; round++) {
        spec items[40];
        char vals[40][8];
        for (int i = 0; i < 40; i++) {
            snprintf(vals[i], sizeof vals[i], "%d", round * 40 + i);
            items[i] = (spec){"", vals[i], NULL};
        }
        h_cmd(&h, QUEUE, HAMOK_OP_PUSH, "q", 0, 0, 0, items, 40);
        CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 30);
    }
    assert_int_equal(hamok__coll_size(c), 50);
    assert_true(hamok__coll_peek(c, &v, &vl));
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "150", 3);
    size_t cur = 0;
    hamok_coll_view view;
    for (int i = 150; i < 200; i++) {
        char want[8];
        snprintf(want, sizeof want, "%d", i);
        assert_true(hamok__coll_next(c, &cur, &view));
        assert_null(view.key);
        assert_true(view.has_value);
        assert_int_equal(view.value_len, strlen(want));
        assert_memory_equal(view.value, want, view.value_len);
    }
    assert_false(hamok__coll_next(c, &cur, &view));
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_CLEAR, "q", 0), "OK true");
    EVENTS(&h, "CLEAR q", "EMPTY q");
    assert_int_equal(hamok__coll_size(c), 0);
    /* A queue holding exactly one item (bug A2 of the original lost it on
     * import; see the snapshot tests) still works as a queue. */
    CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "only", NULL});
    CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "next", NULL});
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 0), "OK true [=\"only\"]");
    h_free(&h);
}

static void emitter_every_op(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 1,
                              (const spec[]){{"ev1", "m1", NULL}, {"ev2", NULL, NULL}}, 2),
                        "OK true");
    EVENTS(&h, "SUB_ADDED e k=ev1 v=\"m1\" p1", "SUB_ADDED e k=ev2 p1");
    assert_int_equal(h.ev_kind[0], EMITTER);
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 2, 1,
                              (const spec[]){{"ev1", "other", NULL}}, 1),
                        "OK true");
    EVENTS(&h, "SUB_ADDED e k=ev1 v=\"other\" p2");
    /* Subscribing again keeps the metadata. */
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 2,
                              (const spec[]){{"ev1", "zzz", NULL}}, 1),
                        "OK");
    NO_EVENTS(&h);
    expect_dump(&h, "4:e size=3 {ev1=\"m1\"@p1 ev1=\"other\"@p2 ev2@p1 }\n");

    /* Unsubscribing from one event leaves the others (bug A4). */
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", 0, 1, 3,
                              (const spec[]){{"ev2", NULL, NULL}, {"nope", NULL, NULL}}, 2),
                        "OK true");
    EVENTS(&h, "SUB_REMOVED e k=ev2 p1");
    expect_dump(&h, "4:e size=2 {ev1=\"m1\"@p1 ev1=\"other\"@p2 }\n");
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", 0, 1, 4,
                              (const spec[]){{"ev2", NULL, NULL}}, 1),
                        "OK");
    NO_EVENTS(&h);

    /* UPDATE_METADATA */
    const spec wrong[] = {{"ev1", "m2", "wrong"}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 5, wrong, 1), "OK");
    NO_EVENTS(&h);
    const spec right[] = {{"ev1", "m2", "m1"}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 6, right, 1),
                        "OK true");
    EVENTS(&h, "SUB_UPDATED e k=ev1 old=\"m1\" v=\"m2\" p1");
    const spec any[] = {{"ev1", "m3", NULL}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 7, any, 1),
                        "OK true");
    EVENTS(&h, "SUB_UPDATED e k=ev1 old=\"m2\" v=\"m3\" p1");
    const spec drop[] = {{"ev1", NULL, NULL}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 8, drop, 1),
                        "OK true");
    EVENTS(&h, "SUB_UPDATED e k=ev1 old=\"m3\" p1");
    /* arg bit 0: expected absent */
    const spec m4[] = {{"ev1", "m4", NULL}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 1, 1, 9, m4, 1),
                        "OK true");
    EVENTS(&h, "SUB_UPDATED e k=ev1 v=\"m4\" p1");
    const spec m5[] = {{"ev1", "m5", NULL}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 1, 1, 10, m5, 1), "OK");
    NO_EVENTS(&h);
    /* expected given, current absent: false */
    const spec m6[] = {{"ev1", "m6", "m4"}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 2, 2,
                              (const spec[]){{"ev1", NULL, NULL}}, 1),
                        "OK true");
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 2, 3, m6, 1), "OK");
    /* not subscribed: false */
    const spec ev9[] = {{"ev9", "x", NULL}};
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 11, ev9, 1), "OK");

    /* Reads: subscribers of one event, in subscription order. */
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, EMITTER, (const uint8_t *)"e", 1, &c), HAMOK_OK);
    size_t cur = 0;
    hamok_coll_view v;
    assert_true(hamok__coll_next_subscriber(c, (const uint8_t *)"ev1", 3, &cur, &v));
    assert_int_equal(v.peer.b[15], 1);
    assert_true(v.has_value);
    assert_memory_equal(v.value, "m4", 2);
    assert_true(hamok__coll_next_subscriber(c, (const uint8_t *)"ev1", 3, &cur, &v));
    assert_int_equal(v.peer.b[15], 2);
    assert_false(v.has_value);
    assert_false(hamok__coll_next_subscriber(c, (const uint8_t *)"ev1", 3, &cur, &v));
    cur = 0;
    assert_false(hamok__coll_next_subscriber(c, (const uint8_t *)"ev2", 3, &cur, &v));
    hamok_id p1 = hamok__id_from_u64(1), p3 = hamok__id_from_u64(3);
    assert_true(hamok__coll_subscribed(c, (const uint8_t *)"ev1", 3, &p1, NULL, NULL, NULL));
    assert_false(hamok__coll_subscribed(c, (const uint8_t *)"ev1", 3, &p3, NULL, NULL, NULL));

    /* CLEANUP: by peer id, from every event; result = peers that had any. */
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 2, 4, (const spec[]){{"ev3", "z", NULL}}, 1);
    hamok_id p2 = hamok__id_from_u64(2), p7 = hamok__id_from_u64(7);
    /* (ids start with zero bytes: build the command by hand) */
    hamok_cmd_item items[2];
    memset(items, 0, sizeof items);
    items[0].key = p7.b;
    items[0].key_len = 16;
    items[1].key = p2.b;
    items[1].key_len = 16;
    hamok_cmd cmd = {EMITTER, HAMOK_OP_CLEANUP, (uint8_t *)"e", 1, 0, items, 2};
    assert_int_equal(h_cmd_raw(&h, &cmd, 0, 0), HAMOK_OK);
    assert_string_equal(h.result,
                        "OK true [\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
                        "\\x00\\x00\\x00\\x00\\x02]");
    EVENTS(&h, "SUB_REMOVED e k=ev1 p2", "SUB_REMOVED e k=ev3 old=\"z\" p2");
    expect_dump(&h, "4:e size=1 {ev1=\"m4\"@p1 }\n");
    cmd.n_items = 1;
    assert_int_equal(h_cmd_raw(&h, &cmd, 0, 0), HAMOK_OK);
    assert_string_equal(h.result, "OK");
    NO_EVENTS(&h);
    /* The last subscriber leaving drops the event; re-subscribing puts it last. */
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 3, 1, (const spec[]){{"ev0", NULL, NULL}}, 1);
    h_cmd(&h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", 0, 1, 12, (const spec[]){{"ev1", NULL, NULL}}, 1);
    EVENTS(&h, "SUB_REMOVED e k=ev1 old=\"m4\" p1");
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 13, (const spec[]){{"ev1", NULL, NULL}}, 1);
    expect_dump(&h, "4:e size=2 {ev0@p3 ev1@p1 }\n");
    h_free(&h);
}

static void emitter_invalid(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    /* No client: nobody to subscribe. */
    assert_string_equal(CMD(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", {"ev", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", {"ev", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", {"ev", NULL, NULL}),
                        "INVALID");
    /* CLEANUP keys are peer ids. */
    assert_string_equal(CMD(&h, EMITTER, HAMOK_OP_CLEANUP, "e", {"short", NULL, NULL}), "INVALID");
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 1,
                              (const spec[]){{"a", NULL, NULL}, {"b", NULL, NULL}}, 2),
                        "INVALID");
    assert_string_equal(h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 2,
                              (const spec[]){{"a", NULL, NULL}, {"a", "x", NULL}}, 2),
                        "INVALID");
    assert_string_equal(
        h_cmd(&h, EMITTER, HAMOK_OP_SET, "e", 0, 1, 3, (const spec[]){{"a", "1", NULL}}, 1),
        "INVALID");
    NO_EVENTS(&h);
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, EMITTER, (const uint8_t *)"e", 1, &c),
                     HAMOK_ERR_NOT_FOUND); /* nothing created */
    h_free(&h);
}

static void wrong_kind(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    CMD(&h, MAP, HAMOK_OP_SET, "shared", {"k", "v", NULL});
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_PUSH, "shared", {"", "x", NULL}), "WRONG_KIND");
    NO_EVENTS(&h);
    assert_string_equal(CMD(&h, RECORD, HAMOK_OP_SET, "shared", {"k", "x", NULL}), "WRONG_KIND");
    /* WRONG_KIND wins over an op the other kind does not support */
    assert_string_equal(CMD(&h, EMITTER, HAMOK_OP_SET, "shared", {"k", "x", NULL}), "WRONG_KIND");
    const hamok_coll *c = (const hamok_coll *)1;
    assert_int_equal(hamok__registry_lookup(h.r, QUEUE, (const uint8_t *)"shared", 6, &c),
                     HAMOK_ERR_WRONG_KIND);
    assert_null(c);
    assert_int_equal(hamok__registry_lookup(h.r, MAP, (const uint8_t *)"shared", 6, &c), HAMOK_OK);
    assert_int_equal(hamok__coll_kind(c), MAP);
    const hamok_coll *none;
    assert_int_equal(hamok__registry_lookup(h.r, MAP, (const uint8_t *)"nope", 4, &none),
                     HAMOK_ERR_NOT_FOUND);
    assert_null(none);
    /* Reads of the wrong shape answer nothing. */
    const uint8_t *v;
    size_t vl;
    assert_false(hamok__coll_peek(c, &v, &vl));
    size_t cur = 0;
    hamok_coll_view view;
    assert_false(hamok__coll_next_subscriber(c, (const uint8_t *)"k", 1, &cur, &view));
    hamok_id p = hamok__id_from_u64(1);
    assert_false(hamok__coll_subscribed(c, (const uint8_t *)"k", 1, &p, NULL, NULL, NULL));
    expect_get(&h, "shared", "k", "v");
    h_free(&h);
}

static void invalid_commands_change_nothing(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    /* Unsupported op: INVALID, the collection is not created. */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_PUSH, "m", {"", "x", NULL}), "INVALID");
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, MAP, (const uint8_t *)"m", 1, &c),
                     HAMOK_ERR_NOT_FOUND);
    assert_string_equal(CMD0(&h, MAP, HAMOK_OP_SET, "m", 0), "INVALID"); /* no items */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_INSERT, "m", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k", "v", NULL}), "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k", NULL, "e"}), "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_UPDATE_IF, "m", {"k", "v", "e"}, {"j", "v", "e"}),
                        "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_REMOVE_IF, "m", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD0(&h, RECORD, HAMOK_OP_UPDATE_IF, "r", 0), "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_CLEAR, "m", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_POP, "q", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_CLEAR, "q", {"k", NULL, NULL}), "INVALID");
    assert_string_equal(CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", NULL, NULL}), "INVALID");
    assert_string_equal(CMD0(&h, QUEUE, HAMOK_OP_PUSH, "q", 0), "INVALID");
    /* Duplicate keys in one command. */
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_SET, "m", {"a", "1", NULL}, {"a", "2", NULL}),
                        "INVALID");
    assert_string_equal(CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"a", NULL, NULL}, {"a", NULL, NULL}),
                        "INVALID");
    spec many[40];
    char keys[40][8];
    for (int i = 0; i < 40; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        many[i] = (spec){keys[i], "v", NULL};
    }
    many[39].k = "k7"; /* the duplicate is found among many (hashed path) */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 0, 0, many, 40), "INVALID");
    many[39].k = "k39";
    /* An invalid remote-map request is answered at once and queues nothing
     * (test_registry_remote.c covers the rest). */
    assert_string_equal(CMD(&h, HAMOK_KIND_REMOTE_MAP, HAMOK_OP_SET, "rm", {"k", NULL, NULL}),
                        "INVALID");
    NO_EVENTS(&h);
    assert_int_equal(hamok__registry_count(h.r), 0);
    /* Not a command at all: CODEC, still a committed entry. */
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.type = HAMOK_ENTRY_COMMAND;
    e.data = (uint8_t *)"xyz";
    e.len = 3;
    assert_int_equal(h_apply_entry(&h, &e), HAMOK_OK);
    assert_string_equal(h.result, "CODEC");
    e.data = NULL;
    e.len = 0;
    assert_int_equal(h_apply_entry(&h, &e), HAMOK_OK);
    assert_string_equal(h.result, "CODEC");
    NO_EVENTS(&h);
    /* Distinct keys, many of them: fine. */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 0, 0, many, 40), "OK");
    assert_int_equal(h.n_events, 40);
    h_free(&h);
}

static void noop_config_and_index(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.type = HAMOK_ENTRY_NOOP;
    assert_int_equal(h_apply_entry(&h, &e), HAMOK_OK);
    assert_int_equal(hamok__registry_applied(h.r), 1);
    /* An index that is not above the applied one: refused. */
    hamok_buf res = HAMOK_BUF_INIT;
    assert_int_equal(hamok__registry_apply(h.r, 1, &e, &res, NULL, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__registry_apply(h.r, 0, &e, &res, NULL, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__registry_apply(h.r, 5, NULL, &res, NULL, NULL), HAMOK_ERR_INVALID);
    /* Gaps are the caller's business (a snapshot may have covered them). */
    assert_int_equal(hamok__registry_apply(h.r, 5, &e, &res, NULL, NULL), HAMOK_OK);
    assert_int_equal(hamok__registry_applied(h.r), 5);
    assert_int_equal(res.len, 0);
    /* A garbage configuration changes nothing. */
    e.type = HAMOK_ENTRY_CONFIG;
    e.data = (uint8_t *)"\xc1";
    e.len = 1;
    assert_int_equal(h_apply_entry(&h, &e), HAMOK_OK);
    /* No sink, no result buffer: fine. */
    hamok_cmd_item it = {(uint8_t *)"k", 1, true, (uint8_t *)"v", 1, false, NULL, 0};
    hamok_cmd cmd = {MAP, HAMOK_OP_SET, (uint8_t *)"m", 1, 0, &it, 1};
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__cmd_encode(&cmd, &b), HAMOK_OK);
    hamok_entry ce = {1, HAMOK_ENTRY_COMMAND, {{0}}, 0, b.data, b.len};
    assert_int_equal(hamok__registry_apply(h.r, 7, &ce, NULL, NULL, NULL), HAMOK_OK);
    expect_get(&h, "m", "k", "v");
    /* Results are appended to what the buffer holds. */
    assert_int_equal(hamok__buf_append(&res, "AB", 2), HAMOK_OK);
    assert_int_equal(hamok__registry_apply(h.r, 8, &ce, &res, NULL, NULL), HAMOK_OK);
    assert_true(res.len > 2);
    assert_memory_equal(res.data, "AB", 2);
    hamok__buf_free(&b);
    hamok__buf_free(&res);
    h_free(&h);
    hamok__registry_destroy(NULL);
    hamok_registry *r = NULL;
    hamok__registry_destroy(&r);
    assert_int_equal(hamok__registry_new(&r, HAMOK_SESSION_MAX_WINDOW + 1), HAMOK_ERR_INVALID);
}

/* Exactly-once: a duplicate gets the recorded result and changes nothing; a
 * number older than the window is EXPIRED; numbers inside the window that
 * were never applied are new. */
static void sessions_exactly_once(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    const spec k1[] = {{"k", "1", NULL}};
    const spec k2[] = {{"k", "2", NULL}};
    const spec k3[] = {{"k", "3", NULL}};
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 1, k1, 1), "OK");
    EVENTS(&h, "INSERT m k=k v=\"1\"");
    /* the retry of seq 1 (even with other data) is a duplicate */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 1, k2, 1), "OK");
    NO_EVENTS(&h);
    expect_get(&h, "m", "k", "1");
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 2, k3, 1), "OK true [k=\"1\"]");
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 2, k3, 1), "OK true [k=\"1\"]");
    NO_EVENTS(&h);
    expect_get(&h, "m", "k", "3");
    /* another client has its own numbers */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 2, 1, k2, 1), "OK true [k=\"3\"]");
    /* a jump ahead, then a gap inside the window: new */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 10, k1, 1), "OK true [k=\"2\"]");
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 5, k3, 1), "OK true [k=\"1\"]");
    EVENTS(&h, "UPDATE m k=k old=\"1\" v=\"3\"");
    /* older than the window (10 - 8): expired, no effect */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 2, k1, 1), "EXPIRED");
    NO_EVENTS(&h);
    expect_get(&h, "m", "k", "3");
    /* refusals are recorded too: a retry answers the same */
    const spec bad[] = {{"k", NULL, NULL}};
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 11, bad, 1), "INVALID");
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 11, k1, 1), "INVALID");
    expect_get(&h, "m", "k", "3");
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.type = HAMOK_ENTRY_COMMAND;
    e.client = hamok__id_from_u64(1);
    e.seq = 12;
    e.data = (uint8_t *)"?";
    e.len = 1;
    assert_int_equal(h_apply_entry(&h, &e), HAMOK_OK);
    assert_string_equal(h.result, "CODEC");
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 12, k1, 1), "CODEC");
    /* pops: each item to exactly one popper, even when retried */
    CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "a", NULL}, {"", "b", NULL});
    assert_string_equal(h_cmd(&h, QUEUE, HAMOK_OP_POP, "q", 0, 3, 1, NULL, 0), "OK true [=\"a\"]");
    assert_string_equal(h_cmd(&h, QUEUE, HAMOK_OP_POP, "q", 0, 3, 1, NULL, 0), "OK true [=\"a\"]");
    NO_EVENTS(&h);
    assert_string_equal(h_cmd(&h, QUEUE, HAMOK_OP_POP, "q", 0, 4, 1, NULL, 0), "OK true [=\"b\"]");
    h_free(&h);
}

static void apply_config(harness *h, const uint64_t *ids, size_t n)
{
    hamok_member ms[8];
    memset(ms, 0, sizeof ms);
    for (size_t i = 0; i < n; i++) {
        ms[i].id = hamok__id_from_u64(ids[i]);
        ms[i].role = HAMOK_MEMBER_VOTER;
        ms[i].endpoint = (char *)"";
    }
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__codec_encode_config(ms, n, &b), HAMOK_OK);
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.type = HAMOK_ENTRY_CONFIG;
    e.data = b.data;
    e.len = b.len;
    assert_int_equal(h_apply_entry(h, &e), HAMOK_OK);
    hamok__buf_free(&b);
}

/* A configuration that no longer holds a peer removes its subscriptions
 * (events SUB_REMOVED) and its session. */
static void config_cleans_departed_peers(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 1,
          (const spec[]){{"ev1", "a", NULL}, {"ev2", NULL, NULL}}, 2);
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 2, 1, (const spec[]){{"ev1", NULL, NULL}}, 1);
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 3, 1, (const spec[]){{"ev3", "c", NULL}}, 1);
    h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "f", 0, 3, 2, (const spec[]){{"x", NULL, NULL}}, 1);
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"k", "v", NULL});

    apply_config(&h, (const uint64_t[]){1, 2}, 2);
    EVENTS(&h, "SUB_REMOVED e k=ev3 old=\"c\" p3", "SUB_REMOVED f k=x p3");
    assert_int_equal(h.ev_index[0], hamok__registry_applied(h.r));
    assert_int_equal(h.ev_kind[0], EMITTER);
    expect_dump(&h,
                "4:e size=3 {ev1=\"a\"@p1 ev1@p2 ev2@p1 }\n"
                "4:f size=0 {}\n"
                "1:m size=1 {k=\"v\" }\n");
    /* Peer 3's session is gone, its last number stays: a retry of its seq 1
     * is EXPIRED (it was applied once already), seq 3 is new. */
    assert_string_equal(
        h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 3, 1, (const spec[]){{"ev3", "c", NULL}}, 1),
        "EXPIRED");
    NO_EVENTS(&h);
    assert_string_equal(
        h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 3, 3, (const spec[]){{"ev3", "c", NULL}}, 1),
        "OK true");
    EVENTS(&h, "SUB_ADDED e k=ev3 v=\"c\" p3");
    /* Peer 1 still has its session. */
    assert_string_equal(
        h_cmd(&h, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 1, (const spec[]){{"zz", NULL, NULL}}, 1),
        "OK true");
    NO_EVENTS(&h);

    apply_config(&h, (const uint64_t[]){2}, 1);
    EVENTS(&h, "SUB_REMOVED e k=ev1 old=\"a\" p1", "SUB_REMOVED e k=ev2 p1",
           "SUB_REMOVED e k=ev3 old=\"c\" p3");
    expect_dump(&h,
                "4:e size=1 {ev1@p2 }\n"
                "4:f size=0 {}\n"
                "1:m size=1 {k=\"v\" }\n");
    apply_config(&h, (const uint64_t[]){2}, 1);
    NO_EVENTS(&h);
    h_free(&h);
}

/* Regression (tests/sim/FINDINGS.md, round 4): a peer removed from the
 * configuration lost its session, and a retry of a command it had applied
 * before — still in flight, or resent after it was added back under the
 * same id — was applied a second time. */
static void removed_peer_retry_not_applied_twice(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    apply_config(&h, (const uint64_t[]){1, 3}, 2);
    const spec v1[] = {{"k", "1", NULL}};
    const spec v2[] = {{"k", "2", NULL}};
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 3, 5, v1, 1), "OK");
    CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "a", NULL});
    apply_config(&h, (const uint64_t[]){1}, 1); /* peer 3 removed */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 1, 7, v2, 1), "OK true [k=\"1\"]");
    /* Peer 3's retry of its seq 5 arrives: not applied again. */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 3, 5, v1, 1), "EXPIRED");
    NO_EVENTS(&h);
    expect_get(&h, "m", "k", "2");
    /* Added back under the same id: still not. */
    apply_config(&h, (const uint64_t[]){1, 3}, 2);
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 3, 5, v1, 1), "EXPIRED");
    expect_get(&h, "m", "k", "2");
    /* A pop retried the same way takes no second item. */
    assert_string_equal(h_cmd(&h, QUEUE, HAMOK_OP_POP, "q", 0, 3, 6, NULL, 0), "OK true [=\"a\"]");
    apply_config(&h, (const uint64_t[]){1}, 1);
    CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", "b", NULL});
    assert_string_equal(h_cmd(&h, QUEUE, HAMOK_OP_POP, "q", 0, 3, 6, NULL, 0), "EXPIRED");
    /* New numbers are new. */
    assert_string_equal(h_cmd(&h, MAP, HAMOK_OP_SET, "m", 0, 3, 8, v1, 1), "OK true [k=\"2\"]");
    expect_get(&h, "m", "k", "1");
    h_free(&h);
}

/* Results never exceed a frame: a command whose result would is refused
 * (no effect); POP stops short of `arg`. */
static void results_fit_a_frame(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    size_t big = 400 * 1024;
    char *v = malloc(big + 1);
    assert_non_null(v);
    memset(v, 'x', big);
    v[big] = '\0';
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"a", v, NULL});
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"b", v, NULL});
    CMD(&h, MAP, HAMOK_OP_SET, "m", {"c", v, NULL});
    assert_string_equal(
        CMD(&h, MAP, HAMOK_OP_REMOVE, "m", {"a", NULL, NULL}, {"b", NULL, NULL}, {"c", NULL, NULL}),
        "TOO_BIG");
    NO_EVENTS(&h);
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, MAP, (const uint8_t *)"m", 1, &c), HAMOK_OK);
    assert_int_equal(hamok__coll_size(c), 3);
    /* DELETE answers keys only: fine. */
    assert_string_equal(
        CMD(&h, MAP, HAMOK_OP_DELETE, "m", {"a", NULL, NULL}, {"b", NULL, NULL}, {"c", NULL, NULL}),
        "OK true [a, b, c]");
    assert_int_equal(h.n_events, 3);

    for (int i = 0; i < 3; i++) {
        CMD(&h, QUEUE, HAMOK_OP_PUSH, "q", {"", v, NULL});
    }
    CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 10);
    assert_int_equal(h.n_events, 2); /* two fit in an answer */
    assert_int_equal(strncmp(h.result, "OK true [=\"xxx", 14), 0);
    CMD0(&h, QUEUE, HAMOK_OP_POP, "q", 10);
    assert_int_equal(h.n_events, 2); /* the last one, then EMPTY */
    free(v);
    h_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_every_op),
        cmocka_unit_test(map_iteration_order),
        cmocka_unit_test(empty_values_are_values),
        cmocka_unit_test(record_every_op),
        cmocka_unit_test(queue_every_op),
        cmocka_unit_test(emitter_every_op),
        cmocka_unit_test(emitter_invalid),
        cmocka_unit_test(wrong_kind),
        cmocka_unit_test(invalid_commands_change_nothing),
        cmocka_unit_test(noop_config_and_index),
        cmocka_unit_test(sessions_exactly_once),
        cmocka_unit_test(config_cleans_departed_peers),
        cmocka_unit_test(removed_peer_retry_not_applied_twice),
        cmocka_unit_test(results_fit_a_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
