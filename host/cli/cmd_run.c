#include <stdio.h>

#include "cli/cli.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "weir run: not implemented yet\n");
    return CLI_EXIT_FAILED;
}
