#include "runtime/wctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "control/control.h"
#include "runtime/coord.h"
#include "runtime/keyed.h"
#include "runtime/task.h"

#define WCTL_WHO         "control"
/* How often rates are sampled. */
#define WCTL_RATE_MS     1000
#define WCTL_MAX_STATES  64
/* Checkpoints a state change waits for before it gives up (one that fails
 * is followed by another: the change is in the running state already). */
#define WCTL_STATE_TRIES 3

typedef enum wctl_wait {
    WCTL_NONE = 0,
    WCTL_CHECKPOINT, /* answer when ck_id is decided */
    WCTL_SAVEPOINT,  /* ... then export it to `dir` */
    WCTL_STOP,       /* answer when the job ended */
    WCTL_STATE       /* a state change: answer when its checkpoint did */
} wctl_wait;

/* Rates of one subtask over the last sampling period. */
typedef struct wctl_rate {
    uint64_t in, out, blocked_ns;
    double in_rate, out_rate, blocked_share;
} wctl_rate;

struct wctl {
    const topo_job *job;
    rt_job *rt;
    const char *run_dir;
    int attempt;
    ctl_server *srv;
    wctl_wait wait;
    uint64_t ck_id;
    char *dir; /* savepoint destination */
    int64_t started_ms, sampled_ms;
    wctl_rate *rates;
    /* WCTL_STATE */
    keyed_admin *admin;
    const topo_op *admin_op;
    int admin_tries;
};

static int64_t wctl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wctl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

wctl *wctl_open(const topo_job *job, rt_job *rt, const char *run_dir,
                int attempt)
{
    if (!run_dir)
        return NULL;
    wctl *c = calloc(1, sizeof *c);
    char *err = NULL;
    if (!c || !(c->rates = calloc(rt_task_count(rt) + 1, sizeof *c->rates))) {
        free(c);
        return NULL;
    }
    if (ctl_server_open(NULL, run_dir, CTL_WORKER_SOCK, &c->srv, &err) < 0) {
        log_msg(WEIR_LOG_WARN, WCTL_WHO, "no control endpoint: %s", err);
        free(err);
        free(c->rates);
        free(c);
        return NULL;
    }
    c->job = job;
    c->rt = rt;
    c->run_dir = run_dir;
    c->attempt = attempt;
    c->started_ms = c->sampled_ms = wctl_mono_ms();
    return c;
}

void wctl_close(wctl *c)
{
    if (!c)
        return;
    if (c->wait != WCTL_NONE)
        ctl_server_reply(c->srv, ctl_error("the worker is ending"));
    ctl_server_close(c->srv);
    keyed_admin_release(c->admin);
    free(c->dir);
    free(c->rates);
    free(c);
}

/* Samples every subtask's counters for the rates in `status`. */
static void wctl_sample(wctl *c)
{
    int64_t now = wctl_mono_ms();
    double dt = (double)(now - c->sampled_ms) / 1e3;
    if (dt * 1e3 < WCTL_RATE_MS)
        return;
    for (uint32_t i = 0; i < rt_task_count(c->rt); i++) {
        rt_task_stats s = rt_task_stats_get(c->rt, i);
        wctl_rate *r = &c->rates[i];
        r->in_rate = (double)(s.records_in - r->in) / dt;
        r->out_rate = (double)(s.records_out - r->out) / dt;
        r->blocked_share = (double)(s.blocked_ns - r->blocked_ns) / 1e9 / dt;
        r->in = s.records_in;
        r->out = s.records_out;
        r->blocked_ns = s.blocked_ns;
    }
    c->sampled_ms = now;
}

static json_t *wctl_states_json(wctl *c, uint32_t i)
{
    rt_state_info v[WCTL_MAX_STATES];
    size_t n = rt_task_states(c->rt, i, v, WCTL_MAX_STATES);
    json_t *a = json_array();
    for (size_t k = 0; a && k < n && k < WCTL_MAX_STATES; k++) {
        json_t *ttl = v[k].has_ttl ? json_integer(v[k].ttl_ms) : json_null();
        json_array_append_new(
            a, json_pack("{s:s, s:o, s:I, s:I, s:I, s:b}", "name", v[k].name,
                         "ttl_ms", ttl, "keys", (json_int_t)v[k].keys, "bytes",
                         (json_int_t)v[k].bytes, "expired",
                         (json_int_t)v[k].expired, "leak_suspected",
                         v[k].leak_suspected));
        json_object_set_new(json_array_get(a, json_array_size(a) - 1),
                            "ttl_override", json_boolean(v[k].ttl_override));
    }
    return a;
}

static json_t *wctl_tasks_json(wctl *c)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < rt_task_count(c->rt); i++) {
        rt_task_stats s = rt_task_stats_get(c->rt, i);
        const wctl_rate *r = &c->rates[i];
        json_t *wm = s.watermark == WEIR_WATERMARK_MIN
                         ? json_null()
                         : json_integer(s.watermark);
        json_array_append_new(
            a, json_pack("{s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:I, s:o, s:o}",
                         "operator", s.op_id, "subtask", (int)s.index,
                         "records_in", (json_int_t)s.records_in, "records_out",
                         (json_int_t)s.records_out, "in_rate", r->in_rate,
                         "out_rate", r->out_rate, "backpressured_share",
                         r->blocked_share, "late_records",
                         (json_int_t)s.late_records, "watermark_ms", wm,
                         "states", wctl_states_json(c, i)));
        json_object_set_new(
            json_array_get(a, json_array_size(a) - 1), "chained_to",
            s.chained_to ? json_string(s.chained_to) : json_null());
    }
    return a;
}

static json_t *wctl_status(wctl *c)
{
    rt_ckpt_stats ck = rt_ckpt_stats_get(c->rt);
    rt_job *rt = c->rt;
    pthread_mutex_lock(&rt->ck_lock);
    json_t *last = json_pack(
        "{s:I, s:f, s:f, s:f}", "id", (json_int_t)ck.last_completed_id,
        "duration_ms", rt->ck_last_ms, "sync_pause_ms", rt->ck_last_sync_ms,
        "alignment_ms", rt->ck_last_align_ms);
    int64_t in_row = rt->ck_failed_in_row;
    pthread_mutex_unlock(&rt->ck_lock);
    json_t *cks = json_pack(
        "{s:b, s:I, s:I, s:I, s:o}", "enabled", coord_enabled(rt), "completed",
        (json_int_t)ck.completed, "failed", (json_int_t)ck.failed,
        "failed_in_row", (json_int_t)in_row, "last", last);
    return json_pack("{s:b, s:s, s:i, s:f, s:o, s:o}", "ok", 1, "job",
                     c->job->name, "attempt", c->attempt, "worker_uptime_s",
                     (double)(wctl_mono_ms() - c->started_ms) / 1e3, "tasks",
                     wctl_tasks_json(c), "checkpoints", cks);
}

/* The plugin and version of every operator, for SAVEPOINT.json. */
static json_t *wctl_operators_json(const topo_job *job)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < job->n_ops; i++) {
        const topo_op *op = &job->ops[i];
        const reg_plugin *pl = op->reg->plugin;
        json_array_append_new(
            a,
            json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:i, s:i}", "id", op->id,
                      "type", op->type, "version", op->reg->op.version,
                      "plugin", pl ? pl->desc.name : NULL, "plugin_file",
                      pl ? pl->path : NULL, "parallelism", (int)op->parallelism,
                      "snapshot_version", (int)op->reg->op.snapshot_version));
    }
    return a;
}

int wctl_export_savepoint(const topo_job *job, const char *run_dir, uint64_t id,
                          const char *dir, char **errptr)
{
    char *src = ckpt_dir(run_dir, id);
    char *text = NULL, path[4200];
    size_t len = 0;
    int rc = src ? ckpt_materialize(src, dir, errptr)
                 : err_set(errptr, WEIR_ENOMEM, "out of memory");
    if (rc == 0)
        rc = ckpt_mark_savepoint(dir, errptr);
    if (rc < 0) {
        err_prefix(errptr, "savepoint %s from checkpoint %llu", dir,
                   (unsigned long long)id);
        goto out;
    }
    if (job->path && fs_read_file(job->path, &text, &len, NULL) == 0) {
        snprintf(path, sizeof path, "%s/job.yaml", dir);
        if ((rc = fs_write_file(path, text, len, errptr)) < 0)
            goto out;
    }
    json_t *meta =
        json_pack("{s:i, s:s, s:I, s:I, s:s, s:s?, s:o}", "format", 1, "job",
                  job->name, "checkpoint", (json_int_t)id, "created_ms",
                  (json_int_t)wctl_wall_ms(), "from_run", run_dir, "job_file",
                  job->path, "operators", wctl_operators_json(job));
    char *m = meta ? json_dumps(meta, JSON_INDENT(2)) : NULL;
    json_decref(meta);
    snprintf(path, sizeof path, "%s/SAVEPOINT.json", dir);
    rc = m ? fs_write_file(path, m, strlen(m), errptr)
           : err_set(errptr, WEIR_ENOMEM, "out of memory");
    free(m);
out:
    free(text);
    free(src);
    return rc;
}

/* Starts waiting for a checkpoint asked for now. */
static json_t *wctl_start_checkpoint(wctl *c, wctl_wait what, const char *dir)
{
    char *err = NULL;
    if (coord_request(c->rt, &c->ck_id, &err) < 0) {
        json_t *r = ctl_error("%s", err);
        free(err);
        return r;
    }
    c->wait = what;
    free(c->dir);
    c->dir = dir ? strdup(dir) : NULL;
    log_msg(WEIR_LOG_INFO, WCTL_WHO, "%s %llu requested",
            what == WCTL_SAVEPOINT ? "savepoint at checkpoint" : "checkpoint",
            (unsigned long long)c->ck_id);
    return NULL; /* answered later */
}

/* ------------------------------------------------------------------------ */
/* state ttl | purge | stats                                                 */
/* ------------------------------------------------------------------------ */

static const char *wctl_domain(int d)
{
    return d == WEIR_TIME_EVENT ? "event" : "processing";
}

/* Appends ", name" (or "name" first) to the list in buf, as far as it
 * fits. */
static void wctl_list_add(char *buf, size_t cap, const char *name)
{
    size_t n = strlen(buf);
    if (n + 3 >= cap)
        return;
    if (n) {
        memcpy(buf + n, ", ", 2);
        n += 2;
    }
    size_t l = strlen(name);
    if (l > cap - 1 - n)
        l = cap - 1 - n;
    memcpy(buf + n, name, l);
    buf[n + l] = '\0';
}

/* The operator named `id`, which must be keyed; NULL and *err otherwise. */
static const topo_op *wctl_keyed_op(wctl *c, const char *id, json_t **err)
{
    *err = NULL;
    if (!id || !*id) {
        *err = ctl_error("state: no operator given");
        return NULL;
    }
    char names[512] = "";
    for (size_t i = 0; i < c->job->n_ops; i++) {
        const topo_op *op = &c->job->ops[i];
        if (!strcmp(op->id, id)) {
            if (op->reg->op.flags & WEIR_OP_KEYED)
                return op;
            *err = ctl_error("operator '%s' (%s) is not keyed: it has no "
                             "keyed state",
                             op->id, op->type);
            return NULL;
        }
        wctl_list_add(names, sizeof names, op->id);
    }
    *err = ctl_error("no operator '%s' in job '%s' (its operators: %s)", id,
                     c->job->name, names);
    return NULL;
}

/* The published statistics of state `name` of operator `op` (its first
 * subtask that has published any); NULL when it has none, with *err. */
static json_t *wctl_find_state(wctl *c, const topo_op *op, const char *name,
                               rt_state_info *out)
{
    rt_state_info v[WCTL_MAX_STATES];
    if (!name || !*name)
        return ctl_error("state: no state given");
    for (uint32_t i = 0; i < rt_task_count(c->rt); i++) {
        if (c->rt->tasks[i].op != op)
            continue;
        size_t n = rt_task_states(c->rt, i, v, WCTL_MAX_STATES);
        if (n == 0)
            continue;
        char names[512] = "";
        for (size_t k = 0; k < n && k < WCTL_MAX_STATES; k++) {
            if (!strcmp(v[k].name, name)) {
                *out = v[k];
                return NULL;
            }
            wctl_list_add(names, sizeof names, v[k].name);
        }
        return ctl_error("operator '%s' has no state '%s' (its states: %s)",
                         op->id, name, names);
    }
    return ctl_error("the states of operator '%s' are not known yet (its "
                     "subtasks have not opened them); try again",
                     op->id);
}

/* Fills the change's own fields from the request; an error reply or
 * NULL. */
static json_t *wctl_admin_args(keyed_admin *a, json_t *req,
                               const rt_state_info *info)
{
    if (a->kind == KEYED_ADMIN_TTL) {
        json_t *ttl = json_object_get(req, "ttl_ms");
        const char *time = json_string_value(json_object_get(req, "time"));
        if (!json_is_integer(ttl) || json_integer_value(ttl) <= 0)
            return ctl_error("state ttl: \"ttl_ms\" must be a positive "
                             "integer");
        a->ttl_ms = (int64_t)json_integer_value(ttl);
        if (time && strcmp(time, "event") != 0 &&
            strcmp(time, "processing") != 0)
            return ctl_error("state ttl: \"time\" is event or processing, "
                             "not '%s'",
                             time);
        a->domain = time ? (!strcmp(time, "event") ? WEIR_TIME_EVENT
                                                   : WEIR_TIME_PROCESSING)
                         : (weir_time_domain)info->domain;
        return NULL;
    }
    json_t *prefix = json_object_get(req, "prefix");
    json_t *older = json_object_get(req, "older_than_ms");
    int all = json_is_true(json_object_get(req, "all"));
    if ((prefix != NULL) + (older != NULL) + all != 1)
        return ctl_error("state purge: give exactly one of \"prefix\", "
                         "\"older_than_ms\" and \"all\"");
    if (all) {
        a->mode = STATE_PURGE_ALL;
    } else if (prefix) {
        if (!json_is_string(prefix))
            return ctl_error("state purge: \"prefix\" must be a string");
        a->mode = STATE_PURGE_PREFIX;
        a->prefix_len = json_string_length(prefix);
        if (!(a->prefix = malloc(a->prefix_len + 1)))
            return ctl_error("out of memory");
        memcpy(a->prefix, json_string_value(prefix), a->prefix_len + 1);
    } else {
        if (!json_is_integer(older) || json_integer_value(older) < 0)
            return ctl_error("state purge: \"older_than_ms\" must be an "
                             "integer >= 0");
        if (!info->has_ttl)
            return ctl_error("state purge --older-than: state '%s' has no "
                             "TTL, so its entries carry no write time; give "
                             "it one first (state ttl) or purge by --prefix "
                             "or --all",
                             a->state);
        a->mode = STATE_PURGE_OLDER;
        a->older_ms = (int64_t)json_integer_value(older);
    }
    return NULL;
}

/* Posts the change to every subtask of `op`, then asks for a checkpoint. */
static json_t *wctl_admin_start(wctl *c, keyed_admin *a, const topo_op *op,
                                const char *action)
{
    char *err = NULL;
    for (uint32_t i = 0; i < rt_task_count(c->rt); i++) {
        task *t = &c->rt->tasks[i];
        if (t->op == op && keyed_admin_post(t, a) < 0)
            return ctl_error("state %s: subtask %s has ended", action, t->who);
    }
    if (coord_request(c->rt, &c->ck_id, &err) < 0) {
        json_t *r = ctl_error("state %s: %s", action, err);
        free(err);
        return r;
    }
    c->wait = WCTL_STATE;
    c->admin = a;
    c->admin_op = op;
    c->admin_tries = 1;
    log_msg(WEIR_LOG_INFO, WCTL_WHO,
            "state %s of %s.%s requested: applied at checkpoint %llu", action,
            op->id, a->state, (unsigned long long)c->ck_id);
    return NULL;
}

static json_t *wctl_state_change(wctl *c, json_t *req, const char *action)
{
    const char *opid = json_string_value(json_object_get(req, "operator"));
    const char *name = json_string_value(json_object_get(req, "state"));
    json_t *err;
    const topo_op *op = wctl_keyed_op(c, opid, &err);
    rt_state_info info = {0};
    if (!op || (err = wctl_find_state(c, op, name, &info)))
        return err;
    if (!coord_enabled(c->rt))
        return ctl_error("state %s: changes are applied at a checkpoint "
                         "barrier, and checkpoints are not enabled for this "
                         "job (checkpoint.interval is 0s)",
                         action);
    keyed_admin *a = keyed_admin_new(!strcmp(action, "ttl") ? KEYED_ADMIN_TTL
                                                            : KEYED_ADMIN_PURGE,
                                     name, op->parallelism);
    if (!a)
        return ctl_error("out of memory");
    if (!(err = wctl_admin_args(a, req, &info)))
        err = wctl_admin_start(c, a, op, action);
    if (err)
        keyed_admin_release(a);
    return err;
}

static json_t *wctl_state_json(const rt_state_info *v, int64_t now)
{
    static const char *const kinds[] = {"value", "map", "list"};
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:b, s:i, s:I}", "name",
        v->name, "kind",
        v->kind >= 1 && v->kind <= 3 ? kinds[v->kind - 1] : "?", "keys",
        (json_int_t)v->keys, "bytes", (json_int_t)v->bytes, "expired", "read",
        (json_int_t)v->expired_read, "sweep", (json_int_t)v->expired_sweep,
        "compaction", (json_int_t)v->expired_compaction, "hook_calls",
        (json_int_t)v->hook_calls, "leak_suspected", v->leak_suspected,
        "growth_streak", (int)v->growth_streak, "sampled_ms_ago",
        (json_int_t)(now - v->sampled_ms));
    json_t *ttl = json_pack(
        "{s:o, s:s, s:o, s:s, s:b, s:b, s:I}", "ms",
        v->has_ttl ? json_integer(v->ttl_ms) : json_null(), "time",
        wctl_domain(v->domain), "declared_ms",
        v->declared_ttl_ms > 0 ? json_integer(v->declared_ttl_ms) : json_null(),
        "declared_time", wctl_domain(v->declared_domain), "override",
        v->ttl_override, "rewrite_pending", v->rewrite_pending, "rewritten",
        (json_int_t)v->rewritten);
    if (o)
        json_object_set_new(o, "ttl", ttl);
    else
        json_decref(ttl);
    return o;
}

static json_t *wctl_state_stats(wctl *c, const char *opid)
{
    json_t *err = NULL;
    if (opid && !wctl_keyed_op(c, opid, &err))
        return err;
    json_t *subs = json_array();
    rt_state_info v[WCTL_MAX_STATES];
    int64_t now = wctl_wall_ms();
    for (uint32_t i = 0; subs && i < rt_task_count(c->rt); i++) {
        const task *t = &c->rt->tasks[i];
        if (!(t->op->reg->op.flags & WEIR_OP_KEYED) ||
            (opid && strcmp(t->op->id, opid) != 0))
            continue;
        size_t n = rt_task_states(c->rt, i, v, WCTL_MAX_STATES);
        json_t *states = json_array();
        for (size_t k = 0; states && k < n && k < WCTL_MAX_STATES; k++)
            json_array_append_new(states, wctl_state_json(&v[k], now));
        json_array_append_new(
            subs, json_pack("{s:s, s:i, s:o}", "operator", t->op->id, "subtask",
                            (int)t->ps->index, "states", states));
    }
    return json_pack("{s:b, s:s, s:o}", "ok", 1, "job", c->job->name,
                     "subtasks", subs);
}

static json_t *wctl_state(wctl *c, json_t *req)
{
    const char *action = json_string_value(json_object_get(req, "action"));
    if (action && !strcmp(action, "stats"))
        return wctl_state_stats(
            c, json_string_value(json_object_get(req, "operator")));
    if (action && (!strcmp(action, "ttl") || !strcmp(action, "purge")))
        return wctl_state_change(c, req, action);
    return ctl_error("state: unknown action '%s' (ttl, purge or stats)",
                     action ? action : "");
}

/* The answer to a state change whose checkpoint completed. */
static json_t *wctl_admin_reply(wctl *c, uint64_t id)
{
    keyed_admin *a = c->admin;
    json_t *subs = json_array();
    uint64_t rewritten = 0, purged = 0;
    int pending = 0, failed = 0;
    char first_err[300] = "";
    for (uint32_t i = 0; subs && i < a->n; i++) {
        keyed_admin_part p;
        keyed_admin_part_get(a, i, &p);
        rewritten += p.res.rewritten;
        purged += p.res.purged;
        pending |= p.res.pending;
        if (p.rc < 0 && !failed++)
            snprintf(first_err, sizeof first_err, "%s", p.error);
        json_t *o = json_pack(
            "{s:i, s:I, s:I, s:I, s:I, s:I, s:b, s:f}", "subtask", (int)i,
            "checkpoint", (json_int_t)p.checkpoint, "scanned",
            (json_int_t)p.res.scanned, "rewritten", (json_int_t)p.res.rewritten,
            "purged", (json_int_t)p.res.purged, "purged_expired",
            (json_int_t)p.res.purged_expired, "pending", p.res.pending,
            "pause_ms", (double)p.res.pause_ns / 1e6);
        if (o && p.rc < 0)
            json_object_set_new(o, "error", json_string(p.error));
        json_array_append_new(subs, o);
    }
    json_t *r;
    if (failed)
        r = ctl_error("%d of %u subtasks failed: %s", failed, a->n, first_err);
    else
        r = json_pack("{s:b, s:I, s:I, s:I, s:b}", "ok", 1, "checkpoint",
                      (json_int_t)id, "rewritten", (json_int_t)rewritten,
                      "purged", (json_int_t)purged, "pending", pending);
    if (r) {
        json_object_set_new(r, "operator", json_string(c->admin_op->id));
        json_object_set_new(r, "state", json_string(a->state));
        json_object_set_new(r, "subtasks", subs);
    } else {
        json_decref(subs);
    }
    return r;
}

/* Whether every subtask applied the change in hand. */
static int wctl_admin_applied(wctl *c)
{
    for (uint32_t i = 0; i < c->admin->n; i++) {
        keyed_admin_part p;
        keyed_admin_part_get(c->admin, i, &p);
        if (!p.done)
            return 0;
    }
    return 1;
}

/* Answers a state change once a checkpoint holding it completed; asks for
 * another when the one it waited for failed. */
static void wctl_admin_progress(wctl *c)
{
    int r = coord_result(c->rt, c->ck_id);
    if (r == 0)
        return;
    json_t *reply = NULL;
    if (r > 0 && wctl_admin_applied(c)) {
        reply = wctl_admin_reply(c, coord_completed(c->rt));
    } else if (c->admin_tries < WCTL_STATE_TRIES) {
        char *err = NULL;
        uint64_t failed = c->ck_id;
        if (coord_request(c->rt, &c->ck_id, &err) == 0) {
            c->admin_tries++;
            log_msg(WEIR_LOG_WARN, WCTL_WHO,
                    "checkpoint %llu failed; the state change waits for "
                    "checkpoint %llu",
                    (unsigned long long)failed, (unsigned long long)c->ck_id);
            return;
        }
        reply = ctl_error("checkpoint %llu failed and no other can be taken "
                          "(%s); the change may be lost",
                          (unsigned long long)failed, err);
        free(err);
    } else {
        reply = ctl_error("%d checkpoints in a row failed (see the job's "
                          "log): the change is applied in the running job "
                          "but not in a checkpoint yet",
                          c->admin_tries);
    }
    keyed_admin_release(c->admin);
    c->admin = NULL;
    c->wait = WCTL_NONE;
    ctl_server_reply(c->srv, reply);
}

static json_t *wctl_handle(wctl *c, json_t *req)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    const char *dir = json_string_value(json_object_get(req, "dir"));
    if (!cmd)
        return ctl_error("bad request: no \"cmd\"");
    if (!strcmp(cmd, "status"))
        return wctl_status(c);
    if (!strcmp(cmd, "checkpoint"))
        return wctl_start_checkpoint(c, WCTL_CHECKPOINT, NULL);
    if (!strcmp(cmd, "savepoint")) {
        if (!dir || *dir != '/')
            return ctl_error("savepoint: \"dir\" must be an absolute path");
        return wctl_start_checkpoint(c, WCTL_SAVEPOINT, dir);
    }
    if (!strcmp(cmd, "stop")) {
        if (dir && *dir != '/')
            return ctl_error("stop: \"dir\" must be an absolute path");
        if (dir && !coord_enabled(c->rt))
            return ctl_error("stop --savepoint: checkpoints are not enabled "
                             "for this job (checkpoint.interval is 0s)");
        log_msg(WEIR_LOG_INFO, WCTL_WHO, "stop requested%s%s",
                dir ? "; savepoint to " : "", dir ? dir : "");
        free(c->dir);
        c->dir = dir ? strdup(dir) : NULL;
        c->wait = WCTL_STOP;
        rt_request_stop(c->rt);
        return NULL;
    }
    if (!strcmp(cmd, "state"))
        return wctl_state(c, req);
    if (!strcmp(cmd, "cancel")) {
        log_msg(WEIR_LOG_INFO, WCTL_WHO, "cancel requested");
        rt_request_stop(c->rt);
        rt_request_stop(c->rt); /* the second call cancels */
        return ctl_ok();
    }
    return ctl_error("unknown command '%s'", cmd);
}

/* Answers a checkpoint or savepoint request once its checkpoint is
 * decided. */
static void wctl_progress(wctl *c)
{
    if (c->wait == WCTL_STATE)
        wctl_admin_progress(c);
    if (c->wait != WCTL_CHECKPOINT && c->wait != WCTL_SAVEPOINT)
        return;
    int r = coord_result(c->rt, c->ck_id);
    if (r == 0)
        return;
    json_t *reply;
    uint64_t id = coord_completed(c->rt);
    if (r < 0) {
        reply = ctl_error("checkpoint %llu failed (see the job's log)",
                          (unsigned long long)c->ck_id);
    } else if (c->wait == WCTL_CHECKPOINT) {
        reply = json_pack("{s:b, s:I}", "ok", 1, "checkpoint", (json_int_t)id);
    } else {
        char *err = NULL;
        if (wctl_export_savepoint(c->job, c->run_dir, id, c->dir, &err) < 0) {
            reply = ctl_error("%s", err);
            free(err);
        } else {
            log_msg(WEIR_LOG_INFO, WCTL_WHO, "savepoint %s written", c->dir);
            reply = json_pack("{s:b, s:I, s:s}", "ok", 1, "checkpoint",
                              (json_int_t)id, "savepoint", c->dir);
        }
    }
    c->wait = WCTL_NONE;
    ctl_server_reply(c->srv, reply);
}

void wctl_step(wctl *c, int timeout_ms)
{
    if (!c) {
        struct timespec ts = {0, (long)timeout_ms * 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    wctl_sample(c);
    wctl_progress(c);
    if (c->wait != WCTL_NONE) { /* REP: one request at a time */
        struct timespec ts = {0, (long)timeout_ms * 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    zmq_pollitem_t it = {.socket = ctl_server_socket(c->srv),
                         .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return;
    json_t *req = NULL;
    if (ctl_server_recv(c->srv, &req) <= 0)
        return;
    json_t *reply = wctl_handle(c, req);
    json_decref(req);
    if (reply)
        ctl_server_reply(c->srv, reply);
}

void wctl_job_ended(wctl *c, const char *failure)
{
    if (!c)
        return;
    wctl_progress(c); /* a checkpoint decided at the very end */
    if (c->wait == WCTL_NONE)
        return;
    json_t *reply;
    uint64_t id = coord_completed(c->rt);
    if (failure) {
        reply = ctl_error("the job failed: %s", failure);
    } else if (c->wait == WCTL_STOP && c->dir) {
        char *err = NULL;
        if (!id) {
            reply = ctl_error("the job stopped without a checkpoint: no "
                              "savepoint");
        } else if (wctl_export_savepoint(c->job, c->run_dir, id, c->dir, &err) <
                   0) {
            reply = ctl_error("%s", err);
            free(err);
        } else {
            log_msg(WEIR_LOG_INFO, WCTL_WHO, "savepoint %s written", c->dir);
            reply = json_pack("{s:b, s:I, s:s}", "ok", 1, "checkpoint",
                              (json_int_t)id, "savepoint", c->dir);
        }
    } else if (c->wait == WCTL_STOP) {
        reply = json_pack("{s:b, s:I}", "ok", 1, "checkpoint", (json_int_t)id);
    } else {
        reply = ctl_error("the job ended before the checkpoint completed");
    }
    keyed_admin_release(c->admin);
    c->admin = NULL;
    c->wait = WCTL_NONE;
    ctl_server_reply(c->srv, reply);
}
