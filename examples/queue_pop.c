/* hamok-example-queue-pop: a replicated FIFO; concurrent pops from every
 * peer get every item exactly once (the original's queue-push-pop-example
 * and queue-events-example).
 *
 * Three peers, one thread each:
 *   1. every peer pushes --items items ("p<peer>-<n>") at the same time;
 *   2. every peer pops as fast as it can until the queue is empty; each
 *      pop is ordered by the log and takes the head, so no two poppers get
 *      the same item; a pop of an empty queue answers "absent";
 *   3. every peer listens to the queue's events (add, remove, empty,
 *      not-empty).
 *
 * Checks: the items popped, all peers together, are exactly the items
 * pushed, each once; every peer saw the same adds and the removes in the
 * same order as the adds (first in, first out); each producer's items left
 * in the order it pushed them; the queue ended empty everywhere with an
 * "empty" event, and a further pop gets nothing.
 *
 *   hamok-example-queue-pop [--transport mem|zmq|nats] [--items N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/queue.h"

#define PEERS     3
#define MAX_ITEMS 1000 /* per peer */
#define ITEM_LEN  16

static hamok_node *node[PEERS];
static hamok_queue *queue[PEERS];
static pthread_barrier_t start_line;
static int items = 30;

/* What each peer's thread popped. */
static char popped[PEERS][PEERS * MAX_ITEMS][ITEM_LEN];
static int n_popped[PEERS];

/* Each peer's queue events, in order (loop thread). */
typedef struct qlog {
    pthread_mutex_t mu;
    char adds[PEERS * MAX_ITEMS][ITEM_LEN];
    char removes[PEERS * MAX_ITEMS][ITEM_LEN];
    int n_adds, n_removes, empties, not_empties;
    bool last_was_empty;
} qlog;
static qlog logs[PEERS];

static void on_queue(void *ud, const hamok_queue_event *ev)
{
    qlog *q = ud;
    pthread_mutex_lock(&q->mu);
    q->last_was_empty = ev->type == HAMOK_QUEUE_EMPTY;
    switch (ev->type) {
    case HAMOK_QUEUE_ADD:
        if (q->n_adds < PEERS * MAX_ITEMS) {
            snprintf(q->adds[q->n_adds++], ITEM_LEN, "%.*s", (int)ev->len, (const char *)ev->item);
        }
        break;
    case HAMOK_QUEUE_REMOVE:
        if (q->n_removes < PEERS * MAX_ITEMS) {
            snprintf(q->removes[q->n_removes++], ITEM_LEN, "%.*s", (int)ev->len,
                     (const char *)ev->item);
        }
        break;
    case HAMOK_QUEUE_EMPTY: q->empties++; break;
    case HAMOK_QUEUE_NOT_EMPTY: q->not_empties++; break;
    case HAMOK_QUEUE_CLEAR: break;
    }
    pthread_mutex_unlock(&q->mu);
}

/* Peer `me`'s thread. */
static void worker(int me)
{
    /* 1. Push, everyone at once. */
    pthread_barrier_wait(&start_line);
    for (int k = 0; k < items; k++) {
        char item[ITEM_LEN];
        int len = snprintf(item, sizeof item, "p%d-%d", me, k);
        ex_must(hamok_queue_push(queue[me], item, (size_t)len, EX_TIMEOUT_MS), "push");
    }
    /* 2. Pop until the queue is empty, everyone at once. */
    pthread_barrier_wait(&start_line);
    for (;;) {
        hamok_value v;
        ex_must(hamok_queue_pop(queue[me], &v, EX_TIMEOUT_MS), "pop");
        if (!v.present) {
            break; /* empty */
        }
        snprintf(popped[me][n_popped[me]++], ITEM_LEN, "%s", (const char *)v.data);
        hamok_value_free(&v);
    }
}

static int cmp_item(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* ex_wait condition: every peer saw every add and remove, and "empty". */
static bool all_events_in(void *ud)
{
    int total = *(int *)ud;
    for (int i = 0; i < PEERS; i++) {
        pthread_mutex_lock(&logs[i].mu);
        bool done = logs[i].n_adds == total && logs[i].n_removes == total && logs[i].last_was_empty;
        pthread_mutex_unlock(&logs[i].mu);
        if (!done) {
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    const ex_int_option opts[] = {{"items", &items, 1, MAX_ITEMS, "items each peer pushes"}};
    ex_init(argc, argv, "concurrent pops from every peer get each item exactly once", opts, 1);
    for (int i = 0; i < PEERS; i++) {
        pthread_mutex_init(&logs[i].mu, NULL);
        node[i] = ex_node_new();
        ex_must(hamok_queue_open(node[i], "work", &queue[i]), "open");
        ex_must(hamok_queue_on(queue[i], on_queue, &logs[i]), "listen");
    }
    ex_join_all(node, PEERS);
    int total = PEERS * items;
    ex_say("three peers joined; each pushes %d items, then all pop", items);

    pthread_barrier_init(&start_line, NULL, PEERS);
    ex_parallel(PEERS, worker);
    pthread_barrier_destroy(&start_line);
    ex_say("pops per peer: %d %d %d", n_popped[0], n_popped[1], n_popped[2]);

    /* Exactly once: all pops together, sorted, are the items pushed. */
    static char all[PEERS * MAX_ITEMS][ITEM_LEN], pushed[PEERS * MAX_ITEMS][ITEM_LEN];
    int n = 0;
    for (int i = 0; i < PEERS; i++) {
        for (int k = 0; k < n_popped[i] && n < PEERS * MAX_ITEMS; k++) {
            memcpy(all[n++], popped[i][k], ITEM_LEN);
        }
    }
    for (int i = 0, m = 0; i < PEERS; i++) {
        for (int k = 0; k < items; k++) {
            snprintf(pushed[m++], ITEM_LEN, "p%d-%d", i, k);
        }
    }
    qsort(all, (size_t)n, ITEM_LEN, cmp_item);
    qsort(pushed, (size_t)total, ITEM_LEN, cmp_item);
    ex_check(n == total, "%d items popped in all (%d pushed)", n, total);
    for (int k = 1; k < n; k++) {
        ex_check(strcmp(all[k - 1], all[k]) != 0, "item %s popped twice", all[k]);
    }
    ex_check(n == total && memcmp(all, pushed, (size_t)total * ITEM_LEN) == 0,
             "the popped items are the pushed items");
    ex_say("every item popped exactly once");

    /* Events: the same everywhere, removes in the order of the adds. */
    ex_check(ex_wait(all_events_in, &total, EX_TIMEOUT_MS),
             "every peer sees %d adds, %d removes and ends with empty", total, total);
    for (int i = 0; i < PEERS; i++) {
        qlog *q = &logs[i];
        pthread_mutex_lock(&q->mu);
        ex_check(memcmp(q->adds, logs[0].adds, (size_t)total * ITEM_LEN) == 0,
                 "peer %d saw the adds in the same order as peer 0", i);
        ex_check(memcmp(q->removes, q->adds, (size_t)total * ITEM_LEN) == 0,
                 "peer %d: first in, first out (removes in the order of the adds)", i);
        ex_check(q->empties >= 1 && q->not_empties >= 1, "peer %d saw not-empty and empty", i);
        /* Each producer's items leave in the order it pushed them. */
        int next[PEERS] = {0};
        for (int k = 0; k < q->n_removes; k++) {
            int p, seq;
            if (sscanf(q->removes[k], "p%d-%d", &p, &seq) == 2 && p >= 0 && p < PEERS) {
                ex_check(seq == next[p], "peer %d: %s leaves in push order", i, q->removes[k]);
                next[p] = seq + 1;
            }
        }
        pthread_mutex_unlock(&q->mu);
        ex_check(hamok_queue_size(queue[i]) == 0, "peer %d: the queue is empty", i);
    }
    hamok_value v;
    ex_must(hamok_queue_pop(queue[1], &v, EX_TIMEOUT_MS), "pop");
    ex_check(!v.present, "a pop of the empty queue gets nothing");
    hamok_value_free(&v);
    ex_say("every peer saw the same adds and FIFO removes, and the empty queue");

    for (int i = 0; i < PEERS; i++) {
        hamok_queue_close(&queue[i]);
        ex_node_destroy(&node[i]);
        pthread_mutex_destroy(&logs[i].mu);
    }
    return ex_finish();
}
