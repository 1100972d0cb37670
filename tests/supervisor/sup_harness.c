/*
 * sup_harness - runs sup_run() with a chosen worker binary, so that the
 * process tests can put a scripted fake worker under the real supervisor:
 *
 *     sup_harness SELF JOB.yaml [--from PATH] [--dir D]...
 *
 * The plugins come from the --dir directories (they are also passed on to
 * the worker). Exits with sup_run()'s code, 2 on bad input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h"
#include "supervisor/supervisor.h"
#include "topology/topology.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fputs("usage: sup_harness SELF JOB.yaml [--from PATH] [--dir D]...\n",
              stderr);
        return 2;
    }
    cli_dirs dirs = {0};
    const char *from = NULL;
    int rc = 2;
    for (int i = 3; i < argc; i++) {
        int r = cli_parse_dir(argc, argv, &i, &dirs);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "--from") && i + 1 < argc) {
            from = argv[++i];
            continue;
        }
        fprintf(stderr, "sup_harness: unexpected argument %s\n", argv[i]);
        goto out;
    }
    reg_registry *reg = NULL;
    if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
        goto out;
    topo_job *job = NULL;
    char *err = NULL;
    if (topo_load_file(argv[2], reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        free(err);
    } else {
        sup_options o = {.job_path = argv[2],
                         .plugin_dirs = dirs.v,
                         .n_plugin_dirs = dirs.n,
                         .from = from,
                         .self = argv[1]};
        rc = sup_run(job, &o);
        topo_free(job);
    }
    reg_free(reg);
out:
    cli_dirs_free(&dirs);
    return rc;
}
