/*
 * parts.h - the part files of file_sink with commit=checkpoint: a
 * two-phase-commit store in one directory (schemas/file-sink.md). Internal
 * to the file_sink plugin.
 *
 * Layout under the directory D, for subtask i:
 *   D/.inprogress/part-<i>-<seq>.jsonl  the open transaction: records since
 *                                       the last barrier (seq counts the
 *                                       transactions of an instance)
 *   D/.pending/part-<i>-<n>.jsonl       pre-committed at barrier n, waiting
 *                                       for checkpoint n to complete
 *   D/part-<i>-<n>.jsonl                committed: the job's output
 * A transaction without records leaves no file. A subtask touches only the
 * files that carry its own index, except that restore() commits the pending
 * files its snapshot lists (those of the subtask that wrote it).
 *
 * Life of a transaction: fparts_write() creates the in-progress file on the
 * first bytes; fparts_precommit(n) makes it durable (fsync) and renames it
 * into .pending; fparts_commit(n) renames every pending file <= n into D.
 * fparts_snapshot() writes the ids still pending, so that a restore can
 * finish their commit; fparts_restore() does that and removes everything
 * the restored checkpoint does not cover. Each rename is followed by an
 * fsync of both directories.
 *
 * Snapshot, version FPARTS_SNAPSHOT_VERSION, little endian:
 *   0  4 bytes  magic "WFSK"
 *   4  u32      index of the subtask that wrote it
 *   8  u64      the checkpoint id it was taken for
 *   16 u32      n: number of pending transactions
 *   20 u32      0 (reserved)
 *   24 n x u64  their checkpoint ids, strictly ascending, each <= the
 *               checkpoint id at offset 8
 *
 * Errors: functions return 0 or a negative WEIR_E* code after calling
 * weir_set_error() with the file name and the errno text (for a full disk,
 * the directory and its free space: fparts_strerror()). Thread: an
 * fparts belongs to one instance and is used from its callbacks only.
 */
#ifndef WEIR_PLUGINS_FILE_SINK_PARTS_H
#define WEIR_PLUGINS_FILE_SINK_PARTS_H

#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

#define FPARTS_SNAPSHOT_VERSION 1u
#define FPARTS_SNAPSHOT_HEADER  24u

typedef struct fparts {
    char *dir;        /* D, without a trailing slash (except "/") */
    char *inprogress; /* D/.inprogress */
    char *pending;    /* D/.pending */
    uint32_t sub;     /* this subtask's index */
    int ready;        /* leftovers were cleaned up or recovered */
    int unrestored;   /* a restore failed: no fresh start, no writing */
    int fd;           /* the in-progress file, or -1 when none is open */
    char *cur;        /* its path, or NULL */
    uint64_t seq;     /* sequence number of the next in-progress file */
    uint64_t *pend;   /* pre-committed, uncommitted ids, ascending */
    size_t n_pend;
    size_t cap_pend;
} fparts;

/* Sets up `p` for directory `dir` (len bytes, not NUL-terminated) and
 * subtask `sub`, creating D, D/.inprogress and D/.pending as needed. Touches
 * no part file. On failure `p` holds nothing to free. */
int fparts_open(weir_ctx *ctx, fparts *p, const char *dir, size_t len,
                uint32_t sub);

/* Fresh start: unless fparts_restore() ran, deletes every in-progress,
 * pending and committed file of this subtask (a new run replaces the
 * subtask's output, as mode=per_subtask truncates its file). Idempotent:
 * does nothing once `ready` is set. Call it before any use but restore.
 * After a failed fparts_restore() it refuses (WEIR_ESTATE) and deletes
 * nothing: the files are still needed by the next restore. */
int fparts_start(weir_ctx *ctx, fparts *p);

/* Appends bytes to the open transaction, creating its in-progress file on
 * first use. */
int fparts_write(weir_ctx *ctx, fparts *p, const void *data, size_t len);

/* fsyncs the in-progress file, if any. */
int fparts_sync(weir_ctx *ctx, fparts *p);

/* Pre-commit at barrier `id`: fsync and close the in-progress file, rename
 * it to .pending/part-<sub>-<id>.jsonl and fsync both directories. Without
 * an in-progress file (no records since the last barrier) nothing happens.
 * `id` must be larger than every pending id (WEIR_ESTATE otherwise). */
int fparts_precommit(weir_ctx *ctx, fparts *p, uint64_t id);

/* Writes the snapshot of checkpoint `id` (the pending ids) with
 * weir_snapshot_write(). */
int fparts_snapshot(weir_ctx *ctx, fparts *p, uint64_t id);

/* Commits every pending transaction with an id <= `id`, oldest first. A
 * failure leaves the remaining ones pending; a restore finishes them. */
int fparts_commit(weir_ctx *ctx, fparts *p, uint64_t id);

/*
 * Recovery from checkpoint `id` with the snapshot bytes of this subtask
 * (`version` as passed to restore()). Only before any other use
 * (WEIR_ESTATE otherwise). Commits the listed transactions (a file already
 * committed is skipped, so a repeated restore is harmless), then deletes this
 * subtask's remaining pending and in-progress files and its committed files
 * of checkpoints newer than `id` (their records are replayed). An empty
 * snapshot of version 0 or 1 lists no transaction. A snapshot of another
 * version or a damaged one is refused with WEIR_EINVAL before any file is
 * touched.
 */
int fparts_restore(weir_ctx *ctx, fparts *p, uint64_t id, uint32_t version,
                   const void *data, size_t len);

/* Whether data was written that is not committed (an in-progress file or
 * pending transactions). */
int fparts_uncommitted(const fparts *p);

/* Closes the in-progress file and frees `p`. Leaves every file as it is. */
void fparts_close(fparts *p);

/*
 * The reason of a failed write under `path` for errno value `e`:
 * strerror(e), or for ENOSPC and EDQUOT "no space left on device: <dir> has
 * N bytes free (of M)", <dir> being `path` when it is a directory, else the
 * one that holds it (statvfs() now). The text is valid until the calling
 * thread's next call. Shared by parts.c and file_sink.c.
 */
const char *fparts_strerror(int e, const char *path);

#endif
