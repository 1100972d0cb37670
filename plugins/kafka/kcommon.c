/*
 * kcommon.c - configuration and value conversion shared by the Kafka
 * operators (contract in kcommon.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "kcommon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kc_conf_set(weir_ctx *ctx, const char *op, rd_kafka_conf_t *conf,
                const char *key, const char *value)
{
    char err[512];
    rd_kafka_conf_res_t r =
        rd_kafka_conf_set(conf, key, value, err, sizeof err);
    if (r == RD_KAFKA_CONF_OK)
        return WEIR_OK;
    weir_set_error(ctx, "%s: rdkafka.%s: %s", op, key, err);
    return WEIR_EINVAL;
}

int kc_param_str(weir_ctx *ctx, const char *op, const char *name, int optional,
                 char **out)
{
    const char *p;
    size_t n;
    *out = NULL;
    int rc = weir_param_string(ctx, name, &p, &n);
    if (rc == WEIR_ENOTFOUND && optional)
        return WEIR_OK;
    if (rc < 0) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       weir_strerror(rc));
        return rc;
    }
    if (n == 0 || memchr(p, '\0', n)) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       n == 0 ? "must not be empty"
                              : "must not contain a NUL byte");
        return WEIR_EINVAL;
    }
    if (!(*out = malloc(n + 1))) {
        weir_set_error(ctx, "%s: out of memory", op);
        return WEIR_ENOMEM;
    }
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return WEIR_OK;
}

/* The text of a scalar of the rdkafka map, or -1 for another type. */
static int kc_scalar_text(const msgpack_object *o, char *buf, size_t size)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        if (o->via.str.size >= size ||
            memchr(o->via.str.ptr, 0, o->via.str.size))
            return -1;
        memcpy(buf, o->via.str.ptr, o->via.str.size);
        buf[o->via.str.size] = '\0';
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        snprintf(buf, size, "%s", o->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, size, "%llu", (unsigned long long)o->via.u64);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, size, "%lld", (long long)o->via.i64);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        snprintf(buf, size, "%.17g", o->via.f64);
        return 0;
    default: return -1;
    }
}

static int kc_is_forced(const char *key, const char *const *forced)
{
    if (strcmp(key, "bootstrap.servers") == 0)
        return 1;
    for (; forced && forced[0]; forced += 2)
        if (strcmp(key, forced[0]) == 0)
            return 1;
    return 0;
}

/* Applies the user's `rdkafka` map. */
static int kc_conf_user(weir_ctx *ctx, const char *op, rd_kafka_conf_t *conf,
                        const char *const *forced)
{
    const void *mp;
    size_t len;
    int rc = weir_param_msgpack(ctx, "rdkafka", &mp, &len);
    if (rc == WEIR_ENOTFOUND)
        return WEIR_OK;
    if (rc < 0) {
        weir_set_error(ctx, "%s: parameter rdkafka: %s", op, weir_strerror(rc));
        return rc;
    }
    weir_mp_reader r;
    weir_mp_reader_init(&r);
    const msgpack_object *m = weir_mp_read(&r, mp, len);
    rc = WEIR_OK;
    if (!m ||
        (m->type != MSGPACK_OBJECT_MAP && m->type != MSGPACK_OBJECT_NIL)) {
        weir_set_error(ctx,
                       "%s: parameter rdkafka: expected a map of "
                       "librdkafka properties to values",
                       op);
        rc = WEIR_EINVAL;
        goto out;
    }
    for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size;
         i++) {
        char key[256], val[4096];
        const msgpack_object_kv *kv = &m->via.map.ptr[i];
        if (kc_scalar_text(&kv->key, key, sizeof key) < 0 ||
            kv->key.type != MSGPACK_OBJECT_STR) {
            weir_set_error(ctx,
                           "%s: parameter rdkafka: keys must be "
                           "librdkafka property names",
                           op);
            rc = WEIR_EINVAL;
            goto out;
        }
        if (kc_is_forced(key, forced)) {
            weir_set_error(ctx,
                           "%s: rdkafka.%s: set by the connector (use its own "
                           "parameters: brokers, group_id, commit, ...)",
                           op, key);
            rc = WEIR_EINVAL;
            goto out;
        }
        if (kc_scalar_text(&kv->val, val, sizeof val) < 0) {
            weir_set_error(ctx,
                           "%s: rdkafka.%s: expected a string, number or "
                           "boolean",
                           op, key);
            rc = WEIR_EINVAL;
            goto out;
        }
        if ((rc = kc_conf_set(ctx, op, conf, key, val)) < 0)
            goto out;
    }
out:
    weir_mp_reader_destroy(&r);
    return rc;
}

int kc_conf_new(weir_ctx *ctx, const char *op, const char *const *defaults,
                const char *const *forced, rd_kafka_conf_t **out)
{
    char *brokers = NULL;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = kc_param_str(ctx, op, "brokers", 0, &brokers);
    if (rc < 0)
        goto fail;
    if ((rc = kc_conf_set(ctx, op, conf, "bootstrap.servers", brokers)) < 0)
        goto fail;
    for (; defaults && defaults[0]; defaults += 2)
        if ((rc = kc_conf_set(ctx, op, conf, defaults[0], defaults[1])) < 0)
            goto fail;
    if ((rc = kc_conf_user(ctx, op, conf, forced)) < 0)
        goto fail;
    for (; forced && forced[0]; forced += 2)
        if (forced[1] &&
            (rc = kc_conf_set(ctx, op, conf, forced[0], forced[1])) < 0)
            goto fail;
    free(brokers);
    *out = conf;
    return WEIR_OK;
fail:
    free(brokers);
    rd_kafka_conf_destroy(conf);
    return rc;
}

static json_t *kc_base64(const void *data, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = data;
    size_t out = (n + 2) / 3 * 4;
    char *b = malloc(out + 1);
    if (!b)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        b[j++] = tab[v >> 18 & 63];
        b[j++] = tab[v >> 12 & 63];
        b[j++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        b[j++] = i + 2 < n ? tab[v & 63] : '=';
    }
    json_t *r = json_stringn_nocheck(b, j);
    free(b);
    return r;
}

/* A string for str/bin bytes: itself when valid UTF-8, else base64. */
static json_t *kc_bytes(const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    return s ? s : kc_base64(p, n);
}

static json_t *kc_mp_map_to_json(const msgpack_object *o, int depth)
{
    json_t *obj = json_object();
    for (uint32_t i = 0; obj && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        json_t *val = kc_mp_to_json(&kv->val, depth + 1);
        char *key = NULL;
        if (kv->key.type == MSGPACK_OBJECT_STR) {
            key = strndup(kv->key.via.str.ptr, kv->key.via.str.size);
        } else {
            json_t *k = kc_mp_to_json(&kv->key, depth + 1);
            key = k ? json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(k);
        }
        if (!val || !key || json_object_set_new(obj, key, val) < 0) {
            if (!key)
                json_decref(val);
            json_decref(obj);
            obj = NULL;
        }
        free(key);
    }
    return obj;
}

json_t *kc_mp_to_json(const msgpack_object *o, int depth)
{
    if (depth > KC_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return json_real((double)o->via.u64);
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR: return kc_bytes(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN: return kc_bytes(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT: return kc_base64(o->via.ext.ptr, o->via.ext.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            json_t *x = kc_mp_to_json(&o->via.array.ptr[i], depth + 1);
            if (!x || json_array_append_new(a, x) < 0) {
                json_decref(a);
                a = NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: return kc_mp_map_to_json(o, depth);
    }
    return NULL;
}

int kc_field_text(const msgpack_object *o, char *buf, size_t size,
                  const char **p, size_t *n)
{
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        *p = o->via.str.ptr;
        *n = o->via.str.size;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, size, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, size, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, size, "%.*g", prec, o->via.f64);
            if (strtod(buf, NULL) == o->via.f64)
                break;
        }
        break;
    default: return -1;
    }
    *p = buf;
    *n = strlen(buf);
    return 0;
}
