/*
 * cmd_state.c - `weir state`: offline tools for checkpointed keyed state
 * (host/statetool/).
 *
 *   weir state ls [--json] [--exact] CHECKPOINT
 *   weir state dump CHECKPOINT --operator ID (--state NAME | --timers)
 *                   [--key K] [--format text|jsonl]
 *                   [--value-format msgpack|int64|base64]
 *   weir state bootstrap [--dir D]... --job JOB.yaml --operator ID
 *                   --state NAME --from DATA.jsonl --out SAVEPOINT_DIR
 *                   [--parallelism N] [--kind value|map|list]
 *                   [--value-format msgpack|int64|base64]
 *                   [--expiry-time processing|event]
 *
 * CHECKPOINT is a chk-<id> or savepoint directory, a run directory (its
 * newest valid checkpoint) or a job's checkpoint directory (its newest run
 * with checkpoints). Exit codes: 0 ok, 1 the checkpoint is damaged
 * or cannot be read or written, 2 bad usage or bad input (an unknown
 * operator or state, a bad input line).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "statetool/bootstrap.h"
#include "statetool/inspect.h"
#include "topology/topology.h"

static void state_usage(FILE *f)
{
    fputs("usage: weir state ls [--json] [--exact] CHECKPOINT\n"
          "       weir state dump CHECKPOINT --operator ID (--state NAME | "
          "--timers)\n"
          "                 [--key K] [--format text|jsonl]\n"
          "                 [--value-format msgpack|int64|base64]\n"
          "       weir state bootstrap [--dir D]... --job JOB.yaml "
          "--operator ID\n"
          "                 --state NAME --from DATA.jsonl --out "
          "SAVEPOINT_DIR\n"
          "                 [--parallelism N] [--kind value|map|list]\n"
          "                 [--value-format msgpack|int64|base64]\n"
          "                 [--expiry-time processing|event]\n"
          "CHECKPOINT is a chk-<id> or savepoint directory, a run "
          "directory (its newest\nvalid checkpoint) or a job's checkpoint "
          "directory (<checkpoint.dir>/<job>: its\nnewest run with "
          "checkpoints). Nothing in a checkpoint is ever written.\n",
          f);
}

/* Exit code of a statetool error. */
static int state_exit(int rc)
{
    return rc == WEIR_EINVAL || rc == WEIR_ENOTFOUND ? CLI_EXIT_USAGE
                                                     : CLI_EXIT_FAILED;
}

static int state_fail(const char *sub, int rc, char *err)
{
    fprintf(stderr, "weir state %s: %s\n", sub, err ? err : weir_strerror(rc));
    free(err);
    return state_exit(rc);
}

/* The value of an option that takes one: a non-empty string. Returns 0,
 * or -1 after printing that it is empty. */
static int state_value(const char *sub, const char *name, const char **dst)
{
    char cmd[32];
    snprintf(cmd, sizeof cmd, "weir state %s", sub);
    *dst = optarg;
    return cli_need_value(cmd, name, optarg);
}

/* ------------------------------------------------------------------------ */
/* ls                                                                        */
/* ------------------------------------------------------------------------ */

static void state_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm))
        snprintf(buf, cap, "%" PRId64 " ms", ms);
    else
        snprintf(buf + strlen(buf), cap - strlen(buf), ".%03dZ",
                 (int)(ms % 1000));
}

static json_int_t jint(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void state_print_cf(const char *what, json_t *o)
{
    printf("  %s ~%" JSON_INTEGER_FORMAT, what, jint(o, "est_entries"));
    if (json_object_get(o, "entries"))
        printf(" (%" JSON_INTEGER_FORMAT ")", jint(o, "entries"));
}

/* A state's TTL override (weir ctl ... state ttl), if it has one. */
static void state_print_ttl(json_t *o)
{
    if (!json_is_object(o))
        return;
    if (json_is_true(json_object_get(o, "damaged"))) {
        printf("        TTL override: record damaged\n");
        return;
    }
    char set[64];
    state_time(jint(o, "set_ms"), set, sizeof set);
    printf("        TTL override: %" JSON_INTEGER_FORMAT
           " ms in %s time, set %s%s\n",
           jint(o, "ttl_ms"), json_string_value(json_object_get(o, "time")),
           set,
           json_is_true(json_object_get(o, "rewrite_pending"))
               ? " (rewrite of existing entries in progress)"
               : "");
}

static void state_print_task(json_t *t)
{
    printf("  #%" JSON_INTEGER_FORMAT, jint(t, "index"));
    json_t *kg = json_object_get(t, "key_groups");
    if (kg)
        printf("  key groups %" JSON_INTEGER_FORMAT "-%" JSON_INTEGER_FORMAT,
               json_integer_value(json_array_get(kg, 0)),
               json_integer_value(json_array_get(kg, 1)));
    if (json_is_string(json_object_get(t, "snapshot")))
        printf("  snapshot %" JSON_INTEGER_FORMAT
               " bytes (version %" JSON_INTEGER_FORMAT ")",
               jint(t, "snapshot_bytes"), jint(t, "snapshot_version"));
    if (kg) {
        printf("  state %" JSON_INTEGER_FORMAT " bytes",
               jint(t, "state_bytes"));
        state_print_cf("timers", json_object_get(t, "timers"));
        state_print_cf("expiry index", json_object_get(t, "expiry_index"));
    }
    printf("\n");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(t, "states"), i, s)
    {
        printf("      state '%s' (%s, format version %" JSON_INTEGER_FORMAT
               "): ~%" JSON_INTEGER_FORMAT " entries",
               json_string_value(json_object_get(s, "name")),
               json_string_value(json_object_get(s, "kind")),
               jint(s, "format_version"), jint(s, "est_entries"));
        if (json_object_get(s, "entries"))
            printf(" (exactly %" JSON_INTEGER_FORMAT ")", jint(s, "entries"));
        printf(", %" JSON_INTEGER_FORMAT
               " bytes in SST files; delta: %" JSON_INTEGER_FORMAT
               " values, %" JSON_INTEGER_FORMAT " deletions\n",
               jint(s, "sst_bytes"), jint(s, "delta_puts"),
               jint(s, "delta_deletes"));
        state_print_ttl(json_object_get(s, "ttl_override"));
    }
}

static void state_print_ls(json_t *root)
{
    char trig[64], done[64];
    state_time(jint(root, "triggered_ms"), trig, sizeof trig);
    state_time(jint(root, "completed_ms"), done, sizeof done);
    printf("%s %" JSON_INTEGER_FORMAT " of job '%s' (%s)\n",
           json_is_true(json_object_get(root, "savepoint")) ? "savepoint"
                                                            : "checkpoint",
           jint(root, "id"), json_string_value(json_object_get(root, "job")),
           json_string_value(json_object_get(root, "path")));
    printf("triggered %s, completed %s, max_parallelism %" JSON_INTEGER_FORMAT
           "%s\n",
           trig, done, jint(root, "max_parallelism"),
           json_is_true(json_object_get(root, "final"))
               ? ", final (the job had finished)"
               : "");
    size_t i;
    json_t *op;
    json_array_foreach(json_object_get(root, "operators"), i, op)
    {
        printf("operator %s, parallelism %" JSON_INTEGER_FORMAT "\n",
               json_string_value(json_object_get(op, "id")),
               jint(op, "parallelism"));
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(op, "subtasks"), k, t)
            state_print_task(t);
    }
}

static int state_ls(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0, exact = 0, opt;
    static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                             {"exact", no_argument, NULL, 'e'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    cli_getopt_reset();
    while ((opt = cli_getopt("weir state ls", argc, argv, "jeh", longopts)) !=
           -1) {
        if (opt == 'j') {
            json = 1;
        } else if (opt == 'e') {
            exact = 1;
        } else if (opt == 'h') {
            state_usage(stdout);
            return CLI_EXIT_OK;
        } else {
            state_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (optind < argc)
        path = argv[optind];
    if (!path || argc - optind > 1) {
        if (path)
            fprintf(stderr, "weir state ls: one CHECKPOINT at a time\n");
        state_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    insp_ckpt *c = NULL;
    json_t *root = NULL;
    char *err = NULL;
    int rc = insp_open(path, &c, &err);
    if (rc == 0)
        rc = insp_ls(c, exact, &root, &err);
    insp_close(c);
    if (rc < 0)
        return state_fail("ls", rc == WEIR_EINVAL ? rc : WEIR_EIO, err);
    if (json) {
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            printf("%s\n", text);
        free(text);
    } else {
        state_print_ls(root);
    }
    json_decref(root);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* dump                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct dump_out {
    int jsonl;
} dump_out;

static void dump_field(json_t *e, const char *k, const char *sep)
{
    char *s = json_dumps(json_object_get(e, k), JSON_COMPACT | JSON_ENCODE_ANY);
    printf("%s%s", s ? s : "?", sep);
    free(s);
}

static int dump_entry(void *arg, json_t *e)
{
    const dump_out *o = arg;
    if (o->jsonl) {
        char *s = json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
            return WEIR_ENOMEM;
        puts(s);
        free(s);
        return ferror(stdout) ? WEIR_EIO : 0;
    }
    printf("#%" JSON_INTEGER_FORMAT " kg %" JSON_INTEGER_FORMAT "  ",
           jint(e, "subtask"), jint(e, "key_group"));
    dump_field(e, "key", "  ");
    if (json_object_get(e, "ts")) {
        printf("%s timer at ", json_string_value(json_object_get(e, "domain")));
        dump_field(e, "ts", "\n");
        return 0;
    }
    if (json_object_get(e, "user_key"))
        dump_field(e, "user_key", " -> ");
    dump_field(e, "value", "  ");
    json_t *x = json_object_get(e, "expiry");
    if (json_is_null(x)) {
        printf("never expires\n");
    } else {
        char t[64];
        state_time(json_integer_value(x), t, sizeof t);
        printf("expires %s\n", t);
    }
    return ferror(stdout) ? WEIR_EIO : 0;
}

typedef struct dump_args {
    const char *path, *op, *state, *key, *format, *vformat;
    int timers;
} dump_args;

enum { DUMP_OPT_VFORMAT = 256 };

/* Returns 0, 1 after printing the usage for --help, or -1 after printing
 * why the arguments are wrong. */
static int dump_parse(int argc, char **argv, dump_args *a)
{
    static const struct option longopts[] = {
        {"operator", required_argument, NULL, 'o'},
        {"state", required_argument, NULL, 's'},
        {"key", required_argument, NULL, 'k'},
        {"format", required_argument, NULL, 'F'},
        {"value-format", required_argument, NULL, DUMP_OPT_VFORMAT},
        {"timers", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c, r = 0;
    cli_getopt_reset();
    while (r == 0 && (c = cli_getopt("weir state dump", argc, argv,
                                     "o:s:k:F:th", longopts)) != -1) {
        switch (c) {
        case 'o': r = state_value("dump", "operator", &a->op); break;
        case 's': r = state_value("dump", "state", &a->state); break;
        case 'k': r = state_value("dump", "key", &a->key); break;
        case 'F': r = state_value("dump", "format", &a->format); break;
        case DUMP_OPT_VFORMAT:
            r = state_value("dump", "value-format", &a->vformat);
            break;
        case 't': a->timers = 1; break;
        case 'h': state_usage(stdout); return 1;
        default: return -1;
        }
    }
    if (r < 0)
        return -1;
    if (optind < argc)
        a->path = argv[optind];
    if (argc - optind > 1) {
        fprintf(stderr, "weir state dump: unexpected argument '%s'\n",
                argv[optind + 1]);
        return -1;
    }
    const char *bad = !a->path ? "a CHECKPOINT is needed"
                      : !a->op ? "--operator is needed"
                      : !a->state == !a->timers
                          ? "give either --state NAME or --timers"
                      : a->format && strcmp(a->format, "text") != 0 &&
                              strcmp(a->format, "jsonl") != 0
                          ? "--format is text or jsonl"
                          : NULL;
    if (bad)
        fprintf(stderr, "weir state dump: %s\n", bad);
    return bad ? -1 : 0;
}

static int state_dump(int argc, char **argv)
{
    dump_args a = {0};
    insp_dump_opts o = {0};
    int pr = dump_parse(argc, argv, &a);
    if (pr > 0)
        return CLI_EXIT_OK;
    if (pr < 0) {
        state_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (a.vformat && mpj_format_parse(a.vformat, &o.format) < 0) {
        fprintf(stderr,
                "weir state dump: --value-format is msgpack, int64 or "
                "base64, not '%s'\n",
                a.vformat);
        return CLI_EXIT_USAGE;
    }
    o.op_id = a.op;
    o.state = a.state;
    o.timers = a.timers;
    o.key = a.key;
    o.key_len = a.key ? strlen(a.key) : 0;
    dump_out out = {.jsonl = a.format && strcmp(a.format, "jsonl") == 0};
    insp_ckpt *c = NULL;
    char *err = NULL;
    uint64_t n = 0;
    int rc = insp_open(a.path, &c, &err);
    if (rc < 0) {
        insp_close(c);
        return state_fail("dump", rc == WEIR_EINVAL ? rc : WEIR_EIO, err);
    }
    rc = insp_dump(c, &o, dump_entry, &out, &n, &err);
    insp_close(c);
    if (fflush(stdout) != 0 && rc == 0)
        rc = WEIR_EIO;
    if (rc < 0)
        return state_fail("dump", rc, err);
    fprintf(stderr, "weir state dump: %" PRIu64 " %s\n", n,
            a.timers ? "timers" : "entries");
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* bootstrap                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct boot_args {
    cli_dirs dirs;
    const char *job, *op, *state, *from, *out, *par, *kind, *vformat, *etime;
} boot_args;

enum { BOOT_OPT_KIND = 256, BOOT_OPT_VFORMAT, BOOT_OPT_ETIME };

/* Returns 0, 1 after printing the usage for --help, or -1 after printing
 * why the arguments are wrong. */
static int boot_parse(int argc, char **argv, boot_args *a)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"job", required_argument, NULL, 'j'},
        {"operator", required_argument, NULL, 'o'},
        {"state", required_argument, NULL, 's'},
        {"from", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'O'},
        {"parallelism", required_argument, NULL, 'p'},
        {"kind", required_argument, NULL, BOOT_OPT_KIND},
        {"value-format", required_argument, NULL, BOOT_OPT_VFORMAT},
        {"expiry-time", required_argument, NULL, BOOT_OPT_ETIME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c, r = 0;
    cli_getopt_reset();
    while (r == 0 && (c = cli_getopt("weir state bootstrap", argc, argv,
                                     "d:j:o:s:f:O:p:h", longopts)) != -1) {
        switch (c) {
        case 'd': r = cli_dir_add(&a->dirs, optarg); break;
        case 'j': r = state_value("bootstrap", "job", &a->job); break;
        case 'o': r = state_value("bootstrap", "operator", &a->op); break;
        case 's': r = state_value("bootstrap", "state", &a->state); break;
        case 'f': r = state_value("bootstrap", "from", &a->from); break;
        case 'O': r = state_value("bootstrap", "out", &a->out); break;
        case 'p': r = state_value("bootstrap", "parallelism", &a->par); break;
        case BOOT_OPT_KIND:
            r = state_value("bootstrap", "kind", &a->kind);
            break;
        case BOOT_OPT_VFORMAT:
            r = state_value("bootstrap", "value-format", &a->vformat);
            break;
        case BOOT_OPT_ETIME:
            r = state_value("bootstrap", "expiry-time", &a->etime);
            break;
        case 'h': state_usage(stdout); return 1;
        default: return -1;
        }
    }
    if (r < 0)
        return -1;
    if (optind < argc) {
        fprintf(stderr, "weir state bootstrap: unexpected argument '%s'\n",
                argv[optind]);
        return -1;
    }
    const char *need[] = {a->job, a->op, a->state, a->from, a->out};
    const char *names[] = {"--job", "--operator", "--state", "--from", "--out"};
    for (int k = 0; k < 5; k++)
        if (!need[k]) {
            fprintf(stderr, "weir state bootstrap: %s is needed\n", names[k]);
            return -1;
        }
    return 0;
}

/* The options' values that are not strings; -1 after printing why. */
static int boot_values(const boot_args *a, boot_options *o)
{
    if (a->par) {
        char *end = NULL;
        errno = 0;
        long v = strtol(a->par, &end, 10);
        if (errno || *end || v < 1 || v > INT32_MAX) {
            fprintf(stderr,
                    "weir state bootstrap: --parallelism needs a "
                    "number from 1, not '%s'\n",
                    a->par);
            return -1;
        }
        o->parallelism = (uint32_t)v;
    }
    if (a->kind) {
        static const char *const kinds[] = {"value", "map", "list"};
        for (int k = 0; k < 3; k++)
            if (strcmp(a->kind, kinds[k]) == 0)
                o->kind = (weir_state_kind)(WEIR_STATE_VALUE + k);
        if (!o->kind) {
            fprintf(stderr,
                    "weir state bootstrap: --kind is value, map or "
                    "list, not '%s'\n",
                    a->kind);
            return -1;
        }
    }
    if (a->vformat && mpj_format_parse(a->vformat, &o->format) < 0) {
        fprintf(stderr,
                "weir state bootstrap: --value-format is msgpack, "
                "int64 or base64, not '%s'\n",
                a->vformat);
        return -1;
    }
    if (a->etime && strcmp(a->etime, "processing") != 0 &&
        strcmp(a->etime, "event") != 0) {
        fprintf(stderr,
                "weir state bootstrap: --expiry-time is processing or "
                "event, not '%s'\n",
                a->etime);
        return -1;
    }
    o->ttl_domain = a->etime && strcmp(a->etime, "event") == 0
                        ? WEIR_TIME_EVENT
                        : WEIR_TIME_PROCESSING;
    return 0;
}

static int state_bootstrap(int argc, char **argv)
{
    boot_args a = {0};
    boot_options o = {0};
    reg_registry *reg = NULL;
    topo_job *job = NULL;
    char *err = NULL;
    int rc = CLI_EXIT_USAGE;
    int pr = boot_parse(argc, argv, &a);
    if (pr > 0) {
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (pr < 0 || boot_values(&a, &o) < 0) {
        state_usage(stderr);
        goto out;
    }
    if (cli_load_plugins(&reg, a.dirs.v, a.dirs.n) < 0)
        goto out;
    if (topo_load_file(a.job, reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err ? err : "cannot load the job");
        free(err);
        goto out;
    }
    o.job = job;
    o.op_id = a.op;
    o.state = a.state;
    o.input = a.from;
    o.out = a.out;
    boot_stats st;
    int r = boot_savepoint(&o, &st, &err);
    if (r < 0) {
        rc = state_fail("bootstrap", r, err);
        goto out;
    }
    printf("savepoint %s: operator '%s' state '%s', %" PRIu64 " keys, %" PRIu64
           " entries over %u subtasks\n",
           a.out, a.op, a.state, st.keys, st.entries, st.parallelism);
    rc = CLI_EXIT_OK;
out:
    topo_free(job);
    reg_free(reg);
    cli_dirs_free(&a.dirs);
    return rc;
}

int cmd_state(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int c;
    /* '+': the options after ls, dump or bootstrap are theirs. */
    cli_getopt_reset();
    while ((c = cli_getopt("weir state", argc, argv, "+h", longopts)) != -1) {
        if (c == 'h') {
            state_usage(stdout);
            return CLI_EXIT_OK;
        }
        state_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (optind >= argc) {
        state_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    /* Each subcommand gets its own argv, argv[0] being its name. */
    const char *sub = argv[optind];
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    if (strcmp(sub, "ls") == 0)
        return state_ls(sub_argc, sub_argv);
    if (strcmp(sub, "dump") == 0)
        return state_dump(sub_argc, sub_argv);
    if (strcmp(sub, "bootstrap") == 0)
        return state_bootstrap(sub_argc, sub_argv);
    fprintf(stderr, "weir state: unknown subcommand '%s'\n", sub);
    state_usage(stderr);
    return CLI_EXIT_USAGE;
}
