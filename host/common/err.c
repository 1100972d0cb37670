#include "common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int err_setv(char **errptr, int code, const char *fmt, va_list ap)
{
    if (!errptr)
        return code;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    free(*errptr);
    *errptr = msg;
    return code;
}

int err_set(char **errptr, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_setv(errptr, code, fmt, ap);
    va_end(ap);
    return code;
}

void err_prefix(char **errptr, const char *fmt, ...)
{
    if (!errptr || !*errptr)
        return;
    char *pre = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&pre, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    char *msg = NULL;
    if (asprintf(&msg, "%s: %s", pre, *errptr) >= 0) {
        free(*errptr);
        *errptr = msg;
    }
    free(pre);
}
