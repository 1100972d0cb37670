#include "statetool/rescale.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "runtime/plan.h"
#include "state/codec.h"
#include "statetool/entry.h"
#include "statetool/view.h"
#include "statetool/writer.h"

/* One old subtask. */
typedef struct rsc_src {
    const ckpt_task *t;
    char *dir;
    stv_db *v;
    size_t *to_new; /* its state i -> index in rsc.states */
} rsc_src;

typedef struct rsc {
    const char *op;
    uint32_t new_par, maxp;
    rsc_src *src;
    size_t n_src;
    stw_state *states; /* the new stores' states (names borrowed) */
    size_t n_states;
    stw_db **w; /* one per new subtask */
    rsc_stats stats;
    /* The entry being routed. */
    rsc_src *cur;
    int where;
    const char *what;
    char *kbuf;
    size_t kcap;
    char **errptr;
} rsc;

static int rsc_oom(char **errptr)
{
    err_set(errptr, WEIR_ENOMEM, "out of memory");
    return WEIR_ENOMEM;
}

/*
 * Carries a TTL override (`weir ctl state ttl`, "weir.ttl.<name>") of a
 * source state into the new stores. Every subtask got the same override;
 * one whose rewrite of existing entries was still pending wins, so that
 * the new stores go on with it. Its cursor (a key of the old subtask) means
 * nothing in a new store: the record is written without it, so a pending
 * rewrite starts again from the first entry (rewriting an entry twice
 * gives the same stamp).
 */
static void rsc_ttl_merge(stw_state *u, const stv_state *st)
{
    if (!st->ttl_rec || st->ttl_len < META_TTL_HDR)
        return;
    int pending = st->ttl_rec[META_TTL_PENDING] != 0;
    if (u->ttl_rec && (!pending || u->ttl_rec[META_TTL_PENDING]))
        return;
    u->ttl_rec = st->ttl_rec;
    u->ttl_len = META_TTL_HDR;
}

/* Adds the states of source s to the union, checking kinds, and maps its
 * states to the union's. */
static int rsc_union(rsc *r, rsc_src *s, char **errptr)
{
    size_t n = stv_state_count(s->v);
    stw_state *u = realloc(r->states, (r->n_states + n + 1) * sizeof *u);
    if (u)
        r->states = u;
    s->to_new = calloc(n + 1, sizeof *s->to_new);
    if (!s->to_new || !u)
        return rsc_oom(errptr);
    for (size_t i = 0; i < n; i++) {
        const stv_state *st = stv_state_at(s->v, i);
        size_t k = 0;
        while (k < r->n_states && strcmp(r->states[k].name, st->name) != 0)
            k++;
        if (k < r->n_states && r->states[k].kind != st->kind)
            return err_set(errptr, WEIR_EINVAL,
                           "state '%s' is of kind %u in %s and of kind %u in "
                           "another subtask",
                           st->name, st->kind, s->dir, r->states[k].kind);
        if (k < r->n_states && r->states[k].format != st->format)
            return err_set(errptr, WEIR_EINVAL,
                           "state '%s' has format version %u in %s and %u in "
                           "another subtask",
                           st->name, st->format, s->dir, r->states[k].format);
        if (k == r->n_states) {
            uint32_t id = st->id, max = 0;
            int taken = 0;
            for (size_t j = 0; j < r->n_states; j++) {
                taken |= r->states[j].id == id;
                max = r->states[j].id > max ? r->states[j].id : max;
            }
            if (taken && max >= 65534)
                return err_set(errptr, WEIR_EINVAL, "too many states");
            r->states[k] = (stw_state){.name = st->name,
                                       .id = (uint16_t)(taken ? max + 1 : id),
                                       .kind = st->kind,
                                       .format = st->format};
            r->n_states++;
        }
        rsc_ttl_merge(&r->states[k], st);
        s->to_new[i] = k;
    }
    return 0;
}

/* The new subtask of a key group, or -1 (with the message) when the key
 * group is out of range. */
static int rsc_target(rsc *r, uint16_t kg)
{
    if (kg >= r->maxp) {
        err_set(r->errptr, WEIR_EIO,
                "%s: %s: an entry of key group %u, not below max_parallelism "
                "%u",
                r->cur->dir, r->what, kg, r->maxp);
        return -1;
    }
    return (int)plan_kg_to_index(kg, r->new_par, r->maxp);
}

static int rsc_malformed(rsc *r, size_t klen)
{
    return err_set(r->errptr, WEIR_EIO,
                   "%s: %s: an entry with a malformed "
                   "key (%zu bytes)",
                   r->cur->dir, r->what, klen);
}

static int rsc_on_state(void *arg, const char *k, size_t klen, const char *v,
                        size_t vlen)
{
    rsc *r = arg;
    ste_key sk;
    int64_t stamp;
    const char *b;
    size_t bn;
    if (ste_key_parse(k, klen, &sk) < 0 ||
        ste_value_parse(v, vlen, &stamp, &b, &bn) < 0)
        return rsc_malformed(r, klen);
    int j = rsc_target(r, sk.kg);
    if (j < 0)
        return WEIR_EIO;
    r->stats.entries++;
    return stw_put(r->w[j], r->where, k, klen, v, vlen, r->errptr);
}

static int rsc_on_timer(void *arg, const char *k, size_t klen, const char *v,
                        size_t vlen)
{
    rsc *r = arg;
    ste_timer tk;
    if (ste_timer_parse(k, klen, &tk) < 0)
        return rsc_malformed(r, klen);
    int j = rsc_target(r, tk.kg);
    if (j < 0)
        return WEIR_EIO;
    r->stats.timers++;
    return stw_put(r->w[j], STW_TIMERS, k, klen, v, vlen, r->errptr);
}

/* Index entries carry the state id: renumbered to the new store's. Entries
 * of an id the store does not know are dropped (the sweep would drop them:
 * nothing can declare that id again). */
static int rsc_on_index(void *arg, const char *k, size_t klen, const char *v,
                        size_t vlen)
{
    rsc *r = arg;
    ste_index ix;
    ste_key sk;
    if (ste_index_parse(k, klen, &ix) < 0 ||
        ste_key_parse(ix.skey, ix.skey_len, &sk) < 0)
        return rsc_malformed(r, klen);
    size_t n = stv_state_count(r->cur->v), i = 0;
    while (i < n && stv_state_at(r->cur->v, i)->id != ix.sid)
        i++;
    if (i == n)
        return 0;
    int j = rsc_target(r, sk.kg);
    if (j < 0)
        return WEIR_EIO;
    if (klen > r->kcap) {
        char *nb = realloc(r->kbuf, klen);
        if (!nb)
            return rsc_oom(r->errptr);
        r->kbuf = nb;
        r->kcap = klen;
    }
    ste_index_encode(r->kbuf, ix.domain, ix.stamp,
                     r->states[r->cur->to_new[i]].id, ix.skey, ix.skey_len);
    r->stats.index++;
    return stw_put(r->w[j], STW_INDEX, r->kbuf, klen, v, vlen, r->errptr);
}

/* Routes every entry of source s. */
static int rsc_move(rsc *r, rsc_src *s, char **errptr)
{
    int rc = 0;
    r->cur = s;
    for (size_t i = 0; rc == 0 && i < stv_state_count(s->v); i++) {
        const stv_state *st = stv_state_at(s->v, i);
        r->where = (int)s->to_new[i];
        r->what = st->cf;
        rc =
            stv_scan_state(s->v, st, NULL, 0, NULL, 0, rsc_on_state, r, errptr);
    }
    r->what = "__timers";
    if (rc == 0)
        rc = stv_scan_cf(s->v, STV_TIMERS, rsc_on_timer, r, errptr);
    r->what = INDEX_CF;
    if (rc == 0)
        rc = stv_scan_cf(s->v, STV_INDEX, rsc_on_index, r, errptr);
    return rc;
}

/* Opens the old subtasks of the operator that have keyed state. */
static int rsc_open_sources(rsc *r, const ckpt_manifest *m, const char *chk_dir,
                            char **errptr)
{
    r->src = calloc(m->n_tasks + 1, sizeof *r->src);
    if (!r->src)
        return rsc_oom(errptr);
    for (size_t i = 0; i < m->n_tasks; i++) {
        const ckpt_task *t = &m->tasks[i];
        if (strcmp(t->op_id, r->op) != 0 || !t->state_dir)
            continue;
        rsc_src *s = &r->src[r->n_src++];
        char *delta = NULL;
        s->t = t;
        if (asprintf(&s->dir, "%s/%s", chk_dir, t->state_dir) < 0 ||
            asprintf(&delta, "%s.delta", s->dir) < 0) {
            s->dir = NULL;
            return rsc_oom(errptr);
        }
        int rc = stv_open(s->dir, delta, &s->v, errptr);
        free(delta);
        if (rc < 0)
            return rc;
        if (stv_other_cf_count(s->v))
            return err_set(errptr, WEIR_EINVAL,
                           "%s holds column family '%s', which this build "
                           "cannot redistribute",
                           s->dir, stv_other_cf(s->v, 0));
        if ((rc = rsc_union(r, s, errptr)) < 0)
            return rc;
    }
    return 0;
}

static int rsc_create_targets(rsc *r, const char *dst, char **errptr)
{
    int rc = fs_mkdirs(dst, errptr);
    r->w = calloc(r->new_par + 1, sizeof *r->w);
    if (rc == 0 && !r->w)
        rc = rsc_oom(errptr);
    for (uint32_t j = 0; rc == 0 && j < r->new_par; j++) {
        char *dir = NULL;
        if (asprintf(&dir, "%s/%u", dst, j) < 0)
            return rsc_oom(errptr);
        rc = stw_create(dir, r->states, r->n_states, &r->w[j], errptr);
        free(dir);
    }
    return rc;
}

static void rsc_free(rsc *r)
{
    for (size_t i = 0; i < r->n_src; i++) {
        stv_close(r->src[i].v);
        free(r->src[i].dir);
        free(r->src[i].to_new);
    }
    for (uint32_t j = 0; r->w && j < r->new_par; j++)
        stw_abandon(r->w[j]);
    free(r->w);
    free(r->src);
    free(r->states);
    free(r->kbuf);
}

int rsc_redistribute(const ckpt_manifest *m, const char *chk_dir,
                     const char *op_id, uint32_t new_par, const char *dst,
                     rsc_stats *stats, char **errptr)
{
    rsc r = {.op = op_id, .new_par = new_par, .maxp = m->max_parallelism};
    r.errptr = errptr;
    int rc = 0;
    for (size_t i = 0; i < m->n_tasks; i++)
        if (strcmp(m->tasks[i].op_id, op_id) == 0)
            r.stats.from = m->tasks[i].parallelism;
    r.stats.to = new_par;
    if (new_par == 0 || new_par > r.maxp)
        rc = err_set(errptr, WEIR_EINVAL,
                     "parallelism %u is not between 1 and max_parallelism %u",
                     new_par, r.maxp);
    if (rc == 0)
        rc = rsc_open_sources(&r, m, chk_dir, errptr);
    if (rc == 0)
        rc = rsc_create_targets(&r, dst, errptr);
    for (size_t i = 0; rc == 0 && i < r.n_src; i++)
        rc = rsc_move(&r, &r.src[i], errptr);
    for (uint32_t j = 0; rc == 0 && j < new_par; j++) {
        stw_db *w = r.w[j];
        r.w[j] = NULL;
        rc = stw_finish(w, errptr);
    }
    if (rc == 0 && stats)
        *stats = r.stats;
    if (rc < 0)
        err_prefix(errptr,
                   "operator '%s': rescaling its state from "
                   "parallelism %u to %u",
                   op_id, r.stats.from, new_par);
    rsc_free(&r);
    return rc;
}
