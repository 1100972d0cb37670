/*
 * Checkpoint manifests: complete + load + verify round trip over a real
 * RocksDB checkpoint, every kind of damage and the fallback of
 * ckpt_find_latest to an older checkpoint, the completed log, manifest
 * validation, and the crash points of ckpt_complete (in a re-executed child
 * process, so that WEIR_CRASH_AT is read fresh).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "checkpoint/manifest.h"
#include "common/crash.h"
#include "th_ckpt.h"

#include "weir/weir.h"

typedef unsigned long long ull;

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

/* Records on_damaged calls. */
typedef struct damaged {
    uint64_t ids[8];
    char *whys[8];
    size_t n;
} damaged;

static void on_damaged(void *arg, uint64_t id, const char *why)
{
    damaged *d = arg;
    assert_true(d->n < 8);
    d->ids[d->n] = id;
    d->whys[d->n] = strdup(why);
    d->n++;
}

static void damaged_free(damaged *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->whys[i]);
    memset(d, 0, sizeof *d);
}

static void assert_log(th_run *r, const uint64_t *want, size_t n_want)
{
    uint64_t *ids = NULL;
    size_t n = 99;
    char *err = NULL;
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], want[i]);
    free(ids);
    free(err);
}

static void assert_tasks_equal(const ckpt_manifest *a, const ckpt_manifest *b)
{
    assert_int_equal(a->n_tasks, b->n_tasks);
    for (size_t i = 0; i < a->n_tasks; i++) {
        const ckpt_task *x = &a->tasks[i], *y = &b->tasks[i];
        assert_string_equal(x->op_id, y->op_id);
        assert_int_equal(x->index, y->index);
        assert_int_equal(x->parallelism, y->parallelism);
        if (x->state_dir)
            assert_string_equal(x->state_dir, y->state_dir);
        else
            assert_null(y->state_dir);
        if (x->snapshot)
            assert_string_equal(x->snapshot, y->snapshot);
        else
            assert_null(y->snapshot);
        assert_int_equal(x->snapshot_version, y->snapshot_version);
        assert_int_equal(x->state_bytes, y->state_bytes);
        assert_int_equal(x->sync_ms, y->sync_ms);
        assert_int_equal(x->align_ms, y->align_ms);
    }
}

/* ------------------------------------------------------------------------ */

static void test_roundtrip_rocksdb(void **state)
{
    th_run *r = *state;
    char *dbdir = th_fmt("%s/db", r->dir);
    th_db *db = th_db_open(dbdir);
    th_db_fill(db, 0, 2000, "a");
    ckpt_manifest *m = th_make_checkpoint(r, 1, db, NULL);
    /* Later writes must not show up in the checkpoint. */
    th_db_fill(db, 0, 10, "later");
    th_db_close(db);

    /* The file list matches an independent listing and checksums. */
    char *chk = ckpt_dir(r->run_dir, 1);
    char *want_chk = th_fmt("%s/chk-1", r->run_dir);
    assert_string_equal(chk, want_chk);
    th_list l;
    th_list_tree(chk, &l);
    assert_true(l.n >= 5); /* SST, CURRENT, MANIFEST-*, OPTIONS-*, snaps */
    assert_int_equal(m->n_files, l.n - 1); /* all but MANIFEST.json */
    size_t j = 0;
    int ssts = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (strcmp(l.paths[i], "MANIFEST.json") == 0)
            continue;
        char *p = th_fmt("%s/%s", chk, l.paths[i]);
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_string_equal(m->files[j].path, l.paths[i]);
        assert_int_equal(m->files[j].size, (uint64_t)st.st_size);
        assert_int_equal(m->files[j].xxh3, th_xxh3_file(p));
        ssts += strstr(l.paths[i], ".sst") != NULL;
        free(p);
        j++;
    }
    assert_true(ssts >= 1);
    th_list_free(&l);
    char *tmp = th_fmt("%s/MANIFEST.json.tmp", chk);
    assert_false(th_exists(tmp));
    free(tmp);
    assert_log(r, (uint64_t[]){1}, 1);
    assert_int_equal(m->version, CKPT_FORMAT_VERSION);
    assert_true(m->completed_ms > 0); /* filled in: it was 0 */

    /* The JSON document, read with jansson directly. */
    char *mpath = th_fmt("%s/MANIFEST.json", chk);
    json_error_t jerr;
    json_t *root = json_load_file(mpath, 0, &jerr);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "format")), 1);
    assert_string_equal(json_string_value(json_object_get(root, "job")), "job");
    assert_int_equal(json_integer_value(json_object_get(root, "id")), 1);
    assert_true(json_is_false(json_object_get(root, "final")));
    json_t *f0 = json_array_get(json_object_get(root, "files"), 0);
    const char *hex = json_string_value(json_object_get(f0, "xxh3"));
    char want_hex[17];
    snprintf(want_hex, sizeof want_hex, "%016" PRIx64, m->files[0].xxh3);
    assert_string_equal(hex, want_hex);
    json_t *t1 = json_array_get(json_object_get(root, "tasks"), 1);
    assert_true(json_is_null(json_object_get(t1, "state_dir")));
    json_decref(root);
    free(mpath);

    /* Load with verification: every field comes back. */
    ckpt_manifest *got = NULL;
    char *err = NULL;
    assert_int_equal(ckpt_manifest_load(r->run_dir, 1, 1, &got, &err), 0);
    assert_string_equal(got->job, "job");
    assert_int_equal(got->id, 1);
    assert_int_equal(got->version, CKPT_FORMAT_VERSION);
    assert_int_equal(got->triggered_ms, m->triggered_ms);
    assert_int_equal(got->completed_ms, m->completed_ms);
    assert_int_equal(got->final, 0);
    assert_int_equal(got->max_parallelism, 128);
    assert_tasks_equal(m, got);
    assert_int_equal(got->n_files, m->n_files);
    for (size_t i = 0; i < got->n_files; i++) {
        assert_string_equal(got->files[i].path, m->files[i].path);
        assert_int_equal(got->files[i].size, m->files[i].size);
        assert_int_equal(got->files[i].xxh3, m->files[i].xxh3);
    }
    ckpt_manifest_free(got);
    got = NULL;
    assert_int_equal(ckpt_manifest_load_path(chk, &got, &err), 0);
    assert_int_equal(got->id, 1);
    ckpt_manifest_free(got);
    got = NULL;
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 1);

    /* Restore: materialize the state and read it with RocksDB. */
    char *src = th_fmt("%s/%s", chk, got->tasks[0].state_dir);
    char *work = th_fmt("%s/work/count/0", r->dir);
    assert_int_equal(ckpt_materialize(src, work, &err), 0);
    th_db *back = th_db_open(work);
    for (int i = 0; i < 2000; i += 97) {
        char k[32], v[64];
        snprintf(k, sizeof k, "k%06d", i);
        snprintf(v, sizeof v, "v%d-a", i);
        char *val = th_db_get(back, k);
        assert_non_null(val);
        assert_string_equal(val, v);
        free(val);
    }
    char *none = th_db_get(back, "k002000");
    assert_null(none);
    th_db_put(back, "new", "x"); /* the working copy is writable */
    th_db_close(back);
    /* ... and the checkpoint still verifies after RocksDB used the copy. */
    ckpt_manifest_free(got);
    got = NULL;
    assert_int_equal(ckpt_manifest_load(r->run_dir, 1, 1, &got, &err), 0);

    ckpt_manifest_free(got);
    ckpt_manifest_free(m);
    free(src);
    free(work);
    free(chk);
    free(want_chk);
    free(dbdir);
    free(err);
}

/* ------------------------------------------------------------------------ */
/* Damage                                                                    */
/* ------------------------------------------------------------------------ */

/* A damage function breaks chk-<id> and returns the expected problem: the
 * part of the message after "checkpoint <id> (<chk>): " (malloc'ed). */
typedef char *(*damage_fn)(th_run *r, uint64_t id, int *still_loads);

static char *damage_truncate(th_run *r, uint64_t id, int *still_loads)
{
    char *chk = ckpt_dir(r->run_dir, id);
    char *sst = th_last_sst(chk);
    char *p = th_fmt("%s/%s", chk, sst);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size - 10), 0);
    char *want = th_fmt("%s: size is %llu bytes, the manifest says %llu", sst,
                        (ull)st.st_size - 10, (ull)st.st_size);
    *still_loads = 1;
    free(p);
    free(sst);
    free(chk);
    return want;
}

static char *damage_flip(th_run *r, uint64_t id, int *still_loads)
{
    char *chk = ckpt_dir(r->run_dir, id);
    char *sst = th_last_sst(chk);
    char *p = th_fmt("%s/%s", chk, sst);
    uint64_t before = th_xxh3_file(p);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, 100), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, 100), 1);
    close(fd);
    uint64_t after = th_xxh3_file(p);
    char *want = th_fmt("%s: checksum mismatch: xxh3 is %016" PRIx64
                        ", the manifest says %016" PRIx64,
                        sst, after, before);
    *still_loads = 1;
    free(p);
    free(sst);
    free(chk);
    return want;
}

static char *damage_missing_sst(th_run *r, uint64_t id, int *still_loads)
{
    char *chk = ckpt_dir(r->run_dir, id);
    char *sst = th_last_sst(chk);
    char *p = th_fmt("%s/%s", chk, sst);
    assert_int_equal(unlink(p), 0);
    char *want = th_fmt("%s: missing", sst);
    *still_loads = 1;
    free(p);
    free(sst);
    free(chk);
    return want;
}

static char *damage_missing_manifest(th_run *r, uint64_t id, int *still_loads)
{
    char *p = th_fmt("%s/chk-%llu/MANIFEST.json", r->run_dir, (ull)id);
    assert_int_equal(unlink(p), 0);
    free(p);
    *still_loads = 0;
    return strdup("MANIFEST.json: missing");
}

/* Loads MANIFEST.json with jansson, lets `edit` change it, writes it back. */
static void edit_manifest(th_run *r, uint64_t id, void (*edit)(json_t *))
{
    char *p = th_fmt("%s/chk-%llu/MANIFEST.json", r->run_dir, (ull)id);
    json_error_t jerr;
    json_t *root = json_load_file(p, 0, &jerr);
    assert_non_null(root);
    edit(root);
    assert_int_equal(json_dump_file(root, p, JSON_INDENT(2)), 0);
    json_decref(root);
    free(p);
}

static void set_format_99(json_t *root)
{
    json_object_set_new(root, "format", json_integer(99));
}

static char *damage_format(th_run *r, uint64_t id, int *still_loads)
{
    edit_manifest(r, id, set_format_99);
    *still_loads = 0;
    return strdup("MANIFEST.json: unknown format version 99 (this build "
                  "reads version 1)");
}

static char *damage_json(th_run *r, uint64_t id, int *still_loads)
{
    char *p = th_fmt("%s/chk-%llu/MANIFEST.json", r->run_dir, (ull)id);
    /* Line 3 is cut after "job": the '}' on line 4, column 1 is wrong. */
    th_write_str(p, "{\n  \"format\": 1,\n  \"job\":\n}\n");
    free(p);
    *still_loads = 0;
    return strdup("MANIFEST.json: invalid JSON at line 4 column 1: ");
}

static char *damage_empty_manifest(th_run *r, uint64_t id, int *still_loads)
{
    char *p = th_fmt("%s/chk-%llu/MANIFEST.json", r->run_dir, (ull)id);
    th_write_str(p, "");
    free(p);
    *still_loads = 0;
    return strdup("MANIFEST.json: invalid JSON at line ");
}

typedef struct damage_case {
    damage_fn fn;
} damage_case;

typedef struct damage_fx {
    const damage_case *dc;
    th_run *r;
} damage_fx;

static int damage_setup(void **state)
{
    damage_fx *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->dc = *state;
    fx->r = th_run_new();
    *state = fx;
    return 0;
}

static int damage_teardown(void **state)
{
    damage_fx *fx = *state;
    th_run_free(fx->r);
    free(fx);
    return 0;
}

/* Two good checkpoints of a real database, then damage to the newer one:
 * load reports exactly the problem, find_latest falls back to 1. */
static void test_damage(void **state)
{
    damage_fx *fx = *state;
    th_run *r = fx->r;
    const damage_case *dc = fx->dc;
    char *dbdir = th_fmt("%s/db", r->dir);
    th_db *db = th_db_open(dbdir);
    th_db_fill(db, 0, 500, "a");
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, db, NULL);
    th_db_fill(db, 500, 1000, "b");
    ckpt_manifest *m2 = th_make_checkpoint(r, 2, db, NULL);
    th_db_close(db);

    /* Both good: the newest one is found. */
    ckpt_manifest *got = NULL;
    char *err = NULL;
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 2);
    ckpt_manifest_free(got);
    got = NULL;

    int still_loads = 0;
    char *problem = dc->fn(r, 2, &still_loads);
    char *chk2 = ckpt_dir(r->run_dir, 2);
    char *want = th_fmt("checkpoint 2 (%s): %s", chk2, problem);

    int rc = ckpt_manifest_load(r->run_dir, 2, 1, &got, &err);
    assert_true(rc < 0);
    assert_null(got);
    assert_non_null(err);
    assert_null(strchr(err, '\n'));
    /* Messages with jansson's text end in it: compare the prefix. */
    if (strncmp(err, want, strlen(want)) != 0)
        fail_msg("got  \"%s\"\nwant \"%s\"", err, want);
    if (want[strlen(want) - 1] != ' ')
        assert_string_equal(err, want);

    /* Without verification, only manifest damage shows. */
    rc = ckpt_manifest_load(r->run_dir, 2, 0, &got, &err);
    assert_int_equal(rc == 0, still_loads);
    ckpt_manifest_free(got);
    got = NULL;

    damaged d = {0};
    assert_int_equal(ckpt_find_latest(r->run_dir, on_damaged, &d, &got, &err),
                     0);
    assert_non_null(got);
    assert_int_equal(got->id, 1);
    assert_int_equal(got->n_files, m1->n_files);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.ids[0], 2);
    assert_true(strncmp(d.whys[0], want, strlen(want)) == 0);
    ckpt_manifest_free(got);
    got = NULL;

    /* Without a callback, a WARN is logged and the result is the same. */
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 1);

    damaged_free(&d);
    ckpt_manifest_free(got);
    ckpt_manifest_free(m1);
    ckpt_manifest_free(m2);
    free(problem);
    free(want);
    free(chk2);
    free(dbdir);
    free(err);
}

static const damage_case dc_truncate = {damage_truncate};
static const damage_case dc_flip = {damage_flip};
static const damage_case dc_missing_sst = {damage_missing_sst};
static const damage_case dc_missing_manifest = {damage_missing_manifest};
static const damage_case dc_format = {damage_format};
static const damage_case dc_json = {damage_json};
static const damage_case dc_empty = {damage_empty_manifest};

static void test_all_damaged(void **state)
{
    th_run *r = *state;
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, NULL, NULL);
    ckpt_manifest *m2 = th_make_checkpoint(r, 2, NULL, NULL);
    char *p1 = th_fmt("%s/chk-1/src-0/snapshot", r->run_dir);
    char *p2 = th_fmt("%s/chk-2/MANIFEST.json", r->run_dir);
    assert_int_equal(unlink(p1), 0);
    assert_int_equal(unlink(p2), 0);

    damaged d = {0};
    ckpt_manifest *got = NULL;
    char *err = NULL;
    assert_int_equal(ckpt_find_latest(r->run_dir, on_damaged, &d, &got, &err),
                     WEIR_EIO);
    assert_null(got);
    char *want = th_fmt("no valid checkpoint in %s: checkpoint 2 (%s/chk-2): "
                        "MANIFEST.json: missing; checkpoint 1 (%s/chk-1): "
                        "src-0/snapshot: missing",
                        r->run_dir, r->run_dir, r->run_dir);
    assert_string_equal(err, want);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.ids[0], 2);
    assert_int_equal(d.ids[1], 1);
    damaged_free(&d);
    free(want);
    free(p1);
    free(p2);
    free(err);
    ckpt_manifest_free(m1);
    ckpt_manifest_free(m2);
}

static void test_empty_log(void **state)
{
    th_run *r = *state;
    ckpt_manifest *got = NULL;
    char *err = NULL;
    uint64_t *ids = (uint64_t *)1;
    size_t n = 99;
    /* No log at all. */
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
    free(ids);
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err),
                     WEIR_ENOTFOUND);
    assert_null(got);
    char *want = th_fmt("no completed checkpoint in %s (%s/completed is "
                        "missing or empty)",
                        r->run_dir, r->run_dir);
    assert_string_equal(err, want);
    /* An empty log, and a checkpoint directory with a good manifest that
     * never made it into the log: still nothing. */
    char *logp = th_fmt("%s/completed", r->run_dir);
    ckpt_manifest *m = th_make_checkpoint(r, 1, NULL, NULL);
    th_write_str(logp, "");
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err),
                     WEIR_ENOTFOUND);
    assert_null(got);
    ckpt_manifest_free(m);
    free(logp);
    free(want);
    free(err);
}

static void test_log_format(void **state)
{
    th_run *r = *state;
    char *logp = th_fmt("%s/completed", r->run_dir);
    uint64_t *ids = NULL;
    size_t n = 0;
    char *err = NULL;
    ckpt_manifest *got = NULL;

    th_write_str(logp, "1\nabc\n");
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), WEIR_EIO);
    char *want = th_fmt("%s: line 2: malformed id \"abc\"", logp);
    assert_string_equal(err, want);
    free(want);
    /* find_latest passes the log's error on: never "nothing found". */
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err),
                     WEIR_EIO);
    assert_non_null(strstr(err, "malformed id"));

    const char *bad[] = {"\n",   "01\n", "-1\n",
                         " 1\n", "1 \n", "18446744073709551616\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        th_write_str(logp, bad[i]);
        assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), WEIR_EIO);
        assert_non_null(strstr(err, "line 1: malformed id"));
    }
    th_write_str(logp, "18446744073709551615\n");
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_true(ids[0] == UINT64_MAX);
    free(ids);

    th_write_str(logp, "5\n3\n");
    assert_int_equal(ckpt_log_read(r->run_dir, &ids, &n, &err), WEIR_EIO);
    want = th_fmt("%s: line 2: id 3 does not follow 5", logp);
    assert_string_equal(err, want);
    free(want);

    /* A torn last append is ignored, and the next append replaces it. */
    assert_int_equal(unlink(logp), 0);
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, NULL, NULL);
    th_write_str(logp, "1\n2");
    assert_log(r, (uint64_t[]){1}, 1);
    ckpt_manifest *m3 = th_make_checkpoint(r, 3, NULL, NULL);
    size_t len = 0;
    char *text = th_read(logp, &len);
    assert_string_equal(text, "1\n3\n");
    free(text);

    /* An id that is not newer than the log's newest is refused before
     * anything is written. */
    ckpt_manifest *m = th_manifest(2, 0, 1);
    char *chk2 = th_fmt("%s/chk-2", r->run_dir);
    char *snap = th_fmt("%s/src-0/snapshot", chk2);
    th_write_str(snap, "x");
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EINVAL);
    want = th_fmt("checkpoint 2 (%s): id 2 is not above 3, the newest in "
                  "the log",
                  chk2);
    assert_string_equal(err, want);
    char *mp = th_fmt("%s/MANIFEST.json", chk2);
    assert_false(th_exists(mp));
    assert_log(r, (uint64_t[]){1, 3}, 2);

    free(mp);
    free(want);
    free(snap);
    free(chk2);
    ckpt_manifest_free(m);
    ckpt_manifest_free(m1);
    ckpt_manifest_free(m3);
    free(logp);
    free(err);
}

/* ------------------------------------------------------------------------ */
/* Manifest validation                                                       */
/* ------------------------------------------------------------------------ */

static void bad_xxh3(json_t *root)
{
    json_t *f = json_array_get(json_object_get(root, "files"), 0);
    json_object_set_new(f, "xxh3", json_string("0123456789ABCDEF"));
}

static void bad_path(json_t *root)
{
    json_t *f = json_array_get(json_object_get(root, "files"), 0);
    json_object_set_new(f, "path", json_string("../../etc/passwd"));
}

static void no_files(json_t *root)
{
    json_object_del(root, "files");
}

static void other_id(json_t *root)
{
    json_object_set_new(root, "id", json_integer(7));
}

static void bad_final(json_t *root)
{
    json_object_set_new(root, "final", json_integer(1));
}

static void bad_index(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "index", json_integer(-1));
}

static void index_over_par(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "index", json_integer(1));
}

static void unlisted_snapshot(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "snapshot", json_string("src-0/other"));
}

static void unlisted_broadcast(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "broadcast", json_string("src-0/broadcast"));
}

static void bad_broadcast_path(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "broadcast", json_string("../broadcast"));
}

static void listed_broadcast(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_set_new(t, "broadcast", json_string("src-0/snapshot"));
}

static void no_broadcast_member(json_t *root)
{
    json_t *t = json_array_get(json_object_get(root, "tasks"), 0);
    json_object_del(t, "broadcast");
}

static void files_unsorted(json_t *root)
{
    json_t *files = json_object_get(root, "files");
    json_array_append(files, json_array_get(files, 0));
}

static void extra_member(json_t *root)
{
    json_object_set_new(root, "comment", json_string("ignored"));
}

static void test_manifest_fields(void **state)
{
    th_run *r = *state;
    static const struct {
        void (*edit)(json_t *);
        const char *problem; /* NULL: loads */
    } cases[] = {
        {bad_xxh3, "files[0].xxh3: not 16 lowercase hexadecimal digits"},
        {bad_path, "files[0].path: not a relative path inside the "
                   "checkpoint"},
        {no_files, "files: missing"},
        {other_id, "id: the manifest is for checkpoint 7"},
        {bad_final, "final: not a boolean"},
        {bad_index, "tasks[0].index: -1 is out of range [0, 4294967295]"},
        {index_over_par, "task src#1: index 1 is not below parallelism 1"},
        {unlisted_snapshot, "task src#0: snapshot src-0/other is not among "
                            "the files"},
        {files_unsorted, "files[1].path: \"src-0/snapshot\" does not sort "
                         "after \"src-0/snapshot\" (duplicate or out of "
                         "order)"},
        {extra_member, NULL},
        {unlisted_broadcast, "task src#0: broadcast src-0/broadcast is not "
                             "among the files"},
        {bad_broadcast_path, "task src#0: broadcast \"../broadcast\" is not "
                             "a relative path inside the checkpoint"},
        {listed_broadcast, NULL},
        {no_broadcast_member, NULL}, /* written before ABI 1.2 */
    };
    char *mp = th_fmt("%s/chk-1/MANIFEST.json", r->run_dir);
    char *chk = th_fmt("%s/chk-1", r->run_dir);
    ckpt_manifest *m = th_make_checkpoint(r, 1, NULL, NULL);
    size_t len = 0;
    char *good = th_read(mp, &len);
    char *err = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        th_write_str(mp, good);
        edit_manifest(r, 1, cases[i].edit);
        ckpt_manifest *got = NULL;
        int rc = ckpt_manifest_load(r->run_dir, 1, 0, &got, &err);
        if (!cases[i].problem) {
            assert_int_equal(rc, 0);
            if (cases[i].edit == listed_broadcast)
                assert_string_equal(got->tasks[0].broadcast, "src-0/snapshot");
            else
                assert_null(got->tasks[0].broadcast);
            ckpt_manifest_free(got);
            continue;
        }
        assert_int_equal(rc, WEIR_EIO);
        assert_null(got);
        char *want = th_fmt("checkpoint 1 (%s): MANIFEST.json: %s", chk,
                            cases[i].problem);
        assert_string_equal(err, want);
        free(want);
    }
    /* Duplicate members are refused by the JSON reader. */
    th_write_str(mp, "{\"format\": 1, \"format\": 1}");
    ckpt_manifest *got = NULL;
    assert_int_equal(ckpt_manifest_load(r->run_dir, 1, 0, &got, &err),
                     WEIR_EIO);
    assert_non_null(strstr(err, "duplicate object key"));
    /* load_path names the directory before it knows the id. */
    assert_int_equal(unlink(mp), 0);
    assert_int_equal(ckpt_manifest_load_path(chk, &got, &err), WEIR_ENOTFOUND);
    char *want = th_fmt("checkpoint (%s): MANIFEST.json: missing", chk);
    assert_string_equal(err, want);
    free(want);
    free(good);
    free(mp);
    free(chk);
    free(err);
    ckpt_manifest_free(m);
}

/* ckpt_complete refuses what it cannot describe truthfully. */
static void test_complete_errors(void **state)
{
    th_run *r = *state;
    char *err = NULL;
    ckpt_manifest *m = th_manifest(1, 0, 1);

    /* No directory. */
    char *chk = th_fmt("%s/chk-1", r->run_dir);
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_ENOTFOUND);
    char *want = th_fmt("checkpoint 1 (%s): cannot open the directory: %s", chk,
                        strerror(ENOENT));
    assert_string_equal(err, want);
    free(want);

    /* A task whose snapshot is not there. */
    char *other = th_fmt("%s/src-0/other", chk);
    th_write_str(other, "x");
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EIO);
    want = th_fmt("checkpoint 1 (%s): task src#0: snapshot src-0/snapshot is "
                  "not among the files",
                  chk);
    assert_string_equal(err, want);
    free(want);

    /* A symbolic link in the tree. */
    char *snap = th_fmt("%s/src-0/snapshot", chk);
    assert_int_equal(symlink("other", snap), 0);
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EIO);
    want = th_fmt("checkpoint 1 (%s): src-0/snapshot: not a regular file", chk);
    assert_string_equal(err, want);
    free(want);
    assert_int_equal(unlink(snap), 0);

    /* Bad tasks. */
    m->tasks[0].index = 1;
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "task src#1: index 1 is not below "
                                "parallelism 1"));
    m->tasks[0].index = 0;
    free(m->tasks[0].snapshot);
    m->tasks[0].snapshot = strdup("/etc/passwd");
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "snapshot \"/etc/passwd\" is not a relative "
                                "path inside the checkpoint"));
    free(m->job);
    m->job = NULL;
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "no job name"));

    /* None of this wrote a manifest or a log. */
    char *mp = th_fmt("%s/MANIFEST.json", chk);
    char *logp = th_fmt("%s/completed", r->run_dir);
    assert_false(th_exists(mp));
    assert_false(th_exists(logp));

    /* A duplicate task. */
    m->job = strdup("job");
    free(m->tasks[0].snapshot);
    m->tasks[0].snapshot = strdup("src-0/other");
    ckpt_task *t = &m->tasks[m->n_tasks++];
    memset(t, 0, sizeof *t);
    t->op_id = strdup("src");
    t->parallelism = 1;
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), WEIR_EINVAL);
    assert_non_null(strstr(err, "task src#0: listed twice"));
    /* Fixed, it completes; m->files is what was written. */
    free(t->op_id);
    t->op_id = strdup("sink");
    assert_int_equal(ckpt_complete(r->run_dir, m, NULL, &err), 0);
    assert_int_equal(m->n_files, 1);
    assert_string_equal(m->files[0].path, "src-0/other");
    assert_true(th_exists(mp));

    free(mp);
    free(logp);
    free(snap);
    free(other);
    free(chk);
    free(err);
    ckpt_manifest_free(m);
}

/* ------------------------------------------------------------------------ */
/* Crash points                                                              */
/* ------------------------------------------------------------------------ */

/* Child mode: "--complete RUN_DIR ID" completes a checkpoint made of one
 * snapshot file (src-0/snapshot must exist). */
static int child_complete(const char *run_dir, const char *id)
{
    ckpt_manifest *m = calloc(1, sizeof *m);
    m->job = strdup("job");
    m->id = strtoull(id, NULL, 10);
    m->tasks = calloc(1, sizeof *m->tasks);
    m->n_tasks = 1;
    m->tasks[0].op_id = strdup("src");
    m->tasks[0].parallelism = 1;
    m->tasks[0].snapshot = strdup("src-0/snapshot");
    char *err = NULL;
    int rc = ckpt_complete(run_dir, m, NULL, &err);
    if (rc)
        fprintf(stderr, "child: %s\n", err);
    free(err);
    ckpt_manifest_free(m);
    return rc ? 1 : 0;
}

static const char *self_exe;

/* Runs the child mode with WEIR_CRASH_AT=point and returns its exit code. */
static int run_child(th_run *r, uint64_t id, const char *point)
{
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%llu", (ull)id);
    char *snap = th_fmt("%s/chk-%s/src-0/snapshot", r->run_dir, idbuf);
    th_write_str(snap, "offset=42");
    free(snap);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("WEIR_CRASH_AT", point, 1);
        execl(self_exe, self_exe, "--complete", r->run_dir, idbuf,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_crash_manifest_written(void **state)
{
    th_run *r = *state;
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, NULL, NULL);
    assert_int_equal(run_child(r, 2, "manifest_written"), CRASH_EXIT_CODE);

    char *chk2 = th_fmt("%s/chk-2", r->run_dir);
    th_list l;
    th_list_tree(chk2, &l);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.paths[0], "MANIFEST.json.tmp");
    assert_string_equal(l.paths[1], "src-0/snapshot");
    th_list_free(&l);
    assert_log(r, (uint64_t[]){1}, 1);

    ckpt_manifest *got = NULL;
    char *err = NULL;
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 1);
    ckpt_manifest_free(got);

    /* The next checkpoint completes and retention removes the crashed one
     * (not in the log, older than the newest). */
    ckpt_manifest *m3 = th_make_checkpoint(r, 3, NULL, NULL);
    assert_int_equal(ckpt_retain(r->run_dir, 5, &err), 0);
    assert_false(th_exists(chk2));
    assert_log(r, (uint64_t[]){1, 3}, 2);

    /* The same child without a crash point completes normally. */
    assert_int_equal(run_child(r, 4, "nowhere"), 0);
    assert_log(r, (uint64_t[]){1, 3, 4}, 3);

    ckpt_manifest_free(m1);
    ckpt_manifest_free(m3);
    free(chk2);
    free(err);
}

static void test_crash_manifest_renamed(void **state)
{
    th_run *r = *state;
    ckpt_manifest *m1 = th_make_checkpoint(r, 1, NULL, NULL);
    assert_int_equal(run_child(r, 2, "manifest_renamed"), CRASH_EXIT_CODE);

    char *tmp = th_fmt("%s/chk-2/MANIFEST.json.tmp", r->run_dir);
    char *mp = th_fmt("%s/chk-2/MANIFEST.json", r->run_dir);
    assert_false(th_exists(tmp));
    assert_true(th_exists(mp));
    assert_log(r, (uint64_t[]){1}, 1);

    /* The manifest itself is whole... */
    ckpt_manifest *got = NULL;
    char *err = NULL;
    assert_int_equal(ckpt_manifest_load(r->run_dir, 2, 1, &got, &err), 0);
    ckpt_manifest_free(got);
    got = NULL;
    /* ... but the checkpoint is not complete: restore takes 1. */
    assert_int_equal(ckpt_find_latest(r->run_dir, NULL, NULL, &got, &err), 0);
    assert_int_equal(got->id, 1);
    ckpt_manifest_free(got);

    ckpt_manifest_free(m1);
    free(tmp);
    free(mp);
    free(err);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--complete") == 0)
        return child_complete(argv[2], argv[3]);
    self_exe = "/proc/self/exe";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_rocksdb, setup,
                                        teardown),
        cmocka_unit_test_prestate_setup_teardown(
            test_damage, damage_setup, damage_teardown, (void *)&dc_truncate),
        cmocka_unit_test_prestate_setup_teardown(
            test_damage, damage_setup, damage_teardown, (void *)&dc_flip),
        cmocka_unit_test_prestate_setup_teardown(test_damage, damage_setup,
                                                 damage_teardown,
                                                 (void *)&dc_missing_sst),
        cmocka_unit_test_prestate_setup_teardown(test_damage, damage_setup,
                                                 damage_teardown,
                                                 (void *)&dc_missing_manifest),
        cmocka_unit_test_prestate_setup_teardown(
            test_damage, damage_setup, damage_teardown, (void *)&dc_format),
        cmocka_unit_test_prestate_setup_teardown(
            test_damage, damage_setup, damage_teardown, (void *)&dc_json),
        cmocka_unit_test_prestate_setup_teardown(
            test_damage, damage_setup, damage_teardown, (void *)&dc_empty),
        cmocka_unit_test_setup_teardown(test_all_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_manifest_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_manifest_renamed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
