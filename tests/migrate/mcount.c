/*
 * mcount.c - test operator "mcount" (keyed): a running count per key whose
 * state format changes between builds, to test format_version and
 * migrate_state end to end. Built like any outside plugin (SDK headers
 * only), several times from this one file:
 *
 *   MCOUNT_FORMAT=1          format_version 1: the count as 4 bytes,
 *                            little-endian (uint32).
 *   MCOUNT_FORMAT=2          format_version 2: the count as the msgpack map
 *                            {"n": <uint64>} (12 bytes: fixmap, fixstr "n",
 *                            uint64), and a migrate_state hook that turns
 *                            format 1 entries into format 2.
 *   MCOUNT_MIGRATE=0         (with format 2) no migrate_state hook at all.
 *   MCOUNT_MIGRATE_FAIL=1    (with format 2) the hook fails for the entry of
 *                            key "u7" (after it has migrated others).
 *
 * Three states, so that value, map and list migration are all exercised,
 * every stored number in the build's format:
 *   count   (value) the key's number of records;
 *   parity  (map)   user keys "even" and "odd": the key's number of
 *                   records whose field "i" is even, odd;
 *   first   (list)  the field "i" of the key's first three records, in
 *                   their order.
 * For every record the key's count goes up by one and the operator emits
 * (key, ts, msgpack {"key": <key>, "count": <new count>}), as the bundled
 * count does, so a file_sink shows every count once. A stored value that is
 * not in the build's own format fails the subtask: a restore that skipped
 * the migration cannot go unnoticed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

#ifndef MCOUNT_FORMAT
#define MCOUNT_FORMAT 1
#endif
#ifndef MCOUNT_MIGRATE
#define MCOUNT_MIGRATE (MCOUNT_FORMAT > 1)
#endif
#ifndef MCOUNT_MIGRATE_FAIL
#define MCOUNT_MIGRATE_FAIL 0
#endif

#define MCOUNT_FIRST 3 /* elements kept in the list state "first" */

typedef struct mcount {
    weir_state *counts; /* value state "count" */
    weir_state *parity; /* map state "parity" */
    weir_state *first;  /* list state "first" */
    weir_mp_writer w;
    weir_mp_reader r;
} mcount;

/* ------------------------------------------------------------------------ */
/* The two encodings                                                         */
/* ------------------------------------------------------------------------ */

#define MCOUNT_V2_LEN 12

/* Format 1: 4 bytes little-endian. Returns 0, or -1 for other bytes. */
static int mcount_decode_v1(const void *v, size_t len, uint64_t *n)
{
    const unsigned char *p = v;
    if (len != 4)
        return -1;
    *n = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
         (uint64_t)p[3] << 24;
    return 0;
}

/* Format 2: msgpack {"n": uint64}. Returns 0, or -1 for other bytes. */
static int mcount_decode_v2(const void *v, size_t len, uint64_t *n)
{
    const unsigned char *p = v;
    if (len != MCOUNT_V2_LEN || p[0] != 0x81 || p[1] != 0xa1 || p[2] != 'n' ||
        p[3] != 0xcf)
        return -1;
    uint64_t u = 0;
    for (int i = 4; i < MCOUNT_V2_LEN; i++)
        u = u << 8 | p[i];
    *n = u;
    return 0;
}

static void mcount_encode_v2(unsigned char *buf, uint64_t n)
{
    buf[0] = 0x81; /* map of 1 */
    buf[1] = 0xa1; /* str of 1 */
    buf[2] = 'n';
    buf[3] = 0xcf; /* uint64, big-endian */
    for (int i = MCOUNT_V2_LEN - 1; i >= 4; i--, n >>= 8)
        buf[i] = (unsigned char)n;
}

/* A stored number in this build's format. */
static int mcount_decode(weir_ctx *ctx, const void *v, size_t len, uint64_t *n)
{
    int rc = MCOUNT_FORMAT == 1 ? mcount_decode_v1(v, len, n)
                                : mcount_decode_v2(v, len, n);
    if (rc < 0)
        return weir_set_error(ctx,
                              "mcount: a stored number (%zu bytes) is not "
                              "in format %d",
                              len, MCOUNT_FORMAT);
    return WEIR_OK;
}

/* Encodes n in this build's format into buf; returns the length. */
static size_t mcount_encode(unsigned char *buf, uint64_t n)
{
    if (MCOUNT_FORMAT == 1) {
        for (int i = 0; i < 4; i++, n >>= 8)
            buf[i] = (unsigned char)n;
        return 4;
    }
    mcount_encode_v2(buf, n);
    return MCOUNT_V2_LEN;
}

/* A number of the current key: the value state (ukey NULL) or the map
 * entry `ukey`; 0 when it has none. */
static int mcount_load(weir_ctx *ctx, weir_state *st, const char *ukey,
                       uint64_t *n)
{
    const void *v;
    size_t len;
    *n = 0;
    int rc = ukey ? weir_map_get(ctx, st, ukey, strlen(ukey), &v, &len)
                  : weir_value_get(ctx, st, &v, &len);
    if (rc == WEIR_ENOTFOUND)
        return WEIR_OK;
    return rc < 0 ? rc : mcount_decode(ctx, v, len, n);
}

static int mcount_store(weir_ctx *ctx, weir_state *st, const char *ukey,
                        uint64_t n)
{
    unsigned char buf[MCOUNT_V2_LEN];
    size_t len = mcount_encode(buf, n);
    return ukey ? weir_map_put(ctx, st, ukey, strlen(ukey), buf, len)
                : weir_value_put(ctx, st, buf, len);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int mcount_process(weir_ctx *ctx, void *self, const weir_record *rec,
                          uint32_t port)
{
    mcount *c = self;
    (void)port;
    int64_t i = 0;
    const msgpack_object *o = weir_mp_read(&c->r, rec->value, rec->value_len);
    if (!o || weir_mp_get_int(o, "i", &i) != WEIR_OK || i < 0)
        return weir_set_error(ctx, "mcount: a record without an integer "
                                   "field \"i\"");
    uint64_t n = 0, half = 0;
    const char *par = i % 2 ? "odd" : "even";
    int rc = mcount_load(ctx, c->counts, NULL, &n);
    if (rc < 0 || (rc = mcount_store(ctx, c->counts, NULL, n + 1)) < 0 ||
        (rc = mcount_load(ctx, c->parity, par, &half)) < 0 ||
        (rc = mcount_store(ctx, c->parity, par, half + 1)) < 0)
        return rc;
    if (n < MCOUNT_FIRST) {
        unsigned char buf[MCOUNT_V2_LEN];
        size_t len = mcount_encode(buf, (uint64_t)i);
        if ((rc = weir_list_add(ctx, c->first, buf, len)) < 0)
            return rc;
    }
    n++;
    msgpack_packer *pk = &c->w.pk;
    weir_mp_writer_reset(&c->w);
    if (msgpack_pack_map(pk, 2) != 0 || weir_mp_pack_str(pk, "key") != 0 ||
        weir_mp_pack_strn(pk, rec->key_len ? rec->key : "", rec->key_len) !=
            0 ||
        weir_mp_pack_str(pk, "count") != 0 || msgpack_pack_uint64(pk, n) != 0)
        return weir_set_error(ctx, "mcount: out of memory packing a record");
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, c->w.buf.data,
                     c->w.buf.size);
}

#if MCOUNT_FORMAT > 1 && MCOUNT_MIGRATE
/* Called by the host once per restored entry written under another
 * format_version, with the entry's key current and the old entry already
 * removed: writes the entry again in format 2. */
static int mcount_migrate(weir_ctx *ctx, void *self, weir_state *state,
                          uint32_t from_version, const void *ukey,
                          size_t ukey_len, const void *value, size_t value_len)
{
    mcount *c = self;
    uint64_t n = 0;
    if (from_version != 1)
        return weir_set_error(ctx, "mcount: cannot migrate from format %u",
                              from_version);
    if (mcount_decode_v1(value, value_len, &n) < 0)
        return weir_set_error(ctx,
                              "mcount: a format 1 number has %zu bytes, "
                              "not 4",
                              value_len);
#if MCOUNT_MIGRATE_FAIL
    const void *key;
    size_t key_len;
    if (weir_current_key(ctx, &key, &key_len) == WEIR_OK && key_len == 2 &&
        memcmp(key, "u7", 2) == 0)
        return weir_set_error(ctx, "mcount: refusing to migrate key 'u7'");
#endif
    unsigned char buf[MCOUNT_V2_LEN];
    mcount_encode_v2(buf, n);
    if (state == c->parity)
        return weir_map_put(ctx, state, ukey, ukey_len, buf, sizeof buf);
    if (state == c->first)
        return weir_list_add(ctx, state, buf, sizeof buf); /* in order */
    return weir_value_put(ctx, state, buf, sizeof buf);
}
#endif

static void mcount_close(weir_ctx *ctx, void *self)
{
    mcount *c = self;
    (void)ctx;
    if (!c)
        return;
    weir_mp_writer_destroy(&c->w);
    weir_mp_reader_destroy(&c->r);
    free(c);
}

/* Declares one state in this build's format. */
static int mcount_declare(weir_ctx *ctx, const char *name, weir_state_kind kind,
                          weir_state **out)
{
    weir_state_desc d = {
        .size = sizeof d,
        .kind = kind,
        .name = name,
        .ttl_ms = WEIR_TTL_NONE,
        .format_version = MCOUNT_FORMAT,
    };
    int rc = weir_state_declare(ctx, &d, out);
    if (rc < 0)
        weir_set_error(ctx, "mcount: declaring state %s: %s", name,
                       weir_strerror(rc));
    return rc;
}

static int mcount_open(weir_ctx *ctx, void **self)
{
    mcount *c = calloc(1, sizeof *c);
    if (!c)
        return weir_set_error(ctx, "mcount: out of memory");
    weir_mp_writer_init(&c->w);
    weir_mp_reader_init(&c->r);
    int rc = mcount_declare(ctx, "count", WEIR_STATE_VALUE, &c->counts);
    if (rc == 0)
        rc = mcount_declare(ctx, "parity", WEIR_STATE_MAP, &c->parity);
    if (rc == 0)
        rc = mcount_declare(ctx, "first", WEIR_STATE_LIST, &c->first);
    if (rc < 0) {
        mcount_close(ctx, c);
        return rc;
    }
    *self = c;
    return WEIR_OK;
}

#define MCOUNT_STR2(x) #x
#define MCOUNT_STR(x)  MCOUNT_STR2(x)

static const weir_operator mcount_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "mcount",
    .version = MCOUNT_STR(MCOUNT_FORMAT) ".0.0",
    .description =
        "running count per key, state format " MCOUNT_STR(MCOUNT_FORMAT),
    .open = mcount_open,
    .process = mcount_process,
    .close = mcount_close,
#if MCOUNT_FORMAT > 1 && MCOUNT_MIGRATE
    .migrate_state = mcount_migrate,
#endif
};

static const weir_operator *const mcount_ops[] = {&mcount_op, NULL};

static const weir_plugin mcount_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "mcount",
    .version = MCOUNT_STR(MCOUNT_FORMAT) ".0.0",
    .description = "count per key with a versioned state format",
    .operators = mcount_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &mcount_plugin;
}
