/* An operator as a plugin built against ABI 1.1 declares it: its size ends
 * at `close`, so the fields appended in 1.2 are not its own. The bytes
 * after that size here are non-zero (a broadcast bit for a port that does
 * not exist, a callback); the host must read only `size` bytes, see no
 * broadcast input, and accept the operator. */
#include <stddef.h>

#include "../test_plugin.h"

static const weir_operator op = {
    .size = offsetof(weir_operator, close) + sizeof(void *),
    .name = "v1_1_op",
    .version = "1.1.0",
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
    .broadcast_inputs = ~(uint64_t)0,
    .process_broadcast = tp_process,
};
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
