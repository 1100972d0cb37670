/*
 * session through the real host: sessions closed by an event-time or
 * processing-time state TTL and emitted from the TTL hook. The sessions
 * example (examples/sessions) is run as committed and compared with its
 * oracle, which computes the sessions on its own in Python; the small cases
 * state their expected sessions next to them, worked out by hand from the
 * rules in plugins/session/session.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kp.h"

#define EXAMPLE_DIR WEIR_SOURCE_DIR "/examples/sessions"
#define EXAMPLE_IN  EXAMPLE_DIR "/sessions.jsonl"
#define ORACLE                                                                 \
    "/usr/bin/python3 '" EXAMPLE_DIR "/oracle.py' --input '" EXAMPLE_IN "'"
#define BIG (512 * 1024)

static const int caches[] = {0, 100000};

static void expect(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n got  '%s'\n want '%s'", what, got, want);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = malloc(BIG);
    assert_non_null(buf);
    size_t n = fread(buf, 1, BIG - 1, f);
    assert_true(n < BIG - 1);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Copies `text` into a new string with each pats[i] replaced by subs[i],
 * in one pass over the original; fails the test unless every pattern
 * occurs. */
static char *replace(const char *text, const char *const *pats,
                     const char *const *subs, size_t n)
{
    char *out = malloc(BIG);
    assert_non_null(out);
    size_t o = 0, hits[8] = {0};
    assert_true(n <= 8);
    while (*text) {
        size_t i = 0;
        while (i < n && strncmp(text, pats[i], strlen(pats[i])) != 0)
            i++;
        const char *piece = i < n ? subs[i] : text;
        size_t len = i < n ? strlen(subs[i]) : 1;
        assert_true(o + len < BIG);
        memcpy(out + o, piece, len);
        o += len;
        text += i < n ? strlen(pats[i]) : 1;
        if (i < n)
            hits[i]++;
    }
    out[o] = 0;
    for (size_t i = 0; i < n; i++)
        if (!hits[i])
            fail_msg("'%s' does not occur in the example", pats[i]);
    return out;
}

/* Runs a job: `src` (YAML of the source, id src) -> session (id s, `cfg`)
 * -> sink of port out at <name>-out.jsonl and, with updates, a sink of port
 * updates at <name>-upd.jsonl. Returns the job's code; the summaries of the
 * closed sessions, sorted, go to out. */
static int run_session(const char *name, int cache, const char *src,
                       const char *cfg, int updates, char *out, size_t cap,
                       char **err)
{
    char yaml[4096], path[512], upd[512];
    snprintf(path, sizeof path, "%s/%s-out.jsonl", kp_tmp, name);
    snprintf(upd, sizeof upd, "%s/%s-upd.jsonl", kp_tmp, name);
    int n = snprintf(yaml, sizeof yaml,
                     "job: %s\n"
                     "state: {dir: '%s/state', cache_entries: %d}\n"
                     "operators:\n"
                     "  - %s\n"
                     "  - {id: s, type: session, inputs: [src], config: %s}\n"
                     "  - {id: sink, type: file_sink, inputs: [s.out],\n"
                     "     config: {path: '%s'}}\n",
                     name, kp_tmp, cache, src, cfg, path);
    if (updates)
        snprintf(yaml + n, sizeof yaml - (size_t)n,
                 "  - {id: sink_upd, type: file_sink, inputs: [s.updates],\n"
                 "     config: {path: '%s'}}\n",
                 upd);
    remove(path);
    int rc = kp_run(yaml, err);
    kp_summaries(path, kp_fmt_session, 1, out, cap);
    return rc;
}

/* A seqsrc source: event times `ts`, keys, 120 ms apart, watermark every
 * millisecond with the given out-of-orderness. The pause leaves time for
 * each watermark to reach the operator before the next record, also in a
 * loaded sanitizer build. */
static void seq_src(char *buf, size_t cap, const char *ts, const char *keys,
                    const char *ooo)
{
    snprintf(buf, cap,
             "{id: src, type: seqsrc,\n"
             "     config: {ts: [%s], keys: %s, pause_ms: 120},\n"
             "     watermarks: {interval: 1ms, out_of_orderness: %s}}",
             ts, keys, ooo);
}

/* The sessions example, run from its committed topology (paths moved to
 * the source tree and a temporary directory), equals the oracle's sessions:
 * with the write-back cache off and on. */
static void test_example_matches_oracle(void **unused)
{
    char *want = malloc(BIG), *got = malloc(BIG);
    assert_non_null(want);
    assert_non_null(got);
    int n_want = kp_command_summaries(ORACLE, kp_fmt_session, want, BIG);
    assert_true(n_want > 100);
    char *yaml = read_file(EXAMPLE_DIR "/sessions.yaml");
    for (size_t c = 0; c < 2; c++) {
        char outdir[512], cache[64], path[600];
        snprintf(outdir, sizeof outdir, "%s/example-%d/", kp_tmp, caches[c]);
        snprintf(cache, sizeof cache, "cache_entries: %d", caches[c]);
        const char *pats[] = {"examples/sessions/", "out/",
                              "cache_entries: 100000"};
        const char *subs[] = {EXAMPLE_DIR "/", outdir, cache};
        char *job = replace(yaml, pats, subs, 3);
        char *err = NULL;
        int rc = kp_run(job, &err);
        if (rc != 0)
            fail_msg("the example failed: %s", err ? err : "?");
        free(err);
        free(job);
        snprintf(path, sizeof path, "%ssessions.jsonl", outdir);
        int n_got = kp_summaries(path, kp_fmt_session, 1, got, BIG);
        assert_int_equal(n_got, n_want);
        if (strcmp(got, want) != 0)
            fail_msg("cache %d: the sessions differ from the oracle's",
                     caches[c]);
    }
    free(yaml);
    free(want);
    free(got);
}

/* a@5000 arrives after a@10000 and stamps a's entry at 5000 + 20 s, so
 * b@31000 (watermark 26000) expires it before a's last event + 20 s: the
 * hook keeps the session, and a@27000 (17 s after a@10000) still joins it,
 * as sorting a's events says. */
static void test_out_of_order_keeps_session(void **unused)
{
    char src[512], got[512];
    seq_src(src, sizeof src, "0, 10000, 5000, 31000, 27000", "aaaba", "5s");
    for (size_t c = 0; c < 2; c++) {
        char *err = NULL;
        assert_int_equal(run_session("ooo", caches[c], src, "{gap: 20s}", 0,
                                     got, sizeof got, &err),
                         0);
        expect("sessions", got, "a:4:0-27000 b:1:31000-31000");
        free(err);
    }
}

/* A late event whose key's session already closed starts a new session:
 * b@100000 (no out-of-orderness) closes a's session {0}, and the late
 * a@1000 becomes a session of its own, closed at the next sweep. */
static void test_late_event_new_session(void **unused)
{
    char src[512], got[512];
    seq_src(src, sizeof src, "0, 100000, 1000", "aba", "0ms");
    for (size_t c = 0; c < 2; c++) {
        char *err = NULL;
        assert_int_equal(run_session("late", caches[c], src, "{gap: 10s}", 0,
                                     got, sizeof got, &err),
                         0);
        expect("sessions", got, "a:1:0-0 a:1:1000-1000 b:1:100000-100000");
        free(err);
    }
}

/* The gap is exclusive: events 20 s - 1 ms apart share a session, events
 * exactly 20 s apart do not. The watermark stays an hour behind, so the
 * split happens on arrival (the session is emitted before its TTL ran
 * out), and the rest closes at the end of input. */
static void test_gap_boundary(void **unused)
{
    char src[512], got[512];
    seq_src(src, sizeof src, "0, 19999, 39998, 59998", "aaaa", "1h");
    char *err = NULL;
    assert_int_equal(
        run_session("boundary", 0, src, "{gap: 20s}", 0, got, sizeof got, &err),
        0);
    expect("sessions", got, "a:1:59998-59998 a:3:0-39998");
    free(err);
}

/* emit_updates: port updates gets the running session after every event,
 * port out the closed sessions. */
static void test_updates(void **unused)
{
    char src[512], got[512], upd[512], path[512];
    seq_src(src, sizeof src, "0, 1000, 2000", "aba", "0ms");
    char *err = NULL;
    assert_int_equal(run_session("upd", 100000, src,
                                 "{gap: 10s, emit_updates: true}", 1, got,
                                 sizeof got, &err),
                     0);
    expect("closed", got, "a:2:0-2000 b:1:1000-1000");
    snprintf(path, sizeof path, "%s/upd-upd.jsonl", kp_tmp);
    kp_summaries(path, kp_fmt_session, 0, upd, sizeof upd);
    expect("updates", upd, "a:1:0-0 b:1:1000-1000 a:2:0-2000");
    free(err);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Processing time: times are the wall clock at arrival. Four events 30 ms
 * apart with gap 1 s are one session, closed while the source lingers;
 * "aba" 300 ms apart with gap 100 ms is one session per event; sessions
 * still open when the input ends are not emitted. */
static void test_processing_time(void **unused)
{
    char got[512], a[64], b[64];
    char *err = NULL;
    int64_t t0 = wall_ms();
    assert_int_equal(run_session("proc1", 0,
                                 "{id: src, type: seqsrc, config: {ts: [1, "
                                 "2, 3, 4], keys: aaaa, pause_ms: 30, "
                                 "linger_ms: 1600}}",
                                 "{gap: 1s, time: processing}", 0, got,
                                 sizeof got, &err),
                     0);
    int64_t t1 = wall_ms();
    long long start, end;
    assert_int_equal(sscanf(got, "a:4:%lld-%lld", &start, &end), 2);
    assert_true(t0 <= start && start <= end && end <= t1);

    assert_int_equal(run_session("proc2", 100000,
                                 "{id: src, type: seqsrc, config: {ts: [1, "
                                 "2, 3], keys: aba, pause_ms: 300, "
                                 "linger_ms: 500}}",
                                 "{gap: 100ms, time: processing}", 0, got,
                                 sizeof got, &err),
                     0);
    assert_int_equal(sscanf(got, "a:1:%63s a:1:%*s b:1:%63s", a, b), 2);

    assert_int_equal(run_session("proc3", 0,
                                 "{id: src, type: seqsrc, config: {ts: [1, "
                                 "2], keys: aa, pause_ms: 5}}",
                                 "{gap: 10s, time: processing}", 0, got,
                                 sizeof got, &err),
                     0);
    expect("open at the end", got, "");
    free(err);
}

/* Event-time sessions need records with event time. */
static void test_event_time_needs_ts(void **unused)
{
    char path[512], src[1024], got[64];
    snprintf(path, sizeof path, "%s/nots.jsonl", kp_tmp);
    kp_write(path, "{\"user\":\"a\"}\n");
    snprintf(src, sizeof src,
             "{id: src, type: file_source, config: {path: '%s', key_field: "
             "user}}",
             path);
    char *err = NULL;
    assert_true(
        run_session("nots", 0, src, "{gap: 1m}", 0, got, sizeof got, &err) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err, "session: a record without event time"));
    free(err);
}

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Runs the example input paced through session (gap `gap`) and watches
 * the session subtask: *early is set when it emitted a session before it
 * had read the whole input. The sessions must equal the oracle's for that
 * gap. */
static void run_paced(const char *gap, const char *gap_ms, int *early)
{
    char yaml[2048], path[512], cmd[1024];
    char *want = malloc(BIG), *got = malloc(BIG);
    assert_non_null(want);
    assert_non_null(got);
    snprintf(path, sizeof path, "%s/paced-%s.jsonl", kp_tmp, gap);
    snprintf(yaml, sizeof yaml,
             "job: paced\n"
             "state: {dir: '%s/state'}\n"
             "operators:\n"
             "  - {id: src, type: file_source,\n"
             "     config: {path: '%s', key_field: user, time_field: ts,\n"
             "              rate: 8000},\n"
             "     watermarks: {out_of_orderness: 10s, interval: 20ms}}\n"
             "  - {id: s, type: session, inputs: [{from: src, partition: "
             "key}],\n"
             "     config: {gap: %s}}\n"
             "  - {id: sink, type: file_sink, inputs: [s],\n"
             "     config: {path: '%s'}}\n",
             kp_tmp, EXAMPLE_IN, gap, path);
    int total = count_lines(EXAMPLE_IN);
    topo_job *job = NULL;
    rt_job *rt = NULL;
    char *err = NULL;
    assert_int_equal(kp_load(yaml, &job, &err), 0);
    assert_int_equal(rt_start(job, &rt, &err), 0);
    uint32_t s = UINT32_MAX;
    for (uint32_t i = 0; i < rt_task_count(rt); i++)
        if (strcmp(rt_task_stats_get(rt, i).op_id, "s") == 0)
            s = i;
    assert_true(s != UINT32_MAX);
    *early = 0;
    while (!rt_done(rt)) {
        rt_task_stats st = rt_task_stats_get(rt, s);
        if (st.records_out > 0 && st.records_in < (uint64_t)total)
            *early = 1;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(rt_wait(rt, &err), 0);
    assert_int_equal(rt_task_stats_get(rt, s).records_in, total);
    rt_destroy(rt);
    topo_free(job);
    snprintf(cmd, sizeof cmd, ORACLE " --gap-ms %s", gap_ms);
    int n_want = kp_command_summaries(cmd, kp_fmt_session, want, BIG);
    int n_got = kp_summaries(path, kp_fmt_session, 1, got, BIG);
    assert_int_equal(n_got, n_want);
    if (strcmp(got, want) != 0)
        fail_msg("gap %s: the sessions differ from the oracle's", gap);
    free(want);
    free(got);
    free(err);
}

/* The leak, and its fix. With a gap longer than the data (ten years), no
 * key's state is ever removed while the input lasts: the state holds every
 * user ever seen, and nothing is emitted before the end (one session per
 * user then). With gap 30m, keys are removed, and sessions emitted, while
 * the input is still being read. */
static void test_leak_contrast(void **unused)
{
    int early = 0;
    run_paced("3650d", "315360000000", &early);
    assert_false(early);
    run_paced("30m", "1800000", &early);
    assert_true(early);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_matches_oracle),
        cmocka_unit_test(test_out_of_order_keeps_session),
        cmocka_unit_test(test_late_event_new_session),
        cmocka_unit_test(test_gap_boundary),
        cmocka_unit_test(test_updates),
        cmocka_unit_test(test_processing_time),
        cmocka_unit_test(test_event_time_needs_ts),
        cmocka_unit_test(test_leak_contrast),
    };
    return cmocka_run_group_tests(tests, kp_setup, kp_teardown);
}
