/*
 * weir/testing.h - unit tests of an operator on the real Weir host.
 *
 * A weir_test runs one subtask of one operator in the calling thread, on
 * the host's own implementation: the weir_host_api table of the runtime
 * (with its argument checks and messages), the plugin registry (a .so is
 * dlopen()ed and checked as `weir run` does), parameter validation of the
 * topology loader (types, units, ranges, choices, defaults, "did you mean"
 * hints), keyed state in RocksDB with TTLs and the expiry hook, event-time
 * and processing-time timers, broadcast state, async I/O (the runtime's
 * async layer: order, timeouts, retries), metrics, and checkpoints
 * written and restored the way the runtime writes and restores them (keyed
 * state, broadcast state and the plugin's snapshot, with a manifest). What
 * it replaces: the ZeroMQ channels (emitted records are kept in memory, per
 * output port) and the wall clock (processing time is a clock the test
 * sets).
 *
 * Link with the library weir_testing (CMake: find_package(Weir) and
 * target_link_libraries(mytest PRIVATE Weir::testing); pkg-config:
 * weir-testing). It is a C library with the conventions of the SDK: names
 * weir_test_*, byte strings as pointer and length, negative WEIR_E* codes
 * with a message (weir_test_error()).
 *
 * A test in ten lines:
 *
 *   weir_test_config c;
 *   weir_test_config_init(&c);
 *   c.plugin_path = "build/myop.so";
 *   c.op = "myop";
 *   c.params_yaml = "window: 10s\nfield: user";
 *   weir_test *t = NULL;
 *   if (weir_test_new(&c, &t) < 0) fail(weir_test_error(t));
 *   weir_test_process(t, 0, "k", 1, 1000, value, value_len);
 *   weir_test_watermark(t, 20000);           // fires event-time timers
 *   assert(weir_test_emitted_count(t, 0) == 1);
 *   weir_test_free(t);
 *
 * The order of events is the runtime's: after every record, watermark,
 * poll and clock change, processing-time timers due at the test clock fire
 * and expired state is swept (on_state_expired runs), as the runtime does
 * between batches. A watermark fires the event-time timers at or before it
 * in (time, key) order, then on_watermark(). weir_test_finish() is the end
 * of the input: the watermark moves to WEIR_WATERMARK_MAX (every event-time
 * timer fires), expired state is swept, then finish() runs.
 *
 * Errors. A function that runs a plugin callback returns the callback's
 * code; when it is negative, weir_test_error() holds the message the job
 * would fail with ("operator 'op' (myop) subtask 1/1: process: <what the
 * plugin passed to weir_set_error>"). Unlike a job, the harness goes on: a
 * test may feed more records or close the instance. Parameter errors are
 * the topology loader's ("params:1:9: config.window: not a duration ...").
 *
 * Threads: a weir_test belongs to the thread that created it, and every
 * callback runs on that thread (the host's services check it). Several
 * harnesses may exist at the same time (e.g. an instance and the one
 * restored from its checkpoint). Not async-signal-safe.
 *
 * Files: each harness works in a fresh temporary directory (under $TMPDIR)
 * that weir_test_free() removes: the state directory (unless
 * config.state_dir is given) and the checkpoints it takes.
 */
#ifndef WEIR_TESTING_H
#define WEIR_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weir_test weir_test;

/* One parameter as a YAML value written on one line (`10s`, `"a b"`,
 * `[1, 2]`, `{x: 1}`); a list ends with {NULL, NULL}. */
typedef struct weir_test_param {
    const char *name;
    const char *value;
} weir_test_param;

typedef struct weir_test_config {
    uint32_t size; /* sizeof(weir_test_config), set by weir_test_config_init */
    /* The operator: a plugin file, loaded through the host's registry, or
     * a plugin descriptor linked into the test (which must outlive the
     * harness); exactly one of them. */
    const char *plugin_path;
    const weir_plugin *plugin;
    const char *op; /* the operator's name (its type in a topology) */
    const char *id; /* its id in the job; NULL: "op" */
    /* Parameters: the YAML mapping of `config:` in a topology, and/or
     * key/value pairs (appended to it; a name given in both is an error). */
    const char *params_yaml;
    const weir_test_param *params;
    uint32_t parallelism;     /* 0: 1 */
    uint32_t subtask;         /* 0 .. parallelism-1 */
    uint32_t max_parallelism; /* key groups; 0: the topology default (128) */
    /* The state directory (state.dir); NULL: one in the work directory. */
    const char *state_dir;
    /* runtime.max_record_size in bytes; 0: the default (16 MiB). */
    uint64_t max_record_size;
    /* The fake processing-time clock at start (ms since the epoch); 0:
     * 1 000 000 000 000 (2001-09-09). */
    int64_t now_ms;
    /* Restore: a checkpoint directory (weir_test_checkpoint_dir() of
     * another harness, or a chk-N directory of a run), verified against
     * its manifest and restored as a job restores it, before open(). */
    const char *restore_from;
    /* Or only a plugin snapshot: the bytes restore() receives, with their
     * version (written as a checkpoint with a manifest, then restored). */
    const void *restore_snapshot;
    size_t restore_snapshot_len;
    uint32_t restore_snapshot_version;
    int restore_snapshot_set; /* restore_snapshot is given (may be empty) */
    /* Fields added later are read only when `size` covers them, so a test
     * built against an older testing.h gets their zero defaults. */
    /* Host services the operator finds missing, as on a host that does not
     * implement them: their weir_* wrappers return WEIR_ENOTSUP. A set of
     * WEIR_TEST_WITHOUT_* bits; 0: every service. */
    uint32_t without;
    /* The id of the checkpoint restore_snapshot belongs to (what restore()
     * receives as checkpoint_id); 0: 1. */
    uint64_t restore_snapshot_id;
    /* An asynchronous operator: 1 = the test drives async_invoke() and
     * on_async_result() itself, without the runtime's async layer (see
     * "Asynchronous operators, driven directly" below); 0: through it. */
    int async_direct;
} weir_test_config;

/* For weir_test_config.without. */
#define WEIR_TEST_WITHOUT_SNAPSHOT_WRITE (1u << 0) /* weir_snapshot_write */
/* weir_metric_register (updates of a NULL metric are ignored anyway) */
#define WEIR_TEST_WITHOUT_METRICS        (1u << 1)
/* Every bit weir_test_new() knows; others are refused with WEIR_EINVAL. */
#define WEIR_TEST_WITHOUT_ALL                                                  \
    (WEIR_TEST_WITHOUT_SNAPSHOT_WRITE | WEIR_TEST_WITHOUT_METRICS)

/* Fills `c` with zeros and the size. */
void weir_test_config_init(weir_test_config *c);

/*
 * Loads the operator, validates the parameters, prepares keyed state (for
 * WEIR_OP_KEYED operators), restores when asked and calls open() (and
 * restore()). *out is set unless memory runs out, also on failure: read
 * weir_test_error(*out), then weir_test_free() it; every other function
 * returns WEIR_ESTATE on a harness whose open failed. Returns 0, WEIR_EINVAL
 * for a bad configuration, parameter or checkpoint, WEIR_ENOTFOUND for an
 * unknown operator, or open()'s and restore()'s negative code.
 */
int weir_test_new(const weir_test_config *c, weir_test **out);

/* Calls close() (if open() succeeded), closes the state and removes the
 * work directory. NULL is a no-op. */
void weir_test_free(weir_test *t);

/* Calls close() now and closes the state, keeping what the operator did
 * (emitted records, log lines, metrics) readable; every driving call then
 * returns WEIR_ESTATE. weir_test_free() does it when it was not done. */
void weir_test_close(weir_test *t);

/* The message of the last failure, "" when none. Valid until the next call
 * on `t`. A NULL `t` (out of memory) reads "out of memory". */
const char *weir_test_error(const weir_test *t);

/* ---------------------------------------------------------------------- */
/* Driving the operator                                                    */
/* ---------------------------------------------------------------------- */

/* One record on input port `port` (a keyed operator: `key` is the current
 * key). Returns process()'s code. WEIR_EINVAL for a port the operator
 * lacks or a broadcast input. WEIR_ERETRY is returned as is (the runtime
 * would offer the record again).
 * An asynchronous operator (async_invoke) gets the record as the runtime
 * hands it over: queued, and async_invoke() called; when `capacity`
 * requests are in flight, the call first waits (at most 60 s, then
 * WEIR_ETIMEDOUT) for one to be delivered. The section `async` has its
 * defaults. Results are delivered to on_async_result() by the runtime's
 * async layer (order, timeouts, retries) whenever the harness serves the
 * queue: after every call, in weir_test_async_wait() and before finish();
 * a watermark waits behind the requests in flight. */
int weir_test_process(weir_test *t, uint32_t port, const void *key,
                      size_t key_len, int64_t ts, const void *value,
                      size_t value_len);
/* One record on broadcast input `port`: process_broadcast(), no current
 * key. WEIR_EINVAL when `port` is not a broadcast input. */
int weir_test_broadcast(weir_test *t, uint32_t port, const void *key,
                        size_t key_len, int64_t ts, const void *value,
                        size_t value_len);
/* Advances the watermark to `wm` (nothing happens when it is not above the
 * current one): timers, TTL, on_watermark as described above. */
int weir_test_watermark(weir_test *t, int64_t wm);
/* The current watermark (WEIR_WATERMARK_MIN at start). */
int64_t weir_test_current_watermark(const weir_test *t);
/* Sets the processing-time clock (weir_now(), processing-time TTL) to
 * `now_ms` (it may go back) and fires the processing-time timers due. */
int weir_test_set_time(weir_test *t, int64_t now_ms);
int64_t weir_test_time(const weir_test *t);
/* A source: one poll(); returns its code (WEIR_OK, WEIR_EAGAIN, WEIR_EOF or
 * an error). */
int weir_test_poll(weir_test *t);
/* A source: polls until WEIR_EOF, an error or `max_polls` calls; every
 * WEIR_EAGAIN advances the clock by 1 ms. Returns the last code. */
int weir_test_drain(weir_test *t, int max_polls);
/* An asynchronous operator: serves its requests until none is in flight
 * (their results delivered, held watermarks applied) and returns 0, or
 * WEIR_ETIMEDOUT after `timeout_ms` with some still in flight, or the error
 * a delivery failed with. 0 at once for other operators. The plugin's own
 * threads complete the requests meanwhile, on the real clock. */
int weir_test_async_wait(weir_test *t, int timeout_ms);
/* Requests queued and not delivered yet (0 for other operators). */
size_t weir_test_async_pending(const weir_test *t);
/* End of input: see the top of this file. finish() is called once; later
 * calls return 0. An asynchronous operator's requests are delivered first
 * (WEIR_ETIMEDOUT after 60 s). */
int weir_test_finish(weir_test *t);

/* ---------------------------------------------------------------------- */
/* Asynchronous operators, driven directly                                 */
/* ---------------------------------------------------------------------- */
/* With config.async_direct, the harness hands an asynchronous operator
 * request handles of its own and records every weir_async_complete() the
 * plugin makes: how often each request was completed, the first
 * completion's status and result, and how many completions came after
 * close() had returned. That is the plugin's side of the async contract,
 * which the runtime's async layer (and so the default mode) hides on
 * purpose, since it times requests out, retries them and drops what comes
 * after close(): every request it took is completed exactly once, those in
 * flight at close() with WEIR_ECANCELED, none after close() returned. No
 * capacity, timeout or retry applies; weir_test_process() is refused, and
 * watermarks and weir_test_finish() do not wait for requests. Completions
 * may arrive on any thread until weir_test_free(), never after it. */

/* A request as the plugin completed it. */
typedef struct weir_test_async_request {
    uint32_t completions; /* weir_async_complete() calls for it */
    uint32_t late;        /* of them, after close() had returned */
    int status;           /* the first completion's status; 0 while none */
    /* The first completion's result when its status is WEIR_OK, else NULL
     * (with a NUL after it; valid until weir_test_free). */
    const void *result;
    size_t result_len;
} weir_test_async_request;

/* Calls async_invoke() for a record on input port `port` (`key` is the
 * current key during the call) with a new request, whose index (0, 1, ...
 * in call order) goes to *request (may be NULL), also when async_invoke()
 * refused it. Returns async_invoke()'s code (its message in
 * weir_test_error()); WEIR_EINVAL without config.async_direct. */
int weir_test_async_invoke(weir_test *t, uint32_t port, const void *key,
                           size_t key_len, int64_t ts, const void *value,
                           size_t value_len, size_t *request);
/* The number of requests invoked, and of those completed at least once. */
size_t weir_test_async_requests(const weir_test *t);
size_t weir_test_async_completed(const weir_test *t);
/* Waits until `n` requests were completed: 0, or WEIR_ETIMEDOUT after
 * `timeout_ms`. */
int weir_test_async_wait_completed(weir_test *t, size_t n, int timeout_ms);
/* Request `i` as completed so far; WEIR_ENOTFOUND past the end. */
int weir_test_async_request_info(const weir_test *t, size_t i,
                                 weir_test_async_request *out);
/* Calls on_async_result() for request `i` with its record and its first
 * completion (status; result when WEIR_OK), `key` current, as the runtime
 * delivers it; returns the callback's code. WEIR_ESTATE when the request
 * was not completed yet. A request may be delivered more than once. */
int weir_test_async_deliver(weir_test *t, size_t i);

/* ---------------------------------------------------------------------- */
/* Checkpoints                                                             */
/* ---------------------------------------------------------------------- */

/* After a restore, checkpoint ids go on from the restored checkpoint's id,
 * as the runtime numbers them after a restart. */
/* Takes a checkpoint as the runtime does at a barrier: keyed
 * state, broadcast state and snapshot() into <work>/run/chk-<id>/, then the
 * manifest, which makes it complete. notify_checkpoint_complete() is not
 * called (weir_test_notify_checkpoint). Returns snapshot()'s code or the
 * host's error. */
int weir_test_checkpoint(weir_test *t, uint64_t *id);
/* (*id: 0 or NULL for the next id, the last one's + 1, from 1; or an id
 * above the last one's. It receives the id taken.) */
/* The directory of checkpoint `id` of this harness, for
 * config.restore_from; NULL when there is none. Valid until weir_test_free.
 */
const char *weir_test_checkpoint_dir(const weir_test *t, uint64_t id);
/* The bytes snapshot() wrote for the last checkpoint (none: NULL, 0). Valid
 * until the next checkpoint or weir_test_free. */
void weir_test_snapshot_data(const weir_test *t, const void **data,
                             size_t *len);
/* Calls notify_checkpoint_complete(id) (0 when the operator has none). */
int weir_test_notify_checkpoint(weir_test *t, uint64_t id);

/* ---------------------------------------------------------------------- */
/* What the operator did                                                   */
/* ---------------------------------------------------------------------- */

#define WEIR_TEST_ALL_PORTS UINT32_MAX

/* An emitted record. The bytes belong to the harness (until it is cleared
 * or freed); they have a NUL after them, for printing. */
typedef struct weir_test_record {
    uint32_t port;
    const void *key;
    size_t key_len;
    int64_t ts;
    const void *value;
    size_t value_len;
    int64_t watermark; /* the subtask's watermark when it was emitted */
} weir_test_record;

/* The number of records emitted on `port` (WEIR_TEST_ALL_PORTS: on every
 * port) since the last clear. */
size_t weir_test_emitted_count(const weir_test *t, uint32_t port);
/* The i-th of them in emission order; NULL past the end. */
const weir_test_record *weir_test_emitted(const weir_test *t, uint32_t port,
                                          size_t i);
/* Forgets the records of `port` (WEIR_TEST_ALL_PORTS: all). */
void weir_test_clear_emitted(weir_test *t, uint32_t port);
/* The index of output port `name`, or WEIR_ENOTFOUND. */
int weir_test_output_port(const weir_test *t, const char *name);

/* Makes emit fail with `rc` (a negative code) from now on, as a failing
 * channel would; 0 restores it. */
void weir_test_fail_emits(weir_test *t, int rc);

/* Makes the operator's keyed state calls fail with `rc` (a negative code),
 * as a failing store would, once `after` more of them have succeeded: every
 * weir_value_*, weir_map_*, weir_list_* call (get, put, add, delete, iter,
 * clear; not weir_state_declare) counts, on any state and key. The call
 * returns `rc` without touching the store and leaves a host message naming
 * the service ("weir_map_put: ... (a fault the test injected)"), which
 * weir_test_error() shows when the callback returns the failure. rc 0 stops
 * the faults. The harness's own state functions below neither count nor
 * fail. */
void weir_test_fail_state(weir_test *t, uint64_t after, int rc);
/* Makes weir_timer_register fail with `rc` (a negative code) from now on,
 * without registering the timer; 0 restores it. weir_timer_delete is not
 * affected. */
void weir_test_fail_timers(weir_test *t, int rc);

/* Log lines of the plugin and the host during the harness's calls (every
 * level). */
size_t weir_test_log_count(const weir_test *t);
/* Line i (NULL past the end) and its level. */
const char *weir_test_log_line(const weir_test *t, size_t i,
                               weir_log_level *level);
/* The number of lines at `level` or more severe that contain `needle`
 * (NULL: every line), and the first such line (NULL: none). */
size_t weir_test_count_logs(const weir_test *t, weir_log_level level,
                            const char *needle);
const char *weir_test_find_log(const weir_test *t, weir_log_level level,
                               const char *needle);

/* The value of a counter or gauge the operator registered (the count of a
 * histogram), by name and the value of its own label (NULL: none); -1 when
 * there is none. */
double weir_test_metric(const weir_test *t, const char *name,
                        const char *label_value);

/* ---------------------------------------------------------------------- */
/* Keyed state                                                             */
/* ---------------------------------------------------------------------- */
/* By state name and key, read and written as the host's services do with
 * that key current (an expired entry is absent, and its expiry hook runs,
 * as for any access). Values returned are valid until the next call on the
 * harness. WEIR_ENOTFOUND for an absent entry; WEIR_EINVAL for a state the
 * operator did not declare or of another kind; WEIR_ESTATE without keyed
 * state. */

int weir_test_value_get(weir_test *t, const char *state, const void *key,
                        size_t key_len, const void **value, size_t *len);
int weir_test_map_get(weir_test *t, const char *state, const void *key,
                      size_t key_len, const void *ukey, size_t ukey_len,
                      const void **value, size_t *len);
/* Every entry of map state `state` of `key` (user key order), or every
 * element of list state (insertion order); fn returns 0 to go on. The
 * callback must not call the harness. */
int weir_test_map_iter(weir_test *t, const char *state, const void *key,
                       size_t key_len, weir_map_iter_fn fn, void *arg);
int weir_test_list_iter(weir_test *t, const char *state, const void *key,
                        size_t key_len, weir_map_iter_fn fn, void *arg);
/* Writes (e.g. state a test prepares, or damages). */
int weir_test_value_put(weir_test *t, const char *state, const void *key,
                        size_t key_len, const void *value, size_t len);
int weir_test_map_put(weir_test *t, const char *state, const void *key,
                      size_t key_len, const void *ukey, size_t ukey_len,
                      const void *value, size_t len);

/* The number of stored entries of state `state` (NULL: of every state)
 * over all keys, as RocksDB holds them (expired entries that no sweep or
 * access removed yet included): one per key for value state, one per user
 * key for map state. */
int weir_test_state_entries(weir_test *t, const char *state, uint64_t *n);
/* The number of pending timers of both domains over all keys. */
int weir_test_timer_count(weir_test *t, uint64_t *n);
/* The declared states: how many, and state i's name, kind and declared
 * TTL (WEIR_TTL_NONE: none); WEIR_ENOTFOUND past the end. Any output
 * pointer may be NULL. */
size_t weir_test_state_count(const weir_test *t);
int weir_test_state_info(const weir_test *t, size_t i, const char **name,
                         weir_state_kind *kind, int64_t *ttl_ms);

#ifdef __cplusplus
}
#endif

#endif
