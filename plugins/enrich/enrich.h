/*
 * enrich.h - the "enrich" plugin's shared parts: the request handed from
 * the subtask's thread to a backend's I/O thread (enr_req), the queue that
 * carries it (enr_queue, equeue.c), the merge of a lookup result into a
 * record value (emerge.c), and the backends' entry points (eredis.c,
 * ehttp.c), driven by the operators in enrich.c.
 *
 * Threads. Every operator instance owns one backend, and every backend owns
 * one I/O thread. async_invoke() runs on the subtask's thread: it builds an
 * enr_req (a copy of everything the lookup needs, so nothing refers to the
 * record once it returns) and pushes it onto the backend's queue, which
 * wakes the I/O thread through a pipe. The I/O thread alone touches the
 * client library (hiredis, libcurl) and completes each request exactly once
 * with weir_async_complete() on the host table kept in the backend; the
 * host then calls on_async_result() on the subtask's thread.
 *
 * Results. A request completes with one of
 *   - WEIR_OK and ENR_FOUND followed by the msgpack value that was found;
 *   - WEIR_OK and ENR_MISSING alone: the lookup found nothing (a missing
 *     Redis key, an empty hash, HTTP 404);
 *   - WEIR_OK and ENR_FAILED followed by an English message: a failure that
 *     retrying cannot fix (a Redis error reply, HTTP 4xx, a response that is
 *     not JSON or is too large), so the host does not retry it;
 *   - WEIR_ERETRY or WEIR_ETIMEDOUT: a transient failure (no connection,
 *     connection lost, HTTP 5xx/408/429, a transfer timeout); the host
 *     retries it under the operator's `async` settings;
 *   - WEIR_ECANCELED: the instance is closing.
 * The message of the latest transient failure is kept (enr_note_error) so
 * that a request whose retries ran out can say what went wrong.
 */
#ifndef WEIR_PLUGINS_ENRICH_H
#define WEIR_PLUGINS_ENRICH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "weir/msgpack.h"
#include "weir/weir.h"

#define ENR_FOUND   'V'
#define ENR_MISSING 'M'
#define ENR_FAILED  'E'

#define ENR_ERRLEN 256

/* One lookup in flight. `arg` is the Redis key or the URL, arg_len bytes
 * (NUL-terminated too). Owned by whoever holds it: the queue, then the I/O
 * thread, which frees it after completing `req`. */
typedef struct enr_req {
    struct enr_req *next;
    weir_async *req;
    size_t arg_len;
    char arg[];
} enr_req;

/* Allocates a request for `req` with a copy of arg[0..len); NULL when out of
 * memory. */
enr_req *enr_req_new(weir_async *req, const char *arg, size_t len);

/* What every backend shares: the host table and the latest transient error.
 * Any thread. */
typedef struct enr_shared {
    const weir_host_api *api;
    pthread_mutex_t mu;
    char last_error[ENR_ERRLEN];
} enr_shared;

void enr_shared_init(enr_shared *s, const weir_host_api *api);
void enr_shared_destroy(enr_shared *s);
/* Records msg as the latest transient failure. */
void enr_note_error(enr_shared *s, const char *msg);
/* Copies the latest transient failure into buf ("" when none). */
void enr_last_error(enr_shared *s, char *buf, size_t size);

/* The three complete r->req and free r; each returns WEIR_OK, so that
 * `return enr_fail(...);` ends a reply handler. enr_complete: status < 0
 * with no result, or status 0 with `tag` followed by body[0..len). */
int enr_complete(enr_shared *s, enr_req *r, int status, char tag,
                 const void *body, size_t len);
/* Completes r with ENR_FAILED and the formatted message. */
int enr_fail(enr_shared *s, enr_req *r, const char *fmt, ...) WEIR_PRINTF(3, 4);
/* Completes r with a transient status (WEIR_ERETRY or WEIR_ETIMEDOUT),
 * noting the formatted message as the latest transient failure. */
int enr_retry(enr_shared *s, enr_req *r, int status, const char *fmt, ...)
    WEIR_PRINTF(4, 5);

/* ---- equeue.c: a multi-producer queue with a wakeup fd ---------------- */

/* Requests pushed by the subtask's thread, taken by the I/O thread. The
 * read end of a non-blocking pipe (wake_fd) becomes readable after a push
 * or a stop, for poll(). */
typedef struct enr_queue {
    pthread_mutex_t mu;
    enr_req *head, *tail;
    int stopping;
    int wake_fd;  /* read end, for the I/O thread's poll() */
    int wake_wfd; /* write end */
} enr_queue;

/* Returns 0, or -1 with errno when the pipe cannot be made. */
int enr_queue_init(enr_queue *q);
/* Frees what is left (without completing it: the caller drains first). */
void enr_queue_destroy(enr_queue *q);
/* Appends r and wakes the reader. Returns 0, or -1 (r not taken) once
 * enr_queue_stop() was called. */
int enr_queue_push(enr_queue *q, enr_req *r);
/* Asks the reader to stop: later pushes are refused. */
void enr_queue_stop(enr_queue *q);
/* Empties the wakeup pipe and takes every queued request (in push order)
 * into *list; returns whether a stop was asked. */
int enr_queue_take(enr_queue *q, enr_req **list);

/* ---- emerge.c: merging a lookup result into a record value ------------ */

/* Writes into w a copy of the msgpack map value[0..len) in which the entry
 * with string key field[0..flen) (every one, when repeated) is replaced by
 * one with msgpack value add[0..alen), placed last. Returns WEIR_OK,
 * WEIR_EINVAL when value is not one plausible msgpack map, WEIR_ENOMEM. */
int enr_merge(weir_mp_writer *w, const void *value, size_t len,
              const char *field, size_t flen, const void *add, size_t alen);

/* ---- backends --------------------------------------------------------- */

/* The part every backend starts with. `arg` makes the lookup argument (the
 * Redis key, the URL) of lookup text key[0..len) into a malloc'ed string;
 * `destroy` frees the backend after its thread was joined. */
typedef struct enr_backend {
    enr_queue q;
    enr_shared *sh;
    pthread_t thread;
    int started;
    int (*arg)(struct enr_backend *b, const char *key, size_t len, char **out,
               size_t *out_len);
    void (*destroy)(struct enr_backend *b);
} enr_backend;

/* Each reads the backend's parameters on ctx (open() only), starts its I/O
 * thread (the connection is made by that thread) and returns the backend in
 * *out. On failure sets the error on ctx and returns a negative code. */
int enr_redis_open(weir_ctx *ctx, const char *opname, enr_shared *sh,
                   enr_backend **out);
int enr_http_open(weir_ctx *ctx, const char *opname, enr_shared *sh,
                  enr_backend **out);

/* Hands r to the backend's I/O thread; returns 0, or -1 when it is
 * stopping (r not taken). Subtask thread. */
int enr_backend_submit(enr_backend *b, enr_req *r);
/* Stops the I/O thread, which completes every request it holds or finds
 * queued with WEIR_ECANCELED; returns after the thread was joined, with the
 * backend freed. Subtask thread. */
void enr_backend_close(enr_backend *b);
/* Completes every request of the list with WEIR_ECANCELED. I/O thread. */
void enr_cancel_list(enr_shared *s, enr_req *list);

#endif
