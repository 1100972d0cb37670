/*
 * bench_manifest - cost of completing and verifying a checkpoint.
 *
 *   bench_manifest [megabytes]
 *
 * Builds a RocksDB database of about `megabytes` MB (default 100) of
 * incompressible values, takes a RocksDB checkpoint of it as chk-1 and times
 * ckpt_complete with an empty checksum cache (every file read, checksummed
 * and fsync'ed). Then writes 1% more data, takes chk-2 and times
 * ckpt_complete through the same cache (only the new SSTs are read), then a
 * full verification (ckpt_manifest_load with verify). Baselines measured in
 * the same run: XXH3-64 over an in-memory buffer of the same size, and
 * rocksdb_checkpoint_create itself. Data is in the page cache; times are
 * wall clock. Not a test: it prints numbers.
 */
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "checkpoint/fsutil.h"
#include "checkpoint/manifest.h"

#define VALUE_LEN 1000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_manifest: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

static void fill(rocksdb_t *db, long from, long to, uint64_t *seed)
{
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    char key[32], val[VALUE_LEN];
    char *err = NULL;
    for (long i = from; i < to; i++) {
        snprintf(key, sizeof key, "key%012ld", i);
        for (size_t j = 0; j < VALUE_LEN; j += 8) {
            uint64_t r = splitmix(seed);
            memcpy(val + j, &r, VALUE_LEN - j < 8 ? VALUE_LEN - j : 8);
        }
        rocksdb_put(db, wo, key, strlen(key), val, VALUE_LEN, &err);
        if (err)
            die("put", err);
    }
    rocksdb_writeoptions_destroy(wo);
}

/* Flush + checkpoint into <run>/chk-<id>/count-0/state; returns seconds of
 * rocksdb_checkpoint_create alone. */
static double checkpoint(rocksdb_t *db, const char *run, int id)
{
    char path[512];
    char *err = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err)
        die("flush", err);
    snprintf(path, sizeof path, "%s/chk-%d", run, id);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/chk-%d/count-0", run, id);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/chk-%d/count-0/state", run, id);
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(db, &err);
    if (err)
        die("checkpoint object", err);
    double t0 = now_s();
    rocksdb_checkpoint_create(cp, path, 0, &err);
    double t = now_s() - t0;
    rocksdb_checkpoint_object_destroy(cp);
    if (err)
        die("checkpoint", err);
    return t;
}

static ckpt_manifest *manifest(uint64_t id)
{
    ckpt_manifest *m = calloc(1, sizeof *m);
    m->job = strdup("bench");
    m->id = id;
    m->max_parallelism = 128;
    m->tasks = calloc(1, sizeof *m->tasks);
    m->n_tasks = 1;
    m->tasks[0].op_id = strdup("count");
    m->tasks[0].parallelism = 1;
    m->tasks[0].state_dir = strdup("count-0/state");
    return m;
}

static uint64_t total_bytes(const ckpt_manifest *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_files; i++)
        n += m->files[i].size;
    return n;
}

static int rm_cb(const char *p, const struct stat *st, int f, struct FTW *w)
{
    (void)st;
    (void)f;
    (void)w;
    return remove(p);
}

int main(int argc, char **argv)
{
    long mb = argc > 1 ? atol(argv[1]) : 100;
    long n_keys = mb * 1000000 / VALUE_LEN;
    char dir[] = "/tmp/weir-bench-ckpt-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    char dbp[256], run[256];
    snprintf(dbp, sizeof dbp, "%s/db", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    mkdir(run, 0755);

    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_no_compression);
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, dbp, &err);
    if (err)
        die("open", err);
    uint64_t seed = 42;
    fill(db, 0, n_keys, &seed);
    double t_cp1 = checkpoint(db, run, 1);

    /* Baseline: XXH3 over memory, same byte count. */
    ckpt_sum_cache *cache = ckpt_sum_cache_new();
    ckpt_manifest *m1 = manifest(1);
    double t0 = now_s();
    if (ckpt_complete(run, m1, cache, &err))
        die("complete 1", err);
    double t_c1 = now_s() - t0;
    uint64_t bytes1 = total_bytes(m1);
    char *buf = malloc(bytes1);
    for (uint64_t i = 0; i < bytes1; i += 8) {
        uint64_t r = splitmix(&seed);
        memcpy(buf + i, &r, bytes1 - i < 8 ? bytes1 - i : 8);
    }
    t0 = now_s();
    volatile uint64_t h = XXH3_64bits(buf, bytes1);
    double t_mem = now_s() - t0;
    (void)h;
    free(buf);

    fill(db, n_keys, n_keys + n_keys / 100, &seed);
    double t_cp2 = checkpoint(db, run, 2);
    ckpt_sum_cache_stats st0, st1;
    ckpt_sum_cache_stats_get(cache, &st0);
    ckpt_manifest *m2 = manifest(2);
    t0 = now_s();
    if (ckpt_complete(run, m2, cache, &err))
        die("complete 2", err);
    double t_c2 = now_s() - t0;
    ckpt_sum_cache_stats_get(cache, &st1);

    ckpt_manifest *v = NULL;
    t0 = now_s();
    if (ckpt_manifest_load(run, 2, 1, &v, &err))
        die("verify", err);
    double t_v = now_s() - t0;

    double mb1 = (double)bytes1 / 1e6, mb2 = (double)total_bytes(m2) / 1e6;
    printf("checkpoint of %.1f MB (%zu files), data in page cache\n", mb1,
           m1->n_files);
    printf("  rocksdb_checkpoint_create        %8.2f ms\n", t_cp1 * 1e3);
    printf("  ckpt_complete, empty cache       %8.2f ms  (%.0f MB/s)\n",
           t_c1 * 1e3, mb1 / t_c1);
    printf("  xxh3 over memory, same bytes     %8.2f ms  (%.0f MB/s)\n",
           t_mem * 1e3, mb1 / t_mem);
    printf("after 1%% more data: %.1f MB (%zu files)\n", mb2, m2->n_files);
    printf("  rocksdb_checkpoint_create        %8.2f ms\n", t_cp2 * 1e3);
    printf("  ckpt_complete, cached            %8.2f ms  (%llu SSTs read, "
           "%llu from the cache)\n",
           t_c2 * 1e3, (unsigned long long)(st1.misses - st0.misses),
           (unsigned long long)(st1.hits - st0.hits));
    printf("  full verification (load+verify)  %8.2f ms  (%.0f MB/s)\n",
           t_v * 1e3, mb2 / t_v);

    ckpt_manifest_free(v);
    ckpt_manifest_free(m1);
    ckpt_manifest_free(m2);
    ckpt_sum_cache_free(cache);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
