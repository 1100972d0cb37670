/*
 * err.h - error messages in the host.
 *
 * Host functions that can fail return an int (0 or a negative WEIR_E* code)
 * and, like RocksDB's C API, take a `char **errptr`: on failure they store a
 * malloc'ed one-line message there (replacing and freeing an earlier one),
 * and the caller frees it. errptr may be NULL when the caller does not care.
 */
#ifndef WEIR_HOST_ERR_H
#define WEIR_HOST_ERR_H

#include <stdarg.h>

#include "weir/weir.h"

/* Stores a formatted message in *errptr and returns `code`. */
WEIR_PRINTF(3, 4) int err_set(char **errptr, int code, const char *fmt, ...);
int err_setv(char **errptr, int code, const char *fmt, va_list ap);

/* Prefixes the message in *errptr with a formatted string and ": ". */
WEIR_PRINTF(2, 3) void err_prefix(char **errptr, const char *fmt, ...);

#endif
