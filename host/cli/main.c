/*
 * main.c - the weir command: dispatches to the cmd_* subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "weir/weir.h"

static void usage(FILE *f)
{
    fputs("usage: weir <command> [options]\n"
          "\n"
          "commands:\n"
          "  plugins [--dir D] [NAME] [--json]  list operators and parameters\n"
          "  validate [--dir D] JOB.yaml        check a topology file\n"
          "  run [--dir D] [--from PATH] [--no-supervisor] JOB.yaml\n"
          "                                     run a job (supervised)\n"
          "  state ls|dump|bootstrap ...        checkpointed state offline: list,\n"
          "                                     dump, build a savepoint\n"
          "  ctl TARGET COMMAND                 control a running job: status,\n"
          "                                     checkpoint, savepoint, stop, cancel\n"
          "  new-plugin NAME [--keyed|--source] write a plugin project to start from\n"
          "  --version                          the version and plugin ABI\n"
          "\n"
          "--dir D adds a plugin directory (repeatable) to the defaults,\n"
          "../plugins and ../lib/weir/plugins relative to the weir binary\n"
          "(never the current directory). Exit codes: 0 ok, 1 job failed, 2 bad usage\n"
          "or input, 3 restarts exhausted, 4 no valid checkpoint to restore,\n"
          "5 the job is locked by another run.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "plugins"))
        return cmd_plugins(argc - 1, argv + 1);
    if (!strcmp(cmd, "validate"))
        return cmd_validate(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "state"))
        return cmd_state(argc - 1, argv + 1);
    if (!strcmp(cmd, "ctl"))
        return cmd_ctl(argc - 1, argv + 1);
    if (!strcmp(cmd, "new-plugin"))
        return cmd_new_plugin(argc - 1, argv + 1);
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("weir %s (plugin ABI %d.%d)\n", WEIR_VERSION_STRING,
               WEIR_ABI_MAJOR, WEIR_ABI_MINOR);
        return 0;
    }
    fprintf(stderr, "weir: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
