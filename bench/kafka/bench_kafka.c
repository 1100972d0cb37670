/*
 * bench_kafka.c - kafka_source -> count -> kafka_sink throughput on
 * librdkafka's mock cluster, against librdkafka's own produce and consume
 * rates on the same cluster in the same run.
 *
 *   bench_kafka [RECORDS] [WEIR_BINARY] [PLUGIN_DIR]
 *
 * The mock cluster (3 brokers) lives in this process. Baseline: one
 * producer writes RECORDS JSON messages (1000 keys) to "in" (3 partitions)
 * and flushes; one consumer reads them back. Then `weir run` runs a bounded
 * job kafka_source (stop: latest) -> key -> count (parallelism 2) ->
 * kafka_sink, once with commit: none and once with commit: checkpoint
 * (checkpoints every second); its time is from the start of `weir run` to
 * its exit, start-up included. The ratio compares the job's rate with the
 * rate of the baseline's consume and produce done one after the other
 * (the job does both for every record).
 */
#define _POSIX_C_SOURCE 200809L

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef WEIR_BIN
#define WEIR_BIN "weir"
#endif
#ifndef WEIR_PLUGIN_DIR
#define WEIR_PLUGIN_DIR "plugins"
#endif

static double bk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static rd_kafka_t *bk_client(rd_kafka_type_t type, const char *const *kv)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof err)) {
            fprintf(stderr, "bench_kafka: %s: %s\n", kv[0], err);
            exit(1);
        }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "bench_kafka: %s\n", err);
        exit(1);
    }
    return rk;
}

static double bk_produce(const char *bs, long n)
{
    const char *kv[] = {"bootstrap.servers", bs, "linger.ms", "5", NULL};
    rd_kafka_t *rk = bk_client(RD_KAFKA_PRODUCER, kv);
    double t0 = bk_now();
    for (long i = 0; i < n; i++) {
        char key[24], val[96];
        snprintf(key, sizeof key, "u%ld", (i * 7919) % 1000);
        snprintf(val, sizeof val, "{\"user\":\"%s\",\"i\":%ld,\"page\":\"/p\"}",
                 key, i);
        while (rd_kafka_producev(
                   rk, RD_KAFKA_V_TOPIC("in"), RD_KAFKA_V_KEY(key, strlen(key)),
                   RD_KAFKA_V_VALUE(val, strlen(val)),
                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 1);
    }
    rd_kafka_flush(rk, 120000);
    double t = bk_now() - t0;
    rd_kafka_destroy(rk);
    return t;
}

static double bk_consume(const char *bs, long n)
{
    const char *kv[] = {"bootstrap.servers", bs, "group.id", "bench", NULL};
    rd_kafka_t *rk = bk_client(RD_KAFKA_CONSUMER, kv);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(l, "in", p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    double t0 = bk_now();
    long got = 0;
    while (got < n && bk_now() - t0 < 120) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err)
            got++;
        rd_kafka_message_destroy(m);
    }
    double t = bk_now() - t0;
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return got == n ? t : -1;
}

static double bk_weir(const char *weir, const char *plugins, const char *bs,
                      const char *dir, const char *out, const char *commit)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.yaml", dir, out);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "job: bench-%s\n"
            "checkpoint: {interval: 1s, dir: '%s/ckpt'}\n"
            "state: {dir: '%s/state'}\n"
            "operators:\n"
            "  - id: src\n    type: kafka_source\n"
            "    config: {brokers: '%s', topics: [in], start: earliest, "
            "stop: latest, batch: 4096}\n"
            "  - id: count\n    type: count\n    parallelism: 2\n"
            "    inputs: [{from: src, partition: key}]\n"
            "  - id: sink\n    type: kafka_sink\n"
            "    inputs: [{from: count, partition: forward}]\n"
            "    parallelism: 2\n"
            "    config: {brokers: '%s', topic: %s, commit: %s, "
            "transactional_id_prefix: bench-%s}\n",
            out, dir, dir, bs, bs, out, commit, out);
    fclose(f);
    double t0 = bk_now();
    pid_t pid = fork();
    if (pid == 0) {
        char logp[600];
        snprintf(logp, sizeof logp, "%s/%s.log", dir, out);
        if (!freopen(logp, "w", stderr) || !freopen(logp, "a", stdout))
            _exit(127);
        execl(weir, weir, "run", "--dir", plugins, path, (char *)NULL);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench_kafka: weir run failed; see %s/%s.log\n", dir,
                out);
        return -1;
    }
    return bk_now() - t0;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *weir = argc > 2 ? argv[2] : WEIR_BIN;
    const char *plugins = argc > 3 ? argv[3] : WEIR_PLUGIN_DIR;
    const char *kv[] = {"test.mock.num.brokers", "3", "log_level", "3", NULL};
    rd_kafka_t *mk = bk_client(RD_KAFKA_PRODUCER, kv);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(mk);
    const char *topics[] = {"in", "none", "txn"};
    for (int i = 0; i < 3; i++)
        rd_kafka_mock_topic_create(mc, topics[i], 3, 1);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mc);
    char dir[] = "/tmp/bench-kafka-XXXXXX";
    if (!mkdtemp(dir))
        return 1;

    double tp = bk_produce(bs, n), tc = bk_consume(bs, n);
    double tn = bk_weir(weir, plugins, bs, dir, "none", "none");
    double tx = bk_weir(weir, plugins, bs, dir, "txn", "checkpoint");
    if (tc < 0 || tn < 0 || tx < 0)
        return 1;
    double base = (double)n / (tp + tc);
    printf("records: %ld (mock cluster, 3 brokers, 3 partitions)\n", n);
    printf("librdkafka produce:            %9.0f records/s\n", n / tp);
    printf("librdkafka consume:            %9.0f records/s\n", n / tc);
    printf("librdkafka consume+produce:    %9.0f records/s (baseline)\n", base);
    printf("weir kafka->count->kafka none: %9.0f records/s (%.2fx baseline, "
           "start-up included)\n",
           n / tn, n / tn / base);
    printf("weir ... commit: checkpoint:   %9.0f records/s (%.2fx baseline)\n",
           n / tx, n / tx / base);
    printf("job logs in %s\n", dir);
    rd_kafka_destroy(mk);
    return 0;
}
