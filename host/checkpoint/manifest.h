/*
 * manifest.h - what makes a checkpoint complete, durable and verifiable.
 *
 * Layout of a run's checkpoint directory (`run_dir`, e.g.
 * <checkpoint.dir>/<job>/<run id>/):
 *   chk-<id>/                  one checkpoint, written by the subtasks
 *     <op id>-<index>/state/   a RocksDB checkpoint of the subtask's keyed
 *                              state (SST files hard-linked), if any
 *     <op id>-<index>/snapshot the plugin's non-keyed snapshot, if any
 *     <op id>-<index>/broadcast the subtask's broadcast state, if any
 *     <op id>-<index>/async    the input records of its async requests in
 *                              flight, if any (runtime/async.h)
 *     MANIFEST.json            written last (schemas/checkpoint-manifest.md)
 *   completed                  the log of completed checkpoint ids, one
 *                              decimal id per line, appended and fsync'ed
 *                              after the manifest is durable
 *
 * A checkpoint is complete when its id is in `completed`. Its manifest lists
 * every file of the checkpoint with size and XXH3-64 checksum, so a restore
 * can tell a damaged checkpoint (missing or truncated file, flipped byte,
 * missing or unreadable manifest, unknown format version) from a good one.
 * A chk- directory whose id is not in the log is an aborted or unfinished
 * checkpoint and is ignored (and removed by ckpt_retain()).
 *
 * Thread: functions are reentrant; a ckpt_sum_cache belongs to one thread.
 * Errors: 0 or a negative WEIR_E* code with a one-line message in *errptr
 * naming the checkpoint, the file and the problem. A write that fails for
 * want of space (ckpt_complete, ckpt_retain, ckpt_materialize) returns
 * FS_ENOSPC (common/fs.h) with "no space left on device: <dir> has N bytes
 * free (of M)" in the message, and leaves no partial file behind: a torn
 * append to `completed` is truncated away, a MANIFEST.json.tmp removed, a
 * partly materialized directory removed.
 */
#ifndef WEIR_HOST_CKPT_MANIFEST_H
#define WEIR_HOST_CKPT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#define CKPT_FORMAT_VERSION 1

/* One subtask's part of a checkpoint. Paths are relative to the chk dir. */
typedef struct ckpt_task {
    char *op_id;
    uint32_t index;
    uint32_t parallelism;
    char *state_dir;           /* "<op>-<i>/state", or NULL: no keyed state */
    char *snapshot;            /* "<op>-<i>/snapshot", or NULL */
    char *broadcast;           /* "<op>-<i>/broadcast", or NULL: no
                                  broadcast state (runtime/bcast.h) */
    char *async;               /* "<op>-<i>/async", or NULL: no async
                                  request in flight (runtime/async.h) */
    uint32_t snapshot_version; /* the plugin's snapshot_version */
    uint64_t state_bytes;      /* size of the state files */
    int64_t sync_ms;           /* the subtask's synchronous pause */
    int64_t align_ms;          /* the subtask's barrier alignment time */
} ckpt_task;

typedef struct ckpt_file {
    char *path; /* relative to the chk dir */
    uint64_t size;
    uint64_t xxh3;
} ckpt_file;

typedef struct ckpt_manifest {
    uint32_t version; /* CKPT_FORMAT_VERSION */
    char *job;
    uint64_t id;
    int64_t triggered_ms; /* wall clock */
    int64_t completed_ms;
    int final;     /* taken after every input ended: the job is done */
    int savepoint; /* built offline (`weir state bootstrap`), not by a run */
    uint32_t max_parallelism;
    ckpt_task *tasks;
    size_t n_tasks;
    ckpt_file *files; /* filled by ckpt_manifest_write / load */
    size_t n_files;
} ckpt_manifest;

/* Caches checksums of immutable files (RocksDB SSTs, by device, inode, size
 * and mtime) so that a checkpoint checksums only the files that are new
 * since the previous one. */
typedef struct ckpt_sum_cache ckpt_sum_cache;
ckpt_sum_cache *ckpt_sum_cache_new(void);
void ckpt_sum_cache_free(ckpt_sum_cache *c);

/* "<run_dir>/chk-<id>" in a malloc'ed string. */
char *ckpt_dir(const char *run_dir, uint64_t id);

/*
 * Completes checkpoint `m->id` in `run_dir`: lists and checksums every file
 * under chk-<id>/ (through `cache`, which may be NULL), writes
 * MANIFEST.json.tmp, fsyncs it, renames it to MANIFEST.json, fsyncs the
 * directory, then appends the id to `completed` and fsyncs that. `m->files`
 * is replaced by the list written. Crash-point hooks (common/crash.h):
 * "manifest_written" after the fsync and before the rename,
 * "manifest_renamed" after the rename, before the log append.
 */
int ckpt_complete(const char *run_dir, ckpt_manifest *m, ckpt_sum_cache *cache,
                  char **errptr);

/*
 * Writes the manifest of the checkpoint directory `chk_dir` itself (a
 * savepoint, which no run's `completed` log lists): lists and checksums
 * every file under it as ckpt_complete() does, then writes MANIFEST.json
 * atomically (tmp, fsync, rename, fsync of the directory). `m->files` is
 * replaced by the list written.
 */
int ckpt_write_manifest(const char *chk_dir, ckpt_manifest *m, char **errptr);

/*
 * Marks the copy of a checkpoint in `dir` (a savepoint exported by
 * `weir ctl savepoint`) as a savepoint: rewrites its MANIFEST.json with
 * "savepoint": true and nothing else changed (the files and their checksums
 * stay as listed; they are not read again). Atomic as ckpt_write_manifest()
 * (tmp, fsync, rename), so a MANIFEST.json hard-linked with the source
 * checkpoint is replaced, never modified. Returns 0 or a negative code with
 * *errptr set ("checkpoint <id> (<dir>): ...").
 */
int ckpt_mark_savepoint(const char *dir, char **errptr);

/* Reads chk-<id>/MANIFEST.json. With `verify`, also checks that every listed
 * file exists with its size and checksum. */
int ckpt_manifest_load(const char *run_dir, uint64_t id, int verify,
                       ckpt_manifest **out, char **errptr);
void ckpt_manifest_free(ckpt_manifest *m);

/* The ids in `completed`, oldest first (malloc'ed). A missing log is an
 * empty list; a malformed line is an error. */
int ckpt_log_read(const char *run_dir, uint64_t **ids, size_t *n,
                  char **errptr);

/* Called for each completed checkpoint that fails verification. */
typedef void (*ckpt_damaged_fn)(void *arg, uint64_t id, const char *why);

/*
 * Finds the newest completed checkpoint of `run_dir` that verifies, trying
 * older ones when newer ones are damaged (each reported through on_damaged;
 * NULL logs a WARN line). Returns 0 with *out, WEIR_ENOTFOUND when the log
 * lists no checkpoint, or WEIR_EIO with a message listing why each one
 * failed when every listed checkpoint is damaged.
 */
int ckpt_find_latest(const char *run_dir, ckpt_damaged_fn on_damaged, void *arg,
                     ckpt_manifest **out, char **errptr);

/*
 * Loads a checkpoint given by path (`weir run --from PATH`): PATH is a chk-
 * directory holding MANIFEST.json; verified fully.
 */
int ckpt_manifest_load_path(const char *chk_dir, ckpt_manifest **out,
                            char **errptr);

/*
 * Keeps the newest `retain` completed checkpoints of run_dir and deletes
 * older completed ones and every chk- directory not in the log that is older
 * than the newest completed one. Never deletes the newest completed one.
 */
int ckpt_retain(const char *run_dir, uint32_t retain, char **errptr);

/*
 * Removes every chk- directory of run_dir whose id is neither in the
 * completed log nor `keep` (0: none): the aborted and unfinished
 * checkpoints. Only when no checkpoint is in flight, e.g. when an attempt
 * starts (keep: the checkpoint it restores, which may be given by path):
 * they may hold the space that a full disk lacks. A missing run_dir is fine.
 */
int ckpt_remove_unfinished(const char *run_dir, uint64_t keep, char **errptr);

/*
 * Rebuilds a working RocksDB directory `dst` (which must not exist) from a
 * checkpoint's state directory `src`: SST files are hard-linked (copied when
 * linking fails, e.g. across file systems), everything else is copied,
 * because RocksDB never modifies an SST but does rewrite other files.
 */
int ckpt_materialize(const char *src, const char *dst, char **errptr);

#endif
