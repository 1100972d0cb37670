#include "control/control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"

/* The largest request or reply accepted, in bytes. */
#define CTL_MAX_MESSAGE (16u * 1024 * 1024)

struct ctl_server {
    void *zctx;
    int own_ctx;
    void *sock;
    char *path;
};

static int ctl_endpoint(const char *path, char *out, size_t cap, char **errptr)
{
    if (strlen(path) >= CTL_MAX_SOCK_PATH)
        return err_set(errptr, WEIR_EINVAL,
                       "control socket path %s is too long for a Unix "
                       "domain socket (%zu bytes, at most %d): use a shorter "
                       "checkpoint.dir",
                       path, strlen(path), CTL_MAX_SOCK_PATH - 1);
    snprintf(out, cap, "ipc://%s", path);
    return 0;
}

static void ctl_linger0(void *sock)
{
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
}

int ctl_server_open(void *zctx, const char *run_dir, const char *name,
                    ctl_server **out, char **errptr)
{
    char ep[CTL_MAX_SOCK_PATH + 16];
    ctl_server *s = calloc(1, sizeof *s);
    int rc = WEIR_ENOMEM;
    *out = NULL;
    if (!s || asprintf(&s->path, "%s/%s", run_dir, name) < 0) {
        free(s);
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    }
    if ((rc = ctl_endpoint(s->path, ep, sizeof ep, errptr)) < 0)
        goto fail;
    s->zctx = zctx;
    if (!s->zctx) {
        s->zctx = zmq_ctx_new();
        s->own_ctx = 1;
    }
    if (!s->zctx || !(s->sock = zmq_socket(s->zctx, ZMQ_REP))) {
        rc = err_set(errptr, WEIR_EIO, "control socket: %s",
                     zmq_strerror(errno));
        goto fail;
    }
    ctl_linger0(s->sock);
    /* Connections of other users are dropped; the 0600 socket file in a
     * private directory keeps them out already where ZeroMQ lacks it. */
    int uid = (int)getuid();
    (void)zmq_setsockopt(s->sock, ZMQ_IPC_FILTER_UID, &uid, sizeof uid);
    unlink(s->path); /* a socket file left by a process that died */
    if (zmq_bind(s->sock, ep) < 0) {
        rc = err_set(errptr, WEIR_EIO, "cannot serve %s: %s", s->path,
                     zmq_strerror(errno));
        goto fail;
    }
    if (chmod(s->path, 0600) < 0) {
        rc =
            err_set(errptr, WEIR_EIO, "chmod %s: %s", s->path, strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ctl_server_close(s);
    return rc;
}

void ctl_server_close(ctl_server *s)
{
    if (!s)
        return;
    if (s->sock) {
        zmq_close(s->sock);
        unlink(s->path);
    }
    if (s->own_ctx && s->zctx)
        zmq_ctx_term(s->zctx);
    free(s->path);
    free(s);
}

void *ctl_server_socket(ctl_server *s)
{
    return s->sock;
}

json_t *ctl_error(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

json_t *ctl_ok(void)
{
    return json_pack("{s:b}", "ok", 1);
}

/* Sends a JSON value as one message. Takes ownership of `v`. */
static int ctl_send_json(void *sock, json_t *v)
{
    if (!v)
        v = json_pack("{s:b, s:s}", "ok", 0, "error", "out of memory");
    char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!text)
        return -1;
    int rc = zmq_send(sock, text, strlen(text), 0);
    free(text);
    return rc < 0 ? -1 : 0;
}

/* Receives one message as JSON; NULL when it is not a JSON object (then
 * *why says why). */
static json_t *ctl_recv_json(void *sock, int flags, const char **why)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    *why = NULL;
    if (zmq_msg_recv(&msg, sock, flags) < 0) {
        zmq_msg_close(&msg);
        *why = "";
        return NULL;
    }
    json_t *v = NULL;
    if (zmq_msg_size(&msg) > CTL_MAX_MESSAGE) {
        *why = "message too large";
    } else {
        json_error_t je;
        v = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &je);
        if (!v || !json_is_object(v)) {
            json_decref(v);
            v = NULL;
            *why = "not a JSON object";
        }
    }
    zmq_msg_close(&msg);
    return v;
}

int ctl_server_recv(ctl_server *s, json_t **req)
{
    const char *why;
    *req = ctl_recv_json(s->sock, ZMQ_DONTWAIT, &why);
    if (*req)
        return 1;
    if (why && *why) /* a message came: REP must answer it */
        ctl_send_json(s->sock, ctl_error("bad request: %s", why));
    return 0;
}

void ctl_server_reply(ctl_server *s, json_t *reply)
{
    ctl_send_json(s->sock, reply);
}

/* Tells a socket file nobody serves (its process died) from a live one:
 * ZeroMQ would only retry in the background. */
static int ctl_probe(const char *path, char **errptr)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(errptr, WEIR_EIO, "socket: %s", strerror(errno));
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (e == ECONNREFUSED)
        return err_set(errptr, WEIR_ENOTFOUND,
                       "stale control socket %s: the process that served it "
                       "is gone (is the job running?)",
                       path);
    if (e == EACCES || e == EPERM)
        return err_set(errptr, WEIR_EIO,
                       "%s: permission denied (the job belongs to another "
                       "user)",
                       path);
    return err_set(errptr, WEIR_EIO, "cannot connect to %s: %s", path,
                   strerror(e));
}

int ctl_request(const char *path, json_t *req, int64_t timeout_ms,
                json_t **reply, char **errptr)
{
    char ep[CTL_MAX_SOCK_PATH + 16];
    struct stat st;
    *reply = NULL;
    int rc = ctl_endpoint(path, ep, sizeof ep, errptr);
    if (rc < 0)
        return rc;
    if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return err_set(errptr, WEIR_ENOTFOUND,
                       "no control socket at %s (is the job running?)", path);
    if ((rc = ctl_probe(path, errptr)) < 0)
        return rc;
    void *zctx = zmq_ctx_new();
    void *sock = zctx ? zmq_socket(zctx, ZMQ_REQ) : NULL;
    if (!sock) {
        rc = err_set(errptr, WEIR_EIO, "control socket: %s",
                     zmq_strerror(errno));
        goto out;
    }
    ctl_linger0(sock);
    json_incref(req);
    if (zmq_connect(sock, ep) < 0 || ctl_send_json(sock, req) < 0) {
        rc = err_set(errptr, WEIR_EIO, "cannot send to %s: %s", path,
                     zmq_strerror(errno));
        goto out;
    }
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    int n = zmq_poll(&it, 1, (long)(timeout_ms < 0 ? -1 : timeout_ms));
    if (n <= 0) {
        /* A socket file nobody serves (its process died) looks the same. */
        rc = err_set(errptr, WEIR_EAGAIN,
                     "no answer from %s within %lld ms (the job is not "
                     "running, or it is busy)",
                     path, (long long)timeout_ms);
        goto out;
    }
    const char *why;
    *reply = ctl_recv_json(sock, 0, &why);
    if (!*reply)
        rc = err_set(errptr, WEIR_EIO, "bad reply from %s: %s", path,
                     why && *why ? why : zmq_strerror(errno));
out:
    if (sock)
        zmq_close(sock);
    if (zctx)
        zmq_ctx_term(zctx);
    return rc;
}
