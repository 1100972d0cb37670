/* Broken: two operators with the same name in one plugin. */
#include "../test_plugin.h"

static const weir_operator a = TP_OP("twice");
static const weir_operator b = TP_OP("other");
static const weir_operator c = TP_OP("twice");
static const weir_operator *const ops[] = {&a, &b, &c, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
