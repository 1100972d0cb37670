/*
 * window.c - operator "window" (keyed): event-time windows per key with one
 * aggregate, with the semantics of Flink's WindowOperator and
 * EventTimeTrigger.
 *
 * Windows (all times in ms, a window [start, end) holds start <= ts < end):
 *   tumbling  [k*size, (k+1)*size): one window per record;
 *   sliding   [k*slide, k*slide + size): ceil(size / slide) windows per
 *             record (fewer when slide > size: records between two windows
 *             belong to none and are dropped);
 *   session   a record opens [ts, ts + gap); windows of a key that
 *             intersect or touch (a.start <= b.end && a.end >= b.start, as
 *             Flink's TimeWindow.intersects) merge into one [min start,
 *             max end), so a session ends after `gap` without records.
 * Aggregates: count (records), or sum, min or max of the numeric top-level
 * field `field` of the record value (a msgpack map). The result is an
 * integer while every input was an integer (a sum that would overflow
 * int64 turns into a double), otherwise a double. A record without that
 * field, or with a non-numeric one, is skipped: logged (the first 10) and
 * counted in window_skipped_records_total.
 *
 * Firing: a window fires when the watermark reaches end - 1 (an event-time
 * timer at end - 1): port "out" gets one record (key, ts = end - 1, value
 * {"key": <key as a string>, "start": start, "end": end, "<aggregate>": v},
 * where <aggregate> is count, sum, min or max). The window's state is kept
 * until end - 1 + allowed_lateness (a second timer, the same one when the
 * lateness is 0) and then deleted. A record that arrives after its window
 * fired but before the window's cleanup time updates the window and
 * re-emits it at once (an updated result, Flink's late firing). A record
 * whose every window is past its cleanup time (end - 1 + allowed_lateness
 * <= watermark) is late: it goes unchanged to port "late" (and is counted
 * in window_late_records_total); so does a record without event time. For
 * sessions, lateness is decided on the window after merging.
 *
 * State: one map state "windows" per key: user key = window start as 8
 * bytes big-endian with the sign bit flipped (so that the bytewise order of
 * the user keys is the numeric order), value = the accumulator (see
 * win_acc_encode()). It is declared WEIR_TTL_NONE on purpose: every entry
 * has an event-time timer at its cleanup time that deletes it, timers are
 * checkpointed with the state, and at the end of input the watermark jumps
 * to WEIR_WATERMARK_MAX so every cleanup timer fires. A TTL would add
 * nothing but the risk of dropping a window the host's TTL clock expires
 * before its timer fired.
 *
 * Timers: registered when a window is created (end - 1 and cleanup time).
 * When sessions merge, the merged window's timers are registered and those
 * of the windows it replaced are deleted unless another window of the key
 * uses the same time. on_timer(T) fires every window of the key with
 * end - 1 <= T that has not fired, and deletes every window with cleanup
 * time <= T, so a timer that finds nothing to do is harmless.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define WIN_MAX_DURATION 315360000000.0 /* 10 years in ms */
#define WIN_MAX_PER_REC  1000 /* sliding windows one record may belong to */
#define WIN_TS_LIMIT     (INT64_MAX / 4) /* larger |ts| cannot be windowed */
#define WIN_LOG_LIMIT    10
#define WIN_ACC_VERSION  1
#define WIN_ACC_LEN      34
#define WIN_FIRED        0x1
#define WIN_DOUBLE       0x2

enum { WIN_TUMBLING, WIN_SLIDING, WIN_SESSION };
enum { WIN_COUNT, WIN_SUM, WIN_MIN, WIN_MAX };
enum { WIN_PORT_OUT = 0, WIN_PORT_LATE = 1 };

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const char *const win_kind_choices[] = {"tumbling", "sliding", "session",
                                               NULL};
static const char *const win_agg_choices[] = {"count", "sum", "min", "max",
                                              NULL};

static const weir_param_def win_p_kind = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "kind",
    .type = WEIR_PARAM_ENUM,
    .choices = win_kind_choices,
    .description = "tumbling (size), sliding (size, slide) or session (gap) "
                   "windows in event time"};
static const weir_param_def win_p_size = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "size",
    .type = WEIR_PARAM_DURATION,
    .min = 1,
    .max = WIN_MAX_DURATION,
    .description = "window length (tumbling and sliding)"};
static const weir_param_def win_p_slide = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "slide",
    .type = WEIR_PARAM_DURATION,
    .min = 1,
    .max = WIN_MAX_DURATION,
    .description = "distance between window starts (sliding only)"};
static const weir_param_def win_p_gap = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "gap",
    .type = WEIR_PARAM_DURATION,
    .min = 1,
    .max = WIN_MAX_DURATION,
    .description = "inactivity that ends a session (session only)"};
static const weir_param_def win_p_agg = {
    .size = sizeof(weir_param_def),
    .name = "aggregate",
    .type = WEIR_PARAM_ENUM,
    .default_value = "count",
    .choices = win_agg_choices,
    .description = "count records, or sum/min/max of the numeric `field`"};
static const weir_param_def win_p_field = {
    .size = sizeof(weir_param_def),
    .name = "field",
    .type = WEIR_PARAM_STRING,
    .description = "numeric top-level field of the value to aggregate "
                   "(required unless aggregate is count)"};
static const weir_param_def win_p_lateness = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "allowed_lateness",
    .type = WEIR_PARAM_DURATION,
    .default_value = "0s",
    .min = 0,
    .max = WIN_MAX_DURATION,
    .description = "how long after firing a window still accepts late "
                   "records (each re-emits it); later ones go to port late"};

static const weir_param_def *const win_params[] = {
    &win_p_kind, &win_p_size,  &win_p_slide,    &win_p_gap,
    &win_p_agg,  &win_p_field, &win_p_lateness, NULL};

static const char *const win_outputs[] = {"out", "late", NULL};

/* ------------------------------------------------------------------------ */
/* Instance and accumulators                                                 */
/* ------------------------------------------------------------------------ */

/* A window's accumulator: the numeric result is ival while !is_double. */
typedef struct win_acc {
    int64_t end;
    int64_t count;
    int64_t ival;
    double dval;
    int fired;
    int is_double;
} win_acc;

/* A window of the current key, as collected by win_collect(). */
typedef struct win_entry {
    int64_t start;
    win_acc acc;
    int gone; /* merged away or deleted */
} win_entry;

/* A number read from a record. */
typedef struct win_num {
    int is_int;
    int64_t i;
    double d;
} win_num;

typedef struct win {
    int kind;
    int agg;
    int64_t size, slide, gap, lateness;
    char *field;
    size_t field_len;
    weir_state *windows;
    weir_metric *m_late;
    weir_metric *m_skipped;
    uint64_t skipped;
    int warned_no_time;
    weir_mp_writer w;
    weir_mp_reader r;
    win_entry *ents; /* scratch for win_collect() */
    size_t n_ents, cap_ents;
    int collect_rc;
} win;

static const char *const win_agg_names[] = {"count", "sum", "min", "max"};

static void win_put_be(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

static uint64_t win_get_be(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The user key of a window: its start, big-endian, sign bit flipped. */
static void win_ukey(unsigned char out[8], int64_t start)
{
    win_put_be(out, (uint64_t)start ^ 0x8000000000000000ULL);
}

static int64_t win_ukey_start(const unsigned char in[8])
{
    return (int64_t)(win_get_be(in) ^ 0x8000000000000000ULL);
}

/* Layout (WIN_ACC_LEN bytes): version (1) | flags (1: WIN_FIRED,
 * WIN_DOUBLE) | end (8) | count (8) | ival (8) | dval as IEEE bits (8),
 * integers big-endian. */
static void win_acc_encode(const win_acc *a, unsigned char out[WIN_ACC_LEN])
{
    uint64_t bits;
    memcpy(&bits, &a->dval, sizeof bits);
    out[0] = WIN_ACC_VERSION;
    out[1] = (unsigned char)((a->fired ? WIN_FIRED : 0) |
                             (a->is_double ? WIN_DOUBLE : 0));
    win_put_be(out + 2, (uint64_t)a->end);
    win_put_be(out + 10, (uint64_t)a->count);
    win_put_be(out + 18, (uint64_t)a->ival);
    win_put_be(out + 26, bits);
}

static int win_acc_decode(const void *data, size_t len, win_acc *a)
{
    const unsigned char *p = data;
    if (len != WIN_ACC_LEN || p[0] != WIN_ACC_VERSION)
        return -1;
    uint64_t bits = win_get_be(p + 26);
    a->fired = (p[1] & WIN_FIRED) != 0;
    a->is_double = (p[1] & WIN_DOUBLE) != 0;
    a->end = (int64_t)win_get_be(p + 2);
    a->count = (int64_t)win_get_be(p + 10);
    a->ival = (int64_t)win_get_be(p + 18);
    memcpy(&a->dval, &bits, sizeof bits);
    return 0;
}

static double win_num_double(const win_num *v)
{
    return v->is_int ? (double)v->i : v->d;
}

static void win_acc_to_double(win_acc *a)
{
    if (!a->is_double) {
        a->dval = (double)a->ival;
        a->is_double = 1;
    }
}

/* Folds value v into a's numeric result (not the count). */
static void win_acc_fold(win_acc *a, int agg, const win_num *v)
{
    if (agg == WIN_COUNT)
        return;
    if (a->count == 0) {
        a->is_double = !v->is_int;
        a->ival = v->is_int ? v->i : 0;
        a->dval = v->is_int ? 0 : v->d;
        return;
    }
    if (!a->is_double && v->is_int) {
        switch (agg) {
        case WIN_SUM: {
            int64_t sum;
            if (__builtin_add_overflow(a->ival, v->i, &sum)) {
                a->dval = (double)a->ival + (double)v->i;
                a->is_double = 1;
            } else {
                a->ival = sum;
            }
            return;
        }
        case WIN_MIN: a->ival = v->i < a->ival ? v->i : a->ival; return;
        case WIN_MAX: a->ival = v->i > a->ival ? v->i : a->ival; return;
        }
    }
    win_acc_to_double(a);
    double d = win_num_double(v);
    switch (agg) {
    case WIN_SUM: a->dval += d; break;
    case WIN_MIN: a->dval = d < a->dval ? d : a->dval; break;
    case WIN_MAX: a->dval = d > a->dval ? d : a->dval; break;
    }
}

/* Merges accumulator b into a (sessions). */
static void win_acc_merge(win_acc *a, int agg, const win_acc *b)
{
    if (b->count == 0)
        return;
    win_num v = {.is_int = !b->is_double, .i = b->ival, .d = b->dval};
    win_acc_fold(a, agg, &v);
    a->count += b->count;
}

/* ------------------------------------------------------------------------ */
/* Reading records, emitting                                                 */
/* ------------------------------------------------------------------------ */

/* The numeric field of the record: 0, or -1 (with the reason in *why) when
 * the record has none. */
static int win_read_num(win *w, const weir_record *rec, win_num *out,
                        const char **why)
{
    if (!rec->value_len || !mpscan_plausible(rec->value, rec->value_len)) {
        *why = "the value is not msgpack";
        return -1;
    }
    const msgpack_object *root =
        weir_mp_read(&w->r, rec->value, rec->value_len);
    if (!root || root->type != MSGPACK_OBJECT_MAP) {
        *why = "the value is not a map";
        return -1;
    }
    const msgpack_object *o = NULL;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR &&
            kv->key.via.str.size == w->field_len &&
            memcmp(kv->key.via.str.ptr, w->field, w->field_len) == 0) {
            o = &kv->val;
            break;
        }
    }
    if (!o) {
        *why = "the field is missing";
        return -1;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        out->is_int = o->via.u64 <= (uint64_t)INT64_MAX;
        out->i = (int64_t)o->via.u64;
        out->d = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        out->is_int = 1;
        out->i = o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        out->is_int = 0;
        out->d = o->via.f64;
        return 0;
    default: *why = "the field is not a number"; return -1;
    }
}

static int win_emit_window(weir_ctx *ctx, win *w, const void *key,
                           size_t key_len, int64_t start, const win_acc *a)
{
    msgpack_packer *pk = &w->w.pk;
    weir_mp_writer_reset(&w->w);
    int bad =
        msgpack_pack_map(pk, 4) != 0 || weir_mp_pack_str(pk, "key") ||
        weir_mp_pack_strn(pk, key, key_len) || weir_mp_pack_str(pk, "start") ||
        msgpack_pack_int64(pk, start) != 0 || weir_mp_pack_str(pk, "end") ||
        msgpack_pack_int64(pk, a->end) != 0 ||
        weir_mp_pack_str(pk, win_agg_names[w->agg]);
    if (!bad) {
        if (w->agg == WIN_COUNT)
            bad = msgpack_pack_int64(pk, a->count) != 0;
        else if (a->is_double)
            bad = msgpack_pack_double(pk, a->dval) != 0;
        else
            bad = msgpack_pack_int64(pk, a->ival) != 0;
    }
    if (bad)
        return weir_set_error(ctx, "window: out of memory packing a result");
    int rc = weir_emit(ctx, WIN_PORT_OUT, key, key_len, a->end - 1,
                       w->w.buf.data, w->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "window: emit failed: %s", weir_strerror(rc));
    return rc;
}

static int win_emit_late(weir_ctx *ctx, win *w, const weir_record *rec)
{
    weir_counter_add(ctx, w->m_late, 1);
    int rc = weir_emit(ctx, WIN_PORT_LATE, rec->key, rec->key_len, rec->ts,
                       rec->value, rec->value_len);
    if (rc < 0)
        weir_set_error(ctx, "window: emit to port late failed: %s",
                       weir_strerror(rc));
    return rc;
}

static int win_state_error(weir_ctx *ctx, const char *what, int rc)
{
    weir_set_error(ctx, "window: %s of state 'windows' failed: %s", what,
                   weir_strerror(rc));
    return rc;
}

static int win_timer(weir_ctx *ctx, int64_t ts)
{
    int rc = weir_timer_register(ctx, WEIR_TIME_EVENT, ts);
    if (rc < 0)
        weir_set_error(ctx,
                       "window: registering an event-time timer at %lld "
                       "failed: %s",
                       (long long)ts, weir_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* State access                                                              */
/* ------------------------------------------------------------------------ */

static int win_get(weir_ctx *ctx, win *w, int64_t start, win_acc *a)
{
    unsigned char uk[8];
    const void *v;
    size_t n;
    win_ukey(uk, start);
    int rc = weir_map_get(ctx, w->windows, uk, sizeof uk, &v, &n);
    if (rc == WEIR_ENOTFOUND)
        return rc;
    if (rc < 0)
        return win_state_error(ctx, "map_get", rc);
    if (win_acc_decode(v, n, a) < 0)
        return weir_set_error(ctx,
                              "window: a stored window has an unknown "
                              "format (%zu bytes)",
                              n);
    return 0;
}

static int win_put(weir_ctx *ctx, win *w, int64_t start, const win_acc *a)
{
    unsigned char uk[8], buf[WIN_ACC_LEN];
    win_ukey(uk, start);
    win_acc_encode(a, buf);
    int rc = weir_map_put(ctx, w->windows, uk, sizeof uk, buf, sizeof buf);
    return rc < 0 ? win_state_error(ctx, "map_put", rc) : 0;
}

static int win_del(weir_ctx *ctx, win *w, int64_t start)
{
    unsigned char uk[8];
    win_ukey(uk, start);
    int rc = weir_map_delete(ctx, w->windows, uk, sizeof uk);
    return rc < 0 ? win_state_error(ctx, "map_delete", rc) : 0;
}

static int win_collect_one(void *arg, const void *ukey, size_t ukey_len,
                           const void *value, size_t value_len)
{
    win *w = arg;
    if (ukey_len != 8) {
        w->collect_rc = WEIR_EINVAL;
        return 1;
    }
    if (w->n_ents == w->cap_ents) {
        size_t cap = w->cap_ents ? 2 * w->cap_ents : 16;
        win_entry *e = realloc(w->ents, cap * sizeof *e);
        if (!e) {
            w->collect_rc = WEIR_ENOMEM;
            return 1;
        }
        w->ents = e;
        w->cap_ents = cap;
    }
    win_entry *e = &w->ents[w->n_ents];
    e->start = win_ukey_start(ukey);
    e->gone = 0;
    if (win_acc_decode(value, value_len, &e->acc) < 0) {
        w->collect_rc = WEIR_EINVAL;
        return 1;
    }
    w->n_ents++;
    return 0;
}

/* Reads every window of the current key into w->ents, in start order. */
static int win_collect(weir_ctx *ctx, win *w)
{
    w->n_ents = 0;
    w->collect_rc = 0;
    int rc = weir_map_iter(ctx, w->windows, win_collect_one, w);
    if (rc < 0)
        return win_state_error(ctx, "map_iter", rc);
    if (w->collect_rc == WEIR_ENOMEM)
        return weir_set_error(ctx, "window: out of memory reading windows");
    if (w->collect_rc < 0)
        return weir_set_error(ctx, "window: a stored window has an unknown "
                                   "format");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Assigning records                                                         */
/* ------------------------------------------------------------------------ */

static int64_t win_floor_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

/* Adds the record (value v) to the window [start, start + size) unless the
 * window is past its cleanup time; *accepted is set when it was added. */
static int win_add_fixed(weir_ctx *ctx, win *w, const weir_record *rec,
                         const win_num *v, int64_t start, int64_t wm,
                         int *accepted)
{
    int64_t end = start + w->size;
    if (end - 1 + w->lateness <= wm)
        return 0; /* late for this window */
    *accepted = 1;
    win_acc a;
    int rc = win_get(ctx, w, start, &a);
    if (rc == WEIR_ENOTFOUND) {
        memset(&a, 0, sizeof a);
        a.end = end;
        if ((rc = win_timer(ctx, end - 1)) < 0 ||
            (w->lateness && (rc = win_timer(ctx, end - 1 + w->lateness)) < 0))
            return rc;
    } else if (rc < 0) {
        return rc;
    }
    win_acc_fold(&a, w->agg, v);
    a.count++;
    if (end - 1 <= wm) { /* already fired: an updated result, now */
        if ((rc = win_emit_window(ctx, w, rec->key, rec->key_len, start, &a)) <
            0)
            return rc;
        a.fired = 1;
    }
    return win_put(ctx, w, start, &a);
}

static int win_process_fixed(weir_ctx *ctx, win *w, const weir_record *rec,
                             const win_num *v, int64_t wm)
{
    int64_t step = w->kind == WIN_TUMBLING ? w->size : w->slide;
    int64_t last = rec->ts - win_floor_mod(rec->ts, step);
    int accepted = 0, windows = 0, rc;
    for (int64_t s = last; s > rec->ts - w->size; s -= step, windows++)
        if ((rc = win_add_fixed(ctx, w, rec, v, s, wm, &accepted)) < 0)
            return rc;
    /* No window at all (sliding with slide > size): dropped, as in Flink. */
    return accepted || !windows ? 0 : win_emit_late(ctx, w, rec);
}

/* Whether a window of the key other than the gone ones has a timer at t. */
static int win_timer_used(const win *w, int64_t t)
{
    for (size_t i = 0; i < w->n_ents; i++) {
        const win_entry *e = &w->ents[i];
        if (!e->gone &&
            (e->acc.end - 1 == t || e->acc.end - 1 + w->lateness == t))
            return 1;
    }
    return 0;
}

static int win_process_session(weir_ctx *ctx, win *w, const weir_record *rec,
                               const win_num *v, int64_t wm)
{
    int rc = win_collect(ctx, w);
    if (rc < 0)
        return rc;
    int64_t start = rec->ts, end = rec->ts + w->gap;
    /* Existing sessions never intersect each other, so one pass finds all
     * that the new window touches; loop anyway until nothing changes. */
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < w->n_ents; i++) {
            win_entry *e = &w->ents[i];
            if (e->gone || !(e->start <= end && e->acc.end >= start))
                continue;
            e->gone = 1; /* provisionally: part of the merged window */
            start = e->start < start ? e->start : start;
            end = e->acc.end > end ? e->acc.end : end;
            changed = 1;
        }
    }
    if (end - 1 + w->lateness <= wm)
        return win_emit_late(ctx, w, rec);

    win_acc a = {.end = end};
    win_acc_fold(&a, w->agg, v);
    a.count = 1;
    for (size_t i = 0; i < w->n_ents; i++)
        if (w->ents[i].gone)
            win_acc_merge(&a, w->agg, &w->ents[i].acc);
    a.fired = 0;
    /* Replace the merged windows by the new one, state and timers. */
    for (size_t i = 0; i < w->n_ents; i++) {
        win_entry *e = &w->ents[i];
        if (e->gone && e->start != start && (rc = win_del(ctx, w, e->start)))
            return rc;
    }
    for (size_t i = 0; i < w->n_ents; i++) {
        const win_entry *e = &w->ents[i];
        if (!e->gone)
            continue;
        int64_t t[2] = {e->acc.end - 1, e->acc.end - 1 + w->lateness};
        for (int k = 0; k < 2; k++) {
            if (t[k] == end - 1 || t[k] == end - 1 + w->lateness ||
                win_timer_used(w, t[k]))
                continue;
            if ((rc = weir_timer_delete(ctx, WEIR_TIME_EVENT, t[k])) < 0)
                return weir_set_error(ctx,
                                      "window: deleting a timer failed: "
                                      "%s",
                                      weir_strerror(rc));
        }
    }
    if ((rc = win_timer(ctx, end - 1)) < 0 ||
        (w->lateness && (rc = win_timer(ctx, end - 1 + w->lateness)) < 0))
        return rc;
    if (end - 1 <= wm) {
        rc = win_emit_window(ctx, w, rec->key, rec->key_len, start, &a);
        if (rc < 0)
            return rc;
        a.fired = 1;
    }
    return win_put(ctx, w, start, &a);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int win_process(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port)
{
    win *w = self;
    win_num v = {.is_int = 1};
    if (rec->ts == WEIR_TS_NONE || rec->ts > WIN_TS_LIMIT ||
        rec->ts < -WIN_TS_LIMIT) {
        if (!w->warned_no_time) {
            w->warned_no_time = 1;
            weir_log(ctx, WEIR_LOG_WARN,
                     "window: records without a usable event time go to "
                     "port late (first: ts %lld)",
                     (long long)rec->ts);
        }
        return win_emit_late(ctx, w, rec);
    }
    if (w->agg != WIN_COUNT) {
        const char *why = NULL;
        if (win_read_num(w, rec, &v, &why) < 0) {
            if (w->skipped++ < WIN_LOG_LIMIT)
                weir_log(ctx, WEIR_LOG_WARN,
                         "window: skipping a record at ts %lld: %s (field "
                         "'%.*s')%s",
                         (long long)rec->ts, why, (int)w->field_len, w->field,
                         w->skipped == WIN_LOG_LIMIT ? "; not logging more"
                                                     : "");
            weir_counter_add(ctx, w->m_skipped, 1);
            return 0;
        }
    }
    int64_t wm = weir_watermark(ctx);
    if (w->kind == WIN_SESSION)
        return win_process_session(ctx, w, rec, &v, wm);
    return win_process_fixed(ctx, w, rec, &v, wm);
}

static int win_on_timer(weir_ctx *ctx, void *self, const void *key,
                        size_t key_len, weir_time_domain domain, int64_t ts)
{
    win *w = self;
    if (domain != WEIR_TIME_EVENT)
        return 0;
    int rc = win_collect(ctx, w);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < w->n_ents; i++) {
        win_entry *e = &w->ents[i];
        int dirty = 0;
        if (!e->acc.fired && e->acc.end - 1 <= ts) {
            rc = win_emit_window(ctx, w, key, key_len, e->start, &e->acc);
            if (rc < 0)
                return rc;
            e->acc.fired = dirty = 1;
        }
        if (e->acc.end - 1 + w->lateness <= ts)
            rc = win_del(ctx, w, e->start);
        else if (dirty)
            rc = win_put(ctx, w, e->start, &e->acc);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void win_free(win *w)
{
    weir_mp_writer_destroy(&w->w);
    weir_mp_reader_destroy(&w->r);
    free(w->ents);
    free(w->field);
    free(w);
}

/* Reads an optional duration parameter; 0 when unset. */
static int win_duration(weir_ctx *ctx, const char *name, int64_t *out)
{
    *out = 0;
    int rc = weir_param_int(ctx, name, out);
    if (rc == WEIR_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc < 0)
        return weir_set_error(ctx, "window: parameter %s: %s", name,
                              weir_strerror(rc));
    return 0;
}

static int win_enum(weir_ctx *ctx, const char *name, const char *const *choices,
                    int *out)
{
    const char *s;
    size_t n;
    int rc = weir_param_string(ctx, name, &s, &n);
    if (rc < 0)
        return weir_set_error(ctx, "window: parameter %s: %s", name,
                              weir_strerror(rc));
    for (int i = 0; choices[i]; i++) {
        if (strlen(choices[i]) == n && memcmp(choices[i], s, n) == 0) {
            *out = i;
            return 0;
        }
    }
    return weir_set_error(ctx, "window: parameter %s: '%.*s' is not a choice",
                          name, (int)n, s);
}

/* Checks that the parameters fit the kind and aggregate. */
static int win_check(weir_ctx *ctx, win *w)
{
    static const char *const kinds[] = {"tumbling", "sliding", "session"};
    const char *k = kinds[w->kind];
    if (w->kind != WIN_SESSION && !w->size)
        return weir_set_error(ctx, "window: kind %s needs parameter size", k);
    if (w->kind == WIN_SLIDING && !w->slide)
        return weir_set_error(ctx, "window: kind sliding needs parameter "
                                   "slide");
    if (w->kind == WIN_SESSION && !w->gap)
        return weir_set_error(ctx, "window: kind session needs parameter gap");
    if (w->kind == WIN_SESSION && w->size)
        return weir_set_error(ctx, "window: parameter size is not used by "
                                   "session windows (use gap)");
    if (w->kind != WIN_SLIDING && w->slide)
        return weir_set_error(ctx, "window: parameter slide is only for "
                                   "sliding windows");
    if (w->kind != WIN_SESSION && w->gap)
        return weir_set_error(ctx, "window: parameter gap is only for session "
                                   "windows");
    if (w->kind == WIN_SLIDING &&
        (w->size + w->slide - 1) / w->slide > WIN_MAX_PER_REC)
        return weir_set_error(ctx,
                              "window: size / slide = %lld windows per "
                              "record; at most %d",
                              (long long)((w->size + w->slide - 1) / w->slide),
                              WIN_MAX_PER_REC);
    if (w->agg != WIN_COUNT && !w->field)
        return weir_set_error(ctx, "window: aggregate %s needs parameter field",
                              win_agg_names[w->agg]);
    if (w->agg == WIN_COUNT && w->field)
        return weir_set_error(ctx, "window: parameter field is not used by "
                                   "aggregate count");
    return 0;
}

static int win_open(weir_ctx *ctx, void **self)
{
    win *w = calloc(1, sizeof *w);
    if (!w)
        return weir_set_error(ctx, "window: out of memory");
    weir_mp_writer_init(&w->w);
    weir_mp_reader_init(&w->r);
    const char *f;
    size_t fl;
    int rc;
    if ((rc = win_enum(ctx, "kind", win_kind_choices, &w->kind)) < 0 ||
        (rc = win_enum(ctx, "aggregate", win_agg_choices, &w->agg)) < 0 ||
        (rc = win_duration(ctx, "size", &w->size)) < 0 ||
        (rc = win_duration(ctx, "slide", &w->slide)) < 0 ||
        (rc = win_duration(ctx, "gap", &w->gap)) < 0 ||
        (rc = win_duration(ctx, "allowed_lateness", &w->lateness)) < 0)
        goto fail;
    rc = weir_param_string(ctx, "field", &f, &fl);
    if (rc == 0) {
        if (!fl) {
            rc = weir_set_error(ctx, "window: parameter field is empty");
            goto fail;
        }
        if (!(w->field = malloc(fl))) {
            rc = weir_set_error(ctx, "window: out of memory");
            goto fail;
        }
        memcpy(w->field, f, fl);
        w->field_len = fl;
    } else if (rc != WEIR_ENOTFOUND) {
        rc = weir_set_error(ctx, "window: parameter field: %s",
                            weir_strerror(rc));
        goto fail;
    }
    if ((rc = win_check(ctx, w)) < 0)
        goto fail;
    /* No TTL: every window is deleted by its cleanup timer (see the top of
     * this file). */
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_MAP,
                         .name = "windows",
                         .ttl_ms = WEIR_TTL_NONE};
    if ((rc = weir_state_declare(ctx, &d, &w->windows)) < 0) {
        weir_set_error(ctx, "window: declaring map state 'windows' failed: %s",
                       weir_strerror(rc));
        goto fail;
    }
    /* Metrics are optional: a host without them leaves the pointers NULL. */
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "window_late_records_total",
                         "records behind every window's allowed lateness, "
                         "sent to port late",
                         NULL, NULL, &w->m_late);
    weir_metric_register(
        ctx, WEIR_METRIC_COUNTER, "window_skipped_records_total",
        "records without a numeric aggregate field", NULL, NULL, &w->m_skipped);
    *self = w;
    return 0;
fail:
    win_free(w);
    return rc;
}

static void win_close(weir_ctx *ctx, void *self)
{
    if (self)
        win_free(self);
}

static const weir_operator win_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "window",
    .version = "1.0.0",
    .description = "event-time tumbling, sliding and session windows per key "
                   "with count/sum/min/max; late records to port late",
    .output_ports = win_outputs,
    .params = win_params,
    .open = win_open,
    .process = win_process,
    .on_timer = win_on_timer,
    .close = win_close,
};

static const weir_operator *const win_ops[] = {&win_op, NULL};

static const weir_plugin win_plugin = {
    WEIR_PLUGIN_INIT,     .name = "window",
    .version = "1.0.0",   .description = "event-time windows",
    .operators = win_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &win_plugin;
}
