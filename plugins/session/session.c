/*
 * session.c - operator "session" (keyed): activity sessions per key, closed
 * by a state TTL and emitted from the TTL hook.
 *
 * A session of a key is a run of its events in which each event follows the
 * previous one by less than `gap`. The operator keeps one keyed value state
 * "session" per key, a msgpack map {"count": n, "first_ts": a, "last_ts": b},
 * declared with a TTL of `gap`. Every event rewrites it, which refreshes the
 * TTL; when the key has been idle for `gap`, the host expires the entry and
 * calls on_state_expired(), which emits the closed session on port "out":
 *     key = the key, ts = b,
 *     value = {"key": <key bytes as a string>, "events": n, "start": a,
 *              "end": b}
 * and lets the entry go. Without the TTL the per-key state would grow for
 * ever (one entry per key ever seen); with it, every key's state is removed
 * `gap` after its last event, and the removal itself produces the output.
 *
 * Time (`time`):
 *   event (default): times are the records' event times and the TTL runs on
 *     event time: a session with last event b closes once the watermark
 *     reaches b + gap, i.e. it holds the events e with e - (previous event)
 *     < gap. In detail, per record with event time t, in arrival order:
 *       - the key has no open session: a new one {1, t, t};
 *       - t - b >= gap (the watermark has not yet closed the session, but
 *         the gap is already over): the open session is emitted at once and
 *         a new one {1, t, t} starts;
 *       - otherwise t joins: n + 1, a = min(a, t), b = max(b, t).
 *     The host stamps an entry with (event time of the record that wrote it)
 *     + gap, so an out-of-order event moves the stamp before b + gap. When
 *     such an entry expires while the watermark is still below b + gap, the
 *     hook writes it back (it stays until the watermark passes the new
 *     stamp, and the rule above still splits at b + gap) instead of closing
 *     the session early. Consequences: when no record is late (behind the
 *     watermark) and no reordering moves an event across a session
 *     boundary (with d = how far a key's events are out of order, no two
 *     consecutive events of the key are between gap - d and gap + d
 *     apart), the sessions are exactly those of sorting each key's events
 *     by time and splitting where consecutive events are gap or more apart
 *     (examples/sessions/oracle.py checks this). A late record whose
 *     key's session already closed starts a new session (which closes at
 *     the next watermark). When the input ends, the final watermark closes
 *     every open session. Records without event time fail the subtask.
 *   processing: times are the wall clock at arrival (start, end and ts of
 *     the output too) and the TTL runs on the wall clock: a session closes
 *     `gap` after its last event arrived. Sessions still open when a bounded
 *     input ends are not emitted (processing-time TTLs do not fire at the
 *     end of input).
 *
 * With emit_updates: true, every event also emits the session as it stands
 * after the event (same value) on port "updates", with the event's ts.
 * Closed sessions are counted in session_closed_total.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

enum { SESS_PORT_OUT = 0, SESS_PORT_UPDATES = 1 };

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def sess_p_gap = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED | WEIR_PARAM_HAS_MIN,
    .name = "gap",
    .type = WEIR_PARAM_DURATION,
    .min = 1,
    .description = "a key's session closes after this long without events "
                   "(the ttl of its state)"};
static const char *const sess_time_choices[] = {"event", "processing", NULL};
static const weir_param_def sess_p_time = {
    .size = sizeof(weir_param_def),
    .name = "time",
    .type = WEIR_PARAM_ENUM,
    .default_value = "event",
    .choices = sess_time_choices,
    .description = "event: event times, sessions close as the watermark "
                   "passes; processing: wall clock at arrival"};
static const weir_param_def sess_p_emit_updates = {
    .size = sizeof(weir_param_def),
    .name = "emit_updates",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "also emit the running session on port updates for "
                   "every event"};
static const weir_param_def *const sess_params[] = {&sess_p_gap, &sess_p_time,
                                                    &sess_p_emit_updates, NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct session {
    weir_state *st; /* value state "session", ttl = gap */
    int64_t gap;    /* ms, > 0 */
    int event_time;
    int emit_updates;
    /* Set during process(): a hook then runs for the record's own state
     * access, and an entry it writes is stamped from rec_ts. */
    int in_process;
    int64_t rec_ts;
    weir_metric *m_closed; /* or NULL */
    weir_mp_writer w;
} session;

/* A session as stored: event count, first and last time. */
typedef struct sess_val {
    int64_t count, first, last;
} sess_val;

static int64_t sess_sat_add(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

/* Whether t is at least gap (> 0) after last, for any pair of times. */
static int sess_gap_over(int64_t t, int64_t last, int64_t gap)
{
    return t > last && (uint64_t)t - (uint64_t)last >= (uint64_t)gap;
}

/* ------------------------------------------------------------------------ */
/* The session in keyed state                                                */
/* ------------------------------------------------------------------------ */

static int sess_decode(weir_ctx *ctx, const void *data, size_t len, sess_val *v)
{
    if (mpscan_find_int(data, len, "count", 5, &v->count) < 0 ||
        mpscan_find_int(data, len, "first_ts", 8, &v->first) < 0 ||
        mpscan_find_int(data, len, "last_ts", 7, &v->last) < 0) {
        weir_set_error(ctx,
                       "session: a stored session (%zu bytes) is not "
                       "{count, first_ts, last_ts}",
                       len);
        return WEIR_EINVAL;
    }
    return WEIR_OK;
}

/* The current key's open session: WEIR_OK, WEIR_ENOTFOUND when it has none,
 * or another negative code. May run the expiry hook first. */
static int sess_load(weir_ctx *ctx, session *s, sess_val *v)
{
    const void *data;
    size_t len;
    int rc = weir_value_get(ctx, s->st, &data, &len);
    if (rc < 0) {
        if (rc != WEIR_ENOTFOUND)
            weir_set_error(ctx, "session: reading the session: %s",
                           weir_strerror(rc));
        return rc;
    }
    return sess_decode(ctx, data, len, v);
}

static int sess_store(weir_ctx *ctx, session *s, const sess_val *v)
{
    msgpack_packer *pk = &s->w.pk;
    weir_mp_writer_reset(&s->w);
    if (msgpack_pack_map(pk, 3) != 0 || weir_mp_pack_str(pk, "count") != 0 ||
        msgpack_pack_int64(pk, v->count) != 0 ||
        weir_mp_pack_str(pk, "first_ts") != 0 ||
        msgpack_pack_int64(pk, v->first) != 0 ||
        weir_mp_pack_str(pk, "last_ts") != 0 ||
        msgpack_pack_int64(pk, v->last) != 0) {
        weir_set_error(ctx, "session: out of memory packing a session");
        return WEIR_ENOMEM;
    }
    int rc = weir_value_put(ctx, s->st, s->w.buf.data, s->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "session: storing the session: %s",
                       weir_strerror(rc));
    return rc;
}

/* Emits {"key", "events", "start", "end"} on `port` with time ts. */
static int sess_emit(weir_ctx *ctx, session *s, uint32_t port, const void *key,
                     size_t key_len, int64_t ts, const sess_val *v)
{
    msgpack_packer *pk = &s->w.pk;
    weir_mp_writer_reset(&s->w);
    if (msgpack_pack_map(pk, 4) != 0 || weir_mp_pack_str(pk, "key") != 0 ||
        weir_mp_pack_strn(pk, key_len ? key : "", key_len) != 0 ||
        weir_mp_pack_str(pk, "events") != 0 ||
        msgpack_pack_int64(pk, v->count) != 0 ||
        weir_mp_pack_str(pk, "start") != 0 ||
        msgpack_pack_int64(pk, v->first) != 0 ||
        weir_mp_pack_str(pk, "end") != 0 ||
        msgpack_pack_int64(pk, v->last) != 0) {
        weir_set_error(ctx, "session: out of memory packing a record");
        return WEIR_ENOMEM;
    }
    int rc = weir_emit(ctx, port, key_len ? key : "", key_len, ts,
                       s->w.buf.data, s->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "session: emit failed: %s", weir_strerror(rc));
    return rc;
}

static int sess_emit_closed(weir_ctx *ctx, session *s, const void *key,
                            size_t key_len, const sess_val *v)
{
    weir_counter_add(ctx, s->m_closed, 1);
    return sess_emit(ctx, s, SESS_PORT_OUT, key, key_len, v->last, v);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

/* The session v of the current key with the event at t added; emits the
 * open session first when t ends it. */
static int sess_add(weir_ctx *ctx, session *s, const weir_record *rec,
                    int64_t t, sess_val *v, int found)
{
    if (found && s->event_time && sess_gap_over(t, v->last, s->gap)) {
        int rc = sess_emit_closed(ctx, s, rec->key, rec->key_len, v);
        if (rc < 0)
            return rc;
        found = 0;
    }
    if (!found) {
        *v = (sess_val){1, t, t};
        return WEIR_OK;
    }
    v->count++;
    if (t < v->first)
        v->first = t;
    if (t > v->last)
        v->last = t;
    return WEIR_OK;
}

static int sess_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    session *s = self;
    int64_t t = rec->ts;
    if (!s->event_time)
        t = weir_now(ctx);
    else if (t == WEIR_TS_NONE)
        return weir_set_error(ctx,
                              "session: a record without event time, but "
                              "time is event (set time_field on the source, "
                              "or use time: processing)");
    s->in_process = 1;
    s->rec_ts = rec->ts;
    sess_val v;
    int rc = sess_load(ctx, s, &v);
    int found = rc == WEIR_OK;
    if (rc == WEIR_OK || rc == WEIR_ENOTFOUND)
        rc = sess_add(ctx, s, rec, t, &v, found);
    if (rc == WEIR_OK)
        rc = sess_store(ctx, s, &v);
    if (rc == WEIR_OK && s->emit_updates)
        rc = sess_emit(ctx, s, SESS_PORT_UPDATES, rec->key, rec->key_len,
                       rec->ts, &v);
    s->in_process = 0;
    return rc;
}

/* TTL hook: the key's session expired. Emits it, unless (event time) the
 * watermark has not reached last_ts + gap yet, which happens when an
 * out-of-order event stamped the entry early: then the entry is written
 * back and stays, provided the new stamp is still ahead of the watermark. */
static int sess_expired(weir_ctx *ctx, void *self, weir_state *state,
                        const void *key, size_t key_len, const void *ukey,
                        size_t ukey_len, const void *value, size_t value_len)
{
    session *s = self;
    sess_val v;
    int rc = sess_decode(ctx, value, value_len, &v);
    if (rc < 0)
        return rc;
    if (s->event_time) {
        int64_t wm = weir_watermark(ctx);
        if (wm != WEIR_WATERMARK_MAX && !sess_gap_over(wm, v.last, s->gap)) {
            /* The host stamps a write with the record's event time, or with
             * the watermark outside process(). */
            int64_t base =
                s->in_process && s->rec_ts != WEIR_TS_NONE ? s->rec_ts : wm;
            if (sess_sat_add(base, s->gap) > wm)
                return sess_store(ctx, s, &v);
        }
    }
    return sess_emit_closed(ctx, s, key, key_len, &v);
}

static void sess_free(session *s)
{
    weir_mp_writer_destroy(&s->w);
    free(s);
}

static int sess_params_read(weir_ctx *ctx, session *s)
{
    const char *dom;
    size_t dom_len;
    int rc = weir_param_int(ctx, "gap", &s->gap);
    if (rc == WEIR_OK)
        rc = weir_param_string(ctx, "time", &dom, &dom_len);
    if (rc == WEIR_OK)
        rc = weir_param_bool(ctx, "emit_updates", &s->emit_updates);
    if (rc < 0) {
        weir_set_error(ctx, "session: parameters gap, time, emit_updates: %s",
                       weir_strerror(rc));
        return rc;
    }
    if (s->gap <= 0) {
        weir_set_error(ctx, "session: gap must be > 0");
        return WEIR_EINVAL;
    }
    s->event_time = !(dom_len == 10 && memcmp(dom, "processing", 10) == 0);
    return WEIR_OK;
}

static int sess_open(weir_ctx *ctx, void **self)
{
    session *s = calloc(1, sizeof *s);
    if (!s) {
        weir_set_error(ctx, "session: out of memory");
        return WEIR_ENOMEM;
    }
    weir_mp_writer_init(&s->w);
    int rc = sess_params_read(ctx, s);
    if (rc < 0)
        goto fail;
    weir_state_desc d = {
        .size = sizeof d,
        .kind = WEIR_STATE_VALUE,
        .name = "session",
        .ttl_ms = s->gap,
        .ttl_update = WEIR_TTL_ON_CREATE_AND_WRITE,
        .ttl_visibility = WEIR_TTL_NEVER_RETURN_EXPIRED,
        .ttl_domain = s->event_time ? WEIR_TIME_EVENT : WEIR_TIME_PROCESSING,
    };
    if ((rc = weir_state_declare(ctx, &d, &s->st)) < 0) {
        weir_set_error(ctx, "session: declaring the session state: %s",
                       weir_strerror(rc));
        goto fail;
    }
    /* Metrics are optional: a host without them leaves the pointer NULL. */
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "session_closed_total",
                         "sessions closed and emitted on port out", NULL, NULL,
                         &s->m_closed);
    *self = s;
    return WEIR_OK;
fail:
    sess_free(s);
    return rc;
}

static void sess_close(weir_ctx *ctx, void *self)
{
    if (self)
        sess_free(self);
}

static const char *const sess_outputs[] = {"out", "updates", NULL};

static const weir_operator sess_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "session",
    .version = "1.0.0",
    .description = "activity sessions per key: a key idle for gap closes "
                   "its session, emitted by the state's TTL hook",
    .output_ports = sess_outputs,
    .params = sess_params,
    .open = sess_open,
    .process = sess_process,
    .on_state_expired = sess_expired,
    .close = sess_close,
};

static const weir_operator *const sess_ops[] = {&sess_op, NULL};

static const weir_plugin sess_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "session",
    .version = "1.0.0",
    .description = "sessions per key closed by a state TTL",
    .operators = sess_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &sess_plugin;
}
