#include "statetool/writer.h"

#include <errno.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/fs.h"
#include "state/codec.h"
#include "state/timers.h"
#include "statetool/entry.h"

/* Bytes of keys and values gathered before a batch is written. */
#define STW_BATCH_BYTES (4u << 20)

struct stw_db {
    char *dir;
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_writeoptions_t *wo;
    rocksdb_writebatch_t *batch;
    size_t batch_bytes;
    uint64_t count;
    /* 0 default, 1 index, 2 timers, 3.. the states */
    rocksdb_column_family_handle_t **cfs;
    size_t n_cfs;
};

static int stw_rdb(stw_db *w, const char *what, char *rerr, char **errptr)
{
    int rc = err_set(errptr, WEIR_EIO, "state directory %s: %s: %s", w->dir,
                     what, rerr);
    free(rerr);
    return rc;
}

static int stw_write_batch(stw_db *w, char **errptr)
{
    if (!w->batch_bytes)
        return 0;
    char *rerr = NULL;
    rocksdb_write(w->db, w->wo, w->batch, &rerr);
    rocksdb_writebatch_clear(w->batch);
    w->batch_bytes = 0;
    return rerr ? stw_rdb(w, "write", rerr, errptr) : 0;
}

/* Opens RocksDB on the new directory with every column family. */
static int stw_open(stw_db *w, const stw_state *states, size_t n, char **errptr)
{
    w->n_cfs = 3 + n;
    char **names = calloc(w->n_cfs, sizeof *names);
    const rocksdb_options_t **o = calloc(w->n_cfs, sizeof *o);
    w->cfs = calloc(w->n_cfs, sizeof *w->cfs);
    int rc = 0;
    if (!names || !o || !w->cfs) {
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    names[0] = strdup("default");
    names[1] = strdup(INDEX_CF);
    names[2] = strdup(STATE_TIMER_CF);
    for (size_t i = 0; i < n; i++)
        if (asprintf(&names[3 + i], STATE_CF_PREFIX "%s", states[i].name) < 0)
            names[3 + i] = NULL;
    for (size_t i = 0; i < w->n_cfs; i++) {
        o[i] = w->opts;
        if (!names[i]) {
            rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
            goto out;
        }
    }
    char *rerr = NULL;
    w->db = rocksdb_open_column_families(w->opts, w->dir, (int)w->n_cfs,
                                         (const char *const *)names, o, w->cfs,
                                         &rerr);
    if (rerr) {
        w->db = NULL;
        rc = stw_rdb(w, "create", rerr, errptr);
    }
out:
    for (size_t i = 0; names && i < w->n_cfs; i++)
        free(names[i]);
    free(names);
    free(o);
    return rc;
}

/* Writes the metadata (with the WAL, like the store does). */
static int stw_meta(stw_db *w, const stw_state *states, size_t n, char **errptr)
{
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put_cf(b, w->cfs[0], META_FORMAT_KEY,
                              strlen(META_FORMAT_KEY), META_FORMAT,
                              strlen(META_FORMAT));
    for (size_t i = 0; i < n; i++) {
        char key[256], val[META_STATE_LEN];
        snprintf(key, sizeof key, META_STATE_PREFIX "%s", states[i].name);
        ste_meta_encode(val, states[i].id, states[i].kind, states[i].format);
        rocksdb_writebatch_put_cf(b, w->cfs[0], key, strlen(key), val,
                                  sizeof val);
        if (!states[i].ttl_rec)
            continue;
        snprintf(key, sizeof key, META_TTL_PREFIX "%s", states[i].name);
        rocksdb_writebatch_put_cf(b, w->cfs[0], key, strlen(key),
                                  states[i].ttl_rec, states[i].ttl_len);
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *rerr = NULL;
    rocksdb_write(w->db, wo, b, &rerr);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_writebatch_destroy(b);
    return rerr ? stw_rdb(w, "metadata", rerr, errptr) : 0;
}

int stw_create(const char *dir, const stw_state *states, size_t n, stw_db **out,
               char **errptr)
{
    *out = NULL;
    struct stat sb;
    if (lstat(dir, &sb) == 0)
        return err_set(errptr, WEIR_EINVAL,
                       "state directory %s exists already; a new one is "
                       "only written where nothing is",
                       dir);
    for (size_t i = 0; i < n; i++)
        if (strlen(states[i].name) > 200)
            return err_set(errptr, WEIR_EINVAL, "state name too long: %.40s...",
                           states[i].name);
    stw_db *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    }
    int rc = fs_mkdirs(dir, errptr);
    if (rc < 0) {
        stw_abandon(w);
        return rc;
    }
    w->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(w->opts, 1);
    rocksdb_options_set_create_missing_column_families(w->opts, 1);
    rocksdb_options_set_error_if_exists(w->opts, 1);
    rocksdb_options_set_info_log_level(w->opts, 2 /* warn */);
    rocksdb_options_set_keep_log_file_num(w->opts, 2);
    w->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(w->wo, 1);
    w->batch = rocksdb_writebatch_create();
    rc = stw_open(w, states, n, errptr);
    if (rc == 0)
        rc = stw_meta(w, states, n, errptr);
    if (rc < 0) {
        stw_abandon(w);
        return rc;
    }
    *out = w;
    return 0;
}

int stw_put(stw_db *w, int where, const char *k, size_t klen, const char *v,
            size_t vlen, char **errptr)
{
    size_t cf = where == STW_TIMERS  ? 2
                : where == STW_INDEX ? 1
                                     : 3 + (size_t)where;
    if (where < STW_INDEX || cf >= w->n_cfs)
        return err_set(errptr, WEIR_EINVAL,
                       "state directory %s: no column family %d", w->dir,
                       where);
    rocksdb_writebatch_put_cf(w->batch, w->cfs[cf], k, klen, v, vlen);
    w->batch_bytes += klen + vlen + 16;
    w->count++;
    return w->batch_bytes >= STW_BATCH_BYTES ? stw_write_batch(w, errptr) : 0;
}

uint64_t stw_count(const stw_db *w)
{
    return w->count;
}

void stw_abandon(stw_db *w)
{
    if (!w)
        return;
    for (size_t i = 0; w->cfs && i < w->n_cfs; i++)
        if (w->cfs[i])
            rocksdb_column_family_handle_destroy(w->cfs[i]);
    if (w->db)
        rocksdb_close(w->db);
    if (w->batch)
        rocksdb_writebatch_destroy(w->batch);
    if (w->wo)
        rocksdb_writeoptions_destroy(w->wo);
    if (w->opts)
        rocksdb_options_destroy(w->opts);
    free(w->cfs);
    free(w->dir);
    free(w);
}

int stw_finish(stw_db *w, char **errptr)
{
    int rc = stw_write_batch(w, errptr);
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (size_t i = 0; rc == 0 && i < w->n_cfs; i++) {
        char *rerr = NULL;
        rocksdb_flush_cf(w->db, fo, w->cfs[i], &rerr);
        if (rerr)
            rc = stw_rdb(w, "flush", rerr, errptr);
    }
    rocksdb_flushoptions_destroy(fo);
    stw_abandon(w);
    return rc;
}
