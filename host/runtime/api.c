#include "runtime/api.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "metrics/metrics.h"
#include "runtime/async.h"
#include "runtime/bcast.h"
#include "runtime/keyed.h"
#include "runtime/task.h"
#include "state/state.h"

/* ------------------------------------------------------------------------ */
/* Checks: every service trusts nothing the plugin passes                    */
/* ------------------------------------------------------------------------ */

/* Records the refusal of a service: the message goes into the error of
 * `self`, the calling thread's own task (NULL: the caller is no subtask's
 * thread, and nothing may be written into a task), so that a plugin that
 * returns the code fails with it. The first misuse of each task is also
 * logged, for plugins that ignore the code. Returns WEIR_EINVAL. */
static WEIR_PRINTF(3, 4) int api_refuse(task *self, task *target,
                                        const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    task *who = self ? self : target;
    if (who && !atomic_exchange(&who->api_misused, 1))
        log_msg(WEIR_LOG_WARN, who->who,
                "host API misuse (later ones are not logged): %s",
                msg ? msg : "out of memory");
    if (self) {
        free(self->error);
        self->error = msg;
    } else {
        free(msg);
    }
    return WEIR_EINVAL;
}

/* The task of `ctx` in the job of `self`, or NULL when ctx is none of its
 * tasks (compared as addresses: a stale ctx is not read). */
static task *api_job_task(const task *self, const weir_ctx *ctx)
{
    uintptr_t p = (uintptr_t)ctx, lo = (uintptr_t)self->rt->tasks;
    uintptr_t hi = lo + self->rt->n_tasks * sizeof(task);
    if (p < lo || p >= hi || (p - lo) % sizeof(task) != 0)
        return NULL;
    return (task *)ctx;
}

/* Refuses a call made with `ctx` on a thread that is not its task's. */
static int api_wrong_thread(task *self, weir_ctx *ctx, const char *fn)
{
    if (!ctx)
        return api_refuse(self, NULL, "%s: ctx is NULL", fn);
    if (self) {
        task *other = api_job_task(self, ctx);
        if (other)
            return api_refuse(self, NULL,
                              "%s: called with the ctx of %s on the thread "
                              "of %s (a ctx is valid only on its own "
                              "subtask's thread)",
                              fn, other->who, self->who);
        return api_refuse(self, NULL,
                          "%s: called with a ctx that belongs to no subtask "
                          "of this job",
                          fn);
    }
    /* Not a subtask's thread: the ctx is the only lead, as good as the
     * plugin's wrapper that already read ctx->api. */
    task *t = (task *)ctx;
    return api_refuse(NULL, t,
                      "%s: called on a thread that is not %s's (host "
                      "services run only on the thread of the callback)",
                      fn, t->who);
}

/* The task of `ctx` when the call comes from that task's own thread;
 * otherwise NULL, after refusing the call. One thread-local load and one
 * comparison on the way in. */
static inline task *api_enter(weir_ctx *ctx, const char *fn)
{
    task *self = task_self();
    if (self && (weir_ctx *)self == ctx)
        return self;
    api_wrong_thread(self, ctx, fn);
    return NULL;
}

/* Refuses a NULL `ptr` with a non-zero `len`, and with `limit` a `len`
 * above runtime.max_record_size. */
static int api_bytes(task *t, const char *fn, const char *what, const void *ptr,
                     const char *len_name, size_t len, int limit)
{
    if (!ptr && len)
        return api_refuse(t, NULL, "%s: %s is NULL but %s is %zu", fn, what,
                          len_name, len);
    if (limit && len > t->max_record)
        return api_refuse(t, NULL,
                          "%s: %s of %zu bytes is above "
                          "runtime.max_record_size (%zu bytes)",
                          fn, what, len, t->max_record);
    return 0;
}

/* Bytes for a callee that copies with memcpy: never NULL, even for 0. */
static const void *api_nonnull(const void *p)
{
    return p ? p : "";
}

/* The task of `ctx` when the call is on its thread and `st` is a state its
 * own store declared; otherwise NULL after refusing the call. A foreign
 * handle is named by its store, and never used. */
static task *api_state_enter(weir_ctx *ctx, weir_state *st, const char *fn)
{
    task *t = api_enter(ctx, fn);
    if (!t)
        return NULL;
    if (state_owned(t->store, st))
        return t;
    char owner[96];
    if (!st)
        api_refuse(t, NULL, "%s: state handle is NULL", fn);
    else if (state_owner_name(st, owner, sizeof owner) == 0)
        api_refuse(t, NULL, "%s: state handle belongs to another subtask (%s)",
                   fn, owner);
    else
        api_refuse(t, NULL,
                   "%s: state handle is not one this subtask declared (a "
                   "stale or made-up pointer)",
                   fn);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Services                                                                  */
/* ------------------------------------------------------------------------ */

/* Logging only reads the task's immutable name, so it is allowed from any
 * thread (a plugin's own thread may report its trouble). */
static void api_log(weir_ctx *ctx, weir_log_level level, const char *fmt,
                    va_list ap)
{
    if (ctx && fmt)
        log_msgv(level, ((task *)ctx)->who, fmt, ap);
}

static int api_set_error(weir_ctx *ctx, const char *fmt, va_list ap)
{
    task *t = api_enter(ctx, "weir_set_error");
    char *msg = NULL;
    if (!t)
        return WEIR_EFAIL;
    if (!fmt)
        msg = strdup("weir_set_error: fmt is NULL");
    else if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    free(t->error);
    t->error = msg;
    return WEIR_EFAIL;
}

/* Identity: immutable for the life of the task. */
static const char *api_operator_id(weir_ctx *ctx)
{
    return ctx ? ((task *)ctx)->op->id : "";
}

static uint32_t api_subtask_index(weir_ctx *ctx)
{
    return ctx ? ((task *)ctx)->ps->index : 0;
}

static uint32_t api_parallelism(weir_ctx *ctx)
{
    return ctx ? ((task *)ctx)->ps->parallelism : 0;
}

/* The validated value of parameter `name`, checking its declared type and
 * that the output pointers are there. */
static int api_param(weir_ctx *ctx, const char *fn, const char *name,
                     const void *out, const void *out2, int want,
                     const topo_value **v)
{
    task *t = api_enter(ctx, fn);
    if (!t)
        return WEIR_EINVAL;
    if (!name)
        return api_refuse(t, NULL, "%s: name is NULL", fn);
    if (!out || !out2)
        return api_refuse(t, NULL, "%s: an output pointer is NULL", fn);
    *v = topo_param(&t->op->config, name);
    if (!*v || !(*v)->is_set)
        return WEIR_ENOTFOUND;
    if (want && (int)(*v)->def->type != want)
        return WEIR_EINVAL;
    return 0;
}

static int api_param_bool(weir_ctx *ctx, const char *name, int *out)
{
    const topo_value *v;
    int rc =
        api_param(ctx, "weir_param_bool", name, out, out, WEIR_PARAM_BOOL, &v);
    if (rc == 0)
        *out = v->b;
    return rc;
}

static int api_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    const topo_value *v;
    int rc = api_param(ctx, "weir_param_int", name, out, out, 0, &v);
    if (rc < 0)
        return rc;
    switch (v->def->type) {
    case WEIR_PARAM_INT:
    case WEIR_PARAM_DURATION:
    case WEIR_PARAM_SIZE: *out = v->i; return 0;
    default: return WEIR_EINVAL;
    }
}

static int api_param_double(weir_ctx *ctx, const char *name, double *out)
{
    const topo_value *v;
    int rc = api_param(ctx, "weir_param_double", name, out, out, 0, &v);
    if (rc < 0)
        return rc;
    switch (v->def->type) {
    case WEIR_PARAM_DOUBLE:
    case WEIR_PARAM_INT:
    case WEIR_PARAM_DURATION:
    case WEIR_PARAM_SIZE: *out = v->d; return 0;
    default: return WEIR_EINVAL;
    }
}

static int api_param_string(weir_ctx *ctx, const char *name, const char **ptr,
                            size_t *len)
{
    const topo_value *v;
    int rc = api_param(ctx, "weir_param_string", name, ptr, len, 0, &v);
    if (rc < 0)
        return rc;
    if (v->def->type != WEIR_PARAM_STRING && v->def->type != WEIR_PARAM_ENUM)
        return WEIR_EINVAL;
    *ptr = v->str;
    *len = v->str_len;
    return 0;
}

static int api_param_msgpack(weir_ctx *ctx, const char *name, const void **ptr,
                             size_t *len)
{
    const topo_value *v;
    int rc = api_param(ctx, "weir_param_msgpack", name, ptr, len, 0, &v);
    if (rc < 0)
        return rc;
    *ptr = v->mp;
    *len = v->mp_len;
    return 0;
}

/* Explains why weir_emit refuses a record. */
static int api_emit_refused(task *t, uint32_t port, const void *key,
                            size_t key_len, const void *value, size_t value_len)
{
    const char *fn = "weir_emit";
    if (port >= t->n_ports)
        return api_refuse(t, NULL,
                          "%s: port %u does not exist (the operator has %u "
                          "output port%s)",
                          fn, port, t->n_ports, t->n_ports == 1 ? "" : "s");
    if (!key && key_len)
        return api_bytes(t, fn, "key", key, "key_len", key_len, 0);
    if (!value && value_len)
        return api_bytes(t, fn, "value", value, "value_len", value_len, 0);
    return api_refuse(t, NULL,
                      "%s: key_len %zu + value_len %zu bytes is above "
                      "runtime.max_record_size (%zu bytes)",
                      fn, key_len, value_len, t->max_record);
}

static int api_emit(weir_ctx *ctx, uint32_t port, const void *key,
                    size_t key_len, int64_t ts, const void *value,
                    size_t value_len)
{
    task *t = api_enter(ctx, "weir_emit");
    if (!t)
        return WEIR_EINVAL;
    /* One test on the fast path; the sum cannot wrap: key_len is tested
     * first. */
    if (port >= t->n_ports || (!key && key_len) || (!value && value_len) ||
        key_len > t->max_record || value_len > t->max_record - key_len)
        return api_emit_refused(t, port, key, key_len, value, value_len);
    return task_emit(t, port, key, key_len, ts, value, value_len);
}

static int api_output_port(weir_ctx *ctx, const char *name)
{
    task *t = api_enter(ctx, "weir_output_port");
    if (!t)
        return WEIR_EINVAL;
    if (!name)
        return api_refuse(t, NULL, "weir_output_port: name is NULL");
    const reg_operator *r = t->reg;
    for (size_t i = 0; i < r->n_outputs; i++)
        if (!strcmp(r->outputs[i], name))
            return (int)i;
    return WEIR_ENOTFOUND;
}

static int64_t api_now(weir_ctx *ctx)
{
    const task *t = (const task *)ctx;
    if (t && t->rt->clock)
        return t->rt->clock(t->rt->clock_arg);
    return task_wall_ms();
}

static int64_t api_watermark(weir_ctx *ctx)
{
    return ctx ? ((task *)ctx)->wm : WEIR_WATERMARK_MIN;
}

static int api_current_key(weir_ctx *ctx, const void **key, size_t *len)
{
    task *t = api_enter(ctx, "weir_current_key");
    if (!t)
        return WEIR_EINVAL;
    if (!key || !len)
        return api_refuse(t, NULL, "weir_current_key: key or key_len is NULL");
    if (!t->has_key)
        return WEIR_ESTATE;
    *key = t->cur_key;
    *len = t->cur_key_len;
    return 0;
}

/* Keyed state: the plugin's weir_state is the store's handle, checked to be
 * one of the calling subtask's own. A failing state call leaves its message
 * where weir_set_error would, so that the job's failure message explains it
 * when the plugin passes the code on. */
static int api_state_declare(weir_ctx *ctx, const weir_state_desc *d,
                             weir_state **out)
{
    task *t = api_enter(ctx, "weir_state_declare");
    if (!t)
        return WEIR_EINVAL;
    if (!d || !out)
        return api_refuse(t, NULL, "weir_state_declare: %s is NULL",
                          d ? "out" : "desc");
    if (t->phase != TASK_PHASE_OPEN) {
        free(t->error);
        t->error = strdup("states are declared in open()");
        return WEIR_ESTATE;
    }
    int rc = keyed_open(t);
    if (rc < 0)
        return rc;
    return state_declare(t->store, d, t->reg->op.on_state_expired != NULL, out,
                         &t->error);
}

/* Output pointers of a get. */
static int api_get_out(task *t, const char *fn, const void *const *v,
                       const size_t *n)
{
    return v && n ? 0 : api_refuse(t, NULL, "%s: value or len is NULL", fn);
}

static int api_value_get(weir_ctx *c, weir_state *s, const void **v, size_t *n)
{
    task *t = api_state_enter(c, s, "weir_value_get");
    if (!t || api_get_out(t, "weir_value_get", v, n) < 0)
        return WEIR_EINVAL;
    return state_value_get(s, v, n, &t->error);
}
static int api_value_put(weir_ctx *c, weir_state *s, const void *v, size_t n)
{
    const char *fn = "weir_value_put";
    task *t = api_state_enter(c, s, fn);
    if (!t || api_bytes(t, fn, "value", v, "len", n, 1) < 0)
        return WEIR_EINVAL;
    return state_value_put(s, api_nonnull(v), n, &t->error);
}
static int api_value_delete(weir_ctx *c, weir_state *s)
{
    task *t = api_state_enter(c, s, "weir_value_delete");
    return t ? state_value_delete(s, &t->error) : WEIR_EINVAL;
}
static int api_map_get(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                       const void **v, size_t *n)
{
    const char *fn = "weir_map_get";
    task *t = api_state_enter(c, s, fn);
    if (!t || api_bytes(t, fn, "ukey", k, "ukey_len", kn, 0) < 0 ||
        api_get_out(t, fn, v, n) < 0)
        return WEIR_EINVAL;
    return state_map_get(s, api_nonnull(k), kn, v, n, &t->error);
}
static int api_map_put(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                       const void *v, size_t n)
{
    const char *fn = "weir_map_put";
    task *t = api_state_enter(c, s, fn);
    if (!t || api_bytes(t, fn, "ukey", k, "ukey_len", kn, 0) < 0 ||
        api_bytes(t, fn, "value", v, "len", n, 1) < 0)
        return WEIR_EINVAL;
    return state_map_put(s, api_nonnull(k), kn, api_nonnull(v), n, &t->error);
}
static int api_map_delete(weir_ctx *c, weir_state *s, const void *k, size_t kn)
{
    const char *fn = "weir_map_delete";
    task *t = api_state_enter(c, s, fn);
    if (!t || api_bytes(t, fn, "ukey", k, "ukey_len", kn, 0) < 0)
        return WEIR_EINVAL;
    return state_map_delete(s, api_nonnull(k), kn, &t->error);
}
static int api_map_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                        void *arg)
{
    task *t = api_state_enter(c, s, "weir_map_iter");
    if (!t)
        return WEIR_EINVAL;
    if (!fn)
        return api_refuse(t, NULL, "weir_map_iter: fn is NULL");
    return state_map_iter(s, fn, arg, &t->error);
}
static int api_map_clear(weir_ctx *c, weir_state *s)
{
    task *t = api_state_enter(c, s, "weir_map_clear");
    return t ? state_map_clear(s, &t->error) : WEIR_EINVAL;
}
static int api_list_add(weir_ctx *c, weir_state *s, const void *v, size_t n)
{
    const char *fn = "weir_list_add";
    task *t = api_state_enter(c, s, fn);
    if (!t || api_bytes(t, fn, "value", v, "len", n, 1) < 0)
        return WEIR_EINVAL;
    return state_list_add(s, api_nonnull(v), n, &t->error);
}
static int api_list_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                         void *arg)
{
    task *t = api_state_enter(c, s, "weir_list_iter");
    if (!t)
        return WEIR_EINVAL;
    if (!fn)
        return api_refuse(t, NULL, "weir_list_iter: fn is NULL");
    return state_list_iter(s, fn, arg, &t->error);
}
static int api_list_clear(weir_ctx *c, weir_state *s)
{
    task *t = api_state_enter(c, s, "weir_list_clear");
    return t ? state_list_clear(s, &t->error) : WEIR_EINVAL;
}

static int api_timer(weir_ctx *c, int reg, weir_time_domain d, int64_t ts)
{
    const char *fn = reg ? "weir_timer_register" : "weir_timer_delete";
    task *t = api_enter(c, fn);
    if (!t)
        return WEIR_EINVAL;
    if (d != WEIR_TIME_EVENT && d != WEIR_TIME_PROCESSING)
        return api_refuse(t, NULL, "%s: unknown time domain %d", fn, (int)d);
    return keyed_timer(t, reg, d, ts);
}
static int api_timer_register(weir_ctx *c, weir_time_domain d, int64_t ts)
{
    return api_timer(c, 1, d, ts);
}
static int api_timer_delete(weir_ctx *c, weir_time_domain d, int64_t ts)
{
    return api_timer(c, 0, d, ts);
}

static int api_snapshot_write(weir_ctx *c, const void *data, size_t len)
{
    const char *fn = "weir_snapshot_write";
    task *t = api_enter(c, fn);
    if (!t || api_bytes(t, fn, "data", data, "len", len, 0) < 0)
        return WEIR_EINVAL;
    if (!t->in_snapshot) {
        free(t->error);
        t->error = strdup("weir_snapshot_write: only inside snapshot()");
        return WEIR_ESTATE;
    }
    if (len > SIZE_MAX / 2 - t->snap_len)
        return api_refuse(t, NULL, "%s: len %zu after %zu bytes is too large",
                          fn, len, t->snap_len);
    size_t need = t->snap_len + len;
    if (need > t->snap_cap) {
        size_t cap = t->snap_cap ? t->snap_cap : 256;
        while (cap < need)
            cap *= 2;
        char *b = realloc(t->snap_buf, cap);
        if (!b)
            return WEIR_ENOMEM;
        t->snap_buf = b;
        t->snap_cap = cap;
    }
    if (len)
        memcpy(t->snap_buf + t->snap_len, data, len);
    t->snap_len = need;
    return 0;
}

static int api_metric_register(weir_ctx *c, weir_metric_kind kind,
                               const char *name, const char *help,
                               const char *label_name, const char *label_value,
                               weir_metric **out)
{
    task *t = api_enter(c, "weir_metric_register");
    if (!t)
        return WEIR_EINVAL;
    if (!out)
        return api_refuse(t, NULL, "weir_metric_register: out is NULL");
    return metrics_register(t->rt->metrics, kind, name, help, t->op->id,
                            t->ps->index, label_name, label_value, out,
                            &t->error);
}

/* Metric updates get no ctx (the ABI has none to give): a NULL metric is
 * ignored, like the SDK wrappers do. */
static void api_counter_add(weir_metric *m, uint64_t delta)
{
    if (m)
        metrics_counter_add(m, delta);
}
static void api_gauge_set(weir_metric *m, double value)
{
    if (m)
        metrics_gauge_set(m, value);
}
static void api_histogram_observe(weir_metric *m, double value)
{
    if (m)
        metrics_histogram_observe(m, value);
}

/* Broadcast state (since 1.2): runtime/bcast.h checks the handle, the
 * callback and the limits; the thread and the byte pointers are checked
 * here like every other service's. */
static int api_broadcast_declare(weir_ctx *c, const char *name,
                                 weir_broadcast_state **out)
{
    task *t = api_enter(c, "weir_broadcast_declare");
    return t ? bcast_declare(t, name, out) : WEIR_EINVAL;
}
static int api_broadcast_get(weir_ctx *c, weir_broadcast_state *s,
                             const void *k, size_t kn, const void **v,
                             size_t *n)
{
    const char *fn = "weir_broadcast_get";
    task *t = api_enter(c, fn);
    if (!t || api_bytes(t, fn, "key", k, "key_len", kn, 0) < 0)
        return WEIR_EINVAL;
    return bcast_get(t, s, api_nonnull(k), kn, v, n);
}
static int api_broadcast_put(weir_ctx *c, weir_broadcast_state *s,
                             const void *k, size_t kn, const void *v, size_t n)
{
    const char *fn = "weir_broadcast_put";
    task *t = api_enter(c, fn);
    if (!t || api_bytes(t, fn, "key", k, "key_len", kn, 0) < 0 ||
        api_bytes(t, fn, "value", v, "len", n, 1) < 0)
        return WEIR_EINVAL;
    return bcast_put(t, s, api_nonnull(k), kn, api_nonnull(v), n);
}
static int api_broadcast_delete(weir_ctx *c, weir_broadcast_state *s,
                                const void *k, size_t kn)
{
    const char *fn = "weir_broadcast_delete";
    task *t = api_enter(c, fn);
    if (!t || api_bytes(t, fn, "key", k, "key_len", kn, 0) < 0)
        return WEIR_EINVAL;
    return bcast_delete(t, s, api_nonnull(k), kn);
}
static int api_broadcast_iter(weir_ctx *c, weir_broadcast_state *s,
                              weir_map_iter_fn fn, void *arg)
{
    task *t = api_enter(c, "weir_broadcast_iter");
    return t ? bcast_iter(t, s, fn, arg) : WEIR_EINVAL;
}

/* Any thread, no ctx: runtime/async.c checks the handle itself. */
static int api_async_complete(weir_async *req, int status, const void *result,
                              size_t len)
{
    return async_complete(req, status, result, len);
}

static const weir_host_api api_host = {
    .size = sizeof(weir_host_api),
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
    .log = api_log,
    .set_error = api_set_error,
    .operator_id = api_operator_id,
    .subtask_index = api_subtask_index,
    .parallelism = api_parallelism,
    .param_bool = api_param_bool,
    .param_int = api_param_int,
    .param_double = api_param_double,
    .param_string = api_param_string,
    .param_msgpack = api_param_msgpack,
    .emit = api_emit,
    .output_port = api_output_port,
    .now = api_now,
    .watermark = api_watermark,
    .current_key = api_current_key,
    .state_declare = api_state_declare,
    .value_get = api_value_get,
    .value_put = api_value_put,
    .value_delete = api_value_delete,
    .map_get = api_map_get,
    .map_put = api_map_put,
    .map_delete = api_map_delete,
    .map_iter = api_map_iter,
    .map_clear = api_map_clear,
    .list_add = api_list_add,
    .list_iter = api_list_iter,
    .list_clear = api_list_clear,
    .timer_register = api_timer_register,
    .timer_delete = api_timer_delete,
    .snapshot_write = api_snapshot_write,
    .metric_register = api_metric_register,
    .counter_add = api_counter_add,
    .gauge_set = api_gauge_set,
    .histogram_observe = api_histogram_observe,
    .broadcast_declare = api_broadcast_declare,
    .broadcast_get = api_broadcast_get,
    .broadcast_put = api_broadcast_put,
    .broadcast_delete = api_broadcast_delete,
    .broadcast_iter = api_broadcast_iter,
    .async_complete = api_async_complete,
};

const weir_host_api *api_table(void)
{
    return &api_host;
}
