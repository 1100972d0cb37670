/*
 * Checkpoints in process: real threads, sockets and checkpoint files.
 *
 * Two counting sources (testops ctrsrc, snapshot = records emitted) feed one
 * slow consumer with two inputs (testops cutcheck, snapshot = records seen
 * per source), so that its input queues are full when barriers arrive. In
 * exactly-once mode every checkpoint must be a consistent cut: the consumer
 * has seen exactly what each source had emitted before its barrier. Without
 * alignment the consumer would read past one barrier while waiting for the
 * other, and the counts would differ.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "checkpoint/manifest.h"
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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-ckpt-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    fs_rmtree(tmpdir, NULL);
    reg_free(registry);
    return 0;
}

static const char *const job_fmt =
    "job: cut\n"
    "runtime: {batch_size: 16, channel_capacity: 4, buffer_timeout: 1ms}\n"
    "checkpoint: {interval: 20ms, retain: 1000, mode: %s}\n"
    "operators:\n"
    "  - {id: src, type: ctrsrc, parallelism: 2,\n"
    "     config: {count: %d, batch: 10, pause_us: 500}}\n"
    "  - {id: sink, type: cutcheck, inputs: [{from: src, partition: "
    "rebalance}],\n"
    "     config: {delay_us: 60}}\n";

static topo_job *load_job(const char *mode, int count)
{
    char yaml[1024], *err = NULL;
    snprintf(yaml, sizeof yaml, job_fmt, mode, count);
    topo_job *job = NULL;
    if (topo_load_string("cut.yaml", yaml, strlen(yaml), registry, &job, &err) <
        0)
        fail_msg("%s", err);
    return job;
}

static void read_u64s(const char *path, uint64_t *out, size_t n)
{
    char *data = NULL, *err = NULL;
    size_t len = 0;
    if (fs_read_file(path, &data, &len, &err) < 0)
        fail_msg("%s", err);
    assert_int_equal(len, n * sizeof *out);
    memcpy(out, data, len);
    free(data);
}

/* The sources' positions and the consumer's counts in checkpoint `id`. */
static void read_cut(const char *run, uint64_t id, uint64_t emitted[2],
                     uint64_t seen[8])
{
    char path[512];
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/chk-%llu/src-%d/snapshot", run,
                 (unsigned long long)id, i);
        read_u64s(path, &emitted[i], 1);
    }
    snprintf(path, sizeof path, "%s/chk-%llu/sink-0/snapshot", run,
             (unsigned long long)id);
    read_u64s(path, seen, 8);
}

static void run_to_end(const topo_job *job, const rt_options *o)
{
    rt_job *rt = NULL;
    char *err = NULL;
    if (rt_start_with(job, o, &rt, &err) < 0 || rt_wait(rt, &err) < 0)
        fail_msg("%s", err);
    rt_destroy(rt);
}

/* Checks every completed checkpoint of `run`; returns how many. */
static size_t check_cuts(const char *run, int exact)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char *err = NULL;
    if (ckpt_log_read(run, &ids, &n, &err) < 0)
        fail_msg("%s", err);
    for (size_t k = 0; k < n; k++) {
        uint64_t emitted[2], seen[8];
        read_cut(run, ids[k], emitted, seen);
        for (int i = 0; i < 2; i++) {
            if (exact && seen[i] != emitted[i])
                fail_msg("checkpoint %llu: source %d emitted %llu before its "
                         "barrier, the consumer counted %llu",
                         (unsigned long long)ids[k], i,
                         (unsigned long long)emitted[i],
                         (unsigned long long)seen[i]);
            if (!exact && seen[i] < emitted[i])
                fail_msg("checkpoint %llu: source %d emitted %llu, the "
                         "consumer counted only %llu",
                         (unsigned long long)ids[k], i,
                         (unsigned long long)emitted[i],
                         (unsigned long long)seen[i]);
        }
    }
    free(ids);
    return n;
}

static void test_aligned_cuts(void **unused)
{
    char run[512];
    snprintf(run, sizeof run, "%s/aligned", tmpdir);
    topo_job *job = load_job("exactly_once", 2000);
    rt_options o = {.run_dir = run};
    run_to_end(job, &o);
    assert_true(check_cuts(run, 1) >= 5);
    topo_free(job);
}

static void test_at_least_once_cuts(void **unused)
{
    char run[512];
    snprintf(run, sizeof run, "%s/alo", tmpdir);
    topo_job *job = load_job("at_least_once", 2000);
    rt_options o = {.run_dir = run};
    run_to_end(job, &o);
    assert_true(check_cuts(run, 0) >= 5);
    topo_free(job);
}

/* A job cancelled midway and restored from its newest checkpoint ends with
 * every record counted exactly once (the final checkpoint's cut). */
static void test_restore_exact_totals(void **unused)
{
    char run[512], *err = NULL;
    snprintf(run, sizeof run, "%s/restore", tmpdir);
    topo_job *job = load_job("exactly_once", 3000);
    rt_options o = {.run_dir = run};
    rt_job *rt = NULL;
    assert_int_equal(rt_start_with(job, &o, &rt, &err), 0);
    struct timespec tick = {0, 1000000};
    while (rt_ckpt_stats_get(rt).completed < 3 && !rt_done(rt))
        nanosleep(&tick, NULL);
    assert_false(rt_done(rt));
    rt_request_stop(rt);
    rt_request_stop(rt); /* the second request cancels at once */
    rt_wait(rt, &err);
    rt_destroy(rt);

    ckpt_manifest *m = NULL;
    assert_int_equal(ckpt_find_latest(run, NULL, NULL, &m, &err), 0);
    assert_false(m->final);
    char *dir = ckpt_dir(run, m->id);
    rt_options r = {.run_dir = run, .restore = m, .restore_dir = dir};
    run_to_end(job, &r);
    ckpt_manifest *last = NULL;
    assert_int_equal(ckpt_find_latest(run, NULL, NULL, &last, &err), 0);
    assert_true(last->final);
    assert_true(last->id > m->id);
    uint64_t emitted[2], seen[8];
    read_cut(run, last->id, emitted, seen);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(emitted[i], 3000);
        assert_int_equal(seen[i], 3000);
    }
    ckpt_manifest_free(last);
    ckpt_manifest_free(m);
    free(dir);
    topo_free(job);
    free(err);
}

/* A processing-time timer that came due while the job was down fires right
 * after the restore: the first run registers a timer 2 s ahead, is
 * checkpointed with it, and is cancelled before it is due; the restored run
 * starts after the due time, and the timer fires while its source still
 * runs (pending processing-time timers do not fire at the end of input, so
 * only an early firing reaches the sink). */
static void test_processing_timer_due_while_down(void **unused)
{
    char run[512], out[512], yaml[1500], *err = NULL;
    snprintf(run, sizeof run, "%s/ptimer", tmpdir);
    snprintf(out, sizeof out, "%s/ptimer-out.jsonl", tmpdir);
    snprintf(yaml, sizeof yaml,
             "job: ptimer\n"
             "state: {dir: '%s/ptimer-state'}\n"
             "checkpoint: {interval: 20ms}\n"
             "operators:\n"
             "  - {id: src, type: seqsrc,\n"
             "     config: {ts: [1], keys: a, pause_ms: 0, linger_ms: 1500}}\n"
             "  - {id: timer, type: ptimer, inputs: [{from: src, partition: "
             "key}],\n"
             "     config: {delay_ms: 2000}}\n"
             "  - {id: sink, type: file_sink, inputs: [timer],\n"
             "     config: {path: '%s'}}\n",
             tmpdir, out);
    topo_job *job = NULL;
    if (topo_load_string("ptimer.yaml", yaml, strlen(yaml), registry, &job,
                         &err) < 0)
        fail_msg("%s", err);
    rt_options o = {.run_dir = run};
    rt_job *rt = NULL;
    assert_int_equal(rt_start_with(job, &o, &rt, &err), 0);
    struct timespec tick = {0, 1000000};
    while (rt_ckpt_stats_get(rt).completed < 3)
        nanosleep(&tick, NULL);
    rt_request_stop(rt);
    rt_request_stop(rt); /* cancel: the timer is not due yet */
    rt_wait(rt, &err);
    rt_destroy(rt);
    char *data = NULL;
    size_t len = 0;
    if (fs_read_file(out, &data, &len, NULL) == 0)
        assert_null(strstr(data, "fired")); /* not yet */
    free(data);
    struct timespec wait = {2, 200000000};
    nanosleep(&wait, NULL); /* the timer comes due while the job is down */

    ckpt_manifest *m = NULL;
    assert_int_equal(ckpt_find_latest(run, NULL, NULL, &m, &err), 0);
    char *dir = ckpt_dir(run, m->id);
    rt_options r = {.run_dir = run, .restore = m, .restore_dir = dir};
    run_to_end(job, &r);
    assert_int_equal(fs_read_file(out, &data, &len, &err), 0);
    assert_non_null(strstr(data, "\"key\":\"a\""));
    assert_non_null(strstr(data, "fired"));
    free(data);
    ckpt_manifest_free(m);
    free(dir);
    topo_free(job);
    free(err);
}

/* A checkpoint that times out is aborted and its directory removed, and
 * the job goes on: behind a slow consumer with full queues, barriers take
 * longer than the 30 ms timeout; once the sources have finished and the
 * queues drained, the final checkpoint completes. */
static void test_timeout_aborts(void **unused)
{
    char run[512], yaml[1024], *err = NULL;
    snprintf(run, sizeof run, "%s/timeout", tmpdir);
    snprintf(yaml, sizeof yaml,
             "job: slowcut\n"
             "runtime: {batch_size: 16, channel_capacity: 4, "
             "buffer_timeout: 1ms}\n"
             "checkpoint: {interval: 20ms, timeout: 30ms, retain: 1000,\n"
             "             tolerable_failed_checkpoints: -1}\n"
             "operators:\n"
             "  - {id: src, type: ctrsrc, parallelism: 2,\n"
             "     config: {count: 300, batch: 10, pause_us: 500}}\n"
             "  - {id: sink, type: cutcheck, inputs: [{from: src, partition: "
             "rebalance}],\n"
             "     config: {delay_us: 2000}}\n");
    topo_job *job = NULL;
    if (topo_load_string("slow.yaml", yaml, strlen(yaml), registry, &job,
                         &err) < 0)
        fail_msg("%s", err);
    rt_options o = {.run_dir = run};
    rt_job *rt = NULL;
    assert_int_equal(rt_start_with(job, &o, &rt, &err), 0);
    assert_int_equal(rt_wait(rt, &err), 0);
    rt_ckpt_stats st = rt_ckpt_stats_get(rt);
    rt_destroy(rt);
    assert_true(st.failed >= 1);
    assert_true(st.completed >= 1);
    /* Only completed checkpoints are left. */
    uint64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(ckpt_log_read(run, &ids, &n, &err), 0);
    assert_int_equal(n, st.completed);
    DIR *d = opendir(run);
    struct dirent *e;
    size_t dirs = 0;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "chk-", 4))
            dirs++;
    closedir(d);
    assert_int_equal(dirs, n);
    ckpt_manifest *m = NULL;
    assert_int_equal(ckpt_find_latest(run, NULL, NULL, &m, &err), 0);
    assert_true(m->final);
    uint64_t emitted[2], seen[8];
    read_cut(run, m->id, emitted, seen);
    assert_int_equal(seen[0] + seen[1], 600);
    ckpt_manifest_free(m);
    free(ids);
    topo_free(job);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_cuts),
        cmocka_unit_test(test_at_least_once_cuts),
        cmocka_unit_test(test_restore_exact_totals),
        cmocka_unit_test(test_processing_timer_due_while_down),
        cmocka_unit_test(test_timeout_aborts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
