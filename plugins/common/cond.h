/*
 * cond.h - field conditions on msgpack records, the predicate language the
 * bundled rule operators share (pattern's `where`, rules' predicates).
 * Plugins compile cond.c next to their own sources; it needs only the SDK
 * headers and msgpack-c.
 *
 * A predicate (a `where`) is a non-empty map of `field: condition`, all of
 * which must hold. A condition is a scalar (the field equals it) or a map
 * of operators, all of which must hold:
 *   eq, ne, lt, le, gt, ge   a scalar (lt .. ge: a number or a string)
 *   in                       a non-empty list of scalars (equals one)
 *   prefix                   a string the field's string value starts with
 * Fields are top-level fields of the record value (a msgpack map).
 * Comparisons: numbers numerically (integers and floats mix), strings
 * bytewise, booleans and nil only by eq, ne and in; values of different
 * kinds are unequal and unordered. A condition on a missing field is
 * false, whatever the operator (ne included); so is prefix on a value that
 * is not a string.
 *
 * Durations (cond_parse_duration) are strings with a unit (250ms, 10s, 5m,
 * 2h, 7d), digits alone (ms) or non-negative integers (ms), at most
 * INT64_MAX / 4 ms.
 *
 * Thread: everything is reentrant; a predicate is read-only once parsed.
 */
#ifndef WEIR_PLUGINS_COND_H
#define WEIR_PLUGINS_COND_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cond_op {
    COND_EQ,
    COND_NE,
    COND_LT,
    COND_LE,
    COND_GT,
    COND_GE,
    COND_IN,
    COND_PREFIX
} cond_op;

/* One condition: field op value. `val` points into the parsed tree. */
typedef struct cond {
    const char *field;
    size_t field_len;
    cond_op op;
    const msgpack_object *val;
} cond;

typedef struct cond_pred {
    cond *conds;
    size_t n;
} cond_pred;

/*
 * Parses the predicate `w` (NULL when missing) into *out, which must be
 * zeroed. `where` names it in messages ("rule.steps[1]"), which are written
 * to why[0..why_len) as "<where>...: reason", e.g.
 *   rule.steps[1].page.between: unknown operator (expected eq, ne, lt, le,
 *   gt, ge, in, prefix)
 * The predicate points into w's tree, which must outlive it. Returns 0,
 * WEIR_EINVAL or WEIR_ENOMEM; on failure *out may hold conditions already
 * parsed (cond_pred_free() releases them).
 */
int cond_parse(const msgpack_object *w, const char *where, cond_pred *out,
               char *why, size_t why_len);
void cond_pred_free(cond_pred *p);

/* Whether predicate p holds for the record value `map` (a map object, or
 * NULL when the value is not a map: then nothing holds). */
int cond_eval(const cond_pred *p, const msgpack_object *map);

/* The top-level field `name` of `map`, or NULL. */
const msgpack_object *cond_field(const msgpack_object *map, const char *name,
                                 size_t len);

/* Whether two scalars are equal under the rules above. */
int cond_equal(const msgpack_object *a, const msgpack_object *b);

/* 0 and *ms for a duration (see above), or -1. */
int cond_parse_duration(const msgpack_object *o, int64_t *ms);

/* "a string", "an integer", ... for messages. */
const char *cond_kind_name(const msgpack_object *o);

/* Whether o is the string s. */
int cond_str_is(const msgpack_object *o, const char *s);

/* Whether o is nil, a boolean, a number or a string. */
int cond_is_scalar(const msgpack_object *o);

/* The value of key `name` in map `m` (a map object), or NULL. */
const msgpack_object *cond_get(const msgpack_object *m, const char *name);

/* Checks that every key of map `m` is a string out of the NULL-terminated
 * `allowed`; on failure writes "<where>.<key>: unknown key (expected
 * <expected>)" (or that a key is not a string) to why and returns
 * WEIR_EINVAL. */
int cond_check_keys(const msgpack_object *m, const char *where,
                    const char *const *allowed, const char *expected, char *why,
                    size_t why_len);

#endif
