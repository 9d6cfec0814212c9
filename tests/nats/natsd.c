/* nats-server launcher (natsd.h). */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 700
#include "natsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_SERVERS 32
#define READY_MS    10000
#define STOP_MS     5000

struct natsd {
    pid_t pid;
    int port;
    int http_port;
    char dir[64];
    char conf_path[96];
    char log_path[96];
    char url[48];
    char name[64]; /* server_name: tells our server from another on the port */
};

static natsd *registry[MAX_SERVERS];
static bool atexit_set;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A short pause between polls of a condition with a deadline. */
static void poll_pause(void)
{
    (void)poll(NULL, 0, 5);
}

/* Ports handed out lately: a port picked free and not bound yet (a cluster
 * port before its server starts) must not be handed out twice. */
static int recent[128];
static unsigned n_recent;

static bool recently_given(int port)
{
    for (unsigned i = 0; i < n_recent && i < 128; i++) {
        if (recent[i] == port) {
            return true;
        }
    }
    return false;
}

static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return 0;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

int natsd_free_port(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int port = pick_port();
        if (port > 0 && !recently_given(port)) {
            recent[n_recent++ % 128] = port;
            return port;
        }
    }
    return 0;
}

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read what arrives on fd within timeout_ms (until close or cap). */
static size_t read_some(int fd, char *buf, size_t cap, int timeout_ms, const char *until)
{
    size_t got = 0;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (got + 1 < cap) {
        uint64_t now = now_ms();
        if (now >= end) {
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0) {
            break;
        }
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        if (until != NULL && strstr(buf, until) != NULL) {
            break;
        }
    }
    buf[got] = '\0';
    return got;
}

static void print_log_tail(const natsd *d)
{
    FILE *f = fopen(d->log_path, "r");
    if (f == NULL) {
        return;
    }
    char line[512];
    fprintf(stderr, "natsd: --- %s ---\n", d->log_path);
    while (fgets(line, sizeof line, f) != NULL) {
        fprintf(stderr, "natsd: %s", line);
    }
    fclose(f);
}

static bool reap(natsd *d, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid || (r < 0 && errno == ECHILD)) {
            d->pid = 0;
            return true;
        }
        if (now_ms() >= end) {
            return false;
        }
        poll_pause();
    }
}

bool natsd_running(natsd *d)
{
    if (d == NULL || d->pid <= 0) {
        return false;
    }
    int status;
    pid_t r = waitpid(d->pid, &status, WNOHANG);
    if (r == d->pid || (r < 0 && errno == ECHILD)) {
        d->pid = 0;
        return false;
    }
    return true;
}

static bool spawn(natsd *d)
{
    const char *bin = getenv("HAMOK_NATS_SERVER");
    if (bin == NULL || bin[0] == '\0') {
        bin = "nats-server";
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "natsd: fork: %s\n", strerror(errno));
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) {
            dup2(nul, 0);
            close(nul);
        }
        execlp(bin, bin, "-c", d->conf_path, (char *)NULL);
        fprintf(stderr, "natsd: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    d->pid = pid;
    /* Ready when it accepts a connection and greets it with an INFO that
     * names it: a port picked free may have been taken meanwhile by another
     * process's server, which must not pass for ours. */
    char want[96];
    snprintf(want, sizeof want, "\"server_name\":\"%s\"", d->name);
    uint64_t end = now_ms() + READY_MS;
    while (now_ms() < end) {
        if (!natsd_running(d)) {
            fprintf(stderr, "natsd: nats-server on port %d exited at start\n", d->port);
            print_log_tail(d);
            return false;
        }
        int fd = connect_port(d->port);
        if (fd >= 0) {
            char buf[4096];
            read_some(fd, buf, sizeof buf, 1000, "\r\n");
            close(fd);
            if (strncmp(buf, "INFO ", 5) == 0) {
                if (strstr(buf, want) != NULL) {
                    return true;
                }
                fprintf(stderr, "natsd: another server answers on port %d\n", d->port);
                natsd_kill(d, SIGKILL);
                return false;
            }
        }
        poll_pause();
    }
    fprintf(stderr, "natsd: nats-server on port %d not ready within %d ms\n", d->port, READY_MS);
    print_log_tail(d);
    natsd_kill(d, SIGKILL);
    return false;
}

static bool write_conf(natsd *d, const natsd_config *cfg)
{
    FILE *f = fopen(d->conf_path, "w");
    if (f == NULL) {
        fprintf(stderr, "natsd: %s: %s\n", d->conf_path, strerror(errno));
        return false;
    }
    fprintf(f, "listen: \"127.0.0.1:%d\"\nserver_name: \"%s\"\n", d->port, d->name);
    if (d->http_port > 0) {
        fprintf(f, "http: \"127.0.0.1:%d\"\n", d->http_port);
    }
    if (cfg->jetstream) {
        fprintf(f, "jetstream {\n  store_dir: \"%s/js\"\n}\n", d->dir);
    }
    if (cfg->cluster_port > 0) {
        fprintf(f, "cluster {\n  name: \"%s\"\n  listen: \"127.0.0.1:%d\"\n",
                cfg->cluster_name != NULL ? cfg->cluster_name : "hamok-test", cfg->cluster_port);
        if (cfg->routes != NULL && cfg->routes[0] != '\0') {
            fprintf(f, "  routes: [\n");
            char tmp[1024];
            snprintf(tmp, sizeof tmp, "%s", cfg->routes);
            char *save = NULL;
            for (char *r = strtok_r(tmp, ",", &save); r != NULL; r = strtok_r(NULL, ",", &save)) {
                fprintf(f, "    \"%s\"\n", r);
            }
            fprintf(f, "  ]\n");
        }
        fprintf(f, "}\n");
    }
    if (cfg->conf != NULL) {
        fprintf(f, "%s\n", cfg->conf);
    }
    return fclose(f) == 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_dir(const char *dir)
{
    if (getenv("HAMOK_KEEP_NATSD") != NULL) {
        fprintf(stderr, "natsd: keeping %s\n", dir);
        return;
    }
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void forget(natsd *d)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (registry[i] == d) {
            registry[i] = NULL;
        }
    }
}

natsd *natsd_start(const natsd_config *cfg)
{
    natsd_config none = {0};
    if (cfg == NULL) {
        cfg = &none;
    }
    int slot = -1;
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (registry[i] == NULL) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        fprintf(stderr, "natsd: too many servers\n");
        return NULL;
    }
    if (!atexit_set) {
        atexit(natsd_stop_all);
        atexit_set = true;
    }
    /* A picked port may be taken between the pick and the server's bind:
     * try again with another one. */
    for (int attempt = 0; attempt < 3; attempt++) {
        natsd *d = calloc(1, sizeof *d);
        if (d == NULL) {
            return NULL;
        }
        snprintf(d->dir, sizeof d->dir, "/tmp/hamok-natsd-XXXXXX");
        if (mkdtemp(d->dir) == NULL) {
            fprintf(stderr, "natsd: mkdtemp: %s\n", strerror(errno));
            free(d);
            return NULL;
        }
        snprintf(d->conf_path, sizeof d->conf_path, "%s/nats.conf", d->dir);
        snprintf(d->log_path, sizeof d->log_path, "%s/natsd.log", d->dir);
        d->port = cfg->port > 0 ? cfg->port : natsd_free_port();
        d->http_port = cfg->monitor ? natsd_free_port() : 0;
        snprintf(d->url, sizeof d->url, "nats://127.0.0.1:%d", d->port);
        static unsigned serial;
        snprintf(d->name, sizeof d->name, "hamok-test-%ld-%u-%d", (long)getpid(), serial++,
                 d->port);
        if (d->port > 0 && write_conf(d, cfg) && spawn(d)) {
            registry[slot] = d;
            return d;
        }
        if (d->pid > 0) {
            natsd_kill(d, SIGKILL);
        }
        remove_dir(d->dir);
        free(d);
        if (cfg->port > 0) {
            break; /* a fixed port: nothing else to try */
        }
    }
    return NULL;
}

bool natsd_kill(natsd *d, int sig)
{
    if (d == NULL || d->pid <= 0) {
        return true;
    }
    kill(d->pid, sig);
    if (reap(d, STOP_MS)) {
        return true;
    }
    kill(d->pid, SIGKILL);
    return reap(d, STOP_MS);
}

bool natsd_restart(natsd *d)
{
    if (d == NULL) {
        return false;
    }
    if (d->pid > 0 && !natsd_kill(d, SIGTERM)) {
        return false;
    }
    /* The port was ours a moment ago; a TIME_WAIT socket does not stop a
     * Go listener (SO_REUSEADDR), but give the bind a few tries. */
    uint64_t end = now_ms() + READY_MS;
    while (!spawn(d)) {
        if (now_ms() >= end) {
            return false;
        }
        poll_pause();
    }
    return true;
}

void natsd_stop(natsd **dp)
{
    if (dp == NULL || *dp == NULL) {
        return;
    }
    natsd *d = *dp;
    *dp = NULL;
    natsd_kill(d, SIGTERM);
    forget(d);
    remove_dir(d->dir);
    free(d);
}

void natsd_stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (registry[i] != NULL) {
            natsd *d = registry[i];
            natsd_stop(&d);
            registry[i] = NULL;
        }
    }
}

bool natsd_cluster_start(natsd **out, int n, const char *conf)
{
    if (n < 1 || n > 8) {
        return false;
    }
    int cports[8];
    for (int i = 0; i < n; i++) {
        cports[i] = natsd_free_port();
        out[i] = NULL;
    }
    for (int i = 0; i < n; i++) {
        char routes[512] = "";
        size_t len = 0;
        for (int j = 0; j < n; j++) {
            if (j != i) {
                len += (size_t)snprintf(routes + len, sizeof routes - len, "%snats://127.0.0.1:%d",
                                        len > 0 ? "," : "", cports[j]);
            }
        }
        natsd_config c = {.conf = conf,
                          .monitor = true,
                          .cluster_name = "hamok-test",
                          .cluster_port = cports[i],
                          .routes = routes};
        out[i] = natsd_start(&c);
        if (out[i] == NULL) {
            for (int j = 0; j < i; j++) {
                natsd_stop(&out[j]);
            }
            return false;
        }
    }
    for (int i = 0; i < n; i++) {
        if (!natsd_wait_routes(out[i], n - 1, READY_MS)) {
            fprintf(stderr, "natsd: server %d did not get its %d routes\n", i, n - 1);
            print_log_tail(out[i]);
            for (int j = 0; j < n; j++) {
                natsd_stop(&out[j]);
            }
            return false;
        }
    }
    return true;
}

/* GET /routez on the monitoring port: "num_routes": N. */
static int routes_now(const natsd *d)
{
    int fd = connect_port(d->http_port);
    if (fd < 0) {
        return -1;
    }
    const char req[] = "GET /routez HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    static char buf[65536];
    read_some(fd, buf, sizeof buf, 2000, NULL);
    close(fd);
    const char *p = strstr(buf, "\"num_routes\":");
    if (p == NULL) {
        return -1;
    }
    return atoi(p + strlen("\"num_routes\":"));
}

bool natsd_wait_routes(natsd *d, int n, int timeout_ms)
{
    if (d == NULL || d->http_port <= 0) {
        return false;
    }
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (routes_now(d) < n) {
        if (now_ms() >= end) {
            return false;
        }
        poll_pause();
    }
    return true;
}

int natsd_port(const natsd *d)
{
    return d->port;
}

const char *natsd_url(const natsd *d)
{
    return d->url;
}

const char *natsd_dir(const natsd *d)
{
    return d->dir;
}

pid_t natsd_pid(const natsd *d)
{
    return d->pid;
}

bool natsd_run(const char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid < 0) {
        return false;
    }
    if (pid == 0) {
        int fd = open(log != NULL ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return false;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
