/*
 * api.h - the host service table handed to plugins (weir_host_api).
 *
 * There is one table per process, static and immutable. Every service
 * receives the weir_ctx of the calling instance, which the runtime embeds in
 * its subtask structure (see runtime/subtask.h).
 */
#ifndef WEIR_HOST_API_H
#define WEIR_HOST_API_H

#include "weir/weir.h"

/* The process-wide host service table. Valid for the life of the process. */
const weir_host_api *api_table(void);

#endif
