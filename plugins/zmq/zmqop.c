/*
 * zmqop.c - see zmqop.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "zmqop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int zmqop_string(weir_ctx *ctx, const char *op, const char *name, char **out)
{
    const char *p;
    size_t n;
    *out = NULL;
    int rc = weir_param_string(ctx, name, &p, &n);
    if (rc == WEIR_ENOTFOUND)
        return WEIR_OK;
    if (rc < 0) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       weir_strerror(rc));
        return rc;
    }
    if (n == 0 || memchr(p, '\0', n)) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       n ? "contains a NUL byte" : "must not be empty");
        return WEIR_EINVAL;
    }
    if (!(*out = malloc(n + 1))) {
        weir_set_error(ctx, "%s: out of memory", op);
        return WEIR_ENOMEM;
    }
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return WEIR_OK;
}

int zmqop_enum(weir_ctx *ctx, const char *op, const char *name,
               const char *const *choices, int *index)
{
    const char *p;
    size_t n;
    int rc = weir_param_string(ctx, name, &p, &n);
    if (rc < 0) {
        weir_set_error(ctx, "%s: parameter %s: %s", op, name,
                       weir_strerror(rc));
        return rc;
    }
    for (int i = 0; choices[i]; i++)
        if (strlen(choices[i]) == n && memcmp(choices[i], p, n) == 0) {
            *index = i;
            return WEIR_OK;
        }
    weir_set_error(ctx, "%s: parameter %s: '%.*s' is not a choice", op, name,
                   (int)n, p);
    return WEIR_EINVAL;
}

int zmqop_endpoint(weir_ctx *ctx, const char *op, char **out, int *placeholder)
{
    static const char ph[] = "{subtask}";
    char *raw, idx[16];
    int rc = zmqop_string(ctx, op, "endpoint", &raw);
    if (rc == WEIR_OK && !raw) {
        weir_set_error(ctx, "%s: parameter endpoint: required", op);
        rc = WEIR_EINVAL;
    }
    if (rc < 0)
        return rc;
    int n = snprintf(idx, sizeof idx, "%u", weir_subtask_index(ctx));
    size_t count = 0;
    for (const char *c = strstr(raw, ph); c; c = strstr(c + 1, ph))
        count++;
    if (placeholder)
        *placeholder = count > 0;
    char *res = malloc(strlen(raw) + count * (size_t)n + 1);
    if (!res) {
        free(raw);
        weir_set_error(ctx, "%s: out of memory", op);
        return WEIR_ENOMEM;
    }
    char *o = res;
    for (const char *c = raw; *c;) {
        if (strncmp(c, ph, sizeof ph - 1) == 0) {
            memcpy(o, idx, (size_t)n);
            o += n;
            c += sizeof ph - 1;
        } else {
            *o++ = *c++;
        }
    }
    *o = '\0';
    free(raw);
    *out = res;
    return WEIR_OK;
}
