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

int cli_load_plugins(reg_registry **out, const char *const *dirs, size_t n_dirs)
{
    *out = NULL;
    reg_registry *reg = reg_new(api_table());
    if (!reg) {
        fprintf(stderr, "weir: out of memory\n");
        return WEIR_ENOMEM;
    }
    if (n_dirs == 0) {
        reg_load_default(reg, cli_warn_plugin, NULL);
        *out = reg;
        return 0;
    }
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
    *out = reg;
    return 0;
}
