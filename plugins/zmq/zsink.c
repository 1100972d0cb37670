/*
 * zsink.c - operator "zmq_sink": records to ZeroMQ messages, on a PUSH or
 * PUB socket (`socket`) bound (bind=true) or connected to `endpoint`
 * ("{subtask}" is replaced by the subtask index; with bind=true and
 * parallelism > 1 it is required).
 *
 * Messages (`format`):
 *   json       one frame: the value (a msgpack map by convention) as JSON
 *              text, written as jsonrec.h describes;
 *   msgpack    one frame: the value bytes as they are;
 *   multipart  frames key, ts (8-byte big-endian int64 ms; empty when the
 *              record has no event time), value.
 * PUB puts a topic frame first: the value of `topic_field` in the value map
 * (a string, or a number as decimal text), or the record key when
 * topic_field is unset. A record that cannot be sent so (json of a value
 * that is not msgpack, a missing or ill-typed topic field) is bad: logged
 * (the first 10), counted and skipped, or with on_error=fail, fails the
 * subtask.
 *
 * Sending: each record is handed to ZeroMQ in process(), so nothing is
 * held in the plugin at a checkpoint barrier. PUSH blocks while no peer can
 * take a message (back pressure; a warning every 10 s; with send_timeout
 * the subtask fails after that long); PUB never blocks and drops what a
 * slow or not yet connected subscriber cannot take (ZeroMQ's high-water
 * mark). close() waits up to `linger` for queued messages to be written to
 * the connection. At the end of a bounded job the worker then exits, and a
 * peer whose receive queue was full when the connection closed drops what
 * it had not taken in yet (ZeroMQ does not read a closed connection to its
 * end): peers that read slower than the job sends should set ZMQ_RCVHWM to
 * 0 (no limit).
 *
 * Guarantee: at-least-once at best. After a restart the records since the
 * restored checkpoint are sent again (duplicates); ZeroMQ confirms no
 * delivery, so messages still queued in a worker that is killed are lost,
 * and PUB loses messages as described.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "jsonrec.h"
#include "mpscan.h"
#include "zmqop.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define ZSNK_WAIT_MS   1000  /* one blocking send attempt */
#define ZSNK_WARN_MS   10000 /* warn this often while blocked */
#define ZSNK_LOG_LIMIT 10

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def zsnk_p_endpoint = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "endpoint",
    .type = WEIR_PARAM_STRING,
    .description = "ZeroMQ endpoint (tcp://host:port, ipc://path); "
                   "{subtask} is replaced by the subtask index"};
static const weir_param_def zsnk_p_bind = {
    .size = sizeof(weir_param_def),
    .name = "bind",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "true: bind the endpoint; false: connect to it"};
static const char *const zsnk_socket_choices[] = {"push", "pub", NULL};
static const weir_param_def zsnk_p_socket = {
    .size = sizeof(weir_param_def),
    .name = "socket",
    .type = WEIR_PARAM_ENUM,
    .default_value = "push",
    .choices = zsnk_socket_choices,
    .description = "push: blocks without a peer (back pressure); pub: drops "
                   "what subscribers cannot take"};
static const char *const zsnk_format_choices[] = {"json", "msgpack",
                                                  "multipart", NULL};
static const weir_param_def zsnk_p_format = {
    .size = sizeof(weir_param_def),
    .name = "format",
    .type = WEIR_PARAM_ENUM,
    .default_value = "json",
    .choices = zsnk_format_choices,
    .description = "json: the value as JSON; msgpack: the value bytes; "
                   "multipart: key, ts (8-byte big-endian ms), value"};
static const weir_param_def zsnk_p_topic_field = {
    .size = sizeof(weir_param_def),
    .name = "topic_field",
    .type = WEIR_PARAM_STRING,
    .description = "socket pub: value field sent as the topic frame; unset = "
                   "the record key"};
static const weir_param_def zsnk_p_linger = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "linger",
    .type = WEIR_PARAM_DURATION,
    .default_value = "5s",
    .min = 0,
    .description = "how long close() waits for queued messages to be written "
                   "to the connection"};
static const weir_param_def zsnk_p_send_timeout = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "send_timeout",
    .type = WEIR_PARAM_DURATION,
    .default_value = "0s",
    .min = 0,
    .description = "push: fail when no peer takes a message for this long; "
                   "0s = wait for ever"};
static const char *const zsnk_on_error_choices[] = {"skip", "fail", NULL};
static const weir_param_def zsnk_p_on_error = {
    .size = sizeof(weir_param_def),
    .name = "on_error",
    .type = WEIR_PARAM_ENUM,
    .default_value = "skip",
    .choices = zsnk_on_error_choices,
    .description = "record that cannot be sent: skip (log and count it) or "
                   "fail the job"};

static const weir_param_def *const zsnk_params[] = {
    &zsnk_p_endpoint,     &zsnk_p_bind,        &zsnk_p_socket,
    &zsnk_p_format,       &zsnk_p_topic_field, &zsnk_p_linger,
    &zsnk_p_send_timeout, &zsnk_p_on_error,    NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

enum { ZSNK_JSON, ZSNK_MSGPACK, ZSNK_MULTIPART };

typedef struct zsnk {
    int pub;
    int format;
    char *endpoint;
    char *topic_field; /* or NULL: the key */
    int fail_on_error;
    int64_t send_timeout; /* ms; 0 = for ever */
    void *zctx;
    void *sock;
    weir_mp_reader rd;
    jrec_buf out;
    uint64_t sent, bad;
    weir_metric *m_sent, *m_bad;
} zsnk;

static int zsnk_zerr(weir_ctx *ctx, const zsnk *s, const char *what)
{
    weir_set_error(ctx, "zmq_sink: %s: %s failed: %s", s->endpoint, what,
                   zmq_strerror(errno));
    return WEIR_EIO;
}

/* Sends one frame, waiting while PUSH has no peer that can take it. */
static int zsnk_send(weir_ctx *ctx, zsnk *s, const void *p, size_t n, int more)
{
    int64_t waited = 0;
    while (zmq_send(s->sock, p, n, more ? ZMQ_SNDMORE : 0) < 0) {
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return zsnk_zerr(ctx, s, "sending");
        waited += ZSNK_WAIT_MS;
        if (s->send_timeout && waited >= s->send_timeout) {
            weir_set_error(ctx,
                           "zmq_sink: %s: no peer took a message for %" PRId64
                           " ms (send_timeout)",
                           s->endpoint, waited);
            return WEIR_EIO;
        }
        if (waited % ZSNK_WARN_MS == 0)
            weir_log(ctx, WEIR_LOG_WARN,
                     "zmq_sink: %s: no peer has taken a message for %" PRId64
                     " s; waiting (a PUSH socket needs a connected peer with "
                     "room)",
                     s->endpoint, waited / 1000);
    }
    return WEIR_OK;
}

static int zsnk_bad(weir_ctx *ctx, zsnk *s, const weir_record *rec,
                    const char *why)
{
    s->bad++;
    weir_counter_add(ctx, s->m_bad, 1);
    int kn = rec->key_len > 64 ? 64 : (int)rec->key_len;
    const char *key = rec->key ? (const char *)rec->key : "";
    if (s->fail_on_error) {
        weir_set_error(ctx, "zmq_sink: %s: record with key '%.*s': %s",
                       s->endpoint, kn, key, why);
        return WEIR_EINVAL;
    }
    if (s->bad <= ZSNK_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN,
                 "zmq_sink: %s: record with key '%.*s': %s; skipped%s",
                 s->endpoint, kn, key, why,
                 s->bad == ZSNK_LOG_LIMIT
                     ? " (further bad records are counted, not logged)"
                     : "");
    return WEIR_OK;
}

/* The unpacked value, or NULL when it is not one plausible msgpack
 * object. */
static const msgpack_object *zsnk_value(zsnk *s, const weir_record *rec)
{
    if (!mpscan_plausible(rec->value, rec->value_len))
        return NULL;
    return weir_mp_read(&s->rd, rec->value, rec->value_len);
}

/* PUB: the topic frame. */
static int zsnk_topic(weir_ctx *ctx, zsnk *s, const weir_record *rec, char *why,
                      int *sent)
{
    const char *t = rec->key;
    size_t tl = rec->key_len;
    char tmp[40];
    *sent = 0;
    if (s->topic_field) {
        const msgpack_object *v =
            weir_mp_find(zsnk_value(s, rec), s->topic_field);
        if (!v) {
            snprintf(why, JREC_WHY, "no topic field '%s' in its value",
                     s->topic_field);
            return WEIR_OK;
        }
        if (jrec_as_text(v, "topic", s->topic_field, tmp, &t, &tl, why) < 0)
            return WEIR_OK;
    }
    *sent = 1;
    return zsnk_send(ctx, s, t, tl, 1);
}

static int zsnk_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    zsnk *s = self;
    char why[JREC_WHY];
    const msgpack_object *o = NULL;
    (void)port;
    if (s->format == ZSNK_JSON && !(o = zsnk_value(s, rec)))
        return zsnk_bad(ctx, s, rec, "the value is not msgpack");
    if (s->format == ZSNK_JSON) {
        s->out.len = 0;
        jrec_mp_to_json(&s->out, o);
        if (s->out.oom) {
            s->out.oom = 0;
            weir_set_error(ctx, "zmq_sink: out of memory");
            return WEIR_ENOMEM;
        }
    }
    int rc, topic_sent = 1;
    if (s->pub && (rc = zsnk_topic(ctx, s, rec, why, &topic_sent)) < 0)
        return rc;
    if (!topic_sent)
        return zsnk_bad(ctx, s, rec, why);
    if (s->format == ZSNK_JSON) {
        rc = zsnk_send(ctx, s, s->out.p, s->out.len, 0);
    } else if (s->format == ZSNK_MSGPACK) {
        rc = zsnk_send(ctx, s, rec->value, rec->value_len, 0);
    } else {
        unsigned char ts[8];
        for (int i = 0; i < 8; i++)
            ts[i] = (unsigned char)((uint64_t)rec->ts >> (56 - 8 * i));
        if ((rc = zsnk_send(ctx, s, rec->key, rec->key_len, 1)) == WEIR_OK &&
            (rc = zsnk_send(ctx, s, ts, rec->ts == WEIR_TS_NONE ? 0 : 8, 1)) ==
                WEIR_OK)
            rc = zsnk_send(ctx, s, rec->value, rec->value_len, 0);
    }
    if (rc == WEIR_OK) {
        s->sent++;
        weir_counter_add(ctx, s->m_sent, 1);
    }
    return rc;
}

static int zsnk_finish(weir_ctx *ctx, void *self)
{
    zsnk *s = self;
    weir_log(ctx, WEIR_LOG_INFO,
             "zmq_sink: %s: %" PRIu64 " message(s) sent, %" PRIu64
             " bad record(s) skipped",
             s->endpoint, s->sent, s->bad);
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void zsnk_free(zsnk *s)
{
    if (s->sock)
        zmq_close(s->sock);
    if (s->zctx)
        zmq_ctx_term(s->zctx); /* waits up to the linger for delivery */
    weir_mp_reader_destroy(&s->rd);
    jrec_buf_free(&s->out);
    free(s->endpoint);
    free(s->topic_field);
    free(s);
}

static int zsnk_socket(weir_ctx *ctx, zsnk *s, int bind, int64_t linger_ms)
{
    int wait = ZSNK_WAIT_MS;
    int linger = linger_ms > 3600000 ? 3600000 : (int)linger_ms;
    if (!(s->zctx = zmq_ctx_new()))
        return zsnk_zerr(ctx, s, "zmq_ctx_new");
    if (!(s->sock = zmq_socket(s->zctx, s->pub ? ZMQ_PUB : ZMQ_PUSH)))
        return zsnk_zerr(ctx, s, "zmq_socket");
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_setsockopt(s->sock, ZMQ_SNDTIMEO, &wait, sizeof wait) < 0)
        return zsnk_zerr(ctx, s, "setting socket options");
    if ((bind ? zmq_bind(s->sock, s->endpoint)
              : zmq_connect(s->sock, s->endpoint)) < 0)
        return zsnk_zerr(ctx, s, bind ? "bind" : "connect");
    return WEIR_OK;
}

static int zsnk_configure(weir_ctx *ctx, zsnk *s, int *bind, int64_t *linger)
{
    static const char *const kinds[] = {"push", "pub", NULL};
    static const char *const formats[] = {"json", "msgpack", "multipart", NULL};
    static const char *const on_error[] = {"skip", "fail", NULL};
    int placeholder = 0, rc;
    if ((rc = zmqop_endpoint(ctx, "zmq_sink", &s->endpoint, &placeholder)) <
            0 ||
        (rc = zmqop_enum(ctx, "zmq_sink", "socket", kinds, &s->pub)) < 0 ||
        (rc = zmqop_enum(ctx, "zmq_sink", "format", formats, &s->format)) < 0 ||
        (rc = zmqop_enum(ctx, "zmq_sink", "on_error", on_error,
                         &s->fail_on_error)) < 0 ||
        (rc = zmqop_string(ctx, "zmq_sink", "topic_field", &s->topic_field)) <
            0)
        return rc;
    if ((rc = weir_param_bool(ctx, "bind", bind)) < 0 ||
        (rc = weir_param_int(ctx, "linger", linger)) < 0 ||
        (rc = weir_param_int(ctx, "send_timeout", &s->send_timeout)) < 0)
        return weir_set_error(ctx, "zmq_sink: parameters: %s",
                              weir_strerror(rc));
    if (s->topic_field && !s->pub)
        return weir_set_error(ctx, "zmq_sink: topic_field is for socket: pub "
                                   "only");
    if (*bind && weir_parallelism(ctx) > 1 && !placeholder)
        return weir_set_error(ctx,
                              "zmq_sink: endpoint: with bind: true and "
                              "parallelism %u every subtask binds its own "
                              "endpoint; put {subtask} in it",
                              weir_parallelism(ctx));
    return WEIR_OK;
}

static int zsnk_open(weir_ctx *ctx, void **self)
{
    zsnk *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "zmq_sink: out of memory");
    weir_mp_reader_init(&s->rd);
    int bind = 0, rc;
    int64_t linger = 0;
    if ((rc = zsnk_configure(ctx, s, &bind, &linger)) < 0 ||
        (rc = zsnk_socket(ctx, s, bind, linger)) < 0) {
        zsnk_free(s);
        return rc;
    }
    if (weir_metric_register(
            ctx, WEIR_METRIC_COUNTER, "zmq_sink_messages_total",
            "messages handed to ZeroMQ", NULL, NULL, &s->m_sent) < 0)
        s->m_sent = NULL;
    if (weir_metric_register(
            ctx, WEIR_METRIC_COUNTER, "zmq_sink_bad_records_total",
            "records that could not be sent", NULL, NULL, &s->m_bad) < 0)
        s->m_bad = NULL;
    *self = s;
    return WEIR_OK;
}

static void zsnk_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    if (self)
        zsnk_free(self);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

static const char *const zsnk_no_ports[] = {NULL};

const weir_operator zsnk_operator = {
    .size = sizeof(weir_operator),
    .name = "zmq_sink",
    .version = "1.0.0",
    .description = "sends records as ZeroMQ messages (push or pub; json, "
                   "msgpack, multipart). At-least-once at best: resent "
                   "after a restart, lost if queued in a killed worker",
    .output_ports = zsnk_no_ports,
    .params = zsnk_params,
    .open = zsnk_open,
    .process = zsnk_process,
    .finish = zsnk_finish,
    .close = zsnk_close,
};
