/*
 * rules.c - parsing, validation and evaluation of the pattern operator's
 * rules (see pattern.h for the rule language).
 *
 * Every error message names the place in the configuration, e.g.
 *   rules[1].steps[0].times: must be an integer >= 1
 *   rules[2] ('a_then_b').followed_by_not.where.type.between: unknown
 *   operator (expected eq, ne, lt, le, gt, ge, in)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"
#include "pattern.h"

static const char *const pt_op_names[] = {"eq", "ne", "lt", "le",
                                          "gt", "ge", "in", NULL};
static const char *const pt_reserved[] = {"rule",    "key",    "first_ts",
                                          "last_ts", "events", NULL};

/* Parsing context: the rule set being built and the error buffer. */
typedef struct pt_parse {
    pt_rules *r;
    char *why;
    size_t why_len;
    char at[160]; /* "rules[1] ('name')" of the rule being parsed */
} pt_parse;

static WEIR_PRINTF(2, 3) int pt_fail(pt_parse *p, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(p->why, p->why_len, "%s", p->at);
    if (n < 0 || (size_t)n >= p->why_len)
        return WEIR_EINVAL;
    va_start(ap, fmt);
    vsnprintf(p->why + n, p->why_len - (size_t)n, fmt, ap);
    va_end(ap);
    return WEIR_EINVAL;
}

static int pt_str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

static const char *pt_kind_name(const msgpack_object *o)
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

static int pt_is_scalar(const msgpack_object *o)
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

/* Checks that every key of map `m` is a string out of `allowed`; `where`
 * names the map in the message. */
static int pt_check_keys(pt_parse *p, const msgpack_object *m,
                         const char *where, const char *const *allowed,
                         const char *expected)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        int ok = 0;
        for (size_t a = 0; allowed[a] && !ok && k->type == MSGPACK_OBJECT_STR;
             a++)
            ok = pt_str_is(k, allowed[a]);
        if (!ok) {
            if (k->type != MSGPACK_OBJECT_STR)
                return pt_fail(p, "%s: a key is %s; expected %s", where,
                               pt_kind_name(k), expected);
            return pt_fail(p, "%s.%.*s: unknown key (expected %s)", where,
                           (int)k->via.str.size, k->via.str.ptr, expected);
        }
    }
    return 0;
}

static const msgpack_object *pt_get(const msgpack_object *m, const char *name)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (pt_str_is(&m->via.map.ptr[i].key, name))
            return &m->via.map.ptr[i].val;
    return NULL;
}

int pt_parse_duration(const msgpack_object *o, int64_t *ms)
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
/* Conditions                                                                */
/* ------------------------------------------------------------------------ */

static int pt_add_cond(pt_parse *p, pt_pred *pr, const msgpack_object *field,
                       pt_op op, const msgpack_object *val)
{
    pt_cond *c = realloc(pr->conds, (pr->n + 1) * sizeof *c);
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

/* One `field: {op: value, ...}` entry. */
static int pt_parse_ops(pt_parse *p, pt_pred *pr, const char *where,
                        const msgpack_object *field, const msgpack_object *ops)
{
    int fl = (int)field->via.str.size;
    const char *fp = field->via.str.ptr;
    if (ops->via.map.size == 0)
        return pt_fail(p,
                       "%s.%.*s: no operator (expected eq, ne, lt, le, "
                       "gt, ge or in)",
                       where, fl, fp);
    for (uint32_t i = 0; i < ops->via.map.size; i++) {
        const msgpack_object *k = &ops->via.map.ptr[i].key;
        const msgpack_object *v = &ops->via.map.ptr[i].val;
        int op = -1;
        for (int o = 0; pt_op_names[o] && k->type == MSGPACK_OBJECT_STR; o++)
            if (pt_str_is(k, pt_op_names[o]))
                op = o;
        if (op < 0) {
            if (k->type != MSGPACK_OBJECT_STR)
                return pt_fail(p, "%s.%.*s: an operator is %s", where, fl, fp,
                               pt_kind_name(k));
            return pt_fail(p,
                           "%s.%.*s.%.*s: unknown operator (expected eq, ne, "
                           "lt, le, gt, ge, in)",
                           where, fl, fp, (int)k->via.str.size, k->via.str.ptr);
        }
        const char *on = pt_op_names[op];
        if (op == PT_IN) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size == 0)
                return pt_fail(p,
                               "%s.%.*s.in: must be a non-empty list of "
                               "values, got %s",
                               where, fl, fp, pt_kind_name(v));
            for (uint32_t e = 0; e < v->via.array.size; e++)
                if (!pt_is_scalar(&v->via.array.ptr[e]))
                    return pt_fail(p,
                                   "%s.%.*s.in[%u]: must be a string, "
                                   "number, boolean or null, got %s",
                                   where, fl, fp, e,
                                   pt_kind_name(&v->via.array.ptr[e]));
        } else if (!pt_is_scalar(v)) {
            return pt_fail(p,
                           "%s.%.*s.%s: must be a string, number, boolean "
                           "or null, got %s",
                           where, fl, fp, on, pt_kind_name(v));
        } else if (op >= PT_LT && op <= PT_GE &&
                   (v->type == MSGPACK_OBJECT_NIL ||
                    v->type == MSGPACK_OBJECT_BOOLEAN)) {
            return pt_fail(p, "%s.%.*s.%s: needs a number or a string, got %s",
                           where, fl, fp, on, pt_kind_name(v));
        }
        if (pt_add_cond(p, pr, field, (pt_op)op, v) < 0)
            return WEIR_ENOMEM;
    }
    return 0;
}

/* A `where` mapping into a new predicate; *index gets its number. */
static int pt_parse_where(pt_parse *p, const msgpack_object *w,
                          const char *where, uint32_t *index)
{
    if (!w)
        return pt_fail(p, "%s: missing (a mapping of field: condition)", where);
    if (w->type != MSGPACK_OBJECT_MAP || w->via.map.size == 0)
        return pt_fail(p,
                       "%s: must be a non-empty mapping of field: "
                       "condition, got %s",
                       where, pt_kind_name(w));
    pt_rules *r = p->r;
    pt_pred *preds = realloc(r->preds, (r->n_preds + 1) * sizeof *preds);
    if (!preds)
        return WEIR_ENOMEM;
    r->preds = preds;
    pt_pred *pr = &preds[r->n_preds++];
    memset(pr, 0, sizeof *pr);
    *index = (uint32_t)(r->n_preds - 1);
    for (uint32_t i = 0; i < w->via.map.size; i++) {
        const msgpack_object *k = &w->via.map.ptr[i].key;
        const msgpack_object *v = &w->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size == 0)
            return pt_fail(p,
                           "%s: a field name is %s; expected a non-empty "
                           "string",
                           where,
                           k->type == MSGPACK_OBJECT_STR ? "empty"
                                                         : pt_kind_name(k));
        int rc;
        if (v->type == MSGPACK_OBJECT_MAP)
            rc = pt_parse_ops(p, pr, where, k, v);
        else if (pt_is_scalar(v))
            rc = pt_add_cond(p, pr, k, PT_EQ, v);
        else
            rc = pt_fail(p,
                         "%s.%.*s: must be a value or a mapping of operators, "
                         "got %s%s",
                         where, (int)k->via.str.size, k->via.str.ptr,
                         pt_kind_name(v),
                         v->type == MSGPACK_OBJECT_ARRAY
                             ? " (for one of several values use {in: [...]})"
                             : "");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                     */
/* ------------------------------------------------------------------------ */

static int pt_parse_steps(pt_parse *p, pt_rule *rule, const msgpack_object *s)
{
    static const char *const step_keys[] = {"where", "times", NULL};
    char where[64];
    if (!s)
        return pt_fail(p, ".steps: missing (a non-empty list of steps)");
    if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size == 0)
        return pt_fail(p, ".steps: must be a non-empty list of steps, got %s",
                       pt_kind_name(s));
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        const msgpack_object *st = &s->via.array.ptr[i];
        snprintf(where, sizeof where, ".steps[%u]", i);
        if (st->type != MSGPACK_OBJECT_MAP)
            return pt_fail(p,
                           "%s: must be a mapping with where (and times), "
                           "got %s",
                           where, pt_kind_name(st));
        int rc = pt_check_keys(p, st, where, step_keys, "where, times");
        if (rc < 0)
            return rc;
        uint64_t times = 1;
        const msgpack_object *t = pt_get(st, "times");
        if (t) {
            if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 < 1)
                return pt_fail(p, "%s.times: must be an integer >= 1, got %s",
                               where, pt_kind_name(t));
            times = t->via.u64;
        }
        if (times > PT_MAX_POSITIONS - rule->n)
            return pt_fail(p,
                           "%s.times: the steps of a rule may match at "
                           "most %d records in all",
                           where, PT_MAX_POSITIONS);
        strncat(where, ".where", sizeof where - strlen(where) - 1);
        uint32_t pred;
        if ((rc = pt_parse_where(p, pt_get(st, "where"), where, &pred)) < 0)
            return rc;
        uint32_t *pos = realloc(rule->pos, (rule->n + times) * sizeof *pos);
        if (!pos)
            return WEIR_ENOMEM;
        rule->pos = pos;
        for (uint64_t k = 0; k < times; k++)
            pos[rule->n++] = pred;
    }
    return 0;
}

static int pt_parse_absence(pt_parse *p, pt_rule *rule, const msgpack_object *f)
{
    static const char *const keys[] = {"where", "same", NULL};
    if (f->type != MSGPACK_OBJECT_MAP)
        return pt_fail(p,
                       ".followed_by_not: must be a mapping with where "
                       "(and same), got %s",
                       pt_kind_name(f));
    int rc = pt_check_keys(p, f, ".followed_by_not", keys, "where, same");
    if (rc < 0)
        return rc;
    if ((rc = pt_parse_where(p, pt_get(f, "where"), ".followed_by_not.where",
                             &rule->neg)) < 0)
        return rc;
    rule->absence = 1;
    const msgpack_object *s = pt_get(f, "same");
    if (!s)
        return 0;
    if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size > PT_MAX_SAME)
        return pt_fail(p,
                       ".followed_by_not.same: must be a list of at most "
                       "%d field names, got %s",
                       PT_MAX_SAME, pt_kind_name(s));
    rule->same = calloc(s->via.array.size + 1, sizeof *rule->same);
    rule->same_len = calloc(s->via.array.size + 1, sizeof *rule->same_len);
    if (!rule->same || !rule->same_len)
        return WEIR_ENOMEM;
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        const msgpack_object *e = &s->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0)
            return pt_fail(p,
                           ".followed_by_not.same[%u]: must be a "
                           "non-empty field name, got %s",
                           i, pt_kind_name(e));
        for (size_t r = 0; pt_reserved[r]; r++)
            if (pt_str_is(e, pt_reserved[r]))
                return pt_fail(p,
                               ".followed_by_not.same[%u]: '%s' is a "
                               "field of the match record itself; "
                               "rename it",
                               i, pt_reserved[r]);
        for (size_t k = 0; k < rule->n_same; k++)
            if (rule->same_len[k] == e->via.str.size &&
                memcmp(rule->same[k], e->via.str.ptr, e->via.str.size) == 0)
                return pt_fail(p,
                               ".followed_by_not.same[%u]: '%.*s' is "
                               "listed twice",
                               i, (int)e->via.str.size, e->via.str.ptr);
        rule->same[rule->n_same] = e->via.str.ptr;
        rule->same_len[rule->n_same++] = e->via.str.size;
    }
    return 0;
}

static int pt_parse_name(pt_parse *p, pt_rule *rule, const msgpack_object *n)
{
    if (!n)
        return pt_fail(p, ".name: missing");
    if (n->type != MSGPACK_OBJECT_STR || n->via.str.size == 0 ||
        n->via.str.size > PT_MAX_NAME)
        return pt_fail(p,
                       ".name: must be a string of 1 to %d characters, "
                       "got %s",
                       PT_MAX_NAME, pt_kind_name(n));
    for (uint32_t i = 0; i < n->via.str.size; i++) {
        unsigned char c = (unsigned char)n->via.str.ptr[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            return pt_fail(p, ".name: must not contain control characters, "
                              "quotes or backslashes");
    }
    for (size_t i = 0; i + 1 < p->r->n_rules; i++)
        if (strlen(p->r->rules[i].name) == n->via.str.size &&
            memcmp(p->r->rules[i].name, n->via.str.ptr, n->via.str.size) == 0)
            return pt_fail(p, ".name: '%.*s' is also the name of rules[%zu]",
                           (int)n->via.str.size, n->via.str.ptr, i);
    rule->name = malloc(n->via.str.size + 1);
    if (!rule->name)
        return WEIR_ENOMEM;
    memcpy(rule->name, n->via.str.ptr, n->via.str.size);
    rule->name[n->via.str.size] = '\0';
    snprintf(p->at + strlen(p->at), sizeof p->at - strlen(p->at), " ('%s')",
             rule->name);
    return 0;
}

static int pt_parse_rule(pt_parse *p, const msgpack_object *o, size_t index)
{
    static const char *const keys[] = {"name", "steps", "within",
                                       "followed_by_not", NULL};
    pt_rules *r = p->r;
    pt_rule *rules = realloc(r->rules, (r->n_rules + 1) * sizeof *rules);
    if (!rules)
        return WEIR_ENOMEM;
    r->rules = rules;
    pt_rule *rule = &rules[r->n_rules++];
    memset(rule, 0, sizeof *rule);
    snprintf(p->at, sizeof p->at, "rules[%zu]", index);
    if (o->type != MSGPACK_OBJECT_MAP)
        return pt_fail(p,
                       ": must be a mapping with name, steps, within, "
                       "followed_by_not; got %s",
                       pt_kind_name(o));
    int rc;
    if ((rc = pt_parse_name(p, rule, pt_get(o, "name"))) < 0 ||
        (rc = pt_check_keys(p, o, "", keys,
                            "name, steps, within, followed_by_not")) < 0 ||
        (rc = pt_parse_steps(p, rule, pt_get(o, "steps"))) < 0)
        return rc;
    const msgpack_object *w = pt_get(o, "within");
    if (w && (pt_parse_duration(w, &rule->within) < 0 || rule->within <= 0))
        return pt_fail(p, ".within: must be a positive duration like 30m, 24h "
                          "or 7d (or integer ms)");
    const msgpack_object *f = pt_get(o, "followed_by_not");
    if (f && (rc = pt_parse_absence(p, rule, f)) < 0)
        return rc;
    if (f && !w)
        return pt_fail(p, ".within: required with followed_by_not (the "
                          "absence is checked until the first step's time + "
                          "within)");
    return 0;
}

int pt_rules_parse(const void *mp, size_t len, pt_rules *out, char *why,
                   size_t why_len)
{
    memset(out, 0, sizeof *out);
    msgpack_unpacked_init(&out->unpacked);
    pt_parse p = {.r = out, .why = why, .why_len = why_len};
    if (!mp || len == 0 || !mpscan_plausible(mp, len))
        return pt_fail(&p, "rules: not a valid value");
    if (!(out->cfg = malloc(len)))
        return WEIR_ENOMEM;
    memcpy(out->cfg, mp, len);
    size_t off = 0;
    if (msgpack_unpack_next(&out->unpacked, out->cfg, len, &off) !=
        MSGPACK_UNPACK_SUCCESS)
        return pt_fail(&p, "rules: not a valid value");
    const msgpack_object *root = &out->unpacked.data;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size == 0)
        return pt_fail(&p, "rules: must be a non-empty list of rules, got %s",
                       pt_kind_name(root));
    if (root->via.array.size > PT_MAX_RULES)
        return pt_fail(&p, "rules: %u rules; at most %d", root->via.array.size,
                       PT_MAX_RULES);
    for (uint32_t i = 0; i < root->via.array.size; i++) {
        int rc = pt_parse_rule(&p, &root->via.array.ptr[i], i);
        if (rc == WEIR_ENOMEM)
            snprintf(why, why_len, "out of memory parsing rules");
        if (rc < 0)
            return rc;
    }
    return 0;
}

void pt_rules_free(pt_rules *r)
{
    for (size_t i = 0; i < r->n_preds; i++)
        free(r->preds[i].conds);
    free(r->preds);
    for (size_t i = 0; i < r->n_rules; i++) {
        free(r->rules[i].name);
        free(r->rules[i].pos);
        free(r->rules[i].same);
        free(r->rules[i].same_len);
    }
    free(r->rules);
    msgpack_unpacked_destroy(&r->unpacked);
    free(r->cfg);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Evaluation                                                                */
/* ------------------------------------------------------------------------ */

const msgpack_object *pt_field(const msgpack_object *map, const char *name,
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

static int pt_is_num(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_FLOAT32 ||
           o->type == MSGPACK_OBJECT_FLOAT64;
}

static int pt_is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
           o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static double pt_as_double(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)o->via.i64;
    default: return o->via.f64;
    }
}

/* Compares a and b: -1, 0 or 1, or 2 when they are not comparable. */
static int pt_cmp(const msgpack_object *a, const msgpack_object *b)
{
    if (pt_is_int(a) && pt_is_int(b)) {
        int an = a->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        int bn = b->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (an != bn)
            return an ? -1 : 1;
        if (an)
            return a->via.i64 < b->via.i64 ? -1 : a->via.i64 > b->via.i64;
        return a->via.u64 < b->via.u64 ? -1 : a->via.u64 > b->via.u64;
    }
    if (pt_is_num(a) && pt_is_num(b)) {
        double x = pt_as_double(a), y = pt_as_double(b);
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

static int pt_eq(const msgpack_object *a, const msgpack_object *b)
{
    if (a->type == MSGPACK_OBJECT_NIL || b->type == MSGPACK_OBJECT_NIL)
        return a->type == b->type;
    if (a->type == MSGPACK_OBJECT_BOOLEAN || b->type == MSGPACK_OBJECT_BOOLEAN)
        return a->type == b->type && a->via.boolean == b->via.boolean;
    return pt_cmp(a, b) == 0;
}

static int pt_cond_eval(const pt_cond *c, const msgpack_object *map)
{
    const msgpack_object *v = pt_field(map, c->field, c->field_len);
    if (!v)
        return 0;
    int r;
    switch (c->op) {
    case PT_EQ: return pt_eq(v, c->val);
    case PT_NE: return !pt_eq(v, c->val);
    case PT_LT: return pt_cmp(v, c->val) == -1;
    case PT_LE: r = pt_cmp(v, c->val); return r == -1 || r == 0;
    case PT_GT: return pt_cmp(v, c->val) == 1;
    case PT_GE: r = pt_cmp(v, c->val); return r == 1 || r == 0;
    case PT_IN:
        for (uint32_t i = 0; i < c->val->via.array.size; i++)
            if (pt_eq(v, &c->val->via.array.ptr[i]))
                return 1;
        return 0;
    }
    return 0;
}

int pt_pred_eval(const pt_pred *p, const msgpack_object *map)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return 0;
    for (size_t i = 0; i < p->n; i++)
        if (!pt_cond_eval(&p->conds[i], map))
            return 0;
    return 1;
}
