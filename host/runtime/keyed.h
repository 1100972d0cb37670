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

/* Opens the task's store if it is not open yet. Errors: WEIR_ESTATE for an
 * operator that is not keyed, or the store's own error (message in
 * t->error). */
int keyed_open(task *t);

/* Makes the record's key current for state and timers (no-op without a
 * store). */
int keyed_set_key(task *t, const weir_record *rec);
/* Forgets the current key. */
void keyed_clear_key(task *t);

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

/* Closes the store (after the plugin's close). */
void keyed_close(task *t);

#endif
