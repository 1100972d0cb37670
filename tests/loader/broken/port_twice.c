/* Broken: two output ports with the same name. */
#include "../test_plugin.h"

static const char *const inputs[] = {"in", NULL};
static const char *const outputs[] = {"out", "late", "out", NULL};
static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "port_op",
    .input_ports = inputs,
    .output_ports = outputs,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
