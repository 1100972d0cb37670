/*
 * Broadcast inputs and broadcast state through the real host: jobs with
 * threads, sockets, checkpoints and dlopen'ed plugins (file_source,
 * file_sink and the bcastops test operators), checked against what the
 * tests wrote as input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "checkpoint/manifest.h"
#include "common/fs.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/bcast.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

#define assert_contains(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay);                                                \
        const char *n_ = (needle);                                             \
        if (!h_ || !strstr(h_, n_))                                            \
            fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)",     \
                     n_);                                                      \
    } while (0)

static reg_registry *registry;
static char tmpdir[256];

static int setup(void **unused)
{
    char *err = NULL;
    registry = reg_new(api_table());
    if (reg_load_dir(registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0 ||
        reg_load_dir(registry, BCASTOPS_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none");
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-bcast-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    fs_rmtree(tmpdir, NULL);
    reg_free(registry);
    return 0;
}

/* The configuration stream: a..e put, then c deleted and b changed. */
static const char *const conf_lines =
    "{\"k\": \"a\", \"v\": \"1\"}\n{\"k\": \"b\", \"v\": \"2\"}\n"
    "{\"k\": \"c\", \"v\": \"3\"}\n{\"k\": \"d\", \"v\": \"4\"}\n"
    "{\"k\": \"e\", \"v\": \"5\"}\n{\"k\": \"c\"}\n"
    "{\"k\": \"b\", \"v\": \"22\"}\n";
#define CONF_ENTRIES 4
#define N_EVENTS     300

static void write_text(const char *path, const char *text)
{
    char *err = NULL;
    if (fs_write_file(path, text, strlen(text), &err) < 0)
        fail_msg("%s", err);
}

static void write_inputs(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/conf.jsonl", dir);
    write_text(path, conf_lines);
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    static const char *const wants[] = {"a", "b", "c", "d", "e", "zz"};
    for (int i = 0; i < N_EVENTS; i++)
        fprintf(f, "{\"user\": \"u%d\", \"want\": \"%s\"}\n", i % 17,
                wants[i % 6]);
    fclose(f);
}

static const char *const job_fmt =
    "job: bc\n"
    "runtime: {batch_size: 8, buffer_timeout: 1ms}\n"
    "checkpoint: {interval: 20ms, retain: 100}\n"
    "state: {dir: '%s/state'}\n"
    "operators:\n"
    "  - {id: conf, type: file_source, config: {path: '%s/conf.jsonl', "
    "key_field: k}}\n"
    "  - {id: events, type: file_source, config: {path: '%s/events.jsonl', "
    "key_field: user}}\n"
    "  - id: join\n"
    "    type: bcjoin\n"
    "    parallelism: %d\n"
    "    config: {nondet: %s}\n"
    "    inputs:\n"
    "      - {from: events, port: events, partition: key}\n"
    "      - {from: conf, port: conf, partition: %s}\n"
    "  - {id: out, type: file_sink, inputs: [{from: join, partition: "
    "rebalance}],\n"
    "     config: {path: '%s/out.jsonl'}}\n";

static topo_job *load_job(const char *dir, int par, const char *nondet,
                          const char *partition, char **err)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml, job_fmt, dir, dir, dir, par, nondet, partition,
             dir);
    topo_job *job = NULL;
    if (topo_load_string("bc.yaml", yaml, strlen(yaml), registry, &job, err) <
        0)
        return NULL;
    return job;
}

static void run_job(const topo_job *job, const rt_options *o)
{
    rt_job *rt = NULL;
    char *err = NULL;
    if (rt_start_with(job, o, &rt, &err) < 0 || rt_wait(rt, &err) < 0)
        fail_msg("%s", err);
    rt_destroy(rt);
}

/* What the join emitted: per subtask the finish record's fields, and checks
 * on every event record. */
typedef struct finish_rec {
    int seen;
    json_int_t entries, restored, violations;
} finish_rec;

static void read_output(const char *dir, finish_rec *fin, int par, int *events)
{
    char path[512];
    snprintf(path, sizeof path, "%s/out.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    *events = 0;
    memset(fin, 0, (size_t)par * sizeof *fin);
    while (getline(&line, &cap, f) > 0) {
        json_error_t e;
        json_t *r = json_loads(line, 0, &e);
        assert_non_null(r);
        json_t *v = json_object_get(r, "value");
        json_int_t sub = json_integer_value(json_object_get(v, "sub"));
        assert_true(sub >= 0 && sub < par);
        if (!strcmp(json_string_value(json_object_get(r, "key")), "finish")) {
            finish_rec *x = &fin[sub];
            x->seen++;
            x->entries = json_integer_value(json_object_get(v, "entries"));
            x->restored = json_integer_value(json_object_get(v, "restored"));
            x->violations =
                json_integer_value(json_object_get(v, "violations"));
        } else {
            /* A lookup sees nothing yet, or a value the key had. */
            const char *want = json_string_value(json_object_get(v, "want"));
            json_t *got = json_object_get(v, "got");
            const char *g = json_is_null(got) ? NULL : json_string_value(got);
            static const char *const ok[][2] = {{"a", "1"},  {"b", "2"},
                                                {"b", "22"}, {"c", "3"},
                                                {"d", "4"},  {"e", "5"}};
            int fine = g == NULL;
            for (size_t i = 0; !fine && i < sizeof ok / sizeof ok[0]; i++)
                fine = !strcmp(want, ok[i][0]) && !strcmp(g, ok[i][1]);
            if (!fine)
                fail_msg("lookup of '%s' got '%s'", want, g);
            (*events)++;
        }
        json_decref(r);
    }
    free(line);
    fclose(f);
}

/* Every subtask holds the whole configuration at the end, reads it in
 * process(), and cannot write it outside process_broadcast(). */
static void test_every_subtask_gets_every_record(void **unused)
{
    char dir[400], *err = NULL;
    snprintf(dir, sizeof dir, "%s/all", tmpdir);
    assert_int_equal(fs_mkdirs(dir, NULL), 0);
    write_inputs(dir);
    topo_job *job = load_job(dir, 3, "false", "broadcast", &err);
    if (!job)
        fail_msg("%s", err);
    run_job(job, NULL);
    finish_rec fin[3];
    int events;
    read_output(dir, fin, 3, &events);
    assert_int_equal(events, N_EVENTS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fin[i].seen, 1);
        assert_int_equal(fin[i].entries, CONF_ENTRIES);
        assert_int_equal(fin[i].restored, 0);
        assert_int_equal(fin[i].violations, 0);
    }
    topo_free(job);
}

/* A broadcast port fed by anything but partition broadcast is refused. */
static void test_broadcast_port_needs_broadcast_partition(void **unused)
{
    char *err = NULL;
    topo_job *job = load_job(tmpdir, 2, "false", "key", &err);
    assert_null(job);
    assert_contains(err, "port 'conf' of operator 'join' (type bcjoin) is a "
                         "broadcast input");
    assert_contains(err, "not key; add 'partition: broadcast'");
    free(err);
    err = NULL;
    job = load_job(tmpdir, 1, "false", "forward", &err);
    assert_null(job);
    assert_contains(err, "must be partitioned by broadcast, not forward");
    free(err);
}

static ckpt_manifest *newest_checkpoint(const char *run, char **chk)
{
    ckpt_manifest *m = NULL;
    char *err = NULL;
    if (ckpt_find_latest(run, NULL, NULL, &m, &err) < 0)
        fail_msg("%s", err);
    *chk = ckpt_dir(run, m->id);
    return m;
}

/* Checks that every join subtask's copy is in the manifest, equal to the
 * others, and decodes to CONF_ENTRIES entries. */
static void check_copies(const ckpt_manifest *m, const char *chk, int par)
{
    int found = 0;
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *t = &m->tasks[i];
        if (strcmp(t->op_id, "join") != 0)
            continue;
        char want[64], path[1024], *data = NULL, *err = NULL;
        size_t len;
        snprintf(want, sizeof want, "join-%u/broadcast", t->index);
        assert_non_null(t->broadcast);
        assert_string_equal(t->broadcast, want);
        snprintf(path, sizeof path, "%s/%s", chk, t->broadcast);
        assert_int_equal(fs_read_file(path, &data, &len, &err), 0);
        bcast_set *s = NULL;
        if (bcast_decode(path, data, len, &s, &err) < 0)
            fail_msg("%s", err);
        assert_int_equal(bcast_set_count(s), 1);
        assert_int_equal(bcast_set_entries(s, "conf"), CONF_ENTRIES);
        bcast_set_free(s);
        free(data);
        found++;
    }
    assert_int_equal(found, par);
    char *err = NULL;
    assert_int_equal(bcast_check_copies(m, &err), 0);
    assert_null(err);
}

/* The state goes into every subtask's checkpoint and comes back from it:
 * the restored run's sources are at their end, so only the checkpoint can
 * hold the configuration its subtasks find in open(). */
static void test_checkpointed_and_restored(void **unused)
{
    char dir[400], run[450], run2[450], *err = NULL, *chk = NULL;
    snprintf(dir, sizeof dir, "%s/ckpt", tmpdir);
    snprintf(run, sizeof run, "%s/run1", dir);
    snprintf(run2, sizeof run2, "%s/run2", dir);
    assert_int_equal(fs_mkdirs(run, NULL), 0);
    assert_int_equal(fs_mkdirs(run2, NULL), 0);
    write_inputs(dir);
    topo_job *job = load_job(dir, 2, "false", "broadcast", &err);
    if (!job)
        fail_msg("%s", err);
    rt_options o = {.run_dir = run};
    run_job(job, &o);
    ckpt_manifest *m = newest_checkpoint(run, &chk);
    check_copies(m, chk, 2);

    rt_options r = {.run_dir = run2, .restore = m, .restore_dir = chk};
    run_job(job, &r);
    finish_rec fin[2];
    int events;
    read_output(dir, fin, 2, &events);
    assert_int_equal(events, 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(fin[i].seen, 1);
        assert_int_equal(fin[i].restored, CONF_ENTRIES);
        assert_int_equal(fin[i].entries, CONF_ENTRIES);
        assert_int_equal(fin[i].violations, 0);
    }
    char *chk2 = NULL;
    ckpt_manifest *m2 = newest_checkpoint(run2, &chk2);
    check_copies(m2, chk2, 2);
    ckpt_manifest_free(m2);
    free(chk2);
    ckpt_manifest_free(m);
    free(chk);
    topo_free(job);
}

/* Restored with parallelism 3 from a checkpoint of parallelism 2 (the
 * keyed state is redistributed by key group), every subtask still finds
 * the configuration: subtask 2 gets a copy of subtask 0's. */
static void test_restored_with_another_parallelism(void **unused)
{
    char dir[400], run[450], run2[450], *err = NULL, *chk = NULL;
    snprintf(dir, sizeof dir, "%s/rescale", tmpdir);
    snprintf(run, sizeof run, "%s/run1", dir);
    snprintf(run2, sizeof run2, "%s/run2", dir);
    assert_int_equal(fs_mkdirs(run, NULL), 0);
    assert_int_equal(fs_mkdirs(run2, NULL), 0);
    write_inputs(dir);
    topo_job *job = load_job(dir, 2, "false", "broadcast", &err);
    topo_job *job3 = load_job(dir, 3, "false", "broadcast", &err);
    if (!job || !job3)
        fail_msg("%s", err);
    rt_options o = {.run_dir = run};
    run_job(job, &o);
    ckpt_manifest *m = newest_checkpoint(run, &chk);
    rt_options r = {.run_dir = run2, .restore = m, .restore_dir = chk};
    run_job(job3, &r);
    finish_rec fin[3];
    int events;
    read_output(dir, fin, 3, &events);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fin[i].seen, 1);
        assert_int_equal(fin[i].restored, CONF_ENTRIES);
        assert_int_equal(fin[i].violations, 0);
    }
    char *chk2 = NULL;
    ckpt_manifest *m2 = newest_checkpoint(run2, &chk2);
    check_copies(m2, chk2, 3);
    ckpt_manifest_free(m2);
    free(chk2);
    ckpt_manifest_free(m);
    free(chk);
    topo_free(job);
    topo_free(job3);
}

/* Writes that depend on the subtask make the copies differ, and the
 * comparison of a completed checkpoint says so. */
static void test_nondeterministic_writes_detected(void **unused)
{
    char dir[400], run[450], *err = NULL, *chk = NULL;
    snprintf(dir, sizeof dir, "%s/nondet", tmpdir);
    snprintf(run, sizeof run, "%s/run", dir);
    assert_int_equal(fs_mkdirs(run, NULL), 0);
    write_inputs(dir);
    topo_job *job = load_job(dir, 2, "true", "broadcast", &err);
    if (!job)
        fail_msg("%s", err);
    rt_options o = {.run_dir = run};
    run_job(job, &o);
    ckpt_manifest *m = newest_checkpoint(run, &chk);
    assert_int_equal(bcast_check_copies(m, &err), 1);
    assert_contains(err, "the broadcast state of operator 'join' differs "
                         "between subtasks 1 and 2");
    free(err);
    ckpt_manifest_free(m);
    free(chk);
    topo_free(job);
}

/* An operator without broadcast input cannot declare broadcast state
 * (bcplain's open() fails unless the host refuses). */
static void test_no_broadcast_input_no_state(void **unused)
{
    char dir[400], yaml[1024], *err = NULL;
    snprintf(dir, sizeof dir, "%s/plain", tmpdir);
    assert_int_equal(fs_mkdirs(dir, NULL), 0);
    write_inputs(dir);
    snprintf(yaml, sizeof yaml,
             "job: plain\n"
             "operators:\n"
             "  - {id: src, type: file_source, config: {path: "
             "'%s/conf.jsonl', key_field: k}}\n"
             "  - {id: p, type: bcplain, inputs: [src]}\n",
             dir);
    topo_job *job = NULL;
    if (topo_load_string("p.yaml", yaml, strlen(yaml), registry, &job, &err) <
        0)
        fail_msg("%s", err);
    run_job(job, NULL);
    topo_free(job);
}

static void expect_bad(const void *data, size_t len, const char *why)
{
    bcast_set *s = NULL;
    char *err = NULL;
    assert_int_equal(bcast_decode("F", data, len, &s, &err), WEIR_EINVAL);
    assert_null(s);
    assert_contains(err, "F: not a valid broadcast state file: ");
    assert_contains(err, why);
    free(err);
}

/* The file format is read strictly. */
static void test_decode_refuses_bad_files(void **unused)
{
    /* "WBS1", 1 state "s" with 2 entries: "a" -> "x", "b" -> "". */
    static const unsigned char good[] = {
        'W', 'B', 'S', '1', 0, 0, 0,   1, 1, 's', 0, 0,   0, 2, 0, 0, 0,
        1,   'a', 0,   0,   0, 1, 'x', 0, 0, 0,   1, 'b', 0, 0, 0, 0};
    bcast_set *s = NULL;
    char *err = NULL;
    assert_int_equal(bcast_decode("F", good, sizeof good, &s, &err), 0);
    assert_int_equal(bcast_set_entries(s, "s"), 2);
    bcast_set_free(s);

    unsigned char b[sizeof good + 1];
    expect_bad("WBS2", 4, "no WBS1 header");
    expect_bad(good, sizeof good - 1, "truncated");
    memcpy(b, good, sizeof good);
    b[sizeof good] = 0;
    expect_bad(b, sizeof good + 1, "trailing bytes");
    memcpy(b, good, sizeof good);
    b[28] = 'a'; /* the second key equals the first */
    expect_bad(b, sizeof good, "keys out of order");
    memcpy(b, good, sizeof good);
    b[9] = 'S';
    expect_bad(b, sizeof good, "invalid state name");
    memcpy(b, good, sizeof good);
    b[14] = 0x7f; /* a key length far beyond the limit */
    expect_bad(b, sizeof good, "key too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_subtask_gets_every_record),
        cmocka_unit_test(test_broadcast_port_needs_broadcast_partition),
        cmocka_unit_test(test_checkpointed_and_restored),
        cmocka_unit_test(test_restored_with_another_parallelism),
        cmocka_unit_test(test_nondeterministic_writes_detected),
        cmocka_unit_test(test_no_broadcast_input_no_state),
        cmocka_unit_test(test_decode_refuses_bad_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
