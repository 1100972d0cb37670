/*
 * test_abi_compat.c - the current host loads a plugin built against the
 * oldest supported header (compat/v1_0/weir/weir.h) and reads every field
 * of it as the plugin wrote it, and one built against the current header
 * that uses the 1.2 additions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "plugin/registry.h"
#include "runtime/api.h"

static void test_load_v1_0_plugin(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *err = NULL;
    int rc = reg_load_file(reg, COMPAT_PLUGIN, &err);
    if (rc != 0)
        fail_msg("%s", err ? err : "load failed");
    assert_int_equal(reg_count(reg), 1);
    const reg_operator *o = reg_find(reg, "compat_v1_0");
    assert_non_null(o);

    const weir_plugin *pl = &o->plugin->desc;
    assert_int_equal(pl->abi_major, 1);
    assert_int_equal(pl->abi_minor, 0);
    assert_string_equal(pl->name, "compat");
    assert_string_equal(pl->version, "1.0.0");
    assert_string_equal(pl->description, "Oldest supported header");

    assert_int_equal(o->op.flags, WEIR_OP_KEYED);
    assert_string_equal(o->op.version, "1.0.0");
    assert_string_equal(o->op.description, "Built against the v1.0 header.");
    assert_int_equal(o->op.snapshot_version, 7);
    assert_non_null(o->op.open);
    assert_non_null(o->op.process);
    assert_non_null(o->op.snapshot);
    assert_non_null(o->op.close);
    assert_null(o->op.poll);
    assert_null(o->op.on_timer);
    assert_null(o->op.finish);

    assert_int_equal(o->n_inputs, 2);
    assert_string_equal(o->inputs[0], "main");
    assert_string_equal(o->inputs[1], "side");
    assert_int_equal(o->n_outputs, 2);
    assert_string_equal(o->outputs[1], "late");

    assert_int_equal(o->n_params, 2);
    const weir_param_def *kind = reg_param(o, "kind");
    assert_non_null(kind);
    assert_int_equal(kind->type, WEIR_PARAM_ENUM);
    assert_int_equal(kind->flags, WEIR_PARAM_REQUIRED);
    assert_string_equal(kind->choices[0], "a");
    assert_string_equal(kind->choices[1], "b");
    assert_null(kind->choices[2]);
    assert_string_equal(kind->description, "Which kind.");
    const weir_param_def *every = reg_param(o, "every");
    assert_non_null(every);
    assert_int_equal(every->type, WEIR_PARAM_DURATION);
    assert_string_equal(every->default_value, "5s");
    assert_true(every->min == 1.0 && every->max == 60000.0);
    assert_int_equal(every->flags, WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX);
    /* The fields appended in 1.2 read as zero. */
    assert_int_equal(o->op.broadcast_inputs, 0);
    assert_null(o->op.process_broadcast);
    reg_free(reg);
}

/* A 1.2 plugin with a broadcast input loads on this host, next to the
 * v1.0 plugin. */
static void test_load_v1_2_plugin(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *err = NULL;
    if (reg_load_file(reg, COMPAT_PLUGIN, &err) != 0 ||
        reg_load_file(reg, COMPAT_PLUGIN_1_2, &err) != 0)
        fail_msg("%s", err ? err : "load failed");
    assert_int_equal(reg_count(reg), 2);
    const reg_operator *o = reg_find(reg, "compat_v1_2");
    assert_non_null(o);
    assert_int_equal(o->plugin->desc.abi_minor, 2);
    assert_int_equal(o->op.broadcast_inputs, 1u << 1);
    assert_non_null(o->op.process_broadcast);
    assert_int_equal(o->n_inputs, 2);
    assert_string_equal(o->inputs[1], "rules");
    assert_null(reg_find(reg, "compat_v1_0")->op.process_broadcast);
    /* The fields appended in 1.3 read as NULL for both. */
    assert_null(o->op.migrate_state);
    assert_null(o->op.async_invoke);
    assert_null(o->op.on_async_result);
    assert_null(reg_find(reg, "compat_v1_0")->op.async_invoke);
    reg_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_v1_0_plugin),
        cmocka_unit_test(test_load_v1_2_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
