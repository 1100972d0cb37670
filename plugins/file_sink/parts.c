/* parts.c - the part files of file_sink with commit=checkpoint (parts.h). */
#define _POSIX_C_SOURCE 200809L

#include "parts.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#include "le.h"

static const char fparts_magic[4] = {'W', 'F', 'S', 'K'};

/* ------------------------------------------------------------------------ */
/* Names and small helpers                                                   */
/* ------------------------------------------------------------------------ */

static int fparts_oom(weir_ctx *ctx)
{
    weir_set_error(ctx, "file_sink: out of memory");
    return WEIR_ENOMEM;
}

const char *fparts_strerror(int e, const char *path)
{
    static _Thread_local char buf[4200];
    if (e != ENOSPC && e != EDQUOT)
        return strerror(e);
    char dir[4096];
    struct stat st;
    struct statvfs v;
    snprintf(dir, sizeof dir, "%s", path);
    while (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
            break;
        }
        slash[slash == dir] = '\0';
    }
    if (statvfs(dir, &v) != 0)
        snprintf(buf, sizeof buf, "no space left on device: %s", dir);
    else
        snprintf(buf, sizeof buf,
                 "no space left on device: %s has %llu bytes free (of %llu)",
                 dir, (unsigned long long)v.f_bavail * v.f_frsize,
                 (unsigned long long)v.f_blocks * v.f_frsize);
    return buf;
}

/* A malloc'ed formatted string, or NULL when memory runs out. */
static WEIR_PRINTF(1, 2) char *fparts_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* "<dir>/part-<sub>-<id>.jsonl", malloc'ed, or NULL. */
static char *fparts_name(const char *dir, uint32_t sub, uint64_t id)
{
    return fparts_fmt("%s/part-%" PRIu32 "-%" PRIu64 ".jsonl", dir, sub, id);
}

/* Reads a decimal number without leading zeros; advances *pp. */
static int fparts_digits(const char **pp, uint64_t *out)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
        return 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *pp = p;
    *out = v;
    return 1;
}

/* Whether `name` is exactly "part-<sub>-<id>.jsonl"; fills *sub and *id. */
static int fparts_parse(const char *name, uint32_t *sub, uint64_t *id)
{
    uint64_t s, n;
    if (strncmp(name, "part-", 5) != 0)
        return 0;
    name += 5;
    if (!fparts_digits(&name, &s) || s > UINT32_MAX || *name++ != '-' ||
        !fparts_digits(&name, &n) || strcmp(name, ".jsonl") != 0)
        return 0;
    *sub = (uint32_t)s;
    *id = n;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Directories                                                               */
/* ------------------------------------------------------------------------ */

/* mkdir -p `path`; the last component must end up a directory. */
static int fparts_mkdir_p(weir_ctx *ctx, const char *path)
{
    char *tmp = fparts_fmt("%s/", path);
    if (!tmp)
        return fparts_oom(ctx);
    int rc = WEIR_OK;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0777) < 0 && errno != EEXIST) {
            weir_set_error(ctx,
                           "file_sink: path: cannot create the directory "
                           "'%s': %s",
                           tmp, fparts_strerror(errno, tmp));
            rc = WEIR_EIO;
            goto out;
        }
        *p = '/';
    }
    struct stat st;
    if (stat(path, &st) < 0) {
        weir_set_error(ctx, "file_sink: path: cannot stat '%s': %s", path,
                       strerror(errno));
        rc = WEIR_EIO;
    } else if (!S_ISDIR(st.st_mode)) {
        weir_set_error(ctx, "file_sink: path: '%s' is not a directory", path);
        rc = WEIR_EIO;
    }
out:
    free(tmp);
    return rc;
}

/* fsyncs a directory so that the renames and deletions in it are durable. */
static int fparts_sync_dir(weir_ctx *ctx, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        weir_set_error(ctx,
                       "file_sink: cannot open the directory '%s' to fsync "
                       "it: %s",
                       dir, strerror(errno));
        return WEIR_EIO;
    }
    int rc = WEIR_OK;
    if (fsync(fd) < 0) {
        weir_set_error(ctx, "file_sink: fsync of the directory '%s' failed: %s",
                       dir, strerror(errno));
        rc = WEIR_EIO;
    }
    close(fd);
    return rc;
}

static int fparts_sync_dirs(weir_ctx *ctx, const fparts *p)
{
    int rc = fparts_sync_dir(ctx, p->dir);
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->pending);
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->inprogress);
    return rc;
}

/* What fparts_remove() deletes: this subtask's files whose id is > above,
 * or all of them. */
typedef struct fparts_sel {
    int all;
    uint64_t above;
    uint64_t restored; /* for the warning about rolled back files, or 0 */
} fparts_sel;

/* Deletes this subtask's part files in `dir` chosen by `sel`; adds their
 * number to *removed. */
static int fparts_remove(weir_ctx *ctx, const fparts *p, const char *dir,
                         fparts_sel sel, size_t *removed)
{
    DIR *d = opendir(dir);
    if (!d) {
        weir_set_error(ctx, "file_sink: cannot list the directory '%s': %s",
                       dir, strerror(errno));
        return WEIR_EIO;
    }
    int rc = WEIR_OK;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                weir_set_error(ctx, "file_sink: cannot list '%s': %s", dir,
                               strerror(errno));
                rc = WEIR_EIO;
            }
            break;
        }
        uint32_t sub;
        uint64_t id;
        if (!fparts_parse(e->d_name, &sub, &id) || sub != p->sub ||
            (!sel.all && id <= sel.above))
            continue;
        char *path = fparts_fmt("%s/%s", dir, e->d_name);
        if (!path) {
            rc = fparts_oom(ctx);
            break;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            weir_set_error(ctx, "file_sink: cannot delete '%s': %s", path,
                           strerror(errno));
            free(path);
            rc = WEIR_EIO;
            break;
        }
        if (sel.restored)
            weir_log(ctx, WEIR_LOG_WARN,
                     "file_sink: deleted '%s', committed by checkpoint %" PRIu64
                     ", newer than the restored checkpoint %" PRIu64
                     "; its records are written again",
                     path, id, sel.restored);
        free(path);
        (*removed)++;
    }
    closedir(d);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

int fparts_open(weir_ctx *ctx, fparts *p, const char *dir, size_t len,
                uint32_t sub)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->sub = sub;
    while (len > 1 && dir[len - 1] == '/')
        len--;
    p->dir = fparts_fmt("%.*s", (int)len, dir);
    if (p->dir) {
        const char *sep = strcmp(p->dir, "/") == 0 ? "" : "/";
        p->inprogress = fparts_fmt("%s%s.inprogress", p->dir, sep);
        p->pending = fparts_fmt("%s%s.pending", p->dir, sep);
    }
    int rc = WEIR_OK;
    if (!p->dir || !p->inprogress || !p->pending)
        rc = fparts_oom(ctx);
    if (rc == WEIR_OK)
        rc = fparts_mkdir_p(ctx, p->inprogress);
    if (rc == WEIR_OK)
        rc = fparts_mkdir_p(ctx, p->pending);
    if (rc < 0)
        fparts_close(p);
    return rc;
}

int fparts_start(weir_ctx *ctx, fparts *p)
{
    if (p->ready)
        return WEIR_OK;
    if (p->unrestored) {
        weir_set_error(ctx,
                       "file_sink: '%s': restore() failed; the sink "
                       "cannot be used without a successful restore",
                       p->dir);
        return WEIR_ESTATE;
    }
    fparts_sel all = {.all = 1};
    size_t removed = 0;
    int rc = fparts_remove(ctx, p, p->inprogress, all, &removed);
    if (rc == WEIR_OK)
        rc = fparts_remove(ctx, p, p->pending, all, &removed);
    if (rc == WEIR_OK)
        rc = fparts_remove(ctx, p, p->dir, all, &removed);
    if (rc == WEIR_OK && removed)
        rc = fparts_sync_dirs(ctx, p);
    if (rc < 0)
        return rc;
    if (removed)
        weir_log(ctx, WEIR_LOG_INFO,
                 "file_sink: fresh start: deleted %zu part files of subtask "
                 "%" PRIu32 " left in '%s' by an earlier run",
                 removed, p->sub, p->dir);
    p->ready = 1;
    return WEIR_OK;
}

void fparts_close(fparts *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    free(p->cur);
    free(p->dir);
    free(p->inprogress);
    free(p->pending);
    free(p->pend);
    p->cur = p->dir = p->inprogress = p->pending = NULL;
    p->pend = NULL;
    p->n_pend = p->cap_pend = 0;
}

int fparts_uncommitted(const fparts *p)
{
    return p->fd >= 0 || p->n_pend > 0;
}

/* ------------------------------------------------------------------------ */
/* The open transaction                                                      */
/* ------------------------------------------------------------------------ */

int fparts_write(weir_ctx *ctx, fparts *p, const void *data, size_t len)
{
    if (p->fd < 0) {
        free(p->cur);
        p->cur = fparts_name(p->inprogress, p->sub, p->seq);
        if (!p->cur)
            return fparts_oom(ctx);
        p->fd = open(p->cur, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (p->fd < 0) {
            weir_set_error(ctx, "file_sink: cannot create '%s': %s", p->cur,
                           fparts_strerror(errno, p->cur));
            return WEIR_EIO;
        }
        p->seq++;
    }
    const char *b = data;
    while (len) {
        ssize_t w = write(p->fd, b, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            weir_set_error(ctx, "file_sink: %s: write failed: %s", p->cur,
                           w < 0 ? fparts_strerror(errno, p->cur)
                                 : "no progress");
            return WEIR_EIO;
        }
        b += w;
        len -= (size_t)w;
    }
    return WEIR_OK;
}

int fparts_sync(weir_ctx *ctx, fparts *p)
{
    if (p->fd >= 0 && fsync(p->fd) < 0) {
        weir_set_error(ctx, "file_sink: %s: fsync failed: %s", p->cur,
                       fparts_strerror(errno, p->cur));
        return WEIR_EIO;
    }
    return WEIR_OK;
}

static int fparts_push(weir_ctx *ctx, fparts *p, uint64_t id)
{
    if (p->n_pend == p->cap_pend) {
        size_t cap = p->cap_pend ? 2 * p->cap_pend : 8;
        uint64_t *v = realloc(p->pend, cap * sizeof *v);
        if (!v)
            return fparts_oom(ctx);
        p->pend = v;
        p->cap_pend = cap;
    }
    p->pend[p->n_pend++] = id;
    return WEIR_OK;
}

int fparts_precommit(weir_ctx *ctx, fparts *p, uint64_t id)
{
    if (p->n_pend && id <= p->pend[p->n_pend - 1]) {
        weir_set_error(ctx,
                       "file_sink: checkpoint %" PRIu64
                       " is not newer than the pending checkpoint %" PRIu64,
                       id, p->pend[p->n_pend - 1]);
        return WEIR_ESTATE;
    }
    if (p->fd < 0)
        return WEIR_OK; /* an empty transaction leaves no file */
    int rc = fparts_sync(ctx, p);
    if (rc < 0)
        return rc;
    int fd = p->fd;
    p->fd = -1;
    if (close(fd) < 0) {
        weir_set_error(ctx, "file_sink: %s: close failed: %s", p->cur,
                       fparts_strerror(errno, p->cur));
        return WEIR_EIO;
    }
    char *dst = fparts_name(p->pending, p->sub, id);
    if (!dst)
        return fparts_oom(ctx);
    if (rename(p->cur, dst) < 0) {
        weir_set_error(ctx, "file_sink: cannot rename '%s' to '%s': %s", p->cur,
                       dst, fparts_strerror(errno, dst));
        rc = WEIR_EIO;
    }
    free(dst);
    free(p->cur);
    p->cur = NULL;
    if (rc == WEIR_OK)
        rc = fparts_push(ctx, p, id);
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->pending);
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->inprogress);
    return rc;
}

int fparts_snapshot(weir_ctx *ctx, fparts *p, uint64_t id)
{
    size_t len = FPARTS_SNAPSHOT_HEADER + 8 * p->n_pend;
    unsigned char *b = malloc(len);
    if (!b)
        return fparts_oom(ctx);
    memcpy(b, fparts_magic, 4);
    le_put_u32(b + 4, p->sub);
    le_put_u64(b + 8, id);
    le_put_u32(b + 16, (uint32_t)p->n_pend);
    le_put_u32(b + 20, 0);
    for (size_t i = 0; i < p->n_pend; i++)
        le_put_u64(b + FPARTS_SNAPSHOT_HEADER + 8 * i, p->pend[i]);
    int rc = weir_snapshot_write(ctx, b, len);
    free(b);
    if (rc < 0)
        weir_set_error(ctx,
                       "file_sink: %s: writing the snapshot of checkpoint "
                       "%" PRIu64 " failed: %s (commit=checkpoint needs a "
                       "host that stores snapshots)",
                       p->dir, id, weir_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Commit and recovery                                                       */
/* ------------------------------------------------------------------------ */

/* lstat: 1 when `path` exists, 0 when not, < 0 (message set) on error. */
static int fparts_exists(weir_ctx *ctx, const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        return 1;
    if (errno == ENOENT)
        return 0;
    weir_set_error(ctx, "file_sink: cannot stat '%s': %s", path,
                   strerror(errno));
    return WEIR_EIO;
}

/* Renames .pending/part-<sub>-<id>.jsonl into the directory. A transaction
 * found committed already is done; one found nowhere is an error, and so
 * is a committed file that would be replaced. */
static int fparts_commit_one(weir_ctx *ctx, const fparts *p, uint32_t sub,
                             uint64_t id)
{
    char *src = fparts_name(p->pending, sub, id);
    char *dst = fparts_name(p->dir, sub, id);
    int rc = src && dst ? WEIR_OK : fparts_oom(ctx);
    int have_src = rc < 0 ? rc : fparts_exists(ctx, src);
    int have_dst = have_src < 0 ? have_src : fparts_exists(ctx, dst);
    if (rc < 0 || have_src < 0 || have_dst < 0) {
        rc = rc < 0 ? rc : WEIR_EIO;
    } else if (!have_src && have_dst) {
        weir_log(ctx, WEIR_LOG_DEBUG, "file_sink: '%s' was committed already",
                 dst);
    } else if (!have_src) {
        weir_set_error(ctx,
                       "file_sink: the transaction of checkpoint %" PRIu64
                       " is lost: neither '%s' nor '%s' exists",
                       id, src, dst);
        rc = WEIR_EIO;
    } else if (have_dst) {
        weir_set_error(ctx,
                       "file_sink: cannot commit '%s': '%s' exists already "
                       "and is not replaced",
                       src, dst);
        rc = WEIR_EIO;
    } else if (rename(src, dst) < 0) {
        weir_set_error(ctx, "file_sink: cannot rename '%s' to '%s': %s", src,
                       dst, fparts_strerror(errno, dst));
        rc = WEIR_EIO;
    }
    free(src);
    free(dst);
    return rc;
}

int fparts_commit(weir_ctx *ctx, fparts *p, uint64_t id)
{
    size_t k = 0;
    int rc = WEIR_OK;
    while (k < p->n_pend && p->pend[k] <= id) {
        rc = fparts_commit_one(ctx, p, p->sub, p->pend[k]);
        if (rc < 0)
            break;
        k++;
    }
    if (k == 0)
        return rc;
    memmove(p->pend, p->pend + k, (p->n_pend - k) * sizeof *p->pend);
    p->n_pend -= k;
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->dir);
    if (rc == WEIR_OK)
        rc = fparts_sync_dir(ctx, p->pending);
    return rc;
}

/* A snapshot parsed by fparts_decode(); `ids` points into the bytes. */
typedef struct fparts_snap {
    uint32_t writer;
    uint64_t id;
    uint32_t n;
    const unsigned char *ids;
} fparts_snap;

static int fparts_damaged(weir_ctx *ctx, uint64_t id, const char *why)
{
    weir_set_error(
        ctx, "file_sink: the snapshot of checkpoint %" PRIu64 " is damaged: %s",
        id, why);
    return WEIR_EINVAL;
}

/* Checks the snapshot bytes completely before anything is done with them. */
static int fparts_decode(weir_ctx *ctx, const fparts *p, uint64_t id,
                         uint32_t version, const void *data, size_t len,
                         fparts_snap *out)
{
    const unsigned char *b = data;
    *out = (fparts_snap){.writer = p->sub, .id = id};
    if (len == 0 && (version == 0 || version == FPARTS_SNAPSHOT_VERSION))
        return WEIR_OK; /* written without pending transactions */
    if (version != FPARTS_SNAPSHOT_VERSION) {
        weir_set_error(ctx,
                       "file_sink: the snapshot of checkpoint %" PRIu64
                       " has version %" PRIu32 "; this plugin reads version %u",
                       id, version, FPARTS_SNAPSHOT_VERSION);
        return WEIR_EINVAL;
    }
    if (!b || len < FPARTS_SNAPSHOT_HEADER)
        return fparts_damaged(ctx, id, "shorter than its header");
    if (memcmp(b, fparts_magic, 4) != 0)
        return fparts_damaged(ctx, id, "no WFSK magic");
    out->writer = le_get_u32(b + 4);
    out->id = le_get_u64(b + 8);
    out->n = le_get_u32(b + 16);
    out->ids = b + FPARTS_SNAPSHOT_HEADER;
    if ((len - FPARTS_SNAPSHOT_HEADER) / 8 != out->n ||
        (len - FPARTS_SNAPSHOT_HEADER) % 8 != 0)
        return fparts_damaged(ctx, id, "its length does not match its count");
    if (out->id > id)
        return fparts_damaged(ctx, id, "it was taken for a later checkpoint");
    uint64_t prev = 0;
    for (uint32_t i = 0; i < out->n; i++) {
        uint64_t t = le_get_u64(out->ids + 8 * i);
        if ((i && t <= prev) || t > out->id)
            return fparts_damaged(ctx, id,
                                  "its transaction ids are not ascending "
                                  "or not covered by the checkpoint");
        prev = t;
    }
    return WEIR_OK;
}

int fparts_restore(weir_ctx *ctx, fparts *p, uint64_t id, uint32_t version,
                   const void *data, size_t len)
{
    if (p->ready) {
        weir_set_error(ctx, "file_sink: restore() after the sink started "
                            "writing");
        return WEIR_ESTATE;
    }
    fparts_snap s;
    p->unrestored = 1; /* until it succeeds */
    int rc = fparts_decode(ctx, p, id, version, data, len, &s);
    if (rc < 0)
        return rc;
    size_t removed = 0;
    fparts_sel all = {.all = 1};
    rc = fparts_remove(ctx, p, p->inprogress, all, &removed);
    for (uint32_t i = 0; rc == WEIR_OK && i < s.n; i++)
        rc = fparts_commit_one(ctx, p, s.writer,
                               le_get_u64(s.ids + 8 * (size_t)i));
    /* What is still pending belongs to checkpoints that did not complete. */
    if (rc == WEIR_OK)
        rc = fparts_remove(ctx, p, p->pending, all, &removed);
    fparts_sel newer = {.above = id, .restored = id};
    if (rc == WEIR_OK)
        rc = fparts_remove(ctx, p, p->dir, newer, &removed);
    if (rc == WEIR_OK)
        rc = fparts_sync_dirs(ctx, p);
    if (rc < 0)
        return rc;
    weir_log(ctx, WEIR_LOG_INFO,
             "file_sink: '%s': restored checkpoint %" PRIu64 ": %" PRIu32
             " transactions committed, %zu part files deleted",
             p->dir, id, s.n, removed);
    p->unrestored = 0;
    p->ready = 1;
    return WEIR_OK;
}
