/* A valid plugin whose constructor creates the file named by the
 * environment variable WEIR_TEST_MARKER (when set): it shows whether a
 * command ran the plugin's code at all. It stands for a malicious plugin in
 * an untrusted checkout's ./plugins, which weir must not load by default. */
#include <stdio.h>
#include <stdlib.h>

#include "../test_plugin.h"

__attribute__((constructor)) static void cwd_marker(void)
{
    const char *path = getenv("WEIR_TEST_MARKER");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f) {
        fputs("plugin code ran\n", f);
        fclose(f);
    }
}

static const weir_operator op = TP_OP("cwd_marker_op");
static const weir_operator *const ops[] = {&op, NULL};
static const weir_plugin plugin = TP_PLUGIN(ops);

TP_ENTRY(plugin)
