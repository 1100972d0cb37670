/* Broken: a parameter of an unknown type. */
#include "../test_plugin.h"

static const weir_param_def first = {
    .size = sizeof(weir_param_def),
    .name = "first",
    .type = WEIR_PARAM_INT,
};
static const weir_param_def bad = {
    .size = sizeof(weir_param_def),
    .name = "weird",
    .type = (weir_param_type)42,
};
static const weir_param_def *const params[] = {&first, &bad, NULL};
static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "param_op",
    .params = params,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
