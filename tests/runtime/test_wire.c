/* Unit tests of the channel message format (runtime/wire.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/wire.h"

static void test_batch_roundtrip(void **unused)
{
    wire_batch b;
    wire_reader r;
    wire_batch_init(&b);
    wire_reader_init(&r);
    char key[32], val[64];
    for (int i = 0; i < 1000; i++) {
        int kn = snprintf(key, sizeof key, "key-%d", i);
        memset(val, 'a' + i % 26, sizeof val);
        int64_t ts = i % 7 == 0 ? WEIR_TS_NONE : (int64_t)i * 1000 - 5000;
        assert_int_equal(
            wire_batch_add(&b, key, (size_t)kn, ts, val, (size_t)(i % 64), 1),
            0);
    }
    wire_batch_seal(&b);
    const uint8_t *p = (const uint8_t *)b.buf.data;
    assert_int_equal(p[0], 0x57);
    assert_int_equal(p[1], 1);
    assert_int_equal(p[2], WIRE_DATA);
    wire_msg m;
    assert_int_equal(wire_parse(&r, b.buf.data, b.buf.size, &m, NULL), 0);
    assert_int_equal(m.type, WIRE_DATA);
    assert_int_equal(m.n_records, 1000);
    weir_record rec;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(wire_next(&r, &rec), 1);
        int kn = snprintf(key, sizeof key, "key-%d", i);
        assert_int_equal(rec.key_len, (size_t)kn);
        assert_memory_equal(rec.key, key, (size_t)kn);
        assert_int_equal(rec.value_len, (size_t)(i % 64));
        if (i % 7 == 0)
            assert_true(rec.ts == WEIR_TS_NONE);
        else
            assert_int_equal(rec.ts, (int64_t)i * 1000 - 5000);
    }
    assert_int_equal(wire_next(&r, &rec), 0);
    /* A batch is reusable after reset. */
    wire_batch_reset(&b);
    assert_int_equal(wire_batch_add(&b, "k", 1, 7, "v", 1, 1), 0);
    wire_batch_seal(&b);
    assert_int_equal(wire_parse(&r, b.buf.data, b.buf.size, &m, NULL), 0);
    assert_int_equal(m.n_records, 1);
    wire_reader_destroy(&r);
    wire_batch_destroy(&b);
}

static void test_control_roundtrip(void **unused)
{
    uint8_t buf[64];
    wire_reader r;
    wire_msg m;
    wire_reader_init(&r);
    size_t n = wire_encode_control(buf, sizeof buf, WIRE_EOS, 0, 0);
    assert_int_equal(n, 4);
    assert_int_equal(wire_parse(&r, buf, n, &m, NULL), 0);
    assert_int_equal(m.type, WIRE_EOS);
    n = wire_encode_control(buf, sizeof buf, WIRE_WATERMARK, -12345, 0);
    assert_int_equal(wire_parse(&r, buf, n, &m, NULL), 0);
    assert_int_equal(m.type, WIRE_WATERMARK);
    assert_int_equal(m.arg, -12345);
    n = wire_encode_control(buf, sizeof buf, WIRE_BARRIER, 42, 1700000000000);
    assert_int_equal(wire_parse(&r, buf, n, &m, NULL), 0);
    assert_int_equal(m.type, WIRE_BARRIER);
    assert_int_equal(m.arg, 42);
    assert_int_equal(m.arg2, 1700000000000);
    wire_reader_destroy(&r);
}

/* Every malformed frame is refused with a reason, never read as data. */
static void test_malformed(void **unused)
{
    wire_reader r;
    wire_msg m;
    char *err = NULL;
    wire_reader_init(&r);
    static const uint8_t bad_magic[] = {0x58, 1, 2, 0};
    assert_int_equal(wire_parse(&r, bad_magic, 4, &m, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "magic"));
    static const uint8_t bad_version[] = {0x57, 9, 2, 0};
    assert_int_equal(wire_parse(&r, bad_version, 4, &m, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "version 9"));
    static const uint8_t bad_type[] = {0x57, 1, 77, 0, 0xc0};
    assert_int_equal(wire_parse(&r, bad_type, 5, &m, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "unknown message type 77"));
    assert_int_equal(wire_parse(&r, bad_magic, 2, &m, &err), WEIR_EINVAL);
    /* DATA whose array is not a multiple of three. */
    static const uint8_t bad_count[] = {0x57, 1, 1, 0, 0x92, 0xc4, 0, 0xc0};
    assert_int_equal(wire_parse(&r, bad_count, sizeof bad_count, &m, &err),
                     WEIR_EINVAL);
    /* DATA truncated in the middle of a value. */
    wire_batch b;
    wire_batch_init(&b);
    wire_batch_add(&b, "key", 3, 1, "value", 5, 1);
    wire_batch_seal(&b);
    assert_int_equal(wire_parse(&r, b.buf.data, b.buf.size - 2, &m, &err),
                     WEIR_EINVAL);
    /* Trailing garbage after the body. */
    char longer[256];
    memcpy(longer, b.buf.data, b.buf.size);
    longer[b.buf.size] = 0x01;
    assert_int_equal(wire_parse(&r, longer, b.buf.size + 1, &m, &err),
                     WEIR_EINVAL);
    /* A record whose key is an int instead of bytes. */
    static const uint8_t bad_rec[] = {0x57, 1, 1, 0, 0x93, 0x05, 0x01, 0xc4, 0};
    assert_int_equal(wire_parse(&r, bad_rec, sizeof bad_rec, &m, &err), 0);
    weir_record rec;
    assert_int_equal(wire_next(&r, &rec), WEIR_EINVAL);
    /* An EOS with a body. */
    static const uint8_t eos_body[] = {0x57, 1, 2, 0, 0xc0};
    assert_int_equal(wire_parse(&r, eos_body, 5, &m, &err), WEIR_EINVAL);
    wire_batch_destroy(&b);
    wire_reader_destroy(&r);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_roundtrip),
        cmocka_unit_test(test_control_roundtrip),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
