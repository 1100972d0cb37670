/*
 * zsource.c - operator "zmq_source": records from ZeroMQ messages.
 *
 * Sockets (`socket`, on `endpoint`, bound with bind=true, else connected):
 *   pull    messages from PUSH peers; no acknowledgement.
 *   sub     messages from PUB peers matching a `subscribe` prefix (a string
 *           or a list; unset = everything); no acknowledgement. Every
 *           subtask receives every message.
 *   rep     requests from REQ peers, each answered "ok" once accepted, or
 *           "error: REASON" for a message that cannot become a record.
 *   router  like rep for many peers at once ([identity, "", payload...]:
 *           what REQ sends; DEALER peers send the empty frame themselves);
 *           answers go out together after the batch was spooled (group
 *           commit).
 * With bind=true and parallelism > 1 the endpoint must contain
 * "{subtask}", which is replaced by the subtask index (every subtask binds
 * its own endpoint); "{subtask}" is replaced in connected endpoints too.
 *
 * Formats (`format`); frames before the payload (a PUB topic) are ignored:
 *   json       the last frame is a JSON object;
 *   msgpack    the last frame is a msgpack map;
 *   multipart  frames key, ts, value (a leading topic frame makes four):
 *              ts is an 8-byte big-endian int64 of milliseconds, or empty
 *              for none; value is msgpack. key_field and time_field are not
 *              used; id_field is read from the value map.
 * Records are made as jsonrec.h describes (key_field, time_field). A
 * message that cannot become a record is bad: logged (the first 10),
 * counted and skipped (REP/ROUTER peers get the error), or with
 * on_error=fail, fails the subtask. A message whose last frame is exactly
 * `end_message` ends the source (a bounded job: a final checkpoint commits
 * the output); REP/ROUTER peers get "ok" for it.
 *
 * Guarantees. ZeroMQ cannot replay: without a spool a message is handed to
 * the job when it arrives, and a crash loses whatever the restored
 * checkpoint does not cover (at-most-once; REP/ROUTER answer "ok" once the
 * record is emitted, not once it is durable). With `spool: DIR` every
 * accepted message is first appended to a local log (spool.h) in
 * DIR/<subtask>, and the records are then read from the log, so the
 * position in the log is the source's snapshot and a restore replays from
 * it. REP/ROUTER answer "ok" only after the append (and with
 * spool_sync=always its fdatasync; spool_sync=batch syncs at checkpoints
 * and segment ends: that survives a killed worker, not a power loss). A
 * client that resends a request whose answer timed out makes the job
 * exactly-once when messages carry an id (id_field): an id already in the
 * dedup window (the last dedup_window ids, kept in the spool: it survives
 * restarts and the deletion of old segments) is answered "ok" and not
 * appended again. Without an id, a resent message whose first copy was
 * spooled is a duplicate. PULL and SUB cannot acknowledge: what is still
 * queued inside ZeroMQ when the worker dies is lost even with a spool.
 *
 * ZeroMQ's receive queue (ZMQ_RCVHWM, `rcvhwm`) is unlimited by default:
 * with a limit, a PUSH peer blocks while the queue is full, but libzmq then
 * drops what the full queue holds when an ipc peer disconnects right after
 * its last message (a producer that sends and exits), without any crash.
 * Unlimited, the worker holds what peers send ahead of the job in memory.
 *
 * The spool keeps the segments from the newest completed checkpoint's
 * position on; older ones are deleted by notify_checkpoint_complete. While
 * max_spool bytes are not covered by a completed checkpoint the source
 * stops receiving (peers block or wait for their answer). A run that
 * restores no checkpoint starts at the spool's committed mark, so that
 * accepted messages are never skipped; once a stream ended and the mark
 * passed its end, such a run starts a new stream in the same spool, with
 * an empty dedup window (ids are unique within a stream).
 *
 * Snapshot (version 1, 48 bytes, little endian): "WZMQ", mode (u32: 0 no
 * spool, 1 spool), subtask index (u32), 0 (u32), spool id, segment, offset,
 * records emitted (u64 each).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "jsonrec.h"
#include "le.h"
#include "spool.h"
#include "zmqop.h"
#include "zmsg.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define ZSRC_MAX_BATCH    65536
#define ZSRC_BUDGET_MS    5 /* a poll stops receiving after this long */
#define ZSRC_LOG_LIMIT    10
#define ZSRC_MAX_CKPTS    64
#define ZSRC_SNAP_VERSION 1
#define ZSRC_SNAP_LEN     48

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

#define ZSRC_P(n, t, d, desc)                                                  \
    {                                                                          \
        .size = sizeof(weir_param_def), .name = n, .type = t,                  \
        .default_value = d, .description = desc                                \
    }

static const weir_param_def zsrc_p_endpoint = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "endpoint",
    .type = WEIR_PARAM_STRING,
    .description = "ZeroMQ endpoint (tcp://host:port, ipc://path); "
                   "{subtask} is replaced by the subtask index"};
static const weir_param_def zsrc_p_bind =
    ZSRC_P("bind", WEIR_PARAM_BOOL, "false",
           "true: bind the endpoint; false: connect to it");
static const char *const zsrc_socket_choices[] = {"pull", "sub", "rep",
                                                  "router", NULL};
static const weir_param_def zsrc_p_socket = {
    .size = sizeof(weir_param_def),
    .name = "socket",
    .type = WEIR_PARAM_ENUM,
    .default_value = "pull",
    .choices = zsrc_socket_choices,
    .description = "pull, sub: no acknowledgement; rep, router: each message "
                   "answered ok (after the spool append) or error"};
static const weir_param_def zsrc_p_subscribe =
    ZSRC_P("subscribe", WEIR_PARAM_ANY, NULL,
           "socket sub: topic prefix or list of prefixes; unset = all");
static const char *const zsrc_format_choices[] = {"json", "msgpack",
                                                  "multipart", NULL};
static const weir_param_def zsrc_p_format = {
    .size = sizeof(weir_param_def),
    .name = "format",
    .type = WEIR_PARAM_ENUM,
    .default_value = "json",
    .choices = zsrc_format_choices,
    .description = "json object or msgpack map (last frame), or multipart "
                   "frames key, ts (8-byte big-endian ms), value (msgpack)"};
static const weir_param_def zsrc_p_key_field =
    ZSRC_P("key_field", WEIR_PARAM_STRING, NULL,
           "json/msgpack: field whose value (string, or number as text) "
           "becomes the key; required for them");
static const weir_param_def zsrc_p_time_field =
    ZSRC_P("time_field", WEIR_PARAM_STRING, NULL,
           "json/msgpack: field with the event time (integer ms or "
           "ISO-8601); unset = no time");
static const weir_param_def zsrc_p_id_field =
    ZSRC_P("id_field", WEIR_PARAM_STRING, NULL,
           "field with a message id (needs spool): a resent id in the "
           "dedup window is acknowledged, not appended again");
static const weir_param_def zsrc_p_window = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "dedup_window",
    .type = WEIR_PARAM_INT,
    .default_value = "100000",
    .min = 1,
    .max = 1 << 24,
    .description = "with id_field: how many of the most recent ids are "
                   "remembered (in the spool) for deduplication"};
static const weir_param_def zsrc_p_spool = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_OUTPUT_PATH,
    .name = "spool",
    .type = WEIR_PARAM_STRING,
    .description = "directory of a local log written before each ack: "
                   "replayable from checkpoints; unset = at-most-once"};
static const char *const zsrc_sync_choices[] = {"always", "batch", NULL};
static const weir_param_def zsrc_p_sync = {
    .size = sizeof(weir_param_def),
    .name = "spool_sync",
    .type = WEIR_PARAM_ENUM,
    .default_value = "always",
    .choices = zsrc_sync_choices,
    .description = "always: fdatasync before acks; batch: at checkpoints "
                   "(acked messages survive a killed worker, not power loss)"};
static const weir_param_def zsrc_p_segment = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "spool_segment",
    .type = WEIR_PARAM_SIZE,
    .default_value = "64MiB",
    .min = 65536,
    .max = 1073741824,
    .description = "size of a spool segment file; whole segments are deleted "
                   "once a checkpoint covers them"};
static const weir_param_def zsrc_p_max_spool = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "max_spool",
    .type = WEIR_PARAM_SIZE,
    .default_value = "1GiB",
    .min = 65536,
    .description = "stop receiving while this many spool bytes are not "
                   "covered by a completed checkpoint (back pressure)"};
static const weir_param_def zsrc_p_end =
    ZSRC_P("end_message", WEIR_PARAM_STRING, NULL,
           "a message whose last frame is exactly this text ends the source");
static const weir_param_def zsrc_p_batch = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "batch",
    .type = WEIR_PARAM_INT,
    .default_value = "1024",
    .min = 1,
    .max = ZSRC_MAX_BATCH,
    .description = "messages received (and records emitted) per poll at "
                   "most"};
static const weir_param_def zsrc_p_max_message = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "max_message",
    .type = WEIR_PARAM_SIZE,
    .default_value = "16MiB",
    .min = 64,
    .max = 268435456,
    .description = "largest frame accepted; ZeroMQ disconnects a peer that "
                   "sends a larger one"};
static const weir_param_def zsrc_p_rcvhwm = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "rcvhwm",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .min = 0,
    .max = 100000000,
    .description = "ZMQ_RCVHWM: 0 = no limit; a limit lets PUSH peers block, "
                   "but libzmq drops a full queue's ipc peer tail"};
static const char *const zsrc_on_error_choices[] = {"skip", "fail", NULL};
static const weir_param_def zsrc_p_on_error = {
    .size = sizeof(weir_param_def),
    .name = "on_error",
    .type = WEIR_PARAM_ENUM,
    .default_value = "skip",
    .choices = zsrc_on_error_choices,
    .description = "bad message: skip (log, count, answer the error) or "
                   "fail the job"};

static const weir_param_def *const zsrc_params[] = {&zsrc_p_endpoint,
                                                    &zsrc_p_bind,
                                                    &zsrc_p_socket,
                                                    &zsrc_p_subscribe,
                                                    &zsrc_p_format,
                                                    &zsrc_p_key_field,
                                                    &zsrc_p_time_field,
                                                    &zsrc_p_id_field,
                                                    &zsrc_p_window,
                                                    &zsrc_p_spool,
                                                    &zsrc_p_sync,
                                                    &zsrc_p_segment,
                                                    &zsrc_p_max_spool,
                                                    &zsrc_p_end,
                                                    &zsrc_p_batch,
                                                    &zsrc_p_max_message,
                                                    &zsrc_p_rcvhwm,
                                                    &zsrc_p_on_error,
                                                    NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum zsrc_kind { ZSRC_PULL, ZSRC_SUB, ZSRC_REP, ZSRC_ROUTER } zsrc_kind;

/* What became of one received message. */
typedef enum zsrc_fate {
    ZSRC_ACCEPTED, /* emitted, or appended to the spool */
    ZSRC_DUPLICATE,
    ZSRC_BAD,
    ZSRC_END
} zsrc_fate;

typedef struct zsrc_ckpt {
    uint64_t id;
    zspool_pos pos;
} zsrc_ckpt;

typedef struct zsrc {
    zsrc_kind kind;
    zmsg_format format;
    char *endpoint;
    jrec_fields fields;
    char *end_msg; /* or NULL */
    size_t end_len;
    uint32_t batch;
    int fail_on_error;
    uint32_t sub;
    void *zctx;
    void *sock;
    int spooled;
    zspool sp;
    uint64_t max_spool;
    int stalled;     /* not receiving: the spool is full */
    int input_done;  /* the end message arrived (or is in the spool) */
    int at_end;      /* every record was emitted: EOF next */
    zmsg m;          /* the message being handled */
    zmq_msg_t *pend; /* ROUTER: identities waiting for "ok" */
    size_t n_pend;
    size_t cap_pend;
    zsrc_ckpt ckpts[ZSRC_MAX_CKPTS]; /* snapshots not yet completed */
    size_t n_ckpts;
    uint64_t received, accepted, duplicates, bad, emitted;
    weir_metric *m_accepted, *m_dups, *m_bad, *m_backlog;
} zsrc;

static int64_t zsrc_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int zsrc_zerr(weir_ctx *ctx, const zsrc *s, const char *what)
{
    weir_set_error(ctx, "zmq_source: %s: %s failed: %s", s->endpoint, what,
                   zmq_strerror(errno));
    return WEIR_EIO;
}

/* ------------------------------------------------------------------------ */
/* Receiving and answering                                                   */
/* ------------------------------------------------------------------------ */

/* Receives one whole message into s->m: 1, 0 when none is waiting, or a
 * negative code. */
static int zsrc_recv(weir_ctx *ctx, zsrc *s)
{
    int rc = zmsg_recv(&s->m, s->sock);
    if (rc < 0)
        return zsrc_zerr(ctx, s, "receiving");
    s->received += (uint64_t)rc;
    return rc;
}

/* Sends one frame; a peer that went away is not an error. */
static int zsrc_send(weir_ctx *ctx, zsrc *s, const void *p, size_t n, int more)
{
    if (zmq_send(s->sock, p, n, ZMQ_DONTWAIT | (more ? ZMQ_SNDMORE : 0)) < 0 &&
        errno != EAGAIN && errno != EHOSTUNREACH)
        return zsrc_zerr(ctx, s, "answering");
    return WEIR_OK;
}

/* Answers the request in s->m ("ok" or "error: why"). ROUTER answers
 * go to the identity in frames[0]. */
static int zsrc_answer(weir_ctx *ctx, zsrc *s, const char *why)
{
    char buf[JREC_WHY + 16];
    int n = why ? snprintf(buf, sizeof buf, "error: %s", why)
                : snprintf(buf, sizeof buf, "ok");
    if (s->kind == ZSRC_ROUTER) {
        int rc = zsrc_send(ctx, s, zmq_msg_data(&s->m.frames[0]),
                           zmq_msg_size(&s->m.frames[0]), 1);
        if (rc < 0 || (rc = zsrc_send(ctx, s, "", 0, 1)) < 0)
            return rc;
    }
    return zsrc_send(ctx, s, buf, (size_t)n, 0);
}

/* ROUTER: keeps the identity of the request in s->m for an "ok" sent
 * after the spool flush. */
static int zsrc_defer_ok(weir_ctx *ctx, zsrc *s)
{
    if (s->n_pend == s->cap_pend) {
        size_t cap = s->cap_pend ? 2 * s->cap_pend : 64;
        zmq_msg_t *p = realloc(s->pend, cap * sizeof *p);
        if (!p) {
            weir_set_error(ctx, "zmq_source: out of memory");
            return WEIR_ENOMEM;
        }
        s->pend = p;
        s->cap_pend = cap;
    }
    zmq_msg_t *m = &s->pend[s->n_pend++];
    zmq_msg_init(m);
    zmq_msg_move(m, &s->m.frames[0]);
    return WEIR_OK;
}

static int zsrc_send_deferred(weir_ctx *ctx, zsrc *s)
{
    int rc = WEIR_OK;
    for (size_t i = 0; i < s->n_pend; i++) {
        if (rc == WEIR_OK) {
            zmq_msg_t *id = &s->pend[i];
            if (zmq_msg_send(id, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
                if (errno != EAGAIN && errno != EHOSTUNREACH)
                    rc = zsrc_zerr(ctx, s, "answering");
            } else if ((rc = zsrc_send(ctx, s, "", 0, 1)) == WEIR_OK) {
                rc = zsrc_send(ctx, s, "ok", 2, 0);
            }
        }
        zmq_msg_close(&s->pend[i]);
    }
    s->n_pend = 0;
    return rc;
}

/* A bad message: logged and counted, or the subtask fails. */
static int zsrc_bad(weir_ctx *ctx, zsrc *s, const char *why)
{
    s->bad++;
    weir_counter_add(ctx, s->m_bad, 1);
    if (s->fail_on_error) {
        weir_set_error(ctx, "zmq_source: %s: message %" PRIu64 ": %s",
                       s->endpoint, s->received, why);
        return WEIR_EINVAL;
    }
    if (s->bad <= ZSRC_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN,
                 "zmq_source: %s: message %" PRIu64 ": %s; skipped%s",
                 s->endpoint, s->received, why,
                 s->bad == ZSRC_LOG_LIMIT
                     ? " (further bad messages are counted, not logged)"
                     : "");
    return WEIR_OK;
}

/* Takes the message in s->m (payload from `first`): emits it or
 * appends it to the spool. *fate says what happened; why[] explains
 * ZSRC_BAD. */
static int zsrc_take(weir_ctx *ctx, zsrc *s, size_t first, zsrc_fate *fate,
                     char *why)
{
    zspool_rec r;
    int rc = WEIR_OK;
    if (s->end_msg && zmsg_last_is(&s->m, first, s->end_msg, s->end_len)) {
        *fate = ZSRC_END;
        s->input_done = 1;
        return s->spooled ? zspool_append_end(ctx, &s->sp) : WEIR_OK;
    }
    if (zmsg_record(&s->m, first, s->format, &s->fields, &r, why) < 0) {
        *fate = ZSRC_BAD;
        return WEIR_OK;
    }
    if (r.id_len && zspool_seen(&s->sp, r.id, r.id_len)) {
        *fate = ZSRC_DUPLICATE;
        s->duplicates++;
        weir_counter_add(ctx, s->m_dups, 1);
        return WEIR_OK;
    }
    *fate = ZSRC_ACCEPTED;
    if (s->spooled) {
        rc = zspool_append(ctx, &s->sp, &r);
    } else {
        rc = weir_emit(ctx, 0, r.key, r.key_len, r.ts, r.value, r.value_len);
        if (rc < 0)
            weir_set_error(ctx, "zmq_source: %s: emit failed: %s", s->endpoint,
                           weir_strerror(rc));
        else
            s->emitted++;
    }
    if (rc == WEIR_OK) {
        s->accepted++;
        weir_counter_add(ctx, s->m_accepted, 1);
    }
    return rc;
}

/* Handles one received message according to the socket kind. */
static int zsrc_handle(weir_ctx *ctx, zsrc *s)
{
    char why[JREC_WHY];
    zsrc_fate fate;
    size_t first = 0;
    int rc;
    if (s->kind == ZSRC_ROUTER) {
        first = 2;
        if (s->m.n < 2 || zmq_msg_size(&s->m.frames[1]) != 0) {
            snprintf(why, sizeof why,
                     "no empty frame after the identity (send as REQ does, "
                     "or an empty frame first from DEALER)");
            rc = zsrc_answer(ctx, s, why);
            return rc < 0 ? rc : zsrc_bad(ctx, s, why);
        }
    }
    if ((rc = zsrc_take(ctx, s, first, &fate, why)) < 0)
        return rc;
    if (fate == ZSRC_BAD) {
        if (s->kind == ZSRC_REP || s->kind == ZSRC_ROUTER)
            rc = zsrc_answer(ctx, s, why);
        return rc < 0 ? rc : zsrc_bad(ctx, s, why);
    }
    if (s->kind == ZSRC_ROUTER)
        return zsrc_defer_ok(ctx, s);
    if (s->kind != ZSRC_REP)
        return WEIR_OK;
    /* REP: the answer waits for the append to be durable. */
    if (s->spooled && fate != ZSRC_DUPLICATE &&
        (rc = zspool_flush(ctx, &s->sp, 0)) < 0)
        return rc;
    return zsrc_answer(ctx, s, NULL);
}

/* Whether the spool is too far ahead of the last completed checkpoint;
 * logs when that starts and ends. */
static int zsrc_full(weir_ctx *ctx, zsrc *s)
{
    uint64_t behind = zspool_behind(&s->sp);
    int full = behind >= s->max_spool;
    if (full && !s->stalled)
        weir_log(ctx, WEIR_LOG_WARN,
                 "zmq_source: spool %s: %" PRIu64
                 " bytes are not covered by a completed checkpoint "
                 "(max_spool %" PRIu64
                 "): not receiving until a checkpoint completes (a spool "
                 "needs checkpoint.interval > 0)",
                 s->sp.dir, behind, s->max_spool);
    else if (!full && s->stalled)
        weir_log(ctx, WEIR_LOG_INFO,
                 "zmq_source: spool %s: receiving again (%" PRIu64
                 " bytes behind)",
                 s->sp.dir, behind);
    s->stalled = full;
    return full;
}

/* Receives up to `batch` messages within the time budget. */
static int zsrc_receive(weir_ctx *ctx, zsrc *s, int *did)
{
    int64_t t0 = zsrc_mono_ms();
    int rc = WEIR_OK;
    for (uint32_t i = 0; i < s->batch && !s->input_done; i++) {
        if (s->spooled && zsrc_full(ctx, s))
            break;
        if (i && zsrc_mono_ms() - t0 >= ZSRC_BUDGET_MS)
            break;
        if ((rc = zsrc_recv(ctx, s)) <= 0)
            break;
        *did = 1;
        if ((rc = zsrc_handle(ctx, s)) < 0)
            break;
    }
    if (rc >= 0 && s->spooled)
        rc = zspool_flush(ctx, &s->sp, 0);
    /* Deferred answers go out only after a successful flush. */
    if (rc >= 0)
        rc = zsrc_send_deferred(ctx, s);
    for (size_t i = 0; i < s->n_pend; i++)
        zmq_msg_close(&s->pend[i]);
    s->n_pend = 0;
    if (rc >= 0 && !s->spooled && s->input_done)
        s->at_end = 1;
    return rc < 0 ? rc : WEIR_OK;
}

/* Emits up to `batch` records from the spool. */
static int zsrc_replay(weir_ctx *ctx, zsrc *s, int *did)
{
    zspool_rec r;
    for (uint32_t i = 0; i < s->batch; i++) {
        int rc = zspool_next(ctx, &s->sp, &r);
        if (rc <= 0)
            return rc;
        *did = 1;
        if (r.end) {
            s->at_end = 1;
            return WEIR_OK;
        }
        rc = weir_emit(ctx, 0, r.key, r.key_len, r.ts, r.value, r.value_len);
        if (rc < 0) {
            weir_set_error(ctx, "zmq_source: %s: emit failed: %s", s->endpoint,
                           weir_strerror(rc));
            return rc;
        }
        s->emitted++;
    }
    return WEIR_OK;
}

/* A run without restore: the reader starts at the spool's mark. */
static int zsrc_position(weir_ctx *ctx, zsrc *s)
{
    zspool *sp = &s->sp;
    zspool_pos end = zspool_end(sp);
    int rc,
        fresh = sp->ended && sp->mark.seg == end.seg && sp->mark.off == end.off;
    /* A stream that ended and was committed is followed by a new one. */
    if (fresh && (rc = zspool_reopen(ctx, sp)) < 0)
        return rc;
    s->input_done = sp->ended;
    if ((rc = zspool_seek(ctx, sp, sp->mark)) < 0)
        return rc;
    if (fresh)
        weir_log(ctx, WEIR_LOG_INFO,
                 "zmq_source: spool %s: the previous stream ended and is "
                 "committed; a new one starts in segment %" PRIu64,
                 sp->dir, sp->last);
    else
        weir_log(ctx, WEIR_LOG_INFO,
                 "zmq_source: spool %s: no checkpoint restored; reading from "
                 "the committed mark (segment %" PRIu64 ", offset %" PRIu64
                 "), %" PRIu64 " byte(s) before the end%s",
                 sp->dir, sp->mark.seg, sp->mark.off, zspool_behind(sp),
                 s->input_done ? ", which ends the stream" : "");
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int zsrc_poll(weir_ctx *ctx, void *self)
{
    zsrc *s = self;
    int did = 0, rc;
    if (s->at_end)
        return WEIR_EOF;
    if (s->spooled && !s->sp.positioned && (rc = zsrc_position(ctx, s)) < 0)
        return rc;
    if ((rc = zsrc_receive(ctx, s, &did)) < 0)
        return rc;
    if (s->spooled) {
        if ((rc = zsrc_replay(ctx, s, &did)) < 0)
            return rc;
        weir_gauge_set(ctx, s->m_backlog, (double)zspool_behind(&s->sp));
    }
    return did || s->at_end ? WEIR_OK : WEIR_EAGAIN;
}

/* Remembers the position of checkpoint `id` until it completes. */
static void zsrc_remember(zsrc *s, uint64_t id, zspool_pos pos)
{
    if (s->n_ckpts == ZSRC_MAX_CKPTS) {
        memmove(s->ckpts, s->ckpts + 1,
                (ZSRC_MAX_CKPTS - 1) * sizeof *s->ckpts);
        s->n_ckpts--;
    }
    s->ckpts[s->n_ckpts++] = (zsrc_ckpt){id, pos};
}

static int zsrc_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    zsrc *s = self;
    unsigned char b[ZSRC_SNAP_LEN] = {'W', 'Z', 'M', 'Q'};
    int rc;
    le_put_u32(b + 8, s->sub);
    le_put_u64(b + 40, s->emitted);
    if (s->spooled) {
        if (!s->sp.positioned && (rc = zsrc_position(ctx, s)) < 0)
            return rc;
        /* The position must name bytes that survive a power loss. */
        if ((rc = zspool_flush(ctx, &s->sp, 1)) < 0)
            return rc;
        zspool_pos pos = zspool_tell(&s->sp);
        le_put_u32(b + 4, 1);
        le_put_u64(b + 16, s->sp.id);
        le_put_u64(b + 24, pos.seg);
        le_put_u64(b + 32, pos.off);
        zsrc_remember(s, checkpoint_id, pos);
    }
    rc = weir_snapshot_write(ctx, b, sizeof b);
    if (rc < 0)
        weir_set_error(ctx,
                       "zmq_source: %s: writing the snapshot of checkpoint "
                       "%" PRIu64 " failed: %s",
                       s->endpoint, checkpoint_id, weir_strerror(rc));
    return rc;
}

static int zsrc_notify(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    zsrc *s = self;
    size_t k = 0;
    while (k < s->n_ckpts && s->ckpts[k].id <= checkpoint_id)
        k++;
    if (!s->spooled || k == 0)
        return WEIR_OK;
    zspool_pos pos = s->ckpts[k - 1].pos;
    memmove(s->ckpts, s->ckpts + k, (s->n_ckpts - k) * sizeof *s->ckpts);
    s->n_ckpts -= k;
    return zspool_commit(ctx, &s->sp, pos);
}

static int zsrc_restore_spool(weir_ctx *ctx, zsrc *s, uint64_t checkpoint_id,
                              const unsigned char *b)
{
    uint64_t id = le_get_u64(b + 16);
    zspool_pos pos = {le_get_u64(b + 24), le_get_u64(b + 32)};
    if (id != s->sp.id) {
        weir_set_error(ctx,
                       "zmq_source: spool %s: checkpoint %" PRIu64
                       " was taken with another spool (id %016" PRIx64
                       "; this one is %016" PRIx64
                       "): its messages are gone and cannot be replayed",
                       s->sp.dir, checkpoint_id, id, s->sp.id);
        return WEIR_EINVAL;
    }
    int rc = zspool_seek(ctx, &s->sp, pos);
    if (rc == WEIR_OK)
        rc = zspool_commit(ctx, &s->sp, pos);
    if (rc < 0)
        return rc;
    zspool_pos end = zspool_end(&s->sp);
    if (s->sp.ended) {
        s->input_done = 1;
        /* The snapshot was taken after the end record was read. */
        s->at_end = pos.seg == end.seg && pos.off == end.off;
    }
    s->emitted = le_get_u64(b + 40);
    weir_log(ctx, WEIR_LOG_INFO,
             "zmq_source: spool %s: replaying from segment %" PRIu64
             ", offset %" PRIu64 " (%" PRIu64 " byte(s))",
             s->sp.dir, pos.seg, pos.off, zspool_behind(&s->sp));
    return WEIR_OK;
}

static int zsrc_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                        uint32_t version, const void *data, size_t len)
{
    zsrc *s = self;
    const unsigned char *b = data;
    if (version != ZSRC_SNAP_VERSION || len != ZSRC_SNAP_LEN ||
        memcmp(b, "WZMQ", 4) != 0 || le_get_u32(b + 4) > 1) {
        weir_set_error(ctx,
                       "zmq_source: the snapshot of checkpoint %" PRIu64
                       " (version %u, %zu bytes) is not a zmq_source "
                       "snapshot of version %d",
                       checkpoint_id, version, len, ZSRC_SNAP_VERSION);
        return WEIR_EINVAL;
    }
    uint32_t mode = le_get_u32(b + 4), sub = le_get_u32(b + 8);
    if ((int)mode != s->spooled) {
        weir_set_error(ctx,
                       "zmq_source: checkpoint %" PRIu64
                       " was taken %s a spool; restore it %s one",
                       checkpoint_id, mode ? "with" : "without",
                       mode ? "with the same" : "without");
        return WEIR_EINVAL;
    }
    if (sub != s->sub) {
        weir_set_error(ctx,
                       "zmq_source: checkpoint %" PRIu64
                       " holds the snapshot of subtask %u, not %u",
                       checkpoint_id, sub, s->sub);
        return WEIR_EINVAL;
    }
    if (s->spooled)
        return zsrc_restore_spool(ctx, s, checkpoint_id, b);
    weir_log(ctx, WEIR_LOG_WARN,
             "zmq_source: %s: restoring checkpoint %" PRIu64
             " without a spool: messages received after it by the failed "
             "worker are lost (at-most-once; set spool to replay them)",
             s->endpoint, checkpoint_id);
    return WEIR_OK;
}

static int zsrc_finish(weir_ctx *ctx, void *self)
{
    zsrc *s = self;
    weir_log(ctx, WEIR_LOG_INFO,
             "zmq_source: %s: %" PRIu64 " message(s) received, %" PRIu64
             " accepted, %" PRIu64 " duplicate(s), %" PRIu64 " bad; %" PRIu64
             " record(s) emitted",
             s->endpoint, s->received, s->accepted, s->duplicates, s->bad,
             s->emitted);
    return s->spooled ? zspool_flush(ctx, &s->sp, 1) : WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void zsrc_free(zsrc *s)
{
    zmsg_destroy(&s->m);
    for (size_t i = 0; i < s->n_pend; i++)
        zmq_msg_close(&s->pend[i]);
    free(s->pend);
    if (s->sock)
        zmq_close(s->sock);
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    if (s->spooled)
        zspool_close(&s->sp);
    free(s->endpoint);
    free((char *)s->fields.key_field);
    free((char *)s->fields.time_field);
    free((char *)s->fields.id_field);
    free(s->end_msg);
    free(s);
}

/* Subscribes to each prefix of `subscribe` (a string or list of strings;
 * unset: everything). */
static int zsrc_subscribe(weir_ctx *ctx, zsrc *s)
{
    const void *p;
    size_t n;
    int rc = weir_param_msgpack(ctx, "subscribe", &p, &n);
    if (rc == WEIR_ENOTFOUND)
        return zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, "", 0) < 0
                   ? zsrc_zerr(ctx, s, "subscribing")
                   : WEIR_OK;
    if (rc < 0)
        return weir_set_error(ctx, "zmq_source: parameter subscribe: %s",
                              weir_strerror(rc));
    const msgpack_object *o = weir_mp_read(&s->m.rd, p, n);
    const msgpack_object *items = o;
    uint32_t count = 1;
    if (o && o->type == MSGPACK_OBJECT_ARRAY) {
        items = o->via.array.ptr;
        count = o->via.array.size;
    }
    for (uint32_t i = 0; o && i < count; i++) {
        const char *t;
        size_t tl;
        if (weir_mp_as_str(&items[i], &t, &tl) < 0)
            return weir_set_error(ctx, "zmq_source: parameter subscribe: "
                                       "expected a topic string or a list of "
                                       "them");
        if (zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, t, tl) < 0)
            return zsrc_zerr(ctx, s, "subscribing");
    }
    return o ? WEIR_OK
             : weir_set_error(ctx, "zmq_source: parameter subscribe: not "
                                   "readable");
}

static int zsrc_socket(weir_ctx *ctx, zsrc *s, int bind, int64_t max_message)
{
    static const int types[] = {ZMQ_PULL, ZMQ_SUB, ZMQ_REP, ZMQ_ROUTER};
    int zero = 0;
    if (!(s->zctx = zmq_ctx_new()))
        return zsrc_zerr(ctx, s, "zmq_ctx_new");
    if (!(s->sock = zmq_socket(s->zctx, types[s->kind])))
        return zsrc_zerr(ctx, s, "zmq_socket");
    int64_t hwm = 0;
    if (weir_param_int(ctx, "rcvhwm", &hwm) < 0 || hwm < 0 || hwm > INT32_MAX)
        hwm = 0;
    int rcvhwm = (int)hwm;
    if (zmq_setsockopt(s->sock, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(s->sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) < 0 ||
        zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &max_message,
                       sizeof max_message) < 0)
        return zsrc_zerr(ctx, s, "setting socket options");
    int rc = s->kind == ZSRC_SUB ? zsrc_subscribe(ctx, s) : WEIR_OK;
    if (rc < 0)
        return rc;
    if ((bind ? zmq_bind(s->sock, s->endpoint)
              : zmq_connect(s->sock, s->endpoint)) < 0)
        return zsrc_zerr(ctx, s, bind ? "bind" : "connect");
    return WEIR_OK;
}

/* Opens the spool in DIR/<subtask>. */
static int zsrc_open_spool(weir_ctx *ctx, zsrc *s, const char *dir,
                           size_t dir_len, uint32_t window)
{
    int64_t segment, max_spool;
    const char *sync;
    size_t sync_len;
    int rc;
    if ((rc = weir_param_int(ctx, "spool_segment", &segment)) < 0 ||
        (rc = weir_param_int(ctx, "max_spool", &max_spool)) < 0 ||
        (rc = weir_param_string(ctx, "spool_sync", &sync, &sync_len)) < 0)
        return weir_set_error(ctx, "zmq_source: spool parameters: %s",
                              weir_strerror(rc));
    s->max_spool = (uint64_t)max_spool;
    char *path = malloc(dir_len + 16);
    if (!path)
        return weir_set_error(ctx, "zmq_source: out of memory");
    snprintf(path, dir_len + 16, "%.*s/%u", (int)dir_len, dir, s->sub);
    rc = zspool_open(ctx, &s->sp, path, (uint64_t)segment,
                     sync_len == 6 && memcmp(sync, "always", 6) == 0, window);
    free(path);
    if (rc == WEIR_OK)
        s->spooled = 1;
    if (rc == WEIR_OK && s->sp.win.n)
        weir_log(ctx, WEIR_LOG_INFO,
                 "zmq_source: spool %s: %u recent id(s) recovered for "
                 "deduplication",
                 s->sp.dir, s->sp.win.n);
    return rc;
}

static int zsrc_configure(weir_ctx *ctx, zsrc *s, int *bind,
                          int64_t *max_message, int *placeholder)
{
    static const char *const kinds[] = {"pull", "sub", "rep", "router", NULL};
    static const char *const formats[] = {"json", "msgpack", "multipart", NULL};
    const char *v;
    size_t n;
    int64_t batch;
    int rc, kind, format;
    if ((rc = zmqop_endpoint(ctx, "zmq_source", &s->endpoint, placeholder)) <
            0 ||
        (rc = zmqop_enum(ctx, "zmq_source", "socket", kinds, &kind)) < 0 ||
        (rc = zmqop_enum(ctx, "zmq_source", "format", formats, &format)) < 0)
        return rc;
    s->kind = (zsrc_kind)kind;
    s->format = (zmsg_format)format;
    if ((rc = zmqop_string(ctx, "zmq_source", "key_field",
                           (char **)&s->fields.key_field)) < 0 ||
        (rc = zmqop_string(ctx, "zmq_source", "time_field",
                           (char **)&s->fields.time_field)) < 0 ||
        (rc = zmqop_string(ctx, "zmq_source", "id_field",
                           (char **)&s->fields.id_field)) < 0)
        return rc;
    rc = weir_param_string(ctx, "end_message", &v, &n);
    if (rc == WEIR_OK) {
        if (!(s->end_msg = malloc(n ? n : 1)))
            return weir_set_error(ctx, "zmq_source: out of memory");
        memcpy(s->end_msg, v, n);
        s->end_len = n;
    }
    if ((rc = weir_param_bool(ctx, "bind", bind)) < 0 ||
        (rc = weir_param_int(ctx, "batch", &batch)) < 0 ||
        (rc = weir_param_int(ctx, "max_message", max_message)) < 0 ||
        (rc = weir_param_string(ctx, "on_error", &v, &n)) < 0)
        return weir_set_error(ctx, "zmq_source: parameters: %s",
                              weir_strerror(rc));
    s->batch = batch < 1                ? 1
               : batch > ZSRC_MAX_BATCH ? ZSRC_MAX_BATCH
                                        : (uint32_t)batch;
    s->fail_on_error = n == 4 && memcmp(v, "fail", 4) == 0;
    return WEIR_OK;
}

/* Checks the combinations of parameters. */
static int zsrc_check(weir_ctx *ctx, const zsrc *s, int bind, int has_spool,
                      int placeholder)
{
    const void *p;
    size_t n;

    if (s->format != ZMSG_MULTIPART && !s->fields.key_field)
        return weir_set_error(ctx, "zmq_source: key_field is required with "
                                   "format json and msgpack");
    if (s->fields.id_field && !has_spool)
        return weir_set_error(ctx, "zmq_source: id_field needs spool: the "
                                   "ids of recent messages are kept in the "
                                   "spool");
    if (s->kind != ZSRC_SUB &&
        weir_param_msgpack(ctx, "subscribe", &p, &n) == WEIR_OK)
        return weir_set_error(ctx, "zmq_source: subscribe is for socket: sub "
                                   "only");
    if (bind && weir_parallelism(ctx) > 1 && !placeholder)
        return weir_set_error(ctx,
                              "zmq_source: endpoint: with bind: true and "
                              "parallelism %u every subtask binds its own "
                              "endpoint; put {subtask} in it (e.g. "
                              "ipc:///tmp/in-{subtask}.sock)",
                              weir_parallelism(ctx));
    return WEIR_OK;
}

static void zsrc_metrics(weir_ctx *ctx, zsrc *s)
{
    /* Optional: without metrics the handles stay NULL and updates are
     * no-ops. */
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "zmq_source_messages_total",
                             "messages accepted (emitted or spooled)", NULL,
                             NULL, &s->m_accepted) < 0)
        s->m_accepted = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "zmq_source_duplicates_total",
                             "messages whose id was in the dedup window", NULL,
                             NULL, &s->m_dups) < 0)
        s->m_dups = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "zmq_source_bad_messages_total",
                             "messages that could not become a record", NULL,
                             NULL, &s->m_bad) < 0)
        s->m_bad = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_GAUGE,
                             "zmq_source_spool_backlog_bytes",
                             "spool bytes not covered by a completed "
                             "checkpoint",
                             NULL, NULL, &s->m_backlog) < 0)
        s->m_backlog = NULL;
}

static int zsrc_open(weir_ctx *ctx, void **self)
{
    zsrc *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "zmq_source: out of memory");
    zmsg_init(&s->m);
    s->sub = weir_subtask_index(ctx);
    int bind = 0, placeholder = 0, rc;
    int64_t max_message = 0, window = 0;
    const char *dir;
    size_t dir_len;
    if ((rc = zsrc_configure(ctx, s, &bind, &max_message, &placeholder)) < 0)
        goto fail;
    int has_spool = weir_param_string(ctx, "spool", &dir, &dir_len) == WEIR_OK;
    if (has_spool && (dir_len == 0 || memchr(dir, '\0', dir_len))) {
        rc = weir_set_error(ctx, "zmq_source: spool: %s",
                            dir_len ? "contains a NUL byte" : "is empty");
        goto fail;
    }
    if ((rc = zsrc_check(ctx, s, bind, has_spool, placeholder)) < 0)
        goto fail;
    if (s->fields.id_field &&
        (rc = weir_param_int(ctx, "dedup_window", &window)) < 0) {
        rc = weir_set_error(ctx, "zmq_source: dedup_window: %s",
                            weir_strerror(rc));
        goto fail;
    }
    if (has_spool &&
        (rc = zsrc_open_spool(ctx, s, dir, dir_len, (uint32_t)window)) < 0)
        goto fail;
    if ((rc = zsrc_socket(ctx, s, bind, max_message)) < 0)
        goto fail;
    zsrc_metrics(ctx, s);
    *self = s;
    return WEIR_OK;
fail:
    zsrc_free(s);
    return rc < 0 ? rc : WEIR_EFAIL;
}

static void zsrc_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    if (self)
        zsrc_free(self);
}

/* ------------------------------------------------------------------------ */
/* Descriptor                                                                */
/* ------------------------------------------------------------------------ */

const weir_operator zsrc_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "zmq_source",
    .version = "1.0.0",
    .description =
        "receives ZeroMQ messages (pull, sub, rep, router; json, msgpack, "
        "multipart). Not replayable: at-most-once across a crash. With "
        "spool: replayable (acks after the append), exactly-once for REP/"
        "ROUTER clients that resend with an id_field; PULL/SUB still lose "
        "what ZeroMQ queued in a killed worker",
    .params = zsrc_params,
    .snapshot_version = ZSRC_SNAP_VERSION,
    .open = zsrc_open,
    .poll = zsrc_poll,
    .snapshot = zsrc_snapshot,
    .restore = zsrc_restore,
    .notify_checkpoint_complete = zsrc_notify,
    .finish = zsrc_finish,
    .close = zsrc_close,
};
