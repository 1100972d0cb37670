/*
 * abuse - a test operator that misuses the host API on purpose, built like
 * any outside plugin (SDK headers only), so that the runtime tests can check
 * that the host refuses every misuse with WEIR_EINVAL and a message, and
 * that nothing else (another subtask's state, the channel, the downstream
 * operator) is touched.
 *
 * A keyed operator. Its `case` parameter selects the misuse, performed in
 * process() on every record (or once in open() for the open_* cases):
 *   valid            legal edge cases only (NULL with length 0, a record of
 *                    exactly max_record_size bytes, ...): the job succeeds
 *   foreign_state    subtask 0 writes with subtask 1's value state handle
 *   foreign_ctx      subtask 0 emits and writes through subtask 1's ctx
 *   other_thread     emits from a thread the plugin started itself
 *   emit_null_key    weir_emit with key NULL and key_len 5
 *   emit_null_value  weir_emit with value NULL and value_len 5
 *   emit_size_max    weir_emit with value_len SIZE_MAX
 *   emit_4g          weir_emit with value_len 2^32 (a 16-byte buffer)
 *   emit_overflow    key_len + value_len wraps around to 1
 *   emit_too_big     a record of max_record_size + 1 bytes
 *   emit_bad_port    weir_emit on port 1 (the operator has one port)
 *   put_null         weir_value_put with value NULL and len 3
 *   put_too_big      weir_value_put of max_record_size + 1 bytes
 *   map_null_key     weir_map_put with ukey NULL and ukey_len 3
 *   list_too_big     weir_list_add of max_record_size + 1 bytes
 *   state_null       weir_value_put on a NULL state handle
 *   get_null_out     weir_value_get with NULL out pointers
 *   iter_null_fn     weir_map_iter with a NULL callback
 *   key_null_out     weir_current_key with NULL out pointers
 *   port_null_name   weir_output_port(NULL)
 *   open_param_null  weir_param_int(ctx, NULL, ...) in open()
 *   open_declare_null weir_state_declare with a NULL descriptor in open()
 *   open_metric_null weir_metric_register with a NULL out pointer in open()
 * Every misuse must return WEIR_EINVAL; the operator then returns that code
 * and the host's message explains the failure. When a misuse is not
 * detected, the operator goes on as if it had worked (as a buggy plugin
 * would), so that the damage shows, but makes it only once (the
 * foreign_* cases: on every record). `size` is the job's max_record_size,
 * which the test repeats here.
 *
 * Rule breach on purpose: plugins keep no mutable globals, but the
 * foreign_state and foreign_ctx cases must hand one subtask's handle to
 * another, which is the bug they simulate. So subtask 1 stashes its state
 * handle and ctx in the statics below in open() and clears them in close();
 * its finish() waits (at most 10 s) until subtask 0 used them, and subtask
 * 0 waits (as long) for them on its first record, so that the misuse
 * happens while both subtasks run.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weir/weir.h"

static _Atomic(weir_state *) abuse_stash_state;
static _Atomic(weir_ctx *) abuse_stash_ctx;
static atomic_int abuse_stash_used; /* subtask 0 made its misuse */

static const char *const abuse_cases[] = {"valid",
                                          "foreign_state",
                                          "foreign_ctx",
                                          "other_thread",
                                          "emit_null_key",
                                          "emit_null_value",
                                          "emit_size_max",
                                          "emit_4g",
                                          "emit_overflow",
                                          "emit_too_big",
                                          "emit_bad_port",
                                          "put_null",
                                          "put_too_big",
                                          "map_null_key",
                                          "list_too_big",
                                          "state_null",
                                          "get_null_out",
                                          "iter_null_fn",
                                          "key_null_out",
                                          "port_null_name",
                                          "open_param_null",
                                          "open_declare_null",
                                          "open_metric_null",
                                          NULL};

typedef struct abuse_op {
    const char *which;
    uint32_t index;
    int64_t size;
    char *big; /* size + 1 bytes */
    weir_state *value, *map, *list;
    uint64_t undetected; /* misuses that were not refused */
    int stash_seen;      /* subtask 0 found subtask 1's handles */
} abuse_op;

static const weir_param_def abuse_case = {.size = sizeof(weir_param_def),
                                          .name = "case",
                                          .type = WEIR_PARAM_ENUM,
                                          .flags = WEIR_PARAM_REQUIRED,
                                          .choices = abuse_cases,
                                          .description = "the misuse"};
static const weir_param_def abuse_size = {
    .size = sizeof(weir_param_def),
    .name = "size",
    .type = WEIR_PARAM_SIZE,
    .default_value = "16MiB",
    .description = "the job's runtime.max_record_size"};
static const weir_param_def *const abuse_params[] = {&abuse_case, &abuse_size,
                                                     NULL};

static int abuse_is(const abuse_op *a, const char *name)
{
    return strcmp(a->which, name) == 0;
}

static int abuse_declare(weir_ctx *ctx, const char *name, weir_state_kind kind,
                         weir_state **out)
{
    weir_state_desc d = {
        .size = sizeof d, .kind = kind, .name = name, .ttl_ms = WEIR_TTL_NONE};
    return weir_state_declare(ctx, &d, out);
}

/* The misuses of open(); WEIR_OK for the other cases. */
static int abuse_open_misuse(weir_ctx *ctx, const abuse_op *a)
{
    if (abuse_is(a, "open_param_null")) {
        int64_t v;
        return weir_param_int(ctx, NULL, &v);
    }
    if (abuse_is(a, "open_declare_null")) {
        weir_state *st;
        return weir_state_declare(ctx, NULL, &st);
    }
    if (abuse_is(a, "open_metric_null"))
        return weir_metric_register(ctx, WEIR_METRIC_COUNTER, "abuse_total",
                                    "misuses", NULL, NULL, NULL);
    return WEIR_OK;
}

static void abuse_close(weir_ctx *ctx, void *self)
{
    abuse_op *a = self;
    if (a->index == 1) {
        atomic_store(&abuse_stash_state, NULL);
        atomic_store(&abuse_stash_ctx, NULL);
    }
    free(a->big);
    free(a);
}

static int abuse_open(weir_ctx *ctx, void **self)
{
    abuse_op *a = calloc(1, sizeof *a);
    size_t len;
    if (!a)
        return WEIR_ENOMEM;
    a->index = weir_subtask_index(ctx);
    weir_param_string(ctx, "case", &a->which, &len);
    weir_param_int(ctx, "size", &a->size);
    int rc = abuse_declare(ctx, "value", WEIR_STATE_VALUE, &a->value);
    if (rc == 0)
        rc = abuse_declare(ctx, "map", WEIR_STATE_MAP, &a->map);
    if (rc == 0)
        rc = abuse_declare(ctx, "list", WEIR_STATE_LIST, &a->list);
    if (rc == 0 && !(a->big = calloc(1, (size_t)a->size + 1)))
        rc = WEIR_ENOMEM;
    if (rc == 0 && (rc = abuse_open_misuse(ctx, a)) != WEIR_EINVAL && rc < 0)
        rc = weir_set_error(ctx, "abuse: open misuse returned %d", rc);
    if (rc < 0) {
        free(a->big);
        free(a);
        return rc;
    }
    if (a->index == 1) {
        atomic_store(&abuse_stash_used, 0);
        atomic_store(&abuse_stash_state, a->value);
        atomic_store(&abuse_stash_ctx, ctx);
    }
    *self = a;
    return WEIR_OK;
}

static int abuse_emit_value(weir_ctx *ctx, uint32_t port, const void *v,
                            size_t len)
{
    return weir_emit(ctx, port, "k", 1, WEIR_TS_NONE, v, len);
}

/* Legal edge cases: each must succeed. */
static int abuse_valid(weir_ctx *ctx, abuse_op *a)
{
    const void *v;
    size_t n;
    int rc = weir_emit(ctx, 0, NULL, 0, WEIR_TS_NONE, NULL, 0);
    if (rc == 0) /* key + value of exactly max_record_size bytes */
        rc = weir_emit(ctx, 0, "kk", 2, WEIR_TS_NONE, a->big,
                       (size_t)a->size - 2);
    if (rc == 0)
        rc = weir_value_put(ctx, a->value, NULL, 0);
    if (rc == 0)
        rc = weir_value_put(ctx, a->value, a->big, (size_t)a->size);
    if (rc == 0)
        rc = weir_value_get(ctx, a->value, &v, &n);
    if (rc == 0 && n != (size_t)a->size)
        return weir_set_error(ctx, "abuse: read back %zu bytes", n);
    if (rc == 0)
        rc = weir_map_put(ctx, a->map, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = weir_list_add(ctx, a->list, NULL, 0);
    if (rc == 0)
        rc = weir_list_clear(ctx, a->list);
    if (rc == 0 && weir_output_port(ctx, "out") != 0)
        return weir_set_error(ctx, "abuse: no port \"out\"");
    return rc;
}

typedef struct abuse_call {
    weir_ctx *ctx;
    int rc;
} abuse_call;

static void *abuse_thread(void *arg)
{
    abuse_call *c = arg;
    c->rc = abuse_emit_value(c->ctx, 0, "v", 1);
    return NULL;
}

static int abuse_from_thread(weir_ctx *ctx)
{
    pthread_t th;
    abuse_call c = {.ctx = ctx};
    if (pthread_create(&th, NULL, abuse_thread, &c) != 0)
        return weir_set_error(ctx, "abuse: pthread_create failed");
    pthread_join(th, NULL);
    return c.rc;
}

static void abuse_sleep_ms(void)
{
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* Subtask 1's stashed handles: 1, or 0 when subtask 1 closed since the
 * last call, or -1 when it did not open within 10 s. */
static int abuse_stashed(abuse_op *a, weir_state **st, weir_ctx **other)
{
    for (int i = 0; i < 10000; i++) {
        *st = atomic_load(&abuse_stash_state);
        *other = atomic_load(&abuse_stash_ctx);
        if (*st && *other)
            return a->stash_seen = 1;
        if (a->stash_seen)
            return 0;
        abuse_sleep_ms();
    }
    return -1;
}

/* Performs the record-time misuse of the case and returns its code, or 1
 * when this subtask has nothing to do. */
static int abuse_misuse(weir_ctx *ctx, abuse_op *a)
{
    static const char buf16[16];
    size_t sz = (size_t)a->size;
    if (abuse_is(a, "valid"))
        return abuse_valid(ctx, a);
    if (abuse_is(a, "foreign_state") || abuse_is(a, "foreign_ctx")) {
        weir_state *st;
        weir_ctx *other;
        if (a->index != 0)
            return 1; /* subtask 1 writes nothing itself */
        int found = abuse_stashed(a, &st, &other);
        if (found <= 0)
            return found ? weir_set_error(ctx, "abuse: subtask 1 never opened")
                         : 1;
        int rc = abuse_is(a, "foreign_state")
                     ? weir_value_put(ctx, st, "stolen", 6)
                     : abuse_emit_value(other, 0, "v", 1);
        if (rc == 0 && abuse_is(a, "foreign_ctx"))
            rc = weir_value_put(other, st, "stolen", 6);
        atomic_store(&abuse_stash_used, 1);
        return rc;
    }
    if (abuse_is(a, "other_thread"))
        return abuse_from_thread(ctx);
    if (abuse_is(a, "emit_null_key"))
        return weir_emit(ctx, 0, NULL, 5, WEIR_TS_NONE, "v", 1);
    if (abuse_is(a, "emit_null_value"))
        return weir_emit(ctx, 0, "k", 1, WEIR_TS_NONE, NULL, 5);
    if (abuse_is(a, "emit_size_max"))
        return abuse_emit_value(ctx, 0, buf16, SIZE_MAX);
    if (abuse_is(a, "emit_4g"))
        return abuse_emit_value(ctx, 0, buf16, (size_t)1 << 32);
    if (abuse_is(a, "emit_overflow"))
        return weir_emit(ctx, 0, buf16, SIZE_MAX - 2, WEIR_TS_NONE, buf16, 4);
    if (abuse_is(a, "emit_too_big"))
        return abuse_emit_value(ctx, 0, a->big, sz); /* key "k" + sz */
    if (abuse_is(a, "emit_bad_port"))
        return abuse_emit_value(ctx, 1, "v", 1);
    if (abuse_is(a, "put_null"))
        return weir_value_put(ctx, a->value, NULL, 3);
    if (abuse_is(a, "put_too_big"))
        return weir_value_put(ctx, a->value, a->big, sz + 1);
    if (abuse_is(a, "map_null_key"))
        return weir_map_put(ctx, a->map, NULL, 3, "v", 1);
    if (abuse_is(a, "list_too_big"))
        return weir_list_add(ctx, a->list, a->big, sz + 1);
    if (abuse_is(a, "state_null"))
        return weir_value_put(ctx, NULL, "v", 1);
    if (abuse_is(a, "get_null_out"))
        return weir_value_get(ctx, a->value, NULL, NULL);
    if (abuse_is(a, "iter_null_fn"))
        return weir_map_iter(ctx, a->map, NULL, NULL);
    if (abuse_is(a, "key_null_out"))
        return weir_current_key(ctx, NULL, NULL);
    if (abuse_is(a, "port_null_name"))
        return weir_output_port(ctx, NULL);
    return 1;
}

static int abuse_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    abuse_op *a = self;
    /* An undetected misuse is not repeated (a record or value of
     * max_record_size per input record would fill the disk), except the
     * small writes through another subtask's handles, whose damage is the
     * point. */
    int again = abuse_is(a, "foreign_state") || abuse_is(a, "foreign_ctx");
    int rc = a->undetected && !again ? 1 : abuse_misuse(ctx, a);
    if (abuse_is(a, "valid") ? rc < 0 : rc == WEIR_EINVAL)
        return rc; /* for a misuse, the host's message explains it */
    if (rc <= 0 && !abuse_is(a, "valid"))
        a->undetected++; /* carry on, as a plugin that ignores codes */
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static int abuse_finish(weir_ctx *ctx, void *self)
{
    abuse_op *a = self;
    int foreign = abuse_is(a, "foreign_state") || abuse_is(a, "foreign_ctx");
    for (int i = 0; foreign && a->index == 1 && i < 10000 &&
                    !atomic_load(&abuse_stash_used);
         i++)
        abuse_sleep_ms();
    if (a->undetected)
        weir_log(ctx, WEIR_LOG_WARN, "abuse: %llu misuses went undetected",
                 (unsigned long long)a->undetected);
    return WEIR_OK;
}

static const weir_operator abuse_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "abuse",
    .version = "1.0",
    .description = "misuses the host API on purpose (tests)",
    .params = abuse_params,
    .open = abuse_open,
    .process = abuse_process,
    .finish = abuse_finish,
    .close = abuse_close,
};

static const weir_operator *const abuse_operators[] = {&abuse_operator, NULL};

static const weir_plugin abuse_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "abuseops",
    .version = "1.0",
    .description = "an operator that misuses the host API (tests)",
    .operators = abuse_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &abuse_plugin;
}
