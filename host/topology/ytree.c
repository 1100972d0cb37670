/*
 * ytree.c - YAML text to a tree of topo_ynode, with the limits a hostile
 * file must not get past. Uses libyaml's event API (never its recursive
 * document loader), so nesting costs no C stack.
 *
 * Aliases are expanded by sharing: an alias adds a pointer to the anchored
 * node, and the expanded size of that node is charged to the node budget,
 * so a "billion laughs" file fails after reading a few lines, in time
 * proportional to its length.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <yaml.h>

#include "common/err.h"
#include "topology/topo_internal.h"

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */

#define YT_BLOCK 65536u
#define YT_ALIGN 16u

typedef struct yt_block {
    struct yt_block *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} yt_block;

struct topo_ydoc {
    yt_block *blocks;
};

static void *yt_alloc(topo_ydoc *d, size_t n)
{
    n = (n + YT_ALIGN - 1) & ~(size_t)(YT_ALIGN - 1);
    yt_block *b = d->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > YT_BLOCK ? n : YT_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = d->blocks;
        d->blocks = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static char *yt_strdup(topo_ydoc *d, const char *s, size_t len)
{
    char *p = yt_alloc(d, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void topo_yfree(topo_ydoc *doc)
{
    if (!doc)
        return;
    yt_block *b = doc->blocks;
    while (b) {
        yt_block *next = b->next;
        free(b);
        b = next;
    }
    free(doc);
}

/* ------------------------------------------------------------------------ */
/* String map                                                                */
/* ------------------------------------------------------------------------ */

static size_t sm_hash(const char *key, size_t len)
{
    return (size_t)XXH3_64bits(key, len);
}

static int sm_grow(topo_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    topo_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return WEIR_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        topo_strmap_slot *s = &m->slots[i];
        if (!s->key)
            continue;
        size_t j = sm_hash(s->key, s->len) & (cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int topo_strmap_put(topo_strmap *m, const char *key, size_t len, uintptr_t val)
{
    if ((m->n + 1) * 2 > m->cap && sm_grow(m) < 0)
        return WEIR_ENOMEM;
    size_t j = sm_hash(key, len) & (m->cap - 1);
    while (m->slots[j].key) {
        topo_strmap_slot *s = &m->slots[j];
        if (s->len == len && !memcmp(s->key, key, len)) {
            s->val = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (topo_strmap_slot){.key = key, .len = len, .val = val};
    m->n++;
    return 0;
}

int topo_strmap_get(const topo_strmap *m, const char *key, size_t len,
                    uintptr_t *val)
{
    if (!m->cap)
        return 0;
    size_t j = sm_hash(key, len) & (m->cap - 1);
    while (m->slots[j].key) {
        const topo_strmap_slot *s = &m->slots[j];
        if (s->len == len && !memcmp(s->key, key, len)) {
            *val = s->val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void topo_strmap_free(topo_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

/* ------------------------------------------------------------------------ */
/* Scalars: YAML 1.2 core schema                                             */
/* ------------------------------------------------------------------------ */

static int yt_is(const char *s, size_t len, const char *const *words)
{
    for (; *words; words++) {
        if (strlen(*words) == len && !memcmp(s, *words, len))
            return 1;
    }
    return 0;
}

static int yt_digit_val(char c, unsigned base)
{
    int v = -1;
    if (c >= '0' && c <= '9')
        v = c - '0';
    else if (c >= 'a' && c <= 'f')
        v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
        v = c - 'A' + 10;
    return v >= 0 && (unsigned)v < base ? v : -1;
}

/* Parses digits in `base` into *mag; returns 0 when s is not such a number,
 * 1 when it is and fits in uint64, 2 when it is and overflows. */
static int yt_parse_uint(const char *s, size_t len, unsigned base,
                         uint64_t *mag)
{
    if (!len)
        return 0;
    uint64_t v = 0;
    int over = 0;
    for (size_t k = 0; k < len; k++) {
        int d = yt_digit_val(s[k], base);
        if (d < 0)
            return 0;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            over = 1;
        else
            v = v * base + (uint64_t)d;
    }
    *mag = v;
    return over ? 2 : 1;
}

static int yt_resolve_int(topo_ynode *n)
{
    const char *s = n->str;
    size_t len = n->len;
    uint64_t mag = 0;
    int neg = 0, r;
    if (len > 2 && s[0] == '0' && s[1] == 'o')
        r = yt_parse_uint(s + 2, len - 2, 8, &mag);
    else if (len > 2 && s[0] == '0' && s[1] == 'x')
        r = yt_parse_uint(s + 2, len - 2, 16, &mag);
    else {
        size_t k = 0;
        if (len && (s[0] == '-' || s[0] == '+')) {
            neg = s[0] == '-';
            k = 1;
        }
        r = yt_parse_uint(s + k, len - k, 10, &mag);
    }
    if (!r)
        return 0;
    n->type = TOPO_YINT;
    if (r == 2)
        n->int_range = TOPO_YINT_HUGE;
    else if (neg && mag <= (uint64_t)INT64_MAX + 1)
        n->i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else if (neg)
        n->int_range = TOPO_YINT_HUGE;
    else if (mag <= (uint64_t)INT64_MAX)
        n->i = (int64_t)mag;
    else {
        n->int_range = TOPO_YINT_U64;
        n->u = mag;
    }
    return 1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int yt_is_float_syntax(const char *s, size_t len)
{
    size_t k = 0, digits = 0;
    if (k < len && (s[k] == '-' || s[k] == '+'))
        k++;
    while (k < len && s[k] >= '0' && s[k] <= '9')
        k++, digits++;
    if (k < len && s[k] == '.') {
        k++;
        while (k < len && s[k] >= '0' && s[k] <= '9')
            k++, digits++;
    }
    if (!digits)
        return 0;
    if (k < len && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < len && (s[k] == '-' || s[k] == '+'))
            k++;
        size_t e = 0;
        while (k < len && s[k] >= '0' && s[k] <= '9')
            k++, e++;
        if (!e)
            return 0;
    }
    return k == len;
}

static int yt_resolve_float(topo_ynode *n)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
    const char *s = n->str;
    size_t len = n->len;
    size_t k = len && (s[0] == '-' || s[0] == '+') ? 1 : 0;
    if (yt_is(s + k, len - k, inf)) {
        n->d = s[0] == '-' ? -INFINITY : INFINITY;
    } else if (yt_is(s, len, nan)) {
        n->d = NAN;
    } else if (yt_is_float_syntax(s, len)) {
        n->d = strtod(s, NULL); /* str is NUL-terminated */
    } else {
        return 0;
    }
    n->type = TOPO_YFLOAT;
    return 1;
}

void topo_yresolve_plain(topo_ynode *n)
{
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    n->quoted = 0;
    n->int_range = TOPO_YINT_OK;
    if (n->len == 0 || yt_is(n->str, n->len, nulls)) {
        n->type = TOPO_YNULL;
    } else if (yt_is(n->str, n->len, trues)) {
        n->type = TOPO_YBOOL;
        n->b = 1;
    } else if (yt_is(n->str, n->len, falses)) {
        n->type = TOPO_YBOOL;
        n->b = 0;
    } else if (!yt_resolve_int(n) && !yt_resolve_float(n)) {
        n->type = TOPO_YSTR;
    }
}

const topo_ynode *topo_ymap_get(const topo_ynode *map, const char *key)
{
    if (!map || map->kind != TOPO_YMAP)
        return NULL;
    size_t len = strlen(key);
    for (size_t k = 0; k + 1 < map->n; k += 2) {
        const topo_ynode *kn = map->kids[k];
        if (kn->len == len && !memcmp(kn->str, key, len))
            return map->kids[k + 1];
    }
    return NULL;
}

const char *topo_ydescribe(const topo_ynode *n, char *buf, size_t cap)
{
    char q[TOPO_QUOTE_MAX];
    if (n->kind == TOPO_YSEQ)
        return "a list";
    if (n->kind == TOPO_YMAP)
        return "a mapping";
    switch (n->type) {
    case TOPO_YNULL: return "null (an empty value)";
    case TOPO_YBOOL: snprintf(buf, cap, "the boolean %s", n->str); break;
    case TOPO_YINT: snprintf(buf, cap, "the integer %s", n->str); break;
    case TOPO_YFLOAT: snprintf(buf, cap, "the number %s", n->str); break;
    case TOPO_YSTR:
        snprintf(buf, cap, "the string '%s'",
                 topo_quote(n->str, n->len, q, sizeof q));
        break;
    }
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct yt_frame {
    topo_ynode *node;
    topo_ynode **kids; /* malloc'ed while open; moved to the arena at end */
    size_t n, cap;
    const char *anchor; /* arena copy, or NULL */
} yt_frame;

typedef struct yt_parser {
    const char *file;
    const char *buf;
    size_t len;
    char **errptr;
    topo_ydoc *doc;
    const topo_ynode *root;
    yt_frame frames[TOPO_MAX_DEPTH];
    size_t depth;
    topo_strmap anchors; /* name -> topo_ynode * */
    uint64_t nodes;
    int docs;
} yt_parser;

static int yt_err(yt_parser *p, const yaml_mark_t *m, const char *fmt, ...)
    WEIR_PRINTF(3, 4);

static int yt_err(yt_parser *p, const yaml_mark_t *m, const char *fmt, ...)
{
    char *msg = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(p->errptr, WEIR_ENOMEM, "out of memory");
    topo_err(p->errptr, p->file, (int)m->line + 1, (int)m->column + 1, NULL,
             "%s", msg);
    free(msg);
    return WEIR_EINVAL;
}

static int yt_nomem(yt_parser *p)
{
    return err_set(p->errptr, WEIR_ENOMEM, "%s: out of memory",
                   p->file ? p->file : "topology");
}

/* Line and column (1-based, in characters) of byte `off` of the input. */
static void yt_offset_pos(const yt_parser *p, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    if (off > p->len)
        off = p->len;
    for (size_t k = 0; k < off; k++) {
        unsigned char ch = (unsigned char)p->buf[k];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int yt_libyaml_err(yt_parser *p, const yaml_parser_t *yp)
{
    if (yp->error == YAML_MEMORY_ERROR)
        return yt_nomem(p);
    const char *problem = yp->problem ? yp->problem : "invalid YAML";
    if (yp->error == YAML_READER_ERROR) {
        int line, col;
        yt_offset_pos(p, yp->problem_offset, &line, &col);
        if (yp->problem_value != -1)
            return topo_err(
                p->errptr, p->file, line, col, NULL, "%s (byte 0x%02x)%s",
                problem, (unsigned)yp->problem_value & 0xffu,
                strstr(problem, "UTF-") ? "; the file must be UTF-8" : "");
        return topo_err(p->errptr, p->file, line, col, NULL, "%s", problem);
    }
    const yaml_mark_t *m = &yp->problem_mark;
    if (yp->context && yp->context_mark.line == m->line &&
        yp->context_mark.column == m->column)
        return yt_err(p, m, "%s (%s)", problem, yp->context);
    if (yp->context)
        return topo_err(
            p->errptr, p->file, (int)m->line + 1, (int)m->column + 1, NULL,
            "%s (%s started at line %d column %d)", problem, yp->context,
            (int)yp->context_mark.line + 1, (int)yp->context_mark.column + 1);
    return yt_err(p, m, "%s", problem);
}

static topo_ynode *yt_node(yt_parser *p, topo_ykind kind, const yaml_mark_t *m)
{
    topo_ynode *n = yt_alloc(p->doc, sizeof *n);
    if (!n)
        return NULL;
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    n->weight = 1;
    return n;
}

/* Charges `weight` nodes to the budget. */
static int yt_charge(yt_parser *p, uint64_t weight, const yaml_mark_t *m,
                     const char *alias)
{
    p->nodes += weight;
    if (p->nodes <= TOPO_MAX_NODES)
        return 0;
    if (alias)
        return yt_err(p, m,
                      "alias '*%s' expands the document past %u nodes "
                      "(an alias bomb?)",
                      alias, TOPO_MAX_NODES);
    return yt_err(p, m, "the document has more than %u nodes", TOPO_MAX_NODES);
}

/* Adds a finished node to the open collection, or makes it the root. */
static int yt_add(yt_parser *p, topo_ynode *n)
{
    if (p->depth == 0) {
        p->root = n;
        return 0;
    }
    yt_frame *f = &p->frames[p->depth - 1];
    if (f->node->kind == TOPO_YMAP && f->n % 2 == 0 &&
        n->kind != TOPO_YSCALAR) {
        topo_err(p->errptr, p->file, n->line, n->col, NULL,
                 "a mapping key must be a scalar, not %s",
                 n->kind == TOPO_YSEQ ? "a list" : "a mapping");
        return WEIR_EINVAL;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        topo_ynode **kids = realloc(f->kids, cap * sizeof *kids);
        if (!kids)
            return yt_nomem(p);
        f->kids = kids;
        f->cap = cap;
    }
    f->kids[f->n++] = n;
    return 0;
}

static int yt_register_anchor(yt_parser *p, const char *anchor, topo_ynode *n)
{
    if (!anchor)
        return 0;
    if (topo_strmap_put(&p->anchors, anchor, strlen(anchor), (uintptr_t)n) < 0)
        return yt_nomem(p);
    return 0;
}

/* Resolves a tag to a scalar type; 0 with *type set, or an error. */
static int yt_tag_type(yt_parser *p, const yaml_event_t *ev, topo_ynode *n)
{
    const char *tag = (const char *)ev->data.scalar.tag;
    const char *core = "tag:yaml.org,2002:";
    size_t clen = strlen(core);
    if (!tag) {
        if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            topo_yresolve_plain(n);
        else
            n->type = TOPO_YSTR;
        return 0;
    }
    if (!strcmp(tag, "!") || !strcmp(tag, "tag:yaml.org,2002:str")) {
        n->type = TOPO_YSTR;
        return 0;
    }
    char q[TOPO_QUOTE_MAX], q2[TOPO_QUOTE_MAX];
    if (strncmp(tag, core, clen) != 0)
        return yt_err(p, &ev->start_mark,
                      "unsupported tag '%s' (only the YAML core tags !!str, "
                      "!!int, !!float, !!bool and !!null)",
                      topo_quote(tag, strlen(tag), q, sizeof q));
    const char *want = tag + clen;
    topo_yresolve_plain(n);
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    int ok = (!strcmp(want, "int") && n->type == TOPO_YINT) ||
             (!strcmp(want, "float") &&
              (n->type == TOPO_YFLOAT || n->type == TOPO_YINT)) ||
             (!strcmp(want, "bool") && n->type == TOPO_YBOOL) ||
             (!strcmp(want, "null") && n->type == TOPO_YNULL);
    if (!ok)
        return yt_err(p, &ev->start_mark, "'%s' is not a valid !!%s",
                      topo_quote(n->str, n->len, q, sizeof q),
                      topo_quote(want, strlen(want), q2, sizeof q2));
    if (!strcmp(want, "float") && n->type == TOPO_YINT) {
        n->d = n->int_range == TOPO_YINT_OK    ? (double)n->i
               : n->int_range == TOPO_YINT_U64 ? (double)n->u
                                               : strtod(n->str, NULL);
        n->type = TOPO_YFLOAT;
    }
    return 0;
}

static int yt_scalar(yt_parser *p, const yaml_event_t *ev)
{
    int rc = yt_charge(p, 1, &ev->start_mark, NULL);
    if (rc < 0)
        return rc;
    topo_ynode *n = yt_node(p, TOPO_YSCALAR, &ev->start_mark);
    if (!n)
        return yt_nomem(p);
    n->str = yt_strdup(p->doc, (const char *)ev->data.scalar.value,
                       ev->data.scalar.length);
    if (!n->str)
        return yt_nomem(p);
    n->len = ev->data.scalar.length;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    rc = yt_tag_type(p, ev, n);
    if (rc < 0)
        return rc;
    rc = yt_add(p, n);
    if (rc < 0)
        return rc;
    const char *anchor = (const char *)ev->data.scalar.anchor;
    if (anchor) {
        anchor = yt_strdup(p->doc, anchor, strlen(anchor));
        if (!anchor)
            return yt_nomem(p);
    }
    return yt_register_anchor(p, anchor, n);
}

static int yt_alias(yt_parser *p, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    char q[TOPO_QUOTE_MAX];
    uintptr_t val;
    topo_quote(name, strlen(name), q, sizeof q);
    if (!topo_strmap_get(&p->anchors, name, strlen(name), &val))
        return yt_err(p, &ev->start_mark,
                      "alias '*%s' refers to no anchor defined before it "
                      "(an anchor cannot be used inside its own node)",
                      q);
    topo_ynode *n = (topo_ynode *)val;
    if (p->depth + n->height > TOPO_MAX_DEPTH)
        return yt_err(p, &ev->start_mark,
                      "alias '*%s' nests the document deeper than %u levels", q,
                      TOPO_MAX_DEPTH);
    int rc = yt_charge(p, n->weight, &ev->start_mark, q);
    if (rc < 0)
        return rc;
    return yt_add(p, n);
}

static int yt_coll_tag_ok(yt_parser *p, const yaml_event_t *ev, const char *tag,
                          const char *want)
{
    char q[TOPO_QUOTE_MAX];
    if (!tag || !strcmp(tag, "!") || !strcmp(tag, want))
        return 0;
    return yt_err(p, &ev->start_mark, "unsupported tag '%s' on a %s",
                  topo_quote(tag, strlen(tag), q, sizeof q),
                  ev->type == YAML_MAPPING_START_EVENT ? "mapping" : "list");
}

static int yt_open(yt_parser *p, const yaml_event_t *ev)
{
    int map = ev->type == YAML_MAPPING_START_EVENT;
    const char *tag = (const char *)(map ? ev->data.mapping_start.tag
                                         : ev->data.sequence_start.tag);
    const char *anchor = (const char *)(map ? ev->data.mapping_start.anchor
                                            : ev->data.sequence_start.anchor);
    int rc = yt_coll_tag_ok(
        p, ev, tag, map ? "tag:yaml.org,2002:map" : "tag:yaml.org,2002:seq");
    if (rc < 0)
        return rc;
    if (p->depth >= TOPO_MAX_DEPTH)
        return yt_err(p, &ev->start_mark,
                      "nesting deeper than %u levels of lists and mappings",
                      TOPO_MAX_DEPTH);
    rc = yt_charge(p, 1, &ev->start_mark, NULL);
    if (rc < 0)
        return rc;
    topo_ynode *n = yt_node(p, map ? TOPO_YMAP : TOPO_YSEQ, &ev->start_mark);
    if (!n)
        return yt_nomem(p);
    yt_frame *f = &p->frames[p->depth++];
    memset(f, 0, sizeof *f);
    f->node = n;
    if (anchor) {
        f->anchor = yt_strdup(p->doc, anchor, strlen(anchor));
        if (!f->anchor)
            return yt_nomem(p);
    }
    return 0;
}

static int yt_key_cmp(const void *a, const void *b)
{
    const topo_ynode *x = *(const topo_ynode *const *)a;
    const topo_ynode *y = *(const topo_ynode *const *)b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int c = memcmp(x->str, y->str, x->len);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

static int yt_before(const topo_ynode *a, const topo_ynode *b)
{
    return a->line < b->line || (a->line == b->line && a->col < b->col);
}

/* Reports the duplicate key whose second occurrence comes first. */
static int yt_check_dups(yt_parser *p, const yt_frame *f)
{
    size_t n = f->n / 2;
    if (n < 2)
        return 0;
    const topo_ynode **keys = malloc(n * sizeof *keys);
    if (!keys)
        return yt_nomem(p);
    for (size_t k = 0; k < n; k++)
        keys[k] = f->kids[2 * k];
    qsort(keys, n, sizeof *keys, yt_key_cmp);
    const topo_ynode *first = NULL, *second = NULL;
    for (size_t k = 1; k < n; k++) {
        const topo_ynode *a = keys[k - 1], *b = keys[k];
        if (a->len != b->len || memcmp(a->str, b->str, a->len) != 0)
            continue;
        /* a is the first occurrence when keys[k-2] differs */
        size_t g = k - 1;
        while (g > 0 && keys[g - 1]->len == a->len &&
               !memcmp(keys[g - 1]->str, a->str, a->len))
            g--;
        if (!second || yt_before(b, second)) {
            first = keys[g];
            second = b;
        }
    }
    free(keys);
    if (!second)
        return 0;
    char q[TOPO_QUOTE_MAX];
    return topo_err(p->errptr, p->file, second->line, second->col, NULL,
                    "duplicate key '%s' (first at line %d column %d)",
                    topo_quote(second->str, second->len, q, sizeof q),
                    first->line, first->col);
}

static int yt_close(yt_parser *p)
{
    yt_frame *f = &p->frames[p->depth - 1];
    topo_ynode *n = f->node;
    int rc = 0;
    if (n->kind == TOPO_YMAP)
        rc = yt_check_dups(p, f);
    if (rc < 0)
        return rc;
    if (f->n) {
        n->kids = yt_alloc(p->doc, f->n * sizeof *n->kids);
        if (!n->kids)
            return yt_nomem(p);
        memcpy(n->kids, f->kids, f->n * sizeof *n->kids);
    }
    n->n = f->n;
    n->height = 1;
    for (size_t k = 0; k < f->n; k++) {
        if (f->kids[k]->height + 1 > n->height)
            n->height = f->kids[k]->height + 1;
        n->weight += f->kids[k]->weight;
    }
    free(f->kids);
    f->kids = NULL;
    const char *anchor = f->anchor;
    p->depth--;
    rc = yt_add(p, n);
    if (rc < 0)
        return rc;
    return yt_register_anchor(p, anchor, n);
}

static int yt_event(yt_parser *p, const yaml_event_t *ev, int *done)
{
    switch (ev->type) {
    case YAML_STREAM_END_EVENT: *done = 1; return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (p->docs++)
            return yt_err(p, &ev->start_mark,
                          "a second YAML document; a topology file holds "
                          "exactly one (remove the '---' separator)");
        return 0;
    case YAML_SCALAR_EVENT: return yt_scalar(p, ev);
    case YAML_ALIAS_EVENT: return yt_alias(p, ev);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: return yt_open(p, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return yt_close(p);
    default: return 0;
    }
}

int topo_yparse(const char *file, const char *buf, size_t len, topo_ydoc **out,
                const topo_ynode **root, char **errptr)
{
    yt_parser p = {.file = file, .buf = buf, .len = len, .errptr = errptr};
    yaml_parser_t yp;
    int rc = 0, done = 0;
    *out = NULL;
    *root = NULL;
    p.doc = calloc(1, sizeof *p.doc);
    if (!p.doc)
        return yt_nomem(&p);
    if (!yaml_parser_initialize(&yp)) {
        topo_yfree(p.doc);
        return yt_nomem(&p);
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&yp, &ev)) {
            rc = yt_libyaml_err(&p, &yp);
            break;
        }
        rc = yt_event(&p, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&yp);
    for (size_t k = 0; k < p.depth; k++)
        free(p.frames[k].kids);
    topo_strmap_free(&p.anchors);
    if (rc < 0) {
        topo_yfree(p.doc);
        return rc;
    }
    *out = p.doc;
    *root = p.root;
    return 0;
}
