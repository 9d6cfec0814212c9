/* Snapshot files: streamed writer with atomic commit and compaction, verified
 * chunked reader. Format: storage.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"
#include "util/alloc.h"
#include "util/crc32c.h"

#define SNAP_IO_CHUNK (64u << 10)

static void enc_snap_header(uint8_t *h, uint64_t index, uint64_t term, uint64_t meta_len)
{
    memset(h, 0, ST_SNAP_HEADER_SIZE);
    memcpy(h, ST_SNAP_MAGIC, 8);
    st_put32(h + 8, ST_FORMAT_VERSION);
    st_put64(h + 16, index);
    st_put64(h + 24, term);
    st_put64(h + 32, meta_len);
}

/* ------------------------------------------------------------------------
 * Verification. */

#define SNAP_CORRUPT(off, ...)                                           \
    do {                                                                 \
        char what_[256];                                                 \
        snprintf(what_, sizeof what_, __VA_ARGS__);                      \
        hamok__st_errf(err, errlen, "%s/%s: offset %llu: %s", dir, name, \
                       (unsigned long long)(off), what_);                \
        st = HAMOK_ERR_CORRUPT;                                          \
        goto out;                                                        \
    } while (0)

hamok_status hamok__st_snap_verify(int dirfd, int fd_in, const char *dir, uint64_t index,
                                   uint64_t term, st_snap_info *info, uint8_t **meta_out, char *err,
                                   size_t errlen)
{
    char name[ST_NAME_MAX];
    hamok__st_snap_name(name, index, term);
    hamok_status st = HAMOK_OK;
    uint8_t *meta = NULL;
    uint8_t *buf = NULL;
    int fd = fd_in >= 0 ? fd_in : openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return hamok__st_ioerr(err, errlen, dir, name, "open", errno);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = hamok__st_ioerr(err, errlen, dir, name, "stat", errno);
        goto out;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < ST_SNAP_HEADER_SIZE + ST_SNAP_TRAILER_SIZE) {
        SNAP_CORRUPT(0, "file of %llu bytes is too short for a snapshot", (unsigned long long)size);
    }
    uint8_t h[ST_SNAP_HEADER_SIZE];
    int rc = hamok__st_pread_all(fd, h, sizeof h, 0);
    if (rc != 0) {
        st = hamok__st_ioerr(err, errlen, dir, name, "read", rc < 0 ? errno : EIO);
        goto out;
    }
    if (memcmp(h, ST_SNAP_MAGIC, 8) != 0) {
        SNAP_CORRUPT(0, "bad magic");
    }
    if (st_get32(h + 8) != ST_FORMAT_VERSION || st_get32(h + 12) != 0) {
        SNAP_CORRUPT(8, "unsupported version %u", st_get32(h + 8));
    }
    uint64_t meta_len = st_get64(h + 32);
    if (meta_len > size - ST_SNAP_HEADER_SIZE - ST_SNAP_TRAILER_SIZE) {
        SNAP_CORRUPT(32, "metadata length %llu exceeds the file", (unsigned long long)meta_len);
    }
    uint8_t t[ST_SNAP_TRAILER_SIZE];
    uint64_t toff = size - ST_SNAP_TRAILER_SIZE;
    rc = hamok__st_pread_all(fd, t, sizeof t, toff);
    if (rc != 0) {
        st = hamok__st_ioerr(err, errlen, dir, name, "read", rc < 0 ? errno : EIO);
        goto out;
    }
    /* The whole-file CRC first: nothing from the file is believed before. */
    buf = hamok__malloc(SNAP_IO_CHUNK);
    if (buf == NULL) {
        st = HAMOK_ERR_NOMEM;
        goto out;
    }
    uint32_t crc = 0, prefix_crc = 0;
    uint64_t prefix_end = ST_SNAP_HEADER_SIZE + meta_len;
    uint64_t crc_end = size - 4;
    for (uint64_t off = 0; off < crc_end;) {
        uint64_t k = crc_end - off < SNAP_IO_CHUNK ? crc_end - off : SNAP_IO_CHUNK;
        if (off < prefix_end && off + k > prefix_end) {
            k = prefix_end - off; /* stop at the end of the metadata once */
        }
        rc = hamok__st_pread_all(fd, buf, (size_t)k, off);
        if (rc != 0) {
            st = hamok__st_ioerr(err, errlen, dir, name, "read", rc < 0 ? errno : EIO);
            goto out;
        }
        crc = hamok__crc32c_update(crc, buf, (size_t)k);
        off += k;
        if (off == prefix_end) {
            prefix_crc = crc;
        }
    }
    if (crc != st_get32(t + 12)) {
        SNAP_CORRUPT(toff + 12, "checksum mismatch");
    }
    if (memcmp(t + 8, ST_SNAP_END_MAGIC, 4) != 0) {
        SNAP_CORRUPT(toff + 8, "bad trailer magic");
    }
    uint64_t state_len = st_get64(t);
    if (state_len != size - ST_SNAP_HEADER_SIZE - ST_SNAP_TRAILER_SIZE - meta_len) {
        SNAP_CORRUPT(toff, "state length %llu disagrees with the file size",
                     (unsigned long long)state_len);
    }
    if (st_get64(h + 16) != index || st_get64(h + 24) != term) {
        SNAP_CORRUPT(16, "header says index %llu term %llu, unlike its name",
                     (unsigned long long)st_get64(h + 16), (unsigned long long)st_get64(h + 24));
    }
    if (meta_out != NULL) {
        meta = hamok__malloc((size_t)meta_len);
        if (meta == NULL) {
            st = HAMOK_ERR_NOMEM;
            goto out;
        }
        rc = hamok__st_pread_all(fd, meta, (size_t)meta_len, ST_SNAP_HEADER_SIZE);
        if (rc != 0) {
            st = hamok__st_ioerr(err, errlen, dir, name, "read", rc < 0 ? errno : EIO);
            goto out;
        }
        if (hamok__crc32c_update(hamok__crc32c(h, sizeof h), meta, (size_t)meta_len) !=
            prefix_crc) {
            SNAP_CORRUPT(ST_SNAP_HEADER_SIZE, "metadata changed while read");
        }
        *meta_out = meta;
        meta = NULL;
    }
    info->index = index;
    info->term = term;
    info->meta_len = meta_len;
    info->state_len = state_len;
    info->file_size = size;
    info->prefix_crc = prefix_crc;
out:
    hamok__free(meta);
    hamok__free(buf);
    if (fd_in < 0) {
        close(fd);
    }
    return st;
}

/* ------------------------------------------------------------------------
 * Writer. */

static void writer_discard(hamok_storage *s)
{
    if (!s->sw.active) {
        return;
    }
    if (s->sw.fd >= 0) {
        close(s->sw.fd);
    }
    unlinkat(s->dirfd, s->sw.tmp, 0);
    memset(&s->sw, 0, sizeof s->sw);
    s->sw.fd = -1;
}

hamok_status hamok__storage_snapshot_begin(hamok_storage *s, uint64_t index, uint64_t term,
                                           const void *meta, size_t meta_len)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    if (s->failed) {
        return HAMOK_ERR_IO;
    }
    s->err[0] = '\0';
    if (s->sw.active) {
        hamok__st_errf(s->err, sizeof s->err, "snapshot: one is already being written");
        return HAMOK_ERR_STATE;
    }
    if (index <= s->base_index || term == 0 || term > s->hs_term ||
        (meta == NULL && meta_len > 0)) {
        hamok__st_errf(s->err, sizeof s->err,
                       "snapshot: (index %llu, term %llu) must be past the current snapshot "
                       "(index %llu) with a term in 1..%llu",
                       (unsigned long long)index, (unsigned long long)term,
                       (unsigned long long)s->base_index, (unsigned long long)s->hs_term);
        return HAMOK_ERR_INVALID;
    }
    st_snap_writer *w = &s->sw;
    memset(w, 0, sizeof *w);
    hamok__st_snap_name(w->name, index, term);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->name);
    w->index = index;
    w->term = term;
    w->fd = openat(s->dirfd, w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (w->fd < 0) {
        hamok_status st = hamok__st_ioerr(s->err, sizeof s->err, s->dir, w->tmp, "open", errno);
        memset(w, 0, sizeof *w);
        w->fd = -1;
        return st;
    }
    w->active = true;
    uint8_t h[ST_SNAP_HEADER_SIZE];
    enc_snap_header(h, index, term, meta_len);
    w->crc = hamok__crc32c(h, sizeof h);
    w->crc = hamok__crc32c_update(w->crc, meta, meta_len);
    if (hamok__st_write_all(w->fd, h, sizeof h, &s->stats) != 0 ||
        hamok__st_write_all(w->fd, meta, meta_len, &s->stats) != 0) {
        hamok_status st = hamok__st_ioerr(s->err, sizeof s->err, s->dir, w->tmp, "write", errno);
        writer_discard(s);
        return st;
    }
    return HAMOK_OK;
}

hamok_status hamok__storage_snapshot_write(hamok_storage *s, const void *data, size_t len)
{
    if (s == NULL || (data == NULL && len > 0)) {
        return HAMOK_ERR_INVALID;
    }
    if (!s->sw.active) {
        hamok__st_errf(s->err, sizeof s->err, "snapshot: none is being written");
        return HAMOK_ERR_STATE;
    }
    if (hamok__st_write_all(s->sw.fd, data, len, &s->stats) != 0) {
        hamok_status st = hamok__st_ioerr(s->err, sizeof s->err, s->dir, s->sw.tmp, "write", errno);
        writer_discard(s);
        return st;
    }
    s->sw.crc = hamok__crc32c_update(s->sw.crc, data, len);
    s->sw.state_len += len;
    return HAMOK_OK;
}

void hamok__storage_snapshot_abort(hamok_storage *s)
{
    if (s != NULL) {
        writer_discard(s);
    }
}

hamok_status hamok__storage_snapshot_commit(hamok_storage *s)
{
    if (s == NULL) {
        return HAMOK_ERR_INVALID;
    }
    if (!s->sw.active) {
        hamok__st_errf(s->err, sizeof s->err, "snapshot: none is being written");
        return HAMOK_ERR_STATE;
    }
    if (s->failed) {
        writer_discard(s);
        return HAMOK_ERR_IO;
    }
    st_snap_writer *w = &s->sw;
    uint8_t t[ST_SNAP_TRAILER_SIZE];
    st_put64(t, w->state_len);
    memcpy(t + 8, ST_SNAP_END_MAGIC, 4);
    st_put32(t + 12, hamok__crc32c_update(w->crc, t, 12));
    const char *op = "write";
    int rc = hamok__st_write_all(w->fd, t, sizeof t, &s->stats);
    if (rc == 0) {
        op = "fdatasync";
        rc = hamok__st_fdatasync(w->fd, &s->stats);
    }
    if (rc == 0) {
        op = "close";
        rc = close(w->fd);
        w->fd = -1;
    }
    if (rc == 0) {
        op = "rename";
        rc = renameat(s->dirfd, w->tmp, s->dirfd, w->name);
    }
    if (rc != 0) {
        hamok_status st = hamok__st_ioerr(s->err, sizeof s->err, s->dir, w->tmp, op, errno);
        writer_discard(s);
        return st;
    }
    uint64_t index = w->index, term = w->term;
    char name[ST_NAME_MAX];
    memcpy(name, w->name, sizeof name);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    /* The snapshot is in place once the directory says so. */
    if (hamok__st_fsync_dir(s->dirfd, &s->stats) != 0) {
        return hamok__st_fail(s,
                              hamok__st_ioerr(s->err, sizeof s->err, s->dir, NULL, "fsync", errno));
    }
    s->stats.snapshots_written++;

    uint64_t t_at = 0;
    bool contains = index <= s->last && hamok__st_term_at(s, index, &t_at) && t_at == term;
    hamok_status st;
    if (!contains) {
        /* Installed from the leader, not in (or conflicting with) the log:
         * the log restarts after the snapshot. */
        st = hamok__st_write_reset(s, index, term);
        if (st != HAMOK_OK) {
            return hamok__st_fail(s, st);
        }
        s->last = index;
        s->n_runs = 0;
        s->base_index = index;
        s->base_term = term;
        st = hamok__st_roll(s, 0);
        if (st != HAMOK_OK) {
            return hamok__st_fail(s, st);
        }
    }
    s->has_snap = true;
    s->base_index = index;
    s->base_term = term;
    memcpy(s->snap_name, name, sizeof s->snap_name);
    st = hamok__st_sync(s);
    if (st != HAMOK_OK) {
        return st;
    }
    return hamok__st_compact(s);
}

/* ------------------------------------------------------------------------
 * Reader. */

struct hamok_snapshot_reader {
    int fd;
    char *path;
    uint64_t state_off;
    uint64_t state_len;
    uint64_t pos;
    uint32_t crc;
    uint8_t *meta;
    size_t meta_len;
    bool done;
    char err[512];
};

hamok_status hamok__storage_snapshot_open(hamok_storage *s, hamok_snapshot_reader **out,
                                          uint64_t *index, uint64_t *term, const uint8_t **meta,
                                          size_t *meta_len)
{
    if (s == NULL || out == NULL) {
        return HAMOK_ERR_INVALID;
    }
    *out = NULL;
    s->err[0] = '\0';
    if (!s->has_snap) {
        hamok__st_errf(s->err, sizeof s->err, "%s: no snapshot", s->dir);
        return HAMOK_ERR_NOT_FOUND;
    }
    hamok_snapshot_reader *r = hamok__calloc(1, sizeof *r);
    if (r == NULL) {
        return HAMOK_ERR_NOMEM;
    }
    r->fd = -1;
    size_t plen = strlen(s->dir) + 1 + strlen(s->snap_name) + 1;
    r->path = hamok__malloc(plen);
    if (r->path == NULL) {
        hamok__snapshot_reader_close(&r);
        return HAMOK_ERR_NOMEM;
    }
    snprintf(r->path, plen, "%s/%s", s->dir, s->snap_name);
    /* The reader keeps this very file (even if a compaction deletes its
     * name meanwhile) and verifies what that descriptor holds. */
    r->fd = openat(s->dirfd, s->snap_name, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        hamok_status st =
            hamok__st_ioerr(s->err, sizeof s->err, s->dir, s->snap_name, "open", errno);
        hamok__snapshot_reader_close(&r);
        return st;
    }
    st_snap_info info;
    hamok_status st = hamok__st_snap_verify(s->dirfd, r->fd, s->dir, s->base_index, s->base_term,
                                            &info, &r->meta, s->err, sizeof s->err);
    if (st != HAMOK_OK) {
        hamok__snapshot_reader_close(&r);
        return st;
    }
    r->meta_len = (size_t)info.meta_len;
    r->state_off = ST_SNAP_HEADER_SIZE + info.meta_len;
    r->state_len = info.state_len;
    r->crc = info.prefix_crc;
    if (index != NULL) {
        *index = s->base_index;
    }
    if (term != NULL) {
        *term = s->base_term;
    }
    if (meta != NULL) {
        *meta = r->meta;
    }
    if (meta_len != NULL) {
        *meta_len = r->meta_len;
    }
    *out = r;
    return HAMOK_OK;
}

hamok_status hamok__snapshot_read(hamok_snapshot_reader *r, void *buf, size_t cap, size_t *n)
{
    if (r == NULL || n == NULL || (buf == NULL && cap > 0)) {
        return HAMOK_ERR_INVALID;
    }
    *n = 0;
    uint64_t left = r->state_len - r->pos;
    size_t k = left < cap ? (size_t)left : cap;
    if (k > 0) {
        int rc = hamok__st_pread_all(r->fd, buf, k, r->state_off + r->pos);
        if (rc != 0) {
            int e = rc < 0 ? errno : EIO;
            char text[128];
            if (strerror_r(e, text, sizeof text) != 0) {
                snprintf(text, sizeof text, "errno %d", e);
            }
            hamok__st_errf(r->err, sizeof r->err, "%s: read: %s", r->path, text);
            return HAMOK_ERR_IO;
        }
        r->crc = hamok__crc32c_update(r->crc, buf, k);
        r->pos += k;
    }
    if (r->pos == r->state_len && !r->done) {
        /* Second check, over what was actually handed out. */
        uint8_t t[ST_SNAP_TRAILER_SIZE];
        uint64_t toff = r->state_off + r->state_len;
        int rc = hamok__st_pread_all(r->fd, t, sizeof t, toff);
        if (rc != 0 || hamok__crc32c_update(r->crc, t, 12) != st_get32(t + 12)) {
            hamok__st_errf(r->err, sizeof r->err,
                           "%s: offset %llu: checksum mismatch (file changed while read)", r->path,
                           (unsigned long long)(toff + 12));
            return HAMOK_ERR_CORRUPT;
        }
        r->done = true;
    }
    *n = k;
    return HAMOK_OK;
}

uint64_t hamok__snapshot_reader_size(const hamok_snapshot_reader *r)
{
    return r->state_len;
}

const char *hamok__snapshot_reader_error(const hamok_snapshot_reader *r)
{
    return r == NULL ? "" : r->err;
}

void hamok__snapshot_reader_close(hamok_snapshot_reader **rp)
{
    if (rp == NULL || *rp == NULL) {
        return;
    }
    hamok_snapshot_reader *r = *rp;
    if (r->fd >= 0) {
        close(r->fd);
    }
    hamok__free(r->meta);
    hamok__free(r->path);
    hamok__free(r);
    *rp = NULL;
}
