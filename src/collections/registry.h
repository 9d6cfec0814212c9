/* The replicated state machine of a node: every collection (map, record,
 * queue, emitter subscriptions, remote map requests) keyed by (kind, name), plus the exactly-once
 * session table. Every committed COMMAND entry is applied here, on every peer,
 * in log order (DESIGN.md §1 decision 7). Sans-I/O: no clock, thread, socket.
 *
 * A collection is created by the first command that names it; a command that
 * names an existing collection of another kind does nothing and answers
 * HAMOK_ERR_WRONG_KIND. Names are one namespace across kinds.
 *
 * Semantics per op (result = hamok_cmd_result, encoded by
 * hamok__cmd_result_encode; "items" below are result items; a value of
 * length 0 is a value, never "absent"):
 *
 * MAP and RECORD (a record is a map of field name -> value):
 *   SET        items (k, v)+: write all. Result items (k, old) for each key
 *              that existed. Events: INSERT (new key) / UPDATE (k, old, new).
 *   INSERT     items (k, v)+: write keys that are absent. Result items
 *              (k, existing) for keys that existed (not overwritten). Events:
 *              INSERT per written key.
 *   UPDATE_IF  MAP: exactly one item (k, v, expected): if k exists with a
 *              value byte-equal to expected, write v; flag = written.
 *              RECORD: items are (field, v?, expected?): if every item with
 *              an expected has its field present and equal, write every item
 *              with a value; flag = written (no expectations = always true).
 *              Events as for SET on the written keys.
 *   DELETE     items (k)+: remove present keys. Result items (k) of deleted
 *              keys; flag = at least one deleted. Events: REMOVE (k, old).
 *   REMOVE     items (k)+: same as DELETE, result items (k, removed value).
 *   REMOVE_IF  MAP: exactly one item (k, expected): remove if equal; flag =
 *              removed (false on mismatch — never silence, bug of the
 *              original). Event REMOVE.
 *   CLEAR      remove everything; event CLEAR (one, no per-key events).
 * QUEUE:
 *   PUSH       items (v)+ (keys ignored): append in order; events ADD per
 *              item, then NOT_EMPTY once if the queue was empty.
 *   POP        arg = how many (0 = 1): take up to that many from the head;
 *              result items (v) in order (none when empty); events REMOVE per
 *              item, then EMPTY once if it became empty. The log serializes
 *              pops: each item goes to exactly one popper.
 *   CLEAR      drop all items; EMPTY if it was not empty.
 * EMITTER (replicated subscription table: event -> peer -> metadata?):
 *   the subscriber is the entry's client peer id.
 *   SUBSCRIBE  items (event, metadata?)+: add the client to each event
 *              (metadata optional; an existing subscription keeps its
 *              metadata). Events SUB_ADDED (event, peer, metadata).
 *   UNSUBSCRIBE items (event)+: remove the client from those events only
 *              (not from every event: bug A4 of the original). SUB_REMOVED.
 *   UPDATE_METADATA one item (event, metadata?, expected?): if the client is
 *              subscribed and (no expected, or current metadata equal to
 *              expected; an absent current metadata equals an absent
 *              expected) set it; flag = updated. SUB_UPDATED (old, new).
 *   CLEANUP    items (key = 16-byte peer id)+: remove those peers from every
 *              event; result items (peer id) of peers that had any. SUB_REMOVED.
 * REMOTE_MAP (collections/remote.h): the data lives in an external store
 *   that only the leader writes to (src/node/remote_map.c). Here every peer
 *   queues the committed write requests (SET, INSERT, UPDATE_IF, DELETE,
 *   REMOVE, CLEAR) and resolves them, oldest first, when the leader's
 *   OUTCOME of each is applied: the proposer's answer is deferred until then
 *   (apply appends no result for a queued request; event PENDING), and the
 *   resolution emits the events and an ANSWER event carrying the
 *   proposer's result. The OUTCOME entry itself answers flag = it resolved
 *   a request, and is not recorded in the session table (a duplicate or
 *   stale outcome resolves nothing, by the remote map's own rule).
 * An op a kind does not support, a wrong item count, or a missing required
 * part (e.g. SET item without value) answers HAMOK_ERR_INVALID, no effect.
 *
 * Precisions (decided with the implementation):
 * - The keys of one command must be distinct (map/record keys, emitter
 *   events, CLEANUP peers): duplicates answer HAMOK_ERR_INVALID. Every
 *   result is then a function of the state before the command.
 * - Parts an op does not use are ignored (a DELETE item's value, a PUSH
 *   item's key); arg is ignored except by POP and UPDATE_METADATA. CLEAR and
 *   POP take no items; the other ops at least one.
 * - A command that answers anything but HAMOK_OK changes nothing, and does
 *   not create its collection; any other command creates it (an emitter
 *   created by an UNSUBSCRIBE, a queue by a POP of nothing).
 * - flag: SET / INSERT: some key existed (result items not empty); DELETE /
 *   REMOVE / UNSUBSCRIBE / CLEANUP: something was removed; SUBSCRIBE:
 *   something was added; CLEAR: it was not empty; POP: an item was taken.
 * - The result is at most HAMOK_CMD_RESULT_MAX bytes (command.h): a command
 *   whose result would be larger (e.g. REMOVE of many big values) answers
 *   HAMOK_ERR_TOO_BIG and has no effect. POP takes at most 65,536 items and
 *   stops early, short of `arg`, before its result would exceed the limit.
 * - QUEUE CLEAR emits CLEAR, then EMPTY if the queue was not empty.
 * - SUBSCRIBE, UNSUBSCRIBE, UPDATE_METADATA need the entry's client (a nil
 *   client answers HAMOK_ERR_INVALID). UPDATE_METADATA with no expected value
 *   updates unconditionally, unless bit 0 of arg is set: then "expected
 *   absent", i.e. it updates only if the current metadata is absent.
 * - An emitter event with no subscriber left is dropped (iteration order of
 *   events is the order in which they got their first subscriber).
 *
 * Thread: the node's loop thread mutates (apply, restore); readers on other
 * threads must be excluded by the caller (the node holds a rwlock).
 * Pointers returned by lookups/iteration are borrowed until the next mutation. */
#ifndef HAMOK_COLLECTIONS_REGISTRY_H
#define HAMOK_COLLECTIONS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/command.h"
#include "codec/msg.h"
#include "hamok/status.h"
#include "util/buf.h"
#include "util/id.h"

typedef struct hamok_registry hamok_registry;
typedef struct hamok_coll hamok_coll;

typedef enum hamok_coll_event_type {
    HAMOK_CEV_INSERT = 1,       /* map/record: key, value */
    HAMOK_CEV_UPDATE = 2,       /* map/record: key, old, value */
    HAMOK_CEV_REMOVE = 3,       /* map/record: key, old; queue: value = the item */
    HAMOK_CEV_CLEAR = 4,        /* map/record/queue */
    HAMOK_CEV_ADD = 5,          /* queue: value = the item */
    HAMOK_CEV_EMPTY = 6,        /* queue */
    HAMOK_CEV_NOT_EMPTY = 7,    /* queue */
    HAMOK_CEV_SUB_ADDED = 8,    /* emitter: key = event, peer, value = metadata (has_value) */
    HAMOK_CEV_SUB_UPDATED = 9,  /* emitter: key = event, peer, old, value */
    HAMOK_CEV_SUB_REMOVED = 10, /* emitter: key = event, peer, old = metadata */
    /* Remote map, for the node (no public event): */
    HAMOK_CEV_PENDING = 11, /* a request was queued (index = its log index) */
    HAMOK_CEV_ANSWER = 12   /* a queued request was resolved: peer = its client,
                             * seq, value = the encoded result for it */
} hamok_coll_event_type;

/* Borrowed for the duration of the sink call. */
typedef struct hamok_coll_event {
    uint8_t type; /* hamok_coll_event_type */
    uint8_t kind; /* hamok_kind */
    const uint8_t *name;
    size_t name_len;
    uint64_t index; /* log index of the entry that caused it (0 on restore) */
    const uint8_t *key;
    size_t key_len;
    bool has_value;
    const uint8_t *value;
    size_t value_len;
    bool has_old;
    const uint8_t *old;
    size_t old_len;
    hamok_id peer; /* emitter events; ANSWER: the client */
    uint64_t seq;  /* ANSWER: the client's sequence number */
} hamok_coll_event;

/* Events are delivered through this sink during apply (NULL sink = none). */
typedef void (*hamok_coll_event_fn)(void *ud, const hamok_coll_event *ev);

/* `session_window`: see hamok__sessions_new (0 = default). NOMEM, INVALID. */
hamok_status hamok__registry_new(hamok_registry **out, uint32_t session_window);
void hamok__registry_destroy(hamok_registry **r); /* NULL-safe; sets *r = NULL */

/* Apply a committed entry at `index`. COMMAND entries: decode the command,
 * consult the session table (entry->client, entry->seq): a duplicate gets the
 * recorded result and changes nothing, an expired one gets a result with
 * status HAMOK_ERR_EXPIRED; otherwise apply, emit events, record the result.
 * `result` (may be NULL) receives the encoded hamok_cmd_result (appended).
 * An undecodable command answers HAMOK_ERR_CODEC in the result; it is not a
 * failure of apply (every peer decides the same). NOOP entries: nothing.
 * CONFIG entries: decode the members, expire sessions of departed peers (a
 * departed peer's commands numbered at or below its last one answer
 * HAMOK_ERR_EXPIRED from then on: session.h) and remove their emitter
 * subscriptions (events SUB_REMOVED).
 * Returns HAMOK_OK, or HAMOK_ERR_NOMEM (the entry had no effect; the caller
 * cannot continue safely and must stop the node), or HAMOK_ERR_INVALID when
 * `index` is not above hamok__registry_applied() (or entry is NULL): a bug of
 * the caller, nothing happens. Events are delivered only for an entry that
 * takes effect: NOMEM comes before any event. */
hamok_status hamok__registry_apply(hamok_registry *r, uint64_t index, const hamok_entry *entry,
                                   hamok_buf *result, hamok_coll_event_fn sink, void *ud);

/* Index of the last entry applied (0 initially, or the restored snapshot's). */
uint64_t hamok__registry_applied(const hamok_registry *r);

/* Snapshot: write the whole state (every collection, the session table and
 * the applied index) through `write`, in pieces (never one giant buffer),
 * as a versioned, checksummed binary form. `write` returns HAMOK_OK or an
 * error that aborts the snapshot and is returned. */
typedef hamok_status (*hamok_write_fn)(void *ud, const void *data, size_t len);
hamok_status hamok__registry_snapshot(const hamok_registry *r, hamok_write_fn write, void *ud);

/* Replace the whole state with a snapshot. Every length checked; anything
 * malformed returns HAMOK_ERR_CORRUPT and leaves the registry unchanged;
 * NOMEM likewise. No events (the node reports a "restored" event itself). */
hamok_status hamok__registry_restore(hamok_registry *r, const uint8_t *data, size_t len);

/* Lookup: HAMOK_OK (*out set), HAMOK_ERR_NOT_FOUND (no such name yet),
 * HAMOK_ERR_WRONG_KIND (the name belongs to another kind). */
hamok_status hamok__registry_lookup(const hamok_registry *r, uint8_t kind, const uint8_t *name,
                                    size_t name_len, const hamok_coll **out);

uint8_t hamok__coll_kind(const hamok_coll *c);
/* Map/record: keys; queue: items; emitter: (event, peer) subscriptions;
 * remote map: pending requests. */
size_t hamok__coll_size(const hamok_coll *c);

/* Map/record: the value of `key`; false if absent. */
bool hamok__coll_get(const hamok_coll *c, const uint8_t *key, size_t key_len, const uint8_t **value,
                     size_t *value_len);

/* Iteration in a stable order (map/record: insertion order of keys; queue:
 * head to tail; emitter: by event, then subscription order). Start with
 * *cursor = 0; returns false at the end. Fields of `out` that do not apply
 * are zero. */
typedef struct hamok_coll_view {
    const uint8_t *key; /* map/record key; emitter event */
    size_t key_len;
    bool has_value;
    const uint8_t *value; /* map/record value; queue item; emitter metadata */
    size_t value_len;
    hamok_id peer; /* emitter subscriber */
} hamok_coll_view;
bool hamok__coll_next(const hamok_coll *c, size_t *cursor, hamok_coll_view *out);

/* Queue: the head item; false if empty. */
bool hamok__coll_peek(const hamok_coll *c, const uint8_t **value, size_t *value_len);

/* Emitter: is `peer` subscribed to `event` (metadata out, may be NULL)? */
bool hamok__coll_subscribed(const hamok_coll *c, const uint8_t *event, size_t event_len,
                            const hamok_id *peer, bool *has_meta, const uint8_t **meta,
                            size_t *meta_len);

/* Emitter: the subscribers of one event in subscription order (view: key =
 * event, peer, metadata). Start with *cursor = 0; false at the end (or when
 * no one is subscribed, or c is not an emitter). */
bool hamok__coll_next_subscriber(const hamok_coll *c, const uint8_t *event, size_t event_len,
                                 size_t *cursor, hamok_coll_view *out);

/* The collection's name (borrowed like the collection). */
const uint8_t *hamok__coll_name(const hamok_coll *c, size_t *len);

/* Every collection, in creation order: start with *cursor = 0; false at the
 * end. Number of collections. */
bool hamok__registry_next_coll(const hamok_registry *r, size_t *cursor, const hamok_coll **out);
size_t hamok__registry_count(const hamok_registry *r);

#endif
