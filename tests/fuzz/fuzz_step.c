/* libFuzzer target: "decode then step" into live Raft cores.
 *
 * Three cores of the production Raft code exchange their real traffic
 * (encoded and decoded by the codec) while the input interleaves time, forged
 * frames (decoded, then delivered to a core as if sent by one of its peers),
 * proposals, read barriers, transfers and membership changes. Raft does not
 * defend against lying peers, so protocol outcomes are not checked here; what
 * must hold for any input is memory safety, no undefined behaviour, no leak,
 * bounded work per input (libFuzzer's -timeout) and the update contract's
 * pointers staying valid (the harness reads every byte it is handed).
 *
 * Input: a sequence of operations, each an opcode byte and its arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "raft/raft.h"
#include "util/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N    3
#define QMAX 256

typedef struct in {
    const uint8_t *p;
    size_t left;
} in;

static uint8_t byte(in *x)
{
    if (x->left == 0) {
        return 0;
    }
    x->left--;
    return *x->p++;
}

typedef struct frame {
    hamok_buf bytes;
    int to;
} frame;

typedef struct world {
    hamok_raft *r[N];
    hamok_id ids[N];
    uint64_t now;
    frame q[QMAX];
    int nq;
    hamok_buf enc;
    volatile uint8_t sink; /* every borrowed byte is read into here */
} world;

static void touch(world *w, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        w->sink ^= p[i];
    }
}

static void step(world *w, int i, hamok_raft_event *ev, int depth);

static void handle(world *w, int i, const hamok_raft_update *u, int depth)
{
    for (size_t k = 0; k < u->n_persist; k++) {
        touch(w, u->persist[k].data, u->persist[k].len);
    }
    for (size_t k = 0; k < u->n_apply; k++) {
        touch(w, u->apply[k].data, u->apply[k].len);
    }
    if (u->has_chunk) {
        touch(w, u->chunk.data, u->chunk.len);
    }
    for (size_t k = 0; k < u->n_msgs; k++) {
        int to = -1;
        for (int j = 0; j < N; j++) {
            if (hamok__id_eq(&w->ids[j], &u->msgs[k].dst)) {
                to = j;
            }
        }
        if (to < 0 || w->nq == QMAX) {
            continue;
        }
        hamok__buf_reset(&w->enc);
        if (hamok__codec_encode(&u->msgs[k], "fuzz", NULL, &w->enc) != HAMOK_OK) {
            continue;
        }
        frame *f = &w->q[w->nq++];
        hamok__buf_reset(&f->bytes);
        if (hamok__buf_append(&f->bytes, w->enc.data, w->enc.len) != HAMOK_OK) {
            w->nq--;
            continue;
        }
        f->to = to;
    }
    if (depth > 4) {
        return;
    }
    if (u->snapshot_wanted) {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_SNAPSHOT_TAKEN, .now_ms = w->now};
        ev.u.snapshot.index = u->snapshot_want_index;
        step(w, i, &ev, depth + 1);
    }
    if (u->n_persist > 0) {
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = w->now};
        ev.u.persisted.index = u->persist_first + u->n_persist - 1;
        ev.u.persisted.term = u->persist[u->n_persist - 1].term;
        step(w, i, &ev, depth + 1);
    }
}

static void step(world *w, int i, hamok_raft_event *ev, int depth)
{
    hamok_raft_update u;
    (void)hamok__raft_step(w->r[i], ev, &u);
    handle(w, i, &u, depth);
}

static void deliver(world *w, int i, const uint8_t *bytes, size_t len, const hamok_id *src)
{
    hamok_msg m;
    if (hamok__codec_decode(bytes, len, "fuzz", NULL, &m, NULL) != HAMOK_OK) {
        return;
    }
    if (src != NULL) {
        m.src = *src;
        m.dst = w->ids[i];
        m.broadcast = false;
    }
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = w->now};
    ev.u.msg = &m;
    step(w, i, &ev, 0);
    hamok__msg_clear(&m);
}

/* Deliver the queued real traffic (which produces more; bounded rounds). */
static void route(world *w)
{
    frame pending[QMAX];
    for (int round = 0; round < 8 && w->nq > 0; round++) {
        int n = w->nq;
        memcpy(pending, w->q, (size_t)n * sizeof pending[0]);
        for (int k = 0; k < n; k++) {
            w->q[k].bytes = (hamok_buf)HAMOK_BUF_INIT;
        }
        w->nq = 0;
        for (int k = 0; k < n; k++) {
            deliver(w, pending[k].to, pending[k].bytes.data, pending[k].bytes.len, NULL);
            hamok__buf_free(&pending[k].bytes);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    world w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < N; i++) {
        w.ids[i] = hamok__id_from_u64((uint64_t)i + 1);
    }
    for (int i = 0; i < N; i++) {
        hamok_raft_options o;
        hamok__raft_options_default(&o);
        o.self = w.ids[i];
        o.voters = w.ids;
        o.n_voters = N;
        o.seed = (uint64_t)i;
        o.snapshot_entries = 8;
        o.snapshot_trailing = 2;
        o.max_batch_entries = 16;
        if (hamok__raft_new(&w.r[i], &o) != HAMOK_OK) {
            abort();
        }
    }
    in x = {data, size};
    while (x.left > 0) {
        uint8_t op = byte(&x);
        int k = byte(&x) % N;
        hamok_raft_event ev;
        memset(&ev, 0, sizeof ev);
        ev.now_ms = w.now;
        switch (op % 7) {
        case 0: /* time passes */
            w.now += (uint64_t)byte(&x) * 20u;
            for (int i = 0; i < N; i++) {
                ev.type = HAMOK_RAFT_EV_TICK;
                ev.now_ms = w.now;
                step(&w, i, &ev, 0);
            }
            route(&w);
            break;
        case 1: { /* a forged frame from a peer */
            hamok_id src = w.ids[byte(&x) % N];
            size_t len = (size_t)byte(&x);
            len |= (size_t)byte(&x) << 8;
            if (len > x.left) {
                len = x.left;
            }
            deliver(&w, k, x.p, len, &src);
            x.p += len;
            x.left -= len;
            break;
        }
        case 2: { /* a proposal */
            uint8_t payload[8];
            size_t n = byte(&x) % sizeof payload;
            for (size_t i = 0; i < n; i++) {
                payload[i] = byte(&x);
            }
            hamok_entry e = {0};
            e.type = HAMOK_ENTRY_COMMAND;
            e.data = payload;
            e.len = n;
            ev.type = HAMOK_RAFT_EV_PROPOSE;
            ev.u.propose.entries = &e;
            ev.u.propose.n = 1;
            step(&w, k, &ev, 0);
            break;
        }
        case 3:
            ev.type = HAMOK_RAFT_EV_READ_INDEX;
            ev.u.read.id = byte(&x);
            step(&w, k, &ev, 0);
            break;
        case 4:
            ev.type = HAMOK_RAFT_EV_TRANSFER;
            ev.u.transfer.has_target = byte(&x) & 1;
            ev.u.transfer.target = hamok__id_from_u64(byte(&x) % (N + 1) + 1u);
            step(&w, k, &ev, 0);
            break;
        case 5:
            ev.type = HAMOK_RAFT_EV_CHANGE;
            ev.u.change.op = (hamok_raft_change_op)(byte(&x) % 4);
            ev.u.change.id = hamok__id_from_u64(byte(&x) % (N + 2) + 1u);
            ev.u.change.endpoint = "fuzz://x";
            step(&w, k, &ev, 0);
            break;
        default: /* persisted report out of thin air */
            ev.type = HAMOK_RAFT_EV_PERSISTED;
            ev.u.persisted.index = byte(&x);
            ev.u.persisted.term = byte(&x);
            step(&w, k, &ev, 0);
            break;
        }
    }
    for (int k = 0; k < QMAX; k++) {
        hamok__buf_free(&w.q[k].bytes);
    }
    hamok__buf_free(&w.enc);
    for (int i = 0; i < N; i++) {
        hamok__raft_destroy(&w.r[i]);
    }
    return 0;
}
