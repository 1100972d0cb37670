/*
 * fs.h - small file-system helpers shared by the host's subsystems.
 * Thread: reentrant. Errors: 0 or a negative WEIR_E* code with a one-line
 * message (naming the path and the system's reason) in *errptr.
 */
#ifndef WEIR_HOST_FS_H
#define WEIR_HOST_FS_H

#include <stddef.h>

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
 * Takes an exclusive advisory lock (flock) on `<dir>/LOCK`, creating dir and
 * file as needed, without waiting. Returns the descriptor that holds the
 * lock (close it to release; it is also released when the process dies),
 * or WEIR_EIO with a message naming the directory and its LOCK file when
 * another process holds it.
 */
int fs_lock_dir(const char *dir, const char *what, char **errptr);

#endif
