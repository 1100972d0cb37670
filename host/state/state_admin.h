/*
 * state_admin.h - live administration of keyed state: TTL overrides and
 * purges of a running subtask's states (`weir ctl TARGET state ...`).
 *
 * TTL override
 * ------------
 * state_admin_set_ttl() gives a declared state a TTL (ttl_ms > 0, in the
 * processing-time or event-time domain) in place of the one its operator
 * declared, WEIR_TTL_NONE included. The update rule and the visibility stay
 * as declared. Existing entries follow, with base = the processing clock
 * (processing time) or the watermark (event time) when the entry is
 * rewritten and cap = base + ttl_ms:
 *   - an entry without expiry, or whose stamp is later than cap, gets cap;
 *   - an entry with an earlier stamp keeps it;
 *   - when the state had a TTL in the other time domain, every entry gets
 *     cap (its old stamp means nothing in the new domain).
 * Each rewritten entry gets an expiry index entry at its new stamp, so the
 * sweep finds it and expires it as usual: through the expiry hook when the
 * operator has one (the hook fires from then on for states declared
 * without TTL too), or by deletion; the compaction filter drops expired
 * entries of states without hook. Entries held by the write-back cache are
 * rewritten in the cache.
 *
 * The override is stored in the store's metadata (default column family,
 * key "weir.ttl.<state name>"), so it is part of every checkpoint taken
 * after it and of the directory a restore rebuilds; state_declare() calls
 * state_admin_declared(), which applies a stored override over what the
 * plugin declares and logs that it is in force. A later override replaces
 * an earlier one.
 *
 * Bounded pause. Rewriting the existing entries is a pass over the state's
 * entries in the write-back cache (by cache slot: slots are stable while an
 * entry lives), then a scan of its RocksDB entries. State_admin_set_ttl()
 * stores the override, then works in steps of STATE_ADMIN_BATCH slots or
 * entries until it is done or `budget_ns` has passed; what is left is done
 * by state_admin_step(), which the subtask calls between records, step by
 * step. Each RocksDB step writes its entries together with its progress
 * (the last key rewritten) in one RocksDB write batch, so that a checkpoint
 * or a restore in the middle continues where the rewrite stood (a restore
 * starts with an empty cache, so only the RocksDB scan remains). Entries
 * met before the pass reaches them keep their old stamps a little longer:
 * an entry without expiry is alive. A rewrite is spread over steps only in
 * the processing-time domain without a change of domain: there, an entry
 * written after the override already has a stamp <= now + ttl_ms, so
 * rewriting it later changes nothing. In the event-time domain (a record's
 * stamp may lie ahead of the watermark) and on a change of domain, the
 * whole rewrite runs within the call, whatever the budget.
 *
 * Purge
 * -----
 * state_admin_purge() removes, within the call, every entry of a state
 * whose record key starts with a prefix, every entry, or every entry older
 * than a duration. Entries carry no write time (state.h: a value is its
 * expiry stamp and its bytes), so the age is derived from the stamp and is
 * defined only for a state with a TTL (an override counts): an entry is
 * older than D when stamp - ttl_ms < base - D, which for the update rule
 * on-create-and-write is its last write (on-read-and-write: its last
 * access; an entry rewritten by a TTL change counts as written at the
 * change). A purge never calls the expiry hook: removed entries are gone,
 * not expired. Index entries and timers of removed keys stay (the sweep
 * drops the index entries; timers still fire).
 *
 * Counts (state_admin_result) are of RocksDB entries: one per key for value
 * and list state, one per (key, map key) for map state.
 *
 * Threading: every function runs on the thread that uses the store (the
 * subtask thread), between records, never from an expiry hook (WEIR_ESTATE
 * then). Errors: 0 or a negative WEIR_E* code with a message in *errptr
 * (WEIR_EINVAL for bad arguments, WEIR_EIO when RocksDB fails, FS_ENOSPC,
 * before anything is written, when the disk has less room than about the
 * state's size plus state.min_free_space).
 */
#ifndef WEIR_HOST_STATE_ADMIN_H
#define WEIR_HOST_STATE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "state/state.h"

/* Entries read per batch of a rewrite or purge. */
#define STATE_ADMIN_BATCH 4096

/* What one call did. */
typedef struct state_admin_result {
    uint64_t scanned;   /* entries read */
    uint64_t rewritten; /* entries given a new stamp (in RocksDB or cache) */
    uint64_t purged;    /* entries removed */
    uint64_t purged_expired; /* of those, already expired */
    int pending;             /* the TTL rewrite goes on in state_admin_step() */
    int64_t pause_ns;        /* time the call took */
} state_admin_result;

/* Sets a TTL override on `st` and rewrites its existing entries as above,
 * for up to budget_ns (0: within the call). */
int state_admin_set_ttl(weir_state *st, int64_t ttl_ms, weir_time_domain domain,
                        int64_t budget_ns, state_admin_result *res,
                        char **errptr);

/* Continues pending TTL rewrites of the store by one batch of up to
 * `budget` entries. Returns the entries read (0: nothing is pending). */
int state_admin_step(state_store *s, size_t budget, char **errptr);

typedef enum state_purge_mode {
    STATE_PURGE_ALL = 0,
    STATE_PURGE_PREFIX, /* record keys that start with `prefix` */
    STATE_PURGE_OLDER   /* entries older than older_ms (needs a TTL) */
} state_purge_mode;

/* Removes entries of `st` now, as above. WEIR_EINVAL for
 * STATE_PURGE_OLDER on a state without TTL. */
int state_admin_purge(weir_state *st, state_purge_mode mode, const void *prefix,
                      size_t prefix_len, int64_t older_ms,
                      state_admin_result *res, char **errptr);

/* The TTL settings of a state: as declared and as in force. */
typedef struct state_admin_info {
    int64_t declared_ttl_ms; /* WEIR_TTL_NONE or > 0 */
    weir_time_domain declared_domain;
    int override;            /* an override is in force */
    int64_t ttl_ms;          /* in force: WEIR_TTL_NONE or > 0 */
    weir_time_domain domain; /* in force */
    int64_t set_ms;          /* when the override was set (processing) */
    int rewrite_pending;     /* its rewrite of existing entries goes on */
    uint64_t rewritten;      /* entries it rewrote so far in this run */
} state_admin_info;

void state_admin_info_get(weir_state *st, state_admin_info *out);

/* For state_meta.c: called by state_declare() for every declared state; applies
 * a stored override (and logs it). */
int state_admin_declared(weir_state *st, char **errptr);
/* For state_store.c: frees what state_admin keeps for the store. */
void state_admin_free(state_store *s);

#endif
