/* Broken: a source without poll (process does not count for sources). */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "ticker",
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
