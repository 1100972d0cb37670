/*
 * rules.c - parsing, validation and evaluation of the pattern operator's
 * rules (see pattern.h for the rule language).
 *
 * Every error message names the place in the configuration, e.g.
 *   rules[1].steps[0].times: must be an integer >= 1
 *   rules[2] ('a_then_b').followed_by_not.where.type.between: unknown
 *   operator (expected eq, ne, lt, le, gt, ge, in, prefix)
 * The conditions themselves are plugins/common/cond.c's.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cond.h"
#include "mpscan.h"
#include "pattern.h"

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

/* Checks that every key of map `m` is a string out of `allowed`; `where`
 * names the map in the message. */
static int pt_check_keys(pt_parse *p, const msgpack_object *m,
                         const char *where, const char *const *allowed,
                         const char *expected)
{
    char why[256];
    if (cond_check_keys(m, where, allowed, expected, why, sizeof why) < 0)
        return pt_fail(p, "%s", why);
    return 0;
}

/* A `where` mapping into a new predicate; *index gets its number. */
static int pt_parse_where(pt_parse *p, const msgpack_object *w,
                          const char *where, uint32_t *index)
{
    pt_rules *r = p->r;
    cond_pred *preds = realloc(r->preds, (r->n_preds + 1) * sizeof *preds);
    if (!preds)
        return WEIR_ENOMEM;
    r->preds = preds;
    cond_pred *pr = &preds[r->n_preds++];
    memset(pr, 0, sizeof *pr);
    *index = (uint32_t)(r->n_preds - 1);
    char why[512];
    int rc = cond_parse(w, where, pr, why, sizeof why);
    if (rc == WEIR_EINVAL)
        return pt_fail(p, "%s", why);
    return rc;
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
                       cond_kind_name(s));
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        const msgpack_object *st = &s->via.array.ptr[i];
        snprintf(where, sizeof where, ".steps[%u]", i);
        if (st->type != MSGPACK_OBJECT_MAP)
            return pt_fail(p,
                           "%s: must be a mapping with where (and times), "
                           "got %s",
                           where, cond_kind_name(st));
        int rc = pt_check_keys(p, st, where, step_keys, "where, times");
        if (rc < 0)
            return rc;
        uint64_t times = 1;
        const msgpack_object *t = cond_get(st, "times");
        if (t) {
            if (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER || t->via.u64 < 1)
                return pt_fail(p, "%s.times: must be an integer >= 1, got %s",
                               where, cond_kind_name(t));
            times = t->via.u64;
        }
        if (times > PT_MAX_POSITIONS - rule->n)
            return pt_fail(p,
                           "%s.times: the steps of a rule may match at "
                           "most %d records in all",
                           where, PT_MAX_POSITIONS);
        strncat(where, ".where", sizeof where - strlen(where) - 1);
        uint32_t pred;
        if ((rc = pt_parse_where(p, cond_get(st, "where"), where, &pred)) < 0)
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
                       cond_kind_name(f));
    int rc = pt_check_keys(p, f, ".followed_by_not", keys, "where, same");
    if (rc < 0)
        return rc;
    if ((rc = pt_parse_where(p, cond_get(f, "where"), ".followed_by_not.where",
                             &rule->neg)) < 0)
        return rc;
    rule->absence = 1;
    const msgpack_object *s = cond_get(f, "same");
    if (!s)
        return 0;
    if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size > PT_MAX_SAME)
        return pt_fail(p,
                       ".followed_by_not.same: must be a list of at most "
                       "%d field names, got %s",
                       PT_MAX_SAME, cond_kind_name(s));
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
                           i, cond_kind_name(e));
        for (size_t r = 0; pt_reserved[r]; r++)
            if (cond_str_is(e, pt_reserved[r]))
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
                       PT_MAX_NAME, cond_kind_name(n));
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
                       cond_kind_name(o));
    int rc;
    if ((rc = pt_parse_name(p, rule, cond_get(o, "name"))) < 0 ||
        (rc = pt_check_keys(p, o, "", keys,
                            "name, steps, within, followed_by_not")) < 0 ||
        (rc = pt_parse_steps(p, rule, cond_get(o, "steps"))) < 0)
        return rc;
    const msgpack_object *w = cond_get(o, "within");
    if (w && (cond_parse_duration(w, &rule->within) < 0 || rule->within <= 0))
        return pt_fail(p, ".within: must be a positive duration like 30m, 24h "
                          "or 7d (or integer ms)");
    const msgpack_object *f = cond_get(o, "followed_by_not");
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
                       cond_kind_name(root));
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
        cond_pred_free(&r->preds[i]);
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
