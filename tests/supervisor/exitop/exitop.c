/*
 * exitop - test operators that misbehave, built like any outside plugin
 * (SDK headers only):
 *   exitop  forwards records and calls exit(`code`) on record number `at`
 *           (1-based), ending the process behind the host's back.
 *   flaky   forwards records, but answers every `every`-th record with
 *           WEIR_ERETRY `times` times before it takes it (times < 0: for
 *           ever), as a plugin whose backend is briefly unavailable.
 */
#include <stdlib.h>

#include "weir/weir.h"

typedef struct exit_op {
    int64_t at, code, seen;
} exit_op;

static const weir_param_def exit_at = {
    .size = sizeof(weir_param_def),
    .name = "at",
    .type = WEIR_PARAM_INT,
    .default_value = "1",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 1,
    .description = "record number (1-based) on which the process exits"};
static const weir_param_def exit_code = {.size = sizeof(weir_param_def),
                                         .name = "code",
                                         .type = WEIR_PARAM_INT,
                                         .default_value = "0",
                                         .flags = WEIR_PARAM_HAS_MIN |
                                                  WEIR_PARAM_HAS_MAX,
                                         .min = 0,
                                         .max = 255,
                                         .description = "the exit code"};
static const weir_param_def *const exit_params[] = {&exit_at, &exit_code, NULL};

static int exit_open(weir_ctx *ctx, void **self)
{
    exit_op *e = calloc(1, sizeof *e);
    if (!e)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "at", &e->at);
    weir_param_int(ctx, "code", &e->code);
    *self = e;
    return WEIR_OK;
}

static int exit_process(weir_ctx *ctx, void *self, const weir_record *rec,
                        uint32_t port)
{
    exit_op *e = self;
    (void)port;
    if (++e->seen == e->at)
        exit((int)e->code);
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static void exit_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    free(self);
}

static const weir_operator exit_operator = {
    .size = sizeof(weir_operator),
    .name = "exitop",
    .version = "1.0",
    .description = "forwards records, then calls exit() (tests)",
    .params = exit_params,
    .open = exit_open,
    .process = exit_process,
    .close = exit_close,
};

typedef struct flaky_op {
    int64_t every, times, seen, refused;
} flaky_op;

static const weir_param_def flaky_every = {
    .size = sizeof(weir_param_def),
    .name = "every",
    .type = WEIR_PARAM_INT,
    .default_value = "100",
    .flags = WEIR_PARAM_HAS_MIN,
    .min = 1,
    .description = "every n-th record is refused first"};
static const weir_param_def flaky_times = {
    .size = sizeof(weir_param_def),
    .name = "times",
    .type = WEIR_PARAM_INT,
    .default_value = "3",
    .description = "WEIR_ERETRY answers per refused record; < 0: for ever"};
static const weir_param_def *const flaky_params[] = {&flaky_every, &flaky_times,
                                                     NULL};

static int flaky_open(weir_ctx *ctx, void **self)
{
    flaky_op *f = calloc(1, sizeof *f);
    if (!f)
        return WEIR_ENOMEM;
    weir_param_int(ctx, "every", &f->every);
    weir_param_int(ctx, "times", &f->times);
    *self = f;
    return WEIR_OK;
}

static int flaky_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    flaky_op *f = self;
    (void)port;
    if ((f->seen + 1) % f->every == 0 &&
        (f->times < 0 || f->refused < f->times)) {
        f->refused++;
        weir_set_error(ctx, "flaky: backend unavailable (refusal %lld)",
                       (long long)f->refused);
        return WEIR_ERETRY; /* nothing emitted for this record yet */
    }
    f->seen++;
    f->refused = 0;
    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, rec->value,
                     rec->value_len);
}

static const weir_operator flaky_operator = {
    .size = sizeof(weir_operator),
    .name = "flaky",
    .version = "1.0",
    .description = "forwards records after WEIR_ERETRY answers (tests)",
    .params = flaky_params,
    .open = flaky_open,
    .process = flaky_process,
    .close = exit_close,
};

static const weir_operator *const exit_operators[] = {&exit_operator,
                                                      &flaky_operator, NULL};

static const weir_plugin exit_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "exitop",
    .version = "1.0",
    .description = "an operator that calls exit() (tests)",
    .operators = exit_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    (void)host;
    return &exit_plugin;
}
