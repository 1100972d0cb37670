/*
 * test_discard.c - the discard sink: record counts, latency percentiles
 * against quantiles the test computes, the msgpack field scan across every
 * msgpack type, values without (usable) latency, and the report at close.
 */
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

static weir_test *dc_new(const weir_test_param *p)
{
    return hx_new(DISCARD_SO, "discard", p, 0, 1);
}

static int64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

typedef struct report {
    unsigned long long records, lat_n;
    double p50, p99, p999, max, span;
} report;

static report get_report(const weir_test *t)
{
    report r = {0};
    assert_int_equal(hx_count_logs(t, WEIR_LOG_INFO, "records="), 1);
    const char *m = hx_find_log(t, "records=");
    assert_non_null(strstr(m, "discard discard[0]: "));
    const char *p = strstr(m, "records=");
    int n =
        sscanf(p,
               "records=%llu latency_n=%llu p50_ms=%lf p99_ms=%lf "
               "p999_ms=%lf max_ms=%lf span_ms=%lf",
               &r.records, &r.lat_n, &r.p50, &r.p99, &r.p999, &r.max, &r.span);
    if (n == 2) {
        assert_int_equal(r.lat_n, 0);
        assert_int_equal(
            sscanf(p, "records=%*u latency_n=0 span_ms=%lf", &r.span), 1);
    } else if (n != 7) {
        fail_msg("unexpected report: %s", m);
    }
    return r;
}

static void pack_created(msgpack_sbuffer *sb, int64_t created)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    sb->size = 0;
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "seq", 3);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "key", 3);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "k", 1);
    msgpack_pack_str(&pk, 10);
    msgpack_pack_str_body(&pk, "created_ns", 10);
    msgpack_pack_int64(&pk, created);
}

static void test_percentiles(void **state)
{
    enum { N = 1000 };
    weir_test *t = dc_new(NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* Latencies i ms for i = 1..N, in a scrambled order. */
    for (int j = 0; j < N; j++) {
        int i = 1 + (j * 389) % N;
        pack_created(&sb, mono_ns() - (int64_t)i * 1000000);
        assert_int_equal(weir_test_process(t, 0, "k", 1, 0, sb.data, sb.size),
                         0);
    }
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    report r = get_report(t);
    assert_int_equal(r.records, N);
    assert_int_equal(r.lat_n, N);
    /* Exact quantiles: rank ceil(q N): 500 ms, 990 ms, 999 ms. Buckets are
     * within 1/32 of the value; time spent in the test only adds. */
    assert_true(r.p50 >= 500 * 0.96 && r.p50 <= 500 * 1.04 + 100);
    assert_true(r.p99 >= 990 * 0.96 && r.p99 <= 990 * 1.04 + 100);
    assert_true(r.p999 >= 999 * 0.96 && r.p999 <= r.max);
    assert_true(r.max >= 1000 && r.max <= 1000 + 100);
    assert_true(r.p50 <= r.p99 && r.p99 <= r.p999);
    assert_true(r.span >= 0);
    msgpack_sbuffer_destroy(&sb);
    weir_test_free(t);
}

static void test_without_latency(void **state)
{
    weir_test *t = dc_new(NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 0;

#define FEED(data, len)                                                        \
    do {                                                                       \
        assert_int_equal(weir_test_process(t, 0, "k", 1, 0, (data), (len)),    \
                         0);                                                   \
        n++;                                                                   \
    } while (0)

    FEED("", 0);                 /* empty */
    FEED("\x93\x01\x02\x03", 4); /* an array */
    FEED("\x81\xa1x\x01", 4);    /* no such field */
    FEED("\x81\xaa"
         "created_ns"
         "\xa1"
         "1",
         14);                 /* a string */
    FEED("\x83\xa1x\x01", 4); /* truncated map */
    FEED("\x81\xaa"
         "created_ns",
         12); /* key without value */
    FEED("\x81\xaa"
         "created_ns"
         "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
         21);        /* beyond int64 */
    FEED("\xc1", 1); /* never-used code */
    /* the field only inside a nested map */
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "m", 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 10);
    msgpack_pack_str_body(&pk, "created_ns", 10);
    msgpack_pack_int64(&pk, mono_ns());
    FEED(sb.data, sb.size);
    /* in the future */
    pack_created(&sb, mono_ns() + 60 * 1000000000LL);
    FEED(sb.data, sb.size);
    /* random bytes, some with a map header */
    uint64_t x = 99;
    for (int i = 0; i < 2000; i++) {
        unsigned char v[40];
        for (size_t k = 0; k < sizeof v; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v[k] = (unsigned char)x;
        }
        if (i % 2)
            v[0] = 0x80 | (v[0] & 15);
        FEED(v, 1 + x % sizeof v);
    }
#undef FEED
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    report r = get_report(t);
    assert_int_equal(r.records, n);
    assert_int_equal(r.lat_n, 0);
    msgpack_sbuffer_destroy(&sb);
    weir_test_free(t);
}

/* The field is found after entries of every msgpack type. */
static void test_scan_all_types(void **state)
{
    const weir_test_param p[] = {{"latency_field", "t0"}, {NULL, NULL}};
    weir_test *t = dc_new(p);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char big[70000];
    memset(big, 'b', sizeof big);

    msgpack_pack_map(&pk, 22);
    for (int i = 0; i < 21; i++) {
        char key[48];
        int kl =
            snprintf(key, sizeof key, "%s%02d",
                     i % 2 ? "k" : "a-long-key-of-more-than-31-bytes!!", i);
        msgpack_pack_str(&pk, (size_t)kl);
        msgpack_pack_str_body(&pk, key, (size_t)kl);
        switch (i) {
        case 0:
            msgpack_pack_str(&pk, 300);
            msgpack_pack_str_body(&pk, big, 300);
            break;
        case 1:
            msgpack_pack_str(&pk, 70000);
            msgpack_pack_str_body(&pk, big, 70000);
            break;
        case 2:
            msgpack_pack_bin(&pk, 20);
            msgpack_pack_bin_body(&pk, big, 20);
            break;
        case 3:
            msgpack_pack_bin(&pk, 300);
            msgpack_pack_bin_body(&pk, big, 300);
            break;
        case 4:
            msgpack_pack_ext(&pk, 1, 5);
            msgpack_pack_ext_body(&pk, big, 1);
            break;
        case 5:
            msgpack_pack_ext(&pk, 4, 5);
            msgpack_pack_ext_body(&pk, big, 4);
            break;
        case 6:
            msgpack_pack_ext(&pk, 16, 5);
            msgpack_pack_ext_body(&pk, big, 16);
            break;
        case 7:
            msgpack_pack_ext(&pk, 3, 5);
            msgpack_pack_ext_body(&pk, big, 3);
            break;
        case 8: msgpack_pack_float(&pk, 1.5f); break;
        case 9: msgpack_pack_double(&pk, 2.5); break;
        case 10: msgpack_pack_uint64(&pk, UINT64_MAX); break;
        case 11: msgpack_pack_int64(&pk, INT64_MIN); break;
        case 12: msgpack_pack_int8(&pk, -100); break;
        case 13: msgpack_pack_int16(&pk, -1000); break;
        case 14: msgpack_pack_int32(&pk, -100000); break;
        case 15: msgpack_pack_uint16(&pk, 1000); break;
        case 16: msgpack_pack_nil(&pk); break;
        case 17: msgpack_pack_true(&pk); break;
        case 18: /* a nested map with a decoy field */
            msgpack_pack_map(&pk, 1);
            msgpack_pack_str(&pk, 2);
            msgpack_pack_str_body(&pk, "t0", 2);
            msgpack_pack_int64(&pk, 0);
            break;
        case 19: /* array of arrays, 16+ elements (array16) */
            msgpack_pack_array(&pk, 20);
            for (int k = 0; k < 20; k++) {
                msgpack_pack_array(&pk, 1);
                msgpack_pack_int(&pk, -k);
            }
            break;
        default: /* a 17-entry map (map16) */
            msgpack_pack_map(&pk, 17);
            for (int k = 0; k < 17; k++) {
                msgpack_pack_int(&pk, k);
                msgpack_pack_false(&pk);
            }
            break;
        }
    }
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "t0", 2);
    msgpack_pack_int64(&pk, mono_ns() - 5000000); /* 5 ms ago */
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, sb.data, sb.size), 0);

    /* created encoded as int64 (0xd3) */
    unsigned char raw[13] = {0x81, 0xa2, 't', '0', 0xd3};
    uint64_t c = (uint64_t)(mono_ns() - 5000000);
    for (int i = 0; i < 8; i++)
        raw[5 + i] = (unsigned char)(c >> (56 - 8 * i));
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, raw, sizeof raw), 0);

    assert_int_equal(weir_test_finish(t), WEIR_OK);
    report r = get_report(t);
    assert_int_equal(r.records, 2);
    assert_int_equal(r.lat_n, 2);
    assert_true(r.p50 >= 4.8);
    assert_true(r.max < 5000); /* not the decoy (0: years ago) */
    msgpack_sbuffer_destroy(&sb);
    weir_test_free(t);
}

static void test_report_at_close(void **state)
{
    weir_test *t = dc_new(NULL);
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, "", 0), 0);
    weir_test_close(t); /* stopped without finish(): report anyway */
    report r = get_report(t);
    assert_int_equal(r.records, 1);
    weir_test_free(t);

    t = dc_new(NULL);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_close(t);
    r = get_report(t); /* exactly one report */
    assert_int_equal(r.records, 0);
    weir_test_free(t);
}

static void test_bad_param(void **state)
{
    const weir_test_param p[] = {{"latency_field", "''"}, {NULL, NULL}};
    hx_spec s = {.so = DISCARD_SO, .op = "discard", .params = p};
    weir_test *t = NULL;
    assert_int_equal(hx_try(&s, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "latency_field"));
    weir_test_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_without_latency),
        cmocka_unit_test(test_scan_all_types),
        cmocka_unit_test(test_report_at_close),
        cmocka_unit_test(test_bad_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
