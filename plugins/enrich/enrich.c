/*
 * enrich.c - the "enrich" plugin: operators enrich_redis and enrich_http,
 * asynchronous lookups (ABI 1.3 async_invoke / on_async_result) that merge
 * what they find into each record.
 *
 * For every record of input "in" the lookup text is the record value's
 * field `key_field` (a string, or a number as its decimal text), or the
 * record's key when key_field is unset. async_invoke() copies it into a
 * request for the backend's I/O thread (eredis.c: HGETALL/GET <key_prefix
 * + text> on Redis; ehttp.c: GET of the `url` template with the text
 * substituted) and returns; the host bounds the requests in flight, orders
 * results, times out, retries and checkpoints them under the operator's
 * `async` topology section. on_async_result() then emits to port "out" the
 * record's value (a msgpack map) with the lookup result under
 * `target_field` (replacing a field of that name), with the record's key
 * and timestamp.
 *
 * Outcomes other than a found value:
 *   - missing (no Redis key, an empty hash, HTTP 404): `on_missing` emit
 *     (the record unchanged to "out"), drop, or error (to port "error");
 *   - a failure (a final one from the backend, or a transient one whose
 *     retries ran out or that timed out for the last time): `on_error`
 *     fail (the subtask fails with the reason), drop, or error.
 * A record sent to "error" is the record's value with `error_field` set to
 * the reason ("not found" for missing records).
 * A record whose value is not a msgpack map, or lacks a usable key_field,
 * is a failure too, decided by on_error without a lookup.
 *
 * Metrics: enrich_found_total, enrich_missing_total, enrich_failed_total.
 */
#define _GNU_SOURCE

#include "enrich.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrec.h"

enum { ENRICH_EMIT, ENRICH_DROP, ENRICH_ERROR_PORT, ENRICH_FAIL };

typedef struct enrich {
    char opname[128];
    char *key_field;    /* or NULL: the record key */
    char *target_field; /* never NULL */
    size_t target_len;
    char *error_field;
    size_t error_len;
    int on_missing, on_error;
    enr_shared sh;
    enr_backend *be;
    weir_mp_reader r;
    weir_mp_writer w, v;
    weir_metric *m_found, *m_missing, *m_failed;
} enrich;

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const char *const enrich_missing_choices[] = {"emit", "drop", "error",
                                                     NULL};
static const char *const enrich_error_choices[] = {"fail", "drop", "error",
                                                   NULL};

static const weir_param_def enrich_p_key_field = WEIR_PARAM(
    "key_field", WEIR_PARAM_STRING, NULL,
    "field of the value whose text is looked up (string or number); unset: "
    "the record key");
static const weir_param_def enrich_p_target = WEIR_PARAM(
    "target_field", WEIR_PARAM_STRING, "enrichment",
    "field of the value that receives the lookup result (replaced if present)");
static const weir_param_def enrich_p_missing = WEIR_PARAM(
    "on_missing", WEIR_PARAM_ENUM, "emit",
    "nothing found: emit (unchanged to out), drop, or error (to port error)",
    .choices = enrich_missing_choices);
static const weir_param_def enrich_p_error = WEIR_PARAM(
    "on_error", WEIR_PARAM_ENUM, "fail",
    "lookup failed for good (after the async retries): fail the subtask, "
    "drop, or error (to port error)",
    .choices = enrich_error_choices);
static const weir_param_def enrich_p_error_field =
    WEIR_PARAM("error_field", WEIR_PARAM_STRING, "enrich_error",
               "field that holds the reason in records sent to port error");

static const char *const enrich_cmd_choices[] = {"hgetall", "get", "get_json",
                                                 NULL};
static const weir_param_def enrich_p_address = WEIR_PARAM(
    "address", WEIR_PARAM_STRING, "127.0.0.1:6379",
    "Redis server: host:port, or a unix socket (/path or unix:/path)");
static const weir_param_def enrich_p_command = WEIR_PARAM(
    "command", WEIR_PARAM_ENUM, "hgetall",
    "hgetall (a hash -> map), get (a string), get_json (a string holding "
    "JSON -> its value)",
    .choices = enrich_cmd_choices);
static const weir_param_def enrich_p_prefix =
    WEIR_PARAM("key_prefix", WEIR_PARAM_STRING, "",
               "prepended to the lookup text to make the Redis key");
static const weir_param_def enrich_p_reconnect =
    WEIR_PARAM("reconnect_delay", WEIR_PARAM_DURATION, "100ms",
               "wait before connecting again after a failed or lost connection "
               "(lookups meanwhile fail with a retryable error)",
               .flags = WEIR_PARAM_HAS_MIN, .min = 1);

static const weir_param_def enrich_p_url = WEIR_PARAM(
    "url", WEIR_PARAM_STRING, NULL,
    "http:// or https:// URL template; {key} becomes the lookup text, "
    "percent-encoded",
    .flags = WEIR_PARAM_REQUIRED);
static const weir_param_def enrich_p_timeout =
    WEIR_PARAM("request_timeout", WEIR_PARAM_DURATION, "10s",
               "longest transfer (then a retryable timeout)",
               .flags = WEIR_PARAM_HAS_MIN, .min = 1);
static const weir_param_def enrich_p_connect_timeout =
    WEIR_PARAM("connect_timeout", WEIR_PARAM_DURATION, "2s",
               "longest connect (then a retryable error)",
               .flags = WEIR_PARAM_HAS_MIN, .min = 1);
static const weir_param_def enrich_p_max_body =
    WEIR_PARAM("max_response_size", WEIR_PARAM_SIZE, "1MiB",
               "longest response body; a longer one is a failure",
               .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX, .min = 1,
               .max = 64.0 * 1024 * 1024);

static const weir_param_def *const enrich_redis_params[] = {
    &enrich_p_address,     &enrich_p_command,
    &enrich_p_prefix,      &enrich_p_reconnect,
    &enrich_p_key_field,   &enrich_p_target,
    &enrich_p_missing,     &enrich_p_error,
    &enrich_p_error_field, NULL};
static const weir_param_def *const enrich_http_params[] = {
    &enrich_p_url,
    &enrich_p_timeout,
    &enrich_p_connect_timeout,
    &enrich_p_max_body,
    &enrich_p_key_field,
    &enrich_p_target,
    &enrich_p_missing,
    &enrich_p_error,
    &enrich_p_error_field,
    NULL};

/* ------------------------------------------------------------------------ */
/* Open / close                                                              */
/* ------------------------------------------------------------------------ */

static char *enrich_dup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

static int enrich_choice(const char *v, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(v, word, n) == 0;
}

static void enrich_free(enrich *e)
{
    weir_mp_reader_destroy(&e->r);
    weir_mp_writer_destroy(&e->w);
    weir_mp_writer_destroy(&e->v);
    enr_shared_destroy(&e->sh);
    free(e->key_field);
    free(e->target_field);
    free(e->error_field);
    free(e);
}

static int enrich_open(weir_ctx *ctx, void **self, int redis)
{
    enrich *e = calloc(1, sizeof *e);
    if (!e)
        return weir_set_error(ctx, "enrich: out of memory"), WEIR_ENOMEM;
    snprintf(e->opname, sizeof e->opname, "%s", weir_operator_id(ctx));
    /* ctx->api is the table weir_plugin_entry() received; it lives as long
     * as the process, so the I/O thread completes requests through it. */
    enr_shared_init(&e->sh, ctx->api);
    weir_mp_reader_init(&e->r);
    weir_mp_writer_init(&e->w);
    weir_mp_writer_init(&e->v);
    const char *p;
    size_t n;
    int rc = WEIR_ENOMEM;
    if (weir_param_string(ctx, "key_field", &p, &n) == 0 &&
        !(e->key_field = enrich_dup(p, n)))
        goto out;
    if ((rc = weir_param_string(ctx, "target_field", &p, &n)) < 0)
        goto out;
    if (n == 0) {
        rc = weir_set_error(ctx, "%s: target_field: must not be empty",
                            e->opname);
        goto out;
    }
    rc = WEIR_ENOMEM;
    if (!(e->target_field = enrich_dup(p, n)))
        goto out;
    e->target_len = n;
    if ((rc = weir_param_string(ctx, "error_field", &p, &n)) < 0)
        goto out;
    rc = WEIR_ENOMEM;
    if (!(e->error_field = enrich_dup(p, n)))
        goto out;
    e->error_len = n;
    if ((rc = weir_param_string(ctx, "on_missing", &p, &n)) < 0)
        goto out;
    e->on_missing = enrich_choice(p, n, "drop")    ? ENRICH_DROP
                    : enrich_choice(p, n, "error") ? ENRICH_ERROR_PORT
                                                   : ENRICH_EMIT;
    if ((rc = weir_param_string(ctx, "on_error", &p, &n)) < 0)
        goto out;
    e->on_error = enrich_choice(p, n, "drop")    ? ENRICH_DROP
                  : enrich_choice(p, n, "error") ? ENRICH_ERROR_PORT
                                                 : ENRICH_FAIL;
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "enrich_found_total",
                         "records enriched with a found value", NULL, NULL,
                         &e->m_found);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "enrich_missing_total",
                         "records whose lookup found nothing", NULL, NULL,
                         &e->m_missing);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "enrich_failed_total",
                         "records whose lookup failed for good", NULL, NULL,
                         &e->m_failed);
    rc = redis ? enr_redis_open(ctx, e->opname, &e->sh, &e->be)
               : enr_http_open(ctx, e->opname, &e->sh, &e->be);
    if (rc < 0)
        goto out;
    *self = e;
    return WEIR_OK;
out:
    if (rc == WEIR_ENOMEM)
        weir_set_error(ctx, "%s: out of memory", e->opname);
    enrich_free(e);
    return rc < 0 ? rc : WEIR_EFAIL;
}

static int enrich_open_redis(weir_ctx *ctx, void **self)
{
    return enrich_open(ctx, self, 1);
}

static int enrich_open_http(weir_ctx *ctx, void **self)
{
    return enrich_open(ctx, self, 0);
}

/* Completes every request still held (WEIR_ECANCELED) and joins the I/O
 * thread before it returns. */
static void enrich_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    enrich *e = self;
    enr_backend_close(e->be);
    enrich_free(e);
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* The lookup text of rec into *p, *n (pointing into rec or e's reader), or
 * a reason in why. */
static int enrich_key(enrich *e, const weir_record *rec, const char **p,
                      size_t *n, char tmp[40], char *why, size_t wsize)
{
    if (!e->key_field) {
        *p = rec->key;
        *n = rec->key_len;
        return 0;
    }
    const msgpack_object *o = weir_mp_read(&e->r, rec->value, rec->value_len);
    if (!o || o->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, wsize, "the record value is not a msgpack map");
        return -1;
    }
    const msgpack_object *f = weir_mp_find(o, e->key_field);
    char jw[JREC_WHY];
    if (!f) {
        snprintf(why, wsize, "the value has no field '%s'", e->key_field);
        return -1;
    }
    if (jrec_as_text(f, "key_field", e->key_field, tmp, p, n, jw) < 0) {
        snprintf(why, wsize, "%s", jw);
        return -1;
    }
    return 0;
}

/* Emits rec's value with `field` set to the msgpack `add` to `port`. */
static int enrich_emit_with(weir_ctx *ctx, enrich *e, const weir_record *rec,
                            uint32_t port, const char *field, size_t flen,
                            const void *add, size_t alen)
{
    int rc =
        enr_merge(&e->w, rec->value, rec->value_len, field, flen, add, alen);
    if (rc == WEIR_EINVAL)
        return weir_set_error(ctx, "%s: the record value is not a msgpack map",
                              e->opname),
               WEIR_EINVAL;
    if (rc < 0)
        return weir_set_error(ctx, "%s: out of memory", e->opname), rc;
    return weir_emit(ctx, port, rec->key, rec->key_len, rec->ts, e->w.buf.data,
                     e->w.buf.size);
}

/* A record whose lookup failed (or found nothing, with policy `policy`). */
static int enrich_unhappy(weir_ctx *ctx, enrich *e, const weir_record *rec,
                          int policy, const char *why)
{
    switch (policy) {
    case ENRICH_DROP: return WEIR_OK;
    case ENRICH_EMIT:
        return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                         rec->value_len);
    case ENRICH_ERROR_PORT:
        weir_mp_writer_reset(&e->v);
        if (weir_mp_pack_str(&e->v.pk, why) != 0)
            return weir_set_error(ctx, "%s: out of memory", e->opname),
                   WEIR_ENOMEM;
        if (enr_merge(&e->w, rec->value, rec->value_len, e->error_field,
                      e->error_len, e->v.buf.data, e->v.buf.size) == WEIR_OK)
            return weir_emit(ctx, 1, rec->key, rec->key_len, rec->ts,
                             e->w.buf.data, e->w.buf.size);
        /* Not a map: the reason alone, under error_field. */
        weir_mp_writer_reset(&e->w);
        msgpack_pack_map(&e->w.pk, 1);
        weir_mp_pack_strn(&e->w.pk, e->error_field, e->error_len);
        weir_mp_pack_str(&e->w.pk, why);
        return weir_emit(ctx, 1, rec->key, rec->key_len, rec->ts, e->w.buf.data,
                         e->w.buf.size);
    default: weir_set_error(ctx, "%s: %s", e->opname, why); return WEIR_EIO;
    }
}

static int enrich_invoke(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port, weir_async *req)
{
    (void)port;
    enrich *e = self;
    char tmp[40], why[400];
    const char *k;
    size_t kl;
    if (enrich_key(e, rec, &k, &kl, tmp, why, sizeof why) < 0) {
        /* Nothing to look up: complete at once, decided in on_async_result
         * by on_error like any failure. */
        size_t wl = strlen(why);
        char buf[sizeof why + 1];
        buf[0] = ENR_FAILED;
        memcpy(buf + 1, why, wl);
        return weir_async_complete(e->sh.api, req, WEIR_OK, buf, wl + 1) < 0
                   ? weir_set_error(ctx, "%s: weir_async_complete refused",
                                    e->opname)
                   : WEIR_OK;
    }
    char *arg;
    size_t al;
    if (e->be->arg(e->be, k, kl, &arg, &al) < 0)
        return weir_set_error(ctx, "%s: out of memory", e->opname), WEIR_ENOMEM;
    enr_req *r = enr_req_new(req, arg, al);
    free(arg);
    if (!r)
        return weir_set_error(ctx, "%s: out of memory", e->opname), WEIR_ENOMEM;
    if (enr_backend_submit(e->be, r) < 0) {
        free(r);
        return weir_set_error(ctx, "%s: the I/O thread has stopped", e->opname),
               WEIR_ESTATE;
    }
    return WEIR_OK;
}

static int enrich_result(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port, int status, const void *result,
                         size_t len)
{
    (void)port;
    enrich *e = self;
    const char *p = result;
    char why[ENR_ERRLEN + 200];
    if (status < 0) {
        char last[ENR_ERRLEN];
        enr_last_error(&e->sh, last, sizeof last);
        snprintf(why, sizeof why, "lookup failed: %s%s%s",
                 weir_strerror(status), last[0] ? "; latest error: " : "",
                 last);
        weir_counter_add(ctx, e->m_failed, 1);
        return enrich_unhappy(ctx, e, rec, e->on_error, why);
    }
    if (len < 1 ||
        (p[0] != ENR_FOUND && p[0] != ENR_MISSING && p[0] != ENR_FAILED))
        return weir_set_error(ctx, "%s: malformed async result", e->opname),
               WEIR_EINVAL;
    if (p[0] == ENR_MISSING) {
        weir_counter_add(ctx, e->m_missing, 1);
        return enrich_unhappy(ctx, e, rec, e->on_missing, "not found");
    }
    if (p[0] == ENR_FAILED) {
        snprintf(why, sizeof why, "%.*s", (int)(len - 1), p + 1);
        weir_counter_add(ctx, e->m_failed, 1);
        return enrich_unhappy(ctx, e, rec, e->on_error, why);
    }
    int rc = enrich_emit_with(ctx, e, rec, 0, e->target_field, e->target_len,
                              p + 1, len - 1);
    if (rc == WEIR_EINVAL && e->on_error != ENRICH_FAIL) {
        weir_counter_add(ctx, e->m_failed, 1);
        return enrich_unhappy(ctx, e, rec, e->on_error,
                              "the record value is not a msgpack map");
    }
    if (rc == 0)
        weir_counter_add(ctx, e->m_found, 1);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Plugin                                                                    */
/* ------------------------------------------------------------------------ */

static const char *const enrich_outputs[] = {"out", "error", NULL};

static const weir_operator enrich_redis_op = {
    .size = sizeof(weir_operator),
    .name = "enrich_redis",
    .version = "1.0.0",
    .description = "asynchronous Redis lookup (HGETALL/GET) merged into each "
                   "record under target_field",
    .output_ports = enrich_outputs,
    .params = enrich_redis_params,
    .open = enrich_open_redis,
    .close = enrich_close,
    .async_invoke = enrich_invoke,
    .on_async_result = enrich_result,
};

static const weir_operator enrich_http_op = {
    .size = sizeof(weir_operator),
    .name = "enrich_http",
    .version = "1.0.0",
    .description = "asynchronous HTTP GET of a URL template, JSON response "
                   "merged into each record under target_field",
    .output_ports = enrich_outputs,
    .params = enrich_http_params,
    .open = enrich_open_http,
    .close = enrich_close,
    .async_invoke = enrich_invoke,
    .on_async_result = enrich_result,
};

static const weir_operator *const enrich_ops[] = {&enrich_redis_op,
                                                  &enrich_http_op, NULL};

static const weir_plugin enrich_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "enrich",
    .version = "1.0.0",
    .description = "asynchronous enrichment from Redis (hiredis) and HTTP "
                   "(libcurl)",
    .operators = enrich_ops,
};

WEIR_PLUGIN_ENTRY(enrich_plugin)
