/*
 * metrics.h - the metrics of a running job: counters, gauges and
 * histograms registered by plugins (weir_metric_register) and by the host,
 * each with the labels job, operator and subtask plus at most one label of
 * the plugin's own (e.g. rule="viewed_not_carted").
 *
 * metrics_render() writes them in the Prometheus text exposition format;
 * the worker logs them when the job ends, and a /metrics endpoint can serve
 * the same text.
 *
 * Thread: registration is thread-safe (a mutex); updates are lock-free
 * atomics, made by the one thread of the registering subtask; rendering may
 * run on any thread at any time. A weir_metric pointer is valid until
 * metrics_free().
 */
#ifndef WEIR_HOST_METRICS_H
#define WEIR_HOST_METRICS_H

#include <stdint.h>

#include "weir/weir.h"

typedef struct metrics_registry metrics_registry;

/* Creates an empty registry for job `job` (copied); NULL when out of
 * memory. */
metrics_registry *metrics_new(const char *job);
void metrics_free(metrics_registry *r);

/*
 * Registers a metric, or returns the one already registered with the same
 * name, operator, subtask and label. Errors (WEIR_EINVAL with a message): a
 * name that is not [a-zA-Z_:][a-zA-Z0-9_:]*, a label name that is not
 * [a-zA-Z_][a-zA-Z0-9_]* or is one of the host's (job, operator, subtask,
 * le), a label value without a name, or a name already registered with
 * another kind.
 */
int metrics_register(metrics_registry *r, weir_metric_kind kind,
                     const char *name, const char *help, const char *op_id,
                     uint32_t subtask, const char *label_name,
                     const char *label_value, weir_metric **out, char **errptr);

void metrics_counter_add(weir_metric *m, uint64_t delta);
void metrics_gauge_set(weir_metric *m, double value);
void metrics_histogram_observe(weir_metric *m, double value);

/* The value of a counter or gauge, the count of a histogram. */
double metrics_value(const weir_metric *m);

/* Every metric in the Prometheus text format (malloc'ed; NULL when out of
 * memory), families sorted by name, with # HELP and # TYPE lines. */
char *metrics_render(metrics_registry *r);

#endif
