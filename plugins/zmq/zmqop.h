/*
 * zmqop.h - what the operators of the zmq plugin share: their descriptors
 * (zmq.c exports them in one plugin) and the reading of their common
 * parameters. Internal to the zmq plugin.
 *
 * Errors: the functions return 0 or a negative WEIR_E* code after
 * weir_set_error() with "OP: parameter NAME: reason". Strings they return
 * are malloc'ed and NUL-terminated; the caller frees them. Thread: the
 * callback's.
 */
#ifndef WEIR_PLUGINS_ZMQ_ZMQOP_H
#define WEIR_PLUGINS_ZMQ_ZMQOP_H

#include "weir/weir.h"

extern const weir_operator zsrc_operator; /* zmq_source, zsource.c */
extern const weir_operator zsnk_operator; /* zmq_sink, zsink.c */

/* Copies string parameter `name`; *out is NULL when it is unset. An empty
 * value or one with a NUL byte is refused. */
int zmqop_string(weir_ctx *ctx, const char *op, const char *name, char **out);

/* The index in `choices` (NULL-terminated) of enum parameter `name`. */
int zmqop_enum(weir_ctx *ctx, const char *op, const char *name,
               const char *const *choices, int *index);

/* The `endpoint` parameter with every "{subtask}" replaced by the subtask
 * index; *placeholder (if not NULL) tells whether there was one. */
int zmqop_endpoint(weir_ctx *ctx, const char *op, char **out, int *placeholder);

#endif
