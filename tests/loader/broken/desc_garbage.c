/* Broken: the operator's description is a garbage pointer. The loader
 * itself never reads descriptions, but `weir plugins` prints them, so the
 * probe reads every string the host will read later. */
#include <stdint.h>

#include "../test_plugin.h"

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "desc_garbage_op",
    .version = "0.0.1",
    .description = (const char *)(uintptr_t)0x30,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
