/*
 * worker.h - one attempt at running a job: restore, run, exit.
 *
 * The worker is the process the supervisor starts (`weir run --worker`).
 * With checkpointing enabled it restores from the newest valid checkpoint of
 * its run directory (or from `from` while the run has none), runs the job with
 * the checkpoint coordinator, and returns an exit code for the supervisor.
 *
 * Thread: main thread; SIGINT/SIGTERM must be blocked by the caller (the
 * worker waits for them with sigtimedwait and stops the job gracefully).
 */
#ifndef WEIR_HOST_WORKER_H
#define WEIR_HOST_WORKER_H

#include "topology/topology.h"

#define WORKER_EXIT_OK            0  /* finished, or stopped on request */
#define WORKER_EXIT_FAILED        10 /* the job failed: restartable */
/* No valid checkpoint to restore, or one that does not fit the job. */
#define WORKER_EXIT_UNRECOVERABLE 11
/* The state directory stayed locked by another process for
 * runtime.lock_wait. */
#define WORKER_EXIT_LOCKED        12

/*
 * The environment variable that names the file descriptor on which a
 * worker reports how it ends. The supervisor trusts an exit code other
 * than a failure only when the worker reported it there first, so that a
 * plugin that calls exit() is never taken for a finished job.
 */
#define WORKER_REPORT_ENV "WEIR_REPORT_FD"

typedef struct worker_options {
    const char *run_dir; /* this run's checkpoints; NULL: no checkpoints */
    const char *from;    /* restore from this chk- dir when the run has none */
    int attempt;         /* 0 for the first start, then 1, 2, ... */
    int in_process; /* weir run --no-supervisor: exit codes are the CLI's */
    int allow_non_restored; /* restore although operators are gone */
} worker_options;

int worker_main(const topo_job *job, const worker_options *opts);

/* The code a process ends with when it must end at once after a failure
 * (a stuck callback, a stop past runtime.stop_timeout): WORKER_EXIT_FAILED
 * for a supervised worker, 1 for `weir run --no-supervisor`. */
int worker_failed_exit_code(void);

/*
 * Reports `code`, the worker's exit code, as the line "exit <code>\n" on
 * the descriptor WORKER_REPORT_ENV names and closes it; does nothing when
 * the variable is unset. Call it from the main thread right before exiting
 * with that code, after the job's threads are joined.
 */
void worker_report_exit(int code);

#endif
