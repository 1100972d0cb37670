/*
 * evh.h - a fake Weir host with keyed state, timers and watermarks, for
 * driving the event-time plugins (window, pattern) directly in tests.
 *
 * Test scaffolding only: the real host (host/runtime, host/state) replaces
 * all of this. It dlopen()s a plugin, validates parameters against the
 * operator's table the way the topology loader does (ANY parameters are
 * given as JSON text and handed to the plugin as msgpack), and implements
 * the services of weir.h that the plugins use:
 *   - emit (captured into an array), output_port, log and set_error
 *     (captured), a fake processing clock;
 *   - keyed value, map and list state in memory, per (state, key); map
 *     iteration in bytewise order of the user keys. TTLs are recorded but
 *     not applied: every state the event-time plugins declare is
 *     WEIR_TTL_NONE (timers clean up), and a test checks that;
 *   - event-time timers per key (same key and time coalesce), fired by
 *     evh_watermark() in (time, key) order, including timers registered
 *     while firing when they are due, then on_watermark();
 *   - counters (metric_register), readable by the test.
 * It enforces the contract: state and timers only with a current key, no
 * state call from a map_iter callback, bytes returned by a get are freed at
 * the next state call (so a plugin that keeps them shows up under ASan),
 * strings of parameters come without a terminating NUL.
 *
 * Faults: evh_fail_state_after(h, n) makes every state call after the next
 * n fail with WEIR_EIO; emit_rc and timer_rc make emit and timer_register
 * fail with that code.
 */
#ifndef WEIR_TESTS_EVH_H
#define WEIR_TESTS_EVH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fake_params.h"

#include "weir/weir.h"

/* One parameter as written in YAML (ANY: as JSON text); a list ends with
 * {NULL, NULL}. */
typedef fp_param evh_param;

/* An emitted record (copies; key and value have a NUL after their bytes,
 * for printing). */
typedef struct evh_rec {
    uint32_t port;
    char *key;
    size_t key_len;
    int64_t ts;
    char *value;
    size_t value_len;
    int64_t watermark; /* the watermark when it was emitted */
} evh_rec;

typedef struct evh evh;

/* Loads operator `op` of plugin `so` and validates `params` (may be NULL).
 * Parameter errors are returned by evh_open() with the message in
 * evh_error(). Fails the test when the plugin cannot be loaded. */
evh *evh_new(const char *so, const char *op, const evh_param *params);
/* Replaces the value of ANY parameter `name` (already given, e.g. as
 * "null") by the msgpack bytes mp[0..len), e.g. from the topology loader. */
void evh_set_param_mp(evh *h, const char *name, const void *mp, size_t len);
/* Without metric_register (the wrapper then returns WEIR_ENOTSUP). */
void evh_disable_metrics(evh *h);
/* Validates parameters like the host, then calls open(). */
int evh_open(evh *h);
/* Like a restart from a checkpoint with a new configuration: close()s the
 * instance, validates `params` against the operator's table and open()s a
 * new instance that sees the same keyed state, timers and watermark.
 * Returns what evh_open() returns. */
int evh_reopen(evh *h, const evh_param *params);
/* Overwrites the stored bytes of value state `state` (or, with ukey, of that
 * map entry) of `key`, e.g. to corrupt it. The state must be declared. */
void evh_state_set(evh *h, const char *state, const char *key, const void *ukey,
                   size_t ukey_len, const void *value, size_t len);
/* process() with `key` as the current key. */
int evh_process(evh *h, const char *key, int64_t ts, const void *value,
                size_t value_len);
/* Same with a JSON object as the value (converted to msgpack). */
int evh_process_json(evh *h, const char *key, int64_t ts, const char *json);
/* Advances the watermark to `wm` (ignored when not higher): fires every
 * event-time timer at or before it in (time, key) order, then
 * on_watermark(). Returns the first negative code of a callback. */
int evh_watermark(evh *h, int64_t wm);
/* finish() when the operator has one. */
int evh_finish(evh *h);
/* close() (once) and frees everything. */
void evh_free(evh *h);

/* Emitted records, in emission order. */
size_t evh_n_out(const evh *h);
const evh_rec *evh_out(const evh *h, size_t i);
void evh_clear_out(evh *h);
/* The last set_error message, or "". */
const char *evh_error(const evh *h);
/* Number of log lines at `level` or more severe that contain `needle`. */
size_t evh_count_logs(const evh *h, weir_log_level level, const char *needle);

/* Pending event-time timers (all keys) and stored entries (all states). */
size_t evh_n_timers(const evh *h);
size_t evh_n_entries(const evh *h);
/* Number of declared states, and the descriptor of state i. */
size_t evh_n_states(const evh *h);
const weir_state_desc *evh_state_desc(const evh *h, size_t i);
/* Value of counter `name` with the label (label_value NULL for none); -1
 * when no such counter was registered. */
int64_t evh_counter(const evh *h, const char *name, const char *label_value);

/* Faults: see the header comment. timer_rc/emit_rc 0 = no fault. */
void evh_fail_state_after(evh *h, long n);
void evh_set_emit_rc(evh *h, int rc);
void evh_set_timer_rc(evh *h, int rc);

/* JSON text -> msgpack (malloc'ed, *len bytes), and msgpack -> JSON (NULL
 * when not valid msgpack with string map keys). Independent of the SDK. */
void *evh_json_to_mp(const char *json, size_t *len);
json_t *evh_mp_to_json(const void *data, size_t len);

#endif
