#include "kp.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "runtime/api.h"

reg_registry *kp_registry;
char kp_tmp[256];

int kp_setup(void **unused)
{
    char *err = NULL;
    kp_registry = reg_new(api_table());
    if (reg_load_dir(kp_registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0 ||
        reg_load_dir(kp_registry, WEIR_TESTOPS_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none");
        free(err);
        return -1;
    }
    snprintf(kp_tmp, sizeof kp_tmp, "/tmp/weir-kp-XXXXXX");
    return mkdtemp(kp_tmp) ? 0 : -1;
}

int kp_teardown(void **unused)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", kp_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", kp_tmp);
    reg_free(kp_registry);
    return 0;
}

int kp_load(const char *yaml, topo_job **job, char **err)
{
    int rc = topo_load_string("test.yaml", yaml, strlen(yaml), kp_registry, job,
                              err);
    if (rc < 0)
        fprintf(stderr, "%s\n", *err);
    return rc;
}

int kp_run(const char *yaml, char **err)
{
    topo_job *job = NULL;
    int rc = kp_load(yaml, &job, err);
    rt_job *rt = NULL;
    if (rc == 0 && (rc = rt_start(job, &rt, err)) == 0) {
        rc = rt_wait(rt, err);
        rt_destroy(rt);
    }
    topo_free(job);
    return rc;
}

void kp_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int kp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Summarises every line of f into buf; see kp_summaries(). */
static int kp_read_lines(FILE *f, kp_fmt_fn fmt, int sorted, char *buf,
                         size_t cap)
{
    char *line = NULL, **items = NULL;
    size_t lcap = 0, n = 0;
    while (getline(&line, &lcap, f) > 0) {
        json_error_t e;
        json_t *r = json_loads(line, 0, &e);
        if (!r)
            fail_msg("not JSON: %s", line);
        char one[256];
        fmt(r, one, sizeof one);
        json_decref(r);
        items = realloc(items, (n + 1) * sizeof *items);
        assert_non_null(items);
        items[n] = strdup(one);
        assert_non_null(items[n++]);
    }
    free(line);
    if (sorted && n)
        qsort(items, n, sizeof *items, kp_cmp);
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(items[i]);
        assert_true(o + len + 2 < cap);
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? " " : "", items[i]);
        free(items[i]);
    }
    free(items);
    return (int)n;
}

int kp_summaries(const char *path, kp_fmt_fn fmt, int sorted, char *buf,
                 size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        buf[0] = 0;
        return 0;
    }
    int n = kp_read_lines(f, fmt, sorted, buf, cap);
    fclose(f);
    return n;
}

int kp_command_summaries(const char *cmd, kp_fmt_fn fmt, char *buf, size_t cap)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = kp_read_lines(p, fmt, 1, buf, cap);
    int status = pclose(p);
    if (status != 0)
        fail_msg("'%s' exited with status %d", cmd, status);
    return n;
}

void kp_fmt_key_ts(json_t *rec, char *out, size_t cap)
{
    const char *key = json_string_value(json_object_get(rec, "key"));
    json_t *ts = json_object_get(rec, "ts");
    assert_non_null(key);
    assert_true(json_is_integer(ts));
    snprintf(out, cap, "%s@%lld", key, (long long)json_integer_value(ts));
}

void kp_fmt_session(json_t *rec, char *out, size_t cap)
{
    const char *key = json_string_value(json_object_get(rec, "key"));
    json_t *v = json_object_get(rec, "value");
    json_t *ts = json_object_get(rec, "ts");
    assert_non_null(key);
    assert_true(json_is_integer(ts));
    assert_string_equal(json_string_value(json_object_get(v, "key")), key);
    long long events = json_integer_value(json_object_get(v, "events"));
    long long start = json_integer_value(json_object_get(v, "start"));
    long long end = json_integer_value(json_object_get(v, "end"));
    assert_int_equal(json_object_size(v), 4);
    assert_true(events >= 1 && start <= end);
    assert_int_equal(json_integer_value(ts), end);
    snprintf(out, cap, "%s:%lld:%lld-%lld", key, events, start, end);
}
