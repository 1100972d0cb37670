/*
 * control.h - the control endpoint of a running job: requests and replies
 * as JSON objects over ZeroMQ REQ/REP on Unix domain sockets (ipc).
 *
 * The supervisor serves <run dir>/control.sock for the whole run (`weir
 * ctl` talks to it) and forwards what only the worker can answer to the
 * worker's own endpoint, <run dir>/worker.sock, which each worker serves
 * while it runs. Both sockets are created with mode 0600 in the run
 * directory (itself 0700 when this module creates it), and the server
 * drops connections from any other user id (ZMQ_IPC_FILTER_UID), so only
 * the user who runs the job (and root) can control it.
 *
 * A request is {"cmd": NAME, ...arguments}; a reply is {"ok": true, ...} or
 * {"ok": false, "error": MESSAGE}. The commands and their arguments are
 * those `weir ctl` sends (host/cli/cmd_ctl.c; README.md, "Controlling a
 * running job").
 *
 * Errors: 0 or a negative WEIR_E* code with a one-line message in *errptr.
 * Thread: a ctl_server belongs to one thread; ctl_request is reentrant.
 */
#ifndef WEIR_HOST_CONTROL_H
#define WEIR_HOST_CONTROL_H

#include <stdint.h>

#include <jansson.h>

/* File names of the endpoints in a run directory. */
#define CTL_SUPERVISOR_SOCK "control.sock"
#define CTL_WORKER_SOCK     "worker.sock"

/* The longest path a Unix domain socket can have, including the NUL. */
#define CTL_MAX_SOCK_PATH 108

typedef struct ctl_server ctl_server;

/*
 * Binds a REP socket at `<run_dir>/<name>` (replacing a stale socket file
 * left by a process that died). `zctx` is the ZeroMQ context to use, or
 * NULL for one of the server's own. Returns 0 and *out, or WEIR_EINVAL
 * when the path is too long for a socket, or WEIR_EIO.
 */
int ctl_server_open(void *zctx, const char *run_dir, const char *name,
                    ctl_server **out, char **errptr);
void ctl_server_close(ctl_server *s);

/* The ZeroMQ socket, for zmq_poll (ZMQ_POLLIN means a request waits). */
void *ctl_server_socket(ctl_server *s);

/*
 * Receives one request without waiting. Returns 1 with *req (a JSON
 * object; the caller owns it and must answer with ctl_server_reply before
 * the next receive), 0 when none waits. A request that is not a JSON
 * object is answered with an error here and 0 is returned.
 */
int ctl_server_recv(ctl_server *s, json_t **req);

/* Sends the reply to the request received last; takes ownership of
 * `reply` (NULL sends {"ok": false, "error": "out of memory"}). */
void ctl_server_reply(ctl_server *s, json_t *reply);

/* {"ok": false, "error": formatted message}, for replies. */
json_t *ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* {"ok": true}. */
json_t *ctl_ok(void);

/*
 * Sends `req` (borrowed) to the endpoint at socket path `path` and waits up
 * to timeout_ms for the reply. Returns 0 and *reply (the caller owns it),
 * WEIR_ENOTFOUND when nothing listens there (no such socket, or a stale
 * one), WEIR_EAGAIN when no reply came in time, or WEIR_EIO.
 */
int ctl_request(const char *path, json_t *req, int64_t timeout_ms,
                json_t **reply, char **errptr);

#endif
