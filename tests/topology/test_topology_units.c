/*
 * test_topology_units.c - durations, sizes, YAML 1.2 core-schema typing of
 * scalars, the YAML tree's limits, hints and message quoting.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "topology/topo_internal.h"
#include "topology/topology.h"

typedef struct unit_case {
    const char *in;
    int64_t want;    /* when ok */
    const char *err; /* substring of the message, or NULL when ok */
} unit_case;

static void run_units(const unit_case *cases, size_t n, int size)
{
    for (size_t k = 0; k < n; k++) {
        int64_t v = -12345;
        char *err = NULL;
        const char *s = cases[k].in;
        int rc = size ? topo_parse_size(s, strlen(s), &v, &err)
                      : topo_parse_duration(s, strlen(s), &v, &err);
        if (!cases[k].err) {
            if (rc != 0 || v != cases[k].want) {
                fprintf(stderr, "'%s': rc %d value %lld (want %lld) %s\n", s,
                        rc, (long long)v, (long long)cases[k].want,
                        err ? err : "");
                fail();
            }
            assert_null(err);
            continue;
        }
        if (rc != WEIR_EINVAL || !err || !strstr(err, cases[k].err)) {
            fprintf(stderr, "'%s': rc %d, want error '%s', got '%s'\n", s, rc,
                    cases[k].err, err ? err : "(none)");
            fail();
        }
        assert_int_equal(v, -12345); /* untouched on error */
        free(err);
    }
}

static void test_durations(void **state)
{
    (void)state;
    static const unit_case cases[] = {
        {"0", 0, NULL},
        {"250", 250, NULL},
        {"250ms", 250, NULL},
        {"10s", 10000, NULL},
        {"5m", 300000, NULL},
        {"2h", 7200000, NULL},
        {"7d", 604800000, NULL},
        {"0s", 0, NULL},
        {"007s", 7000, NULL},
        {"9223372036854775807", INT64_MAX, NULL},
        {"9223372036854775807ms", INT64_MAX, NULL},
        {"106751991167d", 106751991167LL * 86400000LL, NULL},
        {"106751991168d", 0, "duration too large"},
        {"9223372036854775808", 0, "duration too large"},
        {"9223372036854776s", 0, "duration too large"},
        {"99999999999999999999999999ms", 0, "duration too large"},
        {"", 0, "empty duration"},
        {"-1s", 0, "'-1s': a duration cannot be negative"},
        {"-0", 0, "cannot be negative"},
        {"+5s", 0, "'+5s' is not a duration"},
        {"s", 0, "'s' is not a duration"},
        {"10 s", 0, "unknown duration unit ' s'"},
        {"10S", 0, "unknown duration unit 'S'"},
        {"10sec", 0, "unknown duration unit 'sec'"},
        {"10ms5", 0, "unknown duration unit 'ms5'"},
        {"1.5s", 0, "fractions are not supported"},
        {"1h30m", 0, "unknown duration unit 'h30m'"},
        {"0x10", 0, "unknown duration unit 'x10'"},
    };
    run_units(cases, sizeof cases / sizeof cases[0], 0);
    /* the length bounds the parse: "10s" read as "10" */
    int64_t v = 0;
    assert_int_equal(topo_parse_duration("10s", 2, &v, NULL), 0);
    assert_int_equal(v, 10);
    /* a NUL inside is a bad unit, not the end */
    assert_int_equal(topo_parse_duration("10\0s", 4, &v, NULL), WEIR_EINVAL);
}

static void test_sizes(void **state)
{
    (void)state;
    static const unit_case cases[] = {
        {"0", 0, NULL},
        {"512", 512, NULL},
        {"3B", 3, NULL},
        {"4KiB", 4096, NULL},
        {"64MiB", 64LL << 20, NULL},
        {"1GiB", 1LL << 30, NULL},
        {"2TiB", 2LL << 40, NULL},
        {"10KB", 10000, NULL},
        {"1kB", 1000, NULL},
        {"1MB", 1000000, NULL},
        {"3GB", 3000000000LL, NULL},
        {"1TB", 1000000000000LL, NULL},
        {"8388607TiB", 8388607LL << 40, NULL},
        {"9223372036854775807", INT64_MAX, NULL},
        {"8388608TiB", 0, "size too large"},
        {"9223372036854775807B", INT64_MAX, NULL},
        {"9223372036854775808", 0, "size too large"},
        {"9223372036854776KB", 0, "size too large"},
        {"", 0, "empty size"},
        {"-1", 0, "a size cannot be negative"},
        {"KiB", 0, "'KiB' is not a size"},
        {"1K", 0, "unknown size unit 'K'"},
        {"1KIB", 0, "unknown size unit 'KIB'"},
        {"1kib", 0, "unknown size unit 'kib'"},
        {"1 KiB", 0, "unknown size unit ' KiB'"},
        {"1.5KiB", 0, "fractions are not supported"},
        {"1PiB", 0, "unknown size unit 'PiB'"},
    };
    run_units(cases, sizeof cases / sizeof cases[0], 1);
}

static void test_fmt(void **state)
{
    (void)state;
    char b[64];
    topo_fmt_duration(0, b, sizeof b);
    assert_string_equal(b, "0ms");
    topo_fmt_duration(1500, b, sizeof b);
    assert_string_equal(b, "1500ms");
    topo_fmt_duration(604800000, b, sizeof b);
    assert_string_equal(b, "7d");
    topo_fmt_duration(90 * 60000, b, sizeof b);
    assert_string_equal(b, "90m");
    topo_fmt_size(1 << 20, b, sizeof b);
    assert_string_equal(b, "1MiB");
    topo_fmt_size(1000, b, sizeof b);
    assert_string_equal(b, "1000B");
    topo_fmt_size(0, b, sizeof b);
    assert_string_equal(b, "0B");
}

/* Types `text` as a plain scalar. */
static topo_ynode plain(const char *text)
{
    topo_ynode n = {.kind = TOPO_YSCALAR, .str = text, .len = strlen(text)};
    topo_yresolve_plain(&n);
    return n;
}

static void test_core_schema(void **state)
{
    (void)state;
    const char *nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t k = 0; k < 5; k++)
        assert_int_equal(plain(nulls[k]).type, TOPO_YNULL);
    const char *trues[] = {"true", "True", "TRUE"};
    const char *falses[] = {"false", "False", "FALSE"};
    for (size_t k = 0; k < 3; k++) {
        topo_ynode t = plain(trues[k]), f = plain(falses[k]);
        assert_int_equal(t.type, TOPO_YBOOL);
        assert_int_equal(t.b, 1);
        assert_int_equal(f.type, TOPO_YBOOL);
        assert_int_equal(f.b, 0);
    }
    /* YAML 1.1 words are strings in 1.2 */
    const char *strs[] = {"yes",  "no",    "on",        "off",   "nULL",
                          "tRUE", "0b101", "1_000",     "0o8",   "0x",
                          "0xg",  "-0x1",  "1.5.5",     "e3",    "1e",
                          ".",    "+",     "-",         "12:30", "1e+",
                          "inf",  "nan",   ".infinity", "0o",    "hello"};
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++) {
        if (plain(strs[k]).type != TOPO_YSTR) {
            fprintf(stderr, "'%s' should be a string\n", strs[k]);
            fail();
        }
    }
    struct {
        const char *s;
        int64_t v;
    } ints[] = {{"0", 0},
                {"-19", -19},
                {"+12", 12},
                {"007", 7},
                {"0o17", 15},
                {"0x1F", 31},
                {"0x1f", 31},
                {"0xff", 255},
                {"-0", 0},
                {"9223372036854775807", INT64_MAX},
                {"-9223372036854775808", INT64_MIN}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        topo_ynode n = plain(ints[k].s);
        assert_int_equal(n.type, TOPO_YINT);
        assert_int_equal(n.int_range, TOPO_YINT_OK);
        assert_true(n.i == ints[k].v);
    }
    topo_ynode n = plain("9223372036854775808");
    assert_int_equal(n.type, TOPO_YINT);
    assert_int_equal(n.int_range, TOPO_YINT_U64);
    assert_true(n.u == (uint64_t)INT64_MAX + 1);
    n = plain("18446744073709551615");
    assert_int_equal(n.int_range, TOPO_YINT_U64);
    assert_true(n.u == UINT64_MAX);
    assert_int_equal(plain("18446744073709551616").int_range, TOPO_YINT_HUGE);
    assert_int_equal(plain("-9223372036854775809").int_range, TOPO_YINT_HUGE);
    assert_int_equal(plain("0x10000000000000000").int_range, TOPO_YINT_HUGE);
    struct {
        const char *s;
        double v;
    } floats[] = {{"1.5", 1.5},       {"-1.5", -1.5},     {".5", 0.5},
                  {"1.", 1.0},        {"1e3", 1000.0},    {"-2E-2", -0.02},
                  {"+1.0", 1.0},      {".inf", INFINITY}, {"-.Inf", -INFINITY},
                  {"+.INF", INFINITY}};
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
        n = plain(floats[k].s);
        assert_int_equal(n.type, TOPO_YFLOAT);
        assert_true(n.d == floats[k].v);
    }
    const char *nans[] = {".nan", ".NaN", ".NAN"};
    for (size_t k = 0; k < 3; k++) {
        n = plain(nans[k]);
        assert_int_equal(n.type, TOPO_YFLOAT);
        assert_true(isnan(n.d));
    }
}

/* Parses `yaml` and returns the error message (or NULL on success). */
static char *parse_err(const char *yaml, size_t len)
{
    topo_ydoc *doc = NULL;
    const topo_ynode *root = NULL;
    char *err = NULL;
    int rc = topo_yparse("t.yaml", yaml, len, &doc, &root, &err);
    if (rc == 0) {
        assert_null(err);
        assert_non_null(doc);
        topo_yfree(doc);
        return NULL;
    }
    assert_null(doc);
    assert_non_null(err);
    return err;
}

static void expect_parse_err(const char *yaml, const char *want)
{
    char *err = parse_err(yaml, strlen(yaml));
    if (!err || !strstr(err, want)) {
        fprintf(stderr, "yaml: %s\nwant: %s\ngot:  %s\n", yaml, want,
                err ? err : "(success)");
        fail();
    }
    free(err);
}

static void test_tree(void **state)
{
    (void)state;
    topo_ydoc *doc = NULL;
    const topo_ynode *root = NULL;
    const char *y = "a: &x [1, {b: 'q'}]\nc: *x\nd: !!str 5\ne: !!float 3\n";
    assert_int_equal(topo_yparse("t.yaml", y, strlen(y), &doc, &root, NULL), 0);
    assert_int_equal(root->kind, TOPO_YMAP);
    assert_int_equal(root->n, 8);
    const topo_ynode *a = topo_ymap_get(root, "a");
    assert_ptr_equal(topo_ymap_get(root, "c"), a); /* shared, not copied */
    assert_int_equal(a->kind, TOPO_YSEQ);
    assert_int_equal(a->line, 1);
    assert_int_equal(a->col, 4);
    assert_int_equal(a->height, 2);
    assert_int_equal(a->weight, 5); /* list, 1, map, b, 'q' */
    assert_int_equal(root->weight, 1 + 2 * 5 + 4 + 2);
    const topo_ynode *q = topo_ymap_get(a->kids[1], "b");
    assert_int_equal(q->type, TOPO_YSTR);
    assert_true(q->quoted);
    assert_int_equal(topo_ymap_get(root, "d")->type, TOPO_YSTR);
    assert_int_equal(topo_ymap_get(root, "e")->type, TOPO_YFLOAT);
    assert_true(topo_ymap_get(root, "e")->d == 3.0);
    assert_null(topo_ymap_get(root, "zz"));
    assert_null(topo_ymap_get(a, "zz")); /* not a mapping */
    topo_yfree(doc);

    /* an empty stream has no root */
    assert_int_equal(topo_yparse("t.yaml", "", 0, &doc, &root, NULL), 0);
    assert_null(root);
    topo_yfree(doc);

    expect_parse_err(
        "a: 1\na: 2\n",
        "t.yaml:2:1: duplicate key 'a' (first at line 1 column 1)");
    /* the earliest second occurrence is reported */
    expect_parse_err("b: 1\na: 1\na: 2\nb: 2\n",
                     "t.yaml:3:1: duplicate key 'a' (first at line 2");
    /* quoted and plain spellings are the same key */
    expect_parse_err("{x: 1, \"x\": 2}", "t.yaml:1:8: duplicate key 'x'");
    /* libyaml puts the end of the stream at the start of a new line */
    expect_parse_err("[1, 2", "t.yaml:2:1: did not find expected ',' or ']' "
                              "(while parsing a flow sequence started at "
                              "line 1 column 1)");
    expect_parse_err("a: b: c", "t.yaml:1:5: mapping values are not allowed");
    expect_parse_err("a: *nope", "t.yaml:1:4: alias '*nope' refers to no");
    expect_parse_err("a: !!int x", "t.yaml:1:4: 'x' is not a valid !!int");
    expect_parse_err("a: !!bool 1", "'1' is not a valid !!bool");
    expect_parse_err("a: !foo x", "unsupported tag '!foo'");
    expect_parse_err("a: !!set {x: 1}", "unsupported tag");
    expect_parse_err("--- 1\n--- 2\n", "t.yaml:2:1: a second YAML document");
    expect_parse_err("a: \"\\x01\"\nb: \"x\\x01\"\nb: 1\n",
                     "duplicate key 'b'");
    /* control characters in keys are shown escaped */
    expect_parse_err("\"k\\x01\": 1\n\"k\\x01\": 2\n",
                     "duplicate key 'k\\x01'");
    /* a NUL byte in the input */
    char *err = parse_err("a: \0b\n", 6);
    assert_non_null(err);
    assert_non_null(strstr(err, "t.yaml:1:4: control characters are not "
                                "allowed"));
    free(err);

    /* depth: 64 nested lists are fine, 65 are not */
    char deep[300];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    assert_null(parse_err(deep, strlen(deep)));
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    expect_parse_err(deep, "t.yaml:1:65: nesting deeper than 64");
    /* an alias may not carry a deep node deeper */
    char y2[600];
    size_t o = (size_t)snprintf(y2, sizeof y2, "a: &d ");
    memset(y2 + o, '[', 63);
    memset(y2 + o + 63, ']', 63);
    o += 126;
    o += (size_t)snprintf(y2 + o, sizeof y2 - o, "\nb: [*d]\n");
    expect_parse_err(y2, "t.yaml:2:5: alias '*d' nests the document deeper "
                         "than 64 levels");
}

static void test_alias_budget(void **state)
{
    (void)state;
    /* a wide but legal expansion: 10 x 10 x 1000 nodes stays under budget */
    char *y = malloc(20000);
    size_t o = 0;
    o += (size_t)sprintf(y + o, "a: &a [");
    for (int k = 0; k < 1000; k++)
        o += (size_t)sprintf(y + o, "%s1", k ? "," : "");
    o += (size_t)sprintf(y + o, "]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                                "c: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n");
    assert_null(parse_err(y, o));
    /* one more level of ten crosses 1000000 */
    o += (size_t)sprintf(y + o, "d: &d [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                                "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n");
    char *err = parse_err(y, o);
    assert_non_null(err);
    assert_non_null(strstr(err, "alias '*d' expands the document past"));
    free(err);
    free(y);
}

static void test_suggest_and_quote(void **state)
{
    (void)state;
    const char *words[] = {"parallelism", "partition", "port", "window"};
    assert_string_equal(topo_suggest("paralelism", 10, words, 4),
                        "parallelism");
    assert_string_equal(topo_suggest("windw", 5, words, 4), "window");
    assert_string_equal(topo_suggest("prot", 4, words, 4), "port");
    assert_null(topo_suggest("xyzzy", 5, words, 4));
    assert_null(topo_suggest("a", 1, words, 0));
    char big[200];
    memset(big, 'a', sizeof big);
    assert_null(topo_suggest(big, sizeof big, words, 4));

    char q[TOPO_QUOTE_MAX];
    assert_string_equal(topo_quote("a\tb\\", 4, q, sizeof q), "a\\x09b\\x5c");
    assert_string_equal(topo_quote("caf\xc3\xa9", 5, q, sizeof q),
                        "caf\xc3\xa9");
    topo_quote(big, sizeof big, q, sizeof q);
    assert_int_equal(strlen(q), 63);
    assert_string_equal(q + 60, "...");
    char small[8];
    topo_quote("abcdefgh", 8, small, sizeof small);
    assert_true(strlen(small) < sizeof small);
}

/* The error format: FILE:LINE:COL: PATH: message, parts left out when
 * absent. */
static void test_err_format(void **state)
{
    (void)state;
    char *err = NULL;
    assert_int_equal(topo_err(&err, "f.yaml", 3, 7, "a.b", "bad %d", 5),
                     WEIR_EINVAL);
    assert_string_equal(err, "f.yaml:3:7: a.b: bad 5");
    topo_err(&err, "f.yaml", 1, 1, NULL, "x");
    assert_string_equal(err, "f.yaml:1:1: x");
    topo_err(&err, NULL, 0, 0, "p", "y");
    assert_string_equal(err, "p: y");
    topo_err(&err, NULL, 0, 0, NULL, "z");
    assert_string_equal(err, "z");
    free(err);
    assert_int_equal(topo_err(NULL, "f", 1, 1, NULL, "ignored"), WEIR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_fmt),
        cmocka_unit_test(test_core_schema),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_alias_budget),
        cmocka_unit_test(test_suggest_and_quote),
        cmocka_unit_test(test_err_format),
    };
    return cmocka_run_group_tests_name("topology units", tests, NULL, NULL);
}
