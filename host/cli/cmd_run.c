/*
 * cmd_run.c - `weir run [--dir D]... JOB.yaml`: validates the job and runs
 * it in this process until it finishes, fails, or is stopped by SIGINT or
 * SIGTERM (the first signal drains the job gracefully, the second cancels).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/log.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

static void run_usage(void)
{
    fputs("usage: weir run [--dir D]... JOB.yaml\n", stderr);
}

/* Waits for the job, turning SIGINT/SIGTERM (blocked in every thread) into
 * stop requests. */
static void run_wait_signals(rt_job *rt, const sigset_t *set)
{
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (!rt_done(rt)) {
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            log_msg(WEIR_LOG_INFO, "run", "%s: stopping the job",
                    strsignal(sig));
            rt_request_stop(rt);
        }
    }
}

static void run_report(const rt_job *rt)
{
    for (uint32_t i = 0; i < rt_task_count(rt); i++) {
        rt_task_stats s = rt_task_stats_get(rt, i);
        log_msg(WEIR_LOG_INFO, "run",
                "%s#%u: %llu records in, %llu out, %.1f ms back-pressured",
                s.op_id, s.index, (unsigned long long)s.records_in,
                (unsigned long long)s.records_out, (double)s.blocked_ns / 1e6);
    }
}

static int run_job(const topo_job *job)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    char *err = NULL;
    rt_job *rt = NULL;
    if (rt_start(job, &rt, &err) < 0) {
        fprintf(stderr, "weir run: %s\n", err);
        free(err);
        return CLI_EXIT_FAILED;
    }
    run_wait_signals(rt, &set);
    int rc = rt_wait(rt, &err);
    run_report(rt);
    rt_destroy(rt);
    if (rc < 0) {
        fprintf(stderr, "weir run: job '%s' failed: %s\n", job->name, err);
        free(err);
        return CLI_EXIT_FAILED;
    }
    log_msg(WEIR_LOG_INFO, "run", "job '%s' finished", job->name);
    return CLI_EXIT_OK;
}

int cmd_run(int argc, char **argv)
{
    cli_dirs dirs = {0};
    const char *path = NULL;
    int rc = CLI_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_dir(argc, argv, &i, &dirs);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        if (argv[i][0] == '-' || path) {
            run_usage();
            goto out;
        }
        path = argv[i];
    }
    if (!path) {
        run_usage();
        goto out;
    }
    reg_registry *reg = NULL;
    if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
        goto out;
    topo_job *job = NULL;
    char *err = NULL;
    if (topo_load_file(path, reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
    } else {
        rc = run_job(job);
        topo_free(job);
    }
    reg_free(reg);
out:
    cli_dirs_free(&dirs);
    return rc;
}
