/* Unit tests of the durable storage (src/storage): round trips, segment
 * rolling, snapshots and compaction, torn tails, corruption, the batch sync
 * policy. Each test runs in a fresh directory under /tmp, removed at the end. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec/codec.h"
#include "raft/raft.h"
#include "storage/storage.h"
#include "util/alloc.h"

#define PATHLEN 512

/* snprintf into an array, failing the test on truncation. */
#define FMT(buf, ...)                                    \
    do {                                                 \
        int n_ = snprintf(buf, sizeof buf, __VA_ARGS__); \
        assert_true(n_ >= 0 && (size_t)n_ < sizeof buf); \
    } while (0)

/* ------------------------------------------------------------------------
 * Files. */

typedef struct fixture {
    char root[PATHLEN]; /* mkdtemp */
    char dir[PATHLEN];  /* root/data: the storage directory (not yet created) */
} fixture;

static void rm_rf(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
                    continue;
                }
                char sub[PATHLEN];
                FMT(sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL) {
        return -1;
    }
    FMT(f->root, "/tmp/hamok-storage-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    FMT(f->dir, "%s/data", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rm_rf(f->root);
    free(f);
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    assert_true(n >= 0);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (uint64_t)sb.st_size;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
    size_t n;
    uint8_t *p = read_file(path, &n);
    assert_true(off < n);
    p[off] ^= (uint8_t)(1u << bit);
    write_file(path, p, n);
    free(p);
}

/* Names in dir starting with prefix, sorted; returns the count. */
static size_t list_prefix(const char *dir, const char *prefix, char names[][128], size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            if (n < max) {
                int k_ = snprintf(names[n], 128, "%s", de->d_name);
                assert_true(k_ > 0 && k_ < 128);
            }
            n++;
        }
    }
    closedir(d);
    size_t k = n < max ? n : max;
    for (size_t i = 1; i < k; i++) { /* insertion sort */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[128];
            memcpy(t, names[j], 128);
            memcpy(names[j], names[j - 1], 128);
            memcpy(names[j - 1], t, 128);
        }
    }
    return n;
}

static size_t count_prefix(const char *dir, const char *prefix)
{
    char names[1][128];
    return list_prefix(dir, prefix, names, 0);
}

/* The last WAL segment's path. */
static void last_segment(const char *dir, char *out)
{
    char names[256][128];
    size_t n = list_prefix(dir, "wal-", names, 256);
    assert_true(n > 0 && n <= 256);
    int k_ = snprintf(out, PATHLEN, "%s/%s", dir, names[n - 1]);
    assert_true(k_ > 0 && k_ < PATHLEN);
}

static void copy_dir(const char *from, const char *to)
{
    mkdir(to, 0700);
    DIR *d = opendir(from);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char a[PATHLEN], b[PATHLEN];
        FMT(a, "%s/%s", from, de->d_name);
        FMT(b, "%s/%s", to, de->d_name);
        size_t n;
        uint8_t *p = read_file(a, &n);
        write_file(b, p, n);
        free(p);
    }
    closedir(d);
}

/* ------------------------------------------------------------------------
 * Entries and the expected log. */

static const uint8_t ID_A[HAMOK_ID_LEN] = {0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8,
                                           0xA9, 0xAA, 0xAB, 0xAC, 0xAD, 0xAE, 0xAF, 0xB0};
static const uint8_t ID_B[HAMOK_ID_LEN] = {0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8,
                                           0xB9, 0xBA, 0xBB, 0xBC, 0xBD, 0xBE, 0xBF, 0xC0};

typedef struct model {
    uint64_t first; /* index of e[0] */
    hamok_entry *e;
    size_t n, cap;
} model;

static hamok_entry mk_entry(uint64_t index, uint64_t term, size_t len, uint8_t salt)
{
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = term;
    e.type = (uint8_t)(1 + index % 3);
    e.client = hamok__id_from_u64(index * 977 + salt);
    e.seq = index * 13 + salt;
    e.len = len;
    if (len > 0) {
        e.data = malloc(len);
        assert_non_null(e.data);
        for (size_t i = 0; i < len; i++) {
            e.data[i] = (uint8_t)(index * 31 + i * 7 + salt);
        }
    }
    return e;
}

static void model_init(model *m)
{
    memset(m, 0, sizeof *m);
    m->first = 1;
}

static void model_truncate(model *m, uint64_t from)
{
    while (m->n > 0 && m->first + m->n - 1 >= from) {
        m->n--;
        free(m->e[m->n].data);
    }
}

/* Takes e's data. */
static void model_put(model *m, uint64_t index, hamok_entry e)
{
    model_truncate(m, index);
    assert_int_equal(index, m->first + m->n);
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->e = realloc(m->e, m->cap * sizeof *m->e);
        assert_non_null(m->e);
    }
    m->e[m->n++] = e;
}

/* The snapshot at base: entries <= base go. */
static void model_compact(model *m, uint64_t base)
{
    size_t drop = 0;
    while (drop < m->n && m->first + drop <= base) {
        free(m->e[drop].data);
        drop++;
    }
    memmove(m->e, m->e + drop, (m->n - drop) * sizeof *m->e);
    m->n -= drop;
    m->first = base + 1;
}

static void model_free(model *m)
{
    model_truncate(m, 0);
    free(m->e);
    memset(m, 0, sizeof *m);
}

static hamok_storage *open_ok(const char *dir, const hamok_storage_options *opt,
                              const uint8_t *fresh, hamok_storage_recovered *rec)
{
    hamok_storage *s = NULL;
    char err[1024];
    hamok_status st = hamok__storage_open(&s, dir, opt, fresh, rec, err, sizeof err);
    if (st != HAMOK_OK) {
        fail_msg("open %s: %s: %s", dir, hamok_status_str(st), err);
    }
    assert_non_null(s);
    return s;
}

static hamok_status open_err(const char *dir, const hamok_storage_options *opt, char *err,
                             size_t errlen)
{
    hamok_storage *s = NULL;
    hamok_storage_recovered rec;
    hamok_status st = hamok__storage_open(&s, dir, opt, ID_B, &rec, err, errlen);
    if (st == HAMOK_OK) {
        hamok__storage_close(&s);
        hamok__storage_recovered_free(&rec);
    } else {
        assert_null(s);
        assert_int_equal(rec.n_entries, 0);
        assert_null(rec.entries);
    }
    return st;
}

/* Append one entry to storage and model. */
static void put(hamok_storage *s, model *m, uint64_t index, uint64_t term, size_t len)
{
    hamok_entry e = mk_entry(index, term, len, 0);
    hamok_status st = hamok__storage_append(s, index, &e, 1, 0);
    if (st != HAMOK_OK) {
        fail_msg("append %llu: %s: %s", (unsigned long long)index, hamok_status_str(st),
                 hamok__storage_error(s));
    }
    model_put(m, index, e);
}

static void check_log(const hamok_storage_recovered *rec, const model *m)
{
    assert_int_equal(rec->first_index, m->first);
    assert_int_equal(rec->n_entries, m->n);
    for (size_t i = 0; i < m->n; i++) {
        const hamok_entry *a = &rec->entries[i], *b = &m->e[i];
        assert_int_equal(a->term, b->term);
        assert_int_equal(a->type, b->type);
        assert_true(hamok__id_eq(&a->client, &b->client));
        assert_int_equal(a->seq, b->seq);
        assert_int_equal(a->len, b->len);
        if (b->len > 0) {
            assert_memory_equal(a->data, b->data, b->len);
        }
    }
}

static void sync_ok(hamok_storage *s, uint64_t want_index, uint64_t want_term)
{
    uint64_t di = 99, dt = 99;
    hamok_status st = hamok__storage_sync(s, &di, &dt);
    if (st != HAMOK_OK) {
        fail_msg("sync: %s: %s", hamok_status_str(st), hamok__storage_error(s));
    }
    assert_int_equal(di, want_index);
    assert_int_equal(dt, want_term);
}

static void small_segments(hamok_storage_options *o)
{
    hamok__storage_options_default(o);
    o->segment_size = 4096;
}

/* ------------------------------------------------------------------------
 * Identity, round trip, argument rules. */

static void fresh_dir_gets_supplied_id(void **state)
{
    fixture *f = *state;
    char err[512];
    hamok_storage *s = NULL;
    hamok_storage_recovered rec;
    /* Fresh directory and no id: refused, nothing kept. */
    assert_int_equal(hamok__storage_open(&s, f->dir, NULL, NULL, &rec, err, sizeof err),
                     HAMOK_ERR_INVALID);
    assert_null(s);
    assert_false(file_exists(f->dir) && count_prefix(f->dir, "peer-id") > 0);

    s = open_ok(f->dir, NULL, ID_A, &rec);
    assert_true(rec.id_created);
    assert_memory_equal(rec.id.b, ID_A, HAMOK_ID_LEN);
    assert_int_equal(rec.term, 0);
    assert_false(rec.has_vote);
    assert_false(rec.has_snapshot);
    assert_int_equal(rec.first_index, 1);
    assert_int_equal(rec.n_entries, 0);
    assert_int_equal(hamok__storage_last_index(s), 0);
    sync_ok(s, 0, 0);
    hamok__storage_close(&s);
    assert_null(s);
    hamok__storage_recovered_free(&rec);

    /* Reopen with another fresh id: the stored one wins. */
    s = open_ok(f->dir, NULL, ID_B, &rec);
    assert_false(rec.id_created);
    assert_memory_equal(rec.id.b, ID_A, HAMOK_ID_LEN);
    hamok__storage_close(&s);
    hamok__storage_recovered_free(&rec);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_memory_equal(rec.id.b, ID_A, HAMOK_ID_LEN);
    hamok__storage_close(&s);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s); /* NULL-safe */
}

static void round_trip(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    model m;
    model_init(&m);

    hamok_id vote = hamok__id_from_u64(7);
    assert_int_equal(hamok__storage_save_hard_state(s, 2, true, &vote), HAMOK_OK);
    const size_t sizes[] = {0, 1, 100, 4096, 1u << 20, 0, 17, 65536};
    uint64_t idx = 1;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++, idx++) {
        put(s, &m, idx, i < 3 ? 1 : 2, sizes[i]);
    }
    /* Truncate the last three and write others in their place. */
    assert_int_equal(hamok__storage_truncate(s, 6, 0), HAMOK_OK);
    model_truncate(&m, 6);
    assert_int_equal(hamok__storage_last_index(s), 5);
    assert_int_equal(hamok__storage_truncate(s, 40, 0), HAMOK_OK); /* beyond: no-op */
    assert_int_equal(hamok__storage_save_hard_state(s, 3, false, NULL), HAMOK_OK);
    for (idx = 6; idx <= 9; idx++) {
        put(s, &m, idx, 3, (size_t)idx * 10);
    }
    /* A batch of several entries in one call. */
    hamok_entry batch[5];
    for (size_t i = 0; i < 5; i++) {
        batch[i] = mk_entry(10 + i, 3, i * 3, 1);
    }
    assert_int_equal(hamok__storage_append(s, 10, batch, 5, 0), HAMOK_OK);
    for (size_t i = 0; i < 5; i++) {
        model_put(&m, 10 + i, batch[i]);
    }
    sync_ok(s, 14, 3);
    hamok_storage_stats stats;
    hamok__storage_stats(s, &stats);
    assert_int_equal(stats.entries_appended, 17);
    assert_true(stats.wal_bytes > (1u << 20));
    assert_true(stats.bytes_written >= stats.wal_bytes);
    hamok__storage_close(&s);

    for (int round = 0; round < 2; round++) {
        s = open_ok(f->dir, NULL, ID_B, &rec);
        assert_memory_equal(rec.id.b, ID_A, HAMOK_ID_LEN);
        assert_int_equal(rec.term, 3);
        assert_int_equal(rec.has_vote, round == 1);
        assert_string_equal(rec.notice, "");
        check_log(&rec, &m);
        assert_int_equal(hamok__storage_first_index(s), 1);
        assert_int_equal(hamok__storage_last_index(s), 14 + (uint64_t)round);
        uint64_t t = 0;
        assert_true(hamok__storage_term_at(s, 3, &t));
        assert_int_equal(t, 1);
        assert_true(hamok__storage_term_at(s, 5, &t));
        assert_int_equal(t, 2);
        assert_true(hamok__storage_term_at(s, 0, &t));
        assert_int_equal(t, 0);
        assert_false(hamok__storage_term_at(s, 16, &t));
        hamok__storage_recovered_free(&rec);
        if (round == 0) {
            /* Vote in term 3 and append more after the reopen. */
            vote = hamok__id_from_u64(9);
            assert_int_equal(hamok__storage_save_hard_state(s, 3, true, &vote), HAMOK_OK);
            put(s, &m, 15, 3, 5);
        }
        hamok__storage_close(&s);
    }
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_true(rec.has_vote);
    assert_true(hamok__id_eq(&rec.vote, &vote));
    hamok__storage_close(&s);
    hamok__storage_recovered_free(&rec);
    model_free(&m);
}

static void append_rules(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    model m;
    model_init(&m);
    hamok_entry e = mk_entry(1, 1, 4, 0);
    /* The term must be saved first. */
    assert_int_equal(hamok__storage_append(s, 1, &e, 1, 0), HAMOK_ERR_INVALID);
    assert_true(strlen(hamok__storage_error(s)) > 0);
    assert_int_equal(hamok__storage_save_hard_state(s, 5, false, NULL), HAMOK_OK);
    assert_int_equal(hamok__storage_append(s, 2, &e, 1, 0), HAMOK_ERR_INVALID); /* gap */
    assert_int_equal(hamok__storage_append(s, 0, &e, 1, 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_append(s, 1, &e, 0, 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_append(s, 1, NULL, 1, 0), HAMOK_ERR_INVALID);
    hamok_entry bad = e;
    bad.data = NULL;
    assert_int_equal(hamok__storage_append(s, 1, &bad, 1, 0), HAMOK_ERR_INVALID);
    bad = e;
    bad.term = 0;
    assert_int_equal(hamok__storage_append(s, 1, &bad, 1, 0), HAMOK_ERR_INVALID);
    free(e.data);

    for (uint64_t i = 1; i <= 6; i++) {
        put(s, &m, i, i < 4 ? 2 : 4, 8);
    }
    /* Terms never decrease along the log. */
    e = mk_entry(7, 3, 1, 0);
    assert_int_equal(hamok__storage_append(s, 7, &e, 1, 0), HAMOK_ERR_INVALID);
    /* Overlapping append: replaces 4.. (an implicit truncate). */
    assert_int_equal(hamok__storage_append(s, 4, &e, 1, 0), HAMOK_OK);
    model_put(&m, 4, e);
    assert_int_equal(hamok__storage_last_index(s), 4);
    put(s, &m, 5, 5, 3);
    hamok__storage_close(&s);
    s = open_ok(f->dir, NULL, NULL, &rec);
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    model_free(&m);
}

static void hard_state_rules(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    hamok_id a = hamok__id_from_u64(1), b = hamok__id_from_u64(2);
    hamok_storage_stats st0, st1;
    assert_int_equal(hamok__storage_save_hard_state(s, 4, true, &a), HAMOK_OK);
    hamok__storage_stats(s, &st0);
    /* Same again: nothing written. */
    assert_int_equal(hamok__storage_save_hard_state(s, 4, true, &a), HAMOK_OK);
    hamok__storage_stats(s, &st1);
    assert_int_equal(st1.fsyncs, st0.fsyncs);
    assert_int_equal(st1.bytes_written, st0.bytes_written);
    /* A second vote in term 4, un-voting, a term going back: refused. */
    assert_int_equal(hamok__storage_save_hard_state(s, 4, true, &b), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_save_hard_state(s, 4, false, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_save_hard_state(s, 3, false, NULL), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_save_hard_state(s, 5, true, NULL), HAMOK_ERR_INVALID);
    /* Each save is durable: temp file, fsync, rename, directory fsync. */
    assert_int_equal(hamok__storage_save_hard_state(s, 5, false, NULL), HAMOK_OK);
    hamok__storage_stats(s, &st1);
    assert_int_equal(st1.fsyncs, st0.fsyncs + 1);
    assert_int_equal(st1.dir_fsyncs, st0.dir_fsyncs + 1);
    assert_int_equal(hamok__storage_save_hard_state(s, 5, true, &b), HAMOK_OK);
    hamok__storage_close(&s);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_int_equal(rec.term, 5);
    assert_true(rec.has_vote);
    assert_true(hamok__id_eq(&rec.vote, &b));
    /* The reopened storage knows the vote too. */
    assert_int_equal(hamok__storage_save_hard_state(s, 5, true, &a), HAMOK_ERR_INVALID);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
}

/* ------------------------------------------------------------------------
 * Segments. */

static void segment_rolling(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    small_segments(&o);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 9, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    uint64_t term = 1, next = 1;
    uint32_t x = 12345;
    for (int i = 0; i < 3000; i++) {
        x = x * 1103515245u + 12345u;
        uint32_t r = (x >> 16) & 0x7FFF;
        if (r % 97 == 0 && next > 20) {
            /* Truncate a few back (sometimes across segment boundaries). */
            uint64_t from = next - 1 - r % 19;
            assert_int_equal(hamok__storage_truncate(s, from, 0), HAMOK_OK);
            model_truncate(&m, from);
            next = from;
            if (term < 9) {
                term++;
            }
            continue;
        }
        if (r % 71 == 0) {
            /* An overlapping append instead of an explicit truncate. */
            uint64_t at = next > 5 ? next - 3 : next;
            if (term < 9) {
                term++;
            }
            hamok_entry e = mk_entry(at, term, r % 50, 2);
            assert_int_equal(hamok__storage_append(s, at, &e, 1, 0), HAMOK_OK);
            model_put(&m, at, e);
            next = at + 1;
            continue;
        }
        put(s, &m, next, term, r % 300);
        next++;
        if (i % 500 == 0) {
            uint64_t t = 0;
            hamok__storage_term_at(s, next - 1, &t);
            sync_ok(s, next - 1, t);
        }
    }
    hamok_storage_stats stats;
    hamok__storage_stats(s, &stats);
    assert_true(stats.segments > 20);
    assert_int_equal(stats.segments, count_prefix(f->dir, "wal-"));
    /* Rolling syncs the finished segment: one fsync per roll at least. */
    assert_true(stats.fsyncs >= stats.segments_created - 1);
    hamok__storage_close(&s);
    for (int round = 0; round < 2; round++) {
        s = open_ok(f->dir, &o, NULL, &rec);
        check_log(&rec, &m);
        assert_false(rec.repaired_tail);
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
    }
    model_free(&m);
}

/* A segment file created but empty (the crash came before its header). */
static void torn_segment_header(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    small_segments(&o);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 100; i++) {
        put(s, &m, i, 1, 100);
    }
    sync_ok(s, 100, 1);
    hamok__storage_close(&s);
    char names[64][128];
    size_t n = list_prefix(f->dir, "wal-", names, 64);
    assert_true(n >= 2);
    /* The next segment, as a roll would name it, with 0 and then 40 zero bytes. */
    unsigned long long seq = strtoull(names[n - 1] + 4, NULL, 16);
    for (int k = 0; k < 2; k++) {
        char path[PATHLEN];
        FMT(path, "%s/wal-%016llx-%016llx.log", f->dir, seq + 1, 101ull);
        uint8_t zeros[40] = {0};
        write_file(path, zeros, k == 0 ? 0 : sizeof zeros);
        s = open_ok(f->dir, &o, NULL, &rec);
        assert_true(rec.repaired_tail);
        /* Removed, and made again (same name) as a proper empty segment. */
        assert_int_equal(file_size(path), 40);
        check_log(&rec, &m);
        hamok__storage_recovered_free(&rec);
        put(s, &m, 101, 1, 3);
        hamok__storage_close(&s);
        s = open_ok(f->dir, &o, NULL, &rec);
        check_log(&rec, &m);
        assert_false(rec.repaired_tail);
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
        model_truncate(&m, 101);
        s = open_ok(f->dir, &o, NULL, &rec);
        hamok__storage_recovered_free(&rec);
        assert_int_equal(hamok__storage_truncate(s, 101, 0), HAMOK_OK);
        hamok__storage_close(&s);
        n = list_prefix(f->dir, "wal-", names, 64);
        seq = strtoull(names[n - 1] + 4, NULL, 16);
    }
    model_free(&m);
}

static void missing_or_bad_segment_is_corrupt(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    small_segments(&o);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 200; i++) {
        put(s, &m, i, 1, 100);
    }
    hamok__storage_close(&s);
    model_free(&m);
    char names[64][128];
    size_t n = list_prefix(f->dir, "wal-", names, 64);
    assert_true(n >= 4);
    char keep[PATHLEN];
    FMT(keep, "%s/keep", f->root);
    copy_dir(f->dir, keep);

    /* A middle segment gone. */
    char path[PATHLEN], err[1024];
    FMT(path, "%s/%s", f->dir, names[1]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, "missing"));

    /* A middle segment's header damaged. */
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    flip_bit(path, 30, 2);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, names[1]));
    assert_non_null(strstr(err, "offset 0"));

    /* The last record of a middle segment cut short: not a torn tail. */
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    assert_int_equal(truncate(path, (off_t)(file_size(path) - 5)), 0);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, names[1]));
    assert_non_null(strstr(err, "runs past the end"));

    /* One bit of the last record of a middle segment. */
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    flip_bit(path, file_size(path) - 20, 4);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, names[1]));
    assert_non_null(strstr(err, "record checksum mismatch"));

    /* The first segment gone: the log would start at a later index. */
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    FMT(path, "%s/%s", f->dir, names[0]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, "missing"));
}

/* ------------------------------------------------------------------------
 * Torn tails and corruption. */

typedef struct canon {
    model m;
    char seg[PATHLEN];    /* the (only) segment */
    uint64_t rec_off[16]; /* offset of each record */
    uint64_t end;         /* file size */
} canon;

/* 10 entries of 100 bytes in one segment, synced and closed. */
static void build_canon(const char *dir, canon *c)
{
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model_init(&c->m);
    last_segment(dir, c->seg);
    for (uint64_t i = 1; i <= 10; i++) {
        sync_ok(s, i - 1, i == 1 ? 0 : 1);
        c->rec_off[i - 1] = file_size(c->seg);
        put(s, &c->m, i, 1, 100);
    }
    sync_ok(s, 10, 1);
    c->end = file_size(c->seg);
    hamok__storage_close(&s);
    assert_int_equal(c->end - c->rec_off[9], 16 + 41 + 100);
}

static void torn_tail_every_length(void **state)
{
    fixture *f = *state;
    canon c;
    build_canon(f->dir, &c);
    char work[PATHLEN];
    FMT(work, "%s/work", f->root);
    model nine;
    model_init(&nine);
    for (uint64_t i = 1; i <= 9; i++) {
        model_put(&nine, i, mk_entry(i, 1, 100, 0));
    }
    uint64_t recsize = c.end - c.rec_off[9];
    char seg[PATHLEN];
    FMT(seg, "%s/%s", work, strrchr(c.seg, '/') + 1);
    for (uint64_t cut = 1; cut <= recsize; cut++) {
        rm_rf(work);
        copy_dir(f->dir, work);
        assert_int_equal(truncate(seg, (off_t)(c.end - cut)), 0);
        hamok_storage_recovered rec;
        hamok_storage *s = open_ok(work, NULL, NULL, &rec);
        check_log(&rec, &nine);
        /* Cutting the whole record leaves a clean end: nothing to repair. */
        assert_int_equal(rec.repaired_tail, cut < recsize);
        if (cut < recsize) {
            assert_non_null(strstr(rec.notice, "torn"));
        }
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
        assert_int_equal(file_size(seg), c.rec_off[9]);
        /* The repair is on disk: a second open finds nothing to do. */
        s = open_ok(work, NULL, NULL, &rec);
        check_log(&rec, &nine);
        assert_false(rec.repaired_tail);
        hamok__storage_recovered_free(&rec);
        /* And the log goes on from there. */
        uint64_t di = 0, dt = 0;
        hamok_entry e = mk_entry(10, 1, 3, 0);
        assert_int_equal(hamok__storage_append(s, 10, &e, 1, 0), HAMOK_OK);
        free(e.data);
        assert_int_equal(hamok__storage_sync(s, &di, &dt), HAMOK_OK);
        assert_int_equal(di, 10);
        hamok__storage_close(&s);
    }
    rm_rf(work);
    model_free(&nine);
    model_free(&c.m);
}

static void torn_tail_zeros_and_final_crc(void **state)
{
    fixture *f = *state;
    canon c;
    build_canon(f->dir, &c);
    char work[PATHLEN];
    FMT(work, "%s/work", f->root);
    char seg[PATHLEN];
    FMT(seg, "%s/%s", work, strrchr(c.seg, '/') + 1);
    hamok_storage_recovered rec;
    hamok_storage *s;

    /* Zero bytes after the last record (blocks allocated, never written). */
    const size_t zlen[] = {1, 15, 16, 17, 4096};
    for (size_t k = 0; k < sizeof zlen / sizeof zlen[0]; k++) {
        rm_rf(work);
        copy_dir(f->dir, work);
        size_t n;
        uint8_t *p = read_file(seg, &n);
        p = realloc(p, n + zlen[k]);
        memset(p + n, 0, zlen[k]);
        write_file(seg, p, n + zlen[k]);
        free(p);
        s = open_ok(work, NULL, NULL, &rec);
        check_log(&rec, &c.m);
        assert_true(rec.repaired_tail);
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
        assert_int_equal(file_size(seg), c.end);
    }

    /* The final record damaged (but for its length): dropped as torn. */
    model nine;
    model_init(&nine);
    for (uint64_t i = 1; i <= 9; i++) {
        model_put(&nine, i, mk_entry(i, 1, 100, 0));
    }
    for (uint64_t off = c.rec_off[9] + 4; off < c.end; off += (off < c.rec_off[9] + 16 ? 1 : 29)) {
        rm_rf(work);
        copy_dir(f->dir, work);
        flip_bit(seg, off, 3);
        s = open_ok(work, NULL, NULL, &rec);
        check_log(&rec, &nine);
        assert_true(rec.repaired_tail);
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
        assert_int_equal(file_size(seg), c.rec_off[9]);
    }
    /* A damaged header followed by non-zero bytes is not a torn write. */
    rm_rf(work);
    copy_dir(f->dir, work);
    flip_bit(seg, c.rec_off[9] + 1, 0); /* the length */
    char err[1024];
    assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
    char want[64];
    FMT(want, "offset %llu:", (unsigned long long)c.rec_off[9]);
    assert_non_null(strstr(err, want));
    rm_rf(work);
    model_free(&nine);
    model_free(&c.m);
}

static void bit_flip_in_earlier_record_is_corrupt(void **state)
{
    fixture *f = *state;
    canon c;
    build_canon(f->dir, &c);
    char work[PATHLEN];
    FMT(work, "%s/work", f->root);
    const char *segname = strrchr(c.seg, '/') + 1;
    char seg[PATHLEN];
    FMT(seg, "%s/%s", work, segname);
    /* Every byte of record 5 (of 10), one bit each; and a few elsewhere. */
    uint64_t targets[] = {0, 3, 8};
    for (size_t t = 0; t < 3; t++) {
        uint64_t r = targets[t] == 3 ? 4 : targets[t];
        uint64_t from = c.rec_off[r], to = c.rec_off[r + 1];
        for (uint64_t off = from; off < to; off += (targets[t] == 3 ? 1 : 11)) {
            rm_rf(work);
            copy_dir(f->dir, work);
            flip_bit(seg, off, (int)(off % 8));
            char err[1024];
            hamok_status st = open_err(work, NULL, err, sizeof err);
            if (st != HAMOK_ERR_CORRUPT) {
                fail_msg("flip at %llu: %s", (unsigned long long)off, hamok_status_str(st));
            }
            assert_non_null(strstr(err, segname));
            char want[64];
            FMT(want, "offset %llu:", (unsigned long long)from);
            if (strstr(err, want) == NULL) {
                fail_msg("flip at %llu: message without %s: %s", (unsigned long long)off, want,
                         err);
            }
            /* Nothing was "repaired": the file is as damaged as before. */
            assert_int_equal(file_size(seg), c.end);
        }
    }
    rm_rf(work);
    model_free(&c.m);
}

/* ------------------------------------------------------------------------
 * Hard state and peer id damage. */

static void corrupt_hardstate_and_id_refused(void **state)
{
    fixture *f = *state;
    canon c;
    build_canon(f->dir, &c);
    model_free(&c.m);
    char work[PATHLEN], path[PATHLEN], err[1024];
    FMT(work, "%s/work", f->root);

    const char *files[] = {"hardstate", "peer-id"};
    for (size_t k = 0; k < 2; k++) {
        uint64_t size = 0;
        FMT(path, "%s/%s", f->dir, files[k]);
        size = file_size(path);
        for (uint64_t off = 0; off < size; off += 5) {
            rm_rf(work);
            copy_dir(f->dir, work);
            FMT(path, "%s/%s", work, files[k]);
            flip_bit(path, off, (int)(off % 8));
            assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
            assert_non_null(strstr(err, files[k]));
            assert_non_null(strstr(err, "offset"));
        }
        /* Cut short. */
        rm_rf(work);
        copy_dir(f->dir, work);
        assert_int_equal(truncate(path, 10), 0);
        assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
        /* Missing while a log exists: never silently a fresh peer. */
        rm_rf(work);
        copy_dir(f->dir, work);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
        assert_non_null(strstr(err, "missing"));
    }
    rm_rf(work);
}

/* The client sequence floor (client-seq): durable, only grows, absent = 0,
 * every flipped bit and a short file refused, a leftover temp file removed. */
static void client_seq_floor(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    assert_int_equal(rec.seq_floor, 0);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_seq_floor(s, 65536), HAMOK_OK);
    hamok_storage_stats st0, st1;
    hamok__storage_stats(s, &st0);
    assert_int_equal(hamok__storage_save_seq_floor(s, 65536), HAMOK_OK); /* nothing written */
    hamok__storage_stats(s, &st1);
    assert_int_equal(st1.fsyncs, st0.fsyncs);
    assert_int_equal(hamok__storage_save_seq_floor(s, 100), HAMOK_ERR_INVALID);
    assert_non_null(strstr(hamok__storage_error(s), "client-seq"));
    assert_int_equal(hamok__storage_save_seq_floor(s, 131072), HAMOK_OK);
    hamok__storage_close(&s);
    char path[PATHLEN], work[PATHLEN], err[1024];
    FMT(path, "%s/client-seq.tmp", f->dir);
    write_file(path, "junk", 4);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_int_equal(rec.seq_floor, 131072);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    assert_int_not_equal(access(path, F_OK), 0);
    FMT(work, "%s/work", f->root);
    FMT(path, "%s/client-seq", work);
    for (uint64_t off = 0; off < 24; off++) {
        rm_rf(work);
        copy_dir(f->dir, work);
        flip_bit(path, off, (int)(off % 8));
        assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
        assert_non_null(strstr(err, "client-seq"));
    }
    rm_rf(work);
    copy_dir(f->dir, work);
    assert_int_equal(truncate(path, 10), 0);
    assert_int_equal(open_err(work, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
    rm_rf(work);
}

/* ------------------------------------------------------------------------
 * Snapshots. */

static void write_snapshot(hamok_storage *s, uint64_t index, uint64_t term, const char *meta,
                           size_t state_len, uint8_t salt)
{
    hamok_status st = hamok__storage_snapshot_begin(s, index, term, meta, strlen(meta));
    if (st != HAMOK_OK) {
        fail_msg("snapshot begin: %s: %s", hamok_status_str(st), hamok__storage_error(s));
    }
    uint8_t chunk[4096];
    size_t done = 0;
    while (done < state_len) {
        size_t k = state_len - done < sizeof chunk ? state_len - done : sizeof chunk;
        for (size_t i = 0; i < k; i++) {
            chunk[i] = (uint8_t)((done + i) * 131 + salt);
        }
        assert_int_equal(hamok__storage_snapshot_write(s, chunk, k), HAMOK_OK);
        done += k;
    }
    st = hamok__storage_snapshot_commit(s);
    if (st != HAMOK_OK) {
        fail_msg("snapshot commit: %s: %s", hamok_status_str(st), hamok__storage_error(s));
    }
}

static void check_snapshot(hamok_storage *s, uint64_t index, uint64_t term, const char *meta,
                           size_t state_len, uint8_t salt, size_t chunk)
{
    hamok_snapshot_reader *r = NULL;
    uint64_t i = 0, t = 0;
    const uint8_t *m = NULL;
    size_t mlen = 0;
    hamok_status st = hamok__storage_snapshot_open(s, &r, &i, &t, &m, &mlen);
    if (st != HAMOK_OK) {
        fail_msg("snapshot open: %s: %s", hamok_status_str(st), hamok__storage_error(s));
    }
    assert_int_equal(i, index);
    assert_int_equal(t, term);
    assert_int_equal(mlen, strlen(meta));
    assert_memory_equal(m, meta, mlen);
    assert_int_equal(hamok__snapshot_reader_size(r), state_len);
    uint8_t *buf = malloc(chunk);
    assert_non_null(buf);
    size_t pos = 0, n = 0;
    do {
        assert_int_equal(hamok__snapshot_read(r, buf, chunk, &n), HAMOK_OK);
        for (size_t k = 0; k < n; k++) {
            if (buf[k] != (uint8_t)((pos + k) * 131 + salt)) {
                fail_msg("snapshot byte %zu differs", pos + k);
            }
        }
        pos += n;
    } while (n > 0);
    assert_int_equal(pos, state_len);
    free(buf);
    hamok__snapshot_reader_close(&r);
    assert_null(r);
}

static void snapshot_streamed_in_chunks(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    hamok_snapshot_reader *r = NULL;
    assert_int_equal(hamok__storage_snapshot_open(s, &r, NULL, NULL, NULL, NULL),
                     HAMOK_ERR_NOT_FOUND);
    assert_int_equal(hamok__storage_save_hard_state(s, 2, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 20; i++) {
        put(s, &m, i, 2, 10);
    }
    const size_t state_len = 10u << 20;
    const char *meta = "config: voters a, b, c";
    assert_int_equal(hamok__storage_snapshot_begin(s, 12, 2, meta, strlen(meta)), HAMOK_OK);
    assert_int_equal(hamok__storage_snapshot_begin(s, 12, 2, meta, strlen(meta)), HAMOK_ERR_STATE);
    uint8_t *chunk = malloc(64u << 10);
    assert_non_null(chunk);
    for (size_t done = 0; done < state_len; done += 64u << 10) {
        for (size_t i = 0; i < (64u << 10); i++) {
            chunk[i] = (uint8_t)((done + i) * 131 + 5);
        }
        assert_int_equal(hamok__storage_snapshot_write(s, chunk, 64u << 10), HAMOK_OK);
    }
    free(chunk);
    assert_int_equal(hamok__storage_snapshot_commit(s), HAMOK_OK);
    assert_int_equal(hamok__storage_snapshot_commit(s), HAMOK_ERR_STATE);
    model_compact(&m, 12);
    assert_int_equal(hamok__storage_first_index(s), 13);
    assert_int_equal(hamok__storage_last_index(s), 20);
    check_snapshot(s, 12, 2, meta, state_len, 5, 65536);
    check_snapshot(s, 12, 2, meta, state_len, 5, 10000);
    /* A reader outlives the storage. */
    hamok_snapshot_reader *keep = NULL;
    assert_int_equal(hamok__storage_snapshot_open(s, &keep, NULL, NULL, NULL, NULL), HAMOK_OK);
    hamok__storage_close(&s);
    uint8_t b[100];
    size_t n = 0;
    assert_int_equal(hamok__snapshot_read(keep, b, sizeof b, &n), HAMOK_OK);
    assert_int_equal(n, 100);
    assert_int_equal(b[99], (uint8_t)(99 * 131 + 5));
    hamok__snapshot_reader_close(&keep);

    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_true(rec.has_snapshot);
    assert_int_equal(rec.snapshot_index, 12);
    assert_int_equal(rec.snapshot_term, 2);
    assert_int_equal(rec.snapshot_meta_len, strlen(meta));
    assert_memory_equal(rec.snapshot_meta, meta, strlen(meta));
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    check_snapshot(s, 12, 2, meta, state_len, 5, 777777);
    /* Empty metadata and empty state work too. */
    write_snapshot(s, 15, 2, "", 0, 0);
    model_compact(&m, 15);
    check_snapshot(s, 15, 2, "", 0, 0, 10);
    hamok__storage_close(&s);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_int_equal(rec.snapshot_index, 15);
    assert_int_equal(rec.snapshot_meta_len, 0);
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    assert_int_equal(count_prefix(f->dir, "snapshot-"), 1);
    model_free(&m);
}

static void snapshot_abort_leaves_nothing(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 5; i++) {
        put(s, &m, i, 1, 10);
    }
    /* Refused: not past the current snapshot, term 0 or beyond the hard state. */
    assert_int_equal(hamok__storage_snapshot_begin(s, 0, 1, "", 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_snapshot_begin(s, 3, 0, "", 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_snapshot_begin(s, 3, 2, "", 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_snapshot_write(s, "x", 1), HAMOK_ERR_STATE);
    hamok__storage_snapshot_abort(s); /* nothing to abort: no-op */

    assert_int_equal(hamok__storage_snapshot_begin(s, 3, 1, "meta", 4), HAMOK_OK);
    assert_int_equal(hamok__storage_snapshot_write(s, "abcdef", 6), HAMOK_OK);
    assert_int_equal(count_prefix(f->dir, "snapshot-"), 1); /* the .tmp */
    hamok__storage_snapshot_abort(s);
    assert_int_equal(count_prefix(f->dir, "snapshot-"), 0);
    assert_int_equal(hamok__storage_first_index(s), 1);
    /* Close in the middle of one: aborted too. */
    assert_int_equal(hamok__storage_snapshot_begin(s, 3, 1, "meta", 4), HAMOK_OK);
    hamok__storage_close(&s);
    assert_int_equal(count_prefix(f->dir, "snapshot-"), 0);
    /* A leftover .tmp from a crash is removed at open. */
    char path[PATHLEN];
    FMT(path, "%s/snapshot-0000000000000004-0000000000000001.snap.tmp", f->dir);
    write_file(path, "partial", 7);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_false(rec.has_snapshot);
    check_log(&rec, &m);
    assert_false(file_exists(path));
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    model_free(&m);
}

static void compaction_deletes_old_segments(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    small_segments(&o);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 3, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 500; i++) {
        put(s, &m, i, i <= 250 ? 2 : 3, 100);
    }
    size_t before = count_prefix(f->dir, "wal-");
    assert_true(before > 10);
    write_snapshot(s, 300, 3, "cfg-300", 5000, 1);
    model_compact(&m, 300);
    size_t after = count_prefix(f->dir, "wal-");
    assert_true(after < before);
    /* What is left still starts at or below 301 (names: wal-<seq>-<first>). */
    char names[64][128];
    size_t n = list_prefix(f->dir, "wal-", names, 64);
    assert_true(n == after && n < 64);
    assert_true(strtoull(names[0] + 21, NULL, 16) <= 301);
    assert_true(n == 1 || strtoull(names[1] + 21, NULL, 16) > 301);
    hamok_storage_stats stats;
    hamok__storage_stats(s, &stats);
    assert_int_equal(stats.segments_deleted, before - after);
    assert_int_equal(stats.segments, after);
    /* Truncation into the snapshot is refused. */
    assert_int_equal(hamok__storage_truncate(s, 300, 0), HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_truncate(s, 450, 0), HAMOK_OK);
    model_truncate(&m, 450);
    for (uint64_t i = 450; i <= 520; i++) {
        put(s, &m, i, 3, 50);
    }
    hamok__storage_close(&s);

    s = open_ok(f->dir, &o, NULL, &rec);
    assert_true(rec.has_snapshot);
    assert_int_equal(rec.snapshot_index, 300);
    assert_int_equal(rec.snapshot_term, 3);
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    check_snapshot(s, 300, 3, "cfg-300", 5000, 1, 999);
    /* A second snapshot replaces the first. */
    write_snapshot(s, 510, 3, "cfg-510", 100, 2);
    model_compact(&m, 510);
    assert_int_equal(count_prefix(f->dir, "snapshot-"), 1);
    hamok__storage_close(&s);
    s = open_ok(f->dir, &o, NULL, &rec);
    assert_int_equal(rec.snapshot_index, 510);
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    model_free(&m);
}

/* A snapshot file that vanished while the log before it was compacted away:
 * the state cannot be rebuilt, so open refuses instead of starting from a
 * hole. */
static void missing_snapshot_is_corrupt(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    small_segments(&o);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 2, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 400; i++) {
        put(s, &m, i, 2, 100);
    }
    write_snapshot(s, 300, 2, "cfg", 1000, 1);
    hamok__storage_close(&s);
    model_free(&m);
    char names[4][128];
    assert_int_equal(list_prefix(f->dir, "snapshot-", names, 4), 1);
    char path[512];
    FMT(path, "%s/%s", f->dir, names[0]);
    assert_int_equal(unlink(path), 0);
    char err[256];
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, "missing"));
}

/* A snapshot from the leader that the log does not contain: the log restarts
 * after it (Raft's InstallSnapshot rule). */
static void installed_snapshot_resets_log(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 4, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 50; i++) {
        put(s, &m, i, 1, 20);
    }
    /* Beyond the log. */
    write_snapshot(s, 100, 3, "leader-cfg", 3000, 9);
    model_compact(&m, 100);
    assert_int_equal(hamok__storage_first_index(s), 101);
    assert_int_equal(hamok__storage_last_index(s), 100);
    sync_ok(s, 100, 3);
    for (uint64_t i = 101; i <= 110; i++) {
        put(s, &m, i, 4, 20);
    }
    /* Inside the log but with another term at its index. */
    write_snapshot(s, 105, 3, "leader-cfg-2", 10, 1);
    model_compact(&m, 105);
    model_truncate(&m, 106); /* everything after it goes */
    assert_int_equal(hamok__storage_last_index(s), 105);
    for (uint64_t i = 106; i <= 108; i++) {
        put(s, &m, i, 4, 20);
    }
    assert_int_equal(count_prefix(f->dir, "wal-"), 1);
    hamok__storage_close(&s);
    for (int round = 0; round < 2; round++) {
        s = open_ok(f->dir, NULL, NULL, &rec);
        assert_int_equal(rec.snapshot_index, 105);
        assert_int_equal(rec.snapshot_term, 3);
        check_log(&rec, &m);
        assert_string_equal(rec.notice, "");
        hamok__storage_recovered_free(&rec);
        hamok__storage_close(&s);
    }
    model_free(&m);
}

/* The crash window of an install: snapshot file in place, RESET record not
 * yet written. Recovery applies Raft's rule itself. */
static void interrupted_install_recovers(void **state)
{
    fixture *f = *state;
    char other[PATHLEN];
    FMT(other, "%s/other", f->root);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(other, NULL, ID_B, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 2, false, NULL), HAMOK_OK);
    write_snapshot(s, 100, 2, "m", 64, 3);
    hamok__storage_close(&s);

    s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 2, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 50; i++) {
        put(s, &m, i, 1, 20);
    }
    hamok__storage_close(&s);
    char from[PATHLEN], to[PATHLEN];
    FMT(from, "%s/snapshot-%016llx-%016llx.snap", other, 100ull, 2ull);
    FMT(to, "%s/snapshot-%016llx-%016llx.snap", f->dir, 100ull, 2ull);
    size_t n;
    uint8_t *p = read_file(from, &n);
    write_file(to, p, n);
    free(p);

    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_int_equal(rec.snapshot_index, 100);
    assert_int_equal(rec.first_index, 101);
    assert_int_equal(rec.n_entries, 0);
    assert_non_null(strstr(rec.notice, "restarted"));
    hamok__storage_recovered_free(&rec);
    model_compact(&m, 100);
    put(s, &m, 101, 2, 5);
    hamok__storage_close(&s);
    s = open_ok(f->dir, NULL, NULL, &rec);
    check_log(&rec, &m);
    assert_string_equal(rec.notice, "");
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    model_free(&m);
}

/* ------------------------------------------------------------------------
 * The core's update contract on real files (raft.h, FINDINGS.md observation
 * 6): a follower core's updates are applied to the storage exactly as raft.h
 * says — no special cases — while it installs snapshots, and what the
 * storage recovers restores an equal core. */

typedef struct follower {
    hamok_raft *r;
    hamok_storage *s;
    uint8_t snap[64]; /* the incoming snapshot's bytes */
    size_t snap_len;
    hamok_member *snap_ms;
    size_t snap_n;
    uint64_t now;
} follower;

static void follower_step(follower *fw, hamok_raft_event *ev);

/* raft.h "what the caller must do", in its order, on the storage. */
static void follower_apply(follower *fw, const hamok_raft_update *u)
{
    if (u->hard_state_changed) {
        assert_int_equal(hamok__storage_save_hard_state(fw->s, u->term, u->has_vote, &u->vote),
                         HAMOK_OK);
    }
    if (u->has_chunk) {
        if (u->chunk.offset == 0) {
            fw->snap_len = 0;
            hamok__members_free(fw->snap_ms, fw->snap_n);
            fw->snap_ms = NULL;
            fw->snap_n = 0;
            if (u->chunk.n_members > 0) {
                fw->snap_ms = hamok__calloc(u->chunk.n_members, sizeof *fw->snap_ms);
                for (size_t k = 0; k < u->chunk.n_members; k++) {
                    fw->snap_ms[k].id = u->chunk.members[k].id;
                    fw->snap_ms[k].role = u->chunk.members[k].role;
                    fw->snap_ms[k].endpoint = hamok__strdup(u->chunk.members[k].endpoint);
                }
                fw->snap_n = u->chunk.n_members;
            }
        }
        assert_int_equal(u->chunk.offset, fw->snap_len);
        assert_true(fw->snap_len + u->chunk.len <= sizeof fw->snap);
        memcpy(fw->snap + fw->snap_len, u->chunk.data, u->chunk.len);
        fw->snap_len += u->chunk.len;
    }
    if (u->snapshot_installed) {
        hamok_buf meta = HAMOK_BUF_INIT;
        assert_int_equal(hamok__codec_encode_config(fw->snap_ms, fw->snap_n, &meta), HAMOK_OK);
        assert_int_equal(hamok__storage_snapshot_begin(fw->s, u->installed_index, u->installed_term,
                                                       meta.data, meta.len),
                         HAMOK_OK);
        hamok__buf_free(&meta);
        assert_int_equal(hamok__storage_snapshot_write(fw->s, fw->snap, fw->snap_len), HAMOK_OK);
        assert_int_equal(hamok__storage_snapshot_commit(fw->s), HAMOK_OK);
    }
    if (u->truncate_from != 0) {
        assert_int_equal(hamok__storage_truncate(fw->s, u->truncate_from, fw->now), HAMOK_OK);
    }
    if (u->n_persist > 0) {
        assert_int_equal(
            hamok__storage_append(fw->s, u->persist_first, u->persist, u->n_persist, fw->now),
            HAMOK_OK);
    }
    /* The core's log is what the storage holds. */
    assert_int_equal(hamok__storage_last_index(fw->s), hamok__raft_last_index(fw->r));
    if (u->truncate_from != 0 || u->n_persist > 0) {
        uint64_t di = 0, dt = 0;
        assert_int_equal(hamok__storage_sync(fw->s, &di, &dt), HAMOK_OK);
        hamok_raft_event ev = {.type = HAMOK_RAFT_EV_PERSISTED, .now_ms = fw->now};
        ev.u.persisted.index = di;
        ev.u.persisted.term = dt;
        follower_step(fw, &ev);
    }
}

static void follower_step(follower *fw, hamok_raft_event *ev)
{
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(fw->r, ev, &u), HAMOK_OK);
    follower_apply(fw, &u);
}

static hamok_member *three_members(void)
{
    hamok_member *ms = hamok__calloc(3, sizeof *ms);
    for (size_t k = 0; k < 3; k++) {
        ms[k].id = hamok__id_from_u64(k + 1);
        ms[k].role = HAMOK_MEMBER_VOTER;
        ms[k].endpoint = hamok__strdup("");
    }
    return ms;
}

/* AppendEntries from node `from` (term) with entries first.. of `eterm`. */
static void follower_append(follower *fw, uint64_t from, uint64_t term, uint64_t prev,
                            uint64_t prev_term, uint64_t first, uint64_t n, uint64_t eterm,
                            uint64_t commit)
{
    hamok_msg m = {.type = HAMOK_MSG_APPEND_ENTRIES};
    m.src = hamok__id_from_u64(from);
    m.dst = hamok__id_from_u64(2);
    m.u.append.term = term;
    m.u.append.prev_log_index = prev;
    m.u.append.prev_log_term = prev_term;
    m.u.append.leader_commit = commit;
    m.u.append.entries = hamok__calloc(n ? n : 1, sizeof(hamok_entry));
    m.u.append.n_entries = n;
    for (uint64_t k = 0; k < n; k++) {
        hamok_entry *e = &m.u.append.entries[k];
        e->term = eterm;
        e->type = HAMOK_ENTRY_COMMAND;
        char data[32];
        int len = snprintf(data, sizeof data, "e%llu", (unsigned long long)(first + k));
        e->data = hamok__memdup(data, (size_t)len);
        e->len = (size_t)len;
    }
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = ++fw->now};
    ev.u.msg = &m;
    follower_step(fw, &ev);
    hamok__msg_clear(&m);
}

static void follower_install(follower *fw, uint64_t from, uint64_t term, uint64_t index,
                             uint64_t snap_term)
{
    hamok_msg m = {.type = HAMOK_MSG_INSTALL_SNAPSHOT};
    m.src = hamok__id_from_u64(from);
    m.dst = hamok__id_from_u64(2);
    m.u.snapshot.term = term;
    m.u.snapshot.last_index = index;
    m.u.snapshot.last_term = snap_term;
    m.u.snapshot.offset = 0;
    m.u.snapshot.done = true;
    m.u.snapshot.members = three_members();
    m.u.snapshot.n_members = 3;
    char data[32];
    int len = snprintf(data, sizeof data, "state@%llu", (unsigned long long)index);
    m.u.snapshot.data = hamok__memdup(data, (size_t)len);
    m.u.snapshot.len = (size_t)len;
    hamok_raft_event ev = {.type = HAMOK_RAFT_EV_RECEIVE, .now_ms = ++fw->now};
    ev.u.msg = &m;
    hamok_raft_update u;
    assert_int_equal(hamok__raft_step(fw->r, &ev, &u), HAMOK_OK);
    assert_true(u.snapshot_installed);
    assert_int_equal(u.installed_index, index);
    assert_int_equal(u.truncate_from, 0); /* the install's drop is no truncation */
    follower_apply(fw, &u);
    hamok__msg_clear(&m);
}

/* Reopen the directory and restore a fresh core from it; compare. */
static void follower_reopen(follower *fw, const char *dir, uint64_t snap, uint64_t last)
{
    uint64_t term = hamok__raft_term(fw->r);
    hamok__storage_close(&fw->s);
    hamok__raft_destroy(&fw->r);
    hamok_storage_recovered rec;
    fw->s = open_ok(dir, NULL, NULL, &rec);
    assert_true(rec.has_snapshot);
    assert_int_equal(rec.snapshot_index, snap);
    assert_int_equal(rec.first_index, snap + 1);
    assert_int_equal(rec.n_entries, last - snap);
    assert_int_equal(rec.term, term);
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = hamok__id_from_u64(2); /* no bootstrap voters: all from the directory */
    assert_int_equal(hamok__raft_new(&fw->r, &o), HAMOK_OK);
    hamok_member *ms = NULL;
    size_t n = 0;
    assert_int_equal(hamok__codec_decode_config(rec.snapshot_meta, rec.snapshot_meta_len, &ms, &n),
                     HAMOK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(
        hamok__raft_restore_snapshot(fw->r, rec.snapshot_index, rec.snapshot_term, ms, n),
        HAMOK_OK);
    hamok__members_free(ms, n);
    assert_int_equal(hamok__raft_restore(fw->r, rec.term, rec.has_vote ? &rec.vote : NULL,
                                         rec.entries, rec.n_entries),
                     HAMOK_OK);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__raft_last_index(fw->r), last);
    assert_int_equal(hamok__raft_commit_index(fw->r), snap);
    size_t k = 0;
    hamok__raft_members(fw->r, &k, NULL);
    assert_int_equal(k, 3);
}

static void raft_install_contract_on_disk(void **state)
{
    fixture *f = *state;
    follower fw;
    memset(&fw, 0, sizeof fw);
    hamok_storage_recovered rec;
    fw.s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    hamok_raft_options o;
    hamok__raft_options_default(&o);
    o.self = hamok__id_from_u64(2);
    hamok_id voters[3] = {hamok__id_from_u64(1), hamok__id_from_u64(2), hamok__id_from_u64(3)};
    o.voters = voters;
    o.n_voters = 3;
    assert_int_equal(hamok__raft_new(&fw.r, &o), HAMOK_OK);
    /* Leader n1, term 1: entries 1..8, only 1..2 committed. */
    follower_append(&fw, 1, 1, 0, 0, 1, 8, 1, 2);
    assert_int_equal(hamok__raft_last_index(fw.r), 8);
    assert_int_equal(hamok__raft_commit_index(fw.r), 2);
    /* Leader n3, term 2, compacted up to 50 (3..8 of term 1 were lost): the
     * log does not hold (50, 2), so all of it goes. */
    follower_install(&fw, 3, 2, 50, 2);
    assert_int_equal(hamok__raft_first_index(fw.r), 51);
    assert_int_equal(hamok__raft_last_index(fw.r), 50);
    assert_int_equal(hamok__storage_last_index(fw.s), 50);
    follower_append(&fw, 3, 2, 50, 2, 51, 5, 2, 52);
    assert_int_equal(hamok__raft_last_index(fw.r), 55);
    follower_reopen(&fw, f->dir, 50, 55);
    /* A snapshot inside the log (it holds (53, 2)): the tail stays. */
    follower_install(&fw, 3, 2, 53, 2);
    assert_int_equal(hamok__raft_last_index(fw.r), 55);
    follower_reopen(&fw, f->dir, 53, 55);
    /* And one at the same index with another term (the log is replaced). */
    follower_install(&fw, 1, 3, 55, 3);
    assert_int_equal(hamok__raft_last_index(fw.r), 55);
    follower_append(&fw, 1, 3, 55, 3, 56, 2, 3, 56);
    follower_reopen(&fw, f->dir, 55, 57);
    hamok__members_free(fw.snap_ms, fw.snap_n);
    hamok__raft_destroy(&fw.r);
    hamok__storage_close(&fw.s);
}

static void corrupt_snapshot(void **state)
{
    fixture *f = *state;
    char keep[PATHLEN], err[1024], path[PATHLEN], aside[PATHLEN];
    FMT(keep, "%s/keep", f->root);
    hamok_storage_recovered rec;
    /* One segment for everything: the WAL covers the whole history. */
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model m;
    model_init(&m);
    for (uint64_t i = 1; i <= 300; i++) {
        put(s, &m, i, 1, 30);
    }
    write_snapshot(s, 100, 1, "old", 2000, 1);
    char old_name[PATHLEN];
    FMT(old_name, "%s/snapshot-%016llx-%016llx.snap", f->dir, 100ull, 1ull);
    size_t old_len;
    uint8_t *old = read_file(old_name, &old_len);
    write_snapshot(s, 200, 1, "new", 2000, 2);
    hamok__storage_close(&s);
    assert_false(file_exists(old_name)); /* deleted by the second commit */
    FMT(path, "%s/snapshot-%016llx-%016llx.snap", f->dir, 200ull, 1ull);
    copy_dir(f->dir, keep);

    /* Any damage to the only snapshot: refused, naming the file. */
    uint64_t size = file_size(path);
    for (uint64_t off = 0; off < size; off += size / 23 + 1) {
        rm_rf(f->dir);
        copy_dir(keep, f->dir);
        flip_bit(path, off, 6);
        assert_int_equal(open_err(f->dir, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);
        assert_non_null(strstr(err, "snapshot-00000000000000c8-0000000000000001.snap"));
        assert_non_null(strstr(err, "offset"));
    }
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    assert_int_equal(truncate(path, 30), 0);
    assert_int_equal(open_err(f->dir, NULL, err, sizeof err), HAMOK_ERR_CORRUPT);

    /* An older valid snapshot and a WAL covering 101..200: it stands in. */
    rm_rf(f->dir);
    copy_dir(keep, f->dir);
    write_file(old_name, old, old_len);
    flip_bit(path, 1000, 1);
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_true(rec.snapshot_fell_back);
    assert_non_null(strstr(rec.notice, "corrupt"));
    assert_int_equal(rec.snapshot_index, 100);
    assert_memory_equal(rec.snapshot_meta, "old", 3);
    model_compact(&m, 100);
    check_log(&rec, &m);
    hamok__storage_recovered_free(&rec);
    check_snapshot(s, 100, 1, "old", 2000, 1, 4096);
    hamok__storage_close(&s);
    FMT(aside, "%s.corrupt", path);
    assert_true(file_exists(aside));
    assert_false(file_exists(path));
    s = open_ok(f->dir, NULL, NULL, &rec);
    assert_false(rec.snapshot_fell_back);
    assert_int_equal(rec.snapshot_index, 100);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    free(old);
    model_free(&m);

    /* Small segments: the second snapshot's compaction deleted the WAL the
     * older one would need, so it may not stand in. */
    rm_rf(f->dir);
    rm_rf(keep);
    hamok_storage_options o;
    small_segments(&o);
    s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    model_init(&m);
    for (uint64_t i = 1; i <= 300; i++) {
        put(s, &m, i, 1, 100);
    }
    write_snapshot(s, 100, 1, "old", 10, 1);
    old = read_file(old_name, &old_len);
    write_snapshot(s, 200, 1, "new", 10, 2);
    hamok__storage_close(&s);
    write_file(old_name, old, old_len);
    flip_bit(path, 45, 0);
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_CORRUPT);
    assert_non_null(strstr(err, "snapshot-00000000000000c8-0000000000000001.snap"));
    assert_non_null(strstr(err, "can't stand in"));
    assert_true(file_exists(path)); /* left where it was */
    free(old);
    model_free(&m);
}

/* ------------------------------------------------------------------------
 * Sync policy. */

static void batch_policy_groups_fsyncs(void **state)
{
    fixture *f = *state;
    hamok_storage_options o;
    hamok__storage_options_default(&o);
    o.sync_policy = HAMOK_SYNC_BATCH;
    o.batch_delay_ms = 5;
    o.batch_max_bytes = 0;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, &o, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    assert_int_equal(hamok__storage_save_hard_state(s, 1, false, NULL), HAMOK_OK);
    assert_false(hamok__storage_sync_due(s, 1000));
    assert_int_equal(hamok__storage_next_sync_ms(s), UINT64_MAX);
    hamok_storage_stats a, b;
    hamok__storage_stats(s, &a);
    for (uint64_t i = 1; i <= 1000; i++) {
        hamok_entry e = mk_entry(i, 1, 100, 0);
        /* The clock moves during the batch; the first write starts it. */
        assert_int_equal(hamok__storage_append(s, i, &e, 1, 100 + i / 500), HAMOK_OK);
        free(e.data);
    }
    hamok__storage_stats(s, &b);
    assert_int_equal(b.fsyncs, a.fsyncs); /* appends never fsync */
    assert_true(b.unsynced_bytes >= 1000 * 157);
    assert_int_equal(hamok__storage_next_sync_ms(s), 105);
    assert_false(hamok__storage_sync_due(s, 100));
    assert_false(hamok__storage_sync_due(s, 104));
    assert_true(hamok__storage_sync_due(s, 105));
    assert_true(hamok__storage_sync_due(s, 5000));
    sync_ok(s, 1000, 1);
    hamok__storage_stats(s, &b);
    assert_int_equal(b.fsyncs, a.fsyncs + 1);
    assert_int_equal(b.syncs, a.syncs + 1);
    assert_int_equal(b.unsynced_bytes, 0);
    assert_false(hamok__storage_sync_due(s, 5000));
    assert_int_equal(hamok__storage_next_sync_ms(s), UINT64_MAX);
    /* A sync with nothing to sync costs nothing. */
    sync_ok(s, 1000, 1);
    hamok__storage_stats(s, &a);
    assert_int_equal(a.fsyncs, b.fsyncs);
    /* The delay restarts with the next write. */
    hamok_entry e = mk_entry(1001, 1, 1, 0);
    assert_int_equal(hamok__storage_append(s, 1001, &e, 1, 7000), HAMOK_OK);
    free(e.data);
    assert_false(hamok__storage_sync_due(s, 7004));
    assert_true(hamok__storage_sync_due(s, 7005));
    assert_int_equal(hamok__storage_truncate(s, 1001, 7001), HAMOK_OK);
    assert_int_equal(hamok__storage_next_sync_ms(s), 7005);
    sync_ok(s, 1000, 1);
    hamok__storage_close(&s);

    /* Byte limit: due at once when reached. */
    o.batch_max_bytes = 10000;
    s = open_ok(f->dir, &o, NULL, &rec);
    hamok__storage_recovered_free(&rec);
    uint64_t i = 1001;
    while (!hamok__storage_sync_due(s, 0)) {
        e = mk_entry(i, 1, 100, 0);
        assert_int_equal(hamok__storage_append(s, i, &e, 1, 0), HAMOK_OK);
        free(e.data);
        i++;
    }
    assert_true(i - 1001 >= 10000 / 157 && i - 1001 <= 10000 / 157 + 1);
    sync_ok(s, i - 1, 1);
    hamok__storage_close(&s);

    /* ALWAYS: due as soon as anything is unsynced. */
    o.sync_policy = HAMOK_SYNC_ALWAYS;
    s = open_ok(f->dir, &o, NULL, &rec);
    hamok__storage_recovered_free(&rec);
    assert_false(hamok__storage_sync_due(s, 0));
    e = mk_entry(i, 1, 1, 0);
    assert_int_equal(hamok__storage_append(s, i, &e, 1, 42), HAMOK_OK);
    free(e.data);
    assert_true(hamok__storage_sync_due(s, 0));
    assert_int_equal(hamok__storage_next_sync_ms(s), 42);
    sync_ok(s, i, 1);
    assert_false(hamok__storage_sync_due(s, 100));
    hamok__storage_close(&s);
}

/* ------------------------------------------------------------------------
 * Errors and exclusion. */

static void io_errors_name_the_file(void **state)
{
    fixture *f = *state;
    char path[PATHLEN], err[1024];
    FMT(path, "%s/plain", f->root);
    write_file(path, "x", 1);
    char under[PATHLEN];
    FMT(under, "%s/plain/data", f->root);
    assert_int_equal(open_err(under, NULL, err, sizeof err), HAMOK_ERR_IO);
    assert_non_null(strstr(err, "plain"));
    assert_non_null(strstr(err, strerror(ENOTDIR)));
    assert_int_equal(open_err(path, NULL, err, sizeof err), HAMOK_ERR_IO);
    assert_non_null(strstr(err, "plain"));

    hamok_storage_options o;
    hamok__storage_options_default(&o);
    o.segment_size = 100;
    assert_int_equal(open_err(f->dir, &o, err, sizeof err), HAMOK_ERR_INVALID);
    hamok_storage *s = NULL;
    hamok_storage_recovered rec;
    assert_int_equal(hamok__storage_open(&s, NULL, NULL, ID_A, &rec, err, sizeof err),
                     HAMOK_ERR_INVALID);
    assert_int_equal(hamok__storage_open(&s, f->dir, NULL, ID_A, NULL, err, sizeof err),
                     HAMOK_ERR_INVALID);

    /* Nested directories are created. */
    FMT(path, "%s/a/b/c", f->root);
    s = open_ok(path, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
}

/* A write that fails half way (file size limit: EFBIG) fails the storage for
 * good; reopening repairs the half-written record. Runs in a child process so
 * the limit stays there. */
static int failing_write_child(const char *dir)
{
    hamok_storage *s = NULL;
    hamok_storage_recovered rec;
    char err[512];
    if (hamok__storage_open(&s, dir, NULL, ID_A, &rec, err, sizeof err) != HAMOK_OK) {
        return 10;
    }
    hamok__storage_recovered_free(&rec);
    if (hamok__storage_save_hard_state(s, 1, false, NULL) != HAMOK_OK) {
        return 11;
    }
    uint8_t data[3000];
    memset(data, 0x5A, sizeof data);
    hamok_entry e;
    memset(&e, 0, sizeof e);
    e.term = 1;
    e.type = HAMOK_ENTRY_COMMAND;
    e.data = data;
    e.len = 100;
    for (uint64_t i = 1; i <= 3; i++) {
        if (hamok__storage_append(s, i, &e, 1, 0) != HAMOK_OK) {
            return 12;
        }
    }
    if (hamok__storage_sync(s, NULL, NULL) != HAMOK_OK) {
        return 13;
    }
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = 40 + 3 * 157 + 1000; /* room for part of the next record */
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        return 14;
    }
    e.len = sizeof data;
    if (hamok__storage_append(s, 4, &e, 1, 0) != HAMOK_ERR_IO) {
        return 15;
    }
    const char *msg = hamok__storage_error(s);
    if (strstr(msg, "wal-0000000000000001-0000000000000001.log") == NULL ||
        strstr(msg, strerror(EFBIG)) == NULL) {
        return 16;
    }
    /* Failed for good: every writing call says so, keeping the message. */
    e.len = 1;
    if (hamok__storage_append(s, 4, &e, 1, 0) != HAMOK_ERR_IO ||
        hamok__storage_truncate(s, 2, 0) != HAMOK_ERR_IO ||
        hamok__storage_sync(s, NULL, NULL) != HAMOK_ERR_IO ||
        hamok__storage_save_hard_state(s, 2, false, NULL) != HAMOK_ERR_IO ||
        hamok__storage_snapshot_begin(s, 1, 1, "", 0) != HAMOK_ERR_IO ||
        strstr(hamok__storage_error(s), strerror(EFBIG)) == NULL) {
        return 17;
    }
    hamok__storage_close(&s);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) {
        return 18;
    }
    return 0;
}

static void failed_write_fails_storage(void **state)
{
    fixture *f = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(failing_write_child(f->dir));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, NULL, &rec);
    assert_true(rec.repaired_tail);
    assert_int_equal(rec.n_entries, 3);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
    char seg[PATHLEN];
    last_segment(f->dir, seg);
    assert_int_equal(file_size(seg), 40 + 3 * 157);
}

static void second_process_is_locked_out(void **state)
{
    fixture *f = *state;
    hamok_storage_recovered rec;
    hamok_storage *s = open_ok(f->dir, NULL, ID_A, &rec);
    hamok__storage_recovered_free(&rec);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        hamok_storage *t = NULL;
        hamok_storage_recovered r2;
        char err[512];
        hamok_status st = hamok__storage_open(&t, f->dir, NULL, ID_B, &r2, err, sizeof err);
        _exit(st == HAMOK_ERR_BUSY && strstr(err, "LOCK") != NULL ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    hamok__storage_close(&s);
    /* Released on close. */
    s = open_ok(f->dir, NULL, NULL, &rec);
    hamok__storage_recovered_free(&rec);
    hamok__storage_close(&s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(fresh_dir_gets_supplied_id),
        T(round_trip),
        T(append_rules),
        T(hard_state_rules),
        T(segment_rolling),
        T(torn_segment_header),
        T(missing_or_bad_segment_is_corrupt),
        T(missing_snapshot_is_corrupt),
        T(torn_tail_every_length),
        T(torn_tail_zeros_and_final_crc),
        T(bit_flip_in_earlier_record_is_corrupt),
        T(corrupt_hardstate_and_id_refused),
        T(client_seq_floor),
        T(snapshot_streamed_in_chunks),
        T(snapshot_abort_leaves_nothing),
        T(compaction_deletes_old_segments),
        T(installed_snapshot_resets_log),
        T(interrupted_install_recovers),
        T(raft_install_contract_on_disk),
        T(corrupt_snapshot),
        T(batch_policy_groups_fsyncs),
        T(io_errors_name_the_file),
        T(failed_write_fails_storage),
        T(second_process_is_locked_out),
    };
#undef T
    return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
