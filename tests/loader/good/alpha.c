/* A well-formed plugin with every parameter type, exact struct sizes and
 * default ports; its operators are declared out of name order. */
#include "../test_plugin.h"

static const char *const mode_choices[] = {"fast", "slow", NULL};

static const weir_param_def p_interval = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "interval",
    .type = WEIR_PARAM_DURATION,
    .default_value = "1s",
    .min = 10,
    .max = 3600000,
    .description = "Time between two records.",
};
static const weir_param_def p_mode = {
    .size = sizeof(weir_param_def),
    .name = "mode",
    .type = WEIR_PARAM_ENUM,
    .default_value = "fast",
    .choices = mode_choices,
    .description = "How hard to work.",
};
static const weir_param_def p_limit = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED | WEIR_PARAM_HAS_MIN,
    .name = "limit",
    .type = WEIR_PARAM_INT,
    .min = 1,
    .description = "Maximum number of records.",
};
static const weir_param_def p_ratio = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "ratio",
    .type = WEIR_PARAM_DOUBLE,
    .default_value = "0.5",
    .min = 0,
    .max = 1.5,
    .description = "Share of records kept.",
};
static const weir_param_def p_label = {
    .size = sizeof(weir_param_def),
    .name = "label",
    .type = WEIR_PARAM_STRING,
    .description = "Free text.",
};
static const weir_param_def p_verbose = {
    .size = sizeof(weir_param_def),
    .name = "verbose",
    .type = WEIR_PARAM_BOOL,
    .default_value = "false",
};
static const weir_param_def p_buffer = {
    .size = sizeof(weir_param_def),
    .name = "buffer",
    .type = WEIR_PARAM_SIZE,
    .default_value = "64KiB",
    .description = "Buffer size.",
};
static const weir_param_def p_extra = {
    .size = sizeof(weir_param_def),
    .name = "extra",
    .type = WEIR_PARAM_ANY,
    .description = "Anything.",
};
static const weir_param_def *const map_params[] = {
    &p_interval, &p_mode,   &p_limit, &p_ratio, &p_label,
    &p_verbose,  &p_buffer, &p_extra, NULL};

static const weir_operator op_map = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "alpha_map",
    .version = "1.2.0",
    .description = "Maps records (test plugin).",
    .params = map_params,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
};

static const char *const source_inputs[] = {"ignored", NULL};
static const weir_operator op_source = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "alpha_source",
    .version = "1.2.0",
    .description = "Generates records (test plugin).",
    .input_ports = source_inputs, /* ignored for a source */
    .snapshot_version = 3,
    .open = tp_open,
    .poll = tp_poll,
    .snapshot = tp_snapshot,
    .close = tp_close,
};

static const weir_operator *const ops[] = {&op_source, &op_map, NULL};

static const weir_plugin plugin = {
    WEIR_PLUGIN_INIT,   .name = "alpha",
    .version = "1.2.0", .description = "Alpha test plugin",
    .operators = ops,
};

TP_ENTRY(plugin)
