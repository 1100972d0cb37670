/* Broken: calls a function that nothing defines. Linked without
 * --no-undefined, so the error shows only at dlopen(RTLD_NOW). */
#include "../test_plugin.h"

extern int weir_test_no_such_function(int x);

static int process_undefined(weir_ctx *ctx, void *self, const weir_record *rec,
                             uint32_t port)
{
    return weir_test_no_such_function((int)port);
}

static const weir_operator op = {
    .size = sizeof(weir_operator),
    .name = "undefined_op",
    .open = tp_open,
    .process = process_undefined,
    .close = tp_close,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
