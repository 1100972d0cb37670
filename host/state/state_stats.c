/*
 * state_stats.c - statistics and the leak detector of state.h.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "state/state.h"
#include "state/state_cache.h"
#include "state/state_meta.h"
#include "state/state_store.h"
#include "state/state_ttl.h"

static void leak_check(state_store *s, weir_state *st)
{
    uint64_t keys = st->est_keys;
    if (st->has_ttl || !st->sampled) {
        st->streak = 0;
        st->leak = 0;
    } else if (keys > st->prev_keys) {
        if (st->streak == 0)
            st->streak_base = st->prev_keys;
        st->streak++;
    } else {
        st->streak = 0;
        st->leak = 0;
    }
    uint32_t n = s->cfg.leak_samples ? s->cfg.leak_samples : 5;
    if (!st->has_ttl && st->streak >= n && !st->leak) {
        st->leak = 1;
        log_msg(WEIR_LOG_WARN, s->name,
                "state '%s' (%s state, no TTL) grew at %u consecutive "
                "samples, %" PRIu64 " -> %" PRIu64
                " keys: probable state leak; declare it with a TTL or "
                "delete the keys it no longer needs",
                st->name, smeta_kind_name(st->kind), st->streak,
                st->streak_base, keys);
    }
    st->prev_keys = keys;
    st->sampled = 1;
}

int state_stats_sample(state_store *s, char **errptr)
{
    int64_t *delta = NULL;
    if (s->cache && s->cache->used) {
        delta = calloc(s->n_by_id, sizeof *delta);
        if (!delta)
            return sstore_oom(s, errptr);
        for (uint32_t i = 0; i < s->cache->max; i++) {
            const state_cache_ent *ce = &s->cache->ents[i];
            if (!(ce->flags & SC_DIRTY))
                continue;
            int known = ce->flags & SC_DISK_KNOWN;
            int present = ce->flags & SC_DISK_PRESENT;
            if (ce->flags & SC_ABSENT) {
                if (known && present)
                    delta[ce->sid]--;
            } else if (!known || !present) {
                delta[ce->sid]++;
            }
        }
    }
    for (size_t i = 0; i < s->n_states; i++) {
        weir_state *st = s->states[i];
        int64_t keys =
            (int64_t)sstore_prop(s, st->cf, "rocksdb.estimate-num-keys") +
            (delta ? delta[st->id] : 0);
        st->est_keys = keys > 0 ? (uint64_t)keys : 0;
        st->live_bytes =
            sstore_prop(s, st->cf, "rocksdb.estimate-live-data-size") +
            sstore_prop(s, st->cf, "rocksdb.cur-size-all-mem-tables");
        leak_check(s, st);
    }
    free(delta);
    return 0;
}

size_t state_count(const state_store *s)
{
    return s->n_states;
}

weir_state *state_at(const state_store *s, size_t i)
{
    return i < s->n_states ? s->states[i] : NULL;
}

void state_stats_get(const weir_state *st, state_stats *out)
{
    memset(out, 0, sizeof *out);
    out->name = st->name;
    out->kind = st->kind;
    out->has_ttl = st->has_ttl;
    out->ttl_ms = st->has_ttl ? st->ttl_ms : WEIR_TTL_NONE;
    out->hook = sttl_hook_on(st->s, st);
    out->est_keys = st->est_keys;
    out->live_bytes = st->live_bytes;
    out->expired_read = st->exp_read;
    out->expired_sweep = st->exp_sweep;
    out->expired_compaction =
        atomic_load_explicit(&st->filter->dropped, memory_order_relaxed);
    out->hook_calls = st->hook_calls;
    out->growth_streak = st->streak;
    out->leak_suspected = st->leak;
}

void state_store_stats_get(const state_store *s, state_store_stats *out)
{
    *out = s->stats;
    out->cache_used = s->cache ? s->cache->used : 0;
    out->compactions_done = atomic_load(&s->compactions_done);
}
