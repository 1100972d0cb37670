/*
 * state.h - keyed state on RocksDB: stores, declared states, TTL, expiry
 * hooks, a write-back cache, leak statistics and checkpoint hooks.
 *
 * Model
 * -----
 * A state_env is shared by the whole process: one LRU block cache and one
 * memtable budget for every store, and RocksDB's background threads. A
 * state_store is one RocksDB instance owned by one keyed subtask, normally at
 * <state dir>/<job>/<operator id>/<subtask index>/ (state_store_path()).
 * Every state the operator declares (weir_state_desc: value, map or list,
 * with its TTL settings) is one column family "s.<name>". The plugin's
 * weir_state * IS the handle returned by state_declare(): the runtime passes
 * it through its weir_host_api slots unchanged.
 *
 * Layout on disk (all integers big-endian)
 *   state key:   key group (2) | varint(len) | key | map user key (map only)
 *   state value: expiry stamp (8, int64 ms; INT64_MAX = never) | bytes
 *                list value bytes = { varint(len) | element }*, in append
 *                order; the stamp covers the whole list.
 *   index key:   in column family "__expiry": domain (1: 0 processing,
 *                1 event) | stamp (8, sign bit flipped so that the byte
 *                order is the numeric order) | state id (2) | state key.
 *                The value is empty.
 *   timers:      in column family "__timers", see state/timers.h.
 *   metadata:    in the default column family: "weir.format" -> "1" and
 *                "weir.state.<name>" -> state id (2) | kind (1) | format
 *                version (4; absent in records of older hosts: 0). State ids
 *                are persistent, so an operator may declare its states in
 *                any order from one run to the next; "weir.ttl.<name>"
 *                -> a TTL override and its progress (state_admin.h).
 * The write-ahead log is off for state data (durability comes from
 * checkpoints); the few metadata writes use the WAL.
 *
 * Memory budget. RocksDB 7.8.3's C API cannot create a WriteBufferManager
 * shared by several DBs. The env divides its write-buffer budget evenly by
 * the number of stores the caller expects (state_env_config.expected_stores);
 * each store enforces its share with db_write_buffer_size (RocksDB flushes the
 * largest memtable of the store when the share is exceeded), and every column
 * family gets write_buffer_size = share / 2 with max_write_buffer_number = 2.
 * Opening more stores than expected keeps the per-store share, so the total
 * may exceed the budget; that is logged once. The block cache, in contrast,
 * really is one object shared by every column family of every store.
 *
 * Keys and time
 * -------------
 * The caller sets the current key once per record (state_set_key(): key
 * group, key bytes, the record's event time). Every access function works on
 * the current key. Processing time comes from the store's clock callback (ms;
 * a test may fake it), read once per state_set_key() and per state_sweep().
 * Event time comes from the caller: the record's timestamp and the watermark
 * (state_set_watermark()).
 *
 * TTL (weir_state_desc)
 *   ttl_ms > 0 gives an entry an expiry stamp when it is written (and, with
 *   WEIR_TTL_ON_READ_AND_WRITE, when it is read):
 *     processing time: stamp = now + ttl_ms; expired when now >= stamp.
 *     event time:      stamp = t + ttl_ms, t = the current record's event
 *                      time, or the watermark when the record has none
 *                      (WEIR_TS_NONE, e.g. timers; also inside a hook the
 *                      sweep called); expired when watermark >= stamp. A
 *                      late record (t + ttl_ms <= watermark) writes an
 *                      entry that is already expired. Until the first
 *                      watermark nothing expires (an entry written then by
 *                      a record without event time expires with the first
 *                      watermark); the final watermark WEIR_WATERMARK_MAX
 *                      expires every entry. Stamps follow the last access
 *                      in processing order, so an access with an older
 *                      event time moves the stamp earlier.
 *   WEIR_TTL_NONE: entries never expire; the state is a leak risk (logged at
 *   declaration, watched by the leak detector). ttl_ms == 0 is refused.
 *   Visibility WEIR_TTL_NEVER_RETURN_EXPIRED: a read never returns an
 *   expired entry (it behaves as absent and is removed on the spot, after the
 *   hook, see below). WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED: a read returns
 *   an expired entry until a cleanup removed it; with read-and-write update
 *   such a read refreshes the stamp and so revives the entry (as in Flink).
 *
 * Cleanup, three ways
 *   1. On access, as above ("expired by read" in the statistics).
 *   2. A compaction filter drops expired entries while RocksDB compacts, on
 *      its background threads; it reads the time from atomics that the
 *      subtask thread publishes (now at every state_set_key()/state_sweep(),
 *      the watermark at state_set_watermark()), so it lags by at most one
 *      record and never drops too early. States with an expiry hook are
 *      never filtered: their entries leave only through the hook paths.
 *      Periodic compaction: the C API of 7.8.3 has no
 *      periodic_compaction_seconds, and rocksdb_suggest_compact_range_cf
 *      never marks files of the last non-empty level (exactly the files
 *      that are never compacted otherwise). So every compact_interval_ms of
 *      processing time, state_sweep() queues a full compaction of the
 *      store's column families on the env's compaction thread (one thread
 *      per process, started on first use): a non-exclusive
 *      rocksdb_compact_range_cf_opt with the bottommost level forced, so
 *      that the filter sees every file while normal compactions go on.
 *      Closing a store cancels its queued or running periodic compaction.
 *   3. The expiry index, swept by state_sweep() on the subtask thread with a
 *      bounded amount of work per call. The index lives in RocksDB (column
 *      family "__expiry") rather than in memory: it is then part of every
 *      checkpoint, survives reopen and restore without a rebuild scan, and
 *      costs no memory per key. Invariant: every live entry with a TTL has an
 *      index entry at a time <= its stamp. An index entry is written when an
 *      entry is created or its stamp moves earlier; a refresh that moves the
 *      stamp later writes nothing (so a hot key costs no index write per
 *      update). When the sweep reaches an index entry whose entry was
 *      refreshed, it writes one index entry at the current stamp and drops
 *      the old one; one whose entry is gone is dropped. Index entries of a
 *      state that is not declared, or declared without a TTL, when the
 *      sweep reaches them are dropped too: entries that get a TTL again
 *      later are then cleaned by the compaction filter only.
 *
 * Expiry hook. A store may have an on_expired callback, and a state may want
 * it (state_declare(..., hook_wanted)). For such a state, an expired entry is
 * passed to the hook before it leaves the store for any reason: found by
 * the sweep, read under never-return-expired, overwritten or deleted by a
 * put/delete/clear, or skipped by map_iter/map_clear. After the hook returns,
 * the entry is looked up again: if the hook wrote it with a fresh stamp, it
 * stays; otherwise it is deleted. For a list the hook is called once per
 * element, in order, then the list is removed (unless refreshed). The hook
 * runs with the entry's key as the current key and may call every access
 * function; calls made inside a hook never fire a hook themselves (an
 * expired entry they meet is absent to them and left for the sweep). In one
 * run, each expired entry is handed to the hook exactly once. Across a
 * failure it is at least once: a hook that ran after the last completed
 * checkpoint runs again after restore, because the restored state still has
 * the entry. Event-time entries expire only when the watermark passes, so
 * their hooks fire as watermarks arrive (and all of them at end of input).
 *
 * Write-back cache. Optionally a bounded table (XXH3-hashed, clock eviction)
 * of entries sits in front of RocksDB. Writes and deletes (as tombstones)
 * stay in it; dirty entries go to RocksDB in one write batch per eviction
 * round (1/16 of the cache) and at state_flush(). Misses are cached too
 * (as absent entries). Values above cache_max_value_bytes bypass it. The
 * cache is invisible to the semantics above: expiry is decided from the
 * cached stamp exactly as from the stored one. map_iter/map_clear first
 * write the current key's dirty map entries (the cache keeps a list per
 * (state, key)), then read RocksDB, so their cost is the number of that
 * key's cached entries plus the map size. One difference remains, allowed
 * by return-expired-if-not-cleaned: an expired entry that compaction
 * dropped from RocksDB may still be read from a clean cached copy until
 * the sweep, a read or eviction removes it (it is "not cleaned" yet).
 * Statistics differ too (expired_* counts by path, cache_* counters).
 *
 * Leak statistics: per state, estimated keys (RocksDB's
 * "rocksdb.estimate-num-keys" plus the cache's unwritten creations and
 * deletions; overwrites not yet compacted are counted more than once),
 * live bytes ("rocksdb.estimate-live-data-size" + memtable size), entries
 * expired by read, by sweep and by compaction, and hook calls.
 * state_stats_sample() flags a state without TTL whose estimated key count
 * grew at each of leak_samples consecutive samples.
 *
 * Full disks. RocksDB 7.8 does not survive every write that fails for want
 * of space (a LOG line it fails to write makes the next one abort the
 * process), so the store keeps RocksDB off a full disk: before RocksDB
 * writes much, the free space of the file system is checked (statvfs)
 * against an estimate plus cfg.min_free_bytes, and the call fails with
 * FS_ENOSPC (common/fs.h) and "no space left on device: <dir> has N bytes
 * free (of M)" instead. Checked: state_store_open() (what an open writes),
 * every memtable flush (the memtables' size), a checkpoint (the SSTs when
 * they are copied rather than linked), a periodic compaction (the SSTs;
 * skipped with a warning when short), and state_sweep() at most every
 * 500 ms of processing time (the memtables, which RocksDB may flush in the
 * background at any time); an open needs room for the WAL preallocations
 * of all the env's expected stores. RocksDB's LOG keeps its header only and
 * the MANIFEST preallocates little. A RocksDB error that still reports a
 * full disk gets the same message; the host's own calls (open, flush,
 * checkpoint, delta) return FS_ENOSPC for it, the access functions WEIR_EIO.
 *
 * Threading: a store and its states are used by one thread at a time (the
 * subtask thread), except that RocksDB's background threads run the
 * compaction filter and the env's thread runs periodic compactions.
 * Different stores may be used from different threads. The env is
 * thread-safe, and so is state_owner_name().
 *
 * Errors: functions return 0 (or a count) or a negative WEIR_E* code and, when
 * errptr is not NULL, a malloc'ed one-line message in *errptr (err.h).
 * WEIR_EIO means RocksDB failed; WEIR_ESTATE a call without a current key or
 * from the wrong place; WEIR_EINVAL a bad argument or a state of the wrong
 * kind.
 *
 * Implementation: state_store.c, state_ttl.c, state_access.c, state_meta.c
 * and state_stats.c, one subsystem each (state_internal.h maps them).
 */
#ifndef WEIR_HOST_STATE_H
#define WEIR_HOST_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

typedef struct state_env state_env;
typedef struct state_store state_store;

/* ------------------------------------------------------------------------ */
/* Environment                                                               */
/* ------------------------------------------------------------------------ */

typedef struct state_env_config {
    uint64_t block_cache_bytes;  /* shared LRU block cache; 256 MiB */
    uint64_t write_buffer_bytes; /* memtables of all stores; 256 MiB */
    uint32_t expected_stores;    /* stores sharing the budget; 8 */
    int background_threads;      /* RocksDB compaction threads; 2 */
} state_env_config;

/* Fills `cfg` with the defaults above. */
void state_env_config_init(state_env_config *cfg);

/* Creates the process's state environment. Returns 0 and *out, or a negative
 * code. Thread-safe; usually called once by the main thread. */
int state_env_new(const state_env_config *cfg, state_env **out, char **errptr);

/* Frees the env. Every store opened with it must be closed first. */
void state_env_free(state_env *env);

/* ------------------------------------------------------------------------ */
/* Stores                                                                    */
/* ------------------------------------------------------------------------ */

/* Processing time in ms since the epoch (wall clock: stamps are persisted and
 * compared across restarts). Called on the subtask thread only. */
typedef int64_t (*state_clock_fn)(void *arg);

/*
 * The expiry hook (see "Expiry hook" above). `key` is the entry's key, `ukey`
 * its map user key (NULL, 0 for value and list state), `value` its bytes (one
 * element for list state). All pointers are valid during the call only.
 * Return 0 to go on; a negative code stops the operation that fired the hook,
 * which returns that code, and the entry is not deleted.
 */
typedef int (*state_expired_fn)(void *arg, weir_state *st, const void *key,
                                size_t key_len, const void *ukey,
                                size_t ukey_len, const void *value,
                                size_t value_len);

typedef struct state_store_config {
    const char *path;     /* directory of the store; created (with parents) */
    const char *name;     /* for logs, e.g. "count#1"; NULL: the path */
    state_clock_fn clock; /* NULL: CLOCK_REALTIME */
    void *clock_arg;
    state_expired_fn on_expired; /* NULL: no hook for any state */
    void *on_expired_arg;
    size_t cache_entries;         /* write-back cache size; 0 = off; 100000 */
    size_t cache_max_value_bytes; /* larger values bypass the cache; 64 KiB */
    uint32_t leak_samples;        /* growth samples that flag a leak; 5 */
    int64_t compact_interval_ms;  /* see cleanup 2; 0 = never; 24 h */
    /* A delta written by state_checkpoint_delta() to apply at open, on top
     * of the checkpoint directory being opened; NULL for none. */
    const char *restore_delta;
    uint64_t min_free_bytes; /* see "Full disks"; 64 MiB */
} state_store_config;

/* Fills `cfg` with the defaults above and NULL path/name/callbacks. */
void state_store_config_init(state_store_config *cfg);

/*
 * Builds "<state_dir>/<job>/<op_id>/<subtask>" in a malloc'ed *out. Fails
 * with WEIR_EINVAL when job or op_id is empty, ".", ".." or contains '/'.
 */
int state_store_path(const char *state_dir, const char *job, const char *op_id,
                     uint32_t subtask, char **out, char **errptr);

/*
 * Opens (creating if needed) the store at cfg->path: a fresh directory, one
 * left by an earlier state_store_close(), or a directory restored from a
 * state_checkpoint(). `cfg` is copied; the env must outlive the store.
 * A directory that another store holds open, in this process or another one
 * (another host on a shared file system included), fails at once with
 * WEIR_EIO and a message naming the directory and its LOCK file.
 */
int state_store_open(state_env *env, const state_store_config *cfg,
                     state_store **out, char **errptr);

/*
 * Writes the cache and the memtables out (so the directory keeps every
 * write), closes RocksDB and frees the store and its states. The store is
 * freed even when writing fails (the error is returned). NULL is a no-op.
 */
int state_store_close(state_store *s, char **errptr);

/* ------------------------------------------------------------------------ */
/* Declaring states                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Declares the state `desc` (a plugin's struct: min(desc->size, sizeof) is
 * read, missing fields are zero = the defaults) and returns its handle in
 * *out, owned by the store. Creates the column family when new; a state that
 * exists on disk keeps its data and must have the same kind. TTL settings may
 * differ from the last run's (entries keep their stamps). `hook_wanted`
 * selects the expiry hook for this state (normally: the operator implements
 * on_state_expired); it has no effect when the store has no on_expired.
 * WEIR_EINVAL (with the reason) for a name that is not [a-z0-9_]{1,64}, a
 * duplicate name, an unknown kind or TTL option, ttl_ms == 0 or another
 * negative ttl_ms than WEIR_TTL_NONE, or a kind that differs from the
 * stored one. Call before any access; not from a hook.
 */
int state_declare(state_store *s, const weir_state_desc *desc, int hook_wanted,
                  weir_state **out, char **errptr);

const char *state_name(const weir_state *st);
weir_state_kind state_kind(const weir_state *st);
state_store *state_store_of(const weir_state *st);

/*
 * Ownership of a handle a plugin passed in, which may be any pointer: a
 * handle of another store, of a closed store, or garbage. Neither function
 * dereferences `st`; they compare it with the handles the stores declared.
 *
 * state_owned() returns 1 when `st` is a state declared in `s` (0 for
 * anything else, NULL included). O(states of s); thread: s's thread.
 *
 * state_owner_name() copies the name of the open store of this process that
 * declared `st` (state_store_config.name, e.g. "count#1") into `buf` (`cap`
 * bytes, truncated) and returns 0, or returns WEIR_ENOTFOUND when no open
 * store did. Thread-safe: it takes a process-wide lock and visits every
 * state of every open store, so it is meant for error paths.
 */
int state_owned(const state_store *s, const weir_state *st);
int state_owner_name(const weir_state *st, char *buf, size_t cap);

/*
 * Format versions (weir_state_desc.format_version). The store records, per
 * state, the version of the entries it holds ("weir.state.<name>"; records
 * written before versions existed read as 0): the declared version for a
 * new state. When a state is declared with another version than the
 * recorded one, the recorded one stays until state_migrate() (or, for a
 * state without entries, state_format_commit()) makes the declared one the
 * recorded one; until then the entries hold the old version's bytes.
 */
uint32_t state_format_declared(const weir_state *st);
uint32_t state_format_stored(const weir_state *st);

/* Records the declared version as the state's (metadata write, with the
 * WAL). */
int state_format_commit(weir_state *st, char **errptr);

/*
 * Called by state_migrate() for each entry (each element of a list) of the
 * state, with the entry's key current; `from_version` is the recorded
 * version, `ukey` the map key (NULL, 0 for value and list state). The
 * pointers are valid during the call only. The entry has been removed
 * already: fn writes its new form with the ordinary access functions, or
 * nothing to drop it. A negative return stops the migration.
 */
typedef int (*state_migrate_fn)(void *arg, weir_state *st,
                                uint32_t from_version, const void *key,
                                size_t key_len, const void *ukey,
                                size_t ukey_len, const void *value,
                                size_t value_len);

/*
 * Migrates every entry of `st`, expired ones included, from the recorded
 * format version to the declared one: writes the cache out, then walks a
 * RocksDB snapshot of the state record key by record key; for each key it
 * makes the key current (event time WEIR_TS_NONE), removes all of the
 * key's entries (without the expiry hook), then calls fn for each of them.
 * What fn writes gets fresh TTL stamps and is never met again by the walk.
 * At the end the declared version becomes the recorded one. Counts fn
 * calls in *calls. Leaves no current key. Between records, not from a
 * hook. Returns 0 or a negative code (fn's own included); after a failure
 * the store holds a partial migration and the old version stays recorded:
 * the caller must not go on with it (a restore starts again from the
 * checkpoint).
 */
int state_migrate(weir_state *st, state_migrate_fn fn, void *arg,
                  uint64_t *calls, char **errptr);

/* ------------------------------------------------------------------------ */
/* Current key and time                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Makes (kg, key) the current key for the following access calls, with `ts`
 * the record's event time (WEIR_TS_NONE when it has none), and reads the
 * clock. `kg` is the key group the runtime computed (xxh3_64(key) % max
 * parallelism). `key` (at most 65000 bytes) is copied. Returns 0,
 * WEIR_EINVAL for a longer key, WEIR_ENOMEM, or WEIR_ESTATE from a hook
 * (a hook runs with its entry's key; it cannot move to another).
 */
int state_set_key(state_store *s, uint16_t kg, const void *key, size_t key_len,
                  int64_t ts);

/* Forgets the current key; access calls fail with WEIR_ESTATE until the next
 * state_set_key(). */
void state_clear_key(state_store *s);

/*
 * Prefetching for a batch of records. A lookup in the write-back cache costs
 * two dependent memory accesses (a table slot, then the entry it names);
 * when the runtime knows the keys of the records to come, it can start
 * both early, one stage per record:
 *
 *   state_prefetch_slots(s, kg, key, len, &hint[i + 2]);   two ahead
 *   state_prefetch_entries(s, &hint[i + 1]);               one ahead
 *   state_set_key(s, kg_i, key_i, ...); process record i
 *
 * The first computes the cache hashes of the key for the store's value and
 * list states (at most STATE_PREFETCH_STATES of them) into *hint and
 * prefetches their slots; the second reads those slots and prefetches the
 * entries. Both are hints only: they change nothing, cost nothing without a
 * cache, and may be skipped or given stale hints. Keys longer than
 * STATE_PREFETCH_KEY bytes are not prefetched. Store thread only.
 */
#define STATE_PREFETCH_STATES 4
#define STATE_PREFETCH_KEY    256
typedef struct state_hint {
    uint64_t h[STATE_PREFETCH_STATES];
    uint32_t n;
} state_hint;
void state_prefetch_slots(state_store *s, uint16_t kg, const void *key,
                          size_t key_len, state_hint *hint);
void state_prefetch_entries(state_store *s, const state_hint *hint);

/* Sets the watermark for event-time TTL (WEIR_WATERMARK_MIN until the first
 * one). A watermark lower than the current one is ignored. */
void state_set_watermark(state_store *s, int64_t watermark);

/* Processing time as of the last state_set_key() or state_sweep(). */
int64_t state_now(const state_store *s);

/* ------------------------------------------------------------------------ */
/* Access (current key). Thread: the subtask thread.                        */
/* ------------------------------------------------------------------------ */
/*
 * Bytes returned by a get stay valid until the next state call on the store
 * (any function of this header); they may be passed to that next call
 * (e.g. a put of the value just read). put functions copy their input. A
 * call on a state of the wrong kind fails with WEIR_EINVAL; without a
 * current key with WEIR_ESTATE. When an expired entry met on the way goes
 * through the hook and the hook fails, the call returns the hook's code.
 * Map user keys are at most 65000 bytes.
 */

/* WEIR_ENOTFOUND when absent (or expired, under never-return-expired). */
int state_value_get(weir_state *st, const void **value, size_t *len,
                    char **errptr);
int state_value_put(weir_state *st, const void *value, size_t len,
                    char **errptr);
/* Deleting an absent value is not an error. */
int state_value_delete(weir_state *st, char **errptr);

int state_map_get(weir_state *st, const void *ukey, size_t ukey_len,
                  const void **value, size_t *len, char **errptr);
int state_map_put(weir_state *st, const void *ukey, size_t ukey_len,
                  const void *value, size_t len, char **errptr);
int state_map_delete(weir_state *st, const void *ukey, size_t ukey_len,
                     char **errptr);
/*
 * Calls fn for each visible entry of the current key's map, in user-key byte
 * order, with cached writes included. fn returns 0 to go on, 1 to stop (then
 * map_iter returns 0), or a negative code, which map_iter returns. fn must
 * not call state functions. With read-and-write TTL, every visited entry is
 * refreshed after the iteration. Expired entries met (never-return-expired)
 * are removed after the iteration, after their hook.
 */
int state_map_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                   char **errptr);
/* Removes every entry of the current key's map (expired ones after their
 * hook). */
int state_map_clear(weir_state *st, char **errptr);

/* Appends one element; refreshes the list's stamp. With the cache the append
 * is amortised O(1); without it, it rewrites the list (O(list size)). */
int state_list_add(weir_state *st, const void *value, size_t len,
                   char **errptr);
/* Calls fn(arg, NULL, 0, element, len) per element in append order; same
 * return rules as state_map_iter(). */
int state_list_iter(weir_state *st, weir_map_iter_fn fn, void *arg,
                    char **errptr);
int state_list_clear(weir_state *st, char **errptr);

/* ------------------------------------------------------------------------ */
/* Maintenance (subtask thread, between records, never from a hook)         */
/* ------------------------------------------------------------------------ */

/*
 * Processes at most `budget` due entries of the expiry index (stamp <= now
 * for processing time, <= watermark for event time), in stamp order: each is
 * expired (hook, then delete), re-indexed (refreshed since) or dropped
 * (gone). Reads the clock first. Also queues the periodic compaction when
 * compact_interval_ms has passed. Leaves no current key. Returns the number
 * of index entries processed (< budget: nothing more is due now), the number
 * of entries expired in *n_expired (may be NULL), or a negative code (a hook
 * error included; the entry in hand stays for the next sweep).
 */
int state_sweep(state_store *s, size_t budget, size_t *n_expired,
                char **errptr);

/*
 * Writes every dirty cache entry to RocksDB (one write batch per 4096
 * entries) and flushes every column family's memtable, waiting for it. After
 * it, the directory holds every write (call before a snapshot: with the WAL
 * off, unflushed memtables would be missing from it). Cached entries stay,
 * clean.
 */
int state_flush(state_store *s, char **errptr);

/*
 * state_flush() then rocksdb_checkpoint_create() into `dir`, which must not
 * exist (its parent must). The result is a directory state_store_open() can
 * open (after copying it elsewhere, if the checkpoint is to be kept intact).
 */
int state_checkpoint(state_store *s, const char *dir, char **errptr);

/*
 * A checkpoint whose synchronous part does not depend on the write-back
 * cache: flushes the memtables (not the cache), creates the RocksDB
 * checkpoint in `dir`, and writes the cache's dirty entries (values and
 * deletions not yet in RocksDB) to the file `delta` (fsync'ed), sequentially
 * and without touching RocksDB; they stay dirty in the cache. The RocksDB
 * checkpoint with the delta applied on top is the store's content at the
 * time of the call: open it with state_store_config.restore_delta. Without a
 * cache, or with no dirty entry, no delta file is written and *wrote_delta
 * is 0. A full disk (under the store or under `dir`, see "Full disks")
 * fails with FS_ENOSPC; a delta file that could not be written is removed.
 *
 * Delta format (integers big-endian): "WSD1", then per entry: state id (2),
 * flags (1: 1 = deletion), key length (4), key, and for a value: expiry
 * stamp (8), value length (4), value.
 */
int state_checkpoint_delta(state_store *s, const char *dir, const char *delta,
                           int *wrote_delta, char **errptr);

/* Full, blocking manual compaction of every state column family and of the
 * index (after state_flush()). For tests and offline tools, not the data
 * path. */
int state_compact(state_store *s, char **errptr);

/* Exact number of RocksDB records of `st` (after writing the cache out), or
 * of the expiry index when st is NULL. O(records); for tests and tools. */
int state_scan_count(state_store *s, weir_state *st, uint64_t *out,
                     char **errptr);

/* ------------------------------------------------------------------------ */
/* Statistics and leak detection                                             */
/* ------------------------------------------------------------------------ */

typedef struct state_stats {
    const char *name; /* the state's name; owned by the state */
    weir_state_kind kind;
    int has_ttl;            /* 0: declared WEIR_TTL_NONE (a leak risk) */
    int64_t ttl_ms;         /* WEIR_TTL_NONE or > 0 */
    int hook;               /* expired entries go through the hook */
    uint64_t est_keys;      /* estimated records, as of the last sample */
    uint64_t live_bytes;    /* estimated bytes, as of the last sample */
    uint64_t expired_read;  /* removed on access: a read under never-return-
                               expired, or a write over an expired entry of
                               a hooked state */
    uint64_t expired_sweep; /* removed by the sweep */
    uint64_t expired_compaction; /* dropped by the compaction filter */
    uint64_t hook_calls;         /* calls of the expiry hook */
    uint32_t growth_streak;      /* consecutive samples with growth */
    int leak_suspected;          /* no TTL and growth_streak >= N */
} state_stats;

typedef struct state_store_stats {
    uint64_t cache_hits, cache_misses;
    uint64_t cache_evictions;       /* entries evicted */
    uint64_t cache_writes;          /* dirty entries written to RocksDB */
    uint64_t cache_used;            /* entries in the cache now */
    uint64_t index_puts;            /* expiry index entries written */
    uint64_t sweep_visited;         /* index entries processed by sweeps */
    uint64_t sweep_stale;           /* of those, dropped or re-indexed */
    uint64_t compactions_scheduled; /* periodic compactions queued */
    uint64_t compactions_done;      /* ... and finished */
} state_store_stats;

/*
 * Samples every declared state: reads the RocksDB properties, adds the
 * cache's unwritten creations and deletions (a scan of the cache), and runs
 * the leak detector: a state without TTL whose estimated key count grew
 * since the previous sample leak_samples times in a row gets leak_suspected
 * and one WARN log line naming the store, the state and the growth; a
 * sample without growth clears it. Cost: a few property reads per state and
 * one pass over the cache; call it every few seconds or at checkpoints.
 */
int state_stats_sample(state_store *s, char **errptr);

/* The declared states, in declaration order. */
size_t state_count(const state_store *s);
weir_state *state_at(const state_store *s, size_t i);

/* Copies the state's statistics (sizes as of the last sample, counters
 * current). */
void state_stats_get(const weir_state *st, state_stats *out);
void state_store_stats_get(const state_store *s, state_store_stats *out);

/* ------------------------------------------------------------------------ */
/* Private to host/state: hooks for timers.c                                 */
/* ------------------------------------------------------------------------ */

/* The current key as the store encodes it, key group (2) | varint(len) |
 * key, with its length in *len; NULL without a current key. Inside an
 * expiry hook: the hooked entry's key. Valid until the next state call. */
const char *state_key_bytes(const state_store *s, size_t *len);
/* Nonzero while an expiry hook runs. */
int state_in_hook(const state_store *s);
/* The store's timer service (state/timers.h), created at open. */
struct state_timers *state_timers_of(const state_store *s);

/* ------------------------------------------------------------------------ */
/* Private to host/state: hooks for state_admin.c                            */
/* ------------------------------------------------------------------------ */
/*
 * state_admin.c (state_admin.h) edits a state's RocksDB entries directly,
 * in write batches, and needs the store's handles and a few cache
 * operations. All of these run on the subtask thread, between records (no
 * current key), never from a hook.
 */

struct rocksdb_t;
struct rocksdb_column_family_handle_t;

/* What state_admin.c reads of a state and its store. */
typedef struct state_raw {
    struct rocksdb_t *db;
    struct rocksdb_column_family_handle_t *cf;      /* the state's entries */
    struct rocksdb_column_family_handle_t *idx_cf;  /* the expiry index */
    struct rocksdb_column_family_handle_t *meta_cf; /* metadata (default) */
    const char *store_name;                         /* for messages */
    uint16_t id;                                    /* persistent state id */
    weir_state_kind kind;
    int has_ttl;
    int64_t ttl_ms; /* WEIR_TTL_NONE or > 0 */
    weir_time_domain domain;
    int64_t now; /* the clock, read by this call (and published) */
    int64_t wm;  /* the watermark */
    int in_hook; /* nonzero while an expiry hook runs */
} state_raw;

/* Fills *out; reads the clock. */
void state_raw_get(weir_state *st, state_raw *out);

/* Tells the store that state_admin.c wrote entries or index entries behind
 * its back: forgets the cache-off memo, restarts the sweep from the front
 * of the index. */
void state_raw_written(state_store *s);

/* Changes the TTL settings of `st` in memory (ttl_ms > 0 or WEIR_TTL_NONE;
 * update rule and visibility stay as declared) and restarts its leak
 * detector. The compaction filter follows the new settings only after
 * state_filter_enable(st, 1); state_set_ttl() leaves its mode alone. */
void state_set_ttl(weir_state *st, int64_t ttl_ms, weir_time_domain domain);

/* on = 0: the compaction filter keeps every entry of `st` (while its
 * stamps are rewritten into another time domain); on = 1: it drops
 * expired entries as the state's current settings say. */
void state_filter_enable(weir_state *st, int on);

/* The new stamp of an entry whose stamp is `stamp` (state_cache_restamp). */
typedef int64_t (*state_restamp_fn)(void *arg, int64_t stamp);

/*
 * Gives every entry of `st` in cache slots [*slot, *slot + n) (deletions
 * excepted) the stamp fn(arg, stamp); an entry whose stamp changes becomes
 * dirty and gets an index entry at its new stamp (in the state's current
 * domain) when that is earlier than its lowest one, or always with
 * `reindex`. Advances *slot and adds the number of changed entries to
 * *changed. Slots are stable while an entry lives, so a pass in several
 * calls meets every entry that stayed in the cache meanwhile. Returns 1
 * when *slot reached the end of the cache (at once without a cache), 0
 * when slots are left, or WEIR_EIO/WEIR_ENOMEM.
 */
int state_cache_restamp(weir_state *st, uint32_t *slot, uint32_t n,
                        state_restamp_fn fn, void *arg, int reindex,
                        uint64_t *changed, char **errptr);

/*
 * state_admin.c is about to give RocksDB's copy of entry `ek` (the encoded
 * entry key) of `st` the stamp `stamp`, and writes an index entry at it.
 * Returns 1 when the cache holds a dirty copy or a deletion of the entry,
 * which will replace RocksDB's (the caller then leaves RocksDB's copy
 * alone); otherwise 0, after a clean cached copy took the stamp.
 */
int state_cache_restamp_key(weir_state *st, const char *ek, size_t eklen,
                            int64_t stamp);

/* Writes the cached changes of `st` to RocksDB and drops every cached
 * entry of `st`, so that RocksDB alone holds its entries. */
int state_cache_detach(weir_state *st, char **errptr);

/* Fails with FS_ENOSPC (message in *errptr) when the store's file system
 * has less than `need` bytes plus state.min_free_space available, before
 * state_admin.c writes about that much (as the store's own writes do). */
int state_space_check(state_store *s, uint64_t need, const char *what,
                      char **errptr);

/* A pointer owned by state_admin.c, NULL at open; state_store_close()
 * frees it with state_admin_free() (state_admin.h). */
void **state_admin_slot(state_store *s);

#endif
