/*
 * main.c - the weir command: dispatches to the cmd_* subcommands.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"

#include "weir/weir.h"

static void usage(FILE *f)
{
    fputs(
        "usage: weir <command> [options]\n"
        "\n"
        "commands:\n"
        "  plugins [--dir D] [NAME] [--json]  list operators and parameters\n"
        "  validate [--dir D] [--json] JOB.yaml...\n"
        "                                     check topology files, every\n"
        "                                     error of each\n"
        "  run [--dir D] [--from PATH] [--no-supervisor] JOB.yaml\n"
        "                                     run a job (supervised)\n"
        "  state ls|dump|bootstrap ...        checkpointed state offline: "
        "list,\n"
        "                                     dump, build a savepoint\n"
        "  ctl TARGET COMMAND                 control a running job: status,\n"
        "                                     checkpoint, savepoint, stop, "
        "cancel\n"
        "  new-plugin NAME [--keyed|--source] write a plugin project to start "
        "from\n"
        "  -V, --version                      the version and plugin ABI\n"
        "  -h, --help                         this text\n"
        "\n"
        "--dir D adds a plugin directory (repeatable) to the defaults,\n"
        "../plugins and ../lib/weir/plugins relative to the weir binary\n"
        "(never the current directory). `weir COMMAND --help` describes a\n"
        "command. Exit codes: 0 ok, 1 job failed, 2 bad usage\n"
        "or input, 3 restarts exhausted, 4 no valid checkpoint to restore,\n"
        "5 the job is locked by another run.\n",
        f);
}

static int main_version(void)
{
    printf("weir %s (plugin ABI %d.%d)\n", WEIR_VERSION_STRING, WEIR_ABI_MAJOR,
           WEIR_ABI_MINOR);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    /* '+': the options of the subcommand are its own. */
    cli_getopt_reset();
    while ((c = cli_getopt("weir", argc, argv, "+hV", longopts)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == 'V')
            return main_version();
        usage(stderr);
        return 2;
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (!strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version"))
        return main_version();
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"plugins", cmd_plugins}, {"validate", cmd_validate},
                {"run", cmd_run},         {"state", cmd_state},
                {"ctl", cmd_ctl},         {"new-plugin", cmd_new_plugin}};
    for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
        if (!strcmp(cmd, cmds[k].name))
            return cmds[k].fn(sub_argc, sub_argv);
    }
    fprintf(stderr, "weir: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
