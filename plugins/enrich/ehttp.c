/*
 * ehttp.c - the enrich plugin's HTTP backend: libcurl's multi interface on
 * the backend's own I/O thread.
 *
 * The URL of a lookup is the `url` template with every "{key}" replaced by
 * the lookup text, percent-encoded (RFC 3986: everything but ALPHA, DIGIT
 * and "-._~"). Transfers run concurrently on one multi handle, which reuses
 * connections. A response completes its request:
 *   - 2xx: the body parsed as one JSON value (jansson), packed as msgpack;
 *     a body that is not JSON is a final failure;
 *   - 404: missing;
 *   - 408, 429, 5xx: WEIR_ERETRY (the host retries);
 *   - any other status: a final failure naming it;
 *   - a body longer than max_response_size: a final failure;
 *   - request_timeout reached: WEIR_ETIMEDOUT (retried);
 *   - connection errors (refused, reset, resolve, nothing received):
 *     WEIR_ERETRY; other libcurl errors: a final failure.
 * At close every transfer still running is removed and completes with
 * WEIR_ECANCELED.
 */
#define _GNU_SOURCE

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "enrich.h"
#include "jsonrec.h"

/* One transfer: the request, its easy handle and the body so far. */
typedef struct ehttp_xfer {
    struct ehttp_xfer *prev, *next;
    struct ehttp *h;
    enr_req *r;
    CURL *easy;
    char *body;
    size_t len, cap;
    int too_big;
    char errbuf[CURL_ERROR_SIZE];
} ehttp_xfer;

typedef struct ehttp {
    enr_backend base;
    char opname[128];
    char *url; /* the template, NUL-terminated */
    int64_t timeout_ms, connect_timeout_ms, max_body;
    CURLM *multi;
    ehttp_xfer *xfers; /* running, doubly linked */
    weir_mp_writer w;
    int curl_inited;
} ehttp;

static size_t ehttp_write(char *p, size_t size, size_t n, void *arg)
{
    ehttp_xfer *x = arg;
    const struct ehttp *h = x->h;
    size_t m = size * n;
    if (x->len + m > (size_t)h->max_body) {
        x->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + m > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 4096;
        while (cap < x->len + m)
            cap *= 2;
        char *nb = realloc(x->body, cap);
        if (!nb)
            return 0;
        x->body = nb;
        x->cap = cap;
    }
    memcpy(x->body + x->len, p, m);
    x->len += m;
    return m;
}

static void ehttp_unlink(ehttp *h, ehttp_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(h->multi, x->easy);
    curl_easy_cleanup(x->easy);
    free(x->body);
}

static void ehttp_start(ehttp *h, enr_req *r)
{
    ehttp_xfer *x = calloc(1, sizeof *x);
    CURL *e = x ? curl_easy_init() : NULL;
    if (!e) {
        free(x);
        enr_retry(h->base.sh, r, WEIR_ERETRY, "%s: out of memory", h->opname);
        return;
    }
    x->h = h;
    x->r = r;
    x->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, (const char *)&r->arg[0]);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, ehttp_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "weir-enrich/1.0");
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        free(x);
        enr_retry(h->base.sh, r, WEIR_ERETRY,
                  "%s: curl_multi_add_handle "
                  "failed",
                  h->opname);
        return;
    }
    x->next = h->xfers;
    if (h->xfers)
        h->xfers->prev = x;
    h->xfers = x;
}

static int ehttp_transient(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: return 1;
    default: return 0;
    }
}

/* Completes the transfer x that ended with code c, and frees it. */
static void ehttp_done(ehttp *h, ehttp_xfer *x, CURLcode c)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    enr_req *r = x->r;
    char *body = x->body;
    size_t len = x->len;
    int too_big = x->too_big;
    char err[CURL_ERROR_SIZE];
    snprintf(err, sizeof err, "%s",
             x->errbuf[0] ? x->errbuf : curl_easy_strerror(c));
    x->body = NULL;
    ehttp_unlink(h, x);
    free(x);
    enr_shared *sh = h->base.sh;

    if (too_big)
        enr_fail(sh, r,
                 "GET %.200s: the response is longer than "
                 "max_response_size (%lld bytes)",
                 r->arg, (long long)h->max_body);
    else if (c == CURLE_OPERATION_TIMEDOUT)
        enr_retry(sh, r, WEIR_ETIMEDOUT, "%s: GET %.200s: %s", h->opname,
                  r->arg, err);
    else if (c != CURLE_OK && ehttp_transient(c))
        enr_retry(sh, r, WEIR_ERETRY, "%s: GET %.200s: %s", h->opname, r->arg,
                  err);
    else if (c != CURLE_OK)
        enr_fail(sh, r, "GET %.200s: %s", r->arg, err);
    else if (code == 404)
        enr_complete(sh, r, WEIR_OK, ENR_MISSING, NULL, 0);
    else if (code == 408 || code == 429 || code >= 500)
        enr_retry(sh, r, WEIR_ERETRY, "%s: GET %.200s: HTTP %ld", h->opname,
                  r->arg, code);
    else if (code < 200 || code > 299)
        enr_fail(sh, r, "GET %.200s: HTTP %ld", r->arg, code);
    else {
        json_error_t je;
        json_t *j = json_loadb(body ? body : "", len, JSON_DECODE_ANY, &je);
        int rc = WEIR_EINVAL;
        if (j) {
            weir_mp_writer_reset(&h->w);
            rc = jrec_pack_json(&h->w.pk, j, 1);
            json_decref(j);
        }
        if (!j)
            enr_fail(sh, r,
                     "GET %.200s: the response is not JSON: %s "
                     "(line %d, column %d)",
                     r->arg, je.text, je.line, je.column);
        else if (rc == WEIR_EINVAL)
            enr_fail(sh, r,
                     "GET %.200s: the JSON response nests deeper "
                     "than %d levels",
                     r->arg, JREC_MAX_DEPTH - 1);
        else if (rc < 0)
            enr_retry(sh, r, WEIR_ERETRY, "%s: out of memory", h->opname);
        else
            enr_complete(sh, r, WEIR_OK, ENR_FOUND, h->w.buf.data,
                         h->w.buf.size);
    }
    free(body);
}

static void *ehttp_main(void *arg)
{
    ehttp *h = arg;
    for (;;) {
        struct curl_waitfd wfd = {.fd = h->base.q.wake_fd,
                                  .events = CURL_WAIT_POLLIN};
        int numfds = 0;
        if (curl_multi_poll(h->multi, &wfd, 1, 1000, &numfds) != CURLM_OK)
            break;
        enr_req *list;
        int stop = enr_queue_take(&h->base.q, &list);
        if (stop) {
            enr_cancel_list(h->base.sh, list);
            break;
        }
        while (list) {
            enr_req *r = list;
            list = list->next;
            ehttp_start(h, r);
        }
        int running;
        curl_multi_perform(h->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(h->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            ehttp_xfer *x;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            ehttp_done(h, x, m->data.result);
        }
    }
    while (h->xfers) {
        ehttp_xfer *x = h->xfers;
        enr_req *r = x->r;
        ehttp_unlink(h, x);
        free(x);
        enr_complete(h->base.sh, r, WEIR_ECANCELED, 0, NULL, 0);
    }
    return NULL;
}

/* ---- open / close ----------------------------------------------------- */

static void ehttp_destroy(enr_backend *b)
{
    ehttp *h = (ehttp *)b;
    if (h->multi)
        curl_multi_cleanup(h->multi);
    if (h->curl_inited)
        curl_global_cleanup();
    enr_queue_destroy(&h->base.q);
    weir_mp_writer_destroy(&h->w);
    free(h->url);
    free(h);
}

static int ehttp_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int ehttp_arg(enr_backend *b, const char *key, size_t len, char **out,
                     size_t *out_len)
{
    ehttp *h = (ehttp *)b;
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0, tl = strlen(h->url), enc = 0;
    for (size_t i = 0; i < len; i++)
        enc += ehttp_unreserved((unsigned char)key[i]) ? 1 : 3;
    for (const char *p = h->url; (p = strstr(p, "{key}")); p += 5)
        n++;
    char *u = malloc(tl + n * enc + 1), *o = u;
    if (!u)
        return WEIR_ENOMEM;
    for (const char *p = h->url; *p;) {
        if (strncmp(p, "{key}", 5) != 0) {
            *o++ = *p++;
            continue;
        }
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)key[i];
            if (ehttp_unreserved(c)) {
                *o++ = (char)c;
            } else {
                *o++ = '%';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
        }
        p += 5;
    }
    *o = '\0';
    *out = u;
    *out_len = (size_t)(o - u);
    return WEIR_OK;
}

int enr_http_open(weir_ctx *ctx, const char *opname, enr_shared *sh,
                  enr_backend **out)
{
    ehttp *h = calloc(1, sizeof *h);
    if (!h)
        return weir_set_error(ctx, "%s: out of memory", opname), WEIR_ENOMEM;
    snprintf(h->opname, sizeof h->opname, "%s", opname);
    h->base.sh = sh;
    h->base.arg = ehttp_arg;
    h->base.destroy = ehttp_destroy;
    weir_mp_writer_init(&h->w);
    if (enr_queue_init(&h->base.q) < 0) {
        weir_mp_writer_destroy(&h->w);
        free(h);
        return weir_set_error(ctx, "%s: pipe: %s", opname, strerror(errno)),
               WEIR_EIO;
    }
    const char *u;
    size_t ul;
    int rc;
    if ((rc = weir_param_string(ctx, "url", &u, &ul)) < 0 ||
        (rc = weir_param_int(ctx, "request_timeout", &h->timeout_ms)) < 0 ||
        (rc = weir_param_int(ctx, "connect_timeout", &h->connect_timeout_ms)) <
            0 ||
        (rc = weir_param_int(ctx, "max_response_size", &h->max_body)) < 0) {
        weir_set_error(ctx, "%s: reading the parameters failed", opname);
        goto out;
    }
    if (!((ul > 7 && strncmp(u, "http://", 7) == 0) ||
          (ul > 8 && strncmp(u, "https://", 8) == 0)) ||
        memchr(u, '\0', ul) || !memmem(u, ul, "{key}", 5)) {
        weir_set_error(ctx,
                       "%s: url: '%.*s' must start with http:// or https:// "
                       "and contain {key} (the lookup text, percent-encoded)",
                       opname, (int)(ul > 200 ? 200 : ul), u);
        rc = WEIR_EINVAL;
        goto out;
    }
    if (!(h->url = strndup(u, ul))) {
        weir_set_error(ctx, "%s: out of memory", opname);
        rc = WEIR_ENOMEM;
        goto out;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        weir_set_error(ctx, "%s: curl_global_init failed", opname);
        rc = WEIR_EFAIL;
        goto out;
    }
    h->curl_inited = 1;
    if (!(h->multi = curl_multi_init())) {
        weir_set_error(ctx, "%s: curl_multi_init failed", opname);
        rc = WEIR_ENOMEM;
        goto out;
    }
    if ((rc = pthread_create(&h->base.thread, NULL, ehttp_main, h)) != 0) {
        weir_set_error(ctx, "%s: starting the I/O thread: %s", opname,
                       strerror(rc));
        rc = WEIR_EFAIL;
        goto out;
    }
    h->base.started = 1;
    *out = &h->base;
    return WEIR_OK;
out:
    ehttp_destroy(&h->base);
    return rc;
}
