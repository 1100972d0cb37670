/*
 * count.c - operator "count" (keyed): the running number of records per key.
 *
 * For every input record the count of its key goes up by one and, with
 * emit=every, the operator emits (key, ts of the input, msgpack
 * {"key": <key bytes as a string>, "count": <new count>}). When the input
 * value is a map with an integer field carry_field (default "created_ns",
 * which gen writes), the output carries it too, so a sink can measure
 * end-to-end latency through the count. With emit=none it only counts
 * (useful to measure state updates without output).
 *
 * State: one keyed value state "count" holding the count as 8 bytes
 * big-endian, so counts live in the host's RocksDB state, survive restarts
 * through checkpoints and can be bounded with a TTL (`ttl`, `ttl_update`,
 * `ttl_time`): a key not updated for `ttl` starts again from 1.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

static const char *const count_emit_choices[] = {"every", "none", NULL};
static const weir_param_def count_p_emit = {
    .size = sizeof(weir_param_def),
    .name = "emit",
    .type = WEIR_PARAM_ENUM,
    .default_value = "every",
    .choices = count_emit_choices,
    .description = "every: emit {key, count} for each input record; none: "
                   "count only"};
static const weir_param_def count_p_carry = {
    .size = sizeof(weir_param_def),
    .name = "carry_field",
    .type = WEIR_PARAM_STRING,
    .default_value = "created_ns",
    .description = "integer input field copied to the output when present "
                   "(for latency); \"\" = none"};
static const weir_param_def count_p_ttl = {
    .size = sizeof(weir_param_def),
    .name = "ttl",
    .type = WEIR_PARAM_DURATION,
    .flags = WEIR_PARAM_HAS_MIN,
    .default_value = "0",
    .description = "forget a key's count after this long without an update "
                   "(0 = keep counts for ever)"};
static const char *const count_update_choices[] = {"create_and_write",
                                                   "read_and_write", NULL};
static const weir_param_def count_p_ttl_update = {
    .size = sizeof(weir_param_def),
    .name = "ttl_update",
    .type = WEIR_PARAM_ENUM,
    .default_value = "create_and_write",
    .choices = count_update_choices,
    .description = "which accesses refresh the ttl"};
static const char *const count_time_choices[] = {"processing", "event", NULL};
static const weir_param_def count_p_ttl_time = {
    .size = sizeof(weir_param_def),
    .name = "ttl_time",
    .type = WEIR_PARAM_ENUM,
    .default_value = "processing",
    .choices = count_time_choices,
    .description = "processing: wall-clock ttl; event: the ttl runs on event "
                   "time and expires as the watermark passes"};
static const weir_param_def *const count_params[] = {
    &count_p_emit,       &count_p_carry,    &count_p_ttl,
    &count_p_ttl_update, &count_p_ttl_time, NULL};

typedef struct count {
    weir_state *counts; /* value state: the count, 8 bytes big-endian */
    int emit_every;
    char *carry; /* carry_field, carry_len bytes; NULL when "" */
    size_t carry_len;
    weir_mp_writer w;
} count;

/* ------------------------------------------------------------------------ */
/* The count of the current key, in keyed value state                        */
/* ------------------------------------------------------------------------ */

/* The current key's count: WEIR_OK, or WEIR_ENOTFOUND when it has none
 * (or it expired). */
static int count_load(weir_ctx *ctx, count *c, int64_t *n)
{
    const void *v;
    size_t len;
    int rc = weir_value_get(ctx, c->counts, &v, &len);
    if (rc < 0)
        return rc;
    if (len != 8)
        return weir_set_error(ctx, "count: stored count has %zu bytes, not 8",
                              len);
    const unsigned char *p = v;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    *n = (int64_t)u;
    return WEIR_OK;
}

static int count_store(weir_ctx *ctx, count *c, int64_t n)
{
    unsigned char buf[8];
    uint64_t u = (uint64_t)n;
    for (int i = 7; i >= 0; i--, u >>= 8)
        buf[i] = (unsigned char)u;
    return weir_value_put(ctx, c->counts, buf, sizeof buf);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int count_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    count *c = self;
    const void *key = rec->key_len ? rec->key : ""; /* key may be NULL */
    int64_t n = 0;
    int rc = count_load(ctx, c, &n);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rc;
    n++;
    if ((rc = count_store(ctx, c, n)) < 0)
        return rc;
    if (!c->emit_every)
        return WEIR_OK;

    int64_t carried = 0;
    int carry =
        c->carry && mpscan_find_int(rec->value, rec->value_len, c->carry,
                                    c->carry_len, &carried) == 0;
    msgpack_packer *pk = &c->w.pk;
    weir_mp_writer_reset(&c->w);
    if (msgpack_pack_map(pk, carry ? 3 : 2) != 0 ||
        weir_mp_pack_str(pk, "key") != 0 ||
        weir_mp_pack_strn(pk, key, rec->key_len) != 0 ||
        weir_mp_pack_str(pk, "count") != 0 || msgpack_pack_int64(pk, n) != 0 ||
        (carry && (weir_mp_pack_strn(pk, c->carry, c->carry_len) != 0 ||
                   msgpack_pack_int64(pk, carried) != 0))) {
        weir_set_error(ctx, "count: out of memory packing a record");
        return WEIR_ENOMEM;
    }
    rc = weir_emit(ctx, 0, key, rec->key_len, rec->ts, c->w.buf.data,
                   c->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "count: emit failed: %s", weir_strerror(rc));
    return rc;
}

static void count_free(count *c)
{
    weir_mp_writer_destroy(&c->w);
    free(c->carry);
    free(c);
}

/* Declares the count state with the TTL the parameters ask for. */
static int count_declare(weir_ctx *ctx, count *c)
{
    int64_t ttl = 0;
    const char *upd, *dom;
    size_t upd_len, dom_len;
    if (weir_param_int(ctx, "ttl", &ttl) < 0 ||
        weir_param_string(ctx, "ttl_update", &upd, &upd_len) < 0 ||
        weir_param_string(ctx, "ttl_time", &dom, &dom_len) < 0)
        return weir_set_error(ctx, "count: cannot read the ttl parameters");
    weir_state_desc d = {
        .size = sizeof d,
        .kind = WEIR_STATE_VALUE,
        .name = "count",
        /* No ttl means counts are kept for ever: an explicit choice. */
        .ttl_ms = ttl > 0 ? ttl : WEIR_TTL_NONE,
        .ttl_update = upd_len == 14 && memcmp(upd, "read_and_write", 14) == 0
                          ? WEIR_TTL_ON_READ_AND_WRITE
                          : WEIR_TTL_ON_CREATE_AND_WRITE,
        .ttl_domain = dom_len == 5 && memcmp(dom, "event", 5) == 0
                          ? WEIR_TIME_EVENT
                          : WEIR_TIME_PROCESSING,
    };
    int rc = weir_state_declare(ctx, &d, &c->counts);
    if (rc < 0)
        weir_set_error(ctx, "count: declaring the count state: %s",
                       weir_strerror(rc));
    return rc;
}

static int count_open(weir_ctx *ctx, void **self)
{
    const char *emit, *carry;
    size_t emit_len, carry_len;
    int rc = weir_param_string(ctx, "emit", &emit, &emit_len);
    if (rc == WEIR_OK)
        rc = weir_param_string(ctx, "carry_field", &carry, &carry_len);
    if (rc < 0) {
        weir_set_error(ctx, "count: parameters emit and carry_field: %s",
                       weir_strerror(rc));
        return rc;
    }
    if ((carry_len == 3 && memcmp(carry, "key", 3) == 0) ||
        (carry_len == 5 && memcmp(carry, "count", 5) == 0)) {
        weir_set_error(ctx,
                       "count: carry_field '%.*s' would clash with the "
                       "output's own field of that name",
                       (int)carry_len, carry);
        return WEIR_EINVAL;
    }
    int every = emit_len == 5 && memcmp(emit, "every", 5) == 0;
    if (!every && !(emit_len == 4 && memcmp(emit, "none", 4) == 0)) {
        weir_set_error(ctx,
                       "count: parameter emit: '%.*s' is not every or "
                       "none",
                       (int)emit_len, emit);
        return WEIR_EINVAL;
    }
    count *c = calloc(1, sizeof *c);
    if (!c) {
        weir_set_error(ctx, "count: out of memory");
        return WEIR_ENOMEM;
    }
    weir_mp_writer_init(&c->w);
    if ((rc = count_declare(ctx, c)) < 0) {
        count_free(c);
        return rc;
    }
    c->emit_every = every;
    if (carry_len) {
        c->carry = malloc(carry_len);
        if (!c->carry) {
            count_free(c);
            weir_set_error(ctx, "count: out of memory");
            return WEIR_ENOMEM;
        }
        memcpy(c->carry, carry, carry_len);
        c->carry_len = carry_len;
    }
    *self = c;
    return WEIR_OK;
}

static void count_close(weir_ctx *ctx, void *self)
{
    if (self)
        count_free(self);
}

static const weir_operator count_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "count",
    .version = "1.0.0",
    .description = "running count of records per key; emits {key, count} "
                   "for each record",
    .params = count_params,
    .open = count_open,
    .process = count_process,
    .close = count_close,
};

static const weir_operator *const count_ops[] = {&count_op, NULL};

static const weir_plugin count_plugin = {
    WEIR_PLUGIN_INIT,       .name = "count",
    .version = "1.0.0",     .description = "count per key",
    .operators = count_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &count_plugin;
}
