/*
 * test_file_source.c - the JSON lines source: conversion to records, bad
 * lines with their line numbers, the log limit, on_error=fail, event-time
 * parsing (checked against timegm), the parallel split, snapshot/restore,
 * very long and deeply nested lines, and the errors of open(); lines over
 * max_line_bytes (a 200 MB one read in bounded memory, exact offsets across
 * snapshot/restore after a skipped one); FIFOs, devices, directories and
 * sockets refused without blocking, or read with allow_non_regular (a FIFO
 * fed by a writer, not replayable); and the same through the real `weir run
 * --no-supervisor` with a real FIFO.
 *
 * Every test runs under an alarm, so that a source blocking in open() or
 * poll() fails the test instead of hanging the suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

/* file_source with `p` as subtask `sub` of `par`, restored from the
 * snapshot `data` of checkpoint `id` when `restore`. Returns
 * weir_test_new()'s code. */
static int try_src(const weir_test_param *p, uint32_t sub, uint32_t par,
                   int restore, uint64_t id, const void *data, size_t len,
                   uint32_t version, weir_test **t)
{
    hx_spec s = {.so = FILE_SOURCE_SO,
                 .op = "file_source",
                 .params = p,
                 .sub = sub,
                 .par = par};
    return restore ? hx_try_restore(&s, id, version, data, len, t)
                   : hx_try(&s, t);
}

/* A checkpoint with id `id`; the snapshot bytes in *data, *len. */
static int ck(weir_test *t, uint64_t id, const unsigned char **data,
              size_t *len)
{
    int rc = weir_test_checkpoint(t, &id);
    const void *d;
    weir_test_snapshot_data(t, &d, len);
    *data = d;
    return rc;
}

typedef struct env {
    char *dir;
    char *path;
} env;

/* A test that blocks (in open() on a FIFO, say) ends the program with a
 * message instead of hanging; ctest's TIMEOUT is the second guard. */
#define TEST_ALARM_S 60

static void on_alarm(int sig)
{
    static const char msg[] = "test_file_source: a test is blocked (no "
                              "progress within the alarm); failing\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
    }
    _exit(1);
}

static int setup(void **state)
{
    signal(SIGALRM, on_alarm);
    alarm(TEST_ALARM_S);
    env *e = calloc(1, sizeof *e);
    e->dir = tu_tmpdir();
    e->path = tu_path(e->dir, "in.jsonl");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    alarm(0);
    env *e = *state;
    tu_rmtree(e->dir);
    free(e->dir);
    free(e->path);
    free(e);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    tu_write_file(path, text, strlen(text));
}

/* Opens file_source on `path` with `extra` parameters, restored from
 * `snap` (24 bytes, or NULL: a fresh start) of checkpoint `id`. */
static weir_test *restore_src(const char *path, const weir_test_param *extra,
                              uint32_t sub, uint32_t par, uint64_t id,
                              const void *snap, size_t snap_len)
{
    weir_test_param p[16];
    size_t n = 0;
    p[n++] = (weir_test_param){"path", path};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    weir_test *t = NULL;
    if (try_src(p, sub, par, snap != NULL, id, snap, snap_len, 1, &t) !=
        WEIR_OK)
        fail_msg("open failed: %s", weir_test_error(t));
    return t;
}

static weir_test *open_src(const char *path, const weir_test_param *extra,
                           uint32_t sub, uint32_t par)
{
    return restore_src(path, extra, sub, par, 0, NULL, 0);
}

/* Like restore_src, returning weir_test_new()'s code (version 1). */
static int try_restore_src(const char *path, const weir_test_param *extra,
                           uint32_t version, const void *snap, size_t snap_len,
                           weir_test **t)
{
    weir_test_param p[16];
    size_t n = 0;
    p[n++] = (weir_test_param){"path", path};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    return try_src(p, 0, 1, 1, 1, snap, snap_len, version, t);
}

static weir_test *run_src(const char *path, const weir_test_param *extra,
                          uint32_t sub, uint32_t par)
{
    weir_test *t = open_src(path, extra, sub, par);
    int rc = weir_test_drain(t, 100000);
    if (rc != WEIR_EOF)
        fail_msg("drain: %d %s", rc, weir_test_error(t));
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    return t;
}

static void assert_key(const weir_test_record *r, const void *key, size_t len)
{
    assert_int_equal(r->key_len, len);
    assert_memory_equal(r->key, key, len);
}

/* The record's value equals the JSON text `line`. */
static void assert_value(const weir_test_record *r, const char *line)
{
    json_error_t err;
    json_t *want = json_loads(line, JSON_ALLOW_NUL, &err);
    if (!want)
        fail_msg("test line does not parse: %s", err.text);
    json_t *got = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(got);
    if (!json_equal(want, got)) {
        char *g = json_dumps(got, JSON_COMPACT);
        fail_msg("value %s != %s", g, line);
    }
    json_decref(want);
    json_decref(got);
}

static const weir_test_param key_ts[] = {
    {"key_field", "user"}, {"time_field", "ts"}, {NULL, NULL}};

/* ------------------------------------------------------------------------ */

static void test_basic(void **state)
{
    env *e = *state;
    const char *lines[] = {
        ("{\"user\":\"u1\",\"page\":\"/"
         "a\",\"ts\":1000,\"nested\":{\"x\":[1,2.5,"
         "true,false,null,\"s\"],\"e\":{},\"a\":[]}}"),
        "{\"user\":42,\"ts\":\"2026-01-01T00:00:00Z\"}",
        "{\"user\":1.5,\"ts\":\"2026-01-01T00:00:00.123Z\"}",
        "{\"user\":\"u2\",\"ts\":2000,\"big\":-9223372036854775807,\"r\":"
        "1e300}",
        "{\"user\":\"u\\u00fc\\u0000x\",\"ts\":3,\"z\":\"a\\u0000b\"}",
    };
    char text[1024];
    snprintf(text, sizeof text, "%s\n%s\n%s\n\n   \t \n%s\r\n%s", lines[0],
             lines[1], lines[2], lines[3], lines[4]); /* no final newline */
    write_text(e->path, text);

    weir_test *t = run_src(e->path, key_ts, 0, 1);
    assert_int_equal(hx_n(t), 5);
    assert_key(hx_rec(t, 0), "u1", 2);
    assert_key(hx_rec(t, 1), "42", 2);
    assert_key(hx_rec(t, 2), "1.5", 3);
    assert_key(hx_rec(t, 3), "u2", 2);
    assert_key(hx_rec(t, 4), "u\xc3\xbc\0x", 5);
    struct tm tm = {.tm_year = 126, .tm_mday = 1};
    int64_t jan1 = (int64_t)timegm(&tm) * 1000;
    assert_int_equal(hx_rec(t, 0)->ts, 1000);
    assert_int_equal(hx_rec(t, 1)->ts, jan1);
    assert_int_equal(hx_rec(t, 2)->ts, jan1 + 123);
    assert_int_equal(hx_rec(t, 3)->ts, 2000);
    assert_int_equal(hx_rec(t, 4)->ts, 3);
    for (size_t i = 0; i < 5; i++)
        assert_value(hx_rec(t, i), lines[i]);
    assert_int_equal(hx_logs_of(t, "file_source"),
                     0); /* empty lines are silent */
    weir_test_free(t);

    /* Without time_field records carry no event time. */
    const weir_test_param only_key[] = {{"key_field", "user"}, {NULL, NULL}};
    t = run_src(e->path, only_key, 0, 1);
    assert_int_equal(hx_n(t), 5);
    for (size_t i = 0; i < 5; i++)
        assert_true(hx_rec(t, i)->ts == WEIR_TS_NONE);
    weir_test_free(t);
}

static const struct {
    int line;
    const char *text;
    const char *reason;
} bad_lines[] = {
    {1, "{\"user\":\"a\",\"ts\":1}", NULL},
    {2, "not json", "invalid JSON"},
    {3, "{\"user\":\"b\",\"ts\":2}", NULL},
    {4, "[1,2]", "an array, not a JSON object"},
    {5, "{\"x\":1}", "no key field 'user'"},
    {6, "{\"user\":\"c\",\"ts\":3}", NULL},
    {7, "{\"user\":true,\"ts\":4}", "key field 'user' is a boolean"},
    {8, "{\"user\":\"a\",\"ts\":\"yesterday\"}", "not an ISO-8601"},
    {9, "{\"user\":\"a\",\"ts\":1.5}", "expected integer milliseconds"},
    {10, "{\"user\":\"a\"}", "no time field 'ts'"},
    {11, "\"just a string\"", "a string, not a JSON object"},
    {12, "{\"user\":{\"o\":1},\"ts\":5}", "key field 'user' is an object"},
    {13, "{\"user\":\"a\",\"ts\":null}", "time field 'ts' is null"},
    {14, "{\"user\":\"a\",\"ts\":-9223372036854775808}", "no event time"},
    {15, "{\"user\":\"a\",\"ts\":1}}", "invalid JSON"},
};
#define N_BAD_LINES (sizeof bad_lines / sizeof *bad_lines)

static void test_bad_lines(void **state)
{
    env *e = *state;
    char text[2048] = "";
    for (size_t i = 0; i < N_BAD_LINES; i++) {
        strcat(text, bad_lines[i].text);
        strcat(text, "\n");
    }
    write_text(e->path, text);
    weir_test *t = run_src(e->path, key_ts, 0, 1);
    assert_int_equal(hx_n(t), 3);
    assert_key(hx_rec(t, 0), "a", 1);
    assert_key(hx_rec(t, 1), "b", 1);
    assert_key(hx_rec(t, 2), "c", 1);

    /* The first 10 bad lines are logged with FILE:LINE and the reason. */
    size_t logged = 0;
    for (size_t i = 0; i < N_BAD_LINES; i++) {
        if (!bad_lines[i].reason)
            continue;
        char where[600];
        snprintf(where, sizeof where, "%s:%d: ", e->path, bad_lines[i].line);
        const char *msg = hx_find_log(t, where);
        if (logged < 10) {
            if (!msg || !strstr(msg, bad_lines[i].reason))
                fail_msg("line %d: log '%s' lacks '%s'", bad_lines[i].line,
                         msg ? msg : "(none)", bad_lines[i].reason);
            logged++;
        } else {
            assert_null(msg);
        }
    }
    assert_int_equal(hx_count_logs(t, WEIR_LOG_WARN, "line skipped"), 10);
    assert_non_null(hx_find_log(t, "further bad lines are counted"));
    const char *sum = hx_find_log(t, "skipped 12 bad line(s)");
    assert_non_null(sum);
    assert_non_null(strstr(sum, "emitted 3 record(s)"));
    weir_test_free(t);
}

/* With on_error=fail, each kind of bad line fails with FILE:LINE: reason. */
static void test_on_error_fail(void **state)
{
    env *e = *state;
    const weir_test_param fail[] = {{"key_field", "user"},
                                    {"time_field", "ts"},
                                    {"on_error", "fail"},
                                    {NULL, NULL}};
    for (size_t i = 0; i < N_BAD_LINES; i++) {
        if (!bad_lines[i].reason)
            continue;
        char text[512];
        snprintf(text, sizeof text,
                 "{\"user\":\"ok\",\"ts\":1}\n\n%s\n{\"user\""
                 ":\"after\",\"ts\":2}\n",
                 bad_lines[i].text);
        write_text(e->path, text);
        weir_test *t = open_src(e->path, fail, 0, 1);
        int rc = weir_test_drain(t, 100);
        assert_int_equal(rc, WEIR_EINVAL);
        char want[600];
        snprintf(want, sizeof want, "%s:3: ", e->path);
        if (!strstr(weir_test_error(t), want) ||
            !strstr(weir_test_error(t), bad_lines[i].reason))
            fail_msg("error '%s' lacks '%s' or '%s'", weir_test_error(t), want,
                     bad_lines[i].reason);
        assert_int_equal(hx_n(t), 1);
        weir_test_free(t);
    }
}

static void test_log_limit(void **state)
{
    env *e = *state;
    char text[4096] = "";
    for (int i = 0; i < 25; i++)
        strcat(text, "{oops}\n{\"user\":\"x\",\"ts\":1}\n");
    write_text(e->path, text);
    weir_test *t = run_src(e->path, key_ts, 0, 1);
    assert_int_equal(hx_n(t), 25);
    assert_int_equal(hx_count_logs(t, WEIR_LOG_WARN, "line skipped"), 10);
    char where[600];
    snprintf(where, sizeof where, "%s:19: ", e->path); /* 10th bad line */
    assert_non_null(hx_find_log(t, where));
    snprintf(where, sizeof where, "%s:21: ", e->path); /* 11th: not logged */
    assert_null(hx_find_log(t, where));
    assert_non_null(hx_find_log(t, "skipped 25 bad line(s)"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s, int ms,
                      int off_min)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return ((int64_t)timegm(&tm) - off_min * 60) * 1000 + ms;
}

static void test_time_parsing(void **state)
{
    env *e = *state;
    const struct {
        const char *t;
        int64_t want;
    } good[] = {
        {"\"2026-01-01T00:00:00Z\"", utc_ms(2026, 1, 1, 0, 0, 0, 0, 0)},
        {"\"2026-01-01T00:00:00.5Z\"", utc_ms(2026, 1, 1, 0, 0, 0, 500, 0)},
        {"\"2026-01-01T00:00:00.123456Z\"",
         utc_ms(2026, 1, 1, 0, 0, 0, 123, 0)},
        {"\"2024-02-29T12:34:56.789+02:00\"",
         utc_ms(2024, 2, 29, 12, 34, 56, 789, 120)},
        {"\"2024-02-29T12:34:56-0130\"",
         utc_ms(2024, 2, 29, 12, 34, 56, 0, -90)},
        {"\"1969-12-31T23:59:59.999Z\"", -1},
        {"\"2026-06-15 08:00:00\"", utc_ms(2026, 6, 15, 8, 0, 0, 0, 0)},
        {"\"1970-01-01T00:00:00z\"", 0},
        {"\"2000-03-01t00:00:00+05\"", utc_ms(2000, 3, 1, 0, 0, 0, 0, 300)},
        {"\"1900-03-01T00:00:00Z\"", utc_ms(1900, 3, 1, 0, 0, 0, 0, 0)},
        {"\"2026-12-31T23:59:60Z\"", utc_ms(2027, 1, 1, 0, 0, 0, 0, 0)},
        {"-5", -5},
        {"1.7e12", 1700000000000},
        {"0", 0},
    };
    const char *bad[] = {
        "\"2026-13-01T00:00:00Z\"",
        "\"2025-02-29T00:00:00Z\"",
        "\"2026-01-01\"",
        "\"2026-01-01T24:00:00Z\"",
        "\"2026-01-01T00:00:00Zjunk\"",
        "\"2026-01-01T00:00:00.Z\"",
        "\"26-01-01T00:00:00Z\"",
        "\"\"",
        "\"2026-01-01T00:00Z\"",
        "\"2026-01-01T00:00:00+2400\"",
        "\"1900-02-29T00:00:00Z\"",
        "\"2026-01-01T00:60:00Z\"",
        "1e300",
        "true",
    };
    size_t ng = sizeof good / sizeof *good, nb = sizeof bad / sizeof *bad;
    char text[4096] = "", line[128];
    for (size_t i = 0; i < ng; i++) {
        snprintf(line, sizeof line, "{\"k\":\"g%zu\",\"t\":%s}\n", i,
                 good[i].t);
        strcat(text, line);
    }
    for (size_t i = 0; i < nb; i++) {
        snprintf(line, sizeof line, "{\"k\":\"b%zu\",\"t\":%s}\n", i, bad[i]);
        strcat(text, line);
    }
    write_text(e->path, text);
    const weir_test_param p[] = {
        {"key_field", "k"}, {"time_field", "t"}, {NULL, NULL}};
    weir_test *t = run_src(e->path, p, 0, 1);
    assert_int_equal(hx_n(t), ng);
    for (size_t i = 0; i < ng; i++) {
        if (hx_rec(t, i)->ts != good[i].want)
            fail_msg("%s: got %lld, want %lld", good[i].t,
                     (long long)hx_rec(t, i)->ts, (long long)good[i].want);
    }
    assert_non_null(hx_find_log(t, "skipped 14 bad line(s)"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_parallel_split(void **state)
{
    env *e = *state;
    char text[8192] = "", line[64];
    for (int n = 1; n <= 100; n++) {
        snprintf(line, sizeof line, "{\"id\":%d,\"user\":\"u%d\"}\n", n, n % 7);
        strcat(text, line);
    }
    write_text(e->path, text);
    const weir_test_param p[] = {
        {"key_field", "user"}, {"batch", "4"}, {NULL, NULL}};
    int seen[101] = {0};
    for (uint32_t sub = 0; sub < 3; sub++) {
        weir_test *t = run_src(e->path, p, sub, 3);
        for (size_t i = 0; i < hx_n(t); i++) {
            json_t *v =
                tu_mp_to_json(hx_rec(t, i)->value, hx_rec(t, i)->value_len);
            int id = (int)json_integer_value(json_object_get(v, "id"));
            json_decref(v);
            assert_true(id >= 1 && id <= 100);
            assert_int_equal((id - 1) % 3, sub);
            seen[id]++;
        }
        weir_test_free(t);
    }
    for (int n = 1; n <= 100; n++)
        assert_int_equal(seen[n], 1);
}

static void test_snapshot_restore(void **state)
{
    env *e = *state;
    char text[8192] = "", line[64];
    for (int n = 1; n <= 50; n++) {
        if (n == 10)
            snprintf(line, sizeof line, "broken %d\n", n);
        else
            snprintf(line, sizeof line, "{\"id\":%d,\"user\":\"u\"}\n", n);
        strcat(text, line);
    }
    write_text(e->path, text);
    const weir_test_param p[] = {
        {"key_field", "user"}, {"batch", "7"}, {NULL, NULL}};

    weir_test *a = open_src(e->path, p, 0, 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(weir_test_poll(a), WEIR_OK);
    assert_int_equal(hx_n(a), 20); /* lines 1..21 without line 10 */
    const unsigned char *snap;
    size_t snap_len;
    assert_int_equal(ck(a, 1, &snap, &snap_len), WEIR_OK);
    assert_int_equal(snap_len, 24);

    weir_test *b = restore_src(e->path, p, 0, 1, 1, snap, snap_len);
    assert_int_equal(weir_test_drain(b, 100), WEIR_EOF);
    assert_int_equal(weir_test_finish(b), WEIR_OK);
    assert_int_equal(hx_n(b), 29);
    for (size_t i = 0; i < hx_n(b); i++) {
        json_t *v = tu_mp_to_json(hx_rec(b, i)->value, hx_rec(b, i)->value_len);
        assert_int_equal(json_integer_value(json_object_get(v, "id")),
                         22 + (int)i);
        json_decref(v);
    }
    /* The bad-line count continues from the snapshot. */
    assert_non_null(hx_find_log(b, "skipped 1 bad line(s)"));
    weir_test_free(b);

    /* Damaged or foreign snapshots are refused with a reason (each fails
     * the restart, as in a job). */
    weir_test *c = NULL;
    assert_int_equal(try_restore_src(e->path, p, 2, snap, snap_len, &c),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "version 2"));
    weir_test_free(c);
    assert_int_equal(try_restore_src(e->path, p, 1, snap, 10, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "10 bytes"));
    weir_test_free(c);
    unsigned char s[24] = {0};
    s[0] = 5; /* offset 5: inside line 1 */
    assert_int_equal(try_restore_src(e->path, p, 1, s, 24, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "does not start a line"));
    weir_test_free(c);
    s[0] = 0;
    s[2] = 1; /* offset 65536: beyond the end */
    assert_int_equal(try_restore_src(e->path, p, 1, s, 24, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "beyond the end"));
    weir_test_free(c);
    memset(s, 0, sizeof s);
    s[8] = 3; /* line 3 at offset 0 */
    assert_int_equal(try_restore_src(e->path, p, 1, s, 24, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "damaged"));
    weir_test_free(c);
    /* A snapshot at offset 0 reads from the start. */
    memset(s, 0, sizeof s);
    c = restore_src(e->path, p, 0, 1, 1, s, 24);
    assert_int_equal(weir_test_drain(c, 100), WEIR_EOF);
    assert_int_equal(hx_n(c), 49);
    weir_test_free(c);

    weir_test_param q[4] = {{"path", e->path}, p[0], p[1], {NULL, NULL}};
    hx_spec sd = {.so = FILE_SOURCE_SO,
                  .op = "file_source",
                  .params = q,
                  .without = WEIR_TEST_WITHOUT_SNAPSHOT_WRITE};
    weir_test *d = hx_open(&sd);
    assert_int_equal(ck(d, 4, &snap, &snap_len), WEIR_ENOTSUP);
    assert_non_null(strstr(weir_test_error(d), "snapshot"));
    weir_test_free(d);
    weir_test_free(a);
}

/* ------------------------------------------------------------------------ */

static void test_long_line(void **state)
{
    env *e = *state;
    size_t big = 5u << 20;
    char *text = malloc(big + 256);
    assert_non_null(text);
    size_t n =
        (size_t)sprintf(text, "{\"user\":\"a\"}\n{\"user\":\"b\",\"s\":\"");
    memset(text + n, 'x', big);
    n += big;
    n += (size_t)sprintf(text + n, "\"}\n{\"user\":\"c\"}\n");
    tu_write_file(e->path, text, n);
    free(text);
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    weir_test *t = run_src(e->path, p, 0, 1);
    assert_int_equal(hx_n(t), 3);
    json_t *v = tu_mp_to_json(hx_rec(t, 1)->value, hx_rec(t, 1)->value_len);
    assert_int_equal(json_string_length(json_object_get(v, "s")), big);
    json_decref(v);
    assert_key(hx_rec(t, 2), "c", 1);
    weir_test_free(t);
}

static void nested_line(char *buf, int arrays)
{
    strcpy(buf, "{\"user\":\"a\",\"v\":");
    for (int i = 0; i < arrays; i++)
        strcat(buf, "[");
    strcat(buf, "1");
    for (int i = 0; i < arrays; i++)
        strcat(buf, "]");
    strcat(buf, "}\n");
}

static void test_depth_limit(void **state)
{
    env *e = *state;
    char text[512], l1[200], l2[200];
    nested_line(l1, 31); /* object + 31 arrays = 32 levels: fine */
    nested_line(l2, 32); /* 33 levels: msgpack-c could not unpack it */
    snprintf(text, sizeof text, "%s%s", l1, l2);
    write_text(e->path, text);
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    weir_test *t = run_src(e->path, p, 0, 1);
    assert_int_equal(hx_n(t), 1);
    json_t *v = tu_mp_to_json(hx_rec(t, 0)->value, hx_rec(t, 0)->value_len);
    assert_non_null(v); /* unpackable */
    json_decref(v);
    assert_non_null(hx_find_log(t, "nested deeper than 32 levels"));
    weir_test_free(t);
}

static void test_open_errors(void **state)
{
    env *e = *state;
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    char *missing = tu_path(e->dir, "nope.jsonl");
    weir_test_param q[] = {
        {"path", missing}, {"key_field", "user"}, {NULL, NULL}};
    weir_test *t = NULL;
    assert_int_equal(try_src(q, 0, 1, 0, 0, NULL, 0, 0, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), missing));
    assert_non_null(strstr(weir_test_error(t), "No such file"));
    weir_test_free(t);
    free(missing);

    q[0].value = e->dir;
    t = NULL;
    assert_int_equal(try_src(q, 0, 1, 0, 0, NULL, 0, 0, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "is a directory"));
    weir_test_free(t);

    write_text(e->path, "{}\n");
    const weir_test_param empty_key[] = {
        {"path", e->path}, {"key_field", "''"}, {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_src(empty_key, 0, 1, 0, 0, NULL, 0, 0, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "key_field"));
    weir_test_free(t);
    const weir_test_param empty_time[] = {{"path", e->path},
                                          {"key_field", "k"},
                                          {"time_field", "''"},
                                          {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_src(empty_time, 0, 1, 0, 0, NULL, 0, 0, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "time_field"));
    weir_test_free(t);

    /* The table makes path and key_field required (the host enforces it). */
    assert_int_equal(try_src(p, 0, 1, 0, 0, NULL, 0, 0, &t), WEIR_EINVAL);
    assert_non_null(
        strstr(weir_test_error(t), "missing required parameter 'path'"));
    weir_test_free(t);
}

static void test_emit_failure(void **state)
{
    env *e = *state;
    write_text(e->path, "{\"user\":\"a\"}\n");
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    weir_test *t = open_src(e->path, p, 0, 1);
    weir_test_fail_emits(t, WEIR_EIO);
    assert_int_equal(weir_test_poll(t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "emit failed"));
    assert_non_null(strstr(weir_test_error(t), ":1:"));
    weir_test_free(t);
}

static void test_byte_order_mark(void **state)
{
    env *e = *state;
    write_text(e->path, "\xef\xbb\xbf{\"user\":\"b\"}\n{\"user\":\"c\"}\n");
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    weir_test *t = run_src(e->path, p, 0, 1);
    assert_int_equal(hx_n(t), 2);
    assert_key(hx_rec(t, 0), "b", 1);
    assert_int_equal(hx_logs_of(t, "file_source"), 0);
    weir_test_free(t);
}

static void test_empty_file(void **state)
{
    env *e = *state;
    write_text(e->path, "");
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    weir_test *t = open_src(e->path, p, 0, 1);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    assert_int_equal(hx_n(t), 0);
    assert_int_equal(hx_logs_of(t, "file_source"), 0);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* Lines longer than max_line_bytes                                          */
/* ------------------------------------------------------------------------ */

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Writes head, then `fill` NUL bytes (a hole made by ftruncate, so the file
 * costs no disk and no memory to make), then tail. */
static void write_holey(const char *path, const char *head, uint64_t fill,
                        const char *tail)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    size_t hl = strlen(head), tl = strlen(tail);
    assert_int_equal(write(fd, head, hl), (ssize_t)hl);
    assert_int_equal(ftruncate(fd, (off_t)(hl + fill)), 0);
    assert_int_equal(lseek(fd, 0, SEEK_END), (off_t)(hl + fill));
    assert_int_equal(write(fd, tail, tl), (ssize_t)tl);
    assert_int_equal(close(fd), 0);
}

static long max_rss_kib(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

/* A 200 MB line without a newline (NUL bytes) is reported as a bad line
 * with its number and length, the lines after it are read, and the peak
 * memory grows by about max_line_bytes (16 MiB by default), not by the
 * line's length. */
static void test_huge_line(void **state)
{
    env *e = *state;
    const uint64_t huge = 200u << 20;
    write_holey(e->path, "{\"user\":\"a\"}\n", huge,
                "\n{\"user\":\"b\"}\n{\"user\":\"c\"}\n");
    const weir_test_param p[] = {{"key_field", "user"}, {NULL, NULL}};
    long before = max_rss_kib();
    weir_test *t = run_src(e->path, p, 0, 1);
    long grown_mib = (max_rss_kib() - before) / 1024;
    if (getenv("TH_VERBOSE"))
        fprintf(stderr, "peak memory grew by %ld MiB\n", grown_mib);
    /* The line buffer grows by doubling to 16 MiB; under ASan every old
     * buffer stays in the quarantine, so up to about 32 MiB is fine. */
    if (grown_mib > 96)
        fail_msg("peak memory grew by %ld MiB reading a 200 MiB line",
                 grown_mib);
    assert_int_equal(hx_n(t), 3);
    assert_key(hx_rec(t, 0), "a", 1);
    assert_key(hx_rec(t, 1), "b", 1);
    assert_key(hx_rec(t, 2), "c", 1);
    char where[600];
    snprintf(where, sizeof where, "%s:2: ", e->path);
    const char *msg = hx_find_log(t, where);
    if (!msg || !strstr(msg, "209715200 bytes") ||
        !strstr(msg, "max_line_bytes") || !strstr(msg, "line skipped"))
        fail_msg("log of line 2: '%s'", msg ? msg : "(none)");
    assert_non_null(hx_find_log(t, "skipped 1 bad line(s)"));
    weir_test_free(t);
}

/* With on_error=fail a long line fails the subtask with FILE:LINE and its
 * length; a line of exactly max_line_bytes is fine. */
static void test_long_line_limit(void **state)
{
    env *e = *state;
    char *text = malloc(8192);
    assert_non_null(text);
    int n = sprintf(text, "{\"user\":\"a\",\"s\":\"");
    int fill = 1024 - n - 2; /* line 1: exactly 1024 bytes */
    memset(text + n, 'x', (size_t)fill);
    n += fill;
    n += sprintf(text + n, "\"}\n{\"user\":\"b\",\"s\":\"");
    memset(text + n, 'y', 2000); /* line 2: 2020 bytes before its "\n" */
    n += 2000;
    n += sprintf(text + n, "\"}\r\n{\"user\":\"c\"}\n");
    tu_write_file(e->path, text, (size_t)n);
    free(text);

    const weir_test_param fail[] = {{"key_field", "user"},
                                    {"max_line_bytes", "1KiB"},
                                    {"on_error", "fail"},
                                    {NULL, NULL}};
    weir_test *t = open_src(e->path, fail, 0, 1);
    assert_int_equal(weir_test_drain(t, 100), WEIR_EINVAL);
    assert_int_equal(hx_n(t), 1);
    char want[600];
    snprintf(want, sizeof want, "%s:2: ", e->path);
    if (!strstr(weir_test_error(t), want) ||
        !strstr(weir_test_error(t), "2020 bytes") ||
        !strstr(weir_test_error(t), "max_line_bytes (1024)"))
        fail_msg("error '%s'", weir_test_error(t));
    weir_test_free(t);

    const weir_test_param skip[] = {
        {"key_field", "user"}, {"max_line_bytes", "1KiB"}, {NULL, NULL}};
    t = run_src(e->path, skip, 0, 1);
    assert_int_equal(hx_n(t), 2);
    assert_key(hx_rec(t, 1), "c", 1);
    assert_non_null(hx_find_log(t, want));
    weir_test_free(t);

    /* The limit has a floor. */
    const weir_test_param tiny[] = {{"path", e->path},
                                    {"key_field", "user"},
                                    {"max_line_bytes", "100"},
                                    {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_src(tiny, 0, 1, 0, 0, NULL, 0, 0, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "max_line_bytes"));
    weir_test_free(t);
}

/* A long line is reported by the subtask it belongs to only; the others
 * skip it silently and go on. */
static void test_long_line_parallel(void **state)
{
    env *e = *state;
    write_holey(e->path, "{\"user\":\"a\"}\n", 5000,
                "\n{\"user\":\"b\"}\n{\"user\":\"c\"}\n");
    const weir_test_param p[] = {
        {"key_field", "user"}, {"max_line_bytes", "1KiB"}, {NULL, NULL}};
    weir_test *t0 = run_src(e->path, p, 0, 2);
    weir_test *t1 = run_src(e->path, p, 1, 2);
    assert_int_equal(hx_n(t0), 2); /* lines 1 and 3 */
    assert_key(hx_rec(t0, 1), "b", 1);
    assert_int_equal(hx_logs_of(t0, "file_source"), 0);
    assert_int_equal(hx_n(t1), 1); /* line 4 */
    assert_key(hx_rec(t1, 0), "c", 1);
    char want[600];
    snprintf(want, sizeof want, "%s:2: line of 5000 bytes", e->path);
    assert_non_null(hx_find_log(t1, want));
    weir_test_free(t0);
    weir_test_free(t1);
}

/* Snapshots after a skipped long line hold exact byte offsets, and a
 * restore from any snapshot (also one taken while the source was still
 * inside the long line) emits exactly the records that followed it. */
static void test_long_line_restore(void **state)
{
    env *e = *state;
    const char *head = "{\"id\":1,\"user\":\"a\"}\n"; /* 20 bytes */
    const uint64_t big = 10u << 20;
    write_holey(e->path, head, big,
                "\n{\"id\":3,\"user\":\"b\"}\n{\"id\":4,\"user\":\"c\"}\n");
    const weir_test_param p[] = {{"key_field", "user"},
                                 {"max_line_bytes", "1KiB"},
                                 {"batch", "1"},
                                 {NULL, NULL}};
    enum { MAX_POLLS = 64 };
    unsigned char snaps[MAX_POLLS][24];
    size_t emitted[MAX_POLLS];
    size_t n_snaps = 0;

    weir_test *a = open_src(e->path, p, 0, 1);
    int rc;
    do {
        assert_true(n_snaps < MAX_POLLS);
        const unsigned char *snap;
        size_t snap_len;
        assert_int_equal(ck(a, n_snaps + 1, &snap, &snap_len), WEIR_OK);
        assert_int_equal(snap_len, 24);
        memcpy(snaps[n_snaps], snap, 24);
        emitted[n_snaps++] = hx_n(a);
        rc = weir_test_poll(a);
    } while (rc == WEIR_OK);
    assert_int_equal(rc, WEIR_EOF);
    assert_int_equal(hx_n(a), 3);

    /* The first snapshot after line 2 points just past its newline. */
    size_t k = 0;
    while (k < n_snaps && get_u64(snaps[k] + 8) < 2)
        k++;
    assert_true(k < n_snaps);
    assert_int_equal(get_u64(snaps[k]), strlen(head) + big + 1);
    assert_int_equal(get_u64(snaps[k] + 8), 2);
    assert_int_equal(get_u64(snaps[k] + 16), 1);
    /* Every snapshot is at a line start: 0, 20 or past line 2 or later. */
    for (size_t i = 0; i < n_snaps; i++) {
        uint64_t off = get_u64(snaps[i]), line = get_u64(snaps[i] + 8);
        assert_true((line == 0 && off == 0) ||
                    (line == 1 && off == strlen(head)) || line >= 2);
    }

    for (size_t i = 0; i < n_snaps; i++) {
        weir_test *b = restore_src(e->path, p, 0, 1, i + 1, snaps[i], 24);
        assert_int_equal(weir_test_drain(b, 1000), WEIR_EOF);
        if (hx_n(b) != hx_n(a) - emitted[i])
            fail_msg("restore from snapshot %zu (offset %llu): %zu records, "
                     "want %zu",
                     i, (unsigned long long)get_u64(snaps[i]), hx_n(b),
                     hx_n(a) - emitted[i]);
        for (size_t j = 0; j < hx_n(b); j++) {
            const weir_test_record *x = hx_rec(b, j),
                                   *y = hx_rec(a, emitted[i] + j);
            assert_int_equal(x->value_len, y->value_len);
            assert_memory_equal(x->value, y->value, x->value_len);
        }
        /* The long line is reported again only when re-read. */
        assert_int_equal(hx_find_log(b, "longer than max_line_bytes") != NULL,
                         get_u64(snaps[i] + 8) < 2);
        weir_test_free(b);
    }
    weir_test_free(a);
}

/* ------------------------------------------------------------------------ */
/* Files that are not regular files                                          */
/* ------------------------------------------------------------------------ */

/* file_source on `path` (key_field user) with the options given, restored
 * from `snap` of checkpoint 1 when it is not NULL. Returns weir_test_new()'s
 * code; the parameter table always accepts them (a failure is open()'s or
 * restore()'s). */
static int new_src(const char *path, const char *allow, const char *max_line,
                   uint32_t sub, uint32_t par, const void *snap,
                   size_t snap_len, weir_test **t)
{
    weir_test_param p[8];
    size_t n = 0;
    p[n++] = (weir_test_param){"path", path};
    p[n++] = (weir_test_param){"key_field", "user"};
    if (allow)
        p[n++] = (weir_test_param){"allow_non_regular", allow};
    if (max_line)
        p[n++] = (weir_test_param){"max_line_bytes", max_line};
    p[n] = (weir_test_param){NULL, NULL};
    int rc = try_src(p, sub, par, snap != NULL, 1, snap, snap_len, 1, t);
    if (rc < 0 && !strstr(weir_test_error(*t), ": open: ") &&
        !strstr(weir_test_error(*t), ": restore: "))
        fail_msg("parameters refused: %s", weir_test_error(*t));
    return rc;
}

static void assert_refused(const char *path, const char *allow,
                           const char *type, const char *hint)
{
    weir_test *t = NULL;
    assert_int_equal(new_src(path, allow, NULL, 0, 1, NULL, 0, &t),
                     WEIR_EINVAL);
    if (!strstr(weir_test_error(t), path) ||
        !strstr(weir_test_error(t), type) ||
        (hint && !strstr(weir_test_error(t), hint)))
        fail_msg("error '%s' lacks '%s', '%s' or '%s'", weir_test_error(t),
                 path, type, hint ? hint : "");
    weir_test_free(t);
}

/* A FIFO without a writer is refused at once (open() used to block for
 * ever), naming the path, its type and the parameter that allows it. */
static void test_fifo_refused(void **state)
{
    env *e = *state;
    char *fifo = tu_path(e->dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_refused(fifo, NULL, "is a FIFO", "allow_non_regular");
    assert_refused(fifo, "false", "is a FIFO", "allow_non_regular");
    /* Every subtask would read a different part of it. */
    weir_test *t = NULL;
    assert_int_equal(new_src(fifo, "true", NULL, 1, 2, NULL, 0, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "parallelism 2"));
    weir_test_free(t);
    free(fifo);
}

/* Devices, directories and sockets are refused; a directory and a socket
 * even with allow_non_regular; /dev/null with it reads as empty. */
static void test_non_regular_refused(void **state)
{
    env *e = *state;
    assert_refused("/dev/null", NULL, "is a character device",
                   "allow_non_regular");
    assert_refused(e->dir, NULL, "is a directory", NULL);
    assert_refused(e->dir, "true", "is a directory", NULL);

    char *sock = tu_path(e->dir, "sock");
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(sfd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    assert_true(strlen(sock) < sizeof sa.sun_path);
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(bind(sfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_refused(sock, NULL, "is a socket", NULL);
    assert_refused(sock, "true", "is a socket", NULL);
    close(sfd);
    free(sock);

    weir_test *t = NULL;
    assert_int_equal(new_src("/dev/null", "true", NULL, 0, 1, NULL, 0, &t),
                     WEIR_OK);
    assert_int_equal(weir_test_drain(t, 10), WEIR_EOF);
    assert_int_equal(hx_n(t), 0);
    weir_test_free(t);
}

/* An endless line (/dev/zero) never ends a poll late: each poll reads a
 * bounded amount and returns. */
static void test_endless_device(void **state)
{
    (void)state;
    weir_test *t = NULL;
    assert_int_equal(new_src("/dev/zero", "true", "1KiB", 0, 1, NULL, 0, &t),
                     WEIR_OK);
    for (int i = 0; i < 5; i++)
        assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 0);
    weir_test_free(t);
}

/* With allow_non_regular a FIFO is read as a writer writes: no writer yet
 * is "nothing now", not the end; the writer closing it is the end. It
 * cannot be replayed: a restore at a non-zero offset fails. */
static void test_fifo_allowed(void **state)
{
    env *e = *state;
    char *fifo = tu_path(e->dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    weir_test *t = NULL;
    assert_int_equal(new_src(fifo, "true", NULL, 0, 1, NULL, 0, &t), WEIR_OK);
    assert_int_equal(weir_test_poll(t), WEIR_EAGAIN);

    int w = open(fifo, O_WRONLY | O_NONBLOCK);
    assert_true(w >= 0);
    assert_int_equal(weir_test_poll(t),
                     WEIR_EAGAIN); /* a writer, no data yet */
    const char *part1 = "{\"user\":\"a\"}\n{\"user\":\"b\"}\n{\"us";
    assert_int_equal(write(w, part1, strlen(part1)), (ssize_t)strlen(part1));
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 2);
    uint64_t id = 1;
    assert_int_equal(weir_test_checkpoint(t, &id), WEIR_OK);
    const void *snap;
    size_t snap_len;
    weir_test_snapshot_data(t, &snap, &snap_len);
    assert_int_equal(snap_len, 24);
    assert_int_equal(get_u64(snap), 26);
    const char *part2 = "er\":\"c\"}\n{\"user\":\"d\"}";
    assert_int_equal(write(w, part2, strlen(part2)), (ssize_t)strlen(part2));
    assert_int_equal(close(w), 0);
    assert_int_equal(weir_test_drain(t, 100), WEIR_EOF);
    assert_int_equal(hx_n(t), 4);
    assert_key(hx_rec(t, 2), "c", 1);
    assert_key(hx_rec(t, 3), "d", 1);

    /* Replaying needs a seek, which a FIFO has not. */
    weir_test *r = NULL;
    assert_int_equal(new_src(fifo, "true", NULL, 0, 1, snap, snap_len, &r),
                     WEIR_EINVAL);
    if (!strstr(weir_test_error(r), fifo) ||
        !strstr(weir_test_error(r), "offset 26") ||
        !strstr(weir_test_error(r), "cannot be replayed"))
        fail_msg("error '%s'", weir_test_error(r));
    weir_test_free(r);
    /* Offset 0 (nothing read yet) needs no seek. */
    unsigned char zero[24] = {0};
    assert_int_equal(new_src(fifo, "true", NULL, 0, 1, zero, 24, &r), WEIR_OK);
    weir_test_free(r);
    weir_test_free(t);
    free(fifo);
}

/* ------------------------------------------------------------------------ */
/* Through the real `weir run --no-supervisor`                               */
/* ------------------------------------------------------------------------ */

#define E2E_DEADLINE_MS 30000

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Starts weir run --no-supervisor JOB in `dir`, output to dir/weir.log. */
static pid_t start_weir(const char *dir, const char *job)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char log[4200];
        snprintf(log, sizeof log, "%s/weir.log", dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(dir) != 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(125);
        execl(WEIR_BIN, "weir", "run", "--no-supervisor", "--dir",
              WEIR_PLUGIN_DIR, job, (char *)NULL);
        _exit(126);
    }
    return pid;
}

/* Waits for `pid` up to the deadline; kills it and fails the test after. */
static int wait_weir(pid_t pid, const char *dir)
{
    int status = 0;
    for (long waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        assert_true(r >= 0);
        if (r == pid)
            break;
        if (waited >= E2E_DEADLINE_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("weir run in %s did not end within %d ms", dir,
                     E2E_DEADLINE_MS);
        }
        sleep_ms(10);
    }
    if (!WIFEXITED(status))
        fail_msg("weir run in %s was killed by signal %d", dir,
                 WTERMSIG(status));
    return WEXITSTATUS(status);
}

static void write_job(const char *dir, const char *config)
{
    char *job = tu_path(dir, "job.yaml");
    char text[2048];
    snprintf(text, sizeof text,
             "job: fifo\n"
             "state: {dir: ./state}\n"
             "checkpoint: {dir: ./ckpt}\n"
             "operators:\n"
             "  - id: src\n"
             "    type: file_source\n"
             "    config: {path: fifo, key_field: user%s}\n"
             "  - id: out\n"
             "    type: file_sink\n"
             "    inputs: [src]\n"
             "    config: {path: out.jsonl}\n",
             config);
    write_text(job, text);
    free(job);
}

/* A job reading a FIFO fails at once with exit 1 and says why, instead of
 * blocking in open() for ever (SIGTERM did not stop it either). */
static void test_e2e_fifo_refused(void **state)
{
    env *e = *state;
    char *fifo = tu_path(e->dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    write_job(e->dir, "");
    int rc = wait_weir(start_weir(e->dir, "job.yaml"), e->dir);
    char *log_path = tu_path(e->dir, "weir.log");
    char *log = tu_read_file(log_path, NULL);
    assert_non_null(log);
    if (rc != 1 || !strstr(log, "'fifo' is a FIFO") ||
        !strstr(log, "allow_non_regular"))
        fail_msg("exit %d, output:\n%s", rc, log);
    free(log);
    free(log_path);
    free(fifo);
}

/* With allow_non_regular the job waits for a writer, reads what it writes
 * and ends (exit 0) when the writer closes the FIFO. */
static void test_e2e_fifo_allowed(void **state)
{
    env *e = *state;
    char *fifo = tu_path(e->dir, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    write_job(e->dir, ", allow_non_regular: true");
    pid_t pid = start_weir(e->dir, "job.yaml");
    /* Opening for writing fails with ENXIO until weir opened the FIFO. */
    int w = -1;
    for (long waited = 0; w < 0; waited += 10) {
        w = open(fifo, O_WRONLY | O_NONBLOCK);
        if (w >= 0)
            break;
        assert_int_equal(errno, ENXIO);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid || waited > E2E_DEADLINE_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            char *log = tu_read_file(tu_path(e->dir, "weir.log"), NULL);
            fail_msg("weir never opened the FIFO; output:\n%s", log);
        }
        sleep_ms(10);
    }
    sleep_ms(50); /* the source polls a writer that has written nothing */
    const char *lines =
        "{\"user\":\"u1\"}\n{\"user\":\"u2\"}\n{\"user\":\"u3\"}\n";
    assert_int_equal(write(w, lines, strlen(lines)), (ssize_t)strlen(lines));
    assert_int_equal(close(w), 0);
    int rc = wait_weir(pid, e->dir);
    char *log_path = tu_path(e->dir, "weir.log");
    char *out_path = tu_path(e->dir, "out.jsonl");
    char *log = tu_read_file(log_path, NULL);
    char *out = tu_read_file(out_path, NULL);
    if (rc != 0 || !out || !strstr(out, "\"u1\"") || !strstr(out, "\"u2\"") ||
        !strstr(out, "\"u3\""))
        fail_msg("exit %d, out.jsonl:\n%s\noutput:\n%s", rc,
                 out ? out : "(none)", log ? log : "(none)");
    free(log);
    free(out);
    free(log_path);
    free(out_path);
    free(fifo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_fail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_parsing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_order_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_parallel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_line_restore, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fifo_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_regular_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_endless_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fifo_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_fifo_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_e2e_fifo_allowed, setup, teardown),
    };
    /* TEST_FILTER=test_fifo* runs only the tests matching the pattern. */
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
