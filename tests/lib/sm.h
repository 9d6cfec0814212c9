/* The simulator's replicated state machine (tests/lib/sim.c runs one per
 * node; tests/lib/checker.c runs a reference copy over the committed
 * sequence).
 *
 * The state is a deterministic function of the applied entries: a count of
 * COMMAND entries, a hash chain over every applied entry, and 256 registers,
 * COMMAND seq k updating register k % 256. Its digest (hamok_sm_hash) covers
 * all of it and is maintained in O(1) per entry (the registers enter through
 * a sum of per-register hashes), so the checker can compare every node's
 * state with the committed state at the same index after every step.
 *
 * A snapshot ("blob") serializes the state, the snapshot's (index, term) and
 * its configuration: about 2.2 KiB, so that an InstallSnapshot takes several
 * chunks. A trailing FNV-1a checksum catches any byte lost or reordered on
 * the way (chunk bookkeeping errors). */
#ifndef HAMOK_TESTS_SM_H
#define HAMOK_TESTS_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "util/buf.h"

#define HAMOK_SM_REGS 256

typedef struct hamok_sm {
    uint64_t applied;  /* index of the last applied entry */
    uint64_t commands; /* COMMAND entries applied */
    uint64_t chain;    /* hash chain over (index, entry hash) of every entry */
    uint64_t regsum;   /* sum of reg_hash(k, regs[k]) (kept incrementally) */
    uint64_t regs[HAMOK_SM_REGS];
} hamok_sm;

void hamok_sm_init(hamok_sm *sm);
/* Apply the entry at `index` (must be sm->applied + 1); `entry_hash` is
 * hamok_chk_entry_hash() of it. */
void hamok_sm_apply(hamok_sm *sm, uint64_t index, uint8_t type, uint64_t seq, uint64_t entry_hash);
/* Digest of the whole state (applied index included). */
uint64_t hamok_sm_hash(const hamok_sm *sm);

/* Serialize state + (term, members) into out (appended). HAMOK_ERR_NOMEM. */
hamok_status hamok_sm_encode(const hamok_sm *sm, uint64_t term, const hamok_member *ms, size_t n,
                             hamok_buf *out);
/* Parse a blob: false if malformed or the checksum fails. *ms (may be NULL
 * if not wanted) is allocated; free with hamok__members_free(). */
bool hamok_sm_decode(const uint8_t *b, size_t len, hamok_sm *sm, uint64_t *term, hamok_member **ms,
                     size_t *n);

#endif
