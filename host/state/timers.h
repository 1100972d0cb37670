/*
 * timers.h - per-key timers kept in the subtask's state store.
 *
 * Model
 * -----
 * A timer belongs to a key (the store's current key, state_set_key()), a
 * time domain (processing or event time) and a time ts in ms. Registering
 * the same (key, domain, ts) twice keeps one timer. The runtime fires due
 * timers: event-time timers with ts <= the new watermark (before
 * on_watermark sees it), processing-time timers with ts <= now. Timers live
 * in the store's RocksDB instance, so every state_checkpoint() holds them
 * and a store reopened or restored from a checkpoint has them back, with
 * no rebuild: processing-time timers that came due while the job was down
 * are simply due at the first check.
 *
 * Layout on disk: column family "__timers" (created at open, like the
 * expiry index "__expiry"), written with the WAL off like the rest of the
 * state (state_flush() flushes it with every other column family):
 *   key:   domain (1: 0 processing, 1 event) | ts (8, big-endian with the
 *          sign bit flipped, so that byte order = numeric order) | key group
 *          (2, big-endian) | varint(len) | key
 *   value: empty
 * The part after ts is the current key exactly as the state keys store it.
 * Timers of one domain therefore sort by (ts, key group, key), where keys
 * compare as stored: shorter keys first (the length comes first), then
 * bytewise. That is the firing order.
 *
 * Costs. state_timer_next() reads a number kept in memory: the earliest
 * pending ts per domain, computed at open (one seek per domain), lowered by
 * a register, recomputed (one seek) when the earliest timer is deleted, and
 * known after every fire. A store with pending timers that are not due
 * costs one comparison per check. state_timer_register() and
 * state_timer_delete() are one RocksDB write each. state_timer_fire() reads
 * due timers in chunks (at most 256 keys or 64 KiB of keys per iterator
 * seek; this bounds its memory) and writes the removals as one batch per
 * chunk.
 *
 * Tombstones. A fired timer is deleted, which leaves a tombstone at the
 * front of the domain's key range. The service remembers, per domain, a
 * lower bound below which no timer is pending (just past the last fired
 * one; lowered by a register below it) and seeks there with
 * iterate_lower_bound set, so it never walks over the tombstones of earlier
 * fires. Range deletions are not used: a timer may be registered inside a
 * fired range while the fire runs, and range tombstones slow every later
 * read of the range. The "__timers" column family instead has RocksDB's
 * compact-on-deletion collector: an SST file dense with tombstones is
 * marked for compaction and compacted in the background, which drops the
 * tombstones with the entries they cover. After a reopen the lower bound
 * starts at the domain's first key, so the first seek may pass tombstones
 * that were not compacted yet (once).
 *
 * Threading: the subtask thread, like the store. Not from an expiry hook,
 * except register and delete (for the hook's key).
 *
 * Errors: 0 (or a count) or a negative WEIR_E* code with a message in
 * *errptr (err.h). WEIR_ESTATE: no current key, or a call from the wrong
 * place; WEIR_EINVAL: an unknown domain; WEIR_EIO: RocksDB failed.
 */
#ifndef WEIR_HOST_STATE_TIMERS_H
#define WEIR_HOST_STATE_TIMERS_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"

#include "weir/weir.h"

/*
 * Registers a timer for the current key at (d, ts); any ts is allowed
 * (ts = INT64_MAX is pending but indistinguishable from "none" in
 * state_timer_next()). Registering an existing timer again keeps one. May
 * be called from a timer callback and from an expiry hook (for its key).
 */
int state_timer_register(state_store *s, weir_time_domain d, int64_t ts,
                         char **errptr);

/* Deletes the current key's timer at (d, ts); deleting an absent timer is
 * not an error. Same places as register. */
int state_timer_delete(state_store *s, weir_time_domain d, int64_t ts,
                       char **errptr);

/*
 * The earliest pending timer time of domain d, INT64_MAX when there is none
 * (or d is unknown). O(1): no RocksDB access. Exact between calls of this
 * header's functions; inside a timer callback it may be earlier than the
 * earliest pending timer (never later).
 */
int64_t state_timer_next(const state_store *s, weir_time_domain d);

/*
 * A due timer. `key` (key_len bytes, valid during the call) is the timer's
 * key, which is also the store's current key; `ts` its time. Return 0 (or
 * any value >= 0) to go on, a negative code to stop the fire.
 */
typedef int (*state_timer_fn)(void *arg, weir_time_domain d, int64_t ts,
                              const void *key, size_t key_len);

/*
 * Fires up to `budget` timers of domain d with ts <= limit, in (ts, key
 * group, key) order. For each: the timer is removed first, then its key is
 * made current (state_set_key(kg, key, ts) for event time, so that
 * event-time TTL counts from the timer's time; with WEIR_TS_NONE for
 * processing time, whose ts is not an event time), then fn is called. fn
 * may use state and register or delete timers, for its own key too: a
 * timer registered at ts <= limit during the call fires in this call or,
 * when the budget ran out, in the next one (a callback that always
 * re-registers at its own ts thus loops until the budget is spent, every
 * call). fn must not call state_timer_fire, state_sweep, state_flush or
 * state_set_key.
 *
 * Returns the number of timers fired: less than budget means nothing more
 * is due now. On a negative code from fn, returns that very code (and a
 * message in *errptr): the timer in hand is already removed, the others
 * stay. A failing on_timer fails the subtask; after the restore, the timer
 * fires again, because the restored checkpoint (taken before the fire)
 * still has it. Other errors: WEIR_EIO, WEIR_ENOMEM, WEIR_ESTATE when
 * called from a timer callback or an expiry hook. Leaves no current key.
 */
int state_timer_fire(state_store *s, weir_time_domain d, int64_t limit,
                     size_t budget, state_timer_fn fn, void *arg,
                     char **errptr);

/* Exact number of pending timers, both domains. O(timers); for statistics
 * and tests. */
int state_timer_count(state_store *s, uint64_t *out, char **errptr);

typedef struct state_timer_stats {
    uint64_t registered;  /* state_timer_register() calls */
    uint64_t deleted;     /* state_timer_delete() calls that wrote */
    uint64_t fired;       /* callbacks made */
    uint64_t seeks;       /* RocksDB iterator seeks */
    uint64_t dropped;     /* malformed keys found and removed */
    uint64_t buffer_peak; /* most key bytes held by one fire chunk */
    int64_t next[2];      /* state_timer_next() per domain */
} state_timer_stats;

void state_timer_stats_get(const state_store *s, state_timer_stats *out);

/* ------------------------------------------------------------------------ */
/* Private to host/state: called by state_store.c                            */
/* ------------------------------------------------------------------------ */

#define STATE_TIMER_CF "__timers"

struct rocksdb_t;
struct rocksdb_column_family_handle_t;
struct rocksdb_options_t;
typedef struct state_timers state_timers;

/* Tunes the options of the "__timers" column family (a copy of the plain
 * column family options). */
void state_timer_cf_options(struct rocksdb_options_t *o);

/* Creates the store's timer service on the open RocksDB instance `db`,
 * whose "__timers" column family is `cf` (both outlive the service), and
 * reads the earliest timer of each domain. `name` is copied, for
 * messages. */
int state_timer_attach(struct rocksdb_t *db,
                       struct rocksdb_column_family_handle_t *cf,
                       const char *name, state_timers **out, char **errptr);

/* Frees the service (before RocksDB is closed). NULL is a no-op. */
void state_timer_detach(state_timers *t);

#endif
