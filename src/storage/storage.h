/* Durable Raft storage: a write-ahead log, snapshot files, the hard state
 * (term, vote) and the peer id, in one directory (DESIGN.md §1 decision 5).
 *
 * Sans-threads and clock-free: synchronous POSIX file I/O on the caller's
 * thread; time, where a policy needs it, comes in as `now_ms` arguments. The
 * caller (the node's loop) feeds it the Raft core's updates (src/raft/raft.h):
 *
 *   update.hard_state_changed  -> hamok__storage_save_hard_state()   (durable on return)
 *   update.truncate_from       -> hamok__storage_truncate()          (buffered)
 *   update.persist[...]        -> hamok__storage_append()            (buffered)
 *   when hamok__storage_sync_due() -> hamok__storage_sync() -> HAMOK_RAFT_EV_PERSISTED
 *
 * Directory layout (all integers little-endian, fixed width, encoded by hand):
 *
 *   LOCK              fcntl() write lock held while open (one process at a time)
 *   peer-id           magic "HAMOKPID", u8[16] id, u32 CRC32C of the 24 bytes
 *                     before it, u32 0. Written once: temp file, fsync, rename,
 *                     fsync of the directory.
 *   hardstate         magic "HAMOKHST", u32 version (1), u32 flags (bit 0: has
 *                     vote), u64 term, u8[16] vote, u32 CRC32C of the 40 bytes
 *                     before it, u32 0. Replaced atomically on every change:
 *                     write hardstate.tmp, fsync, rename, fsync the directory
 *                     (two fsyncs, but terms and votes change rarely). One copy,
 *                     no fallback: a corrupt hard state is refused, because an
 *                     older term/vote could let this peer vote twice in a term.
 *   client-seq        magic "HAMOKSEQ", u64 floor, u32 CRC32C of the 16 bytes
 *                     before it, u32 0: every client sequence number this
 *                     peer may have put on a proposal is <= floor (the node
 *                     reserves them in blocks), so a restarted peer, which
 *                     keeps its id, never reuses one (the session table would
 *                     take its new command for an old one). Replaced
 *                     atomically like hardstate; absent = 0; corrupt =
 *                     refused.
 *   wal-<seq>-<first>.log
 *                     WAL segments, <seq> and <first> 16 lowercase hex digits
 *                     each. <seq> numbers segments in creation order (replay
 *                     order); <first> is the index the log was at (last + 1)
 *                     when the segment was created. The sequence number is
 *                     needed because a truncation can make a later segment start
 *                     at a lower index than an earlier one (etcd names its WAL
 *                     files the same way).
 *                     Segment header (40 bytes): magic "HAMOKWAL", u32 version
 *                     (1), u32 0, u64 seq, u64 first, u32 0, u32 CRC32C of the
 *                     36 bytes before it. Then records, a 16-byte header and
 *                     the payload:
 *                       u32 len      payload length
 *                       u32 crc      CRC32C of header bytes 8..12 (kind and
 *                                    the zero bytes) and the payload
 *                       u8  kind     1 ENTRY, 2 TRUNCATE, 3 RESET
 *                       u8  0, u8 0, u8 0
 *                       u32 hcrc     CRC32C of header bytes 0..12 (len, crc,
 *                                    kind): a damaged length is reported as
 *                                    damage instead of passing for a torn tail
 *                       payload:
 *                         ENTRY    u64 index, u64 term, u8 type, u8[16] client,
 *                                  u64 seq, data (the rest: len - 41 bytes)
 *                         TRUNCATE u64 from: entries >= from are gone
 *                         RESET    u64 index, u64 term: a snapshot the log did
 *                                  not contain was installed; the log restarts
 *                                  empty at index + 1
 *                     Recovery replays the records in order; an ENTRY must
 *                     carry exactly the next index (a TRUNCATE or RESET before
 *                     it explains every rewrite), and every segment after the
 *                     first must start at the index the replay has reached.
 *                     Segments roll at options.segment_size (checked before an
 *                     append); the finished segment is fdatasync'ed when it is
 *                     closed, so only the last segment can ever hold unsynced
 *                     bytes — and only its tail may be repaired as torn.
 *   snapshot-<index>-<term>.snap
 *                     header (40 bytes): magic "HAMOKSNP", u32 version (1),
 *                     u32 0, u64 last_index, u64 last_term, u64 meta_len; then
 *                     the metadata blob (the configuration, opaque here); then
 *                     the state bytes; then a trailer: u64 state length,
 *                     magic "HSNE", u32 CRC32C of every byte before it. Written
 *                     as <name>.tmp, fsync'ed, renamed, directory fsync'ed.
 *   *.tmp             leftovers of interrupted writes, deleted at open.
 *   *.corrupt         a snapshot found corrupt and set aside (see open).
 *
 * Status codes (every function): HAMOK_OK; HAMOK_ERR_INVALID for arguments
 * that break the contract (nothing written); HAMOK_ERR_NOMEM; HAMOK_ERR_IO for
 * a failed system call, with hamok__storage_error() naming the file and the
 * errno text; HAMOK_ERR_CORRUPT (open and the snapshot reader) for data that
 * fails its checks, with a message "<file>: offset <n>: <what>".
 * After HAMOK_ERR_IO from append, truncate, sync, save_hard_state or a snapshot
 * commit the storage is *failed*: what reached the disk is unknown (a failed
 * fsync may have dropped dirty pages), so every later writing call returns
 * HAMOK_ERR_IO. The way forward is close + open (recovery).
 *
 * Thread: a hamok_storage and its snapshot readers are used by one thread at
 * a time. Two processes cannot open the same directory (HAMOK_ERR_BUSY); the
 * lock is an fcntl() record lock, so it does not stop one process from
 * opening a directory twice — don't.
 *
 * Ownership: arguments are borrowed for the call; results the caller owns are
 * said so. Every allocation goes through src/util/alloc.h. */
#ifndef HAMOK_STORAGE_STORAGE_H
#define HAMOK_STORAGE_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/msg.h"
#include "hamok/status.h"
#include "util/id.h"

typedef struct hamok_storage hamok_storage;
typedef struct hamok_snapshot_reader hamok_snapshot_reader;

typedef enum hamok_sync_policy {
    /* The caller calls hamok__storage_sync() after every update that appended
     * or truncated (sync_due() is true as soon as anything is unsynced). */
    HAMOK_SYNC_ALWAYS = 1,
    /* Group commit: sync_due() turns true batch_delay_ms after the first
     * unsynced write, or as soon as batch_max_bytes are unsynced. */
    HAMOK_SYNC_BATCH = 2,
} hamok_sync_policy;

typedef struct hamok_storage_options {
    uint64_t segment_size; /* roll to a new WAL segment at this size; >= 4096 */
    hamok_sync_policy sync_policy;
    uint32_t batch_delay_ms;  /* BATCH: longest wait before a sync is due */
    uint64_t batch_max_bytes; /* BATCH: a sync is due at this many unsynced bytes; 0 = no limit */
} hamok_storage_options;

/* Defaults: 64 MiB segments, HAMOK_SYNC_BATCH, 2 ms, 4 MiB. */
void hamok__storage_options_default(hamok_storage_options *o);

/* What open recovered. The caller owns it; release with
 * hamok__storage_recovered_free(). Entry data may be taken (set the entry's
 * data pointer to NULL and free it with hamok__free() later). */
typedef struct hamok_storage_recovered {
    hamok_id id;     /* this peer's id */
    bool id_created; /* true: the directory was fresh, id = fresh_id */
    uint64_t term;
    bool has_vote;
    hamok_id vote;
    uint64_t seq_floor; /* hamok__storage_save_seq_floor(); 0 if never saved */

    bool has_snapshot;
    uint64_t snapshot_index;
    uint64_t snapshot_term;
    uint8_t *snapshot_meta; /* the blob given to snapshot_begin(); NULL if none */
    size_t snapshot_meta_len;

    /* The log after the snapshot: entries[i] is at index first_index + i
     * (first_index = snapshot_index + 1, or 1 without a snapshot). */
    uint64_t first_index;
    hamok_entry *entries;
    size_t n_entries;

    /* Non-empty when recovery succeeded but had something to say: a torn
     * tail repaired, or a corrupt snapshot set aside (renamed *.corrupt)
     * because an older one plus the WAL still covered it. */
    char notice[512];
    bool repaired_tail;
    bool snapshot_fell_back;
} hamok_storage_recovered;

void hamok__storage_recovered_free(hamok_storage_recovered *rec);

/* Open (creating `dir` and its parents if missing) and recover.
 *
 * `opt` NULL means defaults. `fresh_id` is the id to give a fresh directory
 * (the caller's randomness, e.g. hamok__id_uuid4()); it is ignored when the
 * directory already has one and may be NULL then. On HAMOK_OK *out is the
 * storage and *rec what was recovered (see hamok_storage_recovered); on error
 * *out is NULL, *rec is empty and `err` (if not NULL) holds a message.
 *
 * Recovery: the latest snapshot is verified (CRC of the whole file); the WAL
 * segments are replayed in sequence order. A torn tail of the last segment is
 * cut off (ftruncate + fsync) and recovery continues; torn means: fewer bytes
 * left than a record header; a record (with a valid header) running past the
 * end of the file; a checksum mismatch in the final record — one whose
 * length field ends it exactly at the end of the file; or only zero bytes
 * from a record boundary to the end (blocks allocated, never written); a
 * last segment whose own header is incomplete or zero is deleted. The same
 * damage anywhere else — an earlier record, an earlier segment, a length
 * field — an index gap or overlap the records do not explain, a missing
 * segment, a missing or corrupt peer-id or hardstate while a log exists, or
 * a hard state older than the log is HAMOK_ERR_CORRUPT, never skipped (zero
 * bytes followed by data is damage too: that needs an operator).
 * If the log does not hold the snapshot's last entry with its term (an
 * install interrupted by a crash), entries after it are dropped and a RESET
 * record written, as Raft's InstallSnapshot rule says.
 * A corrupt latest snapshot is HAMOK_ERR_CORRUPT unless an older valid
 * snapshot exists and the WAL still holds every entry from it up to the
 * corrupt one's index; then the older one is used, the corrupt file is
 * renamed <name>.corrupt and rec->notice says so.
 *
 * Errors: HAMOK_ERR_INVALID (NULL out/dir/rec, bad options, fresh directory
 * and no fresh_id); HAMOK_ERR_BUSY (another process has it open);
 * HAMOK_ERR_IO; HAMOK_ERR_CORRUPT; HAMOK_ERR_NOMEM. */
hamok_status hamok__storage_open(hamok_storage **out, const char *dir,
                                 const hamok_storage_options *opt,
                                 const uint8_t fresh_id[HAMOK_ID_LEN], hamok_storage_recovered *rec,
                                 char *err, size_t errlen);

/* Close: abort an unfinished snapshot, fdatasync unsynced WAL bytes (best
 * effort: call hamok__storage_sync() first to learn of errors), release the
 * lock. Open snapshot readers stay valid. NULL-safe; sets *s = NULL. */
void hamok__storage_close(hamok_storage **s);

/* The message of the last error (file and errno text, or what was wrong);
 * "" if none. Borrowed; valid until the next call. */
const char *hamok__storage_error(const hamok_storage *s);

/* Store (term, vote) durably; returns once it is on disk. `vote` is read only
 * when has_vote (may be NULL otherwise). A call that changes nothing writes
 * nothing. HAMOK_ERR_INVALID if the term goes backwards or the vote changes
 * within a term (a second vote in one term) — both Raft safety violations. */
hamok_status hamok__storage_save_hard_state(hamok_storage *s, uint64_t term, bool has_vote,
                                            const hamok_id *vote);

/* Durably record that client sequence numbers up to `floor` may be in use
 * (see client-seq above); returns once it is on disk. A floor equal to the
 * stored one writes nothing; a lower one is HAMOK_ERR_INVALID. */
hamok_status hamok__storage_save_seq_floor(hamok_storage *s, uint64_t floor);

/* Append n entries at first_index..first_index+n-1 (write(2) into the current
 * segment; no fsync, except that rolling to a new segment fdatasyncs the
 * finished one). first_index must lie in [first_index(), last_index() + 1];
 * below last + 1 it truncates first (as if hamok__storage_truncate(first_index)).
 * Terms must not decrease along the log and must not exceed the stored hard
 * state's term (save the hard state first, as the Raft update says).
 * `now_ms` starts the batch delay when nothing was unsynced.
 * HAMOK_ERR_INVALID (range, terms, n == 0, entries NULL, data NULL with len
 * > 0, an entry over 1 GiB); HAMOK_ERR_IO (now or earlier: failed);
 * HAMOK_ERR_NOMEM (nothing written). */
hamok_status hamok__storage_append(hamok_storage *s, uint64_t first_index,
                                   const hamok_entry *entries, size_t n, uint64_t now_ms);

/* Drop entries >= from (appends a TRUNCATE record; no fsync). from beyond the
 * last index is a no-op; from <= the snapshot index is HAMOK_ERR_INVALID
 * (compacted entries are committed and can't be truncated). */
hamok_status hamok__storage_truncate(hamok_storage *s, uint64_t from, uint64_t now_ms);

/* Make everything written so far durable: fdatasync the current segment and,
 * when segments were created since the last sync, fsync the directory. Sets
 * the last durable (index, term) — the PERSISTED event for the Raft core;
 * (snapshot index, snapshot term) when the log is empty, (0, 0) when there is
 * nothing at all. No fsync when nothing is unsynced. Either out may be NULL. */
hamok_status hamok__storage_sync(hamok_storage *s, uint64_t *durable_index, uint64_t *durable_term);

/* True when there are unsynced writes and the policy says sync now:
 * ALWAYS: whenever anything is unsynced; BATCH: now_ms >= next_sync_ms(), or
 * batch_max_bytes reached. */
bool hamok__storage_sync_due(const hamok_storage *s, uint64_t now_ms);

/* When a sync becomes due (a deadline for the driver's poll), UINT64_MAX if
 * nothing is unsynced. */
uint64_t hamok__storage_next_sync_ms(const hamok_storage *s);

/* The log as written (durable or not): first index after the snapshot, last
 * index (first - 1 when empty), and the term at an index in
 * [snapshot index, last] (false outside). */
uint64_t hamok__storage_first_index(const hamok_storage *s);
uint64_t hamok__storage_last_index(const hamok_storage *s);
bool hamok__storage_term_at(const hamok_storage *s, uint64_t index, uint64_t *term);

typedef struct hamok_storage_stats {
    uint64_t bytes_written; /* every byte written: WAL, snapshots, hard state, id */
    uint64_t wal_bytes;     /* of which WAL records and segment headers */
    uint64_t fsyncs;        /* fsync/fdatasync calls on files */
    uint64_t dir_fsyncs;    /* fsync calls on the directory */
    uint64_t syncs;         /* hamok__storage_sync() calls that synced something */
    uint64_t entries_appended;
    uint64_t segments_created;
    uint64_t segments_deleted;
    uint64_t snapshots_written;
    uint64_t unsynced_bytes; /* now */
    uint64_t segments;       /* WAL segment files now */
} hamok_storage_stats;

void hamok__storage_stats(const hamok_storage *s, hamok_storage_stats *out);

/* --- Snapshots ---------------------------------------------------------------
 * Writing, one at a time: begin -> write* -> commit | abort.
 *
 * begin: index > the current snapshot index, 1 <= term <= hard state term;
 * `meta` (the configuration as of index) is copied into the file.
 * HAMOK_ERR_STATE if a snapshot is already being written; HAMOK_ERR_INVALID;
 * HAMOK_ERR_IO.
 *
 * commit: trailer, fdatasync, rename from *.tmp, fsync the directory. Then the
 * log: if it holds `index` with `term`, the entries after it stay (local
 * compaction); otherwise (a snapshot installed from the leader that the log
 * did not contain) a RESET record empties the log, which continues at
 * index + 1, and the WAL rolls to a fresh segment. Everything unsynced is
 * synced. Finally older snapshots and every WAL segment whose entries are all
 * <= index are deleted and the directory fsync'ed. A failure before the
 * rename leaves the old snapshot in force (and no *.tmp behind); after it,
 * the storage is failed (reopen to recover).
 *
 * abort: close and delete the temp file. NULL-safe state: a no-op when no
 * snapshot is being written. */
hamok_status hamok__storage_snapshot_begin(hamok_storage *s, uint64_t index, uint64_t term,
                                           const void *meta, size_t meta_len);
hamok_status hamok__storage_snapshot_write(hamok_storage *s, const void *data, size_t len);
hamok_status hamok__storage_snapshot_commit(hamok_storage *s);
void hamok__storage_snapshot_abort(hamok_storage *s);

/* Reading the current snapshot, in chunks. open verifies the whole file's CRC
 * before returning (and again while reading: a file changed under the reader
 * makes the final read fail). *meta is borrowed from the reader until close.
 * HAMOK_ERR_NOT_FOUND when there is no snapshot; HAMOK_ERR_CORRUPT;
 * HAMOK_ERR_IO. The reader outlives compaction and close of the storage. */
hamok_status hamok__storage_snapshot_open(hamok_storage *s, hamok_snapshot_reader **out,
                                          uint64_t *index, uint64_t *term, const uint8_t **meta,
                                          size_t *meta_len);
/* Read up to cap state bytes; *n = 0 at the end. HAMOK_ERR_CORRUPT (CRC) or
 * HAMOK_ERR_IO, with hamok__snapshot_reader_error() saying why. */
hamok_status hamok__snapshot_read(hamok_snapshot_reader *r, void *buf, size_t cap, size_t *n);
/* Total state bytes in the snapshot. */
uint64_t hamok__snapshot_reader_size(const hamok_snapshot_reader *r);
const char *hamok__snapshot_reader_error(const hamok_snapshot_reader *r);
/* NULL-safe; sets *r = NULL. */
void hamok__snapshot_reader_close(hamok_snapshot_reader **r);

#endif
