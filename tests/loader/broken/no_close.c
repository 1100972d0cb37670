/* Broken: a non-source operator without its required close callback. */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "lacks_close",
    .open = tp_open,
    .process = tp_process,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
