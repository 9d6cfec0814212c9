/* CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and
 * final XOR 0xFFFFFFFF — the checksum of iSCSI (RFC 3720), ext4 and SCTP.
 * The CPU's CRC32 instruction where there is one (x86-64 SSE4.2, chosen at
 * run time), else software slicing-by-8 over constant tables: no state, no
 * first-use initialisation, safe from any thread.
 *
 *   crc32c("123456789") == 0xE3069283
 *
 * Incremental use follows zlib's crc32(): start from 0 and feed each piece the
 * value returned for the previous one:
 *
 *   uint32_t c = 0;
 *   c = hamok__crc32c_update(c, a, alen);
 *   c = hamok__crc32c_update(c, b, blen);   // == hamok__crc32c(a || b)
 */
#ifndef HAMOK_UTIL_CRC32C_H
#define HAMOK_UTIL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extend `crc` (a previous result, or 0 to start) over `len` bytes of `data`.
 * `data` may be NULL when `len` is 0. */
uint32_t hamok__crc32c_update(uint32_t crc, const void *data, size_t len);

/* The portable table-driven version (tests compare both). */
uint32_t hamok__crc32c_update_sw(uint32_t crc, const void *data, size_t len);
/* Does hamok__crc32c_update use the CPU's instruction here? */
bool hamok__crc32c_hw_available(void);

/* CRC-32C of one buffer; same as hamok__crc32c_update(0, data, len). */
uint32_t hamok__crc32c(const void *data, size_t len);

#endif
