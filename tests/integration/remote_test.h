/* Helpers of the remote-map integration tests (test_remote_map.c,
 * test_redis_store.c): the clock, waiting on a condition with a deadline,
 * and the events of a map recorded as text. Header-only. */
#ifndef HAMOK_TEST_REMOTE_TEST_H
#define HAMOK_TEST_REMOTE_TEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hamok/map.h"

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void pause_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until cond(ud) holds or the deadline passes; polls every 2 ms. */
static inline bool wait_for(bool (*cond)(void *), void *ud, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!cond(ud)) {
        if (now_ms() >= end) {
            return cond(ud);
        }
        pause_ms(2);
    }
    return true;
}

/* Events as text ("insert k v=1", "update k old=1 v=2", "remove k old=2",
 * "clear"), in the order they fired; a listener fires on the loop thread. */
#define EV_LINES 2048

typedef struct ev_log {
    pthread_mutex_t mu;
    char lines[EV_LINES][96];
    int n;
} ev_log;

static inline void ev_init(ev_log *l)
{
    memset(l, 0, sizeof *l);
    pthread_mutex_init(&l->mu, NULL);
}

static inline void on_event(void *ud, const hamok_map_event *ev)
{
    ev_log *l = ud;
    static const char *names[] = {"?", "insert", "update", "remove", "clear"};
    pthread_mutex_lock(&l->mu);
    if (l->n < EV_LINES) {
        char *o = l->lines[l->n++];
        int w = snprintf(o, 96, "%s", names[ev->type]);
        if (ev->key != NULL) {
            w += snprintf(o + w, 96 - (size_t)w, " %.*s", (int)ev->key_len, (const char *)ev->key);
        }
        if (ev->has_old) {
            w += snprintf(o + w, 96 - (size_t)w, " old=%.*s", (int)ev->old_len,
                          (const char *)ev->old);
        }
        if (ev->type == HAMOK_MAP_INSERT || ev->type == HAMOK_MAP_UPDATE) {
            snprintf(o + w, 96 - (size_t)w, " v=%.*s", (int)ev->value_len, (const char *)ev->value);
        }
    }
    pthread_mutex_unlock(&l->mu);
}

static inline int ev_count(ev_log *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

#endif
