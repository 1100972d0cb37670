/*
 * bench_state - "count events per key" through the state store, next to a
 * plain RocksDB loop measured in the same run.
 *
 *   bench_state [records [rocksdb_records]]
 *
 * Each record is a read-modify-write of an 8-byte counter under a 16-byte
 * key out of 100k keys, uniform or Zipf(0.99). Runs: the baseline (a fresh
 * RocksDB, WAL off, rocksdb_get + rocksdb_put per record), the store with
 * the cache off, and with a 100k-entry cache (with and without a TTL). Runs
 * bound by RocksDB use `rocksdb_records` (default 500k), cached runs
 * `records` (default 3M). Prints records/s and the ratio to the baseline of
 * the same distribution. Single thread. Not a test: it prints numbers.
 */
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "common/log.h"
#include "state/state.h"

#define N_KEYS  100000
#define KEY_LEN 16
#define MAX_PAR 128

static char keys[N_KEYS][KEY_LEN];
static uint16_t kgs[N_KEYS];

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

static double unit(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) / (double)(UINT64_C(1) << 53);
}

/* Deterministic Zipf(theta) over [0, n): rank r has weight 1/(r+1)^theta;
 * inverse-CDF sampling by binary search. Ranks are scattered over the key
 * space by a fixed permutation so hot keys are not neighbours. */
static void gen_zipf(uint32_t *out, size_t count, size_t n, double theta,
                     uint64_t seed)
{
    double *cdf = malloc(n * sizeof *cdf);
    uint32_t *perm = malloc(n * sizeof *perm);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        sum += 1.0 / pow((double)(i + 1), theta);
        cdf[i] = sum;
        perm[i] = (uint32_t)i;
    }
    uint64_t s = seed;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = splitmix(&s) % (i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < count; i++) {
        double u = unit(&s) * sum;
        size_t lo = 0, hi = n - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        out[i] = perm[lo];
    }
    free(cdf);
    free(perm);
}

static void gen_uniform(uint32_t *out, size_t count, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < count; i++)
        out[i] = (uint32_t)(splitmix(&s) % n);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, char *err)
{
    fprintf(stderr, "bench_state: %s: %s\n", what, err ? err : "failed");
    exit(1);
}

/* The baseline: one RocksDB get + put per record, WAL off. */
static double run_baseline(const char *dir, const uint32_t *seq, size_t n)
{
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    char *err = NULL;
    rocksdb_t *db = rocksdb_open(o, dir, &err);
    if (err)
        die("rocksdb_open", err);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[seq[i]];
        size_t vlen = 0;
        char *v = rocksdb_get(db, ro, k, KEY_LEN, &vlen, &err);
        if (err)
            die("get", err);
        uint64_t c = 0;
        if (v && vlen == sizeof c)
            memcpy(&c, v, sizeof c);
        rocksdb_free(v);
        c++;
        rocksdb_put(db, wo, k, KEY_LEN, (const char *)&c, sizeof c, &err);
        if (err)
            die("put", err);
    }
    double dt = now_s() - t0;
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return (double)n / dt;
}

typedef struct run_result {
    double rate;       /* records/s of the loop */
    double rate_flush; /* including the final state_flush */
    double hit_rate;
} run_result;

static run_result run_store(state_env *env, const char *dir,
                            const uint32_t *seq, size_t n, size_t cache,
                            int64_t ttl_ms)
{
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = dir;
    cfg.name = "bench#0";
    cfg.cache_entries = cache;
    state_store *s = NULL;
    char *err = NULL;
    if (state_store_open(env, &cfg, &s, &err))
        die("state_store_open", err);
    weir_state_desc d = {.size = sizeof d,
                         .kind = WEIR_STATE_VALUE,
                         .name = "count",
                         .ttl_ms = ttl_ms};
    weir_state *st = NULL;
    if (state_declare(s, &d, 0, &st, &err))
        die("state_declare", err);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        uint32_t k = seq[i];
        if (state_set_key(s, kgs[k], keys[k], KEY_LEN, WEIR_TS_NONE))
            die("set_key", NULL);
        const void *v;
        size_t len;
        uint64_t c = 0;
        int rc = state_value_get(st, &v, &len, &err);
        if (rc == 0 && len == sizeof c)
            memcpy(&c, v, sizeof c);
        else if (rc != WEIR_ENOTFOUND)
            die("value_get", err);
        c++;
        if (state_value_put(st, &c, sizeof c, &err))
            die("value_put", err);
    }
    double t1 = now_s();
    if (state_flush(s, &err))
        die("state_flush", err);
    double t2 = now_s();
    run_result r = {(double)n / (t1 - t0), (double)n / (t2 - t0), 0};
    state_store_stats ss;
    state_store_stats_get(s, &ss);
    if (ss.cache_hits + ss.cache_misses)
        r.hit_rate =
            (double)ss.cache_hits / (double)(ss.cache_hits + ss.cache_misses);

    /* Check: the counters add up to the number of records. */
    uint64_t total = 0;
    for (uint32_t k = 0; k < N_KEYS; k++) {
        state_set_key(s, kgs[k], keys[k], KEY_LEN, WEIR_TS_NONE);
        const void *v;
        size_t len;
        uint64_t c;
        if (state_value_get(st, &v, &len, NULL) == 0 && len == sizeof c) {
            memcpy(&c, v, sizeof c);
            total += c;
        }
    }
    if (total != n) {
        fprintf(stderr, "bench_state: counted %" PRIu64 " of %zu records\n",
                total, n);
        exit(1);
    }
    if (state_store_close(s, &err))
        die("state_store_close", err);
    return r;
}

int main(int argc, char **argv)
{
    size_t n_cached = argc > 1 ? strtoul(argv[1], NULL, 10) : 3000000;
    size_t n_rocks = argc > 2 ? strtoul(argv[2], NULL, 10) : 500000;
    log_set_level(WEIR_LOG_ERROR);
    for (uint32_t i = 0; i < N_KEYS; i++) {
        char tmp[KEY_LEN + 1];
        snprintf(tmp, sizeof tmp, "user%012" PRIu32, i * 2654435761u);
        memcpy(keys[i], tmp, KEY_LEN);
        kgs[i] = (uint16_t)(XXH3_64bits(keys[i], KEY_LEN) % MAX_PAR);
    }
    size_t n_max = n_cached > n_rocks ? n_cached : n_rocks;
    uint32_t *seq = malloc(n_max * sizeof *seq);
    char root[] = "/tmp/weir-bench-state-XXXXXX";
    if (!seq || !mkdtemp(root))
        die("setup", NULL);
    state_env *env = NULL;
    char *err = NULL;
    if (state_env_new(NULL, &env, &err))
        die("state_env_new", err);

    printf("bench_state: count events per key, %d keys of %d bytes, "
           "8-byte counters, one thread\n",
           N_KEYS, KEY_LEN);
    printf("%-44s %9s %11s %8s %11s\n", "run", "records", "records/s",
           "vs base", "+flush r/s");
    const char *dists[2] = {"uniform", "zipf0.99"};
    int run_no = 0;
    for (int di = 0; di < 2; di++) {
        if (di == 0)
            gen_uniform(seq, n_max, N_KEYS, 42);
        else
            gen_zipf(seq, n_max, N_KEYS, 0.99, 42);
        char dir[128];
        snprintf(dir, sizeof dir, "%s/run%d", root, run_no++);
        double base = run_baseline(dir, seq, n_rocks);
        rm_rf(dir);
        char bname[64];
        snprintf(bname, sizeof bname, "%s baseline: rocksdb get+put",
                 dists[di]);
        printf("%-44s %9zu %11.0f %8.2f %11s\n", bname, n_rocks, base, 1.0,
               "-");

        struct {
            const char *name;
            size_t cache;
            int64_t ttl;
            size_t n;
        } runs[] = {
            {"store, cache off", 0, WEIR_TTL_NONE, n_rocks},
            {"store, cache off, TTL 1h", 0, 3600 * 1000, n_rocks},
            {"store, cache 100k entries", 100000, WEIR_TTL_NONE, n_cached},
            {"store, cache 100k entries, TTL 1h", 100000, 3600 * 1000,
             n_cached},
            {"store, cache 10k entries", 10000, WEIR_TTL_NONE, n_rocks},
        };
        for (size_t i = 0; i < sizeof runs / sizeof *runs; i++) {
            snprintf(dir, sizeof dir, "%s/run%d", root, run_no++);
            run_result r =
                run_store(env, dir, seq, runs[i].n, runs[i].cache, runs[i].ttl);
            rm_rf(dir);
            char name[64];
            snprintf(name, sizeof name, "%s %s", dists[di], runs[i].name);
            char flush[32] = "-";
            if (runs[i].cache)
                snprintf(flush, sizeof flush, "%.0f", r.rate_flush);
            printf("%-44s %9zu %11.0f %8.2f %11s", name, runs[i].n, r.rate,
                   r.rate / base, flush);
            if (runs[i].cache)
                printf("  (hit rate %.3f)", r.hit_rate);
            printf("\n");
            fflush(stdout);
        }
    }
    state_env_free(env);
    rm_rf(root);
    free(seq);
    return 0;
}
