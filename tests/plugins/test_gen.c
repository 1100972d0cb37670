/*
 * test_gen.c - the gen source: determinism, the parallel split, the key
 * distributions (chi-square against the exact uniform and Zipf
 * probabilities), pacing on the fake clock, EOF, snapshot/restore and the
 * errors of open(), restore() and emit.
 */
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

/* gen as subtask `sub` of `par` with `p`. */
static hx_spec gen_spec(const weir_test_param *p, uint32_t sub, uint32_t par)
{
    return (hx_spec){
        .so = GEN_SO, .op = "gen", .params = p, .sub = sub, .par = par};
}

/* One decoded gen record. */
typedef struct grec {
    uint64_t seq;
    uint64_t k; /* key index */
    int64_t ts;
    int64_t created;
    char key[64];
} grec;

static int64_t jint(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v))
        fail_msg("field %s missing or not an integer", name);
    return json_integer_value(v);
}

static void decode(const weir_test_record *r, const char *prefix, grec *g)
{
    json_t *v = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 3);
    g->seq = (uint64_t)jint(v, "seq");
    g->created = jint(v, "created_ns");
    json_t *k = json_object_get(v, "key");
    assert_true(json_is_string(k));
    assert_int_equal(json_string_length(k), r->key_len);
    assert_memory_equal(json_string_value(k), r->key, r->key_len);
    json_decref(v);

    size_t pl = strlen(prefix);
    assert_true(r->key_len > pl && r->key_len < sizeof g->key);
    assert_memory_equal(r->key, prefix, pl);
    memcpy(g->key, r->key, r->key_len);
    g->key[r->key_len] = '\0';
    char *end;
    g->k = strtoull(g->key + pl, &end, 10);
    assert_true(*end == '\0' && end > g->key + pl);
    g->ts = r->ts;
}

static grec *decode_all(const weir_test *t, const char *prefix)
{
    grec *g = calloc(hx_n(t) ? hx_n(t) : 1, sizeof *g);
    assert_non_null(g);
    for (size_t i = 0; i < hx_n(t); i++)
        decode(hx_rec(t, i), prefix, &g[i]);
    return g;
}

static weir_test *run(const weir_test_param *params, uint32_t sub, uint32_t par)
{
    weir_test *t = hx_new(GEN_SO, "gen", params, sub, par);
    assert_int_equal(weir_test_drain(t, 10000000), WEIR_EOF);
    return t;
}

/* ------------------------------------------------------------------------ */

static void test_deterministic(void **state)
{
    const weir_test_param p[] = {{"count", "2000"},  {"keys", "50"},
                                 {"seed", "7"},      {"start_ts", "1000"},
                                 {"ts_step", "5ms"}, {"key_prefix", "user-"},
                                 {"batch", "300"},   {NULL, NULL}};
    const weir_test_param q[] = {{"count", "2000"},  {"keys", "50"},
                                 {"seed", "8"},      {"start_ts", "1000"},
                                 {"ts_step", "5ms"}, {"key_prefix", "user-"},
                                 {NULL, NULL}};
    weir_test *a = run(p, 0, 1), *b = run(p, 0, 1), *c = run(q, 0, 1);
    assert_int_equal(hx_n(a), 2000);
    assert_int_equal(hx_n(b), 2000);
    assert_int_equal(hx_n(c), 2000);
    grec *ga = decode_all(a, "user-"), *gb = decode_all(b, "user-"),
         *gc = decode_all(c, "user-");
    size_t differ = 0;
    for (size_t i = 0; i < 2000; i++) {
        assert_int_equal(ga[i].seq, i);
        assert_int_equal(ga[i].ts, 1000 + 5 * (int64_t)i);
        assert_true(ga[i].k < 50);
        assert_string_equal(ga[i].key, gb[i].key);
        assert_int_equal(ga[i].ts, gb[i].ts);
        assert_int_equal(hx_rec(a, i)->port, 0);
        if (i)
            assert_true(ga[i].created >= ga[i - 1].created);
        assert_true(ga[i].created > 0);
        differ += strcmp(ga[i].key, gc[i].key) != 0;
    }
    /* Another seed gives another sequence (equal keys by chance: ~1/50). */
    assert_true(differ > 1800);
    free(ga);
    free(gb);
    free(gc);
    weir_test_free(a);
    weir_test_free(b);
    weir_test_free(c);
}

/* The union of P subtasks is exactly the sequence of parallelism 1. */
static void check_split(const char *dist, uint32_t par)
{
    const weir_test_param p[] = {{"count", "1001"}, {"keys", "1000"},
                                 {"seed", "42"},    {"distribution", dist},
                                 {"batch", "64"},   {NULL, NULL}};
    weir_test *one = run(p, 0, 1);
    grec *g1 = decode_all(one, "k");
    assert_int_equal(hx_n(one), 1001);

    size_t total = 0;
    for (uint32_t i = 0; i < par; i++) {
        weir_test *t = run(p, i, par);
        grec *g = decode_all(t, "k");
        assert_int_equal(hx_n(t), (1001 - i + par - 1) / par);
        for (size_t j = 0; j < hx_n(t); j++) {
            assert_int_equal(g[j].seq, i + j * par);
            assert_string_equal(g[j].key, g1[g[j].seq].key);
            assert_int_equal(g[j].ts, g1[g[j].seq].ts);
        }
        total += hx_n(t);
        free(g);
        weir_test_free(t);
    }
    assert_int_equal(total, 1001);
    free(g1);
    weir_test_free(one);
}

static void test_parallel_split(void **state)
{
    check_split("uniform", 3);
    check_split("zipf", 4);
    check_split("zipf", 1);
}

static uint64_t *histogram(const char *dist, const char *s, int keys, int count,
                           const char *seed)
{
    char kbuf[32], cbuf[32];
    snprintf(kbuf, sizeof kbuf, "%d", keys);
    snprintf(cbuf, sizeof cbuf, "%d", count);
    const weir_test_param p[] = {
        {"count", cbuf}, {"keys", kbuf}, {"distribution", dist},
        {"zipf_s", s},   {"seed", seed}, {"batch", "65536"},
        {NULL, NULL}};
    weir_test *t = run(p, 0, 1);
    assert_int_equal(hx_n(t), (size_t)count);
    uint64_t *h = calloc((size_t)keys, sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < hx_n(t); i++) {
        grec g;
        decode(hx_rec(t, i), "k", &g);
        assert_true(g.k < (uint64_t)keys);
        h[g.k]++;
    }
    weir_test_free(t);
    return h;
}

static double chi2(const uint64_t *h, const double *p, int keys, int count)
{
    double x = 0;
    for (int i = 0; i < keys; i++) {
        double e = p[i] * count;
        x += ((double)h[i] - e) * ((double)h[i] - e) / e;
    }
    return x;
}

static double *zipf_pmf(double s, int keys)
{
    double *p = malloc((size_t)keys * sizeof *p), sum = 0;
    assert_non_null(p);
    for (int i = 0; i < keys; i++)
        sum += p[i] = pow(i + 1, -s);
    for (int i = 0; i < keys; i++)
        p[i] /= sum;
    return p;
}

static void test_uniform_is_flat(void **state)
{
    enum { K = 64, N = 64000 };
    uint64_t *h = histogram("uniform", "0.99", K, N, "3");
    double p[K];
    for (int i = 0; i < K; i++)
        p[i] = 1.0 / K;
    double x = chi2(h, p, K, N);
    /* 63 degrees of freedom: mean 63, sd 11; 150 is far in the tail. */
    assert_true(x < 150);
    /* The same counts are far from a Zipf law (the test can fail). */
    double *z = zipf_pmf(0.99, K);
    assert_true(chi2(h, z, K, N) > 1000);
    free(z);
    free(h);
}

static void check_zipf(const char *s_text, double s)
{
    enum { K = 100, N = 100000 };
    uint64_t *h = histogram("zipf", s_text, K, N, "11");
    double *p = zipf_pmf(s, K);
    double x = chi2(h, p, K, N);
    if (!(x < 250)) /* 99 degrees of freedom: mean 99, sd 14 */
        fail_msg("zipf s=%g: chi-square %.1f", s, x);
    double f0 = (double)h[0] / N;
    assert_true(fabs(f0 - p[0]) < 0.05 * p[0] + 0.002);
    assert_true(h[0] > h[1] && h[1] > h[9] && h[9] > h[99]);
    /* Flat counts are far from it. */
    double flat[K];
    for (int i = 0; i < K; i++)
        flat[i] = 1.0 / K;
    assert_true(chi2(h, flat, K, N) > 1000);
    free(p);
    free(h);
}

static void test_zipf_matches_law(void **state)
{
    check_zipf("0.99", 0.99);
    check_zipf("1", 1.0);
    check_zipf("1.5", 1.5);
    check_zipf("0.5", 0.5);
}

static void test_zipf_many_keys(void **state)
{
    enum { N = 20000 };
    const weir_test_param p[] = {{"count", "20000"},
                                 {"keys", "1000000000"},
                                 {"distribution", "zipf"},
                                 {"batch", "65536"},
                                 {NULL, NULL}};
    weir_test *t = run(p, 0, 1);
    uint64_t k0 = 0, small = 0;
    for (size_t i = 0; i < hx_n(t); i++) {
        grec g;
        decode(hx_rec(t, i), "k", &g);
        assert_true(g.k < 1000000000u);
        k0 += g.k == 0;
        small += g.k < 1000;
    }
    /* P(k=0) = 1/H(1e9, 0.99), about 0.044; P(k<1000) about 0.34. */
    double h, h1000 = 0;
    for (int i = 1; i <= 1000; i++)
        h1000 += pow(i, -0.99);
    /* Tail of the sum by the integral: sum_{1001}^{1e9} i^-s. */
    h = h1000 + (pow(1e9 + 0.5, 0.01) - pow(1000.5, 0.01)) / 0.01;
    double p0 = 1.0 / h, psmall = h1000 / h;
    assert_true(fabs((double)k0 / N - p0) < 0.01);
    assert_true(fabs((double)small / N - psmall) < 0.03);
    weir_test_free(t);
}

static void test_single_key(void **state)
{
    const weir_test_param p[] = {{"count", "100"},
                                 {"keys", "1"},
                                 {"distribution", "zipf"},
                                 {NULL, NULL}};
    weir_test *t = run(p, 0, 1);
    for (size_t i = 0; i < hx_n(t); i++)
        assert_memory_equal(hx_rec(t, i)->key, "k0", 2);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_rate(void **state)
{
    const weir_test_param p[] = {
        {"rate", "1000"}, {"batch", "1024"}, {NULL, NULL}};
    weir_test *t = hx_new(GEN_SO, "gen", p, 0, 1);
    assert_int_equal(weir_test_poll(t), WEIR_EAGAIN); /* nothing due at t0 */
    assert_int_equal(weir_test_set_time(t, weir_test_time(t) + 10), 0);
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 10);
    assert_int_equal(weir_test_poll(t), WEIR_EAGAIN);
    assert_int_equal(weir_test_set_time(t, weir_test_time(t) + 5000),
                     0); /* 5000 due; batch limits each poll */
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 10 + 1024);
    while (weir_test_poll(t) == WEIR_OK)
        ;
    assert_int_equal(hx_n(t), 5010);
    weir_test_free(t);

    /* rate is the total: two subtasks share it. */
    for (uint32_t i = 0; i < 2; i++) {
        t = hx_new(GEN_SO, "gen", p, i, 2);
        assert_int_equal(weir_test_poll(t), WEIR_EAGAIN);
        assert_int_equal(weir_test_set_time(t, weir_test_time(t) + 100), 0);
        assert_int_equal(weir_test_poll(t), WEIR_OK);
        assert_int_equal(hx_n(t), 50);
        weir_test_free(t);
    }
}

static void test_eof(void **state)
{
    const weir_test_param p[] = {{"count", "10"}, {"batch", "4"}, {NULL, NULL}};
    weir_test *t = hx_new(GEN_SO, "gen", p, 0, 1);
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 10);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(hx_n(t), 10);
    weir_test_free(t);

    /* count smaller than the parallelism: an idle subtask ends at once. */
    const weir_test_param q[] = {{"count", "2"}, {NULL, NULL}};
    t = hx_new(GEN_SO, "gen", q, 3, 4);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(hx_n(t), 0);
    weir_test_free(t);
}

static void test_unbounded(void **state)
{
    const weir_test_param p[] = {{"batch", "1000"}, {NULL, NULL}};
    weir_test *t = hx_new(GEN_SO, "gen", p, 0, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(weir_test_poll(t), WEIR_OK);
    assert_int_equal(hx_n(t), 20000);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_snapshot_restore(void **state)
{
    const weir_test_param p[] = {
        {"count", "1000"}, {"batch", "100"}, {"seed", "5"}, {NULL, NULL}};
    weir_test *full = run(p, 1, 2);
    grec *gf = decode_all(full, "k");

    weir_test *a = hx_new(GEN_SO, "gen", p, 1, 2);
    assert_int_equal(weir_test_poll(a), WEIR_OK);
    assert_int_equal(weir_test_poll(a), WEIR_OK);
    const void *snap;
    size_t snap_len;
    assert_int_equal(hx_snapshot(a, &snap, &snap_len), WEIR_OK);
    assert_int_equal(snap_len, 16);
    assert_int_equal(hx_n(a), 200);

    /* A restart from that checkpoint goes on where it was taken. */
    hx_spec s12 = gen_spec(p, 1, 2);
    weir_test *b = NULL;
    assert_int_equal(hx_try_restore(&s12, 0, 1, snap, snap_len, &b), WEIR_OK);
    assert_int_equal(weir_test_drain(b, 1000), WEIR_EOF);
    assert_int_equal(hx_n(a) + hx_n(b), hx_n(full));
    grec *gb = decode_all(b, "k");
    for (size_t i = 0; i < hx_n(b); i++) {
        assert_int_equal(gb[i].seq, gf[200 + i].seq);
        assert_string_equal(gb[i].key, gf[200 + i].key);
    }
    free(gb);
    free(gf);
    weir_test_free(b);
    weir_test_free(full);

    /* Bad snapshots are refused with a reason. */
    weir_test *c = NULL;
    assert_int_equal(hx_try_restore(&s12, 0, 2, snap, snap_len, &c),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "version 2"));
    weir_test_free(c);
    assert_int_equal(hx_try_restore(&s12, 0, 1, snap, 15, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "15 bytes"));
    weir_test_free(c);
    unsigned char bad[16];
    memcpy(bad, snap, 16);
    bad[0] ^= 1; /* sequence of the other subtask */
    assert_int_equal(hx_try_restore(&s12, 0, 1, bad, 16, &c), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(c), "damaged"));
    weir_test_free(c);
    hx_spec s03 = gen_spec(p, 0, 3);
    weir_test *d = NULL;
    assert_int_equal(hx_try_restore(&s03, 0, 1, snap, snap_len, &d),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(d), "rescaled"));
    weir_test_free(d);
    weir_test_free(a);
}

static void test_snapshot_unsupported(void **state)
{
    hx_spec sp = gen_spec(NULL, 0, 1);
    sp.without = WEIR_TEST_WITHOUT_SNAPSHOT_WRITE;
    weir_test *t = hx_open(&sp);
    const void *snap;
    size_t snap_len;
    assert_int_equal(hx_snapshot(t, &snap, &snap_len), WEIR_ENOTSUP);
    assert_non_null(strstr(weir_test_error(t), "snapshot"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static void expect_open_error(const weir_test_param *p, const char *needle)
{
    hx_spec sp = gen_spec(p, 0, 1);
    weir_test *t = NULL;
    int rc = hx_try(&sp, &t);
    assert_true(rc < 0);
    /* The parameter table accepts it; open() refuses it. */
    assert_non_null(strstr(weir_test_error(t), ": open: "));
    if (!strstr(weir_test_error(t), needle))
        fail_msg("error '%s' lacks '%s'", weir_test_error(t), needle);
    weir_test_free(t);
}

static void test_open_errors(void **state)
{
    const weir_test_param s0[] = {
        {"distribution", "zipf"}, {"zipf_s", "0"}, {NULL, NULL}};
    expect_open_error(s0, "zipf_s");
    char longp[300];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const weir_test_param lp[] = {{"key_prefix", longp}, {NULL, NULL}};
    expect_open_error(lp, "key_prefix");
    const weir_test_param ov[] = {{"count", "10"},
                                  {"start_ts", "9223372036854000000"},
                                  {"ts_step", "1d"},
                                  {NULL, NULL}};
    expect_open_error(ov, "overflows");
    const weir_test_param none[] = {{"start_ts", "-9223372036854775808"},
                                    {NULL, NULL}};
    expect_open_error(none, "start_ts");

    /* zipf_s = 0 is fine with the uniform distribution. */
    const weir_test_param ok[] = {
        {"zipf_s", "0"}, {"count", "1"}, {NULL, NULL}};
    weir_test_free(run(ok, 0, 1));
}

static void test_ts_overflow_unbounded(void **state)
{
    const weir_test_param p[] = {
        {"start_ts", "9223372036854775000"}, {"ts_step", "1s"}, {NULL, NULL}};
    weir_test *t = hx_new(GEN_SO, "gen", p, 0, 1);
    assert_int_equal(weir_test_poll(t), WEIR_EINVAL);
    assert_int_equal(hx_n(t), 1); /* record 0 fits, record 1 does not */
    assert_non_null(strstr(weir_test_error(t), "overflows"));
    weir_test_free(t);
}

static void test_emit_failure(void **state)
{
    weir_test *t = hx_new(GEN_SO, "gen", NULL, 0, 1);
    weir_test_fail_emits(t, WEIR_EIO);
    assert_int_equal(weir_test_poll(t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "emit"));
    weir_test_fail_emits(t, 0);
    assert_int_equal(weir_test_poll(t), WEIR_OK);
    grec g;
    decode(hx_rec(t, 0), "k", &g);
    assert_int_equal(g.seq, 0); /* the failed record is not skipped */
    weir_test_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_parallel_split),
        cmocka_unit_test(test_uniform_is_flat),
        cmocka_unit_test(test_zipf_matches_law),
        cmocka_unit_test(test_zipf_many_keys),
        cmocka_unit_test(test_single_key),
        cmocka_unit_test(test_rate),
        cmocka_unit_test(test_eof),
        cmocka_unit_test(test_unbounded),
        cmocka_unit_test(test_snapshot_restore),
        cmocka_unit_test(test_snapshot_unsupported),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_ts_overflow_unbounded),
        cmocka_unit_test(test_emit_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
