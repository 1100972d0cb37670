/*
 * worker.h - one attempt at running a job: restore, run, exit.
 *
 * The worker is the process the supervisor starts (`weir run --worker`).
 * With checkpointing enabled it restores from the newest valid checkpoint of
 * its run directory (or from `from` on a first start), runs the job with the
 * checkpoint coordinator, and returns an exit code for the supervisor.
 *
 * Thread: main thread; SIGINT/SIGTERM must be blocked by the caller (the
 * worker waits for them with sigtimedwait and stops the job gracefully).
 */
#ifndef WEIR_HOST_WORKER_H
#define WEIR_HOST_WORKER_H

#include "topology/topology.h"

#define WORKER_EXIT_OK     0  /* finished, or stopped on request */
#define WORKER_EXIT_FAILED 10 /* the job failed: restartable */
#define WORKER_EXIT_UNRECOVERABLE                                              \
    11 /* no valid checkpoint to restore, or a                                 \
          state directory held by another host */

typedef struct worker_options {
    const char *run_dir; /* this run's checkpoints; NULL: no checkpoints */
    const char *from;    /* restore from this chk- dir (first start only) */
    int attempt;         /* 0 for the first start, then 1, 2, ... */
} worker_options;

int worker_main(const topo_job *job, const worker_options *opts);

#endif
