/* A nats-server launcher for tests and benchmarks: starts Debian's real
 * nats-server (or $HAMOK_NATS_SERVER) on a free loopback port with a
 * generated configuration, waits until it accepts connections, and stops it
 * by pid. Every server started is remembered: natsd_stop_all() (call it from
 * a test's teardown; it also runs at exit) stops whatever is still running,
 * so a failing test leaves nothing behind. Children also get
 * PR_SET_PDEATHSIG, so a crashed test process takes its servers with it.
 *
 * Each server lives in its own directory under /tmp (configuration, log,
 * JetStream store), removed when it is stopped (kept when HAMOK_KEEP_NATSD is
 * set). Functions print why they failed on stderr. Not thread-safe: use
 * from the test's main thread. */
#ifndef HAMOK_TEST_NATSD_H
#define HAMOK_TEST_NATSD_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct natsd natsd;

typedef struct natsd_config {
    int port;                 /**< client port; 0 = a free loopback port */
    const char *conf;         /**< extra configuration text (auth, tls, max_payload...) or NULL */
    bool jetstream;           /**< JetStream on, store under the server's directory */
    bool monitor;             /**< HTTP monitoring on a free loopback port (natsd_wait_routes) */
    const char *cluster_name; /**< with cluster_port: the cluster block's name */
    int cluster_port;         /**< route listener (0 = no cluster block) */
    const char *routes;       /**< "nats://127.0.0.1:p,..." routes to the others, or NULL */
} natsd_config;

/** A TCP port on 127.0.0.1 that was free a moment ago (0 on failure). */
int natsd_free_port(void);

/** Start a server; NULL on failure (reason on stderr). Waits up to 10 s for
 * it to accept connections. */
natsd *natsd_start(const natsd_config *cfg);

/** Start `n` servers (n <= 8) routed to each other in one NATS cluster,
 * each with `conf` as extra configuration; waits until every server has
 * its n - 1 routes. false on failure (what was started is stopped). */
bool natsd_cluster_start(natsd **out, int n, const char *conf);

/** Send `sig` (SIGTERM, SIGKILL...) and reap the process (SIGKILL after
 * 5 s). The server is down afterwards; natsd_restart() brings it back. */
bool natsd_kill(natsd *d, int sig);

/** Start the server again on the same port with the same configuration. */
bool natsd_restart(natsd *d);

/** Stop (SIGTERM, then SIGKILL after 5 s), remove its directory, free it.
 * NULL-safe; sets *d = NULL. */
void natsd_stop(natsd **d);

/** Stop every server still running (teardown of each test, and at exit). */
void natsd_stop_all(void);

/** Wait until the server has `n` routes (needs `monitor`). */
bool natsd_wait_routes(natsd *d, int n, int timeout_ms);

int natsd_port(const natsd *d);
/** "nats://127.0.0.1:<port>" */
const char *natsd_url(const natsd *d);
/** The server's directory (write certificates, credentials... there). */
const char *natsd_dir(const natsd *d);
/** Process id while running, 0 when down. */
pid_t natsd_pid(const natsd *d);
/** Is the process still running? */
bool natsd_running(natsd *d);

/** Run a program (argv[0] searched in PATH) with stdout/stderr to `log`
 * (NULL = /dev/null) and wait for it; true when it exited with 0. For
 * test helpers (openssl...). */
bool natsd_run(const char *const argv[], const char *log);

#endif
