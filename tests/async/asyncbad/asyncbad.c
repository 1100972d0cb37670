/*
 * asyncbad - an operator with async_invoke but no on_async_result, which
 * the registry refuses (tests).
 */
#include <stdlib.h>

#include "weir/weir.h"

static int bad_open(weir_ctx *ctx, void **self)
{
    (void)ctx;
    *self = NULL;
    return WEIR_OK;
}

static void bad_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    (void)self;
}

static int bad_invoke(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port, weir_async *req)
{
    (void)self;
    (void)rec;
    (void)port;
    return weir_async_complete(ctx->api, req, WEIR_OK, NULL, 0);
}

static const weir_operator bad_operator = {
    .size = sizeof(weir_operator),
    .name = "asyncbad",
    .version = "1.0",
    .description = "async_invoke without on_async_result (refused)",
    .open = bad_open,
    .close = bad_close,
    .async_invoke = bad_invoke,
};

static const weir_operator *const bad_operators[] = {&bad_operator, NULL};

static const weir_plugin bad_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "asyncbad",
    .version = "1.0",
    .description = "a refused asynchronous operator (tests)",
    .operators = bad_operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    (void)host;
    return &bad_plugin;
}
