/*
 * test_sup_strategy - the restart strategies (sup_on_failure) on a fake
 * clock, and their construction from a `restart` section. Every expected
 * value below is worked out by hand from the rules in supervisor.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/supervisor.h"
#include "topology/topology.h"

static sup_strategy fixed(uint32_t attempts, int64_t delay)
{
    sup_strategy s = {
        .kind = SUP_FIXED_DELAY, .attempts = attempts, .delay_ms = delay};
    return s;
}

static sup_strategy expo(int64_t initial, int64_t max, double mult,
                         double jitter, int64_t reset_after)
{
    sup_strategy s = {.kind = SUP_EXPONENTIAL_DELAY,
                      .initial_delay_ms = initial,
                      .max_delay_ms = max,
                      .multiplier = mult,
                      .jitter = jitter,
                      .reset_after_ms = reset_after};
    return s;
}

static sup_strategy rate(uint32_t max_failures, int64_t interval, int64_t delay)
{
    sup_strategy s = {.kind = SUP_FAILURE_RATE,
                      .max_failures = max_failures,
                      .interval_ms = interval,
                      .delay_ms = delay};
    return s;
}

/* Records a failure and returns the delay, or -1 when the strategy gives
 * up. */
static int64_t fail_at(sup_tracker *t, int64_t now, int64_t ran)
{
    int64_t d = 12345;
    if (!sup_on_failure(t, now, ran, &d))
        return -1;
    return d;
}

static void test_none(void **unused)
{
    sup_strategy s = {.kind = SUP_NONE, .attempts = 5, .delay_ms = 10};
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 100000), -1);
    assert_int_equal(fail_at(&t, 1000, 100000), -1);
    sup_tracker_free(&t);
}

static void test_fixed_delay(void **unused)
{
    sup_strategy s = fixed(3, 250);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 250);
    assert_int_equal(fail_at(&t, 300, 5), 250);
    /* A long run does not give attempts back. */
    assert_int_equal(fail_at(&t, 999999, 999000), 250);
    assert_int_equal(fail_at(&t, 1000000, 5), -1);
    assert_int_equal(fail_at(&t, 1000001, 5), -1);
    sup_tracker_free(&t);
}

static void test_fixed_delay_zero_attempts(void **unused)
{
    sup_strategy s = fixed(0, 250);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), -1);
    sup_tracker_free(&t);
}

static void test_fixed_delay_zero_delay(void **unused)
{
    sup_strategy s = fixed(1, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 0);
    assert_int_equal(fail_at(&t, 1, 5), -1);
    sup_tracker_free(&t);
}

static void test_exponential_grows_to_max(void **unused)
{
    sup_strategy s = expo(10, 40, 2.0, 0.0, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    static const int64_t want[] = {10, 20, 40, 40, 40, 40};
    for (int i = 0; i < 6; i++)
        assert_int_equal(fail_at(&t, i * 100, 50), want[i]);
    /* Never gives up. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(fail_at(&t, 1000 + i, 1), 40);
    sup_tracker_free(&t);
}

static void test_exponential_odd_multiplier(void **unused)
{
    /* 100, 150, 225, 337.5 -> 338 (rounded), then the cap 400. */
    sup_strategy s = expo(100, 400, 1.5, 0.0, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 1), 100);
    assert_int_equal(fail_at(&t, 1, 1), 150);
    assert_int_equal(fail_at(&t, 2, 1), 225);
    assert_int_equal(fail_at(&t, 3, 1), 338);
    assert_int_equal(fail_at(&t, 4, 1), 400);
    sup_tracker_free(&t);
}

static void test_exponential_initial_above_max(void **unused)
{
    sup_strategy s = expo(500, 200, 2.0, 0.0, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 1), 200);
    assert_int_equal(fail_at(&t, 1, 1), 200);
    sup_tracker_free(&t);
}

static void test_exponential_reset_after(void **unused)
{
    sup_strategy s = expo(10, 1000, 2.0, 0.0, 5000);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 100), 10);
    assert_int_equal(fail_at(&t, 200, 100), 20);
    assert_int_equal(fail_at(&t, 400, 100), 40);
    /* Just short of reset_after: keeps growing. */
    assert_int_equal(fail_at(&t, 5400, 4999), 80);
    /* Exactly reset_after: back to the initial delay, then growth again. */
    assert_int_equal(fail_at(&t, 10500, 5000), 10);
    assert_int_equal(t.failures, 1u);
    assert_int_equal(fail_at(&t, 10600, 50), 20);
    assert_int_equal(fail_at(&t, 90000, 60000), 10);
    sup_tracker_free(&t);
}

static void test_exponential_reset_after_zero_never_resets(void **unused)
{
    sup_strategy s = expo(10, 1000, 2.0, 0.0, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 1), 10);
    assert_int_equal(fail_at(&t, 100000, 99999), 20);
    assert_int_equal(fail_at(&t, 200000, 99999), 40);
    sup_tracker_free(&t);
}

/* jitter j: each delay lies within base * [1 - j, 1 + j], never above the
 * maximum, and the draws are not all the same. */
static void test_exponential_jitter_bounds(void **unused)
{
    sup_strategy s = expo(1000, 1000000, 1.0, 0.25, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 42);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = fail_at(&t, i, 1);
        assert_in_range(d, 750, 1250);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    /* Both halves of the range are used. */
    assert_true(lo < 850);
    assert_true(hi > 1150);
    sup_tracker_free(&t);

    /* At the cap, jitter can only take away. */
    s = expo(100, 100, 2.0, 0.5, 0);
    sup_tracker_init(&t, &s, 7);
    for (int i = 0; i < 500; i++)
        assert_in_range(fail_at(&t, i, 1), 50, 100);
    sup_tracker_free(&t);

    /* Full jitter reaches down to zero but not below. */
    s = expo(10, 10, 1.0, 1.0, 0);
    sup_tracker_init(&t, &s, 9);
    for (int i = 0; i < 500; i++)
        assert_in_range(fail_at(&t, i, 1), 0, 10);
    sup_tracker_free(&t);
}

/* The growth follows the un-jittered base: with jitter 0.1 the n-th delay
 * lies within 10 * 2^n * [0.9, 1.1]. */
static void test_exponential_jitter_follows_base(void **unused)
{
    sup_strategy s = expo(10, 100000, 2.0, 0.1, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 3);
    static const int64_t lo[] = {9, 18, 36, 72, 144, 288};
    static const int64_t hi[] = {11, 22, 44, 88, 176, 352};
    for (int i = 0; i < 6; i++)
        assert_in_range(fail_at(&t, i, 1), lo[i], hi[i]);
    sup_tracker_free(&t);
}

/* The same seed gives the same delays; another seed others. */
static void test_exponential_jitter_deterministic(void **unused)
{
    sup_strategy s = expo(10000, 10000, 1.0, 0.5, 0);
    sup_tracker a, b, c;
    sup_tracker_init(&a, &s, 1234);
    sup_tracker_init(&b, &s, 1234);
    sup_tracker_init(&c, &s, 4321);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        int64_t da = fail_at(&a, i, 1), db = fail_at(&b, i, 1);
        int64_t dc = fail_at(&c, i, 1);
        assert_int_equal(da, db);
        differ |= da != dc;
    }
    assert_true(differ);
    sup_tracker_free(&a);
    sup_tracker_free(&b);
    sup_tracker_free(&c);
}

static void test_failure_rate_gives_up(void **unused)
{
    sup_strategy s = rate(2, 10000, 10);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 10);
    assert_int_equal(fail_at(&t, 100, 5), 10);
    assert_int_equal(fail_at(&t, 200, 5), -1);
    sup_tracker_free(&t);
}

/* The window slides: a failure leaves it `interval` after it happened. */
static void test_failure_rate_window_slides(void **unused)
{
    sup_strategy s = rate(2, 1000, 10);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 10);
    assert_int_equal(fail_at(&t, 500, 5), 10);
    /* At 1000 the failure at 0 is out: {500, 1000}. */
    assert_int_equal(fail_at(&t, 1000, 5), 10);
    assert_int_equal(t.n_times, 2u);
    /* At 1499 both 500 and 1000 are in: the third within 1000 ms. */
    assert_int_equal(fail_at(&t, 1499, 5), -1);
    sup_tracker_free(&t);

    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 10);
    assert_int_equal(fail_at(&t, 500, 5), 10);
    assert_int_equal(fail_at(&t, 999, 5), -1); /* 0 is still in */
    sup_tracker_free(&t);

    /* Failures spaced wider than the window go on for ever. */
    sup_tracker_init(&t, &s, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(fail_at(&t, (int64_t)i * 600, 5), 10);
    assert_true(t.n_times <= 2u);
    sup_tracker_free(&t);
}

static void test_failure_rate_one(void **unused)
{
    sup_strategy s = rate(1, 1000, 0);
    sup_tracker t;
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 0);
    assert_int_equal(fail_at(&t, 999, 5), -1);
    sup_tracker_free(&t);
    sup_tracker_init(&t, &s, 1);
    assert_int_equal(fail_at(&t, 0, 5), 0);
    assert_int_equal(fail_at(&t, 1000, 5), 0);
    assert_int_equal(fail_at(&t, 2000, 5), 0);
    sup_tracker_free(&t);
}

/* Builds a strategy from textual `restart` parameters. */
static void from_strings(const char *const *names, const char *const *values,
                         size_t n, sup_strategy *out)
{
    const weir_param_def *const *defs = topo_section_defs("restart");
    size_t n_defs = 0;
    while (defs[n_defs])
        n_defs++;
    topo_params p = {0};
    char *err = NULL;
    assert_int_equal(
        topo_params_from_strings(defs, n_defs, names, values, n, &p, &err), 0);
    sup_strategy_from_topology(&p, out);
    topo_params_free(&p);
}

static void test_from_topology(void **unused)
{
    sup_strategy s;
    from_strings(NULL, NULL, 0, &s);
    assert_int_equal(s.kind, SUP_NONE);
    assert_int_equal(s.attempts, 3u);
    assert_int_equal(s.delay_ms, 1000);
    assert_int_equal(s.initial_delay_ms, 100);
    assert_int_equal(s.max_delay_ms, 30000);
    assert_true(s.multiplier == 2.0);
    assert_true(s.jitter == 0.1);
    assert_int_equal(s.reset_after_ms, 600000);
    assert_int_equal(s.max_failures, 3u);
    assert_int_equal(s.interval_ms, 300000);

    static const char *const n1[] = {"strategy", "attempts", "delay"};
    static const char *const v1[] = {"fixed_delay", "7", "250ms"};
    from_strings(n1, v1, 3, &s);
    assert_int_equal(s.kind, SUP_FIXED_DELAY);
    assert_int_equal(s.attempts, 7u);
    assert_int_equal(s.delay_ms, 250);

    static const char *const n2[] = {"strategy",  "initial_delay",
                                     "max_delay", "multiplier",
                                     "jitter",    "reset_after"};
    static const char *const v2[] = {
        "exponential_delay", "10ms", "2s", "1.5", "0", "1m"};
    from_strings(n2, v2, 6, &s);
    assert_int_equal(s.kind, SUP_EXPONENTIAL_DELAY);
    assert_int_equal(s.initial_delay_ms, 10);
    assert_int_equal(s.max_delay_ms, 2000);
    assert_true(s.multiplier == 1.5);
    assert_true(s.jitter == 0.0);
    assert_int_equal(s.reset_after_ms, 60000);

    static const char *const n3[] = {"strategy", "max_failures", "interval",
                                     "delay"};
    static const char *const v3[] = {"failure_rate", "2", "10s", "5ms"};
    from_strings(n3, v3, 4, &s);
    assert_int_equal(s.kind, SUP_FAILURE_RATE);
    assert_int_equal(s.max_failures, 2u);
    assert_int_equal(s.interval_ms, 10000);
    assert_int_equal(s.delay_ms, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_fixed_delay),
        cmocka_unit_test(test_fixed_delay_zero_attempts),
        cmocka_unit_test(test_fixed_delay_zero_delay),
        cmocka_unit_test(test_exponential_grows_to_max),
        cmocka_unit_test(test_exponential_odd_multiplier),
        cmocka_unit_test(test_exponential_initial_above_max),
        cmocka_unit_test(test_exponential_reset_after),
        cmocka_unit_test(test_exponential_reset_after_zero_never_resets),
        cmocka_unit_test(test_exponential_jitter_bounds),
        cmocka_unit_test(test_exponential_jitter_follows_base),
        cmocka_unit_test(test_exponential_jitter_deterministic),
        cmocka_unit_test(test_failure_rate_gives_up),
        cmocka_unit_test(test_failure_rate_window_slides),
        cmocka_unit_test(test_failure_rate_one),
        cmocka_unit_test(test_from_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
