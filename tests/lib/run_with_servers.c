/* hamok-example-runner: the ctest harness of the example programs that need
 * a server (examples/CMakeLists.txt).
 *
 *   hamok-example-runner [--redis REDIS_SERVER] [--nats NATS_SERVER] -- PROGRAM [ARGS...]
 *
 * Starts each server named (the path of redis-server / nats-server) on a
 * free port of 127.0.0.1 (loopback_server.h), runs PROGRAM with ARGS plus
 * "--port P" (Redis) and "--nats-url nats://127.0.0.1:P" (NATS), stops the
 * servers and exits with PROGRAM's status. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loopback_server.h"

int main(int argc, char **argv)
{
    hamok_test_server servers[2];
    hamok_test_server_kind kinds[2];
    const char *bins[2];
    int n = 0;
    int i = 1;
    while (i + 1 < argc && n < 2 &&
           (strcmp(argv[i], "--redis") == 0 || strcmp(argv[i], "--nats") == 0)) {
        kinds[n] = strcmp(argv[i], "--nats") == 0 ? HAMOK_TEST_NATS : HAMOK_TEST_REDIS;
        bins[n++] = argv[i + 1];
        i += 2;
    }
    if (i >= argc - 1 || strcmp(argv[i], "--") != 0) {
        fprintf(stderr, "usage: %s [--redis PATH] [--nats PATH] -- PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    char **args = calloc((size_t)argc + 8, sizeof *args);
    if (args == NULL) {
        return 1;
    }
    int k = 0;
    for (int j = i + 1; j < argc; j++) {
        args[k++] = argv[j];
    }
    char addr[2][64];
    int rc = 1, started = 0;
    for (int s = 0; s < n; s++, started++) {
        if (!hamok_test_server_start(&servers[s], kinds[s], bins[s])) {
            goto out;
        }
        if (kinds[s] == HAMOK_TEST_NATS) {
            snprintf(addr[s], sizeof addr[s], "nats://127.0.0.1:%d", servers[s].port);
            args[k++] = "--nats-url";
        } else {
            snprintf(addr[s], sizeof addr[s], "%d", servers[s].port);
            args[k++] = "--port";
        }
        args[k++] = addr[s];
    }
    args[k] = NULL;

    pid_t pid = fork();
    if (pid < 0) {
        goto out;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        execv(args[0], args);
        perror(args[0]);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            goto out;
        }
    }
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
    } else {
        fprintf(stderr, "runner: %s died with signal %d\n", args[0], WTERMSIG(status));
    }
out:
    for (int s = 0; s < started; s++) {
        hamok_test_server_stop(&servers[s]);
    }
    free(args);
    return rc;
}
