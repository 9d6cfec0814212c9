/* hamokctl: run a Hamok peer (`hamokctl peer`) and inspect or operate a
 * cluster through its peers' HTTP addresses (status, peers, get, put, del,
 * watch), generate CURVE keys (keygen). See docs/HAMOKCTL.md. */
#ifndef HAMOKCTL_H
#define HAMOKCTL_H

#include <stdbool.h>
#include <stddef.h>

/* Exit codes of every subcommand. */
enum {
    EXIT_OK = 0,
    EXIT_FAIL = 1,        /* the operation failed (not found, refused, timeout) */
    EXIT_USAGE = 2,       /* bad command line */
    EXIT_UNREACHABLE = 3, /* no peer answered */
};

int hamokctl_peer(int argc, char **argv);
int hamokctl_client(const char *cmd, int argc, char **argv);
int hamokctl_keygen(int argc, char **argv);

/* The value of environment variable `name`, or `def` when unset or empty. */
const char *env_or(const char *name, const char *def);
/* Parse a decimal in [min, max]; false on garbage. */
bool parse_u64(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out);

#endif
