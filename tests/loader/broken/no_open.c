/* Broken: a non-source operator without its required open callback. */
#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "lacks_open",
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
