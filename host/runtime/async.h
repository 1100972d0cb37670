/*
 * async.h - async I/O of a subtask (ABI 1.3; Flink's AsyncWaitOperator).
 *
 * An operator whose plugin sets async_invoke gets, per subtask, a queue of
 * the requests in flight (async_q, t->async). Each input record of a
 * non-broadcast input is copied into a queue entry (key, timestamp, value,
 * input port) and handed to async_invoke() with a request handle
 * (weir_async); the plugin completes the handle later, from any thread,
 * with weir_async_complete() (async_complete below). Completions go into a
 * mutex-protected list of the queue and wake the subtask thread through an
 * eventfd that the subtask loop polls together with its inputs
 * (async_fd). On the subtask thread, async_service() takes the completed
 * handles, fails attempts that timed out, starts the retries that are due
 * and delivers results to on_async_result():
 *   - ordered: in queue order, a completed entry waiting behind earlier
 *     ones;
 *   - unordered: any completed entry before the first watermark marker.
 * A watermark that arrives while entries are queued is not applied at once
 * (async_hold_watermark): a marker is queued behind them, and the
 * watermark advances (timers, on_watermark, downstream) when the marker
 * reaches the head of the queue, so results of records before a watermark
 * are emitted before it. End of input is the marker WEIR_WATERMARK_MAX;
 * the subtask loop waits until the queue is empty before finish().
 *
 * Capacity: async_full() says that `capacity` records are queued; the
 * subtask loop then stops taking input (it waits in its own loop on the
 * eventfd, serving completions, timers and checkpoint notifications) until
 * one is delivered.
 *
 * Timeouts and retries: each attempt has a deadline (`timeout` after it
 * started). An attempt that fails with WEIR_ERETRY or WEIR_ETIMEDOUT, or
 * times out, is retried after retry_backoff * 2^(n-1) (at most
 * retry_backoff_max), with a new handle, up to max_retries times; then, and
 * for any other negative status, on_async_result() gets the status and no
 * result. async_invoke() returning WEIR_ERETRY counts as such a failed
 * attempt; any other negative code fails the subtask.
 *
 * Handles and who frees them. A handle is allocated by the host for one
 * attempt and has two owners: the plugin (until it completes it) and the
 * host (until it delivered, timed out or retried the attempt). It is freed
 * by whichever side lets go last:
 *   - the plugin completes first: async_complete() puts it into the
 *     completion list, and async_service() frees it after moving its
 *     result into the entry;
 *   - the host lets go first (timeout, retry, a failed async_invoke()): the
 *     handle is marked abandoned and kept; the plugin's late completion
 *     drops the result and frees it.
 * Every live handle is in a process-wide set, so async_complete() refuses
 * (WEIR_EINVAL) a handle that was completed before or was never issued
 * without reading it. A handle the plugin still holds when close()
 * returned (a plugin that broke the contract) is logged and left in the
 * set, owned by nobody, so that a completion after close() frees it
 * instead of touching freed memory.
 *
 * Checkpoints: at a barrier, the entries not delivered yet (completed or
 * not) are written in queue order to <chk>/<op>-<index>/async
 * (async_snapshot), named in the manifest (`async`). A restore reads them
 * before open() (async_restore) and invokes them again, in order, before
 * any new input (async_resume). When the operator is restored with another
 * parallelism, a keyed operator's entries go to the subtask that owns their
 * key's key group; a non-keyed operator's entries of old subtask j go to
 * new subtask j % new parallelism.
 *
 * File format (integers big-endian): "WAS1", the number of entries (4),
 * then per entry: input port (4), timestamp (8, two's complement), key
 * length (4), key, value length (4), value. Nothing follows.
 *
 * Metrics (per operator and subtask): weir_async_inflight (gauge, records
 * queued), weir_async_timeouts_total, weir_async_retries_total.
 *
 * Private to runtime/. Thread: the subtask's thread, except
 * async_complete(), which any thread may call. Errors: 0 or a negative
 * WEIR_E* code; async_service() and async_resume() fail the task
 * themselves (task_fail) and return the code, the others leave their
 * message in *errptr or t->error.
 */
#ifndef WEIR_HOST_ASYNC_H
#define WEIR_HOST_ASYNC_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/task.h"

typedef struct async_q async_q;

/* Creates t->async when the task's operator is asynchronous (else does
 * nothing): the queue, its eventfd and its metrics, with the settings of
 * the operator's `async` section. Before open(). WEIR_ENOMEM or WEIR_EIO
 * with a message in *errptr. */
int async_open(task *t, char **errptr);

/* The eventfd that becomes readable when a request completed (-1 without a
 * queue). */
int async_fd(const task *t);

/* Whether `capacity` records are queued (no new record may be taken). */
int async_full(const task *t);

/* Entries queued: records not delivered yet and watermark markers. */
size_t async_pending(const task *t);

/* Milliseconds until the next timeout or retry is due, at most max_ms. */
int async_next_ms(const task *t, int max_ms);

/* Copies `rec` into a new entry and starts its first attempt. Returns 0, or
 * after failing the task the negative code of async_invoke(). */
int async_submit(task *t, const weir_record *rec, uint32_t port);

/* Watermark `wm` (larger than the subtask's) is due. Returns 1 when it was
 * queued behind the entries in flight (or a larger one already was), 0
 * when the queue is empty and the caller applies it now. */
int async_hold_watermark(task *t, int64_t wm);

/* Takes the completed handles, times out and retries attempts, and
 * delivers what may be delivered (results to on_async_result(), watermark
 * markers to task_set_watermark()). Returns 0 or a negative code after
 * failing the task. */
int async_service(task *t);

/* Writes the undelivered entries to `path` (fsync'ed). *wrote is 0, and
 * nothing is written, when there are none. */
int async_snapshot(task *t, const char *path, int *wrote, char **errptr);

/* Before open(): queues the entries the checkpoint being restored holds
 * for this subtask (see above for a rescale). WEIR_EINVAL when the
 * checkpoint holds entries for an operator that is no longer asynchronous,
 * WEIR_EIO or WEIR_EINVAL for a file that cannot be read or decoded. */
int async_restore(task *t, char **errptr);

/* After open() and restore(), in the run phase: invokes the restored
 * entries in order. Returns 0 or a negative code after failing the task. */
int async_resume(task *t);

/* After close(): frees the queue, its entries and the handles nobody holds
 * any more (see above for the others). */
void async_close(task *t);

/* weir_host_api.async_complete (weir.h states the contract). Any thread. */
int async_complete(weir_async *req, int status, const void *result, size_t len);

/* Encodes and decodes the file format; for tests. Entries are given as
 * parallel arrays. */
typedef struct async_rec {
    uint32_t port;
    int64_t ts;
    void *key;
    size_t key_len;
    void *value;
    size_t value_len;
} async_rec;
int async_encode(const async_rec *recs, size_t n, char **data, size_t *len);
/* `what` names the bytes in messages. WEIR_EINVAL for a bad magic or a
 * truncated or overlong file. *recs is malloc'ed; async_recs_free() it. */
int async_decode(const char *what, const void *data, size_t len,
                 async_rec **recs, size_t *n, char **errptr);
void async_recs_free(async_rec *recs, size_t n);

#endif
