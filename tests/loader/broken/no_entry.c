/* Broken: exports a misspelt entry point, so weir_plugin_entry is missing. */
#include "../test_plugin.h"

WEIR_EXPORT const weir_plugin *weir_plugin_entri(const weir_host_api *host);

static const weir_operator op = TP_OP("no_entry_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

const weir_plugin *weir_plugin_entri(const weir_host_api *host)
{
    return &plugin;
}
