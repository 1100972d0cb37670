/*
 * th_ckpt.h - helpers of the checkpoint tests: a temporary run directory
 * under /tmp (removed at teardown), plain files, a real RocksDB database
 * (C API) whose checkpoints make realistic chk- directories, and an
 * independent listing/checksum of a tree (nftw + one-shot XXH3) to compare
 * manifests against. Every helper fails the test on an error.
 */
#ifndef WEIR_TESTS_TH_CKPT_H
#define WEIR_TESTS_TH_CKPT_H

#include <rocksdb/c.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "checkpoint/manifest.h"

typedef struct th_run {
    char dir[256];     /* temporary root, removed at teardown */
    char run_dir[300]; /* dir/run: the checkpoint run directory */
} th_run;

th_run *th_run_new(void);
void th_run_free(th_run *r);

/* "<fmt...>" in a malloc'ed string (fails the test when out of memory). */
char *th_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes `data` to path (creating parent directories). */
void th_write(const char *path, const void *data, size_t len);
void th_write_str(const char *path, const char *s);
/* Reads the whole file (malloc'ed, NUL-terminated); NULL when missing. */
char *th_read(const char *path, size_t *len);
int th_exists(const char *path);
ino_t th_inode(const char *path);
/* XXH3-64 of the whole file, read in one piece (independent of the code
 * under test, which streams). */
uint64_t th_xxh3_file(const char *path);
/* Removes a tree with nftw (independent of ckpt_rmtree). */
void th_rm_rf(const char *path);

/* Regular files under root, relative paths in strcmp order (malloc'ed). */
typedef struct th_list {
    char **paths;
    size_t n;
} th_list;
void th_list_tree(const char *root, th_list *out);
void th_list_free(th_list *l);
/* The name of the last *.sst file (in strcmp order: the newest RocksDB
 * file, so not one shared with an older checkpoint) under root, relative
 * to root (malloc'ed); fails when there is none. */
char *th_last_sst(const char *root);

/* A RocksDB database (WAL off, like host/state). */
typedef struct th_db {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
} th_db;
th_db *th_db_open(const char *path);
void th_db_close(th_db *d);
void th_db_put(th_db *d, const char *key, const char *value);
/* Value as a malloc'ed string, NULL when absent. */
char *th_db_get(th_db *d, const char *key);
/* Puts keys "k<i>" = "v<i>-<tag>" for i in [from, to). */
void th_db_fill(th_db *d, int from, int to, const char *tag);
/* Flush and rocksdb_checkpoint_create into `dir` (which must not exist). */
void th_db_checkpoint(th_db *d, const char *dir);

/*
 * A manifest for job "job" with one keyed task "count" 0/1 whose state is
 * count-0/state and snapshot count-0/snapshot, and one task "src" 0/1 with
 * only a snapshot src-0/snapshot (either may be left out with the flags).
 */
ckpt_manifest *th_manifest(uint64_t id, int with_count, int with_src);

/*
 * Makes chk-<id> of r: a RocksDB checkpoint of `db` (when not NULL) as
 * count-0/state, snapshot files, and completes it through `cache`. Fails
 * the test when ckpt_complete fails. Returns the manifest (caller frees).
 */
ckpt_manifest *th_make_checkpoint(th_run *r, uint64_t id, th_db *db,
                                  ckpt_sum_cache *cache);

#endif
