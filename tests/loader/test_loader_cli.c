/*
 * test_loader_cli.c - `weir plugins` run as a real process (the built
 * bin/weir) against directories of test plugins: the list, one operator's
 * detail, --json parsed with jansson, error exits, and the default plugin
 * directories found relative to a copy of the binary.
 *
 * Run with the argument "probe", it runs the second group instead: plugins
 * that crash, exit or hang while they load, next to good ones, under
 * `weir plugins`, `weir validate` and `weir run --no-supervisor` (each must
 * name the file and go on), and a ./plugins folder in the current directory
 * that must not be loaded by default.
 */
#include <errno.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#define assert_contains(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay);                                                \
        const char *n_ = (needle);                                             \
        if (!h_ || !strstr(h_, n_))                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)",     \
                     n_);                                                      \
    } while (0)

#define assert_not_contains(hay, needle)                                       \
    do {                                                                       \
        const char *h_ = (hay);                                                \
        const char *n_ = (needle);                                             \
        if (strstr(h_, n_))                                                    \
            fail_msg("\"%s\" contains \"%s\"", h_, n_);                        \
    } while (0)

/* What one run of the binary produced. */
typedef struct run {
    int status; /* exit code, or -1 when killed by a signal */
    char *out;
    char *err;
} run;

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static char *tmp_root;

/* Runs `exe` with the NULL-terminated `args` (argv[1]...) in `cwd`. */
static run run_in(const char *exe, const char *cwd, const char *const *args)
{
    char *out_path = NULL, *err_path = NULL;
    assert_true(asprintf(&out_path, "%s/stdout", tmp_root) > 0);
    assert_true(asprintf(&err_path, "%s/stderr", tmp_root) > 0);
    const char *argv[32] = {exe};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        assert_true(n < 31);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 ||
            (cwd && chdir(cwd) != 0))
            _exit(126);
        unsetenv("WEIR_LOG");
        /* --dir adds to the default directories; these tests list exactly
         * the directories they give, unless a test asks otherwise. */
        if (!getenv("LOADER_WITH_DEFAULTS"))
            setenv("WEIR_NO_DEFAULT_PLUGINS", "1", 1);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    /* A guard against a hung binary (a plugin that never returns), far
     * above any normal run: the test then fails instead of hanging. */
    int st = 0;
    pid_t got = 0;
    for (int ms = 0; (got = waitpid(pid, &st, WNOHANG)) == 0; ms += 10) {
        if (ms == 60000) {
            kill(pid, SIGKILL);
            fprintf(stderr, "killed %s after 60 s\n", exe);
        }
        usleep(10000);
    }
    assert_int_equal(got, pid);
    run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_all(out_path),
             read_all(err_path)};
    free(out_path);
    free(err_path);
    return r;
}

static run weir(const char *const *args)
{
    return run_in(WEIR_BIN, NULL, args);
}

static void run_free(run *r)
{
    free(r->out);
    free(r->err);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    return remove(path);
}

static char *path_join(const char *a, const char *b)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/%s", a, b) > 0);
    return p;
}

static char *mkdir_in(const char *parent, const char *name)
{
    char *p = path_join(parent, name);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static void link_plugin(const char *dir, const char *name, const char *src_dir,
                        const char *stem)
{
    char *target = NULL;
    assert_true(asprintf(&target, "%s/%s.so", src_dir, stem) > 0);
    char *p = path_join(dir, name);
    assert_int_equal(symlink(target, p), 0);
    free(p);
    free(target);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY);
    assert_true(in >= 0);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    assert_int_equal(n, 0);
    close(in);
    assert_int_equal(close(out), 0);
}

/* Fixture: plugins/ with alpha and beta and one broken plugin; only_beta/
 * with beta alone. */
static char *plugins_dir, *beta_dir;

static int setup(void **state)
{
    char *tmpl = NULL;
    if (asprintf(&tmpl, "%s/cli.XXXXXX", LOADER_TMP_DIR) < 0 || !mkdtemp(tmpl))
        return -1;
    tmp_root = tmpl;
    plugins_dir = mkdir_in(tmp_root, "plugins");
    link_plugin(plugins_dir, "alpha.so", LOADER_GOOD_DIR, "alpha");
    link_plugin(plugins_dir, "beta.so", LOADER_GOOD_DIR, "beta");
    link_plugin(plugins_dir, "no_entry.so", LOADER_BROKEN_DIR, "no_entry");
    beta_dir = mkdir_in(tmp_root, "only_beta");
    link_plugin(beta_dir, "beta.so", LOADER_GOOD_DIR, "beta");
    return 0;
}

static int teardown(void **state)
{
    nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(tmp_root);
    free(plugins_dir);
    free(beta_dir);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Text output                                                               */
/* ------------------------------------------------------------------------ */

static void test_list(void **state)
{
    const char *args[] = {"plugins", "--dir", plugins_dir, NULL};
    run r = weir(args);
    assert_int_equal(r.status, 0);
    /* One line per operator, in name order, with version, file and
     * description. */
    const char *lines[] = {"alpha_map", "alpha_source", "beta_sink"};
    const char *p = r.out;
    for (size_t i = 0; i < 3; i++) {
        assert_true(strncmp(p, lines[i], strlen(lines[i])) == 0);
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    assert_string_equal(p, "");
    assert_contains(r.out, "alpha_map     1.2.0    alpha.so  Maps records "
                           "(test plugin).\n");
    assert_contains(r.out, "beta_sink     0.3.0    beta.so   Joins two inputs");
    /* The broken plugin is a warning that names it, not a failure. */
    assert_contains(r.err, "warning");
    assert_contains(r.err, "no_entry.so");
    assert_contains(r.err, "missing entry symbol weir_plugin_entry");
    run_free(&r);
}

static void test_detail(void **state)
{
    const char *args[] = {"plugins", "alpha_map", "--dir", plugins_dir, NULL};
    run r = weir(args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_contains(r.out, "/plugins/alpha.so");
    assert_contains(r.out, "alpha 1.2.0");
    assert_contains(r.out, "Flags:       keyed\n");
    assert_contains(r.out, "Inputs:      in\n");
    assert_contains(r.out, "Outputs:     out\n");
    const char *params[] = {"interval", "mode",    "limit",  "ratio",
                            "label",    "verbose", "buffer", "extra"};
    for (size_t i = 0; i < 8; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n  %s\n", params[i]);
        assert_contains(r.out, line);
    }
    assert_contains(r.out, "duration, default 1s, min 10 ms, max 3600000 ms");
    assert_contains(r.out, "Time between two records.");
    assert_contains(r.out, "enum (fast, slow), default fast");
    assert_contains(r.out, "int, required, min 1\n");
    assert_contains(r.out, "double, default 0.5, min 0, max 1.5\n");
    assert_contains(r.out, "size, default 64KiB\n");
    run_free(&r);

    const char *beta_args[] = {"plugins", "--dir", plugins_dir, "beta_sink",
                               NULL};
    r = weir(beta_args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "Inputs:      left, right\n");
    assert_contains(r.out, "Outputs:     (none)\n");
    assert_contains(r.out, "Parameters:\n  (none)\n");
    run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s at line %d): %s", jerr.text, jerr.line, text);
    return j;
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static json_t *find_param(json_t *params, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(params, i, p)
    {
        if (!strcmp(jstr(p, "name"), name))
            return p;
    }
    fail_msg("no parameter %s", name);
    return NULL;
}

static void test_json_list(void **state)
{
    const char *args[] = {"plugins", "--json", "--dir", plugins_dir, NULL};
    run r = weir(args);
    assert_int_equal(r.status, 0);
    json_t *j = parse(r.out);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 3);
    const char *names[] = {"alpha_map", "alpha_source", "beta_sink"};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = json_array_get(j, i);
        assert_string_equal(jstr(o, "name"), names[i]);
        json_t *pl = json_object_get(o, "plugin");
        assert_true(json_is_object(pl));
        assert_contains(jstr(pl, "file"), i < 2 ? "/alpha.so" : "/beta.so");
        assert_true(json_is_array(json_object_get(o, "params")));
    }
    json_t *src = json_array_get(j, 1);
    assert_true(json_is_true(json_object_get(src, "source")));
    assert_int_equal(json_array_size(json_object_get(src, "inputs")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(src, "snapshot_version")), 3);
    json_decref(j);
    run_free(&r);
}

static void test_json_one(void **state)
{
    const char *args[] = {"plugins", "--dir",     plugins_dir,
                          "--json",  "alpha_map", NULL};
    run r = weir(args);
    assert_int_equal(r.status, 0);
    json_t *o = parse(r.out);
    assert_true(json_is_object(o));
    assert_string_equal(jstr(o, "name"), "alpha_map");
    assert_string_equal(jstr(o, "version"), "1.2.0");
    assert_string_equal(jstr(o, "description"), "Maps records (test plugin).");
    json_t *pl = json_object_get(o, "plugin");
    assert_string_equal(jstr(pl, "name"), "alpha");
    assert_string_equal(jstr(pl, "version"), "1.2.0");
    assert_contains(jstr(pl, "file"), "/plugins/alpha.so");
    assert_int_equal(json_integer_value(json_object_get(pl, "abi_major")), 1);
    assert_true(json_is_false(json_object_get(o, "source")));
    assert_true(json_is_true(json_object_get(o, "keyed")));
    json_t *in = json_object_get(o, "inputs");
    assert_int_equal(json_array_size(in), 1);
    assert_string_equal(json_string_value(json_array_get(in, 0)), "in");
    json_t *out = json_object_get(o, "outputs");
    assert_string_equal(json_string_value(json_array_get(out, 0)), "out");

    json_t *params = json_object_get(o, "params");
    assert_int_equal(json_array_size(params), 8);
    json_t *iv = find_param(params, "interval");
    assert_string_equal(jstr(iv, "type"), "duration");
    assert_string_equal(jstr(iv, "default"), "1s");
    assert_true(json_is_false(json_object_get(iv, "required")));
    assert_true(json_number_value(json_object_get(iv, "min")) == 10.0);
    assert_true(json_number_value(json_object_get(iv, "max")) == 3600000.0);
    assert_string_equal(jstr(iv, "description"), "Time between two records.");
    assert_null(json_object_get(iv, "choices"));
    json_t *limit = find_param(params, "limit");
    assert_true(json_is_true(json_object_get(limit, "required")));
    assert_true(json_is_null(json_object_get(limit, "default")));
    assert_true(json_number_value(json_object_get(limit, "min")) == 1.0);
    assert_null(json_object_get(limit, "max"));
    json_t *mode = find_param(params, "mode");
    assert_string_equal(jstr(mode, "type"), "enum");
    json_t *ch = json_object_get(mode, "choices");
    assert_int_equal(json_array_size(ch), 2);
    assert_string_equal(json_string_value(json_array_get(ch, 1)), "slow");
    json_t *ratio = find_param(params, "ratio");
    assert_true(json_number_value(json_object_get(ratio, "max")) == 1.5);
    assert_true(json_is_null(
        json_object_get(find_param(params, "verbose"), "description")));
    json_decref(o);
    run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Errors and options                                                        */
/* ------------------------------------------------------------------------ */

static void test_unknown_name(void **state)
{
    const char *args[] = {"plugins", "--dir", plugins_dir, "alpha_mpa", NULL};
    run r = weir(args);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "no operator named 'alpha_mpa'");
    assert_contains(r.err, "did you mean 'alpha_map'?");
    run_free(&r);

    const char *far[] = {
        "plugins", "--dir", plugins_dir, "--json", "completely_different",
        NULL};
    r = weir(far);
    assert_int_equal(r.status, 2);
    assert_not_contains(r.err, "did you mean");
    assert_contains(r.err, "no operator named 'completely_different'");
    run_free(&r);
}

static void test_bad_usage(void **state)
{
    const char *bogus[] = {"plugins", "--bogus", NULL};
    run r = weir(bogus);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "--bogus");
    run_free(&r);

    const char *no_value[] = {"plugins", "--dir", NULL};
    r = weir(no_value);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "--dir needs a directory");
    run_free(&r);

    const char *empty_value[] = {"plugins", "--dir=", NULL};
    r = weir(empty_value);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "--dir needs a directory");
    run_free(&r);

    const char *two_names[] = {"plugins", "--dir", plugins_dir, "a", "b", NULL};
    r = weir(two_names);
    assert_int_equal(r.status, 2);
    run_free(&r);

    char *missing = path_join(tmp_root, "missing");
    const char *bad_dir[] = {"plugins", "--dir", missing, NULL};
    r = weir(bad_dir);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, missing);
    assert_contains(r.err, "cannot read plugin directory");
    run_free(&r);
    free(missing);

    const char *help[] = {"plugins", "--help", NULL};
    r = weir(help);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "usage: weir plugins");
    run_free(&r);
}

/* Several --dir load all of them; a clash between them is a warning. */
static void test_several_dirs(void **state)
{
    char *alpha_only = mkdir_in(tmp_root, "only_alpha");
    link_plugin(alpha_only, "alpha.so", LOADER_GOOD_DIR, "alpha");
    const char *args[] = {"plugins", "--dir", alpha_only,
                          "--dir=" /* placeholder */, NULL};
    char *opt = NULL;
    assert_true(asprintf(&opt, "--dir=%s", beta_dir) > 0);
    args[3] = opt;
    run r = weir(args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_contains(r.out, "beta_sink");
    assert_string_equal(r.err, "");
    run_free(&r);

    const char *clash[] = {"plugins", "--dir",  plugins_dir,
                           "--dir",   beta_dir, NULL};
    r = weir(clash);
    assert_int_equal(r.status, 0);
    assert_contains(r.err, "only_beta/beta.so: duplicate operator 'beta_sink'");
    assert_contains(r.err, "plugins/beta.so");
    run_free(&r);
    free(opt);
    free(alpha_only);
}

/* ------------------------------------------------------------------------ */
/* Default directories                                                       */
/* ------------------------------------------------------------------------ */

/* A copy of the binary at <root>/bin/weir (the kernel resolves
 * /proc/self/exe through symlinks, so it must be a copy). */
static char *install_copy(const char *root)
{
    char *bin = mkdir_in(root, "bin");
    char *exe = path_join(bin, "weir");
    copy_file(WEIR_BIN, exe, 0755);
    free(bin);
    return exe;
}

static void test_default_dirs(void **state)
{
    char *root = mkdir_in(tmp_root, "inst");
    char *exe = install_copy(root);
    char *plugins = mkdir_in(root, "plugins");
    link_plugin(plugins, "alpha.so", LOADER_GOOD_DIR, "alpha");
    char *empty = mkdir_in(root, "empty_cwd");
    char *empty_plugins = mkdir_in(empty, "plugins"); /* holds no .so */

    /* <bin>/../plugins, and an empty ./plugins is fine, silently. */
    const char *args[] = {"plugins", NULL};
    run r = run_in(exe, empty, args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_contains(r.out, "alpha_source");
    assert_not_contains(r.out, "beta_sink");
    assert_string_equal(r.err, "");
    run_free(&r);

    /* ./plugins is the same folder as <bin>/../plugins: loaded once. */
    r = run_in(exe, root, args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_string_equal(r.err, "");
    run_free(&r);

    /* <bin>/../lib/weir/plugins adds to it; ./plugins of the current
     * directory is never a default. */
    char *lib = mkdir_in(root, "lib");
    char *libweir = mkdir_in(lib, "weir");
    char *libplugins = mkdir_in(libweir, "plugins");
    link_plugin(libplugins, "beta.so", LOADER_GOOD_DIR, "beta");
    char *cwd = mkdir_in(root, "cwd");
    char *cwd_plugins = mkdir_in(cwd, "plugins");
    link_plugin(cwd_plugins, "hostcheck.so", LOADER_GOOD_DIR, "hostcheck");
    r = run_in(exe, cwd, args);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_contains(r.out, "beta_sink");
    assert_not_contains(r.out, "hostcheck_op");
    assert_string_equal(r.err, "");
    run_free(&r);

    /* --dir adds to the defaults; WEIR_NO_DEFAULT_PLUGINS leaves them out
     * (the child sets it unless LOADER_WITH_DEFAULTS is set). */
    const char *only[] = {"plugins", "--dir", beta_dir, NULL};
    r = run_in(exe, cwd, only);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "beta_sink");
    assert_not_contains(r.out, "alpha_map");
    assert_not_contains(r.out, "hostcheck_op");
    run_free(&r);
    assert_int_equal(setenv("LOADER_WITH_DEFAULTS", "1", 1), 0);
    r = run_in(exe, cwd, only);
    assert_int_equal(unsetenv("LOADER_WITH_DEFAULTS"), 0);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "beta_sink");
    assert_contains(r.out, "alpha_map");
    assert_not_contains(r.out, "hostcheck_op");
    assert_not_contains(r.err, "duplicate");
    run_free(&r);

    free(cwd_plugins);
    free(cwd);
    free(libplugins);
    free(libweir);
    free(lib);
    free(empty_plugins);
    free(empty);
    free(plugins);
    free(exe);
    free(root);
}

/* ------------------------------------------------------------------------ */
/* Plugins that crash or hang while loading ("probe" group)                 */
/* ------------------------------------------------------------------------ */

/* Uses only bundled operators. */
static const char tiny_job[] =
    "job: tiny\n"
    "operators:\n"
    "  - {id: src, type: gen, config: {count: 100}}\n"
    "  - {id: sink, type: discard, inputs: [src]}\n";

static char *write_in(const char *dir, const char *name, const char *text)
{
    char *p = path_join(dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    return p;
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

#define CTOR_STEP  "(in its constructor, while dlopen() ran it)"
#define ENTRY_STEP "(in weir_plugin_entry)"
#define TABLE_STEP "(reading the tables weir_plugin_entry returned"

/* A broken plugin and the cause `weir` must give for it: the message
 * starts with `cause` and holds `step` (when not NULL). */
typedef struct bad_plugin {
    const char *stem;
    const char *cause;
    const char *step;
} bad_plugin;

static const bad_plugin bad_plugins[] = {
    {"ctor_segv", "probing it crashed with SIGSEGV " CTOR_STEP, NULL},
    {"ctor_abort", "probing it crashed with SIGABRT " CTOR_STEP, NULL},
    {"ctor_exit",
     "probing it exited with status 3 before it finished " CTOR_STEP, NULL},
    {"ctor_loop", "probing it did not finish within 2 s " CTOR_STEP, NULL},
    {"entry_segv", "probing it crashed with SIGSEGV " ENTRY_STEP, NULL},
    /* SIGSEGV, or exit status 1 where UBSan stops the misaligned read. */
    {"entry_garbage", "probing it ", TABLE_STEP},
    {"op_garbage", "probing it crashed with SIGSEGV " TABLE_STEP, NULL},
    {"param_garbage", "probing it crashed with SIGSEGV " TABLE_STEP, NULL},
    {"desc_garbage", "probing it crashed with SIGSEGV " TABLE_STEP, NULL},
};

/* Asserts that `err` holds the warning for `file`: "weir: warning: plugin
 * FILE: CAUSE...; skipped", with `step` in it unless NULL. */
static void assert_skipped(const char *err, const char *file, const char *cause,
                           const char *step)
{
    char *want = NULL;
    assert_true(asprintf(&want, "weir: warning: plugin %s: %s", file, cause) >
                0);
    assert_contains(err, want);
    const char *line = strstr(err, want);
    const char *eol = strchr(line, '\n');
    assert_non_null(eol);
    assert_true(eol - line > 9 && !strncmp(eol - 9, "; skipped", 9));
    char *text = strndup(line, (size_t)(eol - line));
    assert_non_null(text);
    if (step)
        assert_contains(text, step);
    free(text);
    free(want);
}

/* The bad plugin next to alpha in its own folder: `weir plugins`, `weir
 * validate` and `weir run` of a job that does not use it all succeed and
 * name the file with the cause. */
static void check_bad_plugin(const bad_plugin *bp)
{
    char *dir = mkdir_in(tmp_root, bp->stem);
    char *so = NULL;
    assert_true(asprintf(&so, "%s.so", bp->stem) > 0);
    link_plugin(dir, "alpha.so", LOADER_GOOD_DIR, "alpha");
    link_plugin(dir, so, LOADER_BROKEN_DIR, bp->stem);
    char *file = path_join(dir, so);
    char *job = write_in(dir, "job.yaml", tiny_job);

    const char *list[] = {"plugins", "--dir", dir, NULL};
    run r = weir(list);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "alpha_map");
    assert_contains(r.out, "alpha_source");
    assert_skipped(r.err, file, bp->cause, bp->step);
    run_free(&r);

    const char *validate[] = {
        "validate", "--dir", WEIR_PLUGIN_DIR, "--dir", dir, job, NULL};
    r = weir(validate);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, ": ok (2 operators");
    assert_skipped(r.err, file, bp->cause, bp->step);
    run_free(&r);

    const char *exec[] = {
        "run", "--no-supervisor", "--dir", WEIR_PLUGIN_DIR, "--dir", dir, job,
        NULL};
    r = run_in(WEIR_BIN, dir, exec);
    assert_int_equal(r.status, 0);
    assert_skipped(r.err, file, bp->cause, bp->step);
    run_free(&r);

    free(job);
    free(file);
    free(so);
    free(dir);
}

#define BAD_PLUGIN_TEST(i, nm)                                                 \
    static void test_probe_##nm(void **state)                                  \
    {                                                                          \
        assert_string_equal(bad_plugins[i].stem, #nm);                         \
        check_bad_plugin(&bad_plugins[i]);                                     \
    }

BAD_PLUGIN_TEST(0, ctor_segv)
BAD_PLUGIN_TEST(1, ctor_abort)
BAD_PLUGIN_TEST(2, ctor_exit)
BAD_PLUGIN_TEST(4, entry_segv)
BAD_PLUGIN_TEST(5, entry_garbage)
BAD_PLUGIN_TEST(6, op_garbage)
BAD_PLUGIN_TEST(7, param_garbage)
BAD_PLUGIN_TEST(8, desc_garbage)

/* The hung constructor, with a 2 s probe time-out instead of 5 s. */
static void test_probe_ctor_loop(void **state)
{
    assert_int_equal(setenv("WEIR_PLUGIN_PROBE_TIMEOUT_MS", "2000", 1), 0);
    check_bad_plugin(&bad_plugins[3]);
    assert_int_equal(unsetenv("WEIR_PLUGIN_PROBE_TIMEOUT_MS"), 0);
}

/* A job that needs the operator of a skipped plugin fails with exit 2, and
 * the message names the file and why it was skipped. */
static void test_probe_needed_operator(void **state)
{
    char *dir = mkdir_in(tmp_root, "needed");
    link_plugin(dir, "ctor_segv.so", LOADER_BROKEN_DIR, "ctor_segv");
    char *file = path_join(dir, "ctor_segv.so");
    char *job = write_in(dir, "job.yaml",
                         "operators:\n"
                         "  - {id: src, type: gen}\n"
                         "  - {id: bad, type: ctor_segv_op, inputs: [src]}\n");
    const char *cause = bad_plugins[0].cause;
    char *note = NULL;
    assert_true(asprintf(&note,
                         "weir: note: 1 plugin file was skipped and may "
                         "provide it: %s: %s",
                         file, cause) > 0);

    const char *validate[] = {
        "validate", "--dir", WEIR_PLUGIN_DIR, "--dir", dir, job, NULL};
    run r = weir(validate);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "unknown operator type 'ctor_segv_op'");
    assert_skipped(r.err, file, cause, NULL);
    assert_contains(r.err, note);
    run_free(&r);

    const char *exec[] = {
        "run", "--no-supervisor", "--dir", WEIR_PLUGIN_DIR, "--dir", dir, job,
        NULL};
    r = run_in(WEIR_BIN, dir, exec);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "unknown operator type 'ctor_segv_op'");
    assert_skipped(r.err, file, cause, NULL);
    run_free(&r);

    const char *detail[] = {"plugins", "--dir", dir, "ctor_segv_op", NULL};
    r = weir(detail);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "no operator named 'ctor_segv_op'");
    assert_contains(r.err, note);
    run_free(&r);

    free(note);
    free(job);
    free(file);
    free(dir);
}

/* `weir validate` and `weir plugins` in a directory whose ./plugins holds a
 * plugin do not run its code: its constructor would create a marker file.
 * Named with --dir, the same plugin does run (so the marker is a real
 * witness). */
static void test_probe_cwd_not_loaded(void **state)
{
    char *cwd = mkdir_in(tmp_root, "checkout");
    char *cwd_plugins = mkdir_in(cwd, "plugins");
    link_plugin(cwd_plugins, "evil.so", LOADER_BROKEN_DIR, "cwd_marker");
    char *marker = path_join(cwd, "marker");
    char *job = write_in(cwd, "job.yaml", tiny_job);
    assert_int_equal(setenv("WEIR_TEST_MARKER", marker, 1), 0);

    const char *validate[] = {"validate", job, NULL};
    run r = run_in(WEIR_BIN, cwd, validate);
    assert_int_equal(r.status, 0);
    assert_false(exists(marker));
    run_free(&r);

    const char *list[] = {"plugins", NULL};
    r = run_in(WEIR_BIN, cwd, list);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "gen");
    assert_not_contains(r.out, "cwd_marker_op");
    assert_false(exists(marker));
    run_free(&r);

    const char *named[] = {"plugins", "--dir", "plugins", NULL};
    r = run_in(WEIR_BIN, cwd, named);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "cwd_marker_op");
    assert_true(exists(marker));
    run_free(&r);

    assert_int_equal(unsetenv("WEIR_TEST_MARKER"), 0);
    free(job);
    free(marker);
    free(cwd_plugins);
    free(cwd);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest probe_tests[] = {
        cmocka_unit_test(test_probe_ctor_segv),
        cmocka_unit_test(test_probe_ctor_abort),
        cmocka_unit_test(test_probe_ctor_exit),
        cmocka_unit_test(test_probe_ctor_loop),
        cmocka_unit_test(test_probe_entry_segv),
        cmocka_unit_test(test_probe_entry_garbage),
        cmocka_unit_test(test_probe_op_garbage),
        cmocka_unit_test(test_probe_param_garbage),
        cmocka_unit_test(test_probe_desc_garbage),
        cmocka_unit_test(test_probe_needed_operator),
        cmocka_unit_test(test_probe_cwd_not_loaded),
    };
    if (argc > 1 && !strcmp(argv[1], "probe"))
        return cmocka_run_group_tests(probe_tests, setup, teardown);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_detail),
        cmocka_unit_test(test_json_list),
        cmocka_unit_test(test_json_one),
        cmocka_unit_test(test_unknown_name),
        cmocka_unit_test(test_bad_usage),
        cmocka_unit_test(test_several_dirs),
        cmocka_unit_test(test_default_dirs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
