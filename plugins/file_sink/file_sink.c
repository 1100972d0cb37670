/*
 * file_sink.c - operators "file_sink" and "stdout": write records as JSON
 * lines. One plugin exporting two operators.
 *
 * Line format (one record per line, compact, fields in this order, "\n"
 * terminated):
 *   {"key":"u17","ts":1767225600000,"value":{"user":"u17","n":3}}
 *   - "key": the key bytes as a JSON string when they are valid UTF-8;
 *     otherwise "key_b64": the key in standard base64 (RFC 4648, padded).
 *   - "ts": the event time in ms; absent when the record has none.
 *   - "value": the msgpack value as JSON: map -> object (a non-string map key
 *     becomes the JSON text of the key, e.g. 5 -> "5"), array -> array,
 *     int -> integer (full uint64/int64 range), float -> number in the
 *     shortest form that reads back exactly (always with "." or "e";
 *     NaN/inf -> null), str -> string (invalid UTF-8 bytes become U+FFFD),
 *     bin and ext -> base64 string, nil/bool -> null/true/false.
 *     A value that is not one well-formed msgpack object (or nests deeper
 *     than msgpack-c's 32 levels) is written as "value_b64" (base64 of the
 *     bytes); an empty value is omitted.
 *
 * file_sink writes to `path`. mode=per_subtask: each subtask truncates and
 * writes its own file; with parallelism > 1 the subtask index goes before
 * the extension ("out.jsonl" -> "out-0.jsonl", "out-1.jsonl"). mode=merged:
 * every subtask appends to the one file with O_APPEND, whole lines per
 * write(), so lines never interleave; the file is not truncated. Missing
 * parent directories are created. flush=batch buffers lines until 64 KiB
 * are pending or a record arrives 1 s (processing time) or more after the
 * last write; flush=record writes every line at once. Buffers are also
 * written in snapshot() (at each checkpoint barrier), finish() and close();
 * with fsync=true, snapshot() and finish() also fsync the file.
 *
 * With commit=none (the default) delivery is at-least-once: after a restart
 * from a checkpoint, the records since that checkpoint are written again.
 *
 * commit=checkpoint makes file_sink a two-phase-commit sink for end-to-end
 * exactly-once output (parts.h, schemas/file-sink.md): `path` is a directory;
 * subtask i writes to .inprogress/part-<i>-<seq>.jsonl, snapshot(n)
 * pre-commits it to .pending/part-<i>-<n>.jsonl (fsync'ed) and records the
 * pending ids in the snapshot, notify_checkpoint_complete(n) commits every
 * pending transaction <= n to part-<i>-<n>.jsonl, and restore() finishes the
 * commits of the restored checkpoint and deletes what it does not cover.
 * Without restore(), the first other callback deletes this subtask's files
 * of an earlier run. close() leaves the files as they are. `mode`, `flush`
 * and `fsync` keep their meaning for the in-progress file; the pre-commit
 * always fsyncs. The job's output is the concatenation of D/part-*.jsonl.
 *
 * stdout writes the same lines to standard output with one fwrite() per
 * line (stdio locks the stream, so lines of subtasks never interleave) and
 * flushes in finish() and close(), or after every line with flush=record.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "mpscan.h"
#include "parts.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define FSINK_BUF_FLUSH 65536 /* flush=batch writes from this many bytes */
#define FSINK_FLUSH_MS  1000  /* ... or after this much processing time */

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def fsink_p_path = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED | WEIR_PARAM_OUTPUT_PATH,
    .name = "path",
    .type = WEIR_PARAM_STRING,
    .description = "output file of JSON lines (commit=checkpoint: directory "
                   "of part files); missing directories are created"};
static const char *const fsink_mode_choices[] = {"per_subtask", "merged", NULL};
static const weir_param_def fsink_p_mode = {
    .size = sizeof(weir_param_def),
    .name = "mode",
    .type = WEIR_PARAM_ENUM,
    .default_value = "per_subtask",
    .choices = fsink_mode_choices,
    .description = "per_subtask: one truncated file per subtask (out-N.jsonl "
                   "if parallel); merged: all append to path"};
static const char *const fsink_flush_choices[] = {"batch", "record", NULL};
static const weir_param_def fsink_p_flush = {
    .size = sizeof(weir_param_def),
    .name = "flush",
    .type = WEIR_PARAM_ENUM,
    .default_value = "batch",
    .choices = fsink_flush_choices,
    .description = "batch: write every 64 KiB or 1 s and at checkpoints; "
                   "record: write each line at once"};
static const weir_param_def fsink_p_fsync = {
    .size = sizeof(weir_param_def),
    .name = "fsync",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "fsync the file at each checkpoint and at the end"};
static const char *const fsink_commit_choices[] = {"none", "checkpoint", NULL};
static const weir_param_def fsink_p_commit = {
    .size = sizeof(weir_param_def),
    .name = "commit",
    .type = WEIR_PARAM_ENUM,
    .default_value = "none",
    .choices = fsink_commit_choices,
    .description = "none: write as records arrive (at-least-once); "
                   "checkpoint: commit part files at checkpoints "
                   "(exactly-once)"};
static const weir_param_def fsink_p_stdout_flush = {
    .size = sizeof(weir_param_def),
    .name = "flush",
    .type = WEIR_PARAM_ENUM,
    .default_value = "batch",
    .choices = fsink_flush_choices,
    .description = "batch: let stdio buffer, flush at the end; record: "
                   "flush after each line"};

static const weir_param_def *const fsink_file_params[] = {
    &fsink_p_path,  &fsink_p_mode,   &fsink_p_flush,
    &fsink_p_fsync, &fsink_p_commit, NULL};
static const weir_param_def *const fsink_stdout_params[] = {
    &fsink_p_stdout_flush, NULL};

/* ------------------------------------------------------------------------ */
/* Growable buffer                                                           */
/* ------------------------------------------------------------------------ */

/* A byte buffer whose append functions cannot fail: running out of memory
 * sets `oom`, which the caller checks once per line. */
typedef struct fsink_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} fsink_buf;

static int fsink_reserve(fsink_buf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->cap - b->len >= n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void fsink_put(fsink_buf *b, const void *p, size_t n)
{
    if (n && fsink_reserve(b, n) == 0) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

static void fsink_putc(fsink_buf *b, char c)
{
    if (fsink_reserve(b, 1) == 0)
        b->p[b->len++] = c;
}

static void fsink_puts(fsink_buf *b, const char *s)
{
    fsink_put(b, s, strlen(s));
}

static void fsink_put_u64(fsink_buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    fsink_put(b, tmp + sizeof tmp - n, n);
}

static void fsink_put_i64(fsink_buf *b, int64_t v)
{
    if (v < 0) {
        fsink_putc(b, '-');
        fsink_put_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        fsink_put_u64(b, (uint64_t)v);
    }
}

/* ------------------------------------------------------------------------ */
/* JSON writing                                                              */
/* ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence (RFC 3629) at p, or 0 if invalid. */
static size_t fsink_utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
        return n >= 3 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3
                                                                           : 0;
    }
    if (c < 0xf5) {
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
        return n >= 4 && p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
                       (p[3] & 0xc0) == 0x80
                   ? 4
                   : 0;
    }
    return 0;
}

static int fsink_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n;) {
        size_t k = fsink_utf8_len(p + i, n - i);
        if (!k)
            return 0;
        i += k;
    }
    return 1;
}

/* Appends a JSON string; invalid UTF-8 bytes become U+FFFD. */
static void fsink_json_string(fsink_buf *b, const void *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = s;
    size_t run = 0; /* start of the bytes not yet copied */
    if (n == 0) {   /* s may be NULL */
        fsink_puts(b, "\"\"");
        return;
    }
    fsink_putc(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        const char *esc = NULL;
        char u[6];
        if (c >= 0x80) {
            size_t k = fsink_utf8_len(p + i, n - i);
            if (k) {
                i += k;
                continue;
            }
            esc = "\xef\xbf\xbd";
        } else if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20) {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
        } else {
            i++;
            continue;
        }
        fsink_put(b, p + run, i - run);
        if (esc)
            fsink_puts(b, esc);
        else
            fsink_put(b, u, 6);
        run = ++i;
    }
    fsink_put(b, p + run, n - run);
    fsink_putc(b, '"');
}

/* Appends the bytes as a quoted base64 string (RFC 4648, padded). */
static void fsink_json_base64(fsink_buf *b, const void *s, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = s;
    fsink_putc(b, '"');
    if (fsink_reserve(b, (n + 2) / 3 * 4 + 1) < 0)
        return;
    char *o = b->p + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = tab[(v >> 6) & 63];
        *o++ = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        *o++ = tab[v >> 18];
        *o++ = tab[(v >> 12) & 63];
        *o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->p);
    fsink_putc(b, '"');
}

/* Appends a number in the shortest "%.*g" form that reads back to the same
 * float (f32) or double, with ".0" added when it would read as an integer. */
static void fsink_json_real(fsink_buf *b, double d, int f32)
{
    char tmp[40];
    if (!isfinite(d)) {
        fsink_puts(b, "null");
        return;
    }
    for (int prec = f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        double back = strtod(tmp, NULL);
        if (f32 ? (float)back == (float)d : back == d)
            break;
    }
    fsink_puts(b, tmp);
    if (!strpbrk(tmp, ".eE"))
        fsink_puts(b, ".0");
}

static void fsink_json_value(fsink_buf *b, const msgpack_object *o);

/* A JSON object key: a str as itself, anything else as its JSON text. */
static void fsink_json_key(fsink_buf *b, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR) {
        fsink_json_string(b, k->via.str.ptr, k->via.str.size);
        return;
    }
    fsink_buf t = {0};
    fsink_json_value(&t, k);
    if (t.oom)
        b->oom = 1;
    else
        fsink_json_string(b, t.p, t.len);
    free(t.p);
}

/* Appends the JSON form of a msgpack object. Recursion is bounded by
 * msgpack-c's unpacker, which nests at most 32 containers. */
static void fsink_json_value(fsink_buf *b, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fsink_puts(b, "null"); break;
    case MSGPACK_OBJECT_BOOLEAN:
        fsink_puts(b, o->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fsink_put_u64(b, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fsink_put_i64(b, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32: fsink_json_real(b, o->via.f64, 1); break;
    case MSGPACK_OBJECT_FLOAT64: fsink_json_real(b, o->via.f64, 0); break;
    case MSGPACK_OBJECT_STR:
        fsink_json_string(b, o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        fsink_json_base64(b, o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        fsink_json_base64(b, o->via.ext.ptr, o->via.ext.size);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fsink_putc(b, '[');
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fsink_putc(b, ',');
            fsink_json_value(b, &o->via.array.ptr[i]);
        }
        fsink_putc(b, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        fsink_putc(b, '{');
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fsink_putc(b, ',');
            fsink_json_key(b, &o->via.map.ptr[i].key);
            fsink_putc(b, ':');
            fsink_json_value(b, &o->via.map.ptr[i].val);
        }
        fsink_putc(b, '}');
        break;
    default: fsink_puts(b, "null"); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Output file                                                               */
/* ------------------------------------------------------------------------ */

/* The file one subtask writes. */
typedef struct fsink_file {
    char *path;
    int fd;
} fsink_file;

/* Creates the missing parent directories of `path` (modified, restored). */
static int fsink_mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0777);
        int e = errno;
        *p = '/';
        if (rc < 0 && e != EEXIST) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

static int fsink_file_open(weir_ctx *ctx, fsink_file *f, int append)
{
    if (fsink_mkdirs(f->path) < 0) {
        weir_set_error(ctx,
                       "file_sink: path: cannot create the directories "
                       "of '%s': %s",
                       f->path, fparts_strerror(errno, f->path));
        return WEIR_EIO;
    }
    int flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
    f->fd = open(f->path, flags | O_CLOEXEC, 0666);
    if (f->fd < 0) {
        weir_set_error(ctx,
                       "file_sink: path: cannot open '%s' for writing: "
                       "%s",
                       f->path, fparts_strerror(errno, f->path));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

/* Writes all n bytes with as few write() calls as the kernel allows: one
 * for a regular file, so O_APPEND writers never interleave. */
static int fsink_file_write(weir_ctx *ctx, fsink_file *f, const char *p,
                            size_t n)
{
    while (n) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            weir_set_error(ctx, "file_sink: %s: write failed: %s", f->path,
                           w < 0 ? fparts_strerror(errno, f->path)
                                 : "no progress");
            return WEIR_EIO;
        }
        p += w;
        n -= (size_t)w;
    }
    return WEIR_OK;
}

static int fsink_file_sync(weir_ctx *ctx, fsink_file *f)
{
    if (fsync(f->fd) < 0) {
        weir_set_error(ctx, "file_sink: %s: fsync failed: %s", f->path,
                       fparts_strerror(errno, f->path));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

static void fsink_file_close(fsink_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    free(f->path);
    f->path = NULL;
}

/* "dir/out.jsonl" -> "dir/out-3.jsonl"; "out" -> "out-3"; ".x" -> ".x-3". */
static char *fsink_subtask_path(const char *path, size_t len, uint32_t sub)
{
    size_t base = len, dot = len;
    while (base > 0 && path[base - 1] != '/')
        base--;
    for (size_t i = len; i > base + 1; i--) {
        if (path[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    }
    char idx[16];
    int n = snprintf(idx, sizeof idx, "-%u", sub);
    char *out = malloc(len + (size_t)n + 1);
    if (!out)
        return NULL;
    memcpy(out, path, dot);
    memcpy(out + dot, idx, (size_t)n);
    memcpy(out + dot + (size_t)n, path + dot, len - dot);
    out[len + (size_t)n] = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fsink {
    int to_stdout;
    int flush_record;
    int do_fsync;
    int commit;         /* commit=checkpoint: `parts` instead of `file` */
    int finished;       /* finish() was called */
    fsink_file file;    /* file_sink with commit=none */
    fparts parts;       /* file_sink with commit=checkpoint */
    fsink_buf out;      /* formatted lines not yet written */
    weir_mp_reader rd;  /* unpacks values */
    int64_t last_flush; /* processing time of the last write, ms */
    uint64_t records;
} fsink;

/* Appends the JSON line of `rec` to s->out. */
static void fsink_format(fsink *s, const weir_record *rec)
{
    fsink_buf *b = &s->out;
    if (fsink_utf8_valid(rec->key, rec->key_len)) {
        fsink_puts(b, "{\"key\":");
        fsink_json_string(b, rec->key, rec->key_len);
    } else {
        fsink_puts(b, "{\"key_b64\":");
        fsink_json_base64(b, rec->key, rec->key_len);
    }
    if (rec->ts != WEIR_TS_NONE) {
        fsink_puts(b, ",\"ts\":");
        fsink_put_i64(b, rec->ts);
    }
    if (rec->value_len) {
        size_t off = 0;
        int ok =
            mpscan_plausible(rec->value, rec->value_len) &&
            msgpack_unpack_next(&s->rd.unpacked, rec->value, rec->value_len,
                                &off) == MSGPACK_UNPACK_SUCCESS &&
            off == rec->value_len;
        if (ok) {
            fsink_puts(b, ",\"value\":");
            fsink_json_value(b, &s->rd.unpacked.data);
        } else {
            fsink_puts(b, ",\"value_b64\":");
            fsink_json_base64(b, rec->value, rec->value_len);
        }
    }
    fsink_puts(b, "}\n");
}

/* Writes the buffered lines of a file_sink with one write(). */
static int fsink_flush(weir_ctx *ctx, fsink *s)
{
    if (s->to_stdout || !s->out.len)
        return WEIR_OK;
    int rc = s->commit ? fparts_write(ctx, &s->parts, s->out.p, s->out.len)
                       : fsink_file_write(ctx, &s->file, s->out.p, s->out.len);
    s->out.len = 0;
    s->last_flush = weir_now(ctx);
    return rc;
}

static int fsink_stdout_flush(weir_ctx *ctx)
{
    if (fflush(stdout) != 0) {
        weir_set_error(ctx, "stdout: flush failed: %s", strerror(errno));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

/* commit=checkpoint: the first callback other than restore() cleans up
 * what an earlier run left. */
static int fsink_ready(weir_ctx *ctx, fsink *s)
{
    return s->commit && !s->parts.ready ? fparts_start(ctx, &s->parts)
                                        : WEIR_OK;
}

static int fsink_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    fsink *s = self;
    int rc = fsink_ready(ctx, s);
    if (rc < 0)
        return rc;
    size_t start = s->out.len;
    fsink_format(s, rec);
    if (s->out.oom) {
        s->out.len = start;
        s->out.oom = 0;
        weir_set_error(ctx,
                       "%s: out of memory formatting a record of %zu "
                       "bytes",
                       s->to_stdout ? "stdout" : "file_sink", rec->value_len);
        return WEIR_ENOMEM;
    }
    s->records++;
    if (s->to_stdout) {
        size_t n = s->out.len;
        s->out.len = 0;
        if (fwrite(s->out.p, 1, n, stdout) != n) {
            weir_set_error(ctx, "stdout: write failed: %s", strerror(errno));
            return WEIR_EIO;
        }
        return s->flush_record ? fsink_stdout_flush(ctx) : WEIR_OK;
    }
    if (s->flush_record || s->out.len >= FSINK_BUF_FLUSH ||
        weir_now(ctx) - s->last_flush >= FSINK_FLUSH_MS)
        return fsink_flush(ctx, s);
    return WEIR_OK;
}

/* Makes everything received so far durable as far as configured. */
static int fsink_sync(weir_ctx *ctx, fsink *s)
{
    if (s->to_stdout)
        return fsink_stdout_flush(ctx);
    int rc = fsink_flush(ctx, s);
    if (rc == WEIR_OK && s->do_fsync)
        rc = s->commit ? fparts_sync(ctx, &s->parts)
                       : fsink_file_sync(ctx, &s->file);
    return rc;
}

/* commit=checkpoint: pre-commit the transaction of checkpoint `id`. */
static int fsink_precommit(weir_ctx *ctx, fsink *s, uint64_t id)
{
    int rc = fsink_ready(ctx, s);
    if (rc == WEIR_OK)
        rc = fsink_flush(ctx, s);
    if (rc == WEIR_OK)
        rc = fparts_precommit(ctx, &s->parts, id);
    if (rc == WEIR_OK)
        rc = fparts_snapshot(ctx, &s->parts, id);
    return rc;
}

static int fsink_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    fsink *s = self;
    return s->commit ? fsink_precommit(ctx, s, checkpoint_id)
                     : fsink_sync(ctx, s);
}

static int fsink_notify(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    fsink *s = self;
    if (!s->commit)
        return WEIR_OK;
    int rc = fsink_ready(ctx, s);
    return rc < 0 ? rc : fparts_commit(ctx, &s->parts, checkpoint_id);
}

static int fsink_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                         uint32_t version, const void *data, size_t len)
{
    fsink *s = self;
    if (s->commit)
        return fparts_restore(ctx, &s->parts, checkpoint_id, version, data,
                              len);
    if (version != 0 && version != FPARTS_SNAPSHOT_VERSION) {
        weir_set_error(ctx,
                       "file_sink: the snapshot of checkpoint %llu has "
                       "version %u; this plugin reads version %u",
                       (unsigned long long)checkpoint_id, version,
                       FPARTS_SNAPSHOT_VERSION);
        return WEIR_EINVAL;
    }
    if (len != 0) {
        weir_set_error(ctx,
                       "file_sink: checkpoint %llu was taken with "
                       "commit=checkpoint and lists pending part files; "
                       "restore it with commit=checkpoint",
                       (unsigned long long)checkpoint_id);
        return WEIR_EINVAL;
    }
    return WEIR_OK;
}

static int fsink_finish(weir_ctx *ctx, void *self)
{
    fsink *s = self;
    int rc = fsink_ready(ctx, s);
    if (rc == WEIR_OK)
        rc = fsink_sync(ctx, s);
    s->finished = 1;
    return rc;
}

static void fsink_free(fsink *s)
{
    fsink_file_close(&s->file);
    fparts_close(&s->parts);
    weir_mp_reader_destroy(&s->rd);
    free(s->out.p);
    free(s);
}

static void fsink_close(weir_ctx *ctx, void *self)
{
    fsink *s = self;
    if (!s)
        return;
    /* Keep what was received when a job is stopped without finish(). With
     * commit=checkpoint, uncommitted lines stay where they are: a restore
     * deletes them and the records are replayed. */
    if (s->to_stdout)
        fflush(stdout);
    else if (s->commit && s->finished && fparts_uncommitted(&s->parts))
        weir_log(ctx, WEIR_LOG_WARN,
                 "file_sink: %s: records of subtask %u were not committed: "
                 "the job ended without a completed final checkpoint "
                 "(commit=checkpoint needs checkpointing)",
                 s->parts.dir, s->parts.sub);
    else if (!s->commit && s->out.len && fsink_flush(ctx, s) < 0)
        weir_log(ctx, WEIR_LOG_WARN, "file_sink: %s: lines lost at close",
                 s->file.path);
    fsink_free(s);
}

/* ------------------------------------------------------------------------ */
/* Open                                                                      */
/* ------------------------------------------------------------------------ */

static int fsink_enum_is(weir_ctx *ctx, const char *op, const char *name,
                         const char *choice, int *out)
{
    const char *p;
    size_t n;
    int rc = weir_param_string(ctx, name, &p, &n);
    if (rc < 0) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       weir_strerror(rc));
        return rc;
    }
    *out = n == strlen(choice) && memcmp(p, choice, n) == 0;
    return WEIR_OK;
}

static fsink *fsink_new(weir_ctx *ctx)
{
    fsink *s = calloc(1, sizeof *s);
    if (!s) {
        weir_set_error(ctx, "file_sink: out of memory");
        return NULL;
    }
    s->file.fd = -1;
    s->parts.fd = -1;
    weir_mp_reader_init(&s->rd);
    s->last_flush = weir_now(ctx);
    return s;
}

/* The file this subtask writes: path, with the subtask index inserted for
 * per_subtask mode with parallelism > 1. With commit=checkpoint, sets up
 * the part directory `path` instead. */
static int fsink_path(weir_ctx *ctx, fsink *s, int merged)
{
    const char *p;
    size_t n;
    int rc = weir_param_string(ctx, "path", &p, &n);
    if (rc < 0) {
        weir_set_error(ctx, "file_sink: parameter path: %s", weir_strerror(rc));
        return rc;
    }
    if (s->commit && n > 0 && !memchr(p, '\0', n))
        return fparts_open(ctx, &s->parts, p, n, weir_subtask_index(ctx));
    if (n == 0 || memchr(p, '\0', n) || p[n - 1] == '/') {
        weir_set_error(ctx, "file_sink: parameter path: '%.*s' %s", (int)n, p,
                       n == 0            ? "is empty"
                       : p[n - 1] == '/' ? "names a directory; give a file name"
                                         : "contains a NUL byte");
        return WEIR_EINVAL;
    }
    uint32_t par = weir_parallelism(ctx), sub = weir_subtask_index(ctx);
    if (!merged && par > 1) {
        s->file.path = fsink_subtask_path(p, n, sub);
    } else if ((s->file.path = malloc(n + 1))) {
        memcpy(s->file.path, p, n);
        s->file.path[n] = '\0';
    }
    if (!s->file.path) {
        weir_set_error(ctx, "file_sink: out of memory");
        return WEIR_ENOMEM;
    }
    return WEIR_OK;
}

static int fsink_file_open_cb(weir_ctx *ctx, void **self)
{
    fsink *s = fsink_new(ctx);
    if (!s)
        return WEIR_ENOMEM;
    int merged, rc;
    if ((rc = fsink_enum_is(ctx, "file_sink", "mode", "merged", &merged)) < 0 ||
        (rc = fsink_enum_is(ctx, "file_sink", "flush", "record",
                            &s->flush_record)) < 0 ||
        (rc = fsink_enum_is(ctx, "file_sink", "commit", "checkpoint",
                            &s->commit)) < 0)
        goto fail;
    if (s->commit && merged) {
        weir_set_error(ctx, "file_sink: mode=merged cannot be combined with "
                            "commit=checkpoint, which writes part files per "
                            "subtask");
        rc = WEIR_EINVAL;
        goto fail;
    }
    if ((rc = weir_param_bool(ctx, "fsync", &s->do_fsync)) < 0) {
        weir_set_error(ctx, "file_sink: parameter fsync: %s",
                       weir_strerror(rc));
        goto fail;
    }
    if ((rc = fsink_path(ctx, s, merged)) < 0 ||
        (!s->commit && (rc = fsink_file_open(ctx, &s->file, merged)) < 0))
        goto fail;
    *self = s;
    return WEIR_OK;
fail:
    fsink_free(s);
    return rc;
}

static int fsink_stdout_open_cb(weir_ctx *ctx, void **self)
{
    fsink *s = fsink_new(ctx);
    if (!s)
        return WEIR_ENOMEM;
    int rc = fsink_enum_is(ctx, "stdout", "flush", "record", &s->flush_record);
    if (rc < 0) {
        fsink_free(s);
        return rc;
    }
    s->to_stdout = 1;
    *self = s;
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static const char *const fsink_no_ports[] = {NULL};

static const weir_operator fsink_file_op = {
    .size = sizeof(weir_operator),
    .name = "file_sink",
    .version = "1.1.0",
    .description = "writes records as JSON lines {\"key\",\"ts\",\"value\"} "
                   "to a file per subtask or one merged file, or "
                   "exactly-once to committed part files",
    .output_ports = fsink_no_ports,
    .params = fsink_file_params,
    .snapshot_version = FPARTS_SNAPSHOT_VERSION,
    .open = fsink_file_open_cb,
    .process = fsink_process,
    .snapshot = fsink_snapshot,
    .restore = fsink_restore,
    .notify_checkpoint_complete = fsink_notify,
    .finish = fsink_finish,
    .close = fsink_close,
};

static const weir_operator fsink_stdout_op = {
    .size = sizeof(weir_operator),
    .name = "stdout",
    .version = "1.0.0",
    .description = "writes records as JSON lines {\"key\",\"ts\",\"value\"} "
                   "to standard output",
    .output_ports = fsink_no_ports,
    .params = fsink_stdout_params,
    .open = fsink_stdout_open_cb,
    .process = fsink_process,
    .snapshot = fsink_snapshot,
    .finish = fsink_finish,
    .close = fsink_close,
};

static const weir_operator *const fsink_ops[] = {&fsink_file_op,
                                                 &fsink_stdout_op, NULL};

static const weir_plugin fsink_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "file_sink",
    .version = "1.1.0",
    .description = "JSON lines sinks: file_sink and stdout",
    .operators = fsink_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &fsink_plugin;
}
