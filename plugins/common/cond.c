/*
 * cond.c - parsing and evaluation of field conditions (see cond.h).
 */
#include "cond.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/weir.h"

static const char *const cond_op_names[] = {"eq", "ne", "lt",     "le", "gt",
                                            "ge", "in", "prefix", NULL};
#define COND_OPS "eq, ne, lt, le, gt, ge, in, prefix"

static WEIR_PRINTF(3, 4) int cond_fail(char *why, size_t why_len,
                                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return WEIR_EINVAL;
}

int cond_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

const char *cond_kind_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "null";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "a list";
    case MSGPACK_OBJECT_MAP: return "a mapping";
    default: return "binary data";
    }
}

int cond_is_scalar(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
    case MSGPACK_OBJECT_STR: return 1;
    default: return 0;
    }
}

const msgpack_object *cond_get(const msgpack_object *m, const char *name)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (cond_str_is(&m->via.map.ptr[i].key, name))
            return &m->via.map.ptr[i].val;
    return NULL;
}

int cond_check_keys(const msgpack_object *m, const char *where,
                    const char *const *allowed, const char *expected, char *why,
                    size_t why_len)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        int ok = 0;
        for (size_t a = 0; allowed[a] && !ok && k->type == MSGPACK_OBJECT_STR;
             a++)
            ok = cond_str_is(k, allowed[a]);
        if (ok)
            continue;
        if (k->type != MSGPACK_OBJECT_STR)
            return cond_fail(why, why_len, "%s: a key is %s; expected %s",
                             where, cond_kind_name(k), expected);
        return cond_fail(why, why_len, "%s.%.*s: unknown key (expected %s)",
                         where, (int)k->via.str.size, k->via.str.ptr, expected);
    }
    return 0;
}

int cond_parse_duration(const msgpack_object *o, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t mult;
    } units[] = {{"", 1},        {"ms", 1},       {"s", 1000}, {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {NULL, 0}};
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX / 4)
            return -1;
        *ms = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    const char *s = o->via.str.ptr;
    size_t n = o->via.str.size, i = 0;
    int64_t v = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (v > (INT64_MAX / 4 - 9) / 10)
            return -1;
        v = v * 10 + (s[i++] - '0');
    }
    if (i == 0)
        return -1;
    for (size_t u = 0; units[u].unit; u++) {
        size_t ul = strlen(units[u].unit);
        if (n - i == ul && memcmp(s + i, units[u].unit, ul) == 0) {
            if (v > INT64_MAX / 4 / units[u].mult)
                return -1;
            *ms = v * units[u].mult;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static int cond_add(cond_pred *pr, const msgpack_object *field, cond_op op,
                    const msgpack_object *val)
{
    cond *c = realloc(pr->conds, (pr->n + 1) * sizeof *c);
    if (!c)
        return WEIR_ENOMEM;
    pr->conds = c;
    c[pr->n].field = field->via.str.ptr;
    c[pr->n].field_len = field->via.str.size;
    c[pr->n].op = op;
    c[pr->n].val = val;
    pr->n++;
    return 0;
}

/* Checks the value of operator `op` on field fp (fl bytes). */
static int cond_check_value(cond_op op, const msgpack_object *v,
                            const char *where, int fl, const char *fp,
                            char *why, size_t why_len)
{
    const char *on = cond_op_names[op];
    if (op == COND_IN) {
        if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0)
            return cond_fail(why, why_len,
                             "%s.%.*s.in: must be a non-empty list of "
                             "values, got %s",
                             where, fl, fp, cond_kind_name(v));
        for (uint32_t e = 0; e < v->via.array.size; e++)
            if (!cond_is_scalar(&v->via.array.ptr[e]))
                return cond_fail(why, why_len,
                                 "%s.%.*s.in[%u]: must be a string, number, "
                                 "boolean or null, got %s",
                                 where, fl, fp, e,
                                 cond_kind_name(&v->via.array.ptr[e]));
        return 0;
    }
    if (op == COND_PREFIX) {
        if (v->type != MSGPACK_OBJECT_STR)
            return cond_fail(why, why_len,
                             "%s.%.*s.prefix: must be a string, got %s", where,
                             fl, fp, cond_kind_name(v));
        return 0;
    }
    if (!cond_is_scalar(v))
        return cond_fail(why, why_len,
                         "%s.%.*s.%s: must be a string, number, boolean or "
                         "null, got %s",
                         where, fl, fp, on, cond_kind_name(v));
    if (op >= COND_LT && op <= COND_GE &&
        (v->type == MSGPACK_OBJECT_NIL || v->type == MSGPACK_OBJECT_BOOLEAN))
        return cond_fail(why, why_len,
                         "%s.%.*s.%s: needs a number or a string, got %s",
                         where, fl, fp, on, cond_kind_name(v));
    return 0;
}

/* One `field: {op: value, ...}` entry. */
static int cond_parse_ops(cond_pred *pr, const char *where,
                          const msgpack_object *field,
                          const msgpack_object *ops, char *why, size_t why_len)
{
    int fl = (int)field->via.str.size;
    const char *fp = field->via.str.ptr;
    if (ops->via.map.size == 0)
        return cond_fail(why, why_len,
                         "%s.%.*s: no operator (expected " COND_OPS ")", where,
                         fl, fp);
    for (uint32_t i = 0; i < ops->via.map.size; i++) {
        const msgpack_object *k = &ops->via.map.ptr[i].key;
        const msgpack_object *v = &ops->via.map.ptr[i].val;
        int op = -1;
        for (int o = 0; cond_op_names[o] && k->type == MSGPACK_OBJECT_STR; o++)
            if (cond_str_is(k, cond_op_names[o]))
                op = o;
        if (op < 0) {
            if (k->type != MSGPACK_OBJECT_STR)
                return cond_fail(why, why_len, "%s.%.*s: an operator is %s",
                                 where, fl, fp, cond_kind_name(k));
            return cond_fail(
                why, why_len,
                "%s.%.*s.%.*s: unknown operator (expected " COND_OPS ")", where,
                fl, fp, (int)k->via.str.size, k->via.str.ptr);
        }
        int rc = cond_check_value((cond_op)op, v, where, fl, fp, why, why_len);
        if (rc < 0)
            return rc;
        if (cond_add(pr, field, (cond_op)op, v) < 0)
            return WEIR_ENOMEM;
    }
    return 0;
}

int cond_parse(const msgpack_object *w, const char *where, cond_pred *out,
               char *why, size_t why_len)
{
    if (!w)
        return cond_fail(why, why_len,
                         "%s: missing (a mapping of field: condition)", where);
    if (w->type != MSGPACK_OBJECT_MAP || w->via.map.size == 0)
        return cond_fail(why, why_len,
                         "%s: must be a non-empty mapping of field: "
                         "condition, got %s",
                         where, cond_kind_name(w));
    for (uint32_t i = 0; i < w->via.map.size; i++) {
        const msgpack_object *k = &w->via.map.ptr[i].key;
        const msgpack_object *v = &w->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0)
            return cond_fail(why, why_len,
                             "%s: a field name is %s; expected a non-empty "
                             "string",
                             where,
                             k->type == MSGPACK_OBJECT_STR ? "empty"
                                                           : cond_kind_name(k));
        int rc;
        if (v->type == MSGPACK_OBJECT_MAP)
            rc = cond_parse_ops(out, where, k, v, why, why_len);
        else if (cond_is_scalar(v))
            rc = cond_add(out, k, COND_EQ, v);
        else
            rc = cond_fail(why, why_len,
                           "%s.%.*s: must be a value or a mapping of "
                           "operators, got %s%s",
                           where, (int)k->via.str.size, k->via.str.ptr,
                           cond_kind_name(v),
                           v->type == MSGPACK_OBJECT_ARRAY
                               ? " (for one of several values use {in: [...]})"
                               : "");
        if (rc < 0)
            return rc;
    }
    return 0;
}

void cond_pred_free(cond_pred *p)
{
    free(p->conds);
    p->conds = NULL;
    p->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

const msgpack_object *cond_field(const msgpack_object *map, const char *name,
                                 size_t len)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            (len == 0 || memcmp(k->via.str.ptr, name, len) == 0))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static int cond_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static int cond_is_num(const msgpack_object *o)
{
    return cond_is_int(o) || o->type == MSGPACK_OBJECT_FLOAT32 ||
           o->type == MSGPACK_OBJECT_FLOAT64;
}

static double cond_as_double(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
    default: return o->via.f64;
    }
}

/* Compares a and b: -1, 0 or 1, or 2 when they are not comparable. */
static int cond_cmp(const msgpack_object *a, const msgpack_object *b)
{
    if (cond_is_int(a) && cond_is_int(b)) {
        int an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        int bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (an != bn)
            return an ? -1 : 1;
        if (an)
            return a->via.i64 < b->via.i64 ? -1 : a->via.i64 > b->via.i64;
        return a->via.u64 < b->via.u64 ? -1 : a->via.u64 > b->via.u64;
    }
    if (cond_is_num(a) && cond_is_num(b)) {
        double x = cond_as_double(a), y = cond_as_double(b);
        if (x < y)
            return -1;
        if (x > y)
            return 1;
        return x == y ? 0 : 2; /* NaN */
    }
    if (a->type == MSGPACK_OBJECT_STR && b->type == MSGPACK_OBJECT_STR) {
        size_t n = a->via.str.size < b->via.str.size ? a->via.str.size
                                                     : b->via.str.size;
        int c = n ? memcmp(a->via.str.ptr, b->via.str.ptr, n) : 0;
        if (c)
            return c < 0 ? -1 : 1;
        return a->via.str.size < b->via.str.size
                   ? -1
                   : a->via.str.size > b->via.str.size;
    }
    return 2;
}

int cond_equal(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type == MSGPACK_OBJECT_NIL || b->type == MSGPACK_OBJECT_NIL)
        return a->type == b->type;
    if (a->type == MSGPACK_OBJECT_BOOLEAN || b->type == MSGPACK_OBJECT_BOOLEAN)
        return a->type == b->type && a->via.boolean == b->via.boolean;
    return cond_cmp(a, b) == 0;
}

static int cond_one(const cond *c, const msgpack_object *map)
{
    const msgpack_object *v = cond_field(map, c->field, c->field_len);
    if (!v)
        return 0;
    int r;
    switch (c->op) {
    case COND_EQ: return cond_equal(v, c->val);
    case COND_NE: return !cond_equal(v, c->val);
    case COND_LT: return cond_cmp(v, c->val) == -1;
    case COND_LE: r = cond_cmp(v, c->val); return r == -1 || r == 0;
    case COND_GT: return cond_cmp(v, c->val) == 1;
    case COND_GE: r = cond_cmp(v, c->val); return r == 1 || r == 0;
    case COND_IN:
        for (uint32_t i = 0; i < c->val->via.array.size; i++)
            if (cond_equal(v, &c->val->via.array.ptr[i]))
                return 1;
        return 0;
    case COND_PREFIX:
        return v->type == MSGPACK_OBJECT_STR &&
               v->via.str.size >= c->val->via.str.size &&
               (c->val->via.str.size == 0 ||
                memcmp(v->via.str.ptr, c->val->via.str.ptr,
                       c->val->via.str.size) == 0);
    }
    return 0;
}

int cond_eval(const cond_pred *p, const msgpack_object *map)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return 0;
    for (size_t i = 0; i < p->n; i++)
        if (!cond_one(&p->conds[i], map))
            return 0;
    return 1;
}
