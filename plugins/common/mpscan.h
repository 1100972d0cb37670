/*
 * mpscan.h - reading msgpack bytes without unpacking them, for the bundled
 * plugins (header-only; plugins include it next to the SDK headers).
 *
 * msgpack-c's unpacker allocates an object tree per value, and for a
 * container it allocates the declared number of elements before it reads
 * them, so a 5-byte value that declares 2^31 elements makes it ask for tens
 * of GiB. These functions walk the bytes instead, with every length checked
 * against the bytes present:
 *   - mpscan_plausible(): is it one complete object whose containers declare
 *     no more elements than bytes remain? (Check before msgpack-c unpacks
 *     bytes from elsewhere; the unpacker then allocates at most a small
 *     multiple of the value's size.)
 *   - mpscan_find_int(): an integer field of the top-level map, without
 *     allocating (a per-record lookup for sinks and pass-through fields).
 * All functions are pure: no allocation, no global state, any thread.
 */
#ifndef WEIR_PLUGINS_MPSCAN_H
#define WEIR_PLUGINS_MPSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weir/msgpack.h"

/* The walkers live in weir/msgpack.h (weir_mp_plausible and its helpers);
 * these names are the bundled plugins' own. */
static inline uint64_t mpscan_be(const unsigned char *p, int n)
{
    return weir_mp__be(p, n);
}

static inline int mpscan_head(const unsigned char *p, size_t n, size_t *hdr,
                              uint64_t *body, uint64_t *items)
{
    return weir_mp__head(p, n, hdr, body, items);
}

static inline int mpscan_skip(const unsigned char *p, size_t n, size_t *pos,
                              uint64_t count)
{
    return weir_mp__skip(p, n, pos, count);
}

static inline int mpscan_plausible(const void *data, size_t n)
{
    return weir_mp_plausible(data, n);
}

/* Reads an integer item that fits int64 at p. */
static inline int mpscan_int(const unsigned char *p, size_t n, int64_t *out)
{
    if (n == 0)
        return -1;
    unsigned c = p[0];
    if (c <= 0x7f || c >= 0xe0) {
        *out = (int8_t)c;
        return 0;
    }
    int len = c == 0xcc || c == 0xd0   ? 1
              : c == 0xcd || c == 0xd1 ? 2
              : c == 0xce || c == 0xd2 ? 4
              : c == 0xcf || c == 0xd3 ? 8
                                       : 0;
    if (!len || n < (size_t)len + 1)
        return -1;
    uint64_t v = mpscan_be(p + 1, len);
    if (c >= 0xd0) { /* signed: extend the sign */
        int bits = 8 * len;
        if (bits < 64 && ((v >> (bits - 1)) & 1))
            v |= ~(uint64_t)0 << bits;
    } else if (v > (uint64_t)INT64_MAX) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* The integer field `name` (name_len bytes) of the top-level map in data:
 * 0, or -1 when data is not a map, has no such field, or the field is not
 * an integer that fits int64. */
static inline int mpscan_find_int(const void *data, size_t n, const char *name,
                                  size_t name_len, int64_t *out)
{
    const unsigned char *p = data;
    size_t pos, hdr;
    uint64_t body, entries, items;
    if (n == 0 || mpscan_head(p, n, &hdr, &body, &entries) < 0 ||
        !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
        return -1;
    pos = hdr;
    for (uint64_t i = 0; i < entries / 2; i++) {
        if (pos >= n || mpscan_head(p + pos, n - pos, &hdr, &body, &items) < 0)
            return -1;
        unsigned c = p[pos];
        int is_str = (c >= 0xa0 && c <= 0xbf) || (c >= 0xd9 && c <= 0xdb);
        if (is_str && body == name_len && hdr <= n - pos &&
            body <= n - pos - hdr && memcmp(p + pos + hdr, name, name_len) == 0)
            return mpscan_int(p + pos + hdr + name_len,
                              n - pos - hdr - name_len, out);
        if (mpscan_skip(p, n, &pos, 2) < 0)
            return -1;
    }
    return -1;
}

#endif
