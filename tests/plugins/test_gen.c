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

#include "th.h"

static const weir_operator *gen_op(void)
{
    return th_load(GEN_SO, "gen");
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

static void decode(const th_rec *r, const char *prefix, grec *g)
{
    json_t *v = th_mp_to_json(r->value, r->value_len);
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

static grec *decode_all(const th_inst *t, const char *prefix)
{
    grec *g = calloc(t->n_recs ? t->n_recs : 1, sizeof *g);
    assert_non_null(g);
    for (size_t i = 0; i < t->n_recs; i++)
        decode(&t->recs[i], prefix, &g[i]);
    return g;
}

static th_inst *run(const th_param *params, uint32_t sub, uint32_t par)
{
    th_inst *t = th_new(gen_op(), params, sub, par);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_drain(t, 10000000), WEIR_EOF);
    return t;
}

/* ------------------------------------------------------------------------ */

static void test_deterministic(void **state)
{
    const th_param p[] = {{"count", "2000"},  {"keys", "50"},
                          {"seed", "7"},      {"start_ts", "1000"},
                          {"ts_step", "5ms"}, {"key_prefix", "user-"},
                          {"batch", "300"},   {NULL, NULL}};
    const th_param q[] = {{"count", "2000"},  {"keys", "50"},
                          {"seed", "8"},      {"start_ts", "1000"},
                          {"ts_step", "5ms"}, {"key_prefix", "user-"},
                          {NULL, NULL}};
    th_inst *a = run(p, 0, 1), *b = run(p, 0, 1), *c = run(q, 0, 1);
    assert_int_equal(a->n_recs, 2000);
    assert_int_equal(b->n_recs, 2000);
    assert_int_equal(c->n_recs, 2000);
    grec *ga = decode_all(a, "user-"), *gb = decode_all(b, "user-"),
         *gc = decode_all(c, "user-");
    size_t differ = 0;
    for (size_t i = 0; i < 2000; i++) {
        assert_int_equal(ga[i].seq, i);
        assert_int_equal(ga[i].ts, 1000 + 5 * (int64_t)i);
        assert_true(ga[i].k < 50);
        assert_string_equal(ga[i].key, gb[i].key);
        assert_int_equal(ga[i].ts, gb[i].ts);
        assert_int_equal(a->recs[i].port, 0);
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
    th_free(a);
    th_free(b);
    th_free(c);
}

/* The union of P subtasks is exactly the sequence of parallelism 1. */
static void check_split(const char *dist, uint32_t par)
{
    const th_param p[] = {{"count", "1001"}, {"keys", "1000"},
                          {"seed", "42"},    {"distribution", dist},
                          {"batch", "64"},   {NULL, NULL}};
    th_inst *one = run(p, 0, 1);
    grec *g1 = decode_all(one, "k");
    assert_int_equal(one->n_recs, 1001);

    size_t total = 0;
    for (uint32_t i = 0; i < par; i++) {
        th_inst *t = run(p, i, par);
        grec *g = decode_all(t, "k");
        assert_int_equal(t->n_recs, (1001 - i + par - 1) / par);
        for (size_t j = 0; j < t->n_recs; j++) {
            assert_int_equal(g[j].seq, i + j * par);
            assert_string_equal(g[j].key, g1[g[j].seq].key);
            assert_int_equal(g[j].ts, g1[g[j].seq].ts);
        }
        total += t->n_recs;
        free(g);
        th_free(t);
    }
    assert_int_equal(total, 1001);
    free(g1);
    th_free(one);
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
    const th_param p[] = {
        {"count", cbuf}, {"keys", kbuf}, {"distribution", dist},
        {"zipf_s", s},   {"seed", seed}, {"batch", "65536"},
        {NULL, NULL}};
    th_inst *t = run(p, 0, 1);
    assert_int_equal(t->n_recs, (size_t)count);
    uint64_t *h = calloc((size_t)keys, sizeof *h);
    assert_non_null(h);
    for (size_t i = 0; i < t->n_recs; i++) {
        grec g;
        decode(&t->recs[i], "k", &g);
        assert_true(g.k < (uint64_t)keys);
        h[g.k]++;
    }
    th_free(t);
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
    const th_param p[] = {{"count", "20000"},
                          {"keys", "1000000000"},
                          {"distribution", "zipf"},
                          {"batch", "65536"},
                          {NULL, NULL}};
    th_inst *t = run(p, 0, 1);
    uint64_t k0 = 0, small = 0;
    for (size_t i = 0; i < t->n_recs; i++) {
        grec g;
        decode(&t->recs[i], "k", &g);
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
    th_free(t);
}

static void test_single_key(void **state)
{
    const th_param p[] = {{"count", "100"},
                          {"keys", "1"},
                          {"distribution", "zipf"},
                          {NULL, NULL}};
    th_inst *t = run(p, 0, 1);
    for (size_t i = 0; i < t->n_recs; i++)
        assert_memory_equal(t->recs[i].key, "k0", 2);
    th_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_rate(void **state)
{
    const th_param p[] = {{"rate", "1000"}, {"batch", "1024"}, {NULL, NULL}};
    th_inst *t = th_new(gen_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_EAGAIN); /* nothing due at t0 */
    t->now_ms += 10;
    assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(t->n_recs, 10);
    assert_int_equal(th_poll(t), WEIR_EAGAIN);
    t->now_ms += 5000; /* 5000 due; batch limits each poll */
    assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(t->n_recs, 10 + 1024);
    while (th_poll(t) == WEIR_OK)
        ;
    assert_int_equal(t->n_recs, 5010);
    th_free(t);

    /* rate is the total: two subtasks share it. */
    for (uint32_t i = 0; i < 2; i++) {
        t = th_new(gen_op(), p, i, 2);
        assert_int_equal(th_open(t), WEIR_OK);
        assert_int_equal(th_poll(t), WEIR_EAGAIN);
        t->now_ms += 100;
        assert_int_equal(th_poll(t), WEIR_OK);
        assert_int_equal(t->n_recs, 50);
        th_free(t);
    }
}

static void test_eof(void **state)
{
    const th_param p[] = {{"count", "10"}, {"batch", "4"}, {NULL, NULL}};
    th_inst *t = th_new(gen_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(t->n_recs, 10);
    assert_int_equal(th_poll(t), WEIR_EOF);
    assert_int_equal(th_poll(t), WEIR_EOF);
    assert_int_equal(t->n_recs, 10);
    th_free(t);

    /* count smaller than the parallelism: an idle subtask ends at once. */
    const th_param q[] = {{"count", "2"}, {NULL, NULL}};
    t = th_new(gen_op(), q, 3, 4);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_EOF);
    assert_int_equal(t->n_recs, 0);
    th_free(t);
}

static void test_unbounded(void **state)
{
    const th_param p[] = {{"batch", "1000"}, {NULL, NULL}};
    th_inst *t = th_new(gen_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    for (int i = 0; i < 20; i++)
        assert_int_equal(th_poll(t), WEIR_OK);
    assert_int_equal(t->n_recs, 20000);
    th_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_snapshot_restore(void **state)
{
    const th_param p[] = {
        {"count", "1000"}, {"batch", "100"}, {"seed", "5"}, {NULL, NULL}};
    th_inst *full = run(p, 1, 2);
    grec *gf = decode_all(full, "k");

    th_inst *a = th_new(gen_op(), p, 1, 2);
    assert_int_equal(th_open(a), WEIR_OK);
    assert_int_equal(th_poll(a), WEIR_OK);
    assert_int_equal(th_poll(a), WEIR_OK);
    assert_int_equal(th_snapshot(a, 7), WEIR_OK);
    assert_int_equal(a->snap_len, 16);
    assert_int_equal(a->n_recs, 200);

    th_inst *b = th_new(gen_op(), p, 1, 2);
    assert_int_equal(th_open(b), WEIR_OK);
    assert_int_equal(th_restore(b, 7, 1, a->snap, a->snap_len), WEIR_OK);
    assert_int_equal(th_drain(b, 1000), WEIR_EOF);
    assert_int_equal(a->n_recs + b->n_recs, full->n_recs);
    grec *gb = decode_all(b, "k");
    for (size_t i = 0; i < b->n_recs; i++) {
        assert_int_equal(gb[i].seq, gf[200 + i].seq);
        assert_string_equal(gb[i].key, gf[200 + i].key);
    }
    free(gb);
    free(gf);
    th_free(b);
    th_free(full);

    /* Bad snapshots are refused with a reason. */
    th_inst *c = th_new(gen_op(), p, 1, 2);
    assert_int_equal(th_open(c), WEIR_OK);
    assert_int_equal(th_restore(c, 7, 2, a->snap, a->snap_len), WEIR_EINVAL);
    assert_non_null(strstr(c->error, "version 2"));
    assert_int_equal(th_restore(c, 7, 1, a->snap, 15), WEIR_EINVAL);
    assert_non_null(strstr(c->error, "15 bytes"));
    unsigned char bad[16];
    memcpy(bad, a->snap, 16);
    bad[0] ^= 1; /* sequence of the other subtask */
    assert_int_equal(th_restore(c, 7, 1, bad, 16), WEIR_EINVAL);
    assert_non_null(strstr(c->error, "damaged"));
    th_free(c);
    th_inst *d = th_new(gen_op(), p, 0, 3);
    assert_int_equal(th_open(d), WEIR_OK);
    assert_int_equal(th_restore(d, 7, 1, a->snap, a->snap_len), WEIR_EINVAL);
    assert_non_null(strstr(d->error, "rescaled"));
    th_free(d);
    th_free(a);
}

static void test_snapshot_unsupported(void **state)
{
    th_inst *t = th_new(gen_op(), NULL, 0, 1);
    th_disable_snapshot(t);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_snapshot(t, 3), WEIR_ENOTSUP);
    assert_non_null(strstr(t->error, "snapshot"));
    th_free(t);
}

/* ------------------------------------------------------------------------ */

static void expect_open_error(const th_param *p, const char *needle)
{
    th_inst *t = th_new(gen_op(), p, 0, 1);
    assert_int_equal(t->param_rc, WEIR_OK); /* the table accepts it */
    int rc = th_open(t);
    assert_true(rc < 0);
    if (!strstr(t->error, needle))
        fail_msg("error '%s' lacks '%s'", t->error, needle);
    th_free(t);
}

static void test_open_errors(void **state)
{
    const th_param s0[] = {
        {"distribution", "zipf"}, {"zipf_s", "0"}, {NULL, NULL}};
    expect_open_error(s0, "zipf_s");
    char longp[300];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const th_param lp[] = {{"key_prefix", longp}, {NULL, NULL}};
    expect_open_error(lp, "key_prefix");
    const th_param ov[] = {{"count", "10"},
                           {"start_ts", "9223372036854000000"},
                           {"ts_step", "1d"},
                           {NULL, NULL}};
    expect_open_error(ov, "overflows");
    const th_param none[] = {{"start_ts", "-9223372036854775808"},
                             {NULL, NULL}};
    expect_open_error(none, "start_ts");

    /* zipf_s = 0 is fine with the uniform distribution. */
    const th_param ok[] = {{"zipf_s", "0"}, {"count", "1"}, {NULL, NULL}};
    th_free(run(ok, 0, 1));
}

static void test_ts_overflow_unbounded(void **state)
{
    const th_param p[] = {
        {"start_ts", "9223372036854775000"}, {"ts_step", "1s"}, {NULL, NULL}};
    th_inst *t = th_new(gen_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_poll(t), WEIR_EINVAL);
    assert_int_equal(t->n_recs, 1); /* record 0 fits, record 1 does not */
    assert_non_null(strstr(t->error, "overflows"));
    th_free(t);
}

static void test_emit_failure(void **state)
{
    th_inst *t = th_new(gen_op(), NULL, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    t->emit_rc = WEIR_EIO;
    assert_int_equal(th_poll(t), WEIR_EIO);
    assert_non_null(strstr(t->error, "emit"));
    t->emit_rc = 0;
    assert_int_equal(th_poll(t), WEIR_OK);
    grec g;
    decode(&t->recs[0], "k", &g);
    assert_int_equal(g.seq, 0); /* the failed record is not skipped */
    th_free(t);
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
