/* example_common.h: what every example program shares, so that each program
 * shows its scenario and little else.
 *
 *  - The command line: --transport mem|zmq|nats (default mem), --nats-url URL
 *    (default nats://127.0.0.1:4222) and the program's own options.
 *  - Peers: ex_node_new() makes a node on the chosen transport, in this
 *    process. mem: every peer on one in-process hub. zmq: each peer binds
 *    tcp://127.0.0.1:<free port> and gets the endpoints of the peers still
 *    alive as seeds. nats: each peer connects to the NATS server. The cluster
 *    name is "<program>-<pid>", so runs sharing a NATS server never meet.
 *  - Progress lines (ex_say) with the time since the start, checks that
 *    print what did not hold (ex_check), and ex_finish(): exit status 0 only
 *    when every check held.
 *  - Waiting for a condition with a deadline (ex_wait): never a fixed sleep.
 *
 * Only the public API (hamok/...) is used, here and in every example. */
#ifndef HAMOK_EXAMPLE_COMMON_H
#define HAMOK_EXAMPLE_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hamok/map.h"
#include "hamok/node.h"

/* Deadline of every blocking call and wait of the examples (ms): generous,
 * so a loaded machine does not fail a run; a healthy run needs far less. */
#define EX_TIMEOUT_MS 15000

/* Most peers one program may have alive at a time. */
#define EX_MAX_NODES 32

/* An integer option of a program: --name N, N in [min, max]. */
typedef struct ex_int_option {
    const char *name;
    int *value; /* holds the default; receives the value given */
    int min;
    int max;
    const char *help;
} ex_int_option;

/* A text option of a program: --name TEXT. `value` holds the default and
 * receives the text given. Register them before ex_init(). */
void ex_text_option(const char *name, const char **value, const char *help);

/* Parse the command line (exits with 2 on a mistake, 0 after --help).
 * `about` is a one-line description for --help. */
void ex_init(int argc, char **argv, const char *about, const ex_int_option *opts, size_t n_opts);

/* The transport chosen: "mem", "zmq" or "nats". */
const char *ex_transport_name(void);

/* A progress line: "[  1.234 s] text". */
void ex_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A check of what the scenario promises: when `ok` is false, print
 * "CHECK FAILED: text" and remember it. Returns ok. */
bool ex_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A call that must succeed for the scenario to go on: on an error, print
 * "FAILED: what: status" and exit 1. */
void ex_must(hamok_status st, const char *what);

/* Destroy what the helper still holds (the mem hub), print "ok" or
 * "FAILED (n checks)" and return the exit status for main(). Destroy every
 * node first. */
int ex_finish(void);

/* A fresh configuration: this run's cluster name, Raft timing for a quick
 * demo (election timeout 300 ms, heartbeat 50 ms) and a member silent for
 * 1.5 s removed. Change what you need, then pass it to ex_node_new_with(). */
hamok_config *ex_config(void);

/* A node on the chosen transport with ex_config() (or `cfg`, which is
 * destroyed). It does not talk to anyone before hamok_node_join(). Exits on
 * failure. */
hamok_node *ex_node_new(void);
hamok_node *ex_node_new_with(hamok_config *cfg);

/* A transport of the chosen kind for one more peer (what ex_node_new uses);
 * `endpoint` receives what it advertises (zmq: tcp://127.0.0.1:port), for
 * ex_node_adopt(). Exits on failure. */
hamok_transport *ex_transport_new(char endpoint[256]);
/* Create a node on `t` (taken) and register it like ex_node_new() does. */
hamok_node *ex_node_adopt(hamok_config *cfg, hamok_transport **t, const char *endpoint);

/* Destroy a node made by ex_node_new() (a crash, as far as the others can
 * tell: call hamok_node_leave() first for a graceful exit). NULL-safe. */
void ex_node_destroy(hamok_node **node);

/* Join several new nodes: the first founds the cluster (or joins it), then
 * the others join together. Exits on failure. */
void ex_join_all(hamok_node *const *nodes, size_t n);

/* Wait, polling every few milliseconds, until cond(ud) holds or timeout_ms
 * passes. Returns whether it held. */
bool ex_wait(bool (*cond)(void *ud), void *ud, int timeout_ms);

/* Wait until every node of `nodes` knows the same leader and that leader
 * is one of them; returns its index, or -1 after timeout_ms. */
int ex_wait_leader(hamok_node *const *nodes, size_t n, int timeout_ms);

/* Wait until every node of `nodes` counts `members` members. */
bool ex_wait_members(hamok_node *const *nodes, size_t n, size_t members, int timeout_ms);

/* Run fn(0) .. fn(n - 1) on n threads at once and wait for them all
 * (n <= EX_MAX_NODES). */
void ex_parallel(int n, void (*fn)(int i));

/* A value just read into *v by a call that returned `st`: is it present and
 * equal to the text `want`? Frees *v. For example
 *   ex_value_is(hamok_map_get_str(m, "k", &v), &v, "42") */
bool ex_value_is(hamok_status st, hamok_value *v, const char *want);

/* Pause (pacing a workload only; to wait for something use ex_wait). */
void ex_pause_ms(int ms);
uint64_t ex_now_ms(void);

/* The first 8 characters of a peer id, for progress lines. */
typedef struct ex_short {
    char s[9];
} ex_short;
ex_short ex_id_short(const hamok_id *id);
ex_short ex_node_short(const hamok_node *node);

/* Node events counted for one peer (hamok_node_on): ex_watch() starts
 * counting. The counters are atomic: events fire on the node's loop thread.
 * With `print`, each membership and leader change is printed. */
typedef struct ex_watcher {
    const char *name; /* printed with the events ("peer 2") */
    bool print;
    atomic_int joined;         /* HAMOK_EVENT_PEER_JOINED */
    atomic_int left;           /* HAMOK_EVENT_PEER_LEFT */
    atomic_int leader_changes; /* HAMOK_EVENT_LEADER_CHANGED */
    atomic_int leader_lost;    /* ... to "no leader" */
} ex_watcher;
void ex_watch(hamok_node *node, ex_watcher *w, const char *name, bool print);

/* A peer's map (or record) events as text lines, for checking what every
 * peer saw: "insert k=v", "update k: old -> new", "remove k (was v)",
 * "clear", with the log index of each. Filled on the node's loop thread by
 * ex_event_log_add (give it to hamok_map_on / hamok_record_on with the log
 * as ud); read from any thread under `mu`. */
#define EX_LOG_MAX 64
typedef struct ex_event_log {
    pthread_mutex_t mu;
    int n;
    char line[EX_LOG_MAX][96];
    uint64_t index[EX_LOG_MAX];
} ex_event_log;
void ex_event_log_init(ex_event_log *log);
void ex_event_log_destroy(ex_event_log *log);
void ex_event_log_add(void *log, const hamok_map_event *ev);
/* Add a line of one's own (other kinds of events). */
void ex_event_log_addf(ex_event_log *log, uint64_t index, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ex_event_log_count(ex_event_log *log);
/* Wait until each of the `n_logs` logs holds `n` events, then check that
 * they are `expected` (in order; NULL: the same as logs[0]) with the same
 * log indices as logs[0]; print the first log. Returns whether everything
 * held. */
bool ex_event_logs_expect(ex_event_log *logs, int n_logs, const char *const *expected, int n);

#endif
