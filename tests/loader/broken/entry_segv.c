/* Broken: weir_plugin_entry itself writes to address 8, as through a field
 * of a NULL struct pointer (SIGSEGV). */
#include <stdint.h>

#include "../test_plugin.h"

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    volatile int *volatile p = (volatile int *)(uintptr_t)8;
    *p = 1;
    return NULL;
}
