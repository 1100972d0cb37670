/*
 * The rules operator in real in-process jobs (file_source -> rules ->
 * file_sink, threads, sockets, RocksDB, dlopen'ed plugins), with expected
 * matches written by hand: pruning of superseded versions by `history`,
 * and rule changes without event time.
 *
 * The change stream's watermark is held back (out_of_orderness 1000h), so
 * no event is judged before every change was read: the outcome does not
 * depend on how the two sources interleave.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/fs.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

#define T0   1000000000000LL
#define MINU (60LL * 1000)
#define HOUR (60 * MINU)

static reg_registry *registry;
static char tmpdir[256];

static int setup(void **unused)
{
    char *err = NULL;
    registry = reg_new(api_table());
    if (reg_load_dir(registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none");
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-rulesop-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    fs_rmtree(tmpdir, NULL);
    reg_free(registry);
    return 0;
}

static const char *const job_fmt =
    "job: r\n"
    "state: {dir: '%s/state'}\n"
    "operators:\n"
    "  - id: events\n"
    "    type: file_source\n"
    "    config: {path: '%s/events.jsonl', key_field: user, time_field: ts}\n"
    "    watermarks: {out_of_orderness: 0s, interval: 1ms}\n"
    "  - id: changes\n"
    "    type: file_source\n"
    "    config: {path: '%s/changes.jsonl', key_field: id%s}\n"
    "    watermarks: {out_of_orderness: 1000h, interval: 1ms}\n"
    "  - id: rules\n"
    "    type: rules\n"
    "    parallelism: 2\n"
    "    config: {history: %s}\n"
    "    inputs:\n"
    "      - {from: events, port: events, partition: key}\n"
    "      - {from: changes, port: rules, partition: broadcast}\n"
    "  - {id: out, type: file_sink, inputs: [{from: rules.out, partition: "
    "rebalance}],\n"
    "     config: {path: '%s/out.jsonl'}}\n";

/* One expected match: rule, version, output time. */
typedef struct want {
    const char *rule;
    int version;
    int64_t ts;
} want;

static int want_cmp(const void *a, const void *b)
{
    const want *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    int c = strcmp(x->rule, y->rule);
    return c ? c : x->version - y->version;
}

/* Runs the job in `dir` and returns the metrics text (malloc'ed). */
static char *run_job(const char *dir, int timed_changes, const char *history)
{
    char yaml[2048], *err = NULL;
    snprintf(yaml, sizeof yaml, job_fmt, dir, dir, dir,
             timed_changes ? ", time_field: ts" : "", history, dir);
    topo_job *job = NULL;
    if (topo_load_string("r.yaml", yaml, strlen(yaml), registry, &job, &err) <
        0)
        fail_msg("%s", err);
    rt_job *rt = NULL;
    if (rt_start(job, &rt, &err) < 0 || rt_wait(rt, &err) < 0)
        fail_msg("%s", err);
    char *metrics = rt_metrics_render(rt);
    rt_destroy(rt);
    topo_free(job);
    return metrics;
}

/* The matches in dir/out.jsonl equal `w` (any order). */
static void check_output(const char *dir, want *w, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    json_error_t e;
    want got[64];
    size_t k = 0;
    json_t *lines[64];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        assert_true(k < 64);
        json_t *r = lines[k] = json_loads(line, 0, &e);
        assert_non_null(r);
        json_t *v = json_object_get(r, "value");
        got[k].rule = json_string_value(json_object_get(v, "rule"));
        got[k].version = (int)json_integer_value(json_object_get(v, "version"));
        got[k].ts = json_integer_value(json_object_get(r, "ts"));
        k++;
    }
    free(line);
    fclose(f);
    qsort(got, k, sizeof *got, want_cmp);
    qsort(w, n, sizeof *w, want_cmp);
    for (size_t i = 0; i < k || i < n; i++) {
        if (i < k && i < n && !want_cmp(&got[i], &w[i]))
            continue;
        fail_msg("match %zu: got %s v%d at T0%+lld min, want %s v%d at T0%+lld "
                 "min",
                 i, i < k ? got[i].rule : "nothing", i < k ? got[i].version : 0,
                 i < k ? (long long)((got[i].ts - T0) / MINU) : 0LL,
                 i < n ? w[i].rule : "nothing", i < n ? w[i].version : 0,
                 i < n ? (long long)((w[i].ts - T0) / MINU) : 0LL);
    }
    for (size_t i = 0; i < k; i++)
        json_decref(lines[i]);
}

/* The metric line `name{...labels}` of subtask `sub` has value `v`. */
static void check_metric(const char *metrics, const char *name, int sub,
                         const char *label, long v)
{
    char want_line[256];
    snprintf(want_line, sizeof want_line,
             "%s{job_name=\"r\",operator=\"rules\",subtask=\"%d\"%s%s} %ld\n",
             name, sub, label ? "," : "", label ? label : "", v);
    if (!strstr(metrics, want_line))
        fail_msg("no line %s in:\n%s", want_line, metrics);
}

/* The sum over both subtasks of metric `name` with `label`. */
static long metric_sum(const char *metrics, const char *name, const char *label)
{
    long sum = 0;
    for (int sub = 0; sub < 2; sub++) {
        char prefix[256];
        snprintf(prefix, sizeof prefix,
                 "%s{job_name=\"r\",operator=\"rules\",subtask=\"%d\",%s} ",
                 name, sub, label);
        const char *at = strstr(metrics, prefix);
        if (at)
            sum += strtol(at + strlen(prefix), NULL, 10);
    }
    return sum;
}

static void write_count_change(FILE *f, const char *op, const char *id,
                               int version, int64_t ts, const char *type)
{
    fprintf(f, "{\"op\": \"%s\", \"id\": \"%s\", \"version\": %d", op, id,
            version);
    if (ts != INT64_MIN)
        fprintf(f, ", \"ts\": %lld", (long long)ts);
    if (type)
        fprintf(f,
                ", \"rule\": {\"type\": \"count\", \"event\": {\"type\": "
                "\"%s\"}, \"min\": 1, \"within\": \"1h\"}",
                type);
    fprintf(f, "}\n");
}

static FILE *open_in(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

static void write_event(FILE *f, const char *type, int64_t ts)
{
    fprintf(f, "{\"user\": \"a\", \"type\": \"%s\", \"ts\": %lld}\n", type,
            (long long)ts);
}

/*
 * r1: x from T0, y from T0+2h. r3: z from T0+3h, deleted at T0+4h. r2 at
 * T0+6h moves the rule stream's clock to T0+6h, and r3 is added again at
 * T0+6h+1ms. Events of user a: x at T0+30m, y at T0+2h30m, z at T0+3h30m,
 * z and w at T0+7h.
 */
static void write_history_inputs(const char *dir)
{
    FILE *f = open_in(dir, "changes.jsonl");
    write_count_change(f, "add", "r1", 1, T0, "x");
    write_count_change(f, "replace", "r1", 2, T0 + 2 * HOUR, "y");
    write_count_change(f, "add", "r3", 1, T0 + 3 * HOUR, "z");
    write_count_change(f, "delete", "r3", 2, T0 + 4 * HOUR, NULL);
    write_count_change(f, "add", "r2", 1, T0 + 6 * HOUR, "w");
    write_count_change(f, "add", "r3", 1, T0 + 6 * HOUR + 1, "z");
    fclose(f);
    f = open_in(dir, "events.jsonl");
    write_event(f, "x", T0 + 30 * MINU);
    write_event(f, "y", T0 + 150 * MINU);
    write_event(f, "z", T0 + 210 * MINU);
    write_event(f, "z", T0 + 7 * HOUR);
    write_event(f, "w", T0 + 7 * HOUR);
    fclose(f);
}

/* With history 1h, the clock at T0+6h drops what was superseded before
 * T0+5h: r1 version 1 (so the x at T0+30m matches nothing) and the whole
 * of r3 (a deletion is all that was left), whose version 1 is then new
 * again. */
static void test_history_prunes_superseded_versions(void **unused)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/prune", tmpdir);
    assert_int_equal(fs_mkdirs(dir, NULL), 0);
    write_history_inputs(dir);
    char *m = run_job(dir, 1, "1h");
    want w[] = {{"r1", 2, T0 + 150 * MINU},
                {"r3", 1, T0 + 7 * HOUR},
                {"r2", 1, T0 + 7 * HOUR}};
    check_output(dir, w, 3);
    assert_int_equal(metric_sum(m, "rules_matches_total", "rule=\"r3\""), 1);
    for (int sub = 0; sub < 2; sub++) {
        check_metric(m, "rules_changes_total", sub, "result=\"applied\"", 6);
        check_metric(m, "rules_changes_total", sub, "result=\"rejected\"", 0);
        check_metric(m, "rules_active", sub, NULL, 3);
    }
    free(m);
}

/* The same input with the default history keeps every version: x at
 * T0+30m and z at T0+3h30m match, and the second add of r3 version 1 is
 * refused (version 2 is newer), so z at T0+7h matches nothing. */
static void test_default_history_keeps_versions(void **unused)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/keep", tmpdir);
    assert_int_equal(fs_mkdirs(dir, NULL), 0);
    write_history_inputs(dir);
    char *m = run_job(dir, 1, "7d");
    want w[] = {{"r1", 1, T0 + 30 * MINU},
                {"r1", 2, T0 + 150 * MINU},
                {"r3", 1, T0 + 210 * MINU},
                {"r2", 1, T0 + 7 * HOUR}};
    check_output(dir, w, 4);
    for (int sub = 0; sub < 2; sub++) {
        check_metric(m, "rules_changes_total", sub, "result=\"applied\"", 5);
        check_metric(m, "rules_changes_total", sub, "result=\"rejected\"", 1);
        check_metric(m, "rules_active", sub, NULL, 2);
    }
    free(m);
}

/* Changes without event time take effect from the start of time: the
 * newest version judges every event, however old. */
static void test_changes_without_time(void **unused)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/untimed", tmpdir);
    assert_int_equal(fs_mkdirs(dir, NULL), 0);
    FILE *f = open_in(dir, "changes.jsonl");
    write_count_change(f, "add", "r1", 1, INT64_MIN, "x");
    write_count_change(f, "replace", "r1", 2, INT64_MIN, "y");
    write_count_change(f, "add", "r1", 2, INT64_MIN, "y"); /* repeated */
    fclose(f);
    f = open_in(dir, "events.jsonl");
    write_event(f, "x", T0);
    write_event(f, "y", T0 + 1);
    fclose(f);
    char *m = run_job(dir, 0, "7d");
    want w[] = {{"r1", 2, T0 + 1}};
    check_output(dir, w, 1);
    check_metric(m, "rules_changes_total", 0, "result=\"applied\"", 2);
    check_metric(m, "rules_changes_total", 0, "result=\"ignored\"", 1);
    assert_int_equal(metric_sum(m, "rules_matches_total", "rule=\"r1\""), 1);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_prunes_superseded_versions),
        cmocka_unit_test(test_default_history_keeps_versions),
        cmocka_unit_test(test_changes_without_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
