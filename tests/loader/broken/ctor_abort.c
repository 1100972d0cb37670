/* Broken: a constructor that calls abort() (SIGABRT while dlopen() runs it).
 * Its table would be valid; it declares ctor_abort_op. */
#include <stdlib.h>

#include "../test_plugin.h"

__attribute__((constructor)) static void ctor_abort(void)
{
    abort();
}

static const weir_operator op = TP_OP("ctor_abort_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
