/*
 * test_tables.c - the descriptors of every bundled plugin: ABI fields, the
 * callbacks each kind of operator needs, and parameter tables that
 * `weir plugins` can show and the topology loader can validate (names,
 * descriptions, types, defaults inside their own ranges and choices).
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hx.h"

#include "weir/weir.h"

static const char *const plugin_files[] = {GEN_SO, FILE_SOURCE_SO, FILE_SINK_SO,
                                           COUNT_SO, DISCARD_SO};

static int name_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

static void check_param(const char *op, const weir_param_def *d)
{
    assert_int_equal(d->size, sizeof(weir_param_def));
    if (!name_ok(d->name))
        fail_msg("%s: bad parameter name '%s'", op, d->name);
    assert_non_null(d->description);
    assert_true(strlen(d->description) > 10);
    assert_true(strlen(d->description) <= 120);
    assert_true(d->type >= WEIR_PARAM_BOOL && d->type <= WEIR_PARAM_ANY);
    if (d->flags & WEIR_PARAM_REQUIRED)
        assert_null(d->default_value); /* required and defaulted is a bug */
    if (d->type == WEIR_PARAM_ENUM) {
        assert_non_null(d->choices);
        assert_non_null(d->choices[0]);
        assert_non_null(d->default_value);
    } else {
        assert_null(d->choices);
    }
    if ((d->flags & WEIR_PARAM_HAS_MIN) && (d->flags & WEIR_PARAM_HAS_MAX))
        assert_true(d->min <= d->max);
}

static void check_operator(const char *so, const weir_operator *op)
{
    assert_int_equal(op->size, sizeof(weir_operator));
    assert_true(name_ok(op->name));
    assert_non_null(op->version);
    assert_non_null(op->description);
    assert_non_null(op->open);
    assert_non_null(op->close);
    if (op->flags & WEIR_OP_SOURCE)
        assert_non_null(op->poll);
    else
        assert_non_null(op->process);
    if (op->restore)
        assert_true(op->snapshot_version >= 1);
    for (size_t i = 0; op->params && op->params[i]; i++) {
        check_param(op->name, op->params[i]);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(op->params[i]->name, op->params[j]->name);
    }
    hx_check_defaults(so, op->name);
}

static void test_descriptors(void **state)
{
    const char *seen[32];
    size_t n_seen = 0;
    for (size_t f = 0; f < sizeof plugin_files / sizeof *plugin_files; f++) {
        const weir_plugin *p = hx_plugin(plugin_files[f]);
        assert_int_equal(p->size, sizeof(weir_plugin));
        assert_int_equal(p->abi_major, WEIR_ABI_MAJOR);
        assert_non_null(p->name);
        assert_non_null(p->operators);
        assert_non_null(p->operators[0]);
        for (size_t i = 0; p->operators[i]; i++) {
            check_operator(plugin_files[f], p->operators[i]);
            for (size_t j = 0; j < n_seen; j++)
                assert_string_not_equal(seen[j], p->operators[i]->name);
            assert_true(n_seen < 32);
            seen[n_seen++] = p->operators[i]->name;
        }
    }
    const char *want[] = {"gen",    "file_source", "file_sink",
                          "stdout", "count",       "discard"};
    assert_int_equal(n_seen, 6);
    for (size_t i = 0; i < 6; i++) {
        size_t j = 0;
        while (j < n_seen && strcmp(seen[j], want[i]))
            j++;
        if (j == n_seen)
            fail_msg("operator %s missing", want[i]);
    }
}

/* Every sink declares no output ports, so nothing can be wired after it. */
static void test_sinks_have_no_outputs(void **state)
{
    const char *sinks[][2] = {{FILE_SINK_SO, "file_sink"},
                              {FILE_SINK_SO, "stdout"},
                              {DISCARD_SO, "discard"}};
    for (size_t i = 0; i < 3; i++) {
        const weir_operator *op = hx_operator(sinks[i][0], sinks[i][1]);
        assert_non_null(op->output_ports);
        assert_null(op->output_ports[0]);
    }
}

/* A host of another ABI major is refused by every plugin. */
static void test_refuses_other_major(void **state)
{
    for (size_t f = 0; f < sizeof plugin_files / sizeof *plugin_files; f++) {
        void *h = dlopen(plugin_files[f], RTLD_NOW | RTLD_LOCAL);
        assert_non_null(h);
        weir_plugin_entry_fn entry =
            (weir_plugin_entry_fn)(uintptr_t)dlsym(h, WEIR_PLUGIN_ENTRY_SYMBOL);
        assert_non_null(entry);
        weir_host_api other = {.size = sizeof other,
                               .abi_major = WEIR_ABI_MAJOR + 1};
        assert_null(entry(&other));
    }
}

/* Only weir_plugin_entry is exported (-fvisibility=hidden). */
static void test_exports_only_entry(void **state)
{
    const char *internal[] = {"gen_open", "fsrc_open", "fsink_process",
                              "count_process", "dc_process"};
    for (size_t f = 0; f < sizeof plugin_files / sizeof *plugin_files; f++) {
        void *h = dlopen(plugin_files[f], RTLD_NOW | RTLD_LOCAL);
        assert_non_null(h);
        for (size_t i = 0; i < 5; i++)
            assert_null(dlsym(h, internal[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_sinks_have_no_outputs),
        cmocka_unit_test(test_refuses_other_major),
        cmocka_unit_test(test_exports_only_entry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
