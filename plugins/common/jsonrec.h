/*
 * jsonrec.h - records from JSON objects and msgpack maps, and record values
 * as JSON, shared by the bundled plugins (file_source, file_sink, zmq,
 * stdin, kafka). Plugins include it next to the SDK headers and build
 * ../common/jsonrec.c (JSON in; needs jansson) and/or ../common/jsonrec_out.c
 * (JSON out; no JSON library) into their own .so.
 *
 * A message or line becomes a record the way file_source makes one of a
 * line:
 *   key   = the value of key_field: a string (or bin) as its bytes, an
 *           integer as its decimal text, a real in the shortest "%.17g"
 *           form that reads back to the same double;
 *   ts    = the value of time_field: integer milliseconds (a real without
 *           fraction is accepted) or an ISO-8601 string
 *           "YYYY-MM-DDThh:mm:ss[.fff][Z|+hh:mm|-hh:mm]" (no zone = UTC);
 *           WEIR_TS_NONE without time_field;
 *   id    = the value of id_field, as the key is made (zmq_source's
 *           deduplication);
 *   value = the map itself (msgpack), or for JSON the object packed as
 *           msgpack with key order kept (objects -> maps, arrays -> arrays,
 *           integers -> int, reals -> float64, strings -> str,
 *           true/false -> bool, null -> nil).
 *
 * Errors: unless stated otherwise, functions that can fail return 0 or -1
 * and write a one-line English reason into `why` (JREC_WHY bytes). No
 * function keeps state between calls except in the buffers the caller
 * passes; any thread.
 */
#ifndef WEIR_PLUGINS_JSONREC_H
#define WEIR_PLUGINS_JSONREC_H

#include <stddef.h>
#include <stdint.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

#define JREC_WHY       320
#define JREC_MAX_DEPTH 32 /* msgpack-c unpacks at most 32 nested levels */

/* Which fields make the record; NULL names are unset. */
typedef struct jrec_fields {
    const char *key_field; /* NUL-terminated, or NULL: empty key */
    const char *time_field;
    const char *id_field;
} jrec_fields;

/* What jrec_extract() found. The pointers point into the object or into
 * `buf`, and live as long as both. */
typedef struct jrec_out {
    const char *key;
    size_t key_len;
    int64_t ts;
    const char *id; /* NULL without id_field */
    size_t id_len;
    char buf[2][40]; /* decimal text of a numeric key and id */
} jrec_out;

struct json_t; /* jansson's value; only jsonrec.c needs jansson */

/* Packs the jansson value v as msgpack into pk (the value rules above),
 * counting `depth` containers already open around it. Returns WEIR_OK,
 * WEIR_EINVAL when containers nest deeper than JREC_MAX_DEPTH, or
 * WEIR_ENOMEM when packing fails (the packer ran out of memory). */
int jrec_pack_json(msgpack_packer *pk, struct json_t *v, int depth);

/* The English name of the type of jansson value v ("an object", "a string",
 * "null", ...), a static string. */
const char *jrec_json_type(const struct json_t *v);

/* Writes into buf (size bytes) the shortest "%.*g" text of d that reads
 * back as d. */
void jrec_format_real(char *buf, size_t size, double d);

/* Packs the JSON text p[0..len) into pk when it is one JSON object.
 * Fails for invalid JSON, another kind of value, or nesting deeper than
 * JREC_MAX_DEPTH. */
int jrec_json_to_mp(const char *p, size_t len, msgpack_packer *pk, char *why);

/* Reads key, time and id of the msgpack map `map` as configured. Fails when
 * `map` is not a map or a configured field is missing or ill-typed. */
int jrec_extract(const msgpack_object *map, const jrec_fields *f, jrec_out *out,
                 char *why);

/* Reads a field value as key text (see above) into p and len, using tmp for
 * numbers. Fails (reason in why, naming `what` and `field`) for other
 * types. */
int jrec_as_text(const msgpack_object *v, const char *what, const char *field,
                 char tmp[40], const char **p, size_t *len, char *why);

/* Parses an ISO-8601 timestamp (see above) into ms since the epoch. */
int jrec_parse_time(const char *s, size_t len, int64_t *out);

/* ---- jsonrec_out.c ---------------------------------------------------- */

/* A growable byte buffer whose appends cannot fail: running out of memory
 * sets `oom`, which the caller checks once per value; after that appends do
 * nothing. Zero-initialise it; jrec_buf_free() frees it and zeroes it. */
typedef struct jrec_buf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
} jrec_buf;

void jrec_put(jrec_buf *b, const void *p, size_t n);
void jrec_putc(jrec_buf *b, char c);
void jrec_puts(jrec_buf *b, const char *s);
void jrec_put_u64(jrec_buf *b, uint64_t v); /* decimal text */
void jrec_put_i64(jrec_buf *b, int64_t v);
void jrec_buf_free(jrec_buf *b);

/* Returns 1 when s[0..n) is valid UTF-8 (RFC 3629), else 0. */
int jrec_utf8_valid(const void *s, size_t n);

/* Appends s[0..n) as a quoted JSON string; invalid UTF-8 bytes become
 * U+FFFD. s may be NULL when n is 0. */
void jrec_json_string(jrec_buf *b, const void *s, size_t n);

/* Appends s[0..n) as a quoted base64 string (RFC 4648, padded). */
void jrec_json_base64(jrec_buf *b, const void *s, size_t n);

/* Appends the JSON text of msgpack object `o` to b: maps -> objects (a
 * non-string key becomes the JSON text of the key), arrays -> arrays,
 * integers (full uint64/int64 range), floats in the shortest form that
 * reads back (NaN and infinities -> null), strings (invalid UTF-8 bytes ->
 * U+FFFD), bin and ext -> base64 strings, nil/bool -> null/true/false.
 * Recursion is bounded by msgpack-c's unpacker (at most 32 levels). */
void jrec_mp_to_json(jrec_buf *b, const msgpack_object *o);

/* Appends the JSON text of the msgpack bytes data[0..n) without unpacking
 * them, exactly as jrec_mp_to_json() writes msgpack-c's unpacking of them,
 * when they are one complete object (nothing after it) whose maps have only
 * str keys and whose containers nest at most 16 deep. Returns 1 when it
 * wrote it, else 0 with b as it was: the caller then unpacks the bytes
 * (which may still be valid) and uses jrec_mp_to_json(). Running out of
 * memory sets b->oom, as for the other appends. */
int jrec_mp_bytes_to_json(jrec_buf *b, const void *data, size_t n);

#endif
