/*
 * jsonrec_out.c - msgpack values as JSON text into a jrec_buf; see
 * jsonrec.h. Needs no JSON library (file_sink builds it alone).
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrec.h"

static int jrec_reserve(jrec_buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void jrec_put(jrec_buf *b, const void *p, size_t n)
{
    if (n && jrec_reserve(b, n) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

void jrec_putc(jrec_buf *b, char c)
{
    if (jrec_reserve(b, 1) == 0)
        b->p[b->len++] = c;
}

void jrec_puts(jrec_buf *b, const char *s)
{
    jrec_put(b, s, strlen(s));
}

void jrec_put_u64(jrec_buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jrec_put(b, tmp + sizeof tmp - n, n);
}

void jrec_put_i64(jrec_buf *b, int64_t v)
{
    if (v < 0) {
        jrec_putc(b, '-');
        jrec_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        jrec_put_u64(b, (uint64_t)v);
    }
}

/* ------------------------------------------------------------------------ */
/* JSON writing                                                              */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence (RFC 3629) at p, or 0 if invalid. */
static size_t jrec_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
        return n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3
                                                                           : 0;
    }
    if (c < 0xf5) {
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
        return n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
                       (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

int jrec_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        size_t k = jrec_utf8_len(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* Appends a JSON string; invalid UTF-8 bytes become U+FFFD. */
void jrec_json_string(jrec_buf *b, const void *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = s;
    size_t run = 0; /* start of the bytes not yet copied */
    if (n == 0) {   /* s may be NULL */
        jrec_puts(b, "\"\"");
        return;
    }
    jrec_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        const char *esc = NULL;
        char u[6];
        if (c >= 0x80) {
            size_t k = jrec_utf8_len(p + i, n - i);
            if (k) {
                i += k;
                continue;
            }
            esc = "\xef\xbf\xbd";
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
        } else {
            i++;
            continue;
        }
        jrec_put(b, p + run, i - run);
        if (esc)
            jrec_puts(b, esc);
        else
            jrec_put(b, u, 6);
        run = ++i;
    }
    jrec_put(b, p + run, n - run);
    jrec_putc(b, '"');
}

/* Appends the bytes as a quoted base64 string (RFC 4648, padded). */
void jrec_json_base64(jrec_buf *b, const void *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = s;
    jrec_putc(b, '"');
    if (jrec_reserve(b, (n + 2) / 3 * 4 + 1) < 0)
        return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
    jrec_putc(b, '"');
}

/* Appends a number in the shortest "%.*g" form that reads back to the same
 * float (f32) or double, with ".0" added when it would read as an integer. */
static void jrec_json_real(jrec_buf *b, double d, int f32)
{
    char tmp[40];
    if (!isfinite(d)) {
        jrec_puts(b, "null");
        return;
    }
    for (int prec = f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        double back = strtod(tmp, NULL);
        if (f32 ? (float)back == (float)d : back == d)
            break;
    }
    jrec_puts(b, tmp);
    if (!strpbrk(tmp, ".eE"))
        jrec_puts(b, ".0");
}

/* A JSON object key: a str as itself, anything else as its JSON text. */
static void jrec_json_key(jrec_buf *b, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR) {
        jrec_json_string(b, k->via.str.ptr, k->via.str.size);
        return;
    }
    jrec_buf t = {0};
    jrec_mp_to_json(&t, k);
    if (t.oom)
        b->oom = 1;
    else
        jrec_json_string(b, t.p, t.len);
    free(t.p);
}

/* Appends the JSON form of a msgpack object. Recursion is bounded by
 * msgpack-c's unpacker, which nests at most 32 containers. */
void jrec_mp_to_json(jrec_buf *b, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: jrec_puts(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN:
        jrec_puts(b, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: jrec_put_u64(b, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: jrec_put_i64(b, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32: jrec_json_real(b, o->via.f64, 1); break;
    case MSGPACK_OBJECT_FLOAT64: jrec_json_real(b, o->via.f64, 0); break;
    case MSGPACK_OBJECT_STR:
        jrec_json_string(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        jrec_json_base64(b, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        jrec_json_base64(b, o->via.ext.ptr, o->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        jrec_putc(b, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                jrec_putc(b, ',');
            jrec_mp_to_json(b, &o->via.array.ptr[i]);
        }
        jrec_putc(b, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        jrec_putc(b, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                jrec_putc(b, ',');
            jrec_json_key(b, &o->via.map.ptr[i].key);
            jrec_putc(b, ':');
            jrec_mp_to_json(b, &o->via.map.ptr[i].val);
        }
        jrec_putc(b, '}');
        break;
    default: jrec_puts(b, "null"); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Output file                                                               */
/* ------------------------------------------------------------------------ */

/* The file one subtask writes. */
typedef struct jrec_file {
    char *path;
    int fd;
} jrec_file;

void jrec_buf_free(jrec_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
