/*
 * testops - operators used only by the runtime tests, built like any
 * outside plugin (SDK headers only):
 *   fail   forwards records and fails on record number `at` (1-based) with
 *          `message`, or in open() when `in_open` is set; or crashes
 *          (SIGSEGV) instead when `crash` is set.
 *   slow   a sink that sleeps `delay_us` per record and counts them.
 *   relay  forwards every record unchanged.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <time.h>

#include "weir/weir.h"

typedef struct fail_op {
    int64_t at, seen;
    int crash;
    const char *message;
    size_t message_len;
} fail_op;

static const weir_param_def fail_at = {
    .size = sizeof(weir_param_def),
    .name = "at",
    .type = WEIR_PARAM_INT,
    .default_value = "1",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 0,
    .description = "record number (1-based) that fails; 0 = never"};
static const weir_param_def fail_message = {.size = sizeof(weir_param_def),
                                            .name = "message",
                                            .type = WEIR_PARAM_STRING,
                                            .default_value =
                                                "deliberate failure",
                                            .description = "the error message"};
static const weir_param_def fail_in_open = {.size = sizeof(weir_param_def),
                                            .name = "in_open",
                                            .type = WEIR_PARAM_BOOL,
                                            .default_value = "false",
                                            .description =
                                                "fail in open() instead"};
static const weir_param_def fail_crash = {.size = sizeof(weir_param_def),
                                          .name = "crash",
                                          .type = WEIR_PARAM_BOOL,
                                          .default_value = "false",
                                          .description =
                                              "segfault instead of failing"};
static const weir_param_def *const fail_params[] = {
    &fail_at, &fail_message, &fail_in_open, &fail_crash, NULL};

static int fail_open(weir_ctx *ctx, void **self)
{
    fail_op *f = calloc(1, sizeof *f);
    int in_open = 0;
    if (!f)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "at", &f->at);
    weir_param_bool(ctx, "in_open", &in_open);
    weir_param_bool(ctx, "crash", &f->crash);
    weir_param_string(ctx, "message", &f->message, &f->message_len);
    if (in_open) {
        int rc = weir_set_error(ctx, "%.*s", (int)f->message_len, f->message);
        free(f);
        return rc;
    }
    *self = f;
    return WEIR_OK;
}

static int fail_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    fail_op *f = self;
    if (++f->seen == f->at) {
        if (f->crash) {
            volatile int *p = NULL;
            *p = 1;
        }
        return weir_set_error(ctx, "%.*s", (int)f->message_len, f->message);
    }
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static void generic_close(weir_ctx *ctx, void *self)
{
    free(self);
}

static const weir_operator fail_operator = {
    .size = sizeof(weir_operator),
    .name = "fail",
    .version = "1.0",
    .description = "forwards records, then fails on purpose (tests)",
    .params = fail_params,
    .open = fail_open,
    .process = fail_process,
    .close = generic_close,
};

typedef struct slow_op {
    int64_t delay_us;
    uint64_t n;
} slow_op;

static const weir_param_def slow_delay = {.size = sizeof(weir_param_def),
                                          .name = "delay_us",
                                          .type = WEIR_PARAM_INT,
                                          .default_value = "100",
                                          .flags = WEIR_PARAM_HAS_MIN,
                                          .min = 0,
                                          .description =
                                              "sleep per record, microseconds"};
static const weir_param_def *const slow_params[] = {&slow_delay, NULL};

static int slow_open(weir_ctx *ctx, void **self)
{
    slow_op *s = calloc(1, sizeof *s);
    if (!s)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "delay_us", &s->delay_us);
    *self = s;
    return WEIR_OK;
}

static int slow_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    slow_op *s = self;
    struct timespec ts = {0, (long)s->delay_us * 1000};
    if (s->delay_us)
        nanosleep(&ts, NULL);
    s->n++;
    return WEIR_OK;
}

static int slow_finish(weir_ctx *ctx, void *self)
{
    weir_log(ctx, WEIR_LOG_INFO, "slow sink received %llu records",
             (unsigned long long)((slow_op *)self)->n);
    return WEIR_OK;
}

static const char *const no_outputs[] = {NULL};

static const weir_operator slow_operator = {
    .size = sizeof(weir_operator),
    .name = "slow",
    .version = "1.0",
    .description = "a sink that sleeps per record (tests)",
    .output_ports = no_outputs,
    .params = slow_params,
    .open = slow_open,
    .process = slow_process,
    .finish = slow_finish,
    .close = generic_close,
};

static int relay_open(weir_ctx *ctx, void **self)
{
    *self = NULL;
    return WEIR_OK;
}

static int relay_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static const weir_operator relay_operator = {
    .size = sizeof(weir_operator),
    .name = "relay",
    .version = "1.0",
    .description = "forwards every record unchanged (tests)",
    .open = relay_open,
    .process = relay_process,
    .close = generic_close,
};

static const weir_operator *const testops_operators[] = {
    &fail_operator, &slow_operator, &relay_operator, NULL};

static const weir_plugin testops_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "testops",
    .version = "1.0",
    .description = "operators for the runtime tests",
    .operators = testops_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &testops_plugin;
}
