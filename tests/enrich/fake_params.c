#include "fake_params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fp_unit(const char *unit, const char *const *names,
                   const int64_t *mult, int64_t *out)
{
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(unit, names[i]) == 0) {
            *out = mult[i];
            return 0;
        }
    }
    return -1;
}

static char *fp_dup(const char *text, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p && n)
        memcpy(p, text, n);
    return p;
}

const char *fp_parse(const weir_param_def *def, const char *text, fp_any_fn any,
                     fp_value *v)
{
    static const char *const dur_u[] = {"", "ms", "s", "m", "h", "d", NULL};
    static const int64_t dur_m[] = {1, 1, 1000, 60000, 3600000, 86400000};
    static const char *const size_u[] = {"",   "B",  "KiB", "MiB", "GiB",
                                         "KB", "MB", "GB",  NULL};
    static const int64_t size_m[] = {1,       1,    1024,    1 << 20,
                                     1 << 30, 1000, 1000000, 1000000000};
    char *end;
    int64_t mult;
    errno = 0;
    switch (def->type) {
    case WEIR_PARAM_BOOL:
        if (strcmp(text, "true") && strcmp(text, "false"))
            return "not a boolean";
        v->b = strcmp(text, "true") == 0;
        return NULL;
    case WEIR_PARAM_INT:
        v->i = strtoll(text, &end, 10);
        if (errno || end == text || *end)
            return "not an integer";
        v->d = (double)v->i;
        break;
    case WEIR_PARAM_DOUBLE:
        v->d = strtod(text, &end);
        if (errno || end == text || *end)
            return "not a number";
        break;
    case WEIR_PARAM_DURATION:
    case WEIR_PARAM_SIZE:
        v->i = strtoll(text, &end, 10);
        if (errno || end == text)
            return "not a number";
        if (fp_unit(end, def->type == WEIR_PARAM_SIZE ? size_u : dur_u,
                    def->type == WEIR_PARAM_SIZE ? size_m : dur_m, &mult) < 0)
            return "unknown unit";
        v->i *= mult;
        v->d = (double)v->i;
        break;
    case WEIR_PARAM_ENUM:
        for (size_t i = 0; def->choices && def->choices[i]; i++)
            if (strcmp(text, def->choices[i]) == 0)
                goto string;
        return "not one of the choices";
    case WEIR_PARAM_ANY:
        if (any) {
            v->s = any(text, &v->s_len);
            return NULL;
        }
        goto string;
    case WEIR_PARAM_STRING:
    string:
        v->s_len = strlen(text);
        v->s = fp_dup(text, v->s_len);
        return NULL;
    default: return "unknown type";
    }
    if ((def->flags & WEIR_PARAM_HAS_MIN) && v->d < def->min)
        return "below the minimum";
    if ((def->flags & WEIR_PARAM_HAS_MAX) && v->d > def->max)
        return "above the maximum";
    return NULL;
}

/* Fails with "config.<name>: <why>" in `error`. */
static int fp_fail(char *error, size_t len, const char *name, const char *text,
                   const char *why)
{
    if (text)
        snprintf(error, len, "config.%s: '%s' is %s", name, text, why);
    else
        snprintf(error, len, "config.%s: %s", name, why);
    return WEIR_EINVAL;
}

int fp_validate(const weir_operator *op, const fp_param *params, fp_any_fn any,
                fp_value **vals, size_t *n_vals, char *error, size_t error_len)
{
    size_t n = 0;
    while (op->params && op->params[n])
        n++;
    *vals = calloc(n ? n : 1, sizeof **vals);
    *n_vals = *vals ? n : 0;
    if (!*vals)
        return fp_fail(error, error_len, "*", NULL, "out of memory");
    for (size_t j = 0; params && params[j].name; j++) {
        size_t i = 0;
        while (i < n && strcmp(op->params[i]->name, params[j].name))
            i++;
        if (i == n)
            return fp_fail(error, error_len, params[j].name, NULL,
                           "unknown parameter");
    }
    for (size_t i = 0; i < n; i++) {
        const weir_param_def *def = op->params[i];
        const char *text = def->default_value;
        fp_value *v = &(*vals)[i];
        v->def = def;
        for (size_t j = 0; params && params[j].name; j++)
            if (strcmp(params[j].name, def->name) == 0)
                text = params[j].value;
        if (!text) {
            if (def->flags & WEIR_PARAM_REQUIRED)
                return fp_fail(error, error_len, def->name, NULL,
                               "required parameter missing");
            continue;
        }
        const char *why = fp_parse(def, text, any, v);
        if (why)
            return fp_fail(error, error_len, def->name, text, why);
        v->set = 1;
    }
    return 0;
}

const fp_value *fp_find(const fp_value *vals, size_t n, const char *name,
                        int *rc)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(vals[i].def->name, name) == 0) {
            *rc = vals[i].set ? 0 : WEIR_ENOTFOUND;
            return vals[i].set ? &vals[i] : NULL;
        }
    *rc = WEIR_ENOTFOUND;
    return NULL;
}

void fp_free(fp_value *vals, size_t n)
{
    for (size_t i = 0; vals && i < n; i++)
        free(vals[i].s);
    free(vals);
}
