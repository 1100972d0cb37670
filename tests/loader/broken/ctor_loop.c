/* Broken: a constructor that never returns (dlopen() hangs). It waits in
 * pause() rather than spinning, to spare the machine's CPUs while the probe
 * waits for its time-out. Its table would be valid; it declares
 * ctor_loop_op. */
#include <unistd.h>

#include "../test_plugin.h"

__attribute__((constructor)) static void ctor_loop(void)
{
    for (;;)
        pause();
}

static const weir_operator op = TP_OP("ctor_loop_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
