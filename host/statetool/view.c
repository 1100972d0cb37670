#include "statetool/view.h"

#include <errno.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/fs.h"
#include "state/codec.h"
#include "state/timers.h"
#include "statetool/entry.h"

/* A delta entry of one state, in key order. */
typedef struct stv_dent {
    const ste_delta_ent *e;
    size_t seq; /* position in the file: of equal keys the last wins */
} stv_dent;

struct stv_db {
    char *dir, *delta_path, *log_dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ro;
    char **cf_names;
    rocksdb_column_family_handle_t **cfs;
    size_t n_cfs;
    rocksdb_column_family_handle_t *meta_cf, *idx_cf, *timer_cf;
    stv_state *states;
    rocksdb_column_family_handle_t **state_cfs; /* parallel to states */
    size_t n_states;
    const char **other;
    size_t n_other;
    char *delta_data;
    ste_delta_ent *delta;
    size_t n_delta;
    stv_dent **dents; /* per state, sorted, one per key */
    size_t *n_dents;
    char *vbuf; /* stamp | value of a delta entry being passed on */
    size_t vcap;
};

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int dent_cmp(const void *x, const void *y)
{
    const stv_dent *a = x, *b = y;
    int c = key_cmp(a->e->key, a->e->key_len, b->e->key, b->e->key_len);
    return c ? c : (a->seq > b->seq) - (a->seq < b->seq);
}

static int stv_oom(char **errptr)
{
    err_set(errptr, WEIR_ENOMEM, "out of memory");
    return WEIR_ENOMEM;
}

/* Opens RocksDB read-only with every column family of the directory. */
static int stv_open_rdb(stv_db *v, char **errptr)
{
    char *rerr = NULL;
    v->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(v->opts, 0);
    rocksdb_options_set_info_log_level(v->opts, 2 /* warn */);
    rocksdb_options_set_db_log_dir(v->opts, v->log_dir);
    v->cf_names =
        rocksdb_list_column_families(v->opts, v->dir, &v->n_cfs, &rerr);
    if (rerr) {
        int rc =
            err_set(errptr, WEIR_EIO, "state directory %s: %s", v->dir, rerr);
        free(rerr);
        v->cf_names = NULL;
        v->n_cfs = 0;
        return rc;
    }
    const rocksdb_options_t **o = calloc(v->n_cfs, sizeof *o);
    v->cfs = calloc(v->n_cfs, sizeof *v->cfs);
    if (!o || !v->cfs) {
        free(o);
        return stv_oom(errptr);
    }
    for (size_t i = 0; i < v->n_cfs; i++)
        o[i] = v->opts;
    v->db = rocksdb_open_for_read_only_column_families(
        v->opts, v->dir, (int)v->n_cfs, (const char *const *)v->cf_names, o,
        v->cfs, 0, &rerr);
    free(o);
    if (rerr) {
        int rc = err_set(errptr, WEIR_EIO,
                         "cannot open state directory %s read-only: %s", v->dir,
                         rerr);
        free(rerr);
        v->db = NULL;
        return rc;
    }
    v->ro = rocksdb_readoptions_create();
    return 0;
}

/* The metadata value of state `name`: 1 found, 0 not, or a negative code. */
static int stv_meta_get(stv_db *v, const char *name, uint16_t *id,
                        uint8_t *kind, uint32_t *format, char **errptr)
{
    char key[256], *rerr = NULL;
    size_t vlen = 0;
    snprintf(key, sizeof key, META_STATE_PREFIX "%s", name);
    char *val = rocksdb_get_cf(v->db, v->ro, v->meta_cf, key, strlen(key),
                               &vlen, &rerr);
    if (rerr) {
        int rc = err_set(errptr, WEIR_EIO, "state directory %s: metadata: %s",
                         v->dir, rerr);
        free(rerr);
        return rc;
    }
    int found = val && ste_meta_parse(val, vlen, id, kind, format) == 0;
    rocksdb_free(val);
    return found;
}

/* Reads the TTL override record of `st`, if any: 1, or a negative code. */
static int stv_ttl_get(stv_db *v, stv_state *st, char **errptr)
{
    char key[256], *rerr = NULL;
    size_t vlen = 0;
    snprintf(key, sizeof key, META_TTL_PREFIX "%s", st->name);
    char *val = rocksdb_get_cf(v->db, v->ro, v->meta_cf, key, strlen(key),
                               &vlen, &rerr);
    if (rerr) {
        int rc = err_set(errptr, WEIR_EIO, "state directory %s: metadata: %s",
                         v->dir, rerr);
        free(rerr);
        return rc;
    }
    if (val && vlen) {
        st->ttl_rec = malloc(vlen);
        if (!st->ttl_rec) {
            rocksdb_free(val);
            return stv_oom(errptr);
        }
        memcpy(st->ttl_rec, val, vlen);
        st->ttl_len = vlen;
    }
    rocksdb_free(val);
    return 1;
}

static int stv_check_format(stv_db *v, char **errptr)
{
    char *rerr = NULL;
    size_t vlen = 0;
    char *val = rocksdb_get_cf(v->db, v->ro, v->meta_cf, META_FORMAT_KEY,
                               strlen(META_FORMAT_KEY), &vlen, &rerr);
    int rc = 0;
    if (rerr)
        rc = err_set(errptr, WEIR_EIO, "state directory %s: metadata: %s",
                     v->dir, rerr);
    else if (val && (vlen != strlen(META_FORMAT) ||
                     memcmp(val, META_FORMAT, vlen) != 0))
        rc = err_set(errptr, WEIR_EINVAL,
                     "state directory %s has format '%.*s'; this build reads "
                     "format " META_FORMAT,
                     v->dir, (int)(vlen > 16 ? 16 : vlen), val);
    free(rerr);
    rocksdb_free(val);
    return rc;
}

/* Sorts the column families into metadata, index, timers, states and
 * others. */
static int stv_classify(stv_db *v, char **errptr)
{
    size_t plen = strlen(STATE_CF_PREFIX);
    v->states = calloc(v->n_cfs + 1, sizeof *v->states);
    v->state_cfs = calloc(v->n_cfs + 1, sizeof *v->state_cfs);
    v->other = calloc(v->n_cfs + 1, sizeof *v->other);
    if (!v->states || !v->state_cfs || !v->other)
        return stv_oom(errptr);
    for (size_t i = 0; i < v->n_cfs; i++) {
        const char *n = v->cf_names[i];
        if (strcmp(n, "default") == 0)
            v->meta_cf = v->cfs[i];
        else if (strcmp(n, INDEX_CF) == 0)
            v->idx_cf = v->cfs[i];
        else if (strcmp(n, STATE_TIMER_CF) == 0)
            v->timer_cf = v->cfs[i];
        else if (strncmp(n, STATE_CF_PREFIX, plen) == 0 && n[plen])
            v->state_cfs[v->n_states++] = v->cfs[i];
        else
            v->other[v->n_other++] = n;
    }
    if (!v->meta_cf)
        return err_set(errptr, WEIR_EIO,
                       "state directory %s has no default column family",
                       v->dir);
    int rc = stv_check_format(v, errptr);
    for (size_t i = 0, k = 0; rc == 0 && i < v->n_cfs; i++) {
        const char *n = v->cf_names[i];
        if (strncmp(n, STATE_CF_PREFIX, plen) != 0 || !n[plen])
            continue;
        stv_state *st = &v->states[k++];
        if (!(st->name = strdup(n + plen)) || !(st->cf = strdup(n)))
            return stv_oom(errptr);
        rc = stv_meta_get(v, st->name, &st->id, &st->kind, &st->format, errptr);
        if (rc > 0)
            rc = stv_ttl_get(v, st, errptr);
        if (rc == 0)
            return err_set(errptr, WEIR_EIO,
                           "state directory %s: column family %s has no "
                           "metadata (" META_STATE_PREFIX "%s)",
                           v->dir, n, st->name);
        rc = rc < 0 ? rc : 0;
    }
    return rc;
}

static ssize_t stv_state_by_id(const stv_db *v, uint16_t id)
{
    for (size_t i = 0; i < v->n_states; i++)
        if (v->states[i].id == id)
            return (ssize_t)i;
    return -1;
}

/* Reads the delta and sorts its entries per state. */
static int stv_load_delta(stv_db *v, char **errptr)
{
    size_t len = 0, bad = 0;
    int rc = fs_read_file(v->delta_path, &v->delta_data, &len, errptr);
    if (rc < 0)
        return rc;
    rc = ste_delta_parse(v->delta_data, len, &v->delta, &v->n_delta, &bad);
    if (rc == WEIR_ENOMEM)
        return stv_oom(errptr);
    if (rc < 0)
        return err_set(errptr, WEIR_EIO, "delta %s is damaged (at byte %zu)",
                       v->delta_path, bad);
    v->dents = calloc(v->n_states + 1, sizeof *v->dents);
    v->n_dents = calloc(v->n_states + 1, sizeof *v->n_dents);
    if (!v->dents || !v->n_dents)
        return stv_oom(errptr);
    for (size_t i = 0; i < v->n_delta; i++) {
        ssize_t s = stv_state_by_id(v, v->delta[i].sid);
        if (s < 0)
            return err_set(errptr, WEIR_EIO,
                           "delta %s is damaged: entry %zu names state id %u, "
                           "which %s does not have",
                           v->delta_path, i, v->delta[i].sid, v->dir);
        v->n_dents[s]++;
    }
    for (size_t s = 0; s < v->n_states; s++) {
        if (!(v->dents[s] = calloc(v->n_dents[s] + 1, sizeof **v->dents)))
            return stv_oom(errptr);
        v->n_dents[s] = 0;
    }
    for (size_t i = 0; i < v->n_delta; i++) {
        size_t s = (size_t)stv_state_by_id(v, v->delta[i].sid);
        v->dents[s][v->n_dents[s]++] = (stv_dent){&v->delta[i], i};
        if (v->delta[i].del)
            v->states[s].delta_deletes++;
        else
            v->states[s].delta_puts++;
    }
    for (size_t s = 0; s < v->n_states; s++) {
        stv_dent *d = v->dents[s];
        size_t n = v->n_dents[s], k = 0;
        qsort(d, n, sizeof *d, dent_cmp);
        for (size_t i = 0; i < n; i++) { /* keep the last of equal keys */
            if (k && !key_cmp(d[k - 1].e->key, d[k - 1].e->key_len, d[i].e->key,
                              d[i].e->key_len))
                k--;
            d[k++] = d[i];
        }
        v->n_dents[s] = k;
    }
    return 0;
}

static int stv_make_log_dir(stv_db *v, char **errptr)
{
    const char *tmp = getenv("TMPDIR");
    if (asprintf(&v->log_dir, "%s/weir-stv-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp") < 0) {
        v->log_dir = NULL;
        return stv_oom(errptr);
    }
    if (!mkdtemp(v->log_dir)) {
        int rc = err_set(errptr, WEIR_EIO, "mkdtemp %s: %s", v->log_dir,
                         strerror(errno));
        free(v->log_dir);
        v->log_dir = NULL;
        return rc;
    }
    return 0;
}

int stv_open(const char *dir, const char *delta, stv_db **out, char **errptr)
{
    *out = NULL;
    stv_db *v = calloc(1, sizeof *v);
    if (!v || !(v->dir = strdup(dir)) ||
        (delta && !(v->delta_path = strdup(delta)))) {
        stv_close(v);
        return stv_oom(errptr);
    }
    int rc = stv_make_log_dir(v, errptr);
    if (rc == 0)
        rc = stv_open_rdb(v, errptr);
    if (rc == 0)
        rc = stv_classify(v, errptr);
    if (rc == 0 && delta && access(delta, F_OK) == 0)
        rc = stv_load_delta(v, errptr);
    if (rc < 0) {
        stv_close(v);
        return rc;
    }
    *out = v;
    return 0;
}

void stv_close(stv_db *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_cfs && v->cfs; i++)
        if (v->cfs[i])
            rocksdb_column_family_handle_destroy(v->cfs[i]);
    if (v->db)
        rocksdb_close(v->db);
    if (v->cf_names)
        rocksdb_list_column_families_destroy(v->cf_names, v->n_cfs);
    if (v->ro)
        rocksdb_readoptions_destroy(v->ro);
    if (v->opts)
        rocksdb_options_destroy(v->opts);
    for (size_t i = 0; i < v->n_states; i++) {
        free(v->states[i].name);
        free(v->states[i].cf);
        free(v->states[i].ttl_rec);
        if (v->dents)
            free(v->dents[i]);
    }
    if (v->log_dir)
        fs_rmtree(v->log_dir, NULL);
    free(v->cfs);
    free(v->states);
    free(v->state_cfs);
    free(v->other);
    free(v->dents);
    free(v->n_dents);
    free(v->delta);
    free(v->delta_data);
    free(v->vbuf);
    free(v->log_dir);
    free(v->delta_path);
    free(v->dir);
    free(v);
}

size_t stv_state_count(const stv_db *v)
{
    return v->n_states;
}

const stv_state *stv_state_at(const stv_db *v, size_t i)
{
    return i < v->n_states ? &v->states[i] : NULL;
}

const stv_state *stv_state_find(const stv_db *v, const char *name)
{
    for (size_t i = 0; i < v->n_states; i++)
        if (strcmp(v->states[i].name, name) == 0)
            return &v->states[i];
    return NULL;
}

size_t stv_other_cf_count(const stv_db *v)
{
    return v->n_other;
}

const char *stv_other_cf(const stv_db *v, size_t i)
{
    return i < v->n_other ? v->other[i] : NULL;
}

/* Passes a delta value on as a stored value (stamp | bytes). */
static int stv_emit_delta(stv_db *v, const ste_delta_ent *e, stv_fn fn,
                          void *arg)
{
    size_t need = STAMP_LEN + e->val_len;
    if (need > v->vcap) {
        char *n = realloc(v->vbuf, need);
        if (!n)
            return WEIR_ENOMEM;
        v->vbuf = n;
        v->vcap = need;
    }
    stamp_put(v->vbuf, e->stamp);
    if (e->val_len)
        memcpy(v->vbuf + STAMP_LEN, e->val, e->val_len);
    return fn(arg, e->key, e->key_len, v->vbuf, need);
}

/* The scan's merge of the RocksDB iterator `it` with delta entries d[0..n)
 * (both from lo, both below hi). */
static int stv_merge(stv_db *v, rocksdb_iterator_t *it, const stv_dent *d,
                     size_t n, stv_fn fn, void *arg)
{
    size_t di = 0;
    int rc = 0;
    while (rc == 0) {
        int rvalid = rocksdb_iter_valid(it);
        const ste_delta_ent *de = d && di < n ? d[di].e : NULL;
        if (!rvalid && !de)
            break;
        size_t klen = 0, vlen = 0;
        const char *k = rvalid ? rocksdb_iter_key(it, &klen) : NULL;
        /* c < 0: the stored entry comes first; c == 0: the delta replaces
         * it; c > 0: the delta entry comes first. */
        int c = !rvalid ? 1 : !de ? -1 : key_cmp(k, klen, de->key, de->key_len);
        if (c < 0) {
            const char *val = rocksdb_iter_value(it, &vlen);
            rc = fn(arg, k, klen, val, vlen);
            rocksdb_iter_next(it);
            continue;
        }
        if (!de->del)
            rc = stv_emit_delta(v, de, fn, arg);
        di++;
        if (c == 0)
            rocksdb_iter_next(it);
    }
    return rc;
}

int stv_scan_state(stv_db *v, const stv_state *st, const char *lo,
                   size_t lo_len, const char *hi, size_t hi_len, stv_fn fn,
                   void *arg, char **errptr)
{
    size_t s = (size_t)(st - v->states);
    const stv_dent *d = v->dents ? v->dents[s] : NULL;
    size_t n = v->dents ? v->n_dents[s] : 0, first = 0;
    while (lo && first < n &&
           key_cmp(d[first].e->key, d[first].e->key_len, lo, lo_len) < 0)
        first++;
    while (hi && n > first &&
           key_cmp(d[n - 1].e->key, d[n - 1].e->key_len, hi, hi_len) >= 0)
        n--;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (hi)
        rocksdb_readoptions_set_iterate_upper_bound(ro, hi, hi_len);
    rocksdb_iterator_t *it =
        rocksdb_create_iterator_cf(v->db, ro, v->state_cfs[s]);
    if (lo)
        rocksdb_iter_seek(it, lo, lo_len);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = stv_merge(v, it, d ? d + first : NULL, n - first, fn, arg);
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (rerr) {
        rc = err_set(errptr, WEIR_EIO, "state directory %s: reading %s: %s",
                     v->dir, st->cf, rerr);
        free(rerr);
        return rc;
    }
    if (rc == WEIR_ENOMEM)
        return stv_oom(errptr);
    return rc > 0 ? 0 : rc;
}

int stv_scan_cf(stv_db *v, stv_cf which, stv_fn fn, void *arg, char **errptr)
{
    rocksdb_column_family_handle_t *cf =
        which == STV_TIMERS ? v->timer_cf : v->idx_cf;
    if (!cf)
        return 0; /* a store that never had the column family */
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(v->db, v->ro, cf);
    int rc = 0;
    for (rocksdb_iter_seek_to_first(it); rc == 0 && rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *val = rocksdb_iter_value(it, &vlen);
        rc = fn(arg, k, klen, val, vlen);
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    if (rerr) {
        rc = err_set(errptr, WEIR_EIO, "state directory %s: reading %s: %s",
                     v->dir, which == STV_TIMERS ? STATE_TIMER_CF : INDEX_CF,
                     rerr);
        free(rerr);
        return rc;
    }
    return rc > 0 ? 0 : rc;
}

static uint64_t stv_prop(stv_db *v, rocksdb_column_family_handle_t *cf,
                         const char *name)
{
    char *s = cf ? rocksdb_property_value_cf(v->db, cf, name) : NULL;
    uint64_t n = s ? strtoull(s, NULL, 10) : 0;
    free(s);
    return n;
}

void stv_estimate(stv_db *v, const stv_state *st, stv_cf which, uint64_t *keys,
                  uint64_t *bytes)
{
    rocksdb_column_family_handle_t *cf =
        st ? v->state_cfs[st - v->states]
           : (which == STV_TIMERS ? v->timer_cf : v->idx_cf);
    *keys = stv_prop(v, cf, "rocksdb.estimate-num-keys");
    *bytes = stv_prop(v, cf, "rocksdb.total-sst-files-size");
}
