/* Writes the seed corpus of the decoder fuzzer (tests/fuzz/corpus/decode/).
 * Built by CMake, run by hand when the format changes:
 *
 *     build/tests/fuzz/gen_corpus tests/fuzz/corpus/decode
 *
 * Deterministic: valid frames of every message type in several shapes
 * (cluster "fuzz", a few of another cluster), truncated frames, bit-flipped
 * frames and hand-made hostile frames. Every file is small (< 8 KiB). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "util/prng.h"

static const char *out_dir;
static int n_written;

static void save(const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
    n_written++;
}

static void must(hamok_status st, const char *what)
{
    if (st != HAMOK_OK) {
        fprintf(stderr, "%s: %s\n", what, hamok_status_str(st));
        exit(1);
    }
}

/* ------------------------------------------------------------------------- */
/* Raw msgpack writer for hostile frames */

static void w_bytes(hamok_buf *b, const void *d, size_t n)
{
    must(hamok__buf_append(b, d, n), "append");
}

static void w_byte(hamok_buf *b, uint8_t x)
{
    w_bytes(b, &x, 1);
}

static void w_uint(hamok_buf *b, uint64_t v)
{
    if (v <= 0x7f) {
        w_byte(b, (uint8_t)v);
        return;
    }
    int n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    w_byte(b, n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf);
    for (int i = n - 1; i >= 0; i--) {
        w_byte(b, (uint8_t)(v >> (8 * i)));
    }
}

static void w_arr(hamok_buf *b, uint32_t n)
{
    if (n <= 15) {
        w_byte(b, (uint8_t)(0x90 | n));
    } else {
        w_byte(b, 0xdc);
        w_byte(b, (uint8_t)(n >> 8));
        w_byte(b, (uint8_t)n);
    }
}

static void w_str(hamok_buf *b, const char *s, size_t n)
{
    if (n <= 31) {
        w_byte(b, (uint8_t)(0xa0 | n));
    } else {
        w_byte(b, 0xd9);
        w_byte(b, (uint8_t)n);
    }
    w_bytes(b, s, n);
}

static void w_id(hamok_buf *b, uint8_t seed)
{
    w_byte(b, 0xc4);
    w_byte(b, 16);
    for (int i = 0; i < 16; i++) {
        w_byte(b, (uint8_t)(seed + i));
    }
}

static void w_env(hamok_buf *b, uint64_t version, const char *cluster, uint64_t type,
                  uint32_t body_n)
{
    w_arr(b, 6);
    w_uint(b, version);
    w_str(b, cluster, strlen(cluster));
    w_uint(b, type);
    w_id(b, 1);
    w_id(b, 2);
    w_arr(b, body_n);
}

/* ------------------------------------------------------------------------- */
/* Valid messages */

static const uint8_t types[] = {
    HAMOK_MSG_HELLO,
    HAMOK_MSG_ENDPOINT_STATES,
    HAMOK_MSG_JOIN,
    HAMOK_MSG_PREVOTE_REQUEST,
    HAMOK_MSG_PREVOTE_RESPONSE,
    HAMOK_MSG_VOTE_REQUEST,
    HAMOK_MSG_VOTE_RESPONSE,
    HAMOK_MSG_TIMEOUT_NOW,
    HAMOK_MSG_APPEND_ENTRIES,
    HAMOK_MSG_APPEND_RESPONSE,
    HAMOK_MSG_INSTALL_SNAPSHOT,
    HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE,
    HAMOK_MSG_SUBMIT_REQUEST,
    HAMOK_MSG_SUBMIT_RESPONSE,
    HAMOK_MSG_READ_INDEX_REQUEST,
    HAMOK_MSG_READ_INDEX_RESPONSE,
};
#define N_TYPES    (sizeof types / sizeof types[0])
#define N_VARIANTS 10

static const uint64_t interesting[] = {
    0, 1, 2, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, UINT64_C(0x100000000), UINT64_MAX,
};
static const char *const endpoints[] = {
    "",
    "tcp://127.0.0.1:5555",
    "tcp://[::1]:6000",
    "hamok.fuzz.peer.0f1e2d3c",
    "nats://h\xc3\xa9llo/\xe2\x82\xac",
};

static hamok_prng rng;

static uint64_t pick(void)
{
    if (hamok__prng_below(&rng, 3) == 0) {
        return hamok__prng_next(&rng) >> hamok__prng_below(&rng, 64);
    }
    return interesting[hamok__prng_below(&rng, sizeof interesting / sizeof interesting[0])];
}

static hamok_id pick_id(void)
{
    hamok_id id;
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        id.b[i] = (uint8_t)hamok__prng_next(&rng);
    }
    return id;
}

static bool pick_bool(void)
{
    return hamok__prng_below(&rng, 2) == 1;
}

static char *pick_endpoint(void)
{
    return (char *)endpoints[hamok__prng_below(&rng, sizeof endpoints / sizeof endpoints[0])];
}

static uint8_t payload[64];
static hamok_entry entries[5];
static hamok_member members[4];

static void fill_entry(hamok_entry *e)
{
    e->term = pick();
    e->type = (uint8_t)(1 + hamok__prng_below(&rng, HAMOK_ENTRY_TYPE_MAX_));
    e->client = pick_bool() ? pick_id() : (hamok_id){{0}};
    e->seq = pick();
    e->len = (size_t)hamok__prng_below(&rng, sizeof payload);
    e->data = e->len ? payload : NULL;
}

static size_t fill_members(void)
{
    size_t n = (size_t)hamok__prng_below(&rng, 5);
    for (size_t i = 0; i < n; i++) {
        members[i].id = pick_id();
        members[i].role = (uint8_t)(1 + hamok__prng_below(&rng, 2));
        members[i].endpoint = pick_endpoint();
    }
    return n;
}

static void make(uint8_t type, int variant, hamok_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->src = pick_id();
    m->broadcast = variant % 2 == 1;
    if (!m->broadcast) {
        m->dst = pick_id();
    }
    bool has_leader = pick_bool();
    hamok_id leader = has_leader ? pick_id() : (hamok_id){{0}};
    switch (type) {
    case HAMOK_MSG_HELLO:
        m->u.hello.endpoint = pick_endpoint();
        m->u.hello.has_leader = has_leader;
        m->u.hello.leader = leader;
        break;
    case HAMOK_MSG_ENDPOINT_STATES:
        m->u.endpoint_states.term = pick();
        m->u.endpoint_states.has_leader = has_leader;
        m->u.endpoint_states.leader = leader;
        m->u.endpoint_states.commit_index = pick();
        m->u.endpoint_states.n_members = fill_members();
        m->u.endpoint_states.members = members;
        break;
    case HAMOK_MSG_JOIN: m->u.join.endpoint = pick_endpoint(); break;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST:
        m->u.vote.term = pick();
        m->u.vote.last_log_index = pick();
        m->u.vote.last_log_term = pick();
        m->u.vote.transfer = pick_bool();
        break;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        m->u.vote_response.term = pick();
        m->u.vote_response.granted = pick_bool();
        break;
    case HAMOK_MSG_TIMEOUT_NOW: m->u.timeout_now.term = pick(); break;
    case HAMOK_MSG_APPEND_ENTRIES: {
        hamok_msg_append *a = &m->u.append;
        a->term = pick();
        a->prev_log_index = pick();
        a->prev_log_term = pick();
        a->leader_commit = pick();
        a->ctx = pick();
        a->n_entries = (size_t)hamok__prng_below(&rng, 6);
        for (size_t i = 0; i < a->n_entries; i++) {
            fill_entry(&entries[i]);
        }
        a->entries = entries;
        break;
    }
    case HAMOK_MSG_APPEND_RESPONSE: {
        hamok_msg_append_response *r = &m->u.append_response;
        r->term = pick();
        r->success = pick_bool();
        r->match_index = pick();
        r->last_log_index = pick();
        r->reject_index = pick();
        r->conflict_index = pick();
        r->conflict_term = pick();
        r->ctx = pick();
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        hamok_msg_snapshot *s = &m->u.snapshot;
        s->term = pick();
        s->last_index = pick();
        s->last_term = pick();
        s->offset = pick();
        s->done = pick_bool();
        s->n_members = fill_members();
        s->members = members;
        s->len = (size_t)hamok__prng_below(&rng, sizeof payload);
        s->data = s->len ? payload : NULL;
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE:
        m->u.snapshot_response.term = pick();
        m->u.snapshot_response.last_index = pick();
        m->u.snapshot_response.next_offset = pick();
        m->u.snapshot_response.done = pick_bool();
        break;
    case HAMOK_MSG_SUBMIT_REQUEST:
        m->u.submit.request_id = pick();
        fill_entry(&m->u.submit.entry);
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE: {
        hamok_msg_submit_response *r = &m->u.submit_response;
        r->request_id = pick();
        r->status = (uint32_t)hamok__prng_below(&rng, HAMOK_STATUS_COUNT);
        r->has_leader = has_leader;
        r->leader = leader;
        r->index = pick();
        r->term = pick();
        r->result_len = (size_t)hamok__prng_below(&rng, sizeof payload);
        r->result = r->result_len ? payload : NULL;
        break;
    }
    case HAMOK_MSG_READ_INDEX_REQUEST: m->u.read_index.request_id = pick(); break;
    case HAMOK_MSG_READ_INDEX_RESPONSE: {
        hamok_msg_read_index_response *r = &m->u.read_index_response;
        r->request_id = pick();
        r->status = (uint32_t)hamok__prng_below(&rng, HAMOK_STATUS_COUNT);
        r->has_leader = has_leader;
        r->leader = leader;
        r->read_index = pick();
        break;
    }
    default: break;
    }
}

/* ------------------------------------------------------------------------- */

static void hostile(void)
{
    hamok_buf b = HAMOK_BUF_INIT;
    char name[128];
#define SAVE(nm)                 \
    do {                         \
        save(nm, b.data, b.len); \
        hamok__buf_reset(&b);    \
    } while (0)

    static const uint8_t bomb[] = {0x99, 0xdd, 0xdd, 0xdd, 0xdd, 0x8a};
    w_bytes(&b, bomb, sizeof bomb);
    SAVE("hostile-bomb-array32");
    w_bytes(&b, "\xdd\xff\xff\xff\xff", 5);
    SAVE("hostile-array32-huge");
    w_bytes(&b, "\xdf\xff\xff\xff\xff", 5);
    SAVE("hostile-map32-huge");
    w_bytes(&b, "\x96\x01\xdb\xff\xff\xff\xff", 7);
    SAVE("hostile-str32-huge");
    w_env(&b, 1, "fuzz", HAMOK_MSG_SUBMIT_RESPONSE, 6);
    w_bytes(&b, "\x01\x00\xc0\x01\x01\xc6\xff\xff\xff\xff", 10);
    SAVE("hostile-bin32-huge");
    w_env(&b, 1, "fuzz", HAMOK_MSG_APPEND_ENTRIES, 6);
    w_bytes(&b, "\x01\x01\x01\x01\x01\xdd\x7f\xff\xff\xff", 10);
    SAVE("hostile-entries-array32-huge");
    save("hostile-empty", (const uint8_t *)"", 0);

    w_env(&b, 1, "fuzz", HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 1);
    for (int i = 0; i < 40; i++) {
        w_byte(&b, 0x91);
    }
    w_byte(&b, 0x90);
    SAVE("hostile-deep-arrays");
    w_env(&b, 1, "fuzz", HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 1);
    for (int i = 0; i < 40; i++) {
        w_bytes(&b, "\x81\x01", 2);
    }
    w_byte(&b, 0xc0);
    SAVE("hostile-deep-maps");
    for (int i = 0; i < 200; i++) {
        w_byte(&b, 0x91);
    }
    SAVE("hostile-deep-top");

    const uint64_t versions[] = {0, 2, 1000};
    for (size_t i = 0; i < 3; i++) {
        w_env(&b, versions[i], "fuzz", HAMOK_MSG_TIMEOUT_NOW, 1);
        w_uint(&b, 7);
        snprintf(name, sizeof name, "hostile-version-%llu", (unsigned long long)versions[i]);
        SAVE(name);
    }
    w_env(&b, 1, "another-cluster", HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 7);
    SAVE("hostile-other-cluster");
    const uint64_t bad_types[] = {0, 3, 15, 24, 99, 255, 300};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        w_env(&b, 1, "fuzz", bad_types[i], 1);
        w_uint(&b, 7);
        snprintf(name, sizeof name, "hostile-type-%llu", (unsigned long long)bad_types[i]);
        SAVE(name);
    }
    const uint64_t bad_entry_types[] = {0, 4, 15, 200};
    for (size_t i = 0; i < 4; i++) {
        w_env(&b, 1, "fuzz", HAMOK_MSG_SUBMIT_REQUEST, 2);
        w_uint(&b, 1);
        w_arr(&b, 5);
        w_uint(&b, 1);
        w_uint(&b, bad_entry_types[i]);
        w_byte(&b, 0xc0);
        w_uint(&b, 1);
        w_bytes(&b, "\xc4\x01x", 3);
        snprintf(name, sizeof name, "hostile-entry-type-%llu",
                 (unsigned long long)bad_entry_types[i]);
        SAVE(name);
    }
    static const char *const terms[] = {
        "\xff",
        "\xd0\x80",
        "\xd3\x80\x00\x00\x00\x00\x00\x00\x00",
        "\xca\x40\xa0\x00\x00",
        "\xcb\x40\x14\x00\x00\x00\x00\x00\x00",
        "\xd4\x00\x05",
        "\xc1",
        "\xa1\x35",
        "\xd3\x00\x00\x00\x00\x00\x00\x00\x05",
        "\xd0\x05",
    };
    static const size_t term_lens[] = {1, 2, 9, 5, 9, 3, 1, 2, 9, 2};
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        w_env(&b, 1, "fuzz", HAMOK_MSG_TIMEOUT_NOW, 1);
        w_bytes(&b, terms[i], term_lens[i]);
        snprintf(name, sizeof name, "hostile-term-%zu", i);
        SAVE(name);
    }
    static const char *const bad_utf8[] = {"\xc0\x80",  "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "a\xe2\x82", "\xff",         "a\0b"};
    static const size_t bad_utf8_lens[] = {2, 3, 4, 3, 1, 3};
    for (size_t i = 0; i < 6; i++) {
        w_env(&b, 1, "fuzz", HAMOK_MSG_JOIN, 1);
        w_str(&b, bad_utf8[i], bad_utf8_lens[i]);
        snprintf(name, sizeof name, "hostile-utf8-%zu", i);
        SAVE(name);
    }
    for (int n = 15; n <= 17; n += 2) {
        w_arr(&b, 6);
        w_uint(&b, 1);
        w_str(&b, "fuzz", 4);
        w_uint(&b, HAMOK_MSG_TIMEOUT_NOW);
        w_byte(&b, 0xc4);
        w_byte(&b, (uint8_t)n);
        for (int i = 0; i < n; i++) {
            w_byte(&b, (uint8_t)i);
        }
        w_byte(&b, 0xc0);
        w_arr(&b, 1);
        w_uint(&b, 7);
        snprintf(name, sizeof name, "hostile-id-len-%d", n);
        SAVE(name);
    }
    w_env(&b, 1, "fuzz", HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 7);
    w_bytes(&b, "\x00garbage", 8);
    SAVE("hostile-trailing-garbage");
    w_env(&b, 1, "fuzz", HAMOK_MSG_APPEND_RESPONSE, 7);
    for (int i = 0; i < 7; i++) {
        w_uint(&b, 1);
    }
    SAVE("hostile-short-body");
    /* valid: extra trailing fields of all kinds */
    w_env(&b, 1, "fuzz", HAMOK_MSG_VOTE_REQUEST, 9);
    w_bytes(&b, "\x09\x08\x07\xc3", 4);
    w_bytes(&b, "\x82\xa1k\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x01\x92\xc0\xff", 16);
    w_bytes(&b, "\xca\x00\x00\x00\x00\xa3new\xc4\x02\x00\x01\x90", 14);
    SAVE("valid-extra-fields");
    w_env(&b, 1, "fuzz", HAMOK_MSG_APPEND_ENTRIES, 6);
    w_bytes(&b, "\x01\x01\x01\x01\x01", 5);
    w_arr(&b, 800);
    for (int i = 0; i < 800; i++) {
        w_bytes(&b, "\x95\x01\x01\xc0\x00\xc4\x00", 7);
    }
    SAVE("hostile-alloc-amplification");
    w_env(&b, 1, "fuzz", HAMOK_MSG_ENDPOINT_STATES, 4);
    w_bytes(&b, "\x01\xc0\x01\x91\x93", 5);
    w_id(&b, 5);
    w_uint(&b, 9);
    w_str(&b, "", 0);
    SAVE("hostile-member-role");
    hamok__buf_free(&b);
#undef SAVE
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    hamok__prng_seed(&rng, 20240601);
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 37 + 11);
    }

    hamok_buf b = HAMOK_BUF_INIT;
    char name[128];
    hamok_buf valid[N_TYPES];
    for (size_t t = 0; t < N_TYPES; t++) {
        valid[t] = (hamok_buf)HAMOK_BUF_INIT;
        for (int v = 0; v < N_VARIANTS; v++) {
            hamok_msg m;
            make(types[t], v, &m);
            hamok__buf_reset(&b);
            must(hamok__codec_encode(&m, v == N_VARIANTS - 1 ? "other" : "fuzz", NULL, &b),
                 "encode");
            snprintf(name, sizeof name, "valid-%s-%d", hamok__msg_type_name(types[t]), v);
            save(name, b.data, b.len);
            if (v == 0) {
                must(hamok__buf_append(&valid[t], b.data, b.len), "copy");
            }
        }
    }
    /* Truncations and bit flips of the first variant of each type. */
    for (size_t t = 0; t < N_TYPES; t++) {
        const hamok_buf *f = &valid[t];
        for (int k = 0; k < 2; k++) {
            size_t cut = (size_t)hamok__prng_below(&rng, f->len);
            snprintf(name, sizeof name, "trunc-%s-%zu", hamok__msg_type_name(types[t]), cut);
            save(name, f->data, cut);
        }
        hamok__buf_reset(&b);
        must(hamok__buf_append(&b, f->data, f->len), "copy");
        size_t at = (size_t)hamok__prng_below(&rng, f->len);
        b.data[at] ^= (uint8_t)(1u << hamok__prng_below(&rng, 8));
        snprintf(name, sizeof name, "flip-%s-%zu", hamok__msg_type_name(types[t]), at);
        save(name, b.data, b.len);
    }
    for (size_t t = 0; t < N_TYPES; t++) {
        hamok__buf_free(&valid[t]);
    }
    hamok__buf_free(&b);
    hostile();
    printf("wrote %d files to %s\n", n_written, out_dir);
    return 0;
}
