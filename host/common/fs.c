#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

int fs_mkdirs(const char *path, char **errptr)
{
    char *p = strdup(path);
    if (!p)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    int rc = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c)
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0777) < 0 && errno != EEXIST) {
            rc = fs_write_error(errptr, errno, p, "cannot create directory %s",
                                p);
            break;
        }
        *c = saved;
        if (!saved)
            break;
    }
    free(p);
    return rc;
}

/* Removes the contents of the directory dfd (at `path`, for messages). */
static int rm_contents(int dfd, const char *path, char **errptr)
{
    int dup_fd = dup(dfd);
    DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
    if (!d) {
        int e = errno;
        if (dup_fd >= 0)
            close(dup_fd);
        return err_set(errptr, WEIR_EIO, "rmtree %s: opendir: %s", path,
                       strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
            if (errno == ENOENT)
                continue;
            rc = err_set(errptr, WEIR_EIO, "rmtree %s/%s: stat: %s", path, name,
                         strerror(errno));
            goto out;
        }
        if (S_ISDIR(st.st_mode)) {
            char *child = NULL;
            if (asprintf(&child, "%s/%s", path, name) < 0)
                child = NULL;
            int cfd = openat(dfd, name,
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (!child || cfd < 0) {
                rc = err_set(errptr, WEIR_EIO, "rmtree %s/%s: open: %s", path,
                             name, child ? strerror(errno) : "out of memory");
                free(child);
                if (cfd >= 0)
                    close(cfd);
                goto out;
            }
            rc = rm_contents(cfd, child, errptr);
            close(cfd);
            free(child);
            if (rc)
                goto out;
        }
        if (unlinkat(dfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) &&
            errno != ENOENT) {
            rc = err_set(errptr, WEIR_EIO, "rmtree %s/%s: %s", path, name,
                         strerror(errno));
            goto out;
        }
    }
    if (errno)
        rc = err_set(errptr, WEIR_EIO, "rmtree %s: readdir: %s", path,
                     strerror(errno));
out:
    closedir(d);
    return rc;
}

int fs_rmtree(const char *path, char **errptr)
{
    struct stat st;
    if (lstat(path, &st)) {
        if (errno == ENOENT)
            return 0;
        return err_set(errptr, WEIR_EIO, "rmtree %s: stat: %s", path,
                       strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) && errno != ENOENT)
            return err_set(errptr, WEIR_EIO, "rmtree %s: %s", path,
                           strerror(errno));
        return 0;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return err_set(errptr, WEIR_EIO, "rmtree %s: open: %s", path,
                       strerror(errno));
    int rc = rm_contents(fd, path, errptr);
    close(fd);
    if (rc)
        return rc;
    if (rmdir(path) && errno != ENOENT)
        return err_set(errptr, WEIR_EIO, "rmtree %s: %s", path,
                       strerror(errno));
    return 0;
}

/* The pid written in a lock file by its holder, or 0. */
static long fs_lock_holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* Records this process as the holder of the lock on fd. */
static void fs_lock_mark(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) == n)
        return;
    /* The pid only improves a message: a failure changes nothing. */
}

static int64_t fs_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fs_lock_dir(const char *dir, const char *name, const char *what,
                int64_t wait_ms, char **errptr)
{
    int rc = fs_mkdirs(dir, errptr);
    if (rc < 0)
        return rc;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return fs_write_error(errptr, errno, path, "cannot open %s", path);
    int64_t deadline = fs_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            fs_lock_mark(fd);
            return fd;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        if (e != EWOULDBLOCK) {
            close(fd);
            return err_set(errptr, WEIR_EIO, "cannot lock %s: %s", path,
                           strerror(e));
        }
        if (fs_mono_ms() >= deadline)
            break;
        struct timespec pause = {0, 10 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    long holder = fs_lock_holder(fd);
    close(fd);
    char pid[48] = "";
    if (holder > 0)
        snprintf(pid, sizeof pid, " by process %ld", holder);
    return err_set(errptr, FS_ELOCKED,
                   "%s %s is locked%s (lock file %s), still after waiting "
                   "%lld ms: another weir process is running this job",
                   what, dir, pid, path,
                   (long long)(wait_ms > 0 ? wait_ms : 0));
}

int fs_read_file(const char *path, char **data, size_t *len, char **errptr)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(errptr, WEIR_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", path);
            }
            buf = b;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(errptr, WEIR_EIO, "%s: read error", path);
    }
    buf[n] = 0; /* the loop ends with n < cap */
    *data = buf;
    *len = n;
    return 0;
}

int fs_write_file(const char *path, const void *data, size_t len, char **errptr)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return fs_write_error(errptr, errno, path, "%s", path);
    const char *p = data;
    int e = 0;
    while (len > 0 && !e) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            e = errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    if (!e && fsync(fd) < 0)
        e = errno;
    if (close(fd) < 0 && !e)
        e = errno;
    if (!e)
        return 0;
    unlink(path);
    return fs_write_error(errptr, e, path, "%s", path);
}

/* ------------------------------------------------------------------------ */
/* Free space                                                                */
/* ------------------------------------------------------------------------ */

int fs_is_nospace(int e)
{
    return e == ENOSPC || e == EDQUOT;
}

/* The directory of `path` that exists: path itself when it is a directory,
 * else its parent, walking up; "." for a relative path with no such
 * ancestor. Malloc'ed, or NULL when out of memory. */
static char *fs_existing_dir(const char *path)
{
    char *d = strdup(path && *path ? path : ".");
    struct stat st;
    while (d && (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))) {
        char *slash = strrchr(d, '/');
        if (!slash) {
            free(d);
            return strdup(".");
        }
        if (slash == d) {
            d[1] = '\0';
            break;
        }
        *slash = '\0';
    }
    return d;
}

int fs_space(const char *path, uint64_t *avail, uint64_t *total)
{
    char *dir = fs_existing_dir(path);
    struct statvfs v;
    int rc = dir && statvfs(dir, &v) == 0 ? 0 : WEIR_EIO;
    free(dir);
    if (rc == 0) {
        *avail = (uint64_t)v.f_bavail * v.f_frsize;
        *total = (uint64_t)v.f_blocks * v.f_frsize;
    }
    return rc;
}

int fs_nospace(char **errptr, const char *path, uint64_t need)
{
    char *dir = fs_existing_dir(path);
    struct statvfs v;
    char needs[64] = "";
    if (need > 0)
        snprintf(needs, sizeof needs, ", below the %llu bytes needed",
                 (unsigned long long)need);
    if (!dir)
        return err_set(errptr, FS_ENOSPC, "no space left on device: %s", path);
    if (statvfs(dir, &v) != 0)
        err_set(errptr, FS_ENOSPC,
                "no space left on device: %s (free space unknown: %s)", dir,
                strerror(errno));
    else
        err_set(errptr, FS_ENOSPC,
                "no space left on device: %s has %llu bytes free (of %llu)%s",
                dir, (unsigned long long)v.f_bavail * v.f_frsize,
                (unsigned long long)v.f_blocks * v.f_frsize, needs);
    free(dir);
    return FS_ENOSPC;
}

int fs_check_space(const char *path, uint64_t need, char **errptr)
{
    uint64_t avail, total;
    if (fs_space(path, &avail, &total) < 0 || avail >= need)
        return 0;
    return fs_nospace(errptr, path, need);
}

int fs_write_error(char **errptr, int e, const char *path, const char *fmt, ...)
{
    char *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&what, fmt, ap) < 0)
        what = NULL;
    va_end(ap);
    int rc;
    if (fs_is_nospace(e)) {
        rc = fs_nospace(errptr, path, 0);
        err_prefix(errptr, "%s", what ? what : path);
    } else {
        rc = err_set(errptr, WEIR_EIO, "%s: %s", what ? what : path,
                     strerror(e));
    }
    free(what);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* File-creation mask                                                        */
/* ------------------------------------------------------------------------ */

int fs_access_umask(const char *access)
{
    static const struct {
        const char *name;
        int mask;
    } modes[] = {{"private", 077}, {"group", 027}, {"world", 022}};
    for (size_t i = 0; access && i < sizeof modes / sizeof modes[0]; i++)
        if (!strcmp(access, modes[i].name))
            return modes[i].mask;
    return -1;
}

void fs_apply_access(const char *access)
{
    int mask = fs_access_umask(access);
    if (mask >= 0)
        umask((mode_t)mask);
}

char *fs_newest_entry(const char *dir, int (*keep)(const char *path, void *arg),
                      void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    size_t skip = strlen(dir) + 1; /* best + skip: its name */
    char *best = NULL, *path = NULL;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' ||
            (best && strcmp(e->d_name, best + skip) <= 0))
            continue;
        if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
            break;
        if (keep(path, arg)) {
            free(best);
            best = path;
        } else {
            free(path);
        }
    }
    closedir(d);
    return best;
}
