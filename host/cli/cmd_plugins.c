/*
 * cmd_plugins.c - `weir plugins [--dir D]... [NAME] [--json]`: lists the
 * loaded operators, or describes one with its parameter table, as text or
 * JSON (like gst-inspect).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_common.h"

static void plugins_usage(FILE *f)
{
    /* One write: a reader may take only the first. */
    if (f != stdout) {
        fputs("usage: weir plugins [--dir D]... [NAME] [--json]\nTry 'weir "
              "plugins --help' for more.\n",
              f);
        return;
    }
    fputs("usage: weir plugins [--dir D]... [NAME] [--json]\n", f);
    fputs("  -d, --dir D  add a plugin directory (repeatable)\n"
          "  -j, --json   print JSON\n"
          "  -h, --help   this text\n"
          "\n"
          "Without NAME, lists every operator (name, version, plugin file,\n"
          "description). With NAME, describes that operator: plugin, flags,\n"
          "ports and parameters. --json prints the same as JSON: an array of\n"
          "operator objects, or one object with NAME.\n"
          "--dir D adds the plugins of D (repeatable; they override bundled\n"
          "operators of the same name) to the default directories, when\n"
          "they exist: BIN/../plugins and BIN/../lib/weir/plugins (BIN is\n"
          "the folder of the weir binary); never the current directory.\n"
          "WEIR_NO_DEFAULT_PLUGINS=1 loads only the --dir directories.\n"
          "Each file is first loaded in a child process (time-out 5 s, or\n"
          "WEIR_PLUGIN_PROBE_TIMEOUT_MS); one that crashes or hangs there\n"
          "is reported and skipped.\n",
          f);
}

static const char *plugins_type_name(weir_param_type t)
{
    switch (t) {
    case WEIR_PARAM_BOOL: return "bool";
    case WEIR_PARAM_INT: return "int";
    case WEIR_PARAM_DOUBLE: return "double";
    case WEIR_PARAM_STRING: return "string";
    case WEIR_PARAM_DURATION: return "duration";
    case WEIR_PARAM_SIZE: return "size";
    case WEIR_PARAM_ENUM: return "enum";
    case WEIR_PARAM_ANY: return "any";
    }
    return "unknown";
}

/* The unit min and max are given in, or "". */
static const char *plugins_unit(weir_param_type t)
{
    if (t == WEIR_PARAM_DURATION)
        return " ms";
    if (t == WEIR_PARAM_SIZE)
        return " bytes";
    return "";
}

static int plugins_is_integral(double d)
{
    return d > -1e15 && d < 1e15 && (double)(int64_t)d == d;
}

static void plugins_print_number(FILE *f, double d)
{
    if (plugins_is_integral(d))
        fprintf(f, "%lld", (long long)d);
    else
        fprintf(f, "%g", d);
}

static const char *plugins_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static const char *plugins_str(const char *s)
{
    return s ? s : "";
}

/* ------------------------------------------------------------------------ */
/* Text                                                                      */
/* ------------------------------------------------------------------------ */

static void plugins_print_list(const reg_registry *reg)
{
    size_t n = reg_count(reg);
    int wn = 4, wv = 7, wf = 6;
    for (size_t i = 0; i < n; i++) {
        const reg_operator *o = reg_get(reg, i);
        int l = (int)strlen(o->op.name);
        wn = l > wn ? l : wn;
        l = (int)strlen(plugins_str(o->op.version));
        wv = l > wv ? l : wv;
        l = (int)strlen(plugins_basename(o->plugin->path));
        wf = l > wf ? l : wf;
    }
    for (size_t i = 0; i < n; i++) {
        const reg_operator *o = reg_get(reg, i);
        const char *desc = plugins_str(o->op.description);
        printf("%-*s  %-*s  %-*s%s%s\n", wn, o->op.name, wv,
               o->op.version ? o->op.version : "-", desc[0] ? wf : 0,
               plugins_basename(o->plugin->path), desc[0] ? "  " : "", desc);
    }
}

static void plugins_print_names(const char *label, const char **names, size_t n)
{
    printf("%-13s", label);
    if (n == 0)
        printf("(none)");
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", names[i]);
    printf("\n");
}

/* The names of the broadcast input ports (at most 64). */
static size_t plugins_broadcast_names(const reg_operator *o, const char **out)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n_inputs && i < 64; i++)
        if (o->op.broadcast_inputs >> i & 1u)
            out[n++] = o->inputs[i];
    return n;
}

static void plugins_print_callbacks(const weir_operator *op)
{
    struct {
        const char *name;
        int set;
    } cb[] = {
        {"open", op->open != NULL},
        {"process", op->process != NULL},
        {"poll", op->poll != NULL},
        {"on_timer", op->on_timer != NULL},
        {"on_watermark", op->on_watermark != NULL},
        {"on_state_expired", op->on_state_expired != NULL},
        {"snapshot", op->snapshot != NULL},
        {"restore", op->restore != NULL},
        {"notify_checkpoint_complete", op->notify_checkpoint_complete != NULL},
        {"finish", op->finish != NULL},
        {"close", op->close != NULL},
        {"process_broadcast", op->process_broadcast != NULL},
        {"migrate_state", op->migrate_state != NULL},
        {"async_invoke", op->async_invoke != NULL},
        {"on_async_result", op->on_async_result != NULL},
    };
    printf("%-13s", "Callbacks:");
    int first = 1;
    for (size_t i = 0; i < sizeof cb / sizeof cb[0]; i++) {
        if (cb[i].set) {
            printf("%s%s", first ? "" : ", ", cb[i].name);
            first = 0;
        }
    }
    printf("\n");
}

static void plugins_print_param(const weir_param_def *d)
{
    printf("  %s\n      %s", d->name, plugins_type_name(d->type));
    if (d->type == WEIR_PARAM_ENUM && d->choices) {
        printf(" (");
        for (size_t i = 0; d->choices[i]; i++)
            printf("%s%s", i ? ", " : "", d->choices[i]);
        printf(")");
    }
    if (d->flags & WEIR_PARAM_REQUIRED)
        printf(", required");
    if (d->default_value)
        printf(", default %s", d->default_value);
    if (d->flags & WEIR_PARAM_HAS_MIN) {
        printf(", min ");
        plugins_print_number(stdout, d->min);
        printf("%s", plugins_unit(d->type));
    }
    if (d->flags & WEIR_PARAM_HAS_MAX) {
        printf(", max ");
        plugins_print_number(stdout, d->max);
        printf("%s", plugins_unit(d->type));
    }
    printf("\n");
    if (d->description && d->description[0])
        printf("      %s\n", d->description);
}

static void plugins_print_detail(const reg_operator *o)
{
    const weir_operator *op = &o->op;
    const weir_plugin *pl = &o->plugin->desc;
    printf("%-13s%s\n", "Operator:", op->name);
    printf("%-13s%s\n", "Version:", op->version ? op->version : "-");
    printf("%-13s%s\n", "Description:", plugins_str(op->description));
    printf("%-13s%s\n", "Plugin file:", o->plugin->path);
    printf("%-13s%s %s (ABI %u.%u)\n", "Plugin:", pl->name ? pl->name : "-",
           pl->version ? pl->version : "-", pl->abi_major, pl->abi_minor);
    int source = (op->flags & WEIR_OP_SOURCE) != 0;
    int keyed = (op->flags & WEIR_OP_KEYED) != 0;
    printf("%-13s%s%s%s\n", "Flags:", source ? "source" : "",
           source && keyed ? ", " : "", keyed ? "keyed" : "");
    plugins_print_names("Inputs:", o->inputs, o->n_inputs);
    if (op->broadcast_inputs) {
        const char *b[64];
        size_t n = plugins_broadcast_names(o, b);
        plugins_print_names("Broadcast:", b, n);
    }
    plugins_print_names("Outputs:", o->outputs, o->n_outputs);
    plugins_print_callbacks(op);
    if (op->snapshot)
        printf("%-13s%u\n", "Snapshot:", op->snapshot_version);
    printf("\nParameters:\n");
    if (o->n_params == 0)
        printf("  (none)\n");
    for (size_t i = 0; i < o->n_params; i++)
        plugins_print_param(o->params[i]);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static json_t *plugins_json_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *plugins_json_names(const char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

static json_t *plugins_json_number(weir_param_type t, double d)
{
    if (t != WEIR_PARAM_DOUBLE && plugins_is_integral(d))
        return json_integer((json_int_t)d);
    return json_real(d);
}

static json_t *plugins_json_param(const weir_param_def *d)
{
    json_t *p = json_object();
    if (!p)
        return NULL;
    json_object_set_new(p, "name", json_string(d->name));
    json_object_set_new(p, "type", json_string(plugins_type_name(d->type)));
    json_object_set_new(p, "required",
                        json_boolean(d->flags & WEIR_PARAM_REQUIRED));
    json_object_set_new(p, "default", plugins_json_str(d->default_value));
    if (d->flags & WEIR_PARAM_HAS_MIN)
        json_object_set_new(p, "min", plugins_json_number(d->type, d->min));
    if (d->flags & WEIR_PARAM_HAS_MAX)
        json_object_set_new(p, "max", plugins_json_number(d->type, d->max));
    if (d->type == WEIR_PARAM_ENUM && d->choices) {
        json_t *c = json_array();
        for (size_t i = 0; c && d->choices[i]; i++)
            json_array_append_new(c, json_string(d->choices[i]));
        json_object_set_new(p, "choices", c);
    }
    json_object_set_new(p, "description", plugins_json_str(d->description));
    return p;
}

static json_t *plugins_json_operator(const reg_operator *o)
{
    const weir_operator *op = &o->op;
    const weir_plugin *pl = &o->plugin->desc;
    json_t *j = json_object();
    json_t *plugin = json_object();
    json_t *params = json_array();
    if (!j || !plugin || !params) {
        json_decref(j);
        json_decref(plugin);
        json_decref(params);
        return NULL;
    }
    json_object_set_new(j, "name", json_string(op->name));
    json_object_set_new(j, "version", plugins_json_str(op->version));
    json_object_set_new(j, "description", plugins_json_str(op->description));
    json_object_set_new(plugin, "file", json_string(o->plugin->path));
    json_object_set_new(plugin, "name", plugins_json_str(pl->name));
    json_object_set_new(plugin, "version", plugins_json_str(pl->version));
    json_object_set_new(plugin, "description",
                        plugins_json_str(pl->description));
    json_object_set_new(plugin, "abi_major", json_integer(pl->abi_major));
    json_object_set_new(plugin, "abi_minor", json_integer(pl->abi_minor));
    json_object_set_new(j, "plugin", plugin);
    json_object_set_new(j, "source", json_boolean(op->flags & WEIR_OP_SOURCE));
    json_object_set_new(j, "keyed", json_boolean(op->flags & WEIR_OP_KEYED));
    json_object_set_new(j, "inputs",
                        plugins_json_names(o->inputs, o->n_inputs));
    const char *b[64];
    size_t nb = plugins_broadcast_names(o, b);
    json_object_set_new(j, "broadcast_inputs", plugins_json_names(b, nb));
    json_object_set_new(j, "outputs",
                        plugins_json_names(o->outputs, o->n_outputs));
    json_object_set_new(j, "snapshot_version",
                        json_integer(op->snapshot_version));
    for (size_t i = 0; i < o->n_params; i++)
        json_array_append_new(params, plugins_json_param(o->params[i]));
    json_object_set_new(j, "params", params);
    return j;
}

static int plugins_print_json(json_t *j)
{
    if (!j) {
        fprintf(stderr, "weir plugins: out of memory\n");
        return CLI_EXIT_FAILED;
    }
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    printf("\n");
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILED;
}

static int plugins_json_list(const reg_registry *reg)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < reg_count(reg); i++) {
        json_t *o = plugins_json_operator(reg_get(reg, i));
        if (!o || json_array_append_new(a, o) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return plugins_print_json(a);
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */
/* ------------------------------------------------------------------------ */

static int plugins_unknown(const reg_registry *reg, const char *name)
{
    const reg_operator *hint = reg_suggest(reg, name);
    if (hint)
        fprintf(stderr,
                "weir plugins: no operator named '%s'; did you mean '%s'?\n",
                name, hint->op.name);
    else
        fprintf(stderr,
                "weir plugins: no operator named '%s' (%zu loaded; run "
                "'weir plugins' to list them)\n",
                name, reg_count(reg));
    cli_note_rejected(reg);
    return CLI_EXIT_USAGE;
}

int cmd_plugins(int argc, char **argv)
{
    cli_dirs dirs = {0};
    const char *name = NULL;
    int json = 0;
    int rc = CLI_EXIT_USAGE;
    reg_registry *reg = NULL;
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    cli_getopt_reset();
    while ((c = cli_getopt("weir plugins", argc, argv, "d:jh", longopts)) !=
           -1) {
        if (c == 'd' && cli_dir_add(&dirs, optarg) == 0)
            continue;
        if (c == 'j') {
            json = 1;
            continue;
        }
        if (c == 'h') {
            plugins_usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        plugins_usage(stderr);
        goto out;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "weir plugins: unexpected argument '%s'\n",
                argv[optind + 1]);
        plugins_usage(stderr);
        goto out;
    }
    if (optind < argc)
        name = argv[optind];
    if (cli_load_plugins(&reg, dirs.v, dirs.n) < 0)
        goto out;
    if (name) {
        const reg_operator *o = reg_find(reg, name);
        if (!o) {
            rc = plugins_unknown(reg, name);
            goto out;
        }
        if (json) {
            rc = plugins_print_json(plugins_json_operator(o));
            goto out;
        }
        plugins_print_detail(o);
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (json) {
        rc = plugins_json_list(reg);
        goto out;
    }
    if (reg_count(reg) == 0)
        fprintf(stderr, "weir plugins: no operators found\n");
    plugins_print_list(reg);
    rc = CLI_EXIT_OK;
out:
    if (fflush(stdout) != 0 && rc == CLI_EXIT_OK)
        rc = CLI_EXIT_FAILED;
    reg_free(reg);
    cli_dirs_free(&dirs);
    return rc;
}
