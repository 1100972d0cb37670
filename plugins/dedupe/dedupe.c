/*
 * dedupe.c - operator "dedupe" (keyed): drops records seen before within a
 * time-to-live.
 *
 * Identity of a record:
 *   - without `field`: its key. State: one keyed value state "seen" per key.
 *   - with `field`: its key and the value of the top-level field `field` of
 *     the record value (a msgpack map): a string or bin as its bytes, an
 *     integer as its decimal text (so 42 and "42" are the same value). State:
 *     one keyed map state "seen" per key whose user keys are the field
 *     values. A record whose value is not a map, or lacks the field, or has
 *     it with another type, cannot be identified: it goes to port "out"
 *     unchanged (nothing is dropped on a guess), is counted in
 *     dedupe_unidentified_records_total and the first 10 are logged.
 *
 * A record is a duplicate when an entry for its identity exists and was last
 * stamped less than `ttl` before the record's time t:
 *     duplicate  <=>  entry present  &&  t - seen < ttl
 * where t is the processing time on arrival (ttl_time: processing, the
 * default) or the record's event time (ttl_time: event). The first
 * occurrence goes to port "out" unchanged and stores seen = t; a duplicate
 * goes to port "duplicates" unchanged (a no-op when nothing consumes that
 * port) and is counted in dedupe_duplicates_total. With refresh: true a
 * duplicate also moves `seen` forward to its own t, so an identity stays
 * deduplicated until `ttl` after its latest occurrence; with refresh: false
 * (default) the window runs from the first occurrence, and the first record
 * at or after seen + ttl is a new first occurrence.
 *
 * State and TTL: every entry holds `seen` (8 bytes big-endian) and carries
 * the host's TTL of `ttl` in the same time domain, so the host removes an
 * identity's entry once the window is over (state stays bounded by the
 * identities of one window; no leak). The explicit `t - seen` test above
 * makes the result independent of when the host gets round to removing an
 * entry (watermarks arrive in steps). The state is declared with TTL update
 * on create-and-write, and dedupe writes only when `seen` moves forward:
 * that is how refresh is implemented, rather than with read-and-write TTL,
 * because an event-time read refreshes the stamp from the reading record's
 * time and an out-of-order duplicate would move the stamp earlier than the
 * window's real end.
 *
 * Event time: records without an event time fail the subtask (the source
 * needs a time_field). A late record (behind the watermark) is still
 * compared with `seen` when its entry is still there; once the watermark
 * passed seen + ttl the entry is gone and a late duplicate passes as a first
 * occurrence. Until the first watermark nothing is removed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define DD_LOG_LIMIT 10 /* unidentified records logged per subtask */

enum { DD_PORT_OUT = 0, DD_PORT_DUPLICATES = 1 };

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def dd_p_ttl = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED | WEIR_PARAM_HAS_MIN,
    .name = "ttl",
    .type = WEIR_PARAM_DURATION,
    .min = 1,
    .description = "a record is a duplicate when its identity was seen less "
                   "than this long before"};
static const weir_param_def dd_p_field = {
    .size = sizeof(weir_param_def),
    .name = "field",
    .type = WEIR_PARAM_STRING,
    .description = "top-level string or integer field that identifies a "
                   "record within its key (map state); unset or \"\" = the "
                   "key alone (value state)"};
static const char *const dd_time_choices[] = {"processing", "event", NULL};
static const weir_param_def dd_p_ttl_time = {
    .size = sizeof(weir_param_def),
    .name = "ttl_time",
    .type = WEIR_PARAM_ENUM,
    .default_value = "processing",
    .choices = dd_time_choices,
    .description = "processing: ttl on the wall clock at arrival; event: on "
                   "the records' event time (entries leave as the watermark "
                   "passes)"};
static const weir_param_def dd_p_refresh = {
    .size = sizeof(weir_param_def),
    .name = "refresh",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "a duplicate extends the window to ttl after itself "
                   "(false: the window runs from the first occurrence)"};
static const weir_param_def *const dd_params[] = {
    &dd_p_ttl, &dd_p_field, &dd_p_ttl_time, &dd_p_refresh, NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct dedupe {
    weir_state *seen; /* value state (by key) or map state (by field) */
    int64_t ttl;      /* ms, > 0 */
    int event_time;   /* ttl_time: event */
    int refresh;
    char *field; /* field name, field_len bytes; NULL = by key */
    size_t field_len;
    uint64_t unidentified;       /* records without a usable field */
    weir_metric *m_duplicates;   /* or NULL */
    weir_metric *m_unidentified; /* or NULL */
    char numbuf[24];             /* decimal text of an integer field */
} dedupe;

/* ------------------------------------------------------------------------ */
/* The identity field                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Finds field `name` of the top-level msgpack map in data[0..n) and returns
 * its bytes: a str or bin as its body, an integer as its decimal text (in
 * d->numbuf). Returns 0, or -1 with *why set when the record cannot be
 * identified. Reads the bytes without unpacking them (no allocation).
 */
static int dd_field(dedupe *d, const void *data, size_t n, const void **val,
                    size_t *val_len, const char **why)
{
    const unsigned char *p = data;
    size_t pos, hdr;
    uint64_t body, entries, items;
    if (n == 0 || mpscan_head(p, n, &hdr, &body, &entries) < 0 ||
        !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf)) {
        *why = "the value is not a msgpack map";
        return -1;
    }
    pos = hdr;
    for (uint64_t i = 0; i < entries / 2; i++) {
        if (pos >= n || mpscan_head(p + pos, n - pos, &hdr, &body, &items) < 0)
            break;
        unsigned c = p[pos];
        int is_str = (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb);
        if (is_str && body == d->field_len && hdr <= n - pos &&
            body <= n - pos - hdr &&
            memcmp(p + pos + hdr, d->field, d->field_len) == 0) {
            pos += hdr + (size_t)body;
            if (pos >= n ||
                mpscan_head(p + pos, n - pos, &hdr, &body, &items) < 0 ||
                hdr > n - pos || body > n - pos - hdr)
                break;
            c = p[pos];
            if ((c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb) ||
                (c >= 0xc4 && c <= 0xc6)) {
                *val = p + pos + hdr;
                *val_len = (size_t)body;
                return 0;
            }
            int64_t iv;
            if (mpscan_int(p + pos, n - pos, &iv) == 0) {
                int k = snprintf(d->numbuf, sizeof d->numbuf, "%lld",
                                 (long long)iv);
                *val = d->numbuf;
                *val_len = (size_t)k;
                return 0;
            }
            *why = "the field is neither a string nor an integer";
            return -1;
        }
        if (mpscan_skip(p, n, &pos, 2) < 0)
            break;
    }
    *why = "the field is missing";
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Seen times in keyed state                                                 */
/* ------------------------------------------------------------------------ */

/* The identity's seen time: WEIR_OK, WEIR_ENOTFOUND when there is none (or
 * it expired), or another negative code. ukey is unused without field. */
static int dd_load(weir_ctx *ctx, dedupe *d, const void *ukey, size_t ukey_len,
                   int64_t *seen)
{
    const void *v;
    size_t len;
    int rc = d->field ? weir_map_get(ctx, d->seen, ukey, ukey_len, &v, &len)
                      : weir_value_get(ctx, d->seen, &v, &len);
    if (rc < 0)
        return rc;
    if (len != 8) {
        weir_set_error(ctx, "dedupe: stored seen time has %zu bytes, not 8",
                       len);
        return WEIR_EINVAL;
    }
    *seen = (int64_t)mpscan_be(v, 8);
    return WEIR_OK;
}

static int dd_store(weir_ctx *ctx, dedupe *d, const void *ukey, size_t ukey_len,
                    int64_t seen)
{
    unsigned char buf[8];
    uint64_t u = (uint64_t)seen;
    for (int i = 7; i >= 0; i--, u >>= 8)
        buf[i] = (unsigned char)u;
    int rc = d->field
                 ? weir_map_put(ctx, d->seen, ukey, ukey_len, buf, sizeof buf)
                 : weir_value_put(ctx, d->seen, buf, sizeof buf);
    if (rc < 0)
        weir_set_error(ctx, "dedupe: storing the seen time: %s",
                       weir_strerror(rc));
    return rc;
}

/* Whether t lies within [seen, seen + ttl) or before seen, without
 * overflowing for any pair of times. */
static int dd_within(int64_t t, int64_t seen, int64_t ttl)
{
    return t < seen || (uint64_t)t - (uint64_t)seen < (uint64_t)ttl;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int dd_forward(weir_ctx *ctx, uint32_t port, const weir_record *rec)
{
    int rc = weir_emit(ctx, port, rec->key, rec->key_len, rec->ts, rec->value,
                       rec->value_len);
    if (rc < 0)
        weir_set_error(ctx, "dedupe: emit failed: %s", weir_strerror(rc));
    return rc;
}

static int dd_process(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port)
{
    dedupe *d = self;
    const void *ukey = NULL;
    size_t ukey_len = 0;
    if (d->field) {
        const char *why = NULL;
        if (dd_field(d, rec->value, rec->value_len, &ukey, &ukey_len, &why) <
            0) {
            if (d->unidentified++ < DD_LOG_LIMIT)
                weir_log(ctx, WEIR_LOG_WARN,
                         "dedupe: passing a record through unchecked: %s "
                         "(field '%.*s')%s",
                         why, (int)d->field_len, d->field,
                         d->unidentified == DD_LOG_LIMIT ? "; not logging more"
                                                         : "");
            weir_counter_add(ctx, d->m_unidentified, 1);
            return dd_forward(ctx, DD_PORT_OUT, rec);
        }
        if (ukey_len == 0)
            ukey = ""; /* an empty string is a valid identity */
    }
    int64_t t = weir_now(ctx);
    if (d->event_time) {
        if (rec->ts == WEIR_TS_NONE)
            return weir_set_error(ctx,
                                  "dedupe: a record without event time, but "
                                  "ttl_time is event (set time_field on the "
                                  "source, or use ttl_time: processing)");
        t = rec->ts;
    }
    int64_t seen = 0;
    int rc = dd_load(ctx, d, ukey, ukey_len, &seen);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rc;
    if (rc == WEIR_OK && dd_within(t, seen, d->ttl)) {
        weir_counter_add(ctx, d->m_duplicates, 1);
        if (d->refresh && t > seen &&
            (rc = dd_store(ctx, d, ukey, ukey_len, t)) < 0)
            return rc;
        return dd_forward(ctx, DD_PORT_DUPLICATES, rec);
    }
    if ((rc = dd_store(ctx, d, ukey, ukey_len, t)) < 0)
        return rc;
    return dd_forward(ctx, DD_PORT_OUT, rec);
}

static void dd_free(dedupe *d)
{
    free(d->field);
    free(d);
}

/* Reads the parameters into d. */
static int dd_params_read(weir_ctx *ctx, dedupe *d)
{
    const char *dom, *field;
    size_t dom_len, field_len = 0;
    int rc = weir_param_int(ctx, "ttl", &d->ttl);
    if (rc == WEIR_OK)
        rc = weir_param_string(ctx, "ttl_time", &dom, &dom_len);
    if (rc == WEIR_OK)
        rc = weir_param_bool(ctx, "refresh", &d->refresh);
    if (rc < 0) {
        weir_set_error(ctx, "dedupe: parameters ttl, ttl_time, refresh: %s",
                       weir_strerror(rc));
        return rc;
    }
    if (d->ttl <= 0) {
        weir_set_error(ctx, "dedupe: ttl must be > 0");
        return WEIR_EINVAL;
    }
    d->event_time = dom_len == 5 && memcmp(dom, "event", 5) == 0;
    rc = weir_param_string(ctx, "field", &field, &field_len);
    if (rc < 0 && rc != WEIR_ENOTFOUND) {
        weir_set_error(ctx, "dedupe: parameter field: %s", weir_strerror(rc));
        return rc;
    }
    if (rc == WEIR_OK && field_len) {
        if (!(d->field = malloc(field_len))) {
            weir_set_error(ctx, "dedupe: out of memory");
            return WEIR_ENOMEM;
        }
        memcpy(d->field, field, field_len);
        d->field_len = field_len;
    }
    return WEIR_OK;
}

static int dd_open(weir_ctx *ctx, void **self)
{
    dedupe *d = calloc(1, sizeof *d);
    if (!d) {
        weir_set_error(ctx, "dedupe: out of memory");
        return WEIR_ENOMEM;
    }
    int rc = dd_params_read(ctx, d);
    if (rc < 0)
        goto fail;
    weir_state_desc desc = {
        .size = sizeof desc,
        .kind = d->field ? WEIR_STATE_MAP : WEIR_STATE_VALUE,
        .name = "seen",
        .ttl_ms = d->ttl,
        .ttl_update = WEIR_TTL_ON_CREATE_AND_WRITE,
        .ttl_visibility = WEIR_TTL_NEVER_RETURN_EXPIRED,
        .ttl_domain = d->event_time ? WEIR_TIME_EVENT : WEIR_TIME_PROCESSING,
    };
    if ((rc = weir_state_declare(ctx, &desc, &d->seen)) < 0) {
        weir_set_error(ctx, "dedupe: declaring the seen state: %s",
                       weir_strerror(rc));
        goto fail;
    }
    /* Metrics are optional: a host without them leaves the pointers NULL. */
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "dedupe_duplicates_total",
                         "records dropped as duplicates (sent to port "
                         "duplicates)",
                         NULL, NULL, &d->m_duplicates);
    if (d->field)
        weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "dedupe_unidentified_records_total",
                             "records without a string or integer identity "
                             "field, passed through unchecked",
                             NULL, NULL, &d->m_unidentified);
    *self = d;
    return WEIR_OK;
fail:
    dd_free(d);
    return rc;
}

static int dd_finish(weir_ctx *ctx, void *self)
{
    dedupe *d = self;
    if (d->unidentified)
        weir_log(ctx, WEIR_LOG_WARN,
                 "dedupe: %llu records without a usable field '%.*s' passed "
                 "through unchecked",
                 (unsigned long long)d->unidentified, (int)d->field_len,
                 d->field);
    return WEIR_OK;
}

static void dd_close(weir_ctx *ctx, void *self)
{
    if (self)
        dd_free(self);
}

static const char *const dd_outputs[] = {"out", "duplicates", NULL};

static const weir_operator dd_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "dedupe",
    .version = "1.0.0",
    .description = "drops records whose key (or key and field) was seen "
                   "within ttl; first occurrences to out, duplicates to "
                   "duplicates",
    .output_ports = dd_outputs,
    .params = dd_params,
    .open = dd_open,
    .process = dd_process,
    .finish = dd_finish,
    .close = dd_close,
};

static const weir_operator *const dd_ops[] = {&dd_op, NULL};

static const weir_plugin dd_plugin = {
    WEIR_PLUGIN_INIT,    .name = "dedupe",
    .version = "1.0.0",  .description = "deduplication per key within a ttl",
    .operators = dd_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &dd_plugin;
}
