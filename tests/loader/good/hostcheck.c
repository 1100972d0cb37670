/* Remembers the host table its entry point received and exports a second
 * function (test-only) that returns it, so a test can check which table the
 * registry passed. Test plugins may keep this one global. */
#include "../test_plugin.h"

WEIR_EXPORT const weir_host_api *weir_test_seen_host(void);

static const weir_host_api *seen_host;

const weir_host_api *weir_test_seen_host(void)
{
    return seen_host;
}

static const weir_operator op = TP_OP("hostcheck_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    seen_host = host;
    return &plugin;
}
