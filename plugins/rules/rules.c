/*
 * rules.c - operator "rules" (keyed, ABI 1.2): per-key rules that are
 * added, replaced and deleted while the job runs. Rules arrive as records
 * on the broadcast input "rules" (see rulebook.h for the change records and
 * the rule language); events arrive on "events", partitioned by key;
 * matches go to "out", events that came too late to "late".
 *
 * Rule versions. The rules live in broadcast state, identical on every
 * subtask: "rules" maps a rule id to its history of versions, each with
 * the event time it takes effect at. A change takes effect at its record's
 * event time (the rules source's time_field; a change without one at the
 * start of time), and never before the version it follows: effective =
 * max(its time, the previous version's). The version of a rule in force for
 * an event at time t is the last one effective at or before t (a deletion
 * means: no such rule then). A change is refused (counted in
 * rules_changes_total{result="rejected"} and logged by subtask 1) when it is
 * malformed, its rule does not compile, its version is older than the
 * newest one of its id, it adds a rule that exists or replaces or deletes
 * one that does not, or it would exceed max_rules ids; a change whose
 * version equals the newest one is a repetition (at-least-once replay) and
 * is ignored ({result="ignored"}). All of this depends on the change
 * records alone, as broadcast state must: the rule stream may run ahead of
 * the events (a file of changes is read at once), and each event still
 * meets the version of its own time. Superseded versions are kept while
 * the newest change seen is less than `history` after their successor took
 * effect; so events may lag behind the rule stream by up to `history`.
 *
 * Order. Records are evaluated in event-time order per key, ties in
 * arrival order, whatever order they arrive in: process() buffers an event
 * (map state "pending", user key = its time) and registers an event-time
 * timer at its time; when the watermark (the minimum over the events and
 * the rules input) passes it, on_timer() evaluates the events of that time
 * against every rule in force at that time, in rule id order. An event at
 * or behind the watermark on arrival, or without event time, goes to port
 * "late" unchanged (rules_late_records_total). A change stream that stays
 * open and quiet (Kafka, a FIFO) needs `watermarks.idle_timeout` on its
 * source, or its watermark holds every event back; a change that then
 * arrives behind the events' watermark rules only the events not judged
 * yet.
 *
 * Matching, per key and rule (independent of other rules):
 *   count n / sequence s1..sn: positions P1..Pn (count: n times its
 *     event). A match ends at record r when records e1 .. en = r in order,
 *     after the rule's previous match, match P1 .. Pn and r.ts - e1.ts <=
 *     within (relaxed contiguity: other records may come between). The
 *     match reported is the one with the latest e1; the rule then starts
 *     over after r, so its matches never share records.
 *     Output ts = r.ts, {"type", "rule", "version", "key", "first_ts":
 *     e1.ts, "last_ts": r.ts, "events": n}.
 *   absence e, not_followed_by f, same, within: a record matching e at t1
 *     starts a wait until t1 + within; a later record (in the order above)
 *     at ts <= t1 + within that matches f with the same `same` values
 *     (equal as msgpack bytes; a missing field counts as null) ends it;
 *     a new e record with the same values restarts it; waits with other
 *     values go on side by side (at most 1000 per key and rule, more are
 *     dropped: rules_dropped_waits_total). A wait that nothing ended fires
 *     when the watermark passes t1 + within: output ts = t1 + within,
 *     {"type", "rule", "version", "key", "first_ts": t1, "last_ts": t1,
 *     "events": 1} plus one field per `same` field.
 *   Versions: a key's progress on a rule belongs to the version that made
 *     it. At every evaluation of the key at time t (an event, or a wait's
 *     end), progress of a version that is not the one in force at t is
 *     dropped first: a replaced or deleted rule releases its per-key state
 *     the next time the key is evaluated, and its waits do not fire. Keys
 *     never evaluated again lose it through the TTL.
 *
 * Keyed state (event-time TTL of max_within + 1 min, so an entry outlives
 * every use a rule can make of it; timers normally delete first):
 *   "pending" (map) time (8 bytes, big-endian, sign bit flipped) -> the
 *             events of that time, their msgpack values one after another.
 *   "runs"    (value) [1, [[id, version, data], ...]]: per rule with
 *             progress, data = [first time of the partial match through
 *             position j, for j = 1 .. n-1] (int or nil), or for absence
 *             rules the waits [[t1, deadline, same values (bin)], ...].
 * Broadcast state: "rules" (id -> history, rulebook.h) and "meta"
 * ("clock" -> the newest change's event time, for `history`).
 *
 * Metrics: rules_matches_total{rule=id} per rule id, rules_eval_seconds
 * (histogram: evaluating one event against every rule in force),
 * rules_changes_total{result=applied|rejected|ignored}, rules_active (ids
 * whose newest version is a rule), rules_late_records_total,
 * rules_dropped_waits_total.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cond.h"
#include "mpscan.h"
#include "rulebook.h"

#include "weir/msgpack.h"
#include "weir/weir.h"

enum { RL_OUT = 0, RL_LATE = 1 };
enum { RL_EVENTS = 0, RL_RULES = 1 };

#define RL_RUNS_FORMAT 1
#define RL_MAX_WAITS   1000
#define RL_TTL_SLACK   60000
#define RL_TS_LIMIT    (INT64_MAX / 4)
#define RL_LOG_LIMIT   20

/* ------------------------------------------------------------------------ */
/* Parameters and ports                                                      */
/* ------------------------------------------------------------------------ */

static const weir_param_def rl_p_max_within = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "max_within",
    .type = WEIR_PARAM_DURATION,
    .default_value = "7d",
    .min = 1,
    .description = "longest `within` a rule may have; the keyed state's TTL "
                   "follows it"};
static const weir_param_def rl_p_history = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN,
    .name = "history",
    .type = WEIR_PARAM_DURATION,
    .default_value = "7d",
    .min = 0,
    .description = "how long a superseded rule version is kept, on the rule "
                   "stream's clock: how far events may lag behind it"};
static const weir_param_def rl_p_max_rules = {
    .size = sizeof(weir_param_def),
    .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX,
    .name = "max_rules",
    .type = WEIR_PARAM_INT,
    .default_value = "10000",
    .min = 1,
    .max = 1000000,
    .description = "rule ids kept at most (a change beyond is refused)"};
static const weir_param_def *const rl_params[] = {
    &rl_p_max_within, &rl_p_history, &rl_p_max_rules, NULL};
static const char *const rl_inputs[] = {"events", "rules", NULL};
static const char *const rl_outputs[] = {"out", "late", NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

/* A wait of an absence rule; `same` is the msgpack array of the first
 * record's same-field values (malloc'ed). */
typedef struct rl_wait {
    int64_t first, deadline;
    char *same;
    size_t same_len;
} rl_wait;

/* One rule's progress for the current key. */
typedef struct rl_run {
    char id[RB_MAX_ID + 1];
    size_t id_len;
    int64_t version;
    const rb_entry *entry;          /* NULL: the id is gone */
    int64_t best[RB_MAX_POSITIONS]; /* [1 .. n-1]: partial matches */
    rl_wait *w;
    size_t n_w, cap_w;
} rl_run;

typedef struct rl {
    int64_t max_within, history, max_rules;
    int logs; /* subtask 0 logs rule changes */
    uint64_t logged;
    weir_broadcast_state *b_rules, *b_meta;
    weir_state *pending, *runs_st;
    /* the rules, decoded from broadcast state, sorted by id */
    rb_entry **book;
    size_t n_book, cap_book;
    int64_t clock; /* newest change's event time, or RB_NONE */
    /* the current key's progress, sorted by id */
    rl_run *runs;
    size_t n_runs, cap_runs;
    int had_runs;
    uint8_t hit[RB_MAX_POSITIONS + 1];
    weir_metric *m_eval, *m_late, *m_dropped, *m_active;
    weir_metric *m_applied, *m_rejected, *m_ignored;
    weir_mp_reader rd, ev, chg;
    weir_mp_writer w, sb;
    char *scratch;
    size_t scratch_cap;
    int warned_no_time;
} rl;

static int rl_oom(weir_ctx *ctx)
{
    weir_set_error(ctx, "rules: out of memory");
    return WEIR_ENOMEM;
}

static int rl_state_error(weir_ctx *ctx, const char *op, const char *state,
                          int rc)
{
    weir_set_error(ctx, "rules: %s of state '%s' failed: %s", op, state,
                   weir_strerror(rc));
    return rc;
}

static void rl_time_key(unsigned char out[8], int64_t ts)
{
    uint64_t v = (uint64_t)ts ^ 0x8000000000000000ULL;
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static int rl_timer(weir_ctx *ctx, int64_t t)
{
    int rc = weir_timer_register(ctx, WEIR_TIME_EVENT, t);
    if (rc < 0)
        weir_set_error(ctx, "rules: registering a timer at %lld failed: %s",
                       (long long)t, weir_strerror(rc));
    return rc;
}

static int rl_reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    char *b = realloc(*buf, need);
    if (!b)
        return WEIR_ENOMEM;
    *buf = b;
    *cap = need;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The book: rule ids and their histories                                    */
/* ------------------------------------------------------------------------ */

static int rl_id_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    return c ? c : (an > bn) - (an < bn);
}

/* Index of id in the book, or where it goes (*found = 0). */
static size_t rl_book_search(const rl *p, const char *id, size_t len,
                             int *found)
{
    size_t lo = 0, hi = p->n_book;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = rl_id_cmp(id, len, p->book[mid]->id, p->book[mid]->id_len);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static rb_entry *rl_book_find(const rl *p, const char *id, size_t len)
{
    int found;
    size_t i = rl_book_search(p, id, len, &found);
    return found ? p->book[i] : NULL;
}

/* Puts e in the book, replacing (and freeing) the entry of its id; the
 * rule's match counter goes over to it, or is registered. */
static int rl_book_set(weir_ctx *ctx, rl *p, rb_entry *e)
{
    int found;
    size_t i = rl_book_search(p, e->id, e->id_len, &found);
    if (found) {
        e->matches = p->book[i]->matches;
        rb_entry_free(p->book[i]);
        p->book[i] = e;
        return 0;
    }
    if (p->n_book == p->cap_book) {
        size_t cap = p->cap_book ? 2 * p->cap_book : 16;
        rb_entry **v = realloc(p->book, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        p->book = v;
        p->cap_book = cap;
    }
    memmove(&p->book[i + 1], &p->book[i], (p->n_book - i) * sizeof *p->book);
    p->book[i] = e;
    p->n_book++;
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_matches_total",
                         "matches emitted per rule", "rule", e->id,
                         &e->matches);
    return 0;
}

static void rl_book_remove(rl *p, size_t i)
{
    rb_entry_free(p->book[i]);
    memmove(&p->book[i], &p->book[i + 1],
            (p->n_book - i - 1) * sizeof *p->book);
    p->n_book--;
}

static void rl_gauge_active(weir_ctx *ctx, rl *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_book; i++) {
        const rb_version *v = rb_entry_last(p->book[i]);
        n += v && v->body;
    }
    weir_gauge_set(ctx, p->m_active, (double)n);
}

/* Decodes stored history bytes of `id` into the book. */
static int rl_book_load(weir_ctx *ctx, rl *p, const char *id, size_t id_len,
                        const void *bytes, size_t len)
{
    char why[512];
    size_t bad = 0;
    rb_entry *e = NULL;
    int rc = rb_entry_decode(id, id_len, bytes, len, p->max_within, &e, &bad,
                             why, sizeof why);
    if (rc == WEIR_ENOMEM)
        return rl_oom(ctx);
    if (rc < 0)
        return weir_set_error(ctx, "rules: %s", why);
    if (bad)
        weir_log(ctx, WEIR_LOG_WARN,
                 "rules: %s; %zu stored version%s of it count as deleted", why,
                 bad, bad == 1 ? "" : "s");
    if (rl_book_set(ctx, p, e) < 0) {
        rb_entry_free(e);
        return rl_oom(ctx);
    }
    return 0;
}

/* Writes the history in p->w for `id` to broadcast state and the book. */
static int rl_store_history(weir_ctx *ctx, rl *p, const char *id, size_t id_len)
{
    int rc = weir_broadcast_put(ctx, p->b_rules, id, id_len, p->w.buf.data,
                                p->w.buf.size);
    if (rc < 0)
        return rl_state_error(ctx, "broadcast_put", "rules", rc);
    return rl_book_load(ctx, p, id, id_len, p->w.buf.data, p->w.buf.size);
}

/* ------------------------------------------------------------------------ */
/* Rule changes (process_broadcast)                                          */
/* ------------------------------------------------------------------------ */

static int rl_reject(weir_ctx *ctx, rl *p, const weir_record *rec,
                     const rb_change *ch, const char *why)
{
    weir_counter_add(ctx, p->m_rejected, 1);
    if (p->logs && p->logged++ < RL_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN,
                 "rules: rule change refused (id '%.*s', version %lld, ts "
                 "%lld): %s",
                 ch && ch->id ? (int)ch->id_len : 1,
                 ch && ch->id ? ch->id : "?", ch ? (long long)ch->version : 0LL,
                 (long long)rec->ts, why);
    return 0;
}

/* Drops versions superseded more than `history` before the clock, and ids
 * whose only version left is such an old deletion. */
static int rl_prune(weir_ctx *ctx, rl *p)
{
    if (p->clock == RB_NONE || p->clock < INT64_MIN + p->history)
        return 0;
    int64_t horizon = p->clock - p->history;
    for (size_t i = 0; i < p->n_book;) {
        rb_entry *e = p->book[i];
        size_t drop = 0;
        while (drop + 1 < e->n && e->v[drop + 1].eff <= horizon)
            drop++;
        const rb_version *last = &e->v[e->n - 1];
        int rc;
        if (drop + 1 == e->n && !last->body && last->eff <= horizon) {
            rc = weir_broadcast_delete(ctx, p->b_rules, e->id, e->id_len);
            if (rc < 0)
                return rl_state_error(ctx, "broadcast_delete", "rules", rc);
            rl_book_remove(p, i);
            continue;
        }
        if (drop) {
            char id[RB_MAX_ID];
            size_t id_len = e->id_len;
            memcpy(id, e->id, id_len);
            weir_mp_writer_reset(&p->w);
            if (rb_history_encode(&p->w.pk, e, drop, NULL) < 0)
                return rl_oom(ctx);
            if ((rc = rl_store_history(ctx, p, id, id_len)) < 0)
                return rc;
        }
        i++;
    }
    return 0;
}

static int rl_advance_clock(weir_ctx *ctx, rl *p, int64_t ts)
{
    if (ts == WEIR_TS_NONE || (p->clock != RB_NONE && ts <= p->clock))
        return 0;
    p->clock = ts;
    weir_mp_writer_reset(&p->w);
    if (msgpack_pack_int64(&p->w.pk, ts))
        return rl_oom(ctx);
    int rc = weir_broadcast_put(ctx, p->b_meta, "clock", 5, p->w.buf.data,
                                p->w.buf.size);
    if (rc < 0)
        return rl_state_error(ctx, "broadcast_put", "meta", rc);
    return rl_prune(ctx, p);
}

/* Applies a parsed change; refusals are counted, not errors. */
static int rl_apply(weir_ctx *ctx, rl *p, const weir_record *rec,
                    const rb_change *ch)
{
    char why[512];
    const rb_entry *e = rl_book_find(p, ch->id, ch->id_len);
    const rb_version *last = rb_entry_last(e);
    if (last && ch->version == last->version) {
        weir_counter_add(ctx, p->m_ignored, 1);
        return 0;
    }
    if (last && ch->version < last->version) {
        snprintf(why, sizeof why, "version %lld is newer",
                 (long long)last->version);
        return rl_reject(ctx, p, rec, ch, why);
    }
    int exists = last && last->body;
    if (ch->op == RB_ADD && exists)
        return rl_reject(ctx, p, rec, ch, "the rule exists; use replace");
    if (ch->op != RB_ADD && !exists)
        return rl_reject(ctx, p, rec, ch, "no such rule");
    if (!e && p->n_book >= (size_t)p->max_rules) {
        snprintf(why, sizeof why, "max_rules (%lld) rule ids are kept",
                 (long long)p->max_rules);
        return rl_reject(ctx, p, rec, ch, why);
    }
    if (ch->rule) {
        rb_rule r;
        int rc = rb_compile(ch->rule, p->max_within, &r, why, sizeof why);
        if (rc == WEIR_ENOMEM)
            return rl_oom(ctx);
        if (rc < 0)
            return rl_reject(ctx, p, rec, ch, why);
        rb_rule_free(&r);
    }
    rb_version add = {.eff = rec->ts == WEIR_TS_NONE ? INT64_MIN : rec->ts,
                      .version = ch->version,
                      .body = ch->rule};
    if (last && add.eff < last->eff)
        add.eff = last->eff;
    weir_mp_writer_reset(&p->w);
    if (rb_history_encode(&p->w.pk, e, 0, &add) < 0)
        return rl_oom(ctx);
    int rc = rl_store_history(ctx, p, ch->id, ch->id_len);
    if (rc < 0)
        return rc;
    weir_counter_add(ctx, p->m_applied, 1);
    if (p->logs)
        weir_log(ctx, WEIR_LOG_INFO,
                 "rules: rule '%.*s' version %lld %s, in force from %lld",
                 (int)ch->id_len, ch->id, (long long)ch->version,
                 ch->op == RB_ADD       ? "added"
                 : ch->op == RB_REPLACE ? "replaced"
                                        : "deleted",
                 (long long)add.eff);
    return 0;
}

static int rl_process_broadcast(weir_ctx *ctx, void *self,
                                const weir_record *rec, uint32_t port)
{
    rl *p = self;
    const msgpack_object *o = weir_mp_read(&p->chg, rec->value, rec->value_len);
    rb_change ch;
    char why[256];
    int rc;
    if (rb_change_parse(o, &ch, why, sizeof why) < 0)
        rc = rl_reject(ctx, p, rec, ch.id ? &ch : NULL, why);
    else
        rc = rl_apply(ctx, p, rec, &ch);
    if (rc == 0)
        rc = rl_advance_clock(ctx, p, rec->ts);
    rl_gauge_active(ctx, p);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The current key's progress ("runs")                                       */
/* ------------------------------------------------------------------------ */

static void rl_run_clear(rl_run *r)
{
    for (size_t k = 0; k < r->n_w; k++)
        free(r->w[k].same);
    free(r->w);
    memset(r, 0, sizeof *r);
}

static void rl_runs_clear(rl *p)
{
    for (size_t i = 0; i < p->n_runs; i++)
        rl_run_clear(&p->runs[i]);
    p->n_runs = 0;
}

static void rl_run_remove(rl *p, size_t i)
{
    rl_run_clear(&p->runs[i]);
    memmove(&p->runs[i], &p->runs[i + 1],
            (p->n_runs - i - 1) * sizeof *p->runs);
    p->n_runs--;
}

/* The run of `id`, created (empty, for `version`) when absent; NULL when
 * out of memory. */
static rl_run *rl_run_get(rl *p, const rb_entry *e, int64_t version)
{
    size_t i = 0;
    int c = 1;
    while (i < p->n_runs && (c = rl_id_cmp(p->runs[i].id, p->runs[i].id_len,
                                           e->id, e->id_len)) < 0)
        i++;
    if (i < p->n_runs && c == 0)
        return &p->runs[i];
    if (p->n_runs == p->cap_runs) {
        size_t cap = p->cap_runs ? 2 * p->cap_runs : 8;
        rl_run *v = realloc(p->runs, cap * sizeof *v);
        if (!v)
            return NULL;
        p->runs = v;
        p->cap_runs = cap;
    }
    memmove(&p->runs[i + 1], &p->runs[i], (p->n_runs - i) * sizeof *p->runs);
    rl_run *r = &p->runs[i];
    memset(r, 0, sizeof *r);
    memcpy(r->id, e->id, e->id_len);
    r->id_len = e->id_len;
    r->version = version;
    r->entry = e;
    for (size_t j = 0; j < RB_MAX_POSITIONS; j++)
        r->best[j] = RB_NONE;
    p->n_runs++;
    return r;
}

static int rl_wait_add(rl_run *r, int64_t first, int64_t deadline,
                       const void *same, size_t same_len)
{
    if (r->n_w == r->cap_w) {
        size_t cap = r->cap_w ? 2 * r->cap_w : 4;
        rl_wait *v = realloc(r->w, cap * sizeof *v);
        if (!v)
            return WEIR_ENOMEM;
        r->w = v;
        r->cap_w = cap;
    }
    rl_wait *w = &r->w[r->n_w];
    if (!(w->same = malloc(same_len ? same_len : 1)))
        return WEIR_ENOMEM;
    memcpy(w->same, same, same_len);
    w->same_len = same_len;
    w->first = first;
    w->deadline = deadline;
    r->n_w++;
    return 0;
}

static void rl_wait_remove(rl_run *r, size_t k)
{
    free(r->w[k].same);
    memmove(&r->w[k], &r->w[k + 1], (r->n_w - k - 1) * sizeof *r->w);
    r->n_w--;
}

static int rl_time_of(const msgpack_object *o, int64_t *t)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *t = RB_NONE;
        return 0;
    }
    return weir_mp_as_int(o, t);
}

/* Loads one stored run; runs of unknown ids or malformed ones are left
 * out (the version check drops the rest). */
static int rl_runs_load_one(rl *p, const msgpack_object *o)
{
    const char *id;
    size_t id_len;
    int64_t version;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
        weir_mp_as_str(&o->via.array.ptr[0], &id, &id_len) < 0 ||
        id_len > RB_MAX_ID ||
        weir_mp_as_int(&o->via.array.ptr[1], &version) < 0 ||
        o->via.array.ptr[2].type != MSGPACK_OBJECT_ARRAY)
        return 0;
    const rb_entry *e = rl_book_find(p, id, id_len);
    const rb_version *v = NULL;
    for (size_t i = 0; e && i < e->n; i++)
        if (e->v[i].version == version && e->v[i].live)
            v = &e->v[i];
    if (!v)
        return 0;
    const msgpack_object *d = &o->via.array.ptr[2];
    rl_run *r = rl_run_get(p, e, version);
    if (!r)
        return WEIR_ENOMEM;
    if (v->rule.kind != RB_ABSENCE) {
        if (d->via.array.size != v->rule.n - 1)
            return 0;
        for (uint32_t j = 1; j < v->rule.n; j++)
            if (rl_time_of(&d->via.array.ptr[j - 1], &r->best[j]) < 0)
                r->best[j] = RB_NONE;
        return 0;
    }
    for (uint32_t k = 0; k < d->via.array.size; k++) {
        const msgpack_object *w = &d->via.array.ptr[k];
        int64_t first, deadline;
        const char *same;
        size_t same_len;
        if (w->type != MSGPACK_OBJECT_ARRAY || w->via.array.size != 3 ||
            weir_mp_as_int(&w->via.array.ptr[0], &first) < 0 ||
            weir_mp_as_int(&w->via.array.ptr[1], &deadline) < 0 ||
            weir_mp_as_str(&w->via.array.ptr[2], &same, &same_len) < 0)
            continue;
        if (rl_wait_add(r, first, deadline, same, same_len) < 0)
            return WEIR_ENOMEM;
    }
    return 0;
}

static int rl_runs_load(weir_ctx *ctx, rl *p)
{
    rl_runs_clear(p);
    const void *v;
    size_t n;
    int rc = weir_value_get(ctx, p->runs_st, &v, &n);
    p->had_runs = rc == 0;
    if (rc == WEIR_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rl_state_error(ctx, "value_get", "runs", rc);
    const msgpack_object *o = weir_mp_read(&p->rd, v, n);
    int64_t format;
    if (!o || o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2 ||
        weir_mp_as_int(&o->via.array.ptr[0], &format) < 0 ||
        format != RL_RUNS_FORMAT ||
        o->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY)
        return weir_set_error(ctx, "rules: state 'runs' of a key is damaged");
    const msgpack_object *a = &o->via.array.ptr[1];
    for (uint32_t i = 0; i < a->via.array.size; i++)
        if (rl_runs_load_one(p, &a->via.array.ptr[i]) < 0)
            return rl_oom(ctx);
    return 0;
}

/* Whether a run still holds something at time t (stale partial matches,
 * older than within, are forgotten here). */
static int rl_run_alive(rl_run *r, const rb_rule *rule, int64_t t)
{
    if (rule->kind == RB_ABSENCE)
        return r->n_w > 0;
    int any = 0;
    for (uint32_t j = 1; j < rule->n; j++) {
        if (r->best[j] != RB_NONE && t - r->best[j] > rule->within)
            r->best[j] = RB_NONE;
        any |= r->best[j] != RB_NONE;
    }
    return any;
}

static int rl_pack_time(msgpack_packer *pk, int64_t t)
{
    return t == RB_NONE ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, t);
}

static int rl_run_encode(msgpack_packer *pk, const rl_run *r,
                         const rb_rule *rule)
{
    int bad = msgpack_pack_array(pk, 3) ||
              weir_mp_pack_strn(pk, r->id, r->id_len) ||
              msgpack_pack_int64(pk, r->version);
    if (rule->kind != RB_ABSENCE) {
        bad = bad || msgpack_pack_array(pk, rule->n - 1);
        for (uint32_t j = 1; j < rule->n && !bad; j++)
            bad = rl_pack_time(pk, r->best[j]);
        return bad;
    }
    bad = bad || msgpack_pack_array(pk, (uint32_t)r->n_w);
    for (size_t k = 0; k < r->n_w && !bad; k++)
        bad = msgpack_pack_array(pk, 3) ||
              msgpack_pack_int64(pk, r->w[k].first) ||
              msgpack_pack_int64(pk, r->w[k].deadline) ||
              msgpack_pack_bin_with_body(pk, r->w[k].same, r->w[k].same_len);
    return bad;
}

/* Writes the current key's runs that hold something (at time t), or
 * deletes the state when none does. */
static int rl_runs_save(weir_ctx *ctx, rl *p, int64_t t)
{
    size_t live = 0;
    for (size_t i = 0; i < p->n_runs;) {
        const rb_version *v = rb_entry_at(p->runs[i].entry, t);
        if (!v || !rl_run_alive(&p->runs[i], &v->rule, t)) {
            rl_run_remove(p, i);
            continue;
        }
        live++;
        i++;
    }
    int rc;
    if (!live) {
        if (!p->had_runs)
            return 0;
        rc = weir_value_delete(ctx, p->runs_st);
        return rc < 0 ? rl_state_error(ctx, "value_delete", "runs", rc) : 0;
    }
    msgpack_packer *pk = &p->w.pk;
    weir_mp_writer_reset(&p->w);
    int bad = msgpack_pack_array(pk, 2) ||
              msgpack_pack_int(pk, RL_RUNS_FORMAT) ||
              msgpack_pack_array(pk, (uint32_t)live);
    for (size_t i = 0; i < p->n_runs && !bad; i++)
        bad = rl_run_encode(pk, &p->runs[i],
                            &rb_entry_at(p->runs[i].entry, t)->rule);
    if (bad)
        return rl_oom(ctx);
    rc = weir_value_put(ctx, p->runs_st, p->w.buf.data, p->w.buf.size);
    return rc < 0 ? rl_state_error(ctx, "value_put", "runs", rc) : 0;
}

/* ------------------------------------------------------------------------ */
/* Matching                                                                  */
/* ------------------------------------------------------------------------ */

static int rl_emit(weir_ctx *ctx, rl *p, const rl_run *r, const rb_rule *rule,
                   const void *key, size_t key_len, int64_t ts, int64_t first,
                   int64_t last, uint32_t events, const rl_wait *w)
{
    msgpack_packer *pk = &p->w.pk;
    weir_mp_writer_reset(&p->w);
    const msgpack_object *same = NULL;
    if (w && w->same_len)
        same = weir_mp_read(&p->rd, w->same, w->same_len);
    size_t n_same = same && same->type == MSGPACK_OBJECT_ARRAY &&
                            same->via.array.size == rule->n_same
                        ? rule->n_same
                        : 0;
    int bad =
        msgpack_pack_map(pk, (uint32_t)(7 + n_same)) ||
        weir_mp_pack_str(pk, "type") ||
        weir_mp_pack_str(pk, rb_kind_name(rule->kind)) ||
        weir_mp_pack_str(pk, "rule") ||
        weir_mp_pack_strn(pk, r->id, r->id_len) ||
        weir_mp_pack_str(pk, "version") || msgpack_pack_int64(pk, r->version) ||
        weir_mp_pack_str(pk, "key") || weir_mp_pack_strn(pk, key, key_len) ||
        weir_mp_pack_str(pk, "first_ts") || msgpack_pack_int64(pk, first) ||
        weir_mp_pack_str(pk, "last_ts") || msgpack_pack_int64(pk, last) ||
        weir_mp_pack_str(pk, "events") || msgpack_pack_uint32(pk, events);
    for (size_t k = 0; k < n_same && !bad; k++)
        bad = weir_mp_pack_strn(pk, rule->same[k], rule->same_len[k]) ||
              msgpack_pack_object(pk, same->via.array.ptr[k]);
    if (bad)
        return rl_oom(ctx);
    weir_counter_add(ctx, r->entry->matches, 1);
    int rc =
        weir_emit(ctx, RL_OUT, key, key_len, ts, p->w.buf.data, p->w.buf.size);
    if (rc < 0)
        weir_set_error(ctx, "rules: emit to port out failed: %s",
                       weir_strerror(rc));
    return rc;
}

/* The `same` values of record `map` under `rule`, packed into p->sb. */
static int rl_same_values(rl *p, const rb_rule *rule, const msgpack_object *map)
{
    msgpack_packer *pk = &p->sb.pk;
    weir_mp_writer_reset(&p->sb);
    int bad = msgpack_pack_array(pk, (uint32_t)rule->n_same);
    for (size_t k = 0; k < rule->n_same && !bad; k++) {
        const msgpack_object *v =
            cond_field(map, rule->same[k], rule->same_len[k]);
        bad = v ? msgpack_pack_object(pk, *v) : msgpack_pack_nil(pk);
    }
    return bad ? WEIR_ENOMEM : 0;
}

static int rl_same_is(const rl *p, const rl_wait *w)
{
    return w->same_len == p->sb.buf.size &&
           memcmp(w->same, p->sb.buf.data, w->same_len) == 0;
}

/* Count and sequence rules: one record at t (the positions it matches in
 * p->hit) advances the partial matches; returns 1 with the first time of a
 * completed match in *first. */
static int rl_advance(const rl *p, rl_run *r, const rb_rule *rule, int64_t t,
                      int64_t *first)
{
    int64_t done = RB_NONE;
    for (uint32_t j = 1; j < rule->n; j++)
        if (r->best[j] != RB_NONE && t - r->best[j] > rule->within)
            r->best[j] = RB_NONE;
    /* From the last position back, so that one record moves each partial
     * match by one position at most. */
    for (uint32_t j = rule->n - 1; j >= 1; j--) {
        if (r->best[j] == RB_NONE || !p->hit[rule->pos[j]])
            continue;
        if (j + 1 == rule->n) {
            if (r->best[j] > done)
                done = r->best[j];
        } else if (r->best[j] > r->best[j + 1]) {
            r->best[j + 1] = r->best[j];
        }
    }
    if (p->hit[rule->pos[0]]) {
        if (rule->n == 1)
            done = t;
        else if (r->best[1] < t)
            r->best[1] = t;
    }
    if (done == RB_NONE)
        return 0;
    for (uint32_t j = 0; j < RB_MAX_POSITIONS; j++)
        r->best[j] = RB_NONE;
    *first = done;
    return 1;
}

static int rl_absence(weir_ctx *ctx, rl *p, rl_run *r, const rb_rule *rule,
                      const msgpack_object *map, int64_t t, int hit_neg)
{
    if (hit_neg && r->n_w) {
        if (rl_same_values(p, rule, map) < 0)
            return rl_oom(ctx);
        for (size_t k = 0; k < r->n_w;) {
            if (r->w[k].deadline >= t && rl_same_is(p, &r->w[k]))
                rl_wait_remove(r, k);
            else
                k++;
        }
    }
    if (!p->hit[rule->pos[0]])
        return 0;
    if (rl_same_values(p, rule, map) < 0)
        return rl_oom(ctx);
    for (size_t k = 0; k < r->n_w; k++)
        if (rl_same_is(p, &r->w[k])) {
            rl_wait_remove(r, k);
            break;
        }
    if (r->n_w >= RL_MAX_WAITS) {
        weir_counter_add(ctx, p->m_dropped, 1);
        return 0;
    }
    int64_t deadline = t + rule->within;
    if (rl_wait_add(r, t, deadline, p->sb.buf.data, p->sb.buf.size) < 0)
        return rl_oom(ctx);
    return rl_timer(ctx, deadline);
}

/* Evaluates one record (value bytes) of the current key at time t against
 * every rule in force at t. */
static int rl_eval(weir_ctx *ctx, rl *p, const void *key, size_t key_len,
                   int64_t t, const void *value, size_t len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const msgpack_object *map = weir_mp_read(&p->ev, value, len);
    int rc = 0;
    for (size_t i = 0; i < p->n_book && rc == 0; i++) {
        const rb_entry *e = p->book[i];
        const rb_version *v = rb_entry_at(e, t);
        if (!v)
            continue;
        const rb_rule *rule = &v->rule;
        int any = 0;
        for (size_t k = 0; k < rule->n_preds; k++)
            any |= p->hit[k] = (uint8_t)cond_eval(&rule->preds[k], map);
        int hit_neg = rule->kind == RB_ABSENCE && cond_eval(&rule->neg, map);
        if (!any && !hit_neg)
            continue; /* nothing changes for this rule */
        rl_run *r = rl_run_get(p, e, v->version);
        if (!r)
            return rl_oom(ctx);
        if (rule->kind == RB_ABSENCE) {
            rc = rl_absence(ctx, p, r, rule, map, t, hit_neg);
            continue;
        }
        int64_t first;
        if (rl_advance(p, r, rule, t, &first))
            rc = rl_emit(ctx, p, r, rule, key, key_len, t, first, t, rule->n,
                         NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    weir_histogram_observe(ctx, p->m_eval,
                           (double)(t1.tv_sec - t0.tv_sec) +
                               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return rc;
}

/* Fires the waits due at or before `upto` (strictly before with
 * `before`), each if the version that started it is in force at its
 * deadline. */
static int rl_fire(weir_ctx *ctx, rl *p, const void *key, size_t key_len,
                   int64_t upto, int before)
{
    for (size_t i = 0; i < p->n_runs; i++) {
        rl_run *r = &p->runs[i];
        for (size_t k = 0; k < r->n_w;) {
            rl_wait *w = &r->w[k];
            if (before ? w->deadline >= upto : w->deadline > upto) {
                k++;
                continue;
            }
            const rb_version *v = rb_entry_at(r->entry, w->deadline);
            int rc = 0;
            if (v && v->version == r->version && v->rule.kind == RB_ABSENCE)
                rc = rl_emit(ctx, p, r, &v->rule, key, key_len, w->deadline,
                             w->first, w->first, 1, w);
            rl_wait_remove(r, k);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Drops the progress of versions not in force at t (replaced or deleted
 * rules release their per-key state here). */
static void rl_release(rl *p, int64_t t)
{
    for (size_t i = 0; i < p->n_runs;) {
        const rb_version *v = rb_entry_at(p->runs[i].entry, t);
        if (!v || v->version != p->runs[i].version)
            rl_run_remove(p, i);
        else
            i++;
    }
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */
/* ------------------------------------------------------------------------ */

static int rl_late(weir_ctx *ctx, rl *p, const weir_record *rec)
{
    weir_counter_add(ctx, p->m_late, 1);
    int rc = weir_emit(ctx, RL_LATE, rec->key, rec->key_len, rec->ts,
                       rec->value, rec->value_len);
    if (rc < 0)
        weir_set_error(ctx, "rules: emit to port late failed: %s",
                       weir_strerror(rc));
    return rc;
}

static int rl_process(weir_ctx *ctx, void *self, const weir_record *rec,
                      uint32_t port)
{
    rl *p = self;
    if (rec->ts == WEIR_TS_NONE || rec->ts > RL_TS_LIMIT ||
        rec->ts < -RL_TS_LIMIT) {
        if (!p->warned_no_time++)
            weir_log(ctx, WEIR_LOG_WARN,
                     "rules: events without a usable event time go to port "
                     "late (first: ts %lld); set the source's time_field",
                     (long long)rec->ts);
        return rl_late(ctx, p, rec);
    }
    if (rec->ts <= weir_watermark(ctx))
        return rl_late(ctx, p, rec);
    /* A value that is no msgpack object can match nothing. */
    if (!rec->value_len || !mpscan_plausible(rec->value, rec->value_len))
        return 0;
    unsigned char tk[8];
    rl_time_key(tk, rec->ts);
    const void *old = NULL;
    size_t old_len = 0;
    int rc = weir_map_get(ctx, p->pending, tk, sizeof tk, &old, &old_len);
    if (rc < 0 && rc != WEIR_ENOTFOUND)
        return rl_state_error(ctx, "map_get", "pending", rc);
    if (rl_reserve(&p->scratch, &p->scratch_cap, old_len + rec->value_len) < 0)
        return rl_oom(ctx);
    if (old_len)
        memcpy(p->scratch, old, old_len);
    memcpy(p->scratch + old_len, rec->value, rec->value_len);
    rc = weir_map_put(ctx, p->pending, tk, sizeof tk, p->scratch,
                      old_len + rec->value_len);
    if (rc < 0)
        return rl_state_error(ctx, "map_put", "pending", rc);
    return old_len ? 0 : rl_timer(ctx, rec->ts);
}

/* Moves the events buffered at t into p->scratch (*len bytes). */
static int rl_take_pending(weir_ctx *ctx, rl *p, int64_t t, size_t *len)
{
    unsigned char tk[8];
    const void *v;
    rl_time_key(tk, t);
    *len = 0;
    int rc = weir_map_get(ctx, p->pending, tk, sizeof tk, &v, len);
    if (rc == WEIR_ENOTFOUND) {
        *len = 0;
        return 0;
    }
    if (rc < 0)
        return rl_state_error(ctx, "map_get", "pending", rc);
    if (rl_reserve(&p->scratch, &p->scratch_cap, *len) < 0)
        return rl_oom(ctx);
    memcpy(p->scratch, v, *len);
    rc = weir_map_delete(ctx, p->pending, tk, sizeof tk);
    return rc < 0 ? rl_state_error(ctx, "map_delete", "pending", rc) : 0;
}

static int rl_on_timer(weir_ctx *ctx, void *self, const void *key,
                       size_t key_len, weir_time_domain domain, int64_t t)
{
    rl *p = self;
    if (domain != WEIR_TIME_EVENT)
        return 0;
    size_t len;
    int rc;
    if ((rc = rl_take_pending(ctx, p, t, &len)) < 0 ||
        (rc = rl_runs_load(ctx, p)) < 0 ||
        (rc = rl_fire(ctx, p, key, key_len, t, 1)) < 0)
        return rc;
    rl_release(p, t);
    const unsigned char *b = (const unsigned char *)p->scratch;
    for (size_t off = 0; off < len;) {
        size_t end = off;
        if (mpscan_skip(b, len, &end, 1) < 0)
            return weir_set_error(ctx, "rules: a buffered event is damaged");
        if ((rc = rl_eval(ctx, p, key, key_len, t, b + off, end - off)) < 0)
            return rc;
        off = end;
    }
    if ((rc = rl_fire(ctx, p, key, key_len, t, 0)) < 0)
        return rc;
    return rl_runs_save(ctx, p, t);
}

/* Builds the book from broadcast state (a restore, or nothing). */
typedef struct rl_loading {
    weir_ctx *ctx;
    rl *p;
    int rc;
} rl_loading;

static int rl_load_fn(void *arg, const void *id, size_t id_len, const void *v,
                      size_t n)
{
    rl_loading *l = arg;
    if (id_len > RB_MAX_ID)
        return 0;
    l->rc = rl_book_load(l->ctx, l->p, id, id_len, v, n);
    return l->rc < 0 ? l->rc : 0;
}

static int rl_load_book(weir_ctx *ctx, rl *p)
{
    const void *v;
    size_t n;
    p->clock = RB_NONE;
    int rc = weir_broadcast_get(ctx, p->b_meta, "clock", 5, &v, &n);
    if (rc == 0) {
        const msgpack_object *o = weir_mp_read(&p->rd, v, n);
        if (!o || weir_mp_as_int(o, &p->clock) < 0)
            return weir_set_error(ctx, "rules: broadcast state 'meta' is "
                                       "damaged");
    } else if (rc != WEIR_ENOTFOUND) {
        return rl_state_error(ctx, "broadcast_get", "meta", rc);
    }
    rl_loading l = {ctx, p, 0};
    rc = weir_broadcast_iter(ctx, p->b_rules, rl_load_fn, &l);
    if (l.rc < 0)
        return l.rc;
    if (rc < 0)
        return rl_state_error(ctx, "broadcast_iter", "rules", rc);
    if (p->logs && p->n_book)
        weir_log(ctx, WEIR_LOG_INFO,
                 "rules: %zu rule ids restored from the checkpoint", p->n_book);
    rl_gauge_active(ctx, p);
    return 0;
}

static void rl_free(rl *p)
{
    for (size_t i = 0; i < p->n_book; i++)
        rb_entry_free(p->book[i]);
    free(p->book);
    rl_runs_clear(p);
    free(p->runs);
    free(p->scratch);
    weir_mp_reader_destroy(&p->rd);
    weir_mp_reader_destroy(&p->ev);
    weir_mp_reader_destroy(&p->chg);
    weir_mp_writer_destroy(&p->w);
    weir_mp_writer_destroy(&p->sb);
    free(p);
}

static int rl_declare(weir_ctx *ctx, rl *p, const char *name,
                      weir_state_kind kind, weir_state **out)
{
    weir_state_desc d = {.size = sizeof d,
                         .kind = kind,
                         .name = name,
                         .ttl_ms = p->max_within + RL_TTL_SLACK,
                         .ttl_domain = WEIR_TIME_EVENT};
    int rc = weir_state_declare(ctx, &d, out);
    if (rc < 0)
        weir_set_error(ctx, "rules: declaring state '%s' failed: %s", name,
                       weir_strerror(rc));
    return rc;
}

static int rl_declare_broadcast(weir_ctx *ctx, const char *name,
                                weir_broadcast_state **out)
{
    int rc = weir_broadcast_declare(ctx, name, out);
    if (rc < 0)
        weir_set_error(
            ctx, "rules: declaring broadcast state '%s' failed: %s%s", name,
            weir_strerror(rc),
            rc == WEIR_ENOTSUP ? " (the host is older than ABI 1.2)" : "");
    return rc;
}

static void rl_metrics(weir_ctx *ctx, rl *p)
{
    weir_metric_register(ctx, WEIR_METRIC_HISTOGRAM, "rules_eval_seconds",
                         "time to evaluate one event against every rule in "
                         "force",
                         NULL, NULL, &p->m_eval);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_late_records_total",
                         "events at or behind the watermark (or without "
                         "event time), sent to port late",
                         NULL, NULL, &p->m_late);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_dropped_waits_total",
                         "absence waits dropped because too many waited for "
                         "one key and rule",
                         NULL, NULL, &p->m_dropped);
    weir_metric_register(ctx, WEIR_METRIC_GAUGE, "rules_active",
                         "rule ids whose newest version is a rule", NULL, NULL,
                         &p->m_active);
    static const char *help = "rule changes by result";
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_changes_total", help,
                         "result", "applied", &p->m_applied);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_changes_total", help,
                         "result", "rejected", &p->m_rejected);
    weir_metric_register(ctx, WEIR_METRIC_COUNTER, "rules_changes_total", help,
                         "result", "ignored", &p->m_ignored);
}

static int rl_open(weir_ctx *ctx, void **self)
{
    rl *p = calloc(1, sizeof *p);
    if (!p)
        return rl_oom(ctx);
    weir_mp_reader_init(&p->rd);
    weir_mp_reader_init(&p->ev);
    weir_mp_reader_init(&p->chg);
    weir_mp_writer_init(&p->w);
    weir_mp_writer_init(&p->sb);
    p->clock = RB_NONE;
    p->logs = weir_subtask_index(ctx) == 0;
    int rc;
    if ((rc = weir_param_int(ctx, "max_within", &p->max_within)) < 0 ||
        (rc = weir_param_int(ctx, "history", &p->history)) < 0 ||
        (rc = weir_param_int(ctx, "max_rules", &p->max_rules)) < 0) {
        weir_set_error(ctx, "rules: reading parameters: %s", weir_strerror(rc));
        goto fail;
    }
    rl_metrics(ctx, p);
    if ((rc = rl_declare(ctx, p, "pending", WEIR_STATE_MAP, &p->pending)) < 0 ||
        (rc = rl_declare(ctx, p, "runs", WEIR_STATE_VALUE, &p->runs_st)) < 0 ||
        (rc = rl_declare_broadcast(ctx, "rules", &p->b_rules)) < 0 ||
        (rc = rl_declare_broadcast(ctx, "meta", &p->b_meta)) < 0 ||
        (rc = rl_load_book(ctx, p)) < 0)
        goto fail;
    *self = p;
    return 0;
fail:
    rl_free(p);
    return rc;
}

static void rl_close(weir_ctx *ctx, void *self)
{
    if (self)
        rl_free(self);
}

static const weir_operator rl_operator = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_KEYED,
    .name = "rules",
    .version = "1.0.0",
    .description = "per-key rules added, replaced and deleted while the job "
                   "runs (broadcast input rules): counts, sequences and "
                   "absences in event time; matches to out",
    .input_ports = rl_inputs,
    .output_ports = rl_outputs,
    .params = rl_params,
    .open = rl_open,
    .process = rl_process,
    .on_timer = rl_on_timer,
    .close = rl_close,
    .broadcast_inputs = 1u << RL_RULES,
    .process_broadcast = rl_process_broadcast,
};

static const weir_operator *const rl_ops[] = {&rl_operator, NULL};

static const weir_plugin rl_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "rules",
    .version = "1.0.0",
    .description = "dynamic per-key rules from a broadcast input",
    .operators = rl_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    /* The broadcast input needs a 1.2 host. */
    if (!host || host->abi_major != WEIR_ABI_MAJOR || host->abi_minor < 2)
        return NULL;
    return &rl_plugin;
}
