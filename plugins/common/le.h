/*
 * le.h - little-endian fixed-width integers in byte buffers, for the
 * snapshots of the bundled plugins (header-only; plugins include it next to
 * the SDK headers).
 *
 * le_put_*() write exactly 4 or 8 bytes at p, le_get_*() read them; the
 * caller checks that the bytes are there. All functions are pure: no
 * allocation, no global state, any thread.
 */
#ifndef WEIR_PLUGINS_LE_H
#define WEIR_PLUGINS_LE_H

#include <stdint.h>

static inline void le_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline void le_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t le_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t le_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
