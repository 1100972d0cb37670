/*
 * discard.c - operator "discard": a sink that drops records, counts them and
 * measures end-to-end latency; the benchmark's sink.
 *
 * When a record's value is a msgpack map with an integer field
 * latency_field (default "created_ns", as written by gen), the latency
 * CLOCK_MONOTONIC-now minus that field, in ns, goes into a log-linear
 * histogram (16 sub-buckets per power of two: at most 1/16 relative bucket
 * width, so percentiles are within about 3%). The field is found by
 * scanning the msgpack bytes without unpacking them. CLOCK_MONOTONIC is per
 * machine: latencies are meaningful only when the record was created on the
 * same machine. A value that is not a map, lacks the field, or has a field
 * later than now counts as a record without latency.
 *
 * finish() (or close(), when the job stops without finish) logs one INFO
 * line per subtask, in this exact format (numbers in ms with 3 decimals):
 *   discard <op id>[<subtask>]: records=N latency_n=M p50_ms=X p99_ms=X
 *   p999_ms=X max_ms=X span_ms=X
 * where span_ms is the time from the first to the last record seen; without
 * latency samples the line ends after latency_n=0 span_ms=X.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpscan.h"

#include "weir/weir.h"

#define DC_SUB_BITS 4
#define DC_SUB      (1u << DC_SUB_BITS) /* sub-buckets per power of two */
#define DC_BUCKETS  (DC_SUB + (64 - DC_SUB_BITS) * DC_SUB)

static const weir_param_def dc_p_latency_field = {
    .size = sizeof(weir_param_def),
    .name = "latency_field",
    .type = WEIR_PARAM_STRING,
    .default_value = "created_ns",
    .description = "integer value field with the CLOCK_MONOTONIC ns of "
                   "creation; latency = now - field"};
static const weir_param_def *const dc_params[] = {&dc_p_latency_field, NULL};

typedef struct dc {
    char *field;
    size_t field_len;
    uint64_t records;
    uint64_t lat_n;
    uint64_t lat_max;
    int64_t first_ns; /* monotonic time of the first record */
    int64_t last_ns;
    int reported;
    uint64_t hist[DC_BUCKETS];
} dc;

/* ------------------------------------------------------------------------ */
/* Histogram                                                                 */
/* ------------------------------------------------------------------------ */

static unsigned dc_bucket(uint64_t v)
{
    if (v < DC_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= DC_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - DC_SUB_BITS)) & (DC_SUB - 1);
    return DC_SUB + (e - DC_SUB_BITS) * DC_SUB + sub;
}

/* Lowest value of bucket i; its width goes to *width. */
static uint64_t dc_bucket_low(unsigned i, uint64_t *width)
{
    if (i < DC_SUB) {
        *width = 1;
        return i;
    }
    unsigned shift = (i - DC_SUB) / DC_SUB;
    unsigned sub = (i - DC_SUB) % DC_SUB;
    *width = (uint64_t)1 << shift;
    return (uint64_t)(DC_SUB + sub) << shift;
}

/* The q-quantile (0 < q <= 1) in ns: the middle of the bucket holding the
 * observation of rank ceil(q * n), at most the maximum seen. */
static double dc_quantile(const dc *d, double q)
{
    uint64_t rank = (uint64_t)(q * (double)d->lat_n);
    if ((double)rank < q * (double)d->lat_n)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < DC_BUCKETS; i++) {
        seen += d->hist[i];
        if (seen >= rank) {
            uint64_t w, low = dc_bucket_low(i, &w);
            double mid = (double)low + (double)(w - 1) / 2.0;
            return mid > (double)d->lat_max ? (double)d->lat_max : mid;
        }
    }
    return (double)d->lat_max;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int64_t dc_mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int dc_process(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port)
{
    dc *d = self;
    int64_t now = dc_mono_ns(), created;
    if (d->records++ == 0)
        d->first_ns = now;
    d->last_ns = now;
    if (mpscan_find_int(rec->value, rec->value_len, d->field, d->field_len,
                        &created) == 0 &&
        created <= now) {
        uint64_t lat = (uint64_t)now - (uint64_t)created;
        d->hist[dc_bucket(lat)]++;
        d->lat_n++;
        if (lat > d->lat_max)
            d->lat_max = lat;
    }
    return WEIR_OK;
}

static void dc_report(weir_ctx *ctx, dc *d)
{
    double span = (double)(d->last_ns - d->first_ns) / 1e6;
    const char *id = weir_operator_id(ctx);
    d->reported = 1;
    if (!d->lat_n) {
        weir_log(ctx, WEIR_LOG_INFO,
                 "discard %s[%u]: records=%llu latency_n=0 span_ms=%.3f",
                 id ? id : "?", weir_subtask_index(ctx),
                 (unsigned long long)d->records, span);
        return;
    }
    weir_log(ctx, WEIR_LOG_INFO,
             "discard %s[%u]: records=%llu latency_n=%llu p50_ms=%.3f "
             "p99_ms=%.3f p999_ms=%.3f max_ms=%.3f span_ms=%.3f",
             id ? id : "?", weir_subtask_index(ctx),
             (unsigned long long)d->records, (unsigned long long)d->lat_n,
             dc_quantile(d, 0.5) / 1e6, dc_quantile(d, 0.99) / 1e6,
             dc_quantile(d, 0.999) / 1e6, (double)d->lat_max / 1e6, span);
}

static int dc_finish(weir_ctx *ctx, void *self)
{
    dc_report(ctx, self);
    return WEIR_OK;
}

static int dc_open(weir_ctx *ctx, void **self)
{
    const char *f;
    size_t n;
    int rc = weir_param_string(ctx, "latency_field", &f, &n);
    if (rc < 0) {
        weir_set_error(ctx, "discard: parameter latency_field: %s",
                       weir_strerror(rc));
        return rc;
    }
    if (n == 0) {
        weir_set_error(ctx, "discard: parameter latency_field: must not be "
                            "empty");
        return WEIR_EINVAL;
    }
    dc *d = calloc(1, sizeof *d);
    if (d)
        d->field = malloc(n);
    if (!d || !d->field) {
        free(d);
        weir_set_error(ctx, "discard: out of memory");
        return WEIR_ENOMEM;
    }
    memcpy(d->field, f, n);
    d->field_len = n;
    *self = d;
    return WEIR_OK;
}

static void dc_close(weir_ctx *ctx, void *self)
{
    dc *d = self;
    if (!d)
        return;
    if (!d->reported)
        dc_report(ctx, d);
    free(d->field);
    free(d);
}

static const char *const dc_no_ports[] = {NULL};

static const weir_operator dc_op = {
    .size = sizeof(weir_operator),
    .name = "discard",
    .version = "1.0.0",
    .description = "drops records; logs the count and end-to-end latency "
                   "percentiles (from a created_ns field) at the end",
    .output_ports = dc_no_ports,
    .params = dc_params,
    .open = dc_open,
    .process = dc_process,
    .finish = dc_finish,
    .close = dc_close,
};

static const weir_operator *const dc_ops[] = {&dc_op, NULL};

static const weir_plugin dc_plugin = {
    WEIR_PLUGIN_INIT,    .name = "discard",
    .version = "1.0.0",  .description = "benchmark sink: count and latency",
    .operators = dc_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &dc_plugin;
}
