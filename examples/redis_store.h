/* A remote-map store over a Redis hash (hiredis), for hamok/remote_map.h.
 *
 * Data: the hash `hash` holds the map, field = key, value = value, both raw
 * bytes (no encoding: binary-safe, an empty value is a value). Exactly-once
 * state: the hash `<hash>:hamok` holds the fields `token` and `outcome`
 * that Hamok stores with every commit (hamok_remote_store_ops.load).
 *
 * Commits run as one Lua script (EVAL): it compares the stored token with
 * the expected one (HAMOK_ERR_CONFLICT, nothing written, on a mismatch),
 * then applies the clear, the sets and deletes, and the new token and
 * outcome. Redis runs a script in isolation, so no other client sees part of
 * it; Redis does not roll back a script that fails half way (e.g. the key
 * holds something that is not a hash) — such a store error is reported
 * (HAMOK_ERR_STORE to the request) and the data may hold part of the batch.
 * With Redis Cluster, put a hash tag in the name ("{orders}") so that both
 * keys live in one slot.
 *
 * Reads: HMGET (get), HSCAN (scan: like every HSCAN, an entry changed during
 * the scan may be reported twice or not at all), HLEN (size).
 *
 * Threads: one connection behind a mutex, so any thread may use the store
 * (the map's worker and the application's readers). A broken connection is
 * reopened on the next call. Every call has a timeout (`timeout_ms`). */
#ifndef HAMOK_EXAMPLES_REDIS_STORE_H
#define HAMOK_EXAMPLES_REDIS_STORE_H

#include "hamok/remote_map.h"

typedef struct hamok_redis_store hamok_redis_store;

/* Connect to host:port (loopback or a server of yours). HAMOK_OK;
 * HAMOK_ERR_INVALID (NULL, empty hash name); HAMOK_ERR_TRANSPORT (cannot
 * connect: the error is logged to stderr); HAMOK_ERR_NOMEM. */
hamok_status hamok_redis_store_new(const char *host, int port, const char *hash, int timeout_ms,
                                   hamok_redis_store **out);
/* Close the connection. NULL-safe; sets *store = NULL. Close the remote maps
 * that use it first. */
void hamok_redis_store_destroy(hamok_redis_store **store);

/* The vtable: hand it to hamok_remote_map_open() with the store. */
extern const hamok_remote_store_ops hamok_redis_store_ops;

#endif
