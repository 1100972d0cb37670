/*
 * asyncop - asynchronous test operators, built like any outside plugin (SDK
 * headers only). Each instance runs its own I/O thread, which completes the
 * requests with weir_async_complete() after a delay; the subtask thread
 * only queues them. What a request does comes from the record's msgpack
 * map (file_source turns a JSON line into one):
 *   "i"      the record's number (required, >= 0);
 *   "delay"  ms until the I/O thread completes it (default: parameter
 *            default_delay_ms); 0 completes it inside async_invoke(), on the
 *            subtask thread;
 *   "fail"   the first `fail` attempts complete with WEIR_ERETRY;
 *   "refuse" the first `refuse` attempts are refused: async_invoke() itself
 *            returns WEIR_ERETRY;
 *   "never"  true: never completed by the I/O thread (the host times it
 *            out); close() abandons it with WEIR_ECANCELED;
 *   "big"    n: completed inside async_invoke() with a result of n bytes
 *            (over runtime.max_record_size the host fails the request with
 *            WEIR_EINVAL);
 *   "twice"  true: completed inside async_invoke(), then completed again
 *            and with a NULL req, both of which the host must refuse.
 * A delay longer than the topology's async.timeout makes the completion
 * arrive after the host gave the attempt up (its result is dropped).
 *
 * on_async_result() emits {"i", "status", "attempts", "live", "res", "sub"}
 * with the input's key and time: status is the final status, attempts the
 * attempts this instance made for record i, live the number of records
 * whose first attempt this instance started and whose result it had not
 * received yet, counted when record i's first attempt started (at most the
 * host's capacity), res the attempt number the result carries (0 for a
 * failure), sub the subtask index, and misuse (with "big" or "twice") the
 * codes weir_async_complete() returned, as a list. The keyed variant
 * (asyncop_keyed) also counts results per key in keyed state and adds "n", the
 * count. With emit_watermarks, on_watermark() emits {"wm": watermark} (key
 * "wm").
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

#define AOP_MISUSE_SLOTS 64

typedef struct aop_pend {
    weir_async *req;
    int64_t due_ns;
    int status;
    int64_t attempt;
    struct aop_pend *next;
} aop_pend;

typedef struct aop {
    const weir_host_api *api; /* ctx->api: the table weir_async_complete()
                                 needs on the I/O thread */
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    aop_pend *pending; /* for the I/O thread */
    aop_pend *never;   /* completed only in close() */
    /* subtask thread only */
    int64_t *attempts, *live_at; /* by record number */
    size_t n_slots;
    int64_t live;
    int64_t default_delay;
    int emit_wm;
    int keyed;
    weir_state *count;
    weir_mp_writer w;
    int misuse[AOP_MISUSE_SLOTS][3]; /* codes of "big" and "twice" calls */
} aop;

static int64_t aop_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *aop_main(void *arg)
{
    aop *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        int64_t now = aop_now_ns(), next = INT64_MAX;
        aop_pend **pp = &a->pending, *due = NULL, **tail = &due;
        while (*pp) {
            aop_pend *p = *pp;
            if (p->due_ns <= now) {
                *pp = p->next;
                p->next = NULL;
                *tail = p;
                tail = &p->next;
                continue;
            }
            if (p->due_ns < next)
                next = p->due_ns;
            pp = &p->next;
        }
        if (due) {
            /* Complete outside the lock, in due order as found. */
            pthread_mutex_unlock(&a->mu);
            while (due) {
                aop_pend *p = due;
                due = p->next;
                unsigned char res[8];
                for (int k = 0; k < 8; k++)
                    res[k] = (unsigned char)((uint64_t)p->attempt >> (8 * k));
                weir_async_complete(a->api, p->req, p->status,
                                    p->status == WEIR_OK ? res : NULL,
                                    p->status == WEIR_OK ? 8 : 0);
                free(p);
            }
            pthread_mutex_lock(&a->mu);
            continue;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&a->cv, &a->mu);
        } else {
            struct timespec ts = {(time_t)(next / 1000000000),
                                  (long)(next % 1000000000)};
            pthread_cond_timedwait(&a->cv, &a->mu, &ts);
        }
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static const weir_param_def aop_p_delay = {
    .size = sizeof(weir_param_def),
    .name = "default_delay_ms",
    .type = WEIR_PARAM_INT,
    .default_value = "5",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 0,
    .description = "completion delay of a record without \"delay\""};
static const weir_param_def aop_p_wm = {
    .size = sizeof(weir_param_def),
    .name = "emit_watermarks",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "emit {\"wm\": w} from on_watermark()"};
static const weir_param_def *const aop_params[] = {&aop_p_delay, &aop_p_wm,
                                                   NULL};

static int aop_open_common(weir_ctx *ctx, void **self, int keyed)
{
    aop *a = calloc(1, sizeof *a);
    if (!a)
        return WEIR_ENOMEM;
    a->api = ctx->api;
    weir_param_int(ctx, "default_delay_ms", &a->default_delay);
    weir_param_bool(ctx, "emit_watermarks", &a->emit_wm);
    a->keyed = keyed;
    weir_mp_writer_init(&a->w);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    *self = a;
    if (keyed) {
        weir_state_desc d = {.size = sizeof d,
                             .kind = WEIR_STATE_VALUE,
                             .name = "count",
                             .ttl_ms = WEIR_TTL_NONE};
        int rc = weir_state_declare(ctx, &d, &a->count);
        if (rc < 0)
            return rc;
    }
    if (pthread_create(&a->thread, NULL, aop_main, a) != 0)
        return weir_set_error(ctx, "asyncop: cannot start the I/O thread");
    a->started = 1;
    return WEIR_OK;
}

static int aop_open(weir_ctx *ctx, void **self)
{
    return aop_open_common(ctx, self, 0);
}

static int aop_open_keyed(weir_ctx *ctx, void **self)
{
    return aop_open_common(ctx, self, 1);
}

static int aop_slot(aop *a, int64_t i)
{
    if ((uint64_t)i < a->n_slots)
        return 0;
    size_t n = a->n_slots ? a->n_slots : 1024;
    while (n <= (uint64_t)i)
        n *= 2;
    int64_t *x = realloc(a->attempts, n * sizeof *x);
    if (!x)
        return WEIR_ENOMEM;
    a->attempts = x;
    int64_t *y = realloc(a->live_at, n * sizeof *y);
    if (!y)
        return WEIR_ENOMEM;
    a->live_at = y;
    memset(a->attempts + a->n_slots, 0, (n - a->n_slots) * sizeof *x);
    memset(a->live_at + a->n_slots, 0, (n - a->n_slots) * sizeof *y);
    a->n_slots = n;
    return 0;
}

typedef struct aop_req {
    int64_t i, delay, fail, refuse, big;
    int never, twice;
} aop_req;

static int aop_parse(weir_ctx *ctx, aop *a, const weir_record *rec, aop_req *r)
{
    weir_mp_reader rd;
    weir_mp_reader_init(&rd);
    const msgpack_object *m = weir_mp_read(&rd, rec->value, rec->value_len);
    *r = (aop_req){.delay = a->default_delay};
    int rc = weir_mp_get_int(m, "i", &r->i);
    if (rc == 0 && r->i < 0)
        rc = WEIR_EINVAL;
    if (rc == 0) {
        weir_mp_get_int(m, "delay", &r->delay);
        weir_mp_get_int(m, "fail", &r->fail);
        weir_mp_get_int(m, "refuse", &r->refuse);
        const msgpack_object *nv = weir_mp_find(m, "never");
        r->never = nv && nv->type == MSGPACK_OBJECT_BOOLEAN && nv->via.boolean;
        nv = weir_mp_find(m, "twice");
        r->twice = nv && nv->type == MSGPACK_OBJECT_BOOLEAN && nv->via.boolean;
        r->big = -1;
        weir_mp_get_int(m, "big", &r->big);
    }
    weir_mp_reader_destroy(&rd);
    if (rc < 0)
        return weir_set_error(ctx, "asyncop: record without a number \"i\"");
    return 0;
}

static int aop_invoke(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port, weir_async *req)
{
    aop *a = self;
    (void)port;
    aop_req r;
    int rc = aop_parse(ctx, a, rec, &r);
    if (rc < 0 || (rc = aop_slot(a, r.i)) < 0)
        return rc;
    int64_t attempt = ++a->attempts[r.i];
    if (attempt == 1)
        a->live_at[r.i] = ++a->live;
    if (attempt <= r.refuse)
        return WEIR_ERETRY; /* the host keeps req; we must not complete it */
    int status = attempt <= r.fail ? WEIR_ERETRY : WEIR_OK;
    if (r.big >= 0) {
        unsigned char *b = calloc(1, (size_t)r.big + 1);
        if (!b)
            return WEIR_ENOMEM;
        a->misuse[r.i % AOP_MISUSE_SLOTS][0] =
            weir_async_complete(ctx->api, req, WEIR_OK, b, (size_t)r.big);
        free(b);
        return WEIR_OK;
    }
    if (r.twice) {
        int *m = a->misuse[r.i % AOP_MISUSE_SLOTS];
        m[0] = weir_async_complete(ctx->api, req, WEIR_OK, NULL, 0);
        m[1] = weir_async_complete(ctx->api, req, WEIR_OK, NULL, 0);
        m[2] = weir_async_complete(ctx->api, NULL, WEIR_OK, NULL, 0);
        return WEIR_OK;
    }
    if (r.delay == 0 && !r.never) {
        unsigned char res[8];
        for (int k = 0; k < 8; k++)
            res[k] = (unsigned char)((uint64_t)attempt >> (8 * k));
        return weir_async_complete(ctx->api, req, status,
                                   status == WEIR_OK ? res : NULL,
                                   status == WEIR_OK ? 8 : 0);
    }
    aop_pend *p = calloc(1, sizeof *p);
    if (!p)
        return WEIR_ENOMEM;
    p->req = req;
    p->status = status;
    p->attempt = attempt;
    p->due_ns = aop_now_ns() + r.delay * 1000000;
    pthread_mutex_lock(&a->mu);
    if (r.never) {
        p->next = a->never;
        a->never = p;
    } else {
        p->next = a->pending;
        a->pending = p;
        pthread_cond_signal(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
    return WEIR_OK;
}

static int aop_result(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port, int status, const void *result,
                      size_t result_len)
{
    aop *a = self;
    (void)port;
    aop_req r;
    int rc = aop_parse(ctx, a, rec, &r);
    if (rc < 0 || (rc = aop_slot(a, r.i)) < 0)
        return rc;
    int64_t res = 0;
    if (status == WEIR_OK && (r.big >= 0 || r.twice)) {
        if (result_len != (size_t)(r.twice ? 0 : r.big))
            return weir_set_error(ctx, "asyncop: result of %zu bytes",
                                  result_len);
    } else if (status == WEIR_OK) {
        if (result_len != 8)
            return weir_set_error(ctx, "asyncop: result of %zu bytes",
                                  result_len);
        const unsigned char *b = result;
        for (int k = 0; k < 8; k++)
            res |= (int64_t)b[k] << (8 * k);
    }
    a->live--;
    int64_t n = 0;
    if (a->keyed) {
        const void *v;
        size_t len;
        rc = weir_value_get(ctx, a->count, &v, &len);
        if (rc == 0 && len == sizeof n)
            memcpy(&n, v, sizeof n);
        else if (rc < 0 && rc != WEIR_ENOTFOUND)
            return rc;
        n++;
        if ((rc = weir_value_put(ctx, a->count, &n, sizeof n)) < 0)
            return rc;
    }
    msgpack_packer *pk = &a->w.pk;
    weir_mp_writer_reset(&a->w);
    int misused = r.big >= 0 || r.twice;
    msgpack_pack_map(pk, 6 + (a->keyed != 0) + misused);
    weir_mp_pack_str(pk, "i");
    msgpack_pack_int64(pk, r.i);
    weir_mp_pack_str(pk, "status");
    msgpack_pack_int(pk, status);
    weir_mp_pack_str(pk, "attempts");
    msgpack_pack_int64(pk, a->attempts[r.i]);
    weir_mp_pack_str(pk, "live");
    msgpack_pack_int64(pk, a->live_at[r.i]);
    weir_mp_pack_str(pk, "res");
    msgpack_pack_int64(pk, res);
    weir_mp_pack_str(pk, "sub");
    msgpack_pack_uint32(pk, weir_subtask_index(ctx));
    if (a->keyed) {
        weir_mp_pack_str(pk, "n");
        msgpack_pack_int64(pk, n);
    }
    if (misused) {
        int *m = a->misuse[r.i % AOP_MISUSE_SLOTS];
        weir_mp_pack_str(pk, "misuse");
        msgpack_pack_array(pk, r.twice ? 3 : 1);
        for (int k = 0; k < (r.twice ? 3 : 1); k++)
            msgpack_pack_int(pk, m[k]);
    }
    a->attempts[r.i] = 0; /* a record seen again (restore) counts anew */
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, a->w.buf.data,
                     a->w.buf.size);
}

static int aop_watermark(weir_ctx *ctx, void *self, int64_t wm)
{
    aop *a = self;
    if (!a->emit_wm || wm == WEIR_WATERMARK_MAX)
        return 0;
    msgpack_packer *pk = &a->w.pk;
    weir_mp_writer_reset(&a->w);
    msgpack_pack_map(pk, 1);
    weir_mp_pack_str(pk, "wm");
    msgpack_pack_int64(pk, wm);
    return weir_emit(ctx, 0, "wm", 2, wm, a->w.buf.data, a->w.buf.size);
}

/* Stops the I/O thread, then abandons every request still held. */
static void aop_close(weir_ctx *ctx, void *self)
{
    aop *a = self;
    (void)ctx;
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->mu);
        a->stop = 1;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    aop_pend *lists[2] = {a->pending, a->never};
    for (int k = 0; k < 2; k++)
        while (lists[k]) {
            aop_pend *p = lists[k];
            lists[k] = p->next;
            weir_async_complete(a->api, p->req, WEIR_ECANCELED, NULL, 0);
            free(p);
        }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    weir_mp_writer_destroy(&a->w);
    free(a->attempts);
    free(a->live_at);
    free(a);
}

static const weir_operator aop_operator = {
    .size = sizeof(weir_operator),
    .name = "asyncop",
    .version = "1.0",
    .description = "async requests completed by an I/O thread (tests)",
    .params = aop_params,
    .open = aop_open,
    .on_watermark = aop_watermark,
    .close = aop_close,
    .async_invoke = aop_invoke,
    .on_async_result = aop_result,
};

static const weir_operator aop_keyed_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "asyncop_keyed",
    .version = "1.0",
    .description = "asyncop with a keyed count of results (tests)",
    .params = aop_params,
    .open = aop_open_keyed,
    .on_watermark = aop_watermark,
    .close = aop_close,
    .async_invoke = aop_invoke,
    .on_async_result = aop_result,
};

static const weir_operator *const aop_operators[] = {&aop_operator,
                                                     &aop_keyed_operator, NULL};

static const weir_plugin aop_plugin = {
    WEIR_PLUGIN_INIT,           .name = "asyncop",
    .version = "1.0",           .description = "asynchronous test operators",
    .operators = aop_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    (void)host;
    return &aop_plugin;
}
