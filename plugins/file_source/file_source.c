/*
 * file_source.c - operator "file_source": reads a file of JSON lines and
 * emits one record per JSON object.
 *
 * Record of a line:
 *   key   = the value of key_field: a string as its bytes, a number as its
 *           decimal text (integers exactly, reals in the shortest form that
 *           reads back to the same double);
 *   ts    = the value of time_field: integer milliseconds (a real without
 *           fraction is accepted), or an ISO-8601 timestamp string
 *           "YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm|-hh:mm]" (no zone means UTC;
 *           digits after the milliseconds are truncated); WEIR_TS_NONE when
 *           time_field is not set;
 *   value = the whole object as a msgpack map, key order kept: objects ->
 *           maps, arrays -> arrays, integers -> int, reals -> float64,
 *           strings -> str, true/false -> bool, null -> nil.
 *
 * Lines are numbered from 1; "\n" ends a line and a "\r" before it is
 * dropped, as is a UTF-8 byte order mark at the start of the file. With
 * parallelism P, subtask i handles the lines whose (number - 1) % P == i, and
 * every subtask reads the whole file. Empty and whitespace-only lines are
 * skipped silently. A bad line (not JSON, not an object, missing or ill-typed
 * key or time field, nested deeper than 32 levels, which is msgpack-c's
 * unpacking limit) is skipped and logged as a warning "file_source: FILE:LINE:
 * reason" for the first 10 of a subtask, with a count at finish(); with
 * on_error=fail the first one fails the subtask with that message instead.
 *
 * A line longer than max_line_bytes (bytes before its "\n", a "\r" included)
 * is a bad line like the others, reported as "line of N bytes is longer than
 * max_line_bytes (M)". The reader holds at most max_line_bytes of a line and
 * skips the rest to the next "\n" without keeping it, so memory stays within
 * max_line_bytes plus a 64 KiB read buffer however long a line is; lines of
 * other subtasks are skipped without being held at all. A poll reads at most
 * 4 MiB from the file and continues a line where the previous one stopped,
 * so a poll ends soon even inside a long line.
 *
 * path must be a regular file: a FIFO, a character or block device is
 * refused with its type (open() does not block on a FIFO without writer),
 * unless allow_non_regular is true; a directory and a socket always are.
 * With allow_non_regular, such a file needs parallelism 1 (subtasks would
 * read different parts of it) and is read without blocking: no data now is
 * WEIR_EAGAIN; on a FIFO, no writer yet is also WEIR_EAGAIN, and the end is
 * the last writer closing it (Linux reports POLLHUP only after a writer came
 * and left). It cannot be replayed: restore() of a snapshot taken after
 * anything was read (offset > 0) fails, naming the path and the offset,
 * instead of reading the input again from wherever it now is.
 *
 * Snapshot (version 1, 24 bytes, little endian): the byte offset (u64) and
 * the number (u64) of the last line consumed, and the bad lines counted so
 * far (u64); the offset is exact after a skipped long line, and a snapshot
 * taken inside a line points at its start. restore() seeks to the offset and
 * checks that it still starts a line. Every subtask reads every line, so
 * snapshots of different subtasks differ only in where they stopped.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>

#include "jsonrec.h"
#include "jsonscan.h"
#include "le.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define FSRC_MAX_BATCH        65536
#define FSRC_MAX_DEPTH        32 /* msgpack-c unpacks at most 32 nested levels */
#define FSRC_LOG_LIMIT        10      /* bad lines logged per subtask */
#define FSRC_KEEP_BUF         4194304 /* a larger line buffer is freed after use */
#define FSRC_READ_BUF         65536   /* bytes per read() */
#define FSRC_POLL_BYTES       4194304 /* bytes read per poll at most */
#define FSRC_MIN_LINE         1024
#define FSRC_MAX_LINE         1073741824
#define FSRC_SNAPSHOT_VERSION 1
#define FSRC_SNAPSHOT_LEN     24
#define FSRC_WHY              320

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def fsrc_p_path = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "path",
    .type = WEIR_PARAM_STRING,
    .description = "file of JSON lines to read (relative to the working "
                   "directory of weir)"};
static const weir_param_def fsrc_p_key_field = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "key_field",
    .type = WEIR_PARAM_STRING,
    .description = "top-level field whose value (string, or number as "
                   "decimal text) becomes the record key"};
static const weir_param_def fsrc_p_time_field = {
    .size = sizeof(weir_param_def),
    .name = "time_field",
    .type = WEIR_PARAM_STRING,
    .description = "top-level field with the event time: integer ms or "
                   "ISO-8601 (2026-01-01T00:00:00.000Z); unset = no time"};
static const weir_param_def fsrc_p_batch = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "batch",
    .type = WEIR_PARAM_INT,
    .default_value = "1024",
    .min = 1,
    .max = FSRC_MAX_BATCH,
    .description = "lines of this subtask handled per poll at most"};
static const char *const fsrc_on_error_choices[] = {"skip", "fail", NULL};
static const weir_param_def fsrc_p_on_error = {
    .size = sizeof(weir_param_def),
    .name = "on_error",
    .type = WEIR_PARAM_ENUM,
    .default_value = "skip",
    .choices = fsrc_on_error_choices,
    .description = "bad line: skip (log FILE:LINE and count it) or fail the "
                   "job"};

static const weir_param_def fsrc_p_rate = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "rate",
    .type = WEIR_PARAM_INT,
    .default_value = "0",
    .min = 0,
    .description = "lines per second over all subtasks, to replay old data "
                   "at a given speed; 0 = as fast as possible"};

static const weir_param_def fsrc_p_max_line = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "max_line_bytes",
    .type = WEIR_PARAM_SIZE,
    .default_value = "16MiB",
    .min = FSRC_MIN_LINE,
    .max = FSRC_MAX_LINE,
    .description = "a longer line (bytes before its newline) is a bad line "
                   "(see on_error), skipped without being held in memory"};

static const weir_param_def fsrc_p_allow_non_regular = {
    .size = sizeof(weir_param_def),
    .name = "allow_non_regular",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "also read a FIFO (until its last writer closes it) or a "
                   "device; parallelism 1; not replayable from a checkpoint"};

static const weir_param_def *const fsrc_params[] = {
    &fsrc_p_path,     &fsrc_p_key_field,         &fsrc_p_time_field,
    &fsrc_p_batch,    &fsrc_p_on_error,          &fsrc_p_rate,
    &fsrc_p_max_line, &fsrc_p_allow_non_regular, NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fsrc {
    char *path;      /* NUL-terminated copy */
    char *key_field; /* copy; key_field_len bytes */
    size_t key_field_len;
    char *time_field; /* copy, or NULL when unset */
    size_t time_field_len;
    uint32_t batch;
    int fail_on_error;
    int64_t rate;   /* lines/s over all subtasks; 0 = unpaced */
    int64_t t0;     /* when pacing started (weir_now ms) */
    uint64_t paced; /* lines of this subtask handled since t0 */
    uint32_t sub;
    uint32_t par;
    uint64_t max_line; /* max_line_bytes */
    int allow_non_regular;
    int fd;       /* the file, or -1 */
    mode_t mode;  /* its type, from fstat() */
    int seekable; /* a regular file: restore() can seek */
    int fifo;     /* read() == 0 is the end only after a writer hung up */
    char *rbuf;   /* FSRC_READ_BUF bytes read ahead */
    size_t rpos;  /* next unread byte of rbuf */
    size_t rlen;  /* bytes in rbuf */
    int read_eof; /* read() reported the end of the input */
    char *line;   /* the bytes of the current line held so far */
    size_t len;
    size_t cap;
    uint64_t cur;    /* bytes of the current line before its "\n" seen so far */
    int too_long;    /* the current line is longer than max_line: not held */
    int nl;          /* the line just read ended with "\n" (not at the end) */
    uint64_t offset; /* bytes consumed */
    uint64_t line_no;        /* lines consumed */
    uint64_t bad;            /* bad lines of this subtask */
    uint64_t records;        /* records emitted */
    weir_metric *bad_metric; /* counter of bad lines, or NULL */
    int at_eof;
    weir_mp_writer w;
    char keybuf[40]; /* decimal text of a numeric key */
} fsrc;

/* ------------------------------------------------------------------------ */
/* One line                                                                  */
/* ------------------------------------------------------------------------ */

/* The record key from the key field; fills why[] and returns -1 when the
 * field is missing or of the wrong type. */
static int fsrc_key(fsrc *s, json_t *obj, const char **key, size_t *len,
                    char *why)
{
    json_t *v = json_object_getn(obj, s->key_field, s->key_field_len);
    if (!v) {
        snprintf(why, FSRC_WHY, "no key field '%.*s'", (int)s->key_field_len,
                 s->key_field);
        return -1;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        *key = json_string_value(v);
        *len = json_string_length(v);
        return 0;
    case JSON_INTEGER:
        snprintf(s->keybuf, sizeof s->keybuf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        break;
    case JSON_REAL:
        jrec_format_real(s->keybuf, sizeof s->keybuf, json_real_value(v));
        break;
    default:
        snprintf(why, FSRC_WHY,
                 "key field '%.*s' is %s; expected a string or a number",
                 (int)s->key_field_len, s->key_field, jrec_json_type(v));
        return -1;
    }
    *key = s->keybuf;
    *len = strlen(s->keybuf);
    return 0;
}

/* The event time from the time field, or WEIR_TS_NONE without one. */
static int fsrc_time(const fsrc *s, json_t *obj, int64_t *ts, char *why)
{
    *ts = WEIR_TS_NONE;
    if (!s->time_field)
        return 0;
    int n = (int)s->time_field_len;
    json_t *v = json_object_getn(obj, s->time_field, s->time_field_len);
    if (!v) {
        snprintf(why, FSRC_WHY, "no time field '%.*s'", n, s->time_field);
        return -1;
    }
    if (json_is_integer(v)) {
        *ts = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -0x1.0p63 && d < 0x1.0p63) || d != (double)(int64_t)d) {
            snprintf(why, FSRC_WHY,
                     "time field '%.*s' is %.17g; expected integer "
                     "milliseconds",
                     n, s->time_field, d);
            return -1;
        }
        *ts = (int64_t)d;
    } else if (json_is_string(v)) {
        const char *t = json_string_value(v);
        size_t tl = json_string_length(v);
        if (jrec_parse_time(t, tl, ts) < 0) {
            snprintf(why, FSRC_WHY,
                     "time field '%.*s' is \"%.*s%s\", not an ISO-8601 "
                     "timestamp YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm]",
                     n, s->time_field, tl > 40 ? 40 : (int)tl, t,
                     tl > 40 ? "..." : "");
            return -1;
        }
    } else {
        snprintf(why, FSRC_WHY,
                 "time field '%.*s' is %s; expected integer milliseconds or "
                 "an ISO-8601 string",
                 n, s->time_field, jrec_json_type(v));
        return -1;
    }
    if (*ts == WEIR_TS_NONE) {
        snprintf(why, FSRC_WHY,
                 "time field '%.*s' is %lld, which means 'no event time'", n,
                 s->time_field, (long long)*ts);
        return -1;
    }
    return 0;
}

/* A bad line: fail with on_error=fail, else count it and log the first few. */
static int fsrc_bad(weir_ctx *ctx, fsrc *s, const char *why)
{
    s->bad++;
    weir_counter_add(ctx, s->bad_metric, 1);
    if (s->fail_on_error) {
        weir_set_error(ctx, "file_source: %s:%llu: %s", s->path,
                       (unsigned long long)s->line_no, why);
        return WEIR_EINVAL;
    }
    if (s->bad <= FSRC_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN, "file_source: %s:%llu: %s; line skipped%s",
                 s->path, (unsigned long long)s->line_no, why,
                 s->bad == FSRC_LOG_LIMIT
                     ? " (further bad lines are counted, not logged)"
                     : "");
    return WEIR_OK;
}

static int fsrc_is_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\f' &&
            p[i] != '\v')
            return 0;
    return 1;
}

/* Emits the record of the line just packed into s->w. */
static int fsrc_emit(weir_ctx *ctx, fsrc *s, const char *key, size_t key_len,
                     int64_t ts)
{
    int rc = weir_emit(ctx, 0, key, key_len, ts, s->w.buf.data, s->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "file_source: %s:%llu: emit failed: %s", s->path,
                       (unsigned long long)s->line_no, weir_strerror(rc));
    else
        s->records++;
    return rc;
}

/* The fast path of a line (jsonscan.h): returns 1 when it emitted the
 * record, *rc being the result, or 0 when the line needs the full parser
 * (outside the subset, or a key or time field that is missing, ill-typed
 * or bad: the full parser then reports it). */
static int fsrc_fast(weir_ctx *ctx, fsrc *s, const char *p, size_t len, int *rc)
{
    jscan_field f[2] = {{.name = s->key_field, .name_len = s->key_field_len},
                        {.name = s->time_field, .name_len = s->time_field_len}};
    weir_mp_writer_reset(&s->w);
    if (!jscan_json_to_mp(p, len, &s->w, f, 2))
        return 0;
    const char *key = s->keybuf;
    size_t key_len;
    switch (f[0].type) {
    case JSCAN_STR:
        key = f[0].s;
        key_len = f[0].len;
        break;
    case JSCAN_INT:
        snprintf(s->keybuf, sizeof s->keybuf, "%" PRId64, f[0].i);
        key_len = strlen(s->keybuf);
        break;
    case JSCAN_REAL:
        jrec_format_real(s->keybuf, sizeof s->keybuf, f[0].d);
        key_len = strlen(s->keybuf);
        break;
    default: return 0;
    }
    int64_t ts = WEIR_TS_NONE;
    if (s->time_field) {
        switch (f[1].type) {
        case JSCAN_INT: ts = f[1].i; break;
        case JSCAN_REAL:
            if (!(f[1].d >= -0x1.0p63 && f[1].d < 0x1.0p63) ||
                f[1].d != (double)(int64_t)f[1].d)
                return 0;
            ts = (int64_t)f[1].d;
            break;
        case JSCAN_STR:
            if (jrec_parse_time(f[1].s, f[1].len, &ts) < 0)
                return 0;
            break;
        default: return 0;
        }
        if (ts == WEIR_TS_NONE)
            return 0;
    }
    *rc = fsrc_emit(ctx, s, key, key_len, ts);
    return 1;
}

/* Converts and emits line s->line_no (len bytes without its "\n"). */
static int fsrc_line(weir_ctx *ctx, fsrc *s, const char *p, size_t len)
{
    char why[FSRC_WHY];
    json_error_t jerr;
    if (fsrc_is_blank(p, len))
        return WEIR_OK;
    int rc;
    if (fsrc_fast(ctx, s, p, len, &rc))
        return rc;
    json_t *obj = json_loadb(p, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!obj) {
        snprintf(why, sizeof why, "invalid JSON at column %d: %s", jerr.column,
                 jerr.text);
        return fsrc_bad(ctx, s, why);
    }
    const char *key = NULL;
    size_t key_len = 0;
    int64_t ts;
    if (!json_is_object(obj)) {
        snprintf(why, sizeof why, "the line is %s, not a JSON object",
                 jrec_json_type(obj));
        rc = fsrc_bad(ctx, s, why);
        goto out;
    }
    if (fsrc_key(s, obj, &key, &key_len, why) < 0 ||
        fsrc_time(s, obj, &ts, why) < 0) {
        rc = fsrc_bad(ctx, s, why);
        goto out;
    }
    weir_mp_writer_reset(&s->w);
    rc = jrec_pack_json(&s->w.pk, obj, 0);
    if (rc == WEIR_EINVAL) {
        snprintf(why, sizeof why, "nested deeper than %d levels",
                 FSRC_MAX_DEPTH);
        rc = fsrc_bad(ctx, s, why);
        goto out;
    }
    if (rc < 0) {
        weir_set_error(ctx, "file_source: %s:%llu: out of memory", s->path,
                       (unsigned long long)s->line_no);
        goto out;
    }
    rc = fsrc_emit(ctx, s, key, key_len, ts);
out:
    json_decref(obj);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading lines                                                             */
/* ------------------------------------------------------------------------ */

#define FSRC_LINE   1 /* a line ended */
#define FSRC_AGAIN  2 /* the input has nothing now */
#define FSRC_BUDGET 3 /* this poll read its share of bytes */

/* Whether the last writer of the FIFO closed it. Linux sets POLLHUP on the
 * read end only after a writer came and left, never before the first one,
 * which tells the end from "no writer yet". */
static int fsrc_hung_up(const fsrc *s)
{
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP) &&
           !(p.revents & POLLIN);
}

/* Refills the read buffer. Returns 1 with bytes in it, 0 at the end of the
 * input, FSRC_AGAIN when a non-blocking input has nothing now, or WEIR_EIO
 * after set_error. */
static int fsrc_fill(weir_ctx *ctx, fsrc *s)
{
    for (;;) {
        ssize_t n = read(s->fd, s->rbuf, FSRC_READ_BUF);
        if (n > 0) {
            s->rpos = 0;
            s->rlen = (size_t)n;
            return 1;
        }
        if (n == 0)
            return s->fifo && !fsrc_hung_up(s) ? FSRC_AGAIN : 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return FSRC_AGAIN;
        weir_set_error(ctx, "file_source: %s: read error after line %llu: %s",
                       s->path, (unsigned long long)s->line_no,
                       strerror(errno));
        return WEIR_EIO;
    }
}

/* Appends n bytes to the held line; the caller checked max_line. */
static int fsrc_hold(weir_ctx *ctx, fsrc *s, const char *p, size_t n)
{
    if (n == 0)
        return WEIR_OK;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        if (cap > s->max_line)
            cap = (size_t)s->max_line;
        char *line = realloc(s->line, cap);
        if (!line) {
            weir_set_error(ctx, "file_source: %s:%llu: out of memory", s->path,
                           (unsigned long long)s->line_no + 1);
            return WEIR_ENOMEM;
        }
        s->line = line;
        s->cap = cap;
    }
    memcpy(s->line + s->len, p, n);
    s->len += n;
    return WEIR_OK;
}

/* Reads on to the end of the current line, holding its bytes in s->line
 * when `hold` and while it is within max_line (else s->too_long). Returns
 * FSRC_LINE when it ended (at a "\n", s->nl, or at the end of the input
 * after at least one byte), 0 at the end of the input, FSRC_AGAIN or
 * FSRC_BUDGET (*budget, the bytes this poll may still read, is 0) to be
 * continued by the next call, or WEIR_EIO or WEIR_ENOMEM after set_error. */
static int fsrc_read_line(weir_ctx *ctx, fsrc *s, int hold, size_t *budget)
{
    for (;;) {
        if (s->rpos == s->rlen) {
            if (!s->read_eof && *budget == 0)
                return FSRC_BUDGET;
            int rc = s->read_eof ? 0 : fsrc_fill(ctx, s);
            if (rc < 0 || rc == FSRC_AGAIN)
                return rc;
            if (rc == 0) {
                s->read_eof = 1;
                s->nl = 0;
                return s->cur ? FSRC_LINE : 0;
            }
            *budget -= s->rlen < *budget ? s->rlen : *budget;
        }
        const char *p = s->rbuf + s->rpos;
        size_t avail = s->rlen - s->rpos;
        const char *nl = memchr(p, '\n', avail);
        size_t take = nl ? (size_t)(nl - p) : avail;
        if (hold && !s->too_long) {
            if (s->cur + take > s->max_line)
                s->too_long = 1;
            else if (fsrc_hold(ctx, s, p, take) < 0)
                return WEIR_ENOMEM;
        }
        s->cur += take;
        s->rpos += take + (nl != NULL);
        if (nl) {
            s->nl = 1;
            return FSRC_LINE;
        }
    }
}

/* Forgets the current line (a large buffer too). */
static void fsrc_next_line(fsrc *s)
{
    s->cur = 0;
    s->len = 0;
    s->too_long = 0;
    if (s->cap > FSRC_KEEP_BUF) {
        free(s->line);
        s->line = NULL;
        s->cap = 0;
    }
}

/* Handles line s->line_no of this subtask, which started at byte `start`. */
static int fsrc_take_line(weir_ctx *ctx, fsrc *s, uint64_t start)
{
    if (s->too_long) {
        char why[FSRC_WHY];
        snprintf(why, sizeof why,
                 "line of %llu bytes is longer than max_line_bytes (%llu)",
                 (unsigned long long)s->cur, (unsigned long long)s->max_line);
        return fsrc_bad(ctx, s, why);
    }
    size_t len = s->len, skip = 0;
    if (len == 0)
        return WEIR_OK; /* empty lines are skipped silently */
    if (s->line[len - 1] == '\r')
        len--;
    if (start == 0 && len >= 3 && memcmp(s->line, "\xef\xbb\xbf", 3) == 0)
        skip = 3; /* a UTF-8 byte order mark starts the file */
    return fsrc_line(ctx, s, s->line + skip, len - skip);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int fsrc_poll(weir_ctx *ctx, void *self)
{
    fsrc *s = self;
    if (s->at_eof)
        return WEIR_EOF;
    /* Bounded work per poll: `batch` lines of this subtask, and the other
     * subtasks' lines between them, and FSRC_POLL_BYTES read. */
    uint64_t want = s->batch;
    if (s->rate) {
        int64_t now = weir_now(ctx);
        if (!s->t0)
            s->t0 = now;
        double allowed = (double)(now - s->t0) * (double)s->rate /
                             (1000.0 * (double)s->par) -
                         (double)s->paced;
        if (allowed < 1)
            return WEIR_EAGAIN;
        if (allowed < (double)want)
            want = (uint64_t)allowed;
    }
    uint64_t mine = 0, scanned = 0, limit = want * s->par;
    size_t budget = FSRC_POLL_BYTES;
    while (mine < want && scanned < limit) {
        int hold = s->line_no % s->par == s->sub;
        int rc = fsrc_read_line(ctx, s, hold, &budget);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            s->at_eof = 1;
            /* Records emitted in this call are delivered; EOF comes next. */
            return scanned ? WEIR_OK : WEIR_EOF;
        }
        if (rc == FSRC_AGAIN)
            return scanned ? WEIR_OK : WEIR_EAGAIN;
        if (rc == FSRC_BUDGET)
            return WEIR_OK;
        uint64_t start = s->offset;
        scanned++;
        s->offset += s->cur + (uint64_t)s->nl;
        s->line_no++;
        if (hold) {
            mine++;
            s->paced++;
            rc = fsrc_take_line(ctx, s, start);
        }
        fsrc_next_line(s);
        if (rc < 0)
            return rc;
    }
    return WEIR_OK;
}

static int fsrc_finish(weir_ctx *ctx, void *self)
{
    fsrc *s = self;
    if (s->bad)
        weir_log(ctx, WEIR_LOG_WARN,
                 "file_source: %s: subtask %u skipped %llu bad line(s) (the "
                 "first %d are logged above) and emitted %llu record(s)",
                 s->path, s->sub, (unsigned long long)s->bad, FSRC_LOG_LIMIT,
                 (unsigned long long)s->records);
    return WEIR_OK;
}

static int fsrc_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    fsrc *s = self;
    unsigned char buf[FSRC_SNAPSHOT_LEN];
    le_put_u64(buf, s->offset);
    le_put_u64(buf + 8, s->line_no);
    le_put_u64(buf + 16, s->bad);
    int rc = weir_snapshot_write(ctx, buf, sizeof buf);
    if (rc < 0)
        weir_set_error(ctx,
                       "file_source: %s: writing the snapshot of "
                       "checkpoint %llu failed: %s",
                       s->path, (unsigned long long)checkpoint_id,
                       weir_strerror(rc));
    return rc;
}

/* What a file of mode m is, for messages. */
static const char *fsrc_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO (named pipe)";
    if (S_ISCHR(m))
        return "a character device";
    if (S_ISBLK(m))
        return "a block device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/* Seeks to `offset` after checking that it starts a line of the file. */
static int fsrc_seek(weir_ctx *ctx, fsrc *s, uint64_t checkpoint_id,
                     uint64_t offset)
{
    struct stat st;
    char c = '\n';
    if (!s->seekable) {
        if (offset == 0)
            return WEIR_OK; /* nothing was read: nothing to skip */
        weir_set_error(ctx,
                       "file_source: %s is %s, which cannot be replayed: "
                       "checkpoint %llu continues it at byte offset %llu, "
                       "but it cannot seek; restoring needs a regular file",
                       s->path, fsrc_kind(s->mode),
                       (unsigned long long)checkpoint_id,
                       (unsigned long long)offset);
        return WEIR_EINVAL;
    }
    if (fstat(s->fd, &st) == 0 && offset > (uint64_t)st.st_size) {
        weir_set_error(ctx,
                       "file_source: %s: snapshot offset %llu is beyond "
                       "the end of the file (%lld bytes); the file "
                       "changed since the checkpoint",
                       s->path, (unsigned long long)offset,
                       (long long)st.st_size);
        return WEIR_EINVAL;
    }
    ssize_t got = offset ? pread(s->fd, &c, 1, (off_t)offset - 1) : 1;
    if (got == 1 && c != '\n') {
        weir_set_error(ctx,
                       "file_source: %s: snapshot offset %llu does not "
                       "start a line; the file changed since the "
                       "checkpoint",
                       s->path, (unsigned long long)offset);
        return WEIR_EINVAL;
    }
    if (got != 1 || lseek(s->fd, (off_t)offset, SEEK_SET) < 0) {
        weir_set_error(ctx, "file_source: %s: cannot seek to offset %llu: %s",
                       s->path, (unsigned long long)offset,
                       got == 0 ? "the file is shorter" : strerror(errno));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

static int fsrc_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                        uint32_t version, const void *data, size_t len)
{
    fsrc *s = self;
    if (version != FSRC_SNAPSHOT_VERSION) {
        weir_set_error(ctx,
                       "file_source: snapshot of checkpoint %llu has "
                       "version %u; this plugin reads version %u",
                       (unsigned long long)checkpoint_id, version,
                       FSRC_SNAPSHOT_VERSION);
        return WEIR_EINVAL;
    }
    if (!data || len != FSRC_SNAPSHOT_LEN) {
        weir_set_error(ctx,
                       "file_source: snapshot of checkpoint %llu is %zu "
                       "bytes; version 1 is %d bytes",
                       (unsigned long long)checkpoint_id, len,
                       FSRC_SNAPSHOT_LEN);
        return WEIR_EINVAL;
    }
    uint64_t offset = le_get_u64(data);
    uint64_t line_no = le_get_u64((const unsigned char *)data + 8);
    uint64_t bad = le_get_u64((const unsigned char *)data + 16);
    if (line_no > offset) {
        weir_set_error(ctx,
                       "file_source: snapshot of checkpoint %llu is "
                       "damaged: line %llu at byte offset %llu",
                       (unsigned long long)checkpoint_id,
                       (unsigned long long)line_no, (unsigned long long)offset);
        return WEIR_EINVAL;
    }
    if (offset > (uint64_t)INT64_MAX) {
        weir_set_error(ctx,
                       "file_source: snapshot of checkpoint %llu is "
                       "damaged: byte offset %llu",
                       (unsigned long long)checkpoint_id,
                       (unsigned long long)offset);
        return WEIR_EINVAL;
    }
    int rc = fsrc_seek(ctx, s, checkpoint_id, offset);
    if (rc < 0)
        return rc;
    s->rpos = s->rlen = 0;
    s->read_eof = 0;
    fsrc_next_line(s);
    s->offset = offset;
    s->line_no = line_no;
    s->bad = bad;
    s->at_eof = 0;
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void fsrc_free(fsrc *s)
{
    if (s->fd >= 0)
        close(s->fd);
    weir_mp_writer_destroy(&s->w);
    free(s->rbuf);
    free(s->line);
    free(s->path);
    free(s->key_field);
    free(s->time_field);
    free(s);
}

/* Copies string parameter `name` (NUL-terminated). An unset parameter
 * without default leaves *out NULL when `optional`. */
static int fsrc_string(weir_ctx *ctx, const char *name, int optional,
                       char **out, size_t *out_len)
{
    const char *p;
    size_t n;
    int rc = weir_param_string(ctx, name, &p, &n);
    *out = NULL;
    if (rc == WEIR_ENOTFOUND && optional)
        return WEIR_OK;
    if (rc < 0) {
        weir_set_error(ctx, "file_source: parameter %s: %s", name,
                       weir_strerror(rc));
        return rc;
    }
    if (n == 0 || memchr(p, '\0', n)) {
        weir_set_error(ctx, "file_source: parameter %s: %s", name,
                       n == 0 ? "must not be empty"
                              : "must not contain a NUL byte");
        return WEIR_EINVAL;
    }
    *out = malloc(n + 1);
    if (!*out) {
        weir_set_error(ctx, "file_source: out of memory");
        return WEIR_ENOMEM;
    }
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    if (out_len)
        *out_len = n;
    return WEIR_OK;
}

static int fsrc_configure(weir_ctx *ctx, fsrc *s)
{
    int rc;
    int64_t batch;
    const char *onerr;
    size_t onerr_len;
    if ((rc = fsrc_string(ctx, "path", 0, &s->path, NULL)) < 0 ||
        (rc = fsrc_string(ctx, "key_field", 0, &s->key_field,
                          &s->key_field_len)) < 0 ||
        (rc = fsrc_string(ctx, "time_field", 1, &s->time_field,
                          &s->time_field_len)) < 0)
        return rc;
    if ((rc = weir_param_int(ctx, "batch", &batch)) < 0) {
        weir_set_error(ctx, "file_source: parameter batch: %s",
                       weir_strerror(rc));
        return rc;
    }
    if ((rc = weir_param_string(ctx, "on_error", &onerr, &onerr_len)) < 0) {
        weir_set_error(ctx, "file_source: parameter on_error: %s",
                       weir_strerror(rc));
        return rc;
    }
    if (batch < 1 || batch > FSRC_MAX_BATCH) {
        weir_set_error(ctx,
                       "file_source: parameter batch: %lld is out of "
                       "range [1, %d]",
                       (long long)batch, FSRC_MAX_BATCH);
        return WEIR_EINVAL;
    }
    s->batch = (uint32_t)batch;
    s->fail_on_error = onerr_len == 4 && memcmp(onerr, "fail", 4) == 0;
    if ((rc = weir_param_int(ctx, "rate", &s->rate)) < 0 || s->rate < 0) {
        weir_set_error(ctx, "file_source: parameter rate: %s",
                       rc < 0 ? weir_strerror(rc) : "negative");
        return rc < 0 ? rc : WEIR_EINVAL;
    }
    int64_t max_line;
    if ((rc = weir_param_int(ctx, "max_line_bytes", &max_line)) < 0 ||
        max_line < FSRC_MIN_LINE || max_line > FSRC_MAX_LINE) {
        weir_set_error(ctx,
                       "file_source: parameter max_line_bytes: %s%lld is "
                       "out of range [%d, %d]",
                       rc < 0 ? weir_strerror(rc) : "",
                       rc < 0 ? 0LL : (long long)max_line, FSRC_MIN_LINE,
                       FSRC_MAX_LINE);
        return rc < 0 ? rc : WEIR_EINVAL;
    }
    s->max_line = (uint64_t)max_line;
    if ((rc = weir_param_bool(ctx, "allow_non_regular",
                              &s->allow_non_regular)) < 0) {
        weir_set_error(ctx, "file_source: parameter allow_non_regular: %s",
                       weir_strerror(rc));
        return rc;
    }
    return WEIR_OK;
}

/* Refuses what file_source does not read: a directory or a socket always,
 * another file that is not regular unless allow_non_regular, and then with
 * parallelism 1 only. */
static int fsrc_check_kind(weir_ctx *ctx, const fsrc *s, mode_t m)
{
    if (S_ISREG(m))
        return WEIR_OK;
    if (S_ISDIR(m) || S_ISSOCK(m))
        weir_set_error(ctx,
                       "file_source: path: '%s' is %s; file_source reads a "
                       "file of JSON lines",
                       s->path, fsrc_kind(m));
    else if (!s->allow_non_regular)
        weir_set_error(ctx,
                       "file_source: path: '%s' is %s, not a regular file; "
                       "set allow_non_regular: true to read it anyway (it "
                       "cannot be replayed from a checkpoint)",
                       s->path, fsrc_kind(m));
    else if (s->par > 1)
        weir_set_error(ctx,
                       "file_source: path: '%s' is %s; with parallelism %u "
                       "every subtask would read a different part of it; "
                       "use parallelism 1",
                       s->path, fsrc_kind(m), s->par);
    else
        return WEIR_OK;
    return WEIR_EINVAL;
}

/* Opens path without blocking (a FIFO without writer would block open()),
 * checking its kind before and after. A regular file is then read in
 * blocking mode; anything else stays non-blocking so that poll() never
 * waits for input. */
static int fsrc_open_file(weir_ctx *ctx, fsrc *s)
{
    struct stat st;
    int rc;
    if (stat(s->path, &st) != 0)
        goto fail_open;
    if ((rc = fsrc_check_kind(ctx, s, st.st_mode)) < 0)
        return rc;
    s->fd = open(s->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (s->fd < 0)
        goto fail_open;
    if (fstat(s->fd, &st) != 0)
        goto fail_open;
    if ((rc = fsrc_check_kind(ctx, s, st.st_mode)) < 0)
        return rc; /* replaced since the stat() */
    s->mode = st.st_mode;
    s->seekable = S_ISREG(st.st_mode);
    s->fifo = S_ISFIFO(st.st_mode);
    if (s->seekable) {
        int fl = fcntl(s->fd, F_GETFL);
        if (fl < 0 || fcntl(s->fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
            goto fail_open;
    } else {
        weir_log(ctx, WEIR_LOG_WARN,
                 "file_source: path: '%s' is %s, read because "
                 "allow_non_regular is set; it cannot be replayed from a "
                 "checkpoint",
                 s->path, fsrc_kind(st.st_mode));
    }
    s->rbuf = malloc(FSRC_READ_BUF);
    if (!s->rbuf) {
        weir_set_error(ctx, "file_source: out of memory");
        return WEIR_ENOMEM;
    }
    return WEIR_OK;
fail_open:
    weir_set_error(ctx, "file_source: path: cannot open '%s': %s", s->path,
                   strerror(errno));
    return WEIR_EIO;
}

static int fsrc_open(weir_ctx *ctx, void **self)
{
    fsrc *s = calloc(1, sizeof *s);
    if (!s) {
        weir_set_error(ctx, "file_source: out of memory");
        return WEIR_ENOMEM;
    }
    s->fd = -1;
    weir_mp_writer_init(&s->w);
    s->sub = weir_subtask_index(ctx);
    s->par = weir_parallelism(ctx);
    int rc;
    if (s->par == 0 || s->sub >= s->par) {
        weir_set_error(ctx,
                       "file_source: subtask index %u is not below "
                       "parallelism %u",
                       s->sub, s->par);
        rc = WEIR_EINVAL;
        goto fail;
    }
    if ((rc = fsrc_configure(ctx, s)) < 0 || (rc = fsrc_open_file(ctx, s)) < 0)
        goto fail;
    /* Optional: without metrics the counter stays NULL and updates are
     * no-ops. */
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "file_source_bad_lines_total",
                             "lines skipped because they are not a usable "
                             "JSON object or longer than max_line_bytes",
                             NULL, NULL, &s->bad_metric) < 0)
        s->bad_metric = NULL;
    *self = s;
    return WEIR_OK;
fail:
    fsrc_free(s);
    return rc;
}

static void fsrc_close(weir_ctx *ctx, void *self)
{
    if (self)
        fsrc_free(self);
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static const weir_operator fsrc_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "file_source",
    .version = "1.0.0",
    .description = "reads a file of JSON lines; one record per object, keyed "
                   "by a field, optional event-time field",
    .params = fsrc_params,
    .snapshot_version = FSRC_SNAPSHOT_VERSION,
    .open = fsrc_open,
    .poll = fsrc_poll,
    .snapshot = fsrc_snapshot,
    .restore = fsrc_restore,
    .finish = fsrc_finish,
    .close = fsrc_close,
};

static const weir_operator *const fsrc_ops[] = {&fsrc_op, NULL};

static const weir_plugin fsrc_plugin = {
    WEIR_PLUGIN_INIT,      .name = "file_source",
    .version = "1.0.0",    .description = "JSON lines file source",
    .operators = fsrc_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &fsrc_plugin;
}
