/* Private to src/storage: the storage object, file formats and I/O helpers
 * shared by storage.c (open, recovery, WAL, hard state) and snapshot.c. */
#ifndef HAMOK_STORAGE_STORAGE_INT_H
#define HAMOK_STORAGE_STORAGE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"
#include "util/buf.h"

/* ---- Formats (see storage.h for the layout) ---- */
#define ST_FORMAT_VERSION 1u

#define ST_PEER_ID_FILE    "peer-id"
#define ST_PEER_ID_MAGIC   "HAMOKPID"
#define ST_PEER_ID_SIZE    32u
#define ST_HARDSTATE_FILE  "hardstate"
#define ST_HARDSTATE_MAGIC "HAMOKHST"
#define ST_HARDSTATE_SIZE  48u
#define ST_LOCK_FILE       "LOCK"
#define ST_SEQ_FILE        "client-seq"
#define ST_SEQ_MAGIC       "HAMOKSEQ"
#define ST_SEQ_SIZE        24u

#define ST_SEG_MAGIC       "HAMOKWAL"
#define ST_SEG_HEADER_SIZE 40u
#define ST_REC_HEADER_SIZE 16u
#define ST_REC_ENTRY       1u
#define ST_REC_TRUNCATE    2u
#define ST_REC_RESET       3u
#define ST_ENTRY_FIXED     41u /* index, term, type, client, seq */
#define ST_MAX_ENTRY_DATA  (1u << 30)

#define ST_SNAP_MAGIC        "HAMOKSNP"
#define ST_SNAP_END_MAGIC    "HSNE"
#define ST_SNAP_HEADER_SIZE  40u
#define ST_SNAP_TRAILER_SIZE 16u

/* Longest file name we create: "snapshot-" 16 "-" 16 ".snap.corrupt" + NUL. */
#define ST_NAME_MAX 64

typedef struct st_segment {
    uint64_t seq;
    uint64_t first; /* log index (last + 1) when the segment was created */
} st_segment;

typedef struct st_run {
    uint64_t first; /* first index having `term` */
    uint64_t term;
} st_run;

typedef struct st_snap_writer {
    bool active;
    int fd;
    uint64_t index;
    uint64_t term;
    uint64_t state_len;
    uint32_t crc;
    char name[ST_NAME_MAX];
    char tmp[ST_NAME_MAX + 8];
} st_snap_writer;

struct hamok_storage {
    char *dir; /* as given: used in messages */
    int dirfd;
    int lockfd;
    hamok_storage_options opt;
    hamok_id id;

    /* Hard state as stored. */
    bool hs_exists;
    uint64_t hs_term;
    bool hs_has_vote;
    hamok_id hs_vote;

    /* Client sequence numbers up to this one may have been used. */
    uint64_t seq_floor;

    /* Current snapshot (base of the log). */
    bool has_snap;
    uint64_t base_index;
    uint64_t base_term;
    char snap_name[ST_NAME_MAX];

    /* The log (base_index, last]: terms as runs. */
    uint64_t last;
    st_run *runs;
    size_t n_runs;
    size_t cap_runs;

    /* WAL segments in sequence order; the last one is open for appending. */
    st_segment *segs;
    size_t n_segs;
    size_t cap_segs;
    int seg_fd;
    uint64_t seg_size;
    bool dir_dirty; /* a segment was created since the last directory fsync */

    /* Unsynced writes. */
    bool pending;
    uint64_t pending_since_ms;
    uint64_t unsynced_bytes;

    bool failed;
    hamok_buf wbuf;
    st_snap_writer sw;
    hamok_storage_stats stats;
    char err[512];
};

/* ---- Little-endian fixed-width encoding ---- */
static inline void st_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void st_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint32_t st_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static inline uint64_t st_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* ---- Messages ---- */
#if defined(__GNUC__)
#define ST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define ST_PRINTF(f, a)
#endif

/* snprintf into buf (NULL or len 0: nothing). */
void hamok__st_errf(char *buf, size_t len, const char *fmt, ...) ST_PRINTF(3, 4);
/* "<dir>/<name>: <op>: <strerror(errnum)>"; returns HAMOK_ERR_IO. */
hamok_status hamok__st_ioerr(char *buf, size_t len, const char *dir, const char *name,
                             const char *op, int errnum);

/* ---- I/O helpers: retry EINTR and short transfers; errno is preserved on
 * failure. Counters in `stats` (may be NULL). ---- */
int hamok__st_write_all(int fd, const void *data, size_t len, hamok_storage_stats *stats);
/* Reads exactly len bytes at off; returns 0, -1 with errno, or 1 on EOF. */
int hamok__st_pread_all(int fd, void *data, size_t len, uint64_t off);
int hamok__st_fdatasync(int fd, hamok_storage_stats *stats);
int hamok__st_fsync_dir(int dirfd, hamok_storage_stats *stats);

/* Replace dir/name atomically with `data`: name.tmp, fsync, rename, fsync dir. */
hamok_status hamok__st_atomic_write(int dirfd, const char *dir, const char *name, const void *data,
                                    size_t len, hamok_storage_stats *stats, char *err,
                                    size_t errlen);

/* 16 lowercase hex digits; parse exactly 16 (false otherwise). */
void hamok__st_hex16(char *out, uint64_t v);
bool hamok__st_parse_hex16(const char *s, uint64_t *v);

void hamok__st_snap_name(char *out, uint64_t index, uint64_t term);

/* Record a failure on s (message already in s->err); returns st. */
hamok_status hamok__st_fail(hamok_storage *s, hamok_status st);

/* ---- Used by snapshot.c from storage.c ---- */
bool hamok__st_term_at(const hamok_storage *s, uint64_t index, uint64_t *term);
/* Encode one RESET record into s->wbuf and write it (rolling if needed). */
hamok_status hamok__st_write_reset(hamok_storage *s, uint64_t index, uint64_t term);
/* Close the current segment (fdatasync) and start a new one at last + 1. */
hamok_status hamok__st_roll(hamok_storage *s, uint64_t now_ms);
/* Sync pending WAL bytes and the directory. */
hamok_status hamok__st_sync(hamok_storage *s);
/* After base moved to (index, term): trim runs, delete segments and older
 * snapshots no longer needed, fsync the directory. */
hamok_status hamok__st_compact(hamok_storage *s);

/* Verify a snapshot file; on success fill the header fields, the CRC of
 * header + meta (for the reader's second check) and, if meta_out, a copy of
 * the meta blob (caller frees). HAMOK_ERR_CORRUPT / HAMOK_ERR_IO with err. */
typedef struct st_snap_info {
    uint64_t index;
    uint64_t term;
    uint64_t meta_len;
    uint64_t state_len;
    uint64_t file_size;
    uint32_t prefix_crc; /* CRC32C of header + meta */
} st_snap_info;
/* fd >= 0: verify that open file (not closed); -1: open the name in dirfd. */
hamok_status hamok__st_snap_verify(int dirfd, int fd, const char *dir, uint64_t index,
                                   uint64_t term, st_snap_info *info, uint8_t **meta_out, char *err,
                                   size_t errlen);

#endif
