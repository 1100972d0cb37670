#include "runtime/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint/manifest.h"
#include "common/crash.h"
#include "common/fs.h"
#include "common/log.h"
#include "metrics/http.h"
#include "runtime/guard.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/wctl.h"

static int worker_exit_failed = WORKER_EXIT_FAILED;

int worker_failed_exit_code(void)
{
    return worker_exit_failed;
}

static int64_t worker_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Logs the stop that did not finish in time and ends the process at once:
 * a subtask stuck in a plugin callback can never be joined. */
static void worker_stop_overdue(const topo_job *job, int64_t timeout_ms)
{
    log_msg(WEIR_LOG_ERROR, "worker",
            "job '%s' did not stop within runtime.stop_timeout (%lld ms); "
            "ending the worker",
            job->name, (long long)timeout_ms);
    _exit(worker_failed_exit_code());
}

/* Waits for the job, turning SIGINT/SIGTERM (blocked in every thread) into
 * stop requests; a stop that takes longer than runtime.stop_timeout ends
 * the process. */
static void worker_wait_signals(const topo_job *job, rt_job *rt, wctl *ctl)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    struct timespec now = {0, 0};
    int64_t timeout_ms = topo_param_int(&job->runtime, "stop_timeout");
    int64_t deadline = 0;
    while (!rt_done(rt)) {
        /* Control requests, or a 10 ms sleep: the end of the job is seen
         * within 10 ms (rt_done), which short jobs feel. */
        wctl_step(ctl, 10);
        if (!deadline && atomic_load(&rt->stop_requested))
            deadline = worker_mono_ms() + timeout_ms; /* a control stop */
        int sig = sigtimedwait(&set, NULL, &now);
        if (sig == SIGINT || sig == SIGTERM) {
            log_msg(WEIR_LOG_INFO, "worker", "%s: stopping the job",
                    strsignal(sig));
            rt_request_stop(rt);
            if (!deadline)
                deadline = worker_mono_ms() + timeout_ms;
        }
        if (deadline && worker_mono_ms() >= deadline && !rt_done(rt))
            worker_stop_overdue(job, timeout_ms);
    }
}

static void worker_report(const rt_job *rt)
{
    for (uint32_t i = 0; i < rt_task_count(rt); i++) {
        rt_task_stats s = rt_task_stats_get(rt, i);
        log_msg(WEIR_LOG_INFO, "worker",
                "%s#%u: %llu records in, %llu out, %.1f ms back-pressured",
                s.op_id, s.index, (unsigned long long)s.records_in,
                (unsigned long long)s.records_out, (double)s.blocked_ns / 1e6);
    }
}

static char *worker_render(void *arg)
{
    return rt_metrics_render(arg);
}

/* Serves /metrics at metrics.listen while the job runs; NULL when unset or
 * when it cannot listen (logged: monitoring does not stop the job). */
static metrics_http *worker_serve_metrics(const topo_job *job, rt_job *rt)
{
    metrics_http_options o = {
        .listen = topo_param_str(&job->metrics, "listen"),
        .max_connections =
            (unsigned)topo_param_int(&job->metrics, "max_connections"),
        .timeout_ms = topo_param_int(&job->metrics, "connection_timeout"),
    };
    metrics_http *h = NULL;
    char *err = NULL;
    if (!o.listen || !*o.listen)
        return NULL;
    if (metrics_http_start(&o, worker_render, rt, &h, &err) < 0) {
        log_msg(WEIR_LOG_ERROR, "worker", "%s", err);
        free(err);
        return NULL;
    }
    log_msg(WEIR_LOG_INFO, "worker", "serving /metrics on port %d",
            metrics_http_port(h));
    return h;
}

/* Logs the job's metrics, one INFO line per sample ("metric ..."). */
static void worker_log_metrics(rt_job *rt)
{
    char *text = rt_metrics_render(rt);
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        else
            next = line + strlen(line);
        if (*line != '#')
            log_msg(WEIR_LOG_INFO, "worker", "metric %s", line);
    }
    free(text);
}

/*
 * Chooses the checkpoint to start from: on the first start `from` when
 * given; otherwise the newest valid checkpoint of the run, falling back to
 * older ones when newer ones are damaged, then to `from` (a restart before
 * the run's first checkpoint restores `from` again: never empty state). A run
 * whose completed checkpoints are all damaged does not start from nothing
 * unless checkpoint.allow_fresh_start says so. Returns 0 (with *m NULL for a
 * fresh start) or WORKER_EXIT_UNRECOVERABLE.
 */
static int worker_pick(const topo_job *job, const worker_options *opts,
                       ckpt_manifest **m, char **dir)
{
    char *err = NULL;
    int rc = WEIR_ENOTFOUND;
    *m = NULL;
    *dir = NULL;
    if (!opts->run_dir || topo_param_int(&job->checkpoint, "interval") <= 0) {
        if (!opts->from)
            return 0;
    } else if (opts->attempt > 0 || !opts->from) {
        rc = ckpt_find_latest(opts->run_dir, NULL, NULL, m, &err);
        if (rc == 0) {
            *dir = ckpt_dir(opts->run_dir, (*m)->id);
            return 0;
        }
        if (rc == WEIR_ENOTFOUND) {
            free(err); /* no checkpoint completed yet in this run */
            err = NULL;
        }
        if (rc != WEIR_ENOTFOUND) {
            if (!topo_param_int(&job->checkpoint, "allow_fresh_start")) {
                log_msg(WEIR_LOG_ERROR, "worker",
                        "no valid checkpoint to restore (%s); not starting "
                        "from empty state (checkpoint.allow_fresh_start is "
                        "false)",
                        err);
                free(err);
                return WORKER_EXIT_UNRECOVERABLE;
            }
            log_msg(WEIR_LOG_WARN, "worker",
                    "no valid checkpoint to restore (%s); starting from "
                    "empty state as checkpoint.allow_fresh_start allows",
                    err);
            free(err);
            return 0;
        }
    }
    if (!opts->from)
        return 0;
    if (ckpt_manifest_load_path(opts->from, m, &err) < 0) {
        log_msg(WEIR_LOG_ERROR, "worker", "cannot start from %s: %s",
                opts->from, err);
        free(err);
        return WORKER_EXIT_UNRECOVERABLE;
    }
    *dir = strdup(opts->from);
    return 0;
}

int worker_main(const topo_job *job, const worker_options *opts)
{
    char *err = NULL, *restore_dir = NULL;
    rt_job *rt = NULL;
    ckpt_manifest *m = NULL;
    crash_set_attempt(opts->attempt);
    if (opts->in_process)
        worker_exit_failed = 1; /* CLI_EXIT_FAILED */
    guard_install();
    int code = worker_pick(job, opts, &m, &restore_dir);
    if (code != 0)
        return code;
    if (m)
        log_msg(WEIR_LOG_INFO, "worker", "restoring checkpoint %llu from %s%s",
                (unsigned long long)m->id, restore_dir,
                m->final ? " (the job had finished)" : "");
    else
        log_msg(WEIR_LOG_INFO, "worker", "starting with empty state");
    rt_options ro = {.run_dir = opts->run_dir,
                     .restore = m,
                     .restore_dir = restore_dir,
                     .attempt = opts->attempt,
                     .allow_non_restored = opts->allow_non_restored};
    int rc = rt_start_with(job, &ro, &rt, &err);
    if (rc < 0) {
        log_msg(WEIR_LOG_ERROR, "worker", "%s", err);
        free(err);
        ckpt_manifest_free(m);
        free(restore_dir);
        if (rc == FS_ELOCKED)
            return WORKER_EXIT_LOCKED;
        /* A full disk is not the checkpoint's fault: restart, retry. */
        return rc == FS_ENOSPC ? WORKER_EXIT_FAILED : WORKER_EXIT_UNRECOVERABLE;
    }
    metrics_http *http = worker_serve_metrics(job, rt);
    wctl *ctl = wctl_open(job, rt, opts->run_dir, opts->attempt);
    guard_watch *watch = guard_watch_start(rt);
    worker_wait_signals(job, rt, ctl);
    rc = rt_wait(rt, &err);
    guard_watch_stop(watch);
    wctl_job_ended(ctl, rc < 0 ? err : NULL);
    wctl_close(ctl);
    metrics_http_stop(http);
    worker_report(rt);
    worker_log_metrics(rt);
    rt_destroy(rt);
    ckpt_manifest_free(m);
    free(restore_dir);
    if (rc < 0) {
        log_msg(WEIR_LOG_ERROR, "worker", "job '%s' failed: %s", job->name,
                err);
        free(err);
        return rc == RT_ERESTORE ? WORKER_EXIT_UNRECOVERABLE
                                 : WORKER_EXIT_FAILED;
    }
    log_msg(WEIR_LOG_INFO, "worker", "job '%s' finished", job->name);
    return WORKER_EXIT_OK;
}

void worker_report_exit(int code)
{
    const char *s = getenv(WORKER_REPORT_ENV);
    char *end = NULL;
    long fd = s ? strtol(s, &end, 10) : -1;
    if (!s || end == s || *end || fd < 0 || fd > INT32_MAX)
        return;
    char line[32];
    int n = snprintf(line, sizeof line, "exit %d\n", code);
    ssize_t w = write((int)fd, line, (size_t)n);
    (void)w; /* a supervisor that cannot read it restarts the worker */
    close((int)fd);
}
