/*
 * params.c - checking values against a weir_param_def table. The same code
 * validates an operator's `config` against its plugin's table, the host's
 * own sections (runtime, state, ...) against theirs, and every default.
 */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "topology/topo_internal.h"

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

static int pv_err(char **errptr, const char *file, const char *path,
                  const topo_ynode *n, const char *hint, const char *fmt, ...)
    WEIR_PRINTF(6, 7);

static int pv_err(char **errptr, const char *file, const char *path,
                  const topo_ynode *n, const char *hint, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    topo_err(errptr, file, n->line, n->col, path, "%s%s%s", msg,
             hint ? "; " : "", hint ? hint : "");
    free(msg);
    return WEIR_EINVAL;
}

static const char *pv_expected(weir_param_type t)
{
    switch (t) {
    case WEIR_PARAM_BOOL: return "a boolean (true or false)";
    case WEIR_PARAM_INT: return "an integer";
    case WEIR_PARAM_DOUBLE: return "a number";
    case WEIR_PARAM_STRING: return "a string";
    case WEIR_PARAM_DURATION: return "a duration (e.g. 250ms, 10s, 5m, 2h, 7d)";
    case WEIR_PARAM_SIZE: return "a size (e.g. 512, 4KiB, 64MiB, 1GiB, 1MB)";
    case WEIR_PARAM_ENUM: return "one of the listed words";
    case WEIR_PARAM_ANY: return "any value";
    }
    return "a value";
}

/* A hint for a wrongly typed scalar, or NULL. */
static const char *pv_type_hint(weir_param_type t, const topo_ynode *n)
{
    static const char *const yes_no[] = {"yes", "no",  "on", "off", "y",
                                         "n",   "Yes", "No", "On",  "Off",
                                         "YES", "NO",  "ON", "OFF", NULL};
    if (n->kind != TOPO_YSCALAR)
        return NULL;
    if (n->quoted && n->type == TOPO_YSTR) {
        topo_ynode plain = *n;
        topo_yresolve_plain(&plain);
        int numeric = plain.type == TOPO_YINT || plain.type == TOPO_YFLOAT;
        if ((t == WEIR_PARAM_INT && plain.type == TOPO_YINT) ||
            (t == WEIR_PARAM_DOUBLE && numeric) ||
            (t == WEIR_PARAM_BOOL && plain.type == TOPO_YBOOL))
            return "remove the quotes";
    }
    if (t == WEIR_PARAM_BOOL && n->type == TOPO_YSTR) {
        for (const char *const *w = yes_no; *w; w++) {
            if (strlen(*w) == n->len && !memcmp(*w, n->str, n->len))
                return "booleans are written true or false (YAML 1.2)";
        }
    }
    if (t == WEIR_PARAM_INT && n->type == TOPO_YFLOAT)
        return "an integer has no fraction or exponent";
    return NULL;
}

static int pv_wrong_type(char **errptr, const char *file, const char *path,
                         const weir_param_def *def, const topo_ynode *n)
{
    char buf[TOPO_QUOTE_MAX + 32];
    return pv_err(errptr, file, path, n, pv_type_hint(def->type, n),
                  "expected %s, got %s", pv_expected(def->type),
                  topo_ydescribe(n, buf, sizeof buf));
}

/* Formats a bound of `def` in the parameter's own unit. */
static void pv_fmt_bound(const weir_param_def *def, double x, char *buf,
                         size_t cap)
{
    int integral = fabs(x) < 9.2e18 && x == floor(x);
    if (def->type == WEIR_PARAM_DURATION && integral)
        topo_fmt_duration((int64_t)x, buf, cap);
    else if (def->type == WEIR_PARAM_SIZE && integral)
        topo_fmt_size((int64_t)x, buf, cap);
    else if (def->type != WEIR_PARAM_DOUBLE && integral)
        snprintf(buf, cap, "%lld", (long long)x);
    else
        snprintf(buf, cap, "%g", x);
}

static int pv_check_range(char **errptr, const char *file, const char *path,
                          const weir_param_def *def, const topo_ynode *n,
                          double x)
{
    char q[TOPO_QUOTE_MAX], b[64];
    int low = (def->flags & WEIR_PARAM_HAS_MIN) && !(x >= def->min);
    int high = (def->flags & WEIR_PARAM_HAS_MAX) && !(x <= def->max);
    if (!low && !high)
        return 0;
    pv_fmt_bound(def, low ? def->min : def->max, b, sizeof b);
    return pv_err(errptr, file, path, n, NULL, "%s is %s the %s %s",
                  topo_quote(n->str, n->len, q, sizeof q),
                  low ? "below" : "above", low ? "minimum" : "maximum", b);
}

/* ------------------------------------------------------------------------ */
/* msgpack                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct pv_buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pv_buf;

static void pv_buf_init(pv_buf *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

/* Moves the packed bytes into v->mp; 0, or WEIR_ENOMEM when packing had
 * failed (rc < 0). */
static int pv_buf_take(pv_buf *b, int rc, topo_value *v, char **errptr)
{
    if (rc < 0) {
        msgpack_sbuffer_destroy(&b->sb);
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    }
    v->mp_len = b->sb.size;
    v->mp = msgpack_sbuffer_release(&b->sb);
    return 0;
}

/* Packs a YAML node; -1 when out of memory, -2 with *bad for an integer
 * msgpack cannot hold. */
static int pv_pack_node(msgpack_packer *pk, const topo_ynode *n,
                        const topo_ynode **bad)
{
    int rc = 0;
    if (n->kind == TOPO_YSEQ) {
        rc = msgpack_pack_array(pk, n->n);
        for (size_t k = 0; rc == 0 && k < n->n; k++)
            rc = pv_pack_node(pk, n->kids[k], bad);
        return rc;
    }
    if (n->kind == TOPO_YMAP) {
        rc = msgpack_pack_map(pk, n->n / 2);
        for (size_t k = 0; rc == 0 && k < n->n; k++)
            rc = pv_pack_node(pk, n->kids[k], bad);
        return rc;
    }
    switch (n->type) {
    case TOPO_YNULL: return msgpack_pack_nil(pk);
    case TOPO_YBOOL:
        return n->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case TOPO_YINT:
        if (n->int_range == TOPO_YINT_OK)
            return msgpack_pack_int64(pk, n->i);
        if (n->int_range == TOPO_YINT_U64)
            return msgpack_pack_uint64(pk, n->u);
        *bad = n;
        return -2;
    case TOPO_YFLOAT: return msgpack_pack_double(pk, n->d);
    case TOPO_YSTR: return msgpack_pack_str_with_body(pk, n->str, n->len);
    }
    return -1;
}

static int pv_pack_scalar(const topo_value *vin, topo_value *v, char **errptr)
{
    pv_buf b;
    int rc;
    pv_buf_init(&b);
    switch (v->def->type) {
    case WEIR_PARAM_BOOL:
        rc = vin->b ? msgpack_pack_true(&b.pk) : msgpack_pack_false(&b.pk);
        break;
    case WEIR_PARAM_DOUBLE: rc = msgpack_pack_double(&b.pk, vin->d); break;
    case WEIR_PARAM_STRING:
    case WEIR_PARAM_ENUM:
        rc = msgpack_pack_str_with_body(&b.pk, vin->str, vin->str_len);
        break;
    default: rc = msgpack_pack_int64(&b.pk, vin->i); break;
    }
    return pv_buf_take(&b, rc, v, errptr);
}

/* ------------------------------------------------------------------------ */
/* One value                                                                 */
/* ------------------------------------------------------------------------ */

static int pv_set_str(topo_value *v, const topo_ynode *n, char **errptr)
{
    v->str = malloc(n->len + 1);
    if (!v->str)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    memcpy(v->str, n->str, n->len);
    v->str[n->len] = '\0';
    v->str_len = n->len;
    return 0;
}

static int pv_int(const char *file, const char *path, const weir_param_def *def,
                  const topo_ynode *n, topo_value *v, char **errptr)
{
    char q[TOPO_QUOTE_MAX];
    if (n->kind != TOPO_YSCALAR || n->type != TOPO_YINT)
        return pv_wrong_type(errptr, file, path, def, n);
    if (n->int_range != TOPO_YINT_OK)
        return pv_err(errptr, file, path, n, NULL,
                      "%s does not fit in a 64-bit signed integer",
                      topo_quote(n->str, n->len, q, sizeof q));
    v->i = n->i;
    v->d = (double)n->i;
    return pv_check_range(errptr, file, path, def, n, v->d);
}

static int pv_double(const char *file, const char *path,
                     const weir_param_def *def, const topo_ynode *n,
                     topo_value *v, char **errptr)
{
    if (n->kind != TOPO_YSCALAR ||
        (n->type != TOPO_YINT && n->type != TOPO_YFLOAT))
        return pv_wrong_type(errptr, file, path, def, n);
    if (n->type == TOPO_YFLOAT)
        v->d = n->d;
    else if (n->int_range == TOPO_YINT_OK)
        v->d = (double)n->i;
    else if (n->int_range == TOPO_YINT_U64)
        v->d = (double)n->u;
    else
        v->d = strtod(n->str, NULL);
    return pv_check_range(errptr, file, path, def, n, v->d);
}

/* DURATION and SIZE: a bare integer, or text with a unit. */
static int pv_unit(const char *file, const char *path,
                   const weir_param_def *def, const topo_ynode *n,
                   topo_value *v, char **errptr)
{
    if (n->kind != TOPO_YSCALAR ||
        (n->type != TOPO_YINT && n->type != TOPO_YSTR))
        return pv_wrong_type(errptr, file, path, def, n);
    char *why = NULL;
    int rc = def->type == WEIR_PARAM_DURATION
                 ? topo_parse_duration(n->str, n->len, &v->i, &why)
                 : topo_parse_size(n->str, n->len, &v->i, &why);
    if (rc < 0) {
        rc = rc == WEIR_ENOMEM ? err_set(errptr, rc, "out of memory")
                               : pv_err(errptr, file, path, n, NULL, "%s",
                                        why ? why : "invalid value");
        free(why);
        return rc;
    }
    v->d = (double)v->i;
    return pv_check_range(errptr, file, path, def, n, v->d);
}

static int pv_enum(const char *file, const char *path,
                   const weir_param_def *def, const topo_ynode *n,
                   topo_value *v, char **errptr)
{
    char q[TOPO_QUOTE_MAX], list[512], hint[TOPO_QUOTE_MAX + 32];
    size_t nc = 0, o = 0;
    if (n->kind != TOPO_YSCALAR || n->type == TOPO_YNULL)
        return pv_wrong_type(errptr, file, path, def, n);
    for (; def->choices[nc]; nc++) {
        const char *c = def->choices[nc];
        if (strlen(c) == n->len && !memcmp(c, n->str, n->len))
            return pv_set_str(v, n, errptr);
        int w = snprintf(list + o, sizeof list - o, "%s%s", nc ? ", " : "", c);
        if (w > 0 && (size_t)w < sizeof list - o)
            o += (size_t)w;
    }
    const char *best = topo_suggest(n->str, n->len, def->choices, nc);
    if (best)
        snprintf(hint, sizeof hint, "did you mean '%s'?", best);
    return pv_err(errptr, file, path, n, best ? hint : NULL,
                  "'%s' is not one of: %s",
                  topo_quote(n->str, n->len, q, sizeof q), list);
}

static int pv_any(const char *file, const char *path, const topo_ynode *n,
                  topo_value *v, char **errptr)
{
    pv_buf b;
    const topo_ynode *bad = NULL;
    char q[TOPO_QUOTE_MAX];
    pv_buf_init(&b);
    int rc = pv_pack_node(&b.pk, n, &bad);
    if (rc == -2) {
        msgpack_sbuffer_destroy(&b.sb);
        return pv_err(errptr, file, path, bad, NULL,
                      "integer %s does not fit in 64 bits",
                      topo_quote(bad->str, bad->len, q, sizeof q));
    }
    return pv_buf_take(&b, rc, v, errptr);
}

int topo_value_from_node(const char *file, const char *path,
                         const weir_param_def *def, const topo_ynode *n,
                         topo_value *v, char **errptr)
{
    int rc = 0;
    int scalar = n->kind == TOPO_YSCALAR;
    v->def = def;
    v->line = n->line;
    v->col = n->col;
    switch (def->type) {
    case WEIR_PARAM_BOOL:
        if (!scalar || n->type != TOPO_YBOOL)
            return pv_wrong_type(errptr, file, path, def, n);
        v->b = n->b;
        v->i = n->b;
        v->d = n->b;
        break;
    case WEIR_PARAM_INT: rc = pv_int(file, path, def, n, v, errptr); break;
    case WEIR_PARAM_DOUBLE:
        rc = pv_double(file, path, def, n, v, errptr);
        break;
    case WEIR_PARAM_STRING:
        if (!scalar || n->type == TOPO_YNULL)
            return pv_wrong_type(errptr, file, path, def, n);
        rc = pv_set_str(v, n, errptr);
        break;
    case WEIR_PARAM_DURATION:
    case WEIR_PARAM_SIZE: rc = pv_unit(file, path, def, n, v, errptr); break;
    case WEIR_PARAM_ENUM: rc = pv_enum(file, path, def, n, v, errptr); break;
    case WEIR_PARAM_ANY: rc = pv_any(file, path, n, v, errptr); break;
    default:
        return pv_err(errptr, file, path, n, NULL,
                      "parameter has unknown type %d", (int)def->type);
    }
    if (rc == 0 && def->type != WEIR_PARAM_ANY)
        rc = pv_pack_scalar(v, v, errptr);
    if (rc == 0)
        v->is_set = 1;
    return rc;
}

void topo_value_clear(topo_value *v)
{
    const weir_param_def *def = v->def;
    free(v->str);
    free(v->mp);
    memset(v, 0, sizeof *v);
    v->def = def;
}

/* Checks a textual value (a default, or topo_params_from_strings) as if it
 * were written in YAML: STRING and ENUM take the text as it is, ANY parses
 * it as a YAML document, the rest read it as a plain scalar. The message
 * has neither position nor path. */
static int pv_from_text(const weir_param_def *def, const char *text,
                        topo_value *v, char **errptr)
{
    topo_ynode n = {.kind = TOPO_YSCALAR, .str = text, .len = strlen(text)};
    if (def->type == WEIR_PARAM_ANY) {
        topo_ydoc *doc = NULL;
        const topo_ynode *root = NULL;
        int rc = topo_yparse(NULL, text, n.len, &doc, &root, errptr);
        if (rc < 0)
            return rc;
        if (!root) {
            n.str = "";
            n.len = 0;
            n.type = TOPO_YNULL;
            root = &n;
        }
        rc = topo_value_from_node(NULL, NULL, def, root, v, errptr);
        topo_yfree(doc);
        v->line = v->col = 0;
        return rc;
    }
    if (def->type == WEIR_PARAM_STRING || def->type == WEIR_PARAM_ENUM) {
        n.quoted = 1;
        n.type = TOPO_YSTR;
    } else {
        topo_yresolve_plain(&n);
    }
    int rc = topo_value_from_node(NULL, NULL, def, &n, v, errptr);
    v->line = v->col = 0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Tables                                                                    */
/* ------------------------------------------------------------------------ */

void topo_params_free(topo_params *p)
{
    if (!p)
        return;
    for (size_t k = 0; k < p->n; k++)
        topo_value_clear(&p->v[k]);
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

static int pv_alloc(const weir_param_def *const *defs, size_t n_defs,
                    topo_params *out, char **errptr)
{
    out->n = 0;
    out->v = calloc(n_defs ? n_defs : 1, sizeof *out->v);
    if (!out->v)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    out->n = n_defs;
    for (size_t k = 0; k < n_defs; k++)
        out->v[k].def = defs[k];
    return 0;
}

/* Applies every default. A default that does not validate is the fault of
 * the table's owner (a plugin, or the host when owner is NULL) and is
 * reported as such at line:col, where the table is used. */
static int pv_defaults(topo_params *out, const char *file, const char *path,
                       int line, int col, const topo_owner *owner,
                       char **errptr)
{
    for (size_t k = 0; k < out->n; k++) {
        const weir_param_def *def = out->v[k].def;
        if (!def->default_value)
            continue;
        char *why = NULL;
        int rc = pv_from_text(def, def->default_value, &out->v[k], &why);
        if (rc < 0) {
            char q[TOPO_QUOTE_MAX], sub[512];
            snprintf(sub, sizeof sub, "%s%s%s", path ? path : "",
                     path ? "." : "", def->name);
            if (rc != WEIR_ENOMEM)
                rc = topo_err(errptr, file, line, col, sub,
                              "%s error: %s declares the invalid default "
                              "'%s' for parameter '%s': %s",
                              owner && owner->what ? "plugin" : "host",
                              owner && owner->what ? owner->what : "the host",
                              topo_quote(def->default_value,
                                         strlen(def->default_value), q,
                                         sizeof q),
                              def->name, why ? why : "invalid");
            else
                err_set(errptr, rc, "out of memory");
            free(why);
            return rc;
        }
        out->v[k].from_default = 1;
    }
    return 0;
}

static int pv_find(const topo_params *p, const char *name, size_t len)
{
    for (size_t k = 0; k < p->n; k++) {
        const char *dn = p->v[k].def->name;
        if (strlen(dn) == len && !memcmp(dn, name, len))
            return (int)k;
    }
    return -1;
}

/* The hint for an unknown key `name`: the closest name, else the list. */
static void pv_unknown_hint(const topo_params *p, const char *name, size_t len,
                            char *hint, size_t cap)
{
    const char *names[64];
    size_t n = p->n < 64 ? p->n : 64, o = 0;
    for (size_t k = 0; k < n; k++)
        names[k] = p->v[k].def->name;
    const char *merge = topo_merge_hint(name, len);
    if (merge) {
        snprintf(hint, cap, "%s", merge);
        return;
    }
    const char *best = topo_suggest(name, len, names, n);
    if (best) {
        snprintf(hint, cap, "did you mean '%s'?", best);
        return;
    }
    if (p->n == 0) {
        snprintf(hint, cap, "it takes no parameters");
        return;
    }
    int w = snprintf(hint, cap, "valid: ");
    o = w > 0 ? (size_t)w : 0;
    for (size_t k = 0; k < n && o < cap; k++) {
        w = snprintf(hint + o, cap - o, "%s%s", k ? ", " : "", names[k]);
        if (w > 0)
            o += (size_t)w;
    }
}

static int pv_missing(const topo_params *p, const unsigned char *given,
                      const char *file, const char *path, int line, int col,
                      topo_collect *c, int *failed, char **errptr)
{
    for (size_t k = 0; k < p->n; k++) {
        const weir_param_def *def = p->v[k].def;
        if (!(def->flags & WEIR_PARAM_REQUIRED) || given[k])
            continue;
        int rc = topo_err(errptr, file, line, col, path,
                          "missing required parameter '%s' (%s%s%s)", def->name,
                          pv_expected(def->type), def->description ? ": " : "",
                          def->description ? def->description : "");
        *failed = 1;
        if ((rc = topo_collect_note(c, rc, errptr)) < 0)
            return rc;
    }
    return 0;
}

int topo_params_build(const char *file, const char *path, int line, int col,
                      const weir_param_def *const *defs, size_t n_defs,
                      const topo_ynode *map, const topo_owner *owner,
                      const char *keyword, topo_collect *c, topo_params *out,
                      char **errptr)
{
    char buf[TOPO_QUOTE_MAX + 32], sub[1024], q[TOPO_QUOTE_MAX];
    unsigned char *given = NULL;
    int failed = 0;
    int rc = pv_alloc(defs, n_defs, out, errptr);
    if (rc < 0)
        return rc;
    rc = pv_defaults(out, file, path, line, col, owner, errptr);
    /* A bad default is the plugin's; the values given are still checked. */
    if (rc < 0) {
        failed = 1;
        if ((rc = topo_collect_note(c, rc, errptr)) < 0)
            goto out;
    }
    if (map && map->kind == TOPO_YSCALAR && map->type == TOPO_YNULL)
        map = NULL;
    if (map && map->kind != TOPO_YMAP) {
        rc = pv_err(errptr, file, path, map, NULL, "expected a mapping, got %s",
                    topo_ydescribe(map, buf, sizeof buf));
        /* Nothing else to check here (and no missing parameter to add). */
        failed = 1;
        if ((rc = topo_collect_note(c, rc, errptr)) < 0)
            goto out;
        goto out;
    }
    given = calloc(n_defs ? n_defs : 1, 1);
    if (!given) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; map && k < map->n; k += 2) {
        const topo_ynode *key = map->kids[k], *val = map->kids[k + 1];
        snprintf(sub, sizeof sub, "%s%s%s", path ? path : "", path ? "." : "",
                 topo_quote(key->str, key->len, q, sizeof q));
        int i = pv_find(out, key->str, key->len);
        if (i < 0) {
            char hint[512];
            pv_unknown_hint(out, key->str, key->len, hint, sizeof hint);
            rc = pv_err(errptr, file, sub, key, hint, "unknown %s",
                        keyword ? keyword : "parameter");
            failed = 1;
            if ((rc = topo_collect_note(c, rc, errptr)) < 0)
                goto out;
            continue;
        }
        topo_value_clear(&out->v[i]);
        given[i] = 1; /* also when bad: it is not missing */
        rc = topo_value_from_node(file, sub, out->v[i].def, val, &out->v[i],
                                  errptr);
        if (rc < 0) {
            topo_value_clear(&out->v[i]);
            failed = 1;
            if ((rc = topo_collect_note(c, rc, errptr)) < 0)
                goto out;
        }
    }
    rc = pv_missing(out, given, file, path, line, col, c, &failed, errptr);
out:
    free(given);
    if (rc == 0 && failed)
        rc = WEIR_EINVAL; /* every message is collected */
    if (rc < 0)
        topo_params_free(out);
    return rc;
}

int topo_params_from_strings(const weir_param_def *const *defs, size_t n_defs,
                             const char *const *names,
                             const char *const *values, size_t n,
                             topo_params *out, char **errptr)
{
    unsigned char *given = NULL;
    char q[TOPO_QUOTE_MAX];
    int rc = pv_alloc(defs, n_defs, out, errptr);
    if (rc < 0)
        return rc;
    rc = pv_defaults(out, NULL, NULL, 0, 0, NULL, errptr);
    if (rc < 0)
        goto out;
    given = calloc(n_defs ? n_defs : 1, 1);
    if (!given) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        topo_quote(names[k], strlen(names[k]), q, sizeof q);
        int i = pv_find(out, names[k], strlen(names[k]));
        if (i < 0) {
            char hint[512];
            pv_unknown_hint(out, names[k], strlen(names[k]), hint, sizeof hint);
            rc = topo_err(errptr, NULL, 0, 0, q, "unknown parameter; %s", hint);
            goto out;
        }
        if (given[i]) {
            rc = topo_err(errptr, NULL, 0, 0, q, "given twice");
            goto out;
        }
        topo_value_clear(&out->v[i]);
        rc = pv_from_text(out->v[i].def, values[k], &out->v[i], errptr);
        if (rc < 0) {
            if (rc != WEIR_ENOMEM)
                err_prefix(errptr, "%s", q);
            goto out;
        }
        given[i] = 1;
    }
    int failed = 0;
    rc = pv_missing(out, given, NULL, NULL, 0, 0, NULL, &failed, errptr);
out:
    free(given);
    if (rc < 0)
        topo_params_free(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Lookups                                                                   */
/* ------------------------------------------------------------------------ */

const topo_value *topo_param(const topo_params *p, const char *name)
{
    if (!p || !name)
        return NULL;
    int i = pv_find(p, name, strlen(name));
    return i < 0 ? NULL : &p->v[i];
}

int64_t topo_param_int(const topo_params *p, const char *name)
{
    const topo_value *v = topo_param(p, name);
    return v && v->is_set ? v->i : 0;
}

double topo_param_double(const topo_params *p, const char *name)
{
    const topo_value *v = topo_param(p, name);
    return v && v->is_set ? v->d : 0.0;
}

const char *topo_param_str(const topo_params *p, const char *name)
{
    const topo_value *v = topo_param(p, name);
    return v && v->is_set ? v->str : NULL;
}
