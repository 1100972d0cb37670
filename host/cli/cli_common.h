/*
 * cli_common.h - what several subcommands share: the repeatable
 * `--dir D` option and loading the plugin registry from it.
 *
 * Typical use in a subcommand:
 *
 *     cli_dirs dirs = {0};
 *     for (int i = 1; i < argc; i++) {
 *         int r = cli_parse_dir(argc, argv, &i, &dirs);
 *         if (r < 0)
 *             goto usage;      // message already printed
 *         if (r > 0)
 *             continue;        // it was --dir
 *         ... other options ...
 *     }
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

#include <stddef.h>

#include "plugin/registry.h"

/* The --dir values in command-line order. The strings are borrowed from
 * argv; the array is malloc'ed (free it with cli_dirs_free()). */
typedef struct cli_dirs {
    const char **v;
    size_t n;
} cli_dirs;

/* Recognises `--dir D` and `--dir=D` at argv[*i]. Returns 1 after appending
 * D to `dirs` and leaving *i at the last argument it consumed; 0 when
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
