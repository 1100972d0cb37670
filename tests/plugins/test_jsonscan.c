/*
 * test_jsonscan.c - the one-pass JSON converter (plugins/common/jsonscan.c)
 * against jansson: whenever jscan_json_to_mp() accepts a text, jansson must
 * accept it too, the msgpack must be byte for byte what jrec_json_to_mp()
 * packs from jansson's document, and the fields it reports must be the
 * values jansson finds. Lines of the common subset must take the fast path;
 * lines outside it (escapes, repeated keys, deep nesting, big integers,
 * invalid JSON) must not. A seeded mutation loop checks the same on many
 * texts near valid ones.
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

#include "jsonrec.h"
#include "jsonscan.h"

/* jrec_json_to_mp() of p[0..n) into a fresh buffer; 0 when jansson fails. */
static int slow_pack(const char *p, size_t n, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    char why[JREC_WHY];
    return jrec_json_to_mp(p, n, &pk, why) == 0;
}

/* Checks field f against jansson's value of the same top-level field. */
static void check_field(const char *p, size_t n, const jscan_field *f)
{
    json_t *obj = json_loadb(p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_non_null(obj);
    json_t *v = json_object_getn(obj, f->name, f->name_len);
    if (!v) {
        assert_int_equal(f->type, JSCAN_ABSENT);
    } else if (json_is_string(v)) {
        assert_int_equal(f->type, JSCAN_STR);
        assert_int_equal(f->len, json_string_length(v));
        assert_memory_equal(f->s, json_string_value(v), f->len);
    } else if (json_is_integer(v)) {
        assert_int_equal(f->type, JSCAN_INT);
        assert_true(f->i == (int64_t)json_integer_value(v));
    } else if (json_is_real(v)) {
        assert_int_equal(f->type, JSCAN_REAL);
        assert_memory_equal(&f->d, &(double){json_real_value(v)},
                            sizeof(double));
    } else {
        assert_int_equal(f->type, JSCAN_OTHER);
    }
    json_decref(obj);
}

/* Runs both converters on p[0..n); returns whether the fast one took it,
 * after checking that it agrees with jansson when it did. */
static int compare(const char *p, size_t n)
{
    weir_mp_writer w;
    weir_mp_writer_init(&w);
    jscan_field f[3] = {{.name = "user", .name_len = 4},
                        {.name = "ts", .name_len = 2},
                        {.name = "", .name_len = 0}};
    int fast = jscan_json_to_mp(p, n, &w, f, 3);
    if (fast) {
        msgpack_sbuffer slow;
        if (!slow_pack(p, n, &slow))
            fail_msg("fast path accepted what jansson rejects: %.*s", (int)n,
                     p);
        if (slow.size != w.buf.size || memcmp(slow.data, w.buf.data, slow.size))
            fail_msg("msgpack differs from jansson's for: %.*s", (int)n, p);
        msgpack_sbuffer_destroy(&slow);
        for (int k = 0; k < 3; k++)
            check_field(p, n, &f[k]);
    }
    weir_mp_writer_destroy(&w);
    return fast;
}

static int compare_s(const char *s)
{
    return compare(s, strlen(s));
}

static void test_subset_takes_fast_path(void **state)
{
    (void)state;
    static const char *const fast[] = {
        ("{\"user\":\"u1\",\"ts\":1700000000000,\"type\":\"view\",\"page\":"
         "\"p7\"}"),
        "  {} ",
        "{\"a\":[],\"b\":{},\"c\":[[]],\"d\":[{}]}",
        "{ \"user\" : 42 , \"ts\" : -0 }",
        "{\"user\":-123456789012345678,\"x\":true,\"y\":false,\"z\":null}",
        "{\"user\":1.5,\"ts\":1e3,\"r\":-0.0,\"s\":2.5E-3,\"t\":1E+2}",
        "{\"user\":\"caf\xc3\xa9\",\"k\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}",
        "{\"\":1,\"user\":\"\"}",
        "{\"a\":{\"a\":{\"a\":1}},\"b\":{\"a\":2}}",
        "\t{\"a\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}\r\n",
        "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"user\":[1,{\"q\":\"x\"}]}",
        ("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,"
         "\"i\":9,\"j\":10,\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":"
         "16,\"q\":17}"),
    };
    for (size_t i = 0; i < sizeof fast / sizeof *fast; i++)
        if (!compare_s(fast[i]))
            fail_msg("not on the fast path: %s", fast[i]);
    /* Containers of 0..20 elements and members: every header form
     * around the fixarray/fixmap limit of 15. */
    for (int k = 0; k <= 20; k++) {
        char p[512];
        size_t n = (size_t)snprintf(p, sizeof p, "{\"arr\":[");
        for (int i = 0; i < k; i++)
            n += (size_t)snprintf(p + n, sizeof p - n, i ? ",%d" : "%d", i);
        n += (size_t)snprintf(p + n, sizeof p - n, "],\"obj\":{");
        for (int i = 0; i < k; i++)
            n += (size_t)snprintf(p + n, sizeof p - n, "%s\"m%d\":%d",
                                  i ? "," : "", i, i);
        n += (size_t)snprintf(p + n, sizeof p - n, "}}");
        assert_true(compare(p, n));
    }
}

static void test_big_containers(void **state)
{
    (void)state;
    /* 70000 elements and a 300-member object: array32 and map16 headers,
     * and more keys than the fast path tracks. */
    size_t cap = 70000 * 2 + 64;
    char *p = malloc(cap);
    size_t n = (size_t)snprintf(p, cap, "{\"user\":\"u\",\"arr\":[");
    for (int i = 0; i < 70000; i++)
        n += (size_t)snprintf(p + n, cap - n, i ? ",0" : "0");
    n += (size_t)snprintf(p + n, cap - n, "]}");
    assert_true(compare(p, n));
    for (int members = 200; members <= 300; members += 100) {
        n = (size_t)snprintf(p, cap, "{");
        for (int i = 0; i < members; i++)
            n += (size_t)snprintf(p + n, cap - n, "%s\"k%d\":%d", i ? "," : "",
                                  i, i);
        n += (size_t)snprintf(p + n, cap - n, "}");
        /* Beyond JSCAN_MAX_KEYS the full parser takes it. */
        assert_int_equal(compare(p, n), members <= JSCAN_MAX_KEYS);
    }
    free(p);
}

/* compare() of {"a": d nested arrays}, 1 + d containers. */
static int compare_nested(int d)
{
    char p[128];
    size_t n = (size_t)snprintf(p, sizeof p, "{\"a\":");
    for (int i = 0; i < d; i++)
        p[n++] = '[';
    for (int i = 0; i < d; i++)
        p[n++] = ']';
    p[n++] = '}';
    return compare(p, n);
}

static void test_outside_subset_falls_back(void **state)
{
    (void)state;
    static const char *const slow[] = {
        "{\"user\":\"a\\\"b\"}",          /* escape */
        "{\"user\":\"\\u00e9\"}",         /* escape */
        "{\"a\":1,\"a\":2}",              /* repeated key */
        "{\"o\":{\"b\":1,\"b\":1}}",      /* repeated nested key */
        "{\"user\":1234567890123456789}", /* 19 digits */
        "{\"user\":1e999}",               /* overflow */
        "{\"user\":1e-400}",              /* underflow */
        "[1,2]",                          /* not an object */
        "\"x\"",
        "{\"a\":1,}", /* invalid JSON from here */
        "{\"a\":[1,]}",
        "{\"a\" 1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":-}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":nul}",
        "{\"a\":1} x",
        "{\"a\":1}}",
        "{\"a\":1",
        "{\"a\":\"x",
        "{\"a\":\"\x01\"}",             /* control character */
        "{\"a\":\"\xc3\"}",             /* truncated UTF-8 */
        "{\"a\":\"\xc0\xaf\"}",         /* overlong */
        "{\"a\":\"\xed\xa0\x80\"}",     /* surrogate */
        "{\"a\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"a\":\"\xff\"}",
        "{\"a\":1}\f",
        "{'a':1}",
        "",
        " ",
    };
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++)
        if (compare_s(slow[i]))
            fail_msg("took the fast path: %s", slow[i]);
    assert_false(compare_nested(32)); /* 33 containers: too deep */
    assert_true(compare_nested(31));  /* 32 are within msgpack-c's limit */
}

/* xorshift64*, seeded: the same mutations on every run. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void test_mutations_agree_with_jansson(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        ("{\"user\":\"u17\",\"ts\":1700000000123,\"type\":\"buy\",\"page\":"
         "\"p9\"}"),
        "{\"user\":12,\"ts\":1.5e3,\"n\":[1,-2,3.25,{\"x\":null}],\"b\":true}",
        "{\"user\":\"\xc3\xa9\xe2\x82\xac\",\"o\":{\"p\":{\"q\":[[],{}]}}}",
    };
    static const char alphabet[] = "{}[]\":,0123456789-+.eEtrufalsn \t\\x\x01"
                                   "\x80\xc3\xa9\xe2\xed\xf0\xf4\xff";
    uint64_t s = 0x9E3779B97F4A7C15u;
    int fast = 0, total = 0;
    char buf[256];
    for (int round = 0; round < 60000; round++) {
        const char *seed = seeds[rnd(&s) % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd(&s) % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = n ? rnd(&s) % n : 0;
            char c = alphabet[rnd(&s) % (sizeof alphabet - 1)];
            switch (rnd(&s) % 3) {
            case 0: buf[at] = c; break;
            case 1:
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            default:
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        fast += compare(buf, n);
        total++;
    }
    /* Some mutations keep the text valid and inside the subset. */
    assert_true(fast > 100);
    assert_true(fast < total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subset_takes_fast_path),
        cmocka_unit_test(test_big_containers),
        cmocka_unit_test(test_outside_subset_falls_back),
        cmocka_unit_test(test_mutations_agree_with_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
