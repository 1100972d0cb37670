/*
 * test_pattern.c - the pattern operator on the real host through the test
 * harness (weir/testing.h; RocksDB state, the runtime's timers): every rule
 * kind on hand-worked examples
 * (times, within expiry, sequences, absence fired by a timer, absence
 * cancelled by the negative record, the same-field constraint, restart of
 * a waiting absence), out-of-order input, late records, state cleanup,
 * strict validation of the rules with messages naming the rule and field,
 * and fault paths. A randomized test compares the matches of five rules on
 * out-of-order streams with a brute-force matcher written here: it sorts
 * each key's records by time and, for every record, searches backwards for
 * the latest-starting subsequence that ends there, with hand-written
 * predicates instead of the plugin's rule evaluator.
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

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL
#define DAY_MS  86400000LL

static weir_test *open_pattern(const char *rules, const char *idle)
{
    weir_test_param p[3] = {{"rules", rules}, {NULL, NULL}, {NULL, NULL}};
    if (idle)
        p[1] = (weir_test_param){"idle_timeout", idle};
    return hx_new(PATTERN_SO, "pattern", p, 0, 1);
}

static void feed(weir_test *h, const char *key, int64_t ts, const char *json)
{
    assert_int_equal(hx_process_json(h, key, ts, json), 0);
}

/* The JSON of output i with sorted keys (caller frees). */
static char *out_json(const weir_test *h, size_t i)
{
    const weir_test_record *r = hx_rec(h, i);
    json_t *v = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(v);
    char *s = json_dumps(v, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(v);
    return s;
}

static void assert_match(const weir_test *h, size_t i, const char *key,
                         int64_t ts, const char *rule, int64_t first,
                         int64_t last, int events, const char *extra)
{
    const weir_test_record *r = hx_rec(h, i);
    assert_int_equal(r->port, 0);
    assert_int_equal(r->key_len, strlen(key));
    assert_memory_equal(r->key, key, r->key_len);
    assert_int_equal(r->ts, ts);
    json_t *want =
        json_pack("{s:I, s:s, s:I, s:s, s:I}", "events", (json_int_t)events,
                  "key", key, "first_ts", (json_int_t)first, "rule", rule,
                  "last_ts", (json_int_t)last);
    if (extra) {
        json_t *x = json_loads(extra, 0, NULL);
        assert_non_null(x);
        json_object_update(want, x);
        json_decref(x);
    }
    char *w = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
    char *g = out_json(h, i);
    assert_string_equal(g, w);
    free(w);
    free(g);
    json_decref(want);
}

static void assert_clean(weir_test *h)
{
    assert_int_equal(hx_entries(h), 0);
    assert_int_equal(hx_timers(h), 0);
}

/* ------------------------------------------------------------------------ */
/* The clickstream rules, worked by hand                                      */
/* ------------------------------------------------------------------------ */

static const char *const twice_rule =
    "[{\"name\": \"visited_twice\", \"within\": \"7d\", \"steps\": "
    "[{\"where\": {\"type\": \"visit\", \"site\": \"shop\"}, \"times\": 2}]}]";

static void test_times_within(void **state)
{
    weir_test *h = open_pattern(twice_rule, NULL);
    feed(h, "u", 0, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 1 * DAY_MS, "{\"type\": \"visit\", \"site\": \"news\"}");
    feed(h, "u", 8 * DAY_MS, "{\"type\": \"visit\", \"site\": \"shop\"}");
    /* Day 15 is exactly 7 d after day 8: within is inclusive. */
    feed(h, "u", 15 * DAY_MS, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 16 * DAY_MS, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 23 * DAY_MS + 1, "{\"type\": \"visit\", \"site\": \"shop\"}");
    assert_int_equal(weir_test_watermark(h, 15 * DAY_MS - 1), 0);
    assert_int_equal(hx_n(h), 0); /* day 0 and day 8: 8 days apart */
    assert_int_equal(weir_test_watermark(h, 15 * DAY_MS), 0);
    assert_int_equal(hx_n(h), 1);
    assert_match(h, 0, "u", 15 * DAY_MS, "visited_twice", 8 * DAY_MS,
                 15 * DAY_MS, 2, NULL);
    /* Skip past last event: day 16 starts over, day 23 + 1 ms is too far. */
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    assert_int_equal(hx_counter(h, "pattern_matches_total", "visited_twice"),
                     1);
    assert_clean(h);
    weir_test_free(h);
}

static const char *const cart_rule =
    "[{\"name\": \"viewed_not_carted\", \"within\": \"30m\", "
    "\"steps\": [{\"where\": {\"type\": \"view\"}}], "
    "\"followed_by_not\": {\"where\": {\"type\": \"add_to_cart\"}, "
    "\"same\": [\"product\"]}}]";

static void test_absence_fires_and_cancels(void **state)
{
    weir_test *h = open_pattern(cart_rule, NULL);
    feed(h, "u", 0, "{\"type\": \"view\", \"product\": \"p1\"}");
    feed(h, "u", 5 * MIN_MS, "{\"type\": \"view\", \"product\": \"p2\"}");
    feed(h, "u", 10 * MIN_MS,
         "{\"type\": \"add_to_cart\", \"product\": \"p1\"}");
    feed(h, "v", 1 * MIN_MS, "{\"type\": \"view\", \"product\": \"p1\"}");
    /* v: a cart for another product does not cancel; one exactly at the
     * deadline does. */
    feed(h, "v", 2 * MIN_MS,
         "{\"type\": \"add_to_cart\", \"product\": \"p9\"}");
    feed(h, "v", 31 * MIN_MS,
         "{\"type\": \"add_to_cart\", \"product\": \"p1\"}");
    assert_int_equal(weir_test_watermark(h, 35 * MIN_MS - 1), 0);
    assert_int_equal(hx_n(h), 0);
    assert_int_equal(weir_test_watermark(h, 35 * MIN_MS), 0);
    assert_int_equal(hx_n(h), 1);
    assert_match(h, 0, "u", 35 * MIN_MS, "viewed_not_carted", 5 * MIN_MS,
                 5 * MIN_MS, 1, "{\"product\": \"p2\"}");
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    assert_clean(h);
    weir_test_free(h);
}

static void test_absence_restarts(void **state)
{
    /* The tickets rule: the clock restarts at each customer message; an
     * agent reply or closing cancels. */
    const char *rules =
        "[{\"name\": \"no_reply\", \"within\": \"24h\", \"steps\": "
        "[{\"where\": {\"type\": {\"in\": [\"created\", "
        "\"customer_reply\"]}}}],"
        " \"followed_by_not\": {\"where\": {\"type\": {\"in\": "
        "[\"agent_reply\", \"closed\"]}}}}]";
    weir_test *h = open_pattern(rules, NULL);
    feed(h, "t1", 0, "{\"type\": \"created\"}");
    feed(h, "t1", 2 * HOUR_MS, "{\"type\": \"customer_reply\"}");
    feed(h, "t2", 0, "{\"type\": \"created\"}");
    feed(h, "t2", 24 * HOUR_MS, "{\"type\": \"agent_reply\"}");
    feed(h, "t2", 25 * HOUR_MS, "{\"type\": \"customer_reply\"}");
    feed(h, "t2", 30 * HOUR_MS, "{\"type\": \"closed\"}");
    feed(h, "t3", 0, "{\"type\": \"created\"}");
    feed(h, "t3", 24 * HOUR_MS + 1, "{\"type\": \"agent_reply\"}");
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 2);
    assert_match(h, 0, "t3", 24 * HOUR_MS, "no_reply", 0, 0, 1, NULL);
    assert_match(h, 1, "t1", 26 * HOUR_MS, "no_reply", 2 * HOUR_MS, 2 * HOUR_MS,
                 1, NULL);
    assert_clean(h);
    weir_test_free(h);
}

static const char *const seq_rule =
    "[{\"name\": \"a_b_buy\", \"within\": \"1h\", \"steps\": ["
    "{\"where\": {\"page\": \"A\"}}, {\"where\": {\"page\": \"B\"}}, "
    "{\"where\": {\"type\": \"purchase\", \"amount\": {\"gt\": 0}}}]}]";

static void test_sequence_out_of_order(void **state)
{
    weir_test *h = open_pattern(seq_rule, NULL);
    /* Arrival order differs from event-time order; the watermark stays
     * behind. The latest A that still fits is reported (first_ts 50m). */
    feed(h, "u", 55 * MIN_MS, "{\"type\": \"visit\", \"page\": \"B\"}");
    feed(h, "u", 0, "{\"type\": \"visit\", \"page\": \"A\"}");
    feed(h, "u", 70 * MIN_MS, "{\"type\": \"purchase\", \"amount\": 5}");
    feed(h, "u", 50 * MIN_MS, "{\"type\": \"visit\", \"page\": \"A\"}");
    feed(h, "u", 80 * MIN_MS, "{\"type\": \"purchase\", \"amount\": 5.5}");
    /* w: A, B, then a purchase 1 h + 1 ms after A: too late. */
    feed(h, "w", 0, "{\"page\": \"A\"}");
    feed(h, "w", 1, "{\"page\": \"B\"}");
    feed(h, "w", HOUR_MS + 1, "{\"type\": \"purchase\", \"amount\": 1}");
    assert_int_equal(weir_test_watermark(h, 49 * MIN_MS), 0);
    assert_int_equal(hx_n(h), 0);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    assert_match(h, 0, "u", 70 * MIN_MS, "a_b_buy", 50 * MIN_MS, 70 * MIN_MS, 3,
                 NULL);
    assert_clean(h);
    weir_test_free(h);
}

static void test_late_records(void **state)
{
    weir_test *h = open_pattern(twice_rule, NULL);
    assert_int_equal(weir_test_watermark(h, 1000), 0);
    feed(h, "u", 1000, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 999, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", WEIR_TS_NONE, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 1001, "{\"type\": \"visit\", \"site\": \"shop\"}");
    assert_int_equal(hx_n(h), 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(hx_rec(h, i)->port, 1);
        char *s = out_json(h, i);
        assert_string_equal(s, "{\"site\":\"shop\",\"type\":\"visit\"}");
        free(s);
    }
    assert_int_equal(hx_rec(h, 0)->ts, 1000);
    assert_int_equal(hx_counter(h, "pattern_late_records_total", NULL), 3);
    assert_int_equal(weir_test_count_logs(h, WEIR_LOG_WARN, "without a usable"),
                     1);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 3); /* one visit in time: no match */
    assert_clean(h);
    weir_test_free(h);
}

static void test_idle_timeout(void **state)
{
    const char *rules = "[{\"name\": \"cart_buy\", \"steps\": ["
                        "{\"where\": {\"type\": \"add_to_cart\"}}, "
                        "{\"where\": {\"type\": \"purchase\"}}]}]";
    weir_test *h = open_pattern(rules, "10d");
    feed(h, "a", 0, "{\"type\": \"add_to_cart\"}");
    feed(h, "a", 9 * DAY_MS, "{\"type\": \"purchase\"}");
    feed(h, "b", 0, "{\"type\": \"add_to_cart\"}");
    feed(h, "b", 10 * DAY_MS + 1, "{\"type\": \"purchase\"}");
    assert_int_equal(weir_test_watermark(h, 9 * DAY_MS), 0);
    assert_int_equal(hx_n(h), 1);
    assert_match(h, 0, "a", 9 * DAY_MS, "cart_buy", 0, 9 * DAY_MS, 2, NULL);
    /* b's partial match is forgotten at 10 d (records at exactly 10 d
     * would still have been matched first), before the purchase. */
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    assert_clean(h);
    weir_test_free(h);
}

static void test_operators(void **state)
{
    const char *rules =
        "[{\"name\": \"r\", \"steps\": [{\"where\": {"
        "\"n\": {\"ge\": 2, \"lt\": 10.5}, \"s\": {\"gt\": \"b\", \"ne\": "
        "\"c\"}, \"b\": true, \"x\": {\"in\": [1, \"one\", null]}, "
        "\"m\": {\"le\": -3}, \"q\": {\"eq\": 3}}}]}]";
    weir_test *h = open_pattern(rules, NULL);
    const char *yes[] = {
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": 3}",
        "{\"n\": 10.4, \"s\": \"d\", \"b\": true, \"x\": \"one\", \"m\": "
        "-4.5, \"q\": 3.0}",
        "{\"n\": 3, \"s\": \"z\", \"b\": true, \"x\": null, \"m\": -9, \"q\": "
        "3}",
    };
    const char *no[] = {
        "{\"n\": 1, \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": 3}",
        "{\"n\": 10.5, \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": "
        "3}",
        "{\"n\": 2, \"s\": \"b\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": 3}",
        "{\"n\": 2, \"s\": \"c\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": 1, \"x\": 1, \"m\": -3, \"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": 2, \"m\": -3, \"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": \"1\", \"m\": -3, "
        "\"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -2, \"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": 1, \"q\": 3}",
        "{\"n\": \"2\", \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -3, "
        "\"q\": 3}",
        "{\"n\": 2, \"s\": \"bb\", \"b\": true, \"x\": 1, \"m\": -3, \"q\": "
        "3.5}",
        "[1, 2]",
    };
    int64_t t = 1;
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        feed(h, "k", t++, no[i]);
    assert_int_equal(
        weir_test_process(h, 0, "k", strlen("k"), t++, "\xc1\x00", 2), 0);
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        feed(h, "k", 100 + (int64_t)i, yes[i]);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(hx_rec(h, i)->ts, 100 + (int64_t)i);
    weir_test_free(h);
}

/* ------------------------------------------------------------------------ */
/* Randomized comparison with a brute-force matcher                          */
/* ------------------------------------------------------------------------ */

enum { T_VISIT, T_VIEW, T_CART, T_PURCHASE, T_N };
static const char *const type_names[] = {"visit", "view", "add_to_cart",
                                         "purchase"};

typedef struct ev {
    int key;
    int64_t ts;
    int type;
    int site;    /* 0 none, 1 "s1", 2 "s2" */
    int page;    /* 0 none, 'A', 'B', 'C' */
    int product; /* 0 none, 1..3 */
    int amount;
    size_t arrival;
} ev;

/* The rules, as JSON for the plugin and as C predicates for the model. */
static const char *const random_rules =
    "[{\"name\": \"twice\", \"within\": \"20m\", \"steps\": [{\"where\": "
    "{\"type\": \"visit\", \"site\": \"s1\"}, \"times\": 2}]},"
    " {\"name\": \"view_no_cart\", \"within\": \"15m\", \"steps\": "
    "[{\"where\": {\"type\": \"view\"}}], \"followed_by_not\": {\"where\": "
    "{\"type\": \"add_to_cart\"}, \"same\": [\"product\"]}},"
    " {\"name\": \"a_b_buy\", \"within\": \"30m\", \"steps\": [{\"where\": "
    "{\"page\": \"A\"}}, {\"where\": {\"page\": \"B\"}}, {\"where\": "
    "{\"type\": \"purchase\"}}]},"
    " {\"name\": \"a_b_no_buy\", \"within\": \"40m\", \"steps\": "
    "[{\"where\": {\"page\": \"A\"}}, {\"where\": {\"page\": {\"in\": "
    "[\"B\", \"C\"]}}, \"times\": 2}], \"followed_by_not\": {\"where\": "
    "{\"type\": \"purchase\", \"amount\": {\"ge\": 50}}}},"
    " {\"name\": \"cart_big_buy\", \"steps\": [{\"where\": {\"type\": "
    "\"add_to_cart\"}}, {\"where\": {\"type\": \"purchase\", \"amount\": "
    "{\"gt\": 20, \"le\": 80}}}]}]";

static int p_visit_s1(const ev *e)
{
    return e->type == T_VISIT && e->site == 1;
}
static int p_view(const ev *e)
{
    return e->type == T_VIEW;
}
static int p_cart(const ev *e)
{
    return e->type == T_CART;
}
static int p_page_a(const ev *e)
{
    return e->page == 'A';
}
static int p_page_b(const ev *e)
{
    return e->page == 'B';
}
static int p_page_bc(const ev *e)
{
    return e->page == 'B' || e->page == 'C';
}
static int p_purchase(const ev *e)
{
    return e->type == T_PURCHASE;
}
static int p_big_purchase(const ev *e)
{
    return e->type == T_PURCHASE && e->amount >= 50;
}
static int p_mid_purchase(const ev *e)
{
    return e->type == T_PURCHASE && e->amount > 20 && e->amount <= 80;
}

typedef int (*pred_fn)(const ev *e);

typedef struct mrule {
    const char *name;
    pred_fn pos[4];
    int n;
    int64_t within; /* 0 = none */
    pred_fn neg;    /* absence */
    int same_product;
} mrule;

static const mrule mrules[] = {
    {"twice", {p_visit_s1, p_visit_s1}, 2, 20 * MIN_MS, NULL, 0},
    {"view_no_cart", {p_view}, 1, 15 * MIN_MS, p_cart, 1},
    {"a_b_buy", {p_page_a, p_page_b, p_purchase}, 3, 30 * MIN_MS, NULL, 0},
    {"a_b_no_buy",
     {p_page_a, p_page_bc, p_page_bc},
     3,
     40 * MIN_MS,
     p_big_purchase,
     0},
    {"cart_big_buy", {p_cart, p_mid_purchase}, 2, 0, NULL, 0},
};

typedef struct strs {
    char **v;
    size_t n, cap;
} strs;

static void strs_add(strs *s, char *str)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
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
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *canon_match(int key, int64_t ts, const char *rule, int64_t first,
                         int64_t last, int events, int product)
{
    char *s = NULL;
    char extra[32] = "";
    if (product >= 0)
        snprintf(extra, sizeof extra, " product=%d", product);
    assert_true(asprintf(&s, "u%d|%lld|%s|%lld|%lld|%d%s", key, (long long)ts,
                         rule, (long long)first, (long long)last, events,
                         extra) > 0);
    return s;
}

/* The latest start of a subsequence matching r's positions that ends at
 * index j of v[] and uses only indices > lo; -1 when there is none. */
static long latest_start(const mrule *r, ev *const *v, long lo, long j)
{
    if (!r->pos[r->n - 1](v[j]))
        return -1;
    long at = j;
    for (int k = r->n - 2; k >= 0; k--) {
        long i = at - 1;
        while (i > lo && !r->pos[k](v[i]))
            i--;
        if (i <= lo)
            return -1;
        at = i;
    }
    return at;
}

typedef struct mpend {
    int64_t first, last, deadline;
    int product;
} mpend;

static int cmp_pend(const void *a, const void *b)
{
    const mpend *x = a, *y = b;
    return x->deadline < y->deadline ? -1 : x->deadline > y->deadline;
}

/* Fires (and removes) the candidates with deadline < t (or all). */
static void fire_before(const mrule *r, int key, mpend *p, size_t *n, int64_t t,
                        strs *out)
{
    qsort(p, *n, sizeof *p, cmp_pend);
    size_t keep = 0;
    for (size_t i = 0; i < *n; i++) {
        if (p[i].deadline < t)
            strs_add(out, canon_match(key, p[i].deadline, r->name, p[i].first,
                                      p[i].last, r->n,
                                      r->same_product ? p[i].product : -1));
        else
            p[keep++] = p[i];
    }
    *n = keep;
}

static void model_key(ev *const *v, long n, int key, strs *out)
{
    for (size_t ri = 0; ri < sizeof mrules / sizeof *mrules; ri++) {
        const mrule *r = &mrules[ri];
        long reset = -1;
        mpend pend[64];
        size_t np = 0;
        for (long j = 0; j < n; j++) {
            const ev *e = v[j];
            if (r->neg) {
                fire_before(r, key, pend, &np, e->ts, out);
                if (r->neg(e)) {
                    size_t keep = 0;
                    for (size_t i = 0; i < np; i++)
                        if (r->same_product && pend[i].product != e->product)
                            pend[keep++] = pend[i];
                    np = keep;
                }
            }
            long s = latest_start(r, v, reset, j);
            if (s < 0 || (r->within && e->ts - v[s]->ts > r->within))
                continue;
            reset = j;
            if (!r->neg) {
                strs_add(out, canon_match(key, e->ts, r->name, v[s]->ts, e->ts,
                                          r->n, -1));
                continue;
            }
            size_t keep = 0;
            for (size_t i = 0; i < np; i++)
                if (r->same_product && pend[i].product != e->product)
                    pend[keep++] = pend[i];
            np = keep;
            assert_true(np < 64);
            pend[np++] =
                (mpend){v[s]->ts, e->ts, v[s]->ts + r->within, e->product};
        }
        if (r->neg)
            fire_before(r, key, pend, &np, INT64_MAX, out);
    }
}

static int cmp_ev(const void *a, const void *b)
{
    const ev *x = *(ev *const *)a, *y = *(ev *const *)b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char *ev_json(const ev *e)
{
    json_t *j = json_pack("{s:s}", "type", type_names[e->type]);
    if (e->site)
        json_object_set_new(j, "site", json_string(e->site == 1 ? "s1" : "s2"));
    if (e->page) {
        char pg[2] = {(char)e->page, 0};
        json_object_set_new(j, "page", json_string(pg));
    }
    if (e->product) {
        char pr[4];
        snprintf(pr, sizeof pr, "p%d", e->product);
        json_object_set_new(j, "product", json_string(pr));
    }
    if (e->type == T_PURCHASE)
        json_object_set_new(j, "amount", json_integer(e->amount));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* The plugin's matches as canonical strings. */
static void got_matches(const weir_test *h, strs *out)
{
    for (size_t i = 0; i < hx_n(h); i++) {
        const weir_test_record *r = hx_rec(h, i);
        assert_int_equal(r->port, 0);
        json_t *v = tu_mp_to_json(r->value, r->value_len);
        assert_non_null(v);
        int key = atoi(r->key + 1);
        json_t *prod = json_object_get(v, "product");
        int product = -1;
        if (prod)
            product =
                json_is_null(prod) ? 0 : atoi(json_string_value(prod) + 1);
        assert_int_equal(json_object_size(v), 5 + (prod != NULL));
        assert_string_equal(json_string_value(json_object_get(v, "key")),
                            r->key);
        strs_add(out,
                 canon_match(
                     key, r->ts, json_string_value(json_object_get(v, "rule")),
                     json_integer_value(json_object_get(v, "first_ts")),
                     json_integer_value(json_object_get(v, "last_ts")),
                     (int)json_integer_value(json_object_get(v, "events")),
                     product));
        json_decref(v);
    }
}

static void run_random(uint64_t seed, int n, int keys)
{
    rng = seed;
    ev *evs = calloc((size_t)n, sizeof *evs);
    assert_non_null(evs);
    /* Event times on a minute grid (so that within bounds are hit), in
     * bursts; arrival = time + a delay of up to 4 minutes. */
    int64_t clock = 0;
    for (int i = 0; i < n; i++) {
        ev *e = &evs[i];
        clock += (rnd() % 8 == 0) ? (int64_t)(rnd() % 120) * MIN_MS
                                  : (int64_t)(rnd() % 3) * MIN_MS;
        e->ts = clock;
        e->key = (int)(rnd() % (uint64_t)keys);
        e->type = (int)(rnd() % T_N);
        if (e->type == T_VISIT) {
            e->site = (int)(rnd() % 3);
            e->page = "ABC"[rnd() % 3];
            if (rnd() % 4 == 0)
                e->page = 0;
        }
        if (e->type == T_VIEW || e->type == T_CART)
            e->product = (int)(rnd() % 4); /* 0 = missing */
        if (e->type == T_PURCHASE)
            e->amount = (int)(rnd() % 100);
    }
    /* Arrival order: sorted by time + delay. */
    ev **arr = malloc((size_t)n * sizeof *arr);
    int64_t *due = malloc((size_t)n * sizeof *due);
    assert_true(arr && due);
    for (int i = 0; i < n; i++) {
        arr[i] = &evs[i];
        due[i] = evs[i].ts + (int64_t)(rnd() % 5) * MIN_MS;
    }
    for (int i = 1; i < n; i++) { /* insertion sort by due, stable */
        ev *x = arr[i];
        int64_t d = due[x - evs];
        int j = i - 1;
        while (j >= 0 && due[arr[j] - evs] > d) {
            arr[j + 1] = arr[j];
            j--;
        }
        arr[j + 1] = x;
    }
    weir_test *h = open_pattern(random_rules, NULL);
    int64_t max_seen = INT64_MIN;
    for (int i = 0; i < n; i++) {
        ev *e = arr[i];
        e->arrival = (size_t)i;
        char key[16];
        snprintf(key, sizeof key, "u%d", e->key);
        char *js = ev_json(e);
        feed(h, key, e->ts, js);
        free(js);
        max_seen = e->ts > max_seen ? e->ts : max_seen;
        /* Watermark 5 minutes behind: no record is ever late. */
        if (rnd() % 5 == 0)
            assert_int_equal(weir_test_watermark(h, max_seen - 5 * MIN_MS), 0);
    }
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_clean(h);

    strs want = {0}, got = {0};
    for (int k = 0; k < keys; k++) {
        ev **v = malloc((size_t)n * sizeof *v);
        long m = 0;
        for (int i = 0; i < n; i++)
            if (evs[i].key == k)
                v[m++] = &evs[i];
        qsort(v, (size_t)m, sizeof *v, cmp_ev);
        model_key(v, m, k, &want);
        free(v);
    }
    got_matches(h, &got);
    assert_true(want.n > 0 && got.n > 0);
    qsort(want.v, want.n, sizeof *want.v, cmp_str);
    qsort(got.v, got.n, sizeof *got.v, cmp_str);
    for (size_t i = 0; i < want.n || i < got.n; i++) {
        const char *w = i < want.n ? want.v[i] : "(none)";
        const char *g = i < got.n ? got.v[i] : "(none)";
        if (strcmp(w, g))
            fail_msg("seed %llu: match %zu of %zu/%zu differs: want %s, got "
                     "%s",
                     (unsigned long long)seed, i, want.n, got.n, w, g);
    }
    /* The stream exercised every rule. */
    for (size_t r = 0; r < 5; r++) {
        int64_t c = hx_counter(h, "pattern_matches_total", mrules[r].name);
        if (getenv("EVH_VERBOSE"))
            fprintf(stderr, "seed %llu: %s: %lld matches\n",
                    (unsigned long long)seed, mrules[r].name, (long long)c);
        assert_true(c > 0);
    }
    assert_int_equal(hx_counter(h, "pattern_late_records_total", NULL), 0);
    strs_free(&want);
    strs_free(&got);
    weir_test_free(h);
    free(arr);
    free(due);
    free(evs);
}

static void test_random_streams(void **state)
{
    run_random(1, 3000, 4);
    run_random(2, 3000, 2);
    run_random(3, 3000, 5);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

static void expect_bad(const char *rules, const char *needle)
{
    const weir_test_param p[] = {{"rules", rules}, {NULL, NULL}};
    hx_spec s = {.so = PATTERN_SO, .op = "pattern", .params = p};
    weir_test *h = NULL;
    assert_true(hx_try(&s, &h) < 0);
    if (!strstr(weir_test_error(h), needle))
        fail_msg("rules %s: error '%s' does not contain '%s'", rules,
                 weir_test_error(h), needle);
    weir_test_free(h);
}

#define OK_STEP "{\"where\": {\"a\": 1}}"

static void test_bad_rules(void **state)
{
    expect_bad("{\"name\": \"x\"}", "rules: must be a non-empty list");
    expect_bad("[]", "rules: must be a non-empty list");
    expect_bad("[5]", "rules[0]: must be a mapping");
    expect_bad("[{\"steps\": [" OK_STEP "]}]", "rules[0].name: missing");
    expect_bad("[{\"name\": \"\", \"steps\": [" OK_STEP "]}]",
               "rules[0].name: must be a string");
    expect_bad("[{\"name\": \"a\\nb\", \"steps\": [" OK_STEP "]}]",
               "rules[0].name: must not contain control");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "]},"
               " {\"name\": \"x\", \"steps\": [" OK_STEP "]}]",
               "rules[1].name: 'x' is also the name of rules[0]");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"withn\": 1}]",
               "rules[0] ('x').withn: unknown key (expected name, steps");
    expect_bad("[{\"name\": \"x\"}]", "rules[0] ('x').steps: missing");
    expect_bad("[{\"name\": \"x\", \"steps\": []}]",
               "rules[0] ('x').steps: must be a non-empty list");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP ", 3]}]",
               "rules[0] ('x').steps[1]: must be a mapping");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"times\": 2}]}]",
               "rules[0] ('x').steps[0].where: missing");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {}}]}]",
               "steps[0].where: must be a non-empty mapping");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": 1}, "
               "\"times\": 0}]}]",
               "rules[0] ('x').steps[0].times: must be an integer >= 1");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": 1}, "
               "\"times\": \"two\"}]}]",
               "steps[0].times: must be an integer >= 1, got a string");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": 1}, "
               "\"times\": 65}]}]",
               "steps[0].times: the steps of a rule may match at most 64");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": 1}, "
               "\"ttimes\": 2}]}]",
               "steps[0].ttimes: unknown key (expected where, times)");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": [1, 2]}}]}]",
               "steps[0].where.a: must be a value or a mapping of operators, "
               "got a list (for one of several values use {in: [...]})");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": "
               "{\"between\": 1}}}]}]",
               "steps[0].where.a.between: unknown operator");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": {}}}]}]",
               "steps[0].where.a: no operator");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": "
               "{\"in\": []}}}]}]",
               "steps[0].where.a.in: must be a non-empty list");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": "
               "{\"in\": [1, [2]]}}}]}]",
               "steps[0].where.a.in[1]: must be a string, number");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": "
               "{\"gt\": true}}}]}]",
               "steps[0].where.a.gt: needs a number or a string");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"a\": "
               "{\"eq\": {\"b\": 1}}}}]}]",
               "steps[0].where.a.eq: must be a string, number");
    expect_bad("[{\"name\": \"x\", \"steps\": [{\"where\": {\"\": 1}}]}]",
               "steps[0].where: a field name is empty");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"5 min\"}]",
               "rules[0] ('x').within: must be a positive duration");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": 0}]",
               "rules[0] ('x').within: must be a positive duration");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], "
               "\"followed_by_not\": {\"where\": {\"b\": 1}}}]",
               "rules[0] ('x').within: required with followed_by_not");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": {\"same\": [\"p\"]}}]",
               "rules[0] ('x').followed_by_not.where: missing");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": {\"where\": {\"b\": 1}, "
               "\"same\": \"p\"}}]",
               "followed_by_not.same: must be a list");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": {\"where\": {\"b\": 1}, "
               "\"same\": [\"p\", \"p\"]}}]",
               "followed_by_not.same[1]: 'p' is listed twice");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": {\"where\": {\"b\": 1}, "
               "\"same\": [\"rule\"]}}]",
               "followed_by_not.same[0]: 'rule' is a field of the match");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": {\"where\": {\"b\": 1}, "
               "\"unless\": 1}}]",
               "followed_by_not.unless: unknown key (expected where, same)");
    expect_bad("[{\"name\": \"x\", \"steps\": [" OK_STEP "], \"within\": "
               "\"1h\", \"followed_by_not\": [1]}]",
               "rules[0] ('x').followed_by_not: must be a mapping");
    expect_bad("[{\"name\": \"ok\", \"steps\": [" OK_STEP "]}, "
               "{\"name\": \"y\", \"steps\": [" OK_STEP ", {\"where\": "
               "{\"t\": {\"lt\": null}}}]}]",
               "rules[1] ('y').steps[1].where.t.lt: needs a number");
}

static void test_durations(void **state)
{
    /* Units, integer ms, and every accepted spelling of within. */
    static const struct {
        const char *within;
        int64_t ms;
    } d[] = {{"\"250ms\"", 250},  {"\"10s\"", 10000},     {"\"5m\"", 300000},
             {"\"2h\"", 7200000}, {"\"7d\"", 7 * DAY_MS}, {"1500", 1500},
             {"\"42\"", 42}};
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        char rules[256];
        snprintf(rules, sizeof rules,
                 "[{\"name\": \"d\", \"within\": %s, \"steps\": [{\"where\": "
                 "{\"a\": 1}, \"times\": 2}]}]",
                 d[i].within);
        weir_test *h = open_pattern(rules, NULL);
        feed(h, "k", 0, "{\"a\": 1}");
        feed(h, "k", d[i].ms + 1, "{\"a\": 1}"); /* too late */
        feed(h, "k", 2 * d[i].ms + 1, "{\"a\": 1}");
        assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
        assert_int_equal(hx_n(h), 1);
        assert_int_equal(hx_rec(h, 0)->ts, 2 * d[i].ms + 1);
        weir_test_free(h);
    }
}

/* ------------------------------------------------------------------------ */
/* Faults and host services                                                  */
/* ------------------------------------------------------------------------ */

static void run_small(weir_test *h, int *rc)
{
    static const char *const evs[] = {
        "{\"type\": \"view\", \"product\": \"p1\"}",
        "{\"type\": \"visit\", \"site\": \"shop\"}",
        "{\"type\": \"visit\", \"site\": \"shop\"}",
        "{\"type\": \"view\", \"product\": \"p2\"}",
    };
    for (int i = 0; i < 4 && *rc == 0; i++)
        *rc = hx_process_json(h, "u", (i + 1) * MIN_MS, evs[i]);
    if (*rc == 0)
        *rc = weir_test_watermark(h, 2 * MIN_MS);
    if (*rc == 0)
        *rc = weir_test_watermark(h, WEIR_WATERMARK_MAX);
}

static void test_state_failures(void **state)
{
    char rules[1024];
    snprintf(rules, sizeof rules, "[%.*s, %.*s]", (int)strlen(twice_rule) - 2,
             twice_rule + 1, (int)strlen(cart_rule) - 2, cart_rule + 1);
    int failures = 0;
    for (long n = 0; n < 40; n++) {
        weir_test *h = open_pattern(rules, NULL);
        weir_test_fail_state(h, (uint64_t)n, WEIR_EIO);
        int rc = 0;
        run_small(h, &rc);
        if (rc < 0) {
            failures++;
            assert_non_null(strstr(weir_test_error(h), "pattern:"));
            assert_non_null(strstr(weir_test_error(h), "of state '"));
        }
        weir_test_free(h);
    }
    assert_true(failures > 10);
    /* Without faults the same run matches twice. */
    weir_test *h = open_pattern(rules, NULL);
    int rc = 0;
    run_small(h, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(hx_n(h), 3); /* visited twice; 2 views */
    weir_test_free(h);
}

static void test_emit_and_timer_failures(void **state)
{
    weir_test *h = open_pattern(twice_rule, NULL);
    weir_test_fail_timers(h, WEIR_ENOTSUP);
    assert_int_equal(hx_process_json(h, "u", 5, "{}"), WEIR_ENOTSUP);
    assert_non_null(strstr(weir_test_error(h), "timer"));
    weir_test_free(h);

    h = open_pattern(twice_rule, NULL);
    feed(h, "u", 5, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 6, "{\"type\": \"visit\", \"site\": \"shop\"}");
    weir_test_fail_emits(h, WEIR_EIO);
    assert_int_equal(weir_test_watermark(h, 10), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(h), "emit failed"));
    weir_test_free(h);

    h = open_pattern(twice_rule, NULL);
    assert_int_equal(weir_test_watermark(h, 10), 0);
    weir_test_fail_emits(h, WEIR_EIO);
    assert_int_equal(hx_process_json(h, "u", 5, "{}"), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(h), "port late"));
    weir_test_free(h);

    /* The wake-up timer of an absence fails to register. */
    h = open_pattern(cart_rule, NULL);
    feed(h, "u", 5, "{\"type\": \"view\"}");
    weir_test_fail_timers(h, WEIR_EIO);
    assert_int_equal(weir_test_watermark(h, 10), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(h), "timer"));
    weir_test_free(h);
}

static void test_host_services(void **state)
{
    const weir_test_param p[] = {{"rules", twice_rule}, {NULL, NULL}};
    hx_spec s = {.so = PATTERN_SO,
                 .op = "pattern",
                 .params = p,
                 .without = WEIR_TEST_WITHOUT_METRICS};
    weir_test *h = hx_open(&s);
    assert_int_equal(weir_test_state_count(h), 2);
    for (size_t i = 0; i < 2; i++) {
        int64_t ttl = 0;
        assert_int_equal(weir_test_state_info(h, i, NULL, NULL, &ttl), 0);
        assert_true(ttl == WEIR_TTL_NONE);
    }
    feed(h, "u", 1, "{\"type\": \"visit\", \"site\": \"shop\"}");
    feed(h, "u", 2, "{\"type\": \"visit\", \"site\": \"shop\"}");
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 1);
    weir_test_free(h);

    /* Without the rules parameter open() fails before anything else. */
    s.params = NULL;
    s.without = 0;
    assert_true(hx_try(&s, &h) < 0);
    assert_non_null(strstr(weir_test_error(h), "rules"));
    weir_test_free(h);
}

static void test_restart_with_edited_rules(void **state)
{
    const char *v1 =
        "[{\"name\": \"twice\", \"within\": \"7d\", \"steps\": [{\"where\": "
        "{\"type\": \"visit\"}, \"times\": 2}]},"
        " {\"name\": \"no_cart\", \"within\": \"30m\", \"steps\": "
        "[{\"where\": {\"type\": \"view\"}}], \"followed_by_not\": "
        "{\"where\": {\"type\": \"add_to_cart\"}}},"
        " {\"name\": \"a_b\", \"within\": \"1h\", \"steps\": [{\"where\": "
        "{\"page\": \"A\"}}, {\"where\": {\"page\": \"B\"}}]}]";
    /* twice unchanged, no_cart gone, a_b with three steps now, one new. */
    const char *v2 =
        "[{\"name\": \"new\", \"steps\": [{\"where\": {\"page\": \"B\"}}]},"
        " {\"name\": \"a_b\", \"within\": \"1h\", \"steps\": [{\"where\": "
        "{\"page\": \"A\"}}, {\"where\": {\"page\": \"B\"}}, {\"where\": "
        "{\"page\": \"C\"}}]},"
        " {\"name\": \"twice\", \"within\": \"7d\", \"steps\": [{\"where\": "
        "{\"type\": \"visit\"}, \"times\": 2}]}]";
    weir_test *h = open_pattern(v1, NULL);
    feed(h, "u", DAY_MS, "{\"type\": \"visit\"}");
    feed(h, "u", DAY_MS + MIN_MS, "{\"type\": \"view\"}");
    feed(h, "u", DAY_MS + 2 * MIN_MS, "{\"page\": \"A\"}");
    assert_int_equal(weir_test_watermark(h, DAY_MS + 10 * MIN_MS), 0);
    assert_int_equal(hx_n(h), 0);
    /* A restart from a checkpoint with the edited job: the new instance
     * has the old one's keyed state and timers, and the watermark starts
     * over as after any restart. */
    const weir_test_param p2[] = {{"rules", v2}, {NULL, NULL}};
    hx_spec s2 = {.so = PATTERN_SO, .op = "pattern", .params = p2};
    h = hx_restart(h, &s2);
    /* twice keeps its partial match across the restart; a_b starts over
     * (its steps changed), so B does not complete it; the waiting no_cart
     * candidate is gone with its rule. */
    feed(h, "u", 2 * DAY_MS, "{\"type\": \"visit\", \"page\": \"B\"}");
    feed(h, "u", 2 * DAY_MS + 1, "{\"page\": \"C\"}");
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_n(h), 2);
    assert_match(h, 0, "u", 2 * DAY_MS, "new", 2 * DAY_MS, 2 * DAY_MS, 1, NULL);
    assert_match(h, 1, "u", 2 * DAY_MS, "twice", DAY_MS, 2 * DAY_MS, 2, NULL);
    assert_clean(h);
    weir_test_free(h);
}

static void test_corrupt_state(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\xc1", 1},                 /* not msgpack */
        {"\x93\x02\xc0\x90", 4},     /* [2, nil, []]: unknown format */
        {"\x93\x01\xc0\x91\x01", 5}, /* an entry that is not a list */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        weir_test *h = open_pattern(twice_rule, NULL);
        weir_test_value_put(h, "runs", "u", 1, bad[i].bytes, bad[i].len);
        feed(h, "u", 5, "{\"type\": \"visit\", \"site\": \"shop\"}");
        assert_int_equal(weir_test_watermark(h, 10), WEIR_EINVAL);
        assert_non_null(strstr(weir_test_error(h), "unknown format"));
        weir_test_free(h);
    }
    /* A truncated buffer entry. */
    weir_test *h = open_pattern(twice_rule, NULL);
    feed(h, "u", 5, "{}");
    unsigned char tk[8] = {0x80, 0, 0, 0, 0, 0, 0, 5};
    weir_test_map_put(h, "buf", "u", strlen("u"), tk, sizeof tk, "\0\0\0\x09{}",
                      6);
    assert_true(weir_test_watermark(h, 10) < 0);
    assert_non_null(strstr(weir_test_error(h), "truncated"));
    weir_test_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_times_within),
        cmocka_unit_test(test_absence_fires_and_cancels),
        cmocka_unit_test(test_absence_restarts),
        cmocka_unit_test(test_sequence_out_of_order),
        cmocka_unit_test(test_late_records),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_random_streams),
        cmocka_unit_test(test_bad_rules),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_state_failures),
        cmocka_unit_test(test_emit_and_timer_failures),
        cmocka_unit_test(test_host_services),
        cmocka_unit_test(test_restart_with_edited_rules),
        cmocka_unit_test(test_corrupt_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
