/* The remote map's replicated part (sans-I/O): what every peer agrees on
 * about a map whose data lives in an external store (DESIGN.md §1 decision
 * 7: the only collection whose data is not on every peer).
 *
 * Every peer holds, per remote map, the FIFO of write requests that are
 * committed but not yet resolved ("pending"), an epoch that names the map's
 * lineage (the client id and log index of the command that created it) and
 * the index of the last resolved request. Only the leader executes requests
 * against the store, one batch at a time, in commit order (src/node/
 * remote_map.c); it publishes each request's OUTCOME through the log, and
 * every peer derives the requester's result and the events from the request
 * and that outcome with the rules below, in log order.
 *
 * Requests (kind REMOTE_MAP, client and seq from the entry):
 *   SET        items (k, v)+            write every key
 *   INSERT     items (k, v)+            write the keys the store did not hold
 *   UPDATE_IF  one item (k, v, expected) write if the store held exactly
 *                                        `expected` (an empty value is a value)
 *   DELETE     items (k)+               delete the keys the store held
 *   REMOVE     items (k)+               same, the result carries the values
 *   CLEAR      no items                 empty the store's map
 * Keys of one request are distinct. Anything else answers HAMOK_ERR_INVALID
 * at once (no effect, nothing queued). A valid request is queued: the
 * proposer's answer is deferred until its outcome is applied.
 *
 * OUTCOME (kind REMOTE_MAP, op OUTCOME, the map's name): arg = the log index
 * of the request it resolves; exactly one item whose value is an encoded
 * result (command.h, hamok_cmd_result): its status is the execution's
 * (HAMOK_OK, HAMOK_ERR_STORE, HAMOK_ERR_TOO_BIG...), and when it is HAMOK_OK
 * its items are the observations: one per request item, in order, key
 * empty, value = what the store held for that key before the request (nil =
 * absent); none for CLEAR. An OUTCOME resolves only the oldest pending
 * request, and only if arg names it: any other is stale (a duplicate, or a
 * deposed leader's) and does nothing. Observations that do not match the
 * request resolve it with HAMOK_ERR_CODEC (every peer decides the same).
 *
 * Result of a resolved request (the proposer's answer) and events (index =
 * the request's log index), for an outcome with status HAMOK_OK:
 *   SET        items (k, old) of keys that existed; flag = some existed.
 *              INSERT (k, v) / UPDATE (k, old, v) per key.
 *   INSERT     items (k, existing) of keys that existed (not written); flag.
 *              INSERT (k, v) per written key.
 *   UPDATE_IF  flag = written. UPDATE (k, old, v) if written.
 *   DELETE     items (k) of keys that existed; flag. REMOVE (k, old).
 *   REMOVE     items (k, old) of keys that existed; flag. REMOVE (k, old).
 *   CLEAR      flag false (the store does not say what it held). CLEAR.
 * Another status: the result carries it, no events. */
#ifndef HAMOK_COLLECTIONS_REMOTE_H
#define HAMOK_COLLECTIONS_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/command.h"
#include "collections/registry.h"
#include "hamok/status.h"
#include "util/buf.h"
#include "util/id.h"

/* A request is valid (op, item shapes, distinct keys): HAMOK_OK,
 * HAMOK_ERR_INVALID, HAMOK_ERR_NOMEM. cmd->kind is not checked. */
hamok_status hamok__remote_check(const hamok_cmd *req);

/* What request item i does to the store, given what it held for the key. */
typedef enum hamok_remote_effect {
    HAMOK_REMOTE_KEEP = 0,
    HAMOK_REMOTE_WRITE = 1,  /* set the key to the item's value */
    HAMOK_REMOTE_DELETE = 2, /* delete the key */
} hamok_remote_effect;
hamok_remote_effect hamok__remote_effect(const hamok_cmd *req, size_t i, bool present,
                                         const uint8_t *old, size_t old_len);

/* Append an OUTCOME command for the request at `index` of map `name`:
 * status and, for HAMOK_OK, the observations (items: value = old or absent;
 * keys and expected values are not encoded). HAMOK_OK, HAMOK_ERR_NOMEM,
 * HAMOK_ERR_TOO_BIG, HAMOK_ERR_INVALID. */
hamok_status hamok__remote_outcome_encode(const uint8_t *name, size_t name_len, uint64_t index,
                                          hamok_status status, const hamok_cmd_item *obs, size_t n,
                                          hamok_buf *out);

/* A remote map collection (kind REMOTE_MAP): its pending requests, oldest
 * first (i < hamok__coll_remote_pending(c)); the command bytes are borrowed
 * like the collection. */
size_t hamok__coll_remote_pending(const hamok_coll *c);
bool hamok__coll_remote_at(const hamok_coll *c, size_t i, uint64_t *index, const uint8_t **cmd,
                           size_t *len);
/* The epoch: client and log index of the command that created the map. */
void hamok__coll_remote_epoch(const hamok_coll *c, hamok_id *client, uint64_t *index);
/* Log index of the last resolved request (0 = none). */
uint64_t hamok__coll_remote_resolved(const hamok_coll *c);

#endif
