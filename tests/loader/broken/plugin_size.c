/* Broken: declares a weir_plugin smaller than v1.0's (48 bytes on LP64). */
#include "../test_plugin.h"

static const weir_operator op = TP_OP("plugin_size_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = {
    .size = 40,
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
    .name = "plugin_size",
    .operators = ops,
};

TP_ENTRY(plugin)
