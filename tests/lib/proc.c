/* Child processes for multi-process tests (proc.h). */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_PROCS 64

/* The pids of every child still running (not pointers: a test that fails
 * leaves its frames behind, and the processes must still be killed). */
static pid_t procs[MAX_PROCS];
static bool registered;

static void forget(pid_t pid)
{
    for (size_t i = 0; i < MAX_PROCS; i++) {
        if (procs[i] == pid) {
            procs[i] = 0;
        }
    }
}

static void remember(pid_t pid)
{
    if (!registered) {
        atexit(hamok_proc_kill_all);
        registered = true;
    }
    for (size_t i = 0; i < MAX_PROCS; i++) {
        if (procs[i] == 0) {
            procs[i] = pid;
            return;
        }
    }
}

static void reap(pid_t pid, int *status)
{
    kill(pid, SIGCONT); /* a stopped process must run to die */
    kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (status != NULL) {
        *status = st;
    }
    forget(pid);
}

uint64_t hamok_proc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void hamok_proc_poll_pause(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

bool hamok_proc_spawn(hamok_proc *p, char *const argv[], char *const env[], const char *log_path)
{
    memset(p, 0, sizeof *p);
    size_t n_env = 0, n_add = 0;
    while (environ[n_env] != NULL) {
        n_env++;
    }
    while (env != NULL && env[n_add] != NULL) {
        n_add++;
    }
    char **envp = calloc(n_env + n_add + 1, sizeof *envp);
    if (envp == NULL) {
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_add; i++) {
        envp[k++] = env[i];
    }
    for (size_t i = 0; i < n_env; i++) {
        /* Added variables win over inherited ones of the same name. */
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool shadowed = false;
        for (size_t j = 0; j < n_add; j++) {
            if (strncmp(env[j], environ[i], nl) == 0 && env[j][nl] == '=') {
                shadowed = true;
            }
        }
        if (!shadowed) {
            envp[k++] = environ[i];
        }
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        free(envp);
        return false;
    }
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
            _exit(126);
        }
        /* The child dies with the test: no orphaned peers. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    free(envp);
    p->pid = pid;
    remember(pid);
    return true;
}

void hamok_proc_signal(hamok_proc *p, int sig)
{
    if (p->pid > 0) {
        kill(p->pid, sig);
    }
}

bool hamok_proc_exited(hamok_proc *p)
{
    if (p->pid <= 0) {
        return true;
    }
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        forget(p->pid);
        p->status = st;
        p->exited = true;
        p->pid = 0;
        return true;
    }
    return false;
}

bool hamok_proc_wait(hamok_proc *p, unsigned timeout_ms)
{
    uint64_t end = hamok_proc_now_ms() + timeout_ms;
    while (!hamok_proc_exited(p)) {
        if (hamok_proc_now_ms() >= end) {
            return false;
        }
        hamok_proc_poll_pause(5);
    }
    return true;
}

void hamok_proc_kill(hamok_proc *p)
{
    if (p->pid > 0) {
        reap(p->pid, &p->status);
        p->exited = true;
        p->pid = 0;
    }
}

void hamok_proc_kill_all(void)
{
    for (size_t i = 0; i < MAX_PROCS; i++) {
        if (procs[i] != 0) {
            reap(procs[i], NULL);
        }
    }
}
