/*
 * Keyed state through the real host: operators on RocksDB state in real
 * jobs (threads, sockets, dlopen'ed plugins), checked against tallies the
 * tests compute themselves from the input they write.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/fs.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

static reg_registry *registry;
static char tmpdir[256];

static int setup(void **unused)
{
    char *err = NULL;
    registry = reg_new(api_table());
    if (reg_load_dir(registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0 ||
        reg_load_dir(registry, WEIR_TESTOPS_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none");
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-keyed-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    reg_free(registry);
    return 0;
}

static int load(const char *yaml, topo_job **job, char **err)
{
    int rc =
        topo_load_string("test.yaml", yaml, strlen(yaml), registry, job, err);
    if (rc < 0)
        fprintf(stderr, "%s\n", *err);
    return rc;
}

static int run(const char *yaml, char **err)
{
    topo_job *job = NULL;
    int rc = load(yaml, &job, err);
    rt_job *rt = NULL;
    if (rc == 0 && (rc = rt_start(job, &rt, err)) == 0) {
        rc = rt_wait(rt, err);
        rt_destroy(rt);
    }
    topo_free(job);
    return rc;
}

enum { N_KEYS = 200, N_RECORDS = 6000 };

/* Writes N_RECORDS JSON lines with keys drawn by a fixed LCG; returns the
 * number of records per key in `tally`. */
static void write_input(const char *path, int *tally)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    uint32_t x = 12345;
    memset(tally, 0, N_KEYS * sizeof *tally);
    for (int i = 0; i < N_RECORDS; i++) {
        x = x * 1103515245u + 12345u;
        int k = (int)((x >> 8) % N_KEYS);
        tally[k]++;
        fprintf(f, "{\"user\": \"u%d\", \"i\": %d}\n", k, i);
    }
    fclose(f);
}

/* For every key, the sink saw exactly the counts 1..tally[k]. */
static void check_counts(const char *path, const int *tally)
{
    static uint8_t seen[N_KEYS][N_RECORDS + 1];
    memset(seen, 0, sizeof seen);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    long lines = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *r = json_loads(line, 0, &e);
        assert_non_null(r);
        const char *key = json_string_value(json_object_get(r, "key"));
        json_int_t n = json_integer_value(
            json_object_get(json_object_get(r, "value"), "count"));
        assert_non_null(key);
        int k = atoi(key + 1);
        assert_true(k >= 0 && k < N_KEYS && n >= 1 && n <= tally[k]);
        assert_int_equal(seen[k][n]++, 0);
        json_decref(r);
        lines++;
    }
    free(line);
    fclose(f);
    assert_int_equal(lines, N_RECORDS);
}

/* count on RocksDB state, parallelism 2, write-back cache on and off. */
static void test_count_state(void **unused)
{
    int tally[N_KEYS];
    char in[512], out[512], yaml[2048];
    snprintf(in, sizeof in, "%s/in.jsonl", tmpdir);
    write_input(in, tally);
    static const int caches[] = {0, 100000, 16};
    for (size_t c = 0; c < sizeof caches / sizeof caches[0]; c++) {
        snprintf(out, sizeof out, "%s/out-%zu.jsonl", tmpdir, c);
        snprintf(yaml, sizeof yaml,
                 "job: counts\n"
                 "state: {dir: '%s/state', cache_entries: %d}\n"
                 "operators:\n"
                 "  - {id: src, type: file_source,\n"
                 "     config: {path: '%s', key_field: user}}\n"
                 "  - {id: count, type: count, parallelism: 2,\n"
                 "     inputs: [{from: src, partition: key}]}\n"
                 "  - {id: sink, type: file_sink,\n"
                 "     inputs: [{from: count, partition: rebalance}],\n"
                 "     config: {path: '%s'}}\n",
                 tmpdir, caches[c], in, out);
        char *err = NULL;
        assert_int_equal(run(yaml, &err), 0);
        check_counts(out, tally);
        free(err);
    }
}

/* Returns the counts the sink saw, in order, as a string like "1 2 1". */
static void read_count_sequence(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t lcap = 0, o = 0;
    buf[0] = 0;
    while (getline(&line, &lcap, f) > 0 && o + 24 < cap) {
        json_error_t e;
        json_t *r = json_loads(line, 0, &e);
        assert_non_null(r);
        o += (size_t)snprintf(buf + o, cap - o, "%s%s%lld", o ? " " : "",
                              json_string_value(json_object_get(r, "key")),
                              (long long)json_integer_value(json_object_get(
                                  json_object_get(r, "value"), "count")));
        json_decref(r);
    }
    free(line);
    fclose(f);
}

/* Event-time TTL: "a" at t=0 expires once the watermark passes 10 s, which
 * "b" at t=20 s brings about, so "a" at t=20.001 s counts from 1 again; with
 * no TTL it counts on. The sweep and the read path both honour it. */
static void test_count_event_ttl(void **unused)
{
    static const struct {
        const char *ttl;
        int cache;
        const char *want;
    } cases[] = {
        {"10s", 0, "a1 b1 a1"},
        {"10s", 1000, "a1 b1 a1"},
        {"0", 1000, "a1 b1 a2"},
        {"30s", 0, "a1 b1 a2"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char out[512], yaml[2048], got[256];
        snprintf(out, sizeof out, "%s/ttl-%zu.jsonl", tmpdir, c);
        snprintf(yaml, sizeof yaml,
                 "job: ttl\n"
                 "state: {dir: '%s/state', cache_entries: %d}\n"
                 "operators:\n"
                 "  - {id: src, type: seqsrc,\n"
                 "     config: {ts: [0, 20000, 20001], keys: aba,\n"
                 "              pause_ms: 120},\n"
                 "     watermarks: {interval: 1ms}}\n"
                 "  - {id: count, type: count, inputs: [src],\n"
                 "     config: {ttl: %s, ttl_time: event}}\n"
                 "  - {id: sink, type: file_sink, inputs: [count],\n"
                 "     config: {path: '%s'}}\n",
                 tmpdir, cases[c].cache, cases[c].ttl, out);
        char *err = NULL;
        assert_int_equal(run(yaml, &err), 0);
        read_count_sequence(out, got, sizeof got);
        if (strcmp(got, cases[c].want) != 0)
            fail_msg("ttl %s cache %d: got '%s', want '%s'", cases[c].ttl,
                     cases[c].cache, got, cases[c].want);
        free(err);
    }
}

/* A second job on the same state directory fails at once, naming the
 * directory and its lock, and leaves the first one's state alone. */
static void test_locked_state_dir(void **unused)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "job: locked\n"
             "runtime: {lock_wait: 50ms}\n"
             "state: {dir: '%s/state'}\n"
             "operators:\n"
             "  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
             "  - {id: count, type: count, inputs: [src],\n"
             "     config: {emit: none}}\n",
             tmpdir);
    topo_job *job = NULL;
    char *err = NULL;
    assert_int_equal(load(yaml, &job, &err), 0);
    rt_job *first = NULL, *second = NULL;
    assert_int_equal(rt_start(job, &first, &err), 0);
    assert_int_equal(rt_start(job, &second, &err), FS_ELOCKED);
    char want[1024];
    snprintf(want, sizeof want,
             "state directory %s/state/locked is locked by process %ld (lock "
             "file %s/state/locked/LOCK), still after waiting 50 ms: another "
             "weir process is running this job",
             tmpdir, (long)getpid(), tmpdir);
    assert_string_equal(err, want);
    rt_request_stop(first);
    assert_int_equal(rt_wait(first, &err), 0);
    rt_destroy(first);
    topo_free(job);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_count_state),
        cmocka_unit_test(test_count_event_ttl),
        cmocka_unit_test(test_locked_state_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
