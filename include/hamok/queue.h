/* The replicated queue: a FIFO of byte strings, the same on every peer.
 * Every pushed item is popped by exactly one popper across the cluster (pops
 * are ordered by the log). Reads (size, peek, foreach) are local.
 *
 * Threads, statuses and ownership as in hamok/map.h. */
#ifndef HAMOK_QUEUE_H
#define HAMOK_QUEUE_H

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

typedef struct hamok_queue hamok_queue;

/** Open the queue `name`. HAMOK_ERR_WRONG_KIND, HAMOK_ERR_INVALID, HAMOK_ERR_NOMEM. */
HAMOK_API hamok_status hamok_queue_open(hamok_node *node, const char *name, hamok_queue **out);
/** NULL-safe; sets *queue = NULL. Not from within one of its own listeners. */
HAMOK_API void hamok_queue_close(hamok_queue **queue);

/** Append one item. */
HAMOK_API hamok_status hamok_queue_push(hamok_queue *q, const void *item, size_t len,
                                        int timeout_ms);
/** Append items in order (one log entry): `items[i].value` is each item
 * (keys ignored). */
HAMOK_API hamok_status hamok_queue_push_all(hamok_queue *q, const hamok_kv *items, size_t n,
                                            int timeout_ms);
/** Take the head item into *out (absent when the queue was empty). The item
 * is given to this caller only. */
HAMOK_API hamok_status hamok_queue_pop(hamok_queue *q, hamok_value *out, int timeout_ms);
/** Drop every item. */
HAMOK_API hamok_status hamok_queue_clear(hamok_queue *q, int timeout_ms);

/** Local reads: the head item (HAMOK_ERR_NOT_FOUND when empty), the number of
 * items, every item head to tail. */
HAMOK_API hamok_status hamok_queue_peek(hamok_queue *q, hamok_value *out);
HAMOK_API size_t hamok_queue_size(hamok_queue *q);
HAMOK_API hamok_status hamok_queue_foreach(hamok_queue *q,
                                           bool (*fn)(void *ud, const void *item, size_t len),
                                           void *ud);

typedef enum hamok_queue_event_type {
    HAMOK_QUEUE_ADD = 1,       /**< item pushed */
    HAMOK_QUEUE_REMOVE = 2,    /**< item popped */
    HAMOK_QUEUE_EMPTY = 3,     /**< the queue became empty */
    HAMOK_QUEUE_NOT_EMPTY = 4, /**< the queue stopped being empty */
    HAMOK_QUEUE_CLEAR = 5,
} hamok_queue_event_type;

typedef struct hamok_queue_event {
    hamok_queue_event_type type;
    uint64_t index;
    const void *item; /**< ADD, REMOVE */
    size_t len;
} hamok_queue_event;

typedef void (*hamok_queue_event_fn)(void *ud, const hamok_queue_event *ev);
HAMOK_API hamok_status hamok_queue_on(hamok_queue *q, hamok_queue_event_fn fn, void *ud);
HAMOK_API hamok_status hamok_queue_off(hamok_queue *q, hamok_queue_event_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif
