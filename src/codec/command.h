/* Collection commands and their results: the data of a HAMOK_ENTRY_COMMAND
 * log entry, and the result bytes returned to the proposer (and remembered by
 * the session table). The wire form is MessagePack (this is src/codec, the
 * only place that includes <msgpack.h>); documented in docs/PROTOCOL.md,
 * section "Commands".
 *
 * One generic shape serves every collection: a command names the collection
 * (kind, name), the operation, a list of items (key, value, expected value;
 * each part optional) and one integer argument. Keys, values and names are
 * byte strings; an empty value is a value (original bug A1), "absent" is
 * has_value == false.
 *
 * Ownership: a decoded command/result owns its buffers (free with
 * hamok__cmd_clear / hamok__cmd_result_clear). They are one allocation (a
 * command's starts at `name`, a result's at `items`): never free or keep an
 * individual pointer past the clear. In a decoded item an empty key, value or
 * expected value points at a valid (zero-length) address, never NULL, so it
 * can be handed to memcmp/memcpy; an absent one is NULL. Commands built by
 * callers for encoding may point anywhere; encode copies nothing it does not
 * need.
 *
 * Decoding is bounded like the frame decoder: every length is checked against
 * the bytes that remain and against the limits before allocating; on error
 * the output is zeroed. */
#ifndef HAMOK_CODEC_COMMAND_H
#define HAMOK_CODEC_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "hamok/status.h"
#include "util/buf.h"

/* Kinds of collection. Numbers are on the wire. */
typedef enum hamok_kind {
    HAMOK_KIND_MAP = 1,
    HAMOK_KIND_RECORD = 2,
    HAMOK_KIND_QUEUE = 3,
    HAMOK_KIND_EMITTER = 4,
    HAMOK_KIND_REMOTE_MAP = 5,
    HAMOK_KIND_MAX_ = 5
} hamok_kind;

#define HAMOK_NAME_MAX 255u /* bytes of a collection name (non-empty) */

/* Largest encoded command or result accepted: the frame limit. */
#define HAMOK_CMD_MAX_ENCODED HAMOK_CODEC_DEFAULT_MAX_FRAME
/* Largest result the registry produces: a SUBMIT_RESPONSE carrying it still
 * fits one frame (its envelope and header take at most 352 bytes with a
 * 255-byte cluster name). A command whose result would be larger answers
 * HAMOK_ERR_TOO_BIG and has no effect (registry.h). */
#define HAMOK_CMD_RESULT_MAX (HAMOK_CMD_MAX_ENCODED - 384u)

/* Operations. Numbers are on the wire. Which kinds accept which op, and what
 * the result holds, is specified in src/collections/registry.h. */
typedef enum hamok_op {
    HAMOK_OP_SET = 1,
    HAMOK_OP_INSERT = 2,
    HAMOK_OP_UPDATE_IF = 3,
    HAMOK_OP_DELETE = 4,
    HAMOK_OP_REMOVE = 5,
    HAMOK_OP_REMOVE_IF = 6,
    HAMOK_OP_CLEAR = 7,
    HAMOK_OP_PUSH = 8,
    HAMOK_OP_POP = 9,
    HAMOK_OP_SUBSCRIBE = 10,
    HAMOK_OP_UNSUBSCRIBE = 11,
    HAMOK_OP_UPDATE_METADATA = 12,
    HAMOK_OP_CLEANUP = 13,
    HAMOK_OP_OUTCOME = 14, /* remote map: what the leader's store execution observed */
    HAMOK_OP_MAX_ = 14
} hamok_op;

typedef struct hamok_cmd_item {
    uint8_t *key;
    size_t key_len;
    bool has_value;
    uint8_t *value;
    size_t value_len;
    bool has_expected;
    uint8_t *expected;
    size_t expected_len;
} hamok_cmd_item;

typedef struct hamok_cmd {
    uint8_t kind; /* hamok_kind */
    uint8_t op;   /* hamok_op */
    uint8_t *name;
    size_t name_len;
    uint64_t arg; /* op-specific (POP: how many items, 0 = 1) */
    hamok_cmd_item *items;
    size_t n_items;
} hamok_cmd;

typedef struct hamok_cmd_result {
    uint32_t status; /* hamok_status: HAMOK_OK or why the command did nothing */
    bool flag;       /* op-specific boolean answer */
    hamok_cmd_item *items;
    size_t n_items;
} hamok_cmd_result;

/* Append the encoding to `out`. HAMOK_ERR_INVALID: unknown kind/op, empty or
 * too long name, more than HAMOK_CODEC_DEFAULT_MAX_ELEMENTS items, a NULL
 * pointer with a non-zero length; HAMOK_ERR_TOO_BIG: the encoding would exceed
 * HAMOK_CMD_MAX_ENCODED bytes (the decoder would refuse it); HAMOK_ERR_NOMEM.
 * `out` is unchanged on error. (The result encoder checks the same, minus
 * kind/op/name.) */
hamok_status hamok__cmd_encode(const hamok_cmd *c, hamok_buf *out);
hamok_status hamok__cmd_result_encode(const hamok_cmd_result *r, hamok_buf *out);

/* Exact encoded size of one item, and an upper bound of a result's bytes
 * besides its items (array, status, flag, items header): lets the registry
 * stop adding items before a result exceeds HAMOK_CMD_RESULT_MAX. */
size_t hamok__cmd_item_size(const hamok_cmd_item *item);
#define HAMOK_CMD_RESULT_HEAD_MAX 12u

/* Decode. HAMOK_ERR_CODEC (malformed, unknown kind/op, trailing bytes),
 * HAMOK_ERR_TOO_BIG (more than HAMOK_CMD_MAX_ENCODED bytes or more than
 * HAMOK_CODEC_DEFAULT_MAX_ELEMENTS items), HAMOK_ERR_NOMEM; `out` zeroed on
 * error. The whole input is validated before anything is allocated; then one
 * block is allocated (at most 64 bytes per item plus the byte strings). */
hamok_status hamok__cmd_decode(const uint8_t *data, size_t len, hamok_cmd *out);
hamok_status hamok__cmd_result_decode(const uint8_t *data, size_t len, hamok_cmd_result *out);

/* Decode without copying or allocating (the registry's apply path): byte
 * strings point into `data`, which must outlive `out`; the items go to
 * `items`, room for `cap` (may be NULL when cap is 0). Same checks and
 * statuses as hamok__cmd_decode, plus HAMOK_ERR_BUSY when the command has
 * more than `cap` items (and no more than the limit): out->n_items then
 * says how many, call again with that much room. Nothing to clear; `out`
 * zeroed on any error but BUSY. */
hamok_status hamok__cmd_decode_view(const uint8_t *data, size_t len, hamok_cmd *out,
                                    hamok_cmd_item *items, size_t cap);

/* Free what a decoded command/result owns and zero it. NULL-safe. */
void hamok__cmd_clear(hamok_cmd *c);
void hamok__cmd_result_clear(hamok_cmd_result *r);

#endif
