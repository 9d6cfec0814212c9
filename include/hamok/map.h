/* The replicated map: byte-string keys and values, the same on every peer.
 *
 * Reads (get, contains, size, foreach, entries) are local: no network, they
 * see this peer's applied state. After hamok_node_sync() they are
 * linearizable. Writes go through the Raft log: a blocking write returns once
 * the write is committed and applied on this peer (so this peer's next read
 * sees it), with the result computed at apply time.
 *
 * An empty value (len 0) is a value, never "absent". Keys 1..65535 bytes are
 * accepted by every transport; a write whose command exceeds the frame limit
 * (1 MiB) fails with HAMOK_ERR_TOO_BIG.
 *
 * Threads: every function is safe from any thread; blocking ones return
 * HAMOK_ERR_STATE on the loop thread (use the _async form there). Events and
 * _async completions fire on the node's loop thread.
 *
 * Statuses of writes: HAMOK_OK; HAMOK_ERR_TIMEOUT (outcome unknown: the write
 * may still be applied once; a retry of the same call is a new write);
 * HAMOK_ERR_NO_LEADER (no leader was known for the whole timeout: nothing was
 * sent); HAMOK_ERR_WRONG_KIND (the name belongs to another kind of
 * collection); HAMOK_ERR_INVALID; HAMOK_ERR_TOO_BIG; HAMOK_ERR_CLOSED;
 * HAMOK_ERR_NOMEM; HAMOK_ERR_STATE (on the loop thread). */
#ifndef HAMOK_MAP_H
#define HAMOK_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/node.h"
#include "hamok/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A value copied out for the caller: free it with hamok_value_free().
 * `present` false means "absent" (data NULL, len 0). `data` is followed by a
 * NUL byte (not counted in len) so text values can be used as C strings. */
typedef struct hamok_value {
    bool present;
    void *data;
    size_t len;
} hamok_value;

/** Free what a hamok_value holds and reset it to absent. NULL-safe. */
HAMOK_API void hamok_value_free(hamok_value *v);

/** A borrowed key/value view (valid for the duration of a call or callback). */
typedef struct hamok_kv {
    const void *key;
    size_t key_len;
    bool has_value;
    const void *value;
    size_t value_len;
} hamok_kv;

/** The result of a write, borrowed for the duration of an _async callback:
 * `flag` and `items` as documented per method. */
typedef struct hamok_result {
    bool flag;
    const hamok_kv *items;
    size_t n_items;
} hamok_result;

/** Completion of an _async write: fires once on the loop thread. `result` is
 * NULL unless status is HAMOK_OK. */
typedef void (*hamok_result_fn)(void *ud, hamok_status status, const hamok_result *result);

/** A list of key/values copied out for the caller (hamok_kvs_free). */
typedef struct hamok_kvs {
    hamok_kv *items;
    size_t n;
} hamok_kvs;
HAMOK_API void hamok_kvs_free(hamok_kvs *kvs);

typedef struct hamok_map hamok_map;

/** Open (take a handle on) the map `name` (1..255 bytes). A map comes into
 * being with its first write; opening needs no network. HAMOK_OK;
 * HAMOK_ERR_WRONG_KIND (the name is a collection of another kind);
 * HAMOK_ERR_INVALID; HAMOK_ERR_NOMEM. Several handles on one map are fine. */
HAMOK_API hamok_status hamok_map_open(hamok_node *node, const char *name, hamok_map **out);
/** Close the handle: its listeners stop; the map's data stays in the
 * cluster. NULL-safe; sets *map = NULL. Not from within one of its own
 * listeners. */
HAMOK_API void hamok_map_close(hamok_map **map);

/* Local reads ------------------------------------------------------------ */

/** Copy the value of `key` into *out (free it with hamok_value_free()).
 * HAMOK_OK; HAMOK_ERR_NOT_FOUND (out->present false); HAMOK_ERR_NOMEM. */
HAMOK_API hamok_status hamok_map_get(hamok_map *map, const void *key, size_t key_len,
                                     hamok_value *out);
HAMOK_API bool hamok_map_contains(hamok_map *map, const void *key, size_t key_len);
HAMOK_API size_t hamok_map_size(hamok_map *map);
/** Call fn for every entry, in insertion order, until it returns false.
 * Runs under the map's read lock: fn must not write to Hamok collections. */
HAMOK_API hamok_status hamok_map_foreach(hamok_map *map,
                                         bool (*fn)(void *ud, const hamok_kv *entry), void *ud);
/** A consistent copy of every entry (hamok_kvs_free). */
HAMOK_API hamok_status hamok_map_entries(hamok_map *map, hamok_kvs *out);

/* Writes (blocking) ------------------------------------------------------- */

/** Set key to value. `old` (may be NULL) receives the previous value (absent
 * if the key was new). */
HAMOK_API hamok_status hamok_map_set(hamok_map *map, const void *key, size_t key_len,
                                     const void *value, size_t value_len, hamok_value *old,
                                     int timeout_ms);
/** Set every pair at once (one log entry). `old` (may be NULL) receives the
 * previous values of the keys that existed. */
HAMOK_API hamok_status hamok_map_set_all(hamok_map *map, const hamok_kv *entries, size_t n,
                                         hamok_kvs *old, int timeout_ms);
/** Insert if absent. `existing` (may be NULL): absent if inserted, else the
 * value that stays. */
HAMOK_API hamok_status hamok_map_insert(hamok_map *map, const void *key, size_t key_len,
                                        const void *value, size_t value_len, hamok_value *existing,
                                        int timeout_ms);
/** Insert the absent ones; `existing` receives the pairs that were present. */
HAMOK_API hamok_status hamok_map_insert_all(hamok_map *map, const hamok_kv *entries, size_t n,
                                            hamok_kvs *existing, int timeout_ms);
/** Compare and set: write `value` if the current value equals `expected`
 * byte for byte. *updated (may be NULL) tells whether it was written. */
HAMOK_API hamok_status hamok_map_update_if(hamok_map *map, const void *key, size_t key_len,
                                           const void *value, size_t value_len,
                                           const void *expected, size_t expected_len, bool *updated,
                                           int timeout_ms);
/** Delete a key; *deleted (may be NULL) tells whether it existed. */
HAMOK_API hamok_status hamok_map_delete(hamok_map *map, const void *key, size_t key_len,
                                        bool *deleted, int timeout_ms);
/** Delete keys (each hamok_kv's key; values ignored); `deleted` (may be
 * NULL) receives the keys that existed. */
HAMOK_API hamok_status hamok_map_delete_all(hamok_map *map, const hamok_kv *keys, size_t n,
                                            hamok_kvs *deleted, int timeout_ms);
/** Remove a key and return its value in *removed (absent if it did not exist). */
HAMOK_API hamok_status hamok_map_remove(hamok_map *map, const void *key, size_t key_len,
                                        hamok_value *removed, int timeout_ms);
/** Remove keys; `removed` receives the removed pairs. */
HAMOK_API hamok_status hamok_map_remove_all(hamok_map *map, const hamok_kv *keys, size_t n,
                                            hamok_kvs *removed, int timeout_ms);
/** Remove if the current value equals `expected`; *removed false on a
 * mismatch or a missing key (an answer, never a timeout). */
HAMOK_API hamok_status hamok_map_remove_if(hamok_map *map, const void *key, size_t key_len,
                                           const void *expected, size_t expected_len, bool *removed,
                                           int timeout_ms);
/** Remove everything. */
HAMOK_API hamok_status hamok_map_clear(hamok_map *map, int timeout_ms);

/* C-string helpers (key and value without their NUL). */
HAMOK_API hamok_status hamok_map_set_str(hamok_map *map, const char *key, const char *value,
                                         hamok_value *old, int timeout_ms);
HAMOK_API hamok_status hamok_map_get_str(hamok_map *map, const char *key, hamok_value *out);
HAMOK_API hamok_status hamok_map_delete_str(hamok_map *map, const char *key, bool *deleted,
                                            int timeout_ms);

/* Writes (asynchronous) --------------------------------------------------- */

/** Asynchronous set: result->items holds (key, old value) when the key
 * existed. `timeout_ms` < 0 uses the config's request timeout. Every buffer
 * is copied before return. */
HAMOK_API void hamok_map_set_async(hamok_map *map, const void *key, size_t key_len,
                                   const void *value, size_t value_len, int timeout_ms,
                                   hamok_result_fn cb, void *ud);
/** Asynchronous delete: result->flag tells whether the key existed. */
HAMOK_API void hamok_map_delete_async(hamok_map *map, const void *key, size_t key_len,
                                      int timeout_ms, hamok_result_fn cb, void *ud);

/* Events ------------------------------------------------------------------ */

typedef enum hamok_map_event_type {
    HAMOK_MAP_INSERT = 1, /**< key, value */
    HAMOK_MAP_UPDATE = 2, /**< key, old, value */
    HAMOK_MAP_REMOVE = 3, /**< key, old */
    HAMOK_MAP_CLEAR = 4,  /**< no key */
} hamok_map_event_type;

/** Borrowed for the duration of the callback. */
typedef struct hamok_map_event {
    hamok_map_event_type type;
    uint64_t index; /**< log index of the write */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    bool has_old;
    const void *old;
    size_t old_len;
} hamok_map_event;

typedef void (*hamok_map_event_fn)(void *ud, const hamok_map_event *ev);

/** Listen to every change of the map, on every peer, in log order (loop
 * thread). HAMOK_OK, HAMOK_ERR_NOMEM, HAMOK_ERR_INVALID. */
HAMOK_API hamok_status hamok_map_on(hamok_map *map, hamok_map_event_fn fn, void *ud);
/** HAMOK_OK, HAMOK_ERR_NOT_FOUND. */
HAMOK_API hamok_status hamok_map_off(hamok_map *map, hamok_map_event_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif
