/* The NATS transport (include/hamok/nats.h) on nats.c.
 *
 * Subjects: <prefix>.<cluster>.bcast for broadcasts and
 * <prefix>.<cluster>.peer.<id> for one peer; a transport subscribes to bcast
 * and to its own peer subject, nothing else.
 *
 * Threads and lifetimes:
 *  - nats.c delivers messages on one thread per subscription and connection
 *    events on its async-callback thread. Every callback goes through
 *    `gate`: it calls the sink only while `delivering`, which stop() clears
 *    under the same mutex, so once stop() has taken the gate no sink call is
 *    running and none will start.
 *  - Our memory must outlive nats.c's last callback: stop() waits (with a
 *    deadline) for each subscription's on-complete callback, which nats.c
 *    calls after the message handler has returned for the last time;
 *    destroy() of an own connection waits for its closed callback, the last
 *    connection callback. If nats.c never confirms, the object is
 *    deliberately leaked rather than freed under a running callback.
 *  - send() runs on the node's loop thread. An own connection is made with
 *    SendAsap, so nats.c writes to the socket inside natsConnection_Publish.
 *    A borrowed connection keeps the application's settings; a transport
 *    thread ("aux") flushes it when kicked by send() (FlushTimeout writes the
 *    buffer at once, then waits for the PONG while later frames queue up) and
 *    polls its status for link events, since its callbacks are the
 *    application's.
 *
 * nats_Close() is never called here (process-wide; the application's).
 *
 * Layering: only the public headers (hamok/...) and nats.c. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "hamok/id.h"
#include "hamok/nats.h"

#define DEFAULT_URL      "nats://127.0.0.1:4222"
#define DEFAULT_PREFIX   "hamok"
#define DEFAULT_NAME     "hamok"
#define SUBJ_MAX         512
#define MIN_PAYLOAD      (64u * 1024u)
#define CONFIRM_MS       5000 /* how long nats.c gets to confirm a close */
#define POLL_MS          50   /* borrowed connection: status polling period */
#define MAX_SERVERS      64
#define DEFAULT_WAIT_MS  250
#define DEFAULT_TIMEOUT  2000
#define ERR_TEXT         512
#define FLUSH_TIMEOUT_MS 1000

typedef struct nats_tp nats_tp;

typedef struct sub_ref {
    nats_tp *t;
    int i;
} sub_ref;

struct nats_tp {
    hamok_transport base; /* first: a hamok_transport * is a nats_tp * */
    natsConnection *nc;
    bool own;
    char prefix[HAMOK_NATS_MAX_PREFIX + 1];
    char bcast[SUBJ_MAX];
    char peer_base[SUBJ_MAX - HAMOK_ID_STR_LEN - 1]; /* "<prefix>.<cluster>.peer." */
    size_t peer_base_len;
    char self_subj[SUBJ_MAX];
    int64_t connect_timeout_ms;

    /* The sink, as nats.c's threads see it. */
    pthread_mutex_t gate;
    hamok_transport_sink *sink;
    bool delivering;

    /* Completions from nats.c and the aux thread. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    natsSubscription *subs[2];
    sub_ref refs[2];
    bool sub_done[2];
    bool conn_closed; /* own connection: closed callback ran */
    bool started;
    bool stopped;
    bool aux_on;
    bool aux_quit;
    bool kick;
    pthread_t aux;
    bool leak; /* nats.c did not confirm a close in time: never free */

    pthread_mutex_t st_mu;
    hamok_nats_stats st;
    bool failing; /* publishing fails since the last success (reported once) */
};

static _Thread_local char last_error[ERR_TEXT];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *hamok_nats_last_error(void)
{
    return last_error;
}

/* nats.c's status text plus its thread-local detail, if any. */
static void nats_error_text(natsStatus s, char *out, size_t cap)
{
    natsStatus ls = NATS_OK;
    const char *detail = nats_GetLastError(&ls);
    if (detail != NULL && detail[0] != '\0') {
        snprintf(out, cap, "%s (%s)", detail, natsStatus_GetText(s));
    } else {
        snprintf(out, cap, "%s", natsStatus_GetText(s));
    }
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Under t->mu: wait on t->cv until `deadline` (CLOCK_MONOTONIC ms). */
static void wait_until(nats_tp *t, uint64_t deadline)
{
    uint64_t now = now_ms();
    if (now >= deadline) {
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t wait = deadline - now;
    ts.tv_sec += (time_t)(wait / 1000u);
    ts.tv_nsec += (long)((wait % 1000u) * 1000000u);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

/* ------------------------------------------------------------------------ */
/* Subjects */

static bool token_char_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '*' && c != '>' && c != '.';
}

/* One token: non-empty, no separators, wildcards, whitespace or controls. */
static bool valid_token(const char *s, size_t len)
{
    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!token_char_ok((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool hamok_nats_valid_prefix(const char *prefix)
{
    if (prefix == NULL) {
        return false;
    }
    size_t len = strlen(prefix);
    if (len == 0 || len > HAMOK_NATS_MAX_PREFIX) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || prefix[i] == '.') {
            if (!valid_token(prefix + start, i - start)) {
                return false;
            }
            start = i + 1;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* Stats and reports */

#define STAT_ADD(t, field)                 \
    do {                                   \
        pthread_mutex_lock(&(t)->st_mu);   \
        (t)->st.field++;                   \
        pthread_mutex_unlock(&(t)->st_mu); \
    } while (0)

static void report_link(nats_tp *t, hamok_transport_link state, const char *text)
{
    pthread_mutex_lock(&t->gate);
    if (t->delivering && t->sink->link != NULL) {
        t->sink->link(t->sink, state, text);
    }
    pthread_mutex_unlock(&t->gate);
}

static void report_error(nats_tp *t, hamok_status st, const char *text)
{
    pthread_mutex_lock(&t->gate);
    if (t->delivering && t->sink->error != NULL) {
        t->sink->error(t->sink, st, text);
    }
    pthread_mutex_unlock(&t->gate);
}

static void set_connected(nats_tp *t, bool connected)
{
    pthread_mutex_lock(&t->st_mu);
    t->st.connected = connected;
    pthread_mutex_unlock(&t->st_mu);
}

/* ------------------------------------------------------------------------ */
/* nats.c callbacks */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    nats_tp *t = closure;
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    bool taken = false;
    pthread_mutex_lock(&t->gate);
    if (t->delivering && data != NULL && len > 0) {
        t->sink->deliver(t->sink, data, (size_t)len);
        taken = true;
    }
    pthread_mutex_unlock(&t->gate);
    natsMsg_Destroy(msg);
    if (taken) {
        STAT_ADD(t, frames_received);
    }
}

static void on_sub_complete(void *closure)
{
    sub_ref *r = closure;
    nats_tp *t = r->t;
    pthread_mutex_lock(&t->mu);
    t->sub_done[r->i] = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu); /* the last touch of t by this callback */
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_tp *t = closure;
    pthread_mutex_lock(&t->st_mu);
    t->st.disconnects++;
    t->st.connected = false;
    pthread_mutex_unlock(&t->st_mu);
    report_link(t, HAMOK_LINK_DISCONNECTED, "nats: disconnected from the server, reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    nats_tp *t = closure;
    char url[256] = "";
    if (natsConnection_GetConnectedUrl(nc, url, sizeof url) != NATS_OK) {
        url[0] = '\0';
    }
    int64_t mp = natsConnection_GetMaxPayload(nc);
    pthread_mutex_lock(&t->st_mu);
    t->st.reconnects++;
    t->st.connected = true;
    if (mp > 0) {
        t->st.max_payload = (uint64_t)mp;
    }
    pthread_mutex_unlock(&t->st_mu);
    char text[512];
    if (mp > 0 && t->base.max_frame != 0 && (uint64_t)mp < t->base.max_frame) {
        snprintf(text, sizeof text,
                 "nats: the server at %s takes at most %lld bytes per message, fewer than the %u "
                 "the node sizes frames for: larger frames are refused",
                 url, (long long)mp, (unsigned)t->base.max_frame);
        report_error(t, HAMOK_ERR_TOO_BIG, text);
    }
    snprintf(text, sizeof text, "nats: reconnected to %s", url);
    report_link(t, HAMOK_LINK_RECONNECTED, text);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    nats_tp *t = closure;
    set_connected(t, false);
    report_link(t, HAMOK_LINK_CLOSED, "nats: connection closed (no more reconnect attempts)");
    pthread_mutex_lock(&t->mu);
    t->conn_closed = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu); /* the last touch of t by this callback */
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    nats_tp *t = closure;
    const char *detail = NULL;
    (void)natsConnection_GetLastError(nc, &detail);
    const char *subject = sub != NULL ? natsSubscription_GetSubject(sub) : NULL;
    char text[512];
    snprintf(text, sizeof text, "nats: %s%s%s%s%s", natsStatus_GetText(err),
             detail != NULL && detail[0] != '\0' ? ": " : "", detail != NULL ? detail : "",
             subject != NULL ? " on " : "", subject != NULL ? subject : "");
    STAT_ADD(t, async_errors);
    report_error(t, HAMOK_ERR_TRANSPORT, text);
}

/* ------------------------------------------------------------------------ */
/* Borrowed connection: flushing and status polling */

typedef struct link_watch {
    bool up;      /* last state reported: connected */
    bool ever_up; /* connected at least once */
    bool closed;
    uint64_t reconnects; /* nats.c's counter at the last poll */
    natsStatistics *stats;
} link_watch;

static uint64_t conn_reconnects(nats_tp *t, natsStatistics *stats)
{
    uint64_t r = 0;
    if (stats != NULL && natsConnection_GetStats(t->nc, stats) == NATS_OK) {
        (void)natsStatistics_GetCounts(stats, NULL, NULL, NULL, NULL, &r);
    }
    return r;
}

static void link_went(nats_tp *t, hamok_transport_link state, const char *text)
{
    pthread_mutex_lock(&t->st_mu);
    if (state == HAMOK_LINK_DISCONNECTED) {
        t->st.disconnects++;
    } else if (state == HAMOK_LINK_RECONNECTED) {
        t->st.reconnects++;
    }
    t->st.connected = state == HAMOK_LINK_CONNECTED || state == HAMOK_LINK_RECONNECTED;
    int64_t mp = natsConnection_GetMaxPayload(t->nc);
    if (t->st.connected && mp > 0) {
        t->st.max_payload = (uint64_t)mp;
    }
    pthread_mutex_unlock(&t->st_mu);
    report_link(t, state, text);
}

/* The borrowed connection's status against what was last reported. A loss
 * and a return between two polls show in nats.c's reconnect counter. */
static void poll_link(nats_tp *t, link_watch *w)
{
    if (w->closed) {
        return;
    }
    natsConnStatus cur = natsConnection_Status(t->nc);
    uint64_t rc = conn_reconnects(t, w->stats);
    if (cur == NATS_CONN_STATUS_CLOSED) {
        w->closed = true;
        w->up = false;
        link_went(t, HAMOK_LINK_CLOSED, "nats: the application's connection is closed");
    } else if (cur == NATS_CONN_STATUS_CONNECTED || cur == NATS_CONN_STATUS_DRAINING_SUBS ||
               cur == NATS_CONN_STATUS_DRAINING_PUBS) {
        if (w->up && rc > w->reconnects) {
            link_went(t, HAMOK_LINK_DISCONNECTED, "nats: the application's connection was lost");
            link_went(t, HAMOK_LINK_RECONNECTED, "nats: the application's connection is back");
        } else if (!w->up) {
            link_went(t, w->ever_up ? HAMOK_LINK_RECONNECTED : HAMOK_LINK_CONNECTED,
                      w->ever_up ? "nats: the application's connection is back"
                                 : "nats: the application's connection is up");
        }
        w->up = w->ever_up = true;
    } else if (w->up) { /* DISCONNECTED, CONNECTING, RECONNECTING */
        w->up = false;
        link_went(t, HAMOK_LINK_DISCONNECTED, "nats: the application's connection was lost");
    }
    w->reconnects = rc;
}

static void *aux_main(void *arg)
{
    nats_tp *t = arg;
    link_watch w = {0};
    if (natsStatistics_Create(&w.stats) != NATS_OK) {
        w.stats = NULL;
    }
    w.up = w.ever_up = natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED;
    w.reconnects = conn_reconnects(t, w.stats);
    uint64_t next_poll = now_ms() + POLL_MS;
    pthread_mutex_lock(&t->mu);
    while (!t->aux_quit) {
        if (!t->kick && now_ms() < next_poll) {
            wait_until(t, next_poll);
            continue;
        }
        bool flush = t->kick;
        t->kick = false;
        pthread_mutex_unlock(&t->mu);
        if (flush && natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED) {
            (void)natsConnection_FlushTimeout(t->nc, FLUSH_TIMEOUT_MS);
        }
        if (now_ms() >= next_poll) {
            poll_link(t, &w);
            next_poll = now_ms() + POLL_MS;
        }
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    natsStatistics_Destroy(w.stats);
    return NULL;
}

static void kick_aux(nats_tp *t)
{
    pthread_mutex_lock(&t->mu);
    if (!t->kick) {
        t->kick = true;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
}

/* ------------------------------------------------------------------------ */
/* The transport ops */

/* Unsubscribe and wait for nats.c to confirm that no handler runs any more.
 * Gate already closed. */
static void close_subs(nats_tp *t)
{
    for (int i = 0; i < 2; i++) {
        if (t->subs[i] != NULL) {
            (void)natsSubscription_Unsubscribe(t->subs[i]);
        }
    }
    uint64_t deadline = now_ms() + CONFIRM_MS;
    pthread_mutex_lock(&t->mu);
    while (!t->leak) {
        bool done =
            (t->subs[0] == NULL || t->sub_done[0]) && (t->subs[1] == NULL || t->sub_done[1]);
        if (done) {
            break;
        }
        if (now_ms() >= deadline) {
            t->leak = true;
            break;
        }
        wait_until(t, deadline);
    }
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < 2; i++) {
        if (t->subs[i] != NULL) {
            natsSubscription_Destroy(t->subs[i]);
            t->subs[i] = NULL;
        }
    }
}

static hamok_status subscribe(nats_tp *t, int i, const char *subject)
{
    natsSubscription *sub = NULL;
    natsStatus s = natsConnection_Subscribe(&sub, t->nc, subject, on_msg, t);
    if (s != NATS_OK) {
        char why[ERR_TEXT / 2];
        nats_error_text(s, why, sizeof why);
        set_error("nats: cannot subscribe to %s: %s", subject, why);
        return HAMOK_ERR_TRANSPORT;
    }
    t->refs[i] = (sub_ref){t, i};
    t->subs[i] = sub;
    s = natsSubscription_SetOnCompleteCB(sub, on_sub_complete, &t->refs[i]);
    if (s != NATS_OK) {
        /* Closed under our feet: no confirmation will ever come, so the
         * memory a handler may still use is never freed. */
        t->leak = true;
        set_error("nats: the subscription to %s closed at once: %s", subject,
                  natsStatus_GetText(s));
        return HAMOK_ERR_TRANSPORT;
    }
    return HAMOK_OK;
}

static void nt_stop(hamok_transport *bt);

static hamok_status nt_start(hamok_transport *bt, hamok_transport_sink *sink)
{
    nats_tp *t = (nats_tp *)bt;
    last_error[0] = '\0';
    if (t->started || sink == NULL || sink->deliver == NULL) {
        return HAMOK_ERR_STATE;
    }
    const char *cluster = bt->cluster;
    size_t clen = strnlen(cluster, sizeof bt->cluster);
    if (clen == sizeof bt->cluster || !valid_token(cluster, clen)) {
        set_error(
            "nats: the cluster name \"%.200s\" is not a valid subject token (one token: no "
            "'.', '*', '>', whitespace or control characters, not empty)",
            clen == sizeof bt->cluster ? "" : cluster);
        if (sink->error != NULL) {
            sink->error(sink, HAMOK_ERR_INVALID, last_error);
        }
        return HAMOK_ERR_INVALID;
    }
    char id[HAMOK_ID_STR_LEN + 1];
    hamok_id_format(&bt->self, id);
    snprintf(t->bcast, sizeof t->bcast, "%s.%s.bcast", t->prefix, cluster);
    int n = snprintf(t->peer_base, sizeof t->peer_base, "%s.%s.peer.", t->prefix, cluster);
    t->peer_base_len = (size_t)n;
    snprintf(t->self_subj, sizeof t->self_subj, "%s%s", t->peer_base, id);

    pthread_mutex_lock(&t->gate);
    t->sink = sink;
    t->delivering = true;
    pthread_mutex_unlock(&t->gate);
    t->started = true;

    hamok_status st = subscribe(t, 0, t->bcast);
    if (st == HAMOK_OK) {
        st = subscribe(t, 1, t->self_subj);
    }
    if (st != HAMOK_OK) {
        if (sink->error != NULL) {
            sink->error(sink, st, last_error);
        }
        nt_stop(bt);
        return st;
    }
    /* Make sure the server has both subscriptions before discovery starts
     * (a reply to our HELLO must find them). Disconnected: nats.c sends them
     * on reconnection. */
    bool up = natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED;
    if (up) {
        (void)natsConnection_FlushTimeout(t->nc, t->connect_timeout_ms);
    }
    if (!t->own) {
        if (pthread_create(&t->aux, NULL, aux_main, t) != 0) {
            set_error("nats: cannot start the flusher thread");
            nt_stop(bt);
            return HAMOK_ERR_NOMEM;
        }
        t->aux_on = true;
    }
    if (up) {
        char url[256] = "";
        if (natsConnection_GetConnectedUrl(t->nc, url, sizeof url) != NATS_OK) {
            url[0] = '\0';
        }
        char text[1024];
        snprintf(text, sizeof text, "nats: connected to %s (max_payload %lld), subject %s", url,
                 (long long)natsConnection_GetMaxPayload(t->nc), t->self_subj);
        report_link(t, HAMOK_LINK_CONNECTED, text);
    }
    return HAMOK_OK;
}

static hamok_status refuse_too_big(nats_tp *t, size_t len, uint64_t limit)
{
    STAT_ADD(t, too_big);
    char text[256];
    snprintf(text, sizeof text,
             "nats: a frame of %zu bytes exceeds the server's max_payload of %llu bytes: refused "
             "(not sent, not truncated)",
             len, (unsigned long long)limit);
    report_error(t, HAMOK_ERR_TOO_BIG, text);
    return HAMOK_ERR_TOO_BIG;
}

static hamok_status nt_send(hamok_transport *bt, const hamok_id *to, const void *bytes, size_t len)
{
    nats_tp *t = (nats_tp *)bt;
    if (!t->started || t->stopped) {
        return HAMOK_ERR_STATE;
    }
    if (bytes == NULL || len == 0) {
        return HAMOK_ERR_INVALID;
    }
    int64_t mp = natsConnection_GetMaxPayload(t->nc);
    uint64_t limit = mp > 0 ? (uint64_t)mp : HAMOK_TRANSPORT_MAX_FRAME;
    if (limit > HAMOK_TRANSPORT_MAX_FRAME) {
        limit = HAMOK_TRANSPORT_MAX_FRAME;
    }
    if (len > limit) {
        return refuse_too_big(t, len, limit);
    }
    char subj[SUBJ_MAX];
    const char *subject = t->bcast;
    if (to != NULL) {
        memcpy(subj, t->peer_base, t->peer_base_len);
        hamok_id_format(to, subj + t->peer_base_len);
        subject = subj;
    }
    natsStatus s = natsConnection_Publish(t->nc, subject, bytes, (int)len);
    if (s == NATS_MAX_PAYLOAD) {
        return refuse_too_big(t, len, mp > 0 ? (uint64_t)mp : limit);
    }
    if (s != NATS_OK) {
        pthread_mutex_lock(&t->st_mu);
        t->st.publish_failed++;
        bool first = !t->failing;
        t->failing = true;
        pthread_mutex_unlock(&t->st_mu);
        if (first) {
            char why[256], text[400];
            nats_error_text(s, why, sizeof why);
            snprintf(text, sizeof text,
                     "nats: publishing fails: %s (further failures are only counted until a "
                     "publish succeeds)",
                     why);
            report_error(t, HAMOK_ERR_TRANSPORT, text);
        }
        return HAMOK_ERR_TRANSPORT;
    }
    pthread_mutex_lock(&t->st_mu);
    t->st.frames_sent++;
    t->failing = false;
    pthread_mutex_unlock(&t->st_mu);
    if (!t->own) {
        kick_aux(t);
    }
    return HAMOK_OK;
}

static const char *nt_endpoint(hamok_transport *bt)
{
    return ((nats_tp *)bt)->self_subj;
}

static void nt_stop(hamok_transport *bt)
{
    nats_tp *t = (nats_tp *)bt;
    if (!t->started || t->stopped) {
        return;
    }
    t->stopped = true;
    pthread_mutex_lock(&t->gate);
    t->delivering = false;
    pthread_mutex_unlock(&t->gate);
    close_subs(t);
    if (t->aux_on) {
        pthread_mutex_lock(&t->mu);
        t->aux_quit = true;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->aux, NULL);
        t->aux_on = false;
    }
}

/* Close an own connection and wait for its closed callback; true when nats.c
 * confirmed (our memory may then be freed). */
static bool close_own(nats_tp *t)
{
    natsConnection_Close(t->nc);
    uint64_t deadline = now_ms() + CONFIRM_MS;
    pthread_mutex_lock(&t->mu);
    while (!t->conn_closed && now_ms() < deadline) {
        wait_until(t, deadline);
    }
    bool ok = t->conn_closed;
    pthread_mutex_unlock(&t->mu);
    natsConnection_Destroy(t->nc);
    t->nc = NULL;
    return ok;
}

static void free_tp(nats_tp *t)
{
    pthread_mutex_destroy(&t->gate);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->st_mu);
    free(t);
}

static void nt_destroy(hamok_transport *bt)
{
    nats_tp *t = (nats_tp *)bt;
    nt_stop(bt);
    if (t->own && t->nc != NULL && !close_own(t)) {
        t->leak = true;
    }
    if (!t->leak) {
        free_tp(t);
    }
}

static const hamok_transport_ops nats_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "nats",
    .start = nt_start,
    .send = nt_send,
    .set_peer = NULL, /* subjects derive from peer ids */
    .local_endpoint = nt_endpoint,
    .stop = nt_stop,
    .destroy = nt_destroy,
};

/* ------------------------------------------------------------------------ */
/* Construction */

void hamok_nats_options_init(hamok_nats_options *o)
{
    if (o != NULL) {
        memset(o, 0, sizeof *o);
    }
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool starts_with_tls(const char *url)
{
    return strncmp(url, "tls://", 6) == 0;
}

static hamok_status check_options(const hamok_nats_options *o, bool *tls)
{
    int methods = (set(o->user) || set(o->password) ? 1 : 0) + (set(o->token) ? 1 : 0) +
                  (set(o->nkey) || set(o->nkey_seed_file) ? 1 : 0) + (set(o->creds_file) ? 1 : 0);
    if (methods > 1) {
        set_error(
            "nats: give at most one authentication method (user/password, token, nkey, "
            "creds_file)");
        return HAMOK_ERR_INVALID;
    }
    if (set(o->password) && !set(o->user)) {
        set_error("nats: a password needs a user");
        return HAMOK_ERR_INVALID;
    }
    if (set(o->nkey) != set(o->nkey_seed_file)) {
        set_error(
            "nats: an nkey needs both the public key (nkey) and its seed file "
            "(nkey_seed_file)");
        return HAMOK_ERR_INVALID;
    }
    if (set(o->tls_cert_file) != set(o->tls_key_file)) {
        set_error("nats: a client certificate needs both tls_cert_file and tls_key_file");
        return HAMOK_ERR_INVALID;
    }
    const char *url = set(o->url) ? o->url : DEFAULT_URL;
    bool tls_url = false;
    size_t n = 0;
    const char *p = url;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        tls_url = tls_url || starts_with_tls(p);
        n++;
        while (*p != '\0' && *p != ',') {
            p++;
        }
    }
    if (n == 0 || n > MAX_SERVERS) {
        set_error("nats: the url must list 1 to %d servers, separated by commas", MAX_SERVERS);
        return HAMOK_ERR_INVALID;
    }
    *tls = tls_url || set(o->tls_ca_file) || set(o->tls_cert_file) || set(o->tls_hostname) ||
           o->tls_skip_verify;
    if (*tls && !o->tls_skip_verify && !set(o->tls_ca_file)) {
        set_error(
            "nats: TLS verification needs tls_ca_file (nats.c loads no default trust store; "
            "for a publicly signed server give the system bundle, e.g. "
            "/etc/ssl/certs/ca-certificates.crt)");
        return HAMOK_ERR_INVALID;
    }
    return HAMOK_OK;
}

/* Split the URL list into servers (copies in `buf`). */
static int split_servers(const char *url, char *buf, size_t cap, const char **servers)
{
    snprintf(buf, cap, "%s", url);
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL && n < MAX_SERVERS;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ') {
            tok[--len] = '\0';
        }
        if (len > 0) {
            servers[n++] = tok;
        }
    }
    return n;
}

/* Apply one nats.c option setter; on failure note which. */
#define OPT(call, what)                                \
    do {                                               \
        if (s == NATS_OK && (s = (call)) != NATS_OK) { \
            failed = (what);                           \
        }                                              \
    } while (0)

static hamok_status connect_own(nats_tp *t, const hamok_nats_options *o, bool tls)
{
    const char *url = set(o->url) ? o->url : DEFAULT_URL;
    size_t cap = strlen(url) + 1;
    char *buf = malloc(cap);
    if (buf == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    const char *servers[MAX_SERVERS];
    int n = split_servers(url, buf, cap, servers);
    natsOptions *opts = NULL;
    const char *failed = "natsOptions_Create";
    natsStatus s = natsOptions_Create(&opts);
    OPT(natsOptions_SetServers(opts, servers, n), "the server list");
    OPT(natsOptions_SetName(opts, set(o->name) ? o->name : DEFAULT_NAME), "the name");
    OPT(natsOptions_SetNoEcho(opts, true), "no-echo");
    OPT(natsOptions_SetSendAsap(opts, true), "send-asap");
    OPT(natsOptions_SetAllowReconnect(opts, o->max_reconnect >= 0), "reconnect");
    OPT(natsOptions_SetMaxReconnect(opts, o->max_reconnect == 0 ? -1 : o->max_reconnect),
        "max_reconnect");
    OPT(natsOptions_SetReconnectWait(
            opts, o->reconnect_wait_ms != 0 ? (int64_t)o->reconnect_wait_ms : DEFAULT_WAIT_MS),
        "reconnect_wait_ms");
    OPT(natsOptions_SetTimeout(opts, t->connect_timeout_ms), "connect_timeout_ms");
    OPT(natsOptions_SetNoRandomize(opts, o->no_randomize), "no_randomize");
    if (o->reconnect_buffer_bytes != 0) {
        OPT(natsOptions_SetReconnectBufSize(opts, o->reconnect_buffer_bytes > INT_MAX
                                                      ? INT_MAX
                                                      : (int)o->reconnect_buffer_bytes),
            "reconnect_buffer_bytes");
    }
    if (o->ping_interval_ms != 0) {
        OPT(natsOptions_SetPingInterval(opts, (int64_t)o->ping_interval_ms), "ping_interval_ms");
    }
    OPT(natsOptions_SetDisconnectedCB(opts, on_disconnected, t), "callbacks");
    OPT(natsOptions_SetReconnectedCB(opts, on_reconnected, t), "callbacks");
    OPT(natsOptions_SetClosedCB(opts, on_closed, t), "callbacks");
    OPT(natsOptions_SetErrorHandler(opts, on_async_error, t), "callbacks");
    if (set(o->user)) {
        OPT(natsOptions_SetUserInfo(opts, o->user, o->password), "user/password");
    } else if (set(o->token)) {
        OPT(natsOptions_SetToken(opts, o->token), "token");
    } else if (set(o->nkey)) {
        OPT(natsOptions_SetNKeyFromSeed(opts, o->nkey, o->nkey_seed_file), "nkey");
    } else if (set(o->creds_file)) {
        OPT(natsOptions_SetUserCredentialsFromFiles(opts, o->creds_file, NULL), "creds_file");
    }
    if (tls) {
        OPT(natsOptions_SetSecure(opts, true), "TLS");
        if (set(o->tls_ca_file)) {
            OPT(natsOptions_LoadCATrustedCertificates(opts, o->tls_ca_file), "tls_ca_file");
        }
        if (set(o->tls_cert_file)) {
            OPT(natsOptions_LoadCertificatesChain(opts, o->tls_cert_file, o->tls_key_file),
                "tls_cert_file/tls_key_file");
        }
        if (set(o->tls_hostname)) {
            OPT(natsOptions_SetExpectedHostname(opts, o->tls_hostname), "tls_hostname");
        }
        if (o->tls_skip_verify) {
            OPT(natsOptions_SkipServerVerification(opts, true), "tls_skip_verify");
        }
    }
    char why[ERR_TEXT / 2];
    if (s != NATS_OK) {
        nats_error_text(s, why, sizeof why);
        set_error("nats: bad option (%s): %s", failed, why);
        natsOptions_Destroy(opts);
        free(buf);
        return s == NATS_NO_MEMORY ? HAMOK_ERR_NOMEM : HAMOK_ERR_INVALID;
    }
    t->own = true; /* the callbacks may fire from now on */
    s = natsConnection_Connect(&t->nc, opts);
    natsOptions_Destroy(opts); /* the connection keeps its own copy */
    if (s != NATS_OK) {
        nats_error_text(s, why, sizeof why);
        set_error("nats: cannot connect to %s: %s", url, why);
        t->nc = NULL;
        free(buf);
        return s == NATS_NO_MEMORY ? HAMOK_ERR_NOMEM : HAMOK_ERR_TRANSPORT;
    }
    free(buf);
    return HAMOK_OK;
}

hamok_status hamok_nats_transport_new(const hamok_nats_options *o, hamok_transport **out)
{
    last_error[0] = '\0';
    if (out == NULL) {
        set_error("nats: out is NULL");
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_nats_options defaults;
    if (o == NULL) {
        hamok_nats_options_init(&defaults);
        o = &defaults;
    }
    const char *prefix = o->prefix != NULL ? o->prefix : DEFAULT_PREFIX;
    if (!hamok_nats_valid_prefix(prefix)) {
        set_error(
            "nats: the prefix \"%.200s\" is not valid: tokens separated by single dots, "
            "without '*', '>', whitespace or control characters, at most %d bytes",
            prefix, HAMOK_NATS_MAX_PREFIX);
        return HAMOK_ERR_INVALID;
    }
    bool tls = false;
    if (o->connection == NULL) {
        hamok_status st = check_options(o, &tls);
        if (st != HAMOK_OK) {
            return st;
        }
    } else if (natsConnection_Status((natsConnection *)o->connection) == NATS_CONN_STATUS_CLOSED) {
        set_error("nats: the application's connection is closed");
        return HAMOK_ERR_INVALID;
    }
    nats_tp *t = calloc(1, sizeof *t);
    if (t == NULL) {
        set_error("nats: out of memory");
        return HAMOK_ERR_NOMEM;
    }
    pthread_mutex_init(&t->gate, NULL);
    pthread_mutex_init(&t->mu, NULL);
    pthread_mutex_init(&t->st_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    t->base.ops = &nats_ops;
    snprintf(t->prefix, sizeof t->prefix, "%s", prefix);
    t->connect_timeout_ms =
        o->connect_timeout_ms != 0 ? (int64_t)o->connect_timeout_ms : DEFAULT_TIMEOUT;

    if (o->connection != NULL) {
        t->nc = o->connection;
        t->st.borrowed = true;
    } else {
        hamok_status st = connect_own(t, o, tls);
        if (st != HAMOK_OK) {
            free_tp(t);
            return st;
        }
    }
    int64_t mp = natsConnection_GetMaxPayload(t->nc);
    if (mp > 0 && (uint64_t)mp < MIN_PAYLOAD) {
        set_error(
            "nats: the server's max_payload is %lld bytes; Hamok needs at least %u (raise "
            "max_payload in the server's configuration)",
            (long long)mp, MIN_PAYLOAD);
        if (t->own && !close_own(t)) {
            return HAMOK_ERR_TRANSPORT; /* nats.c still holds t: leaked on purpose */
        }
        free_tp(t);
        return HAMOK_ERR_TRANSPORT;
    }
    /* 0 (a borrowed connection not connected yet): the node's default; send()
     * checks the real limit of the moment anyway. */
    t->base.max_frame = mp <= 0                                    ? 0
                        : (uint64_t)mp > HAMOK_TRANSPORT_MAX_FRAME ? HAMOK_TRANSPORT_MAX_FRAME
                                                                   : (uint32_t)mp;
    t->st.max_payload = mp > 0 ? (uint64_t)mp : 0;
    t->st.connected = natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED;
    *out = &t->base;
    return HAMOK_OK;
}

hamok_status hamok_nats_transport_stats(const hamok_transport *bt, hamok_nats_stats *out)
{
    if (bt == NULL || out == NULL || bt->ops != &nats_ops) {
        return HAMOK_ERR_INVALID;
    }
    nats_tp *t = (nats_tp *)(uintptr_t)bt;
    pthread_mutex_lock(&t->st_mu);
    *out = t->st;
    pthread_mutex_unlock(&t->st_mu);
    return HAMOK_OK;
}
