/*
 * zmsg.h - one message that zmq_source received, as frames, and the record
 * it makes in each format (zsource.c describes the formats; jsonrec.h how
 * fields become key, time and id). Internal to the zmq plugin.
 *
 * Ownership: a zmsg owns its frames and conversion buffers; the pointers of
 * a record that zmsg_record() fills point into them and stay valid until
 * the next zmsg_recv() or zmsg_record(). Thread: one owner. Errors:
 * zmsg_recv() returns -1 with errno set by libzmq; zmsg_record() returns -1
 * with a one-line reason in `why` (JREC_WHY bytes).
 */
#ifndef WEIR_PLUGINS_ZMQ_ZMSG_H
#define WEIR_PLUGINS_ZMQ_ZMSG_H

#include <stddef.h>
#include <zmq.h>

#include "jsonrec.h"
#include "spool.h"

#include "weir/msgpack.h"

#define ZMSG_MAX_FRAMES 8 /* frames kept; a longer message is bad */

typedef enum zmsg_format {
    ZMSG_JSON,
    ZMSG_MSGPACK,
    ZMSG_MULTIPART
} zmsg_format;

typedef struct zmsg {
    zmq_msg_t frames[ZMSG_MAX_FRAMES];
    size_t n;     /* frames received */
    int too_many; /* the message had more than ZMSG_MAX_FRAMES */
    weir_mp_reader rd;
    weir_mp_writer w; /* the value of a JSON message */
    jrec_out out;
} zmsg;

void zmsg_init(zmsg *m);
void zmsg_destroy(zmsg *m);

/* Receives one whole message from `sock` without waiting for its first
 * frame: 1, 0 when none is waiting, or -1. */
int zmsg_recv(zmsg *m, void *sock);

/* The record of the message from frame `first` on (frames before it are a
 * ROUTER envelope). With fields->id_field, r->id is a non-empty id of at
 * most ZIDW_MAX_ID bytes. */
int zmsg_record(zmsg *m, size_t first, zmsg_format format,
                const jrec_fields *fields, zspool_rec *r, char *why);

/* Whether the message has a payload frame after `first` and its last frame
 * is exactly p[0..n). */
int zmsg_last_is(zmsg *m, size_t first, const void *p, size_t n);

#endif
