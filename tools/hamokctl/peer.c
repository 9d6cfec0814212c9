/* `hamokctl peer`: one peer of a cluster as a process. Options come from the
 * command line, or from HAMOK_* environment variables (the flag wins), so a
 * compose file and a shell line say the same thing. The peer joins (and
 * keeps trying until it is a member), serves HTTP when asked, and on
 * SIGINT/SIGTERM leaves the cluster gracefully (hands leadership over first)
 * and exits 0. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hamok/mem.h"
#include "hamokctl.h"
#include "peer.h"
#ifdef HAMOKCTL_WITH_ZMQ
#include "hamok/zmq.h"
#endif
#ifdef HAMOKCTL_WITH_NATS
#include "hamok/nats.h"
#endif

#define MAX_SEEDS 64

typedef struct peer_opts {
    const char *cluster;
    const char *peer_id;
    const char *data_dir;
    const char *fsync;
    unsigned long long election_ms, heartbeat_ms, peer_timeout_ms, request_timeout_ms;
    unsigned long long bootstrap_expect, snapshot_entries;
    const char *transport;
    const char *http;
    const char *info_file;
    bool no_leave;
    /* zmq */
    const char *bind;
    const char *advertise;
    const char *seeds[MAX_SEEDS];
    size_t n_seeds;
    const char *curve_secret;
    const char *curve_allowed;
    /* nats */
    const char *nats_url;
    const char *nats_prefix;
    const char *nats_name;
    const char *nats_user;
    const char *nats_password;
    const char *nats_token;
    const char *nats_nkey;
    const char *nats_nkey_pub;
    const char *nats_creds;
    const char *nats_ca;
    const char *nats_cert;
    const char *nats_key;
    const char *nats_tls_hostname;
    unsigned long long nats_reconnect_ms;
    long long nats_max_reconnect;
    bool nats_no_randomize;
} peer_opts;

enum {
    O_CLUSTER = 256,
    O_PEER_ID,
    O_DATA_DIR,
    O_FSYNC,
    O_ELECTION,
    O_HEARTBEAT,
    O_PEER_TIMEOUT,
    O_REQUEST_TIMEOUT,
    O_BOOTSTRAP,
    O_SNAPSHOT,
    O_TRANSPORT,
    O_HTTP,
    O_INFO_FILE,
    O_NO_LEAVE,
    O_BIND,
    O_ADVERTISE,
    O_SEED,
    O_CURVE_SECRET,
    O_CURVE_ALLOWED,
    O_NATS_URL,
    O_NATS_PREFIX,
    O_NATS_NAME,
    O_NATS_USER,
    O_NATS_PASSWORD,
    O_NATS_TOKEN,
    O_NATS_NKEY,
    O_NATS_NKEY_PUB,
    O_NATS_CREDS,
    O_NATS_CA,
    O_NATS_CERT,
    O_NATS_KEY,
    O_NATS_TLS_HOSTNAME,
    O_NATS_RECONNECT,
    O_NATS_MAX_RECONNECT,
    O_NATS_NO_RANDOMIZE,
    O_HELP,
};

/* Each option: its flag, its environment variable, its help line. */
typedef struct opt_doc {
    int id;
    const char *flag;
    const char *env;
    const char *arg;
    const char *help;
} opt_doc;

static const opt_doc docs[] = {
    {O_CLUSTER, "cluster", "HAMOK_CLUSTER", "NAME", "cluster name (default hamok)"},
    {O_PEER_ID, "peer-id", "HAMOK_PEER_ID", "UUID",
     "fixed peer id (default: fresh, or the data dir's)"},
    {O_DATA_DIR, "data-dir", "HAMOK_DATA_DIR", "DIR", "durable mode: WAL + snapshots in DIR"},
    {O_FSYNC, "fsync", "HAMOK_FSYNC", "MODE", "always (default) or batch[:MS] group commit"},
    {O_ELECTION, "election-timeout", "HAMOK_ELECTION_TIMEOUT_MS", "MS",
     "election timeout base (1000)"},
    {O_HEARTBEAT, "heartbeat", "HAMOK_HEARTBEAT_MS", "MS", "leader heartbeat period (100)"},
    {O_PEER_TIMEOUT, "peer-timeout", "HAMOK_PEER_TIMEOUT_MS", "MS",
     "remove members silent this long (5000; 0 = never)"},
    {O_REQUEST_TIMEOUT, "request-timeout", "HAMOK_REQUEST_TIMEOUT_MS", "MS",
     "deadline of HTTP writes and reads (5000)"},
    {O_BOOTSTRAP, "bootstrap-expect", "HAMOK_BOOTSTRAP_EXPECT", "N",
     "found a new cluster only once N peers announced themselves (1)"},
    {O_SNAPSHOT, "snapshot-entries", "HAMOK_SNAPSHOT_ENTRIES", "N",
     "snapshot every N applied entries"},
    {O_TRANSPORT, "transport", "HAMOK_TRANSPORT", "KIND",
     "zmq (default), nats, or mem (a cluster of one in this process)"},
    {O_HTTP, "http", "HAMOK_HTTP", "HOST:PORT",
     "serve /healthz, /metrics and /v1/... (port 0 = any)"},
    {O_INFO_FILE, "info-file", "HAMOK_INFO_FILE", "FILE",
     "write {id, http, endpoint} as JSON once serving (for scripts)"},
    {O_NO_LEAVE, "no-leave", "HAMOK_NO_LEAVE", NULL, "on SIGTERM exit without leaving the cluster"},
    {O_BIND, "bind", "HAMOK_ZMQ_BIND", "EP", "zmq: endpoint to bind (tcp://127.0.0.1:0)"},
    {O_ADVERTISE, "advertise", "HAMOK_ZMQ_ADVERTISE", "EP", "zmq: endpoint the others connect to"},
    {O_SEED, "seed", "HAMOK_ZMQ_SEEDS", "EP",
     "zmq: a seed endpoint (repeat; the variable: comma list)"},
    {O_CURVE_SECRET, "curve-secret", "HAMOK_ZMQ_CURVE_SECRET", "KEY|FILE",
     "zmq: CURVE secret key (Z85 text or a file holding it)"},
    {O_CURVE_ALLOWED, "curve-allowed", "HAMOK_ZMQ_CURVE_ALLOWED", "FILE",
     "zmq: file of admitted public keys, one per line"},
    {O_NATS_URL, "nats-url", "HAMOK_NATS_URL", "URL", "nats: server URL(s), comma separated"},
    {O_NATS_PREFIX, "nats-prefix", "HAMOK_NATS_PREFIX", "P", "nats: subject prefix (hamok)"},
    {O_NATS_NAME, "nats-name", "HAMOK_NATS_NAME", "NAME", "nats: connection name"},
    {O_NATS_USER, "nats-user", "HAMOK_NATS_USER", "USER", "nats: user name"},
    {O_NATS_PASSWORD, "nats-password", "HAMOK_NATS_PASSWORD", "PW", "nats: password"},
    {O_NATS_TOKEN, "nats-token", "HAMOK_NATS_TOKEN", "TOKEN", "nats: token"},
    {O_NATS_NKEY, "nats-nkey-seed", "HAMOK_NATS_NKEY_SEED", "FILE", "nats: NKey seed file"},
    {O_NATS_NKEY_PUB, "nats-nkey", "HAMOK_NATS_NKEY", "KEY", "nats: NKey public key (U...)"},
    {O_NATS_CREDS, "nats-creds", "HAMOK_NATS_CREDS", "FILE", "nats: .creds file"},
    {O_NATS_CA, "nats-ca", "HAMOK_NATS_CA", "FILE", "nats: TLS CA certificate"},
    {O_NATS_CERT, "nats-cert", "HAMOK_NATS_CERT", "FILE", "nats: TLS client certificate"},
    {O_NATS_KEY, "nats-key", "HAMOK_NATS_KEY", "FILE", "nats: TLS client key"},
    {O_NATS_TLS_HOSTNAME, "nats-tls-hostname", "HAMOK_NATS_TLS_HOSTNAME", "NAME",
     "nats: expected name in the server certificate"},
    {O_NATS_RECONNECT, "nats-reconnect-wait", "HAMOK_NATS_RECONNECT_WAIT_MS", "MS",
     "nats: wait between reconnect attempts"},
    {O_NATS_MAX_RECONNECT, "nats-max-reconnect", "HAMOK_NATS_MAX_RECONNECT", "N",
     "nats: reconnect attempts (-1 = forever, the default; 0 = never)"},
    {O_NATS_NO_RANDOMIZE, "nats-no-randomize", "HAMOK_NATS_NO_RANDOMIZE", NULL,
     "nats: try the servers in the order given (nats.c shuffles them by default)"},
};

static void peer_usage(FILE *f)
{
    fprintf(f,
            "usage: hamokctl peer [options]\n\nEvery option can also be set by its environment "
            "variable; a flag wins over the variable.\n\n");
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", docs[i].flag, docs[i].arg ? " " : "",
                 docs[i].arg ? docs[i].arg : "");
        fprintf(f, "  %-28s %s\n  %-28s [%s]\n", left, docs[i].help, "", docs[i].env);
    }
}

static char *seed_buf; /* the HAMOK_ZMQ_SEEDS copy the seeds point into */

static bool add_seeds(peer_opts *o, char *list)
{
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        if (*tok == '\0') {
            continue;
        }
        if (o->n_seeds == MAX_SEEDS) {
            fprintf(stderr, "hamokctl peer: more than %d seeds\n", MAX_SEEDS);
            return false;
        }
        o->seeds[o->n_seeds++] = tok;
    }
    return true;
}

/* Apply one option value (from a flag or a variable). */
static bool set_opt(peer_opts *o, int id, const char *v, const char *from)
{
    bool ok = true;
    long long sl = 0;
    char *end = NULL;
    switch (id) {
    case O_CLUSTER: o->cluster = v; break;
    case O_PEER_ID: o->peer_id = v; break;
    case O_DATA_DIR: o->data_dir = v; break;
    case O_FSYNC: o->fsync = v; break;
    case O_ELECTION: ok = parse_u64(v, 2, 600000, &o->election_ms); break;
    case O_HEARTBEAT: ok = parse_u64(v, 1, 600000, &o->heartbeat_ms); break;
    case O_PEER_TIMEOUT: ok = parse_u64(v, 0, 86400000, &o->peer_timeout_ms); break;
    case O_REQUEST_TIMEOUT: ok = parse_u64(v, 1, 3600000, &o->request_timeout_ms); break;
    case O_BOOTSTRAP: ok = parse_u64(v, 1, 1000, &o->bootstrap_expect); break;
    case O_SNAPSHOT: ok = parse_u64(v, 0, UINT64_MAX, &o->snapshot_entries); break;
    case O_TRANSPORT: o->transport = v; break;
    case O_HTTP: o->http = v; break;
    case O_INFO_FILE: o->info_file = v; break;
    case O_NO_LEAVE: o->no_leave = v == NULL || strcmp(v, "0") != 0; break;
    case O_BIND: o->bind = v; break;
    case O_ADVERTISE: o->advertise = v; break;
    case O_SEED:
        if (o->n_seeds == MAX_SEEDS) {
            ok = false;
        } else {
            o->seeds[o->n_seeds++] = v;
        }
        break;
    case O_CURVE_SECRET: o->curve_secret = v; break;
    case O_CURVE_ALLOWED: o->curve_allowed = v; break;
    case O_NATS_URL: o->nats_url = v; break;
    case O_NATS_PREFIX: o->nats_prefix = v; break;
    case O_NATS_NAME: o->nats_name = v; break;
    case O_NATS_USER: o->nats_user = v; break;
    case O_NATS_PASSWORD: o->nats_password = v; break;
    case O_NATS_TOKEN: o->nats_token = v; break;
    case O_NATS_NKEY: o->nats_nkey = v; break;
    case O_NATS_NKEY_PUB: o->nats_nkey_pub = v; break;
    case O_NATS_CREDS: o->nats_creds = v; break;
    case O_NATS_CA: o->nats_ca = v; break;
    case O_NATS_CERT: o->nats_cert = v; break;
    case O_NATS_KEY: o->nats_key = v; break;
    case O_NATS_TLS_HOSTNAME: o->nats_tls_hostname = v; break;
    case O_NATS_RECONNECT: ok = parse_u64(v, 1, 3600000, &o->nats_reconnect_ms); break;
    case O_NATS_MAX_RECONNECT:
        errno = 0;
        sl = strtoll(v, &end, 10);
        ok = errno == 0 && end != v && *end == '\0' && sl >= -1 && sl <= 1000000000;
        o->nats_max_reconnect = sl;
        break;
    case O_NATS_NO_RANDOMIZE: o->nats_no_randomize = v == NULL || strcmp(v, "0") != 0; break;
    default: ok = false; break;
    }
    if (!ok) {
        fprintf(stderr, "hamokctl peer: invalid value '%s' for %s\n", v != NULL ? v : "", from);
    }
    return ok;
}

static int parse_opts(peer_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->cluster = "hamok";
    o->transport = "zmq";
    o->nats_max_reconnect = -1;
    o->request_timeout_ms = 5000;
    /* Environment first; flags override. */
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        const char *v = env_or(docs[i].env, NULL);
        if (v == NULL) {
            continue;
        }
        if (docs[i].id == O_SEED) {
            free(seed_buf);
            seed_buf = strdup(v);
            if (seed_buf == NULL || !add_seeds(o, seed_buf)) {
                return EXIT_USAGE;
            }
        } else if (!set_opt(o, docs[i].id, v, docs[i].env)) {
            return EXIT_USAGE;
        }
    }
    struct option longs[sizeof docs / sizeof docs[0] + 2];
    size_t k = 0;
    for (; k < sizeof docs / sizeof docs[0]; k++) {
        longs[k] = (struct option){docs[k].flag, docs[k].arg ? required_argument : no_argument,
                                   NULL, docs[k].id};
    }
    longs[k++] = (struct option){"help", no_argument, NULL, O_HELP};
    longs[k] = (struct option){0, 0, 0, 0};
    bool seeds_from_env = o->n_seeds > 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'h' || c == O_HELP) {
            peer_usage(stdout);
            exit(EXIT_OK);
        }
        if (c == '?') {
            peer_usage(stderr);
            return EXIT_USAGE;
        }
        if (c == O_SEED && seeds_from_env) {
            o->n_seeds = 0; /* flags replace the variable's list */
            seeds_from_env = false;
        }
        char from[64];
        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
            if (docs[i].id == c) {
                snprintf(from, sizeof from, "--%s", docs[i].flag);
            }
        }
        if (!set_opt(o, c, optarg, from)) {
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hamokctl peer: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* Transports */

#ifdef HAMOKCTL_WITH_ZMQ
/* A key given inline (40 Z85 characters) or as a file holding one. */
static bool read_key(const char *arg, char out[HAMOK_ZMQ_KEY_LEN + 1])
{
    if (strlen(arg) == HAMOK_ZMQ_KEY_LEN && strchr(arg, '/') == NULL) {
        memcpy(out, arg, HAMOK_ZMQ_KEY_LEN + 1);
        return true;
    }
    FILE *f = fopen(arg, "r");
    if (f == NULL) {
        fprintf(stderr, "hamokctl peer: cannot read key file %s: %s\n", arg, strerror(errno));
        return false;
    }
    char line[256];
    bool ok = false;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }
        ok = strlen(line) == HAMOK_ZMQ_KEY_LEN;
        if (ok) {
            memcpy(out, line, HAMOK_ZMQ_KEY_LEN + 1);
        }
        break;
    }
    fclose(f);
    if (!ok) {
        fprintf(stderr, "hamokctl peer: %s holds no 40-character Z85 key\n", arg);
    }
    return ok;
}
#endif

static hamok_status make_transport(const peer_opts *o, hamok_transport **t)
{
    hamok_status st = HAMOK_ERR_INVALID;
    if (strcmp(o->transport, "mem") == 0) {
        static hamok_mem_hub *hub;
        if (hub == NULL && (st = hamok_mem_hub_new(&hub)) != HAMOK_OK) {
            return st;
        }
        return hamok_mem_transport_new(hub, t);
    }
    if (strcmp(o->transport, "zmq") == 0) {
#ifdef HAMOKCTL_WITH_ZMQ
        hamok_zmq_options zo;
        hamok_zmq_options_init(&zo);
        if (o->bind != NULL) {
            zo.bind = o->bind;
        }
        zo.advertise = o->advertise;
        zo.seeds = o->seeds;
        zo.n_seeds = o->n_seeds;
        char secret[HAMOK_ZMQ_KEY_LEN + 1], public_key[HAMOK_ZMQ_KEY_LEN + 1];
        if (o->curve_secret != NULL) {
            if (!read_key(o->curve_secret, secret) ||
                hamok_zmq_public_key(secret, public_key) != HAMOK_OK) {
                fprintf(stderr, "hamokctl peer: invalid CURVE secret key\n");
                return HAMOK_ERR_INVALID;
            }
            zo.curve_secret_key = secret;
            zo.curve_public_key = public_key;
            zo.curve_allowed_file = o->curve_allowed;
        }
        st = hamok_zmq_transport_new(&zo, t);
        if (st != HAMOK_OK) {
            fprintf(stderr, "hamokctl peer: zmq: %s\n", hamok_zmq_last_error());
        }
#else
        fprintf(stderr, "hamokctl peer: this build has no zmq transport\n");
#endif
        return st;
    }
    if (strcmp(o->transport, "nats") == 0) {
#ifdef HAMOKCTL_WITH_NATS
        hamok_nats_options no;
        hamok_nats_options_init(&no);
        if (o->nats_url != NULL) {
            no.url = o->nats_url;
        }
        if (o->nats_prefix != NULL) {
            no.prefix = o->nats_prefix;
        }
        no.name = o->nats_name;
        no.user = o->nats_user;
        no.password = o->nats_password;
        no.token = o->nats_token;
        no.nkey_seed_file = o->nats_nkey;
        no.nkey = o->nats_nkey_pub;
        no.creds_file = o->nats_creds;
        no.tls_ca_file = o->nats_ca;
        no.tls_cert_file = o->nats_cert;
        no.tls_key_file = o->nats_key;
        no.tls_hostname = o->nats_tls_hostname;
        no.reconnect_wait_ms = (uint32_t)o->nats_reconnect_ms;
        no.no_randomize = o->nats_no_randomize;
        /* hamokctl: -1 = forever (the default), 0 = never, n = n attempts;
         * the transport: 0 = forever, < 0 = never. */
        no.max_reconnect = o->nats_max_reconnect < 0    ? 0
                           : o->nats_max_reconnect == 0 ? -1
                                                        : (int)o->nats_max_reconnect;
        st = hamok_nats_transport_new(&no, t);
        if (st != HAMOK_OK) {
            fprintf(stderr, "hamokctl peer: NATS: %s\n", hamok_nats_last_error());
        }
#else
        fprintf(stderr, "hamokctl peer: this build has no NATS transport\n");
#endif
        return st;
    }
    fprintf(stderr, "hamokctl peer: unknown transport '%s' (zmq, nats, mem)\n", o->transport);
    return HAMOK_ERR_INVALID;
}

static hamok_status make_config(const peer_opts *o, hamok_config **out)
{
    hamok_config *cfg;
    hamok_status st = hamok_config_new(&cfg);
    if (st != HAMOK_OK) {
        return st;
    }
    const char *what = "--cluster";
    if ((st = hamok_config_set_cluster(cfg, o->cluster)) != HAMOK_OK) {
        goto bad;
    }
    what = "--peer-id";
    if (o->peer_id != NULL && (st = hamok_config_set_peer_id(cfg, o->peer_id)) != HAMOK_OK) {
        goto bad;
    }
    what = "--data-dir";
    if (o->data_dir != NULL && (st = hamok_config_set_storage_dir(cfg, o->data_dir)) != HAMOK_OK) {
        goto bad;
    }
    what = "--fsync";
    if (o->fsync != NULL) {
        unsigned long long ms = 2;
        if (strcmp(o->fsync, "always") == 0) {
            st = hamok_config_set_sync(cfg, HAMOK_FSYNC_ALWAYS, 0);
        } else if (strcmp(o->fsync, "batch") == 0 ||
                   (strncmp(o->fsync, "batch:", 6) == 0 && parse_u64(o->fsync + 6, 1, 1000, &ms))) {
            st = hamok_config_set_sync(cfg, HAMOK_FSYNC_BATCH, (uint32_t)ms);
        } else {
            st = HAMOK_ERR_INVALID;
        }
        if (st != HAMOK_OK) {
            goto bad;
        }
    }
    what = "--election-timeout/--heartbeat";
    if (o->election_ms != 0 || o->heartbeat_ms != 0) {
        uint32_t e = o->election_ms != 0 ? (uint32_t)o->election_ms : 1000;
        uint32_t h = o->heartbeat_ms != 0 ? (uint32_t)o->heartbeat_ms : (e / 10 ? e / 10 : 1);
        if ((st = hamok_config_set_timing(cfg, e, h)) != HAMOK_OK) {
            goto bad;
        }
        if (o->peer_timeout_ms == 0 && 5000 < 2u * e) {
            hamok_config_set_peer_timeout(cfg, 2u * e);
        }
    }
    what = "--peer-timeout";
    if (o->peer_timeout_ms != 0 &&
        (st = hamok_config_set_peer_timeout(cfg, (uint32_t)o->peer_timeout_ms)) != HAMOK_OK) {
        goto bad;
    }
    what = "--request-timeout";
    if ((st = hamok_config_set_request_timeout(cfg, (uint32_t)o->request_timeout_ms)) != HAMOK_OK) {
        goto bad;
    }
    what = "--bootstrap-expect";
    if (o->bootstrap_expect != 0 &&
        (st = hamok_config_set_bootstrap_expect(cfg, (uint32_t)o->bootstrap_expect)) != HAMOK_OK) {
        goto bad;
    }
    what = "--snapshot-entries";
    if (o->snapshot_entries != 0 &&
        (st = hamok_config_set_snapshot_entries(cfg, o->snapshot_entries)) != HAMOK_OK) {
        goto bad;
    }
    *out = cfg;
    return HAMOK_OK;
bad:
    fprintf(stderr, "hamokctl peer: invalid %s: %s\n", what, hamok_status_str(st));
    hamok_config_destroy(&cfg);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Handles and health */

hamok_status peer_handle_get(peer *p, hamok_coll_kind kind, const char *name, void **out)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255) {
        return HAMOK_ERR_INVALID;
    }
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_handles; i++) {
        if (strcmp(p->handles[i].name, name) == 0) {
            hamok_status st = HAMOK_OK;
            if (p->handles[i].kind != kind) {
                st = HAMOK_ERR_WRONG_KIND;
            } else {
                *out = p->handles[i].h;
            }
            pthread_mutex_unlock(&p->mu);
            return st;
        }
    }
    hamok_status st = HAMOK_ERR_BUSY;
    void *h = NULL;
    if (p->n_handles < PEER_MAX_HANDLES) {
        switch (kind) {
        case HAMOK_COLL_MAP: st = hamok_map_open(p->node, name, (hamok_map **)&h); break;
        case HAMOK_COLL_RECORD: st = hamok_record_open(p->node, name, (hamok_record **)&h); break;
        case HAMOK_COLL_QUEUE: st = hamok_queue_open(p->node, name, (hamok_queue **)&h); break;
        case HAMOK_COLL_EMITTER:
            st = hamok_emitter_open(p->node, name, (hamok_emitter **)&h);
            break;
        default: st = HAMOK_ERR_INVALID; break;
        }
    }
    if (st == HAMOK_OK) {
        peer_handle *ph = &p->handles[p->n_handles++];
        ph->kind = kind;
        snprintf(ph->name, sizeof ph->name, "%s", name);
        ph->h = h;
        *out = h;
    }
    pthread_mutex_unlock(&p->mu);
    return st;
}

static void close_handles(peer *p)
{
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_handles; i++) {
        peer_handle *ph = &p->handles[i];
        switch (ph->kind) {
        case HAMOK_COLL_MAP: hamok_map_close((hamok_map **)&ph->h); break;
        case HAMOK_COLL_RECORD: hamok_record_close((hamok_record **)&ph->h); break;
        case HAMOK_COLL_QUEUE: hamok_queue_close((hamok_queue **)&ph->h); break;
        case HAMOK_COLL_EMITTER: hamok_emitter_close((hamok_emitter **)&ph->h); break;
        default: break;
        }
    }
    p->n_handles = 0;
    pthread_mutex_unlock(&p->mu);
}

/* Caught up: within this many entries of the commit index. */
#define HEALTH_LAG 1000u

bool peer_healthy(peer *p, const char **why)
{
    hamok_node_stats s;
    hamok_node_stats_get(p->node, &s);
    const char *w = NULL;
    if (!atomic_load(&p->joined)) {
        w = "not joined yet";
    } else if (s.role != HAMOK_ROLE_LEADER && s.role != HAMOK_ROLE_FOLLOWER) {
        w = s.role == HAMOK_ROLE_LEARNER ? "catching up (learner)" : "no voter";
    } else if (!s.has_leader) {
        w = "no leader";
    } else if (s.applied_index + HEALTH_LAG < s.commit_index) {
        w = "applied index behind the commit index";
    }
    if (why != NULL) {
        *why = w;
    }
    return w == NULL;
}

/* ------------------------------------------------------------------------ */
/* Running */

static void *joiner(void *arg)
{
    peer *p = arg;
    unsigned rounds = 0;
    while (!atomic_load(&p->stopping)) {
        /* Short rounds: the main thread waits for this thread before it
         * destroys the node. */
        hamok_status st = hamok_node_join(p->node, 1000);
        if (st == HAMOK_OK) {
            atomic_store(&p->joined, true);
            hamok_id id = hamok_node_id(p->node);
            char text[HAMOK_ID_STR_LEN + 1];
            hamok_id_format(&id, text);
            printf("hamokctl: peer %s joined\n", text);
            fflush(stdout);
            return NULL;
        }
        if (st == HAMOK_ERR_CLOSED) {
            return NULL;
        }
        if (++rounds % 5 == 0) {
            fprintf(stderr, "hamokctl peer: join: %s (still trying)\n", hamok_status_str(st));
        }
    }
    return NULL;
}

static void on_node_event(void *ud, const hamok_node_event *ev)
{
    (void)ud;
    char text[HAMOK_ID_STR_LEN + 1] = "none";
    switch (ev->type) {
    case HAMOK_EVENT_LEADER_CHANGED:
        if (ev->has_leader) {
            hamok_id_format(&ev->leader, text);
        }
        printf("hamokctl: leader %s (term %llu)\n", text, (unsigned long long)ev->term);
        break;
    case HAMOK_EVENT_PEER_JOINED:
    case HAMOK_EVENT_PEER_LEFT:
        hamok_id_format(&ev->peer, text);
        printf("hamokctl: peer %s %s\n", text,
               ev->type == HAMOK_EVENT_PEER_JOINED ? "joined the configuration"
                                                   : "left the configuration");
        break;
    case HAMOK_EVENT_TRANSPORT:
        printf("hamokctl: transport %s%s%s\n", hamok_transport_link_str(ev->link),
               ev->text != NULL ? ": " : "", ev->text != NULL ? ev->text : "");
        break;
    case HAMOK_EVENT_ERROR:
        printf("hamokctl: error: %s: %s\n", ev->text != NULL ? ev->text : "",
               hamok_status_str(ev->status));
        break;
    default: return;
    }
    fflush(stdout);
}

static bool write_info(const char *path, const peer *p, unsigned http_port, const char *http_host)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "hamokctl peer: cannot write %s: %s\n", tmp, strerror(errno));
        return false;
    }
    hamok_id id = hamok_node_id(p->node);
    char text[HAMOK_ID_STR_LEN + 1];
    hamok_id_format(&id, text);
    const char *endpoint = p->transport != NULL && p->transport->ops->local_endpoint != NULL
                               ? p->transport->ops->local_endpoint(p->transport)
                               : "";
    fprintf(f, "{\"id\": \"%s\", \"pid\": %ld, \"transport\": \"%s\", \"endpoint\": \"%s\"", text,
            (long)getpid(), p->transport_kind, endpoint);
    if (http_port != 0) {
        fprintf(f, ", \"http\": \"http://%s:%u\"", http_host, http_port);
    }
    fprintf(f, "}\n");
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "hamokctl peer: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

int hamokctl_peer(int argc, char **argv)
{
    peer_opts o;
    int rc = parse_opts(&o, argc, argv);
    if (rc != EXIT_OK) {
        return rc;
    }
    /* Signals are taken by sigwait() below: blocked here, before any thread
     * (node loop, transport, HTTP) exists, so every thread inherits it. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    hamok_config *cfg = NULL;
    if (make_config(&o, &cfg) != HAMOK_OK) {
        return EXIT_USAGE;
    }
    hamok_transport *t = NULL;
    hamok_status st = make_transport(&o, &t);
    if (st != HAMOK_OK) {
        fprintf(stderr, "hamokctl peer: cannot create the %s transport: %s\n", o.transport,
                hamok_status_str(st));
        hamok_config_destroy(&cfg);
        return st == HAMOK_ERR_INVALID ? EXIT_USAGE : EXIT_FAIL;
    }
    static peer p;
    memset(&p, 0, sizeof p);
    pthread_mutex_init(&p.mu, NULL);
    atomic_init(&p.joined, false);
    atomic_init(&p.stopping, false);
    p.transport = t;
    p.request_timeout_ms = (int)o.request_timeout_ms;
    snprintf(p.transport_kind, sizeof p.transport_kind, "%s", o.transport);
    st = hamok_node_new(&p.node, cfg, &t);
    hamok_config_destroy(&cfg);
    if (st != HAMOK_OK) {
        fprintf(stderr, "hamokctl peer: cannot start the node: %s\n", hamok_status_str(st));
        return EXIT_FAIL;
    }
    hamok_node_on(p.node, on_node_event, NULL);
    hamok_id id = hamok_node_id(p.node);
    char idtext[HAMOK_ID_STR_LEN + 1];
    hamok_id_format(&id, idtext);
    printf("hamokctl: peer %s started (cluster %s, transport %s, endpoint %s)\n", idtext, o.cluster,
           o.transport,
           p.transport->ops->local_endpoint != NULL ? p.transport->ops->local_endpoint(p.transport)
                                                    : "");
    fflush(stdout);

    http_server *http = NULL;
    unsigned port = 0;
    char host[256] = "";
    if (o.http != NULL) {
        const char *colon = strrchr(o.http, ':');
        size_t hl = colon != NULL ? (size_t)(colon - o.http) : 0;
        snprintf(host, sizeof host, "%.*s", (int)hl, o.http);
        http = http_start(&p, o.http, &port);
        if (http == NULL) {
            hamok_node_destroy(&p.node);
            return EXIT_FAIL;
        }
        printf("hamokctl: http http://%s:%u\n", host[0] ? host : "0.0.0.0", port);
        fflush(stdout);
    }
    if (o.info_file != NULL && !write_info(o.info_file, &p, port, host[0] ? host : "127.0.0.1")) {
        http_stop(http);
        hamok_node_destroy(&p.node);
        return EXIT_FAIL;
    }
    pthread_t jt;
    bool has_joiner = pthread_create(&jt, NULL, joiner, &p) == 0;
    if (!has_joiner) {
        fprintf(stderr, "hamokctl peer: cannot start the join thread\n");
    }

    int sig = 0;
    sigwait(&sigs, &sig);
    printf("hamokctl: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    atomic_store(&p.stopping, true);
    if (has_joiner) {
        pthread_join(jt, NULL);
    }
    if (!o.no_leave && atomic_load(&p.joined)) {
        st = hamok_node_leave(p.node, 5000);
        printf("hamokctl: leave: %s\n", hamok_status_str(st));
        fflush(stdout);
    }
    http_stop(http);
    close_handles(&p);
    hamok_node_destroy(&p.node);
    free(seed_buf);
    return EXIT_OK;
}
