/*
 * topotest.c - operators that exist only to exercise topology validation:
 * every parameter type with ranges, keyed and source flags, several ports,
 * a sink without outputs, and two operators with broken defaults. Their
 * callbacks do nothing; the topology tests never run them.
 */
#include <stddef.h>

#include "weir/weir.h"

static int tt_open(weir_ctx *ctx, void **self)
{
    (void)ctx;
    *self = NULL;
    return WEIR_OK;
}

static void tt_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    (void)self;
}

static int tt_process(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port)
{
    (void)ctx;
    (void)self;
    (void)rec;
    (void)port;
    return WEIR_OK;
}

static int tt_poll(weir_ctx *ctx, void *self)
{
    (void)ctx;
    (void)self;
    return WEIR_EOF;
}

#define PARAM(...)                                                             \
    {                                                                          \
        .size = sizeof(weir_param_def), __VA_ARGS__                            \
    }
#define MINMAX (WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX)

/* --- test_source: a source with a required-free table --- */
static const weir_param_def src_rate =
    PARAM(.name = "rate", .type = WEIR_PARAM_INT, .default_value = "0",
          .flags = WEIR_PARAM_HAS_MIN, .min = 0, .description = "records/s");
static const weir_param_def src_key =
    PARAM(.name = "key_field", .type = WEIR_PARAM_STRING,
          .default_value = "user", .description = "field that is the key");
static const weir_param_def *const src_params[] = {&src_rate, &src_key, NULL};
static const weir_operator op_source = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "test_source",
    .version = "1",
    .description = "test source",
    .params = src_params,
    .open = tt_open,
    .poll = tt_poll,
    .close = tt_close,
};

/* --- test_source2: two outputs and an ANY parameter with a default --- */
static const char *const src2_outputs[] = {"out", "errors", NULL};
static const weir_param_def src2_extra =
    PARAM(.name = "extra", .type = WEIR_PARAM_ANY,
          .default_value = "{a: 1, b: [x, 2.5, true, null]}",
          .description = "anything");
static const weir_param_def *const src2_params[] = {&src2_extra, NULL};
static const weir_operator op_source2 = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "test_source2",
    .output_ports = src2_outputs,
    .params = src2_params,
    .open = tt_open,
    .poll = tt_poll,
    .close = tt_close,
};

/* --- test_map: one parameter of every type --- */
static const char *const map_modes[] = {"fast", "safe", "slow", NULL};
static const weir_param_def map_flag =
    PARAM(.name = "flag", .type = WEIR_PARAM_BOOL, .default_value = "false",
          .description = "a flag");
static const weir_param_def map_count =
    PARAM(.name = "count", .type = WEIR_PARAM_INT, .default_value = "10",
          .flags = MINMAX, .min = 1, .max = 100, .description = "1..100");
static const weir_param_def map_ratio =
    PARAM(.name = "ratio", .type = WEIR_PARAM_DOUBLE, .default_value = "0.5",
          .flags = MINMAX, .min = 0, .max = 1, .description = "0..1");
static const weir_param_def map_name =
    PARAM(.name = "name", .type = WEIR_PARAM_STRING, .description = "a name");
static const weir_param_def map_window =
    PARAM(.name = "window", .type = WEIR_PARAM_DURATION, .default_value = "10s",
          .flags = MINMAX, .min = 1, .max = 7 * 86400000.0,
          .description = "1ms..7d");
static const weir_param_def map_buffer =
    PARAM(.name = "buffer", .type = WEIR_PARAM_SIZE, .default_value = "4MiB",
          .flags = MINMAX, .min = 1024, .max = 1073741824.0,
          .description = "1KiB..1GiB");
static const weir_param_def map_mode =
    PARAM(.name = "mode", .type = WEIR_PARAM_ENUM, .default_value = "safe",
          .choices = map_modes, .description = "fast|safe|slow");
static const weir_param_def map_extra =
    PARAM(.name = "extra", .type = WEIR_PARAM_ANY, .description = "anything");
static const weir_param_def *const map_params[] = {
    &map_flag,   &map_count, &map_ratio, &map_name, &map_window,
    &map_buffer, &map_mode,  &map_extra, NULL};
static const weir_operator op_map = {
    .size = sizeof(weir_operator),
    .name = "test_map",
    .params = map_params,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_count: keyed --- */
static const weir_param_def count_ttl =
    PARAM(.name = "ttl", .type = WEIR_PARAM_DURATION, .default_value = "1h",
          .flags = WEIR_PARAM_HAS_MIN, .min = 1, .description = "state TTL");
static const weir_param_def *const count_params[] = {&count_ttl, NULL};
static const weir_operator op_count = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "test_count",
    .params = count_params,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_join: two inputs, two outputs, no parameters --- */
static const char *const join_inputs[] = {"left", "right", NULL};
static const char *const join_outputs[] = {"matched", "unmatched", NULL};
static const weir_operator op_join = {
    .size = sizeof(weir_operator),
    .name = "test_join",
    .input_ports = join_inputs,
    .output_ports = join_outputs,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_sink: no output ports --- */
static const char *const no_ports[] = {NULL};
static const weir_operator op_sink = {
    .size = sizeof(weir_operator),
    .name = "test_sink",
    .output_ports = no_ports,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_required: two required parameters --- */
static const weir_param_def req_path =
    PARAM(.name = "path", .type = WEIR_PARAM_STRING,
          .flags = WEIR_PARAM_REQUIRED, .description = "file to write");
static const weir_param_def req_level =
    PARAM(.name = "level", .type = WEIR_PARAM_INT, .flags = WEIR_PARAM_REQUIRED,
          .description = "compression level");
static const weir_param_def *const req_params[] = {&req_path, &req_level, NULL};
static const weir_operator op_required = {
    .size = sizeof(weir_operator),
    .name = "test_required",
    .params = req_params,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_bad_default: a default with a unit that does not exist --- */
static const weir_param_def bad_window =
    PARAM(.name = "window", .type = WEIR_PARAM_DURATION, .default_value = "10x",
          .description = "broken default");
static const weir_param_def *const bad_params[] = {&bad_window, NULL};
static const weir_operator op_bad_default = {
    .size = sizeof(weir_operator),
    .name = "test_bad_default",
    .params = bad_params,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

/* --- test_bad_range: a default outside its own range --- */
static const weir_param_def badr_level =
    PARAM(.name = "level", .type = WEIR_PARAM_INT, .default_value = "500",
          .flags = MINMAX, .min = 0, .max = 100, .description = "0..100");
static const weir_param_def *const badr_params[] = {&badr_level, NULL};
static const weir_operator op_bad_range = {
    .size = sizeof(weir_operator),
    .name = "test_bad_range",
    .params = badr_params,
    .open = tt_open,
    .process = tt_process,
    .close = tt_close,
};

static const weir_operator *const operators[] = {
    &op_source, &op_source2,  &op_map,         &op_count,     &op_join,
    &op_sink,   &op_required, &op_bad_default, &op_bad_range, NULL};

static const weir_plugin plugin = {
    WEIR_PLUGIN_INIT,       .name = "topotest",
    .version = "1.0",       .description = "operators for the topology tests",
    .operators = operators,
};

WEIR_EXPORT const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    (void)host;
    return &plugin;
}
