/*
 * End-to-end runtime tests in one process: real plugins (dlopen'ed from the
 * build's plugins/ folder and the test operators), real threads, real
 * ZeroMQ sockets. Jobs are topology files written by the tests; results are
 * read back from the file sink's JSON lines and checked against what the
 * generator must have produced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

static reg_registry *registry;
static char tmpdir[256];

static int setup(void **unused)
{
    registry = reg_new(api_table());
    if (!registry)
        return -1;
    char *err = NULL;
    if (reg_load_dir(registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0 ||
        reg_load_dir(registry, WEIR_TESTOPS_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none found");
        free(err);
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-e2e-XXXXXX");
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

/* Loads `yaml` and runs it to the end; returns rt_wait's code. When `stats`
 * is given, calls it every few ms while the job runs. */
static int run_job(const char *yaml, char **errptr,
                   void (*stats)(const rt_job *, void *), void *arg)
{
    topo_job *job = NULL;
    int rc = topo_load_string("test.yaml", yaml, strlen(yaml), registry, &job,
                              errptr);
    if (rc < 0) {
        fprintf(stderr, "topology: %s\n", *errptr);
        return rc;
    }
    rt_job *rt = NULL;
    rc = rt_start(job, &rt, errptr);
    if (rc == 0) {
        struct timespec tick = {0, 2 * 1000 * 1000};
        while (!rt_done(rt)) {
            if (stats)
                stats(rt, arg);
            nanosleep(&tick, NULL);
        }
        rc = rt_wait(rt, errptr);
        if (stats)
            stats(rt, arg);
        rt_destroy(rt);
    }
    topo_free(job);
    return rc;
}

static const char *partition_names[] = {"forward", "rebalance", "key",
                                        "broadcast"};

/* Reads file_sink's output file of subtask `i`; for each record calls
 * fn(seq, key) . Returns the number of records. */
static size_t read_sink(const char *path,
                        void (*fn)(void *, long, const char *), void *arg)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0, n = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *r = json_loads(line, 0, &e);
        assert_non_null(r);
        json_t *v = json_object_get(r, "value");
        json_t *seq = json_object_get(v, "seq");
        json_t *key = json_object_get(r, "key");
        assert_true(json_is_integer(seq));
        assert_true(json_is_string(key));
        fn(arg, (long)json_integer_value(seq), json_string_value(key));
        json_decref(r);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

typedef struct seen {
    uint8_t *count; /* per seq */
    long n;
    uint32_t subtask, parallelism;
    int check_keys;
} seen;

static void on_record(void *arg, long seq, const char *key)
{
    seen *s = arg;
    assert_true(seq >= 0 && seq < s->n);
    s->count[seq]++;
    if (s->check_keys) {
        uint32_t kg = plan_key_group(key, strlen(key), 128);
        assert_int_equal(plan_kg_to_index(kg, s->parallelism, 128), s->subtask);
    }
}

/* gen (Psrc) -partition-> relay (P) -forward-> file_sink (P): the sinks
 * together hold exactly the generated records (broadcast: P copies); with
 * key partitioning, every key lands on the subtask its key group maps to. */
static void check_partitioning(int part, uint32_t p)
{
    const long n = 3000;
    uint32_t psrc = part == 0 ? p : 2;
    char yaml[2048], out[512], err_path[600];
    snprintf(out, sizeof out, "%s/%s-%u.jsonl", tmpdir, partition_names[part],
             p);
    snprintf(yaml, sizeof yaml,
             "job: part\n"
             "runtime: {batch_size: 64, buffer_timeout: 1ms}\n"
             "operators:\n"
             "  - {id: src, type: gen, parallelism: %u,\n"
             "     config: {count: %ld, keys: 97, seed: 7}}\n"
             "  - id: mid\n"
             "    type: relay\n"
             "    parallelism: %u\n"
             "    inputs: [{from: src, partition: %s}]\n"
             "  - id: sink\n"
             "    type: file_sink\n"
             "    parallelism: %u\n"
             "    inputs: [{from: mid, partition: forward}]\n"
             "    config: {path: '%s', mode: per_subtask}\n",
             psrc, n, p, partition_names[part], p, out);
    char *err = NULL;
    assert_int_equal(run_job(yaml, &err, NULL, NULL), 0);
    seen s = {.count = calloc((size_t)n, 1),
              .n = n,
              .parallelism = p,
              .check_keys = part == 2};
    size_t total = 0;
    for (uint32_t i = 0; i < p; i++) {
        /* "x.jsonl" -> "x-<i>.jsonl" for per-subtask files. */
        snprintf(err_path, sizeof err_path, "%.*s-%u.jsonl",
                 (int)(strlen(out) - 6), out, i);
        s.subtask = i;
        total += read_sink(p > 1 ? err_path : out, on_record, &s);
    }
    uint8_t want = part == 3 ? (uint8_t)p : 1;
    for (long i = 0; i < n; i++)
        if (s.count[i] != want)
            fail_msg("%s p=%u: seq %ld seen %u times, want %u",
                     partition_names[part], p, i, s.count[i], want);
    assert_int_equal(total, (size_t)n * want);
    free(s.count);
    free(err);
}

static void test_partitionings(void **unused)
{
    for (int part = 0; part < 4; part++)
        for (uint32_t p = 1; p <= 4; p++)
            check_partitioning(part, p);
}

typedef struct flight {
    uint64_t max_in_flight;
    uint64_t produced, consumed, blocked_ns;
} flight;

static void sample_flight(const rt_job *rt, void *arg)
{
    flight *f = arg;
    /* Subtask 0 is gen, 1 is the slow sink (topological order). Read the
     * consumer first so the difference never underestimates. */
    uint64_t in = rt_task_stats_get(rt, 1).records_in;
    rt_task_stats src = rt_task_stats_get(rt, 0);
    uint64_t d = src.records_out > in ? src.records_out - in : 0;
    if (d > f->max_in_flight)
        f->max_in_flight = d;
    f->produced = src.records_out;
    f->consumed = in;
    f->blocked_ns = src.blocked_ns;
}

/* A slow sink makes a fast source wait: the records in flight stay within
 * what the channel can hold, the source's back-pressured time grows, and
 * nothing is dropped. */
static void test_back_pressure(void **unused)
{
    const int n = 20000, batch = 32, capacity = 4;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "runtime: {batch_size: %d, buffer_timeout: 1ms, "
             "channel_capacity: %d}\n"
             "operators:\n"
             "  - {id: src, type: gen, config: {count: %d, keys: 10}}\n"
             "  - {id: sink, type: slow, inputs: [src], chain: false,\n"
             "     config: {delay_us: 20}}\n",
             batch, capacity, n);
    flight f = {0};
    char *err = NULL;
    assert_int_equal(run_job(yaml, &err, sample_flight, &f), 0);
    assert_int_equal(f.produced, (uint64_t)n);
    assert_int_equal(f.consumed, (uint64_t)n);
    assert_true(f.blocked_ns > 0);
    /* Send and receive queues of `capacity` messages each, plus a message
     * in each endpoint's hands and the producer's open batch. */
    uint64_t bound = (uint64_t)(2 * capacity + 3) * batch;
    if (f.max_in_flight > bound)
        fail_msg("%llu records in flight, bound %llu",
                 (unsigned long long)f.max_in_flight,
                 (unsigned long long)bound);
    free(err);
}

/* A plugin error fails the job with operator, subtask and message. */
static void test_failure_message(void **unused)
{
    static const char *const yaml =
        "operators:\n"
        "  - {id: src, type: gen, config: {count: 100000, keys: 10}}\n"
        "  - {id: boom, type: fail, parallelism: 2,\n"
        "     inputs: [{from: src, partition: rebalance}],\n"
        "     config: {at: 500, message: 'bad record here'}}\n"
        "  - {id: sink, type: slow, parallelism: 2, inputs: [boom],\n"
        "     config: {delay_us: 0}}\n";
    char *err = NULL;
    assert_true(run_job(yaml, &err, NULL, NULL) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err, "operator 'boom' (fail) subtask "));
    assert_non_null(strstr(err, "/2: process: bad record here"));
    free(err);
    err = NULL;
    static const char *const yaml_open =
        "operators:\n"
        "  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
        "  - {id: boom, type: fail, inputs: [src],\n"
        "     config: {in_open: true, message: 'cannot open'}}\n";
    assert_true(run_job(yaml_open, &err, NULL, NULL) < 0);
    assert_non_null(strstr(err, "operator 'boom' (fail) subtask 1/1: open: "
                                "cannot open"));
    free(err);
}

static uint64_t total_late(const rt_job *rt)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < rt_task_count(rt); i++)
        n += rt_task_stats_get(rt, i).late_records;
    return n;
}

static void grab_late(const rt_job *rt, void *arg)
{
    *(uint64_t *)arg = total_late(rt);
}

/* Two ordered sources through a rebalancing stage: watermarks flow while the
 * job runs, only grow (wmcheck fails the job otherwise), no record is ever
 * behind the watermark (each channel is FIFO and each source is ordered),
 * and the final watermark arrives. */
static void test_watermarks_propagate(void **unused)
{
    static const char *const yaml =
        "operators:\n"
        "  - {id: src, type: gen, parallelism: 2,\n"
        "     config: {count: 4000, keys: 50, rate: 20000, ts_step: 1ms},\n"
        "     watermarks: {interval: 2ms}}\n"
        "  - {id: mid, type: relay, parallelism: 2,\n"
        "     inputs: [{from: src, partition: rebalance}]}\n"
        "  - {id: sink, type: wmcheck, inputs: [{from: mid, partition: "
        "rebalance}],\n"
        "     config: {min_watermarks: 10}}\n";
    char *err = NULL;
    uint64_t late = 99;
    assert_int_equal(run_job(yaml, &err, grab_late, &late), 0);
    assert_int_equal(late, 0);
    free(err);
}

/* Records behind the watermark are counted as late: with event times
 * 1000 2000 500 3000 2999 4000, one record each, and no allowed
 * out-of-orderness, 500 and 2999 arrive behind the watermark; with 10 s
 * allowed, none does. */
static void test_late_records(void **unused)
{
    static const char *const fmt =
        "operators:\n"
        "  - {id: src, type: seqsrc,\n"
        "     config: {ts: [1000, 2000, 500, 3000, 2999, 4000], pause_ms: "
        "30},\n"
        "     watermarks: {interval: 1ms, out_of_orderness: %s}}\n"
        "  - {id: sink, type: wmcheck, inputs: [src]}\n";
    char yaml[512], *err = NULL;
    uint64_t late = 99;
    snprintf(yaml, sizeof yaml, fmt, "0ms");
    assert_int_equal(run_job(yaml, &err, grab_late, &late), 0);
    assert_int_equal(late, 2);
    snprintf(yaml, sizeof yaml, fmt, "10s");
    assert_int_equal(run_job(yaml, &err, grab_late, &late), 0);
    assert_int_equal(late, 0);
    free(err);
}

/* An idle source does not hold the watermark back: with idle_timeout the
 * sink sees the busy source's watermarks while the other one is silent;
 * without it, the watermark stays at the silent source's until the end, so
 * wmcheck's minimum of watermarks is not reached and the job fails. */
static void test_idle_source(void **unused)
{
    static const char *const fmt =
        "operators:\n"
        "  - {id: busy, type: gen,\n"
        "     config: {count: 3000, keys: 5, rate: 10000, ts_step: 1ms,\n"
        "              start_ts: 1000},\n"
        "     watermarks: {interval: 5ms}}\n"
        "  - {id: quiet, type: seqsrc, config: {ts: [0], pause_ms: 0,\n"
        "                                       linger_ms: 600},\n"
        "     watermarks: {interval: 5ms, idle_timeout: %s}}\n"
        "  - {id: sink, type: wmcheck, inputs: [busy, quiet],\n"
        "     config: {min_watermarks: 5}}\n";
    char yaml[768], *err = NULL;
    snprintf(yaml, sizeof yaml, fmt, "50ms");
    assert_int_equal(run_job(yaml, &err, NULL, NULL), 0);
    snprintf(yaml, sizeof yaml, fmt, "0ms");
    assert_true(run_job(yaml, &err, NULL, NULL) < 0);
    assert_non_null(strstr(err, "finish: only "));
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partitionings),
        cmocka_unit_test(test_back_pressure),
        cmocka_unit_test(test_failure_message),
        cmocka_unit_test(test_watermarks_propagate),
        cmocka_unit_test(test_late_records),
        cmocka_unit_test(test_idle_source),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
