/* A plugin as built against a newer minor version: every descriptor is
 * embedded in a larger struct whose size it declares, with non-zero fields
 * the host does not know. The host must accept it and read only the part
 * it knows. */
#include "../test_plugin.h"

typedef struct big_param {
    weir_param_def base;
    uint64_t future_a;
    const char *future_b;
} big_param;

typedef struct big_operator {
    weir_operator base;
    int (*future_cb)(weir_ctx *ctx, void *self);
    uint64_t future[4];
} big_operator;

typedef struct big_plugin {
    weir_plugin base;
    const char *future_a;
    uint64_t future_b;
} big_plugin;

static int big_future_cb(weir_ctx *ctx, void *self)
{
    return WEIR_OK;
}

static const big_param p_window = {
    .base =
        {
            .size = sizeof(big_param),
            .flags = WEIR_PARAM_REQUIRED,
            .name = "window",
            .type = WEIR_PARAM_DURATION,
            .description = "Window length.",
        },
    .future_a = 0xdeadbeefu,
    .future_b = "future",
};
static const weir_param_def *const params[] = {&p_window.base, NULL};

static const big_operator op_big = {
    .base =
        {
            .size = sizeof(big_operator),
            .flags = WEIR_OP_KEYED,
            .name = "big_op",
            .version = "9.9.9",
            .description = "Built against a newer minor.",
            .params = params,
            .open = tp_open,
            .process = tp_process,
            .finish = tp_poll,
            .close = tp_close,
        },
    .future_cb = big_future_cb,
    .future = {1, 2, 3, 4},
};
static const weir_operator *const ops[] = {&op_big.base, NULL};

static const big_plugin plugin = {
    .base =
        {
            .size = sizeof(big_plugin),
            .abi_major = WEIR_ABI_MAJOR,
            .abi_minor = WEIR_ABI_MINOR + 7,
            .name = "big",
            .version = "9.9.9",
            .description = "From the future",
            .operators = ops,
        },
    .future_a = "future",
    .future_b = 42,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    return &plugin.base;
}
