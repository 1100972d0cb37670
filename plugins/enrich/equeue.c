/*
 * equeue.c - the enrich plugin's request queue and the request and backend
 * plumbing shared by both backends (see enrich.h for the contract).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "enrich.h"

enr_req *enr_req_new(weir_async *req, const char *arg, size_t len)
{
    enr_req *r = malloc(sizeof *r + len + 1);
    if (!r)
        return NULL;
    r->next = NULL;
    r->req = req;
    r->arg_len = len;
    memcpy(r->arg, arg, len);
    r->arg[len] = '\0';
    return r;
}

void enr_shared_init(enr_shared *s, const weir_host_api *api)
{
    s->api = api;
    pthread_mutex_init(&s->mu, NULL);
    s->last_error[0] = '\0';
}

void enr_shared_destroy(enr_shared *s)
{
    pthread_mutex_destroy(&s->mu);
}

void enr_note_error(enr_shared *s, const char *msg)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    pthread_mutex_unlock(&s->mu);
}

void enr_last_error(enr_shared *s, char *buf, size_t size)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, size, "%s", s->last_error);
    pthread_mutex_unlock(&s->mu);
}

int enr_complete(enr_shared *s, enr_req *r, int status, char tag,
                 const void *body, size_t len)
{
    if (status < 0) {
        weir_async_complete(s->api, r->req, status, NULL, 0);
        free(r);
        return WEIR_OK;
    }
    char small[ENR_ERRLEN + 1];
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (!buf) {
        /* Out of memory: a transient failure, retried by the host. */
        weir_async_complete(s->api, r->req, WEIR_ERETRY, NULL, 0);
        free(r);
        return WEIR_OK;
    }
    buf[0] = tag;
    if (len)
        memcpy(buf + 1, body, len);
    if (weir_async_complete(s->api, r->req, WEIR_OK, buf, len + 1) ==
        WEIR_EINVAL)
        enr_note_error(s, "the result was longer than the job's "
                          "runtime.max_record_size");
    if (buf != small)
        free(buf);
    free(r);
    return WEIR_OK;
}

int enr_fail(enr_shared *s, enr_req *r, const char *fmt, ...)
{
    char msg[ENR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return enr_complete(s, r, WEIR_OK, ENR_FAILED, msg, strlen(msg));
}

int enr_retry(enr_shared *s, enr_req *r, int status, const char *fmt, ...)
{
    char msg[ENR_ERRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    enr_note_error(s, msg);
    return enr_complete(s, r, status, 0, NULL, 0);
}

void enr_cancel_list(enr_shared *s, enr_req *list)
{
    while (list) {
        enr_req *next = list->next;
        enr_complete(s, list, WEIR_ECANCELED, 0, NULL, 0);
        list = next;
    }
}

/* ------------------------------------------------------------------------ */
/* Queue                                                                     */
/* ------------------------------------------------------------------------ */

int enr_queue_init(enr_queue *q)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    pthread_mutex_init(&q->mu, NULL);
    q->head = q->tail = NULL;
    q->stopping = 0;
    q->wake_fd = fds[0];
    q->wake_wfd = fds[1];
    return 0;
}

void enr_queue_destroy(enr_queue *q)
{
    while (q->head) {
        enr_req *n = q->head->next;
        free(q->head);
        q->head = n;
    }
    close(q->wake_fd);
    close(q->wake_wfd);
    pthread_mutex_destroy(&q->mu);
}

static void equeue_wake(enr_queue *q)
{
    char c = 1;
    /* A full pipe already wakes the reader: EAGAIN is fine. */
    while (write(q->wake_wfd, &c, 1) < 0 && errno == EINTR)
        ;
}

int enr_queue_push(enr_queue *q, enr_req *r)
{
    pthread_mutex_lock(&q->mu);
    if (q->stopping) {
        pthread_mutex_unlock(&q->mu);
        return -1;
    }
    r->next = NULL;
    int was_empty = q->head == NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    pthread_mutex_unlock(&q->mu);
    /* The reader empties the pipe before it takes the list, so a push onto
     * a non-empty list has already been signalled. */
    if (was_empty)
        equeue_wake(q);
    return 0;
}

void enr_queue_stop(enr_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_mutex_unlock(&q->mu);
    equeue_wake(q);
}

int enr_queue_take(enr_queue *q, enr_req **list)
{
    char buf[256];
    while (read(q->wake_fd, buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&q->mu);
    *list = q->head;
    q->head = q->tail = NULL;
    int stop = q->stopping;
    pthread_mutex_unlock(&q->mu);
    return stop;
}

/* ------------------------------------------------------------------------ */
/* Backend base                                                              */
/* ------------------------------------------------------------------------ */

int enr_backend_submit(enr_backend *b, enr_req *r)
{
    return enr_queue_push(&b->q, r);
}

void enr_backend_close(enr_backend *b)
{
    if (!b)
        return;
    enr_queue_stop(&b->q);
    if (b->started)
        pthread_join(b->thread, NULL);
    /* The thread took and canceled everything pushed before the stop; no
     * push succeeds after it. */
    enr_req *left;
    enr_queue_take(&b->q, &left);
    enr_cancel_list(b->sh, left);
    b->destroy(b);
}
