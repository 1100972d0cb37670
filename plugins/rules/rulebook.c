/*
 * rulebook.c - rule language, rule changes and histories (see rulebook.h).
 */
#include "rulebook.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"

/* Fields of a match record; a `same` field may not take one of the names. */
static const char *const rb_reserved[] = {
    "type", "rule", "version", "key", "first_ts", "last_ts", "events", NULL};

static WEIR_PRINTF(3, 4) int rb_fail(char *why, size_t why_len, const char *fmt,
                                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    return WEIR_EINVAL;
}

const char *rb_kind_name(rb_kind k)
{
    switch (k) {
    case RB_COUNT: return "count";
    case RB_SEQUENCE: return "sequence";
    case RB_ABSENCE: return "absence";
    }
    return "?";
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                     */
/* ------------------------------------------------------------------------ */

/* Adds predicate `w` (named `where`) to the rule; its index in *index. */
static int rb_add_pred(rb_rule *r, const msgpack_object *w, const char *where,
                       uint32_t *index, char *why, size_t why_len)
{
    cond_pred *v = realloc(r->preds, (r->n_preds + 1) * sizeof *v);
    if (!v)
        return WEIR_ENOMEM;
    r->preds = v;
    memset(&v[r->n_preds], 0, sizeof *v);
    *index = (uint32_t)r->n_preds++;
    return cond_parse(w, where, &v[*index], why, why_len);
}

static int rb_within(const msgpack_object *o, int64_t max_within, rb_rule *r,
                     char *why, size_t why_len)
{
    const msgpack_object *w = cond_get(o, "within");
    if (!w)
        return rb_fail(why, why_len,
                       "rule.within: missing (a duration such as 30m, 24h "
                       "or 7d)");
    if (cond_parse_duration(w, &r->within) < 0 || r->within <= 0)
        return rb_fail(why, why_len,
                       "rule.within: must be a positive duration such as "
                       "30m, 24h or 7d (or integer ms)");
    if (r->within > max_within)
        return rb_fail(why, why_len,
                       "rule.within: %lld ms is longer than the operator's "
                       "max_within (%lld ms)",
                       (long long)r->within, (long long)max_within);
    return 0;
}

static int rb_compile_count(const msgpack_object *o, rb_rule *r, char *why,
                            size_t why_len)
{
    static const char *const keys[] = {"type", "event", "min", "within", NULL};
    int rc = cond_check_keys(o, "rule", keys, "type, event, min, within", why,
                             why_len);
    if (rc < 0)
        return rc;
    const msgpack_object *m = cond_get(o, "min");
    if (!m || m->type != MSGPACK_OBJECT_POSITIVE_INTEGER || m->via.u64 < 1 ||
        m->via.u64 > RB_MAX_POSITIONS)
        return rb_fail(why, why_len,
                       "rule.min: must be an integer from 1 to %d, got %s",
                       RB_MAX_POSITIONS, m ? cond_kind_name(m) : "nothing");
    uint32_t p;
    if ((rc = rb_add_pred(r, cond_get(o, "event"), "rule.event", &p, why,
                          why_len)) < 0)
        return rc;
    r->n = (uint32_t)m->via.u64;
    for (uint32_t i = 0; i < r->n; i++)
        r->pos[i] = p;
    return 0;
}

static int rb_compile_sequence(const msgpack_object *o, rb_rule *r, char *why,
                               size_t why_len)
{
    static const char *const keys[] = {"type", "steps", "within", NULL};
    int rc =
        cond_check_keys(o, "rule", keys, "type, steps, within", why, why_len);
    if (rc < 0)
        return rc;
    const msgpack_object *s = cond_get(o, "steps");
    if (!s || s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size == 0 ||
        s->via.array.size > RB_MAX_POSITIONS)
        return rb_fail(why, why_len,
                       "rule.steps: must be a list of 1 to %d predicates, "
                       "got %s",
                       RB_MAX_POSITIONS, s ? cond_kind_name(s) : "nothing");
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        char where[32];
        snprintf(where, sizeof where, "rule.steps[%u]", i);
        if ((rc = rb_add_pred(r, &s->via.array.ptr[i], where, &r->pos[i], why,
                              why_len)) < 0)
            return rc;
    }
    r->n = s->via.array.size;
    return 0;
}

static int rb_compile_same(const msgpack_object *s, rb_rule *r, char *why,
                           size_t why_len)
{
    if (s->type != MSGPACK_OBJECT_ARRAY || s->via.array.size > RB_MAX_SAME)
        return rb_fail(why, why_len,
                       "rule.same: must be a list of at most %d field names, "
                       "got %s",
                       RB_MAX_SAME, cond_kind_name(s));
    for (uint32_t i = 0; i < s->via.array.size; i++) {
        const msgpack_object *e = &s->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR || e->via.str.size == 0)
            return rb_fail(why, why_len,
                           "rule.same[%u]: must be a non-empty field name, "
                           "got %s",
                           i, cond_kind_name(e));
        for (size_t k = 0; rb_reserved[k]; k++)
            if (cond_str_is(e, rb_reserved[k]))
                return rb_fail(why, why_len,
                               "rule.same[%u]: '%s' is a field of the match "
                               "record itself",
                               i, rb_reserved[k]);
        for (size_t k = 0; k < r->n_same; k++)
            if (r->same_len[k] == e->via.str.size &&
                !memcmp(r->same[k], e->via.str.ptr, e->via.str.size))
                return rb_fail(why, why_len,
                               "rule.same[%u]: '%.*s' is listed twice", i,
                               (int)e->via.str.size, e->via.str.ptr);
        r->same[r->n_same] = e->via.str.ptr;
        r->same_len[r->n_same++] = e->via.str.size;
    }
    return 0;
}

static int rb_compile_absence(const msgpack_object *o, rb_rule *r, char *why,
                              size_t why_len)
{
    static const char *const keys[] = {"type", "event",  "not_followed_by",
                                       "same", "within", NULL};
    int rc = cond_check_keys(o, "rule", keys,
                             "type, event, not_followed_by, same, within", why,
                             why_len);
    if (rc < 0)
        return rc;
    uint32_t p;
    if ((rc = rb_add_pred(r, cond_get(o, "event"), "rule.event", &p, why,
                          why_len)) < 0 ||
        (rc = cond_parse(cond_get(o, "not_followed_by"), "rule.not_followed_by",
                         &r->neg, why, why_len)) < 0)
        return rc;
    r->n = 1;
    r->pos[0] = p;
    const msgpack_object *s = cond_get(o, "same");
    return s ? rb_compile_same(s, r, why, why_len) : 0;
}

int rb_compile(const msgpack_object *o, int64_t max_within, rb_rule *out,
               char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return rb_fail(why, why_len, "rule: must be a mapping, got %s",
                       o ? cond_kind_name(o) : "nothing");
    const msgpack_object *t = cond_get(o, "type");
    int rc;
    if (t && cond_str_is(t, "count")) {
        out->kind = RB_COUNT;
        rc = rb_compile_count(o, out, why, why_len);
    } else if (t && cond_str_is(t, "sequence")) {
        out->kind = RB_SEQUENCE;
        rc = rb_compile_sequence(o, out, why, why_len);
    } else if (t && cond_str_is(t, "absence")) {
        out->kind = RB_ABSENCE;
        rc = rb_compile_absence(o, out, why, why_len);
    } else {
        rc = rb_fail(why, why_len,
                     "rule.type: must be count, sequence or absence");
    }
    if (rc == 0)
        rc = rb_within(o, max_within, out, why, why_len);
    if (rc == WEIR_ENOMEM)
        snprintf(why, why_len, "rule: out of memory");
    if (rc < 0)
        rb_rule_free(out);
    return rc;
}

void rb_rule_free(rb_rule *r)
{
    for (size_t i = 0; i < r->n_preds; i++)
        cond_pred_free(&r->preds[i]);
    free(r->preds);
    cond_pred_free(&r->neg);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Changes                                                                   */
/* ------------------------------------------------------------------------ */

static int rb_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > RB_MAX_ID)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int rb_change_parse(const msgpack_object *o, rb_change *out, char *why,
                    size_t why_len)
{
    memset(out, 0, sizeof *out);
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return rb_fail(why, why_len, "the change is not a mapping");
    const msgpack_object *op = cond_get(o, "op");
    if (op && cond_str_is(op, "add"))
        out->op = RB_ADD;
    else if (op && cond_str_is(op, "replace"))
        out->op = RB_REPLACE;
    else if (op && cond_str_is(op, "delete"))
        out->op = RB_DELETE;
    else
        return rb_fail(why, why_len, "op: must be add, replace or delete");
    const msgpack_object *id = cond_get(o, "id");
    if (!id || id->type != MSGPACK_OBJECT_STR ||
        !rb_id_ok(id->via.str.ptr, id->via.str.size))
        return rb_fail(why, why_len,
                       "id: must be a string of 1 to %d characters out of "
                       "A-Z a-z 0-9 _ . : -",
                       RB_MAX_ID);
    out->id = id->via.str.ptr;
    out->id_len = id->via.str.size;
    const msgpack_object *v = cond_get(o, "version");
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 < 1 ||
        v->via.u64 > (uint64_t)INT64_MAX)
        return rb_fail(why, why_len, "version: must be an integer >= 1");
    out->version = (int64_t)v->via.u64;
    out->rule = cond_get(o, "rule");
    if (out->op == RB_DELETE && out->rule)
        return rb_fail(why, why_len, "rule: not allowed with op delete");
    if (out->op != RB_DELETE && !out->rule)
        return rb_fail(why, why_len, "rule: missing (required with op %s)",
                       out->op == RB_ADD ? "add" : "replace");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Histories                                                                 */
/* ------------------------------------------------------------------------ */

void rb_entry_free(rb_entry *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->n; i++)
        rb_rule_free(&e->v[i].rule);
    free(e->v);
    msgpack_unpacked_destroy(&e->up);
    free(e->bytes);
    free(e->id);
    free(e);
}

/* Decodes version i of the history array into e->v[i]. */
static int rb_decode_version(const msgpack_object *a, rb_entry *e,
                             int64_t max_within, size_t *bad, char *why,
                             size_t why_len)
{
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size != 3)
        return WEIR_EINVAL;
    rb_version *v = &e->v[e->n];
    memset(v, 0, sizeof *v);
    const msgpack_object *f = a->via.array.ptr;
    if (weir_mp_as_int(&f[0], &v->eff) < 0 ||
        weir_mp_as_int(&f[1], &v->version) < 0 ||
        (f[2].type != MSGPACK_OBJECT_NIL && f[2].type != MSGPACK_OBJECT_MAP))
        return WEIR_EINVAL;
    if (e->n &&
        (v->eff < e->v[e->n - 1].eff || v->version <= e->v[e->n - 1].version))
        return WEIR_EINVAL;
    e->n++;
    if (f[2].type == MSGPACK_OBJECT_NIL)
        return 0;
    v->body = &f[2];
    char reason[256];
    int rc = rb_compile(v->body, max_within, &v->rule, reason, sizeof reason);
    if (rc == WEIR_ENOMEM)
        return rc;
    v->live = rc == 0;
    if (rc < 0 && (*bad)++ == 0)
        snprintf(why, why_len, "rule '%s' version %lld: %s", e->id,
                 (long long)v->version, reason);
    return 0;
}

int rb_entry_decode(const char *id, size_t id_len, const void *bytes,
                    size_t len, int64_t max_within, rb_entry **out,
                    size_t *bad_versions, char *why, size_t why_len)
{
    rb_entry *e = calloc(1, sizeof *e);
    int rc = WEIR_ENOMEM;
    *bad_versions = 0;
    if (!e)
        return rc;
    msgpack_unpacked_init(&e->up);
    if (!(e->id = malloc(id_len + 1)) || !(e->bytes = malloc(len ? len : 1)))
        goto fail;
    memcpy(e->id, id, id_len);
    e->id[id_len] = '\0';
    e->id_len = id_len;
    memcpy(e->bytes, bytes, len);
    e->len = len;
    size_t off = 0;
    rc = WEIR_EINVAL;
    if (!len || !mpscan_plausible(e->bytes, len) ||
        msgpack_unpack_next(&e->up, e->bytes, len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        e->up.data.type != MSGPACK_OBJECT_ARRAY || off != len)
        goto fail;
    const msgpack_object *h = &e->up.data;
    if (!(e->v = calloc(h->via.array.size ? h->via.array.size : 1,
                        sizeof *e->v))) {
        rc = WEIR_ENOMEM;
        goto fail;
    }
    for (uint32_t i = 0; i < h->via.array.size; i++)
        if ((rc = rb_decode_version(&h->via.array.ptr[i], e, max_within,
                                    bad_versions, why, why_len)) < 0)
            goto fail;
    *out = e;
    return 0;
fail:
    if (rc == WEIR_EINVAL)
        snprintf(why, why_len, "rule '%.*s': the stored history is damaged",
                 (int)id_len, id);
    rb_entry_free(e);
    return rc;
}

const rb_version *rb_entry_at(const rb_entry *e, int64_t t)
{
    size_t i = e->n;
    while (i > 0 && e->v[i - 1].eff > t)
        i--;
    if (i == 0 || !e->v[i - 1].live)
        return NULL;
    return &e->v[i - 1];
}

const rb_version *rb_entry_last(const rb_entry *e)
{
    return e && e->n ? &e->v[e->n - 1] : NULL;
}

static int rb_pack_version(msgpack_packer *pk, int64_t eff, int64_t version,
                           const msgpack_object *body)
{
    return msgpack_pack_array(pk, 3) || msgpack_pack_int64(pk, eff) ||
           msgpack_pack_int64(pk, version) ||
           (body ? msgpack_pack_object(pk, *body) : msgpack_pack_nil(pk));
}

int rb_history_encode(msgpack_packer *pk, const rb_entry *e, size_t from,
                      const rb_version *add)
{
    size_t n = e && e->n > from ? e->n - from : 0;
    int bad = msgpack_pack_array(pk, (uint32_t)(n + (add != NULL)));
    for (size_t i = 0; i < n && !bad; i++) {
        const rb_version *v = &e->v[from + i];
        bad = rb_pack_version(pk, v->eff, v->version, v->body);
    }
    if (add && !bad)
        bad = rb_pack_version(pk, add->eff, add->version, add->body);
    return bad ? WEIR_ENOMEM : 0;
}
