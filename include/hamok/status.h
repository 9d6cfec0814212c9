/* Hamok status codes.
 *
 * Every fallible public function returns a hamok_status. HAMOK_OK is 0; every
 * error is a positive value. hamok_status_str() never returns NULL and is safe
 * from any thread. */
#ifndef HAMOK_STATUS_H
#define HAMOK_STATUS_H

#include "hamok/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X-macro: one table so the enum and its text can never drift apart. */
#define HAMOK_STATUS_MAP(X)                                             \
    X(OK, "ok")                                                         \
    X(ERR_NOMEM, "out of memory")                                       \
    X(ERR_INVALID, "invalid argument")                                  \
    X(ERR_STATE, "operation not allowed in the current state")          \
    X(ERR_NOT_LEADER, "this peer is not the leader")                    \
    X(ERR_NO_LEADER, "no leader is known")                              \
    X(ERR_TIMEOUT, "timed out")                                         \
    X(ERR_CLOSED, "closed")                                             \
    X(ERR_TRANSPORT, "transport error")                                 \
    X(ERR_CODEC, "malformed message")                                   \
    X(ERR_TOO_BIG, "message or value too big")                          \
    X(ERR_BUSY, "busy, try again")                                      \
    X(ERR_NOT_FOUND, "not found")                                       \
    X(ERR_CONFLICT, "conflict")                                         \
    X(ERR_IO, "I/O error")                                              \
    X(ERR_CORRUPT, "corrupt data")                                      \
    X(ERR_WRONG_KIND, "the name belongs to another kind of collection") \
    X(ERR_STORE, "the external store failed")                           \
    X(ERR_EXPIRED, "request too old to be answered")

typedef enum hamok_status {
#define HAMOK_STATUS_ENUM_(name, text) HAMOK_##name,
    HAMOK_STATUS_MAP(HAMOK_STATUS_ENUM_)
#undef HAMOK_STATUS_ENUM_
        HAMOK_STATUS_COUNT
} hamok_status;

/** Text of a status code ("unknown status" for values out of range).
 * Thread: any. Returns a static string; never NULL. */
HAMOK_API const char *hamok_status_str(hamok_status status);

#ifdef __cplusplus
}
#endif
#endif
