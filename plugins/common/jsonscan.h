/*
 * jsonscan.h - the fast path of JSON text to msgpack: one JSON object is
 * converted in a single pass over its text, without building a document,
 * when it lies in a common subset of JSON; the caller converts anything
 * else with jrec_json_to_mp() / jansson (jsonrec.h), which also gives the
 * error messages. Plugins build ../common/jsonscan.c into their own .so; it
 * needs no JSON library.
 *
 * The subset: the text is one object (whitespace " \t\n\r" around tokens)
 * whose strings, keys included, hold no escape sequence and no control
 * character, only printable ASCII and valid UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF); whose integers have at most
 * 18 digits; whose reals read back with strtod() without a range error; in
 * which no object repeats a key; which nests at most JREC_MAX_DEPTH (32)
 * containers and has at most JSCAN_MAX_KEYS keys in the objects open at any
 * point. For such text the msgpack produced is byte for byte what
 * jrec_json_to_mp() produces (the value rules of jsonrec.h; jansson keeps
 * key order). Any other text, valid JSON or not, is left to the full parser.
 *
 * No state between calls; any thread.
 */
#ifndef WEIR_PLUGINS_JSONSCAN_H
#define WEIR_PLUGINS_JSONSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "weir/msgpack.h"

#define JSCAN_MAX_KEYS 256

/* Types of a top-level field, as found. */
#define JSCAN_ABSENT 0 /* no such field */
#define JSCAN_STR    1 /* a string: s[0..len) in the text */
#define JSCAN_INT    2 /* an integer: i */
#define JSCAN_REAL   3 /* a real: d */
#define JSCAN_OTHER  4 /* an object, array, boolean or null */

/* A top-level field the caller wants: `name` (name_len bytes, or NULL for
 * none) is input, the rest is output. */
typedef struct jscan_field {
    const char *name;
    size_t name_len;
    int type;
    const char *s;
    size_t len;
    int64_t i;
    double d;
} jscan_field;

/*
 * Converts the JSON text p[0..len) into msgpack appended to w->buf (the
 * caller resets it first) and fills the nf fields of f. Returns 1 when the
 * text is in the subset above and was converted, 0 when it is not (or
 * memory ran out): then the contents of w->buf and f are unspecified and the
 * caller uses the full parser.
 */
int jscan_json_to_mp(const char *p, size_t len, weir_mp_writer *w,
                     jscan_field *f, size_t nf);

#endif
