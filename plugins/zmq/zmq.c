/*
 * zmq.c - the zmq plugin: operators zmq_source (zsource.c) and zmq_sink
 * (zsink.c), ZeroMQ connectors built like any outside plugin (the SDK,
 * libzmq, jansson).
 */
#include "zmqop.h"

#include "weir/weir.h"

static const weir_operator *const zmq_ops[] = {&zsrc_operator, &zsnk_operator,
                                               NULL};

static const weir_plugin zmq_plugin = {
    WEIR_PLUGIN_INIT,
    .name = "zmq",
    .version = "1.0.0",
    .description = "ZeroMQ connectors: zmq_source and zmq_sink",
    .operators = zmq_ops,
};

const weir_plugin *weir_plugin_entry(const weir_host_api *host)
{
    if (host && host->abi_major != WEIR_ABI_MAJOR)
        return NULL;
    return &zmq_plugin;
}
