/*
 * mpjson.h - state bytes as JSON and back, for the offline state tools.
 *
 * State keys, map user keys and values are bytes. As JSON they are shown
 * as follows (and the same forms are read back by `weir state bootstrap`):
 *
 *   bytes as a key:   a JSON string when the bytes are valid UTF-8, else
 *                     {"$base64": "<standard base64 with padding>"}
 *   bytes as a value: when the bytes are exactly one msgpack object (no
 *                     byte left over), that object as JSON:
 *                       nil, bool, integers, float, str -> the JSON value
 *                       (a str that is not UTF-8 becomes {"$base64": ...})
 *                       array -> array; map -> object whose member names
 *                       are the str keys, other keys as their compact JSON
 *                       text (1 -> "1"); of duplicate keys the last stays
 *                       bin -> {"$base64": ...}
 *                       ext -> {"$ext": <type>, "$base64": ...}
 *                       integer above INT64_MAX -> {"$uint64": "<decimal>"}
 *                       float NaN or infinite -> {"$float": "nan" | "inf" |
 *                       "-inf"}
 *                     otherwise {"$base64": ...} (the marker of bytes that
 *                     are not msgpack).
 *
 * Reading JSON back as msgpack (mpj_to_msgpack) maps null, booleans,
 * integers, reals, strings, arrays and objects to their msgpack types, and
 * the marker objects above (objects with exactly those members) back to
 * bin, ext, the uint64 and the float. Nesting deeper than MPJ_MAX_DEPTH is
 * refused both ways (the bytes then show as base64).
 *
 * Ownership: functions returning json_t * return a new reference (NULL when
 * out of memory, or as documented); buffers returned through pointers are
 * malloc'ed and the caller's. Thread: reentrant.
 */
#ifndef WEIR_HOST_STATETOOL_MPJSON_H
#define WEIR_HOST_STATETOOL_MPJSON_H

#include <stddef.h>

#include <jansson.h>

#define MPJ_MAX_DEPTH 64

/* Standard base64 (RFC 4648, padded), NUL-terminated; NULL when out of
 * memory. */
char *mpj_base64_encode(const void *p, size_t n);

/* Decodes standard base64 (padding required, no whitespace) into *out
 * (*n bytes, NUL-terminated for convenience). Returns 0, WEIR_EINVAL for
 * text that is not base64, or WEIR_ENOMEM. */
int mpj_base64_decode(const char *s, size_t len, char **out, size_t *n);

/* {"$base64": ...} of the bytes. */
json_t *mpj_base64_marker(const void *p, size_t n);

/* The bytes as a key: a string when valid UTF-8, else the base64 marker. */
json_t *mpj_bytes(const void *p, size_t n);

/* The bytes as a value: their msgpack object as JSON, or the base64 marker
 * when they are not exactly one msgpack object. */
json_t *mpj_value(const void *p, size_t n);

/* The JSON of one msgpack object, or NULL when the bytes are not exactly
 * one msgpack object (or when out of memory). */
json_t *mpj_from_msgpack(const void *p, size_t n);

/*
 * Encodes `v` as msgpack into *out (*n bytes). Returns 0, WEIR_EINVAL with
 * a message naming the problem (a malformed marker object, nesting too
 * deep), or WEIR_ENOMEM.
 */
int mpj_to_msgpack(const json_t *v, char **out, size_t *n, char **errptr);

/*
 * The bytes a JSON key stands for: a string as its UTF-8 bytes, an integer
 * as its decimal text (as file_source makes a numeric key field a key), a
 * base64 marker as the bytes it holds. Returns 0 with *out / *n, or
 * WEIR_EINVAL with a message for any other JSON (reals included: their text
 * is ambiguous), or WEIR_ENOMEM.
 */
int mpj_key_bytes(const json_t *v, char **out, size_t *n, char **errptr);

/*
 * How the tools show a state value (and read one back):
 *   MPJ_MSGPACK  mpj_value() above; read back with mpj_to_msgpack();
 *   MPJ_INT64    8 bytes as a big-endian signed integer (what `count`
 *                stores), other lengths as the base64 marker; read back
 *                from a JSON integer;
 *   MPJ_BASE64   always the base64 marker; read back from the marker or a
 *                base64 string.
 */
typedef enum mpj_format {
    MPJ_MSGPACK = 0,
    MPJ_INT64 = 1,
    MPJ_BASE64 = 2
} mpj_format;

/* "msgpack", "int64" or "base64"; returns 0, or -1 for another name. */
int mpj_format_parse(const char *name, mpj_format *out);

/* The value bytes as JSON in format f. */
json_t *mpj_value_as(const void *p, size_t n, mpj_format f);

/* The bytes of a JSON value in format f, into *out (malloc'ed) and *n.
 * Returns 0, WEIR_EINVAL with a message (a JSON type the format cannot
 * take, bad base64, ...) or WEIR_ENOMEM. */
int mpj_value_from(const json_t *v, mpj_format f, char **out, size_t *n,
                   char **errptr);

#endif
