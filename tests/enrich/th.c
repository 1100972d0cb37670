/* th.c - the fake host of th.h (test scaffolding). */
#define _GNU_SOURCE

#include "th.h"

#include <dlfcn.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static th_inst *th_of(weir_ctx *ctx)
{
    return (th_inst *)ctx;
}

/* ------------------------------------------------------------------------ */
/* Services                                                                  */
/* ------------------------------------------------------------------------ */

static char *th_vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    assert_non_null(s);
    return s;
}

static void th_svc_log(weir_ctx *ctx, weir_log_level level, const char *fmt,
                       va_list ap)
{
    th_inst *t = th_of(ctx);
    if (t->n_logs == t->cap_logs) {
        t->cap_logs = t->cap_logs ? 2 * t->cap_logs : 16;
        t->logs = realloc(t->logs, t->cap_logs * sizeof *t->logs);
        assert_non_null(t->logs);
    }
    t->logs[t->n_logs].level = level;
    t->logs[t->n_logs].msg = th_vfmt(fmt, ap);
    if (getenv("TH_VERBOSE"))
        fprintf(stderr, "[log %d] %s\n", level, t->logs[t->n_logs].msg);
    t->n_logs++;
}

static int th_svc_set_error(weir_ctx *ctx, const char *fmt, va_list ap)
{
    th_inst *t = th_of(ctx);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    if (getenv("TH_VERBOSE"))
        fprintf(stderr, "[error] %s\n", t->error);
    return WEIR_EFAIL;
}

static const char *th_svc_operator_id(weir_ctx *ctx)
{
    return th_of(ctx)->id;
}

static uint32_t th_svc_subtask_index(weir_ctx *ctx)
{
    return th_of(ctx)->sub;
}

static uint32_t th_svc_parallelism(weir_ctx *ctx)
{
    return th_of(ctx)->par;
}

/* The value of parameter `name`: NULL and *rc set when it cannot be read. */
static const th_value *th_value_of(weir_ctx *ctx, const char *name, int *rc)
{
    th_inst *t = th_of(ctx);
    return fp_find(t->vals, t->n_vals, name, rc);
}

static int th_svc_param_bool(weir_ctx *ctx, const char *name, int *out)
{
    int rc = 0;
    const th_value *v = th_value_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_BOOL)
        return WEIR_EINVAL;
    *out = v->b;
    return WEIR_OK;
}

static int th_svc_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    int rc = 0;
    const th_value *v = th_value_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_INT && v->def->type != WEIR_PARAM_DURATION &&
        v->def->type != WEIR_PARAM_SIZE)
        return WEIR_EINVAL;
    *out = v->i;
    return WEIR_OK;
}

static int th_svc_param_double(weir_ctx *ctx, const char *name, double *out)
{
    int rc = 0;
    const th_value *v = th_value_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_DOUBLE && v->def->type != WEIR_PARAM_INT)
        return WEIR_EINVAL;
    *out = v->d;
    return WEIR_OK;
}

static int th_svc_param_string(weir_ctx *ctx, const char *name,
                               const char **ptr, size_t *len)
{
    int rc = 0;
    const th_value *v = th_value_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_STRING && v->def->type != WEIR_PARAM_ENUM)
        return WEIR_EINVAL;
    *ptr = v->s;
    *len = v->s_len;
    return WEIR_OK;
}

static void *th_dup(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

static int th_svc_emit(weir_ctx *ctx, uint32_t port, const void *key,
                       size_t key_len, int64_t ts, const void *value,
                       size_t value_len)
{
    th_inst *t = th_of(ctx);
    if (t->in_open_or_close) {
        t->bad_emits++;
        return WEIR_ESTATE;
    }
    if (t->emit_rc)
        return t->emit_rc;
    if (t->n_recs == t->cap_recs) {
        t->cap_recs = t->cap_recs ? 2 * t->cap_recs : 64;
        t->recs = realloc(t->recs, t->cap_recs * sizeof *t->recs);
        assert_non_null(t->recs);
    }
    th_rec *r = &t->recs[t->n_recs++];
    r->port = port;
    r->key = th_dup(key, key_len);
    r->key_len = key_len;
    r->ts = ts;
    r->value = th_dup(value, value_len);
    r->value_len = value_len;
    return WEIR_OK;
}

static int64_t th_svc_now(weir_ctx *ctx)
{
    return th_of(ctx)->now_ms;
}

static int64_t th_svc_watermark(weir_ctx *ctx)
{
    return WEIR_WATERMARK_MIN;
}

static int th_svc_snapshot_write(weir_ctx *ctx, const void *data, size_t len)
{
    th_inst *t = th_of(ctx);
    t->snap = realloc(t->snap, t->snap_len + len + 1);
    assert_non_null(t->snap);
    memcpy(t->snap + t->snap_len, data, len);
    t->snap_len += len;
    return WEIR_OK;
}

#define TH_API_COMMON                                                          \
    .size = sizeof(weir_host_api), .abi_major = WEIR_ABI_MAJOR,                \
    .abi_minor = WEIR_ABI_MINOR, .log = th_svc_log,                            \
    .set_error = th_svc_set_error, .operator_id = th_svc_operator_id,          \
    .subtask_index = th_svc_subtask_index, .parallelism = th_svc_parallelism,  \
    .param_bool = th_svc_param_bool, .param_int = th_svc_param_int,            \
    .param_double = th_svc_param_double, .param_string = th_svc_param_string,  \
    .emit = th_svc_emit, .now = th_svc_now, .watermark = th_svc_watermark

static const weir_host_api th_api = {TH_API_COMMON,
                                     .snapshot_write = th_svc_snapshot_write};
static const weir_host_api th_api_nosnap = {TH_API_COMMON};

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */
/* ------------------------------------------------------------------------ */

const weir_plugin *th_plugin(const char *so)
{
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        fail_msg("dlopen %s: %s", so, dlerror());
    weir_plugin_entry_fn entry =
        (weir_plugin_entry_fn)(uintptr_t)dlsym(h, WEIR_PLUGIN_ENTRY_SYMBOL);
    assert_non_null(entry);
    const weir_plugin *p = entry(&th_api);
    assert_non_null(p);
    assert_int_equal(p->abi_major, WEIR_ABI_MAJOR);
    return p;
}

const weir_operator *th_load(const char *so, const char *name)
{
    const weir_plugin *p = th_plugin(so);
    for (size_t i = 0; p->operators[i]; i++)
        if (strcmp(p->operators[i]->name, name) == 0)
            return p->operators[i];
    fail_msg("%s has no operator %s", so, name);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parameter validation (what the topology loader does before open)          */
/* ------------------------------------------------------------------------ */

const char *th_check_default(const weir_param_def *def)
{
    th_value v = {.def = def};
    const char *why =
        def->default_value ? fp_parse(def, def->default_value, NULL, &v) : NULL;
    free(v.s);
    return why;
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                 */
/* ------------------------------------------------------------------------ */

th_inst *th_new(const weir_operator *op, const th_param *params, uint32_t sub,
                uint32_t par)
{
    th_inst *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->ctx.api = &th_api;
    t->op = op;
    t->id = op->name;
    t->sub = sub;
    t->par = par;
    t->now_ms = 1000000;
    t->param_rc = fp_validate(op, params, NULL, &t->vals, &t->n_vals, t->error,
                              sizeof t->error);
    return t;
}

void th_disable_snapshot(th_inst *t)
{
    t->ctx.api = &th_api_nosnap;
}

int th_open(th_inst *t)
{
    if (t->param_rc < 0)
        return t->param_rc;
    t->in_open_or_close = 1;
    int rc = t->op->open(&t->ctx, &t->self);
    t->in_open_or_close = 0;
    if (rc == WEIR_OK)
        t->opened = 1;
    else
        assert_true(rc < 0 && t->error[0]); /* a failure always explains */
    return rc;
}

int th_poll(th_inst *t)
{
    assert_true(t->opened);
    assert_non_null(t->op->poll);
    return t->op->poll(&t->ctx, t->self);
}

int th_process(th_inst *t, const void *key, size_t key_len, int64_t ts,
               const void *value, size_t value_len)
{
    assert_true(t->opened);
    /* Like a real host may, pass NULL for empty bytes. */
    weir_record r = {.size = sizeof r,
                     .key = key_len ? key : NULL,
                     .key_len = key_len,
                     .ts = ts,
                     .value = value_len ? value : NULL,
                     .value_len = value_len};
    return t->op->process(&t->ctx, t->self, &r, 0);
}

int th_finish(th_inst *t)
{
    assert_true(t->opened);
    return t->op->finish ? t->op->finish(&t->ctx, t->self) : WEIR_OK;
}

int th_snapshot(th_inst *t, uint64_t checkpoint_id)
{
    assert_true(t->opened);
    t->snap_len = 0;
    return t->op->snapshot(&t->ctx, t->self, checkpoint_id);
}

int th_restore(th_inst *t, uint64_t checkpoint_id, uint32_t version,
               const void *data, size_t len)
{
    assert_true(t->opened);
    return t->op->restore(&t->ctx, t->self, checkpoint_id, version, data, len);
}

int th_notify(th_inst *t, uint64_t checkpoint_id)
{
    assert_true(t->opened);
    return t->op->notify_checkpoint_complete
               ? t->op->notify_checkpoint_complete(&t->ctx, t->self,
                                                   checkpoint_id)
               : WEIR_OK;
}

int th_drain(th_inst *t, int max_polls)
{
    int rc = WEIR_OK;
    for (int i = 0; i < max_polls; i++) {
        rc = th_poll(t);
        if (rc == WEIR_EAGAIN)
            t->now_ms++;
        else if (rc != WEIR_OK)
            return rc;
    }
    return rc;
}

void th_clear_recs(th_inst *t)
{
    for (size_t i = 0; i < t->n_recs; i++) {
        free(t->recs[i].key);
        free(t->recs[i].value);
    }
    t->n_recs = 0;
}

void th_close(th_inst *t)
{
    if (t->opened) {
        t->in_open_or_close = 1;
        t->op->close(&t->ctx, t->self);
        t->in_open_or_close = 0;
        t->opened = 0;
    }
}

void th_free(th_inst *t)
{
    if (!t)
        return;
    th_close(t);
    assert_int_equal(t->bad_emits, 0);
    th_clear_recs(t);
    free(t->recs);
    for (size_t i = 0; i < t->n_logs; i++)
        free(t->logs[i].msg);
    free(t->logs);
    fp_free(t->vals, t->n_vals);
    free(t->snap);
    free(t);
}

size_t th_count_logs(const th_inst *t, weir_log_level level, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_logs; i++)
        if (t->logs[i].level == level && strstr(t->logs[i].msg, needle))
            n++;
    return n;
}

const char *th_find_log(const th_inst *t, const char *needle)
{
    for (size_t i = 0; i < t->n_logs; i++)
        if (strstr(t->logs[i].msg, needle))
            return t->logs[i].msg;
    return NULL;
}
