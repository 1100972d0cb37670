/*
 * cli.h - the weir subcommands. Each takes its own argv (argv[0] is the
 * subcommand name) and returns the process exit code: 0 ok, 1 the job
 * failed, 2 bad usage or bad input (topology, plugin); `weir run` also
 * returns 3 when the restart strategy gave up and 4 when no valid
 * checkpoint could be restored (supervisor/supervisor.h); `weir state`
 * returns 1 for a damaged or unreadable checkpoint (cmd_state.c).
 */
#ifndef WEIR_HOST_CLI_H
#define WEIR_HOST_CLI_H

#define CLI_EXIT_OK     0
#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE  2

int cmd_plugins(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_state(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_new_plugin(int argc, char **argv);

#endif
