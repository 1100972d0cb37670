/* Broken (1.2): broadcast_inputs names input port 3 of an operator with one
 * (the default "in"). */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "bcast_op",
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
    .broadcast_inputs = 1u << 3,
    .process_broadcast = tp_process,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
