/*
 * test_abi_api.c - the run-time side of the ABI rules: WEIR_API_HAS and the
 * weir_* wrappers on a host table shorter than the plugin's header (a newer
 * plugin on an older host), a NULL slot, and WEIR_HAS_FIELD on descriptors
 * written by an older side. The truncated table is allocated with exactly
 * its declared size, so under ASan a wrapper that peeks past it fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "weir/weir.h"

static int calls_param_int;
static int calls_now;
static int calls_counter;

static int stub_param_int(weir_ctx *ctx, const char *name, int64_t *out)
{
    calls_param_int++;
    *out = 42;
    return WEIR_OK;
}

static int64_t stub_now(weir_ctx *ctx)
{
    calls_now++;
    return 1234;
}

static int64_t stub_watermark(weir_ctx *ctx)
{
    return 99;
}

static int stub_current_key(weir_ctx *ctx, const void **key, size_t *len)
{
    *key = "k";
    *len = 1;
    return WEIR_OK;
}

static int stub_timer(weir_ctx *ctx, weir_time_domain d, int64_t ts)
{
    return WEIR_OK;
}

static void stub_counter_add(weir_metric *m, uint64_t delta)
{
    calls_counter++;
}

static int calls_bcast;

static int stub_bcast_put(weir_ctx *ctx, weir_broadcast_state *st,
                          const void *k, size_t kn, const void *v, size_t vn)
{
    calls_bcast++;
    return WEIR_OK;
}

static const weir_host_api full = {
    .size = sizeof(weir_host_api),
    .abi_major = WEIR_ABI_MAJOR,
    .abi_minor = WEIR_ABI_MINOR,
    .param_int = stub_param_int,
    .now = stub_now,
    .watermark = stub_watermark,
    .current_key = stub_current_key,
    .timer_register = stub_timer,
    .counter_add = stub_counter_add,
    .broadcast_put = stub_bcast_put,
};

/* A copy of `full` cut to `size` bytes, in an allocation of that size. */
static weir_host_api *truncated(size_t size)
{
    unsigned char *t = malloc(size);
    assert_non_null(t);
    weir_host_api copy = full;
    copy.size = (uint32_t)size;
    memcpy(t, &copy, size);
    return (weir_host_api *)t;
}

static void test_full_table(void **state)
{
    weir_ctx ctx = {.api = &full};
    assert_true(WEIR_API_HAS(&ctx, param_int));
    assert_true(WEIR_API_HAS(&ctx, counter_add));
    assert_false(WEIR_API_HAS(&ctx, histogram_observe)); /* NULL slot */
    int64_t v = 0;
    assert_int_equal(weir_param_int(&ctx, "x", &v), WEIR_OK);
    assert_int_equal(v, 42);
    assert_int_equal(weir_watermark(&ctx), 99);
    assert_int_equal(weir_timer_register(&ctx, WEIR_TIME_EVENT, 5), WEIR_OK);
    /* NULL slots answer WEIR_ENOTSUP, not a crash. */
    assert_int_equal(weir_param_bool(&ctx, "x", &(int){0}), WEIR_ENOTSUP);
    assert_int_equal(weir_timer_delete(&ctx, WEIR_TIME_EVENT, 5), WEIR_ENOTSUP);
    assert_int_equal(weir_snapshot_write(&ctx, "x", 1), WEIR_ENOTSUP);
    calls_counter = 0;
    weir_counter_add(&ctx, (weir_metric *)&ctx, 1);
    assert_int_equal(calls_counter, 1);
    weir_counter_add(&ctx, NULL, 1); /* a NULL metric is a no-op */
    assert_int_equal(calls_counter, 1);
    weir_gauge_set(&ctx, (weir_metric *)&ctx, 1.0); /* NULL slot */
}

/* The host's table ends right before `watermark`. */
static void test_truncated_table(void **state)
{
    weir_host_api *t = truncated(offsetof(weir_host_api, watermark));
    weir_ctx ctx = {.api = t};
    assert_true(WEIR_API_HAS(&ctx, param_int));
    assert_true(WEIR_API_HAS(&ctx, now));
    assert_false(WEIR_API_HAS(&ctx, watermark));
    assert_false(WEIR_API_HAS(&ctx, current_key));
    assert_false(WEIR_API_HAS(&ctx, timer_register));
    assert_false(WEIR_API_HAS(&ctx, counter_add));

    calls_param_int = 0;
    int64_t v = 0;
    assert_int_equal(weir_param_int(&ctx, "x", &v), WEIR_OK);
    assert_int_equal(calls_param_int, 1);
    assert_int_equal(weir_now(&ctx), 1234);
    assert_true(weir_watermark(&ctx) == WEIR_WATERMARK_MIN);
    const void *key = NULL;
    size_t len = 0;
    assert_int_equal(weir_current_key(&ctx, &key, &len), WEIR_ENOTSUP);
    assert_null(key);
    assert_int_equal(weir_timer_register(&ctx, WEIR_TIME_EVENT, 5),
                     WEIR_ENOTSUP);
    calls_counter = 0;
    weir_counter_add(&ctx, (weir_metric *)&ctx, 1);
    assert_int_equal(calls_counter, 0);
    free(t);
}

/* A 1.2 plugin on a 1.1 host: the table ends after histogram_observe, so
 * every broadcast state call answers WEIR_ENOTSUP without reading past it
 * (under ASan, a peek beyond the allocation fails the test). */
static void test_broadcast_on_1_1_host(void **state)
{
    weir_host_api *t = truncated(offsetof(weir_host_api, broadcast_declare));
    weir_ctx ctx = {.api = t};
    assert_true(WEIR_API_HAS(&ctx, counter_add));
    assert_false(WEIR_API_HAS(&ctx, broadcast_declare));
    assert_false(WEIR_API_HAS(&ctx, broadcast_put));
    weir_broadcast_state *st = NULL;
    const void *v = NULL;
    size_t n = 0;
    calls_bcast = 0;
    assert_int_equal(weir_broadcast_declare(&ctx, "rules", &st), WEIR_ENOTSUP);
    assert_null(st);
    assert_int_equal(weir_broadcast_get(&ctx, st, "k", 1, &v, &n),
                     WEIR_ENOTSUP);
    assert_int_equal(weir_broadcast_put(&ctx, st, "k", 1, "v", 1),
                     WEIR_ENOTSUP);
    assert_int_equal(weir_broadcast_delete(&ctx, st, "k", 1), WEIR_ENOTSUP);
    assert_int_equal(weir_broadcast_iter(&ctx, st, NULL, NULL), WEIR_ENOTSUP);
    assert_int_equal(calls_bcast, 0);
    free(t);

    /* On a 1.2 table the slot is called. */
    ctx.api = &full;
    assert_int_equal(weir_broadcast_put(&ctx, st, "k", 1, "v", 1), WEIR_OK);
    assert_int_equal(calls_bcast, 1);
    assert_int_equal(weir_broadcast_get(&ctx, st, "k", 1, &v, &n),
                     WEIR_ENOTSUP); /* NULL slot */
}

/* A slot counts only when all 8 bytes of it are inside `size`. */
static void test_slot_boundary(void **state)
{
    size_t off = offsetof(weir_host_api, watermark);
    weir_host_api *t = truncated(off + sizeof(void *) - 1);
    weir_ctx ctx = {.api = t};
    assert_false(WEIR_API_HAS(&ctx, watermark));
    assert_true(weir_watermark(&ctx) == WEIR_WATERMARK_MIN);
    free(t);

    t = truncated(off + sizeof(void *));
    ctx.api = t;
    assert_true(WEIR_API_HAS(&ctx, watermark));
    assert_int_equal(weir_watermark(&ctx), 99);
    assert_false(WEIR_API_HAS(&ctx, current_key));
    free(t);
}

/* Descriptors from an older writer: fields past `size` are absent. */
static void test_has_field(void **state)
{
    weir_operator op = {.size = offsetof(weir_operator, finish)};
    assert_true(WEIR_HAS_FIELD(&op, weir_operator, name));
    assert_true(WEIR_HAS_FIELD(&op, weir_operator, notify_checkpoint_complete));
    assert_false(WEIR_HAS_FIELD(&op, weir_operator, finish));
    assert_false(WEIR_HAS_FIELD(&op, weir_operator, close));
    op.size = offsetof(weir_operator, finish) + sizeof(void *) - 1;
    assert_false(WEIR_HAS_FIELD(&op, weir_operator, finish));
    op.size = sizeof(weir_operator);
    assert_true(WEIR_HAS_FIELD(&op, weir_operator, close));
    assert_true(WEIR_HAS_FIELD(&op, weir_operator, process_broadcast));
    /* An operator of a 1.1 plugin ends at close. */
    op.size = offsetof(weir_operator, close) + sizeof(void *);
    assert_true(WEIR_HAS_FIELD(&op, weir_operator, close));
    assert_false(WEIR_HAS_FIELD(&op, weir_operator, broadcast_inputs));
    assert_false(WEIR_HAS_FIELD(&op, weir_operator, process_broadcast));

    weir_param_def d = {.size = offsetof(weir_param_def, description)};
    assert_true(WEIR_HAS_FIELD(&d, weir_param_def, choices));
    assert_false(WEIR_HAS_FIELD(&d, weir_param_def, description));

    weir_record r = {.size = offsetof(weir_record, value_len) + 4};
    assert_true(WEIR_HAS_FIELD(&r, weir_record, value));
    assert_false(WEIR_HAS_FIELD(&r, weir_record, value_len));

    weir_state_desc s = {.size = sizeof(weir_state_desc)};
    assert_true(WEIR_HAS_FIELD(&s, weir_state_desc, reserved));
    s.size = 0;
    assert_false(WEIR_HAS_FIELD(&s, weir_state_desc, kind));
}

static void test_plugin_init(void **state)
{
    weir_plugin p = {WEIR_PLUGIN_INIT, .name = "x"};
    assert_int_equal(p.size, sizeof(weir_plugin));
    assert_int_equal(p.abi_major, WEIR_ABI_MAJOR);
    assert_int_equal(p.abi_minor, WEIR_ABI_MINOR);
    assert_true(WEIR_HAS_FIELD(&p, weir_plugin, operators));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_truncated_table),
        cmocka_unit_test(test_slot_boundary),
        cmocka_unit_test(test_broadcast_on_1_1_host),
        cmocka_unit_test(test_has_field),
        cmocka_unit_test(test_plugin_init),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
