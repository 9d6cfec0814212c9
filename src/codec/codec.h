/* Wire codec: hamok_msg <-> bytes (MessagePack). The only module that includes
 * <msgpack.h>. The format is documented field by field in docs/PROTOCOL.md.
 *
 * Decoding never trusts a declared length: every container count and every
 * str/bin length is checked against the bytes that remain and against the
 * limits below before anything is allocated, and nesting depth is bounded.
 * On any error the output message is left zeroed: no partial object, no leak. */
#ifndef HAMOK_CODEC_CODEC_H
#define HAMOK_CODEC_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"
#include "util/buf.h"

#define HAMOK_CODEC_DEFAULT_MAX_FRAME    (1024u * 1024u)
#define HAMOK_CODEC_DEFAULT_MAX_ELEMENTS 65536u
#define HAMOK_CODEC_DEFAULT_MAX_DEPTH    16u
#define HAMOK_CLUSTER_NAME_MAX           255u

typedef struct hamok_codec_limits {
    size_t max_frame;      /* bytes of one encoded frame */
    uint32_t max_elements; /* elements of any one array/map */
    uint32_t max_depth;    /* nesting of arrays/maps */
} hamok_codec_limits;

/* Why a frame was rejected; transports and the node count these. */
typedef enum hamok_codec_reject {
    HAMOK_REJECT_NONE = 0,
    HAMOK_REJECT_MALFORMED, /* not valid msgpack, wrong shape or types, trailing bytes */
    HAMOK_REJECT_TOO_BIG,   /* over max_frame / max_elements / max_depth */
    HAMOK_REJECT_VERSION,   /* unknown protocol version */
    HAMOK_REJECT_CLUSTER,   /* frame of another cluster */
    HAMOK_REJECT_TYPE,      /* unknown message or entry type */
    HAMOK_REJECT_COUNT_
} hamok_codec_reject;

const char *hamok__codec_reject_str(hamok_codec_reject why);

void hamok__codec_limits_default(hamok_codec_limits *lim);

/* Append the encoding of `m` (envelope with `cluster`) to `out`.
 * Returns HAMOK_ERR_TOO_BIG (and leaves `out` as it was) when the frame would
 * exceed lim->max_frame, HAMOK_ERR_INVALID for an unknown type or a cluster
 * name longer than HAMOK_CLUSTER_NAME_MAX, HAMOK_ERR_NOMEM. `lim` may be NULL
 * (defaults). */
hamok_status hamok__codec_encode(const hamok_msg *m, const char *cluster,
                                 const hamok_codec_limits *lim, hamok_buf *out);

/* Decode one frame into `out` (which the caller releases with
 * hamok__msg_clear()). `cluster` NULL accepts any cluster. `lim` NULL = the
 * defaults. `why` may be NULL. Returns HAMOK_OK, HAMOK_ERR_TOO_BIG (why =
 * TOO_BIG), HAMOK_ERR_CODEC (any other reason) or HAMOK_ERR_NOMEM. */
hamok_status hamok__codec_decode(const uint8_t *data, size_t len, const char *cluster,
                                 const hamok_codec_limits *lim, hamok_msg *out,
                                 hamok_codec_reject *why);

/* A configuration (the data of a HAMOK_ENTRY_CONFIG entry, and the members of
 * a snapshot): the member array alone, in the same layout as in messages.
 * encode appends to `out`: HAMOK_ERR_INVALID for an unknown role, a bad
 * endpoint or more than HAMOK_CODEC_DEFAULT_MAX_ELEMENTS members; NOMEM.
 * decode allocates *members (free with hamok__members_free()); on error
 * *members is NULL and *n is 0: HAMOK_ERR_CODEC, HAMOK_ERR_TOO_BIG, NOMEM. */
hamok_status hamok__codec_encode_config(const hamok_member *members, size_t n, hamok_buf *out);
hamok_status hamok__codec_decode_config(const uint8_t *data, size_t len, hamok_member **members,
                                        size_t *n);

/* Upper bound of the encoded size of one entry beyond its data bytes; the Raft
 * core uses it to keep AppendEntries batches under the frame limit. */
#define HAMOK_CODEC_ENTRY_OVERHEAD 48u
/* Upper bound of an envelope plus an AppendEntries header (no entries). */
#define HAMOK_CODEC_APPEND_OVERHEAD (128u + HAMOK_CLUSTER_NAME_MAX)

#endif
