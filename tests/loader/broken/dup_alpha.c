/* Fine on its own, but declares alpha_map like good/alpha.c does: the one
 * loaded second is refused as a whole (dup_only must not be registered). */
#include "../test_plugin.h"

static const weir_operator a = TP_OP("dup_only");
static const weir_operator b = TP_OP("alpha_map");
static const weir_operator *const ops[] = {&a, &b, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
