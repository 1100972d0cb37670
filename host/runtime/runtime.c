#include "runtime/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "runtime/api.h"
#include "runtime/task.h"

void rt_fail(rt_job *rt, int code, const char *msg)
{
    pthread_mutex_lock(&rt->lock);
    if (!rt->error) {
        rt->error = strdup(msg);
        rt->error_code = code;
        log_msg(WEIR_LOG_ERROR, "runtime", "job failed: %s", msg);
    }
    pthread_mutex_unlock(&rt->lock);
    atomic_store(&rt->cancelled, 1);
}

static void rt_settings(rt_job *rt)
{
    const topo_params *r = &rt->job->runtime;
    int64_t bs = topo_param_int(r, "batch_size");
    int64_t to = topo_param_int(r, "buffer_timeout");
    int64_t cap = topo_param_int(r, "channel_capacity");
    rt->batch_size = bs > 0 ? (uint32_t)bs : 256;
    rt->batch_bytes = 64 * 1024;
    rt->buffer_timeout_ns = (to > 0 ? to : 2) * 1000000;
    rt->channel_capacity = cap > 0 ? (int)cap : 64;
}

static void *rt_socket(rt_job *rt, int type, char **errptr)
{
    void *s = zmq_socket(rt->zctx, type);
    if (!s) {
        err_set(errptr, WEIR_EIO, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int hwm = rt->channel_capacity, linger = 0;
    zmq_setsockopt(s, type == ZMQ_PUSH ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm,
                   sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    return s;
}

/* Creates a task's input sockets (bound) for the channels it consumes. */
static int rt_bind_inputs(rt_job *rt, task *t, char **errptr)
{
    const plan_subtask *ps = t->ps;
    t->n_in = ps->n_inputs;
    t->in_socks = calloc(ps->n_inputs + 1, sizeof *t->in_socks);
    t->in_port = calloc(ps->n_inputs + 1, sizeof *t->in_port);
    t->in_ended = calloc(ps->n_inputs + 1, 1);
    t->in_idle = calloc(ps->n_inputs + 1, 1);
    t->in_wm = calloc(ps->n_inputs + 1, sizeof *t->in_wm);
    if (!t->in_socks || !t->in_port || !t->in_ended || !t->in_idle || !t->in_wm)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < ps->n_inputs; i++) {
        const plan_channel *c = &rt->plan->channels[ps->inputs[i]];
        t->in_port[i] = c->to_port;
        t->in_wm[i] = WEIR_WATERMARK_MIN;
        if (!(t->in_socks[i] = rt_socket(rt, ZMQ_PULL, errptr)))
            return WEIR_EIO;
        if (zmq_bind(t->in_socks[i], c->address) < 0)
            return err_set(errptr, WEIR_EIO, "bind %s: %s", c->address,
                           zmq_strerror(errno));
    }
    return 0;
}

/* Creates a task's output sockets (connected) and resolves its routes. */
static int rt_connect_outputs(rt_job *rt, task *t, char **errptr)
{
    const plan_subtask *ps = t->ps;
    uint32_t n = 0;
    for (uint32_t p = 0; p < ps->n_outputs; p++)
        for (uint32_t r = 0; r < ps->outputs[p].n_routes; r++)
            n += ps->outputs[p].routes[r].n_channels;
    t->outs = calloc(n + 1, sizeof *t->outs);
    t->ports = calloc(ps->n_outputs + 1, sizeof *t->ports);
    if (!t->outs || !t->ports)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    t->n_ports = ps->n_outputs;
    for (uint32_t p = 0; p < ps->n_outputs; p++) {
        const plan_port *pp = &ps->outputs[p];
        t->ports[p].routes = calloc(pp->n_routes + 1, sizeof(task_route));
        if (!t->ports[p].routes)
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        t->ports[p].n_routes = pp->n_routes;
        for (uint32_t r = 0; r < pp->n_routes; r++) {
            const plan_route *pr = &pp->routes[r];
            task_route *tr = &t->ports[p].routes[r];
            tr->partition = pr->partition;
            tr->n = pr->n_channels;
            tr->rr = ps->index; /* spread rebalance starts */
            tr->outs = calloc(pr->n_channels, sizeof *tr->outs);
            if (!tr->outs)
                return err_set(errptr, WEIR_ENOMEM, "out of memory");
            for (uint32_t c = 0; c < pr->n_channels; c++) {
                task_out *o = &t->outs[t->n_outs++];
                const plan_channel *ch = &rt->plan->channels[pr->channels[c]];
                o->channel = ch->id;
                wire_batch_init(&o->batch);
                tr->outs[c] = o;
                if (!(o->sock = rt_socket(rt, ZMQ_PUSH, errptr)))
                    return WEIR_EIO;
                if (zmq_connect(o->sock, ch->address) < 0)
                    return err_set(errptr, WEIR_EIO, "connect %s: %s",
                                   ch->address, zmq_strerror(errno));
            }
        }
    }
    return 0;
}

static int rt_make_tasks(rt_job *rt, char **errptr)
{
    rt->n_tasks = rt->plan->n_subtasks;
    rt->tasks = calloc(rt->n_tasks + 1, sizeof *rt->tasks);
    if (!rt->tasks)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        task *t = &rt->tasks[i];
        t->ctx.api = api_table();
        t->rt = rt;
        t->ps = &rt->plan->subtasks[i];
        t->op = &rt->job->ops[t->ps->op];
        t->reg = t->op->reg;
        snprintf(t->who, sizeof t->who, "%s#%u", t->op->id, t->ps->index);
        wire_reader_init(&t->reader);
        t->wm = t->wm_sent = WEIR_WATERMARK_MIN;
        t->max_ts = WEIR_TS_NONE;
        t->wm_delay_ms = topo_param_int(&t->op->watermarks, "out_of_orderness");
        t->wm_interval_ns =
            topo_param_int(&t->op->watermarks, "interval") * 1000000;
        t->wm_idle_ns =
            topo_param_int(&t->op->watermarks, "idle_timeout") * 1000000;
        t->last_emit_ns = task_mono_ns();
    }
    /* Bind every input before any connect, so no connect waits. */
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        int rc = rt_bind_inputs(rt, &rt->tasks[i], errptr);
        if (rc < 0)
            return rc;
    }
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        int rc = rt_connect_outputs(rt, &rt->tasks[i], errptr);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int rt_start_threads(rt_job *rt, char **errptr)
{
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        task *t = &rt->tasks[i];
        atomic_fetch_add(&rt->n_running, 1);
        int e = pthread_create(&t->thread, NULL, task_main, t);
        if (e != 0) {
            atomic_fetch_sub(&rt->n_running, 1);
            atomic_store(&rt->cancelled, 1);
            return err_set(errptr, WEIR_EFAIL, "starting a thread: %s",
                           strerror(e));
        }
        t->thread_started = 1;
    }
    return 0;
}

int rt_start(const topo_job *job, rt_job **out, char **errptr)
{
    static atomic_uint rt_seq;
    char prefix[64];
    rt_job *rt = calloc(1, sizeof *rt);
    if (!rt)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    rt->job = job;
    pthread_mutex_init(&rt->lock, NULL);
    rt_settings(rt);
    snprintf(prefix, sizeof prefix, "weir-%u", atomic_fetch_add(&rt_seq, 1));
    int rc = plan_build(job, prefix, &rt->plan, errptr);
    if (rc < 0)
        goto fail;
    if (!(rt->zctx = zmq_ctx_new())) {
        rc = err_set(errptr, WEIR_EIO, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    if ((rc = rt_make_tasks(rt, errptr)) < 0 ||
        (rc = rt_start_threads(rt, errptr)) < 0)
        goto fail;
    *out = rt;
    return 0;
fail:
    rt_wait(rt, NULL);
    rt_destroy(rt);
    return rc;
}

void rt_request_stop(rt_job *rt)
{
    if (atomic_exchange(&rt->stopping, 1))
        atomic_store(&rt->cancelled, 1);
}

int rt_done(const rt_job *rt)
{
    return atomic_load(&rt->n_running) == 0;
}

static void rt_close_sockets(task *t)
{
    for (uint32_t i = 0; i < t->n_in; i++)
        if (t->in_socks[i]) {
            zmq_close(t->in_socks[i]);
            t->in_socks[i] = NULL;
        }
    for (uint32_t i = 0; i < t->n_outs; i++)
        if (t->outs[i].sock) {
            zmq_close(t->outs[i].sock);
            t->outs[i].sock = NULL;
        }
}

int rt_wait(rt_job *rt, char **errptr)
{
    for (uint32_t i = 0; i < rt->n_tasks; i++)
        if (rt->tasks[i].thread_started) {
            pthread_join(rt->tasks[i].thread, NULL);
            rt->tasks[i].thread_started = 0;
        }
    for (uint32_t i = 0; i < rt->n_tasks; i++)
        rt_close_sockets(&rt->tasks[i]);
    if (rt->zctx) {
        zmq_ctx_term(rt->zctx);
        rt->zctx = NULL;
    }
    if (rt->error)
        return err_set(errptr, rt->error_code ? rt->error_code : WEIR_EFAIL,
                       "%s", rt->error);
    return 0;
}

uint32_t rt_task_count(const rt_job *rt)
{
    return rt->n_tasks;
}

rt_task_stats rt_task_stats_get(const rt_job *rt, uint32_t i)
{
    const task *t = &rt->tasks[i];
    return (rt_task_stats){.op_id = t->op->id,
                           .index = t->ps->index,
                           .records_in = atomic_load(&t->records_in),
                           .records_out = atomic_load(&t->records_out),
                           .batches_out = atomic_load(&t->batches_out),
                           .blocked_ns = atomic_load(&t->blocked_ns),
                           .late_records = atomic_load(&t->late_records),
                           .watermark = t->wm};
}

static void rt_free_task(task *t)
{
    for (uint32_t p = 0; p < t->n_ports; p++) {
        for (uint32_t r = 0; r < t->ports[p].n_routes; r++)
            free(t->ports[p].routes[r].outs);
        free(t->ports[p].routes);
    }
    for (uint32_t i = 0; i < t->n_outs; i++)
        wire_batch_destroy(&t->outs[i].batch);
    wire_reader_destroy(&t->reader);
    free(t->ports);
    free(t->outs);
    free(t->in_socks);
    free(t->in_port);
    free(t->in_ended);
    free(t->in_idle);
    free(t->in_wm);
    free(t->error);
}

void rt_destroy(rt_job *rt)
{
    if (!rt)
        return;
    for (uint32_t i = 0; i < rt->n_tasks; i++)
        rt_free_task(&rt->tasks[i]);
    free(rt->tasks);
    plan_free(rt->plan);
    free(rt->error);
    pthread_mutex_destroy(&rt->lock);
    free(rt);
}
