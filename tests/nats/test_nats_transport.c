/* The NATS transport on its own and its options, against real nats-server
 * processes (started here on free loopback ports, stopped by pid): the ops
 * driven directly (unicast, broadcast without echo, refusal of frames over
 * max_payload, nothing delivered after stop), validation of prefixes,
 * cluster names and options, authentication (user/password, token, nkey),
 * TLS from certificates made here with openssl (server verification,
 * hostname, mutual TLS), a borrowed connection that Hamok never closes, a
 * small max_payload (commands refused, snapshots chunked), and the
 * permissions template of docs/NATS.md. */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nats/nats.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>

#include "hamok/map.h"
#include "hamok/nats.h"
#include "hamok/node.h"
#include "natsd.h"
#include "tnats.h"

/* One node founds a cluster and takes a write: the connection works. */
static void single_node_works(const hamok_nats_options *o, const char *cluster)
{
    tnode n;
    tn_conf c = {.cluster = cluster};
    hamok_status st = tn_start(&n, &c, o);
    if (st != HAMOK_OK) {
        fprintf(stderr, "tn_start: %s: %s\n", hamok_status_str(st), hamok_nats_last_error());
    }
    assert_int_equal(st, HAMOK_OK);
    assert_int_equal(hamok_node_join(n.node, TN_WAIT_MS), HAMOK_OK);
    hamok_map *m;
    assert_int_equal(hamok_map_open(n.node, "m", &m), HAMOK_OK);
    assert_int_equal(hamok_map_set_str(m, "k", "v", NULL, 5000), HAMOK_OK);
    hamok_map_close(&m);
    tn_stop(&n);
}

/* hamok_nats_transport_new fails with `want` and a message holding `text`. */
static void refused(const hamok_nats_options *o, hamok_status want, const char *text)
{
    hamok_transport *t = (hamok_transport *)(uintptr_t)1;
    hamok_status st = hamok_nats_transport_new(o, &t);
    printf("    refused as expected: %s\n", hamok_nats_last_error());
    assert_int_equal(st, want);
    assert_null(t);
    assert_non_null(strstr(hamok_nats_last_error(), text));
}

/* ------------------------------------------------------------------------ */
/* The ops, driven directly */

typedef struct rx {
    hamok_transport_sink sink; /* first */
    pthread_mutex_t mu;
    int frames;
    size_t last_len;
    unsigned char last[128];
    int errors;
    hamok_status last_error;
    char error_text[256];
    int links[5];
} rx;

static void rx_deliver(hamok_transport_sink *s, const void *bytes, size_t len)
{
    rx *r = (rx *)s;
    pthread_mutex_lock(&r->mu);
    r->frames++;
    r->last_len = len;
    memcpy(r->last, bytes, len < sizeof r->last ? len : sizeof r->last);
    pthread_mutex_unlock(&r->mu);
}

static void rx_error(hamok_transport_sink *s, hamok_status st, const char *text)
{
    rx *r = (rx *)s;
    pthread_mutex_lock(&r->mu);
    r->errors++;
    r->last_error = st;
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

typedef struct rx_wait {
    rx *r;
    int n;
} rx_wait;

static bool rx_has(void *ud)
{
    rx_wait *w = ud;
    return rx_frames(w->r) >= w->n;
}

static hamok_transport *raw_start(const hamok_nats_options *o, const char *cluster, const char *id,
                                  rx *r)
{
    hamok_transport *t;
    assert_int_equal(hamok_nats_transport_new(o, &t), HAMOK_OK);
    assert_int_equal(hamok_id_parse(id, &t->self), HAMOK_OK);
    snprintf(t->cluster, sizeof t->cluster, "%s", cluster);
    rx_init(r);
    assert_int_equal(t->ops->start(t, &r->sink), HAMOK_OK);
    return t;
}

static void test_raw_transport(void **state)
{
    (void)state;
    natsd *d = natsd_start(&(natsd_config){.conf = "max_payload: 65536"});
    assert_non_null(d);
    hamok_nats_options o = tn_opts(natsd_url(d));
    const char *ida = "00000000-0000-4000-8000-00000000000a";
    const char *idb = "00000000-0000-4000-8000-00000000000b";
    rx ra, rb;
    hamok_transport *a = raw_start(&o, "raw", ida, &ra);
    hamok_transport *b = raw_start(&o, "raw", idb, &rb);
    assert_string_equal(a->ops->name, "nats");
    assert_int_equal(a->max_frame, 65536); /* the server's max_payload */
    char want[128];
    snprintf(want, sizeof want, "hamok.raw.peer.%s", idb);
    assert_string_equal(b->ops->local_endpoint(b), want);
    assert_int_equal(ra.links[HAMOK_LINK_CONNECTED], 1);

    /* Unicast reaches the addressee, byte for byte. */
    assert_int_equal(a->ops->send(a, &b->self, "hello b", 7), HAMOK_OK);
    rx_wait w = {&rb, 1};
    assert_true(tn_wait(rx_has, &w, TN_WAIT_MS));
    assert_int_equal(rb.last_len, 7);
    assert_memory_equal(rb.last, "hello b", 7);
    /* A broadcast reaches the others, not the sender (no echo). */
    assert_int_equal(a->ops->send(a, NULL, "all", 3), HAMOK_OK);
    w.n = 2;
    assert_true(tn_wait(rx_has, &w, TN_WAIT_MS));
    assert_memory_equal(rb.last, "all", 3);
    /* A unicast to b, sent after the broadcast, proves a got no echo. */
    assert_int_equal(b->ops->send(b, &a->self, "x", 1), HAMOK_OK);
    rx_wait wa = {&ra, 1};
    assert_true(tn_wait(rx_has, &wa, TN_WAIT_MS));
    assert_int_equal(rx_frames(&ra), 1);
    assert_memory_equal(ra.last, "x", 1);

    /* Over max_payload: refused, counted, reported; never truncated. */
    size_t big = 65537;
    unsigned char *buf = calloc(1, big);
    assert_non_null(buf);
    assert_int_equal(a->ops->send(a, &b->self, buf, big), HAMOK_ERR_TOO_BIG);
    assert_int_equal(a->ops->send(a, &b->self, buf, 65536), HAMOK_OK); /* exactly fits */
    w.n = 3;
    assert_true(tn_wait(rx_has, &w, TN_WAIT_MS));
    assert_int_equal(rb.last_len, 65536);
    free(buf);
    assert_int_equal(ra.errors, 1);
    assert_int_equal(ra.last_error, HAMOK_ERR_TOO_BIG);
    assert_non_null(strstr(ra.error_text, "max_payload"));
    hamok_nats_stats s;
    assert_int_equal(hamok_nats_transport_stats(a, &s), HAMOK_OK);
    assert_int_equal(s.too_big, 1);
    assert_int_equal(s.frames_sent, 3);
    assert_int_equal(s.frames_received, 1);
    assert_int_equal(s.max_payload, 65536);
    assert_true(s.connected);
    /* Misuse is a status. */
    assert_int_equal(a->ops->send(a, NULL, NULL, 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok_nats_transport_stats(NULL, &s), HAMOK_ERR_INVALID);

    /* After stop, nothing is delivered any more; send is refused. */
    b->ops->stop(b);
    b->ops->stop(b); /* idempotent */
    int before = rx_frames(&rb);
    assert_int_equal(a->ops->send(a, &b->self, "late", 4), HAMOK_OK);
    assert_int_equal(a->ops->send(a, NULL, "late", 4), HAMOK_OK);
    /* a round trip through the server after those: b's would be in by now */
    rx rc;
    hamok_transport *c = raw_start(&o, "raw", idb, &rc); /* b's id, new transport */
    assert_int_equal(a->ops->send(a, &c->self, "new", 3), HAMOK_OK);
    rx_wait wc = {&rc, 1};
    assert_true(tn_wait(rx_has, &wc, TN_WAIT_MS));
    assert_int_equal(rx_frames(&rb), before);
    assert_int_equal(b->ops->send(b, &a->self, "x", 1), HAMOK_ERR_STATE);
    b->ops->destroy(b);
    c->ops->stop(c);
    c->ops->destroy(c);
    a->ops->destroy(a); /* destroy without stop is fine too */
    pthread_mutex_destroy(&ra.mu);
    pthread_mutex_destroy(&rb.mu);
    pthread_mutex_destroy(&rc.mu);
    natsd_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* Validation */

static void test_options_rejected(void **state)
{
    (void)state;
    int port = natsd_free_port();
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    assert_int_equal(hamok_nats_transport_new(NULL, NULL), HAMOK_ERR_INVALID);

    const char *bad_prefixes[] = {"",  "a..b", ".a",   "a.",      "a*",   "a.>",
                                  ">", "a b",  "a\tb", "tab\x01", "x.*.y"};
    for (size_t i = 0; i < sizeof bad_prefixes / sizeof *bad_prefixes; i++) {
        hamok_nats_options o = tn_opts(url);
        o.prefix = bad_prefixes[i];
        assert_false(hamok_nats_valid_prefix(bad_prefixes[i]));
        refused(&o, HAMOK_ERR_INVALID, "prefix");
    }
    char longp[HAMOK_NATS_MAX_PREFIX + 2];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_false(hamok_nats_valid_prefix(longp));
    assert_false(hamok_nats_valid_prefix(NULL));
    assert_true(hamok_nats_valid_prefix("hamok"));
    assert_true(hamok_nats_valid_prefix("acme.prod.hamok"));
    assert_true(hamok_nats_valid_prefix("my-app_1"));

    hamok_nats_options o = tn_opts(url);
    o.user = "u";
    o.password = "p";
    o.token = "t";
    refused(&o, HAMOK_ERR_INVALID, "at most one");
    o = tn_opts(url);
    o.password = "p";
    refused(&o, HAMOK_ERR_INVALID, "needs a user");
    o = tn_opts(url);
    o.nkey = "UABC";
    refused(&o, HAMOK_ERR_INVALID, "nkey");
    o = tn_opts(url);
    o.tls_cert_file = "/nonexistent/client.pem";
    o.tls_ca_file = "/nonexistent/ca.pem";
    refused(&o, HAMOK_ERR_INVALID, "tls_key_file");
    o = tn_opts("tls://127.0.0.1:4222");
    refused(&o, HAMOK_ERR_INVALID, "tls_ca_file");
    o = tn_opts(" , ,");
    refused(&o, HAMOK_ERR_INVALID, "url");
    o = tn_opts(url);
    o.tls_ca_file = "/nonexistent/ca.pem";
    refused(&o, HAMOK_ERR_INVALID, "tls_ca_file");
    /* Nobody listens there. */
    o = tn_opts(url);
    o.connect_timeout_ms = 500;
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot connect");
}

static void test_cluster_names(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    hamok_nats_options o = tn_opts(natsd_url(d));
    const char *bad[] = {"a.b", "x*", "x y", ">", "tab\there"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tnode n;
        tn_conf c = {.cluster = bad[i]};
        assert_int_equal(tn_start(&n, &c, &o), HAMOK_ERR_INVALID);
        printf("    refused as expected: %s\n", hamok_nats_last_error());
        assert_non_null(strstr(hamok_nats_last_error(), "cluster name"));
        assert_null(n.node);
    }
    /* A custom prefix of several tokens: the subjects follow it. */
    o.prefix = "acme.prod";
    tnode n;
    tn_conf c = {.cluster = "orders-eu_1"};
    assert_int_equal(tn_start(&n, &c, &o), HAMOK_OK);
    assert_int_equal(hamok_node_join(n.node, TN_WAIT_MS), HAMOK_OK);
    hamok_id id = hamok_node_id(n.node);
    char text[HAMOK_ID_STR_LEN + 1], want[128];
    hamok_id_format(&id, text);
    snprintf(want, sizeof want, "acme.prod.orders-eu_1.peer.%s", text);
    /* (read-only after start: the string the node advertises) */
    assert_string_equal(n.t->ops->local_endpoint(n.t), want);
    tn_stop(&n);
    natsd_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* Authentication */

static void test_user_password(void **state)
{
    (void)state;
    natsd *d = natsd_start(
        &(natsd_config){.conf = "authorization {\n  user: hamok\n  password: \"s3cret-pw\"\n}"});
    assert_non_null(d);
    hamok_nats_options o = tn_opts(natsd_url(d));
    o.user = "hamok";
    o.password = "s3cret-pw";
    single_node_works(&o, "auth");
    o.password = "wrong";
    refused(&o, HAMOK_ERR_TRANSPORT, "Authorization");
    o = tn_opts(natsd_url(d)); /* no credentials at all */
    refused(&o, HAMOK_ERR_TRANSPORT, "Authorization");
    /* Credentials in the URL, nats.c's way. */
    char url[128];
    snprintf(url, sizeof url, "nats://hamok:s3cret-pw@127.0.0.1:%d", natsd_port(d));
    o = tn_opts(url);
    single_node_works(&o, "auth-url");
    natsd_stop(&d);
}

static void test_token(void **state)
{
    (void)state;
    natsd *d = natsd_start(&(natsd_config){.conf = "authorization {\n  token: \"t0ken-42\"\n}"});
    assert_non_null(d);
    hamok_nats_options o = tn_opts(natsd_url(d));
    o.token = "t0ken-42";
    single_node_works(&o, "token");
    o.token = "t0ken-43";
    refused(&o, HAMOK_ERR_TRANSPORT, "Authorization");
    natsd_stop(&d);
}

static void test_nkey(void **state)
{
    (void)state;
    char dir[] = "/tmp/hamok-nkey-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pub[64], seed[256], other_pub[64], other_seed[256];
    assert_true(tn_make_nkey(dir, pub, seed));
    char odir[300];
    snprintf(odir, sizeof odir, "%s/other", dir);
    assert_int_equal(mkdir(odir, 0700), 0);
    assert_true(tn_make_nkey(odir, other_pub, other_seed));
    assert_int_equal(strlen(pub), 56);
    assert_int_equal(pub[0], 'U');
    char conf[256];
    snprintf(conf, sizeof conf, "authorization {\n  users = [ { nkey: \"%s\" } ]\n}", pub);
    natsd *d = natsd_start(&(natsd_config){.conf = conf});
    assert_non_null(d);
    hamok_nats_options o = tn_opts(natsd_url(d));
    o.nkey = pub;
    o.nkey_seed_file = seed;
    single_node_works(&o, "nkey");
    /* The right public key, a seed that does not belong to it. */
    o.nkey_seed_file = other_seed;
    refused(&o, HAMOK_ERR_TRANSPORT, "Authorization");
    natsd_stop(&d);
    const char *files[] = {"nkey.der", "nkey.pub.der", "user.nk", "openssl.log"};
    for (size_t i = 0; i < 4; i++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", odir, files[i]);
        remove(p);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    remove(odir);
    remove(dir);
}

/* ------------------------------------------------------------------------ */
/* TLS */

static natsd *tls_server_with(const char *certdir, const char *cert, bool verify_clients)
{
    char conf[2048];
    snprintf(conf, sizeof conf,
             "tls {\n  cert_file: \"%s/%s.pem\"\n  key_file: \"%s/%s.key\"\n"
             "  ca_file: \"%s/ca.pem\"\n  verify: %s\n  timeout: 5\n}",
             certdir, cert, certdir, cert, certdir, verify_clients ? "true" : "false");
    natsd *d = natsd_start(&(natsd_config){.conf = conf});
    assert_non_null(d);
    return d;
}

static natsd *tls_server(bool verify_clients, char certdir[256])
{
    /* Certificates first, in a directory of their own (the server's is made
     * by natsd_start). */
    snprintf(certdir, 256, "/tmp/hamok-certs-XXXXXX");
    assert_non_null(mkdtemp(certdir));
    assert_true(tn_make_certs(certdir));
    return tls_server_with(certdir, "server", verify_clients);
}

static void remove_certs(const char *dir)
{
    const char *files[] = {"ca.key",        "ca.pem",        "ca.srl",        "server.key",
                           "server.csr",    "server.pem",    "server.ext",    "client.key",
                           "client.csr",    "client.pem",    "client.ext",    "other-ca.key",
                           "other-ca.pem",  "elsewhere.key", "elsewhere.csr", "elsewhere.pem",
                           "elsewhere.ext", "openssl.log"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        remove(p);
    }
    remove(dir);
}

static void test_tls(void **state)
{
    (void)state;
    char dir[256];
    natsd *d = tls_server(false, dir);
    char url[64], ca[300], other[300];
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", natsd_port(d));
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(other, sizeof other, "%s/other-ca.pem", dir);

    hamok_nats_options o = tn_opts(url);
    o.tls_ca_file = ca;
    single_node_works(&o, "tls");
    /* The expected name is checked when given. */
    o.tls_hostname = "localhost";
    single_node_works(&o, "tls-host");
    o.tls_hostname = "not-this-host.example";
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot connect");
    /* A certificate from a CA we do not trust. */
    o = tn_opts(url);
    o.tls_ca_file = other;
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot connect");
    /* A plain connection to a TLS server. */
    char plain[64];
    snprintf(plain, sizeof plain, "nats://127.0.0.1:%d", natsd_port(d));
    o = tn_opts(plain);
    o.connect_timeout_ms = 1000;
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot connect");
    /* Tests only: no verification at all. */
    o = tn_opts(url);
    o.tls_skip_verify = true;
    single_node_works(&o, "tls-skip");
    natsd_stop(&d);
    /* Without tls_hostname the certificate must name the URL's host: one for
     * elsewhere.example is refused on 127.0.0.1, and accepted when that
     * name is what we expect. */
    d = tls_server_with(dir, "elsewhere", false);
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", natsd_port(d));
    o = tn_opts(url);
    o.tls_ca_file = ca;
    refused(&o, HAMOK_ERR_TRANSPORT, "mismatch");
    o.tls_hostname = "elsewhere.example";
    single_node_works(&o, "tls-elsewhere");
    natsd_stop(&d);
    remove_certs(dir);
}

static void test_mutual_tls(void **state)
{
    (void)state;
    char dir[256];
    natsd *d = tls_server(true, dir);
    char url[64], ca[300], cert[300], key[300];
    snprintf(url, sizeof url, "tls://127.0.0.1:%d", natsd_port(d));
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/client.pem", dir);
    snprintf(key, sizeof key, "%s/client.key", dir);
    hamok_nats_options o = tn_opts(url);
    o.tls_ca_file = ca;
    o.connect_timeout_ms = 1000;
    refused(&o, HAMOK_ERR_TRANSPORT, "cannot connect"); /* no client certificate */
    o.tls_cert_file = cert;
    o.tls_key_file = key;
    single_node_works(&o, "mtls");
    natsd_stop(&d);
    remove_certs(dir);
}

/* ------------------------------------------------------------------------ */
/* A borrowed connection */

typedef struct link_wait {
    tnode *n;
    hamok_transport_link state;
} link_wait;

static bool link_seen(void *ud)
{
    link_wait *w = ud;
    return atomic_load(&w->n->links[w->state]) >= 1;
}

static void test_borrowed_connection(void **state)
{
    (void)state;
    natsd *d = natsd_start(NULL);
    assert_non_null(d);
    natsOptions *no = NULL;
    assert_int_equal(natsOptions_Create(&no), NATS_OK);
    assert_int_equal(natsOptions_SetURL(no, natsd_url(d)), NATS_OK);
    assert_int_equal(natsOptions_SetReconnectWait(no, 100), NATS_OK);
    assert_int_equal(natsOptions_SetMaxReconnect(no, -1), NATS_OK);
    natsConnection *nc = NULL;
    assert_int_equal(natsConnection_Connect(&nc, no), NATS_OK);
    natsOptions_Destroy(no);
    /* The application's own use of the connection. */
    natsSubscription *echo = NULL;
    assert_int_equal(natsConnection_Subscribe(&echo, nc, "app.echo", tn_echo, NULL), NATS_OK);

    /* Node 0 on the application's connection, node 1 on its own. */
    tnode nodes[2];
    tn_conf c = {.cluster = "borrowed", .bootstrap_expect = 2};
    hamok_nats_options ob;
    hamok_nats_options_init(&ob);
    ob.connection = nc;
    ob.url = "nats://127.0.0.1:1"; /* ignored with a connection */
    assert_int_equal(tn_start(&nodes[0], &c, &ob), HAMOK_OK);
    hamok_nats_options oo = tn_opts(natsd_url(d));
    assert_int_equal(tn_start(&nodes[1], &c, &oo), HAMOK_OK);
    assert_true(tn_join_all(nodes, 2, TN_WAIT_MS));
    assert_true(tn_agree(nodes, 2, 2, TN_WAIT_MS));
    hamok_map *m;
    assert_int_equal(hamok_map_open(nodes[0].node, "m", &m), HAMOK_OK);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(hamok_map_set_str(m, k, "v", NULL, 5000), HAMOK_OK);
    }
    hamok_nats_stats s = tn_stats(&nodes[0]);
    assert_true(s.borrowed);
    assert_true(s.connected);
    assert_int_equal(s.max_payload, 1024 * 1024);

    /* Broker restart: the borrowed connection's state is polled into link
     * events; nats.c (the application's settings) reconnects it. */
    assert_true(natsd_kill(d, SIGKILL));
    link_wait lw = {&nodes[0], HAMOK_LINK_DISCONNECTED};
    assert_true(tn_wait(link_seen, &lw, TN_WAIT_MS));
    assert_true(natsd_restart(d));
    lw.state = HAMOK_LINK_RECONNECTED;
    assert_true(tn_wait(link_seen, &lw, TN_WAIT_MS));
    assert_int_equal(hamok_map_set_str(m, "after", "restart", NULL, TN_WAIT_MS), HAMOK_OK);
    s = tn_stats(&nodes[0]);
    assert_true(s.disconnects >= 1 && s.reconnects >= 1 && s.connected);
    hamok_map_close(&m);
    tn_stop(&nodes[0]);
    tn_stop(&nodes[1]);

    /* Hamok is gone; the connection is still the application's, open and
     * working. */
    assert_int_equal(natsConnection_Status(nc), NATS_CONN_STATUS_CONNECTED);
    natsMsg *reply = NULL;
    assert_int_equal(natsConnection_RequestString(&reply, nc, "app.echo", "ping", 5000), NATS_OK);
    assert_string_equal(natsMsg_GetData(reply), "ping");
    natsMsg_Destroy(reply);
    natsSubscription_Destroy(echo);
    natsConnection_Close(nc);
    natsConnection_Destroy(nc);

    /* A closed connection is refused. */
    assert_int_equal(natsConnection_ConnectTo(&nc, natsd_url(d)), NATS_OK);
    natsConnection_Close(nc);
    ob.connection = nc;
    refused(&ob, HAMOK_ERR_INVALID, "closed");
    natsConnection_Destroy(nc);
    natsd_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* A small max_payload */

static void test_small_max_payload(void **state)
{
    (void)state;
    natsd *d = natsd_start(&(natsd_config){.conf = "max_payload: 65536"});
    assert_non_null(d);
    tnode nodes[4];
    tn_conf c = {.cluster = "small", .bootstrap_expect = 3, .snapshot_entries = 16};
    for (size_t i = 0; i < 3; i++) {
        hamok_nats_options o = tn_opts(natsd_url(d));
        assert_int_equal(tn_start(&nodes[i], &c, &o), HAMOK_OK);
        assert_int_equal(nodes[i].t->max_frame, 65536);
    }
    assert_true(tn_join_all(nodes, 3, TN_WAIT_MS));
    hamok_map *m;
    assert_int_equal(hamok_map_open(nodes[1].node, "blobs", &m), HAMOK_OK);
    /* A value that cannot fit one frame is refused, not truncated. */
    size_t huge = 70000;
    char *v = malloc(huge);
    assert_non_null(v);
    memset(v, 'h', huge);
    assert_int_equal(hamok_map_set(m, "huge", 4, v, huge, NULL, 5000), HAMOK_ERR_TOO_BIG);
    /* 40 values of 20 kB: a state of 800 kB, twelve times max_payload. */
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "blob%d", i);
        memset(v, 'a' + i % 26, 20000);
        assert_int_equal(hamok_map_set(m, k, strlen(k), v, 20000, NULL, 5000), HAMOK_OK);
    }
    /* Enough entries after them that the log no longer holds the blobs
     * (the core keeps 1024 entries behind each snapshot). */
    for (int i = 0; i < 1200; i++) {
        char k[16];
        snprintf(k, sizeof k, "small%d", i % 10);
        assert_int_equal(hamok_map_set(m, k, strlen(k), "x", 1, NULL, 5000), HAMOK_OK);
    }
    hamok_map_close(&m);
    /* A new peer gets it as a chunked snapshot. */
    hamok_nats_options o = tn_opts(natsd_url(d));
    assert_int_equal(tn_start(&nodes[3], &c, &o), HAMOK_OK);
    assert_int_equal(hamok_node_join(nodes[3].node, TN_WAIT_MS), HAMOK_OK);
    hamok_node_stats ns;
    hamok_node_stats_get(nodes[3].node, &ns);
    printf("    new peer: %llu snapshot(s) installed, snapshot index %llu\n",
           (unsigned long long)ns.snapshots_installed, (unsigned long long)ns.snapshot_index);
    assert_true(ns.snapshots_installed >= 1);
    hamok_map *m3;
    assert_int_equal(hamok_map_open(nodes[3].node, "blobs", &m3), HAMOK_OK);
    assert_int_equal(hamok_map_size(m3), 50);
    for (int i = 0; i < 40; i++) {
        char k[16];
        snprintf(k, sizeof k, "blob%d", i);
        hamok_value got;
        assert_int_equal(hamok_map_get(m3, k, strlen(k), &got), HAMOK_OK);
        assert_int_equal(got.len, 20000);
        assert_int_equal(((char *)got.data)[19999], 'a' + i % 26);
        hamok_value_free(&got);
    }
    hamok_map_close(&m3);
    free(v);
    for (size_t i = 0; i < 4; i++) {
        /* The node sized every frame: nothing reached the transport too big. */
        assert_int_equal(tn_stats(&nodes[i]).too_big, 0);
        tn_stop(&nodes[i]);
    }
    natsd_stop(&d);

    /* Below Hamok's minimum frame: the transport refuses the server. */
    d = natsd_start(&(natsd_config){.conf = "max_payload: 32768"});
    assert_non_null(d);
    o = tn_opts(natsd_url(d));
    refused(&o, HAMOK_ERR_TRANSPORT, "max_payload");
    natsd_stop(&d);
}

/* ------------------------------------------------------------------------ */
/* The permissions template of docs/NATS.md */

static void test_permissions_template(void **state)
{
    (void)state;
    const char *ids[3] = {"11111111-1111-4111-8111-111111111111",
                          "22222222-2222-4222-8222-222222222222",
                          "33333333-3333-4333-8333-333333333333"};
    char conf[4096];
    size_t len = (size_t)snprintf(conf, sizeof conf, "authorization {\n  users = [\n");
    for (int i = 0; i < 3; i++) {
        len += (size_t)snprintf(conf + len, sizeof conf - len,
                                "    { user: peer%d, password: pw%d, permissions: {\n"
                                "        publish: { allow: [\"hamok.orders.>\"] }\n"
                                "        subscribe: { allow: [\"hamok.orders.bcast\", "
                                "\"hamok.orders.peer.%s\"] }\n"
                                "    } }\n",
                                i, i, ids[i]);
    }
    snprintf(conf + len, sizeof conf - len, "  ]\n}");
    natsd *d = natsd_start(&(natsd_config){.conf = conf});
    assert_non_null(d);
    tnode nodes[3];
    for (int i = 0; i < 3; i++) {
        char user[16], pw[16];
        snprintf(user, sizeof user, "peer%d", i);
        snprintf(pw, sizeof pw, "pw%d", i);
        hamok_nats_options o = tn_opts(natsd_url(d));
        o.user = user;
        o.password = pw;
        tn_conf c = {.cluster = "orders", .bootstrap_expect = 3, .peer_id = ids[i]};
        assert_int_equal(tn_start(&nodes[i], &c, &o), HAMOK_OK);
    }
    assert_true(tn_join_all(nodes, 3, TN_WAIT_MS));
    assert_true(tn_agree(nodes, 3, 3, TN_WAIT_MS));
    hamok_map *m;
    assert_int_equal(hamok_map_open(nodes[2].node, "m", &m), HAMOK_OK);
    assert_int_equal(hamok_map_set_str(m, "k", "v", NULL, 5000), HAMOK_OK);
    hamok_map_close(&m);
    /* Nothing the transport does needs more than the template allows. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tn_stats(&nodes[i]).async_errors, 0);
        tn_stop(&nodes[i]);
    }
    /* A peer of this template may not read another peer's subject: a
     * transport under peer0's user with peer1's id is refused by the server
     * (reported as an asynchronous error). */
    hamok_nats_options o = tn_opts(natsd_url(d));
    o.user = "peer0";
    o.password = "pw0";
    tnode spy;
    tn_conf c = {.cluster = "orders", .peer_id = ids[1]};
    assert_int_equal(tn_start(&spy, &c, &o), HAMOK_OK);
    uint64_t end = tn_now_ms() + TN_WAIT_MS;
    while (tn_stats(&spy).async_errors == 0 && tn_now_ms() < end) {
        (void)poll(NULL, 0, 5);
    }
    assert_true(tn_stats(&spy).async_errors >= 1);
    tn_stop(&spy);
    natsd_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_raw_transport, tn_teardown),
        cmocka_unit_test_teardown(test_options_rejected, tn_teardown),
        cmocka_unit_test_teardown(test_cluster_names, tn_teardown),
        cmocka_unit_test_teardown(test_user_password, tn_teardown),
        cmocka_unit_test_teardown(test_token, tn_teardown),
        cmocka_unit_test_teardown(test_nkey, tn_teardown),
        cmocka_unit_test_teardown(test_tls, tn_teardown),
        cmocka_unit_test_teardown(test_mutual_tls, tn_teardown),
        cmocka_unit_test_teardown(test_borrowed_connection, tn_teardown),
        cmocka_unit_test_teardown(test_small_max_payload, tn_teardown),
        cmocka_unit_test_teardown(test_permissions_template, tn_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    natsd_stop_all();
    nats_CloseAndWait(5000);
    return rc;
}
