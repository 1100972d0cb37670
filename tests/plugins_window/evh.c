/* evh.c - the fake event-time host of evh.h (test scaffolding). */
#define _GNU_SOURCE

#include "evh.h"

#include <dlfcn.h>
#include <errno.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef fp_value evh_value;

/* A stored entry: value state (no ukey), map entry, or a whole list. */
typedef struct evh_entry {
    size_t state;
    char *key;
    size_t key_len;
    char *ukey; /* map only */
    size_t ukey_len;
    char *val; /* value and map */
    size_t val_len;
    char **elems; /* list only */
    size_t *elem_lens;
    size_t n_elems;
} evh_entry;

typedef struct evh_timer {
    char *key;
    size_t key_len;
    weir_time_domain domain;
    int64_t ts;
} evh_timer;

typedef struct evh_metric_rec {
    char *name;
    char *label_value; /* NULL for none */
    weir_metric_kind kind;
    int64_t count;
} evh_metric_rec;

struct evh {
    weir_ctx ctx; /* first: services cast the ctx back */
    const weir_operator *op;
    void *self;
    int opened;
    int closed;
    int in_open;
    int in_iter; /* inside a map_iter/list_iter callback */
    evh_value *vals;
    size_t n_vals;
    int param_rc;
    char error[2048];
    /* current key */
    int has_key;
    char *key;
    size_t key_len;
    int64_t wm;
    int64_t now;
    /* output */
    evh_rec *recs;
    size_t n_recs, cap_recs;
    char **logs;
    weir_log_level *log_levels;
    size_t n_logs, cap_logs;
    /* state */
    weir_state_desc *descs;
    size_t n_states;
    evh_entry *ents;
    size_t n_ents, cap_ents;
    void *last_get;  /* what the last get returned; freed at the next call */
    long fail_after; /* state calls left before WEIR_EIO; < 0 = never */
    /* timers */
    evh_timer *timers;
    size_t n_timers, cap_timers;
    /* metrics */
    evh_metric_rec **metrics;
    size_t n_metrics;
    int emit_rc;
    int timer_rc;
};

static evh *evh_of(weir_ctx *ctx)
{
    return (evh *)ctx;
}

/* A copy with a NUL after the n bytes (not part of them), so that tests
 * may print keys; ASan still catches reads past n + 1. */
static void *evh_dup(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    assert_non_null(d);
    if (n)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int evh_bytes_eq(const void *a, size_t an, const void *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* ------------------------------------------------------------------------ */
/* Diagnostics, identity, parameters                                         */
/* ------------------------------------------------------------------------ */

static void evh_svc_log(weir_ctx *ctx, weir_log_level level, const char *fmt,
                        va_list ap)
{
    evh *h = evh_of(ctx);
    char *s = NULL;
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    if (h->n_logs == h->cap_logs) {
        h->cap_logs = h->cap_logs ? 2 * h->cap_logs : 16;
        h->logs = realloc(h->logs, h->cap_logs * sizeof *h->logs);
        h->log_levels =
            realloc(h->log_levels, h->cap_logs * sizeof *h->log_levels);
        assert_true(h->logs && h->log_levels);
    }
    if (getenv("EVH_VERBOSE"))
        fprintf(stderr, "[log %d] %s\n", level, s);
    h->logs[h->n_logs] = s;
    h->log_levels[h->n_logs++] = level;
}

static int evh_svc_set_error(weir_ctx *ctx, const char *fmt, va_list ap)
{
    evh *h = evh_of(ctx);
    vsnprintf(h->error, sizeof h->error, fmt, ap);
    if (getenv("EVH_VERBOSE"))
        fprintf(stderr, "[error] %s\n", h->error);
    return WEIR_EFAIL;
}

static const char *evh_svc_operator_id(weir_ctx *ctx)
{
    return evh_of(ctx)->op->name;
}

static uint32_t evh_svc_subtask_index(weir_ctx *ctx)
{
    return 0;
}

static uint32_t evh_svc_parallelism(weir_ctx *ctx)
{
    return 1;
}

static const evh_value *evh_param_of(weir_ctx *ctx, const char *name, int *rc)
{
    evh *h = evh_of(ctx);
    return fp_find(h->vals, h->n_vals, name, rc);
}

static int evh_svc_param_bool(weir_ctx *ctx, const char *name, int *out)
{
    int rc;
    const evh_value *v = evh_param_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_BOOL)
        return WEIR_EINVAL;
    *out = v->b;
    return 0;
}

static int evh_svc_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    int rc;
    const evh_value *v = evh_param_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_INT && v->def->type != WEIR_PARAM_DURATION &&
        v->def->type != WEIR_PARAM_SIZE)
        return WEIR_EINVAL;
    *out = v->i;
    return 0;
}

static int evh_svc_param_double(weir_ctx *ctx, const char *name, double *out)
{
    int rc;
    const evh_value *v = evh_param_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type == WEIR_PARAM_BOOL || v->def->type == WEIR_PARAM_STRING ||
        v->def->type == WEIR_PARAM_ENUM || v->def->type == WEIR_PARAM_ANY)
        return WEIR_EINVAL;
    *out = v->d;
    return 0;
}

static int evh_svc_param_string(weir_ctx *ctx, const char *name,
                                const char **ptr, size_t *len)
{
    int rc;
    const evh_value *v = evh_param_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_STRING && v->def->type != WEIR_PARAM_ENUM)
        return WEIR_EINVAL;
    *ptr = v->s;
    *len = v->s_len;
    return 0;
}

static int evh_svc_param_msgpack(weir_ctx *ctx, const char *name,
                                 const void **ptr, size_t *len)
{
    int rc;
    const evh_value *v = evh_param_of(ctx, name, &rc);
    if (!v)
        return rc;
    if (v->def->type != WEIR_PARAM_ANY)
        return WEIR_EINVAL; /* the fake host packs only ANY values */
    *ptr = v->s;
    *len = v->s_len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Records and time                                                          */
/* ------------------------------------------------------------------------ */

static int evh_svc_emit(weir_ctx *ctx, uint32_t port, const void *key,
                        size_t key_len, int64_t ts, const void *value,
                        size_t value_len)
{
    evh *h = evh_of(ctx);
    assert_false(h->in_open);
    assert_false(h->in_iter);
    if (h->emit_rc)
        return h->emit_rc;
    size_t n = 0;
    while (h->op->output_ports && h->op->output_ports[n])
        n++;
    assert_true(port < (h->op->output_ports ? n : 1));
    if (h->n_recs == h->cap_recs) {
        h->cap_recs = h->cap_recs ? 2 * h->cap_recs : 64;
        h->recs = realloc(h->recs, h->cap_recs * sizeof *h->recs);
        assert_non_null(h->recs);
    }
    evh_rec *r = &h->recs[h->n_recs++];
    r->port = port;
    r->key = evh_dup(key, key_len);
    r->key_len = key_len;
    r->ts = ts;
    r->value = evh_dup(value, value_len);
    r->value_len = value_len;
    r->watermark = h->wm;
    return 0;
}

static int evh_svc_output_port(weir_ctx *ctx, const char *name)
{
    const weir_operator *op = evh_of(ctx)->op;
    if (!op->output_ports)
        return strcmp(name, "out") == 0 ? 0 : WEIR_ENOTFOUND;
    for (int i = 0; op->output_ports[i]; i++)
        if (strcmp(op->output_ports[i], name) == 0)
            return i;
    return WEIR_ENOTFOUND;
}

static int64_t evh_svc_now(weir_ctx *ctx)
{
    return evh_of(ctx)->now;
}

static int64_t evh_svc_watermark(weir_ctx *ctx)
{
    return evh_of(ctx)->wm;
}

static int evh_svc_current_key(weir_ctx *ctx, const void **key, size_t *len)
{
    evh *h = evh_of(ctx);
    if (!h->has_key)
        return WEIR_ESTATE;
    *key = h->key;
    *len = h->key_len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

static int evh_valid_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

static int evh_svc_state_declare(weir_ctx *ctx, const weir_state_desc *d,
                                 weir_state **out)
{
    evh *h = evh_of(ctx);
    assert_true(h->in_open); /* only in open() */
    if (!evh_valid_name(d->name) || d->ttl_ms == 0 ||
        (d->ttl_ms < 0 && d->ttl_ms != WEIR_TTL_NONE) ||
        (d->kind != WEIR_STATE_VALUE && d->kind != WEIR_STATE_MAP &&
         d->kind != WEIR_STATE_LIST))
        return WEIR_EINVAL;
    for (size_t i = 0; i < h->n_states; i++)
        if (strcmp(h->descs[i].name, d->name) == 0)
            return WEIR_EINVAL;
    h->descs = realloc(h->descs, (h->n_states + 1) * sizeof *h->descs);
    assert_non_null(h->descs);
    weir_state_desc *c = &h->descs[h->n_states];
    memset(c, 0, sizeof *c);
    memcpy(c, d, d->size < sizeof *c ? d->size : sizeof *c);
    c->name = strdup(d->name);
    assert_non_null(c->name);
    /* The handle is the state's index + 1 (never NULL). */
    *out = (weir_state *)(uintptr_t)(++h->n_states);
    return 0;
}

/* Common checks of a state call; returns the state index or a code. */
static int evh_state_enter(evh *h, weir_state *st, weir_state_kind kind,
                           size_t *idx)
{
    assert_false(h->in_iter);
    free(h->last_get);
    h->last_get = NULL;
    if (!h->has_key)
        return WEIR_ESTATE;
    size_t i = (size_t)(uintptr_t)st;
    assert_true(i >= 1 && i <= h->n_states);
    if (h->descs[i - 1].kind != kind)
        return WEIR_EINVAL;
    if (h->fail_after == 0)
        return WEIR_EIO;
    if (h->fail_after > 0)
        h->fail_after--;
    *idx = i - 1;
    return 0;
}

static evh_entry *evh_find(evh *h, size_t state, const void *ukey,
                           size_t ukey_len, int with_ukey)
{
    for (size_t i = 0; i < h->n_ents; i++) {
        evh_entry *e = &h->ents[i];
        if (e->state == state &&
            evh_bytes_eq(e->key, e->key_len, h->key, h->key_len) &&
            (!with_ukey || evh_bytes_eq(e->ukey, e->ukey_len, ukey, ukey_len)))
            return e;
    }
    return NULL;
}

static evh_entry *evh_add_entry(evh *h, size_t state)
{
    if (h->n_ents == h->cap_ents) {
        h->cap_ents = h->cap_ents ? 2 * h->cap_ents : 64;
        h->ents = realloc(h->ents, h->cap_ents * sizeof *h->ents);
        assert_non_null(h->ents);
    }
    evh_entry *e = &h->ents[h->n_ents++];
    memset(e, 0, sizeof *e);
    e->state = state;
    e->key = evh_dup(h->key, h->key_len);
    e->key_len = h->key_len;
    return e;
}

static void evh_drop_entry(evh *h, evh_entry *e)
{
    free(e->key);
    free(e->ukey);
    free(e->val);
    for (size_t i = 0; i < e->n_elems; i++)
        free(e->elems[i]);
    free(e->elems);
    free(e->elem_lens);
    *e = h->ents[--h->n_ents];
}

/* Hands out a fresh copy that lives until the next state call. */
static const void *evh_hand_out(evh *h, const void *p, size_t n)
{
    h->last_get = evh_dup(p, n);
    return h->last_get;
}

static int evh_svc_value_get(weir_ctx *ctx, weir_state *st, const void **value,
                             size_t *len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_VALUE, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    if (!e)
        return WEIR_ENOTFOUND;
    *value = evh_hand_out(h, e->val, e->val_len);
    *len = e->val_len;
    return 0;
}

static int evh_svc_value_put(weir_ctx *ctx, weir_state *st, const void *value,
                             size_t len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_VALUE, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    if (!e)
        e = evh_add_entry(h, s);
    free(e->val);
    e->val = evh_dup(value, len);
    e->val_len = len;
    return 0;
}

static int evh_svc_value_delete(weir_ctx *ctx, weir_state *st)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_VALUE, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    if (e)
        evh_drop_entry(h, e);
    return 0;
}

static int evh_svc_map_get(weir_ctx *ctx, weir_state *st, const void *ukey,
                           size_t ukey_len, const void **value, size_t *len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_MAP, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, ukey, ukey_len, 1);
    if (!e)
        return WEIR_ENOTFOUND;
    *value = evh_hand_out(h, e->val, e->val_len);
    *len = e->val_len;
    return 0;
}

static int evh_svc_map_put(weir_ctx *ctx, weir_state *st, const void *ukey,
                           size_t ukey_len, const void *value, size_t len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_MAP, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, ukey, ukey_len, 1);
    if (!e) {
        e = evh_add_entry(h, s);
        e->ukey = evh_dup(ukey, ukey_len);
        e->ukey_len = ukey_len;
    }
    free(e->val);
    e->val = evh_dup(value, len);
    e->val_len = len;
    return 0;
}

static int evh_svc_map_delete(weir_ctx *ctx, weir_state *st, const void *ukey,
                              size_t ukey_len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_MAP, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, ukey, ukey_len, 1);
    if (e)
        evh_drop_entry(h, e);
    return 0;
}

static int evh_cmp_ukey(const void *a, const void *b)
{
    const evh_entry *x = *(evh_entry *const *)a, *y = *(evh_entry *const *)b;
    size_t n = x->ukey_len < y->ukey_len ? x->ukey_len : y->ukey_len;
    int c = n ? memcmp(x->ukey, y->ukey, n) : 0;
    if (c)
        return c;
    return x->ukey_len < y->ukey_len ? -1 : x->ukey_len > y->ukey_len;
}

static int evh_svc_map_iter(weir_ctx *ctx, weir_state *st, weir_map_iter_fn fn,
                            void *arg)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_MAP, &s);
    if (rc < 0)
        return rc;
    size_t n = 0;
    evh_entry **v = malloc((h->n_ents + 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < h->n_ents; i++)
        if (h->ents[i].state == s &&
            evh_bytes_eq(h->ents[i].key, h->ents[i].key_len, h->key,
                         h->key_len))
            v[n++] = &h->ents[i];
    qsort(v, n, sizeof *v, evh_cmp_ukey);
    h->in_iter = 1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        /* Copies, so that a callback keeping them is caught by ASan. */
        void *uk = evh_dup(v[i]->ukey, v[i]->ukey_len);
        void *val = evh_dup(v[i]->val, v[i]->val_len);
        rc = fn(arg, uk, v[i]->ukey_len, val, v[i]->val_len);
        free(uk);
        free(val);
    }
    h->in_iter = 0;
    free(v);
    return rc < 0 ? rc : 0;
}

static int evh_svc_map_clear(weir_ctx *ctx, weir_state *st)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_MAP, &s);
    if (rc < 0)
        return rc;
    evh_entry *e;
    while ((e = evh_find(h, s, NULL, 0, 0)) != NULL)
        evh_drop_entry(h, e);
    return 0;
}

static int evh_svc_list_add(weir_ctx *ctx, weir_state *st, const void *value,
                            size_t len)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_LIST, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    if (!e)
        e = evh_add_entry(h, s);
    e->elems = realloc(e->elems, (e->n_elems + 1) * sizeof *e->elems);
    e->elem_lens =
        realloc(e->elem_lens, (e->n_elems + 1) * sizeof *e->elem_lens);
    assert_true(e->elems && e->elem_lens);
    e->elems[e->n_elems] = evh_dup(value, len);
    e->elem_lens[e->n_elems++] = len;
    return 0;
}

static int evh_svc_list_iter(weir_ctx *ctx, weir_state *st, weir_map_iter_fn fn,
                             void *arg)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_LIST, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    h->in_iter = 1;
    for (size_t i = 0; e && i < e->n_elems && rc == 0; i++) {
        void *val = evh_dup(e->elems[i], e->elem_lens[i]);
        rc = fn(arg, NULL, 0, val, e->elem_lens[i]);
        free(val);
    }
    h->in_iter = 0;
    return rc < 0 ? rc : 0;
}

static int evh_svc_list_clear(weir_ctx *ctx, weir_state *st)
{
    evh *h = evh_of(ctx);
    size_t s;
    int rc = evh_state_enter(h, st, WEIR_STATE_LIST, &s);
    if (rc < 0)
        return rc;
    evh_entry *e = evh_find(h, s, NULL, 0, 0);
    if (e)
        evh_drop_entry(h, e);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */
/* ------------------------------------------------------------------------ */

static evh_timer *evh_find_timer(evh *h, weir_time_domain d, int64_t ts)
{
    for (size_t i = 0; i < h->n_timers; i++) {
        evh_timer *t = &h->timers[i];
        if (t->domain == d && t->ts == ts &&
            evh_bytes_eq(t->key, t->key_len, h->key, h->key_len))
            return t;
    }
    return NULL;
}

static int evh_svc_timer_register(weir_ctx *ctx, weir_time_domain d, int64_t ts)
{
    evh *h = evh_of(ctx);
    assert_false(h->in_iter);
    if (!h->has_key)
        return WEIR_ESTATE;
    if (h->timer_rc)
        return h->timer_rc;
    if (d != WEIR_TIME_EVENT && d != WEIR_TIME_PROCESSING)
        return WEIR_EINVAL;
    if (evh_find_timer(h, d, ts))
        return 0;
    if (h->n_timers == h->cap_timers) {
        h->cap_timers = h->cap_timers ? 2 * h->cap_timers : 64;
        h->timers = realloc(h->timers, h->cap_timers * sizeof *h->timers);
        assert_non_null(h->timers);
    }
    evh_timer *t = &h->timers[h->n_timers++];
    t->key = evh_dup(h->key, h->key_len);
    t->key_len = h->key_len;
    t->domain = d;
    t->ts = ts;
    return 0;
}

static int evh_svc_timer_delete(weir_ctx *ctx, weir_time_domain d, int64_t ts)
{
    evh *h = evh_of(ctx);
    assert_false(h->in_iter);
    if (!h->has_key)
        return WEIR_ESTATE;
    evh_timer *t = evh_find_timer(h, d, ts);
    if (t) {
        free(t->key);
        *t = h->timers[--h->n_timers];
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Metrics                                                                   */
/* ------------------------------------------------------------------------ */

static int evh_svc_metric_register(weir_ctx *ctx, weir_metric_kind kind,
                                   const char *name, const char *help,
                                   const char *label_name,
                                   const char *label_value, weir_metric **out)
{
    evh *h = evh_of(ctx);
    assert_non_null(name);
    assert_non_null(help);
    assert_true((label_name == NULL) == (label_value == NULL));
    for (size_t i = 0; i < h->n_metrics; i++) {
        evh_metric_rec *m = h->metrics[i];
        if (strcmp(m->name, name) == 0 &&
            (m->label_value == NULL) == (label_value == NULL) &&
            (!label_value || strcmp(m->label_value, label_value) == 0)) {
            *out = (weir_metric *)m;
            return 0;
        }
    }
    evh_metric_rec *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->name = strdup(name);
    m->label_value = label_value ? strdup(label_value) : NULL;
    m->kind = kind;
    h->metrics = realloc(h->metrics, (h->n_metrics + 1) * sizeof *h->metrics);
    assert_non_null(h->metrics);
    h->metrics[h->n_metrics++] = m;
    *out = (weir_metric *)m;
    return 0;
}

static void evh_svc_counter_add(weir_metric *m, uint64_t delta)
{
    ((evh_metric_rec *)m)->count += (int64_t)delta;
}

#define EVH_API_COMMON                                                         \
    .size = sizeof(weir_host_api), .abi_major = WEIR_ABI_MAJOR,                \
    .abi_minor = WEIR_ABI_MINOR, .log = evh_svc_log,                           \
    .set_error = evh_svc_set_error, .operator_id = evh_svc_operator_id,        \
    .subtask_index = evh_svc_subtask_index,                                    \
    .parallelism = evh_svc_parallelism, .param_bool = evh_svc_param_bool,      \
    .param_int = evh_svc_param_int, .param_double = evh_svc_param_double,      \
    .param_string = evh_svc_param_string,                                      \
    .param_msgpack = evh_svc_param_msgpack, .emit = evh_svc_emit,              \
    .output_port = evh_svc_output_port, .now = evh_svc_now,                    \
    .watermark = evh_svc_watermark, .current_key = evh_svc_current_key,        \
    .state_declare = evh_svc_state_declare, .value_get = evh_svc_value_get,    \
    .value_put = evh_svc_value_put, .value_delete = evh_svc_value_delete,      \
    .map_get = evh_svc_map_get, .map_put = evh_svc_map_put,                    \
    .map_delete = evh_svc_map_delete, .map_iter = evh_svc_map_iter,            \
    .map_clear = evh_svc_map_clear, .list_add = evh_svc_list_add,              \
    .list_iter = evh_svc_list_iter, .list_clear = evh_svc_list_clear,          \
    .timer_register = evh_svc_timer_register,                                  \
    .timer_delete = evh_svc_timer_delete, .counter_add = evh_svc_counter_add

static const weir_host_api evh_api = {
    EVH_API_COMMON, .metric_register = evh_svc_metric_register};
static const weir_host_api evh_api_nometrics = {EVH_API_COMMON};

/* ------------------------------------------------------------------------ */
/* JSON <-> msgpack                                                          */
/* ------------------------------------------------------------------------ */

static void evh_pack_json(msgpack_packer *pk, json_t *j)
{
    const char *k;
    size_t i;
    json_t *x;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach(j, k, x)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            evh_pack_json(pk, x);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, x) evh_pack_json(pk, x);
        break;
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j),
                                   json_string_length(j));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

void *evh_json_to_mp(const char *json, size_t *len)
{
    json_error_t err;
    json_t *j = json_loads(json, JSON_DECODE_ANY | JSON_PRESERVE_ORDER, &err);
    if (!j)
        fail_msg("bad JSON in test: %s: %s", json, err.text);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    evh_pack_json(&pk, j);
    json_decref(j);
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static json_t *evh_obj_to_json(const msgpack_object *o)
{
    json_t *j;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > (uint64_t)INT64_MAX
                   ? NULL
                   : json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn_nocheck(o->via.str.size ? o->via.str.ptr : "",
                                    o->via.str.size);
    case MSGPACK_OBJECT_ARRAY:
        j = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *x = evh_obj_to_json(&o->via.array.ptr[i]);
            if (!x) {
                json_decref(j);
                return NULL;
            }
            json_array_append_new(j, x);
        }
        return j;
    case MSGPACK_OBJECT_MAP:
        j = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *x = kv->key.type == MSGPACK_OBJECT_STR
                            ? evh_obj_to_json(&kv->val)
                            : NULL;
            if (!x) {
                json_decref(j);
                return NULL;
            }
            json_object_setn_new_nocheck(
                j, kv->key.via.str.size ? kv->key.via.str.ptr : "",
                kv->key.via.str.size, x);
        }
        return j;
    default: return NULL;
    }
}

json_t *evh_mp_to_json(const void *data, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *j = NULL;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        off == len)
        j = evh_obj_to_json(&u.data);
    msgpack_unpacked_destroy(&u);
    return j;
}

/* ------------------------------------------------------------------------ */
/* Parameter validation (what the topology loader does before open)          */
/* ------------------------------------------------------------------------ */

static int evh_validate(evh *h, const evh_param *params)
{
    return fp_validate(h->op, params, evh_json_to_mp, &h->vals, &h->n_vals,
                       h->error, sizeof h->error);
}

/* ------------------------------------------------------------------------ */
/* Driving                                                                   */
/* ------------------------------------------------------------------------ */

evh *evh_new(const char *so, const char *opname, const evh_param *params)
{
    void *dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        fail_msg("dlopen %s: %s", so, dlerror());
    weir_plugin_entry_fn entry =
        (weir_plugin_entry_fn)(uintptr_t)dlsym(dl, WEIR_PLUGIN_ENTRY_SYMBOL);
    assert_non_null(entry);
    const weir_plugin *p = entry(&evh_api);
    assert_non_null(p);
    assert_int_equal(p->abi_major, WEIR_ABI_MAJOR);
    const weir_operator *op = NULL;
    for (size_t i = 0; p->operators[i]; i++)
        if (strcmp(p->operators[i]->name, opname) == 0)
            op = p->operators[i];
    if (!op)
        fail_msg("%s has no operator %s", so, opname);
    evh *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->ctx.api = &evh_api;
    h->op = op;
    h->wm = WEIR_WATERMARK_MIN;
    h->now = 1000000;
    h->fail_after = -1;
    h->param_rc = evh_validate(h, params);
    return h;
}

void evh_set_param_mp(evh *h, const char *name, const void *mp, size_t len)
{
    for (size_t i = 0; i < h->n_vals; i++) {
        evh_value *v = &h->vals[i];
        if (strcmp(v->def->name, name) == 0) {
            assert_int_equal(v->def->type, WEIR_PARAM_ANY);
            free(v->s);
            v->s = evh_dup(mp, len);
            v->s_len = len;
            v->set = 1;
            return;
        }
    }
    fail_msg("no parameter %s", name);
}

void evh_disable_metrics(evh *h)
{
    h->ctx.api = &evh_api_nometrics;
}

int evh_open(evh *h)
{
    if (h->param_rc < 0)
        return h->param_rc;
    h->in_open = 1;
    int rc = h->op->open(&h->ctx, &h->self);
    h->in_open = 0;
    if (rc == 0)
        h->opened = 1;
    else
        assert_true(rc < 0 && h->error[0]); /* a failure always explains */
    return rc;
}

static void evh_free_params(evh *h)
{
    fp_free(h->vals, h->n_vals);
    h->vals = NULL;
    h->n_vals = 0;
}

int evh_reopen(evh *h, const evh_param *params)
{
    assert_true(h->opened && !h->closed);
    h->in_open = 1;
    h->op->close(&h->ctx, h->self);
    h->in_open = 0;
    h->opened = 0;
    h->self = NULL;
    evh_free_params(h);
    h->error[0] = '\0';
    h->param_rc = evh_validate(h, params);
    /* The new instance declares its states again; the handles it gets must
     * reach the same data, which the name lookup below guarantees. */
    size_t n_old = h->n_states;
    weir_state_desc *old = h->descs;
    h->descs = NULL;
    h->n_states = 0;
    int rc = evh_open(h);
    for (size_t i = 0; rc == 0 && i < h->n_ents; i++) {
        const char *name = old[h->ents[i].state].name;
        size_t k = 0;
        while (k < h->n_states && strcmp(h->descs[k].name, name))
            k++;
        assert_true(k < h->n_states); /* a state that vanished */
        h->ents[i].state = k;
    }
    for (size_t i = 0; i < n_old; i++)
        free((char *)old[i].name);
    free(old);
    return rc;
}

void evh_state_set(evh *h, const char *state, const char *key, const void *ukey,
                   size_t ukey_len, const void *value, size_t len)
{
    size_t s = 0;
    while (s < h->n_states && strcmp(h->descs[s].name, state))
        s++;
    assert_true(s < h->n_states);
    free(h->key);
    h->key = evh_dup(key, strlen(key));
    h->key_len = strlen(key);
    evh_entry *e = evh_find(h, s, ukey, ukey_len, ukey != NULL);
    if (!e) {
        e = evh_add_entry(h, s);
        if (ukey) {
            e->ukey = evh_dup(ukey, ukey_len);
            e->ukey_len = ukey_len;
        }
    }
    free(e->val);
    e->val = evh_dup(value, len);
    e->val_len = len;
}

static void evh_set_key(evh *h, const void *key, size_t len)
{
    free(h->key);
    h->key = evh_dup(key, len);
    h->key_len = len;
    h->has_key = 1;
}

static void evh_end_callback(evh *h)
{
    free(h->last_get);
    h->last_get = NULL;
    h->has_key = 0;
}

int evh_process(evh *h, const char *key, int64_t ts, const void *value,
                size_t value_len)
{
    assert_true(h->opened);
    size_t klen = strlen(key);
    evh_set_key(h, key, klen);
    weir_record r = {.size = sizeof r,
                     .key = klen ? h->key : NULL,
                     .key_len = klen,
                     .ts = ts,
                     .value = value_len ? value : NULL,
                     .value_len = value_len};
    int rc = h->op->process(&h->ctx, h->self, &r, 0);
    evh_end_callback(h);
    if (rc < 0)
        assert_true(h->error[0]);
    return rc;
}

int evh_process_json(evh *h, const char *key, int64_t ts, const char *json)
{
    size_t n;
    void *mp = evh_json_to_mp(json, &n);
    int rc = evh_process(h, key, ts, mp, n);
    free(mp);
    return rc;
}

/* The due event-time timer with the smallest (ts, key), or -1. */
static long evh_next_timer(const evh *h)
{
    long best = -1;
    for (size_t i = 0; i < h->n_timers; i++) {
        const evh_timer *t = &h->timers[i];
        if (t->domain != WEIR_TIME_EVENT || t->ts > h->wm)
            continue;
        if (best < 0) {
            best = (long)i;
            continue;
        }
        const evh_timer *b = &h->timers[best];
        size_t n = t->key_len < b->key_len ? t->key_len : b->key_len;
        int c = n ? memcmp(t->key, b->key, n) : 0;
        if (t->ts < b->ts ||
            (t->ts == b->ts && (c < 0 || (c == 0 && t->key_len < b->key_len))))
            best = (long)i;
    }
    return best;
}

int evh_watermark(evh *h, int64_t wm)
{
    assert_true(h->opened);
    if (wm <= h->wm)
        return 0;
    h->wm = wm;
    long i, fired = 0;
    while ((i = evh_next_timer(h)) >= 0) {
        /* A plugin that keeps registering due timers would loop for ever. */
        if (++fired > 50000000)
            fail_msg("more than 50M timers fired for one watermark");
        evh_timer t = h->timers[i];
        h->timers[i] = h->timers[--h->n_timers];
        evh_set_key(h, t.key, t.key_len);
        free(t.key);
        int rc = h->op->on_timer
                     ? h->op->on_timer(&h->ctx, h->self, h->key, h->key_len,
                                       WEIR_TIME_EVENT, t.ts)
                     : 0;
        evh_end_callback(h);
        if (rc < 0) {
            assert_true(h->error[0]);
            return rc;
        }
    }
    if (h->op->on_watermark)
        return h->op->on_watermark(&h->ctx, h->self, wm);
    return 0;
}

int evh_finish(evh *h)
{
    assert_true(h->opened);
    return h->op->finish ? h->op->finish(&h->ctx, h->self) : 0;
}

void evh_clear_out(evh *h)
{
    for (size_t i = 0; i < h->n_recs; i++) {
        free(h->recs[i].key);
        free(h->recs[i].value);
    }
    h->n_recs = 0;
}

void evh_free(evh *h)
{
    if (!h)
        return;
    if (h->opened && !h->closed) {
        h->in_open = 1; /* close() must not emit either */
        h->op->close(&h->ctx, h->self);
        h->in_open = 0;
        h->closed = 1;
    }
    evh_clear_out(h);
    free(h->recs);
    for (size_t i = 0; i < h->n_logs; i++)
        free(h->logs[i]);
    free(h->logs);
    free(h->log_levels);
    evh_free_params(h);
    while (h->n_ents)
        evh_drop_entry(h, &h->ents[0]);
    free(h->ents);
    for (size_t i = 0; i < h->n_states; i++)
        free((char *)h->descs[i].name);
    free(h->descs);
    for (size_t i = 0; i < h->n_timers; i++)
        free(h->timers[i].key);
    free(h->timers);
    for (size_t i = 0; i < h->n_metrics; i++) {
        free(h->metrics[i]->name);
        free(h->metrics[i]->label_value);
        free(h->metrics[i]);
    }
    free(h->metrics);
    free(h->last_get);
    free(h->key);
    free(h);
}

size_t evh_n_out(const evh *h)
{
    return h->n_recs;
}

const evh_rec *evh_out(const evh *h, size_t i)
{
    assert_true(i < h->n_recs);
    return &h->recs[i];
}

const char *evh_error(const evh *h)
{
    return h->error;
}

size_t evh_count_logs(const evh *h, weir_log_level level, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n_logs; i++)
        if (h->log_levels[i] <= level && strstr(h->logs[i], needle))
            n++;
    return n;
}

size_t evh_n_timers(const evh *h)
{
    return h->n_timers;
}

size_t evh_n_entries(const evh *h)
{
    return h->n_ents;
}

size_t evh_n_states(const evh *h)
{
    return h->n_states;
}

const weir_state_desc *evh_state_desc(const evh *h, size_t i)
{
    assert_true(i < h->n_states);
    return &h->descs[i];
}

int64_t evh_counter(const evh *h, const char *name, const char *label_value)
{
    for (size_t i = 0; i < h->n_metrics; i++) {
        const evh_metric_rec *m = h->metrics[i];
        if (strcmp(m->name, name) == 0 &&
            (m->label_value == NULL) == (label_value == NULL) &&
            (!label_value || strcmp(m->label_value, label_value) == 0))
            return m->count;
    }
    return -1;
}

void evh_fail_state_after(evh *h, long n)
{
    h->fail_after = n;
}

void evh_set_emit_rc(evh *h, int rc)
{
    h->emit_rc = rc;
}

void evh_set_timer_rc(evh *h, int rc)
{
    h->timer_rc = rc;
}
