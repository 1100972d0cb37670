/* Broken: the operator list is empty. */
#include "../test_plugin.h"

static const weir_operator *const ops[] = {NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
