/*
 * supervisor.h - `weir run`: a supervisor process that runs the job in a
 * worker process and restarts it after a failure under the topology's
 * restart strategy.
 *
 * The supervisor validates the job, chooses the run directory (checkpoints
 * of this run: <checkpoint.dir>/<job>/<run id>/), and starts the worker by
 * executing the weir binary again as
 *     weir run --worker --run-dir RUN_DIR [--from PATH] [--dir D]... JOB.yaml
 * The worker (runtime/worker.h) restores from the newest valid checkpoint of
 * RUN_DIR (or PATH while the run has none), runs, reports its exit code on
 * a pipe (WORKER_REPORT_ENV) and exits with it. Only a reported
 * WORKER_EXIT_OK counts as a finished job and only a reported
 * WORKER_EXIT_UNRECOVERABLE or WORKER_EXIT_LOCKED ends the run without a
 * restart; any other end (a signal such as SIGKILL or a plugin's SIGSEGV,
 * an unreported exit such as a plugin's exit(0), WORKER_EXIT_FAILED) is a
 * failure, restarted after the delay the strategy gives until the strategy
 * gives up. Every restart is logged with its cause. SIGINT/SIGTERM are
 * forwarded to the worker (which stops gracefully); a second one, or a
 * worker still running runtime.stop_timeout plus a margin after the first,
 * is killed. The supervisor holds the run's directory locks
 * (sup_lock_run) from start to end, across restarts.
 *
 * Thread: main thread only.
 */
#ifndef WEIR_HOST_SUPERVISOR_H
#define WEIR_HOST_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#include "topology/topology.h"

/* Exit codes of `weir run` (the supervisor). */
#define SUP_EXIT_OK            0 /* the job finished or was stopped */
#define SUP_EXIT_FAILED        1 /* failed, and the strategy allows no restart */
#define SUP_EXIT_USAGE         2 /* bad usage, topology or plugin */
#define SUP_EXIT_EXHAUSTED     3 /* restarts exhausted by the strategy */
#define SUP_EXIT_NO_CHECKPOINT 4 /* no valid checkpoint to restore */
#define SUP_EXIT_LOCKED        5 /* another process runs this job */

typedef enum sup_kind {
    SUP_NONE = 0,
    SUP_FIXED_DELAY,
    SUP_EXPONENTIAL_DELAY,
    SUP_FAILURE_RATE
} sup_kind;

/* A restart strategy, from the topology's `restart` section. */
typedef struct sup_strategy {
    sup_kind kind;
    uint32_t attempts;        /* fixed_delay */
    int64_t delay_ms;         /* fixed_delay, failure_rate */
    int64_t initial_delay_ms; /* exponential_delay */
    int64_t max_delay_ms;
    double multiplier;
    double jitter;
    int64_t reset_after_ms;
    uint32_t max_failures; /* failure_rate */
    int64_t interval_ms;
} sup_strategy;

void sup_strategy_from_topology(const topo_params *restart, sup_strategy *out);

/* The state of a strategy across failures of one run. */
typedef struct sup_tracker {
    sup_strategy s;
    uint32_t failures;     /* since the start (or the last reset) */
    int64_t next_delay_ms; /* exponential_delay */
    int64_t *times;        /* failure_rate: recent failure times (ring) */
    uint32_t n_times;
    uint64_t rng; /* jitter */
} sup_tracker;

void sup_tracker_init(sup_tracker *t, const sup_strategy *s, uint64_t seed);
void sup_tracker_free(sup_tracker *t);
/*
 * Records a failure at `now_ms` of a worker that had run for `ran_ms`, and
 * decides: returns 1 and the delay before the restart in *delay_ms, or 0
 * when the strategy gives up. Pure logic on a fake clock: unit-testable.
 */
int sup_on_failure(sup_tracker *t, int64_t now_ms, int64_t ran_ms,
                   int64_t *delay_ms);

typedef struct sup_options {
    const char *job_path;
    const char *const *plugin_dirs;
    size_t n_plugin_dirs;
    const char *from;       /* --from PATH, or NULL */
    int allow_non_restored; /* --allow-non-restored-state */
    const char *self;       /* the weir binary to execute (/proc/self/exe) */
} sup_options;

/*
 * Chooses a run id ("<UTC yyyymmddThhmmssZ>-<pid>") and creates the run
 * directory <checkpoint.dir>/<job>/<run id> with its parents (a
 * relative checkpoint.dir is relative to the working directory). Returns 0 and
 * the malloc'ed path in *out (the caller frees it), or a negative WEIR_E* code
 * with the reason in *errptr.
 */
int sup_run_dir_create(const topo_job *job, char **out, char **errptr);

/* At the end of a run: removes the run directory of a job without
 * checkpoints (it held only the control endpoints). */
void sup_run_dir_finish(const topo_job *job, const char *run_dir);

/* The locks of a run (sup_lock_run). */
typedef struct sup_locks {
    int *fd;
    size_t n;
} sup_locks;

/*
 * Locks what the run writes, for the whole run: <checkpoint.dir>/<job>
 * when checkpoints are enabled and <state.dir>/<job> when an operator is
 * keyed (the file .run.lock in each), and every operator parameter flagged
 * WEIR_PARAM_OUTPUT_PATH (the file .<name>.run.lock beside the path). It
 * waits up to runtime.lock_wait, but at most 1 s, for a process that still
 * holds one. Returns 0, FS_ELOCKED with a message naming the path and the
 * holder's pid, or another negative WEIR_E* code; on failure nothing stays
 * locked. Release with sup_unlock_run().
 */
int sup_lock_run(const topo_job *job, sup_locks *out, char **errptr);
void sup_unlock_run(sup_locks *locks);

/* Supervises the job until it finishes or the strategy gives up; returns a
 * SUP_EXIT_* code. It blocks SIGINT, SIGTERM and SIGCHLD in the calling
 * thread and returns with them still blocked (a pending signal must not
 * kill the process on its way out): the caller exits with the code. */
int sup_run(const topo_job *job, const sup_options *opts);

#endif
