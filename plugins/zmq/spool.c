/*
 * spool.c - see spool.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "le.h"

#define ZSPOOL_MAGIC      "WZSPOOL1"
#define ZSPOOL_MARK_MAGIC "WZSPMARK"
#define ZSPOOL_MARK_LEN   36
#define ZSPOOL_REC_HDR    8u
#define ZSPOOL_MAX_REC    (1u << 30) /* larger payloads are damage */
#define ZSPOOL_READ_CHUNK 262144
#define ZSPOOL_WHO        "zmq_source: spool"

/* ------------------------------------------------------------------------ */
/* Little helpers                                                            */
/* ------------------------------------------------------------------------ */

static void zspool_put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static uint16_t zspool_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void zspool_crc_init(uint32_t tab[256])
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        tab[i] = c;
    }
}

static uint32_t zspool_crc(const uint32_t tab[256], const void *data, size_t n)
{
    const unsigned char *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = tab[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static char *zspool_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static char *zspool_seg_path(const zspool *sp, uint64_t seg, const char *ext)
{
    char name[64];
    snprintf(name, sizeof name, "seg-%020" PRIu64 ".%s", seg, ext);
    return zspool_join(sp->dir, name);
}

static int zspool_oom(weir_ctx *ctx)
{
    weir_set_error(ctx, ZSPOOL_WHO ": out of memory");
    return WEIR_ENOMEM;
}

static int zspool_sys(weir_ctx *ctx, const char *what, const char *path)
{
    weir_set_error(ctx, ZSPOOL_WHO " %s: %s failed: %s", path, what,
                   strerror(errno));
    return WEIR_EIO;
}

static int zspool_fsync_dir(weir_ctx *ctx, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return zspool_sys(ctx, "open", dir);
    int rc = fsync(fd);
    close(fd);
    return rc < 0 ? zspool_sys(ctx, "fsync", dir) : WEIR_OK;
}

/* Writes all n bytes at offset off. */
static int zspool_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t w = pwrite(fd, c, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        c += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* Creates dir and its missing parents. */
static int zspool_mkdirs(weir_ctx *ctx, const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return zspool_oom(ctx);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c)
            continue;
        char save = *c;
        *c = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            int rc = zspool_sys(ctx, "mkdir", p);
            free(p);
            return rc;
        }
        *c = save;
        if (!save)
            break;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        weir_set_error(ctx, ZSPOOL_WHO " %s: not a directory", dir);
        return WEIR_EINVAL;
    }
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Buffers and records                                                       */
/* ------------------------------------------------------------------------ */

static int zspool_wreserve(zspool *sp, size_t n)
{
    if (sp->wcap - sp->wlen >= n)
        return 0;
    size_t cap = sp->wcap ? sp->wcap : 65536;
    while (cap - sp->wlen < n)
        cap *= 2;
    char *p = realloc(sp->wbuf, cap);
    if (!p)
        return -1;
    sp->wbuf = p;
    sp->wcap = cap;
    return 0;
}

/* Frames the payload at sp->wbuf + at + ZSPOOL_REC_HDR (plen bytes). */
static void zspool_frame(zspool *sp, size_t at, size_t plen)
{
    unsigned char *h = (unsigned char *)sp->wbuf + at;
    le_put_u32(h, (uint32_t)plen);
    le_put_u32(h + 4, zspool_crc(sp->crc_tab, h + ZSPOOL_REC_HDR, plen));
}

/* Appends the 'W' record of the current window to the write buffer. */
static int zspool_put_window(zspool *sp)
{
    size_t plen = 5;
    for (uint32_t i = 0; i < sp->win.n; i++)
        plen += 2 + zidw_at(&sp->win, i)->len;
    if (zspool_wreserve(sp, ZSPOOL_REC_HDR + plen) < 0)
        return -1;
    size_t at = sp->wlen;
    unsigned char *p = (unsigned char *)sp->wbuf + at + ZSPOOL_REC_HDR;
    *p++ = 'W';
    le_put_u32(p, sp->win.n);
    p += 4;
    for (uint32_t i = 0; i < sp->win.n; i++) {
        const zidw_ent *e = zidw_at(&sp->win, i);
        zspool_put_u16(p, (uint16_t)e->len);
        memcpy(p + 2, e->p, e->len);
        p += 2 + e->len;
    }
    zspool_frame(sp, at, plen);
    sp->wlen += ZSPOOL_REC_HDR + plen;
    return 0;
}

/* Decodes an 'M' payload. */
static int zspool_parse(const unsigned char *p, size_t n, zspool_rec *r)
{
    memset(r, 0, sizeof *r);
    if (n == 1 && p[0] == 'E') {
        r->end = 1;
        return 0;
    }
    if (n < 19 || p[0] != 'M')
        return -1;
    size_t at = 1, k = le_get_u32(p + at);
    at += 4;
    if (k > n - at)
        return -1;
    r->key = p + at;
    r->key_len = k;
    at += k;
    if (n - at < 12)
        return -1;
    r->ts = (int64_t)le_get_u64(p + at);
    at += 8;
    size_t v = le_get_u32(p + at);
    at += 4;
    if (v > n - at || n - at - v < 2)
        return -1;
    r->value = p + at;
    r->value_len = v;
    at += v;
    size_t i = zspool_u16(p + at);
    at += 2;
    if (i != n - at)
        return -1;
    r->id = i ? p + at : NULL;
    r->id_len = i;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Cursor                                                                    */
/* ------------------------------------------------------------------------ */

static void zspool_cur_close(zspool_cur *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->blen = 0;
}

static void zspool_cur_free(zspool_cur *c)
{
    zspool_cur_close(c);
    free(c->buf);
    c->buf = NULL;
    c->cap = 0;
}

static int zspool_cur_open(weir_ctx *ctx, zspool *sp, zspool_cur *c,
                           uint64_t seg, uint64_t off)
{
    zspool_cur_close(c);
    char *path = zspool_seg_path(sp, seg, "log");
    if (!path)
        return zspool_oom(ctx);
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = c->fd < 0 ? zspool_sys(ctx, "open", path) : WEIR_OK;
    free(path);
    c->seg = seg;
    c->off = off;
    c->boff = off;
    c->blen = 0;
    return rc;
}

/* Makes bytes [c->off, c->off + n) of the file available in c->buf,
 * reading up to `limit`. Returns 0, -1 when the file ends first, or a
 * negative WEIR code after an I/O error (reported). */
static int zspool_cur_fill(weir_ctx *ctx, zspool *sp, zspool_cur *c, size_t n,
                           uint64_t limit)
{
    if (c->off >= c->boff && c->off + n <= c->boff + c->blen)
        return 0;
    if (c->off + n > limit)
        return -1;
    size_t want = n > ZSPOOL_READ_CHUNK ? n : ZSPOOL_READ_CHUNK;
    if (want > limit - c->off)
        want = (size_t)(limit - c->off);
    if (want > c->cap) {
        char *p = realloc(c->buf, want);
        if (!p)
            return zspool_oom(ctx);
        c->buf = p;
        c->cap = want;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r =
            pread(c->fd, c->buf + got, want - got, (off_t)(c->off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            weir_set_error(
                ctx, ZSPOOL_WHO " %s: reading segment %" PRIu64 " failed: %s",
                sp->dir, c->seg, strerror(errno));
            return WEIR_EIO;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    c->boff = c->off;
    c->blen = got;
    return got >= n ? 0 : -1;
}

/* Reads the record at c->off (below `limit`): 1 with its payload, -1 when
 * it is torn or damaged (*why says how), or a negative WEIR code. */
static int zspool_cur_record(weir_ctx *ctx, zspool *sp, zspool_cur *c,
                             uint64_t limit, const unsigned char **payload,
                             size_t *plen, const char **why)
{
    int rc = zspool_cur_fill(ctx, sp, c, ZSPOOL_REC_HDR, limit);
    if (rc != 0) {
        *why = "a record header is cut short";
        return rc;
    }
    const unsigned char *h =
        (const unsigned char *)c->buf + (size_t)(c->off - c->boff);
    uint32_t n = le_get_u32(h), crc = le_get_u32(h + 4);
    if (n == 0 || n > ZSPOOL_MAX_REC) {
        *why = "a record length is impossible";
        return -1;
    }
    if ((rc = zspool_cur_fill(ctx, sp, c, ZSPOOL_REC_HDR + n, limit)) != 0) {
        *why = "a record is cut short";
        return rc;
    }
    h = (const unsigned char *)c->buf + (size_t)(c->off - c->boff);
    if (zspool_crc(sp->crc_tab, h + ZSPOOL_REC_HDR, n) != crc) {
        *why = "a record's checksum does not match";
        return -1;
    }
    *payload = h + ZSPOOL_REC_HDR;
    *plen = n;
    c->off += ZSPOOL_REC_HDR + n;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Segments                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t zspool_size(const zspool *sp, uint64_t seg)
{
    return sp->sizes[seg - sp->first];
}

static int zspool_push_size(weir_ctx *ctx, zspool *sp, uint64_t size)
{
    size_t n = (size_t)(sp->last - sp->first + 1);
    uint64_t *p = realloc(sp->sizes, (n + 1) * sizeof *p);
    if (!p)
        return zspool_oom(ctx);
    p[n] = size;
    sp->sizes = p;
    return WEIR_OK;
}

/* Creates segment `seg` holding the header and the window record through a
 * temporary file and a rename; leaves it open in sp->wfd. */
static int zspool_create_segment(weir_ctx *ctx, zspool *sp, uint64_t seg)
{
    char *tmp = zspool_seg_path(sp, seg, "tmp");
    char *path = zspool_seg_path(sp, seg, "log");
    int rc = WEIR_OK, fd = -1;
    if (!tmp || !path) {
        rc = zspool_oom(ctx);
        goto out;
    }
    sp->wlen = 0;
    if (zspool_wreserve(sp, ZSPOOL_HDR) < 0 || zspool_put_window(sp) < 0) {
        rc = zspool_oom(ctx);
        goto out;
    }
    /* The header goes before the window record. */
    memmove(sp->wbuf + ZSPOOL_HDR, sp->wbuf, sp->wlen);
    memcpy(sp->wbuf, ZSPOOL_MAGIC, 8);
    le_put_u64((unsigned char *)sp->wbuf + 8, sp->id);
    le_put_u64((unsigned char *)sp->wbuf + 16, seg);
    sp->wlen += ZSPOOL_HDR;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = zspool_sys(ctx, "create", tmp);
        goto out;
    }
    if (zspool_pwrite(fd, sp->wbuf, sp->wlen, 0) < 0 || fsync(fd) < 0) {
        rc = zspool_sys(ctx, "write", tmp);
        goto out;
    }
    if (rename(tmp, path) < 0) {
        rc = zspool_sys(ctx, "rename", tmp);
        goto out;
    }
    if ((rc = zspool_fsync_dir(ctx, sp->dir)) < 0)
        goto out;
    uint64_t size = sp->wlen;
    sp->wlen = 0;
    if (sp->wfd >= 0) {
        if ((rc = zspool_push_size(ctx, sp, size)) < 0)
            goto out;
        close(sp->wfd);
        sp->last = seg;
    } else {
        sp->sizes = malloc(sizeof *sp->sizes);
        if (!sp->sizes) {
            rc = zspool_oom(ctx);
            goto out;
        }
        sp->sizes[0] = size;
        sp->first = sp->last = seg;
    }
    sp->wfd = fd;
    fd = -1;
    sp->seg_msgs = 0;
    sp->dirty = 0;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    free(path);
    return rc;
}

/* Closes the full segment (fsync) and starts the next one. */
static int zspool_roll(weir_ctx *ctx, zspool *sp)
{
    int rc = zspool_flush(ctx, sp, 1);
    return rc < 0 ? rc : zspool_create_segment(ctx, sp, sp->last + 1);
}

/* ------------------------------------------------------------------------ */
/* Recovery                                                                  */
/* ------------------------------------------------------------------------ */

static int zspool_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the segment numbers in the directory (ascending) and deletes the
 * temporary files. */
static int zspool_list(weir_ctx *ctx, zspool *sp, uint64_t **segs, size_t *n)
{
    DIR *d = opendir(sp->dir);
    if (!d)
        return zspool_sys(ctx, "opendir", sp->dir);
    size_t cap = 0;
    int rc = WEIR_OK;
    struct dirent *e;
    *segs = NULL;
    *n = 0;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        size_t len = strlen(s);
        if (len > 4 && strcmp(s + len - 4, ".tmp") == 0) {
            char *p = zspool_join(sp->dir, s);
            if (p)
                unlink(p);
            free(p);
            continue;
        }
        char *end;
        if (strncmp(s, "seg-", 4) != 0 || len != 28 ||
            strcmp(s + 24, ".log") != 0)
            continue;
        errno = 0;
        uint64_t num = strtoull(s + 4, &end, 10);
        if (errno || end != s + 24 || num == 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *p = realloc(*segs, cap * sizeof *p);
            if (!p) {
                rc = zspool_oom(ctx);
                break;
            }
            *segs = p;
        }
        (*segs)[(*n)++] = num;
    }
    closedir(d);
    if (rc == WEIR_OK && *n)
        qsort(*segs, *n, sizeof **segs, zspool_cmp_u64);
    return rc;
}

static int zspool_read_mark(weir_ctx *ctx, zspool *sp, int *have)
{
    char *path = zspool_join(sp->dir, "committed");
    if (!path)
        return zspool_oom(ctx);
    *have = 0;
    int rc = WEIR_OK, fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char b[ZSPOOL_MARK_LEN + 1];
    if (fd < 0) {
        if (errno != ENOENT)
            rc = zspool_sys(ctx, "open", path);
        goto out;
    }
    ssize_t n = read(fd, b, sizeof b);
    close(fd);
    if (n != ZSPOOL_MARK_LEN || memcmp(b, ZSPOOL_MARK_MAGIC, 8) != 0 ||
        zspool_crc(sp->crc_tab, b, 32) != le_get_u32(b + 32)) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: the mark file is damaged; delete the "
                                  "spool directory to start it anew",
                       path);
        rc = WEIR_EINVAL;
        goto out;
    }
    sp->id = le_get_u64(b + 8);
    sp->mark.seg = le_get_u64(b + 16);
    sp->mark.off = le_get_u64(b + 24);
    *have = 1;
out:
    free(path);
    return rc;
}

static int zspool_write_mark(weir_ctx *ctx, zspool *sp, zspool_pos pos)
{
    unsigned char b[ZSPOOL_MARK_LEN];
    memcpy(b, ZSPOOL_MARK_MAGIC, 8);
    le_put_u64(b + 8, sp->id);
    le_put_u64(b + 16, pos.seg);
    le_put_u64(b + 24, pos.off);
    le_put_u32(b + 32, zspool_crc(sp->crc_tab, b, 32));
    char *tmp = zspool_join(sp->dir, "committed.tmp");
    char *path = zspool_join(sp->dir, "committed");
    int rc = WEIR_OK;
    if (!tmp || !path) {
        rc = zspool_oom(ctx);
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = zspool_sys(ctx, "create", tmp);
        goto out;
    }
    if (zspool_pwrite(fd, b, sizeof b, 0) < 0 || fsync(fd) < 0) {
        rc = zspool_sys(ctx, "write", tmp);
        close(fd);
        goto out;
    }
    close(fd);
    if (rename(tmp, path) < 0)
        rc = zspool_sys(ctx, "rename", tmp);
    else
        rc = zspool_fsync_dir(ctx, sp->dir);
out:
    free(tmp);
    free(path);
    return rc;
}

/* Checks the header of segment `seg`, learning the spool id from the
 * first one read, and returns its size. */
static int zspool_check_header(weir_ctx *ctx, zspool *sp, uint64_t seg,
                               int *have_id, uint64_t *size)
{
    char *path = zspool_seg_path(sp, seg, "log");
    if (!path)
        return zspool_oom(ctx);
    int rc = WEIR_OK, fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char h[ZSPOOL_HDR];
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = zspool_sys(ctx, "open", path);
        goto out;
    }
    if (pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
        memcmp(h, ZSPOOL_MAGIC, 8) != 0 || le_get_u64(h + 16) != seg) {
        weir_set_error(ctx, ZSPOOL_WHO " %s: not a spool segment (bad header)",
                       path);
        rc = WEIR_EINVAL;
        goto out;
    }
    if (*have_id && le_get_u64(h + 8) != sp->id) {
        weir_set_error(ctx,
                       ZSPOOL_WHO
                       " %s: belongs to another spool (id %016" PRIx64
                       ", expected %016" PRIx64 ")",
                       path, le_get_u64(h + 8), sp->id);
        rc = WEIR_EINVAL;
        goto out;
    }
    sp->id = le_get_u64(h + 8);
    *have_id = 1;
    *size = (uint64_t)st.st_size;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

/* Rebuilds the window from a 'W' payload. */
static int zspool_load_window(zspool *sp, const unsigned char *p, size_t n)
{
    if (n < 5 || p[0] != 'W')
        return -1;
    uint32_t count = le_get_u32(p + 1);
    size_t at = 5;
    if (!sp->win.cap)
        return 0;
    zidw_clear(&sp->win);
    for (uint32_t i = 0; i < count; i++) {
        if (n - at < 2)
            return -1;
        size_t len = zspool_u16(p + at);
        at += 2;
        if (len > n - at || len > ZIDW_MAX_ID)
            return -1;
        if (!zidw_has(&sp->win, p + at, len) &&
            zidw_add(&sp->win, p + at, len) < 0)
            return -2;
        at += len;
    }
    return at == n ? 0 : -1;
}

/* Takes one record of the newest segment into the recovered state: the
 * window (k == 0), a message id, the end. Returns 0, -1 when the record
 * does not belong there (*why), or a negative WEIR code. */
static int zspool_scan_one(weir_ctx *ctx, zspool *sp, uint64_t k,
                           const unsigned char *p, size_t n, const char **why)
{
    zspool_rec r;
    if (k == 0) {
        int rc = zspool_load_window(sp, p, n);
        if (rc == -2)
            return zspool_oom(ctx);
        if (rc == -1)
            *why = "the first record is not a valid window record";
        return rc;
    }
    if (sp->ended) {
        *why = "a record follows the end record";
        return -1;
    }
    if (zspool_parse(p, n, &r) < 0) {
        *why = "a record does not decode";
        return -1;
    }
    if (r.end) {
        sp->ended = 1;
        return 0;
    }
    sp->seg_msgs++;
    if (r.id_len && sp->win.cap && !zidw_has(&sp->win, r.id, r.id_len) &&
        zidw_add(&sp->win, r.id, r.id_len) < 0)
        return zspool_oom(ctx);
    return 0;
}

/* Scans the newest segment (window, message ids, end record) and
 * truncates a torn or damaged tail. */
static int zspool_scan_last(weir_ctx *ctx, zspool *sp)
{
    zspool_cur c = {.fd = -1};
    uint64_t size = zspool_size(sp, sp->last), at = ZSPOOL_HDR;
    int rc = zspool_cur_open(ctx, sp, &c, sp->last, ZSPOOL_HDR);
    const char *why = NULL;
    char *path = NULL;
    for (uint64_t k = 0; rc == WEIR_OK && c.off < size; k++) {
        const unsigned char *p;
        size_t n;
        at = c.off;
        rc = zspool_cur_record(ctx, sp, &c, size, &p, &n, &why);
        if (rc == 1)
            rc = zspool_scan_one(ctx, sp, k, p, n, &why);
        if (rc == -1 && k == 0) {
            weir_set_error(ctx,
                           ZSPOOL_WHO " %s: segment %" PRIu64
                                      " is damaged at its start (%s)",
                           sp->dir, sp->last, why);
            rc = WEIR_EINVAL;
        }
    }
    if (rc == -1) {
        sp->dropped = size - at;
        path = zspool_seg_path(sp, sp->last, "log");
        if (!path || truncate(path, (off_t)at) < 0) {
            rc = path ? zspool_sys(ctx, "truncate", path) : zspool_oom(ctx);
            goto out;
        }
        weir_log(ctx, WEIR_LOG_WARN,
                 ZSPOOL_WHO " %s: dropped the last %" PRIu64
                            " byte(s) of segment %" PRIu64
                            " from offset %" PRIu64
                            " (%s): a write the previous worker did not "
                            "finish, whose messages were not acknowledged",
                 sp->dir, sp->dropped, sp->last, at, why);
        sp->sizes[sp->last - sp->first] = at;
        rc = WEIR_OK;
    }
out:
    zspool_cur_free(&c);
    free(path);
    return rc;
}

static uint64_t zspool_random_id(void)
{
    uint64_t id = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &id, sizeof id) != (ssize_t)sizeof id)
            id = 0;
        close(fd);
    }
    if (!id) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        id = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
             ((uint64_t)getpid() << 16);
    }
    return id ? id : 1;
}

/* Loads the existing segments: headers, numbering, sizes; deletes those
 * before the mark. */
static int zspool_load(weir_ctx *ctx, zspool *sp, const uint64_t *segs,
                       size_t n, int have_mark)
{
    int have_id = have_mark, rc = WEIR_OK;
    for (size_t i = 1; i < n; i++)
        if (segs[i] != segs[i - 1] + 1) {
            weir_set_error(ctx,
                           ZSPOOL_WHO " %s: segment %" PRIu64
                                      " is missing (segments %" PRIu64
                                      "..%" PRIu64 " exist); the directory was "
                                      "changed by hand",
                           sp->dir, segs[i - 1] + 1, segs[0], segs[n - 1]);
            return WEIR_EINVAL;
        }
    if (have_mark && (sp->mark.seg < segs[0] || sp->mark.seg > segs[n - 1])) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: the mark names segment %" PRIu64
                                  ", which does not exist (segments %" PRIu64
                                  "..%" PRIu64 ")",
                       sp->dir, sp->mark.seg, segs[0], segs[n - 1]);
        return WEIR_EINVAL;
    }
    size_t from = 0;
    while (have_mark && segs[from] < sp->mark.seg) {
        char *path = zspool_seg_path(sp, segs[from], "log");
        if (!path)
            return zspool_oom(ctx);
        if (unlink(path) < 0 && errno != ENOENT)
            rc = zspool_sys(ctx, "unlink", path);
        free(path);
        if (rc < 0)
            return rc;
        from++;
    }
    sp->first = segs[from];
    sp->last = segs[n - 1];
    sp->sizes = calloc(n - from, sizeof *sp->sizes);
    if (!sp->sizes)
        return zspool_oom(ctx);
    for (size_t i = from; i < n && rc == WEIR_OK; i++)
        rc = zspool_check_header(ctx, sp, segs[i], &have_id,
                                 &sp->sizes[i - from]);
    if (rc == WEIR_OK && !have_mark)
        sp->mark = (zspool_pos){sp->first, ZSPOOL_HDR};
    if (rc == WEIR_OK && sp->mark.off > zspool_size(sp, sp->mark.seg)) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: the mark (segment %" PRIu64
                                  ", offset %" PRIu64
                                  ") is beyond the end of its segment",
                       sp->dir, sp->mark.seg, sp->mark.off);
        rc = WEIR_EINVAL;
    }
    return rc;
}

int zspool_open(weir_ctx *ctx, zspool *sp, const char *dir,
                uint64_t segment_bytes, int sync_always, uint32_t window)
{
    memset(sp, 0, sizeof *sp);
    sp->wfd = -1;
    sp->rd.fd = -1;
    sp->segment_bytes = segment_bytes;
    sp->sync_always = sync_always;
    zspool_crc_init(sp->crc_tab);
    uint64_t *segs = NULL;
    size_t n = 0;
    int have_mark = 0, rc;
    if (!(sp->dir = strdup(dir)))
        return zspool_oom(ctx);
    if (window && zidw_init(&sp->win, window) < 0) {
        rc = zspool_oom(ctx);
        goto fail;
    }
    if ((rc = zspool_mkdirs(ctx, dir)) < 0 ||
        (rc = zspool_read_mark(ctx, sp, &have_mark)) < 0 ||
        (rc = zspool_list(ctx, sp, &segs, &n)) < 0)
        goto fail;
    if (n == 0 && have_mark) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: a mark but no segment: the segments "
                                  "were deleted by hand; delete the whole "
                                  "directory to start the spool anew",
                       dir);
        rc = WEIR_EINVAL;
        goto fail;
    }
    if (n == 0) {
        sp->id = zspool_random_id();
        if ((rc = zspool_create_segment(ctx, sp, 1)) < 0)
            goto fail;
        sp->mark = (zspool_pos){1, ZSPOOL_HDR};
    } else {
        if ((rc = zspool_load(ctx, sp, segs, n, have_mark)) < 0 ||
            (rc = zspool_scan_last(ctx, sp)) < 0)
            goto fail;
        char *path = zspool_seg_path(sp, sp->last, "log");
        if (!path) {
            rc = zspool_oom(ctx);
            goto fail;
        }
        sp->wfd = open(path, O_WRONLY | O_CLOEXEC);
        rc = sp->wfd < 0 ? zspool_sys(ctx, "open", path) : WEIR_OK;
        /* What a killed worker wrote but did not sync is durable before
         * its ids can acknowledge a resent message. */
        if (rc == WEIR_OK && fdatasync(sp->wfd) < 0)
            rc = zspool_sys(ctx, "fdatasync", path);
        free(path);
        if (rc < 0)
            goto fail;
    }
    free(segs);
    return WEIR_OK;
fail:
    free(segs);
    zspool_close(sp);
    return rc;
}

void zspool_close(zspool *sp)
{
    if (sp->wfd >= 0 && sp->wlen)
        (void)zspool_pwrite(sp->wfd, sp->wbuf, sp->wlen,
                            zspool_size(sp, sp->last));
    if (sp->wfd >= 0)
        close(sp->wfd);
    zspool_cur_free(&sp->rd);
    zidw_free(&sp->win);
    free(sp->wbuf);
    free(sp->sizes);
    free(sp->dir);
    memset(sp, 0, sizeof *sp);
    sp->wfd = -1;
    sp->rd.fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */
/* ------------------------------------------------------------------------ */

int zspool_seen(const zspool *sp, const void *id, size_t len)
{
    return sp->win.cap && zidw_has(&sp->win, id, len);
}

int zspool_append(weir_ctx *ctx, zspool *sp, const zspool_rec *r)
{
    if (sp->ended) {
        weir_set_error(ctx, ZSPOOL_WHO " %s: append after the end record",
                       sp->dir);
        return WEIR_ESTATE;
    }
    if (r->id_len > ZIDW_MAX_ID || r->key_len > ZSPOOL_MAX_REC / 2 ||
        r->value_len > ZSPOOL_MAX_REC / 2) {
        weir_set_error(ctx, ZSPOOL_WHO " %s: message too large", sp->dir);
        return WEIR_EINVAL;
    }
    size_t plen = 19 + r->key_len + r->value_len + r->id_len;
    int rc;
    if (sp->seg_msgs &&
        zspool_size(sp, sp->last) + sp->wlen + ZSPOOL_REC_HDR + plen >
            sp->segment_bytes &&
        (rc = zspool_roll(ctx, sp)) < 0)
        return rc;
    if (zspool_wreserve(sp, ZSPOOL_REC_HDR + plen) < 0)
        return zspool_oom(ctx);
    if (r->id_len && sp->win.cap && !zidw_has(&sp->win, r->id, r->id_len) &&
        zidw_add(&sp->win, r->id, r->id_len) < 0)
        return zspool_oom(ctx);
    size_t at = sp->wlen;
    unsigned char *p = (unsigned char *)sp->wbuf + at + ZSPOOL_REC_HDR;
    *p++ = 'M';
    le_put_u32(p, (uint32_t)r->key_len);
    p += 4;
    if (r->key_len)
        memcpy(p, r->key, r->key_len);
    p += r->key_len;
    le_put_u64(p, (uint64_t)r->ts);
    p += 8;
    le_put_u32(p, (uint32_t)r->value_len);
    p += 4;
    if (r->value_len)
        memcpy(p, r->value, r->value_len);
    p += r->value_len;
    zspool_put_u16(p, (uint16_t)r->id_len);
    if (r->id_len)
        memcpy(p + 2, r->id, r->id_len);
    zspool_frame(sp, at, plen);
    sp->wlen += ZSPOOL_REC_HDR + plen;
    sp->seg_msgs++;
    return WEIR_OK;
}

int zspool_append_end(weir_ctx *ctx, zspool *sp)
{
    if (sp->ended)
        return WEIR_OK;
    if (zspool_wreserve(sp, ZSPOOL_REC_HDR + 1) < 0)
        return zspool_oom(ctx);
    sp->wbuf[sp->wlen + ZSPOOL_REC_HDR] = 'E';
    zspool_frame(sp, sp->wlen, 1);
    sp->wlen += ZSPOOL_REC_HDR + 1;
    sp->ended = 1;
    return WEIR_OK;
}

int zspool_flush(weir_ctx *ctx, zspool *sp, int sync)
{
    if (sp->wlen) {
        uint64_t at = zspool_size(sp, sp->last);
        if (zspool_pwrite(sp->wfd, sp->wbuf, sp->wlen, at) < 0) {
            weir_set_error(
                ctx, ZSPOOL_WHO " %s: writing segment %" PRIu64 " failed: %s",
                sp->dir, sp->last, strerror(errno));
            return WEIR_EIO;
        }
        sp->sizes[sp->last - sp->first] = at + sp->wlen;
        sp->wlen = 0;
        sp->dirty = 1;
    }
    if ((sync || sp->sync_always) && sp->dirty) {
        if (fdatasync(sp->wfd) < 0) {
            weir_set_error(ctx,
                           ZSPOOL_WHO " %s: fdatasync of segment %" PRIu64
                                      " failed: %s",
                           sp->dir, sp->last, strerror(errno));
            return WEIR_EIO;
        }
        sp->dirty = 0;
    }
    return WEIR_OK;
}

int zspool_reopen(weir_ctx *ctx, zspool *sp)
{
    if (!sp->ended)
        return WEIR_OK;
    int rc = zspool_flush(ctx, sp, 1);
    if (rc < 0)
        return rc;
    /* The ids of the ended stream do not carry over to the next one. */
    if (sp->win.cap)
        zidw_clear(&sp->win);
    rc = zspool_create_segment(ctx, sp, sp->last + 1);
    if (rc == WEIR_OK)
        sp->ended = 0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                   */
/* ------------------------------------------------------------------------ */

int zspool_seek(weir_ctx *ctx, zspool *sp, zspool_pos pos)
{
    if (pos.seg < sp->first || pos.seg > sp->last) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: segment %" PRIu64
                                  " %s (segments %" PRIu64 "..%" PRIu64
                                  " exist): the position cannot be replayed",
                       sp->dir, pos.seg,
                       pos.seg < sp->first
                           ? "was deleted after a newer checkpoint completed"
                           : "does not exist yet",
                       sp->first, sp->last);
        return WEIR_EINVAL;
    }
    uint64_t size = zspool_size(sp, pos.seg);
    if (pos.off < ZSPOOL_HDR || pos.off > size) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: offset %" PRIu64
                                  " is outside segment %" PRIu64 " (%" PRIu64
                                  " bytes)",
                       sp->dir, pos.off, pos.seg, size);
        return WEIR_EINVAL;
    }
    int rc = zspool_cur_open(ctx, sp, &sp->rd, pos.seg, ZSPOOL_HDR);
    while (rc == WEIR_OK && sp->rd.off < pos.off) {
        const unsigned char *p;
        size_t n;
        const char *why = "";
        rc = zspool_cur_record(ctx, sp, &sp->rd, size, &p, &n, &why);
        if (rc == -1) {
            weir_set_error(ctx,
                           ZSPOOL_WHO " %s: segment %" PRIu64
                                      " is damaged before offset %" PRIu64
                                      " (%s)",
                           sp->dir, pos.seg, pos.off, why);
            rc = WEIR_EINVAL;
        } else if (rc == 1) {
            rc = WEIR_OK;
        }
    }
    if (rc == WEIR_OK && sp->rd.off != pos.off) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: offset %" PRIu64 " of segment %" PRIu64
                                  " is not the start of a record",
                       sp->dir, pos.off, pos.seg);
        rc = WEIR_EINVAL;
    }
    sp->positioned = rc == WEIR_OK;
    return rc;
}

int zspool_next(weir_ctx *ctx, zspool *sp, zspool_rec *rec)
{
    for (;;) {
        zspool_cur *c = &sp->rd;
        uint64_t limit = zspool_size(sp, c->seg);
        if (c->off >= limit) {
            if (c->seg >= sp->last)
                return 0;
            int rc = zspool_cur_open(ctx, sp, c, c->seg + 1, ZSPOOL_HDR);
            if (rc < 0)
                return rc;
            continue;
        }
        const unsigned char *p;
        size_t n;
        const char *why = "";
        uint64_t at = c->off;
        int rc = zspool_cur_record(ctx, sp, c, limit, &p, &n, &why);
        if (rc == 1 && n >= 1 && p[0] == 'W')
            continue;
        if (rc == 1 && zspool_parse(p, n, rec) == 0)
            return 1;
        if (rc < -1)
            return rc;
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: segment %" PRIu64
                                  " is damaged at offset %" PRIu64 " (%s)",
                       sp->dir, c->seg, at,
                       rc == 1 ? "a record does not decode" : why);
        return WEIR_EIO;
    }
}

zspool_pos zspool_tell(const zspool *sp)
{
    return (zspool_pos){sp->rd.seg, sp->rd.off};
}

zspool_pos zspool_end(const zspool *sp)
{
    return (zspool_pos){sp->last, zspool_size(sp, sp->last) + sp->wlen};
}

/* ------------------------------------------------------------------------ */
/* Marks                                                                     */
/* ------------------------------------------------------------------------ */

int zspool_commit(weir_ctx *ctx, zspool *sp, zspool_pos pos)
{
    if (pos.seg < sp->first || pos.seg > sp->last) {
        weir_set_error(ctx,
                       ZSPOOL_WHO " %s: cannot commit segment %" PRIu64
                                  " (segments %" PRIu64 "..%" PRIu64 ")",
                       sp->dir, pos.seg, sp->first, sp->last);
        return WEIR_EINVAL;
    }
    if (pos.seg == sp->mark.seg && pos.off == sp->mark.off)
        return WEIR_OK;
    int rc = zspool_write_mark(ctx, sp, pos);
    if (rc < 0)
        return rc;
    sp->mark = pos;
    while (sp->first < pos.seg) {
        char *path = zspool_seg_path(sp, sp->first, "log");
        if (!path)
            return zspool_oom(ctx);
        if (unlink(path) < 0 && errno != ENOENT)
            rc = zspool_sys(ctx, "unlink", path);
        free(path);
        if (rc < 0)
            return rc;
        memmove(sp->sizes, sp->sizes + 1,
                (size_t)(sp->last - sp->first) * sizeof *sp->sizes);
        sp->first++;
    }
    return WEIR_OK;
}

uint64_t zspool_behind(const zspool *sp)
{
    uint64_t total = sp->wlen;
    for (uint64_t s = sp->mark.seg; s <= sp->last; s++)
        total += zspool_size(sp, s);
    return total - sp->mark.off;
}
