/*
 * fake_params.h - operator parameters for the fake host of enrich_probe
 * (th.c): the test-side,
 * deliberately simple stand-in for the host's validation (host/topology).
 * Values are given as text; unknown names, missing required values, values
 * that do not parse for their type or are out of range are refused with a
 * "config.NAME: ..." message.
 */
#ifndef WEIR_TESTS_FAKE_PARAMS_H
#define WEIR_TESTS_FAKE_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "weir/weir.h"

/* One parameter's value, as the fake host's param_* services read it. */
typedef struct fp_value {
    const weir_param_def *def;
    int set;
    int b;
    int64_t i;
    double d;
    char *s; /* exactly s_len bytes, no NUL (ANY: what `any` made of it) */
    size_t s_len;
} fp_value;

/* A parameter given to a fake host: name and text. */
typedef struct fp_param {
    const char *name;
    const char *value;
} fp_param;

/* Turns the text of an ANY parameter into the bytes handed to the plugin
 * (malloc'ed, *len bytes); NULL keeps the text itself. */
typedef void *(*fp_any_fn)(const char *text, size_t *len);

/* Parses `text` as a value of def's type into v; returns NULL, or why not
 * ("not an integer", "below the minimum", ...). */
const char *fp_parse(const weir_param_def *def, const char *text, fp_any_fn any,
                     fp_value *v);

/* Builds the values of every parameter of `op` from `params` (terminated by
 * a NULL name) and the defaults: *vals gets n_params entries. Returns 0, or
 * WEIR_EINVAL with the reason in `error`. */
int fp_validate(const weir_operator *op, const fp_param *params, fp_any_fn any,
                fp_value **vals, size_t *n_vals, char *error, size_t error_len);

/* The value of parameter `name`: *rc 0, or WEIR_ENOTFOUND (unset, or no
 * such parameter) with NULL returned. */
const fp_value *fp_find(const fp_value *vals, size_t n, const char *name,
                        int *rc);

void fp_free(fp_value *vals, size_t n);

#endif
