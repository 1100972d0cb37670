/*
 * state_ttl.h - private to host/state: expiry.
 *
 * state_ttl.c implements the TTL model of state.h: stamps, the expiry index
 * ("__expiry"), expiry of entries met on access and the expiry hook, the
 * sweep (state_sweep()), the compaction filter and the periodic compaction
 * on the env's thread, and the TTL changes state_admin.c makes
 * (state_set_ttl(), state_filter_enable(), state_raw_written()). It works
 * on entries through state_store.h and never touches RocksDB's state column
 * families itself, except through the filter.
 *
 * Threads: the store's thread, except the compaction filter (RocksDB's
 * background threads, reading the published times and the filter mode
 * atomically) and the periodic compaction (the env's thread, under env->mu
 * for its queue). Errors: 0 or a negative WEIR_E* code with a message in
 * *errptr; a failing hook's code is returned as is.
 */
#ifndef WEIR_HOST_STATE_TTL_H
#define WEIR_HOST_STATE_TTL_H

#include "state/state_internal.h"

/* Whether an entry of `st` with this stamp is expired now (processing
 * time) or at the watermark (event time). Never for a state without TTL. */
int sttl_is_expired(const state_store *s, const weir_state *st, int64_t stamp);

/* The stamp an entry of `st` written now gets (state.h, "TTL"). */
int64_t sttl_new_stamp(const state_store *s, const weir_state *st);

/* Whether expired entries of `st` go through the expiry hook. */
int sttl_hook_on(const state_store *s, const weir_state *st);

/* Builds in s->ibuf the expiry index key of entry key k at `stamp`
 * (state.h, "Layout"); -1 when out of memory. */
int sttl_idx_key(state_store *s, const weir_state *st, int64_t stamp,
                 const char *k, size_t klen);

/* Adds an index entry at `stamp` for the entry at kbuf. */
int sttl_idx_put(state_store *s, const weir_state *st, int64_t stamp,
                 char **errptr);

/* Gives the loaded entry e a new stamp (read-and-write refresh). */
int sttl_ent_touch(state_store *s, const weir_state *st, ent *e, char **errptr);

/*
 * The loaded entry e at kbuf is expired. Hands it to the hook when the state
 * wants one (not from inside a hook: then it is left for the sweep), then
 * deletes it unless the hook gave it a fresh stamp. Counts a removal in
 * *counter. Returns EXP_GONE, EXP_REFRESHED, EXP_LEFT or a negative code.
 */
int sttl_expire_entry(state_store *s, weir_state *st, const ent *e,
                      uint64_t *counter, char **errptr);

/*
 * Loads the entry at kbuf for reading. An expired entry under
 * never-return-expired is expired on the spot (hook, delete): *e then shows
 * what is left, usually nothing. `visible` tells whether e may be returned.
 */
int sttl_ent_read(state_store *s, weir_state *st, ent *e, char **errptr);

/* Before a write or delete of a hooked state: an expired entry about to be
 * replaced goes through the hook first. */
int sttl_pre_write(state_store *s, weir_state *st, char **errptr);

/* Reads the clock into s->now and publishes it to the compaction filter. */
void sttl_publish_now(state_store *s);

/* Before closing s: drops its queued compactions and stops a running one. */
void sttl_compact_cancel(state_store *s);

/* Creates the filter of a state column family and sets it in `opts`. */
int sttl_filter_new(state_store *s, rocksdb_options_t *opts, state_cfh *cfh);

#endif
