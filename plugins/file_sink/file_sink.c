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

#include "jsonrec.h"
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
    jrec_buf out;       /* formatted lines not yet written */
    weir_mp_reader rd;  /* unpacks values */
    int64_t last_flush; /* processing time of the last write, ms */
    uint64_t records;
} fsink;

/* Appends the JSON line of `rec` to s->out. */
/* Appends ,"value":JSON from the value's bytes without unpacking them
 * (jrec_mp_bytes_to_json); 0 with b as it was when they need msgpack-c. */
static int fsink_value_direct(jrec_buf *b, const weir_record *rec)
{
    size_t mark = b->len;
    jrec_puts(b, ",\"value\":");
    if (jrec_mp_bytes_to_json(b, rec->value, rec->value_len))
        return 1;
    if (b->len > mark)
        b->len = mark;
    return 0;
}

static void fsink_format(fsink *s, const weir_record *rec)
{
    jrec_buf *b = &s->out;
    if (jrec_utf8_valid(rec->key, rec->key_len)) {
        jrec_puts(b, "{\"key\":");
        jrec_json_string(b, rec->key, rec->key_len);
    } else {
        jrec_puts(b, "{\"key_b64\":");
        jrec_json_base64(b, rec->key, rec->key_len);
    }
    if (rec->ts != WEIR_TS_NONE) {
        jrec_puts(b, ",\"ts\":");
        jrec_put_i64(b, rec->ts);
    }
    if (rec->value_len && !fsink_value_direct(b, rec)) {
        size_t off = 0;
        int ok =
            mpscan_plausible(rec->value, rec->value_len) &&
            msgpack_unpack_next(&s->rd.unpacked, rec->value, rec->value_len,
                                &off) == MSGPACK_UNPACK_SUCCESS &&
            off == rec->value_len;
        if (ok) {
            jrec_puts(b, ",\"value\":");
            jrec_mp_to_json(b, &s->rd.unpacked.data);
        } else {
            jrec_puts(b, ",\"value_b64\":");
            jrec_json_base64(b, rec->value, rec->value_len);
        }
    }
    jrec_puts(b, "}\n");
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
