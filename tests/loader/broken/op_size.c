/* Broken: declares a weir_operator smaller than v1.0's (152 bytes). */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = 144,
    .name = "op_size_op",
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
