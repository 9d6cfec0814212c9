/* loopback_server.c: see loopback_server.h. */
#define _DEFAULT_SOURCE
#include "loopback_server.h"
#include "proc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int hamok_test_free_port(void)
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

void hamok_test_server_stop(hamok_test_server *s)
{
    if (s->pid <= 0) {
        return;
    }
    kill(s->pid, SIGTERM);
    uint64_t end = hamok_proc_now_ms() + 5000;
    int status;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (hamok_proc_now_ms() >= end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            break;
        }
        hamok_proc_poll_pause(5);
    }
    s->pid = 0;
}

static void exec_server(hamok_test_server_kind kind, const char *bin, const char *port)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the test */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 1);
        dup2(null, 2);
    }
    if (kind == HAMOK_TEST_NATS) {
        execl(bin, "nats-server", "-a", "127.0.0.1", "-p", port, (char *)NULL);
    } else {
        execl(bin, "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--loglevel", "warning", (char *)NULL);
    }
    _exit(127);
}

bool hamok_test_server_start(hamok_test_server *s, hamok_test_server_kind kind, const char *bin)
{
    s->pid = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = hamok_test_free_port();
        if (s->port <= 0) {
            continue;
        }
        char port[16];
        snprintf(port, sizeof port, "%d", s->port);
        pid_t pid = fork();
        if (pid < 0) {
            break;
        }
        if (pid == 0) {
            exec_server(kind, bin, port);
        }
        s->pid = pid;
        uint64_t end = hamok_proc_now_ms() + 10000;
        int status;
        while (hamok_proc_now_ms() < end) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                s->pid = 0; /* exited: the port was taken meanwhile? try another */
                break;
            }
            if (accepts(s->port)) {
                fprintf(stderr, "%s pid %d on 127.0.0.1:%d\n", bin, (int)pid, s->port);
                return true;
            }
            hamok_proc_poll_pause(10);
        }
        hamok_test_server_stop(s);
    }
    fprintf(stderr, "cannot start %s\n", bin);
    return false;
}
