/*
 * test_harness.c - weir/testing.h, each feature against bundled plugins
 * (count, window, session, gen; bcjoin of tests/broadcast) and an operator
 * defined here, handed over as a weir_plugin pointer. Expectations come
 * from the tests' own reasoning about the inputs; outputs are decoded with
 * an independent msgpack decoder (tests/common/tutil.h).
 */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tutil.h"

#include "weir/msgpack.h"
#include "weir/testing.h"
#include "weir/weir.h"

static weir_test *mk(const char *so, const char *op, const char *yaml,
                     const weir_test_param *params)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = so;
    c.op = op;
    c.params_yaml = yaml;
    c.params = params;
    weir_test *t = NULL;
    int rc = weir_test_new(&c, &t);
    if (rc < 0)
        fail_msg("weir_test_new(%s): %d %s", op, rc, weir_test_error(t));
    return t;
}

static int64_t jint(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v))
        fail_msg("field %s is not an integer", name);
    return json_integer_value(v);
}

/* The decoded value of emitted record i of port. */
static json_t *out_json(weir_test *t, uint32_t port, size_t i)
{
    const weir_test_record *r = weir_test_emitted(t, port, i);
    assert_non_null(r);
    json_t *j = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(j);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static void expect_param_error(const char *op, const char *yaml,
                               const weir_test_param *params, const char *field,
                               const char *also)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = op[0] == 'w' ? WINDOW_SO : SESSION_SO;
    c.op = op;
    c.params_yaml = yaml;
    c.params = params;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), WEIR_EINVAL);
    assert_non_null(t);
    const char *e = weir_test_error(t);
    if (!strstr(e, field) || (also && !strstr(e, also)))
        fail_msg("error '%s' lacks '%s' / '%s'", e, field, also ? also : "");
    /* a failed harness refuses everything */
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, NULL, 0), WEIR_ESTATE);
    weir_test_free(t);
}

static void test_param_errors(void **state)
{
    /* a duration that does not parse, with its position in the YAML */
    expect_param_error("window", "kind: tumbling\nsize: ten seconds\n", NULL,
                       "params:2:7: config.size", NULL);
    /* an unknown name with the loader's hint */
    expect_param_error("window", "kind: tumbling\nsiz: 10s\n", NULL,
                       "config.siz", "size");
    /* a choice that is not one of the table's */
    const weir_test_param kv[] = {
        {"kind", "tumbling"}, {"size", "10s"}, {"aggregate", "median"}, {0}};
    expect_param_error("window", NULL, kv, "config.aggregate", "median");
    /* a required parameter missing */
    expect_param_error("session", NULL, NULL,
                       "missing required parameter 'gap'", NULL);
    /* below the minimum */
    const weir_test_param gap0[] = {{"gap", "0ms"}, {0}};
    expect_param_error("session", NULL, gap0, "config.gap", NULL);
    /* the same name in the YAML and as a pair */
    const weir_test_param again[] = {{"gap", "1s"}, {0}};
    expect_param_error("session", "gap: 2s", again, "duplicate key 'gap'",
                       NULL);
}

static void test_config_errors(void **state)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = COUNT_SO;
    c.op = "cuont";
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), WEIR_ENOTFOUND);
    assert_non_null(strstr(weir_test_error(t), "did you mean 'count'"));
    weir_test_free(t);

    c.op = "count";
    c.plugin_path = "/nonexistent/x.so";
    assert_true(weir_test_new(&c, &t) < 0);
    assert_non_null(strstr(weir_test_error(t), "/nonexistent/x.so"));
    weir_test_free(t);

    c.plugin_path = COUNT_SO;
    c.parallelism = 2;
    c.subtask = 2;
    assert_int_equal(weir_test_new(&c, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "subtask 2"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* Records, keyed value state                                                */
/* ------------------------------------------------------------------------ */

static uint64_t be64(const void *p)
{
    const unsigned char *b = p;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | b[i];
    return u;
}

static void test_count_emits_and_state(void **state)
{
    weir_test *t = mk(COUNT_SO, "count", NULL, NULL);
    const char *keys[] = {"a", "b", "a", "c", "a", "b"};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(
            weir_test_process(t, 0, keys[i], 1, (int64_t)i * 10, "\x80", 1), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 6);
    assert_int_equal(weir_test_emitted_count(t, WEIR_TEST_ALL_PORTS), 6);
    /* the n-th record of a key says n (counted here, independently) */
    int seen[3] = {0};
    for (size_t i = 0; i < 6; i++) {
        const weir_test_record *r = weir_test_emitted(t, 0, i);
        assert_int_equal(r->key_len, 1);
        assert_memory_equal(r->key, keys[i], 1);
        assert_int_equal(r->ts, (int64_t)i * 10);
        assert_int_equal(r->port, 0);
        json_t *j = out_json(t, 0, i);
        assert_int_equal(jint(j, "count"), ++seen[keys[i][0] - 'a']);
        json_decref(j);
    }
    assert_null(weir_test_emitted(t, 0, 6));

    /* keyed state by name and key */
    const void *v;
    size_t n;
    assert_int_equal(weir_test_value_get(t, "count", "a", 1, &v, &n), 0);
    assert_int_equal(n, 8);
    assert_int_equal(be64(v), 3);
    assert_int_equal(weir_test_value_get(t, "count", "b", 1, &v, &n), 0);
    assert_int_equal(be64(v), 2);
    assert_int_equal(weir_test_value_get(t, "count", "zz", 2, &v, &n),
                     WEIR_ENOTFOUND);
    assert_int_equal(weir_test_value_get(t, "nope", "a", 1, &v, &n),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "nope"));
    assert_int_equal(weir_test_map_get(t, "count", "a", 1, "x", 1, &v, &n),
                     WEIR_EINVAL);
    uint64_t entries = 0;
    assert_int_equal(weir_test_state_entries(t, "count", &entries), 0);
    assert_int_equal(entries, 3);
    assert_int_equal(weir_test_state_count(t), 1);
    const char *name;
    weir_state_kind kind;
    int64_t ttl;
    assert_int_equal(weir_test_state_info(t, 0, &name, &kind, &ttl), 0);
    assert_string_equal(name, "count");
    assert_int_equal(kind, WEIR_STATE_VALUE);
    assert_int_equal(ttl, WEIR_TTL_NONE);

    /* a written value is what the operator reads next */
    unsigned char hundred[8] = {0, 0, 0, 0, 0, 0, 0, 100};
    assert_int_equal(weir_test_value_put(t, "count", "c", 1, hundred, 8), 0);
    weir_test_clear_emitted(t, 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 0);
    assert_int_equal(weir_test_process(t, 0, "c", 1, 99, "\x80", 1), 0);
    json_t *j = out_json(t, 0, 0);
    assert_int_equal(jint(j, "count"), 101);
    json_decref(j);

    /* a failing channel: the plugin's message, as the job would fail */
    weir_test_fail_emits(t, WEIR_EIO);
    assert_int_equal(weir_test_process(t, 0, "c", 1, 100, "\x80", 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "operator 'op' (count) "
                                               "subtask 1/1: process: count: "
                                               "emit failed"));
    weir_test_fail_emits(t, 0);
    assert_int_equal(weir_test_process(t, 0, "c", 1, 101, "\x80", 1), 0);
    assert_int_equal(weir_test_poll(t), WEIR_EINVAL); /* not a source */
    assert_int_equal(weir_test_process(t, 1, "c", 1, 0, NULL, 0), WEIR_EINVAL);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* Event-time timers, snapshot and restore                                   */
/* ------------------------------------------------------------------------ */

static void test_window_timers_restore(void **state)
{
    const char *yaml = "kind: tumbling\nsize: 10s\n";
    weir_test *t = mk(WINDOW_SO, "window", yaml, NULL);
    /* key a: 3 records in [0, 10s), 1 in [10s, 20s); key b: 1 in [0, 10s) */
    const struct {
        const char *k;
        int64_t ts;
    } in[] = {{"a", 1000}, {"a", 9999}, {"b", 5000}, {"a", 12000}, {"a", 3000}};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(
            weir_test_process(t, 0, in[i].k, 1, in[i].ts, "\x80", 1), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 0);
    uint64_t timers = 0;
    assert_int_equal(weir_test_timer_count(t, &timers), 0);
    assert_int_equal(timers, 3); /* a@9999, b@9999, a@19999 */

    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    assert_int_equal(id, 1);
    const char *dir = weir_test_checkpoint_dir(t, id);
    assert_non_null(dir);
    char *manifest = tu_path(dir, "MANIFEST.json");
    struct stat sb;
    assert_int_equal(stat(manifest, &sb), 0);
    free(manifest);

    /* the original goes on: the first window of a and b closes */
    assert_int_equal(weir_test_watermark(t, 9999), 0);
    assert_int_equal(weir_test_current_watermark(t), 9999);
    assert_int_equal(weir_test_emitted_count(t, 0), 2);

    /* a new instance from the checkpoint has the state and the timers */
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = WINDOW_SO;
    c.op = "window";
    c.params_yaml = yaml;
    c.restore_from = dir;
    weir_test *r = NULL;
    assert_int_equal(weir_test_new(&c, &r), 0);
    assert_int_equal(weir_test_timer_count(r, &timers), 0);
    assert_int_equal(timers, 3);
    assert_int_equal(weir_test_watermark(r, 9998), 0);
    assert_int_equal(weir_test_emitted_count(r, 0), 0);
    assert_int_equal(weir_test_watermark(r, 20000), 0);
    assert_int_equal(weir_test_emitted_count(r, 0), 3);
    /* (time, key) order: a@9999 (3 records), b@9999 (1), a@19999 (1) */
    const int64_t want[] = {3, 1, 1};
    const char *want_key[] = {"a", "b", "a"};
    for (size_t i = 0; i < 3; i++) {
        const weir_test_record *rec = weir_test_emitted(r, 0, i);
        assert_memory_equal(rec->key, want_key[i], 1);
        json_t *j = out_json(r, 0, i);
        assert_int_equal(jint(j, "count"), want[i]);
        json_decref(j);
        /* emitted while the watermark moved to 20000 */
        assert_int_equal(rec->watermark, 20000);
    }
    assert_int_equal(weir_test_timer_count(r, &timers), 0);
    uint64_t entries = 1;
    assert_int_equal(weir_test_state_entries(r, NULL, &entries), 0);
    assert_int_equal(entries, 0);
    weir_test_free(r);

    /* finish: the last watermark fires what is left (a@19999) */
    weir_test_clear_emitted(t, WEIR_TEST_ALL_PORTS);
    assert_int_equal(weir_test_finish(t), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 1);
    assert_int_equal(weir_test_current_watermark(t), WEIR_WATERMARK_MAX);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* TTL: expiry on the watermark and on the clock, with on_state_expired      */
/* ------------------------------------------------------------------------ */

static void test_session_ttl_watermark(void **state)
{
    weir_test *t = mk(SESSION_SO, "session", "gap: 5s", NULL);
    assert_int_equal(weir_test_process(t, 0, "a", 1, 1000, "\x80", 1), 0);
    assert_int_equal(weir_test_process(t, 0, "a", 1, 3000, "\x80", 1), 0);
    assert_int_equal(weir_test_process(t, 0, "b", 1, 2000, "\x80", 1), 0);
    const void *v;
    size_t n;
    assert_int_equal(weir_test_value_get(t, "session", "a", 1, &v, &n), 0);
    json_t *j = tu_mp_to_json(v, n);
    assert_non_null(j);
    assert_int_equal(jint(j, "count"), 2);
    json_decref(j);

    /* b's entry expires at 2000 + 5s, a's at 3000 + 5s */
    assert_int_equal(weir_test_watermark(t, 6999), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 0);
    assert_int_equal(weir_test_watermark(t, 7000), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 1);
    assert_memory_equal(weir_test_emitted(t, 0, 0)->key, "b", 1);
    assert_int_equal(weir_test_watermark(t, 8000), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 2);
    j = out_json(t, 0, 1);
    assert_int_equal(jint(j, "events"), 2);
    assert_int_equal(jint(j, "start"), 1000);
    assert_int_equal(jint(j, "end"), 3000);
    json_decref(j);
    assert_int_equal(weir_test_value_get(t, "session", "a", 1, &v, &n),
                     WEIR_ENOTFOUND);
    uint64_t entries = 1;
    assert_int_equal(weir_test_state_entries(t, "session", &entries), 0);
    assert_int_equal(entries, 0);
    assert_int_equal(weir_test_metric(t, "session_closed_total", NULL), 2);
    assert_true(weir_test_metric(t, "no_such_metric", NULL) < 0);
    weir_test_free(t);
}

static void test_session_ttl_clock(void **state)
{
    const weir_test_param p[] = {{"gap", "1s"}, {"time", "processing"}, {0}};
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = SESSION_SO;
    c.op = "session";
    c.params = p;
    c.now_ms = 50000;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    assert_int_equal(weir_test_time(t), 50000);
    assert_int_equal(weir_test_process(t, 0, "k", 1, WEIR_TS_NONE, "\x80", 1),
                     0);
    assert_int_equal(weir_test_set_time(t, 50999), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 0);
    assert_int_equal(weir_test_set_time(t, 51000), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 1);
    json_t *j = out_json(t, 0, 0);
    /* processing time: start and end are the clock at arrival */
    assert_int_equal(jint(j, "start"), 50000);
    assert_int_equal(jint(j, "end"), 50000);
    json_decref(j);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* An operator of the test itself: processing-time timers, weir_now, logs,   */
/* metrics, set_error, snapshot                                              */
/* ------------------------------------------------------------------------ */

typedef struct tick {
    weir_metric *fired;
    int64_t seen; /* records seen: the snapshot */
} tick;

static int tick_open(weir_ctx *ctx, void **self)
{
    tick *k = calloc(1, sizeof *k);
    if (!k)
        return WEIR_ENOMEM;
    int rc = weir_metric_register(ctx, WEIR_METRIC_COUNTER, "tick_fired_total",
                                  "timers fired", "kind", "proc", &k->fired);
    if (rc < 0) {
        free(k);
        return rc;
    }
    /* emitting in open() is refused by the host */
    if (weir_emit(ctx, 0, "x", 1, 0, NULL, 0) != WEIR_ESTATE) {
        free(k);
        weir_set_error(ctx, "emit in open() was not refused");
        return WEIR_EFAIL;
    }
    *self = k;
    return 0;
}

static int tick_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    tick *k = self;
    if (rec->value_len == 4 && !memcmp(rec->value, "fail", 4)) {
        weir_set_error(ctx, "bad record for key %.*s", (int)rec->key_len,
                       (const char *)rec->key);
        return WEIR_EINVAL;
    }
    k->seen++;
    weir_log(ctx, WEIR_LOG_INFO, "tick got %.*s", (int)rec->key_len,
             (const char *)rec->key);
    return weir_timer_register(ctx, WEIR_TIME_PROCESSING, weir_now(ctx) + 100);
}

static int tick_on_timer(weir_ctx *ctx, void *self, const void *key,
                         size_t key_len, weir_time_domain d, int64_t ts)
{
    tick *k = self;
    weir_counter_add(ctx, k->fired, 1);
    char v[32];
    int n = snprintf(v, sizeof v, "%lld", (long long)k->seen);
    return weir_emit(ctx, 0, key, key_len, ts, v, (size_t)n);
}

static int tick_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    tick *k = self;
    return weir_snapshot_write(ctx, &k->seen, sizeof k->seen);
}

static int tick_restore(weir_ctx *ctx, void *self, uint64_t id,
                        uint32_t version, const void *data, size_t len)
{
    tick *k = self;
    if (version != 7 || len != sizeof k->seen) {
        weir_set_error(ctx, "tick: snapshot version %u, %zu bytes", version,
                       len);
        return WEIR_EINVAL;
    }
    memcpy(&k->seen, data, len);
    return 0;
}

static void tick_close(weir_ctx *ctx, void *self)
{
    free(self);
}

static const weir_operator tick_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "tick",
    .snapshot_version = 7,
    .open = tick_open,
    .process = tick_process,
    .on_timer = tick_on_timer,
    .snapshot = tick_snapshot,
    .restore = tick_restore,
    .close = tick_close,
};
static const weir_operator *const tick_ops[] = {&tick_op, NULL};
static const weir_plugin tick_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "tick",
    .version = "1",
    .operators = tick_ops,
};

static weir_test *mk_tick(const char *restore_from)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin = &tick_plugin;
    c.op = "tick";
    c.id = "ticker";
    c.now_ms = 1000;
    c.restore_from = restore_from;
    weir_test *t = NULL;
    if (weir_test_new(&c, &t) < 0)
        fail_msg("tick: %s", weir_test_error(t));
    return t;
}

static void test_plugin_pointer_clock_timers(void **state)
{
    weir_test *t = mk_tick(NULL);
    assert_int_equal(weir_test_process(t, 0, "k1", 2, 5, "v", 1), 0);
    assert_int_equal(weir_test_set_time(t, 1050), 0);
    assert_int_equal(weir_test_process(t, 0, "k2", 2, 6, "v", 1), 0);
    /* k1's timer is due at 1100, k2's at 1150 */
    assert_int_equal(weir_test_set_time(t, 1099), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 0);
    assert_int_equal(weir_test_set_time(t, 1100), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 1);
    const weir_test_record *r = weir_test_emitted(t, 0, 0);
    assert_int_equal(r->key_len, 2);
    assert_memory_equal(r->key, "k1", 2);
    assert_int_equal(r->ts, 1100);
    assert_string_equal((const char *)r->value, "2");
    assert_int_equal(weir_test_metric(t, "tick_fired_total", "proc"), 1);
    assert_true(weir_test_metric(t, "tick_fired_total", "other") < 0);
    /* the plugin's log lines are captured with the subtask's name */
    assert_int_equal(weir_test_count_logs(t, WEIR_LOG_INFO, "tick got k"), 2);
    assert_non_null(weir_test_find_log(t, WEIR_LOG_DEBUG, "[ticker#0]"));
    assert_null(weir_test_find_log(t, WEIR_LOG_ERROR, "tick got"));

    /* snapshot with a pending processing-time timer (k2 at 1150) */
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    const void *snap;
    size_t snap_len;
    weir_test_snapshot_data(t, &snap, &snap_len);
    assert_int_equal(snap_len, sizeof(int64_t));
    weir_test *r2 = mk_tick(weir_test_checkpoint_dir(t, id));
    assert_int_equal(weir_test_set_time(r2, 1200), 0);
    assert_int_equal(weir_test_emitted_count(r2, 0), 1);
    r = weir_test_emitted(r2, 0, 0);
    assert_memory_equal(r->key, "k2", 2);
    assert_string_equal((const char *)r->value, "2"); /* restored count */
    weir_test_free(r2);

    /* set_error: the message as the job reports it */
    assert_int_equal(weir_test_process(t, 0, "kx", 2, 7, "fail", 4),
                     WEIR_EINVAL);
    assert_string_equal(weir_test_error(t),
                        "operator 'ticker' (tick) subtask 1/1: process: bad "
                        "record for key kx");
    /* the harness goes on after a failure; errors are per call */
    assert_int_equal(weir_test_process(t, 0, "ky", 2, 8, "v", 1), 0);
    assert_string_equal(weir_test_error(t), "");
    weir_test_free(t);
}

static void test_restore_snapshot_bytes(void **state)
{
    int64_t seen = 41;
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin = &tick_plugin;
    c.op = "tick";
    c.restore_snapshot = &seen;
    c.restore_snapshot_len = sizeof seen;
    c.restore_snapshot_version = 7;
    c.restore_snapshot_set = 1;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, "v", 1), 0);
    assert_int_equal(weir_test_set_time(t, weir_test_time(t) + 100), 0);
    assert_string_equal((const char *)weir_test_emitted(t, 0, 0)->value, "42");
    weir_test_free(t);

    /* restore() refusing the bytes fails weir_test_new with its message */
    c.restore_snapshot_version = 3;
    assert_int_equal(weir_test_new(&c, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t),
                           "restore: tick: snapshot version 3, 8 bytes"));
    weir_test_free(t);
}

/* A plugin snapshot cannot be restored with another parallelism, as the
 * runtime refuses it; keyed state alone can (redistributed by key group). */
static void test_restore_rescale(void **state)
{
    weir_test *t = mk(COUNT_SO, "count", NULL, NULL);
    char key[16];
    for (int i = 0; i < 40; i++) {
        int n = snprintf(key, sizeof key, "key%d", i);
        assert_int_equal(weir_test_process(t, 0, key, (size_t)n, 0, "\x80", 1),
                         0);
    }
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    uint64_t total = 0;
    for (uint32_t sub = 0; sub < 2; sub++) {
        weir_test_config c;
        weir_test_config_init(&c);
        c.plugin_path = COUNT_SO;
        c.op = "count";
        c.parallelism = 2;
        c.subtask = sub;
        c.restore_from = weir_test_checkpoint_dir(t, id);
        weir_test *r = NULL;
        if (weir_test_new(&c, &r) < 0)
            fail_msg("%s", weir_test_error(r));
        uint64_t n = 0;
        assert_int_equal(weir_test_state_entries(r, "count", &n), 0);
        assert_true(n < 40); /* a share of the keys */
        total += n;
        weir_test_free(r);
    }
    assert_int_equal(total, 40);
    weir_test_free(t);

    weir_test *k = mk_tick(NULL);
    assert_int_equal(weir_test_checkpoint(k, &id), 0);
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin = &tick_plugin;
    c.op = "tick";
    c.id = "ticker";
    c.parallelism = 2;
    c.restore_from = weir_test_checkpoint_dir(k, id);
    weir_test *r = NULL;
    assert_int_equal(weir_test_new(&c, &r), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(r), "cannot be split or merged"));
    weir_test_free(r);
    weir_test_free(k);
}

/* ------------------------------------------------------------------------ */
/* Sources, broadcast                                                        */
/* ------------------------------------------------------------------------ */

static void test_source(void **state)
{
    const weir_test_param p[] = {
        {"count", "25"}, {"keys", "5"}, {"batch", "10"}, {0}};
    weir_test *t = mk(GEN_SO, "gen", NULL, p);
    assert_int_equal(weir_test_poll(t), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 10);
    assert_int_equal(weir_test_drain(t, 100), WEIR_EOF);
    assert_int_equal(weir_test_emitted_count(t, 0), 25);
    for (size_t i = 0; i < 25; i++) {
        json_t *j = out_json(t, 0, i);
        assert_int_equal(jint(j, "seq"), (int64_t)i);
        json_decref(j);
    }
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, NULL, 0), WEIR_EINVAL);
    assert_int_equal(weir_test_finish(t), 0);
    weir_test_free(t);
}

static void test_broadcast(void **state)
{
    weir_test *t = mk(BCASTOPS_SO, "bcjoin", NULL, NULL);
    size_t n;
    void *conf = tu_json_to_mp("{\"v\": \"blue\"}", &n);
    /* port 1 ("conf") is the broadcast input, port 0 is not */
    assert_int_equal(weir_test_broadcast(t, 0, "color", 5, 0, conf, n),
                     WEIR_EINVAL);
    assert_int_equal(weir_test_broadcast(t, 1, "color", 5, 0, conf, n), 0);
    assert_int_equal(weir_test_process(t, 1, "color", 5, 0, conf, n),
                     WEIR_EINVAL);
    free(conf);
    void *ev = tu_json_to_mp("{\"want\": \"color\"}", &n);
    assert_int_equal(weir_test_process(t, 0, "u1", 2, 0, ev, n), 0);
    free(ev);
    json_t *j = out_json(t, 0, 0);
    assert_string_equal(json_string_value(json_object_get(j, "got")), "blue");
    json_decref(j);

    /* the broadcast state is part of the checkpoint */
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = BCASTOPS_SO;
    c.op = "bcjoin";
    c.restore_from = weir_test_checkpoint_dir(t, id);
    weir_test *r = NULL;
    assert_int_equal(weir_test_new(&c, &r), 0);
    assert_int_equal(weir_test_finish(r), 0);
    j = out_json(r, 0, 0);
    assert_int_equal(jint(j, "restored"), 1);
    assert_int_equal(jint(j, "violations"), 0);
    json_decref(j);
    weir_test_free(r);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* Faults and missing services: an operator that touches state, timers,     */
/* metrics and the snapshot, and tells what it got                           */
/* ------------------------------------------------------------------------ */

typedef struct faulty {
    weir_state *v, *m;
    int metric_rc; /* what weir_metric_register returned in open() */
    uint64_t restored_id;
} faulty;

static int faulty_open(weir_ctx *ctx, void **self)
{
    faulty *f = calloc(1, sizeof *f);
    if (!f)
        return WEIR_ENOMEM;
    weir_metric *m = NULL;
    f->metric_rc = weir_metric_register(
        ctx, WEIR_METRIC_COUNTER, "faulty_total", "records", NULL, NULL, &m);
    weir_state_desc dv = {.size = sizeof dv,
                          .name = "v",
                          .kind = WEIR_STATE_VALUE,
                          .ttl_ms = WEIR_TTL_NONE};
    weir_state_desc dm = dv;
    dm.name = "m";
    dm.kind = WEIR_STATE_MAP;
    int rc = weir_state_declare(ctx, &dv, &f->v);
    if (rc == 0)
        rc = weir_state_declare(ctx, &dm, &f->m);
    if (rc < 0) {
        free(f);
        return rc;
    }
    *self = f;
    return 0;
}

/* Three state calls (value get, value put, map put), then a timer; any
 * failure is returned as is, with the host's message. */
static int faulty_process(weir_ctx *ctx, void *self, const weir_record *rec,
                          uint32_t port)
{
    faulty *f = self;
    const void *old;
    size_t old_len;
    int rc = weir_value_get(ctx, f->v, &old, &old_len);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rc;
    if ((rc = weir_value_put(ctx, f->v, rec->value, rec->value_len)) < 0 ||
        (rc = weir_map_put(ctx, f->m, "u", 1, rec->value, rec->value_len)) < 0)
        return rc;
    return weir_timer_register(ctx, WEIR_TIME_EVENT, rec->ts + 10);
}

static int faulty_on_timer(weir_ctx *ctx, void *self, const void *key,
                           size_t key_len, weir_time_domain d, int64_t ts)
{
    return 0;
}

static int faulty_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    faulty *f = self;
    char b[64];
    int n = snprintf(b, sizeof b, "metric %d restored %llu", f->metric_rc,
                     (unsigned long long)f->restored_id);
    return weir_snapshot_write(ctx, b, (size_t)n);
}

static int faulty_restore(weir_ctx *ctx, void *self, uint64_t id,
                          uint32_t version, const void *data, size_t len)
{
    ((faulty *)self)->restored_id = id;
    return 0;
}

static void faulty_close(weir_ctx *ctx, void *self)
{
    free(self);
}

static const weir_operator faulty_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "faulty",
    .snapshot_version = 1,
    .open = faulty_open,
    .process = faulty_process,
    .on_timer = faulty_on_timer,
    .snapshot = faulty_snapshot,
    .restore = faulty_restore,
    .close = faulty_close,
};
static const weir_operator *const faulty_ops[] = {&faulty_op, NULL};
static const weir_plugin faulty_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "faulty",
    .version = "1",
    .operators = faulty_ops,
};

static void faulty_config(weir_test_config *c)
{
    weir_test_config_init(c);
    c->plugin = &faulty_plugin;
    c->op = "faulty";
}

static void expect_error(const weir_test *t, const char *a, const char *b)
{
    const char *e = weir_test_error(t);
    if (!strstr(e, a) || (b && !strstr(e, b)))
        fail_msg("error '%s' lacks '%s' / '%s'", e, a, b ? b : "");
}

static void test_fail_state(void **state)
{
    weir_test_config c;
    faulty_config(&c);
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    assert_int_equal(weir_test_process(t, 0, "a", 1, 100, "1", 1), 0);
    /* two more calls succeed: the third (map put) fails */
    weir_test_fail_state(t, 2, WEIR_EIO);
    assert_int_equal(weir_test_process(t, 0, "b", 1, 100, "2", 1), WEIR_EIO);
    expect_error(t, "process: weir_map_put: ", "a fault the test injected");
    const void *v;
    size_t n;
    /* the harness's own reads neither count nor fail; the failed put left
     * the store as it was, the two before it went through */
    assert_int_equal(weir_test_value_get(t, "v", "b", 1, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(v, "2", 1);
    assert_int_equal(weir_test_map_get(t, "m", "b", 1, "u", 1, &v, &n),
                     WEIR_ENOTFOUND);
    /* from now on every state call fails, the first one of process() */
    assert_int_equal(weir_test_process(t, 0, "c", 1, 100, "3", 1), WEIR_EIO);
    expect_error(t, "process: weir_value_get: ", NULL);
    weir_test_fail_state(t, 0, WEIR_ENOMEM);
    assert_int_equal(weir_test_process(t, 0, "c", 1, 100, "3", 1), WEIR_ENOMEM);
    /* rc 0 stops the faults */
    weir_test_fail_state(t, 0, 0);
    assert_int_equal(weir_test_process(t, 0, "c", 1, 100, "3", 1), 0);
    assert_int_equal(weir_test_map_get(t, "m", "c", 1, "u", 1, &v, &n), 0);
    uint64_t entries;
    assert_int_equal(weir_test_state_entries(t, "m", &entries), 0);
    assert_int_equal(entries, 2); /* a and c */
    weir_test_free(t);
}

static void test_fail_timers(void **state)
{
    weir_test_config c;
    faulty_config(&c);
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    uint64_t n;
    assert_int_equal(weir_test_process(t, 0, "a", 1, 100, "1", 1), 0);
    assert_int_equal(weir_test_timer_count(t, &n), 0);
    assert_int_equal(n, 1);
    weir_test_fail_timers(t, WEIR_EFAIL);
    assert_int_equal(weir_test_process(t, 0, "b", 1, 100, "2", 1), WEIR_EFAIL);
    expect_error(t,
                 "process: weir_timer_register: ", "a fault the test injected");
    assert_int_equal(weir_test_timer_count(t, &n), 0);
    assert_int_equal(n, 1); /* b's timer was not registered */
    weir_test_fail_timers(t, 0);
    assert_int_equal(weir_test_process(t, 0, "b", 1, 100, "2", 1), 0);
    assert_int_equal(weir_test_timer_count(t, &n), 0);
    assert_int_equal(n, 2);
    weir_test_free(t);
}

static void test_without_services(void **state)
{
    weir_test_config c;
    faulty_config(&c);
    weir_test *t = NULL;
    /* every service: the metric registers, the snapshot is written */
    assert_int_equal(weir_test_new(&c, &t), 0);
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    const void *d;
    size_t n;
    weir_test_snapshot_data(t, &d, &n);
    assert_string_equal((const char *)d, "metric 0 restored 0");
    assert_true(weir_test_metric(t, "faulty_total", NULL) >= 0);
    weir_test_free(t);

    c.without = WEIR_TEST_WITHOUT_METRICS;
    assert_int_equal(weir_test_new(&c, &t), 0);
    assert_true(weir_test_metric(t, "faulty_total", NULL) < 0);
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    weir_test_snapshot_data(t, &d, &n);
    char want[64];
    snprintf(want, sizeof want, "metric %d restored 0", WEIR_ENOTSUP);
    assert_string_equal((const char *)d, want);
    weir_test_free(t);

    c.without = WEIR_TEST_WITHOUT_SNAPSHOT_WRITE;
    assert_int_equal(weir_test_new(&c, &t), 0);
    id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), WEIR_ENOTSUP);
    expect_error(t, "operator 'op' (faulty) subtask 1/1: snapshot: ", NULL);
    weir_test_free(t);

    c.without = 1u << 30;
    assert_int_equal(weir_test_new(&c, &t), WEIR_EINVAL);
    expect_error(t, "config.without has unknown bits 0x40000000", NULL);
    weir_test_free(t);

    /* A config of an older testing.h (without the later fields) is read
     * with their defaults. */
    faulty_config(&c);
    c.without = WEIR_TEST_WITHOUT_SNAPSHOT_WRITE;
    c.size = (uint32_t)offsetof(weir_test_config, without);
    assert_int_equal(weir_test_new(&c, &t), 0);
    id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    weir_test_free(t);
}

/* A plugin snapshot restored as checkpoint 5: restore() gets id 5 and the
 * next checkpoint is 6, as after a restart of a job from checkpoint 5. */
static void test_restore_snapshot_id(void **state)
{
    weir_test_config c;
    faulty_config(&c);
    c.restore_snapshot = "";
    c.restore_snapshot_set = 1;
    c.restore_snapshot_version = 1;
    c.restore_snapshot_id = 5;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    assert_int_equal(id, 6);
    const void *d;
    size_t n;
    weir_test_snapshot_data(t, &d, &n);
    assert_string_equal((const char *)d, "metric 0 restored 5");
    id = 6;
    assert_int_equal(weir_test_checkpoint(t, &id), WEIR_EINVAL);
    /* restored from that checkpoint in turn: id 6, next 7 */
    weir_test_config r;
    faulty_config(&r);
    r.restore_from = weir_test_checkpoint_dir(t, 6);
    weir_test *t2 = NULL;
    assert_int_equal(weir_test_new(&r, &t2), 0);
    id = 0;
    assert_int_equal(weir_test_checkpoint(t2, &id), 0);
    assert_int_equal(id, 7);
    weir_test_snapshot_data(t2, &d, &n);
    assert_string_equal((const char *)d, "metric 0 restored 6");
    weir_test_free(t2);
    weir_test_free(t);
    /* the default is checkpoint 1 */
    c.restore_snapshot_id = 0;
    assert_int_equal(weir_test_new(&c, &t), 0);
    id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    assert_int_equal(id, 2);
    weir_test_free(t);
}

/* An asynchronous operator (tests/async/asyncop: an I/O thread completes
 * each request after its "delay"): requests in flight, results in input
 * order (async mode ordered), a watermark held behind them, a checkpoint
 * with a request in flight restored and invoked again, finish() draining. */
static int async_rec(weir_test *t, const char *key, const char *json)
{
    size_t len;
    void *mp = tu_json_to_mp(json, &len);
    int rc = weir_test_process(t, 0, key, strlen(key), 100, mp, len);
    free(mp);
    return rc;
}

static void test_async(void **state)
{
    weir_test *t = mk(ASYNCOP_SO, "asyncop", "emit_watermarks: true", NULL);
    assert_int_equal(async_rec(t, "a", "{\"i\": 0, \"delay\": 80}"), 0);
    assert_int_equal(async_rec(t, "b", "{\"i\": 1, \"delay\": 0}"), 0);
    assert_int_equal(async_rec(t, "c", "{\"i\": 2, \"delay\": 10}"), 0);
    /* record 1 completed inside async_invoke() but waits behind 0 */
    assert_true(weir_test_async_pending(t) >= 1);
    assert_int_equal(weir_test_watermark(t, 500), 0);
    size_t n = weir_test_emitted_count(t, 0);
    assert_true(n < 4); /* the watermark is held behind the requests */
    assert_int_equal(weir_test_async_wait(t, 5000), 0);
    assert_int_equal(weir_test_async_pending(t), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 4);
    for (int i = 0; i < 3; i++) {
        json_t *j = out_json(t, 0, (size_t)i);
        assert_int_equal(jint(j, "i"), i);
        assert_int_equal(jint(j, "status"), 0);
        json_decref(j);
    }
    json_t *j = out_json(t, 0, 3);
    assert_int_equal(jint(j, "wm"), 500); /* after the results before it */
    json_decref(j);
    assert_int_equal(weir_test_current_watermark(t), 500);

    /* A checkpoint with a request in flight: the restored instance invokes
     * it again and delivers its result. */
    assert_int_equal(async_rec(t, "d", "{\"i\": 7, \"delay\": 300}"), 0);
    assert_int_equal(weir_test_async_pending(t), 1);
    uint64_t id = 0;
    assert_int_equal(weir_test_checkpoint(t, &id), 0);
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = ASYNCOP_SO;
    c.op = "asyncop";
    c.restore_from = weir_test_checkpoint_dir(t, id);
    weir_test *r = NULL;
    /* Direct mode cannot invoke the restored request again: refused. */
    c.async_direct = 1;
    assert_int_equal(weir_test_new(&c, &r), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(r), "holds 1 async request"));
    weir_test_free(r);
    r = NULL;
    c.async_direct = 0;
    assert_int_equal(weir_test_new(&c, &r), 0);
    assert_int_equal(weir_test_async_pending(r), 1);
    assert_int_equal(weir_test_async_wait(r, 1), WEIR_ETIMEDOUT);
    assert_non_null(strstr(weir_test_error(r), "still in flight"));
    assert_int_equal(weir_test_finish(r), 0); /* delivers it first */
    assert_int_equal(weir_test_emitted_count(r, 0), 1);
    j = out_json(r, 0, 0);
    assert_int_equal(jint(j, "i"), 7);
    json_decref(j);
    const weir_test_record *rec = weir_test_emitted(r, 0, 0);
    assert_memory_equal(rec->key, "d", 1);
    weir_test_free(r);
    weir_test_free(t);
}

/* config.async_direct with asyncop: the test invokes the requests and reads
 * every completion the plugin made (a request completed twice, one refused,
 * one the plugin completes only in close() with WEIR_ECANCELED), delivers
 * them itself; weir_test_process is refused, and so is the mode for an
 * operator that is not asynchronous. */
static int direct_rec(weir_test *t, const char *key, const char *json)
{
    size_t len;
    void *mp = tu_json_to_mp(json, &len);
    int rc = weir_test_async_invoke(t, 0, key, strlen(key), 100, mp, len, NULL);
    free(mp);
    return rc;
}

static void test_async_direct(void **state)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = ASYNCOP_SO;
    c.op = "asyncop";
    c.async_direct = 1;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    assert_int_equal(direct_rec(t, "a", "{\"i\": 0, \"delay\": 50}"), 0);
    assert_int_equal(direct_rec(t, "b", "{\"i\": 1, \"twice\": true}"), 0);
    assert_int_equal(direct_rec(t, "c", "{\"i\": 2, \"never\": true}"), 0);
    assert_int_equal(direct_rec(t, "d", "{\"i\": 3, \"refuse\": 1}"),
                     WEIR_ERETRY);
    assert_int_equal(weir_test_async_requests(t), 4);
    size_t len;
    void *mp = tu_json_to_mp("{\"i\": 9}", &len);
    assert_int_equal(weir_test_process(t, 0, "e", 1, 100, mp, len),
                     WEIR_EINVAL);
    free(mp);
    assert_non_null(strstr(weir_test_error(t), "async_direct"));

    assert_int_equal(weir_test_async_wait_completed(t, 2, 5000), 0);
    assert_int_equal(weir_test_async_wait_completed(t, 3, 50), WEIR_ETIMEDOUT);
    assert_int_equal(weir_test_async_completed(t), 2);
    weir_test_async_request r;
    assert_int_equal(weir_test_async_request_info(t, 1, &r), 0);
    assert_int_equal(r.completions, 2); /* the second one was refused */
    assert_int_equal(r.status, WEIR_OK);
    assert_int_equal(weir_test_async_request_info(t, 4, &r), WEIR_ENOTFOUND);

    assert_int_equal(weir_test_async_deliver(t, 0), 0);
    assert_int_equal(weir_test_emitted_count(t, 0), 1);
    json_t *j = out_json(t, 0, 0);
    assert_int_equal(jint(j, "i"), 0);
    assert_int_equal(jint(j, "status"), 0);
    json_decref(j);
    assert_memory_equal(weir_test_emitted(t, 0, 0)->key, "a", 1);
    assert_int_equal(weir_test_async_deliver(t, 2), WEIR_ESTATE);
    assert_int_equal(weir_test_async_deliver(t, 3), WEIR_ESTATE);

    weir_test_close(t); /* close() abandons "c" */
    assert_int_equal(weir_test_async_request_info(t, 2, &r), 0);
    assert_int_equal(r.completions, 1);
    assert_int_equal(r.status, WEIR_ECANCELED);
    assert_int_equal(r.late, 0);
    assert_null(r.result);
    assert_int_equal(weir_test_async_request_info(t, 3, &r), 0);
    assert_int_equal(r.completions, 0); /* refused: never completed */
    weir_test_free(t);

    weir_test_config_init(&c);
    c.plugin_path = COUNT_SO;
    c.op = "count";
    c.async_direct = 1;
    assert_int_equal(weir_test_new(&c, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "not asynchronous"));
    weir_test_free(t);
}

/* An operator that keeps its one request and never completes it, so the
 * test completes it through the host's table, before and after close(). */
static weir_async *hold_req;
static const weir_host_api *hold_api;

static int hold_open(weir_ctx *ctx, void **self)
{
    hold_api = ctx->api;
    *self = NULL;
    return 0;
}

static int hold_invoke(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port, weir_async *req)
{
    hold_req = req;
    return 0;
}

static int hold_result(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port, int status, const void *result,
                       size_t len)
{
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, result, len);
}

static void hold_close(weir_ctx *ctx, void *self)
{
}

static const weir_operator hold_op = {
    .size = sizeof(weir_operator),
    .name = "hold",
    .open = hold_open,
    .async_invoke = hold_invoke,
    .on_async_result = hold_result,
    .close = hold_close,
};
static const weir_operator *const hold_ops[] = {&hold_op, NULL};
static const weir_plugin hold_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "hold",
    .version = "1",
    .operators = hold_ops,
};

static void test_async_direct_late(void **state)
{
    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin = &hold_plugin;
    c.op = "hold";
    c.async_direct = 1;
    weir_test *t = NULL;
    assert_int_equal(weir_test_new(&c, &t), 0);
    size_t i = 99;
    assert_int_equal(weir_test_async_invoke(t, 0, "k", 1, 5, "v", 1, &i), 0);
    assert_int_equal(i, 0);
    assert_int_equal(weir_async_complete(hold_api, hold_req, WEIR_OK, "xy", 2),
                     WEIR_OK);
    assert_int_equal(weir_async_complete(hold_api, hold_req, WEIR_OK, "z", 1),
                     WEIR_EINVAL);
    assert_int_equal(weir_async_complete(hold_api, NULL, WEIR_OK, "z", 1),
                     WEIR_EINVAL);
    weir_test_async_request r;
    assert_int_equal(weir_test_async_request_info(t, 0, &r), 0);
    assert_int_equal(r.completions, 2);
    assert_int_equal(r.late, 0);
    assert_int_equal(r.result_len, 2);
    assert_memory_equal(r.result, "xy", 2); /* the first completion's */
    assert_int_equal(weir_test_async_deliver(t, 0), 0);
    const weir_test_record *e = weir_test_emitted(t, 0, 0);
    assert_non_null(e);
    assert_int_equal(e->ts, 5);
    assert_int_equal(e->value_len, 2);
    assert_memory_equal(e->value, "xy", 2);
    weir_test_close(t);
    /* after close() returned: counted as late */
    assert_int_equal(
        weir_async_complete(hold_api, hold_req, WEIR_ECANCELED, NULL, 0),
        WEIR_EINVAL);
    assert_int_equal(weir_test_async_request_info(t, 0, &r), 0);
    assert_int_equal(r.completions, 3);
    assert_int_equal(r.late, 1);
    assert_int_equal(weir_test_async_deliver(t, 0), WEIR_ESTATE);
    weir_test_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_errors),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_count_emits_and_state),
        cmocka_unit_test(test_window_timers_restore),
        cmocka_unit_test(test_session_ttl_watermark),
        cmocka_unit_test(test_session_ttl_clock),
        cmocka_unit_test(test_plugin_pointer_clock_timers),
        cmocka_unit_test(test_restore_snapshot_bytes),
        cmocka_unit_test(test_restore_rescale),
        cmocka_unit_test(test_source),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_fail_state),
        cmocka_unit_test(test_fail_timers),
        cmocka_unit_test(test_without_services),
        cmocka_unit_test(test_restore_snapshot_id),
        cmocka_unit_test(test_async),
        cmocka_unit_test(test_async_direct),
        cmocka_unit_test(test_async_direct_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
