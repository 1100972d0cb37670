/*
 * test_topology_bad.c - every file in bad/ (and two generated at test time)
 * must be refused with the exact position and message written in the table
 * below, both by topo_load_file() and by the real `weir validate` binary
 * (exit code 2, the position on stderr, no crash).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "plugin/registry.h"
#include "runtime/api.h"
#include "topology/topology.h"

typedef struct bad_case {
    const char *file; /* in bad/, or generated into the build dir */
    int line, col;
    const char *msg; /* a substring of the message after the position */
    int generated;
} bad_case;

/* Positions are 1-based, worked out by hand from the files. */
static const bad_case cases[] = {
    /* YAML level */
    {"empty.yaml", 1, 1, "empty topology", 0},
    {"comments_only.yaml", 1, 1, "empty topology", 0},
    {"root_list.yaml", 1, 1, "the top level must be a mapping", 0},
    {"root_scalar.yaml", 1, 1, "the top level must be a mapping", 0},
    /* 123463 nodes before line 6's list items; each *e adds 111111, so
     * the 8th (column 29) passes 1000000. */
    {"alias_bomb.yaml", 6, 29,
     "alias '*e' expands the document past 1000000 nodes (an alias bomb?)", 0},
    {"dup_key_top.yaml", 5, 1, "duplicate key 'job' (first at line 1 column 1)",
     0},
    {"dup_key_config.yaml", 7, 7,
     "duplicate key 'rate' (first at line 5 column 7)", 0},
    {"tab_indent.yaml", 2, 1, "found character that cannot start any token", 0},
    {"syntax_flow.yaml", 2, 1, "did not find expected ',' or ']'", 0},
    {"multi_doc.yaml", 4, 1,
     "a second YAML document; a topology file holds exactly one", 0},
    {"non_utf8.yaml", 1, 9, "invalid leading UTF-8 octet (byte 0xff)", 0},
    {"undefined_alias.yaml", 4, 13,
     "alias '*missing' refers to no anchor defined before it", 0},
    {"recursive_alias.yaml", 4, 21,
     "alias '*ops' refers to no anchor defined before it", 0},
    {"unsupported_tag.yaml", 3, 11, "unsupported tag '!custom'", 0},
    {"complex_key.yaml", 1, 3, "a mapping key must be a scalar, not a list", 0},
    /* 4 levels (root, operators, operator, config) + the 61st '[' = 65 */
    {"deep_nesting.yaml", 6, 74,
     "nesting deeper than 64 levels of lists and mappings", 0},
    /* Files over TOPO_MAX_FILE_BYTES (1 MiB) are refused before parsing. */
    {"huge_10mb.yaml", 1, 1, "more than the limit of 1048576", 1},
    {"too_big.yaml", 1, 1, "more than the limit of 1048576", 1},
    /* keys */
    {"unknown_top_key.yaml", 2, 1,
     "operater: unknown key in the topology; did you mean 'operators'?", 0},
    {"unknown_section_key.yaml", 2, 3,
     "checkpoint.intervall: unknown key; did you mean 'interval'?", 0},
    {"unknown_op_key.yaml", 4, 5,
     "operators[0].paralelism: unknown key in an operator; did you mean "
     "'parallelism'?",
     0},
    {"unknown_type.yaml", 3, 11,
     "operators[0].type: unknown operator type 'test_sourse'; did you mean "
     "'test_source'?",
     0},
    {"no_operators.yaml", 1, 1, "missing key 'operators'", 0},
    {"empty_operators.yaml", 1, 12, "operators: the list is empty", 0},
    {"operator_not_map.yaml", 2, 5,
     "operators[0]: expected an operator (a mapping with id and type), got "
     "the string 'src'",
     0},
    {"missing_type.yaml", 2, 5, "operators[0]: missing key 'type'", 0},
    {"bad_job_name.yaml", 1, 6, "job: 'my job' is not a valid job name", 0},
    {"dup_op_id.yaml", 4, 9,
     "operators[1].id: duplicate operator id 'src' (first at line 2 column "
     "9)",
     0},
    {"bad_op_id.yaml", 2, 9,
     "operators[0].id: 'my.src' is not a valid operator id", 0},
    /* config against the plugin's table */
    {"config_unknown_key.yaml", 8, 7,
     "operators[1].config.windw: unknown parameter; did you mean 'window'?", 0},
    {"config_bool_to_int.yaml", 7, 21,
     "operators[1].config.count: expected an integer, got the boolean true", 0},
    {"config_string_to_int.yaml", 8, 14,
     "expected an integer, got the string '12'; remove the quotes", 0},
    {"config_list_to_string.yaml", 8, 13,
     "operators[1].config.name: expected a string, got a list", 0},
    {"config_yes_to_bool.yaml", 8, 13,
     "expected a boolean (true or false), got the string 'yes'; booleans are "
     "written true or false",
     0},
    {"config_float_to_int.yaml", 8, 14,
     "expected an integer, got the number 2.5", 0},
    {"config_int_above_max.yaml", 8, 14,
     "operators[1].config.count: 101 is above the maximum 100", 0},
    {"config_int_below_min.yaml", 8, 14, "0 is below the minimum 1", 0},
    {"config_double_range.yaml", 8, 14, "1.5 is above the maximum 1", 0},
    {"config_duration_range.yaml", 8, 15, "8d is above the maximum 7d", 0},
    {"config_duration_zero.yaml", 8, 15, "0 is below the minimum 1ms", 0},
    {"config_size_range.yaml", 8, 15, "2GiB is above the maximum 1GiB", 0},
    {"config_enum.yaml", 8, 13,
     "'sloww' is not one of: fast, safe, slow; did you mean 'slow'?", 0},
    {"config_missing_required.yaml", 8, 7,
     "operators[1].config: missing required parameter 'path' (a string: "
     "file to write)",
     0},
    {"config_not_mapping.yaml", 4, 13,
     "operators[0].config: expected a mapping, got a list", 0},
    {"any_huge_int.yaml", 8, 25,
     "operators[1].config.extra: integer 99999999999999999999999 does not "
     "fit in 64 bits",
     0},
    {"bad_default.yaml", 4, 5,
     "operators[1].config.window: plugin error: plugin 'topotest' (operator "
     "type 'test_bad_default', used by 'broken') declares the invalid "
     "default '10x' for parameter 'window'",
     0},
    {"bad_default_range.yaml", 4, 5,
     "invalid default '500' for parameter 'level': 500 is above the maximum "
     "100",
     0},
    /* units */
    {"duration_syntax.yaml", 8, 15, "'10x': unknown duration unit 'x'", 0},
    {"duration_fraction.yaml", 8, 15, "'1.5s': fractions are not supported", 0},
    {"duration_negative.yaml", 2, 13,
     "checkpoint.interval: '-5s': a duration cannot be negative", 0},
    /* 2^63-1 ms is 106751991167 days and a bit */
    {"duration_overflow.yaml", 8, 15, "'106751991168d': duration too large", 0},
    {"size_syntax.yaml", 2, 16,
     "state.block_cache: '64 MiB': unknown size unit ' MiB'", 0},
    {"size_overflow.yaml", 2, 16, "'99999999999GiB': size too large", 0},
    {"restart_delays.yaml", 4, 14,
     "restart.max_delay: max_delay (30000ms) is below initial_delay "
     "(60000ms)",
     0},
    /* graph */
    {"cycle.yaml", 9, 14, "operators[2].inputs[0]: cycle: a -> b -> c -> a", 0},
    {"self_loop.yaml", 6, 19, "operators[1].inputs[1]: cycle: a -> a", 0},
    {"missing_input_op.yaml", 6, 14,
     "unknown operator 'sourc'; did you mean 'source'?", 0},
    {"bad_from_port.yaml", 7, 15,
     "operator 'src' (type test_source2) has no output port 'eror'; its "
     "output ports are: out, errors; did you mean 'errors'?",
     0},
    {"bad_to_port.yaml", 8, 15,
     "operators[1].inputs[0].port: operator 'j' (type test_join) has no "
     "input port 'middle'; its input ports are: left, right",
     0},
    {"from_sink.yaml", 9, 14,
     "operator 'out' (type test_sink) has no output ports", 0},
    {"forward_unequal.yaml", 9, 20,
     "forward needs equal parallelism, but 'src' has 1 and 'm' has 3", 0},
    {"keyed_not_key.yaml", 7, 14,
     "operator 'count' (type test_count) keeps keyed state and has "
     "parallelism 2, so its input from 'src' must be partitioned by key, "
     "not rebalance (the default)",
     0},
    {"keyed_broadcast.yaml", 9, 32, "must be partitioned by key, not broadcast",
     0},
    {"bad_partition.yaml", 8, 20,
     "operators[1].inputs[0].partition: 'hash' is not one of: forward, "
     "rebalance, key, broadcast",
     0},
    {"parallelism_zero.yaml", 4, 18,
     "operators[0].parallelism: 0 is below the minimum 1", 0},
    {"parallelism_over_max.yaml", 5, 18, "17 is above max_parallelism 16", 0},
    {"max_parallelism_high.yaml", 1, 18,
     "max_parallelism: 40000 is above the maximum 32768", 0},
    {"max_parallelism_zero.yaml", 1, 18,
     "max_parallelism: 0 is below the minimum 1", 0},
    {"source_with_inputs.yaml", 6, 13,
     "operator 'b' (type test_source) is a source and cannot have inputs", 0},
    {"no_inputs.yaml", 4, 5,
     "operator 'm' (type test_map) has no inputs; only sources may have none",
     0},
    {"inputs_not_list.yaml", 6, 13,
     "operators[1].inputs: expected a list of inputs, got a mapping", 0},
    {"dup_input.yaml", 6, 19,
     "operators[1].inputs[1]: the same input as inputs[0] (from 'src' into "
     "port 'in')",
     0},
    {"merge_key.yaml", 8, 7,
     "operators[1].config.<<: unknown parameter; merge keys ('<<') are not "
     "supported",
     0},
    {"input_missing_from.yaml", 7, 9,
     "operators[1].inputs[0]: missing key 'from'", 0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static reg_registry *reg;

static void case_path(const bad_case *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s", c->generated ? TOPO_BIN_DIR : TOPO_SRC_DIR,
             c->generated ? "generated" : "bad", c->file);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* huge_10mb.yaml: a 10 MB list of zeros; too_big.yaml: one
 * byte over TOPO_MAX_FILE_BYTES, sparse (refused before reading). */
static int generate(void)
{
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/generated", TOPO_BIN_DIR);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return -1;
    snprintf(path, sizeof path, "%s/huge_10mb.yaml", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    size_t items = 5u * 1000 * 1000;
    char *buf = malloc(items * 2 + 32);
    if (!buf) {
        close(fd);
        return -1;
    }
    size_t o = (size_t)sprintf(buf, "job: big\nx: [");
    for (size_t k = 0; k < items; k++) {
        buf[o++] = '0';
        buf[o++] = k + 1 < items ? ',' : ']';
    }
    buf[o++] = '\n';
    int rc = write_all(fd, buf, o);
    free(buf);
    close(fd);
    if (rc < 0)
        return -1;
    snprintf(path, sizeof path, "%s/too_big.yaml", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    rc = ftruncate(fd, (off_t)TOPO_MAX_FILE_BYTES + 1);
    close(fd);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    char *err = NULL;
    reg = reg_new(api_table());
    if (!reg)
        return -1;
    int n = reg_load_dir(reg, TOPO_PLUGIN_DIR, NULL, NULL, &err);
    if (n != 1) {
        fprintf(stderr, "loading %s: %d %s\n", TOPO_PLUGIN_DIR, n,
                err ? err : "");
        free(err);
        return -1;
    }
    return generate();
}

static int teardown(void **state)
{
    (void)state;
    reg_free(reg);
    return 0;
}

static void check_message(const bad_case *c, const char *path, const char *text)
{
    char want[1200];
    snprintf(want, sizeof want, "%s:%d:%d: ", path, c->line, c->col);
    if (strncmp(text, want, strlen(want)) != 0 ||
        !strstr(text + strlen(want), c->msg)) {
        fprintf(stderr, "want: %s...%s\ngot:  %s\n", want, c->msg, text);
        fail();
    }
}

static void test_in_process(void **state)
{
    const bad_case *c = *state;
    char path[1100];
    topo_job *job = (topo_job *)(uintptr_t)1; /* must be reset to NULL */
    char *err = NULL;
    case_path(c, path, sizeof path);
    int rc = topo_load_file(path, reg, &job, &err);
    assert_int_equal(rc, WEIR_EINVAL);
    assert_null(job);
    assert_non_null(err);
    assert_null(strchr(err, '\n'));
    check_message(c, path, err);
    free(err);
}

/* Runs `weir validate --dir <test plugins> path`; returns the wait status
 * and stderr (malloc'ed). */
static int run_validate(const char *path, char **out_err)
{
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execl(WEIR_BIN, WEIR_BIN, "validate", "--dir", TOPO_PLUGIN_DIR, path,
              (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (cap - len < 1024) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t r = read(pipefd[0], buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *out_err = buf;
    return status;
}

static void test_weir_validate(void **state)
{
    const bad_case *c = *state;
    char path[1100], pos[1200];
    char *err = NULL;
    case_path(c, path, sizeof path);
    int status = run_validate(path, &err);
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "weir validate %s: killed by signal %d\n%s", path,
                WTERMSIG(status), err);
        fail();
    }
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 2) {
        fprintf(stderr, "weir validate %s: exit %d\n%s", path,
                WEXITSTATUS(status), err);
        fail();
    }
    snprintf(pos, sizeof pos, "%s:%d:%d: ", path, c->line, c->col);
    if (!strstr(err, pos) || !strstr(err, c->msg)) {
        fprintf(stderr, "want: %s...%s\ngot:  %s\n", pos, c->msg, err);
        fail();
    }
    free(err);
}

static void test_missing_file(void **state)
{
    (void)state;
    char path[1100], *err = NULL;
    topo_job *job = NULL;
    snprintf(path, sizeof path, "%s/bad/no-such-file.yaml", TOPO_SRC_DIR);
    assert_int_equal(topo_load_file(path, reg, &job, &err), WEIR_EIO);
    assert_null(job);
    assert_non_null(strstr(err, "cannot open: No such file or directory"));
    free(err);
    int status = run_validate(path, &err);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(err, "no-such-file.yaml: cannot open"));
    free(err);
}

static void test_directory(void **state)
{
    (void)state;
    char *err = NULL;
    topo_job *job = NULL;
    assert_int_equal(topo_load_file(TOPO_SRC_DIR, reg, &job, &err), WEIR_EIO);
    assert_non_null(strstr(err, "cannot read"));
    free(err);
}

/* A stream that never ends is cut at the limit, not read to exhaustion. */
static void test_endless_stream(void **state)
{
    (void)state;
    char *err = NULL;
    topo_job *job = NULL;
    assert_int_equal(topo_load_file("/dev/zero", reg, &job, &err), WEIR_EINVAL);
    assert_null(job);
    assert_string_equal(err, "/dev/zero:1:1: the file has more than "
                             "1048576 bytes, the limit");
    free(err);
}

/* topo_load_string() checks the length before looking at the bytes. */
static void test_string_too_long(void **state)
{
    (void)state;
    char *err = NULL;
    topo_job *job = NULL;
    assert_int_equal(topo_load_string("s.yaml", "",
                                      (size_t)TOPO_MAX_FILE_BYTES + 1, reg,
                                      &job, &err),
                     WEIR_EINVAL);
    assert_null(job);
    assert_string_equal(err, "s.yaml:1:1: the file has 1048577 bytes, more "
                             "than the limit of 1048576");
    free(err);
}

static void test_usage(void **state)
{
    (void)state;
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execl(WEIR_BIN, WEIR_BIN, "validate", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    char buf[512];
    ssize_t r = read(pipefd[0], buf, sizeof buf - 1);
    buf[r > 0 ? r : 0] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);
    assert_non_null(strstr(buf, "usage: weir validate"));
}

int main(void)
{
    struct CMUnitTest tests[2 * N_CASES + 5];
    static char names[2 * N_CASES][128];
    size_t n = 0;
    for (size_t k = 0; k < N_CASES; k++) {
        snprintf(names[2 * k], sizeof names[0], "load %s", cases[k].file);
        snprintf(names[2 * k + 1], sizeof names[0], "weir validate %s",
                 cases[k].file);
        tests[n++] = (struct CMUnitTest){.name = names[2 * k],
                                         .test_func = test_in_process,
                                         .initial_state = (void *)&cases[k]};
        tests[n++] = (struct CMUnitTest){.name = names[2 * k + 1],
                                         .test_func = test_weir_validate,
                                         .initial_state = (void *)&cases[k]};
    }
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_missing_file);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_directory);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_endless_stream);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_string_too_long);
    tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_usage);
    return cmocka_run_group_tests_name("topology bad files", tests, setup,
                                       teardown);
}
