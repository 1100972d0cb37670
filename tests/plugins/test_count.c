/*
 * test_count.c - the count operator: running counts against an oracle kept
 * by the test, many keys (table growth), binary and empty keys, emit=none,
 * and emit failures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "th.h"

static const weir_operator *count_op(void)
{
    return th_load(COUNT_SO, "count");
}

static th_inst *open_count(const th_param *p)
{
    th_inst *t = th_new(count_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    return t;
}

/* The emitted record i must be (key, ts, {"key": key, "count": want}). */
static void check_out(const th_inst *t, size_t i, const void *key, size_t klen,
                      int64_t ts, int64_t want)
{
    const th_rec *r = &t->recs[i];
    assert_int_equal(r->port, 0);
    assert_int_equal(r->key_len, klen);
    assert_memory_equal(r->key, key, klen);
    assert_int_equal(r->ts, ts);
    json_t *v = th_mp_to_json(r->value, r->value_len);
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 2);
    json_t *k = json_object_get(v, "key");
    assert_int_equal(json_string_length(k), klen);
    assert_memory_equal(json_string_value(k), key, klen);
    assert_int_equal(json_integer_value(json_object_get(v, "count")), want);
    json_decref(v);
}

static void test_running_counts(void **state)
{
    enum { KEYS = 200, N = 5000 };
    int64_t oracle[KEYS] = {0};
    th_inst *t = open_count(NULL);
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = (int)((x >> 33) % KEYS);
        char key[16];
        int kl = snprintf(key, sizeof key, "user%d", k);
        assert_int_equal(th_process(t, key, (size_t)kl, 1000 + i, "\x80", 1),
                         WEIR_OK);
        check_out(t, (size_t)i, key, (size_t)kl, 1000 + i, ++oracle[k]);
    }
    assert_int_equal(t->n_recs, N);
    th_free(t);
}

static void test_many_keys(void **state)
{
    enum { N = 50000 };
    th_inst *t = open_count(NULL);
    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < N; i++) {
            char key[16];
            int kl = snprintf(key, sizeof key, "%d", i);
            assert_int_equal(
                th_process(t, key, (size_t)kl, WEIR_TS_NONE, NULL, 0), 0);
        }
    }
    assert_int_equal(t->n_recs, 2 * N);
    for (int i = 0; i < N; i += 997) {
        char key[16];
        int kl = snprintf(key, sizeof key, "%d", i);
        check_out(t, (size_t)i, key, (size_t)kl, WEIR_TS_NONE, 1);
        check_out(t, (size_t)(N + i), key, (size_t)kl, WEIR_TS_NONE, 2);
    }
    th_free(t);
}

static void test_binary_keys(void **state)
{
    th_inst *t = open_count(NULL);
    const struct {
        const char *k;
        size_t n;
        int64_t want;
    } seq[] = {
        {"a\0b", 3, 1}, {"a\0c", 3, 1}, {"", 0, 1},     {"a", 1, 1},
        {"a\0b", 3, 2}, {"", 0, 2},     {"\xff", 1, 1}, {"a\0c", 3, 2},
    };
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        assert_int_equal(th_process(t, seq[i].k, seq[i].n, 7, "", 0), 0);
        check_out(t, i, seq[i].k, seq[i].n, 7, seq[i].want);
    }
    th_free(t);
}

static void test_emit_none(void **state)
{
    const th_param p[] = {{"emit", "none"}, {NULL, NULL}};
    th_inst *t = open_count(p);
    for (int i = 0; i < 100; i++)
        assert_int_equal(th_process(t, "k", 1, i, "", 0), 0);
    assert_int_equal(th_finish(t), WEIR_OK);
    assert_int_equal(t->n_recs, 0);
    th_free(t);
}

static void test_emit_failure(void **state)
{
    th_inst *t = open_count(NULL);
    t->emit_rc = WEIR_ERETRY;
    assert_int_equal(th_process(t, "k", 1, 0, "", 0), WEIR_ERETRY);
    assert_non_null(strstr(t->error, "emit failed"));
    t->emit_rc = 0;
    assert_int_equal(th_process(t, "k", 1, 0, "", 0), 0);
    check_out(t, 0, "k", 1, 0, 2);
    th_free(t);
}

static void test_carry_field(void **state)
{
    /* {"created_ns": 123, "x": "y"} */
    const char v1[] = "\x82\xaa"
                      "created_ns"
                      "\x7b\xa1x\xa1y";
    /* {"created_ns": "123"} */
    const char v2[] = "\x81\xaa"
                      "created_ns"
                      "\xa3"
                      "123";
    th_inst *t = open_count(NULL);
    assert_int_equal(th_process(t, "k", 1, 1, v1, sizeof v1 - 1), 0);
    assert_int_equal(th_process(t, "k", 1, 1, v2, sizeof v2 - 1), 0);
    json_t *o = th_mp_to_json(t->recs[0].value, t->recs[0].value_len);
    assert_int_equal(json_object_size(o), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "created_ns")), 123);
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 1);
    json_decref(o);
    check_out(t, 1, "k", 1, 1, 2); /* not an integer: not carried */
    th_free(t);

    const th_param other[] = {{"carry_field", "x"}, {NULL, NULL}};
    t = open_count(other);
    assert_int_equal(th_process(t, "k", 1, 1, v1, sizeof v1 - 1), 0);
    check_out(t, 0, "k", 1, 1, 1); /* "x" is a string */
    th_free(t);

    const th_param none[] = {{"carry_field", ""}, {NULL, NULL}};
    t = open_count(none);
    assert_int_equal(th_process(t, "k", 1, 1, v1, sizeof v1 - 1), 0);
    check_out(t, 0, "k", 1, 1, 1);
    th_free(t);

    const th_param clash[] = {{"carry_field", "count"}, {NULL, NULL}};
    t = th_new(count_op(), clash, 0, 1);
    assert_int_equal(th_open(t), WEIR_EINVAL);
    assert_non_null(strstr(t->error, "carry_field"));
    th_free(t);
}

static void test_bad_param(void **state)
{
    const th_param p[] = {{"emit", "sometimes"}, {NULL, NULL}};
    th_inst *t = th_new(count_op(), p, 0, 1);
    assert_int_equal(t->param_rc, WEIR_EINVAL); /* refused by the table */
    th_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_running_counts),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_emit_none),
        cmocka_unit_test(test_emit_failure),
        cmocka_unit_test(test_carry_field),
        cmocka_unit_test(test_bad_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
