#include "testing/direct.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A request handle as the plugin holds it: a slot of its table. The
 * plugin only passes the pointer back (weir_async is opaque to it). */
typedef struct direct_req {
    direct_table *d;
    direct_input in;
    uint32_t completions, late;
    int status;
    char *result; /* the first completion's bytes (status WEIR_OK) */
    size_t result_len;
} direct_req;

struct direct_table {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a request completed for the first time */
    size_t max_result;
    direct_req **reqs; /* stable addresses: the plugin holds them */
    size_t n, cap;
    size_t completed;
    int closed;
};

direct_table *direct_new(size_t max_result)
{
    direct_table *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    d->max_result = max_result;
    return d;
}

static void direct_req_free(direct_req *r)
{
    free((void *)r->in.key);
    free((void *)r->in.value);
    free(r->result);
    free(r);
}

void direct_free(direct_table *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        direct_req_free(d->reqs[i]);
    free(d->reqs);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

/* A malloc'ed copy of n bytes with a NUL after them; NULL when out of
 * memory. */
static void *direct_dup(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

weir_async *direct_add(direct_table *d, const direct_input *in, size_t *index)
{
    direct_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->d = d;
    r->in = *in;
    r->in.key = direct_dup(in->key, in->key_len);
    r->in.value = direct_dup(in->value, in->value_len);
    if (!r->in.key || !r->in.value)
        goto fail;
    pthread_mutex_lock(&d->mu);
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        direct_req **v = realloc(d->reqs, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&d->mu);
            goto fail;
        }
        d->reqs = v;
        d->cap = cap;
    }
    *index = d->n;
    d->reqs[d->n++] = r;
    pthread_mutex_unlock(&d->mu);
    return (weir_async *)r;
fail:
    direct_req_free(r);
    return NULL;
}

int direct_complete(weir_async *req, int status, const void *result, size_t len)
{
    direct_req *r = (direct_req *)req;
    if (!r)
        return WEIR_EINVAL;
    direct_table *d = r->d;
    int rc = WEIR_OK;
    if (status > 0 ||
        (status == WEIR_OK && ((!result && len) || len > d->max_result))) {
        status = WEIR_EINVAL;
        rc = WEIR_EINVAL;
    }
    char *copy = status == WEIR_OK ? direct_dup(result, len) : NULL;
    if (status == WEIR_OK && !copy)
        status = rc = WEIR_ENOMEM;
    pthread_mutex_lock(&d->mu);
    r->late += d->closed;
    if (r->completions++ == 0) {
        r->status = status;
        r->result = copy;
        r->result_len = copy ? len : 0;
        copy = NULL;
        d->completed++;
        pthread_cond_broadcast(&d->cv);
    } else {
        rc = WEIR_EINVAL;
    }
    pthread_mutex_unlock(&d->mu);
    free(copy);
    return rc;
}

void direct_mark_closed(direct_table *d)
{
    pthread_mutex_lock(&d->mu);
    d->closed = 1;
    pthread_mutex_unlock(&d->mu);
}

size_t direct_count(direct_table *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->n;
    pthread_mutex_unlock(&d->mu);
    return n;
}

size_t direct_completed(direct_table *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = d->completed;
    pthread_mutex_unlock(&d->mu);
    return n;
}

int direct_wait(direct_table *d, size_t n, int ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += ms / 1000;
    end.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    while (d->completed < n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&d->cv, &d->mu, &end);
    int done = d->completed >= n;
    pthread_mutex_unlock(&d->mu);
    return done ? 0 : WEIR_ETIMEDOUT;
}

int direct_info(direct_table *d, size_t i, weir_test_async_request *out,
                direct_input *in)
{
    pthread_mutex_lock(&d->mu);
    if (i >= d->n) {
        pthread_mutex_unlock(&d->mu);
        return WEIR_ENOTFOUND;
    }
    const direct_req *r = d->reqs[i];
    if (out)
        *out = (weir_test_async_request){.completions = r->completions,
                                         .late = r->late,
                                         .status = r->status,
                                         .result = r->result,
                                         .result_len = r->result_len};
    if (in)
        *in = r->in;
    pthread_mutex_unlock(&d->mu);
    return WEIR_OK;
}
