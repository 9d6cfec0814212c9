/* The in-process transport (include/hamok/mem.h).
 *
 * Without delay, send() hands the frame straight to the receiver's sink (a
 * copy into its inbox) on the sender's thread: the cheapest path, FIFO per
 * pair. With a delay range, frames wait in a queue ordered by due time that
 * the hub's thread delivers. Drops and cut links apply at send time.
 *
 * Layering: this file sees only the public headers (hamok/transport.h). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/mem.h"

#define MAX_CUTS 1024

typedef struct mem_transport mem_transport;

typedef struct delayed {
    struct delayed *next;
    uint64_t due_ms;
    hamok_id from;
    hamok_id to;
    bool broadcast;
    size_t len;
    uint8_t data[];
} delayed;

typedef struct cut {
    hamok_id a;
    hamok_id b;
} cut;

struct hamok_mem_hub {
    pthread_rwlock_t lock; /* peers: read to deliver, write to (un)register */
    mem_transport **peers;
    size_t n_peers;
    size_t cap_peers;
    size_t n_transports; /* created and not destroyed */

    pthread_mutex_t mu; /* faults, delay queue, prng */
    pthread_cond_t cv;
    uint32_t drop_permille;
    uint32_t delay_min;
    uint32_t delay_max;
    cut cuts[MAX_CUTS];
    size_t n_cuts;
    hamok_id isolated[MAX_CUTS];
    size_t n_isolated;
    uint64_t prng;
    delayed *queue; /* sorted by due_ms */
    bool stopping;
    pthread_t thread;
    uint64_t dropped;
};

struct mem_transport {
    hamok_transport base; /* first: a hamok_transport * is a mem_transport * */
    hamok_mem_hub *hub;
    hamok_transport_sink *sink;
    bool registered;
};

static bool id_eq(const hamok_id *a, const hamok_id *b)
{
    return memcmp(a->b, b->b, HAMOK_ID_LEN) == 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t next_rand(hamok_mem_hub *h)
{
    /* splitmix64: fault injection needs no more */
    uint64_t z = (h->prng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Under h->mu. */
static bool link_cut(const hamok_mem_hub *h, const hamok_id *a, const hamok_id *b)
{
    for (size_t i = 0; i < h->n_isolated; i++) {
        if (id_eq(&h->isolated[i], a) || id_eq(&h->isolated[i], b)) {
            return true;
        }
    }
    for (size_t i = 0; i < h->n_cuts; i++) {
        if ((id_eq(&h->cuts[i].a, a) && id_eq(&h->cuts[i].b, b)) ||
            (id_eq(&h->cuts[i].a, b) && id_eq(&h->cuts[i].b, a))) {
            return true;
        }
    }
    return false;
}

/* Under a read lock of h->lock. */
static void deliver_now(hamok_mem_hub *h, const hamok_id *from, const hamok_id *to, bool broadcast,
                        const void *data, size_t len)
{
    bool found = false;
    for (size_t i = 0; i < h->n_peers; i++) {
        mem_transport *p = h->peers[i];
        if (id_eq(&p->base.self, from)) {
            continue;
        }
        if (!broadcast && !id_eq(&p->base.self, to)) {
            continue;
        }
        pthread_mutex_lock(&h->mu);
        bool cutoff = link_cut(h, from, &p->base.self);
        if (cutoff) {
            h->dropped++;
        }
        pthread_mutex_unlock(&h->mu);
        if (!cutoff) {
            p->sink->deliver(p->sink, data, len);
        }
        found = true;
        if (!broadcast) {
            break;
        }
    }
    if (!found && !broadcast) {
        pthread_mutex_lock(&h->mu);
        h->dropped++;
        pthread_mutex_unlock(&h->mu);
    }
}

static void *hub_main(void *arg)
{
    hamok_mem_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        if (h->queue == NULL) {
            pthread_cond_wait(&h->cv, &h->mu);
            continue;
        }
        uint64_t now = now_ms();
        if (h->queue->due_ms > now) {
            uint64_t wait = h->queue->due_ms - now;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000u);
            ts.tv_nsec += (long)((wait % 1000u) * 1000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&h->cv, &h->mu, &ts);
            continue;
        }
        delayed *d = h->queue;
        h->queue = d->next;
        pthread_mutex_unlock(&h->mu);
        pthread_rwlock_rdlock(&h->lock);
        deliver_now(h, &d->from, &d->to, d->broadcast, d->data, d->len);
        pthread_rwlock_unlock(&h->lock);
        free(d);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

hamok_status hamok_mem_hub_new(hamok_mem_hub **out)
{
    if (out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_mem_hub *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    pthread_rwlock_init(&h->lock, NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->prng = now_ms() ^ (uint64_t)(uintptr_t)h;
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        pthread_rwlock_destroy(&h->lock);
        pthread_mutex_destroy(&h->mu);
        pthread_cond_destroy(&h->cv);
        free(h);
        return HAMOK_ERR_STATE;
    }
    *out = h;
    return HAMOK_OK;
}

hamok_status hamok_mem_hub_destroy(hamok_mem_hub **hp)
{
    if (hp == NULL || *hp == NULL) {
        return HAMOK_OK;
    }
    hamok_mem_hub *h = *hp;
    pthread_rwlock_rdlock(&h->lock);
    size_t alive = h->n_transports;
    pthread_rwlock_unlock(&h->lock);
    if (alive > 0) {
        return HAMOK_ERR_BUSY;
    }
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    while (h->queue != NULL) {
        delayed *d = h->queue;
        h->queue = d->next;
        free(d);
    }
    free(h->peers);
    pthread_rwlock_destroy(&h->lock);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    *hp = NULL;
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------ */
/* The transport ops */

static hamok_status mem_start(hamok_transport *t, hamok_transport_sink *sink)
{
    mem_transport *m = (mem_transport *)t;
    hamok_mem_hub *h = m->hub;
    pthread_rwlock_wrlock(&h->lock);
    for (size_t i = 0; i < h->n_peers; i++) {
        if (id_eq(&h->peers[i]->base.self, &t->self)) {
            pthread_rwlock_unlock(&h->lock);
            return HAMOK_ERR_INVALID; /* two peers with one id on one hub */
        }
    }
    if (h->n_peers == h->cap_peers) {
        size_t nc = h->cap_peers ? h->cap_peers * 2 : 8;
        mem_transport **p = realloc(h->peers, nc * sizeof *p);
        if (p == NULL) {
            pthread_rwlock_unlock(&h->lock);
            return HAMOK_ERR_NOMEM;
        }
        h->peers = p;
        h->cap_peers = nc;
    }
    m->sink = sink;
    h->peers[h->n_peers++] = m;
    m->registered = true;
    pthread_rwlock_unlock(&h->lock);
    return HAMOK_OK;
}

static hamok_status mem_send(hamok_transport *t, const hamok_id *to, const void *bytes, size_t len)
{
    mem_transport *m = (mem_transport *)t;
    hamok_mem_hub *h = m->hub;
    if (len > HAMOK_TRANSPORT_MAX_FRAME) {
        return HAMOK_ERR_TOO_BIG;
    }
    pthread_mutex_lock(&h->mu);
    if (h->drop_permille > 0 && next_rand(h) % 1000u < h->drop_permille) {
        h->dropped++;
        pthread_mutex_unlock(&h->mu);
        return HAMOK_OK;
    }
    if (h->delay_max > 0) {
        uint32_t span = h->delay_max - h->delay_min + 1u;
        uint64_t delay = h->delay_min + next_rand(h) % span;
        delayed *d = malloc(sizeof *d + len);
        if (d == NULL) {
            pthread_mutex_unlock(&h->mu);
            return HAMOK_ERR_NOMEM;
        }
        d->due_ms = now_ms() + delay;
        d->from = t->self;
        d->broadcast = to == NULL;
        if (to != NULL) {
            d->to = *to;
        }
        d->len = len;
        memcpy(d->data, bytes, len);
        delayed **pp = &h->queue;
        while (*pp != NULL && (*pp)->due_ms <= d->due_ms) {
            pp = &(*pp)->next;
        }
        d->next = *pp;
        *pp = d;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        return HAMOK_OK;
    }
    pthread_mutex_unlock(&h->mu);
    pthread_rwlock_rdlock(&h->lock);
    deliver_now(h, &t->self, to, to == NULL, bytes, len);
    pthread_rwlock_unlock(&h->lock);
    return HAMOK_OK;
}

static const char *mem_endpoint(hamok_transport *t)
{
    (void)t;
    return "mem://";
}

static void mem_stop(hamok_transport *t)
{
    mem_transport *m = (mem_transport *)t;
    hamok_mem_hub *h = m->hub;
    pthread_rwlock_wrlock(&h->lock);
    if (m->registered) {
        for (size_t i = 0; i < h->n_peers; i++) {
            if (h->peers[i] == m) {
                h->peers[i] = h->peers[--h->n_peers];
                break;
            }
        }
        m->registered = false;
    }
    pthread_rwlock_unlock(&h->lock);
}

static void mem_destroy(hamok_transport *t)
{
    mem_transport *m = (mem_transport *)t;
    mem_stop(t);
    pthread_rwlock_wrlock(&m->hub->lock);
    m->hub->n_transports--;
    pthread_rwlock_unlock(&m->hub->lock);
    free(m);
}

static const hamok_transport_ops mem_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "mem",
    .start = mem_start,
    .send = mem_send,
    .set_peer = NULL,
    .local_endpoint = mem_endpoint,
    .stop = mem_stop,
    .destroy = mem_destroy,
};

hamok_status hamok_mem_transport_new(hamok_mem_hub *hub, hamok_transport **out)
{
    if (hub == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    mem_transport *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    m->base.ops = &mem_ops;
    m->hub = hub;
    pthread_rwlock_wrlock(&hub->lock);
    hub->n_transports++;
    pthread_rwlock_unlock(&hub->lock);
    *out = &m->base;
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------ */
/* Faults */

hamok_status hamok_mem_hub_set_drop(hamok_mem_hub *h, uint32_t permille)
{
    if (h == NULL || permille > 1000) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&h->mu);
    h->drop_permille = permille;
    pthread_mutex_unlock(&h->mu);
    return HAMOK_OK;
}

hamok_status hamok_mem_hub_set_delay(hamok_mem_hub *h, uint32_t min_ms, uint32_t max_ms)
{
    if (h == NULL || min_ms > max_ms || max_ms > 60000) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&h->mu);
    h->delay_min = min_ms;
    h->delay_max = max_ms;
    pthread_mutex_unlock(&h->mu);
    return HAMOK_OK;
}

hamok_status hamok_mem_hub_set_link(hamok_mem_hub *h, const hamok_id *a, const hamok_id *b,
                                    bool cutoff)
{
    if (h == NULL || a == NULL || b == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = HAMOK_OK;
    pthread_mutex_lock(&h->mu);
    size_t i = 0;
    for (; i < h->n_cuts; i++) {
        if ((id_eq(&h->cuts[i].a, a) && id_eq(&h->cuts[i].b, b)) ||
            (id_eq(&h->cuts[i].a, b) && id_eq(&h->cuts[i].b, a))) {
            break;
        }
    }
    if (cutoff && i == h->n_cuts) {
        if (h->n_cuts == MAX_CUTS) {
            st = HAMOK_ERR_NOMEM;
        } else {
            h->cuts[h->n_cuts++] = (cut){*a, *b};
        }
    } else if (!cutoff && i < h->n_cuts) {
        h->cuts[i] = h->cuts[--h->n_cuts];
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

hamok_status hamok_mem_hub_isolate(hamok_mem_hub *h, const hamok_id *peer, bool cutoff)
{
    if (h == NULL || peer == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = HAMOK_OK;
    pthread_mutex_lock(&h->mu);
    size_t i = 0;
    for (; i < h->n_isolated; i++) {
        if (id_eq(&h->isolated[i], peer)) {
            break;
        }
    }
    if (cutoff && i == h->n_isolated) {
        if (h->n_isolated == MAX_CUTS) {
            st = HAMOK_ERR_NOMEM;
        } else {
            h->isolated[h->n_isolated++] = *peer;
        }
    } else if (!cutoff && i < h->n_isolated) {
        h->isolated[i] = h->isolated[--h->n_isolated];
    }
    pthread_mutex_unlock(&h->mu);
    return st;
}

void hamok_mem_hub_heal(hamok_mem_hub *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->n_cuts = 0;
    h->n_isolated = 0;
    h->drop_permille = 0;
    h->delay_min = h->delay_max = 0;
    pthread_mutex_unlock(&h->mu);
}

uint64_t hamok_mem_hub_dropped(const hamok_mem_hub *h)
{
    hamok_mem_hub *m = (hamok_mem_hub *)h;
    pthread_mutex_lock(&m->mu);
    uint64_t d = m->dropped;
    pthread_mutex_unlock(&m->mu);
    return d;
}
