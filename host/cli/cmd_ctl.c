/*
 * cmd_ctl.c - `weir ctl`: talks to a running job's control endpoint
 * (control/control.h).
 *
 *   weir ctl [--dir D]... [--timeout T] TARGET COMMAND [ARGS]
 *
 * TARGET is a run directory (<checkpoint.dir>/<job>/<run id>), a job's
 * checkpoint directory (<checkpoint.dir>/<job>: its newest run with a live
 * endpoint), or the job file (its checkpoint.dir and job name; --dir adds
 * plugin directories to load it). COMMAND is one of
 *   status [--json] [--watch [SECONDS]]
 *   checkpoint
 *   savepoint [DIR]
 *   stop [--savepoint [DIR]]
 *   cancel
 *   state ttl OPERATOR STATE DURATION [--time event|processing]
 *   state purge OPERATOR STATE (--prefix P | --older-than D | --all)
 *   state stats [OPERATOR]
 * A savepoint without DIR goes to <checkpoint.dir>/<job>/savepoints/.
 * `state ttl` and `state purge` are applied by every subtask of the
 * operator at the next checkpoint barrier and answered when that
 * checkpoint completed (runtime/keyed.h); `state` commands take --json.
 * Exit codes: 0 done, 1 the job refused or the request failed, 2 bad
 * usage, 3 no running job answered at TARGET.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/cli_common.h"
#include "common/err.h"
#include "common/fs.h"
#include "control/control.h"
#include "topology/topology.h"

#define CTL_EXIT_UNREACHABLE 3
/* How long commands that wait for a checkpoint may take by default. */
#define CTL_LONG_MS          (15 * 60 * 1000)
#define CTL_SHORT_MS         10000

static void ctl_usage(FILE *f)
{
    fputs("usage: weir ctl [--dir D]... [--timeout T] TARGET COMMAND [ARGS]\n"
          "  -d, --dir D      a plugin directory (repeatable), for a TARGET\n"
          "                   that is a job file\n"
          "  -t, --timeout T  how long to wait for the answer (a duration)\n"
          "  -h, --help       this text\n"
          "  TARGET: a run directory, a job's checkpoint directory, or the "
          "job file\n"
          "  COMMAND: status [--json] [--watch [SECONDS]] | checkpoint |\n"
          "           savepoint [DIR] | stop [--savepoint [DIR]] | cancel |\n"
          "           state ttl OPERATOR STATE DURATION "
          "[--time event|processing] |\n"
          "           state purge OPERATOR STATE "
          "(--prefix P | --older-than D | --all) |\n"
          "           state stats [OPERATOR]\n"
          "  state commands take --json.\n",
          f);
}

static int ctl_has_sock(const char *dir, char *out, size_t cap)
{
    static const char *const names[] = {CTL_SUPERVISOR_SOCK, CTL_WORKER_SOCK};
    struct stat st;
    for (int i = 0; i < 2; i++) {
        if (snprintf(out, cap, "%s/%s", dir, names[i]) >= (int)cap)
            return 0;
        if (stat(out, &st) == 0 && S_ISSOCK(st.st_mode))
            return 1;
    }
    return 0;
}

static int ctl_keep_run(const char *path, void *arg)
{
    char sock[PATH_MAX];
    (void)arg;
    return ctl_has_sock(path, sock, sizeof sock);
}

/* The newest run directory under job_dir with an endpoint (fs_newest_entry)
 * and its socket in sock. */
static int ctl_newest_run(const char *job_dir, char *sock, size_t cap)
{
    char *run = fs_newest_entry(job_dir, ctl_keep_run, NULL);
    int ok = run && ctl_has_sock(run, sock, cap);
    free(run);
    return ok;
}

/* The job's checkpoint directory named by a job file. */
static int ctl_job_dir_of(const char *file, const cli_dirs *dirs, char *out,
                          size_t cap)
{
    reg_registry *reg = NULL;
    topo_job *job = NULL;
    char *err = NULL;
    int rc = -1;
    if (cli_load_plugins(&reg, dirs->v, dirs->n) < 0)
        goto out;
    if (topo_load_file(file, reg, &job, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    const char *base = topo_param_str(&job->checkpoint, "dir");
    snprintf(out, cap, "%s/%s", base && *base ? base : ".", job->name);
    rc = 0;
out:
    free(err);
    topo_free(job);
    reg_free(reg);
    return rc;
}

/* Finds the socket to talk to; returns 0, or an exit code after printing
 * why. */
static int ctl_resolve(const char *target, const cli_dirs *dirs, char *sock,
                       size_t cap, char *job_dir, size_t jcap)
{
    struct stat st;
    if (stat(target, &st) < 0) {
        fprintf(stderr, "weir ctl: %s: %s\n", target, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    if (S_ISDIR(st.st_mode) && ctl_has_sock(target, sock, cap)) {
        snprintf(job_dir, jcap, "%s/..", target);
        return 0;
    }
    if (S_ISDIR(st.st_mode))
        snprintf(job_dir, jcap, "%s", target);
    else if (ctl_job_dir_of(target, dirs, job_dir, jcap) < 0)
        return CLI_EXIT_USAGE;
    if (ctl_newest_run(job_dir, sock, cap))
        return 0;
    fprintf(stderr,
            "weir ctl: no running job at %s (no control socket in it or in "
            "its run directories)\n",
            job_dir);
    return CTL_EXIT_UNREACHABLE;
}

/* An absolute path for a savepoint directory that need not exist yet. */
static int ctl_abs_dir(const char *dir, char *out, size_t cap)
{
    if (dir[0] == '/') {
        snprintf(out, cap, "%s", dir);
        return 0;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return -1;
    return snprintf(out, cap, "%s/%s", cwd, dir) >= (int)cap ? -1 : 0;
}

/* <job dir>/savepoints/savepoint-<UTC time>. */
static int ctl_default_savepoint(const char *job_dir, char *out, size_t cap)
{
    char abs[PATH_MAX], stamp[32];
    if (!realpath(job_dir, abs))
        return -1;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    return snprintf(out, cap, "%s/savepoints/savepoint-%s", abs, stamp) >=
                   (int)cap
               ? -1
               : 0;
}

static void ctl_print_states(json_t *states)
{
    size_t i;
    json_t *s;
    json_array_foreach(states, i, s)
    {
        json_t *ttl = json_object_get(s, "ttl_ms");
        char t[32];
        if (json_is_integer(ttl))
            snprintf(t, sizeof t, "ttl %lld ms",
                     (long long)json_integer_value(ttl));
        else
            snprintf(t, sizeof t, "no ttl");
        printf("      state %-16s %10lld keys %12lld bytes  %s%s\n",
               json_string_value(json_object_get(s, "name")),
               (long long)json_integer_value(json_object_get(s, "keys")),
               (long long)json_integer_value(json_object_get(s, "bytes")), t,
               json_is_true(json_object_get(s, "leak_suspected"))
                   ? "  PROBABLE LEAK"
                   : "");
    }
}

static void ctl_print_status(json_t *r)
{
    json_t *sup = json_object_get(r, "supervisor");
    json_t *ck = json_object_get(r, "checkpoints");
    const char *job = json_string_value(json_object_get(r, "job"));
    printf("job %s: %s", job ? job : "?",
           sup ? json_string_value(json_object_get(sup, "state")) : "running");
    if (sup)
        printf(", up %.0f s, %lld restarts",
               json_real_value(json_object_get(sup, "uptime_s")),
               (long long)json_integer_value(json_object_get(sup, "restarts")));
    printf("\n");
    const char *fail =
        sup ? json_string_value(json_object_get(sup, "last_failure")) : NULL;
    if (fail)
        printf("last failure: %s\n", fail);
    if (ck && json_is_true(json_object_get(ck, "enabled"))) {
        json_t *last = json_object_get(ck, "last");
        printf(
            "checkpoints: %lld completed, %lld failed (%lld in a row); "
            "last %lld: %.1f ms, sync pause %.1f ms, alignment %.1f ms\n",
            (long long)json_integer_value(json_object_get(ck, "completed")),
            (long long)json_integer_value(json_object_get(ck, "failed")),
            (long long)json_integer_value(json_object_get(ck, "failed_in_row")),
            (long long)json_integer_value(json_object_get(last, "id")),
            json_real_value(json_object_get(last, "duration_ms")),
            json_real_value(json_object_get(last, "sync_pause_ms")),
            json_real_value(json_object_get(last, "alignment_ms")));
    }
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(r, "tasks"), i, t)
    {
        json_t *wm = json_object_get(t, "watermark_ms");
        printf("  %s#%lld  in %lld (%.0f/s)  out %lld (%.0f/s)  "
               "back-pressured %.0f%%",
               json_string_value(json_object_get(t, "operator")),
               (long long)json_integer_value(json_object_get(t, "subtask")),
               (long long)json_integer_value(json_object_get(t, "records_in")),
               json_real_value(json_object_get(t, "in_rate")),
               (long long)json_integer_value(json_object_get(t, "records_out")),
               json_real_value(json_object_get(t, "out_rate")),
               100.0 *
                   json_real_value(json_object_get(t, "backpressured_share")));
        if (json_is_integer(wm)) {
            long long w = (long long)json_integer_value(wm);
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            long long lag =
                (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - w;
            printf("  watermark %lld (lag %.1f s)", w, (double)lag / 1e3);
        }
        const char *up = json_string_value(json_object_get(t, "chained_to"));
        if (up)
            printf("  chained to %s", up);
        printf("\n");
        ctl_print_states(json_object_get(t, "states"));
    }
}

static void ctl_ttl_text(json_t *ms, const char *time, char *out, size_t cap)
{
    if (json_is_integer(ms))
        snprintf(out, cap, "ttl %lld ms (%s time)",
                 (long long)json_integer_value(ms), time ? time : "?");
    else
        snprintf(out, cap, "no ttl");
}

static void ctl_print_state_stats(json_t *r)
{
    size_t i, k;
    json_t *t, *s;
    json_array_foreach(json_object_get(r, "subtasks"), i, t)
    {
        printf("%s#%lld\n", json_string_value(json_object_get(t, "operator")),
               (long long)json_integer_value(json_object_get(t, "subtask")));
        json_array_foreach(json_object_get(t, "states"), k, s)
        {
            json_t *ttl = json_object_get(s, "ttl");
            json_t *exp = json_object_get(s, "expired");
            char now[64], decl[64];
            ctl_ttl_text(json_object_get(ttl, "ms"),
                         json_string_value(json_object_get(ttl, "time")), now,
                         sizeof now);
            ctl_ttl_text(
                json_object_get(ttl, "declared_ms"),
                json_string_value(json_object_get(ttl, "declared_time")), decl,
                sizeof decl);
            int over = json_is_true(json_object_get(ttl, "override"));
            printf("  state %-16s %-5s %10lld keys %12lld bytes  %s%s%s%s\n",
                   json_string_value(json_object_get(s, "name")),
                   json_string_value(json_object_get(s, "kind")),
                   (long long)json_integer_value(json_object_get(s, "keys")),
                   (long long)json_integer_value(json_object_get(s, "bytes")),
                   now, over ? " (override; declared: " : "", over ? decl : "",
                   over ? ")" : "");
            printf(
                "    expired: %lld by read, %lld by sweep, %lld by "
                "compaction; %lld hook calls; grew at %lld samples in a "
                "row%s%s\n",
                (long long)json_integer_value(json_object_get(exp, "read")),
                (long long)json_integer_value(json_object_get(exp, "sweep")),
                (long long)json_integer_value(
                    json_object_get(exp, "compaction")),
                (long long)json_integer_value(json_object_get(s, "hook_calls")),
                (long long)json_integer_value(
                    json_object_get(s, "growth_streak")),
                json_is_true(json_object_get(ttl, "rewrite_pending"))
                    ? "; TTL rewrite of existing entries in progress"
                    : "",
                json_is_true(json_object_get(s, "leak_suspected"))
                    ? "; PROBABLE LEAK"
                    : "");
        }
    }
}

/* A state ttl or purge answer. */
static void ctl_print_state_change(json_t *r, const char *action)
{
    const char *op = json_string_value(json_object_get(r, "operator"));
    const char *st = json_string_value(json_object_get(r, "state"));
    long long id =
        (long long)json_integer_value(json_object_get(r, "checkpoint"));
    int ttl = !strcmp(action, "ttl");
    printf("%s.%s: %lld entries %s, in checkpoint %lld%s\n", op, st,
           (long long)json_integer_value(
               json_object_get(r, ttl ? "rewritten" : "purged")),
           ttl ? "rewritten" : "purged", id,
           json_is_true(json_object_get(r, "pending"))
               ? "; the rest is rewritten between records (state stats shows "
                 "the progress)"
               : "");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "subtasks"), i, p)
    {
        char read[48] = "";
        if (!ttl)
            snprintf(
                read, sizeof read, " of %lld",
                (long long)json_integer_value(json_object_get(p, "scanned")));
        printf("  subtask %lld: %lld %s%s, %.1f ms at the barrier of "
               "checkpoint %lld%s\n",
               (long long)json_integer_value(json_object_get(p, "subtask")),
               (long long)json_integer_value(
                   json_object_get(p, ttl ? "rewritten" : "purged")),
               ttl ? "rewritten" : "purged", read,
               json_real_value(json_object_get(p, "pause_ms")),
               (long long)json_integer_value(json_object_get(p, "checkpoint")),
               json_is_true(json_object_get(p, "pending")) ? "; going on" : "");
    }
}

/* Prints a reply; returns the exit code. */
static int ctl_print(json_t *reply, const char *cmd, const char *action,
                     int as_json)
{
    if (!json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "weir ctl: %s%s%s: %s\n", cmd, action ? " " : "",
                action ? action : "",
                json_string_value(json_object_get(reply, "error")));
        return CLI_EXIT_FAILED;
    }
    if (as_json) {
        char *s = json_dumps(reply, JSON_INDENT(2) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else if (!strcmp(cmd, "status")) {
        ctl_print_status(reply);
    } else if (action && !strcmp(action, "stats")) {
        ctl_print_state_stats(reply);
    } else if (action) {
        ctl_print_state_change(reply, action);
    } else {
        json_t *sp = json_object_get(reply, "savepoint");
        json_t *id = json_object_get(reply, "checkpoint");
        if (json_is_string(sp))
            printf("savepoint %s (checkpoint %lld)\n", json_string_value(sp),
                   (long long)json_integer_value(id));
        else if (json_is_integer(id))
            printf("checkpoint %lld\n", (long long)json_integer_value(id));
        else
            printf("ok\n");
    }
    return CLI_EXIT_OK;
}

typedef struct ctl_args {
    cli_dirs dirs;
    int64_t timeout_ms; /* 0: the command's default */
    const char *target, *cmd, *dir;
    int as_json, watch, savepoint;
    double watch_s;
    /* state */
    const char *action, *op, *state, *prefix, *time;
    int64_t ttl_ms, older_ms;
    int all, has_older;
} ctl_args;

/* Parsing returns 0, 1 after printing the usage for --help, or -1 after
 * printing why the arguments are wrong (the caller prints the usage). */

/* A duration argument of `what`; -1 after printing why. */
static int ctl_duration(const char *what, const char *s, int64_t *out)
{
    char *err = NULL;
    if (topo_parse_duration(s, strlen(s), out, &err) < 0) {
        fprintf(stderr, "weir ctl: %s: %s\n", what, err);
        free(err);
        return -1;
    }
    return 0;
}

/* The options that precede TARGET; on 0, optind is the index of TARGET. */
static int ctl_parse_globals(int argc, char **argv, ctl_args *a)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    /* '+': the options after TARGET COMMAND belong to the command. */
    cli_getopt_reset();
    while ((c = cli_getopt("weir ctl", argc, argv, "+d:t:h", longopts)) != -1) {
        if (c == 'd' && cli_dir_add(&a->dirs, optarg) == 0)
            continue;
        if (c == 't' && ctl_duration("--timeout", optarg, &a->timeout_ms) == 0)
            continue;
        if (c == 'h') {
            ctl_usage(stdout);
            return 1;
        }
        return -1;
    }
    return 0;
}

enum {
    CTL_OPT_JSON = 'j',
    CTL_OPT_WATCH = 'w',
    CTL_OPT_HELP = 'h',
    CTL_OPT_SAVEPOINT = 256,
    CTL_OPT_TIME,
    CTL_OPT_PREFIX,
    CTL_OPT_OLDER,
    CTL_OPT_ALL
};

/* The options of every command; ctl_opt_ok() says which one may use
 * which. */
static const struct option ctl_cmd_longopts[] = {
    {"json", no_argument, NULL, CTL_OPT_JSON},
    {"watch", no_argument, NULL, CTL_OPT_WATCH},
    {"savepoint", no_argument, NULL, CTL_OPT_SAVEPOINT},
    {"time", required_argument, NULL, CTL_OPT_TIME},
    {"prefix", required_argument, NULL, CTL_OPT_PREFIX},
    {"older-than", required_argument, NULL, CTL_OPT_OLDER},
    {"all", no_argument, NULL, CTL_OPT_ALL},
    {"help", no_argument, NULL, CTL_OPT_HELP},
    {NULL, 0, NULL, 0}};

/* Whether command `cmd` (for "state": with `action`, which may still be
 * unknown) takes option `c`; prints why not. */
static int ctl_opt_ok(const char *cmd, const char *action, int c)
{
    int state = !strcmp(cmd, "state");
    int ok = c == CTL_OPT_HELP;
    switch (c) {
    case CTL_OPT_JSON: ok = state || !strcmp(cmd, "status"); break;
    case CTL_OPT_WATCH: ok = !strcmp(cmd, "status"); break;
    case CTL_OPT_SAVEPOINT: ok = !strcmp(cmd, "stop"); break;
    case CTL_OPT_TIME: ok = state && (!action || !strcmp(action, "ttl")); break;
    case CTL_OPT_PREFIX:
    case CTL_OPT_OLDER:
    case CTL_OPT_ALL:
        ok = state && (!action || !strcmp(action, "purge"));
        break;
    default: break;
    }
    if (!ok) {
        const char *name = "?";
        for (const struct option *o = ctl_cmd_longopts; o->name; o++)
            if (o->val == c)
                name = o->name;
        fprintf(stderr, "weir ctl: '%s%s%s' does not take --%s\n", cmd,
                action ? " " : "", action ? action : "", name);
    }
    return ok;
}

/* The operands after COMMAND, at most 3 (argv[0] is COMMAND). */
typedef struct ctl_operands {
    const char *v[3];
    int n;
} ctl_operands;

/* One option of a command. Returns 0 or -1. `modes` counts the options of
 * state purge that pick the keys. */
static int ctl_parse_opt(int c, int argc, char **argv, ctl_args *a, int *modes)
{
    switch (c) {
    case CTL_OPT_JSON: a->as_json = 1; return 0;
    case CTL_OPT_WATCH:
        /* `--watch 5` as well as `--watch=5`: a positive number right
         * after --watch is its period. */
        a->watch = 1;
        if (optind < argc && atof(argv[optind]) > 0)
            a->watch_s = atof(argv[optind++]);
        return 0;
    case CTL_OPT_SAVEPOINT:
        a->savepoint = 1;
        if (optind < argc && argv[optind][0] != '-')
            a->dir = argv[optind++];
        return 0;
    case CTL_OPT_TIME:
        a->time = optarg;
        if (strcmp(a->time, "event") != 0 &&
            strcmp(a->time, "processing") != 0) {
            fprintf(stderr, "weir ctl: --time is event or processing\n");
            return -1;
        }
        return 0;
    case CTL_OPT_PREFIX:
        a->prefix = optarg;
        ++*modes;
        return 0;
    case CTL_OPT_OLDER:
        ++*modes;
        a->has_older = 1;
        return ctl_duration("--older-than", optarg, &a->older_ms);
    case CTL_OPT_ALL:
        a->all = 1;
        ++*modes;
        return 0;
    default: return -1;
    }
}

/* state ttl | purge | stats: the operands after the action. */
static int ctl_check_state(ctl_args *a, const ctl_operands *ops, int modes)
{
    if (!a->action)
        return -1;
    int need = !strcmp(a->action, "stats")   ? 0
               : !strcmp(a->action, "purge") ? 2
               : !strcmp(a->action, "ttl")   ? 3
                                             : -1;
    if (need < 0) {
        fprintf(stderr, "weir ctl: unknown state command '%s'\n", a->action);
        return -1;
    }
    /* The options were checked before the action was known. */
    if ((a->time && need != 3) || (modes && need != 2)) {
        fprintf(stderr, "weir ctl: state %s does not take --%s\n", a->action,
                a->time && need != 3 ? "time"
                : a->prefix          ? "prefix"
                : a->has_older       ? "older-than"
                                     : "all");
        return -1;
    }
    if (need == 0 ? ops->n > 1 : ops->n != need)
        return -1;
    a->op = ops->v[0];
    a->state = ops->v[1];
    if (need == 2 && modes != 1) {
        fprintf(stderr, "weir ctl: state purge needs one of --prefix P, "
                        "--older-than D and --all\n");
        return -1;
    }
    if (need == 3) {
        if (ctl_duration("state ttl", ops->v[2], &a->ttl_ms) < 0)
            return -1;
        if (a->ttl_ms <= 0) {
            fprintf(stderr, "weir ctl: state ttl: the duration must be "
                            "positive (a TTL of 0 would expire everything)\n");
            return -1;
        }
    }
    return 0;
}

/* COMMAND and what follows it (argv[0] is COMMAND). */
static int ctl_parse_cmd(int argc, char **argv, ctl_args *a)
{
    int state = !strcmp(a->cmd, "state");
    ctl_operands ops = {{NULL, NULL, NULL}, 0};
    int c, modes = 0;
    cli_getopt_reset();
    while ((c = cli_getopt("weir ctl", argc, argv, "jwh", ctl_cmd_longopts)) !=
           -1) {
        if (c == CTL_OPT_HELP) {
            ctl_usage(stdout);
            return 1;
        }
        /* The action of a state command is its first operand; getopt
         * moves operands behind the options, so it is not known yet. */
        if (c == CLI_OPT_BAD || !ctl_opt_ok(a->cmd, NULL, c) ||
            ctl_parse_opt(c, argc, argv, a, &modes) < 0)
            return -1;
    }
    for (int i = optind; i < argc; i++) {
        if (state && !a->action) {
            a->action = argv[i];
            continue;
        }
        if (ops.n == 3) {
            fprintf(stderr, "weir ctl: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
        ops.v[ops.n++] = argv[i];
    }
    if (state)
        return ctl_check_state(a, &ops, modes);
    static const char *const cmds[] = {"status", "checkpoint", "savepoint",
                                       "stop",   "cancel",     NULL};
    int known = 0;
    for (int k = 0; cmds[k]; k++)
        known |= !strcmp(a->cmd, cmds[k]);
    if (!known) {
        fprintf(stderr, "weir ctl: unknown command '%s'\n", a->cmd);
        return -1;
    }
    if (!strcmp(a->cmd, "savepoint") && ops.n == 1) {
        a->dir = ops.v[0];
    } else if (ops.n > 0) {
        fprintf(stderr, "weir ctl: unexpected argument '%s'\n", ops.v[0]);
        return -1;
    }
    return 0;
}

static int ctl_parse(int argc, char **argv, ctl_args *a)
{
    int r = ctl_parse_globals(argc, argv, a);
    if (r != 0)
        return r;
    if (argc - optind < 2) {
        fprintf(stderr, "weir ctl: %s\n",
                optind < argc ? "a COMMAND is needed"
                              : "a TARGET and a COMMAND are needed");
        return -1;
    }
    a->target = argv[optind];
    a->cmd = argv[optind + 1];
    a->watch_s = 2.0;
    int at = optind + 1;
    return ctl_parse_cmd(argc - at, argv + at, a);
}

/* The request of a state command. */
static json_t *ctl_build_state(const ctl_args *a)
{
    json_t *req =
        a->action ? json_pack("{s:s, s:s}", "cmd", a->cmd, "action", a->action)
                  : NULL;
    if (!req)
        return NULL;
    if (a->op)
        json_object_set_new(req, "operator", json_string(a->op));
    if (a->state)
        json_object_set_new(req, "state", json_string(a->state));
    if (!strcmp(a->action, "ttl"))
        json_object_set_new(req, "ttl_ms", json_integer(a->ttl_ms));
    if (a->time)
        json_object_set_new(req, "time", json_string(a->time));
    if (a->prefix)
        json_object_set_new(req, "prefix", json_string(a->prefix));
    if (a->has_older)
        json_object_set_new(req, "older_than_ms", json_integer(a->older_ms));
    if (a->all)
        json_object_set_new(req, "all", json_true());
    return req;
}

/* Builds the request; NULL after printing why. */
static json_t *ctl_build(const ctl_args *a, const char *job_dir)
{
    if (!strcmp(a->cmd, "state"))
        return ctl_build_state(a);
    json_t *req = json_pack("{s:s}", "cmd", a->cmd);
    char dir[PATH_MAX];
    int want_dir = !strcmp(a->cmd, "savepoint") || a->savepoint;
    if (!req || !want_dir)
        return req;
    if ((a->dir ? ctl_abs_dir(a->dir, dir, sizeof dir)
                : ctl_default_savepoint(job_dir, dir, sizeof dir)) < 0) {
        fprintf(stderr, "weir ctl: cannot name the savepoint directory: %s\n",
                strerror(errno));
        json_decref(req);
        return NULL;
    }
    json_object_set_new(req, "dir", json_string(dir));
    return req;
}

static int ctl_once(const ctl_args *a, const char *sock, json_t *req)
{
    int64_t t = a->timeout_ms;
    if (!t)
        t = !strcmp(a->cmd, "status") || !strcmp(a->cmd, "cancel") ||
                    (a->action && !strcmp(a->action, "stats"))
                ? CTL_SHORT_MS
                : CTL_LONG_MS;
    json_t *reply = NULL;
    char *err = NULL;
    if (ctl_request(sock, req, t, &reply, &err) < 0) {
        fprintf(stderr, "weir ctl: %s\n", err);
        free(err);
        return CTL_EXIT_UNREACHABLE;
    }
    int rc = ctl_print(reply, a->cmd, a->action, a->as_json);
    json_decref(reply);
    return rc;
}

int cmd_ctl(int argc, char **argv)
{
    ctl_args a = {0};
    char sock[PATH_MAX], job_dir[PATH_MAX];
    int rc = CLI_EXIT_USAGE;
    json_t *req = NULL;
    int pr = ctl_parse(argc, argv, &a);
    if (pr != 0) {
        if (pr < 0)
            ctl_usage(stderr);
        rc = pr > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    rc = ctl_resolve(a.target, &a.dirs, sock, sizeof sock, job_dir,
                     sizeof job_dir);
    if (rc != 0)
        goto out;
    if (!(req = ctl_build(&a, job_dir))) {
        rc = CLI_EXIT_FAILED;
        goto out;
    }
    for (;;) {
        if (a.watch)
            fputs("\033[H\033[2J", stdout); /* home, clear */
        rc = ctl_once(&a, sock, req);
        if (!a.watch || rc != CLI_EXIT_OK)
            break;
        fflush(stdout);
        struct timespec ts = {(time_t)a.watch_s,
                              (long)((a.watch_s - (time_t)a.watch_s) * 1e9)};
        nanosleep(&ts, NULL);
    }
out:
    json_decref(req);
    cli_dirs_free(&a.dirs);
    return rc;
}
