/*
 * test_plugin.h - stub callbacks and initialisers shared by the loader's
 * test plugins (good/ and broken/). Like every plugin, they include only the
 * SDK header.
 */
#ifndef WEIR_TEST_PLUGIN_H
#define WEIR_TEST_PLUGIN_H

#include "weir/weir.h"

static inline int tp_open(weir_ctx *ctx, void **self)
{
    *self = NULL;
    return WEIR_OK;
}

static inline int tp_process(weir_ctx *ctx, void *self, const weir_record *rec,
                             uint32_t port)
{
    return WEIR_OK;
}

static inline int tp_poll(weir_ctx *ctx, void *self)
{
    return WEIR_EOF;
}

static inline int tp_snapshot(weir_ctx *ctx, void *self, uint64_t id)
{
    return WEIR_OK;
}

static inline void tp_close(weir_ctx *ctx, void *self)
{
}

/* A minimal valid non-source operator named `nm`. */
#define TP_OP(nm)                                                              \
    {                                                                          \
        .size = sizeof(weir_operator), .name = nm, .version = "0.0.1",         \
        .open = tp_open, .process = tp_process, .close = tp_close              \
    }

/* A plugin descriptor with the given NULL-terminated operator list. */
#define TP_PLUGIN(ops)                                                         \
    {                                                                          \
        WEIR_PLUGIN_INIT, .name = "test", .version = "0.0.1",                  \
                          .description = "test plugin", .operators = ops       \
    }

/* Defines weir_plugin_entry() returning &pl. */
#define TP_ENTRY(pl)                                                           \
    const weir_plugin *weir_plugin_entry(const weir_host_api *host)            \
    {                                                                          \
        return &pl;                                                            \
    }

#endif
