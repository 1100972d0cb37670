/*
 * test_abi_layout.c - pins the layout of every public struct of the plugin
 * ABI on x86_64 / LP64 with _Static_assert: a change that moves a field, or
 * grows a struct by anything but an append, stops the build.
 *
 * The numbers were computed by hand from the declarations in weir.h (v1.0):
 * uint32_t and enums take 4 bytes, pointers, size_t, int64_t and double 8,
 * each aligned to its size. When a minor version appends a field, add its
 * offset here under #if WEIR_ABI_MINOR >= N and the new sizeof with it,
 * keeping the older sizeof under #else; never change an existing line.
 *
 * This file is compiled twice: against sdk/include and against the frozen
 * v1.0 header in compat/v1_0, so the two cannot drift apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "weir/weir.h"

#if !defined(__x86_64__) || !defined(__LP64__)
#error "the pinned layout is the one of x86_64 / LP64"
#endif

#define OFF(type, field, n)                                                    \
    _Static_assert(offsetof(type, field) == (n), #type "." #field)
#define SIZE(type, n) _Static_assert(sizeof(type) == (n), "sizeof " #type)

/* Version and constants: part of the ABI too. */
_Static_assert(WEIR_ABI_MAJOR == 1, "ABI major");
_Static_assert(WEIR_OK == 0 && WEIR_EFAIL == -1 && WEIR_EINVAL == -2 &&
                   WEIR_ENOMEM == -3 && WEIR_ENOTSUP == -4 &&
                   WEIR_ENOTFOUND == -5 && WEIR_ERETRY == -6 &&
                   WEIR_EIO == -7 && WEIR_ESTATE == -8 && WEIR_EOF == -9 &&
                   WEIR_EAGAIN == -10,
               "status codes");
_Static_assert(WEIR_TIME_PROCESSING == 0 && WEIR_TIME_EVENT == 1,
               "weir_time_domain");
_Static_assert(WEIR_PARAM_BOOL == 1 && WEIR_PARAM_INT == 2 &&
                   WEIR_PARAM_DOUBLE == 3 && WEIR_PARAM_STRING == 4 &&
                   WEIR_PARAM_DURATION == 5 && WEIR_PARAM_SIZE == 6 &&
                   WEIR_PARAM_ENUM == 7 && WEIR_PARAM_ANY == 8,
               "weir_param_type");
_Static_assert(WEIR_PARAM_REQUIRED == 0x1u && WEIR_PARAM_HAS_MIN == 0x2u &&
                   WEIR_PARAM_HAS_MAX == 0x4u,
               "param flags");
#if WEIR_ABI_MINOR >= 1
_Static_assert(WEIR_PARAM_OUTPUT_PATH == 0x8u, "param flags (1.1)");
#endif
#if WEIR_ABI_MINOR >= 2
_Static_assert(WEIR_BROADCAST_MAX_KEY == 65000 &&
                   WEIR_BROADCAST_MAX_VALUE == 16 * 1024 * 1024,
               "broadcast state limits (1.2)");
#endif
#if WEIR_ABI_MINOR >= 3
_Static_assert(WEIR_ETIMEDOUT == -11 && WEIR_ECANCELED == -12,
               "status codes (1.3)");
#endif
_Static_assert(WEIR_STATE_VALUE == 1 && WEIR_STATE_MAP == 2 &&
                   WEIR_STATE_LIST == 3,
               "weir_state_kind");
_Static_assert(WEIR_TTL_NONE == -1, "WEIR_TTL_NONE");
_Static_assert(WEIR_TTL_ON_CREATE_AND_WRITE == 0 &&
                   WEIR_TTL_ON_READ_AND_WRITE == 1,
               "weir_ttl_update");
_Static_assert(WEIR_TTL_NEVER_RETURN_EXPIRED == 0 &&
                   WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED == 1,
               "weir_ttl_visibility");
_Static_assert(WEIR_METRIC_COUNTER == 1 && WEIR_METRIC_GAUGE == 2 &&
                   WEIR_METRIC_HISTOGRAM == 3,
               "weir_metric_kind");
_Static_assert(WEIR_OP_SOURCE == 0x1u && WEIR_OP_KEYED == 0x2u, "op flags");
_Static_assert(WEIR_LOG_ERROR == 0 && WEIR_LOG_WARN == 1 &&
                   WEIR_LOG_INFO == 2 && WEIR_LOG_DEBUG == 3,
               "weir_log_level");
SIZE(weir_time_domain, 4);
SIZE(weir_param_type, 4);
SIZE(weir_state_kind, 4);
SIZE(weir_ttl_update, 4);
SIZE(weir_ttl_visibility, 4);
SIZE(weir_metric_kind, 4);
SIZE(weir_log_level, 4);

/* weir_ctx */
OFF(weir_ctx, api, 0);
SIZE(weir_ctx, 8);

/* weir_record */
OFF(weir_record, size, 0);
OFF(weir_record, reserved, 4);
OFF(weir_record, key, 8);
OFF(weir_record, key_len, 16);
OFF(weir_record, ts, 24);
OFF(weir_record, value, 32);
OFF(weir_record, value_len, 40);
SIZE(weir_record, 48);

/* weir_param_def: 4 bytes of padding after `type`. */
OFF(weir_param_def, size, 0);
OFF(weir_param_def, flags, 4);
OFF(weir_param_def, name, 8);
OFF(weir_param_def, type, 16);
OFF(weir_param_def, default_value, 24);
OFF(weir_param_def, min, 32);
OFF(weir_param_def, max, 40);
OFF(weir_param_def, choices, 48);
OFF(weir_param_def, description, 56);
SIZE(weir_param_def, 64);

/* weir_state_desc */
OFF(weir_state_desc, size, 0);
OFF(weir_state_desc, kind, 4);
OFF(weir_state_desc, name, 8);
OFF(weir_state_desc, ttl_ms, 16);
OFF(weir_state_desc, ttl_update, 24);
OFF(weir_state_desc, ttl_visibility, 28);
OFF(weir_state_desc, ttl_domain, 32);
OFF(weir_state_desc, reserved, 36);
#if WEIR_ABI_MINOR >= 3
OFF(weir_state_desc, format_version, 40);
OFF(weir_state_desc, reserved2, 44);
SIZE(weir_state_desc, 48);
#else
SIZE(weir_state_desc, 40);
#endif

/* weir_operator */
OFF(weir_operator, size, 0);
OFF(weir_operator, flags, 4);
OFF(weir_operator, name, 8);
OFF(weir_operator, version, 16);
OFF(weir_operator, description, 24);
OFF(weir_operator, input_ports, 32);
OFF(weir_operator, output_ports, 40);
OFF(weir_operator, params, 48);
OFF(weir_operator, snapshot_version, 56);
OFF(weir_operator, reserved, 60);
OFF(weir_operator, open, 64);
OFF(weir_operator, process, 72);
OFF(weir_operator, poll, 80);
OFF(weir_operator, on_timer, 88);
OFF(weir_operator, on_watermark, 96);
OFF(weir_operator, on_state_expired, 104);
OFF(weir_operator, snapshot, 112);
OFF(weir_operator, restore, 120);
OFF(weir_operator, notify_checkpoint_complete, 128);
OFF(weir_operator, finish, 136);
OFF(weir_operator, close, 144);
#if WEIR_ABI_MINOR >= 2
OFF(weir_operator, broadcast_inputs, 152);
OFF(weir_operator, process_broadcast, 160);
#if WEIR_ABI_MINOR >= 3
OFF(weir_operator, migrate_state, 168);
OFF(weir_operator, async_invoke, 176);
OFF(weir_operator, on_async_result, 184);
SIZE(weir_operator, 192);
#else
SIZE(weir_operator, 168);
#endif
#else
SIZE(weir_operator, 152);
#endif

/* weir_plugin */
OFF(weir_plugin, size, 0);
OFF(weir_plugin, abi_major, 4);
OFF(weir_plugin, abi_minor, 8);
OFF(weir_plugin, reserved, 12);
OFF(weir_plugin, name, 16);
OFF(weir_plugin, version, 24);
OFF(weir_plugin, description, 32);
OFF(weir_plugin, operators, 40);
SIZE(weir_plugin, 48);

/* weir_host_api: a 16-byte header, then one 8-byte slot each. */
OFF(weir_host_api, size, 0);
OFF(weir_host_api, abi_major, 4);
OFF(weir_host_api, abi_minor, 8);
OFF(weir_host_api, reserved, 12);
OFF(weir_host_api, log, 16);
OFF(weir_host_api, set_error, 24);
OFF(weir_host_api, operator_id, 32);
OFF(weir_host_api, subtask_index, 40);
OFF(weir_host_api, parallelism, 48);
OFF(weir_host_api, param_bool, 56);
OFF(weir_host_api, param_int, 64);
OFF(weir_host_api, param_double, 72);
OFF(weir_host_api, param_string, 80);
OFF(weir_host_api, param_msgpack, 88);
OFF(weir_host_api, emit, 96);
OFF(weir_host_api, output_port, 104);
OFF(weir_host_api, now, 112);
OFF(weir_host_api, watermark, 120);
OFF(weir_host_api, current_key, 128);
OFF(weir_host_api, state_declare, 136);
OFF(weir_host_api, value_get, 144);
OFF(weir_host_api, value_put, 152);
OFF(weir_host_api, value_delete, 160);
OFF(weir_host_api, map_get, 168);
OFF(weir_host_api, map_put, 176);
OFF(weir_host_api, map_delete, 184);
OFF(weir_host_api, map_iter, 192);
OFF(weir_host_api, map_clear, 200);
OFF(weir_host_api, list_add, 208);
OFF(weir_host_api, list_iter, 216);
OFF(weir_host_api, list_clear, 224);
OFF(weir_host_api, timer_register, 232);
OFF(weir_host_api, timer_delete, 240);
OFF(weir_host_api, snapshot_write, 248);
OFF(weir_host_api, metric_register, 256);
OFF(weir_host_api, counter_add, 264);
OFF(weir_host_api, gauge_set, 272);
OFF(weir_host_api, histogram_observe, 280);
#if WEIR_ABI_MINOR >= 2
OFF(weir_host_api, broadcast_declare, 288);
OFF(weir_host_api, broadcast_get, 296);
OFF(weir_host_api, broadcast_put, 304);
OFF(weir_host_api, broadcast_delete, 312);
OFF(weir_host_api, broadcast_iter, 320);
#if WEIR_ABI_MINOR >= 3
OFF(weir_host_api, async_complete, 328);
SIZE(weir_host_api, 336);
#else
SIZE(weir_host_api, 328);
#endif
#else
SIZE(weir_host_api, 288);
#endif

/* The assertions above are the test; this only gives ctest a program that
 * ran (and reports which header it was built against). */
static void test_layout_compiled(void **state)
{
    assert_int_equal(WEIR_ABI_MAJOR, 1);
    print_message("pinned against weir.h %d.%d\n", WEIR_ABI_MAJOR,
                  WEIR_ABI_MINOR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_compiled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
