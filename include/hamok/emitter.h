/* The distributed emitter (pub/sub). Which peer listens to which event is
 * replicated state (a subscription table agreed through the log, with
 * optional metadata per subscription); the events themselves travel
 * directly from the publisher to the subscribed peers, not through the log.
 *
 * - subscribe() registers a local listener; the first local listener of an
 *   event subscribes this peer (a log entry), later ones are local only.
 * - unsubscribe() removes a listener; removing the last one of an event
 *   unsubscribes this peer from that event only.
 * - publish() sends the event to every subscribed peer and waits for their
 *   acknowledgements until the timeout; it returns the peers that delivered.
 *   A peer that does not answer does not make it fail: it is simply missing
 *   from the delivered list.
 * - notify() is publish without waiting (fire and forget).
 * - Subscriptions of peers that leave the cluster are removed when the
 *   configuration without them is committed, on every peer alike.
 *
 * Threads, statuses and ownership as in hamok/map.h; listeners and events
 * fire on the loop thread. */
#ifndef HAMOK_EMITTER_H
#define HAMOK_EMITTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/export.h"
#include "hamok/id.h"
#include "hamok/map.h"
#include "hamok/node.h"
#include "hamok/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hamok_emitter hamok_emitter;

/** A listener: `event` and `payload` borrowed for the call; `from` is the
 * publishing peer. */
typedef void (*hamok_emitter_fn)(void *ud, const char *event, const void *payload, size_t len,
                                 const hamok_id *from);

HAMOK_API hamok_status hamok_emitter_open(hamok_node *node, const char *name, hamok_emitter **out);
/** Closes the handle: its local listeners stop (the subscriptions stay in the
 * cluster until unsubscribed or this peer leaves). */
HAMOK_API void hamok_emitter_close(hamok_emitter **emitter);

/** Listen to `event`. `meta` (NULL = none) is the subscription's metadata,
 * used when this is the event's first local listener. */
HAMOK_API hamok_status hamok_emitter_subscribe(hamok_emitter *e, const char *event,
                                               hamok_emitter_fn fn, void *ud, const void *meta,
                                               size_t meta_len, int timeout_ms);
/** Stop listening (the same fn and ud). HAMOK_ERR_NOT_FOUND if not listening. */
HAMOK_API hamok_status hamok_emitter_unsubscribe(hamok_emitter *e, const char *event,
                                                 hamok_emitter_fn fn, void *ud, int timeout_ms);
/** Compare and set this peer's metadata on `event` (expected NULL = set
 * unconditionally). *updated tells whether it changed. */
HAMOK_API hamok_status hamok_emitter_update_metadata(hamok_emitter *e, const char *event,
                                                     const void *meta, size_t meta_len,
                                                     const void *expected, size_t expected_len,
                                                     bool *updated, int timeout_ms);

/** Deliver `payload` to every subscriber of `event` and wait up to
 * timeout_ms for their acknowledgements. `delivered` (may be NULL) receives
 * up to `cap` peer ids that delivered (this peer included when it listens);
 * *n_delivered (may be NULL) their number, *n_missing (may be NULL) the
 * subscribers that did not answer in time. HAMOK_OK even when some are
 * missing or nobody is subscribed. */
HAMOK_API hamok_status hamok_emitter_publish(hamok_emitter *e, const char *event,
                                             const void *payload, size_t len, hamok_id *delivered,
                                             size_t cap, size_t *n_delivered, size_t *n_missing,
                                             int timeout_ms);
/** Fire and forget: true if the event had subscribers (sent to them). */
HAMOK_API bool hamok_emitter_notify(hamok_emitter *e, const char *event, const void *payload,
                                    size_t len);

/** Local read of the subscription table: the peers subscribed to `event`
 * (up to cap written; returns how many there are). */
HAMOK_API size_t hamok_emitter_subscribers(hamok_emitter *e, const char *event, hamok_id *out,
                                           size_t cap);
/** Is `peer` (NULL = this peer) subscribed to `event`? */
HAMOK_API bool hamok_emitter_has_subscriber(hamok_emitter *e, const char *event,
                                            const hamok_id *peer);

typedef enum hamok_sub_event_type {
    HAMOK_SUB_ADDED = 1,
    HAMOK_SUB_UPDATED = 2,
    HAMOK_SUB_REMOVED = 3,
} hamok_sub_event_type;

typedef struct hamok_sub_event {
    hamok_sub_event_type type;
    const void *event;
    size_t event_len;
    hamok_id peer;
    bool has_meta;
    const void *meta;
    size_t meta_len;
    bool has_old;
    const void *old;
    size_t old_len;
} hamok_sub_event;

typedef void (*hamok_sub_event_fn)(void *ud, const hamok_sub_event *ev);

/** Local read of the whole subscription table, by event then subscription
 * order: `fn` gets each subscription as a hamok_sub_event of type
 * HAMOK_SUB_ADDED (no old metadata; pointers borrowed for the call) and
 * returns false to stop. Runs under the node's read lock: `fn` must not call
 * Hamok writes. HAMOK_OK, HAMOK_ERR_INVALID. Thread: any. */
HAMOK_API hamok_status hamok_emitter_foreach(hamok_emitter *e,
                                             bool (*fn)(void *ud, const hamok_sub_event *sub),
                                             void *ud);
/** Changes of the subscription table (on every peer, in log order). */
HAMOK_API hamok_status hamok_emitter_on_subscriptions(hamok_emitter *e, hamok_sub_event_fn fn,
                                                      void *ud);

#ifdef __cplusplus
}
#endif
#endif
