/*
 * enrich_probe.c - drives the enrich plugin's operators on the test harness
 * (weir/testing.h) in its direct async mode (config.async_direct): the
 * probe calls async_invoke() and on_async_result() itself, and the harness
 * records every weir_async_complete() the plugin makes, so the plugin's
 * client code (queue, I/O thread, hiredis, libcurl, merge, close) and its
 * side of the async contract are tested without the runtime's async layer,
 * which would retry, time out and drop late completions.
 *
 *   enrich_probe OPERATOR [--close-after MS] [name=value]... < lines
 *
 * A parameter's value is its text: the probe writes it as a YAML scalar
 * (quoted unless it is a plain word or number). Every input line is a JSON
 * object: record i (0-based) gets it as its value (msgpack) and its line
 * number as key. All records are invoked at once. Without --close-after
 * the probe waits (at most 60 s) until every request completed, then
 * delivers each to on_async_result() in input order and prints one JSON
 * line per record:
 *   {"i":i,"status":s,"rc":rc,"error":"...","emits":[{"port":p,"value":v}]}
 * (status is the completion status, rc what on_async_result returned,
 * error the harness's message when rc < 0). With --close-after MS it
 * waits MS ms, closes the instance, waits 200 ms more and prints per record
 *   {"i":i,"completions":n,"status":s}
 * so that the caller sees every request completed exactly once, those not
 * done before close with WEIR_ECANCELED, and {"late_completions":true} when
 * a completion came after close() had returned. Exit 0 unless the probe
 * itself failed (bad usage: 2; open() or async_invoke() failed: 3, with
 * the error on stderr).
 */
#define _GNU_SOURCE

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tutil.h"

#include "weir/testing.h"

#ifndef ENRICH_SO
#error ENRICH_SO must name the plugin
#endif

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

/* `v` as a one-line YAML scalar: as it is when it is a plain word or
 * number, else double-quoted. Returns a malloc'ed string or NULL. */
static char *probe_yaml_scalar(const char *v)
{
    if (*v && strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_.") == strlen(v))
        return strdup(v);
    char *q = malloc(2 * strlen(v) + 3), *o = q;
    if (!q)
        return NULL;
    *o++ = '"';
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            *o++ = '\\';
        *o++ = *v;
    }
    *o++ = '"';
    *o = '\0';
    return q;
}

/* Reads the input lines into msgpack values; their keys are their
 * numbers. Returns the count or -1 (message on stderr). */
static long probe_read(msgpack_sbuffer **vals, char ***keys)
{
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t ll;
    *vals = NULL;
    *keys = NULL;
    while ((ll = getline(&line, &lcap, stdin)) > 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)ll, 0, &je);
        if (!j) {
            fprintf(stderr, "line %zu: %s\n", n + 1, je.text);
            free(line);
            return -1;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            *vals = realloc(*vals, cap * sizeof **vals);
            *keys = realloc(*keys, cap * sizeof **keys);
            if (!*vals || !*keys)
                abort();
        }
        msgpack_sbuffer_init(&(*vals)[n]);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &(*vals)[n], msgpack_sbuffer_write);
        probe_pack_json(&pk, j);
        json_decref(j);
        if (asprintf(&(*keys)[n], "%zu", n) < 0)
            abort();
        n++;
    }
    free(line);
    return (long)n;
}

/* --close-after: closes the instance while requests are in flight. */
static void probe_close_after(weir_test *t, size_t n, long ms)
{
    struct timespec ts = {ms / 1000, ms % 1000 * 1000000};
    nanosleep(&ts, NULL);
    weir_test_close(t);
    /* Anything completing now comes after close() returned. */
    usleep(200000);
    uint32_t late = 0;
    for (size_t i = 0; i < n; i++) {
        weir_test_async_request r;
        if (weir_test_async_request_info(t, i, &r) < 0)
            abort();
        late += r.late;
        printf("{\"i\":%zu,\"completions\":%u,\"status\":%d}\n", i,
               r.completions, r.status);
    }
    if (late)
        printf("{\"late_completions\":true}\n");
}

/* Delivers request i and prints what on_async_result() did. */
static void probe_deliver(weir_test *t, size_t i)
{
    weir_test_async_request r;
    if (weir_test_async_request_info(t, i, &r) < 0)
        abort();
    weir_test_clear_emitted(t, WEIR_TEST_ALL_PORTS);
    int rc = weir_test_async_deliver(t, i);
    json_t *o = json_pack("{s:I,s:i,s:i,s:s,s:[]}", "i", (json_int_t)i,
                          "status", r.status, "rc", rc, "error",
                          rc < 0 ? weir_test_error(t) : "", "emits");
    json_t *em = json_object_get(o, "emits");
    const weir_test_record *e;
    for (size_t k = 0; (e = weir_test_emitted(t, WEIR_TEST_ALL_PORTS, k));
         k++) {
        json_t *v = tu_mp_to_json(e->value, e->value_len);
        json_array_append_new(
            em, json_pack("{s:i,s:o,s:s%,s:I}", "port", (int)e->port, "value",
                          v ? v : json_null(), "key", (const char *)e->key,
                          e->key_len, "ts", (json_int_t)e->ts));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", s);
    free(s);
    json_decref(o);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: enrich_probe OPERATOR [--close-after MS] "
                        "[name=value]...\n");
        return 2;
    }
    long close_after = -1;
    weir_test_param params[64];
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
        if (!(params[np++].value = probe_yaml_scalar(eq + 1)))
            abort();
    }
    params[np] = (weir_test_param){NULL, NULL};

    msgpack_sbuffer *vals;
    char **keys;
    long nread = probe_read(&vals, &keys);
    if (nread < 0)
        return 2;
    size_t n = (size_t)nread;

    weir_test_config c;
    weir_test_config_init(&c);
    c.plugin_path = ENRICH_SO;
    c.op = argv[1];
    c.params = params;
    c.async_direct = 1;
    weir_test *t = NULL;
    int rc = weir_test_new(&c, &t), status = 0;
    if (rc < 0) {
        fprintf(stderr, "open failed (%d): %s\n", rc, weir_test_error(t));
        status = 3;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = weir_test_async_invoke(t, 0, keys[i], strlen(keys[i]), (int64_t)i,
                                    vals[i].data, vals[i].size, NULL);
        if (rc < 0) {
            fprintf(stderr, "async_invoke %zu failed (%d): %s\n", i, rc,
                    weir_test_error(t));
            status = 3;
            goto out;
        }
    }
    if (close_after >= 0) {
        probe_close_after(t, n, close_after);
        goto out;
    }
    if (weir_test_async_wait_completed(t, n, 60000) < 0) {
        fprintf(stderr, "%s\n", weir_test_error(t));
        status = 3;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        probe_deliver(t, i);
out:
    weir_test_free(t);
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_destroy(&vals[i]);
        free(keys[i]);
    }
    free(vals);
    free(keys);
    for (size_t i = 0; i < np; i++)
        free((void *)params[i].value);
    return status;
}
