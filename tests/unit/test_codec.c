/* Codec unit tests: every message type round-trips with every field set;
 * hostile and truncated input is rejected with the right status and reason;
 * the encoder's size bounds hold; allocation failures leak nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "hamok/hamok.h"
#include "util/alloc.h"

#define CLUSTER "test-cluster"

/* ------------------------------------------------------------------------- */
/* Sample messages (borrowed pointers, as the Raft core produces them) */

static uint8_t big_data[70000];
static uint8_t mid_data[300];
static char long_endpoint[1026]; /* 1025 bytes + NUL */

static hamok_id rich_id(uint8_t seed)
{
    hamok_id id;
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        id.b[i] = (uint8_t)(seed + 17 * i + 1);
    }
    return id;
}

static hamok_entry rich_entries[4];
static hamok_member rich_members[3];

static void init_samples(void)
{
    for (size_t i = 0; i < sizeof big_data; i++) {
        big_data[i] = (uint8_t)(i * 7 + 3);
    }
    for (size_t i = 0; i < sizeof mid_data; i++) {
        mid_data[i] = (uint8_t)(255 - i);
    }
    memset(long_endpoint, 'e', sizeof long_endpoint - 1);
    long_endpoint[sizeof long_endpoint - 1] = '\0';

    rich_entries[0] = (hamok_entry){UINT64_MAX, HAMOK_ENTRY_COMMAND, rich_id(1),
                                    UINT64_MAX, (uint8_t *)"hello",  5};
    rich_entries[1] = (hamok_entry){7, HAMOK_ENTRY_NOOP, {{0}}, 0, NULL, 0};
    rich_entries[2] =
        (hamok_entry){1, HAMOK_ENTRY_CONFIG, rich_id(2), 42, mid_data, sizeof mid_data};
    rich_entries[3] = (hamok_entry){
        UINT64_C(0x100000000), HAMOK_ENTRY_COMMAND, rich_id(3), 70000, big_data, sizeof big_data};

    rich_members[0] = (hamok_member){rich_id(10), HAMOK_MEMBER_VOTER, "tcp://10.0.0.1:5555"};
    rich_members[1] = (hamok_member){rich_id(11), HAMOK_MEMBER_LEARNER, ""};
    rich_members[2] = (hamok_member){rich_id(12), HAMOK_MEMBER_VOTER,
                                     "nats://h\xc3\xa9llo/\xe2\x82\xac/\xf0\x9f\x98\x80"};
}

static const uint8_t all_types[] = {
    HAMOK_MSG_HELLO,
    HAMOK_MSG_ENDPOINT_STATES,
    HAMOK_MSG_JOIN,
    HAMOK_MSG_LEAVE,
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
    HAMOK_MSG_EMIT_REQUEST,
    HAMOK_MSG_EMIT_RESPONSE,
    HAMOK_MSG_EMIT_NOTIFICATION,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* variant 0: maximal values, non-empty arrays, flags true.
 * variant 1: other non-default values, empty arrays, flags false, no leader.
 * variant 2: small values, single elements. */
static void make_msg(uint8_t type, int variant, bool broadcast, hamok_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->src = rich_id(100);
    m->broadcast = broadcast;
    if (!broadcast) {
        m->dst = rich_id(200);
    }
    uint64_t big = variant == 0 ? UINT64_MAX : variant == 1 ? UINT64_C(0x123456789a) : 3;
    bool flag = variant != 1;
    hamok_id leader = rich_id(50);
    switch (type) {
    case HAMOK_MSG_HELLO:
        m->u.hello.endpoint = variant == 0   ? rich_members[2].endpoint
                              : variant == 1 ? ""
                                             : "tcp://127.0.0.1:1";
        m->u.hello.has_leader = flag;
        m->u.hello.leader = flag ? leader : (hamok_id){{0}};
        break;
    case HAMOK_MSG_ENDPOINT_STATES:
        m->u.endpoint_states.term = big;
        m->u.endpoint_states.has_leader = flag;
        m->u.endpoint_states.leader = flag ? leader : (hamok_id){{0}};
        m->u.endpoint_states.commit_index = big - 1;
        m->u.endpoint_states.members = variant == 1 ? NULL : rich_members;
        m->u.endpoint_states.n_members = variant == 0 ? 3 : variant == 1 ? 0 : 1;
        break;
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE:
        m->u.join.endpoint = variant == 0 ? "tcp://[::1]:65535" : variant == 1 ? "" : "x";
        break;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST:
        m->u.vote.term = big;
        m->u.vote.last_log_index = big - 2;
        m->u.vote.last_log_term = big - 3;
        m->u.vote.transfer = flag;
        break;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        m->u.vote_response.term = big;
        m->u.vote_response.granted = flag;
        break;
    case HAMOK_MSG_TIMEOUT_NOW: m->u.timeout_now.term = big; break;
    case HAMOK_MSG_APPEND_ENTRIES:
        m->u.append.term = big;
        m->u.append.prev_log_index = big - 1;
        m->u.append.prev_log_term = big - 2;
        m->u.append.leader_commit = big - 3;
        m->u.append.ctx = big - 4;
        m->u.append.entries = variant == 1 ? NULL : rich_entries;
        m->u.append.n_entries = variant == 0 ? 4 : variant == 1 ? 0 : 2;
        break;
    case HAMOK_MSG_APPEND_RESPONSE:
        m->u.append_response.term = big;
        m->u.append_response.success = flag;
        m->u.append_response.match_index = big - 1;
        m->u.append_response.last_log_index = big - 2;
        m->u.append_response.reject_index = big - 3;
        m->u.append_response.conflict_index = big - 4;
        m->u.append_response.conflict_term = big - 5;
        m->u.append_response.ctx = big - 6;
        break;
    case HAMOK_MSG_INSTALL_SNAPSHOT:
        m->u.snapshot.term = big;
        m->u.snapshot.last_index = big - 1;
        m->u.snapshot.last_term = big - 2;
        m->u.snapshot.offset = big - 3;
        m->u.snapshot.done = flag;
        m->u.snapshot.members = variant == 1 ? NULL : rich_members;
        m->u.snapshot.n_members = variant == 0 ? 3 : variant == 1 ? 0 : 1;
        m->u.snapshot.data = variant == 1 ? NULL : variant == 0 ? big_data : mid_data;
        m->u.snapshot.len = variant == 1 ? 0 : variant == 0 ? sizeof big_data : sizeof mid_data;
        break;
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE:
        m->u.snapshot_response.term = big;
        m->u.snapshot_response.last_index = big - 1;
        m->u.snapshot_response.next_offset = big - 2;
        m->u.snapshot_response.done = flag;
        break;
    case HAMOK_MSG_SUBMIT_REQUEST:
        m->u.submit.request_id = big;
        m->u.submit.entry = rich_entries[variant == 0 ? 0 : variant == 1 ? 1 : 2];
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE:
        m->u.submit_response.request_id = big;
        m->u.submit_response.status = variant == 0 ? UINT32_MAX : HAMOK_ERR_NOT_LEADER;
        m->u.submit_response.has_leader = flag;
        m->u.submit_response.leader = flag ? leader : (hamok_id){{0}};
        m->u.submit_response.index = big - 1;
        m->u.submit_response.term = big - 2;
        m->u.submit_response.result = variant == 1 ? NULL : mid_data;
        m->u.submit_response.result_len = variant == 1 ? 0 : sizeof mid_data;
        break;
    case HAMOK_MSG_READ_INDEX_REQUEST: m->u.read_index.request_id = big; break;
    case HAMOK_MSG_READ_INDEX_RESPONSE:
        m->u.read_index_response.request_id = big;
        m->u.read_index_response.status = variant == 0 ? UINT32_MAX : HAMOK_ERR_NO_LEADER;
        m->u.read_index_response.has_leader = flag;
        m->u.read_index_response.leader = flag ? leader : (hamok_id){{0}};
        m->u.read_index_response.read_index = big - 1;
        break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION:
        m->u.emit.request_id = big;
        m->u.emit.name = (uint8_t *)"emitter";
        m->u.emit.name_len = 7;
        m->u.emit.event = variant == 1 ? NULL : (uint8_t *)"ev";
        m->u.emit.event_len = variant == 1 ? 0 : 2;
        m->u.emit.payload = variant == 1 ? NULL : mid_data;
        m->u.emit.payload_len = variant == 1 ? 0 : sizeof mid_data;
        break;
    case HAMOK_MSG_EMIT_RESPONSE: m->u.emit_response.request_id = big - 3; break;
    default: fail_msg("unknown type %u", type);
    }
}

/* ------------------------------------------------------------------------- */
/* Comparison */

static void assert_id_eq(const hamok_id *a, const hamok_id *b)
{
    assert_memory_equal(a->b, b->b, HAMOK_ID_LEN);
}

static void assert_bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    assert_int_equal(alen, blen);
    if (alen > 0) {
        assert_non_null(a);
        assert_non_null(b);
        assert_memory_equal(a, b, alen);
    }
}

static void assert_entry_eq(const hamok_entry *a, const hamok_entry *b)
{
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->type, b->type);
    assert_id_eq(&a->client, &b->client);
    assert_int_equal(a->seq, b->seq);
    assert_bytes_eq(a->data, a->len, b->data, b->len);
}

static void assert_members_eq(const hamok_member *a, size_t na, const hamok_member *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_id_eq(&a[i].id, &b[i].id);
        assert_int_equal(a[i].role, b[i].role);
        assert_non_null(b[i].endpoint);
        assert_string_equal(a[i].endpoint, b[i].endpoint);
    }
}

/* `b` is a decoded message (strings never NULL). */
static void assert_msg_eq(const hamok_msg *a, const hamok_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_id_eq(&a->src, &b->src);
    assert_int_equal(a->broadcast, b->broadcast);
    if (!a->broadcast) {
        assert_id_eq(&a->dst, &b->dst);
    } else {
        hamok_id nil = {{0}};
        assert_id_eq(&nil, &b->dst);
    }
    switch (a->type) {
    case HAMOK_MSG_HELLO:
        assert_string_equal(a->u.hello.endpoint, b->u.hello.endpoint);
        assert_int_equal(a->u.hello.has_leader, b->u.hello.has_leader);
        assert_id_eq(&a->u.hello.leader, &b->u.hello.leader);
        break;
    case HAMOK_MSG_ENDPOINT_STATES:
        assert_int_equal(a->u.endpoint_states.term, b->u.endpoint_states.term);
        assert_int_equal(a->u.endpoint_states.has_leader, b->u.endpoint_states.has_leader);
        assert_id_eq(&a->u.endpoint_states.leader, &b->u.endpoint_states.leader);
        assert_int_equal(a->u.endpoint_states.commit_index, b->u.endpoint_states.commit_index);
        assert_members_eq(a->u.endpoint_states.members, a->u.endpoint_states.n_members,
                          b->u.endpoint_states.members, b->u.endpoint_states.n_members);
        break;
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE: assert_string_equal(a->u.join.endpoint, b->u.join.endpoint); break;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST:
        assert_int_equal(a->u.vote.term, b->u.vote.term);
        assert_int_equal(a->u.vote.last_log_index, b->u.vote.last_log_index);
        assert_int_equal(a->u.vote.last_log_term, b->u.vote.last_log_term);
        assert_int_equal(a->u.vote.transfer, b->u.vote.transfer);
        break;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        assert_int_equal(a->u.vote_response.term, b->u.vote_response.term);
        assert_int_equal(a->u.vote_response.granted, b->u.vote_response.granted);
        break;
    case HAMOK_MSG_TIMEOUT_NOW:
        assert_int_equal(a->u.timeout_now.term, b->u.timeout_now.term);
        break;
    case HAMOK_MSG_APPEND_ENTRIES:
        assert_int_equal(a->u.append.term, b->u.append.term);
        assert_int_equal(a->u.append.prev_log_index, b->u.append.prev_log_index);
        assert_int_equal(a->u.append.prev_log_term, b->u.append.prev_log_term);
        assert_int_equal(a->u.append.leader_commit, b->u.append.leader_commit);
        assert_int_equal(a->u.append.ctx, b->u.append.ctx);
        assert_int_equal(a->u.append.n_entries, b->u.append.n_entries);
        for (size_t i = 0; i < a->u.append.n_entries; i++) {
            assert_entry_eq(&a->u.append.entries[i], &b->u.append.entries[i]);
        }
        break;
    case HAMOK_MSG_APPEND_RESPONSE: {
        const hamok_msg_append_response *x = &a->u.append_response, *y = &b->u.append_response;
        assert_int_equal(x->term, y->term);
        assert_int_equal(x->success, y->success);
        assert_int_equal(x->match_index, y->match_index);
        assert_int_equal(x->last_log_index, y->last_log_index);
        assert_int_equal(x->reject_index, y->reject_index);
        assert_int_equal(x->conflict_index, y->conflict_index);
        assert_int_equal(x->conflict_term, y->conflict_term);
        assert_int_equal(x->ctx, y->ctx);
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        const hamok_msg_snapshot *x = &a->u.snapshot, *y = &b->u.snapshot;
        assert_int_equal(x->term, y->term);
        assert_int_equal(x->last_index, y->last_index);
        assert_int_equal(x->last_term, y->last_term);
        assert_int_equal(x->offset, y->offset);
        assert_int_equal(x->done, y->done);
        assert_members_eq(x->members, x->n_members, y->members, y->n_members);
        assert_bytes_eq(x->data, x->len, y->data, y->len);
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: {
        const hamok_msg_snapshot_response *x = &a->u.snapshot_response,
                                          *y = &b->u.snapshot_response;
        assert_int_equal(x->term, y->term);
        assert_int_equal(x->last_index, y->last_index);
        assert_int_equal(x->next_offset, y->next_offset);
        assert_int_equal(x->done, y->done);
        break;
    }
    case HAMOK_MSG_SUBMIT_REQUEST:
        assert_int_equal(a->u.submit.request_id, b->u.submit.request_id);
        assert_entry_eq(&a->u.submit.entry, &b->u.submit.entry);
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE: {
        const hamok_msg_submit_response *x = &a->u.submit_response, *y = &b->u.submit_response;
        assert_int_equal(x->request_id, y->request_id);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->has_leader, y->has_leader);
        assert_id_eq(&x->leader, &y->leader);
        assert_int_equal(x->index, y->index);
        assert_int_equal(x->term, y->term);
        assert_bytes_eq(x->result, x->result_len, y->result, y->result_len);
        break;
    }
    case HAMOK_MSG_READ_INDEX_REQUEST:
        assert_int_equal(a->u.read_index.request_id, b->u.read_index.request_id);
        break;
    case HAMOK_MSG_READ_INDEX_RESPONSE: {
        const hamok_msg_read_index_response *x = &a->u.read_index_response,
                                            *y = &b->u.read_index_response;
        assert_int_equal(x->request_id, y->request_id);
        assert_int_equal(x->status, y->status);
        assert_int_equal(x->has_leader, y->has_leader);
        assert_id_eq(&x->leader, &y->leader);
        assert_int_equal(x->read_index, y->read_index);
        break;
    }
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION:
        assert_int_equal(a->u.emit.request_id, b->u.emit.request_id);
        assert_bytes_eq(a->u.emit.name, a->u.emit.name_len, b->u.emit.name, b->u.emit.name_len);
        assert_bytes_eq(a->u.emit.event, a->u.emit.event_len, b->u.emit.event, b->u.emit.event_len);
        assert_bytes_eq(a->u.emit.payload, a->u.emit.payload_len, b->u.emit.payload,
                        b->u.emit.payload_len);
        break;
    case HAMOK_MSG_EMIT_RESPONSE:
        assert_int_equal(a->u.emit_response.request_id, b->u.emit_response.request_id);
        break;
    default: fail_msg("unknown type %u", a->type);
    }
}

static void assert_zeroed(const hamok_msg *m)
{
    hamok_msg zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(m, &zero, sizeof zero);
}

/* ------------------------------------------------------------------------- */
/* A raw msgpack writer for crafting hostile frames */

static void w_bytes(hamok_buf *b, const void *d, size_t n)
{
    assert_int_equal(hamok__buf_append(b, d, n), HAMOK_OK);
}

static void w_byte(hamok_buf *b, uint8_t x)
{
    w_bytes(b, &x, 1);
}

static void w_be(hamok_buf *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        w_byte(b, (uint8_t)(v >> (8 * i)));
    }
}

static void w_uint(hamok_buf *b, uint64_t v)
{
    if (v <= 0x7f) {
        w_byte(b, (uint8_t)v);
    } else if (v <= 0xff) {
        w_byte(b, 0xcc);
        w_be(b, v, 1);
    } else if (v <= 0xffff) {
        w_byte(b, 0xcd);
        w_be(b, v, 2);
    } else if (v <= 0xffffffffu) {
        w_byte(b, 0xce);
        w_be(b, v, 4);
    } else {
        w_byte(b, 0xcf);
        w_be(b, v, 8);
    }
}

static void w_arr(hamok_buf *b, uint32_t n)
{
    if (n <= 15) {
        w_byte(b, (uint8_t)(0x90 | n));
    } else if (n <= 0xffff) {
        w_byte(b, 0xdc);
        w_be(b, n, 2);
    } else {
        w_byte(b, 0xdd);
        w_be(b, n, 4);
    }
}

static void w_str(hamok_buf *b, const char *s, size_t n)
{
    if (n <= 31) {
        w_byte(b, (uint8_t)(0xa0 | n));
    } else if (n <= 0xff) {
        w_byte(b, 0xd9);
        w_be(b, n, 1);
    } else {
        w_byte(b, 0xda);
        w_be(b, n, 2);
    }
    w_bytes(b, s, n);
}

static void w_cstr(hamok_buf *b, const char *s)
{
    w_str(b, s, strlen(s));
}

static void w_bin(hamok_buf *b, const void *d, size_t n)
{
    if (n <= 0xff) {
        w_byte(b, 0xc4);
        w_be(b, n, 1);
    } else {
        w_byte(b, 0xc5);
        w_be(b, n, 2);
    }
    w_bytes(b, d, n);
}

static void w_id(hamok_buf *b, uint8_t seed)
{
    hamok_id id = rich_id(seed);
    w_bin(b, id.b, HAMOK_ID_LEN);
}

/* Envelope of a version-1 frame up to (and including) the body array header. */
static void w_env_full(hamok_buf *b, uint64_t version, const char *cluster, uint64_t type,
                       uint32_t body_n)
{
    w_arr(b, 6);
    w_uint(b, version);
    w_cstr(b, cluster);
    w_uint(b, type);
    w_id(b, 1);
    w_id(b, 2);
    w_arr(b, body_n);
}

static void w_env(hamok_buf *b, uint64_t type, uint32_t body_n)
{
    w_env_full(b, HAMOK_PROTOCOL_VERSION, CLUSTER, type, body_n);
}

/* entry [term, type, client, seq, data] */
static void w_entry(hamok_buf *b, uint64_t term, uint64_t type)
{
    w_arr(b, 5);
    w_uint(b, term);
    w_uint(b, type);
    w_id(b, 9);
    w_uint(b, 77);
    w_bin(b, "abc", 3);
}

static void w_append_head(hamok_buf *b, uint32_t body_n)
{
    w_env(b, HAMOK_MSG_APPEND_ENTRIES, body_n);
    for (int i = 0; i < 5; i++) {
        w_uint(b, (uint64_t)(i + 1) * 1000);
    }
}

/* ------------------------------------------------------------------------- */
/* Decode helpers */

static hamok_status decode(const hamok_buf *b, const char *cluster, const hamok_codec_limits *lim,
                           hamok_msg *m, hamok_codec_reject *why)
{
    return hamok__codec_decode(b->data, b->len, cluster, lim, m, why);
}

#define expect_reject(name, data, len, cluster, lim, want_st, want_why) \
    expect_reject_(name, data, len, cluster, lim, want_st, want_why, __LINE__)

static void expect_reject_(const char *name, const uint8_t *data, size_t len, const char *cluster,
                           const hamok_codec_limits *lim, hamok_status want_st,
                           hamok_codec_reject want_why, int line)
{
    hamok_msg m;
    memset(&m, 0xab, sizeof m);
    hamok_codec_reject why = HAMOK_REJECT_COUNT_;
    hamok_status st = hamok__codec_decode(data, len, cluster, lim, &m, &why);
    if (st != want_st || why != want_why) {
        print_error("line %d case '%s': got %s/%s, want %s/%s\n", line, name, hamok_status_str(st),
                    hamok__codec_reject_str(why), hamok_status_str(want_st),
                    hamok__codec_reject_str(want_why));
        if (st == HAMOK_OK) {
            hamok__msg_clear(&m);
        }
        fail();
    }
    assert_zeroed(&m);
}

#define expect_reject_buf(name, b, want_st, want_why) \
    expect_reject_(name, (b)->data, (b)->len, CLUSTER, NULL, want_st, want_why, __LINE__)

static void expect_ok_(const char *name, const hamok_buf *b, hamok_msg *m, int line)
{
    hamok_codec_reject why = HAMOK_REJECT_COUNT_;
    hamok_status st = decode(b, CLUSTER, NULL, m, &why);
    if (st != HAMOK_OK || why != HAMOK_REJECT_NONE) {
        print_error("line %d case '%s': got %s/%s, want ok\n", line, name, hamok_status_str(st),
                    hamok__codec_reject_str(why));
        fail();
    }
}
#define expect_ok(name, b, m) expect_ok_(name, b, m, __LINE__)

/* ------------------------------------------------------------------------- */
/* Round trips */

static void roundtrip_one(const hamok_msg *m)
{
    hamok_buf b = HAMOK_BUF_INIT, b2 = HAMOK_BUF_INIT;
    assert_int_equal(hamok__codec_encode(m, CLUSTER, NULL, &b), HAMOK_OK);

    hamok_msg d;
    hamok_codec_reject why = HAMOK_REJECT_COUNT_;
    assert_int_equal(decode(&b, CLUSTER, NULL, &d, &why), HAMOK_OK);
    assert_int_equal(why, HAMOK_REJECT_NONE);
    assert_msg_eq(m, &d);

    /* Re-encoding a decoded message gives the very same bytes. */
    assert_int_equal(hamok__codec_encode(&d, CLUSTER, NULL, &b2), HAMOK_OK);
    assert_int_equal(b.len, b2.len);
    assert_memory_equal(b.data, b2.data, b.len);
    hamok__msg_clear(&d);
    assert_zeroed(&d);

    /* Any cluster accepted with NULL. */
    assert_int_equal(decode(&b, NULL, NULL, &d, NULL), HAMOK_OK);
    assert_msg_eq(m, &d);
    hamok__msg_clear(&d);

    hamok__buf_free(&b);
    hamok__buf_free(&b2);
}

static void test_roundtrip_all_types(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_TYPES; t++) {
        for (int variant = 0; variant < 3; variant++) {
            for (int bc = 0; bc < 2; bc++) {
                hamok_msg m;
                make_msg(all_types[t], variant, bc == 1, &m);
                roundtrip_one(&m);
            }
        }
    }
}

static void test_broadcast_vs_unicast(void **state)
{
    (void)state;
    hamok_msg m;
    make_msg(HAMOK_MSG_HELLO, 0, true, &m);
    m.dst = rich_id(99); /* ignored when broadcast */
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    hamok_msg d;
    assert_int_equal(decode(&b, CLUSTER, NULL, &d, NULL), HAMOK_OK);
    assert_true(d.broadcast);
    assert_true(hamok__id_is_nil(&d.dst));
    hamok__msg_clear(&d);
    hamok__buf_reset(&b);

    m.broadcast = false;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    assert_int_equal(decode(&b, CLUSTER, NULL, &d, NULL), HAMOK_OK);
    assert_false(d.broadcast);
    hamok_id want = rich_id(99);
    assert_id_eq(&want, &d.dst);
    hamok__msg_clear(&d);

    /* A nil dst id is still unicast (bin16 of zeroes). */
    hamok__buf_reset(&b);
    m.dst = (hamok_id){{0}};
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    assert_int_equal(decode(&b, CLUSTER, NULL, &d, NULL), HAMOK_OK);
    assert_false(d.broadcast);
    hamok__msg_clear(&d);
    hamok__buf_free(&b);
}

static void test_encode_appends(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    w_bytes(&b, "xyz", 3);
    hamok_msg m;
    make_msg(HAMOK_MSG_TIMEOUT_NOW, 2, false, &m);
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    assert_memory_equal(b.data, "xyz", 3);
    hamok_msg d;
    assert_int_equal(hamok__codec_decode(b.data + 3, b.len - 3, CLUSTER, NULL, &d, NULL), HAMOK_OK);
    assert_msg_eq(&m, &d);
    hamok__msg_clear(&d);
    hamok__buf_free(&b);
}

/* The examples of docs/PROTOCOL.md §9, byte for byte. */
static void test_golden_vectors(void **state)
{
    (void)state;
    static const uint8_t vote[] = {
        0x96, 0x01, 0xa4, 0x64, 0x65, 0x6d, 0x6f, 0x0c, 0xc4, 0x10, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0xc4, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x94, 0x05, 0x2a, 0x04, 0xc2,
    };
    static const uint8_t append[] = {
        0x96, 0x01, 0xa4, 0x64, 0x65, 0x6d, 0x6f, 0x10, 0xc4, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xc4, 0x10, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x96,
        0x05, 0x29, 0x04, 0x28, 0x00, 0x91, 0x95, 0xcf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x05, 0x02, 0xc4, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x03, 0x07, 0xc4, 0x02, 0x68, 0x69,
    };
    hamok_msg m;
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_VOTE_REQUEST;
    m.src = hamok__id_from_u64(1);
    m.dst = hamok__id_from_u64(2);
    m.u.vote = (hamok_msg_vote){5, 42, 4, false};
    hamok_buf b = HAMOK_BUF_INIT;
    assert_int_equal(hamok__codec_encode(&m, "demo", NULL, &b), HAMOK_OK);
    assert_int_equal(b.len, sizeof vote);
    assert_memory_equal(b.data, vote, sizeof vote);
    hamok_msg d;
    assert_int_equal(hamok__codec_decode(vote, sizeof vote, "demo", NULL, &d, NULL), HAMOK_OK);
    assert_msg_eq(&m, &d);
    hamok__msg_clear(&d);

    hamok_entry e = {5, HAMOK_ENTRY_COMMAND, hamok__id_from_u64(3), 7, (uint8_t *)"hi", 2};
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_APPEND_ENTRIES;
    m.src = hamok__id_from_u64(1);
    m.dst = hamok__id_from_u64(2);
    m.u.append = (hamok_msg_append){5, 41, 4, 40, 0, &e, 1};
    hamok__buf_reset(&b);
    assert_int_equal(hamok__codec_encode(&m, "demo", NULL, &b), HAMOK_OK);
    assert_int_equal(b.len, sizeof append);
    assert_memory_equal(b.data, append, sizeof append);
    assert_int_equal(hamok__codec_decode(append, sizeof append, "demo", NULL, &d, NULL), HAMOK_OK);
    assert_msg_eq(&m, &d);
    hamok__msg_clear(&d);
    hamok__buf_free(&b);
}

/* HAMOK_CODEC_ENTRY_OVERHEAD and HAMOK_CODEC_APPEND_OVERHEAD are upper bounds. */
static void test_overhead_bounds(void **state)
{
    (void)state;
    char cluster[HAMOK_CLUSTER_NAME_MAX + 1];
    memset(cluster, 'c', HAMOK_CLUSTER_NAME_MAX);
    cluster[HAMOK_CLUSTER_NAME_MAX] = '\0';

    hamok_codec_limits lim;
    hamok__codec_limits_default(&lim);
    lim.max_frame = SIZE_MAX;
    lim.max_elements = UINT32_MAX;

    const size_t data_lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536, 70000};
    const size_t counts[] = {0, 1, 2, 15, 16, 17, 65535, 65536, 70000};
    size_t max_n = 70000;
    hamok_entry *es = calloc(max_n, sizeof *es);
    assert_non_null(es);
    hamok_buf b = HAMOK_BUF_INIT;

    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        for (size_t di = 0; di < sizeof data_lens / sizeof data_lens[0]; di++) {
            size_t n = counts[ci], dl = data_lens[di];
            if (n * dl > 8u * 1024u * 1024u) {
                continue; /* keep the test fast; the per-entry bound is what matters */
            }
            size_t data_total = 0;
            for (size_t i = 0; i < n; i++) {
                es[i].term = UINT64_MAX;
                es[i].type = HAMOK_ENTRY_TYPE_MAX_;
                es[i].client = rich_id(0xff);
                es[i].seq = UINT64_MAX;
                es[i].data = big_data;
                es[i].len = dl;
                data_total += dl;
            }
            hamok_msg m;
            memset(&m, 0, sizeof m);
            m.type = HAMOK_MSG_APPEND_ENTRIES;
            m.src = rich_id(1);
            m.dst = rich_id(2);
            m.u.append.term = UINT64_MAX;
            m.u.append.prev_log_index = UINT64_MAX;
            m.u.append.prev_log_term = UINT64_MAX;
            m.u.append.leader_commit = UINT64_MAX;
            m.u.append.ctx = UINT64_MAX;
            m.u.append.entries = es;
            m.u.append.n_entries = n;
            hamok__buf_reset(&b);
            assert_int_equal(hamok__codec_encode(&m, cluster, &lim, &b), HAMOK_OK);
            size_t bound =
                HAMOK_CODEC_APPEND_OVERHEAD + n * HAMOK_CODEC_ENTRY_OVERHEAD + data_total;
            if (b.len > bound) {
                fail_msg("n=%zu data=%zu: %zu bytes > bound %zu", n, dl, b.len, bound);
            }
            if (n == 1) {
                /* the one entry on its own: frame minus the empty header */
                hamok_msg h = m;
                h.u.append.n_entries = 0;
                hamok_buf hb = HAMOK_BUF_INIT;
                assert_int_equal(hamok__codec_encode(&h, cluster, &lim, &hb), HAMOK_OK);
                assert_true(hb.len <= HAMOK_CODEC_APPEND_OVERHEAD);
                assert_true(b.len - hb.len <= HAMOK_CODEC_ENTRY_OVERHEAD + dl);
                hamok__buf_free(&hb);
            }
        }
    }
    hamok__buf_free(&b);
    free(es);
}

/* ------------------------------------------------------------------------- */
/* Encoder errors */

static void test_encode_errors(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    w_bytes(&b, "abc", 3);
    hamok_msg m;
    hamok_codec_limits lim;

    /* Over max_frame: TOO_BIG, buffer untouched. */
    hamok__codec_limits_default(&lim);
    lim.max_frame = 1000;
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 2, false, &m); /* 300-byte entry */
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_OK);
    size_t one = b.len - 3;
    b.len = 3;
    lim.max_frame = one - 1;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_ERR_TOO_BIG);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    lim.max_frame = one;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_OK);
    assert_int_equal(b.len, 3 + one);
    b.len = 3;

    /* Payload alone over the frame (checked before anything is written). */
    make_msg(HAMOK_MSG_INSTALL_SNAPSHOT, 0, false, &m);
    lim.max_frame = 1000;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_ERR_TOO_BIG);
    assert_int_equal(b.len, 3);

    /* More entries than max_elements. */
    hamok__codec_limits_default(&lim);
    lim.max_elements = 3;
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 0, false, &m);
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_ERR_TOO_BIG);
    make_msg(HAMOK_MSG_ENDPOINT_STATES, 0, false, &m);
    lim.max_elements = 2;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_ERR_TOO_BIG);
    assert_int_equal(b.len, 3);

    /* Depth the decoder would refuse. */
    hamok__codec_limits_default(&lim);
    lim.max_depth = 3;
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 2, false, &m);
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, &lim, &b), HAMOK_ERR_TOO_BIG);

    /* Unknown types and values outside the format. */
    const uint8_t bad_types[] = {0, 3, 6, 9, 15, 24, 99, 255};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        make_msg(HAMOK_MSG_TIMEOUT_NOW, 0, false, &m);
        m.type = bad_types[i];
        assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    }
    char cluster[HAMOK_CLUSTER_NAME_MAX + 2];
    memset(cluster, 'c', sizeof cluster - 1);
    cluster[sizeof cluster - 1] = '\0';
    make_msg(HAMOK_MSG_TIMEOUT_NOW, 0, false, &m);
    assert_int_equal(hamok__codec_encode(&m, cluster, NULL, &b), HAMOK_ERR_INVALID);
    cluster[HAMOK_CLUSTER_NAME_MAX] = '\0';
    assert_int_equal(hamok__codec_encode(&m, cluster, NULL, &b), HAMOK_OK);
    b.len = 3;
    assert_int_equal(hamok__codec_encode(&m, "bad\xff", NULL, &b), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__codec_encode(&m, NULL, NULL, &b), HAMOK_ERR_INVALID);

    hamok_entry e = rich_entries[0];
    make_msg(HAMOK_MSG_SUBMIT_REQUEST, 0, false, &m);
    e.type = 0;
    m.u.submit.entry = e;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    e.type = HAMOK_ENTRY_TYPE_MAX_ + 1;
    m.u.submit.entry = e;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    e = rich_entries[0];
    e.data = NULL; /* len 5 */
    m.u.submit.entry = e;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);

    hamok_member mb[1] = {{rich_id(1), 3, "x"}};
    make_msg(HAMOK_MSG_ENDPOINT_STATES, 0, false, &m);
    m.u.endpoint_states.members = mb;
    m.u.endpoint_states.n_members = 1;
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    mb[0].role = HAMOK_MEMBER_VOTER;
    mb[0].endpoint = long_endpoint; /* 1025 bytes */
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    mb[0].endpoint = long_endpoint + 1; /* 1024 bytes */
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    b.len = 3;

    make_msg(HAMOK_MSG_JOIN, 0, false, &m);
    m.u.join.endpoint = "\xc0\x80";
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_ERR_INVALID);
    m.u.join.endpoint = NULL; /* encoded as "" */
    assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
    hamok_msg d;
    assert_int_equal(hamok__codec_decode(b.data + 3, b.len - 3, CLUSTER, NULL, &d, NULL), HAMOK_OK);
    assert_string_equal(d.u.join.endpoint, "");
    hamok__msg_clear(&d);

    assert_int_equal(b.len > 3, true);
    hamok__buf_free(&b);
}

/* ------------------------------------------------------------------------- */
/* Hostile input */

static void test_reject_basic(void **state)
{
    (void)state;
    static const uint8_t bomb[] = {0x99, 0xdd, 0xdd, 0xdd, 0xdd, 0x8a};
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t arr16[] = {0xdc, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map16[] = {0xde, 0xff, 0xff, 0x01};
    static const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 'a'};
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    static const uint8_t never[] = {0xc1};
    static const uint8_t nil[] = {0xc0};
    static const uint8_t zero_arr[] = {0x90};
    static const uint8_t one_byte[] = {0x96};
    static const uint8_t map_env[] = {0x81, 0x01, 0x01};

    expect_reject("empty", (const uint8_t *)"", 0, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("NULL", NULL, 0, CLUSTER, NULL, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    expect_reject("bomb", bomb, sizeof bomb, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("bomb/any cluster", bomb, sizeof bomb, NULL, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("array32 huge", arr32, sizeof arr32, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("array16 huge", arr16, sizeof arr16, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("map32 huge", map32, sizeof map32, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("map16 huge", map16, sizeof map16, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("str32 huge", str32, sizeof str32, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("bin32 huge", bin32, sizeof bin32, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("ext", ext, sizeof ext, CLUSTER, NULL, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    expect_reject("0xc1", never, sizeof never, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("nil", nil, sizeof nil, CLUSTER, NULL, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    expect_reject("empty array", zero_arr, sizeof zero_arr, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("lone header", one_byte, sizeof one_byte, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    expect_reject("map envelope", map_env, sizeof map_env, CLUSTER, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);

    hamok_buf b = HAMOK_BUF_INIT;
    /* Declared lengths deeper in an otherwise plausible frame. */
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_bytes(&b, str32, 5);
    expect_reject_buf("cluster str32 huge", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_append_head(&b, 6);
    w_bytes(&b, arr32, 5);
    expect_reject_buf("entries array32 huge", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_append_head(&b, 6);
    w_arr(&b, 1);
    w_arr(&b, 5);
    w_uint(&b, 1);
    w_uint(&b, 2);
    w_byte(&b, 0xc0);
    w_uint(&b, 3);
    w_bytes(&b, bin32, sizeof bin32);
    expect_reject_buf("entry data bin32 huge", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 5);
    w_bytes(&b, map32, 5);
    expect_reject_buf("extra field map32 huge", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 5);
    w_bytes(&b, arr32, 5);
    expect_reject_buf("extra field array32 huge", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 5);
    w_bytes(&b, ext, sizeof ext);
    expect_reject_buf("extra field ext", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);

    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 5);
    w_bytes(&b, "\xa3\xff\xfe\xfd", 4);
    expect_reject_buf("extra field bad utf-8", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_free(&b);
}

static void test_reject_truncated(void **state)
{
    (void)state;
    /* Every proper prefix of every rich frame is rejected, leaving out zeroed. */
    for (size_t t = 0; t < N_TYPES; t++) {
        for (int variant = 0; variant < 3; variant += 2) {
            hamok_msg m;
            make_msg(all_types[t], variant, variant == 2, &m);
            if (all_types[t] == HAMOK_MSG_APPEND_ENTRIES && variant == 0) {
                m.u.append.n_entries = 3; /* skip the 70000-byte entry: quadratic */
            }
            if (all_types[t] == HAMOK_MSG_INSTALL_SNAPSHOT && variant == 0) {
                m.u.snapshot.len = 1000;
            }
            hamok_buf b = HAMOK_BUF_INIT;
            assert_int_equal(hamok__codec_encode(&m, CLUSTER, NULL, &b), HAMOK_OK);
            for (size_t k = 0; k < b.len; k++) {
                /* copy so ASan sees reads past the prefix */
                uint8_t *p = malloc(k ? k : 1);
                assert_non_null(p);
                memcpy(p, b.data, k);
                hamok_msg d;
                memset(&d, 0xab, sizeof d);
                hamok_codec_reject why = HAMOK_REJECT_NONE;
                hamok_status st = hamok__codec_decode(p, k, CLUSTER, NULL, &d, &why);
                bool ok = (st == HAMOK_ERR_CODEC && why == HAMOK_REJECT_MALFORMED) ||
                          (st == HAMOK_ERR_TOO_BIG && why == HAMOK_REJECT_TOO_BIG);
                if (!ok) {
                    fail_msg("type %u prefix %zu/%zu: %s/%s", all_types[t], k, b.len,
                             hamok_status_str(st), hamok__codec_reject_str(why));
                }
                assert_zeroed(&d);
                free(p);
            }
            hamok__buf_free(&b);
        }
    }
}

static void test_reject_limits(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_codec_limits lim;
    hamok_msg m;

    /* Over max_frame, before anything is read. */
    hamok_msg sm;
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 2, false, &sm);
    assert_int_equal(hamok__codec_encode(&sm, CLUSTER, NULL, &b), HAMOK_OK);
    hamok__codec_limits_default(&lim);
    lim.max_frame = b.len - 1;
    expect_reject("over max_frame", b.data, b.len, CLUSTER, &lim, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);
    lim.max_frame = b.len;
    assert_int_equal(decode(&b, CLUSTER, &lim, &m, NULL), HAMOK_OK);
    hamok__msg_clear(&m);
    hamok__buf_reset(&b);

    uint8_t *huge = calloc(1, HAMOK_CODEC_DEFAULT_MAX_FRAME + 1);
    assert_non_null(huge);
    huge[0] = 0x96;
    expect_reject("over default max_frame", huge, HAMOK_CODEC_DEFAULT_MAX_FRAME + 1, CLUSTER, NULL,
                  HAMOK_ERR_TOO_BIG, HAMOK_REJECT_TOO_BIG);
    free(huge);

    /* Element count over max_elements (elements really present). */
    hamok__codec_limits_default(&lim);
    lim.max_elements = 8;
    for (uint32_t n = 8; n <= 9; n++) {
        hamok__buf_reset(&b);
        w_append_head(&b, 6);
        w_arr(&b, n);
        for (uint32_t i = 0; i < n; i++) {
            w_entry(&b, i, HAMOK_ENTRY_COMMAND);
        }
        if (n == 8) {
            assert_int_equal(decode(&b, CLUSTER, &lim, &m, NULL), HAMOK_OK);
            assert_int_equal(m.u.append.n_entries, 8);
            hamok__msg_clear(&m);
        } else {
            expect_reject("entries over max_elements", b.data, b.len, CLUSTER, &lim,
                          HAMOK_ERR_TOO_BIG, HAMOK_REJECT_TOO_BIG);
        }
    }
    /* ... and in a skipped field. */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 1);
    w_arr(&b, 9);
    for (int i = 0; i < 9; i++) {
        w_uint(&b, 0);
    }
    expect_reject("extra field over max_elements", b.data, b.len, CLUSTER, &lim, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);

    /* Nesting: envelope (1) + body (2) + nested arrays in an extra field. */
    for (uint32_t extra = 13; extra <= 40; extra++) {
        hamok__buf_reset(&b);
        w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
        w_uint(&b, 1);
        for (uint32_t i = 0; i < extra; i++) {
            w_arr(&b, 1);
        }
        w_uint(&b, 7);
        if (2 + extra <= HAMOK_CODEC_DEFAULT_MAX_DEPTH) {
            expect_ok("nesting at the limit", &b, &m);
            assert_int_equal(m.u.timeout_now.term, 1);
            hamok__msg_clear(&m);
        } else {
            expect_reject("nesting over max_depth", b.data, b.len, CLUSTER, NULL, HAMOK_ERR_TOO_BIG,
                          HAMOK_REJECT_TOO_BIG);
        }
    }
    /* Nested maps count too. */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 1);
    for (int i = 0; i < 20; i++) {
        w_byte(&b, 0x81);
        w_uint(&b, 1);
    }
    w_uint(&b, 7);
    expect_reject("map nesting over max_depth", b.data, b.len, CLUSTER, NULL, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);
    /* A huge configured depth is capped: 1000 levels still rejected. */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 2);
    w_uint(&b, 1);
    for (int i = 0; i < 1000; i++) {
        w_arr(&b, 1);
    }
    w_uint(&b, 7);
    hamok__codec_limits_default(&lim);
    lim.max_depth = UINT32_MAX;
    expect_reject("1000 levels", b.data, b.len, CLUSTER, &lim, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);

    /* A small configured depth rejects entries (depth 4). */
    hamok__buf_reset(&b);
    assert_int_equal(hamok__codec_encode(&sm, CLUSTER, NULL, &b), HAMOK_OK);
    hamok__codec_limits_default(&lim);
    lim.max_depth = 3;
    expect_reject("entries deeper than max_depth", b.data, b.len, CLUSTER, &lim, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);

    /* Allocation amplification: many minimal entries would need more than 4x
     * the frame in hamok_entry structs. */
    hamok__buf_reset(&b);
    w_append_head(&b, 6);
    w_arr(&b, 1000);
    for (int i = 0; i < 1000; i++) {
        w_bytes(&b, "\x95\x01\x01\xc0\x00\xc4\x00", 7);
    }
    expect_reject("allocation over 4x frame", b.data, b.len, CLUSTER, NULL, HAMOK_ERR_TOO_BIG,
                  HAMOK_REJECT_TOO_BIG);
    /* The same entries as this encoder writes them (fixed-width term) pass. */
    hamok_entry *es = calloc(1000, sizeof *es);
    assert_non_null(es);
    for (int i = 0; i < 1000; i++) {
        es[i].term = 1;
        es[i].type = HAMOK_ENTRY_NOOP;
    }
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 1, false, &sm);
    sm.u.append.term = sm.u.append.prev_log_index = sm.u.append.prev_log_term = 0;
    sm.u.append.leader_commit = sm.u.append.ctx = 0;
    sm.u.append.entries = es;
    sm.u.append.n_entries = 1000;
    hamok__buf_reset(&b);
    assert_int_equal(hamok__codec_encode(&sm, "", NULL, &b), HAMOK_OK);
    assert_int_equal(decode(&b, "", NULL, &m, NULL), HAMOK_OK);
    assert_msg_eq(&sm, &m);
    hamok__msg_clear(&m);
    free(es);

    hamok__buf_free(&b);
}

static void test_reject_envelope(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_msg m;

    /* Sanity: the crafted frame is valid. */
    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 5);
    expect_ok("crafted", &b, &m);
    assert_int_equal(m.type, HAMOK_MSG_TIMEOUT_NOW);
    assert_int_equal(m.u.timeout_now.term, 5);
    assert_false(m.broadcast);
    hamok__msg_clear(&m);

    /* Trailing bytes. */
    w_byte(&b, 0x00);
    expect_reject_buf("trailing byte", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    w_bytes(&b, "garbage", 7);
    expect_reject_buf("trailing garbage", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* Version. */
    const uint64_t versions[] = {0, 2, 255, UINT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        hamok__buf_reset(&b);
        w_env_full(&b, versions[i], CLUSTER, HAMOK_MSG_TIMEOUT_NOW, 1);
        w_uint(&b, 5);
        expect_reject_buf("wrong version", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_VERSION);
    }
    /* An unknown version is dropped whatever follows. */
    hamok__buf_reset(&b);
    w_arr(&b, 3);
    w_uint(&b, 2);
    w_cstr(&b, "x");
    w_cstr(&b, "y");
    expect_reject_buf("version 2, other shape", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_VERSION);
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_cstr(&b, "1");
    expect_reject_buf("version as str", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_byte(&b, 0xff);
    expect_reject_buf("negative version", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* Envelope shape. */
    for (uint32_t n = 1; n <= 8; n++) {
        if (n == 6) {
            continue;
        }
        hamok__buf_reset(&b);
        w_arr(&b, n);
        w_uint(&b, 1);
        for (uint32_t i = 1; i < n; i++) {
            w_uint(&b, 0);
        }
        expect_reject_buf("envelope element count", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    }

    /* Cluster. */
    hamok__buf_reset(&b);
    w_env_full(&b, 1, "other", HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 5);
    expect_reject_buf("other cluster", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_CLUSTER);
    expect_reject("prefix of cluster name", b.data, b.len, "othe", NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_CLUSTER);
    expect_reject("longer cluster name", b.data, b.len, "others", NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_CLUSTER);
    assert_int_equal(decode(&b, NULL, NULL, &m, NULL), HAMOK_OK);
    hamok__msg_clear(&m);
    assert_int_equal(decode(&b, "other", NULL, &m, NULL), HAMOK_OK);
    hamok__msg_clear(&m);

    char name[HAMOK_CLUSTER_NAME_MAX + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    hamok__buf_reset(&b);
    w_env_full(&b, 1, name, HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 5);
    expect_reject("cluster name too long", b.data, b.len, NULL, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);
    name[HAMOK_CLUSTER_NAME_MAX] = '\0';
    hamok__buf_reset(&b);
    w_env_full(&b, 1, name, HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 5);
    assert_int_equal(decode(&b, name, NULL, &m, NULL), HAMOK_OK);
    hamok__msg_clear(&m);

    hamok__buf_reset(&b);
    w_env_full(&b, 1, "bad\xc3", HAMOK_MSG_TIMEOUT_NOW, 1);
    w_uint(&b, 5);
    expect_reject("cluster bad utf-8", b.data, b.len, NULL, NULL, HAMOK_ERR_CODEC,
                  HAMOK_REJECT_MALFORMED);

    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_bin(&b, CLUSTER, strlen(CLUSTER));
    expect_reject_buf("cluster as bin", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* Type. */
    const uint64_t bad_types[] = {0, 3, 6, 9, 15, 24, 62, 99, 255, 256, 65536, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        hamok__buf_reset(&b);
        w_env(&b, bad_types[i], 1);
        w_uint(&b, 5);
        expect_reject_buf("unknown type", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_TYPE);
    }
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_cstr(&b, CLUSTER);
    w_byte(&b, 0xf2); /* -14 */
    expect_reject_buf("negative type", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* Ids. */
    static const uint8_t raw15[15] = {1}, raw17[17] = {1};
    for (int which = 0; which < 2; which++) {
        for (int variant = 0; variant < 5; variant++) {
            hamok__buf_reset(&b);
            w_arr(&b, 6);
            w_uint(&b, 1);
            w_cstr(&b, CLUSTER);
            w_uint(&b, HAMOK_MSG_TIMEOUT_NOW);
            if (which == 1) {
                w_id(&b, 1);
            }
            switch (variant) {
            case 0: w_bin(&b, raw15, 15); break;
            case 1: w_bin(&b, raw17, 17); break;
            case 2: w_str(&b, "0123456789abcdef", 16); break;
            case 3: w_byte(&b, 0xc2); break;
            case 4: w_bin(&b, raw15, 0); break;
            }
            if (which == 0) {
                w_id(&b, 2);
            }
            w_arr(&b, 1);
            w_uint(&b, 5);
            expect_reject_buf(which == 0 ? "bad src id" : "bad dst id", &b, HAMOK_ERR_CODEC,
                              HAMOK_REJECT_MALFORMED);
        }
    }
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_cstr(&b, CLUSTER);
    w_uint(&b, HAMOK_MSG_TIMEOUT_NOW);
    w_byte(&b, 0xc0); /* src nil */
    w_id(&b, 2);
    w_arr(&b, 1);
    w_uint(&b, 5);
    expect_reject_buf("nil src", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    /* id in bin16 form (non-canonical but valid) */
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_cstr(&b, CLUSTER);
    w_uint(&b, HAMOK_MSG_TIMEOUT_NOW);
    w_bytes(&b, "\xc5\x00\x10", 3);
    w_bytes(&b, raw17, 16);
    w_byte(&b, 0xc0); /* broadcast */
    w_arr(&b, 1);
    w_uint(&b, 5);
    expect_ok("bin16 id", &b, &m);
    assert_true(m.broadcast);
    hamok__msg_clear(&m);

    /* Body shape. */
    hamok__buf_reset(&b);
    w_arr(&b, 6);
    w_uint(&b, 1);
    w_cstr(&b, CLUSTER);
    w_uint(&b, HAMOK_MSG_TIMEOUT_NOW);
    w_id(&b, 1);
    w_id(&b, 2);
    w_byte(&b, 0x81);
    w_uint(&b, 0);
    w_uint(&b, 5);
    expect_reject_buf("body as map", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    b.len -= 3;
    w_byte(&b, 0xc0);
    expect_reject_buf("body nil", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    hamok__buf_free(&b);
}

/* Fewer body fields than required, for every type. */
static void test_reject_short_bodies(void **state)
{
    (void)state;
    static const struct {
        uint8_t type;
        uint32_t need;
    } need[] = {
        {HAMOK_MSG_HELLO, 2},
        {HAMOK_MSG_ENDPOINT_STATES, 4},
        {HAMOK_MSG_JOIN, 1},
        {HAMOK_MSG_LEAVE, 1},
        {HAMOK_MSG_EMIT_REQUEST, 4},
        {HAMOK_MSG_EMIT_RESPONSE, 1},
        {HAMOK_MSG_EMIT_NOTIFICATION, 4},
        {HAMOK_MSG_PREVOTE_REQUEST, 4},
        {HAMOK_MSG_PREVOTE_RESPONSE, 2},
        {HAMOK_MSG_VOTE_REQUEST, 4},
        {HAMOK_MSG_VOTE_RESPONSE, 2},
        {HAMOK_MSG_TIMEOUT_NOW, 1},
        {HAMOK_MSG_APPEND_ENTRIES, 6},
        {HAMOK_MSG_APPEND_RESPONSE, 8},
        {HAMOK_MSG_INSTALL_SNAPSHOT, 7},
        {HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE, 4},
        {HAMOK_MSG_SUBMIT_REQUEST, 2},
        {HAMOK_MSG_SUBMIT_RESPONSE, 6},
        {HAMOK_MSG_READ_INDEX_REQUEST, 1},
        {HAMOK_MSG_READ_INDEX_RESPONSE, 4},
    };
    hamok_buf b = HAMOK_BUF_INIT;
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        for (uint32_t n = 0; n < need[i].need; n++) {
            hamok__buf_reset(&b);
            w_env(&b, need[i].type, n);
            for (uint32_t k = 0; k < n; k++) {
                w_uint(&b, 0); /* content irrelevant: the count is checked first */
            }
            expect_reject_buf("short body", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
        }
    }

    /* Short entry and member arrays. */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_SUBMIT_REQUEST, 2);
    w_uint(&b, 1);
    w_arr(&b, 4);
    w_uint(&b, 1);
    w_uint(&b, HAMOK_ENTRY_COMMAND);
    w_byte(&b, 0xc0);
    w_uint(&b, 1);
    expect_reject_buf("entry with 4 fields", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_ENDPOINT_STATES, 4);
    w_uint(&b, 1);
    w_byte(&b, 0xc0);
    w_uint(&b, 1);
    w_arr(&b, 1);
    w_arr(&b, 2);
    w_id(&b, 3);
    w_uint(&b, HAMOK_MEMBER_VOTER);
    expect_reject_buf("member with 2 fields", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_free(&b);
}

/* Extra trailing fields in bodies, entries and members are skipped. */
static void test_extra_fields_accepted(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_msg m;

    /* A vote request with 6 extra fields of every kind. */
    w_env(&b, HAMOK_MSG_VOTE_REQUEST, 10);
    w_uint(&b, 9);
    w_uint(&b, 8);
    w_uint(&b, 7);
    w_byte(&b, 0xc3);
    w_byte(&b, 0x82); /* {"k": 1.5 (float64), 1: [nil, -1]} */
    w_cstr(&b, "k");
    w_bytes(&b, "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00", 9);
    w_uint(&b, 1);
    w_arr(&b, 2);
    w_byte(&b, 0xc0);
    w_byte(&b, 0xff);
    w_bytes(&b, "\xca\x00\x00\x00\x00", 5); /* float32 */
    w_cstr(&b, "future \xe2\x82\xac");
    w_bin(&b, "\x00\x01", 2);
    w_bytes(&b, "\xd3\xff\xff\xff\xff\xff\xff\xff\xfe", 9); /* int64 -2 */
    w_arr(&b, 0);
    expect_ok("vote request + extras", &b, &m);
    assert_int_equal(m.type, HAMOK_MSG_VOTE_REQUEST);
    assert_int_equal(m.u.vote.term, 9);
    assert_int_equal(m.u.vote.last_log_index, 8);
    assert_int_equal(m.u.vote.last_log_term, 7);
    assert_true(m.u.vote.transfer);
    hamok__msg_clear(&m);

    /* Entries and members with extra fields. */
    hamok__buf_reset(&b);
    w_append_head(&b, 7);
    w_arr(&b, 2);
    w_arr(&b, 7);
    w_uint(&b, 3);
    w_uint(&b, HAMOK_ENTRY_CONFIG);
    w_byte(&b, 0xc0);
    w_uint(&b, 0);
    w_bin(&b, "xy", 2);
    w_cstr(&b, "extra");
    w_arr(&b, 1);
    w_uint(&b, 1);
    w_entry(&b, 4, HAMOK_ENTRY_NOOP);
    w_cstr(&b, "extra body field");
    expect_ok("append + extras", &b, &m);
    assert_int_equal(m.u.append.ctx, 5000);
    assert_int_equal(m.u.append.n_entries, 2);
    assert_int_equal(m.u.append.entries[0].term, 3);
    assert_int_equal(m.u.append.entries[0].type, HAMOK_ENTRY_CONFIG);
    assert_true(hamok__id_is_nil(&m.u.append.entries[0].client));
    assert_int_equal(m.u.append.entries[0].len, 2);
    assert_memory_equal(m.u.append.entries[0].data, "xy", 2);
    assert_int_equal(m.u.append.entries[1].term, 4);
    assert_int_equal(m.u.append.entries[1].seq, 77);
    hamok__msg_clear(&m);

    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_ENDPOINT_STATES, 5);
    w_uint(&b, 11);
    w_id(&b, 4);
    w_uint(&b, 10);
    w_arr(&b, 1);
    w_arr(&b, 5);
    w_id(&b, 3);
    w_uint(&b, HAMOK_MEMBER_LEARNER);
    w_cstr(&b, "tcp://a:1");
    w_uint(&b, 12345);
    w_byte(&b, 0xc2);
    w_byte(&b, 0xc0);
    expect_ok("endpoint states + extras", &b, &m);
    assert_int_equal(m.u.endpoint_states.term, 11);
    assert_true(m.u.endpoint_states.has_leader);
    assert_int_equal(m.u.endpoint_states.n_members, 1);
    assert_int_equal(m.u.endpoint_states.members[0].role, HAMOK_MEMBER_LEARNER);
    assert_string_equal(m.u.endpoint_states.members[0].endpoint, "tcp://a:1");
    hamok__msg_clear(&m);
    hamok__buf_free(&b);
}

static void test_reject_field_types(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_msg m;

    /* term values of every kind: which are accepted as uint 5 */
    static const struct {
        const char *bytes;
        size_t len;
        bool ok;
    } terms[] = {
        {"\x05", 1, true},
        {"\xcc\x05", 2, true},
        {"\xcd\x00\x05", 3, true},
        {"\xce\x00\x00\x00\x05", 5, true},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, true},
        {"\xd0\x05", 2, true},
        {"\xd1\x00\x05", 3, true},
        {"\xd2\x00\x00\x00\x05", 5, true},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x05", 9, true},
        {"\xff", 1, false},                                 /* -1 */
        {"\xe0", 1, false},                                 /* -32 */
        {"\xd0\x80", 2, false},                             /* int8 -128 */
        {"\xd0\xff", 2, false},                             /* int8 -1 */
        {"\xd1\x80\x00", 3, false},                         /* int16 */
        {"\xd2\xff\xff\xff\xfb", 5, false},                 /* int32 -5 */
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, false}, /* int64 min */
        {"\xca\x40\xa0\x00\x00", 5, false},                 /* float32 5.0 */
        {"\xcb\x40\x14\x00\x00\x00\x00\x00\x00", 9, false}, /* float64 5.0 */
        {"\xc0", 1, false},                                 /* nil */
        {"\xc3", 1, false},                                 /* true */
        {"\xa1\x35", 2, false},                             /* "5" */
        {"\xc4\x01\x05", 3, false},                         /* bin */
        {"\x91\x05", 2, false},                             /* [5] */
        {"\x80", 1, false},                                 /* {} */
        {"\xd4\x00\x05", 3, false},                         /* fixext1 */
        {"\xc7\x01\x00\x05", 4, false},                     /* ext8 */
        {"\xc1", 1, false},                                 /* never used */
    };
    for (size_t i = 0; i < sizeof terms / sizeof terms[0]; i++) {
        hamok__buf_reset(&b);
        w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 1);
        w_bytes(&b, terms[i].bytes, terms[i].len);
        if (terms[i].ok) {
            expect_ok("uint width", &b, &m);
            assert_int_equal(m.u.timeout_now.term, 5);
            hamok__msg_clear(&m);
        } else {
            char name[64];
            snprintf(name, sizeof name, "term value #%zu", i);
            expect_reject_buf(name, &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
        }
    }
    /* max uint64 in the widest form */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_TIMEOUT_NOW, 1);
    w_bytes(&b, "\xd3\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
    expect_ok("int64 max", &b, &m);
    assert_int_equal(m.u.timeout_now.term, INT64_MAX);
    hamok__msg_clear(&m);

    /* bool fields: 0/1 and nil are not bools */
    static const char *const not_bools[] = {"\x00", "\x01", "\xc0", "\xa0"};
    for (size_t i = 0; i < 4; i++) {
        hamok__buf_reset(&b);
        w_env(&b, HAMOK_MSG_VOTE_RESPONSE, 2);
        w_uint(&b, 1);
        w_bytes(&b, not_bools[i], 1);
        expect_reject_buf("bool of another type", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    }
    /* entry data as str; endpoint as bin; entries as map; leader as str */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_SUBMIT_REQUEST, 2);
    w_uint(&b, 1);
    w_arr(&b, 5);
    w_uint(&b, 1);
    w_uint(&b, HAMOK_ENTRY_COMMAND);
    w_id(&b, 1);
    w_uint(&b, 1);
    w_cstr(&b, "data");
    expect_reject_buf("entry data as str", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_JOIN, 1);
    w_bin(&b, "tcp://x:1", 9);
    expect_reject_buf("endpoint as bin", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    hamok__buf_reset(&b);
    w_append_head(&b, 6);
    w_byte(&b, 0x80);
    expect_reject_buf("entries as map", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_HELLO, 2);
    w_cstr(&b, "e");
    w_cstr(&b, "0123456789abcdef");
    expect_reject_buf("leader as str", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* status over uint32 */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_READ_INDEX_RESPONSE, 4);
    w_uint(&b, 1);
    w_uint(&b, UINT64_C(0x100000000));
    w_byte(&b, 0xc0);
    w_uint(&b, 1);
    expect_reject_buf("status over uint32", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);

    /* entry types */
    const uint64_t bad_entry_types[] = {0, 4, 15, 255, 256, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad_entry_types / sizeof bad_entry_types[0]; i++) {
        hamok__buf_reset(&b);
        w_append_head(&b, 6);
        w_arr(&b, 2);
        w_entry(&b, 1, HAMOK_ENTRY_COMMAND);
        w_entry(&b, 1, bad_entry_types[i]);
        expect_reject_buf("unknown entry type", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_TYPE);
        hamok__buf_reset(&b);
        w_env(&b, HAMOK_MSG_SUBMIT_REQUEST, 2);
        w_uint(&b, 1);
        w_entry(&b, 1, bad_entry_types[i]);
        expect_reject_buf("unknown submit entry type", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_TYPE);
    }

    /* member roles */
    const uint64_t bad_roles[] = {0, 3, 256};
    for (size_t i = 0; i < 3; i++) {
        hamok__buf_reset(&b);
        w_env(&b, HAMOK_MSG_ENDPOINT_STATES, 4);
        w_uint(&b, 1);
        w_byte(&b, 0xc0);
        w_uint(&b, 1);
        w_arr(&b, 1);
        w_arr(&b, 3);
        w_id(&b, 3);
        w_uint(&b, bad_roles[i]);
        w_cstr(&b, "");
        expect_reject_buf("unknown member role", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    }
    hamok__buf_free(&b);
}

static void test_reject_strings(void **state)
{
    (void)state;
    hamok_buf b = HAMOK_BUF_INIT;
    hamok_msg m;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } strs[] = {
        {"", 0, true},
        {"tcp://127.0.0.1:5000", 20, true},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf", 16, true},
        {"\xc0\x80", 2, false},         /* overlong NUL */
        {"\xc1\xbf", 2, false},         /* overlong */
        {"\xe0\x80\x80", 3, false},     /* overlong 3-byte */
        {"\xe0\x9f\xbf", 3, false},     /* overlong 3-byte */
        {"\xf0\x80\x80\x80", 4, false}, /* overlong 4-byte */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xed\xbf\xbf", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
        {"\xf5\x80\x80\x80", 4, false},
        {"\xff", 1, false},
        {"\xfe", 1, false},
        {"\x80", 1, false},      /* lone continuation */
        {"a\xe2\x82", 3, false}, /* truncated */
        {"\xe2\x28\xa1", 3, false},
        {"a\0b", 3, false}, /* NUL */
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        for (int where = 0; where < 3; where++) {
            hamok__buf_reset(&b);
            if (where == 0) {
                w_env(&b, HAMOK_MSG_JOIN, 1);
                w_str(&b, strs[i].s, strs[i].len);
            } else if (where == 1) {
                w_env(&b, HAMOK_MSG_HELLO, 2);
                w_str(&b, strs[i].s, strs[i].len);
                w_byte(&b, 0xc0);
            } else {
                w_env(&b, HAMOK_MSG_INSTALL_SNAPSHOT, 7);
                for (int k = 0; k < 4; k++) {
                    w_uint(&b, 1);
                }
                w_byte(&b, 0xc2);
                w_arr(&b, 1);
                w_arr(&b, 3);
                w_id(&b, 7);
                w_uint(&b, 1);
                w_str(&b, strs[i].s, strs[i].len);
                w_bin(&b, "", 0);
            }
            if (strs[i].ok) {
                expect_ok("valid utf-8", &b, &m);
                const char *got = where == 0   ? m.u.join.endpoint
                                  : where == 1 ? m.u.hello.endpoint
                                               : m.u.snapshot.members[0].endpoint;
                assert_int_equal(strlen(got), strs[i].len);
                assert_memory_equal(got, strs[i].s, strs[i].len);
                hamok__msg_clear(&m);
            } else {
                char name[64];
                snprintf(name, sizeof name, "invalid utf-8 #%zu at %d", i, where);
                expect_reject_buf(name, &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
            }
        }
    }
    /* endpoint length limit */
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_JOIN, 1);
    w_str(&b, long_endpoint, 1025);
    expect_reject_buf("endpoint 1025 bytes", &b, HAMOK_ERR_CODEC, HAMOK_REJECT_MALFORMED);
    hamok__buf_reset(&b);
    w_env(&b, HAMOK_MSG_JOIN, 1);
    w_str(&b, long_endpoint, 1024);
    expect_ok("endpoint 1024 bytes", &b, &m);
    assert_int_equal(strlen(m.u.join.endpoint), 1024);
    hamok__msg_clear(&m);
    hamok__buf_free(&b);
}

/* ------------------------------------------------------------------------- */
/* Allocation failures */

static long alloc_fail_at; /* fail the Nth allocation (1-based); 0 = never */
static long alloc_count;
static long alloc_live;

static void *t_malloc(void *ud, size_t size)
{
    (void)ud;
    if (++alloc_count == alloc_fail_at) {
        return NULL;
    }
    void *p = malloc(size);
    if (p != NULL) {
        alloc_live++;
    }
    return p;
}

static void *t_realloc(void *ud, void *ptr, size_t size)
{
    (void)ud;
    if (++alloc_count == alloc_fail_at) {
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL) {
        alloc_live++;
    }
    return p;
}

static void t_free(void *ud, void *ptr)
{
    (void)ud;
    if (ptr != NULL) {
        alloc_live--;
    }
    free(ptr);
}

static void test_alloc_failure_sweep(void **state)
{
    (void)state;
    hamok_msg rich[3];
    make_msg(HAMOK_MSG_APPEND_ENTRIES, 0, false, &rich[0]);
    make_msg(HAMOK_MSG_INSTALL_SNAPSHOT, 0, false, &rich[1]);
    make_msg(HAMOK_MSG_ENDPOINT_STATES, 0, true, &rich[2]);
    const hamok_allocator a = {t_malloc, t_realloc, t_free, NULL};

    for (int r = 0; r < 3; r++) {
        hamok_buf b = HAMOK_BUF_INIT;
        assert_int_equal(hamok__codec_encode(&rich[r], CLUSTER, NULL, &b), HAMOK_OK);
        bool done = false;
        long n;
        for (n = 1; n < 100 && !done; n++) {
            alloc_fail_at = n;
            alloc_count = 0;
            alloc_live = 0;
            assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
            hamok_msg d;
            hamok_codec_reject why = HAMOK_REJECT_COUNT_;
            hamok_status st = decode(&b, CLUSTER, NULL, &d, &why);
            if (st == HAMOK_OK) {
                assert_int_equal(why, HAMOK_REJECT_NONE);
                assert_msg_eq(&rich[r], &d);
                hamok__msg_clear(&d);
                done = true;
            } else {
                assert_int_equal(st, HAMOK_ERR_NOMEM);
                assert_zeroed(&d);
            }
            assert_int_equal(alloc_live, 0);
            assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
        }
        assert_true(done);
        assert_true(n > 3); /* several allocations were exercised */

        /* Encoder: NOMEM leaves the buffer as it was. */
        for (n = 1; n < 40; n++) {
            hamok_buf out = HAMOK_BUF_INIT;
            alloc_fail_at = n;
            alloc_count = 0;
            alloc_live = 0;
            assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
            hamok_status st = hamok__codec_encode(&rich[r], CLUSTER, NULL, &out);
            if (st == HAMOK_OK) {
                assert_int_equal(out.len, b.len);
                assert_memory_equal(out.data, b.data, b.len);
            } else {
                assert_int_equal(st, HAMOK_ERR_NOMEM);
                assert_int_equal(out.len, 0);
            }
            hamok__buf_free(&out);
            assert_int_equal(alloc_live, 0);
            assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
            if (st == HAMOK_OK) {
                break;
            }
        }
        hamok__buf_free(&b);
    }
}

/* ------------------------------------------------------------------------- */

static void test_misc(void **state)
{
    (void)state;
    hamok_codec_limits lim;
    memset(&lim, 0, sizeof lim);
    hamok__codec_limits_default(&lim);
    assert_int_equal(lim.max_frame, HAMOK_CODEC_DEFAULT_MAX_FRAME);
    assert_int_equal(lim.max_elements, HAMOK_CODEC_DEFAULT_MAX_ELEMENTS);
    assert_int_equal(lim.max_depth, HAMOK_CODEC_DEFAULT_MAX_DEPTH);
    for (int i = 0; i <= HAMOK_REJECT_COUNT_; i++) {
        const char *s = hamok__codec_reject_str((hamok_codec_reject)i);
        assert_non_null(s);
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(s, hamok__codec_reject_str((hamok_codec_reject)j));
        }
    }
    assert_string_equal(hamok__codec_reject_str(HAMOK_REJECT_TOO_BIG), "too_big");
    assert_int_equal(hamok__codec_decode((const uint8_t *)"\x90", 1, NULL, NULL, NULL, NULL),
                     HAMOK_ERR_INVALID);
}

static int setup(void **state)
{
    (void)state;
    init_samples();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_types), cmocka_unit_test(test_broadcast_vs_unicast),
        cmocka_unit_test(test_encode_appends),      cmocka_unit_test(test_golden_vectors),
        cmocka_unit_test(test_overhead_bounds),     cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_reject_basic),        cmocka_unit_test(test_reject_truncated),
        cmocka_unit_test(test_reject_limits),       cmocka_unit_test(test_reject_envelope),
        cmocka_unit_test(test_reject_short_bodies), cmocka_unit_test(test_extra_fields_accepted),
        cmocka_unit_test(test_reject_field_types),  cmocka_unit_test(test_reject_strings),
        cmocka_unit_test(test_alloc_failure_sweep), cmocka_unit_test(test_misc),
    };
    return cmocka_run_group_tests_name("codec", tests, setup, NULL);
}
