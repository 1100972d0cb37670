/*
 * kafka_sink.c - operator "kafka_sink": writes records to Kafka with
 * librdkafka.
 *
 * Message of a record: topic = `topic`, or the string field `topic_field`
 * of the value; key = the record key (none when empty); timestamp = the
 * event time (the producer's clock when the record has none); payload =
 * with format=json the value as one compact JSON document, with
 * format=msgpack the value bytes as they are. Partitioning is librdkafka's
 * (`rdkafka: {partitioner: ...}` changes it).
 *
 * commit=none: at-least-once. snapshot() (the checkpoint barrier) waits
 * until every message produced so far is acknowledged (rd_kafka_flush) and
 * fails the checkpoint when one was not; after a restart the records since
 * the restored checkpoint are produced again.
 *
 * commit=checkpoint: a two-phase commit with Kafka transactions. Subtask i
 * owns a pool of `transaction_pool` transactional producers with the stable
 * ids <transactional_id_prefix>-<operator id>-<i>-<n>, n < pool, each
 * initialised (rd_kafka_init_transactions) at open, which fences producers
 * of an earlier run with the same id and aborts their open transactions.
 * The first record after a barrier begins a transaction on a free producer;
 * snapshot(c) flushes it (pre-commit: every message is on the brokers,
 * inside the open transaction) and marks it pending for checkpoint c; the
 * next record begins the next transaction on another producer, so records
 * after barrier c never join the transaction of c.
 * notify_checkpoint_complete(c) commits every pending transaction <= c,
 * oldest first. A consumer with isolation.level=read_committed sees each
 * record once:
 *   - a worker that dies before checkpoint c completes: the restart fences
 *     the ids, which aborts the transactions after the restored checkpoint,
 *     and their records are produced again;
 *   - a worker that dies after the commit: nothing is redone.
 *   - a worker that dies after checkpoint c completed and before the
 *     commit of c returned: librdkafka cannot resume a transaction of
 *     another producer instance, so the restart's fencing aborts it, and
 *     the records of c (those between barriers c-1 and c) are lost, unless
 *     the broker had already committed it. restore() logs a warning naming
 *     every transaction that was pending in the restored checkpoint.
 * The snapshot (version 1, little endian) holds u32 pool size, u32 count,
 * then per pending transaction u64 checkpoint and u32 producer index.
 * A pool whose producers all hold pending transactions (checkpoints that do
 * not complete) fails the subtask with an error naming transaction_pool.
 *
 * Metrics: kafka_sink_records_total, kafka_sink_bytes_total,
 * kafka_sink_transactions_committed_total, kafka_sink_commit_seconds
 * (histogram of commit_transaction durations).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kcommon.h"
#include "mpscan.h"

#define KSINK_SNAPSHOT_VERSION 1
#define KSINK_POLL_EVERY       1024 /* records between rd_kafka_poll(0) */
#define KSINK_COMMIT_TRIES     5

#define KSINK_PARAM(...)                                                       \
    {                                                                          \
        .size = sizeof(weir_param_def), __VA_ARGS__                            \
    }

static const weir_param_def ksink_p_brokers =
    KSINK_PARAM(.flags = WEIR_PARAM_REQUIRED, .name = "brokers",
                .type = WEIR_PARAM_STRING,
                .description = "bootstrap servers, host:port[,host:port...]");
static const weir_param_def ksink_p_topic =
    KSINK_PARAM(.name = "topic", .type = WEIR_PARAM_STRING,
                .description = "topic to write to (or topic_field)");
static const weir_param_def ksink_p_topic_field =
    KSINK_PARAM(.name = "topic_field", .type = WEIR_PARAM_STRING,
                .description =
                    "string field of the value naming each record's topic");
static const char *const ksink_format_choices[] = {"json", "msgpack", NULL};
static const weir_param_def ksink_p_format =
    KSINK_PARAM(.name = "format", .type = WEIR_PARAM_ENUM,
                .default_value = "json", .choices = ksink_format_choices,
                .description =
                    "payload: json (the value as JSON) or msgpack (as is)");
static const char *const ksink_commit_choices[] = {"none", "checkpoint", NULL};
static const weir_param_def ksink_p_commit =
    KSINK_PARAM(.name = "commit", .type = WEIR_PARAM_ENUM,
                .default_value = "none", .choices = ksink_commit_choices,
                .description =
                    "none: at-least-once (flush at each checkpoint); "
                    "checkpoint: Kafka transactions committed when the "
                    "checkpoint completes (exactly-once for read_committed "
                    "readers except a crash between checkpoint completion "
                    "and commit, which loses that transaction)");
static const weir_param_def ksink_p_prefix =
    KSINK_PARAM(.name = "transactional_id_prefix", .type = WEIR_PARAM_STRING,
                .default_value = "weir",
                .description =
                    "commit=checkpoint: transactional.id is "
                    "<prefix>-<operator id>-<subtask>-<n>; unique per job");
static const weir_param_def ksink_p_pool =
    KSINK_PARAM(.name = "transaction_pool", .type = WEIR_PARAM_INT,
                .default_value = "3",
                .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX, .min = 2,
                .max = 64,
                .description =
                    "commit=checkpoint: transactional producers per subtask "
                    "(one open, the rest awaiting their checkpoint)");
static const weir_param_def ksink_p_timeout =
    KSINK_PARAM(.name = "flush_timeout", .type = WEIR_PARAM_DURATION,
                .default_value = "60s", .flags = WEIR_PARAM_HAS_MIN, .min = 1,
                .description = "longest wait for acknowledgements, a commit or "
                               "init_transactions before the subtask fails");
static const weir_param_def ksink_p_rdkafka =
    KSINK_PARAM(.name = "rdkafka", .type = WEIR_PARAM_ANY,
                .description =
                    "map of librdkafka producer properties "
                    "(rd_kafka_conf_set), checked at open; e.g. {acks: all}");

static const weir_param_def *const ksink_params[] = {
    &ksink_p_brokers,     &ksink_p_topic,
    &ksink_p_topic_field, &ksink_p_format,
    &ksink_p_commit,      &ksink_p_prefix,
    &ksink_p_pool,        &ksink_p_timeout,
    &ksink_p_rdkafka,     NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

enum { KSINK_FREE, KSINK_OPEN, KSINK_PENDING };

typedef struct ksink_slot {
    rd_kafka_t *rk;
    char tid[400];
    int state;
    uint64_t ckpt; /* KSINK_PENDING: pre-committed at this checkpoint */
} ksink_slot;

typedef struct ksink {
    const char *opname;
    uint32_t sub;
    char *topic, *topic_field;
    int json, transactional;
    int64_t timeout_ms;
    rd_kafka_t *rk; /* commit=none */
    ksink_slot *slots;
    uint32_t n_slots;
    int cur; /* slot of the open transaction, or -1 */
    uint64_t since_poll;
    char dr_error[512]; /* first failed delivery since the last check */
    uint64_t dr_failed;
    weir_mp_reader r;
    weir_metric *m_records, *m_bytes, *m_commits, *m_commit_s;
} ksink;

/* librdkafka's delivery report callback: runs inside rd_kafka_poll() or
 * rd_kafka_flush() on the subtask's thread. */
static void ksink_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ksink *s = opaque;
    if (!m->err)
        return;
    if (!s->dr_failed++)
        snprintf(s->dr_error, sizeof s->dr_error, "%s[%" PRId32 "]: %s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?", m->partition,
                 rd_kafka_err2str(m->err));
}

static int ksink_check_dr(weir_ctx *ctx, ksink *s)
{
    if (!s->dr_failed)
        return WEIR_OK;
    weir_set_error(ctx,
                   "%s: %" PRIu64 " message(s) were not delivered; first: "
                   "%s",
                   s->opname, s->dr_failed, s->dr_error);
    return WEIR_EIO;
}

static int ksink_txn_error(weir_ctx *ctx, ksink *s, const char *what,
                           const ksink_slot *slot, rd_kafka_error_t *e)
{
    weir_set_error(ctx, "%s: %s (transactional.id %s): %s", s->opname, what,
                   slot->tid, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return WEIR_EIO;
}

/* ------------------------------------------------------------------------ */
/* Producers                                                                 */
/* ------------------------------------------------------------------------ */

static int ksink_new_producer(weir_ctx *ctx, ksink *s, const char *tid,
                              rd_kafka_t **out)
{
    char err[512], tmo[32];
    snprintf(tmo, sizeof tmo, "%" PRId64, s->timeout_ms);
    const char *defaults[] = {"client.id", "weir-kafka-sink",
                              "message.timeout.ms", tmo, NULL};
    const char *forced_none[] = {"transactional.id", NULL, NULL};
    const char *forced_txn[] = {"transactional.id", tid, "enable.idempotence",
                                "true", NULL};
    rd_kafka_conf_t *conf;
    int rc = kc_conf_new(ctx, s->opname, defaults,
                         tid ? forced_txn : forced_none, &conf);
    if (rc < 0)
        return rc;
    rd_kafka_conf_set_dr_msg_cb(conf, ksink_dr);
    rd_kafka_conf_set_opaque(conf, s);
    if (!(*out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err))) {
        rd_kafka_conf_destroy(conf);
        weir_set_error(ctx, "%s: creating the producer failed: %s", s->opname,
                       err);
        return WEIR_EINVAL;
    }
    return WEIR_OK;
}

/* Creates slots [n_slots, n) and initialises their transactions (fencing
 * earlier producers with the same ids). */
static int ksink_grow(weir_ctx *ctx, ksink *s, uint32_t n)
{
    if (n <= s->n_slots)
        return WEIR_OK;
    ksink_slot *ns = realloc(s->slots, n * sizeof *ns);
    if (!ns)
        return weir_set_error(ctx, "%s: out of memory", s->opname), WEIR_ENOMEM;
    s->slots = ns;
    char prefix[200];
    const char *p;
    size_t pl;
    if (weir_param_string(ctx, "transactional_id_prefix", &p, &pl) < 0)
        p = "weir", pl = 4;
    snprintf(prefix, sizeof prefix, "%.*s", (int)pl, p);
    while (s->n_slots < n) {
        ksink_slot *slot = &s->slots[s->n_slots];
        memset(slot, 0, sizeof *slot);
        snprintf(slot->tid, sizeof slot->tid, "%s-%s-%u-%u", prefix,
                 weir_operator_id(ctx), s->sub, s->n_slots);
        int rc = ksink_new_producer(ctx, s, slot->tid, &slot->rk);
        if (rc < 0)
            return rc;
        s->n_slots++;
        rd_kafka_error_t *e =
            rd_kafka_init_transactions(slot->rk, (int)s->timeout_ms);
        if (e)
            return ksink_txn_error(ctx, s, "init_transactions", slot, e);
    }
    return WEIR_OK;
}

/* The producer for the next record: the open transaction, or a new one. */
static int ksink_producer(weir_ctx *ctx, ksink *s, rd_kafka_t **rk)
{
    if (!s->transactional) {
        *rk = s->rk;
        return WEIR_OK;
    }
    if (s->cur < 0) {
        for (uint32_t i = 0; i < s->n_slots && s->cur < 0; i++)
            if (s->slots[i].state == KSINK_FREE)
                s->cur = (int)i;
        if (s->cur < 0) {
            weir_set_error(ctx,
                           "%s: all %u transactional producers hold "
                           "transactions waiting for their checkpoint to "
                           "complete; checkpoints are not completing, or "
                           "transaction_pool is too small",
                           s->opname, s->n_slots);
            return WEIR_ESTATE;
        }
        ksink_slot *slot = &s->slots[s->cur];
        rd_kafka_error_t *e = rd_kafka_begin_transaction(slot->rk);
        if (e) {
            s->cur = -1;
            return ksink_txn_error(ctx, s, "begin_transaction", slot, e);
        }
        slot->state = KSINK_OPEN;
    }
    *rk = s->slots[s->cur].rk;
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Records                                                                   */
/* ------------------------------------------------------------------------ */

/* The payload of `rec` (json: a malloc'ed document in *owned). */
static int ksink_payload(weir_ctx *ctx, ksink *s, const weir_record *rec,
                         const msgpack_object *o, const void **p, size_t *n,
                         char **owned)
{
    *owned = NULL;
    if (!s->json) {
        *p = rec->value;
        *n = rec->value_len;
        return WEIR_OK;
    }
    json_t *j = kc_mp_to_json(o, 0);
    *owned = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!*owned)
        return weir_set_error(ctx,
                              "%s: the value does not convert to JSON "
                              "(nested deeper than %d levels, or out of "
                              "memory)",
                              s->opname, KC_MAX_DEPTH),
               WEIR_EINVAL;
    *p = *owned;
    *n = strlen(*owned);
    return WEIR_OK;
}

static int ksink_topic(weir_ctx *ctx, ksink *s, const msgpack_object *o,
                       char *buf, size_t size, const char **topic)
{
    if (!s->topic_field) {
        *topic = s->topic;
        return WEIR_OK;
    }
    const char *t;
    size_t tl;
    if (weir_mp_get_str(o, s->topic_field, &t, &tl) < 0 || tl == 0 ||
        tl >= size || memchr(t, 0, tl)) {
        weir_set_error(ctx,
                       "%s: topic_field: the value has no usable string "
                       "field '%s'",
                       s->opname, s->topic_field);
        return WEIR_EINVAL;
    }
    memcpy(buf, t, tl);
    buf[tl] = '\0';
    *topic = buf;
    return WEIR_OK;
}

static int ksink_produce(weir_ctx *ctx, ksink *s, rd_kafka_t *rk,
                         const char *topic, const weir_record *rec,
                         const void *p, size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_KEY(rec->key_len ? rec->key : NULL, rec->key_len),
            RD_KAFKA_V_VALUE((void *)p, n),
            RD_KAFKA_V_TIMESTAMP(rec->ts == WEIR_TS_NONE ? 0 : rec->ts),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!err)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            weir_set_error(ctx, "%s: producing to '%s' failed: %s", s->opname,
                           topic, rd_kafka_err2str(err));
            return WEIR_EIO;
        }
        rd_kafka_poll(rk, 10); /* back-pressure: wait for acknowledgements */
    }
    if (++s->since_poll >= KSINK_POLL_EVERY) {
        s->since_poll = 0;
        rd_kafka_poll(rk, 0);
    }
    weir_counter_add(ctx, s->m_records, 1);
    weir_counter_add(ctx, s->m_bytes, n);
    return ksink_check_dr(ctx, s);
}

static int ksink_process(weir_ctx *ctx, void *self, const weir_record *rec,
                         uint32_t port)
{
    (void)port;
    ksink *s = self;
    const msgpack_object *o = NULL;
    if (s->json || s->topic_field) {
        if (!mpscan_plausible(rec->value, rec->value_len) ||
            !(o = weir_mp_read(&s->r, rec->value, rec->value_len)))
            return weir_set_error(ctx,
                                  "%s: the record value is not one "
                                  "msgpack object",
                                  s->opname),
                   WEIR_EINVAL;
    }
    char tbuf[256], *owned;
    const char *topic;
    const void *p;
    size_t n;
    rd_kafka_t *rk;
    int rc;
    if ((rc = ksink_topic(ctx, s, o, tbuf, sizeof tbuf, &topic)) < 0 ||
        (rc = ksink_payload(ctx, s, rec, o, &p, &n, &owned)) < 0)
        return rc;
    if ((rc = ksink_producer(ctx, s, &rk)) == 0)
        rc = ksink_produce(ctx, s, rk, topic, rec, p, n);
    free(owned);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

static int ksink_flush(weir_ctx *ctx, ksink *s, rd_kafka_t *rk, uint64_t id)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(rk, (int)s->timeout_ms);
    if (err) {
        weir_set_error(ctx,
                       "%s: checkpoint %" PRIu64 ": messages not "
                       "acknowledged within flush_timeout: %s",
                       s->opname, id, rd_kafka_err2str(err));
        return WEIR_EIO;
    }
    return ksink_check_dr(ctx, s);
}

static int ksink_write_snapshot(weir_ctx *ctx, ksink *s, uint64_t id)
{
    unsigned char buf[8 + 64 * 12], *p = buf + 8;
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->n_slots && i < 64; i++)
        if (s->slots[i].state == KSINK_PENDING) {
            le_put_u64(p, s->slots[i].ckpt);
            le_put_u32(p + 8, i);
            p += 12;
            count++;
        }
    le_put_u32(buf, s->n_slots);
    le_put_u32(buf + 4, count);
    int rc = weir_snapshot_write(ctx, buf, (size_t)(p - buf));
    if (rc < 0)
        weir_set_error(ctx,
                       "%s: writing the snapshot of checkpoint %" PRIu64
                       " failed: %s",
                       s->opname, id, weir_strerror(rc));
    return rc;
}

static int ksink_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    ksink *s = self;
    if (!s->transactional)
        return ksink_flush(ctx, s, s->rk, checkpoint_id);
    if (s->cur >= 0) {
        ksink_slot *slot = &s->slots[s->cur];
        int rc = ksink_flush(ctx, s, slot->rk, checkpoint_id);
        if (rc < 0)
            return rc;
        slot->state = KSINK_PENDING;
        slot->ckpt = checkpoint_id;
        s->cur = -1;
    }
    return ksink_write_snapshot(ctx, s, checkpoint_id);
}

static double ksink_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int ksink_commit(weir_ctx *ctx, ksink *s, ksink_slot *slot)
{
    double t0 = ksink_mono_s();
    for (int tries = 1;; tries++) {
        rd_kafka_error_t *e =
            rd_kafka_commit_transaction(slot->rk, (int)s->timeout_ms);
        if (!e)
            break;
        if (rd_kafka_error_is_retriable(e) && tries < KSINK_COMMIT_TRIES) {
            rd_kafka_error_destroy(e);
            continue;
        }
        char what[96];
        snprintf(what, sizeof what,
                 "committing the transaction of checkpoint "
                 "%" PRIu64,
                 slot->ckpt);
        return ksink_txn_error(ctx, s, what, slot, e);
    }
    weir_histogram_observe(ctx, s->m_commit_s, ksink_mono_s() - t0);
    weir_counter_add(ctx, s->m_commits, 1);
    slot->state = KSINK_FREE;
    return WEIR_OK;
}

static int ksink_notify(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    ksink *s = self;
    if (!s->transactional)
        return WEIR_OK;
    for (;;) {
        ksink_slot *oldest = NULL;
        for (uint32_t i = 0; i < s->n_slots; i++)
            if (s->slots[i].state == KSINK_PENDING &&
                s->slots[i].ckpt <= checkpoint_id &&
                (!oldest || s->slots[i].ckpt < oldest->ckpt))
                oldest = &s->slots[i];
        if (!oldest)
            return WEIR_OK;
        int rc = ksink_commit(ctx, s, oldest);
        if (rc < 0)
            return rc;
    }
}

static int ksink_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                         uint32_t version, const void *data, size_t len)
{
    ksink *s = self;
    const unsigned char *p = data;
    if (!s->transactional)
        return WEIR_OK;
    if (version != KSINK_SNAPSHOT_VERSION || len < 8 ||
        len != 8 + 12 * (size_t)le_get_u32(p + 4)) {
        weir_set_error(ctx,
                       "%s: snapshot of checkpoint %" PRIu64 " is not a "
                       "version %u kafka_sink snapshot (version %u, %zu "
                       "bytes)",
                       s->opname, checkpoint_id, KSINK_SNAPSHOT_VERSION,
                       version, len);
        return WEIR_EINVAL;
    }
    /* A bigger pool of the checkpointed run: fence its ids too. */
    uint32_t pool = le_get_u32(p), count = le_get_u32(p + 4);
    int rc = ksink_grow(ctx, s, pool > 64 ? 64 : pool);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t ck = le_get_u64(p + 8 + 12 * i);
        uint32_t slot = le_get_u32(p + 16 + 12 * i);
        weir_log(ctx, WEIR_LOG_WARN,
                 "%s: the transaction of checkpoint %" PRIu64 " (%s) was "
                 "pending in restored checkpoint %" PRIu64 ": its records "
                 "are in the output only if the previous worker committed "
                 "it before it stopped; librdkafka cannot resume it, and "
                 "the fencing at open aborted it otherwise",
                 s->opname, ck, slot < s->n_slots ? s->slots[slot].tid : "?",
                 checkpoint_id);
    }
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void ksink_free(ksink *s)
{
    /* Undelivered messages of a failed run are produced again after the
     * restart (at-least-once); finish() flushed those of a finished one. */
    if (s->rk) {
        rd_kafka_purge(s->rk,
                       RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(s->rk);
    }
    for (uint32_t i = 0; i < s->n_slots; i++) {
        ksink_slot *slot = &s->slots[i];
        if (slot->state == KSINK_OPEN) {
            rd_kafka_error_t *e = rd_kafka_abort_transaction(slot->rk, 5000);
            if (e)
                rd_kafka_error_destroy(e);
        }
        rd_kafka_purge(slot->rk, RD_KAFKA_PURGE_F_QUEUE);
        rd_kafka_destroy(slot->rk);
    }
    free(s->slots);
    free(s->topic);
    free(s->topic_field);
    weir_mp_reader_destroy(&s->r);
    free(s);
}

static void ksink_metrics(weir_ctx *ctx, ksink *s)
{
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "kafka_sink_records_total", "records produced",
                             NULL, NULL, &s->m_records) < 0)
        s->m_records = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER, "kafka_sink_bytes_total",
                             "payload bytes produced", NULL, NULL,
                             &s->m_bytes) < 0)
        s->m_bytes = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "kafka_sink_transactions_committed_total",
                             "transactions committed (commit=checkpoint)", NULL,
                             NULL, &s->m_commits) < 0)
        s->m_commits = NULL;
    if (weir_metric_register(
            ctx, WEIR_METRIC_HISTOGRAM, "kafka_sink_commit_seconds",
            "duration of commit_transaction", NULL, NULL, &s->m_commit_s) < 0)
        s->m_commit_s = NULL;
}

static int ksink_configure(weir_ctx *ctx, ksink *s)
{
    const char *v;
    size_t n;
    int64_t pool;
    int rc;
    if ((rc = kc_param_str(ctx, s->opname, "topic", 1, &s->topic)) < 0 ||
        (rc = kc_param_str(ctx, s->opname, "topic_field", 1, &s->topic_field)) <
            0)
        return rc;
    if (!s->topic == !s->topic_field) {
        weir_set_error(ctx, "%s: set exactly one of topic and topic_field",
                       s->opname);
        return WEIR_EINVAL;
    }
    if (weir_param_string(ctx, "format", &v, &n) == 0)
        s->json = n == 4 && memcmp(v, "json", 4) == 0;
    if (weir_param_string(ctx, "commit", &v, &n) == 0)
        s->transactional = n == 10 && memcmp(v, "checkpoint", 10) == 0;
    if ((rc = weir_param_int(ctx, "flush_timeout", &s->timeout_ms)) < 0 ||
        (rc = weir_param_int(ctx, "transaction_pool", &pool)) < 0)
        return weir_set_error(ctx, "%s: parameters: %s", s->opname,
                              weir_strerror(rc)),
               rc;
    if (s->timeout_ms > INT32_MAX)
        s->timeout_ms = INT32_MAX;
    return s->transactional ? ksink_grow(ctx, s, (uint32_t)pool)
                            : ksink_new_producer(ctx, s, NULL, &s->rk);
}

static int ksink_open(weir_ctx *ctx, void **self)
{
    ksink *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "kafka_sink: out of memory"), WEIR_ENOMEM;
    s->opname = "kafka_sink";
    s->sub = weir_subtask_index(ctx);
    s->cur = -1;
    s->json = 1;
    weir_mp_reader_init(&s->r);
    ksink_metrics(ctx, s);
    int rc = ksink_configure(ctx, s);
    if (rc < 0) {
        ksink_free(s);
        return rc;
    }
    *self = s;
    return WEIR_OK;
}

static int ksink_finish(weir_ctx *ctx, void *self)
{
    ksink *s = self;
    /* commit=none: every record is acknowledged before the job ends; with
     * transactions the final checkpoint pre-commits and commits. */
    return s->transactional ? WEIR_OK : ksink_flush(ctx, s, s->rk, 0);
}

static void ksink_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    if (self)
        ksink_free(self);
}

static const char *const ksink_no_ports[] = {NULL};

const weir_operator kafka_sink_op = {
    .size = sizeof(weir_operator),
    .name = "kafka_sink",
    .version = "1.0.0",
    .description = "writes records to Kafka (librdkafka); commit=checkpoint "
                   "uses transactions committed at checkpoint completion "
                   "(a crash between completion and commit loses that "
                   "transaction: librdkafka cannot resume it)",
    .output_ports = ksink_no_ports,
    .params = ksink_params,
    .snapshot_version = KSINK_SNAPSHOT_VERSION,
    .open = ksink_open,
    .process = ksink_process,
    .snapshot = ksink_snapshot,
    .restore = ksink_restore,
    .notify_checkpoint_complete = ksink_notify,
    .finish = ksink_finish,
    .close = ksink_close,
};
