/* Broken: the second operator has a NULL name. */
#include "../test_plugin.h"

static const weir_operator good = TP_OP("fine");
static const weir_operator bad = TP_OP(NULL);
static const weir_operator *const ops[] = {&good, &bad, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
