/* hamok-example-runner: the ctest harness of the examples that need a server.
 *
 *   hamok-example-runner [--redis REDIS_SERVER] [--nats NATS_SERVER] -- PROGRAM [ARGS...]
 *
 * Starts each server named (the path of redis-server / nats-server) on a
 * free port of 127.0.0.1, waits until it accepts connections, runs PROGRAM
 * with ARGS plus "--port P" (Redis) and "--nats-url nats://127.0.0.1:P"
 * (NATS), stops the servers by pid and exits with PROGRAM's status. Never
 * touches a system-wide server; the servers die with the runner
 * (PR_SET_PDEATHSIG), so a ctest timeout leaves nothing behind. */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct server {
    const char *bin;
    bool nats;
    int port;
    pid_t pid;
} server;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Bind port 0 on loopback and read which port the kernel gave. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

static bool accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void stop(server *s)
{
    if (s->pid <= 0) {
        return;
    }
    kill(s->pid, SIGTERM);
    uint64_t end = now_ms() + 5000;
    int status;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (now_ms() >= end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        pause_ms(5);
    }
    s->pid = -1;
}

static bool start(server *s)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = free_port();
        if (s->port <= 0) {
            continue;
        }
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        pid_t pid = fork();
        if (pid < 0) {
            return false;
        }
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) {
                dup2(null, 1);
                dup2(null, 2);
            }
            if (s->nats) {
                execl(s->bin, "nats-server", "-a", "127.0.0.1", "-p", port, (char *)NULL);
            } else {
                execl(s->bin, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
            }
            _exit(127);
        }
        s->pid = pid;
        uint64_t end = now_ms() + 10000;
        int status;
        while (now_ms() < end) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                s->pid = -1; /* exited: the port was taken meanwhile? try another */
                break;
            }
            if (accepts(s->port)) {
                fprintf(stderr, "runner: %s pid %d on 127.0.0.1:%d\n", s->bin, (int)pid, s->port);
                return true;
            }
            pause_ms(10);
        }
        stop(s);
    }
    fprintf(stderr, "runner: cannot start %s\n", s->bin);
    return false;
}

int main(int argc, char **argv)
{
    server servers[2];
    int n = 0;
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (i + 1 < argc && (strcmp(argv[i], "--redis") == 0 || strcmp(argv[i], "--nats") == 0) &&
            n < 2) {
            servers[n++] = (server){argv[i + 1], strcmp(argv[i], "--nats") == 0, 0, -1};
            i++;
        } else {
            break;
        }
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
    char ports[2][64];
    int rc = 1;
    for (int s = 0; s < n; s++) {
        if (!start(&servers[s])) {
            goto out;
        }
        if (servers[s].nats) {
            snprintf(ports[s], sizeof ports[s], "nats://127.0.0.1:%d", servers[s].port);
            args[k++] = "--nats-url";
        } else {
            snprintf(ports[s], sizeof ports[s], "%d", servers[s].port);
            args[k++] = "--port";
        }
        args[k++] = ports[s];
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
    }
    if (WIFEXITED(status)) {
        rc = WEXITSTATUS(status);
    } else {
        fprintf(stderr, "runner: %s died with signal %d\n", args[0], WTERMSIG(status));
        rc = 1;
    }
out:
    for (int s = 0; s < n; s++) {
        stop(&servers[s]);
    }
    free(args);
    return rc;
}
