/*
 * codec.h - the byte encodings of the state store's RocksDB keys and values
 * (big-endian integers, expiry stamps, order-preserving stamps, varints) and
 * the names of its column families and metadata keys (the layout is in
 * state.h). Shared by the state_*.c files and timers.c, and by host/statetool/,
 * which reads and writes state directories offline and so must follow the same
 * layout. All functions are pure; buffers are the caller's.
 */
#ifndef WEIR_HOST_STATE_CODEC_H
#define WEIR_HOST_STATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define STAMP_NONE INT64_MAX /* expiry stamp of an entry that never expires */
#define STAMP_LEN  8
#define KEY_MAX    65000 /* record key bytes; keeps prefixes in uint16_t */
#define IDX_HDR    (1 + 8 + 2) /* index key: domain, stamp, state id */

#define META_FORMAT_KEY   "weir.format"
#define META_FORMAT       "1"
#define META_STATE_PREFIX "weir.state."
/* A state's metadata value: id (2) | kind (1) | format version (4); records
 * written before format versions existed have the first 3 bytes only (their
 * format version is 0). */
#define META_STATE_LEN    7
#define META_STATE_LEN_V0 3
/* A TTL override ("weir.ttl.<name>", state_admin.h): version (1) | ttl_ms
 * (8) | domain (1) | set_ms (8) | pending (1) | the rewrite's cursor (the
 * last entry key rewritten; only while pending). */
#define META_TTL_PREFIX   "weir.ttl."
#define META_TTL_HDR      19
#define META_TTL_PENDING  18
#define INDEX_CF          "__expiry"
#define STATE_CF_PREFIX   "s."
#define DELTA_MAGIC       "WSD1" /* state_checkpoint_delta() files */

static inline void put_be16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static inline uint16_t get_be16(const char *p)
{
    return (uint16_t)(((unsigned char)p[0] << 8) | (unsigned char)p[1]);
}

static inline void put_be32(char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static inline uint32_t get_be32(const char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

static inline void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t get_be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

static inline void stamp_put(char *p, int64_t s)
{
    put_be64(p, (uint64_t)s);
}

static inline int64_t stamp_get(const char *p)
{
    return (int64_t)get_be64(p);
}

/* Index stamps flip the sign bit so that byte order = numeric order. */
static inline void istamp_put(char *p, int64_t s)
{
    put_be64(p, (uint64_t)s ^ (UINT64_C(1) << 63));
}

static inline int64_t istamp_get(const char *p)
{
    return (int64_t)(get_be64(p) ^ (UINT64_C(1) << 63));
}

static inline size_t varint_put(char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (char)v;
    return n;
}

/* Decodes a varint from p[0..len). Returns the bytes used, or 0 when it is
 * truncated or too long. */
static inline size_t varint_get(const char *p, size_t len, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        r |= (uint64_t)((unsigned char)p[i] & 0x7f) << (7 * i);
        if (!((unsigned char)p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

#endif
