#include <stdio.h>

#include "cli/cli.h"

int cmd_plugins(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "weir plugins: not implemented yet\n");
    return CLI_EXIT_FAILED;
}
