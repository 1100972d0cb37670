/*
 * fsutil.h - file-system helpers of the checkpoint subsystem: listing and
 * checksumming a checkpoint's files, the checksum cache, durable writes.
 * Internal to host/checkpoint/ (the public interface is manifest.h).
 *
 * Errors: 0 or a negative WEIR_E* code with a one-line message in *errptr
 * that names the file and the problem (callers prefix the checkpoint).
 * Thread: reentrant; a ckpt_sum_cache belongs to one thread.
 */
#ifndef WEIR_HOST_CKPT_FSUTIL_H
#define WEIR_HOST_CKPT_FSUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint/manifest.h"

/* Bytes read per read() while checksumming or copying. */
#define CKPT_IO_CHUNK (1u << 20)

/* Counters of a ckpt_sum_cache, for tests and metrics. */
typedef struct ckpt_sum_cache_stats {
    uint64_t hits;    /* *.sst checksums served from the cache */
    uint64_t misses;  /* *.sst files read and checksummed */
    uint64_t entries; /* entries held now */
} ckpt_sum_cache_stats;

void ckpt_sum_cache_stats_get(const ckpt_sum_cache *c,
                              ckpt_sum_cache_stats *out);
/* Same as ckpt_sum_cache_stats_get(c).misses; 0 for NULL. */
uint64_t ckpt_sum_cache_misses(const ckpt_sum_cache *c);

/*
 * Cache protocol of one scan: begin a pass, look up (and on a miss put) each
 * *.sst file by its fstat() result and base name, end the pass. Ending a
 * pass drops every entry that the pass did not look up, which bounds the
 * cache by the SST files of the latest checkpoint. A failed pass is not
 * ended; the next ended pass prunes.
 */
struct stat;
void ckpt_sum_cache_begin(ckpt_sum_cache *c);
int ckpt_sum_cache_lookup(ckpt_sum_cache *c, const struct stat *st,
                          const char *name, uint64_t *xxh3);
/* Returns 0 or WEIR_ENOMEM (the cache is then unchanged). */
int ckpt_sum_cache_put(ckpt_sum_cache *c, const struct stat *st,
                       const char *name, uint64_t xxh3);
void ckpt_sum_cache_end(ckpt_sum_cache *c);

/*
 * Lists every regular file under the directory `root` recursively, sorted by
 * path (strcmp order), as paths relative to root; a top-level name in
 * `skip` (NULL-terminated, may be NULL) is left out. Each file is read and
 * checksummed (XXH3-64) unless `cache` knows it (*.sst only), and fsync'ed
 * when read; every directory of the tree is fsync'ed too, so that the files
 * and their names are durable when this returns. A symbolic link or other
 * non-regular entry is an error (WEIR_EIO). On success *files (malloc'ed,
 * free with ckpt_files_free) holds *n entries.
 */
int ckpt_scan_tree(const char *root, const char *const *skip,
                   ckpt_sum_cache *cache, ckpt_file **files, size_t *n,
                   char **errptr);
void ckpt_files_free(ckpt_file *files, size_t n);

/*
 * Checksums the open file `fd` (XXH3-64, streaming, CKPT_IO_CHUNK at a
 * time) from offset 0 and returns the number of bytes read in *size.
 * `name` is used in messages only.
 */
int ckpt_hash_fd(int fd, const char *name, uint64_t *size, uint64_t *xxh3,
                 char **errptr);

/* fsync() of the directory `path`. */
int ckpt_fsync_dir(const char *path, char **errptr);

/*
 * Writes `len` bytes to `path` durably and atomically: `path`.tmp is
 * written and fsync'ed, crash_point(`crash_written`) runs (when not NULL),
 * the file is renamed to `path` and the directory `dir` is fsync'ed. On a
 * failed write `path`.tmp is removed; for want of space the code is
 * FS_ENOSPC (common/fs.h) and the message names `dir` and its free space.
 */
int ckpt_write_atomic(const char *dir, const char *path, const void *data,
                      size_t len, const char *crash_written, char **errptr);

/* Reads the whole file into a malloc'ed, NUL-terminated buffer. Returns
 * WEIR_ENOTFOUND when it does not exist, WEIR_EIO when it cannot be read;
 * the message names the problem only ("missing", "read: ..."): the caller
 * names the file. */
int ckpt_read_file(const char *path, char **data, size_t *len, char **errptr);

/* 1 when `name` ends in ".sst". */
int ckpt_is_sst(const char *name);

#endif
