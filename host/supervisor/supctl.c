#include "supervisor/supctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "control/control.h"

#define SUPCTL_WHO       "control"
/* How long a forwarded status may take. */
#define SUPCTL_STATUS_MS 5000
/* How long a checkpoint or savepoint may take past checkpoint.timeout. */
#define SUPCTL_SLACK_MS  10000

struct supctl {
    const topo_job *job;
    char *worker_path; /* <run dir>/worker.sock */
    void *zctx;
    ctl_server *srv;
    void *fwd;            /* REQ to the worker while a request is forwarded */
    json_t *fwd_req;      /* that request */
    int64_t fwd_deadline; /* CLOCK_MONOTONIC ns */
};

static int64_t supctl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t supctl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

supctl *supctl_open(const topo_job *job, const char *run_dir)
{
    supctl *c = calloc(1, sizeof *c);
    char *err = NULL;
    if (!c ||
        asprintf(&c->worker_path, "%s/%s", run_dir, CTL_WORKER_SOCK) < 0 ||
        !(c->zctx = zmq_ctx_new())) {
        log_msg(WEIR_LOG_WARN, SUPCTL_WHO,
                "no control endpoint: out of memory");
        supctl_close(c);
        return NULL;
    }
    if (ctl_server_open(c->zctx, run_dir, CTL_SUPERVISOR_SOCK, &c->srv, &err) <
        0) {
        log_msg(WEIR_LOG_WARN, SUPCTL_WHO, "no control endpoint: %s", err);
        free(err);
        supctl_close(c);
        return NULL;
    }
    c->job = job;
    log_msg(WEIR_LOG_INFO, SUPCTL_WHO, "control endpoint %s/%s (weir ctl)",
            run_dir, CTL_SUPERVISOR_SOCK);
    return c;
}

static void supctl_drop_forward(supctl *c)
{
    if (c->fwd)
        zmq_close(c->fwd);
    c->fwd = NULL;
    json_decref(c->fwd_req);
    c->fwd_req = NULL;
}

void supctl_close(supctl *c)
{
    if (!c)
        return;
    if (c->fwd_req)
        ctl_server_reply(c->srv, ctl_error("the run is ending"));
    supctl_drop_forward(c);
    ctl_server_close(c->srv);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    free(c->worker_path);
    free(c);
}

int supctl_poll_items(supctl *c, zmq_pollitem_t *items)
{
    /* REP alternates: no new request while one is being forwarded. */
    items[0] =
        (zmq_pollitem_t){.socket = c->fwd ? c->fwd : ctl_server_socket(c->srv),
                         .events = ZMQ_POLLIN};
    return 1;
}

int64_t supctl_deadline_ns(const supctl *c)
{
    return c && c->fwd ? c->fwd_deadline : INT64_MAX;
}

/* The supervisor's part of `status`, added to `r` (the worker's reply, or
 * a new object). */
static json_t *supctl_status(json_t *r, const supctl_info *in)
{
    if (!r)
        r = json_pack("{s:b}", "ok", 1);
    json_t *sup =
        json_pack("{s:s, s:I, s:i, s:i, s:f, s:s?}", "state", in->state,
                  "worker", (json_int_t)in->worker, "attempt", in->attempt,
                  "restarts", (int)in->restarts, "uptime_s",
                  (double)(supctl_wall_ms() - in->run_started_ms) / 1e3,
                  "last_failure", in->last_failure);
    json_object_set_new(r, "supervisor", sup);
    return r;
}

/* How long the worker may take to answer `cmd`. */
static int64_t supctl_timeout_ms(const supctl *c, const char *cmd)
{
    if (!strcmp(cmd, "checkpoint") || !strcmp(cmd, "savepoint"))
        return topo_param_int(&c->job->checkpoint, "timeout") + SUPCTL_SLACK_MS;
    if (!strcmp(cmd, "state")) /* up to 3 checkpoints (runtime/wctl.c) */
        return 3 * topo_param_int(&c->job->checkpoint, "timeout") +
               SUPCTL_SLACK_MS;
    if (!strcmp(cmd, "stop"))
        return topo_param_int(&c->job->runtime, "stop_timeout") +
               topo_param_int(&c->job->checkpoint, "timeout") + SUPCTL_SLACK_MS;
    return SUPCTL_STATUS_MS;
}

/* Starts forwarding `req` (taken) to the worker; answers at once when that
 * cannot be done. */
static void supctl_forward(supctl *c, json_t *req, const supctl_info *in)
{
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    char ep[CTL_MAX_SOCK_PATH + 16];
    snprintf(ep, sizeof ep, "ipc://%s", c->worker_path);
    char *text = json_dumps(req, JSON_COMPACT);
    int zero = 0;
    c->fwd = zmq_socket(c->zctx, ZMQ_REQ);
    if (!text || !c->fwd ||
        zmq_setsockopt(c->fwd, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_connect(c->fwd, ep) < 0 ||
        zmq_send(c->fwd, text, strlen(text), 0) < 0) {
        free(text);
        supctl_drop_forward(c);
        json_t *r =
            ctl_error("cannot reach the worker: %s", zmq_strerror(errno));
        ctl_server_reply(c->srv,
                         !strcmp(cmd, "status") ? supctl_status(r, in) : r);
        json_decref(req);
        return;
    }
    free(text);
    c->fwd_req = req;
    c->fwd_deadline = supctl_now_ns() + supctl_timeout_ms(c, cmd) * 1000000;
}

/* Handles one request from `weir ctl`. */
static void supctl_request(supctl *c, const supctl_info *in)
{
    json_t *req = NULL;
    if (ctl_server_recv(c->srv, &req) <= 0)
        return;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd) {
        ctl_server_reply(c->srv, ctl_error("bad request: no \"cmd\""));
        json_decref(req);
        return;
    }
    if (!in->worker) {
        if (!strcmp(cmd, "status"))
            ctl_server_reply(c->srv, supctl_status(NULL, in));
        else
            ctl_server_reply(c->srv,
                             ctl_error("no worker is running now (%s); try "
                                       "again",
                                       in->state));
        json_decref(req);
        return;
    }
    supctl_forward(c, req, in);
}

/* Relays the worker's answer to the forwarded request. */
static void supctl_relay(supctl *c, const supctl_info *in)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    json_t *r = NULL;
    if (zmq_msg_recv(&msg, c->fwd, ZMQ_DONTWAIT) >= 0) {
        json_error_t je;
        r = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &je);
        if (r && !json_is_object(r)) {
            json_decref(r);
            r = NULL;
        }
        if (!r)
            r = ctl_error("bad answer from the worker");
    }
    zmq_msg_close(&msg);
    if (!r)
        return; /* nothing yet */
    const char *cmd = json_string_value(json_object_get(c->fwd_req, "cmd"));
    if (cmd && !strcmp(cmd, "status"))
        r = supctl_status(r, in);
    ctl_server_reply(c->srv, r);
    supctl_drop_forward(c);
}

void supctl_handle(supctl *c, const zmq_pollitem_t *items, int n,
                   const supctl_info *in)
{
    if (!c)
        return;
    if (n > 0 && (items[0].revents & ZMQ_POLLIN)) {
        if (c->fwd)
            supctl_relay(c, in);
        else
            supctl_request(c, in);
    }
    if (c->fwd && supctl_now_ns() >= c->fwd_deadline) {
        const char *cmd = json_string_value(json_object_get(c->fwd_req, "cmd"));
        json_t *r = ctl_error("the worker did not answer in time");
        if (cmd && !strcmp(cmd, "status")) {
            json_decref(r); /* the supervisor's own part, and a note */
            r = supctl_status(NULL, in);
            json_object_set_new(r, "worker_error",
                                json_string("the worker did not answer in "
                                            "time"));
        }
        ctl_server_reply(c->srv, r);
        supctl_drop_forward(c);
    }
}

void supctl_worker_ended(supctl *c, const char *how, const supctl_info *in)
{
    if (!c || !c->fwd)
        return;
    /* The worker answers a stop before it exits: the answer may still be on
     * its way. */
    zmq_pollitem_t it = {.socket = c->fwd, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 200) > 0) {
        supctl_relay(c, in);
        if (!c->fwd)
            return;
    }
    const char *cmd = json_string_value(json_object_get(c->fwd_req, "cmd"));
    if (cmd && !strcmp(cmd, "status")) /* what the supervisor knows */
        ctl_server_reply(c->srv, supctl_status(NULL, in));
    else
        ctl_server_reply(c->srv,
                         ctl_error("the worker ended (%s) before it answered; "
                                   "a checkpoint, savepoint or state change "
                                   "it waited for counts only if that "
                                   "checkpoint completed (a restarted worker "
                                   "restores the newest completed one)",
                                   how));
    supctl_drop_forward(c);
}
