#include "runtime/async.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "checkpoint/manifest.h"
#include "common/err.h"
#include "common/fs.h"
#include "common/log.h"
#include "metrics/metrics.h"
#include "runtime/keyed.h"
#include "runtime/plan.h"

#define ASYNC_MAGIC "WAS1"

/* ------------------------------------------------------------------------ */
/* Types                                                                     */
/* ------------------------------------------------------------------------ */

enum async_kind { ASYNC_RECORD = 0, ASYNC_MARKER };

/* One queued input record (or watermark marker). Subtask thread only. */
typedef struct async_entry {
    enum async_kind kind;
    int64_t wm; /* marker: the watermark */
    uint32_t port;
    int64_t ts;
    char *key, *value;
    size_t key_len, value_len;
    uint32_t retries;    /* attempts after the first made so far */
    weir_async *req;     /* the current attempt's handle, or NULL */
    int64_t deadline_ns; /* of the current attempt */
    int64_t retry_ns;    /* > 0: the next attempt is due then */
    int done;            /* the result is final, waiting for delivery */
    int status;
    char *result;
    size_t result_len;
    struct async_entry *prev, *next;
} async_entry;

/* One attempt. The fields below `lock` are guarded by async_lock. */
struct weir_async {
    size_t max_result;  /* immutable after creation */
    async_q *q;         /* NULL once the queue is gone */
    async_entry *entry; /* the host side: NULL once it let go */
    int plugin_done;    /* the plugin completed it */
    int host_done;      /* the host no longer waits for it */
    int invoke_failed;  /* async_invoke() refused it: nobody holds it */
    int status;
    char *result;
    size_t result_len;
    weir_async *next;                  /* completion list */
    weir_async *orph_prev, *orph_next; /* abandoned, not completed */
};

struct async_q {
    int efd;
    uint32_t capacity, max_retries;
    int ordered;
    int64_t timeout_ns, backoff_ns, backoff_max_ns;
    async_entry *head, *tail;
    size_t n_records, n_entries;
    int64_t wm_queued; /* largest watermark queued as a marker */
    int64_t next_ns;   /* no timeout or retry is due before this */
    /* guarded by async_lock */
    weir_async *done_head, *done_tail;
    weir_async *orphans;
    /* metrics (subtask thread) */
    weir_metric *m_inflight, *m_timeouts, *m_retries;
};

/* ------------------------------------------------------------------------ */
/* The set of live handles                                                   */
/* ------------------------------------------------------------------------ */

/* Guards the set, every handle's shared fields and every queue's
 * completion and orphan lists. */
static pthread_mutex_t async_lock = PTHREAD_MUTEX_INITIALIZER;
static weir_async **async_set;
static size_t async_set_cap, async_set_n;

static size_t async_hash(const weir_async *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

/* Linear probing; called with async_lock held. */
static int async_set_add(weir_async *p)
{
    if ((async_set_n + 1) * 2 > async_set_cap) {
        size_t cap = async_set_cap ? async_set_cap * 2 : 64;
        weir_async **n = calloc(cap, sizeof *n);
        if (!n)
            return WEIR_ENOMEM;
        for (size_t i = 0; i < async_set_cap; i++) {
            if (!async_set[i])
                continue;
            size_t h = async_hash(async_set[i], cap);
            while (n[h])
                h = (h + 1) & (cap - 1);
            n[h] = async_set[i];
        }
        free(async_set);
        async_set = n;
        async_set_cap = cap;
    }
    size_t h = async_hash(p, async_set_cap);
    while (async_set[h])
        h = (h + 1) & (async_set_cap - 1);
    async_set[h] = p;
    async_set_n++;
    return 0;
}

static long async_set_find(const weir_async *p)
{
    if (!async_set_cap)
        return -1;
    size_t h = async_hash(p, async_set_cap);
    while (async_set[h]) {
        if (async_set[h] == p)
            return (long)h;
        h = (h + 1) & (async_set_cap - 1);
    }
    return -1;
}

/* Removes slot `i`, shifting the entries of its probe run back. */
static void async_set_del(size_t i)
{
    size_t cap = async_set_cap;
    async_set[i] = NULL;
    async_set_n--;
    for (size_t j = (i + 1) & (cap - 1); async_set[j];
         j = (j + 1) & (cap - 1)) {
        size_t h = async_hash(async_set[j], cap);
        /* Whether h lies cyclically in (i, j]: then it stays. */
        int stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (stays)
            continue;
        async_set[i] = async_set[j];
        async_set[j] = NULL;
        i = j;
    }
    if (async_set_n == 0) {
        free(async_set);
        async_set = NULL;
        async_set_cap = 0;
    }
}

static void async_orphan_add(async_q *q, weir_async *h)
{
    h->orph_prev = NULL;
    h->orph_next = q->orphans;
    if (q->orphans)
        q->orphans->orph_prev = h;
    q->orphans = h;
}

static void async_orphan_del(async_q *q, weir_async *h)
{
    if (h->orph_prev)
        h->orph_prev->orph_next = h->orph_next;
    else if (q->orphans == h)
        q->orphans = h->orph_next;
    if (h->orph_next)
        h->orph_next->orph_prev = h->orph_prev;
    h->orph_prev = h->orph_next = NULL;
}

static void async_handle_free(weir_async *h)
{
    free(h->result);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* The completion service (any thread)                                       */
/* ------------------------------------------------------------------------ */

int async_complete(weir_async *req, int status, const void *result, size_t len)
{
    if (!req) {
        log_msg(WEIR_LOG_WARN, "async",
                "weir_async_complete: req is NULL (refused)");
        return WEIR_EINVAL;
    }
    pthread_mutex_lock(&async_lock);
    long slot = async_set_find(req);
    size_t max = slot >= 0 ? req->max_result : 0;
    pthread_mutex_unlock(&async_lock);
    if (slot < 0) {
        log_msg(WEIR_LOG_WARN, "async",
                "weir_async_complete: req was completed before, or was "
                "never issued (refused)");
        return WEIR_EINVAL;
    }
    /* Still live and not completed: only its holder (this caller) lets it
     * go, so it stays valid while the result is copied. */
    int rc = WEIR_OK;
    char *copy = NULL;
    if (status > 0 || (status == WEIR_OK && ((!result && len) || len > max))) {
        log_msg(WEIR_LOG_WARN, "async",
                "weir_async_complete: %s; the request fails with "
                "WEIR_EINVAL",
                status > 0         ? "a positive status"
                : (!result && len) ? "result is NULL with a non-zero length"
                                   : "result is over runtime.max_record_size");
        status = WEIR_EINVAL;
        rc = WEIR_EINVAL;
    }
    if (status == WEIR_OK) {
        copy = malloc(len ? len : 1);
        if (!copy) {
            status = WEIR_ENOMEM;
            rc = WEIR_ENOMEM;
        } else if (len) {
            memcpy(copy, result, len);
        }
    }
    pthread_mutex_lock(&async_lock);
    slot = async_set_find(req);
    if (slot < 0) { /* completed by another thread meanwhile */
        pthread_mutex_unlock(&async_lock);
        free(copy);
        return WEIR_EINVAL;
    }
    async_set_del((size_t)slot);
    req->plugin_done = 1;
    req->status = status;
    req->result = copy;
    req->result_len = copy ? len : 0;
    async_q *q = req->q;
    int drop = req->host_done || !q;
    if (drop) {
        if (q)
            async_orphan_del(q, req);
    } else {
        req->next = NULL;
        if (q->done_tail)
            q->done_tail->next = req;
        else
            q->done_head = req;
        q->done_tail = req;
        uint64_t one = 1;
        if (write(q->efd, &one, sizeof one) < 0 && errno != EAGAIN)
            log_msg(WEIR_LOG_WARN, "async", "waking the subtask: %s",
                    strerror(errno));
    }
    pthread_mutex_unlock(&async_lock);
    if (drop) /* its result is not wanted: timed out, retried or gone */
        async_handle_free(req);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Queue                                                                     */
/* ------------------------------------------------------------------------ */

static void async_entry_free(async_entry *e)
{
    if (!e)
        return;
    free(e->key);
    free(e->value);
    free(e->result);
    free(e);
}

static void async_append(async_q *q, async_entry *e)
{
    e->next = NULL;
    e->prev = q->tail;
    if (q->tail)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->n_entries++;
    if (e->kind == ASYNC_RECORD)
        q->n_records++;
}

static void async_unlink(async_q *q, async_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        q->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        q->tail = e->prev;
    e->prev = e->next = NULL;
    q->n_entries--;
    if (e->kind == ASYNC_RECORD)
        q->n_records--;
}

static void async_gauge(task *t)
{
    metrics_gauge_set(t->async->m_inflight, (double)t->async->n_records);
}

static int async_dup(const void *src, size_t len, char **out)
{
    *out = malloc(len ? len : 1);
    if (!*out)
        return WEIR_ENOMEM;
    if (len)
        memcpy(*out, src, len);
    return 0;
}

static async_entry *async_entry_new(uint32_t port, int64_t ts, const void *key,
                                    size_t key_len, const void *value,
                                    size_t value_len)
{
    async_entry *e = calloc(1, sizeof *e);
    if (!e || async_dup(key, key_len, &e->key) < 0 ||
        async_dup(value, value_len, &e->value) < 0) {
        async_entry_free(e);
        return NULL;
    }
    e->kind = ASYNC_RECORD;
    e->port = port;
    e->ts = ts;
    e->key_len = key_len;
    e->value_len = value_len;
    return e;
}

static void async_record_of(const async_entry *e, weir_record *rec)
{
    *rec = (weir_record){.size = sizeof(weir_record),
                         .key = e->key,
                         .key_len = e->key_len,
                         .ts = e->ts,
                         .value = e->value,
                         .value_len = e->value_len};
}

/* Makes the entry's key current (as for process()). */
static int async_set_key(task *t, const weir_record *rec)
{
    t->cur_key = rec->key;
    t->cur_key_len = rec->key_len;
    t->has_key = 1;
    int rc = keyed_set_key(t, rec);
    if (rc < 0) {
        t->has_key = 0;
        return task_fail(t, "setting the current key", rc);
    }
    return 0;
}

static void async_clear_key(task *t)
{
    t->has_key = 0;
    keyed_clear_key(t);
}

/* The attempt of `e` failed with `status`: a retry is scheduled, or the
 * status becomes the final result. */
static void async_failed(task *t, async_entry *e, int status)
{
    async_q *q = t->async;
    int64_t now = task_mono_ns();
    if ((status == WEIR_ERETRY || status == WEIR_ETIMEDOUT) &&
        e->retries < q->max_retries) {
        int64_t b = q->backoff_ns;
        for (uint32_t i = 0; i < e->retries && b < q->backoff_max_ns; i++)
            b *= 2;
        if (b > q->backoff_max_ns)
            b = q->backoff_max_ns;
        e->retries++;
        e->retry_ns = now + (b > 0 ? b : 1);
        if (e->retry_ns < q->next_ns)
            q->next_ns = e->retry_ns;
        return;
    }
    e->done = 1;
    e->status = status;
}

/* The host lets go of the current attempt of `e` (timeout, refusal). */
static void async_abandon(async_q *q, async_entry *e, int invoke_failed)
{
    weir_async *h = e->req;
    e->req = NULL;
    pthread_mutex_lock(&async_lock);
    h->host_done = 1;
    h->entry = NULL;
    h->invoke_failed = invoke_failed;
    /* Completed already: it waits in the completion list, which frees it;
     * else the plugin's completion will. */
    if (!h->plugin_done)
        async_orphan_add(q, h);
    pthread_mutex_unlock(&async_lock);
}

/* Starts an attempt of `e` with a new handle. Returns 0 (also when the
 * attempt was refused with WEIR_ERETRY, which counts as a failure) or
 * async_invoke()'s negative code after failing the task. */
static int async_attempt(task *t, async_entry *e)
{
    async_q *q = t->async;
    weir_record rec;
    async_record_of(e, &rec);
    int rc = async_set_key(t, &rec);
    if (rc < 0)
        return rc;
    weir_async *h = calloc(1, sizeof *h);
    if (!h) {
        async_clear_key(t);
        return task_fail(t, "async_invoke", WEIR_ENOMEM);
    }
    h->max_result = t->max_record;
    h->q = q;
    h->entry = e;
    pthread_mutex_lock(&async_lock);
    rc = async_set_add(h);
    pthread_mutex_unlock(&async_lock);
    if (rc < 0) {
        free(h);
        async_clear_key(t);
        return task_fail(t, "async_invoke", rc);
    }
    int64_t now = task_mono_ns();
    e->req = h;
    e->retry_ns = 0;
    e->deadline_ns = now + q->timeout_ns;
    if (e->deadline_ns < q->next_ns)
        q->next_ns = e->deadline_ns;
    guard_cb g = guard_enter(&t->guard, GUARD_ASYNC_INVOKE);
    rc = t->reg->op.async_invoke(&t->ctx, t->self, &rec, e->port, h);
    guard_leave(&t->guard, g);
    async_clear_key(t);
    if (rc == WEIR_OK)
        return 0;
    /* Refused: the plugin keeps nothing of the handle. */
    async_abandon(q, e, 1);
    if (rc == WEIR_ERETRY) {
        async_failed(t, e, WEIR_ERETRY);
        return 0;
    }
    return task_fail(t, "async_invoke", rc);
}

int async_submit(task *t, const weir_record *rec, uint32_t port)
{
    async_q *q = t->async;
    async_entry *e = async_entry_new(port, rec->ts, rec->key, rec->key_len,
                                     rec->value, rec->value_len);
    if (!e)
        return task_fail(t, "async_invoke", WEIR_ENOMEM);
    async_append(q, e);
    async_gauge(t);
    return async_attempt(t, e);
}

int async_hold_watermark(task *t, int64_t wm)
{
    async_q *q = t->async;
    if (!q || !q->head)
        return 0;
    if (wm <= q->wm_queued)
        return 1;
    q->wm_queued = wm;
    if (q->tail->kind == ASYNC_MARKER) {
        q->tail->wm = wm; /* nothing between: the newer one replaces it */
        return 1;
    }
    async_entry *e = calloc(1, sizeof *e);
    if (!e)
        return task_fail(t, "holding back the watermark", WEIR_ENOMEM);
    e->kind = ASYNC_MARKER;
    e->wm = wm;
    async_append(q, e);
    return 1;
}

/* Calls on_async_result() for a delivered entry (already unlinked). */
static int async_deliver(task *t, async_entry *e)
{
    weir_record rec;
    async_record_of(e, &rec);
    int rc = async_set_key(t, &rec);
    if (rc < 0)
        return rc;
    guard_cb g = guard_enter(&t->guard, GUARD_ON_ASYNC_RESULT);
    rc = t->reg->op.on_async_result(&t->ctx, t->self, &rec, e->port, e->status,
                                    e->status ? NULL : e->result,
                                    e->status ? 0 : e->result_len);
    guard_leave(&t->guard, g);
    async_clear_key(t);
    return rc < 0 ? task_fail(t, "on_async_result", rc) : 0;
}

/* Unlinks and frees a marker and applies its watermark. */
static int async_pass_marker(task *t, async_entry *m)
{
    int64_t wm = m->wm;
    async_unlink(t->async, m);
    async_entry_free(m);
    return wm > t->wm ? task_set_watermark(t, wm) : 0;
}

static int async_deliver_ready(task *t)
{
    async_q *q = t->async;
    int rc = 0;
    while (rc == 0 && q->head && !atomic_load(&t->rt->cancelled)) {
        async_entry *e = q->head;
        if (e->kind == ASYNC_MARKER) {
            rc = async_pass_marker(t, e);
            continue;
        }
        if (q->ordered) {
            if (!e->done)
                break;
            async_unlink(q, e);
            rc = async_deliver(t, e);
            async_entry_free(e);
            continue;
        }
        /* Unordered: every completed record before the first marker. */
        while (rc == 0 && e && e->kind == ASYNC_RECORD) {
            async_entry *next = e->next;
            if (e->done) {
                async_unlink(q, e);
                rc = async_deliver(t, e);
                async_entry_free(e);
            }
            e = next;
        }
        if (rc == 0 && q->head && q->head->kind == ASYNC_MARKER)
            continue;
        break;
    }
    async_gauge(t);
    return rc;
}

/* Moves completed handles into their entries. */
static void async_take_completed(task *t)
{
    async_q *q = t->async;
    uint64_t v;
    if (read(q->efd, &v, sizeof v) < 0 && errno != EAGAIN && errno != EINTR)
        log_msg(WEIR_LOG_WARN, t->who, "reading the async eventfd: %s",
                strerror(errno));
    pthread_mutex_lock(&async_lock);
    weir_async *h = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&async_lock);
    /* The handles in the list are completed: only this thread has them. */
    while (h) {
        weir_async *next = h->next;
        async_entry *e = h->host_done ? NULL : h->entry;
        if (e) {
            e->req = NULL;
            if (h->status == WEIR_OK) {
                e->done = 1;
                e->status = WEIR_OK;
                e->result = h->result;
                e->result_len = h->result_len;
                h->result = NULL;
            } else {
                async_failed(t, e, h->status);
            }
        }
        async_handle_free(h);
        h = next;
    }
}

/* Times out attempts past their deadline and starts the retries that are
 * due; recomputes next_ns. */
static int async_timers(task *t)
{
    async_q *q = t->async;
    int64_t now = task_mono_ns();
    if (now < q->next_ns)
        return 0;
    int64_t next = INT64_MAX;
    for (async_entry *e = q->head; e; e = e->next) {
        if (e->kind != ASYNC_RECORD || e->done)
            continue;
        if (e->req && now >= e->deadline_ns) {
            async_abandon(q, e, 0);
            metrics_counter_add(q->m_timeouts, 1);
            async_failed(t, e, WEIR_ETIMEDOUT);
        }
        if (!e->req && !e->done && e->retry_ns && now >= e->retry_ns) {
            metrics_counter_add(q->m_retries, 1);
            int rc = async_attempt(t, e);
            if (rc < 0)
                return rc;
        }
        if (e->req && e->deadline_ns < next)
            next = e->deadline_ns;
        if (!e->req && !e->done && e->retry_ns && e->retry_ns < next)
            next = e->retry_ns;
    }
    q->next_ns = next;
    return 0;
}

int async_service(task *t)
{
    if (!t->async)
        return 0;
    async_take_completed(t);
    int rc = async_timers(t);
    if (rc == 0)
        rc = async_deliver_ready(t);
    return rc;
}

int async_fd(const task *t)
{
    return t->async ? t->async->efd : -1;
}

int async_full(const task *t)
{
    return t->async && t->async->n_records >= t->async->capacity;
}

size_t async_pending(const task *t)
{
    return t->async ? t->async->n_entries : 0;
}

int async_next_ms(const task *t, int max_ms)
{
    if (!t->async || t->async->next_ns == INT64_MAX)
        return max_ms;
    int64_t left = t->async->next_ns - task_mono_ns();
    if (left <= 0)
        return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms < max_ms ? (int)ms : max_ms;
}

/* ------------------------------------------------------------------------ */
/* Open, close                                                               */
/* ------------------------------------------------------------------------ */

static int async_metric(task *t, weir_metric_kind kind, const char *name,
                        const char *help, weir_metric **out, char **errptr)
{
    return metrics_register(t->rt->metrics, kind, name, help, t->op->id,
                            t->ps->index, NULL, NULL, out, errptr);
}

int async_open(task *t, char **errptr)
{
    if (!t->reg->op.async_invoke)
        return 0;
    async_q *q = calloc(1, sizeof *q);
    if (!q)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    const topo_params *p = &t->op->async;
    q->capacity = (uint32_t)topo_param_int(p, "capacity");
    q->timeout_ns = topo_param_int(p, "timeout") * 1000000;
    q->ordered = strcmp(topo_param_str(p, "mode"), "unordered") != 0;
    q->max_retries = (uint32_t)topo_param_int(p, "max_retries");
    q->backoff_ns = topo_param_int(p, "retry_backoff") * 1000000;
    q->backoff_max_ns = topo_param_int(p, "retry_backoff_max") * 1000000;
    if (q->capacity == 0)
        q->capacity = 1;
    q->wm_queued = WEIR_WATERMARK_MIN;
    q->next_ns = INT64_MAX;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        int e = errno;
        free(q);
        return err_set(errptr, WEIR_EIO, "creating an eventfd: %s",
                       strerror(e));
    }
    t->async = q;
    int rc = 0;
    if (t->rt->metrics &&
        ((rc = async_metric(t, WEIR_METRIC_GAUGE, "weir_async_inflight",
                            "Async requests in flight (records not "
                            "delivered yet).",
                            &q->m_inflight, errptr)) < 0 ||
         (rc = async_metric(t, WEIR_METRIC_COUNTER, "weir_async_timeouts_total",
                            "Async request attempts that timed out.",
                            &q->m_timeouts, errptr)) < 0 ||
         (rc = async_metric(t, WEIR_METRIC_COUNTER, "weir_async_retries_total",
                            "Async request attempts that were retries.",
                            &q->m_retries, errptr)) < 0))
        return rc;
    return 0;
}

void async_close(task *t)
{
    async_q *q = t->async;
    if (!q)
        return;
    async_take_completed(t); /* frees what close() completed */
    size_t held = 0;
    pthread_mutex_lock(&async_lock);
    /* Attempts still current: nobody completed them. */
    for (async_entry *e = q->head; e; e = e->next) {
        weir_async *h = e->req;
        if (!h)
            continue;
        e->req = NULL;
        h->host_done = 1;
        h->entry = NULL;
        h->q = NULL;
        held++;
    }
    weir_async *h = q->orphans;
    while (h) {
        weir_async *next = h->orph_next;
        h->q = NULL;
        if (h->invoke_failed) {
            long slot = async_set_find(h);
            if (slot >= 0)
                async_set_del((size_t)slot);
            async_handle_free(h);
        } else {
            held++;
        }
        h = next;
    }
    q->orphans = NULL;
    /* Completed after the drain above: the list is the queue's. */
    weir_async *d = q->done_head;
    q->done_head = q->done_tail = NULL;
    pthread_mutex_unlock(&async_lock);
    while (d) {
        weir_async *next = d->next;
        async_handle_free(d);
        d = next;
    }
    if (held)
        log_msg(WEIR_LOG_WARN, t->who,
                "%zu async request%s neither completed nor abandoned "
                "(WEIR_ECANCELED) before close() returned; the plugin must "
                "complete every req it holds in close()",
                held, held == 1 ? " was" : "s were");
    while (q->head) {
        async_entry *e = q->head;
        async_unlink(q, e);
        async_entry_free(e);
    }
    metrics_gauge_set(q->m_inflight, 0);
    close(q->efd);
    free(q);
    t->async = NULL;
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                               */
/* ------------------------------------------------------------------------ */

typedef struct async_buf {
    char *p;
    size_t n, cap;
} async_buf;

static int async_put(async_buf *b, const void *src, size_t len)
{
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return WEIR_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->p + b->n, src, len);
    b->n += len;
    return 0;
}

static int async_put_u32(async_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return async_put(b, x, 4);
}

static int async_put_u64(async_buf *b, uint64_t v)
{
    int rc = async_put_u32(b, (uint32_t)(v >> 32));
    return rc ? rc : async_put_u32(b, (uint32_t)v);
}

int async_encode(const async_rec *recs, size_t n, char **data, size_t *len)
{
    async_buf b = {0};
    int rc = n > UINT32_MAX ? WEIR_EINVAL : async_put(&b, ASYNC_MAGIC, 4);
    rc = rc ? rc : async_put_u32(&b, (uint32_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const async_rec *r = &recs[i];
        if (r->key_len > UINT32_MAX || r->value_len > UINT32_MAX) {
            rc = WEIR_EINVAL;
            break;
        }
        rc = async_put_u32(&b, r->port);
        rc = rc ? rc : async_put_u64(&b, (uint64_t)r->ts);
        rc = rc ? rc : async_put_u32(&b, (uint32_t)r->key_len);
        rc = rc ? rc : async_put(&b, r->key, r->key_len);
        rc = rc ? rc : async_put_u32(&b, (uint32_t)r->value_len);
        rc = rc ? rc : async_put(&b, r->value, r->value_len);
    }
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *data = b.p;
    *len = b.n;
    return 0;
}

static uint32_t async_get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

void async_recs_free(async_rec *recs, size_t n)
{
    for (size_t i = 0; recs && i < n; i++) {
        free(recs[i].key);
        free(recs[i].value);
    }
    free(recs);
}

int async_decode(const char *what, const void *data, size_t len,
                 async_rec **out, size_t *n_out, char **errptr)
{
    const unsigned char *p = data, *end = p + len;
    *out = NULL;
    *n_out = 0;
    if (len < 8 || memcmp(p, ASYNC_MAGIC, 4) != 0)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: not an async request file (bad magic)", what);
    uint32_t n = async_get_u32(p + 4);
    p += 8;
    /* Each entry takes at least 20 bytes: no allocation beyond the file. */
    if (n > (size_t)(end - p) / 20)
        return err_set(errptr, WEIR_EINVAL,
                       "%s: %u entries cannot fit in %zu bytes", what, n, len);
    async_rec *recs = calloc(n ? n : 1, sizeof *recs);
    if (!recs)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    size_t i = 0;
    for (; i < n; i++) {
        async_rec *r = &recs[i];
        if (end - p < 16)
            goto truncated;
        r->port = async_get_u32(p);
        r->ts = (int64_t)((uint64_t)async_get_u32(p + 4) << 32 |
                          async_get_u32(p + 8));
        r->key_len = async_get_u32(p + 12);
        p += 16;
        if ((size_t)(end - p) < r->key_len + 4)
            goto truncated;
        if (async_dup(p, r->key_len, (char **)&r->key) < 0)
            goto nomem;
        p += r->key_len;
        r->value_len = async_get_u32(p);
        p += 4;
        if ((size_t)(end - p) < r->value_len)
            goto truncated;
        if (async_dup(p, r->value_len, (char **)&r->value) < 0)
            goto nomem;
        p += r->value_len;
    }
    if (p != end) {
        async_recs_free(recs, n);
        return err_set(errptr, WEIR_EINVAL,
                       "%s: %zu bytes after the last entry", what,
                       (size_t)(end - p));
    }
    *out = recs;
    *n_out = n;
    return 0;
truncated:
    async_recs_free(recs, n);
    return err_set(errptr, WEIR_EINVAL, "%s: truncated in entry %zu of %u",
                   what, i, n);
nomem:
    async_recs_free(recs, n);
    return err_set(errptr, WEIR_ENOMEM, "out of memory");
}

int async_snapshot(task *t, const char *path, int *wrote, char **errptr)
{
    async_q *q = t->async;
    *wrote = 0;
    if (!q || q->n_records == 0)
        return 0;
    async_rec *recs = calloc(q->n_records, sizeof *recs);
    if (!recs)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    size_t n = 0;
    for (async_entry *e = q->head; e; e = e->next)
        if (e->kind == ASYNC_RECORD)
            recs[n++] = (async_rec){.port = e->port,
                                    .ts = e->ts,
                                    .key = e->key,
                                    .key_len = e->key_len,
                                    .value = e->value,
                                    .value_len = e->value_len};
    char *data = NULL;
    size_t len = 0;
    int rc = async_encode(recs, n, &data, &len);
    free(recs);
    if (rc < 0)
        return err_set(errptr, rc, "encoding the async requests: %s",
                       weir_strerror(rc));
    rc = fs_write_file(path, data, len, errptr);
    free(data);
    if (rc == 0)
        *wrote = 1;
    return rc;
}

/* Queues the decoded entries of old subtask `from` that this subtask owns
 * (all of them unless `keyed`). */
static int async_take(task *t, async_rec *recs, size_t n, int keyed,
                      char **errptr)
{
    uint32_t maxp = t->rt->plan->max_parallelism;
    for (size_t i = 0; i < n; i++) {
        async_rec *r = &recs[i];
        if (keyed && plan_kg_to_index(plan_key_group(r->key, r->key_len, maxp),
                                      t->ps->parallelism, maxp) != t->ps->index)
            continue;
        if (r->port >= t->reg->n_inputs)
            return err_set(errptr, WEIR_EINVAL,
                           "the checkpoint holds an async request from input "
                           "port %u, but the operator has %zu",
                           r->port, t->reg->n_inputs);
        async_entry *e = calloc(1, sizeof *e);
        if (!e)
            return err_set(errptr, WEIR_ENOMEM, "out of memory");
        e->kind = ASYNC_RECORD;
        e->port = r->port;
        e->ts = r->ts;
        e->key = r->key;
        e->key_len = r->key_len;
        e->value = r->value;
        e->value_len = r->value_len;
        r->key = r->value = NULL;
        async_append(t->async, e);
    }
    return 0;
}

int async_restore(task *t, char **errptr)
{
    const ckpt_manifest *m = t->rt->restore;
    int keyed = (t->reg->op.flags & WEIR_OP_KEYED) != 0;
    for (size_t i = 0; m && i < m->n_tasks; i++) {
        const ckpt_task *e = &m->tasks[i];
        if (strcmp(e->op_id, t->op->id) != 0 || !e->async)
            continue;
        if (!t->async)
            return err_set(errptr, WEIR_EINVAL,
                           "checkpoint %llu holds async requests in flight of "
                           "operator '%s' subtask %u, but its type '%s' is "
                           "no longer asynchronous (no async_invoke)",
                           (unsigned long long)m->id, e->op_id, e->index + 1,
                           t->op->type);
        /* Same parallelism: the own file. Else a keyed operator reads every
         * old subtask's file and keeps what it owns by key group; a
         * non-keyed one takes old subtask j when j % parallelism is its
         * index. */
        int same = e->parallelism == t->ps->parallelism;
        if (same && e->index != t->ps->index)
            continue;
        if (!same && !keyed && e->index % t->ps->parallelism != t->ps->index)
            continue;
        char path[4200], *data = NULL;
        size_t len = 0, n = 0;
        async_rec *recs = NULL;
        snprintf(path, sizeof path, "%s/%s", t->rt->restore_dir, e->async);
        int rc = fs_read_file(path, &data, &len, errptr);
        if (rc == 0)
            rc = async_decode(path, data, len, &recs, &n, errptr);
        free(data);
        if (rc == 0)
            rc = async_take(t, recs, n, keyed && !same, errptr);
        async_recs_free(recs, n);
        if (rc < 0)
            return rc;
    }
    if (t->async && t->async->n_records)
        log_msg(WEIR_LOG_INFO, t->who,
                "%zu async request%s restored from checkpoint %llu; invoked "
                "again before new input",
                t->async->n_records, t->async->n_records == 1 ? "" : "s",
                (unsigned long long)m->id);
    return 0;
}

int async_resume(task *t)
{
    async_q *q = t->async;
    if (!q)
        return 0;
    for (async_entry *e = q->head; e; e = e->next) {
        if (e->kind != ASYNC_RECORD || e->req || e->done || e->retry_ns)
            continue;
        int rc = async_attempt(t, e);
        if (rc < 0)
            return rc;
    }
    async_gauge(t);
    return 0;
}
