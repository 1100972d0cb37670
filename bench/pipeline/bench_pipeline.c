/*
 * bench_pipeline - throughput and latency of the runtime:
 *   gen -> key shuffle -> discard, parallelism 1 and 2,
 * next to a baseline measured in the same run: the same number of records
 * packed and unpacked with msgpack-c in one thread (the per-record work a
 * channel cannot avoid).
 *
 * Keyed part: gen -> key shuffle -> count (RocksDB keyed state, parallelism
 * 2), 100k keys uniform and Zipf(0.99), with the write-back cache off and
 * on, next to a baseline in the same run: a plain loop doing one RocksDB
 * get + put per record in one thread (WAL off).
 *
 * usage: bench_pipeline [RECORDS] [keyed]  (default 4000000; "keyed" runs
 *        only the keyed part)
 *        bench_pipeline p1 RECORDS      the baseline and parallelism 2 only
 *        bench_pipeline latency RATE RECORDS   parallelism 2 at RATE records/s
 * The p1 and latency modes print one line of key=value pairs each (read by
 * bench/run):
 *   p1 records=N baseline_eps=X weir_eps=X
 *   latency rate=R records=N p50_ms=X p99_ms=X
 * RECORDS must be positive.
 * Latency is measured by discard from the value's created_ns (monotonic
 * clock at emit) to arrival; it is reported for a run at a fixed rate, since
 * a source running flat out measures queueing, not the runtime.
 */
#include <fcntl.h>
#include <msgpack.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "plugin/registry.h"
#include "runtime/api.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Packs and unpacks `n` records shaped like gen's values, one thread. */
static double baseline(long n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked up;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&up);
    char key[32];
    uint64_t sum = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        sb.size = 0;
        int kn = snprintf(key, sizeof key, "k%ld", i % 100000);
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "seq", 3);
        msgpack_pack_int64(&pk, i);
        msgpack_pack_str_with_body(&pk, "key", 3);
        msgpack_pack_str_with_body(&pk, key, (size_t)kn);
        msgpack_pack_str_with_body(&pk, "created_ns", 10);
        msgpack_pack_int64(&pk, i * 1000);
        size_t off = 0;
        if (msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
            MSGPACK_UNPACK_SUCCESS)
            sum += up.data.via.map.size;
    }
    double dt = now_s() - t0;
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    if (sum != (uint64_t)n * 3)
        fprintf(stderr, "baseline: unexpected unpack result\n");
    return (double)n / dt;
}

typedef struct result {
    double seconds;
    unsigned long long records;
    double p50_ms, p99_ms; /* worst subtask */
} result;

/* Parses discard's report lines from the captured log. */
static void parse_reports(FILE *f, result *r)
{
    char line[1024];
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "discard sink[");
        if (!p)
            continue;
        unsigned long long recs = 0;
        double p50 = 0, p99 = 0;
        const char *q = strstr(p, "records=");
        if (q)
            recs = strtoull(q + 8, NULL, 10);
        if ((q = strstr(p, "p50_ms=")))
            p50 = strtod(q + 7, NULL);
        if ((q = strstr(p, "p99_ms=")))
            p99 = strtod(q + 7, NULL);
        r->records += recs;
        if (p50 > r->p50_ms)
            r->p50_ms = p50;
        if (p99 > r->p99_ms)
            r->p99_ms = p99;
    }
}

/* One RocksDB get + put per record on keys "k<n>" drawn like gen's
 * uniform keys (a fixed LCG here), WAL off, one thread. */
static double rocksdb_baseline(long n, const char *dir)
{
    char *err = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_t *db = rocksdb_open(o, dir, &err);
    if (!db) {
        fprintf(stderr, "baseline: %s\n", err);
        return 0;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(wo, 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    uint64_t x = 42;
    char key[32];
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int kn = snprintf(key, sizeof key, "k%llu",
                          (unsigned long long)((x >> 33) % 100000));
        size_t vl = 0;
        char *v = rocksdb_get(db, ro, key, (size_t)kn, &vl, &err);
        uint64_t c = 0;
        if (v && vl == 8)
            memcpy(&c, v, 8);
        rocksdb_free(v);
        c++;
        rocksdb_put(db, wo, key, (size_t)kn, (const char *)&c, 8, &err);
    }
    double dt = now_s() - t0;
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
    return (double)n / dt;
}

static int run_yaml(reg_registry *reg, const char *yaml, result *r);

static int run(reg_registry *reg, int par, long n, long rate, result *r)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "job: bench\n"
             "operators:\n"
             "  - {id: gen, type: gen, parallelism: %d,\n"
             "     config: {count: %ld, keys: 100000, rate: %ld}}\n"
             "  - {id: sink, type: discard, parallelism: %d,\n"
             "     inputs: [{from: gen, partition: key}]}\n",
             par, n, rate, par);
    return run_yaml(reg, yaml, r);
}

/* gen (1 subtask) -key-> count (2 subtasks, RocksDB state, emitting
 * nothing): the keyed read-modify-write path of the runtime. */
static int run_keyed(reg_registry *reg, const char *dir, long n,
                     const char *dist, long cache, result *r)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "job: bench_keyed\n"
             "state: {dir: '%s', cache_entries: %ld}\n"
             "operators:\n"
             "  - {id: gen, type: gen,\n"
             "     config: {count: %ld, keys: 100000, distribution: %s}}\n"
             "  - {id: count, type: count, parallelism: 2,\n"
             "     inputs: [{from: gen, partition: key}],\n"
             "     config: {emit: none}}\n",
             dir, cache, n, dist);
    r->records = (unsigned long long)n;
    return run_yaml(reg, yaml, r);
}

static int run_yaml(reg_registry *reg, const char *yaml, result *r)
{
    char *err = NULL;
    topo_job *job = NULL;
    if (topo_load_string("bench.yaml", yaml, strlen(yaml), reg, &job, &err) <
        0) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return -1;
    }
    /* Capture the log (discard reports there) in a temporary file. */
    FILE *cap = tmpfile();
    int saved = dup(STDERR_FILENO);
    dup2(fileno(cap), STDERR_FILENO);
    rt_job *rt = NULL;
    double t0 = now_s();
    int rc = rt_start(job, &rt, &err);
    if (rc == 0) {
        rc = rt_wait(rt, &err);
        rt_destroy(rt);
    }
    r->seconds = now_s() - t0;
    dup2(saved, STDERR_FILENO);
    close(saved);
    if (rc < 0) {
        fprintf(stderr, "run failed: %s\n", err);
        free(err);
    }
    parse_reports(cap, r);
    fclose(cap);
    topo_free(job);
    return rc;
}

static int keyed_part(reg_registry *reg, long n)
{
    char dir[] = "/tmp/weir-bench-XXXXXX", path[64];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/baseline", dir);
    long nb = n / 4;
    double base = rocksdb_baseline(nb, path);
    printf("\nkeyed: gen -key-> count (RocksDB state), parallelism 2, 100k "
           "keys\n");
    printf("%-44s %12.0f records/s  (%ld records)\n",
           "baseline: RocksDB get+put, 1 thread", base, nb);
    static const char *const dists[] = {"uniform", "zipf"};
    for (int d = 0; d < 2; d++)
        for (int cache = 0; cache < 2; cache++) {
            result r = {0};
            long count = cache ? n : nb;
            snprintf(path, sizeof path, "%s/state", dir);
            if (run_keyed(reg, path, count, dists[d], cache ? 100000 : 0, &r) <
                0)
                return 1;
            double rate = (double)r.records / r.seconds;
            char label[64];
            snprintf(label, sizeof label, "count, %s, cache %s", dists[d],
                     cache ? "100k entries" : "off");
            printf("%-44s %12.0f records/s  (%.2fx baseline)\n", label, rate,
                   rate / base);
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* The machine-readable modes "p1" and "latency" (see the top comment). */
static int line_mode(reg_registry *reg, int argc, char **argv)
{
    result r = {0};
    if (strcmp(argv[1], "p1") == 0 && argc == 3) {
        long n = atol(argv[2]);
        if (n <= 0)
            goto usage;
        double base = baseline(n);
        if (run(reg, 2, n, 0, &r) < 0)
            return 1;
        printf("p1 records=%llu baseline_eps=%.0f weir_eps=%.0f\n", r.records,
               base, (double)r.records / r.seconds);
        return r.records == (unsigned long long)n ? 0 : 1;
    }
    if (strcmp(argv[1], "latency") == 0 && argc == 4) {
        long rate = atol(argv[2]), n = atol(argv[3]);
        if (rate <= 0 || n <= 0)
            goto usage;
        if (run(reg, 2, n, rate, &r) < 0)
            return 1;
        printf("latency rate=%ld records=%llu seconds=%.3f p50_ms=%.3f "
               "p99_ms=%.3f\n",
               rate, r.records, r.seconds, r.p50_ms, r.p99_ms);
        return r.records == (unsigned long long)n ? 0 : 1;
    }
usage:
    fprintf(stderr, "usage: bench_pipeline p1 RECORDS | latency RATE RECORDS "
                    "(positive integers)\n");
    return 2;
}

int main(int argc, char **argv)
{
    int lines = argc > 1 &&
                (strcmp(argv[1], "p1") == 0 || strcmp(argv[1], "latency") == 0);
    long n = argc > 1 && !lines ? atol(argv[1]) : 4000000;
    int keyed_only = argc > 2 && strcmp(argv[2], "keyed") == 0;
    log_set_level(WEIR_LOG_INFO);
    reg_registry *reg = reg_new(api_table());
    char *err = NULL;
    if (reg_load_dir(reg, WEIR_PLUGIN_DIR, NULL, NULL, &err) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (lines) {
        int rc = line_mode(reg, argc, argv);
        reg_free(reg);
        return rc;
    }
    if (keyed_only) {
        int rc = keyed_part(reg, n);
        reg_free(reg);
        return rc;
    }
    printf("records per run: %ld, keys: 100000 uniform, cores: %ld\n", n,
           sysconf(_SC_NPROCESSORS_ONLN));
    double base = baseline(n);
    printf("%-44s %12.0f records/s\n",
           "baseline: msgpack pack+unpack, 1 thread", base);
    for (int par = 1; par <= 2; par++) {
        result r = {0};
        if (run(reg, par, n, 0, &r) < 0)
            return 1;
        double rate = (double)r.records / r.seconds;
        char label[64];
        snprintf(label, sizeof label, "gen -key-> discard, parallelism %d",
                 par);
        printf("%-44s %12.0f records/s  (%.2fx baseline, %llu records)\n",
               label, rate, rate / base, r.records);
    }
    static const long rates[] = {100000, 500000};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        result r = {0};
        long count = rates[i] * 3;
        if (run(reg, 2, count, rates[i], &r) < 0)
            return 1;
        char label[64];
        snprintf(label, sizeof label, "latency at %ld records/s, par. 2",
                 rates[i]);
        printf("%-44s p50 %.3f ms  p99 %.3f ms  (%llu records)\n", label,
               r.p50_ms, r.p99_ms, r.records);
    }
    int rc = keyed_part(reg, n);
    reg_free(reg);
    return rc;
}
