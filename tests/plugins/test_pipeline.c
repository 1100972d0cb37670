/*
 * test_pipeline.c - the clicks example wired by hand through the fake host:
 * file_source -> count (2 subtasks, records routed by a hash of the key) ->
 * file_sink, on examples/clicks/clicks.jsonl, checked by the example's
 * oracle examples/clicks/expected.py (a real python3 process). Also checks
 * that the oracle rejects an output with a lost or a duplicated line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "th.h"

#define CLICKS EXAMPLES_DIR "/clicks.jsonl"
#define ORACLE EXAMPLES_DIR "/expected.py"

static uint32_t route(const void *key, size_t len, uint32_t n)
{
    const unsigned char *p = key;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % n;
}

/* Runs the job with the given parallelism of source and sink; the sink
 * writes dir/out/clicks-counts.jsonl (per subtask). */
static void run_job(const char *dir, uint32_t src_par, uint32_t sink_par)
{
    enum { COUNT_PAR = 2 };
    char *out = th_path(dir, "out/clicks-counts.jsonl");
    const th_param sp[] = {{"path", CLICKS},
                           {"key_field", "user"},
                           {"time_field", "ts"},
                           {"batch", "64"},
                           {NULL, NULL}};
    const th_param kp[] = {
        {"path", out}, {"mode", "per_subtask"}, {NULL, NULL}};
    const weir_operator *src_op = th_load(FILE_SOURCE_SO, "file_source");
    const weir_operator *cnt_op = th_load(COUNT_SO, "count");
    const weir_operator *snk_op = th_load(FILE_SINK_SO, "file_sink");
    th_inst *src[4], *cnt[COUNT_PAR], *snk[4];
    for (uint32_t i = 0; i < src_par; i++) {
        src[i] = th_new(src_op, sp, i, src_par);
        assert_int_equal(th_open(src[i]), WEIR_OK);
    }
    for (uint32_t i = 0; i < COUNT_PAR; i++) {
        cnt[i] = th_new(cnt_op, NULL, i, COUNT_PAR);
        assert_int_equal(th_open(cnt[i]), WEIR_OK);
    }
    for (uint32_t i = 0; i < sink_par; i++) {
        snk[i] = th_new(snk_op, kp, i, sink_par);
        assert_int_equal(th_open(snk[i]), WEIR_OK);
    }

    uint32_t rr = 0, live = src_par;
    int done[4] = {0};
    while (live) {
        for (uint32_t s = 0; s < src_par; s++) {
            if (done[s])
                continue;
            int rc = th_poll(src[s]);
            if (rc == WEIR_EOF) {
                assert_int_equal(th_finish(src[s]), WEIR_OK);
                done[s] = 1;
                live--;
                continue;
            }
            assert_int_equal(rc, WEIR_OK);
            for (size_t r = 0; r < src[s]->n_recs; r++) {
                const th_rec *in = &src[s]->recs[r];
                th_inst *c = cnt[route(in->key, in->key_len, COUNT_PAR)];
                assert_int_equal(th_process(c, in->key, in->key_len, in->ts,
                                            in->value, in->value_len),
                                 WEIR_OK);
                for (size_t o = 0; o < c->n_recs; o++) { /* rebalance */
                    const th_rec *x = &c->recs[o];
                    assert_int_equal(th_process(snk[rr++ % sink_par], x->key,
                                                x->key_len, x->ts, x->value,
                                                x->value_len),
                                     WEIR_OK);
                }
                th_clear_recs(c);
            }
            th_clear_recs(src[s]);
        }
    }
    for (uint32_t i = 0; i < COUNT_PAR; i++) {
        assert_int_equal(th_finish(cnt[i]), WEIR_OK);
        th_free(cnt[i]);
    }
    for (uint32_t i = 0; i < sink_par; i++) {
        assert_int_equal(th_finish(snk[i]), WEIR_OK);
        th_free(snk[i]);
    }
    for (uint32_t i = 0; i < src_par; i++) {
        assert_int_equal(src[i]->n_logs, 0); /* no bad lines */
        th_free(src[i]);
    }
    free(out);
}

/* Exit status of the oracle run on the given output files. */
static int oracle(const char *outputs)
{
    char *cmd = NULL;
    assert_true(asprintf(&cmd, "/usr/bin/python3 %s %s --check %s >/dev/null",
                         ORACLE, CLICKS, outputs) > 0);
    int st = system(cmd);
    free(cmd);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_clicks_job(void **state)
{
    char *dir = th_tmpdir();
    run_job(dir, 1, 1);
    char *out = th_path(dir, "out/clicks-counts.jsonl");
    assert_int_equal(oracle(out), 0);

    /* The oracle can fail: a lost line, a duplicated line. */
    size_t len;
    char *text = th_read_file(out, &len);
    assert_non_null(text);
    char *second = strchr(text, '\n') + 1;
    char *bad = th_path(dir, "bad.jsonl");
    th_write_file(bad, second, len - (size_t)(second - text));
    assert_int_equal(oracle(bad), 1);
    char *dup = malloc(len + (size_t)(second - text));
    memcpy(dup, text, (size_t)(second - text));
    memcpy(dup + (second - text), text, len);
    th_write_file(bad, dup, len + (size_t)(second - text));
    assert_int_equal(oracle(bad), 1);
    free(dup);
    free(text);
    free(bad);
    free(out);
    th_rmtree(dir);
    free(dir);
}

static void test_clicks_job_parallel(void **state)
{
    char *dir = th_tmpdir();
    run_job(dir, 3, 2);
    char *o0 = th_path(dir, "out/clicks-counts-0.jsonl");
    char *o1 = th_path(dir, "out/clicks-counts-1.jsonl");
    char *both = NULL;
    assert_true(asprintf(&both, "%s %s", o0, o1) > 0);
    assert_int_equal(oracle(both), 0);
    assert_int_equal(oracle(o0), 1); /* half of the output is not enough */
    free(both);
    free(o0);
    free(o1);
    th_rmtree(dir);
    free(dir);
}

/* gen -> count -> discard: created_ns travels through count, so the sink
 * measures latency for every record. */
static void test_latency_through_count(void **state)
{
    const th_param gp[] = {{"count", "500"}, {"keys", "20"}, {NULL, NULL}};
    th_inst *g = th_new(th_load(GEN_SO, "gen"), gp, 0, 1);
    th_inst *c = th_new(th_load(COUNT_SO, "count"), NULL, 0, 1);
    th_inst *d = th_new(th_load(DISCARD_SO, "discard"), NULL, 0, 1);
    assert_int_equal(th_open(g), WEIR_OK);
    assert_int_equal(th_open(c), WEIR_OK);
    assert_int_equal(th_open(d), WEIR_OK);
    assert_int_equal(th_drain(g, 100), WEIR_EOF);
    for (size_t i = 0; i < g->n_recs; i++) {
        const th_rec *r = &g->recs[i];
        assert_int_equal(
            th_process(c, r->key, r->key_len, r->ts, r->value, r->value_len),
            0);
    }
    for (size_t i = 0; i < c->n_recs; i++) {
        const th_rec *r = &c->recs[i];
        assert_int_equal(
            th_process(d, r->key, r->key_len, r->ts, r->value, r->value_len),
            0);
    }
    assert_int_equal(th_finish(d), WEIR_OK);
    assert_non_null(th_find_log(d, "records=500 latency_n=500 "));
    th_free(d);
    th_free(c);
    th_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clicks_job),
        cmocka_unit_test(test_clicks_job_parallel),
        cmocka_unit_test(test_latency_through_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
