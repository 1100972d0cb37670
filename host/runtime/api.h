/*
 * api.h - the host service table handed to plugins (weir_host_api).
 *
 * There is one table per process, static and immutable. Every service
 * receives the weir_ctx of the calling instance, which the runtime embeds in
 * its subtask structure (see runtime/task.h).
 *
 * The services trust nothing a plugin passes. Each one that can fail checks,
 * before it touches anything:
 *   - that it runs on the thread of the ctx's own subtask (task_self()): a
 *     ctx of another subtask, a NULL ctx, or a call from a thread the plugin
 *     started is refused;
 *   - that a weir_state handle is one the subtask's own store declared
 *     (compared as a pointer, never read): a handle of another subtask is
 *     named (its store's name, e.g. "count#1") and not used;
 *   - pointers: a NULL with a non-zero length, a NULL name, output pointer
 *     or callback;
 *   - lengths: a record (key_len + value_len, which cannot wrap) or a state
 *     value above runtime.max_record_size; a port the operator lacks; an
 *     unknown time domain.
 * A refused call returns WEIR_EINVAL and changes nothing. Its message
 * ("weir_value_put: state handle belongs to another subtask (count#1)")
 * goes where weir_set_error() puts the plugin's, in the calling thread's own
 * subtask, so that a plugin that returns the code fails with it (the job's
 * message then names the operator, the subtask and the callback); the first
 * misuse of each subtask is logged too. A call from a thread that is no
 * subtask's is only logged: nothing of another thread's task is written.
 * Metric updates (counter_add, gauge_set, histogram_observe) receive no ctx
 * and cannot be checked beyond ignoring a NULL metric; log and the identity
 * services only read immutable fields and have no error to return.
 */
#ifndef WEIR_HOST_API_H
#define WEIR_HOST_API_H

#include "weir/weir.h"

/* The process-wide host service table. Valid for the life of the process. */
const weir_host_api *api_table(void);

#endif
