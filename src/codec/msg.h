/* The message model: every frame peers exchange, as C structs, independent of
 * the wire format (src/codec/codec.h turns these into bytes and back).
 *
 * Ownership: a hamok_msg produced by the decoder owns every pointer in it
 * (entry data, strings, member arrays) and is released with hamok__msg_clear().
 * A hamok_msg produced by the Raft core for sending borrows its pointers from
 * the core; those stay valid until the next call into the core and must not be
 * freed by the caller.
 *
 * Type numbers keep the original Hamok names where the concept is the same;
 * gaps are reserved (see docs/PROTOCOL.md). */
#ifndef HAMOK_CODEC_MSG_H
#define HAMOK_CODEC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/id.h"

#define HAMOK_PROTOCOL_VERSION 1

typedef enum hamok_msg_type {
    /* Grid notifications (discovery). */
    HAMOK_MSG_HELLO = 1,
    HAMOK_MSG_ENDPOINT_STATES = 2,
    /* 3: reserved (ONGOING_REQUESTS in the original). */
    HAMOK_MSG_JOIN = 4,
    HAMOK_MSG_LEAVE = 5, /* body as JOIN: "remove me from the configuration" */
    /* 6..9: reserved for grid. */
    /* Raft. */
    HAMOK_MSG_PREVOTE_REQUEST = 10,
    HAMOK_MSG_PREVOTE_RESPONSE = 11,
    HAMOK_MSG_VOTE_REQUEST = 12,
    HAMOK_MSG_VOTE_RESPONSE = 13,
    HAMOK_MSG_TIMEOUT_NOW = 14,
    /* 15: reserved. */
    HAMOK_MSG_APPEND_ENTRIES = 16,
    HAMOK_MSG_APPEND_RESPONSE = 17,
    HAMOK_MSG_INSTALL_SNAPSHOT = 18,
    HAMOK_MSG_INSTALL_SNAPSHOT_RESPONSE = 19,
    /* Requests to the leader. */
    HAMOK_MSG_SUBMIT_REQUEST = 20,
    HAMOK_MSG_SUBMIT_RESPONSE = 21,
    HAMOK_MSG_READ_INDEX_REQUEST = 22,
    HAMOK_MSG_READ_INDEX_RESPONSE = 23,
    /* 24..99: reserved for direct storage operations (numbers of the
     * original's storage messages, 24..62, keep their meaning). */
    /* Emitter publish (direct, not logged): UPDATE_ENTRIES_REQUEST /
     * _RESPONSE / _NOTIFICATION of the original. */
    HAMOK_MSG_EMIT_REQUEST = 56,
    HAMOK_MSG_EMIT_RESPONSE = 57,
    HAMOK_MSG_EMIT_NOTIFICATION = 58,
    HAMOK_MSG_TYPE_MAX_ = 58
} hamok_msg_type;

/* Log entry types. */
typedef enum hamok_entry_type {
    HAMOK_ENTRY_NOOP = 1,    /* appended by every new leader (Raft §8) */
    HAMOK_ENTRY_COMMAND = 2, /* an application/storage operation */
    HAMOK_ENTRY_CONFIG = 3,  /* membership change (data = encoded config) */
    /* 4..15: reserved (storage operations, sessions). */
    HAMOK_ENTRY_TYPE_MAX_ = 3
} hamok_entry_type;

typedef struct hamok_entry {
    uint64_t term;
    uint8_t type;    /* hamok_entry_type */
    hamok_id client; /* proposing peer (exactly-once sessions); nil if none */
    uint64_t seq;    /* client's sequence number; 0 if none */
    uint8_t *data;
    size_t len;
} hamok_entry;

/* Role of a configuration member. */
typedef enum hamok_member_role {
    HAMOK_MEMBER_VOTER = 1,
    HAMOK_MEMBER_LEARNER = 2,
} hamok_member_role;

typedef struct hamok_member {
    hamok_id id;
    uint8_t role;   /* hamok_member_role */
    char *endpoint; /* NUL-terminated; may be empty, never NULL after decode */
} hamok_member;

/* PREVOTE_REQUEST and VOTE_REQUEST. For a pre-vote, `term` is the term the
 * candidate would campaign in (its current term + 1); its own term is not
 * changed until the pre-vote succeeds (thesis §9.6). */
typedef struct hamok_msg_vote {
    uint64_t term;
    uint64_t last_log_index;
    uint64_t last_log_term;
    bool transfer; /* campaign started by TIMEOUT_NOW: bypasses leader stickiness */
} hamok_msg_vote;

/* PREVOTE_RESPONSE and VOTE_RESPONSE. */
typedef struct hamok_msg_vote_response {
    uint64_t term; /* for a pre-vote: the term of the request when granted,
                      otherwise the voter's current term */
    bool granted;
} hamok_msg_vote_response;

typedef struct hamok_msg_append {
    uint64_t term;
    uint64_t prev_log_index;
    uint64_t prev_log_term;
    uint64_t leader_commit;
    uint64_t ctx; /* opaque to followers, echoed in the response (read index
                     rounds); 0 = none */
    hamok_entry *entries;
    size_t n_entries;
} hamok_msg_append;

/* APPEND_RESPONSE.
 * On success: `match_index` is the highest index the follower has durably
 * stored and knows to match the leader's log; `last_log_index` the highest
 * index it knows to match (stored, maybe not yet durable).
 * On rejection: `reject_index` is the prev_log_index that did not match;
 * (`conflict_index`, `conflict_term`) is the back-off hint: the largest index
 * at or before reject_index (and the follower's last index) whose term is <=
 * the request's prev_log_term, and the term there; `last_log_index` is the
 * follower's last index. */
typedef struct hamok_msg_append_response {
    uint64_t term;
    bool success;
    uint64_t match_index;
    uint64_t last_log_index;
    uint64_t reject_index;
    uint64_t conflict_index;
    uint64_t conflict_term;
    uint64_t ctx;
} hamok_msg_append_response;

/* INSTALL_SNAPSHOT: one chunk of a snapshot. `members` is sent with the chunk
 * at offset 0 (the configuration as of last_index). */
typedef struct hamok_msg_snapshot {
    uint64_t term;
    uint64_t last_index;
    uint64_t last_term;
    uint64_t offset;
    bool done;
    hamok_member *members;
    size_t n_members;
    uint8_t *data;
    size_t len;
} hamok_msg_snapshot;

typedef struct hamok_msg_snapshot_response {
    uint64_t term;
    uint64_t last_index;
    uint64_t next_offset; /* bytes received so far (resume point) */
    bool done;            /* snapshot installed */
} hamok_msg_snapshot_response;

typedef struct hamok_msg_timeout_now {
    uint64_t term;
} hamok_msg_timeout_now;

typedef struct hamok_msg_hello {
    char *endpoint;
    bool has_leader;
    hamok_id leader;
} hamok_msg_hello;

typedef struct hamok_msg_endpoint_states {
    uint64_t term;
    bool has_leader;
    hamok_id leader;
    uint64_t commit_index;
    hamok_member *members;
    size_t n_members;
} hamok_msg_endpoint_states;

typedef struct hamok_msg_join {
    char *endpoint;
} hamok_msg_join;

typedef struct hamok_msg_submit {
    uint64_t request_id;
    hamok_entry entry; /* term is ignored; the leader stamps its own */
} hamok_msg_submit;

typedef struct hamok_msg_submit_response {
    uint64_t request_id;
    uint32_t status; /* hamok_status */
    bool has_leader;
    hamok_id leader;
    uint64_t index;
    uint64_t term;
    uint8_t *result;
    size_t result_len;
} hamok_msg_submit_response;

typedef struct hamok_msg_read_index {
    uint64_t request_id;
} hamok_msg_read_index;

typedef struct hamok_msg_read_index_response {
    uint64_t request_id;
    uint32_t status; /* hamok_status */
    bool has_leader;
    hamok_id leader;
    uint64_t read_index;
} hamok_msg_read_index_response;

/* EMIT_REQUEST (answer wanted) and EMIT_NOTIFICATION (fire and forget): an
 * event of emitter `name` for the receiver's local listeners. */
typedef struct hamok_msg_emit {
    uint64_t request_id;
    uint8_t *name;
    size_t name_len;
    uint8_t *event;
    size_t event_len;
    uint8_t *payload;
    size_t payload_len;
} hamok_msg_emit;

/* EMIT_RESPONSE: the receiver delivered request_id to its listeners. */
typedef struct hamok_msg_emit_response {
    uint64_t request_id;
} hamok_msg_emit_response;

typedef struct hamok_msg {
    uint8_t type; /* hamok_msg_type */
    hamok_id src;
    bool broadcast; /* when true, dst is ignored */
    hamok_id dst;
    union {
        hamok_msg_vote vote;                   /* PREVOTE_REQUEST, VOTE_REQUEST */
        hamok_msg_vote_response vote_response; /* PREVOTE_RESPONSE, VOTE_RESPONSE */
        hamok_msg_append append;
        hamok_msg_append_response append_response;
        hamok_msg_snapshot snapshot;
        hamok_msg_snapshot_response snapshot_response;
        hamok_msg_timeout_now timeout_now;
        hamok_msg_hello hello;
        hamok_msg_endpoint_states endpoint_states;
        hamok_msg_join join; /* JOIN and LEAVE */
        hamok_msg_submit submit;
        hamok_msg_submit_response submit_response;
        hamok_msg_read_index read_index;
        hamok_msg_read_index_response read_index_response;
        hamok_msg_emit emit; /* EMIT_REQUEST, EMIT_NOTIFICATION */
        hamok_msg_emit_response emit_response;
    } u;
} hamok_msg;

/* Name of a message type ("UNKNOWN" otherwise). */
const char *hamok__msg_type_name(uint8_t type);
/* True when `type` is one this version knows. */
bool hamok__msg_type_known(uint8_t type);
/* Free everything an owning message holds and zero it. NULL-safe. */
void hamok__msg_clear(hamok_msg *m);
/* Free the data an owning entry holds (not the entry itself). */
void hamok__entry_clear(hamok_entry *e);
void hamok__members_free(hamok_member *members, size_t n);

#endif
