#include "runtime/wire.h"

#include <string.h>

#include "common/err.h"

/* Offset of the array32 header in a DATA message, and its size. */
#define WIRE_ARRAY_OFF WIRE_HEADER_SIZE
#define WIRE_ARRAY_LEN 5

void wire_batch_init(wire_batch *b)
{
    msgpack_sbuffer_init(&b->buf);
    msgpack_packer_init(&b->pk, &b->buf, msgpack_sbuffer_write);
    b->n = 0;
    b->opened_ns = 0;
}

void wire_batch_destroy(wire_batch *b)
{
    msgpack_sbuffer_destroy(&b->buf);
}

void wire_batch_reset(wire_batch *b)
{
    b->buf.size = 0;
    b->n = 0;
    b->opened_ns = 0;
}

/* Writes the frame header and an array32 placeholder patched by seal. */
static int wire_batch_open(wire_batch *b)
{
    static const char head[WIRE_HEADER_SIZE + WIRE_ARRAY_LEN] = {
        WIRE_MAGIC, WIRE_VERSION, WIRE_DATA, 0, (char)0xdd, 0, 0, 0, 0};
    return msgpack_sbuffer_write(&b->buf, head, sizeof head);
}

int wire_batch_add(wire_batch *b, const void *key, size_t key_len, int64_t ts,
                   const void *value, size_t value_len, int64_t now_ns)
{
    if (b->n == 0) {
        if (wire_batch_open(b) != 0)
            return WEIR_ENOMEM;
        b->opened_ns = now_ns;
    }
    msgpack_packer *pk = &b->pk;
    int bad = msgpack_pack_bin(pk, key_len) ||
              msgpack_pack_bin_body(pk, key, key_len) ||
              (ts == WEIR_TS_NONE ? msgpack_pack_nil(pk)
                                  : msgpack_pack_int64(pk, ts)) ||
              msgpack_pack_bin(pk, value_len) ||
              msgpack_pack_bin_body(pk, value, value_len);
    if (bad)
        return WEIR_ENOMEM;
    b->n++;
    return 0;
}

void wire_batch_seal(wire_batch *b)
{
    uint32_t items = b->n * 3;
    unsigned char *p = (unsigned char *)b->buf.data + WIRE_ARRAY_OFF + 1;
    p[0] = (unsigned char)(items >> 24);
    p[1] = (unsigned char)(items >> 16);
    p[2] = (unsigned char)(items >> 8);
    p[3] = (unsigned char)items;
}

/* A packer writing into a fixed buffer, for control messages. */
typedef struct wire_fixed {
    uint8_t *p;
    size_t len, cap;
} wire_fixed;

static int wire_fixed_write(void *data, const char *buf, size_t len)
{
    wire_fixed *f = data;
    if (f->len + len > f->cap)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

size_t wire_encode_control(uint8_t *out, size_t cap, enum wire_type type,
                           int64_t arg, int64_t arg2)
{
    wire_fixed f = {out, WIRE_HEADER_SIZE, cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, wire_fixed_write);
    out[0] = WIRE_MAGIC;
    out[1] = WIRE_VERSION;
    out[2] = (uint8_t)type;
    out[3] = type == WIRE_WATERMARK && arg2 ? WIRE_FLAG_IDLE : 0;
    if (type == WIRE_WATERMARK) {
        msgpack_pack_int64(&pk, arg);
    } else if (type == WIRE_BARRIER) {
        msgpack_pack_array(&pk, 3);
        msgpack_pack_uint64(&pk, (uint64_t)arg);
        msgpack_pack_int64(&pk, arg2);
        msgpack_pack_uint32(&pk, 0);
    }
    return f.len;
}

void wire_reader_init(wire_reader *r)
{
    msgpack_unpacked_init(&r->unpacked);
    r->items = NULL;
    r->n_items = r->next = 0;
}

void wire_reader_destroy(wire_reader *r)
{
    msgpack_unpacked_destroy(&r->unpacked);
}

static int wire_as_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *out = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = o->via.i64;
    else
        return WEIR_EINVAL;
    return 0;
}

static int wire_parse_body(wire_reader *r, const msgpack_object *o,
                           wire_msg *msg)
{
    switch (msg->type) {
    case WIRE_DATA:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size % 3 != 0 ||
            o->via.array.size == 0)
            return WEIR_EINVAL;
        r->items = o->via.array.ptr;
        r->n_items = o->via.array.size;
        msg->n_records = r->n_items / 3;
        return 0;
    case WIRE_WATERMARK: return wire_as_i64(o, &msg->arg);
    case WIRE_BARRIER:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 2)
            return WEIR_EINVAL;
        if (wire_as_i64(&o->via.array.ptr[0], &msg->arg) < 0)
            return WEIR_EINVAL;
        return wire_as_i64(&o->via.array.ptr[1], &msg->arg2);
    default: return WEIR_EINVAL;
    }
}

int wire_parse(wire_reader *r, const void *data, size_t len, wire_msg *msg,
               char **errptr)
{
    const uint8_t *p = data;
    *msg = (wire_msg){0};
    r->items = NULL;
    r->n_items = r->next = 0;
    if (len < WIRE_HEADER_SIZE || p[0] != WIRE_MAGIC)
        return err_set(errptr, WEIR_EINVAL, "not a weir message (bad magic)");
    if (p[1] != WIRE_VERSION)
        return err_set(errptr, WEIR_EINVAL,
                       "wire version %u, this host speaks %u", p[1],
                       WIRE_VERSION);
    msg->type = (enum wire_type)p[2];
    msg->idle = msg->type == WIRE_WATERMARK && (p[3] & WIRE_FLAG_IDLE);
    if (msg->type == WIRE_EOS)
        return len == WIRE_HEADER_SIZE
                   ? 0
                   : err_set(errptr, WEIR_EINVAL, "EOS message with a body");
    if (msg->type < WIRE_DATA || msg->type > WIRE_WATERMARK)
        return err_set(errptr, WEIR_EINVAL, "unknown message type %u", p[2]);
    size_t off = 0;
    if (msgpack_unpack_next(&r->unpacked, (const char *)p + WIRE_HEADER_SIZE,
                            len - WIRE_HEADER_SIZE,
                            &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len - WIRE_HEADER_SIZE ||
        wire_parse_body(r, &r->unpacked.data, msg) < 0)
        return err_set(errptr, WEIR_EINVAL,
                       "malformed body of a type %u message", p[2]);
    return 0;
}

static int wire_as_bytes(const msgpack_object *o, const void **p, size_t *n)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *n = o->via.bin.size;
    } else if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *n = o->via.str.size;
    } else {
        return WEIR_EINVAL;
    }
    return 0;
}

int wire_peek_key(const wire_reader *r, uint32_t ahead, const void **key,
                  size_t *key_len)
{
    uint64_t at = r->next + 3 * (uint64_t)ahead;
    if (at >= r->n_items)
        return 0;
    return wire_as_bytes(&r->items[at], key, key_len) == 0;
}

int wire_next(wire_reader *r, weir_record *rec)
{
    if (r->next >= r->n_items)
        return 0;
    const msgpack_object *it = &r->items[r->next];
    r->next += 3;
    rec->size = sizeof *rec;
    rec->reserved = 0;
    if (wire_as_bytes(&it[0], &rec->key, &rec->key_len) < 0 ||
        wire_as_bytes(&it[2], &rec->value, &rec->value_len) < 0)
        return WEIR_EINVAL;
    if (it[1].type == MSGPACK_OBJECT_NIL)
        rec->ts = WEIR_TS_NONE;
    else if (wire_as_i64(&it[1], &rec->ts) < 0)
        return WEIR_EINVAL;
    return 1;
}
