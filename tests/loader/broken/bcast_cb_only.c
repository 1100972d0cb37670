/* Broken (1.2): process_broadcast without a broadcast input. */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "bcast_op",
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
    .process_broadcast = tp_process,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
