/*
 * TTL semantics over every combination of update type x visibility x time
 * domain, each with the cache off and on, each with and without an expiry
 * hook: value, map and list state. Plus event-time specifics.
 *
 * Time: a scenario runs at "times" T. In the processing-time domain the fake
 * clock is T and no watermark exists; in the event-time domain the record
 * time and the watermark are T while the processing clock stays far in the
 * future (so a state that read the wrong clock would expire at once, and one
 * that ignored the watermark would never expire). Expected results are
 * derived by hand from the TTL rules in state.h (ttl = 100).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th_state.h"

#define TTL       100
#define FAR_CLOCK 100000000 /* processing clock in event-time runs */

typedef struct combo {
    weir_ttl_update upd;
    weir_ttl_visibility vis;
    weir_time_domain dom;
    size_t cache;
    int hook;
} combo;

#define RW(c)  ((c)->upd == WEIR_TTL_ON_READ_AND_WRITE)
#define REI(c) ((c)->vis == WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED)

static th_fx *setup_fx(const combo *c)
{
    th_fx *fx = th_fx_new(c->cache, c->hook);
    if (c->dom == WEIR_TIME_EVENT)
        fx->now = FAR_CLOCK;
    return fx;
}

/* Moves time to T and makes `key` current. */
static void at(th_fx *fx, const combo *c, int64_t t, const char *key)
{
    if (c->dom == WEIR_TIME_EVENT) {
        state_set_watermark(fx->s, t);
        th_key(fx, key, t);
    } else {
        fx->now = t;
        th_key(fx, key, WEIR_TS_NONE);
    }
}

static void sweep_at(th_fx *fx, const combo *c, int64_t t)
{
    if (c->dom == WEIR_TIME_EVENT)
        state_set_watermark(fx->s, t);
    else
        fx->now = t;
    th_sweep_all(fx, 3);
}

static uint64_t count(th_fx *fx, weir_state *st)
{
    uint64_t n = 0;
    assert_int_equal(state_scan_count(fx->s, st, &n, NULL), 0);
    return n;
}

static void check_hooked_once(th_fx *fx, const combo *c, const char *key,
                              const char *ukey, const char *value)
{
    if (!c->hook) {
        assert_int_equal(fx->n_calls, 0);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < fx->n_calls; i++) {
        th_hook_call *h = &fx->calls[i];
        if (strcmp(h->key, key) != 0 || strcmp(h->value, value) != 0)
            continue;
        if (ukey && (!h->has_ukey || strcmp(h->ukey, ukey) != 0))
            continue;
        if (!ukey)
            assert_false(h->has_ukey);
        n++;
    }
    if (n != 1)
        fail_msg("hook for %s/%s=%s called %zu times", key, ukey ? ukey : "-",
                 value, n);
}

static void test_value_ttl(void **state)
{
    const combo *c = *state;
    th_fx *fx = setup_fx(c);
    weir_state *v =
        th_declare(fx, "v", WEIR_STATE_VALUE, TTL, c->upd, c->vis, c->dom);
    state_stats ss;

    at(fx, c, 5000, "k");
    th_value_put(v, "v1"); /* stamp 5100 */
    at(fx, c, 5050, "k");
    assert_int_equal(th_value_is(v, "v1"), 1); /* RW: -> 5150 */

    at(fx, c, 5120, "k");
    if (RW(c) || REI(c))
        assert_int_equal(th_value_is(v, "v1"), 1); /* RW: -> 5220 */
    else
        assert_int_equal(th_value_is(v, NULL), 0); /* removed on read */
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_read, !RW(c) && !REI(c));

    at(fx, c, 5300, "k");
    if (REI(c))
        assert_int_equal(th_value_is(v, "v1"), 1); /* RW: revived, 5400 */
    else
        assert_int_equal(th_value_is(v, NULL), 0);
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_read, !REI(c));

    sweep_at(fx, c, 5300);
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_sweep, REI(c) && !RW(c));
    at(fx, c, 5300, "k");
    assert_int_equal(th_value_is(v, REI(c) && RW(c) ? "v1" : NULL),
                     REI(c) && RW(c));

    sweep_at(fx, c, 5500);
    at(fx, c, 5500, "k");
    assert_int_equal(th_value_is(v, NULL), 0);
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_read + ss.expired_sweep, 1);
    assert_int_equal(ss.hook_calls, c->hook ? 1 : 0);
    check_hooked_once(fx, c, "k", NULL, "v1");
    assert_int_equal(count(fx, v), 0);
    assert_int_equal(count(fx, NULL), 0); /* no index entry left */
    th_fx_free(fx);
}

static void test_map_ttl(void **state)
{
    const combo *c = *state;
    th_fx *fx = setup_fx(c);
    weir_state *m =
        th_declare(fx, "m", WEIR_STATE_MAP, TTL, c->upd, c->vis, c->dom);
    char buf[256];

    at(fx, c, 5000, "k");
    th_map_put(m, "a", "1"); /* 5100 */
    th_map_put(m, "b", "2");
    at(fx, c, 5060, "k");
    th_map_put(m, "b", "3"); /* 5160 */

    at(fx, c, 5120, "k");
    th_map_join(m, buf, sizeof buf); /* RW: visible ones -> 5220 */
    assert_string_equal(buf, REI(c) ? "a=1,b=3" : "b=3");
    if (REI(c))
        assert_int_equal(th_map_is(m, "a", "1"), 1);
    else
        assert_int_equal(th_map_is(m, "a", NULL), 0);
    assert_int_equal(th_map_is(m, "b", "3"), 1);

    sweep_at(fx, c, 5120);
    at(fx, c, 5120, "k");
    int a_left = REI(c) && RW(c);
    assert_int_equal(th_map_is(m, "a", a_left ? "1" : NULL), a_left);

    sweep_at(fx, c, 5400);
    at(fx, c, 5400, "k");
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "");
    check_hooked_once(fx, c, "k", "a", "1");
    check_hooked_once(fx, c, "k", "b", "3");
    if (c->hook)
        assert_int_equal(fx->n_calls, 2);
    assert_int_equal(count(fx, m), 0);
    assert_int_equal(count(fx, NULL), 0);
    th_fx_free(fx);
}

static void test_list_ttl(void **state)
{
    const combo *c = *state;
    th_fx *fx = setup_fx(c);
    weir_state *l =
        th_declare(fx, "l", WEIR_STATE_LIST, TTL, c->upd, c->vis, c->dom);
    char buf[256];

    at(fx, c, 5000, "k");
    assert_int_equal(state_list_add(l, "x", 1, NULL), 0);
    at(fx, c, 5050, "k");
    assert_int_equal(state_list_add(l, "y", 1, NULL), 0); /* 5150 */
    at(fx, c, 5100, "k");
    th_list_join(l, buf, sizeof buf); /* RW: 5200 */
    assert_string_equal(buf, "x,y");

    at(fx, c, 5160, "k");
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, RW(c) || REI(c) ? "x,y" : "");
    assert_int_equal(state_list_add(l, "z", 1, NULL), 0); /* 5260 */
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, RW(c) || REI(c) ? "x,y,z" : "z");

    sweep_at(fx, c, 5300);
    at(fx, c, 5300, "k");
    th_list_join(l, buf, sizeof buf);
    assert_string_equal(buf, "");
    check_hooked_once(fx, c, "k", NULL, "x");
    check_hooked_once(fx, c, "k", NULL, "y");
    check_hooked_once(fx, c, "k", NULL, "z");
    assert_int_equal(count(fx, l), 0);
    assert_int_equal(count(fx, NULL), 0);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Event time specifics                                                      */
/* ------------------------------------------------------------------------ */

static weir_state *event_value(th_fx *fx, weir_ttl_visibility vis)
{
    return th_declare(fx, "v", WEIR_STATE_VALUE, TTL,
                      WEIR_TTL_ON_CREATE_AND_WRITE, vis, WEIR_TIME_EVENT);
}

/* A late record (t + ttl <= watermark) writes an entry that is already
 * expired. */
static void test_event_late_record(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = event_value(fx, WEIR_TTL_NEVER_RETURN_EXPIRED);
    state_set_watermark(fx->s, 5000);
    th_key(fx, "late", 4900); /* stamp 5000 <= watermark */
    th_value_put(v, "x");
    assert_int_equal(th_value_is(v, NULL), 0);
    th_key(fx, "ontime", 4901); /* stamp 5001 */
    th_value_put(v, "y");
    assert_int_equal(th_value_is(v, "y"), 1);
    state_set_watermark(fx->s, 5001);
    th_key(fx, "ontime", 5001);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_fx_free(fx);
}

/* A record without event time uses the watermark; before the first
 * watermark nothing expires; a lower watermark is ignored. */
static void test_event_no_ts(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = event_value(fx, WEIR_TTL_NEVER_RETURN_EXPIRED);
    th_key(fx, "early", 10); /* stamp 110, no watermark yet */
    th_value_put(v, "e");
    fx->now += 1000000000; /* processing time is irrelevant */
    th_key(fx, "early", 10);
    assert_int_equal(th_value_is(v, "e"), 1);
    assert_int_equal(th_sweep_all(fx, 10), 0);

    state_set_watermark(fx->s, 5000);
    th_key(fx, "nots", WEIR_TS_NONE); /* stamp 5100 */
    th_value_put(v, "n");
    state_set_watermark(fx->s, 4000); /* ignored */
    state_set_watermark(fx->s, 5099);
    th_key(fx, "nots", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "n"), 1);
    th_key(fx, "early", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    state_set_watermark(fx->s, 5100);
    th_key(fx, "nots", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_fx_free(fx);
}

/* The final watermark expires every event-time entry; the sweep hands each
 * to the hook, also when the hook writes it again. */
static int rewrite(th_fx *fx, weir_state *st, const void *key, size_t key_len,
                   const void *ukey, size_t ukey_len, const void *value,
                   size_t value_len)
{
    return state_value_put(st, "again", 5, NULL);
}

static void test_event_end_of_input(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = event_value(fx, WEIR_TTL_NEVER_RETURN_EXPIRED);
    char k[16];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        th_key(fx, k, 1000 + i);
        th_value_put(v, k);
    }
    assert_int_equal(th_sweep_all(fx, 7), 0);
    fx->action = rewrite;
    state_set_watermark(fx->s, WEIR_WATERMARK_MAX);
    assert_int_equal(th_sweep_all(fx, 7), 50);
    assert_int_equal(fx->n_calls, 50);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "k%d", i);
        assert_int_equal(th_hook_count(fx, k), 1);
        assert_string_equal(fx->calls[i].value, fx->calls[i].key);
    }
    uint64_t n = 1;
    assert_int_equal(state_scan_count(fx->s, v, &n, NULL), 0);
    assert_int_equal(n, 0);
    th_fx_free(fx);
}

#define N_COMBOS 32

int main(void)
{
    static combo combos[N_COMBOS];
    static char names[3 * N_COMBOS][96];
    struct CMUnitTest tests[3 * N_COMBOS + 6];
    size_t n = 0, nc = 0;
    void (*fns[3])(void **) = {test_value_ttl, test_map_ttl, test_list_ttl};
    const char *fn_names[3] = {"value", "map", "list"};
    for (int f = 0; f < 3; f++) {
        nc = 0;
        for (int upd = 0; upd < 2; upd++)
            for (int vis = 0; vis < 2; vis++)
                for (int dom = 0; dom < 2; dom++)
                    for (int cache = 0; cache < 2; cache++)
                        for (int hook = 0; hook < 2; hook++) {
                            combo *c = &combos[nc++];
                            c->upd = (weir_ttl_update)upd;
                            c->vis = (weir_ttl_visibility)vis;
                            c->dom = (weir_time_domain)dom;
                            c->cache = cache ? 16 : 0;
                            c->hook = hook;
                            snprintf(names[n], sizeof names[n],
                                     "%s ttl: %s, %s, %s time, cache %s, "
                                     "hook %s",
                                     fn_names[f],
                                     upd ? "read+write" : "create+write",
                                     vis ? "return-expired" : "never-expired",
                                     dom ? "event" : "processing",
                                     cache ? "on" : "off", hook ? "on" : "off");
                            tests[n] = (struct CMUnitTest){names[n], fns[f],
                                                           NULL, NULL, c};
                            n++;
                        }
    }
    const struct CMUnitTest more[] = {
        TH_BOTH(test_event_late_record),
        TH_BOTH(test_event_no_ts),
        TH_BOTH(test_event_end_of_input),
    };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        tests[n++] = more[i];
    return _cmocka_run_group_tests("state_ttl", tests, n, NULL, NULL);
}
