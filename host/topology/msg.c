/*
 * msg.c - error messages of the topology subsystem: positions, quoting of
 * user text, and "did you mean" hints.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "topology/topo_internal.h"

int topo_err(char **errptr, const char *file, int line, int col,
             const char *path, const char *fmt, ...)
{
    if (!errptr)
        return WEIR_EINVAL;
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    if (file && path)
        err_set(errptr, WEIR_EINVAL, "%s:%d:%d: %s: %s", file, line, col, path,
                msg);
    else if (file)
        err_set(errptr, WEIR_EINVAL, "%s:%d:%d: %s", file, line, col, msg);
    else if (path)
        err_set(errptr, WEIR_EINVAL, "%s: %s", path, msg);
    else
        err_set(errptr, WEIR_EINVAL, "%s", msg);
    free(msg);
    return WEIR_EINVAL;
}

/* Whether the len bytes at s look like a field path: names, [N] indexes
 * and dots, no spaces. */
static int topo_is_field(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
              c == '[' || c == ']'))
            return 0;
    }
    return 1;
}

int topo_errors_add(topo_errors *errs, const char *file, char *msg)
{
    topo_error *v = realloc(errs->v, (errs->n + 1) * sizeof *v);
    if (!v) {
        free(msg);
        return WEIR_ENOMEM;
    }
    errs->v = v;
    topo_error *e = &v[errs->n];
    memset(e, 0, sizeof *e);
    e->msg = msg;
    e->what = msg;
    size_t fl = file ? strlen(file) : 0;
    if (fl && !strncmp(msg, file, fl) && msg[fl] == ':') {
        int line = 0, col = 0, used = 0;
        if (sscanf(msg + fl, ":%d:%d: %n", &line, &col, &used) == 2 &&
            used > 0) {
            e->line = line;
            e->col = col;
            e->what = msg + fl + used;
        }
    }
    const char *sep = strstr(e->what, ": ");
    if (sep && topo_is_field(e->what, (size_t)(sep - e->what))) {
        e->field = strndup(e->what, (size_t)(sep - e->what));
        if (!e->field) {
            free(msg);
            return WEIR_ENOMEM;
        }
        e->what = sep + 2;
    }
    errs->n++;
    return 0;
}

int topo_collect_note(topo_collect *c, int rc, char **errptr)
{
    if (!c || rc != WEIR_EINVAL)
        return rc;
    char *msg = *errptr;
    *errptr = NULL;
    if (!msg)
        return 0; /* already collected by the check itself */
    if (c->errs->n >= TOPO_MAX_ERRORS) {
        free(msg);
        c->errs->truncated = 1;
        return WEIR_EINVAL;
    }
    if (topo_errors_add(c->errs, c->file, msg) < 0)
        return err_set(errptr, WEIR_ENOMEM, "%s: out of memory", c->file);
    return 0;
}

void topo_errors_free(topo_errors *errs)
{
    if (!errs)
        return;
    for (size_t k = 0; k < errs->n; k++) {
        free(errs->v[k].msg);
        free(errs->v[k].field);
    }
    free(errs->v);
    memset(errs, 0, sizeof *errs);
}

const char *topo_quote(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, shown = 0;
    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    for (size_t k = 0; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if (shown == 60 || o + 8 >= cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            buf[o++] = (char)c;
        } else if (c >= 0x80) {
            buf[o++] = (char)c; /* UTF-8 passes through (it was validated) */
        } else {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        }
        if ((c & 0xC0) != 0x80)
            shown++;
    }
    buf[o] = '\0';
    return buf;
}

/* Levenshtein distance, or cap + 1 when it is larger than cap. */
static size_t topo_distance(const char *a, size_t la, const char *b, size_t cap)
{
    size_t lb = strlen(b);
    if (la > 64 || lb > 64)
        return cap + 1;
    size_t prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        size_t best = cur[0];
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            size_t m = sub < del ? sub : del;
            cur[j] = m < ins ? m : ins;
            if (cur[j] < best)
                best = cur[j];
        }
        if (best > cap)
            return cap + 1;
        memcpy(prev, cur, (lb + 1) * sizeof cur[0]);
    }
    return prev[lb];
}

const char *topo_suggest(const char *word, size_t len, const char *const *cands,
                         size_t n)
{
    size_t cap = len / 3 > 2 ? len / 3 : 2;
    const char *best = NULL;
    size_t best_d = cap + 1;
    for (size_t k = 0; k < n; k++) {
        size_t d = topo_distance(word, len, cands[k], cap);
        if (d < best_d) {
            best_d = d;
            best = cands[k];
        }
    }
    return best;
}

const char *topo_merge_hint(const char *key, size_t len)
{
    if (len == 2 && key[0] == '<' && key[1] == '<')
        return "merge keys ('<<') are not supported; use an alias for the "
               "whole mapping or repeat the keys";
    return NULL;
}
