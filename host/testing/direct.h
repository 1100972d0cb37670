/*
 * direct.h - the request table of a harness whose asynchronous operator
 * the test drives directly (weir_test_config.async_direct).
 *
 * Without the runtime's async layer, the harness hands the plugin its own
 * request handles: each names one slot of this table, which records every
 * completion the plugin makes of it (how many, with which status and
 * result, and whether close() had returned by then). The table is the one
 * part of a harness that other threads touch: direct_complete() runs on
 * the plugin's threads, everything else on the harness's thread; one mutex
 * guards the slots.
 */
#ifndef WEIR_HOST_TESTING_DIRECT_H
#define WEIR_HOST_TESTING_DIRECT_H

#include <stddef.h>
#include <stdint.h>

#include "weir/testing.h"
#include "weir/weir.h"

typedef struct direct_table direct_table;

/* One request's input record as the harness invoked it (copies owned by
 * the table, valid until direct_free). */
typedef struct direct_input {
    uint32_t port;
    const void *key;
    size_t key_len;
    int64_t ts;
    const void *value;
    size_t value_len;
} direct_input;

/* A table whose results may be at most `max_result` bytes (the runtime's
 * max_record_size). NULL when out of memory. */
direct_table *direct_new(size_t max_result);
/* Frees the table. The plugin must not complete a request afterwards. */
void direct_free(direct_table *d);

/* Adds a request for `in` (copied) and returns its handle, the index in
 * *index; NULL when out of memory. */
weir_async *direct_add(direct_table *d, const direct_input *in, size_t *index);

/* The weir_host_api.async_complete of a direct harness (any thread).
 * Records the completion; the first one counts as the request's result.
 * Returns WEIR_OK for a first completion, WEIR_EINVAL for a NULL `req`, a
 * second completion, a positive status, a NULL result with a length or a
 * result over max_result (the last three fail the request with
 * WEIR_EINVAL, as the runtime does). */
int direct_complete(weir_async *req, int status, const void *result,
                    size_t len);

/* From now on completions count as late (called when close() returned). */
void direct_mark_closed(direct_table *d);

/* The number of requests and of those completed at least once. */
size_t direct_count(direct_table *d);
size_t direct_completed(direct_table *d);
/* Waits until `n` requests are completed or `ms` passed: 0 or
 * WEIR_ETIMEDOUT. */
int direct_wait(direct_table *d, size_t n, int ms);

/* Request i: what weir_test_async_request() reports, and its input.
 * WEIR_ENOTFOUND past the end. */
int direct_info(direct_table *d, size_t i, weir_test_async_request *out,
                direct_input *in);

#endif
