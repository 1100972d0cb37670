/*
 * test_examples.c - the two reference examples (examples/tickets,
 * examples/clickrules) run through the test harness (weir/testing.h, the
 * real host with RocksDB state), checked by the examples' own oracles (real
 * python3 processes).
 *
 * The job files are loaded by the host's real topology loader, so the
 * pattern operator gets exactly the rules the job file holds: the loader's
 * msgpack of them, written back as JSON (a YAML flow value) for the
 * harness, which validates them again as a topology does.
 * The test plays the rest of the job: it reads the input JSON lines like
 * file_source does (key and time fields from the job file), computes the
 * source watermark like the host does (largest time seen minus the
 * source's watermarks.out_of_orderness, read from the job file), once after
 * every record in one run and every 97 records in another, ends with
 * WEIR_WATERMARK_MAX, and writes what the pattern emits on "out" and "late"
 * as file_sink lines. The operator's per-key state is independent of the
 * other keys, so one instance stands for all subtasks.
 *
 * Until the topology loader knows the `watermarks:` key of an operator,
 * that line is blanked before loading (its value is read here either way).
 * The real `weir run` of the same files is tested by e2e_example.py when
 * the build is configured with -DWEIR_EVENT_TIME_E2E=ON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "hx.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "topology/topology.h"
#include "tutil.h"

static reg_registry *registry;

static int setup(void **state)
{
    registry = reg_new(api_table());
    char *err = NULL;
    if (!registry || reg_load_file(registry, FILE_SOURCE_SO, &err) < 0 ||
        reg_load_file(registry, FILE_SINK_SO, &err) < 0 ||
        reg_load_file(registry, PATTERN_SO, &err) < 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "?");
        free(err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    reg_free(registry);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Blanks the `watermarks:` line of the job text and returns its
 * out_of_orderness in ms. */
static int64_t take_watermarks(char *text)
{
    char *w = strstr(text, "watermarks:");
    assert_non_null(w);
    char *o = strstr(w, "out_of_orderness:");
    assert_non_null(o);
    o += strlen("out_of_orderness:");
    while (*o == ' ')
        o++;
    size_t n = strcspn(o, ",} \n");
    int64_t ms = 0;
    char *err = NULL;
    assert_int_equal(topo_parse_duration(o, n, &ms, &err), 0);
    while (w > text && w[-1] != '\n')
        w--;
    for (; *w && *w != '\n'; w++)
        *w = ' ';
    return ms;
}

static const topo_op *op_of_type(const topo_job *job, const char *type, int nth)
{
    for (size_t i = 0; i < job->n_ops; i++)
        if (strcmp(job->ops[i].type, type) == 0 && nth-- == 0)
            return &job->ops[i];
    fail_msg("no operator of type %s", type);
    return NULL;
}

static const char *param_str(const topo_op *op, const char *name)
{
    const topo_value *v = topo_param(&op->config, name);
    assert_true(v && v->is_set);
    return v->str;
}

/* The file_sink path that consumes port `port` of operator `from`, or
 * NULL. */
static const char *sink_of(const topo_job *job, const topo_op *from,
                           uint32_t port)
{
    for (size_t i = 0; i < job->n_ops; i++) {
        const topo_op *op = &job->ops[i];
        if (strcmp(op->type, "file_sink"))
            continue;
        for (size_t k = 0; k < op->n_inputs; k++)
            if (&job->ops[op->inputs[k].from] == from &&
                op->inputs[k].from_port == port)
                return param_str(op, "path");
    }
    return NULL;
}

static void write_line(FILE *f, const weir_test_record *r)
{
    json_t *v = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(v);
    json_t *line = json_pack("{s:s%, s:I, s:o}", "key", r->key, r->key_len,
                             "ts", (json_int_t)r->ts, "value", v);
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(line);
}

static int run_check(const char *check, const char *out, const char *late)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s%s%s > /dev/null", check,
             out, late ? " --late " : "", late ? late : "");
    int st = system(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Runs examples/<name>/<name>.yaml through the harness, with the
 * watermark advanced every `every` records, and checks the output. */
static void run_example(const char *name, int every)
{
    char path[1024], dir[] = "/tmp/weir-examples-XXXXXX";
    size_t len;
    snprintf(path, sizeof path, "%s/examples/%s/%s.yaml", SOURCE_ROOT, name,
             name);
    char *text = slurp(path, &len);
    int64_t ooo = take_watermarks(text);
    topo_job *job = NULL;
    char *err = NULL;
    if (topo_load_string(path, text, len, registry, &job, &err) < 0)
        fail_msg("%s", err);
    free(text);

    const topo_op *src = op_of_type(job, "file_source", 0);
    const topo_op *pat = op_of_type(job, "pattern", 0);
    const topo_value *rules = topo_param(&pat->config, "rules");
    const topo_value *idle = topo_param(&pat->config, "idle_timeout");
    assert_true(rules && rules->is_set && idle && idle->is_set);
    char idle_ms[32];
    snprintf(idle_ms, sizeof idle_ms, "%lld", (long long)idle->i);
    json_t *rj = tu_mp_to_json(rules->mp, rules->mp_len);
    assert_non_null(rj);
    char *rules_text = json_dumps(rj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(rules_text);
    json_decref(rj);
    const weir_test_param p[] = {
        {"rules", rules_text}, {"idle_timeout", idle_ms}, {NULL, NULL}};
    weir_test *h = hx_new(PATTERN_SO, "pattern", p, 0, 1);
    free(rules_text);

    /* Play the source. */
    snprintf(path, sizeof path, "%s/%s", SOURCE_ROOT, param_str(src, "path"));
    const char *key_field = param_str(src, "key_field");
    const char *time_field = param_str(src, "time_field");
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    char *line = NULL;
    size_t cap = 0, n = 0;
    int64_t max_seen = INT64_MIN;
    while (getline(&line, &cap, in) > 0) {
        json_t *obj = json_loads(line, JSON_PRESERVE_ORDER, NULL);
        assert_non_null(obj);
        json_t *k = json_object_get(obj, key_field);
        int64_t ts = json_integer_value(json_object_get(obj, time_field));
        assert_true(json_is_string(k));
        size_t mlen;
        void *mp = tu_json_to_mp(line, &mlen);
        assert_int_equal(weir_test_process(h, 0, json_string_value(k),
                                           json_string_length(k), ts, mp, mlen),
                         0);
        free(mp);
        json_decref(obj);
        max_seen = ts > max_seen ? ts : max_seen;
        if (++n % (size_t)every == 0)
            assert_int_equal(weir_test_watermark(h, max_seen - ooo), 0);
    }
    free(line);
    fclose(in);
    assert_int_equal(weir_test_watermark(h, WEIR_WATERMARK_MAX), 0);
    assert_int_equal(hx_entries(h), 0); /* no state left behind */
    assert_int_equal(hx_timers(h), 0);

    /* Play the sinks, then the oracle. */
    assert_non_null(mkdtemp(dir));
    char out[1100], late[1100], check[1100];
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(late, sizeof late, "%s/late.jsonl", dir);
    FILE *fo = fopen(out, "w"), *fl = fopen(late, "w");
    assert_true(fo && fl);
    size_t outs = 0;
    for (size_t i = 0; i < hx_n(h); i++) {
        const weir_test_record *r = hx_rec(h, i);
        write_line(r->port == 0 ? fo : fl, r);
        outs += r->port == 0;
    }
    fclose(fo);
    fclose(fl);
    assert_true(outs > 100);
    assert_non_null(sink_of(job, pat, 0));
    snprintf(check, sizeof check, "%s/examples/%s/check.py", SOURCE_ROOT, name);
    int late_sink = sink_of(job, pat, 1) != NULL;
    assert_int_equal(run_check(check, out, late_sink ? late : NULL), 0);

    /* The check is able to fail: drop the first match. */
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sed -i 1d %s", out);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(run_check(check, out, NULL), 1);

    unlink(out);
    unlink(late);
    rmdir(dir);
    weir_test_free(h);
    topo_free(job);
}

static void test_tickets(void **state)
{
    run_example("tickets", 1);
    run_example("tickets", 97);
}

static void test_clickrules(void **state)
{
    run_example("clickrules", 1);
    run_example("clickrules", 97);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tickets),
        cmocka_unit_test(test_clickrules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
