/*
 * Cleaning up expired state: the expiry index and its sweep (budget, stale
 * entries, the hook and what it may do, errors, reopen, restore), the
 * compaction filter, and the leak detector with a large key stream. Every
 * test runs with the cache off and on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "th_state.h"

#define TTL 100

static weir_state *ttl_value(th_fx *fx, const char *name)
{
    return th_declare(fx, name, WEIR_STATE_VALUE, TTL,
                      WEIR_TTL_ON_CREATE_AND_WRITE,
                      WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING);
}

static uint64_t count(th_fx *fx, weir_state *st)
{
    uint64_t n = 0;
    char *err = NULL;
    if (state_scan_count(fx->s, st, &n, &err))
        fail_msg("scan_count: %s", err);
    return n;
}

static void key_n(th_fx *fx, int i)
{
    char k[32];
    snprintf(k, sizeof k, "key%06d", i);
    th_key(fx, k, WEIR_TS_NONE);
}

/* Every expired key reaches the hook exactly once, with its value, in
 * bounded steps; only due keys go; nothing is left afterwards. */
static void test_sweep_all_once(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    int64_t t0 = fx->now;
    char k[32];
    for (int i = 0; i < 500; i++) {
        fx->now = t0 + i % 50; /* stamps t0+100 .. t0+149 */
        key_n(fx, i);
        snprintf(k, sizeof k, "val%d", i);
        th_value_put(v, k);
    }
    /* At t0+124, the keys with i % 50 <= 24 are due: 250 of them. */
    fx->now = t0 + 124;
    assert_int_equal(th_sweep_all(fx, 37), 250);
    assert_int_equal(fx->n_calls, 250);
    fx->now = t0 + 1000;
    assert_int_equal(th_sweep_all(fx, 37), 250);
    assert_int_equal(fx->n_calls, 500);
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        assert_int_equal(th_hook_count(fx, k), 1);
    }
    for (size_t i = 0; i < fx->n_calls; i++) {
        int n = atoi(fx->calls[i].key + 3);
        snprintf(k, sizeof k, "val%d", n);
        assert_string_equal(fx->calls[i].value, k);
        /* Stamp order: t0+100+i%50 increases along the calls. */
        if (i > 0)
            assert_true(atoi(fx->calls[i - 1].key + 3) % 50 <= n % 50);
    }
    state_stats ss;
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_sweep, 500);
    assert_int_equal(ss.hook_calls, 500);
    assert_int_equal(count(fx, v), 0);
    assert_int_equal(count(fx, NULL), 0);
    key_n(fx, 3);
    assert_int_equal(th_value_is(v, NULL), 0);
    th_fx_free(fx);
}

static void test_sweep_budget(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    for (int i = 0; i < 100; i++) {
        key_n(fx, i);
        th_value_put(v, "x");
    }
    fx->now += TTL;
    size_t exp = 0;
    for (int round = 1; round <= 10; round++) {
        assert_int_equal(state_sweep(fx->s, 10, &exp, NULL), 10);
        assert_int_equal(exp, 10);
        assert_int_equal(fx->n_calls, (size_t)round * 10);
    }
    assert_int_equal(state_sweep(fx->s, 10, &exp, NULL), 0);
    assert_int_equal(exp, 0);
    assert_int_equal(state_sweep(fx->s, 0, &exp, NULL), 0);
    th_fx_free(fx);
}

/* A key refreshed after its index entry was written is not expired by it:
 * the stale entry is re-pointed, and the key expires at its real stamp. */
static void test_sweep_stale(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    weir_state *r =
        th_declare(fx, "r", WEIR_STATE_VALUE, TTL, WEIR_TTL_ON_READ_AND_WRITE,
                   WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING);
    int64_t t0 = fx->now;
    th_key(fx, "blind", WEIR_TS_NONE);
    th_value_put(v, "1"); /* t0+100 */
    th_key(fx, "rmw", WEIR_TS_NONE);
    th_value_put(v, "1");
    th_key(fx, "read", WEIR_TS_NONE);
    th_value_put(r, "1");

    fx->now = t0 + 50;
    th_key(fx, "blind", WEIR_TS_NONE);
    th_value_put(v, "2"); /* t0+150 */
    th_key(fx, "rmw", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "1"), 1);
    th_value_put(v, "2"); /* t0+150 */
    th_key(fx, "read", WEIR_TS_NONE);
    assert_int_equal(th_value_is(r, "1"), 1); /* t0+150 */

    fx->now = t0 + 120;
    state_store_stats before, after;
    state_store_stats_get(fx->s, &before);
    assert_int_equal(th_sweep_all(fx, 100), 0);
    assert_int_equal(fx->n_calls, 0);
    state_store_stats_get(fx->s, &after);
    assert_true(after.sweep_stale >= before.sweep_stale + 3);
    th_key(fx, "blind", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "2"), 1);

    fx->now = t0 + 160;
    assert_int_equal(th_sweep_all(fx, 100), 3);
    assert_int_equal(fx->n_calls, 3);
    assert_int_equal(th_hook_count(fx, "blind"), 1);
    assert_int_equal(th_hook_count(fx, "rmw"), 1);
    assert_int_equal(th_hook_count(fx, "read"), 1);
    assert_int_equal(count(fx, NULL), 0);
    th_fx_free(fx);
}

/* The hook may write the entry again: it then stays, and expires again
 * later (the hook sees the new value). */
static int extend_once(th_fx *fx, weir_state *st, const void *key,
                       size_t key_len, const void *ukey, size_t ukey_len,
                       const void *value, size_t value_len)
{
    if (value_len == 2 && memcmp(value, "v1", 2) == 0)
        return state_value_put(st, "v2", 2, NULL);
    return 0;
}

static void test_hook_reput(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    fx->action = extend_once;
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "v1");
    fx->now += TTL;
    assert_int_equal(th_sweep_all(fx, 10), 0);
    assert_int_equal(fx->n_calls, 1);
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "v2"), 1);
    fx->now += TTL - 1;
    assert_int_equal(th_sweep_all(fx, 10), 0);
    assert_int_equal(fx->n_calls, 1);
    fx->now += 1;
    assert_int_equal(th_sweep_all(fx, 10), 1);
    assert_int_equal(fx->n_calls, 2);
    assert_string_equal(fx->calls[1].value, "v2");
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    assert_int_equal(count(fx, v), 0);
    assert_int_equal(count(fx, NULL), 0);
    th_fx_free(fx);
}

/* The hook may read and write other states of the key, and reading an
 * expired entry from inside a hook neither recurses nor loses it. */
static weir_state *g_archive, *g_other;

static int archive(th_fx *fx, weir_state *st, const void *key, size_t key_len,
                   const void *ukey, size_t ukey_len, const void *value,
                   size_t value_len)
{
    if (st != g_other) {
        const void *p;
        size_t len;
        /* g_other's entry is expired too: absent to a hook. */
        int rc = state_value_get(g_other, &p, &len, NULL);
        if (rc != WEIR_ENOTFOUND)
            return WEIR_EFAIL;
    }
    return state_map_put(g_archive, state_name(st), strlen(state_name(st)),
                         value, value_len, NULL);
}

static void test_hook_uses_state(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    g_other = ttl_value(fx, "other");
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_MAP,
                         .name = "archive",
                         .ttl_ms = WEIR_TTL_NONE};
    assert_int_equal(state_declare(fx->s, &d, 0, &g_archive, NULL), 0);
    fx->action = archive;
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "main");
    th_value_put(g_other, "side");
    fx->now += TTL;
    assert_int_equal(th_sweep_all(fx, 10), 2);
    assert_int_equal(fx->n_calls, 2);
    th_key(fx, "k", WEIR_TS_NONE);
    assert_int_equal(th_map_is(g_archive, "v", "main"), 1);
    assert_int_equal(th_map_is(g_archive, "other", "side"), 1);
    assert_int_equal(th_value_is(v, NULL), 0);
    assert_int_equal(th_value_is(g_other, NULL), 0);
    th_fx_free(fx);
}

/* A failing hook stops the sweep; the entry stays and is offered again. */
static void test_hook_error(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "x");
    fx->now += TTL;
    fx->hook_rc = WEIR_EFAIL;
    char *err = NULL;
    size_t exp = 9;
    assert_int_equal(state_sweep(fx->s, 10, &exp, &err), WEIR_EFAIL);
    assert_non_null(strstr(err, "hook"));
    free(err);
    assert_int_equal(exp, 0);
    assert_int_equal(count(fx, v), 1);
    /* Reads see an expired entry whose hook fails as an error too. */
    th_key(fx, "k", WEIR_TS_NONE);
    const void *p;
    size_t len;
    assert_int_equal(state_value_get(v, &p, &len, NULL), WEIR_EFAIL);
    fx->hook_rc = 0;
    assert_int_equal(th_sweep_all(fx, 10), 1);
    assert_int_equal(fx->n_calls, 3);
    assert_int_equal(count(fx, v), 0);
    th_fx_free(fx);
}

/* Access paths hand expired entries to the hook before replacing them. */
static void test_hook_on_access(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    weir_state *m =
        th_declare(fx, "m", WEIR_STATE_MAP, TTL, WEIR_TTL_ON_CREATE_AND_WRITE,
                   WEIR_TTL_NEVER_RETURN_EXPIRED, WEIR_TIME_PROCESSING);
    const char *keys[] = {"get", "put", "del", "mapput", "mapclear"};
    for (int i = 0; i < 5; i++) {
        th_key(fx, keys[i], WEIR_TS_NONE);
        th_value_put(v, keys[i]);
        th_map_put(m, "u", keys[i]);
    }
    fx->now += TTL;
    th_key(fx, "get", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, NULL), 0);
    assert_int_equal(fx->n_calls, 1);
    th_key(fx, "put", WEIR_TS_NONE);
    th_value_put(v, "new");
    assert_int_equal(fx->n_calls, 2);
    assert_string_equal(fx->calls[1].value, "put");
    assert_int_equal(th_value_is(v, "new"), 1);
    th_key(fx, "del", WEIR_TS_NONE);
    assert_int_equal(state_value_delete(v, NULL), 0);
    assert_int_equal(fx->n_calls, 3);
    th_key(fx, "mapput", WEIR_TS_NONE);
    th_map_put(m, "u", "new");
    assert_int_equal(fx->n_calls, 4);
    assert_true(fx->calls[3].has_ukey);
    assert_string_equal(fx->calls[3].ukey, "u");
    th_key(fx, "mapclear", WEIR_TS_NONE);
    assert_int_equal(state_map_clear(m, NULL), 0);
    assert_int_equal(fx->n_calls, 5);
    assert_string_equal(fx->calls[4].value, "mapclear");
    /* The sweep finds the rest: 2 values and 3 map entries. */
    assert_int_equal(th_sweep_all(fx, 100), 5);
    assert_int_equal(fx->n_calls, 10);
    for (int i = 0; i < 5; i++)
        assert_int_equal(th_hook_count(fx, keys[i]), 2);
    th_fx_free(fx);
}

/* A hook may use state, but not move the key, sweep, flush or declare. */
static int forbidden(th_fx *fx, weir_state *st, const void *key, size_t key_len,
                     const void *ukey, size_t ukey_len, const void *value,
                     size_t value_len)
{
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "late",
                         .ttl_ms = WEIR_TTL_NONE};
    weir_state *late = NULL;
    int ok = state_set_key(fx->s, 1, "x", 1, 0) == WEIR_ESTATE &&
             state_sweep(fx->s, 10, NULL, NULL) == WEIR_ESTATE &&
             state_flush(fx->s, NULL) == WEIR_ESTATE &&
             state_checkpoint(fx->s, "/nonexistent/cp", NULL) == WEIR_ESTATE &&
             state_declare(fx->s, &d, 0, &late, NULL) == WEIR_ESTATE;
    return ok ? 0 : WEIR_EINVAL;
}

static void test_hook_forbidden(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    fx->action = forbidden;
    th_key(fx, "k", WEIR_TS_NONE);
    th_value_put(v, "x");
    fx->now += TTL;
    assert_int_equal(th_sweep_all(fx, 10), 1);
    assert_int_equal(fx->n_calls, 1);
    /* The store works normally afterwards. */
    th_key(fx, "k2", WEIR_TS_NONE);
    th_value_put(v, "y");
    assert_int_equal(th_value_is(v, "y"), 1);
    th_fx_free(fx);
}

/* Under return-expired-if-not-cleaned an expired map entry is still
 * visible, but clearing the map removes it: the hook sees it first. */
static void test_hook_clear_return_expired(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *m = th_declare(
        fx, "m", WEIR_STATE_MAP, TTL, WEIR_TTL_ON_CREATE_AND_WRITE,
        WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED, WEIR_TIME_PROCESSING);
    th_key(fx, "k", WEIR_TS_NONE);
    th_map_put(m, "old", "1");
    fx->now += TTL;
    th_key(fx, "k", WEIR_TS_NONE);
    th_map_put(m, "new", "2");
    char buf[64];
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "new=2,old=1");
    assert_int_equal(fx->n_calls, 0);
    assert_int_equal(state_map_clear(m, NULL), 0);
    assert_int_equal(fx->n_calls, 1);
    assert_string_equal(fx->calls[0].ukey, "old");
    th_map_join(m, buf, sizeof buf);
    assert_string_equal(buf, "");
    fx->now += 10 * TTL;
    assert_int_equal(th_sweep_all(fx, 10), 0);
    assert_int_equal(fx->n_calls, 1);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Compaction filter                                                         */
/* ------------------------------------------------------------------------ */

static void compaction_case(void **state, weir_time_domain dom)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    /* A state whose operator wants the hook is never filtered; the others
     * of the same store are. */
    weir_state *v = NULL, *h = NULL, *nh = NULL;
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "v",
                         .ttl_ms = TTL,
                         .ttl_domain = dom};
    assert_int_equal(state_declare(fx->s, &d, 0, &v, NULL), 0);
    d.name = "hooked";
    assert_int_equal(state_declare(fx->s, &d, 1, &h, NULL), 0);
    d.name = "plain";
    d.kind = WEIR_STATE_MAP;
    assert_int_equal(state_declare(fx->s, &d, 0, &nh, NULL), 0);

    int64_t t = dom == WEIR_TIME_EVENT ? 5000 : fx->now;
    if (dom == WEIR_TIME_EVENT)
        state_set_watermark(fx->s, t);
    for (int i = 0; i < 1000; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        /* 900 short-lived, 100 written later and still live. */
        int64_t at = i < 900 ? t : t + 500;
        if (dom == WEIR_TIME_EVENT) {
            th_key(fx, k, at);
        } else {
            fx->now = at;
            th_key(fx, k, WEIR_TS_NONE);
        }
        th_value_put(v, "x");
        th_value_put(h, "x");
        th_map_put(nh, "u", "x");
    }
    if (dom == WEIR_TIME_EVENT)
        state_set_watermark(fx->s, t + 550);
    else
        fx->now = t + 550;
    th_key(fx, "publish-the-time", WEIR_TS_NONE);
    char *err = NULL;
    assert_int_equal(state_compact(fx->s, &err), 0);
    assert_int_equal(count(fx, v), 100);
    assert_int_equal(count(fx, nh), 100);
    assert_int_equal(count(fx, h), 1000);
    state_stats ss;
    state_stats_get(v, &ss);
    assert_int_equal(ss.expired_compaction, 900);
    state_stats_get(h, &ss);
    assert_int_equal(ss.expired_compaction, 0);
    assert_int_equal(fx->n_calls, 0);
    /* Live entries are intact; the hooked ones go through the sweep. */
    th_key(fx, "k950", WEIR_TS_NONE);
    assert_int_equal(th_value_is(v, "x"), 1);
    /* 900 via the hook; the cache may add clean copies of dropped ones. */
    assert_true(th_sweep_all(fx, 64) >= 900);
    assert_int_equal(fx->n_calls, 900);
    assert_int_equal(count(fx, v), 100);
    assert_int_equal(count(fx, h), 100);
    th_fx_free(fx);
}

static void test_compaction_processing(void **state)
{
    compaction_case(state, WEIR_TIME_PROCESSING);
}

static void test_compaction_event(void **state)
{
    compaction_case(state, WEIR_TIME_EVENT);
}

/* The sweep schedules a compaction of everything once per interval of
 * processing time; RocksDB runs it in the background, with the filter. */
static void test_periodic_compaction(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v = ttl_value(fx, "v");
    for (int i = 0; i < 200; i++) {
        key_n(fx, i);
        th_value_put(v, "x");
    }
    assert_int_equal(state_flush(fx->s, NULL), 0);
    state_store_stats ss;
    fx->now += TTL;
    assert_int_equal(state_sweep(fx->s, 0, NULL, NULL), 0);
    state_store_stats_get(fx->s, &ss);
    assert_int_equal(ss.compactions_scheduled, 0);
    fx->now += 24 * 3600 * 1000;
    assert_int_equal(state_sweep(fx->s, 0, NULL, NULL), 0);
    state_store_stats_get(fx->s, &ss);
    assert_int_equal(ss.compactions_scheduled, 1);
    assert_int_equal(state_sweep(fx->s, 0, NULL, NULL), 0);
    state_store_stats_get(fx->s, &ss);
    assert_int_equal(ss.compactions_scheduled, 1);
    /* Wait (up to 60 s) for the env's thread to run it. */
    for (int i = 0; i < 600 && ss.compactions_done == 0; i++) {
        usleep(100 * 1000);
        state_store_stats_get(fx->s, &ss);
    }
    assert_int_equal(ss.compactions_done, 1);
    state_stats st;
    state_stats_get(v, &st);
    assert_int_equal(st.expired_compaction, 200);
    assert_int_equal(count(fx, v), 0);
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Reopen and restore                                                        */
/* ------------------------------------------------------------------------ */

static void test_index_survives_reopen(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    for (int i = 0; i < 50; i++) {
        key_n(fx, i);
        th_value_put(v, "x");
    }
    th_fx_close_store(fx);
    th_fx_open_store(fx);
    /* Declared with another TTL now: stamps stay as written. */
    v = th_declare(fx, "v", WEIR_STATE_VALUE, 10 * TTL,
                   WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,
                   WEIR_TIME_PROCESSING);
    fx->now += TTL;
    assert_int_equal(th_sweep_all(fx, 16), 50);
    assert_int_equal(fx->n_calls, 50);
    th_fx_free(fx);
}

/* A hook that ran after the last checkpoint runs again after a restore from
 * it: at-least-once. */
static void test_restore_at_least_once(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 1);
    weir_state *v = ttl_value(fx, "v");
    for (int i = 0; i < 20; i++) {
        key_n(fx, i);
        th_value_put(v, "x");
    }
    char cp[400];
    snprintf(cp, sizeof cp, "%s/cp", fx->dir);
    assert_int_equal(state_checkpoint(fx->s, cp, NULL), 0);
    fx->now += TTL;
    assert_int_equal(th_sweep_all(fx, 8), 20);
    th_fx_close_store(fx); /* the "failure" */
    snprintf(fx->path, sizeof fx->path, "%s", cp);
    th_fx_open_store(fx);
    v = ttl_value(fx, "v");
    assert_int_equal(th_sweep_all(fx, 8), 20);
    assert_int_equal(fx->n_calls, 40);
    char k[32];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        assert_int_equal(th_hook_count(fx, k), 2);
    }
    th_fx_free(fx);
}

/* ------------------------------------------------------------------------ */
/* Leaks                                                                     */
/* ------------------------------------------------------------------------ */

static size_t stream_keys(void)
{
    const char *e = getenv("WEIR_LONG_TESTS");
    return e && strcmp(e, "1") == 0 ? 1000000 : 200000;
}

/* A stream of distinct keys: with a TTL the store stays bounded; without,
 * it grows and the detector flags it, once, after N growing samples. */
static void test_leak_detector(void **state)
{
    size_t n = stream_keys();
    /* The cache under test is the small one, or a realistic one. */
    th_fx *fx = th_fx_new(TH_PARAM(state) ? 10000 : 0, 0);
    weir_state *ttl = ttl_value(fx, "sessions");
    weir_state *leak =
        th_declare(fx, "leaky", WEIR_STATE_VALUE, WEIR_TTL_NONE,
                   WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,
                   WEIR_TIME_PROCESSING);
    size_t chunk = n / 10, max_ttl_keys = 0;
    state_stats s_ttl, s_leak;
    int flagged_at = -1;
    for (size_t i = 0; i < n; i++) {
        /* 1 ms of processing time per 100 records: ~10k keys per TTL. */
        if (i % 100 == 0)
            fx->now++;
        key_n(fx, (int)i);
        th_value_put(ttl, "s");
        th_value_put(leak, "s");
        if (i % 1000 == 999)
            assert_true(th_sweep_all(fx, 1000) <= 1000 + 100);
        if (i % chunk == chunk - 1) {
            assert_int_equal(state_stats_sample(fx->s, NULL), 0);
            state_stats_get(leak, &s_leak);
            state_stats_get(ttl, &s_ttl);
            assert_int_equal(s_ttl.leak_suspected, 0);
            if (s_leak.leak_suspected && flagged_at < 0)
                flagged_at = (int)(i / chunk);
        }
    }
    /* Samples 0..9: growth at samples 1..9, flagged at the 5th growth. */
    assert_int_equal(flagged_at, 5);
    assert_true(s_leak.growth_streak >= 5);
    assert_true(s_leak.est_keys >= n * 9 / 10);
    uint64_t live = count(fx, ttl);
    max_ttl_keys = 100 * (TTL + 1);
    if (live > max_ttl_keys)
        fail_msg("TTL state holds %llu keys, expected <= %zu",
                 (unsigned long long)live, max_ttl_keys);
    assert_int_equal(count(fx, leak), n);
    assert_true(s_ttl.expired_sweep >= n - max_ttl_keys - 1000);
    assert_true(s_ttl.est_keys < n / 2);
    th_fx_free(fx);
}

/* A stable key set without TTL is not flagged: samples taken after
 * compaction see no growth. */
static void test_no_false_leak(void **state)
{
    th_fx *fx = th_fx_new(TH_PARAM(state), 0);
    weir_state *v =
        th_declare(fx, "counts", WEIR_STATE_VALUE, WEIR_TTL_NONE,
                   WEIR_TTL_ON_CREATE_AND_WRITE, WEIR_TTL_NEVER_RETURN_EXPIRED,
                   WEIR_TIME_PROCESSING);
    state_stats ss;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 1000; i++) {
            key_n(fx, i);
            char val[16];
            snprintf(val, sizeof val, "%d", round);
            th_value_put(v, val);
        }
        assert_int_equal(state_compact(fx->s, NULL), 0);
        assert_int_equal(state_stats_sample(fx->s, NULL), 0);
        state_stats_get(v, &ss);
        assert_int_equal(ss.est_keys, 1000);
        assert_int_equal(ss.leak_suspected, 0);
        assert_int_equal(ss.growth_streak, 0);
    }
    th_fx_free(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TH_BOTH(test_sweep_all_once),
        TH_BOTH(test_sweep_budget),
        TH_BOTH(test_sweep_stale),
        TH_BOTH(test_hook_reput),
        TH_BOTH(test_hook_uses_state),
        TH_BOTH(test_hook_error),
        TH_BOTH(test_hook_on_access),
        TH_BOTH(test_hook_clear_return_expired),
        TH_BOTH(test_hook_forbidden),
        TH_BOTH(test_compaction_processing),
        TH_BOTH(test_compaction_event),
        TH_BOTH(test_periodic_compaction),
        TH_BOTH(test_index_survives_reopen),
        TH_BOTH(test_restore_at_least_once),
        TH_BOTH(test_leak_detector),
        TH_BOTH(test_no_false_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
