/* Broken: a constructor that calls exit(3), which would end the host
 * process with status 3 and no message. Its table would be valid; it
 * declares ctor_exit_op. */
#include <stdlib.h>

#include "../test_plugin.h"

__attribute__((constructor)) static void ctor_exit(void)
{
    exit(3);
}

static const weir_operator op = TP_OP("ctor_exit_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
