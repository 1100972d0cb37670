#include "metrics/http.h"

#include <arpa/inet.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/log.h"

struct metrics_http {
    struct MHD_Daemon *d;
    metrics_http_render_fn render;
    void *arg;
    int port;
};

static enum MHD_Result metrics_http_reply(struct MHD_Connection *c,
                                          unsigned status, char *body,
                                          const char *type)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result metrics_http_handle(void *cls, struct MHD_Connection *c,
                                           const char *url, const char *method,
                                           const char *version,
                                           const char *upload,
                                           size_t *upload_size, void **con_cls)
{
    metrics_http *h = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return metrics_http_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                  strdup("only GET\n"), "text/plain");
    if (strcmp(url, "/metrics") != 0)
        return metrics_http_reply(c, MHD_HTTP_NOT_FOUND,
                                  strdup("see /metrics\n"), "text/plain");
    char *text = h->render(h->arg);
    if (!text)
        return metrics_http_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                  strdup("out of memory\n"), "text/plain");
    return metrics_http_reply(c, MHD_HTTP_OK, text,
                              "text/plain; version=0.0.4; charset=utf-8");
}

/* Parses "HOST:PORT" into an IPv4 socket address. */
static int metrics_http_addr(const char *listen, struct sockaddr_in *sa,
                             char **errptr)
{
    const char *colon = strrchr(listen, ':');
    char host[64];
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return err_set(errptr, WEIR_EINVAL,
                       "metrics.listen '%s': expected HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    if (*end || port < 0 || port > 65535 || end == colon + 1 ||
        inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1",
                  &sa->sin_addr) != 1)
        return err_set(errptr, WEIR_EINVAL,
                       "metrics.listen '%s': expected an IPv4 address and a "
                       "port, e.g. 127.0.0.1:9249",
                       listen);
    sa->sin_port = htons((uint16_t)port);
    return 0;
}

/* Memory pool of one connection: the request line, headers and read and
 * write buffers; the rendered body is allocated outside it. */
#define METRICS_HTTP_CONN_MEMORY (32 * 1024)

/* The endpoint has no authentication: say so when it is reachable from
 * other hosts. */
static void metrics_http_warn_exposed(const char *listen,
                                      const struct sockaddr_in *sa)
{
    if ((ntohl(sa->sin_addr.s_addr) >> 24) == 127)
        return;
    log_msg(WEIR_LOG_WARN, "metrics",
            "metrics.listen '%s' is not a loopback address: other hosts can "
            "read /metrics (no authentication); use 127.0.0.1 unless a "
            "firewall guards the port",
            listen);
}

static struct MHD_Daemon *metrics_http_daemon(metrics_http *h,
                                              const metrics_http_options *o,
                                              struct sockaddr_in *sa)
{
    int64_t secs = (o->timeout_ms + 999) / 1000;
    if (secs < 1)
        secs = 1;
    if (secs > UINT_MAX)
        secs = UINT_MAX;
    unsigned per_ip = (o->max_connections + 1) / 2;
    return MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, NULL, NULL,
                            metrics_http_handle, h, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)sa, MHD_OPTION_CONNECTION_LIMIT,
                            o->max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)secs,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                            (size_t)METRICS_HTTP_CONN_MEMORY, MHD_OPTION_END);
}

int metrics_http_start(const metrics_http_options *o,
                       metrics_http_render_fn render, void *arg,
                       metrics_http **out, char **errptr)
{
    struct sockaddr_in sa;
    int rc = metrics_http_addr(o->listen, &sa, errptr);
    if (rc < 0)
        return rc;
    if (o->max_connections < 1)
        return err_set(errptr, WEIR_EINVAL,
                       "metrics.max_connections: must be at least 1");
    metrics_http_warn_exposed(o->listen, &sa);
    metrics_http *h = calloc(1, sizeof *h);
    if (!h)
        return err_set(errptr, WEIR_ENOMEM, "out of memory");
    h->render = render;
    h->arg = arg;
    h->d = metrics_http_daemon(h, o, &sa);
    if (!h->d) {
        free(h);
        return err_set(errptr, WEIR_EIO,
                       "metrics.listen '%s': cannot listen there (in use, or "
                       "not an address of this host)",
                       o->listen);
    }
    const union MHD_DaemonInfo *i =
        MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = i ? i->port : ntohs(sa.sin_port);
    *out = h;
    return 0;
}

int metrics_http_port(const metrics_http *h)
{
    return h->port;
}

void metrics_http_stop(metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}
