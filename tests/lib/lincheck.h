/* History checkers for the collections simulation (tests/lib/collsim.c) and
 * for hand-written histories (tests/sim/test_lincheck.c).
 *
 * 1. Linearizability of registers (hamok_lin_check). A history is a set of
 *    operations, each on one key, with an invocation stamp and — when the
 *    client learned its outcome — a response stamp and an output. Stamps
 *    are a global order (distinct, call < ret). Keys are independent
 *    (P-compositionality): each key's sub-history is checked alone against a
 *    register model whose state is an int64, 0 meaning "absent". An
 *    operation whose outcome is unknown (timed out, its process crashed) may
 *    have taken effect at any point after its invocation, or never (Knossos'
 *    "info" operations): it has no response and any output.
 *
 *    The search is Wing & Gong's with Lowe's memoization, as Porcupine does
 *    it: walk the events in stamp order, linearize a pending call whose
 *    step the model accepts, backtrack at a response whose call could not be
 *    linearized in time; (set of linearized operations, state) pairs already
 *    explored are not explored again. NP-complete in general; the histories
 *    of the simulation keep every key small. A search that exceeds its step
 *    budget is reported (never a silent pass).
 *
 * 2. A FIFO queue with unique items (hamok_qchk): pushes and pops with
 *    outcomes (ok / failed: no effect / unknown), then the final contents.
 *    Every item consumed (popped by a known pop or still queued) at most
 *    once, none that was not pushed (nor whose push failed, nor before its
 *    push was invoked), every acknowledged push consumed unless pops of
 *    unknown outcome could have taken it, and FIFO in real time: an item
 *    whose push completed before another's was invoked leaves the queue
 *    first. */
#ifndef HAMOK_TESTS_LINCHECK_H
#define HAMOK_TESTS_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Register operations: state s (0 = absent), value v, expected e. */
typedef enum hamok_lin_kind {
    HAMOK_LIN_READ = 1,      /* out = s */
    HAMOK_LIN_SET = 2,       /* s := v; out = old s */
    HAMOK_LIN_CAS = 3,       /* if s == e and e != 0: s := v, out = 1; else out = 0 */
    HAMOK_LIN_INSERT = 4,    /* if s == 0: s := v; out = old s */
    HAMOK_LIN_DELETE = 5,    /* s := 0; out = 1 if s was present, else 0 */
    HAMOK_LIN_REMOVE = 6,    /* s := 0; out = old s */
    HAMOK_LIN_REMOVE_IF = 7, /* if s == e and e != 0: s := 0, out = 1; else out = 0 */
    HAMOK_LIN_ADD = 8,       /* if s == 0: s := v, out = 1; else out = 0 */
    HAMOK_LIN_UPDATE = 9,    /* if s != 0: s := v, out = 1; else out = 0 */
    HAMOK_LIN_ERASE = 10,    /* s := 0, output not checked (an effect no client asked for) */
} hamok_lin_kind;

typedef struct hamok_lin_op {
    uint64_t key;
    uint8_t kind; /* hamok_lin_kind */
    bool known;   /* the client learned the output; false: unknown outcome */
    int64_t value;
    int64_t expected;
    int64_t out;
    uint64_t call;
    uint64_t ret; /* ignored unless known */
    uint64_t id;  /* the caller's name for it (reports) */
} hamok_lin_op;

typedef struct hamok_lin_report {
    bool ok;
    bool budget;    /* a key's search gave up (counts as a failure) */
    uint64_t key;   /* the first failing key */
    size_t key_ops; /* operations of that key */
    size_t best;    /* most operations of that key linearized at once */
    uint64_t stuck; /* id of an operation whose response came before it could be linearized */
    size_t keys;    /* keys checked */
    uint64_t steps; /* search steps, all keys */
} hamok_lin_report;

/* Check a history (ops in any order). budget: search steps per key (0 =
 * 10,000,000). False when some key is not linearizable or its search ran
 * out of budget; out of memory also reports false (budget set). */
bool hamok_lin_check(const hamok_lin_op *ops, size_t n, uint64_t budget, hamok_lin_report *r);

/* The model's step: the new state, and whether `out` is what the operation
 * returns from state s (always true for an unknown output). */
bool hamok_lin_step(const hamok_lin_op *op, int64_t s, int64_t *next);

/* "SET(v=3)->1" etc. */
void hamok_lin_format(const hamok_lin_op *op, char *buf, size_t len);

/* ---- queue ----------------------------------------------------------------- */

typedef enum hamok_q_outcome {
    HAMOK_Q_OK = 0,      /* completed; a pop's items are known */
    HAMOK_Q_FAILED = 1,  /* certainly no effect */
    HAMOK_Q_UNKNOWN = 2, /* maybe; a pop's items unknown (at most `max`) */
} hamok_q_outcome;

typedef struct hamok_qchk hamok_qchk;

hamok_qchk *hamok_qchk_new(void);
void hamok_qchk_destroy(hamok_qchk **q);
/* Items are unique non-zero ids, pushed by one push each; `ret` is ignored
 * unless the outcome is OK. False on out of memory. */
bool hamok_qchk_push(hamok_qchk *q, uint64_t id, const uint64_t *items, size_t n, uint64_t call,
                     uint64_t ret, hamok_q_outcome outcome);
bool hamok_qchk_pop(hamok_qchk *q, uint64_t id, const uint64_t *items, size_t n, uint32_t max,
                    uint64_t call, uint64_t ret, hamok_q_outcome outcome);
/* The queue's contents at the end, head first. */
bool hamok_qchk_final(hamok_qchk *q, const uint64_t *items, size_t n);

typedef struct hamok_q_report {
    bool ok;
    const char *invariant; /* queue-duplicate, queue-phantom, queue-lost, queue-fifo, queue-input */
    char detail[300];
    size_t pushed, acked, popped, left, lost, unknown_pops;
} hamok_q_report;
bool hamok_qchk_check(hamok_qchk *q, hamok_q_report *r);

#endif
