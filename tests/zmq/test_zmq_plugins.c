/*
 * test_zmq_plugins.c - the zmq and stdin plugins on the real host through
 * the test harness (weir/testing.h), with real ZeroMQ peers in this process:
 * descriptors; message formats, bad messages and the end message; the
 * spool: acknowledgement and deduplication, replay after a restart, the
 * dedup window rebuilt from the spool after its old segments were deleted,
 * a torn tail, a new stream after an end, restore errors; ROUTER answers;
 * parameter errors; zmq_sink formats and bad records; stdin from a pipe
 * and from a regular file.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <fcntl.h>
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
#include <zmq.h>

#include <cmocka.h>
#include <jansson.h>

#include "hx.h"
#include "tutil.h"

#include "weir/testing.h"

typedef struct env {
    char *dir;
    char ep[300];
    char spool[300];
    void *zctx;
    void *socks[16]; /* closed by teardown, also after a failed test */
    size_t n_socks;
} env;

static int setup(void **state)
{
    env *e = calloc(1, sizeof *e);
    e->dir = tu_tmpdir();
    snprintf(e->ep, sizeof e->ep, "ipc://%s/in.sock", e->dir);
    snprintf(e->spool, sizeof e->spool, "%s/spool", e->dir);
    e->zctx = zmq_ctx_new();
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    for (size_t i = 0; i < e->n_socks; i++)
        zmq_close(e->socks[i]);
    zmq_ctx_term(e->zctx);
    tu_rmtree(e->dir);
    free(e->dir);
    free(e);
    return 0;
}

/* Fails unless `hay` contains `needle`, showing both. */
#define assert_contains(hay, needle)                                           \
    do {                                                                       \
        const char *h_ = (hay);                                                \
        if (!h_ || !strstr(h_, (needle)))                                      \
            fail_msg("'%s' does not contain '%s'", h_ ? h_ : "(null)",         \
                     (needle));                                                \
    } while (0)

/* A socket of the test, closed by teardown. */
static void *sock(env *e, int type)
{
    void *s = zmq_socket(e->zctx, type);
    int zero = 0;
    assert_non_null(s);
    assert_true(e->n_socks < 16);
    e->socks[e->n_socks++] = s;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

static void *peer(env *e, int type)
{
    void *s = sock(e, type);
    assert_int_equal(zmq_connect(s, e->ep), 0);
    return s;
}

static void send_str(void *s, const char *text)
{
    assert_int_equal(zmq_send(s, text, strlen(text), 0), (int)strlen(text));
}

/* zmq_source bound to e->ep with `extra` parameters as subtask 0 of 1;
 * restored from the snapshot `snap` of checkpoint `id` unless it is NULL, as
 * a restart from that checkpoint opens it. Returns weir_test_new()'s code. */
static int try_restore_src(env *e, const weir_test_param *extra, uint64_t id,
                           const void *snap, size_t snap_len, weir_test **t)
{
    weir_test_param p[24];
    size_t n = 0;
    p[n++] = (weir_test_param){"endpoint", e->ep};
    p[n++] = (weir_test_param){"bind", "true"};
    for (size_t i = 0; extra && extra[i].name; i++)
        p[n++] = extra[i];
    p[n] = (weir_test_param){NULL, NULL};
    hx_spec s = {.so = ZMQ_SO, .op = "zmq_source", .params = p};
    return snap ? hx_try_restore(&s, id, 1, snap, snap_len, t) : hx_try(&s, t);
}

static weir_test *restore_src(env *e, const weir_test_param *extra, uint64_t id,
                              const void *snap, size_t snap_len)
{
    weir_test *t = NULL;
    if (try_restore_src(e, extra, id, snap, snap_len, &t) != WEIR_OK)
        fail_msg("open failed: %s", weir_test_error(t));
    return t;
}

/* Opens zmq_source bound to e->ep with `extra` parameters. */
static weir_test *open_src(env *e, const weir_test_param *extra, uint32_t sub,
                           uint32_t par)
{
    assert_true(sub == 0 && par == 1);
    return restore_src(e, extra, 0, NULL, 0);
}

/* A checkpoint with id `id`. */
static int ck(weir_test *t, uint64_t id)
{
    return weir_test_checkpoint(t, &id);
}

/* Polls until `n` records were emitted (or fails after ~5 s). */
static void poll_until(weir_test *t, size_t n)
{
    for (int i = 0; i < 5000 && hx_n(t) < n; i++) {
        int rc = weir_test_poll(t);
        if (rc == WEIR_EAGAIN)
            usleep(1000);
        else if (rc != WEIR_OK)
            fail_msg("poll: %d %s", rc, weir_test_error(t));
    }
    if (hx_n(t) != n)
        fail_msg("%zu records, expected %zu", hx_n(t), n);
}

/* Sends `msg` on a REQ socket and polls the source until the answer. */
static char *request(weir_test *t, void *req, const char *msg)
{
    static char buf[512];
    assert_int_equal(zmq_send(req, msg, strlen(msg), 0), (int)strlen(msg));
    zmq_pollitem_t it = {.socket = req, .events = ZMQ_POLLIN};
    for (int i = 0; i < 2000; i++) {
        int rc = weir_test_poll(t);
        if (rc != WEIR_OK && rc != WEIR_EAGAIN && rc != WEIR_EOF)
            fail_msg("poll: %d %s", rc, weir_test_error(t));
        if (zmq_poll(&it, 1, 1) == 1) {
            int n = zmq_recv(req, buf, sizeof buf - 1, 0);
            assert_true(n >= 0);
            buf[n] = '\0';
            return buf;
        }
    }
    fail_msg("no answer to %s", msg);
    return NULL;
}

static json_t *rec_json(const weir_test_record *r)
{
    json_t *j = tu_mp_to_json(r->value, r->value_len);
    assert_non_null(j);
    return j;
}

static int rec_int(const weir_test_record *r, const char *field)
{
    json_t *j = rec_json(r);
    int v = (int)json_integer_value(json_object_get(j, field));
    json_decref(j);
    return v;
}

static size_t count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Descriptors                                                               */
/* ------------------------------------------------------------------------ */

static void check_operator(const char *so, const weir_operator *op)
{
    assert_int_equal(op->size, sizeof(weir_operator));
    assert_non_null(op->open);
    assert_non_null(op->close);
    assert_non_null(op->description);
    if (op->flags & WEIR_OP_SOURCE)
        assert_non_null(op->poll);
    else
        assert_non_null(op->process);
    if (op->restore)
        assert_true(op->snapshot_version >= 1);
    for (size_t i = 0; op->params && op->params[i]; i++) {
        const weir_param_def *d = op->params[i];
        assert_int_equal(d->size, sizeof(weir_param_def));
        if (!d->description || strlen(d->description) <= 10 ||
            strlen(d->description) > 120)
            fail_msg("%s.%s: description of %zu characters", op->name, d->name,
                     d->description ? strlen(d->description) : 0);
        if (d->flags & WEIR_PARAM_REQUIRED)
            assert_null(d->default_value);
        assert_true(d->type != WEIR_PARAM_ENUM || d->choices);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(d->name, op->params[j]->name);
    }
    hx_check_defaults(so, op->name);
}

static void test_descriptors(void **state)
{
    (void)state;
    const char *files[] = {ZMQ_SO, STDIN_SO};
    size_t n = 0;
    for (size_t f = 0; f < 2; f++) {
        const weir_plugin *p = hx_plugin(files[f]);
        for (size_t i = 0; p->operators[i]; i++, n++)
            check_operator(files[f], p->operators[i]);
    }
    assert_int_equal(n, 3);
    const weir_operator *snk = hx_operator(ZMQ_SO, "zmq_sink");
    assert_non_null(snk->output_ports);
    assert_null(snk->output_ports[0]);
    /* The guarantees are stated where `weir plugins` shows them. */
    assert_contains(hx_operator(ZMQ_SO, "zmq_source")->description,
                    "at-most-once");
    assert_contains(snk->description, "At-least-once at best");
    assert_contains(hx_operator(STDIN_SO, "stdin")->description,
                    "Replayable only");
}

/* ------------------------------------------------------------------------ */
/* Formats, bad messages, end                                                */
/* ------------------------------------------------------------------------ */

static void test_pull_json_and_bad_messages(void **state)
{
    env *e = *state;
    weir_test *t = open_src(e,
                            (weir_test_param[]){{"key_field", "user"},
                                                {"time_field", "ts"},
                                                {"end_message", "END"},
                                                {NULL, NULL}},
                            0, 1);
    void *push = peer(e, ZMQ_PUSH);
    const char *msgs[] = {
        "{\"user\":\"u1\",\"ts\":1000,\"n\":1}",
        "not json",
        "{\"ts\":5}",
        "{\"user\":7,\"ts\":\"2026-01-01T00:00:00.250Z\"}",
        "[1,2]",
        "{\"user\":\"u3\",\"ts\":true}",
    };
    for (size_t i = 0; i < 6; i++)
        zmq_send(push, msgs[i], strlen(msgs[i]), 0);
    zmq_send(push, "topic", 5, ZMQ_SNDMORE); /* a leading frame is ignored */
    zmq_send(push, "{\"user\":\"u4\",\"ts\":9}", 20, 0);
    zmq_send(push, "END", 3, 0);
    int rc = WEIR_OK;
    for (int i = 0; i < 5000 && rc != WEIR_EOF; i++) {
        rc = weir_test_poll(t);
        if (rc == WEIR_EAGAIN)
            usleep(1000);
    }
    assert_int_equal(rc, WEIR_EOF);
    assert_int_equal(hx_n(t), 3);
    assert_memory_equal(hx_rec(t, 0)->key, "u1", 2);
    assert_int_equal(hx_rec(t, 0)->ts, 1000);
    assert_int_equal(rec_int(hx_rec(t, 0), "n"), 1);
    assert_memory_equal(hx_rec(t, 1)->key, "7", 1);
    assert_int_equal(hx_rec(t, 1)->ts, 1767225600250);
    assert_memory_equal(hx_rec(t, 2)->key, "u4", 2);
    assert_non_null(hx_find_log(t, "message 2: invalid JSON"));
    assert_non_null(hx_find_log(t, "message 3: no key field 'user'"));
    assert_non_null(hx_find_log(t, "message 5: an array, not a JSON object"));
    assert_non_null(hx_find_log(t, "message 6: time field 'ts' is a boolean"));
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    assert_non_null(hx_find_log(t, "8 message(s) received, 3 accepted"));
    weir_test_free(t);
}

static void test_pull_msgpack_multipart(void **state)
{
    env *e = *state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_str_with_body(&pk, "key9", 4);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, -3);

    weir_test *t = open_src(e,
                            (weir_test_param[]){{"format", "msgpack"},
                                                {"key_field", "k"},
                                                {"on_error", "fail"},
                                                {NULL, NULL}},
                            0, 1);
    void *push = peer(e, ZMQ_PUSH);
    zmq_send(push, sb.data, sb.size, 0);
    poll_until(t, 1);
    assert_memory_equal(hx_rec(t, 0)->key, "key9", 4);
    assert_int_equal(hx_rec(t, 0)->ts, WEIR_TS_NONE);
    assert_int_equal(hx_rec(t, 0)->value_len, sb.size);
    assert_memory_equal(hx_rec(t, 0)->value, sb.data, sb.size);
    /* on_error=fail: a bad message fails the subtask, naming it. */
    zmq_send(push, "\xc1", 1, 0);
    int rc = WEIR_EAGAIN;
    for (int i = 0; i < 5000 && rc == WEIR_EAGAIN; i++) {
        rc = weir_test_poll(t);
        usleep(rc == WEIR_EAGAIN ? 1000 : 0);
    }
    assert_int_equal(rc, WEIR_EINVAL);
    assert_contains(weir_test_error(t), "message 2: not one msgpack object");
    weir_test_free(t);

    t = open_src(e, (weir_test_param[]){{"format", "multipart"}, {NULL, NULL}},
                 0, 1);
    unsigned char ts[8] = {0, 0, 1, 0x9b, 0x6f, 0x5a, 0x44, 0x00};
    zmq_send(push, "kk", 2, ZMQ_SNDMORE);
    zmq_send(push, ts, 8, ZMQ_SNDMORE);
    zmq_send(push, sb.data, sb.size, 0);
    zmq_send(push, "topic", 5, ZMQ_SNDMORE); /* four frames: a topic first */
    zmq_send(push, "k2", 2, ZMQ_SNDMORE);
    zmq_send(push, "", 0, ZMQ_SNDMORE);
    zmq_send(push, sb.data, sb.size, 0);
    zmq_send(push, "k3", 2, ZMQ_SNDMORE); /* a 3-byte ts frame */
    zmq_send(push, "abc", 3, ZMQ_SNDMORE);
    zmq_send(push, sb.data, sb.size, 0);
    zmq_send(push, "k4", 2, ZMQ_SNDMORE); /* two frames */
    zmq_send(push, sb.data, sb.size, 0);
    zmq_send(push, "k5", 2, ZMQ_SNDMORE); /* in order after the bad ones */
    zmq_send(push, "", 0, ZMQ_SNDMORE);
    zmq_send(push, sb.data, sb.size, 0);
    poll_until(t, 3);
    assert_memory_equal(hx_rec(t, 2)->key, "k5", 2);
    assert_memory_equal(hx_rec(t, 0)->key, "kk", 2);
    assert_int_equal(hx_rec(t, 0)->ts, 0x19b6f5a4400LL);
    assert_memory_equal(hx_rec(t, 1)->key, "k2", 2);
    assert_int_equal(hx_rec(t, 1)->ts, WEIR_TS_NONE);
    assert_non_null(hx_find_log(t, "the ts frame has 3 bytes"));
    assert_non_null(hx_find_log(t, "2 frames; format multipart needs"));
    weir_test_free(t);
    msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------------------------------ */
/* Spool                                                                     */
/* ------------------------------------------------------------------------ */

static const weir_test_param *spool_params(env *e, const char *socket)
{
    static weir_test_param p[12];
    p[0] = (weir_test_param){"socket", socket};
    p[1] = (weir_test_param){"key_field", "k"};
    p[2] = (weir_test_param){"id_field", "id"};
    p[3] = (weir_test_param){"spool", e->spool};
    p[4] = (weir_test_param){"spool_segment", "64KiB"};
    p[5] = (weir_test_param){"end_message", "END"};
    p[6] = (weir_test_param){NULL, NULL};
    return p;
}

static char *snap_copy(const weir_test *t, size_t *len)
{
    const void *d;
    weir_test_snapshot_data(t, &d, len);
    char *c = malloc(*len ? *len : 1);
    assert_non_null(c);
    memcpy(c, d, *len);
    return c;
}

/* A resent message (its answer "lost") is acknowledged, not appended; after
 * a restart the records after the restored position are replayed and the
 * ids of the spool are still known. */
static void test_rep_dedup_and_replay(void **state)
{
    env *e = *state;
    weir_test *t = open_src(e, spool_params(e, "rep"), 0, 1);
    void *req = peer(e, ZMQ_REQ);
    assert_string_equal(request(t, req, "{\"id\":\"a\",\"k\":\"x\",\"n\":1}"),
                        "ok");
    poll_until(t, 1);
    assert_int_equal(ck(t, 1), WEIR_OK);
    size_t snap_len;
    char *snap = snap_copy(t, &snap_len);
    assert_string_equal(request(t, req, "{\"id\":\"b\",\"k\":\"y\",\"n\":2}"),
                        "ok");
    poll_until(t, 2);
    assert_string_equal(request(t, req, "{\"id\":\"a\",\"k\":\"x\",\"n\":1}"),
                        "ok");
    assert_string_equal(request(t, req, "{\"k\":\"x\"}"),
                        "error: no id field 'id'");
    for (int i = 0; i < 20; i++)
        weir_test_poll(t);
    assert_int_equal(hx_n(t), 2);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    assert_non_null(hx_find_log(t, "2 accepted, 1 duplicate(s), 1 bad"));
    weir_test_free(t); /* the worker dies after "b" was acknowledged */

    t = restore_src(e, spool_params(e, "rep"), 1, snap, snap_len);
    assert_non_null(hx_find_log(t, "2 recent id(s) recovered"));
    poll_until(t, 1); /* b is replayed */
    assert_int_equal(rec_int(hx_rec(t, 0), "n"), 2);
    assert_string_equal(request(t, req, "{\"id\":\"b\",\"k\":\"y\",\"n\":2}"),
                        "ok");
    assert_string_equal(request(t, req, "{\"id\":\"c\",\"k\":\"z\",\"n\":3}"),
                        "ok");
    poll_until(t, 2);
    assert_int_equal(rec_int(hx_rec(t, 1), "n"), 3);
    weir_test_free(t);
    free(snap);
}

/* Old segments go when a checkpoint covers them; the dedup window stays. */
static void test_segments_deleted_window_kept(void **state)
{
    env *e = *state;
    char seg_dir[400], msg[400], pad[201];
    snprintf(seg_dir, sizeof seg_dir, "%s/0", e->spool);
    memset(pad, 'p', 200);
    pad[200] = '\0';
    weir_test *t = open_src(e, spool_params(e, "pull"), 0, 1);
    void *push = peer(e, ZMQ_PUSH);
    for (int i = 0; i < 800; i++) {
        int n = snprintf(msg, sizeof msg,
                         "{\"id\":\"m%d\",\"k\":\"k%d\",\"pad\":\"%s\"}", i,
                         i % 5, pad);
        zmq_send(push, msg, (size_t)n, 0);
    }
    poll_until(t, 800);
    assert_true(count_segments(seg_dir) >= 3);
    assert_int_equal(ck(t, 7), WEIR_OK);
    assert_int_equal(weir_test_notify_checkpoint(t, 7), WEIR_OK);
    assert_int_equal(count_segments(seg_dir), 1);
    weir_test_free(t);

    /* No restore: the run starts at the mark, which is the end. */
    t = open_src(e, spool_params(e, "pull"), 0, 1);
    assert_non_null(hx_find_log(t, "800 recent id(s) recovered"));
    send_str(push, "{\"id\":\"m3\",\"k\":\"again\"}");
    send_str(push, "{\"id\":\"m800\",\"k\":\"new\"}");
    poll_until(t, 1); /* m3, sent before, was dropped */
    assert_memory_equal(hx_rec(t, 0)->key, "new", 3);
    assert_int_equal(weir_test_finish(t), WEIR_OK);
    assert_non_null(hx_find_log(t, "1 duplicate(s)"));
    weir_test_free(t);
}

/* Bytes a killed worker left half written are dropped at the next open. */
static void test_torn_tail(void **state)
{
    env *e = *state;
    weir_test *t = open_src(e, spool_params(e, "rep"), 0, 1);
    void *req = peer(e, ZMQ_REQ);
    assert_string_equal(request(t, req, "{\"id\":\"a\",\"k\":\"x\"}"), "ok");
    assert_string_equal(request(t, req, "{\"id\":\"b\",\"k\":\"y\"}"), "ok");
    weir_test_free(t);
    char seg[400];
    snprintf(seg, sizeof seg, "%s/0/seg-%020d.log", e->spool, 1);
    struct stat st;
    assert_int_equal(stat(seg, &st), 0);
    off_t good = st.st_size;
    int fd = open(seg, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x40\0\0\0\x12\x34\x56\x78MMM", 11), 11);
    close(fd);

    t = open_src(e, spool_params(e, "rep"), 0, 1);
    assert_non_null(hx_find_log(t, "dropped the last 11 byte(s)"));
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(st.st_size, good);
    poll_until(t, 2); /* from the mark: both messages */
    assert_string_equal(request(t, req, "{\"id\":\"c\",\"k\":\"z\"}"), "ok");
    poll_until(t, 3);
    assert_memory_equal(hx_rec(t, 2)->key, "z", 1);
    weir_test_free(t);
}

/* The end is spooled: a restore after it ends at once; a run without
 * restore, once the end is committed, starts a new stream with an empty
 * dedup window. */
static void test_end_then_new_stream(void **state)
{
    env *e = *state;
    weir_test *t = open_src(e, spool_params(e, "rep"), 0, 1);
    void *req = peer(e, ZMQ_REQ);
    assert_string_equal(request(t, req, "{\"id\":\"a\",\"k\":\"x\"}"), "ok");
    assert_string_equal(request(t, req, "END"), "ok");
    assert_int_equal(weir_test_drain(t, 100), WEIR_EOF);
    assert_int_equal(hx_n(t), 1);
    assert_int_equal(ck(t, 3), WEIR_OK);
    size_t snap_len;
    char *snap = snap_copy(t, &snap_len);
    weir_test_free(t);

    t = restore_src(e, spool_params(e, "rep"), 3, snap, snap_len);
    assert_int_equal(weir_test_poll(t), WEIR_EOF);
    assert_int_equal(hx_n(t), 0);
    weir_test_free(t);

    /* No restore: a new stream, whose ids start afresh. */
    t = open_src(e, spool_params(e, "rep"), 0, 1);
    assert_string_equal(request(t, req, "{\"id\":\"a\",\"k\":\"y\"}"), "ok");
    poll_until(t, 1);
    assert_memory_equal(hx_rec(t, 0)->key, "y", 1);
    weir_test_free(t);
    free(snap);
}

static void test_restore_errors(void **state)
{
    env *e = *state;
    char pad[301], msg[400];
    memset(pad, 'q', 300);
    pad[300] = '\0';
    weir_test *t = open_src(e, spool_params(e, "pull"), 0, 1);
    void *push = peer(e, ZMQ_PUSH);
    send_str(push, "{\"id\":\"first\",\"k\":\"x\"}");
    poll_until(t, 1);
    assert_int_equal(ck(t, 1), WEIR_OK);
    size_t early_len;
    char *early = snap_copy(t, &early_len);
    for (int i = 0; i < 600; i++) {
        int n = snprintf(msg, sizeof msg,
                         "{\"id\":\"%d\",\"k\":\"x\",\"p\":\"%s\"}", i, pad);
        zmq_send(push, msg, (size_t)n, 0);
    }
    poll_until(t, 601);
    assert_int_equal(ck(t, 2), WEIR_OK);
    assert_int_equal(weir_test_notify_checkpoint(t, 2), WEIR_OK);
    weir_test_free(t);

    /* A checkpoint whose segment was deleted after a newer one completed. */
    assert_int_equal(
        try_restore_src(e, spool_params(e, "pull"), 1, early, early_len, &t),
        WEIR_EINVAL);
    assert_contains(weir_test_error(t), "was deleted after a newer checkpoint");
    weir_test_free(t);
    /* Damaged, or taken without a spool / by another subtask. */
    assert_int_equal(try_restore_src(e, spool_params(e, "pull"), 1, early,
                                     early_len - 1, &t),
                     WEIR_EINVAL);
    assert_contains(weir_test_error(t), "is not a zmq_source snapshot");
    weir_test_free(t);
    early[4] = 0;
    assert_int_equal(
        try_restore_src(e, spool_params(e, "pull"), 1, early, early_len, &t),
        WEIR_EINVAL);
    assert_contains(weir_test_error(t), "was taken without a spool");
    early[4] = 1;
    weir_test_free(t);
    /* The spool was deleted: its messages cannot be replayed. */
    tu_rmtree(e->spool);
    assert_int_equal(
        try_restore_src(e, spool_params(e, "pull"), 1, early, early_len, &t),
        WEIR_EINVAL);
    assert_contains(weir_test_error(t), "was taken with another spool");
    weir_test_free(t);
    /* Without a spool a restore is accepted and says what is lost. */
    early[4] = 0;
    t = restore_src(e, (weir_test_param[]){{"key_field", "k"}, {NULL, NULL}}, 1,
                    early, early_len);
    assert_non_null(hx_find_log(t, "at-most-once"));
    weir_test_free(t);
    free(early);
}

/* ------------------------------------------------------------------------ */
/* ROUTER, parameters                                                        */
/* ------------------------------------------------------------------------ */

static void test_router_answers(void **state)
{
    env *e = *state;
    weir_test *t =
        open_src(e,
                 (weir_test_param[]){
                     {"socket", "router"}, {"key_field", "k"}, {NULL, NULL}},
                 0, 1);
    void *req = peer(e, ZMQ_REQ);
    assert_string_equal(request(t, req, "{\"k\":\"a\"}"), "ok");
    assert_contains(request(t, req, "{\"k\":"),
                    "error: invalid JSON at column 5");
    void *dealer = peer(e, ZMQ_DEALER);
    zmq_send(dealer, "{\"k\":\"b\"}", 9, 0); /* no empty frame first */
    char buf[256];
    int n = -1;
    for (int i = 0; i < 5000 && n < 0; i++) {
        weir_test_poll(t);
        n = zmq_recv(dealer, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            usleep(1000);
    }
    assert_int_equal(n, 0); /* the empty frame of the answer */
    n = zmq_recv(dealer, buf, sizeof buf - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_contains(buf, "error: no empty frame after the identity");
    assert_int_equal(hx_n(t), 1);
    weir_test_free(t);
}

static void expect_open_error(env *e, const weir_test_param *p, uint32_t par,
                              const char *needle)
{
    weir_test_param all[16];
    size_t n = 0;
    all[n++] = (weir_test_param){"endpoint", e->ep};
    for (size_t i = 0; p[i].name; i++)
        all[n++] = p[i];
    all[n] = (weir_test_param){NULL, NULL};
    hx_spec s = {.so = ZMQ_SO, .op = "zmq_source", .params = all, .par = par};
    weir_test *t = NULL;
    assert_true(hx_try(&s, &t) < 0);
    if (!strstr(weir_test_error(t), needle))
        fail_msg("error '%s' lacks '%s'", weir_test_error(t), needle);
    weir_test_free(t);
}

static void test_parameter_errors(void **state)
{
    env *e = *state;
    expect_open_error(e,
                      (weir_test_param[]){
                          {"key_field", "k"}, {"id_field", "id"}, {NULL, NULL}},
                      1, "id_field needs spool");
    expect_open_error(e, (weir_test_param[]){{NULL, NULL}}, 1,
                      "key_field is required with format json");
    expect_open_error(
        e,
        (weir_test_param[]){{"key_field", "k"}, {"bind", "true"}, {NULL, NULL}},
        2, "put {subtask} in it");
    char ep[400];
    snprintf(ep, sizeof ep, "ipc://%s/x-{subtask}.sock", e->dir);
    weir_test *t = hx_new(ZMQ_SO, "zmq_source",
                          (weir_test_param[]){{"endpoint", ep},
                                              {"bind", "true"},
                                              {"key_field", "k"},
                                              {NULL, NULL}},
                          1, 2);
    char sock[400];
    snprintf(sock, sizeof sock, "%s/x-1.sock", e->dir);
    assert_int_equal(access(sock, F_OK), 0);
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* zmq_sink                                                                  */
/* ------------------------------------------------------------------------ */

static weir_test *open_sink(env *e, const char *socket, const char *format,
                            const char *topic_field)
{
    weir_test_param p[8] = {{"endpoint", e->ep},
                            {"socket", socket},
                            {"format", format},
                            {"linger", "1s"}};
    size_t n = 4;
    if (topic_field)
        p[n++] = (weir_test_param){"topic_field", topic_field};
    p[n] = (weir_test_param){NULL, NULL};
    weir_test *t = hx_new(ZMQ_SO, "zmq_sink", p, 0, 1);
    return t;
}

/* Receives one message of up to 4 frames (fails after 5 s). */
static size_t recv_frames(void *s, char frames[4][256], size_t lens[4])
{
    size_t n = 0;
    int more = 1;
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 5000) != 1)
        fail_msg("no message within 5 s");
    while (more && n < 4) {
        int r = zmq_recv(s, frames[n], 255, 0);
        assert_true(r >= 0);
        lens[n++] = (size_t)r;
        size_t sz = sizeof more;
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &sz);
    }
    return n;
}

static void test_sink_formats(void **state)
{
    env *e = *state;
    const unsigned char val[] = {0x82, 0xa1, 'a', 0x01, 0xa1,
                                 't',  0xa2, 'h', 'i'}; /* {"a":1,"t":"hi"} */
    char f[4][256];
    size_t lens[4];
    void *pull = sock(e, ZMQ_PULL);
    assert_int_equal(zmq_bind(pull, e->ep), 0);

    weir_test *t = open_sink(e, "push", "json", NULL);
    assert_int_equal(weir_test_process(t, 0, "k1", 2, 5, val, sizeof val),
                     WEIR_OK);
    assert_int_equal(weir_test_process(t, 0, "k2", 2, 5, "\xc1", 1), WEIR_OK);
    assert_int_equal(recv_frames(pull, f, lens), 1);
    assert_int_equal(lens[0], 16);
    assert_memory_equal(f[0], "{\"a\":1,\"t\":\"hi\"}", 16);
    assert_non_null(hx_find_log(t, "record with key 'k2': the value is not "
                                   "msgpack; skipped"));
    weir_test_free(t);

    t = open_sink(e, "push", "multipart", NULL);
    assert_int_equal(
        weir_test_process(t, 0, "k1", 2, 0x0102030405LL, val, sizeof val),
        WEIR_OK);
    assert_int_equal(
        weir_test_process(t, 0, "k3", 2, WEIR_TS_NONE, val, sizeof val),
        WEIR_OK);
    assert_int_equal(recv_frames(pull, f, lens), 3);
    assert_int_equal(lens[1], 8);
    assert_memory_equal(f[1], "\0\0\0\x01\x02\x03\x04\x05", 8);
    assert_memory_equal(f[2], val, sizeof val);
    assert_int_equal(recv_frames(pull, f, lens), 3);
    assert_int_equal(lens[1], 0);
    weir_test_free(t);

    /* Another path: a closed ipc listener unlinks its path asynchronously. */
    snprintf(e->ep, sizeof e->ep, "ipc://%s/pub.sock", e->dir);
    void *sub = sock(e, ZMQ_SUB);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    assert_int_equal(zmq_bind(sub, e->ep), 0);
    t = open_sink(e, "pub", "msgpack", "t");
    /* PUB drops what it sends before it has read the subscription: send
     * until one arrives. */
    zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
    for (int i = 0; i < 100 && zmq_poll(&it, 1, 50) == 0; i++)
        assert_int_equal(weir_test_process(t, 0, "k1", 2, 1, val, sizeof val),
                         WEIR_OK);
    assert_int_equal(weir_test_process(t, 0, "k2", 2, 1, "\x80", 1), WEIR_OK);
    assert_int_equal(recv_frames(sub, f, lens), 2);
    assert_memory_equal(f[0], "hi", 2);
    assert_memory_equal(f[1], val, sizeof val);
    assert_non_null(hx_find_log(t, "no topic field 't' in its value"));
    weir_test_free(t);
}

/* ------------------------------------------------------------------------ */
/* stdin                                                                     */
/* ------------------------------------------------------------------------ */

/* stdin, restored from `snap` of checkpoint 1 unless it is NULL; returns
 * weir_test_new()'s code. */
static int try_stdin(const char *at_most_once, const void *snap,
                     size_t snap_len, weir_test **t)
{
    static weir_test_param p[] = {{"key_field", "user"},
                                  {"batch", "2"},
                                  {"at_most_once", NULL},
                                  {NULL, NULL}};
    p[2].value = at_most_once;
    hx_spec s = {.so = STDIN_SO, .op = "stdin", .params = p};
    return snap ? hx_try_restore(&s, 1, 1, snap, snap_len, t) : hx_try(&s, t);
}

static weir_test *restore_stdin(const char *at_most_once, const void *snap,
                                size_t snap_len)
{
    weir_test *t = NULL;
    if (try_stdin(at_most_once, snap, snap_len, &t) != WEIR_OK)
        fail_msg("open failed: %s", weir_test_error(t));
    return t;
}

static weir_test *open_stdin(const char *at_most_once)
{
    return restore_stdin(at_most_once, NULL, 0);
}

static const char stdin_text[] = "{\"user\":\"a\",\"n\":1}\n"
                                 "{\"user\":\"b\",\"n\":2}\r\n"
                                 "\n"
                                 "oops\n"
                                 "{\"user\":\"c\",\"n\":3}\n"
                                 "{\"user\":\"d\",\"n\":4}";

static void test_stdin_pipe(void **state)
{
    (void)state;
    int saved = dup(0), p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(dup2(p[0], 0), 0);
    close(p[0]);
    weir_test *t = open_stdin("false");
    assert_int_equal(write(p[1], stdin_text, sizeof stdin_text - 1),
                     (ssize_t)sizeof stdin_text - 1);
    poll_until(t, 2);
    assert_int_equal(ck(t, 1), WEIR_OK);
    size_t snap_len;
    char *snap = snap_copy(t, &snap_len);
    close(p[1]);
    assert_int_equal(weir_test_drain(t, 1000), WEIR_EOF);
    assert_int_equal(hx_n(t), 4);
    assert_memory_equal(hx_rec(t, 3)->key, "d", 1);
    assert_non_null(hx_find_log(t, "line 4: invalid JSON"));
    weir_test_free(t);

    /* The failed worker read past the checkpoint: refused, or with
     * at_most_once accepted with a warning. */
    assert_int_equal(try_stdin("false", snap, snap_len, &t), WEIR_EINVAL);
    assert_contains(weir_test_error(t), "cannot restore checkpoint 1 (after "
                                        "line 2, byte 39): standard input is a "
                                        "pipe");
    weir_test_free(t);
    t = restore_stdin("true", snap, snap_len);
    assert_non_null(hx_find_log(t, "are lost (at_most_once)"));
    weir_test_free(t);
    dup2(saved, 0);
    close(saved);
    free(snap);
}

static void test_stdin_regular_file_replays(void **state)
{
    env *e = *state;
    char *path = tu_path(e->dir, "in.jsonl");
    tu_write_file(path, stdin_text, sizeof stdin_text - 1);
    int saved = dup(0), fd = open(path, O_RDONLY);
    assert_int_equal(dup2(fd, 0), 0);
    close(fd);
    weir_test *t = open_stdin("false");
    poll_until(t, 2);
    assert_int_equal(ck(t, 1), WEIR_OK);
    size_t snap_len;
    char *snap = snap_copy(t, &snap_len);
    assert_int_equal(weir_test_drain(t, 1000), WEIR_EOF);
    assert_int_equal(hx_n(t), 4);
    weir_test_free(t);

    t = restore_stdin("false", snap, snap_len);
    assert_int_equal(weir_test_drain(t, 1000), WEIR_EOF);
    assert_int_equal(hx_n(t), 2); /* c and d again, from byte 39 */
    assert_int_equal(rec_int(hx_rec(t, 0), "n"), 3);
    weir_test_free(t);
    dup2(saved, 0);
    close(saved);
    free(snap);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test_setup_teardown(test_pull_json_and_bad_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pull_msgpack_multipart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rep_dedup_and_replay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_segments_deleted_window_kept,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_end_then_new_stream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restore_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_router_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parameter_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_formats, setup, teardown),
        cmocka_unit_test(test_stdin_pipe),
        cmocka_unit_test_setup_teardown(test_stdin_regular_file_replays, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
