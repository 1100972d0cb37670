#include "statetool/mpjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#include "weir/msgpack.h"

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *mpj_base64_encode(const void *p, size_t n)
{
    const unsigned char *s = p;
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = i + 1 < n ? b64_chars[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? b64_chars[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64_chars, c) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

int mpj_base64_decode(const char *s, size_t len, char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (len % 4)
        return WEIR_EINVAL;
    char *buf = malloc(len / 4 * 3 + 1);
    size_t k = 0;
    if (!buf)
        return WEIR_ENOMEM;
    for (size_t i = 0; i < len; i += 4) {
        int last = i + 4 == len;
        int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
        if (pad == 1 && s[i + 2] == '=')
            pad = -1; /* "x=y=" */
        int v[4] = {b64_val(s[i]), b64_val(s[i + 1]),
                    pad >= 2 ? 0 : b64_val(s[i + 2]),
                    pad >= 1 ? 0 : b64_val(s[i + 3])};
        if (pad < 0 || v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0) {
            free(buf);
            return WEIR_EINVAL;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                     (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[k++] = (char)(x >> 16);
        if (pad < 2)
            buf[k++] = (char)(x >> 8);
        if (pad < 1)
            buf[k++] = (char)x;
    }
    buf[k] = 0;
    *out = buf;
    *n = k;
    return 0;
}

json_t *mpj_base64_marker(const void *p, size_t n)
{
    char *b = mpj_base64_encode(p, n);
    json_t *o = b ? json_pack("{s:s}", "$base64", b) : NULL;
    free(b);
    return o;
}

json_t *mpj_bytes(const void *p, size_t n)
{
    json_t *s = json_stringn(n ? p : "", n);
    return s ? s : mpj_base64_marker(p, n);
}

/* ------------------------------------------------------------------------ */
/* msgpack -> JSON                                                           */
/* ------------------------------------------------------------------------ */

static json_t *mp_to_json(const msgpack_object *o, int depth);

static json_t *mp_float(double d)
{
    if (isnan(d))
        return json_pack("{s:s}", "$float", "nan");
    if (isinf(d))
        return json_pack("{s:s}", "$float", d > 0 ? "inf" : "-inf");
    return json_real(d);
}

static json_t *mp_str(const char *p, size_t n)
{
    json_t *s = json_stringn(n ? p : "", n);
    return s ? s : mpj_base64_marker(p, n);
}

static json_t *mp_map(const msgpack_object_map *m, int depth)
{
    json_t *o = json_object();
    for (uint32_t i = 0; o && i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        json_t *v = mp_to_json(&m->ptr[i].val, depth + 1);
        char *text = NULL;
        int rc = -1;
        if (v && k->type == MSGPACK_OBJECT_STR) {
            rc = json_object_setn_new(o, k->via.str.size ? k->via.str.ptr : "",
                                      k->via.str.size, v);
        } else if (v) {
            json_t *kj = mp_to_json(k, depth + 1);
            text = kj ? json_dumps(kj, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            json_decref(kj);
            rc = text ? json_object_set_new(o, text, v) : -1;
            if (!text)
                json_decref(v);
        }
        /* set_new consumed v either way; a str key that is not UTF-8
         * cannot be a member name: the value is then not shown as JSON. */
        free(text);
        if (rc < 0) {
            json_decref(o);
            o = NULL;
        }
    }
    return o;
}

static json_t *mp_to_json(const msgpack_object *o, int depth)
{
    if (depth > MPJ_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            char d[24];
            snprintf(d, sizeof d, "%" PRIu64, o->via.u64);
            return json_pack("{s:s}", "$uint64", d);
        }
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return mp_float(o->via.f64);
    case MSGPACK_OBJECT_STR: return mp_str(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return mpj_base64_marker(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_EXT: {
        char *b = mpj_base64_encode(o->via.ext.ptr, o->via.ext.size);
        json_t *j = b ? json_pack("{s:i,s:s}", "$ext", (int)o->via.ext.type,
                                  "$base64", b)
                      : NULL;
        free(b);
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            if (json_array_append_new(
                    a, mp_to_json(&o->via.array.ptr[i], depth + 1)) < 0) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    case MSGPACK_OBJECT_MAP: return mp_map(&o->via.map, depth);
    default: return NULL;
    }
}

json_t *mpj_from_msgpack(const void *p, size_t n)
{
    weir_mp_reader r;
    weir_mp_reader_init(&r);
    /* weir_mp_read() refuses anything but exactly one object, and values
     * whose containers declare more elements than bytes, so a damaged
     * value never makes the unpacker allocate much more than n. */
    const msgpack_object *o = weir_mp_read(&r, p, n);
    json_t *j = o ? mp_to_json(o, 0) : NULL;
    weir_mp_reader_destroy(&r);
    return j;
}

json_t *mpj_value(const void *p, size_t n)
{
    json_t *j = mpj_from_msgpack(p, n);
    return j ? j : mpj_base64_marker(p, n);
}

/* ------------------------------------------------------------------------ */
/* JSON -> msgpack                                                           */
/* ------------------------------------------------------------------------ */

/* The string member `name` of a marker object, or NULL. */
static const char *marker_str(const json_t *v, const char *name)
{
    json_t *m = json_object_get(v, name);
    return json_is_string(m) ? json_string_value(m) : NULL;
}

static int pack_oom(char **errptr)
{
    err_set(errptr, WEIR_ENOMEM, "out of memory");
    return WEIR_ENOMEM;
}

/* {"$uint64": "<decimal>"} and {"$float": "nan" | "inf" | "-inf"}. */
static int pack_number_marker(msgpack_packer *pk, const char *u64,
                              const char *fl, char **errptr)
{
    if (u64) {
        char *end = NULL;
        errno = 0;
        unsigned long long u = strtoull(u64, &end, 10);
        if (!*u64 || *end || *u64 == '-' || *u64 == '+' || errno)
            return err_set(errptr, WEIR_EINVAL,
                           "{\"$uint64\": \"%.40s\"}: not a decimal number "
                           "below 2^64",
                           u64);
        return msgpack_pack_uint64(pk, u) ? pack_oom(errptr) : 0;
    }
    double d;
    if (strcmp(fl, "nan") == 0)
        d = NAN;
    else if (strcmp(fl, "inf") == 0)
        d = INFINITY;
    else if (strcmp(fl, "-inf") == 0)
        d = -INFINITY;
    else
        return err_set(errptr, WEIR_EINVAL,
                       "{\"$float\": \"%.40s\"}: not nan, inf or -inf", fl);
    return msgpack_pack_double(pk, d) ? pack_oom(errptr) : 0;
}

/* Packs `v` when it is a marker object: returns 0, or a negative code for a
 * malformed one; 1 when it is no marker (an ordinary map). */
static int pack_marker(msgpack_packer *pk, const json_t *v, char **errptr)
{
    size_t n = json_object_size(v);
    const char *b64 = marker_str(v, "$base64");
    json_t *ext = json_object_get(v, "$ext");
    if (n == 1 && (marker_str(v, "$uint64") || marker_str(v, "$float")))
        return pack_number_marker(pk, marker_str(v, "$uint64"),
                                  marker_str(v, "$float"), errptr);
    if (!b64 || (n != 1 && !(n == 2 && ext)))
        return 1;
    if (ext && (!json_is_integer(ext) || json_integer_value(ext) < -128 ||
                json_integer_value(ext) > 127))
        return err_set(errptr, WEIR_EINVAL,
                       "\"$ext\": not an integer from -128 to 127");
    char *bytes = NULL;
    size_t len = 0;
    int rc = mpj_base64_decode(b64, strlen(b64), &bytes, &len);
    if (rc == WEIR_EINVAL)
        return err_set(errptr, rc, "\"$base64\": \"%.40s\" is not base64", b64);
    if (rc < 0)
        return pack_oom(errptr);
    if (ext)
        rc = msgpack_pack_ext_with_body(pk, bytes, len,
                                        (int8_t)json_integer_value(ext));
    else
        rc = msgpack_pack_bin_with_body(pk, bytes, len);
    free(bytes);
    return rc ? pack_oom(errptr) : 0;
}

static int pack_json(msgpack_packer *pk, const json_t *v, int depth,
                     char **errptr);

static int pack_object(msgpack_packer *pk, const json_t *v, int depth,
                       char **errptr)
{
    int rc = pack_marker(pk, v, errptr);
    if (rc <= 0)
        return rc;
    if (msgpack_pack_map(pk, json_object_size(v)))
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    const char *k;
    size_t klen;
    json_t *x;
    json_object_keylen_foreach((json_t *)v, k, klen, x)
    {
        if (msgpack_pack_str_with_body(pk, k, klen))
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        if ((rc = pack_json(pk, x, depth + 1, errptr)) < 0)
            return rc;
    }
    return 0;
}

static int pack_json(msgpack_packer *pk, const json_t *v, int depth,
                     char **errptr)
{
    if (depth > MPJ_MAX_DEPTH)
        return err_set(errptr, WEIR_EINVAL, "nested deeper than %d levels",
                       MPJ_MAX_DEPTH);
    int bad = 0;
    switch (json_typeof(v)) {
    case JSON_NULL: bad = msgpack_pack_nil(pk); break;
    case JSON_TRUE: bad = msgpack_pack_true(pk); break;
    case JSON_FALSE: bad = msgpack_pack_false(pk); break;
    case JSON_INTEGER:
        bad = msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL: bad = msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_STRING:
        bad = msgpack_pack_str_with_body(pk, json_string_value(v),
                                         json_string_length(v));
        break;
    case JSON_ARRAY:
        if (msgpack_pack_array(pk, json_array_size(v)))
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        for (size_t i = 0; i < json_array_size(v); i++) {
            int rc = pack_json(pk, json_array_get(v, i), depth + 1, errptr);
            if (rc < 0)
                return rc;
        }
        break;
    case JSON_OBJECT: return pack_object(pk, v, depth, errptr);
    }
    return bad ? err_set(errptr, WEIR_ENOMEM, "out of memory") : 0;
}

int mpj_to_msgpack(const json_t *v, char **out, size_t *n, char **errptr)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    *out = NULL;
    *n = 0;
    int rc = pack_json(&pk, v, 0, errptr);
    if (rc < 0) {
        msgpack_sbuffer_destroy(&sb);
        return rc;
    }
    *n = sb.size;
    *out = sb.data ? sb.data : strdup("");
    return *out ? 0 : err_set(errptr, WEIR_ENOMEM, "out of memory");
}

int mpj_key_bytes(const json_t *v, char **out, size_t *n, char **errptr)
{
    *out = NULL;
    *n = 0;
    if (json_is_string(v)) {
        *n = json_string_length(v);
        *out = malloc(*n + 1);
        if (!*out)
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        memcpy(*out, json_string_value(v), *n + 1);
        return 0;
    }
    if (json_is_integer(v)) {
        if (asprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0) {
            *out = NULL;
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        }
        *n = strlen(*out);
        return 0;
    }
    const char *b64 = json_is_object(v) && json_object_size(v) == 1
                          ? marker_str(v, "$base64")
                          : NULL;
    if (b64) {
        int rc = mpj_base64_decode(b64, strlen(b64), out, n);
        if (rc == WEIR_EINVAL)
            return err_set(errptr, rc, "\"$base64\": \"%.40s\" is not base64",
                           b64);
        return rc ? err_set(errptr, rc, "out of memory") : 0;
    }
    return err_set(errptr, WEIR_EINVAL,
                   "a key is a string, an integer or {\"$base64\": ...}, "
                   "not %s",
                   json_is_real(v)     ? "a real number"
                   : json_is_array(v)  ? "an array"
                   : json_is_object(v) ? "an object"
                   : json_is_null(v)   ? "null"
                                       : "a boolean");
}

/* ------------------------------------------------------------------------ */
/* Value formats                                                             */
/* ------------------------------------------------------------------------ */

int mpj_format_parse(const char *name, mpj_format *out)
{
    static const char *const names[] = {"msgpack", "int64", "base64"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (mpj_format)i;
            return 0;
        }
    return -1;
}

json_t *mpj_value_as(const void *p, size_t n, mpj_format f)
{
    if (f == MPJ_MSGPACK)
        return mpj_value(p, n);
    if (f == MPJ_INT64 && n == 8) {
        const unsigned char *b = p;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | b[i];
        return json_integer((json_int_t)(int64_t)u);
    }
    return mpj_base64_marker(p, n);
}

int mpj_value_from(const json_t *v, mpj_format f, char **out, size_t *n,
                   char **errptr)
{
    *out = NULL;
    *n = 0;
    if (f == MPJ_MSGPACK)
        return mpj_to_msgpack(v, out, n, errptr);
    if (f == MPJ_INT64) {
        if (!json_is_integer(v))
            return err_set(errptr, WEIR_EINVAL,
                           "an int64 value is a JSON integer");
        uint64_t u = (uint64_t)json_integer_value(v);
        if (!(*out = malloc(8)))
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        for (int i = 7; i >= 0; i--, u >>= 8)
            (*out)[i] = (char)(u & 0xff);
        *n = 8;
        return 0;
    }
    const char *b64 = json_is_string(v) ? json_string_value(v)
                      : json_is_object(v) && json_object_size(v) == 1
                          ? marker_str(v, "$base64")
                          : NULL;
    if (!b64)
        return err_set(errptr, WEIR_EINVAL,
                       "a base64 value is a base64 string or "
                       "{\"$base64\": ...}");
    int rc = mpj_base64_decode(b64, strlen(b64), out, n);
    if (rc == WEIR_EINVAL)
        return err_set(errptr, rc, "\"%.40s\" is not base64", b64);
    return rc ? err_set(errptr, rc, "out of memory") : 0;
}
