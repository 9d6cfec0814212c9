/* Wire codec: hamok_msg <-> MessagePack bytes. Format: docs/PROTOCOL.md.
 *
 * Encoding uses msgpack-c's packer writing into a hamok_buf.
 *
 * Decoding never hands untrusted bytes to msgpack-c's unpacker (it trusts
 * declared counts: `99 dd dd dd dd 8a` makes it allocate 128 GiB). Instead a
 * small bounded reader walks the frame: every declared count and length is
 * checked against the bytes that remain (each element needs at least one
 * byte) and against the limits before anything is allocated, nesting depth is
 * bounded, and the total allocated per frame is kept under 4x the frame size.
 * Decoding is a single pass with exactly one allocation per output object
 * (entry array, member array, each data/string); no zones, no copies of the
 * frame. */
#include "codec/codec.h"

#include <msgpack.h>
#include <string.h>

#include "util/alloc.h"

/* Longest endpoint string accepted or produced (bytes). */
#define CODEC_ENDPOINT_MAX 1024u
/* The reader's own ceiling on nesting (its skip stack lives on the C stack):
 * lim->max_depth above this is treated as this. */
#define CODEC_HARD_MAX_DEPTH 64u
/* Total allocation allowed per decoded frame, as a multiple of its size. */
#define CODEC_ALLOC_FACTOR 4u

/* Smallest encoding of an entry as this encoder writes it: fixarray, term as a
 * fixed-width uint64 (9 bytes, see enc_entry), type, nil client, seq, empty
 * bin8. The fixed-width term keeps every entry at >= 15 bytes so that the
 * decoder's allocation (sizeof(hamok_entry) per entry) stays under 4x the
 * frame for every frame this encoder produces. */
#define CODEC_ENTRY_MIN_ENCODED 15u
_Static_assert(sizeof(hamok_entry) <= CODEC_ALLOC_FACTOR * CODEC_ENTRY_MIN_ENCODED,
               "an encoded entry must pay for its decoded struct");
/* fixarray + bin8 id (18) + role + empty fixstr; decode allocates the struct
 * and endpoint + NUL. */
_Static_assert(sizeof(hamok_member) + 1u <= CODEC_ALLOC_FACTOR * 21u,
               "an encoded member must pay for its decoded struct");

const char *hamok__codec_reject_str(hamok_codec_reject why)
{
    switch (why) {
    case HAMOK_REJECT_NONE: return "none";
    case HAMOK_REJECT_MALFORMED: return "malformed";
    case HAMOK_REJECT_TOO_BIG: return "too_big";
    case HAMOK_REJECT_VERSION: return "version";
    case HAMOK_REJECT_CLUSTER: return "cluster";
    case HAMOK_REJECT_TYPE: return "type";
    default: return "unknown";
    }
}

void hamok__codec_limits_default(hamok_codec_limits *lim)
{
    lim->max_frame = HAMOK_CODEC_DEFAULT_MAX_FRAME;
    lim->max_elements = HAMOK_CODEC_DEFAULT_MAX_ELEMENTS;
    lim->max_depth = HAMOK_CODEC_DEFAULT_MAX_DEPTH;
}

/* ------------------------------------------------------------------------- */
/* Shared helpers */

static bool msg_type_known(uint64_t t)
{
    return t <= UINT8_MAX && hamok__msg_type_known((uint8_t)t);
}

static bool entry_type_known(uint64_t t)
{
    return t >= 1 && t <= HAMOK_ENTRY_TYPE_MAX_;
}

static bool member_role_known(uint64_t r)
{
    return r == HAMOK_MEMBER_VOTER || r == HAMOK_MEMBER_LEARNER;
}

/* Well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
 * and no U+0000 (strings become NUL-terminated C strings). */
static bool utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        if (c == 0x00) {
            return false;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf; /* range of the first continuation byte */
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            if (c == 0xe0) {
                lo = 0xa0;
            } else if (c == 0xed) {
                hi = 0x9f;
            }
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            if (c == 0xf0) {
                lo = 0x90;
            } else if (c == 0xf4) {
                hi = 0x8f;
            }
        } else {
            return false;
        }
        if (n - i - 1 < need) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += need + 1;
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* Encoder */

typedef struct enc {
    hamok_buf *out;
    hamok_status err;
} enc;

static int enc_write(void *data, const char *buf, size_t len)
{
    enc *e = data;
    if (e->err != HAMOK_OK) {
        return -1;
    }
    hamok_status st = hamok__buf_append(e->out, buf, len);
    if (st != HAMOK_OK) {
        e->err = st;
        return -1;
    }
    return 0;
}

static void enc_id(msgpack_packer *pk, const hamok_id *id)
{
    msgpack_pack_bin(pk, HAMOK_ID_LEN);
    msgpack_pack_bin_body(pk, id->b, HAMOK_ID_LEN);
}

static void enc_opt_id(msgpack_packer *pk, bool has, const hamok_id *id)
{
    if (has) {
        enc_id(pk, id);
    } else {
        msgpack_pack_nil(pk);
    }
}

static void enc_bool(msgpack_packer *pk, bool v)
{
    if (v) {
        msgpack_pack_true(pk);
    } else {
        msgpack_pack_false(pk);
    }
}

static void enc_bin(msgpack_packer *pk, const uint8_t *data, size_t len)
{
    msgpack_pack_bin(pk, len);
    if (len > 0) {
        msgpack_pack_bin_body(pk, data, len);
    }
}

static void enc_str(msgpack_packer *pk, const char *s)
{
    size_t len = s != NULL ? strlen(s) : 0;
    msgpack_pack_str(pk, len);
    if (len > 0) {
        msgpack_pack_str_body(pk, s, len);
    }
}

static void enc_entry(msgpack_packer *pk, const hamok_entry *en)
{
    msgpack_pack_array(pk, 5);
    /* Fixed width on purpose: see CODEC_ENTRY_MIN_ENCODED. */
    msgpack_pack_fix_uint64(pk, en->term);
    msgpack_pack_uint8(pk, en->type);
    enc_opt_id(pk, !hamok__id_is_nil(&en->client), &en->client);
    msgpack_pack_uint64(pk, en->seq);
    enc_bin(pk, en->data, en->len);
}

static void enc_members(msgpack_packer *pk, const hamok_member *ms, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 3);
        enc_id(pk, &ms[i].id);
        msgpack_pack_uint8(pk, ms[i].role);
        enc_str(pk, ms[i].endpoint);
    }
}

static bool endpoint_ok(const char *s)
{
    if (s == NULL) {
        return true; /* encoded as "" */
    }
    size_t n = strlen(s);
    return n <= CODEC_ENDPOINT_MAX && utf8_valid((const uint8_t *)s, n);
}

static bool entry_ok(const hamok_entry *en)
{
    return entry_type_known(en->type) && (en->len == 0 || en->data != NULL);
}

static bool members_ok(const hamok_member *ms, size_t n)
{
    if (n > 0 && ms == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!member_role_known(ms[i].role) || !endpoint_ok(ms[i].endpoint)) {
            return false;
        }
    }
    return true;
}

/* msgpack str/bin lengths are 32-bit. */
static bool over_u32(size_t n)
{
    return (uint64_t)n > UINT32_MAX;
}

/* Check what the decoder would refuse, before writing anything:
 * HAMOK_ERR_INVALID for values outside the format, HAMOK_ERR_TOO_BIG for
 * element counts over the limit or payloads that cannot fit the frame. */
static hamok_status enc_check(const hamok_msg *m, const hamok_codec_limits *lim)
{
    size_t n = 0;     /* elements of the longest array */
    size_t bytes = 0; /* payload bytes (a lower bound of the frame size) */
    switch (m->type) {
    case HAMOK_MSG_HELLO:
        if (!endpoint_ok(m->u.hello.endpoint)) {
            return HAMOK_ERR_INVALID;
        }
        break;
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE:
        if (!endpoint_ok(m->u.join.endpoint)) {
            return HAMOK_ERR_INVALID;
        }
        break;
    case HAMOK_MSG_ENDPOINT_STATES:
        if (!members_ok(m->u.endpoint_states.members, m->u.endpoint_states.n_members)) {
            return HAMOK_ERR_INVALID;
        }
        n = m->u.endpoint_states.n_members;
        break;
    case HAMOK_MSG_APPEND_ENTRIES: {
        const hamok_msg_append *a = &m->u.append;
        if (a->n_entries > 0 && a->entries == NULL) {
            return HAMOK_ERR_INVALID;
        }
        for (size_t i = 0; i < a->n_entries; i++) {
            if (!entry_ok(&a->entries[i])) {
                return HAMOK_ERR_INVALID;
            }
            if (over_u32(a->entries[i].len)) {
                return HAMOK_ERR_TOO_BIG;
            }
            /* Saturating: only compared with max_frame. */
            bytes = a->entries[i].len > SIZE_MAX - bytes ? SIZE_MAX : bytes + a->entries[i].len;
        }
        n = a->n_entries;
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        const hamok_msg_snapshot *s = &m->u.snapshot;
        if (!members_ok(s->members, s->n_members) || (s->len > 0 && s->data == NULL)) {
            return HAMOK_ERR_INVALID;
        }
        n = s->n_members;
        bytes = s->len;
        break;
    }
    case HAMOK_MSG_SUBMIT_REQUEST:
        if (!entry_ok(&m->u.submit.entry)) {
            return HAMOK_ERR_INVALID;
        }
        bytes = m->u.submit.entry.len;
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE:
        if (m->u.submit_response.result_len > 0 && m->u.submit_response.result == NULL) {
            return HAMOK_ERR_INVALID;
        }
        bytes = m->u.submit_response.result_len;
        break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION: {
        const hamok_msg_emit *e = &m->u.emit;
        if ((e->name_len > 0 && e->name == NULL) || (e->event_len > 0 && e->event == NULL) ||
            (e->payload_len > 0 && e->payload == NULL)) {
            return HAMOK_ERR_INVALID;
        }
        bytes = e->name_len + e->event_len + e->payload_len;
        break;
    }
    default:
        if (!msg_type_known(m->type)) {
            return HAMOK_ERR_INVALID;
        }
        break;
    }
    if (n > lim->max_elements || bytes > lim->max_frame || over_u32(bytes)) {
        return HAMOK_ERR_TOO_BIG;
    }
    /* Deepest nesting: envelope, body, array of entries/members, one of them. */
    bool nested = m->type == HAMOK_MSG_APPEND_ENTRIES || m->type == HAMOK_MSG_INSTALL_SNAPSHOT ||
                  m->type == HAMOK_MSG_ENDPOINT_STATES || m->type == HAMOK_MSG_SUBMIT_REQUEST;
    uint32_t depth = m->type == HAMOK_MSG_SUBMIT_REQUEST ? 3u : nested ? (n > 0 ? 4u : 3u) : 2u;
    if (depth > lim->max_depth) {
        return HAMOK_ERR_TOO_BIG;
    }
    return HAMOK_OK;
}

static void enc_body(msgpack_packer *pk, const hamok_msg *m)
{
    switch (m->type) {
    case HAMOK_MSG_HELLO:
        msgpack_pack_array(pk, 2);
        enc_str(pk, m->u.hello.endpoint);
        enc_opt_id(pk, m->u.hello.has_leader, &m->u.hello.leader);
        break;
    case HAMOK_MSG_ENDPOINT_STATES: {
        const hamok_msg_endpoint_states *s = &m->u.endpoint_states;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, s->term);
        enc_opt_id(pk, s->has_leader, &s->leader);
        msgpack_pack_uint64(pk, s->commit_index);
        enc_members(pk, s->members, s->n_members);
        break;
    }
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE:
        msgpack_pack_array(pk, 1);
        enc_str(pk, m->u.join.endpoint);
        break;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST: {
        const hamok_msg_vote *v = &m->u.vote;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, v->term);
        msgpack_pack_uint64(pk, v->last_log_index);
        msgpack_pack_uint64(pk, v->last_log_term);
        enc_bool(pk, v->transfer);
        break;
    }
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint64(pk, m->u.vote_response.term);
        enc_bool(pk, m->u.vote_response.granted);
        break;
    case HAMOK_MSG_TIMEOUT_NOW:
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, m->u.timeout_now.term);
        break;
    case HAMOK_MSG_APPEND_ENTRIES: {
        const hamok_msg_append *a = &m->u.append;
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint64(pk, a->term);
        msgpack_pack_uint64(pk, a->prev_log_index);
        msgpack_pack_uint64(pk, a->prev_log_term);
        msgpack_pack_uint64(pk, a->leader_commit);
        msgpack_pack_uint64(pk, a->ctx);
        msgpack_pack_array(pk, a->n_entries);
        for (size_t i = 0; i < a->n_entries; i++) {
            enc_entry(pk, &a->entries[i]);
        }
        break;
    }
    case HAMOK_MSG_APPEND_RESPONSE: {
        const hamok_msg_append_response *r = &m->u.append_response;
        msgpack_pack_array(pk, 8);
        msgpack_pack_uint64(pk, r->term);
        enc_bool(pk, r->success);
        msgpack_pack_uint64(pk, r->match_index);
        msgpack_pack_uint64(pk, r->last_log_index);
        msgpack_pack_uint64(pk, r->reject_index);
        msgpack_pack_uint64(pk, r->conflict_index);
        msgpack_pack_uint64(pk, r->conflict_term);
        msgpack_pack_uint64(pk, r->ctx);
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        const hamok_msg_snapshot *s = &m->u.snapshot;
        msgpack_pack_array(pk, 7);
        msgpack_pack_uint64(pk, s->term);
        msgpack_pack_uint64(pk, s->last_index);
        msgpack_pack_uint64(pk, s->last_term);
        msgpack_pack_uint64(pk, s->offset);
        enc_bool(pk, s->done);
        enc_members(pk, s->members, s->n_members);
        enc_bin(pk, s->data, s->len);
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: {
        const hamok_msg_snapshot_response *r = &m->u.snapshot_response;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, r->term);
        msgpack_pack_uint64(pk, r->last_index);
        msgpack_pack_uint64(pk, r->next_offset);
        enc_bool(pk, r->done);
        break;
    }
    case HAMOK_MSG_SUBMIT_REQUEST:
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint64(pk, m->u.submit.request_id);
        enc_entry(pk, &m->u.submit.entry);
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE: {
        const hamok_msg_submit_response *r = &m->u.submit_response;
        msgpack_pack_array(pk, 6);
        msgpack_pack_uint64(pk, r->request_id);
        msgpack_pack_uint32(pk, r->status);
        enc_opt_id(pk, r->has_leader, &r->leader);
        msgpack_pack_uint64(pk, r->index);
        msgpack_pack_uint64(pk, r->term);
        enc_bin(pk, r->result, r->result_len);
        break;
    }
    case HAMOK_MSG_READ_INDEX_REQUEST:
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, m->u.read_index.request_id);
        break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION:
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, m->u.emit.request_id);
        enc_bin(pk, m->u.emit.name, m->u.emit.name_len);
        enc_bin(pk, m->u.emit.event, m->u.emit.event_len);
        enc_bin(pk, m->u.emit.payload, m->u.emit.payload_len);
        break;
    case HAMOK_MSG_EMIT_RESPONSE:
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint64(pk, m->u.emit_response.request_id);
        break;
    case HAMOK_MSG_READ_INDEX_RESPONSE: {
        const hamok_msg_read_index_response *r = &m->u.read_index_response;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint64(pk, r->request_id);
        msgpack_pack_uint32(pk, r->status);
        enc_opt_id(pk, r->has_leader, &r->leader);
        msgpack_pack_uint64(pk, r->read_index);
        break;
    }
    default: break; /* rejected by enc_check */
    }
}

hamok_status hamok__codec_encode(const hamok_msg *m, const char *cluster,
                                 const hamok_codec_limits *lim, hamok_buf *out)
{
    hamok_codec_limits dflt;
    if (lim == NULL) {
        hamok__codec_limits_default(&dflt);
        lim = &dflt;
    }
    if (m == NULL || cluster == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    size_t cluster_len = strlen(cluster);
    if (cluster_len > HAMOK_CLUSTER_NAME_MAX ||
        !utf8_valid((const uint8_t *)cluster, cluster_len)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = enc_check(m, lim);
    if (st != HAMOK_OK) {
        return st;
    }

    size_t start = out->len;
    enc e = {out, HAMOK_OK};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e, enc_write);

    msgpack_pack_array(&pk, 6);
    msgpack_pack_uint32(&pk, HAMOK_PROTOCOL_VERSION);
    msgpack_pack_str(&pk, cluster_len);
    if (cluster_len > 0) {
        msgpack_pack_str_body(&pk, cluster, cluster_len);
    }
    msgpack_pack_uint8(&pk, m->type);
    enc_id(&pk, &m->src);
    enc_opt_id(&pk, !m->broadcast, &m->dst);
    enc_body(&pk, m);

    if (e.err != HAMOK_OK) {
        out->len = start;
        return e.err;
    }
    if (out->len - start > lim->max_frame) {
        out->len = start;
        return HAMOK_ERR_TOO_BIG;
    }
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------- */
/* Bounded reader */

typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
    uint32_t depth;
    uint32_t max_depth;
    uint32_t max_elements;
    size_t alloc;     /* bytes allocated so far for this frame */
    size_t alloc_max; /* CODEC_ALLOC_FACTOR x frame size */
    hamok_codec_reject why;
} rd;

static bool fail(rd *r, hamok_codec_reject why)
{
    if (r->why == HAMOK_REJECT_NONE) {
        r->why = why;
    }
    return false;
}

static inline size_t left(const rd *r)
{
    return (size_t)(r->end - r->p);
}

static inline uint64_t be(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Read a big-endian length/value of `n` bytes after the tag byte. */
static bool rd_be(rd *r, unsigned n, uint64_t *v)
{
    if (left(r) < n) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    *v = be(r->p, n);
    r->p += n;
    return true;
}

/* Any msgpack integer that is >= 0. */
static bool rd_uint(rd *r, uint64_t *v)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    uint8_t t = *r->p++;
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    /* uint8..64 are 0xcc..0xcf, int8..64 are 0xd0..0xd3: 1, 2, 4, 8 bytes. */
    bool sign = t >= 0xd0 && t <= 0xd3;
    if (!sign && (t < 0xcc || t > 0xcf)) {
        return fail(r, HAMOK_REJECT_MALFORMED); /* negative fixint, float, anything else */
    }
    unsigned n = 1u << (t - (sign ? 0xd0u : 0xccu));
    if (left(r) < n) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    if (sign && (r->p[0] & 0x80) != 0) {
        return fail(r, HAMOK_REJECT_MALFORMED); /* negative */
    }
    *v = be(r->p, n);
    r->p += n;
    return true;
}

static bool rd_u32(rd *r, uint32_t *v)
{
    uint64_t x;
    if (!rd_uint(r, &x)) {
        return false;
    }
    if (x > UINT32_MAX) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    *v = (uint32_t)x;
    return true;
}

static bool rd_bool(rd *r, bool *v)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    uint8_t t = *r->p;
    if (t != 0xc2 && t != 0xc3) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    r->p++;
    *v = t == 0xc3;
    return true;
}

/* True (and consumed) when the next value is nil. */
static bool rd_nil(rd *r)
{
    if (left(r) >= 1 && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

/* A bin: points into the frame, nothing allocated. */
static bool rd_bin(rd *r, const uint8_t **data, size_t *len)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    uint8_t t = *r->p++;
    uint64_t n;
    if (t < 0xc4 || t > 0xc6) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    if (!rd_be(r, 1u << (t - 0xc4u), &n)) { /* bin8/16/32: 1, 2, 4 length bytes */
        return false;
    }
    if (n > left(r)) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

/* A str (checked UTF-8 without NUL, at most `max` bytes): points into the
 * frame. */
static bool rd_str(rd *r, size_t max, const uint8_t **data, size_t *len)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    uint8_t t = *r->p++;
    uint64_t n;
    if (t >= 0xa0 && t <= 0xbf) {
        n = t & 0x1fu;
    } else if (t == 0xd9) {
        if (!rd_be(r, 1, &n)) {
            return false;
        }
    } else if (t == 0xda) {
        if (!rd_be(r, 2, &n)) {
            return false;
        }
    } else if (t == 0xdb) {
        if (!rd_be(r, 4, &n)) {
            return false;
        }
    } else {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    if (n > left(r) || n > max || !utf8_valid(r->p, (size_t)n)) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    *data = r->p;
    *len = (size_t)n;
    r->p += n;
    return true;
}

static bool rd_id(rd *r, hamok_id *id)
{
    /* Fast path: bin8 of exactly 16 bytes is the only valid form. */
    if (left(r) >= 2 + HAMOK_ID_LEN && r->p[0] == 0xc4 && r->p[1] == HAMOK_ID_LEN) {
        memcpy(id->b, r->p + 2, HAMOK_ID_LEN);
        r->p += 2 + HAMOK_ID_LEN;
        return true;
    }
    const uint8_t *d;
    size_t n;
    if (!rd_bin(r, &d, &n)) {
        return false;
    }
    if (n != HAMOK_ID_LEN) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    memcpy(id->b, d, HAMOK_ID_LEN);
    return true;
}

/* bin16 or nil. */
static bool rd_opt_id(rd *r, bool *has, hamok_id *id)
{
    if (rd_nil(r)) {
        *has = false;
        memset(id, 0, sizeof *id);
        return true;
    }
    *has = true;
    return rd_id(r, id);
}

/* Check a declared container of `n` elements, each at least `min_bytes` long
 * in the remaining input, against the limits. */
static bool check_count(rd *r, uint64_t n, size_t min_bytes)
{
    if (n > left(r) / min_bytes) {
        return fail(r, HAMOK_REJECT_MALFORMED); /* cannot be there: truncated or lying */
    }
    if (n > r->max_elements) {
        return fail(r, HAMOK_REJECT_TOO_BIG);
    }
    return true;
}

/* Array or map header (no limit checks). `*elems` = values that follow. */
static bool rd_container_hdr(rd *r, uint8_t t, uint64_t *count, uint64_t *elems, bool *is_map)
{
    if (t >= 0x90 && t <= 0x9f) {
        *count = t & 0x0fu;
        *is_map = false;
    } else if (t >= 0x80 && t <= 0x8f) {
        *count = t & 0x0fu;
        *is_map = true;
    } else if (t == 0xdc || t == 0xdd) {
        if (!rd_be(r, t == 0xdc ? 2u : 4u, count)) {
            return false;
        }
        *is_map = false;
    } else if (t == 0xde || t == 0xdf) {
        if (!rd_be(r, t == 0xde ? 2u : 4u, count)) {
            return false;
        }
        *is_map = true;
    } else {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    *elems = *is_map ? *count * 2u : *count;
    return true;
}

/* Enter an array of at least `min` elements (more are allowed and skipped by
 * arr_end). Each element occupies at least `min_bytes` bytes. */
static bool arr_begin(rd *r, uint32_t min, size_t min_bytes, uint32_t *n)
{
    if (left(r) < 1) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    uint8_t t = *r->p++;
    uint64_t count, elems;
    bool is_map;
    if (!rd_container_hdr(r, t, &count, &elems, &is_map)) {
        return false;
    }
    if (is_map) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    if (!check_count(r, count, min_bytes)) {
        return false;
    }
    if (count < min) {
        return fail(r, HAMOK_REJECT_MALFORMED);
    }
    if (++r->depth > r->max_depth) {
        return fail(r, HAMOK_REJECT_TOO_BIG);
    }
    *n = (uint32_t)count;
    return true;
}

/* Skip `n` values of any type (arrays and maps nested to the depth limit;
 * ext types and the never-used 0xc1 rejected). Iterative: the stack of
 * pending counts is bounded by CODEC_HARD_MAX_DEPTH. */
static bool rd_skip(rd *r, uint64_t n)
{
    uint64_t pending[CODEC_HARD_MAX_DEPTH + 1];
    uint32_t top = 0;
    uint32_t base_depth = r->depth;
    pending[0] = n;
    for (;;) {
        while (pending[top] == 0) {
            if (top == 0) {
                r->depth = base_depth;
                return true;
            }
            top--;
        }
        pending[top]--;
        if (left(r) < 1) {
            return fail(r, HAMOK_REJECT_MALFORMED);
        }
        uint8_t t = *r->p++;
        uint64_t len = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
            continue; /* fixint, nil, bool */
        }
        if ((t >= 0x80 && t <= 0x9f) || (t >= 0xdc && t <= 0xdf)) {
            uint64_t count, elems;
            bool is_map;
            if (!rd_container_hdr(r, t, &count, &elems, &is_map)) {
                return false;
            }
            /* For a map the limit applies to keys + values. */
            if (!check_count(r, elems, 1)) {
                return false;
            }
            if (base_depth + top + 1 > r->max_depth) {
                return fail(r, HAMOK_REJECT_TOO_BIG);
            }
            pending[++top] = elems;
            continue;
        }
        if (t >= 0xa0 && t <= 0xbf) {
            const uint8_t *d;
            size_t l;
            r->p--;
            if (!rd_str(r, SIZE_MAX, &d, &l)) {
                return false;
            }
            continue;
        }
        switch (t) {
        case 0xcc:
        case 0xd0: len = 1; break;
        case 0xcd:
        case 0xd1: len = 2; break;
        case 0xca:
        case 0xce:
        case 0xd2: len = 4; break;
        case 0xcb:
        case 0xcf:
        case 0xd3: len = 8; break;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
            const uint8_t *d;
            size_t l;
            r->p--;
            if (!rd_bin(r, &d, &l)) {
                return false;
            }
            continue;
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
            const uint8_t *d;
            size_t l;
            r->p--;
            if (!rd_str(r, SIZE_MAX, &d, &l)) {
                return false;
            }
            continue;
        }
        default: return fail(r, HAMOK_REJECT_MALFORMED); /* ext, 0xc1 */
        }
        if (len > left(r)) {
            return fail(r, HAMOK_REJECT_MALFORMED);
        }
        r->p += len;
    }
}

/* Leave an array of `n` elements of which `used` were read: skip the rest. */
static bool arr_end(rd *r, uint32_t n, uint32_t used)
{
    if (n > used && !rd_skip(r, n - used)) {
        return false;
    }
    r->depth--;
    return true;
}

static void *rd_alloc(rd *r, size_t size, hamok_status *st)
{
    if (size > r->alloc_max - r->alloc) {
        fail(r, HAMOK_REJECT_TOO_BIG);
        *st = HAMOK_ERR_TOO_BIG;
        return NULL;
    }
    void *p = hamok__malloc(size);
    if (p == NULL) {
        *st = HAMOK_ERR_NOMEM;
        return NULL;
    }
    r->alloc += size;
    return p;
}

/* A bin copied into a fresh allocation (NULL when empty). */
static hamok_status rd_bin_dup(rd *r, uint8_t **data, size_t *len)
{
    const uint8_t *d;
    size_t n;
    if (!rd_bin(r, &d, &n)) {
        return HAMOK_ERR_CODEC;
    }
    *data = NULL;
    *len = 0;
    if (n == 0) {
        return HAMOK_OK;
    }
    hamok_status st = HAMOK_OK;
    uint8_t *p = rd_alloc(r, n, &st);
    if (p == NULL) {
        return st;
    }
    memcpy(p, d, n);
    *data = p;
    *len = n;
    return HAMOK_OK;
}

/* An endpoint string copied into a fresh NUL-terminated allocation. */
static hamok_status rd_endpoint(rd *r, char **out)
{
    const uint8_t *d;
    size_t n;
    if (!rd_str(r, CODEC_ENDPOINT_MAX, &d, &n)) {
        return HAMOK_ERR_CODEC;
    }
    hamok_status st = HAMOK_OK;
    char *p = rd_alloc(r, n + 1, &st);
    if (p == NULL) {
        return st;
    }
    memcpy(p, d, n);
    p[n] = '\0';
    *out = p;
    return HAMOK_OK;
}

#define TRY_RD(expr)                \
    do {                            \
        if (!(expr)) {              \
            return HAMOK_ERR_CODEC; \
        }                           \
    } while (0)

#define TRY_ST(expr)                   \
    do {                               \
        hamok_status try_st_ = (expr); \
        if (try_st_ != HAMOK_OK) {     \
            return try_st_;            \
        }                              \
    } while (0)

static hamok_status rd_entry(rd *r, hamok_entry *en)
{
    uint32_t n;
    uint64_t type;
    TRY_RD(arr_begin(r, 5, 1, &n));
    TRY_RD(rd_uint(r, &en->term));
    TRY_RD(rd_uint(r, &type));
    if (!entry_type_known(type)) {
        fail(r, HAMOK_REJECT_TYPE);
        return HAMOK_ERR_CODEC;
    }
    en->type = (uint8_t)type;
    bool has_client;
    TRY_RD(rd_opt_id(r, &has_client, &en->client));
    TRY_RD(rd_uint(r, &en->seq));
    TRY_ST(rd_bin_dup(r, &en->data, &en->len));
    TRY_RD(arr_end(r, n, 5));
    return HAMOK_OK;
}

/* An array of entries; `*out`/`*count` always describe what was allocated
 * and filled, so hamok__msg_clear() can release a partial result. */
static hamok_status rd_entries(rd *r, hamok_entry **out, size_t *count)
{
    uint32_t n;
    /* Smallest entry: fixarray, term, type, nil, seq, empty bin8 = 7 bytes. */
    TRY_RD(arr_begin(r, 0, 7, &n));
    if (n > 0) {
        hamok_status st = HAMOK_OK;
        hamok_entry *es = rd_alloc(r, (size_t)n * sizeof *es, &st);
        if (es == NULL) {
            return st;
        }
        *out = es;
        for (uint32_t i = 0; i < n; i++) {
            hamok_entry *en = &es[i];
            memset(en, 0, sizeof *en);
            *count = i + 1u;
            TRY_ST(rd_entry(r, en));
        }
    }
    TRY_RD(arr_end(r, n, n));
    return HAMOK_OK;
}

static hamok_status rd_members(rd *r, hamok_member **out, size_t *count)
{
    uint32_t n;
    /* Smallest member: fixarray, bin8 id (18 bytes), role, empty fixstr. */
    TRY_RD(arr_begin(r, 0, 21, &n));
    if (n > 0) {
        hamok_status st = HAMOK_OK;
        hamok_member *ms = rd_alloc(r, (size_t)n * sizeof *ms, &st);
        if (ms == NULL) {
            return st;
        }
        *out = ms;
        for (uint32_t i = 0; i < n; i++) {
            hamok_member *mb = &ms[i];
            memset(mb, 0, sizeof *mb);
            uint32_t k;
            uint64_t role;
            TRY_RD(arr_begin(r, 3, 1, &k));
            TRY_RD(rd_id(r, &mb->id));
            TRY_RD(rd_uint(r, &role));
            if (!member_role_known(role)) {
                fail(r, HAMOK_REJECT_MALFORMED);
                return HAMOK_ERR_CODEC;
            }
            mb->role = (uint8_t)role;
            TRY_ST(rd_endpoint(r, &mb->endpoint));
            *count = i + 1u;
            TRY_RD(arr_end(r, k, 3));
        }
    }
    TRY_RD(arr_end(r, n, n));
    return HAMOK_OK;
}

/* Fields each body needs; more are skipped. */
static uint32_t body_min_fields(uint8_t type)
{
    switch (type) {
    case HAMOK_MSG_HELLO: return 2;
    case HAMOK_MSG_ENDPOINT_STATES: return 4;
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE: return 1;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST: return 4;
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE: return 2;
    case HAMOK_MSG_TIMEOUT_NOW: return 1;
    case HAMOK_MSG_APPEND_ENTRIES: return 6;
    case HAMOK_MSG_APPEND_RESPONSE: return 8;
    case HAMOK_MSG_INSTALL_SNAPSHOT: return 7;
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: return 4;
    case HAMOK_MSG_SUBMIT_REQUEST: return 2;
    case HAMOK_MSG_SUBMIT_RESPONSE: return 6;
    case HAMOK_MSG_READ_INDEX_REQUEST: return 1;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION: return 4;
    case HAMOK_MSG_EMIT_RESPONSE: return 1;
    case HAMOK_MSG_READ_INDEX_RESPONSE: return 4;
    default: return UINT32_MAX;
    }
}

static hamok_status rd_body(rd *r, hamok_msg *m)
{
    uint32_t min = body_min_fields(m->type);
    uint32_t n;
    TRY_RD(arr_begin(r, min, 1, &n));
    switch (m->type) {
    case HAMOK_MSG_HELLO:
        TRY_ST(rd_endpoint(r, &m->u.hello.endpoint));
        TRY_RD(rd_opt_id(r, &m->u.hello.has_leader, &m->u.hello.leader));
        break;
    case HAMOK_MSG_ENDPOINT_STATES: {
        hamok_msg_endpoint_states *s = &m->u.endpoint_states;
        TRY_RD(rd_uint(r, &s->term));
        TRY_RD(rd_opt_id(r, &s->has_leader, &s->leader));
        TRY_RD(rd_uint(r, &s->commit_index));
        TRY_ST(rd_members(r, &s->members, &s->n_members));
        break;
    }
    case HAMOK_MSG_JOIN:
    case HAMOK_MSG_LEAVE: TRY_ST(rd_endpoint(r, &m->u.join.endpoint)); break;
    case HAMOK_MSG_PREVOTE_REQUEST:
    case HAMOK_MSG_VOTE_REQUEST: {
        hamok_msg_vote *v = &m->u.vote;
        TRY_RD(rd_uint(r, &v->term));
        TRY_RD(rd_uint(r, &v->last_log_index));
        TRY_RD(rd_uint(r, &v->last_log_term));
        TRY_RD(rd_bool(r, &v->transfer));
        break;
    }
    case HAMOK_MSG_PREVOTE_RESPONSE:
    case HAMOK_MSG_VOTE_RESPONSE:
        TRY_RD(rd_uint(r, &m->u.vote_response.term));
        TRY_RD(rd_bool(r, &m->u.vote_response.granted));
        break;
    case HAMOK_MSG_TIMEOUT_NOW: TRY_RD(rd_uint(r, &m->u.timeout_now.term)); break;
    case HAMOK_MSG_APPEND_ENTRIES: {
        hamok_msg_append *a = &m->u.append;
        TRY_RD(rd_uint(r, &a->term));
        TRY_RD(rd_uint(r, &a->prev_log_index));
        TRY_RD(rd_uint(r, &a->prev_log_term));
        TRY_RD(rd_uint(r, &a->leader_commit));
        TRY_RD(rd_uint(r, &a->ctx));
        TRY_ST(rd_entries(r, &a->entries, &a->n_entries));
        break;
    }
    case HAMOK_MSG_APPEND_RESPONSE: {
        hamok_msg_append_response *a = &m->u.append_response;
        TRY_RD(rd_uint(r, &a->term));
        TRY_RD(rd_bool(r, &a->success));
        TRY_RD(rd_uint(r, &a->match_index));
        TRY_RD(rd_uint(r, &a->last_log_index));
        TRY_RD(rd_uint(r, &a->reject_index));
        TRY_RD(rd_uint(r, &a->conflict_index));
        TRY_RD(rd_uint(r, &a->conflict_term));
        TRY_RD(rd_uint(r, &a->ctx));
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT: {
        hamok_msg_snapshot *s = &m->u.snapshot;
        TRY_RD(rd_uint(r, &s->term));
        TRY_RD(rd_uint(r, &s->last_index));
        TRY_RD(rd_uint(r, &s->last_term));
        TRY_RD(rd_uint(r, &s->offset));
        TRY_RD(rd_bool(r, &s->done));
        TRY_ST(rd_members(r, &s->members, &s->n_members));
        TRY_ST(rd_bin_dup(r, &s->data, &s->len));
        break;
    }
    case HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE: {
        hamok_msg_snapshot_response *s = &m->u.snapshot_response;
        TRY_RD(rd_uint(r, &s->term));
        TRY_RD(rd_uint(r, &s->last_index));
        TRY_RD(rd_uint(r, &s->next_offset));
        TRY_RD(rd_bool(r, &s->done));
        break;
    }
    case HAMOK_MSG_SUBMIT_REQUEST:
        TRY_RD(rd_uint(r, &m->u.submit.request_id));
        TRY_ST(rd_entry(r, &m->u.submit.entry));
        break;
    case HAMOK_MSG_SUBMIT_RESPONSE: {
        hamok_msg_submit_response *s = &m->u.submit_response;
        TRY_RD(rd_uint(r, &s->request_id));
        TRY_RD(rd_u32(r, &s->status));
        TRY_RD(rd_opt_id(r, &s->has_leader, &s->leader));
        TRY_RD(rd_uint(r, &s->index));
        TRY_RD(rd_uint(r, &s->term));
        TRY_ST(rd_bin_dup(r, &s->result, &s->result_len));
        break;
    }
    case HAMOK_MSG_READ_INDEX_REQUEST: TRY_RD(rd_uint(r, &m->u.read_index.request_id)); break;
    case HAMOK_MSG_EMIT_REQUEST:
    case HAMOK_MSG_EMIT_NOTIFICATION:
        TRY_RD(rd_uint(r, &m->u.emit.request_id));
        TRY_ST(rd_bin_dup(r, &m->u.emit.name, &m->u.emit.name_len));
        TRY_ST(rd_bin_dup(r, &m->u.emit.event, &m->u.emit.event_len));
        TRY_ST(rd_bin_dup(r, &m->u.emit.payload, &m->u.emit.payload_len));
        break;
    case HAMOK_MSG_EMIT_RESPONSE: TRY_RD(rd_uint(r, &m->u.emit_response.request_id)); break;
    case HAMOK_MSG_READ_INDEX_RESPONSE: {
        hamok_msg_read_index_response *s = &m->u.read_index_response;
        TRY_RD(rd_uint(r, &s->request_id));
        TRY_RD(rd_u32(r, &s->status));
        TRY_RD(rd_opt_id(r, &s->has_leader, &s->leader));
        TRY_RD(rd_uint(r, &s->read_index));
        break;
    }
    default: fail(r, HAMOK_REJECT_TYPE); return HAMOK_ERR_CODEC;
    }
    TRY_RD(arr_end(r, n, min));
    return HAMOK_OK;
}

static hamok_status rd_frame(rd *r, const char *cluster, hamok_msg *m)
{
    uint32_t n;
    uint64_t v;
    TRY_RD(arr_begin(r, 1, 1, &n));
    TRY_RD(rd_uint(r, &v));
    if (v != HAMOK_PROTOCOL_VERSION) {
        fail(r, HAMOK_REJECT_VERSION);
        return HAMOK_ERR_CODEC;
    }
    if (n != 6) {
        fail(r, HAMOK_REJECT_MALFORMED);
        return HAMOK_ERR_CODEC;
    }
    const uint8_t *name;
    size_t name_len;
    TRY_RD(rd_str(r, HAMOK_CLUSTER_NAME_MAX, &name, &name_len));
    if (cluster != NULL && (strlen(cluster) != name_len || memcmp(cluster, name, name_len) != 0)) {
        fail(r, HAMOK_REJECT_CLUSTER);
        return HAMOK_ERR_CODEC;
    }
    TRY_RD(rd_uint(r, &v));
    if (!msg_type_known(v)) {
        fail(r, HAMOK_REJECT_TYPE);
        return HAMOK_ERR_CODEC;
    }
    m->type = (uint8_t)v;
    TRY_RD(rd_id(r, &m->src));
    bool has_dst;
    TRY_RD(rd_opt_id(r, &has_dst, &m->dst));
    m->broadcast = !has_dst;
    TRY_ST(rd_body(r, m));
    TRY_RD(arr_end(r, n, 6));
    if (left(r) != 0) {
        fail(r, HAMOK_REJECT_MALFORMED); /* trailing bytes */
        return HAMOK_ERR_CODEC;
    }
    return HAMOK_OK;
}

hamok_status hamok__codec_decode(const uint8_t *data, size_t len, const char *cluster,
                                 const hamok_codec_limits *lim, hamok_msg *out,
                                 hamok_codec_reject *why)
{
    hamok_codec_limits dflt;
    if (lim == NULL) {
        hamok__codec_limits_default(&dflt);
        lim = &dflt;
    }
    hamok_codec_reject dummy;
    if (why == NULL) {
        why = &dummy;
    }
    *why = HAMOK_REJECT_NONE;
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    memset(out, 0, sizeof *out);
    if (len > lim->max_frame) {
        *why = HAMOK_REJECT_TOO_BIG;
        return HAMOK_ERR_TOO_BIG;
    }
    if (data == NULL || len == 0) {
        *why = HAMOK_REJECT_MALFORMED;
        return HAMOK_ERR_CODEC;
    }
    rd r = {
        .p = data,
        .end = data + len,
        .depth = 0,
        .max_depth = lim->max_depth < CODEC_HARD_MAX_DEPTH ? lim->max_depth : CODEC_HARD_MAX_DEPTH,
        .max_elements = lim->max_elements,
        .alloc = 0,
        .alloc_max = len <= SIZE_MAX / CODEC_ALLOC_FACTOR ? len * CODEC_ALLOC_FACTOR : SIZE_MAX,
        .why = HAMOK_REJECT_NONE,
    };
    hamok_status st = rd_frame(&r, cluster, out);
    if (st != HAMOK_OK) {
        hamok__msg_clear(out);
        if (st == HAMOK_ERR_NOMEM) {
            *why = HAMOK_REJECT_NONE;
            return st;
        }
        *why = r.why != HAMOK_REJECT_NONE ? r.why : HAMOK_REJECT_MALFORMED;
        return *why == HAMOK_REJECT_TOO_BIG ? HAMOK_ERR_TOO_BIG : HAMOK_ERR_CODEC;
    }
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------- */
/* Configurations */

hamok_status hamok__codec_encode_config(const hamok_member *members, size_t n, hamok_buf *out)
{
    if (out == NULL || !members_ok(members, n) || n > HAMOK_CODEC_DEFAULT_MAX_ELEMENTS) {
        return HAMOK_ERR_INVALID;
    }
    size_t start = out->len;
    enc e = {out, HAMOK_OK};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e, enc_write);
    enc_members(&pk, members, n);
    if (e.err != HAMOK_OK) {
        out->len = start;
    }
    return e.err;
}

hamok_status hamok__codec_decode_config(const uint8_t *data, size_t len, hamok_member **members,
                                        size_t *n)
{
    *members = NULL;
    *n = 0;
    if (data == NULL || len == 0) {
        return HAMOK_ERR_CODEC;
    }
    if (len > HAMOK_CODEC_DEFAULT_MAX_FRAME) {
        return HAMOK_ERR_TOO_BIG;
    }
    rd r = {
        .p = data,
        .end = data + len,
        .depth = 0,
        .max_depth = HAMOK_CODEC_DEFAULT_MAX_DEPTH,
        .max_elements = HAMOK_CODEC_DEFAULT_MAX_ELEMENTS,
        .alloc = 0,
        .alloc_max = len * CODEC_ALLOC_FACTOR,
        .why = HAMOK_REJECT_NONE,
    };
    hamok_status st = rd_members(&r, members, n);
    if (st == HAMOK_OK && left(&r) != 0) {
        st = HAMOK_ERR_CODEC; /* trailing bytes */
    }
    if (st != HAMOK_OK) {
        hamok__members_free(*members, *n);
        *members = NULL;
        *n = 0;
        if (st != HAMOK_ERR_NOMEM && r.why == HAMOK_REJECT_TOO_BIG) {
            st = HAMOK_ERR_TOO_BIG;
        } else if (st != HAMOK_ERR_NOMEM) {
            st = HAMOK_ERR_CODEC;
        }
    }
    return st;
}
