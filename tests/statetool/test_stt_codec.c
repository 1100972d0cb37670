/*
 * test_stt_codec.c - the offline state tools' byte encodings
 * (statetool/entry.h) and their JSON forms (statetool/mpjson.h), against
 * byte strings and JSON written out by hand from the layouts in
 * state/state.h and state/timers.h, the msgpack specification and RFC 4648.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "statetool/entry.h"
#include "statetool/mpjson.h"

#include "weir/weir.h"

#define B(s) s, sizeof(s) - 1

/* ------------------------------------------------------------------------ */
/* entry.h                                                                   */
/* ------------------------------------------------------------------------ */

static void test_state_key(void **state)
{
    (void)state;
    char buf[64];
    size_t n = ste_key_encode(buf, 0x0102, "ab", 2, "x", 1);
    assert_int_equal(n, 6);
    assert_memory_equal(buf,
                        "\x01\x02\x02"
                        "abx",
                        6);
    ste_key k;
    assert_int_equal(ste_key_parse(buf, n, &k), 0);
    assert_int_equal(k.kg, 0x0102);
    assert_int_equal(k.key_len, 2);
    assert_memory_equal(k.key, "ab", 2);
    assert_int_equal(k.ukey_len, 1);
    assert_memory_equal(k.ukey, "x", 1);
    /* An empty key, no user key. */
    assert_int_equal(ste_key_parse(B("\x00\x07\x00"), &k), 0);
    assert_int_equal(k.kg, 7);
    assert_int_equal(k.key_len, 0);
    assert_int_equal(k.ukey_len, 0);
    /* A 200-byte key: varint 200 = c8 01. */
    char key[200], big[256];
    memset(key, 'k', sizeof key);
    n = ste_key_encode(big, 3, key, sizeof key, NULL, 0);
    assert_int_equal(n, 2 + 2 + 200);
    assert_memory_equal(big, "\x00\x03\xc8\x01", 4);
    assert_int_equal(ste_key_parse(big, n, &k), 0);
    assert_int_equal(k.key_len, 200);
    /* Malformed: too short, length past the end, unterminated varint. */
    assert_int_equal(ste_key_parse(B("\x00\x07"), &k), -1);
    assert_int_equal(ste_key_parse(B("\x00\x07\x05"
                                     "ab"),
                                   &k),
                     -1);
    assert_int_equal(ste_key_parse(B("\x00\x07\x80\x80"), &k), -1);
}

static void test_value_and_list(void **state)
{
    (void)state;
    int64_t stamp;
    const char *b;
    size_t n;
    assert_int_equal(ste_value_parse(B("\x7f\xff\xff\xff\xff\xff\xff\xff"
                                       "hi"),
                                     &stamp, &b, &n),
                     0);
    assert_true(stamp == INT64_MAX);
    assert_int_equal(n, 2);
    assert_memory_equal(b, "hi", 2);
    assert_int_equal(
        ste_value_parse(B("\x00\x00\x00\x00\x00\x00\x03\xe8"), &stamp, &b, &n),
        0);
    assert_int_equal(stamp, 1000);
    assert_int_equal(n, 0);
    assert_int_equal(ste_value_parse(B("\x00\x01"), &stamp, &b, &n), -1);

    char buf[32];
    size_t len = ste_list_elem_encode(buf, "a", 1);
    len += ste_list_elem_encode(buf + len, "", 0);
    len += ste_list_elem_encode(buf + len, "bcd", 3);
    assert_int_equal(len, 7);
    assert_memory_equal(buf,
                        "\x01"
                        "a"
                        "\x00"
                        "\x03"
                        "bcd",
                        7);
}

typedef struct elems {
    char joined[64];
    int n;
} elems;

static int join_elem(void *arg, const char *e, size_t len)
{
    elems *x = arg;
    size_t at = strlen(x->joined);
    memcpy(x->joined + at, e, len);
    x->joined[at + len] = '|';
    x->joined[at + len + 1] = 0;
    x->n++;
    return 0;
}

static void test_list_each(void **state)
{
    (void)state;
    elems x = {{0}, 0};
    assert_int_equal(ste_list_each(B("\x01"
                                     "a"
                                     "\x00"
                                     "\x03"
                                     "bcd"),
                                   join_elem, &x),
                     0);
    assert_int_equal(x.n, 3);
    assert_string_equal(x.joined, "a||bcd|");
    elems y = {{0}, 0};
    assert_int_equal(ste_list_each(B("\x01"
                                     "a"
                                     "\x03"
                                     "b"),
                                   join_elem, &y),
                     -1);
    assert_int_equal(y.n, 1);
    assert_int_equal(ste_list_each("", 0, join_elem, &y), 0);
}

static void test_timer_key(void **state)
{
    (void)state;
    char buf[64];
    /* Event time, ts -5: big-endian with the sign bit flipped. */
    size_t n = ste_timer_encode(buf, 1, -5, 7, "k", 1);
    const char want[] = "\x01\x7f\xff\xff\xff\xff\xff\xff\xfb\x00\x07\x01k";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(buf, want, n);
    ste_timer t;
    assert_int_equal(ste_timer_parse(buf, n, &t), 0);
    assert_int_equal(t.domain, 1);
    assert_int_equal(t.ts, -5);
    assert_int_equal(t.kg, 7);
    assert_int_equal(t.key_len, 1);
    assert_memory_equal(t.key, "k", 1);
    /* Processing time 1000: 80 00 .. 03 e8. */
    n = ste_timer_encode(buf, 0, 1000, 0x1234, "", 0);
    assert_memory_equal(buf, "\x00\x80\x00\x00\x00\x00\x00\x03\xe8\x12\x34\x00",
                        n);
    /* Domain 2, a byte too many, too short. */
    buf[0] = 2;
    assert_int_equal(ste_timer_parse(buf, n, &t), -1);
    assert_int_equal(ste_timer_parse(want, sizeof want, &t), -1);
    assert_int_equal(ste_timer_parse(want, 10, &t), -1);
}

static void test_index_key(void **state)
{
    (void)state;
    char buf[64];
    size_t n = ste_index_encode(buf, 0, 1000, 3, "\x00\x07\x01k", 4);
    const char want[] =
        "\x00\x80\x00\x00\x00\x00\x00\x03\xe8\x00\x03\x00\x07\x01k";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(buf, want, n);
    ste_index ix;
    assert_int_equal(ste_index_parse(buf, n, &ix), 0);
    assert_int_equal(ix.domain, 0);
    assert_int_equal(ix.stamp, 1000);
    assert_int_equal(ix.sid, 3);
    assert_int_equal(ix.skey_len, 4);
    /* The state key inside must parse. */
    assert_int_equal(ste_index_parse(want, 13, &ix), -1);

    uint16_t id;
    uint8_t kind;
    uint32_t format = 99;
    char meta[7];
    ste_meta_encode(meta, 0x0203, WEIR_STATE_MAP, 0x01020304);
    assert_memory_equal(meta, "\x02\x03\x02\x01\x02\x03\x04", 7);
    assert_int_equal(ste_meta_parse(meta, 7, &id, &kind, &format), 0);
    assert_int_equal(id, 0x0203);
    assert_int_equal(kind, WEIR_STATE_MAP);
    assert_int_equal(format, 0x01020304);
    /* A record of a host without format versions: version 0. */
    assert_int_equal(ste_meta_parse(meta, 3, &id, &kind, &format), 0);
    assert_int_equal(id, 0x0203);
    assert_int_equal(format, 0);
    assert_int_equal(ste_meta_parse(meta, 2, &id, &kind, &format), -1);
}

static void test_delta(void **state)
{
    (void)state;
    /* A value (state 1, key "\0\7\1k", stamp 42, "hi") and a deletion
     * (state 2, key "z"). */
    const char d[] = "WSD1"
                     "\x00\x01\x00\x00\x00\x00\x04\x00\x07\x01k"
                     "\x00\x00\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x02hi"
                     "\x00\x02\x01\x00\x00\x00\x01z";
    ste_delta_ent *e = NULL;
    size_t n = 0, bad = 99;
    assert_int_equal(ste_delta_parse(d, sizeof d - 1, &e, &n, &bad), 0);
    assert_int_equal(n, 2);
    assert_int_equal(e[0].sid, 1);
    assert_false(e[0].del);
    assert_int_equal(e[0].key_len, 4);
    assert_memory_equal(e[0].key, "\x00\x07\x01k", 4);
    assert_int_equal(e[0].stamp, 42);
    assert_int_equal(e[0].val_len, 2);
    assert_memory_equal(e[0].val, "hi", 2);
    assert_int_equal(e[1].sid, 2);
    assert_true(e[1].del);
    assert_memory_equal(e[1].key, "z", 1);
    free(e);
    /* The magic alone: no entry. */
    assert_int_equal(ste_delta_parse(B("WSD1"), &e, &n, &bad), 0);
    assert_int_equal(n, 0);
    /* Bad magic; the value cut short (the second entry starts at 4 + 30). */
    assert_int_equal(ste_delta_parse(B("WSD2"), &e, &n, &bad), -1);
    assert_int_equal(bad, 0);
    assert_int_equal(ste_delta_parse(d, 4 + 11 + 10, &e, &n, &bad), -1);
    assert_int_equal(bad, 4);
    assert_int_equal(ste_delta_parse(d, sizeof d - 2, &e, &n, &bad), -1);
    assert_int_equal(bad, 4 + 11 + 14);
}

/* ------------------------------------------------------------------------ */
/* mpjson.h                                                                  */
/* ------------------------------------------------------------------------ */

static void test_base64(void **state)
{
    (void)state;
    const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *coded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                           "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e = mpj_base64_encode(plain[i], strlen(plain[i]));
        assert_string_equal(e, coded[i]);
        free(e);
        char *d = NULL;
        size_t n = 0;
        assert_int_equal(mpj_base64_decode(coded[i], strlen(coded[i]), &d, &n),
                         0);
        assert_int_equal(n, strlen(plain[i]));
        assert_memory_equal(d, plain[i], n);
        free(d);
    }
    const char *bad[] = {"Zg=",  "Z===", "Zm9v!A==",
                         "Zg=a", "=g==", "Zm9vYg==Zg==" /* padding inside */};
    for (int i = 0; i < 6; i++) {
        char *d = NULL;
        size_t n = 0;
        assert_int_equal(mpj_base64_decode(bad[i], strlen(bad[i]), &d, &n),
                         WEIR_EINVAL);
        assert_null(d);
    }
}

/* Compares j with the JSON text `want` and drops j. */
static void json_is(json_t *j, const char *want)
{
    assert_non_null(j);
    json_error_t e;
    json_t *w = json_loads(want, JSON_DECODE_ANY, &e);
    assert_non_null(w);
    if (!json_equal(j, w)) {
        char *got = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, want %s", got, want);
    }
    json_decref(w);
    json_decref(j);
}

static void test_bytes_json(void **state)
{
    (void)state;
    json_is(mpj_bytes("abc", 3), "\"abc\"");
    json_is(mpj_bytes("", 0), "\"\"");
    json_is(mpj_bytes("\xff\xfe", 2), "{\"$base64\": \"//4=\"}");
}

static void test_msgpack_to_json(void **state)
{
    (void)state;
    json_is(mpj_value(B("\x93\x01\xa1x\xc0")), "[1, \"x\", null]");
    json_is(mpj_value(B("\x82\xa1"
                        "a\x01\x01\xc3")),
            "{\"a\": 1, \"1\": true}");
    json_is(mpj_value(B("\xd0\x85")), "-123");
    json_is(mpj_value(B("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00")), "1.5");
    json_is(mpj_value(B("\xc4\x02\x00\xff")), "{\"$base64\": \"AP8=\"}");
    json_is(mpj_value(B("\xcf\xff\xff\xff\xff\xff\xff\xff\xff")),
            "{\"$uint64\": \"18446744073709551615\"}");
    json_is(mpj_value(B("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01")),
            "{\"$float\": \"nan\"}");
    json_is(mpj_value(B("\xd4\x05\x41")),
            "{\"$ext\": 5, \"$base64\": \"QQ==\"}");
    /* A str that is not UTF-8 shows as base64 of its bytes. */
    json_is(mpj_value(B("\x91\xa2\xc3\x28")), "[{\"$base64\": \"wyg=\"}]");
    /* Not exactly one msgpack object: count's 8-byte big-endian counter
     * (fixint 0 and seven bytes left over), a huge declared array, the
     * unused type byte, an empty value, a truncated str. */
    json_is(mpj_value(B("\x00\x00\x00\x00\x00\x00\x00\x05")),
            "{\"$base64\": \"AAAAAAAAAAU=\"}");
    json_is(mpj_value(B("\xdd\xff\xff\xff\xff")),
            "{\"$base64\": \"3f////8=\"}");
    json_is(mpj_value(B("\xc1")), "{\"$base64\": \"wQ==\"}");
    json_is(mpj_value("", 0), "{\"$base64\": \"\"}");
    json_is(mpj_value(B("\xa3"
                        "ab")),
            "{\"$base64\": \"o2Fi\"}");
    assert_null(mpj_from_msgpack(B("\x01\x02")));
}

static void bytes_are(const char *got, size_t n, const char *want, size_t wn)
{
    assert_int_equal(n, wn);
    assert_memory_equal(got, want, n);
}

static void pack_is(const char *json, const char *want, size_t wn)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    assert_non_null(v);
    char *out = NULL, *err = NULL;
    size_t n = 0;
    assert_int_equal(mpj_to_msgpack(v, &out, &n, &err), 0);
    bytes_are(out, n, want, wn);
    /* And back. */
    json_t *back = mpj_value(out, n);
    assert_true(json_equal(back, v));
    json_decref(back);
    json_decref(v);
    free(out);
}

static void pack_fails(const char *json, const char *needle)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    assert_non_null(v);
    char *out = NULL, *err = NULL;
    size_t n = 0;
    assert_int_equal(mpj_to_msgpack(v, &out, &n, &err), WEIR_EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, needle));
    free(err);
    json_decref(v);
}

static void test_json_to_msgpack(void **state)
{
    (void)state;
    pack_is("{\"a\": [1, -1, 1.5, \"s\", null, true]}",
            B("\x81\xa1"
              "a\x96\x01\xff\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"
              "\xa1s\xc0\xc3"));
    pack_is("{\"$base64\": \"AP8=\"}", B("\xc4\x02\x00\xff"));
    pack_is("{\"$ext\": 5, \"$base64\": \"QQ==\"}", B("\xd4\x05\x41"));
    pack_is("{\"$uint64\": \"18446744073709551615\"}",
            B("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"));
    pack_is("300", B("\xcd\x01\x2c"));
    pack_is("{}", B("\x80"));
    pack_fails("{\"$base64\": \"!!\"}", "not base64");
    pack_fails("{\"$ext\": 300, \"$base64\": \"QQ==\"}", "-128 to 127");
    pack_fails("{\"$uint64\": \"-1\"}", "decimal");
    pack_fails("{\"$float\": \"big\"}", "nan, inf");
    char deep[200] = {0};
    for (int i = 0; i < 70; i++)
        deep[i] = '[', deep[140 - 1 - i] = ']';
    pack_fails(deep, "nested deeper");
}

static void test_value_formats(void **state)
{
    (void)state;
    mpj_format f;
    assert_int_equal(mpj_format_parse("int64", &f), 0);
    assert_int_equal(f, MPJ_INT64);
    assert_int_equal(mpj_format_parse("json", &f), -1);
    json_is(mpj_value_as(B("\x00\x00\x00\x00\x00\x00\x00\x05"), MPJ_INT64),
            "5");
    json_is(mpj_value_as(B("\xff\xff\xff\xff\xff\xff\xff\xfe"), MPJ_INT64),
            "-2");
    json_is(mpj_value_as(B("\x00\x05"), MPJ_INT64), "{\"$base64\": \"AAU=\"}");
    json_is(mpj_value_as(B("\x01"), MPJ_BASE64), "{\"$base64\": \"AQ==\"}");

    char *out = NULL, *err = NULL;
    size_t n = 0;
    json_t *v = json_integer(-2);
    assert_int_equal(mpj_value_from(v, MPJ_INT64, &out, &n, &err), 0);
    bytes_are(out, n, B("\xff\xff\xff\xff\xff\xff\xff\xfe"));
    free(out);
    json_decref(v);
    v = json_string("x");
    assert_int_equal(mpj_value_from(v, MPJ_INT64, &out, &n, &err), WEIR_EINVAL);
    free(err);
    err = NULL;
    json_decref(v);
    v = json_string("AP8=");
    assert_int_equal(mpj_value_from(v, MPJ_BASE64, &out, &n, &err), 0);
    bytes_are(out, n, B("\x00\xff"));
    free(out);
    json_decref(v);
}

static void key_is(const char *json, const char *want, size_t wn)
{
    json_error_t e;
    json_t *v = json_loads(json, JSON_DECODE_ANY, &e);
    char *out = NULL, *err = NULL;
    size_t n = 0;
    int rc = mpj_key_bytes(v, &out, &n, &err);
    if (want) {
        assert_int_equal(rc, 0);
        bytes_are(out, n, want, wn);
    } else {
        assert_int_equal(rc, WEIR_EINVAL);
        assert_non_null(err);
    }
    free(out);
    free(err);
    json_decref(v);
}

static void test_key_bytes(void **state)
{
    (void)state;
    key_is("\"u1\"", B("u1"));
    key_is("42", B("42"));
    key_is("-7", B("-7"));
    key_is("{\"$base64\": \"AP8=\"}", B("\x00\xff"));
    key_is("1.5", NULL, 0);
    key_is("[]", NULL, 0);
    key_is("null", NULL, 0);
    key_is("{\"a\": 1}", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_key),
        cmocka_unit_test(test_value_and_list),
        cmocka_unit_test(test_list_each),
        cmocka_unit_test(test_timer_key),
        cmocka_unit_test(test_index_key),
        cmocka_unit_test(test_delta),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_bytes_json),
        cmocka_unit_test(test_msgpack_to_json),
        cmocka_unit_test(test_json_to_msgpack),
        cmocka_unit_test(test_value_formats),
        cmocka_unit_test(test_key_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
