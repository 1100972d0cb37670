/*
 * Live state administration (state/state_admin.h): TTL overrides of
 * existing entries (states declared without TTL or with a longer one, in
 * the cache and in RocksDB, in one call or in bounded batches, across a
 * reopen and a checkpoint), a change of time domain, and purges by prefix,
 * of everything and by age, with counts worked out by hand. Every test runs
 * with the cache off and with a small cache (64 entries), so that entries
 * live in both places.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/state_admin.h"
#include "th_state.h"

#define NOTTL                                                                  \
    WEIR_TTL_NONE, WEIR_TTL_ON_CREATE_AND_WRITE,                               \
        WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING
#define PTTL(ms)                                                               \
    (ms), WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,         \
        WEIR_TIME_PROCESSING
#define ETTL(ms)                                                               \
    (ms), WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,         \
        WEIR_TIME_EVENT

static void put_keys(th_fx *fx, weir_state *st, const char *fmt, int from,
                     int to, int64_t ts)
{
    char k[32];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof k, fmt, i);
        th_key(fx, k, ts);
        th_value_put(st, "v");
    }
    state_clear_key(fx->s);
}

/* How many of keys fmt % [from, to) are visible. */
static int visible(th_fx *fx, weir_state *st, const char *fmt, int from, int to)
{
    char k[32];
    int n = 0;
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof k, fmt, i);
        th_key(fx, k, WEIR_TS_NONE);
        n += th_value_is(st, "v");
    }
    state_clear_key(fx->s);
    return n;
}

static uint64_t records(th_fx *fx, weir_state *st)
{
    uint64_t n = 0;
    assert_int_equal(state_scan_count(fx->s, st, &n, NULL), 0);
    return n;
}

static void set_ttl(weir_state *st, int64_t ttl, weir_time_domain d,
                    int64_t budget_ns, state_admin_result *res)
{
    char *err = NULL;
    int rc = state_admin_set_ttl(st, ttl, d, budget_ns, res, &err);
    if (rc)
        fail_msg("state_admin_set_ttl: %d %s", rc, err);
}

static uint64_t purge(weir_state *st, state_purge_mode m, const char *prefix,
                      int64_t older)
{
    state_admin_result res;
    char *err = NULL;
    int rc = state_admin_purge(st, m, prefix, prefix ? strlen(prefix) : 0,
                               older, &res, &err);
    if (rc)
        fail_msg("state_admin_purge: %d %s", rc, err);
    return res.purged;
}

/* A state declared without TTL gets one: its 200 entries (most of them
 * evicted from a 64-entry cache) expire at the override time + ttl, through
 * the sweep and the hook; the hook did not run before. */
static void test_ttl_on_state_without_ttl(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    fx->now = 1000;
    put_keys(fx, c, "k%d", 0, 200, WEIR_TS_NONE);
    state_stats st;
    state_stats_get(c, &st);
    assert_int_equal(st.has_ttl, 0);
    fx->now = 2000;
    state_admin_result res;
    set_ttl(c, 100, WEIR_TIME_PROCESSING, 0, &res);
    assert_int_equal(res.rewritten, 200);
    assert_int_equal(res.pending, 0);
    state_stats_get(c, &st);
    assert_int_equal(st.has_ttl, 1);
    assert_int_equal(st.ttl_ms, 100);
    fx->now = 2099;
    assert_int_equal(th_sweep_all(fx, 7), 0);
    assert_int_equal(visible(fx, c, "k%d", 0, 200), 200);
    assert_int_equal(fx->n_calls, 0);
    fx->now = 2100;
    assert_int_equal(th_sweep_all(fx, 7), 200);
    assert_int_equal(fx->n_calls, 200);
    assert_int_equal(th_hook_count(fx, "k17"), 1);
    assert_int_equal(visible(fx, c, "k%d", 0, 200), 0);
    assert_int_equal(records(fx, c), 0);
    /* New writes follow the override. */
    put_keys(fx, c, "n%d", 0, 3, WEIR_TS_NONE);
    fx->now = 2200;
    assert_int_equal(th_sweep_all(fx, 7), 3);
    th_fx_free(fx);
}

/* A shorter TTL caps later stamps and keeps earlier ones. */
static void test_ttl_shorter_caps_stamps(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, PTTL(1000));
    fx->now = 0;
    put_keys(fx, c, "a%d", 0, 100, WEIR_TS_NONE); /* stamps 1000 */
    fx->now = 900;
    put_keys(fx, c, "b%d", 0, 100, WEIR_TS_NONE); /* stamps 1900 */
    fx->now = 950;
    state_admin_result res;
    set_ttl(c, 100, WEIR_TIME_PROCESSING, 0, &res); /* cap 1050 */
    assert_int_equal(res.rewritten, 100);           /* the b keys */
    fx->now = 999;
    assert_int_equal(th_sweep_all(fx, 10), 0);
    fx->now = 1000;
    assert_int_equal(th_sweep_all(fx, 10), 100);
    assert_int_equal(visible(fx, c, "b%d", 0, 100), 100);
    fx->now = 1050;
    assert_int_equal(th_sweep_all(fx, 10), 100);
    assert_int_equal(visible(fx, c, "b%d", 0, 100), 0);
    th_fx_free(fx);
}

/* A budget of 1 ns rewrites one batch at the call and the rest with
 * state_admin_step(); a write made in between keeps its own stamp; a
 * reopen in the middle resumes from the stored progress, with the
 * override in force over the plugin's declaration. */
static void test_ttl_in_batches_and_resume(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    int n = 3 * STATE_ADMIN_BATCH + 10;
    fx->now = 1000;
    put_keys(fx, c, "k%05d", 0, n, WEIR_TS_NONE);
    state_admin_result res;
    set_ttl(c, 100, WEIR_TIME_PROCESSING, 1, &res);
    assert_int_equal(res.pending, 1);
    assert_true(res.scanned == STATE_ADMIN_BATCH);
    state_admin_info info;
    state_admin_info_get(c, &info);
    assert_int_equal(info.rewrite_pending, 1);
    assert_int_equal(info.override, 1);
    assert_int_equal(info.declared_ttl_ms, WEIR_TTL_NONE);
    fx->now = 1050;
    th_key(fx, "k00000", WEIR_TS_NONE); /* rewritten at 1100 already */
    th_value_put(c, "v");               /* now 1150 */
    th_key(fx, "k09999", WEIR_TS_NONE); /* not rewritten yet */
    th_value_put(c, "v");               /* 1150, and stays so */
    state_clear_key(fx->s);
    char *err = NULL;
    fx->now = 1060; /* the rest: cap 1160 */
    assert_int_equal(state_admin_step(fx->s, STATE_ADMIN_BATCH, &err),
                     STATE_ADMIN_BATCH);
    th_fx_close_store(fx);

    th_fx_open_store(fx);
    c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL); /* as the plugin does */
    state_stats st;
    state_stats_get(c, &st);
    assert_int_equal(st.has_ttl, 1);
    assert_int_equal(st.ttl_ms, 100);
    state_admin_info_get(c, &info);
    assert_int_equal(info.rewrite_pending, 1);
    int steps = 0, got;
    while ((got = state_admin_step(fx->s, STATE_ADMIN_BATCH, &err)) > 0)
        steps++;
    assert_int_equal(got, 0);
    assert_int_equal(steps, 2); /* the third batch, then the last 10 */
    state_admin_info_get(c, &info);
    assert_int_equal(info.rewrite_pending, 0);
    fx->now = 1099;
    assert_int_equal(th_sweep_all(fx, 1000), 0);
    /* What the call rewrote (the first batch, and the cached entries,
     * which are not in RocksDB yet) expires at 1100, minus k00000. */
    size_t first = (size_t)res.rewritten - 1;
    assert_true(first >= STATE_ADMIN_BATCH - 1);
    fx->now = 1100;
    assert_int_equal(th_sweep_all(fx, 1000), first);
    fx->now = 1150; /* k00000 and k09999 */
    assert_int_equal(th_sweep_all(fx, 1000), 2);
    fx->now = 1160;
    assert_int_equal(th_sweep_all(fx, 1000), (size_t)n - first - 2);
    assert_int_equal(records(fx, c), 0);
    th_fx_free(fx);
}

/* The override is part of a checkpoint (cache delta included): the store
 * opened from it applies it over the declared WEIR_TTL_NONE, and entries
 * written after the checkpoint (new keys) get stamps. */
static void test_ttl_in_checkpoint(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    fx->now = 1000;
    put_keys(fx, c, "k%d", 0, 100, WEIR_TS_NONE);
    state_admin_result res;
    set_ttl(c, 500, WEIR_TIME_PROCESSING, 0, &res);
    char cp[400], delta[420], *err = NULL;
    snprintf(cp, sizeof cp, "%s/cp", fx->dir);
    snprintf(delta, sizeof delta, "%s/cp.delta", fx->dir);
    int wrote = 0;
    assert_int_equal(state_checkpoint_delta(fx->s, cp, delta, &wrote, &err), 0);
    th_fx_close_store(fx);
    snprintf(fx->path, sizeof fx->path, "%s", cp);
    fx->restore_delta = wrote ? delta : NULL;
    th_fx_open_store(fx);
    fx->restore_delta = NULL;
    c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    state_stats st;
    state_stats_get(c, &st);
    assert_int_equal(st.has_ttl, 1);
    assert_int_equal(st.ttl_ms, 500);
    fx->now = 1200;
    put_keys(fx, c, "n%d", 0, 10, WEIR_TS_NONE); /* stamps 1700 */
    fx->now = 1499;
    assert_int_equal(th_sweep_all(fx, 10), 0);
    fx->now = 1500;
    assert_int_equal(th_sweep_all(fx, 10), 100);
    fx->now = 1700;
    assert_int_equal(th_sweep_all(fx, 10), 10);
    th_fx_free(fx);
}

/* From event time to processing time: every stamp is replaced, in one
 * call whatever the budget; an event-time override runs in one call too. */
static void test_ttl_domains(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *e = th_declare(fx, "e", WEIR_STATE_VALUE, ETTL(100));
    weir_state *p = th_declare(fx, "p", WEIR_STATE_VALUE, NOTTL);
    fx->now = 5000;
    state_set_watermark(fx->s, 10);
    put_keys(fx, e, "k%05d", 0, STATE_ADMIN_BATCH + 5, 20); /* stamps 120 */
    put_keys(fx, p, "k%d", 0, 50, WEIR_TS_NONE);
    state_admin_result res;
    set_ttl(e, 100, WEIR_TIME_PROCESSING, 1, &res); /* all: 5100 */
    assert_int_equal(res.pending, 0);
    assert_int_equal(res.rewritten, STATE_ADMIN_BATCH + 5);
    set_ttl(p, 30, WEIR_TIME_EVENT, 1, &res); /* watermark 10: 40 */
    assert_int_equal(res.pending, 0);
    assert_int_equal(res.rewritten, 50);
    state_set_watermark(fx->s, 200); /* the old stamps of e were 120 */
    assert_int_equal(th_sweep_all(fx, 1000), 50);
    assert_int_equal(visible(fx, e, "k%05d", 0, STATE_ADMIN_BATCH + 5),
                     STATE_ADMIN_BATCH + 5);
    assert_int_equal(visible(fx, p, "k%d", 0, 50), 0);
    fx->now = 5100;
    assert_int_equal(th_sweep_all(fx, 1000), STATE_ADMIN_BATCH + 5);
    th_fx_free(fx);
}

/* Purges: by prefix (a1, a10..a19: 11 of the a keys), everything, by age
 * (derived from the stamp); no hook call; an age on a state without TTL is
 * refused; a map counts its entries. */
static void test_purge(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *c = th_declare(fx, "c", WEIR_STATE_VALUE, NOTTL);
    weir_state *t = th_declare(fx, "t", WEIR_STATE_VALUE, PTTL(1000));
    weir_state *m = th_declare(fx, "m", WEIR_STATE_MAP, NOTTL);
    put_keys(fx, c, "a%d", 0, 50, WEIR_TS_NONE);
    put_keys(fx, c, "b%d", 0, 50, WEIR_TS_NONE);
    assert_int_equal(purge(c, STATE_PURGE_PREFIX, "a1", 0), 11);
    assert_int_equal(visible(fx, c, "a1%d", 0, 10), 0);
    assert_int_equal(visible(fx, c, "a%d", 0, 50), 39);
    assert_int_equal(records(fx, c), 89);
    assert_int_equal(purge(c, STATE_PURGE_PREFIX, "a1", 0), 0);
    assert_int_equal(purge(c, STATE_PURGE_ALL, NULL, 0), 89);
    /* The statistics see it (range deletions would not count). */
    state_stats ss;
    assert_int_equal(state_stats_sample(fx->s, NULL), 0);
    state_stats_get(c, &ss);
    assert_int_equal(ss.est_keys, 0);
    assert_int_equal(records(fx, c), 0);
    assert_int_equal(visible(fx, c, "b%d", 0, 50), 0);
    put_keys(fx, c, "b%d", 0, 5, WEIR_TS_NONE); /* usable afterwards */
    assert_int_equal(visible(fx, c, "b%d", 0, 50), 5);

    fx->now = 0;
    put_keys(fx, t, "old%d", 0, 10, WEIR_TS_NONE); /* written at 0 */
    fx->now = 500;
    put_keys(fx, t, "new%d", 0, 10, WEIR_TS_NONE); /* written at 500 */
    fx->now = 800;
    assert_int_equal(purge(t, STATE_PURGE_OLDER, NULL, 500), 10);
    assert_int_equal(visible(fx, t, "old%d", 0, 10), 0);
    assert_int_equal(visible(fx, t, "new%d", 0, 10), 10);
    state_admin_result res;
    char *err = NULL;
    assert_int_equal(
        state_admin_purge(c, STATE_PURGE_OLDER, NULL, 0, 10, &res, &err),
        WEIR_EINVAL);
    assert_non_null(strstr(err, "has no TTL"));
    free(err);

    th_key(fx, "a1", WEIR_TS_NONE);
    th_map_put(m, "x", "1");
    th_map_put(m, "y", "2");
    th_key(fx, "b1", WEIR_TS_NONE);
    th_map_put(m, "x", "3");
    state_clear_key(fx->s);
    assert_int_equal(purge(m, STATE_PURGE_PREFIX, "a", 0), 2);
    th_key(fx, "b1", WEIR_TS_NONE);
    assert_int_equal(th_map_is(m, "x", "3"), 1);
    state_clear_key(fx->s);
    /* Expired entries purged are counted, and no hook ran. */
    fx->now = 5000;
    assert_int_equal(purge(t, STATE_PURGE_ALL, NULL, 0), 10);
    assert_int_equal(fx->n_calls, 0);
    th_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TH_BOTH(test_ttl_on_state_without_ttl),
        TH_BOTH(test_ttl_shorter_caps_stamps),
        TH_BOTH(test_ttl_in_batches_and_resume),
        TH_BOTH(test_ttl_in_checkpoint),
        TH_BOTH(test_ttl_domains),
        TH_BOTH(test_purge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
