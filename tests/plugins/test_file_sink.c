/*
 * test_file_sink.c - the file_sink and stdout operators: the exact line
 * format, msgpack -> JSON conversion (checked with jansson as an independent
 * parser, on fixed cases and on random values), per-subtask and merged
 * files, flushing, truncation, write and open errors, and a round trip
 * file_source -> file_sink.
 */
#include <fcntl.h>
#include <math.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "th.h"

static const weir_operator *sink_op(void)
{
    return th_load(FILE_SINK_SO, "file_sink");
}

typedef struct env {
    char *dir;
    char *path;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    e->dir = th_tmpdir();
    e->path = th_path(e->dir, "out.jsonl");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    th_rmtree(e->dir);
    free(e->dir);
    free(e->path);
    free(e);
    return 0;
}

static th_inst *open_sink(const char *path, const th_param *extra, uint32_t sub,
                          uint32_t par)
{
    th_param p[16];
    size_t n = 0;
    p[n++] = (th_param){"path", path};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (th_param){NULL, NULL};
    th_inst *t = th_new(sink_op(), p, sub, par);
    if (th_open(t) != WEIR_OK)
        fail_msg("open failed: %s", t->error);
    return t;
}

/* The lines of a file (without "\n"); the file must end with "\n". */
typedef struct lines {
    char *buf;
    char **v;
    size_t n;
} lines;

static lines read_lines(const char *path)
{
    lines l = {0};
    size_t len;
    l.buf = th_read_file(path, &len);
    if (!l.buf)
        fail_msg("%s missing", path);
    l.v = calloc(len + 1, sizeof *l.v);
    assert_true(len == 0 || l.buf[len - 1] == '\n');
    for (char *p = l.buf; *p;) {
        char *nl = strchr(p, '\n');
        assert_non_null(nl);
        *nl = '\0';
        l.v[l.n++] = p;
        p = nl + 1;
    }
    return l;
}

static void free_lines(lines *l)
{
    free(l->buf);
    free(l->v);
}

static size_t count_lines(const char *path)
{
    lines l = read_lines(path);
    size_t n = l.n;
    free_lines(&l);
    return n;
}

/* A msgpack writer for building test values. */
typedef struct mp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp;

static void mp_init(mp *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp *m, const char *s, size_t n)
{
    msgpack_pack_str(&m->pk, n);
    msgpack_pack_str_body(&m->pk, s, n);
}

static void mp_cstr(mp *m, const char *s)
{
    mp_str(m, s, strlen(s));
}

static void process(th_inst *t, const void *key, size_t klen, int64_t ts,
                    const mp *m)
{
    int rc = th_process(t, key, klen, ts, m->sb.data, m->sb.size);
    if (rc != WEIR_OK)
        fail_msg("process: %d %s", rc, t->error);
}

static json_t *parse_flags(const char *line, size_t flags)
{
    json_error_t err;
    json_t *j = json_loads(line, flags | JSON_ALLOW_NUL, &err);
    if (!j)
        fail_msg("not JSON (%s): %s", err.text, line);
    return j;
}

/* Parses a line whose integers fit int64. */
static json_t *parse(const char *line)
{
    return parse_flags(line, 0);
}

/* Parses any line: integers beyond int64 (uint64 values) become reals.
 * jansson cannot hold NUL in object keys, so escaped NULs are replaced by
 * escaped U+0001 first (the JSON syntax stays what it was). */
static json_t *parse_any(const char *line)
{
    char *copy = strdup(line);
    assert_non_null(copy);
    for (char *p = copy; (p = strstr(p, "\\u0000"));)
        p[5] = '1';
    json_t *j = parse_flags(copy, JSON_DECODE_INT_AS_REAL);
    free(copy);
    return j;
}

/* ------------------------------------------------------------------------ */

static void test_exact_format(void **state)
{
    env *e = *state;
    th_inst *t = open_sink(e->path, NULL, 0, 1);
    mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_cstr(&m, "a");
    msgpack_pack_int(&m.pk, 1);
    process(t, "k1", 2, 5, &m);
    /* non-UTF-8 key, no event time, empty value */
    assert_int_equal(th_process(t, "\xff\0ab", 4, WEIR_TS_NONE, "", 0), 0);
    /* not msgpack / trailing bytes */
    assert_int_equal(th_process(t, "k5", 2, 0, "\xc1", 1), 0);
    assert_int_equal(th_process(t, "k6", 2, -3, "\x01\x02", 2), 0);
    /* empty key, nil value, negative time */
    assert_int_equal(th_process(t, "", 0, WEIR_TS_NONE, "\xc0", 1), 0);
    /* UTF-8 and control characters in the key */
    assert_int_equal(th_process(t, "\xc3\xa9\n\"", 4, 1, "\xc3", 1), 0);
    /* containers declaring more elements than there are bytes: no giant
     * allocation, just base64 */
    assert_int_equal(th_process(t, "k7", 2, 1, "\xdd\xff\xff\xff\xff", 5), 0);
    assert_int_equal(th_process(t, "k8", 2, 1, "\xdf\x7f\xff\xff\xff", 5), 0);
    assert_int_equal(th_finish(t), WEIR_OK);

    lines l = read_lines(e->path);
    assert_int_equal(l.n, 8);
    assert_string_equal(l.v[0],
                        "{\"key\":\"k1\",\"ts\":5,\"value\":{\"a\":1}}");
    assert_string_equal(l.v[1], "{\"key_b64\":\"/wBhYg==\"}");
    assert_string_equal(l.v[2],
                        "{\"key\":\"k5\",\"ts\":0,\"value_b64\":\"wQ==\"}");
    assert_string_equal(l.v[3],
                        "{\"key\":\"k6\",\"ts\":-3,\"value_b64\":\"AQI=\"}");
    assert_string_equal(l.v[4], "{\"key\":\"\",\"value\":null}");
    assert_string_equal(
        l.v[5], "{\"key\":\"\xc3\xa9\\n\\\"\",\"ts\":1,\"value\":true}");
    assert_string_equal(l.v[6],
                        "{\"key\":\"k7\",\"ts\":1,\"value_b64\":\"3f////8=\"}");
    assert_string_equal(l.v[7],
                        "{\"key\":\"k8\",\"ts\":1,\"value_b64\":\"33////8=\"}");
    free_lines(&l);
    msgpack_sbuffer_destroy(&m.sb);
    th_free(t);
}

static void test_value_types(void **state)
{
    env *e = *state;
    th_inst *t = open_sink(e->path, NULL, 0, 1);
    mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 17);
    mp_cstr(&m, "s");
    mp_cstr(&m, "he said \"hi\"\n\t\\ \x01 \xc3\xa9 \x7f /");
    mp_cstr(&m, "neg");
    msgpack_pack_int64(&m.pk, -42);
    mp_cstr(&m, "i64min");
    msgpack_pack_int64(&m.pk, INT64_MIN);
    mp_cstr(&m, "f");
    msgpack_pack_double(&m.pk, 0.1);
    mp_cstr(&m, "one");
    msgpack_pack_double(&m.pk, 1.0);
    mp_cstr(&m, "big");
    msgpack_pack_double(&m.pk, 1e300);
    mp_cstr(&m, "f32");
    msgpack_pack_float(&m.pk, 0.1f);
    mp_cstr(&m, "nan");
    msgpack_pack_double(&m.pk, NAN);
    mp_cstr(&m, "inf");
    msgpack_pack_double(&m.pk, -INFINITY);
    mp_cstr(&m, "t");
    msgpack_pack_true(&m.pk);
    mp_cstr(&m, "n");
    msgpack_pack_nil(&m.pk);
    mp_cstr(&m, "arr"); /* [1, [2, []], {}] */
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, 2);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_map(&m.pk, 0);
    mp_cstr(&m, "bin");
    msgpack_pack_bin(&m.pk, 2);
    msgpack_pack_bin_body(&m.pk, "\x00\xff", 2);
    mp_cstr(&m, "bad");
    mp_str(&m,
           "a\xff"
           "b\xed\xa0\x80"
           "c\xf0\x9f\x98\x80",
           11);
    msgpack_pack_int(&m.pk, 5); /* a non-string key */
    mp_cstr(&m, "five");
    mp_cstr(&m, "ext");
    msgpack_pack_ext(&m.pk, 3, 1);
    msgpack_pack_ext_body(&m.pk, "abc", 3);
    mp_cstr(&m, "u64");
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    process(t, "k", 1, 1, &m);
    assert_int_equal(th_finish(t), WEIR_OK);

    lines l = read_lines(e->path);
    assert_int_equal(l.n, 1);
    /* Exact text where the JSON form matters. */
    assert_non_null(strstr(l.v[0], "\"one\":1.0,"));
    assert_non_null(strstr(l.v[0], "\"f\":0.1,"));
    assert_non_null(strstr(l.v[0], "\"f32\":0.1,"));
    assert_non_null(strstr(l.v[0], "\"u64\":18446744073709551615}"));
    assert_non_null(strstr(l.v[0], "\"i64min\":-9223372036854775808,"));
    assert_non_null(strstr(l.v[0], "\\u0001"));

    json_t *j = parse_any(l.v[0]);
    json_t *v = json_object_get(j, "value");
    assert_string_equal(json_string_value(json_object_get(v, "s")),
                        "he said \"hi\"\n\t\\ \x01 \xc3\xa9 \x7f /");
    assert_true(json_number_value(json_object_get(v, "neg")) == -42);
    assert_true(json_number_value(json_object_get(v, "u64")) ==
                18446744073709551615.0);
    assert_true(json_real_value(json_object_get(v, "f")) == 0.1);
    assert_true(json_is_real(json_object_get(v, "one")));
    assert_true(json_real_value(json_object_get(v, "big")) == 1e300);
    assert_true(json_is_null(json_object_get(v, "nan")));
    assert_true(json_is_null(json_object_get(v, "inf")));
    assert_true(json_is_true(json_object_get(v, "t")));
    assert_true(json_is_null(json_object_get(v, "n")));
    json_t *want_arr = json_loads("[1.0,[2.0,[]],{}]", 0, NULL);
    assert_true(json_equal(json_object_get(v, "arr"), want_arr));
    json_decref(want_arr);
    assert_string_equal(json_string_value(json_object_get(v, "bin")), "AP8=");
    /* invalid bytes (a stray byte, an encoded surrogate) become U+FFFD */
    assert_string_equal(json_string_value(json_object_get(v, "bad")),
                        "a\xef\xbf\xbd"
                        "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                        "c\xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_object_get(v, "5")), "five");
    assert_string_equal(json_string_value(json_object_get(v, "ext")), "YWJj");
    json_decref(j);
    free_lines(&l);
    msgpack_sbuffer_destroy(&m.sb);
    th_free(t);
}

/* ------------------------------------------------------------------------ */
/* Random values: every line is JSON; clean values convert exactly          */
/* ------------------------------------------------------------------------ */

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static void rnd_bytes(char *buf, size_t n, int clean)
{
    static const char *const utf8[] = {
        "a",  "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\"", "\\",       "\n",           "\x01",
        "/",  " "};
    size_t i = 0;
    while (i < n) {
        if (clean) {
            const char *u = utf8[rnd() % 10];
            size_t ul = strlen(u);
            if (i + ul > n)
                break;
            memcpy(buf + i, u, ul);
            i += ul;
        } else {
            buf[i++] = (char)rnd();
        }
    }
    while (i < n)
        buf[i++] = 'z';
}

static void rnd_value(mp *m, int depth, int clean)
{
    char buf[64];
    unsigned kind = (unsigned)(rnd() % (depth >= 4 ? 6 : 8));
    size_t n = rnd() % 20;
    switch (kind) {
    case 0: msgpack_pack_nil(&m->pk); break;
    case 1:
        if (rnd() & 1)
            msgpack_pack_true(&m->pk);
        else
            msgpack_pack_false(&m->pk);
        break;
    case 2:
        if (clean)
            msgpack_pack_int64(&m->pk, (int64_t)rnd() >> (rnd() % 64));
        else
            msgpack_pack_uint64(&m->pk, rnd());
        break;
    case 3: {
        uint64_t bits = rnd();
        double d;
        memcpy(&d, &bits, sizeof d);
        if (clean && !isfinite(d))
            d = 1.5;
        if (!clean && (rnd() & 1))
            msgpack_pack_float(&m->pk, (float)d);
        else
            msgpack_pack_double(&m->pk, d);
        break;
    }
    case 4:
    case 5:
        rnd_bytes(buf, n, clean);
        if (!clean && (rnd() & 1)) {
            msgpack_pack_bin(&m->pk, n);
            msgpack_pack_bin_body(&m->pk, buf, n);
        } else {
            mp_str(m, buf, n);
        }
        break;
    case 6:
        n %= 5;
        msgpack_pack_array(&m->pk, n);
        for (size_t i = 0; i < n; i++)
            rnd_value(m, depth + 1, clean);
        break;
    default:
        n %= 5;
        msgpack_pack_map(&m->pk, n);
        for (size_t i = 0; i < n; i++) {
            if (clean || (rnd() & 1)) {
                /* unique keys: the index, then random text */
                size_t kl = (size_t)snprintf(buf, sizeof buf, "%zu", i);
                size_t tl = rnd() % 8;
                rnd_bytes(buf + kl, tl, clean);
                mp_str(m, buf, kl + tl);
            } else {
                rnd_value(m, depth + 1, clean);
            }
            rnd_value(m, depth + 1, clean);
        }
        break;
    }
}

static void test_random_values(void **state)
{
    env *e = *state;
    enum { N = 3000 };
    th_inst *t = open_sink(e->path, NULL, 0, 1);
    mp *m = calloc(N, sizeof *m);
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        mp_init(&m[i]);
        rnd_value(&m[i], 0, i % 2 == 0);
        char key[16];
        int kl = snprintf(key, sizeof key, "r%d", i);
        process(t, key, (size_t)kl, i, &m[i]);
    }
    assert_int_equal(th_finish(t), WEIR_OK);
    lines l = read_lines(e->path);
    assert_int_equal(l.n, N);
    for (int i = 0; i < N; i++) {
        json_t *j = i % 2 == 0 ? parse(l.v[i]) : parse_any(l.v[i]);
        assert_true(json_number_value(json_object_get(j, "ts")) == i);
        if (i % 2 == 0) {
            json_t *want = th_mp_to_json(m[i].sb.data, m[i].sb.size);
            if (!want)
                fail_msg("line %d: no oracle for %s", i, l.v[i]);
            if (!json_equal(json_object_get(j, "value"), want))
                fail_msg("line %d: %s", i, l.v[i]);
            json_decref(want);
        }
        json_decref(j);
        msgpack_sbuffer_destroy(&m[i].sb);
    }
    free(m);
    free_lines(&l);
    th_free(t);

    /* Random bytes as values: never a crash, always a JSON line. */
    t = open_sink(e->path, NULL, 0, 1);
    for (int i = 0; i < N; i++) {
        unsigned char v[24];
        for (size_t k = 0; k < sizeof v; k++)
            v[k] = (unsigned char)rnd();
        if (i % 3 == 0)
            v[0] = 0x80 | (v[0] & 15); /* a fixmap header */
        assert_int_equal(th_process(t, "x", 1, 0, v, 1 + rnd() % sizeof v), 0);
    }
    assert_int_equal(th_finish(t), WEIR_OK);
    l = read_lines(e->path);
    assert_int_equal(l.n, N);
    for (int i = 0; i < N; i++)
        json_decref(parse_any(l.v[i]));
    free_lines(&l);
    th_free(t);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

static void write_n(th_inst *t, int n, const char *tag)
{
    mp m;
    mp_init(&m);
    for (int i = 0; i < n; i++) {
        m.sb.size = 0;
        msgpack_pack_map(&m.pk, 2);
        mp_cstr(&m, "tag");
        mp_cstr(&m, tag);
        mp_cstr(&m, "i");
        msgpack_pack_int(&m.pk, i);
        process(t, tag, strlen(tag), i, &m);
    }
    msgpack_sbuffer_destroy(&m.sb);
}

static void test_per_subtask_files(void **state)
{
    env *e = *state;
    char *path = th_path(e->dir, "a/b/out.jsonl"); /* dirs are created */
    for (uint32_t i = 0; i < 2; i++) {
        th_inst *t = open_sink(path, NULL, i, 2);
        write_n(t, 3 + (int)i, i ? "one" : "zero");
        assert_int_equal(th_finish(t), WEIR_OK);
        th_free(t);
    }
    char *p0 = th_path(e->dir, "a/b/out-0.jsonl");
    char *p1 = th_path(e->dir, "a/b/out-1.jsonl");
    assert_int_equal(count_lines(p0), 3);
    assert_int_equal(count_lines(p1), 4);
    assert_null(th_read_file(path, NULL));
    lines l = read_lines(p1);
    json_t *j = parse(l.v[3]);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "one");
    json_decref(j);
    free_lines(&l);

    /* Without an extension the index is appended; a dot in a directory
     * name is not an extension. */
    char *q = th_path(e->dir, "d.x/out");
    th_inst *t = open_sink(q, NULL, 1, 3);
    write_n(t, 1, "x");
    th_free(t); /* close flushes */
    char *q1 = th_path(e->dir, "d.x/out-1");
    assert_int_equal(count_lines(q1), 1);

    /* Parallelism 1 writes exactly `path`; a new run truncates it. */
    t = open_sink(path, NULL, 0, 1);
    write_n(t, 5, "p");
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);
    assert_int_equal(count_lines(path), 5);
    t = open_sink(path, NULL, 0, 1);
    write_n(t, 2, "p");
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);
    assert_int_equal(count_lines(path), 2);
    free(path);
    free(p0);
    free(p1);
    free(q);
    free(q1);
}

static void test_merged(void **state)
{
    env *e = *state;
    enum { P = 3, N = 300 };
    const char *flushes[] = {"record", "batch"};
    for (int f = 0; f < 2; f++) {
        unlink(e->path);
        const th_param p[] = {
            {"mode", "merged"}, {"flush", flushes[f]}, {NULL, NULL}};
        th_inst *t[P];
        for (uint32_t i = 0; i < P; i++)
            t[i] = open_sink(e->path, p, i, P);
        char pad[301];
        memset(pad, 'p', 300);
        pad[300] = '\0';
        mp m;
        mp_init(&m);
        for (int n = 0; n < N; n++) {
            for (uint32_t i = 0; i < P; i++) {
                m.sb.size = 0;
                msgpack_pack_map(&m.pk, 3);
                mp_cstr(&m, "sub");
                msgpack_pack_int(&m.pk, (int)i);
                mp_cstr(&m, "n");
                msgpack_pack_int(&m.pk, n);
                mp_cstr(&m, "pad");
                mp_cstr(&m, pad);
                process(t[i], "k", 1, n, &m);
            }
        }
        msgpack_sbuffer_destroy(&m.sb);
        for (uint32_t i = 0; i < P; i++) {
            assert_int_equal(th_finish(t[i]), WEIR_OK);
            th_free(t[i]);
        }
        lines l = read_lines(e->path);
        assert_int_equal(l.n, P * N);
        int next[P] = {0};
        for (size_t k = 0; k < l.n; k++) {
            json_t *j = parse(l.v[k]);
            json_t *v = json_object_get(j, "value");
            int sub = (int)json_integer_value(json_object_get(v, "sub"));
            assert_true(sub >= 0 && sub < P);
            assert_int_equal(json_integer_value(json_object_get(v, "n")),
                             next[sub]++);
            json_decref(j);
        }
        free_lines(&l);
    }

    /* merged appends: a second run adds to the file. */
    const th_param p[] = {{"mode", "merged"}, {NULL, NULL}};
    th_inst *t = open_sink(e->path, p, 0, 1);
    write_n(t, 2, "again");
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);
    assert_int_equal(count_lines(e->path), P * N + 2);
}

static void test_flush_policy(void **state)
{
    env *e = *state;
    th_inst *t = open_sink(e->path, NULL, 0, 1);
    write_n(t, 3, "a");
    assert_int_equal(count_lines(e->path), 0); /* buffered */
    assert_int_equal(th_snapshot(t, 1), WEIR_OK);
    assert_int_equal(t->snap_len, 0);
    assert_int_equal(count_lines(e->path), 3); /* barrier writes */
    write_n(t, 1, "a");
    assert_int_equal(count_lines(e->path), 3);
    t->now_ms += 1000; /* one second of processing time */
    write_n(t, 1, "a");
    assert_int_equal(count_lines(e->path), 5);
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);

    const th_param rec[] = {
        {"flush", "record"}, {"fsync", "true"}, {NULL, NULL}};
    t = open_sink(e->path, rec, 0, 1);
    for (int i = 1; i <= 3; i++) {
        write_n(t, 1, "r");
        assert_int_equal(count_lines(e->path), (size_t)i);
    }
    assert_int_equal(th_snapshot(t, 2), WEIR_OK);
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);

    /* 64 KiB of lines go out without a barrier. */
    t = open_sink(e->path, NULL, 0, 1);
    write_n(t, 3000, "bulk");
    assert_true(count_lines(e->path) > 0);
    th_free(t);
    assert_int_equal(count_lines(e->path), 3000);
}

static void test_open_errors(void **state)
{
    env *e = *state;
    char *file = th_path(e->dir, "plain");
    th_write_file(file, "x", 1);
    char *under = th_path(e->dir, "plain/out.jsonl");
    const th_param p1[] = {{"path", under}, {NULL, NULL}};
    th_inst *t = th_new(sink_op(), p1, 0, 1);
    assert_int_equal(th_open(t), WEIR_EIO);
    assert_non_null(strstr(t->error, "cannot open"));
    assert_non_null(strstr(t->error, under));
    assert_non_null(strstr(t->error, "Not a directory"));
    th_free(t);

    const th_param p0[] = {{"path", "/proc/weir-test-nope/out.jsonl"},
                           {NULL, NULL}};
    t = th_new(sink_op(), p0, 0, 1);
    assert_int_equal(th_open(t), WEIR_EIO);
    assert_non_null(strstr(t->error, "cannot create the directories"));
    assert_non_null(strstr(t->error, "/proc/weir-test-nope/out.jsonl"));
    th_free(t);

    const th_param p2[] = {{"path", e->dir}, {NULL, NULL}};
    t = th_new(sink_op(), p2, 0, 1);
    assert_int_equal(th_open(t), WEIR_EIO);
    assert_non_null(strstr(t->error, "cannot open"));
    th_free(t);

    const th_param p3[] = {{"path", "out/"}, {NULL, NULL}};
    t = th_new(sink_op(), p3, 0, 1);
    assert_int_equal(th_open(t), WEIR_EINVAL);
    assert_non_null(strstr(t->error, "names a directory"));
    th_free(t);

    const th_param p4[] = {{"path", ""}, {NULL, NULL}};
    t = th_new(sink_op(), p4, 0, 1);
    assert_int_equal(th_open(t), WEIR_EINVAL);
    assert_non_null(strstr(t->error, "path"));
    th_free(t);

    t = th_new(sink_op(), NULL, 0, 1); /* path is required */
    assert_int_equal(t->param_rc, WEIR_EINVAL);
    th_free(t);
    free(file);
    free(under);
}

static void test_write_error(void **state)
{
    if (access("/dev/full", W_OK) != 0) {
        skip();
        return;
    }
    const th_param p[] = {
        {"path", "/dev/full"}, {"flush", "record"}, {NULL, NULL}};
    th_inst *t = th_new(sink_op(), p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_process(t, "k", 1, 0, "\xc0", 1), WEIR_EIO);
    assert_non_null(strstr(t->error, "/dev/full: write failed"));
    th_free(t);

    const th_param b[] = {{"path", "/dev/full"}, {NULL, NULL}};
    t = th_new(sink_op(), b, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_process(t, "k", 1, 0, "\xc0", 1), WEIR_OK);
    assert_int_equal(th_finish(t), WEIR_EIO);
    assert_non_null(strstr(t->error, "write failed"));
    th_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_stdout(void **state)
{
    env *e = *state;
    const weir_operator *op = th_load(FILE_SINK_SO, "stdout");
    char *captured = th_path(e->dir, "stdout.txt");
    fflush(stdout);
    int saved = dup(1);
    int fd = open(captured, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);

    const th_param p[] = {{"flush", "record"}, {NULL, NULL}};
    th_inst *t = th_new(op, p, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    write_n(t, 3, "out");
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);
    t = th_new(op, NULL, 0, 1);
    assert_int_equal(th_open(t), WEIR_OK);
    assert_int_equal(th_process(t, "\xff", 1, WEIR_TS_NONE, "", 0), 0);
    th_free(t); /* close flushes */

    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    /* The same lines as file_sink writes. */
    th_inst *f = open_sink(e->path, NULL, 0, 1);
    write_n(f, 3, "out");
    assert_int_equal(th_process(f, "\xff", 1, WEIR_TS_NONE, "", 0), 0);
    th_free(f);
    char *a = th_read_file(captured, NULL), *b = th_read_file(e->path, NULL);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "{\"key\":\"out\",\"ts\":2,\"value\":{\"tag\":"
                              "\"out\",\"i\":2}}\n{\"key_b64\":\"/w==\"}\n"));
    free(a);
    free(b);
    free(captured);
}

/* file_source -> file_sink gives back the input objects. */
static void test_round_trip(void **state)
{
    env *e = *state;
    const char *in[] = {
        ("{\"user\":\"u1\",\"ts\":1767225600000,\"page\":\"/home\",\"n\":-1,"
         "\"x\":[1.25,true,null,{\"deep\":\"\\u00e9\\u0000\\\"\"}],\"e\":{}}"),
        "{\"user\":\"u2\",\"ts\":5,\"big\":9223372036854775807,\"r\":1e-300}",
    };
    char *src = th_path(e->dir, "in.jsonl");
    char text[1024];
    snprintf(text, sizeof text, "%s\n%s\n", in[0], in[1]);
    th_write_file(src, text, strlen(text));
    const th_param sp[] = {{"path", src},
                           {"key_field", "user"},
                           {"time_field", "ts"},
                           {NULL, NULL}};
    th_inst *s = th_new(th_load(FILE_SOURCE_SO, "file_source"), sp, 0, 1);
    assert_int_equal(th_open(s), WEIR_OK);
    assert_int_equal(th_drain(s, 100), WEIR_EOF);
    assert_int_equal(s->n_recs, 2);

    th_inst *t = open_sink(e->path, NULL, 0, 1);
    for (size_t i = 0; i < s->n_recs; i++) {
        const th_rec *r = &s->recs[i];
        assert_int_equal(
            th_process(t, r->key, r->key_len, r->ts, r->value, r->value_len),
            0);
    }
    assert_int_equal(th_finish(t), WEIR_OK);
    th_free(t);
    th_free(s);

    lines l = read_lines(e->path);
    assert_int_equal(l.n, 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *out = json_loads(l.v[i], JSON_ALLOW_NUL, NULL);
        json_t *want = json_loads(in[i], JSON_ALLOW_NUL, NULL);
        assert_non_null(out);
        assert_true(json_equal(json_object_get(out, "value"), want));
        assert_true(json_equal(json_object_get(out, "key"),
                               json_object_get(want, "user")));
        assert_true(json_equal(json_object_get(out, "ts"),
                               json_object_get(want, "ts")));
        json_decref(out);
        json_decref(want);
    }
    free_lines(&l);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exact_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_subtask_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_merged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
