/* I/O helpers and messages for src/storage. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"

void hamok__st_errf(char *buf, size_t len, const char *fmt, ...)
{
    if (buf == NULL || len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

hamok_status hamok__st_ioerr(char *buf, size_t len, const char *dir, const char *name,
                             const char *op, int errnum)
{
    char text[128];
    if (strerror_r(errnum, text, sizeof text) != 0) {
        snprintf(text, sizeof text, "errno %d", errnum);
    }
    if (name != NULL) {
        hamok__st_errf(buf, len, "%s/%s: %s: %s", dir, name, op, text);
    } else {
        hamok__st_errf(buf, len, "%s: %s: %s", dir, op, text);
    }
    return HAMOK_ERR_IO;
}

int hamok__st_write_all(int fd, const void *data, size_t len, hamok_storage_stats *stats)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
        if (stats != NULL) {
            stats->bytes_written += (uint64_t)w;
        }
    }
    return 0;
}

int hamok__st_pread_all(int fd, void *data, size_t len, uint64_t off)
{
    uint8_t *p = data;
    while (len > 0) {
        ssize_t r = pread(fd, p, len, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (r == 0) {
            return 1;
        }
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int hamok__st_fdatasync(int fd, hamok_storage_stats *stats)
{
    int rc;
    do {
        rc = fdatasync(fd);
    } while (rc != 0 && errno == EINTR);
    if (stats != NULL) {
        stats->fsyncs++;
    }
    return rc;
}

int hamok__st_fsync_dir(int dirfd, hamok_storage_stats *stats)
{
    int rc;
    do {
        rc = fsync(dirfd);
    } while (rc != 0 && errno == EINTR);
    /* Some file systems cannot fsync a directory; nothing to make durable
     * there in that case. */
    if (rc != 0 && (errno == EINVAL || errno == EROFS)) {
        rc = 0;
    }
    if (stats != NULL) {
        stats->dir_fsyncs++;
    }
    return rc;
}

hamok_status hamok__st_atomic_write(int dirfd, const char *dir, const char *name, const void *data,
                                    size_t len, hamok_storage_stats *stats, char *err,
                                    size_t errlen)
{
    char tmp[ST_NAME_MAX + 8];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", name);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        hamok__st_errf(err, errlen, "%s/%s: name too long", dir, name);
        return HAMOK_ERR_INVALID;
    }
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return hamok__st_ioerr(err, errlen, dir, tmp, "open", errno);
    }
    if (hamok__st_write_all(fd, data, len, stats) != 0) {
        int e = errno;
        close(fd);
        unlinkat(dirfd, tmp, 0);
        return hamok__st_ioerr(err, errlen, dir, tmp, "write", e);
    }
    if (hamok__st_fdatasync(fd, stats) != 0) {
        int e = errno;
        close(fd);
        unlinkat(dirfd, tmp, 0);
        return hamok__st_ioerr(err, errlen, dir, tmp, "fdatasync", e);
    }
    if (close(fd) != 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        return hamok__st_ioerr(err, errlen, dir, tmp, "close", e);
    }
    if (renameat(dirfd, tmp, dirfd, name) != 0) {
        int e = errno;
        unlinkat(dirfd, tmp, 0);
        return hamok__st_ioerr(err, errlen, dir, name, "rename", e);
    }
    if (hamok__st_fsync_dir(dirfd, stats) != 0) {
        return hamok__st_ioerr(err, errlen, dir, NULL, "fsync", errno);
    }
    return HAMOK_OK;
}

void hamok__st_hex16(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 0xFu];
        v >>= 4;
    }
    out[16] = '\0';
}

bool hamok__st_parse_hex16(const char *s, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else {
            return false;
        }
        x = x << 4 | d;
    }
    *v = x;
    return true;
}

void hamok__st_snap_name(char *out, uint64_t index, uint64_t term)
{
    char a[17], b[17];
    hamok__st_hex16(a, index);
    hamok__st_hex16(b, term);
    snprintf(out, ST_NAME_MAX, "snapshot-%s-%s.snap", a, b);
}

hamok_status hamok__st_fail(hamok_storage *s, hamok_status st)
{
    if (st == HAMOK_ERR_IO) {
        s->failed = true;
    }
    return st;
}
