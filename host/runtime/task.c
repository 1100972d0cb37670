#include "runtime/task.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "checkpoint/manifest.h"
#include "common/crash.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/async.h"
#include "runtime/bcast.h"
#include "runtime/coord.h"
#include "runtime/keyed.h"

/* Longest wait in a poll, so that cancellation is seen promptly. */
#define TASK_POLL_MS   50
/* Messages drained from one input before looking at the others. */
#define TASK_DRAIN_MAX 16

/* runtime.max_record_size of a job that does not set it. */
#define TASK_MAX_RECORD_DEFAULT ((size_t)16 << 20)

_Thread_local task *task_owner;

static int task_chain_record(task *up, task_out *o, const void *key,
                             size_t key_len, int64_t ts, const void *value,
                             size_t value_len);
static int task_chain_control(task *up, task_out *o, enum wire_type type,
                              int64_t arg, int64_t arg2);

int64_t task_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t task_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int task_cancelled(const task *t)
{
    return atomic_load_explicit(&t->rt->cancelled, memory_order_relaxed);
}

/* Fails the task (and so the job) with a message naming the operator, the
 * subtask, the callback and the plugin's own message. */
int task_fail(task *t, const char *what, int code)
{
    t->exit_code = code;
    /* Once the job is cancelled (by a failure, which was recorded first, or
     * on request), later errors are its consequences, not failures. */
    if (task_cancelled(t))
        return code;
    char msg[1024];
    snprintf(msg, sizeof msg, "operator '%s' (%s) subtask %u/%u: %s: %s",
             t->op->id, t->op->type, t->ps->index + 1, t->ps->parallelism, what,
             t->error ? t->error : weir_strerror(code));
    rt_fail(t->rt, code, msg);
    return code;
}

/* Sends one message, waiting while the channel is full (back pressure) and
 * counting the wait. Returns 0, or WEIR_ESTATE when the job was cancelled
 * while waiting, or WEIR_EIO. */
static int task_send(task *t, void *sock, const void *data, size_t len)
{
    if (zmq_send(sock, data, len, ZMQ_DONTWAIT) >= 0)
        return 0;
    if (errno != EAGAIN)
        goto fail;
    int64_t t0 = task_mono_ns();
    for (;;) {
        if (task_cancelled(t))
            return WEIR_ESTATE;
        guard_touch(&t->guard); /* waiting on the consumer, not the plugin */
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLOUT};
        if (zmq_poll(&it, 1, TASK_POLL_MS) < 0 && errno != EINTR)
            goto fail;
        if (zmq_send(sock, data, len, ZMQ_DONTWAIT) >= 0)
            break;
        if (errno != EAGAIN)
            goto fail;
    }
    TASK_COUNT(t->blocked_ns, (uint64_t)(task_mono_ns() - t0));
    return 0;
fail:
    free(t->error);
    t->error = strdup(zmq_strerror(errno));
    return WEIR_EIO;
}

static int task_flush_out(task *t, task_out *o)
{
    if (o->batch.n == 0)
        return 0;
    wire_batch_seal(&o->batch);
    int rc = task_send(t, o->sock, o->batch.buf.data, o->batch.buf.size);
    wire_batch_reset(&o->batch);
    TASK_COUNT(t->batches_out, 1);
    return rc;
}

/* Flushes every batch older than the buffer timeout (all with force). */
static int task_flush_due(task *t, int force)
{
    if (t->n_outs == 0)
        return 0;
    int64_t now = force ? 0 : task_mono_ns();
    for (uint32_t i = 0; i < t->n_outs; i++) {
        task_out *o = &t->outs[i];
        if (o->batch.n &&
            (force || now - o->batch.opened_ns >= t->rt->buffer_timeout_ns)) {
            int rc = task_flush_out(t, o);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Milliseconds until the oldest open batch of the task or of a member of
 * its chain is due, capped at max_ms. */
static int task_next_deadline_ms(const task *t, int max_ms)
{
    int64_t oldest = INT64_MAX;
    for (uint32_t k = 0; k <= t->n_chain; k++) {
        const task *c = k ? t->chain[k - 1] : t;
        for (uint32_t i = 0; i < c->n_outs; i++)
            if (c->outs[i].batch.n && c->outs[i].batch.opened_ns < oldest)
                oldest = c->outs[i].batch.opened_ns;
    }
    if (oldest == INT64_MAX)
        return max_ms;
    int64_t left = oldest + t->rt->buffer_timeout_ns - task_mono_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms < max_ms ? (int)ms : max_ms;
}

static int task_add(task *t, task_out *o, const void *key, size_t key_len,
                    int64_t ts, const void *value, size_t value_len)
{
    if (o->chain)
        return task_chain_record(t, o, key, key_len, ts, value, value_len);
    int64_t now = o->batch.n ? 0 : task_mono_ns();
    if (wire_batch_add(&o->batch, key, key_len, ts, value, value_len, now) < 0)
        return WEIR_ENOMEM;
    if (o->batch.n >= t->rt->batch_size ||
        o->batch.buf.size >= t->rt->batch_bytes)
        return task_flush_out(t, o);
    return 0;
}

int task_emit(task *t, uint32_t port, const void *key, size_t key_len,
              int64_t ts, const void *value, size_t value_len)
{
    if (t->phase != TASK_PHASE_RUN) {
        free(t->error);
        t->error = strdup("weir_emit: not allowed in open(), close() and "
                          "migrate_state()");
        return WEIR_ESTATE;
    }
    /* The wire copies with memcpy, which must not see NULL even for 0. */
    if (!key)
        key = "";
    if (!value)
        value = "";
    if (t->rt->capture) {
        int crc = t->rt->capture(t->rt->capture_arg, port, key, key_len, ts,
                                 value, value_len);
        if (crc == 0)
            TASK_COUNT(t->records_out, 1);
        return crc;
    }
    task_port *p = &t->ports[port];
    int rc = 0;
    for (uint32_t r = 0; r < p->n_routes && rc == 0; r++) {
        task_route *rt = &p->routes[r];
        switch (rt->partition) {
        case TOPO_FORWARD:
            rc = task_add(t, rt->outs[0], key, key_len, ts, value, value_len);
            break;
        case TOPO_REBALANCE:
            rc = task_add(t, rt->outs[rt->rr++ % rt->n], key, key_len, ts,
                          value, value_len);
            break;
        case TOPO_KEY: {
            uint32_t kg =
                plan_key_group(key, key_len, t->rt->plan->max_parallelism);
            uint32_t i =
                plan_kg_to_index(kg, rt->n, t->rt->plan->max_parallelism);
            rc = task_add(t, rt->outs[i], key, key_len, ts, value, value_len);
            break;
        }
        case TOPO_BROADCAST:
            for (uint32_t i = 0; i < rt->n && rc == 0; i++)
                rc = task_add(t, rt->outs[i], key, key_len, ts, value,
                              value_len);
            break;
        }
    }
    if (rc == 0) {
        TASK_COUNT(t->records_out, 1);
        if (ts != WEIR_TS_NONE && ts > t->max_ts)
            t->max_ts = ts;
    }
    return rc;
}

/* Sends a control message on every output channel, after flushing the open
 * batches so that it follows every record emitted before it. */
static int task_send_control(task *t, enum wire_type type, int64_t arg,
                             int64_t arg2)
{
    int rc = task_flush_due(t, 1);
    uint8_t msg[64];
    size_t n = wire_encode_control(msg, sizeof msg, type, arg, arg2);
    for (uint32_t i = 0; i < t->n_outs && rc == 0; i++)
        rc = t->outs[i].chain
                 ? task_chain_control(t, &t->outs[i], type, arg, arg2)
                 : task_send(t, t->outs[i].sock, msg, n);
    return rc;
}

/* Moves this subtask's watermark to `wm` (which is larger): event-time
 * timers up to it fire, the plugin hears of it, and it goes downstream
 * (except the final one, which end of stream implies). */
int task_set_watermark(task *t, int64_t wm)
{
    t->wm = wm;
    /* Timers first, while state that expires at this watermark is still
     * there for them to read. */
    int rc = keyed_fire_timers(t, WEIR_TIME_EVENT, wm);
    if (rc < 0)
        return rc;
    keyed_set_watermark(t, wm);
    if (t->reg->op.on_watermark) {
        guard_cb g = guard_enter(&t->guard, GUARD_ON_WATERMARK);
        rc = t->reg->op.on_watermark(&t->ctx, t->self, wm);
        guard_leave(&t->guard, g);
        if (rc < 0)
            return task_fail(t, "on_watermark", rc);
    }
    if (wm == WEIR_WATERMARK_MAX)
        return 0;
    t->out_idle = 0;
    return task_send_control(t, WIRE_WATERMARK, wm, 0);
}

/* A watermark of an asynchronous operator waits behind the requests in
 * flight (runtime/async.h); any other is applied at once. */
static int task_advance_watermark(task *t, int64_t wm)
{
    int held = async_hold_watermark(t, wm);
    if (held)
        return held < 0 ? held : 0;
    return task_set_watermark(t, wm);
}

/* Recomputes the watermark as the minimum over the open inputs that are not
 * idle. When every input ended it is WEIR_WATERMARK_MAX; when every open
 * input is idle, this subtask declares itself idle downstream instead (an
 * ended input does not count as active: the idle ones may still send). */
static int task_update_watermark(task *t)
{
    int64_t m = WEIR_WATERMARK_MAX;
    int active = 0;
    for (uint32_t i = 0; i < t->n_in; i++)
        if (!t->in_ended[i] && !t->in_idle[i]) {
            active = 1;
            if (t->in_wm[i] < m)
                m = t->in_wm[i];
        }
    if (t->n_ended == t->n_in)
        return m > t->wm ? task_advance_watermark(t, WEIR_WATERMARK_MAX) : 0;
    if (!active) {
        if (t->out_idle)
            return 0;
        t->out_idle = 1;
        return task_send_control(t, WIRE_WATERMARK, t->wm, 1);
    }
    return m > t->wm ? task_advance_watermark(t, m) : 0;
}

/* Source side: sends the watermark (largest event time emitted minus the
 * allowed out-of-orderness) every interval, and idleness after idle_timeout
 * without output. */
static int task_source_watermark(task *t)
{
    int64_t now = task_mono_ns();
    uint64_t out = atomic_load_explicit(&t->records_out, memory_order_relaxed);
    if (out != t->emitted_seen) {
        t->emitted_seen = out;
        t->last_emit_ns = now;
        t->out_idle = 0; /* data reactivates the channel downstream */
    }
    if (now < t->wm_next_ns)
        return 0;
    t->wm_next_ns = now + t->wm_interval_ns;
    if (t->max_ts > INT64_MIN + t->wm_delay_ms) {
        int64_t wm = t->max_ts - t->wm_delay_ms;
        if (wm > t->wm_sent) {
            t->wm_sent = wm;
            t->out_idle = 0;
            return task_send_control(t, WIRE_WATERMARK, wm, 0);
        }
    }
    if (t->wm_idle_ns && !t->out_idle &&
        now - t->last_emit_ns >= t->wm_idle_ns) {
        t->out_idle = 1;
        return task_send_control(t, WIRE_WATERMARK, t->wm_sent, 1);
    }
    return 0;
}

/* Takes this subtask's part of checkpoint `id`: forwards the barrier (a
 * finished subtask has no open output), snapshots keyed state and the
 * plugin's own state into <run dir>/chk-<id>/<op>-<index>/, and acks. A
 * state or file-system error declines the checkpoint (the job goes on); a
 * full disk (FS_ENOSPC) declines it and fails the subtask, as does a
 * plugin's snapshot error. */
static int task_checkpoint(task *t, uint64_t id, int64_t align_ns)
{
    coord_ack_info info = {.align_ns = align_ns};
    char *err = NULL, *chk = NULL, *dir = NULL;
    int rc = 0, ok = 1;
    t->ck_taken = id;
    if (!t->finished &&
        (rc = task_send_control(t, WIRE_BARRIER, (int64_t)id, 0)) < 0)
        return rc == WEIR_ESTATE ? rc : task_fail(t, "sending a barrier", rc);
    int64_t t0 = task_mono_ns();
    keyed_admin_apply(t, id); /* live state changes: in this checkpoint */
    chk = ckpt_dir(t->rt->run_dir, id);
    if (!chk || asprintf(&dir, "%s/%s-%u", chk, t->op->id, t->ps->index) < 0) {
        dir = NULL;
        ok = 0;
        goto ack;
    }
    if ((rc = fs_mkdirs(dir, &err)) < 0)
        goto decline;
    if (t->store) {
        char path[4200];
        snprintf(path, sizeof path, "%s/state", dir);
        if ((rc = keyed_snapshot(t, path)) < 0) {
            err = t->error ? strdup(t->error) : NULL;
            goto decline;
        }
        info.has_state = 1;
    }
    if (t->bcast) {
        char path[4200];
        snprintf(path, sizeof path, "%s/broadcast", dir);
        if (bcast_snapshot(t, path, &info.has_broadcast, &err) < 0)
            goto decline;
    }
    if (t->async) {
        char path[4200];
        snprintf(path, sizeof path, "%s/async", dir);
        if (async_snapshot(t, path, &info.has_async, &err) < 0)
            goto decline;
    }
    if (t->reg->op.snapshot) {
        t->snap_len = 0;
        t->in_snapshot = 1;
        guard_cb g = guard_enter(&t->guard, GUARD_SNAPSHOT);
        rc = t->reg->op.snapshot(&t->ctx, t->self, id);
        guard_leave(&t->guard, g);
        t->in_snapshot = 0;
        if (rc < 0) {
            free(chk);
            free(dir);
            return task_fail(t, "snapshot", rc);
        }
        if (t->reg->n_outputs == 0)
            crash_point("sink_precommit");
        char path[4200];
        snprintf(path, sizeof path, "%s/snapshot", dir);
        if ((rc = fs_write_file(path, t->snap_buf ? t->snap_buf : "",
                                t->snap_len, &err)) < 0)
            goto decline;
        info.has_snapshot = 1;
    }
    info.sync_ns = task_mono_ns() - t0;
    crash_point("state_snapshotted");
    goto ack;
decline:
    log_msg(WEIR_LOG_WARN, t->who, "declining checkpoint %llu: %s",
            (unsigned long long)id, err ? err : "snapshot failed");
    ok = 0;
ack:
    coord_ack(t, id, ok, &info);
    free(chk);
    free(dir);
    if (!ok && rc == FS_ENOSPC) {
        free(t->error);
        t->error = err;
        char what[64];
        snprintf(what, sizeof what, "checkpoint %llu", (unsigned long long)id);
        return task_fail(t, what, rc);
    }
    free(err);
    return 0;
}

/* Tells the plugin about the newest completed checkpoint, once. */
static int task_notify(task *t)
{
    uint64_t c = coord_completed(t->rt);
    if (c <= t->ck_notified)
        return 0;
    t->ck_notified = c;
    if (!t->reg->op.notify_checkpoint_complete)
        return 0;
    guard_cb g = guard_enter(&t->guard, GUARD_NOTIFY_CHECKPOINT_COMPLETE);
    int rc = t->reg->op.notify_checkpoint_complete(&t->ctx, t->self, c);
    guard_leave(&t->guard, g);
    if (rc < 0)
        return task_fail(t, "notify_checkpoint_complete", rc);
    if (t->reg->n_outputs == 0)
        crash_point("sink_commit");
    return 0;
}

/* Whether every open input delivered the barrier being aligned; if so the
 * checkpoint is taken and the inputs are released. */
static int task_check_aligned(task *t)
{
    if (!t->ck_aligning)
        return 0;
    for (uint32_t i = 0; i < t->n_in; i++)
        if (!t->in_ended[i] && !t->in_barrier[i])
            return 0;
    uint64_t id = t->ck_aligning;
    t->ck_aligning = 0;
    memset(t->in_barrier, 0, t->n_in);
    return task_checkpoint(t, id, task_mono_ns() - t->align_start_ns);
}

/* Barrier `id` arrived on `input`. Exactly-once: the input is not read again
 * until the checkpoint is taken (task_run_inputs skips it). */
static int task_on_barrier(task *t, uint32_t input, uint64_t id)
{
    crash_point("barrier_received");
    if (id <= t->ck_taken)
        return 0; /* a checkpoint this subtask already took */
    if (id != t->ck_aligning) {
        /* A newer barrier: an older one can only be pending here after it
         * was aborted upstream (at-least-once lets inputs run ahead). */
        t->ck_aligning = id;
        memset(t->in_barrier, 0, t->n_in);
        t->align_start_ns = task_mono_ns();
    }
    t->in_barrier[input] = 1;
    return task_check_aligned(t);
}

/* Records of a broadcast input go to process_broadcast(), without a key. */
static int task_process_broadcast(task *t, uint32_t input)
{
    weir_record rec;
    int more;
    while ((more = wire_next(&t->reader, &rec)) > 0 && !task_cancelled(t)) {
        TASK_COUNT(t->records_in, 1);
        int rc = bcast_process(t, &rec, t->in_port[input]);
        if (rc < 0)
            return task_fail(t, "process_broadcast", rc);
    }
    if (more < 0) {
        free(t->error);
        t->error = strdup("malformed record in a data message");
        return task_fail(t, "reading input", WEIR_EINVAL);
    }
    return 0;
}

/*
 * Calls process() for one record. WEIR_ERETRY means the plugin took nothing
 * of the record (no emit, no state write) and may take it later: the same
 * record is offered again after 1 ms, doubling up to 1 s, until
 * runtime.retry_timeout has passed since the first refusal; then the
 * subtask fails with the plugin's message.
 */
static int task_call_process(task *t, const weir_record *rec, uint32_t port)
{
    const weir_operator *op = &t->reg->op;
    int64_t first = 0, pause_ms = 1;
    for (;;) {
        guard_cb g = guard_enter(&t->guard, GUARD_PROCESS);
        int rc = op->process(&t->ctx, t->self, rec, port);
        guard_leave(&t->guard, g);
        if (rc != WEIR_ERETRY)
            return rc;
        int64_t now = task_mono_ns();
        if (!first)
            first = now;
        int64_t left = first + t->rt->retry_timeout_ms * 1000000 - now;
        if (left <= 0 || task_cancelled(t)) {
            log_msg(WEIR_LOG_ERROR, t->who,
                    "process() still answered WEIR_ERETRY after %lld ms "
                    "(runtime.retry_timeout)",
                    (long long)((now - first) / 1000000));
            return rc;
        }
        int64_t ns = pause_ms * 1000000 < left ? pause_ms * 1000000 : left;
        struct timespec ts = {(time_t)(ns / 1000000000),
                              (long)(ns % 1000000000)};
        nanosleep(&ts, NULL);
        if (pause_ms < 1000)
            pause_ms *= 2;
    }
}

/* Waits for a completion, a due timeout or retry, or a due batch (at most
 * TASK_POLL_MS), then serves them, processing-time timers and checkpoint
 * notifications. Input is not read meanwhile: the capacity wait of
 * task_async_record() and the end-of-input drain use it. */
static int task_async_wait(task *t)
{
    guard_touch(&t->guard);
    zmq_pollitem_t it = {
        .socket = NULL, .fd = async_fd(t), .events = ZMQ_POLLIN};
    int ms = async_next_ms(t, task_next_deadline_ms(t, TASK_POLL_MS));
    if (zmq_poll(&it, 1, ms) < 0 && errno != EINTR) {
        free(t->error);
        t->error = strdup(zmq_strerror(errno));
        return task_fail(t, "waiting for async results", WEIR_EIO);
    }
    int rc = async_service(t);
    if (rc == 0 && (rc = task_flush_due(t, 0)) < 0)
        return rc == WEIR_ESTATE ? rc : task_fail(t, "sending", rc);
    if (rc == 0)
        rc = keyed_fire_timers(t, WEIR_TIME_PROCESSING, task_wall_ms());
    if (rc == 0)
        rc = task_notify(t);
    return rc;
}

/* A record of an asynchronous operator: waits while `capacity` requests
 * are in flight (back pressure: the rest of the batch and the inputs wait),
 * then queues it and starts its request. */
static int task_async_record(task *t, const weir_record *rec, uint32_t port)
{
    int rc = 0;
    while (async_full(t) && rc == 0) {
        if (task_cancelled(t))
            return WEIR_ESTATE;
        rc = task_async_wait(t);
    }
    if (rc < 0)
        return rc;
    TASK_COUNT(t->records_in, 1);
    if (rec->ts < t->wm && rec->ts != WEIR_TS_NONE)
        TASK_COUNT(t->late_records, 1);
    return async_submit(t, rec, port);
}

/* End of input of an asynchronous operator: every request still in flight
 * is delivered (and the final watermark behind them) before finish(). No
 * input can bring a barrier any more, so the subtask takes checkpoints the
 * coordinator asks for like a finished one, forwarding their barriers. */
static int task_async_drain(task *t)
{
    if (!t->async)
        return 0;
    int rc = async_service(t);
    if (rc == 0 && async_pending(t))
        coord_task_finished(t);
    while (rc == 0 && async_pending(t) && !task_cancelled(t)) {
        uint64_t id = coord_poll(t);
        if (id && (rc = task_checkpoint(t, id, 0)) < 0)
            break;
        rc = task_async_wait(t);
    }
    return rc;
}

/* One record for process() on input port `port`, with its key current,
 * for a chained member (task_process_data's loop does the same inline).
 * Returns 0, or the code of a failure recorded with task_fail(). The
 * caller clears the key (keyed_clear_key) after the last record. */
static int task_deliver(task *t, const weir_record *rec, uint32_t port)
{
    t->cur_key = rec->key;
    t->cur_key_len = rec->key_len;
    t->has_key = 1;
    int krc = keyed_set_key(t, rec);
    if (krc < 0)
        return task_fail(t, "setting the current key", krc);
    TASK_COUNT(t->records_in, 1);
    if (rec->ts < t->wm && rec->ts != WEIR_TS_NONE)
        TASK_COUNT(t->late_records, 1);
    int rc = task_call_process(t, rec, port);
    t->has_key = 0;
    return rc < 0 ? task_fail(t, "process", rc) : 0;
}

static int task_process_data(task *t, uint32_t input)
{
    weir_record rec;
    int more;
    if (bcast_is_input(t, t->in_port[input]))
        return task_process_broadcast(t, input);
    if (t->async) {
        while ((more = wire_next(&t->reader, &rec)) > 0 && !task_cancelled(t)) {
            int rc = task_async_record(t, &rec, t->in_port[input]);
            if (rc < 0)
                return rc;
        }
        if (more < 0) {
            free(t->error);
            t->error = strdup("malformed record in a data message");
            return task_fail(t, "reading input", WEIR_EINVAL);
        }
        return 0;
    }
    state_hint ring[2] = {{.n = 0}, {.n = 0}};
    for (uint64_t i = 0;
         (more = wire_next(&t->reader, &rec)) > 0 && !task_cancelled(t); i++) {
        keyed_prefetch(t, &t->reader, i, ring);
        int rc = task_deliver(t, &rec, t->in_port[input]);
        if (rc < 0)
            return rc;
    }
    keyed_clear_key(t);
    if (more < 0) {
        free(t->error);
        t->error = strdup("malformed record in a data message");
        return task_fail(t, "reading input", WEIR_EINVAL);
    }
    return 0;
}

/* A control message on input `input`: end of stream, a watermark (idle:
 * the producer declared itself idle) or a barrier. */
static int task_on_control(task *t, uint32_t input, enum wire_type type,
                           int64_t arg, int idle)
{
    int rc;
    switch (type) {
    case WIRE_DATA: return 0;
    case WIRE_EOS:
        if (!t->in_ended[input]) {
            t->in_ended[input] = 1;
            t->n_ended++;
        }
        t->in_idle[input] = 0;
        t->in_wm[input] = WEIR_WATERMARK_MAX;
        if ((rc = task_check_aligned(t)) < 0)
            return rc;
        return task_update_watermark(t);
    case WIRE_WATERMARK:
        t->in_idle[input] = (uint8_t)(idle != 0);
        if (!idle && arg > t->in_wm[input])
            t->in_wm[input] = arg;
        return task_update_watermark(t);
    case WIRE_BARRIER: return task_on_barrier(t, input, (uint64_t)arg);
    }
    return 0;
}

/* Handles one message from input `input`. */
static int task_handle(task *t, uint32_t input, zmq_msg_t *m)
{
    wire_msg msg;
    char *err = NULL;
    if (wire_parse(&t->reader, zmq_msg_data(m), zmq_msg_size(m), &msg, &err) <
        0) {
        free(t->error);
        t->error = err;
        return task_fail(t, "reading input", WEIR_EINVAL);
    }
    if (msg.type == WIRE_DATA) {
        t->in_idle[input] = 0;
        return task_process_data(t, input);
    }
    return task_on_control(t, input, msg.type, msg.arg, msg.idle);
}

/* ------------------------------------------------------------------------ */
/* Operator chaining (runtime/plan.h: plan_chainable)                        */
/* ------------------------------------------------------------------------ */

/* What a call into a chained member changes on the thread, to be given
 * back when it returns. */
typedef struct task_frame {
    task *owner; /* task_owner */
    task *guard; /* the crash handler's subtask */
    task *up;    /* the caller, whose chain_busy is raised; or NULL */
} task_frame;

/* Makes the thread the thread of member `m` for a call into it: host
 * services check their ctx against task_owner, the crash handler names
 * `m`, and the watchdog watches m's mark instead of the caller's (`up`,
 * NULL when the head calls between callbacks). */
static task_frame task_chain_enter(task *up, task *m)
{
    task_frame f = {.owner = task_owner, .up = up};
    if (up)
        atomic_fetch_add_explicit(&up->chain_busy, 1, memory_order_relaxed);
    task_owner = m;
    f.guard = guard_thread_switch(m);
    return f;
}

static void task_chain_leave(task_frame f)
{
    guard_thread_switch(f.guard);
    task_owner = f.owner;
    if (!f.up)
        return;
    /* The time in the member was the member's, as time waiting on a full
     * channel is the host's: the caller's callback has made progress. */
    guard_touch(&f.up->guard);
    atomic_fetch_sub_explicit(&f.up->chain_busy, 1, memory_order_relaxed);
}

/* A record `up` emitted on a chained channel: the member's process()
 * runs now, on this thread, as it would for a record read from the
 * channel. A failure of the member is recorded (task_fail) and fails the
 * job; its code goes back to the upstream weir_emit (WEIR_ERETRY as
 * WEIR_ESTATE: the upstream must not offer its own record again). */
static int task_chain_record(task *up, task_out *o, const void *key,
                             size_t key_len, int64_t ts, const void *value,
                             size_t value_len)
{
    task *m = o->chain;
    if (task_cancelled(m))
        return WEIR_ESTATE;
    weir_record rec = {.size = sizeof rec,
                       .key = key,
                       .key_len = key_len,
                       .ts = ts,
                       .value = value,
                       .value_len = value_len};
    task_frame f = task_chain_enter(up, m);
    int rc = task_deliver(m, &rec, m->in_port[o->chain_input]);
    keyed_clear_key(m);
    task_chain_leave(f);
    return rc == WEIR_ERETRY ? WEIR_ESTATE : rc;
}

static int task_finish(task *t);

/* End of input of a chained member: what task_main() does for a subtask
 * with its own thread when its inputs ended (finish() and end of stream
 * downstream), and, with checkpoints, it joins the finished subtasks that
 * the coordinator asks directly (the head's task_run_finished serves it). */
static int task_chain_finish(task *m)
{
    int rc = task_cancelled(m) ? 0 : task_finish(m);
    m->finished = 1;
    if (rc == 0 && coord_enabled(m->rt))
        coord_task_finished(m);
    return rc;
}

/* A control message `up` sent on a chained channel, handled at once by the
 * member in the order of the records around it: a watermark moves the
 * member's watermark (its timers and on_watermark(), then on down the
 * chain); a barrier is aligned at once (one input) and the member takes
 * its snapshot, forwarding the barrier first; end of stream finishes it. */
static int task_chain_control(task *up, task_out *o, enum wire_type type,
                              int64_t arg, int64_t arg2)
{
    task *m = o->chain;
    task_frame f = task_chain_enter(up, m);
    int rc = task_on_control(m, o->chain_input, type, arg, arg2 != 0);
    if (rc == 0 && type == WIRE_EOS && m->n_ended == m->n_in && !m->finished)
        rc = task_chain_finish(m);
    task_chain_leave(f);
    return rc;
}

/* What the loop of a subtask with its own thread does between messages,
 * for each member of the chain headed by `t`: due batches sent,
 * processing-time timers fired, an expiry sweep step, checkpoint
 * notifications. */
static int task_chain_service(task *t)
{
    int rc = 0;
    for (uint32_t k = 0; k < t->n_chain && rc == 0; k++) {
        task *m = t->chain[k];
        if (m->finished)
            continue; /* task_run_finished serves it */
        task_frame f = task_chain_enter(NULL, m);
        if ((rc = task_flush_due(m, 0)) < 0 && rc != WEIR_ESTATE)
            rc = task_fail(m, "sending", rc);
        if (rc == 0)
            rc = keyed_fire_timers(m, WEIR_TIME_PROCESSING, task_wall_ms());
        if (rc == 0)
            rc = keyed_sweep(m, 0);
        if (rc == 0)
            rc = task_notify(m);
        task_chain_leave(f);
    }
    return rc;
}

/* Whether input `i` is held back by barrier alignment (exactly-once). */
static int task_blocked(const task *t, uint32_t i)
{
    return t->ck_aligning && t->in_barrier[i] && t->rt->ck_exactly_once;
}

/* Reads up to TASK_DRAIN_MAX messages from input `i` without blocking. */
static int task_drain(task *t, uint32_t i)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = 0;
    for (int k = 0;
         k < TASK_DRAIN_MAX && !t->in_ended[i] && !task_blocked(t, i); k++) {
        if (zmq_msg_recv(&m, t->in_socks[i], ZMQ_DONTWAIT) < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                free(t->error);
                t->error = strdup(zmq_strerror(errno));
                rc = task_fail(t, "receiving", WEIR_EIO);
            }
            break;
        }
        if ((rc = task_handle(t, i, &m)) < 0)
            break;
    }
    zmq_msg_close(&m);
    return rc;
}

static int task_run_inputs(task *t)
{
    /* One more item: the eventfd of async completions. */
    zmq_pollitem_t *items = calloc(t->n_in + 1, sizeof *items);
    uint32_t *which = calloc(t->n_in, sizeof *which);
    int rc = items && which ? 0 : WEIR_ENOMEM;
    while (rc == 0 && t->n_ended < t->n_in && !task_cancelled(t)) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < t->n_in; i++)
            if (!t->in_ended[i] && !task_blocked(t, i)) {
                items[n] = (zmq_pollitem_t){.socket = t->in_socks[i],
                                            .events = ZMQ_POLLIN};
                which[n++] = i;
            }
        int ni = (int)n;
        if (t->async)
            items[ni++] =
                (zmq_pollitem_t){.fd = async_fd(t), .events = ZMQ_POLLIN};
        int r =
            zmq_poll(items, ni,
                     async_next_ms(t, task_next_deadline_ms(t, TASK_POLL_MS)));
        if (r < 0 && errno != EINTR) {
            rc = WEIR_EIO;
            break;
        }
        if (t->async)
            rc = async_service(t);
        for (uint32_t k = 0; r > 0 && k < n && rc == 0; k++)
            if (items[k].revents & ZMQ_POLLIN)
                rc = task_drain(t, which[k]);
        if (rc == 0 && t->async)
            rc = async_service(t);
        if (rc == 0 && (rc = task_flush_due(t, 0)) < 0)
            rc = task_fail(t, "sending", rc);
        if (rc == 0)
            rc = keyed_fire_timers(t, WEIR_TIME_PROCESSING, task_wall_ms());
        if (rc == 0)
            rc = keyed_sweep(t, 0);
        if (rc == 0)
            rc = task_notify(t);
        if (rc == 0)
            rc = task_chain_service(t);
    }
    free(items);
    free(which);
    if (rc == 0 && !task_cancelled(t))
        rc = task_async_drain(t);
    return rc;
}

static int task_run_source(task *t)
{
    const weir_operator *op = &t->reg->op;
    while (!task_cancelled(t) &&
           !atomic_load_explicit(&t->rt->stopping, memory_order_relaxed)) {
        uint64_t id = coord_poll(t);
        int rc = id ? task_checkpoint(t, id, 0) : 0;
        if (rc < 0 || (rc = task_notify(t)) < 0)
            return rc;
        guard_cb g = guard_enter(&t->guard, GUARD_POLL);
        rc = op->poll(&t->ctx, t->self);
        guard_leave(&t->guard, g);
        if (rc == WEIR_EOF)
            break;
        if (rc == WEIR_EAGAIN) {
            int ms = task_next_deadline_ms(t, 1);
            struct timespec ts = {0, (ms ? ms : 1) * 1000000L / 4};
            nanosleep(&ts, NULL);
        } else if (rc < 0) {
            return task_fail(t, "poll", rc);
        }
        if ((rc = task_source_watermark(t)) < 0 ||
            (rc = task_flush_due(t, 0)) < 0)
            return rc == WEIR_ESTATE ? rc : task_fail(t, "sending", rc);
        if ((rc = task_chain_service(t)) < 0)
            return rc;
    }
    return 0;
}

/* Restores the plugin's own state from the checkpoint being restored. */
static int task_restore(task *t)
{
    const ckpt_manifest *m = t->rt->restore;
    if (!m || !t->reg->op.restore)
        return 0;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        if (strcmp(e->op_id, t->op->id) != 0 || e->index != t->ps->index ||
            !e->snapshot)
            continue;
        char path[4200], *data = NULL, *err = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s", t->rt->restore_dir, e->snapshot);
        int rc = fs_read_file(path, &data, &len, &err);
        if (rc < 0) {
            free(t->error);
            t->error = err;
            return task_fail(t, "reading its snapshot", rc);
        }
        t->phase = TASK_PHASE_RUN;
        guard_cb g = guard_enter(&t->guard, GUARD_RESTORE);
        rc = t->reg->op.restore(&t->ctx, t->self, m->id, e->snapshot_version,
                                data, len);
        guard_leave(&t->guard, g);
        t->phase = TASK_PHASE_NONE;
        free(data);
        return rc < 0 ? task_fail(t, "restore", rc) : 0;
    }
    return 0;
}

int task_open_instance(task *t)
{
    /* A keyed subtask gets its store before the plugin runs, so that state
     * and timers always see the current key. */
    if ((t->reg->op.flags & WEIR_OP_KEYED) && t->rt->senv) {
        int rc = keyed_open(t);
        if (rc < 0)
            return task_fail(t, "opening keyed state", rc);
    }
    int rc = bcast_restore(t, &t->error);
    if (rc < 0)
        return task_fail(t, "restoring broadcast state", rc);
    if ((rc = async_open(t, &t->error)) < 0)
        return task_fail(t, "setting up async I/O", rc);
    if ((rc = async_restore(t, &t->error)) < 0)
        return task_fail(t, "restoring async requests", rc);
    t->phase = TASK_PHASE_OPEN;
    guard_cb g = guard_enter(&t->guard, GUARD_OPEN);
    rc = t->reg->op.open(&t->ctx, &t->self);
    guard_leave(&t->guard, g);
    t->phase = TASK_PHASE_NONE;
    if (rc < 0)
        return task_fail(t, "open", rc);
    t->opened = 1;
    bcast_opened(t);
    if (t->rt->restore)
        t->ck_taken = t->ck_notified = t->rt->restore->id;
    if ((rc = task_restore(t)) < 0)
        return rc;
    return keyed_migrate(t);
}

static int task_open(task *t)
{
    int rc = task_open_instance(t);
    if (rc < 0)
        return rc;
    if ((uint32_t)atomic_fetch_add(&t->rt->n_opened, 1) + 1 == t->rt->n_tasks)
        log_msg(WEIR_LOG_INFO, "runtime", "all %u subtasks running%s",
                t->rt->n_tasks,
                t->rt->restore ? " from the restored checkpoint" : "");
    return 0;
}

/* With checkpoints, a subtask whose input ended stays to take part in the
 * checkpoints still to come, the final one above all, and to hear that they
 * completed. */
static int task_run_finished(task *t)
{
    coord_task_finished(t);
    int rc = 0;
    while (rc == 0 && !task_cancelled(t)) {
        /* The head and every finished member of its chain, in order. */
        uint64_t any = 0;
        for (uint32_t k = 0; k <= t->n_chain && rc == 0; k++) {
            task *c = k ? t->chain[k - 1] : t;
            task_frame f = task_chain_enter(NULL, c);
            uint64_t id = coord_poll(c);
            any |= id;
            if (id)
                rc = task_checkpoint(c, id, 0);
            if (rc == 0)
                rc = task_notify(c);
            task_chain_leave(f);
        }
        if (rc < 0 || !coord_done(t->rt, any ? 0 : 20))
            continue;
        int settled = 1;
        for (uint32_t k = 0; k <= t->n_chain; k++) {
            task *c = k ? t->chain[k - 1] : t;
            settled &=
                coord_completed(t->rt) <= c->ck_notified && !coord_poll(c);
        }
        if (settled)
            break;
    }
    return rc;
}

static int task_finish(task *t)
{
    int rc = keyed_sweep(t, 1);
    if (rc < 0)
        return rc;
    if (t->reg->op.finish) {
        guard_cb g = guard_enter(&t->guard, GUARD_FINISH);
        rc = t->reg->op.finish(&t->ctx, t->self);
        guard_leave(&t->guard, g);
        if (rc < 0)
            return task_fail(t, "finish", rc);
    }
    rc = task_send_control(t, WIRE_EOS, 0, 0);
    if (rc < 0 && rc != WEIR_ESTATE)
        return task_fail(t, "sending end of stream", rc);
    return rc;
}

static void task_close(task *t)
{
    if (!t->opened)
        return;
    t->phase = TASK_PHASE_CLOSE;
    guard_cb g = guard_enter(&t->guard, GUARD_CLOSE);
    t->reg->op.close(&t->ctx, t->self);
    guard_leave(&t->guard, g);
    t->phase = TASK_PHASE_NONE;
    t->opened = 0;
}

void *task_main(void *arg)
{
    task *t = arg;
    guard_thread_begin(t);
    int64_t max_record =
        topo_param_int(&t->rt->job->runtime, "max_record_size");
    t->max_record =
        max_record > 0 ? (size_t)max_record : TASK_MAX_RECORD_DEFAULT;
    task_owner = t;
    int rc = task_open(t);
    /* The members of its chain open in its thread, upstream first. */
    for (uint32_t k = 0; k < t->n_chain && rc == 0; k++) {
        task *m = t->chain[k];
        task_frame f = task_chain_enter(NULL, m);
        m->max_record = t->max_record;
        rc = task_open(m);
        task_chain_leave(f);
    }
    if (rc == 0) {
        for (uint32_t k = 0; k < t->n_chain; k++)
            t->chain[k]->phase = TASK_PHASE_RUN;
        t->phase = TASK_PHASE_RUN;
        if (t->reg->op.flags & WEIR_OP_SOURCE)
            rc = task_run_source(t);
        else if ((rc = async_resume(t)) == 0)
            rc = task_run_inputs(t);
        if (rc == 0 && !task_cancelled(t))
            rc = task_finish(t);
        t->finished = 1;
        /* Its failures fail the job (task_fail); nothing is left to do. */
        if (rc == 0 && coord_enabled(t->rt))
            task_run_finished(t);
        t->phase = TASK_PHASE_NONE;
        for (uint32_t k = 0; k < t->n_chain; k++)
            t->chain[k]->phase = TASK_PHASE_NONE;
    }
    /* The head, then the members of its chain, each as its own thread
     * would close it. */
    for (uint32_t k = 0; k <= t->n_chain; k++) {
        task *c = k ? t->chain[k - 1] : t;
        task_frame f = task_chain_enter(NULL, c);
        task_close(c);
        async_close(c);
        keyed_close(c);
        bcast_free(c);
        log_msg(WEIR_LOG_DEBUG, c->who,
                "ended: %llu in, %llu out, %llu batches, %.1f ms "
                "back-pressured",
                (unsigned long long)atomic_load(&c->records_in),
                (unsigned long long)atomic_load(&c->records_out),
                (unsigned long long)atomic_load(&c->batches_out),
                (double)atomic_load(&c->blocked_ns) / 1e6);
        task_chain_leave(f);
        if (k)
            atomic_store(&c->done, 1);
    }
    guard_thread_end();
    task_owner = NULL;
    atomic_store(&t->done, 1);
    atomic_fetch_sub(&t->rt->n_running, 1);
    return NULL;
}
