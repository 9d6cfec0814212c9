/* hamokctl entry point: subcommand dispatch and the shared helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hamok/hamok.h"
#include "hamokctl.h"

const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : def;
}

bool parse_u64(const char *s, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    if (s == NULL || s[0] == '\0' || s[0] == '-') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: hamokctl <command> [options]\n"
        "\n"
        "commands:\n"
        "  peer      run a peer of a cluster (zmq or nats transport), with an optional HTTP\n"
        "            server for /healthz, /metrics and JSON views of the collections\n"
        "  status    role, term, commit/applied index and lag of each peer (--endpoints)\n"
        "  peers     the members of the cluster as one peer sees them\n"
        "  get       read a map entry:        hamokctl get MAP KEY\n"
        "  put       write a map entry:       hamokctl put MAP KEY VALUE   (VALUE '-' = stdin)\n"
        "  del       remove a map entry:      hamokctl del MAP KEY\n"
        "  watch     stream a map's events:   hamokctl watch MAP\n"
        "  keygen    generate a CURVE key pair for the zmq transport\n"
        "  version   print the library version\n"
        "\n"
        "'hamokctl <command> --help' describes each command's options. Exit codes: 0 ok,\n"
        "1 the operation failed, 2 bad usage, 3 no peer reachable.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("hamokctl %s\n", hamok_version());
        return EXIT_OK;
    }
    if (strcmp(cmd, "peer") == 0) {
        return hamokctl_peer(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "keygen") == 0) {
        return hamokctl_keygen(argc - 1, argv + 1);
    }
    static const char *const client_cmds[] = {"status", "peers", "get", "put", "del", "watch"};
    for (size_t i = 0; i < sizeof client_cmds / sizeof client_cmds[0]; i++) {
        if (strcmp(cmd, client_cmds[i]) == 0) {
            return hamokctl_client(cmd, argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "hamokctl: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
