/* Unit tests of the registry's snapshot/restore (round trips for every kind,
 * pieces, write errors, every truncation and bit flip refused, semantically
 * corrupt snapshots refused, state unchanged on refusal) and of allocation
 * failures: every allocation of a scenario fails in turn, and each failing
 * entry must have had no effect at all (state and events), then apply
 * normally when retried. */
#include "collections/remote.h"
#include "registry_harness.h"
#include "util/crc32c.h"

#define MAP     HAMOK_KIND_MAP
#define RECORD  HAMOK_KIND_RECORD
#define QUEUE   HAMOK_KIND_QUEUE
#define EMITTER HAMOK_KIND_EMITTER

/* ------------------------------------------------------------------------- */
/* A state with every kind and shape */

static void subscribe(harness *h, const char *name, uint64_t client, uint64_t seq,
                      const char *event, const char *meta)
{
    const spec s[] = {{event, meta, NULL}};
    h_cmd(h, EMITTER, HAMOK_OP_SUBSCRIBE, name, 0, client, seq, s, 1);
}

static void build_state(harness *h)
{
    /* A map with binary keys and values, an empty value, holes. */
    for (uint32_t i = 0; i < 100; i++) {
        uint8_t key[6] = {0, 'k', (uint8_t)i, 0, 0xff, (uint8_t)(i * 7)};
        uint8_t val[3] = {(uint8_t)i, 0, 0x80};
        hamok_cmd_item it = {key, sizeof key, true, val, i % 4, false, NULL, 0};
        hamok_cmd c = {MAP, HAMOK_OP_SET, (uint8_t *)"m\0bin", 5, 0, &it, 1};
        assert_int_equal(h_cmd_raw(h, &c, 1 + i % 3, 1 + i / 3), HAMOK_OK);
    }
    for (uint32_t i = 0; i < 100; i += 3) {
        uint8_t key[6] = {0, 'k', (uint8_t)i, 0, 0xff, (uint8_t)(i * 7)};
        hamok_cmd_item it = {key, sizeof key, false, NULL, 0, false, NULL, 0};
        hamok_cmd c = {MAP, HAMOK_OP_DELETE, (uint8_t *)"m\0bin", 5, 0, &it, 1};
        assert_int_equal(h_cmd_raw(h, &c, 0, 0), HAMOK_OK);
    }
    CMD(h, RECORD, HAMOK_OP_SET, "rec", {"name", "ann", NULL}, {"empty", "", NULL});
    /* A queue whose ring has wrapped, and one holding exactly one item (the
     * original lost that one on import: bug A2). */
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "i%d", i);
        CMD(h, QUEUE, HAMOK_OP_PUSH, "q", {"", v, NULL});
    }
    CMD0(h, QUEUE, HAMOK_OP_POP, "q", 7);
    CMD(h, QUEUE, HAMOK_OP_PUSH, "q", {"", "j1", NULL}, {"", "", NULL}, {"", "j3", NULL});
    CMD(h, QUEUE, HAMOK_OP_PUSH, "one", {"", "only", NULL});
    /* An emitter: metadata present, empty, absent; several peers. */
    subscribe(h, "e", 4, 1, "ev1", "meta");
    subscribe(h, "e", 5, 1, "ev1", NULL);
    subscribe(h, "e", 4, 2, "ev2", "");
    subscribe(h, "e", 6, 1, "ev3", "x");
    h_cmd(h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", 0, 6, 2, (const spec[]){{"ev3", NULL, NULL}}, 1);
    /* Collections that exist while empty. */
    CMD(h, MAP, HAMOK_OP_DELETE, "empty-map", {"x", NULL, NULL});
    CMD0(h, QUEUE, HAMOK_OP_POP, "empty-queue", 0);
    h_cmd(h, EMITTER, HAMOK_OP_UNSUBSCRIBE, "empty-emitter", 0, 4, 3,
          (const spec[]){{"x", NULL, NULL}}, 1);
}

static void assert_same_state(const hamok_registry *a, const hamok_registry *b)
{
    static char da[65536], db[65536];
    h_dump(a, da, sizeof da);
    h_dump(b, db, sizeof db);
    assert_string_equal(da, db);
}

static void assert_snapshots_equal(const hamok_registry *a, const hamok_registry *b)
{
    hamok_buf sa, sb;
    h_snapshot(a, &sa);
    h_snapshot(b, &sb);
    assert_int_equal(sa.len, sb.len);
    assert_memory_equal(sa.data, sb.data, sa.len);
    hamok__buf_free(&sa);
    hamok__buf_free(&sb);
}

static void round_trip_every_kind(void **state)
{
    (void)state;
    harness a, b;
    h_init(&a, 64);
    h_init(&b, 64);
    build_state(&a);
    CMD(&b, MAP, HAMOK_OP_SET, "other", {"k", "v", NULL}); /* replaced by the restore */
    hamok_buf snap;
    h_snapshot(a.r, &snap);
    assert_int_equal(hamok__registry_restore(b.r, snap.data, snap.len), HAMOK_OK);
    assert_int_equal(hamok__registry_applied(b.r), hamok__registry_applied(a.r));
    assert_same_state(a.r, b.r);
    assert_snapshots_equal(a.r, b.r);
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(b.r, MAP, (const uint8_t *)"other", 5, &c),
                     HAMOK_ERR_NOT_FOUND);
    assert_int_equal(hamok__registry_lookup(b.r, QUEUE, (const uint8_t *)"one", 3, &c), HAMOK_OK);
    assert_int_equal(hamok__coll_size(c), 1);

    /* Both go on identically: sessions survived (a retry is a duplicate),
     * queues pop the same items, emitters hold the same metadata. */
    const spec retry[] = {{"ev2", "zz", NULL}};
    const char *ra = h_cmd(&a, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 4, 2, retry, 1);
    assert_int_equal(a.n_events, 0);
    char res_a[4096];
    strcpy(res_a, ra);
    assert_string_equal(h_cmd(&b, EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 4, 2, retry, 1), res_a);
    assert_int_equal(b.n_events, 0);
    strcpy(res_a, CMD0(&a, QUEUE, HAMOK_OP_POP, "q", 3));
    assert_string_equal(CMD0(&b, QUEUE, HAMOK_OP_POP, "q", 3), res_a);
    assert_string_equal(res_a, "OK true [=\"i7\", =\"i8\", =\"i9\"]");
    strcpy(res_a, CMD0(&a, QUEUE, HAMOK_OP_POP, "one", 3));
    assert_string_equal(CMD0(&b, QUEUE, HAMOK_OP_POP, "one", 3), res_a);
    assert_string_equal(res_a, "OK true [=\"only\"]");
    const spec upd[] = {{"ev2", "new", ""}};
    strcpy(res_a, h_cmd(&a, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 4, 10, upd, 1));
    assert_string_equal(h_cmd(&b, EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 4, 10, upd, 1), res_a);
    assert_string_equal(res_a, "OK true");
    assert_same_state(a.r, b.r);

    /* The empty registry round-trips too. */
    harness e;
    h_init(&e, 0);
    hamok_buf es;
    h_snapshot(e.r, &es);
    assert_int_equal(hamok__registry_restore(b.r, es.data, es.len), HAMOK_OK);
    assert_same_state(e.r, b.r);
    assert_int_equal(hamok__registry_count(b.r), 0);
    hamok__buf_free(&es);
    h_free(&e);
    hamok__buf_free(&snap);
    h_free(&a);
    h_free(&b);
}

/* The snapshot goes out in pieces of at most 64 KiB (a bigger single value
 * goes through as one piece); a write error aborts it. */
static void snapshot_in_pieces(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    for (uint32_t i = 0; i < 20000; i += 50) {
        hamok_cmd_item items[50];
        uint8_t kv[50][16];
        for (uint32_t j = 0; j < 50; j++) {
            memset(kv[j], 0, 16);
            uint32_t n = i + j;
            memcpy(kv[j], &n, 4);
            items[j] = (hamok_cmd_item){kv[j], 16, true, kv[j], 16, false, NULL, 0};
        }
        hamok_cmd c = {MAP, HAMOK_OP_SET, (uint8_t *)"big", 3, 0, items, 50};
        assert_int_equal(h_cmd_raw(&h, &c, 0, 0), HAMOK_OK);
    }
    size_t vlen = 100000;
    char *v = malloc(vlen + 1);
    assert_non_null(v);
    memset(v, 'v', vlen);
    v[vlen] = '\0';
    CMD(&h, MAP, HAMOK_OP_SET, "huge", {"k", v, NULL});
    free(v);

    h_snap s = {HAMOK_BUF_INIT, 0, 0};
    assert_int_equal(hamok__registry_snapshot(h.r, h_snap_write, &s), HAMOK_OK);
    assert_true(s.calls > 10);
    assert_true(s.b.len > 20000 * 40);
    harness b;
    h_init(&b, 8);
    assert_int_equal(hamok__registry_restore(b.r, s.b.data, s.b.len), HAMOK_OK);
    assert_same_state(h.r, b.r);
    int calls = s.calls;
    for (int fail = 1; fail <= calls; fail += (calls / 5) + 1) {
        h_snap f = {HAMOK_BUF_INIT, 0, fail};
        assert_int_equal(hamok__registry_snapshot(h.r, h_snap_write, &f), HAMOK_ERR_IO);
        assert_int_equal(f.calls, fail); /* nothing written after the error */
        hamok__buf_free(&f.b);
    }
    assert_int_equal(hamok__registry_snapshot(h.r, NULL, NULL), HAMOK_ERR_INVALID);
    hamok__buf_free(&s.b);
    h_free(&b);
    h_free(&h);
}

/* Every truncation and every single-bit flip of a snapshot is refused with
 * CORRUPT, and the registry keeps its state. */
static void corrupt_snapshots_refused(void **state)
{
    (void)state;
    harness a, b;
    h_init(&a, 8);
    h_init(&b, 8);
    build_state(&a);
    CMD(&b, MAP, HAMOK_OP_SET, "mine", {"k", "v", NULL});
    static char before[65536], after[65536];
    h_dump(b.r, before, sizeof before);
    hamok_buf snap;
    h_snapshot(a.r, &snap);
    for (size_t cut = 0; cut < snap.len; cut++) {
        uint8_t *p = malloc(cut + 1);
        assert_non_null(p);
        memcpy(p, snap.data, cut);
        assert_int_equal(hamok__registry_restore(b.r, p, cut), HAMOK_ERR_CORRUPT);
        free(p);
    }
    uint8_t *p = malloc(snap.len + 1);
    assert_non_null(p);
    for (size_t bit = 0; bit < snap.len * 8; bit++) {
        memcpy(p, snap.data, snap.len);
        p[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(hamok__registry_restore(b.r, p, snap.len), HAMOK_ERR_CORRUPT);
    }
    memcpy(p, snap.data, snap.len);
    p[snap.len] = 0;
    assert_int_equal(hamok__registry_restore(b.r, p, snap.len + 1), HAMOK_ERR_CORRUPT);
    assert_int_equal(hamok__registry_restore(b.r, NULL, 0), HAMOK_ERR_CORRUPT);
    free(p);
    h_dump(b.r, after, sizeof after);
    assert_string_equal(before, after);
    hamok__buf_free(&snap);
    h_free(&a);
    h_free(&b);
}

/* Hand-built snapshots with a valid checksum but invalid content. */
typedef struct sb {
    hamok_buf b;
} sb;

static void sb_raw(sb *s, const void *p, size_t n)
{
    assert_int_equal(hamok__buf_append(&s->b, p, n), HAMOK_OK);
}

static void sb_u8(sb *s, uint8_t v)
{
    sb_raw(s, &v, 1);
}

static void sb_u32(sb *s, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    sb_raw(s, x, 4);
}

static void sb_u64(sb *s, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        sb_u8(s, (uint8_t)(v >> (8 * i)));
    }
}

static void sb_blob(sb *s, const char *str)
{
    sb_u32(s, (uint32_t)strlen(str));
    sb_raw(s, str, strlen(str));
}

static void sb_head(sb *s, uint32_t version, uint64_t n_colls, bool bad_sessions)
{
    memset(s, 0, sizeof *s);
    sb_raw(s, "HREG", 4);
    sb_u32(s, version);
    sb_u64(s, 42); /* applied */
    hamok_sessions *se;
    assert_int_equal(hamok__sessions_new(&se, 8), HAMOK_OK);
    hamok_buf blob = HAMOK_BUF_INIT;
    assert_int_equal(hamok__sessions_snapshot(se, &blob), HAMOK_OK);
    if (bad_sessions) {
        blob.data[0] ^= 1;
    }
    sb_u32(s, (uint32_t)blob.len);
    sb_raw(s, blob.data, blob.len);
    hamok__buf_free(&blob);
    hamok__sessions_destroy(&se);
    sb_u64(s, n_colls);
}

static void sb_coll(sb *s, uint8_t kind, const char *name)
{
    sb_u8(s, kind);
    sb_u8(s, (uint8_t)strlen(name));
    sb_raw(s, name, strlen(name));
}

static void sb_sub(sb *s, uint64_t peer, int has_meta, const char *meta)
{
    hamok_id id = hamok__id_from_u64(peer);
    sb_raw(s, id.b, 16);
    sb_u8(s, (uint8_t)has_meta);
    if (has_meta == 1) {
        sb_blob(s, meta);
    }
}

static hamok_status sb_restore(sb *s, hamok_registry *r)
{
    sb_u32(s, hamok__crc32c(s->b.data, s->b.len));
    hamok_status st = hamok__registry_restore(r, s->b.data, s->b.len);
    hamok__buf_free(&s->b);
    return st;
}

/* An emitter "e" with one event "ev" and `n` subscribers 1..n (the last one
 * repeated when dup). */
static void sb_emitter(sb *s, uint64_t n, bool dup)
{
    sb_coll(s, EMITTER, "e");
    sb_u64(s, 1);
    sb_blob(s, "ev");
    sb_u64(s, n);
    for (uint64_t i = 1; i <= n; i++) {
        sb_sub(s, dup && i == n ? 1 : i, i % 2 == 0 ? 1 : 0, "m");
    }
}

static void semantic_corruption_refused(void **state)
{
    (void)state;
    harness h;
    h_init(&h, 8);
    CMD(&h, MAP, HAMOK_OP_SET, "mine", {"k", "v", NULL});
    static char before[4096], after[4096];
    h_dump(h.r, before, sizeof before);
    sb s;

    /* Valid ones first (the builder is right). */
    sb_head(&s, 1, 2, false);
    sb_coll(&s, MAP, "m");
    sb_u64(&s, 1);
    sb_blob(&s, "k");
    sb_blob(&s, "");
    sb_emitter(&s, 40, false);
    assert_int_equal(sb_restore(&s, h.r), HAMOK_OK);
    assert_int_equal(hamok__registry_applied(h.r), 42);
    const hamok_coll *c;
    assert_int_equal(hamok__registry_lookup(h.r, EMITTER, (const uint8_t *)"e", 1, &c), HAMOK_OK);
    assert_int_equal(hamok__coll_size(c), 40);
    /* Back to the known state. */
    harness k;
    h_init(&k, 8);
    CMD(&k, MAP, HAMOK_OP_SET, "mine", {"k", "v", NULL});
    hamok_buf ks;
    h_snapshot(k.r, &ks);
    assert_int_equal(hamok__registry_restore(h.r, ks.data, ks.len), HAMOK_OK);
    hamok__buf_free(&ks);
    h_free(&k);

#define BAD(build)                                                \
    do {                                                          \
        build;                                                    \
        assert_int_equal(sb_restore(&s, h.r), HAMOK_ERR_CORRUPT); \
    } while (0)
    BAD(sb_head(&s, 2, 0, false)); /* version */
    BAD(sb_head(&s, 1, 0, true));  /* sessions */
    BAD(sb_head(&s, 1, 1, false)); /* a collection missing */
    BAD((sb_head(&s, 1, 1000000, false), sb_coll(&s, MAP, "m"), sb_u64(&s, 0)));
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, 0, "m"), sb_u64(&s, 0)));
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, HAMOK_KIND_REMOTE_MAP, "m"), sb_u64(&s, 0)));
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, 9, "m"), sb_u64(&s, 0)));
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, MAP, ""), sb_u64(&s, 0)));
    BAD((sb_head(&s, 1, 2, false), sb_coll(&s, MAP, "m"), sb_u64(&s, 0), sb_coll(&s, QUEUE, "m"),
         sb_u64(&s, 0))); /* duplicate name */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, MAP, "m"), sb_u64(&s, 2), sb_blob(&s, "k"),
         sb_blob(&s, "1"), sb_blob(&s, "k"), sb_blob(&s, "2"))); /* duplicate key */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, MAP, "m"), sb_u64(&s, 1), sb_u32(&s, 1000),
         sb_raw(&s, "k", 1), sb_blob(&s, ""))); /* key past the end */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, QUEUE, "q"), sb_u64(&s, 2), sb_blob(&s, "a")));
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, MAP, "m"), sb_u64(&s, 0), sb_u8(&s, 0))); /* tail */
    BAD((sb_head(&s, 1, 1, false), sb_emitter(&s, 0, false))); /* empty event */
    BAD((sb_head(&s, 1, 1, false), sb_emitter(&s, 2, true)));  /* duplicate peer */
    BAD((sb_head(&s, 1, 1, false), sb_emitter(&s, 40, true))); /* duplicate peer, many */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, EMITTER, "e"), sb_u64(&s, 1), sb_blob(&s, "ev"),
         sb_u64(&s, 1), sb_sub(&s, 0, 0, NULL))); /* nil peer */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, EMITTER, "e"), sb_u64(&s, 1), sb_blob(&s, "ev"),
         sb_u64(&s, 1), sb_sub(&s, 1, 2, NULL))); /* has_meta 2 */
    BAD((sb_head(&s, 1, 1, false), sb_coll(&s, EMITTER, "e"), sb_u64(&s, 2), sb_blob(&s, "ev"),
         sb_u64(&s, 1), sb_sub(&s, 1, 0, NULL), sb_blob(&s, "ev"), sb_u64(&s, 1),
         sb_sub(&s, 2, 0, NULL)));                      /* duplicate event */
    BAD((sb_head(&s, 1, 0, false), s.b.data[0] = 'X')); /* magic */
#undef BAD
    h_dump(h.r, after, sizeof after);
    assert_string_equal(before, after);
    h_free(&h);
}

/* ------------------------------------------------------------------------- */
/* Allocation failures */

static unsigned long g_allocs;
static unsigned long g_fail_at;
static bool g_armed;

static bool should_fail(void)
{
    return g_armed && ++g_allocs == g_fail_at;
}

static void *f_malloc(void *ud, size_t n)
{
    (void)ud;
    return should_fail() ? NULL : malloc(n);
}

static void *f_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    return should_fail() ? NULL : realloc(p, n);
}

static void f_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

/* The scenario: entries of every kind, sessions, a configuration. */
typedef struct step {
    hamok_buf data;
    uint8_t type;
    uint64_t client, seq;
} step;

static size_t make_steps(step *st)
{
    size_t n = 0;
#define ADD_CMD(kind, op, name, arg, client, seq, ...)                    \
    do {                                                                  \
        const spec sp_[] = {__VA_ARGS__};                                 \
        hamok_cmd_item items_[16];                                        \
        hamok_cmd c_;                                                     \
        h_build(&c_, items_, kind, op, name, arg, sp_, NSPEC(sp_));       \
        st[n] = (step){HAMOK_BUF_INIT, HAMOK_ENTRY_COMMAND, client, seq}; \
        assert_int_equal(hamok__cmd_encode(&c_, &st[n].data), HAMOK_OK);  \
        n++;                                                              \
    } while (0)
#define ADD_CMD0(kind, op, name, arg, client, seq)                        \
    do {                                                                  \
        hamok_cmd c_;                                                     \
        h_build(&c_, NULL, kind, op, name, arg, NULL, 0);                 \
        st[n] = (step){HAMOK_BUF_INIT, HAMOK_ENTRY_COMMAND, client, seq}; \
        assert_int_equal(hamok__cmd_encode(&c_, &st[n].data), HAMOK_OK);  \
        n++;                                                              \
    } while (0)
    ADD_CMD(MAP, HAMOK_OP_SET, "m", 0, 1, 1, {"a", "1", NULL}, {"b", "2", NULL});
    ADD_CMD(MAP, HAMOK_OP_SET, "m", 0, 1, 1, {"a", "x", NULL}); /* duplicate */
    ADD_CMD(MAP, HAMOK_OP_SET, "m", 0, 1, 2, {"a", "3", NULL}, {"c", "", NULL});
    ADD_CMD(MAP, HAMOK_OP_INSERT, "m", 0, 2, 1, {"a", "9", NULL}, {"d", "4", NULL});
    ADD_CMD(MAP, HAMOK_OP_UPDATE_IF, "m", 0, 2, 2, {"a", "5", "3"});
    ADD_CMD(MAP, HAMOK_OP_REMOVE, "m", 0, 2, 3, {"b", NULL, NULL}, {"zz", NULL, NULL});
    ADD_CMD(MAP, HAMOK_OP_DELETE, "m", 0, 0, 0, {"c", NULL, NULL});
    ADD_CMD(MAP, HAMOK_OP_REMOVE_IF, "m", 0, 0, 0, {"d", NULL, "4"});
    ADD_CMD(RECORD, HAMOK_OP_UPDATE_IF, "r", 0, 1, 3, {"f", "1", NULL}, {"g", "2", NULL});
    ADD_CMD(RECORD, HAMOK_OP_UPDATE_IF, "r", 0, 1, 4, {"f", "3", "1"}, {"h", "", NULL});
    ADD_CMD(QUEUE, HAMOK_OP_PUSH, "q", 0, 1, 5, {"", "a", NULL}, {"", "b", NULL}, {"", "c", NULL});
    ADD_CMD0(QUEUE, HAMOK_OP_POP, "q", 2, 3, 1);
    ADD_CMD0(QUEUE, HAMOK_OP_POP, "q", 2, 3, 1); /* duplicate */
    ADD_CMD(EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 1, 6, {"x", "m", NULL}, {"y", NULL, NULL});
    ADD_CMD(EMITTER, HAMOK_OP_SUBSCRIBE, "e", 0, 3, 2, {"x", NULL, NULL});
    ADD_CMD(EMITTER, HAMOK_OP_UPDATE_METADATA, "e", 0, 1, 7, {"x", "n", "m"});
    ADD_CMD(EMITTER, HAMOK_OP_UNSUBSCRIBE, "e", 0, 1, 8, {"y", NULL, NULL});
    ADD_CMD(MAP, HAMOK_OP_PUSH, "bad", 0, 1, 9, {"", "a", NULL});  /* INVALID */
    ADD_CMD(QUEUE, HAMOK_OP_PUSH, "m", 0, 1, 10, {"", "a", NULL}); /* WRONG_KIND */
    {
        /* many keys: the hashed duplicate check */
        spec many[20];
        char keys[20][4];
        for (int i = 0; i < 20; i++) {
            snprintf(keys[i], sizeof keys[i], "%d", i);
            many[i] = (spec){keys[i], keys[i], NULL};
        }
        hamok_cmd_item items[20];
        hamok_cmd c;
        h_build(&c, items, MAP, HAMOK_OP_SET, "many", 0, many, 20);
        st[n] = (step){HAMOK_BUF_INIT, HAMOK_ENTRY_COMMAND, 2, 4};
        assert_int_equal(hamok__cmd_encode(&c, &st[n].data), HAMOK_OK);
        n++;
    }
    ADD_CMD0(MAP, HAMOK_OP_CLEAR, "many", 0, 0, 0);
    {
        hamok_member ms[2] = {{hamok__id_from_u64(1), HAMOK_MEMBER_VOTER, (char *)"a"},
                              {hamok__id_from_u64(2), HAMOK_MEMBER_VOTER, (char *)"b"}};
        st[n] = (step){HAMOK_BUF_INIT, HAMOK_ENTRY_CONFIG, 0, 0};
        assert_int_equal(hamok__codec_encode_config(ms, 2, &st[n].data), HAMOK_OK);
        n++;
    }
    ADD_CMD0(QUEUE, HAMOK_OP_CLEAR, "q", 0, 1, 11);
    ADD_CMD0(QUEUE, HAMOK_OP_POP, "q", 2, 3, 1); /* session of 3 expired: new */
    {
        /* Remote map: requests queued (one retried while queued), resolved
         * by outcomes, one stale outcome. Step i is applied at index i + 1. */
        uint64_t ra = n + 1;
        ADD_CMD(HAMOK_KIND_REMOTE_MAP, HAMOK_OP_SET, "rm", 0, 1, 20, {"k", "1", NULL},
                {"e", "", NULL});
        ADD_CMD(HAMOK_KIND_REMOTE_MAP, HAMOK_OP_SET, "rm", 0, 1, 20, {"k", "1", NULL},
                {"e", "", NULL});
        uint64_t rb = n + 1;
        ADD_CMD(HAMOK_KIND_REMOTE_MAP, HAMOK_OP_REMOVE, "rm", 0, 2, 20, {"k", NULL, NULL});
        ADD_CMD0(HAMOK_KIND_REMOTE_MAP, HAMOK_OP_CLEAR, "rm2", 0, 2, 21);
        hamok_cmd_item obs[2] = {{NULL, 0, true, (uint8_t *)"old", 3, false, NULL, 0},
                                 {NULL, 0, false, NULL, 0, false, NULL, 0}};
        const uint64_t which[3] = {ra, rb, rb};
        const size_t n_obs[3] = {2, 1, 1};
        for (int i = 0; i < 3; i++) {
            st[n] = (step){HAMOK_BUF_INIT, HAMOK_ENTRY_COMMAND, 9, 0};
            assert_int_equal(hamok__remote_outcome_encode((const uint8_t *)"rm", 2, which[i],
                                                          HAMOK_OK, obs, n_obs[i], &st[n].data),
                             HAMOK_OK);
            n++;
        }
    }
#undef ADD_CMD
#undef ADD_CMD0
    return n;
}

typedef struct outcome {
    char result[4096];
    char events[1024];
} outcome;

static void capture(const harness *h, outcome *o)
{
    snprintf(o->result, sizeof o->result, "%s", h->result);
    o->events[0] = '\0';
    for (int i = 0; i < h->n_events; i++) {
        h_cat(o->events, sizeof o->events, h->events[i]);
        h_cat(o->events, sizeof o->events, "|");
    }
}

/* The harness' own formatting (it decodes ANSWER results) is not counted. */
static void unarmed_sink(void *ud, const hamok_coll_event *ev)
{
    bool was = g_armed;
    g_armed = false;
    h_sink(ud, ev);
    g_armed = was;
}

static hamok_status run_step(harness *h, const step *s, bool armed)
{
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = 1;
    e.type = s->type;
    if (s->client != 0) {
        e.client = hamok__id_from_u64(s->client);
    }
    e.seq = s->seq;
    e.data = s->data.data;
    e.len = s->data.len;
    hamok_buf res = HAMOK_BUF_INIT;
    /* Pre-size the result buffer so that the harness' own allocation is
     * not counted. */
    assert_int_equal(hamok__buf_reserve(&res, 4096), HAMOK_OK);
    h->n_events = 0;
    h->result[0] = '\0';
    uint64_t index = hamok__registry_applied(h->r) + 1;
    g_armed = armed;
    hamok_status st = hamok__registry_apply(h->r, index, &e, &res, unarmed_sink, h);
    g_armed = false;
    if (st == HAMOK_OK && s->type == HAMOK_ENTRY_COMMAND && res.len > 0) {
        h_format_result(res.data, res.len, h->result, sizeof h->result);
    }
    hamok__buf_free(&res);
    return st;
}

/* One run with the n-th allocation failing; returns the allocations made
 * while armed. */
static unsigned long failing_run(unsigned long n, const step *steps, size_t n_steps,
                                 const outcome *ref, const hamok_buf *ref_snap)
{
    static char before[16384], after[16384];
    harness h;
    h_init(&h, 8);
    g_allocs = 0;
    g_fail_at = n;
    unsigned long failures = 0;
    for (size_t i = 0; i < n_steps; i++) {
        h_dump(h.r, before, sizeof before);
        hamok_status st = run_step(&h, &steps[i], true);
        if (st == HAMOK_ERR_NOMEM) {
            failures++;
            /* No effect at all. */
            assert_int_equal(h.n_events, 0);
            h_dump(h.r, after, sizeof after);
            assert_string_equal(before, after);
            st = run_step(&h, &steps[i], false); /* the retry succeeds */
        }
        assert_int_equal(st, HAMOK_OK);
        outcome o;
        capture(&h, &o);
        assert_string_equal(o.result, ref[i].result);
        assert_string_equal(o.events, ref[i].events);
    }
    /* Snapshot and restore under the same failure. */
    h_snap s = {HAMOK_BUF_INIT, 0, 0};
    g_armed = true;
    hamok_status st = hamok__registry_snapshot(h.r, h_snap_write, &s);
    g_armed = false;
    if (st == HAMOK_OK) {
        assert_int_equal(s.b.len, ref_snap->len);
        assert_memory_equal(s.b.data, ref_snap->data, s.b.len);
    } else {
        assert_int_equal(st, HAMOK_ERR_NOMEM);
    }
    hamok__buf_free(&s.b);
    harness t;
    h_init(&t, 8);
    CMD(&t, MAP, HAMOK_OP_SET, "x", {"k", "v", NULL});
    h_dump(t.r, before, sizeof before);
    g_armed = true;
    st = hamok__registry_restore(t.r, ref_snap->data, ref_snap->len);
    g_armed = false;
    if (st == HAMOK_OK) {
        assert_same_state(h.r, t.r);
    } else {
        assert_int_equal(st, HAMOK_ERR_NOMEM);
        h_dump(t.r, after, sizeof after);
        assert_string_equal(before, after);
    }
    h_free(&t);
    h_free(&h);
    (void)failures;
    return g_allocs;
}

static void allocation_failure_sweep(void **state)
{
    (void)state;
    static step steps[64];
    static outcome ref[64];
    size_t n_steps = make_steps(steps);
    /* Reference run. */
    harness h;
    h_init(&h, 8);
    for (size_t i = 0; i < n_steps; i++) {
        assert_int_equal(run_step(&h, &steps[i], false), HAMOK_OK);
        capture(&h, &ref[i]);
    }
    /* (a few sanity checks of the reference itself) */
    assert_string_equal(ref[1].result, "OK");
    assert_string_equal(ref[1].events, "");
    assert_string_equal(ref[17].result, "INVALID");
    assert_string_equal(ref[18].result, "WRONG_KIND");
    hamok_buf ref_snap;
    h_snapshot(h.r, &ref_snap);
    h_free(&h);

    hamok_allocator a = {f_malloc, f_realloc, f_free, NULL};
    assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
    unsigned long n;
    for (n = 1;; n++) {
        unsigned long made = failing_run(n, steps, n_steps, ref, &ref_snap);
        if (made < n) {
            break; /* fewer allocations than n: every point was covered */
        }
    }
    assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
    printf("  %lu allocation points failed in turn\n", n - 1);
    assert_true(n > 100);
    hamok__buf_free(&ref_snap);
    for (size_t i = 0; i < n_steps; i++) {
        hamok__buf_free(&steps[i].data);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_kind),     cmocka_unit_test(snapshot_in_pieces),
        cmocka_unit_test(corrupt_snapshots_refused), cmocka_unit_test(semantic_corruption_refused),
        cmocka_unit_test(allocation_failure_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
