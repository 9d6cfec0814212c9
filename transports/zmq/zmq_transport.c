/* The ZeroMQ mesh transport (include/hamok/zmq.h) on libzmq.
 *
 * Sockets and threads:
 *  - Every transport has its own zmq context, so that each has its own ZAP
 *    endpoint (inproc://zeromq.zap.01 is per context) and several
 *    transports in one process (tests, embedding) keep separate CURVE
 *    policies. One actor thread owns every socket once start() has run: the
 *    ROUTER bound on the local endpoint, the ZAP handler, one DEALER per
 *    known peer (routing id = this peer's id and a serial of the link, so
 *    that two links to one endpoint never share one) with its monitor, and
 *    the DEALERs to seeds not identified yet.
 *  - The node's loop thread talks to the actor over an inproc PAIR pipe:
 *    [header][payload] messages (send, broadcast, set-peer, quit). send()
 *    copies the frame once into a zmq message that then moves, uncopied, to
 *    the DEALER. The pipe is written with ZMQ_DONTWAIT: when it is full the
 *    frame is dropped and counted, so the loop thread never blocks.
 *  - DEALERs run with ZMQ_IMMEDIATE: a frame for a peer with no completed
 *    connection is refused at once (dropped_hwm) instead of piling up, so
 *    memory stays bounded by the high-water marks whatever the peers do;
 *    Raft and discovery retransmit.
 *  - Inbound frames arrive on the ROUTER as [routing id][frame] and go to
 *    sink->deliver_from with the routing id's peer id as the claimed
 *    source; the node drops a frame whose envelope names another source.
 *
 * CURVE: the ROUTER is a CURVE server with this peer's key pair; the ZAP
 * handler admits only the listed public keys and reports the key as the
 * connection's User-Id; a peer id is bound to the first key that spoke for
 * it, and a frame from another key claiming that id is dropped and counted.
 * A DEALER must know its server's public key, so under CURVE the advertised
 * endpoint carries it ("tcp://host:port|<Z85 key>"); a seed given without a
 * key is tried with every admitted key (only the right one completes the
 * handshake) until discovery identifies it.
 *
 * czmq is not used: its actors live in one process-wide context (one ZAP
 * endpoint for every transport of the process) and it installs process-wide
 * signal handlers, neither acceptable inside a library.
 *
 * Layering: only the public headers (hamok/...) and libzmq. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hamok/id.h"
#include "hamok/zmq.h"

#define EP_MAX        256
#define KEY_BIN       32
#define DEFAULT_HWM   10000u
#define DEFAULT_RECON 100u
#define MAX_ALLOWED   1024
#define DRAIN_BATCH   1024
#define ERR_TEXT      512
#define ZAP_DOMAIN    "hamok"
#define RID_LEN       (HAMOK_ID_LEN + 4) /* peer id + link serial */

enum { OP_SEND = 'S', OP_BCAST = 'B', OP_PEER = 'P', OP_QUIT = 'Q' };

static _Thread_local char last_error[ERR_TEXT];

static void set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *hamok_zmq_last_error(void)
{
    return last_error;
}

/* A DEALER to a peer (identified) or to a seed (not yet). */
typedef struct zlink {
    bool seed;
    hamok_id id; /* identified peers */
    char endpoint[EP_MAX];
    uint8_t key[KEY_BIN];
    bool has_key;
    void *sock;
    void *mon;
    bool up;
} zlink;

/* A peer id and the CURVE key that first spoke for it. */
typedef struct zbind {
    hamok_id id;
    char key[HAMOK_ZMQ_KEY_LEN + 1];
} zbind;

typedef struct zmq_tp {
    hamok_transport base; /* first: a hamok_transport * is a zmq_tp * */
    void *ctx;
    void *router;
    void *zap;
    void *pipe_loop;  /* the node's loop thread writes here */
    void *pipe_actor; /* the actor reads here */
    char pipe_ep[64];
    char endpoint[EP_MAX + HAMOK_ZMQ_KEY_LEN + 2]; /* advertised, "|key" with CURVE */
    char plain_endpoint[EP_MAX];                   /* advertised, without the key */

    uint32_t sndhwm, rcvhwm, reconnect_ms;

    /* CURVE */
    bool curve;
    uint8_t secret[KEY_BIN], public_key[KEY_BIN];
    uint8_t (*allowed)[KEY_BIN];
    size_t n_allowed;

    /* Seeds as configured (endpoint, optional key). */
    struct {
        char endpoint[EP_MAX];
        uint8_t key[KEY_BIN];
        bool has_key;
    } * seeds;
    size_t n_seeds;

    /* Loop-thread side: the ids set_peer() made known. */
    hamok_id *known;
    size_t n_known, cap_known;

    /* Actor side. */
    zlink **links;
    size_t n_links, cap_links;
    zbind *binds;
    size_t n_binds, cap_binds;
    unsigned mon_seq;
    uint32_t link_seq;
    hamok_transport_sink *sink;
    pthread_t thread;
    bool started, stopped;

    pthread_mutex_t st_mu;
    hamok_zmq_stats st;
} zmq_tp;

static const hamok_transport_ops zmq_ops;

/* ------------------------------------------------------------------------ */
/* Stats */

#define STAT_ADD(t, field, n)              \
    do {                                   \
        pthread_mutex_lock(&(t)->st_mu);   \
        (t)->st.field += (n);              \
        pthread_mutex_unlock(&(t)->st_mu); \
    } while (0)

static void report(zmq_tp *t, hamok_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(zmq_tp *t, hamok_status st, const char *fmt, ...)
{
    if (t->sink == NULL || t->sink->error == NULL) {
        return;
    }
    char text[ERR_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    t->sink->error(t->sink, st, text);
}

/* True when `n` is 1, 2, 4, 8...: report a recurring problem sparsely. */
static bool sparse(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

/* ------------------------------------------------------------------------ */
/* Endpoints and keys */

/* A Z85 CURVE key of 40 characters into its 32 bytes. */
static bool decode_key(const char *s, uint8_t out[KEY_BIN])
{
    return s != NULL && strlen(s) == HAMOK_ZMQ_KEY_LEN && zmq_z85_decode(out, s) != NULL;
}

static bool valid_endpoint(const char *ep)
{
    if (ep == NULL) {
        return false;
    }
    size_t len = strlen(ep);
    if (len >= EP_MAX) {
        return false;
    }
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *colon = strrchr(ep + 6, ':');
        return colon != NULL && colon > ep + 6 && colon[1] != '\0';
    }
    return strncmp(ep, "ipc://", 6) == 0 && len > 6;
}

static bool wildcard_endpoint(const char *ep)
{
    return strncmp(ep, "tcp://*:", 8) == 0 || strncmp(ep, "tcp://0.0.0.0:", 14) == 0 ||
           strncmp(ep, "tcp://[::]:", 11) == 0;
}

/* Split "endpoint|key" (the key optional) into its parts. */
static bool split_endpoint(const char *text, char ep[EP_MAX], uint8_t key[KEY_BIN], bool *has_key)
{
    size_t len = strlen(text);
    *has_key = false;
    if (len > HAMOK_ZMQ_KEY_LEN + 1 && text[len - HAMOK_ZMQ_KEY_LEN - 1] == '|') {
        size_t eplen = len - HAMOK_ZMQ_KEY_LEN - 1;
        if (eplen >= EP_MAX || !decode_key(text + eplen + 1, key)) {
            return false;
        }
        memcpy(ep, text, eplen);
        ep[eplen] = '\0';
        *has_key = true;
    } else {
        if (len >= EP_MAX) {
            return false;
        }
        memcpy(ep, text, len + 1);
    }
    return valid_endpoint(ep);
}

static bool key_allowed(const zmq_tp *t, const uint8_t key[KEY_BIN])
{
    if (memcmp(key, t->public_key, KEY_BIN) == 0) {
        return true;
    }
    for (size_t i = 0; i < t->n_allowed; i++) {
        if (memcmp(t->allowed[i], key, KEY_BIN) == 0) {
            return true;
        }
    }
    return false;
}

static hamok_status add_allowed(zmq_tp *t, const char *text, const char *where)
{
    uint8_t key[KEY_BIN];
    if (!decode_key(text, key)) {
        set_error("zmq: %s: not a Z85 CURVE public key (40 characters): '%.60s'", where, text);
        return HAMOK_ERR_INVALID;
    }
    if (key_allowed(t, key)) {
        return HAMOK_OK;
    }
    if (t->n_allowed >= MAX_ALLOWED) {
        set_error("zmq: more than %d admitted keys", MAX_ALLOWED);
        return HAMOK_ERR_INVALID;
    }
    if (t->allowed == NULL) {
        t->allowed = calloc(MAX_ALLOWED, KEY_BIN);
        if (t->allowed == NULL) {
            return HAMOK_ERR_NOMEM;
        }
    }
    memcpy(t->allowed[t->n_allowed++], key, KEY_BIN);
    return HAMOK_OK;
}

static hamok_status read_allowed_file(zmq_tp *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        set_error("zmq: cannot read the admitted keys file %s: %s", path, strerror(errno));
        return HAMOK_ERR_IO;
    }
    char line[512];
    unsigned lineno = 0;
    hamok_status st = HAMOK_OK;
    while (st == HAMOK_OK && fgets(line, sizeof line, f) != NULL) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        size_t len = strlen(s);
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' ||
                           s[len - 1] == '\t')) {
            s[--len] = '\0';
        }
        if (len == 0 || s[0] == '#') {
            continue;
        }
        char where[600];
        snprintf(where, sizeof where, "%.500s:%u", path, lineno);
        st = add_allowed(t, s, where);
    }
    fclose(f);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Sockets */

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

static void close_socket(void **s)
{
    if (*s != NULL) {
        set_int(*s, ZMQ_LINGER, 0);
        zmq_close(*s);
        *s = NULL;
    }
}

static void link_free(zlink *l)
{
    if (l == NULL) {
        return;
    }
    if (l->sock != NULL) {
        zmq_socket_monitor(l->sock, NULL, 0);
    }
    close_socket(&l->mon);
    close_socket(&l->sock);
    free(l);
}

/* A DEALER to `ep` (server key `key` under CURVE) with its monitor. */
static zlink *link_open(zmq_tp *t, const char *ep, const uint8_t *key)
{
    zlink *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return NULL;
    }
    snprintf(l->endpoint, sizeof l->endpoint, "%s", ep);
    if (key != NULL) {
        memcpy(l->key, key, KEY_BIN);
        l->has_key = true;
    }
    l->sock = zmq_socket(t->ctx, ZMQ_DEALER);
    if (l->sock == NULL) {
        free(l);
        return NULL;
    }
    /* Routing id: this peer's id, then a serial of the link. Two links of
     * this peer to one endpoint (a dead peer's and the new peer restarted
     * there) must not share a routing id: the ROUTER there hands a routing
     * id over to its newest connection (ZMQ_ROUTER_HANDOVER), and the two
     * links would take it from each other on every reconnection. */
    uint8_t rid[RID_LEN];
    memcpy(rid, t->base.self.b, HAMOK_ID_LEN);
    uint32_t serial = t->link_seq++;
    for (size_t i = 0; i < RID_LEN - HAMOK_ID_LEN; i++) {
        rid[HAMOK_ID_LEN + i] = (uint8_t)(serial >> (8 * i));
    }
    bool ok = zmq_setsockopt(l->sock, ZMQ_ROUTING_ID, rid, RID_LEN) == 0 &&
              set_int(l->sock, ZMQ_SNDHWM, (int)t->sndhwm) == 0 &&
              set_int(l->sock, ZMQ_RCVHWM, (int)t->rcvhwm) == 0 &&
              set_int(l->sock, ZMQ_LINGER, 0) == 0 && set_int(l->sock, ZMQ_IMMEDIATE, 1) == 0 &&
              set_int(l->sock, ZMQ_RECONNECT_IVL, (int)t->reconnect_ms) == 0 &&
              set_int(l->sock, ZMQ_RECONNECT_IVL_MAX, (int)t->reconnect_ms * 10) == 0;
    if (ok && t->curve) {
        ok = zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, key, KEY_BIN) == 0 &&
             zmq_setsockopt(l->sock, ZMQ_CURVE_PUBLICKEY, t->public_key, KEY_BIN) == 0 &&
             zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, t->secret, KEY_BIN) == 0;
    }
    char mon_ep[96];
    snprintf(mon_ep, sizeof mon_ep, "inproc://hamok-zmq-mon-%u", t->mon_seq++);
    ok = ok && zmq_socket_monitor(l->sock, mon_ep,
                                  ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0;
    if (ok) {
        l->mon = zmq_socket(t->ctx, ZMQ_PAIR);
        ok = l->mon != NULL && zmq_connect(l->mon, mon_ep) == 0;
    }
    if (ok && zmq_connect(l->sock, ep) != 0) {
        report(t, HAMOK_ERR_TRANSPORT, "zmq: cannot connect to %s: %s", ep, zmq_strerror(errno));
        ok = false;
    }
    if (!ok) {
        link_free(l);
        return NULL;
    }
    return l;
}

static bool links_push(zmq_tp *t, zlink *l)
{
    if (t->n_links == t->cap_links) {
        size_t cap = t->cap_links ? t->cap_links * 2 : 8;
        zlink **n = realloc(t->links, cap * sizeof *n);
        if (n == NULL) {
            return false;
        }
        t->links = n;
        t->cap_links = cap;
    }
    t->links[t->n_links++] = l;
    return true;
}

static void links_remove(zmq_tp *t, size_t i)
{
    link_free(t->links[i]);
    t->links[i] = t->links[--t->n_links];
}

static zlink *find_peer(zmq_tp *t, const hamok_id *id)
{
    for (size_t i = 0; i < t->n_links; i++) {
        zlink *l = t->links[i];
        if (!l->seed && memcmp(l->id.b, id->b, HAMOK_ID_LEN) == 0) {
            return l;
        }
    }
    return NULL;
}

static void count_peers(zmq_tp *t)
{
    uint64_t up = 0;
    for (size_t i = 0; i < t->n_links; i++) {
        up += !t->links[i]->seed && t->links[i]->up;
    }
    pthread_mutex_lock(&t->st_mu);
    t->st.peers = up;
    t->st.links = t->n_links;
    pthread_mutex_unlock(&t->st_mu);
}

/* The seed DEALERs: one per seed, or under CURVE, for a seed without a key,
 * one per admitted key. The own endpoint is skipped. */
static void open_seeds(zmq_tp *t)
{
    for (size_t i = 0; i < t->n_seeds; i++) {
        const char *ep = t->seeds[i].endpoint;
        if (strcmp(ep, t->plain_endpoint) == 0) {
            continue;
        }
        size_t tries = !t->curve || t->seeds[i].has_key ? 1 : t->n_allowed;
        for (size_t k = 0; k < tries; k++) {
            const uint8_t *key = !t->curve             ? NULL
                                 : t->seeds[i].has_key ? t->seeds[i].key
                                                       : t->allowed[k];
            if (t->curve && memcmp(key, t->public_key, KEY_BIN) == 0 && !t->seeds[i].has_key) {
                continue; /* our own key: that seed would be us */
            }
            zlink *l = link_open(t, ep, key);
            if (l == NULL || !links_push(t, l)) {
                link_free(l);
                continue;
            }
            l->seed = true;
        }
    }
}

/* set_peer on the actor: (re)connect `id` at `text` ("" = forget it). */
static void actor_set_peer(zmq_tp *t, const hamok_id *id, const char *text)
{
    zlink *old = find_peer(t, id);
    if (text[0] == '\0') {
        for (size_t i = 0; old != NULL && i < t->n_links; i++) {
            if (t->links[i] == old) {
                links_remove(t, i);
                break;
            }
        }
        count_peers(t);
        return;
    }
    char ep[EP_MAX];
    uint8_t key[KEY_BIN];
    bool has_key;
    if (!split_endpoint(text, ep, key, &has_key)) {
        report(t, HAMOK_ERR_INVALID, "zmq: ignoring a peer's malformed endpoint '%.300s'", text);
        return;
    }
    if (t->curve && !has_key) {
        report(t, HAMOK_ERR_TRANSPORT,
               "zmq: peer endpoint %s carries no CURVE key (is that peer running without CURVE?)",
               ep);
        return;
    }
    if (old != NULL && strcmp(old->endpoint, ep) == 0 &&
        (!t->curve || memcmp(old->key, key, KEY_BIN) == 0)) {
        return; /* nothing new */
    }
    if (old != NULL) {
        for (size_t i = 0; i < t->n_links; i++) {
            if (t->links[i] == old) {
                links_remove(t, i);
                break;
            }
        }
    }
    /* Adopt a seed DEALER already connected there (same key), close the
     * other attempts at that seed. */
    zlink *adopted = NULL;
    for (size_t i = 0; i < t->n_links;) {
        zlink *l = t->links[i];
        if (l->seed && strcmp(l->endpoint, ep) == 0) {
            if (adopted == NULL && (!t->curve || memcmp(l->key, key, KEY_BIN) == 0)) {
                adopted = l;
                i++;
                continue;
            }
            links_remove(t, i);
            continue;
        }
        i++;
    }
    if (adopted == NULL) {
        adopted = link_open(t, ep, t->curve ? key : NULL);
        if (adopted == NULL || !links_push(t, adopted)) {
            link_free(adopted);
            count_peers(t);
            return;
        }
    }
    adopted->seed = false;
    adopted->id = *id;
    count_peers(t);
}

/* ------------------------------------------------------------------------ */
/* Sending (actor) */

/* Move `msg` out on `l`; counts a refusal. `msg` is closed either way. */
static void link_send(zmq_tp *t, zlink *l, zmq_msg_t *msg)
{
    if (zmq_msg_send(msg, l->sock, ZMQ_DONTWAIT) >= 0) {
        STAT_ADD(t, frames_sent, 1);
        return;
    }
    zmq_msg_close(msg);
    STAT_ADD(t, dropped_hwm, 1);
}

static void actor_send(zmq_tp *t, const uint8_t *hdr, size_t hlen, zmq_msg_t *payload)
{
    if (hdr[0] == OP_BCAST) {
        for (size_t i = 0; i < t->n_links; i++) {
            zmq_msg_t copy;
            zmq_msg_init(&copy);
            zmq_msg_copy(&copy, payload);
            link_send(t, t->links[i], &copy);
        }
        zmq_msg_close(payload);
        return;
    }
    hamok_id to;
    if (hlen != 1 + HAMOK_ID_LEN) {
        zmq_msg_close(payload);
        return;
    }
    memcpy(to.b, hdr + 1, HAMOK_ID_LEN);
    zlink *l = find_peer(t, &to);
    if (l == NULL) {
        zmq_msg_close(payload);
        STAT_ADD(t, dropped_unknown, 1);
        return;
    }
    link_send(t, l, payload);
}

/* One command from the pipe; false on quit. */
static bool actor_command(zmq_tp *t)
{
    zmq_msg_t hdr, payload;
    zmq_msg_init(&hdr);
    if (zmq_msg_recv(&hdr, t->pipe_actor, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&hdr);
        return true;
    }
    const uint8_t *h = zmq_msg_data(&hdr);
    size_t hlen = zmq_msg_size(&hdr);
    if (hlen == 0 || h[0] == OP_QUIT) {
        zmq_msg_close(&hdr);
        return false;
    }
    zmq_msg_init(&payload);
    if (!zmq_msg_more(&hdr) || zmq_msg_recv(&payload, t->pipe_actor, 0) < 0) {
        zmq_msg_close(&payload);
        zmq_msg_close(&hdr);
        return true;
    }
    if (h[0] == OP_PEER && hlen == 1 + HAMOK_ID_LEN) {
        hamok_id id;
        memcpy(id.b, h + 1, HAMOK_ID_LEN);
        char ep[EP_MAX + HAMOK_ZMQ_KEY_LEN + 2];
        size_t n = zmq_msg_size(&payload);
        if (n < sizeof ep) {
            memcpy(ep, zmq_msg_data(&payload), n);
            ep[n] = '\0';
            actor_set_peer(t, &id, ep);
        }
        zmq_msg_close(&payload);
    } else {
        actor_send(t, h, hlen, &payload); /* takes payload */
    }
    zmq_msg_close(&hdr);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Receiving (actor) */

static void drain_parts(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            return;
        }
        zmq_msg_close(&m);
    }
}

/* Does `key` (Z85) speak for `id`? Binds an unbound id to it. */
static bool bind_ok(zmq_tp *t, const hamok_id *id, const char *key)
{
    for (size_t i = 0; i < t->n_binds; i++) {
        if (memcmp(t->binds[i].id.b, id->b, HAMOK_ID_LEN) == 0) {
            return strcmp(t->binds[i].key, key) == 0;
        }
    }
    if (t->n_binds == t->cap_binds) {
        size_t cap = t->cap_binds ? t->cap_binds * 2 : 16;
        zbind *n = realloc(t->binds, cap * sizeof *n);
        if (n == NULL) {
            return false;
        }
        t->binds = n;
        t->cap_binds = cap;
    }
    zbind *b = &t->binds[t->n_binds++];
    b->id = *id;
    snprintf(b->key, sizeof b->key, "%s", key);
    return true;
}

/* One inbound frame from the ROUTER; false when there was none. */
static bool actor_inbound(zmq_tp *t)
{
    zmq_msg_t rid, data;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, t->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&rid);
        return false;
    }
    zmq_msg_init(&data);
    bool ok = zmq_msg_more(&rid) && zmq_msg_recv(&data, t->router, 0) >= 0;
    if (ok && zmq_msg_more(&data)) {
        drain_parts(t->router);
        ok = false;
    }
    if (!ok || zmq_msg_size(&rid) < HAMOK_ID_LEN || zmq_msg_size(&rid) > RID_LEN) {
        /* Not a Hamok peer: no peer-id routing id, or not one frame. */
        STAT_ADD(t, rejected_malformed, 1);
        goto done;
    }
    hamok_id from;
    memcpy(from.b, zmq_msg_data(&rid), HAMOK_ID_LEN);
    if (zmq_msg_size(&data) > t->base.max_frame) {
        STAT_ADD(t, rejected_size, 1);
        goto done;
    }
    if (t->curve) {
        const char *uid = zmq_msg_gets(&data, "User-Id");
        if (uid == NULL || !bind_ok(t, &from, uid)) {
            pthread_mutex_lock(&t->st_mu);
            uint64_t n = ++t->st.rejected_auth;
            pthread_mutex_unlock(&t->st_mu);
            if (sparse(n)) {
                char ids[HAMOK_ID_STR_LEN + 1];
                hamok_id_format(&from, ids);
                report(t, HAMOK_ERR_TRANSPORT,
                       "zmq: dropped a frame claiming peer %s from key %s, which does not speak "
                       "for it (%" PRIu64 " so far)",
                       ids, uid != NULL ? uid : "(none)", n);
            }
            goto done;
        }
    }
    STAT_ADD(t, frames_received, 1);
    t->sink->deliver_from(t->sink, &from, zmq_msg_data(&data), zmq_msg_size(&data));
done:
    zmq_msg_close(&data);
    zmq_msg_close(&rid);
    return true;
}

/* The ZAP handler (RFC 27): admit CURVE clients whose key is listed. */
static void actor_zap(zmq_tp *t)
{
    zmq_msg_t f[8];
    int n = 0;
    bool more = true;
    while (more && n < 8) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], t->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&f[n]);
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    if (more && n == 8) {
        drain_parts(t->zap);
    }
    if (n < 6) {
        for (int i = 0; i < n; i++) {
            zmq_msg_close(&f[i]);
        }
        return; /* REP needs a reply only to a request it could read */
    }
    const char *status = "400", *text = "key not admitted";
    char uid[HAMOK_ZMQ_KEY_LEN + 1] = "";
    bool curve = zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0;
    if (curve && n >= 7 && zmq_msg_size(&f[6]) == KEY_BIN) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        zmq_z85_encode(uid, key, KEY_BIN);
        if (key_allowed(t, key)) {
            status = "200";
            text = "OK";
        }
    } else if (!curve) {
        text = "CURVE required";
    }
    if (status[0] != '2') {
        pthread_mutex_lock(&t->st_mu);
        uint64_t c = ++t->st.rejected_auth;
        pthread_mutex_unlock(&t->st_mu);
        if (sparse(c)) {
            report(t, HAMOK_ERR_TRANSPORT,
                   "zmq: refused a connection with key %s: %s (%" PRIu64 " refusals so far)",
                   uid[0] ? uid : "(none)", text, c);
        }
    }
    /* version, request id, status code, status text, user id, metadata */
    zmq_send(t->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(t->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(t->zap, status, 3, ZMQ_SNDMORE);
    zmq_send(t->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(t->zap, uid, strlen(uid), ZMQ_SNDMORE);
    zmq_send(t->zap, "", 0, 0);
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&f[i]);
    }
}

static void actor_monitor(zmq_tp *t, zlink *l)
{
    zmq_msg_t ev;
    zmq_msg_init(&ev);
    while (zmq_msg_recv(&ev, l->mon, ZMQ_DONTWAIT) >= 0) {
        if (zmq_msg_size(&ev) >= 2) {
            uint16_t e;
            memcpy(&e, zmq_msg_data(&ev), sizeof e);
            if (e == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                l->up = true;
            } else if (e == ZMQ_EVENT_DISCONNECTED) {
                l->up = false;
            }
        }
        if (zmq_msg_more(&ev)) {
            drain_parts(l->mon);
        }
    }
    zmq_msg_close(&ev);
    count_peers(t);
}

static void *actor_main(void *arg)
{
    zmq_tp *t = arg;
    open_seeds(t);
    zmq_pollitem_t *items = NULL;
    size_t cap = 0;
    bool run = true;
    while (run) {
        size_t n = 3 + t->n_links;
        if (n > cap) {
            zmq_pollitem_t *ni = realloc(items, n * sizeof *ni);
            if (ni == NULL) {
                break;
            }
            items = ni;
            cap = n;
        }
        memset(items, 0, n * sizeof *items);
        size_t nitems = 0;
        items[nitems++].socket = t->pipe_actor;
        items[nitems++].socket = t->router;
        size_t zap_i = SIZE_MAX;
        if (t->zap != NULL) {
            zap_i = nitems;
            items[nitems++].socket = t->zap;
        }
        size_t first_mon = nitems;
        size_t n_mon = t->n_links;
        for (size_t i = 0; i < n_mon; i++) {
            items[nitems++].socket = t->links[i]->mon;
        }
        for (size_t i = 0; i < nitems; i++) {
            items[i].events = ZMQ_POLLIN;
        }
        if (zmq_poll(items, (int)nitems, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            report(t, HAMOK_ERR_TRANSPORT, "zmq: poll failed: %s", zmq_strerror(errno));
            break;
        }
        /* Monitors first: the links may change below. */
        for (size_t i = 0; i < n_mon; i++) {
            if (items[first_mon + i].revents & ZMQ_POLLIN) {
                actor_monitor(t, t->links[i]);
            }
        }
        if (zap_i != SIZE_MAX && (items[zap_i].revents & ZMQ_POLLIN)) {
            actor_zap(t);
        }
        if (items[1].revents & ZMQ_POLLIN) {
            for (int k = 0; k < DRAIN_BATCH && actor_inbound(t); k++) {
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            for (int k = 0; k < DRAIN_BATCH; k++) {
                int ev = 0;
                size_t sz = sizeof ev;
                if (zmq_getsockopt(t->pipe_actor, ZMQ_EVENTS, &ev, &sz) != 0 ||
                    !(ev & ZMQ_POLLIN)) {
                    break;
                }
                if (!actor_command(t)) {
                    run = false;
                    break;
                }
            }
        }
    }
    free(items);
    while (t->n_links > 0) {
        links_remove(t, t->n_links - 1);
    }
    count_peers(t);
    close_socket(&t->router);
    close_socket(&t->zap);
    close_socket(&t->pipe_actor);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Transport ops (the node's loop thread) */

static zmq_tp *tp_of(hamok_transport *t)
{
    return (zmq_tp *)t;
}

static hamok_status zt_start(hamok_transport *base, hamok_transport_sink *sink)
{
    zmq_tp *t = tp_of(base);
    if (t->started) {
        return HAMOK_ERR_STATE;
    }
    t->sink = sink;
    if (pthread_create(&t->thread, NULL, actor_main, t) != 0) {
        t->sink = NULL;
        return HAMOK_ERR_TRANSPORT;
    }
    t->started = true;
    if (sink->link != NULL) {
        char text[EP_MAX + 32];
        snprintf(text, sizeof text, "bound %s", t->plain_endpoint);
        sink->link(sink, HAMOK_LINK_CONNECTED, text);
    }
    return HAMOK_OK;
}

/* Queue [hdr][payload] to the actor without blocking. */
static hamok_status pipe_put(zmq_tp *t, const uint8_t *hdr, size_t hlen, const void *bytes,
                             size_t len)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, len) != 0) {
        return HAMOK_ERR_NOMEM;
    }
    if (len > 0) {
        memcpy(zmq_msg_data(&m), bytes, len);
    }
    if (zmq_send(t->pipe_loop, hdr, hlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        STAT_ADD(t, dropped_hwm, 1);
        return HAMOK_OK; /* dropped and counted: Raft retransmits */
    }
    /* The header went out, so the pipe takes the last part (atomic
     * multipart: the second part never fails for HWM). */
    if (zmq_msg_send(&m, t->pipe_loop, 0) < 0) {
        zmq_msg_close(&m);
        return HAMOK_ERR_TRANSPORT;
    }
    return HAMOK_OK;
}

static bool known(const zmq_tp *t, const hamok_id *id)
{
    for (size_t i = 0; i < t->n_known; i++) {
        if (memcmp(t->known[i].b, id->b, HAMOK_ID_LEN) == 0) {
            return true;
        }
    }
    return false;
}

static hamok_status zt_send(hamok_transport *base, const hamok_id *to, const void *bytes,
                            size_t len)
{
    zmq_tp *t = tp_of(base);
    if (!t->started || t->stopped) {
        return HAMOK_ERR_STATE;
    }
    if (len > t->base.max_frame) {
        STAT_ADD(t, rejected_size, 1);
        return HAMOK_ERR_TOO_BIG;
    }
    uint8_t hdr[1 + HAMOK_ID_LEN];
    if (to == NULL) {
        hdr[0] = OP_BCAST;
        return pipe_put(t, hdr, 1, bytes, len);
    }
    if (!known(t, to)) {
        STAT_ADD(t, dropped_unknown, 1);
        return HAMOK_ERR_NOT_FOUND;
    }
    hdr[0] = OP_SEND;
    memcpy(hdr + 1, to->b, HAMOK_ID_LEN);
    return pipe_put(t, hdr, sizeof hdr, bytes, len);
}

static void zt_set_peer(hamok_transport *base, const hamok_id *peer, const char *endpoint)
{
    zmq_tp *t = tp_of(base);
    if (!t->started || t->stopped || memcmp(peer->b, t->base.self.b, HAMOK_ID_LEN) == 0) {
        return;
    }
    if (endpoint == NULL) {
        for (size_t i = 0; i < t->n_known; i++) {
            if (memcmp(t->known[i].b, peer->b, HAMOK_ID_LEN) == 0) {
                t->known[i] = t->known[--t->n_known];
                break;
            }
        }
        endpoint = "";
    } else if (!known(t, peer)) {
        if (t->n_known == t->cap_known) {
            size_t cap = t->cap_known ? t->cap_known * 2 : 16;
            hamok_id *n = realloc(t->known, cap * sizeof *n);
            if (n == NULL) {
                return;
            }
            t->known = n;
            t->cap_known = cap;
        }
        t->known[t->n_known++] = *peer;
    }
    uint8_t hdr[1 + HAMOK_ID_LEN];
    hdr[0] = OP_PEER;
    memcpy(hdr + 1, peer->b, HAMOK_ID_LEN);
    /* Membership changes are rare and must not be lost: wait for room. */
    zmq_send(t->pipe_loop, hdr, sizeof hdr, ZMQ_SNDMORE);
    zmq_send(t->pipe_loop, endpoint, strlen(endpoint), 0);
}

static const char *zt_local_endpoint(hamok_transport *base)
{
    return tp_of(base)->endpoint;
}

static void zt_stop(hamok_transport *base)
{
    zmq_tp *t = tp_of(base);
    if (!t->started || t->stopped) {
        t->stopped = true;
        return;
    }
    t->stopped = true;
    uint8_t q = OP_QUIT;
    zmq_send(t->pipe_loop, &q, 1, 0); /* blocks until the actor has room */
    pthread_join(t->thread, NULL);
    t->sink = NULL;
}

static void zt_destroy(hamok_transport *base)
{
    zmq_tp *t = tp_of(base);
    if (t == NULL) {
        return;
    }
    zt_stop(base);
    /* Never started: the sockets the actor would have closed are ours. */
    close_socket(&t->router);
    close_socket(&t->zap);
    close_socket(&t->pipe_actor);
    close_socket(&t->pipe_loop);
    if (t->ctx != NULL) {
        zmq_ctx_term(t->ctx);
    }
    free(t->links);
    free(t->binds);
    free(t->known);
    free(t->seeds);
    free(t->allowed);
    pthread_mutex_destroy(&t->st_mu);
    free(t);
}

static const hamok_transport_ops zmq_ops = {
    .abi = HAMOK_TRANSPORT_ABI,
    .name = "zmq",
    .start = zt_start,
    .send = zt_send,
    .set_peer = zt_set_peer,
    .local_endpoint = zt_local_endpoint,
    .stop = zt_stop,
    .destroy = zt_destroy,
};

/* ------------------------------------------------------------------------ */
/* Construction */

void hamok_zmq_options_init(hamok_zmq_options *o)
{
    if (o == NULL) {
        return;
    }
    memset(o, 0, sizeof *o);
    o->bind = "tcp://127.0.0.1:0";
}

static hamok_status setup_curve(zmq_tp *t, const hamok_zmq_options *o)
{
    if (!decode_key(o->curve_secret_key, t->secret)) {
        set_error("zmq: the CURVE secret key is not a Z85 key of 40 characters");
        return HAMOK_ERR_INVALID;
    }
    char pub[HAMOK_ZMQ_KEY_LEN + 1];
    if (hamok_zmq_public_key(o->curve_secret_key, pub) != HAMOK_OK ||
        !decode_key(pub, t->public_key)) {
        set_error("zmq: cannot derive the CURVE public key (libzmq without CURVE?)");
        return HAMOK_ERR_INVALID;
    }
    if (o->curve_public_key != NULL && strcmp(o->curve_public_key, pub) != 0) {
        set_error("zmq: the CURVE public key does not belong to the secret key");
        return HAMOK_ERR_INVALID;
    }
    t->curve = true;
    hamok_status st = HAMOK_OK;
    for (size_t i = 0; st == HAMOK_OK && i < o->n_curve_allowed; i++) {
        st = add_allowed(t, o->curve_allowed[i], "curve_allowed");
    }
    if (st == HAMOK_OK && o->curve_allowed_file != NULL) {
        st = read_allowed_file(t, o->curve_allowed_file);
    }
    if (st == HAMOK_OK && o->n_curve_allowed == 0 && o->curve_allowed_file == NULL) {
        set_error(
            "zmq: CURVE needs the admitted public keys (curve_allowed or "
            "curve_allowed_file)");
        st = HAMOK_ERR_INVALID;
    }
    if (st == HAMOK_OK && add_allowed(t, pub, "own key") != HAMOK_OK) {
        st = HAMOK_ERR_NOMEM;
    }
    return st;
}

static hamok_status setup_sockets(zmq_tp *t, const hamok_zmq_options *o)
{
    t->ctx = zmq_ctx_new();
    if (t->ctx == NULL) {
        set_error("zmq: cannot create a context: %s", zmq_strerror(errno));
        return HAMOK_ERR_TRANSPORT;
    }
    snprintf(t->pipe_ep, sizeof t->pipe_ep, "inproc://hamok-zmq-pipe");
    t->pipe_actor = zmq_socket(t->ctx, ZMQ_PAIR);
    t->pipe_loop = zmq_socket(t->ctx, ZMQ_PAIR);
    if (t->pipe_actor == NULL || t->pipe_loop == NULL ||
        set_int(t->pipe_actor, ZMQ_RCVHWM, (int)t->sndhwm) != 0 ||
        set_int(t->pipe_loop, ZMQ_SNDHWM, (int)t->sndhwm) != 0 ||
        zmq_bind(t->pipe_actor, t->pipe_ep) != 0 || zmq_connect(t->pipe_loop, t->pipe_ep) != 0) {
        set_error("zmq: cannot create the actor pipe: %s", zmq_strerror(errno));
        return HAMOK_ERR_TRANSPORT;
    }
    if (t->curve) {
        t->zap = zmq_socket(t->ctx, ZMQ_REP);
        if (t->zap == NULL || zmq_bind(t->zap, "inproc://zeromq.zap.01") != 0) {
            set_error("zmq: cannot bind the ZAP handler: %s", zmq_strerror(errno));
            return HAMOK_ERR_TRANSPORT;
        }
    }
    t->router = zmq_socket(t->ctx, ZMQ_ROUTER);
    int64_t maxmsg = (int64_t)t->base.max_frame;
    bool ok = t->router != NULL && set_int(t->router, ZMQ_RCVHWM, (int)t->rcvhwm) == 0 &&
              set_int(t->router, ZMQ_LINGER, 0) == 0 &&
              set_int(t->router, ZMQ_ROUTER_HANDOVER, 1) == 0 &&
              zmq_setsockopt(t->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) == 0;
    if (ok && t->curve) {
        ok = set_int(t->router, ZMQ_CURVE_SERVER, 1) == 0 &&
             zmq_setsockopt(t->router, ZMQ_CURVE_SECRETKEY, t->secret, KEY_BIN) == 0 &&
             zmq_setsockopt(t->router, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) == 0;
    }
    if (!ok) {
        set_error("zmq: cannot set up the ROUTER: %s", zmq_strerror(errno));
        return HAMOK_ERR_TRANSPORT;
    }
    if (zmq_bind(t->router, o->bind) != 0) {
        set_error("zmq: cannot bind %s: %s", o->bind, zmq_strerror(errno));
        return HAMOK_ERR_TRANSPORT;
    }
    char bound[EP_MAX];
    size_t sz = sizeof bound;
    if (zmq_getsockopt(t->router, ZMQ_LAST_ENDPOINT, bound, &sz) != 0) {
        set_error("zmq: cannot read the bound endpoint: %s", zmq_strerror(errno));
        return HAMOK_ERR_TRANSPORT;
    }
    snprintf(t->plain_endpoint, sizeof t->plain_endpoint, "%s",
             o->advertise != NULL ? o->advertise : bound);
    if (t->curve) {
        char pub[HAMOK_ZMQ_KEY_LEN + 1];
        zmq_z85_encode(pub, t->public_key, KEY_BIN);
        snprintf(t->endpoint, sizeof t->endpoint, "%s|%s", t->plain_endpoint, pub);
    } else {
        snprintf(t->endpoint, sizeof t->endpoint, "%s", t->plain_endpoint);
    }
    return HAMOK_OK;
}

hamok_status hamok_zmq_transport_new(const hamok_zmq_options *o, hamok_transport **out)
{
    last_error[0] = '\0';
    if (out == NULL) {
        set_error("zmq: no output pointer");
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    hamok_zmq_options defaults;
    if (o == NULL) {
        hamok_zmq_options_init(&defaults);
        o = &defaults;
    }
    const char *bind = o->bind != NULL ? o->bind : "tcp://127.0.0.1:0";
    if (!valid_endpoint(bind)) {
        set_error("zmq: bind endpoint '%.300s' is not tcp://host:port or ipc://path", bind);
        return HAMOK_ERR_INVALID;
    }
    if (o->advertise != NULL &&
        (!valid_endpoint(o->advertise) || wildcard_endpoint(o->advertise))) {
        set_error(
            "zmq: advertise endpoint '%.300s' is not a reachable tcp://host:port or "
            "ipc://path",
            o->advertise);
        return HAMOK_ERR_INVALID;
    }
    if (o->advertise == NULL && wildcard_endpoint(bind)) {
        set_error("zmq: a wildcard bind (%s) needs an advertise endpoint the others can reach",
                  bind);
        return HAMOK_ERR_INVALID;
    }
    if (o->n_seeds > 0 && o->seeds == NULL) {
        set_error("zmq: n_seeds without seeds");
        return HAMOK_ERR_INVALID;
    }
    zmq_tp *t = calloc(1, sizeof *t);
    if (t == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    pthread_mutex_init(&t->st_mu, NULL);
    t->base.ops = &zmq_ops;
    t->base.max_frame = HAMOK_TRANSPORT_MAX_FRAME;
    t->sndhwm = o->sndhwm ? o->sndhwm : DEFAULT_HWM;
    t->rcvhwm = o->rcvhwm ? o->rcvhwm : DEFAULT_HWM;
    t->reconnect_ms = o->reconnect_ms ? o->reconnect_ms : DEFAULT_RECON;
    if (t->sndhwm > INT32_MAX || t->rcvhwm > INT32_MAX || t->reconnect_ms > INT32_MAX / 10) {
        set_error("zmq: high-water mark or reconnect interval out of range");
        zt_destroy(&t->base);
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = HAMOK_OK;
    if (o->curve_secret_key != NULL) {
        st = setup_curve(t, o);
    } else if (o->curve_public_key != NULL || o->n_curve_allowed > 0 ||
               o->curve_allowed_file != NULL) {
        set_error("zmq: CURVE keys given without the secret key");
        st = HAMOK_ERR_INVALID;
    }
    if (st == HAMOK_OK && o->n_seeds > 0) {
        t->seeds = calloc(o->n_seeds, sizeof *t->seeds);
        if (t->seeds == NULL) {
            st = HAMOK_ERR_NOMEM;
        }
        for (size_t i = 0; st == HAMOK_OK && i < o->n_seeds; i++) {
            if (o->seeds[i] == NULL || !split_endpoint(o->seeds[i], t->seeds[i].endpoint,
                                                       t->seeds[i].key, &t->seeds[i].has_key)) {
                set_error(
                    "zmq: seed '%.300s' is not tcp://host:port or ipc://path (optionally "
                    "followed by |<Z85 server key>)",
                    o->seeds[i] != NULL ? o->seeds[i] : "(null)");
                st = HAMOK_ERR_INVALID;
            }
            t->n_seeds = i + 1;
        }
    }
    if (st == HAMOK_OK) {
        st = setup_sockets(t, o);
    }
    if (st != HAMOK_OK) {
        zt_destroy(&t->base);
        return st;
    }
    *out = &t->base;
    return HAMOK_OK;
}

hamok_status hamok_zmq_transport_stats(const hamok_transport *base, hamok_zmq_stats *out)
{
    if (base == NULL || out == NULL || base->ops != &zmq_ops) {
        return HAMOK_ERR_INVALID;
    }
    zmq_tp *t = (zmq_tp *)(uintptr_t)base;
    pthread_mutex_lock(&t->st_mu);
    *out = t->st;
    pthread_mutex_unlock(&t->st_mu);
    return HAMOK_OK;
}

hamok_status hamok_zmq_keygen(char public_key[HAMOK_ZMQ_KEY_LEN + 1],
                              char secret_key[HAMOK_ZMQ_KEY_LEN + 1])
{
    if (public_key == NULL || secret_key == NULL) {
        return HAMOK_ERR_INVALID;
    }
    if (!zmq_has("curve") || zmq_curve_keypair(public_key, secret_key) != 0) {
        return HAMOK_ERR_STATE;
    }
    return HAMOK_OK;
}

hamok_status hamok_zmq_public_key(const char *secret_key, char public_key[HAMOK_ZMQ_KEY_LEN + 1])
{
    uint8_t bin[KEY_BIN];
    if (public_key == NULL || !decode_key(secret_key, bin)) {
        return HAMOK_ERR_INVALID;
    }
    if (zmq_curve_public(public_key, secret_key) != 0) {
        return HAMOK_ERR_INVALID;
    }
    return HAMOK_OK;
}
