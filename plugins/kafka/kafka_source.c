/*
 * kafka_source.c - operator "kafka_source": reads Kafka topics with
 * librdkafka and emits one record per message.
 *
 * Partitions. `topics` is a list of topic names, or one string starting with
 * "^", a POSIX extended regular expression matched against every topic in
 * the cluster's metadata (librdkafka's own subscription regexes are close to
 * it). Partition p of every matched topic belongs to subtask p % parallelism:
 * the consumer assigns its partitions itself (rd_kafka_assign), it never
 * joins a group rebalance, so the assignment is the same on every run. With
 * discovery_interval > 0 the metadata is read again that often and new
 * partitions (and, with a regex, new topics) are added from their earliest
 * offset.
 *
 * Start position of a partition, in order: the offset of the restored
 * checkpoint; else `start`: committed (the group's committed offset, earliest
 * when the group has none), earliest, latest, or timestamp (the first
 * offset whose message timestamp is >= start_timestamp, ms). The positions
 * are resolved to offsets at open, so a snapshot always holds offsets.
 *
 * Record of a message: key = the message key, or with key_field the value
 * of that top-level field (a string, or a number as decimal text); ts = the
 * message timestamp, or with time_field that field (integer milliseconds);
 * value = with format=json the JSON object as a msgpack map (key order
 * kept), with format=msgpack the payload as it is (it must be one msgpack
 * object), with format=raw a msgpack map {"value": payload} (a string when
 * valid UTF-8, else bin). A message that does not convert is skipped and
 * logged as "kafka_source: TOPIC[P]@OFFSET: reason" (first 10 per subtask),
 * or fails the subtask with on_error=fail.
 *
 * Exactly-once: the per-partition offsets are the snapshot (version 1,
 * little endian: u32 parallelism, u32 count, then per partition u16 topic
 * length, topic bytes, i32 partition, i64 next offset). restore() starts
 * from them; a snapshot written with another parallelism is refused.
 * notify_checkpoint_complete(n) commits the offsets of checkpoint n to the
 * consumer group (rd_kafka_commit, asynchronous) so that lag tools see
 * them; the committed offsets are never read back except by start=committed.
 *
 * Bounded input: with stop=latest a subtask ends (WEIR_EOF) once every one
 * of its partitions reached the end offset it had when the subtask opened;
 * a subtask without partitions ends at once. stop=never runs until stopped.
 *
 * Watermarks: the SDK has no call for a source to emit a watermark, so the
 * host derives them from the event times the subtask emits (the largest
 * minus the operator's watermarks.out_of_orderness). Per-partition
 * watermarks are not combined: out_of_orderness must cover the skew between
 * the partitions of one subtask.
 *
 * Metrics: kafka_source_records_total, kafka_source_bytes_total (payload
 * bytes), kafka_source_bad_records_total, kafka_source_lag{partition=
 * "topic-p"} (high watermark minus position, from librdkafka's cached
 * watermarks), kafka_source_record_delay_seconds (histogram of processing
 * time minus message timestamp at emission).
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kcommon.h"
#include "mpscan.h"

#define KSRC_SNAPSHOT_VERSION 1
#define KSRC_MAX_BATCH        65536
#define KSRC_LOG_LIMIT        10
#define KSRC_WAIT_MS          2    /* longest wait for a message in poll */
#define KSRC_META_MS          5000 /* metadata and offset look-ups */
#define KSRC_KEEP_SNAPSHOTS   8    /* offsets kept for notify */
#define KSRC_WHY              320

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */
/* ------------------------------------------------------------------------ */

#define KSRC_PARAM(...)                                                        \
    {                                                                          \
        .size = sizeof(weir_param_def), __VA_ARGS__                            \
    }

static const weir_param_def ksrc_p_topics =
    KSRC_PARAM(.flags = WEIR_PARAM_REQUIRED, .name = "topics",
               .type = WEIR_PARAM_ANY,
               .description =
                   "a topic, a list of topics, or one regex starting with ^ "
                   "(POSIX extended) matched against the cluster's topics");
static const weir_param_def ksrc_p_brokers =
    KSRC_PARAM(.flags = WEIR_PARAM_REQUIRED, .name = "brokers",
               .type = WEIR_PARAM_STRING,
               .description = "bootstrap servers, host:port[,host:port...]");
static const weir_param_def ksrc_p_group =
    KSRC_PARAM(.name = "group_id", .type = WEIR_PARAM_STRING,
               .description =
                   "consumer group the checkpointed offsets are committed "
                   "to (no rebalance is joined); default weir-<operator id>");
static const char *const ksrc_start_choices[] = {"committed", "earliest",
                                                 "latest", "timestamp", NULL};
static const weir_param_def ksrc_p_start =
    KSRC_PARAM(.name = "start", .type = WEIR_PARAM_ENUM,
               .default_value = "committed", .choices = ksrc_start_choices,
               .description =
                   "where partitions start without a checkpoint: committed "
                   "(earliest when none), earliest, latest, timestamp");
static const weir_param_def ksrc_p_start_ts =
    KSRC_PARAM(.name = "start_timestamp", .type = WEIR_PARAM_INT,
               .description =
                   "start=timestamp: first message with timestamp >= this "
                   "(ms since the epoch)");
static const char *const ksrc_stop_choices[] = {"never", "latest", NULL};
static const weir_param_def ksrc_p_stop =
    KSRC_PARAM(.name = "stop", .type = WEIR_PARAM_ENUM,
               .default_value = "never", .choices = ksrc_stop_choices,
               .description =
                   "never (unbounded), or latest: end at the partitions' end "
                   "offsets of when the subtask opened (bounded job)");
static const weir_param_def ksrc_p_key_field =
    KSRC_PARAM(.name = "key_field", .type = WEIR_PARAM_STRING,
               .description =
                   "top-level field of the value that becomes the record key "
                   "(json, msgpack); unset = the message key");
static const weir_param_def ksrc_p_time_field =
    KSRC_PARAM(.name = "time_field", .type = WEIR_PARAM_STRING,
               .description =
                   "top-level field with the event time in integer ms; unset "
                   "= the message timestamp");
static const char *const ksrc_format_choices[] = {"json", "msgpack", "raw",
                                                  NULL};
static const weir_param_def ksrc_p_format =
    KSRC_PARAM(.name = "format", .type = WEIR_PARAM_ENUM,
               .default_value = "json", .choices = ksrc_format_choices,
               .description =
                   "payload: json (an object), msgpack (one object, passed "
                   "as is) or raw (becomes {\"value\": payload})");
static const char *const ksrc_on_error_choices[] = {"skip", "fail", NULL};
static const weir_param_def ksrc_p_on_error =
    KSRC_PARAM(.name = "on_error", .type = WEIR_PARAM_ENUM,
               .default_value = "skip", .choices = ksrc_on_error_choices,
               .description =
                   "a message that does not convert: skip (logged and "
                   "counted) or fail the job");
static const weir_param_def ksrc_p_discovery =
    KSRC_PARAM(.name = "discovery_interval", .type = WEIR_PARAM_DURATION,
               .default_value = "10s", .flags = WEIR_PARAM_HAS_MIN, .min = 0,
               .description =
                   "how often metadata is read for new partitions and "
                   "topics; 0 = never");
static const weir_param_def ksrc_p_batch =
    KSRC_PARAM(.name = "batch", .type = WEIR_PARAM_INT, .default_value = "1024",
               .flags = WEIR_PARAM_HAS_MIN | WEIR_PARAM_HAS_MAX, .min = 1,
               .max = KSRC_MAX_BATCH,
               .description = "messages emitted per poll at most");
static const weir_param_def ksrc_p_rate =
    KSRC_PARAM(.name = "rate", .type = WEIR_PARAM_INT, .default_value = "0",
               .flags = WEIR_PARAM_HAS_MIN, .min = 0,
               .description =
                   "messages per second over all subtasks (replays, tests); "
                   "0 = as fast as possible");
static const weir_param_def ksrc_p_rdkafka =
    KSRC_PARAM(.name = "rdkafka", .type = WEIR_PARAM_ANY,
               .description =
                   "map of librdkafka consumer properties (rd_kafka_conf_set), "
                   "checked at open; e.g. {security.protocol: ssl}");

static const weir_param_def *const ksrc_params[] = {
    &ksrc_p_topics,    &ksrc_p_brokers,    &ksrc_p_group,
    &ksrc_p_start,     &ksrc_p_start_ts,   &ksrc_p_stop,
    &ksrc_p_key_field, &ksrc_p_time_field, &ksrc_p_format,
    &ksrc_p_on_error,  &ksrc_p_discovery,  &ksrc_p_batch,
    &ksrc_p_rate,      &ksrc_p_rdkafka,    NULL};

/* ------------------------------------------------------------------------ */
/* Instance                                                                  */
/* ------------------------------------------------------------------------ */

enum { KSRC_JSON, KSRC_MSGPACK, KSRC_RAW };
enum { KSRC_COMMITTED, KSRC_EARLIEST, KSRC_LATEST, KSRC_TIMESTAMP };

typedef struct ksrc_part {
    char *topic;
    int32_t partition;
    int64_t pos; /* next offset to emit */
    int64_t end; /* stop=latest: end offset at open, else -1 */
    weir_metric *lag;
} ksrc_part;

typedef struct ksrc_saved {
    uint64_t id; /* checkpoint, 0 = free */
    rd_kafka_topic_partition_list_t *offsets;
} ksrc_saved;

typedef struct ksrc {
    const char *opname;
    uint32_t sub, par;
    rd_kafka_t *rk;
    char **topics; /* names, or NULL with a regex */
    size_t n_topics;
    regex_t re;
    int has_re;
    int start, format, bounded, fail_on_error;
    int64_t start_ts;
    char *key_field, *time_field;
    int64_t discovery_ms, next_discovery;
    uint32_t batch;
    int64_t rate, t0;
    uint64_t paced;
    ksrc_part *parts;
    size_t n_parts, cap_parts, last_hit;
    ksrc_saved saved[KSRC_KEEP_SNAPSHOTS];
    uint64_t bad, records;
    int restored, eof;
    weir_mp_writer w;
    weir_mp_reader r;
    weir_metric *m_records, *m_bytes, *m_bad, *m_delay;
    char keybuf[40];
} ksrc;

/* ------------------------------------------------------------------------ */
/* Partitions                                                                */
/* ------------------------------------------------------------------------ */

static ksrc_part *ksrc_find(ksrc *s, const char *topic, int32_t partition)
{
    if (s->last_hit < s->n_parts) {
        ksrc_part *p = &s->parts[s->last_hit];
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].partition == partition &&
            strcmp(s->parts[i].topic, topic) == 0) {
            s->last_hit = i;
            return &s->parts[i];
        }
    return NULL;
}

static int ksrc_wants_topic(const ksrc *s, const char *topic)
{
    if (s->has_re)
        return regexec(&s->re, topic, 0, NULL, 0) == 0;
    for (size_t i = 0; i < s->n_topics; i++)
        if (strcmp(s->topics[i], topic) == 0)
            return 1;
    return 0;
}

static void ksrc_lag_metric(weir_ctx *ctx, ksrc_part *p)
{
    char label[300];
    snprintf(label, sizeof label, "%s-%" PRId32, p->topic, p->partition);
    if (weir_metric_register(ctx, WEIR_METRIC_GAUGE, "kafka_source_lag",
                             "messages between the position and the high "
                             "watermark",
                             "partition", label, &p->lag) < 0)
        p->lag = NULL;
}

/* Adds partition (topic, partition) with position -1 (resolved later). */
static int ksrc_add_part(weir_ctx *ctx, ksrc *s, const char *topic,
                         int32_t partition)
{
    if (s->n_parts == s->cap_parts) {
        size_t cap = s->cap_parts ? 2 * s->cap_parts : 16;
        ksrc_part *np = realloc(s->parts, cap * sizeof *np);
        if (!np)
            return weir_set_error(ctx, "%s: out of memory", s->opname),
                   WEIR_ENOMEM;
        s->parts = np;
        s->cap_parts = cap;
    }
    ksrc_part *p = &s->parts[s->n_parts];
    memset(p, 0, sizeof *p);
    if (!(p->topic = strdup(topic)))
        return weir_set_error(ctx, "%s: out of memory", s->opname), WEIR_ENOMEM;
    p->partition = partition;
    p->pos = -1;
    p->end = -1;
    s->n_parts++;
    ksrc_lag_metric(ctx, p);
    return WEIR_OK;
}

/* Reads the metadata and adds this subtask's partitions not yet known,
 * starting at *first (their index in s->parts). A listed topic missing from
 * the cluster is an error at open (`strict`), later it is looked for again. */
static int ksrc_discover(weir_ctx *ctx, ksrc *s, int strict)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(s->rk, 1, NULL, &md, KSRC_META_MS);
    if (err) {
        if (!strict) {
            weir_log(ctx, WEIR_LOG_WARN,
                     "%s: reading metadata for partition discovery failed: "
                     "%s",
                     s->opname, rd_kafka_err2str(err));
            return WEIR_OK;
        }
        weir_set_error(ctx, "%s: reading the cluster's metadata failed: %s",
                       s->opname, rd_kafka_err2str(err));
        return WEIR_EIO;
    }
    int rc = WEIR_OK;
    for (size_t i = 0; strict && !s->has_re && i < s->n_topics; i++) {
        int found = 0;
        for (int t = 0; t < md->topic_cnt; t++)
            if (strcmp(md->topics[t].topic, s->topics[i]) == 0 &&
                !md->topics[t].err)
                found = 1;
        if (!found) {
            weir_set_error(ctx, "%s: topics: topic '%s' does not exist",
                           s->opname, s->topics[i]);
            rc = WEIR_ENOTFOUND;
            goto out;
        }
    }
    for (int t = 0; t < md->topic_cnt; t++) {
        const struct rd_kafka_metadata_topic *mt = &md->topics[t];
        if (mt->err || !ksrc_wants_topic(s, mt->topic))
            continue;
        for (int q = 0; q < mt->partition_cnt; q++) {
            int32_t p = mt->partitions[q].id;
            if ((uint32_t)p % s->par != s->sub || ksrc_find(s, mt->topic, p))
                continue;
            if ((rc = ksrc_add_part(ctx, s, mt->topic, p)) < 0)
                goto out;
        }
    }
out:
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* Resolves the start offset of parts[from..] without one: `how` is a
 * KSRC_* start rule. */
static int ksrc_resolve(weir_ctx *ctx, ksrc *s, size_t from, int how)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)(s->n_parts - from) + 1);
    for (size_t i = from; i < s->n_parts; i++)
        if (s->parts[i].pos < 0)
            rd_kafka_topic_partition_list_add(l, s->parts[i].topic,
                                              s->parts[i].partition)
                ->offset = how == KSRC_TIMESTAMP ? s->start_ts : -1;
    rd_kafka_resp_err_t err = 0;
    if (how == KSRC_COMMITTED)
        err = rd_kafka_committed(s->rk, l, KSRC_META_MS);
    else if (how == KSRC_TIMESTAMP)
        err = rd_kafka_offsets_for_times(s->rk, l, KSRC_META_MS);
    int rc = WEIR_OK;
    for (int i = 0; !err && i < l->cnt; i++) {
        rd_kafka_topic_partition_t *e = &l->elems[i];
        int64_t lo, hi;
        if (e->err) {
            err = e->err;
            break;
        }
        if (how == KSRC_COMMITTED && e->offset >= 0)
            goto set;
        if (how == KSRC_TIMESTAMP && e->offset >= 0)
            goto set;
        err = rd_kafka_query_watermark_offsets(s->rk, e->topic, e->partition,
                                               &lo, &hi, KSRC_META_MS);
        /* committed without a commit -> earliest; timestamp past the end
         * -> latest. */
        e->offset = how == KSRC_LATEST || how == KSRC_TIMESTAMP ? hi : lo;
    set:
        ksrc_find(s, e->topic, e->partition)->pos = e->offset;
    }
    if (err) {
        weir_set_error(
            ctx, "%s: looking up start offsets (start=%s) failed: %s",
            s->opname, ksrc_start_choices[how], rd_kafka_err2str(err));
        rc = WEIR_EIO;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* The end offsets of stop=latest, for every partition. */
static int ksrc_ends(weir_ctx *ctx, ksrc *s)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            s->rk, s->parts[i].topic, s->parts[i].partition, &lo, &hi,
            KSRC_META_MS);
        if (err) {
            weir_set_error(ctx, "%s: %s[%" PRId32 "]: end offset: %s",
                           s->opname, s->parts[i].topic, s->parts[i].partition,
                           rd_kafka_err2str(err));
            return WEIR_EIO;
        }
        s->parts[i].end = hi;
    }
    return WEIR_OK;
}

/* Assigns parts[from..] at their positions (incrementally). */
static int ksrc_assign(weir_ctx *ctx, ksrc *s, size_t from)
{
    if (from >= s->n_parts)
        return WEIR_OK;
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new((int)(s->n_parts - from));
    for (size_t i = from; i < s->n_parts; i++)
        rd_kafka_topic_partition_list_add(l, s->parts[i].topic,
                                          s->parts[i].partition)
            ->offset = s->parts[i].pos;
    rd_kafka_error_t *e = rd_kafka_incremental_assign(s->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        weir_set_error(ctx, "%s: assigning partitions failed: %s", s->opname,
                       rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return WEIR_EIO;
    }
    return WEIR_OK;
}

/* Drops the assignment and assigns every partition again at its position
 * (after restore() changed positions). */
static int ksrc_reassign(weir_ctx *ctx, ksrc *s)
{
    rd_kafka_resp_err_t err = rd_kafka_assign(s->rk, NULL);
    if (err) {
        weir_set_error(ctx, "%s: unassigning partitions failed: %s", s->opname,
                       rd_kafka_err2str(err));
        return WEIR_EIO;
    }
    return ksrc_assign(ctx, s, 0);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */
/* ------------------------------------------------------------------------ */

static int ksrc_bad(weir_ctx *ctx, ksrc *s, const rd_kafka_message_t *m,
                    const char *why)
{
    s->bad++;
    weir_counter_add(ctx, s->m_bad, 1);
    const char *topic = rd_kafka_topic_name(m->rkt);
    if (s->fail_on_error) {
        weir_set_error(ctx, "%s: %s[%" PRId32 "]@%" PRId64 ": %s", s->opname,
                       topic, m->partition, m->offset, why);
        return WEIR_EINVAL;
    }
    if (s->bad <= KSRC_LOG_LIMIT)
        weir_log(ctx, WEIR_LOG_WARN,
                 "%s: %s[%" PRId32 "]@%" PRId64 ": %s; message skipped%s",
                 s->opname, topic, m->partition, m->offset, why,
                 s->bad == KSRC_LOG_LIMIT
                     ? " (further bad messages are counted, not logged)"
                     : "");
    return WEIR_OK;
}

static int ksrc_utf8_valid(const unsigned char *p, size_t n)
{
    json_t *j = json_stringn((const char *)p, n);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

/* Converts the payload into s->w (or points *val at it). */
static int ksrc_value(ksrc *s, const rd_kafka_message_t *m, const void **val,
                      size_t *len, char *why)
{
    json_error_t jerr;
    weir_mp_writer_reset(&s->w);
    if (s->format == KSRC_MSGPACK) {
        if (!mpscan_plausible(m->payload, m->len)) {
            snprintf(why, KSRC_WHY, "the payload is not one msgpack object");
            return -1;
        }
        *val = m->payload;
        *len = m->len;
        return 0;
    }
    if (s->format == KSRC_RAW) {
        msgpack_pack_map(&s->w.pk, 1);
        weir_mp_pack_str(&s->w.pk, "value");
        if (ksrc_utf8_valid(m->payload, m->len))
            weir_mp_pack_strn(&s->w.pk, m->payload, m->len);
        else {
            msgpack_pack_bin(&s->w.pk, m->len);
            msgpack_pack_bin_body(&s->w.pk, m->payload, m->len);
        }
    } else {
        json_t *obj = json_loadb(m->payload ? m->payload : "", m->len,
                                 JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!obj) {
            snprintf(why, KSRC_WHY, "invalid JSON at column %d: %s",
                     jerr.column, jerr.text);
            return -1;
        }
        int rc = json_is_object(obj) ? jrec_pack_json(&s->w.pk, obj, 0) : 1;
        json_decref(obj);
        if (rc) {
            snprintf(why, KSRC_WHY, "%s",
                     rc == 1 ? "the payload is not a JSON object"
                             : "nested too deeply");
            return -1;
        }
    }
    *val = s->w.buf.data;
    *len = s->w.buf.size;
    return 0;
}

/* Key and event time from the value's fields, where configured. */
static int ksrc_fields(ksrc *s, const void *val, size_t len, const void **key,
                       size_t *key_len, int64_t *ts, char *why)
{
    const msgpack_object *o = weir_mp_read(&s->r, val, len);
    if (s->key_field) {
        const msgpack_object *k = weir_mp_find(o, s->key_field);
        const char *p;
        if (!k ||
            kc_field_text(k, s->keybuf, sizeof s->keybuf, &p, key_len) < 0) {
            snprintf(why, KSRC_WHY, "%s key field '%s'",
                     k ? "unusable (not a string or number)" : "no",
                     s->key_field);
            return -1;
        }
        *key = p;
    }
    if (s->time_field) {
        int rc = weir_mp_get_int(o, s->time_field, ts);
        if (rc < 0 || *ts == WEIR_TS_NONE) {
            snprintf(why, KSRC_WHY, "%s time field '%s'",
                     rc == WEIR_ENOTFOUND ? "no" : "non-integer (expected ms)",
                     s->time_field);
            return -1;
        }
    }
    return 0;
}

static int ksrc_message(weir_ctx *ctx, ksrc *s, const rd_kafka_message_t *m)
{
    char why[KSRC_WHY];
    ksrc_part *p = ksrc_find(s, rd_kafka_topic_name(m->rkt), m->partition);
    if (!p || m->offset < p->pos)
        return WEIR_OK; /* not ours, or fetched before a restore */
    p->pos = m->offset + 1;
    const void *key = m->key, *val;
    size_t key_len = m->key_len, len;
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    if (ts < 0)
        ts = WEIR_TS_NONE;
    if (ksrc_value(s, m, &val, &len, why) < 0 ||
        ((s->key_field || s->time_field) &&
         ksrc_fields(s, val, len, &key, &key_len, &ts, why) < 0))
        return ksrc_bad(ctx, s, m, why);
    int rc = weir_emit(ctx, 0, key, key_len, ts, val, len);
    if (rc < 0) {
        weir_set_error(ctx, "%s: emit failed: %s", s->opname,
                       weir_strerror(rc));
        return rc;
    }
    s->records++;
    weir_counter_add(ctx, s->m_records, 1);
    weir_counter_add(ctx, s->m_bytes, m->len);
    if (ts != WEIR_TS_NONE && !s->time_field)
        weir_histogram_observe(ctx, s->m_delay,
                               (double)(weir_now(ctx) - ts) / 1000.0);
    return WEIR_OK;
}

/* A consumer event that is not a message. */
static int ksrc_event(weir_ctx *ctx, ksrc *s, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        ksrc_part *p =
            m->rkt ? ksrc_find(s, rd_kafka_topic_name(m->rkt), m->partition)
                   : NULL;
        /* With read_committed the end can be a control record. */
        if (p && p->end >= 0 && m->offset >= p->end && p->pos < p->end)
            p->pos = m->offset;
        return WEIR_OK;
    }
    char errstr[512];
    if (rd_kafka_fatal_error(s->rk, errstr, sizeof errstr)) {
        weir_set_error(ctx, "%s: fatal consumer error: %s", s->opname, errstr);
        return WEIR_EIO;
    }
    weir_log(ctx, WEIR_LOG_WARN, "%s: consumer: %s", s->opname,
             rd_kafka_message_errstr(m));
    return WEIR_OK;
}

static int ksrc_all_done(const ksrc *s)
{
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].pos < s->parts[i].end)
            return 0;
    return 1;
}

static void ksrc_update_lag(weir_ctx *ctx, ksrc *s)
{
    for (size_t i = 0; i < s->n_parts; i++) {
        int64_t lo, hi;
        ksrc_part *p = &s->parts[i];
        if (p->lag &&
            rd_kafka_get_watermark_offsets(s->rk, p->topic, p->partition, &lo,
                                           &hi) == 0 &&
            hi >= 0)
            weir_gauge_set(ctx, p->lag,
                           (double)(hi > p->pos ? hi - p->pos : 0));
    }
}

/* How many messages this poll may emit (rate limit), 0 = none now. */
static uint64_t ksrc_allowed(weir_ctx *ctx, ksrc *s)
{
    if (!s->rate)
        return s->batch;
    int64_t now = weir_now(ctx);
    if (!s->t0)
        s->t0 = now;
    double allowed =
        (double)(now - s->t0) * (double)s->rate / (1000.0 * (double)s->par) -
        (double)s->paced;
    if (allowed < 1)
        return 0;
    return allowed < (double)s->batch ? (uint64_t)allowed : s->batch;
}

static int ksrc_poll(weir_ctx *ctx, void *self)
{
    ksrc *s = self;
    int rc;
    if (s->eof)
        return WEIR_EOF;
    if (s->bounded && ksrc_all_done(s)) {
        s->eof = 1;
        return WEIR_EOF;
    }
    int64_t now = weir_now(ctx);
    if (!s->bounded && s->discovery_ms > 0 && now >= s->next_discovery) {
        size_t from = s->n_parts;
        s->next_discovery = now + s->discovery_ms;
        if ((rc = ksrc_discover(ctx, s, 0)) < 0 ||
            (rc = ksrc_resolve(ctx, s, from, KSRC_EARLIEST)) < 0 ||
            (rc = ksrc_assign(ctx, s, from)) < 0)
            return rc;
        if (s->n_parts > from)
            weir_log(ctx, WEIR_LOG_INFO, "%s: subtask %u: %zu new partition(s)",
                     s->opname, s->sub, s->n_parts - from);
        ksrc_update_lag(ctx, s);
    }
    uint64_t want = ksrc_allowed(ctx, s), got = 0;
    if (want == 0 || s->n_parts == 0)
        return WEIR_EAGAIN;
    while (got < want) {
        rd_kafka_message_t *m =
            rd_kafka_consumer_poll(s->rk, got ? 0 : KSRC_WAIT_MS);
        if (!m)
            break;
        rc = m->err ? ksrc_event(ctx, s, m) : ksrc_message(ctx, s, m);
        if (!m->err) {
            got++;
            s->paced++;
        }
        rd_kafka_message_destroy(m);
        if (rc < 0)
            return rc;
    }
    return got ? WEIR_OK : WEIR_EAGAIN;
}

/* ------------------------------------------------------------------------ */
/* Snapshot, restore, commit                                                 */
/* ------------------------------------------------------------------------ */

/* Keeps the offsets of checkpoint `id` for notify (the oldest is dropped). */
static void ksrc_keep(ksrc *s, uint64_t id)
{
    size_t slot = 0;
    for (size_t i = 0; i < KSRC_KEEP_SNAPSHOTS; i++)
        if (s->saved[i].id < s->saved[slot].id)
            slot = i;
    ksrc_saved *k = &s->saved[slot];
    if (k->offsets)
        rd_kafka_topic_partition_list_destroy(k->offsets);
    k->offsets = rd_kafka_topic_partition_list_new((int)s->n_parts + 1);
    for (size_t i = 0; i < s->n_parts; i++)
        if (s->parts[i].pos >= 0)
            rd_kafka_topic_partition_list_add(k->offsets, s->parts[i].topic,
                                              s->parts[i].partition)
                ->offset = s->parts[i].pos;
    k->id = id;
}

static int ksrc_snapshot(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    ksrc *s = self;
    size_t len = 8;
    for (size_t i = 0; i < s->n_parts; i++)
        len += 2 + strlen(s->parts[i].topic) + 4 + 8;
    unsigned char *buf = malloc(len), *p = buf;
    if (!buf)
        return weir_set_error(ctx, "%s: out of memory", s->opname), WEIR_ENOMEM;
    le_put_u32(p, s->par);
    le_put_u32(p + 4, (uint32_t)s->n_parts);
    p += 8;
    for (size_t i = 0; i < s->n_parts; i++) {
        size_t tl = strlen(s->parts[i].topic);
        p[0] = (unsigned char)tl;
        p[1] = (unsigned char)(tl >> 8);
        memcpy(p + 2, s->parts[i].topic, tl);
        p += 2 + tl;
        le_put_u32(p, (uint32_t)s->parts[i].partition);
        le_put_u64(p + 4, (uint64_t)s->parts[i].pos);
        p += 12;
    }
    int rc = weir_snapshot_write(ctx, buf, len);
    free(buf);
    if (rc < 0)
        return weir_set_error(ctx,
                              "%s: writing the snapshot of checkpoint "
                              "%" PRIu64 " failed: %s",
                              s->opname, checkpoint_id, weir_strerror(rc)),
               rc;
    ksrc_keep(s, checkpoint_id);
    return WEIR_OK;
}

static int ksrc_damaged(weir_ctx *ctx, ksrc *s, uint64_t id, const char *why)
{
    weir_set_error(ctx, "%s: snapshot of checkpoint %" PRIu64 " is damaged: %s",
                   s->opname, id, why);
    return WEIR_EINVAL;
}

static int ksrc_restore(weir_ctx *ctx, void *self, uint64_t checkpoint_id,
                        uint32_t version, const void *data, size_t len)
{
    ksrc *s = self;
    const unsigned char *p = data, *end = p + len;
    if (version != KSRC_SNAPSHOT_VERSION) {
        weir_set_error(ctx,
                       "%s: snapshot of checkpoint %" PRIu64 " has version %u; "
                       "this plugin reads version %u",
                       s->opname, checkpoint_id, version,
                       KSRC_SNAPSHOT_VERSION);
        return WEIR_EINVAL;
    }
    if (len < 8)
        return ksrc_damaged(ctx, s, checkpoint_id, "shorter than its header");
    uint32_t par = le_get_u32(p), n = le_get_u32(p + 4);
    if (par != s->par) {
        weir_set_error(ctx,
                       "%s: checkpoint %" PRIu64 " was taken with parallelism "
                       "%u, the job has %u; a kafka_source cannot change its "
                       "parallelism across a restore",
                       s->opname, checkpoint_id, par, s->par);
        return WEIR_EINVAL;
    }
    p += 8;
    for (uint32_t i = 0; i < n; i++) {
        char topic[512];
        if (end - p < 2)
            return ksrc_damaged(ctx, s, checkpoint_id, "truncated");
        size_t tl = p[0] | (size_t)p[1] << 8;
        if (tl >= sizeof topic || (size_t)(end - p) < 2 + tl + 12)
            return ksrc_damaged(ctx, s, checkpoint_id, "truncated");
        memcpy(topic, p + 2, tl);
        topic[tl] = '\0';
        p += 2 + tl;
        int32_t part = (int32_t)le_get_u32(p);
        int64_t pos = (int64_t)le_get_u64(p + 4);
        p += 12;
        ksrc_part *kp = ksrc_find(s, topic, part);
        if (!kp) {
            int rc = ksrc_add_part(ctx, s, topic, part);
            if (rc < 0)
                return rc;
            kp = &s->parts[s->n_parts - 1];
            if (s->bounded)
                kp->end = pos; /* vanished since: nothing more to read */
        }
        kp->pos = pos;
    }
    if (p != end)
        return ksrc_damaged(ctx, s, checkpoint_id, "trailing bytes");
    s->restored = 1;
    return ksrc_reassign(ctx, s);
}

static int ksrc_notify(weir_ctx *ctx, void *self, uint64_t checkpoint_id)
{
    ksrc *s = self;
    ksrc_saved *best = NULL;
    for (size_t i = 0; i < KSRC_KEEP_SNAPSHOTS; i++)
        if (s->saved[i].id && s->saved[i].id <= checkpoint_id &&
            (!best || s->saved[i].id > best->id))
            best = &s->saved[i];
    if (!best || best->offsets->cnt == 0)
        return WEIR_OK;
    rd_kafka_resp_err_t err = rd_kafka_commit(s->rk, best->offsets, 1);
    if (err)
        weir_log(ctx, WEIR_LOG_WARN,
                 "%s: committing the offsets of checkpoint %" PRIu64
                 " to the group failed: %s (the checkpoint holds them)",
                 s->opname, best->id, rd_kafka_err2str(err));
    /* Older snapshots are covered by this one. */
    for (size_t i = 0; i < KSRC_KEEP_SNAPSHOTS; i++)
        if (s->saved[i].id && s->saved[i].id <= best->id &&
            &s->saved[i] != best)
            s->saved[i].id = 0;
    ksrc_update_lag(ctx, s);
    return WEIR_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                            */
/* ------------------------------------------------------------------------ */

static void ksrc_free(ksrc *s)
{
    if (s->rk) {
        rd_kafka_consumer_close(s->rk);
        rd_kafka_destroy(s->rk);
    }
    for (size_t i = 0; i < s->n_parts; i++)
        free(s->parts[i].topic);
    free(s->parts);
    for (size_t i = 0; i < s->n_topics; i++)
        free(s->topics[i]);
    free(s->topics);
    for (size_t i = 0; i < KSRC_KEEP_SNAPSHOTS; i++)
        if (s->saved[i].offsets)
            rd_kafka_topic_partition_list_destroy(s->saved[i].offsets);
    if (s->has_re)
        regfree(&s->re);
    free(s->key_field);
    free(s->time_field);
    weir_mp_writer_destroy(&s->w);
    weir_mp_reader_destroy(&s->r);
    free(s);
}

static int ksrc_add_topic(weir_ctx *ctx, ksrc *s, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 ||
        memchr(o->via.str.ptr, 0, o->via.str.size)) {
        weir_set_error(ctx, "%s: topics: expected topic names (strings)",
                       s->opname);
        return WEIR_EINVAL;
    }
    char *t = strndup(o->via.str.ptr, o->via.str.size);
    char **nt = t ? realloc(s->topics, (s->n_topics + 1) * sizeof *nt) : NULL;
    if (!nt) {
        free(t);
        return weir_set_error(ctx, "%s: out of memory", s->opname), WEIR_ENOMEM;
    }
    s->topics = nt;
    s->topics[s->n_topics++] = t;
    return WEIR_OK;
}

static int ksrc_topics(weir_ctx *ctx, ksrc *s)
{
    const void *mp;
    size_t len;
    int rc = weir_param_msgpack(ctx, "topics", &mp, &len);
    if (rc < 0)
        return weir_set_error(ctx, "%s: parameter topics: %s", s->opname,
                              weir_strerror(rc)),
               rc;
    const msgpack_object *o = weir_mp_read(&s->r, mp, len);
    if (o && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0) {
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if ((rc = ksrc_add_topic(ctx, s, &o->via.array.ptr[i])) < 0)
                return rc;
        return WEIR_OK;
    }
    if (!o || (rc = ksrc_add_topic(ctx, s, o)) < 0) {
        if (o)
            return rc;
        weir_set_error(ctx,
                       "%s: topics: expected a topic, a list of topics "
                       "or a regex starting with ^",
                       s->opname);
        return WEIR_EINVAL;
    }
    if (s->topics[0][0] != '^')
        return WEIR_OK;
    if ((rc = regcomp(&s->re, s->topics[0], REG_EXTENDED | REG_NOSUB)) != 0) {
        char why[256];
        regerror(rc, &s->re, why, sizeof why);
        weir_set_error(ctx, "%s: topics: bad regex '%s': %s", s->opname,
                       s->topics[0], why);
        return WEIR_EINVAL;
    }
    s->has_re = 1;
    return WEIR_OK;
}

static int ksrc_enum(weir_ctx *ctx, ksrc *s, const char *name,
                     const char *const *choices, int *out)
{
    const char *v;
    size_t n;
    int rc = weir_param_string(ctx, name, &v, &n);
    if (rc < 0)
        return weir_set_error(ctx, "%s: parameter %s: %s", s->opname, name,
                              weir_strerror(rc)),
               rc;
    for (int i = 0; choices[i]; i++)
        if (strlen(choices[i]) == n && memcmp(choices[i], v, n) == 0) {
            *out = i;
            return WEIR_OK;
        }
    weir_set_error(ctx, "%s: parameter %s: unknown value '%.*s'", s->opname,
                   name, (int)n, v);
    return WEIR_EINVAL;
}

static int ksrc_configure(weir_ctx *ctx, ksrc *s)
{
    int rc, stop, onerr;
    int64_t batch;
    if ((rc = ksrc_topics(ctx, s)) < 0 ||
        (rc = ksrc_enum(ctx, s, "start", ksrc_start_choices, &s->start)) < 0 ||
        (rc = ksrc_enum(ctx, s, "stop", ksrc_stop_choices, &stop)) < 0 ||
        (rc = ksrc_enum(ctx, s, "format", ksrc_format_choices, &s->format)) <
            0 ||
        (rc = ksrc_enum(ctx, s, "on_error", ksrc_on_error_choices, &onerr)) <
            0 ||
        (rc = kc_param_str(ctx, s->opname, "key_field", 1, &s->key_field)) <
            0 ||
        (rc = kc_param_str(ctx, s->opname, "time_field", 1, &s->time_field)) <
            0)
        return rc;
    s->bounded = stop == 1;
    s->fail_on_error = onerr == 1;
    if (s->format == KSRC_RAW && (s->key_field || s->time_field)) {
        weir_set_error(ctx,
                       "%s: key_field and time_field need format json or "
                       "msgpack",
                       s->opname);
        return WEIR_EINVAL;
    }
    if (s->start == KSRC_TIMESTAMP &&
        weir_param_int(ctx, "start_timestamp", &s->start_ts) < 0) {
        weir_set_error(ctx, "%s: start=timestamp needs start_timestamp",
                       s->opname);
        return WEIR_EINVAL;
    }
    if ((rc = weir_param_int(ctx, "discovery_interval", &s->discovery_ms)) <
            0 ||
        (rc = weir_param_int(ctx, "batch", &batch)) < 0 ||
        (rc = weir_param_int(ctx, "rate", &s->rate)) < 0)
        return weir_set_error(ctx, "%s: parameters: %s", s->opname,
                              weir_strerror(rc)),
               rc;
    s->batch = (uint32_t)batch;
    return WEIR_OK;
}

static int ksrc_connect(weir_ctx *ctx, ksrc *s)
{
    char group[300], err[512];
    const char *g;
    size_t gl;
    if (weir_param_string(ctx, "group_id", &g, &gl) == 0)
        snprintf(group, sizeof group, "%.*s", (int)gl, g);
    else
        snprintf(group, sizeof group, "weir-%s", weir_operator_id(ctx));
    const char *defaults[] = {"isolation.level", "read_committed", "client.id",
                              "weir-kafka-source", NULL};
    const char *forced[] = {"group.id",
                            group,
                            "enable.auto.commit",
                            "false",
                            "enable.auto.offset.store",
                            "false",
                            "enable.partition.eof",
                            "true",
                            NULL};
    rd_kafka_conf_t *conf;
    int rc = kc_conf_new(ctx, s->opname, defaults, forced, &conf);
    if (rc < 0)
        return rc;
    if (!(s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err))) {
        rd_kafka_conf_destroy(conf);
        weir_set_error(ctx, "%s: creating the consumer failed: %s", s->opname,
                       err);
        return WEIR_EINVAL;
    }
    rd_kafka_poll_set_consumer(s->rk);
    return WEIR_OK;
}

static void ksrc_metrics(weir_ctx *ctx, ksrc *s)
{
    if (weir_metric_register(
            ctx, WEIR_METRIC_COUNTER, "kafka_source_records_total",
            "messages emitted as records", NULL, NULL, &s->m_records) < 0)
        s->m_records = NULL;
    if (weir_metric_register(
            ctx, WEIR_METRIC_COUNTER, "kafka_source_bytes_total",
            "payload bytes of the messages read", NULL, NULL, &s->m_bytes) < 0)
        s->m_bytes = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_COUNTER,
                             "kafka_source_bad_records_total",
                             "messages skipped because they do not convert",
                             NULL, NULL, &s->m_bad) < 0)
        s->m_bad = NULL;
    if (weir_metric_register(ctx, WEIR_METRIC_HISTOGRAM,
                             "kafka_source_record_delay_seconds",
                             "processing time minus message timestamp when "
                             "the record is emitted",
                             NULL, NULL, &s->m_delay) < 0)
        s->m_delay = NULL;
}

static int ksrc_open(weir_ctx *ctx, void **self)
{
    ksrc *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "kafka_source: out of memory"), WEIR_ENOMEM;
    s->opname = "kafka_source";
    s->sub = weir_subtask_index(ctx);
    s->par = weir_parallelism(ctx);
    weir_mp_writer_init(&s->w);
    weir_mp_reader_init(&s->r);
    ksrc_metrics(ctx, s);
    int rc;
    if ((rc = ksrc_configure(ctx, s)) < 0 || (rc = ksrc_connect(ctx, s)) < 0 ||
        (rc = ksrc_discover(ctx, s, 1)) < 0 ||
        (rc = ksrc_resolve(ctx, s, 0, s->start)) < 0 ||
        (s->bounded && (rc = ksrc_ends(ctx, s)) < 0) ||
        (rc = ksrc_assign(ctx, s, 0)) < 0)
        goto fail;
    s->next_discovery = weir_now(ctx) + s->discovery_ms;
    weir_log(ctx, WEIR_LOG_INFO, "%s: subtask %u of %u reads %zu partition(s)",
             s->opname, s->sub, s->par, s->n_parts);
    *self = s;
    return WEIR_OK;
fail:
    ksrc_free(s);
    return rc;
}

static int ksrc_finish(weir_ctx *ctx, void *self)
{
    ksrc *s = self;
    if (s->bad)
        weir_log(ctx, WEIR_LOG_WARN,
                 "%s: subtask %u skipped %" PRIu64 " bad message(s) and "
                 "emitted %" PRIu64 " record(s)",
                 s->opname, s->sub, s->bad, s->records);
    return WEIR_OK;
}

static void ksrc_close(weir_ctx *ctx, void *self)
{
    (void)ctx;
    if (self)
        ksrc_free(self);
}

const weir_operator kafka_source_op = {
    .size = sizeof(weir_operator),
    .flags = WEIR_OP_SOURCE,
    .name = "kafka_source",
    .version = "1.0.0",
    .description = "reads Kafka topics (librdkafka); partition p to subtask "
                   "p % parallelism; offsets checkpointed (exactly-once), "
                   "committed to the group after each checkpoint",
    .params = ksrc_params,
    .snapshot_version = KSRC_SNAPSHOT_VERSION,
    .open = ksrc_open,
    .poll = ksrc_poll,
    .snapshot = ksrc_snapshot,
    .restore = ksrc_restore,
    .notify_checkpoint_complete = ksrc_notify,
    .finish = ksrc_finish,
    .close = ksrc_close,
};
