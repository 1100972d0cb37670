/* Broken: declares a weir_param_def smaller than v1.0's (64 bytes). */
#include "../test_plugin.h"

static const weir_param_def p = {
    .size = 56,
    .name = "small",
    .type = WEIR_PARAM_INT,
};
static const weir_param_def *const params[] = {&p, NULL};
static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "param_size_op",
    .params = params,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
