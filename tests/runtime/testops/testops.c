/*
 * testops - operators used only by the runtime tests, built like any
 * outside plugin (SDK headers only):
 *   fail   forwards records and fails on record number `at` (1-based) with
 *          `message`, or in open() when `in_open` is set; or crashes
 *          instead when `crash` is set, by the signal `signal` names:
 *          SIGSEGV, SIGFPE (raised), SIGABRT (abort()) or a real stack
 *          overflow (`stack`).
 *   hang   (keyed) forwards records; on record number `after` it never
 *          returns from process() (`in: process`), or registers a
 *          processing-time timer whose on_timer never returns
 *          (`in: on_timer`); `busy` spins instead of sleeping.
 *   slow   a sink that sleeps `delay_us` per record and counts them.
 *   relay  forwards every record unchanged.
 *   seqsrc a source emitting one record per `pause_ms` with the event times
 *          listed in `ts` (keys from `keys`, a string of one-letter keys,
 *          default all "k"), then waiting `linger_ms` before it ends.
 *   ctrsrc a source emitting `count` records with key "s<subtask>" and the
 *          record's number (8 bytes) as value, `batch` per poll with
 *          `pause_us` between polls; its snapshot is the number emitted.
 *   cutcheck a sink that counts records per source subtask (keys s0..s7),
 *          sleeping `delay_us` per record; its snapshot is the 8 counts.
 *   ptimer (keyed) on a key's first record, registers a processing-time
 *          timer `delay_ms` ahead (a value state remembers it); on_timer
 *          emits (key, "fired").
 *   hookcount (keyed) counts records per key in a value state declared
 *          without TTL (`weir ctl ... state ttl` gives it one); its expiry
 *          hook emits (key, {"n": count}). With `crash_file`, the first
 *          hook call that finds no such file creates it and crashes
 *          (SIGSEGV), so only the first worker crashes.
 *   wmcheck  a sink that checks watermarks: they only grow, and the job
 *          fails in finish() when fewer than `min_watermarks` arrived
 *          before the final one; records behind the watermark are counted
 *          and logged.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

typedef struct fail_op {
    int64_t at, seen;
    int crash;
    const char *signal;
    const char *message;
    size_t message_len;
} fail_op;

static const weir_param_def fail_at = {
    .size = sizeof(weir_param_def),
    .name = "at",
    .type = WEIR_PARAM_INT,
    .default_value = "1",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 0,
    .description = "record number (1-based) that fails; 0 = never"};
static const weir_param_def fail_message = {.size = sizeof(weir_param_def),
                                            .name = "message",
                                            .type = WEIR_PARAM_STRING,
                                            .default_value =
                                                "deliberate failure",
                                            .description = "the error message"};
static const weir_param_def fail_in_open = {.size = sizeof(weir_param_def),
                                            .name = "in_open",
                                            .type = WEIR_PARAM_BOOL,
                                            .default_value = "false",
                                            .description =
                                                "fail in open() instead"};
static const weir_param_def fail_crash = {.size = sizeof(weir_param_def),
                                          .name = "crash",
                                          .type = WEIR_PARAM_BOOL,
                                          .default_value = "false",
                                          .description =
                                              "segfault instead of failing"};
static const char *const fail_signals[] = {"SIGSEGV", "SIGFPE", "SIGABRT",
                                           "stack", NULL};
static const weir_param_def fail_signal = {
    .size = sizeof(weir_param_def),
    .name = "signal",
    .type = WEIR_PARAM_ENUM,
    .default_value = "SIGSEGV",
    .choices = fail_signals,
    .description = "how `crash` crashes: a raised SIGSEGV or SIGFPE, "
                   "abort(), or a stack overflow"};
static const weir_param_def *const fail_params[] = {
    &fail_at, &fail_message, &fail_in_open, &fail_crash, &fail_signal, NULL};

/* Recurses until the stack overflows (a real SIGSEGV on the guard page). */
__attribute__((noinline)) static int fail_recurse(volatile char *up,
                                                  int64_t depth)
{
    volatile char frame[4096];
    frame[0] = (char)depth;
    frame[sizeof frame - 1] = up ? up[0] : 0;
    if (depth != INT64_MAX)
        depth = fail_recurse(frame, depth + 1);
    return frame[0] + (int)depth;
}

static void fail_crash_now(const char *how)
{
    if (!strcmp(how, "SIGFPE"))
        raise(SIGFPE);
    else if (!strcmp(how, "SIGABRT"))
        abort();
    else if (!strcmp(how, "stack"))
        fail_recurse(NULL, 0);
    raise(SIGSEGV); /* a real crash, also under sanitizers */
}

static int fail_open(weir_ctx *ctx, void **self)
{
    fail_op *f = calloc(1, sizeof *f);
    int in_open = 0;
    if (!f)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "at", &f->at);
    weir_param_bool(ctx, "in_open", &in_open);
    weir_param_bool(ctx, "crash", &f->crash);
    weir_param_string(ctx, "message", &f->message, &f->message_len);
    size_t len;
    f->signal = "SIGSEGV";
    weir_param_string(ctx, "signal", &f->signal, &len);
    if (in_open) {
        int rc = weir_set_error(ctx, "%.*s", (int)f->message_len, f->message);
        free(f);
        return rc;
    }
    *self = f;
    return WEIR_OK;
}

static int fail_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    fail_op *f = self;
    if (++f->seen == f->at) {
        if (f->crash)
            fail_crash_now(f->signal);
        return weir_set_error(ctx, "%.*s", (int)f->message_len, f->message);
    }
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static void generic_close(weir_ctx *ctx, void *self)
{
    free(self);
}

static const weir_operator fail_operator = {
    .size = sizeof(weir_operator),
    .name = "fail",
    .version = "1.0",
    .description = "forwards records, then fails on purpose (tests)",
    .params = fail_params,
    .open = fail_open,
    .process = fail_process,
    .close = generic_close,
};

typedef struct slow_op {
    int64_t delay_us;
    uint64_t n;
} slow_op;

static const weir_param_def slow_delay = {.size = sizeof(weir_param_def),
                                          .name = "delay_us",
                                          .type = WEIR_PARAM_INT,
                                          .default_value = "100",
                                          .flags = WEIR_PARAM_HAS_MIN,
                                          .min = 0,
                                          .description =
                                              "sleep per record, microseconds"};
static const weir_param_def *const slow_params[] = {&slow_delay, NULL};

static int slow_open(weir_ctx *ctx, void **self)
{
    slow_op *s = calloc(1, sizeof *s);
    if (!s)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "delay_us", &s->delay_us);
    *self = s;
    return WEIR_OK;
}

static int slow_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    slow_op *s = self;
    struct timespec ts = {0, (long)s->delay_us * 1000};
    if (s->delay_us)
        nanosleep(&ts, NULL);
    s->n++;
    return WEIR_OK;
}

static int slow_finish(weir_ctx *ctx, void *self)
{
    weir_log(ctx, WEIR_LOG_INFO, "slow sink received %llu records",
             (unsigned long long)((slow_op *)self)->n);
    return WEIR_OK;
}

static const char *const no_outputs[] = {NULL};

static const weir_operator slow_operator = {
    .size = sizeof(weir_operator),
    .name = "slow",
    .version = "1.0",
    .description = "a sink that sleeps per record (tests)",
    .output_ports = no_outputs,
    .params = slow_params,
    .open = slow_open,
    .process = slow_process,
    .finish = slow_finish,
    .close = generic_close,
};

static int relay_open(weir_ctx *ctx, void **self)
{
    *self = NULL;
    return WEIR_OK;
}

static int relay_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static const weir_operator relay_operator = {
    .size = sizeof(weir_operator),
    .name = "relay",
    .version = "1.0",
    .description = "forwards every record unchanged (tests)",
    .open = relay_open,
    .process = relay_process,
    .close = generic_close,
};

typedef struct wmcheck_op {
    int64_t last, calls, min_calls, late;
} wmcheck_op;

static const weir_param_def wm_min = {
    .size = sizeof(weir_param_def),
    .name = "min_watermarks",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .description = "watermarks required before the final one"};
static const weir_param_def *const wmcheck_params[] = {&wm_min, NULL};

static int wmcheck_open(weir_ctx *ctx, void **self)
{
    wmcheck_op *w = calloc(1, sizeof *w);
    if (!w)
        return WEIR_ENOMEM;
    w->last = WEIR_WATERMARK_MIN;
    weir_param_int(ctx, "min_watermarks", &w->min_calls);
    *self = w;
    return WEIR_OK;
}

static int wmcheck_process(weir_ctx *ctx, void *self, const weir_record *rec,
                           uint32_t port)
{
    wmcheck_op *w = self;
    if (rec->ts != WEIR_TS_NONE && rec->ts < weir_watermark(ctx))
        w->late++;
    return WEIR_OK;
}

static int wmcheck_watermark(weir_ctx *ctx, void *self, int64_t wm)
{
    wmcheck_op *w = self;
    if (wm <= w->last)
        return weir_set_error(ctx, "watermark went from %lld to %lld",
                              (long long)w->last, (long long)wm);
    if (wm != WEIR_WATERMARK_MAX)
        w->calls++;
    w->last = wm;
    return WEIR_OK;
}

static int wmcheck_finish(weir_ctx *ctx, void *self)
{
    wmcheck_op *w = self;
    weir_log(ctx, WEIR_LOG_INFO, "wmcheck: %lld watermarks, %lld late",
             (long long)w->calls, (long long)w->late);
    if (w->last != WEIR_WATERMARK_MAX)
        return weir_set_error(ctx, "the final watermark did not arrive");
    if (w->calls < w->min_calls)
        return weir_set_error(ctx, "only %lld watermarks, want %lld",
                              (long long)w->calls, (long long)w->min_calls);
    return WEIR_OK;
}

static const weir_operator wmcheck_operator = {
    .size = sizeof(weir_operator),
    .name = "wmcheck",
    .version = "1.0",
    .description = "a sink that checks watermarks (tests)",
    .output_ports = no_outputs,
    .params = wmcheck_params,
    .open = wmcheck_open,
    .process = wmcheck_process,
    .on_watermark = wmcheck_watermark,
    .finish = wmcheck_finish,
    .close = generic_close,
};

typedef struct seqsrc_op {
    const char *keys;
    size_t n_keys;
    int64_t ts[64];
    size_t n, next;
    int64_t pause_ms, linger_ms, last_ms;
} seqsrc_op;

static const weir_param_def seq_ts = {.size = sizeof(weir_param_def),
                                      .name = "ts",
                                      .type = WEIR_PARAM_ANY,
                                      .flags = WEIR_PARAM_REQUIRED,
                                      .description = "event times, a list"};
static const weir_param_def seq_pause = {.size = sizeof(weir_param_def),
                                         .name = "pause_ms",
                                         .type = WEIR_PARAM_INT,
                                         .default_value = "5",
                                         .description =
                                             "wait before each record"};
static const weir_param_def seq_linger = {
    .size = sizeof(weir_param_def),
    .name = "linger_ms",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .description = "wait after the last record before the end"};
static const weir_param_def seq_keys = {.size = sizeof(weir_param_def),
                                        .name = "keys",
                                        .type = WEIR_PARAM_STRING,
                                        .default_value = "",
                                        .description =
                                            "one-letter key per record"};
static const weir_param_def *const seqsrc_params[] = {
    &seq_ts, &seq_pause, &seq_linger, &seq_keys, NULL};

static int seqsrc_open(weir_ctx *ctx, void **self)
{
    seqsrc_op *q = calloc(1, sizeof *q);
    const void *mp;
    size_t len;
    weir_mp_reader r;
    if (!q)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "pause_ms", &q->pause_ms);
    weir_param_int(ctx, "linger_ms", &q->linger_ms);
    weir_param_string(ctx, "keys", &q->keys, &q->n_keys);
    weir_param_msgpack(ctx, "ts", &mp, &len);
    weir_mp_reader_init(&r);
    const msgpack_object *o = weir_mp_read(&r, mp, len);
    int ok = o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size <= 64;
    for (uint32_t i = 0; ok && i < o->via.array.size; i++)
        ok = weir_mp_as_int(&o->via.array.ptr[i], &q->ts[q->n++]) == 0;
    weir_mp_reader_destroy(&r);
    if (!ok) {
        free(q);
        return weir_set_error(ctx, "ts: expected a list of at most 64 ints");
    }
    q->last_ms = weir_now(ctx);
    *self = q;
    return WEIR_OK;
}

static int seqsrc_poll(weir_ctx *ctx, void *self)
{
    seqsrc_op *q = self;
    int64_t now = weir_now(ctx);
    if (q->next == q->n)
        return now - q->last_ms >= q->linger_ms ? WEIR_EOF : WEIR_EAGAIN;
    if (now - q->last_ms < q->pause_ms)
        return WEIR_EAGAIN;
    q->last_ms = now;
    size_t i = q->next++;
    const char *key = i < q->n_keys ? q->keys + i : "k";
    return weir_emit(ctx, 0, key, 1, q->ts[i], "", 0);
}

static const weir_operator seqsrc_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "seqsrc",
    .version = "1.0",
    .description = "emits records with given event times, slowly (tests)",
    .params = seqsrc_params,
    .open = seqsrc_open,
    .poll = seqsrc_poll,
    .close = generic_close,
};

typedef struct ctr_op {
    int64_t count, batch, pause_us, next_us;
    uint64_t emitted;
    char key[8];
} ctr_op;

static const weir_param_def ctr_count = {.size = sizeof(weir_param_def),
                                         .name = "count",
                                         .type = WEIR_PARAM_INT,
                                         .default_value = "1000",
                                         .description = "records per subtask"};
static const weir_param_def ctr_batch = {.size = sizeof(weir_param_def),
                                         .name = "batch",
                                         .type = WEIR_PARAM_INT,
                                         .default_value = "10",
                                         .description = "records per poll"};
static const weir_param_def ctr_pause = {
    .size = sizeof(weir_param_def),
    .name = "pause_us",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .description = "pause between polls, microseconds"};
static const weir_param_def *const ctr_params[] = {&ctr_count, &ctr_batch,
                                                   &ctr_pause, NULL};

static int ctr_open(weir_ctx *ctx, void **self)
{
    ctr_op *c = calloc(1, sizeof *c);
    if (!c)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "count", &c->count);
    weir_param_int(ctx, "batch", &c->batch);
    weir_param_int(ctx, "pause_us", &c->pause_us);
    snprintf(c->key, sizeof c->key, "s%u", weir_subtask_index(ctx) % 8);
    *self = c;
    return WEIR_OK;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int ctr_poll(weir_ctx *ctx, void *self)
{
    ctr_op *c = self;
    if ((int64_t)c->emitted >= c->count)
        return WEIR_EOF;
    int64_t now = mono_us();
    if (now < c->next_us)
        return WEIR_EAGAIN;
    c->next_us = now + c->pause_us;
    for (int64_t i = 0; i < c->batch && (int64_t)c->emitted < c->count; i++) {
        uint64_t n = c->emitted++;
        int rc = weir_emit(ctx, 0, c->key, strlen(c->key), WEIR_TS_NONE, &n,
                           sizeof n);
        if (rc < 0)
            return rc;
    }
    return WEIR_OK;
}

static int ctr_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    ctr_op *c = self;
    return weir_snapshot_write(ctx, &c->emitted, sizeof c->emitted);
}

static int ctr_restore(weir_ctx *ctx, void *self, uint64_t id, uint32_t v,
                       const void *data, size_t len)
{
    ctr_op *c = self;
    if (len != sizeof c->emitted)
        return weir_set_error(ctx, "ctrsrc: bad snapshot");
    memcpy(&c->emitted, data, len);
    return WEIR_OK;
}

static const weir_operator ctr_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "ctrsrc",
    .version = "1.0",
    .description = "a counting source with a snapshot (tests)",
    .params = ctr_params,
    .snapshot_version = 1,
    .open = ctr_open,
    .poll = ctr_poll,
    .snapshot = ctr_snapshot,
    .restore = ctr_restore,
    .close = generic_close,
};

typedef struct cut_op {
    uint64_t seen[8];
    int64_t delay_us;
} cut_op;

static const weir_param_def cut_delay = {
    .size = sizeof(weir_param_def),
    .name = "delay_us",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .description = "busy wait per record, microseconds"};
static const weir_param_def *const cut_params[] = {&cut_delay, NULL};

static int cut_open(weir_ctx *ctx, void **self)
{
    cut_op *c = calloc(1, sizeof *c);
    if (!c)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "delay_us", &c->delay_us);
    *self = c;
    return WEIR_OK;
}

static int cut_process(weir_ctx *ctx, void *self, const weir_record *rec,
                       uint32_t port)
{
    cut_op *c = self;
    if (rec->key_len != 2 || ((const char *)rec->key)[0] != 's')
        return weir_set_error(ctx, "cutcheck: unexpected key");
    c->seen[(((const char *)rec->key)[1] - '0') & 7]++;
    int64_t until = mono_us() + c->delay_us;
    while (c->delay_us && mono_us() < until)
        ;
    return WEIR_OK;
}

static int cut_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    cut_op *c = self;
    return weir_snapshot_write(ctx, c->seen, sizeof c->seen);
}

static int cut_restore(weir_ctx *ctx, void *self, uint64_t id, uint32_t v,
                       const void *data, size_t len)
{
    cut_op *c = self;
    if (len != sizeof c->seen)
        return weir_set_error(ctx, "cutcheck: bad snapshot");
    memcpy(c->seen, data, len);
    return WEIR_OK;
}

static const weir_operator cut_operator = {
    .size = sizeof(weir_operator),
    .name = "cutcheck",
    .version = "1.0",
    .description = "a sink counting records per source subtask (tests)",
    .output_ports = no_outputs,
    .params = cut_params,
    .snapshot_version = 1,
    .open = cut_open,
    .process = cut_process,
    .snapshot = cut_snapshot,
    .restore = cut_restore,
    .close = generic_close,
};

typedef struct ptimer_op {
    weir_state *armed;
    int64_t delay_ms;
} ptimer_op;

static const weir_param_def pt_delay = {.size = sizeof(weir_param_def),
                                        .name = "delay_ms",
                                        .type = WEIR_PARAM_INT,
                                        .default_value = "1000",
                                        .description =
                                            "timer delay, milliseconds"};
static const weir_param_def *const ptimer_params[] = {&pt_delay, NULL};

static int ptimer_open(weir_ctx *ctx, void **self)
{
    ptimer_op *p = calloc(1, sizeof *p);
    if (!p)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "delay_ms", &p->delay_ms);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "armed",
                         .ttl_ms = WEIR_TTL_NONE};
    int rc = weir_state_declare(ctx, &d, &p->armed);
    if (rc < 0) {
        free(p);
        return rc;
    }
    *self = p;
    return WEIR_OK;
}

static int ptimer_process(weir_ctx *ctx, void *self, const weir_record *rec,
                          uint32_t port)
{
    ptimer_op *p = self;
    const void *v;
    size_t n;
    if (weir_value_get(ctx, p->armed, &v, &n) == WEIR_OK)
        return WEIR_OK;
    int rc = weir_timer_register(ctx, WEIR_TIME_PROCESSING,
                                 weir_now(ctx) + p->delay_ms);
    return rc < 0 ? rc : weir_value_put(ctx, p->armed, "1", 1);
}

static int ptimer_on_timer(weir_ctx *ctx, void *self, const void *key,
                           size_t key_len, weir_time_domain domain, int64_t ts)
{
    return weir_emit(ctx, 0, key, key_len, WEIR_TS_NONE,
                     "\xa5"
                     "fired",
                     6);
}

static const weir_operator ptimer_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "ptimer",
    .version = "1.0",
    .description = "a processing-time timer per key (tests)",
    .params = ptimer_params,
    .open = ptimer_open,
    .process = ptimer_process,
    .on_timer = ptimer_on_timer,
    .close = generic_close,
};

typedef struct hookcount_op {
    weir_state *n;
    const char *crash_file; /* "" : never crash */
} hookcount_op;

static const weir_param_def hc_crash_file = {
    .size = sizeof(weir_param_def),
    .name = "crash_file",
    .type = WEIR_PARAM_STRING,
    .default_value = "",
    .description = "the expiry hook crashes once, creating this file"};
static const weir_param_def *const hookcount_params[] = {&hc_crash_file, NULL};

static int hookcount_open(weir_ctx *ctx, void **self)
{
    hookcount_op *h = calloc(1, sizeof *h);
    if (!h)
        return WEIR_ENOMEM;
    size_t len;
    h->crash_file = "";
    weir_param_string(ctx, "crash_file", &h->crash_file, &len);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "n",
                         .ttl_ms = WEIR_TTL_NONE};
    int rc = weir_state_declare(ctx, &d, &h->n);
    if (rc < 0) {
        free(h);
        return rc;
    }
    *self = h;
    return WEIR_OK;
}

static int hookcount_process(weir_ctx *ctx, void *self, const weir_record *rec,
                             uint32_t port)
{
    hookcount_op *h = self;
    const void *v;
    size_t len;
    int64_t n = 0;
    int rc = weir_value_get(ctx, h->n, &v, &len);
    if (rc == WEIR_OK && len == sizeof n)
        memcpy(&n, v, sizeof n);
    else if (rc != WEIR_ENOTFOUND)
        return rc < 0 ? rc : WEIR_EINVAL;
    n++;
    return weir_value_put(ctx, h->n, &n, sizeof n);
}

static int hookcount_expired(weir_ctx *ctx, void *self, weir_state *state,
                             const void *key, size_t key_len, const void *ukey,
                             size_t ukey_len, const void *value,
                             size_t value_len)
{
    hookcount_op *h = self;
    if (h->crash_file[0] && access(h->crash_file, F_OK) != 0) {
        FILE *f = fopen(h->crash_file, "w");
        if (f)
            fclose(f);
        fail_crash_now("SIGSEGV");
    }
    int64_t n = 0;
    if (value_len == sizeof n)
        memcpy(&n, value, sizeof n);
    /* {"n": n} */
    unsigned char mp[12] = {0x81, 0xa1, 'n', 0xd3};
    for (int i = 0; i < 8; i++)
        mp[4 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    return weir_emit(ctx, 0, key, key_len, WEIR_TS_NONE, mp, sizeof mp);
}

static const weir_operator hookcount_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "hookcount",
    .version = "1.0",
    .description = "counts per key; the expiry hook emits the count (tests)",
    .params = hookcount_params,
    .open = hookcount_open,
    .process = hookcount_process,
    .on_state_expired = hookcount_expired,
    .close = generic_close,
};

typedef struct hang_op {
    int64_t after, seen;
    int in_timer, busy;
} hang_op;

static const weir_param_def hang_after = {.size = sizeof(weir_param_def),
                                          .name = "after",
                                          .type = WEIR_PARAM_INT,
                                          .default_value = "1",
                                          .flags = WEIR_PARAM_HAS_MIN,
                                          .min = 1,
                                          .description =
                                              "record number (1-based) that "
                                              "hangs"};
static const char *const hang_in_choices[] = {"process", "on_timer", NULL};
static const weir_param_def hang_in = {.size = sizeof(weir_param_def),
                                       .name = "in",
                                       .type = WEIR_PARAM_ENUM,
                                       .default_value = "process",
                                       .choices = hang_in_choices,
                                       .description =
                                           "the callback that never returns"};
static const weir_param_def hang_busy = {.size = sizeof(weir_param_def),
                                         .name = "busy",
                                         .type = WEIR_PARAM_BOOL,
                                         .default_value = "false",
                                         .description =
                                             "spin instead of sleeping"};
static const weir_param_def *const hang_params[] = {&hang_after, &hang_in,
                                                    &hang_busy, NULL};

static int hang_open(weir_ctx *ctx, void **self)
{
    hang_op *h = calloc(1, sizeof *h);
    const char *in = "process";
    size_t len;
    if (!h)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "after", &h->after);
    weir_param_bool(ctx, "busy", &h->busy);
    weir_param_string(ctx, "in", &in, &len);
    h->in_timer = !strcmp(in, "on_timer");
    *self = h;
    return WEIR_OK;
}

/* Never returns. */
static void hang_forever(const hang_op *h)
{
    volatile uint64_t spins = 0;
    for (;;) {
        if (h->busy) {
            spins++;
        } else {
            struct timespec ts = {0, 10L * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static int hang_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    hang_op *h = self;
    if (++h->seen == h->after) {
        if (!h->in_timer)
            hang_forever(h);
        int rc = weir_timer_register(ctx, WEIR_TIME_PROCESSING, weir_now(ctx));
        if (rc < 0)
            return rc;
    }
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static int hang_on_timer(weir_ctx *ctx, void *self, const void *key,
                         size_t key_len, weir_time_domain domain, int64_t ts)
{
    hang_forever(self);
    return WEIR_OK;
}

static const weir_operator hang_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "hang",
    .version = "1.0",
    .description = "a callback that never returns (tests)",
    .params = hang_params,
    .open = hang_open,
    .process = hang_process,
    .on_timer = hang_on_timer,
    .close = generic_close,
};

static const weir_operator *const testops_operators[] = {&ptimer_operator,
                                                         &ctr_operator,
                                                         &cut_operator,
                                                         &seqsrc_operator,
                                                         &fail_operator,
                                                         &slow_operator,
                                                         &relay_operator,
                                                         &wmcheck_operator,
                                                         &hang_operator,
                                                         &hookcount_operator,
                                                         NULL};

static const weir_plugin testops_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "testops",
    .version = "1.0",
    .description = "operators for the runtime tests",
    .operators = testops_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &testops_plugin;
}
