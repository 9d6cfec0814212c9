#include "chaos.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/prng.h"

/* Nemesis actions. */
enum {
    A_HEAL = 0,
    A_PARTITION, /* random symmetric split */
    A_ISOLATE_LEADER,
    A_ISOLATE_NODE,
    A_ONE_WAY, /* a few directed links cut */
    A_STAR,    /* bridge: one node sees everybody, the others only it */
    A_PAUSE,
    A_CRASH, /* durable mode: restart later; memory mode: wipe, replace */
    A_CRASH_LEADER,
    A_LOSSY, /* change loss / duplication on some links */
    A_CLASSIC_COUNT_,
    /* Lifecycle. */
    A_TRANSFER = A_CLASSIC_COUNT_, /* leadership transfer to a voter or the best one */
    A_ADD,                         /* a fresh node joins (learner, auto-promoted) */
    A_REMOVE,                      /* a random member leaves */
    A_REMOVE_LEADER,
    A_REMOVE_PARTITIONED, /* cut a member off, then remove it */
    A_REPLACE,            /* add a fresh node and remove a member */
    A_COUNT_
};

static const char *action_name[A_COUNT_] = {
    "heal",   "partition",     "isolate-leader",     "isolate", "one-way",  "star",
    "pause",  "crash",         "crash-leader",       "lossy",   "transfer", "add",
    "remove", "remove-leader", "remove-partitioned", "replace",
};

/* Operator goals: membership changes it drives to commitment, one at a time. */
enum { G_ADD = 1, G_REMOVE = 2 };
#define MAX_GOALS   8
#define MAX_MEMBERS 7

typedef struct goal {
    int op;
    int node;
} goal;

typedef struct chaos {
    hamok_sim *sim;
    hamok_prng rnd; /* nemesis and workload decisions */
    int n;          /* bootstrap nodes */
    uint32_t t_el;
    /* Mix. */
    double drop, dup;
    uint32_t dmin, dmax;
    uint32_t nemesis_mean_ms;
    uint32_t propose_mean_ms;
    uint32_t read_mean_ms; /* 0: no reads */
    uint32_t weights[A_COUNT_];
    uint32_t weight_sum;
    bool memory_mode;
    bool no_loss_mid_change;  /* memory mode: no wipe during a change (FINDINGS.md obs. 10) */
    uint64_t retire_after_ms; /* removed nodes are shut down after 0..this; 0 = never */
    /* Workload. */
    const hamok_chaos_workload *wl; /* NULL: proposals of our own */
    uint32_t n_ops;
    uint32_t ops;
    bool done;
    uint64_t max_fault_ms;
    uint64_t fault_ms; /* planned length of the fault phase */
    /* Pending resume/restart of a node (generation guards stale events). */
    uint32_t gen[HAMOK_SIM_MAX_NODES];
    uint32_t net_gen;
    /* Leader hunting: a freshly elected leader is crashed or cut off soon
     * after its election, with this probability (per election). */
    double hunt_prob;
    uint32_t hunt_delay_ms;
    bool hunting; /* toggled on and off in windows of 5..40 election timeouts */
    /* Hunt at election (0), at the new leader's first commit (1), or both (2). */
    int hunt_style;
    int fresh_leader; /* elected, first commit not yet seen; -1 none */
    uint64_t fresh_term;
    uint64_t fresh_since;
    bool calm; /* past max_fault_ms: faults stopped, clients continue */
    /* Operator. */
    goal goals[MAX_GOALS];
    int n_goals;
    uint64_t retire_due[HAMOK_SIM_MAX_NODES]; /* 0: none */
    uint32_t actions[A_COUNT_];               /* taken, per kind (statistics) */
} chaos;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t below(chaos *c, uint64_t n)
{
    return hamok__prng_below(&c->rnd, n);
}

static uint64_t around(chaos *c, uint64_t mean)
{
    return 1 + below(c, 2 * mean + 1);
}

static int popcount64(uint64_t x)
{
    int k = 0;
    while (x != 0) {
        x &= x - 1;
        k++;
    }
    return k;
}

/* A random node that is not wiped or retired (-1 if none). */
static int random_node(chaos *c)
{
    int n = hamok_sim_n(c->sim);
    int cand[HAMOK_SIM_MAX_NODES];
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!hamok_sim_is_dead(c->sim, i)) {
            cand[k++] = i;
        }
    }
    return k > 0 ? cand[below(c, (uint64_t)k)] : -1;
}

/* A random node of `mask` (-1 if none). */
static int random_of(chaos *c, uint64_t mask)
{
    int k = popcount64(mask);
    if (k == 0) {
        return -1;
    }
    uint64_t pick = below(c, (uint64_t)k);
    for (int i = 0; i < 64; i++) {
        if ((mask >> i) & 1u) {
            if (pick-- == 0) {
                return i;
            }
        }
    }
    return -1;
}

static uint64_t alive_mask(chaos *c)
{
    uint64_t m = 0;
    for (int i = 0; i < hamok_sim_n(c->sim); i++) {
        if (!hamok_sim_is_dead(c->sim, i)) {
            m |= 1ULL << i;
        }
    }
    return m;
}

static void restore_link_params(chaos *c)
{
    hamok_sim_net_set(c->sim, c->drop, c->dup, c->dmin, c->dmax);
}

/* ---- scheduled recoveries --------------------------------------------- */

static void ev_heal_net(hamok_sim *s, void *ud, uint64_t gen)
{
    chaos *c = ud;
    if (c->done || c->calm || gen != c->net_gen) {
        return;
    }
    hamok_sim_heal(s);
}

static void ev_resume(hamok_sim *s, void *ud, uint64_t arg)
{
    chaos *c = ud;
    int node = (int)(arg & 0xff);
    if (c->done || c->calm || (uint32_t)(arg >> 8) != c->gen[node]) {
        return;
    }
    hamok_sim_resume(s, node);
}

static void ev_restart(hamok_sim *s, void *ud, uint64_t arg)
{
    chaos *c = ud;
    int node = (int)(arg & 0xff);
    if (c->done || c->calm || (uint32_t)(arg >> 8) != c->gen[node]) {
        return;
    }
    hamok_sim_restart(s, node);
}

static void schedule_net_heal(chaos *c, uint64_t after)
{
    c->net_gen++;
    hamok_sim_schedule(c->sim, hamok_sim_now(c->sim) + after, ev_heal_net, c, c->net_gen);
}

/* ---- operator ------------------------------------------------------------- */

static void goal_push(chaos *c, int op, int node)
{
    if (c->n_goals < MAX_GOALS && node >= 0) {
        c->goals[c->n_goals++] = (goal){op, node};
    }
}

static void goal_pop(chaos *c)
{
    memmove(c->goals, c->goals + 1, (size_t)(c->n_goals - 1) * sizeof *c->goals);
    c->n_goals--;
}

/* A fresh node with this seed's link parameters; -1 when out of slots. */
static int fresh_node(chaos *c)
{
    int j = hamok_sim_add_node(c->sim);
    if (j < 0) {
        return -1;
    }
    for (int i = 0; i < hamok_sim_n(c->sim); i++) {
        hamok_sim_link_set(c->sim, i, j, c->drop, c->dup, c->dmin, c->dmax);
        hamok_sim_link_set(c->sim, j, i, c->drop, c->dup, c->dmin, c->dmax);
    }
    return j;
}

/* A membership change is in progress: some live node's configuration in
 * force comes from a CONFIG entry that is not committed. (A node that merely
 * lags behind a committed change does not count.) */
static bool change_in_progress(chaos *c)
{
    for (int i = 0; i < hamok_sim_n(c->sim); i++) {
        if (!hamok_sim_is_dead(c->sim, i) &&
            hamok_chk_view_config_pending(hamok_sim_checker(c->sim), i)) {
            return true;
        }
    }
    return false;
}

/* The operator (or a discovery service): drive the first goal into the
 * committed configuration through whoever leads; BUSY, NOT_LEADER and lost
 * entries are retried at the next tick. A goal is done once committed. */
static void ev_operator(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done) {
        return;
    }
    uint64_t now = hamok_sim_now(s);
    for (int i = 0; i < hamok_sim_n(s); i++) {
        if (c->retire_due[i] != 0 && now >= c->retire_due[i]) {
            c->retire_due[i] = 0;
            hamok_sim_retire(s, i); /* decommissioned after its removal */
        }
    }
    while (c->n_goals > 0) {
        goal g = c->goals[0];
        uint64_t committed = hamok_sim_committed_members(s, NULL);
        bool member = (committed >> g.node) & 1u;
        if (g.op == G_ADD && (member || hamok_sim_is_dead(s, g.node))) {
            goal_pop(c);
            continue;
        }
        if (g.op == G_REMOVE && !member) {
            goal_pop(c);
            if (c->retire_after_ms > 0 && !hamok_sim_is_dead(s, g.node)) {
                c->retire_due[g.node] = now + 1 + below(c, c->retire_after_ms);
            }
            continue;
        }
        int l = hamok_sim_leader(s);
        if (l < 0) {
            break;
        }
        uint64_t voters = 0;
        uint64_t members = hamok_sim_config_members(s, l, &voters);
        bool in_config = ((members >> g.node) & 1u) != 0;
        bool pending = g.op == G_ADD ? in_config : !in_config;
        if (pending) {
            break; /* in the leader's log, not committed yet */
        }
        /* Keep at least three voters (a dead one may go once a fourth
         * caught up and was promoted). */
        if (g.op == G_REMOVE && ((voters >> g.node) & 1u) && popcount64(voters) <= 3) {
            break;
        }
        hamok_sim_change(s, l, g.op == G_ADD ? HAMOK_RAFT_ADD_LEARNER : HAMOK_RAFT_REMOVE, g.node,
                         NULL);
        break;
    }
    hamok_sim_schedule(s, now + 50 + below(c, 200), ev_operator, c, 0);
}

/* ---- nemesis ------------------------------------------------------------ */

static int pick_action(chaos *c)
{
    uint64_t r = below(c, c->weight_sum);
    for (int a = 0; a < A_COUNT_; a++) {
        if (r < c->weights[a]) {
            return a;
        }
        r -= c->weights[a];
    }
    return A_HEAL;
}

/* The node holding the longest log (most likely to hold uncommitted
 * entries), among the live ones. */
static int longest_log_node(chaos *c)
{
    int best = -1;
    uint64_t best_len = 0;
    for (int i = 0; i < hamok_sim_n(c->sim); i++) {
        if (!hamok_sim_is_up(c->sim, i)) {
            continue;
        }
        uint64_t len = hamok__raft_last_index(hamok_sim_core(c->sim, i));
        if (best < 0 || len > best_len) {
            best = i;
            best_len = len;
        }
    }
    return best;
}

/* Memory mode: wipe `node` if no committed entry can be lost with it and no
 * other wiped node is still a voter; the operator replaces it by a fresh
 * peer. False if it was not safe (the caller does something else). */
static bool try_wipe(chaos *c, int node)
{
    hamok_sim *s = c->sim;
    uint64_t voters = 0;
    hamok_sim_committed_members(s, &voters);
    for (int i = 0; i < hamok_sim_n(s); i++) {
        if (((voters >> i) & 1u) && hamok_sim_is_dead(s, i)) {
            return false; /* the previous replacement is not done */
        }
    }
    if (hamok_sim_n(s) >= HAMOK_SIM_MAX_NODES - 1 ||
        !hamok_chk_wipe_safe(hamok_sim_checker(s), node, alive_mask(c))) {
        return false;
    }
    if (c->no_loss_mid_change && change_in_progress(c)) {
        /* FINDINGS.md observation 10: a voter lost for good in the middle of
         * a single-server change can leave no electable node; an operator
         * would have to force a reconfiguration. */
        return false;
    }
    bool was_member = hamok_sim_is_member(s, node);
    hamok_sim_wipe(s, node);
    c->retire_due[node] = 0;
    if (was_member) {
        int j = fresh_node(c);
        /* With three voters, add first: the fourth is promoted once caught
         * up, then the dead one goes. Otherwise either order. */
        if (popcount64(voters) <= 3 || below(c, 2) == 0) {
            goal_push(c, G_ADD, j);
            goal_push(c, G_REMOVE, node);
        } else {
            goal_push(c, G_REMOVE, node);
            goal_push(c, G_ADD, j);
        }
    }
    return true;
}

/* Memory mode: retry a wipe that was not safe yet (a follower still catching
 * up) for a while, then give up and pause the node instead. */
static void ev_wipe_retry(hamok_sim *s, void *ud, uint64_t arg)
{
    chaos *c = ud;
    int node = (int)(arg & 0xff);
    uint64_t left = arg >> 8;
    if (c->done || c->calm || !hamok_sim_is_up(s, node)) {
        return;
    }
    if (try_wipe(c, node)) {
        return;
    }
    if (left > 0) {
        hamok_sim_schedule(s, hamok_sim_now(s) + 20 + below(c, 200), ev_wipe_retry, c,
                           ((left - 1) << 8) | (uint64_t)node);
        return;
    }
    if (hamok_sim_is_live(s, node)) {
        hamok_sim_pause(s, node);
        c->gen[node]++;
        hamok_sim_schedule(s, hamok_sim_now(s) + below(c, 3 * (uint64_t)c->t_el + 1), ev_resume, c,
                           ((uint64_t)c->gen[node] << 8) | (uint64_t)node);
    }
}

static void crash_node(chaos *c, int node, uint64_t restart_within)
{
    hamok_sim *s = c->sim;
    if (node < 0 || !hamok_sim_is_up(s, node)) {
        return;
    }
    if (c->memory_mode) {
        if (!try_wipe(c, node)) {
            hamok_sim_schedule(s, hamok_sim_now(s) + 20 + below(c, 200), ev_wipe_retry, c,
                               ((uint64_t)10 << 8) | (uint64_t)node);
        }
        return;
    }
    hamok_sim_crash(s, node);
    c->gen[node]++;
    hamok_sim_schedule(s, hamok_sim_now(s) + below(c, restart_within + 1), ev_restart, c,
                       ((uint64_t)c->gen[node] << 8) | (uint64_t)node);
}

static void churn(chaos *c, int action)
{
    hamok_sim *s = c->sim;
    if (c->n_goals > 0) {
        return; /* one operation at a time */
    }
    uint64_t voters = 0;
    uint64_t members = hamok_sim_committed_members(s, &voters);
    int n_voters = popcount64(voters);
    int l = hamok_sim_leader(s);
    bool room = popcount64(members) < MAX_MEMBERS && hamok_sim_n(s) < HAMOK_SIM_MAX_NODES - 2;
    /* Removing a voter needs four: keep at least three. */
    bool can_remove_voter = n_voters >= 4;
    switch (action) {
    case A_ADD:
        if (room) {
            goal_push(c, G_ADD, fresh_node(c));
        }
        break;
    case A_REMOVE: {
        uint64_t cand = can_remove_voter ? members : members & ~voters;
        int x = random_of(c, cand);
        if (x >= 0) {
            goal_push(c, G_REMOVE, x);
        } else if (room) {
            goal_push(c, G_ADD, fresh_node(c));
        }
        break;
    }
    case A_REMOVE_LEADER:
        if (l >= 0 && ((members >> l) & 1u) && (can_remove_voter || !((voters >> l) & 1u))) {
            goal_push(c, G_REMOVE, l);
        } else if (room) {
            goal_push(c, G_ADD, fresh_node(c));
        }
        break;
    case A_REMOVE_PARTITIONED: {
        uint64_t cand = (can_remove_voter ? members : members & ~voters) & alive_mask(c);
        if (l >= 0) {
            cand &= ~(1ULL << l);
        }
        int x = random_of(c, cand);
        if (x >= 0) {
            hamok_sim_isolate(s, x);
            schedule_net_heal(c, 500 + below(c, 4 * (uint64_t)c->t_el));
            goal_push(c, G_REMOVE, x);
        } else if (room) {
            goal_push(c, G_ADD, fresh_node(c));
        }
        break;
    }
    case A_REPLACE: {
        int x = random_of(c, members);
        if (x >= 0 && room) {
            int j = fresh_node(c);
            if (j >= 0) {
                goal_push(c, G_ADD, j);
                goal_push(c, G_REMOVE, x);
            }
        }
        break;
    }
    default: break;
    }
}

static void ev_nemesis(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done || c->calm) {
        return;
    }
    uint64_t now = hamok_sim_now(s);
    uint64_t t = c->t_el;
    int action = pick_action(c);
    c->actions[action]++;
    uint64_t alive = alive_mask(c);
    switch (action) {
    case A_HEAL:
        hamok_sim_heal(s);
        restore_link_params(c);
        break;
    case A_PARTITION: {
        uint64_t mask = 0;
        for (int i = 0; i < hamok_sim_n(s); i++) {
            if (((alive >> i) & 1u) && below(c, 2)) {
                mask |= 1ULL << i;
            }
        }
        if (mask != 0 && mask != alive) {
            hamok_sim_partition(s, mask);
            schedule_net_heal(c, 100 + below(c, 4 * t));
        }
        break;
    }
    case A_ISOLATE_LEADER: {
        int l = hamok_sim_leader(s);
        if (l < 0) {
            l = random_node(c);
        }
        hamok_sim_isolate(s, l);
        /* Often short: the leader keeps taking proposals it cannot commit. */
        schedule_net_heal(c, below(c, 2) ? 100 + below(c, t) : 100 + below(c, 4 * t));
        break;
    }
    case A_ISOLATE_NODE: {
        int node = random_node(c);
        if (node >= 0) {
            hamok_sim_isolate(s, node);
            schedule_net_heal(c, 100 + below(c, 4 * t));
        }
        break;
    }
    case A_ONE_WAY: {
        int k = 1 + (int)below(c, (uint64_t)c->n);
        for (int i = 0; i < k; i++) {
            int a = random_node(c);
            int b = random_node(c);
            if (a != b && a >= 0 && b >= 0) {
                hamok_sim_link_enable(s, a, b, false);
            }
        }
        schedule_net_heal(c, 100 + below(c, 4 * t));
        break;
    }
    case A_STAR: {
        int center = random_node(c);
        if (center < 0) {
            break;
        }
        hamok_sim_star(s, center, alive & ~(1ULL << center));
        schedule_net_heal(c, 100 + below(c, 4 * t));
        break;
    }
    case A_PAUSE: {
        int node = below(c, 2) ? random_node(c) : hamok_sim_leader(s);
        if (node < 0) {
            node = random_node(c);
        }
        if (node >= 0 && hamok_sim_is_live(s, node)) {
            hamok_sim_pause(s, node);
            c->gen[node]++;
            hamok_sim_schedule(s, now + below(c, 5 * t + 1), ev_resume, c,
                               ((uint64_t)c->gen[node] << 8) | (uint64_t)node);
        }
        break;
    }
    case A_CRASH:
    case A_CRASH_LEADER: {
        int node;
        if (action == A_CRASH_LEADER) {
            node = hamok_sim_leader(s);
        } else {
            node = below(c, 2) ? longest_log_node(c) : random_node(c);
        }
        if (node < 0) {
            node = random_node(c);
        }
        crash_node(c, node, 3 * t);
        break;
    }
    case A_LOSSY: {
        double drop = hamok__prng_unit(&c->rnd) * 0.3;
        double dup = hamok__prng_unit(&c->rnd) * 0.1;
        int k = 1 + (int)below(c, (uint64_t)(c->n * c->n));
        for (int i = 0; i < k; i++) {
            int a = random_node(c);
            int b = random_node(c);
            if (a < 0 || b < 0) {
                continue;
            }
            hamok_sim_link_set(s, a, b, drop, dup, c->dmin,
                               c->dmin + (uint32_t)below(c, c->dmax - c->dmin + 1));
        }
        break;
    }
    case A_TRANSFER: {
        int l = hamok_sim_leader(s);
        if (l >= 0) {
            uint64_t voters = 0;
            hamok_sim_config_members(s, l, &voters);
            int target = below(c, 3) == 0 ? -1 : random_of(c, voters & ~(1ULL << l));
            hamok_sim_transfer(s, l, target);
        }
        break;
    }
    case A_ADD:
    case A_REMOVE:
    case A_REMOVE_LEADER:
    case A_REMOVE_PARTITIONED:
    case A_REPLACE: churn(c, action); break;
    default: break;
    }
    hamok_sim_schedule(s, now + around(c, c->nemesis_mean_ms), ev_nemesis, c, 0);
}

/* ---- leader hunting ----------------------------------------------------- */

static void ev_hunt(hamok_sim *s, void *ud, uint64_t arg)
{
    chaos *c = ud;
    int node = (int)(arg & 0xff);
    uint64_t term = arg >> 8;
    if (c->done || c->calm || !hamok_sim_is_live(s, node) ||
        hamok_sim_role(s, node) != HAMOK_RAFT_LEADER || hamok_sim_term(s, node) != term) {
        return;
    }
    uint64_t how = below(c, 3);
    if (how == 0) {
        crash_node(c, node, 3 * (uint64_t)c->t_el);
    } else if (how == 1 || c->n < 5) {
        hamok_sim_isolate(s, node);
        schedule_net_heal(c, 50 + below(c, 3 * (uint64_t)c->t_el));
    } else {
        /* The leader keeps one follower: a minority that still replicates. */
        int other = random_node(c);
        if (other == node || other < 0) {
            other = (node + 1) % c->n;
        }
        hamok_sim_partition(s, (1ULL << node) | (1ULL << other));
        schedule_net_heal(c, 50 + below(c, 3 * (uint64_t)c->t_el));
    }
}

static void ev_hunt_toggle(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done || c->calm) {
        return;
    }
    c->hunting = !c->hunting;
    hamok_sim_schedule(s, hamok_sim_now(s) + (5 + below(c, 36)) * (uint64_t)c->t_el, ev_hunt_toggle,
                       c, 0);
}

static void on_role(hamok_sim *s, void *ud, int node, hamok_raft_role role, uint64_t term)
{
    chaos *c = ud;
    if (c->done || c->calm || !c->hunting || role != HAMOK_RAFT_LEADER || c->hunt_prob <= 0.0) {
        return;
    }
    c->fresh_leader = node;
    c->fresh_term = term;
    c->fresh_since = hamok_sim_now(s);
    if (c->hunt_style != 1 && hamok__prng_unit(&c->rnd) < c->hunt_prob) {
        hamok_sim_schedule(s, hamok_sim_now(s) + below(c, c->hunt_delay_ms + 1), ev_hunt, c,
                           (term << 8) | (uint64_t)node);
    }
}

/* While a new leader commits what it inherited (its first election timeout),
 * its own first entry is the least replicated: hunt it at one of those
 * commit advances. */
static void on_commit(hamok_sim *s, void *ud, int node, hamok_raft_role role, uint64_t term,
                      uint64_t commit_index)
{
    (void)commit_index;
    chaos *c = ud;
    if (c->done || c->calm || !c->hunting || role != HAMOK_RAFT_LEADER || c->hunt_style == 0 ||
        node != c->fresh_leader || term != c->fresh_term) {
        return;
    }
    if (hamok_sim_now(s) > c->fresh_since + c->t_el) {
        c->fresh_leader = -1; /* not fresh any more */
        return;
    }
    if (hamok__prng_unit(&c->rnd) < c->hunt_prob / 3) {
        c->fresh_leader = -1;
        hamok_sim_schedule(s, hamok_sim_now(s) + below(c, c->hunt_delay_ms / 4 + 1), ev_hunt, c,
                           (term << 8) | (uint64_t)node);
    }
}

/* ---- workload ----------------------------------------------------------- */

/* Every live node that believes it leads (a stale leader included); or, one
 * time in `other`, any node (to exercise NOT_LEADER and forwarding). */
static int client_target(chaos *c, uint64_t other)
{
    int cand[HAMOK_SIM_MAX_NODES];
    int nc = 0;
    for (int i = 0; i < hamok_sim_n(c->sim); i++) {
        if (hamok_sim_is_live(c->sim, i) && hamok_sim_role(c->sim, i) == HAMOK_RAFT_LEADER) {
            cand[nc++] = i;
        }
    }
    if (nc > 0 && below(c, other) != 0) {
        return cand[below(c, (uint64_t)nc)];
    }
    return random_node(c);
}

static void ev_client(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done) {
        return;
    }
    if (c->wl != NULL) {
        c->ops = c->wl->ops(c->wl->ud); /* the workload's clients propose */
    } else {
        int node = client_target(c, 20);
        size_t batch = below(c, 4) == 0 ? 2 + (size_t)below(c, 4) : 1;
        if (node >= 0 && hamok_sim_is_live(s, node)) {
            hamok_status st = hamok_sim_propose(s, node, batch, NULL, NULL);
            if (st == HAMOK_OK) {
                c->ops += (uint32_t)batch;
            }
        }
    }
    if (c->ops >= c->n_ops && hamok_sim_now(s) >= c->fault_ms) {
        c->done = true;
        return;
    }
    if (!c->calm && hamok_sim_now(s) >= c->max_fault_ms) {
        /* Too few proposals got through the faults: stop them (heal, restart,
         * resume) and let the clients reach n_ops. */
        c->calm = true;
        hamok_sim_heal_all(s);
    }
    hamok_sim_schedule(s, hamok_sim_now(s) + around(c, c->propose_mean_ms), ev_client, c, 0);
}

/* Reads on random nodes: half on nodes that believe they lead (stale leaders
 * included), half anywhere (followers forward the barrier). */
static void ev_reader(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done) {
        return;
    }
    int node = client_target(c, 2);
    if (node >= 0 && hamok_sim_is_live(s, node)) {
        hamok_sim_read(s, node, NULL);
    }
    hamok_sim_schedule(s, hamok_sim_now(s) + around(c, c->read_mean_ms), ev_reader, c, 0);
}

/* ---- run ---------------------------------------------------------------- */

void hamok_chaos_opts_default(hamok_chaos_opts *o, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->n_ops = 300;
}

static void draw_mix(chaos *c, hamok_sim_config *cfg, bool classic, char *desc, size_t desc_len)
{
    hamok_prng *p = &c->rnd;
    c->drop = hamok__prng_below(p, 5) == 0 ? 0.0 : hamok__prng_unit(p) * 0.3;
    c->dup = hamok__prng_below(p, 3) == 0 ? 0.0 : hamok__prng_unit(p) * 0.1;
    c->dmin = (uint32_t)hamok__prng_below(p, 5);
    static const uint32_t jitter[] = {5, 20, 50, 150, 400};
    c->dmax = c->dmin + jitter[hamok__prng_below(p, 5)];
    cfg->drop = c->drop;
    cfg->dup = c->dup;
    cfg->delay_min_ms = c->dmin;
    cfg->delay_max_ms = c->dmax;
    static const uint32_t disk[] = {0, 2, 10, 30, 80, 200};
    cfg->disk_delay_max_ms = disk[hamok__prng_below(p, 6)];
    cfg->clock_skew = hamok__prng_below(p, 2) == 0;
    /* Replication shape: small batches and short pipelines split what a
     * default configuration sends in one message. */
    static const uint32_t batch[] = {1, 1, 2, 3, 16, 0};
    cfg->max_batch_entries = batch[hamok__prng_below(p, 6)];
    static const uint32_t inflight[] = {1, 1, 2, 8, 0};
    cfg->max_inflight = inflight[hamok__prng_below(p, 5)];
    static const uint32_t nem[] = {250, 500, 1000, 2000};
    c->nemesis_mean_ms = nem[hamok__prng_below(p, 4)];
    /* The fault phase lasts 30..120 election timeouts and carries at least
     * n_ops proposals: spread them over it. */
    c->fault_ms = (200 + hamok__prng_below(p, 401)) * (uint64_t)cfg->election_timeout_ms;
    c->propose_mean_ms = (uint32_t)(c->fault_ms / (2 * (uint64_t)c->n_ops));
    if (c->propose_mean_ms < 5) {
        c->propose_mean_ms = 5;
    }
    /* Most seeds hunt fresh leaders. */
    c->hunt_prob = hamok__prng_below(p, 5) == 0 ? 0.0 : 0.5 + 0.5 * hamok__prng_unit(p);
    static const uint32_t hunt[] = {5, 20, 50, 100, 300, 1000};
    c->hunt_delay_ms = hunt[hamok__prng_below(p, 6)];
    c->hunt_style = (int)hamok__prng_below(p, 3);
    /* Weights: every action possible, a few emphasised per seed. */
    c->weight_sum = 0;
    for (int a = 0; a < A_CLASSIC_COUNT_; a++) {
        c->weights[a] = 1 + (uint32_t)hamok__prng_below(p, 4);
        if (hamok__prng_below(p, 4) == 0) {
            c->weights[a] += 6;
        }
        c->weight_sum += c->weights[a];
    }
    /* Leader isolation with proposals still flowing is what most unsafe
     * implementations trip on. */
    c->weights[A_ISOLATE_LEADER] += 3;
    c->weight_sum += 3;
    int n = snprintf(desc, desc_len,
                     "batch=%u inflight=%u drop=%.2f dup=%.2f delay=%u..%u disk<=%u skew=%d "
                     "faults=%" PRIu64
                     "ms nemesis~%ums propose~%ums hunt=%.2f/%ums/%d "
                     "w=[%u %u %u %u %u %u %u %u %u %u]",
                     cfg->max_batch_entries, cfg->max_inflight, c->drop, c->dup, c->dmin, c->dmax,
                     cfg->disk_delay_max_ms, cfg->clock_skew, c->fault_ms, c->nemesis_mean_ms,
                     c->propose_mean_ms, c->hunt_prob, c->hunt_delay_ms, c->hunt_style,
                     c->weights[0], c->weights[1], c->weights[2], c->weights[3], c->weights[4],
                     c->weights[5], c->weights[6], c->weights[7], c->weights[8], c->weights[9]);
    if (classic || n < 0 || (size_t)n >= desc_len) {
        return;
    }
    /* Lifecycle: snapshots always (compaction all the time), then each seed
     * draws which of memory mode, churn, transfers and reads it exercises. */
    static const uint64_t sent[] = {20, 20, 30, 50, 80, 120, 200};
    cfg->snapshot_entries = sent[hamok__prng_below(p, 7)] + hamok__prng_below(p, 10);
    cfg->snapshot_trailing = hamok__prng_below(p, 51);
    static const uint32_t chunk[] = {64, 128, 256, 512, 1024};
    cfg->chunk_bytes = chunk[hamok__prng_below(p, 5)];
    static const uint32_t sdelay[] = {0, 5, 50, 300};
    cfg->snapshot_delay_max_ms = sdelay[hamok__prng_below(p, 4)];
    static const double skip[] = {0.0, 0.0, 0.1, 0.3};
    cfg->snapshot_skip = skip[hamok__prng_below(p, 4)];
    c->memory_mode = hamok__prng_below(p, 4) == 0;
    bool churn = hamok__prng_below(p, 2) == 0;
    bool transfers = hamok__prng_below(p, 2) == 0;
    static const uint32_t rmean[] = {0, 20, 100, 400};
    c->read_mean_ms = rmean[hamok__prng_below(p, 4)];
    static const uint64_t retire[] = {0, 1, 1000, 5000};
    c->retire_after_ms = retire[hamok__prng_below(p, 4)];
    for (int a = A_CLASSIC_COUNT_; a < A_COUNT_; a++) {
        c->weights[a] = 0;
        bool on = a == A_TRANSFER ? transfers : churn;
        if (on) {
            c->weights[a] = 1 + (uint32_t)hamok__prng_below(p, 3);
            c->weight_sum += c->weights[a];
        }
    }
    snprintf(desc + n, desc_len - (size_t)n,
             " | snap=%" PRIu64 "/%" PRIu64
             " chunk=%u snapdelay<=%u skip=%.1f mode=%s reads~%ums "
             "retire<=%" PRIu64 "ms w=[%u %u %u %u %u %u]",
             cfg->snapshot_entries, cfg->snapshot_trailing, cfg->chunk_bytes,
             cfg->snapshot_delay_max_ms, cfg->snapshot_skip, c->memory_mode ? "memory" : "durable",
             c->read_mean_ms, c->retire_after_ms, c->weights[A_TRANSFER], c->weights[A_ADD],
             c->weights[A_REMOVE], c->weights[A_REMOVE_LEADER], c->weights[A_REMOVE_PARTITIONED],
             c->weights[A_REPLACE]);
}

bool hamok_chaos_run(const hamok_chaos_opts *o, hamok_chaos_result *r)
{
    memset(r, 0, sizeof *r);
    chaos *cp = calloc(1, sizeof *cp);
    if (cp == NULL) {
        r->invariant = "sim-oom";
        snprintf(r->error, sizeof r->error, "out of memory");
        return false;
    }
    chaos *c = cp;
    c->n = o->n_nodes > 0 ? o->n_nodes : ((o->seed & 1) ? 3 : 5);
    r->n_nodes = c->n;
    c->n_ops = o->n_ops ? o->n_ops : 300;
    c->max_fault_ms = o->max_fault_ms; /* 0: 3 x the drawn fault phase (below) */
    hamok_sim_config cfg;
    hamok_sim_config_default(&cfg, o->seed, c->n);
    hamok__prng_seed(&c->rnd, mix64(o->seed ^ 0x6368616f73ULL));
    cfg.trace = o->trace;
    cfg.read_mode = o->read_mode;
    c->wl = o->workload;
    if (c->wl != NULL) {
        cfg.app = c->wl->app;
    }
    const char *fe = getenv("HAMOK_SIM_FINDINGS");
    bool findings = o->findings || (fe != NULL && fe[0] != '\0' && strcmp(fe, "0") != 0);
    c->no_loss_mid_change = !findings;
    draw_mix(c, &cfg, o->classic, r->mix, sizeof r->mix);
    if (c->max_fault_ms == 0) {
        c->max_fault_ms = 3 * c->fault_ms;
    }
    c->t_el = cfg.election_timeout_ms;
    char hint[200];
    snprintf(hint, sizeof hint,
             "HAMOK_SIM_SEED=%" PRIu64 " %s (HAMOK_SIM_TRACE=1 prints the event trace)", o->seed,
             o->test_name ? o->test_name : "test_chaos");
    cfg.replay_hint = hint;

    c->sim = hamok_sim_new(&cfg);
    if (c->sim == NULL) {
        snprintf(r->error, sizeof r->error, "seed %" PRIu64 ": cannot create the simulator",
                 o->seed);
        r->invariant = "sim-oom";
        free(cp);
        return false;
    }
    hamok_sim_on_role(c->sim, on_role, c);
    hamok_sim_on_commit(c->sim, on_commit, c);
    if (c->wl != NULL) {
        hamok_chaos_info info = {.seed = o->seed,
                                 .election_timeout_ms = cfg.election_timeout_ms,
                                 .heartbeat_ms = cfg.heartbeat_ms,
                                 .fault_ms = c->fault_ms,
                                 .op_mean_ms = c->propose_mean_ms,
                                 .n_ops = c->n_ops,
                                 .memory_mode = c->memory_mode};
        if (!c->wl->start(c->sim, c->wl->ud, &info) && !hamok_sim_failed(c->sim)) {
            hamok_sim_fail(c->sim, "workload", -1, "the workload could not start");
        }
    }
    c->fresh_leader = -1;
    c->hunting = true;
    hamok_sim_schedule(c->sim, (5 + below(c, 36)) * (uint64_t)c->t_el, ev_hunt_toggle, c, 0);
    /* Quiet start, then faults and clients. */
    hamok_sim_schedule(c->sim, 2 * c->t_el, ev_nemesis, c, 0);
    hamok_sim_schedule(c->sim, c->t_el, ev_client, c, 0);
    if (!o->classic) {
        hamok_sim_schedule(c->sim, c->t_el, ev_operator, c, 0);
        if (c->read_mean_ms > 0) {
            hamok_sim_schedule(c->sim, c->t_el, ev_reader, c, 0);
        }
    }
    /* Past the fault phase, faults stop (calm); a cluster that still cannot
     * take n_ops proposals within 200 election timeouts more never will. */
    uint64_t give_up = c->max_fault_ms + 200 * (uint64_t)c->t_el;
    while (!c->done && !hamok_sim_failed(c->sim)) {
        if (!hamok_sim_step(c->sim)) {
            break;
        }
        if (hamok_sim_now(c->sim) > give_up) {
            hamok_sim_fail(c->sim, "liveness", -1,
                           "only %u of %u proposals accepted %" PRIu64
                           " ms after the faults stopped",
                           c->ops, c->n_ops, hamok_sim_now(c->sim) - c->max_fault_ms);
            break;
        }
    }
    r->ops = c->ops;
    if (c->wl == NULL) {
        if (!hamok_sim_failed(c->sim)) {
            hamok_sim_check_liveness(c->sim);
        }
    } else if (!hamok_sim_failed(c->sim) &&
               (c->wl->quiesce == NULL || (c->wl->quiesce(c->sim, c->wl->ud), true)) &&
               hamok_sim_check_recovery(c->sim)) {
        /* The clients are still running: they finish first, then every
         * member caught up, then the final checks. */
        if (!c->wl->finish(c->sim, c->wl->ud) && !hamok_sim_failed(c->sim)) {
            hamok_sim_fail(c->sim, "workload", -1, "the workload's final phase failed");
        }
        hamok_sim_check_final(c->sim);
    }
    hamok_sim_stats_get(c->sim, &r->stats);
    r->ok = !hamok_sim_failed(c->sim);
    if (!r->ok) {
        r->invariant = hamok_sim_violation(c->sim)->invariant;
        snprintf(r->error, sizeof r->error, "%s\n  fault mix: %s", hamok_sim_error(c->sim), r->mix);
    }
    size_t off = 0;
    for (int a = 0; a < A_COUNT_ && off < sizeof r->actions; a++) {
        if (c->actions[a] > 0) {
            int k = snprintf(r->actions + off, sizeof r->actions - off, "%s%s=%u", off ? " " : "",
                             action_name[a], c->actions[a]);
            off += k > 0 ? (size_t)k : 0;
        }
    }
    hamok_sim_destroy(&c->sim);
    free(cp);
    return r->ok;
}

bool hamok_chaos_seeds_from_env(uint64_t def_count, uint64_t *first, uint64_t *count)
{
    const char *one = getenv("HAMOK_SIM_SEED");
    if (one != NULL && one[0] != '\0') {
        *first = strtoull(one, NULL, 0);
        *count = 1;
        return true;
    }
    *first = 1;
    *count = def_count;
    const char *n = getenv("HAMOK_SIM_SEEDS");
    if (n != NULL && n[0] != '\0') {
        *count = strtoull(n, NULL, 0);
    }
    return false;
}

void hamok_chaos_teeth_seeds(uint64_t def_count, uint64_t *first, uint64_t *count)
{
    *first = 1;
    *count = def_count;
    const char *one = getenv("HAMOK_SIM_SEED");
    if (one != NULL && one[0] != '\0') {
        *first = strtoull(one, NULL, 0);
        *count = 1;
        return;
    }
    const char *n = getenv("HAMOK_TEETH_SEEDS");
    if (n != NULL && n[0] != '\0') {
        *count = strtoull(n, NULL, 0);
    }
}

double hamok_chaos_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}
