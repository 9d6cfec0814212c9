/* hamok-coll-bench: the collections state machine alone (no Raft, no I/O).
 *
 *   hamok-coll-bench apply [--ops N] [--keys K] [--clients C]
 *       Applies N committed SET entries (one 16-byte key and 16-byte value
 *       each, K distinct keys in turn, C clients with exactly-once sessions)
 *       to one map through hamok__registry_apply: decode, session check,
 *       apply, event to a sink, result encoded and recorded. Reports ns per
 *       entry. The entries are encoded beforehand (not timed).
 *
 *   hamok-coll-bench rss [--entries M]
 *       RSS growth for M entries of 16-byte keys and values written as
 *       above, bytes per entry and overhead beyond the 32 payload bytes;
 *       then snapshot and restore times and the snapshot size.
 *
 * Exit status 0 when the run completed and its own checks held. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec/command.h"
#include "collections/registry.h"
#include "collections/session.h"
#include "util/alloc.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this process: on a shared machine, wall time also counts the
 * time other processes held the CPU. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, hamok_status st)
{
    fprintf(stderr, "hamok-coll-bench: %s: %s\n", what, hamok_status_str(st));
    exit(1);
}

static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, resident = 0;
    if (f == NULL || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

static uint64_t g_events;

static void sink(void *ud, const hamok_coll_event *ev)
{
    (void)ud;
    g_events += ev->type;
}

/* One SET entry, re-targeted per operation by patching the key and value in
 * place (their offsets are fixed in the encoding). */
typedef struct setter {
    hamok_buf data;
    size_t key_at;
    size_t val_at;
    hamok_entry e;
} setter;

static void setter_init(setter *s)
{
    uint8_t key[16], val[16];
    memset(key, 0xAA, sizeof key);
    memset(val, 0xBB, sizeof val);
    hamok_cmd_item it = {key, 16, true, val, 16, false, NULL, 0};
    hamok_cmd c = {HAMOK_KIND_MAP, HAMOK_OP_SET, (uint8_t *)"bench", 5, 0, &it, 1};
    memset(s, 0, sizeof *s);
    hamok_status st = hamok__cmd_encode(&c, &s->data);
    if (st != HAMOK_OK) {
        die("encode", st);
    }
    for (size_t i = 0; i + 16 <= s->data.len; i++) {
        if (s->key_at == 0 && s->data.data[i] == 0xAA && s->data.data[i + 15] == 0xAA) {
            s->key_at = i;
        }
        if (s->val_at == 0 && s->data.data[i] == 0xBB && s->data.data[i + 15] == 0xBB) {
            s->val_at = i;
        }
    }
    s->e.term = 1;
    s->e.type = HAMOK_ENTRY_COMMAND;
    s->e.data = s->data.data;
    s->e.len = s->data.len;
}

static void setter_target(setter *s, uint64_t key, uint64_t val, uint64_t client, uint64_t seq)
{
    memset(s->data.data + s->key_at, 0, 16);
    memset(s->data.data + s->val_at, 0, 16);
    memcpy(s->data.data + s->key_at, &key, sizeof key);
    memcpy(s->data.data + s->val_at, &val, sizeof val);
    s->e.client = hamok__id_from_u64(client);
    s->e.seq = seq;
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t dflt)
{
    for (int i = 0; i + 1 < argc; i++) {
        if (strcmp(argv[i], name) == 0) {
            return strtoull(argv[i + 1], NULL, 10);
        }
    }
    return dflt;
}

/* Apply `n` SETs over `keys` keys from `clients` clients, starting at
 * `*index`. */
static void apply_sets(hamok_registry *r, setter *s, uint64_t n, uint64_t keys, uint64_t clients,
                       uint64_t *index, hamok_buf *result)
{
    for (uint64_t i = 0; i < n; i++) {
        uint64_t client = 1 + i % clients;
        setter_target(s, i % keys, i, client, 1 + i / clients);
        hamok__buf_reset(result);
        hamok_status st = hamok__registry_apply(r, ++*index, &s->e, result, sink, NULL);
        if (st != HAMOK_OK) {
            die("apply", st);
        }
    }
}

static int cmd_apply(int argc, char **argv)
{
    uint64_t ops = arg_u64(argc, argv, "--ops", 1000000);
    uint64_t keys = arg_u64(argc, argv, "--keys", ops);
    uint64_t clients = arg_u64(argc, argv, "--clients", 3);
    hamok_registry *r;
    hamok_status st = hamok__registry_new(&r, 0);
    if (st != HAMOK_OK) {
        die("registry", st);
    }
    setter s;
    setter_init(&s);
    hamok_buf result = HAMOK_BUF_INIT;
    uint64_t index = 0;
    double t0 = now_s();
    double c0 = cpu_s();
    apply_sets(r, &s, ops, keys, clients, &index, &result);
    double dt = now_s() - t0;
    double dc = cpu_s() - c0;
    const hamok_coll *c;
    if (hamok__registry_lookup(r, HAMOK_KIND_MAP, (const uint8_t *)"bench", 5, &c) != HAMOK_OK ||
        hamok__coll_size(c) != (keys < ops ? keys : ops)) {
        fprintf(stderr, "hamok-coll-bench: wrong final size\n");
        return 1;
    }
    printf("apply: %" PRIu64 " SET entries (16-byte keys and values, %" PRIu64
           " distinct keys, %" PRIu64 " clients with sessions)\n",
           ops, keys, clients);
    printf("  wall %.3f s = %.0f ns/entry (%.0f entries/s); CPU %.3f s = %.0f ns/entry\n", dt,
           dt * 1e9 / (double)ops, (double)ops / dt, dc, dc * 1e9 / (double)ops);
    hamok__buf_free(&result);
    hamok__buf_free(&s.data);
    hamok__registry_destroy(&r);
    return 0;
}

static hamok_status to_buf(void *ud, const void *data, size_t len)
{
    return hamok__buf_append(ud, data, len);
}

static int cmd_rss(int argc, char **argv)
{
    uint64_t entries = arg_u64(argc, argv, "--entries", 100000);
    uint64_t clients = arg_u64(argc, argv, "--clients", 3);
    setter s;
    setter_init(&s);
    hamok_buf result = HAMOK_BUF_INIT;
    if (hamok__buf_reserve(&result, 256) != HAMOK_OK) {
        die("buf", HAMOK_ERR_NOMEM);
    }
    long before = rss_bytes();
    hamok_registry *r;
    hamok_status st = hamok__registry_new(&r, 0);
    if (st != HAMOK_OK) {
        die("registry", st);
    }
    uint64_t index = 0;
    apply_sets(r, &s, entries, entries, clients, &index, &result);
    long after = rss_bytes();
    double per = (double)(after - before) / (double)entries;
    printf("rss: %" PRIu64 " entries of 16-byte keys and values (%" PRIu64
           " clients, session window %u)\n",
           entries, clients, HAMOK_SESSION_DEFAULT_WINDOW);
    printf("  RSS growth %.1f MiB = %.1f bytes/entry (payload 32, overhead %.1f)\n",
           (double)(after - before) / 1048576.0, per, per - 32.0);

    hamok_buf snap = HAMOK_BUF_INIT;
    double t0 = now_s();
    st = hamok__registry_snapshot(r, to_buf, &snap);
    double t_snap = now_s() - t0;
    if (st != HAMOK_OK) {
        die("snapshot", st);
    }
    hamok_registry *r2;
    if (hamok__registry_new(&r2, 0) != HAMOK_OK) {
        die("registry", HAMOK_ERR_NOMEM);
    }
    t0 = now_s();
    st = hamok__registry_restore(r2, snap.data, snap.len);
    double t_restore = now_s() - t0;
    if (st != HAMOK_OK) {
        die("restore", st);
    }
    printf("  snapshot %.1f MiB in %.1f ms, restore in %.1f ms\n", (double)snap.len / 1048576.0,
           t_snap * 1e3, t_restore * 1e3);
    hamok__buf_free(&snap);
    hamok__buf_free(&result);
    hamok__buf_free(&s.data);
    hamok__registry_destroy(&r);
    hamok__registry_destroy(&r2);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "apply") == 0) {
        return cmd_apply(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "rss") == 0) {
        return cmd_rss(argc - 1, argv + 1);
    }
    fprintf(stderr,
            "usage: hamok-coll-bench apply [--ops N] [--keys K] [--clients C]\n"
            "       hamok-coll-bench rss [--entries M] [--clients C]\n");
    return 2;
}
