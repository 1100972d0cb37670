/*
 * kcommon.h - what kafka_source and kafka_sink share: librdkafka
 * configuration from the operator's parameters, msgpack -> JSON values and
 * key text of a field. JSON -> msgpack is jrec_pack_json()
 * (../common/jsonrec.h; JREC_MAX_DEPTH equals KC_MAX_DEPTH) and snapshot
 * integers are le_put_u64() and friends (../common/le.h).
 *
 * Threading: every function runs on the calling subtask's thread and keeps
 * no global state. Errors: functions returning int give 0 or a negative
 * WEIR_E* code and have already explained the failure with weir_set_error()
 * (naming the operator and, for configuration, the rdkafka key).
 */
#ifndef WEIR_PLUGINS_KCOMMON_H
#define WEIR_PLUGINS_KCOMMON_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "jsonrec.h"
#include "le.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

/* Nesting limit of values converted either way (msgpack-c unpacks at most
 * 32 nested levels). */
#define KC_MAX_DEPTH 32

/*
 * Creates a librdkafka configuration for operator `op` ("kafka_source"):
 * bootstrap.servers from the `brokers` parameter, then `defaults` (pairs of
 * key and value, NULL-terminated; the user's `rdkafka` map may override
 * them), then every entry of the `rdkafka` parameter (a map whose values are
 * strings, numbers or booleans; each is passed to rd_kafka_conf_set() as
 * text), then `forced` (pairs the connector owns; a NULL value reserves the
 * key without setting it). A key of `forced`, or
 * bootstrap.servers, in the user's map is refused. On success *out is a
 * configuration the caller owns (rd_kafka_new() takes it).
 */
int kc_conf_new(weir_ctx *ctx, const char *op, const char *const *defaults,
                const char *const *forced, rd_kafka_conf_t **out);

/* Sets one key; the message names `op` and `key`. */
int kc_conf_set(weir_ctx *ctx, const char *op, rd_kafka_conf_t *conf,
                const char *key, const char *value);

/* Copies string parameter `name` as a NUL-terminated string. When unset
 * without default, *out is NULL and the call succeeds if `optional`. */
int kc_param_str(weir_ctx *ctx, const char *op, const char *name, int optional,
                 char **out);

/* A new JSON value for a msgpack object: maps -> objects (a non-string key
 * becomes its JSON text), str/bin -> strings (base64 when not UTF-8), ext ->
 * base64, NaN/inf -> null. NULL when out of memory or nested too deep. */
json_t *kc_mp_to_json(const msgpack_object *o, int depth);

/* The text of a key taken from a field: a string as is, an integer in
 * decimal, a real in the shortest form that reads back exactly. Returns -1
 * for other types. The bytes live in `buf` (at least 40 bytes) or in the
 * object. */
int kc_field_text(const msgpack_object *o, char *buf, size_t size,
                  const char **p, size_t *n);

#endif /* WEIR_PLUGINS_KCOMMON_H */
