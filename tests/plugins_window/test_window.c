/*
 * test_window.c - the window operator on the real host through the test
 * harness (weir/testing.h; RocksDB state, the runtime's timers): tumbling,
 * sliding and session windows with every aggregate, on pseudo-random
 * out-of-order input with watermarks, late records within and beyond the
 * allowed lateness, checked after every step against a brute-force model kept
 * by the test (windows recomputed from the list of accepted records, aggregates
 * recomputed from scratch). Also: hand-worked examples, parameter errors,
 * skipped and time-less records, state and timer cleanup, and fault paths
 * (state, emit and timer failures).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

enum { KIND_TUMBLING, KIND_SLIDING, KIND_SESSION };
enum { AGG_COUNT, AGG_SUM, AGG_MIN, AGG_MAX };
static const char *const agg_names[] = {"count", "sum", "min", "max"};

/* ------------------------------------------------------------------------ */
/* Emissions as canonical strings                                            */
/* ------------------------------------------------------------------------ */

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_add(strs *s, char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    s->v[s->n++] = str;
}

static void strs_free(strs *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "port|key|ts|json" with the JSON's keys sorted. */
static char *canon(uint32_t port, const char *key, size_t key_len, int64_t ts,
                   json_t *value)
{
    char *j = json_dumps(value, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(j);
    char *s = NULL;
    assert_true(asprintf(&s, "%u|%.*s|%lld|%s", port, (int)key_len, key,
                         (long long)ts, j) > 0);
    free(j);
    return s;
}

/* The plugin's emissions since `from`, as canonical strings. */
static void got_since(const weir_test *h, size_t from, strs *out)
{
    for (size_t i = from; i < hx_n(h); i++) {
        const weir_test_record *r = hx_rec(h, i);
        json_t *v = tu_mp_to_json(r->value, r->value_len);
        assert_non_null(v);
        strs_add(out, canon(r->port, r->key, r->key_len, r->ts, v));
        json_decref(v);
    }
}

static void assert_same(strs *want, strs *got, const char *what)
{
    if (want->n)
        qsort(want->v, want->n, sizeof *want->v, cmp_str);
    if (got->n)
        qsort(got->v, got->n, sizeof *got->v, cmp_str);
    size_t n = want->n > got->n ? want->n : got->n;
    for (size_t i = 0; i < n; i++) {
        const char *w = i < want->n ? want->v[i] : "(none)";
        const char *g = i < got->n ? got->v[i] : "(none)";
        if (strcmp(w, g) != 0) {
            for (size_t k = 0; k < want->n; k++)
                fprintf(stderr, "  want %s\n", want->v[k]);
            for (size_t k = 0; k < got->n; k++)
                fprintf(stderr, "  got  %s\n", got->v[k]);
            fail_msg("%s: emission %zu differs: want %s, got %s", what, i, w,
                     g);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The model                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct mrec {
    int key; /* 0..K-1, the key is "k<key>" */
    int64_t ts;
    int64_t val;
    int alive; /* accepted and not cleaned (sessions) */
} mrec;

/* A tumbling or sliding window of the model. */
typedef struct mwin {
    int key;
    int64_t start, end;
    int64_t *vals;
    size_t n;
    int cleaned;
} mwin;

typedef struct model {
    int kind, agg;
    int64_t size, slide, gap, lateness;
    int64_t wm;
    mrec *recs; /* sessions */
    size_t n_recs;
    mwin *wins; /* tumbling and sliding */
    size_t n_wins;
    strs want; /* expected emissions of the current step */
} model;

static json_t *model_result(const model *m, int key, int64_t start, int64_t end,
                            const int64_t *vals, size_t n)
{
    char k[16];
    snprintf(k, sizeof k, "k%d", key);
    int64_t r = m->agg == AGG_COUNT ? (int64_t)n : vals[0];
    if (m->agg == AGG_SUM)
        r = 0;
    for (size_t i = 0; i < n; i++) {
        if (m->agg == AGG_SUM)
            r += vals[i];
        if (m->agg == AGG_MIN && vals[i] < r)
            r = vals[i];
        if (m->agg == AGG_MAX && vals[i] > r)
            r = vals[i];
    }
    return json_pack("{s:s, s:I, s:I, s:I}", "key", k, "start",
                     (json_int_t)start, "end", (json_int_t)end,
                     agg_names[m->agg], (json_int_t)r);
}

static void model_expect_window(model *m, int key, int64_t start, int64_t end,
                                const int64_t *vals, size_t n)
{
    char k[16];
    snprintf(k, sizeof k, "k%d", key);
    json_t *v = model_result(m, key, start, end, vals, n);
    strs_add(&m->want, canon(0, k, strlen(k), end - 1, v));
    json_decref(v);
}

static void model_expect_late(model *m, int key, int64_t ts, int64_t val)
{
    char k[16];
    snprintf(k, sizeof k, "k%d", key);
    json_t *v = json_pack("{s:I}", "v", (json_int_t)val);
    strs_add(&m->want, canon(1, k, strlen(k), ts, v));
    json_decref(v);
}

static mwin *model_win(model *m, int key, int64_t start)
{
    for (size_t i = 0; i < m->n_wins; i++)
        if (!m->wins[i].cleaned && m->wins[i].key == key &&
            m->wins[i].start == start)
            return &m->wins[i];
    m->wins = realloc(m->wins, (m->n_wins + 1) * sizeof *m->wins);
    assert_non_null(m->wins);
    mwin *w = &m->wins[m->n_wins++];
    memset(w, 0, sizeof *w);
    w->key = key;
    w->start = start;
    w->end = start + m->size;
    return w;
}

/* Window starts of a record, found by scanning every multiple of the step
 * from well before ts (no modular arithmetic, unlike the plugin). */
static size_t model_starts(const model *m, int64_t ts, int64_t *out)
{
    int64_t step = m->kind == KIND_TUMBLING ? m->size : m->slide;
    size_t n = 0;
    int64_t k0 = (ts - m->size) / step - 2;
    for (int64_t k = k0; k * step <= ts; k++)
        if (k * step <= ts && ts < k * step + m->size)
            out[n++] = k * step;
    return n;
}

static int cmp_rec_ts(const void *a, const void *b)
{
    const mrec *x = *(mrec *const *)a, *y = *(mrec *const *)b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* The sessions of `key` from its alive records (plus `extra` when not
 * NULL): groups of records sorted by time, split where two neighbours are
 * more than `gap` apart. Calls fn for each group. */
typedef void (*group_fn)(model *m, int key, mrec **g, size_t n, void *arg);

static void model_sessions(model *m, int key, mrec *extra, group_fn fn,
                           void *arg)
{
    mrec **v = malloc((m->n_recs + 1) * sizeof *v);
    assert_non_null(v);
    size_t n = 0;
    for (size_t i = 0; i < m->n_recs; i++)
        if (m->recs[i].alive && m->recs[i].key == key)
            v[n++] = &m->recs[i];
    if (extra)
        v[n++] = extra;
    qsort(v, n, sizeof *v, cmp_rec_ts);
    size_t from = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i == n || v[i]->ts - v[i - 1]->ts > m->gap) {
            fn(m, key, v + from, i - from, arg);
            from = i;
        }
    }
    free(v);
}

static void model_emit_group(model *m, int key, mrec **g, size_t n)
{
    int64_t *vals = malloc(n * sizeof *vals);
    assert_non_null(vals);
    for (size_t i = 0; i < n; i++)
        vals[i] = g[i]->val;
    model_expect_window(m, key, g[0]->ts, g[n - 1]->ts + m->gap, vals, n);
    free(vals);
}

typedef struct sess_arg {
    mrec *r;
    int late;
    int64_t old_wm;
} sess_arg;

static void on_new_record(model *m, int key, mrec **g, size_t n, void *arg)
{
    sess_arg *a = arg;
    int has = 0;
    for (size_t i = 0; i < n; i++)
        has |= g[i] == a->r;
    if (!has)
        return;
    int64_t end = g[n - 1]->ts + m->gap;
    if (end - 1 + m->lateness <= m->wm) {
        a->late = 1;
        return;
    }
    if (end - 1 <= m->wm)
        model_emit_group(m, key, g, n);
}

static void on_advance(model *m, int key, mrec **g, size_t n, void *arg)
{
    sess_arg *a = arg;
    int64_t end = g[n - 1]->ts + m->gap;
    if (a->old_wm < end - 1 && end - 1 <= m->wm)
        model_emit_group(m, key, g, n);
    if (end - 1 + m->lateness <= m->wm)
        for (size_t i = 0; i < n; i++)
            g[i]->alive = 0;
}

static void model_record(model *m, int key, int64_t ts, int64_t val)
{
    if (m->kind == KIND_SESSION) {
        mrec r = {.key = key, .ts = ts, .val = val, .alive = 1};
        sess_arg a = {.r = &r};
        model_sessions(m, key, &r, on_new_record, &a);
        if (a.late) {
            model_expect_late(m, key, ts, val);
            return;
        }
        m->recs = realloc(m->recs, (m->n_recs + 1) * sizeof *m->recs);
        assert_non_null(m->recs);
        m->recs[m->n_recs++] = r;
        return;
    }
    int64_t starts[64];
    size_t n = model_starts(m, ts, starts);
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t end = starts[i] + m->size;
        if (end - 1 + m->lateness <= m->wm)
            continue;
        accepted = 1;
        mwin *w = model_win(m, key, starts[i]);
        w->vals = realloc(w->vals, (w->n + 1) * sizeof *w->vals);
        assert_non_null(w->vals);
        w->vals[w->n++] = val;
        if (end - 1 <= m->wm)
            model_expect_window(m, key, w->start, w->end, w->vals, w->n);
    }
    if (n && !accepted)
        model_expect_late(m, key, ts, val);
}

static void model_watermark(model *m, int64_t wm, int keys)
{
    if (wm <= m->wm)
        return;
    int64_t old = m->wm;
    m->wm = wm;
    if (m->kind == KIND_SESSION) {
        sess_arg a = {.old_wm = old};
        for (int k = 0; k < keys; k++)
            model_sessions(m, k, NULL, on_advance, &a);
        return;
    }
    for (size_t i = 0; i < m->n_wins; i++) {
        mwin *w = &m->wins[i];
        if (w->cleaned)
            continue;
        if (old < w->end - 1 && w->end - 1 <= wm)
            model_expect_window(m, w->key, w->start, w->end, w->vals, w->n);
        if (w->end - 1 + m->lateness <= wm) {
            w->cleaned = 1;
            free(w->vals);
            w->vals = NULL;
        }
    }
}

static void model_free(model *m)
{
    for (size_t i = 0; i < m->n_wins; i++)
        free(m->wins[i].vals);
    free(m->wins);
    free(m->recs);
    strs_free(&m->want);
}

/* ------------------------------------------------------------------------ */
/* Driving both                                                              */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static int64_t rnd_in(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

static weir_test *open_window(const weir_test_param *p)
{
    return hx_new(WINDOW_SO, "window", p, 0, 1);
}

static void send(weir_test *h, model *m, int key, int64_t ts, int64_t val)
{
    char k[16], js[64];
    snprintf(k, sizeof k, "k%d", key);
    snprintf(js, sizeof js, "{\"v\": %lld}", (long long)val);
    size_t from = hx_n(h);
    assert_int_equal(hx_process_json(h, k, ts, js), 0);
    model_record(m, key, ts, val);
    strs got = {0};
    got_since(h, from, &got);
    assert_same(&m->want, &got, "after a record");
    strs_free(&got);
    strs_free(&m->want);
}

static void advance(weir_test *h, model *m, int64_t wm, int keys)
{
    size_t from = hx_n(h);
    assert_int_equal(weir_test_watermark(h, wm), 0);
    model_watermark(m, wm, keys);
    strs got = {0};
    got_since(h, from, &got);
    assert_same(&m->want, &got, "after a watermark");
    strs_free(&got);
    strs_free(&m->want);
}

typedef struct scenario {
    int kind, agg;
    const char *size, *slide, *gap, *lateness;
    int64_t size_ms, slide_ms, gap_ms, lateness_ms;
} scenario;

/* One randomized run: 3 keys, 2000 records, event time moving forward
 * with jitter up to 1.5 s, every 20th record up to 6 s late, the watermark
 * every few records at max seen - 1001 ms. */
static void run_scenario(const scenario *sc, uint64_t seed)
{
    enum { KEYS = 3, N = 2000 };
    weir_test_param p[8];
    size_t np = 0;
    static const char *const kinds[] = {"tumbling", "sliding", "session"};
    p[np++] = (weir_test_param){"kind", kinds[sc->kind]};
    p[np++] = (weir_test_param){"aggregate", agg_names[sc->agg]};
    if (sc->size)
        p[np++] = (weir_test_param){"size", sc->size};
    if (sc->slide)
        p[np++] = (weir_test_param){"slide", sc->slide};
    if (sc->gap)
        p[np++] = (weir_test_param){"gap", sc->gap};
    if (sc->lateness)
        p[np++] = (weir_test_param){"allowed_lateness", sc->lateness};
    if (sc->agg != AGG_COUNT)
        p[np++] = (weir_test_param){"field", "v"};
    p[np] = (weir_test_param){NULL, NULL};
    weir_test *h = open_window(p);
    model m = {.kind = sc->kind,
               .agg = sc->agg,
               .size = sc->size_ms,
               .slide = sc->slide_ms,
               .gap = sc->gap_ms,
               .lateness = sc->lateness_ms,
               .wm = WEIR_WATERMARK_MIN};
    rng_state = seed;
    int64_t clock = -20000, max_seen = INT64_MIN; /* negative times too */
    size_t late_before = 0;
    for (int i = 0; i < N; i++) {
        /* Times are multiples of 50 ms and watermarks are 49 mod 50, like
         * every end - 1 and end - 1 + lateness: boundaries are hit. */
        clock += 50 * rnd_in(0, 2);
        int64_t ts = clock - 50 * rnd_in(0, 30);
        if (i % 20 == 7)
            ts = clock - 50 * rnd_in(30, 120);
        int key = (int)rnd_in(0, KEYS - 1);
        send(h, &m, key, ts, rnd_in(-50, 100));
        max_seen = ts > max_seen ? ts : max_seen;
        if (rnd() % 4 == 0)
            advance(h, &m, max_seen - 1001, KEYS);
    }
    for (size_t i = 0; i < hx_n(h); i++)
        late_before += hx_rec(h, i)->port == 1;
    advance(h, &m, WEIR_WATERMARK_MAX, KEYS);
    /* Every window fired and was cleaned up: nothing is left behind. */
    assert_int_equal(hx_entries(h), 0);
    assert_int_equal(hx_timers(h), 0);
    /* The run exercised both late paths and produced results. */
    assert_true(late_before > 0);
    assert_int_equal(hx_counter(h, "window_late_records_total", NULL),
                     (int64_t)late_before);
    model_free(&m);
    weir_test_free(h);
}

#define SC(k, a, sz, sl, gp, lt)                                               \
    ((scenario){.kind = (k),                                                   \
                .agg = (a),                                                    \
                .size = (sz) ? #sz : NULL,                                     \
                .slide = (sl) ? #sl : NULL,                                    \
                .gap = (gp) ? #gp : NULL,                                      \
                .lateness = (lt) ? #lt : NULL,                                 \
                .size_ms = (sz),                                               \
                .slide_ms = (sl),                                              \
                .gap_ms = (gp),                                                \
                .lateness_ms = (lt)})

static void test_random_tumbling(void **state)
{
    for (int agg = AGG_COUNT; agg <= AGG_MAX; agg++) {
        scenario a = SC(KIND_TUMBLING, agg, 1000, 0, 0, 0);
        scenario b = SC(KIND_TUMBLING, agg, 700, 0, 0, 2000);
        run_scenario(&a, 11 + (uint64_t)agg);
        run_scenario(&b, 21 + (uint64_t)agg);
    }
}

static void test_random_sliding(void **state)
{
    for (int agg = AGG_COUNT; agg <= AGG_MAX; agg++) {
        scenario a = SC(KIND_SLIDING, agg, 1000, 300, 0, 0);
        scenario b = SC(KIND_SLIDING, agg, 1000, 250, 0, 1500);
        scenario c = SC(KIND_SLIDING, agg, 200, 500, 0, 1000);
        run_scenario(&a, 31 + (uint64_t)agg);
        run_scenario(&b, 41 + (uint64_t)agg);
        run_scenario(&c, 51 + (uint64_t)agg);
    }
}

static void test_random_session(void **state)
{
    for (int agg = AGG_COUNT; agg <= AGG_MAX; agg++) {
        scenario a = SC(KIND_SESSION, agg, 0, 0, 400, 0);
        scenario b = SC(KIND_SESSION, agg, 0, 0, 300, 2000);
        run_scenario(&a, 61 + (uint64_t)agg);
        run_scenario(&b, 71 + (uint64_t)agg);
    }
}

/* ------------------------------------------------------------------------ */
/* Worked examples                                                           */
/* ------------------------------------------------------------------------ */

/* The JSON of output i, with keys sorted. */
static char *out_json(const weir_test *h, size_t i)
{
    const weir_test_record *r = hx_rec(h, i);
    json_t *v = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(v);
    char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(v);
    return s;
}

static void assert_out(const weir_test *h, size_t i, uint32_t port,
                       const char *key, int64_t ts, const char *json)
{
    const weir_test_record *r = hx_rec(h, i);
    assert_int_equal(r->port, port);
    assert_int_equal(r->key_len, strlen(key));
    assert_memory_equal(r->key, key, r->key_len);
    assert_int_equal(r->ts, ts);
    char *s = out_json(h, i);
    assert_string_equal(s, json);
    free(s);
}

static void test_tumbling_lateness_example(void **state)
{
    const weir_test_param p[] = {{"kind", "tumbling"},       {"size", "10s"},
                                 {"aggregate", "sum"},       {"field", "n"},
                                 {"allowed_lateness", "5s"}, {NULL, NULL}};
    weir_test *h = open_window(p);
    assert_int_equal(hx_process_json(h, "u", 1000, "{\"n\": 3}"), 0);
    assert_int_equal(hx_process_json(h, "u", 9999, "{\"n\": 4}"), 0);
    assert_int_equal(hx_process_json(h, "u", 10000, "{\"n\": 100}"), 0);
    assert_int_equal(weir_test_watermark(h, 9998), 0);
    assert_int_equal(hx_n(h), 0); /* [0, 10000) fires at 9999 */
    assert_int_equal(weir_test_watermark(h, 9999), 0);
    assert_int_equal(hx_n(h), 1);
    assert_out(h, 0, 0, "u", 9999,
               "{\"end\":10000,\"key\":\"u\",\"start\":0,\"sum\":7}");
    /* Late but within 5 s: the window is updated and re-emitted at once. */
    assert_int_equal(weir_test_watermark(h, 14998), 0);
    assert_int_equal(hx_process_json(h, "u", 500, "{\"n\": 10}"), 0);
    assert_int_equal(hx_n(h), 2);
    assert_out(h, 1, 0, "u", 9999,
               "{\"end\":10000,\"key\":\"u\",\"start\":0,\"sum\":17}");
    /* At 14999 = end - 1 + lateness the window is gone: later records for
     * it go to port late unchanged. */
    assert_int_equal(weir_test_watermark(h, 14999), 0);
    assert_int_equal(hx_process_json(h, "u", 9000, "{\"n\": 1000}"), 0);
    assert_int_equal(hx_n(h), 3);
    assert_out(h, 2, 1, "u", 9000, "{\"n\":1000}");
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 4);
    assert_out(h, 3, 0, "u", 19999,
               "{\"end\":20000,\"key\":\"u\",\"start\":10000,\"sum\":100}");
    assert_int_equal(hx_entries(h), 0);
    assert_int_equal(hx_timers(h), 0);
    weir_test_free(h);
}

static void test_session_merge_example(void **state)
{
    const weir_test_param p[] = {{"kind", "session"},
                                 {"gap", "1s"},
                                 {"aggregate", "max"},
                                 {"field", "n"},
                                 {NULL, NULL}};
    weir_test *h = open_window(p);
    assert_int_equal(hx_process_json(h, "s", 0, "{\"n\": 1}"), 0);
    assert_int_equal(hx_process_json(h, "s", 2000, "{\"n\": 2}"), 0);
    assert_int_equal(hx_timers(h), 2); /* 999 and 2999 */
    assert_int_equal(hx_entries(h), 2);
    /* 1000 touches [0, 1000) and [1000, 2000) touches [2000, 3000): one
     * session [0, 3000). The old windows' timers are replaced. */
    assert_int_equal(hx_process_json(h, "s", 1000, "{\"n\": 5.5}"), 0);
    assert_int_equal(hx_entries(h), 1);
    assert_int_equal(hx_timers(h), 1);
    assert_int_equal(weir_test_watermark(h, 2998), 0);
    assert_int_equal(hx_n(h), 0);
    assert_int_equal(weir_test_watermark(h, 2999), 0);
    assert_int_equal(hx_n(h), 1);
    assert_out(h, 0, 0, "s", 2999,
               "{\"end\":3000,\"key\":\"s\",\"max\":5.5,\"start\":0}");
    /* Without lateness the session is gone: a record whose own window
     * [1500, 2500) is behind the watermark is late... */
    assert_int_equal(hx_process_json(h, "s", 1500, "{\"n\": 9}"), 0);
    assert_out(h, 1, 1, "s", 1500, "{\"n\":9}");
    assert_int_equal(hx_entries(h), 0);
    /* ...while one whose window reaches past it opens a new session. */
    assert_int_equal(hx_process_json(h, "s", 2500, "{\"n\": 7}"), 0);
    assert_int_equal(hx_n(h), 2);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_out(h, 2, 0, "s", 3499,
               "{\"end\":3500,\"key\":\"s\",\"max\":7,\"start\":2500}");
    assert_int_equal(hx_entries(h), 0);
    weir_test_free(h);
}

static void test_sliding_example(void **state)
{
    const weir_test_param p[] = {
        {"kind", "sliding"}, {"size", "10"}, {"slide", "5"}, {NULL, NULL}};
    weir_test *h = open_window(p);
    /* ts 7 is in [0, 10) and [5, 15); ts -3 in [-10, 0) and [-5, 5). */
    assert_int_equal(hx_process_json(h, "k", 7, "{}"), 0);
    assert_int_equal(hx_process_json(h, "k", -3, "{}"), 0);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 4);
    assert_out(h, 0, 0, "k", -1,
               "{\"count\":1,\"end\":0,\"key\":\"k\",\"start\":-10}");
    assert_out(h, 1, 0, "k", 4,
               "{\"count\":1,\"end\":5,\"key\":\"k\",\"start\":-5}");
    assert_out(h, 2, 0, "k", 9,
               "{\"count\":1,\"end\":10,\"key\":\"k\",\"start\":0}");
    assert_out(h, 3, 0, "k", 14,
               "{\"count\":1,\"end\":15,\"key\":\"k\",\"start\":5}");
    weir_test_free(h);
}

static void test_sum_types(void **state)
{
    const weir_test_param p[] = {{"kind", "tumbling"},
                                 {"size", "10"},
                                 {"aggregate", "sum"},
                                 {"field", "n"},
                                 {NULL, NULL}};
    weir_test *h = open_window(p);
    /* Integers stay integers; an overflowing sum becomes a double; a
     * double anywhere makes the result a double. */
    assert_int_equal(hx_process_json(h, "a", 1, "{\"n\": 9223372036854775807}"),
                     0);
    assert_int_equal(hx_process_json(h, "a", 2, "{\"n\": 1}"), 0);
    assert_int_equal(hx_process_json(h, "b", 1, "{\"n\": 2}"), 0);
    assert_int_equal(hx_process_json(h, "b", 2, "{\"n\": 0.5}"), 0);
    assert_int_equal(hx_process_json(h, "c", 1, "{\"n\": -4}"), 0);
    assert_int_equal(weir_test_watermark(h, 100), 0);
    assert_int_equal(hx_n(h), 3);
    for (size_t i = 0; i < 3; i++) {
        const weir_test_record *r = hx_rec(h, i);
        json_t *v = tu_mp_to_json(r->value, r->value_len);
        json_t *sum = json_object_get(v, "sum");
        if (((const char *)r->key)[0] == 'a') {
            assert_true(json_is_real(sum));
            assert_true(json_real_value(sum) > 9.2e18);
        } else if (((const char *)r->key)[0] == 'b') {
            assert_true(json_is_real(sum));
            assert_true(json_real_value(sum) == 2.5);
        } else {
            assert_true(json_is_integer(sum));
            assert_int_equal(json_integer_value(sum), -4);
        }
        json_decref(v);
    }
    weir_test_free(h);
}

static void test_skipped_and_timeless(void **state)
{
    const weir_test_param p[] = {{"kind", "tumbling"},
                                 {"size", "10"},
                                 {"aggregate", "min"},
                                 {"field", "n"},
                                 {NULL, NULL}};
    weir_test *h = open_window(p);
    assert_int_equal(hx_process_json(h, "a", 1, "{\"m\": 1}"), 0);
    assert_int_equal(hx_process_json(h, "a", 1, "{\"n\": \"x\"}"), 0);
    assert_int_equal(hx_process_json(h, "a", 1, "[1, 2]"), 0);
    assert_int_equal(weir_test_process(h, 0, "a", strlen("a"), 1, "\xc1", 1),
                     0);
    assert_int_equal(weir_test_process(h, 0, "a", strlen("a"), 1, NULL, 0), 0);
    assert_int_equal(hx_counter(h, "window_skipped_records_total", NULL), 5);
    assert_true(weir_test_count_logs(h, WEIR_LOG_WARN, "field is missing") ==
                1);
    assert_int_equal(hx_entries(h), 0);
    assert_int_equal(hx_n(h), 0);
    /* A record without event time cannot be windowed: port late. */
    assert_int_equal(hx_process_json(h, "a", WEIR_TS_NONE, "{\"n\": 1}"), 0);
    assert_int_equal(hx_n(h), 1);
    assert_int_equal(hx_rec(h, 0)->port, 1);
    assert_int_equal(weir_test_count_logs(h, WEIR_LOG_WARN, "without a usable"),
                     1);
    weir_test_free(h);
}

static void test_state_declared(void **state)
{
    const weir_test_param p[] = {
        {"kind", "session"}, {"gap", "1s"}, {NULL, NULL}};
    /* a host without metrics is fine */
    hx_spec s = {.so = WINDOW_SO,
                 .op = "window",
                 .params = p,
                 .without = WEIR_TEST_WITHOUT_METRICS};
    weir_test *h = hx_open(&s);
    assert_int_equal(weir_test_state_count(h), 1);
    const char *name;
    weir_state_kind kind;
    int64_t ttl;
    assert_int_equal(weir_test_state_info(h, 0, &name, &kind, &ttl), 0);
    assert_string_equal(name, "windows");
    assert_int_equal(kind, WEIR_STATE_MAP);
    assert_true(ttl == WEIR_TTL_NONE);
    assert_true(hx_counter(h, "window_late_records_total", NULL) < 0);
    assert_int_equal(hx_process_json(h, "a", 5, "{}"), 0);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    weir_test_free(h);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

static void expect_open_error(const weir_test_param *p, const char *needle)
{
    hx_spec s = {.so = WINDOW_SO, .op = "window", .params = p};
    weir_test *h = NULL;
    assert_true(hx_try(&s, &h) < 0);
    if (!strstr(weir_test_error(h), needle))
        fail_msg("error '%s' does not mention '%s'", weir_test_error(h),
                 needle);
    weir_test_free(h);
}

static void test_bad_params(void **state)
{
    const weir_test_param a[] = {
        {"kind", "sliding"}, {"size", "1s"}, {NULL, NULL}};
    expect_open_error(a, "needs parameter slide");
    const weir_test_param b[] = {{"kind", "tumbling"}, {NULL, NULL}};
    expect_open_error(b, "needs parameter size");
    const weir_test_param c[] = {{"kind", "session"}, {NULL, NULL}};
    expect_open_error(c, "needs parameter gap");
    const weir_test_param d[] = {
        {"kind", "session"}, {"gap", "1s"}, {"size", "1s"}, {NULL, NULL}};
    expect_open_error(d, "size is not used");
    const weir_test_param e[] = {
        {"kind", "tumbling"}, {"size", "1s"}, {"gap", "1s"}, {NULL, NULL}};
    expect_open_error(e, "gap is only for session");
    const weir_test_param f[] = {
        {"kind", "tumbling"}, {"size", "1s"}, {"slide", "1s"}, {NULL, NULL}};
    expect_open_error(f, "slide is only for sliding");
    const weir_test_param g[] = {{"kind", "tumbling"},
                                 {"size", "1s"},
                                 {"aggregate", "sum"},
                                 {NULL, NULL}};
    expect_open_error(g, "aggregate sum needs parameter field");
    const weir_test_param i[] = {
        {"kind", "tumbling"}, {"size", "1s"}, {"field", "x"}, {NULL, NULL}};
    expect_open_error(i, "field is not used by aggregate count");
    const weir_test_param j[] = {
        {"kind", "sliding"}, {"size", "1d"}, {"slide", "1s"}, {NULL, NULL}};
    expect_open_error(j, "windows per record");
    const weir_test_param k[] = {{"kind", "tumbling"},
                                 {"size", "1s"},
                                 {"aggregate", "max"},
                                 {"field", "''"},
                                 {NULL, NULL}};
    expect_open_error(k, "field is empty");
    const weir_test_param l[] = {{"kind", "hopping"}, {NULL, NULL}};
    expect_open_error(l, "is not one of: tumbling, sliding, session");
}

static void test_state_failures(void **state)
{
    const weir_test_param tp[] = {
        {"kind", "tumbling"}, {"size", "10"}, {NULL, NULL}};
    const weir_test_param sp[] = {
        {"kind", "session"}, {"gap", "10"}, {NULL, NULL}};
    const weir_test_param *ps[] = {tp, sp};
    for (int which = 0; which < 2; which++) {
        /* Fail each successive state call of a small run in turn; every
         * failure surfaces as an error with a message. */
        for (long n = 0; n < 12; n++) {
            weir_test *h = open_window(ps[which]);
            weir_test_fail_state(h, (uint64_t)n, WEIR_EIO);
            int rc = 0;
            for (int i = 0; i < 4 && rc == 0; i++)
                rc = hx_process_json(h, "a", i * 7, "{}");
            if (rc == 0)
                rc = weir_test_watermark(h, WEIR_WATERMARK_MAX);
            if (rc < 0)
                assert_non_null(strstr(weir_test_error(h), "window:"));
            weir_test_free(h);
        }
    }
    /* A call failing at once fails process(). */
    weir_test *h = open_window(tp);
    weir_test_fail_state(h, (uint64_t)0, WEIR_EIO);
    assert_true(hx_process_json(h, "a", 1, "{}") < 0);
    assert_non_null(strstr(weir_test_error(h), "state 'windows'"));
    weir_test_free(h);
}

static void test_emit_and_timer_failures(void **state)
{
    const weir_test_param p[] = {
        {"kind", "tumbling"}, {"size", "10"}, {NULL, NULL}};
    weir_test *h = open_window(p);
    weir_test_fail_timers(h, WEIR_ENOTSUP);
    assert_int_equal(hx_process_json(h, "a", 1, "{}"), WEIR_ENOTSUP);
    assert_non_null(strstr(weir_test_error(h), "timer"));
    weir_test_free(h);

    h = open_window(p);
    assert_int_equal(hx_process_json(h, "a", 1, "{}"), 0);
    weir_test_fail_emits(h, WEIR_EIO);
    assert_int_equal(weir_test_watermark(h, 100), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(h), "emit failed"));
    weir_test_free(h);

    h = open_window(p);
    assert_int_equal(weir_test_watermark(h, 100), 0);
    weir_test_fail_emits(h, WEIR_EIO);
    assert_int_equal(hx_process_json(h, "a", 1, "{}"), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(h), "port late"));
    weir_test_free(h);
}

static void test_corrupt_state(void **state)
{
    const weir_test_param p[] = {
        {"kind", "tumbling"}, {"size", "10"}, {NULL, NULL}};
    const unsigned char start0[8] = {0x80, 0, 0, 0, 0, 0, 0, 0};
    /* Read by process(), when the record adds to the window... */
    weir_test *h = open_window(p);
    assert_int_equal(hx_process_json(h, "a", 5, "{}"), 0);
    weir_test_map_put(h, "windows", "a", strlen("a"), start0, 8, "xx", 2);
    assert_int_equal(hx_process_json(h, "a", 6, "{}"), WEIR_EFAIL);
    assert_non_null(strstr(weir_test_error(h), "unknown format"));
    weir_test_free(h);
    /* ...and by on_timer(), when the window fires. */
    h = open_window(p);
    assert_int_equal(hx_process_json(h, "a", 5, "{}"), 0);
    weir_test_map_put(h, "windows", "a", strlen("a"), start0, 8, "xx", 2);
    assert_true(weir_test_watermark(h, 100) < 0);
    assert_non_null(strstr(weir_test_error(h), "unknown format"));
    weir_test_free(h);
}

/* argv[1]: "rest" runs every test but the randomized runs, any other word
 * only test_<word> (e.g. random_sliding): one ctest entry each, so that
 * each stays well under a minute, also with the sanitizers. */
int main(int argc, char **argv)
{
    char filter[64];
    if (argc > 1 && !strcmp(argv[1], "rest")) {
        cmocka_set_skip_filter("test_random_*");
    } else if (argc > 1) {
        snprintf(filter, sizeof filter, "test_%s", argv[1]);
        cmocka_set_test_filter(filter);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_tumbling),
        cmocka_unit_test(test_random_sliding),
        cmocka_unit_test(test_random_session),
        cmocka_unit_test(test_tumbling_lateness_example),
        cmocka_unit_test(test_session_merge_example),
        cmocka_unit_test(test_sliding_example),
        cmocka_unit_test(test_sum_types),
        cmocka_unit_test(test_skipped_and_timeless),
        cmocka_unit_test(test_state_declared),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_state_failures),
        cmocka_unit_test(test_emit_and_timer_failures),
        cmocka_unit_test(test_corrupt_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
