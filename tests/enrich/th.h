/*
 * th.h - a fake Weir host for driving plugins directly in tests.
 *
 * Test scaffolding only, and only for enrich_probe.c (tests/enrich/
 * CMakeLists.txt says why it is not on the test harness, weir/testing.h,
 * like every other plugin test). The real host (host/runtime) replaces all
 * of this.
 * It dlopen()s a plugin, finds an operator, validates a parameter list
 * against the operator's table the way the topology loader does (types,
 * ranges, choices, required, defaults), and offers the services the bundled
 * plugins use: params, emit (into an array), a fake processing-time clock,
 * log and set_error (captured), snapshot_write (into a buffer). Keyed state,
 * timers and metrics are absent, which the SDK wrappers report as
 * WEIR_ENOTSUP.
 *
 * String parameters are handed out WITHOUT a terminating NUL, so a plugin
 * that treats them as C strings shows up under AddressSanitizer.
 */
#ifndef WEIR_TESTS_PLUGINS_TH_H
#define WEIR_TESTS_PLUGINS_TH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "fake_params.h"

#include "weir/weir.h"

/* One parameter as written in YAML; a list ends with {NULL, NULL}. */
typedef fp_param th_param;

/* An emitted record (copies). */
typedef struct th_rec {
    uint32_t port;
    char *key;
    size_t key_len;
    int64_t ts;
    char *value;
    size_t value_len;
} th_rec;

typedef struct th_log {
    weir_log_level level;
    char *msg;
} th_log;

typedef fp_value th_value;

typedef struct th_inst {
    weir_ctx ctx; /* first: services cast the ctx back to th_inst */
    const weir_operator *op;
    void *self;
    int opened;
    int in_open_or_close;
    const char *id;
    uint32_t sub;
    uint32_t par;
    th_value *vals;
    size_t n_vals;
    int param_rc; /* < 0 when the parameters failed validation */
    th_rec *recs;
    size_t n_recs;
    size_t cap_recs;
    th_log *logs;
    size_t n_logs;
    size_t cap_logs;
    char error[2048]; /* the last set_error message, or "" */
    unsigned char *snap;
    size_t snap_len;
    int64_t now_ms; /* the fake processing-time clock */
    int emit_rc;    /* when non-zero, emit fails with this code */
    int bad_emits;  /* emits attempted in open() or close() */
} th_inst;

/* Loads `so` and returns its plugin; fails the test when that is
 * impossible. */
const weir_plugin *th_plugin(const char *so);
/* The operator `name` of plugin `so`; fails the test when absent. */
const weir_operator *th_load(const char *so, const char *name);

/* A new instance of `op` for subtask `sub` of `par` with `params` (may be
 * NULL). Parameter errors are kept in param_rc/error and returned by
 * th_open(). The host table offers snapshot_write; after
 * th_disable_snapshot() it is absent (WEIR_ENOTSUP). */
th_inst *th_new(const weir_operator *op, const th_param *params, uint32_t sub,
                uint32_t par);
void th_disable_snapshot(th_inst *t);
/* Validates parameters like the host, then calls open(). */
int th_open(th_inst *t);
int th_poll(th_inst *t);
int th_process(th_inst *t, const void *key, size_t key_len, int64_t ts,
               const void *value, size_t value_len);
int th_finish(th_inst *t);
/* Calls snapshot(); the bytes written go to t->snap (replaced). */
int th_snapshot(th_inst *t, uint64_t checkpoint_id);
int th_restore(th_inst *t, uint64_t checkpoint_id, uint32_t version,
               const void *data, size_t len);
/* Calls notify_checkpoint_complete(); WEIR_OK when the operator has none. */
int th_notify(th_inst *t, uint64_t checkpoint_id);
/* Polls until WEIR_EOF or an error, at most max_polls times; WEIR_EAGAIN
 * advances the fake clock by 1 ms. Returns the last code. */
int th_drain(th_inst *t, int max_polls);
/* Calls close() if open() succeeded and it was not called yet. */
void th_close(th_inst *t);
/* th_close(), then frees everything. */
void th_free(th_inst *t);
/* Parses a default value the way th_new() does: NULL when it is valid for
 * the definition, else the reason. */
const char *th_check_default(const weir_param_def *def);

void th_clear_recs(th_inst *t);
/* Number of captured log lines at `level` containing `needle`. */
size_t th_count_logs(const th_inst *t, weir_log_level level,
                     const char *needle);
/* The first captured log line containing `needle`, or NULL. */
const char *th_find_log(const th_inst *t, const char *needle);

#endif
