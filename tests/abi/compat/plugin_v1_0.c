/*
 * plugin_v1_0.c - a plugin built against the oldest supported header,
 * compat/v1_0/weir/weir.h (a frozen copy of the v1.0 SDK header; the build
 * gives this file no other include path). The current host must load it.
 * It fills every v1.0 field so that the loader's copy can be checked.
 */
#include "weir/weir.h"

static int v10_open(weir_ctx *ctx, void **self)
{
    *self = NULL;
    return WEIR_OK;
}

static int v10_process(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port)
{
    return WEIR_OK;
}

static int v10_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    return WEIR_OK;
}

static void v10_close(weir_ctx *ctx, void *self)
{
}

static const char *const kinds[] = {"a", "b", NULL};
static const weir_param_def p_kind = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "kind",
    .type = WEIR_PARAM_ENUM,
    .choices = kinds,
    .description = "Which kind.",
};
static const weir_param_def p_every = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "every",
    .type = WEIR_PARAM_DURATION,
    .default_value = "5s",
    .min = 1,
    .max = 60000,
    .description = "How often.",
};
static const weir_param_def *const params[] = {&p_kind, &p_every, NULL};

static const char *const inputs[] = {"main", "side", NULL};
static const char *const outputs[] = {"out", "late", NULL};

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "compat_v1_0",
    .version = "1.0.0",
    .description = "Built against the v1.0 header.",
    .input_ports = inputs,
    .output_ports = outputs,
    .params = params,
    .snapshot_version = 7,
    .open = v10_open,
    .process = v10_process,
    .snapshot = v10_snapshot,
    .close = v10_close,
};
static const weir_operator *const ops[] = {&op, NULL};

static const weir_plugin plugin = {
    WEIR_PLUGIN_INIT,   .name = "compat",
    .version = "1.0.0", .description = "Oldest supported header",
    .operators = ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &plugin;
}
