/*
 * cmd_run.c - `weir run`, in three modes:
 *
 *   weir run [--dir D]... [--from PATH] JOB.yaml
 *       Validates the job (plugins and topology; errors exit 2), then runs
 *       it under the supervisor (supervisor/supervisor.h), which starts
 *       this binary again as a worker and restarts it after failures.
 *       Exits with a SUP_EXIT_* code.
 *   weir run --worker --run-dir DIR [--from PATH] [--attempt N]
 *            [--dir D]... JOB.yaml
 *       The worker the supervisor starts (runtime/worker.h). Exits with a
 *       WORKER_EXIT_* code (2 for bad usage or input).
 *   weir run --no-supervisor [--dir D]... [--from PATH] JOB.yaml
 *       Runs the worker in this process, without restarts (debugging,
 *       benchmarks). Exits 0, 1 (failed), 2 or SUP_EXIT_NO_CHECKPOINT.
 *
 * SIGINT and SIGTERM stop the job gracefully in every mode, and in every
 * mode the umask is set from runtime.file_access before anything is created.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/worker.h"
#include "supervisor/supervisor.h"
#include "topology/topology.h"

typedef struct run_args {
    cli_dirs dirs;
    const char *path;
    const char *from;
    const char *run_dir;
    int worker;
    int no_supervisor;
    int allow_non_restored;
    int attempt;
    int attempt_set;
} run_args;

static void run_usage(FILE *f)
{
    fputs("usage: weir run [--dir D]... [--from PATH] [--no-supervisor] "
          "JOB.yaml\n"
          "  -d, --dir D          add a plugin directory (repeatable)\n"
          "  -f, --from PATH      start from a checkpoint or savepoint "
          "directory\n"
          "  --no-supervisor      run in this process, without restarts\n"
          "  --allow-non-restored-state  start although the checkpoint holds\n"
          "                       state of operators the job no longer has\n"
          "  -h, --help           this text\n"
          "Exit codes: 0 finished or stopped, 1 failed, 2 bad usage or job, 3\n"
          "restarts exhausted, 4 no valid checkpoint, 5 locked by another "
          "run.\n",
          f);
}

static int run_parse_attempt(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > INT_MAX) {
        fprintf(stderr, "weir run: --attempt needs a number, not '%s'\n", s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

enum {
    RUN_OPT_DIR = 'd',
    RUN_OPT_FROM = 'f',
    RUN_OPT_HELP = 'h',
    RUN_OPT_NO_SUP = 256,
    RUN_OPT_ALLOW,
    RUN_OPT_WORKER,
    RUN_OPT_RUN_DIR,
    RUN_OPT_ATTEMPT
};

/* --worker, --run-dir and --attempt are how the supervisor starts a worker
 * (supervisor/supervisor.c); they are not in the usage text. */
static const struct option run_longopts[] = {
    {"dir", required_argument, NULL, RUN_OPT_DIR},
    {"from", required_argument, NULL, RUN_OPT_FROM},
    {"no-supervisor", no_argument, NULL, RUN_OPT_NO_SUP},
    {"allow-non-restored-state", no_argument, NULL, RUN_OPT_ALLOW},
    {"help", no_argument, NULL, RUN_OPT_HELP},
    {"worker", no_argument, NULL, RUN_OPT_WORKER},
    {"run-dir", required_argument, NULL, RUN_OPT_RUN_DIR},
    {"attempt", required_argument, NULL, RUN_OPT_ATTEMPT},
    {NULL, 0, NULL, 0}};

/* One option. Returns 0, or -1 after printing why. */
static int run_parse_one(int c, run_args *a)
{
    switch (c) {
    case RUN_OPT_DIR: return cli_dir_add(&a->dirs, optarg);
    case RUN_OPT_NO_SUP: a->no_supervisor = 1; return 0;
    case RUN_OPT_ALLOW: a->allow_non_restored = 1; return 0;
    case RUN_OPT_WORKER: a->worker = 1; return 0;
    case RUN_OPT_FROM:
        a->from = optarg;
        return cli_need_value("weir run", "from", optarg);
    case RUN_OPT_RUN_DIR:
        a->run_dir = optarg;
        return cli_need_value("weir run", "run-dir", optarg);
    case RUN_OPT_ATTEMPT:
        a->attempt_set = 1;
        return run_parse_attempt(optarg, &a->attempt);
    default: return -1;
    }
}

/* Returns 0, 1 after printing the usage for --help, or -1 after printing
 * why the arguments are wrong. */
static int run_parse(int argc, char **argv, run_args *a)
{
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt("weir run", argc, argv, "hd:f:", run_longopts)) !=
           -1) {
        if (c == RUN_OPT_HELP) {
            run_usage(stdout);
            return 1;
        }
        if (run_parse_one(c, a) < 0) {
            run_usage(stderr);
            return -1;
        }
    }
    const char *bad = NULL;
    if (optind < argc)
        a->path = argv[optind];
    if (!a->path)
        bad = "a job file is needed";
    else if (argc - optind > 1)
        bad = "one JOB.yaml at a time";
    else if (a->worker && a->no_supervisor)
        bad = "--worker and --no-supervisor exclude each other";
    else if (a->worker && !a->run_dir)
        bad = "--worker needs --run-dir";
    else if (!a->worker && (a->run_dir || a->attempt_set))
        bad = "--run-dir and --attempt are for --worker only";
    if (bad) {
        fprintf(stderr, "weir run: %s\n", bad);
        run_usage(stderr);
        return -1;
    }
    return 0;
}

/* Blocks SIGINT and SIGTERM in this thread (and in the threads it starts
 * later): worker_main() waits for them. */
static void run_block_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int run_in_process(const topo_job *job, const run_args *a)
{
    char *run_dir = NULL, *err = NULL;
    sup_locks locks;
    int rc = sup_lock_run(job, &locks, &err);
    if (rc < 0) {
        fprintf(stderr, "weir run: %s\n", err);
        free(err);
        return rc == FS_ELOCKED ? SUP_EXIT_LOCKED : CLI_EXIT_FAILED;
    }
    if (sup_run_dir_create(job, &run_dir, &err) < 0) {
        fprintf(stderr, "weir run: %s\n", err);
        free(err);
        sup_unlock_run(&locks);
        return CLI_EXIT_USAGE;
    }
    worker_options wo = {.run_dir = run_dir,
                         .from = a->from,
                         .attempt = 0,
                         .in_process = 1,
                         .allow_non_restored = a->allow_non_restored};
    rc = worker_main(job, &wo);
    sup_run_dir_finish(job, run_dir);
    free(run_dir);
    sup_unlock_run(&locks);
    switch (rc) {
    case WORKER_EXIT_OK: return CLI_EXIT_OK;
    case WORKER_EXIT_UNRECOVERABLE: return SUP_EXIT_NO_CHECKPOINT;
    case WORKER_EXIT_LOCKED: return SUP_EXIT_LOCKED;
    default: return CLI_EXIT_FAILED;
    }
}

static int run_supervised(const topo_job *job, const run_args *a)
{
    char *self = realpath("/proc/self/exe", NULL);
    if (!self) {
        fprintf(stderr, "weir run: cannot find the weir binary: %s\n",
                strerror(errno));
        return CLI_EXIT_FAILED;
    }
    sup_options so = {.job_path = a->path,
                      .plugin_dirs = a->dirs.v,
                      .n_plugin_dirs = a->dirs.n,
                      .from = a->from,
                      .allow_non_restored = a->allow_non_restored,
                      .self = self};
    int rc = sup_run(job, &so);
    free(self);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_args a = {0};
    int rc = CLI_EXIT_USAGE;
    reg_registry *reg = NULL;
    topo_job *job = NULL;
    char *err = NULL;
    int pr = run_parse(argc, argv, &a);
    if (pr != 0) {
        rc = pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    if (a.worker || a.no_supervisor)
        run_block_stop_signals();
    if (cli_load_plugins(&reg, a.dirs.v, a.dirs.n) < 0)
        goto out;
    if (topo_load_file(a.path, reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        if (strstr(err, "unknown operator type"))
            cli_note_rejected(reg);
        free(err);
        goto out;
    }
    fs_apply_access(topo_param_str(&job->runtime, "file_access"));
    if (a.worker) {
        worker_options wo = {.run_dir = a.run_dir,
                             .from = a.from,
                             .attempt = a.attempt,
                             .allow_non_restored = a.allow_non_restored};
        rc = worker_main(job, &wo);
        worker_report_exit(rc);
    } else if (a.no_supervisor) {
        rc = run_in_process(job, &a);
    } else {
        rc = run_supervised(job, &a);
    }
out:
    topo_free(job);
    reg_free(reg);
    cli_dirs_free(&a.dirs);
    return rc;
}
