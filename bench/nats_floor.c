/* hamok-nats-floor: what a local nats-server gives before Hamok adds
 * anything, and what JetStream KV (the alternative a NATS user would pick)
 * costs, through nats.c:
 *
 *   rr   request/reply round trip between two connections (requester and
 *        responder), with SendAsap on (the floor: nats.c's flusher would add
 *        its ~1 ms wait) and, for reference, off: sequential p50/p99, then
 *        messages/s with K requests in flight;
 *   kv   JetStream KV puts on an R1 bucket: sequential kvStore_Put p50/p99,
 *        then puts/s with K in flight (js_PublishAsync to $KV.<bucket>.<key>,
 *        the subject kvStore_Put publishes to, MaxPending K);
 *   hamok  three Hamok nodes in this process over the same server, each with
 *        its own NATS connection: sequential map_set p50/p99 on the leader
 *        and on a follower, then sets/s with K in flight (in-process: the
 *        multi-process figures come from hamok-bench over NATS).
 *
 *   hamok-nats-floor [--url URL] [--count N] [--inflight K] [--seconds S]
 *                    [--size B] [--only rr|kv|hamok]
 *
 * Without --url it starts its own nats-server (JetStream on, store under
 * /tmp) on a free loopback port and stops it at the end. The figures go in
 * bench/README.md with the command and the machine; no pass/fail here. */
#define _DEFAULT_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "hamok/map.h"
#include "hamok/nats.h"
#include "hamok/node.h"
#include "natsd.h"
#include "tnats.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "hamok-nats-floor: %s: %s\n", what, why);
    natsd_stop_all();
    exit(1);
}

static void check(natsStatus s, const char *what)
{
    if (s != NATS_OK) {
        die(what, natsStatus_GetText(s));
    }
}

static void row_latency(const char *what, uint64_t *lat, int n)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_u64);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += (double)lat[i];
    }
    printf("| %-50s | %6d sequential | %8.1f | %8.1f | %9.0f |\n", what, n,
           (double)lat[n / 2] / 1000.0, (double)lat[(size_t)n * 99 / 100] / 1000.0, 1e9 * n / sum);
}

static void row_rate(const char *what, uint64_t done, double secs, long inflight, int errors)
{
    printf("| %-50s | %6ld in flight  | %8s | %8s | %9.0f |", what, inflight, "", "",
           (double)done / secs);
    if (errors > 0) {
        printf(" %d of %" PRIu64 " failed", errors, done);
    }
    printf("\n");
}

static natsConnection *nconnect(const char *url, bool asap)
{
    natsOptions *o = NULL;
    check(natsOptions_Create(&o), "options");
    check(natsOptions_SetURL(o, url), "url");
    check(natsOptions_SetSendAsap(o, asap), "send-asap");
    natsConnection *nc = NULL;
    check(natsConnection_Connect(&nc, o), "connect");
    natsOptions_Destroy(o);
    return nc;
}

/* ------------------------------------------------------------------------ */
/* Request/reply */

typedef struct window {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long inflight;
    uint64_t done;
    int errors;
} window;

static void window_init(window *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
}

static void window_done(window *w, bool ok)
{
    pthread_mutex_lock(&w->mu);
    w->inflight--;
    w->done++;
    w->errors += ok ? 0 : 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Block until fewer than k are in flight, then count one more. */
static void window_take(window *w, long k)
{
    pthread_mutex_lock(&w->mu);
    while (w->inflight >= k) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    w->inflight++;
    pthread_mutex_unlock(&w->mu);
}

static void window_drain(window *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->inflight > 0) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    natsMsg_Destroy(msg);
    window_done(closure, true);
}

static void bench_rr(const char *url, bool asap, int count, long inflight, double seconds,
                     size_t size)
{
    natsConnection *responder = nconnect(url, asap);
    natsConnection *requester = nconnect(url, asap);
    natsSubscription *echo = NULL;
    check(natsConnection_Subscribe(&echo, responder, "floor.echo", tn_echo, NULL), "subscribe");
    check(natsConnection_Flush(responder), "flush");
    char *data = malloc(size);
    memset(data, 'r', size);
    uint64_t *lat = malloc((size_t)count * sizeof *lat);
    for (int i = 0; i < count / 10 + 1; i++) { /* warm-up */
        natsMsg *r = NULL;
        check(natsConnection_Request(&r, requester, "floor.echo", data, (int)size, 5000),
              "request");
        natsMsg_Destroy(r);
    }
    for (int i = 0; i < count; i++) {
        natsMsg *r = NULL;
        uint64_t t0 = now_ns();
        check(natsConnection_Request(&r, requester, "floor.echo", data, (int)size, 5000),
              "request");
        lat[i] = now_ns() - t0;
        natsMsg_Destroy(r);
    }
    char what[96];
    snprintf(what, sizeof what, "nats.c request/reply, SendAsap %s, %zu B", asap ? "on" : "off",
             size);
    row_latency(what, lat, count);
    free(lat);

    /* K in flight: publish with a reply subject, replies counted by an
     * async subscription. */
    window w;
    window_init(&w);
    natsSubscription *inbox = NULL;
    check(natsConnection_Subscribe(&inbox, requester, "floor.inbox", on_reply, &w), "subscribe");
    check(natsConnection_Flush(requester), "flush");
    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        window_take(&w, inflight);
        check(
            natsConnection_PublishRequest(requester, "floor.echo", "floor.inbox", data, (int)size),
            "publish");
    }
    window_drain(&w);
    double secs = (double)(now_ns() - t0) / 1e9;
    snprintf(what, sizeof what, "nats.c request/reply, SendAsap %s, %zu B", asap ? "on" : "off",
             size);
    row_rate(what, w.done, secs, inflight, w.errors);
    natsSubscription_Destroy(inbox);
    natsSubscription_Destroy(echo);
    natsConnection_Destroy(requester);
    natsConnection_Destroy(responder);
    free(data);
}

/* ------------------------------------------------------------------------ */
/* JetStream KV */

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)pae;
    natsMsg_Destroy(msg);
    window_done(closure, pa != NULL);
}

static void bench_kv(const char *url, int count, long inflight, double seconds, size_t size)
{
    natsConnection *nc = nconnect(url, true);
    window w;
    window_init(&w);
    jsOptions jo;
    check(jsOptions_Init(&jo), "js options");
    jo.PublishAsync.MaxPending = inflight;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &w;
    jsCtx *js = NULL;
    check(natsConnection_JetStream(&js, nc, &jo), "jetstream");
    (void)js_DeleteKeyValue(js, "floor");
    kvConfig kc;
    check(kvConfig_Init(&kc), "kv config");
    kc.Bucket = "floor";
    kc.History = 1;
    kc.Replicas = 1;
    kc.StorageType = js_FileStorage;
    kvStore *kv = NULL;
    check(js_CreateKeyValue(&kv, js, &kc), "create bucket (is JetStream on?)");
    char *data = malloc(size);
    memset(data, 'k', size);
    uint64_t *lat = malloc((size_t)count * sizeof *lat);
    char key[32];
    for (int i = 0; i < count / 10 + 1; i++) {
        snprintf(key, sizeof key, "warm%d", i % 1000);
        uint64_t rev = 0;
        check(kvStore_Put(&rev, kv, key, data, (int)size), "kv put");
    }
    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof key, "key%d", i % 1000);
        uint64_t rev = 0, t0 = now_ns();
        check(kvStore_Put(&rev, kv, key, data, (int)size), "kv put");
        lat[i] = now_ns() - t0;
    }
    char what[96];
    snprintf(what, sizeof what, "JetStream KV put (kvStore_Put), R1 file, %zu B", size);
    row_latency(what, lat, count);
    free(lat);

    uint64_t i = 0, t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    char subj[64];
    while (now_ns() < end) {
        window_take(&w, inflight);
        snprintf(subj, sizeof subj, "$KV.floor.key%" PRIu64, i++ % 100000u);
        check(js_PublishAsync(js, subj, data, (int)size, NULL), "publish async");
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    (void)js_PublishAsyncComplete(js, &po);
    window_drain(&w);
    double secs = (double)(now_ns() - t0) / 1e9;
    /* The last one is really in the bucket. */
    snprintf(key, sizeof key, "key%" PRIu64, (i - 1) % 100000u);
    kvEntry *e = NULL;
    check(kvStore_Get(&e, kv, key), "kv get");
    kvEntry_Destroy(e);
    snprintf(what, sizeof what, "JetStream KV put (async to $KV), R1 file, %zu B", size);
    row_rate(what, w.done, secs, inflight, w.errors);
    kvStore_Destroy(kv);
    (void)js_DeleteKeyValue(js, "floor");
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(data);
}

/* ------------------------------------------------------------------------ */
/* Hamok over the same server, in this process */

static void on_set(void *ud, hamok_status st, const hamok_result *r)
{
    (void)r;
    window_done(ud, st == HAMOK_OK);
}

static void hamok_seq(hamok_map *m, int count, size_t size, const char *label)
{
    char *data = malloc(size);
    memset(data, 'h', size);
    uint64_t *lat = malloc((size_t)count * sizeof *lat);
    char key[32];
    for (int i = 0; i < count; i++) {
        snprintf(key, sizeof key, "key-%011d", i % 1000);
        uint64_t t0 = now_ns();
        hamok_status st = hamok_map_set(m, key, 16, data, size, NULL, 5000);
        lat[i] = now_ns() - t0;
        if (st != HAMOK_OK) {
            die("map_set", hamok_status_str(st));
        }
    }
    char what[96];
    snprintf(what, sizeof what, "Hamok map_set over NATS, %s, %zu B", label, size);
    row_latency(what, lat, count);
    free(lat);
    free(data);
}

static void bench_hamok(const char *url, int count, long inflight, double seconds, size_t size)
{
    tnode nodes[3];
    tn_conf c = {.cluster = "floor", .bootstrap_expect = 3};
    for (int i = 0; i < 3; i++) {
        hamok_nats_options o;
        hamok_nats_options_init(&o);
        o.url = url;
        hamok_status st = tn_start(&nodes[i], &c, &o);
        if (st != HAMOK_OK) {
            die("node", hamok_nats_last_error());
        }
    }
    if (!tn_join_all(nodes, 3, 20000) || !tn_agree(nodes, 3, 3, 20000)) {
        die("cluster", "did not form");
    }
    size_t l = tn_leader(nodes, 3);
    hamok_map *ml, *mf;
    if (l > 2 || hamok_map_open(nodes[l].node, "floor", &ml) != HAMOK_OK ||
        hamok_map_open(nodes[(l + 1) % 3].node, "floor", &mf) != HAMOK_OK) {
        die("map", "cannot open");
    }
    hamok_seq(ml, count, size, "leader  ");
    hamok_seq(mf, count, size, "follower");
    window w;
    window_init(&w);
    char *data = malloc(size);
    memset(data, 'h', size);
    char key[32];
    uint64_t i = 0, t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        window_take(&w, inflight);
        snprintf(key, sizeof key, "key-%011" PRIu64, i++ % 100000u);
        hamok_map_set_async(ml, key, 16, data, size, 10000, on_set, &w);
    }
    window_drain(&w);
    double secs = (double)(now_ns() - t0) / 1e9;
    char what[96];
    snprintf(what, sizeof what, "Hamok map_set_async over NATS, leader, %zu B", size);
    row_rate(what, w.done, secs, inflight, w.errors);
    hamok_map_close(&ml);
    hamok_map_close(&mf);
    for (int k = 0; k < 3; k++) {
        tn_stop(&nodes[k]);
    }
    free(data);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *only = NULL;
    int count = 10000;
    long inflight = 1000;
    double seconds = 3.0;
    size_t size = 100;
    static const struct option longs[] = {
        {"url", required_argument, NULL, 'u'},
        {"count", required_argument, NULL, 'n'},
        {"inflight", required_argument, NULL, 'k'},
        {"seconds", required_argument, NULL, 's'},
        {"size", required_argument, NULL, 'b'},
        {"only", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'u': url = optarg; break;
        case 'n': count = atoi(optarg); break;
        case 'k': inflight = atol(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'b': size = (size_t)atol(optarg); break;
        case 'o': only = optarg; break;
        default:
            fprintf(stderr,
                    "usage: %s [--url URL] [--count N] [--inflight K] [--seconds S] "
                    "[--size B] [--only rr|kv|hamok]\n",
                    argv[0]);
            return 2;
        }
    }
    if (count < 1 || inflight < 1 || seconds <= 0 || size < 1) {
        die("arguments", "count, inflight, seconds and size must be positive");
    }
    natsd *d = NULL;
    if (url == NULL) {
        d = natsd_start(&(natsd_config){.jetstream = true});
        if (d == NULL) {
            die("nats-server", "cannot start");
        }
        url = natsd_url(d);
    }
    printf(
        "hamok-nats-floor: server %s, %d sequential, %ld in flight for %.1f s, %zu-byte "
        "payloads\n\n",
        url, count, inflight, seconds, size);
    printf("| what | load | p50 (us) | p99 (us) | ops/s |\n|---|---|---|---|---|\n");
    if (only == NULL || strcmp(only, "rr") == 0) {
        bench_rr(url, true, count, inflight, seconds, size);
        bench_rr(url, false, count, inflight, seconds, size);
    }
    if (only == NULL || strcmp(only, "kv") == 0) {
        bench_kv(url, count / 5 > 0 ? count / 5 : 1, inflight, seconds, size);
    }
    if (only == NULL || strcmp(only, "hamok") == 0) {
        bench_hamok(url, count / 5 > 0 ? count / 5 : 1, inflight, seconds, size);
    }
    natsd_stop(&d);
    nats_CloseAndWait(5000);
    return 0;
}
