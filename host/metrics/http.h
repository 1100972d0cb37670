/*
 * http.h - the /metrics endpoint (Prometheus scrapes it) on top of
 * libmicrohttpd: GET /metrics answers the text a callback renders; any other
 * path is 404, any other method 405.
 *
 * Thread: libmicrohttpd serves requests on its own thread, which calls the
 * render callback; the callback must be thread-safe (rt_metrics_render is).
 */
#ifndef WEIR_HOST_METRICS_HTTP_H
#define WEIR_HOST_METRICS_HTTP_H

/* Returns a malloc'ed NUL-terminated text, or NULL when out of memory. */
typedef char *(*metrics_http_render_fn)(void *arg);

typedef struct metrics_http metrics_http;

/*
 * Listens on `listen` ("HOST:PORT", an IPv4 address or "localhost"; port 0
 * picks a free port) and serves /metrics until metrics_http_stop(). Returns
 * 0, or WEIR_EINVAL for a malformed address or WEIR_EIO when the address
 * cannot be bound, with a message naming it.
 */
int metrics_http_start(const char *listen, metrics_http_render_fn render,
                       void *arg, metrics_http **out, char **errptr);

/* The port actually bound (useful with port 0). */
int metrics_http_port(const metrics_http *h);

void metrics_http_stop(metrics_http *h);

#endif
