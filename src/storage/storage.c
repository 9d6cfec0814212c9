/* Durable Raft storage: open and recovery, the WAL, the hard state.
 * Formats and rules: storage.h. Snapshots: snapshot.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"
#include "util/alloc.h"
#include "util/crc32c.h"

#define RD_CHUNK (1u << 20)

void hamok__storage_options_default(hamok_storage_options *o)
{
    memset(o, 0, sizeof *o);
    o->segment_size = 64u << 20;
    o->sync_policy = HAMOK_SYNC_BATCH;
    o->batch_delay_ms = 2;
    o->batch_max_bytes = 4u << 20;
}

void hamok__storage_recovered_free(hamok_storage_recovered *rec)
{
    if (rec == NULL) {
        return;
    }
    for (size_t i = 0; i < rec->n_entries; i++) {
        hamok__free(rec->entries[i].data);
    }
    hamok__free(rec->entries);
    hamok__free(rec->snapshot_meta);
    memset(rec, 0, sizeof *rec);
}

static void seg_name(char *out, const st_segment *seg)
{
    char a[17], b[17];
    hamok__st_hex16(a, seg->seq);
    hamok__st_hex16(b, seg->first);
    snprintf(out, ST_NAME_MAX, "wal-%s-%s.log", a, b);
}

/* ------------------------------------------------------------------------
 * Terms of the log (base, last] as runs. */

bool hamok__st_term_at(const hamok_storage *s, uint64_t index, uint64_t *term)
{
    if (index == s->base_index) {
        *term = s->base_term;
        return true;
    }
    if (index < s->base_index || index > s->last || s->n_runs == 0) {
        return false;
    }
    size_t lo = 0, hi = s->n_runs; /* last run with first <= index */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->runs[mid].first <= index) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    *term = s->runs[lo].term;
    return true;
}

static hamok_status runs_reserve(hamok_storage *s, size_t extra)
{
    if (s->n_runs + extra <= s->cap_runs) {
        return HAMOK_OK;
    }
    size_t cap = s->cap_runs ? s->cap_runs : 16;
    while (cap < s->n_runs + extra) {
        cap *= 2;
    }
    st_run *r = hamok__realloc(s->runs, cap * sizeof *r);
    if (r == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    s->runs = r;
    s->cap_runs = cap;
    return HAMOK_OK;
}

/* Capacity must have been reserved. */
static void runs_push(hamok_storage *s, uint64_t index, uint64_t term)
{
    if (s->n_runs > 0 && s->runs[s->n_runs - 1].term == term) {
        return;
    }
    s->runs[s->n_runs++] = (st_run){index, term};
}

static void runs_truncate(hamok_storage *s, uint64_t from)
{
    while (s->n_runs > 0 && s->runs[s->n_runs - 1].first >= from) {
        s->n_runs--;
    }
}

/* Drop runs at or below base_index. */
static void runs_trim(hamok_storage *s)
{
    if (s->last <= s->base_index) {
        s->n_runs = 0;
        return;
    }
    size_t keep = 0; /* the run holding base + 1 */
    while (keep + 1 < s->n_runs && s->runs[keep + 1].first <= s->base_index + 1) {
        keep++;
    }
    if (keep > 0) {
        memmove(s->runs, s->runs + keep, (s->n_runs - keep) * sizeof *s->runs);
        s->n_runs -= keep;
    }
    if (s->n_runs > 0 && s->runs[0].first < s->base_index + 1) {
        s->runs[0].first = s->base_index + 1;
    }
}

/* ------------------------------------------------------------------------
 * Record encoding. */

static hamok_status enc_record(hamok_buf *b, uint8_t kind, const uint8_t *fixed, size_t fixed_len,
                               const uint8_t *data, size_t data_len)
{
    size_t len = fixed_len + data_len;
    hamok_status st = hamok__buf_reserve(b, ST_REC_HEADER_SIZE + len);
    if (st != HAMOK_OK) {
        return st;
    }
    uint8_t h[ST_REC_HEADER_SIZE] = {0};
    st_put32(h, (uint32_t)len);
    h[8] = kind;
    uint32_t crc = hamok__crc32c(h + 8, 4);
    crc = hamok__crc32c_update(crc, fixed, fixed_len);
    crc = hamok__crc32c_update(crc, data, data_len);
    st_put32(h + 4, crc);
    st_put32(h + 12, hamok__crc32c(h, 12));
    hamok__buf_append(b, h, sizeof h);
    hamok__buf_append(b, fixed, fixed_len);
    hamok__buf_append(b, data, data_len);
    return HAMOK_OK;
}

static hamok_status enc_truncate(hamok_buf *b, uint64_t from)
{
    uint8_t p[8];
    st_put64(p, from);
    return enc_record(b, ST_REC_TRUNCATE, p, sizeof p, NULL, 0);
}

static hamok_status enc_entry(hamok_buf *b, uint64_t index, const hamok_entry *e)
{
    uint8_t p[ST_ENTRY_FIXED];
    st_put64(p, index);
    st_put64(p + 8, e->term);
    p[16] = e->type;
    memcpy(p + 17, e->client.b, HAMOK_ID_LEN);
    st_put64(p + 33, e->seq);
    return enc_record(b, ST_REC_ENTRY, p, sizeof p, e->data, e->len);
}

/* ------------------------------------------------------------------------
 * Writing the WAL. */

static hamok_status segs_reserve(hamok_storage *s)
{
    if (s->n_segs == s->cap_segs) {
        size_t cap = s->cap_segs ? s->cap_segs * 2 : 8;
        st_segment *p = hamok__realloc(s->segs, cap * sizeof *p);
        if (p == NULL) {
            return HAMOK_ERR_NOMEM;
        }
        s->segs = p;
        s->cap_segs = cap;
    }
    return HAMOK_OK;
}

/* Capacity in s->segs must have been reserved. */
static hamok_status seg_create(hamok_storage *s, uint64_t seq, uint64_t first, int *fd_out)
{
    st_segment seg = {seq, first};
    char name[ST_NAME_MAX];
    seg_name(name, &seg);
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "create", errno);
    }
    uint8_t h[ST_SEG_HEADER_SIZE] = {0};
    memcpy(h, ST_SEG_MAGIC, 8);
    st_put32(h + 8, ST_FORMAT_VERSION);
    st_put64(h + 16, seq);
    st_put64(h + 24, first);
    st_put32(h + 36, hamok__crc32c(h, 36));
    if (hamok__st_write_all(fd, h, sizeof h, &s->stats) != 0) {
        int e = errno;
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "write", e);
    }
    s->stats.wal_bytes += sizeof h;
    s->stats.segments_created++;
    s->segs[s->n_segs++] = seg;
    s->dir_dirty = true;
    *fd_out = fd;
    return HAMOK_OK;
}

hamok_status hamok__st_roll(hamok_storage *s, uint64_t now_ms)
{
    if (segs_reserve(s) != HAMOK_OK) {
        return HAMOK_ERR_NOMEM;
    }
    if (s->seg_fd >= 0) {
        char name[ST_NAME_MAX];
        seg_name(name, &s->segs[s->n_segs - 1]);
        /* The finished segment must be complete on disk before a later one
         * exists: only the last segment may ever have a torn tail. */
        if (hamok__st_fdatasync(s->seg_fd, &s->stats) != 0) {
            return hamok__st_fail(
                s, hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "fdatasync", errno));
        }
        close(s->seg_fd);
        s->seg_fd = -1;
    }
    uint64_t seq = s->n_segs > 0 ? s->segs[s->n_segs - 1].seq + 1 : 1;
    int fd = -1;
    hamok_status st = seg_create(s, seq, s->last + 1, &fd);
    if (st != HAMOK_OK) {
        return hamok__st_fail(s, st);
    }
    s->seg_fd = fd;
    s->seg_size = ST_SEG_HEADER_SIZE;
    if (!s->pending) {
        s->pending = true;
        s->pending_since_ms = now_ms;
    }
    s->unsynced_bytes += ST_SEG_HEADER_SIZE;
    return HAMOK_OK;
}

/* Write s->wbuf to the current segment, rolling first if it is full. */
static hamok_status write_records(hamok_storage *s, uint64_t now_ms)
{
    if (s->seg_fd < 0 || (s->seg_size >= s->opt.segment_size && s->seg_size > ST_SEG_HEADER_SIZE)) {
        hamok_status st = hamok__st_roll(s, now_ms);
        if (st != HAMOK_OK) {
            return st;
        }
    }
    if (hamok__st_write_all(s->seg_fd, s->wbuf.data, s->wbuf.len, &s->stats) != 0) {
        char name[ST_NAME_MAX];
        seg_name(name, &s->segs[s->n_segs - 1]);
        return hamok__st_fail(s,
                              hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "write", errno));
    }
    s->seg_size += s->wbuf.len;
    s->stats.wal_bytes += s->wbuf.len;
    s->unsynced_bytes += s->wbuf.len;
    if (!s->pending) {
        s->pending = true;
        s->pending_since_ms = now_ms;
    }
    return HAMOK_OK;
}

static hamok_status check_usable(hamok_storage *s)
{
    if (s->failed) {
        /* Keep the original message: it says what failed. */
        return HAMOK_ERR_IO;
    }
    s->err[0] = '\0';
    return HAMOK_OK;
}

hamok_status hamok__storage_append(hamok_storage *s, uint64_t first_index,
                                   const hamok_entry *entries, size_t n, uint64_t now_ms)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = check_usable(s);
    if (st != HAMOK_OK) {
        return st;
    }
    if (n == 0 || entries == NULL || first_index <= s->base_index || first_index > s->last + 1 ||
        n > UINT64_MAX - first_index) {
        hamok__st_errf(s->err, sizeof s->err,
                       "append: first index %llu with %zu entries outside [%llu, %llu]",
                       (unsigned long long)first_index, n, (unsigned long long)s->base_index + 1,
                       (unsigned long long)s->last + 1);
        return HAMOK_ERR_INVALID;
    }
    uint64_t prev = 0;
    hamok__st_term_at(s, first_index - 1, &prev);
    /* Runs to add after truncating to first_index (for the reservation). */
    size_t new_runs = 0;
    bool have_run = first_index - 1 > s->base_index;
    for (size_t i = 0; i < n; i++) {
        const hamok_entry *e = &entries[i];
        if (e->term == 0 || e->term < prev || e->term > s->hs_term) {
            hamok__st_errf(s->err, sizeof s->err,
                           "append: entry %llu has term %llu (previous %llu, hard state %llu)",
                           (unsigned long long)(first_index + i), (unsigned long long)e->term,
                           (unsigned long long)prev, (unsigned long long)s->hs_term);
            return HAMOK_ERR_INVALID;
        }
        if ((e->data == NULL && e->len > 0) || e->len > ST_MAX_ENTRY_DATA) {
            hamok__st_errf(s->err, sizeof s->err, "append: entry %llu: bad data (%zu bytes)",
                           (unsigned long long)(first_index + i), e->len);
            return HAMOK_ERR_INVALID;
        }
        if (!have_run || e->term != prev) {
            new_runs++;
            have_run = true;
        }
        prev = e->term;
    }
    if (runs_reserve(s, new_runs) != HAMOK_OK) {
        return HAMOK_ERR_NOMEM;
    }
    hamok__buf_reset(&s->wbuf);
    if (first_index <= s->last) {
        st = enc_truncate(&s->wbuf, first_index);
    }
    for (size_t i = 0; i < n && st == HAMOK_OK; i++) {
        st = enc_entry(&s->wbuf, first_index + i, &entries[i]);
    }
    if (st != HAMOK_OK) {
        return st;
    }
    st = write_records(s, now_ms);
    if (st != HAMOK_OK) {
        return st;
    }
    runs_truncate(s, first_index);
    for (size_t i = 0; i < n; i++) {
        runs_push(s, first_index + i, entries[i].term);
    }
    s->last = first_index + n - 1;
    s->stats.entries_appended += n;
    /* Don't keep a huge buffer around after a big entry. */
    if (s->wbuf.cap > (4u << 20)) {
        hamok__buf_free(&s->wbuf);
    }
    return HAMOK_OK;
}

hamok_status hamok__storage_truncate(hamok_storage *s, uint64_t from, uint64_t now_ms)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = check_usable(s);
    if (st != HAMOK_OK) {
        return st;
    }
    if (from <= s->base_index) {
        hamok__st_errf(s->err, sizeof s->err,
                       "truncate: from %llu reaches into the snapshot (index %llu)",
                       (unsigned long long)from, (unsigned long long)s->base_index);
        return HAMOK_ERR_INVALID;
    }
    if (from > s->last) {
        return HAMOK_OK;
    }
    hamok__buf_reset(&s->wbuf);
    st = enc_truncate(&s->wbuf, from);
    if (st == HAMOK_OK) {
        st = write_records(s, now_ms);
    }
    if (st != HAMOK_OK) {
        return st;
    }
    runs_truncate(s, from);
    s->last = from - 1;
    return HAMOK_OK;
}

hamok_status hamok__st_write_reset(hamok_storage *s, uint64_t index, uint64_t term)
{
    uint8_t p[16];
    st_put64(p, index);
    st_put64(p + 8, term);
    hamok__buf_reset(&s->wbuf);
    hamok_status st = enc_record(&s->wbuf, ST_REC_RESET, p, sizeof p, NULL, 0);
    if (st == HAMOK_OK) {
        st = write_records(s, s->pending_since_ms);
    }
    return st;
}

hamok_status hamok__st_sync(hamok_storage *s)
{
    if (s->pending) {
        if (hamok__st_fdatasync(s->seg_fd, &s->stats) != 0) {
            char name[ST_NAME_MAX];
            seg_name(name, &s->segs[s->n_segs - 1]);
            return hamok__st_fail(
                s, hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "fdatasync", errno));
        }
        s->stats.syncs++;
    }
    if (s->dir_dirty) {
        if (hamok__st_fsync_dir(s->dirfd, &s->stats) != 0) {
            return hamok__st_fail(
                s, hamok__st_ioerr(s->err, sizeof s->err, s->dir, NULL, "fsync", errno));
        }
        s->dir_dirty = false;
    }
    s->pending = false;
    s->unsynced_bytes = 0;
    return HAMOK_OK;
}

hamok_status hamok__storage_sync(hamok_storage *s, uint64_t *durable_index, uint64_t *durable_term)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = check_usable(s);
    if (st == HAMOK_OK) {
        st = hamok__st_sync(s);
    }
    if (st != HAMOK_OK) {
        return st;
    }
    uint64_t t = 0;
    hamok__st_term_at(s, s->last, &t);
    if (durable_index != NULL) {
        *durable_index = s->last;
    }
    if (durable_term != NULL) {
        *durable_term = t;
    }
    return HAMOK_OK;
}

uint64_t hamok__storage_next_sync_ms(const hamok_storage *s)
{
    if (s == NULL || !s->pending) {
        return UINT64_MAX;
    }
    if (s->opt.sync_policy == HAMOK_SYNC_ALWAYS) {
        return s->pending_since_ms;
    }
    uint64_t d = s->opt.batch_delay_ms;
    return s->pending_since_ms > UINT64_MAX - d ? UINT64_MAX : s->pending_since_ms + d;
}

bool hamok__storage_sync_due(const hamok_storage *s, uint64_t now_ms)
{
    if (s == NULL || !s->pending) {
        return false;
    }
    if (s->opt.sync_policy == HAMOK_SYNC_ALWAYS) {
        return true;
    }
    if (s->opt.batch_max_bytes > 0 && s->unsynced_bytes >= s->opt.batch_max_bytes) {
        return true;
    }
    return now_ms >= hamok__storage_next_sync_ms(s);
}

uint64_t hamok__storage_first_index(const hamok_storage *s)
{
    return s->base_index + 1;
}

uint64_t hamok__storage_last_index(const hamok_storage *s)
{
    return s->last;
}

bool hamok__storage_term_at(const hamok_storage *s, uint64_t index, uint64_t *term)
{
    uint64_t t;
    if (!hamok__st_term_at(s, index, &t)) {
        return false;
    }
    if (term != NULL) {
        *term = t;
    }
    return true;
}

void hamok__storage_stats(const hamok_storage *s, hamok_storage_stats *out)
{
    *out = s->stats;
    out->unsynced_bytes = s->unsynced_bytes;
    out->segments = s->n_segs;
}

const char *hamok__storage_error(const hamok_storage *s)
{
    return s == NULL ? "" : s->err;
}

/* ------------------------------------------------------------------------
 * Hard state and peer id. */

static void enc_hard_state(uint8_t *p, uint64_t term, bool has_vote, const hamok_id *vote)
{
    memset(p, 0, ST_HARDSTATE_SIZE);
    memcpy(p, ST_HARDSTATE_MAGIC, 8);
    st_put32(p + 8, ST_FORMAT_VERSION);
    st_put32(p + 12, has_vote ? 1u : 0u);
    st_put64(p + 16, term);
    if (has_vote) {
        memcpy(p + 24, vote->b, HAMOK_ID_LEN);
    }
    st_put32(p + 40, hamok__crc32c(p, 40));
}

hamok_status hamok__storage_save_hard_state(hamok_storage *s, uint64_t term, bool has_vote,
                                            const hamok_id *vote)
{
    if (s == NULL || (has_vote && vote == NULL)) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = check_usable(s);
    if (st != HAMOK_OK) {
        return st;
    }
    if (term < s->hs_term) {
        hamok__st_errf(s->err, sizeof s->err, "hard state: term %llu is below the stored %llu",
                       (unsigned long long)term, (unsigned long long)s->hs_term);
        return HAMOK_ERR_INVALID;
    }
    bool same_vote = has_vote == s->hs_has_vote && (!has_vote || hamok__id_eq(vote, &s->hs_vote));
    if (term == s->hs_term && s->hs_has_vote && !same_vote) {
        hamok__st_errf(s->err, sizeof s->err,
                       "hard state: the vote of term %llu is already cast and can't change",
                       (unsigned long long)term);
        return HAMOK_ERR_INVALID;
    }
    if (term == s->hs_term && same_vote && s->hs_exists) {
        return HAMOK_OK;
    }
    uint8_t p[ST_HARDSTATE_SIZE];
    enc_hard_state(p, term, has_vote, vote);
    st = hamok__st_atomic_write(s->dirfd, s->dir, ST_HARDSTATE_FILE, p, sizeof p, &s->stats, s->err,
                                sizeof s->err);
    if (st != HAMOK_OK) {
        return hamok__st_fail(s, st);
    }
    s->hs_exists = true;
    s->hs_term = term;
    s->hs_has_vote = has_vote;
    if (has_vote) {
        s->hs_vote = *vote;
    } else {
        memset(&s->hs_vote, 0, sizeof s->hs_vote);
    }
    return HAMOK_OK;
}

/* Read a small file of exactly `size` bytes. */
static hamok_status read_small(hamok_storage *s, const char *name, uint8_t *buf, size_t size,
                               char *err, size_t errlen)
{
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return hamok__st_ioerr(err, errlen, s->dir, name, "open", errno);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return hamok__st_ioerr(err, errlen, s->dir, name, "stat", e);
    }
    if ((uint64_t)sb.st_size != size) {
        close(fd);
        hamok__st_errf(err, errlen, "%s/%s: offset 0: size %llu, expected %zu", s->dir, name,
                       (unsigned long long)sb.st_size, size);
        return HAMOK_ERR_CORRUPT;
    }
    int rc = hamok__st_pread_all(fd, buf, size, 0);
    int e = errno;
    close(fd);
    if (rc < 0) {
        return hamok__st_ioerr(err, errlen, s->dir, name, "read", e);
    }
    if (rc > 0) {
        hamok__st_errf(err, errlen, "%s/%s: offset 0: file shrank while read", s->dir, name);
        return HAMOK_ERR_CORRUPT;
    }
    return HAMOK_OK;
}

/* Read a small file laid out as: 8-byte magic, payload, u32 CRC32C of
 * everything before it, u32 0 (peer-id, hardstate, client-seq). */
static hamok_status read_checked(hamok_storage *s, const char *name, const char *magic, uint8_t *p,
                                 size_t size, char *err, size_t errlen)
{
    hamok_status st = read_small(s, name, p, size, err, errlen);
    if (st != HAMOK_OK) {
        return st;
    }
    if (memcmp(p, magic, 8) != 0) {
        hamok__st_errf(err, errlen, "%s/%s: offset 0: bad magic", s->dir, name);
        return HAMOK_ERR_CORRUPT;
    }
    if (st_get32(p + size - 8) != hamok__crc32c(p, size - 8) || st_get32(p + size - 4) != 0) {
        hamok__st_errf(err, errlen, "%s/%s: offset %zu: checksum mismatch", s->dir, name, size - 8);
        return HAMOK_ERR_CORRUPT;
    }
    return HAMOK_OK;
}

static hamok_status load_peer_id(hamok_storage *s, char *err, size_t errlen)
{
    uint8_t p[ST_PEER_ID_SIZE];
    hamok_status st = read_checked(s, ST_PEER_ID_FILE, ST_PEER_ID_MAGIC, p, sizeof p, err, errlen);
    if (st != HAMOK_OK) {
        return st;
    }
    memcpy(s->id.b, p + 8, HAMOK_ID_LEN);
    return HAMOK_OK;
}

static hamok_status create_peer_id(hamok_storage *s, const uint8_t *fresh, char *err, size_t errlen)
{
    uint8_t p[ST_PEER_ID_SIZE] = {0};
    memcpy(p, ST_PEER_ID_MAGIC, 8);
    memcpy(p + 8, fresh, HAMOK_ID_LEN);
    st_put32(p + 24, hamok__crc32c(p, 24));
    hamok_status st = hamok__st_atomic_write(s->dirfd, s->dir, ST_PEER_ID_FILE, p, sizeof p,
                                             &s->stats, err, errlen);
    if (st == HAMOK_OK) {
        memcpy(s->id.b, fresh, HAMOK_ID_LEN);
    }
    return st;
}

hamok_status hamok__storage_save_seq_floor(hamok_storage *s, uint64_t floor)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    hamok_status st = check_usable(s);
    if (st != HAMOK_OK) {
        return st;
    }
    if (floor <= s->seq_floor) {
        if (floor < s->seq_floor) {
            hamok__st_errf(s->err, sizeof s->err,
                           "client-seq: %llu is below the stored %llu (numbers would be reused)",
                           (unsigned long long)floor, (unsigned long long)s->seq_floor);
            return HAMOK_ERR_INVALID;
        }
        return HAMOK_OK;
    }
    uint8_t p[ST_SEQ_SIZE] = {0};
    memcpy(p, ST_SEQ_MAGIC, 8);
    st_put64(p + 8, floor);
    st_put32(p + 16, hamok__crc32c(p, 16));
    st = hamok__st_atomic_write(s->dirfd, s->dir, ST_SEQ_FILE, p, sizeof p, &s->stats, s->err,
                                sizeof s->err);
    if (st != HAMOK_OK) {
        return hamok__st_fail(s, st);
    }
    s->seq_floor = floor;
    return HAMOK_OK;
}

static hamok_status load_seq_floor(hamok_storage *s, char *err, size_t errlen)
{
    uint8_t p[ST_SEQ_SIZE];
    hamok_status st = read_checked(s, ST_SEQ_FILE, ST_SEQ_MAGIC, p, sizeof p, err, errlen);
    if (st != HAMOK_OK) {
        return st;
    }
    s->seq_floor = st_get64(p + 8);
    return HAMOK_OK;
}

static hamok_status load_hard_state(hamok_storage *s, char *err, size_t errlen)
{
    uint8_t p[ST_HARDSTATE_SIZE];
    hamok_status st =
        read_checked(s, ST_HARDSTATE_FILE, ST_HARDSTATE_MAGIC, p, sizeof p, err, errlen);
    if (st != HAMOK_OK) {
        return st;
    }
    uint32_t version = st_get32(p + 8), flags = st_get32(p + 12);
    if (version != ST_FORMAT_VERSION || flags > 1) {
        hamok__st_errf(err, errlen, "%s/%s: offset 8: unsupported version %u / flags %u", s->dir,
                       ST_HARDSTATE_FILE, version, flags);
        return HAMOK_ERR_CORRUPT;
    }
    s->hs_exists = true;
    s->hs_has_vote = flags == 1;
    s->hs_term = st_get64(p + 16);
    memcpy(s->hs_vote.b, p + 24, HAMOK_ID_LEN);
    return HAMOK_OK;
}

/* ------------------------------------------------------------------------
 * Directory scan. */

typedef struct st_snap_file {
    uint64_t index;
    uint64_t term;
} st_snap_file;

typedef struct st_scan {
    st_segment *segs;
    size_t n_segs, cap_segs;
    st_snap_file *snaps;
    size_t n_snaps, cap_snaps;
    bool has_peer_id;
    bool has_hardstate;
    bool has_seq;
    bool removed_tmp;
} st_scan;

static void scan_free(st_scan *sc)
{
    hamok__free(sc->segs);
    hamok__free(sc->snaps);
    memset(sc, 0, sizeof *sc);
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return true;
    }
    size_t c = *cap ? *cap * 2 : 16;
    void *p = hamok__realloc(*arr, c * elem);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = c;
    return true;
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && memcmp(s + a - b, suf, b) == 0;
}

static bool parse_seg_name(const char *n, st_segment *seg)
{
    return strlen(n) == 41 && memcmp(n, "wal-", 4) == 0 && n[20] == '-' &&
           memcmp(n + 37, ".log", 4) == 0 && hamok__st_parse_hex16(n + 4, &seg->seq) &&
           hamok__st_parse_hex16(n + 21, &seg->first);
}

static bool parse_snap_name(const char *n, st_snap_file *sf)
{
    return strlen(n) == 47 && memcmp(n, "snapshot-", 9) == 0 && n[25] == '-' &&
           memcmp(n + 42, ".snap", 5) == 0 && hamok__st_parse_hex16(n + 9, &sf->index) &&
           hamok__st_parse_hex16(n + 26, &sf->term);
}

/* Calls fn(ud, name) for every entry of the directory but . and .. */
static hamok_status list_dir(hamok_storage *s, hamok_status (*fn)(void *, const char *), void *ud,
                             char *err, size_t errlen)
{
    int fd = dup(s->dirfd);
    if (fd < 0) {
        return hamok__st_ioerr(err, errlen, s->dir, NULL, "dup", errno);
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int e = errno;
        close(fd);
        return hamok__st_ioerr(err, errlen, s->dir, NULL, "opendir", e);
    }
    rewinddir(d);
    hamok_status st = HAMOK_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (de == NULL) {
            if (errno != 0) {
                st = hamok__st_ioerr(err, errlen, s->dir, NULL, "readdir", errno);
            }
            break;
        }
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        st = fn(ud, de->d_name);
        if (st != HAMOK_OK) {
            break;
        }
    }
    closedir(d);
    return st;
}

typedef struct scan_ctx {
    hamok_storage *s;
    st_scan *sc;
    char *err;
    size_t errlen;
} scan_ctx;

static hamok_status scan_one(void *ud, const char *name)
{
    scan_ctx *c = ud;
    st_scan *sc = c->sc;
    st_segment seg;
    st_snap_file sf;
    if (parse_seg_name(name, &seg)) {
        if (!grow((void **)&sc->segs, &sc->cap_segs, sc->n_segs, sizeof seg)) {
            return HAMOK_ERR_NOMEM;
        }
        sc->segs[sc->n_segs++] = seg;
    } else if (parse_snap_name(name, &sf)) {
        if (!grow((void **)&sc->snaps, &sc->cap_snaps, sc->n_snaps, sizeof sf)) {
            return HAMOK_ERR_NOMEM;
        }
        sc->snaps[sc->n_snaps++] = sf;
    } else if (strcmp(name, ST_PEER_ID_FILE) == 0) {
        sc->has_peer_id = true;
    } else if (strcmp(name, ST_HARDSTATE_FILE) == 0) {
        sc->has_hardstate = true;
    } else if (strcmp(name, ST_SEQ_FILE) == 0) {
        sc->has_seq = true;
    } else if (has_suffix(name, ".tmp") &&
               (strncmp(name, "snapshot-", 9) == 0 || strcmp(name, "hardstate.tmp") == 0 ||
                strcmp(name, "peer-id.tmp") == 0 || strcmp(name, "client-seq.tmp") == 0)) {
        if (unlinkat(c->s->dirfd, name, 0) != 0 && errno != ENOENT) {
            return hamok__st_ioerr(c->err, c->errlen, c->s->dir, name, "unlink", errno);
        }
        sc->removed_tmp = true;
    }
    return HAMOK_OK;
}

static int cmp_seg(const void *a, const void *b)
{
    const st_segment *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_snap_desc(const void *a, const void *b)
{
    const st_snap_file *x = a, *y = b;
    if (x->index != y->index) {
        return x->index > y->index ? -1 : 1;
    }
    return x->term > y->term ? -1 : x->term < y->term;
}

/* ------------------------------------------------------------------------
 * WAL replay. */

typedef struct st_replay {
    uint64_t start; /* index of e[0] */
    hamok_entry *e;
    size_t n, cap;
    uint64_t prev_term; /* term of the last entry or RESET; 0 unknown */
    bool started;
} st_replay;

static void replay_drop(st_replay *rp, size_t keep)
{
    for (size_t i = keep; i < rp->n; i++) {
        hamok__free(rp->e[i].data);
    }
    rp->n = keep;
}

static void replay_free(st_replay *rp)
{
    replay_drop(rp, 0);
    hamok__free(rp->e);
    memset(rp, 0, sizeof *rp);
}

typedef struct st_reader {
    int fd;
    uint64_t size;
    uint64_t off0; /* file offset of buf.data[0] */
    hamok_buf buf;
} st_reader;

/* Make [off, off + k) readable (off + k <= size). 0, or -1 with errno. */
static int rd_need(st_reader *r, uint64_t off, size_t k, const uint8_t **p)
{
    if (off >= r->off0 && off + k <= r->off0 + r->buf.len) {
        *p = r->buf.data + (off - r->off0);
        return 0;
    }
    uint64_t want = k > RD_CHUNK ? k : RD_CHUNK;
    if (want > r->size - off) {
        want = r->size - off;
    }
    r->buf.len = 0;
    r->off0 = off;
    if (hamok__buf_reserve(&r->buf, (size_t)want) != HAMOK_OK) {
        errno = ENOMEM;
        return -1;
    }
    int rc = hamok__st_pread_all(r->fd, r->buf.data, (size_t)want, off);
    if (rc != 0) {
        if (rc > 0) {
            errno = EIO; /* the file shrank under us */
        }
        return -1;
    }
    r->buf.len = (size_t)want;
    *p = r->buf.data + (off - r->off0);
    return 0;
}

/* True when every byte of [off, size) is zero (unwritten blocks after a crash). */
static int rd_all_zero(st_reader *r, uint64_t off, bool *zero)
{
    *zero = true;
    while (off < r->size) {
        uint64_t k = r->size - off < RD_CHUNK ? r->size - off : RD_CHUNK;
        const uint8_t *p;
        if (rd_need(r, off, (size_t)k, &p) != 0) {
            return -1;
        }
        for (uint64_t i = 0; i < k; i++) {
            if (p[i] != 0) {
                *zero = false;
                return 0;
            }
        }
        off += k;
    }
    return 0;
}

typedef struct seg_result {
    bool removed;    /* torn header: the (last) segment was deleted */
    bool repaired;   /* torn tail cut off */
    uint64_t cut_at; /* offset cut at */
    const char *why; /* what was torn */
    int fd;          /* last segment: kept open (O_RDWR) */
    uint64_t size;   /* final size */
} seg_result;

#define CORRUPT(...)                              \
    do {                                          \
        hamok__st_errf(err, errlen, __VA_ARGS__); \
        st = HAMOK_ERR_CORRUPT;                   \
        goto out;                                 \
    } while (0)

static hamok_status replay_segment(hamok_storage *s, const st_segment *seg, bool is_last,
                                   st_replay *rp, seg_result *res, char *err, size_t errlen)
{
    char name[ST_NAME_MAX];
    seg_name(name, seg);
    memset(res, 0, sizeof *res);
    res->fd = -1;
    hamok_status st = HAMOK_OK;
    st_reader rd = {0};
    rd.fd = openat(s->dirfd, name, (is_last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (rd.fd < 0) {
        return hamok__st_ioerr(err, errlen, s->dir, name, "open", errno);
    }
    struct stat sb;
    if (fstat(rd.fd, &sb) != 0) {
        st = hamok__st_ioerr(err, errlen, s->dir, name, "stat", errno);
        goto out;
    }
    rd.size = (uint64_t)sb.st_size;
    const uint8_t *p;
    /* Segment header. */
    bool header_ok = false;
    if (rd.size >= ST_SEG_HEADER_SIZE) {
        if (rd_need(&rd, 0, ST_SEG_HEADER_SIZE, &p) != 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "read", errno);
            goto out;
        }
        header_ok = memcmp(p, ST_SEG_MAGIC, 8) == 0 && st_get32(p + 36) == hamok__crc32c(p, 36);
    }
    if (!header_ok) {
        bool zero = true;
        if (rd_all_zero(&rd, 0, &zero) != 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "read", errno);
            goto out;
        }
        if (is_last && (rd.size < ST_SEG_HEADER_SIZE || zero)) {
            /* Created, then the crash came before its header was durable:
             * it holds no record. */
            close(rd.fd);
            rd.fd = -1;
            if (unlinkat(s->dirfd, name, 0) != 0) {
                st = hamok__st_ioerr(err, errlen, s->dir, name, "unlink", errno);
                goto out;
            }
            if (hamok__st_fsync_dir(s->dirfd, &s->stats) != 0) {
                st = hamok__st_ioerr(err, errlen, s->dir, NULL, "fsync", errno);
                goto out;
            }
            res->removed = true;
            goto out;
        }
        CORRUPT("%s/%s: offset 0: bad segment header", s->dir, name);
    }
    uint32_t version = st_get32(p + 8);
    uint64_t hseq = st_get64(p + 16), hfirst = st_get64(p + 24);
    if (version != ST_FORMAT_VERSION) {
        CORRUPT("%s/%s: offset 8: unsupported version %u", s->dir, name, version);
    }
    if (hseq != seg->seq || hfirst != seg->first || hfirst == 0) {
        CORRUPT("%s/%s: offset 16: header says seq %llu first %llu, unlike its name", s->dir, name,
                (unsigned long long)hseq, (unsigned long long)hfirst);
    }
    if (!rp->started) {
        rp->started = true;
        rp->start = hfirst;
        rp->prev_term = 0;
    } else if (hfirst != rp->start + rp->n) {
        CORRUPT(
            "%s/%s: offset 16: segment starts at index %llu but the log before it ends at "
            "%llu (missing or foreign segment)",
            s->dir, name, (unsigned long long)hfirst, (unsigned long long)(rp->start + rp->n - 1));
    }

    uint64_t off = ST_SEG_HEADER_SIZE;
    const char *torn = NULL;
    while (off < rd.size) {
        uint64_t rem = rd.size - off;
        if (rem < ST_REC_HEADER_SIZE) {
            torn = "incomplete record header";
            break;
        }
        if (rd_need(&rd, off, ST_REC_HEADER_SIZE, &p) != 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "read", errno);
            goto out;
        }
        uint8_t h[ST_REC_HEADER_SIZE];
        memcpy(h, p, sizeof h);
        if (st_get32(h + 12) != hamok__crc32c(h, 12) || h[9] != 0 || h[10] != 0 || h[11] != 0) {
            bool zero = false;
            if (is_last && rd_all_zero(&rd, off, &zero) != 0) {
                st = hamok__st_ioerr(err, errlen, s->dir, name, "read", errno);
                goto out;
            }
            if (is_last && zero) {
                torn = "zero bytes where a record header should be";
                break;
            }
            /* Damage in the header of a record whose (unverified) length
             * ends it exactly at the end of the file: the final record. */
            if (is_last && st_get32(h) == rem - ST_REC_HEADER_SIZE) {
                torn = "checksum mismatch in the final record";
                break;
            }
            CORRUPT("%s/%s: offset %llu: record header checksum mismatch", s->dir, name,
                    (unsigned long long)off);
        }
        uint32_t len = st_get32(h);
        uint32_t crc = st_get32(h + 4);
        uint8_t kind = h[8];
        if (len > rem - ST_REC_HEADER_SIZE) {
            if (is_last) {
                torn = "record runs past the end of the file";
                break;
            }
            CORRUPT("%s/%s: offset %llu: record of %u bytes runs past the end of the file", s->dir,
                    name, (unsigned long long)off, len);
        }
        if (rd_need(&rd, off + ST_REC_HEADER_SIZE, len, &p) != 0) {
            st = errno == ENOMEM ? HAMOK_ERR_NOMEM
                                 : hamok__st_ioerr(err, errlen, s->dir, name, "read", errno);
            goto out;
        }
        if (hamok__crc32c_update(hamok__crc32c(h + 8, 4), p, len) != crc) {
            if (is_last && off + ST_REC_HEADER_SIZE + len == rd.size) {
                torn = "checksum mismatch in the final record";
                break;
            }
            CORRUPT("%s/%s: offset %llu: record checksum mismatch", s->dir, name,
                    (unsigned long long)off);
        }
        uint64_t next = rp->start + rp->n;
        if (kind == ST_REC_ENTRY) {
            if (len < ST_ENTRY_FIXED) {
                CORRUPT("%s/%s: offset %llu: entry record too short (%u bytes)", s->dir, name,
                        (unsigned long long)off, len);
            }
            uint64_t index = st_get64(p), term = st_get64(p + 8);
            if (index != next) {
                CORRUPT(
                    "%s/%s: offset %llu: entry index %llu where %llu was expected (gap or "
                    "overlap)",
                    s->dir, name, (unsigned long long)off, (unsigned long long)index,
                    (unsigned long long)next);
            }
            if (term == 0 || term < rp->prev_term) {
                CORRUPT("%s/%s: offset %llu: entry %llu has term %llu after term %llu", s->dir,
                        name, (unsigned long long)off, (unsigned long long)index,
                        (unsigned long long)term, (unsigned long long)rp->prev_term);
            }
            if (!grow((void **)&rp->e, &rp->cap, rp->n, sizeof *rp->e)) {
                st = HAMOK_ERR_NOMEM;
                goto out;
            }
            hamok_entry *e = &rp->e[rp->n];
            memset(e, 0, sizeof *e);
            e->term = term;
            e->type = p[16];
            memcpy(e->client.b, p + 17, HAMOK_ID_LEN);
            e->seq = st_get64(p + 33);
            e->len = len - ST_ENTRY_FIXED;
            if (e->len > 0) {
                e->data = hamok__memdup(p + ST_ENTRY_FIXED, e->len);
                if (e->data == NULL) {
                    st = HAMOK_ERR_NOMEM;
                    goto out;
                }
            }
            rp->n++;
            rp->prev_term = term;
        } else if (kind == ST_REC_TRUNCATE) {
            uint64_t from = len == 8 ? st_get64(p) : 0;
            if (from == 0 || from >= next) {
                CORRUPT(
                    "%s/%s: offset %llu: truncate record from %llu with the log ending at "
                    "%llu",
                    s->dir, name, (unsigned long long)off, (unsigned long long)from,
                    (unsigned long long)(next - 1));
            }
            if (from <= rp->start) {
                /* Reaches into segments deleted by compaction (or to the
                 * very start): everything replayed so far goes. */
                replay_drop(rp, 0);
                rp->start = from;
                rp->prev_term = 0;
            } else {
                replay_drop(rp, (size_t)(from - rp->start));
                rp->prev_term = rp->e[rp->n - 1].term;
            }
        } else if (kind == ST_REC_RESET) {
            uint64_t index = len == 16 ? st_get64(p) : 0, term = len == 16 ? st_get64(p + 8) : 0;
            if (index == 0 || term == 0 || index == UINT64_MAX) {
                CORRUPT("%s/%s: offset %llu: malformed reset record", s->dir, name,
                        (unsigned long long)off);
            }
            replay_drop(rp, 0);
            rp->start = index + 1;
            rp->prev_term = term;
        } else {
            CORRUPT("%s/%s: offset %llu: unknown record kind %u", s->dir, name,
                    (unsigned long long)off, kind);
        }
        off += ST_REC_HEADER_SIZE + len;
    }
    if (torn != NULL) {
        if (!is_last) {
            CORRUPT("%s/%s: offset %llu: %s (not the last segment)", s->dir, name,
                    (unsigned long long)off, torn);
        }
        if (ftruncate(rd.fd, (off_t)off) != 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "ftruncate", errno);
            goto out;
        }
        if (hamok__st_fdatasync(rd.fd, &s->stats) != 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "fdatasync", errno);
            goto out;
        }
        res->repaired = true;
        res->cut_at = off;
        res->why = torn;
        rd.size = off;
    }
    res->size = rd.size;
    if (is_last) {
        if (lseek(rd.fd, (off_t)rd.size, SEEK_SET) < 0) {
            st = hamok__st_ioerr(err, errlen, s->dir, name, "lseek", errno);
            goto out;
        }
        res->fd = rd.fd;
        rd.fd = -1;
    }
out:
    if (rd.fd >= 0) {
        close(rd.fd);
    }
    hamok__buf_free(&rd.buf);
    return st;
}

/* ------------------------------------------------------------------------
 * Open. */

static hamok_status mkdir_p(const char *dir, char *err, size_t errlen)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode)) {
            return hamok__st_ioerr(err, errlen, dir, NULL, "not a directory", ENOTDIR);
        }
        return HAMOK_OK;
    }
    char *path = hamok__strdup(dir);
    if (path == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    hamok_status st = HAMOK_OK;
    size_t len = strlen(path);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            st = hamok__st_ioerr(err, errlen, path, NULL, "mkdir", errno);
            break;
        }
        path[i] = c;
    }
    if (st == HAMOK_OK) {
        /* Make the new directory's own entry durable. */
        char *slash = strrchr(path, '/');
        const char *parent = ".";
        if (slash == path) {
            parent = "/";
        } else if (slash != NULL) {
            *slash = '\0';
            parent = path;
        }
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd >= 0) {
            hamok__st_fsync_dir(pfd, NULL);
            close(pfd);
        }
    }
    hamok__free(path);
    return st;
}

static void storage_free(hamok_storage *s)
{
    if (s == NULL) {
        return;
    }
    if (s->seg_fd >= 0) {
        close(s->seg_fd);
    }
    if (s->dirfd >= 0) {
        close(s->dirfd);
    }
    if (s->lockfd >= 0) {
        close(s->lockfd);
    }
    hamok__free(s->dir);
    hamok__free(s->runs);
    hamok__free(s->segs);
    hamok__buf_free(&s->wbuf);
    hamok__free(s);
}

static void notice_add(hamok_storage_recovered *rec, const char *text)
{
    /* Appended with "; " between items; cut at the buffer's end. */
    size_t used = strlen(rec->notice), room = sizeof rec->notice - 1 - used;
    if (used > 0 && room >= 2) {
        memcpy(rec->notice + used, "; ", 2);
        used += 2;
        room -= 2;
    }
    size_t k = strlen(text) < room ? strlen(text) : room;
    memcpy(rec->notice + used, text, k);
    rec->notice[used + k] = '\0';
}

typedef struct open_state {
    hamok_storage *s;
    hamok_storage_recovered *rec;
    st_scan sc;
    st_replay rp;
    char *err;
    size_t errlen;
} open_state;

/* Choose the snapshot and replay the WAL; on success rp holds the log and
 * s->base_* the snapshot. */
static hamok_status recover(open_state *o)
{
    hamok_storage *s = o->s;
    hamok_storage_recovered *rec = o->rec;
    char *err = o->err;
    size_t errlen = o->errlen;
    hamok_status st;

    /* Latest valid snapshot, remembering the corrupt ones above it. */
    size_t chosen = o->sc.n_snaps, n_corrupt = 0;
    char corrupt_msg[512] = "";
    for (size_t i = 0; i < o->sc.n_snaps; i++) {
        char name[ST_NAME_MAX];
        hamok__st_snap_name(name, o->sc.snaps[i].index, o->sc.snaps[i].term);
        st_snap_info info;
        uint8_t *meta = NULL;
        char msg[512];
        st = hamok__st_snap_verify(s->dirfd, -1, s->dir, o->sc.snaps[i].index, o->sc.snaps[i].term,
                                   &info, &meta, msg, sizeof msg);
        if (st == HAMOK_OK) {
            chosen = i;
            rec->snapshot_meta = meta;
            rec->snapshot_meta_len = (size_t)info.meta_len;
            break;
        }
        if (st != HAMOK_ERR_CORRUPT) {
            hamok__st_errf(err, errlen, "%s", msg);
            return st;
        }
        if (n_corrupt++ == 0) {
            snprintf(corrupt_msg, sizeof corrupt_msg, "%s", msg);
        }
    }
    if (n_corrupt > 0 && chosen == o->sc.n_snaps) {
        hamok__st_errf(err, errlen, "%s (and no older valid snapshot)", corrupt_msg);
        return HAMOK_ERR_CORRUPT;
    }
    if (chosen < o->sc.n_snaps) {
        s->has_snap = true;
        s->base_index = o->sc.snaps[chosen].index;
        s->base_term = o->sc.snaps[chosen].term;
        hamok__st_snap_name(s->snap_name, s->base_index, s->base_term);
    }

    /* Replay the WAL. */
    if (o->sc.n_segs > 1) {
        qsort(o->sc.segs, o->sc.n_segs, sizeof *o->sc.segs, cmp_seg);
    }
    for (size_t i = 1; i < o->sc.n_segs; i++) {
        if (o->sc.segs[i].seq != o->sc.segs[i - 1].seq + 1) {
            char a[ST_NAME_MAX], b[ST_NAME_MAX];
            seg_name(a, &o->sc.segs[i - 1]);
            seg_name(b, &o->sc.segs[i]);
            hamok__st_errf(err, errlen, "%s: segment missing between %s and %s", s->dir, a, b);
            return HAMOK_ERR_CORRUPT;
        }
    }
    for (size_t i = 0; i < o->sc.n_segs; i++) {
        bool is_last = i + 1 == o->sc.n_segs;
        seg_result res;
        st = replay_segment(s, &o->sc.segs[i], is_last, &o->rp, &res, err, errlen);
        if (st != HAMOK_OK) {
            return st;
        }
        if (res.removed) {
            o->sc.n_segs--;
            rec->repaired_tail = true;
            notice_add(rec, "removed a WAL segment whose header was never completed");
            break;
        }
        if (res.repaired) {
            char name[ST_NAME_MAX], text[256];
            seg_name(name, &o->sc.segs[i]);
            snprintf(text, sizeof text, "%s: cut a torn tail at offset %llu (%s)", name,
                     (unsigned long long)res.cut_at, res.why);
            rec->repaired_tail = true;
            notice_add(rec, text);
        }
        if (is_last) {
            s->seg_fd = res.fd;
            s->seg_size = res.size;
        }
    }
    if (!o->rp.started) {
        o->rp.start = s->base_index + 1;
    }

    /* A corrupt newer snapshot may be stood in for by an older one only if
     * the WAL still holds everything between them. */
    if (n_corrupt > 0) {
        const st_snap_file *top = &o->sc.snaps[0];
        uint64_t end = o->rp.start + o->rp.n; /* one past the last index */
        bool covers = o->rp.start <= s->base_index + 1 && end > top->index &&
                      top->index >= o->rp.start &&
                      o->rp.e[top->index - o->rp.start].term == top->term &&
                      (o->rp.start == s->base_index + 1 ||
                       o->rp.e[s->base_index - o->rp.start].term == s->base_term);
        if (!covers) {
            hamok__st_errf(err, errlen,
                           "%s; the older snapshot %s can't stand in: the WAL does not hold "
                           "entries %llu..%llu",
                           corrupt_msg, s->snap_name, (unsigned long long)s->base_index + 1,
                           (unsigned long long)top->index);
            return HAMOK_ERR_CORRUPT;
        }
        for (size_t i = 0; i < chosen; i++) {
            char name[ST_NAME_MAX], aside[ST_NAME_MAX + 8];
            hamok__st_snap_name(name, o->sc.snaps[i].index, o->sc.snaps[i].term);
            snprintf(aside, sizeof aside, "%s.corrupt", name);
            if (renameat(s->dirfd, name, s->dirfd, aside) != 0) {
                return hamok__st_ioerr(err, errlen, s->dir, name, "rename", errno);
            }
        }
        if (hamok__st_fsync_dir(s->dirfd, &s->stats) != 0) {
            return hamok__st_ioerr(err, errlen, s->dir, NULL, "fsync", errno);
        }
        rec->snapshot_fell_back = true;
        char text[700];
        snprintf(text, sizeof text, "%s; set aside as *.corrupt, using %s and the WAL", corrupt_msg,
                 s->snap_name);
        notice_add(rec, text);
    }
    return HAMOK_OK;
}

hamok_status hamok__storage_open(hamok_storage **out, const char *dir,
                                 const hamok_storage_options *opt,
                                 const uint8_t fresh_id[HAMOK_ID_LEN], hamok_storage_recovered *rec,
                                 char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    if (out == NULL || dir == NULL || rec == NULL || dir[0] == '\0') {
        hamok__st_errf(err, errlen, "storage open: out, dir and rec are required");
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    memset(rec, 0, sizeof *rec);
    hamok_storage_options o;
    if (opt != NULL) {
        o = *opt;
    } else {
        hamok__storage_options_default(&o);
    }
    if (o.segment_size < 4096 ||
        (o.sync_policy != HAMOK_SYNC_ALWAYS && o.sync_policy != HAMOK_SYNC_BATCH)) {
        hamok__st_errf(err, errlen, "storage open: bad options (segment size %llu, policy %d)",
                       (unsigned long long)o.segment_size, (int)o.sync_policy);
        return HAMOK_ERR_INVALID;
    }

    hamok_storage *s = hamok__calloc(1, sizeof *s);
    if (s == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    s->dirfd = s->lockfd = s->seg_fd = -1;
    s->opt = o;
    open_state os = {.s = s, .rec = rec, .err = err, .errlen = errlen};
    hamok_status st = HAMOK_OK;
    s->dir = hamok__strdup(dir);
    if (s->dir == NULL) {
        st = HAMOK_ERR_NOMEM;
        goto fail;
    }
    st = mkdir_p(dir, err, errlen);
    if (st != HAMOK_OK) {
        goto fail;
    }
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        st = hamok__st_ioerr(err, errlen, dir, NULL, "open", errno);
        goto fail;
    }
    s->lockfd = openat(s->dirfd, ST_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lockfd < 0) {
        st = hamok__st_ioerr(err, errlen, dir, ST_LOCK_FILE, "open", errno);
        goto fail;
    }
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(s->lockfd, F_SETLK, &fl) != 0) {
        if (errno == EACCES || errno == EAGAIN) {
            hamok__st_errf(err, errlen, "%s: in use by another process (%s is locked)", dir,
                           ST_LOCK_FILE);
            st = HAMOK_ERR_BUSY;
        } else {
            st = hamok__st_ioerr(err, errlen, dir, ST_LOCK_FILE, "lock", errno);
        }
        goto fail;
    }

    scan_ctx sctx = {s, &os.sc, err, errlen};
    st = list_dir(s, scan_one, &sctx, err, errlen);
    if (st != HAMOK_OK) {
        goto fail;
    }
    if (os.sc.n_snaps > 1) {
        qsort(os.sc.snaps, os.sc.n_snaps, sizeof *os.sc.snaps, cmp_snap_desc);
    }

    /* Peer id. */
    bool other_state = os.sc.has_hardstate || os.sc.n_segs > 0 || os.sc.n_snaps > 0;
    if (os.sc.has_peer_id) {
        st = load_peer_id(s, err, errlen);
    } else if (other_state) {
        hamok__st_errf(err, errlen, "%s/%s: missing while the directory holds Raft state", dir,
                       ST_PEER_ID_FILE);
        st = HAMOK_ERR_CORRUPT;
    } else if (fresh_id == NULL) {
        hamok__st_errf(err, errlen, "%s: fresh directory and no fresh id given", dir);
        st = HAMOK_ERR_INVALID;
    } else {
        st = create_peer_id(s, fresh_id, err, errlen);
        rec->id_created = st == HAMOK_OK;
    }
    if (st != HAMOK_OK) {
        goto fail;
    }
    if (os.sc.has_hardstate) {
        st = load_hard_state(s, err, errlen);
        if (st != HAMOK_OK) {
            goto fail;
        }
    }
    if (os.sc.has_seq) {
        st = load_seq_floor(s, err, errlen);
        if (st != HAMOK_OK) {
            goto fail;
        }
    }

    st = recover(&os);
    if (st != HAMOK_OK) {
        goto fail;
    }

    /* Line the log up with the snapshot. */
    st_replay *rp = &os.rp;
    uint64_t end = rp->start + rp->n;
    bool need_reset = false;
    if (rp->start > s->base_index + 1) {
        hamok__st_errf(err, errlen,
                       "%s: the WAL starts at index %llu but the snapshot ends at %llu: entries "
                       "%llu..%llu are missing",
                       dir, (unsigned long long)rp->start, (unsigned long long)s->base_index,
                       (unsigned long long)s->base_index + 1, (unsigned long long)rp->start - 1);
        st = HAMOK_ERR_CORRUPT;
        goto fail;
    }
    if (rp->start <= s->base_index) {
        /* Raft's rule for installing a snapshot: keep what follows it only
         * if the log holds the snapshot's last entry. Otherwise the log
         * was left behind or diverged (an install interrupted before its
         * RESET record): it restarts after the snapshot. */
        if (end > s->base_index && rp->e[s->base_index - rp->start].term == s->base_term) {
            size_t skip = (size_t)(s->base_index + 1 - rp->start);
            for (size_t i = 0; i < skip; i++) {
                hamok__free(rp->e[i].data);
            }
            memmove(rp->e, rp->e + skip, (rp->n - skip) * sizeof *rp->e);
            rp->n -= skip;
        } else {
            replay_drop(rp, 0);
            need_reset = true;
        }
        rp->start = s->base_index + 1;
    }
    uint64_t max_term = s->base_term;
    if (rp->n > 0) {
        if (rp->e[0].term < s->base_term) {
            hamok__st_errf(err, errlen, "%s: entry %llu has term %llu below the snapshot's %llu",
                           dir, (unsigned long long)rp->start, (unsigned long long)rp->e[0].term,
                           (unsigned long long)s->base_term);
            st = HAMOK_ERR_CORRUPT;
            goto fail;
        }
        max_term = rp->e[rp->n - 1].term;
    }
    if ((max_term > 0 || s->has_snap) && !s->hs_exists) {
        hamok__st_errf(err, errlen, "%s/%s: missing while the log holds entries of term %llu", dir,
                       ST_HARDSTATE_FILE, (unsigned long long)max_term);
        st = HAMOK_ERR_CORRUPT;
        goto fail;
    }
    if (max_term > s->hs_term) {
        hamok__st_errf(err, errlen, "%s/%s: term %llu is older than the log's term %llu", dir,
                       ST_HARDSTATE_FILE, (unsigned long long)s->hs_term,
                       (unsigned long long)max_term);
        st = HAMOK_ERR_CORRUPT;
        goto fail;
    }
    if (os.sc.n_segs == 0 && (s->hs_exists || s->has_snap)) {
        hamok__st_errf(err, errlen, "%s: no WAL segment, yet a hard state or snapshot exists", dir);
        st = HAMOK_ERR_CORRUPT;
        goto fail;
    }

    /* Runtime state. */
    s->segs = os.sc.segs;
    s->n_segs = os.sc.n_segs;
    s->cap_segs = os.sc.cap_segs;
    os.sc.segs = NULL;
    os.sc.n_segs = os.sc.cap_segs = 0;
    s->last = s->base_index + rp->n;
    size_t n_runs = 0;
    for (size_t i = 0; i < rp->n; i++) {
        n_runs += i == 0 || rp->e[i].term != rp->e[i - 1].term;
    }
    if (runs_reserve(s, n_runs) != HAMOK_OK) {
        st = HAMOK_ERR_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < rp->n; i++) {
        runs_push(s, s->base_index + 1 + i, rp->e[i].term);
    }
    if (s->seg_fd < 0) {
        st = hamok__st_roll(s, 0);
        if (st != HAMOK_OK) {
            hamok__st_errf(err, errlen, "%s", s->err);
            goto fail;
        }
    }
    if (need_reset) {
        st = hamok__st_write_reset(s, s->base_index, s->base_term);
        if (st != HAMOK_OK) {
            hamok__st_errf(err, errlen, "%s", s->err);
            goto fail;
        }
        notice_add(rec, "the log did not hold the snapshot's last entry: restarted after it");
    }
    if (os.sc.removed_tmp) {
        s->dir_dirty = true;
    }
    st = hamok__st_sync(s);
    if (st != HAMOK_OK) {
        hamok__st_errf(err, errlen, "%s", s->err);
        goto fail;
    }

    rec->id = s->id;
    rec->term = s->hs_term;
    rec->has_vote = s->hs_has_vote;
    rec->vote = s->hs_vote;
    rec->seq_floor = s->seq_floor;
    rec->has_snapshot = s->has_snap;
    rec->snapshot_index = s->base_index;
    rec->snapshot_term = s->base_term;
    rec->first_index = s->base_index + 1;
    rec->n_entries = rp->n;
    rec->entries = rp->n > 0 ? rp->e : NULL;
    if (rp->n == 0) {
        hamok__free(rp->e);
    }
    memset(rp, 0, sizeof *rp);
    scan_free(&os.sc);
    *out = s;
    return HAMOK_OK;

fail:
    replay_free(&os.rp);
    scan_free(&os.sc);
    storage_free(s);
    hamok__storage_recovered_free(rec);
    return st;
}

void hamok__storage_close(hamok_storage **sp)
{
    if (sp == NULL || *sp == NULL) {
        return;
    }
    hamok_storage *s = *sp;
    hamok__storage_snapshot_abort(s);
    if (!s->failed) {
        (void)hamok__st_sync(s);
    }
    storage_free(s);
    *sp = NULL;
}

/* ------------------------------------------------------------------------
 * Compaction. */

typedef struct compact_ctx {
    hamok_storage *s;
    char *err;
    size_t errlen;
} compact_ctx;

static hamok_status delete_old_snapshot(void *ud, const char *name)
{
    compact_ctx *c = ud;
    st_snap_file sf;
    if (parse_snap_name(name, &sf) && sf.index < c->s->base_index) {
        if (unlinkat(c->s->dirfd, name, 0) != 0 && errno != ENOENT) {
            return hamok__st_ioerr(c->err, c->errlen, c->s->dir, name, "unlink", errno);
        }
    }
    return HAMOK_OK;
}

hamok_status hamok__st_compact(hamok_storage *s)
{
    runs_trim(s);
    /* Segment k can go when segment k + 1 starts at or below base + 1: the
     * records from k + 1 on rebuild every entry after the snapshot. */
    size_t drop = 0;
    for (size_t k = 0; k + 1 < s->n_segs; k++) {
        if (s->segs[k + 1].first <= s->base_index + 1) {
            drop = k + 1;
        }
    }
    for (size_t k = 0; k < drop; k++) {
        char name[ST_NAME_MAX];
        seg_name(name, &s->segs[k]);
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT) {
            /* Segments already deleted must not stay listed. */
            memmove(s->segs, s->segs + k, (s->n_segs - k) * sizeof *s->segs);
            s->n_segs -= k;
            return hamok__st_fail(
                s, hamok__st_ioerr(s->err, sizeof s->err, s->dir, name, "unlink", errno));
        }
        s->stats.segments_deleted++;
    }
    if (drop > 0) {
        memmove(s->segs, s->segs + drop, (s->n_segs - drop) * sizeof *s->segs);
        s->n_segs -= drop;
    }
    compact_ctx c = {s, s->err, sizeof s->err};
    hamok_status st = list_dir(s, delete_old_snapshot, &c, s->err, sizeof s->err);
    if (st != HAMOK_OK) {
        return hamok__st_fail(s, st);
    }
    if (hamok__st_fsync_dir(s->dirfd, &s->stats) != 0) {
        return hamok__st_fail(s,
                              hamok__st_ioerr(s->err, sizeof s->err, s->dir, NULL, "fsync", errno));
    }
    return HAMOK_OK;
}
