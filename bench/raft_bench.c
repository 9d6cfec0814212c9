/* hamok-raft-bench: benchmarks of the Raft core and durable storage.
 *
 *   hamok-raft-bench catchup [--entries N] [--chunk BYTES]
 *       Three peers commit N map writes (16-byte keys and values) through the
 *       production core, every frame encoded and decoded by the real codec
 *       and carried by an in-process queue; snapshots compact the log as they
 *       go. Then a brand-new peer joins as a learner and catches up by
 *       snapshot (chunked InstallSnapshot) + log tail; the time from the
 *       membership change to "a voter holding the whole state" is reported.
 *
 *   hamok-raft-bench fsync [--dir D] [--policy always|batch] [--delay MS]
 *                          [--clients K] [--seconds S] [--size BYTES]
 *       One peer with durable storage in D (default: a fresh directory under
 *       /tmp). K clients each keep one proposal outstanding. With `always`
 *       every Raft update is fsynced before anything is acknowledged; with
 *       `batch` appends are grouped into one fsync within the delay bound.
 *       Reports proposals/s, fsyncs, proposals per fsync and commit latency.
 *
 * Exit status 0 when the run completed and its own checks held. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codec/codec.h"
#include "raft/raft.h"
#include "storage/storage.h"
#include "util/alloc.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, hamok_status st)
{
    fprintf(stderr, "hamok-raft-bench: %s: %s\n", what, hamok_status_str(st));
    exit(1);
}

/* ------------------------------------------------------------------------- */
/* A small open-addressing hash map (16-byte keys and values): the state. */

typedef struct kv {
    uint8_t key[16];
    uint8_t val[16];
    bool used;
} kv;

typedef struct map {
    kv *slots;
    size_t cap; /* power of two */
    size_t n;
} map;

static uint64_t hash16(const uint8_t *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < 16; i++) {
        h = (h ^ k[i]) * 1099511628211ULL;
    }
    return h;
}

static void map_put(map *m, const uint8_t *key, const uint8_t *val);

static void map_grow(map *m)
{
    map bigger = {calloc(m->cap ? m->cap * 2 : 1024, sizeof(kv)), m->cap ? m->cap * 2 : 1024, 0};
    if (bigger.slots == NULL) {
        die("map", HAMOK_ERR_NOMEM);
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].used) {
            map_put(&bigger, m->slots[i].key, m->slots[i].val);
        }
    }
    free(m->slots);
    *m = bigger;
}

static void map_put(map *m, const uint8_t *key, const uint8_t *val)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        map_grow(m);
    }
    size_t i = (size_t)hash16(key) & (m->cap - 1);
    while (m->slots[i].used && memcmp(m->slots[i].key, key, 16) != 0) {
        i = (i + 1) & (m->cap - 1);
    }
    if (!m->slots[i].used) {
        m->slots[i].used = true;
        memcpy(m->slots[i].key, key, 16);
        m->n++;
    }
    memcpy(m->slots[i].val, val, 16);
}

static void map_free(map *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Snapshot = count, then (key, value) pairs. */
static uint8_t *map_dump(const map *m, size_t *len)
{
    *len = 8 + m->n * 32;
    uint8_t *b = malloc(*len);
    if (b == NULL) {
        die("snapshot", HAMOK_ERR_NOMEM);
    }
    uint64_t n = m->n;
    memcpy(b, &n, 8);
    size_t o = 8;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].used) {
            memcpy(b + o, m->slots[i].key, 16);
            memcpy(b + o + 16, m->slots[i].val, 16);
            o += 32;
        }
    }
    return b;
}

static void map_load(map *m, const uint8_t *b, size_t len)
{
    map_free(m);
    uint64_t n;
    if (len < 8) {
        die("snapshot too short", HAMOK_ERR_CORRUPT);
    }
    memcpy(&n, b, 8);
    if (len != 8 + n * 32) {
        die("snapshot size", HAMOK_ERR_CORRUPT);
    }
    size_t cap = 1024;
    while (cap * 3 < n * 4 + 4) {
        cap *= 2;
    }
    m->slots = calloc(cap, sizeof(kv));
    m->cap = cap;
    for (uint64_t i = 0; i < n; i++) {
        map_put(m, b + 8 + i * 32, b + 8 + i * 32 + 16);
    }
}

/* ------------------------------------------------------------------------- */
/* catchup */

#define NMAX 4

typedef struct frame {
    uint8_t *bytes;
    size_t len;
    int to;
} frame;

typedef struct peer {
    hamok_raft *r;
    hamok_id id;
    map state;
    uint8_t *snap; /* the latest snapshot taken or received (as served) */
    size_t snap_len;
    uint64_t snap_index;
    uint8_t *in; /* snapshot being received */
    size_t in_len;
    size_t in_cap;
    uint64_t applied;
} peer;

typedef struct cluster {
    peer p[NMAX];
    int n;
    frame *q;
    size_t qhead;
    size_t qtail;
    size_t qcap;
    size_t chunk;
    uint64_t now;
    uint64_t frames;
    uint64_t frame_bytes;
    uint64_t chunks;
    hamok_buf enc;
} cluster;

static int peer_of(cluster *c, const hamok_id *id)
{
    for (int i = 0; i < c->n; i++) {
        if (hamok__id_eq(&c->p[i].id, id)) {
            return i;
        }
    }
    return -1;
}

static void push_frame(cluster *c, const hamok_msg *m)
{
    int to = peer_of(c, &m->dst);
    if (to < 0) {
        return;
    }
    hamok__buf_reset(&c->enc);
    hamok_status st = hamok__codec_encode(m, "bench", NULL, &c->enc);
    if (st != HAMOK_OK) {
        die("encode", st);
    }
    if (c->qtail == c->qcap) {
        c->qcap = c->qcap ? c->qcap * 2 : 1024;
        c->q = realloc(c->q, c->qcap * sizeof *c->q);
    }
    uint8_t *bytes = malloc(c->enc.len);
    memcpy(bytes, c->enc.data, c->enc.len);
    c->q[c->qtail++] = (frame){bytes, c->enc.len, to};
    c->frames++;
    c->frame_bytes += c->enc.len;
}

static void step(cluster *c, int i, hamok_raft_event *ev);

static void serve_chunk(cluster *c, int i, const hamok_raft_snapshot_send *s)
{
    peer *p = &c->p[i];
    if (s->index != p->snap_index || s->offset > p->snap_len) {
        die("snapshot send for a snapshot we do not hold", HAMOK_ERR_STATE);
    }
    size_t off = (size_t)s->offset;
    size_t len = p->snap_len - off < c->chunk ? p->snap_len - off : c->chunk;
    hamok_msg m;
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_INSTALL_SNAPSHOT;
    m.src = p->id;
    m.dst = s->to;
    m.u.snapshot.term = s->term;
    m.u.snapshot.last_index = s->index;
    m.u.snapshot.last_term = s->snap_term;
    m.u.snapshot.offset = off;
    m.u.snapshot.done = off + len == p->snap_len;
    m.u.snapshot.data = p->snap + off;
    m.u.snapshot.len = len;
    if (off == 0) {
        m.u.snapshot.members = (hamok_member *)(uintptr_t)s->members;
        m.u.snapshot.n_members = s->n_members;
    }
    c->chunks++;
    push_frame(c, &m);
}

static void handle(cluster *c, int i, const hamok_raft_update *u)
{
    peer *p = &c->p[i];
    if (u->has_chunk) {
        if (u->chunk.offset == 0) {
            p->in_len = 0;
        }
        if (p->in_len + u->chunk.len > p->in_cap) {
            p->in_cap = (p->in_len + u->chunk.len) * 2;
            p->in = realloc(p->in, p->in_cap);
        }
        memcpy(p->in + p->in_len, u->chunk.data, u->chunk.len);
        p->in_len += u->chunk.len;
    }
    if (u->snapshot_installed) {
        map_load(&p->state, p->in, p->in_len);
        free(p->snap);
        p->snap = p->in;
        p->snap_len = p->in_len;
        p->snap_index = u->installed_index;
        p->in = NULL;
        p->in_len = p->in_cap = 0;
        p->applied = u->installed_index;
    }
    for (size_t k = 0; k < u->n_msgs; k++) {
        push_frame(c, &u->msgs[k]);
    }
    for (size_t k = 0; k < u->n_snapshot_sends; k++) {
        serve_chunk(c, i, &u->snapshot_sends[k]);
    }
    for (size_t k = 0; k < u->n_apply; k++) {
        const hamok_entry *e = &u->apply[k];
        if (e->type == HAMOK_ENTRY_COMMAND && e->len == 32) {
            map_put(&p->state, e->data, e->data + 16);
        }
        p->applied = u->apply_first + k;
    }
    if (u->snapshot_wanted) {
        free(p->snap);
        p->snap = map_dump(&p->state, &p->snap_len);
        p->snap_index = u->snapshot_want_index;
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_SNAPSHOT_TAKEN, .now_ms = c->now};
        ev.u.snapshot.index = u->snapshot_want_index;
        step(c, i, &ev);
    }
    if (u->n_persist > 0) { /* in-memory storage: durable at once */
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = c->now};
        ev.u.persisted.index = u->persist_first + u->n_persist - 1;
        ev.u.persisted.term = u->persist[u->n_persist - 1].term;
        step(c, i, &ev);
    }
}

static void step(cluster *c, int i, hamok_raft_event *ev)
{
    hamok_raft_update u;
    hamok_status st = hamok__raft_step(c->p[i].r, ev, &u);
    if (st != HAMOK_OK && st != HAMOK_ERR_NOT_LEADER && st != HAMOK_ERR_BUSY) {
        die("step", st);
    }
    handle(c, i, &u);
}

static void deliver_all(cluster *c)
{
    while (c->qhead < c->qtail) {
        frame f = c->q[c->qhead++];
        hamok_msg m;
        hamok_status st = hamok__codec_decode(f.bytes, f.len, "bench", NULL, &m, NULL);
        free(f.bytes);
        if (st != HAMOK_OK) {
            die("decode", st);
        }
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = c->now};
        ev.u.msg = &m;
        step(c, f.to, &ev);
        hamok__msg_clear(&m);
    }
    c->qhead = c->qtail = 0;
}

static void tick_all(cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TICK, .now_ms = c->now};
        step(c, i, &ev);
    }
    deliver_all(c);
}

static void add_peer(cluster *c, bool voter_config, uint64_t snapshot_entries)
{
    int i = c->n++;
    peer *p = &c->p[i];
    memset(p, 0, sizeof *p);
    p->id = hamok__id_from_u64((uint64_t)i + 1);
    hamok_id voters[3] = {hamok__id_from_u64(1), hamok__id_from_u64(2), hamok__id_from_u64(3)};
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = p->id;
    o.voters = voter_config ? voters : NULL;
    o.n_voters = voter_config ? 3 : 0;
    o.seed = (uint64_t)i + 1;
    o.snapshot_entries = snapshot_entries;
    o.snapshot_trailing = 4096;
    hamok_status st = hamok__raft_new(&p->r, &o);
    if (st != HAMOK_OK) {
        die("raft_new", st);
    }
}

static int leader(cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        if (hamok__raft_role(c->p[i].r) == HAMOK_RAFT_LEADER) {
            return i;
        }
    }
    return -1;
}

static int cmd_catchup(uint64_t entries, size_t chunk)
{
    cluster c;
    memset(&c, 0, sizeof c);
    c.chunk = chunk;
    uint64_t snap_every = entries / 4 > 1000 ? entries / 4 : 1000;
    for (int i = 0; i < 3; i++) {
        add_peer(&c, true, snap_every);
    }
    int l = -1;
    for (int k = 0; k < 1000 && l < 0; k++) {
        c.now += 10;
        tick_all(&c);
        l = leader(&c);
    }
    if (l < 0) {
        die("no leader", HAMOK_ERR_NO_LEADER);
    }
    /* Load: N distinct keys, proposed in batches. */
    double t_load = now_s();
    const size_t batch = 1000;
    hamok_entry *es = calloc(batch, sizeof *es);
    uint8_t *payload = malloc(batch * 32);
    uint64_t written = 0;
    while (written < entries) {
        size_t n = entries - written < batch ? (size_t)(entries - written) : batch;
        for (size_t k = 0; k < n; k++) {
            uint64_t key = written + k;
            uint8_t *d = payload + k * 32;
            memset(d, 0, 32);
            memcpy(d, &key, 8);
            uint64_t h = key * 0x9e3779b97f4a7c15ULL;
            memcpy(d + 8, &h, 8);
            memcpy(d + 16, &h, 8);
            memcpy(d + 24, &key, 8);
            es[k] = (hamok_entry){0, HAMOK_ENTRY_COMMAND, {{0}}, 0, d, 32};
        }
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PROPOSE, .now_ms = c.now};
        ev.u.propose.entries = es;
        ev.u.propose.n = n;
        step(&c, l, &ev);
        deliver_all(&c);
        written += n;
    }
    c.now += 100;
    tick_all(&c);
    double load_s = now_s() - t_load;
    uint64_t commit = hamok__raft_commit_index(c.p[l].r);
    uint64_t snap_term;
    uint64_t snap_index = hamok__raft_snapshot_index(c.p[l].r, &snap_term);
    printf("load: %" PRIu64
           " writes committed on 3 peers in %.2f s (%.0f writes/s); "
           "leader log %" PRIu64 "..%" PRIu64 ", snapshot at %" PRIu64 " (%zu bytes)\n",
           entries, load_s, (double)entries / load_s, hamok__raft_first_index(c.p[l].r),
           hamok__raft_last_index(c.p[l].r), snap_index, c.p[l].snap_len);

    /* A brand-new peer joins. */
    add_peer(&c, false, snap_every);
    int j = c.n - 1;
    uint64_t frames0 = c.frames;
    uint64_t bytes0 = c.frame_bytes;
    double t0 = now_s();
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_CHANGE, .now_ms = c.now};
    ev.u.change.op = HAMOK_RAFT_ADD_LEARNER;
    ev.u.change.id = c.p[j].id;
    ev.u.change.endpoint = "mem://4";
    hamok_raft_update u;
    hamok_status st = hamok__raft_step(c.p[l].r, &ev, &u);
    if (st != HAMOK_OK) {
        die("add learner", st);
    }
    handle(&c, l, &u);
    deliver_all(&c);
    bool voter = false;
    for (int rounds = 0; rounds < 100000; rounds++) {
        commit = hamok__raft_commit_index(c.p[l].r);
        size_t nm = 0;
        const hamok_member *ms = hamok__raft_members(c.p[j].r, &nm, NULL);
        voter = false;
        for (size_t k = 0; k < nm; k++) {
            voter |= hamok__id_eq(&ms[k].id, &c.p[j].id) && ms[k].role == HAMOK_MEMBER_VOTER;
        }
        if (voter && c.p[j].applied >= commit) {
            break;
        }
        c.now += 10;
        tick_all(&c);
    }
    double took = now_s() - t0;
    bool same = c.p[j].state.n == c.p[l].state.n && c.p[j].state.n == entries;
    printf(
        "catch-up: new peer holds %zu entries (leader %zu), voter=%s, in %.3f s: "
        "snapshot of %zu bytes in %" PRIu64
        " chunks of <= %zu bytes + log tail; "
        "%" PRIu64 " frames, %.1f MiB on the wire\n",
        c.p[j].state.n, c.p[l].state.n, voter ? "yes" : "no", took, c.p[j].snap_len, c.chunks,
        chunk, c.frames - frames0, (double)(c.frame_bytes - bytes0) / (1024.0 * 1024.0));
    for (int i = 0; i < c.n; i++) {
        hamok__raft_destroy(&c.p[i].r);
        map_free(&c.p[i].state);
        free(c.p[i].snap);
        free(c.p[i].in);
    }
    free(c.q);
    free(es);
    free(payload);
    hamok__buf_free(&c.enc);
    return same && voter ? 0 : 1;
}

/* ------------------------------------------------------------------------- */
/* fsync */

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

typedef struct fsync_run {
    hamok_raft *r;
    hamok_storage *s;
    double t0;
    uint64_t unsynced_to; /* last index appended but not yet synced */
    double *start;        /* proposal time by log index */
    size_t cap;
    double *lat;
    size_t nlat;
    int inflight;
} fsync_run;

static uint64_t ms_since(const fsync_run *f)
{
    return (uint64_t)((now_s() - f->t0) * 1000.0);
}

/* Step 1 and 2 of the update contract: hard state synchronously, entries
 * written (synced later). */
static void persist_update(fsync_run *f, const hamok_raft_update *u)
{
    hamok_status st;
    if (u->hard_state_changed &&
        (st = hamok__storage_save_hard_state(f->s, u->term, u->has_vote, &u->vote)) != HAMOK_OK) {
        die("hard state", st);
    }
    if (u->n_persist > 0) {
        st = hamok__storage_append(f->s, u->persist_first, u->persist, u->n_persist, ms_since(f));
        if (st != HAMOK_OK) {
            die("append", st);
        }
        f->unsynced_to = u->persist_first + u->n_persist - 1;
    }
}

/* fsync, tell the core, count what it commits. */
static void sync_and_apply(fsync_run *f)
{
    uint64_t di, dt;
    hamok_status st = hamok__storage_sync(f->s, &di, &dt);
    if (st != HAMOK_OK) {
        die("sync", st);
    }
    f->unsynced_to = 0;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = ms_since(f)};
    ev.u.persisted.index = di;
    ev.u.persisted.term = dt;
    hamok_raft_update u;
    hamok__raft_step(f->r, &ev, &u);
    double t = now_s();
    for (size_t k = 0; k < u.n_apply; k++) {
        uint64_t idx = u.apply_first + k;
        if (u.apply[k].type == HAMOK_ENTRY_COMMAND) {
            f->inflight--;
            if (idx < f->cap) {
                f->lat[f->nlat++] = t - f->start[idx];
            }
        }
    }
}

static int cmd_fsync(const char *dir, bool always, uint32_t delay_ms, int clients, double seconds,
                     size_t size)
{
    char tmpl[] = "/tmp/hamok-bench-XXXXXX";
    bool own = dir == NULL;
    if (own) {
        dir = mkdtemp(tmpl);
        if (dir == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    hamok_storage_options so;
    hamok__storage_options_default(&so);
    so.sync_policy = always ? HAMOK_SYNC_ALWAYS : HAMOK_SYNC_BATCH;
    so.batch_delay_ms = delay_ms;
    uint8_t fresh[HAMOK_ID_LEN] = {1, 2, 3};
    fsync_run f;
    memset(&f, 0, sizeof f);
    hamok_storage_recovered rec;
    char err[256];
    hamok_status st = hamok__storage_open(&f.s, dir, &so, fresh, &rec, err, sizeof err);
    if (st != HAMOK_OK) {
        fprintf(stderr, "open %s: %s\n", dir, err);
        return 1;
    }
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = rec.id;
    o.voters = &rec.id;
    o.n_voters = 1;
    o.snapshot_entries = 0;
    o.snapshot_bytes = 0;
    if ((st = hamok__raft_new(&f.r, &o)) != HAMOK_OK) {
        die("raft_new", st);
    }
    hamok__storage_recovered_free(&rec);
    f.cap = 8u * 1000u * 1000u;
    f.start = calloc(f.cap, sizeof *f.start);
    f.lat = malloc(f.cap * sizeof *f.lat);
    uint8_t *data = calloc(1, size ? size : 1);
    f.t0 = now_s();

    /* The first step elects the single voter and appends its no-op. */
    hamok_raft_update u;
    hamok_raft_event tick = {.type = HAMOK_RAFT_EV_TICK, .now_ms = 0};
    hamok__raft_step(f.r, &tick, &u);
    persist_update(&f, &u);
    sync_and_apply(&f);
    if (hamok__raft_role(f.r) != HAMOK_RAFT_LEADER) {
        die("single voter did not elect itself", HAMOK_ERR_STATE);
    }

    double end = f.t0 + seconds;
    while (now_s() < end) {
        /* Every client with nothing outstanding proposes one entry. */
        for (int k = 0; f.inflight < clients && k < clients; k++) {
            hamok_entry e = {0, HAMOK_ENTRY_COMMAND, {{0}}, 0, data, size};
            hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PROPOSE, .now_ms = ms_since(&f)};
            ev.u.propose.entries = &e;
            ev.u.propose.n = 1;
            if ((st = hamok__raft_step(f.r, &ev, &u)) != HAMOK_OK) {
                die("propose", st);
            }
            if (u.proposed_index < f.cap) {
                f.start[u.proposed_index] = now_s();
            }
            f.inflight++;
            persist_update(&f, &u);
            if (always) {
                sync_and_apply(&f); /* each update durable before the next */
            }
        }
        /* batch: group commit; sync when due, or when every client waits */
        if (f.unsynced_to > 0 &&
            (hamok__storage_sync_due(f.s, ms_since(&f)) || f.inflight >= clients)) {
            sync_and_apply(&f);
        }
    }
    double took = now_s() - f.t0;
    hamok_storage_stats ss;
    hamok__storage_stats(f.s, &ss);
    qsort(f.lat, f.nlat, sizeof *f.lat, cmpd);
    double p50 = f.nlat ? f.lat[f.nlat / 2] * 1e3 : 0;
    double p99 = f.nlat ? f.lat[f.nlat * 99 / 100] * 1e3 : 0;
    printf(
        "fsync policy=%s delay=%ums clients=%d size=%zuB: %zu committed in %.2f s = %.0f/s; "
        "%" PRIu64 " fsyncs, %.1f proposals per fsync; commit latency p50 %.3f ms p99 %.3f ms\n",
        always ? "always" : "batch", always ? 0u : delay_ms, clients, size, f.nlat, took,
        (double)f.nlat / took, ss.fsyncs, ss.fsyncs ? (double)f.nlat / (double)ss.fsyncs : 0.0, p50,
        p99);
    hamok__raft_destroy(&f.r);
    hamok__storage_close(&f.s);
    free(data);
    free(f.lat);
    free(f.start);
    if (own) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    return f.nlat > 0 ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: hamok-raft-bench catchup [--entries N] [--chunk BYTES]\n"
            "       hamok-raft-bench fsync [--dir D] [--policy always|batch] [--delay MS]\n"
            "                              [--clients K] [--seconds S] [--size BYTES]\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    uint64_t entries = 1000000;
    size_t chunk = 1000 * 1000;
    const char *dir = NULL;
    bool always = false;
    uint32_t delay = 2;
    int clients = 1000;
    double seconds = 3;
    size_t size = 100;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(k, "--entries") == 0) {
            entries = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--chunk") == 0) {
            chunk = (size_t)strtoull(v, NULL, 10);
        } else if (strcmp(k, "--dir") == 0) {
            dir = v;
        } else if (strcmp(k, "--policy") == 0) {
            always = strcmp(v, "always") == 0;
        } else if (strcmp(k, "--delay") == 0) {
            delay = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--clients") == 0) {
            clients = atoi(v);
        } else if (strcmp(k, "--seconds") == 0) {
            seconds = atof(v);
        } else if (strcmp(k, "--size") == 0) {
            size = (size_t)strtoull(v, NULL, 10);
        } else {
            usage();
            return 2;
        }
    }
    if (strcmp(argv[1], "catchup") == 0 && entries > 0 && chunk >= 64) {
        return cmd_catchup(entries, chunk);
    }
    if (strcmp(argv[1], "fsync") == 0 && clients > 0 && seconds > 0) {
        return cmd_fsync(dir, always, delay, clients, seconds, size);
    }
    usage();
    return 2;
}
