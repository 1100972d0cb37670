/*
 * emerge.c - merges a lookup result into a record value (see enrich.h):
 * the map's entries are copied byte for byte, without unpacking, except
 * the ones under the target field, and the result is appended under it.
 */
#include <string.h>

#include "enrich.h"

/* Whether the msgpack item at p[0..n) is the string field[0..flen). */
static int emerge_key_is(const unsigned char *p, size_t n, const char *field,
                         size_t flen)
{
    size_t hdr;
    uint64_t body, items;
    unsigned c = p[0];
    int is_str =
        (c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb;
    if (!is_str || weir_mp__head(p, n, &hdr, &body, &items) < 0)
        return 0;
    return body == flen && hdr + body <= n && memcmp(p + hdr, field, flen) == 0;
}

int enr_merge(weir_mp_writer *w, const void *value, size_t len,
              const char *field, size_t flen, const void *add, size_t alen)
{
    const unsigned char *p = value;
    size_t hdr, pos;
    uint64_t body, items;
    if (!weir_mp_plausible(value, len) ||
        weir_mp__head(p, len, &hdr, &body, &items) < 0 ||
        !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
        return WEIR_EINVAL;
    uint64_t n = items / 2, keep = 0;
    pos = hdr;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = pos;
        if (weir_mp__skip(p, len, &pos, 2) < 0)
            return WEIR_EINVAL;
        if (!emerge_key_is(p + k, len - k, field, flen))
            keep++;
    }
    if (keep >= UINT32_MAX)
        return WEIR_EINVAL;
    weir_mp_writer_reset(w);
    if (msgpack_pack_map(&w->pk, (uint32_t)keep + 1) != 0)
        return WEIR_ENOMEM;
    pos = hdr;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = pos;
        weir_mp__skip(p, len, &pos, 2);
        if (emerge_key_is(p + k, len - k, field, flen))
            continue;
        if (msgpack_sbuffer_write(&w->buf, (const char *)p + k, pos - k) != 0)
            return WEIR_ENOMEM;
    }
    if (weir_mp_pack_strn(&w->pk, field, flen) != 0 ||
        msgpack_sbuffer_write(&w->buf, add, alen) != 0)
        return WEIR_ENOMEM;
    return WEIR_OK;
}
