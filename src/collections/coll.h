/* Internals shared by the registry and the collection kinds (map.c for maps
 * and records, queue.c, emitter.c). Not for the rest of the library: it uses
 * registry.h.
 *
 * Applying a command to a collection is split in two so that an entry either
 * takes its whole effect or none (registry.h: NOMEM means "no effect"):
 *   prepare  decides, fills the result (items borrowed from the live state),
 *            and makes every allocation the change needs (per-item `prep`,
 *            capacity reservations). It changes nothing visible.
 *   commit   changes the state, emits the events; cannot fail. It consumes
 *            the prepared allocations (sets them to NULL).
 * Whatever is left in `prep` afterwards is released by the registry
 * (hamok__coll_prep_release). */
#ifndef HAMOK_COLLECTIONS_COLL_H
#define HAMOK_COLLECTIONS_COLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "collections/registry.h"
#include "util/hmap.h"

/* Queue: a ring of records (key empty, value = the item). */
typedef struct coll_queue {
    hamok_hrec **ring;
    size_t cap; /* a power of two, or 0 */
    size_t head;
    size_t n;
} coll_queue;

/* Emitter: event -> subscribers in subscription order. */
typedef struct coll_sub {
    hamok_id peer;
    uint8_t *meta; /* NULL when absent (an empty one is a 1-byte block) */
    size_t meta_len;
} coll_sub;

typedef struct coll_event {
    coll_sub *v;
    size_t n;
    size_t cap;
} coll_event;

typedef struct coll_emitter {
    hamok_hmap events; /* event name -> coll_event * (pointer bytes in the value) */
    size_t n_subs;
} coll_emitter;

/* Remote map: the requests committed and not yet resolved, oldest first
 * (v[head .. head + n)), and the map's epoch (remote.h). */
typedef struct coll_pend {
    uint64_t index;
    hamok_id client;
    uint64_t seq;
    uint8_t *cmd; /* the request's encoded command (owned) */
    size_t len;
} coll_pend;

typedef struct coll_remote {
    coll_pend *v;
    size_t head;
    size_t n;
    size_t cap;
    hamok_id epoch_client;
    uint64_t epoch_index;
    uint64_t resolved;
} coll_remote;

struct hamok_coll {
    uint8_t kind;
    const uint8_t *name; /* the key of the registry's record for this collection */
    size_t name_len;
    union {
        hamok_hmap map; /* MAP, RECORD */
        coll_queue queue;
        coll_emitter em;
        coll_remote remote;
    } u;
};

/* One item's preparation. */
typedef struct coll_prep {
    hamok_hrec *rec; /* a record to insert (map, queue; emitter: a new event) */
    coll_event *ev;  /* emitter: a new event's subscriber list */
    uint8_t *bytes;  /* emitter: a metadata copy */
    bool act;        /* the item changes something */
} coll_prep;

typedef struct coll_ctx {
    uint64_t index;
    const hamok_id *client; /* the entry's client; nil = none */
    const hamok_cmd *cmd;
    hamok_coll *coll;
    hamok_coll_event_fn sink;
    void *ud;
    hamok_cmd_result res; /* items: room for `res_cap` */
    size_t res_cap;
    coll_prep *prep; /* cmd->n_items, zeroed */
} coll_ctx;

/* Emit an event of the context's collection (fills kind, name, index). */
void hamok__coll_emit(const coll_ctx *c, hamok_coll_event *ev);
/* Free whatever is left in c->prep. */
void hamok__coll_prep_release(coll_ctx *c, size_t n);
/* Add a result item (room guaranteed by the registry). */
void hamok__coll_res_add(coll_ctx *c, const uint8_t *key, size_t key_len, bool has_value,
                         const uint8_t *value, size_t value_len);
bool hamok__bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* The keys of the command's items are distinct (every op with keys requires
 * it): HAMOK_OK, HAMOK_ERR_INVALID, HAMOK_ERR_NOMEM. */
hamok_status hamok__coll_distinct_keys(coll_ctx *c);

/* Kinds. supports: whether the kind accepts the op at all (otherwise
 * INVALID without creating anything). prepare returns HAMOK_OK (go on to
 * commit), HAMOK_ERR_NOMEM (abort the entry), or the status of a command
 * that has no effect (INVALID, TOO_BIG...). */
void hamok__map_init(hamok_coll *c);
void hamok__map_free(hamok_coll *c);
bool hamok__map_supports(uint8_t kind, uint8_t op);
hamok_status hamok__map_prepare(coll_ctx *c);
void hamok__map_commit(coll_ctx *c);

void hamok__queue_init(hamok_coll *c);
void hamok__queue_free(hamok_coll *c);
bool hamok__queue_supports(uint8_t op);
hamok_status hamok__queue_prepare(coll_ctx *c);
void hamok__queue_commit(coll_ctx *c);
/* Room for `extra` more items (no state change). */
hamok_status hamok__queue_reserve(coll_queue *q, size_t extra);
hamok_hrec *hamok__queue_at(const coll_queue *q, size_t i);
/* Append (room reserved). */
void hamok__queue_push(coll_queue *q, hamok_hrec *item);

void hamok__emitter_init(hamok_coll *c);
void hamok__emitter_free(hamok_coll *c);
bool hamok__emitter_supports(uint8_t op);
hamok_status hamok__emitter_prepare(coll_ctx *c);
void hamok__emitter_commit(coll_ctx *c);
/* Remove every subscription of a peer for which keep(peer) is false; events
 * SUB_REMOVED through c (c->cmd may be NULL). Allocates nothing. */
void hamok__emitter_retain(coll_ctx *c, bool (*keep)(void *ud, const hamok_id *peer),
                           void *keep_ud);
void hamok__event_free(coll_event *ev);
coll_event *hamok__event_of(const hamok_hrec *rec);

void hamok__remote_init(hamok_coll *c);
void hamok__remote_free(hamok_coll *c);
/* Room for `extra` more pending requests (no visible change). */
hamok_status hamok__remote_reserve(coll_remote *rm, size_t extra);
/* Append (room reserved; takes `p->cmd`). */
void hamok__remote_push(coll_remote *rm, const coll_pend *p);
/* Drop the oldest pending request (frees its command). */
void hamok__remote_pop(coll_remote *rm);
/* The oldest pending request, or NULL. */
coll_pend *hamok__remote_head(coll_remote *rm);
/* Resolve `req` with the outcome `obs`: fill c->res (room for
 * req->n_items; items borrow from req and obs) and, when `emit`, emit the
 * events through c (index = the request's). An outcome whose observations
 * do not match the request gives status HAMOK_ERR_CODEC. */
void hamok__remote_resolve(coll_ctx *c, const hamok_cmd *req, const hamok_cmd_result *obs,
                           bool emit);

#endif
