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
 * State: for now an in-memory hash table in the instance (open addressing,
 * linear probing, FNV-1a, keys copied). All access goes through
 * count_load() and count_store(), which have the shape of weir_value_get()
 * and weir_value_put() on the current key: moving the counts into the
 * host's keyed state means declaring a value state in open() and replacing
 * the bodies of those two functions. Counts are not part of snapshots yet.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define COUNT_INITIAL_SLOTS 1024

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
static const weir_param_def *const count_params[] = {&count_p_emit,
                                                     &count_p_carry, NULL};

/* One slot of the table; key == NULL marks an empty slot. */
typedef struct count_slot {
    uint64_t hash;
    char *key;
    size_t len;
    int64_t n;
} count_slot;

typedef struct count {
    count_slot *slots;
    size_t cap; /* a power of two */
    size_t used;
    int emit_every;
    char *carry; /* carry_field, carry_len bytes; NULL when "" */
    size_t carry_len;
    weir_mp_writer w;
} count;

/* ------------------------------------------------------------------------ */
/* The table                                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t count_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The slot holding `key`, or the empty slot where it would go. */
static count_slot *count_find(const count *c, const void *key, size_t len,
                              uint64_t h)
{
    size_t mask = c->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        count_slot *s = &c->slots[i];
        if (!s->key || (s->hash == h && s->len == len &&
                        (len == 0 || memcmp(s->key, key, len) == 0)))
            return s;
    }
}

static int count_grow(count *c)
{
    size_t cap = c->cap ? c->cap * 2 : COUNT_INITIAL_SLOTS;
    count_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return WEIR_ENOMEM;
    count old = *c;
    c->slots = slots;
    c->cap = cap;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slots[i].key)
            *count_find(c, old.slots[i].key, old.slots[i].len,
                        old.slots[i].hash) = old.slots[i];
    }
    free(old.slots);
    return WEIR_OK;
}

/* The count of `key`: WEIR_OK, or WEIR_ENOTFOUND when the key has none. */
static int count_load(weir_ctx *ctx, count *c, const void *key, size_t len,
                      int64_t *n)
{
    count_slot *s = count_find(c, key, len, count_hash(key, len));
    if (!s->key)
        return WEIR_ENOTFOUND;
    *n = s->n;
    return WEIR_OK;
}

/* Sets the count of `key`; copies the key on first use. */
static int count_store(weir_ctx *ctx, count *c, const void *key, size_t len,
                       int64_t n)
{
    uint64_t h = count_hash(key, len);
    if ((c->used + 1) * 10 > c->cap * 7 && count_grow(c) < 0)
        goto oom;
    count_slot *s = count_find(c, key, len, h);
    if (!s->key) {
        s->key = malloc(len ? len : 1);
        if (!s->key)
            goto oom;
        if (len)
            memcpy(s->key, key, len);
        s->hash = h;
        s->len = len;
        c->used++;
    }
    s->n = n;
    return WEIR_OK;
oom:
    weir_set_error(ctx, "count: out of memory with %zu keys", c->used);
    return WEIR_ENOMEM;
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
    int rc = count_load(ctx, c, key, rec->key_len, &n);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rc;
    n++;
    if ((rc = count_store(ctx, c, key, rec->key_len, n)) < 0)
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
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].key);
    free(c->slots);
    weir_mp_writer_destroy(&c->w);
    free(c->carry);
    free(c);
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
    if (!c || count_grow(c) < 0) {
        free(c);
        weir_set_error(ctx, "count: out of memory");
        return WEIR_ENOMEM;
    }
    weir_mp_writer_init(&c->w);
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
