/*
 * test_file_sink.c - the file_sink and stdout operators: the exact line
 * format, msgpack -> JSON conversion (checked with jansson as an independent
 * parser, on fixed cases and on random values), per-subtask and merged
 * files, flushing, truncation, write and open errors, a round trip
 * file_source -> file_sink, and commit=checkpoint: pre-commit and commit,
 * recovery after a killed process, idempotent recovery, roll back to an
 * older checkpoint, fresh-start cleanup and file system faults.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <math.h>
#include <msgpack.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

/* file_sink with `p`, as subtask 0 of 1. */
static int try_sink(const weir_test_param *p, weir_test **t)
{
    hx_spec s = {.so = FILE_SINK_SO, .op = "file_sink", .params = p};
    return hx_try(&s, t);
}

/* The subtask index of each sink open_sink() made (put_one() keys its
 * records by it). */
static struct {
    const weir_test *t;
    uint32_t sub;
} subs[16];

static void remember_sub(const weir_test *t, uint32_t sub)
{
    for (size_t i = 0; i < 16; i++)
        if (!subs[i].t || subs[i].t == t) {
            subs[i].t = t;
            subs[i].sub = sub;
            return;
        }
    for (size_t i = 1; i < 16; i++) /* forget the oldest */
        subs[i - 1] = subs[i];
    subs[15].t = t;
    subs[15].sub = sub;
}

static uint32_t sub_of(const weir_test *t)
{
    for (size_t i = 16; i-- > 0;)
        if (subs[i].t == t)
            return subs[i].sub;
    fail_msg("a sink open_sink() did not make");
    return 0;
}

static void ok(weir_test *t, int rc)
{
    if (rc != WEIR_OK)
        fail_msg("call failed: %d %s", rc, weir_test_error(t));
}

/* A checkpoint with id `id` (ids grow, as the runtime's do). */
static int ck(weir_test *t, uint64_t id)
{
    return weir_test_checkpoint(t, &id);
}

/* The snapshot bytes of the last checkpoint of t. */
static size_t snap_len_of(const weir_test *t)
{
    const void *d;
    size_t n;
    weir_test_snapshot_data(t, &d, &n);
    return n;
}

typedef struct env {
    char *dir;
    char *path;
    char *readonly[4]; /* directories made read-only, undone in teardown */
} env;

static void make_writable(env *e, const char *dir);

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    e->dir = tu_tmpdir();
    e->path = tu_path(e->dir, "out.jsonl");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    for (size_t i = 0; i < 4; i++)
        if (e->readonly[i])
            make_writable(e, e->readonly[i]);
    tu_rmtree(e->dir);
    free(e->dir);
    free(e->path);
    free(e);
    return 0;
}

/* file_sink on `path` with `extra`, as subtask `sub` of `par`, restored
 * from the snapshot `data` of checkpoint `id` (version `version`) when
 * `restore`. Returns weir_test_new()'s code. */
static int try_open_sink(const char *path, const weir_test_param *extra,
                         uint32_t sub, uint32_t par, int restore, uint64_t id,
                         uint32_t version, const void *data, size_t len,
                         weir_test **t)
{
    weir_test_param p[16];
    size_t n = 0;
    p[n++] = (weir_test_param){"path", path};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    hx_spec s = {.so = FILE_SINK_SO,
                 .op = "file_sink",
                 .params = p,
                 .sub = sub,
                 .par = par};
    int rc =
        restore ? hx_try_restore(&s, id, version, data, len, t) : hx_try(&s, t);
    remember_sub(*t, sub);
    return rc;
}

static weir_test *open_sink(const char *path, const weir_test_param *extra,
                            uint32_t sub, uint32_t par)
{
    weir_test *t = NULL;
    if (try_open_sink(path, extra, sub, par, 0, 0, 0, NULL, 0, &t) != WEIR_OK)
        fail_msg("open failed: %s", weir_test_error(t));
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
    l.buf = tu_read_file(path, &len);
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

static void process(weir_test *t, const void *key, size_t klen, int64_t ts,
                    const mp *m)
{
    int rc = weir_test_process(t, 0, key, klen, ts, m->sb.data, m->sb.size);
    if (rc != WEIR_OK)
        fail_msg("process: %d %s", rc, weir_test_error(t));
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
    weir_test *t = open_sink(e->path, NULL, 0, 1);
    mp m;
    mp_init(&m);
    msgpack_pack_map(&m.pk, 1);
    mp_cstr(&m, "a");
    msgpack_pack_int(&m.pk, 1);
    process(t, "k1", 2, 5, &m);
    /* non-UTF-8 key, no event time, empty value */
    assert_int_equal(
        weir_test_process(t, 0, "\xff\0ab", 4, WEIR_TS_NONE, "", 0), 0);
    /* not msgpack / trailing bytes */
    assert_int_equal(weir_test_process(t, 0, "k5", 2, 0, "\xc1", 1), 0);
    assert_int_equal(weir_test_process(t, 0, "k6", 2, -3, "\x01\x02", 2), 0);
    /* empty key, nil value, negative time */
    assert_int_equal(weir_test_process(t, 0, "", 0, WEIR_TS_NONE, "\xc0", 1),
                     0);
    /* UTF-8 and control characters in the key */
    assert_int_equal(weir_test_process(t, 0, "\xc3\xa9\n\"", 4, 1, "\xc3", 1),
                     0);
    /* containers declaring more elements than there are bytes: no giant
     * allocation, just base64 */
    assert_int_equal(
        weir_test_process(t, 0, "k7", 2, 1, "\xdd\xff\xff\xff\xff", 5), 0);
    assert_int_equal(
        weir_test_process(t, 0, "k8", 2, 1, "\xdf\x7f\xff\xff\xff", 5), 0);
    assert_int_equal(weir_test_finish(t), WEIR_OK);

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
    weir_test_free(t);
}

static void test_value_types(void **state)
{
    env *e = *state;
    weir_test *t = open_sink(e->path, NULL, 0, 1);
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
    assert_int_equal(weir_test_finish(t), WEIR_OK);

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
    weir_test_free(t);
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
    weir_test *t = open_sink(e->path, NULL, 0, 1);
    mp *m = calloc(N, sizeof *m);
    assert_non_null(m);
    for (int i = 0; i < N; i++) {
        mp_init(&m[i]);
        rnd_value(&m[i], 0, i % 2 == 0);
        char key[16];
        int kl = snprintf(key, sizeof key, "r%d", i);
        process(t, key, (size_t)kl, i, &m[i]);
    }
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    lines l = read_lines(e->path);
    assert_int_equal(l.n, N);
    for (int i = 0; i < N; i++) {
        json_t *j = i % 2 == 0 ? parse(l.v[i]) : parse_any(l.v[i]);
        assert_true(json_number_value(json_object_get(j, "ts")) == i);
        if (i % 2 == 0) {
            json_t *want = tu_mp_to_json(m[i].sb.data, m[i].sb.size);
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
    weir_test_free(t);

    /* Random bytes as values: never a crash, always a JSON line. */
    t = open_sink(e->path, NULL, 0, 1);
    for (int i = 0; i < N; i++) {
        unsigned char v[24];
        for (size_t k = 0; k < sizeof v; k++)
            v[k] = (unsigned char)rnd();
        if (i % 3 == 0)
            v[0] = 0x80 | (v[0] & 15); /* a fixmap header */
        assert_int_equal(
            weir_test_process(t, 0, "x", 1, 0, v, 1 + rnd() % sizeof v), 0);
    }
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    l = read_lines(e->path);
    assert_int_equal(l.n, N);
    for (int i = 0; i < N; i++)
        json_decref(parse_any(l.v[i]));
    free_lines(&l);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */
/* ------------------------------------------------------------------------ */

static void write_n(weir_test *t, int n, const char *tag)
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
    char *path = tu_path(e->dir, "a/b/out.jsonl"); /* dirs are created */
    for (uint32_t i = 0; i < 2; i++) {
        weir_test *t = open_sink(path, NULL, i, 2);
        write_n(t, 3 + (int)i, i ? "one" : "zero");
        assert_int_equal(weir_test_finish(t), WEIR_OK);
        weir_test_free(t);
    }
    char *p0 = tu_path(e->dir, "a/b/out-0.jsonl");
    char *p1 = tu_path(e->dir, "a/b/out-1.jsonl");
    assert_int_equal(count_lines(p0), 3);
    assert_int_equal(count_lines(p1), 4);
    assert_null(tu_read_file(path, NULL));
    lines l = read_lines(p1);
    json_t *j = parse(l.v[3]);
    assert_string_equal(json_string_value(json_object_get(j, "key")), "one");
    json_decref(j);
    free_lines(&l);

    /* Without an extension the index is appended; a dot in a directory
     * name is not an extension. */
    char *q = tu_path(e->dir, "d.x/out");
    weir_test *t = open_sink(q, NULL, 1, 3);
    write_n(t, 1, "x");
    weir_test_free(t); /* close flushes */
    char *q1 = tu_path(e->dir, "d.x/out-1");
    assert_int_equal(count_lines(q1), 1);

    /* Parallelism 1 writes exactly `path`; a new run truncates it. */
    t = open_sink(path, NULL, 0, 1);
    write_n(t, 5, "p");
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);
    assert_int_equal(count_lines(path), 5);
    t = open_sink(path, NULL, 0, 1);
    write_n(t, 2, "p");
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);
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
        const weir_test_param p[] = {
            {"mode", "merged"}, {"flush", flushes[f]}, {NULL, NULL}};
        weir_test *t[P];
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
            assert_int_equal(weir_test_finish(t[i]), WEIR_OK);
            weir_test_free(t[i]);
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
    const weir_test_param p[] = {{"mode", "merged"}, {NULL, NULL}};
    weir_test *t = open_sink(e->path, p, 0, 1);
    write_n(t, 2, "again");
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);
    assert_int_equal(count_lines(e->path), P * N + 2);
}

static void test_flush_policy(void **state)
{
    env *e = *state;
    weir_test *t = open_sink(e->path, NULL, 0, 1);
    write_n(t, 3, "a");
    assert_int_equal(count_lines(e->path), 0); /* buffered */
    assert_int_equal(ck(t, 1), WEIR_OK);
    assert_int_equal(snap_len_of(t), 0);
    assert_int_equal(count_lines(e->path), 3); /* barrier writes */
    write_n(t, 1, "a");
    assert_int_equal(count_lines(e->path), 3);
    assert_int_equal(weir_test_set_time(t, weir_test_time(t) + 1000),
                     0); /* one second of processing time */
    write_n(t, 1, "a");
    assert_int_equal(count_lines(e->path), 5);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);

    const weir_test_param rec[] = {
        {"flush", "record"}, {"fsync", "true"}, {NULL, NULL}};
    t = open_sink(e->path, rec, 0, 1);
    for (int i = 1; i <= 3; i++) {
        write_n(t, 1, "r");
        assert_int_equal(count_lines(e->path), (size_t)i);
    }
    assert_int_equal(ck(t, 2), WEIR_OK);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);

    /* 64 KiB of lines go out without a barrier. */
    t = open_sink(e->path, NULL, 0, 1);
    write_n(t, 3000, "bulk");
    assert_true(count_lines(e->path) > 0);
    weir_test_free(t);
    assert_int_equal(count_lines(e->path), 3000);
}

static void test_open_errors(void **state)
{
    env *e = *state;
    char *file = tu_path(e->dir, "plain");
    tu_write_file(file, "x", 1);
    char *under = tu_path(e->dir, "plain/out.jsonl");
    const weir_test_param p1[] = {{"path", under}, {NULL, NULL}};
    weir_test *t = NULL;
    assert_int_equal(try_sink(p1, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "cannot open"));
    assert_non_null(strstr(weir_test_error(t), under));
    assert_non_null(strstr(weir_test_error(t), "Not a directory"));
    weir_test_free(t);

    const weir_test_param p0[] = {{"path", "/proc/weir-test-nope/out.jsonl"},
                                  {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_sink(p0, &t), WEIR_EIO);
    assert_non_null(
        strstr(weir_test_error(t), "cannot create the directories"));
    assert_non_null(
        strstr(weir_test_error(t), "/proc/weir-test-nope/out.jsonl"));
    weir_test_free(t);

    const weir_test_param p2[] = {{"path", e->dir}, {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_sink(p2, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "cannot open"));
    weir_test_free(t);

    const weir_test_param p3[] = {{"path", "out/"}, {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_sink(p3, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "names a directory"));
    weir_test_free(t);

    const weir_test_param p4[] = {{"path", "''"}, {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_sink(p4, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "path"));
    weir_test_free(t);

    /* path is required: the parameters are refused before open() */
    assert_int_equal(try_sink(NULL, &t), WEIR_EINVAL);
    assert_non_null(
        strstr(weir_test_error(t), "missing required parameter 'path'"));
    weir_test_free(t);
    free(file);
    free(under);
}

static void test_write_error(void **state)
{
    if (access("/dev/full", W_OK) != 0) {
        skip();
        return;
    }
    const weir_test_param p[] = {
        {"path", "/dev/full"}, {"flush", "record"}, {NULL, NULL}};
    weir_test *t = hx_new(FILE_SINK_SO, "file_sink", p, 0, 1);
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, "\xc0", 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "/dev/full: write failed"));
    weir_test_free(t);

    const weir_test_param b[] = {{"path", "/dev/full"}, {NULL, NULL}};
    t = hx_new(FILE_SINK_SO, "file_sink", b, 0, 1);
    assert_int_equal(weir_test_process(t, 0, "k", 1, 0, "\xc0", 1), WEIR_OK);
    assert_int_equal(weir_test_finish(t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "write failed"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */

static void test_stdout(void **state)
{
    env *e = *state;
    hx_spec so = {.so = FILE_SINK_SO, .op = "stdout"};
    char *captured = tu_path(e->dir, "stdout.txt");
    fflush(stdout);
    int saved = dup(1);
    int fd = open(captured, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);

    const weir_test_param p[] = {{"flush", "record"}, {NULL, NULL}};
    so.params = p;
    weir_test *t = hx_open(&so);
    write_n(t, 3, "out");
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);
    so.params = NULL;
    t = hx_open(&so);
    assert_int_equal(weir_test_process(t, 0, "\xff", 1, WEIR_TS_NONE, "", 0),
                     0);
    weir_test_free(t); /* close flushes */

    fflush(stdout);
    dup2(saved, 1);
    close(saved);

    /* The same lines as file_sink writes. */
    weir_test *f = open_sink(e->path, NULL, 0, 1);
    write_n(f, 3, "out");
    assert_int_equal(weir_test_process(f, 0, "\xff", 1, WEIR_TS_NONE, "", 0),
                     0);
    weir_test_free(f);
    char *a = tu_read_file(captured, NULL), *b = tu_read_file(e->path, NULL);
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
    char *src = tu_path(e->dir, "in.jsonl");
    char text[1024];
    snprintf(text, sizeof text, "%s\n%s\n", in[0], in[1]);
    tu_write_file(src, text, strlen(text));
    const weir_test_param sp[] = {{"path", src},
                                  {"key_field", "user"},
                                  {"time_field", "ts"},
                                  {NULL, NULL}};
    weir_test *s = hx_new(FILE_SOURCE_SO, "file_source", sp, 0, 1);
    assert_int_equal(weir_test_drain(s, 100), WEIR_EOF);
    assert_int_equal(hx_n(s), 2);

    weir_test *t = open_sink(e->path, NULL, 0, 1);
    for (size_t i = 0; i < hx_n(s); i++) {
        const weir_test_record *r = hx_rec(s, i);
        assert_int_equal(weir_test_process(t, 0, r->key, r->key_len, r->ts,
                                           r->value, r->value_len),
                         0);
    }
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    weir_test_free(t);
    weir_test_free(s);

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

/* ------------------------------------------------------------------------ */
/* commit=none stays what it was                                            */
/* ------------------------------------------------------------------------ */

static void test_commit_none(void **state)
{
    env *e = *state;
    char *other = tu_path(e->dir, "explicit.jsonl");
    const weir_test_param none[] = {{"commit", "none"}, {NULL, NULL}};
    weir_test *a = open_sink(e->path, NULL, 0, 1);
    weir_test *b = open_sink(other, none, 0, 1);
    for (int k = 0; k < 2; k++) {
        weir_test *t = k ? b : a;
        write_n(t, 3, "n");
        assert_int_equal(ck(t, 1), WEIR_OK);
        assert_int_equal(snap_len_of(t), 0); /* nothing to restore */
        assert_int_equal(weir_test_notify_checkpoint(t, 1), WEIR_OK);
        write_n(t, 2, "m");
        assert_int_equal(weir_test_finish(t), WEIR_OK);
    }
    weir_test_free(a);
    weir_test_free(b);
    char *x = tu_read_file(e->path, NULL), *y = tu_read_file(other, NULL);
    assert_string_equal(x, y);
    assert_int_equal(count_lines(other), 5);
    free(x);
    free(y);

    /* restore: an empty snapshot is fine; pending part files are not. */
    weir_test *t = NULL;
    int rc = try_open_sink(e->path, none, 0, 1, 1, 4, 1, NULL, 0, &t);
    ok(t, rc);
    weir_test_free(t);
    rc = try_open_sink(e->path, none, 0, 1, 1, 4, 0, NULL, 0, &t);
    ok(t, rc);
    weir_test_free(t);
    assert_int_equal(try_open_sink(e->path, none, 0, 1, 1, 4, 9, NULL, 0, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "version 9"));
    weir_test_free(t);
    assert_int_equal(try_open_sink(e->path, none, 0, 1, 1, 4, 1, "WFSK", 4, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "commit=checkpoint"));
    weir_test_free(t);

    /* merged output and part files do not mix */
    const weir_test_param bad[] = {
        {"commit", "checkpoint"}, {"mode", "merged"}, {NULL, NULL}};
    const weir_test_param p[] = {
        {"path", e->dir}, bad[0], bad[1], {NULL, NULL}};
    t = NULL;
    assert_int_equal(try_sink(p, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "mode=merged"));
    weir_test_free(t);
    const weir_test_param q[] = {
        {"path", e->dir}, {"commit", "later"}, {NULL, NULL}};
    assert_int_equal(try_sink(q, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "config.commit"));
    assert_null(strstr(weir_test_error(t), ": open: "));
    weir_test_free(t);
    free(other);
}

/* ------------------------------------------------------------------------ */
/* commit=checkpoint helpers                                                 */
/* ------------------------------------------------------------------------ */

/* A sink with commit=checkpoint on directory `dir`, plus `extra`. */
static weir_test *open_2pc(const char *dir, const weir_test_param *extra,
                           uint32_t sub, uint32_t par)
{
    weir_test_param p[8];
    size_t n = 0;
    p[n++] = (weir_test_param){"commit", "checkpoint"};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    return open_sink(dir, p, sub, par);
}

/* A sink with commit=checkpoint on `dir`, plus `extra`, restored (as subtask
 * 0 of 1) from the snapshot `data` of checkpoint `id`, as a restart of the
 * job from that checkpoint opens it: open(), then restore(). Returns
 * weir_test_new()'s code. */
static int try_restore_2pc(const char *dir, const weir_test_param *extra,
                           uint64_t id, uint32_t version, const void *data,
                           size_t len, weir_test **t)
{
    weir_test_param p[8];
    size_t n = 0;
    p[n++] = (weir_test_param){"commit", "checkpoint"};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    return try_open_sink(dir, p, 0, 1, 1, id, version, data, len, t);
}

static weir_test *restored_2pc(const char *dir, const weir_test_param *extra,
                               uint64_t id, uint32_t version, const void *data,
                               size_t len)
{
    weir_test *t = NULL;
    if (try_restore_2pc(dir, extra, id, version, data, len, &t) != WEIR_OK)
        fail_msg("restore failed: %s", weir_test_error(t));
    return t;
}

static const weir_test_param flush_record[] = {{"flush", "record"},
                                               {NULL, NULL}};

/* Packs record number i of subtask `sub`: key "s<sub>", ts i, value
 * {"sub": sub, "i": i}. Returns the process() code. */
static int put_one(weir_test *t, mp *m, int i)
{
    char key[16];
    int kl = snprintf(key, sizeof key, "s%u", sub_of(t));
    m->sb.size = 0;
    msgpack_pack_map(&m->pk, 2);
    mp_cstr(m, "sub");
    msgpack_pack_int(&m->pk, (int)sub_of(t));
    mp_cstr(m, "i");
    msgpack_pack_int(&m->pk, i);
    return weir_test_process(t, 0, key, (size_t)kl, i, m->sb.data, m->sb.size);
}

/* Records from..to-1 of this subtask; fails the test on an error. */
static void put_range(weir_test *t, int from, int to)
{
    mp m;
    mp_init(&m);
    for (int i = from; i < to; i++) {
        int rc = put_one(t, &m, i);
        if (rc != WEIR_OK)
            fail_msg("process %d: %d %s", i, rc, weir_test_error(t));
    }
    msgpack_sbuffer_destroy(&m.sb);
}

/* The sorted entry names of a directory, without "." and "..". */
typedef struct names {
    char **v;
    size_t n;
} names;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static names list_dir(const char *dir)
{
    names l = {0};
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        l.v = realloc(l.v, (l.n + 1) * sizeof *l.v);
        assert_non_null(l.v);
        l.v[l.n++] = strdup(de->d_name);
    }
    closedir(d);
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, cmp_str);
    return l;
}

static void free_names(names *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

/* Asserts that `dir`/`sub` holds exactly the names in the NULL-terminated
 * list (sorted by strcmp). */
static void expect_dir(const char *dir, const char *sub,
                       const char *const *want)
{
    char *path = sub ? tu_path(dir, sub) : strdup(dir);
    names l = list_dir(path);
    size_t n = 0;
    while (want[n])
        n++;
    int ok = l.n == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(l.v[i], want[i]) == 0;
    if (!ok) {
        fprintf(stderr, "%s holds:\n", path);
        for (size_t i = 0; i < l.n; i++)
            fprintf(stderr, "  %s\n", l.v[i]);
        fail_msg("%s: unexpected entries (want %zu)", path, n);
    }
    free_names(&l);
    free(path);
}

static const char *const nothing[] = {NULL};

/* A committed part file: parsed from its name the way a reader would. */
typedef struct part {
    unsigned sub;
    unsigned long long id;
    char *name;
} part;

static int cmp_part(const void *a, const void *b)
{
    const part *x = a, *y = b;
    if (x->sub != y->sub)
        return x->sub < y->sub ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * Reads the job's committed output the way a reader does: every
 * <dir>/part-<sub>-<id>.jsonl (nothing under .inprogress/ or .pending/).
 * Asserts that subtask s contributed exactly its records 0..upto[s]-1, once
 * each and in order, with the right key, and no other subtask anything.
 */
static void expect_committed(const char *dir, uint32_t par, const int *upto)
{
    names l = list_dir(dir);
    part *parts = calloc(l.n + 1, sizeof *parts);
    size_t np = 0;
    for (size_t i = 0; i < l.n; i++) {
        unsigned sub;
        unsigned long long id;
        int end = 0;
        if (sscanf(l.v[i], "part-%u-%llu.jsonl%n", &sub, &id, &end) == 2 &&
            l.v[i][end] == '\0')
            parts[np++] = (part){sub, id, l.v[i]};
    }
    qsort(parts, np, sizeof *parts, cmp_part);
    int next[8] = {0};
    for (size_t k = 0; k < np; k++) {
        assert_true(parts[k].sub < par);
        char *path = tu_path(dir, parts[k].name);
        lines ls = read_lines(path);
        assert_true(ls.n > 0); /* an empty transaction leaves no file */
        for (size_t j = 0; j < ls.n; j++) {
            json_t *jv = parse(ls.v[j]);
            json_t *v = json_object_get(jv, "value");
            char key[16];
            snprintf(key, sizeof key, "s%u", parts[k].sub);
            assert_string_equal(json_string_value(json_object_get(jv, "key")),
                                key);
            assert_int_equal(json_integer_value(json_object_get(v, "sub")),
                             parts[k].sub);
            int i = (int)json_integer_value(json_object_get(v, "i"));
            if (i != next[parts[k].sub])
                fail_msg("%s line %zu: record %d, expected %d", path, j + 1, i,
                         next[parts[k].sub]);
            next[parts[k].sub]++;
            json_decref(jv);
        }
        free_lines(&ls);
        free(path);
    }
    for (uint32_t s = 0; s < par; s++)
        if (next[s] != upto[s])
            fail_msg("subtask %u: %d records committed, expected %d", s,
                     next[s], upto[s]);
    free(parts);
    free_names(&l);
}

static void expect_committed1(const char *dir, int upto)
{
    expect_committed(dir, 1, &upto);
}

/* The snapshot layout of schemas/file-sink.md, decoded independently. */
typedef struct snap {
    uint32_t sub;
    uint64_t id;
    uint32_t n;
    uint64_t ids[8];
} snap;

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static snap decode_snap(const unsigned char *b, size_t len)
{
    snap s = {0};
    assert_true(len >= 24);
    assert_memory_equal(b, "WFSK", 4);
    s.sub = (uint32_t)le(b + 4, 4);
    s.id = le(b + 8, 8);
    s.n = (uint32_t)le(b + 16, 4);
    assert_int_equal(le(b + 20, 4), 0);
    assert_int_equal(len, 24 + 8 * (size_t)s.n);
    assert_true(s.n <= 8);
    for (uint32_t i = 0; i < s.n; i++)
        s.ids[i] = le(b + 24 + 8 * i, 8);
    return s;
}

static void expect_snap(const weir_test *t, uint64_t id, uint32_t n,
                        const uint64_t *ids)
{
    const void *d;
    size_t n_bytes;
    weir_test_snapshot_data(t, &d, &n_bytes);
    snap s = decode_snap(d, n_bytes);
    assert_int_equal(s.sub, sub_of(t));
    assert_int_equal(s.id, id);
    assert_int_equal(s.n, n);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(s.ids[i], ids[i]);
}

/* A copy of the last snapshot of t. */
static unsigned char *snap_copy(const weir_test *t, size_t *len)
{
    const void *d;
    weir_test_snapshot_data(t, &d, len);
    unsigned char *c = malloc(*len + 1);
    assert_non_null(c);
    memcpy(c, d, *len);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Pre-commit and commit                                                     */
/* ------------------------------------------------------------------------ */

static void test_2pc_sequence(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "a/out"); /* created, parents too */
    weir_test *t0 = open_2pc(dir, NULL, 0, 2);
    weir_test *t1 = open_2pc(dir, flush_record, 1, 2);
    const char *const hidden[] = {".inprogress", ".pending", NULL};
    expect_dir(dir, NULL, hidden);

    put_range(t0, 0, 5);
    put_range(t1, 0, 3);
    expect_dir(dir, NULL, hidden); /* nothing visible */
    const char *const ip1[] = {"part-1-0.jsonl", NULL};
    expect_dir(dir, ".inprogress", ip1); /* flush=record wrote at once */

    /* Barrier 1: pre-commit. */
    ok(t0, ck(t0, 1));
    ok(t1, ck(t1, 1));
    const uint64_t id1[] = {1}, id12[] = {1, 2};
    expect_snap(t0, 1, 1, id1);
    expect_snap(t1, 1, 1, id1);
    const char *const pend1[] = {"part-0-1.jsonl", "part-1-1.jsonl", NULL};
    expect_dir(dir, ".pending", pend1);
    expect_dir(dir, ".inprogress", nothing);
    expect_dir(dir, NULL, hidden);
    char *p01 = tu_path(dir, ".pending/part-0-1.jsonl");
    assert_int_equal(count_lines(p01), 5);

    /* Barrier 2: subtask 1 has nothing new and leaves no file. */
    put_range(t0, 5, 8);
    ok(t0, ck(t0, 2));
    ok(t1, ck(t1, 2));
    expect_snap(t0, 2, 2, id12);
    expect_snap(t1, 2, 1, id1);
    const char *const pend12[] = {"part-0-1.jsonl", "part-0-2.jsonl",
                                  "part-1-1.jsonl", NULL};
    expect_dir(dir, ".pending", pend12);

    /* Checkpoint 1 completes: only its transactions become visible. */
    ok(t0, weir_test_notify_checkpoint(t0, 1));
    ok(t1, weir_test_notify_checkpoint(t1, 1));
    const int c1[] = {5, 3};
    expect_committed(dir, 2, c1);
    const char *const pend2[] = {"part-0-2.jsonl", NULL};
    expect_dir(dir, ".pending", pend2);
    ok(t0, weir_test_notify_checkpoint(
               t0, 1)); /* a repeated notification changes nothing */
    expect_committed(dir, 2, c1);

    /* Checkpoint 3 is aborted (never notified); checkpoint 4 completes and
     * commits everything up to it, 2 and 3 included. */
    put_range(t0, 8, 10);
    put_range(t1, 3, 6);
    ok(t0, ck(t0, 3));
    ok(t1, ck(t1, 3));
    put_range(t0, 10, 12);
    ok(t0, ck(t0, 4));
    ok(t1, ck(t1, 4));
    const uint64_t id234[] = {2, 3, 4}, id3[] = {3};
    expect_snap(t0, 4, 3, id234);
    expect_snap(t1, 4, 1, id3);
    ok(t0, weir_test_notify_checkpoint(t0, 4));
    ok(t1, weir_test_notify_checkpoint(t1, 4));
    const int c4[] = {12, 6};
    expect_committed(dir, 2, c4);
    expect_dir(dir, ".pending", nothing);
    const char *const all[] = {
        ".inprogress",    ".pending",       "part-0-1.jsonl",
        "part-0-2.jsonl", "part-0-3.jsonl", "part-0-4.jsonl",
        "part-1-1.jsonl", "part-1-3.jsonl", NULL};
    expect_dir(dir, NULL, all);

    /* Records after the last completed checkpoint are not visible, written
     * (subtask 1), pre-committed (checkpoint 5) or not. */
    put_range(t0, 12, 15);
    put_range(t1, 6, 9);
    ok(t0, ck(t0, 5));
    put_range(t0, 15, 16);
    expect_committed(dir, 2, c4);
    const char *const pend5[] = {"part-0-5.jsonl", NULL};
    expect_dir(dir, ".pending", pend5);
    const char *const ip3[] = {"part-1-2.jsonl", NULL}; /* third txn */
    expect_dir(dir, ".inprogress", ip3);

    /* A failure: close() without a final checkpoint leaves everything. */
    weir_test_free(t0);
    weir_test_free(t1);
    expect_committed(dir, 2, c4);
    expect_dir(dir, ".pending", pend5);
    expect_dir(dir, ".inprogress", ip3);
    char *ipf = tu_path(dir, ".inprogress/part-1-2.jsonl");
    assert_int_equal(count_lines(ipf), 3);
    free(ipf);
    free(p01);
    free(dir);
}

static void test_2pc_final(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out/"); /* a trailing slash is fine */
    weir_test *t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 7);
    ok(t, ck(t, 1));
    ok(t, weir_test_notify_checkpoint(t, 1));
    put_range(t, 7, 10);
    ok(t, weir_test_finish(t));
    /* finish() writes the buffered lines; the final checkpoint commits. */
    expect_committed1(dir, 7);
    ok(t, ck(t, 2));
    ok(t, weir_test_notify_checkpoint(t, 2));
    weir_test_close(t);
    assert_int_equal(hx_count_logs(t, WEIR_LOG_WARN, "not committed"), 0);
    weir_test_free(t);
    expect_committed1(dir, 10);
    expect_dir(dir, ".pending", nothing);
    expect_dir(dir, ".inprogress", nothing);

    /* A bounded job that ends without a final checkpoint commits nothing
     * and says so. */
    char *dir2 = tu_path(e->dir, "out2");
    t = open_2pc(dir2, NULL, 0, 1);
    put_range(t, 0, 3);
    ok(t, weir_test_finish(t));
    weir_test_close(t);
    assert_int_equal(hx_count_logs(t, WEIR_LOG_WARN, "not committed"), 1);
    weir_test_free(t);
    expect_committed1(dir2, 0);
    const char *const ip[] = {"part-0-0.jsonl", NULL};
    expect_dir(dir2, ".inprogress", ip);
    free(dir);
    free(dir2);
}

/* ------------------------------------------------------------------------ */
/* Recovery                                                                  */
/* ------------------------------------------------------------------------ */

/* The child of test_2pc_crash_restore: writes, takes checkpoints 1-3
 * (1 completes and is notified; 2 completes but the process dies before the
 * notification; 3 never completes), keeps the snapshots in files and is
 * killed in the middle of a transaction. No cmocka assertions here: any
 * problem ends the child with exit code 2 instead of SIGKILL. */
static void crash_child(const char *dir, const char *snapdir)
{
    const weir_test_param p[] = {{"path", dir},
                                 {"commit", "checkpoint"},
                                 {"flush", "record"},
                                 {NULL, NULL}};
    /* The harness's files go where the test's teardown removes them. */
    setenv("TMPDIR", snapdir, 1);
    weir_test *t = NULL;
    if (try_open_sink(dir, p + 1, 0, 1, 0, 0, 0, NULL, 0, &t) != WEIR_OK)
        _exit(2);
    mp m;
    mp_init(&m);
    int i = 0;
    for (uint64_t id = 1; id <= 4; id++) {
        for (int end = i + 10; i < end; i++)
            if (put_one(t, &m, i) != WEIR_OK)
                _exit(2);
        if (id == 4)
            break; /* 10 records in the open transaction */
        if (ck(t, id) != WEIR_OK)
            _exit(2);
        char name[32];
        snprintf(name, sizeof name, "snap-%llu", (unsigned long long)id);
        char *path = tu_path(snapdir, name);
        FILE *f = fopen(path, "wb");
        const void *d;
        size_t n;
        weir_test_snapshot_data(t, &d, &n);
        if (!f || fwrite(d, 1, n, f) != n || fclose(f) != 0)
            _exit(2);
        free(path);
        if (id == 1 && weir_test_notify_checkpoint(t, 1) != WEIR_OK)
            _exit(2);
    }
    raise(SIGKILL);
    _exit(3);
}

static void test_2pc_crash_restore(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crash_child(dir, e->dir);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* What the dead process left. */
    expect_committed1(dir, 10);
    const char *const pend23[] = {"part-0-2.jsonl", "part-0-3.jsonl", NULL};
    expect_dir(dir, ".pending", pend23);
    const char *const ip[] = {"part-0-3.jsonl", NULL}; /* seq 3 */
    expect_dir(dir, ".inprogress", ip);

    /* Restart from checkpoint 2, the newest completed one. */
    char *sp = tu_path(e->dir, "snap-2");
    size_t slen;
    unsigned char *s2 = (unsigned char *)tu_read_file(sp, &slen);
    assert_non_null(s2);
    snap s = decode_snap(s2, slen);
    assert_int_equal(s.id, 2);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], 2);
    weir_test *t = restored_2pc(dir, NULL, 2, 1, s2, slen);
    expect_committed1(dir, 20);
    expect_dir(dir, ".pending", nothing);
    expect_dir(dir, ".inprogress", nothing);

    /* The source rewinds to checkpoint 2: records 20.. come again. The
     * host may number checkpoints on from 3. */
    put_range(t, 20, 40);
    ok(t, ck(t, 3));
    ok(t, weir_test_notify_checkpoint(t, 3));
    put_range(t, 40, 45);
    ok(t, weir_test_finish(t));
    ok(t, ck(t, 4));
    ok(t, weir_test_notify_checkpoint(t, 4));
    weir_test_free(t);
    expect_committed1(dir, 45); /* each record once, in order */
    expect_dir(dir, ".pending", nothing);
    expect_dir(dir, ".inprogress", nothing);
    free(s2);
    free(sp);
    free(dir);
}

/* Moves <dir>/<from> to <dir>/<to>. */
static void move(const char *dir, const char *from, const char *to)
{
    char *a = tu_path(dir, from), *b = tu_path(dir, to);
    if (rename(a, b) != 0)
        fail_msg("rename %s -> %s: %s", a, b, strerror(errno));
    free(a);
    free(b);
}

static void put_file(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    tu_write_file(p, text, strlen(text));
    free(p);
}

static void test_2pc_restore_idempotent(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    weir_test *t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 4);
    ok(t, ck(t, 1)); /* checkpoint 1 is aborted */
    put_range(t, 4, 8);
    ok(t, ck(t, 2)); /* checkpoint 2 completes, not notified */
    const uint64_t id12[] = {1, 2};
    expect_snap(t, 2, 2, id12);
    size_t slen;
    unsigned char *s2 = snap_copy(t, &slen);
    put_range(t, 8, 9);
    ok(t, ck(t, 3));
    put_range(t, 9, 10);
    weir_test_free(t); /* the job fails */

    /* First recovery: commits 1 and 2, then the process dies. */
    t = restored_2pc(dir, NULL, 2, 1, s2, slen);
    weir_test_free(t);
    expect_committed1(dir, 8);

    /* As if a recovery died half-way: part 2 back in .pending, newer
     * pending and in-progress files around again. */
    move(dir, "part-0-2.jsonl", ".pending/part-0-2.jsonl");
    put_file(dir, ".pending/part-0-3.jsonl", "{\"key\":\"junk\"}\n");
    put_file(dir, ".inprogress/part-0-7.jsonl", "{\"key\":\"junk\"}\n");
    for (int round = 0; round < 2; round++) {
        t = restored_2pc(dir, NULL, 2, 1, s2, slen);
        weir_test_free(t);
        expect_committed1(dir, 8);
        expect_dir(dir, ".pending", nothing);
        expect_dir(dir, ".inprogress", nothing);
    }

    /* The replay then completes the output without duplicates. */
    t = restored_2pc(dir, NULL, 2, 1, s2, slen);
    put_range(t, 8, 12);
    ok(t, weir_test_finish(t));
    ok(t, ck(t, 3));
    ok(t, weir_test_notify_checkpoint(t, 3));
    weir_test_free(t);
    expect_committed1(dir, 12);
    free(s2);
    free(dir);
}

/* A restore from an older checkpoint (the newer one is damaged) takes back
 * the output committed after it: its records are replayed. */
static void test_2pc_rollback(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    weir_test *t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 5);
    ok(t, ck(t, 1));
    size_t slen;
    unsigned char *s1 = snap_copy(t, &slen);
    ok(t, weir_test_notify_checkpoint(t, 1));
    put_range(t, 5, 9);
    ok(t, ck(t, 2));
    ok(t, weir_test_notify_checkpoint(t, 2));
    weir_test_free(t);
    expect_committed1(dir, 9);

    t = restored_2pc(dir, NULL, 1, 1, s1, slen);
    assert_non_null(hx_find_log(t, "part-0-2.jsonl"));
    assert_int_equal(hx_count_logs(t, WEIR_LOG_WARN, "newer than the restored"),
                     1);
    expect_committed1(dir, 5);
    put_range(t, 5, 9);
    ok(t, ck(t, 2));
    ok(t, weir_test_notify_checkpoint(t, 2));
    weir_test_free(t);
    expect_committed1(dir, 9);
    free(s1);
    free(dir);
}

/* A fresh start (no restore) deletes this subtask's files of an earlier
 * run, and only those, and only once the sink is used. */
static void test_2pc_fresh_start(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    char *ipd = tu_path(dir, ".inprogress"), *pd = tu_path(dir, ".pending");
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(mkdir(ipd, 0777), 0);
    assert_int_equal(mkdir(pd, 0777), 0);
    const char *const left[] = {".inprogress/part-0-0.jsonl",
                                ".inprogress/part-0-9.jsonl",
                                ".inprogress/part-1-0.jsonl",
                                ".pending/part-0-3.jsonl",
                                ".pending/part-1-2.jsonl",
                                "part-0-1.jsonl",
                                "part-0-2.jsonl",
                                "part-1-1.jsonl",
                                "part-0-x.jsonl",
                                "part-00-1.jsonl",
                                "part-0-1.jsonl.bak",
                                "notes.txt",
                                NULL};
    for (size_t i = 0; left[i]; i++)
        put_file(dir, left[i], "{\"key\":\"old\"}\n");

    /* open() alone deletes nothing: the host may call restore() next. */
    weir_test *t = open_2pc(dir, NULL, 0, 2);
    weir_test_free(t);
    const char *const ip_all[] = {"part-0-0.jsonl", "part-0-9.jsonl",
                                  "part-1-0.jsonl", NULL};
    expect_dir(dir, ".inprogress", ip_all);

    t = open_2pc(dir, NULL, 0, 2);
    put_range(t, 0, 3);
    assert_non_null(hx_find_log(t, "deleted 5 part files"));
    ok(t, ck(t, 1));
    ok(t, weir_test_notify_checkpoint(t, 1));
    weir_test_free(t);
    const char *const ip1[] = {"part-1-0.jsonl", NULL};
    expect_dir(dir, ".inprogress", ip1);
    const char *const p1[] = {"part-1-2.jsonl", NULL};
    expect_dir(dir, ".pending", p1);
    const char *const top[] = {
        ".inprogress",     ".pending",           "notes.txt",
        "part-0-1.jsonl",  "part-0-1.jsonl.bak", "part-0-x.jsonl",
        "part-00-1.jsonl", "part-1-1.jsonl",     NULL};
    expect_dir(dir, NULL, top);
    char *p01 = tu_path(dir, "part-0-1.jsonl");
    lines l = read_lines(p01);
    assert_int_equal(l.n, 3);
    assert_null(strstr(l.buf, "old"));
    free_lines(&l);
    free(p01);
    free(ipd);
    free(pd);
    free(dir);
}

static void test_2pc_restore_errors(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    weir_test *t = open_2pc(dir, flush_record, 0, 1);
    put_range(t, 0, 3);
    ok(t, ck(t, 1));
    size_t slen;
    unsigned char *s1 = snap_copy(t, &slen);
    put_range(t, 3, 5);
    weir_test_free(t);
    const char *const p1[] = {"part-0-1.jsonl", NULL};
    const char *const ip[] = {"part-0-1.jsonl", NULL};

    unsigned char bad[64];
    assert_true(slen + 8 <= sizeof bad);
    /* Every damaged snapshot fails the restart with a reason (the runtime
     * then fails the job: it never calls an instance again after its
     * restore() failed, nor restore() twice or after process(), so
     * file_sink's guards against such a host are not reachable here). */
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 2, s1, slen, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "version 2"));
    weir_test_free(t);
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, s1, 10, &t), WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "damaged"));
    weir_test_free(t);
    memcpy(bad, s1, slen);
    bad[0] = 'X';
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, bad, slen, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "magic"));
    weir_test_free(t);
    memcpy(bad, s1, slen);
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, bad, slen + 8, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "length"));
    weir_test_free(t);
    /* the snapshot says checkpoint 2, the restart restores checkpoint 1 */
    memcpy(bad, s1, slen);
    bad[8] = 2;
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, bad, slen, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "later checkpoint"));
    weir_test_free(t);
    /* two ids, not ascending */
    memcpy(bad, s1, slen);
    bad[16] = 2;
    memcpy(bad + slen, s1 + 24, 8);
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, bad, slen + 8, &t),
                     WEIR_EINVAL);
    assert_non_null(strstr(weir_test_error(t), "ascending"));
    weir_test_free(t);
    /* A refused snapshot touched no file. */
    expect_dir(dir, ".pending", p1);
    expect_dir(dir, ".inprogress", ip);
    t = restored_2pc(dir, NULL, 1, 1, s1, slen);
    expect_committed1(dir, 3);
    expect_dir(dir, ".inprogress", nothing);
    weir_test_free(t);

    /* A listed transaction found nowhere: the output would be incomplete. */
    memcpy(bad, s1, slen);
    bad[8] = 7;  /* snapshot of checkpoint 7 ... */
    bad[24] = 7; /* ... listing transaction 7 */
    assert_int_equal(try_restore_2pc(dir, NULL, 7, 1, bad, slen, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "lost"));
    assert_non_null(strstr(weir_test_error(t), ".pending/part-0-7.jsonl"));
    weir_test_free(t);

    /* An empty snapshot (version 0: a sink that wrote none) lists nothing:
     * pending and in-progress files go, committed ones up to it stay. */
    put_file(dir, ".pending/part-0-2.jsonl", "{}\n");
    t = restored_2pc(dir, NULL, 1, 0, NULL, 0);
    weir_test_free(t);
    expect_dir(dir, ".pending", nothing);
    expect_committed1(dir, 3);

    free(s1);
    free(dir);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */
/* ------------------------------------------------------------------------ */

static void test_2pc_faults(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");

    /* path is a file */
    char *file = tu_path(e->dir, "plain");
    tu_write_file(file, "x", 1);
    const weir_test_param pf[] = {
        {"path", file}, {"commit", "checkpoint"}, {NULL, NULL}};
    weir_test *t = NULL;
    assert_int_equal(try_sink(pf, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), file));
    assert_non_null(strstr(weir_test_error(t), "Not a directory"));
    weir_test_free(t);

    /* (Checkpoint ids that do not grow, which file_sink refuses as "not
     * newer", cannot come from the runtime: its ids only grow, and so do
     * the harness's.) Ids may skip: aborted checkpoints leave gaps. */
    t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 1);
    ok(t, ck(t, 3));
    put_range(t, 1, 2);
    ok(t, ck(t, 5));
    const uint64_t id35[] = {3, 5};
    expect_snap(t, 5, 2, id35);
    weir_test_free(t);

    /* a host without snapshot support cannot run commit=checkpoint */
    const weir_test_param pc[] = {
        {"path", dir}, {"commit", "checkpoint"}, {NULL, NULL}};
    hx_spec nosnap = {.so = FILE_SINK_SO,
                      .op = "file_sink",
                      .params = pc,
                      .without = WEIR_TEST_WITHOUT_SNAPSHOT_WRITE};
    t = hx_open(&nosnap);
    remember_sub(t, 0);
    put_range(t, 0, 1);
    assert_int_equal(ck(t, 1), WEIR_ENOTSUP);
    assert_non_null(strstr(weir_test_error(t), "stores snapshots"));
    weir_test_free(t);

    /* a committed file is never replaced */
    t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 2);
    ok(t, ck(t, 1));
    put_file(dir, "part-0-1.jsonl", "{\"key\":\"someone else\"}\n");
    assert_int_equal(weir_test_notify_checkpoint(t, 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "exists already"));
    assert_non_null(strstr(weir_test_error(t), "part-0-1.jsonl"));
    weir_test_free(t);

    /* .pending disappears: the pre-commit rename fails */
    t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 2);
    char *pd = tu_path(dir, ".pending");
    assert_int_equal(rmdir(pd), 0);
    assert_int_equal(ck(t, 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "cannot rename"));
    assert_non_null(strstr(weir_test_error(t), ".pending/part-0-1.jsonl"));
    assert_non_null(strstr(weir_test_error(t), strerror(ENOENT)));
    weir_test_free(t);

    /* the disk fills up (a file size limit stands in for it) */
    t = open_2pc(dir, flush_record, 0, 1);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    mp m;
    mp_init(&m);
    int rc = WEIR_OK;
    for (int i = 0; i < 1000 && rc == WEIR_OK; i++)
        rc = put_one(t, &m, i);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    msgpack_sbuffer_destroy(&m.sb);
    assert_int_equal(rc, WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), ".inprogress/part-0-0.jsonl"));
    assert_non_null(strstr(weir_test_error(t), strerror(EFBIG)));
    weir_test_free(t);
    free(pd);
    free(file);
    free(dir);
}

/* Makes `dir` read-only even for root (the immutable flag) or, failing that,
 * with its mode. Returns 0 when creating a file in it now fails. */
static int make_readonly(env *e, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    int flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
        flags |= FS_IMMUTABLE_FL;
        (void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
    }
    close(fd);
    chmod(dir, 0555);
    for (size_t i = 0; i < 4; i++) {
        if (!e->readonly[i]) {
            e->readonly[i] = strdup(dir);
            break;
        }
    }
    char *probe = tu_path(dir, "probe");
    fd = open(probe, O_WRONLY | O_CREAT, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(probe);
    }
    free(probe);
    return fd >= 0 ? -1 : 0;
}

static void make_writable(env *e, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        int flags = 0;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 &&
            (flags & FS_IMMUTABLE_FL)) {
            flags &= ~FS_IMMUTABLE_FL;
            (void)ioctl(fd, FS_IOC_SETFLAGS, &flags);
        }
        close(fd);
    }
    chmod(dir, 0777);
    for (size_t i = 0; i < 4; i++) {
        if (e->readonly[i] && strcmp(e->readonly[i], dir) == 0) {
            free(e->readonly[i]);
            e->readonly[i] = NULL;
        }
    }
}

/* Read-only directories: every step fails with a message naming the file
 * and the errno text, and a restore recovers once the fault is gone. */
static void test_2pc_readonly(void **state)
{
    env *e = *state;
    char *dir = tu_path(e->dir, "out");
    char *pd = tu_path(dir, ".pending"), *ipd = tu_path(dir, ".inprogress");
    weir_test *t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 3);
    if (make_readonly(e, pd) != 0) {
        make_writable(e, pd);
        weir_test_free(t);
        free(pd);
        free(ipd);
        free(dir);
        skip(); /* neither the immutable flag nor the mode keeps us out */
        return;
    }
    /* pre-commit */
    assert_int_equal(ck(t, 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "cannot rename"));
    assert_non_null(strstr(weir_test_error(t), ".inprogress/part-0-0.jsonl"));
    assert_non_null(strstr(weir_test_error(t), ".pending/part-0-1.jsonl"));
    weir_test_free(t);
    make_writable(e, pd);

    /* commit */
    t = open_2pc(dir, NULL, 0, 1);
    put_range(t, 0, 3);
    ok(t, ck(t, 1));
    size_t slen;
    unsigned char *s1 = snap_copy(t, &slen);
    assert_int_equal(make_readonly(e, dir), 0);
    assert_int_equal(weir_test_notify_checkpoint(t, 1), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), ".pending/part-0-1.jsonl"));
    assert_non_null(strstr(weir_test_error(t), "cannot rename"));
    assert_true(strstr(weir_test_error(t), strerror(EPERM)) ||
                strstr(weir_test_error(t), strerror(EACCES)));
    make_writable(e, dir);
    expect_committed1(dir, 0);
    weir_test_free(t); /* the subtask failed */

    /* the restart commits what checkpoint 1 holds */
    t = restored_2pc(dir, NULL, 1, 1, s1, slen);
    expect_committed1(dir, 3);
    weir_test_free(t);

    /* the in-progress file cannot be created */
    assert_int_equal(make_readonly(e, ipd), 0);
    t = restored_2pc(dir, flush_record, 1, 1, s1, slen);
    mp m;
    mp_init(&m);
    assert_int_equal(put_one(t, &m, 3), WEIR_EIO);
    msgpack_sbuffer_destroy(&m.sb);
    assert_non_null(strstr(weir_test_error(t), "cannot create"));
    assert_non_null(strstr(weir_test_error(t), ".inprogress/part-0-0.jsonl"));
    weir_test_free(t);
    make_writable(e, ipd);

    /* restore cannot clean up */
    put_file(dir, ".pending/part-0-5.jsonl", "{}\n");
    assert_int_equal(make_readonly(e, pd), 0);
    assert_int_equal(try_restore_2pc(dir, NULL, 1, 1, s1, slen, &t), WEIR_EIO);
    assert_non_null(strstr(weir_test_error(t), "cannot delete"));
    assert_non_null(strstr(weir_test_error(t), ".pending/part-0-5.jsonl"));
    weir_test_free(t);
    make_writable(e, pd);
    expect_committed1(dir, 3);
    free(s1);
    free(pd);
    free(ipd);
    free(dir);
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
        cmocka_unit_test_setup_teardown(test_commit_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_crash_restore, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_2pc_restore_idempotent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_2pc_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_fresh_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_restore_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_2pc_faults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_2pc_readonly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
