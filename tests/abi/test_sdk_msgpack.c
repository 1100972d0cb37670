/*
 * test_sdk_msgpack - the SDK's msgpack helpers (weir/msgpack.h) on hostile
 * bytes: a value whose containers declare more elements than it has bytes
 * is refused by weir_mp_plausible() and weir_mp_read() without the
 * allocation msgpack-c would attempt; good values of every kind still read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "weir/msgpack.h"

/* A 5-byte array32 that declares 2^31 elements: msgpack-c would allocate
 * 2^31 objects (tens of GiB) before noticing the bytes end. */
static const unsigned char bomb_array[] = {0xdd, 0x80, 0x00, 0x00, 0x00};
/* A map32 declaring 2^32-1 pairs, then one pair. */
static const unsigned char bomb_map[] = {0xdf, 0xff, 0xff, 0xff,
                                         0xff, 0xa1, 'k',  0x01};
/* Nested: a fixmap whose value declares 2^16-1 elements. */
static const unsigned char bomb_nested[] = {0x81, 0xa1, 'a', 0xdc,
                                            0xff, 0xff, 0x01};

static void test_bombs_refused(void **unused)
{
    (void)unused;
    /* With a 512 MiB address-space limit a real allocation attempt of that
     * size would fail: the reader must not even try. */
    struct rlimit old, lim = {512u << 20, 512u << 20};
    getrlimit(RLIMIT_AS, &old);
    lim.rlim_max = old.rlim_max;
#if defined(__SANITIZE_ADDRESS__)
    int limited = 0; /* ASan's shadow memory needs the address space */
    (void)lim;
#else
    int limited = setrlimit(RLIMIT_AS, &lim) == 0;
#endif
    weir_mp_reader r;
    weir_mp_reader_init(&r);
    assert_false(weir_mp_plausible(bomb_array, sizeof bomb_array));
    assert_null(weir_mp_read(&r, bomb_array, sizeof bomb_array));
    assert_false(weir_mp_plausible(bomb_map, sizeof bomb_map));
    assert_null(weir_mp_read(&r, bomb_map, sizeof bomb_map));
    assert_false(weir_mp_plausible(bomb_nested, sizeof bomb_nested));
    assert_null(weir_mp_read(&r, bomb_nested, sizeof bomb_nested));
    /* Truncated, trailing bytes, the unused code 0xc1, empty. */
    static const unsigned char trunc[] = {0x92, 0x01};
    static const unsigned char trailing[] = {0x01, 0x02};
    static const unsigned char c1[] = {0xc1};
    assert_null(weir_mp_read(&r, trunc, sizeof trunc));
    assert_false(weir_mp_plausible(trailing, sizeof trailing));
    assert_null(weir_mp_read(&r, c1, sizeof c1));
    assert_null(weir_mp_read(&r, "", 0));
    weir_mp_reader_destroy(&r);
    if (limited)
        setrlimit(RLIMIT_AS, &old);
}

static void test_good_values_read(void **unused)
{
    (void)unused;
    weir_mp_writer w;
    weir_mp_writer_init(&w);
    msgpack_packer *pk = &w.pk;
    msgpack_pack_map(pk, 4);
    weir_mp_pack_str(pk, "user");
    weir_mp_pack_str(pk, "u1");
    weir_mp_pack_str(pk, "n");
    msgpack_pack_int64(pk, -3);
    weir_mp_pack_str(pk, "xs");
    msgpack_pack_array(pk, 3);
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_nil(pk);
    msgpack_pack_bin(pk, 2);
    msgpack_pack_bin_body(pk, "\x00\x01", 2);
    weir_mp_pack_str(pk, "big");
    msgpack_pack_uint64(pk, 1ull << 40);
    assert_true(weir_mp_plausible(w.buf.data, w.buf.size));
    weir_mp_reader r;
    weir_mp_reader_init(&r);
    const msgpack_object *o = weir_mp_read(&r, w.buf.data, w.buf.size);
    assert_non_null(o);
    int64_t n = 0;
    assert_int_equal(weir_mp_as_int(weir_mp_find(o, "n"), &n), WEIR_OK);
    assert_int_equal(n, -3);
    assert_int_equal(weir_mp_as_int(weir_mp_find(o, "big"), &n), WEIR_OK);
    assert_true(n == (int64_t)1 << 40);
    const msgpack_object *xs = weir_mp_find(o, "xs");
    assert_non_null(xs);
    assert_int_equal(xs->via.array.size, 3);
    weir_mp_reader_destroy(&r);
    weir_mp_writer_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bombs_refused),
        cmocka_unit_test(test_good_values_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
