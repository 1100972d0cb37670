#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "runtime/api.h"

static int cli_dirs_push(cli_dirs *dirs, const char *dir)
{
    const char **v = realloc(dirs->v, (dirs->n + 1) * sizeof *v);
    if (!v) {
        fprintf(stderr, "weir: out of memory\n");
        return -1;
    }
    v[dirs->n++] = dir;
    dirs->v = v;
    return 1;
}

int cli_parse_dir(int argc, char **argv, int *i, cli_dirs *dirs)
{
    const char *arg = argv[*i];
    if (!strncmp(arg, "--dir=", 6)) {
        if (!arg[6]) {
            fprintf(stderr, "weir: --dir needs a directory\n");
            return -1;
        }
        return cli_dirs_push(dirs, arg + 6);
    }
    if (strcmp(arg, "--dir") != 0)
        return 0;
    if (*i + 1 >= argc || !argv[*i + 1][0]) {
        fprintf(stderr, "weir: --dir needs a directory\n");
        return -1;
    }
    (*i)++;
    return cli_dirs_push(dirs, argv[*i]);
}

int cli_dir_add(cli_dirs *dirs, const char *dir)
{
    if (!dir || !*dir) {
        fprintf(stderr, "weir: --dir needs a directory\n");
        return -1;
    }
    return cli_dirs_push(dirs, dir) < 0 ? -1 : 0;
}

void cli_getopt_reset(void)
{
    /* 0 (not 1) makes glibc's getopt_long() reinitialise completely. */
    optind = 0;
}

/* The long option named by `arg` ("--name" or "--name=value"), matched
 * like getopt_long() does: exactly, or by an unambiguous prefix. */
static const struct option *cli_find_long(const char *arg,
                                          const struct option *longopts)
{
    const char *name = arg + 2;
    size_t len = strcspn(name, "=");
    const struct option *hit = NULL;
    for (const struct option *o = longopts; o && o->name; o++) {
        if (strncmp(o->name, name, len) != 0)
            continue;
        if (strlen(o->name) == len)
            return o;
        if (hit)
            return NULL; /* ambiguous */
        hit = o;
    }
    return hit;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char spec[64];
    const char *rest = shortopts;
    size_t o = 0;
    if (*rest == '+')
        spec[o++] = *rest++;
    spec[o++] = ':'; /* report a missing value as ':' */
    snprintf(spec + o, sizeof spec - o, "%s", rest);
    opterr = 0;
    int prev = optind == 0 ? 1 : optind;
    int c = getopt_long(argc, argv, spec, longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    /* The refused argument: where getopt_long() stopped, or the one
     * before when it stepped past it. */
    const char *arg = optind > prev && optind - 1 < argc ? argv[optind - 1]
                      : prev < argc                      ? argv[prev]
                                                         : "";
    int is_long = !strncmp(arg, "--", 2);
    if (c == ':') {
        /* --dir D is everywhere; its message says what D is. */
        const struct option *lo = NULL;
        for (const struct option *x = longopts; x && x->name; x++)
            if (x->val == optopt)
                lo = x;
        const char *noun =
            lo && !strcmp(lo->name, "dir") ? "a directory" : "a value";
        if (is_long)
            fprintf(stderr, "%s: %.*s needs %s\n", cmd, (int)strcspn(arg, "="),
                    arg, noun);
        else if (lo)
            fprintf(stderr, "%s: -%c (--%s) needs %s\n", cmd, optopt, lo->name,
                    noun);
        else
            fprintf(stderr, "%s: -%c needs %s\n", cmd, optopt, noun);
        return CLI_OPT_BAD;
    }
    if (is_long) {
        const struct option *lo = cli_find_long(arg, longopts);
        if (lo && lo->has_arg == no_argument && strchr(arg, '='))
            fprintf(stderr, "%s: option '--%s' takes no value\n", cmd,
                    lo->name);
        else
            fprintf(stderr, "%s: unknown option '%.*s'\n", cmd,
                    (int)strcspn(arg, "="), arg);
        return CLI_OPT_BAD;
    }
    fprintf(stderr, "%s: unknown option '-%c'\n", cmd, optopt);
    return CLI_OPT_BAD;
}

int cli_need_value(const char *cmd, const char *name, const char *value)
{
    if (value && *value)
        return 0;
    fprintf(stderr, "%s: --%s needs a value\n", cmd, name);
    return -1;
}

void cli_dirs_free(cli_dirs *dirs)
{
    free(dirs->v);
    dirs->v = NULL;
    dirs->n = 0;
}

static void cli_warn_plugin(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "weir: warning: %s\n", msg);
}

/* Problems with a default directory's plugins; one that clashes with an
 * operator a --dir directory provides is overridden, not a problem. */
static void cli_warn_default(void *arg, const char *msg)
{
    if (strstr(msg, "duplicate operator"))
        return;
    cli_warn_plugin(arg, msg);
}

/* Applies WEIR_PLUGIN_PROBE_TIMEOUT_MS when it is set; a bad value is a
 * warning and leaves the default. */
static void cli_probe_timeout(reg_registry *reg)
{
    const char *v = getenv("WEIR_PLUGIN_PROBE_TIMEOUT_MS");
    if (!v || !*v)
        return;
    char *end = NULL;
    errno = 0;
    long ms = strtol(v, &end, 10);
    if (errno || *end || ms < 0 || ms > INT_MAX) {
        fprintf(stderr,
                "weir: warning: WEIR_PLUGIN_PROBE_TIMEOUT_MS='%s' is not a "
                "number of milliseconds; using 5000\n",
                v);
        return;
    }
    reg_set_probe_timeout(reg, (int)ms);
}

void cli_note_rejected(const reg_registry *reg)
{
    size_t n = reg_rejected_count(reg);
    if (n == 1) {
        fprintf(stderr,
                "weir: note: 1 plugin file was skipped and may provide it: "
                "%s\n",
                reg_rejected(reg, 0));
        return;
    }
    if (n > 1)
        fprintf(stderr,
                "weir: note: %zu plugin files were skipped and may provide "
                "it:\n",
                n);
    for (size_t i = 0; n > 1 && i < n; i++)
        fprintf(stderr, "  %s\n", reg_rejected(reg, i));
}

int cli_load_plugins(reg_registry **out, const char *const *dirs, size_t n_dirs)
{
    *out = NULL;
    reg_registry *reg = reg_new(api_table());
    if (!reg) {
        fprintf(stderr, "weir: out of memory\n");
        return WEIR_ENOMEM;
    }
    cli_probe_timeout(reg);
    for (size_t i = 0; i < n_dirs; i++) {
        char *err = NULL;
        int rc = reg_load_dir(reg, dirs[i], cli_warn_plugin, NULL, &err);
        if (rc < 0) {
            fprintf(stderr, "weir: %s\n", err ? err : "cannot load plugins");
            free(err);
            reg_free(reg);
            return rc;
        }
    }
    /* The --dir directories come first: an operator they provide overrides
     * a bundled one of the same name. */
    if (n_dirs == 0 || !getenv("WEIR_NO_DEFAULT_PLUGINS"))
        reg_load_default_skip(reg, dirs, n_dirs, cli_warn_default, NULL);
    *out = reg;
    return 0;
}
