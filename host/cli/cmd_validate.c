/*
 * cmd_validate.c - `weir validate [--dir D]... [--json] JOB.yaml...`: loads
 * the plugins, then checks each topology file and prints either a summary
 * of the job or every error of the file, one a line on stderr as
 * "FILE:LINE:COLUMN: field.path: message" (topo_check_file(): at most
 * TOPO_MAX_ERRORS, and a check that depends on a broken part is skipped).
 * With --json, stdout has one JSON array with an object per file instead
 * (validate_json()). Exit codes: 0 every file is valid, 2 bad usage or a
 * file is not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "topology/topology.h"

static void validate_usage(FILE *f)
{
    /* One write: a reader may take only the first. */
    if (f != stdout) {
        fputs("usage: weir validate [--dir D]... [--json] JOB.yaml...\nTry "
              "'weir validate --help' for more.\n",
              f);
        return;
    }
    fputs("usage: weir validate [--dir D]... [--json] JOB.yaml...\n", f);
    fputs("Checks topology files against the schema and the parameters of\n"
          "the loaded plugins, and prints the operators of each valid one\n"
          "or every error of each invalid one (FILE:LINE:COLUMN: field:\n"
          "message, on stderr).\n"
          "  -d, --dir D  add a plugin directory (repeatable)\n"
          "  -j, --json   print one JSON array with an object per file:\n"
          "               {file, valid, errors: [{line, column, field,\n"
          "               message}], truncated, operators, subtasks}\n"
          "  -h, --help   this text\n"
          "Exit codes: 0 every file is valid, 2 bad usage or invalid files.\n",
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

/* Whether any error of `errs` is an unknown operator type. */
static int validate_any_unknown_type(const topo_errors *errs)
{
    for (size_t k = 0; k < errs->n; k++)
        if (strstr(errs->v[k].msg, "unknown operator type"))
            return 1;
    return 0;
}

/*
 * The JSON object of one file:
 *   {"file": F, "valid": true, "job": NAME, "operators": N, "subtasks": N,
 *    "errors": []}
 *   {"file": F, "valid": false, "truncated": B, "errors": [{"line": L,
 *    "column": C, "field": P or null, "message": M, "text": LINE}]}
 * line and column are null when the error has no position; text is the
 * whole line as printed without --json.
 */
static json_t *validate_json(const char *path, const topo_job *job,
                             const topo_errors *errs)
{
    json_t *o = json_object();
    json_t *list = json_array();
    if (!o || !list) {
        json_decref(o);
        json_decref(list);
        return NULL;
    }
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "valid", json_boolean(job != NULL));
    if (job) {
        size_t subtasks = 0;
        for (size_t k = 0; k < job->n_ops; k++)
            subtasks += job->ops[k].parallelism;
        json_object_set_new(o, "job", json_string(job->name));
        json_object_set_new(o, "operators",
                            json_integer((json_int_t)job->n_ops));
        json_object_set_new(o, "subtasks", json_integer((json_int_t)subtasks));
    } else {
        json_object_set_new(o, "truncated", json_boolean(errs->truncated));
    }
    for (size_t k = 0; k < errs->n; k++) {
        const topo_error *e = &errs->v[k];
        json_t *je =
            json_pack("{s:o, s:o, s:o, s:s, s:s}", "line",
                      e->line ? json_integer(e->line) : json_null(), "column",
                      e->line ? json_integer(e->col) : json_null(), "field",
                      e->field ? json_string(e->field) : json_null(), "message",
                      e->what, "text", e->msg);
        if (je)
            json_array_append_new(list, je);
    }
    json_object_set_new(o, "errors", list);
    return o;
}

/* Checks one file; prints its summary or errors unless `out` (--json)
 * takes its object. Returns 1 when it is valid, 0 when not, -1 when memory
 * ran out. */
static int validate_one(const char *path, const reg_registry *reg, json_t *out,
                        int *noted)
{
    topo_job *job = NULL;
    topo_errors errs = {0};
    int rc = topo_check_file(path, reg, &job, &errs);
    if (rc == WEIR_ENOMEM && errs.n == 0) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    if (out) {
        json_t *o = validate_json(path, job, &errs);
        if (!o || json_array_append_new(out, o) < 0)
            rc = WEIR_ENOMEM;
    } else if (job) {
        validate_print(path, job);
    } else {
        for (size_t k = 0; k < errs.n; k++)
            fprintf(stderr, "%s\n", errs.v[k].msg);
        if (errs.truncated)
            fprintf(stderr, "%s: stopped after %d errors\n", path,
                    TOPO_MAX_ERRORS);
        else if (errs.n > 1)
            fprintf(stderr, "%s: %zu errors\n", path, errs.n);
    }
    if (!job && !*noted && validate_any_unknown_type(&errs)) {
        cli_note_rejected(reg);
        *noted = 1;
    }
    int valid = job != NULL;
    topo_free(job);
    topo_errors_free(&errs);
    return rc == WEIR_ENOMEM ? -1 : valid;
}

int cmd_validate(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    cli_dirs dirs = {0};
    int rc = CLI_EXIT_USAGE, c, json = 0, noted = 0;
    reg_registry *reg = NULL;
    json_t *out = NULL;
    cli_getopt_reset();
    while ((c = cli_getopt("weir validate", argc, argv, "d:jh", longopts)) !=
           -1) {
        if (c == 'd' && cli_dir_add(&dirs, optarg) == 0)
            continue;
        if (c == 'j') {
            json = 1;
            continue;
        }
        if (c == 'h') {
            validate_usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        validate_usage(stderr);
        goto out;
    }
    if (optind >= argc) {
        validate_usage(stderr);
        goto out;
    }
    if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
        goto out;
    if (json && !(out = json_array())) {
        fprintf(stderr, "weir validate: out of memory\n");
        rc = CLI_EXIT_FAILED;
        goto out;
    }
    rc = CLI_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int v = validate_one(argv[i], reg, out, &noted);
        if (v < 0) {
            rc = CLI_EXIT_FAILED;
            goto out;
        }
        if (v == 0)
            rc = CLI_EXIT_USAGE;
    }
    if (out && json_dumpf(out, stdout, JSON_INDENT(2)) == 0)
        fputc('\n', stdout);
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAILED;
out:
    json_decref(out);
    reg_free(reg);
    cli_dirs_free(&dirs);
    return rc;
}
