#include "testing/harness.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "metrics/metrics.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/async.h"
#include "runtime/bcast.h"
#include "runtime/keyed.h"
#include "runtime/plan.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "state/state.h"
#include "state/state_admin.h"
#include "state/timers.h"
#include "testing/direct.h"
#include "topology/topology.h"

#define WEIR_TEST_API __attribute__((visibility("default")))

/* The clock a harness starts with when the config leaves it at 0. */
#define HARNESS_EPOCH_MS 1000000000000LL
/* The job name every harness uses (a checkpoint names its job). */
#define HARNESS_JOB      "weir-test"

/* One captured record; key and value are malloc'ed with a NUL after. */
typedef struct harness_rec {
    weir_test_record r;
} harness_rec;

typedef struct harness_log {
    weir_log_level level;
    char *line; /* "[who] message" */
} harness_log;

struct weir_test {
    char *error; /* the last failure, or NULL */
    int broken;  /* weir_test_new failed: every call is refused */
    reg_registry *reg;
    const reg_operator *ro;
    topo_job job;
    topo_op op;
    plan *plan;
    rt_job rt;
    task t;
    int64_t now_ms;
    int finished;
    int closed; /* close() ran (weir_test_close) */
    int emit_rc;
    /* The service table the operator gets: the runtime's api_table(), with
     * the services config.without removes and the fault wrappers below. */
    weir_host_api api;
    int state_rc;        /* weir_test_fail_state: the code, 0: none */
    uint64_t state_left; /* state calls that still succeed */
    int timer_rc;        /* weir_test_fail_timers */
    /* config.async_direct: the requests the test invoked, else NULL. */
    direct_table *direct;
    /* files */
    char *work;      /* removed by weir_test_free */
    char *state_dir; /* state.dir */
    char *run_dir;   /* <work>/run: checkpoints */
    uint64_t last_ck;
    uint64_t *ck_ids; /* the checkpoints taken, in order */
    char **ck_dirs;   /* their directories */
    size_t n_ck;
    char *snap; /* snapshot() bytes of the last checkpoint */
    size_t snap_len;
    ckpt_manifest *restore; /* the checkpoint restored, or NULL */
    char *restore_dir;
    /* what the operator did */
    harness_rec *recs;
    size_t n_recs, cap_recs;
    /* weir_test_emitted's place: record seek_k is the seek_i-th of port
     * seek_port (valid until the records are cleared). */
    int seek_valid;
    uint32_t seek_port;
    size_t seek_i, seek_k;
    harness_log *logs;
    size_t n_logs, cap_logs;
    /* bytes handed out by the state reads */
    char *buf;
    size_t buf_len;
};

/* ------------------------------------------------------------------------ */
/* Errors and the call bracket                                               */
/* ------------------------------------------------------------------------ */

static WEIR_PRINTF(3, 4) int harness_err(weir_test *h, int code,
                                         const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    va_end(ap);
    free(h->error);
    h->error = msg;
    return code;
}

/* Takes over a host message (*errptr style). */
static int harness_take(weir_test *h, int code, char *msg)
{
    free(h->error);
    h->error = msg ? msg : strdup(weir_strerror(code));
    return code;
}

static void harness_tap(void *arg, weir_log_level level, const char *who,
                        const char *msg)
{
    weir_test *h = arg;
    if (h->n_logs == h->cap_logs) {
        size_t cap = h->cap_logs ? h->cap_logs * 2 : 16;
        harness_log *v = realloc(h->logs, cap * sizeof *v);
        if (!v)
            return;
        h->logs = v;
        h->cap_logs = cap;
    }
    char *line = NULL;
    if (asprintf(&line, "[%s] %s", who ? who : "-", msg) < 0)
        return;
    h->logs[h->n_logs++] = (harness_log){level, line};
}

/* What a call saves and restores: the thread's task owner and log tap. */
typedef struct harness_frame {
    task *owner;
    log_tap_fn tap;
    void *tap_arg;
} harness_frame;

static harness_frame harness_enter(weir_test *h)
{
    harness_frame f = {.owner = task_owner};
    log_get_thread_tap(&f.tap, &f.tap_arg);
    task_owner = &h->t;
    log_set_thread_tap(harness_tap, h);
    return f;
}

static void harness_leave(harness_frame f)
{
    task_owner = f.owner;
    log_set_thread_tap(f.tap, f.tap_arg);
}

/* The message the job would fail with after callback `what` returned rc. */
static int harness_failed(weir_test *h, const char *what, int rc)
{
    task *t = &h->t;
    return harness_err(h, rc, "operator '%s' (%s) subtask %u/%u: %s: %s",
                       h->op.id, h->op.type, t->ps->index + 1,
                       t->ps->parallelism, what,
                       t->error ? t->error : weir_strerror(rc));
}

/* After a host step that may have failed the job (keyed_fire_timers,
 * keyed_sweep record their failure with rt_fail): takes its message and
 * lets the harness go on. */
static int harness_job_failed(weir_test *h, int rc)
{
    rt_job *rt = &h->rt;
    pthread_mutex_lock(&rt->lock);
    char *msg = rt->error;
    rt->error = NULL;
    rt->error_code = 0;
    pthread_mutex_unlock(&rt->lock);
    atomic_store(&rt->cancelled, 0);
    if (rc >= 0) {
        free(msg);
        return rc;
    }
    return harness_take(h, rc, msg);
}

/* The checks at the start of every driving call. */
static int harness_ready(weir_test *h)
{
    if (!h)
        return WEIR_EINVAL;
    if (h->broken)
        return WEIR_ESTATE;
    free(h->error);
    h->error = NULL;
    free(h->t.error);
    h->t.error = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Emit capture and the clock                                                */
/* ------------------------------------------------------------------------ */

static void *harness_dup(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c) {
        if (n)
            memcpy(c, p, n);
        c[n] = 0;
    }
    return c;
}

static int harness_capture(void *arg, uint32_t port, const void *key,
                           size_t key_len, int64_t ts, const void *value,
                           size_t value_len)
{
    weir_test *h = arg;
    if (h->emit_rc) {
        free(h->t.error);
        h->t.error = strdup("weir_emit: the channel failed (the test made "
                            "emits fail)");
        return h->emit_rc;
    }
    if (h->n_recs == h->cap_recs) {
        size_t cap = h->cap_recs ? h->cap_recs * 2 : 64;
        harness_rec *v = realloc(h->recs, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        h->recs = v;
        h->cap_recs = cap;
    }
    void *k = harness_dup(key, key_len), *v = harness_dup(value, value_len);
    if (!k || !v) {
        free(k);
        free(v);
        return WEIR_ENOMEM;
    }
    h->recs[h->n_recs++].r = (weir_test_record){
        .port = port,
        .key = k,
        .key_len = key_len,
        .ts = ts,
        .value = v,
        .value_len = value_len,
        .watermark = h->t.wm,
    };
    return 0;
}

static int64_t harness_clock(void *arg)
{
    return ((weir_test *)arg)->now_ms;
}

/* ------------------------------------------------------------------------ */
/* Faults: wrappers around the runtime's services                            */
/* ------------------------------------------------------------------------ */

/* The harness whose task owns `ctx`, when the call comes from that task's
 * thread during a harness call; NULL otherwise (the runtime's service then
 * refuses the call as it would in a job). */
static weir_test *harness_of_ctx(weir_ctx *ctx)
{
    task *t = task_self();
    if (!t || (weir_ctx *)t != ctx)
        return NULL;
    return (weir_test *)(void *)((char *)t - offsetof(weir_test, t));
}

/* Whether this keyed state call is to fail (weir_test_fail_state); when so,
 * leaves the host's message and returns the code. */
static int harness_state_fault(weir_ctx *ctx, const char *fn)
{
    weir_test *h = harness_of_ctx(ctx);
    if (!h || !h->state_rc)
        return 0;
    if (h->state_left > 0) {
        h->state_left--;
        return 0;
    }
    free(h->t.error);
    if (asprintf(&h->t.error, "%s: %s (a fault the test injected)", fn,
                 weir_strerror(h->state_rc)) < 0)
        h->t.error = NULL;
    return h->state_rc;
}

#define HARNESS_STATE_FAULT(ctx, fn)                                           \
    do {                                                                       \
        int frc_ = harness_state_fault((ctx), (fn));                           \
        if (frc_ < 0)                                                          \
            return frc_;                                                       \
    } while (0)

static int harness_value_get(weir_ctx *c, weir_state *s, const void **v,
                             size_t *n)
{
    HARNESS_STATE_FAULT(c, "weir_value_get");
    return api_table()->value_get(c, s, v, n);
}
static int harness_value_put(weir_ctx *c, weir_state *s, const void *v,
                             size_t n)
{
    HARNESS_STATE_FAULT(c, "weir_value_put");
    return api_table()->value_put(c, s, v, n);
}
static int harness_value_delete(weir_ctx *c, weir_state *s)
{
    HARNESS_STATE_FAULT(c, "weir_value_delete");
    return api_table()->value_delete(c, s);
}
static int harness_map_get(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                           const void **v, size_t *n)
{
    HARNESS_STATE_FAULT(c, "weir_map_get");
    return api_table()->map_get(c, s, k, kn, v, n);
}
static int harness_map_put(weir_ctx *c, weir_state *s, const void *k, size_t kn,
                           const void *v, size_t n)
{
    HARNESS_STATE_FAULT(c, "weir_map_put");
    return api_table()->map_put(c, s, k, kn, v, n);
}
static int harness_map_delete(weir_ctx *c, weir_state *s, const void *k,
                              size_t kn)
{
    HARNESS_STATE_FAULT(c, "weir_map_delete");
    return api_table()->map_delete(c, s, k, kn);
}
static int harness_map_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                            void *arg)
{
    HARNESS_STATE_FAULT(c, "weir_map_iter");
    return api_table()->map_iter(c, s, fn, arg);
}
static int harness_map_clear(weir_ctx *c, weir_state *s)
{
    HARNESS_STATE_FAULT(c, "weir_map_clear");
    return api_table()->map_clear(c, s);
}
static int harness_list_add(weir_ctx *c, weir_state *s, const void *v, size_t n)
{
    HARNESS_STATE_FAULT(c, "weir_list_add");
    return api_table()->list_add(c, s, v, n);
}
static int harness_list_iter(weir_ctx *c, weir_state *s, weir_map_iter_fn fn,
                             void *arg)
{
    HARNESS_STATE_FAULT(c, "weir_list_iter");
    return api_table()->list_iter(c, s, fn, arg);
}
static int harness_list_clear(weir_ctx *c, weir_state *s)
{
    HARNESS_STATE_FAULT(c, "weir_list_clear");
    return api_table()->list_clear(c, s);
}

static int harness_timer_register(weir_ctx *c, weir_time_domain d, int64_t ts)
{
    weir_test *h = harness_of_ctx(c);
    if (h && h->timer_rc) {
        free(h->t.error);
        if (asprintf(&h->t.error,
                     "weir_timer_register: %s (a fault the test injected)",
                     weir_strerror(h->timer_rc)) < 0)
            h->t.error = NULL;
        return h->timer_rc;
    }
    return api_table()->timer_register(c, d, ts);
}

/* The operator's service table: the runtime's, less the services `without`
 * names, with the fault wrappers. */
static void harness_api(weir_test *h, uint32_t without)
{
    h->api = *api_table();
    h->api.value_get = harness_value_get;
    h->api.value_put = harness_value_put;
    h->api.value_delete = harness_value_delete;
    h->api.map_get = harness_map_get;
    h->api.map_put = harness_map_put;
    h->api.map_delete = harness_map_delete;
    h->api.map_iter = harness_map_iter;
    h->api.map_clear = harness_map_clear;
    h->api.list_add = harness_list_add;
    h->api.list_iter = harness_list_iter;
    h->api.list_clear = harness_list_clear;
    h->api.timer_register = harness_timer_register;
    if (without & WEIR_TEST_WITHOUT_SNAPSHOT_WRITE)
        h->api.snapshot_write = NULL;
    if (without & WEIR_TEST_WITHOUT_METRICS)
        h->api.metric_register = NULL;
}

/* How long the harness waits at most for an asynchronous operator's
 * requests (a free slot, the end of input): far beyond any async.timeout a
 * test sets, so that only a request the host never times out hits it. */
#define HARNESS_ASYNC_WAIT_MS 60000

/* An asynchronous operator: waits up to `ms` for a completion or a due
 * timeout or retry, then delivers what may be delivered (results to
 * on_async_result(), held watermarks), as the subtask loop does. */
static int harness_async_serve(weir_test *h, int ms)
{
    task *t = &h->t;
    int wait = async_next_ms(t, ms);
    if (wait > 0) {
        struct pollfd p = {.fd = async_fd(t), .events = POLLIN};
        (void)poll(&p, 1, wait);
    }
    return harness_job_failed(h, async_service(t));
}

/* Serves until nothing is queued (full: 0) or a slot is free (full: 1),
 * or `ms` passed: then WEIR_ETIMEDOUT. */
static int harness_async_until(weir_test *h, int full, int ms, const char *what)
{
    task *t = &h->t;
    int64_t end = task_mono_ns() + (int64_t)ms * 1000000;
    int rc = harness_async_serve(h, 0); /* what completed already */
    while (rc == 0 && (full ? async_full(t) : async_pending(t) > 0)) {
        int64_t now = task_mono_ns();
        if (now >= end)
            return harness_err(h, WEIR_ETIMEDOUT,
                               "%s: %zu async request(s) of operator '%s' "
                               "still in flight after %d ms",
                               what, async_pending(t), h->op.id, ms);
        int step = (int)((end - now) / 1000000);
        rc = harness_async_serve(h, step < 10 ? (step > 0 ? step : 1) : 10);
    }
    return rc;
}

/* What the runtime does between batches: processing-time timers due at the
 * clock fire, and expired state is swept; an asynchronous operator's
 * completed requests are delivered. */
static int harness_between(weir_test *h)
{
    task *t = &h->t;
    if (t->async) {
        int arc = harness_job_failed(h, async_service(t));
        if (arc < 0)
            return arc;
    }
    int rc = keyed_fire_timers(t, WEIR_TIME_PROCESSING, h->now_ms);
    if (rc == 0)
        rc = keyed_sweep(t, 1);
    return harness_job_failed(h, rc);
}

/* ------------------------------------------------------------------------ */
/* Building the job                                                          */
/* ------------------------------------------------------------------------ */

WEIR_TEST_API void weir_test_config_init(weir_test_config *c)
{
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
}

/* Appends `s` to the malloc'ed *buf. */
static int harness_append(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        return WEIR_ENOMEM;
    memcpy(b + *len, s, n + 1);
    *buf = b;
    *len += n;
    return 0;
}

/* The parameters as one YAML mapping: params_yaml, then one line per
 * key/value pair. */
static int harness_params_text(weir_test *h, const weir_test_config *c,
                               char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (harness_append(out, len, c->params_yaml ? c->params_yaml : "") < 0)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    if (*len && (*out)[*len - 1] != '\n' && c->params && c->params[0].name &&
        harness_append(out, len, "\n") < 0)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    for (size_t i = 0; c->params && c->params[i].name; i++) {
        const char *v = c->params[i].value ? c->params[i].value : "null";
        if (strchr(c->params[i].name, '\n') || strchr(v, '\n'))
            return harness_err(h, WEIR_EINVAL,
                               "config.%s: a parameter given as a key/value "
                               "pair must be written on one line (use "
                               "params_yaml for block values)",
                               c->params[i].name);
        if (harness_append(out, len, c->params[i].name) < 0 ||
            harness_append(out, len, ": ") < 0 ||
            harness_append(out, len, v) < 0 ||
            harness_append(out, len, "\n") < 0)
            return harness_err(h, WEIR_ENOMEM, "out of memory");
    }
    return 0;
}

/* The host sections with their defaults (and the harness's settings). */
static int harness_sections(weir_test *h, const weir_test_config *c)
{
    static const char *const sections[] = {"runtime", "state", "checkpoint",
                                           "restart", "metrics"};
    topo_params *outs[] = {&h->job.runtime, &h->job.state, &h->job.checkpoint,
                           &h->job.restart, &h->job.metrics};
    char maxrec[32];
    snprintf(maxrec, sizeof maxrec, "%llu",
             (unsigned long long)(c->max_record_size ? c->max_record_size
                                                     : 16u << 20));
    for (size_t k = 0; k < sizeof sections / sizeof *sections; k++) {
        const weir_param_def *const *defs = topo_section_defs(sections[k]);
        size_t nd = 0;
        while (defs[nd])
            nd++;
        const char *names[4], *values[4];
        size_t n = 0;
        if (k == 0) {
            names[n] = "max_record_size";
            values[n++] = maxrec;
        } else if (k == 1) {
            /* Small caches: a test may run many harnesses. */
            names[n] = "dir";
            values[n++] = h->state_dir;
            names[n] = "block_cache";
            values[n++] = "8MiB";
            names[n] = "write_buffer";
            values[n++] = "8MiB";
        }
        char *err = NULL;
        int rc =
            topo_params_from_strings(defs, nd, names, values, n, outs[k], &err);
        if (rc < 0) {
            err_prefix(&err, "%s", sections[k]);
            return harness_take(h, rc, err);
        }
    }
    return 0;
}

/* Registry, operator, parameters, job and plan. */
static int harness_build(weir_test *h, const weir_test_config *c)
{
    char *err = NULL;
    int rc;
    if (!c || c->size < offsetof(weir_test_config, restore_snapshot_set) +
                            sizeof c->restore_snapshot_set)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: the config is NULL or too small "
                           "(use weir_test_config_init)");
    if (!c->op || !*c->op)
        return harness_err(h, WEIR_EINVAL, "weir_test_new: no operator name");
    if (!c->plugin_path == !c->plugin)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: give exactly one of plugin_path "
                           "and plugin");
    if (!(h->reg = reg_new(api_table())))
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    rc = c->plugin_path ? reg_load_file(h->reg, c->plugin_path, &err)
                        : reg_add_plugin(h->reg, NULL, c->plugin, &err);
    if (rc < 0)
        return harness_take(h, rc, err);
    if (!(h->ro = reg_find(h->reg, c->op))) {
        const reg_operator *s = reg_suggest(h->reg, c->op);
        return harness_err(
            h, WEIR_ENOTFOUND, "operator type '%s' is not in %s%s%s%s", c->op,
            c->plugin_path ? c->plugin_path : "the plugin",
            s ? "; did you mean '" : "", s ? s->op.name : "", s ? "'?" : "");
    }
    uint32_t par = c->parallelism ? c->parallelism : 1;
    uint32_t maxpar = c->max_parallelism ? c->max_parallelism : 128;
    if (c->subtask >= par || par > maxpar || maxpar > 32768)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: subtask %u of parallelism %u with "
                           "max_parallelism %u (want subtask < parallelism "
                           "<= max_parallelism <= 32768)",
                           c->subtask, par, maxpar);
    h->op.id = strdup(c->id ? c->id : "op");
    h->op.type = strdup(c->op);
    h->job.name = strdup(HARNESS_JOB);
    h->job.path = strdup("weir_test");
    if (!h->op.id || !h->op.type || !h->job.name || !h->job.path)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    h->op.reg = h->ro;
    h->op.parallelism = par;
    h->job.max_parallelism = maxpar;
    h->job.ops = &h->op;
    h->job.n_ops = 1;
    char *text = NULL;
    size_t len = 0;
    if ((rc = harness_params_text(h, c, &text, &len)) < 0) {
        free(text);
        return rc;
    }
    rc = topo_config_from_yaml("params", text, len, h->ro, h->op.id,
                               &h->op.config, &err);
    free(text);
    if (rc < 0)
        return harness_take(h, rc, err);
    const weir_param_def *const *wdefs = topo_section_defs("watermarks");
    size_t nw = 0;
    while (wdefs[nw])
        nw++;
    if ((rc = topo_params_from_strings(wdefs, nw, NULL, NULL, 0,
                                       &h->op.watermarks, &err)) < 0)
        return harness_take(h, rc, err);
    /* An asynchronous operator's `async` section, with its defaults. */
    if (h->ro->op.async_invoke) {
        const weir_param_def *const *adefs = topo_section_defs("async");
        size_t na = 0;
        while (adefs[na])
            na++;
        if ((rc = topo_params_from_strings(adefs, na, NULL, NULL, 0,
                                           &h->op.async, &err)) < 0)
            return harness_take(h, rc, err);
    }
    return 0;
}

/* config.async_direct: the request table and the completion service that
 * records into it. */
static int harness_direct_setup(weir_test *h, const weir_test_config *c)
{
    if (c->size <
            offsetof(weir_test_config, async_direct) + sizeof c->async_direct ||
        !c->async_direct)
        return 0;
    if (!h->ro->op.async_invoke)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: config.async_direct: operator "
                           "'%s' is not asynchronous (it has no async_invoke)",
                           h->op.type);
    if (!(h->direct = direct_new(h->t.max_record)))
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    h->api.async_complete = direct_complete;
    return 0;
}

/* The job and its one task, as rt_start_with() and task_main() set them
 * up, without channels and threads. */
static int harness_task(weir_test *h, const weir_test_config *c)
{
    rt_job *rt = &h->rt;
    task *t = &h->t;
    rt->job = &h->job;
    rt->plan = h->plan;
    rt->tasks = t;
    rt->n_tasks = 1;
    rt->state_lock_fd = -1;
    rt->retry_timeout_ms = topo_param_int(&h->job.runtime, "retry_timeout");
    rt->batch_size = 256;
    rt->batch_bytes = 64 * 1024;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->ck_lock, NULL);
    pthread_cond_init(&rt->ck_cond, NULL);
    rt->capture = harness_capture;
    rt->capture_arg = h;
    rt->clock = harness_clock;
    rt->clock_arg = h;
    if (!(rt->metrics = metrics_new(h->job.name)))
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    uint32_t without = 0;
    if (c->size >= offsetof(weir_test_config, without) + sizeof c->without)
        without = c->without;
    if (without & ~WEIR_TEST_WITHOUT_ALL)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: config.without has unknown bits "
                           "0x%x",
                           without & ~WEIR_TEST_WITHOUT_ALL);
    harness_api(h, without);
    t->ctx.api = &h->api;
    t->rt = rt;
    t->ps = &h->plan->subtasks[c->subtask];
    t->op = &h->op;
    t->reg = h->ro;
    snprintf(t->who, sizeof t->who, "%s#%u", h->op.id, c->subtask);
    t->wm = WEIR_WATERMARK_MIN;
    t->max_ts = INT64_MIN;
    t->n_ports = (uint32_t)h->ro->n_outputs;
    t->ports = calloc(t->n_ports + 1, sizeof *t->ports);
    if (!t->ports)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    pthread_mutex_init(&t->admin_lock, NULL);
    pthread_mutex_init(&t->pub_lock, NULL);
    int64_t max_record = topo_param_int(&h->job.runtime, "max_record_size");
    t->max_record = (size_t)max_record;
    return harness_direct_setup(h, c);
}

/* The work directory and, for keyed operators, the state environment. */
static int harness_dirs(weir_test *h, const weir_test_config *c)
{
    const char *tmp = getenv("TMPDIR");
    char tpl[4096];
    snprintf(tpl, sizeof tpl, "%s/weir-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tpl))
        return harness_err(h, WEIR_EIO, "mkdtemp %s: %s", tpl, strerror(errno));
    if (!(h->work = strdup(tpl)) || asprintf(&h->run_dir, "%s/run", tpl) < 0 ||
        (c->state_dir ? !(h->state_dir = strdup(c->state_dir))
                      : asprintf(&h->state_dir, "%s/state", tpl) < 0)) {
        h->run_dir = NULL;
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    }
    return 0;
}

static int harness_state_env(weir_test *h)
{
    if (!(h->ro->op.flags & WEIR_OP_KEYED))
        return 0;
    char *err = NULL, *dir = NULL;
    if (asprintf(&dir, "%s/%s/%s", h->state_dir, h->job.name, h->op.id) < 0)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    /* A fresh start begins with empty state, as a run does. */
    int rc = fs_rmtree(dir, &err);
    if (rc == 0 && h->restore)
        rc = rt_restore_op_state(&h->op, h->restore, h->restore_dir, dir, &err);
    free(dir);
    if (rc < 0)
        return harness_take(h, rc, err);
    state_env_config cfg;
    state_env_config_init(&cfg);
    cfg.block_cache_bytes =
        (uint64_t)topo_param_int(&h->job.state, "block_cache");
    cfg.write_buffer_bytes =
        (uint64_t)topo_param_int(&h->job.state, "write_buffer");
    cfg.expected_stores = 1;
    cfg.background_threads = 1;
    h->rt.sweep_batch = (size_t)topo_param_int(&h->job.state, "sweep_batch");
    if ((rc = state_env_new(&cfg, &h->rt.senv, &err)) < 0)
        return harness_take(h, rc, err);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

static void harness_manifest_release(ckpt_manifest *m)
{
    for (size_t i = 0; i < m->n_tasks; i++) {
        free(m->tasks[i].state_dir);
        free(m->tasks[i].snapshot);
        free(m->tasks[i].broadcast);
    }
    free(m->tasks);
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i].path);
    free(m->files);
}

/* The manifest of this task's part of a checkpoint (paths malloc'ed). */
static int harness_manifest(weir_test *h, uint64_t id, int has_state,
                            int has_snapshot, int has_broadcast,
                            uint32_t version, ckpt_manifest *m, ckpt_task *e)
{
    task *t = &h->t;
    *m = (ckpt_manifest){.version = CKPT_FORMAT_VERSION,
                         .job = h->job.name,
                         .id = id,
                         .triggered_ms = task_wall_ms(),
                         .completed_ms = task_wall_ms(),
                         .max_parallelism = h->plan->max_parallelism};
    *e = (ckpt_task){.op_id = h->op.id,
                     .index = t->ps->index,
                     .parallelism = t->ps->parallelism,
                     .snapshot_version = version};
    if ((has_state &&
         asprintf(&e->state_dir, "%s-%u/state", h->op.id, t->ps->index) < 0) ||
        (has_snapshot && asprintf(&e->snapshot, "%s-%u/snapshot", h->op.id,
                                  t->ps->index) < 0) ||
        (has_broadcast && asprintf(&e->broadcast, "%s-%u/broadcast", h->op.id,
                                   t->ps->index) < 0))
        return WEIR_ENOMEM;
    m->tasks = e;
    m->n_tasks = 1;
    return 0;
}

static void harness_manifest_free_task(ckpt_task *e)
{
    free(e->async);
    free(e->state_dir);
    free(e->snapshot);
    free(e->broadcast);
}

static int harness_remember_ck(weir_test *h, uint64_t id, char *dir)
{
    uint64_t *ids = realloc(h->ck_ids, (h->n_ck + 1) * sizeof *ids);
    if (ids)
        h->ck_ids = ids;
    char **v = ids ? realloc(h->ck_dirs, (h->n_ck + 1) * sizeof *v) : NULL;
    if (!v) {
        free(dir);
        return WEIR_ENOMEM;
    }
    h->ck_dirs = v;
    h->ck_ids[h->n_ck] = id;
    h->ck_dirs[h->n_ck++] = dir;
    h->last_ck = id;
    return 0;
}

WEIR_TEST_API int weir_test_checkpoint(weir_test *h, uint64_t *id_out)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    uint64_t id = id_out && *id_out ? *id_out : h->last_ck + 1;
    if (id <= h->last_ck)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_checkpoint: id %llu is not above the "
                           "last checkpoint's (%llu)",
                           (unsigned long long)id,
                           (unsigned long long)h->last_ck);
    char *err = NULL, *chk = ckpt_dir(h->run_dir, id), *dir = NULL;
    int has_state = 0, has_bcast = 0, has_snap = 0, has_async = 0;
    ckpt_manifest m;
    ckpt_task e = {0};
    harness_frame f = harness_enter(h);
    if (!chk || asprintf(&dir, "%s/%s-%u", chk, h->op.id, t->ps->index) < 0) {
        dir = NULL;
        rc = harness_err(h, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = fs_mkdirs(dir, &err)) < 0)
        goto host_err;
    char path[4200];
    if (t->store) {
        snprintf(path, sizeof path, "%s/state", dir);
        if ((rc = keyed_snapshot(t, path)) < 0) {
            err = t->error ? strdup(t->error) : NULL;
            goto host_err;
        }
        has_state = 1;
    }
    if (t->bcast) {
        snprintf(path, sizeof path, "%s/broadcast", dir);
        if ((rc = bcast_snapshot(t, path, &has_bcast, &err)) < 0)
            goto host_err;
    }
    if (t->async) {
        snprintf(path, sizeof path, "%s/async", dir);
        if ((rc = async_snapshot(t, path, &has_async, &err)) < 0)
            goto host_err;
    }
    free(h->snap);
    h->snap = NULL;
    h->snap_len = 0;
    if (t->reg->op.snapshot) {
        t->snap_len = 0;
        t->in_snapshot = 1;
        guard_cb g = guard_enter(&t->guard, GUARD_SNAPSHOT);
        rc = t->reg->op.snapshot(&t->ctx, t->self, id);
        guard_leave(&t->guard, g);
        t->in_snapshot = 0;
        if (rc < 0) {
            rc = harness_failed(h, "snapshot", rc);
            goto out;
        }
        h->snap = harness_dup(t->snap_buf ? t->snap_buf : "", t->snap_len);
        h->snap_len = t->snap_len;
        snprintf(path, sizeof path, "%s/snapshot", dir);
        if ((rc = fs_write_file(path, t->snap_buf ? t->snap_buf : "",
                                t->snap_len, &err)) < 0)
            goto host_err;
        has_snap = 1;
    }
    if (harness_manifest(h, id, has_state, has_snap, has_bcast,
                         t->reg->op.snapshot_version, &m, &e) < 0 ||
        (has_async &&
         asprintf(&e.async, "%s-%u/async", h->op.id, t->ps->index) < 0)) {
        e.async = NULL;
        rc = harness_err(h, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    rc = ckpt_complete(h->run_dir, &m, NULL, &err);
    m.tasks = NULL;
    m.n_tasks = 0;
    harness_manifest_release(&m);
    if (rc < 0)
        goto host_err;
    if ((rc = harness_remember_ck(h, id, chk)) < 0) {
        chk = NULL;
        rc = harness_err(h, rc, "out of memory");
        goto out;
    }
    chk = NULL;
    t->ck_taken = id;
    if (id_out)
        *id_out = id;
    goto out;
host_err:
    rc = harness_take(h, rc, err);
    err = NULL;
out:
    harness_manifest_free_task(&e);
    harness_leave(f);
    free(chk);
    free(dir);
    return rc;
}

WEIR_TEST_API const char *weir_test_checkpoint_dir(const weir_test *h,
                                                   uint64_t id)
{
    for (size_t i = 0; h && i < h->n_ck; i++)
        if (h->ck_ids[i] == id)
            return h->ck_dirs[i];
    return NULL;
}

WEIR_TEST_API void weir_test_snapshot_data(const weir_test *h,
                                           const void **data, size_t *len)
{
    *data = h ? h->snap : NULL;
    *len = h ? h->snap_len : 0;
}

WEIR_TEST_API int weir_test_notify_checkpoint(weir_test *h, uint64_t id)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    if (!t->reg->op.notify_checkpoint_complete)
        return 0;
    harness_frame f = harness_enter(h);
    guard_cb g = guard_enter(&t->guard, GUARD_NOTIFY_CHECKPOINT_COMPLETE);
    rc = t->reg->op.notify_checkpoint_complete(&t->ctx, t->self, id);
    guard_leave(&t->guard, g);
    if (rc < 0)
        rc = harness_failed(h, "notify_checkpoint_complete", rc);
    else
        t->ck_notified = id;
    harness_leave(f);
    return rc;
}

/* A checkpoint directory in the work directory that holds only `data` as
 * the plugin snapshot (config.restore_snapshot), with its manifest. */
static int harness_write_snapshot_ck(weir_test *h, const weir_test_config *c,
                                     char **out)
{
    char *err = NULL, *dir = NULL, *chk = NULL;
    ckpt_manifest m;
    ckpt_task e = {0};
    int rc;
    uint64_t id = 1;
    if (c->size >= offsetof(weir_test_config, restore_snapshot_id) +
                       sizeof c->restore_snapshot_id &&
        c->restore_snapshot_id)
        id = c->restore_snapshot_id;
    if (asprintf(&dir, "%s/given", h->work) < 0)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    chk = ckpt_dir(dir, id);
    free(dir);
    dir = NULL;
    if (!chk)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    if (asprintf(&dir, "%s/%s-%u", chk, h->op.id, h->t.ps->index) < 0) {
        free(chk);
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/snapshot", dir);
    if ((rc = fs_mkdirs(dir, &err)) < 0 ||
        (rc =
             fs_write_file(path, c->restore_snapshot ? c->restore_snapshot : "",
                           c->restore_snapshot_len, &err)) < 0)
        goto fail;
    if ((rc = harness_manifest(h, id, 0, 1, 0, c->restore_snapshot_version, &m,
                               &e)) < 0) {
        err = strdup("out of memory");
        goto fail;
    }
    rc = ckpt_write_manifest(chk, &m, &err);
    m.tasks = NULL;
    m.n_tasks = 0;
    harness_manifest_release(&m);
    harness_manifest_free_task(&e);
    if (rc < 0)
        goto fail;
    free(dir);
    *out = chk;
    return 0;
fail:
    free(dir);
    free(chk);
    return harness_take(h, rc, err);
}

/* Loads the checkpoint to restore and checks that it fits. */
static int harness_load_restore(weir_test *h, const weir_test_config *c)
{
    char *err = NULL, *dir = NULL;
    int rc;
    if (c->restore_from && c->restore_snapshot_set)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_new: give restore_from or "
                           "restore_snapshot, not both");
    if (c->restore_snapshot_set) {
        if ((rc = harness_write_snapshot_ck(h, c, &dir)) < 0)
            return rc;
    } else if (c->restore_from) {
        if (!(dir = strdup(c->restore_from)))
            return harness_err(h, WEIR_ENOMEM, "out of memory");
    } else {
        return 0;
    }
    h->restore_dir = dir;
    if ((rc = ckpt_manifest_load_path(dir, &h->restore, &err)) < 0 ||
        (rc = rt_restore_check(&h->job, h->restore, dir, 0, &err)) < 0)
        return harness_take(h, rc, err);
    h->rt.restore = h->restore;
    h->rt.restore_dir = h->restore_dir;
    /* The next checkpoint is numbered after the restored one. */
    h->last_ck = h->restore->id;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

/* Opens the instance exactly as a run does (task_open_instance). */
static int harness_open(weir_test *h)
{
    task *t = &h->t;
    int rc = task_open_instance(t);
    if (rc < 0)
        return harness_job_failed(h, rc);
    t->phase = TASK_PHASE_RUN;
    if (h->direct) {
        /* The test invokes the requests: no async layer. */
        size_t restored = async_pending(t);
        async_close(t);
        if (restored)
            return harness_err(h, WEIR_EINVAL,
                               "weir_test_new: config.async_direct: the "
                               "checkpoint holds %zu async request(s), which "
                               "only the runtime's async layer invokes again",
                               restored);
    }
    /* Restored async requests are invoked again before any input. */
    if (t->async && (rc = async_resume(t)) < 0)
        return harness_job_failed(h, rc);
    return harness_between(h);
}

WEIR_TEST_API int weir_test_new(const weir_test_config *c, weir_test **out)
{
    weir_test *h = calloc(1, sizeof *h);
    *out = h;
    if (!h)
        return WEIR_ENOMEM;
    h->now_ms = c && c->now_ms ? c->now_ms : HARNESS_EPOCH_MS;
    harness_frame f = harness_enter(h);
    int rc = harness_build(h, c);
    if (rc == 0)
        rc = harness_dirs(h, c);
    if (rc == 0)
        rc = harness_sections(h, c);
    if (rc == 0 &&
        (rc = plan_build(&h->job, "weir-test", &h->plan, &h->error)) < 0)
        h->error = h->error ? h->error : strdup(weir_strerror(rc));
    if (rc == 0)
        rc = harness_task(h, c);
    if (rc == 0)
        rc = harness_load_restore(h, c);
    if (rc == 0)
        rc = harness_state_env(h);
    if (rc == 0)
        rc = harness_open(h);
    harness_leave(f);
    if (rc < 0)
        h->broken = 1;
    return rc;
}

static void harness_free_recs(weir_test *h, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        free((void *)h->recs[i].r.key);
        free((void *)h->recs[i].r.value);
    }
}

/* close(), then the keyed and broadcast state, as task_main() ends. */
static void harness_close(weir_test *h)
{
    task *t = &h->t;
    if (h->closed || !t->rt)
        return;
    h->closed = 1;
    harness_frame f = harness_enter(h);
    if (t->opened) {
        t->phase = TASK_PHASE_CLOSE;
        guard_cb g = guard_enter(&t->guard, GUARD_CLOSE);
        t->reg->op.close(&t->ctx, t->self);
        guard_leave(&t->guard, g);
        t->phase = TASK_PHASE_NONE;
        t->opened = 0;
    }
    if (h->direct)
        direct_mark_closed(h->direct);
    async_close(t);
    keyed_close(t);
    bcast_free(t);
    harness_leave(f);
}

WEIR_TEST_API void weir_test_close(weir_test *h)
{
    if (h && !h->broken)
        harness_close(h);
    if (h)
        h->broken = 1;
}

WEIR_TEST_API void weir_test_free(weir_test *h)
{
    if (!h)
        return;
    task *t = &h->t;
    harness_close(h);
    direct_free(h->direct);
    free(t->error);
    free(t->snap_buf);
    free(t->ports);
    if (t->rt) {
        pthread_mutex_destroy(&t->admin_lock);
        pthread_mutex_destroy(&t->pub_lock);
        free(t->pub);
        pthread_mutex_destroy(&h->rt.lock);
        pthread_mutex_destroy(&h->rt.ck_lock);
        pthread_cond_destroy(&h->rt.ck_cond);
    }
    free(h->rt.error);
    if (h->rt.senv)
        state_env_free(h->rt.senv);
    if (h->rt.metrics)
        metrics_free(h->rt.metrics);
    plan_free(h->plan);
    topo_params_free(&h->op.config);
    topo_params_free(&h->op.watermarks);
    topo_params_free(&h->op.async);
    topo_params_free(&h->job.runtime);
    topo_params_free(&h->job.state);
    topo_params_free(&h->job.checkpoint);
    topo_params_free(&h->job.restart);
    topo_params_free(&h->job.metrics);
    free(h->op.id);
    free(h->op.type);
    free(h->job.name);
    free(h->job.path);
    if (h->reg)
        reg_free(h->reg);
    if (h->restore)
        ckpt_manifest_free(h->restore);
    free(h->restore_dir);
    for (size_t i = 0; i < h->n_ck; i++)
        free(h->ck_dirs[i]);
    free(h->ck_dirs);
    free(h->ck_ids);
    free(h->snap);
    harness_free_recs(h, 0, h->n_recs);
    free(h->recs);
    for (size_t i = 0; i < h->n_logs; i++)
        free(h->logs[i].line);
    free(h->logs);
    free(h->buf);
    if (h->work) {
        char *err = NULL;
        if (fs_rmtree(h->work, &err) < 0)
            free(err);
    }
    free(h->work);
    free(h->run_dir);
    free(h->state_dir);
    free(h->error);
    free(h);
}

WEIR_TEST_API const char *weir_test_error(const weir_test *h)
{
    if (!h)
        return "out of memory";
    return h->error ? h->error : "";
}

/* ------------------------------------------------------------------------ */
/* Driving                                                                   */
/* ------------------------------------------------------------------------ */

/* Ends a call that fed the operator: after a success, what the runtime does
 * between batches (harness_between); then the frame is left. Returns rc,
 * or the failure of that step. */
static int harness_end(weir_test *h, harness_frame f, int rc)
{
    if (rc >= 0) {
        int brc = harness_between(h);
        if (brc < 0)
            rc = brc;
    }
    harness_leave(f);
    return rc;
}

/* Makes rec's key current, as for process(); harness_key_clear() ends it
 * (also after a failure). */
static int harness_key_set(weir_test *h, const weir_record *rec)
{
    task *t = &h->t;
    t->cur_key = rec->key;
    t->cur_key_len = rec->key_len;
    t->has_key = 1;
    int rc = keyed_set_key(t, rec);
    return rc < 0 ? harness_failed(h, "setting the current key", rc) : 0;
}

static void harness_key_clear(weir_test *h)
{
    h->t.has_key = 0;
    keyed_clear_key(&h->t);
}

/* The checks of a record the test hands to input `port` in `fn`. */
static int harness_input_check(weir_test *h, const char *fn, int bcast,
                               uint32_t port, const void *key, size_t key_len,
                               const void *value, size_t value_len)
{
    task *t = &h->t;
    if (t->reg->op.flags & WEIR_OP_SOURCE)
        return harness_err(h, WEIR_EINVAL,
                           "%s: operator '%s' is a source (it has no "
                           "inputs; use weir_test_poll)",
                           fn, h->op.type);
    if (port >= t->reg->n_inputs)
        return harness_err(h, WEIR_EINVAL,
                           "%s: input port %u does not exist (the operator "
                           "has %zu)",
                           fn, port, t->reg->n_inputs);
    if (bcast != bcast_is_input(t, port))
        return harness_err(h, WEIR_EINVAL,
                           "%s: input port %u ('%s') is %sa broadcast input",
                           fn, port, t->reg->inputs[port], bcast ? "not " : "");
    if ((!key && key_len) || (!value && value_len))
        return harness_err(h, WEIR_EINVAL, "%s: NULL bytes with a length", fn);
    return 0;
}

static int harness_record(weir_test *h, int bcast, uint32_t port,
                          const void *key, size_t key_len, int64_t ts,
                          const void *value, size_t value_len)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    const char *fn = bcast ? "weir_test_broadcast" : "weir_test_process";
    if ((rc = harness_input_check(h, fn, bcast, port, key, key_len, value,
                                  value_len)) < 0)
        return rc;
    weir_record rec = {.key = key ? key : "",
                       .key_len = key_len,
                       .ts = ts,
                       .value = value ? value : "",
                       .value_len = value_len};
    harness_frame f = harness_enter(h);
    TASK_COUNT(t->records_in, 1);
    if (bcast) {
        rc = bcast_process(t, &rec, port);
        if (rc < 0)
            rc = harness_failed(h, "process_broadcast", rc);
    } else if (t->async) {
        /* task_async_record(): wait for a free slot, queue, invoke. */
        rc = harness_async_until(h, 1, HARNESS_ASYNC_WAIT_MS, fn);
        if (rc == 0) {
            if (rec.ts < t->wm && rec.ts != WEIR_TS_NONE)
                TASK_COUNT(t->late_records, 1);
            rc = harness_job_failed(h, async_submit(t, &rec, port));
        }
    } else if (h->direct) {
        rc = harness_err(h, WEIR_EINVAL,
                         "%s: operator '%s' is driven directly "
                         "(config.async_direct): use weir_test_async_invoke",
                         fn, h->op.id);
    } else {
        rc = harness_key_set(h, &rec);
        if (rc == 0) {
            if (rec.ts < t->wm && rec.ts != WEIR_TS_NONE)
                TASK_COUNT(t->late_records, 1);
            guard_cb g = guard_enter(&t->guard, GUARD_PROCESS);
            rc = t->reg->op.process(&t->ctx, t->self, &rec, port);
            guard_leave(&t->guard, g);
            if (rc < 0)
                rc = harness_failed(h, "process", rc);
        }
        harness_key_clear(h);
    }
    return harness_end(h, f, rc);
}

WEIR_TEST_API int weir_test_process(weir_test *h, uint32_t port,
                                    const void *key, size_t key_len, int64_t ts,
                                    const void *value, size_t value_len)
{
    return harness_record(h, 0, port, key, key_len, ts, value, value_len);
}

WEIR_TEST_API int weir_test_broadcast(weir_test *h, uint32_t port,
                                      const void *key, size_t key_len,
                                      int64_t ts, const void *value,
                                      size_t value_len)
{
    return harness_record(h, 1, port, key, key_len, ts, value, value_len);
}

/* task_set_watermark() of task.c, without sending it on. An asynchronous
 * operator's watermark waits behind the requests in flight
 * (async_hold_watermark): their delivery applies it. */
static int harness_set_watermark(weir_test *h, int64_t wm)
{
    task *t = &h->t;
    int held = async_hold_watermark(t, wm);
    if (held)
        return held < 0 ? harness_job_failed(h, held) : harness_between(h);
    t->wm = wm;
    int rc = keyed_fire_timers(t, WEIR_TIME_EVENT, wm);
    if (rc < 0)
        return harness_job_failed(h, rc);
    keyed_set_watermark(t, wm);
    if (t->reg->op.on_watermark) {
        guard_cb g = guard_enter(&t->guard, GUARD_ON_WATERMARK);
        rc = t->reg->op.on_watermark(&t->ctx, t->self, wm);
        guard_leave(&t->guard, g);
        if (rc < 0)
            return harness_failed(h, "on_watermark", rc);
    }
    return harness_between(h);
}

WEIR_TEST_API int weir_test_watermark(weir_test *h, int64_t wm)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    if (wm <= h->t.wm)
        return 0;
    harness_frame f = harness_enter(h);
    rc = harness_set_watermark(h, wm);
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int64_t weir_test_current_watermark(const weir_test *h)
{
    return h ? h->t.wm : WEIR_WATERMARK_MIN;
}

WEIR_TEST_API int weir_test_set_time(weir_test *h, int64_t now_ms)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    h->now_ms = now_ms;
    harness_frame f = harness_enter(h);
    rc = harness_between(h);
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int64_t weir_test_time(const weir_test *h)
{
    return h ? h->now_ms : 0;
}

WEIR_TEST_API int weir_test_poll(weir_test *h)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    if (!(t->reg->op.flags & WEIR_OP_SOURCE))
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_poll: operator '%s' is not a source",
                           h->op.type);
    harness_frame f = harness_enter(h);
    guard_cb g = guard_enter(&t->guard, GUARD_POLL);
    rc = t->reg->op.poll(&t->ctx, t->self);
    guard_leave(&t->guard, g);
    if (rc < 0 && rc != WEIR_EOF && rc != WEIR_EAGAIN)
        rc = harness_failed(h, "poll", rc);
    if (rc >= 0 || rc == WEIR_EOF || rc == WEIR_EAGAIN) {
        int brc = harness_between(h);
        if (brc < 0)
            rc = brc;
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_drain(weir_test *h, int max_polls)
{
    int rc = 0;
    for (int i = 0; i < max_polls; i++) {
        rc = weir_test_poll(h);
        if (rc == WEIR_EAGAIN) {
            h->now_ms += 1;
            continue;
        }
        if (rc < 0)
            break;
    }
    return rc;
}

WEIR_TEST_API int weir_test_async_wait(weir_test *h, int timeout_ms)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    if (!h->t.async)
        return 0;
    harness_frame f = harness_enter(h);
    rc = harness_async_until(h, 0, timeout_ms > 0 ? timeout_ms : 0,
                             "weir_test_async_wait");
    if (rc == 0)
        rc = harness_between(h);
    harness_leave(f);
    return rc;
}

WEIR_TEST_API size_t weir_test_async_pending(const weir_test *h)
{
    return h && h->t.async ? async_pending(&h->t) : 0;
}

/* ------------------------------------------------------------------------ */
/* Asynchronous operators, driven directly                                   */
/* ------------------------------------------------------------------------ */

static int harness_direct_ready(weir_test *h, const char *fn)
{
    int rc = harness_ready(h);
    if (rc == 0 && !h->direct)
        rc = harness_err(h, WEIR_EINVAL,
                         "%s: the harness was not created with "
                         "config.async_direct",
                         fn);
    return rc;
}

WEIR_TEST_API int weir_test_async_invoke(weir_test *h, uint32_t port,
                                         const void *key, size_t key_len,
                                         int64_t ts, const void *value,
                                         size_t value_len, size_t *request)
{
    const char *fn = "weir_test_async_invoke";
    int rc = harness_direct_ready(h, fn);
    if (rc == 0)
        rc =
            harness_input_check(h, fn, 0, port, key, key_len, value, value_len);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    direct_input in = {.port = port,
                       .key = key ? key : "",
                       .key_len = key_len,
                       .ts = ts,
                       .value = value ? value : "",
                       .value_len = value_len};
    size_t i = 0;
    weir_async *req = direct_add(h->direct, &in, &i);
    if (!req)
        return harness_err(h, WEIR_ENOMEM, "out of memory");
    if (request)
        *request = i;
    weir_record rec = {.key = in.key,
                       .key_len = key_len,
                       .ts = ts,
                       .value = in.value,
                       .value_len = value_len};
    harness_frame f = harness_enter(h);
    TASK_COUNT(t->records_in, 1);
    rc = harness_key_set(h, &rec);
    if (rc == 0) {
        guard_cb g = guard_enter(&t->guard, GUARD_ASYNC_INVOKE);
        rc = t->reg->op.async_invoke(&t->ctx, t->self, &rec, port, req);
        guard_leave(&t->guard, g);
        if (rc < 0)
            rc = harness_failed(h, "async_invoke", rc);
    }
    harness_key_clear(h);
    return harness_end(h, f, rc);
}

WEIR_TEST_API size_t weir_test_async_requests(const weir_test *h)
{
    return h && h->direct ? direct_count(h->direct) : 0;
}

WEIR_TEST_API size_t weir_test_async_completed(const weir_test *h)
{
    return h && h->direct ? direct_completed(h->direct) : 0;
}

WEIR_TEST_API int weir_test_async_wait_completed(weir_test *h, size_t n,
                                                 int timeout_ms)
{
    if (!h || !h->direct)
        return WEIR_EINVAL;
    int rc = direct_wait(h->direct, n, timeout_ms > 0 ? timeout_ms : 0);
    if (rc < 0)
        return harness_err(h, rc,
                           "weir_test_async_wait_completed: %zu of %zu "
                           "request(s) completed after %d ms",
                           direct_completed(h->direct), n, timeout_ms);
    return 0;
}

WEIR_TEST_API int weir_test_async_request_info(const weir_test *h, size_t i,
                                               weir_test_async_request *out)
{
    if (!h || !h->direct)
        return WEIR_EINVAL;
    return direct_info(h->direct, i, out, NULL);
}

WEIR_TEST_API int weir_test_async_deliver(weir_test *h, size_t i)
{
    const char *fn = "weir_test_async_deliver";
    int rc = harness_direct_ready(h, fn);
    if (rc < 0)
        return rc;
    weir_test_async_request r;
    direct_input in;
    if (direct_info(h->direct, i, &r, &in) < 0)
        return harness_err(h, WEIR_ENOTFOUND,
                           "%s: there is no request %zu (%zu invoked)", fn, i,
                           direct_count(h->direct));
    if (r.completions == 0)
        return harness_err(h, WEIR_ESTATE,
                           "%s: request %zu was not completed yet", fn, i);
    task *t = &h->t;
    weir_record rec = {.key = in.key,
                       .key_len = in.key_len,
                       .ts = in.ts,
                       .value = in.value,
                       .value_len = in.value_len};
    harness_frame f = harness_enter(h);
    rc = harness_key_set(h, &rec);
    if (rc == 0) {
        guard_cb g = guard_enter(&t->guard, GUARD_ON_ASYNC_RESULT);
        rc = t->reg->op.on_async_result(&t->ctx, t->self, &rec, in.port,
                                        r.status, r.status ? NULL : r.result,
                                        r.status ? 0 : r.result_len);
        guard_leave(&t->guard, g);
        if (rc < 0)
            rc = harness_failed(h, "on_async_result", rc);
    }
    harness_key_clear(h);
    return harness_end(h, f, rc);
}

WEIR_TEST_API int weir_test_finish(weir_test *h)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    if (h->finished)
        return 0;
    h->finished = 1;
    task *t = &h->t;
    harness_frame f = harness_enter(h);
    /* Every input ended: the watermark is the largest (not for sources,
     * which have no inputs). */
    if (!(t->reg->op.flags & WEIR_OP_SOURCE) && t->wm < WEIR_WATERMARK_MAX)
        rc = harness_set_watermark(h, WEIR_WATERMARK_MAX);
    /* An asynchronous operator's requests are delivered first (and the
     * final watermark behind them). */
    if (rc == 0 && t->async)
        rc = harness_async_until(h, 0, HARNESS_ASYNC_WAIT_MS,
                                 "weir_test_finish");
    if (rc == 0)
        rc = harness_job_failed(h, keyed_sweep(t, 1));
    if (rc == 0 && t->reg->op.finish) {
        guard_cb g = guard_enter(&t->guard, GUARD_FINISH);
        rc = t->reg->op.finish(&t->ctx, t->self);
        guard_leave(&t->guard, g);
        if (rc < 0)
            rc = harness_failed(h, "finish", rc);
    }
    t->finished = 1;
    harness_leave(f);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Output, logs, metrics                                                     */
/* ------------------------------------------------------------------------ */

WEIR_TEST_API size_t weir_test_emitted_count(const weir_test *h, uint32_t port)
{
    if (!h)
        return 0;
    if (port == WEIR_TEST_ALL_PORTS)
        return h->n_recs;
    size_t n = 0;
    for (size_t i = 0; i < h->n_recs; i++)
        n += h->recs[i].r.port == port;
    return n;
}

WEIR_TEST_API const weir_test_record *weir_test_emitted(const weir_test *h,
                                                        uint32_t port, size_t i)
{
    if (!h)
        return NULL;
    if (port == WEIR_TEST_ALL_PORTS)
        return i < h->n_recs ? &h->recs[i].r : NULL;
    /* Reading a port's records in order costs O(1) each: the search goes
     * on from where the last one of the same port ended. */
    weir_test *m = (weir_test *)h;
    size_t k = 0, want = i;
    if (m->seek_valid && m->seek_port == port && m->seek_i <= i) {
        k = m->seek_k;
        want = i - m->seek_i;
    }
    for (; k < h->n_recs; k++)
        if (h->recs[k].r.port == port) {
            if (want == 0) {
                m->seek_valid = 1;
                m->seek_port = port;
                m->seek_i = i;
                m->seek_k = k;
                return &h->recs[k].r;
            }
            want--;
        }
    return NULL;
}

WEIR_TEST_API void weir_test_clear_emitted(weir_test *h, uint32_t port)
{
    if (!h)
        return;
    size_t w = 0;
    h->seek_valid = 0;
    for (size_t k = 0; k < h->n_recs; k++) {
        if (port == WEIR_TEST_ALL_PORTS || h->recs[k].r.port == port)
            harness_free_recs(h, k, k + 1);
        else
            h->recs[w++] = h->recs[k];
    }
    h->n_recs = w;
}

WEIR_TEST_API int weir_test_output_port(const weir_test *h, const char *name)
{
    if (!h || !h->ro || !name)
        return WEIR_EINVAL;
    for (size_t i = 0; i < h->ro->n_outputs; i++)
        if (!strcmp(h->ro->outputs[i], name))
            return (int)i;
    return WEIR_ENOTFOUND;
}

WEIR_TEST_API void weir_test_fail_emits(weir_test *h, int rc)
{
    if (h)
        h->emit_rc = rc < 0 ? rc : 0;
}

WEIR_TEST_API void weir_test_fail_state(weir_test *h, uint64_t after, int rc)
{
    if (!h)
        return;
    h->state_rc = rc < 0 ? rc : 0;
    h->state_left = after;
}

WEIR_TEST_API void weir_test_fail_timers(weir_test *h, int rc)
{
    if (h)
        h->timer_rc = rc < 0 ? rc : 0;
}

WEIR_TEST_API size_t weir_test_log_count(const weir_test *h)
{
    return h ? h->n_logs : 0;
}

WEIR_TEST_API const char *weir_test_log_line(const weir_test *h, size_t i,
                                             weir_log_level *level)
{
    if (!h || i >= h->n_logs)
        return NULL;
    if (level)
        *level = h->logs[i].level;
    return h->logs[i].line;
}

WEIR_TEST_API size_t weir_test_count_logs(const weir_test *h,
                                          weir_log_level level,
                                          const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; h && i < h->n_logs; i++)
        n += h->logs[i].level <= level &&
             (!needle || strstr(h->logs[i].line, needle));
    return n;
}

WEIR_TEST_API const char *
weir_test_find_log(const weir_test *h, weir_log_level level, const char *needle)
{
    for (size_t i = 0; h && i < h->n_logs; i++)
        if (h->logs[i].level <= level &&
            (!needle || strstr(h->logs[i].line, needle)))
            return h->logs[i].line;
    return NULL;
}

/* Finds `name` (or name_count for a histogram) with this operator's labels
 * and the label value in the rendered metrics. */
WEIR_TEST_API double weir_test_metric(const weir_test *h, const char *name,
                                      const char *label_value)
{
    if (!h || !h->rt.metrics || !name)
        return -1;
    char *text = metrics_render(h->rt.metrics);
    double v = -1;
    size_t nl = strlen(name);
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        const char *p = NULL;
        if (!strncmp(line, name, nl)) {
            if (line[nl] == '{')
                p = line + nl;
            else if (!strncmp(line + nl, "_count{", 7))
                p = line + nl + 6;
        }
        if (p) {
            const char *close = strrchr(p, '}');
            size_t quotes = 0;
            for (const char *q = p; close && q < close; q++)
                quotes += *q == '"';
            int ok = 0;
            if (close && !label_value) {
                ok = quotes == 6;
            } else if (close && quotes == 8) {
                /* the last label is the plugin's: ...="value"} */
                size_t lv = strlen(label_value);
                ok = (size_t)(close - p) > lv + 2 && close[-1] == '"' &&
                     !strncmp(close - 1 - lv, label_value, lv) &&
                     close[-2 - (long)lv] == '"';
            }
            if (ok) {
                v = strtod(close + 1, NULL);
                break;
            }
        }
        line = end ? end + 1 : NULL;
    }
    free(text);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Keyed state                                                               */
/* ------------------------------------------------------------------------ */

/* The declared state `name` of the kind `kind`, with `key` current. */
static int harness_state(weir_test *h, const char *fn, const char *name,
                         weir_state_kind kind, const void *key, size_t key_len,
                         weir_state **out)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    task *t = &h->t;
    if (!t->store)
        return harness_err(h, WEIR_ESTATE,
                           "%s: the operator has no keyed "
                           "state",
                           fn);
    if (!name || (!key && key_len))
        return harness_err(h, WEIR_EINVAL, "%s: NULL name or key", fn);
    for (size_t i = 0; i < state_count(t->store); i++) {
        weir_state *st = state_at(t->store, i);
        if (strcmp(state_name(st), name) != 0)
            continue;
        if (state_kind(st) != kind)
            return harness_err(h, WEIR_EINVAL,
                               "%s: state '%s' is not of that kind", fn, name);
        weir_record rec = {
            .key = key ? key : "", .key_len = key_len, .ts = WEIR_TS_NONE};
        t->cur_key = rec.key;
        t->cur_key_len = key_len;
        t->has_key = 1;
        if ((rc = keyed_set_key(t, &rec)) < 0) {
            t->has_key = 0;
            return harness_take(h, rc, t->error ? strdup(t->error) : NULL);
        }
        *out = st;
        return 0;
    }
    return harness_err(h, WEIR_EINVAL,
                       "%s: the operator declared no state '%s'", fn, name);
}

static void harness_state_done(weir_test *h)
{
    h->t.has_key = 0;
    keyed_clear_key(&h->t);
}

/* Copies bytes a state read returned (valid until the next call). */
static int harness_keep(weir_test *h, const void **v, size_t *n)
{
    char *b = harness_dup(*v, *n);
    if (!b)
        return WEIR_ENOMEM;
    free(h->buf);
    h->buf = b;
    h->buf_len = *n;
    *v = b;
    return 0;
}

static int harness_state_rc(weir_test *h, int rc)
{
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return harness_take(h, rc, h->t.error ? strdup(h->t.error) : NULL);
    return rc;
}

WEIR_TEST_API int weir_test_value_get(weir_test *h, const char *state,
                                      const void *key, size_t key_len,
                                      const void **value, size_t *len)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_value_get", state, WEIR_STATE_VALUE,
                           key, key_len, &st);
    if (rc == 0) {
        rc = state_value_get(st, value, len, &h->t.error);
        if (rc == 0)
            rc = harness_keep(h, value, len);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_map_get(weir_test *h, const char *state,
                                    const void *key, size_t key_len,
                                    const void *ukey, size_t ukey_len,
                                    const void **value, size_t *len)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_map_get", state, WEIR_STATE_MAP, key,
                           key_len, &st);
    if (rc == 0) {
        rc = state_map_get(st, ukey ? ukey : "", ukey_len, value, len,
                           &h->t.error);
        if (rc == 0)
            rc = harness_keep(h, value, len);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_map_iter(weir_test *h, const char *state,
                                     const void *key, size_t key_len,
                                     weir_map_iter_fn fn, void *arg)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_map_iter", state, WEIR_STATE_MAP, key,
                           key_len, &st);
    if (rc == 0) {
        rc = state_map_iter(st, fn, arg, &h->t.error);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_list_iter(weir_test *h, const char *state,
                                      const void *key, size_t key_len,
                                      weir_map_iter_fn fn, void *arg)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_list_iter", state, WEIR_STATE_LIST,
                           key, key_len, &st);
    if (rc == 0) {
        rc = state_list_iter(st, fn, arg, &h->t.error);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_value_put(weir_test *h, const char *state,
                                      const void *key, size_t key_len,
                                      const void *value, size_t len)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_value_put", state, WEIR_STATE_VALUE,
                           key, key_len, &st);
    if (rc == 0) {
        rc = state_value_put(st, value ? value : "", len, &h->t.error);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_map_put(weir_test *h, const char *state,
                                    const void *key, size_t key_len,
                                    const void *ukey, size_t ukey_len,
                                    const void *value, size_t len)
{
    weir_state *st;
    harness_frame f = harness_enter(h);
    int rc = harness_state(h, "weir_test_map_put", state, WEIR_STATE_MAP, key,
                           key_len, &st);
    if (rc == 0) {
        rc = state_map_put(st, ukey ? ukey : "", ukey_len, value ? value : "",
                           len, &h->t.error);
        harness_state_done(h);
        rc = harness_state_rc(h, rc);
    }
    harness_leave(f);
    return rc;
}

WEIR_TEST_API int weir_test_state_entries(weir_test *h, const char *state,
                                          uint64_t *n)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    *n = 0;
    task *t = &h->t;
    if (!t->store)
        return harness_err(h, WEIR_ESTATE,
                           "weir_test_state_entries: the "
                           "operator has no keyed state");
    int found = 0;
    harness_frame f = harness_enter(h);
    for (size_t i = 0; rc == 0 && i < state_count(t->store); i++) {
        weir_state *st = state_at(t->store, i);
        if (state && strcmp(state_name(st), state) != 0)
            continue;
        found = 1;
        uint64_t c = 0;
        char *err = NULL;
        if ((rc = state_scan_count(t->store, st, &c, &err)) < 0)
            rc = harness_take(h, rc, err);
        *n += c;
    }
    harness_leave(f);
    if (rc == 0 && state && !found)
        return harness_err(h, WEIR_EINVAL,
                           "weir_test_state_entries: the operator declared "
                           "no state '%s'",
                           state);
    return rc;
}

WEIR_TEST_API int weir_test_timer_count(weir_test *h, uint64_t *n)
{
    int rc = harness_ready(h);
    if (rc < 0)
        return rc;
    *n = 0;
    if (!h->t.store)
        return 0;
    char *err = NULL;
    harness_frame f = harness_enter(h);
    if ((rc = state_timer_count(h->t.store, n, &err)) < 0)
        rc = harness_take(h, rc, err);
    harness_leave(f);
    return rc;
}

WEIR_TEST_API size_t weir_test_state_count(const weir_test *h)
{
    return h && h->t.store ? state_count(h->t.store) : 0;
}

WEIR_TEST_API int weir_test_state_info(const weir_test *h, size_t i,
                                       const char **name, weir_state_kind *kind,
                                       int64_t *ttl_ms)
{
    if (!h || !h->t.store || i >= state_count(h->t.store))
        return WEIR_ENOTFOUND;
    weir_state *st = state_at(h->t.store, i);
    state_admin_info ai;
    state_admin_info_get(st, &ai);
    if (name)
        *name = state_name(st);
    if (kind)
        *kind = state_kind(st);
    if (ttl_ms)
        *ttl_ms = ai.declared_ttl_ms;
    return 0;
}
