/*
 * exitop - a test operator that ends the process behind the host's back:
 * it forwards records and calls exit(`code`) on record number `at`
 * (1-based), as a misbehaving plugin might. Built like any outside plugin
 * (SDK headers only).
 */
#include <stdlib.h>

#include "weir/weir.h"

typedef struct exit_op {
    int64_t at, code, seen;
} exit_op;

static const weir_param_def exit_at = {
    .size = sizeof(weir_param_def),
    .name = "at",
    .type = WEIR_PARAM_INT,
    .default_value = "1",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 1,
    .description = "record number (1-based) on which the process exits"};
static const weir_param_def exit_code = {
    .size = sizeof(weir_param_def),
    .name = "code",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .min = 0,
    .max = 255,
    .description = "the exit code"};
static const weir_param_def *const exit_params[] = {&exit_at, &exit_code,
                                                    NULL};

static int exit_open(weir_ctx *ctx, void **self)
{
    exit_op *e = calloc(1, sizeof *e);
    if (!e)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "at", &e->at);
    weir_param_int(ctx, "code", &e->code);
    *self = e;
    return WEIR_OK;
}

static int exit_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    exit_op *e = self;
    (void)port;
    if (++e->seen == e->at)
        exit((int)e->code);
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static void exit_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    free(self);
}

static const weir_operator exit_operator = {
    .size = sizeof(weir_operator),
    .name = "exitop",
    .version = "1.0",
    .description = "forwards records, then calls exit() (tests)",
    .params = exit_params,
    .open = exit_open,
    .process = exit_process,
    .close = exit_close,
};

static const weir_operator *const exit_operators[] = {&exit_operator, NULL};

static const weir_plugin exit_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "exitop",
    .version = "1.0",
    .description = "an operator that calls exit() (tests)",
    .operators = exit_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    (void)host;
    return &exit_plugin;
}
