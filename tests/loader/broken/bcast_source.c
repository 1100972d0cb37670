/* Broken (1.2): a source with a broadcast input. */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "bcast_src",
    .open = tp_open,
    .poll = tp_poll,
    .close = tp_close,
    .broadcast_inputs = 1u,
    .process_broadcast = tp_process,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
