/* Broken: the entry point returns a garbage pointer (0x1), not a
 * weir_plugin; reading it faults (in the sanitizer build, UBSan stops the
 * misaligned read first and the probe exits with status 1). */
#include <stdint.h>

#include "../test_plugin.h"

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return (const weir_plugin *)(uintptr_t)0x1;
}
