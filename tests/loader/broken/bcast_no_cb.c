/* Broken (1.2): a broadcast input without process_broadcast. */
#include "../test_plugin.h"

static const char *const inputs[] = {"events", "rules", NULL};
static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "bcast_op",
    .input_ports = inputs,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
    .broadcast_inputs = 1u << 1,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
