/*
 * pattern.h - the rules of the pattern operator: parsing and validating the
 * `rules` parameter (rules.c). Internal to the pattern plugin.
 *
 * A rule (YAML, handed over as msgpack):
 *   name: visited_twice          # unique; the metric label and output field
 *   steps:                       # matched in order, other records between
 *     - where: {type: visit, site: shop.example}   # all conditions hold
 *       times: 2                 # this step N times (default 1)
 *   within: 7d                   # last step at most this long after the first
 *   followed_by_not:             # absence: after the steps, no record ...
 *     where: {type: add_to_cart} # ... matching this ...
 *     same: [product]            # ... with these fields equal to the last
 *                                #     step's record ...
 *                                # ... until first step + within.
 * A `where` is a predicate of plugins/common/cond.h: `field: value` (eq) or
 * `field: {op: value, ...}` with ops eq, ne, lt, le, gt, ge, in and prefix,
 * all of which must hold, on top-level fields of the record value.
 * Durations are strings with a unit (250ms, 10s, 5m, 2h, 7d) or integers
 * in ms.
 */
#ifndef WEIR_PLUGINS_PATTERN_H
#define WEIR_PLUGINS_PATTERN_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "cond.h"

#include "weir/weir.h"

#define PT_MAX_RULES     1000
#define PT_MAX_POSITIONS 64  /* steps of a rule, times counted */
#define PT_MAX_SAME      8   /* fields of followed_by_not.same */
#define PT_MAX_NAME      128 /* bytes of a rule name */
#define PT_NONE          INT64_MIN

typedef struct pt_rule {
    char *name; /* NUL-terminated */
    /* Positions 0..n-1 (a step with times: k takes k positions), each the
     * index of its predicate in pt_rules.preds. */
    uint32_t *pos;
    size_t n;
    int64_t within;    /* ms, or 0 for none */
    int absence;       /* has followed_by_not */
    uint32_t neg;      /* predicate of followed_by_not.where */
    const char **same; /* followed_by_not.same field names */
    size_t *same_len;
    size_t n_same;
    weir_metric *matches; /* pattern_matches_total{rule=name}, or NULL */
} pt_rule;

typedef struct pt_rules {
    cond_pred *preds; /* every where: steps first, then absences */
    size_t n_preds;
    pt_rule *rules;
    size_t n_rules;
    /* The configuration bytes and their unpacked tree, which conditions
     * point into; kept for the life of the rule set. */
    char *cfg;
    msgpack_unpacked unpacked;
} pt_rules;

/* Parses and validates the msgpack `rules` value into *out. On failure
 * returns WEIR_EINVAL (or WEIR_ENOMEM) with a message naming the rule
 * index and field written to why[0..why_len). */
int pt_rules_parse(const void *mp, size_t len, pt_rules *out, char *why,
                   size_t why_len);
void pt_rules_free(pt_rules *r);

#endif
