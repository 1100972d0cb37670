/*
 * state_meta.c - declared states, persisted per-state metadata, handle
 * ownership (state_meta.h).
 */
#include "state/state_meta.h"

#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "state/codec.h"
#include "state/state.h"
#include "state/state_admin.h"
#include "state/state_store.h"
#include "state/state_ttl.h"

const char *smeta_kind_name(weir_state_kind k)
{
    switch (k) {
    case WEIR_STATE_VALUE: return "value";
    case WEIR_STATE_MAP: return "map";
    case WEIR_STATE_LIST: return "list";
    default: return "unknown";
    }
}

const char *state_name(const weir_state *st)
{
    return st->name;
}

weir_state_kind state_kind(const weir_state *st)
{
    return st->kind;
}

state_store *state_store_of(const weir_state *st)
{
    return st->s;
}

/* Every open store, so that a state handle can be traced to the store that
 * declared it without dereferencing the handle (state_owner_name). The lock
 * also guards every change of a store's `states` array, which its own
 * thread reads without it. */
static pthread_mutex_t owners_lock = PTHREAD_MUTEX_INITIALIZER;

static state_store *owners_head;

void smeta_owners_link(state_store *s)
{
    pthread_mutex_lock(&owners_lock);
    s->owners_next = owners_head;
    owners_head = s;
    pthread_mutex_unlock(&owners_lock);
}

void smeta_owners_unlink(state_store *s)
{
    pthread_mutex_lock(&owners_lock);
    for (state_store **p = &owners_head; *p; p = &(*p)->owners_next)
        if (*p == s) {
            *p = s->owners_next;
            break;
        }
    pthread_mutex_unlock(&owners_lock);
}

int state_owned(const state_store *s, const weir_state *st)
{
    for (size_t i = 0; s && i < s->n_states; i++)
        if (s->states[i] == st)
            return 1;
    return 0;
}

int state_owner_name(const weir_state *st, char *buf, size_t cap)
{
    int rc = WEIR_ENOTFOUND;
    pthread_mutex_lock(&owners_lock);
    for (state_store *s = owners_head; s && rc; s = s->owners_next)
        if (state_owned(s, st)) {
            snprintf(buf, cap, "%s", s->name);
            rc = 0;
        }
    pthread_mutex_unlock(&owners_lock);
    return rc;
}

static int valid_name(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return n >= 1 && n <= NAME_MAX_LEN;
}

/* Checks and normalises a plugin's descriptor into *d. */
static int desc_check(state_store *s, const weir_state_desc *in,
                      weir_state_desc *d, char **errptr)
{
    memset(d, 0, sizeof *d);
    if (!in || in->size < offsetof(weir_state_desc, ttl_ms) + sizeof(int64_t))
        return err_set(errptr, WEIR_EINVAL,
                       "state declaration: descriptor missing or too small "
                       "(size %u)",
                       in ? in->size : 0);
    memcpy(d, in, in->size < sizeof *d ? in->size : sizeof *d);
    d->size = sizeof *d;
    const char *name = d->name ? d->name : "(null)";
    if (!d->name || !valid_name(d->name))
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': a state name is 1 to %d characters out "
                       "of a-z, 0-9 and _",
                       name, NAME_MAX_LEN);
    for (size_t i = 0; i < s->n_states; i++)
        if (strcmp(s->states[i]->name, d->name) == 0)
            return err_set(errptr, WEIR_EINVAL, "state '%s' is declared twice",
                           name);
    if (d->kind != WEIR_STATE_VALUE && d->kind != WEIR_STATE_MAP &&
        d->kind != WEIR_STATE_LIST)
        return err_set(errptr, WEIR_EINVAL, "state '%s': unknown kind %d", name,
                       (int)d->kind);
    if (d->ttl_ms == 0)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': ttl_ms is 0; give entries a lifetime "
                       "(ttl_ms > 0) or declare explicitly that they never "
                       "expire with ttl_ms = WEIR_TTL_NONE (such a state is "
                       "reported as a leak risk)",
                       name);
    if (d->ttl_ms < 0 && d->ttl_ms != WEIR_TTL_NONE)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': ttl_ms %" PRId64
                       " is negative; use a positive duration or "
                       "WEIR_TTL_NONE",
                       name, d->ttl_ms);
    if ((unsigned)d->ttl_update > WEIR_TTL_ON_READ_AND_WRITE ||
        (unsigned)d->ttl_visibility > WEIR_TTL_RETURN_EXPIRED_IF_NOT_CLEANED ||
        (unsigned)d->ttl_domain > WEIR_TIME_EVENT)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s': unknown TTL update, visibility or time "
                       "domain (%d, %d, %d)",
                       name, (int)d->ttl_update, (int)d->ttl_visibility,
                       (int)d->ttl_domain);
    return 0;
}

static state_meta *meta_find(state_store *s, const char *name)
{
    for (size_t i = 0; i < s->n_meta; i++)
        if (strcmp(s->meta[i].name, name) == 0)
            return &s->meta[i];
    return NULL;
}

int state_declare(state_store *s, const weir_state_desc *desc, int hook_wanted,
                  weir_state **out, char **errptr)
{
    *out = NULL;
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state declaration from an expiry hook");
    weir_state_desc d;
    int rc = desc_check(s, desc, &d, errptr);
    if (rc < 0)
        return rc;
    state_meta *m = meta_find(s, d.name);
    if (m && m->kind != (uint8_t)d.kind)
        return err_set(errptr, WEIR_EINVAL,
                       "state '%s' is stored in %s as a %s state and "
                       "cannot be declared as a %s state",
                       d.name, s->path,
                       smeta_kind_name((weir_state_kind)m->kind),
                       smeta_kind_name(d.kind));
    if (!m) {
        if (s->next_id > ID_MAX)
            return err_set(errptr, WEIR_EINVAL,
                           "state store %s: too many states", s->name);
        state_meta *meta = realloc(s->meta, (s->n_meta + 1) * sizeof *meta);
        if (!meta)
            return sstore_oom(s, errptr);
        s->meta = meta;
        m = &meta[s->n_meta];
        m->name = strdup(d.name);
        if (!m->name)
            return sstore_oom(s, errptr);
        m->id = (uint16_t)s->next_id++;
        m->kind = (uint8_t)d.kind;
        s->n_meta++;
        char key[sizeof META_STATE_PREFIX + NAME_MAX_LEN];
        snprintf(key, sizeof key, META_STATE_PREFIX "%s", d.name);
        char val[3];
        put_be16(val, m->id);
        val[2] = (char)m->kind;
        char *rerr = NULL;
        rocksdb_put_cf(s->db, s->wo_meta, s->meta_cf, key, strlen(key), val, 3,
                       &rerr);
        if (rerr)
            return sstore_rdb_fail(s, NULL, "metadata put", rerr, errptr);
    }
    state_cfh *c = NULL;
    rc = sstore_state_cf(s, d.name, &c, errptr);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&owners_lock);
    weir_state **states =
        realloc(s->states, (s->n_states + 1) * sizeof *states);
    if (states)
        s->states = states;
    pthread_mutex_unlock(&owners_lock);
    if (!states)
        return sstore_oom(s, errptr);
    weir_state *st = calloc(1, sizeof *st);
    if (!st || !(st->name = strdup(d.name))) {
        free(st);
        return sstore_oom(s, errptr);
    }
    st->s = s;
    st->id = m->id;
    st->kind = d.kind;
    st->has_ttl = d.ttl_ms > 0;
    st->ttl_ms = d.ttl_ms;
    st->update = d.ttl_update;
    st->vis = d.ttl_visibility;
    st->domain = d.ttl_domain;
    st->hook_wanted = hook_wanted != 0;
    st->cf = c->h;
    st->filter = c->filter;
    int mode = FILTER_KEEP;
    if (st->has_ttl && !sttl_hook_on(s, st))
        mode = st->domain == WEIR_TIME_EVENT ? FILTER_EVENT : FILTER_PROC;
    atomic_store(&c->filter->mode, mode);
    if (st->id >= s->n_by_id) {
        size_t n = (size_t)st->id + 1;
        weir_state **by_id = realloc(s->by_id, n * sizeof *by_id);
        if (!by_id) {
            free(st->name);
            free(st);
            return sstore_oom(s, errptr);
        }
        memset(by_id + s->n_by_id, 0, (n - s->n_by_id) * sizeof *by_id);
        s->by_id = by_id;
        s->n_by_id = n;
    }
    pthread_mutex_lock(&owners_lock);
    s->states[s->n_states++] = st;
    pthread_mutex_unlock(&owners_lock);
    s->by_id[st->id] = st;
    if ((rc = state_admin_declared(st, errptr)) < 0) /* TTL overrides */
        return rc;
    if (!st->has_ttl)
        log_msg(WEIR_LOG_WARN, s->name,
                "state '%s' is declared without a TTL: its keys never "
                "expire, so it is watched as a leak risk",
                st->name);
    *out = st;
    return 0;
}

int smeta_load(state_store *s, char **errptr)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, s->meta_cf, META_FORMAT_KEY,
                             strlen(META_FORMAT_KEY), &vlen, &rerr);
    if (rerr)
        return sstore_rdb_fail(s, NULL, "metadata get", rerr, errptr);
    if (v &&
        (vlen != strlen(META_FORMAT) || memcmp(v, META_FORMAT, vlen) != 0)) {
        int rc = err_set(errptr, WEIR_EINVAL,
                         "state directory %s has format '%.*s'; this host "
                         "reads format " META_FORMAT,
                         s->path, (int)vlen, v);
        rocksdb_free(v);
        return rc;
    }
    if (!v) {
        rocksdb_put_cf(s->db, s->wo_meta, s->meta_cf, META_FORMAT_KEY,
                       strlen(META_FORMAT_KEY), META_FORMAT,
                       strlen(META_FORMAT), &rerr);
        if (rerr)
            return sstore_rdb_fail(s, NULL, "metadata put", rerr, errptr);
    }
    rocksdb_free(v);

    size_t plen = strlen(META_STATE_PREFIX);
    rocksdb_readoptions_set_iterate_upper_bound(s->ro_it, NULL, 0);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(s->db, s->ro_it, s->meta_cf);
    int rc = 0;
    for (rocksdb_iter_seek(it, META_STATE_PREFIX, plen); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, mlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *mv = rocksdb_iter_value(it, &mlen);
        if (klen < plen || memcmp(k, META_STATE_PREFIX, plen) != 0)
            break;
        if (mlen < 3 || klen - plen > NAME_MAX_LEN)
            continue;
        state_meta *meta = realloc(s->meta, (s->n_meta + 1) * sizeof *meta);
        if (!meta) {
            rc = sstore_oom(s, errptr);
            break;
        }
        s->meta = meta;
        state_meta *m = &meta[s->n_meta];
        m->name = strndup(k + plen, klen - plen);
        if (!m->name) {
            rc = sstore_oom(s, errptr);
            break;
        }
        m->id = get_be16(mv);
        m->kind = (uint8_t)mv[2];
        s->n_meta++;
        if ((uint32_t)m->id + 1 > s->next_id)
            s->next_id = (uint32_t)m->id + 1;
    }
    rocksdb_iter_destroy(it);
    return rc;
}

void state_raw_get(weir_state *st, state_raw *out)
{
    state_store *s = st->s;
    sttl_publish_now(s);
    *out = (state_raw){.db = s->db,
                       .cf = st->cf,
                       .idx_cf = s->idx_cf,
                       .meta_cf = s->meta_cf,
                       .store_name = s->name,
                       .id = st->id,
                       .kind = st->kind,
                       .has_ttl = st->has_ttl,
                       .ttl_ms = st->has_ttl ? st->ttl_ms : WEIR_TTL_NONE,
                       .domain = st->domain,
                       .now = s->now,
                       .wm = s->wm,
                       .in_hook = s->in_hook};
}
