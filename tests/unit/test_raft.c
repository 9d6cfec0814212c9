/* White-box tests of the Raft core, driven by hand: a FIFO "network" of deep
 * copied messages, synchronous storage, explicit time. Each test states one
 * rule of the paper and checks it on the messages and state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "hamok/hamok.h"
#include "raft/raft.h"
#include "util/alloc.h"

#define MAXN    5
#define MAXQ    8192
#define SNAPLEN 1000 /* bytes of a (fake) state-machine snapshot */
#define CHUNK   128  /* bytes per INSTALL_SNAPSHOT chunk */

typedef struct qmsg {
    hamok_msg m;
    int to;
} qmsg;

typedef struct net {
    int n;
    hamok_raft *r[MAXN];
    hamok_id ids[MAXN];
    bool cut[MAXN][MAXN]; /* cut[a][b]: messages a -> b dropped */
    bool manual_persist;  /* when false, PERSISTED follows every update at once */
    qmsg q[MAXQ];
    int qhead;
    int qtail;
    uint64_t now;
    int rejects_sent[MAXN]; /* APPEND_RESPONSE rejections sent by node */
    uint64_t applied_term[MAXN][256];
    uint64_t applied_n[MAXN];
    hamok_raft_read reads[MAXN][16]; /* completed read barriers */
    int n_reads[MAXN];
    /* Snapshots: the state as of index i is a blob derived from i. */
    uint64_t snap_index[MAXN]; /* snapshot each node can serve */
    uint8_t in_blob[MAXN][SNAPLEN];
    size_t in_len[MAXN];
    uint64_t installed[MAXN];
    int chunks_sent;
    uint64_t drop_chunk_offset; /* drop the first chunk at this offset (0 = never) */
} net;

static uint8_t blob_byte(uint64_t index, size_t k)
{
    return (uint8_t)((index * 31u + k) & 0xffu);
}

/* Allocation-failure injection: while armed (only inside the core's step),
 * the g_fail_at-th allocation fails. */
static unsigned long g_allocs;
static unsigned long g_fail_at;
static bool g_armed;

static bool should_fail(void)
{
    return g_armed && g_fail_at != 0 && ++g_allocs == g_fail_at;
}

static void *fail_malloc(void *ud, size_t n)
{
    (void)ud;
    return should_fail() ? NULL : malloc(n);
}

static void *fail_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    return should_fail() ? NULL : realloc(p, n);
}

static void fail_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

static hamok_status core_step(hamok_raft *r, const hamok_raft_event *ev, hamok_raft_update *u)
{
    g_armed = true;
    hamok_status st = hamok__raft_step(r, ev, u);
    g_armed = false;
    return st;
}

/* Varies the election jitter of the next net_init() (0 = the usual seeds). */
static uint64_t g_seed_salt;

/* Snapshot thresholds for the next net_init()/add_node() (0 = defaults). */
static uint64_t g_snap_entries;
static uint64_t g_snap_trailing;

static void apply_snapshot_opts(hamok_raft_options *o)
{
    if (g_snap_entries != 0) {
        o->snapshot_entries = g_snap_entries;
        o->snapshot_trailing = g_snap_trailing;
    }
}

static int idx_of(net *t, const hamok_id *id)
{
    for (int i = 0; i < t->n; i++) {
        if (hamok__id_eq(&t->ids[i], id)) {
            return i;
        }
    }
    return -1;
}

static void copy_msg(hamok_msg *dst, const hamok_msg *src)
{
    *dst = *src;
    if (src->type == HAMOK_MSG_APPEND_ENTRIES && src->u.append.n_entries > 0) {
        size_t n = src->u.append.n_entries;
        dst->u.append.entries = hamok__calloc(n, sizeof(hamok_entry));
        for (size_t i = 0; i < n; i++) {
            dst->u.append.entries[i] = src->u.append.entries[i];
            dst->u.append.entries[i].data =
                hamok__memdup(src->u.append.entries[i].data, src->u.append.entries[i].len);
        }
    }
}

static void step(net *t, int i, hamok_raft_event *ev);

static void enqueue(net *t, int from, int to, hamok_msg *m)
{
    if (t->cut[from][to]) {
        hamok__msg_clear(m);
        return;
    }
    assert_true(t->qtail < MAXQ);
    t->q[t->qtail].m = *m;
    t->q[t->qtail].to = to;
    t->qtail++;
}

static void send_chunk(net *t, int i, const hamok_raft_snapshot_send *s)
{
    int to = idx_of(t, &s->to);
    assert_true(to >= 0);
    assert_int_equal(s->index, t->snap_index[i]); /* the leader asks for what it has */
    size_t off = (size_t)s->offset;
    assert_true(off <= SNAPLEN);
    size_t len = SNAPLEN - off < CHUNK ? SNAPLEN - off : CHUNK;
    t->chunks_sent++;
    if (off != 0 && off == t->drop_chunk_offset) {
        t->drop_chunk_offset = 0; /* lost once */
        return;
    }
    hamok_msg m = {0};
    m.type = HAMOK_MSG_INSTALL_SNAPSHOT;
    m.src = t->ids[i];
    m.dst = s->to;
    m.u.snapshot.term = s->term;
    m.u.snapshot.last_index = s->index;
    m.u.snapshot.last_term = s->snap_term;
    m.u.snapshot.offset = off;
    m.u.snapshot.done = off + len == SNAPLEN;
    m.u.snapshot.data = hamok__malloc(len);
    for (size_t k = 0; k < len; k++) {
        m.u.snapshot.data[k] = blob_byte(s->index, off + k);
    }
    m.u.snapshot.len = len;
    if (off == 0 && s->n_members > 0) {
        m.u.snapshot.members = hamok__calloc(s->n_members, sizeof(hamok_member));
        for (size_t k = 0; k < s->n_members; k++) {
            m.u.snapshot.members[k] = s->members[k];
            m.u.snapshot.members[k].endpoint = hamok__strdup(s->members[k].endpoint);
        }
        m.u.snapshot.n_members = s->n_members;
    }
    enqueue(t, i, to, &m);
}

static void handle_update(net *t, int i, const hamok_raft_update *u)
{
    if (u->has_chunk) {
        if (u->chunk.offset == 0) {
            t->in_len[i] = 0;
        }
        assert_int_equal(u->chunk.offset, t->in_len[i]);
        assert_true(t->in_len[i] + u->chunk.len <= SNAPLEN);
        memcpy(t->in_blob[i] + t->in_len[i], u->chunk.data, u->chunk.len);
        t->in_len[i] += u->chunk.len;
    }
    if (u->snapshot_installed) {
        assert_int_equal(t->in_len[i], SNAPLEN);
        for (size_t k = 0; k < SNAPLEN; k++) {
            assert_int_equal(t->in_blob[i][k], blob_byte(u->installed_index, k));
        }
        t->installed[i] = u->installed_index;
        t->snap_index[i] = u->installed_index;
        t->applied_n[i] = u->installed_index; /* state restored from it */
    }
    for (size_t k = 0; k < u->n_msgs; k++) {
        int to = idx_of(t, &u->msgs[k].dst);
        assert_true(to >= 0);
        if (u->msgs[k].type == HAMOK_MSG_APPEND_RESPONSE && !u->msgs[k].u.append_response.success) {
            t->rejects_sent[i]++;
        }
        hamok_msg m;
        copy_msg(&m, &u->msgs[k]);
        enqueue(t, i, to, &m);
    }
    for (size_t k = 0; k < u->n_snapshot_sends; k++) {
        send_chunk(t, i, &u->snapshot_sends[k]);
    }
    for (size_t k = 0; k < u->n_reads; k++) {
        assert_true(t->n_reads[i] < 16);
        t->reads[i][t->n_reads[i]++] = u->reads[k];
    }
    for (size_t k = 0; k < u->n_apply; k++) {
        uint64_t index = u->apply_first + k;
        assert_int_equal(index, t->applied_n[i] + 1);
        if (index < 256) {
            t->applied_term[i][index] = u->apply[k].term;
        }
        t->applied_n[i] = index;
    }
    if (u->snapshot_wanted) {
        assert_int_equal(u->snapshot_want_index, t->applied_n[i]);
        t->snap_index[i] = u->snapshot_want_index;
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_SNAPSHOT_TAKEN, .now_ms = t->now};
        ev.u.snapshot.index = u->snapshot_want_index;
        step(t, i, &ev);
    }
    if (u->n_persist > 0 && !t->manual_persist) {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = t->now};
        ev.u.persisted.index = u->persist_first + u->n_persist - 1;
        ev.u.persisted.term = u->persist[u->n_persist - 1].term;
        step(t, i, &ev);
    }
}

static void step(net *t, int i, hamok_raft_event *ev)
{
    hamok_raft_update u;
    hamok_status st = core_step(t->r[i], ev, &u);
    assert_true(st == HAMOK_OK || st == HAMOK_ERR_NOT_LEADER ||
                (g_fail_at != 0 && st == HAMOK_ERR_NOMEM));
    handle_update(t, i, &u);
}

static void tick(net *t, int i)
{
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TICK, .now_ms = t->now};
    step(t, i, &ev);
}

static void tick_all(net *t)
{
    for (int i = 0; i < t->n; i++) {
        tick(t, i);
    }
}

/* Deliver until the network is quiet. */
static void deliver(net *t)
{
    while (t->qhead < t->qtail) {
        qmsg *q = &t->q[t->qhead++];
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = t->now};
        ev.u.msg = &q->m;
        step(t, q->to, &ev);
        hamok__msg_clear(&q->m);
        if (t->qhead == t->qtail) {
            t->qhead = t->qtail = 0;
        }
    }
}

static void advance(net *t, uint64_t ms)
{
    for (uint64_t k = 0; k < ms; k += 10) {
        t->now += 10;
        tick_all(t);
        deliver(t);
    }
}

static void net_init(net *t, int n, bool pre_vote)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    t->now = 1000;
    for (int i = 0; i < n; i++) {
        t->ids[i] = hamok__id_from_u64((uint64_t)i + 1);
    }
    for (int i = 0; i < n; i++) {
        hamok_raft_options o;
        hamok__raft_options_default(&o);
        o.self = t->ids[i];
        o.voters = t->ids;
        o.n_voters = (size_t)n;
        o.pre_vote = pre_vote;
        o.seed = (uint64_t)i * 7919u + 1 + g_seed_salt * 1000003u;
        apply_snapshot_opts(&o);
        assert_int_equal(hamok__raft_new(&t->r[i], &o), HAMOK_OK);
    }
    tick_all(t);
}

static void net_free(net *t)
{
    for (int i = t->qhead; i < t->qtail; i++) {
        hamok__msg_clear(&t->q[i].m);
    }
    for (int i = 0; i < t->n; i++) {
        hamok__raft_destroy(&t->r[i]);
    }
}

static int leader_of(net *t)
{
    int l = -1;
    for (int i = 0; i < t->n; i++) {
        if (hamok__raft_role(t->r[i]) == HAMOK_RAFT_LEADER) {
            assert_int_equal(l, -1);
            l = i;
        }
    }
    return l;
}

static uint64_t propose(net *t, int i, const char *payload)
{
    hamok_entry e = {0};
    e.type = HAMOK_ENTRY_COMMAND;
    e.data = (uint8_t *)(uintptr_t)payload;
    e.len = strlen(payload);
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PROPOSE, .now_ms = t->now};
    ev.u.propose.entries = &e;
    ev.u.propose.n = 1;
    hamok_raft_update u;
    hamok_status st = core_step(t->r[i], &ev, &u);
    if (st != HAMOK_OK) {
        handle_update(t, i, &u);
        return 0;
    }
    uint64_t index = u.proposed_index;
    handle_update(t, i, &u);
    return index;
}

/* Thesis §3: a cluster of one elects itself at once and commits alone. */
static void single_node_commits_alone(void **state)
{
    (void)state;
    net t;
    net_init(&t, 1, true);
    assert_int_equal(hamok__raft_role(t.r[0]), HAMOK_RAFT_LEADER);
    assert_int_equal(hamok__raft_term(t.r[0]), 1);
    assert_int_equal(hamok__raft_commit_index(t.r[0]), 1); /* the no-op */
    uint64_t idx = propose(&t, 0, "hello");
    assert_int_equal(idx, 2);
    assert_int_equal(hamok__raft_commit_index(t.r[0]), 2);
    assert_int_equal(t.applied_n[0], 2);
    net_free(&t);
}

/* The leader's own entries count only once durable (etcd #14370). */
static void single_node_waits_for_disk(void **state)
{
    (void)state;
    net t;
    memset(&t, 0, sizeof t);
    t.n = 1;
    t.manual_persist = true;
    t.ids[0] = hamok__id_from_u64(1);
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = t.ids[0];
    o.voters = t.ids;
    o.n_voters = 1;
    assert_int_equal(hamok__raft_new(&t.r[0], &o), HAMOK_OK);
    tick(&t, 0);
    assert_int_equal(hamok__raft_role(t.r[0]), HAMOK_RAFT_LEADER);
    assert_int_equal(hamok__raft_commit_index(t.r[0]), 0);
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = 1};
    ev.u.persisted.index = 1;
    ev.u.persisted.term = 1;
    step(&t, 0, &ev);
    assert_int_equal(hamok__raft_commit_index(t.r[0]), 1);
    net_free(&t);
}

static void three_nodes_elect_and_replicate(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    assert_true(l >= 0);
    uint64_t term = hamok__raft_term(t.r[l]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hamok__raft_term(t.r[i]), term);
    }
    uint64_t idx = propose(&t, l, "x");
    assert_true(idx > 0);
    deliver(&t);
    advance(&t, 200);
    for (int i = 0; i < 3; i++) {
        assert_true(hamok__raft_commit_index(t.r[i]) >= idx);
        assert_true(t.applied_n[i] >= idx);
    }
    /* a follower refuses proposals */
    assert_int_equal(propose(&t, (l + 1) % 3, "y"), 0);
    net_free(&t);
}

/* §5.4.1: a voter refuses a candidate whose last entry has an older term,
 * even when the candidate's log is longer. */
static void vote_needs_up_to_date_log(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, false);
    hamok_entry e[3];
    memset(e, 0, sizeof e);
    for (int k = 0; k < 3; k++) {
        e[k].type = HAMOK_ENTRY_NOOP;
        e[k].term = 1;
    }
    e[1].term = 2;
    hamok__raft_destroy(&t.r[1]);
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = t.ids[1];
    o.voters = t.ids;
    o.n_voters = 3;
    assert_int_equal(hamok__raft_new(&t.r[1], &o), HAMOK_OK);
    assert_int_equal(hamok__raft_restore(t.r[1], 2, NULL, e, 2), HAMOK_OK); /* last (2, t2) */
    tick(&t, 1);
    hamok_msg m = {0};
    m.type = HAMOK_MSG_VOTE_REQUEST;
    m.src = t.ids[0];
    m.dst = t.ids[1];
    m.u.vote.term = 3;
    m.u.vote.last_log_index = 10; /* longer ... */
    m.u.vote.last_log_term = 1;   /* ... but older */
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = t.now};
    ev.u.msg = &m;
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(t.r[1], &ev, &u), HAMOK_OK);
    assert_int_equal(u.n_msgs, 1);
    assert_int_equal(u.msgs[0].type, HAMOK_MSG_VOTE_RESPONSE);
    assert_false(u.msgs[0].u.vote_response.granted);
    assert_int_equal(hamok__raft_term(t.r[1]), 3); /* term adopted anyway (§5.1) */
    assert_true(u.hard_state_changed);
    /* same term, up-to-date candidate: granted, once */
    m.u.vote.last_log_term = 2;
    m.u.vote.last_log_index = 2;
    assert_int_equal(hamok__raft_step(t.r[1], &ev, &u), HAMOK_OK);
    assert_true(u.msgs[0].u.vote_response.granted);
    assert_true(u.hard_state_changed);
    m.src = t.ids[2];
    assert_int_equal(hamok__raft_step(t.r[1], &ev, &u), HAMOK_OK);
    assert_false(u.msgs[0].u.vote_response.granted);
    net_free(&t);
}

/* A follower 1,000 entries behind is found in one round trip of back-off. */
static void lagging_follower_repaired_in_one_round_trip(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int f = (l + 1) % 3;
    t.cut[l][f] = t.cut[f][l] = true;
    char buf[32];
    for (int k = 0; k < 1000; k++) {
        snprintf(buf, sizeof buf, "v%d", k);
        assert_true(propose(&t, l, buf) > 0);
        deliver(&t);
    }
    advance(&t, 100);
    t.rejects_sent[f] = 0;
    t.cut[l][f] = t.cut[f][l] = false;
    advance(&t, 500);
    assert_int_equal(hamok__raft_last_index(t.r[f]), hamok__raft_last_index(t.r[l]));
    assert_int_equal(hamok__raft_commit_index(t.r[f]), hamok__raft_commit_index(t.r[l]));
    assert_true(t.rejects_sent[f] <= 2);
    net_free(&t);
}

/* Thesis §6.2: a leader cut off from its majority steps down within about an
 * election timeout; the majority elects a new leader. */
static void partitioned_leader_steps_down(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    for (int i = 0; i < 3; i++) {
        if (i != l) {
            t.cut[l][i] = t.cut[i][l] = true;
        }
    }
    uint64_t idx = propose(&t, l, "lost");
    advance(&t, 2100);
    assert_int_not_equal(hamok__raft_role(t.r[l]), HAMOK_RAFT_LEADER);
    assert_true(hamok__raft_commit_index(t.r[l]) < idx);
    advance(&t, 3000);
    int nl = leader_of(&t);
    assert_true(nl >= 0 && nl != l);
    net_free(&t);
}

/* Thesis §9.6: with pre-vote, a node that was isolated (and kept timing out)
 * rejoins without raising the term or deposing the leader. */
static void rejoining_node_does_not_disrupt(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int f = (l + 1) % 3;
    uint64_t term = hamok__raft_term(t.r[l]);
    for (int i = 0; i < 3; i++) {
        if (i != f) {
            t.cut[f][i] = t.cut[i][f] = true;
        }
    }
    advance(&t, 10000);
    assert_int_equal(hamok__raft_term(t.r[f]), term);
    for (int i = 0; i < 3; i++) {
        t.cut[f][i] = t.cut[i][f] = false;
    }
    advance(&t, 3000);
    assert_int_equal(leader_of(&t), l);
    assert_int_equal(hamok__raft_term(t.r[l]), term);
    net_free(&t);
}

static hamok_status raft_event(net *t, int i, hamok_raft_event *ev)
{
    hamok_raft_update u;
    ev->now_ms = t->now;
    hamok_status st = core_step(t->r[i], ev, &u);
    handle_update(t, i, &u);
    return st;
}

static void read_barrier(net *t, int i, uint64_t id)
{
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_READ_INDEX};
    ev.u.read.id = id;
    assert_int_equal(raft_event(t, i, &ev), HAMOK_OK);
}

/* Thesis §6.4: a read barrier completes only after a heartbeat round that a
 * majority answered, with the leader's commit index as read index. */
static void read_index_confirmed_by_round(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int f = (l + 1) % 3;
    uint64_t idx = propose(&t, l, "w");
    deliver(&t);
    read_barrier(&t, l, 42);
    assert_int_equal(t.n_reads[l], 0); /* needs the round first */
    deliver(&t);
    assert_int_equal(t.n_reads[l], 1);
    assert_int_equal(t.reads[l][0].id, 42);
    assert_int_equal(t.reads[l][0].status, HAMOK_OK);
    assert_true(t.reads[l][0].index >= idx);
    /* from a follower: asked of the leader, answered with its read index */
    read_barrier(&t, f, 43);
    deliver(&t);
    assert_int_equal(t.n_reads[f], 1);
    assert_int_equal(t.reads[f][0].id, 43);
    assert_int_equal(t.reads[f][0].status, HAMOK_OK);
    assert_true(t.reads[f][0].index >= idx);
    net_free(&t);
}

/* A leader cut off from its majority never confirms a read: it fails once
 * check-quorum deposes it. A node that knows no leader fails at once. */
static void read_index_fails_without_quorum(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    for (int i = 0; i < 3; i++) {
        if (i != l) {
            t.cut[l][i] = t.cut[i][l] = true;
        }
    }
    read_barrier(&t, l, 7);
    advance(&t, 2500);
    assert_int_equal(t.n_reads[l], 1);
    assert_int_equal(t.reads[l][0].status, HAMOK_ERR_NOT_LEADER);
    read_barrier(&t, l, 8); /* no leader known now */
    assert_int_equal(t.n_reads[l], 2);
    assert_int_equal(t.reads[l][1].status, HAMOK_ERR_NO_LEADER);
    net_free(&t);
}

static void read_index_single_node_immediate(void **state)
{
    (void)state;
    net t;
    net_init(&t, 1, true);
    read_barrier(&t, 0, 5);
    assert_int_equal(t.n_reads[0], 1);
    assert_int_equal(t.reads[0][0].status, HAMOK_OK);
    assert_int_equal(t.reads[0][0].index, 1);
    net_free(&t);
}

/* Thesis §3.10: the leader brings the target up to date, sends TimeoutNow,
 * and the target wins the next term; proposals are refused meanwhile. */
static void leadership_transfer_to_lagging_target(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int target = (l + 2) % 3;
    uint64_t term = hamok__raft_term(t.r[l]);
    t.cut[l][target] = t.cut[target][l] = true;
    for (int k = 0; k < 20; k++) {
        assert_true(propose(&t, l, "catch-up") > 0);
        deliver(&t);
    }
    t.cut[l][target] = t.cut[target][l] = false;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TRANSFER};
    ev.u.transfer.has_target = true;
    ev.u.transfer.target = t.ids[target];
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    assert_int_equal(propose(&t, l, "refused"), 0); /* BUSY while transferring */
    deliver(&t);
    advance(&t, 100);
    assert_int_equal(leader_of(&t), target);
    assert_int_equal(hamok__raft_term(t.r[target]), term + 1);
    assert_int_equal(hamok__raft_last_index(t.r[target]), hamok__raft_last_index(t.r[l]));
    /* transfer on a follower is refused */
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_ERR_NOT_LEADER);
    net_free(&t);
}

/* A transfer whose target is unreachable is abandoned after an election
 * timeout and the leader accepts proposals again. */
static void leadership_transfer_times_out(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int target = (l + 1) % 3;
    t.cut[l][target] = t.cut[target][l] = true;
    assert_true(propose(&t, l, "x") > 0);
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TRANSFER};
    ev.u.transfer.has_target = true;
    ev.u.transfer.target = t.ids[target];
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    assert_int_equal(propose(&t, l, "busy"), 0);
    advance(&t, 1100);
    assert_int_equal(leader_of(&t), l);
    assert_true(propose(&t, l, "again") > 0);
    net_free(&t);
}

/* A fresh peer outside the configuration (it joins as a learner). */
static int add_node(net *t)
{
    int i = t->n++;
    t->ids[i] = hamok__id_from_u64((uint64_t)i + 1);
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = t->ids[i];
    o.seed = (uint64_t)i + 99;
    apply_snapshot_opts(&o);
    assert_int_equal(hamok__raft_new(&t->r[i], &o), HAMOK_OK);
    tick(t, i);
    return i;
}

static hamok_status change(net *t, int i, hamok_raft_change_op op, int who)
{
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_CHANGE};
    ev.u.change.op = op;
    ev.u.change.id = t->ids[who];
    ev.u.change.endpoint = "tcp://127.0.0.1:5000";
    return raft_event(t, i, &ev);
}

static size_t voters_of(net *t, int i, size_t *members)
{
    size_t n;
    const hamok_member *ms = hamok__raft_members(t->r[i], &n, NULL);
    size_t v = 0;
    for (size_t k = 0; k < n; k++) {
        v += ms[k].role == HAMOK_MEMBER_VOTER ? 1u : 0u;
    }
    if (members != NULL) {
        *members = n;
    }
    return v;
}

/* Thesis §4.2.1: a new server joins as a learner, catches up without
 * counting, and is promoted once it has; one change at a time (§4.1). */
static void membership_learner_promoted_when_caught_up(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    for (int k = 0; k < 50; k++) {
        assert_true(propose(&t, l, "before-join") > 0);
    }
    deliver(&t);
    int j = add_node(&t);
    assert_int_equal(voters_of(&t, j, NULL), 0);
    assert_int_equal(change(&t, l, HAMOK_RAFT_ADD_LEARNER, j), HAMOK_OK);
    assert_int_equal(change(&t, l, HAMOK_RAFT_REMOVE, (l + 1) % 3), HAMOK_ERR_BUSY);
    size_t members;
    assert_int_equal(voters_of(&t, l, &members), 3);
    assert_int_equal(members, 4);
    advance(&t, 500);
    assert_int_equal(voters_of(&t, l, NULL), 4); /* promoted */
    assert_int_equal(voters_of(&t, j, NULL), 4);
    assert_int_equal(hamok__raft_last_index(t.r[j]), hamok__raft_last_index(t.r[l]));
    assert_int_equal(hamok__raft_commit_index(t.r[j]), hamok__raft_commit_index(t.r[l]));
    /* four voters: the quorum is three, so one follower may be away */
    int f = (l + 1) % 3;
    for (int i = 0; i < 4; i++) {
        t.cut[f][i] = t.cut[i][f] = true;
    }
    uint64_t idx = propose(&t, l, "after-join");
    advance(&t, 200);
    assert_true(hamok__raft_commit_index(t.r[l]) >= idx);
    assert_true(hamok__raft_commit_index(t.r[j]) >= idx);
    net_free(&t);
}

/* An add of a member at another endpoint records the new endpoint (the same
 * roles, one configuration entry every peer applies); at its recorded
 * endpoint it changes nothing. */
static void membership_member_endpoint_moves(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int f = (l + 1) % 3;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_CHANGE};
    ev.u.change.op = HAMOK_RAFT_ADD_LEARNER;
    ev.u.change.id = t.ids[f];
    ev.u.change.endpoint = "tcp://127.0.0.1:6001";
    uint64_t before = hamok__raft_last_index(t.r[l]);
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    assert_int_equal(hamok__raft_last_index(t.r[l]), before + 1);
    advance(&t, 300);
    for (int i = 0; i < 3; i++) {
        size_t n;
        const hamok_member *ms = hamok__raft_members(t.r[i], &n, NULL);
        assert_int_equal(n, 3);
        assert_int_equal(voters_of(&t, i, NULL), 3);
        bool seen = false;
        for (size_t k = 0; k < n; k++) {
            if (hamok__id_eq(&ms[k].id, &t.ids[f])) {
                assert_string_equal(ms[k].endpoint, "tcp://127.0.0.1:6001");
                seen = true;
            }
        }
        assert_true(seen);
    }
    /* The same endpoint again, or none: nothing appended. */
    before = hamok__raft_last_index(t.r[l]);
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    ev.u.change.endpoint = NULL;
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    ev.u.change.endpoint = "";
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    assert_int_equal(hamok__raft_last_index(t.r[l]), before);
    net_free(&t);
}

/* Thesis §4.2.2: a leader that removes itself keeps leading until the change
 * commits, then steps down; the rest elect a leader among themselves. */
static void membership_removed_leader_steps_down(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    assert_int_equal(change(&t, l, HAMOK_RAFT_REMOVE, l), HAMOK_OK);
    advance(&t, 100);
    assert_int_not_equal(hamok__raft_role(t.r[l]), HAMOK_RAFT_LEADER);
    advance(&t, 3000);
    int nl = leader_of(&t);
    assert_true(nl >= 0 && nl != l);
    assert_int_equal(voters_of(&t, nl, NULL), 2);
    uint64_t idx = propose(&t, nl, "two voters");
    advance(&t, 200);
    for (int i = 0; i < 3; i++) {
        if (i != l) {
            assert_true(hamok__raft_commit_index(t.r[i]) >= idx);
        }
    }
    assert_int_equal(change(&t, nl, HAMOK_RAFT_REMOVE, l), HAMOK_ERR_NOT_FOUND);
    net_free(&t);
}

/* Thesis §4.1: a configuration entry that is truncated from the log takes its
 * configuration with it. */
static void membership_truncated_config_reverts(void **state)
{
    (void)state;
    hamok_id ids[3] = {hamok__id_from_u64(1), hamok__id_from_u64(2), hamok__id_from_u64(3)};
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = ids[1];
    o.voters = ids;
    o.n_voters = 3;
    hamok_raft *r;
    assert_int_equal(hamok__raft_new(&r, &o), HAMOK_OK);
    hamok_member ms[4];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 4; i++) {
        ms[i].id = hamok__id_from_u64((uint64_t)i + 1);
        ms[i].role = i < 3 ? HAMOK_MEMBER_VOTER : HAMOK_MEMBER_LEARNER;
        ms[i].endpoint = (char *)"";
    }
    hamok_buf cfg = HAMOK_BUF_INIT;
    assert_int_equal(hamok__codec_encode_config(ms, 4, &cfg), HAMOK_OK);

    hamok_entry es[2];
    memset(es, 0, sizeof es);
    es[0].type = HAMOK_ENTRY_NOOP;
    es[0].term = 1;
    es[1].type = HAMOK_ENTRY_CONFIG;
    es[1].term = 1;
    es[1].data = hamok__memdup(cfg.data, cfg.len);
    es[1].len = cfg.len;
    hamok_msg m = {0};
    m.type = HAMOK_MSG_APPEND_ENTRIES;
    m.src = ids[0];
    m.dst = ids[1];
    m.u.append.term = 1;
    m.u.append.entries = es;
    m.u.append.n_entries = 2;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = 10};
    ev.u.msg = &m;
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(r, &ev, &u), HAMOK_OK);
    assert_true(u.config_changed);
    assert_int_equal(u.n_members, 4);
    assert_int_equal(u.config_index, 2);
    hamok__entry_clear(&es[1]);

    /* a leader of term 2 that never saw index 2 */
    hamok_entry e2 = {0};
    e2.type = HAMOK_ENTRY_NOOP;
    e2.term = 2;
    m.src = ids[2];
    m.u.append.term = 2;
    m.u.append.prev_log_index = 1;
    m.u.append.prev_log_term = 1;
    m.u.append.entries = &e2;
    m.u.append.n_entries = 1;
    ev.now_ms = 20;
    assert_int_equal(hamok__raft_step(r, &ev, &u), HAMOK_OK);
    assert_true(u.config_changed);
    assert_int_equal(u.n_members, 3);
    assert_int_equal(u.config_index, 0);
    assert_int_equal(u.truncate_from, 2);
    hamok__buf_free(&cfg);
    hamok__raft_destroy(&r);
}

/* Two followers whose election timers fire in the same instant after their
 * leader died must not split the vote (both winning each other's pre-vote,
 * both campaigning, each voting for itself): without the pre-vote rules
 * (a short grace after granting a pre-vote, a tie-break between
 * simultaneous pre-candidates) jitter draw 115 does, and costs another
 * election timeout. Over 300 jitter draws: one election round, a new leader within two
 * election timeouts, every time. */
static void prevote_no_split_when_timers_coincide(void **state)
{
    (void)state;
    for (uint64_t salt = 1; salt <= 300; salt++) {
        g_seed_salt = salt;
        net t;
        net_init(&t, 3, true);
        advance(&t, 3000);
        int l = leader_of(&t);
        assert_true(l >= 0);
        uint64_t term = hamok__raft_term(t.r[l]);
        for (int i = 0; i < 3; i++) {
            t.cut[l][i] = t.cut[i][l] = true;
        }
        uint64_t t0 = t.now;
        int nl = -1;
        while (nl < 0 && t.now - t0 < 10000) {
            advance(&t, 10);
            for (int i = 0; i < 3; i++) {
                if (i != l && hamok__raft_role(t.r[i]) == HAMOK_RAFT_LEADER) {
                    nl = i;
                }
            }
        }
        assert_true(nl >= 0);
        if (hamok__raft_term(t.r[nl]) != term + 1 || t.now - t0 > 2000 + 50) {
            fail_msg("jitter %llu: new leader in term %llu (was %llu) after %llu ms",
                     (unsigned long long)salt, (unsigned long long)hamok__raft_term(t.r[nl]),
                     (unsigned long long)term, (unsigned long long)(t.now - t0));
        }
        net_free(&t);
    }
    g_seed_salt = 0;
}

/* Three servers snapshotting every 100 entries; follower *f is cut off
 * while the leader *l commits 500 entries and compacts past it. */
static void follower_behind_snapshot(net *t, int *l, int *f)
{
    g_snap_entries = 100;
    g_snap_trailing = 10;
    net_init(t, 3, true);
    advance(t, 3000);
    *l = leader_of(t);
    *f = (*l + 1) % 3;
    t->cut[*l][*f] = t->cut[*f][*l] = true;
    for (int k = 0; k < 500; k++) {
        assert_true(propose(t, *l, "compact me") > 0);
        deliver(t);
    }
}

/* Thesis §5: the leader compacts its log behind snapshots; a follower that
 * fell behind the log start receives the snapshot in chunks (one lost chunk is
 * resent and the transfer resumes), then the log tail. */
static void snapshot_catches_up_follower(void **state)
{
    (void)state;
    net t;
    int l, f;
    follower_behind_snapshot(&t, &l, &f);
    assert_true(t.snap_index[l] >= 400);
    assert_true(hamok__raft_first_index(t.r[l]) > 300); /* compacted */
    assert_true(hamok__raft_snapshot_index(t.r[l], NULL) >= 400);
    t.drop_chunk_offset = 2 * CHUNK;
    int sent_before = t.chunks_sent;
    t.cut[l][f] = t.cut[f][l] = false;
    advance(&t, 2000);
    assert_true(t.installed[f] >= 400);
    assert_int_equal(t.drop_chunk_offset, 0); /* the loss happened */
    assert_true(t.chunks_sent - sent_before > (SNAPLEN + CHUNK - 1) / CHUNK); /* and a resend */
    assert_int_equal(hamok__raft_last_index(t.r[f]), hamok__raft_last_index(t.r[l]));
    assert_int_equal(hamok__raft_commit_index(t.r[f]), hamok__raft_commit_index(t.r[l]));
    assert_int_equal(t.applied_n[f], t.applied_n[l]);
    net_free(&t);
    g_snap_entries = 0;
}

/* FINDINGS.md 12: a leader that is sending its snapshot defers the next one
 * (a newer snapshot restarts every transfer at offset 0, and under steady
 * writes a slow install would never finish), but only up to four times the
 * threshold: the log stays bounded when a transfer stalls. */
static void snapshot_deferred_while_sending(void **state)
{
    (void)state;
    net t;
    int l, f;
    follower_behind_snapshot(&t, &l, &f);
    uint64_t snap = t.snap_index[l];
    assert_true(snap >= 400);
    /* Let the transfer start (a chunk is lost, so it waits for a resend),
     * then stall it. */
    int sent = t.chunks_sent;
    t.drop_chunk_offset = 2 * CHUNK;
    t.cut[l][f] = t.cut[f][l] = false;
    for (int k = 0; k < 100 && t.drop_chunk_offset != 0; k++) {
        advance(&t, 10);
    }
    assert_true(t.chunks_sent > sent);
    assert_int_equal(t.installed[f], 0);
    t.cut[l][f] = t.cut[f][l] = true;
    /* 3.5 thresholds' worth of entries: still the same snapshot. */
    for (int k = 0; k < 350; k++) {
        assert_true(propose(&t, l, "while sending") > 0);
        deliver(&t);
    }
    assert_int_equal(t.snap_index[l], snap);
    /* Past four thresholds: compaction goes ahead anyway. */
    for (int k = 0; k < 60; k++) {
        assert_true(propose(&t, l, "bounded") > 0);
        deliver(&t);
    }
    assert_true(t.snap_index[l] >= snap + 400);
    /* The follower installs the newer one and catches up. */
    t.cut[l][f] = t.cut[f][l] = false;
    advance(&t, 3000);
    assert_true(t.installed[f] >= snap + 400);
    assert_int_equal(t.applied_n[f], t.applied_n[l]);
    net_free(&t);
    g_snap_entries = 0;
}

/* A brand-new member catches up by snapshot + log tail and is promoted. */
static void snapshot_brings_new_member_up(void **state)
{
    (void)state;
    g_snap_entries = 100;
    g_snap_trailing = 10;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    for (int k = 0; k < 300; k++) {
        assert_true(propose(&t, l, "history") > 0);
        deliver(&t);
    }
    int j = add_node(&t);
    assert_int_equal(change(&t, l, HAMOK_RAFT_ADD_LEARNER, j), HAMOK_OK);
    advance(&t, 1000);
    assert_true(t.installed[j] >= 200);
    assert_int_equal(voters_of(&t, l, NULL), 4);
    assert_int_equal(voters_of(&t, j, NULL), 4);
    assert_int_equal(hamok__raft_last_index(t.r[j]), hamok__raft_last_index(t.r[l]));
    assert_int_equal(t.applied_n[j], t.applied_n[l]);
    net_free(&t);
    g_snap_entries = 0;
}

/* Thesis §5.1 / FINDINGS.md 8: the first leader of a bootstrapped cluster
 * writes the bootstrap configuration into the log (a CONFIG entry of its term
 * in place of the no-op), so a peer that joins and learns the log from index
 * 1 knows the configuration at every index, snapshots included; a restart
 * without bootstrap options recovers it from the log; later leaders append
 * plain no-ops. */
static void bootstrap_configuration_in_the_log(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    assert_true(l >= 0);
    const hamok_entry *e1 = hamok__raft_entry(t.r[l], 1);
    assert_non_null(e1);
    assert_int_equal(e1->type, HAMOK_ENTRY_CONFIG);
    assert_int_equal(e1->term, hamok__raft_term(t.r[l]));
    hamok_member *ms = NULL;
    size_t n = 0;
    assert_int_equal(hamok__codec_decode_config(e1->data, e1->len, &ms, &n), HAMOK_OK);
    assert_int_equal(n, 3);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(ms[k].role, HAMOK_MEMBER_VOTER);
        assert_true(idx_of(&t, &ms[k].id) >= 0);
    }
    hamok__members_free(ms, n);
    uint64_t ci = 0;
    hamok__raft_members(t.r[l], NULL, &ci);
    assert_int_equal(ci, 1);
    assert_int_equal(hamok__raft_commit_index(t.r[l]), 1); /* it serves as the no-op */
    for (int k = 0; k < 5; k++) {
        assert_true(propose(&t, l, "x") > 0);
    }
    deliver(&t);
    /* A joiner replicates from index 1: the configuration at index 1..6 is
     * the bootstrap one, not empty. */
    int j = add_node(&t);
    assert_int_equal(change(&t, l, HAMOK_RAFT_ADD_LEARNER, j), HAMOK_OK);
    advance(&t, 500);
    assert_int_equal(hamok__raft_first_index(t.r[j]), 1);
    for (uint64_t i = 1; i <= 6; i++) {
        size_t k = 0;
        const hamok_member *c = hamok__raft_config_at(t.r[j], i, &k);
        assert_non_null(c);
        assert_int_equal(k, 3);
    }
    /* A new leader of a later term appends a no-op: the log has its CONFIG. */
    int f = (l + 1) % 4 == j ? (l + 2) % 4 : (l + 1) % 4;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TRANSFER};
    ev.u.transfer.has_target = true;
    ev.u.transfer.target = t.ids[f];
    assert_int_equal(raft_event(&t, l, &ev), HAMOK_OK);
    advance(&t, 500);
    int l2 = leader_of(&t);
    assert_int_equal(l2, f);
    uint64_t last = hamok__raft_last_index(t.r[l2]);
    uint64_t tl = 0;
    assert_true(hamok__raft_term_at(t.r[l2], last, &tl));
    assert_int_equal(tl, hamok__raft_term(t.r[l2]));
    assert_int_equal(hamok__raft_entry(t.r[l2], last)->type, HAMOK_ENTRY_NOOP);
    /* Restart without bootstrap voters: the configuration comes from the
     * log (entries 1..last of the leader). */
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = t.ids[l];
    hamok_raft *r;
    assert_int_equal(hamok__raft_new(&r, &o), HAMOK_OK);
    size_t ne = (size_t)last;
    hamok_entry *es = hamok__calloc(ne, sizeof *es);
    for (size_t k = 0; k < ne; k++) {
        es[k] = *hamok__raft_entry(t.r[l2], k + 1);
    }
    assert_int_equal(hamok__raft_restore(r, hamok__raft_term(t.r[l2]), NULL, es, ne), HAMOK_OK);
    hamok__free(es);
    size_t k = 0;
    hamok__raft_members(r, &k, &ci);
    assert_int_equal(k, 4); /* bootstrap + the joiner, promoted */
    assert_non_null(hamok__raft_config_at(r, 1, &k));
    assert_int_equal(k, 3);
    hamok__raft_destroy(&r);
    net_free(&t);
}

/* Crash recovery: snapshot + log tail restore the state and configuration. */
static void restore_snapshot_then_log(void **state)
{
    (void)state;
    hamok_id ids[3] = {hamok__id_from_u64(1), hamok__id_from_u64(2), hamok__id_from_u64(3)};
    hamok_member ms[3];
    memset(ms, 0, sizeof ms);
    for (int i = 0; i < 3; i++) {
        ms[i].id = ids[i];
        ms[i].role = HAMOK_MEMBER_VOTER;
        ms[i].endpoint = (char *)"tcp://h:1";
    }
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = ids[0]; /* no bootstrap voters: everything comes from storage */
    hamok_raft *r;
    assert_int_equal(hamok__raft_new(&r, &o), HAMOK_OK);
    assert_int_equal(hamok__raft_restore_snapshot(r, 50, 3, ms, 3), HAMOK_OK);
    hamok_entry es[2];
    memset(es, 0, sizeof es);
    es[0].type = es[1].type = HAMOK_ENTRY_NOOP;
    es[0].term = 3;
    es[1].term = 4;
    assert_int_equal(hamok__raft_restore(r, 4, &ids[1], es, 2), HAMOK_OK);
    assert_int_equal(hamok__raft_first_index(r), 51);
    assert_int_equal(hamok__raft_last_index(r), 52);
    assert_int_equal(hamok__raft_commit_index(r), 50);
    assert_int_equal(hamok__raft_applied_index(r), 50);
    uint64_t t50;
    assert_true(hamok__raft_term_at(r, 50, &t50));
    assert_int_equal(t50, 3);
    size_t n;
    assert_non_null(hamok__raft_config_at(r, 50, &n));
    assert_int_equal(n, 3);
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_TICK, .now_ms = 1};
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(r, &ev, &u), HAMOK_OK);
    assert_true(u.config_changed);
    assert_int_equal(u.n_members, 3);
    assert_int_equal(hamok__raft_restore_snapshot(r, 60, 4, ms, 3), HAMOK_ERR_STATE);
    hamok__raft_destroy(&r);
}

/* Values no correct peer can send (index arithmetic would wrap) are dropped
 * before they touch the state. */
static void absurd_values_are_ignored(void **state)
{
    (void)state;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    int l = leader_of(&t);
    int f = (l + 1) % 3;
    uint64_t term = hamok__raft_term(t.r[f]);
    hamok_msg m = {0};
    m.type = HAMOK_MSG_INSTALL_SNAPSHOT;
    m.src = t.ids[l];
    m.dst = t.ids[f];
    m.u.snapshot.term = term;
    m.u.snapshot.last_index = UINT64_MAX - 1;
    m.u.snapshot.last_term = term;
    m.u.snapshot.done = true;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = t.now};
    ev.u.msg = &m;
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(t.r[f], &ev, &u), HAMOK_OK);
    assert_false(u.snapshot_installed);
    assert_int_equal(u.n_msgs, 0);
    memset(&m, 0, sizeof m);
    m.type = HAMOK_MSG_APPEND_ENTRIES;
    m.src = t.ids[l];
    m.dst = t.ids[f];
    m.u.append.term = UINT64_MAX;
    assert_int_equal(hamok__raft_step(t.r[f], &ev, &u), HAMOK_OK);
    assert_int_equal(hamok__raft_term(t.r[f]), term);
    assert_int_equal(u.n_msgs, 0);
    net_free(&t);
}

static void failure_scenario(void)
{
    g_snap_entries = 20;
    g_snap_trailing = 2;
    net t;
    net_init(&t, 3, true);
    advance(&t, 3000);
    for (int k = 0; k < 40; k++) {
        for (int i = 0; i < t.n; i++) {
            if (hamok__raft_role(t.r[i]) == HAMOK_RAFT_LEADER) {
                (void)propose(&t, i, "under pressure");
            }
        }
        deliver(&t);
    }
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_READ_INDEX};
    ev.u.read.id = 1;
    (void)raft_event(&t, 1, &ev);
    int j = add_node(&t);
    for (int i = 0; i < 3; i++) {
        if (hamok__raft_role(t.r[i]) == HAMOK_RAFT_LEADER) {
            (void)change(&t, i, HAMOK_RAFT_ADD_LEARNER, j);
        }
    }
    advance(&t, 2000);
    /* Safety holds whatever failed: no two leaders of one term. */
    for (int a = 0; a < t.n; a++) {
        for (int b = a + 1; b < t.n; b++) {
            if (hamok__raft_role(t.r[a]) == HAMOK_RAFT_LEADER &&
                hamok__raft_role(t.r[b]) == HAMOK_RAFT_LEADER) {
                assert_int_not_equal(hamok__raft_term(t.r[a]), hamok__raft_term(t.r[b]));
            }
        }
    }
    net_free(&t);
    g_snap_entries = 0;
}

/* Every allocation the core makes in a scenario that elects, replicates,
 * snapshots, reads and changes membership fails once, in turn: the core
 * returns HAMOK_ERR_NOMEM or carries on, never crashes, never leaks (the
 * sanitizer build checks), and stays safe. */
static void allocation_failure_sweep(void **state)
{
    (void)state;
    hamok_allocator a = {fail_malloc, fail_realloc, fail_free, NULL};
    unsigned long n;
    for (n = 1;; n++) {
        g_allocs = 0;
        g_fail_at = n;
        assert_int_equal(hamok_set_allocator(&a), HAMOK_OK);
        failure_scenario();
        assert_int_equal(hamok_set_allocator(NULL), HAMOK_OK);
        if (g_allocs < n) {
            break; /* the scenario made fewer than n allocations: all covered */
        }
    }
    g_fail_at = 0;
    printf("  %lu allocation points failed in turn\n", n - 1);
    assert_true(n > 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_node_commits_alone),
        cmocka_unit_test(single_node_waits_for_disk),
        cmocka_unit_test(three_nodes_elect_and_replicate),
        cmocka_unit_test(vote_needs_up_to_date_log),
        cmocka_unit_test(lagging_follower_repaired_in_one_round_trip),
        cmocka_unit_test(partitioned_leader_steps_down),
        cmocka_unit_test(rejoining_node_does_not_disrupt),
        cmocka_unit_test(read_index_confirmed_by_round),
        cmocka_unit_test(read_index_fails_without_quorum),
        cmocka_unit_test(read_index_single_node_immediate),
        cmocka_unit_test(leadership_transfer_to_lagging_target),
        cmocka_unit_test(leadership_transfer_times_out),
        cmocka_unit_test(membership_learner_promoted_when_caught_up),
        cmocka_unit_test(membership_removed_leader_steps_down),
        cmocka_unit_test(membership_member_endpoint_moves),
        cmocka_unit_test(membership_truncated_config_reverts),
        cmocka_unit_test(prevote_no_split_when_timers_coincide),
        cmocka_unit_test(snapshot_catches_up_follower),
        cmocka_unit_test(snapshot_deferred_while_sending),
        cmocka_unit_test(snapshot_brings_new_member_up),
        cmocka_unit_test(bootstrap_configuration_in_the_log),
        cmocka_unit_test(restore_snapshot_then_log),
        cmocka_unit_test(absurd_values_are_ignored),
        cmocka_unit_test(allocation_failure_sweep),
    };
    return cmocka_run_group_tests_name("raft", tests, NULL, NULL);
}
