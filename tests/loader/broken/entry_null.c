/* Broken: the entry point refuses to load. */
#include "../test_plugin.h"

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return NULL;
}
