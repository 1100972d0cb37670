/*
 * test_loader.c - the plugin registry against real dlopen()ed test plugins:
 * normalisation of good plugins (exact and larger struct sizes, default
 * ports, sorting), one test per rejection cause, plugins that crash, exit
 * or hang while they load (caught by the probe in a child process, while
 * this process goes on), and directory loading with good files next to bad
 * ones.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "plugin/registry.h"
#include "runtime/api.h"

/* The expected sizes in messages are the v1.0 struct sizes on LP64. */
_Static_assert(sizeof(void *) == 8, "these tests assume LP64");

#define assert_contains(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay);                                                \
        const char *n_ = (needle);                                             \
        if (!h_ || !strstr(h_, n_))                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)",     \
                     n_);                                                      \
    } while (0)

static char *good_path(const char *stem)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s.so", LOADER_GOOD_DIR, stem) > 0);
    return p;
}

static char *broken_path(const char *stem)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s.so", LOADER_BROKEN_DIR, stem) > 0);
    return p;
}

static char *make_tmpdir(void)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/tmp.XXXXXX", LOADER_TMP_DIR) > 0);
    assert_non_null(mkdtemp(p));
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    return remove(path);
}

static void rm_rf(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static void link_into(const char *dir, const char *name, const char *target)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
    assert_int_equal(symlink(target, p), 0);
    free(p);
}

/* Whether the dynamic linker still has `path` loaded. */
static int is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* ------------------------------------------------------------------------ */
/* Good plugins                                                              */
/* ------------------------------------------------------------------------ */

static void test_alpha_normalised(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *path = good_path("alpha");
    char *err = NULL;
    assert_int_equal(reg_load_file(reg, path, &err), 0);
    assert_null(err);

    /* Sorted by name although the plugin lists alpha_source first. */
    assert_int_equal(reg_count(reg), 2);
    const reg_operator *map = reg_get(reg, 0);
    const reg_operator *src = reg_get(reg, 1);
    assert_null(reg_get(reg, 2));
    assert_string_equal(map->op.name, "alpha_map");
    assert_string_equal(src->op.name, "alpha_source");
    assert_ptr_equal(reg_find(reg, "alpha_map"), map);
    assert_ptr_equal(reg_find(reg, "alpha_source"), src);
    assert_null(reg_find(reg, "alpha"));
    assert_null(reg_find(reg, "alpha_mapx"));

    /* The plugin. */
    const reg_plugin *pl = map->plugin;
    assert_ptr_equal(src->plugin, pl);
    assert_string_equal(pl->path, path);
    assert_non_null(pl->handle);
    assert_int_equal(pl->desc.size, sizeof(weir_plugin));
    assert_int_equal(pl->desc.abi_major, WEIR_ABI_MAJOR);
    assert_int_equal(pl->desc.abi_minor, WEIR_ABI_MINOR);
    assert_string_equal(pl->desc.name, "alpha");
    assert_string_equal(pl->desc.version, "1.2.0");
    assert_string_equal(pl->desc.description, "Alpha test plugin");
    assert_null(pl->desc.operators);

    /* Host-owned copies, with the plugin's callbacks. */
    weir_plugin_entry_fn entry;
    void *sym = dlsym(pl->handle, WEIR_PLUGIN_ENTRY_SYMBOL);
    assert_non_null(sym);
    memcpy(&entry, &sym, sizeof entry);
    const weir_plugin *raw = entry(api_table());
    const weir_operator *raw_map = raw->operators[1];
    assert_ptr_not_equal(&map->op, raw_map);
    assert_ptr_equal(map->op.open, raw_map->open);
    assert_ptr_equal(map->op.process, raw_map->process);
    assert_ptr_equal(map->op.close, raw_map->close);
    assert_ptr_not_equal(map->params[0], raw_map->params[0]);

    /* The operator. */
    assert_int_equal(map->op.size, sizeof(weir_operator));
    assert_int_equal(map->op.flags, WEIR_OP_KEYED);
    assert_string_equal(map->op.version, "1.2.0");
    assert_string_equal(map->op.description, "Maps records (test plugin).");
    assert_null(map->op.poll);
    assert_null(map->op.snapshot);

    /* Default ports, also visible through op.input_ports/output_ports. */
    assert_int_equal(map->n_inputs, 1);
    assert_string_equal(map->inputs[0], "in");
    assert_string_equal(map->op.input_ports[0], "in");
    assert_null(map->op.input_ports[1]);
    assert_int_equal(map->n_outputs, 1);
    assert_string_equal(map->outputs[0], "out");
    assert_string_equal(map->op.output_ports[0], "out");
    assert_null(map->op.output_ports[1]);

    /* Parameters, in declaration order. */
    assert_int_equal(map->n_params, 8);
    const char *names[] = {"interval", "mode",    "limit",  "ratio",
                           "label",    "verbose", "buffer", "extra"};
    for (size_t i = 0; i < 8; i++) {
        assert_string_equal(map->params[i]->name, names[i]);
        assert_int_equal(map->params[i]->size, sizeof(weir_param_def));
        assert_ptr_equal(map->op.params[i], map->params[i]);
        assert_ptr_equal(reg_param(map, names[i]), map->params[i]);
    }
    assert_null(map->op.params[8]);
    assert_null(reg_param(map, "nope"));
    const weir_param_def *iv = reg_param(map, "interval");
    assert_int_equal(iv->type, WEIR_PARAM_DURATION);
    assert_string_equal(iv->default_value, "1s");
    assert_int_equal(iv->flags, WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX);
    assert_true(iv->min == 10.0 && iv->max == 3600000.0);
    const weir_param_def *mode = reg_param(map, "mode");
    assert_int_equal(mode->type, WEIR_PARAM_ENUM);
    assert_string_equal(mode->choices[0], "fast");
    assert_string_equal(mode->choices[1], "slow");
    assert_null(mode->choices[2]);
    assert_int_equal(reg_param(map, "limit")->flags,
                     WEIR_PARAM_REQUIRED | WEIR_PARAM_HAS_MIN);
    assert_null(reg_param(map, "label")->default_value);

    /* A source has no inputs, even when it lists some. */
    assert_int_equal(src->op.flags, WEIR_OP_SOURCE);
    assert_int_equal(src->n_inputs, 0);
    assert_null(src->op.input_ports[0]);
    assert_int_equal(src->n_outputs, 1);
    assert_string_equal(src->outputs[0], "out");
    assert_int_equal(src->n_params, 0);
    assert_null(src->op.params);
    assert_int_equal(src->op.snapshot_version, 3);
    assert_non_null(src->op.poll);
    assert_non_null(src->op.snapshot);

    reg_free(reg);
    /* A registered plugin is never unloaded. */
    assert_true(is_loaded(path));
    free(path);
}

static void test_explicit_ports(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *path = good_path("beta");
    assert_int_equal(reg_load_file(reg, path, NULL), 0);
    const reg_operator *o = reg_find(reg, "beta_sink");
    assert_non_null(o);
    assert_int_equal(o->n_inputs, 2);
    assert_string_equal(o->inputs[0], "left");
    assert_string_equal(o->inputs[1], "right");
    assert_null(o->op.input_ports[2]);
    assert_int_equal(o->n_outputs, 0);
    assert_null(o->op.output_ports[0]);
    assert_null(o->plugin->desc.description);
    reg_free(reg);
    free(path);
}

/* A plugin built against a newer minor: larger structs, unknown fields. */
static void test_larger_structs(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *path = good_path("big");
    char *err = NULL;
    assert_int_equal(reg_load_file(reg, path, &err), 0);
    assert_null(err);
    assert_int_equal(reg_count(reg), 1);
    const reg_operator *o = reg_get(reg, 0);
    assert_string_equal(o->op.name, "big_op");
    assert_int_equal(o->op.size, sizeof(weir_operator));
    assert_int_equal(o->op.flags, WEIR_OP_KEYED);
    assert_string_equal(o->op.version, "9.9.9");
    assert_string_equal(o->op.description, "Built against a newer minor.");
    assert_non_null(o->op.open);
    assert_non_null(o->op.process);
    assert_non_null(o->op.finish);
    assert_non_null(o->op.close);
    assert_null(o->op.on_timer);
    assert_int_equal(o->n_params, 1);
    assert_int_equal(o->params[0]->size, sizeof(weir_param_def));
    assert_string_equal(o->params[0]->name, "window");
    assert_int_equal(o->params[0]->type, WEIR_PARAM_DURATION);
    assert_int_equal(o->params[0]->flags, WEIR_PARAM_REQUIRED);
    assert_string_equal(o->params[0]->description, "Window length.");
    assert_string_equal(o->inputs[0], "in");
    assert_string_equal(o->outputs[0], "out");
    const weir_plugin *d = &o->plugin->desc;
    assert_int_equal(d->size, sizeof(weir_plugin));
    assert_int_equal(d->abi_minor, WEIR_ABI_MINOR + 7);
    assert_string_equal(d->name, "big");
    assert_string_equal(d->description, "From the future");
    reg_free(reg);
    free(path);
}

static void test_host_pointer(void **state)
{
    static const weir_host_api custom = {
        .size = sizeof(weir_host_api),
        .abi_major = WEIR_ABI_MAJOR,
        .abi_minor = WEIR_ABI_MINOR,
        .reserved = 0x5eed,
    };
    reg_registry *reg = reg_new(&custom);
    char *path = good_path("hostcheck");
    assert_int_equal(reg_load_file(reg, path, NULL), 0);
    const reg_operator *o = reg_find(reg, "hostcheck_op");
    assert_non_null(o);
    void *sym = dlsym(o->plugin->handle, "weir_test_seen_host");
    assert_non_null(sym);
    const weir_host_api *(*seen)(void);
    memcpy(&seen, &sym, sizeof seen);
    assert_ptr_equal(seen(), &custom);
    reg_free(reg);
    free(path);
}

/* ------------------------------------------------------------------------ */
/* Broken plugins: one cause each                                            */
/* ------------------------------------------------------------------------ */

/* Loads `path`, which must fail with a one-line message that names the file
 * and contains every string of `causes`; nothing may be registered and the
 * rejected object must be unloaded. */
static void expect_rejected(const char *path, const char *const *causes)
{
    reg_registry *reg = reg_new(api_table());
    char *err = NULL;
    assert_true(reg_load_file(reg, path, &err) < 0);
    assert_non_null(err);
    assert_contains(err, path);
    assert_null(strchr(err, '\n'));
    for (size_t i = 0; causes[i]; i++)
        assert_contains(err, causes[i]);
    assert_int_equal(reg_count(reg), 0);
    assert_false(is_loaded(path));
    free(err);
    reg_free(reg);
}

static void expect_broken(const char *stem, const char *const *causes)
{
    char *path = broken_path(stem);
    expect_rejected(path, causes);
    free(path);
}

#define BROKEN_TEST(stem, ...)                                                 \
    static void test_broken_##stem(void **state)                               \
    {                                                                          \
        const char *const causes[] = {__VA_ARGS__, NULL};                      \
        expect_broken(#stem, causes);                                          \
    }

BROKEN_TEST(no_entry, "missing entry symbol weir_plugin_entry")
BROKEN_TEST(entry_null, "weir_plugin_entry returned NULL")
BROKEN_TEST(plugin_size,
            "weir_plugin size 40 is smaller than the v1 minimum 48")
BROKEN_TEST(op_size, "operator #0",
            "weir_operator size 144 is smaller than the v1 minimum 152")
BROKEN_TEST(param_size, "operator 'param_size_op'", "parameter #0",
            "weir_param_def size 56 is smaller than the v1 minimum 64")
BROKEN_TEST(no_open, "operator 'lacks_open'", "required callback open is NULL")
BROKEN_TEST(no_close, "operator 'lacks_close'",
            "required callback close is NULL")
BROKEN_TEST(no_process, "operator 'lacks_process'",
            "required callback process is NULL")
BROKEN_TEST(no_poll, "operator 'ticker' (source)",
            "required callback poll is NULL")
BROKEN_TEST(op_null_name, "operator #1 has no name")
BROKEN_TEST(op_empty_name, "operator #1 has no name")
BROKEN_TEST(dup_in_plugin, "duplicate operator 'twice'",
            "declared twice in this file")
BROKEN_TEST(undefined_sym, "unresolved symbol",
            "undefined symbol: weir_test_no_such_function")
BROKEN_TEST(param_null_name, "operator 'param_op'", "parameter #1 has no name")
BROKEN_TEST(param_bad_type, "operator 'param_op'",
            "parameter 'weird' has unknown type 42")
BROKEN_TEST(param_bad_name, "parameter 'Bad-Name': bad name")
BROKEN_TEST(param_twice, "parameter 'first' is declared twice")
BROKEN_TEST(enum_no_choices, "enum parameter 'mode' has no choices")
BROKEN_TEST(port_twice, "operator 'port_op'",
            "output port 'out' is declared twice")
BROKEN_TEST(port_empty, "operator 'port_op'", "input port #1 has an empty name")
BROKEN_TEST(no_inputs, "operator 'port_op' is not a source but declares no "
                       "input ports")
BROKEN_TEST(no_operators, "declares no operators")
BROKEN_TEST(too_many_ops, "more than 4096 operators")

/* Plugins that would take the host down: the probe child dies, exits or
 * hangs instead, and the message says how and at which step. */
#define CTOR_STEP  "(in its constructor, while dlopen() ran it)"
#define ENTRY_STEP "(in weir_plugin_entry)"
#define TABLE_STEP "(reading the tables weir_plugin_entry returned"
BROKEN_TEST(ctor_segv, "probing it crashed with SIGSEGV " CTOR_STEP)
BROKEN_TEST(ctor_abort, "probing it crashed with SIGABRT " CTOR_STEP)
BROKEN_TEST(ctor_exit,
            "probing it exited with status 3 before it finished " CTOR_STEP)
BROKEN_TEST(entry_segv, "probing it crashed with SIGSEGV " ENTRY_STEP)
/* SIGSEGV, or exit status 1 where UBSan stops the misaligned read. */
BROKEN_TEST(entry_garbage, "probing it ", TABLE_STEP)
BROKEN_TEST(op_garbage, "probing it crashed with SIGSEGV " TABLE_STEP)
BROKEN_TEST(param_garbage, "probing it crashed with SIGSEGV " TABLE_STEP)
BROKEN_TEST(desc_garbage, "probing it crashed with SIGSEGV " TABLE_STEP)

/* A constructor that never returns: the probe is killed after its time-out
 * and the file refused; a good file loads after it. */
static void test_broken_ctor_loop(void **state)
{
    reg_registry *reg = reg_new(api_table());
    reg_set_probe_timeout(reg, 300);
    char *path = broken_path("ctor_loop");
    char *err = NULL;
    assert_true(reg_load_file(reg, path, &err) < 0);
    assert_contains(err, path);
    assert_contains(err, "probing it did not finish within 0.3 s " CTOR_STEP
                         "; killed it");
    assert_false(is_loaded(path));
    char *alpha = good_path("alpha");
    assert_int_equal(reg_load_file(reg, alpha, &err), 0);
    assert_int_equal(reg_count(reg), 2);
    free(err);
    free(alpha);
    free(path);
    reg_free(reg);
}

/* The files that failed to load are remembered, so that a command can tell
 * why an operator is missing. */
static void test_rejected_list(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *segv = broken_path("ctor_segv"), *alpha = good_path("alpha");
    char *no_open = broken_path("no_open");
    assert_int_equal(reg_rejected_count(reg), 0);
    assert_null(reg_rejected(reg, 0));
    assert_true(reg_load_file(reg, segv, NULL) < 0);
    assert_int_equal(reg_load_file(reg, alpha, NULL), 0);
    assert_true(reg_load_file(reg, no_open, NULL) < 0);
    assert_int_equal(reg_rejected_count(reg), 2);
    assert_contains(reg_rejected(reg, 0), segv);
    assert_contains(reg_rejected(reg, 0), "crashed with SIGSEGV");
    assert_contains(reg_rejected(reg, 1), no_open);
    assert_contains(reg_rejected(reg, 1), "required callback open is NULL");
    assert_null(reg_rejected(reg, 2));
    reg_free(reg);
    free(segv);
    free(alpha);
    free(no_open);
}

/* With SIGCHLD ignored the kernel reaps the probe child and its status is
 * lost: a good file still loads on its report, a crashing one is refused. */
static void test_probe_sigchld_ignored(void **state)
{
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    assert_int_equal(sigaction(SIGCHLD, &ign, &old), 0);
    reg_registry *reg = reg_new(api_table());
    char *alpha = good_path("alpha"), *segv = broken_path("ctor_segv");
    char *err = NULL;
    assert_int_equal(reg_load_file(reg, alpha, &err), 0);
    assert_true(reg_load_file(reg, segv, &err) < 0);
    assert_contains(err, segv);
    assert_contains(err, "probing it ended without a report " CTOR_STEP);
    assert_int_equal(reg_count(reg), 2);
    assert_int_equal(sigaction(SIGCHLD, &old, NULL), 0);
    free(err);
    free(alpha);
    free(segv);
    reg_free(reg);
}

/* With probing off (time-out 0) files are dlopen()ed directly; the table
 * checks are the same. */
static void test_probe_off(void **state)
{
    reg_registry *reg = reg_new(api_table());
    reg_set_probe_timeout(reg, 0);
    char *alpha = good_path("alpha"), *no_open = broken_path("no_open");
    char *err = NULL;
    assert_int_equal(reg_load_file(reg, alpha, &err), 0);
    assert_true(reg_load_file(reg, no_open, &err) < 0);
    assert_contains(err, "required callback open is NULL");
    assert_false(is_loaded(no_open));
    assert_int_equal(reg_count(reg), 2);
    free(err);
    free(alpha);
    free(no_open);
    reg_free(reg);
}

static void test_broken_abi_major(void **state)
{
    /* The plugin says 2.4 (WEIR_ABI_MAJOR + 1); the host wants 1. */
    char want[64], has[64];
    snprintf(has, sizeof has, "built for ABI %d.4", WEIR_ABI_MAJOR + 1);
    snprintf(want, sizeof want, "the host wants major %d", WEIR_ABI_MAJOR);
    const char *const causes[] = {"ABI major version mismatch", has, want,
                                  NULL};
    expect_broken("abi_major", causes);
}

static void test_not_elf(void **state)
{
    char *dir = make_tmpdir();
    write_file(dir, "x.so", "this is a text file, not a plugin\n");
    char *path = NULL;
    assert_true(asprintf(&path, "%s/x.so", dir) > 0);
    const char *const causes[] = {"not an ELF shared object", "dlopen: ", NULL};
    expect_rejected(path, causes);
    free(path);
    rm_rf(dir);
}

/* An ELF magic but nothing loadable behind it. */
static void test_bad_elf(void **state)
{
    char *dir = make_tmpdir();
    write_file(dir, "elf.so", "\177ELF and then garbage, not an object\n");
    char *path = NULL;
    assert_true(asprintf(&path, "%s/elf.so", dir) > 0);
    const char *const causes[] = {"dlopen failed: ", NULL};
    expect_rejected(path, causes);
    free(path);
    rm_rf(dir);
}

static void test_missing_file(void **state)
{
    char *dir = make_tmpdir();
    char *path = NULL;
    assert_true(asprintf(&path, "%s/absent.so", dir) > 0);
    const char *const causes[] = {"cannot open plugin", "No such file", NULL};
    expect_rejected(path, causes);
    free(path);
    rm_rf(dir);
}

static void test_directory_named_so(void **state)
{
    char *dir = make_tmpdir();
    char *path = NULL;
    assert_true(asprintf(&path, "%s/sub.so", dir) > 0);
    assert_int_equal(mkdir(path, 0755), 0);
    const char *const causes[] = {"not a regular file", NULL};
    expect_rejected(path, causes);
    free(path);
    rm_rf(dir);
}

/* A plugin whose operator name is taken is refused as a whole, and the
 * message names both files. */
static void test_duplicate_across_files(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *alpha = good_path("alpha");
    char *dup = broken_path("dup_alpha");
    char *err = NULL;
    assert_int_equal(reg_load_file(reg, alpha, &err), 0);
    assert_true(reg_load_file(reg, dup, &err) < 0);
    assert_contains(err, dup);
    assert_contains(err, "duplicate operator 'alpha_map'");
    assert_contains(err, alpha);
    assert_null(reg_find(reg, "dup_only"));
    assert_int_equal(reg_count(reg), 2);
    assert_ptr_equal(reg_find(reg, "alpha_map")->plugin->path,
                     reg_find(reg, "alpha_source")->plugin->path);
    assert_string_equal(reg_find(reg, "alpha_map")->plugin->path, alpha);
    assert_false(is_loaded(dup));

    /* The same file a second time is a duplicate of itself. */
    assert_true(reg_load_file(reg, alpha, &err) < 0);
    assert_contains(err, "duplicate operator");
    assert_int_equal(reg_count(reg), 2);
    free(err);
    reg_free(reg);
    free(alpha);
    free(dup);
}

/* ------------------------------------------------------------------------ */
/* Directories                                                               */
/* ------------------------------------------------------------------------ */

typedef struct errors {
    char *msg[16];
    size_t n;
} errors;

static void collect(void *arg, const char *msg)
{
    errors *e = arg;
    assert_true(e->n < 16);
    e->msg[e->n++] = strdup(msg);
}

static void errors_free(errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->msg[i]);
}

static void test_dir_good_next_to_bad(void **state)
{
    char *dir = make_tmpdir();
    char *alpha = good_path("alpha"), *beta = good_path("beta");
    char *no_open = broken_path("no_open"), *dup = broken_path("dup_alpha");
    link_into(dir, "a_no_open.so", no_open);
    link_into(dir, "b_alpha.so", alpha);
    write_file(dir, "c_text.so", "not a plugin\n");
    link_into(dir, "d_beta.so", beta);
    link_into(dir, "e_dup.so", dup);
    link_into(dir, ".hidden.so", no_open);       /* skipped: dot file */
    link_into(dir, "alpha.so.1", alpha);         /* skipped: not *.so */
    write_file(dir, "README", "not a plugin\n"); /* skipped */

    reg_registry *reg = reg_new(api_table());
    errors e = {0};
    char *err = NULL;
    assert_int_equal(reg_load_dir(reg, dir, collect, &e, &err), 2);
    assert_null(err);
    /* Reported in name order, each naming its file. */
    assert_int_equal(e.n, 3);
    assert_contains(e.msg[0], "/a_no_open.so: ");
    assert_contains(e.msg[0], "required callback open is NULL");
    assert_contains(e.msg[1], "/c_text.so: ");
    assert_contains(e.msg[1], "not an ELF shared object");
    assert_contains(e.msg[2], "/e_dup.so: ");
    assert_contains(e.msg[2], "b_alpha.so");
    assert_int_equal(reg_count(reg), 3);
    assert_string_equal(reg_get(reg, 0)->op.name, "alpha_map");
    assert_string_equal(reg_get(reg, 1)->op.name, "alpha_source");
    assert_string_equal(reg_get(reg, 2)->op.name, "beta_sink");
    assert_contains(reg_get(reg, 2)->plugin->path, "/d_beta.so");
    errors_free(&e);
    reg_free(reg);

    /* Without a callback, errors are logged and loading goes on. */
    reg = reg_new(api_table());
    assert_int_equal(reg_load_dir(reg, dir, NULL, NULL, NULL), 2);
    assert_int_equal(reg_count(reg), 3);
    reg_free(reg);

    free(alpha);
    free(beta);
    free(no_open);
    free(dup);
    rm_rf(dir);
}

/* Crashing plugins between good ones: every good one loads. */
static void test_dir_crashers_next_to_good(void **state)
{
    char *dir = make_tmpdir();
    char *alpha = good_path("alpha"), *beta = good_path("beta");
    char *segv = broken_path("ctor_segv"), *garbage = broken_path("op_garbage");
    link_into(dir, "a_segv.so", segv);
    link_into(dir, "b_alpha.so", alpha);
    link_into(dir, "c_garbage.so", garbage);
    link_into(dir, "d_beta.so", beta);

    reg_registry *reg = reg_new(api_table());
    errors e = {0};
    char *err = NULL;
    assert_int_equal(reg_load_dir(reg, dir, collect, &e, &err), 2);
    assert_null(err);
    assert_int_equal(e.n, 2);
    assert_contains(e.msg[0], "plugin ");
    assert_contains(e.msg[0], "/a_segv.so: probing it crashed with SIGSEGV");
    assert_contains(e.msg[0], "; skipped");
    assert_contains(e.msg[1], "/c_garbage.so: probing it crashed with SIGSEGV");
    assert_int_equal(reg_count(reg), 3);
    assert_non_null(reg_find(reg, "alpha_map"));
    assert_non_null(reg_find(reg, "beta_sink"));
    assert_null(reg_find(reg, "op_garbage_first"));
    errors_free(&e);
    reg_free(reg);
    free(alpha);
    free(beta);
    free(segv);
    free(garbage);
    rm_rf(dir);
}

/* One probe child serves a directory: a file that hangs is killed and
 * refused, and the files before and after it load. */
static void test_dir_hang_next_to_good(void **state)
{
    char *dir = make_tmpdir();
    char *alpha = good_path("alpha"), *beta = good_path("beta");
    char *loop = broken_path("ctor_loop");
    link_into(dir, "a_alpha.so", alpha);
    link_into(dir, "b_loop.so", loop);
    link_into(dir, "c_beta.so", beta);

    reg_registry *reg = reg_new(api_table());
    reg_set_probe_timeout(reg, 300);
    errors e = {0};
    assert_int_equal(reg_load_dir(reg, dir, collect, &e, NULL), 2);
    assert_int_equal(e.n, 1);
    assert_contains(e.msg[0], "/b_loop.so: probing it did not finish within "
                              "0.3 s " CTOR_STEP "; killed it; skipped");
    assert_non_null(reg_find(reg, "alpha_map"));
    assert_non_null(reg_find(reg, "beta_sink"));
    errors_free(&e);
    reg_free(reg);
    free(alpha);
    free(beta);
    free(loop);
    rm_rf(dir);
}

static void test_dir_empty_and_missing(void **state)
{
    char *dir = make_tmpdir();
    reg_registry *reg = reg_new(api_table());
    errors e = {0};
    char *err = NULL;
    assert_int_equal(reg_load_dir(reg, dir, collect, &e, &err), 0);
    assert_int_equal(e.n, 0);
    assert_null(err);

    char *missing = NULL;
    assert_true(asprintf(&missing, "%s/none", dir) > 0);
    assert_true(reg_load_dir(reg, missing, collect, &e, &err) < 0);
    assert_contains(err, missing);
    assert_contains(err, "cannot read plugin directory");
    assert_int_equal(e.n, 0);
    free(err);
    free(missing);
    reg_free(reg);
    rm_rf(dir);
}

static void test_suggest(void **state)
{
    reg_registry *reg = reg_new(api_table());
    char *alpha = good_path("alpha");
    char *beta = good_path("beta");
    assert_null(reg_suggest(reg, "alpha_map"));
    assert_int_equal(reg_load_file(reg, alpha, NULL), 0);
    assert_int_equal(reg_load_file(reg, beta, NULL), 0);
    assert_string_equal(reg_suggest(reg, "alpha_mpa")->op.name, "alpha_map");
    assert_string_equal(reg_suggest(reg, "alpha_sourc")->op.name,
                        "alpha_source");
    assert_string_equal(reg_suggest(reg, "bta_sink")->op.name, "beta_sink");
    assert_null(reg_suggest(reg, "zzzzzzzz"));
    assert_null(reg_suggest(reg, ""));
    reg_free(reg);
    free(alpha);
    free(beta);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alpha_normalised),
        cmocka_unit_test(test_explicit_ports),
        cmocka_unit_test(test_larger_structs),
        cmocka_unit_test(test_host_pointer),
        cmocka_unit_test(test_broken_no_entry),
        cmocka_unit_test(test_broken_entry_null),
        cmocka_unit_test(test_broken_ctor_segv),
        cmocka_unit_test(test_broken_ctor_abort),
        cmocka_unit_test(test_broken_ctor_exit),
        cmocka_unit_test(test_broken_ctor_loop),
        cmocka_unit_test(test_broken_entry_segv),
        cmocka_unit_test(test_broken_entry_garbage),
        cmocka_unit_test(test_broken_op_garbage),
        cmocka_unit_test(test_broken_param_garbage),
        cmocka_unit_test(test_broken_desc_garbage),
        cmocka_unit_test(test_rejected_list),
        cmocka_unit_test(test_probe_sigchld_ignored),
        cmocka_unit_test(test_probe_off),
        cmocka_unit_test(test_broken_abi_major),
        cmocka_unit_test(test_broken_plugin_size),
        cmocka_unit_test(test_broken_op_size),
        cmocka_unit_test(test_broken_param_size),
        cmocka_unit_test(test_broken_no_open),
        cmocka_unit_test(test_broken_no_close),
        cmocka_unit_test(test_broken_no_process),
        cmocka_unit_test(test_broken_no_poll),
        cmocka_unit_test(test_broken_op_null_name),
        cmocka_unit_test(test_broken_op_empty_name),
        cmocka_unit_test(test_broken_dup_in_plugin),
        cmocka_unit_test(test_broken_undefined_sym),
        cmocka_unit_test(test_broken_param_null_name),
        cmocka_unit_test(test_broken_param_bad_type),
        cmocka_unit_test(test_broken_param_bad_name),
        cmocka_unit_test(test_broken_param_twice),
        cmocka_unit_test(test_broken_enum_no_choices),
        cmocka_unit_test(test_broken_port_twice),
        cmocka_unit_test(test_broken_port_empty),
        cmocka_unit_test(test_broken_no_inputs),
        cmocka_unit_test(test_broken_no_operators),
        cmocka_unit_test(test_not_elf),
        cmocka_unit_test(test_broken_too_many_ops),
        cmocka_unit_test(test_bad_elf),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_directory_named_so),
        cmocka_unit_test(test_duplicate_across_files),
        cmocka_unit_test(test_dir_good_next_to_bad),
        cmocka_unit_test(test_dir_crashers_next_to_good),
        cmocka_unit_test(test_dir_hang_next_to_good),
        cmocka_unit_test(test_dir_empty_and_missing),
        cmocka_unit_test(test_suggest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
