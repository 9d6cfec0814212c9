/* Exactly-once client sessions (Raft thesis §6.3).
 *
 * Every proposal carries (client peer id, sequence number). A client retries a
 * proposal whose outcome it did not learn (a timeout, a leader change); the
 * retry may be committed a second time. The session table, applied in commit
 * order on every peer like any other state machine, remembers the result of
 * the last `window` commands of each client: a duplicate is answered with the
 * original result and never applied again. Sequence numbers need not arrive
 * in order (pipelined proposals, retries): a number inside the window that
 * was never recorded is new; one older than the window is EXPIRED — it was
 * answered long ago, or superseded, and is not applied.
 *
 * The table is part of the replicated state and so of every snapshot
 * (hamok__sessions_snapshot / _restore). A departed peer's session is dropped
 * when the configuration that removed it is applied (hamok__sessions_expire),
 * but its highest sequence number stays behind (24 bytes per departed peer,
 * kept for good): a command of that client numbered at or below it is
 * EXPIRED from then on — a removed peer's retry, still in flight or resent
 * after it was added back under the same id, may be one that was applied
 * before, and nothing remembers its result any more. Numbers above it start
 * a new session (a peer numbers its proposals in increasing order, across
 * restarts too). Without this, such a retry was applied a second time.
 *
 * Thread: the node's loop thread only. Nothing here is thread-safe. */
#ifndef HAMOK_COLLECTIONS_SESSION_H
#define HAMOK_COLLECTIONS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"
#include "util/buf.h"
#include "util/id.h"

#define HAMOK_SESSION_DEFAULT_WINDOW 4096u
#define HAMOK_SESSION_MAX_WINDOW     65536u

typedef struct hamok_sessions hamok_sessions;

typedef enum hamok_session_check {
    HAMOK_SESSION_NEW = 0,       /* apply it, then record its result */
    HAMOK_SESSION_DUPLICATE = 1, /* applied before: answer with the recorded result */
    HAMOK_SESSION_EXPIRED = 2,   /* older than the window: do not apply; answer with an error */
} hamok_session_check;

/* `window` results per client, 1..HAMOK_SESSION_MAX_WINDOW (0 = the default).
 * It must exceed the number of proposals a client keeps in flight.
 * HAMOK_ERR_INVALID, HAMOK_ERR_NOMEM. */
hamok_status hamok__sessions_new(hamok_sessions **out, uint32_t window);
/* NULL-safe; sets *s = NULL. */
void hamok__sessions_destroy(hamok_sessions **s);

/* Classify the command (client, seq) before applying it. A nil client or seq
 * 0 means "no session": always NEW, and record() ignores it. For DUPLICATE,
 * *result / *len are borrowed until the next call that changes the table. */
hamok_session_check hamok__sessions_check(const hamok_sessions *s, const hamok_id *client,
                                          uint64_t seq, const uint8_t **result, size_t *len);

/* Remember the result of the command (client, seq) just applied (copied).
 * HAMOK_ERR_NOMEM leaves the table as it was. */
hamok_status hamok__sessions_record(hamok_sessions *s, const hamok_id *client, uint64_t seq,
                                    const void *result, size_t len);

/* Make the next hamok__sessions_record() of (client, seq) with a result of at
 * most `max_len` bytes unable to fail: creates the client's session if needed
 * and sets the memory for the copy aside. Lets a caller allocate everything
 * before it changes anything (the registry applies a command only once
 * nothing can fail any more). HAMOK_ERR_NOMEM: nothing reserved; an empty
 * session may have been created, which changes no answer. No session (nil
 * client or seq 0): HAMOK_OK, nothing to do. */
hamok_status hamok__sessions_reserve(hamok_sessions *s, const hamok_id *client, uint64_t seq,
                                     size_t max_len);

/* Drop the sessions of clients that are not members of the configuration,
 * keeping each one's highest number (see above). HAMOK_ERR_NOMEM: nothing
 * changed (the registry answers NOMEM for the entry: no effect). */
hamok_status hamok__sessions_expire(hamok_sessions *s, const hamok_member *members, size_t n);

/* Number of clients with a session / of departed clients remembered. */
size_t hamok__sessions_count(const hamok_sessions *s);
size_t hamok__sessions_departed(const hamok_sessions *s);

/* Append the whole table to `out` (a versioned, checksummed binary form) /
 * replace the table with a serialized one. restore() checks every length
 * against the bytes that remain and returns HAMOK_ERR_CORRUPT (table
 * unchanged) for anything malformed; HAMOK_ERR_NOMEM. */
hamok_status hamok__sessions_snapshot(const hamok_sessions *s, hamok_buf *out);
hamok_status hamok__sessions_restore(hamok_sessions *s, const uint8_t *data, size_t len);

#endif
