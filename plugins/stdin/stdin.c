/*
 * stdin.c - operator "stdin": reads JSON lines from standard input (file
 * descriptor 0) for shell pipelines, `producer | weir run job.yaml`, with
 * the `stdout` sink (plugin file_sink) at the other end. The worker that
 * `weir run` forks inherits the descriptor.
 *
 * Lines become records as in file_source (jsonrec.h: key_field, time_field;
 * the whole object is the value). Lines are numbered from 1; "\n" ends a
 * line, a "\r" before it is dropped, as is a UTF-8 byte order mark at the
 * start; a last line without "\n" counts. Empty lines are skipped; a bad
 * line is logged ("stdin: line N: reason", the first 10), counted and
 * skipped, or with on_error=fail fails the subtask. The source ends at the
 * end of input. Parallelism must be 1.
 *
 * Guarantees. When standard input is a regular file (`weir run job.yaml <
 * in.jsonl`), the byte offset is the snapshot and restore() seeks back to
 * it: replayable, as file_source. A pipe or terminal cannot be re-read: the
 * lines a failed worker had read are gone. restore() of such a checkpoint
 * therefore fails with an error saying so (the restart strategy then gives
 * up), unless the checkpoint was taken at the end of input (nothing is
 * lost), or at_most_once=true, which accepts the loss and goes on with
 * what is still unread (at-most-once). A worker restarted before any
 * checkpoint goes on from where the failed one stopped reading.
 *
 * A terminal is refused in open() unless the worker's process group owns
 * it: `weir run` starts the worker in its own process group, and a read
 * from a terminal by a background process group stops the process
 * (SIGTTIN). Pipe or redirect the input instead.
 *
 * Snapshot (version 1, 32 bytes, little endian): byte offset (absolute for
 * a regular file, counted from the first byte read for a pipe), lines
 * consumed, bad lines (u64 each), flags (u32: 1 regular file, 2 at the end
 * of input), 0 (u32).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "jsonrec.h"
#include "le.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define SIN_MAX_BATCH    65536
#define SIN_READ         65536
#define SIN_LOG_LIMIT    10
#define SIN_SNAP_VERSION 1
#define SIN_SNAP_LEN     32
#define SIN_FLAG_REGULAR 1u
#define SIN_FLAG_AT_END  2u

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def sin_p_key_field = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "key_field",
    .type = WEIR_PARAM_STRING,
    .description = "top-level field whose value (string, or number as "
                   "decimal text) becomes the record key"};
static const weir_param_def sin_p_time_field = {
    .size = sizeof(weir_param_def),
    .name = "time_field",
    .type = WEIR_PARAM_STRING,
    .description = "top-level field with the event time: integer ms or "
                   "ISO-8601; unset = no time"};
static const weir_param_def sin_p_batch = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "batch",
    .type = WEIR_PARAM_INT,
    .default_value = "1024",
    .min = 1,
    .max = SIN_MAX_BATCH,
    .description = "lines handled per poll at most"};
static const char *const sin_on_error_choices[] = {"skip", "fail", NULL};
static const weir_param_def sin_p_on_error = {
    .size = sizeof(weir_param_def),
    .name = "on_error",
    .type = WEIR_PARAM_ENUM,
    .default_value = "skip",
    .choices = sin_on_error_choices,
    .description = "bad line: skip (log its number and count it) or fail the "
                   "job"};
static const weir_param_def sin_p_at_most_once = {
    .size = sizeof(weir_param_def),
    .name = "at_most_once",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "restore from a pipe: true goes on, losing what the "
                   "failed worker read; false fails"};

static const weir_param_def *const sin_params[] = {
    &sin_p_key_field, &sin_p_time_field,   &sin_p_batch,
    &sin_p_on_error,  &sin_p_at_most_once, NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct sin {
    jrec_fields fields;
    uint32_t batch;
    int fail_on_error;
    int at_most_once;
    int regular;      /* fd 0 is a regular file */
    int positioned;   /* restored, or the start offset was taken */
    int eof;          /* read() returned 0 */
    int at_end;       /* every line was handled: EOF next */
    uint64_t offset;  /* of buf[start] */
    uint64_t line_no; /* lines consumed */
    uint64_t bad;
    uint64_t records;
    char *buf;
    size_t start, len, cap;
    weir_mp_writer w;
    weir_mp_reader rd;
    jrec_out out;
} sin;

/* ------------------------------------------------------------------------ */
/* Lines                                                                     */
/* ------------------------------------------------------------------------ */

static int sin_bad(weir_ctx *ctx, sin *s, const char *why)
{
    s->bad++;
    if (s->fail_on_error) {
        weir_set_error(ctx, "stdin: line %" PRIu64 ": %s", s->line_no, why);
        return WEIR_EINVAL;
    }
    if (s->bad <= SIN_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN, "stdin: line %" PRIu64 ": %s; skipped%s",
                 s->line_no, why,
                 s->bad == SIN_LOG_LIMIT
                     ? " (further bad lines are counted, not logged)"
                     : "");
    return WEIR_OK;
}

static int sin_blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\f' &&
            p[i] != '\v')
            return 0;
    return 1;
}

/* Converts and emits line s->line_no, n bytes without its "\n" that start
 * at byte `at` of the input. */
static int sin_line(weir_ctx *ctx, sin *s, const char *p, size_t n, uint64_t at)
{
    char why[JREC_WHY];
    if (n && p[n - 1] == '\r')
        n--;
    if (at == 0 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3; /* a UTF-8 byte order mark starts the input */
        n -= 3;
    }
    if (sin_blank(p, n))
        return WEIR_OK;
    weir_mp_writer_reset(&s->w);
    if (jrec_json_to_mp(p, n, &s->w.pk, why) < 0)
        return sin_bad(ctx, s, why);
    const msgpack_object *o =
        weir_mp_read(&s->rd, s->w.buf.data, s->w.buf.size);
    if (jrec_extract(o, &s->fields, &s->out, why) < 0)
        return sin_bad(ctx, s, why);
    int rc = weir_emit(ctx, 0, s->out.key, s->out.key_len, s->out.ts,
                       s->w.buf.data, s->w.buf.size);
    if (rc < 0)
        return weir_set_error(ctx, "stdin: line %" PRIu64 ": emit failed: %s",
                              s->line_no, weir_strerror(rc));
    s->records++;
    return WEIR_OK;
}

/* Reads what fd 0 has now (waiting up to wait_ms): 1 when bytes came or
 * the input ended, 0 when nothing is available. */
static int sin_read(weir_ctx *ctx, sin *s, int wait_ms)
{
    if (s->start) {
        memmove(s->buf, s->buf + s->start, s->len - s->start);
        s->len -= s->start;
        s->start = 0;
    }
    if (s->cap - s->len < SIN_READ) {
        size_t cap = s->cap ? s->cap * 2 : 2 * SIN_READ;
        char *p = realloc(s->buf, cap);
        if (!p)
            return weir_set_error(ctx, "stdin: out of memory");
        s->buf = p;
        s->cap = cap;
    }
    struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
    int r = poll(&pf, 1, wait_ms);
    if (r == 0 || (r < 0 && errno == EINTR))
        return 0;
    ssize_t n = read(STDIN_FILENO, s->buf + s->len, s->cap - s->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n < 0) {
        weir_set_error(ctx, "stdin: read failed after line %" PRIu64 ": %s",
                       s->line_no, strerror(errno));
        return WEIR_EIO;
    }
    if (n == 0)
        s->eof = 1;
    s->len += (size_t)n;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int sin_poll(weir_ctx *ctx, void *self)
{
    sin *s = self;
    if (s->at_end)
        return WEIR_EOF;
    if (!s->positioned) {
        off_t at = s->regular ? lseek(STDIN_FILENO, 0, SEEK_CUR) : 0;
        s->offset = at > 0 ? (uint64_t)at : 0;
        s->positioned = 1;
    }
    uint32_t lines = 0;
    while (lines < s->batch) {
        char *p = s->buf + s->start;
        size_t avail = s->len - s->start;
        char *nl = avail ? memchr(p, '\n', avail) : NULL;
        if (nl || (s->eof && avail)) {
            size_t n = nl ? (size_t)(nl - p) : avail;
            s->line_no++;
            lines++;
            int rc = sin_line(ctx, s, p, n, s->offset);
            s->start += n + (nl ? 1 : 0);
            s->offset += n + (nl ? 1 : 0);
            if (rc < 0)
                return rc;
            continue;
        }
        if (s->eof) {
            s->at_end = 1;
            break;
        }
        int rc = sin_read(ctx, s, lines ? 0 : 1);
        if (rc < 0)
            return rc;
        if (rc == 0)
            break;
    }
    if (s->at_end && !lines)
        return WEIR_EOF;
    return lines || s->at_end ? WEIR_OK : WEIR_EAGAIN;
}

static int sin_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    sin *s = self;
    unsigned char b[SIN_SNAP_LEN] = {0};
    uint32_t flags =
        (s->regular ? SIN_FLAG_REGULAR : 0) | (s->at_end ? SIN_FLAG_AT_END : 0);
    le_put_u64(b, s->offset);
    le_put_u64(b + 8, s->line_no);
    le_put_u64(b + 16, s->bad);
    le_put_u64(b + 24, flags);
    int rc = weir_snapshot_write(ctx, b, sizeof b);
    if (rc < 0)
        weir_set_error(ctx,
                       "stdin: writing the snapshot of checkpoint %" PRIu64
                       " failed: %s",
                       checkpoint_id, weir_strerror(rc));
    return rc;
}

/* Regular file: seeks back to `offset` after checking it starts a line. */
static int sin_seek(weir_ctx *ctx, uint64_t offset, uint64_t checkpoint_id)
{
    char c = '\n';
    if (offset > (uint64_t)INT64_MAX ||
        (offset && pread(STDIN_FILENO, &c, 1, (off_t)offset - 1) != 1) ||
        c != '\n') {
        weir_set_error(ctx,
                       "stdin: checkpoint %" PRIu64 " is at byte %" PRIu64
                       ", which does not start a line of the file on standard "
                       "input: it is not the input of that checkpoint",
                       checkpoint_id, offset);
        return WEIR_EINVAL;
    }
    if (lseek(STDIN_FILENO, (off_t)offset, SEEK_SET) < 0) {
        weir_set_error(ctx, "stdin: cannot seek to byte %" PRIu64 ": %s",
                       offset, strerror(errno));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

/* Pipe or terminal: what can be done without re-reading. */
static int sin_restore_stream(weir_ctx *ctx, sin *s, uint64_t checkpoint_id,
                              uint32_t flags)
{
    if (flags & SIN_FLAG_AT_END) {
        s->at_end = 1; /* nothing was read after the checkpoint */
        return WEIR_OK;
    }
    if (!s->at_most_once) {
        weir_set_error(ctx,
                       "stdin: cannot restore checkpoint %" PRIu64
                       " (after line %" PRIu64 ", byte %" PRIu64
                       "): standard input is a pipe or terminal, which "
                       "cannot be read again, so the lines the failed worker "
                       "read after it are lost; set at_most_once: true to "
                       "accept that, or redirect a file (< in.jsonl), which "
                       "is replayable",
                       checkpoint_id, s->line_no, s->offset);
        return WEIR_EINVAL;
    }
    weir_log(ctx, WEIR_LOG_WARN,
             "stdin: restoring checkpoint %" PRIu64 " (after line %" PRIu64
             "): the lines the failed worker read after it are lost "
             "(at_most_once); line numbers from here on count from line "
             "%" PRIu64,
             checkpoint_id, s->line_no, s->line_no);
    return WEIR_OK;
}

static int sin_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                       uint32_t version, const void *data, size_t len)
{
    sin *s = self;
    const unsigned char *b = data;
    if (version != SIN_SNAP_VERSION || len != SIN_SNAP_LEN) {
        weir_set_error(ctx,
                       "stdin: the snapshot of checkpoint %" PRIu64
                       " (version %u, %zu bytes) is not a stdin snapshot of "
                       "version %d",
                       checkpoint_id, version, len, SIN_SNAP_VERSION);
        return WEIR_EINVAL;
    }
    uint32_t flags = (uint32_t)le_get_u64(b + 24);
    s->offset = le_get_u64(b);
    s->line_no = le_get_u64(b + 8);
    s->bad = le_get_u64(b + 16);
    s->positioned = 1;
    if (!!(flags & SIN_FLAG_REGULAR) != s->regular) {
        weir_set_error(ctx,
                       "stdin: checkpoint %" PRIu64
                       " was taken with standard input from a %s; it is now "
                       "a %s, so its position means nothing here",
                       checkpoint_id,
                       flags & SIN_FLAG_REGULAR ? "regular file"
                                                : "pipe or terminal",
                       s->regular ? "regular file" : "pipe or terminal");
        return WEIR_EINVAL;
    }
    if (s->regular)
        return sin_seek(ctx, s->offset, checkpoint_id);
    return sin_restore_stream(ctx, s, checkpoint_id, flags);
}

static int sin_finish(weir_ctx *ctx, void *self)
{
    sin *s = self;
    if (s->bad)
        weir_log(ctx, WEIR_LOG_WARN,
                 "stdin: skipped %" PRIu64
                 " bad line(s) (the first %d are logged above) and emitted "
                 "%" PRIu64 " record(s)",
                 s->bad, SIN_LOG_LIMIT, s->records);
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void sin_free(sin *s)
{
    weir_mp_writer_destroy(&s->w);
    weir_mp_reader_destroy(&s->rd);
    free((char *)s->fields.key_field);
    free((char *)s->fields.time_field);
    free(s->buf);
    free(s);
}

/* Copies string parameter `name`; unset leaves *out NULL. */
static int sin_string(weir_ctx *ctx, const char *name, const char **out)
{
    const char *p;
    size_t n;
    char *c;
    *out = NULL;
    int rc = weir_param_string(ctx, name, &p, &n);
    if (rc == WEIR_ENOTFOUND)
        return WEIR_OK;
    if (rc < 0 || n == 0 || memchr(p, '\0', n))
        return weir_set_error(ctx, "stdin: parameter %s: %s", name,
                              rc < 0   ? weir_strerror(rc)
                              : n == 0 ? "must not be empty"
                                       : "contains a NUL byte");
    if (!(c = malloc(n + 1)))
        return weir_set_error(ctx, "stdin: out of memory");
    memcpy(c, p, n);
    c[n] = '\0';
    *out = c;
    return WEIR_OK;
}

/* What fd 0 is: a regular file, a stream, or a terminal we may not read. */
static int sin_check_fd(weir_ctx *ctx, sin *s)
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) < 0)
        return weir_set_error(ctx, "stdin: standard input is not open: %s",
                              strerror(errno));
    if (S_ISDIR(st.st_mode))
        return weir_set_error(ctx, "stdin: standard input is a directory");
    s->regular = S_ISREG(st.st_mode);
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) != getpgrp())
        return weir_set_error(
            ctx, "stdin: standard input is a terminal that this process "
                 "group does not own (weir run starts the worker in its own "
                 "process group, and reading would stop it); pipe or "
                 "redirect the input: producer | weir run JOB, or weir run "
                 "JOB < in.jsonl");
    return WEIR_OK;
}

static int sin_open(weir_ctx *ctx, void **self)
{
    sin *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "stdin: out of memory");
    weir_mp_writer_init(&s->w);
    weir_mp_reader_init(&s->rd);
    int64_t batch;
    const char *onerr;
    size_t onerr_len;
    int rc;
    if (weir_parallelism(ctx) != 1) {
        rc = weir_set_error(ctx,
                            "stdin: parallelism is %u; standard input has one "
                            "reader, so it must be 1",
                            weir_parallelism(ctx));
        goto fail;
    }
    if ((rc = sin_string(ctx, "key_field", &s->fields.key_field)) < 0 ||
        (rc = sin_string(ctx, "time_field", &s->fields.time_field)) < 0)
        goto fail;
    if ((rc = weir_param_int(ctx, "batch", &batch)) < 0 ||
        (rc = weir_param_string(ctx, "on_error", &onerr, &onerr_len)) < 0 ||
        (rc = weir_param_bool(ctx, "at_most_once", &s->at_most_once)) < 0) {
        rc = weir_set_error(ctx, "stdin: parameters: %s", weir_strerror(rc));
        goto fail;
    }
    s->batch = batch < 1               ? 1
               : batch > SIN_MAX_BATCH ? SIN_MAX_BATCH
                                       : (uint32_t)batch;
    s->fail_on_error = onerr_len == 4 && memcmp(onerr, "fail", 4) == 0;
    if ((rc = sin_check_fd(ctx, s)) < 0)
        goto fail;
    *self = s;
    return WEIR_OK;
fail:
    sin_free(s);
    return rc;
}

static void sin_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    if (self)
        sin_free(self);
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static const weir_operator sin_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "stdin",
    .version = "1.0.0",
    .description = "reads JSON lines from standard input (producer | weir "
                   "run). Replayable only from a regular file (< file); a "
                   "restore from a pipe fails unless at_most_once",
    .params = sin_params,
    .snapshot_version = SIN_SNAP_VERSION,
    .open = sin_open,
    .poll = sin_poll,
    .snapshot = sin_snapshot,
    .restore = sin_restore,
    .finish = sin_finish,
    .close = sin_close,
};

static const weir_operator *const sin_ops[] = {&sin_op, NULL};

static const weir_plugin sin_plugin = {
    WEIR_PLUGIN_INIT,     .name = "stdin",
    .version = "1.0.0",   .description = "JSON lines from standard input",
    .operators = sin_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &sin_plugin;
}
