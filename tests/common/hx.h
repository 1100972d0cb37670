/*
 * hx.h - short forms of weir/testing.h for the C tests of the bundled
 * plugins (not a host: every call goes to the real one through the
 * harness). Failures of the harness itself fail the running cmocka test.
 */
#ifndef WEIR_TESTS_HX_H
#define WEIR_TESTS_HX_H

#include <stddef.h>
#include <stdint.h>

#include "weir/testing.h"

/* A harness description: operator `op` of plugin file `so`, its id in the
 * job `op` too (so messages that name the id read as in a job of that
 * operator), subtask `sub` of `par`. */
typedef struct hx_spec {
    const char *so;
    const char *op;
    const weir_test_param *params; /* may be NULL */
    uint32_t sub, par;             /* par 0: 1 */
    uint32_t without;              /* WEIR_TEST_WITHOUT_* */
    int64_t now_ms;                /* 0: the harness's default */
} hx_spec;

/* weir_test_new() of `s`; returns its code, *out is set. */
int hx_try(const hx_spec *s, weir_test **out);
/* Same, restoring a plugin snapshot of `version` (data may be empty) taken
 * at checkpoint `id` (0: 1). */
int hx_try_restore(const hx_spec *s, uint64_t id, uint32_t version,
                   const void *data, size_t len, weir_test **out);
/* A harness that opened; anything else fails the test with the message. */
weir_test *hx_new(const char *so, const char *op, const weir_test_param *params,
                  uint32_t sub, uint32_t par);
weir_test *hx_open(const hx_spec *s);

/* A restart of the job from a checkpoint with the configuration `s`: takes
 * a checkpoint of `t`, opens the instance of `s` restored from it (keyed
 * state, timers, the plugin's snapshot), frees `t` and returns the new
 * harness; a failure fails the test. */
weir_test *hx_restart(weir_test *t, const hx_spec *s);

/* Emitted record i over every port (NULL past the end), and how many. */
const weir_test_record *hx_rec(const weir_test *t, size_t i);
size_t hx_n(const weir_test *t);

/* weir_test_checkpoint() with the next id; returns its code. The bytes are
 * in *data, *len (weir_test_snapshot_data). */
int hx_snapshot(weir_test *t, const void **data, size_t *len);

/* Whether the harness's error ends with ": " + msg, i.e. the operator's own
 * message after the host's prefix ("operator 'x' (x) subtask 1/1: open:"),
 * or is exactly `msg`. */
int hx_error_is(const weir_test *t, const char *msg);

/* Whether any log line at any level contains `needle`: its first. */
const char *hx_find_log(const weir_test *t, const char *needle);
/* The number of log lines of the subtask of operator `id` (the plugin's
 * own and the host's about it), not counting the host's other lines (such
 * as the registry's when it loads the plugin). */
size_t hx_logs_of(const weir_test *t, const char *id);
/* The number of log lines exactly at `level` that contain `needle`. */
size_t hx_count_logs(const weir_test *t, weir_log_level level,
                     const char *needle);

/* process() on port 0 with key `key` (a C string) and the JSON text `json`
 * as the value (converted to msgpack); returns weir_test_process()'s code. */
int hx_process_json(weir_test *t, const char *key, int64_t ts,
                    const char *json);
/* Stored entries of every state, and pending timers; a harness error
 * fails the test. */
uint64_t hx_entries(weir_test *t);
uint64_t hx_timers(weir_test *t);
/* The value of counter `name` (label value or NULL), -1 when none. */
int64_t hx_counter(const weir_test *t, const char *name, const char *label);

/* The descriptors plugin file `so` hands to a host from its entry point
 * (called with a table that is only the ABI header: an entry point reads
 * nothing else), for tests of the tables themselves; fails the test when
 * the file cannot be loaded. hx_operator: its operator `name`. */
const weir_plugin *hx_plugin(const char *so);
const weir_operator *hx_operator(const char *so, const char *name);
/* Fails the test unless every default of operator `name` of `so` parses for
 * its type and lies in its range and choices, as the host's parameter
 * validation (the topology loader's, run by the harness) checks them: a job
 * of the operator without parameters either opens, or fails for another
 * reason than a default (a required parameter, what open() needs). */
void hx_check_defaults(const char *so, const char *name);

#endif
