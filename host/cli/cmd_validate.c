#include <stdio.h>

#include "cli/cli.h"

int cmd_validate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "weir validate: not implemented yet\n");
    return CLI_EXIT_FAILED;
}
