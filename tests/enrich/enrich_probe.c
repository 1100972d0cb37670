/*
 * enrich_probe.c - drives the enrich plugin's operators directly through
 * a fake host (th.c) plus an async_complete service of its own, so the
 * plugin's client code (queue, I/O thread, hiredis, libcurl, merge, close)
 * is tested without the runtime (CMakeLists.txt says why this is the one
 * plugin test not on the harness).
 *
 *   enrich_probe OPERATOR [--close-after MS] [name=value]... < lines
 *
 * Every input line is a JSON object: record i (0-based) gets it as its
 * value (msgpack) and its line number as key. All records are invoked at
 * once. Without --close-after the probe waits (at most 60 s) until every
 * request completed, then calls on_async_result() for each in input order
 * and prints one JSON line per record:
 *   {"i":i,"status":s,"rc":rc,"error":"...","emits":[{"port":p,"value":v}]}
 * (status is the completion status, rc what on_async_result returned,
 * error the operator's message when rc < 0). With --close-after MS it
 * waits MS ms, calls close(), and prints per record
 *   {"i":i,"completions":n,"status":s}
 * so that the caller sees every request completed exactly once, those not
 * done before close with WEIR_ECANCELED. It also checks that close()
 * returned with no completion arriving later. Exit 0 unless the probe
 * itself failed (bad usage, open() failed: status 3 and the error on
 * stderr).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "th.h"
#include "tutil.h"

#ifndef ENRICH_SO
#error ENRICH_SO must name the plugin
#endif

/* The host's request handle, opaque to the plugin. */
struct weir_async {
    int completions;
    int status;
    char *result;
    size_t len;
};

static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_cv = PTHREAD_COND_INITIALIZER;
static size_t probe_done;

static int probe_complete(weir_async *req, int status, const void *result,
                          size_t len)
{
    if (!req)
        return WEIR_EINVAL;
    pthread_mutex_lock(&probe_mu);
    int first = req->completions++ == 0;
    if (first) {
        req->status = status;
        req->len = len;
        req->result = malloc(len + 1);
        if (len)
            memcpy(req->result, result, len);
        probe_done++;
        pthread_cond_broadcast(&probe_cv);
    }
    pthread_mutex_unlock(&probe_mu);
    return first ? WEIR_OK : WEIR_EINVAL;
}

static void probe_pack_json(msgpack_packer *pk, json_t *v)
{
    size_t i;
    const char *k;
    json_t *x;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(v));
        json_object_foreach(v, k, x)
        {
            msgpack_pack_str(pk, strlen(k));
            msgpack_pack_str_body(pk, k, strlen(k));
            probe_pack_json(pk, x);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(v));
        json_array_foreach(v, i, x) probe_pack_json(pk, x);
        break;
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(v));
        msgpack_pack_str_body(pk, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(v)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(v)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    default: msgpack_pack_nil(pk); break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: enrich_probe OPERATOR [--close-after MS] "
                        "[name=value]...\n");
        return 2;
    }
    long close_after = -1;
    th_param params[64];
    size_t np = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--close-after") == 0 && i + 1 < argc) {
            close_after = atol(argv[++i]);
            continue;
        }
        char *eq = strchr(argv[i], '=');
        if (!eq || np + 1 >= 64) {
            fprintf(stderr, "bad parameter '%s'\n", argv[i]);
            return 2;
        }
        *eq = '\0';
        params[np].name = argv[i];
        params[np++].value = eq + 1;
    }
    params[np].name = NULL;
    params[np].value = NULL;

    const weir_operator *op = th_load(ENRICH_SO, argv[1]);
    th_inst *t = th_new(op, params, 0, 1);
    static weir_host_api api;
    api = *t->ctx.api;
    api.async_complete = probe_complete;
    t->ctx.api = &api;
    int rc = th_open(t);
    if (rc < 0) {
        fprintf(stderr, "open failed (%d): %s\n", rc, t->error);
        th_free(t);
        return 3;
    }

    /* Records. */
    size_t n = 0, cap = 0;
    msgpack_sbuffer *vals = NULL;
    char **keys = NULL;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    while ((ll = getline(&line, &lcap, stdin)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)ll, 0, &je);
        if (!j) {
            fprintf(stderr, "line %zu: %s\n", n + 1, je.text);
            return 2;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            vals = realloc(vals, cap * sizeof *vals);
            keys = realloc(keys, cap * sizeof *keys);
        }
        msgpack_sbuffer_init(&vals[n]);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &vals[n], msgpack_sbuffer_write);
        probe_pack_json(&pk, j);
        json_decref(j);
        if (asprintf(&keys[n], "%zu", n) < 0)
            return 2;
        n++;
    }
    free(line);
    weir_async *reqs = calloc(n ? n : 1, sizeof *reqs);
    weir_record *recs = calloc(n ? n : 1, sizeof *recs);
    for (size_t i = 0; i < n; i++) {
        recs[i] = (weir_record){.size = sizeof(weir_record),
                                .key = keys[i],
                                .key_len = strlen(keys[i]),
                                .ts = (int64_t)i,
                                .value = vals[i].data,
                                .value_len = vals[i].size};
        rc = op->async_invoke(&t->ctx, t->self, &recs[i], 0, &reqs[i]);
        if (rc < 0) {
            fprintf(stderr, "async_invoke %zu failed (%d): %s\n", i, rc,
                    t->error);
            return 3;
        }
    }

    if (close_after >= 0) {
        struct timespec ts = {close_after / 1000, close_after % 1000 * 1000000};
        nanosleep(&ts, NULL);
        th_close(t);
        /* Anything completing now would come after close() returned. */
        pthread_mutex_lock(&probe_mu);
        size_t at_close = probe_done;
        pthread_mutex_unlock(&probe_mu);
        usleep(200000);
        pthread_mutex_lock(&probe_mu);
        int late = probe_done != at_close;
        for (size_t i = 0; i < n; i++)
            printf("{\"i\":%zu,\"completions\":%d,\"status\":%d}\n", i,
                   reqs[i].completions, reqs[i].status);
        pthread_mutex_unlock(&probe_mu);
        if (late)
            printf("{\"late_completions\":true}\n");
        goto out;
    }

    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    pthread_mutex_lock(&probe_mu);
    while (probe_done < n &&
           pthread_cond_timedwait(&probe_cv, &probe_mu, &dl) != ETIMEDOUT)
        ;
    size_t done = probe_done;
    pthread_mutex_unlock(&probe_mu);
    if (done < n) {
        fprintf(stderr, "only %zu of %zu requests completed in 60 s\n", done,
                n);
        return 3;
    }
    for (size_t i = 0; i < n; i++) {
        th_clear_recs(t);
        t->error[0] = '\0';
        rc = op->on_async_result(&t->ctx, t->self, &recs[i], 0, reqs[i].status,
                                 reqs[i].status == 0 ? reqs[i].result : NULL,
                                 reqs[i].status == 0 ? reqs[i].len : 0);
        json_t *o = json_pack("{s:I,s:i,s:i,s:s,s:[]}", "i", (json_int_t)i,
                              "status", reqs[i].status, "rc", rc, "error",
                              rc < 0 ? t->error : "", "emits");
        json_t *em = json_object_get(o, "emits");
        for (size_t k = 0; k < t->n_recs; k++) {
            json_t *v = tu_mp_to_json(t->recs[k].value, t->recs[k].value_len);
            json_array_append_new(
                em,
                json_pack("{s:i,s:o,s:s%,s:I}", "port", (int)t->recs[k].port,
                          "value", v ? v : json_null(), "key", t->recs[k].key,
                          t->recs[k].key_len, "ts", (json_int_t)t->recs[k].ts));
        }
        char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    }
out:
    th_free(t);
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_destroy(&vals[i]);
        free(keys[i]);
        free(reqs[i].result);
    }
    free(vals);
    free(keys);
    free(reqs);
    free(recs);
    return 0;
}
