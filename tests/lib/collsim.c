#include "collsim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/command.h"
#include "collections/registry.h"
#include "collections/session.h"
#include "lincheck.h"
#include "raft/raft.h"
#include "util/buf.h"
#include "util/prng.h"

#define CS_SLOTS 2 /* client threads per node */
/* Keys in use at a time: two per map/record, two emitter events. They
 * rotate: after EPOCH_OPS operations on a collection its clients move to
 * fresh keys, which keeps every key's history short (the search is
 * exponential in the operations of unknown outcome of one key). */
#define CS_KEYS    2
#define CS_EVENTS  2
#define EPOCH_OPS  20
#define MAX_KEYS   (CS_KEYS * 256)  /* per map/record: "k0".."k511" */
#define MAX_EVENTS (CS_EVENTS * 64) /* "e0".."e127" */
#define CS_MAX     HAMOK_SIM_MAX_NODES
#define SEQ_BLOCK  65536u /* the node runtime's client-seq reservation */
#define POP_MAX    2u
#define LIN_BUDGET 20000000u

/* Register collections. */
static const char *const reg_name[2] = {"m", "r"};
static const uint8_t reg_kind[2] = {HAMOK_KIND_MAP, HAMOK_KIND_RECORD};

/* "k12", "e3" (buf of 16). */
static const char *key_str(int k, char *buf)
{
    snprintf(buf, 16, "k%d", k);
    return buf;
}

static const char *event_str(int e, char *buf)
{
    snprintf(buf, 16, "e%d", e);
    return buf;
}
#define QUEUE_NAME   "q"
#define EMITTER_NAME "e"

enum { OUT_PENDING = 0, OUT_OK, OUT_FAILED, OUT_UNKNOWN };

/* Operation types. */
enum {
    T_READ = 0, /* map/record get after a barrier */
    T_SET,
    T_CAS,
    T_INSERT,
    T_DELETE,
    T_REMOVE,
    T_REMOVE_IF,
    T_PUSH,
    T_POP,
    T_SUB,
    T_UNSUB,
    T_UPDMETA,
    T_SUBREAD, /* emitter: is (event, peer) subscribed, with what metadata */
    T_ERASE,   /* synthetic: a departed peer's subscription removed by a CONFIG entry */
    T_COUNT_
};

static const char *const type_name[T_COUNT_] = {
    "READ", "SET", "CAS", "INSERT", "DELETE",  "REMOVE",  "REMOVE_IF",
    "PUSH", "POP", "SUB", "UNSUB",  "UPDMETA", "SUBREAD", "ERASE"};

typedef struct cs_op {
    uint64_t id;
    int node;
    int type;
    int coll; /* register collection (0 map, 1 record) */
    int key;  /* map key, or emitter event */
    int peer; /* emitter subscriber */
    uint64_t lkey;
    uint8_t lkind;
    int64_t value, expected; /* 1 = "no metadata" for the emitter */
    bool has_value, has_expected;
    uint64_t items[2];
    size_t n_items;
    uint32_t pop_max;
    uint64_t *popped;
    size_t n_popped;
    uint64_t call, ret;
    int outcome;
    int64_t out;
    uint64_t seq;
    uint8_t *cmd;
    size_t cmd_len;
    bool resolving, resolved;
    bool was_accepted; /* a leader accepted it at least once */
    bool synthetic;    /* final reads, removals by configuration: not a client's */
    uint32_t sends;
} cs_op;

typedef struct cs_req {
    bool active;
    size_t op;
    uint64_t deadline;
    uint32_t gen; /* retry timer generation */
    bool accepted;
    uint32_t resends; /* sent again while accepted (node.c accepted_wait) */
    uint64_t read_id; /* reads: the barrier in progress (0: none) */
} cs_req;

typedef struct cs_mirror {
    int64_t reg[2][MAX_KEYS];
    int64_t sub[MAX_EVENTS][CS_MAX];
    uint64_t *q;
    size_t qn, qcap;
} cs_mirror;

typedef struct cs_node {
    hamok_registry *reg; /* NULL while down */
    bool gone;           /* wiped or retired */
    uint32_t inc;        /* incarnation: client ticks of older ones are stale */
    uint64_t next_seq;
    uint64_t seq_reserved; /* survives restarts */
    uint64_t max_sent;     /* highest number that left this client */
    bool had_leader;
    hamok_id leader;
    cs_req req[CS_SLOTS];
    cs_mirror mir;
    int64_t seen[2][MAX_KEYS];     /* last value this node's clients saw */
    int64_t seen_meta[MAX_EVENTS]; /* last metadata of its own subscriptions */
    uint64_t ev_hash;
    uint32_t ev_count;
} cs_node;

/* Ground truth of the session table: (client, seq) -> first commit. */
typedef struct sess_slot {
    hamok_id client;
    uint64_t seq; /* 0: empty */
    uint64_t index;
    uint64_t hash;
} sess_slot;

typedef struct collsim {
    hamok_collsim_opts o;
    hamok_sim *sim;
    hamok_sim_app app;
    hamok_chaos_workload wl;
    hamok_chaos_info info;
    bool started;
    bool draining; /* no new operations */
    bool closed;   /* the clients are gone: SUBMIT_REQUESTs still in flight are dropped */
    bool trace;
    hamok_prng rnd;
    uint32_t op_mean_ms; /* wanted gap between two operations, cluster-wide */
    uint64_t op_timeout_ms;
    cs_node nodes[CS_MAX];
    cs_op *ops;
    size_t n_ops, cap_ops;
    uint64_t clock; /* history stamps */
    /* Progress, as the chaos runner counts it for its own proposals:
     * commands a leader accepted, reads served. */
    uint32_t progress;
    int64_t next_value;
    uint32_t reg_ops[2], em_ops; /* operations per collection (key epochs) */
    int n_keys[2], n_events;     /* keys / events used so far */
    uint64_t next_item;
    /* Apply context. */
    int cur; /* node applying (-1 none) */
    bool apply_first;
    bool apply_config;
    char mirror_err[256];
    uint64_t g_applied;
    uint64_t *idx_hash; /* per index: result + events of its first apply */
    uint64_t *snap_hash;
    size_t idx_cap;
    sess_slot *sess;
    size_t sess_cap, sess_n;
    hamok_buf res;
    hamok_buf enc;
    /* Final phase. */
    uint64_t final_read_id;
    int final_node;
    int res_leader;
    uint64_t res_term, res_last;
    uint64_t final_call;
    bool final_done;
    hamok_qchk *final_q;
    size_t *resolving;
    size_t n_resolving;
    char *history; /* the result's buffer for a key's history */
    size_t history_len;
    hamok_collsim_stats st;
} collsim;

/* ------------------------------------------------------------------------ */
/* Helpers */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 0x100000001b3ULL;
    }
    return h;
}

#define FNV0 0xcbf29ce484222325ULL

static uint64_t below(collsim *cs, uint64_t n)
{
    return hamok__prng_below(&cs->rnd, n);
}

static bool failed(const collsim *cs)
{
    return hamok_sim_failed(cs->sim);
}

static bool cs_fail(collsim *cs, const char *inv, int node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool cs_fail(collsim *cs, const char *inv, int node, const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hamok_sim_fail(cs->sim, inv, node, "%s", buf);
    return false;
}

static bool name_is(const uint8_t *p, size_t n, const char *s)
{
    return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* "v123" -> 123 for tag 'v'. */
static bool parse_val(const uint8_t *p, size_t n, char tag, int64_t *out)
{
    if (p == NULL || n < 2 || n > 20 || p[0] != (uint8_t)tag) {
        return false;
    }
    int64_t v = 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

static size_t fmt_val(char *buf, size_t len, char tag, int64_t v)
{
    int k = snprintf(buf, len, "%c%" PRId64, tag, v);
    return k > 0 ? (size_t)k : 0;
}

static const hamok_coll *coll_of(const hamok_registry *reg, uint8_t kind, const char *name)
{
    const hamok_coll *c = NULL;
    if (hamok__registry_lookup(reg, kind, (const uint8_t *)name, strlen(name), &c) != HAMOK_OK) {
        return NULL;
    }
    return c;
}

static bool self_member(hamok_raft *core, const hamok_id *self)
{
    size_t k = 0;
    uint64_t ci = 0;
    const hamok_member *ms = hamok__raft_members(core, &k, &ci);
    for (size_t i = 0; i < k; i++) {
        if (hamok__id_eq(&ms[i].id, self)) {
            return true;
        }
    }
    return false;
}

static uint64_t lkey_reg(int coll, int key)
{
    return (uint64_t)(coll * 1000 + key);
}

#define LKEY_SUB 100000u

static uint64_t lkey_sub(int event, int peer)
{
    return LKEY_SUB + (uint64_t)event * 64u + (uint64_t)peer;
}

static void describe(const cs_op *op, char *buf, size_t len)
{
    const char *out = op->outcome == OUT_OK        ? "ok"
                      : op->outcome == OUT_FAILED  ? "failed"
                      : op->outcome == OUT_UNKNOWN ? "unknown"
                                                   : "pending";
    int k = snprintf(buf, len, "#%" PRIu64 " n%d %s", op->id, op->node, type_name[op->type]);
    size_t at = k > 0 ? (size_t)k : 0;
    if (op->type <= T_REMOVE_IF) {
        at += (size_t)snprintf(buf + at, len - at, " %s/k%d", reg_name[op->coll], op->key);
    } else if (op->type >= T_SUB && op->type <= T_ERASE) {
        at += (size_t)snprintf(buf + at, len - at, " e%d/n%d", op->key, op->peer);
    }
    if (at < len && (op->has_value || op->type == T_SET || op->type == T_INSERT)) {
        at += (size_t)snprintf(buf + at, len - at, " v=%" PRId64, op->value);
    }
    if (at < len && op->has_expected) {
        at += (size_t)snprintf(buf + at, len - at, " exp=%" PRId64, op->expected);
    }
    if (at < len && op->n_items > 0) {
        at += (size_t)snprintf(buf + at, len - at, " items=%" PRIu64 "%s", op->items[0],
                               op->n_items > 1 ? ",.." : "");
    }
    if (at < len) {
        at += (size_t)snprintf(buf + at, len - at, " seq=%" PRIu64 " -> %s", op->seq, out);
    }
    if (at < len && op->outcome == OUT_OK) {
        if (op->type == T_POP) {
            at += (size_t)snprintf(buf + at, len - at, " [%zu items%s%" PRIu64 "]", op->n_popped,
                                   op->n_popped ? ": " : "", op->n_popped ? op->popped[0] : 0);
        } else if (op->type != T_PUSH) {
            at += (size_t)snprintf(buf + at, len - at, " out=%" PRId64, op->out);
        }
    }
    if (at < len) {
        snprintf(buf + at, len - at, " [%" PRIu64 ",%s%" PRIu64 "]%s", op->call,
                 op->outcome == OUT_OK ? "" : "~", op->ret, op->resolved ? " (resolved)" : "");
    }
}

static void trace_op(collsim *cs, const cs_op *op, const char *what)
{
    if (!cs->trace) {
        return;
    }
    char d[200];
    describe(op, d, sizeof d);
    printf("[%8" PRIu64 " ms] n%d CLIENT %s %s\n", hamok_sim_now(cs->sim), op->node, what, d);
}

/* ------------------------------------------------------------------------ */
/* History */

static size_t op_new(collsim *cs, int node, int type)
{
    if (cs->n_ops == cs->cap_ops) {
        size_t cap = cs->cap_ops ? cs->cap_ops * 2 : 512;
        cs_op *p = realloc(cs->ops, cap * sizeof *p);
        if (p == NULL) {
            cs_fail(cs, "sim-oom", node, "out of memory");
            return SIZE_MAX;
        }
        cs->ops = p;
        cs->cap_ops = cap;
    }
    size_t i = cs->n_ops++;
    cs_op *op = &cs->ops[i];
    memset(op, 0, sizeof *op);
    op->id = i + 1;
    op->node = node;
    op->type = type;
    op->call = ++cs->clock;
    return i;
}

/* ------------------------------------------------------------------------ */
/* Mirrors: each node's collection events replayed */

/* Events beyond cs->n_events were never used: their rows stay zero. */
static void mirror_reset(const collsim *cs, cs_mirror *m)
{
    memset(m->reg, 0, sizeof m->reg);
    memset(m->sub, 0, (size_t)cs->n_events * sizeof m->sub[0]);
    m->qn = 0;
}

static bool mirror_qpush(cs_mirror *m, uint64_t item)
{
    if (m->qn == m->qcap) {
        size_t cap = m->qcap ? m->qcap * 2 : 64;
        uint64_t *p = realloc(m->q, cap * sizeof *p);
        if (p == NULL) {
            return false;
        }
        m->q = p;
        m->qcap = cap;
    }
    m->q[m->qn++] = item;
    return true;
}

/* "e12" -> 12 (< MAX_EVENTS), else -1. */
static int event_index(const uint8_t *p, size_t n)
{
    int64_t v;
    return parse_val(p, n, 'e', &v) && v < MAX_EVENTS ? (int)v : -1;
}

static int key_index(const uint8_t *p, size_t n)
{
    int64_t v;
    return parse_val(p, n, 'k', &v) && v < MAX_KEYS ? (int)v : -1;
}

static int reg_index(uint8_t kind, const uint8_t *name, size_t n)
{
    for (int c = 0; c < 2; c++) {
        if (kind == reg_kind[c] && name_is(name, n, reg_name[c])) {
            return c;
        }
    }
    return -1;
}

static int64_t meta_state(bool has, const uint8_t *p, size_t n, bool *ok)
{
    int64_t v = 1; /* subscribed without metadata */
    if (has && !parse_val(p, n, 'm', &v)) {
        *ok = false;
    }
    return v;
}

/* The registry's content as a mirror. False (with why) if it holds
 * something the workload never writes. */
static bool mirror_load(collsim *cs, const hamok_registry *reg, cs_mirror *m, char *why, size_t len)
{
    mirror_reset(cs, m);
    size_t cur = 0;
    hamok_coll_view view;
    for (int c = 0; c < 2; c++) {
        const hamok_coll *coll = coll_of(reg, reg_kind[c], reg_name[c]);
        cur = 0;
        while (coll != NULL && hamok__coll_next(coll, &cur, &view)) {
            int k = key_index(view.key, view.key_len);
            if (k < 0 || !parse_val(view.value, view.value_len, 'v', &m->reg[c][k])) {
                snprintf(why, len, "%s holds a key or value the workload never wrote", reg_name[c]);
                return false;
            }
        }
    }
    const hamok_coll *q = coll_of(reg, HAMOK_KIND_QUEUE, QUEUE_NAME);
    cur = 0;
    while (q != NULL && hamok__coll_next(q, &cur, &view)) {
        int64_t item;
        if (!parse_val(view.value, view.value_len, 'q', &item) ||
            !mirror_qpush(m, (uint64_t)item)) {
            snprintf(why, len, "the queue holds an item the workload never pushed");
            return false;
        }
    }
    const hamok_coll *em = coll_of(reg, HAMOK_KIND_EMITTER, EMITTER_NAME);
    cur = 0;
    while (em != NULL && hamok__coll_next(em, &cur, &view)) {
        int e = event_index(view.key, view.key_len);
        int p = hamok_sim_node_of(cs->sim, &view.peer);
        bool ok = e >= 0 && p >= 0;
        int64_t st = meta_state(view.has_value, view.value, view.value_len, &ok);
        if (!ok) {
            snprintf(why, len, "the emitter holds a subscription the workload never made");
            return false;
        }
        m->sub[e][p] = st;
    }
    return true;
}

static bool mirror_equal(const cs_mirror *a, const cs_mirror *b)
{
    return memcmp(a->reg, b->reg, sizeof a->reg) == 0 &&
           memcmp(a->sub, b->sub, sizeof a->sub) == 0 && a->qn == b->qn &&
           (a->qn == 0 || memcmp(a->q, b->q, a->qn * sizeof *a->q) == 0);
}

static void mirror_err(collsim *cs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mirror_err(collsim *cs, const char *fmt, ...)
{
    if (cs->mirror_err[0] != '\0') {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cs->mirror_err, sizeof cs->mirror_err, fmt, ap);
    va_end(ap);
}

static void add_erase(collsim *cs, int event, int peer)
{
    size_t i = op_new(cs, -1, T_ERASE);
    if (i == SIZE_MAX) {
        return;
    }
    cs_op *op = &cs->ops[i];
    op->node = peer;
    op->key = event;
    op->peer = peer;
    op->lkey = lkey_sub(event, peer);
    op->lkind = HAMOK_LIN_ERASE;
    op->synthetic = true;
    op->outcome = OUT_OK;
    op->ret = ++cs->clock;
}

static void mirror_event(collsim *cs, int node, const hamok_coll_event *ev)
{
    cs_mirror *m = &cs->nodes[node].mir;
    int64_t v = 0, old = 0;
    char kb[16];
    if (ev->kind == HAMOK_KIND_MAP || ev->kind == HAMOK_KIND_RECORD) {
        int c = reg_index(ev->kind, ev->name, ev->name_len);
        if (c < 0) {
            return;
        }
        if (ev->type == HAMOK_CEV_CLEAR) {
            memset(m->reg[c], 0, sizeof m->reg[c]);
            return;
        }
        int k = key_index(ev->key, ev->key_len);
        if (k < 0) {
            mirror_err(cs, "event on an unknown key of %s", reg_name[c]);
            return;
        }
        int64_t *slot = &m->reg[c][k];
        bool has_v = ev->has_value && parse_val(ev->value, ev->value_len, 'v', &v);
        bool has_o = ev->has_old && parse_val(ev->old, ev->old_len, 'v', &old);
        switch (ev->type) {
        case HAMOK_CEV_INSERT:
            if (!has_v || *slot != 0) {
                mirror_err(cs,
                           "INSERT %s/%s=%" PRId64 " but the key holds %" PRId64 " (index %" PRIu64
                           ")",
                           reg_name[c], key_str(k, kb), v, *slot, ev->index);
            }
            *slot = v;
            break;
        case HAMOK_CEV_UPDATE:
            if (!has_v || !has_o || *slot != old) {
                mirror_err(cs,
                           "UPDATE %s/%s old=%" PRId64 " but the key holds %" PRId64
                           " (index %" PRIu64 ")",
                           reg_name[c], key_str(k, kb), old, *slot, ev->index);
            }
            *slot = v;
            break;
        case HAMOK_CEV_REMOVE:
            if (!has_o || *slot != old || old == 0) {
                mirror_err(cs,
                           "REMOVE %s/%s old=%" PRId64 " but the key holds %" PRId64
                           " (index %" PRIu64 ")",
                           reg_name[c], key_str(k, kb), old, *slot, ev->index);
            }
            *slot = 0;
            break;
        default: mirror_err(cs, "unexpected event %u on %s", ev->type, reg_name[c]); break;
        }
        return;
    }
    if (ev->kind == HAMOK_KIND_QUEUE && name_is(ev->name, ev->name_len, QUEUE_NAME)) {
        switch (ev->type) {
        case HAMOK_CEV_ADD:
            if (!ev->has_value || !parse_val(ev->value, ev->value_len, 'q', &v) ||
                !mirror_qpush(m, (uint64_t)v)) {
                mirror_err(cs, "ADD of an item the workload never pushed");
            }
            break;
        case HAMOK_CEV_REMOVE:
            if (!ev->has_value || !parse_val(ev->value, ev->value_len, 'q', &v) || m->qn == 0 ||
                m->q[0] != (uint64_t)v) {
                mirror_err(cs,
                           "queue REMOVE of item %" PRId64 " but the head is %" PRIu64
                           " (index %" PRIu64 ")",
                           v, m->qn ? m->q[0] : 0, ev->index);
                break;
            }
            memmove(m->q, m->q + 1, (m->qn - 1) * sizeof *m->q);
            m->qn--;
            break;
        case HAMOK_CEV_CLEAR: m->qn = 0; break;
        case HAMOK_CEV_EMPTY:
            if (m->qn != 0) {
                mirror_err(cs, "queue EMPTY with %zu items (index %" PRIu64 ")", m->qn, ev->index);
            }
            break;
        case HAMOK_CEV_NOT_EMPTY:
            if (m->qn == 0) {
                mirror_err(cs, "queue NOT_EMPTY while empty (index %" PRIu64 ")", ev->index);
            }
            break;
        default: mirror_err(cs, "unexpected queue event %u", ev->type); break;
        }
        return;
    }
    if (ev->kind == HAMOK_KIND_EMITTER && name_is(ev->name, ev->name_len, EMITTER_NAME)) {
        int e = event_index(ev->key, ev->key_len);
        int p = hamok_sim_node_of(cs->sim, &ev->peer);
        if (e < 0 || p < 0) {
            mirror_err(cs, "subscription event on an unknown event or peer");
            return;
        }
        bool ok = true;
        int64_t *slot = &m->sub[e][p];
        switch (ev->type) {
        case HAMOK_CEV_SUB_ADDED:
            v = meta_state(ev->has_value, ev->value, ev->value_len, &ok);
            if (!ok || *slot != 0) {
                mirror_err(cs,
                           "SUB_ADDED %s/n%d but it is subscribed already (%" PRId64
                           ", index %" PRIu64 ")",
                           event_str(e, kb), p, *slot, ev->index);
            }
            *slot = v;
            break;
        case HAMOK_CEV_SUB_UPDATED:
            v = meta_state(ev->has_value, ev->value, ev->value_len, &ok);
            old = meta_state(ev->has_old, ev->old, ev->old_len, &ok);
            if (!ok || *slot == 0 || *slot != old) {
                mirror_err(cs,
                           "SUB_UPDATED %s/n%d old=%" PRId64 " but the mirror has %" PRId64
                           " (index %" PRIu64 ")",
                           event_str(e, kb), p, old, *slot, ev->index);
            }
            *slot = v;
            break;
        case HAMOK_CEV_SUB_REMOVED:
            old = meta_state(ev->has_old, ev->old, ev->old_len, &ok);
            if (!ok || *slot == 0 || *slot != old) {
                mirror_err(cs,
                           "SUB_REMOVED %s/n%d old=%" PRId64 " but the mirror has %" PRId64
                           " (index %" PRIu64 ")",
                           event_str(e, kb), p, old, *slot, ev->index);
            }
            *slot = 0;
            if (cs->apply_first && cs->apply_config) {
                add_erase(cs, e, p); /* a departed peer's subscription */
            }
            break;
        default: mirror_err(cs, "unexpected emitter event %u", ev->type); break;
        }
    }
}

static void on_event(void *ud, const hamok_coll_event *ev)
{
    collsim *cs = ud;
    if (cs->cur < 0) {
        return;
    }
    cs_node *nd = &cs->nodes[cs->cur];
    uint64_t h = nd->ev_hash;
    uint8_t head[4] = {ev->type, ev->kind, ev->has_value, ev->has_old};
    h = fnv(h, head, sizeof head);
    h = fnv(h, ev->name, ev->name_len);
    h = fnv(h, &ev->key_len, sizeof ev->key_len);
    h = fnv(h, ev->key, ev->key_len);
    h = fnv(h, &ev->value_len, sizeof ev->value_len);
    h = fnv(h, ev->value, ev->has_value ? ev->value_len : 0);
    h = fnv(h, &ev->old_len, sizeof ev->old_len);
    h = fnv(h, ev->old, ev->has_old ? ev->old_len : 0);
    h = fnv(h, ev->peer.b, HAMOK_ID_LEN);
    nd->ev_hash = h;
    nd->ev_count++;
    cs->st.events++;
    mirror_event(cs, cs->cur, ev);
}

/* ------------------------------------------------------------------------ */
/* Completing operations */

static void schedule_tick(collsim *cs, int node, int slot, uint64_t at);
static uint64_t think(collsim *cs);

/* Decode a registry result into the operation. */
static bool take_result(collsim *cs, cs_op *op, const uint8_t *res, size_t len)
{
    hamok_cmd_result r;
    hamok_status st = hamok__cmd_result_decode(res, len, &r);
    if (st != HAMOK_OK) {
        return cs_fail(cs, "client", op->node, "op #%" PRIu64 ": undecodable result (%s)", op->id,
                       hamok_status_str(st));
    }
    bool ok = true;
    if (r.status == HAMOK_ERR_EXPIRED) {
        op->outcome = OUT_UNKNOWN; /* older than the window: may have been applied */
        cs->st.expired++;
        hamok__cmd_result_clear(&r);
        return true;
    }
    if (r.status != HAMOK_OK) {
        hamok__cmd_result_clear(&r);
        return cs_fail(cs, "client", op->node, "op #%" PRIu64 " (%s) answered %s", op->id,
                       type_name[op->type], hamok_status_str((hamok_status)r.status));
    }
    op->outcome = OUT_OK;
    switch (op->type) {
    case T_SET:
    case T_INSERT:
    case T_REMOVE:
        op->out = 0;
        if (r.n_items > 0) {
            ok = r.items[0].has_value &&
                 parse_val(r.items[0].value, r.items[0].value_len, 'v', &op->out);
        }
        break;
    case T_CAS:
    case T_DELETE:
    case T_REMOVE_IF:
    case T_SUB:
    case T_UNSUB:
    case T_UPDMETA: op->out = r.flag ? 1 : 0; break;
    case T_POP:
        free(op->popped);
        op->popped = r.n_items ? calloc(r.n_items, sizeof *op->popped) : NULL;
        op->n_popped = 0;
        for (size_t i = 0; i < r.n_items && ok; i++) {
            int64_t item = 0;
            ok = op->popped != NULL && r.items[i].has_value &&
                 parse_val(r.items[i].value, r.items[i].value_len, 'q', &item);
            if (ok) {
                op->popped[op->n_popped++] = (uint64_t)item;
            }
        }
        ok = ok && r.n_items <= op->pop_max;
        break;
    default: break;
    }
    hamok__cmd_result_clear(&r);
    if (!ok) {
        return cs_fail(cs, "client", op->node, "op #%" PRIu64 " (%s): result items malformed",
                       op->id, type_name[op->type]);
    }
    return true;
}

/* What a client remembers of a completed operation (to aim its CAS). */
static void remember(collsim *cs, const cs_op *op)
{
    if (op->node < 0 || op->outcome != OUT_OK) {
        return;
    }
    cs_node *nd = &cs->nodes[op->node];
    switch (op->type) {
    case T_READ:
    case T_SET:
    case T_INSERT:
    case T_REMOVE: nd->seen[op->coll][op->key] = op->type == T_READ ? op->out : op->value; break;
    case T_CAS:
        if (op->out) {
            nd->seen[op->coll][op->key] = op->value;
        }
        break;
    case T_SUB:
    case T_UPDMETA:
        if (op->out && op->value > 1) {
            nd->seen_meta[op->key] = op->value;
        }
        break;
    case T_SUBREAD:
        if (op->peer == op->node && op->out > 1) {
            nd->seen_meta[op->key] = op->out;
        }
        break;
    default: break;
    }
}

/* The operation of (node, slot) ends. For OUT_OK, `res` is the registry's
 * result (NULL for reads: op->out set by the caller). */
static void finish(collsim *cs, int node, int slot, int outcome, const uint8_t *res, size_t len)
{
    cs_node *nd = &cs->nodes[node];
    cs_req *rq = &nd->req[slot];
    if (!rq->active) {
        return;
    }
    rq->active = false;
    rq->gen++;
    cs_op *op = &cs->ops[rq->op];
    op->outcome = outcome;
    if (outcome == OUT_UNKNOWN && op->seq != 0 && op->sends == 0) {
        op->outcome = OUT_FAILED; /* never left the client (no leader, not a member) */
    }
    if (outcome == OUT_OK && res != NULL && !take_result(cs, op, res, len)) {
        return;
    }
    op->ret = ++cs->clock; /* unknown: when the client gave up (reports only) */
    if (op->outcome == OUT_OK) {
        cs->progress += op->seq == 0 ? 1u : 0u; /* a read served */
    }
    remember(cs, op);
    trace_op(cs, op, "done");
    if (nd->reg != NULL && !cs->draining) {
        schedule_tick(cs, node, slot, hamok_sim_now(cs->sim) + think(cs));
    }
}

/* ------------------------------------------------------------------------ */
/* Submitting (src/node/node.c's submit path) */

static void ev_retry(hamok_sim *s, void *ud, uint64_t arg);

static void arm(collsim *cs, int node, int slot, uint64_t at)
{
    cs_req *rq = &cs->nodes[node].req[slot];
    if (at > rq->deadline) {
        at = rq->deadline;
    }
    rq->gen++;
    hamok_sim_schedule(cs->sim, at, ev_retry, cs,
                       (uint64_t)node | (uint64_t)slot << 8 | (uint64_t)rq->gen << 16);
}

static uint64_t now_ms(const collsim *cs)
{
    return hamok_sim_now(cs->sim);
}

static void accepted(collsim *cs, int node, int slot)
{
    cs_req *rq = &cs->nodes[node].req[slot];
    rq->accepted = true;
    if (!cs->ops[rq->op].was_accepted) {
        cs->ops[rq->op].was_accepted = true;
        cs->progress++;
    }
    if (cs->o.bug == HAMOK_COLLSIM_EARLY_ACK && cs->ops[rq->op].type == T_PUSH) {
        cs_op *op = &cs->ops[rq->op];
        rq->active = false;
        rq->gen++;
        op->outcome = OUT_OK;
        op->ret = ++cs->clock;
        trace_op(cs, op, "done (acked at proposal)");
        schedule_tick(cs, node, slot, now_ms(cs) + think(cs));
        return;
    }
    /* node.c accepted_wait: sent again after 2, 4, 8, 16, then every 32
     * election timeouts (FINDINGS.md finding 14: a fixed 2 made a retry
     * storm under a backlog). */
    uint32_t k = rq->resends < 4 ? rq->resends : 4;
    arm(cs, node, slot, now_ms(cs) + ((2ull * cs->info.election_timeout_ms) << k));
}

static void send_submit(collsim *cs, int node, int slot)
{
    hamok_sim *s = cs->sim;
    cs_req *rq = &cs->nodes[node].req[slot];
    cs_op *op = &cs->ops[rq->op];
    hamok_raft *core = hamok_sim_core(s, node);
    hamok_id self = hamok_sim_node_id(node);
    uint64_t now = now_ms(cs);
    if (!self_member(core, &self)) {
        arm(cs, node, slot, now + cs->info.heartbeat_ms); /* not joined (yet): wait */
        return;
    }
    if (rq->accepted) {
        rq->resends++; /* the safety net fired: the next one waits longer */
        rq->accepted = false;
    }
    arm(cs, node, slot, now + cs->info.election_timeout_ms); /* a lost request is sent again */
    hamok_id leader;
    if (!hamok__raft_leader(core, &leader)) {
        return; /* wait for a leader */
    }
    if (op->sends++ > 0) {
        cs->st.retries++;
    }
    cs_node *origin = &cs->nodes[node];
    origin->max_sent = op->seq > origin->max_sent ? op->seq : origin->max_sent;
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.type = HAMOK_ENTRY_COMMAND;
    e.client = self;
    e.seq = op->seq;
    e.data = op->cmd;
    e.len = op->cmd_len;
    if (hamok__id_eq(&leader, &self)) {
        hamok_status st = hamok_sim_propose_entries(s, node, &e, 1, NULL, NULL);
        if (st == HAMOK_OK) {
            accepted(cs, node, slot);
        } else if (st == HAMOK_ERR_BUSY || st == HAMOK_ERR_NOT_LEADER) {
            arm(cs, node, slot, now + cs->info.heartbeat_ms);
        } else if (st != HAMOK_ERR_STATE) {
            cs_fail(cs, "client", node, "proposing op #%" PRIu64 ": %s", op->id,
                    hamok_status_str(st));
        }
        return;
    }
    hamok_msg m;
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_SUBMIT_REQUEST;
    m.src = self;
    m.dst = leader;
    m.u.submit.request_id = op->seq;
    m.u.submit.entry = e;
    hamok_sim_send(s, node, &m);
}

static void answer_submit(collsim *cs, int node, const hamok_id *to, uint64_t req_id,
                          hamok_status st, uint64_t index, uint64_t term)
{
    hamok_msg r;
    memset(&r, 0, sizeof r);
    r.type = HAMOK_MSG_SUBMIT_RESPONSE;
    r.src = hamok_sim_node_id(node);
    r.dst = *to;
    r.u.submit_response.request_id = req_id;
    r.u.submit_response.status = (uint32_t)st;
    r.u.submit_response.index = index;
    r.u.submit_response.term = term;
    hamok_raft *core = hamok_sim_core(cs->sim, node);
    r.u.submit_response.has_leader = hamok__raft_leader(core, &r.u.submit_response.leader);
    hamok_sim_send(cs->sim, node, &r);
}

/* Leader side of SUBMIT_REQUEST (node.c recv_submit). */
static void recv_submit(collsim *cs, int node, const hamok_msg *m)
{
    hamok_entry e = m->u.submit.entry;
    if (e.type != HAMOK_ENTRY_COMMAND) {
        answer_submit(cs, node, &m->src, m->u.submit.request_id, HAMOK_ERR_INVALID, 0, 0);
        return;
    }
    if (hamok_sim_role(cs->sim, node) != HAMOK_RAFT_LEADER) {
        answer_submit(cs, node, &m->src, m->u.submit.request_id, HAMOK_ERR_NOT_LEADER, 0, 0);
        return;
    }
    e.client = m->src; /* a peer proposes for itself only */
    uint64_t index = 0, term = 0;
    hamok_status st = hamok_sim_propose_entries(cs->sim, node, &e, 1, &index, &term);
    if (failed(cs)) {
        return;
    }
    if (st == HAMOK_ERR_STATE) {
        return;
    }
    answer_submit(cs, node, &m->src, m->u.submit.request_id, st, st == HAMOK_OK ? index : 0, term);
}

static int find_submit(collsim *cs, int node, uint64_t seq)
{
    cs_node *nd = &cs->nodes[node];
    for (int k = 0; k < CS_SLOTS; k++) {
        if (nd->req[k].active && cs->ops[nd->req[k].op].seq == seq && seq != 0) {
            return k;
        }
    }
    return -1;
}

static void recv_submit_response(collsim *cs, int node, const hamok_msg *m)
{
    const hamok_msg_submit_response *r = &m->u.submit_response;
    int slot = find_submit(cs, node, r->request_id);
    if (slot < 0) {
        return;
    }
    if (r->status == HAMOK_OK) {
        accepted(cs, node, slot);
    } else if (r->status == HAMOK_ERR_NOT_LEADER || r->status == HAMOK_ERR_BUSY ||
               r->status == HAMOK_ERR_NOMEM) {
        arm(cs, node, slot, now_ms(cs) + cs->info.heartbeat_ms);
    } else {
        cs_fail(cs, "client", node, "op #%" PRIu64 " refused by the leader: %s",
                cs->ops[cs->nodes[node].req[slot].op].id,
                hamok_status_str((hamok_status)r->status));
    }
}

static void app_receive(hamok_sim *s, void *ud, int node, const hamok_msg *m)
{
    (void)s;
    collsim *cs = ud;
    if (cs->nodes[node].reg == NULL) {
        return;
    }
    if (m->type == HAMOK_MSG_SUBMIT_REQUEST) {
        if (!cs->closed) {
            recv_submit(cs, node, m);
        }
    } else if (m->type == HAMOK_MSG_SUBMIT_RESPONSE) {
        recv_submit_response(cs, node, m);
    }
}

/* A leader change resends every submit at once (node.c resend_submits). */
static void app_stepped(hamok_sim *s, void *ud, int node)
{
    collsim *cs = ud;
    cs_node *nd = &cs->nodes[node];
    hamok_raft *core = hamok_sim_core(s, node);
    if (core == NULL || nd->reg == NULL) {
        return;
    }
    hamok_id l;
    bool hl = hamok__raft_leader(core, &l);
    if (hl == nd->had_leader && (!hl || hamok__id_eq(&l, &nd->leader))) {
        return;
    }
    nd->had_leader = hl;
    nd->leader = l;
    if (!hl) {
        return;
    }
    for (int k = 0; k < CS_SLOTS; k++) {
        cs_req *rq = &nd->req[k];
        if (rq->active && cs->ops[rq->op].seq != 0) {
            rq->accepted = false;
            rq->resends = 0;
            arm(cs, node, k, hamok_sim_now(s));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Reads (hamok_node_sync, then a local get) */

static int64_t local_read(collsim *cs, int node, const cs_op *op)
{
    const hamok_registry *reg = cs->nodes[node].reg;
    if (op->type == T_READ) {
        const hamok_coll *c = coll_of(reg, reg_kind[op->coll], reg_name[op->coll]);
        const uint8_t *v;
        size_t vl;
        int64_t out = 0;
        char kb[16];
        key_str(op->key, kb);
        if (c != NULL && hamok__coll_get(c, (const uint8_t *)kb, strlen(kb), &v, &vl) &&
            !parse_val(v, vl, 'v', &out)) {
            cs_fail(cs, "client", node, "read of %s/%s: a value never written", reg_name[op->coll],
                    kb);
        }
        return out;
    }
    const hamok_coll *c = coll_of(reg, HAMOK_KIND_EMITTER, EMITTER_NAME);
    hamok_id peer = hamok_sim_node_id(op->peer);
    bool has = false, ok = true;
    const uint8_t *meta = NULL;
    size_t ml = 0;
    char eb[16];
    event_str(op->key, eb);
    if (c == NULL ||
        !hamok__coll_subscribed(c, (const uint8_t *)eb, strlen(eb), &peer, &has, &meta, &ml)) {
        return 0;
    }
    int64_t st = meta_state(has, meta, ml, &ok);
    if (!ok) {
        cs_fail(cs, "client", node, "subscription read: metadata never written");
    }
    return st;
}

static void start_read(collsim *cs, int node, int slot)
{
    cs_req *rq = &cs->nodes[node].req[slot];
    rq->read_id = hamok_sim_next_read_id(cs->sim);
    arm(cs, node, slot, rq->deadline); /* the deadline watchdog */
    uint32_t gen = rq->gen;
    hamok_status st = hamok_sim_read(cs->sim, node, NULL);
    if (!rq->active || rq->gen != gen || failed(cs)) {
        return; /* served (or failed) within the call */
    }
    if (st != HAMOK_OK) {
        rq->read_id = 0;
        arm(cs, node, slot, now_ms(cs) + cs->info.heartbeat_ms);
    }
}

static void final_read_served(collsim *cs, int node);

static void on_read(hamok_sim *s, void *ud, int node, uint64_t id, hamok_status status,
                    uint64_t read_index, uint64_t applied)
{
    (void)s;
    (void)read_index;
    (void)applied;
    collsim *cs = ud;
    if (id == cs->final_read_id && node == cs->final_node) {
        if (status == HAMOK_OK) {
            final_read_served(cs, node);
        } else {
            cs->final_read_id = 0;
        }
        return;
    }
    cs_node *nd = &cs->nodes[node];
    for (int k = 0; k < CS_SLOTS; k++) {
        cs_req *rq = &nd->req[k];
        if (!rq->active || rq->read_id != id || id == 0) {
            continue;
        }
        if (status == HAMOK_OK) {
            cs->ops[rq->op].out = local_read(cs, node, &cs->ops[rq->op]);
            finish(cs, node, k, OUT_OK, NULL, 0);
        } else {
            rq->read_id = 0; /* retried after a heartbeat */
            arm(cs, node, k, now_ms(cs) + cs->info.heartbeat_ms);
        }
        return;
    }
}

static void ev_retry(hamok_sim *s, void *ud, uint64_t arg)
{
    collsim *cs = ud;
    int node = (int)(arg & 0xff);
    int slot = (int)((arg >> 8) & 0xff);
    uint32_t gen = (uint32_t)(arg >> 16);
    cs_req *rq = &cs->nodes[node].req[slot];
    if (!rq->active || rq->gen != gen || cs->nodes[node].reg == NULL) {
        return;
    }
    cs_op *op = &cs->ops[rq->op];
    if (hamok_sim_now(s) >= rq->deadline) {
        finish(cs, node, slot, OUT_UNKNOWN, NULL, 0); /* timed out */
        return;
    }
    if (!hamok_sim_is_live(s, node)) {
        arm(cs, node, slot, hamok_sim_now(s) + cs->info.heartbeat_ms); /* paused */
        return;
    }
    if (op->seq != 0) {
        send_submit(cs, node, slot);
    } else if (rq->read_id == 0) {
        start_read(cs, node, slot);
    } else {
        arm(cs, node, slot, rq->deadline);
    }
}

/* ------------------------------------------------------------------------ */
/* Choosing and starting operations */

static int64_t fresh_value(collsim *cs)
{
    return cs->next_value++;
}

static bool encode_cmd(collsim *cs, cs_op *op, uint8_t kind, uint8_t opcode, const char *name,
                       uint64_t arg, hamok_cmd_item *items, size_t n)
{
    hamok_cmd c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.op = opcode;
    c.name = (uint8_t *)(uintptr_t)name;
    c.name_len = strlen(name);
    c.arg = arg;
    c.items = items;
    c.n_items = n;
    hamok__buf_reset(&cs->enc);
    hamok_status st = hamok__cmd_encode(&c, &cs->enc);
    if (st != HAMOK_OK) {
        return cs_fail(cs, "client", op->node, "encoding op #%" PRIu64 ": %s", op->id,
                       hamok_status_str(st));
    }
    op->cmd = malloc(cs->enc.len);
    if (op->cmd == NULL) {
        return cs_fail(cs, "sim-oom", op->node, "out of memory");
    }
    memcpy(op->cmd, cs->enc.data, cs->enc.len);
    op->cmd_len = cs->enc.len;
    return true;
}

static hamok_cmd_item item_of(const char *key, const char *val, size_t vlen, const char *exp,
                              size_t elen)
{
    hamok_cmd_item it;
    memset(&it, 0, sizeof it);
    it.key = (uint8_t *)(uintptr_t)key;
    it.key_len = key ? strlen(key) : 0;
    if (val != NULL) {
        it.has_value = true;
        it.value = (uint8_t *)(uintptr_t)val;
        it.value_len = vlen;
    }
    if (exp != NULL) {
        it.has_expected = true;
        it.expected = (uint8_t *)(uintptr_t)exp;
        it.expected_len = elen;
    }
    return it;
}

/* An expected value for a CAS: what this client saw last, often; else a
 * value someone wrote; else one nobody did. */
static int64_t pick_expected(collsim *cs, int64_t seen)
{
    if (seen > 1 && below(cs, 4) != 0) {
        return seen;
    }
    if (cs->next_value > 100 && below(cs, 2) == 0) {
        return 100 + (int64_t)below(cs, (uint64_t)(cs->next_value - 100));
    }
    return 99; /* never written */
}

/* Fill op (type chosen) and its command. */
static bool build_op(collsim *cs, int node, cs_op *op)
{
    cs_node *nd = &cs->nodes[node];
    char v[24], x[24];
    size_t vl = 0, xl = 0;
    hamok_cmd_item it[2];
    switch (op->type) {
    case T_READ:
        op->lkey = lkey_reg(op->coll, op->key);
        op->lkind = HAMOK_LIN_READ;
        cs->st.reads++;
        return true;
    case T_SUBREAD:
        op->lkey = lkey_sub(op->key, op->peer);
        op->lkind = HAMOK_LIN_READ;
        cs->st.reads++;
        return true;
    case T_SET:
    case T_INSERT:
    case T_CAS:
    case T_DELETE:
    case T_REMOVE:
    case T_REMOVE_IF: {
        cs->st.writes++;
        op->lkey = lkey_reg(op->coll, op->key);
        char kb[16];
        const char *k = key_str(op->key, kb);
        uint8_t kind = reg_kind[op->coll];
        const char *name = reg_name[op->coll];
        if (op->type == T_SET || op->type == T_INSERT || op->type == T_CAS) {
            op->value = fresh_value(cs);
            op->has_value = true;
            vl = fmt_val(v, sizeof v, 'v', op->value);
        }
        if (op->type == T_CAS || op->type == T_REMOVE_IF) {
            op->expected = pick_expected(cs, nd->seen[op->coll][op->key]);
            op->has_expected = true;
            xl = fmt_val(x, sizeof x, 'v', op->expected);
        }
        switch (op->type) {
        case T_SET:
            op->lkind = HAMOK_LIN_SET;
            it[0] = item_of(k, v, vl, NULL, 0);
            return encode_cmd(cs, op, kind, HAMOK_OP_SET, name, 0, it, 1);
        case T_INSERT:
            op->lkind = HAMOK_LIN_INSERT;
            it[0] = item_of(k, v, vl, NULL, 0);
            return encode_cmd(cs, op, kind, HAMOK_OP_INSERT, name, 0, it, 1);
        case T_CAS:
            op->lkind = HAMOK_LIN_CAS;
            it[0] = item_of(k, v, vl, x, xl);
            return encode_cmd(cs, op, kind, HAMOK_OP_UPDATE_IF, name, 0, it, 1);
        case T_DELETE:
            op->lkind = HAMOK_LIN_DELETE;
            it[0] = item_of(k, NULL, 0, NULL, 0);
            return encode_cmd(cs, op, kind, HAMOK_OP_DELETE, name, 0, it, 1);
        case T_REMOVE:
            op->lkind = HAMOK_LIN_REMOVE;
            it[0] = item_of(k, NULL, 0, NULL, 0);
            return encode_cmd(cs, op, kind, HAMOK_OP_REMOVE, name, 0, it, 1);
        default:
            op->lkind = HAMOK_LIN_REMOVE_IF;
            it[0] = item_of(k, NULL, 0, x, xl);
            return encode_cmd(cs, op, kind, HAMOK_OP_REMOVE_IF, name, 0, it, 1);
        }
    }
    case T_PUSH: {
        cs->st.pushes++;
        op->n_items = below(cs, 5) == 0 ? 2 : 1;
        char b[2][24];
        size_t bl[2];
        for (size_t i = 0; i < op->n_items; i++) {
            op->items[i] = ++cs->next_item;
            bl[i] = fmt_val(b[i], sizeof b[i], 'q', (int64_t)op->items[i]);
            it[i] = item_of(NULL, b[i], bl[i], NULL, 0);
        }
        return encode_cmd(cs, op, HAMOK_KIND_QUEUE, HAMOK_OP_PUSH, QUEUE_NAME, 0, it, op->n_items);
    }
    case T_POP:
        cs->st.pops++;
        op->pop_max = 1 + (uint32_t)below(cs, POP_MAX);
        return encode_cmd(cs, op, HAMOK_KIND_QUEUE, HAMOK_OP_POP, QUEUE_NAME, op->pop_max, NULL, 0);
    case T_SUB:
    case T_UNSUB:
    case T_UPDMETA: {
        cs->st.writes++;
        op->peer = node;
        op->lkey = lkey_sub(op->key, node);
        char eb[16];
        const char *ev = event_str(op->key, eb);
        if (op->type == T_UNSUB) {
            op->lkind = HAMOK_LIN_DELETE;
            it[0] = item_of(ev, NULL, 0, NULL, 0);
            return encode_cmd(cs, op, HAMOK_KIND_EMITTER, HAMOK_OP_UNSUBSCRIBE, EMITTER_NAME, 0, it,
                              1);
        }
        bool meta = below(cs, 4) != 0;
        op->value = 1;
        if (meta) {
            op->value = fresh_value(cs);
            op->has_value = true;
            vl = fmt_val(v, sizeof v, 'm', op->value);
        }
        if (op->type == T_SUB) {
            op->lkind = HAMOK_LIN_ADD;
            it[0] = item_of(ev, meta ? v : NULL, vl, NULL, 0);
            return encode_cmd(cs, op, HAMOK_KIND_EMITTER, HAMOK_OP_SUBSCRIBE, EMITTER_NAME, 0, it,
                              1);
        }
        const char *xp = NULL;
        if (below(cs, 3) != 0) {
            op->expected = pick_expected(cs, nd->seen_meta[op->key]);
            op->has_expected = true;
            xl = fmt_val(x, sizeof x, 'm', op->expected);
            xp = x;
        }
        op->lkind = op->has_expected ? HAMOK_LIN_CAS : HAMOK_LIN_UPDATE;
        it[0] = item_of(ev, meta ? v : NULL, vl, xp, xl);
        return encode_cmd(cs, op, HAMOK_KIND_EMITTER, HAMOK_OP_UPDATE_METADATA, EMITTER_NAME, 0, it,
                          1);
    }
    default: return false;
    }
}

static int pick_type(collsim *cs)
{
    uint64_t r = below(cs, 100);
    if (r < 55) { /* map / record */
        static const int t[] = {T_READ, T_READ, T_READ,   T_SET,    T_SET,    T_SET,
                                T_CAS,  T_CAS,  T_INSERT, T_DELETE, T_REMOVE, T_REMOVE_IF};
        return t[below(cs, sizeof t / sizeof t[0])];
    }
    if (r < 80) {
        return below(cs, 100) < 55 ? T_PUSH : T_POP;
    }
    static const int e[] = {T_SUB, T_SUB, T_UNSUB, T_UPDMETA, T_UPDMETA, T_SUBREAD, T_SUBREAD};
    return e[below(cs, sizeof e / sizeof e[0])];
}

static void start_op(collsim *cs, int node, int slot)
{
    cs_node *nd = &cs->nodes[node];
    int type = pick_type(cs);
    int coll = (int)below(cs, 2);
    int key;
    if (type >= T_SUB) {
        uint32_t epoch = cs->em_ops++ / EPOCH_OPS;
        epoch = epoch < MAX_EVENTS / CS_EVENTS ? epoch : MAX_EVENTS / CS_EVENTS - 1;
        key = (int)epoch * CS_EVENTS + (int)below(cs, CS_EVENTS);
        cs->n_events = key + 1 > cs->n_events ? key + 1 : cs->n_events;
    } else if (type <= T_REMOVE_IF) {
        uint32_t epoch = cs->reg_ops[coll]++ / EPOCH_OPS;
        epoch = epoch < MAX_KEYS / CS_KEYS ? epoch : MAX_KEYS / CS_KEYS - 1;
        key = (int)epoch * CS_KEYS + (int)below(cs, CS_KEYS);
        cs->n_keys[coll] = key + 1 > cs->n_keys[coll] ? key + 1 : cs->n_keys[coll];
    } else {
        key = 0;
    }
    int n = hamok_sim_n(cs->sim);
    int peer = type == T_SUBREAD ? (below(cs, 2) == 0 ? node : (int)below(cs, (uint64_t)n)) : node;
    if (type == T_REMOVE_IF && coll == 1) {
        type = T_DELETE; /* records have no REMOVE_IF */
    }
    size_t i = op_new(cs, node, type);
    if (i == SIZE_MAX) {
        return;
    }
    cs_op *op = &cs->ops[i];
    op->coll = coll;
    op->key = key;
    op->peer = peer;
    cs->st.ops++;
    if (!build_op(cs, node, op)) {
        return;
    }
    cs_req *rq = &nd->req[slot];
    uint32_t gen = rq->gen; /* never reused: older timers stay stale */
    memset(rq, 0, sizeof *rq);
    rq->gen = gen;
    rq->active = true;
    rq->op = i;
    rq->deadline = now_ms(cs) + cs->op_timeout_ms;
    bool read = type == T_READ || type == T_SUBREAD;
    if (!read) {
        op->seq = ++nd->next_seq;
        if (op->seq > nd->seq_reserved) {
            nd->seq_reserved = op->seq + SEQ_BLOCK - 1; /* on disk before it leaves */
        }
    }
    trace_op(cs, op, "invoke");
    if (!read) {
        send_submit(cs, node, slot);
    } else if (cs->o.bug == HAMOK_COLLSIM_STALE_READS) {
        op->out = local_read(cs, node, op); /* no barrier */
        finish(cs, node, slot, OUT_OK, NULL, 0);
    } else {
        start_read(cs, node, slot);
    }
}

/* A slot's pause before its next operation: the cluster-wide rate stays
 * one per op_mean_ms on average, however many members are up. */
static uint64_t think(collsim *cs)
{
    uint64_t members = hamok_sim_committed_members(cs->sim, NULL);
    uint64_t slots = 0;
    for (int i = 0; i < hamok_sim_n(cs->sim); i++) {
        slots += ((members >> i) & 1u) && cs->nodes[i].reg != NULL ? CS_SLOTS : 0u;
    }
    uint64_t mean = (uint64_t)cs->op_mean_ms * (slots > 0 ? slots : CS_SLOTS);
    return 1 + below(cs, 2 * mean + 1);
}

static void ev_tick(hamok_sim *s, void *ud, uint64_t arg)
{
    collsim *cs = ud;
    int node = (int)(arg & 0xff);
    int slot = (int)((arg >> 8) & 0xff);
    uint32_t inc = (uint32_t)(arg >> 16);
    cs_node *nd = &cs->nodes[node];
    if (cs->draining || nd->reg == NULL || nd->inc != inc || nd->req[slot].active || failed(cs)) {
        return;
    }
    if (!hamok_sim_is_live(s, node)) {
        schedule_tick(cs, node, slot, hamok_sim_now(s) + cs->info.heartbeat_ms);
        return;
    }
    start_op(cs, node, slot);
}

static void schedule_tick(collsim *cs, int node, int slot, uint64_t at)
{
    hamok_sim_schedule(cs->sim, at, ev_tick, cs,
                       (uint64_t)node | (uint64_t)slot << 8 | (uint64_t)cs->nodes[node].inc << 16);
}

/* ------------------------------------------------------------------------ */
/* The application hooks */

static bool grow_idx(collsim *cs, uint64_t index)
{
    if (index < cs->idx_cap) {
        return true;
    }
    size_t cap = cs->idx_cap ? cs->idx_cap : 1024;
    while (cap <= index) {
        cap *= 2;
    }
    uint64_t *a = realloc(cs->idx_hash, cap * sizeof *a);
    if (a == NULL) {
        return false;
    }
    cs->idx_hash = a;
    uint64_t *b = realloc(cs->snap_hash, cap * sizeof *b);
    if (b == NULL) {
        return false;
    }
    cs->snap_hash = b;
    memset(a + cs->idx_cap, 0, (cap - cs->idx_cap) * sizeof *a);
    memset(b + cs->idx_cap, 0, (cap - cs->idx_cap) * sizeof *b);
    cs->idx_cap = cap;
    return true;
}

static sess_slot *sess_find(collsim *cs, const hamok_id *client, uint64_t seq, bool insert)
{
    if (insert && 2 * (cs->sess_n + 1) > cs->sess_cap) {
        size_t cap = cs->sess_cap ? cs->sess_cap * 2 : 1024;
        sess_slot *t = calloc(cap, sizeof *t);
        if (t == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < cs->sess_cap; i++) {
            if (cs->sess[i].seq != 0) {
                uint64_t h = fnv(mix64(cs->sess[i].seq), cs->sess[i].client.b, HAMOK_ID_LEN);
                size_t j = (size_t)h & (cap - 1);
                while (t[j].seq != 0) {
                    j = (j + 1) & (cap - 1);
                }
                t[j] = cs->sess[i];
            }
        }
        free(cs->sess);
        cs->sess = t;
        cs->sess_cap = cap;
    }
    if (cs->sess_cap == 0) {
        return NULL;
    }
    uint64_t h = fnv(mix64(seq), client->b, HAMOK_ID_LEN);
    size_t j = (size_t)h & (cs->sess_cap - 1);
    for (; cs->sess[j].seq != 0; j = (j + 1) & (cs->sess_cap - 1)) {
        if (cs->sess[j].seq == seq && hamok__id_eq(&cs->sess[j].client, client)) {
            return &cs->sess[j];
        }
    }
    if (!insert) {
        return NULL;
    }
    cs->sess[j].client = *client;
    cs->sess[j].seq = seq;
    cs->sess_n++;
    return &cs->sess[j];
}

/* Ground truth at the first apply of a COMMAND: a (client, seq) committed
 * again changes nothing and answers what it answered the first time (or
 * EXPIRED, once older than the window). */
static bool exactly_once(collsim *cs, int node, uint64_t index, const hamok_entry *e,
                         uint64_t res_hash)
{
    if (e->seq == 0 || hamok__id_is_nil(&e->client)) {
        return true;
    }
    sess_slot *sl = sess_find(cs, &e->client, e->seq, false);
    if (sl == NULL) {
        sl = sess_find(cs, &e->client, e->seq, true);
        if (sl == NULL) {
            return cs_fail(cs, "sim-oom", node, "out of memory");
        }
        sl->index = index;
        sl->hash = res_hash;
        return true;
    }
    cs->st.duplicates++;
    int client = hamok_sim_node_of(cs->sim, &e->client);
    if (cs->nodes[node].ev_count != 0) {
        return cs_fail(cs, "exactly-once", node,
                       "entry %" PRIu64 " (client n%d, seq %" PRIu64
                       ") repeats the command committed at %" PRIu64
                       " and was applied again (%u events)",
                       index, client, e->seq, sl->index, cs->nodes[node].ev_count);
    }
    if (res_hash != sl->hash) {
        hamok_cmd_result r;
        if (hamok__cmd_result_decode(cs->res.data, cs->res.len, &r) == HAMOK_OK &&
            r.status == HAMOK_ERR_EXPIRED) {
            hamok__cmd_result_clear(&r);
            return true;
        }
        hamok__cmd_result_clear(&r);
        return cs_fail(cs, "exactly-once", node,
                       "entry %" PRIu64 " (client n%d, seq %" PRIu64
                       ") repeats the command committed at %" PRIu64
                       " but answered a different result",
                       index, client, e->seq, sl->index);
    }
    return true;
}

/* Resolution after healing: the first apply of a resubmitted (client, seq). */
static void resolve_capture(collsim *cs, const hamok_entry *e)
{
    for (size_t k = 0; k < cs->n_resolving; k++) {
        cs_op *op = &cs->ops[cs->resolving[k]];
        if (!op->resolving || op->seq != e->seq) {
            continue;
        }
        hamok_id cid = hamok_sim_node_id(op->node);
        if (!hamok__id_eq(&cid, &e->client)) {
            continue;
        }
        op->resolving = false;
        if (!take_result(cs, op, cs->res.data, cs->res.len)) {
            return;
        }
        if (op->outcome == OUT_OK) {
            op->resolved = true;
            op->ret = ++cs->clock;
            cs->st.resolved++;
            trace_op(cs, op, "resolved");
        }
        return;
    }
}

static bool complete_own(collsim *cs, int node, const hamok_entry *e)
{
    int slot = find_submit(cs, node, e->seq);
    if (slot >= 0) {
        finish(cs, node, slot, OUT_OK, cs->res.data, cs->res.len);
    }
    return !failed(cs);
}

static bool app_apply(hamok_sim *s, void *ud, int node, uint64_t index, const hamok_entry *e)
{
    collsim *cs = ud;
    cs_node *nd = &cs->nodes[node];
    if (nd->reg == NULL) {
        return cs_fail(cs, "app", node, "apply on a node without a registry");
    }
    if (!grow_idx(cs, index)) {
        return cs_fail(cs, "sim-oom", node, "out of memory");
    }
    bool first = index > cs->g_applied;
    cs->cur = node;
    cs->apply_first = first;
    cs->apply_config = e->type == HAMOK_ENTRY_CONFIG;
    cs->mirror_err[0] = '\0';
    nd->ev_hash = FNV0;
    nd->ev_count = 0;
    hamok_entry copy = *e;
    if (cs->o.bug == HAMOK_COLLSIM_NO_SESSIONS && e->type == HAMOK_ENTRY_COMMAND) {
        copy.seq = 0; /* negative control: the session table never sees it */
    }
    hamok__buf_reset(&cs->res);
    hamok_status st = hamok__registry_apply(nd->reg, index, &copy, &cs->res, on_event, cs);
    cs->cur = -1;
    if (st != HAMOK_OK) {
        return cs_fail(cs, "app", node, "hamok__registry_apply(index %" PRIu64 "): %s", index,
                       hamok_status_str(st));
    }
    if (cs->mirror_err[0] != '\0') {
        return cs_fail(cs, "event-stream", node, "%s", cs->mirror_err);
    }
    uint64_t rh = fnv(FNV0, cs->res.data, cs->res.len);
    uint64_t h = mix64(rh ^ mix64(nd->ev_hash)) | 1u;
    if (first) {
        cs->g_applied = index;
        cs->idx_hash[index] = h;
        if (e->type == HAMOK_ENTRY_COMMAND && !cs->o.history_only &&
            !exactly_once(cs, node, index, e, rh)) {
            return false;
        }
        if (e->type == HAMOK_ENTRY_COMMAND && cs->n_resolving > 0) {
            resolve_capture(cs, e);
        }
    } else if (cs->idx_hash[index] != 0 && cs->idx_hash[index] != h) {
        return cs_fail(cs, "apply-determinism", node,
                       "index %" PRIu64
                       " gave another result or other events than on the node "
                       "that applied it first",
                       index);
    }
    if (e->type == HAMOK_ENTRY_COMMAND && e->seq != 0 && cs->res.len > 0) {
        hamok_id self = hamok_sim_node_id(node);
        if (hamok__id_eq(&e->client, &self) && !complete_own(cs, node, e)) {
            return false;
        }
    }
    (void)s;
    return !failed(cs);
}

static hamok_status snap_write(void *ud, const void *data, size_t len)
{
    return hamok__buf_append(ud, data, len);
}

static bool app_snapshot(hamok_sim *s, void *ud, int node, uint64_t index, hamok_buf *out)
{
    (void)s;
    collsim *cs = ud;
    cs_node *nd = &cs->nodes[node];
    if (nd->reg == NULL || hamok__registry_applied(nd->reg) != index) {
        return cs_fail(cs, "app", node, "snapshot at %" PRIu64 " but the registry applied %" PRIu64,
                       index, nd->reg ? hamok__registry_applied(nd->reg) : 0);
    }
    size_t at = out->len;
    hamok_status st = hamok__registry_snapshot(nd->reg, snap_write, out);
    if (st != HAMOK_OK) {
        return cs_fail(cs, "app", node, "hamok__registry_snapshot: %s", hamok_status_str(st));
    }
    cs->st.snapshots++;
    if (!grow_idx(cs, index)) {
        return cs_fail(cs, "sim-oom", node, "out of memory");
    }
    uint64_t h = fnv(FNV0, out->data + at, out->len - at) | 1u;
    if (cs->snap_hash[index] != 0 && cs->snap_hash[index] != h) {
        return cs_fail(cs, "snapshot-determinism", node,
                       "registry snapshot at index %" PRIu64
                       " differs from another node's at the same index",
                       index);
    }
    cs->snap_hash[index] = h;
    return true;
}

static bool app_restore(hamok_sim *s, void *ud, int node, uint64_t index, const uint8_t *data,
                        size_t len)
{
    (void)s;
    collsim *cs = ud;
    cs_node *nd = &cs->nodes[node];
    if (nd->reg == NULL) {
        return cs_fail(cs, "app", node, "restore on a node without a registry");
    }
    hamok_status st = hamok__registry_restore(nd->reg, data, len);
    if (st != HAMOK_OK || hamok__registry_applied(nd->reg) != index) {
        return cs_fail(cs, "app", node,
                       "hamok__registry_restore at %" PRIu64 ": %s (applied %" PRIu64 ")", index,
                       hamok_status_str(st), hamok__registry_applied(nd->reg));
    }
    cs->st.restores++;
    char why[160];
    if (!mirror_load(cs, nd->reg, &nd->mir, why, sizeof why)) {
        return cs_fail(cs, "app", node, "restored registry: %s", why);
    }
    return true;
}

static bool app_start(hamok_sim *s, void *ud, int node)
{
    collsim *cs = ud;
    cs->sim = s;
    cs_node *nd = &cs->nodes[node];
    hamok__registry_destroy(&nd->reg);
    if (hamok__registry_new(&nd->reg, 0) != HAMOK_OK) {
        hamok_sim_fail(s, "sim-oom", node, "out of memory");
        return false;
    }
    mirror_reset(cs, &nd->mir);
    nd->inc++;
    nd->had_leader = false;
    nd->next_seq = nd->seq_reserved; /* the reserved floor, read back from disk */
    for (int k = 0; k < CS_SLOTS; k++) {
        nd->req[k].active = false; /* generations go on: older timers stay stale */
        nd->req[k].gen++;
    }
    if (cs->started && !cs->draining) {
        for (int k = 0; k < CS_SLOTS; k++) {
            schedule_tick(cs, node, k, hamok_sim_now(s) + think(cs));
        }
    }
    return true;
}

static void app_stop(hamok_sim *s, void *ud, int node, bool wiped)
{
    (void)s;
    collsim *cs = ud;
    cs_node *nd = &cs->nodes[node];
    for (int k = 0; k < CS_SLOTS; k++) {
        cs_req *rq = &nd->req[k];
        if (rq->active) {
            rq->active = false;
            cs_op *op = &cs->ops[rq->op];
            /* The process died with it; never sent: no effect. */
            op->outcome = op->seq != 0 && op->sends == 0 ? OUT_FAILED : OUT_UNKNOWN;
            op->ret = ++cs->clock;
            trace_op(cs, op, "lost with its node");
        }
    }
    hamok__registry_destroy(&nd->reg);
    nd->inc++;
    if (wiped) {
        nd->gone = true;
    }
}

/* ------------------------------------------------------------------------ */
/* Workload */

static bool wl_start(hamok_sim *s, void *ud, const hamok_chaos_info *info)
{
    collsim *cs = ud;
    cs->sim = s;
    cs->info = *info;
    cs->started = true;
    hamok__prng_seed(&cs->rnd, mix64(info->seed ^ 0x636f6c6c73696dULL));
    int n = hamok_sim_n(s);
    /* Each slot waits for its operation, and many end unknown under the
     * faults: twice the runner's rate. */
    cs->op_mean_ms = info->op_mean_ms / 2 > 0 ? info->op_mean_ms / 2 : 1;
    static const uint32_t timeouts[] = {5, 15, 60};
    cs->op_timeout_ms = (uint64_t)timeouts[below(cs, 3)] * info->election_timeout_ms;
    hamok_sim_on_read(s, on_read, cs);
    for (int i = 0; i < n; i++) {
        if (cs->nodes[i].reg != NULL) {
            for (int k = 0; k < CS_SLOTS; k++) {
                schedule_tick(cs, i, k, info->election_timeout_ms + think(cs));
            }
        }
    }
    return true;
}

static void wl_quiesce(hamok_sim *s, void *ud)
{
    (void)s;
    collsim *cs = ud;
    cs->draining = !cs->o.keep_load;
}

static uint32_t wl_ops(void *ud)
{
    const collsim *cs = ud;
    return cs->progress;
}

static bool pred_idle(hamok_sim *s, void *ud)
{
    (void)s;
    collsim *cs = ud;
    for (int i = 0; i < hamok_sim_n(s); i++) {
        for (int k = 0; k < CS_SLOTS; k++) {
            if (cs->nodes[i].req[k].active) {
                return false;
            }
        }
    }
    return true;
}

static bool pred_resolved(hamok_sim *s, void *ud)
{
    (void)s;
    collsim *cs = ud;
    for (size_t k = 0; k < cs->n_resolving; k++) {
        if (cs->ops[cs->resolving[k]].resolving) {
            return false;
        }
    }
    return true;
}

/* A round of resolution ends when every proposal of it was applied, or
 * the leader that took them lost its leadership (they may be lost). */
static bool pred_round(hamok_sim *s, void *ud)
{
    collsim *cs = ud;
    if (pred_resolved(s, ud)) {
        return true;
    }
    int l = cs->res_leader;
    return hamok_sim_role(s, l) != HAMOK_RAFT_LEADER || hamok_sim_term(s, l) != cs->res_term ||
           hamok__raft_applied_index(hamok_sim_core(s, l)) >= cs->res_last;
}

/* Nothing pending in the leader's log, and every live member applied all
 * of it. */
static bool pred_caught_up(hamok_sim *s, void *ud)
{
    (void)ud;
    int l = hamok_sim_agreed_leader(s);
    if (l < 0) {
        return false;
    }
    uint64_t commit = hamok__raft_commit_index(hamok_sim_core(s, l));
    if (hamok__raft_last_index(hamok_sim_core(s, l)) != commit) {
        return false;
    }
    uint64_t members = hamok_sim_committed_members(s, NULL);
    for (int i = 0; i < hamok_sim_n(s); i++) {
        if (((members >> i) & 1u) && hamok_sim_is_up(s, i) &&
            hamok__raft_applied_index(hamok_sim_core(s, i)) != commit) {
            return false;
        }
    }
    return true;
}

/* Wait for pred_caught_up: 50 election timeouts plus a second per entry a
 * member lags behind (small batches on slow links take a round trip per
 * entry). */
static bool catch_up(collsim *cs, const char *when)
{
    hamok_sim *s = cs->sim;
    uint64_t last = 0, low = UINT64_MAX;
    for (int i = 0; i < hamok_sim_n(s); i++) {
        hamok_raft *core = hamok_sim_core(s, i);
        if (core != NULL) {
            uint64_t li = hamok__raft_last_index(core), ai = hamok__raft_applied_index(core);
            last = li > last ? li : last;
            low = ai < low ? ai : low;
        }
    }
    uint64_t gap = low <= last ? last - low : 0;
    if (hamok_sim_run_until_pred(s, pred_caught_up, cs,
                                 50 * (uint64_t)cs->info.election_timeout_ms + 1000 * gap)) {
        return true;
    }
    return failed(cs) ? false : cs_fail(cs, "liveness", -1, "members did not catch up %s", when);
}

static bool pred_final(hamok_sim *s, void *ud)
{
    (void)s;
    const collsim *cs = ud;
    return cs->final_done || cs->final_read_id == 0;
}

/* Resubmit every indeterminate command of a client that is still a member
 * (its session is intact): the session table answers the original result,
 * or the command takes effect now. */
static bool resolve(collsim *cs)
{
    hamok_sim *s = cs->sim;
    uint64_t members = hamok_sim_committed_members(s, NULL);
    free(cs->resolving);
    cs->resolving = calloc(cs->n_ops ? cs->n_ops : 1, sizeof *cs->resolving);
    if (cs->resolving == NULL) {
        return cs_fail(cs, "sim-oom", -1, "out of memory");
    }
    cs->n_resolving = 0;
    for (size_t i = 0; i < cs->n_ops; i++) {
        cs_op *op = &cs->ops[i];
        /* Numbers a window older than the client's latest sent (a restart
         * skips a block of 65,536) would likely answer EXPIRED: not tried. */
        if (op->outcome == OUT_UNKNOWN && op->seq != 0 && op->cmd != NULL && op->node >= 0 &&
            ((members >> op->node) & 1u) && !cs->nodes[op->node].gone &&
            cs->nodes[op->node].max_sent - op->seq < HAMOK_SESSION_DEFAULT_WINDOW) {
            op->resolving = true;
            cs->resolving[cs->n_resolving++] = i;
        }
    }
    uint64_t t_el = cs->info.election_timeout_ms;
    for (int round = 0; round < 5 && !pred_resolved(s, cs); round++) {
        int l = hamok_sim_wait_leader(s, 20 * t_el);
        if (l < 0) {
            return failed(cs) ? false
                              : cs_fail(cs, "liveness", -1, "no leader to resolve operations");
        }
        size_t proposed = 0;
        for (size_t k = 0; k < cs->n_resolving; k++) {
            cs_op *op = &cs->ops[cs->resolving[k]];
            if (!op->resolving) {
                continue;
            }
            hamok_entry e;
            memset(&e, 0, sizeof e);
            e.type = HAMOK_ENTRY_COMMAND;
            e.client = hamok_sim_node_id(op->node);
            e.seq = op->seq;
            e.data = op->cmd;
            e.len = op->cmd_len;
            uint64_t index = 0;
            if (hamok_sim_propose_entries(s, l, &e, 1, &index, &cs->res_term) != HAMOK_OK) {
                break;
            }
            cs->res_leader = l;
            cs->res_last = index;
            proposed++;
        }
        if (failed(cs)) {
            return false;
        }
        if (proposed > 0) {
            hamok_sim_run_until_pred(s, pred_round, cs, 20 * t_el + 1000 * (uint64_t)proposed);
        }
        if (failed(cs)) {
            return false;
        }
    }
    for (size_t k = 0; k < cs->n_resolving; k++) {
        cs->ops[cs->resolving[k]].resolving = false; /* EXPIRED or given up: unknown */
    }
    cs->n_resolving = 0;
    return true;
}

/* One read of the final barrier: invoked before the barrier, answered now. */
static bool final_read(collsim *cs, int node, int type, int coll, int key, int peer)
{
    size_t i = op_new(cs, node, type);
    if (i == SIZE_MAX) {
        return false;
    }
    cs_op *op = &cs->ops[i];
    op->call = cs->final_call;
    op->coll = coll;
    op->key = key;
    op->peer = peer;
    op->lkey = type == T_READ ? lkey_reg(coll, key) : lkey_sub(key, peer);
    op->lkind = HAMOK_LIN_READ;
    op->synthetic = true;
    op->out = local_read(cs, node, op);
    op->outcome = OUT_OK;
    op->ret = ++cs->clock;
    return true;
}

/* The final barrier read on the leader: every register and the queue. */
static void final_read_served(collsim *cs, int node)
{
    cs->final_done = true;
    for (int c = 0; c < 2; c++) {
        for (int k = 0; k < cs->n_keys[c]; k++) {
            if (!final_read(cs, node, T_READ, c, k, 0)) {
                return;
            }
        }
    }
    for (int e = 0; e < cs->n_events; e++) {
        for (int p = 0; p < hamok_sim_n(cs->sim); p++) {
            if (!final_read(cs, node, T_SUBREAD, 0, e, p)) {
                return;
            }
        }
    }
    const hamok_coll *q = coll_of(cs->nodes[node].reg, HAMOK_KIND_QUEUE, QUEUE_NAME);
    size_t cur = 0, n = 0;
    hamok_coll_view view;
    uint64_t *items = NULL;
    size_t cap = 0;
    while (q != NULL && hamok__coll_next(q, &cur, &view)) {
        int64_t item = 0;
        if (!parse_val(view.value, view.value_len, 'q', &item)) {
            cs_fail(cs, "queue-phantom", node, "the queue holds an item never pushed");
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *p = realloc(items, cap * sizeof *p);
            if (p == NULL) {
                break;
            }
            items = p;
        }
        items[n++] = (uint64_t)item;
    }
    if (cs->final_q != NULL && !hamok_qchk_final(cs->final_q, items, n)) {
        cs_fail(cs, "sim-oom", node, "out of memory");
    }
    cs->st.q_left = n;
    free(items);
}

static void dump_key(collsim *cs, uint64_t lkey)
{
    size_t at = 0;
    at += (size_t)snprintf(cs->history + at, cs->history_len - at,
                           "history of the key (call order; ~ = gave up / unknown):\n");
    size_t shown = 0;
    for (size_t i = 0; i < cs->n_ops && at + 200 < cs->history_len; i++) {
        const cs_op *op = &cs->ops[i];
        if (op->lkind == 0 || op->lkey != lkey) {
            continue;
        }
        char d[200];
        describe(op, d, sizeof d);
        at += (size_t)snprintf(cs->history + at, cs->history_len - at, "  %s\n", d);
        shown++;
    }
    (void)shown;
}

static bool check_histories(collsim *cs)
{
    hamok_lin_op *lops = calloc(cs->n_ops ? cs->n_ops : 1, sizeof *lops);
    if (lops == NULL) {
        return cs_fail(cs, "sim-oom", -1, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < cs->n_ops; i++) {
        const cs_op *op = &cs->ops[i];
        if (op->lkind == 0 || op->outcome == OUT_FAILED || op->outcome == OUT_PENDING) {
            continue;
        }
        bool known = op->outcome == OUT_OK;
        if (!known && op->lkind == HAMOK_LIN_READ) {
            continue; /* a read with no answer has no effect */
        }
        hamok_lin_op *l = &lops[n++];
        l->key = op->lkey;
        l->kind = op->lkind;
        l->known = known;
        l->value = op->value;
        l->expected = op->expected;
        l->out = op->out;
        l->call = op->call;
        l->ret = op->ret;
        l->id = op->id;
    }
    hamok_lin_report lr;
    bool ok = hamok_lin_check(lops, n, LIN_BUDGET, &lr);
    free(lops);
    cs->st.lin_keys += lr.keys;
    cs->st.lin_ops += n;
    cs->st.lin_steps += lr.steps;
    if (!ok) {
        dump_key(cs, lr.key);
        return cs_fail(cs, "linearizability", -1,
                       "key %" PRIu64
                       " (%s): %s; %zu operations, at most %zu linearized, stuck at "
                       "op #%" PRIu64,
                       lr.key, lr.key >= LKEY_SUB ? "emitter subscription" : "map/record register",
                       lr.budget ? "search budget exhausted" : "no linearization", lr.key_ops,
                       lr.best, lr.stuck);
    }
    return true;
}

static bool check_queue(collsim *cs, hamok_qchk *q)
{
    for (size_t i = 0; i < cs->n_ops; i++) {
        const cs_op *op = &cs->ops[i];
        hamok_q_outcome oc = op->outcome == OUT_OK       ? HAMOK_Q_OK
                             : op->outcome == OUT_FAILED ? HAMOK_Q_FAILED
                                                         : HAMOK_Q_UNKNOWN;
        bool ok = true;
        if (op->type == T_PUSH) {
            ok = hamok_qchk_push(q, op->id, op->items, op->n_items, op->call, op->ret, oc);
            cs->st.q_items += op->n_items;
        } else if (op->type == T_POP) {
            ok = hamok_qchk_pop(q, op->id, op->popped, op->n_popped, op->pop_max, op->call, op->ret,
                                oc);
        }
        if (!ok) {
            return cs_fail(cs, "sim-oom", -1, "out of memory");
        }
    }
    hamok_q_report r;
    if (!hamok_qchk_check(q, &r)) {
        return cs_fail(cs, r.invariant, -1, "%s", r.detail);
    }
    cs->st.q_popped += r.popped;
    return true;
}

/* Mirrors equal registries; registries equal across live members. */
static bool check_state(collsim *cs)
{
    hamok_sim *s = cs->sim;
    uint64_t members = hamok_sim_committed_members(s, NULL);
    uint64_t ref = 0;
    int ref_node = -1;
    hamok_buf b = HAMOK_BUF_INIT;
    cs_mirror *mp = calloc(1, sizeof *mp);
    if (mp == NULL) {
        return cs_fail(cs, "sim-oom", -1, "out of memory");
    }
    bool ok = true;
    for (int i = 0; i < hamok_sim_n(s) && ok; i++) {
        cs_node *nd = &cs->nodes[i];
        if (nd->reg == NULL) {
            continue;
        }
        char why[160];
        if (!mirror_load(cs, nd->reg, mp, why, sizeof why)) {
            ok = cs_fail(cs, "app", i, "final registry: %s", why);
            break;
        }
        if (!mirror_equal(mp, &nd->mir)) {
            ok = cs_fail(cs, "event-stream", i,
                         "the events this node delivered do not add up to its registry");
            break;
        }
        if (!((members >> i) & 1u)) {
            continue;
        }
        hamok__buf_reset(&b);
        if (hamok__registry_snapshot(nd->reg, snap_write, &b) != HAMOK_OK) {
            ok = cs_fail(cs, "sim-oom", i, "out of memory");
            break;
        }
        uint64_t h = fnv(FNV0, b.data, b.len);
        if (ref_node < 0) {
            ref = h;
            ref_node = i;
        } else if (h != ref) {
            ok = cs_fail(cs, "convergence", i,
                         "registry differs from n%d's after both applied index %" PRIu64, ref_node,
                         hamok__registry_applied(nd->reg));
        }
    }
    free(mp->q);
    free(mp);
    hamok__buf_free(&b);
    return ok;
}

static bool wl_finish(hamok_sim *s, void *ud)
{
    collsim *cs = ud;
    uint64_t t_el = cs->info.election_timeout_ms;
    cs->draining = true;
    /* 1. Let every operation in flight end (completed or timed out). */
    hamok_sim_run_until_pred(s, pred_idle, cs, cs->op_timeout_ms + 10 * t_el);
    if (failed(cs)) {
        return false;
    }
    if (!pred_idle(s, cs)) {
        return cs_fail(cs, "liveness", -1,
                       "client operations still in flight after their deadline");
    }
    cs->closed = true;
    /* 2. Resolve indeterminate ones. */
    if (!resolve(cs)) {
        return false;
    }
    /* 3. Every member caught up; a barrier read of everything on the leader. */
    if (!catch_up(cs, "after healing")) {
        return false;
    }
    hamok_qchk *q = hamok_qchk_new();
    if (q == NULL) {
        return cs_fail(cs, "sim-oom", -1, "out of memory");
    }
    cs->final_q = q;
    for (int attempt = 0; attempt < 20 && !cs->final_done && !failed(cs); attempt++) {
        int l = hamok_sim_wait_leader(s, 20 * t_el);
        if (l < 0) {
            break;
        }
        cs->final_node = l;
        cs->final_call = ++cs->clock;
        cs->final_read_id = hamok_sim_next_read_id(s);
        if (hamok_sim_read(s, l, NULL) != HAMOK_OK && !cs->final_done) {
            cs->final_read_id = 0;
            hamok_sim_run_for(s, t_el);
            continue;
        }
        hamok_sim_run_until_pred(s, pred_final, cs, 10 * t_el);
    }
    cs->final_q = NULL;
    bool ok = !failed(cs);
    if (ok && !cs->final_done) {
        ok = cs_fail(cs, "liveness", -1, "the final barrier read never completed");
    }
    /* 4. The checks. */
    ok = ok && catch_up(cs, "after the final read");
    ok = ok && !failed(cs) && check_state(cs);
    ok = ok && check_queue(cs, q);
    ok = ok && check_histories(cs);
    hamok_qchk_destroy(&q);
    for (size_t i = 0; i < cs->n_ops; i++) {
        if (cs->ops[i].synthetic) {
            continue;
        }
        switch (cs->ops[i].outcome) {
        case OUT_OK: cs->st.ok++; break;
        case OUT_FAILED: cs->st.failed++; break;
        default: cs->st.indeterminate++; break;
        }
    }
    return ok && !failed(cs);
}

/* ------------------------------------------------------------------------ */
/* Run */

void hamok_collsim_opts_default(hamok_collsim_opts *o, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->n_ops = 200;
}

bool hamok_collsim_run(const hamok_collsim_opts *o, hamok_collsim_result *r)
{
    memset(r, 0, sizeof *r);
    collsim *cs = calloc(1, sizeof *cs);
    if (cs == NULL) {
        r->invariant = "sim-oom";
        snprintf(r->error, sizeof r->error, "out of memory");
        return false;
    }
    cs->o = *o;
    cs->cur = -1;
    cs->next_value = 100;
    cs->history = r->history;
    cs->history_len = sizeof r->history;
    const char *tr = getenv("HAMOK_SIM_TRACE");
    cs->trace = o->trace || (tr != NULL && tr[0] != '\0' && strcmp(tr, "0") != 0);
    cs->app = (hamok_sim_app){.ud = cs,
                              .start = app_start,
                              .restore = app_restore,
                              .snapshot = app_snapshot,
                              .apply = app_apply,
                              .stop = app_stop,
                              .receive = app_receive,
                              .stepped = app_stepped};
    cs->wl = (hamok_chaos_workload){.app = &cs->app,
                                    .ud = cs,
                                    .start = wl_start,
                                    .ops = wl_ops,
                                    .quiesce = wl_quiesce,
                                    .finish = wl_finish};
    hamok_chaos_opts co;
    hamok_chaos_opts_default(&co, o->seed);
    co.n_ops = o->n_ops ? o->n_ops : 200;
    co.trace = o->trace;
    co.test_name = o->test_name ? o->test_name : "test_sim_collections";
    co.workload = &cs->wl;
    /* hamok_chaos_run creates the simulator; the hooks need it before
     * wl_start runs (nodes start inside hamok_sim_new). */
    bool ok = hamok_chaos_run(&co, &r->chaos);
    r->ok = ok;
    r->invariant = r->chaos.invariant;
    snprintf(r->error, sizeof r->error, "%s", r->chaos.error);
    if (ok) {
        r->history[0] = '\0';
    }
    r->st = cs->st;
    for (int i = 0; i < CS_MAX; i++) {
        hamok__registry_destroy(&cs->nodes[i].reg);
        free(cs->nodes[i].mir.q);
    }
    for (size_t i = 0; i < cs->n_ops; i++) {
        free(cs->ops[i].cmd);
        free(cs->ops[i].popped);
    }
    free(cs->ops);
    free(cs->idx_hash);
    free(cs->snap_hash);
    free(cs->sess);
    free(cs->resolving);
    hamok__buf_free(&cs->res);
    hamok__buf_free(&cs->enc);
    free(cs);
    return ok;
}
