/* The remote map: a map whose data lives in an external store (a Redis hash,
 * a database table...) shared by every peer; Hamok orders who writes to it
 * when. Reads go straight to the store; writes go through the Raft log and
 * only the leader executes them against the store, one batch at a time, in
 * commit order; every peer sees the same events in the same order.
 * docs/API.md, "The remote map", explains the design and its guarantees.
 *
 * The store is the application's: a `hamok_remote_store_ops` vtable and an
 * opaque `store` pointer handed to hamok_remote_map_open(). Every peer that
 * can become leader must open the map with a store (while a leader without
 * it leads, writes wait and time out); all of them must reach the same data.
 * Hamok must be the only writer of that data (outside writers race with the
 * leader's read-then-write).
 *
 * Threads. Store functions are called from two kinds of threads, never from
 * the node's loop thread: (1) the map's worker thread (one per open remote
 * map, on every peer; it calls the store only while its peer leads), for
 * get/commit/load, one call at a time; (2) any application thread that
 * calls a read of this header (get/scan/size). So the store must allow
 * concurrent calls (a connection per call, or a lock). Store functions may
 * block (a network round trip); they must not call Hamok functions other
 * than hamok_remote_out_put().
 *
 * Writes: every function of hamok/map.h's write family exists here with the
 * same arguments, results and statuses (set, set_all, insert, insert_all,
 * update_if, delete, delete_all, remove, remove_all, clear, set_async,
 * delete_async), plus HAMOK_ERR_STORE: the store failed that write (it had
 * no effect, see hamok_remote_store_ops.commit for the one exception). A
 * write returns once the leader executed it and its outcome is applied on
 * this peer: every read issued after it returns, on any peer, sees it.
 * HAMOK_ERR_TIMEOUT means unknown (the write may still be executed once).
 * No remove_if (the original has none).
 *
 * Statuses of reads: HAMOK_OK; HAMOK_ERR_NOT_FOUND (get of an absent key);
 * HAMOK_ERR_STORE (the store failed; its own status is logged);
 * HAMOK_ERR_STATE (called on the loop thread); HAMOK_ERR_INVALID;
 * HAMOK_ERR_NOMEM. */
#ifndef HAMOK_REMOTE_MAP_H
#define HAMOK_REMOTE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/map.h"
#include "hamok/node.h"
#include "hamok/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The store (implemented by the application) */

/** Where a store function hands out what it read. */
typedef struct hamok_remote_out hamok_remote_out;

/** Hand one entry to Hamok (copied before return). A store function calls it
 * once per entry it found, in any order. Returns HAMOK_OK to go on; any other
 * status (HAMOK_ERR_NOMEM, or a stop Hamok asks for) means: stop and return
 * that status from the store function. Thread: the store function's. */
HAMOK_API hamok_status hamok_remote_out_put(hamok_remote_out *out, const void *key, size_t key_len,
                                            const void *value, size_t value_len);

/** One change of a commit: set `key` to `value` (has_value), or delete it. */
typedef struct hamok_remote_change {
    const void *key;
    size_t key_len;
    bool has_value;
    const void *value;
    size_t value_len;
} hamok_remote_change;

/** What the leader writes in one store transaction: the net effect of a batch
 * of requests, in order. Everything is borrowed for the call. */
typedef struct hamok_remote_commit {
    bool clear;                         /**< first remove every entry */
    const hamok_remote_change *changes; /**< then these (distinct keys) */
    size_t n_changes;
    /** Exactly-once support (stores with `load`): write only if the token
     * stored now is byte-equal to expect_token (none stored: length 0), and
     * store `token` and `outcome` with the data, all or nothing. */
    const void *expect_token;
    size_t expect_token_len;
    const void *token;
    size_t token_len;
    const void *outcome;
    size_t outcome_len;
    /** The log indices of the requests this commit executes (informational:
     * a store may log them). */
    const uint64_t *indices;
    size_t n_indices;
} hamok_remote_commit;

#define HAMOK_REMOTE_STORE_ABI 1u

/** The store vtable. `store` is the pointer given to hamok_remote_map_open.
 * A function returns HAMOK_OK or an error status of its choice (Hamok logs it
 * and answers HAMOK_ERR_STORE); none may keep pointers it was given. */
typedef struct hamok_remote_store_ops {
    uint32_t abi; /**< HAMOK_REMOTE_STORE_ABI */
    /** Required. Look up `keys` (each hamok_kv's key; values ignored): put
     * every one that exists with its value. */
    hamok_status (*get)(void *store, const hamok_kv *keys, size_t n, hamok_remote_out *out);
    /** Required. Put every entry. */
    hamok_status (*scan)(void *store, hamok_remote_out *out);
    /** Optional (NULL: Hamok counts a scan). Number of entries. */
    hamok_status (*size)(void *store, uint64_t *out);
    /** Required. Apply the commit. With `load` the commit must be atomic
     * and conditional: if the stored token differs from expect_token return
     * HAMOK_ERR_CONFLICT and write nothing; otherwise write the changes, the
     * token and the outcome together, or nothing (an error). Without `load`
     * the token fields may be ignored; a failed commit may then have written
     * part of the changes (Hamok cannot tell and answers HAMOK_ERR_STORE). */
    hamok_status (*commit)(void *store, const hamok_remote_commit *c);
    /** Optional: exactly-once across leader changes. Put the stored token as
     * the key and the stored outcome as the value (one put), or nothing when
     * no commit ever stored one. */
    hamok_status (*load)(void *store, hamok_remote_out *out);
} hamok_remote_store_ops;

/* ------------------------------------------------------------------------ */
/* The map */

typedef struct hamok_remote_map hamok_remote_map;

/** Open the remote map `name` (1..255 bytes) over `store`. `ops` and `store`
 * are borrowed and must outlive the handle. Starts the map's worker thread.
 * HAMOK_OK; HAMOK_ERR_INVALID (NULL, ABI mismatch, a required function
 * missing, bad name); HAMOK_ERR_WRONG_KIND (the name is another kind of
 * collection); HAMOK_ERR_BUSY (this node already has the map open: one
 * executor per peer); HAMOK_ERR_STATE (thread creation failed);
 * HAMOK_ERR_NOMEM. Thread: any. */
HAMOK_API hamok_status hamok_remote_map_open(hamok_node *node, const char *name,
                                             const hamok_remote_store_ops *ops, void *store,
                                             hamok_remote_map **out);
/** Close the handle: its listeners stop, its worker ends (waiting for a store
 * call in progress to return). The data stays in the store; requests still
 * queued are executed by the next leader that has the map open. NULL-safe;
 * sets *map = NULL. Close every remote map before destroying its node. Not
 * from one of its own listeners, not on the loop thread. */
HAMOK_API void hamok_remote_map_close(hamok_remote_map **map);

/* Reads: straight to the store, on the calling thread (not the loop thread) */

/** The value of `key` (hamok_value_free). HAMOK_ERR_NOT_FOUND if absent. */
HAMOK_API hamok_status hamok_remote_map_get(hamok_remote_map *map, const void *key, size_t key_len,
                                            hamok_value *out);
/** The entries of `keys` that exist (hamok_kvs_free), in the store's order. */
HAMOK_API hamok_status hamok_remote_map_get_all(hamok_remote_map *map, const hamok_kv *keys,
                                                size_t n, hamok_kvs *out);
/** Every key (has_value false) (hamok_kvs_free). */
HAMOK_API hamok_status hamok_remote_map_keys(hamok_remote_map *map, hamok_kvs *out);
/** Every entry (hamok_kvs_free). */
HAMOK_API hamok_status hamok_remote_map_entries(hamok_remote_map *map, hamok_kvs *out);
/** Number of entries. */
HAMOK_API hamok_status hamok_remote_map_size(hamok_remote_map *map, uint64_t *out);
/** Call fn for every entry (store order) until it returns false. fn runs on
 * the calling thread inside the store's scan: it must not call the store. */
HAMOK_API hamok_status hamok_remote_map_foreach(hamok_remote_map *map,
                                                bool (*fn)(void *ud, const hamok_kv *entry),
                                                void *ud);

/* Writes (blocking; hamok/map.h documents each result) */

HAMOK_API hamok_status hamok_remote_map_set(hamok_remote_map *map, const void *key, size_t key_len,
                                            const void *value, size_t value_len, hamok_value *old,
                                            int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_set_all(hamok_remote_map *map, const hamok_kv *entries,
                                                size_t n, hamok_kvs *old, int timeout_ms);
/** Insert if absent: never overwrites (unlike the original, bug A8);
 * `existing` receives the value that stays when the key existed. */
HAMOK_API hamok_status hamok_remote_map_insert(hamok_remote_map *map, const void *key,
                                               size_t key_len, const void *value, size_t value_len,
                                               hamok_value *existing, int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_insert_all(hamok_remote_map *map, const hamok_kv *entries,
                                                   size_t n, hamok_kvs *existing, int timeout_ms);
/** Compare and set against the store's current value (byte equality; an
 * empty value is a value, an absent key never matches). */
HAMOK_API hamok_status hamok_remote_map_update_if(hamok_remote_map *map, const void *key,
                                                  size_t key_len, const void *value,
                                                  size_t value_len, const void *expected,
                                                  size_t expected_len, bool *updated,
                                                  int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_delete(hamok_remote_map *map, const void *key,
                                               size_t key_len, bool *deleted, int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_delete_all(hamok_remote_map *map, const hamok_kv *keys,
                                                   size_t n, hamok_kvs *deleted, int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_remove(hamok_remote_map *map, const void *key,
                                               size_t key_len, hamok_value *removed,
                                               int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_remove_all(hamok_remote_map *map, const hamok_kv *keys,
                                                   size_t n, hamok_kvs *removed, int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_clear(hamok_remote_map *map, int timeout_ms);

/* C-string helpers (without the NUL). */
HAMOK_API hamok_status hamok_remote_map_set_str(hamok_remote_map *map, const char *key,
                                                const char *value, hamok_value *old,
                                                int timeout_ms);
HAMOK_API hamok_status hamok_remote_map_get_str(hamok_remote_map *map, const char *key,
                                                hamok_value *out);

/* Writes (asynchronous, as hamok_map_set_async / hamok_map_delete_async) */

HAMOK_API void hamok_remote_map_set_async(hamok_remote_map *map, const void *key, size_t key_len,
                                          const void *value, size_t value_len, int timeout_ms,
                                          hamok_result_fn cb, void *ud);
HAMOK_API void hamok_remote_map_delete_async(hamok_remote_map *map, const void *key, size_t key_len,
                                             int timeout_ms, hamok_result_fn cb, void *ud);

/* Events: insert, update (with the old value), remove (with the old value),
 * clear — on every peer that has the map open, in the order the leader
 * executed the writes (the same on every peer), on the loop thread. The
 * event's index is the log index of the write request. Values are what the
 * store held and got: an event never reads the store. */

HAMOK_API hamok_status hamok_remote_map_on(hamok_remote_map *map, hamok_map_event_fn fn, void *ud);
HAMOK_API hamok_status hamok_remote_map_off(hamok_remote_map *map, hamok_map_event_fn fn, void *ud);

/** Worker statistics of this peer's handle (thread: any). */
typedef struct hamok_remote_map_stats {
    uint64_t batches;      /**< store commits that succeeded */
    uint64_t executed;     /**< requests executed against the store */
    uint64_t recovered;    /**< outcomes republished from the store after a leader change */
    uint64_t store_errors; /**< store calls that failed */
    uint64_t conflicts;    /**< commits refused because another leader wrote first */
} hamok_remote_map_stats;
HAMOK_API void hamok_remote_map_stats_get(hamok_remote_map *map, hamok_remote_map_stats *out);

#ifdef __cplusplus
}
#endif
#endif
