/* hamok-example-map-update-if: claim a job with compare-and-set; exactly
 * one claimer wins (the original's map-update-if-example).
 *
 * Three peers share a map of jobs. For each of --jobs jobs:
 *   1. one peer inserts the job as "pending";
 *   2. every peer, at the same moment (a barrier), tries to claim it:
 *      update_if(job, "running by peer-<i>", expected "pending"). The first
 *      one in the log wins; the others find "running by ..." and get false;
 *   3. the winner completes it: update_if(job, "done by peer-<i>", expected
 *      "running by peer-<i>"); a loser that tries the same with its own name
 *      gets false: only the owner can complete a job;
 *   4. a loser's remove_if(job, "pending") answers false at once (the
 *      original never answered a mismatched removeIf: its callers timed out
 *      after 5 s, spec §7 A7).
 *
 * Checks: exactly one winner per job; after a read barrier every peer reads
 * "done by <the winner>"; the loser's completion and remove_if are refused.
 *
 *   hamok-example-map-update-if [--transport mem|zmq|nats] [--jobs N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_common.h"
#include "hamok/map.h"

#define PEERS 3

static hamok_node *node[PEERS];
static hamok_map *map[PEERS];
static pthread_barrier_t start_line;
static int jobs = 20;
/* claimed[j][p]: did peer p's claim of job j succeed? */
static bool claimed[1000][PEERS];
static atomic_int call_errors;

static void *claimer(void *arg)
{
    int me = (int)(intptr_t)arg;
    char running[32];
    snprintf(running, sizeof running, "running by peer-%d", me);
    for (int j = 0; j < jobs; j++) {
        char job[32];
        snprintf(job, sizeof job, "job-%d", j);
        /* Everyone waits here until peer 0 has inserted job j. */
        pthread_barrier_wait(&start_line);
        hamok_status st = hamok_map_update_if(map[me], job, strlen(job), running, strlen(running),
                                              "pending", 7, &claimed[j][me], EX_TIMEOUT_MS);
        if (st != HAMOK_OK) {
            ex_check(false, "claim of %s by peer %d: %s", job, me, hamok_status_str(st));
            atomic_fetch_add(&call_errors, 1);
        }
        pthread_barrier_wait(&start_line);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const ex_int_option opts[] = {{"jobs", &jobs, 1, 1000, "jobs to claim"}};
    ex_init(argc, argv, "peers claim jobs with update_if; one claimer wins", opts, 1);
    for (int i = 0; i < PEERS; i++) {
        node[i] = ex_node_new();
        ex_must(hamok_map_open(node[i], "jobs", &map[i]), "open");
    }
    ex_join_all(node, PEERS);
    ex_say("three peers joined; %d jobs to claim", jobs);

    /* The claimers wait at the barrier; the main thread inserts each job
     * and joins the barrier to release them. */
    pthread_barrier_init(&start_line, NULL, PEERS + 1);
    pthread_t th[PEERS];
    for (int i = 0; i < PEERS; i++) {
        pthread_create(&th[i], NULL, claimer, (void *)(intptr_t)i);
    }
    for (int j = 0; j < jobs; j++) {
        char job[32];
        snprintf(job, sizeof job, "job-%d", j);
        ex_must(
            hamok_map_insert(map[j % PEERS], job, strlen(job), "pending", 7, NULL, EX_TIMEOUT_MS),
            "insert the job");
        pthread_barrier_wait(&start_line); /* go */
        pthread_barrier_wait(&start_line); /* every claim answered */

        int winner = -1, winners = 0;
        for (int p = 0; p < PEERS; p++) {
            if (claimed[j][p]) {
                winner = p;
                winners++;
            }
        }
        if (!ex_check(winners == 1, "%s: exactly one claim succeeds (%d)", job, winners)) {
            continue;
        }

        /* The winner completes the job; a loser cannot. */
        char running[32], done[32];
        snprintf(running, sizeof running, "running by peer-%d", winner);
        snprintf(done, sizeof done, "done by peer-%d", winner);
        bool ok = false;
        ex_must(hamok_map_update_if(map[winner], job, strlen(job), done, strlen(done), running,
                                    strlen(running), &ok, EX_TIMEOUT_MS),
                "complete");
        ex_check(ok, "%s: the winner completes it", job);
        int loser = (winner + 1) % PEERS;
        char lrunning[32], ldone[32];
        snprintf(lrunning, sizeof lrunning, "running by peer-%d", loser);
        snprintf(ldone, sizeof ldone, "done by peer-%d", loser);
        ex_must(hamok_map_update_if(map[loser], job, strlen(job), ldone, strlen(ldone), lrunning,
                                    strlen(lrunning), &ok, EX_TIMEOUT_MS),
                "loser's completion");
        ex_check(!ok, "%s: a loser cannot complete it", job);
        uint64_t t0 = ex_now_ms();
        bool removed = true;
        ex_must(hamok_map_remove_if(map[loser], job, strlen(job), "pending", 7, &removed,
                                    EX_TIMEOUT_MS),
                "remove_if");
        ex_check(!removed, "%s: remove_if with a stale expectation is refused", job);
        ex_check(ex_now_ms() - t0 < 2000, "%s: ... with an answer, not a timeout", job);
    }
    for (int i = 0; i < PEERS; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&start_line);
    ex_check(atomic_load(&call_errors) == 0, "every claim got an answer");

    /* Every peer reads every job done by its one winner. */
    int wins[PEERS] = {0};
    for (int i = 0; i < PEERS; i++) {
        ex_must(hamok_node_sync(node[i], EX_TIMEOUT_MS), "sync");
    }
    for (int j = 0; j < jobs; j++) {
        char job[32];
        snprintf(job, sizeof job, "job-%d", j);
        for (int p = 0; p < PEERS; p++) {
            if (!claimed[j][p]) {
                continue;
            }
            wins[p]++;
            char done[32];
            snprintf(done, sizeof done, "done by peer-%d", p);
            for (int i = 0; i < PEERS; i++) {
                hamok_value v;
                ex_check(ex_value_is(hamok_map_get_str(map[i], job, &v), &v, done),
                         "peer %d reads %s = %s", i, job, done);
            }
        }
    }
    ex_say("every job claimed by exactly one peer and done; wins per peer: %d %d %d", wins[0],
           wins[1], wins[2]);
    for (int i = 0; i < PEERS; i++) {
        hamok_map_close(&map[i]);
        ex_node_destroy(&node[i]);
    }
    return ex_finish();
}
