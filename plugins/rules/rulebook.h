/*
 * rulebook.h - the rules operator's rule language, rule changes and
 * versioned rule histories. Internal to the rules plugin (rules.c has the
 * operator and explains the semantics).
 *
 * A rule change is a record of the broadcast input "rules" whose value is a
 * map (JSON through file_source):
 *   {"op": "add" | "replace" | "delete", "id": "viewed_not_carted",
 *    "version": 3, "rule": {...}}
 * id: 1 to 128 characters out of [A-Za-z0-9_.:-]; version: an integer >= 1;
 * rule: required for add and replace, not allowed for delete. Other keys of
 * the change are ignored (a source's time field, an author, ...).
 *
 * A rule (every `within` is a duration of 1 ms to the operator's
 * max_within; a predicate is plugins/common/cond.h's):
 *   {"type": "count", "event": PRED, "min": N, "within": "7d"}
 *       at least N (1 to 64) records matching PRED within `within`
 *   {"type": "sequence", "steps": [PRED, PRED, ...], "within": "1h"}
 *       records matching the steps in order (1 to 64 steps) within `within`
 *   {"type": "absence", "event": PRED, "not_followed_by": PRED,
 *    "same": [field, ...], "within": "30m"}
 *       a record matching `event` not followed by one matching
 *       `not_followed_by` (with the `same` fields, at most 8, equal)
 *       within `within`
 * Messages name the field: "rule.steps[1].page.prefix: must be a string,
 * got an integer".
 *
 * History. The broadcast state "rules" maps a rule id to its versions,
 * oldest first: a msgpack array of [effective time (int, ms), version
 * (int), rule (map) or nil for a deletion]. Effective times never
 * decrease and versions strictly increase along a history.
 */
#ifndef WEIR_PLUGINS_RULEBOOK_H
#define WEIR_PLUGINS_RULEBOOK_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "cond.h"

#include "weir/weir.h"

#define RB_MAX_ID        128
#define RB_MAX_POSITIONS 64
#define RB_MAX_SAME      8
#define RB_NONE          INT64_MIN

typedef enum rb_kind { RB_COUNT = 1, RB_SEQUENCE, RB_ABSENCE } rb_kind;

/* A compiled rule: n positions, each the index of its predicate; absence
 * rules also have `neg` and the `same` field names. Pointers go into the
 * msgpack tree the rule was compiled from. */
typedef struct rb_rule {
    rb_kind kind;
    int64_t within;
    uint32_t n;
    uint32_t pos[RB_MAX_POSITIONS];
    cond_pred *preds;
    size_t n_preds;
    cond_pred neg;
    const char *same[RB_MAX_SAME];
    size_t same_len[RB_MAX_SAME];
    size_t n_same;
} rb_rule;

/* Compiles `o` (a change's "rule") into *out (zeroed first); `max_within`
 * bounds `within`. Returns 0, or WEIR_EINVAL with "rule...: reason" in why,
 * or WEIR_ENOMEM. */
int rb_compile(const msgpack_object *o, int64_t max_within, rb_rule *out,
               char *why, size_t why_len);
void rb_rule_free(rb_rule *r);
const char *rb_kind_name(rb_kind k);

typedef enum rb_op { RB_ADD = 1, RB_REPLACE, RB_DELETE } rb_op;

/* A parsed rule change; pointers go into the record's msgpack tree. */
typedef struct rb_change {
    rb_op op;
    const char *id;
    size_t id_len;
    int64_t version;
    const msgpack_object *rule; /* NULL for delete */
} rb_change;

/* Parses a change record's value `o` (NULL when not msgpack). WEIR_EINVAL
 * with the reason in why. */
int rb_change_parse(const msgpack_object *o, rb_change *out, char *why,
                    size_t why_len);

/* One version of a rule. A version whose rule no longer compiles (the
 * operator's max_within shrank) counts as a deletion (`live` 0). */
typedef struct rb_version {
    int64_t eff;
    int64_t version;
    const msgpack_object *body; /* NULL: a deletion */
    int live;
    rb_rule rule;
} rb_version;

/* A rule id with its history, decoded from its broadcast state bytes
 * (copied and kept with their msgpack tree). */
typedef struct rb_entry {
    char *id; /* NUL-terminated */
    size_t id_len;
    rb_version *v;
    size_t n;
    char *bytes;
    size_t len;
    msgpack_unpacked up;
    weir_metric *matches; /* rules_matches_total{rule=id}, or NULL */
} rb_entry;

/* Decodes a history into a new entry. A version that fails to compile is
 * kept as a deletion and its reason written to why (*bad_versions counts
 * them). WEIR_EINVAL when the bytes are no history, WEIR_ENOMEM. */
int rb_entry_decode(const char *id, size_t id_len, const void *bytes,
                    size_t len, int64_t max_within, rb_entry **out,
                    size_t *bad_versions, char *why, size_t why_len);
void rb_entry_free(rb_entry *e);

/* The version in force at time t (the last with eff <= t), or NULL when
 * none is, or that one is a deletion. */
const rb_version *rb_entry_at(const rb_entry *e, int64_t t);

/* The newest version, or NULL for an empty history. */
const rb_version *rb_entry_last(const rb_entry *e);

/*
 * Encodes the history of `e` (may be NULL: none) with versions [from, n)
 * kept, followed by `add` when it is not NULL (eff, version, body or NULL),
 * into the writer. Returns 0 or WEIR_ENOMEM.
 */
int rb_history_encode(msgpack_packer *pk, const rb_entry *e, size_t from,
                      const rb_version *add);

#endif
