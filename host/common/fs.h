/*
 * fs.h - small file-system helpers shared by the host's subsystems.
 * Thread: reentrant. Errors: 0 or a negative WEIR_E* code with a one-line
 * message (naming the path and the system's reason) in *errptr.
 */
#ifndef WEIR_HOST_FS_H
#define WEIR_HOST_FS_H

#include <stddef.h>
#include <stdint.h>

/* mkdir -p: creates `path` and its missing parents (mode 0777 & umask). */
int fs_mkdirs(const char *path, char **errptr);

/* rm -rf: removes `path` and everything below it; a missing path is fine.
 * Symbolic links are removed, never followed (openat/unlinkat relative to
 * each directory, O_NOFOLLOW). Messages start with "rmtree <path>". */
int fs_rmtree(const char *path, char **errptr);

/* Writes `len` bytes to `path` (created or truncated) and fsyncs it. */
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

#endif
