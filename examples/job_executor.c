/* hamok-example-job-executor: a job queue on a replicated map, executed by
 * every peer, with the leader rescheduling the jobs of peers that died
 * (the original's redis-job-executing-example, on the replicated map).
 *
 * The map "jobs" holds job -> state: "pending", "running:<peer id>" or
 * "done:<peer id>". Three peers, each with two threads:
 *   - an executor: takes a pending job with update_if(job, "running:<me>",
 *     expected "pending") — many executors may try, one wins —, works on it
 *     (--work ms), then completes it with update_if(job, "done:<me>",
 *     expected "running:<me>"): only the job's current owner can complete
 *     it, so a job taken away from a peer can never be completed twice;
 *   - a scheduler, active only on the leader: when a peer leaves the
 *     configuration (HAMOK_EVENT_PEER_LEFT) it puts the peer's running jobs
 *     back to "pending" with update_if(job, "pending", expected
 *     "running:<that peer>"); when this peer becomes leader
 *     (HAMOK_EVENT_LEADER_CHANGED) it does the same for jobs running on
 *     peers that are no members any more (a departure an earlier leader may
 *     not have handled).
 * The main thread inserts --jobs jobs, one every --interval ms, and every
 * --crash-every jobs crashes a peer that is running a job (its threads stop
 * mid-job, its node is destroyed without leaving) and starts a fresh peer
 * in its place. The leader removes the silent peer after the peer timeout
 * (1.5 s) and reschedules its job. (The next crash waits for that removal:
 * two dead members out of four would leave no majority.)
 *
 * Checks: every job ends "done" on every peer; each job was completed
 * exactly once; the job each crashed peer was running was rescheduled by a
 * leader and completed by another peer; no executor or scheduler call
 * failed.
 *
 *   hamok-example-job-executor [--transport mem|zmq|nats] [--jobs N]
 *       [--interval MS] [--work MS] [--crash-every N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS    3
#define MAX_JOBS 1000
#define MAX_GEN  64 /* peers started in one run, replacements included */

static int n_jobs = 30, interval_ms = 40, work_ms = 100, crash_every = 12;

typedef struct peer {
    int gen; /* peer <gen>: 0, 1, 2, then each replacement */
    hamok_node *node;
    hamok_map *map;
    hamok_id id;
    char id_text[HAMOK_ID_STR_LEN + 1];
    pthread_t executor, scheduler;
    atomic_bool stop;
    atomic_int completed;
    /* Scheduler wake-ups, from the node's events. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool wake, became_leader;
    hamok_id departed[MAX_GEN]; /* peers seen leaving the configuration */
    int n_departed;
} peer;

static peer *peers[MAX_GEN]; /* every peer ever started, by gen (for names) */
static atomic_int n_gen;
static peer *slot[PEERS]; /* the live ones */

static atomic_int completions[MAX_JOBS]; /* successful "done" per job */
static atomic_int rescheduled;

/* "peer 3" for an id (a running/done value holds the full id). */
static int gen_of(const char *id_text)
{
    for (int g = 0; g < atomic_load(&n_gen); g++) {
        if (strncmp(peers[g]->id_text, id_text, HAMOK_ID_STR_LEN) == 0) {
            return g;
        }
    }
    return -1;
}

static void job_name(int j, char *out, size_t cap)
{
    snprintf(out, cap, "job-%03d", j);
}

/* ------------------------------------------------------------------------ */
/* The executor */

/* hamok_map_foreach callback: the first job whose state is want[0] or
 * want[1]. It runs under the map's read lock: no writes in here. */
typedef struct pick {
    const char *want[2];
    char key[32];
    int found; /* -1: none, else the index in want */
} pick;

static bool find_job(void *ud, const hamok_kv *e)
{
    pick *p = ud;
    for (int w = 0; w < 2; w++) {
        if (e->value_len == strlen(p->want[w]) && memcmp(e->value, p->want[w], e->value_len) == 0 &&
            e->key_len < sizeof p->key) {
            memcpy(p->key, e->key, e->key_len);
            p->key[e->key_len] = '\0';
            p->found = w;
            return false; /* stop */
        }
    }
    return true;
}

static void *executor(void *arg)
{
    peer *me = arg;
    char running[64], done[64];
    snprintf(running, sizeof running, "running:%s", me->id_text);
    snprintf(done, sizeof done, "done:%s", me->id_text);
    while (!atomic_load(&me->stop)) {
        /* A job already mine (whose claim's answer was lost), or a
         * pending one to claim. */
        pick p = {{running, "pending"}, "", -1};
        hamok_map_foreach(me->map, find_job, &p);
        if (p.found < 0) {
            ex_pause_ms(5); /* nothing to do: look again shortly */
            continue;
        }
        if (p.found == 1) {
            bool mine = false;
            hamok_status st =
                hamok_map_update_if(me->map, p.key, strlen(p.key), running, strlen(running),
                                    "pending", 7, &mine, EX_TIMEOUT_MS);
            if (!ex_check(st == HAMOK_OK, "peer %d: claim %s: %s", me->gen, p.key,
                          hamok_status_str(st)) ||
                !mine) {
                continue; /* another executor took it first */
            }
        }
        ex_say("peer %d runs %s", me->gen, p.key);

        /* Work, in small steps: a crash stops us in the middle. */
        for (int t = 0; t < work_ms && !atomic_load(&me->stop); t += 5) {
            ex_pause_ms(5);
        }
        if (atomic_load(&me->stop)) {
            return NULL; /* crashed mid-job: the job stays "running:<me>" */
        }
        bool completed = false;
        hamok_status st = hamok_map_update_if(me->map, p.key, strlen(p.key), done, strlen(done),
                                              running, strlen(running), &completed, EX_TIMEOUT_MS);
        ex_check(st == HAMOK_OK, "peer %d: complete %s: %s", me->gen, p.key, hamok_status_str(st));
        if (completed) {
            atomic_fetch_add(&completions[atoi(p.key + 4)], 1);
            atomic_fetch_add(&me->completed, 1);
        } else {
            ex_say("peer %d: %s was taken away from it", me->gen, p.key);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The scheduler (leader only) */

/* Node events (loop thread): remember who left, wake the scheduler. */
static void on_node_event(void *ud, const hamok_node_event *ev)
{
    peer *me = ud;
    pthread_mutex_lock(&me->mu);
    if (ev->type == HAMOK_EVENT_PEER_LEFT && me->n_departed < MAX_GEN) {
        me->departed[me->n_departed++] = ev->peer;
        me->wake = true;
    } else if (ev->type == HAMOK_EVENT_LEADER_CHANGED && ev->has_leader &&
               memcmp(&ev->leader, &me->id, sizeof me->id) == 0) {
        me->became_leader = true;
        me->wake = true;
    }
    pthread_cond_signal(&me->cv);
    pthread_mutex_unlock(&me->mu);
}

static bool is_member(peer *me, const char *id_text)
{
    hamok_peer_info members[MAX_GEN];
    size_t n = hamok_node_peers(me->node, members, MAX_GEN);
    for (size_t i = 0; i < n && i < MAX_GEN; i++) {
        char text[HAMOK_ID_STR_LEN + 1];
        hamok_id_format(&members[i].id, text);
        if (strcmp(text, id_text) == 0) {
            return true;
        }
    }
    return false;
}

/* Put back to pending every job running on a departed peer (or, with
 * `non_members`, on a peer that is no member). */
static void reschedule(peer *me, const hamok_id *departed, int n_departed, bool non_members)
{
    hamok_kvs jobs;
    if (hamok_map_entries(me->map, &jobs) != HAMOK_OK) {
        return;
    }
    for (size_t k = 0; k < jobs.n; k++) {
        const hamok_kv *e = &jobs.items[k];
        char value[64];
        snprintf(value, sizeof value, "%.*s", (int)e->value_len, (const char *)e->value);
        if (strncmp(value, "running:", 8) != 0) {
            continue;
        }
        bool gone = non_members && !is_member(me, value + 8);
        for (int d = 0; d < n_departed && !gone; d++) {
            char text[HAMOK_ID_STR_LEN + 1];
            hamok_id_format(&departed[d], text);
            gone = strcmp(text, value + 8) == 0;
        }
        if (!gone) {
            continue;
        }
        bool updated = false;
        hamok_status st = hamok_map_update_if(me->map, e->key, e->key_len, "pending", 7, value,
                                              strlen(value), &updated, EX_TIMEOUT_MS);
        if (st == HAMOK_ERR_NOT_LEADER || !hamok_node_is_leader(me->node)) {
            break; /* deposed meanwhile: the next leader takes over */
        }
        ex_check(st == HAMOK_OK, "leader %d: reschedule: %s", me->gen, hamok_status_str(st));
        if (updated) {
            atomic_fetch_add(&rescheduled, 1);
            ex_say("leader (peer %d) reschedules %.*s of departed peer %d", me->gen,
                   (int)e->key_len, (const char *)e->key, gen_of(value + 8));
        }
    }
    hamok_kvs_free(&jobs);
}

static void *scheduler(void *arg)
{
    peer *me = arg;
    pthread_mutex_lock(&me->mu);
    while (!atomic_load(&me->stop)) {
        if (!me->wake) {
            /* Woken by the events; a look every 200 ms too, so a departure
             * seen while another peer led is handled once this one leads. */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&me->cv, &me->mu, &until);
        }
        hamok_id departed[MAX_GEN];
        int n = me->n_departed;
        memcpy(departed, me->departed, (size_t)n * sizeof *departed);
        bool became_leader = me->became_leader;
        me->wake = me->became_leader = false;
        pthread_mutex_unlock(&me->mu);
        if (hamok_node_is_leader(me->node) && !atomic_load(&me->stop)) {
            reschedule(me, departed, n, became_leader);
        }
        pthread_mutex_lock(&me->mu);
    }
    pthread_mutex_unlock(&me->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Peers */

static peer *start_peer(void)
{
    peer *p = calloc(1, sizeof *p);
    if (p == NULL || atomic_load(&n_gen) == MAX_GEN) {
        ex_must(HAMOK_ERR_NOMEM, "peer");
    }
    p->gen = atomic_load(&n_gen);
    peers[p->gen] = p;
    atomic_store(&n_gen, p->gen + 1); /* published after peers[gen] */
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->node = ex_node_new();
    p->id = hamok_node_id(p->node);
    hamok_id_format(&p->id, p->id_text);
    ex_must(hamok_map_open(p->node, "jobs", &p->map), "open");
    ex_must(hamok_node_on(p->node, on_node_event, p), "node events");
    return p;
}

static void run_peer(peer *p)
{
    pthread_create(&p->executor, NULL, executor, p);
    pthread_create(&p->scheduler, NULL, scheduler, p);
}

/* Stop the threads (a crash, if a job is running) and destroy the node
 * (without leaving). With `job`: true if the peer still had it running. */
static bool stop_peer(peer *p, const char *job)
{
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->executor, NULL);
    pthread_join(p->scheduler, NULL);
    bool running = false;
    if (job != NULL) {
        hamok_value v;
        running =
            hamok_map_get_str(p->map, job, &v) == HAMOK_OK && strncmp(v.data, "running:", 8) == 0;
        hamok_value_free(&v);
    }
    hamok_map_close(&p->map);
    ex_node_destroy(&p->node);
    return running;
}

/* A live peer running a job, and which job (ex_wait condition). */
typedef struct victim {
    int slot;
    char job[32];
} victim;

static bool someone_running(void *ud)
{
    victim *v = ud;
    for (int s = 0; s < PEERS; s++) {
        char running[64];
        snprintf(running, sizeof running, "running:%s", slot[s]->id_text);
        pick p = {{running, running}, "", -1};
        hamok_map_foreach(slot[0]->map, find_job, &p);
        if (p.found >= 0) {
            v->slot = s;
            snprintf(v->job, sizeof v->job, "%s", p.key);
            return true;
        }
    }
    return false;
}

/* ex_wait condition: every job is done on every live peer. */
static bool all_done(void *ud)
{
    (void)ud;
    for (int s = 0; s < PEERS; s++) {
        size_t done = 0;
        hamok_kvs jobs;
        if (hamok_map_entries(slot[s]->map, &jobs) != HAMOK_OK) {
            return false;
        }
        for (size_t k = 0; k < jobs.n; k++) {
            done += jobs.items[k].value_len > 5 && memcmp(jobs.items[k].value, "done:", 5) == 0;
        }
        hamok_kvs_free(&jobs);
        if (done != (size_t)n_jobs) {
            return false;
        }
    }
    return true;
}

int main(int argc, char **argv)
{
    const ex_int_option opts[] = {
        {"jobs", &n_jobs, 1, MAX_JOBS, "jobs to execute"},
        {"interval", &interval_ms, 0, 10000, "ms between two new jobs"},
        {"work", &work_ms, 0, 60000, "ms a job takes"},
        {"crash-every", &crash_every, 0, MAX_JOBS, "crash a busy peer every N jobs (0: never)"},
    };
    ex_init(argc, argv, "a job executor with leader-driven rescheduling", opts, 4);
    for (int i = 0; i < MAX_JOBS; i++) {
        atomic_init(&completions[i], 0);
    }
    hamok_node *nodes[PEERS];
    for (int s = 0; s < PEERS; s++) {
        slot[s] = start_peer();
        nodes[s] = slot[s]->node;
    }
    ex_join_all(nodes, PEERS);
    for (int s = 0; s < PEERS; s++) {
        run_peer(slot[s]);
    }
    ex_say("three peers joined and execute jobs");

    /* Produce jobs; crash a busy peer now and then. */
    char lost_jobs[MAX_GEN][32];
    int lost_by[MAX_GEN], n_lost = 0, crashes = 0;
    for (int j = 0; j < n_jobs; j++) {
        char job[32];
        job_name(j, job, sizeof job);
        ex_must(hamok_map_insert(slot[j % PEERS]->map, job, strlen(job), "pending", 7, NULL,
                                 EX_TIMEOUT_MS),
                "insert a job");
        ex_pause_ms(interval_ms);
        if (crash_every > 0 && (j + 1) % crash_every == 0 && atomic_load(&n_gen) < MAX_GEN) {
            /* One failure at a time: the peer that crashed last must be out
             * of the configuration first (two dead members of four would be
             * half the votes: no majority, no progress — Raft's rule). */
            hamok_node *live[PEERS];
            for (int s = 0; s < PEERS; s++) {
                live[s] = slot[s]->node;
            }
            ex_check(ex_wait_members(live, PEERS, PEERS, EX_TIMEOUT_MS),
                     "the last crashed peer was removed");
            victim v;
            if (!ex_check(ex_wait(someone_running, &v, EX_TIMEOUT_MS), "a peer is running a job")) {
                continue;
            }
            peer *dead = slot[v.slot];
            ex_say("peer %d crashes while running %s%s", dead->gen, v.job,
                   hamok_node_is_leader(dead->node) ? " (it was the leader)" : "");
            crashes++;
            if (stop_peer(dead, v.job)) {
                snprintf(lost_jobs[n_lost], sizeof lost_jobs[n_lost], "%s", v.job);
                lost_by[n_lost++] = dead->gen;
            } else {
                ex_say("(peer %d had just finished %s)", dead->gen, v.job);
            }
            slot[v.slot] = start_peer();
            ex_must(hamok_node_join(slot[v.slot]->node, EX_TIMEOUT_MS), "join a replacement");
            run_peer(slot[v.slot]);
            ex_say("peer %d joined in its place", slot[v.slot]->gen);
        }
    }
    ex_say("%d jobs inserted, %d crashes; waiting for every job to be done", n_jobs, crashes);

    /* Every job done, on every peer. */
    ex_check(ex_wait(all_done, NULL, EX_TIMEOUT_MS * 2), "every job is done on every peer");
    for (int c = 0; c < n_lost; c++) {
        hamok_value v;
        bool ok = hamok_map_get_str(slot[0]->map, lost_jobs[c], &v) == HAMOK_OK &&
                  strncmp(v.data, "done:", 5) == 0;
        int by = ok ? gen_of((const char *)v.data + 5) : -1;
        ex_check(ok && by != lost_by[c], "%s, lost by the crash of peer %d, was done by peer %d",
                 lost_jobs[c], lost_by[c], by);
        hamok_value_free(&v);
    }

    /* Stop the peers before counting: an executor whose completion is
     * applied everywhere may not have counted it yet. */
    for (int s = 0; s < PEERS; s++) {
        stop_peer(slot[s], NULL);
    }
    for (int j = 0; j < n_jobs; j++) {
        ex_check(atomic_load(&completions[j]) == 1, "job-%03d completed exactly once (%d)", j,
                 atomic_load(&completions[j]));
    }
    ex_check(atomic_load(&rescheduled) >= n_lost, "%d jobs rescheduled, %d lost in crashes",
             atomic_load(&rescheduled), n_lost);
    for (int g = 0; g < atomic_load(&n_gen); g++) {
        ex_say("peer %d completed %d jobs", g, atomic_load(&peers[g]->completed));
    }
    for (int g = 0; g < atomic_load(&n_gen); g++) {
        pthread_mutex_destroy(&peers[g]->mu);
        pthread_cond_destroy(&peers[g]->cv);
        free(peers[g]);
    }
    return ex_finish();
}
