/* hamokctl keygen: CURVE key pairs for the zmq transport. Prints the pair,
 * or writes NAME.key (secret, mode 0600) and NAME.pub into a directory and
 * appends the public key to DIR/allowed_keys (the file
 * `hamokctl peer --curve-allowed` reads). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hamokctl.h"
#ifdef HAMOKCTL_WITH_ZMQ
#include "hamok/zmq.h"
#endif

static void keygen_usage(FILE *f)
{
    fprintf(f,
            "usage: hamokctl keygen [--dir DIR --name NAME] [-o table|json]\n"
            "  without --dir: print the public and the secret key\n"
            "  --dir DIR     write DIR/NAME.key (secret, 0600), DIR/NAME.pub and append the\n"
            "                public key to DIR/allowed_keys\n"
            "  --name NAME   file name stem (default peer)\n");
}

#ifdef HAMOKCTL_WITH_ZMQ
static bool write_file(const char *path, const char *text, int flags, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode);
    if (fd < 0) {
        fprintf(stderr, "hamokctl keygen: %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t n = strlen(text);
    bool ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "hamokctl keygen: cannot write %s\n", path);
    }
    return ok;
}
#endif

int hamokctl_keygen(int argc, char **argv)
{
    const char *dir = NULL, *name = "peer";
    bool json = false;
    static const struct option longs[] = {{"dir", required_argument, NULL, 'd'},
                                          {"name", required_argument, NULL, 'n'},
                                          {"output", required_argument, NULL, 'o'},
                                          {"help", no_argument, NULL, 'h'},
                                          {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 'o': json = strcmp(optarg, "json") == 0; break;
        case 'h': keygen_usage(stdout); return EXIT_OK;
        default: keygen_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || strchr(name, '/') != NULL || name[0] == '\0') {
        keygen_usage(stderr);
        return EXIT_USAGE;
    }
#ifdef HAMOKCTL_WITH_ZMQ
    char pub[HAMOK_ZMQ_KEY_LEN + 1], sec[HAMOK_ZMQ_KEY_LEN + 1];
    hamok_status st = hamok_zmq_keygen(pub, sec);
    if (st != HAMOK_OK) {
        fprintf(stderr, "hamokctl keygen: %s\n", hamok_status_str(st));
        return EXIT_FAIL;
    }
    if (dir == NULL) {
        if (json) {
            printf("{\"public\": \"%s\", \"secret\": \"%s\"}\n", pub, sec);
        } else {
            printf("public: %s\nsecret: %s\n", pub, sec);
        }
        return EXIT_OK;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "hamokctl keygen: %s: %s\n", dir, strerror(errno));
        return EXIT_FAIL;
    }
    char path[4096], line[HAMOK_ZMQ_KEY_LEN + 2];
    snprintf(line, sizeof line, "%s\n", sec);
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    if (!write_file(path, line, O_EXCL, 0600)) {
        return EXIT_FAIL;
    }
    snprintf(line, sizeof line, "%s\n", pub);
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    if (!write_file(path, line, O_TRUNC, 0644)) {
        return EXIT_FAIL;
    }
    snprintf(path, sizeof path, "%s/allowed_keys", dir);
    if (!write_file(path, line, O_APPEND, 0644)) {
        return EXIT_FAIL;
    }
    printf("%s\n", pub);
    return EXIT_OK;
#else
    (void)dir;
    (void)json;
    fprintf(stderr, "hamokctl keygen: this build has no zmq transport\n");
    return EXIT_FAIL;
#endif
}
