/*
 * wire.h - the message format on channels (documented in schemas/wire.md).
 *
 * One ZeroMQ message is one frame: a 4-byte header, then a msgpack body.
 *   byte 0: magic 0x57 ('W')    byte 1: version (WIRE_VERSION)
 *   byte 2: type (WIRE_*)       byte 3: flags (WIRE_FLAG_*)
 * DATA:      body = array32 of 3*N items: key (bin), event time (int, or nil
 *            for WEIR_TS_NONE), value (bin); N >= 1.
 * EOS:       body = empty; the producer sends nothing more on the channel.
 * BARRIER:   body = [checkpoint id (uint), trigger time ms (int), flags].
 * WATERMARK: body = watermark (int, ms). With WIRE_FLAG_IDLE the producer
 *            declares itself idle: consumers leave the channel out of their
 *            minimum until it sends data or an active watermark again.
 * A reader refuses an unknown magic or a version other than its own, and a
 * body that does not decode: such a message is a protocol error that fails
 * the job, never data silently dropped.
 *
 * Thread: a wire_batch / wire_reader belongs to one thread.
 */
#ifndef WEIR_HOST_WIRE_H
#define WEIR_HOST_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

#define WIRE_MAGIC       0x57
#define WIRE_VERSION     1
#define WIRE_HEADER_SIZE 4

#define WIRE_FLAG_IDLE 0x1

enum wire_type {
    WIRE_DATA = 1,
    WIRE_EOS = 2,
    WIRE_BARRIER = 3,
    WIRE_WATERMARK = 4
};

/* A batch of records being built for one channel. */
typedef struct wire_batch {
    msgpack_sbuffer buf;
    msgpack_packer pk;
    uint32_t n;        /* records in the batch */
    int64_t opened_ns; /* monotonic time of the first record */
} wire_batch;

void wire_batch_init(wire_batch *b);
void wire_batch_destroy(wire_batch *b);
/* Appends a record (copied). `now_ns` is recorded for the first record of a
 * batch. Returns 0 or WEIR_ENOMEM. */
int wire_batch_add(wire_batch *b, const void *key, size_t key_len, int64_t ts,
                   const void *value, size_t value_len, int64_t now_ns);
/* Finalises the header; the message is then b->buf.data / b->buf.size. */
void wire_batch_seal(wire_batch *b);
/* Empties the batch for reuse (keeps its memory). */
void wire_batch_reset(wire_batch *b);

/* Encodes a control message into `out` (at least 64 bytes); returns its
 * size. `arg` is the watermark for WATERMARK, the checkpoint id for
 * BARRIER, unused for EOS; `arg2` is the BARRIER trigger time, or for
 * WATERMARK nonzero to mark the producer idle. */
size_t wire_encode_control(uint8_t *out, size_t cap, enum wire_type type,
                           int64_t arg, int64_t arg2);

/* A decoded message. For DATA, records are read with wire_next(). */
typedef struct wire_msg {
    enum wire_type type;
    int64_t arg;  /* watermark, or checkpoint id */
    int64_t arg2; /* barrier trigger time */
    int idle;     /* WATERMARK with WIRE_FLAG_IDLE */
    uint32_t n_records;
} wire_msg;

typedef struct wire_reader {
    msgpack_unpacked unpacked;
    const msgpack_object *items;
    uint32_t n_items;
    uint32_t next;
} wire_reader;

void wire_reader_init(wire_reader *r);
void wire_reader_destroy(wire_reader *r);
/* Decodes `data`, which must stay valid while its records are read. Returns
 * 0, or WEIR_EINVAL with a reason in *errptr for a malformed message. */
int wire_parse(wire_reader *r, const void *data, size_t len, wire_msg *msg,
               char **errptr);
/* Fills `rec` with the next record of a DATA message (pointers into the
 * message). Returns 1, 0 at the end, or WEIR_EINVAL for a malformed record. */
int wire_next(wire_reader *r, weir_record *rec);
/* The key of the record `ahead` records after the one wire_next() returns
 * next (0: that one), for prefetching. Returns 1, or 0 when there is no
 * such record or its key is malformed (wire_next() will say so). */
int wire_peek_key(const wire_reader *r, uint32_t ahead, const void **key,
                  size_t *key_len);

#endif
