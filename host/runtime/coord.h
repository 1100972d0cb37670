/*
 * coord.h - the checkpoint coordinator (asynchronous barrier snapshotting).
 *
 * One coordinator thread per running job with checkpointing enabled
 * (checkpoint.interval > 0 and a run directory). Every interval (after
 * min_pause since the last one ended) it starts checkpoint n:
 *   1. creates <run dir>/chk-n/ and asks every source subtask, and every
 *      subtask that already finished its input, to take part (coord_poll);
 *   2. sources snapshot their position and send barrier n on every output;
 *      other subtasks receive it in band, align (exactly_once: an input that
 *      delivered barrier n is not read until every open input did;
 *      at_least_once: nothing is held back), forward it, snapshot and ack
 *      (coord_ack);
 *   3. when every subtask acked, the coordinator writes the manifest with
 *      checksums (ckpt_complete: off the processing path), then publishes n
 *      as completed; each subtask calls notify_checkpoint_complete(n) on its
 *      own thread (coord_completed). Old checkpoints are retired.
 * A checkpoint not acked by everyone within checkpoint.timeout is aborted and
 * its directory removed; the job goes on, and late acks are ignored.
 *
 * When every subtask has finished (bounded input, or a stop request), the
 * coordinator takes a final checkpoint at once, marked final in its
 * manifest, and the job ends after it completed and was notified, so that
 * two-phase-commit sinks commit their last output exactly once.
 *
 * Private to runtime/. Thread: coord_* functions are called by subtask
 * threads and are thread-safe; the coordinator runs on its own thread.
 */
#ifndef WEIR_HOST_COORD_H
#define WEIR_HOST_COORD_H

#include <stdint.h>

#include "runtime/task.h"

/* What a subtask reports for its part of checkpoint `id`. */
typedef struct coord_ack_info {
    int has_state;     /* <op>-<i>/state was written */
    int has_snapshot;  /* <op>-<i>/snapshot was written */
    int has_broadcast; /* <op>-<i>/broadcast was written */
    int has_async;     /* <op>-<i>/async was written (runtime/async.h) */
    int64_t sync_ns;   /* the synchronous pause of the subtask */
    int64_t align_ns;  /* barrier alignment time */
} coord_ack_info;

/* Starts the coordinator thread when the job has checkpointing enabled.
 * Returns 0, or a negative code with *errptr set. */
int coord_start(rt_job *rt, char **errptr);
/* Stops and joins it (after the tasks ended). */
void coord_stop(rt_job *rt);

/* Whether checkpointing is enabled for this job. */
int coord_enabled(const rt_job *rt);

/* The checkpoint a source or finished subtask must take now, or 0. */
uint64_t coord_poll(task *t);

/* Records that subtask `t` took its part of checkpoint `id`. A failed part
 * (ok = 0) aborts the checkpoint. */
void coord_ack(task *t, uint64_t id, int ok, const coord_ack_info *info);

/*
 * Asks for a checkpoint now, regardless of interval and min_pause (after
 * the one in flight, if any). Returns 0 and the id it will have in *id, or
 * WEIR_ESTATE when checkpoints are disabled or the job is ending. Thread:
 * any.
 */
int coord_request(rt_job *rt, uint64_t *id, char **errptr);

/* What became of checkpoint `id`: 1 complete (it or a newer one), -1
 * failed, 0 not yet decided. Thread: any. */
int coord_result(rt_job *rt, uint64_t id);

/* The newest completed checkpoint id (0 before the first). */
uint64_t coord_completed(const rt_job *rt);

/* Marks `t` as finished with its input. With checkpointing, a finished task
 * keeps serving checkpoint requests and notifications until coord_done(). */
void coord_task_finished(task *t);

/* Whether the final checkpoint completed (or the job was cancelled): a
 * finished subtask may then close and end. Waits up to `ms` for it. */
int coord_done(rt_job *rt, int ms);

#endif
