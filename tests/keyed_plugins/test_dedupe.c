/*
 * dedupe through the real host: value state (by key) and map state (by
 * field), processing-time and event-time TTL, refresh, the duplicates port,
 * and its failures. Expected outputs are worked out by hand from the rule
 * in plugins/dedupe/dedupe.c (duplicate <=> entry present && t - seen <
 * ttl) and written next to each case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kp.h"

static const int caches[] = {0, 100000};

/* Runs a job whose dedupe (id d) writes port out to out.jsonl and port
 * duplicates to dup.jsonl, and returns the two sequences of key@ts. `src`
 * is the source operator's YAML (id src) and `config` dedupe's config. */
static void run_dedupe(const char *name, int cache, const char *src,
                       const char *config, char *out, char *dup, size_t cap)
{
    char yaml[4096], out_path[512], dup_path[512];
    snprintf(out_path, sizeof out_path, "%s/%s-%d-out.jsonl", kp_tmp, name,
             cache);
    snprintf(dup_path, sizeof dup_path, "%s/%s-%d-dup.jsonl", kp_tmp, name,
             cache);
    snprintf(
        yaml, sizeof yaml,
        "job: %s\n"
        "state: {dir: '%s/state', cache_entries: %d}\n"
        "operators:\n"
        "  - %s\n"
        "  - {id: d, type: dedupe, inputs: [{from: src, partition: key}],\n"
        "     config: %s}\n"
        "  - {id: sink_out, type: file_sink, inputs: [d.out],\n"
        "     config: {path: '%s'}}\n"
        "  - {id: sink_dup, type: file_sink, inputs: [d.duplicates],\n"
        "     config: {path: '%s'}}\n",
        name, kp_tmp, cache, src, config, out_path, dup_path);
    char *err = NULL;
    int rc = kp_run(yaml, &err);
    if (rc != 0)
        fail_msg("%s: job failed: %s", name, err ? err : "?");
    free(err);
    kp_summaries(out_path, kp_fmt_key_ts, 0, out, cap);
    kp_summaries(dup_path, kp_fmt_key_ts, 0, dup, cap);
}

static void expect(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("%s:\n got  '%s'\n want '%s'", what, got, want);
}

/* A JSON lines source over `lines` (user, ts and maybe id), with a 10 s
 * watermark bound so that none of the inputs below is late. */
static void file_src(const char *name, const char *lines, char *src, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.jsonl", kp_tmp, name);
    kp_write(path, lines);
    snprintf(src, cap,
             "{id: src, type: file_source,\n"
             "     config: {path: '%s', key_field: user, time_field: ts},\n"
             "     watermarks: {out_of_orderness: 10s, interval: 1ms}}",
             path);
}

/* By key (value state), event time, ttl 10 s. Without refresh the window
 * runs from the first occurrence (a@10000 and a@20000 open new windows);
 * with refresh every duplicate extends it, so a stays deduplicated, but an
 * out-of-order duplicate (a@12000 after a@20000) does not move it back:
 * a@29999 is still within 10 s of a@20000. */
static void test_by_key_event_time(void **unused)
{
    static const char lines[] = "{\"user\":\"a\",\"ts\":0}\n"
                                "{\"user\":\"a\",\"ts\":5000}\n"
                                "{\"user\":\"b\",\"ts\":6000}\n"
                                "{\"user\":\"a\",\"ts\":9999}\n"
                                "{\"user\":\"a\",\"ts\":10000}\n"
                                "{\"user\":\"a\",\"ts\":15000}\n"
                                "{\"user\":\"a\",\"ts\":19999}\n"
                                "{\"user\":\"a\",\"ts\":20000}\n"
                                "{\"user\":\"b\",\"ts\":16001}\n"
                                "{\"user\":\"a\",\"ts\":12000}\n"
                                "{\"user\":\"a\",\"ts\":29999}\n";
    char src[1024], out[1024], dup[1024];
    file_src("bykey", lines, src, sizeof src);
    for (size_t c = 0; c < 2; c++) {
        run_dedupe("bykey", caches[c], src, "{ttl: 10s, ttl_time: event}", out,
                   dup, sizeof out);
        expect("out, no refresh", out, "a@0 b@6000 a@10000 a@20000 b@16001");
        expect("duplicates, no refresh", dup,
               "a@5000 a@9999 a@15000 a@19999 a@12000 a@29999");
        run_dedupe("bykey", caches[c], src,
                   "{ttl: 10s, ttl_time: event, refresh: true}", out, dup,
                   sizeof out);
        expect("out, refresh", out, "a@0 b@6000 b@16001");
        expect("duplicates, refresh", dup,
               "a@5000 a@9999 a@10000 a@15000 a@19999 a@20000 a@12000 "
               "a@29999");
    }
}

/* By key and field (map state). The same id under another key is another
 * identity; 42 and "42" are one; "" is an identity like any other; a record
 * without the field, or with a non-scalar one, passes through unchecked.
 * Event time, ttl 10 s: x and y are new again 10 s after their first
 * occurrence. With processing time and ttl 1h every repeat is a duplicate. */
static void test_by_field(void **unused)
{
    static const char lines[] =
        "{\"user\":\"a\",\"id\":\"x\",\"ts\":0}\n"
        "{\"user\":\"a\",\"id\":\"y\",\"ts\":1000}\n"
        "{\"user\":\"a\",\"id\":\"x\",\"ts\":2000}\n"
        "{\"user\":\"b\",\"id\":\"x\",\"ts\":3000}\n"
        "{\"user\":\"a\",\"id\":42,\"ts\":4000}\n"
        "{\"user\":\"a\",\"id\":\"42\",\"ts\":5000}\n"
        "{\"user\":\"a\",\"ts\":6000}\n"
        "{\"user\":\"a\",\"id\":\"x\",\"ts\":12000}\n"
        "{\"user\":\"a\",\"id\":\"y\",\"ts\":12500}\n"
        "{\"user\":\"a\",\"id\":{\"n\":1},\"ts\":13000}\n"
        "{\"user\":\"a\",\"id\":\"\",\"ts\":14000}\n"
        "{\"user\":\"a\",\"id\":\"\",\"ts\":15000}\n"
        "{\"user\":\"a\",\"ts\":16000}\n";
    char src[1024], out[1024], dup[1024];
    file_src("byfield", lines, src, sizeof src);
    for (size_t c = 0; c < 2; c++) {
        run_dedupe("byfield", caches[c], src,
                   "{ttl: 10s, ttl_time: event, field: id}", out, dup,
                   sizeof out);
        expect("out, event time", out,
               "a@0 a@1000 b@3000 a@4000 a@6000 a@12000 a@12500 a@13000 "
               "a@14000 a@16000");
        expect("duplicates, event time", dup, "a@2000 a@5000 a@15000");
        run_dedupe("byfield", caches[c], src, "{ttl: 1h, field: id}", out, dup,
                   sizeof out);
        expect("out, processing time", out,
               "a@0 a@1000 b@3000 a@4000 a@6000 a@13000 a@14000 a@16000");
        expect("duplicates, processing time", dup,
               "a@2000 a@5000 a@12000 a@12500 a@15000");
    }
}

/* Event-time TTL removes entries as the watermark passes: b@30000 moves the
 * watermark (no out-of-orderness) past a@0 + 10 s, so the late a@5000 finds
 * no entry and passes as a first occurrence, although it is within 10 s of
 * a@0; with ttl 60s the entry is still there and a@5000 is a duplicate. */
static void test_event_ttl_removes(void **unused)
{
    static const struct {
        const char *ttl;
        const char *out, *dup;
    } cases[] = {
        {"10s", "a@0 b@30000 a@5000", ""},
        {"60s", "a@0 b@30000", "a@5000"},
    };
    for (size_t c = 0; c < 2; c++)
        for (size_t k = 0; k < 2; k++) {
            char cfg[128], out[512], dup[512];
            snprintf(cfg, sizeof cfg, "{ttl: %s, ttl_time: event}",
                     cases[k].ttl);
            run_dedupe("evttl", caches[c],
                       "{id: src, type: seqsrc, config: {ts: [0, 30000, "
                       "5000], keys: aba, pause_ms: 120},\n"
                       "     watermarks: {interval: 1ms}}",
                       cfg, out, dup, sizeof out);
            expect("out", out, cases[k].out);
            expect("duplicates", dup, cases[k].dup);
        }
}

/* Processing-time TTL: within ttl 60s every repeat is a duplicate; with
 * ttl 100ms and 400 ms between records, every record is new again. The
 * duplicates port is left unconnected in the first job: dropping then costs
 * nothing and fails nothing. */
static void test_processing_ttl(void **unused)
{
    char yaml[2048], path[512], out[512], dup[512];
    snprintf(path, sizeof path, "%s/proc.jsonl", kp_tmp);
    snprintf(yaml, sizeof yaml,
             "job: proc\n"
             "state: {dir: '%s/state', cache_entries: 0}\n"
             "operators:\n"
             "  - {id: src, type: seqsrc,\n"
             "     config: {ts: [1, 2, 3, 4], keys: aaba, pause_ms: 5}}\n"
             "  - {id: d, type: dedupe, inputs: [src], config: {ttl: 60s}}\n"
             "  - {id: sink, type: file_sink, inputs: [d],\n"
             "     config: {path: '%s'}}\n",
             kp_tmp, path);
    char *err = NULL;
    assert_int_equal(kp_run(yaml, &err), 0);
    kp_summaries(path, kp_fmt_key_ts, 0, out, sizeof out);
    expect("out, ttl 60s", out, "a@1 b@3");

    run_dedupe("proc", 100000,
               "{id: src, type: seqsrc,\n"
               "     config: {ts: [1, 2, 3, 4], keys: aaba, pause_ms: 400}}",
               "{ttl: 100ms}", out, dup, sizeof out);
    expect("out, ttl 100ms", out, "a@1 a@2 b@3 a@4");
    expect("duplicates, ttl 100ms", dup, "");
    free(err);
}

/* Event-time dedupe needs records with event time: without time_field on
 * the source the job fails and says why. */
static void test_event_time_needs_ts(void **unused)
{
    char path[512], yaml[2048];
    snprintf(path, sizeof path, "%s/nots.jsonl", kp_tmp);
    kp_write(path, "{\"user\":\"a\"}\n");
    snprintf(yaml, sizeof yaml,
             "job: nots\n"
             "state: {dir: '%s/state'}\n"
             "operators:\n"
             "  - {id: src, type: file_source,\n"
             "     config: {path: '%s', key_field: user}}\n"
             "  - {id: d, type: dedupe, inputs: [src],\n"
             "     config: {ttl: 1s, ttl_time: event}}\n",
             kp_tmp, path);
    char *err = NULL;
    assert_true(kp_run(yaml, &err) < 0);
    assert_non_null(err);
    assert_non_null(strstr(err, "dedupe: a record without event time"));
    free(err);
}

/* ttl is required and must be positive: the topology is refused. */
static void test_ttl_required(void **unused)
{
    static const char *const configs[] = {"{field: id}", "{ttl: 0s}"};
    for (size_t i = 0; i < 2; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "job: nottl\n"
                 "operators:\n"
                 "  - {id: src, type: seqsrc, config: {ts: [1]}}\n"
                 "  - {id: d, type: dedupe, inputs: [src], config: %s}\n",
                 configs[i]);
        topo_job *job = NULL;
        char *err = NULL;
        assert_true(kp_load(yaml, &job, &err) < 0);
        assert_null(job);
        assert_non_null(strstr(err, "ttl"));
        free(err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_key_event_time),
        cmocka_unit_test(test_by_field),
        cmocka_unit_test(test_event_ttl_removes),
        cmocka_unit_test(test_processing_ttl),
        cmocka_unit_test(test_event_time_needs_ts),
        cmocka_unit_test(test_ttl_required),
    };
    return cmocka_run_group_tests(tests, kp_setup, kp_teardown);
}
