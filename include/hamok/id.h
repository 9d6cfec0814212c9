/* Peer identifiers: 16 opaque bytes, a UUID for real peers; printed in the
 * canonical 8-4-4-4-12 hexadecimal form. */
#ifndef HAMOK_ID_H
#define HAMOK_ID_H

#include <stdint.h>

#include "hamok/export.h"
#include "hamok/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HAMOK_ID_LEN     16
#define HAMOK_ID_STR_LEN 36 /* characters, without the terminating NUL */

/** A peer id (a value type: copy it freely). */
typedef struct hamok_id {
    uint8_t b[HAMOK_ID_LEN];
} hamok_id;

/** Write the canonical text form of `id` into `out` (at least
 * HAMOK_ID_STR_LEN + 1 bytes, NUL-terminated). Thread: any. */
HAMOK_API void hamok_id_format(const hamok_id *id, char *out);

/** Parse the canonical text form. Thread: any.
 * Returns HAMOK_OK or HAMOK_ERR_INVALID (anything else; *out untouched). */
HAMOK_API hamok_status hamok_id_parse(const char *text, hamok_id *out);

#ifdef __cplusplus
}
#endif
#endif
