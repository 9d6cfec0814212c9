/* The HTTP face of `hamokctl peer` (libmicrohttpd, one thread per
 * connection, so a blocking Hamok call blocks only its own request):
 *
 *   GET    /healthz                 200 "ok" when joined and caught up, else 503 + why
 *   GET    /metrics                 Prometheus text (hamok_node_metrics)
 *   GET    /v1/status               this peer: id, role, term, leader, indexes, health
 *   GET    /v1/peers                the members as this peer sees them
 *   GET    /v1/collections          every collection with its kind and size
 *   POST   /v1/sync                 read barrier (ReadIndex)
 *   POST   /v1/leave                leave the cluster gracefully
 *   POST   /v1/transfer[?to=ID]     hand leadership over (leader only)
 *   GET    /v1/maps/NAME            the entries (?sync=1: after a read barrier;
 *                                   ?watch=1: stream events as NDJSON)
 *   GET    /v1/maps/NAME/KEY        the value, raw (404 when absent; ?sync=1)
 *   PUT    /v1/maps/NAME/KEY        set it to the request body -> {"old": ...}
 *   DELETE /v1/maps/NAME/KEY        remove it -> {"removed": ...}
 *   GET    /v1/records/NAME         the fields
 *   GET    /v1/queues/NAME          the items, head first
 *   GET    /v1/emitters/NAME        the subscriptions
 *
 * Values in JSON are strings when they are UTF-8, else {"base64": "..."}.
 * Errors: {"error": "<status>", "message": "..."} with 400 (bad request),
 * 404, 409 (wrong kind), 413 (too big), 503 (no leader, busy, stopping),
 * 504 (timeout). */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hamok/transport.h"
#include "hamokctl.h"
#include "peer.h"
#ifdef HAMOKCTL_WITH_ZMQ
#include "hamok/zmq.h"
#endif
#ifdef HAMOKCTL_WITH_NATS
#include "hamok/nats.h"
#endif

#define MAX_BODY       (1024u * 1024u)
#define WATCH_MAX_BUF  (4u * 1024u * 1024u)
#define WATCH_IDLE_SEC 5

struct http_server {
    struct MHD_Daemon *d;
    peer *p;
};

/* ------------------------------------------------------------------------ */
/* Responses */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned code, const char *type,
                               const void *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, unsigned code, json_t *j)
{
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        return respond(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "out of memory\n", 14);
    }
    size_t len = strlen(text);
    text[len] = '\0';
    char *nl = realloc(text, len + 2);
    if (nl != NULL) {
        text = nl;
        text[len++] = '\n';
        text[len] = '\0';
    }
    enum MHD_Result ret = respond(c, code, "application/json", text, len);
    free(text);
    return ret;
}

static unsigned http_code(hamok_status st)
{
    switch (st) {
    case HAMOK_OK: return MHD_HTTP_OK;
    case HAMOK_ERR_INVALID: return MHD_HTTP_BAD_REQUEST;
    case HAMOK_ERR_NOT_FOUND: return MHD_HTTP_NOT_FOUND;
    case HAMOK_ERR_WRONG_KIND: return MHD_HTTP_CONFLICT;
    case HAMOK_ERR_TOO_BIG: return MHD_HTTP_CONTENT_TOO_LARGE;
    case HAMOK_ERR_TIMEOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
    case HAMOK_ERR_NOT_LEADER:
    case HAMOK_ERR_STATE: return MHD_HTTP_CONFLICT;
    case HAMOK_ERR_NO_LEADER:
    case HAMOK_ERR_BUSY:
    case HAMOK_ERR_CLOSED: return MHD_HTTP_SERVICE_UNAVAILABLE;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static enum MHD_Result respond_error(struct MHD_Connection *c, hamok_status st, const char *msg)
{
    json_t *j = json_pack("{s:s, s:s}", "error", hamok_status_str(st), "message", msg);
    return respond_json(c, http_code(st), j);
}

static enum MHD_Result respond_status(struct MHD_Connection *c, hamok_status st, const char *what)
{
    if (st != HAMOK_OK) {
        return respond_error(c, st, what);
    }
    return respond_json(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

/* ------------------------------------------------------------------------ */
/* JSON values */

static char *base64(const unsigned char *d, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)d[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= d[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* A string when the bytes are UTF-8 (without NUL), else {"base64": ...}. */
static json_t *jbytes(const void *data, size_t len)
{
    if (memchr(data, '\0', len) == NULL) {
        json_t *s = json_stringn(len > 0 ? data : "", len);
        if (s != NULL) {
            return s;
        }
    }
    char *b = base64(data, len);
    json_t *j = b != NULL ? json_pack("{s:s}", "base64", b) : NULL;
    free(b);
    return j;
}

static json_t *jvalue(const hamok_value *v)
{
    return v->present ? jbytes(v->data, v->len) : json_null();
}

static json_t *jid(const hamok_id *id)
{
    char text[HAMOK_ID_STR_LEN + 1];
    hamok_id_format(id, text);
    return json_string(text);
}

static bool want(struct MHD_Connection *c, const char *arg)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, arg);
    return v != NULL && strcmp(v, "0") != 0 && strcmp(v, "false") != 0;
}

/* ------------------------------------------------------------------------ */
/* Node views */

static enum MHD_Result get_status(struct MHD_Connection *c, peer *p)
{
    hamok_node_stats s;
    hamok_node_stats_get(p->node, &s);
    hamok_id id = hamok_node_id(p->node);
    const char *why = NULL;
    bool healthy = peer_healthy(p, &why);
    const char *ep = p->transport->ops->local_endpoint != NULL
                         ? p->transport->ops->local_endpoint(p->transport)
                         : "";
    json_t *j = json_object();
    json_object_set_new(j, "id", jid(&id));
    json_object_set_new(j, "role", json_string(hamok_role_str(s.role)));
    json_object_set_new(j, "term", json_integer((json_int_t)s.term));
    json_object_set_new(j, "leader", s.has_leader ? jid(&s.leader) : json_null());
    json_object_set_new(j, "commit_index", json_integer((json_int_t)s.commit_index));
    json_object_set_new(j, "applied_index", json_integer((json_int_t)s.applied_index));
    json_object_set_new(j, "last_log_index", json_integer((json_int_t)s.last_log_index));
    json_object_set_new(j, "snapshot_index", json_integer((json_int_t)s.snapshot_index));
    json_object_set_new(j, "members", json_integer((json_int_t)s.members));
    json_object_set_new(j, "transport", json_string(p->transport_kind));
    json_object_set_new(j, "endpoint", json_string(ep != NULL ? ep : ""));
    json_object_set_new(j, "healthy", json_boolean(healthy));
    if (!healthy) {
        json_object_set_new(j, "unhealthy_because", json_string(why));
    }
    json_object_set_new(j, "frames_sent", json_integer((json_int_t)s.frames_sent));
    json_object_set_new(j, "frames_received", json_integer((json_int_t)s.frames_received));
    json_object_set_new(j, "frames_rejected", json_integer((json_int_t)s.frames_rejected));
    json_object_set_new(j, "leader_changes", json_integer((json_int_t)s.leader_changes));
    return respond_json(c, MHD_HTTP_OK, j);
}

/* One counter of the transport's own (Prometheus text). */
static size_t counter(char *out, size_t cap, size_t off, const char *name, const char *help,
                      uint64_t v)
{
    if (off >= cap) {
        return off;
    }
    int n = snprintf(out + off, cap - off, "# HELP %s %s\n# TYPE %s counter\n%s %" PRIu64 "\n",
                     name, help, name, name, v);
    return n < 0 ? off : off + (size_t)n;
}

/* The transport's counters beyond the node's (hamok_zmq_* / hamok_nats_*). */
static size_t transport_metrics(peer *p, char *out, size_t cap)
{
    size_t off = 0;
    (void)p;
    (void)counter;
#ifdef HAMOKCTL_WITH_ZMQ
    hamok_zmq_stats z;
    if (p->transport != NULL && hamok_zmq_transport_stats(p->transport, &z) == HAMOK_OK) {
        off = counter(out, cap, off, "hamok_zmq_dropped_hwm_total",
                      "Frames dropped because a queue was full or a peer not connected.",
                      z.dropped_hwm);
        off = counter(out, cap, off, "hamok_zmq_dropped_unknown_total",
                      "Frames for a peer with no known endpoint.", z.dropped_unknown);
        off = counter(out, cap, off, "hamok_zmq_rejected_size_total",
                      "Frames over the frame limit, refused.", z.rejected_size);
        off = counter(out, cap, off, "hamok_zmq_rejected_auth_total",
                      "CURVE keys refused, or frames speaking for another key's peer.",
                      z.rejected_auth);
        off = counter(out, cap, off, "hamok_zmq_rejected_malformed_total",
                      "Inbound messages that were not [peer id][one frame].", z.rejected_malformed);
        if (off < cap) {
            int n = snprintf(out + off, cap - off,
                             "# HELP hamok_zmq_peers Peers with a connection now.\n"
                             "# TYPE hamok_zmq_peers gauge\nhamok_zmq_peers %" PRIu64
                             "\n"
                             "# HELP hamok_zmq_links DEALER sockets open (known peers and seeds).\n"
                             "# TYPE hamok_zmq_links gauge\nhamok_zmq_links %" PRIu64 "\n",
                             z.peers, z.links);
            off = n < 0 ? off : off + (size_t)n;
        }
    }
#endif
#ifdef HAMOKCTL_WITH_NATS
    hamok_nats_stats ns;
    if (p->transport != NULL && hamok_nats_transport_stats(p->transport, &ns) == HAMOK_OK) {
        off =
            counter(out, cap, off, "hamok_nats_publish_failed_total",
                    "Publishes nats.c refused (closed, reconnect buffer full).", ns.publish_failed);
        off = counter(out, cap, off, "hamok_nats_too_big_total",
                      "Frames over the server's max payload, refused.", ns.too_big);
        off = counter(out, cap, off, "hamok_nats_reconnects_total", "Reconnections to a server.",
                      ns.reconnects);
        off = counter(out, cap, off, "hamok_nats_disconnects_total", "Disconnections.",
                      ns.disconnects);
        off = counter(out, cap, off, "hamok_nats_async_errors_total",
                      "nats.c asynchronous errors (slow consumer, permission denied).",
                      ns.async_errors);
    }
#endif
    return off < cap ? off : cap - 1;
}

static enum MHD_Result get_peers(struct MHD_Connection *c, peer *p)
{
    hamok_peer_info ps[64];
    size_t k = hamok_node_peers(p->node, ps, 64);
    json_t *arr = json_array();
    for (size_t i = 0; i < k && i < 64; i++) {
        json_t *m = json_object();
        json_object_set_new(m, "id", jid(&ps[i].id));
        json_object_set_new(m, "voter", json_boolean(ps[i].voter));
        json_object_set_new(m, "leader", json_boolean(ps[i].is_leader));
        json_object_set_new(m, "self", json_boolean(ps[i].is_self));
        json_object_set_new(m, "endpoint", json_string(ps[i].endpoint));
        json_object_set_new(m, "match_index", json_integer((json_int_t)ps[i].match_index));
        json_object_set_new(m, "last_seen_ms", json_integer((json_int_t)ps[i].last_seen_ms));
        json_array_append_new(arr, m);
    }
    return respond_json(c, MHD_HTTP_OK, json_pack("{s:o}", "members", arr));
}

static enum MHD_Result get_collections(struct MHD_Connection *c, peer *p)
{
    size_t n = hamok_node_collections(p->node, NULL, 0);
    hamok_coll_info *cs = calloc(n ? n : 1, sizeof *cs);
    if (cs == NULL) {
        return respond_error(c, HAMOK_ERR_NOMEM, "out of memory");
    }
    size_t got = hamok_node_collections(p->node, cs, n);
    json_t *arr = json_array();
    for (size_t i = 0; i < got && i < n; i++) {
        json_array_append_new(
            arr,
            json_pack("{s:s, s:o, s:I}", "kind", hamok_coll_kind_str(cs[i].kind), "name",
                      jbytes(cs[i].name, cs[i].name_len), "entries", (json_int_t)cs[i].entries));
    }
    free(cs);
    return respond_json(c, MHD_HTTP_OK, json_pack("{s:o}", "collections", arr));
}

static enum MHD_Result post_transfer(struct MHD_Connection *c, peer *p)
{
    const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
    hamok_id target;
    if (to != NULL && hamok_id_parse(to, &target) != HAMOK_OK) {
        return respond_error(c, HAMOK_ERR_INVALID, "'to' is not a peer id");
    }
    hamok_status st =
        hamok_node_transfer_leadership(p->node, to != NULL ? &target : NULL, p->request_timeout_ms);
    return respond_status(c, st, "leadership transfer");
}

/* ------------------------------------------------------------------------ */
/* Collections */

static bool add_entry(void *ud, const hamok_kv *kv)
{
    json_array_append_new(ud, json_pack("{s:o, s:o}", "key", jbytes(kv->key, kv->key_len), "value",
                                        jbytes(kv->value, kv->value_len)));
    return true;
}

static bool add_item(void *ud, const void *item, size_t len)
{
    json_array_append_new(ud, jbytes(item, len));
    return true;
}

static bool add_sub(void *ud, const hamok_sub_event *s)
{
    json_t *o =
        json_pack("{s:o, s:o}", "event", jbytes(s->event, s->event_len), "peer", jid(&s->peer));
    json_object_set_new(o, "meta", s->has_meta ? jbytes(s->meta, s->meta_len) : json_null());
    json_array_append_new(ud, o);
    return true;
}

/* The map's events as NDJSON, one line per event, while the client stays. */
typedef struct watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t len;
    size_t off;
    bool overflow;
    hamok_map *m;
    peer *p;
} watch;

static void watch_event(void *ud, const hamok_map_event *ev)
{
    watch *w = ud;
    static const char *const names[] = {"", "insert", "update", "remove", "clear"};
    json_t *j = json_pack("{s:s, s:I}", "type", names[ev->type], "index", (json_int_t)ev->index);
    if (ev->type != HAMOK_MAP_CLEAR) {
        json_object_set_new(j, "key", jbytes(ev->key, ev->key_len));
    }
    if (ev->type == HAMOK_MAP_INSERT || ev->type == HAMOK_MAP_UPDATE) {
        json_object_set_new(j, "value", jbytes(ev->value, ev->value_len));
    }
    if (ev->has_old) {
        json_object_set_new(j, "old", jbytes(ev->old, ev->old_len));
    }
    char *line = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (line == NULL) {
        return;
    }
    size_t n = strlen(line);
    pthread_mutex_lock(&w->mu);
    if (w->len + n + 1 > WATCH_MAX_BUF) {
        w->overflow = true; /* a client that does not read loses the stream */
    } else {
        char *nb = realloc(w->buf, w->len + n + 1);
        if (nb == NULL) {
            w->overflow = true;
        } else {
            w->buf = nb;
            memcpy(w->buf + w->len, line, n);
            w->buf[w->len + n] = '\n';
            w->len += n + 1;
        }
    }
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    free(line);
}

static ssize_t watch_read(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    watch *w = cls;
    pthread_mutex_lock(&w->mu);
    while (w->off == w->len && !w->overflow && !atomic_load(&w->p->stopping)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += WATCH_IDLE_SEC;
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT && w->off == w->len) {
            /* A blank line now and then: a client that left is noticed. */
            pthread_mutex_unlock(&w->mu);
            out[0] = '\n';
            return 1;
        }
    }
    if (w->off == w->len) {
        pthread_mutex_unlock(&w->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = w->len - w->off < max ? w->len - w->off : max;
    memcpy(out, w->buf + w->off, n);
    w->off += n;
    if (w->off == w->len) {
        w->off = w->len = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return (ssize_t)n;
}

static void watch_free(void *cls)
{
    watch *w = cls;
    hamok_map_off(w->m, watch_event, w); /* no event fires after it returns */
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->buf);
    free(w);
}

static enum MHD_Result watch_map(struct MHD_Connection *c, peer *p, hamok_map *m)
{
    watch *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return respond_error(c, HAMOK_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->m = m;
    w->p = p;
    hamok_status st = hamok_map_on(m, watch_event, w);
    if (st != HAMOK_OK) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return respond_error(c, st, "cannot watch");
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, watch_read, w, watch_free);
    if (r == NULL) {
        watch_free(w);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result maps(struct MHD_Connection *c, peer *p, const char *method, const char *rest,
                            const char *body, size_t body_len)
{
    const char *slash = strchr(rest, '/');
    char name[256];
    size_t nl = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (nl == 0 || nl > 255) {
        return respond_error(c, HAMOK_ERR_INVALID, "a map name is 1..255 bytes");
    }
    memcpy(name, rest, nl);
    name[nl] = '\0';
    hamok_map *m = NULL;
    hamok_status st = peer_handle_get(p, HAMOK_COLL_MAP, name, (void **)&m);
    if (st != HAMOK_OK) {
        return respond_error(c, st, "cannot open the map");
    }
    const char *key = slash != NULL ? slash + 1 : NULL;
    bool is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    if (is_get && want(c, "sync") &&
        (st = hamok_node_sync(p->node, p->request_timeout_ms)) != HAMOK_OK) {
        return respond_error(c, st, "read barrier");
    }
    if (key == NULL || key[0] == '\0') {
        if (!is_get) {
            return respond_error(c, HAMOK_ERR_INVALID, "use /v1/maps/NAME/KEY to write");
        }
        if (want(c, "watch")) {
            return watch_map(c, p, m);
        }
        json_t *arr = json_array();
        hamok_map_foreach(m, add_entry, arr);
        return respond_json(c, MHD_HTTP_OK,
                            json_pack("{s:s, s:I, s:o}", "name", name, "size",
                                      (json_int_t)hamok_map_size(m), "entries", arr));
    }
    size_t kl = strlen(key);
    hamok_value v = {0};
    if (is_get) {
        st = hamok_map_get(m, key, kl, &v);
        if (st == HAMOK_ERR_NOT_FOUND || (st == HAMOK_OK && !v.present)) {
            return respond_error(c, HAMOK_ERR_NOT_FOUND, "no such key");
        }
        if (st != HAMOK_OK) {
            return respond_error(c, st, "get");
        }
        enum MHD_Result ret = respond(c, MHD_HTTP_OK, "application/octet-stream", v.data, v.len);
        hamok_value_free(&v);
        return ret;
    }
    if (strcmp(method, MHD_HTTP_METHOD_PUT) == 0 || strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
        st = hamok_map_set(m, key, kl, body, body_len, &v, p->request_timeout_ms);
        if (st != HAMOK_OK) {
            return respond_error(c, st, "set");
        }
        json_t *j = json_pack("{s:o}", "old", jvalue(&v));
        hamok_value_free(&v);
        return respond_json(c, MHD_HTTP_OK, j);
    }
    if (strcmp(method, MHD_HTTP_METHOD_DELETE) == 0) {
        st = hamok_map_remove(m, key, kl, &v, p->request_timeout_ms);
        if (st != HAMOK_OK) {
            return respond_error(c, st, "remove");
        }
        json_t *j = json_pack("{s:o}", "removed", jvalue(&v));
        hamok_value_free(&v);
        return respond_json(c, MHD_HTTP_OK, j);
    }
    return respond_error(c, HAMOK_ERR_INVALID, "method not allowed");
}

static enum MHD_Result view(struct MHD_Connection *c, peer *p, hamok_coll_kind kind,
                            const char *name)
{
    if (strchr(name, '/') != NULL || name[0] == '\0') {
        return respond_error(c, HAMOK_ERR_INVALID, "a collection name is one path segment");
    }
    void *h = NULL;
    hamok_status st = peer_handle_get(p, kind, name, &h);
    if (st == HAMOK_OK && want(c, "sync")) {
        st = hamok_node_sync(p->node, p->request_timeout_ms);
    }
    if (st != HAMOK_OK) {
        return respond_error(c, st, "cannot read the collection");
    }
    json_t *arr = json_array();
    json_t *j = NULL;
    if (kind == HAMOK_COLL_RECORD) {
        hamok_kvs kvs;
        if ((st = hamok_record_instance(h, &kvs)) == HAMOK_OK) {
            for (size_t i = 0; i < kvs.n; i++) {
                add_entry(arr, &kvs.items[i]);
            }
            hamok_kvs_free(&kvs);
        }
        j = json_pack("{s:s, s:o}", "name", name, "fields", arr);
    } else if (kind == HAMOK_COLL_QUEUE) {
        hamok_queue_foreach(h, add_item, arr);
        j = json_pack("{s:s, s:I, s:o}", "name", name, "size", (json_int_t)hamok_queue_size(h),
                      "items", arr);
    } else {
        hamok_emitter_foreach(h, add_sub, arr);
        j = json_pack("{s:s, s:o}", "name", name, "subscriptions", arr);
    }
    if (st != HAMOK_OK) {
        json_decref(j);
        return respond_error(c, st, "cannot read the collection");
    }
    return respond_json(c, MHD_HTTP_OK, j);
}

/* ------------------------------------------------------------------------ */
/* Dispatch */

typedef struct request {
    char *body;
    size_t len;
    bool too_big;
} request;

static bool starts(const char *url, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0) {
        return false;
    }
    *rest = url + n;
    return true;
}

static enum MHD_Result route(struct MHD_Connection *c, peer *p, const char *url, const char *method,
                             const request *rq)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, "HEAD") == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    const char *rest;
    if (strcmp(url, "/healthz") == 0 && get) {
        const char *why = NULL;
        if (peer_healthy(p, &why)) {
            return respond(c, MHD_HTTP_OK, "text/plain", "ok\n", 3);
        }
        char msg[128];
        int n = snprintf(msg, sizeof msg, "%s\n", why);
        return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", msg, (size_t)n);
    }
    if (strcmp(url, "/metrics") == 0 && get) {
        size_t need = hamok_node_metrics(p->node, NULL, 0);
        char extra[2048];
        size_t extra_len = transport_metrics(p, extra, sizeof extra);
        char *text = malloc(need + extra_len + 1);
        if (text == NULL) {
            return respond_error(c, HAMOK_ERR_NOMEM, "out of memory");
        }
        size_t got = hamok_node_metrics(p->node, text, need + 1);
        got = got <= need ? got : need;
        memcpy(text + got, extra, extra_len);
        enum MHD_Result ret =
            respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4", text, got + extra_len);
        free(text);
        return ret;
    }
    if (strcmp(url, "/v1/status") == 0 && get) {
        return get_status(c, p);
    }
    if (strcmp(url, "/v1/peers") == 0 && get) {
        return get_peers(c, p);
    }
    if (strcmp(url, "/v1/collections") == 0 && get) {
        return get_collections(c, p);
    }
    if (strcmp(url, "/v1/sync") == 0 && post) {
        return respond_status(c, hamok_node_sync(p->node, p->request_timeout_ms), "read barrier");
    }
    if (strcmp(url, "/v1/leave") == 0 && post) {
        return respond_status(c, hamok_node_leave(p->node, p->request_timeout_ms), "leave");
    }
    if (strcmp(url, "/v1/transfer") == 0 && post) {
        return post_transfer(c, p);
    }
    if (starts(url, "/v1/maps/", &rest)) {
        return maps(c, p, method, rest, rq->body, rq->len);
    }
    if (get && starts(url, "/v1/records/", &rest)) {
        return view(c, p, HAMOK_COLL_RECORD, rest);
    }
    if (get && starts(url, "/v1/queues/", &rest)) {
        return view(c, p, HAMOK_COLL_QUEUE, rest);
    }
    if (get && starts(url, "/v1/emitters/", &rest)) {
        return view(c, p, HAMOK_COLL_EMITTER, rest);
    }
    return respond_error(c, HAMOK_ERR_NOT_FOUND, "no such resource");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)version;
    http_server *s = cls;
    request *rq = *con_cls;
    if (rq == NULL) {
        rq = calloc(1, sizeof *rq);
        if (rq == NULL) {
            return MHD_NO;
        }
        *con_cls = rq;
        return MHD_YES; /* headers seen; the body (if any) comes next */
    }
    if (*upload_size > 0) {
        if (rq->len + *upload_size > MAX_BODY) {
            rq->too_big = true;
        } else {
            char *nb = realloc(rq->body, rq->len + *upload_size);
            if (nb == NULL) {
                rq->too_big = true;
            } else {
                rq->body = nb;
                memcpy(rq->body + rq->len, upload, *upload_size);
                rq->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_big) {
        return respond_error(c, HAMOK_ERR_TOO_BIG, "request body over 1 MiB");
    }
    return route(c, s->p, url, method, rq);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)c;
    (void)code;
    request *rq = *con_cls;
    if (rq != NULL) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

http_server *http_start(peer *p, const char *addr, unsigned *port)
{
    const char *colon = strrchr(addr, ':');
    unsigned long long want_port = 0;
    char host[256];
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host ||
        !parse_u64(colon + 1, 0, 65535, &want_port)) {
        fprintf(stderr, "hamokctl peer: --http wants HOST:PORT, got '%s'\n", addr);
        return NULL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)want_port);
    const char *h = host[0] == '\0' || strcmp(host, "*") == 0 ? "0.0.0.0" : host;
    if (strcmp(h, "localhost") == 0) {
        h = "127.0.0.1";
    }
    if (inet_pton(AF_INET, h, &sa.sin_addr) != 1) {
        fprintf(stderr, "hamokctl peer: --http host must be an IPv4 address, got '%s'\n", host);
        return NULL;
    }
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return NULL;
    }
    s->p = p;
    s->d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, completed,
        NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_END);
    if (s->d == NULL) {
        fprintf(stderr, "hamokctl peer: cannot serve HTTP on %s: %s\n", addr, strerror(errno));
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info != NULL ? info->port : (unsigned)want_port;
    return s;
}

void http_stop(http_server *s)
{
    if (s == NULL) {
        return;
    }
    MHD_stop_daemon(s->d);
    free(s);
}
