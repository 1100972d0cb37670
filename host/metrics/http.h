/*
 * http.h - the /metrics endpoint (Prometheus scrapes it) on top of
 * libmicrohttpd: GET /metrics answers the text a callback renders; any other
 * path is 404, any other method 405.
 *
 * Clients cannot exhaust the process: libmicrohttpd runs one internal
 * thread on epoll (poll where epoll is missing), holds at most
 * max_connections connections, half of them (rounded up) per client
 * address, with a bounded memory pool each, and closes a connection idle
 * for timeout_ms. A connection over a limit is accepted and closed at once;
 * while every slot is taken, new ones wait in the kernel's listen queue,
 * not in this process.
 *
 * Thread: libmicrohttpd serves requests on its own thread, which calls the
 * render callback; the callback must be thread-safe (rt_metrics_render is).
 */
#ifndef WEIR_HOST_METRICS_HTTP_H
#define WEIR_HOST_METRICS_HTTP_H

#include <stdint.h>

/* Returns a malloc'ed NUL-terminated text, or NULL when out of memory. */
typedef char *(*metrics_http_render_fn)(void *arg);

typedef struct metrics_http metrics_http;

typedef struct metrics_http_options {
    /* "HOST:PORT": an IPv4 address or "localhost"; port 0 picks a free
     * port. Borrowed for the duration of metrics_http_start(). */
    const char *listen;
    /* Connections held at once, at least 1. */
    unsigned max_connections;
    /* A connection with no traffic for this long is closed; rounded up to
     * whole seconds, at least 1 s. */
    int64_t timeout_ms;
} metrics_http_options;

/*
 * Listens at o->listen and serves /metrics until metrics_http_stop(). An
 * address outside 127.0.0.0/8 is logged as a WARN naming it (the endpoint
 * has no authentication). Returns 0, or WEIR_EINVAL for a malformed address
 * or a zero max_connections, or WEIR_EIO when the address cannot be bound,
 * with a message naming it.
 */
int metrics_http_start(const metrics_http_options *o,
                       metrics_http_render_fn render, void *arg,
                       metrics_http **out, char **errptr);

/* The port actually bound (useful with port 0). */
int metrics_http_port(const metrics_http *h);

void metrics_http_stop(metrics_http *h);

#endif
