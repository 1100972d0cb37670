/*
 * fsutil.c - listing, checksumming, durable writes, removal and
 * materialization of checkpoint directories (fsutil.h, manifest.h).
 *
 * Trees are walked with openat()/fdopendir() relative to a directory fd and
 * never follow symbolic links, so a path that changes under a walk cannot
 * lead it outside the tree.
 */
#include "checkpoint/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/crash.h"
#include "common/err.h"
#include "common/fs.h"

#include "weir/weir.h"

int ckpt_is_sst(const char *name)
{
    size_t n = strlen(name);
    return n >= 4 && strcmp(name + n - 4, ".sst") == 0;
}

/* "<a>/<b>", or b when a is empty; NULL when out of memory. */
static char *join(const char *a, const char *b)
{
    char *s = NULL;
    if (!*a)
        return strdup(b);
    return asprintf(&s, "%s/%s", a, b) < 0 ? NULL : s;
}

static int hash_fd_buf(int fd, const char *name, void *buf, uint64_t *size,
                       uint64_t *xxh3, char **errptr)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", name);
    XXH3_64bits_reset(st);
    uint64_t total = 0;
    off_t off = 0;
    int rc = 0;
    for (;;) {
        ssize_t r = pread(fd, buf, CKPT_IO_CHUNK, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(errptr, WEIR_EIO, "%s: read: %s", name,
                         strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        XXH3_64bits_update(st, buf, (size_t)r);
        total += (uint64_t)r;
        off += r;
    }
    *size = total;
    *xxh3 = XXH3_64bits_digest(st);
out:
    XXH3_freeState(st);
    return rc;
}

int ckpt_hash_fd(int fd, const char *name, uint64_t *size, uint64_t *xxh3,
                 char **errptr)
{
    void *buf = malloc(CKPT_IO_CHUNK);
    if (!buf)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", name);
    int rc = hash_fd_buf(fd, name, buf, size, xxh3, errptr);
    free(buf);
    return rc;
}

void ckpt_files_free(ckpt_file *files, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
}

/* ------------------------------------------------------------------------ */
/* Scanning a checkpoint                                                     */
/* ------------------------------------------------------------------------ */

typedef struct scan {
    ckpt_file *v;
    size_t n, cap;
    ckpt_sum_cache *cache;
    void *buf;
    const char *const *skip;
} scan;

static int skipped(const scan *s, const char *rel)
{
    for (const char *const *p = s->skip; p && *p; p++)
        if (strcmp(*p, rel) == 0)
            return 1;
    return 0;
}

static int scan_add(scan *s, char *rel, uint64_t size, uint64_t xxh3)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        ckpt_file *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (ckpt_file){rel, size, xxh3};
    return 0;
}

/* Checksums (or looks up) the regular file `name` of directory dfd. */
static int scan_file(scan *s, int dfd, const char *name, char *rel,
                     char **errptr)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        err_set(errptr, WEIR_EIO, "%s: open: %s", rel, strerror(errno));
        free(rel);
        return WEIR_EIO;
    }
    struct stat st;
    uint64_t size = 0, sum = 0;
    int rc = 0;
    int sst = s->cache && ckpt_is_sst(name);
    if (fstat(fd, &st)) {
        rc = err_set(errptr, WEIR_EIO, "%s: stat: %s", rel, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(errptr, WEIR_EIO, "%s: not a regular file", rel);
        goto out;
    }
    if (sst && ckpt_sum_cache_lookup(s->cache, &st, name, &sum)) {
        size = (uint64_t)st.st_size;
    } else {
        rc = hash_fd_buf(fd, rel, s->buf, &size, &sum, errptr);
        if (rc)
            goto out;
        if (size != (uint64_t)st.st_size) {
            rc = err_set(errptr, WEIR_EIO,
                         "%s: changed while being read (%llu bytes, then "
                         "%llu)",
                         rel, (unsigned long long)st.st_size,
                         (unsigned long long)size);
            goto out;
        }
        if (fsync(fd)) {
            rc = err_set(errptr, WEIR_EIO, "%s: fsync: %s", rel,
                         strerror(errno));
            goto out;
        }
        if (sst && ckpt_sum_cache_put(s->cache, &st, name, sum)) {
            rc = err_set(errptr, WEIR_ENOMEM, "%s: out of memory", rel);
            goto out;
        }
    }
    if (scan_add(s, rel, size, sum)) {
        rc = err_set(errptr, WEIR_ENOMEM, "%s: out of memory", rel);
        goto out;
    }
    rel = NULL; /* owned by the list now */
out:
    free(rel);
    close(fd);
    return rc;
}

/* Walks the directory dfd (path `rel` under the root; "" for the root). */
static int scan_dir(scan *s, int dfd, const char *rel, char **errptr)
{
    const char *shown = *rel ? rel : ".";
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        int e = errno;
        if (dup_fd >= 0)
            close(dup_fd);
        return err_set(errptr, WEIR_EIO, "%s: opendir: %s", shown, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (!*rel && skipped(s, name))
            continue;
        char *child = join(rel, name);
        if (!child) {
            rc = err_set(errptr, WEIR_ENOMEM, "%s: out of memory", shown);
            goto out;
        }
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
            rc = err_set(errptr, WEIR_EIO, "%s: stat: %s", child,
                         strerror(errno));
            free(child);
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            int cfd = openat(dfd, name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (cfd < 0) {
                rc = err_set(errptr, WEIR_EIO, "%s: open: %s", child,
                             strerror(errno));
                free(child);
                goto out;
            }
            rc = scan_dir(s, cfd, child, errptr);
            close(cfd);
            free(child);
        } else if (S_ISREG(st.st_mode)) {
            rc = scan_file(s, dfd, name, child, errptr);
        } else {
            rc = err_set(errptr, WEIR_EIO, "%s: not a regular file", child);
            free(child);
        }
        if (rc)
            goto out;
    }
    if (errno) {
        rc = err_set(errptr, WEIR_EIO, "%s: readdir: %s", shown,
                     strerror(errno));
        goto out;
    }
    if (fsync(dfd))
        rc = err_set(errptr, WEIR_EIO, "%s: fsync: %s", shown, strerror(errno));
out:
    closedir(d);
    return rc;
}

static int file_cmp(const void *a, const void *b)
{
    return strcmp(((const ckpt_file *)a)->path, ((const ckpt_file *)b)->path);
}

int ckpt_scan_tree(const char *root, const char *const *skip,
                   ckpt_sum_cache *cache, ckpt_file **files, size_t *n,
                   char **errptr)
{
    scan s = {.cache = cache, .skip = skip};
    int rc = 0;
    int dfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return err_set(errptr, errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO,
                       "cannot open the directory: %s", strerror(errno));
    s.buf = malloc(CKPT_IO_CHUNK);
    if (!s.buf) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    if (cache)
        ckpt_sum_cache_begin(cache);
    rc = scan_dir(&s, dfd, "", errptr);
    if (rc)
        goto out;
    if (cache)
        ckpt_sum_cache_end(cache);
    if (s.n)
        qsort(s.v, s.n, sizeof *s.v, file_cmp);
    *files = s.v;
    *n = s.n;
    s.v = NULL;
    s.n = 0;
out:
    ckpt_files_free(s.v, s.n);
    free(s.buf);
    close(dfd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Durable writes and reads                                                  */
/* ------------------------------------------------------------------------ */

int ckpt_fsync_dir(const char *path, char **errptr)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(errptr, WEIR_EIO, "%s: open: %s", path, strerror(errno));
    int rc = 0;
    if (fsync(fd))
        rc = err_set(errptr, WEIR_EIO, "%s: fsync: %s", path, strerror(errno));
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int ckpt_write_atomic(const char *dir, const char *path, const void *data,
                      size_t len, const char *crash_written, char **errptr)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.tmp", path) < 0)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        rc = fs_write_error(errptr, errno, dir, "%s: open", tmp);
        goto out;
    }
    const char *step = write_all(fd, data, len) ? "write"
                       : fsync(fd)              ? "fsync"
                                                : NULL;
    int e = errno;
    if (close(fd) && !step) {
        step = "close";
        e = errno;
    }
    if (step) {
        rc = fs_write_error(errptr, e, dir, "%s: %s", tmp, step);
        unlink(tmp);
        goto out;
    }
    if (crash_written)
        crash_point(crash_written);
    if (rename(tmp, path)) {
        rc = err_set(errptr, WEIR_EIO, "rename %s to %s: %s", tmp, path,
                     strerror(errno));
        goto out;
    }
    rc = ckpt_fsync_dir(dir, errptr);
out:
    free(tmp);
    return rc;
}

int ckpt_read_file(const char *path, char **data, size_t *len, char **errptr)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return err_set(errptr, WEIR_ENOTFOUND, "missing");
        return err_set(errptr, WEIR_EIO, "open: %s", strerror(errno));
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = 0;
    for (;;) {
        if (cap - n < 4096) {
            size_t ncap = cap ? 2 * cap : 16384;
            char *b = realloc(buf, ncap);
            if (!b) {
                rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
                goto out;
            }
            buf = b;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(errptr, WEIR_EIO, "read: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Materialization                                                           */
/* ------------------------------------------------------------------------ */

/* Copies file `name` of sdfd into ddfd; `dst` (the destination's root) is
 * named when its file system is full. */
static int copy_at(int sdfd, int ddfd, const char *name, mode_t mode, void *buf,
                   const char *rel, const char *dst, char **errptr)
{
    int in = openat(sdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0)
        return err_set(errptr, WEIR_EIO, "%s: open: %s", rel, strerror(errno));
    int rc = 0;
    int out = openat(ddfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                     mode & 0777);
    if (out < 0) {
        rc = fs_write_error(errptr, errno, dst, "%s: create", rel);
        goto out;
    }
    for (;;) {
        ssize_t r = read(in, buf, CKPT_IO_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc =
                err_set(errptr, WEIR_EIO, "%s: read: %s", rel, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        if (write_all(out, buf, (size_t)r)) {
            rc = fs_write_error(errptr, errno, dst, "%s: write", rel);
            goto out;
        }
    }
    if (close(out)) {
        out = -1;
        rc = fs_write_error(errptr, errno, dst, "%s: close", rel);
        goto out;
    }
    out = -1;
out:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

/* Copies the contents of directory sdfd into the empty directory ddfd
 * (below the destination root `dst`). */
static int materialize_dir(int sdfd, int ddfd, const char *rel, void *buf,
                           const char *dst, char **errptr)
{
    const char *shown = *rel ? rel : ".";
    int dup_fd = dup(sdfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        int e = errno;
        if (dup_fd >= 0)
            close(dup_fd);
        return err_set(errptr, WEIR_EIO, "%s: opendir: %s", shown, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        char *child = join(rel, name);
        if (!child) {
            rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
            goto out;
        }
        struct stat st;
        if (fstatat(sdfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
            rc = err_set(errptr, WEIR_EIO, "%s: stat: %s", child,
                         strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            int s2 = -1, d2 = -1;
            if (mkdirat(ddfd, name, 0777) ||
                (s2 = openat(sdfd, name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
                    0 ||
                (d2 = openat(ddfd, name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) <
                    0)
                rc = fs_write_error(errptr, errno, dst, "%s", child);
            else
                rc = materialize_dir(s2, d2, child, buf, dst, errptr);
            if (s2 >= 0)
                close(s2);
            if (d2 >= 0)
                close(d2);
        } else if (!S_ISREG(st.st_mode)) {
            rc = err_set(errptr, WEIR_EIO, "%s: not a regular file", child);
        } else if (ckpt_is_sst(name) && linkat(sdfd, name, ddfd, name, 0)) {
            if (errno == EXDEV || errno == EPERM || errno == EMLINK)
                rc = copy_at(sdfd, ddfd, name, st.st_mode, buf, child, dst,
                             errptr);
            else
                rc = err_set(errptr, WEIR_EIO, "%s: link: %s", child,
                             strerror(errno));
        } else if (!ckpt_is_sst(name)) {
            rc = copy_at(sdfd, ddfd, name, st.st_mode, buf, child, dst, errptr);
        }
        free(child);
        if (rc)
            goto out;
    }
    if (errno)
        rc = err_set(errptr, WEIR_EIO, "%s: readdir: %s", shown,
                     strerror(errno));
out:
    closedir(d);
    return rc;
}

/* mkdir -p of the parent directories of `path`. */
static int mkdir_parents(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    for (char *s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = 0;
        if (mkdir(p, 0777) && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    free(p);
    return 0;
}

int ckpt_materialize(const char *src, const char *dst, char **errptr)
{
    int rc = 0, sfd = -1, dfd = -1, created = 0;
    void *buf = NULL;
    sfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sfd < 0) {
        rc = err_set(errptr, errno == ENOENT ? WEIR_ENOTFOUND : WEIR_EIO,
                     "source: %s", strerror(errno));
        goto out;
    }
    if (mkdir_parents(dst) || mkdir(dst, 0777)) {
        if (errno == EEXIST)
            rc = err_set(errptr, WEIR_EINVAL, "destination already exists");
        else
            rc = fs_write_error(errptr, errno, dst, "destination");
        goto out;
    }
    created = 1;
    dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        rc = err_set(errptr, WEIR_EIO, "destination: %s", strerror(errno));
        goto out;
    }
    buf = malloc(CKPT_IO_CHUNK);
    if (!buf) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    rc = materialize_dir(sfd, dfd, "", buf, dst, errptr);
out:
    if (rc) {
        err_prefix(errptr, "materialize %s into %s", src, dst);
        if (created)
            fs_rmtree(dst, NULL);
    }
    free(buf);
    if (dfd >= 0)
        close(dfd);
    if (sfd >= 0)
        close(sfd);
    return rc;
}
