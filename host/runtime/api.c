#include "runtime/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "metrics/metrics.h"
#include "runtime/bcast.h"
#include "runtime/keyed.h"
#include "runtime/task.h"
#include "state/state.h"

/* The task behind a ctx: the ctx is the task's first member. */
static task *api_task(weir_ctx *ctx)
{
    return (task *)ctx;
}

static void api_log(weir_ctx *ctx, weir_log_level level, const char *fmt,
                    va_list ap)
{
    log_msgv(level, api_task(ctx)->who, fmt, ap);
}

static int api_set_error(weir_ctx *ctx, const char *fmt, va_list ap)
{
    task *t = api_task(ctx);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        return WEIR_EFAIL;
    free(t->error);
    t->error = msg;
    return WEIR_EFAIL;
}

static const char *api_operator_id(weir_ctx *ctx)
{
    return api_task(ctx)->op->id;
}

static uint32_t api_subtask_index(weir_ctx *ctx)
{
    return api_task(ctx)->ps->index;
}

static uint32_t api_parallelism(weir_ctx *ctx)
{
    return api_task(ctx)->ps->parallelism;
}

/* The validated value of parameter `name`, checking its declared type. */
static int api_param(weir_ctx *ctx, const char *name, int want,
                     const topo_value **out)
{
    const topo_value *v = topo_param(&api_task(ctx)->op->config, name);
    if (!v || !v->is_set)
        return WEIR_ENOTFOUND;
    if (want && (int)v->def->type != want)
        return WEIR_EINVAL;
    *out = v;
    return 0;
}

static int api_param_bool(weir_ctx *ctx, const char *name, int *out)
{
    const topo_value *v;
    int rc = api_param(ctx, name, WEIR_PARAM_BOOL, &v);
    if (rc == 0)
        *out = v->b;
    return rc;
}

static int api_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    const topo_value *v;
    int rc = api_param(ctx, name, 0, &v);
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
    int rc = api_param(ctx, name, 0, &v);
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
    int rc = api_param(ctx, name, 0, &v);
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
    int rc = api_param(ctx, name, 0, &v);
    if (rc < 0)
        return rc;
    *ptr = v->mp;
    *len = v->mp_len;
    return 0;
}

static int api_emit(weir_ctx *ctx, uint32_t port, const void *key,
                    size_t key_len, int64_t ts, const void *value,
                    size_t value_len)
{
    return task_emit(api_task(ctx), port, key, key_len, ts, value, value_len);
}

static int api_output_port(weir_ctx *ctx, const char *name)
{
    const reg_operator *r = api_task(ctx)->reg;
    for (size_t i = 0; i < r->n_outputs; i++)
        if (!strcmp(r->outputs[i], name))
            return (int)i;
    return WEIR_ENOTFOUND;
}

static int64_t api_now(weir_ctx *ctx)
{
    return task_wall_ms();
}

static int64_t api_watermark(weir_ctx *ctx)
{
    return api_task(ctx)->wm;
}

static int api_current_key(weir_ctx *ctx, const void **key, size_t *len)
{
    task *t = api_task(ctx);
    if (!t->has_key)
        return WEIR_ESTATE;
    *key = t->cur_key;
    *len = t->cur_key_len;
    return 0;
}

/* Keyed state: the plugin's weir_state is the store's handle. A failing
 * state call leaves its message where weir_set_error would, so that the
 * job's failure message explains it when the plugin passes the code on. */
static int api_state_declare(weir_ctx *ctx, const weir_state_desc *d,
                             weir_state **out)
{
    task *t = api_task(ctx);
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

static int api_value_get(weir_ctx *c, weir_state *s, const void **v, size_t *n)
{
    return state_value_get(s, v, n, &api_task(c)->error);
}
static int api_value_put(weir_ctx *c, weir_state *s, const void *v, size_t n)
{
    return state_value_put(s, v, n, &api_task(c)->error);
}
static int api_value_delete(weir_ctx *c, weir_state *s)
{
    return state_value_delete(s, &api_task(c)->error);
}
static int api_map_get(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                       const void **v, size_t *n)
{
    return state_map_get(s, k, kn, v, n, &api_task(c)->error);
}
static int api_map_put(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                       const void *v, size_t n)
{
    return state_map_put(s, k, kn, v, n, &api_task(c)->error);
}
static int api_map_delete(weir_ctx *c, weir_state *s, const void *k, size_t kn)
{
    return state_map_delete(s, k, kn, &api_task(c)->error);
}
static int api_map_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                        void *arg)
{
    return state_map_iter(s, fn, arg, &api_task(c)->error);
}
static int api_map_clear(weir_ctx *c, weir_state *s)
{
    return state_map_clear(s, &api_task(c)->error);
}
static int api_list_add(weir_ctx *c, weir_state *s, const void *v, size_t n)
{
    return state_list_add(s, v, n, &api_task(c)->error);
}
static int api_list_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                         void *arg)
{
    return state_list_iter(s, fn, arg, &api_task(c)->error);
}
static int api_list_clear(weir_ctx *c, weir_state *s)
{
    return state_list_clear(s, &api_task(c)->error);
}
static int api_timer_register(weir_ctx *c, weir_time_domain d, int64_t ts)
{
    return keyed_timer(api_task(c), 1, d, ts);
}
static int api_timer_delete(weir_ctx *c, weir_time_domain d, int64_t ts)
{
    return keyed_timer(api_task(c), 0, d, ts);
}
static int api_snapshot_write(weir_ctx *c, const void *data, size_t len)
{
    task *t = api_task(c);
    if (!t->in_snapshot)
        return WEIR_ESTATE;
    if (t->snap_len + len > t->snap_cap) {
        size_t cap = t->snap_cap ? t->snap_cap : 256;
        while (cap < t->snap_len + len)
            cap *= 2;
        char *b = realloc(t->snap_buf, cap);
        if (!b)
            return WEIR_ENOMEM;
        t->snap_buf = b;
        t->snap_cap = cap;
    }
    memcpy(t->snap_buf + t->snap_len, data, len);
    t->snap_len += len;
    return 0;
}
static int api_metric_register(weir_ctx *c, weir_metric_kind kind,
                               const char *name, const char *help,
                               const char *label_name, const char *label_value,
                               weir_metric **out)
{
    task *t = api_task(c);
    return metrics_register(t->rt->metrics, kind, name, help, t->op->id,
                            t->ps->index, label_name, label_value, out,
                            &t->error);
}

/* Broadcast state (since 1.2): runtime/bcast.h. */
static int api_broadcast_declare(weir_ctx *c, const char *name,
                                 weir_broadcast_state **out)
{
    return bcast_declare(api_task(c), name, out);
}
static int api_broadcast_get(weir_ctx *c, weir_broadcast_state *s,
                             const void *k, size_t kn, const void **v,
                             size_t *n)
{
    return bcast_get(api_task(c), s, k, kn, v, n);
}
static int api_broadcast_put(weir_ctx *c, weir_broadcast_state *s,
                             const void *k, size_t kn, const void *v, size_t n)
{
    return bcast_put(api_task(c), s, k, kn, v, n);
}
static int api_broadcast_delete(weir_ctx *c, weir_broadcast_state *s,
                                const void *k, size_t kn)
{
    return bcast_delete(api_task(c), s, k, kn);
}
static int api_broadcast_iter(weir_ctx *c, weir_broadcast_state *s,
                              weir_map_iter_fn fn, void *arg)
{
    return bcast_iter(api_task(c), s, fn, arg);
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
    .counter_add = metrics_counter_add,
    .gauge_set = metrics_gauge_set,
    .histogram_observe = metrics_histogram_observe,
    .broadcast_declare = api_broadcast_declare,
    .broadcast_get = api_broadcast_get,
    .broadcast_put = api_broadcast_put,
    .broadcast_delete = api_broadcast_delete,
    .broadcast_iter = api_broadcast_iter,
};

const weir_host_api *api_table(void)
{
    return &api_host;
}
