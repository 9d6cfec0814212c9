#include "scenario.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define T_EL 1000u

enum { S1 = 0, S2 = 1, S3 = 2, S4 = 3, S5 = 4 };

typedef struct fig8 {
    hamok_sim *s;
    hamok_scenario_result *r;
    bool broken; /* an expectation failed (the first one is reported) */
    /* Message filter. */
    int from;                 /* -1: none */
    bool drop_all_append;     /* every APPEND_ENTRIES from `from` */
    uint64_t drop_entry_term; /* APPEND_ENTRIES from `from` carrying this term */
    /* Commit watch on S1. */
    uint64_t watch_index;
} fig8;

static void expect_fail(fig8 *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect_fail(fig8 *f, const char *fmt, ...)
{
    if (f->broken || hamok_sim_failed(f->s)) {
        return;
    }
    f->broken = true;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(f->r->error, sizeof f->r->error,
                     "figure 8 (seed %" PRIu64 "): ", hamok_sim_seed(f->s));
    if (n > 0 && (size_t)n < sizeof f->r->error) {
        vsnprintf(f->r->error + n, sizeof f->r->error - (size_t)n, fmt, ap);
    }
    va_end(ap);
}

#define EXPECT(f, cond)                             \
    do {                                            \
        if (!(cond)) {                              \
            expect_fail((f), "expected %s", #cond); \
        }                                           \
    } while (0)

static bool filter_fn(void *ud, int from, int to, const hamok_msg *m)
{
    (void)to;
    const fig8 *f = ud;
    if (f->from < 0 || from != f->from || m->type != HAMOK_MSG_APPEND_ENTRIES) {
        return true;
    }
    if (f->drop_all_append) {
        return false;
    }
    for (size_t k = 0; k < m->u.append.n_entries; k++) {
        if (m->u.append.entries[k].term == f->drop_entry_term) {
            return false;
        }
    }
    return true;
}

static void on_commit(hamok_sim *s, void *ud, int node, hamok_raft_role role, uint64_t term,
                      uint64_t commit)
{
    (void)role;
    (void)term;
    fig8 *f = ud;
    if (node != S1 || f->watch_index == 0 || f->r->first_commit_over_x != 0 ||
        commit < f->watch_index) {
        return;
    }
    f->r->first_commit_over_x = commit;
    hamok__raft_term_at(hamok_sim_core(s, node), commit, &f->r->term_at_first_commit);
}

typedef struct node_arg {
    int node;
    uint64_t value;
} node_arg;

static bool pred_is_leader(hamok_sim *s, void *ud)
{
    const node_arg *a = ud;
    return hamok_sim_is_live(s, a->node) && hamok_sim_role(s, a->node) == HAMOK_RAFT_LEADER;
}

static bool pred_disk_len(hamok_sim *s, void *ud)
{
    const node_arg *a = ud;
    return hamok_sim_disk_len(s, a->node) >= a->value;
}

/* Hard step: false ends the script. */
static bool wait_for(fig8 *f, hamok_sim_pred p, int node, uint64_t value, uint64_t max_ms,
                     const char *what)
{
    node_arg a = {node, value};
    if (hamok_sim_run_until_pred(f->s, p, &a, max_ms)) {
        return true;
    }
    expect_fail(f, "timed out after %" PRIu64 " ms waiting for %s", max_ms, what);
    return false;
}

static uint64_t commit_of(hamok_sim *s, int node)
{
    return hamok__raft_commit_index(hamok_sim_core(s, node));
}

static uint64_t term_at(hamok_sim *s, int node, uint64_t index)
{
    uint64_t t = 0;
    hamok__raft_term_at(hamok_sim_core(s, node), index, &t);
    return t;
}

static bool script(fig8 *f, bool overwrite)
{
    hamok_sim *s = f->s;
    const unsigned all = 0x1f;
    uint64_t t = 0;

    /* S1 leads: only the center of a star can gather a majority. */
    hamok_sim_star(s, S1, all & ~(1u << S1));
    if (!wait_for(f, pred_is_leader, S1, 0, 10 * T_EL, "S1 to lead")) {
        return false;
    }
    hamok_sim_heal(s);
    uint64_t base = 0;
    if (hamok_sim_propose(s, S1, 1, &base, &t) != HAMOK_OK ||
        !hamok_sim_wait_applied(s, base, t, 2 * T_EL)) {
        expect_fail(f, "a first entry did not commit");
        return false;
    }

    /* (a) S1 appends X in term A; it reaches S2 only. */
    hamok_sim_partition(s, (1u << S1) | (1u << S2));
    uint64_t term_a = 0, i = 0;
    if (hamok_sim_propose(s, S1, 1, &i, &term_a) != HAMOK_OK) {
        expect_fail(f, "S1 refused X");
        return false;
    }
    f->r->x_index = i;
    f->r->x_term = term_a;
    if (!wait_for(f, pred_disk_len, S2, i, T_EL / 2, "X on S2's disk") ||
        !wait_for(f, pred_disk_len, S1, i, T_EL / 2, "X on S1's disk")) {
        return false;
    }
    EXPECT(f, commit_of(s, S1) < i);
    hamok_sim_crash(s, S1);

    /* (b) S5 leads term B with S3 and S4; its no-op at index i reaches
     * nobody. */
    hamok_sim_star(s, S5, (1u << S3) | (1u << S4));
    f->from = S5;
    f->drop_all_append = true;
    if (!wait_for(f, pred_is_leader, S5, 0, 10 * T_EL, "S5 to lead")) {
        return false;
    }
    uint64_t term_b = hamok_sim_term(s, S5);
    EXPECT(f, term_b > term_a);
    EXPECT(f, hamok__raft_last_index(hamok_sim_core(s, S5)) == i);
    EXPECT(f, term_at(s, S5, i) == term_b);
    if (!wait_for(f, pred_disk_len, S5, i, T_EL / 2, "S5's entry on its disk")) {
        return false;
    }
    hamok_sim_crash(s, S5);
    f->from = -1;
    f->drop_all_append = false;

    /* (c) S1 back, leads term C with S2 and S3 (S4 cut off): X goes to S3,
     * S1's own no-op goes nowhere. */
    hamok_sim_restart(s, S1);
    hamok_sim_star(s, S1, (1u << S2) | (1u << S3));
    if (!wait_for(f, pred_is_leader, S1, 0, 10 * T_EL, "S1 to lead again")) {
        return false;
    }
    uint64_t term_c = hamok_sim_term(s, S1);
    EXPECT(f, term_c > term_b);
    f->from = S1;
    f->drop_entry_term = term_c;
    f->watch_index = i;
    if (!wait_for(f, pred_disk_len, S3, i, 2 * T_EL, "X on S3's disk")) {
        return false;
    }
    EXPECT(f, term_at(s, S3, i) == term_a);
    /* X is on S1, S2, S3 — a majority — and must still not be committed. */
    hamok_sim_run_for(s, T_EL / 2);
    EXPECT(f, commit_of(s, S1) < i);
    EXPECT(f, f->r->first_commit_over_x == 0);

    if (overwrite) {
        /* (d) S1 dies; S5 leads term D with S2, S3, S4 and replaces X. */
        hamok_sim_crash(s, S1);
        f->from = -1;
        hamok_sim_restart(s, S5);
        hamok_sim_star(s, S5, (1u << S2) | (1u << S3) | (1u << S4));
        if (!wait_for(f, pred_is_leader, S5, 0, 10 * T_EL, "S5 to lead again")) {
            return false;
        }
        EXPECT(f, hamok_sim_term(s, S5) > term_c);
        uint64_t idx = 0;
        if (hamok_sim_propose(s, S5, 1, &idx, &t) == HAMOK_OK) {
            hamok_sim_heal(s);
            hamok_sim_wait_applied(s, idx, t, 3 * T_EL);
        }
        hamok_sim_restart(s, S1);
    } else {
        /* (d') S1's no-op gets through: X commits, and only with it. */
        f->from = -1;
        if (!wait_for(f, pred_disk_len, S3, i + 1, 2 * T_EL, "S1's no-op on S3's disk")) {
            return false;
        }
        hamok_sim_run_for(s, T_EL / 2);
        EXPECT(f, f->r->first_commit_over_x >= i + 1);
        EXPECT(f, f->r->term_at_first_commit == term_c);
        hamok_sim_restart(s, S5);
    }
    return true;
}

bool hamok_scenario_figure8(uint64_t seed, bool overwrite, hamok_scenario_result *r)
{
    memset(r, 0, sizeof *r);
    hamok_sim_config cfg;
    hamok_sim_config_default(&cfg, seed, 5);
    cfg.election_timeout_ms = T_EL;
    cfg.max_batch_entries = 1; /* X and the no-op travel separately */
    fig8 f;
    memset(&f, 0, sizeof f);
    f.r = r;
    f.from = -1;
    f.s = hamok_sim_new(&cfg);
    if (f.s == NULL) {
        snprintf(r->error, sizeof r->error, "cannot create the simulator");
        return false;
    }
    hamok_sim_set_filter(f.s, filter_fn, &f);
    hamok_sim_on_commit(f.s, on_commit, &f);
    bool ran = !hamok_sim_failed(f.s) && script(&f, overwrite);
    hamok_sim_on_commit(f.s, NULL, NULL);
    if (ran && !hamok_sim_failed(f.s)) {
        hamok_sim_check_liveness(f.s);
    }
    if (!hamok_sim_failed(f.s) && r->x_index != 0) {
        uint64_t tx = 0;
        if (hamok_chk_committed_at(hamok_sim_checker(f.s), r->x_index, &tx, NULL)) {
            r->final_term_at_x = tx;
        }
        if (overwrite) {
            EXPECT(&f, tx != r->x_term); /* the conflicting entry won; X never committed */
        } else {
            EXPECT(&f, tx == r->x_term);
        }
    }
    if (hamok_sim_failed(f.s)) {
        r->invariant = hamok_sim_violation(f.s)->invariant;
        snprintf(r->error, sizeof r->error, "figure 8 (%s): %s", overwrite ? "overwrite" : "commit",
                 hamok_sim_error(f.s));
    }
    r->ok = !hamok_sim_failed(f.s) && !f.broken;
    hamok_sim_destroy(&f.s);
    return r->ok;
}
