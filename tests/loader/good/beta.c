/* A well-formed plugin with explicit port lists: two inputs, no output. */
#include "../test_plugin.h"

static const char *const inputs[] = {"left", "right", NULL};
static const char *const outputs[] = {NULL};

static const weir_operator op_sink = {
    .size = sizeof(weir_operator),
    .name = "beta_sink",
    .version = "0.3.0",
    .description = "Joins two inputs and writes nothing.",
    .input_ports = inputs,
    .output_ports = outputs,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};

static const weir_operator *const ops[] = {&op_sink, NULL};

static const weir_plugin plugin = {
    WEIR_PLUGIN_INIT,
    .name = "beta",
    .version = "0.3.0",
    .operators = ops,
};

TP_ENTRY(plugin)
