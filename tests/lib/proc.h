/* Child processes for multi-process tests: spawn with a log file, signal,
 * wait with a deadline. Every process spawned is remembered and killed
 * (SIGKILL, then reaped) by hamok_proc_kill_all(), which runs at exit too,
 * so a failing test never leaves peers behind. */
#ifndef HAMOK_TESTS_PROC_H
#define HAMOK_TESTS_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct hamok_proc {
    pid_t pid;  /* 0 when not running */
    int status; /* wait status once reaped */
    bool exited;
} hamok_proc;

/* Start argv[0] (a path) with argv, the environment plus `env` (NULL or a
 * NULL-terminated list of "NAME=value"), stdin from /dev/null, stdout and
 * stderr appended to `log_path`. false (errno set) on failure. */
bool hamok_proc_spawn(hamok_proc *p, char *const argv[], char *const env[], const char *log_path);

/* Send a signal (no-op when not running). */
void hamok_proc_signal(hamok_proc *p, int sig);

/* Has it exited? Reaps it if so. */
bool hamok_proc_exited(hamok_proc *p);

/* Wait up to timeout_ms for it to exit; true when it did. */
bool hamok_proc_wait(hamok_proc *p, unsigned timeout_ms);

/* SIGKILL and reap. */
void hamok_proc_kill(hamok_proc *p);

/* SIGKILL and reap every process spawned and still running. */
void hamok_proc_kill_all(void);

/* Monotonic milliseconds. */
uint64_t hamok_proc_now_ms(void);

/* Sleep one polling interval (for deadline-polled waits). */
void hamok_proc_poll_pause(unsigned ms);

#endif
