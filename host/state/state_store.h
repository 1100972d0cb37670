/*
 * state_store.h - private to host/state: the store's RocksDB side.
 *
 * state_store.c implements the environment, state_store_open()/close(),
 * the column families, flush, checkpoints and deltas, compaction and
 * counting of state.h, and below it the one layer that knows about the
 * write-back cache: an entry (the value at the store's current encoded key
 * s->kbuf in one state) is loaded, stored or removed through the
 * sstore_ent_* functions, which go to the cache when there is one and to
 * RocksDB otherwise, writing dirty cache entries out in write batches.
 *
 * Ownership: bytes an ent points at belong to the store (the cache entry or
 * the pinned RocksDB slice) and stay valid until the next entry operation.
 * Threads: the store's thread only. Errors: 0 or a negative WEIR_E* code
 * with a message in *errptr; RocksDB failures of access paths are WEIR_EIO
 * (sstore_rdb_fail), free-space shortfalls FS_ENOSPC.
 */
#ifndef WEIR_HOST_STATE_STORE_H
#define WEIR_HOST_STATE_STORE_H

#include "state/state_internal.h"

/* A RocksDB error of an access function: WEIR_EIO, the code a plugin may
 * see, also for a full disk. */
int sstore_rdb_fail(state_store *s, const weir_state *st, const char *what,
                    char *rerr, char **errptr);

/*
 * Fails with FS_ENOSPC, before RocksDB is asked to write about `need` bytes
 * under `path`, when its file system has less than that plus
 * min_free_bytes available. RocksDB 7.8 does not survive every write that
 * fails for want of space (a failed LOG line makes the next one abort the
 * process), so the store stops short of a full disk rather than on it.
 */
int sstore_space_check(state_store *s, const char *path, uint64_t need,
                       const char *what, char **errptr);

/* The sum of a size property over the store's column families. */
uint64_t sstore_prop_sum(state_store *s, const char *name);

/* Bytes the next flush of every memtable writes, at most. */
uint64_t sstore_memtable_bytes(state_store *s);

/* Sets "state store NAME: out of memory" and returns WEIR_ENOMEM. */
int sstore_oom(state_store *s, char **errptr);

/* Releases the pinned slice of the last RocksDB get (the bytes a get
 * returned from RocksDB are invalid afterwards). */
void sstore_pin_release(state_store *s);

/* The memo of the last entry read or written without the cache, when it
 * is the entry at kbuf of `st`; NULL otherwise (and always with a cache). */
state_memo *sstore_memo_find(state_store *s, const weir_state *st);

/* Writes the dirty cached map entries of the current key of `st`. */
int sstore_group_flush(state_store *s, const weir_state *st, char **errptr);

/* Removes the current key's cached map entries of `st` (they must be
 * clean). */
void sstore_group_drop(state_store *s, const weir_state *st);

/* Loads the entry at kbuf of `st`. Expired entries are returned as found;
 * the caller decides. */
int sstore_ent_load(state_store *s, const weir_state *st, ent *e,
                    char **errptr);

/* Writes (stamp, val) at kbuf of `st`, keeping the index invariant. `val`
 * must not point into the cache entry of that key. */
int sstore_ent_store(state_store *s, const weir_state *st, int64_t stamp,
                     const void *val, size_t vlen, char **errptr);

/* Deletes the entry at kbuf of `st` (a tombstone in the cache). */
int sstore_ent_remove(state_store *s, const weir_state *st, char **errptr);

/* An integer RocksDB property of column family `cf`, 0 when unknown. */
uint64_t sstore_prop(state_store *s, rocksdb_column_family_handle_t *cf,
                     const char *name);

/* The column family of state `name`, created when missing. */
int sstore_state_cf(state_store *s, const char *name, state_cfh **out,
                    char **errptr);

#endif
