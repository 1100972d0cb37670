/*
 * The host API against a plugin that misuses it (testops/abuse.c): real
 * jobs (threads, ZeroMQ channels, RocksDB state, dlopen'ed plugins) in
 * which one operator passes another subtask's state handle or ctx, NULL
 * pointers with lengths, absurd lengths, records above
 * runtime.max_record_size or a port it does not have. Every misuse must be
 * refused with WEIR_EINVAL: the job fails with a message naming the
 * operator, the subtask, the callback, the host service and what was wrong,
 * nothing crashes, the downstream operator is not blamed, and the other
 * subtask's state is untouched. The expected messages are written by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/runtime.h"
#include "state/state.h"
#include "topology/topology.h"

static reg_registry *registry;
static char tmpdir[256];

/* runtime.max_record_size of the jobs, repeated as the operator's `size`. */
#define MAX_RECORD "4KiB"

static int setup(void **unused)
{
    char *err = NULL;
    registry = reg_new(api_table());
    if (!registry ||
        reg_load_dir(registry, WEIR_PLUGIN_DIR, NULL, NULL, &err) <= 0 ||
        reg_load_dir(registry, WEIR_TESTOPS_DIR, NULL, NULL, &err) <= 0) {
        fprintf(stderr, "loading plugins: %s\n", err ? err : "none found");
        free(err);
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-misuse-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    reg_free(registry);
    return 0;
}

/* Runs gen -key-> abuse (parallelism 2, case `which`) -> slow sink as job
 * `job`, with its state under <tmpdir>/state. Returns rt_wait's code. */
static int run_case(const char *job, const char *which, char **err)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "job: %s\n"
             "runtime: {max_record_size: " MAX_RECORD "}\n"
             "state: {dir: '%s/state'}\n"
             "operators:\n"
             "  - {id: src, type: gen, config: {count: 5000, keys: 50}}\n"
             "  - {id: abuse, type: abuse, parallelism: 2,\n"
             "     inputs: [{from: src, partition: key}],\n"
             "     config: {case: %s, size: " MAX_RECORD "}}\n"
             "  - {id: sink, type: slow, inputs: [abuse],\n"
             "     config: {delay_us: 0}}\n",
             job, tmpdir, which);
    topo_job *tj = NULL;
    int rc =
        topo_load_string("misuse.yaml", yaml, strlen(yaml), registry, &tj, err);
    if (rc < 0) {
        fprintf(stderr, "topology: %s\n", *err);
        return rc;
    }
    rt_job *rt = NULL;
    if ((rc = rt_start(tj, &rt, err)) == 0) {
        rc = rt_wait(rt, err);
        rt_destroy(rt);
    }
    topo_free(tj);
    return rc;
}

/* The job of case `which` fails with WEIR_EINVAL, and its message has the
 * operator and subtask, `where` (the callback: "process" or "open") and
 * `what` (the host service and the misuse), and blames nobody else. */
static void expect_refused(const char *which, const char *where,
                           const char *what)
{
    char *err = NULL;
    char job[64];
    snprintf(job, sizeof job, "m_%s", which);
    int rc = run_case(job, which, &err);
    if (!err || !strstr(err, what))
        fprintf(stderr, "case %s: rc %d, message: %s\n", which, rc,
                err ? err : "(none)");
    assert_int_equal(rc, WEIR_EINVAL);
    assert_non_null(err);
    assert_non_null(strstr(err, "operator 'abuse' (abuse) subtask "));
    char at[64];
    snprintf(at, sizeof at, "/2: %s: ", where);
    assert_non_null(strstr(err, at));
    assert_non_null(strstr(err, what));
    assert_null(strstr(err, "'sink'"));
    assert_null(strstr(err, "malformed"));
    free(err);
}

/* Records in state `name` of subtask `index` of the abuse operator of job
 * `job`, read from its RocksDB directory after the job ended. */
static uint64_t stored_records(const char *job, uint32_t index,
                               const char *name)
{
    char state_dir[300], *path = NULL, *err = NULL;
    snprintf(state_dir, sizeof state_dir, "%s/state", tmpdir);
    assert_int_equal(
        state_store_path(state_dir, job, "abuse", index, &path, &err), 0);
    state_env_config ecfg;
    state_env_config_init(&ecfg);
    ecfg.block_cache_bytes = ecfg.write_buffer_bytes = 8u << 20;
    state_env *env = NULL;
    assert_int_equal(state_env_new(&ecfg, &env, &err), 0);
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = path;
    state_store *s = NULL;
    if (state_store_open(env, &cfg, &s, &err) < 0)
        fail_msg("opening %s: %s", path, err);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = name,
                         .ttl_ms = WEIR_TTL_NONE};
    weir_state *st = NULL;
    uint64_t n = UINT64_MAX;
    assert_int_equal(state_declare(s, &d, 0, &st, &err), 0);
    assert_int_equal(state_scan_count(s, st, &n, &err), 0);
    assert_int_equal(state_store_close(s, &err), 0);
    state_env_free(env);
    free(path);
    return n;
}

/* Legal edge cases (NULL with length 0, a record and a value of exactly
 * max_record_size) are accepted: the checks refuse only misuse. */
static void test_valid_edges_pass(void **unused)
{
    char *err = NULL;
    int rc = run_case("m_valid", "valid", &err);
    if (rc)
        fprintf(stderr, "valid: %s\n", err ? err : "(none)");
    assert_int_equal(rc, 0);
    free(err);
}

/* Subtask 0 writes with subtask 1's value state handle: refused, and
 * subtask 1's RocksDB holds no entry (it writes none itself). */
static void test_foreign_state_handle(void **unused)
{
    expect_refused("foreign_state", "process",
                   "weir_value_put: state handle belongs to another subtask "
                   "(abuse#1)");
    assert_int_equal(stored_records("m_foreign_state", 1, "value"), 0);
    assert_int_equal(stored_records("m_foreign_state", 0, "value"), 0);
}

/* Subtask 0 emits and writes through subtask 1's ctx from its own thread. */
static void test_foreign_ctx(void **unused)
{
    expect_refused("foreign_ctx", "process",
                   "weir_emit: called with the ctx of abuse#1 on the thread "
                   "of abuse#0");
    assert_int_equal(stored_records("m_foreign_ctx", 1, "value"), 0);
}

/* A thread the plugin started has no subtask to carry the message: the
 * service is refused (and logged); the failure names the callback. */
static void test_other_thread(void **unused)
{
    expect_refused("other_thread", "process", "invalid argument");
}

static void test_emit_null_pointers(void **unused)
{
    expect_refused("emit_null_key", "process",
                   "weir_emit: key is NULL but key_len is 5");
    expect_refused("emit_null_value", "process",
                   "weir_emit: value is NULL but value_len is 5");
}

/* Lengths the host must not copy: SIZE_MAX, 2^32 (which crashed in the
 * host's memcpy), a sum that wraps around, one byte over the limit. */
static void test_emit_lengths(void **unused)
{
    expect_refused("emit_size_max", "process",
                   "weir_emit: key_len 1 + value_len 18446744073709551615 "
                   "bytes is above runtime.max_record_size (4096 bytes)");
    expect_refused("emit_4g", "process",
                   "weir_emit: key_len 1 + value_len 4294967296 bytes is "
                   "above runtime.max_record_size (4096 bytes)");
    expect_refused("emit_overflow", "process",
                   "weir_emit: key_len 18446744073709551613 + value_len 4 "
                   "bytes is above runtime.max_record_size (4096 bytes)");
    expect_refused("emit_too_big", "process",
                   "weir_emit: key_len 1 + value_len 4096 bytes is above "
                   "runtime.max_record_size (4096 bytes)");
}

static void test_emit_bad_port(void **unused)
{
    expect_refused("emit_bad_port", "process",
                   "weir_emit: port 1 does not exist (the operator has 1 "
                   "output port)");
}

static void test_state_arguments(void **unused)
{
    expect_refused("put_null", "process",
                   "weir_value_put: value is NULL but len is 3");
    expect_refused("put_too_big", "process",
                   "weir_value_put: value of 4097 bytes is above "
                   "runtime.max_record_size (4096 bytes)");
    expect_refused("map_null_key", "process",
                   "weir_map_put: ukey is NULL but ukey_len is 3");
    expect_refused("list_too_big", "process",
                   "weir_list_add: value of 4097 bytes is above "
                   "runtime.max_record_size (4096 bytes)");
    expect_refused("state_null", "process",
                   "weir_value_put: state handle is NULL");
    expect_refused("get_null_out", "process",
                   "weir_value_get: value or len is NULL");
    expect_refused("iter_null_fn", "process", "weir_map_iter: fn is NULL");
}

static void test_other_arguments(void **unused)
{
    expect_refused("key_null_out", "process",
                   "weir_current_key: key or key_len is NULL");
    expect_refused("port_null_name", "process",
                   "weir_output_port: name is NULL");
    expect_refused("open_param_null", "open", "weir_param_int: name is NULL");
    expect_refused("open_declare_null", "open",
                   "weir_state_declare: desc is NULL");
    expect_refused("open_metric_null", "open",
                   "weir_metric_register: out is NULL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_edges_pass),
        cmocka_unit_test(test_foreign_state_handle),
        cmocka_unit_test(test_foreign_ctx),
        cmocka_unit_test(test_other_thread),
        cmocka_unit_test(test_emit_null_pointers),
        cmocka_unit_test(test_emit_lengths),
        cmocka_unit_test(test_emit_bad_port),
        cmocka_unit_test(test_state_arguments),
        cmocka_unit_test(test_other_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
