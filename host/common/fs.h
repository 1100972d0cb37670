/*
 * fs.h - small file-system helpers shared by the host's subsystems: mkdir -p,
 * rm -rf, whole-file reads and writes, directory locks, free space, the
 * newest run directory of a job, and the process's file-creation mask.
 *
 * Modes. The host creates directories with mode 0777 and files with 0666,
 * and the umask decides the rest: fs_apply_access() sets it from the job's
 * runtime.file_access at process start (private by default: 0700 and 0600),
 * so that RocksDB's files and the plugins' output get it too.
 *
 * Full disks. A write that fails with ENOSPC or EDQUOT, or a free-space
 * check that fails, returns FS_ENOSPC with a message that contains
 * "no space left on device: <dir> has N bytes free (of M)", <dir> being the
 * directory written to (statvfs() at the time of the failure).
 *
 * Thread: reentrant, except fs_apply_access(). Errors: 0 or a negative
 * WEIR_E* code (or FS_ENOSPC) with a one-line message (naming the path and
 * the system's reason) in *errptr.
 */
#ifndef WEIR_HOST_FS_H
#define WEIR_HOST_FS_H

#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

/*
 * Host-internal status: a write failed, or would fail, for want of space.
 * Checkpoint and restore code treats it as a failure of the attempt (the
 * supervisor restarts it under the restart strategy) rather than as a
 * declined checkpoint or a damaged one. It is never returned to a plugin:
 * the state access functions report a full disk as WEIR_EIO with the same
 * message.
 */
#define FS_ENOSPC (-64)

/* The entry of directory `dir` with the greatest name (dot entries left
 * out) for which `keep(path, arg)` returns non-zero, as a malloc'ed
 * "<dir>/<name>"; NULL when there is none, `dir` cannot be read or memory
 * runs out. Run ids start with their UTC start time, so among a job's run
 * directories the greatest name is the newest run. */
char *fs_newest_entry(const char *dir, int (*keep)(const char *path, void *arg),
                      void *arg);

/* mkdir -p: creates `path` and its missing parents (mode 0777 & umask). */
int fs_mkdirs(const char *path, char **errptr);

/* rm -rf: removes `path` and everything below it; a missing path is fine.
 * Symbolic links are removed, never followed (openat/unlinkat relative to
 * each directory, O_NOFOLLOW). Messages start with "rmtree <path>". */
int fs_rmtree(const char *path, char **errptr);

/* Writes `len` bytes to `path` (created or truncated, mode 0666 & umask)
 * and fsyncs it. On failure the file is removed. */
int fs_write_file(const char *path, const void *data, size_t len,
                  char **errptr);

/* Reads a whole file into a malloc'ed buffer (*data, *len), followed by a
 * NUL byte that *len does not count, so that text can be read as a string. */
int fs_read_file(const char *path, char **data, size_t *len, char **errptr);

/*
 * The code fs_lock_dir() returns when another process holds the lock. It is
 * host-internal (outside the WEIR_E* range) and never reaches a plugin.
 */
#define FS_ELOCKED (-100)

/*
 * Takes an exclusive advisory lock (flock) on `<dir>/<name>`, creating dir
 * and file as needed, and writes this process's pid into the file. When
 * another process holds the lock it retries every 10 ms for up to wait_ms
 * (0: not at all); a process that was just killed releases its locks only
 * once all its threads are gone. Returns the descriptor that holds the
 * lock (close it to release; it is also released when the process dies;
 * it is close-on-exec), FS_ELOCKED with a message naming `what`, the
 * directory, the lock file and the holder's pid, or WEIR_EIO.
 */
int fs_lock_dir(const char *dir, const char *name, const char *what,
                int64_t wait_ms, char **errptr);

/* 1 when the errno value `e` means "no space" (ENOSPC, EDQUOT). */
int fs_is_nospace(int e);

/*
 * Free space of the file system holding `path`, or, when `path` does not
 * exist yet, of its nearest existing ancestor: *avail is the space an
 * unprivileged writer may use (f_bavail), *total the file system's size.
 * Returns 0 or WEIR_EIO (errno kept).
 */
int fs_space(const char *path, uint64_t *avail, uint64_t *total);

/*
 * Sets *errptr to "no space left on device: <dir> has N bytes free (of M)"
 * and returns FS_ENOSPC. <dir> is `path` when it is a directory, otherwise
 * the directory that holds it (or would hold it); with `need` > 0 the
 * message goes on with ", below the <need> bytes needed".
 */
int fs_nospace(char **errptr, const char *path, uint64_t need);

/* 0 when the file system of `path` has at least `need` bytes available,
 * otherwise fs_nospace(errptr, path, need). A file system whose free space
 * cannot be read passes (the write itself will tell). */
int fs_check_space(const char *path, uint64_t need, char **errptr);

/*
 * The message of a failed write: "<what>: <reason>", with what formatted
 * from fmt. For ENOSPC and EDQUOT the reason is fs_nospace()'s message for
 * `path` and the code FS_ENOSPC; otherwise strerror(e) and WEIR_EIO.
 */
WEIR_PRINTF(4, 5)
int fs_write_error(char **errptr, int e, const char *path, const char *fmt,
                   ...);

/*
 * The umask of a runtime.file_access value: "private" 077 (directories
 * 0700, files 0600), "group" 027 (0750, 0640), "world" 022 (0755, 0644);
 * -1 for "inherit" (keep the umask weir was started with) and for NULL or an
 * unknown word.
 */
int fs_access_umask(const char *access);

/* umask(fs_access_umask(access)) unless that is -1. Process-wide: call it
 * before threads that create files start. */
void fs_apply_access(const char *access);

#endif
