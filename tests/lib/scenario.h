/* Scripted scenarios shared by tests/sim/test_scenarios.c (production core:
 * must pass) and tests/sim/test_teeth.c (fault-injection core: the checker
 * must catch the injected bug). */
#ifndef HAMOK_TESTS_SCENARIO_H
#define HAMOK_TESTS_SCENARIO_H

#include <stdbool.h>
#include <stdint.h>

typedef struct hamok_scenario_result {
    bool ok;               /* ran as scripted, no violation */
    const char *invariant; /* the checker's first violation, NULL if none */
    char error[1800];      /* why not ok: violation report or broken expectation */
    /* Figure 8 details. */
    uint64_t x_index; /* the old-term entry X */
    uint64_t x_term;
    uint64_t final_term_at_x;     /* term of the committed entry at x_index at the end */
    uint64_t first_commit_over_x; /* S1's commit index when it first covered X (0: never) */
    uint64_t term_at_first_commit;
} hamok_scenario_result;

/* The Raft paper's Figure 8 (§5.4.2), driven explicitly on 5 nodes with one
 * entry per AppendEntries: an entry X of an old term reaches a majority
 * under a newer leader whose own no-op does not, and must not count as
 * committed. overwrite: the newer leader dies and a leader holding a
 * conflicting entry replaces X (X was never committed). Otherwise the no-op
 * gets through and X commits together with it. Ends with the heal phase and
 * the final checks. Expectations that fail are reported, but the script
 * goes on so that the checker sees what follows. */
bool hamok_scenario_figure8(uint64_t seed, bool overwrite, hamok_scenario_result *r);

#endif
