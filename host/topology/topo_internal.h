/*
 * topo_internal.h - what the files of the topology subsystem share; not for
 * use outside host/topology/.
 *
 *   ytree.c   YAML text -> a tree of nodes (libyaml events), with the
 *             limits of topology.h, duplicate-key and alias checks, and
 *             YAML 1.2 core-schema typing of scalars.
 *   params.c  one value or a mapping of values against a weir_param_def
 *             table; units; the host section tables; "did you mean" hints.
 *   topology.c the job model: keys, operators, inputs, graph checks, order.
 *
 * Error messages: every function that takes `file` formats its message as
 * "FILE:LINE:COLUMN: PATH: what[; hint]"; with file == NULL the position is
 * left out ("PATH: what"), and with path == NULL the path is.
 */
#ifndef WEIR_HOST_TOPO_INTERNAL_H
#define WEIR_HOST_TOPO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "topology/topology.h"

/* ------------------------------------------------------------------------ */
/* YAML tree (ytree.c)                                                       */
/* ------------------------------------------------------------------------ */

typedef enum topo_ykind {
    TOPO_YSCALAR = 0,
    TOPO_YSEQ = 1,
    TOPO_YMAP = 2
} topo_ykind;

/* The type of a scalar under the YAML 1.2 core schema. Quoted, literal and
 * folded scalars, and scalars tagged !!str or !, are always strings. */
typedef enum topo_ytype {
    TOPO_YNULL = 0,
    TOPO_YBOOL = 1,
    TOPO_YINT = 2,
    TOPO_YFLOAT = 3,
    TOPO_YSTR = 4
} topo_ytype;

/* How an integer scalar fits: in int64 (`i`), only in uint64 (`u`), or in
 * neither. */
#define TOPO_YINT_OK   0
#define TOPO_YINT_U64  1
#define TOPO_YINT_HUGE 2

typedef struct topo_ynode topo_ynode;
struct topo_ynode {
    topo_ykind kind;
    int line, col; /* 1-based position of the node's first character */
    /* Scalars: the text, NUL-terminated (it may contain NULs; use len). */
    const char *str;
    size_t len;
    int quoted; /* not a plain scalar */
    topo_ytype type;
    int b;         /* TOPO_YBOOL */
    int int_range; /* TOPO_YINT: TOPO_YINT_* */
    int64_t i;     /* TOPO_YINT with TOPO_YINT_OK */
    uint64_t u;    /* TOPO_YINT with TOPO_YINT_U64 */
    double d;      /* TOPO_YFLOAT */
    /* Sequences: n items. Mappings: keys and values interleaved, so n is
     * twice the number of pairs; keys are scalars and unique. A node
     * reached through an alias is shared, not copied. */
    topo_ynode **kids;
    size_t n;
    uint32_t height; /* levels of collections in this subtree (scalar: 0) */
    uint64_t weight; /* nodes in this subtree with aliases expanded */
};

typedef struct topo_ydoc topo_ydoc;

/* Parses one YAML document. On success *out owns every node; *root is the
 * document's root, or NULL when the stream holds no document. `file` names
 * the input in messages (NULL: messages carry no position). Refuses
 * multiple documents, duplicate keys, non-scalar keys, undefined aliases,
 * nesting deeper than TOPO_MAX_DEPTH and more than TOPO_MAX_NODES nodes
 * (aliases expanded), unsupported tags, and whatever libyaml refuses. */
int topo_yparse(const char *file, const char *buf, size_t len, topo_ydoc **out,
                const topo_ynode **root, char **errptr);
void topo_yfree(topo_ydoc *doc);

/* Types a plain scalar `n` (str/len set) under the core schema. */
void topo_yresolve_plain(topo_ynode *n);

/* The value of `key` in mapping `map`, or NULL. */
const topo_ynode *topo_ymap_get(const topo_ynode *map, const char *key);

/* "a list", "a mapping", "null", "the string 'x'", "the integer 5", ... */
const char *topo_ydescribe(const topo_ynode *n, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Messages and hints                                                        */
/* ------------------------------------------------------------------------ */

/* Stores "FILE:LINE:COL: PATH: message" (see the top of this file) in
 * *errptr and returns WEIR_EINVAL. */
WEIR_PRINTF(6, 7)
int topo_err(char **errptr, const char *file, int line, int col,
             const char *path, const char *fmt, ...);

/*
 * Collecting errors (topo_check_file()). The loader's checks keep storing
 * their message in *errptr; after a check fails, its caller passes the
 * result through topo_collect_note(), which decides whether to go on.
 * With a collector, errptr is &c->cur.
 */
typedef struct topo_collect {
    topo_errors *errs;
    const char *file;
    char *cur; /* the message of the check that just failed */
} topo_collect;

/* After a check returned rc with its message in *errptr: when `c` is NULL
 * (stop at the first error) or rc is not WEIR_EINVAL, returns rc
 * unchanged. Otherwise moves the message (when there is one: a check that
 * collected its own errors returns WEIR_EINVAL with none) into c->errs and
 * returns 0, so that the caller goes on with the next independent check;
 * it returns WEIR_EINVAL once TOPO_MAX_ERRORS are collected (truncated is
 * set), and WEIR_ENOMEM when the list cannot grow. rc >= 0 is returned
 * as it is. */
int topo_collect_note(topo_collect *c, int rc, char **errptr);

/* Appends `msg` (taken over) to errs, splitting position and field off
 * `file`:LINE:COL: FIELD: ... Returns 0 or WEIR_ENOMEM (msg is freed). */
int topo_errors_add(topo_errors *errs, const char *file, char *msg);

/* Writes `s` (len bytes) into buf for a message: bytes outside printable
 * ASCII become \xNN and text past 60 characters is cut with "...". Returns
 * buf. */
const char *topo_quote(const char *s, size_t len, char *buf, size_t cap);
#define TOPO_QUOTE_MAX 256

/* The candidate closest to `word` by edit distance, when it is at most
 * max(2, len / 3); NULL otherwise. */
const char *topo_suggest(const char *word, size_t len, const char *const *cands,
                         size_t n);

/* The hint for a key "<<" (a YAML 1.1 merge key, which YAML 1.2 and Weir
 * do not have), or NULL for any other key. */
const char *topo_merge_hint(const char *key, size_t len);

/* Formats ms as the largest exact unit ("10s", "1500ms", "7d") and bytes
 * likewise ("64MiB", "1000B"). */
void topo_fmt_duration(int64_t ms, char *buf, size_t cap);
void topo_fmt_size(int64_t bytes, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Values (params.c)                                                         */
/* ------------------------------------------------------------------------ */

/* Checks node `n` against `def` and fills `v` (def, is_set, value, mp,
 * line/col). Errors name `path`. On failure `v` may hold partial results:
 * release it with topo_value_clear(). */
int topo_value_from_node(const char *file, const char *path,
                         const weir_param_def *def, const topo_ynode *n,
                         topo_value *v, char **errptr);
void topo_value_clear(topo_value *v);

/* Who owns a parameter table, for messages about bad defaults: e.g.
 * "operator type 'count'" for a plugin, NULL for the host. */
typedef struct topo_owner {
    const char *what;
} topo_owner;

/* Validates mapping `map` (NULL or a null scalar: empty) against defs and
 * fills *out with one value per def: the given one, else the default.
 * With a collector `coll` it reports every unknown key, bad value and
 * missing parameter through topo_collect_note() and then returns
 * WEIR_EINVAL with no message; without (NULL), it stops at the first.
 * `path` is the mapping's field path ("operators[1].config"); `line`/`col`
 * is where a missing required parameter is reported; `keyword` is the
 * noun for unknown keys ("parameter", "key"). */
int topo_params_build(const char *file, const char *path, int line, int col,
                      const weir_param_def *const *defs, size_t n_defs,
                      const topo_ynode *map, const topo_owner *owner,
                      const char *keyword, topo_collect *coll, topo_params *out,
                      char **errptr);

/* ------------------------------------------------------------------------ */
/* String -> index map (ytree.c)                                             */
/* ------------------------------------------------------------------------ */

typedef struct topo_strmap_slot {
    const char *key; /* borrowed */
    size_t len;
    uintptr_t val;
} topo_strmap_slot;

typedef struct topo_strmap {
    topo_strmap_slot *slots;
    size_t cap, n;
} topo_strmap;

/* Inserts or replaces; the key is borrowed and must outlive the map.
 * Returns 0 or WEIR_ENOMEM. */
int topo_strmap_put(topo_strmap *m, const char *key, size_t len, uintptr_t val);
/* Returns 1 and *val when found, else 0. */
int topo_strmap_get(const topo_strmap *m, const char *key, size_t len,
                    uintptr_t *val);
void topo_strmap_free(topo_strmap *m);

#endif
