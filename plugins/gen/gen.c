/*
 * gen.c - operator "gen": a deterministic source of keyed records for tests
 * and benchmarks.
 *
 * The generator defines one global sequence of records n = 0, 1, 2, ...
 * Record n has
 *   key   = key_prefix followed by the decimal key index k (e.g. "k17"),
 *   ts    = start_ts + n * ts_step,
 *   value = msgpack {"seq": n, "key": "<key>", "created_ns": <CLOCK_MONOTONIC
 *           ns when the record was emitted>}.
 * The key index k depends only on (seed, n): it is drawn from a
 * counter-based random stream (splitmix64 of the mixed seed xor n), uniform
 * over [0, keys) or Zipf(zipf_s) over [0, keys) with k = 0 the most
 * frequent. With parallelism P, subtask i emits records i, i+P, i+2P, ...,
 * so the union over the subtasks is exactly the sequence of parallelism 1.
 *
 * rate is the total over all subtasks: each subtask paces itself to rate/P
 * records per second of processing time (weir_now()) from its first poll and
 * returns WEIR_EAGAIN while ahead.
 *
 * Snapshot (version 1, 16 bytes, little endian): the subtask's next sequence
 * number (u64), the parallelism (u32) and the subtask index (u32) it was
 * taken with. Restoring into another parallelism is refused.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

#define GEN_MAX_BATCH        65536
#define GEN_MAX_PREFIX       256
#define GEN_SNAPSHOT_VERSION 1
#define GEN_SNAPSHOT_LEN     16
#define GEN_GOLDEN           0x9e3779b97f4a7c15ULL
/* Draws per record before the Zipf sampler gives up rejecting; the
 * acceptance rate is above 90% per draw, so this bound is never reached in
 * practice and only guarantees termination. */
#define GEN_ZIPF_MAX_DRAWS   64

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

#define GEN_PARAM(var, pname, ptype, pflags, pdefault, pmin, pmax, pdesc)      \
    static const weir_param_def var = {.size = sizeof(weir_param_def),         \
                                       .flags = (pflags),                      \
                                       .name = (pname),                        \
                                       .type = (ptype),                        \
                                       .default_value = (pdefault),            \
                                       .min = (pmin),                          \
                                       .max = (pmax),                          \
                                       .description = (pdesc)}

#define GEN_MINMAX (WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX)

GEN_PARAM(gen_p_count, "count", WEIR_PARAM_INT, WEIR_PARAM_HAS_MIN, "0", 0, 0,
          "records to generate over all subtasks; 0 = unbounded");
GEN_PARAM(gen_p_keys, "keys", WEIR_PARAM_INT, GEN_MINMAX, "1000", 1, 1e12,
          "number of distinct keys");
static const char *const gen_distributions[] = {"uniform", "zipf", NULL};
static const weir_param_def gen_p_distribution = {
    .size = sizeof(weir_param_def),
    .name = "distribution",
    .type = WEIR_PARAM_ENUM,
    .default_value = "uniform",
    .choices = gen_distributions,
    .description = "key distribution: uniform, or zipf (key 0 most frequent)"};
GEN_PARAM(gen_p_zipf_s, "zipf_s", WEIR_PARAM_DOUBLE, GEN_MINMAX, "0.99", 0, 10,
          "Zipf exponent s (> 0) for distribution zipf");
GEN_PARAM(gen_p_seed, "seed", WEIR_PARAM_INT, 0, "0", 0, 0,
          "random seed; the key of record n depends only on (seed, n)");
GEN_PARAM(gen_p_rate, "rate", WEIR_PARAM_INT, WEIR_PARAM_HAS_MIN, "0", 0, 0,
          "records per second over all subtasks; 0 = as fast as possible");
GEN_PARAM(gen_p_start_ts, "start_ts", WEIR_PARAM_INT, 0, "0", 0, 0,
          "event time in ms of record 0");
GEN_PARAM(gen_p_ts_step, "ts_step", WEIR_PARAM_DURATION, WEIR_PARAM_HAS_MIN,
          "1ms", 0, 0, "event-time step between consecutive records");
GEN_PARAM(gen_p_batch, "batch", WEIR_PARAM_INT, GEN_MINMAX, "1024", 1,
          GEN_MAX_BATCH, "records emitted per poll at most");
GEN_PARAM(gen_p_key_prefix, "key_prefix", WEIR_PARAM_STRING, 0, "k", 0, 0,
          "text put before the key index (at most 256 bytes)");

static const weir_param_def *const gen_params[] = {&gen_p_count,
                                                   &gen_p_keys,
                                                   &gen_p_distribution,
                                                   &gen_p_zipf_s,
                                                   &gen_p_seed,
                                                   &gen_p_rate,
                                                   &gen_p_start_ts,
                                                   &gen_p_ts_step,
                                                   &gen_p_batch,
                                                   &gen_p_key_prefix,
                                                   NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

/* Rejection-inversion Zipf sampler (W. Hörmann, G. Derflinger, "Rejection-
 * inversion to generate variates from monotone discrete distributions",
 * 1996), in the formulation of Apache Commons' RejectionInversionZipfSampler:
 * O(1) memory and time for any number of elements, exact for every s > 0. */
typedef struct gen_zipf {
    double s;        /* exponent, > 0 */
    double n;        /* number of elements */
    double h_x1;     /* H(1.5) - 1 */
    double h_n;      /* H(n + 0.5) */
    double shortcut; /* 2 - H^-1(H(2.5) - h(2)) */
} gen_zipf;

typedef struct gen {
    uint64_t count; /* 0 = unbounded */
    uint64_t keys;
    int zipf;
    gen_zipf z;
    uint64_t seed_mix;
    uint64_t rate; /* 0 = unpaced */
    int64_t start_ts;
    int64_t ts_step;
    uint32_t batch;
    uint32_t sub;
    uint32_t par;
    uint64_t next; /* next global sequence number of this subtask */
    int paced;     /* t0_ms and j0 are set */
    int64_t t0_ms; /* processing time of the first paced poll */
    uint64_t j0;   /* local index (next - sub) / par at t0_ms */
    char *key;     /* key_prefix followed by room for 20 digits */
    size_t prefix_len;
    weir_mp_writer w;
} gen;

/* ------------------------------------------------------------------------ */
/* Randomness                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t gen_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Draw i of the random stream `stream` as a uniform 64-bit integer. */
static uint64_t gen_draw64(uint64_t stream, uint32_t i)
{
    return gen_mix(stream + ((uint64_t)i + 1) * GEN_GOLDEN);
}

/* Draw i of the stream as a uniform double in [0, 1). */
static double gen_draw01(uint64_t stream, uint32_t i)
{
    return (double)(gen_draw64(stream, i) >> 11) * 0x1.0p-53;
}

static double gen_helper1(double x)
{
    /* log1p(x) / x, with its series near 0 */
    if (fabs(x) > 1e-8)
        return log1p(x) / x;
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

static double gen_helper2(double x)
{
    /* expm1(x) / x, with its series near 0 */
    if (fabs(x) > 1e-8)
        return expm1(x) / x;
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

/* H(x) = integral of h: (x^(1-s) - 1) / (1 - s), or log(x) for s = 1. */
static double gen_zipf_hint(const gen_zipf *z, double x)
{
    double lx = log(x);
    return gen_helper2((1.0 - z->s) * lx) * lx;
}

/* h(x) = x^-s */
static double gen_zipf_h(const gen_zipf *z, double x)
{
    return exp(-z->s * log(x));
}

static double gen_zipf_hinv(const gen_zipf *z, double x)
{
    double t = x * (1.0 - z->s);
    if (t < -1.0)
        t = -1.0; /* rounding can push t just below -1 */
    return exp(gen_helper1(t) * x);
}

static void gen_zipf_init(gen_zipf *z, double s, uint64_t n)
{
    z->s = s;
    z->n = (double)n;
    z->h_x1 = gen_zipf_hint(z, 1.5) - 1.0;
    z->h_n = gen_zipf_hint(z, z->n + 0.5);
    z->shortcut =
        2.0 - gen_zipf_hinv(z, gen_zipf_hint(z, 2.5) - gen_zipf_h(z, 2.0));
}

/* A Zipf variate in [0, n): rank - 1. */
static uint64_t gen_zipf_sample(const gen_zipf *z, uint64_t stream)
{
    double k = 1.0;
    for (uint32_t i = 0; i < GEN_ZIPF_MAX_DRAWS; i++) {
        double u = z->h_n + gen_draw01(stream, i) * (z->h_x1 - z->h_n);
        double x = gen_zipf_hinv(z, u);
        k = floor(x + 0.5);
        if (k < 1.0)
            k = 1.0;
        else if (k > z->n)
            k = z->n;
        if (k - x <= z->shortcut ||
            u >= gen_zipf_hint(z, k + 0.5) - gen_zipf_h(z, k))
            break;
    }
    return (uint64_t)k - 1;
}

/* The key index of record n: a function of (seed, n) only. */
static uint64_t gen_key_index(const gen *g, uint64_t n)
{
    uint64_t stream = gen_mix(g->seed_mix ^ n);
    if (g->zipf)
        return gen_zipf_sample(&g->z, stream);
    return (uint64_t)(((unsigned __int128)gen_draw64(stream, 0) * g->keys) >>
                      64);
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

static int64_t gen_mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Writes the decimal digits of v at p (no NUL) and returns their count. */
static size_t gen_utoa(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* Event time of record n; fails when it leaves int64 or hits WEIR_TS_NONE. */
static int gen_ts(const gen *g, uint64_t n, int64_t *ts)
{
    int64_t off;
    if (n > (uint64_t)INT64_MAX ||
        __builtin_mul_overflow((int64_t)n, g->ts_step, &off) ||
        __builtin_add_overflow(g->start_ts, off, ts) || *ts == WEIR_TS_NONE)
        return WEIR_EINVAL;
    return WEIR_OK;
}

static int gen_emit_one(weir_ctx *ctx, gen *g, uint64_t n)
{
    int64_t ts;
    if (gen_ts(g, n, &ts) < 0) {
        weir_set_error(ctx,
                       "gen: event time of record %llu (start_ts + seq * "
                       "ts_step) overflows int64",
                       (unsigned long long)n);
        return WEIR_EINVAL;
    }
    size_t klen =
        g->prefix_len + gen_utoa(g->key + g->prefix_len, gen_key_index(g, n));

    msgpack_packer *pk = &g->w.pk;
    weir_mp_writer_reset(&g->w);
    if (msgpack_pack_map(pk, 3) != 0 || weir_mp_pack_str(pk, "seq") != 0 ||
        msgpack_pack_uint64(pk, n) != 0 || weir_mp_pack_str(pk, "key") != 0 ||
        weir_mp_pack_strn(pk, g->key, klen) != 0 ||
        weir_mp_pack_str(pk, "created_ns") != 0 ||
        msgpack_pack_int64(pk, gen_mono_ns()) != 0) {
        weir_set_error(ctx, "gen: out of memory packing record %llu",
                       (unsigned long long)n);
        return WEIR_ENOMEM;
    }
    int rc = weir_emit(ctx, 0, g->key, klen, ts, g->w.buf.data, g->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "gen: emit of record %llu failed: %s",
                       (unsigned long long)n, weir_strerror(rc));
    return rc;
}

/* How many records this subtask may emit now to stay at rate/P records per
 * second since its first paced poll. */
static uint64_t gen_rate_budget(weir_ctx *ctx, gen *g)
{
    int64_t now = weir_now(ctx);
    uint64_t j = (g->next - g->sub) / g->par;
    if (!g->paced) {
        g->paced = 1;
        g->t0_ms = now;
        g->j0 = j;
    }
    double elapsed = now > g->t0_ms ? (double)(now - g->t0_ms) : 0.0;
    double allowed = elapsed * (double)g->rate / (1000.0 * (double)g->par);
    if (allowed >= 0x1.0p63)
        return UINT64_MAX;
    uint64_t done = j - g->j0;
    uint64_t a = (uint64_t)allowed;
    return a > done ? a - done : 0;
}

static int gen_done(const gen *g)
{
    return g->count != 0 && g->next >= g->count;
}

static int gen_poll(weir_ctx *ctx, void *self)
{
    gen *g = self;
    if (gen_done(g))
        return WEIR_EOF;
    uint64_t budget = g->batch;
    if (g->rate) {
        uint64_t b = gen_rate_budget(ctx, g);
        if (b == 0)
            return WEIR_EAGAIN;
        if (b < budget)
            budget = b;
    }
    for (uint64_t i = 0; i < budget && !gen_done(g); i++) {
        int rc = gen_emit_one(ctx, g, g->next);
        if (rc < 0)
            return rc;
        g->next += g->par;
    }
    /* Records emitted in this call are followed by WEIR_EOF on the next. */
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Snapshot                                                                  */
/* ------------------------------------------------------------------------ */

static void gen_put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t gen_get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int gen_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    gen *g = self;
    unsigned char buf[GEN_SNAPSHOT_LEN];
    gen_put_le(buf, g->next, 8);
    gen_put_le(buf + 8, g->par, 4);
    gen_put_le(buf + 12, g->sub, 4);
    int rc = weir_snapshot_write(ctx, buf, sizeof buf);
    if (rc < 0)
        weir_set_error(ctx,
                       "gen: writing the snapshot of checkpoint %llu "
                       "failed: %s",
                       (unsigned long long)checkpoint_id, weir_strerror(rc));
    return rc;
}

static int gen_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                       uint32_t version, const void *data, size_t len)
{
    gen *g = self;
    if (version != GEN_SNAPSHOT_VERSION) {
        weir_set_error(ctx,
                       "gen: snapshot of checkpoint %llu has version %u; "
                       "this plugin reads version %u",
                       (unsigned long long)checkpoint_id, version,
                       GEN_SNAPSHOT_VERSION);
        return WEIR_EINVAL;
    }
    if (!data || len != GEN_SNAPSHOT_LEN) {
        weir_set_error(ctx,
                       "gen: snapshot of checkpoint %llu is %zu bytes; "
                       "version 1 is %d bytes",
                       (unsigned long long)checkpoint_id, len,
                       GEN_SNAPSHOT_LEN);
        return WEIR_EINVAL;
    }
    uint64_t next = gen_get_le(data, 8);
    uint32_t par = (uint32_t)gen_get_le((const unsigned char *)data + 8, 4);
    uint32_t sub = (uint32_t)gen_get_le((const unsigned char *)data + 12, 4);
    if (par != g->par || sub != g->sub) {
        weir_set_error(ctx,
                       "gen: snapshot of checkpoint %llu was taken by subtask "
                       "%u of %u, not %u of %u; gen cannot be rescaled",
                       (unsigned long long)checkpoint_id, sub, par, g->sub,
                       g->par);
        return WEIR_EINVAL;
    }
    if (next % g->par != g->sub) {
        weir_set_error(ctx,
                       "gen: snapshot of checkpoint %llu is damaged: "
                       "sequence %llu does not belong to subtask %u of %u",
                       (unsigned long long)checkpoint_id,
                       (unsigned long long)next, g->sub, g->par);
        return WEIR_EINVAL;
    }
    g->next = next;
    g->paced = 0;
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static int gen_param_fail(weir_ctx *ctx, const char *name, int rc)
{
    weir_set_error(ctx, "gen: parameter %s: %s", name, weir_strerror(rc));
    return rc < 0 ? rc : WEIR_EINVAL;
}

static int gen_get_int(weir_ctx *ctx, const char *name, int64_t min,
                       int64_t max, int64_t *out)
{
    int rc = weir_param_int(ctx, name, out);
    if (rc < 0)
        return gen_param_fail(ctx, name, rc);
    if (*out < min || *out > max) {
        weir_set_error(ctx,
                       "gen: parameter %s: %lld is out of range [%lld, "
                       "%lld]",
                       name, (long long)*out, (long long)min, (long long)max);
        return WEIR_EINVAL;
    }
    return WEIR_OK;
}

/* Reads and checks every parameter into g, including the combinations the
 * parameter table cannot express. */
static int gen_configure(weir_ctx *ctx, gen *g)
{
    int64_t count, keys, seed, rate, batch;
    int rc;
    if ((rc = gen_get_int(ctx, "count", 0, INT64_MAX, &count)) < 0 ||
        (rc = gen_get_int(ctx, "keys", 1, (int64_t)1e12, &keys)) < 0 ||
        (rc = gen_get_int(ctx, "seed", INT64_MIN, INT64_MAX, &seed)) < 0 ||
        (rc = gen_get_int(ctx, "rate", 0, INT64_MAX, &rate)) < 0 ||
        (rc = gen_get_int(ctx, "batch", 1, GEN_MAX_BATCH, &batch)) < 0 ||
        (rc = gen_get_int(ctx, "start_ts", INT64_MIN, INT64_MAX,
                          &g->start_ts)) < 0 ||
        (rc = gen_get_int(ctx, "ts_step", 0, INT64_MAX, &g->ts_step)) < 0)
        return rc;
    g->count = (uint64_t)count;
    g->keys = (uint64_t)keys;
    g->seed_mix = gen_mix((uint64_t)seed);
    g->rate = (uint64_t)rate;
    g->batch = (uint32_t)batch;

    const char *dist;
    size_t dist_len;
    if ((rc = weir_param_string(ctx, "distribution", &dist, &dist_len)) < 0)
        return gen_param_fail(ctx, "distribution", rc);
    if (dist_len == 4 && memcmp(dist, "zipf", 4) == 0) {
        double s;
        if ((rc = weir_param_double(ctx, "zipf_s", &s)) < 0)
            return gen_param_fail(ctx, "zipf_s", rc);
        if (!(s > 0.0 && s <= 10.0)) {
            weir_set_error(ctx,
                           "gen: zipf_s must be > 0 and <= 10 with "
                           "distribution zipf (got %g); for s = 0 use "
                           "distribution uniform",
                           s);
            return WEIR_EINVAL;
        }
        g->zipf = 1;
        gen_zipf_init(&g->z, s, g->keys);
    } else if (!(dist_len == 7 && memcmp(dist, "uniform", 7) == 0)) {
        weir_set_error(ctx, "gen: distribution '%.*s' is not uniform or zipf",
                       (int)dist_len, dist);
        return WEIR_EINVAL;
    }

    if (g->start_ts == WEIR_TS_NONE) {
        weir_set_error(ctx,
                       "gen: start_ts %lld is reserved for 'no event "
                       "time'",
                       (long long)g->start_ts);
        return WEIR_EINVAL;
    }
    int64_t last;
    if (g->count && gen_ts(g, g->count - 1, &last) < 0) {
        weir_set_error(ctx, "gen: start_ts + (count - 1) * ts_step overflows "
                            "the int64 event time; lower count or ts_step");
        return WEIR_EINVAL;
    }

    const char *prefix;
    if ((rc = weir_param_string(ctx, "key_prefix", &prefix, &g->prefix_len)) <
        0)
        return gen_param_fail(ctx, "key_prefix", rc);
    if (g->prefix_len > GEN_MAX_PREFIX) {
        weir_set_error(ctx, "gen: key_prefix is %zu bytes; at most %d",
                       g->prefix_len, GEN_MAX_PREFIX);
        return WEIR_EINVAL;
    }
    g->key = malloc(g->prefix_len + 20);
    if (!g->key) {
        weir_set_error(ctx, "gen: out of memory");
        return WEIR_ENOMEM;
    }
    if (g->prefix_len)
        memcpy(g->key, prefix, g->prefix_len);
    return WEIR_OK;
}

static void gen_free(gen *g)
{
    weir_mp_writer_destroy(&g->w);
    free(g->key);
    free(g);
}

static int gen_open(weir_ctx *ctx, void **self)
{
    gen *g = calloc(1, sizeof *g);
    if (!g) {
        weir_set_error(ctx, "gen: out of memory");
        return WEIR_ENOMEM;
    }
    weir_mp_writer_init(&g->w);
    g->sub = weir_subtask_index(ctx);
    g->par = weir_parallelism(ctx);
    if (g->par == 0 || g->sub >= g->par) {
        weir_set_error(ctx,
                       "gen: subtask index %u is not below parallelism "
                       "%u",
                       g->sub, g->par);
        gen_free(g);
        return WEIR_EINVAL;
    }
    int rc = gen_configure(ctx, g);
    if (rc < 0) {
        gen_free(g);
        return rc;
    }
    g->next = g->sub;
    *self = g;
    return WEIR_OK;
}

static void gen_close(weir_ctx *ctx, void *self)
{
    if (self)
        gen_free(self);
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static const weir_operator gen_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "gen",
    .version = "1.0.0",
    .description = "deterministic generator of keyed records (uniform or Zipf "
                   "keys, optional rate) for tests and benchmarks",
    .params = gen_params,
    .snapshot_version = GEN_SNAPSHOT_VERSION,
    .open = gen_open,
    .poll = gen_poll,
    .snapshot = gen_snapshot,
    .restore = gen_restore,
    .close = gen_close,
};

static const weir_operator *const gen_ops[] = {&gen_op, NULL};

static const weir_plugin gen_plugin = {
    WEIR_PLUGIN_INIT,     .name = "gen",
    .version = "1.0.0",   .description = "deterministic record generator",
    .operators = gen_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &gen_plugin;
}
