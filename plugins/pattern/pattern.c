/*
 * pattern.c - operator "pattern" (keyed): a small CEP per key. Rules (see
 * pattern.h for the language) are matched against each key's records in
 * event-time order; a match goes to port "out".
 *
 * Order. Records are matched in event-time order, ties in arrival order,
 * whatever order they arrive in, as Flink CEP does: process() buffers a
 * record (map state "buf", user key = its time) and registers an
 * event-time timer at its time; when the watermark passes it, on_timer()
 * matches the records of that time. A record at or behind the watermark
 * when it arrives (ts <= watermark) can no longer be put in order: it goes
 * unchanged to port "late" and is counted in pattern_late_records_total.
 * So is a record without event time. Only event time is supported: a rule
 * about "within 30 minutes" means 30 minutes of the records' clock, which
 * is also what makes replays of old data give the same matches.
 *
 * Matching (per key and rule). A rule's steps, with `times: k` counted k
 * times, are positions P1..Pn. Contiguity is relaxed (Flink's followedBy):
 * records that match nothing in between are skipped. A match ends at record
 * r when there are records e1, ..., en = r, in order, after the end of the
 * rule's previous match, with ei matching Pi and r.ts - e1.ts <= within.
 * After a match the rule starts over after r ("skip past last event"), so
 * matches of one rule never share records; rules are independent of each
 * other. The match reported is the one with the latest e1 (the tightest).
 * The operator keeps, for every 1 <= j < n, the latest e1 of a partial
 * match that got through Pj (a partial match whose first record is older
 * than within is dropped): n - 1 integers per key and rule.
 *   Output: (key, ts = r.ts, {"rule": name, "key": <key as a string>,
 *   "first_ts": e1.ts, "last_ts": r.ts, "events": n}).
 *
 * Absence rules (followed_by_not, which needs within). When the steps match
 * (e1 .. en as above), the rule starts over after en and an absence
 * candidate waits until deadline = e1.ts + within. A record after en with
 * ts <= deadline that matches followed_by_not.where, and whose `same`
 * fields equal those of en (compared as msgpack values; a missing field
 * equals only a missing field), cancels it; otherwise, when the watermark
 * passes the deadline, the candidate is emitted with ts = deadline,
 * last_ts = en.ts, plus one field per `same` field with en's value. A new
 * candidate replaces a waiting one with the same `same` values (the clock
 * restarts: "no reply within 24 h of the LAST customer message"); with
 * other values they wait side by side (at most 1000 per key and rule; more
 * are dropped and logged). Records at one time are matched before the
 * candidates due at that time fire, so a cancelling record at exactly the
 * deadline is in time.
 *
 * State, all WEIR_TTL_NONE on purpose, because timers bound every entry:
 *   "buf"  (map) record time (8 bytes, big-endian, sign bit flipped) ->
 *          the records of that time, each as a 4-byte big-endian length
 *          and the value bytes. Deleted by the timer at that time.
 *   "runs" (value) per key: the partial matches and absence candidates of
 *          every rule, and the time of the key's "wake-up" timer (msgpack,
 *          see pt_runs_encode()). Deleted as soon as nothing is left. The
 *          wake-up timer is at the earliest time something expires: a
 *          partial match's e1 + within + 1, a candidate's deadline, or, for
 *          a rule without within, its last progress + idle_timeout (a
 *          partial match of such a rule is forgotten after idle_timeout of
 *          event time without progress). One wake-up timer is pending per
 *          key at most; each re-registers the next.
 * At the end of input the watermark jumps to WEIR_WATERMARK_MAX: every
 * buffered record is matched and every candidate fires. Rules are stored
 * by name, so a job restarted from a checkpoint with edited rules keeps the
 * partial matches of the rules whose name and step count did not change.
 */
#include "pattern.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpscan.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

#define PT_MAX_PENDING 1000 /* absence candidates per key and rule */
#define PT_RUNS_FORMAT 1
#define PT_LOG_LIMIT   10
#define PT_TS_LIMIT    (INT64_MAX / 4) /* larger |ts| cannot be matched */

enum { PT_PORT_OUT = 0, PT_PORT_LATE = 1 };

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

static const weir_param_def pt_p_rules = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_REQUIRED,
    .name = "rules",
    .type = WEIR_PARAM_ANY,
    .description = "list of rules {name, steps: [{where, times}], within, "
                   "followed_by_not: {where, same}}"};
static const weir_param_def pt_p_idle = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "idle_timeout",
    .type = WEIR_PARAM_DURATION,
    .default_value = "30d",
    .min = 1,
    .description = "event time after which a partial match of a rule "
                   "without `within` that made no progress is forgotten"};
static const weir_param_def *const pt_params[] = {&pt_p_rules, &pt_p_idle,
                                                  NULL};
static const char *const pt_outputs[] = {"out", "late", NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

/* An absence candidate. `same` is a msgpack array of the same-field values
 * of the last step's record (malloc'ed). */
typedef struct pt_pending {
    int64_t first, last, deadline;
    char *same;
    size_t same_len;
} pt_pending;

/* A rule's progress for the current key. best[j] (1 <= j < n) is the latest
 * first time of a partial match through position j, or PT_NONE. */
typedef struct pt_run {
    int64_t *best;
    int64_t last_update; /* time of the last progress, or PT_NONE */
    pt_pending *pend;
    size_t n_pend, cap_pend;
} pt_run;

typedef struct pt {
    pt_rules rules;
    int64_t idle;
    weir_state *buf;
    weir_state *runs_st;
    weir_metric *m_late;
    weir_metric *m_dropped;
    pt_run *runs;       /* one per rule: the current key's progress */
    int64_t wake;       /* the current key's wake-up timer, or PT_NONE */
    uint8_t *hit;       /* per predicate: holds for the current record */
    int had_runs;       /* the current key had a "runs" entry when loaded */
    weir_mp_reader rd;  /* state and same values */
    weir_mp_reader rec; /* the record being matched */
    weir_mp_writer w;
    weir_mp_writer sb; /* same-field values of the current record */
    char *scratch;     /* copy of the buffered records being matched */
    size_t scratch_cap;
    int warned_no_time;
    uint64_t logged_drops;
} pt;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static void pt_put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

/* The user key of a time in "buf": big-endian with the sign bit flipped. */
static void pt_time_key(unsigned char out[8], int64_t ts)
{
    pt_put_be(out, (uint64_t)ts ^ 0x8000000000000000ULL, 8);
}

static int pt_state_error(weir_ctx *ctx, const char *op, const char *state,
                          int rc)
{
    weir_set_error(ctx, "pattern: %s of state '%s' failed: %s", op, state,
                   weir_strerror(rc));
    return rc;
}

static int pt_timer(weir_ctx *ctx, int64_t t)
{
    int rc = weir_timer_register(ctx, WEIR_TIME_EVENT, t);
    if (rc < 0)
        weir_set_error(ctx,
                       "pattern: registering an event-time timer at %lld "
                       "failed: %s",
                       (long long)t, weir_strerror(rc));
    return rc;
}

static int pt_oom(weir_ctx *ctx)
{
    weir_set_error(ctx, "pattern: out of memory");
    return WEIR_ENOMEM;
}

static void pt_run_reset(const pt_rule *rule, pt_run *run)
{
    for (size_t j = 0; run->best && j < rule->n; j++)
        run->best[j] = PT_NONE;
}

static void pt_runs_clear(pt *p)
{
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        pt_run *run = &p->runs[i];
        pt_run_reset(&p->rules.rules[i], run);
        run->last_update = PT_NONE;
        for (size_t k = 0; k < run->n_pend; k++)
            free(run->pend[k].same);
        run->n_pend = 0;
    }
    p->wake = PT_NONE;
}

static int pt_run_has_partial(const pt_rule *rule, const pt_run *run)
{
    for (size_t j = 1; j < rule->n; j++)
        if (run->best[j] != PT_NONE)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The "runs" state                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Layout (msgpack):
 *   [format = 1, wake (int or nil), [entry, ...]]
 *   entry = [rule name (str), n (int), last_update (int or nil),
 *            [best_1 .. best_{n-1}] (int or nil each),
 *            [[first, last, deadline, same (bin)], ...]]
 * Only rules with something to keep have an entry.
 */
static int pt_pack_time(msgpack_packer *pk, int64_t t)
{
    return t == PT_NONE ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, t);
}

static int pt_runs_encode(pt *p, size_t n_entries)
{
    msgpack_packer *pk = &p->w.pk;
    weir_mp_writer_reset(&p->w);
    int bad = msgpack_pack_array(pk, 3) ||
              msgpack_pack_int(pk, PT_RUNS_FORMAT) ||
              pt_pack_time(pk, p->wake) || msgpack_pack_array(pk, n_entries);
    for (size_t i = 0; i < p->rules.n_rules && !bad; i++) {
        const pt_rule *rule = &p->rules.rules[i];
        const pt_run *run = &p->runs[i];
        if (!run->n_pend && !pt_run_has_partial(rule, run))
            continue;
        bad = msgpack_pack_array(pk, 5) || weir_mp_pack_str(pk, rule->name) ||
              msgpack_pack_uint64(pk, rule->n) ||
              pt_pack_time(pk, run->last_update) ||
              msgpack_pack_array(pk, rule->n - 1);
        for (size_t j = 1; j < rule->n && !bad; j++)
            bad = pt_pack_time(pk, run->best[j]);
        bad = bad || msgpack_pack_array(pk, run->n_pend);
        for (size_t k = 0; k < run->n_pend && !bad; k++) {
            const pt_pending *c = &run->pend[k];
            bad = msgpack_pack_array(pk, 4) ||
                  msgpack_pack_int64(pk, c->first) ||
                  msgpack_pack_int64(pk, c->last) ||
                  msgpack_pack_int64(pk, c->deadline) ||
                  msgpack_pack_bin_with_body(pk, c->same, c->same_len);
        }
    }
    return bad ? WEIR_ENOMEM : 0;
}

static int pt_read_time(const msgpack_object *o, int64_t *t)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *t = PT_NONE;
        return 0;
    }
    return weir_mp_as_int(o, t) == 0 ? 0 : -1;
}

static int pt_pend_add(pt_run *run, int64_t first, int64_t last,
                       int64_t deadline, const void *same, size_t same_len)
{
    if (run->n_pend == run->cap_pend) {
        size_t cap = run->cap_pend ? 2 * run->cap_pend : 4;
        pt_pending *v = realloc(run->pend, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        run->pend = v;
        run->cap_pend = cap;
    }
    pt_pending *c = &run->pend[run->n_pend];
    c->same = malloc(same_len ? same_len : 1);
    if (!c->same)
        return WEIR_ENOMEM;
    if (same_len)
        memcpy(c->same, same, same_len);
    c->same_len = same_len;
    c->first = first;
    c->last = last;
    c->deadline = deadline;
    run->n_pend++;
    return 0;
}

/* Loads one entry into the run of the rule with its name; entries of rules
 * that are gone or changed their number of positions are ignored. */
static int pt_runs_load_entry(pt *p, const msgpack_object *e)
{
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 5)
        return -1;
    const msgpack_object *f = e->via.array.ptr;
    const char *name;
    size_t name_len;
    int64_t n;
    if (weir_mp_as_str(&f[0], &name, &name_len) < 0 ||
        weir_mp_as_int(&f[1], &n) < 0 || f[3].type != MSGPACK_OBJECT_ARRAY ||
        f[4].type != MSGPACK_OBJECT_ARRAY)
        return -1;
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        const pt_rule *rule = &p->rules.rules[i];
        pt_run *run = &p->runs[i];
        if (strlen(rule->name) != name_len ||
            memcmp(rule->name, name, name_len) != 0)
            continue;
        if ((size_t)n != rule->n || f[3].via.array.size != rule->n - 1)
            return 0; /* the rule changed: start it over */
        if (pt_read_time(&f[2], &run->last_update) < 0)
            return -1;
        for (size_t j = 1; j < rule->n; j++)
            if (pt_read_time(&f[3].via.array.ptr[j - 1], &run->best[j]) < 0)
                return -1;
        for (uint32_t k = 0; k < f[4].via.array.size; k++) {
            const msgpack_object *c = &f[4].via.array.ptr[k];
            int64_t first, last, deadline;
            const char *same;
            size_t same_len;
            if (c->type != MSGPACK_OBJECT_ARRAY || c->via.array.size != 4 ||
                weir_mp_as_int(&c->via.array.ptr[0], &first) < 0 ||
                weir_mp_as_int(&c->via.array.ptr[1], &last) < 0 ||
                weir_mp_as_int(&c->via.array.ptr[2], &deadline) < 0 ||
                weir_mp_as_str(&c->via.array.ptr[3], &same, &same_len) < 0)
                return -1;
            if (!rule->absence)
                continue;
            if (pt_pend_add(run, first, last, deadline, same, same_len) < 0)
                return WEIR_ENOMEM;
        }
        return 0;
    }
    return 0;
}

/* Loads the current key's runs into p->runs (cleared when there are
 * none). */
static int pt_runs_load(weir_ctx *ctx, pt *p)
{
    pt_runs_clear(p);
    const void *v;
    size_t n;
    int rc = weir_value_get(ctx, p->runs_st, &v, &n);
    p->had_runs = rc == 0;
    if (rc == WEIR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return pt_state_error(ctx, "value_get", "runs", rc);
    const msgpack_object *o = weir_mp_read(&p->rd, v, n);
    int64_t format;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
        weir_mp_as_int(&o->via.array.ptr[0], &format) < 0 ||
        format != PT_RUNS_FORMAT ||
        pt_read_time(&o->via.array.ptr[1], &p->wake) < 0 ||
        o->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
        goto bad;
    const msgpack_object *entries = &o->via.array.ptr[2];
    for (uint32_t i = 0; i < entries->via.array.size; i++) {
        rc = pt_runs_load_entry(p, &entries->via.array.ptr[i]);
        if (rc == WEIR_ENOMEM)
            return pt_oom(ctx);
        if (rc < 0)
            goto bad;
    }
    return 0;
bad:
    weir_set_error(ctx,
                   "pattern: the stored state 'runs' of a key has an "
                   "unknown format (%zu bytes)",
                   n);
    return WEIR_EINVAL;
}

/* Writes the current key's runs, or deletes them when nothing is left. */
static int pt_runs_save(weir_ctx *ctx, pt *p)
{
    size_t entries = 0;
    for (size_t i = 0; i < p->rules.n_rules; i++)
        entries += p->runs[i].n_pend ||
                   pt_run_has_partial(&p->rules.rules[i], &p->runs[i]);
    int rc;
    if (!entries) {
        if (!p->had_runs)
            return 0;
        rc = weir_value_delete(ctx, p->runs_st);
        return rc < 0 ? pt_state_error(ctx, "value_delete", "runs", rc) : 0;
    }
    if (pt_runs_encode(p, entries) < 0)
        return pt_oom(ctx);
    rc = weir_value_put(ctx, p->runs_st, p->w.buf.data, p->w.buf.size);
    return rc < 0 ? pt_state_error(ctx, "value_put", "runs", rc) : 0;
}

/* ------------------------------------------------------------------------ */
/* Matches                                                                   */
/* ------------------------------------------------------------------------ */

/* Emits a match of rule i; `same` (msgpack array, may be NULL) adds the
 * same-field values. */
static int pt_emit_match(weir_ctx *ctx, pt *p, size_t i, const void *key,
                         size_t key_len, int64_t ts, int64_t first,
                         int64_t last, const char *same, size_t same_len)
{
    const pt_rule *rule = &p->rules.rules[i];
    const msgpack_object *sv = NULL;
    if (same && rule->n_same) {
        sv = weir_mp_read(&p->rd, same, same_len);
        if (!sv || sv->type != MSGPACK_OBJECT_ARRAY ||
            sv->via.array.size != rule->n_same)
            sv = NULL;
    }
    msgpack_packer *pk = &p->w.pk;
    weir_mp_writer_reset(&p->w);
    int bad =
        msgpack_pack_map(pk, 5 + (sv ? rule->n_same : 0)) ||
        weir_mp_pack_str(pk, "rule") || weir_mp_pack_str(pk, rule->name) ||
        weir_mp_pack_str(pk, "key") || weir_mp_pack_strn(pk, key, key_len) ||
        weir_mp_pack_str(pk, "first_ts") || msgpack_pack_int64(pk, first) ||
        weir_mp_pack_str(pk, "last_ts") || msgpack_pack_int64(pk, last) ||
        weir_mp_pack_str(pk, "events") || msgpack_pack_uint64(pk, rule->n);
    for (size_t k = 0; sv && k < rule->n_same && !bad; k++)
        bad = weir_mp_pack_strn(pk, rule->same[k], rule->same_len[k]) ||
              msgpack_pack_object(pk, sv->via.array.ptr[k]);
    if (bad)
        return pt_oom(ctx);
    int rc = weir_emit(ctx, PT_PORT_OUT, key, key_len, ts, p->w.buf.data,
                       p->w.buf.size);
    if (rc < 0) {
        weir_set_error(ctx, "pattern: emit failed: %s", weir_strerror(rc));
        return rc;
    }
    weir_counter_add(ctx, rule->matches, 1);
    return 0;
}

/* Fires the absence candidates due at `t` (deadline <= t, or < t when
 * `strict`), in deadline order, rule by rule. */
static int pt_fire_due(weir_ctx *ctx, pt *p, const void *key, size_t key_len,
                       int64_t t, int strict)
{
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        pt_run *run = &p->runs[i];
        for (;;) {
            size_t best = run->n_pend;
            for (size_t k = 0; k < run->n_pend; k++) {
                int64_t d = run->pend[k].deadline;
                if ((strict ? d < t : d <= t) &&
                    (best == run->n_pend || d < run->pend[best].deadline))
                    best = k;
            }
            if (best == run->n_pend)
                break;
            pt_pending c = run->pend[best];
            memmove(&run->pend[best], &run->pend[best + 1],
                    (run->n_pend - best - 1) * sizeof c);
            run->n_pend--;
            int rc = pt_emit_match(ctx, p, i, key, key_len, c.deadline, c.first,
                                   c.last, c.same, c.same_len);
            free(c.same);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Packs the `same` fields of rule `rule` from the record map into p->sb. */
static int pt_same_values(pt *p, const pt_rule *rule, const msgpack_object *map)
{
    msgpack_packer *pk = &p->sb.pk;
    weir_mp_writer_reset(&p->sb);
    if (msgpack_pack_array(pk, rule->n_same))
        return WEIR_ENOMEM;
    for (size_t k = 0; k < rule->n_same; k++) {
        const msgpack_object *v =
            cond_field(map, rule->same[k], rule->same_len[k]);
        if (v ? msgpack_pack_object(pk, *v) : msgpack_pack_nil(pk))
            return WEIR_ENOMEM;
    }
    return 0;
}

static void pt_pend_remove(pt_run *run, size_t k)
{
    free(run->pend[k].same);
    memmove(&run->pend[k], &run->pend[k + 1],
            (run->n_pend - k - 1) * sizeof *run->pend);
    run->n_pend--;
}

/* A completed step sequence of absence rule i (first record at `first`,
 * last one the current record at t): replaces the candidate with the same
 * `same` values, or adds one. */
static int pt_add_candidate(weir_ctx *ctx, pt *p, size_t i, int64_t first,
                            int64_t t)
{
    const pt_rule *rule = &p->rules.rules[i];
    pt_run *run = &p->runs[i];
    const char *sb = p->sb.buf.data;
    size_t sbl = p->sb.buf.size;
    for (size_t k = 0; k < run->n_pend; k++) {
        if (run->pend[k].same_len == sbl &&
            memcmp(run->pend[k].same, sb, sbl) == 0) {
            pt_pend_remove(run, k);
            break;
        }
    }
    if (run->n_pend >= PT_MAX_PENDING) {
        weir_counter_add(ctx, p->m_dropped, 1);
        if (p->logged_drops++ < PT_LOG_LIMIT)
            weir_log(ctx, WEIR_LOG_WARN,
                     "pattern: rule '%s': more than %d absence candidates "
                     "wait for one key; dropping the one at %lld",
                     rule->name, PT_MAX_PENDING, (long long)t);
        return 0;
    }
    if (pt_pend_add(run, first, t, first + rule->within, sb, sbl) < 0)
        return pt_oom(ctx);
    return 0;
}

/* Matches one record (the current key's, at time t) against rule i. */
static int pt_match_rule(weir_ctx *ctx, pt *p, size_t i, const void *key,
                         size_t key_len, int64_t t, const msgpack_object *map)
{
    const pt_rule *rule = &p->rules.rules[i];
    pt_run *run = &p->runs[i];
    int rc;
    /* 1. The record may cancel waiting absence candidates. */
    if (rule->absence && run->n_pend && p->hit[rule->neg]) {
        if (pt_same_values(p, rule, map) < 0)
            return pt_oom(ctx);
        for (size_t k = 0; k < run->n_pend;) {
            pt_pending *c = &run->pend[k];
            if (c->deadline >= t && c->same_len == p->sb.buf.size &&
                memcmp(c->same, p->sb.buf.data, c->same_len) == 0)
                pt_pend_remove(run, k);
            else
                k++;
        }
    }
    /* 2. Partial matches whose first record is too old are dropped. */
    for (size_t j = 1; rule->within && j < rule->n; j++)
        if (run->best[j] != PT_NONE && t - run->best[j] > rule->within)
            run->best[j] = PT_NONE;
    /* 3. Advance from the last position back, so that the record counts
     *    once per partial match; then it may start one. */
    int64_t done = PT_NONE;
    int moved = 0;
    for (size_t j = rule->n - 1; j >= 1; j--) {
        if (run->best[j] == PT_NONE || !p->hit[rule->pos[j]])
            continue;
        if (j + 1 == rule->n) {
            done = run->best[j] > done ? run->best[j] : done;
        } else if (run->best[j] > run->best[j + 1]) {
            run->best[j + 1] = run->best[j];
            moved = 1;
        }
    }
    if (p->hit[rule->pos[0]]) {
        if (rule->n == 1)
            done = t;
        else if (run->best[1] < t) {
            run->best[1] = t;
            moved = 1;
        }
    }
    if (moved || done != PT_NONE)
        run->last_update = t;
    if (done == PT_NONE)
        return 0;
    /* 4. A match: start over after this record. */
    pt_run_reset(rule, run);
    if (!rule->absence)
        return pt_emit_match(ctx, p, i, key, key_len, t, done, t, NULL, 0);
    if (pt_same_values(p, rule, map) < 0)
        return pt_oom(ctx);
    if ((rc = pt_add_candidate(ctx, p, i, done, t)) < 0)
        return rc;
    return 0;
}

static int pt_match_record(weir_ctx *ctx, pt *p, const void *key,
                           size_t key_len, int64_t t, const void *value,
                           size_t len)
{
    const msgpack_object *map = weir_mp_read(&p->rec, value, len);
    for (size_t k = 0; k < p->rules.n_preds; k++)
        p->hit[k] = (uint8_t)cond_eval(&p->rules.preds[k], map);
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        int rc = pt_match_rule(ctx, p, i, key, key_len, t, map);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Drops what expired at t and returns the next time something expires
 * (PT_NONE for never). */
static int64_t pt_expire(pt *p, int64_t t)
{
    int64_t next = PT_NONE;
#define PT_NEXT(x) (next = next == PT_NONE || (x) < next ? (x) : next)
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        const pt_rule *rule = &p->rules.rules[i];
        pt_run *run = &p->runs[i];
        for (size_t k = 0; k < run->n_pend; k++)
            PT_NEXT(run->pend[k].deadline);
        if (!pt_run_has_partial(rule, run))
            continue;
        if (!rule->within) {
            if (run->last_update != PT_NONE &&
                run->last_update <= t - p->idle) {
                pt_run_reset(rule, run);
                continue;
            }
            PT_NEXT(run->last_update + p->idle);
            continue;
        }
        for (size_t j = 1; j < rule->n; j++) {
            if (run->best[j] == PT_NONE)
                continue;
            if (t - run->best[j] > rule->within)
                run->best[j] = PT_NONE;
            else
                PT_NEXT(run->best[j] + rule->within + 1);
        }
    }
#undef PT_NEXT
    return next;
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int pt_emit_late(weir_ctx *ctx, pt *p, const weir_record *rec)
{
    weir_counter_add(ctx, p->m_late, 1);
    int rc = weir_emit(ctx, PT_PORT_LATE, rec->key, rec->key_len, rec->ts,
                       rec->value, rec->value_len);
    if (rc < 0)
        weir_set_error(ctx, "pattern: emit to port late failed: %s",
                       weir_strerror(rc));
    return rc;
}

static int pt_process(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port)
{
    pt *p = self;
    if (rec->ts == WEIR_TS_NONE || rec->ts > PT_TS_LIMIT ||
        rec->ts < -PT_TS_LIMIT) {
        if (!p->warned_no_time) {
            p->warned_no_time = 1;
            weir_log(ctx, WEIR_LOG_WARN,
                     "pattern: records without a usable event time go to "
                     "port late (first: ts %lld); set the source's "
                     "time_field",
                     (long long)rec->ts);
        }
        return pt_emit_late(ctx, p, rec);
    }
    if (rec->ts <= weir_watermark(ctx))
        return pt_emit_late(ctx, p, rec);
    if (rec->value_len > UINT32_MAX)
        return weir_set_error(ctx,
                              "pattern: a record of %zu bytes is too "
                              "large to buffer",
                              rec->value_len);
    unsigned char tk[8], len[4];
    pt_time_key(tk, rec->ts);
    const void *old = NULL;
    size_t old_len = 0;
    int rc = weir_map_get(ctx, p->buf, tk, sizeof tk, &old, &old_len);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return pt_state_error(ctx, "map_get", "buf", rc);
    size_t need = old_len + 4 + rec->value_len;
    if (need > p->scratch_cap) {
        char *s = realloc(p->scratch, need);
        if (!s)
            return pt_oom(ctx);
        p->scratch = s;
        p->scratch_cap = need;
    }
    if (old_len)
        memcpy(p->scratch, old, old_len);
    pt_put_be(len, rec->value_len, 4);
    memcpy(p->scratch + old_len, len, 4);
    if (rec->value_len)
        memcpy(p->scratch + old_len + 4, rec->value, rec->value_len);
    rc = weir_map_put(ctx, p->buf, tk, sizeof tk, p->scratch, need);
    if (rc < 0)
        return pt_state_error(ctx, "map_put", "buf", rc);
    if (old_len == 0)
        return pt_timer(ctx, rec->ts);
    return 0;
}

/* Takes the records buffered at t into p->scratch; *len = 0 if none. */
static int pt_take_buffered(weir_ctx *ctx, pt *p, int64_t t, size_t *len)
{
    unsigned char tk[8];
    const void *v;
    pt_time_key(tk, t);
    *len = 0;
    int rc = weir_map_get(ctx, p->buf, tk, sizeof tk, &v, len);
    if (rc == WEIR_ENOTFOUND) {
        *len = 0;
        return 0;
    }
    if (rc < 0)
        return pt_state_error(ctx, "map_get", "buf", rc);
    if (*len > p->scratch_cap) {
        char *s = realloc(p->scratch, *len);
        if (!s)
            return pt_oom(ctx);
        p->scratch = s;
        p->scratch_cap = *len;
    }
    memcpy(p->scratch, v, *len);
    rc = weir_map_delete(ctx, p->buf, tk, sizeof tk);
    return rc < 0 ? pt_state_error(ctx, "map_delete", "buf", rc) : 0;
}

static int pt_on_timer(weir_ctx *ctx, void *self, const void *key,
                       size_t key_len, weir_time_domain domain, int64_t t)
{
    pt *p = self;
    if (domain != WEIR_TIME_EVENT)
        return 0;
    size_t len;
    int rc;
    if ((rc = pt_take_buffered(ctx, p, t, &len)) < 0 ||
        (rc = pt_runs_load(ctx, p)) < 0)
        return rc;
    /* Candidates due before t fire before the records at t are matched
     * (normally they already fired at their own wake-up timer). */
    if (len && (rc = pt_fire_due(ctx, p, key, key_len, t, 1)) < 0)
        return rc;
    const unsigned char *b = (const unsigned char *)p->scratch;
    for (size_t off = 0; off + 4 <= len;) {
        size_t n = (size_t)b[off] << 24 | (size_t)b[off + 1] << 16 |
                   (size_t)b[off + 2] << 8 | b[off + 3];
        if (n > len - off - 4)
            return weir_set_error(ctx, "pattern: a buffered record is "
                                       "truncated");
        rc = pt_match_record(ctx, p, key, key_len, t, b + off + 4, n);
        if (rc < 0)
            return rc;
        off += 4 + n;
    }
    if ((rc = pt_fire_due(ctx, p, key, key_len, t, 0)) < 0)
        return rc;
    int64_t next = pt_expire(p, t);
    if (p->wake != PT_NONE && p->wake <= t)
        p->wake = PT_NONE; /* that timer is this one, or fired before */
    if (next != PT_NONE && (p->wake == PT_NONE || next < p->wake)) {
        if ((rc = pt_timer(ctx, next)) < 0)
            return rc;
        p->wake = next;
    }
    return pt_runs_save(ctx, p);
}

static void pt_free(pt *p)
{
    for (size_t i = 0; p->runs && i < p->rules.n_rules; i++) {
        for (size_t k = 0; k < p->runs[i].n_pend; k++)
            free(p->runs[i].pend[k].same);
        free(p->runs[i].best);
        free(p->runs[i].pend);
    }
    free(p->runs);
    free(p->hit);
    free(p->scratch);
    weir_mp_reader_destroy(&p->rd);
    weir_mp_reader_destroy(&p->rec);
    weir_mp_writer_destroy(&p->w);
    weir_mp_writer_destroy(&p->sb);
    pt_rules_free(&p->rules);
    free(p);
}

static int pt_declare(weir_ctx *ctx, const char *name, weir_state_kind kind,
                      weir_state **out)
{
    /* No TTL: timers delete every entry (see the top of this file). */
    weir_state_desc d = {
        .size = sizeof d, .kind = kind, .name = name, .ttl_ms = WEIR_TTL_NONE};
    int rc = weir_state_declare(ctx, &d, out);
    if (rc < 0)
        weir_set_error(ctx, "pattern: declaring state '%s' failed: %s", name,
                       weir_strerror(rc));
    return rc;
}

static int pt_open(weir_ctx *ctx, void **self)
{
    pt *p = calloc(1, sizeof *p);
    if (!p)
        return pt_oom(ctx);
    weir_mp_reader_init(&p->rd);
    weir_mp_reader_init(&p->rec);
    weir_mp_writer_init(&p->w);
    weir_mp_writer_init(&p->sb);
    const void *mp;
    size_t len;
    char why[512];
    int rc = weir_param_msgpack(ctx, "rules", &mp, &len);
    if (rc < 0) {
        weir_set_error(ctx, "pattern: parameter rules: %s", weir_strerror(rc));
        goto fail;
    }
    if ((rc = weir_param_int(ctx, "idle_timeout", &p->idle)) < 0) {
        weir_set_error(ctx, "pattern: parameter idle_timeout: %s",
                       weir_strerror(rc));
        goto fail;
    }
    if ((rc = pt_rules_parse(mp, len, &p->rules, why, sizeof why)) < 0) {
        weir_set_error(ctx, "pattern: %s", why);
        goto fail;
    }
    p->runs = calloc(p->rules.n_rules, sizeof *p->runs);
    p->hit = calloc(p->rules.n_preds, 1);
    if (!p->runs || !p->hit) {
        rc = pt_oom(ctx);
        goto fail;
    }
    for (size_t i = 0; i < p->rules.n_rules; i++) {
        pt_rule *rule = &p->rules.rules[i];
        if (!(p->runs[i].best = calloc(rule->n, sizeof(int64_t)))) {
            rc = pt_oom(ctx);
            goto fail;
        }
        /* Optional: a host without metrics leaves rule->matches NULL. */
        weir_metric_register(ctx, WEIR_METRIC_COUNTER, "pattern_matches_total",
                             "matches emitted per rule", "rule", rule->name,
                             &rule->matches);
    }
    pt_runs_clear(p);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "pattern_late_records_total",
                         "records at or behind the watermark (or without "
                         "event time), sent to port late",
                         NULL, NULL, &p->m_late);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                         "pattern_dropped_candidates_total",
                         "absence candidates dropped because too many "
                         "waited for one key and rule",
                         NULL, NULL, &p->m_dropped);
    if ((rc = pt_declare(ctx, "buf", WEIR_STATE_MAP, &p->buf)) < 0 ||
        (rc = pt_declare(ctx, "runs", WEIR_STATE_VALUE, &p->runs_st)) < 0)
        goto fail;
    *self = p;
    return 0;
fail:
    pt_free(p);
    return rc;
}

static void pt_close(weir_ctx *ctx, void *self)
{
    if (self)
        pt_free(self);
}

static const weir_operator pt_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "pattern",
    .version = "1.0.0",
    .description = "per-key event-time rules: sequences (within, times) and "
                   "absences (followed_by_not); matches to out",
    .output_ports = pt_outputs,
    .params = pt_params,
    .open = pt_open,
    .process = pt_process,
    .on_timer = pt_on_timer,
    .close = pt_close,
};

static const weir_operator *const pt_ops[] = {&pt_operator, NULL};

static const weir_plugin pt_plugin = {
    WEIR_PLUGIN_INIT,    .name = "pattern",
    .version = "1.0.0",  .description = "complex event patterns per key",
    .operators = pt_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &pt_plugin;
}
