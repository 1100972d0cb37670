/*
 * test_jsonrec_out.c - the allocation-free writers of plugins/common/
 * jsonrec_out.c against the unpacking path: jrec_mp_bytes_to_json() must
 * write exactly what jrec_mp_to_json() writes from msgpack-c's unpacking,
 * and only for bytes msgpack-c unpacks as one whole object; the short-string
 * path of jrec_json_string() must write what the long-string path writes.
 * Inputs are seeded random msgpack values of every type and mutations of
 * them, so every run checks the same cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonrec.h"
#include "mpscan.h"

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Packs a random value of every msgpack type, containers up to `depth`. */
static void pack_random(msgpack_packer *pk, uint64_t *s, int depth)
{
    static const char bytes[] = "ab\"\\\n\t\x01\x7f\xc3\xa9\xe2\x82\xac\xff"
                                "\xed\xa0\x80z";
    char tmp[40];
    size_t n = rnd(s) % 12;
    for (size_t i = 0; i < n; i++)
        tmp[i] = bytes[rnd(s) % (sizeof bytes - 1)];
    int kind = (int)(rnd(s) % (depth > 0 ? 16 : 13));
    switch (kind) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: msgpack_pack_true(pk); break;
    case 2: msgpack_pack_false(pk); break;
    case 3: msgpack_pack_int64(pk, (int64_t)rnd(s) >> (rnd(s) % 64)); break;
    case 4: msgpack_pack_uint64(pk, rnd(s) >> (rnd(s) % 64)); break;
    case 5: msgpack_pack_int8(pk, (int8_t)rnd(s)); break;
    case 6:
        msgpack_pack_float(pk, (float)((int64_t)rnd(s) % 100000) / 7);
        break;
    case 7: msgpack_pack_double(pk, (double)(int64_t)rnd(s) / 3e9); break;
    case 8:
    case 9:
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, tmp, n);
        break;
    case 10:
        msgpack_pack_bin(pk, n);
        msgpack_pack_bin_body(pk, tmp, n);
        break;
    case 11:
        msgpack_pack_ext(pk, n, (int8_t)(rnd(s) % 100));
        msgpack_pack_ext_body(pk, tmp, n);
        break;
    case 12: {
        /* A long string: str16 and past the direct string limit. */
        size_t len = 200 + rnd(s) % 5000;
        char *big = malloc(len);
        for (size_t i = 0; i < len; i++)
            big[i] = bytes[rnd(s) % (sizeof bytes - 1)];
        msgpack_pack_str(pk, len);
        msgpack_pack_str_body(pk, big, len);
        free(big);
        break;
    }
    case 13: {
        uint32_t items = (uint32_t)(rnd(s) % 20);
        msgpack_pack_array(pk, items);
        for (uint32_t i = 0; i < items; i++)
            pack_random(pk, s, depth - 1);
        break;
    }
    default: {
        uint32_t items = (uint32_t)(rnd(s) % 18);
        msgpack_pack_map(pk, items);
        for (uint32_t i = 0; i < items; i++) {
            if (rnd(s) % 10 == 0) {
                pack_random(pk, s, 0); /* a non-string key */
            } else {
                msgpack_pack_str(pk, n);
                msgpack_pack_str_body(pk, tmp, n);
            }
            pack_random(pk, s, depth - 1);
        }
    }
    }
}

/* Checks data[0..n): returns whether the direct writer took it. */
static int check_bytes(const char *data, size_t n)
{
    jrec_buf fast = {0}, ref = {0};
    jrec_puts(&fast, "<");
    int took = jrec_mp_bytes_to_json(&fast, data, n);
    assert_false(fast.oom);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int ok = mpscan_plausible(data, n) &&
             msgpack_unpack_next(&u, data, n, &off) == MSGPACK_UNPACK_SUCCESS &&
             off == n;
    jrec_puts(&ref, "<");
    if (ok)
        jrec_mp_to_json(&ref, &u.data);
    if (took) {
        if (!ok)
            fail_msg("direct writer took %zu bytes msgpack-c rejects", n);
        if (fast.len != ref.len || memcmp(fast.p, ref.p, ref.len) != 0)
            fail_msg("direct JSON differs:\n%.*s\n%.*s", (int)fast.len, fast.p,
                     (int)ref.len, ref.p);
    } else {
        /* Nothing may be left behind. */
        assert_int_equal(fast.len, 1);
    }
    msgpack_unpacked_destroy(&u);
    jrec_buf_free(&fast);
    jrec_buf_free(&ref);
    return took;
}

static void test_bytes_match_unpacking(void **state)
{
    (void)state;
    uint64_t s = 12345;
    int took = 0, total = 0;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int round = 0; round < 20000; round++) {
        sb.size = 0;
        pack_random(&pk, &s, (int)(rnd(&s) % 4));
        took += check_bytes(sb.data, sb.size);
        total++;
        /* Mutations: truncation, an extra byte, a changed byte. */
        if (sb.size > 1)
            check_bytes(sb.data, sb.size - 1 - rnd(&s) % (sb.size - 1));
        msgpack_sbuffer_write(&sb, "\xc0", 1);
        check_bytes(sb.data, sb.size);
        sb.size--;
        if (sb.size) {
            sb.data[rnd(&s) % sb.size] = (char)rnd(&s);
            check_bytes(sb.data, sb.size);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    /* Most values (all but non-string keys) take the direct path. */
    assert_true(took > total / 2);
}

static void test_depth_and_counts(void **state)
{
    (void)state;
    char buf[64];
    /* 16 nested arrays are written directly, 17 are left to msgpack-c. */
    for (int d = 15; d <= 17; d++) {
        memset(buf, 0x91, (size_t)d);
        buf[d] = 0x01;
        assert_int_equal(check_bytes(buf, (size_t)d + 1), d <= 16);
    }
    /* A container declaring more elements than bytes remain. */
    assert_false(check_bytes("\xdd\x7f\xff\xff\xff\x01", 6));
    assert_false(check_bytes("\xdf\x00\x00\x00\x02\xa1\x61\x01", 8));
    assert_false(check_bytes("\xc1", 1));
    assert_true(check_bytes("\x80", 1));
    assert_true(check_bytes("\x90", 1));
}

/* jrec_json_string() of s, and of s followed by a long ASCII tail (the
 * long-string path), must agree on s's part. */
static void test_string_paths_agree(void **state)
{
    (void)state;
    static const char bytes[] = "aZ \"\\/\n\r\t\b\x01\x1f\x7f\x80\xbf\xc2\xa9"
                                "\xe0\xa0\x80\xed\x9f\xbf\xed\xa0\x80\xf0\x90"
                                "\x80\x80\xf4\x8f\xbf\xbf\xf4\x90\xff";
    enum { TAIL = 5000 };
    char *in = malloc(64 + TAIL);
    uint64_t s = 777;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + rnd(&s) % 48;
        for (size_t i = 0; i < n; i++)
            in[i] = bytes[rnd(&s) % (sizeof bytes - 1)];
        memset(in + n, 'a', TAIL);
        jrec_buf a = {0}, b = {0};
        jrec_json_string(&a, in, n);
        jrec_json_string(&b, in, n + TAIL);
        assert_int_equal(a.len + TAIL, b.len);
        assert_memory_equal(a.p, b.p, a.len - 1);
        assert_int_equal(b.p[b.len - 1], '"');
        jrec_buf_free(&a);
        jrec_buf_free(&b);
    }
    free(in);
    jrec_buf c = {0};
    jrec_json_string(&c, "a\"\\\n\x01\xc3\xa9\xff", 8);
    assert_int_equal(c.len,
                     strlen("\"a\\\"\\\\\\n\\u0001\xc3\xa9\xef\xbf\xbd\""));
    assert_memory_equal(c.p, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\xef\xbf\xbd\"",
                        c.len);
    jrec_buf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_match_unpacking),
        cmocka_unit_test(test_depth_and_counts),
        cmocka_unit_test(test_string_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
