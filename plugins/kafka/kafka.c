/*
 * kafka.c - the "kafka" plugin: operators kafka_source (kafka_source.c) and
 * kafka_sink (kafka_sink.c), both on librdkafka.
 */
#include "weir/weir.h"

extern const weir_operator kafka_source_op;
extern const weir_operator kafka_sink_op;

static const weir_operator *const kafka_ops[] = {&kafka_source_op,
                                                 &kafka_sink_op, NULL};

static const weir_plugin kafka_plugin = {
    WEIR_PLUGIN_INIT,       .name = "kafka",
    .version = "1.0.0",     .description = "Kafka source and sink (librdkafka)",
    .operators = kafka_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &kafka_plugin;
}
