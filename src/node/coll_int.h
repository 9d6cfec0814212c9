/* Collection handles, shared by coll.c (map, record, queue, emitter) and
 * remote_map.c. Not installed. */
#ifndef HAMOK_NODE_COLL_INT_H
#define HAMOK_NODE_COLL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/map.h"
#include "node/node_int.h"

#define MAX_HANDLE_LISTENERS 32

typedef struct handle_listener {
    void (*fn)(void *ud, const void *ev);
    void *ud;
} handle_listener;

struct hamok_handle {
    hamok_node *node;
    uint8_t kind;
    uint8_t name[HAMOK_NAME_MAX];
    size_t name_len;
    pthread_mutex_t mu;
    handle_listener listeners[MAX_HANDLE_LISTENERS];
    size_t n_listeners;
    bool closed;
};

/* A map handle; a record and a remote map embed one (their writes are the
 * map's, with the handle's kind in the command). */
struct hamok_map {
    hamok_handle h;
};

/* Take / release a handle on (kind, name): HAMOK_OK, HAMOK_ERR_WRONG_KIND,
 * HAMOK_ERR_INVALID, HAMOK_ERR_NOMEM (coll.c). */
hamok_status hamok__handle_init(hamok_handle *h, hamok_node *n, uint8_t kind, const char *name);
void hamok__handle_fini(hamok_handle *h);
/* Copies for the caller (NULL `v` = nothing to do). */
hamok_status hamok__value_set(hamok_value *v, const void *data, size_t len);
hamok_status hamok__kvs_push(hamok_kvs *kvs, size_t *cap, const void *k, size_t kl, bool hv,
                             const void *v, size_t vl);
/* A key the API accepts (1..65535 bytes; empty is accepted too). */
hamok_status hamok__check_key(const void *k, size_t kl);

/* A remote map's handle saw a PENDING event: wake its worker (remote_map.c;
 * loop thread, under the handles lock). */
void hamok__remote_map_kick(hamok_handle *h);

#endif
