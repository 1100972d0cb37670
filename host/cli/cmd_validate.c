/*
 * cmd_validate.c - `weir validate [--dir D]... JOB.yaml`: loads the plugins
 * and the topology, and prints either a summary of the job (exit 0) or the
 * first error as "FILE:LINE:COLUMN: field.path: message" (exit 2).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "topology/topology.h"

static void validate_usage(FILE *f)
{
    fputs("usage: weir validate [--dir D]... JOB.yaml\n"
          "Checks a topology file against the schema and the parameters of\n"
          "the loaded plugins, and prints its operators.\n",
          f);
}

static void validate_print_inputs(const topo_job *job, const topo_op *op)
{
    for (size_t j = 0; j < op->n_inputs; j++) {
        const topo_input *in = &op->inputs[j];
        const topo_op *prod = &job->ops[in->from];
        printf("%s%s", j ? ", " : "  <- ", prod->id);
        if (prod->reg->n_outputs > 1)
            printf(".%s", prod->reg->outputs[in->from_port]);
        printf(" (%s", topo_partition_name(in->partition));
        if (op->reg->n_inputs > 1)
            printf(", into %s", op->reg->inputs[in->to_port]);
        printf(")");
    }
}

static void validate_print(const char *path, const topo_job *job)
{
    size_t subtasks = 0, w_id = 2, w_type = 4;
    int w_par = 1;
    for (size_t k = 0; k < job->n_ops; k++) {
        const topo_op *op = &job->ops[k];
        subtasks += op->parallelism;
        if (strlen(op->id) > w_id)
            w_id = strlen(op->id);
        if (strlen(op->type) > w_type)
            w_type = strlen(op->type);
        int digits = snprintf(NULL, 0, "%u", op->parallelism);
        if (digits > w_par)
            w_par = digits;
    }
    printf("%s: ok (%zu operator%s, %zu subtask%s)\n", path, job->n_ops,
           job->n_ops == 1 ? "" : "s", subtasks, subtasks == 1 ? "" : "s");
    printf("job %s, max_parallelism %u\n", job->name, job->max_parallelism);
    for (size_t k = 0; k < job->n_ops; k++) {
        const topo_op *op = &job->ops[k];
        printf("  %-*s  %-*s  x%-*u", (int)w_id, op->id, (int)w_type, op->type,
               op->n_inputs ? w_par : 0, op->parallelism);
        validate_print_inputs(job, op);
        printf("\n");
    }
}

int cmd_validate(int argc, char **argv)
{
    cli_dirs dirs = {0};
    const char *path = NULL;
    int rc = CLI_EXIT_USAGE;
    reg_registry *reg = NULL;
    topo_job *job = NULL;
    char *err = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_parse_dir(argc, argv, &i, &dirs);
        if (r < 0)
            goto out;
        if (r > 0)
            continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            validate_usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "weir validate: unknown option '%s'\n", argv[i]);
            validate_usage(stderr);
            goto out;
        }
        if (path) {
            fprintf(stderr, "weir validate: one JOB.yaml at a time\n");
            validate_usage(stderr);
            goto out;
        }
        path = argv[i];
    }
    if (!path) {
        validate_usage(stderr);
        goto out;
    }
    if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
        goto out;
    if (topo_load_file(path, reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err : "cannot load the topology");
        if (err && strstr(err, "unknown operator type"))
            cli_note_rejected(reg);
        goto out;
    }
    validate_print(path, job);
    rc = CLI_EXIT_OK;
out:
    free(err);
    topo_free(job);
    reg_free(reg);
    cli_dirs_free(&dirs);
    return rc;
}
