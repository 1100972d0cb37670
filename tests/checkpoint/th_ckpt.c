#include "th_ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

th_run *th_run_new(void)
{
    th_run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    strcpy(r->dir, "/tmp/weir-ckpt-test-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    snprintf(r->run_dir, sizeof r->run_dir, "%s/run", r->dir);
    assert_int_equal(mkdir(r->run_dir, 0755), 0);
    return r;
}

void th_run_free(th_run *r)
{
    if (!r)
        return;
    th_rm_rf(r->dir);
    free(r);
}

char *th_fmt(const char *fmt, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

static void mkdir_p_parent(const char *path)
{
    char *p = strdup(path);
    assert_non_null(p);
    for (char *s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST)
            fail_msg("mkdir %s: %s", p, strerror(errno));
        *s = '/';
    }
    free(p);
}

void th_write(const char *path, const void *data, size_t len)
{
    mkdir_p_parent(path);
    FILE *f = fopen(path, "wb");
    if (!f)
        fail_msg("fopen %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

void th_write_str(const char *path, const char *s)
{
    th_write(path, s, strlen(s));
}

char *th_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

int th_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

ino_t th_inode(const char *path)
{
    struct stat st;
    if (lstat(path, &st))
        fail_msg("stat %s: %s", path, strerror(errno));
    return st.st_ino;
}

uint64_t th_xxh3_file(const char *path)
{
    size_t len = 0;
    char *buf = th_read(path, &len);
    if (!buf)
        fail_msg("read %s: %s", path, strerror(errno));
    uint64_t h = XXH3_64bits(buf, len);
    free(buf);
    return h;
}

static int rm_cb(const char *path, const struct stat *st, int flag,
                 struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) ? -1 : 0;
}

void th_rm_rf(const char *path)
{
    if (th_exists(path))
        nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* nftw has no user argument: the listing in progress. */
static th_list *list_cur;
static size_t list_root_len;

static int list_cb(const char *path, const struct stat *st, int flag,
                   struct FTW *ftw)
{
    (void)ftw;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    th_list *l = list_cur;
    l->paths = realloc(l->paths, (l->n + 1) * sizeof *l->paths);
    assert_non_null(l->paths);
    l->paths[l->n] = strdup(path + list_root_len + 1);
    assert_non_null(l->paths[l->n]);
    l->n++;
    return 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void th_list_tree(const char *root, th_list *out)
{
    memset(out, 0, sizeof *out);
    list_cur = out;
    list_root_len = strlen(root);
    assert_int_equal(nftw(root, list_cb, 16, FTW_PHYS), 0);
    list_cur = NULL;
    if (out->n)
        qsort(out->paths, out->n, sizeof *out->paths, str_cmp);
}

void th_list_free(th_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

char *th_last_sst(const char *root)
{
    th_list l;
    th_list_tree(root, &l);
    char *found = NULL;
    for (size_t i = l.n; i-- > 0 && !found;) {
        size_t n = strlen(l.paths[i]);
        if (n > 4 && strcmp(l.paths[i] + n - 4, ".sst") == 0)
            found = strdup(l.paths[i]);
    }
    th_list_free(&l);
    if (!found)
        fail_msg("no .sst file under %s", root);
    return found;
}

/* ------------------------------------------------------------------------ */

th_db *th_db_open(const char *path)
{
    th_db *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(d->opts, 1);
    char *err = NULL;
    d->db = rocksdb_open(d->opts, path, &err);
    if (err)
        fail_msg("rocksdb_open %s: %s", path, err);
    d->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(d->wo, 1);
    d->ro = rocksdb_readoptions_create();
    return d;
}

void th_db_close(th_db *d)
{
    if (!d)
        return;
    rocksdb_close(d->db);
    rocksdb_writeoptions_destroy(d->wo);
    rocksdb_readoptions_destroy(d->ro);
    rocksdb_options_destroy(d->opts);
    free(d);
}

void th_db_put(th_db *d, const char *key, const char *value)
{
    char *err = NULL;
    rocksdb_put(d->db, d->wo, key, strlen(key), value, strlen(value), &err);
    if (err)
        fail_msg("rocksdb_put: %s", err);
}

char *th_db_get(th_db *d, const char *key)
{
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get(d->db, d->ro, key, strlen(key), &len, &err);
    if (err)
        fail_msg("rocksdb_get: %s", err);
    if (!v)
        return NULL;
    char *s = strndup(v, len);
    rocksdb_free(v);
    return s;
}

void th_db_fill(th_db *d, int from, int to, const char *tag)
{
    char k[32], v[64];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof k, "k%06d", i);
        snprintf(v, sizeof v, "v%d-%s", i, tag);
        th_db_put(d, k, v);
    }
}

void th_db_checkpoint(th_db *d, const char *dir)
{
    char *err = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(d->db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err)
        fail_msg("rocksdb_flush: %s", err);
    mkdir_p_parent(dir);
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(d->db, &err);
    if (err)
        fail_msg("rocksdb_checkpoint_object_create: %s", err);
    rocksdb_checkpoint_create(cp, dir, 0, &err);
    rocksdb_checkpoint_object_destroy(cp);
    if (err)
        fail_msg("rocksdb_checkpoint_create %s: %s", dir, err);
}

/* ------------------------------------------------------------------------ */

ckpt_manifest *th_manifest(uint64_t id, int with_count, int with_src)
{
    ckpt_manifest *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->job = strdup("job");
    m->id = id;
    m->triggered_ms = 1700000000000 + (int64_t)id;
    m->max_parallelism = 128;
    m->tasks = calloc(2, sizeof *m->tasks);
    assert_non_null(m->tasks);
    if (with_count) {
        ckpt_task *t = &m->tasks[m->n_tasks++];
        t->op_id = strdup("count");
        t->parallelism = 1;
        t->state_dir = strdup("count-0/state");
        t->snapshot = strdup("count-0/snapshot");
        t->snapshot_version = 3;
        t->state_bytes = 4096;
        t->sync_ms = 2;
        t->align_ms = 5;
    }
    if (with_src) {
        ckpt_task *t = &m->tasks[m->n_tasks++];
        t->op_id = strdup("src");
        t->parallelism = 1;
        t->snapshot = strdup("src-0/snapshot");
        t->snapshot_version = 1;
        t->sync_ms = -1;
    }
    return m;
}

ckpt_manifest *th_make_checkpoint(th_run *r, uint64_t id, th_db *db,
                                  ckpt_sum_cache *cache)
{
    char *chk = ckpt_dir(r->run_dir, id);
    assert_non_null(chk);
    assert_int_equal(mkdir(chk, 0755), 0);
    char *p;
    if (db) {
        p = th_fmt("%s/count-0/state", chk);
        th_db_checkpoint(db, p);
        free(p);
        p = th_fmt("%s/count-0/snapshot", chk);
        char *s =
            th_fmt("count snapshot of checkpoint %llu", (unsigned long long)id);
        th_write_str(p, s);
        free(s);
        free(p);
    }
    p = th_fmt("%s/src-0/snapshot", chk);
    char *s = th_fmt("offset=%llu", (unsigned long long)id * 100);
    th_write_str(p, s);
    free(s);
    free(p);
    ckpt_manifest *m = th_manifest(id, db != NULL, 1);
    char *err = NULL;
    int rc = ckpt_complete(r->run_dir, m, cache, &err);
    if (rc)
        fail_msg("ckpt_complete %llu: %d %s", (unsigned long long)id, rc, err);
    free(chk);
    return m;
}
