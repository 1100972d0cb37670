/*
 * jsonrec.c - JSON text to msgpack, record fields and ISO-8601 time;
 * see jsonrec.h. Needs jansson.
 */
#define _POSIX_C_SOURCE 200809L

#include "jsonrec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* ------------------------------------------------------------------------ */
/* JSON -> msgpack                                                           */
/* ------------------------------------------------------------------------ */

const char *jrec_json_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

int jrec_pack_json(msgpack_packer *pk, json_t *v, int depth)
{
    const char *k;
    size_t klen, i;
    json_t *x;
    int rc;

    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= JREC_MAX_DEPTH)
            return WEIR_EINVAL;
        if (msgpack_pack_map(pk, json_object_size(v)) != 0)
            return WEIR_ENOMEM;
        json_object_keylen_foreach(v, k, klen, x)
        {
            if (weir_mp_pack_strn(pk, k, klen) != 0)
                return WEIR_ENOMEM;
            if ((rc = jrec_pack_json(pk, x, depth + 1)) < 0)
                return rc;
        }
        return WEIR_OK;
    case JSON_ARRAY:
        if (depth >= JREC_MAX_DEPTH)
            return WEIR_EINVAL;
        if (msgpack_pack_array(pk, json_array_size(v)) != 0)
            return WEIR_ENOMEM;
        json_array_foreach(v, i, x)
        {
            if ((rc = jrec_pack_json(pk, x, depth + 1)) < 0)
                return rc;
        }
        return WEIR_OK;
    case JSON_STRING:
        return weir_mp_pack_strn(pk, json_string_value(v),
                                 json_string_length(v));
    case JSON_INTEGER:
        rc = msgpack_pack_int64(pk, json_integer_value(v));
        break;
    case JSON_REAL: rc = msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: rc = msgpack_pack_true(pk); break;
    case JSON_FALSE: rc = msgpack_pack_false(pk); break;
    default: rc = msgpack_pack_nil(pk); break;
    }
    return rc != 0 ? WEIR_ENOMEM : WEIR_OK;
}

int jrec_json_to_mp(const char *p, size_t len, msgpack_packer *pk, char *why)
{
    json_error_t jerr;
    json_t *obj = json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!obj) {
        snprintf(why, JREC_WHY, "invalid JSON at column %d: %s", jerr.column,
                 jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(obj)) {
        snprintf(why, JREC_WHY, "%s, not a JSON object", jrec_json_type(obj));
    } else if ((rc = jrec_pack_json(pk, obj, 0)) == WEIR_EINVAL) {
        snprintf(why, JREC_WHY, "nested deeper than %d levels", JREC_MAX_DEPTH);
        rc = -1;
    } else if (rc < 0) {
        snprintf(why, JREC_WHY, "out of memory");
        rc = -1;
    }
    json_decref(obj);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Fields                                                                    */
/* ------------------------------------------------------------------------ */

static const char *jrec_mp_type(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a real";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    }
    return "unknown";
}

void jrec_format_real(char *buf, size_t size, double d)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

int jrec_as_text(const msgpack_object *v, const char *what, const char *field,
                 char tmp[40], const char **p, size_t *len, char *why)
{
    switch (v->type) {
    case MSGPACK_OBJECT_STR:
        *p = v->via.str.ptr;
        *len = v->via.str.size;
        return 0;
    case MSGPACK_OBJECT_BIN:
        *p = v->via.bin.ptr;
        *len = v->via.bin.size;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(tmp, 40, "%" PRIu64, v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(tmp, 40, "%" PRId64, v->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: jrec_format_real(tmp, 40, v->via.f64); break;
    default:
        snprintf(why, JREC_WHY,
                 "%s field '%s' is %s; expected a string or a number", what,
                 field, jrec_mp_type(v));
        return -1;
    }
    *p = tmp;
    *len = strlen(tmp);
    return 0;
}

static int jrec_time(const msgpack_object *v, const char *field, int64_t *ts,
                     char *why)
{
    if (v->type == MSGPACK_OBJECT_STR) {
        const char *t = v->via.str.ptr;
        size_t tl = v->via.str.size;
        if (jrec_parse_time(t, tl, ts) == 0)
            return 0;
        snprintf(why, JREC_WHY,
                 "time field '%s' is \"%.*s%s\", not an ISO-8601 timestamp "
                 "YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]",
                 field, tl > 40 ? 40 : (int)tl, t, tl > 40 ? "..." : "");
        return -1;
    }
    int rc = weir_mp_as_int(v, ts);
    if (rc == WEIR_OK && *ts != WEIR_TS_NONE)
        return 0;
    if (rc == WEIR_OK)
        snprintf(why, JREC_WHY,
                 "time field '%s' is %lld, which means 'no event time'", field,
                 (long long)*ts);
    else if (v->type == MSGPACK_OBJECT_FLOAT32 ||
             v->type == MSGPACK_OBJECT_FLOAT64 ||
             v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(why, JREC_WHY,
                 "time field '%s' is %.17g; expected integer milliseconds",
                 field,
                 v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (double)v->via.u64
                                                            : v->via.f64);
    else
        snprintf(why, JREC_WHY,
                 "time field '%s' is %s; expected integer milliseconds or an "
                 "ISO-8601 string",
                 field, jrec_mp_type(v));
    return -1;
}

int jrec_extract(const msgpack_object *map, const jrec_fields *f, jrec_out *out,
                 char *why)
{
    const msgpack_object *v;
    out->key = "";
    out->key_len = 0;
    out->ts = WEIR_TS_NONE;
    out->id = NULL;
    out->id_len = 0;
    if (!map || map->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, JREC_WHY, "the value is %s, not a map",
                 map ? jrec_mp_type(map) : "not msgpack");
        return -1;
    }
    if (f->key_field) {
        if (!(v = weir_mp_find(map, f->key_field))) {
            snprintf(why, JREC_WHY, "no key field '%s'", f->key_field);
            return -1;
        }
        if (jrec_as_text(v, "key", f->key_field, out->buf[0], &out->key,
                         &out->key_len, why) < 0)
            return -1;
    }
    if (f->time_field) {
        if (!(v = weir_mp_find(map, f->time_field))) {
            snprintf(why, JREC_WHY, "no time field '%s'", f->time_field);
            return -1;
        }
        if (jrec_time(v, f->time_field, &out->ts, why) < 0)
            return -1;
    }
    if (f->id_field) {
        if (!(v = weir_mp_find(map, f->id_field))) {
            snprintf(why, JREC_WHY, "no id field '%s'", f->id_field);
            return -1;
        }
        if (jrec_as_text(v, "id", f->id_field, out->buf[1], &out->id,
                         &out->id_len, why) < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* ISO-8601                                                                  */
/* ------------------------------------------------------------------------ */

/* Reads exactly n decimal digits at s[*i]. */
static int jrec_digits(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return 0;
}

static int jrec_expect(const char *s, size_t len, size_t *i, char c)
{
    if (*i >= len || s[*i] != c)
        return -1;
    (*i)++;
    return 0;
}

static int jrec_days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t jrec_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The optional fraction of a second at s[*i], as milliseconds. */
static int jrec_fraction(const char *s, size_t len, size_t *i, int *ms)
{
    *ms = 0;
    if (*i >= len || (s[*i] != '.' && s[*i] != ','))
        return 0;
    (*i)++;
    int nd = 0;
    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        if (nd < 3)
            *ms = *ms * 10 + (s[*i] - '0');
        nd++;
        (*i)++;
    }
    if (nd == 0)
        return -1;
    for (; nd < 3; nd++)
        *ms *= 10;
    return 0;
}

/* The optional zone designator at s[*i], as minutes east of UTC. */
static int jrec_zone(const char *s, size_t len, size_t *i, int *off_min)
{
    *off_min = 0;
    if (*i >= len)
        return 0;
    if (s[*i] == 'Z' || s[*i] == 'z') {
        (*i)++;
        return 0;
    }
    if (s[*i] != '+' && s[*i] != '-')
        return -1;
    int sign = s[(*i)++] == '-' ? -1 : 1;
    int oh, om = 0;
    if (jrec_digits(s, len, i, 2, &oh) < 0)
        return -1;
    if (*i < len) {
        if (s[*i] == ':')
            (*i)++;
        if (jrec_digits(s, len, i, 2, &om) < 0)
            return -1;
    }
    if (oh > 23 || om > 59)
        return -1;
    *off_min = sign * (oh * 60 + om);
    return 0;
}

int jrec_parse_time(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int y, mo, d, h, mi, sec, ms, off;
    if (jrec_digits(s, len, &i, 4, &y) < 0 ||
        jrec_expect(s, len, &i, '-') < 0 ||
        jrec_digits(s, len, &i, 2, &mo) < 0 ||
        jrec_expect(s, len, &i, '-') < 0 || jrec_digits(s, len, &i, 2, &d) < 0)
        return -1;
    if (i >= len || (s[i] != 'T' && s[i] != 't' && s[i] != ' '))
        return -1;
    i++;
    if (jrec_digits(s, len, &i, 2, &h) < 0 ||
        jrec_expect(s, len, &i, ':') < 0 ||
        jrec_digits(s, len, &i, 2, &mi) < 0 ||
        jrec_expect(s, len, &i, ':') < 0 ||
        jrec_digits(s, len, &i, 2, &sec) < 0 ||
        jrec_fraction(s, len, &i, &ms) < 0 || jrec_zone(s, len, &i, &off) < 0 ||
        i != len)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > jrec_days_in_month(y, mo) || h > 23 ||
        mi > 59 || sec > 60)
        return -1;
    int64_t secs = jrec_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 +
                   sec - (int64_t)off * 60;
    *out = secs * 1000 + ms;
    return 0;
}
