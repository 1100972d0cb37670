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

/* Unpacks `data` and returns its root object, or NULL when it is not valid
 * msgpack. The object lives until the next call or weir_mp_reader_destroy. */
static inline const msgpack_object *weir_mp_read(weir_mp_reader *r,
                                                 const void *data, size_t len)
{
    size_t off = 0;
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
