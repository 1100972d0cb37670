/*
 * view.h - one subtask's keyed state in a checkpoint, read offline exactly
 * as a restore sees it: the RocksDB checkpoint directory with the
 * write-back cache's delta file applied on top (state.h,
 * state_checkpoint_delta), without modifying either.
 *
 * The RocksDB directory is opened read-only
 * (rocksdb_open_for_read_only_column_families: no lock, no compaction, no
 * write), with RocksDB's info log, should it write one, sent to a
 * temporary directory of its own (under $TMPDIR, else /tmp; removed at
 * close), so that nothing is created, renamed or written inside the
 * checkpoint. The delta file is
 * read into memory. The view knows the store's states from its metadata
 * (name, persistent id, kind) and merges the delta into every read of a
 * state: a delta value replaces the stored one, a delta deletion hides it,
 * and a value only in the delta appears, all in key order.
 *
 * Thread: a view belongs to one thread. Errors: 0 or a negative WEIR_E*
 * code with a one-line message in *errptr that names the directory or the
 * delta file: WEIR_EIO when RocksDB cannot open or read it or the delta is
 * damaged, WEIR_EINVAL for a directory of another state format.
 */
#ifndef WEIR_HOST_STATETOOL_VIEW_H
#define WEIR_HOST_STATETOOL_VIEW_H

#include <stddef.h>
#include <stdint.h>

typedef struct stv_db stv_db;

/* A state of the store: one column family "s.<name>" and its metadata. */
typedef struct stv_state {
    char *name;
    char *cf;        /* "s.<name>" */
    uint16_t id;     /* persistent state id (metadata) */
    uint8_t kind;    /* weir_state_kind; 0 when the metadata lacks it */
    uint32_t format; /* format version of its entries (metadata) */
    char *ttl_rec;   /* its TTL override record ("weir.ttl.<name>",
                        codec.h), NULL for none */
    size_t ttl_len;
    size_t delta_puts;    /* values of this state in the delta */
    size_t delta_deletes; /* deletions of this state in the delta */
} stv_state;

/*
 * Opens the state directory `dir` read-only, with the delta file `delta`
 * on top (NULL, or a path that does not exist: no delta). Every state
 * column family must have its metadata and every delta entry must name a
 * known state, else the directory is refused as damaged.
 */
int stv_open(const char *dir, const char *delta, stv_db **out, char **errptr);

/* Closes RocksDB, removes the temporary log directory, frees the view.
 * NULL is a no-op. */
void stv_close(stv_db *db);

/* The states, in the order of their column families on disk. */
size_t stv_state_count(const stv_db *db);
const stv_state *stv_state_at(const stv_db *db, size_t i);
/* The state named `name`, or NULL. */
const stv_state *stv_state_find(const stv_db *db, const char *name);

/* Column families that are neither the metadata, the expiry index, the
 * timers nor a state's (a store of a newer layout); valid until close. */
size_t stv_other_cf_count(const stv_db *db);
const char *stv_other_cf(const stv_db *db, size_t i);

/*
 * An entry: its RocksDB key and value, valid during the call only. Return
 * 0 to go on, 1 to stop the scan (which then returns 0), or a negative
 * code, which the scan returns.
 */
typedef int (*stv_fn)(void *arg, const char *k, size_t klen, const char *v,
                      size_t vlen);

/*
 * Calls fn for each entry of state `st` with the delta applied, in key
 * order, for keys k with lo <= k < hi (lo NULL: from the first; hi NULL:
 * to the last; compared bytewise, as RocksDB does).
 */
int stv_scan_state(stv_db *db, const stv_state *st, const char *lo,
                   size_t lo_len, const char *hi, size_t hi_len, stv_fn fn,
                   void *arg, char **errptr);

/* The store's other column families that restores carry over. */
typedef enum stv_cf { STV_TIMERS = 0, STV_INDEX = 1 } stv_cf;

/* Calls fn for each entry of the timers or the expiry index, in key order
 * (the delta never holds either). */
int stv_scan_cf(stv_db *db, stv_cf which, stv_fn fn, void *arg, char **errptr);

/*
 * RocksDB's estimates for a state (st) or, with st NULL, for `which`:
 * "rocksdb.estimate-num-keys" (records, counting overwrites not compacted
 * yet more than once; without the delta) and "rocksdb.total-sst-files-
 * size" (bytes on disk).
 */
void stv_estimate(stv_db *db, const stv_state *st, stv_cf which, uint64_t *keys,
                  uint64_t *bytes);

#endif
