/*
 * zmsg.c - see zmsg.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "zmsg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "idwin.h"
#include "mpscan.h"

void zmsg_init(zmsg *m)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < ZMSG_MAX_FRAMES; i++)
        zmq_msg_init(&m->frames[i]);
    weir_mp_reader_init(&m->rd);
    weir_mp_writer_init(&m->w);
}

void zmsg_destroy(zmsg *m)
{
    for (size_t i = 0; i < ZMSG_MAX_FRAMES; i++)
        zmq_msg_close(&m->frames[i]);
    weir_mp_reader_destroy(&m->rd);
    weir_mp_writer_destroy(&m->w);
}

int zmsg_recv(zmsg *m, void *sock)
{
    m->n = 0;
    m->too_many = 0;
    int more = 1;
    while (more) {
        size_t i = m->n < ZMSG_MAX_FRAMES ? m->n : ZMSG_MAX_FRAMES - 1;
        if (zmq_msg_recv(&m->frames[i], sock, m->n ? 0 : ZMQ_DONTWAIT) < 0) {
            if (m->n == 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
            return -1;
        }
        if (m->n < ZMSG_MAX_FRAMES)
            m->n++;
        else
            m->too_many = 1;
        more = zmq_msg_more(&m->frames[i]);
    }
    return 1;
}

static int64_t zmsg_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* Reads the id of the value map (multipart); fails when absent. */
static int zmsg_value_id(zmsg *s, const char *field, const void *val,
                         size_t len, char *why)
{
    const msgpack_object *o = weir_mp_read(&s->rd, val, len);
    if (!o || o->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, JREC_WHY,
                 "the value is not a msgpack map, so it has no "
                 "id field");
        return -1;
    }
    const msgpack_object *v = weir_mp_find(o, field);
    if (!v) {
        snprintf(why, JREC_WHY, "no id field '%s'", field);
        return -1;
    }
    return jrec_as_text(v, "id", field, s->out.buf[1], &s->out.id,
                        &s->out.id_len, why);
}

/* Multipart: frames key, ts, value from `first`. */
static int zmsg_multipart(zmsg *s, size_t first, const char *id_field,
                          zspool_rec *r, char *why)
{
    size_t n = s->n - first;
    if (n == 4) {
        first++; /* a topic frame */
        n--;
    }
    if (n != 3) {
        snprintf(why, JREC_WHY,
                 "%zu frames; format multipart needs key, ts, value (and an "
                 "optional topic before them)",
                 n);
        return -1;
    }
    zmq_msg_t *f = &s->frames[first];
    size_t tsn = zmq_msg_size(&f[1]);
    r->key = zmq_msg_data(&f[0]);
    r->key_len = zmq_msg_size(&f[0]);
    r->ts = WEIR_TS_NONE;
    if (tsn == 8)
        r->ts = zmsg_be64(zmq_msg_data(&f[1]));
    else if (tsn != 0) {
        snprintf(why, JREC_WHY,
                 "the ts frame has %zu bytes; expected 8 (big-endian int64 "
                 "ms) or 0 (no time)",
                 tsn);
        return -1;
    }
    r->value = zmq_msg_data(&f[2]);
    r->value_len = zmq_msg_size(&f[2]);
    if (!mpscan_plausible(r->value, r->value_len)) {
        snprintf(why, JREC_WHY, "the value frame is not one msgpack object");
        return -1;
    }
    s->out.id = NULL;
    s->out.id_len = 0;
    if (id_field && zmsg_value_id(s, id_field, r->value, r->value_len, why) < 0)
        return -1;
    return 0;
}

/* json/msgpack: the last frame. */
static int zmsg_single(zmsg *s, zmsg_format format, const jrec_fields *fields,
                       zspool_rec *r, char *why)
{
    zmq_msg_t *f = &s->frames[s->n - 1];
    const char *p = zmq_msg_data(f);
    size_t n = zmq_msg_size(f);
    if (format == ZMSG_JSON) {
        weir_mp_writer_reset(&s->w);
        if (jrec_json_to_mp(p, n, &s->w.pk, why) < 0)
            return -1;
        r->value = s->w.buf.data;
        r->value_len = s->w.buf.size;
    } else {
        if (!mpscan_plausible(p, n)) {
            snprintf(why, JREC_WHY, "not one msgpack object");
            return -1;
        }
        r->value = p;
        r->value_len = n;
    }
    const msgpack_object *o = weir_mp_read(&s->rd, r->value, r->value_len);
    if (jrec_extract(o, fields, &s->out, why) < 0)
        return -1;
    r->key = s->out.key;
    r->key_len = s->out.key_len;
    r->ts = s->out.ts;
    return 0;
}

int zmsg_record(zmsg *s, size_t first, zmsg_format format,
                const jrec_fields *fields, zspool_rec *r, char *why)
{
    memset(r, 0, sizeof *r);
    if (s->too_many) {
        snprintf(why, JREC_WHY, "more than %d frames", ZMSG_MAX_FRAMES);
        return -1;
    }
    if (s->n <= first) {
        snprintf(why, JREC_WHY, "no payload frame");
        return -1;
    }
    int rc = format == ZMSG_MULTIPART
                 ? zmsg_multipart(s, first, fields->id_field, r, why)
                 : zmsg_single(s, format, fields, r, why);
    if (rc < 0 || !fields->id_field)
        return rc;
    if (s->out.id_len == 0 || s->out.id_len > ZIDW_MAX_ID) {
        snprintf(why, JREC_WHY, "the id field '%s' is %s", fields->id_field,
                 s->out.id_len ? "longer than 255 bytes" : "empty");
        return -1;
    }
    r->id = s->out.id;
    r->id_len = s->out.id_len;
    return 0;
}

int zmsg_last_is(zmsg *s, size_t first, const void *p, size_t n)
{
    if (s->n <= first || s->too_many)
        return 0;
    zmq_msg_t *f = &s->frames[s->n - 1];
    return zmq_msg_size(f) == n && memcmp(zmq_msg_data(f), p, n) == 0;
}
