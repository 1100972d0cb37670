#include "runtime/keyed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/log.h"
#include "runtime/runtime.h"
#include "state/state.h"
#include "state/timers.h"

/* Timers fired per call into the store. */
#define KEYED_TIMER_BUDGET 1024

/* How long a TTL change may rewrite entries at the barrier; the rest is
 * done between records. */
#define KEYED_ADMIN_BUDGET_NS (50LL * 1000 * 1000)

/* One change in a subtask's mailbox. */
typedef struct keyed_admin_msg {
    struct keyed_admin_msg *next;
    keyed_admin *a;
} keyed_admin_msg;

/* The store's expiry hook: runs the plugin's on_state_expired with the
 * entry's key current, then restores the record's key. */
static int keyed_on_expired(void *arg, weir_state *st, const void *key,
                            size_t key_len, const void *ukey, size_t ukey_len,
                            const void *value, size_t value_len)
{
    task *t = arg;
    const void *saved_key = t->cur_key;
    size_t saved_len = t->cur_key_len;
    int saved_has = t->has_key;
    t->cur_key = key;
    t->cur_key_len = key_len;
    t->has_key = 1;
    guard_cb g = guard_enter(&t->guard, GUARD_ON_STATE_EXPIRED);
    int rc = t->reg->op.on_state_expired(&t->ctx, t->self, st, key, key_len,
                                         ukey, ukey_len, value, value_len);
    guard_leave(&t->guard, g);
    t->cur_key = saved_key;
    t->cur_key_len = saved_len;
    t->has_key = saved_has;
    return rc;
}

/* Fails the job with rc and "operator ... subtask i/n: what: <err>"; takes
 * err (malloc'ed or NULL: then the task's error or rc's text). The message
 * is built whole, however long the paths in it. */
static int keyed_fail(task *t, const char *what, int rc, char *err)
{
    char *msg = NULL;
    if (asprintf(&msg, "operator '%s' (%s) subtask %u/%u: %s: %s", t->op->id,
                 t->op->type, t->ps->index + 1, t->ps->parallelism, what,
                 err ? err : (t->error ? t->error : weir_strerror(rc))) < 0)
        msg = NULL;
    free(err);
    rt_fail(t->rt, rc, msg ? msg : what);
    free(msg);
    return rc;
}

/* The store's timer callback: runs the plugin's on_timer with the timer's
 * key current. */
static int keyed_on_timer(void *arg, weir_time_domain d, int64_t ts,
                          const void *key, size_t key_len)
{
    task *t = arg;
    const void *saved_key = t->cur_key;
    size_t saved_len = t->cur_key_len;
    int saved_has = t->has_key;
    t->cur_key = key;
    t->cur_key_len = key_len;
    t->has_key = 1;
    guard_cb g = guard_enter(&t->guard, GUARD_ON_TIMER);
    int rc = t->reg->op.on_timer(&t->ctx, t->self, key, key_len, d, ts);
    guard_leave(&t->guard, g);
    if (rc < 0)
        t->timer_cb_rc = rc;
    t->cur_key = saved_key;
    t->cur_key_len = saved_len;
    t->has_key = saved_has;
    return rc;
}

int keyed_timer(task *t, int reg, weir_time_domain domain, int64_t ts)
{
    if (!t->store || !t->has_key)
        return WEIR_ESTATE;
    if (domain != WEIR_TIME_EVENT && domain != WEIR_TIME_PROCESSING)
        return WEIR_EINVAL;
    if (!t->reg->op.on_timer) {
        free(t->error);
        t->error = strdup("timers need the operator's on_timer callback");
        return WEIR_EINVAL;
    }
    return reg ? state_timer_register(t->store, domain, ts, &t->error)
               : state_timer_delete(t->store, domain, ts, &t->error);
}

int keyed_fire_timers(task *t, weir_time_domain domain, int64_t limit)
{
    if (!t->store || state_timer_next(t->store, domain) > limit)
        return 0;
    int n;
    char *err = NULL;
    do {
        t->timer_cb_rc = 0;
        n = state_timer_fire(t->store, domain, limit, KEYED_TIMER_BUDGET,
                             keyed_on_timer, t, &err);
        if (n < 0 && t->timer_cb_rc == n && t->error) {
            /* The plugin's on_timer() failed: its message first, then
             * which timer it was. */
            char *both = NULL;
            if (asprintf(&both, "%s (%s)", t->error, err ? err : "") >= 0) {
                free(err);
                err = both;
            }
        }
        if (n < 0)
            return keyed_fail(t, "on_timer", n, err);
    } while (n == KEYED_TIMER_BUDGET);
    free(err);
    return 0;
}

/* The delta of this subtask's state in the checkpoint being restored
 * ("<state_dir>.delta" next to its RocksDB checkpoint), if there is one.
 * A checkpoint of another parallelism was rescaled with the deltas folded
 * in (statetool/rescale.h): none applies then. */
static int keyed_restore_delta(task *t, char *out, size_t cap)
{
    const ckpt_manifest *m = t->rt->restore;
    for (size_t i = 0; m && i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        if (strcmp(e->op_id, t->op->id) != 0 || e->index != t->ps->index ||
            e->parallelism != t->ps->parallelism || !e->state_dir)
            continue;
        snprintf(out, cap, "%s/%s.delta", t->rt->restore_dir, e->state_dir);
        return access(out, F_OK) == 0;
    }
    return 0;
}

int keyed_open(task *t)
{
    if (t->store)
        return 0;
    if (!(t->reg->op.flags & WEIR_OP_KEYED)) {
        free(t->error);
        t->error = strdup("keyed state needs an operator flagged "
                          "WEIR_OP_KEYED");
        return WEIR_ESTATE;
    }
    rt_job *rt = t->rt;
    char *path = NULL;
    int rc =
        state_store_path(topo_param_str(&rt->job->state, "dir"), rt->job->name,
                         t->op->id, t->ps->index, &path, &t->error);
    if (rc < 0)
        return rc;
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = path;
    cfg.name = t->who;
    const topo_params *sp = &rt->job->state;
    cfg.cache_entries = (size_t)topo_param_int(sp, "cache_entries");
    cfg.cache_max_value_bytes = (size_t)topo_param_int(sp, "cache_max_value");
    cfg.leak_samples = (uint32_t)topo_param_int(sp, "leak_samples");
    cfg.compact_interval_ms = topo_param_int(sp, "compact_interval");
    cfg.min_free_bytes = (uint64_t)topo_param_int(sp, "min_free_space");
    t->sample_every_ns = topo_param_int(sp, "stats_interval") * 1000000;
    cfg.clock = rt->clock;
    cfg.clock_arg = rt->clock_arg;
    if (t->reg->op.on_state_expired) {
        cfg.on_expired = keyed_on_expired;
        cfg.on_expired_arg = t;
    }
    char delta[8400];
    if (keyed_restore_delta(t, delta, sizeof delta))
        cfg.restore_delta = delta;
    rc = state_store_open(rt->senv, &cfg, &t->store, &t->error);
    free(path);
    return rc;
}

/* state_migrate()'s callback: the plugin's migrate_state with the entry's
 * key current. */
static int keyed_on_migrate(void *arg, weir_state *st, uint32_t from,
                            const void *key, size_t key_len, const void *ukey,
                            size_t ukey_len, const void *value,
                            size_t value_len)
{
    task *t = arg;
    t->cur_key = key;
    t->cur_key_len = key_len;
    t->has_key = 1;
    guard_cb g = guard_enter(&t->guard, GUARD_MIGRATE_STATE);
    int rc = t->reg->op.migrate_state(&t->ctx, t->self, st, from, ukey,
                                      ukey_len, value, value_len);
    guard_leave(&t->guard, g);
    t->cur_key = NULL;
    t->cur_key_len = 0;
    t->has_key = 0;
    return rc;
}

/* Where the restored checkpoint is, for messages. */
static const char *keyed_restore_name(const task *t, char *buf, size_t cap)
{
    const ckpt_manifest *m = t->rt->restore;
    if (!m)
        return "the state directory";
    snprintf(buf, cap, "checkpoint %llu (%s)", (unsigned long long)m->id,
             t->rt->restore_dir ? t->rt->restore_dir : "?");
    return buf;
}

int keyed_migrate(task *t)
{
    size_t n = t->store ? state_count(t->store) : 0;
    for (size_t i = 0; i < n; i++) {
        weir_state *st = state_at(t->store, i);
        uint32_t was = state_format_stored(st), now = state_format_declared(st);
        if (was == now)
            continue;
        char *err = NULL, where[4400];
        uint64_t entries = 0;
        int rc = state_scan_count(t->store, st, &entries, &err);
        if (rc < 0)
            return keyed_fail(t, "migrating state", rc, err);
        if (entries == 0) { /* nothing written under the old version */
            rc = state_format_commit(st, &err);
            if (rc < 0)
                return keyed_fail(t, "migrating state", rc, err);
            continue;
        }
        const char *from = keyed_restore_name(t, where, sizeof where);
        if (!t->reg->op.migrate_state) {
            err = NULL;
            if (asprintf(&err,
                         "state '%s' of %s holds entries of format version "
                         "%u, the plugin declares format version %u, and "
                         "operator '%s' has no migrate_state hook: cannot "
                         "restore it; give the operator a migrate_state "
                         "hook or declare format_version %u",
                         state_name(st), from, was, now, t->op->id, was) < 0)
                err = NULL;
            return keyed_fail(t, "restore refused", RT_ERESTORE, err);
        }
        log_msg(WEIR_LOG_INFO, t->who,
                "state '%s': migrating %llu entries from format version %u "
                "to %u (migrate_state)",
                state_name(st), (unsigned long long)entries, was, now);
        free(t->error);
        t->error = NULL;
        enum task_phase phase = t->phase;
        t->phase = TASK_PHASE_MIGRATE;
        uint64_t calls = 0;
        rc = state_migrate(st, keyed_on_migrate, t, &calls, &err);
        t->phase = phase;
        if (rc < 0) {
            char *msg = NULL;
            if (asprintf(&msg,
                         "state '%s' of %s: migrate_state from format "
                         "version %u to %u failed: %s",
                         state_name(st), from, was, now,
                         err ? err
                             : (t->error ? t->error : weir_strerror(rc))) < 0)
                msg = NULL;
            free(err);
            return keyed_fail(t, "restore refused", RT_ERESTORE, msg);
        }
        log_msg(WEIR_LOG_INFO, t->who,
                "state '%s': migrated to format version %u (%llu calls)",
                state_name(st), now, (unsigned long long)calls);
    }
    return 0;
}

int keyed_set_key(task *t, const weir_record *rec)
{
    if (!t->store)
        return 0;
    uint32_t kg =
        plan_key_group(rec->key, rec->key_len, t->rt->plan->max_parallelism);
    return state_set_key(t->store, (uint16_t)kg, rec->key, rec->key_len,
                         rec->ts);
}

void keyed_prefetch(task *t, const wire_reader *r, uint64_t i,
                    state_hint ring[2])
{
    if (!t->store)
        return;
    const void *key;
    size_t len;
    state_hint *two_ahead = &ring[i & 1]; /* record i's hint is spent */
    if (wire_peek_key(r, 1, &key, &len)) {
        uint32_t kg = plan_key_group(key, len, t->rt->plan->max_parallelism);
        state_prefetch_slots(t->store, (uint16_t)kg, key, len, two_ahead);
    } else {
        two_ahead->n = 0;
    }
    state_prefetch_entries(t->store, &ring[(i + 1) & 1]);
}

void keyed_clear_key(task *t)
{
    if (t->store)
        state_clear_key(t->store);
}

void keyed_set_watermark(task *t, int64_t wm)
{
    if (t->store)
        state_set_watermark(t->store, wm);
}

/* Publishes the states' statistics of the sample just taken for other
 * threads (rt_task_states). */
static void keyed_publish(task *t)
{
    size_t n = state_count(t->store);
    rt_state_info *v = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return;
    int64_t now = task_wall_ms();
    for (size_t i = 0; i < n; i++) {
        state_stats st;
        state_admin_info ai;
        state_stats_get(state_at(t->store, i), &st);
        state_admin_info_get(state_at(t->store, i), &ai);
        snprintf(v[i].name, sizeof v[i].name, "%s", st.name);
        v[i].kind = (int)st.kind;
        v[i].has_ttl = st.has_ttl;
        v[i].ttl_ms = st.ttl_ms;
        v[i].keys = st.est_keys;
        v[i].bytes = st.live_bytes;
        v[i].expired =
            st.expired_read + st.expired_sweep + st.expired_compaction;
        v[i].leak_suspected = st.leak_suspected;
        v[i].domain = (int)ai.domain;
        v[i].declared_ttl_ms = ai.declared_ttl_ms;
        v[i].declared_domain = (int)ai.declared_domain;
        v[i].ttl_override = ai.override;
        v[i].rewrite_pending = ai.rewrite_pending;
        v[i].rewritten = ai.rewritten;
        v[i].expired_read = st.expired_read;
        v[i].expired_sweep = st.expired_sweep;
        v[i].expired_compaction = st.expired_compaction;
        v[i].hook_calls = st.hook_calls;
        v[i].growth_streak = st.growth_streak;
        v[i].sampled_ms = now;
    }
    pthread_mutex_lock(&t->pub_lock);
    free(t->pub);
    t->pub = v;
    t->n_pub = n;
    pthread_mutex_unlock(&t->pub_lock);
}

int keyed_sweep(task *t, int all)
{
    if (!t->store)
        return 0;
    size_t budget = t->rt->sweep_batch;
    int n;
    char *err = NULL;
    do {
        n = state_sweep(t->store, budget, NULL, &err);
        if (n < 0)
            return keyed_fail(t, "expiring state", n, err);
    } while (all && (size_t)n == budget);
    if ((n = state_admin_step(t->store, STATE_ADMIN_BATCH, &err)) < 0)
        return keyed_fail(t, "rewriting state for a TTL change", n, err);
    int64_t now = task_mono_ns();
    if (all || now >= t->next_sample_ns) {
        t->next_sample_ns = now + t->sample_every_ns;
        if (state_stats_sample(t->store, &err) < 0) {
            log_msg(WEIR_LOG_WARN, t->who, "state statistics: %s", err);
            free(err);
        } else {
            keyed_publish(t);
        }
    }
    return 0;
}

int keyed_snapshot(task *t, const char *dir)
{
    if (!t->store)
        return 0;
    char delta[4200];
    int wrote;
    snprintf(delta, sizeof delta, "%s.delta", dir);
    return state_checkpoint_delta(t->store, dir, delta, &wrote, &t->error);
}

/* Logs every state's size and expiry counts (the leak picture). */
static void keyed_report(task *t)
{
    char *err = NULL;
    if (state_stats_sample(t->store, &err) < 0) {
        free(err);
        return;
    }
    keyed_publish(t);
    for (size_t i = 0; i < state_count(t->store); i++) {
        state_stats st;
        state_stats_get(state_at(t->store, i), &st);
        char ttl[32];
        if (st.has_ttl)
            snprintf(ttl, sizeof ttl, "ttl %lld ms", (long long)st.ttl_ms);
        else
            snprintf(ttl, sizeof ttl, "no ttl");
        log_msg(WEIR_LOG_INFO, t->who,
                "state '%s' (%s): ~%llu keys, ~%llu bytes; expired %llu by "
                "read, %llu by sweep, %llu by compaction%s",
                st.name, ttl, (unsigned long long)st.est_keys,
                (unsigned long long)st.live_bytes,
                (unsigned long long)st.expired_read,
                (unsigned long long)st.expired_sweep,
                (unsigned long long)st.expired_compaction,
                st.leak_suspected ? "; PROBABLE LEAK" : "");
    }
}

static void keyed_admin_drain(task *t);

void keyed_close(task *t)
{
    char *err = NULL;
    keyed_admin_drain(t);
    if (t->store)
        keyed_report(t);
    if (t->store && state_store_close(t->store, &err) < 0) {
        log_msg(WEIR_LOG_WARN, t->who, "closing state: %s", err);
        free(err);
    }
    t->store = NULL;
}

/* ------------------------------------------------------------------------ */
/* Live state changes                                                        */
/* ------------------------------------------------------------------------ */

keyed_admin *keyed_admin_new(keyed_admin_kind kind, const char *state,
                             uint32_t n)
{
    keyed_admin *a = calloc(1, sizeof *a);
    if (!a || !(a->parts = calloc(n ? n : 1, sizeof *a->parts))) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->lock, NULL);
    a->refs = 1;
    a->kind = kind;
    a->n = n;
    snprintf(a->state, sizeof a->state, "%s", state);
    return a;
}

void keyed_admin_release(keyed_admin *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    int last = --a->refs == 0;
    pthread_mutex_unlock(&a->lock);
    if (!last)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a->prefix);
    free(a->parts);
    free(a);
}

int keyed_admin_post(task *t, keyed_admin *a)
{
    keyed_admin_msg *m = malloc(sizeof *m);
    if (!m)
        return WEIR_ENOMEM;
    pthread_mutex_lock(&a->lock);
    a->refs++;
    pthread_mutex_unlock(&a->lock);
    m->a = a;
    pthread_mutex_lock(&t->admin_lock);
    int closed = t->admin_closed;
    if (!closed) {
        m->next = t->admin_q;
        t->admin_q = m;
    }
    pthread_mutex_unlock(&t->admin_lock);
    if (closed) {
        keyed_admin_release(a);
        free(m);
        return WEIR_ESTATE;
    }
    return 0;
}

void keyed_admin_part_get(keyed_admin *a, uint32_t index, keyed_admin_part *out)
{
    pthread_mutex_lock(&a->lock);
    if (index < a->n)
        *out = a->parts[index];
    else
        memset(out, 0, sizeof *out);
    pthread_mutex_unlock(&a->lock);
}

static void keyed_admin_record(task *t, keyed_admin *a,
                               const keyed_admin_part *p)
{
    pthread_mutex_lock(&a->lock);
    if (t->ps->index < a->n)
        a->parts[t->ps->index] = *p;
    pthread_mutex_unlock(&a->lock);
}

/* Takes the mailbox, oldest change first. */
static keyed_admin_msg *keyed_admin_take(task *t, int close)
{
    pthread_mutex_lock(&t->admin_lock);
    keyed_admin_msg *q = t->admin_q, *r = NULL;
    t->admin_q = NULL;
    if (close)
        t->admin_closed = 1;
    pthread_mutex_unlock(&t->admin_lock);
    while (q) {
        keyed_admin_msg *next = q->next;
        q->next = r;
        r = q;
        q = next;
    }
    return r;
}

static weir_state *keyed_state_named(task *t, const char *name)
{
    for (size_t i = 0; i < state_count(t->store); i++)
        if (!strcmp(state_name(state_at(t->store, i)), name))
            return state_at(t->store, i);
    return NULL;
}

static void keyed_admin_run(task *t, keyed_admin *a, uint64_t id)
{
    keyed_admin_part p = {.done = 1, .checkpoint = id};
    char *err = NULL;
    weir_state *st = t->store ? keyed_state_named(t, a->state) : NULL;
    int rc;
    if (!st)
        rc = err_set(&err, WEIR_ENOTFOUND, "subtask %s has no state '%s'",
                     t->who, a->state);
    else if (a->kind == KEYED_ADMIN_TTL)
        rc = state_admin_set_ttl(st, a->ttl_ms, a->domain,
                                 KEYED_ADMIN_BUDGET_NS, &p.res, &err);
    else
        rc = state_admin_purge(st, a->mode, a->prefix, a->prefix_len,
                               a->older_ms, &p.res, &err);
    p.rc = rc < 0 ? rc : 0;
    if (rc < 0) {
        snprintf(p.error, sizeof p.error, "%s", err ? err : weir_strerror(rc));
        log_msg(WEIR_LOG_WARN, t->who, "state change at checkpoint %llu: %s",
                (unsigned long long)id, p.error);
    }
    free(err);
    keyed_admin_record(t, a, &p);
}

void keyed_admin_apply(task *t, uint64_t id)
{
    keyed_admin_msg *q = keyed_admin_take(t, 0);
    if (!q)
        return;
    while (q) {
        keyed_admin_msg *next = q->next;
        keyed_admin_run(t, q->a, id);
        keyed_admin_release(q->a);
        free(q);
        q = next;
    }
    char *err = NULL;
    if (t->store && state_stats_sample(t->store, &err) == 0)
        keyed_publish(t);
    free(err);
}

/* Answers what the mailbox still holds as not applied, and closes it. */
static void keyed_admin_drain(task *t)
{
    for (keyed_admin_msg *q = keyed_admin_take(t, 1), *next; q; q = next) {
        next = q->next;
        keyed_admin_part p = {.done = 1, .rc = WEIR_ESTATE};
        snprintf(p.error, sizeof p.error,
                 "subtask %s ended before a checkpoint barrier", t->who);
        keyed_admin_record(t, q->a, &p);
        keyed_admin_release(q->a);
        free(q);
    }
}
