/*
 * keyed.h - a subtask's keyed state and timers, on top of state/state.h.
 *
 * A keyed subtask (its operator has WEIR_OP_KEYED) gets a state store the
 * first time its plugin declares a state: one RocksDB instance in
 * <state.dir>/<job>/<op id>/<index>, fresh for a new run or rebuilt from the
 * checkpoint being restored. Before each record the runtime makes the
 * record's key current (keyed_set_key); between batches it sweeps expired
 * state (keyed_sweep), whose expiry hook calls the plugin's
 * on_state_expired() with that entry's key current.
 *
 * Private to runtime/. Thread: the subtask's thread.
 */
#ifndef WEIR_HOST_KEYED_H
#define WEIR_HOST_KEYED_H

#include "runtime/task.h"
#include "state/state_admin.h"

/* Opens the task's store if it is not open yet. Errors: WEIR_ESTATE for an
 * operator that is not keyed, or the store's own error (message in
 * t->error). */
int keyed_open(task *t);

/*
 * After open() and restore(), before any record: migrates every declared
 * state whose entries were written with another format version than the
 * one declared now (state_migrate(), calling the operator's migrate_state
 * with the entry's key current; emitting is refused meanwhile). A state
 * with entries under another version and an operator without the hook, or
 * a hook that fails, fails the job with RT_ERESTORE and a message naming
 * operator, state and both versions (not restarted: a restore from that
 * checkpoint would fail again). A state without entries just takes the
 * declared version. Returns 0 or a negative code after failing the task.
 */
int keyed_migrate(task *t);

/* Makes the record's key current for state and timers (no-op without a
 * store). */
int keyed_set_key(task *t, const weir_record *rec);
/* Forgets the current key. */
void keyed_clear_key(task *t);

/*
 * Prefetching along a batch (state.h, state_prefetch_slots): called by the
 * record loop right after wire_next() returned record i, with a ring of two
 * hints that starts zeroed. Starts the cache slot loads of record i + 2 and
 * the entry loads of record i + 1, so that neither waits for memory when
 * its turn comes. Hints only; a no-op without a store.
 */
void keyed_prefetch(task *t, const wire_reader *r, uint64_t i,
                    state_hint ring[2]);

/* Tells the store about a new watermark (event-time TTL). */
void keyed_set_watermark(task *t, int64_t wm);

/* Expires due state (at most the configured sweep batch; with `all`, until
 * nothing is due) and samples leak statistics every few seconds. Returns 0
 * or a negative code after failing the task. */
int keyed_sweep(task *t, int all);

/* Fires due timers of `domain` (event time: up to the watermark `limit`;
 * processing time: up to now), calling the plugin's on_timer with the
 * timer's key current, until none is due (timers registered meanwhile at or
 * before `limit` included). Returns 0 or a negative code after failing the
 * task. */
int keyed_fire_timers(task *t, weir_time_domain domain, int64_t limit);

/* Registers or deletes a timer for the current key. */
int keyed_timer(task *t, int reg, weir_time_domain domain, int64_t ts);

/* Flushes the store and writes a RocksDB checkpoint into `dir`. */
int keyed_snapshot(task *t, const char *dir);

/* Closes the store (after the plugin's close); requests still in the
 * mailbox are answered as not applied. */
void keyed_close(task *t);

/* ------------------------------------------------------------------------ */
/* Live state changes (weir ctl TARGET state ...)                            */
/* ------------------------------------------------------------------------ */
/*
 * A change of one declared state on every subtask of one keyed operator: a
 * TTL override or a purge (state/state_admin.h). The control endpoint
 * creates it, posts it into the mailbox of each subtask (keyed_admin_post)
 * and then asks for a checkpoint. Each subtask takes what its mailbox holds
 * at the next checkpoint barrier it processes, before it snapshots
 * (keyed_admin_apply, from task_checkpoint), so the change is part of that
 * checkpoint (or of an earlier one in flight, which the requested one
 * follows). The subtask records what it did in its part; the endpoint reads
 * the parts once the checkpoint completed. A TTL rewrite left over by its
 * time budget goes on between records (keyed_sweep).
 *
 * Ownership: reference counted; the creator holds one reference, each post
 * takes one, which the subtask drops after applying it (or when its store
 * closes first). Thread: keyed_admin_new/post/part_get/release from any
 * thread; keyed_admin_apply on the subtask's thread.
 */
typedef enum keyed_admin_kind {
    KEYED_ADMIN_TTL = 1,
    KEYED_ADMIN_PURGE
} keyed_admin_kind;

/* What one subtask did with the change. */
typedef struct keyed_admin_part {
    int done;            /* applied, or failed */
    int rc;              /* 0, or the negative code of the failure */
    char error[256];     /* its message */
    uint64_t checkpoint; /* id of the barrier it was applied at */
    state_admin_result res;
} keyed_admin_part;

typedef struct keyed_admin {
    pthread_mutex_t lock; /* guards refs and parts */
    int refs;
    keyed_admin_kind kind;
    char state[65];
    int64_t ttl_ms; /* TTL: > 0 */
    weir_time_domain domain;
    state_purge_mode mode; /* purge */
    char *prefix;
    size_t prefix_len;
    int64_t older_ms;
    uint32_t n;              /* subtasks of the operator */
    keyed_admin_part *parts; /* by subtask index */
} keyed_admin;

/* A change of `state` for an operator of n subtasks, with one reference;
 * NULL when out of memory. The caller fills the kind's fields (prefix is
 * malloc'ed and owned by the change). */
keyed_admin *keyed_admin_new(keyed_admin_kind kind, const char *state,
                             uint32_t n);
void keyed_admin_release(keyed_admin *a);

/* Puts `a` into t's mailbox. WEIR_ESTATE when the subtask's store has
 * closed (the subtask ended). */
int keyed_admin_post(task *t, keyed_admin *a);

/* Copies the part of subtask `index`. */
void keyed_admin_part_get(keyed_admin *a, uint32_t index,
                          keyed_admin_part *out);

/* Applies the mailbox's changes at barrier `id` (subtask thread). A change
 * that fails (unknown state, RocksDB error) is recorded in its part and
 * logged; the subtask goes on. */
void keyed_admin_apply(task *t, uint64_t id);

#endif
