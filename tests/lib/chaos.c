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
    A_CRASH,
    A_CRASH_LEADER,
    A_LOSSY, /* change loss / duplication on some links */
    A_COUNT_
};

typedef struct chaos {
    hamok_sim *sim;
    hamok_prng rnd; /* nemesis and workload decisions */
    int n;
    uint32_t t_el;
    /* Mix. */
    double drop, dup;
    uint32_t dmin, dmax;
    uint32_t nemesis_mean_ms;
    uint32_t propose_mean_ms;
    uint32_t weights[A_COUNT_];
    uint32_t weight_sum;
    /* Workload. */
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

static int random_node(chaos *c)
{
    return (int)below(c, (uint64_t)c->n);
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
    for (int i = 0; i < c->n; i++) {
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
    switch (action) {
    case A_HEAL:
        hamok_sim_heal(s);
        restore_link_params(c);
        break;
    case A_PARTITION: {
        unsigned all = (1u << c->n) - 1;
        unsigned mask = (unsigned)below(c, all - 1) + 1; /* neither empty nor all */
        hamok_sim_partition(s, mask & all);
        schedule_net_heal(c, 100 + below(c, 4 * t));
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
    case A_ISOLATE_NODE:
        hamok_sim_isolate(s, random_node(c));
        schedule_net_heal(c, 100 + below(c, 4 * t));
        break;
    case A_ONE_WAY: {
        int k = 1 + (int)below(c, (uint64_t)c->n);
        for (int i = 0; i < k; i++) {
            int a = random_node(c);
            int b = random_node(c);
            if (a != b) {
                hamok_sim_link_enable(s, a, b, false);
            }
        }
        schedule_net_heal(c, 100 + below(c, 4 * t));
        break;
    }
    case A_STAR: {
        int center = random_node(c);
        unsigned all = (1u << c->n) - 1;
        hamok_sim_star(s, center, all & ~(1u << center));
        schedule_net_heal(c, 100 + below(c, 4 * t));
        break;
    }
    case A_PAUSE: {
        int node = below(c, 2) ? random_node(c) : hamok_sim_leader(s);
        if (node < 0) {
            node = random_node(c);
        }
        if (hamok_sim_is_live(s, node)) {
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
        if (hamok_sim_is_up(s, node)) {
            hamok_sim_crash(s, node);
            c->gen[node]++;
            hamok_sim_schedule(s, now + below(c, 3 * t + 1), ev_restart, c,
                               ((uint64_t)c->gen[node] << 8) | (uint64_t)node);
        }
        break;
    }
    case A_LOSSY: {
        double drop = hamok__prng_unit(&c->rnd) * 0.3;
        double dup = hamok__prng_unit(&c->rnd) * 0.1;
        int k = 1 + (int)below(c, (uint64_t)(c->n * c->n));
        for (int i = 0; i < k; i++) {
            int a = random_node(c);
            int b = random_node(c);
            hamok_sim_link_set(s, a, b, drop, dup, c->dmin,
                               c->dmin + (uint32_t)below(c, c->dmax - c->dmin + 1));
        }
        break;
    }
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
    uint64_t now = hamok_sim_now(s);
    uint64_t how = below(c, 3);
    if (how == 0) {
        hamok_sim_crash(s, node);
        c->gen[node]++;
        hamok_sim_schedule(s, now + below(c, 3 * (uint64_t)c->t_el + 1), ev_restart, c,
                           ((uint64_t)c->gen[node] << 8) | (uint64_t)node);
    } else if (how == 1 || c->n < 5) {
        hamok_sim_isolate(s, node);
        schedule_net_heal(c, 50 + below(c, 3 * (uint64_t)c->t_el));
    } else {
        /* The leader keeps one follower: a minority that still replicates. */
        int other = random_node(c);
        if (other == node) {
            other = (node + 1) % c->n;
        }
        hamok_sim_partition(s, (1u << node) | (1u << other));
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

static void ev_client(hamok_sim *s, void *ud, uint64_t arg)
{
    (void)arg;
    chaos *c = ud;
    if (c->done) {
        return;
    }
    /* Every live node that believes it leads (a stale leader included). */
    int cand[HAMOK_SIM_MAX_NODES];
    int nc = 0;
    for (int i = 0; i < c->n; i++) {
        if (hamok_sim_is_live(s, i) && hamok_sim_role(s, i) == HAMOK_RAFT_LEADER) {
            cand[nc++] = i;
        }
    }
    int node;
    if (nc > 0 && below(c, 20) != 0) {
        node = cand[below(c, (uint64_t)nc)];
    } else {
        node = random_node(c); /* exercise NOT_LEADER */
    }
    size_t batch = below(c, 4) == 0 ? 2 + (size_t)below(c, 4) : 1;
    if (hamok_sim_is_live(s, node)) {
        hamok_status st = hamok_sim_propose(s, node, batch, NULL, NULL);
        if (st == HAMOK_OK) {
            c->ops += (uint32_t)batch;
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

/* ---- run ---------------------------------------------------------------- */

void hamok_chaos_opts_default(hamok_chaos_opts *o, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->n_ops = 300;
}

static void draw_mix(chaos *c, hamok_sim_config *cfg, char *desc, size_t desc_len)
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
    for (int a = 0; a < A_COUNT_; a++) {
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
    snprintf(desc, desc_len,
             "batch=%u inflight=%u drop=%.2f dup=%.2f delay=%u..%u disk<=%u skew=%d faults=%" PRIu64
             "ms nemesis~%ums propose~%ums hunt=%.2f/%ums/%d "
             "w=[%u %u %u %u %u %u %u %u %u %u]",
             cfg->max_batch_entries, cfg->max_inflight, c->drop, c->dup, c->dmin, c->dmax,
             cfg->disk_delay_max_ms, cfg->clock_skew, c->fault_ms, c->nemesis_mean_ms,
             c->propose_mean_ms, c->hunt_prob, c->hunt_delay_ms, c->hunt_style, c->weights[0],
             c->weights[1], c->weights[2], c->weights[3], c->weights[4], c->weights[5],
             c->weights[6], c->weights[7], c->weights[8], c->weights[9]);
}

bool hamok_chaos_run(const hamok_chaos_opts *o, hamok_chaos_result *r)
{
    memset(r, 0, sizeof *r);
    chaos c;
    memset(&c, 0, sizeof c);
    c.n = o->n_nodes > 0 ? o->n_nodes : ((o->seed & 1) ? 3 : 5);
    r->n_nodes = c.n;
    c.n_ops = o->n_ops ? o->n_ops : 300;
    c.max_fault_ms = o->max_fault_ms; /* 0: 3 x the drawn fault phase (below) */
    hamok_sim_config cfg;
    hamok_sim_config_default(&cfg, o->seed, c.n);
    hamok__prng_seed(&c.rnd, mix64(o->seed ^ 0x6368616f73ULL));
    cfg.trace = o->trace;
    draw_mix(&c, &cfg, r->mix, sizeof r->mix);
    if (c.max_fault_ms == 0) {
        c.max_fault_ms = 3 * c.fault_ms;
    }
    c.t_el = cfg.election_timeout_ms;
    char hint[200];
    snprintf(hint, sizeof hint,
             "HAMOK_SIM_SEED=%" PRIu64 " %s (HAMOK_SIM_TRACE=1 prints the event trace)", o->seed,
             o->test_name ? o->test_name : "test_chaos");
    cfg.replay_hint = hint;

    c.sim = hamok_sim_new(&cfg);
    if (c.sim == NULL) {
        snprintf(r->error, sizeof r->error, "seed %" PRIu64 ": cannot create the simulator",
                 o->seed);
        r->invariant = "sim-oom";
        return false;
    }
    hamok_sim_on_role(c.sim, on_role, &c);
    hamok_sim_on_commit(c.sim, on_commit, &c);
    c.fresh_leader = -1;
    c.hunting = true;
    hamok_sim_schedule(c.sim, (5 + below(&c, 36)) * (uint64_t)c.t_el, ev_hunt_toggle, &c, 0);
    /* Quiet start, then faults and clients. */
    hamok_sim_schedule(c.sim, 2 * c.t_el, ev_nemesis, &c, 0);
    hamok_sim_schedule(c.sim, c.t_el, ev_client, &c, 0);
    while (!c.done && !hamok_sim_failed(c.sim)) {
        if (!hamok_sim_step(c.sim)) {
            break;
        }
    }
    r->ops = c.ops;
    if (!hamok_sim_failed(c.sim)) {
        hamok_sim_check_liveness(c.sim);
    }
    hamok_sim_stats_get(c.sim, &r->stats);
    r->ok = !hamok_sim_failed(c.sim);
    if (!r->ok) {
        r->invariant = hamok_sim_violation(c.sim)->invariant;
        snprintf(r->error, sizeof r->error, "%s\n  fault mix: %s", hamok_sim_error(c.sim), r->mix);
    }
    hamok_sim_destroy(&c.sim);
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

double hamok_chaos_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}
