/* Helpers of the NATS transport tests (tnats.h). */
#define _DEFAULT_SOURCE
#include "tnats.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "natsd.h"

uint64_t tn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

bool tn_wait(bool (*cond)(void *), void *ud, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (!cond(ud)) {
        if (tn_now_ms() >= end) {
            return cond(ud);
        }
        (void)poll(NULL, 0, 5); /* between two checks of the condition */
    }
    return true;
}

hamok_nats_options tn_opts(const char *url)
{
    hamok_nats_options o;
    hamok_nats_options_init(&o);
    o.url = url;
    o.reconnect_wait_ms = 100;
    return o;
}

int tn_teardown(void **state)
{
    (void)state;
    natsd_stop_all();
    return 0;
}

void tn_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    (void)closure;
    natsConnection_Publish(nc, natsMsg_GetReply(msg), natsMsg_GetData(msg),
                           natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

static void on_event(void *ud, const hamok_node_event *ev)
{
    tnode *n = ud;
    if (ev->type == HAMOK_EVENT_TRANSPORT && ev->link >= 1 && ev->link <= 4) {
        atomic_fetch_add(&n->links[ev->link], 1);
    }
}

hamok_status tn_start(tnode *n, const tn_conf *c, const hamok_nats_options *o)
{
    memset(n, 0, sizeof *n);
    tn_conf none = {0};
    if (c == NULL) {
        c = &none;
    }
    hamok_transport *t = NULL;
    hamok_status st = hamok_nats_transport_new(o, &t);
    if (st != HAMOK_OK) {
        return st;
    }
    hamok_config *cfg = NULL;
    if ((st = hamok_config_new(&cfg)) != HAMOK_OK) {
        return st;
    }
    hamok_config_set_cluster(cfg, c->cluster != NULL ? c->cluster : "test");
    hamok_config_set_timing(cfg, 400, 50);
    hamok_config_set_peer_timeout(cfg, 4000);
    hamok_config_set_bootstrap_expect(cfg, c->bootstrap_expect != 0 ? c->bootstrap_expect : 1);
    if (c->snapshot_entries != 0) {
        hamok_config_set_snapshot_entries(cfg, c->snapshot_entries);
    }
    if (c->peer_id != NULL) {
        hamok_config_set_peer_id(cfg, c->peer_id);
    }
    hamok_transport *keep = t;
    st = hamok_node_new(&n->node, cfg, &t);
    hamok_config_destroy(&cfg);
    if (st != HAMOK_OK) {
        return st;
    }
    n->t = keep;
    hamok_node_on(n->node, on_event, n);
    return HAMOK_OK;
}

void tn_stop(tnode *n)
{
    if (n->node != NULL) {
        hamok_node_destroy(&n->node);
    }
    n->t = NULL;
}

bool tn_join_all(tnode *nodes, size_t n, int timeout_ms)
{
    for (size_t i = 0; i < n; i++) {
        hamok_node_join_async(nodes[i].node, timeout_ms, NULL, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        hamok_status st = hamok_node_join(nodes[i].node, timeout_ms);
        if (st != HAMOK_OK) {
            fprintf(stderr, "tnats: node %zu: join: %s\n", i, hamok_status_str(st));
            return false;
        }
    }
    return true;
}

typedef struct agree_ctx {
    tnode *nodes;
    size_t n;
    size_t voters;
} agree_ctx;

static bool agree(void *ud)
{
    agree_ctx *a = ud;
    hamok_id leader = {0};
    bool first = true;
    for (size_t i = 0; i < a->n; i++) {
        hamok_node *n = a->nodes[i].node;
        if (n == NULL) {
            continue;
        }
        hamok_id l;
        if (!hamok_node_leader_id(n, &l)) {
            return false;
        }
        if (!first && memcmp(&l, &leader, sizeof l) != 0) {
            return false;
        }
        first = false;
        leader = l;
        hamok_peer_info peers[16];
        size_t k = hamok_node_peers(n, peers, 16);
        size_t v = 0;
        for (size_t j = 0; j < k && j < 16; j++) {
            v += peers[j].voter ? 1u : 0u;
        }
        if (v != a->voters) {
            return false;
        }
    }
    return !first;
}

bool tn_agree(tnode *nodes, size_t n, size_t voters, unsigned timeout_ms)
{
    agree_ctx a = {nodes, n, voters};
    return tn_wait(agree, &a, timeout_ms);
}

size_t tn_leader(tnode *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].node != NULL && hamok_node_is_leader(nodes[i].node)) {
            return i;
        }
    }
    return SIZE_MAX;
}

hamok_nats_stats tn_stats(const tnode *n)
{
    hamok_nats_stats s;
    memset(&s, 0, sizeof s);
    if (n->t != NULL) {
        hamok_nats_transport_stats(n->t, &s);
    }
    return s;
}

/* ------------------------------------------------------------------------ */

static void *load_main(void *arg)
{
    tn_load *l = arg;
    uint32_t i = 0;
    while (!atomic_load(&l->stop) && atomic_load(&l->acked) < l->cap) {
        char key[48], val[16];
        snprintf(key, sizeof key, "%s-%u", l->tag, i);
        snprintf(val, sizeof val, "%u", i);
        hamok_status st = hamok_map_set_str(l->m, key, val, NULL, 2000);
        if (st == HAMOK_OK) {
            l->ok[atomic_load(&l->acked)] = i;
            atomic_fetch_add(&l->acked, 1);
        } else {
            atomic_fetch_add(&l->failed, 1); /* unknown outcome: not checked */
            if (st != HAMOK_ERR_TIMEOUT) {
                (void)poll(NULL, 0, 10); /* no leader for now: do not spin */
            }
        }
        i++;
    }
    return NULL;
}

void tn_load_start(tn_load *l, hamok_map *m, const char *tag, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->m = m;
    snprintf(l->tag, sizeof l->tag, "%s", tag);
    l->cap = cap;
    l->ok = calloc(cap, sizeof *l->ok);
    atomic_store(&l->stop, false);
    pthread_create(&l->th, NULL, load_main, l);
}

void tn_load_stop(tn_load *l)
{
    atomic_store(&l->stop, true);
    pthread_join(l->th, NULL);
}

bool tn_load_check(const tn_load *l, hamok_map *m)
{
    size_t n = atomic_load(&l->acked);
    for (size_t k = 0; k < n; k++) {
        char key[48], val[16];
        snprintf(key, sizeof key, "%s-%u", l->tag, l->ok[k]);
        snprintf(val, sizeof val, "%u", l->ok[k]);
        hamok_value v;
        if (hamok_map_get_str(m, key, &v) != HAMOK_OK || strcmp(v.data, val) != 0) {
            fprintf(stderr, "tnats: acknowledged write %s lost\n", key);
            hamok_value_free(&v);
            return false;
        }
        hamok_value_free(&v);
    }
    return true;
}

/* ------------------------------------------------------------------------ */

static bool ossl(const char *dir, const char *const *args)
{
    char log[512];
    snprintf(log, sizeof log, "%s/openssl.log", dir);
    return natsd_run(args, log);
}

bool tn_make_certs(const char *dir)
{
    char p[13][512];
    const char *names[] = {"ca.key",       "ca.pem",       "server.key",    "server.csr",
                           "server.pem",   "client.key",   "client.csr",    "client.pem",
                           "other-ca.key", "other-ca.pem", "elsewhere.key", "elsewhere.csr",
                           "elsewhere.pem"};
    for (int i = 0; i < 13; i++) {
        snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
    }
    char ext[512], cext[512], eext[512];
    snprintf(ext, sizeof ext, "%s/server.ext", dir);
    snprintf(cext, sizeof cext, "%s/client.ext", dir);
    snprintf(eext, sizeof eext, "%s/elsewhere.ext", dir);
    FILE *f = fopen(ext, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    fclose(f);
    f = fopen(cext, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "extendedKeyUsage=clientAuth\n");
    fclose(f);
    f = fopen(eext, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "subjectAltName=DNS:elsewhere.example\nextendedKeyUsage=serverAuth\n");
    fclose(f);
    const char *ec = "ec", *curve = "ec_paramgen_curve:prime256v1";
    const char *ca[] = {
        "openssl", "req", "-x509", "-newkey", ec,      "-pkeyopt", curve,   "-nodes",
        "-keyout", p[0],  "-out",  p[1],      "-days", "2",        "-subj", "/CN=hamok test CA",
        NULL};
    const char *other[] = {
        "openssl", "req", "-x509", "-newkey", ec,      "-pkeyopt", curve,   "-nodes",
        "-keyout", p[8],  "-out",  p[9],      "-days", "2",        "-subj", "/CN=unrelated CA",
        NULL};
    const char *srv_req[] = {"openssl", "req",    "-newkey",       ec,   "-pkeyopt",
                             curve,     "-nodes", "-keyout",       p[2], "-out",
                             p[3],      "-subj",  "/CN=localhost", NULL};
    const char *srv_sign[] = {
        "openssl",         "x509", "-req", "-in",   p[3], "-CA",      p[1], "-CAkey", p[0],
        "-CAcreateserial", "-out", p[4],   "-days", "2",  "-extfile", ext,  NULL};
    const char *cli_req[] = {"openssl", "req",    "-newkey",        ec,   "-pkeyopt",
                             curve,     "-nodes", "-keyout",        p[5], "-out",
                             p[6],      "-subj",  "/CN=hamok-peer", NULL};
    const char *cli_sign[] = {
        "openssl",         "x509", "-req", "-in",   p[6], "-CA",      p[1], "-CAkey", p[0],
        "-CAcreateserial", "-out", p[7],   "-days", "2",  "-extfile", cext, NULL};
    const char *else_req[] = {"openssl",
                              "req",
                              "-newkey",
                              ec,
                              "-pkeyopt",
                              curve,
                              "-nodes",
                              "-keyout",
                              p[10],
                              "-out",
                              p[11],
                              "-subj",
                              "/CN=elsewhere.example",
                              NULL};
    const char *else_sign[] = {
        "openssl",         "x509", "-req", "-in",   p[11], "-CA",      p[1], "-CAkey", p[0],
        "-CAcreateserial", "-out", p[12],  "-days", "2",   "-extfile", eext, NULL};
    return ossl(dir, ca) && ossl(dir, other) && ossl(dir, srv_req) && ossl(dir, srv_sign) &&
           ossl(dir, cli_req) && ossl(dir, cli_sign) && ossl(dir, else_req) && ossl(dir, else_sign);
}

/* ------------------------------------------------------------------------ */
/* NKeys: an Ed25519 key pair from openssl, encoded the way nats-io/nkeys
 * does (a prefix byte, the key, a CRC-16/XMODEM little-endian, base32
 * without padding). */

static uint16_t crc16_xmodem(const uint8_t *p, size_t n)
{
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (unsigned)p[i] << 8;
        for (int b = 0; b < 8; b++) {
            crc = (crc & 0x8000u) != 0 ? (crc << 1) ^ 0x1021u : crc << 1;
            crc &= 0xffffu;
        }
    }
    return (uint16_t)crc;
}

static void base32(const uint8_t *p, size_t n, char *out)
{
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | p[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = alphabet[(acc >> (bits - 5)) & 31u];
            bits -= 5;
        }
    }
    if (bits > 0) {
        out[o++] = alphabet[(acc << (5 - bits)) & 31u];
    }
    out[o] = '\0';
}

static bool last32(const char *file, uint8_t out[32])
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        return false;
    }
    uint8_t buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n < 32) {
        return false;
    }
    memcpy(out, buf + n - 32, 32);
    return true;
}

bool tn_make_nkey(const char *dir, char public_key[64], char seed_file[256])
{
    char der[512], pub[512];
    snprintf(der, sizeof der, "%s/nkey.der", dir);
    snprintf(pub, sizeof pub, "%s/nkey.pub.der", dir);
    const char *gen[] = {"openssl", "genpkey", "-algorithm", "ed25519", "-outform",
                         "DER",     "-out",    der,          NULL};
    const char *pubout[] = {"openssl", "pkey",     "-inform", "DER",  "-in", der,
                            "-pubout", "-outform", "DER",     "-out", pub,   NULL};
    uint8_t seed[32], key[32];
    if (!ossl(dir, gen) || !ossl(dir, pubout) || !last32(der, seed) || !last32(pub, key)) {
        return false;
    }
    const uint8_t user = 20u << 3, seed_prefix = 18u << 3;
    uint8_t raw[36];
    raw[0] = user;
    memcpy(raw + 1, key, 32);
    uint16_t crc = crc16_xmodem(raw, 33);
    raw[33] = (uint8_t)(crc & 0xffu);
    raw[34] = (uint8_t)(crc >> 8);
    base32(raw, 35, public_key);
    raw[0] = (uint8_t)(seed_prefix | (user >> 5));
    raw[1] = (uint8_t)((user & 31u) << 3);
    memcpy(raw + 2, seed, 32);
    crc = crc16_xmodem(raw, 34);
    raw[34] = (uint8_t)(crc & 0xffu);
    raw[35] = (uint8_t)(crc >> 8);
    char text[64];
    base32(raw, 36, text);
    snprintf(seed_file, 256, "%s/user.nk", dir);
    FILE *f = fopen(seed_file, "w");
    if (f == NULL) {
        return false;
    }
    fprintf(f, "%s\n", text);
    return fclose(f) == 0;
}
