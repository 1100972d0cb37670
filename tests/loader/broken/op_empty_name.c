/* Broken: the second operator has an empty name. */
#include "../test_plugin.h"

static const weir_operator good = TP_OP("fine");
static const weir_operator bad = TP_OP("");
static const weir_operator *const ops[] = {&good, &bad, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
