/*
 * jsonscan.c - one-pass JSON object to msgpack for the common subset; see
 * jsonscan.h.
 *
 * Containers are packed with a 5-byte placeholder header that is replaced,
 * when the container closes and its size is known, by the header msgpack-c
 * writes for that size (fixmap/fixarray below 16, map16/array16 below 65536,
 * else map32/array32), moving the contents back over the unused bytes.
 * Scalars go through msgpack-c's own packer functions, as jrec_pack_json()
 * packs them.
 */
#include "jsonscan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jsonrec.h"

#define JSCAN_PLACEHOLDER 5
#define JSCAN_NUM_MAX     64 /* longest real copied for strtod() */

typedef struct jscan_frame {
    size_t hdr;     /* offset of the placeholder header in the buffer */
    uint32_t n;     /* members or elements so far */
    uint32_t kbase; /* first of this object's keys in the key stack */
    int obj;        /* an object, else an array */
} jscan_frame;

typedef struct jscan {
    const unsigned char *p;
    size_t len, i;
    weir_mp_writer *w;
    jscan_frame st[JREC_MAX_DEPTH];
    int depth;
    const unsigned char *kp[JSCAN_MAX_KEYS]; /* keys of the open objects */
    uint32_t kl[JSCAN_MAX_KEYS];
    uint32_t nk;
} jscan;

static void jscan_ws(jscan *j)
{
    while (j->i < j->len) {
        unsigned char c = j->p[j->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        j->i++;
    }
}

/* Length of the valid UTF-8 sequence (RFC 3629) at s[0..n), or 0. */
static size_t jscan_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t need;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (size_t k = 1; k < need; k++) {
        if ((s[k] & 0xC0u) != 0x80u)
            return 0;
        v = v << 6 | (s[k] & 0x3Fu);
    }
    if ((need == 3 && v < 0x800) || (need == 4 && v < 0x10000) ||
        v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    return need;
}

/* Scans the string whose opening quote is at j->i; on success *s, *n are its
 * bytes and j->i is past the closing quote. */
static int jscan_string(jscan *j, const unsigned char **s, size_t *n)
{
    size_t i = j->i + 1;
    size_t start = i;
    for (;;) {
        if (i >= j->len)
            return 0;
        unsigned char c = j->p[i];
        if (c == '"')
            break;
        if (c == '\\' || c < 0x20)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = jscan_utf8_seq(j->p + i, j->len - i);
        if (!k)
            return 0;
        i += k;
    }
    *s = j->p + start;
    *n = i - start;
    j->i = i + 1;
    return 1;
}

static int jscan_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Scans and packs the number at j->i, reporting it through *type, *iv, *dv
 * (JSCAN_INT or JSCAN_REAL). */
static int jscan_number(jscan *j, int *type, int64_t *iv, double *dv)
{
    size_t start = j->i, i = j->i;
    int neg = 0, real = 0, digits = 0;
    uint64_t u = 0;
    if (i < j->len && j->p[i] == '-') {
        neg = 1;
        i++;
    }
    if (i < j->len && j->p[i] == '0') {
        i++;
        digits = 1;
    } else if (i < j->len && j->p[i] >= '1' && j->p[i] <= '9') {
        while (i < j->len && jscan_is_digit(j->p[i])) {
            u = u * 10 + (uint64_t)(j->p[i] - '0');
            if (++digits > 18)
                return 0;
            i++;
        }
    } else {
        return 0;
    }
    if (i < j->len && j->p[i] == '.') {
        real = 1;
        i++;
        if (i >= j->len || !jscan_is_digit(j->p[i]))
            return 0;
        while (i < j->len && jscan_is_digit(j->p[i]))
            i++;
    }
    if (i < j->len && (j->p[i] == 'e' || j->p[i] == 'E')) {
        real = 1;
        i++;
        if (i < j->len && (j->p[i] == '+' || j->p[i] == '-'))
            i++;
        if (i >= j->len || !jscan_is_digit(j->p[i]))
            return 0;
        while (i < j->len && jscan_is_digit(j->p[i]))
            i++;
    }
    j->i = i;
    if (!real) {
        *type = JSCAN_INT;
        *iv = neg ? -(int64_t)u : (int64_t)u;
        return msgpack_pack_int64(&j->w->pk, *iv) == 0;
    }
    char buf[JSCAN_NUM_MAX];
    size_t n = i - start;
    if (n >= sizeof buf)
        return 0;
    memcpy(buf, j->p + start, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double d = strtod(buf, &end);
    if (errno != 0 || end != buf + n)
        return 0;
    *type = JSCAN_REAL;
    *dv = d;
    return msgpack_pack_double(&j->w->pk, d) == 0;
}

/* Matches the literal word at j->i. */
static int jscan_word(jscan *j, const char *word, size_t n)
{
    if (j->len - j->i < n || memcmp(j->p + j->i, word, n) != 0)
        return 0;
    j->i += n;
    return 1;
}

static int jscan_open(jscan *j, int obj)
{
    static const char ph[JSCAN_PLACEHOLDER] = {0};
    if (j->depth >= JREC_MAX_DEPTH)
        return 0;
    jscan_frame *fr = &j->st[j->depth++];
    fr->hdr = j->w->buf.size;
    fr->n = 0;
    fr->kbase = j->nk;
    fr->obj = obj;
    j->i++;
    return msgpack_sbuffer_write(&j->w->buf, ph, sizeof ph) == 0;
}

/* Replaces the placeholder of the innermost container by its header. */
static void jscan_close(jscan *j)
{
    jscan_frame *fr = &j->st[--j->depth];
    unsigned char h[JSCAN_PLACEHOLDER];
    size_t hl;
    uint32_t n = fr->n;
    if (n < 16) {
        h[0] = (unsigned char)((fr->obj ? 0x80u : 0x90u) | n);
        hl = 1;
    } else if (n < 65536) {
        h[0] = fr->obj ? 0xde : 0xdc;
        h[1] = (unsigned char)(n >> 8);
        h[2] = (unsigned char)n;
        hl = 3;
    } else {
        h[0] = fr->obj ? 0xdf : 0xdd;
        h[1] = (unsigned char)(n >> 24);
        h[2] = (unsigned char)(n >> 16);
        h[3] = (unsigned char)(n >> 8);
        h[4] = (unsigned char)n;
        hl = 5;
    }
    char *base = j->w->buf.data + fr->hdr;
    size_t body = j->w->buf.size - fr->hdr - JSCAN_PLACEHOLDER;
    if (hl < JSCAN_PLACEHOLDER)
        memmove(base + hl, base + JSCAN_PLACEHOLDER, body);
    memcpy(base, h, hl);
    j->w->buf.size -= JSCAN_PLACEHOLDER - hl;
    if (fr->obj)
        j->nk = fr->kbase;
    j->i++;
}

/* Records key s[0..n) of the innermost object; fails on a repeated key. */
static int jscan_key(jscan *j, const unsigned char *s, size_t n)
{
    const jscan_frame *fr = &j->st[j->depth - 1];
    if (j->nk >= JSCAN_MAX_KEYS || n > UINT32_MAX)
        return 0;
    for (uint32_t k = fr->kbase; k < j->nk; k++)
        if (j->kl[k] == n &&
            (n == 0 || (j->kp[k][0] == s[0] && memcmp(j->kp[k], s, n) == 0)))
            return 0;
    j->kp[j->nk] = s;
    j->kl[j->nk++] = (uint32_t)n;
    return 1;
}

/* After a value: consumes a separator or the brackets closing containers.
 * Returns 1 when another member or element follows, 2 at the end of the
 * text after the outermost container, 0 for anything else. */
static int jscan_after_value(jscan *j)
{
    for (;;) {
        jscan_ws(j);
        if (j->depth == 0)
            return j->i == j->len ? 2 : 0;
        if (j->i >= j->len)
            return 0;
        unsigned char c = j->p[j->i];
        if (c == ',') {
            j->i++;
            return 1;
        }
        if (c != (j->st[j->depth - 1].obj ? '}' : ']'))
            return 0;
        jscan_close(j);
    }
}

/* Scans and packs one scalar at j->i (first byte c) into *fv. */
static int jscan_scalar(jscan *j, unsigned char c, jscan_field *fv)
{
    msgpack_packer *pk = &j->w->pk;
    const unsigned char *vs;
    fv->type = JSCAN_OTHER;
    if (c == '"') {
        if (!jscan_string(j, &vs, &fv->len))
            return 0;
        fv->type = JSCAN_STR;
        fv->s = (const char *)vs;
        return weir_mp_pack_strn(pk, vs, fv->len) == 0;
    }
    if (c == '-' || jscan_is_digit(c))
        return jscan_number(j, &fv->type, &fv->i, &fv->d);
    if (c == 't')
        return jscan_word(j, "true", 4) && msgpack_pack_true(pk) == 0;
    if (c == 'f')
        return jscan_word(j, "false", 5) && msgpack_pack_false(pk) == 0;
    if (c == 'n')
        return jscan_word(j, "null", 4) && msgpack_pack_nil(pk) == 0;
    return 0;
}

int jscan_json_to_mp(const char *p, size_t len, weir_mp_writer *w,
                     jscan_field *f, size_t nf)
{
    jscan j;
    j.p = (const unsigned char *)p;
    j.len = len;
    j.i = 0;
    j.w = w;
    j.depth = 0;
    j.nk = 0;
    for (size_t k = 0; k < nf; k++)
        f[k].type = JSCAN_ABSENT;
    jscan_ws(&j);
    if (j.i >= len || j.p[j.i] != '{' || !jscan_open(&j, 1))
        return 0;
    /* Each turn starts a member (object) or an element (array), or closes
     * an empty container. */
    for (;;) {
        jscan_ws(&j);
        if (j.i >= len)
            return 0;
        jscan_frame *fr = &j.st[j.depth - 1];
        unsigned char c = j.p[j.i];
        int rc;
        if (fr->n == 0 && c == (fr->obj ? '}' : ']')) {
            jscan_close(&j);
        } else {
            const unsigned char *ks = NULL;
            size_t kn = 0;
            int top = j.depth == 1;
            if (fr->obj) {
                if (c != '"' || !jscan_string(&j, &ks, &kn) ||
                    !jscan_key(&j, ks, kn) ||
                    weir_mp_pack_strn(&w->pk, ks, kn) != 0)
                    return 0;
                jscan_ws(&j);
                if (j.i >= len || j.p[j.i] != ':')
                    return 0;
                j.i++;
                jscan_ws(&j);
                if (j.i >= len)
                    return 0;
                c = j.p[j.i];
            }
            fr->n++;
            jscan_field fv = {0};
            if (c == '{' || c == '[') {
                if (!jscan_open(&j, c == '{'))
                    return 0;
                fv.type = JSCAN_OTHER;
            } else if (!jscan_scalar(&j, c, &fv)) {
                return 0;
            }
            for (size_t k = 0; top && k < nf; k++)
                if (f[k].name && f[k].name_len == kn &&
                    memcmp(f[k].name, ks, kn) == 0) {
                    fv.name = f[k].name;
                    fv.name_len = f[k].name_len;
                    f[k] = fv;
                }
            if (c == '{' || c == '[')
                continue;
        }
        if ((rc = jscan_after_value(&j)) != 1)
            return rc == 2;
    }
}
