/*
 * bcastops - operators for the broadcast state tests, built like any
 * outside plugin against the current SDK (ABI 1.2):
 *   bcjoin (keyed) input "events" (by key) and broadcast input "conf".
 *          process_broadcast() keeps the broadcast state "conf": a record
 *          whose value has a string field "v" puts (record key -> v), one
 *          without deletes the key; with `nondet` it also puts "sub" ->
 *          the subtask index (a forbidden, nondeterministic write).
 *          process() emits {"sub", "user", "want", "got"}: the event's
 *          field "want" looked up in "conf" (nil when absent). finish()
 *          emits {"sub", "entries", "restored", "violations"}: entries
 *          now, entries found in open() (a restore), and the number of
 *          contract checks that failed: a put or delete from process()
 *          or finish() that did not return WEIR_ESTATE, a declaration
 *          outside open(), twice or with a bad name that was not refused,
 *          a current key, keyed state or a timer in process_broadcast(),
 *          a state call inside an iteration, a misuse (NULL with a length,
 *          a made-up handle, an overlong key, a NULL output or callback)
 *          that was not refused with WEIR_EINVAL. Its keyed value state "seen"
 *          is written by process().
 *   bcplain an operator without broadcast input: open() fails unless
 *          weir_broadcast_declare() refuses it with WEIR_EINVAL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

typedef struct bcjoin {
    weir_broadcast_state *conf;
    weir_state *seen; /* keyed: events per user */
    int nondet;
    int64_t restored;
    int64_t violations;
    weir_mp_reader rd;
    weir_mp_writer w;
} bcjoin;

static const weir_param_def p_nondet = {
    .size = sizeof(weir_param_def),
    .name = "nondet",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
    .description = "also write the subtask index (breaks determinism)"};
static const weir_param_def *const bcjoin_params[] = {&p_nondet, NULL};
static const char *const bcjoin_inputs[] = {"events", "conf", NULL};

static int bc_count_fn(void *arg, const void *k, size_t kn, const void *v,
                       size_t vn)
{
    (*(int64_t *)arg)++;
    return 0;
}

static int64_t bc_entries(weir_ctx *ctx, bcjoin *b)
{
    int64_t n = 0;
    if (weir_broadcast_iter(ctx, b->conf, bc_count_fn, &n) < 0)
        return -1;
    return n;
}

/* A put and a delete that must be refused (outside process_broadcast). */
static void bc_check_readonly(weir_ctx *ctx, bcjoin *b)
{
    if (weir_broadcast_put(ctx, b->conf, "x", 1, "y", 1) != WEIR_ESTATE)
        b->violations++;
    if (weir_broadcast_delete(ctx, b->conf, "x", 1) != WEIR_ESTATE)
        b->violations++;
}

typedef struct bc_nested {
    weir_ctx *ctx;
    bcjoin *b;
} bc_nested;

/* Inside an iteration every broadcast call is refused. */
static int bc_nested_fn(void *arg, const void *k, size_t kn, const void *v,
                        size_t vn)
{
    bc_nested *n = arg;
    const void *p;
    size_t len;
    if (weir_broadcast_get(n->ctx, n->b->conf, k, kn, &p, &len) != WEIR_ESTATE)
        n->b->violations++;
    return 1;
}

static int bcjoin_open(weir_ctx *ctx, void **self)
{
    bcjoin *b = calloc(1, sizeof *b);
    if (!b)
        return WEIR_ENOMEM;
    weir_mp_reader_init(&b->rd);
    weir_mp_writer_init(&b->w);
    weir_param_bool(ctx, "nondet", &b->nondet);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "seen",
                         .ttl_ms = WEIR_TTL_NONE};
    int rc = weir_state_declare(ctx, &d, &b->seen);
    if (rc == 0)
        rc = weir_broadcast_declare(ctx, "conf", &b->conf);
    if (rc < 0) {
        free(b);
        return rc;
    }
    weir_broadcast_state *again = NULL;
    if (weir_broadcast_declare(ctx, "conf", &again) != WEIR_EINVAL ||
        weir_broadcast_declare(ctx, "Bad-Name", &again) != WEIR_EINVAL)
        b->violations++;
    b->restored = bc_entries(ctx, b);
    *self = b;
    return 0;
}

/* Misuses the host must refuse with WEIR_EINVAL, writes allowed or not. */
static void bc_check_misuse(weir_ctx *ctx, bcjoin *b)
{
    static char long_key[WEIR_BROADCAST_MAX_KEY + 1];
    const void *v;
    size_t n;
    weir_broadcast_state *made_up = (weir_broadcast_state *)b;
    if (weir_broadcast_put(ctx, b->conf, NULL, 3, "v", 1) != WEIR_EINVAL ||
        weir_broadcast_put(ctx, b->conf, "k", 1, NULL, 2) != WEIR_EINVAL ||
        weir_broadcast_put(ctx, made_up, "k", 1, "v", 1) != WEIR_EINVAL ||
        weir_broadcast_put(ctx, NULL, "k", 1, "v", 1) != WEIR_EINVAL ||
        weir_broadcast_put(ctx, b->conf, long_key, sizeof long_key, "v", 1) !=
            WEIR_EINVAL ||
        weir_broadcast_get(ctx, b->conf, "k", 1, NULL, &n) != WEIR_EINVAL ||
        weir_broadcast_get(ctx, made_up, "k", 1, &v, &n) != WEIR_EINVAL ||
        weir_broadcast_delete(ctx, b->conf, NULL, 1) != WEIR_EINVAL ||
        weir_broadcast_iter(ctx, b->conf, NULL, NULL) != WEIR_EINVAL)
        b->violations++;
}

static int bcjoin_process_broadcast(weir_ctx *ctx, void *self,
                                    const weir_record *rec, uint32_t port)
{
    bcjoin *b = self;
    bc_check_misuse(ctx, b);
    const void *key;
    size_t key_len;
    const void *v0;
    size_t n0;
    if (port != 1 || weir_current_key(ctx, &key, &key_len) != WEIR_ESTATE ||
        weir_timer_register(ctx, WEIR_TIME_EVENT, 1) != WEIR_ESTATE ||
        weir_value_get(ctx, b->seen, &v0, &n0) != WEIR_ESTATE ||
        weir_value_put(ctx, b->seen, "x", 1) != WEIR_ESTATE)
        b->violations++;
    const msgpack_object *o = weir_mp_read(&b->rd, rec->value, rec->value_len);
    const char *v;
    size_t vn;
    int rc;
    if (o && weir_mp_get_str(o, "v", &v, &vn) == 0)
        rc = weir_broadcast_put(ctx, b->conf, rec->key, rec->key_len, v, vn);
    else
        rc = weir_broadcast_delete(ctx, b->conf, rec->key, rec->key_len);
    if (rc == 0 && b->nondet) {
        uint32_t sub = weir_subtask_index(ctx);
        rc = weir_broadcast_put(ctx, b->conf, "sub", 3, &sub, sizeof sub);
    }
    return rc;
}

static int bc_emit(weir_ctx *ctx, bcjoin *b, const void *key, size_t key_len)
{
    return weir_emit(ctx, 0, key, key_len, WEIR_TS_NONE, b->w.buf.data,
                     b->w.buf.size);
}

static int bcjoin_process(weir_ctx *ctx, void *self, const weir_record *rec,
                          uint32_t port)
{
    bcjoin *b = self;
    bc_check_readonly(ctx, b);
    int rc = weir_value_put(ctx, b->seen, "1", 1);
    if (rc < 0)
        return rc;
    weir_broadcast_state *late = NULL;
    if (weir_broadcast_declare(ctx, "late", &late) != WEIR_ESTATE)
        b->violations++;
    bc_nested n = {ctx, b};
    if (weir_broadcast_iter(ctx, b->conf, bc_nested_fn, &n) < 0)
        b->violations++;
    const msgpack_object *o = weir_mp_read(&b->rd, rec->value, rec->value_len);
    const char *want = "";
    size_t want_len = 0;
    if (o)
        weir_mp_get_str(o, "want", &want, &want_len);
    const void *got = NULL;
    size_t got_len = 0;
    rc = weir_broadcast_get(ctx, b->conf, want, want_len, &got, &got_len);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rc;
    msgpack_packer *pk = &b->w.pk;
    weir_mp_writer_reset(&b->w);
    msgpack_pack_map(pk, 4);
    weir_mp_pack_str(pk, "sub");
    msgpack_pack_uint32(pk, weir_subtask_index(ctx));
    weir_mp_pack_str(pk, "user");
    weir_mp_pack_strn(pk, rec->key, rec->key_len);
    weir_mp_pack_str(pk, "want");
    weir_mp_pack_strn(pk, want, want_len);
    weir_mp_pack_str(pk, "got");
    if (rc == 0)
        weir_mp_pack_strn(pk, got, got_len);
    else
        msgpack_pack_nil(pk);
    return bc_emit(ctx, b, rec->key, rec->key_len);
}

static int bcjoin_finish(weir_ctx *ctx, void *self)
{
    bcjoin *b = self;
    bc_check_readonly(ctx, b);
    msgpack_packer *pk = &b->w.pk;
    weir_mp_writer_reset(&b->w);
    msgpack_pack_map(pk, 4);
    weir_mp_pack_str(pk, "sub");
    msgpack_pack_uint32(pk, weir_subtask_index(ctx));
    weir_mp_pack_str(pk, "entries");
    msgpack_pack_int64(pk, bc_entries(ctx, b));
    weir_mp_pack_str(pk, "restored");
    msgpack_pack_int64(pk, b->restored);
    weir_mp_pack_str(pk, "violations");
    msgpack_pack_int64(pk, b->violations);
    return bc_emit(ctx, b, "finish", 6);
}

static void bcjoin_close(weir_ctx *ctx, void *self)
{
    bcjoin *b = self;
    if (!b)
        return;
    weir_mp_reader_destroy(&b->rd);
    weir_mp_writer_destroy(&b->w);
    free(b);
}

static const weir_operator bcjoin_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "bcjoin",
    .version = "1.0.0",
    .description = "test: events joined with a broadcast configuration",
    .input_ports = bcjoin_inputs,
    .params = bcjoin_params,
    .open = bcjoin_open,
    .process = bcjoin_process,
    .finish = bcjoin_finish,
    .close = bcjoin_close,
    .broadcast_inputs = 1u << 1,
    .process_broadcast = bcjoin_process_broadcast,
};

static int bcplain_open(weir_ctx *ctx, void **self)
{
    weir_broadcast_state *st = NULL;
    int rc = weir_broadcast_declare(ctx, "conf", &st);
    *self = NULL;
    if (rc != WEIR_EINVAL)
        return weir_set_error(ctx, "bcplain: declare returned %d", rc);
    return 0;
}

static int bcplain_process(weir_ctx *ctx, void *self, const weir_record *rec,
                           uint32_t port)
{
    return 0;
}

static void bcplain_close(weir_ctx *ctx, void *self)
{
}

static const weir_operator bcplain_op = {
    .size = sizeof(weir_operator),
    .name = "bcplain",
    .version = "1.0.0",
    .description = "test: no broadcast input, so no broadcast state",
    .open = bcplain_open,
    .process = bcplain_process,
    .close = bcplain_close,
};

static const weir_operator *const bc_ops[] = {&bcjoin_op, &bcplain_op, NULL};

static const weir_plugin bc_plugin = {
    WEIR_PLUGIN_INIT,    .name = "bcastops",
    .version = "1.0.0",  .description = "broadcast state test operators",
    .operators = bc_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &bc_plugin;
}
