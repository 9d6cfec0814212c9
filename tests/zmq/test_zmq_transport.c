/* The ZeroMQ transport on its own and under nodes, on real sockets on
 * loopback (and ipc:// in a temporary directory): option validation with
 * clear messages, the ops driven directly (unicast, broadcast to seeds and
 * known peers, unknown peers, frames over the limit, nothing after stop),
 * hostile inbound traffic from raw libzmq sockets (wrong routing ids,
 * multipart frames, oversized frames), back-pressure that drops and counts
 * instead of blocking, a new peer started on a dead peer's endpoint, CURVE
 * (admitted keys, a refused key, a peer id bound to the key that first
 * spoke for it) and CURVE key helpers, then nodes: a three-node CURVE
 * cluster that a node with an unlisted key cannot join. Every wait is
 * deadline-polled. */
#define _DEFAULT_SOURCE
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hamok/map.h"
#include "hamok/node.h"
#include "hamok/zmq.h"

#define WAIT_MS 15000u

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool wait_for(bool (*cond)(void *), void *ud, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!cond(ud)) {
        if (now_ms() >= end) {
            return cond(ud);
        }
        (void)poll(NULL, 0, 5);
    }
    return true;
}

static hamok_id mkid(uint8_t n)
{
    hamok_id id;
    memset(id.b, 0, sizeof id.b);
    id.b[0] = 0x40;
    id.b[15] = n;
    return id;
}

/* ------------------------------------------------------------------------ */
/* A sink that records what arrives */

typedef struct rx {
    hamok_transport_sink sink; /* first */
    pthread_mutex_t mu;
    int frames;
    size_t last_len;
    unsigned char last[256];
    hamok_id last_from;
    int errors;
    char error_text[512];
    int links[5];
} rx;

static void rx_deliver_from(hamok_transport_sink *s, const hamok_id *from, const void *bytes,
                            size_t len)
{
    rx *r = (rx *)s;
    pthread_mutex_lock(&r->mu);
    r->frames++;
    r->last_len = len;
    r->last_from = *from;
    memcpy(r->last, bytes, len < sizeof r->last ? len : sizeof r->last);
    pthread_mutex_unlock(&r->mu);
}

static void rx_deliver(hamok_transport_sink *s, const void *bytes, size_t len)
{
    (void)s;
    (void)bytes;
    (void)len;
    fail_msg("the zmq transport must deliver with the peer's routing id (deliver_from)");
}

static void rx_error(hamok_transport_sink *s, hamok_status st, const char *text)
{
    (void)st;
    rx *r = (rx *)s;
    pthread_mutex_lock(&r->mu);
    r->errors++;
    snprintf(r->error_text, sizeof r->error_text, "%s", text);
    pthread_mutex_unlock(&r->mu);
}

static void rx_link(hamok_transport_sink *s, hamok_transport_link state, const char *text)
{
    (void)text;
    rx *r = (rx *)s;
    pthread_mutex_lock(&r->mu);
    r->links[state]++;
    pthread_mutex_unlock(&r->mu);
}

static void rx_init(rx *r)
{
    memset(r, 0, sizeof *r);
    r->sink.deliver = rx_deliver;
    r->sink.deliver_from = rx_deliver_from;
    r->sink.error = rx_error;
    r->sink.link = rx_link;
    pthread_mutex_init(&r->mu, NULL);
}

static int rx_frames(rx *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->frames;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* A transport with its sink, started. */
typedef struct tp {
    hamok_transport *t;
    rx r;
} tp;

static void tp_start(tp *p, const hamok_zmq_options *o, uint8_t id)
{
    hamok_status st = hamok_zmq_transport_new(o, &p->t);
    if (st != HAMOK_OK) {
        fail_msg("hamok_zmq_transport_new: %s: %s", hamok_status_str(st), hamok_zmq_last_error());
    }
    p->t->self = mkid(id);
    snprintf(p->t->cluster, sizeof p->t->cluster, "test");
    rx_init(&p->r);
    assert_int_equal(p->t->ops->start(p->t, &p->r.sink), HAMOK_OK);
}

static void tp_stop(tp *p)
{
    if (p->t != NULL) {
        p->t->ops->stop(p->t);
        p->t->ops->destroy(p->t);
        p->t = NULL;
    }
}

static hamok_zmq_stats stats(const tp *p)
{
    hamok_zmq_stats s;
    assert_int_equal(hamok_zmq_transport_stats(p->t, &s), HAMOK_OK);
    return s;
}

/* Send `bytes` from `from` (to `to`, or broadcast) every 20 ms until `at`
 * has received `want` frames in all. A send may be dropped while a
 * connection is not up yet (ZMQ_IMMEDIATE), so the first ones are retried. */
typedef struct resend {
    tp *from, *at;
    const hamok_id *to;
    const char *bytes;
    int want;
} resend;

static bool resend_until(void *ud)
{
    resend *rs = ud;
    if (rx_frames(&rs->at->r) >= rs->want) {
        return true;
    }
    hamok_status st = rs->from->t->ops->send(rs->from->t, rs->to, rs->bytes, strlen(rs->bytes));
    assert_int_equal(st, HAMOK_OK);
    (void)poll(NULL, 0, 15);
    return rx_frames(&rs->at->r) >= rs->want;
}

/* ------------------------------------------------------------------------ */
/* Options */

static void refused(const hamok_zmq_options *o, hamok_status want, const char *text)
{
    hamok_transport *t = (hamok_transport *)(uintptr_t)1;
    hamok_status st = hamok_zmq_transport_new(o, &t);
    printf("    refused as expected: %s\n", hamok_zmq_last_error());
    assert_int_equal(st, want);
    assert_null(t);
    if (strstr(hamok_zmq_last_error(), text) == NULL) {
        fail_msg("expected '%s' in '%s'", text, hamok_zmq_last_error());
    }
}

static void test_options(void **state)
{
    (void)state;
    char pub[HAMOK_ZMQ_KEY_LEN + 1], sec[HAMOK_ZMQ_KEY_LEN + 1];
    assert_int_equal(hamok_zmq_keygen(pub, sec), HAMOK_OK);
    char pub2[HAMOK_ZMQ_KEY_LEN + 1], sec2[HAMOK_ZMQ_KEY_LEN + 1];
    assert_int_equal(hamok_zmq_keygen(pub2, sec2), HAMOK_OK);

    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    o.bind = "udp://127.0.0.1:5000";
    refused(&o, HAMOK_ERR_INVALID, "bind endpoint");
    o.bind = "tcp://127.0.0.1";
    refused(&o, HAMOK_ERR_INVALID, "bind endpoint");
    o.bind = "tcp://0.0.0.0:0";
    refused(&o, HAMOK_ERR_INVALID, "advertise");
    o.advertise = "tcp://0.0.0.0:5555";
    refused(&o, HAMOK_ERR_INVALID, "advertise endpoint");
    hamok_zmq_options_init(&o);
    o.bind = "tcp://203.0.113.1:0"; /* TEST-NET-3: not an address of this host */
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot bind");

    hamok_zmq_options_init(&o);
    const char *bad_seeds[] = {"tcp://127.0.0.1:1", "nonsense"};
    o.seeds = bad_seeds;
    o.n_seeds = 2;
    refused(&o, HAMOK_ERR_INVALID, "seed 'nonsense'");
    o.seeds = NULL;
    refused(&o, HAMOK_ERR_INVALID, "n_seeds");

    hamok_zmq_options_init(&o);
    o.curve_secret_key = "too short";
    refused(&o, HAMOK_ERR_INVALID, "secret key");
    o.curve_secret_key = sec;
    refused(&o, HAMOK_ERR_INVALID, "admitted public keys");
    o.curve_public_key = pub2;
    const char *allowed[] = {pub2};
    o.curve_allowed = allowed;
    o.n_curve_allowed = 1;
    refused(&o, HAMOK_ERR_INVALID, "does not belong");
    o.curve_public_key = pub;
    const char *bad_allowed[] = {"not a key"};
    o.curve_allowed = bad_allowed;
    refused(&o, HAMOK_ERR_INVALID, "curve_allowed");
    o.curve_allowed = NULL;
    o.n_curve_allowed = 0;
    o.curve_allowed_file = "/nonexistent/allowed_keys";
    refused(&o, HAMOK_ERR_IO, "/nonexistent/allowed_keys");

    char path[] = "/tmp/hamok-zmq-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# admitted keys\n\n%s\nnot-a-key\n", pub2);
    fclose(f);
    o.curve_allowed_file = path;
    char where[64];
    snprintf(where, sizeof where, "%s:4", path);
    refused(&o, HAMOK_ERR_INVALID, where);
    f = fopen(path, "w");
    fprintf(f, "# admitted keys\n  %s  \n", pub2);
    fclose(f);
    hamok_transport *t = NULL;
    assert_int_equal(hamok_zmq_transport_new(&o, &t), HAMOK_OK);
    assert_string_equal(hamok_zmq_last_error(), "");
    /* Under CURVE the advertised endpoint carries the server key. */
    const char *ep = t->ops->local_endpoint(t);
    assert_non_null(strstr(ep, pub));
    t->ops->destroy(t); /* never started */
    unlink(path);

    hamok_zmq_options_init(&o);
    o.curve_allowed = allowed;
    o.n_curve_allowed = 1;
    refused(&o, HAMOK_ERR_INVALID, "without the secret key");

    assert_int_equal(hamok_zmq_transport_new(NULL, NULL), HAMOK_ERR_INVALID);
    hamok_zmq_stats s;
    assert_int_equal(hamok_zmq_transport_stats(NULL, &s), HAMOK_ERR_INVALID);
}

static void test_keys(void **state)
{
    (void)state;
    char pub[HAMOK_ZMQ_KEY_LEN + 1], sec[HAMOK_ZMQ_KEY_LEN + 1], derived[HAMOK_ZMQ_KEY_LEN + 1];
    assert_int_equal(hamok_zmq_keygen(pub, sec), HAMOK_OK);
    assert_int_equal(strlen(pub), HAMOK_ZMQ_KEY_LEN);
    assert_int_equal(strlen(sec), HAMOK_ZMQ_KEY_LEN);
    assert_int_equal(hamok_zmq_public_key(sec, derived), HAMOK_OK);
    assert_string_equal(derived, pub);
    assert_int_equal(hamok_zmq_public_key("short", derived), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_zmq_public_key(NULL, derived), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_zmq_keygen(NULL, sec), HAMOK_ERR_INVALID);
}

/* ------------------------------------------------------------------------ */
/* The ops */

static void test_unicast_broadcast(void **state)
{
    (void)state;
    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    tp a = {0}, b = {0}, c = {0};
    tp_start(&a, &o, 1);
    const char *ea = a.t->ops->local_endpoint(a.t);
    assert_non_null(strstr(ea, "tcp://127.0.0.1:"));
    assert_null(strstr(ea, ":0")); /* port 0 resolved */
    assert_int_equal(a.r.links[HAMOK_LINK_CONNECTED], 1);
    o.seeds = &ea;
    o.n_seeds = 1;
    tp_start(&b, &o, 2);
    tp_start(&c, &o, 3);

    /* Broadcasts reach the seed; the source is the sender's id. */
    resend rs = {.from = &b, .at = &a, .to = NULL, .bytes = "hello from b", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    assert_memory_equal(a.r.last_from.b, b.t->self.b, HAMOK_ID_LEN);
    assert_memory_equal(a.r.last, "hello from b", 12);

    /* Unicast needs a known peer. */
    assert_int_equal(a.t->ops->send(a.t, &b.t->self, "x", 1), HAMOK_ERR_NOT_FOUND);
    assert_true(stats(&a).dropped_unknown >= 1);
    a.t->ops->set_peer(a.t, &b.t->self, b.t->ops->local_endpoint(b.t));
    a.t->ops->set_peer(a.t, &c.t->self, c.t->ops->local_endpoint(c.t));
    a.t->ops->set_peer(a.t, &a.t->self, ea); /* itself: ignored */
    rs = (resend){.from = &a, .at = &b, .to = &b.t->self, .bytes = "to b", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    assert_memory_equal(b.r.last_from.b, a.t->self.b, HAMOK_ID_LEN);
    assert_int_equal(rx_frames(&c.r), 0); /* unicast is unicast */

    /* A broadcast of A reaches both known peers. */
    int bc = rx_frames(&b.r), cc = rx_frames(&c.r);
    rs = (resend){.from = &a, .at = &c, .to = NULL, .bytes = "all", .want = cc + 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    assert_true(rx_frames(&b.r) > bc);
    assert_true(stats(&a).peers == 2);

    /* Over the frame limit: refused, counted, nothing sent. */
    size_t big = (size_t)a.t->max_frame + 1;
    char *buf = calloc(1, big);
    assert_int_equal(a.t->ops->send(a.t, &b.t->self, buf, big), HAMOK_ERR_TOO_BIG);
    assert_int_equal(a.t->ops->send(a.t, NULL, buf, big), HAMOK_ERR_TOO_BIG);
    assert_int_equal(stats(&a).rejected_size, 2);
    /* Exactly the limit travels. */
    int before = rx_frames(&b.r);
    assert_int_equal(a.t->ops->send(a.t, &b.t->self, buf, big - 1), HAMOK_OK);
    free(buf);
    rs = (resend){.from = &a, .at = &b, .to = &b.t->self, .bytes = "after", .want = before + 2};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    pthread_mutex_lock(&b.r.mu);
    bool saw_big = b.r.frames >= before + 2;
    pthread_mutex_unlock(&b.r.mu);
    assert_true(saw_big);

    /* Forgetting a peer: unicast refused again. */
    a.t->ops->set_peer(a.t, &c.t->self, NULL);
    assert_int_equal(a.t->ops->send(a.t, &c.t->self, "x", 1), HAMOK_ERR_NOT_FOUND);

    /* After stop nothing is delivered and send refuses. */
    b.t->ops->stop(b.t);
    b.t->ops->stop(b.t); /* idempotent */
    int after_stop = rx_frames(&b.r);
    assert_int_equal(b.t->ops->send(b.t, NULL, "x", 1), HAMOK_ERR_STATE);
    for (int k = 0; k < 20; k++) {
        a.t->ops->send(a.t, &b.t->self, "late", 4);
    }
    (void)poll(NULL, 0, 100); /* a frame delivered after stop would show here */
    assert_int_equal(rx_frames(&b.r), after_stop);
    tp_stop(&a);
    tp_stop(&b);
    tp_stop(&c);
}

static void test_ipc(void **state)
{
    (void)state;
    char dir[] = "/tmp/hamok-zmq-ipc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ep_a[128], ep_b[128];
    snprintf(ep_a, sizeof ep_a, "ipc://%s/a", dir);
    snprintf(ep_b, sizeof ep_b, "ipc://%s/b", dir);
    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    o.bind = ep_a;
    tp a = {0}, b = {0};
    tp_start(&a, &o, 1);
    assert_string_equal(a.t->ops->local_endpoint(a.t), ep_a);
    const char *seed = ep_a;
    o.bind = ep_b;
    o.seeds = &seed;
    o.n_seeds = 1;
    tp_start(&b, &o, 2);
    resend rs = {.from = &b, .at = &a, .to = NULL, .bytes = "over ipc", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    tp_stop(&a);
    tp_stop(&b);
    char path[160];
    snprintf(path, sizeof path, "%s/a", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/b", dir);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* Hostile inbound traffic from raw libzmq sockets */

typedef struct stat_wait {
    tp *p;
    uint64_t rejected_malformed;
} stat_wait;

static bool malformed_at_least(void *ud)
{
    stat_wait *w = ud;
    return stats(w->p).rejected_malformed >= w->rejected_malformed;
}

static void *raw_dealer(void *ctx, const char *ep, const void *rid, size_t rid_len)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(s);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (rid != NULL) {
        assert_int_equal(zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, rid_len), 0);
    }
    assert_int_equal(zmq_connect(s, ep), 0);
    return s;
}

static void test_hostile_inbound(void **state)
{
    (void)state;
    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    tp a = {0};
    tp_start(&a, &o, 1);
    const char *ea = a.t->ops->local_endpoint(a.t);
    void *ctx = zmq_ctx_new();

    /* A routing id that is not a peer id (5 bytes). */
    void *s1 = raw_dealer(ctx, ea, "short", 5);
    /* A peer-id routing id, but a message of two parts. */
    hamok_id fake = mkid(9);
    void *s2 = raw_dealer(ctx, ea, fake.b, HAMOK_ID_LEN);
    stat_wait w = {.p = &a, .rejected_malformed = 2};
    uint64_t end = now_ms() + WAIT_MS;
    while (!malformed_at_least(&w) && now_ms() < end) {
        zmq_send(s1, "frame", 5, ZMQ_DONTWAIT);
        zmq_send(s2, "part1", 5, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(s2, "part2", 5, ZMQ_DONTWAIT);
        (void)poll(NULL, 0, 20);
    }
    assert_true(malformed_at_least(&w));
    assert_int_equal(rx_frames(&a.r), 0);

    /* Over ZMQ_MAXMSGSIZE: libzmq drops the connection before the frame is
     * read into memory; nothing is delivered. */
    void *s3 = raw_dealer(ctx, ea, fake.b, HAMOK_ID_LEN);
    size_t big = (size_t)a.t->max_frame + 4096;
    char *buf = calloc(1, big);
    for (int k = 0; k < 3; k++) {
        zmq_send(s3, buf, big, ZMQ_DONTWAIT);
    }
    free(buf);
    /* The same socket's next frames (after its reconnection) and a good one
     * from a fresh socket still get through: the ROUTER is unharmed. */
    void *s4 = raw_dealer(ctx, ea, fake.b, HAMOK_ID_LEN);
    end = now_ms() + WAIT_MS;
    while (rx_frames(&a.r) == 0 && now_ms() < end) {
        zmq_send(s4, "fine", 4, ZMQ_DONTWAIT);
        (void)poll(NULL, 0, 20);
    }
    assert_true(rx_frames(&a.r) >= 1);
    pthread_mutex_lock(&a.r.mu);
    assert_int_equal(a.r.last_len, 4);
    assert_memory_equal(a.r.last_from.b, fake.b, HAMOK_ID_LEN);
    pthread_mutex_unlock(&a.r.mu);
    zmq_close(s1);
    zmq_close(s2);
    zmq_close(s3);
    zmq_close(s4);
    zmq_ctx_term(ctx);
    tp_stop(&a);
}

/* ------------------------------------------------------------------------ */
/* Back-pressure: drop and count, never block */

static void test_backpressure(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    /* A ROUTER that accepts the connection and never reads. */
    void *sink = zmq_socket(ctx, ZMQ_ROUTER);
    int small = 10, zero = 0;
    zmq_setsockopt(sink, ZMQ_RCVHWM, &small, sizeof small);
    zmq_setsockopt(sink, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(sink, "tcp://127.0.0.1:*"), 0);
    char sink_ep[128];
    size_t sz = sizeof sink_ep;
    assert_int_equal(zmq_getsockopt(sink, ZMQ_LAST_ENDPOINT, sink_ep, &sz), 0);

    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    o.sndhwm = 10;
    tp a = {0};
    tp_start(&a, &o, 1);
    hamok_id peer = mkid(2);
    a.t->ops->set_peer(a.t, &peer, sink_ep);
    /* Once connected: frames for a peer without a connection are dropped at
     * once (ZMQ_IMMEDIATE), the slow reader's only when its queues fill. */
    uint64_t up = now_ms() + WAIT_MS;
    while (stats(&a).peers < 1 && now_ms() < up) {
        (void)poll(NULL, 0, 5);
    }
    assert_int_equal(stats(&a).peers, 1);
    /* A peer at an endpoint where nobody listens. */
    hamok_id dead = mkid(3);
    a.t->ops->set_peer(a.t, &dead, "tcp://127.0.0.1:1");

    enum { FRAMES = 20000, SIZE = 8192 };
    char *frame = calloc(1, SIZE);
    for (int k = 0; k < FRAMES; k++) {
        assert_int_equal(a.t->ops->send(a.t, &peer, frame, SIZE), HAMOK_OK);
        assert_int_equal(a.t->ops->send(a.t, &dead, frame, 16), HAMOK_OK);
    }
    free(frame);
    /* Everything was either handed to libzmq (bounded by the HWMs and the
     * kernel's socket buffers) or dropped and counted; the sends all
     * returned at once. */
    uint64_t end = now_ms() + WAIT_MS;
    hamok_zmq_stats s = stats(&a);
    while (s.frames_sent + s.dropped_hwm < 2u * FRAMES && now_ms() < end) {
        (void)poll(NULL, 0, 10);
        s = stats(&a);
    }
    printf("    %" PRIu64 " frames handed to libzmq, %" PRIu64 " dropped and counted\n",
           s.frames_sent, s.dropped_hwm);
    assert_int_equal(s.frames_sent + s.dropped_hwm, 2u * FRAMES);
    assert_true(s.dropped_hwm >= FRAMES);          /* at least every frame for the dead peer */
    assert_true(s.frames_sent < (uint64_t)FRAMES); /* the slow reader did not take them all */
    tp_stop(&a);
    zmq_close(sink);
    zmq_ctx_term(ctx);
}

/* ------------------------------------------------------------------------ */
/* A new peer on a dead peer's endpoint */

/* A peer is killed and another one (a new id: memory mode) starts on the
 * same endpoint, as a restarted container does, while the dead one is still
 * known (it stays in the configuration until the peer timeout). The two
 * links to that endpoint must not take its connection from each other
 * (with one routing id for both, the ROUTER there handed it over to each
 * reconnection in turn and the new peer heard only now and then): once the
 * new peer's link is up, every frame for it arrives and none is dropped. */
static void test_new_peer_on_old_endpoint(void **state)
{
    (void)state;
    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    tp a = {0}, old = {0}, fresh = {0};
    tp_start(&a, &o, 1);
    tp_start(&old, &o, 2);
    char ep[256];
    snprintf(ep, sizeof ep, "%s", old.t->ops->local_endpoint(old.t));
    a.t->ops->set_peer(a.t, &old.t->self, ep);
    resend rs = {.from = &a, .at = &old, .to = &old.t->self, .bytes = "to old", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    tp_stop(&old);

    o.bind = ep;
    tp_start(&fresh, &o, 3);
    a.t->ops->set_peer(a.t, &fresh.t->self, ep); /* the dead peer stays known */
    rs = (resend){.from = &a, .at = &fresh, .to = &fresh.t->self, .bytes = "to new", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));

    enum { STEADY = 100 };
    uint64_t dropped = stats(&a).dropped_hwm;
    int before = rx_frames(&fresh.r);
    for (int k = 0; k < STEADY; k++) {
        assert_int_equal(a.t->ops->send(a.t, &fresh.t->self, "steady", 6), HAMOK_OK);
        (void)poll(NULL, 0, 10);
    }
    uint64_t end = now_ms() + WAIT_MS;
    while (rx_frames(&fresh.r) < before + STEADY && now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    printf("    %d of %d frames arrived, %" PRIu64 " dropped\n", rx_frames(&fresh.r) - before,
           STEADY, stats(&a).dropped_hwm - dropped);
    assert_int_equal(rx_frames(&fresh.r), before + STEADY);
    assert_int_equal(stats(&a).dropped_hwm, dropped);
    tp_stop(&fresh);
    tp_stop(&a);
}

/* ------------------------------------------------------------------------ */
/* CURVE */

typedef struct keypair {
    char pub[HAMOK_ZMQ_KEY_LEN + 1];
    char sec[HAMOK_ZMQ_KEY_LEN + 1];
} keypair;

static bool auth_rejected(void *ud)
{
    tp *p = ud;
    return stats(p).rejected_auth >= 1;
}

static void test_curve(void **state)
{
    (void)state;
    keypair ka, kb, kc;
    assert_int_equal(hamok_zmq_keygen(ka.pub, ka.sec), HAMOK_OK);
    assert_int_equal(hamok_zmq_keygen(kb.pub, kb.sec), HAMOK_OK);
    assert_int_equal(hamok_zmq_keygen(kc.pub, kc.sec), HAMOK_OK);
    const char *listed[] = {ka.pub, kb.pub};

    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    o.curve_secret_key = ka.sec;
    o.curve_allowed = listed;
    o.n_curve_allowed = 2;
    tp a = {0}, b = {0}, c = {0}, spoof = {0};
    tp_start(&a, &o, 1);
    /* A seed given without its key: tried with every admitted key. */
    char seed_plain[256];
    snprintf(seed_plain, sizeof seed_plain, "%s", a.t->ops->local_endpoint(a.t));
    *strchr(seed_plain, '|') = '\0';
    const char *seed = seed_plain;
    o.seeds = &seed;
    o.n_seeds = 1;
    o.curve_secret_key = kb.sec;
    tp_start(&b, &o, 2);
    resend rs = {.from = &b, .at = &a, .to = NULL, .bytes = "curve hello", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));
    assert_memory_equal(a.r.last_from.b, b.t->self.b, HAMOK_ID_LEN);
    /* And back, through the endpoint with its key. */
    a.t->ops->set_peer(a.t, &b.t->self, b.t->ops->local_endpoint(b.t));
    rs = (resend){.from = &a, .at = &b, .to = &b.t->self, .bytes = "curve reply", .want = 1};
    assert_true(wait_for(resend_until, &rs, WAIT_MS));

    /* A key that is not listed: refused by the ZAP handler, counted, and
     * reported through the sink; nothing delivered. */
    const char *seed_with_key = a.t->ops->local_endpoint(a.t);
    o.seeds = &seed_with_key;
    const char *c_listed[] = {ka.pub}; /* C trusts A; A does not trust C */
    o.curve_allowed = c_listed;
    o.n_curve_allowed = 1;
    o.curve_secret_key = kc.sec;
    tp_start(&c, &o, 3);
    int before = rx_frames(&a.r);
    uint64_t end = now_ms() + WAIT_MS;
    while (!auth_rejected(&a) && now_ms() < end) {
        c.t->ops->send(c.t, NULL, "let me in", 9);
        (void)poll(NULL, 0, 20);
    }
    assert_true(auth_rejected(&a));
    assert_int_equal(rx_frames(&a.r), before);
    pthread_mutex_lock(&a.r.mu);
    assert_non_null(strstr(a.r.error_text, kc.pub));
    pthread_mutex_unlock(&a.r.mu);

    /* A listed key speaking for a peer id that another key spoke for
     * first: dropped and counted. */
    uint64_t rejected = stats(&a).rejected_auth;
    o.curve_allowed = listed;
    o.n_curve_allowed = 2;
    o.curve_secret_key = ka.sec; /* admitted (A's own key)... */
    tp_start(&spoof, &o, 2);     /* ...claiming B's id */
    end = now_ms() + WAIT_MS;
    while (stats(&a).rejected_auth == rejected && now_ms() < end) {
        spoof.t->ops->send(spoof.t, NULL, "i am b", 6);
        (void)poll(NULL, 0, 20);
    }
    assert_true(stats(&a).rejected_auth > rejected);
    pthread_mutex_lock(&a.r.mu);
    assert_true(a.r.last_len != 6 || memcmp(a.r.last, "i am b", 6) != 0);
    pthread_mutex_unlock(&a.r.mu);

    /* A plain (no CURVE) peer gets nothing through either. */
    tp plain = {0};
    hamok_zmq_options_init(&o);
    o.seeds = &seed;
    o.n_seeds = 1;
    tp_start(&plain, &o, 7);
    before = rx_frames(&a.r);
    for (int k = 0; k < 20; k++) {
        plain.t->ops->send(plain.t, NULL, "plain", 5);
        (void)poll(NULL, 0, 10);
    }
    assert_int_equal(rx_frames(&a.r), before);
    tp_stop(&plain);
    tp_stop(&spoof);
    tp_stop(&c);
    tp_stop(&b);
    tp_stop(&a);
}

/* ------------------------------------------------------------------------ */
/* Nodes over zmq with CURVE */

typedef struct znode {
    hamok_node *node;
    hamok_transport *t; /* owned by the node */
} znode;

static void znode_start(znode *n, const hamok_zmq_options *o)
{
    hamok_transport *t = NULL;
    hamok_status st = hamok_zmq_transport_new(o, &t);
    if (st != HAMOK_OK) {
        fail_msg("transport: %s", hamok_zmq_last_error());
    }
    hamok_config *cfg = NULL;
    assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
    hamok_config_set_cluster(cfg, "curve");
    hamok_config_set_timing(cfg, 400, 50);
    n->t = t;
    assert_int_equal(hamok_node_new(&n->node, cfg, &t), HAMOK_OK);
    hamok_config_destroy(&cfg);
}

typedef struct voters_wait {
    znode *nodes;
    size_t n;
} voters_wait;

static bool all_voters(void *ud)
{
    voters_wait *w = ud;
    for (size_t i = 0; i < w->n; i++) {
        hamok_node_stats s;
        hamok_node_stats_get(w->nodes[i].node, &s);
        if (s.members != w->n || s.role == HAMOK_ROLE_LEARNER || s.role == HAMOK_ROLE_NONE) {
            return false;
        }
    }
    return true;
}

static void test_curve_cluster(void **state)
{
    (void)state;
    keypair k[4];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(hamok_zmq_keygen(k[i].pub, k[i].sec), HAMOK_OK);
    }
    const char *listed[] = {k[0].pub, k[1].pub, k[2].pub};
    znode n[4] = {{0}};
    char first[320];
    for (int i = 0; i < 3; i++) {
        hamok_zmq_options o;
        hamok_zmq_options_init(&o);
        o.curve_secret_key = k[i].sec;
        o.curve_allowed = listed;
        o.n_curve_allowed = 3;
        const char *seed = first;
        if (i > 0) {
            o.seeds = &seed;
            o.n_seeds = 1;
        }
        znode_start(&n[i], &o);
        if (i == 0) {
            snprintf(first, sizeof first, "%s", n[0].t->ops->local_endpoint(n[0].t));
        }
        assert_int_equal(hamok_node_join(n[i].node, (int)WAIT_MS), HAMOK_OK);
    }
    voters_wait w = {.nodes = n, .n = 3};
    assert_true(wait_for(all_voters, &w, WAIT_MS));
    hamok_map *m[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hamok_map_open(n[i].node, "secret", &m[i]), HAMOK_OK);
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(hamok_map_set_str(m[i], key, "v", NULL, (int)WAIT_MS), HAMOK_OK);
    }
    assert_int_equal(hamok_node_sync(n[2].node, (int)WAIT_MS), HAMOK_OK);
    assert_int_equal(hamok_map_size(m[2]), 3);

    /* A fourth peer whose key is not listed cannot join. */
    hamok_zmq_options o;
    hamok_zmq_options_init(&o);
    o.curve_secret_key = k[3].sec;
    o.curve_allowed = listed; /* it trusts them; they do not trust it */
    o.n_curve_allowed = 3;
    const char *seed = first;
    o.seeds = &seed;
    o.n_seeds = 1;
    znode_start(&n[3], &o);
    /* It hears no member, so after the discovery window it founds a cluster
     * of its own (bootstrap_expect 1): it never becomes one of ours. */
    hamok_status st = hamok_node_join(n[3].node, 3000);
    assert_true(st == HAMOK_OK || st == HAMOK_ERR_TIMEOUT);
    hamok_zmq_stats s;
    assert_int_equal(hamok_zmq_transport_stats(n[0].t, &s), HAMOK_OK);
    assert_true(s.rejected_auth >= 1);
    for (int i = 0; i < 4; i++) {
        hamok_node_stats ns;
        hamok_node_stats_get(n[i].node, &ns);
        assert_int_equal(ns.members, i < 3 ? 3 : (st == HAMOK_OK ? 1 : 0));
    }
    hamok_node_destroy(&n[3].node);
    for (int i = 0; i < 3; i++) {
        hamok_map_close(&m[i]);
    }
    for (int i = 2; i >= 0; i--) {
        hamok_node_destroy(&n[i].node);
    }
}

typedef struct links_wait {
    znode *nodes;
    size_t n;
    uint64_t links;
    size_t members;
} links_wait;

static bool links_are(void *ud)
{
    links_wait *w = ud;
    for (size_t i = 0; i < w->n; i++) {
        hamok_zmq_stats s;
        hamok_node_stats ns;
        hamok_zmq_transport_stats(w->nodes[i].t, &s);
        hamok_node_stats_get(w->nodes[i].node, &ns);
        if (s.links != w->links || ns.members != w->members) {
            return false;
        }
    }
    return true;
}

/* A member that dies is removed after peer_timeout; the survivors' transports
 * then forget its endpoint (its DEALER is closed) once it stayed away and
 * silent long enough, so links to dead identities do not pile up. */
static void test_departed_forgotten(void **state)
{
    (void)state;
    znode n[3] = {{0}};
    char first[320];
    for (int i = 0; i < 3; i++) {
        hamok_zmq_options o;
        hamok_zmq_options_init(&o);
        const char *seed = first;
        if (i > 0) {
            o.seeds = &seed;
            o.n_seeds = 1;
        }
        hamok_transport *t = NULL;
        assert_int_equal(hamok_zmq_transport_new(&o, &t), HAMOK_OK);
        if (i == 0) {
            snprintf(first, sizeof first, "%s", t->ops->local_endpoint(t));
        }
        hamok_config *cfg = NULL;
        assert_int_equal(hamok_config_new(&cfg), HAMOK_OK);
        hamok_config_set_cluster(cfg, "departed");
        hamok_config_set_timing(cfg, 400, 50);
        assert_int_equal(hamok_config_set_peer_timeout(cfg, 1000), HAMOK_OK);
        n[i].t = t;
        assert_int_equal(hamok_node_new(&n[i].node, cfg, &t), HAMOK_OK);
        hamok_config_destroy(&cfg);
        assert_int_equal(hamok_node_join(n[i].node, (int)WAIT_MS), HAMOK_OK);
    }
    links_wait w = {.nodes = n, .n = 3, .links = 2, .members = 3};
    assert_true(wait_for(links_are, &w, WAIT_MS));
    hamok_node_destroy(&n[2].node); /* gone without leaving */
    w = (links_wait){.nodes = n, .n = 2, .links = 1, .members = 2};
    uint64_t t0 = now_ms();
    assert_true(wait_for(links_are, &w, 3 * WAIT_MS));
    printf("    removed and forgotten %" PRIu64 " ms after it died\n", now_ms() - t0);
    hamok_node_destroy(&n[1].node);
    hamok_node_destroy(&n[0].node);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_unicast_broadcast),
        cmocka_unit_test(test_ipc),
        cmocka_unit_test(test_hostile_inbound),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_new_peer_on_old_endpoint),
        cmocka_unit_test(test_curve),
        cmocka_unit_test(test_curve_cluster),
        cmocka_unit_test(test_departed_forgotten),
    };
    return cmocka_run_group_tests_name("zmq_transport", tests, NULL, NULL);
}
