/* Broken: built for the next ABI major version. */
#include "../test_plugin.h"

static const weir_operator op = TP_OP("abi_major_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = {
    .size = sizeof(weir_plugin),
    .abi_major = WEIR_ABI_MAJOR + 1,
    .abi_minor = 4,
    .name = "abi_major",
    .operators = ops,
};

TP_ENTRY(plugin)
