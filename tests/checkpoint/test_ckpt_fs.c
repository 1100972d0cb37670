/*
 * The file-system side of checkpoints: the checksum cache of SST files,
 * retention of completed checkpoints and removal of aborted ones,
 * ckpt_rmtree, and ckpt_materialize (hard links for SSTs, copies for the
 * rest, copies across file systems).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint/fsutil.h"
#include "checkpoint/manifest.h"
#include "common/fs.h"
#include "th_ckpt.h"

#include "weir/weir.h"

static int setup(void **state)
{
    *state = th_run_new();
    return 0;
}

static int teardown(void **state)
{
    th_run_free(*state);
    return 0;
}

static int is_sst(const char *p)
{
    size_t n = strlen(p);
    return n > 4 && strcmp(p + n - 4, ".sst") == 0;
}

static size_t count_ssts(const char *root)
{
    th_list l;
    th_list_tree(root, &l);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        n += (size_t)is_sst(l.paths[i]);
    th_list_free(&l);
    return n;
}

/* Every file of m matches an independent checksum of the file on disk. */
static void assert_sums_true(th_run *r, const ckpt_manifest *m)
{
    for (size_t i = 0; i < m->n_files; i++) {
        char *p = th_fmt("%s/chk-%llu/%s", r->run_dir,
                         (unsigned long long)m->id, m->files[i].path);
        assert_int_equal(m->files[i].xxh3, th_xxh3_file(p));
        free(p);
    }
}

/* Makes chk-<id> from chk-<from>: SSTs hard-linked, the rest copied. */
static void link_checkpoint(th_run *r, uint64_t from, uint64_t id)
{
    char *src = ckpt_dir(r->run_dir, from);
    th_list l;
    th_list_tree(src, &l);
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.paths[i], "MANIFEST.json") == 0)
            continue;
        char *a = th_fmt("%s/%s", src, l.paths[i]);
        char *b = th_fmt("%s/chk-%llu/%s", r->run_dir, (unsigned long long)id,
                         l.paths[i]);
        if (is_sst(l.paths[i])) {
            th_write(b, "", 0); /* creates the parents */
            assert_int_equal(unlink(b), 0);
            assert_int_equal(link(a, b), 0);
        } else {
            size_t len = 0;
            char *data = th_read(a, &len);
            th_write(b, data, len);
            free(data);
        }
        free(a);
        free(b);
    }
    th_list_free(&l);
    free(src);
}

static ckpt_manifest *complete_plain(th_run *r, uint64_t id,
                                     ckpt_sum_cache *cache)
{
    ckpt_manifest *m = th_manifest(id, 0, 1);
    char *err = NULL;
    int rc = ckpt_complete(r->run_dir, m, cache, &err);
    if (rc)
        fail_msg("ckpt_complete %llu: %s", (unsigned long long)id, err);
    return m;
}

static void test_sum_cache(void **state)
{
    th_run *r = *state;
    ckpt_sum_cache *cache = ckpt_sum_cache_new();
    assert_non_null(cache);
    ckpt_sum_cache_stats st;
    char *err = NULL;
    char *dbdir = th_fmt("%s/db", r->dir);
    th_db *db = th_db_open(dbdir);
    th_db_fill(db, 0, 3000, "a");

    /* First checkpoint: every SST is read. */
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, db, cache);
    char *chk1 = ckpt_dir(r->run_dir, 1);
    size_t n1 = count_ssts(chk1);
    assert_true(n1 >= 1);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, n1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.entries, n1);
    assert_int_equal(ckpt_sum_cache_misses(cache), n1);

    /* Hard links of the same SSTs: no new checksum, same sums. */
    link_checkpoint(r, 1, 2);
    ckpt_manifest *m2 = complete_plain(r, 2, cache);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, n1);
    assert_int_equal(st.hits, n1);
    assert_sums_true(r, m2);
    assert_int_equal(m2->n_files, m1->n_files);
    for (size_t i = 0; i < m1->n_files; i++)
        assert_int_equal(m1->files[i].xxh3, m2->files[i].xxh3);
    ckpt_manifest *got = NULL;
    assert_int_equal(ckpt_manifest_load(r->run_dir, 2, 1, &got, &err), 0);
    ckpt_manifest_free(got);

    /* A real incremental checkpoint: only the new SST is read. */
    th_db_fill(db, 3000, 4000, "b");
    ckpt_manifest *m3 = th_make_checkpoint(r, 3, db, cache);
    char *chk3 = ckpt_dir(r->run_dir, 3);
    th_list l;
    th_list_tree(chk3, &l);
    size_t shared = 0, n3 = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (!is_sst(l.paths[i]))
            continue;
        n3++;
        char *a = th_fmt("%s/%s", chk1, l.paths[i]);
        char *b = th_fmt("%s/%s", chk3, l.paths[i]);
        shared += th_exists(a) && th_inode(a) == th_inode(b);
        free(a);
        free(b);
    }
    th_list_free(&l);
    assert_true(n3 > shared);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, n1 + (n3 - shared));
    assert_int_equal(st.hits, n1 + shared);
    assert_int_equal(st.entries, n3);
    assert_sums_true(r, m3);
    th_db_close(db);

    /* Only *.sst files are trusted: a file rewritten in place with the same
     * size and mtime is read again unless it is an SST. */
    char *snap4 = th_fmt("%s/chk-4/src-0/snapshot", r->run_dir);
    char *sst4 = th_fmt("%s/chk-4/extra/000001.sst", r->run_dir);
    th_write_str(snap4, "offset=aaaa");
    th_write_str(sst4, "sst-content-1");
    ckpt_manifest *m4 = complete_plain(r, 4, cache);
    ckpt_sum_cache_stats_get(cache, &st);
    uint64_t misses4 = st.misses;
    assert_int_equal(st.entries, 1); /* the DB's SSTs were evicted */
    link_checkpoint(r, 4, 5);
    char *snap5 = th_fmt("%s/chk-5/src-0/snapshot", r->run_dir);
    char *sst5 = th_fmt("%s/chk-5/extra/000001.sst", r->run_dir);
    assert_int_equal(unlink(snap5), 0); /* link it too, then rewrite */
    assert_int_equal(link(snap4, snap5), 0);
    const char *paths[] = {snap5, sst5};
    const char *fresh[] = {"offset=bbbb", "sst-content-2"};
    for (int i = 0; i < 2; i++) {
        struct stat before;
        assert_int_equal(stat(paths[i], &before), 0);
        int fd = open(paths[i], O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, fresh[i], strlen(fresh[i]), 0),
                         (ssize_t)strlen(fresh[i]));
        struct timespec ts[2] = {before.st_atim, before.st_mtim};
        assert_int_equal(futimens(fd, ts), 0);
        close(fd);
    }
    ckpt_manifest *m5 = complete_plain(r, 5, cache);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, misses4); /* the SST came from the cache */
    for (size_t i = 0; i < m5->n_files; i++) {
        if (strcmp(m5->files[i].path, "src-0/snapshot") == 0)
            assert_int_equal(m5->files[i].xxh3, th_xxh3_file(snap5));
        else
            assert_int_equal(m5->files[i].xxh3, m4->files[i].xxh3);
    }
    /* (That is the documented assumption: SSTs are never rewritten. A
     * verification reads the file and sees the difference.) */
    assert_int_equal(ckpt_manifest_load(r->run_dir, 5, 1, &got, &err),
                     WEIR_EIO);
    assert_non_null(strstr(err, "extra/000001.sst: checksum mismatch"));

    /* Many entries: growth of the index, eviction and shrinking. */
    char *p;
    for (int i = 0; i < 300; i++) {
        p = th_fmt("%s/chk-6/many/%06d.sst", r->run_dir, i);
        char *c = th_fmt("content %d", i);
        th_write_str(p, c);
        free(p);
        free(c);
    }
    p = th_fmt("%s/chk-6/src-0/snapshot", r->run_dir);
    th_write_str(p, "s");
    free(p);
    ckpt_manifest *m6 = complete_plain(r, 6, cache);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, misses4 + 300);
    assert_int_equal(st.entries, 300);
    for (int i = 0; i < 300; i += 30) {
        char *a = th_fmt("%s/chk-6/many/%06d.sst", r->run_dir, i);
        char *b = th_fmt("%s/chk-7/many/%06d.sst", r->run_dir, i);
        th_write(b, "", 0);
        assert_int_equal(unlink(b), 0);
        assert_int_equal(link(a, b), 0);
        free(a);
        free(b);
    }
    p = th_fmt("%s/chk-7/src-0/snapshot", r->run_dir);
    th_write_str(p, "s");
    free(p);
    uint64_t hits6 = st.hits;
    ckpt_manifest *m7 = complete_plain(r, 7, cache);
    ckpt_sum_cache_stats_get(cache, &st);
    assert_int_equal(st.misses, misses4 + 300);
    assert_int_equal(st.hits, hits6 + 10);
    assert_int_equal(st.entries, 10);
    assert_sums_true(r, m7);

    /* No cache: everything is read; stats of NULL are zero. */
    ckpt_sum_cache_stats_get(NULL, &st);
    assert_int_equal(st.misses + st.hits + st.entries, 0);
    assert_int_equal(ckpt_sum_cache_misses(NULL), 0);

    ckpt_manifest_free(m1);
    ckpt_manifest_free(m2);
    ckpt_manifest_free(m3);
    ckpt_manifest_free(m4);
    ckpt_manifest_free(m5);
    ckpt_manifest_free(m6);
    ckpt_manifest_free(m7);
    ckpt_sum_cache_free(cache);
    free(snap4);
    free(sst4);
    free(snap5);
    free(sst5);
    free(chk1);
    free(chk3);
    free(dbdir);
    free(err);
}

/* ------------------------------------------------------------------------ */

static int chk_exists(th_run *r, const char *name)
{
    char *p = th_fmt("%s/%s", r->run_dir, name);
    int e = th_exists(p);
    free(p);
    return e;
}

static void assert_log(th_run *r, const uint64_t *want, size_t n_want)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char *err = NULL;
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
}

static void test_retain(void **state)
{
    th_run *r = *state;
    char *err = NULL;
    ckpt_manifest *ms[5] = {0};

    /* Before anything completed, every chk- dir may be in progress. */
    char *p = th_fmt("%s/chk-9/x", r->run_dir);
    th_write_str(p, "in progress");
    free(p);
    assert_int_equal(ckpt_retain(r->run_dir, 1, &err), 0);
    assert_true(chk_exists(r, "chk-9"));
    char *chk9 = th_fmt("%s/chk-9", r->run_dir);
    assert_int_equal(fs_rmtree(chk9, &err), 0);
    free(chk9);

    ms[0] = th_make_checkpoint(r, 1, NULL, NULL);
    ms[1] = th_make_checkpoint(r, 2, NULL, NULL);
    p = th_fmt("%s/chk-3/src-0/snapshot", r->run_dir); /* aborted */
    th_write_str(p, "aborted");
    free(p);
    ms[2] = th_make_checkpoint(r, 4, NULL, NULL);
    ms[3] = th_make_checkpoint(r, 5, NULL, NULL);
    p = th_fmt("%s/chk-6/src-0/snapshot", r->run_dir); /* in progress */
    th_write_str(p, "in progress");
    free(p);
    /* Things retention does not own. */
    const char *foreign[] = {"chk-02/f", "other/f", "chk-1x", "chk-/f",
                             "chk-00/f"};
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++) {
        p = th_fmt("%s/%s", r->run_dir, foreign[i]);
        th_write_str(p, "foreign");
        free(p);
    }

    assert_int_equal(ckpt_retain(r->run_dir, 0, &err), WEIR_EINVAL);
    assert_string_equal(err, "retain: at least one checkpoint must be kept");

    /* Enough room: only the aborted one goes. */
    assert_int_equal(ckpt_retain(r->run_dir, 10, &err), 0);
    assert_log(r, (uint64_t[]){1, 2, 4, 5}, 4);
    assert_true(chk_exists(r, "chk-1") && chk_exists(r, "chk-2"));
    assert_false(chk_exists(r, "chk-3"));
    assert_true(chk_exists(r, "chk-4") && chk_exists(r, "chk-5"));
    assert_true(chk_exists(r, "chk-6"));

    assert_int_equal(ckpt_retain(r->run_dir, 2, &err), 0);
    assert_log(r, (uint64_t[]){4, 5}, 2);
    assert_false(chk_exists(r, "chk-1") || chk_exists(r, "chk-2"));
    assert_true(chk_exists(r, "chk-4") && chk_exists(r, "chk-5"));
    assert_true(chk_exists(r, "chk-6"));
    char *tmp = th_fmt("%s/completed.tmp", r->run_dir);
    assert_false(th_exists(tmp));
    free(tmp);

    assert_int_equal(ckpt_retain(r->run_dir, 1, &err), 0);
    assert_log(r, (uint64_t[]){5}, 1);
    assert_false(chk_exists(r, "chk-4"));
    assert_true(chk_exists(r, "chk-5") && chk_exists(r, "chk-6"));
    for (size_t i = 0; i < sizeof foreign / sizeof *foreign; i++)
        assert_true(chk_exists(r, foreign[i]));

    ckpt_manifest *got = NULL;
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 5);
    ckpt_manifest_free(got);

    /* The in-progress one completes; the next retention keeps only it. */
    ms[4] = complete_plain(r, 6, NULL);
    assert_int_equal(ckpt_retain(r->run_dir, 1, &err), 0);
    assert_log(r, (uint64_t[]){6}, 1);
    assert_false(chk_exists(r, "chk-5"));
    assert_true(chk_exists(r, "chk-6"));

    /* A malformed log stops retention before it deletes anything. */
    p = th_fmt("%s/completed", r->run_dir);
    th_write_str(p, "6\nx\n");
    free(p);
    p = th_fmt("%s/chk-2/f", r->run_dir);
    th_write_str(p, "old");
    free(p);
    assert_int_equal(ckpt_retain(r->run_dir, 1, &err), WEIR_EIO);
    assert_non_null(strstr(err, "line 2: malformed id \"x\""));
    assert_true(chk_exists(r, "chk-2"));

    for (int i = 0; i < 5; i++)
        ckpt_manifest_free(ms[i]);
    free(err);
}

/* ------------------------------------------------------------------------ */

static void test_rmtree(void **state)
{
    th_run *r = *state;
    char *err = NULL;
    char *root = th_fmt("%s/tree", r->dir);
    char *outside = th_fmt("%s/outside", r->dir);
    th_write_str(outside, "keep me");
    const char *files[] = {"a", "b/c", "b/d/e", "b/d/f/g", "h/i"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = th_fmt("%s/%s", root, files[i]);
        th_write_str(p, files[i]);
        free(p);
    }
    char *empty = th_fmt("%s/empty", root);
    assert_int_equal(mkdir(empty, 0755), 0);
    char *lnk = th_fmt("%s/b/link", root);
    assert_int_equal(symlink(outside, lnk), 0);
    char *dlnk = th_fmt("%s/b/dirlink", root);
    assert_int_equal(symlink(r->dir, dlnk), 0);

    assert_int_equal(fs_rmtree(root, &err), 0);
    assert_false(th_exists(root));
    assert_true(th_exists(outside)); /* links are removed, not followed */
    assert_true(th_exists(r->run_dir));

    /* A missing path is not an error; a plain file is removed. */
    assert_int_equal(fs_rmtree(root, &err), 0);
    assert_int_equal(fs_rmtree(outside, &err), 0);
    assert_false(th_exists(outside));
    /* A path under a file cannot be examined. */
    char *f = th_fmt("%s/file", r->dir);
    th_write_str(f, "x");
    char *under = th_fmt("%s/x", f);
    assert_int_equal(fs_rmtree(under, &err), WEIR_EIO);
    char *want = th_fmt("rmtree %s: stat: %s", under, strerror(ENOTDIR));
    assert_string_equal(err, want);

    free(want);
    free(f);
    free(under);
    free(root);
    free(outside);
    free(empty);
    free(lnk);
    free(dlnk);
    free(err);
}

/* ------------------------------------------------------------------------ */

/* Checks dst against src: same files and contents; SSTs share the inode
 * when `linked`, every other file is a separate copy. */
static void assert_materialized(const char *src, const char *dst, int linked)
{
    th_list a, b;
    th_list_tree(src, &a);
    th_list_tree(dst, &b);
    assert_int_equal(a.n, b.n);
    size_t ssts = 0;
    for (size_t i = 0; i < a.n; i++) {
        assert_string_equal(a.paths[i], b.paths[i]);
        char *pa = th_fmt("%s/%s", src, a.paths[i]);
        char *pb = th_fmt("%s/%s", dst, b.paths[i]);
        assert_int_equal(th_xxh3_file(pa), th_xxh3_file(pb));
        if (is_sst(a.paths[i]) && linked) {
            assert_true(th_inode(pa) == th_inode(pb));
            ssts++;
        } else {
            struct stat sa, sb;
            assert_int_equal(stat(pa, &sa), 0);
            assert_int_equal(stat(pb, &sb), 0);
            assert_false(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
        }
        free(pa);
        free(pb);
    }
    assert_true(ssts >= 1 || !linked);
    th_list_free(&a);
    th_list_free(&b);
}

static void test_materialize(void **state)
{
    th_run *r = *state;
    char *err = NULL;
    char *dbdir = th_fmt("%s/db", r->dir);
    char *src = th_fmt("%s/chk-1/count-0/state", r->run_dir);
    th_db *db = th_db_open(dbdir);
    th_db_fill(db, 0, 1000, "m");
    th_db_checkpoint(db, src);
    th_db_close(db);
    /* Subdirectories are handled too. */
    char *p = th_fmt("%s/sub/deeper/000777.sst", src);
    th_write_str(p, "not really an sst");
    free(p);
    p = th_fmt("%s/sub/notes", src);
    th_write_str(p, "notes");
    free(p);

    char *dst = th_fmt("%s/work/job/count/0", r->dir);
    assert_int_equal(ckpt_materialize(src, dst, &err), 0);
    assert_materialized(src, dst, 1);

    /* dst must not exist. */
    assert_int_equal(ckpt_materialize(src, dst, &err), WEIR_EINVAL);
    char *want =
        th_fmt("materialize %s into %s: destination already exists", src, dst);
    assert_string_equal(err, want);
    free(want);
    assert_materialized(src, dst, 1); /* and it was left alone */

    /* A missing source creates nothing. */
    char *nosrc = th_fmt("%s/nope", r->dir);
    char *dst2 = th_fmt("%s/work2", r->dir);
    assert_int_equal(ckpt_materialize(nosrc, dst2, &err), WEIR_ENOTFOUND);
    want = th_fmt("materialize %s into %s: source: %s", nosrc, dst2,
                  strerror(ENOENT));
    assert_string_equal(err, want);
    free(want);
    assert_false(th_exists(dst2));

    /* A symbolic link in the source fails and removes the partial copy. */
    char *bad = th_fmt("%s/bad", r->dir);
    p = th_fmt("%s/a/file", bad);
    th_write_str(p, "x");
    free(p);
    p = th_fmt("%s/a/link", bad);
    assert_int_equal(symlink("file", p), 0);
    free(p);
    assert_int_equal(ckpt_materialize(bad, dst2, &err), WEIR_EIO);
    want =
        th_fmt("materialize %s into %s: a/link: not a regular file", bad, dst2);
    assert_string_equal(err, want);
    free(want);
    assert_false(th_exists(dst2));

    /* Across file systems (tmpfs /dev/shm vs /tmp), SSTs are copied. */
    struct stat s1, s2;
    if (stat("/dev/shm", &s1) == 0 && stat(src, &s2) == 0 &&
        s1.st_dev != s2.st_dev && access("/dev/shm", W_OK) == 0) {
        char shm[] = "/dev/shm/weir-ckpt-test-XXXXXX";
        assert_non_null(mkdtemp(shm));
        char *dst3 = th_fmt("%s/state", shm);
        int rc = ckpt_materialize(src, dst3, &err);
        if (rc)
            fail_msg("materialize across file systems: %s", err);
        assert_materialized(src, dst3, 0);
        th_db *back = th_db_open(dst3);
        char *v = th_db_get(back, "k000123");
        assert_non_null(v);
        assert_string_equal(v, "v123-m");
        free(v);
        th_db_close(back);
        th_rm_rf(shm);
        free(dst3);
    } else {
        print_message("skipping the cross-file-system case: /dev/shm is not "
                      "a separate writable file system\n");
    }

    free(bad);
    free(nosrc);
    free(dst2);
    free(dst);
    free(src);
    free(dbdir);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sum_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rmtree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_materialize, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
