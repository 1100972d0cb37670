/*
 * spool.h - zmq_source's local log: the messages it accepted, in order, in
 * segment files, so that a source over a transport that cannot replay
 * becomes replayable from checkpoints. Internal to the zmq plugin.
 *
 * Layout of a spool directory D (one per subtask):
 *   D/seg-<n>.log   segments, n = 1, 2, ... with 20 digits, consecutive
 *   D/committed     the mark: the position of the newest completed
 *                   checkpoint (where a run without restore starts)
 *   D/NAME.tmp      being created; deleted by zspool_open()
 * A segment starts with a 24-byte header: "WZSPOOL1", the spool id (u64,
 * random, the same in every segment of the spool) and its number (u64).
 * Records follow, each a u32 payload length, the CRC-32 (IEEE) of the
 * payload and the payload; integers are little endian. Payloads:
 *   'W' u32 n, n x (u16 len, id bytes)  the dedup window when the segment
 *                                       was started (first record of each
 *                                       segment, oldest id first)
 *   'M' u32 klen, key, i64 ts, u32 vlen, value, u16 ilen, id
 *                                       an accepted message (ilen 0: none)
 *   'E'                                 the end of the stream (last record)
 * The mark file is "WZSPMARK", spool id, segment, offset (u64 each) and the
 * CRC-32 of those 32 bytes; it is replaced by rename.
 *
 * Positions are (segment, byte offset of a record in it). The writer
 * appends to the newest segment through a buffer that zspool_flush()
 * writes (and, with sync_always or when asked, fdatasync()s); a segment
 * that would grow beyond `segment_bytes` is closed (fsync) and the next
 * one started through a temporary file and a rename. The reader returns
 * the records from a position on, up to what was flushed.
 *
 * Recovery (zspool_open): leftover temporary files and segments older
 * than the mark are deleted; the newest segment is scanned, a torn or
 * damaged tail (the write a killed worker did not finish) is truncated and
 * logged, and the dedup window is rebuilt from its 'W' record and the ids
 * of its messages, so that it survives restarts and the deletion of old
 * segments; the segment is then fdatasync()ed, since its ids now answer
 * resent messages. A gap in the numbering, a foreign header or a mark of
 * another spool is an error: the directory was changed by hand.
 *
 * Errors: functions return 0 (zspool_next: 1 or 0) or a negative WEIR_E*
 * code after weir_set_error() with the file and the reason. Thread: a
 * zspool belongs to one zmq_source instance and is used from its
 * callbacks only.
 */
#ifndef WEIR_PLUGINS_ZMQ_SPOOL_H
#define WEIR_PLUGINS_ZMQ_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "idwin.h"

#include "weir/weir.h"

#define ZSPOOL_HDR 24u /* segment header bytes */

typedef struct zspool_pos {
    uint64_t seg;
    uint64_t off;
} zspool_pos;

/* A record as zspool_next() returns it. The pointers point into the
 * spool's read buffer and are valid until the next call on the spool. */
typedef struct zspool_rec {
    int end; /* the end-of-stream record: nothing else is set */
    const void *key;
    size_t key_len;
    int64_t ts;
    const void *value;
    size_t value_len;
    const void *id; /* id_len 0: no id */
    size_t id_len;
} zspool_rec;

/* A buffered reader over one segment file. */
typedef struct zspool_cur {
    int fd;
    uint64_t seg;
    uint64_t off; /* offset of the next record */
    char *buf;
    size_t cap;
    uint64_t boff; /* file offset of buf[0] */
    size_t blen;   /* bytes valid in buf */
} zspool_cur;

typedef struct zspool {
    char *dir;
    uint64_t id;
    uint64_t segment_bytes;
    int sync_always;
    uint32_t crc_tab[256];
    uint64_t first, last; /* segments that exist */
    uint64_t *sizes;      /* bytes per segment (the last: flushed) */
    int wfd;              /* the last segment */
    char *wbuf;           /* appended, not yet written */
    size_t wlen, wcap;
    int dirty;         /* written since the last fdatasync */
    int ended;         /* the last record is 'E' */
    uint64_t seg_msgs; /* messages in the last segment */
    zspool_pos mark;   /* the committed position */
    int positioned;    /* the reader was placed */
    zspool_cur rd;     /* the reader */
    zidwin win;        /* cap 0 when there is no deduplication */
    uint64_t dropped;  /* bytes truncated by the recovery */
} zspool;

/* Opens (creating it and its missing parents) or recovers the spool in
 * `dir`. `window` ids are kept for deduplication (0: none). On failure
 * `sp` holds nothing to free. */
int zspool_open(weir_ctx *ctx, zspool *sp, const char *dir,
                uint64_t segment_bytes, int sync_always, uint32_t window);

/* Writes what is buffered and closes the files (no fsync); frees `sp`. */
void zspool_close(zspool *sp);

/* Whether `id` is in the dedup window. */
int zspool_seen(const zspool *sp, const void *id, size_t len);

/* Appends a message (rec->end must be 0) to the buffer, and its id to the
 * window; starts a new segment first when this one is full. */
int zspool_append(weir_ctx *ctx, zspool *sp, const zspool_rec *rec);

/* Appends the end-of-stream record; nothing may be appended after it. */
int zspool_append_end(weir_ctx *ctx, zspool *sp);

/* Writes the buffer; fdatasync()s when `sync` or sync_always. */
int zspool_flush(weir_ctx *ctx, zspool *sp, int sync);

/* Places the reader at `pos`, which must be a record of a segment that
 * still exists (WEIR_EINVAL otherwise, the reason naming the position). */
int zspool_seek(weir_ctx *ctx, zspool *sp, zspool_pos pos);

/* The next message or end record after the reader's position, up to what
 * was flushed: 1 and *rec, or 0 when there is none now. */
int zspool_next(weir_ctx *ctx, zspool *sp, zspool_rec *rec);

/* The reader's position. */
zspool_pos zspool_tell(const zspool *sp);

/* The end of the spool: where the next record will be written, flushed
 * or not (after a roll, the first record position of the new segment). */
zspool_pos zspool_end(const zspool *sp);

/* Makes `pos` the mark (written durably) and deletes the segments before
 * pos.seg. */
int zspool_commit(weir_ctx *ctx, zspool *sp, zspool_pos pos);

/* Bytes from the mark to the end of the spool, buffered ones included. */
uint64_t zspool_behind(const zspool *sp);

/* After an end record that the mark has passed: starts a new segment, with
 * an empty dedup window (a new stream), so that the spool accepts messages
 * again. */
int zspool_reopen(weir_ctx *ctx, zspool *sp);

#endif
