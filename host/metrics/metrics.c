#include "metrics/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* Upper bounds of the histogram buckets (Prometheus' defaults); +Inf is
 * implied. */
static const double metrics_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                         0.5,   1,    2.5,   5,    10};
#define METRICS_N_BUCKETS (sizeof metrics_buckets / sizeof metrics_buckets[0])

struct weir_metric {
    weir_metric_kind kind;
    char *name, *help, *op_id, *label_name, *label_value;
    uint32_t subtask;
    _Atomic uint64_t count; /* counter; histogram observations */
    _Atomic double value;   /* gauge; histogram sum */
    _Atomic uint64_t buckets[METRICS_N_BUCKETS];
    struct weir_metric *next;
};

struct metrics_registry {
    pthread_mutex_t lock;
    char *job;
    weir_metric *head;
};

metrics_registry *metrics_new(const char *job)
{
    metrics_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->job = strdup(job ? job : ""))) {
        free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

static void metrics_free_one(weir_metric *m)
{
    free(m->name);
    free(m->help);
    free(m->op_id);
    free(m->label_name);
    free(m->label_value);
    free(m);
}

void metrics_free(metrics_registry *r)
{
    if (!r)
        return;
    for (weir_metric *m = r->head, *n; m; m = n) {
        n = m->next;
        metrics_free_one(m);
    }
    pthread_mutex_destroy(&r->lock);
    free(r->job);
    free(r);
}

static int metrics_name_ok(const char *s, int colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':')))
            return 0;
    return 1;
}

static int metrics_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int metrics_check(metrics_registry *r, weir_metric_kind kind,
                         const char *name, const char *label_name,
                         const char *label_value, char **errptr)
{
    static const char *const reserved[] = {"job", "operator", "subtask", "le"};
    if (kind < WEIR_METRIC_COUNTER || kind > WEIR_METRIC_HISTOGRAM)
        return err_set(errptr, WEIR_EINVAL, "metric %s: unknown kind %d",
                       name ? name : "?", (int)kind);
    if (!metrics_name_ok(name, 1))
        return err_set(errptr, WEIR_EINVAL,
                       "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                       name ? name : "(null)");
    if (label_value && !label_name)
        return err_set(errptr, WEIR_EINVAL,
                       "metric %s: a label value needs a label name", name);
    if (label_name && !metrics_name_ok(label_name, 0))
        return err_set(errptr, WEIR_EINVAL,
                       "metric %s: label name '%s' is not "
                       "[a-zA-Z_][a-zA-Z0-9_]*",
                       name, label_name);
    for (size_t i = 0; label_name && i < 4; i++)
        if (!strcmp(label_name, reserved[i]))
            return err_set(errptr, WEIR_EINVAL,
                           "metric %s: label '%s' is the host's", name,
                           label_name);
    for (weir_metric *m = r->head; m; m = m->next)
        if (!strcmp(m->name, name) && m->kind != kind)
            return err_set(errptr, WEIR_EINVAL,
                           "metric %s is already registered with another kind",
                           name);
    return 0;
}

int metrics_register(metrics_registry *r, weir_metric_kind kind,
                     const char *name, const char *help, const char *op_id,
                     uint32_t subtask, const char *label_name,
                     const char *label_value, weir_metric **out, char **errptr)
{
    pthread_mutex_lock(&r->lock);
    int rc = metrics_check(r, kind, name, label_name, label_value, errptr);
    if (rc < 0)
        goto out;
    for (weir_metric *m = r->head; m; m = m->next)
        if (!strcmp(m->name, name) && metrics_same(m->op_id, op_id) &&
            m->subtask == subtask && metrics_same(m->label_name, label_name) &&
            metrics_same(m->label_value, label_value)) {
            *out = m;
            goto out;
        }
    weir_metric *m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name)) ||
        !(m->help = strdup(help ? help : "")) ||
        (op_id && !(m->op_id = strdup(op_id))) ||
        (label_name && !(m->label_name = strdup(label_name))) ||
        (label_name &&
         !(m->label_value = strdup(label_value ? label_value : "")))) {
        if (m)
            metrics_free_one(m);
        rc = err_set(errptr, WEIR_ENOMEM, "out of memory");
        goto out;
    }
    m->kind = kind;
    m->subtask = subtask;
    m->next = r->head;
    r->head = m;
    *out = m;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void metrics_counter_add(weir_metric *m, uint64_t delta)
{
    atomic_fetch_add_explicit(&m->count, delta, memory_order_relaxed);
}

void metrics_gauge_set(weir_metric *m, double value)
{
    atomic_store_explicit(&m->value, value, memory_order_relaxed);
}

void metrics_histogram_observe(weir_metric *m, double value)
{
    for (size_t i = 0; i < METRICS_N_BUCKETS; i++)
        if (value <= metrics_buckets[i]) {
            atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
            break;
        }
    double old = atomic_load_explicit(&m->value, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->value, &old, old + value,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
}

double metrics_value(const weir_metric *m)
{
    weir_metric *w = (weir_metric *)m;
    return m->kind == WEIR_METRIC_GAUGE ? atomic_load(&w->value)
                                        : (double)atomic_load(&w->count);
}

/* An in-memory text buffer for rendering. */
typedef struct metrics_buf {
    FILE *f;
    char *p;
    size_t n;
} metrics_buf;

/* Writes a label value with the escapes of the text format. */
static void metrics_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fprintf(f, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

/* Writes a # HELP text with the escapes of the text format, and a newline. */
static void metrics_help(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('\n', f);
}

/* {job_name="..",operator="..",subtask="..",label="..",extra} */
static void metrics_labels(FILE *f, const metrics_registry *r,
                           const weir_metric *m, const char *le)
{
    fputs("{job_name=\"", f);
    metrics_escape(f, r->job);
    fputc('"', f);
    if (m->op_id) {
        fputs(",operator=\"", f);
        metrics_escape(f, m->op_id);
        fprintf(f, "\",subtask=\"%u\"", m->subtask);
    }
    if (m->label_name) {
        fprintf(f, ",%s=\"", m->label_name);
        metrics_escape(f, m->label_value);
        fputc('"', f);
    }
    if (le)
        fprintf(f, ",le=\"%s\"", le);
    fputc('}', f);
}

static void metrics_render_one(FILE *f, const metrics_registry *r,
                               weir_metric *m)
{
    if (m->kind != WEIR_METRIC_HISTOGRAM) {
        fputs(m->name, f);
        metrics_labels(f, r, m, NULL);
        if (m->kind == WEIR_METRIC_COUNTER)
            fprintf(f, " %llu\n", (unsigned long long)atomic_load(&m->count));
        else
            fprintf(f, " %.17g\n", atomic_load(&m->value));
        return;
    }
    uint64_t cum = 0;
    char le[32];
    for (size_t i = 0; i < METRICS_N_BUCKETS; i++) {
        cum += atomic_load(&m->buckets[i]);
        snprintf(le, sizeof le, "%g", metrics_buckets[i]);
        fprintf(f, "%s_bucket", m->name);
        metrics_labels(f, r, m, le);
        fprintf(f, " %llu\n", (unsigned long long)cum);
    }
    uint64_t count = atomic_load(&m->count);
    fprintf(f, "%s_bucket", m->name);
    metrics_labels(f, r, m, "+Inf");
    fprintf(f, " %llu\n%s_sum", (unsigned long long)count, m->name);
    metrics_labels(f, r, m, NULL);
    fprintf(f, " %.17g\n%s_count", atomic_load(&m->value), m->name);
    metrics_labels(f, r, m, NULL);
    fprintf(f, " %llu\n", (unsigned long long)count);
}

/* Orders by name (families together), then operator, subtask and label. */
static int metrics_cmp(const void *a, const void *b)
{
    const weir_metric *x = *(weir_metric *const *)a;
    const weir_metric *y = *(weir_metric *const *)b;
    int c = strcmp(x->name, y->name);
    if (c == 0)
        c = strcmp(x->op_id ? x->op_id : "", y->op_id ? y->op_id : "");
    if (c == 0 && x->subtask != y->subtask)
        c = x->subtask < y->subtask ? -1 : 1;
    if (c == 0)
        c = strcmp(x->label_value ? x->label_value : "",
                   y->label_value ? y->label_value : "");
    return c;
}

char *metrics_render(metrics_registry *r)
{
    char *out = NULL;
    size_t len = 0, n = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    pthread_mutex_lock(&r->lock);
    for (weir_metric *m = r->head; m; m = m->next)
        n++;
    weir_metric **v = calloc(n + 1, sizeof *v);
    n = 0;
    for (weir_metric *m = r->head; v && m; m = m->next)
        v[n++] = m;
    pthread_mutex_unlock(&r->lock);
    if (v) {
        qsort(v, n, sizeof *v, metrics_cmp);
        static const char *const types[] = {"", "counter", "gauge",
                                            "histogram"};
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || strcmp(v[i]->name, v[i - 1]->name) != 0) {
                fprintf(f, "# HELP %s ", v[i]->name);
                metrics_help(f, v[i]->help);
                fprintf(f, "# TYPE %s %s\n", v[i]->name, types[v[i]->kind]);
            }
            metrics_render_one(f, r, v[i]);
        }
    }
    free(v);
    fclose(f);
    return out;
}
