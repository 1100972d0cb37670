#include "statetool/entry.h"

#include <stdlib.h>
#include <string.h>

#include "state/codec.h"

#include "weir/weir.h"

#define TK_HDR (1 + 8) /* timer key: domain, ts */

/* varint(len) | bytes at p[0..n): the bytes' length and where they start,
 * when they fill exactly `whole` (1) or at least fit (0). */
static int lenpref(const char *p, size_t n, int whole, const char **body,
                   size_t *body_len)
{
    uint64_t v = 0;
    size_t used = varint_get(p, n, &v);
    if (!used || v > n - used || (whole && v != n - used))
        return -1;
    *body = p + used;
    *body_len = (size_t)v;
    return 0;
}

int ste_key_parse(const char *k, size_t len, ste_key *out)
{
    if (len < 3)
        return -1;
    if (lenpref(k + 2, len - 2, 0, &out->key, &out->key_len) < 0)
        return -1;
    out->kg = get_be16(k);
    out->ukey = out->key + out->key_len;
    out->ukey_len = (size_t)(k + len - out->ukey);
    return 0;
}

size_t ste_key_size(size_t key_len, size_t ukey_len)
{
    return 2 + 10 + key_len + ukey_len;
}

size_t ste_key_encode(char *buf, uint16_t kg, const void *key, size_t key_len,
                      const void *ukey, size_t ukey_len)
{
    put_be16(buf, kg);
    size_t n = 2 + varint_put(buf + 2, key_len);
    if (key_len)
        memcpy(buf + n, key, key_len);
    n += key_len;
    if (ukey_len)
        memcpy(buf + n, ukey, ukey_len);
    return n + ukey_len;
}

int ste_value_parse(const char *v, size_t len, int64_t *stamp,
                    const char **bytes, size_t *n)
{
    if (len < STAMP_LEN)
        return -1;
    *stamp = stamp_get(v);
    *bytes = v + STAMP_LEN;
    *n = len - STAMP_LEN;
    return 0;
}

int ste_list_each(const char *bytes, size_t len, ste_elem_fn fn, void *arg)
{
    size_t off = 0;
    while (off < len) {
        const char *e;
        size_t elen;
        if (lenpref(bytes + off, len - off, 0, &e, &elen) < 0)
            return -1;
        int rc = fn ? fn(arg, e, elen) : 0;
        if (rc)
            return rc;
        off = (size_t)(e + elen - bytes);
    }
    return 0;
}

size_t ste_list_elem_size(size_t len)
{
    return 10 + len;
}

size_t ste_list_elem_encode(char *buf, const void *elem, size_t len)
{
    size_t n = varint_put(buf, len);
    if (len)
        memcpy(buf + n, elem, len);
    return n + len;
}

int ste_timer_parse(const char *k, size_t len, ste_timer *out)
{
    if (len < TK_HDR + 3 || (unsigned char)k[0] > 1)
        return -1;
    if (lenpref(k + TK_HDR + 2, len - TK_HDR - 2, 1, &out->key, &out->key_len) <
        0)
        return -1;
    out->domain = (unsigned char)k[0];
    out->ts = istamp_get(k + 1);
    out->kg = get_be16(k + TK_HDR);
    return 0;
}

size_t ste_timer_size(size_t key_len)
{
    return TK_HDR + 2 + 10 + key_len;
}

size_t ste_timer_encode(char *buf, int domain, int64_t ts, uint16_t kg,
                        const void *key, size_t key_len)
{
    buf[0] = (char)(domain ? 1 : 0);
    istamp_put(buf + 1, ts);
    return TK_HDR + ste_key_encode(buf + TK_HDR, kg, key, key_len, NULL, 0);
}

int ste_index_parse(const char *k, size_t len, ste_index *out)
{
    ste_key sk;
    if (len < IDX_HDR || (unsigned char)k[0] > 1 ||
        ste_key_parse(k + IDX_HDR, len - IDX_HDR, &sk) < 0)
        return -1;
    out->domain = (unsigned char)k[0];
    out->stamp = istamp_get(k + 1);
    out->sid = get_be16(k + 9);
    out->skey = k + IDX_HDR;
    out->skey_len = len - IDX_HDR;
    return 0;
}

size_t ste_index_size(size_t skey_len)
{
    return IDX_HDR + skey_len;
}

size_t ste_index_encode(char *buf, int domain, int64_t stamp, uint16_t sid,
                        const char *skey, size_t skey_len)
{
    buf[0] = (char)(domain ? 1 : 0);
    istamp_put(buf + 1, stamp);
    put_be16(buf + 9, sid);
    memcpy(buf + IDX_HDR, skey, skey_len);
    return IDX_HDR + skey_len;
}

int ste_meta_parse(const char *v, size_t len, uint16_t *id, uint8_t *kind,
                   uint32_t *format)
{
    if (len < META_STATE_LEN_V0)
        return -1;
    *id = get_be16(v);
    *kind = (uint8_t)v[2];
    *format = len >= META_STATE_LEN ? get_be32(v + 3) : 0;
    return 0;
}

void ste_meta_encode(char *out, uint16_t id, uint8_t kind, uint32_t format)
{
    put_be16(out, id);
    out[2] = (char)kind;
    put_be32(out + 3, format);
}

/* One entry at data[*off]; advances *off. Returns -1 when it is damaged. */
static int delta_one(const char *data, size_t len, size_t *off,
                     ste_delta_ent *e)
{
    const char *p = data + *off;
    size_t left = len - *off;
    if (left < 7)
        return -1;
    e->sid = get_be16(p);
    e->del = p[2] != 0;
    e->key_len = get_be32(p + 3);
    if (left - 7 < e->key_len)
        return -1;
    e->key = p + 7;
    left -= 7 + e->key_len;
    p = e->key + e->key_len;
    if (!e->del) {
        if (left < 12 || left - 12 < get_be32(p + 8))
            return -1;
        e->stamp = stamp_get(p);
        e->val_len = get_be32(p + 8);
        e->val = p + 12;
        p += 12 + e->val_len;
    }
    *off = (size_t)(p - data);
    return 0;
}

int ste_delta_parse(const char *data, size_t len, ste_delta_ent **out,
                    size_t *n, size_t *bad_at)
{
    ste_delta_ent *v = NULL;
    size_t cnt = 0, cap = 0, off = 4;
    *out = NULL;
    *n = 0;
    *bad_at = 0;
    if (len < 4 || memcmp(data, DELTA_MAGIC, 4) != 0)
        return -1;
    while (off < len) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 64;
            ste_delta_ent *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                return WEIR_ENOMEM;
            }
            v = nv;
        }
        memset(&v[cnt], 0, sizeof v[cnt]);
        if (delta_one(data, len, &off, &v[cnt]) < 0) {
            free(v);
            *bad_at = off;
            return -1;
        }
        cnt++;
    }
    *out = v;
    *n = cnt;
    return 0;
}
