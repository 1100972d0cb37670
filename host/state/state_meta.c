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

/* Writes the metadata record of `m` ("weir.state.<name>", with the WAL). */
static int meta_put(state_store *s, const state_meta *m, char **errptr)
{
    char key[sizeof META_STATE_PREFIX + NAME_MAX_LEN];
    snprintf(key, sizeof key, META_STATE_PREFIX "%s", m->name);
    char val[META_STATE_LEN];
    put_be16(val, m->id);
    val[2] = (char)m->kind;
    put_be32(val + 3, m->format);
    char *rerr = NULL;
    rocksdb_put_cf(s->db, s->wo_meta, s->meta_cf, key, strlen(key), val,
                   sizeof val, &rerr);
    if (rerr)
        return sstore_rdb_fail(s, NULL, "metadata put", rerr, errptr);
    return 0;
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
        m->format = d.format_version;
        s->n_meta++;
        if ((rc = meta_put(s, m, errptr)) < 0)
            return rc;
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
    st->fmt_declared = d.format_version;
    st->fmt_stored = m->format;
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
        if (mlen < META_STATE_LEN_V0 || klen - plen > NAME_MAX_LEN)
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
        m->format = mlen >= META_STATE_LEN ? get_be32(mv + 3) : 0;
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

/* ------------------------------------------------------------------------ */
/* Format versions and migration                                             */
/* ------------------------------------------------------------------------ */

uint32_t state_format_declared(const weir_state *st)
{
    return st->fmt_declared;
}

uint32_t state_format_stored(const weir_state *st)
{
    return st->fmt_stored;
}

int state_format_commit(weir_state *st, char **errptr)
{
    state_store *s = st->s;
    state_meta *m = meta_find(s, st->name);
    if (!m)
        return err_set(errptr, WEIR_EINVAL,
                       "state store %s: state '%s' has "
                       "no metadata",
                       s->name, st->name);
    uint32_t was = m->format;
    m->format = st->fmt_declared;
    int rc = meta_put(s, m, errptr);
    if (rc < 0) {
        m->format = was;
        return rc;
    }
    st->fmt_stored = st->fmt_declared;
    return 0;
}

/* The entries of one record key, copied out of the iterator:
 * { varint(len) | entry key | varint(len) | value without stamp }*. */
static int group_add(sbuf *g, const char *k, size_t klen, const char *v,
                     size_t vlen)
{
    char vb[10];
    size_t n = varint_put(vb, klen);
    if (sbuf_add(g, vb, n) < 0 || sbuf_add(g, k, klen) < 0)
        return -1;
    n = varint_put(vb, vlen);
    return sbuf_add(g, vb, n) < 0 || sbuf_add(g, v, vlen) < 0 ? -1 : 0;
}

/* Reads the next (bytes, length) of a group at *off. */
static const char *group_next(const sbuf *g, size_t *off, size_t *len)
{
    uint64_t n = 0;
    size_t used = varint_get(g->p + *off, g->len - *off, &n);
    const char *p = g->p + *off + used;
    *off += used + (size_t)n;
    *len = (size_t)n;
    return p;
}

/* Migrates the entries of one record key (group g, prefix length plen):
 * makes the key current, removes every old entry, then calls fn per entry
 * (per element of a list). */
static int migrate_group(state_store *s, weir_state *st, const sbuf *g,
                         size_t plen, state_migrate_fn fn, void *arg,
                         uint64_t *calls, char **errptr)
{
    size_t off = 0, eklen, vlen;
    const char *ek = group_next(g, &off, &eklen);
    uint64_t klen = 0;
    size_t used = varint_get(ek + 2, plen - 2, &klen);
    const char *key = ek + 2 + used;
    int rc = state_set_key(s, get_be16(ek), key, (size_t)klen, WEIR_TS_NONE);
    if (rc < 0)
        return err_set(errptr, rc, "state store %s, state %s: migration: %s",
                       s->name, st->name, weir_strerror(rc));
    for (off = 0; off < g->len && rc == 0;) {
        ek = group_next(g, &off, &eklen);
        group_next(g, &off, &vlen);
        s->kbuf.len = 0;
        if (sbuf_add(&s->kbuf, ek, eklen) < 0)
            return sstore_oom(s, errptr);
        rc = sstore_ent_remove(s, st, errptr);
    }
    s->kbuf.len = s->plen;
    for (off = 0; off < g->len && rc == 0;) {
        ek = group_next(g, &off, &eklen);
        const char *v = group_next(g, &off, &vlen);
        const char *ukey = st->kind == WEIR_STATE_MAP ? ek + plen : NULL;
        size_t ulen = st->kind == WEIR_STATE_MAP ? eklen - plen : 0;
        if (st->kind != WEIR_STATE_LIST) {
            (*calls)++;
            rc = fn(arg, st, st->fmt_stored, key, (size_t)klen, ukey, ulen, v,
                    vlen);
            continue;
        }
        for (size_t at = 0; at < vlen && rc == 0;) {
            uint64_t n = 0;
            size_t u = varint_get(v + at, vlen - at, &n);
            if (!u || n > vlen - at - u)
                return err_set(errptr, WEIR_EIO,
                               "state store %s, state %s: corrupt list value",
                               s->name, st->name);
            (*calls)++;
            rc = fn(arg, st, st->fmt_stored, key, (size_t)klen, NULL, 0,
                    v + at + u, (size_t)n);
            at += u + (size_t)n;
        }
    }
    return rc;
}

int state_migrate(weir_state *st, state_migrate_fn fn, void *arg,
                  uint64_t *calls, char **errptr)
{
    state_store *s = st->s;
    *calls = 0;
    if (s->in_hook)
        return err_set(errptr, WEIR_ESTATE,
                       "state store %s: migration from an expiry hook",
                       s->name);
    int rc = state_cache_detach(st, errptr);
    if (rc < 0)
        return rc;
    /* The iterator reads a snapshot: what fn writes meanwhile is not met. */
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, st->cf);
    sbuf g = {0}, prefix = {0};
    for (rocksdb_iter_seek_to_first(it); rc == 0;) {
        int valid = rocksdb_iter_valid(it);
        size_t klen = 0, vlen = 0, plen = 0;
        const char *k = valid ? rocksdb_iter_key(it, &klen) : NULL;
        const char *v = valid ? rocksdb_iter_value(it, &vlen) : NULL;
        if (valid) {
            uint64_t n = 0;
            size_t used = klen > 2 ? varint_get(k + 2, klen - 2, &n) : 0;
            plen = 2 + used + (size_t)n;
            if (!used || n > klen - 2 - used || vlen < STAMP_LEN ||
                (st->kind != WEIR_STATE_MAP && plen != klen)) {
                rc = err_set(errptr, WEIR_EIO,
                             "state store %s, state %s: corrupt entry met "
                             "by the migration",
                             s->name, st->name);
                break;
            }
        }
        /* A new record key (or the end): migrate the group collected. */
        if (g.len &&
            (!valid || plen != prefix.len || memcmp(k, prefix.p, plen) != 0)) {
            rc = migrate_group(s, st, &g, prefix.len, fn, arg, calls, errptr);
            g.len = 0;
            if (rc < 0)
                break;
        }
        if (!valid)
            break;
        if (!g.len) {
            prefix.len = 0;
            if (sbuf_add(&prefix, k, plen) < 0) {
                rc = sstore_oom(s, errptr);
                break;
            }
        }
        if (group_add(&g, k, klen, v + STAMP_LEN, vlen - STAMP_LEN) < 0) {
            rc = sstore_oom(s, errptr);
            break;
        }
        rocksdb_iter_next(it);
    }
    if (rc == 0) {
        char *rerr = NULL;
        rocksdb_iter_get_error(it, &rerr);
        if (rerr)
            rc = sstore_rdb_fail(s, st, "migration iterate", rerr, errptr);
    }
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    sbuf_free(&g);
    sbuf_free(&prefix);
    state_clear_key(s);
    if (rc == 0)
        rc = state_format_commit(st, errptr);
    return rc;
}
