/* Broken: an operator list far longer than any real plugin's (4097 entries,
 * all the same operator), refused before anything else is read. */
#include "../test_plugin.h"

#define X4(...)    __VA_ARGS__, __VA_ARGS__, __VA_ARGS__, __VA_ARGS__
#define X16(...)   X4(X4(__VA_ARGS__))
#define X256(...)  X16(X16(__VA_ARGS__))
#define X4096(...) X16(X256(__VA_ARGS__))

static const weir_operator op = TP_OP("again");
static const weir_operator *const ops[] = {X4096(&op), &op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
