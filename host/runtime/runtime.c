#include "runtime/runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "metrics/metrics.h"
#include "runtime/api.h"
#include "runtime/coord.h"
#include "runtime/task.h"
#include "state/state.h"
#include "statetool/rescale.h"

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

static void rt_ckpt_settings(rt_job *rt, const rt_options *opts)
{
    const topo_params *c = &rt->job->checkpoint;
    rt->run_dir = opts ? opts->run_dir : NULL;
    rt->restore = opts ? opts->restore : NULL;
    rt->restore_dir = opts ? opts->restore_dir : NULL;
    rt->attempt = opts ? opts->attempt : 0;
    rt->allow_non_restored = opts ? opts->allow_non_restored : 0;
    rt->retry_timeout_ms = topo_param_int(&rt->job->runtime, "retry_timeout");
    rt->ck_interval_ms = topo_param_int(c, "interval");
    rt->ck_enabled = rt->run_dir && rt->ck_interval_ms > 0;
    const char *mode = topo_param_str(c, "mode");
    rt->ck_exactly_once = !mode || strcmp(mode, "at_least_once") != 0;
    rt->ck_min_pause_ms = topo_param_int(c, "min_pause");
    rt->ck_timeout_ms = topo_param_int(c, "timeout");
    rt->ck_retain = (uint32_t)topo_param_int(c, "retain");
    rt->ck_tolerable_failed = topo_param_int(c, "tolerable_failed_checkpoints");
    pthread_mutex_init(&rt->ck_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->ck_cond, &ca);
    pthread_condattr_destroy(&ca);
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
    t->in_barrier = calloc(ps->n_inputs + 1, 1);
    if (!t->in_socks || !t->in_port || !t->in_ended || !t->in_idle ||
        !t->in_wm || !t->in_barrier)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < ps->n_inputs; i++) {
        const plan_channel *c = &rt->plan->channels[ps->inputs[i]];
        t->in_port[i] = c->to_port;
        t->in_wm[i] = WEIR_WATERMARK_MIN;
        if (c->chained)
            continue; /* delivered by call (task_out.chain) */
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
                if (ch->chained) {
                    task *m = &rt->tasks[ch->consumer];
                    o->chain = m;
                    while (m->ps->inputs[o->chain_input] != ch->id)
                        o->chain_input++;
                    continue;
                }
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

/* Links the tasks of chained operators (plan.op_chain_up): each member to
 * the task that calls it and to its chain's head, and each head to its
 * members in plan order, which is upstream first. Logs each chain. */
static int rt_link_chains(rt_job *rt, char **errptr)
{
    const plan *p = rt->plan;
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        task *t = &rt->tasks[i];
        int32_t up = p->op_chain_up[t->ps->op];
        t->chain_head = t;
        if (up < 0)
            continue;
        t->chain_up = &rt->tasks[p->op_first_subtask[up] + t->ps->index];
        t->chain_head = t->chain_up->chain_head;
        task *h = t->chain_head;
        task **n = realloc(h->chain, (h->n_chain + 1) * sizeof *n);
        if (!n)
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        h->chain = n;
        h->chain[h->n_chain++] = t;
    }
    const topo_job *job = rt->job;
    for (size_t i = 0; i < job->n_ops; i++) {
        if (p->op_chain_up[i] >= 0)
            continue;
        char line[1024];
        size_t len = (size_t)snprintf(line, sizeof line, "%s", job->ops[i].id);
        uint32_t n = 1;
        for (size_t k = i + 1; k < job->n_ops && len < sizeof line; k++)
            if (p->op_chain_up[k] >= 0 &&
                plan_chain_head(p, (uint32_t)k) == (uint32_t)i) {
                len += (size_t)snprintf(line + len, sizeof line - len, " -> %s",
                                        job->ops[k].id);
                n++;
            }
        if (n > 1)
            log_msg(WEIR_LOG_INFO, "runtime",
                    "chain: %s (%u operators, parallelism %u: one thread "
                    "per subtask)",
                    line, n, job->ops[i].parallelism);
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
        pthread_mutex_init(&t->pub_lock, NULL);
        pthread_mutex_init(&t->admin_lock, NULL);
    }
    int lrc = rt_link_chains(rt, errptr);
    if (lrc < 0)
        return lrc;
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
        if (t->chain_head != t)
            continue; /* runs in its chain head's thread */
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

/* The parallelism operator `op_id` had in checkpoint m; 0 when m holds
 * none of its subtasks. */
static uint32_t rt_restored_parallelism(const ckpt_manifest *m,
                                        const char *op_id)
{
    for (size_t i = 0; m && i < m->n_tasks; i++)
        if (strcmp(m->tasks[i].op_id, op_id) == 0)
            return m->tasks[i].parallelism;
    return 0;
}

/* Rebuilds the working state directories of keyed operator `op` under
 * `dir` from the checkpoint being restored: a copy of each subtask's
 * state when the parallelism is unchanged, else the key groups
 * redistributed over the new subtasks (statetool/rescale.h). */
int rt_restore_op_state(const topo_op *op, const ckpt_manifest *m,
                        const char *restore_dir, const char *dir, char **errptr)
{
    uint32_t was = rt_restored_parallelism(m, op->id);
    if (was && was != op->parallelism) {
        rsc_stats st;
        int rc = rsc_redistribute(m, restore_dir, op->id, op->parallelism, dir,
                                  &st, errptr);
        if (rc == 0)
            log_msg(
                WEIR_LOG_INFO, "runtime",
                "operator '%s': state rescaled from parallelism %u to %u "
                "(%llu entries, %llu timers, %llu expiry index entries)",
                op->id, was, op->parallelism, (unsigned long long)st.entries,
                (unsigned long long)st.timers, (unsigned long long)st.index);
        return rc;
    }
    for (size_t i = 0; m && i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        if (strcmp(e->op_id, op->id) != 0 || !e->state_dir)
            continue;
        char src[8192], dst[8192];
        snprintf(src, sizeof src, "%s/%s", restore_dir, e->state_dir);
        snprintf(dst, sizeof dst, "%s/%u", dir, e->index);
        int rc = fs_mkdirs(dir, errptr);
        if (rc < 0 || (rc = ckpt_materialize(src, dst, errptr)) < 0)
            return rc;
    }
    return 0;
}

/* Checks that the subtasks of `op` in checkpoint m can be restored into
 * the job: with the job's parallelism, or with another one when none of
 * them has a plugin snapshot (keyed state is redistributed by key group;
 * snapshot bytes cannot be split or merged). */
static int rt_check_op_restore(const ckpt_manifest *m, const topo_op *op,
                               char **errptr)
{
    uint32_t was = rt_restored_parallelism(m, op->id);
    const char *snap = NULL;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        if (strcmp(e->op_id, op->id) != 0)
            continue;
        if (e->parallelism != was)
            return err_set(errptr, WEIR_EINVAL,
                           "checkpoint %llu lists subtasks of operator '%s' "
                           "with parallelism %u and %u",
                           (unsigned long long)m->id, op->id, was,
                           e->parallelism);
        if (e->snapshot && !snap)
            snap = e->snapshot;
    }
    if (was == op->parallelism || !snap)
        return 0;
    return err_set(errptr, WEIR_EINVAL,
                   "checkpoint %llu has operator '%s' (%s) with parallelism "
                   "%u, the job has %u: its subtasks' plugin snapshots (%s, "
                   "...) cannot be split or merged, so it can only be "
                   "restored with parallelism %u; operators without plugin "
                   "snapshot (keyed operators) can be rescaled",
                   (unsigned long long)m->id, op->id, op->type, was,
                   op->parallelism, snap, was);
}

/* Checks that the checkpoint being restored fits the job: it is of this
 * job, has the job's key groups, and every operator it holds can take its
 * subtasks (rt_check_op_restore). */
static int rt_check_restore(const rt_job *rt, char **errptr)
{
    return rt_restore_check(rt->job, rt->restore, rt->restore_dir,
                            rt->allow_non_restored, errptr);
}

int rt_restore_check(const topo_job *job, const ckpt_manifest *m,
                     const char *restore_dir, int allow_non_restored,
                     char **errptr)
{
    if (!m)
        return 0;
    if (strcmp(m->job, job->name) != 0)
        return err_set(errptr, WEIR_EINVAL,
                       "checkpoint %llu (%s) is of job '%s', not of job '%s'",
                       (unsigned long long)m->id,
                       restore_dir ? restore_dir : "?", m->job, job->name);
    if (m->max_parallelism != job->max_parallelism)
        return err_set(errptr, WEIR_EINVAL,
                       "checkpoint %llu has max_parallelism %u, the job %u",
                       (unsigned long long)m->id, m->max_parallelism,
                       job->max_parallelism);
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        int k = topo_find_op(job, e->op_id);
        if (k < 0 && !allow_non_restored)
            return err_set(errptr, WEIR_EINVAL,
                           "checkpoint %llu holds state of operator '%s', "
                           "which the job no longer has; start with "
                           "--allow-non-restored-state to drop it",
                           (unsigned long long)m->id, e->op_id);
        if (k < 0) {
            log_msg(WEIR_LOG_WARN, "runtime",
                    "checkpoint %llu holds state of operator '%s', which the "
                    "job no longer has; it is dropped "
                    "(--allow-non-restored-state)",
                    (unsigned long long)m->id, e->op_id);
            continue;
        }
        int rc = rt_check_op_restore(m, &job->ops[k], errptr);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * Prepares keyed state when an operator is keyed: locks <state.dir>/<job>
 * so that a second weir process fails at once instead of sharing the
 * directory, clears what an earlier run left there (a run starts from empty
 * state unless it restores a checkpoint), and creates the shared state
 * environment.
 */
static int rt_prepare_state(rt_job *rt, char **errptr)
{
    const topo_job *job = rt->job;
    uint32_t keyed = 0;
    for (size_t i = 0; i < job->n_ops; i++)
        if (job->ops[i].reg->op.flags & WEIR_OP_KEYED)
            keyed += job->ops[i].parallelism;
    if (!keyed)
        return 0;
    char root[4096], dir[4200];
    snprintf(root, sizeof root, "%s/%s", topo_param_str(&job->state, "dir"),
             job->name);
    int fd = fs_lock_dir(root, "LOCK", "state directory",
                         topo_param_int(&job->runtime, "lock_wait"), errptr);
    if (fd < 0)
        return fd;
    rt->state_lock_fd = fd;
    for (size_t i = 0; i < job->n_ops; i++) {
        if (!(job->ops[i].reg->op.flags & WEIR_OP_KEYED))
            continue;
        snprintf(dir, sizeof dir, "%s/%s", root, job->ops[i].id);
        int rc = fs_rmtree(dir, errptr);
        if (rc < 0 ||
            (rc = rt_restore_op_state(&job->ops[i], rt->restore,
                                      rt->restore_dir, dir, errptr)) < 0)
            return rc;
    }
    state_env_config cfg;
    state_env_config_init(&cfg);
    cfg.block_cache_bytes =
        (uint64_t)topo_param_int(&job->state, "block_cache");
    cfg.write_buffer_bytes =
        (uint64_t)topo_param_int(&job->state, "write_buffer");
    cfg.expected_stores = keyed;
    rt->sweep_batch = (size_t)topo_param_int(&job->state, "sweep_batch");
    return state_env_new(&cfg, &rt->senv, errptr);
}

int rt_start(const topo_job *job, rt_job **out, char **errptr)
{
    return rt_start_with(job, NULL, out, errptr);
}

int rt_start_with(const topo_job *job, const rt_options *opts, rt_job **out,
                  char **errptr)
{
    static atomic_uint rt_seq;
    char prefix[64];
    rt_job *rt = calloc(1, sizeof *rt);
    if (!rt)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    rt->job = job;
    rt->state_lock_fd = -1;
    pthread_mutex_init(&rt->lock, NULL);
    rt_settings(rt);
    rt_ckpt_settings(rt, opts);
    if (!(rt->metrics = metrics_new(job->name))) {
        rt_destroy(rt);
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    }
    int rc = rt_check_restore(rt, errptr);
    if (rc < 0 || (rc = rt_prepare_state(rt, errptr)) < 0)
        goto fail;
    if (rt->restore && rt->restore->final)
        atomic_store(&rt->stopping, 1); /* the job had already finished */
    snprintf(prefix, sizeof prefix, "weir-%u", atomic_fetch_add(&rt_seq, 1));
    rc = plan_build(job, prefix, &rt->plan, errptr);
    if (rc < 0)
        goto fail;
    if (!(rt->zctx = zmq_ctx_new())) {
        rc = err_set(errptr, WEIR_EIO, "zmq_ctx_new: %s", zmq_strerror(errno));
        goto fail;
    }
    if ((rc = rt_make_tasks(rt, errptr)) < 0 ||
        (rc = coord_start(rt, errptr)) < 0 ||
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
    atomic_store(&rt->stop_requested, 1);
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
    coord_stop(rt);
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
                           .chained_to =
                               t->chain_up ? t->chain_up->op->id : NULL,
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
    free(t->in_barrier);
    free(t->snap_buf);
    free(t->chain);
    free(t->error);
    free(t->pub);
    pthread_mutex_destroy(&t->pub_lock);
    pthread_mutex_destroy(&t->admin_lock);
}

void rt_destroy(rt_job *rt)
{
    if (!rt)
        return;
    for (uint32_t i = 0; i < rt->n_tasks; i++)
        rt_free_task(&rt->tasks[i]);
    free(rt->tasks);
    plan_free(rt->plan);
    metrics_free(rt->metrics);
    if (rt->senv)
        state_env_free(rt->senv);
    if (rt->state_lock_fd >= 0)
        close(rt->state_lock_fd);
    free(rt->error);
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->ck_lock);
    pthread_cond_destroy(&rt->ck_cond);
    free(rt);
}

size_t rt_task_states(rt_job *rt, uint32_t i, rt_state_info *out, size_t cap)
{
    if (i >= rt->n_tasks)
        return 0;
    task *t = &rt->tasks[i];
    pthread_mutex_lock(&t->pub_lock);
    size_t n = t->n_pub;
    for (size_t k = 0; k < n && k < cap; k++)
        out[k] = t->pub[k];
    pthread_mutex_unlock(&t->pub_lock);
    return n;
}

rt_ckpt_stats rt_ckpt_stats_get(rt_job *rt)
{
    pthread_mutex_lock(&rt->ck_lock);
    rt_ckpt_stats st = {.completed = rt->ck_n_completed,
                        .failed = rt->ck_n_failed,
                        .last_completed_id = coord_completed(rt)};
    pthread_mutex_unlock(&rt->ck_lock);
    return st;
}

/* One family of per-subtask samples of the host. */
static void rt_metric_family(FILE *f, rt_job *rt, const char *name,
                             const char *type, const char *help, int which)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (uint32_t i = 0; i < rt->n_tasks; i++) {
        rt_task_stats s = rt_task_stats_get(rt, i);
        if (which == 4 && s.watermark == WEIR_WATERMARK_MIN)
            continue;
        fprintf(f, "%s{job_name=\"%s\",operator=\"%s\",subtask=\"%u\"} ", name,
                rt->job->name, s.op_id, s.index);
        switch (which) {
        case 0: fprintf(f, "%llu\n", (unsigned long long)s.records_in); break;
        case 1: fprintf(f, "%llu\n", (unsigned long long)s.records_out); break;
        case 2: fprintf(f, "%.9f\n", (double)s.blocked_ns / 1e9); break;
        case 3: fprintf(f, "%llu\n", (unsigned long long)s.late_records); break;
        default: fprintf(f, "%.3f\n", (double)s.watermark / 1e3); break;
        }
    }
}

/* The job's checkpoint samples. */
static void rt_metric_checkpoints(FILE *f, rt_job *rt)
{
    pthread_mutex_lock(&rt->ck_lock);
    double v[5] = {(double)rt->ck_n_completed, (double)rt->ck_n_failed,
                   rt->ck_last_ms / 1e3, rt->ck_last_sync_ms / 1e3,
                   rt->ck_last_align_ms / 1e3};
    pthread_mutex_unlock(&rt->ck_lock);
    static const char *const names[5][3] = {
        {"weir_checkpoints_completed_total", "counter",
         "Checkpoints completed."},
        {"weir_checkpoints_failed_total", "counter",
         "Checkpoints aborted (timed out, declined or not written)."},
        {"weir_checkpoint_duration_seconds", "gauge",
         "Duration of the newest completed checkpoint."},
        {"weir_checkpoint_sync_pause_seconds", "gauge",
         "Longest synchronous pause of a subtask in the newest checkpoint."},
        {"weir_checkpoint_alignment_seconds", "gauge",
         "Longest barrier alignment of a subtask in the newest checkpoint."}};
    for (int k = 0; k < 5; k++)
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{job_name=\"%s\"} %.17g\n",
                names[k][0], names[k][2], names[k][0], names[k][1], names[k][0],
                rt->job->name, v[k]);
}

/* Keys and bytes of every declared state, as of each subtask's last
 * sample. */
static void rt_metric_states(FILE *f, rt_job *rt)
{
    static const char *const names[2][2] = {
        {"weir_state_keys", "Estimated keys of a keyed state of a subtask."},
        {"weir_state_bytes",
         "Estimated live bytes of a keyed state of a subtask."}};
    rt_state_info v[64];
    for (int k = 0; k < 2; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", names[k][0], names[k][1],
                names[k][0]);
        for (uint32_t i = 0; i < rt->n_tasks; i++) {
            size_t n = rt_task_states(rt, i, v, 64);
            for (size_t j = 0; j < n && j < 64; j++)
                fprintf(f,
                        "%s{job_name=\"%s\",operator=\"%s\",subtask=\"%u\","
                        "state=\"%s\"} %llu\n",
                        names[k][0], rt->job->name, rt->tasks[i].op->id,
                        rt->tasks[i].ps->index, v[j].name,
                        (unsigned long long)(k ? v[j].bytes : v[j].keys));
        }
    }
}

/* The run's own samples: restarts, checkpoint size, build. */
static void rt_metric_run(FILE *f, rt_job *rt)
{
    fprintf(f,
            "# HELP weir_restarts_total Workers started after the first in "
            "this run (the worker's attempt number).\n"
            "# TYPE weir_restarts_total counter\n"
            "weir_restarts_total{job_name=\"%s\"} %d\n",
            rt->job->name, rt->attempt);
    if (rt->ck_enabled) {
        pthread_mutex_lock(&rt->ck_lock);
        uint64_t bytes = rt->ck_last_bytes;
        pthread_mutex_unlock(&rt->ck_lock);
        fprintf(f,
                "# HELP weir_checkpoint_size_bytes Bytes of the files of the "
                "newest completed checkpoint (hard-linked SST files "
                "included).\n"
                "# TYPE weir_checkpoint_size_bytes gauge\n"
                "weir_checkpoint_size_bytes{job_name=\"%s\"} %llu\n",
                rt->job->name, (unsigned long long)bytes);
    }
    fprintf(f,
            "# HELP weir_build_info The weir build and its plugin ABI.\n"
            "# TYPE weir_build_info gauge\n"
            "weir_build_info{version=\"%s\",abi=\"%d.%d\"} 1\n",
            WEIR_VERSION_STRING, WEIR_ABI_MAJOR, WEIR_ABI_MINOR);
}

char *rt_metrics_render(rt_job *rt)
{
    char *host = NULL, *plugins = metrics_render(rt->metrics), *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&host, &len);
    if (!f || !plugins) {
        if (f)
            fclose(f);
        free(host);
        free(plugins);
        return NULL;
    }
    rt_metric_family(f, rt, "weir_records_in_total", "counter",
                     "Records a subtask received.", 0);
    rt_metric_family(f, rt, "weir_records_out_total", "counter",
                     "Records a subtask emitted.", 1);
    rt_metric_family(f, rt, "weir_backpressured_seconds_total", "counter",
                     "Time a subtask waited on full output channels.", 2);
    rt_metric_family(f, rt, "weir_late_records_total", "counter",
                     "Records that arrived behind the watermark.", 3);
    rt_metric_family(f, rt, "weir_watermark_seconds", "gauge",
                     "A subtask's current event-time watermark (seconds of "
                     "event time).",
                     4);
    if (rt->ck_enabled)
        rt_metric_checkpoints(f, rt);
    rt_metric_states(f, rt);
    rt_metric_run(f, rt);
    fclose(f);
    if (asprintf(&out, "%s%s", host, plugins) < 0)
        out = NULL;
    free(host);
    free(plugins);
    return out;
}
