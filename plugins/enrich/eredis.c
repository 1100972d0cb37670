/*
 * eredis.c - the enrich plugin's Redis backend: hiredis' asynchronous API
 * driven by a poll() loop on the backend's own I/O thread, through
 * redisAsyncContext's event hooks (hiredis 0.14 ships no adapter that needs
 * no event library).
 *
 * One connection per instance. Lookups are pipelined on it: every request
 * taken from the queue is sent at once (HGETALL or GET <key>) and its reply
 * completes it, so as many lookups are in flight as the host's async
 * capacity lets in. The connection is made by the thread when it starts
 * and again `reconnect_delay` after it failed or was lost; requests sent
 * while a connect is in progress wait in hiredis' buffer. A request that
 * meets no connection, or whose connection is lost before its reply,
 * completes with WEIR_ERETRY (the host retries it); an error reply
 * completes it as a final failure, except the transient LOADING, BUSY,
 * TRYAGAIN and MASTERDOWN ones. At close every request still waiting for
 * its reply completes with WEIR_ECANCELED (redisAsyncFree calls the
 * callbacks of pending commands with no reply).
 */
#define _GNU_SOURCE

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "enrich.h"
#include "jsonrec.h"

enum { EREDIS_HGETALL, EREDIS_GET, EREDIS_GET_JSON };

typedef struct eredis {
    enr_backend base;
    char opname[128];
    char host[256];
    int port;
    char *unix_path; /* or NULL: TCP to host:port */
    int cmd;
    char *prefix;
    size_t prefix_len;
    int64_t reconnect_ms;
    redisAsyncContext *ac; /* NULL while disconnected */
    int want_read, want_write;
    int closing;
    int64_t next_connect; /* monotonic ms */
    char conn_error[200];
    weir_mp_writer w;
} eredis;

static int64_t eredis_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- event hooks: poll() watches what hiredis asks for ---------------- */

static void eredis_add_read(void *p)
{
    ((eredis *)p)->want_read = 1;
}
static void eredis_del_read(void *p)
{
    ((eredis *)p)->want_read = 0;
}
static void eredis_add_write(void *p)
{
    ((eredis *)p)->want_write = 1;
}
static void eredis_del_write(void *p)
{
    ((eredis *)p)->want_write = 0;
}
static void eredis_cleanup(void *p)
{
    eredis *s = p;
    s->want_read = s->want_write = 0;
}

/* The connection is gone (hiredis frees the context after this returns). */
static void eredis_lost(eredis *s, const redisAsyncContext *ac,
                        const char *what)
{
    snprintf(s->conn_error, sizeof s->conn_error, "%s: %s", what,
             ac && ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
    s->ac = NULL;
    s->want_read = s->want_write = 0;
    s->next_connect = eredis_now() + s->reconnect_ms;
}

static void eredis_on_connect(const redisAsyncContext *ac, int status)
{
    eredis *s = ac->data;
    if (status != REDIS_OK)
        eredis_lost(s, ac, "connect failed");
}

static void eredis_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    eredis *s = ac->data;
    eredis_lost(s, ac, "connection lost");
}

static void eredis_connect(eredis *s)
{
    redisAsyncContext *ac = s->unix_path ? redisAsyncConnectUnix(s->unix_path)
                                         : redisAsyncConnect(s->host, s->port);
    if (!ac) {
        snprintf(s->conn_error, sizeof s->conn_error, "connect: out of memory");
        s->next_connect = eredis_now() + s->reconnect_ms;
        return;
    }
    if (ac->err) {
        snprintf(s->conn_error, sizeof s->conn_error, "connect failed: %s",
                 ac->errstr);
        redisAsyncFree(ac);
        s->next_connect = eredis_now() + s->reconnect_ms;
        return;
    }
    ac->data = s;
    ac->ev.data = s;
    ac->ev.addRead = eredis_add_read;
    ac->ev.delRead = eredis_del_read;
    ac->ev.addWrite = eredis_add_write;
    ac->ev.delWrite = eredis_del_write;
    ac->ev.cleanup = eredis_cleanup;
    redisAsyncSetConnectCallback(ac, eredis_on_connect);
    redisAsyncSetDisconnectCallback(ac, eredis_on_disconnect);
    s->ac = ac;
    /* A non-blocking connect completes when the socket becomes writable. */
    s->want_write = 1;
}

/* ---- replies ---------------------------------------------------------- */

static int eredis_transient(const char *err)
{
    static const char *const codes[] = {"LOADING", "BUSY", "TRYAGAIN",
                                        "MASTERDOWN", NULL};
    for (int i = 0; codes[i]; i++)
        if (strncmp(err, codes[i], strlen(codes[i])) == 0)
            return 1;
    return 0;
}

static int eredis_found(eredis *s, enr_req *r)
{
    return enr_complete(s->base.sh, r, WEIR_OK, ENR_FOUND, s->w.buf.data,
                        s->w.buf.size);
}

static int eredis_string(eredis *s, enr_req *r, const redisReply *rep)
{
    weir_mp_writer_reset(&s->w);
    if (s->cmd == EREDIS_GET) {
        if (weir_mp_pack_strn(&s->w.pk, rep->str, rep->len) != 0)
            return enr_retry(s->base.sh, r, WEIR_ERETRY, "out of memory");
        return eredis_found(s, r);
    }
    json_error_t je;
    json_t *j = json_loadb(rep->str, rep->len, JSON_DECODE_ANY, &je);
    if (!j)
        return enr_fail(s->base.sh, r,
                        "the value of Redis key '%.100s' is not JSON: %s "
                        "(column %d)",
                        r->arg, je.text, je.column);
    int rc = jrec_pack_json(&s->w.pk, j, 1);
    json_decref(j);
    if (rc == WEIR_EINVAL)
        return enr_fail(s->base.sh, r,
                        "the JSON value of Redis key '%.100s' nests deeper "
                        "than %d levels",
                        r->arg, JREC_MAX_DEPTH - 1);
    if (rc < 0)
        return enr_retry(s->base.sh, r, WEIR_ERETRY, "out of memory");
    return eredis_found(s, r);
}

static int eredis_hash(eredis *s, enr_req *r, const redisReply *rep)
{
    if (rep->elements == 0)
        return enr_complete(s->base.sh, r, WEIR_OK, ENR_MISSING, NULL, 0);
    if (rep->elements % 2 || rep->elements / 2 > UINT32_MAX)
        return enr_fail(s->base.sh, r, "HGETALL '%.100s': odd reply", r->arg);
    weir_mp_writer_reset(&s->w);
    int rc = msgpack_pack_map(&s->w.pk, (uint32_t)(rep->elements / 2));
    for (size_t i = 0; i < rep->elements && rc == 0; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_STRING)
            return enr_fail(s->base.sh, r,
                            "HGETALL '%.100s': element %zu is not a string",
                            r->arg, i);
        rc = weir_mp_pack_strn(&s->w.pk, e->str, e->len);
    }
    if (rc != 0)
        return enr_retry(s->base.sh, r, WEIR_ERETRY, "out of memory");
    return eredis_found(s, r);
}

/* Completes r with reply rep (NULL: none, the connection is gone). */
static int eredis_handle(eredis *s, redisAsyncContext *ac, enr_req *r,
                         const redisReply *rep)
{
    if (!rep) {
        if (s->closing)
            return enr_complete(s->base.sh, r, WEIR_ECANCELED, 0, NULL, 0);
        return enr_retry(s->base.sh, r, WEIR_ERETRY,
                         "%s: Redis connection lost before the reply for "
                         "key '%.100s': %s",
                         s->opname, r->arg,
                         ac->errstr && ac->errstr[0] ? ac->errstr : "closed");
    }
    switch (rep->type) {
    case REDIS_REPLY_NIL:
        return enr_complete(s->base.sh, r, WEIR_OK, ENR_MISSING, NULL, 0);
    case REDIS_REPLY_ERROR:
        if (eredis_transient(rep->str))
            return enr_retry(s->base.sh, r, WEIR_ERETRY,
                             "%s: Redis key '%.100s': %.100s", s->opname,
                             r->arg, rep->str);
        return enr_fail(s->base.sh, r, "Redis error for key '%.100s': %.120s",
                        r->arg, rep->str);
    case REDIS_REPLY_STRING:
        if (s->cmd != EREDIS_HGETALL)
            return eredis_string(s, r, rep);
        break;
    case REDIS_REPLY_ARRAY:
        if (s->cmd == EREDIS_HGETALL)
            return eredis_hash(s, r, rep);
        break;
    default: break;
    }
    return enr_fail(s->base.sh, r,
                    "Redis key '%.100s': unexpected reply type %d", r->arg,
                    rep->type);
}

/* hiredis' callback of every lookup command; privdata is its request. */
static void eredis_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)eredis_handle(ac->data, ac, privdata, reply);
}

/* ---- the I/O thread --------------------------------------------------- */

static void eredis_send(eredis *s, enr_req *list)
{
    while (list) {
        enr_req *r = list;
        list = list->next;
        r->next = NULL;
        if (!s->ac) {
            enr_retry(s->base.sh, r, WEIR_ERETRY,
                      "%s: not connected to Redis (%s)", s->opname,
                      s->conn_error);
            continue;
        }
        const char *argv[2] = {s->cmd == EREDIS_HGETALL ? "HGETALL" : "GET",
                               r->arg};
        size_t lens[2] = {strlen(argv[0]), r->arg_len};
        if (redisAsyncCommandArgv(s->ac, eredis_reply, r, 2, argv, lens) !=
            REDIS_OK)
            enr_retry(s->base.sh, r, WEIR_ERETRY,
                      "%s: Redis refused the command: %s", s->opname,
                      s->ac && s->ac->errstr ? s->ac->errstr : "?");
    }
}

static void *eredis_main(void *arg)
{
    eredis *s = arg;
    for (;;) {
        if (!s->ac && eredis_now() >= s->next_connect)
            eredis_connect(s);
        struct pollfd pf[2] = {{.fd = s->base.q.wake_fd, .events = POLLIN}};
        nfds_t nf = 1;
        int timeout = -1;
        if (s->ac) {
            pf[1].fd = s->ac->c.fd;
            pf[1].events = (short)((s->want_read ? POLLIN : 0) |
                                   (s->want_write ? POLLOUT : 0));
            nf = 2;
        } else {
            int64_t wait = s->next_connect - eredis_now();
            timeout = wait < 0 ? 0 : wait > 1000 ? 1000 : (int)wait;
        }
        if (poll(pf, nf, timeout) < 0 && errno != EINTR)
            break;
        if (nf == 2 && pf[1].revents && s->ac) {
            if (pf[1].revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL))
                redisAsyncHandleRead(s->ac);
            if (s->ac && (pf[1].revents & POLLOUT))
                redisAsyncHandleWrite(s->ac);
        }
        if (pf[0].revents) {
            enr_req *list;
            int stop = enr_queue_take(&s->base.q, &list);
            if (stop) {
                enr_cancel_list(s->base.sh, list);
                break;
            }
            eredis_send(s, list);
        }
    }
    s->closing = 1;
    if (s->ac) {
        redisAsyncContext *ac = s->ac;
        s->ac = NULL;
        redisAsyncFree(ac); /* pending callbacks see no reply: canceled */
    }
    return NULL;
}

/* ---- open / close ----------------------------------------------------- */

static void eredis_destroy(enr_backend *b)
{
    eredis *s = (eredis *)b;
    enr_queue_destroy(&s->base.q);
    weir_mp_writer_destroy(&s->w);
    free(s->unix_path);
    free(s->prefix);
    free(s);
}

static int eredis_arg(enr_backend *b, const char *key, size_t len, char **out,
                      size_t *out_len)
{
    eredis *s = (eredis *)b;
    char *p = malloc(s->prefix_len + len + 1);
    if (!p)
        return WEIR_ENOMEM;
    memcpy(p, s->prefix, s->prefix_len);
    memcpy(p + s->prefix_len, key, len);
    p[s->prefix_len + len] = '\0';
    *out = p;
    *out_len = s->prefix_len + len;
    return WEIR_OK;
}

/* Parses "host:port", "unix:/path" or "/path". */
static int eredis_address(weir_ctx *ctx, eredis *s, const char *a, size_t n)
{
    if (n > 5 && memcmp(a, "unix:", 5) == 0)
        a += 5, n -= 5;
    if (n > 0 && a[0] == '/') {
        if (!(s->unix_path = strndup(a, n)))
            return WEIR_ENOMEM;
        return WEIR_OK;
    }
    const char *colon = memrchr(a, ':', n);
    char *end;
    char port[8];
    size_t hl = colon ? (size_t)(colon - a) : 0, pl = colon ? n - hl - 1 : 0;
    if (!colon || hl == 0 || hl >= sizeof s->host || pl == 0 ||
        pl >= sizeof port)
        goto bad;
    memcpy(port, colon + 1, pl);
    port[pl] = '\0';
    long v = strtol(port, &end, 10);
    if (*end || v < 1 || v > 65535)
        goto bad;
    memcpy(s->host, a, hl);
    s->host[hl] = '\0';
    s->port = (int)v;
    return WEIR_OK;
bad:
    weir_set_error(ctx,
                   "%s: address: '%.*s' is neither host:port (port 1-65535) "
                   "nor a unix socket path (/path or unix:/path)",
                   s->opname, (int)(n > 200 ? 200 : n), a);
    return WEIR_EINVAL;
}

int enr_redis_open(weir_ctx *ctx, const char *opname, enr_shared *sh,
                   enr_backend **out)
{
    eredis *s = calloc(1, sizeof *s);
    if (!s)
        return weir_set_error(ctx, "%s: out of memory", opname), WEIR_ENOMEM;
    snprintf(s->opname, sizeof s->opname, "%s", opname);
    s->base.sh = sh;
    s->base.arg = eredis_arg;
    s->base.destroy = eredis_destroy;
    weir_mp_writer_init(&s->w);
    if (enr_queue_init(&s->base.q) < 0) {
        weir_mp_writer_destroy(&s->w);
        free(s);
        return weir_set_error(ctx, "%s: pipe: %s", opname, strerror(errno)),
               WEIR_EIO;
    }
    const char *a, *cmd, *pre;
    size_t al, cl, pl;
    int rc;
    if ((rc = weir_param_string(ctx, "address", &a, &al)) < 0 ||
        (rc = weir_param_string(ctx, "command", &cmd, &cl)) < 0 ||
        (rc = weir_param_string(ctx, "key_prefix", &pre, &pl)) < 0 ||
        (rc = weir_param_int(ctx, "reconnect_delay", &s->reconnect_ms)) < 0)
        goto out;
    if ((rc = eredis_address(ctx, s, a, al)) < 0)
        goto out;
    s->cmd = cl == 7 && memcmp(cmd, "hgetall", 7) == 0 ? EREDIS_HGETALL
             : cl == 3 && memcmp(cmd, "get", 3) == 0   ? EREDIS_GET
                                                       : EREDIS_GET_JSON;
    if (!(s->prefix = malloc(pl + 1))) {
        rc = WEIR_ENOMEM;
        goto out;
    }
    memcpy(s->prefix, pre, pl);
    s->prefix[pl] = '\0';
    s->prefix_len = pl;
    if ((rc = pthread_create(&s->base.thread, NULL, eredis_main, s)) != 0) {
        weir_set_error(ctx, "%s: starting the I/O thread: %s", opname,
                       strerror(rc));
        rc = WEIR_EFAIL;
        goto out;
    }
    s->base.started = 1;
    *out = &s->base;
    return WEIR_OK;
out:
    if (rc == WEIR_ENOMEM)
        weir_set_error(ctx, "%s: out of memory", opname);
    eredis_destroy(&s->base);
    return rc;
}
