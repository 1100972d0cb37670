/*
 * wctl.h - the worker's side of the control endpoint (control/control.h):
 * answers the requests the supervisor forwards, on the worker's main
 * thread, while the job runs.
 *
 * Requests ("cmd"):
 *   status                      the job's subtasks, states and checkpoints
 *   checkpoint                  a checkpoint now; answered when it is done
 *   savepoint {dir}             a checkpoint now, exported to `dir` as a
 *                               self-contained savepoint; answered then
 *   stop {savepoint?: dir}      stops the job gracefully (sources end, the
 *                               last checkpoint commits the sinks); with
 *                               `savepoint`, that last checkpoint is
 *                               exported there; answered when the job ended
 *   cancel                      stops the job at once, without a last
 *                               checkpoint; answered at once
 *   state {action: "stats", operator?}
 *                               every keyed subtask's states (or those of
 *                               `operator`): keys, bytes, expiry counts,
 *                               TTL declared and in force, leak signs
 *   state {action: "ttl", operator, state, ttl_ms, time?: "event" |
 *          "processing"}        a TTL override (state/state_admin.h)
 *   state {action: "purge", operator, state, and one of prefix,
 *          all: true, older_than_ms}
 *                               removes entries (state/state_admin.h)
 *       ttl and purge are posted to every subtask of the operator, which
 *       applies them at its next checkpoint barrier (runtime/keyed.h); a
 *       checkpoint is asked for and the request is answered when one that
 *       holds the change completed (after up to 3 failed ones), with each
 *       subtask's counts. Unknown operators and states, operators that are
 *       not keyed and jobs without checkpoints are refused at once.
 *
 * Thread: the worker's main thread only.
 */
#ifndef WEIR_HOST_WCTL_H
#define WEIR_HOST_WCTL_H

#include "runtime/runtime.h"
#include "topology/topology.h"

typedef struct wctl wctl;

/* Serves <run_dir>/worker.sock for `rt`; NULL when run_dir is NULL or the
 * socket cannot be served (logged: control does not stop the job). */
wctl *wctl_open(const topo_job *job, rt_job *rt, const char *run_dir,
                int attempt);

/* Waits up to timeout_ms for a request and handles what arrived, and
 * answers requests whose result came (a checkpoint completed). */
void wctl_step(wctl *c, int timeout_ms);

/* After rt_wait(): answers a pending stop request (exporting the job's
 * last checkpoint when it asked for a savepoint) with `failure` (NULL when
 * the job ended cleanly). */
void wctl_job_ended(wctl *c, const char *failure);

void wctl_close(wctl *c);

/*
 * Exports checkpoint `id` of `run_dir` to `dir` (which must not exist) as a
 * savepoint: the checkpoint's files (SST files hard-linked, the rest
 * copied) plus SAVEPOINT.json naming the job, the checkpoint, the time and
 * every operator's plugin and version, and the job file as job.yaml. Never
 * touched by retention. Returns 0 or a negative WEIR_E* code.
 */
int wctl_export_savepoint(const topo_job *job, const char *run_dir, uint64_t id,
                          const char *dir, char **errptr);

#endif
