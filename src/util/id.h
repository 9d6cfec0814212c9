/* Peer identifiers: 16 opaque bytes (a UUID for real peers). Compared and
 * hashed as bytes; printed in the canonical 8-4-4-4-12 hex form. */
#ifndef HAMOK_UTIL_ID_H
#define HAMOK_UTIL_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/id.h"
#include "hamok/status.h"

static inline bool hamok__id_eq(const hamok_id *a, const hamok_id *b)
{
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        if (a->b[i] != b->b[i]) {
            return false;
        }
    }
    return true;
}

static inline bool hamok__id_is_nil(const hamok_id *a)
{
    for (int i = 0; i < HAMOK_ID_LEN; i++) {
        if (a->b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* An id whose last 8 bytes are `n` big-endian and the rest zero (tests, sim). */
hamok_id hamok__id_from_u64(uint64_t n);
/* Format into `out` (at least HAMOK_ID_STR_LEN + 1 bytes). */
void hamok__id_format(const hamok_id *id, char *out);
/* Parse the canonical form; HAMOK_ERR_INVALID on anything else. */
hamok_status hamok__id_parse(const char *text, hamok_id *out);
/* A version-4 UUID from 16 random bytes supplied by the caller. */
hamok_id hamok__id_uuid4(const uint8_t random16[HAMOK_ID_LEN]);

#endif
