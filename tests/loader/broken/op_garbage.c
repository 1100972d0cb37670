/* Broken: a valid weir_plugin whose operator list holds a good operator and
 * then a garbage pointer; reading the second operator faults. */
#include <stdint.h>

#include "../test_plugin.h"

static const weir_operator op = TP_OP("op_garbage_first");
static const weir_operator *const ops[] = {
    &op, (const weir_operator *)(uintptr_t)0x10, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
