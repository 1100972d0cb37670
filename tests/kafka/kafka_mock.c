/*
 * kafka_mock.c - test helper around librdkafka's built-in mock cluster.
 *
 *   kafka_mock serve [--brokers N] [--topic NAME:PARTITIONS]...
 *                    [--produce TOPIC:M:K] [--fail-produce N]
 *       Starts a mock cluster of N brokers (default 3) inside this process,
 *       creates the topics, prints "bootstrap=HOST:PORT,..." on stdout,
 *       produces the deterministic input if asked (record i of M, 0-based:
 *       key "u<k>" with k = ((i * 2654435761) mod 2^32) mod K, payload
 *       {"user":"u<k>","i":i,"ts":T} with T = 1767225600000 + i, message
 *       timestamp T, partition i mod PARTITIONS), makes the next N Produce
 *       requests after that fail with MSG_SIZE_TOO_LARGE (not retriable),
 *       prints "ready", and keeps the cluster up until standard input
 *       closes.
 *   kafka_mock consume BOOTSTRAP TOPIC [--read-committed]
 *       Prints every message of TOPIC up to the partitions' current high
 *       watermarks as JSON lines {"partition":p,"offset":o,"key":"...",
 *       "ts":t,"value":"<payload text>"}, partition by partition.
 *   kafka_mock committed BOOTSTRAP GROUP TOPIC
 *       Prints the group's committed offsets as {"0":o0,"1":o1,...}
 *       (-1001 = none).
 *   kafka_mock probe-txn BOOTSTRAP TOPIC
 *       Produces one aborted transaction to TOPIC and prints
 *       "hides_aborted=1" when a read_committed consumer does not see it
 *       (a real broker), "hides_aborted=0" when it does (librdkafka's mock
 *       cluster, which does not implement transaction markers).
 *
 * Exit status 0 on success, 1 on a Kafka error, 2 on bad usage.
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#define KM_TIMEOUT_MS 10000

static int km_usage(void)
{
    fprintf(stderr, "usage: kafka_mock serve [--brokers N] "
                    "[--topic NAME:PARTITIONS]... [--produce TOPIC:M:K]\n"
                    "       kafka_mock consume BOOTSTRAP TOPIC "
                    "[--read-committed]\n"
                    "       kafka_mock committed BOOTSTRAP GROUP TOPIC\n"
                    "       kafka_mock probe-txn BOOTSTRAP TOPIC\n");
    return 2;
}

static rd_kafka_t *km_client(rd_kafka_type_t type, const char *const *kv)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "kafka_mock: %s: %s\n", kv[0], err);
            exit(1);
        }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", err);
        exit(1);
    }
    return rk;
}

static int km_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, KM_TIMEOUT_MS);
    rd_kafka_topic_destroy(t);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "kafka_mock: metadata of %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topics[0].err));
        exit(1);
    }
    int n = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

static void km_produce(rd_kafka_t *rk, const char *topic, long m, long k,
                       int parts)
{
    for (long i = 0; i < m; i++) {
        char key[32], val[128];
        long u =
            (long)(((uint64_t)i * 2654435761u) % 4294967296u % (uint64_t)k);
        long long ts = 1767225600000LL + i;
        snprintf(key, sizeof key, "u%ld", u);
        snprintf(val, sizeof val, "{\"user\":\"u%ld\",\"i\":%ld,\"ts\":%lld}",
                 u, i, ts);
        rd_kafka_resp_err_t err;
        while (
            (err = rd_kafka_producev(
                 rk, RD_KAFKA_V_TOPIC(topic),
                 RD_KAFKA_V_PARTITION((int32_t)(i % parts)),
                 RD_KAFKA_V_KEY(key, strlen(key)),
                 RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_TIMESTAMP(ts),
                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
            RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        if (err) {
            fprintf(stderr, "kafka_mock: produce: %s\n", rd_kafka_err2str(err));
            exit(1);
        }
    }
    if (rd_kafka_flush(rk, 60000)) {
        fprintf(stderr, "kafka_mock: flush timed out\n");
        exit(1);
    }
}

static int km_serve(int argc, char **argv)
{
    const char *brokers = "3";
    const char *topics[64], *produce = NULL;
    int fail_produce = 0;
    int n_topics = 0;
    for (int i = 0; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--brokers") == 0)
            brokers = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--topic") == 0 &&
                 n_topics < 64)
            topics[n_topics++] = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--produce") == 0)
            produce = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--fail-produce") == 0)
            fail_produce = atoi(argv[++i]);
        else
            return km_usage();
    }
    const char *kv[] = {"test.mock.num.brokers", brokers, "log_level", "3",
                        NULL};
    rd_kafka_t *rk = km_client(RD_KAFKA_PRODUCER, kv);
    rd_kafka_mock_cluster_t *mc = rd_kafka_handle_mock_cluster(rk);
    if (!mc) {
        fprintf(stderr, "kafka_mock: no mock cluster\n");
        return 1;
    }
    for (int i = 0; i < n_topics; i++) {
        char name[256];
        const char *colon = strrchr(topics[i], ':');
        if (!colon || (size_t)(colon - topics[i]) >= sizeof name)
            return km_usage();
        snprintf(name, sizeof name, "%.*s", (int)(colon - topics[i]),
                 topics[i]);
        if (rd_kafka_mock_topic_create(mc, name, atoi(colon + 1), 1)) {
            fprintf(stderr, "kafka_mock: cannot create %s\n", name);
            return 1;
        }
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    if (produce) {
        char topic[256];
        long m, k;
        if (sscanf(produce, "%255[^:]:%ld:%ld", topic, &m, &k) != 3 || k < 1)
            return km_usage();
        km_produce(rk, topic, m, k, km_partitions(rk, topic));
    }
    if (fail_produce > 0) {
        rd_kafka_resp_err_t errs[64];
        for (int i = 0; i < fail_produce && i < 64; i++)
            errs[i] = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
        rd_kafka_mock_push_request_errors_array(
            mc, 0 /* Produce */, fail_produce < 64 ? (size_t)fail_produce : 64,
            errs);
    }
    printf("ready\n");
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof buf) > 0)
        ;
    rd_kafka_destroy(rk);
    return 0;
}

static void km_print(const rd_kafka_message_t *m)
{
    json_t *o = json_pack("{s:i,s:I,s:I}", "partition", (int)m->partition,
                          "offset", (json_int_t)m->offset, "ts",
                          (json_int_t)rd_kafka_message_timestamp(m, NULL));
    json_object_set_new(o, "key",
                        m->key ? json_stringn_nocheck(m->key, m->key_len)
                               : json_null());
    json_object_set_new(
        o, "value", json_stringn_nocheck(m->payload ? m->payload : "", m->len));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
}

static int km_consume(int argc, char **argv)
{
    if (argc < 2 || argc > 3 ||
        (argc == 3 && strcmp(argv[2], "--read-committed") != 0))
        return km_usage();
    const char *kv[] = {"bootstrap.servers",
                        argv[0],
                        "group.id",
                        "kafka-mock-reader",
                        "enable.auto.commit",
                        "false",
                        "isolation.level",
                        argc == 3 ? "read_committed" : "read_uncommitted",
                        "enable.partition.eof",
                        "true",
                        NULL};
    rd_kafka_t *rk = km_client(RD_KAFKA_CONSUMER, kv);
    int parts = km_partitions(rk, argv[1]);
    for (int p = 0; p < parts; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, argv[1], p, &lo, &hi,
                                             KM_TIMEOUT_MS))
            return 1;
        if (hi <= lo)
            continue;
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, argv[1], p)->offset = lo;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        int idle = 0;
        for (;;) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m) {
                if (++idle > 300) {
                    fprintf(stderr, "kafka_mock: partition %d: no end\n", p);
                    return 1;
                }
                continue;
            }
            idle = 0;
            int done = 0;
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                done = m->offset >= hi;
            else if (m->err)
                fprintf(stderr, "kafka_mock: %s\n", rd_kafka_message_errstr(m));
            else {
                km_print(m);
                done = m->offset + 1 >= hi;
            }
            rd_kafka_message_destroy(m);
            if (done)
                break;
        }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

static int km_committed(int argc, char **argv)
{
    if (argc != 3)
        return km_usage();
    const char *kv[] = {"bootstrap.servers", argv[0], "group.id", argv[1],
                        NULL};
    rd_kafka_t *rk = km_client(RD_KAFKA_CONSUMER, kv);
    int parts = km_partitions(rk, argv[2]);
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, argv[2], p);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, KM_TIMEOUT_MS);
    if (err) {
        fprintf(stderr, "kafka_mock: committed: %s\n", rd_kafka_err2str(err));
        return 1;
    }
    printf("{");
    for (int p = 0; p < parts; p++)
        printf("%s\"%d\":%" PRId64, p ? "," : "", p, l->elems[p].offset);
    printf("}\n");
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return 0;
}

static int km_probe_txn(int argc, char **argv)
{
    if (argc != 2)
        return km_usage();
    const char *pkv[] = {"bootstrap.servers", argv[0], "transactional.id",
                         "kafka-mock-probe", NULL};
    rd_kafka_t *p = km_client(RD_KAFKA_PRODUCER, pkv);
    rd_kafka_error_t *e = rd_kafka_init_transactions(p, KM_TIMEOUT_MS);
    if (!e)
        e = rd_kafka_begin_transaction(p);
    if (e) {
        fprintf(stderr, "kafka_mock: %s\n", rd_kafka_error_string(e));
        return 1;
    }
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(argv[1]), RD_KAFKA_V_PARTITION(0),
                      RD_KAFKA_V_VALUE("probe", 5), RD_KAFKA_V_END);
    rd_kafka_flush(p, KM_TIMEOUT_MS);
    if ((e = rd_kafka_abort_transaction(p, KM_TIMEOUT_MS))) {
        fprintf(stderr, "kafka_mock: %s\n", rd_kafka_error_string(e));
        return 1;
    }
    rd_kafka_destroy(p);
    const char *ckv[] = {"bootstrap.servers",
                         argv[0],
                         "group.id",
                         "kafka-mock-probe",
                         "isolation.level",
                         "read_committed",
                         "enable.partition.eof",
                         "true",
                         NULL};
    rd_kafka_t *c = km_client(RD_KAFKA_CONSUMER, ckv);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, argv[1], 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    int seen = 0;
    for (int i = 0; i < 100; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m)
            continue;
        int eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        if (!m->err && m->len == 5 && memcmp(m->payload, "probe", 5) == 0)
            seen = 1;
        rd_kafka_message_destroy(m);
        if (eof)
            break;
    }
    printf("hides_aborted=%d\n", !seen);
    rd_kafka_destroy(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return km_usage();
    if (strcmp(argv[1], "serve") == 0)
        return km_serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "consume") == 0)
        return km_consume(argc - 2, argv + 2);
    if (strcmp(argv[1], "committed") == 0)
        return km_committed(argc - 2, argv + 2);
    if (strcmp(argv[1], "probe-txn") == 0)
        return km_probe_txn(argc - 2, argv + 2);
    return km_usage();
}
