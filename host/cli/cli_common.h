/*
 * cli_common.h - what several subcommands share: the repeatable
 * `--dir D` option and loading the plugin registry from it.
 *
 * Every subcommand parses its options with getopt_long() through
 * cli_getopt(), so that all of them accept `--opt=value` and `--opt value`,
 * take `--` as the end of the options, and treat an unknown option or a
 * missing value alike. Typical use:
 *
 *     static const struct option longopts[] = {
 *         {"dir", required_argument, NULL, 'd'},
 *         {"help", no_argument, NULL, 'h'},
 *         {NULL, 0, NULL, 0}};
 *     cli_dirs dirs = {0};
 *     int c;
 *     cli_getopt_reset();
 *     while ((c = cli_getopt("weir validate", argc, argv, "h", longopts)) !=
 *            -1) {
 *         switch (c) {
 *         case 'd':
 *             if (cli_dir_add(&dirs, optarg) < 0)
 *                 ...exit CLI_EXIT_USAGE...
 *             break;
 *         case 'h': ...usage on stdout, exit CLI_EXIT_OK...
 *         default:  ...usage on stderr, exit CLI_EXIT_USAGE...
 *         }
 *     }
 *     ... the operands are argv[optind] .. argv[argc - 1] ...
 *     reg_registry *reg = NULL;
 *     if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
 *         ...exit CLI_EXIT_USAGE...
 *     ...
 *     reg_free(reg);
 *     cli_dirs_free(&dirs);
 *
 * Thread: main thread only.
 */
#ifndef WEIR_HOST_CLI_COMMON_H
#define WEIR_HOST_CLI_COMMON_H

#include <getopt.h>
#include <stddef.h>

#include "plugin/registry.h"

/* What cli_getopt() returns for an option it refused (after printing why). */
#define CLI_OPT_BAD '?'

/* Makes the next cli_getopt() call start over at argv[1] (getopt_long()
 * keeps its position in globals). */
void cli_getopt_reset(void);

/*
 * One step of getopt_long(argc, argv, shortopts, longopts) in GNU order:
 * options and operands may be mixed (operands are moved behind the options),
 * unless shortopts starts with '+', which stops at the first operand; `--`
 * ends the options. Returns the option's value (the `val` of its longopts
 * entry, or its letter), -1 when the options are done (argv[optind] is the
 * first operand), or CLI_OPT_BAD after printing on stderr one line that
 * starts with `cmd` ("weir run") and names the option: an unknown option
 * ("unknown option '--x'"), a value missing ("--from needs a value"; "--dir
 * needs a directory"), or a value given to an option that takes none. Long
 * options may be abbreviated to an unambiguous prefix (getopt_long()).
 * getopt_long()'s own messages are off (opterr is 0).
 */
int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* Takes the value of an option that must not be empty: returns 0, or -1
 * after printing "CMD: --NAME needs a value" on stderr when `value` is
 * empty. */
int cli_need_value(const char *cmd, const char *name, const char *value);

/* The --dir values in command-line order. The strings are borrowed from
 * argv; the array is malloc'ed (free it with cli_dirs_free()). */
typedef struct cli_dirs {
    const char **v;
    size_t n;
} cli_dirs;

/* Appends the value of a --dir option to `dirs`. Returns 0, or -1 after
 * printing a one-line error on stderr when it is empty or memory runs
 * out. */
int cli_dir_add(cli_dirs *dirs, const char *dir);

/* Recognises `--dir D` and `--dir=D` at argv[*i] (for test programs that
 * parse their own arguments; the subcommands use cli_getopt()). Returns 1 after
 * appending D to `dirs` and leaving *i at the last argument it consumed; 0 when
 * argv[*i] is not --dir (nothing changes); -1 after printing a one-line
 * error on stderr when --dir lacks its value or memory runs out. */
int cli_parse_dir(int argc, char **argv, int *i, cli_dirs *dirs);

/* Releases the array of `dirs` (not the strings) and empties it. */
void cli_dirs_free(cli_dirs *dirs);

/*
 * Creates a registry whose plugins get the host's api_table() and loads
 * plugins into it: from exactly `dirs` when n_dirs > 0, otherwise from the
 * default directories (reg_load_default(): next to the binary, never the
 * current directory). Every file is probed in a child process first
 * (plugin/registry.h); the probe's time-out is 5 s, or the milliseconds in
 * the environment variable WEIR_PLUGIN_PROBE_TIMEOUT_MS (0 turns probing
 * off). A plugin file that fails to load, its probe included, is printed on
 * stderr as "weir: warning: plugin <file>: <cause>; skipped" and skipped.
 * Returns 0 with *out set (the caller reg_free()s it), or a negative WEIR_E*
 * code with *out NULL after printing why on stderr: a --dir that cannot be
 * read, or out of memory. Call it before the process starts any thread.
 */
int cli_load_plugins(reg_registry **out, const char *const *dirs,
                     size_t n_dirs);

/* After an operator was not found: when plugin files were skipped while
 * loading `reg`, prints on stderr that the operator may be in one of them,
 * with each file and its cause ("weir: note: 1 plugin file was skipped and
 * may provide it: <file>: <cause>"). Prints nothing when none was. */
void cli_note_rejected(const reg_registry *reg);

#endif
