/*
 * weir/msgpack.h - small helpers over msgpack-c for record values.
 *
 * Record values are msgpack maps by convention ({"user": "u1", "n": 3}).
 * These helpers read fields of such a map and build one. They are header-only
 * and need msgpack-c (`weir_add_plugin()` links it). Nothing here touches the
 * host, so they are usable in any callback and in tests.
 */
#ifndef WEIR_MSGPACK_H
#define WEIR_MSGPACK_H

#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "weir/weir.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Bounded reading. msgpack-c's unpacker allocates, for a container, the
 * declared number of elements before it reads them: a 5-byte value that
 * declares 2^31 elements makes it ask for tens of GiB. weir_mp_plausible()
 * walks the bytes without allocating and accepts exactly one complete
 * object whose containers declare no more elements than bytes remain;
 * weir_mp_read() checks it first, so its allocation stays within a small
 * multiple of the value's size. The weir_mp__* helpers are internal.
 */
static inline uint64_t weir_mp__be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Decodes the header of the item at p (n > 0 bytes available): the header
 * length, the payload bytes after the header (str/bin/ext data, number
 * bytes), and the nested items after the payload (array: n, map: 2n).
 * Returns -1 for a truncated header or the unused code 0xc1. The caller
 * checks *hdr and *body against the bytes it has. */
static inline int weir_mp__head(const unsigned char *p, size_t n, size_t *hdr,
                                uint64_t *body, uint64_t *items)
{
    static const unsigned char fixext[] = {1, 2, 4, 8, 16}; /* 0xd4.. */
    unsigned c = p[0];
    int lb;
    *hdr = 1;
    *body = 0;
    *items = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 0;
    if (c <= 0x8f) {
        *items = 2u * (c & 15u);
        return 0;
    }
    if (c <= 0x9f) {
        *items = c & 15u;
        return 0;
    }
    if (c <= 0xbf) {
        *body = c & 31u;
        return 0;
    }
    switch (c) {
    case 0xc4:
    case 0xd9: lb = 1; break;
    case 0xc5:
    case 0xda: lb = 2; break;
    case 0xc6:
    case 0xdb: lb = 4; break;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        lb = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        if (n < (size_t)lb + 2)
            return -1;
        *hdr = (size_t)lb + 2; /* code, length, type */
        *body = weir_mp__be(p + 1, lb);
        return 0;
    case 0xca: *body = 4; return 0;
    case 0xcb: *body = 8; return 0;
    case 0xcc:
    case 0xd0: *body = 1; return 0;
    case 0xcd:
    case 0xd1: *body = 2; return 0;
    case 0xce:
    case 0xd2: *body = 4; return 0;
    case 0xcf:
    case 0xd3: *body = 8; return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *hdr = 2; /* code, type */
        *body = fixext[c - 0xd4];
        return 0;
    case 0xdc:
    case 0xdd:
    case 0xde:
    case 0xdf:
        lb = c == 0xdc || c == 0xde ? 2 : 4;
        if (n < (size_t)lb + 1)
            return -1;
        *hdr = (size_t)lb + 1;
        *items = weir_mp__be(p + 1, lb) * (c >= 0xde ? 2u : 1u);
        return 0;
    default: return -1; /* 0xc1 */
    }
    if (n < (size_t)lb + 1)
        return -1;
    *hdr = (size_t)lb + 1;
    *body = weir_mp__be(p + 1, lb);
    return 0;
}

/* Skips `count` complete items from p[*pos]. Returns -1 when the bytes end
 * first or an item is invalid, or when a container declares more elements
 * than bytes remain (every element takes at least one byte). */
static inline int weir_mp__skip(const unsigned char *p, size_t n, size_t *pos,
                                uint64_t count)
{
    while (count) {
        size_t hdr;
        uint64_t body, items;
        if (*pos >= n ||
            weir_mp__head(p + *pos, n - *pos, &hdr, &body, &items) < 0 ||
            hdr > n - *pos || body > n - *pos - hdr)
            return -1;
        *pos += hdr + (size_t)body;
        if (items > n - *pos)
            return -1;
        count += items - 1;
    }
    return 0;
}

/* Whether data[0..n) is exactly one plausible msgpack object (see above). */
static inline int weir_mp_plausible(const void *data, size_t n)
{
    size_t pos = 0;
    return n > 0 && weir_mp__skip(data, n, &pos, 1) == 0 && pos == n;
}

/*
 * A reusable reader: unpacks one value at a time into storage owned by the
 * reader. weir_mp_read() invalidates what the previous call returned.
 */
typedef struct weir_mp_reader {
    msgpack_unpacked unpacked;
} weir_mp_reader;

static inline void weir_mp_reader_init(weir_mp_reader *r)
{
    msgpack_unpacked_init(&r->unpacked);
}
static inline void weir_mp_reader_destroy(weir_mp_reader *r)
{
    msgpack_unpacked_destroy(&r->unpacked);
}

/* Unpacks `data` and returns its root object, or NULL when it is not one
 * valid, plausible msgpack object (see weir_mp_plausible: a value whose
 * containers declare more elements than it has bytes is refused, never
 * allocated for). The object lives until the next call or
 * weir_mp_reader_destroy. */
static inline const msgpack_object *weir_mp_read(weir_mp_reader *r,
                                                 const void *data, size_t len)
{
    size_t off = 0;
    if (!weir_mp_plausible(data, len))
        return NULL;
    if (msgpack_unpack_next(&r->unpacked, (const char *)data, len, &off) !=
        MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return &r->unpacked.data;
}

/* The value of field `name` in map `map`, or NULL when `map` is not a map or
 * has no such field. */
static inline const msgpack_object *weir_mp_find(const msgpack_object *map,
                                                 const char *name)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(name);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, name, n) == 0)
            return &kv->val;
    }
    return NULL;
}

/* Reads an integer (also accepts a float with no fraction). Returns
 * WEIR_ENOTFOUND when absent, WEIR_EINVAL when of another type. */
static inline int weir_mp_as_int(const msgpack_object *o, int64_t *out)
{
    if (!o)
        return WEIR_ENOTFOUND;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return WEIR_EINVAL;
        *out = (int64_t)o->via.u64;
        return WEIR_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = o->via.i64; return WEIR_OK;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (o->via.f64 != (double)(int64_t)o->via.f64)
            return WEIR_EINVAL;
        *out = (int64_t)o->via.f64;
        return WEIR_OK;
    default: return WEIR_EINVAL;
    }
}

/* Reads a number as double (integers convert). */
static inline int weir_mp_as_double(const msgpack_object *o, double *out)
{
    if (!o)
        return WEIR_ENOTFOUND;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; break;
    default: return WEIR_EINVAL;
    }
    return WEIR_OK;
}

/* Reads a string (or bin) without copying: *ptr points into the object. */
static inline int weir_mp_as_str(const msgpack_object *o, const char **ptr,
                                 size_t *len)
{
    if (!o)
        return WEIR_ENOTFOUND;
    if (o->type == MSGPACK_OBJECT_STR) {
        *ptr = o->via.str.ptr;
        *len = o->via.str.size;
        return WEIR_OK;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *ptr = o->via.bin.ptr;
        *len = o->via.bin.size;
        return WEIR_OK;
    }
    return WEIR_EINVAL;
}

/* Field shortcuts: weir_mp_as_*(weir_mp_find(map, name), ...). */
static inline int weir_mp_get_int(const msgpack_object *map, const char *name,
                                  int64_t *out)
{
    return weir_mp_as_int(weir_mp_find(map, name), out);
}
static inline int weir_mp_get_double(const msgpack_object *map,
                                     const char *name, double *out)
{
    return weir_mp_as_double(weir_mp_find(map, name), out);
}
static inline int weir_mp_get_str(const msgpack_object *map, const char *name,
                                  const char **ptr, size_t *len)
{
    return weir_mp_as_str(weir_mp_find(map, name), ptr, len);
}

/*
 * A reusable writer around msgpack_sbuffer. Typical use per record:
 *   weir_mp_writer_reset(&w);
 *   msgpack_pack_map(&w.pk, 2);
 *   weir_mp_pack_str(&w.pk, "user"); weir_mp_pack_strn(&w.pk, k, klen);
 *   weir_mp_pack_str(&w.pk, "count"); msgpack_pack_int64(&w.pk, n);
 *   weir_emit(ctx, 0, k, klen, ts, w.buf.data, w.buf.size);
 * Packing into an sbuffer only fails when memory runs out.
 */
typedef struct weir_mp_writer {
    msgpack_sbuffer buf;
    msgpack_packer pk;
} weir_mp_writer;

static inline void weir_mp_writer_init(weir_mp_writer *w)
{
    msgpack_sbuffer_init(&w->buf);
    msgpack_packer_init(&w->pk, &w->buf, msgpack_sbuffer_write);
}
static inline void weir_mp_writer_reset(weir_mp_writer *w)
{
    w->buf.size = 0;
}
static inline void weir_mp_writer_destroy(weir_mp_writer *w)
{
    msgpack_sbuffer_destroy(&w->buf);
}
static inline int weir_mp_pack_strn(msgpack_packer *pk, const void *s, size_t n)
{
    if (msgpack_pack_str(pk, n) != 0 || msgpack_pack_str_body(pk, s, n) != 0)
        return WEIR_ENOMEM;
    return WEIR_OK;
}
static inline int weir_mp_pack_str(msgpack_packer *pk, const char *s)
{
    return weir_mp_pack_strn(pk, s, strlen(s));
}

#ifdef __cplusplus
}
#endif
#endif /* WEIR_MSGPACK_H */
