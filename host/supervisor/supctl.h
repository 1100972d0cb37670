/*
 * supctl.h - the supervisor's control endpoint (control/control.h):
 * <run dir>/control.sock for the whole run, across worker restarts.
 *
 * `status` is answered by the supervisor itself (job state, restarts,
 * uptime, the last failure) merged with the running worker's own status;
 * every other request is forwarded to the worker's endpoint and its answer
 * relayed. While no worker runs (a restart delay) those get an error that
 * says so. One request is handled at a time; others wait in the socket.
 *
 * The supervisor's event loop polls the items supctl_poll_items() gives
 * (next to its signalfd), calls supctl_handle() after each zmq_poll, and
 * wakes up by supctl_deadline_ns() at the latest.
 *
 * Thread: the supervisor's main thread only.
 */
#ifndef WEIR_HOST_SUPCTL_H
#define WEIR_HOST_SUPCTL_H

#include <stdint.h>
#include <zmq.h>

#include "topology/topology.h"

/* What the supervisor knows of the run, for `status`. */
typedef struct supctl_info {
    long worker;              /* pid of the running worker, or 0 */
    int attempt;              /* of the running (or next) worker */
    uint32_t restarts;        /* workers started after the first */
    int64_t run_started_ms;   /* wall clock */
    const char *state;        /* "running", "restarting", "stopping" */
    const char *last_failure; /* how the last worker failed, or NULL */
} supctl_info;

typedef struct supctl supctl;

/* Serves <run_dir>/control.sock; NULL when it cannot (logged). */
supctl *supctl_open(const topo_job *job, const char *run_dir);
void supctl_close(supctl *c);

/* Fills items[0] with the socket to poll (the endpoint, or the worker
 * while a request is forwarded); returns 1. */
int supctl_poll_items(supctl *c, zmq_pollitem_t *items);
/* Handles what the poll found ready in the items supctl_poll_items gave,
 * and a forwarded request whose time ran out. */
void supctl_handle(supctl *c, const zmq_pollitem_t *items, int n,
                   const supctl_info *info);
/* When supctl_handle must run at the latest (CLOCK_MONOTONIC ns), or
 * INT64_MAX. */
int64_t supctl_deadline_ns(const supctl *c);
/* The worker ended: a forwarded request it did not answer (within a short
 * grace for an answer still in flight) gets an error naming `how`. */
void supctl_worker_ended(supctl *c, const char *how, const supctl_info *info);

#endif
