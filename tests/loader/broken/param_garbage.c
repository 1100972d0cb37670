/* Broken: an operator whose parameter list holds a garbage pointer; reading
 * the parameter definition faults. */
#include <stdint.h>

#include "../test_plugin.h"

static const weir_param_def *const params[] = {
    (const weir_param_def *)(uintptr_t)0x20, NULL};
static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "param_garbage_op",
    .params = params,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
