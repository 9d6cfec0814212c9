/* The replicated record: an object of named fields (field name -> byte
 * string value), the same on every peer. Like a map whose keys are field
 * names, plus atomic multi-field operations (insert_instance,
 * update_instance_if) and a consistent copy of the whole record.
 *
 * Threads, statuses and ownership as in hamok/map.h. */
#ifndef HAMOK_RECORD_H
#define HAMOK_RECORD_H

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

typedef struct hamok_record hamok_record;

HAMOK_API hamok_status hamok_record_open(hamok_node *node, const char *name, hamok_record **out);
HAMOK_API void hamok_record_close(hamok_record **record);

/** Local read of one field (HAMOK_ERR_NOT_FOUND if absent). */
HAMOK_API hamok_status hamok_record_get(hamok_record *r, const char *field, hamok_value *out);
/** A consistent copy of every field (key = field name). */
HAMOK_API hamok_status hamok_record_instance(hamok_record *r, hamok_kvs *out);

/** Set a field; `old` (may be NULL) receives the previous value. */
HAMOK_API hamok_status hamok_record_set(hamok_record *r, const char *field, const void *value,
                                        size_t len, hamok_value *old, int timeout_ms);
/** Set a field only if absent; `existing` receives the value that stays. */
HAMOK_API hamok_status hamok_record_insert(hamok_record *r, const char *field, const void *value,
                                           size_t len, hamok_value *existing, int timeout_ms);
/** Insert every absent field at once; `existing` receives the fields that
 * already existed (and were kept). */
HAMOK_API hamok_status hamok_record_insert_instance(hamok_record *r, const hamok_kv *fields,
                                                    size_t n, hamok_kvs *existing, int timeout_ms);
/** Compare and set one field. */
HAMOK_API hamok_status hamok_record_update_if(hamok_record *r, const char *field, const void *value,
                                              size_t len, const void *expected, size_t expected_len,
                                              bool *updated, int timeout_ms);
/** Atomically: if every field of `expected` has exactly that value, write
 * every field of `values`. *updated tells whether it did (an empty
 * expectation always holds). */
HAMOK_API hamok_status hamok_record_update_instance_if(hamok_record *r, const hamok_kv *values,
                                                       size_t n_values, const hamok_kv *expected,
                                                       size_t n_expected, bool *updated,
                                                       int timeout_ms);
/** Delete a field; *deleted tells whether it existed. */
HAMOK_API hamok_status hamok_record_delete(hamok_record *r, const char *field, bool *deleted,
                                           int timeout_ms);
/** Remove every field. */
HAMOK_API hamok_status hamok_record_clear(hamok_record *r, int timeout_ms);

/** Events: the map events (insert/update/remove per field, clear). */
HAMOK_API hamok_status hamok_record_on(hamok_record *r, hamok_map_event_fn fn, void *ud);
HAMOK_API hamok_status hamok_record_off(hamok_record *r, hamok_map_event_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif
