/* example_common.c: see example_common.h. */
#include "example_common.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamok/mem.h"
#ifdef HAMOK_EXAMPLES_WITH_ZMQ
#include "hamok/zmq.h"
#endif
#ifdef HAMOK_EXAMPLES_WITH_NATS
#include "hamok/nats.h"
#endif

typedef enum ex_kind { EX_MEM, EX_ZMQ, EX_NATS } ex_kind;

static ex_kind g_kind = EX_MEM;
static const char *g_nats_url = "nats://127.0.0.1:4222";
static char g_program[64] = "example";
static uint64_t g_t0;
static atomic_int g_failures;
static hamok_mem_hub *g_hub;

/* Every live node with what it advertises (the zmq seeds of the next one). */
static struct {
    hamok_node *node;
    char endpoint[256];
} g_nodes[EX_MAX_NODES];

/* ------------------------------------------------------------------------ */
/* Time, output, checks */

uint64_t ex_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ex_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One whole line at a time: events print from the nodes' loop threads. */
static void vsay(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void vsay(const char *prefix, const char *fmt, va_list ap)
{
    flockfile(stdout);
    printf("[%7.3f s] %s", (double)(ex_now_ms() - g_t0) / 1000.0, prefix);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    funlockfile(stdout);
}

void ex_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay("", fmt, ap);
    va_end(ap);
}

bool ex_check(bool ok, const char *fmt, ...)
{
    if (!ok) {
        va_list ap;
        va_start(ap, fmt);
        vsay("CHECK FAILED: ", fmt, ap);
        va_end(ap);
        atomic_fetch_add(&g_failures, 1);
    }
    return ok;
}

void ex_must(hamok_status st, const char *what)
{
    if (st != HAMOK_OK) {
        ex_say("FAILED: %s: %s", what, hamok_status_str(st));
        exit(1);
    }
}

int ex_finish(void)
{
    if (hamok_mem_hub_destroy(&g_hub) != HAMOK_OK) {
        ex_check(false, "a node was not destroyed before ex_finish()");
    }
    int failures = atomic_load(&g_failures);
    if (failures == 0) {
        ex_say("%s on %s: ok", g_program, ex_transport_name());
        return 0;
    }
    ex_say("%s on %s: FAILED (%d checks)", g_program, ex_transport_name(), failures);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Command line */

static struct {
    const char *name;
    const char **value;
    const char *help;
} g_text_opts[8];
static size_t g_n_text_opts;

void ex_text_option(const char *name, const char **value, const char *help)
{
    if (g_n_text_opts < sizeof g_text_opts / sizeof g_text_opts[0]) {
        g_text_opts[g_n_text_opts].name = name;
        g_text_opts[g_n_text_opts].value = value;
        g_text_opts[g_n_text_opts].help = help;
        g_n_text_opts++;
    }
}

static void usage(FILE *f, const char *about, const ex_int_option *opts, size_t n_opts)
{
    fprintf(f, "%s: %s\n\nusage: %s [options]\n", g_program, about, g_program);
    fprintf(f, "  --transport mem|zmq|nats  how the peers talk (default mem: in-process)\n");
    fprintf(f, "  --nats-url URL            NATS server (default nats://127.0.0.1:4222)\n");
    for (size_t i = 0; i < n_opts; i++) {
        fprintf(f, "  --%-22s %s (default %d)\n", opts[i].name, opts[i].help, *opts[i].value);
    }
    for (size_t i = 0; i < g_n_text_opts; i++) {
        fprintf(f, "  --%-22s %s (default %s)\n", g_text_opts[i].name, g_text_opts[i].help,
                *g_text_opts[i].value);
    }
    fprintf(f, "Exit status 0 when everything the scenario promises held.\n");
}

void ex_init(int argc, char **argv, const char *about, const ex_int_option *opts, size_t n_opts)
{
    g_t0 = ex_now_ms();
    const char *slash = strrchr(argv[0], '/');
    snprintf(g_program, sizeof g_program, "%s", slash != NULL ? slash + 1 : argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* getopt_long table: the common options, then the program's own. */
    struct option longopts[32];
    size_t k = 0;
    longopts[k++] = (struct option){"transport", required_argument, NULL, 't'};
    longopts[k++] = (struct option){"nats-url", required_argument, NULL, 'n'};
    longopts[k++] = (struct option){"help", no_argument, NULL, 'h'};
    for (size_t i = 0; i < n_opts && k < 23; i++) {
        longopts[k++] = (struct option){opts[i].name, required_argument, NULL, 1000 + (int)i};
    }
    for (size_t i = 0; i < g_n_text_opts; i++) {
        longopts[k++] =
            (struct option){g_text_opts[i].name, required_argument, NULL, 2000 + (int)i};
    }
    longopts[k] = (struct option){NULL, 0, NULL, 0};

    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 't') {
            if (strcmp(optarg, "mem") == 0) {
                g_kind = EX_MEM;
            } else if (strcmp(optarg, "zmq") == 0) {
                g_kind = EX_ZMQ;
            } else if (strcmp(optarg, "nats") == 0) {
                g_kind = EX_NATS;
            } else {
                fprintf(stderr, "%s: --transport mem, zmq or nats\n", g_program);
                exit(2);
            }
        } else if (c == 'n') {
            g_nats_url = optarg;
        } else if (c == 'h') {
            usage(stdout, about, opts, n_opts);
            exit(0);
        } else if (c >= 1000 && (size_t)(c - 1000) < n_opts) {
            const ex_int_option *o = &opts[c - 1000];
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < o->min || v > o->max) {
                fprintf(stderr, "%s: --%s takes %d..%d\n", g_program, o->name, o->min, o->max);
                exit(2);
            }
            *o->value = (int)v;
        } else if (c >= 2000 && (size_t)(c - 2000) < g_n_text_opts) {
            *g_text_opts[c - 2000].value = optarg;
        } else {
            usage(stderr, about, opts, n_opts);
            exit(2);
        }
    }
#ifndef HAMOK_EXAMPLES_WITH_ZMQ
    if (g_kind == EX_ZMQ) {
        fprintf(stderr, "%s: built without the zmq transport (libhamok_zmq)\n", g_program);
        exit(2);
    }
#endif
#ifndef HAMOK_EXAMPLES_WITH_NATS
    if (g_kind == EX_NATS) {
        fprintf(stderr, "%s: built without the NATS transport (libhamok_nats)\n", g_program);
        exit(2);
    }
#endif
    ex_say("%s: %s (transport %s)", g_program, about, ex_transport_name());
}

const char *ex_transport_name(void)
{
    return g_kind == EX_ZMQ ? "zmq" : g_kind == EX_NATS ? "nats" : "mem";
}

/* ------------------------------------------------------------------------ */
/* Transports and nodes */

hamok_transport *ex_transport_new(char endpoint[256])
{
    hamok_transport *t = NULL;
    endpoint[0] = '\0';
    switch (g_kind) {
    case EX_MEM:
        /* One hub for the whole process: it delivers between its transports. */
        if (g_hub == NULL) {
            ex_must(hamok_mem_hub_new(&g_hub), "mem hub");
        }
        ex_must(hamok_mem_transport_new(g_hub, &t), "mem transport");
        break;
    case EX_ZMQ: {
#ifdef HAMOK_EXAMPLES_WITH_ZMQ
        /* Bind a free loopback port; the live peers are the seeds. */
        const char *seeds[EX_MAX_NODES];
        size_t n_seeds = 0;
        for (size_t i = 0; i < EX_MAX_NODES; i++) {
            if (g_nodes[i].node != NULL && g_nodes[i].endpoint[0] != '\0') {
                seeds[n_seeds++] = g_nodes[i].endpoint;
            }
        }
        hamok_zmq_options o;
        hamok_zmq_options_init(&o);
        o.bind = "tcp://127.0.0.1:0";
        o.seeds = seeds;
        o.n_seeds = n_seeds;
        ex_must(hamok_zmq_transport_new(&o, &t), "zmq transport");
#endif
        break;
    }
    case EX_NATS: {
#ifdef HAMOK_EXAMPLES_WITH_NATS
        hamok_nats_options o;
        hamok_nats_options_init(&o);
        o.url = g_nats_url;
        o.name = g_program;
        hamok_status st = hamok_nats_transport_new(&o, &t);
        if (st != HAMOK_OK) {
            fprintf(stderr, "%s: NATS at %s: %s\n", g_program, g_nats_url, hamok_nats_last_error());
        }
        ex_must(st, "nats transport");
#endif
        break;
    }
    }
    if (t == NULL) {
        ex_must(HAMOK_ERR_INVALID, "transport");
    }
    const char *ep = t->ops->local_endpoint != NULL ? t->ops->local_endpoint(t) : NULL;
    snprintf(endpoint, 256, "%s", ep != NULL ? ep : "");
    return t;
}

hamok_config *ex_config(void)
{
    hamok_config *cfg;
    ex_must(hamok_config_new(&cfg), "config");
    char cluster[96];
    snprintf(cluster, sizeof cluster, "%s-%ld", g_program, (long)getpid());
    ex_must(hamok_config_set_cluster(cfg, cluster), "cluster name");
    ex_must(hamok_config_set_timing(cfg, 300, 50), "timing");
    ex_must(hamok_config_set_peer_timeout(cfg, 1500), "peer timeout");
    ex_must(hamok_config_set_request_timeout(cfg, EX_TIMEOUT_MS), "request timeout");
    return cfg;
}

hamok_node *ex_node_adopt(hamok_config *cfg, hamok_transport **t, const char *endpoint)
{
    size_t slot = 0;
    while (slot < EX_MAX_NODES && g_nodes[slot].node != NULL) {
        slot++;
    }
    if (slot == EX_MAX_NODES) {
        ex_must(HAMOK_ERR_BUSY, "too many nodes alive");
    }
    hamok_node *node;
    hamok_status st = hamok_node_new(&node, cfg, t);
    hamok_config_destroy(&cfg);
    ex_must(st, "node");
    g_nodes[slot].node = node;
    snprintf(g_nodes[slot].endpoint, sizeof g_nodes[slot].endpoint, "%s", endpoint);
    return node;
}

hamok_node *ex_node_new_with(hamok_config *cfg)
{
    char endpoint[256];
    hamok_transport *t = ex_transport_new(endpoint);
    return ex_node_adopt(cfg, &t, endpoint);
}

hamok_node *ex_node_new(void)
{
    return ex_node_new_with(ex_config());
}

void ex_node_destroy(hamok_node **node)
{
    if (node == NULL || *node == NULL) {
        return;
    }
    for (size_t i = 0; i < EX_MAX_NODES; i++) {
        if (g_nodes[i].node == *node) {
            g_nodes[i].node = NULL;
            g_nodes[i].endpoint[0] = '\0';
        }
    }
    hamok_node_destroy(node);
}

void ex_join_all(hamok_node *const *nodes, size_t n)
{
    if (n == 0) {
        return;
    }
    ex_must(hamok_node_join(nodes[0], EX_TIMEOUT_MS), "join (first peer)");
    for (size_t i = 1; i < n; i++) {
        hamok_node_join_async(nodes[i], EX_TIMEOUT_MS, NULL, NULL);
    }
    for (size_t i = 1; i < n; i++) {
        ex_must(hamok_node_join(nodes[i], EX_TIMEOUT_MS), "join");
    }
}

/* ------------------------------------------------------------------------ */
/* Waiting */

bool ex_wait(bool (*cond)(void *ud), void *ud, int timeout_ms)
{
    uint64_t end = ex_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        if (cond(ud)) {
            return true;
        }
        if (ex_now_ms() >= end) {
            return false;
        }
        ex_pause_ms(5);
    }
}

typedef struct nodes_arg {
    hamok_node *const *nodes;
    size_t n;
    size_t members;
    int leader;
} nodes_arg;

static bool same_leader_among(void *ud)
{
    nodes_arg *a = ud;
    hamok_id first;
    for (size_t i = 0; i < a->n; i++) {
        hamok_id l;
        if (!hamok_node_leader_id(a->nodes[i], &l)) {
            return false;
        }
        if (i == 0) {
            first = l;
        } else if (memcmp(&l, &first, sizeof l) != 0) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n; i++) {
        hamok_id self = hamok_node_id(a->nodes[i]);
        if (memcmp(&self, &first, sizeof self) == 0 && hamok_node_is_leader(a->nodes[i])) {
            a->leader = (int)i;
            return true;
        }
    }
    return false;
}

int ex_wait_leader(hamok_node *const *nodes, size_t n, int timeout_ms)
{
    nodes_arg a = {nodes, n, 0, -1};
    return ex_wait(same_leader_among, &a, timeout_ms) ? a.leader : -1;
}

static bool members_are(void *ud)
{
    nodes_arg *a = ud;
    for (size_t i = 0; i < a->n; i++) {
        if (hamok_node_peers(a->nodes[i], NULL, 0) != a->members) {
            return false;
        }
    }
    return true;
}

bool ex_wait_members(hamok_node *const *nodes, size_t n, size_t members, int timeout_ms)
{
    nodes_arg a = {nodes, n, members, -1};
    return ex_wait(members_are, &a, timeout_ms);
}

/* ------------------------------------------------------------------------ */
/* Threads and values */

typedef struct par_arg {
    void (*fn)(int i);
    int i;
} par_arg;

static void *par_main(void *ud)
{
    par_arg *a = ud;
    a->fn(a->i);
    return NULL;
}

void ex_parallel(int n, void (*fn)(int i))
{
    pthread_t th[EX_MAX_NODES];
    par_arg args[EX_MAX_NODES];
    if (n > EX_MAX_NODES) {
        ex_must(HAMOK_ERR_INVALID, "too many threads");
    }
    for (int i = 0; i < n; i++) {
        args[i] = (par_arg){fn, i};
        if (pthread_create(&th[i], NULL, par_main, &args[i]) != 0) {
            ex_must(HAMOK_ERR_STATE, "thread");
        }
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
}

bool ex_value_is(hamok_status st, hamok_value *v, const char *want)
{
    bool ok = st == HAMOK_OK && v->present && strcmp(v->data, want) == 0;
    hamok_value_free(v);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Ids and node events */

ex_short ex_id_short(const hamok_id *id)
{
    char text[HAMOK_ID_STR_LEN + 1];
    hamok_id_format(id, text);
    ex_short s;
    memcpy(s.s, text, 8);
    s.s[8] = '\0';
    return s;
}

ex_short ex_node_short(const hamok_node *node)
{
    hamok_id id = hamok_node_id(node);
    return ex_id_short(&id);
}

static void on_node_event(void *ud, const hamok_node_event *ev)
{
    ex_watcher *w = ud;
    switch (ev->type) {
    case HAMOK_EVENT_PEER_JOINED:
        atomic_fetch_add(&w->joined, 1);
        if (w->print) {
            ex_say("%s: peer %s joined the configuration", w->name, ex_id_short(&ev->peer).s);
        }
        break;
    case HAMOK_EVENT_PEER_LEFT:
        atomic_fetch_add(&w->left, 1);
        if (w->print) {
            ex_say("%s: peer %s left the configuration", w->name, ex_id_short(&ev->peer).s);
        }
        break;
    case HAMOK_EVENT_LEADER_CHANGED:
        atomic_fetch_add(&w->leader_changes, 1);
        if (!ev->has_leader) {
            atomic_fetch_add(&w->leader_lost, 1);
        }
        if (w->print) {
            ex_say("%s: leader %s (term %" PRIu64 ")", w->name,
                   ev->has_leader ? ex_id_short(&ev->leader).s : "none", ev->term);
        }
        break;
    default: break;
    }
}

void ex_watch(hamok_node *node, ex_watcher *w, const char *name, bool print)
{
    w->name = name;
    w->print = print;
    atomic_init(&w->joined, 0);
    atomic_init(&w->left, 0);
    atomic_init(&w->leader_changes, 0);
    atomic_init(&w->leader_lost, 0);
    ex_must(hamok_node_on(node, on_node_event, w), "node events");
}

/* ------------------------------------------------------------------------ */
/* Event logs */

void ex_event_log_init(ex_event_log *log)
{
    pthread_mutex_init(&log->mu, NULL);
    log->n = 0;
}

void ex_event_log_destroy(ex_event_log *log)
{
    pthread_mutex_destroy(&log->mu);
}

void ex_event_log_add(void *ud, const hamok_map_event *ev)
{
    ex_event_log *log = ud;
    char line[96];
    int k = (int)ev->key_len, v = (int)ev->value_len, o = (int)ev->old_len;
    const char *key = ev->key, *val = ev->value, *old = ev->old;
    switch (ev->type) {
    case HAMOK_MAP_INSERT: snprintf(line, sizeof line, "insert %.*s=%.*s", k, key, v, val); break;
    case HAMOK_MAP_UPDATE:
        snprintf(line, sizeof line, "update %.*s: %.*s -> %.*s", k, key, o, old, v, val);
        break;
    case HAMOK_MAP_REMOVE:
        snprintf(line, sizeof line, "remove %.*s (was %.*s)", k, key, o, old);
        break;
    case HAMOK_MAP_CLEAR: snprintf(line, sizeof line, "clear"); break;
    default: snprintf(line, sizeof line, "unknown event %d", (int)ev->type); break;
    }
    ex_event_log_addf(log, ev->index, "%s", line);
}

void ex_event_log_addf(ex_event_log *log, uint64_t index, const char *fmt, ...)
{
    pthread_mutex_lock(&log->mu);
    if (log->n < EX_LOG_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(log->line[log->n], sizeof log->line[log->n], fmt, ap);
        va_end(ap);
        log->index[log->n] = index;
        log->n++;
    }
    pthread_mutex_unlock(&log->mu);
}

int ex_event_log_count(ex_event_log *log)
{
    pthread_mutex_lock(&log->mu);
    int n = log->n;
    pthread_mutex_unlock(&log->mu);
    return n;
}

typedef struct logs_arg {
    ex_event_log *logs;
    int n_logs;
    int n;
} logs_arg;

static bool logs_have(void *ud)
{
    logs_arg *a = ud;
    for (int i = 0; i < a->n_logs; i++) {
        if (ex_event_log_count(&a->logs[i]) < a->n) {
            return false;
        }
    }
    return true;
}

bool ex_event_logs_expect(ex_event_log *logs, int n_logs, const char *const *expected, int n)
{
    logs_arg a = {logs, n_logs, n};
    bool ok = ex_check(ex_wait(logs_have, &a, EX_TIMEOUT_MS), "every peer gets %d events", n);
    pthread_mutex_lock(&logs[0].mu); /* logs[0]'s indices are the reference */
    for (int i = 0; i < n_logs; i++) {
        ex_event_log *log = &logs[i];
        if (i > 0) {
            pthread_mutex_lock(&log->mu);
        }
        ok &= ex_check(log->n == n, "peer %d: %d events (got %d)", i, n, log->n);
        for (int k = 0; k < n && k < log->n; k++) {
            if (i == 0 && log->index[k] != 0) {
                ex_say("  event %d (log index %" PRIu64 "): %s", k + 1, log->index[k],
                       log->line[k]);
            } else if (i == 0) {
                ex_say("  event %d: %s", k + 1, log->line[k]);
            }
            const char *want = expected != NULL ? expected[k] : logs[0].line[k];
            ok &= ex_check(strcmp(log->line[k], want) == 0, "peer %d event %d: %s (got %s)", i,
                           k + 1, want, log->line[k]);
            ok &= ex_check(log->index[k] == logs[0].index[k], "peer %d event %d: same log index", i,
                           k + 1);
        }
        if (i > 0) {
            pthread_mutex_unlock(&log->mu);
        }
    }
    pthread_mutex_unlock(&logs[0].mu);
    return ok;
}
