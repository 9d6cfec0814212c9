/* A server process for a test (redis-server, nats-server) on a free port of
 * 127.0.0.1: started by path, waited for until it accepts connections,
 * stopped by pid. Never a system-wide server. The child gets
 * PR_SET_PDEATHSIG, so it dies with the test process (a ctest timeout
 * leaves nothing behind). Functions print why they failed on stderr. */
#ifndef HAMOK_TESTS_LOOPBACK_SERVER_H
#define HAMOK_TESTS_LOOPBACK_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

typedef enum hamok_test_server_kind {
    HAMOK_TEST_REDIS = 1, /* redis-server, no persistence */
    HAMOK_TEST_NATS = 2,  /* nats-server, default options */
} hamok_test_server_kind;

typedef struct hamok_test_server {
    pid_t pid; /* 0 when not running */
    int port;
} hamok_test_server;

/* A TCP port on 127.0.0.1 that was free a moment ago (-1 on failure). */
int hamok_test_free_port(void);

/* Start the server `bin` of that kind on a free port (another one if the
 * port was taken meanwhile), with its output to /dev/null, and wait up to
 * 10 s until it accepts connections. */
bool hamok_test_server_start(hamok_test_server *s, hamok_test_server_kind kind, const char *bin);

/* SIGTERM, SIGKILL after 5 s, reap. No-op when not running. */
void hamok_test_server_stop(hamok_test_server *s);

#endif
