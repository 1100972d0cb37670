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

/* Strings up to this many bytes are written into space reserved for the
 * worst case (6 bytes of output per byte); longer ones piece by piece. */
#define JREC_STRING_DIRECT 4096

/* jrec_json_string() of a long string, appending piece by piece. */
static void jrec_json_string_long(jrec_buf *b, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not yet copied */
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

/* Appends a JSON string; invalid UTF-8 bytes become U+FFFD. */
void jrec_json_string(jrec_buf *b, const void *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = s;
    if (n == 0) { /* s may be NULL */
        jrec_puts(b, "\"\"");
        return;
    }
    if (n > JREC_STRING_DIRECT) {
        jrec_json_string_long(b, p, n);
        return;
    }
    if (jrec_reserve(b, 6 * n + 2) < 0)
        return;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = jrec_utf8_len(p + i, n - i);
            if (k) {
                memcpy(o, p + i, k);
                o += k;
                i += k;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i++;
            }
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            memcpy(o, "u00", 3);
            o[3] = hex[c >> 4];
            o[4] = hex[c & 15];
            o += 5;
        }
        i++;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
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
/* msgpack bytes -> JSON without unpacking                                   */
/* ------------------------------------------------------------------------ */

/* Containers nested deeper than this are left to msgpack-c's unpacker. */
#define JREC_BYTES_DEPTH 16

static uint64_t jrec_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Writes the object at p[*pos..n) and moves *pos past it; 0 when it is
 * truncated, malformed or of a form left to jrec_mp_to_json(). */
static int jrec_bytes_obj(jrec_buf *b, const unsigned char *p, size_t n,
                          size_t *pos, int depth)
{
    if (*pos >= n)
        return 0;
    size_t i = *pos, rest = n - i - 1;
    unsigned c = p[i];
    uint64_t len = 0, items = 0;
    int map = 0, hl = 0;
    if (c <= 0x7f) {
        jrec_put_u64(b, c);
        *pos = i + 1;
        return 1;
    }
    if (c >= 0xe0) {
        jrec_put_i64(b, (int8_t)c);
        *pos = i + 1;
        return 1;
    }
    if (c <= 0x8f || (c >= 0x90 && c <= 0x9f)) {
        map = c <= 0x8f;
        items = c & 0x0f;
        goto container;
    }
    if (c <= 0xbf) { /* fixstr */
        len = c & 0x1f;
        goto str;
    }
    switch (c) {
    case 0xc0:
        jrec_puts(b, "null");
        *pos = i + 1;
        return 1;
    case 0xc2:
        jrec_puts(b, "false");
        *pos = i + 1;
        return 1;
    case 0xc3:
        jrec_puts(b, "true");
        *pos = i + 1;
        return 1;
    case 0xc4:
    case 0xc5:
    case 0xc6: /* bin 8/16/32 */
        hl = 1 << (c - 0xc4);
        if (rest < (size_t)hl)
            return 0;
        len = jrec_be(p + i + 1, hl);
        if (len > rest - (size_t)hl)
            return 0;
        jrec_json_base64(b, p + i + 1 + hl, (size_t)len);
        *pos = i + 1 + (size_t)hl + (size_t)len;
        return 1;
    case 0xc7:
    case 0xc8:
    case 0xc9: /* ext 8/16/32: length, type, data */
        hl = 1 << (c - 0xc7);
        if (rest < (size_t)hl + 1)
            return 0;
        len = jrec_be(p + i + 1, hl);
        if (len > rest - (size_t)hl - 1)
            return 0;
        jrec_json_base64(b, p + i + 2 + hl, (size_t)len);
        *pos = i + 2 + (size_t)hl + (size_t)len;
        return 1;
    case 0xca:
    case 0xcb: { /* float 32/64 */
        int w = c == 0xca ? 4 : 8;
        if (rest < (size_t)w)
            return 0;
        uint64_t v = jrec_be(p + i + 1, w);
        double d;
        if (w == 4) {
            uint32_t u = (uint32_t)v;
            float f;
            memcpy(&f, &u, sizeof f);
            d = f;
        } else {
            memcpy(&d, &v, sizeof d);
        }
        jrec_json_real(b, d, w == 4);
        *pos = i + 1 + (size_t)w;
        return 1;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: /* uint 8..64 */
        hl = 1 << (c - 0xcc);
        if (rest < (size_t)hl)
            return 0;
        jrec_put_u64(b, jrec_be(p + i + 1, hl));
        *pos = i + 1 + (size_t)hl;
        return 1;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: { /* int 8..64 */
        hl = 1 << (c - 0xd0);
        if (rest < (size_t)hl)
            return 0;
        uint64_t v = jrec_be(p + i + 1, hl);
        int bits = 8 * hl;
        if (bits < 64 && ((v >> (bits - 1)) & 1))
            v |= ~(uint64_t)0 << bits;
        jrec_put_i64(b, (int64_t)v);
        *pos = i + 1 + (size_t)hl;
        return 1;
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: /* fixext 1..16: type, data */
        len = (uint64_t)1 << (c - 0xd4);
        if (rest < 1 + len)
            return 0;
        jrec_json_base64(b, p + i + 2, (size_t)len);
        *pos = i + 2 + (size_t)len;
        return 1;
    case 0xd9:
    case 0xda:
    case 0xdb: /* str 8/16/32 */
        hl = 1 << (c - 0xd9);
        if (rest < (size_t)hl)
            return 0;
        len = jrec_be(p + i + 1, hl);
        i += (size_t)hl;
        rest -= (size_t)hl;
        goto str;
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf: /* array/map 16/32 */
        map = c >= 0xde;
        hl = (c == 0xdc || c == 0xde) ? 2 : 4;
        if (rest < (size_t)hl)
            return 0;
        items = jrec_be(p + i + 1, hl);
        i += (size_t)hl;
        rest -= (size_t)hl;
        goto container;
    default: return 0; /* 0xc1 */
    }
str:
    if (len > rest)
        return 0;
    jrec_json_string(b, p + i + 1, (size_t)len);
    *pos = i + 1 + (size_t)len;
    return 1;
container:
    /* Every member or element takes at least one byte per object. */
    if (depth >= JREC_BYTES_DEPTH || items > rest / (map ? 2 : 1))
        return 0;
    *pos = i + 1;
    jrec_putc(b, map ? '{' : '[');
    for (uint64_t k = 0; k < items; k++) {
        if (k)
            jrec_putc(b, ',');
        if (map) {
            /* Keys other than str are left to jrec_mp_to_json(). */
            if (*pos >= n)
                return 0;
            unsigned kc = p[*pos];
            if (!((kc >= 0xa0 && kc <= 0xbf) || (kc >= 0xd9 && kc <= 0xdb)))
                return 0;
            if (!jrec_bytes_obj(b, p, n, pos, depth + 1))
                return 0;
            jrec_putc(b, ':');
        }
        if (!jrec_bytes_obj(b, p, n, pos, depth + 1))
            return 0;
    }
    jrec_putc(b, map ? '}' : ']');
    return 1;
}

int jrec_mp_bytes_to_json(jrec_buf *b, const void *data, size_t n)
{
    size_t start = b->len, pos = 0;
    if (jrec_bytes_obj(b, data, n, &pos, 0) && pos == n)
        return 1;
    if (b->len > start)
        b->len = start;
    return 0;
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
