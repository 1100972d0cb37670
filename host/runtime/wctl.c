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
#include "runtime/task.h"

#define WCTL_WHO "control"
/* How often rates are sampled. */
#define WCTL_RATE_MS 1000
#define WCTL_MAX_STATES 64

typedef enum wctl_wait {
    WCTL_NONE = 0,
    WCTL_CHECKPOINT, /* answer when ck_id is decided */
    WCTL_SAVEPOINT,  /* ... then export it to `dir` */
    WCTL_STOP        /* answer when the job ended */
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
                         "ttl_ms", ttl, "keys", (json_int_t)v[k].keys,
                         "bytes", (json_int_t)v[k].bytes, "expired",
                         (json_int_t)v[k].expired, "leak_suspected",
                         v[k].leak_suspected));
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
                         "records_in", (json_int_t)s.records_in,
                         "records_out", (json_int_t)s.records_out, "in_rate",
                         r->in_rate, "out_rate", r->out_rate,
                         "backpressured_share", r->blocked_share,
                         "late_records", (json_int_t)s.late_records,
                         "watermark_ms", wm, "states",
                         wctl_states_json(c, i)));
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
    json_t *cks = json_pack("{s:b, s:I, s:I, s:I, s:o}", "enabled",
                            coord_enabled(rt), "completed",
                            (json_int_t)ck.completed, "failed",
                            (json_int_t)ck.failed, "failed_in_row",
                            (json_int_t)in_row, "last", last);
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
            a, json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:i, s:i}", "id", op->id,
                         "type", op->type, "version", op->reg->op.version,
                         "plugin", pl ? pl->desc.name : NULL, "plugin_file",
                         pl ? pl->path : NULL, "parallelism",
                         (int)op->parallelism, "snapshot_version",
                         (int)op->reg->op.snapshot_version));
    }
    return a;
}

int wctl_export_savepoint(const topo_job *job, const char *run_dir,
                          uint64_t id, const char *dir, char **errptr)
{
    char *src = ckpt_dir(run_dir, id);
    char *text = NULL, path[4200];
    size_t len = 0;
    int rc = src ? ckpt_materialize(src, dir, errptr)
                 : err_set(errptr, WEIR_ENOMEM, "out of memory");
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
    json_t *meta = json_pack(
        "{s:i, s:s, s:I, s:I, s:s, s:s?, s:o}", "format", 1, "job", job->name,
        "checkpoint", (json_int_t)id, "created_ms", (json_int_t)wctl_wall_ms(),
        "from_run", run_dir, "job_file", job->path, "operators",
        wctl_operators_json(job));
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
        } else if (wctl_export_savepoint(c->job, c->run_dir, id, c->dir,
                                         &err) < 0) {
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
    c->wait = WCTL_NONE;
    ctl_server_reply(c->srv, reply);
}
