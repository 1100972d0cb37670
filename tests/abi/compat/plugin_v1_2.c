/*
 * plugin_v1_2.c - a plugin built against the frozen 1.2 header that uses what
 * ABI 1.2 appended: a broadcast input with process_broadcast(). The host
 * must load it next to the v1.0 plugin and keep both fields.
 */
#include "weir/weir.h"

static int v12_open(weir_ctx *ctx, void **self)
{
    *self = NULL;
    return WEIR_OK;
}

static int v12_process(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port)
{
    return WEIR_OK;
}

static int v12_process_broadcast(weir_ctx *ctx, void *self,
                                 const weir_record *rec, uint32_t port)
{
    return WEIR_OK;
}

static void v12_close(weir_ctx *ctx, void *self)
{
}

static const char *const inputs[] = {"events", "rules", NULL};

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "compat_v1_2",
    .version = "1.2.0",
    .description = "Built against the v1.2 header.",
    .input_ports = inputs,
    .open = v12_open,
    .process = v12_process,
    .close = v12_close,
    .broadcast_inputs = 1u << 1,
    .process_broadcast = v12_process_broadcast,
};
static const weir_operator *const ops[] = {&op, NULL};

static const weir_plugin plugin = {
    WEIR_PLUGIN_INIT,   .name = "compat12",
    .version = "1.2.0", .description = "Current header",
    .operators = ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    /* A 1.2 plugin needs a 1.2 host for its broadcast input. */
    if (!host || host->abi_minor < 2)
        return NULL;
    return &plugin;
}
