/*
 * bcast.h - broadcast inputs and broadcast state of a subtask (ABI 1.2).
 *
 * An operator declares some input ports broadcast inputs (weir_operator's
 * broadcast_inputs). The topology wires them with partition broadcast, so
 * every subtask receives every record of them; the runtime hands those
 * records to process_broadcast() (bcast_process), without a current key.
 *
 * Broadcast state is what process_broadcast() derives from those records:
 * named maps of byte keys to byte values, one copy per subtask, kept in
 * memory by the host (a sorted array of entries per state). Only
 * process_broadcast() may write them; every callback may read them. The
 * contract the plugin sees is in weir.h ("Broadcast state").
 *
 * Storage. The state is small by contract (rules, configuration) and must
 * exist for operators that have no keyed state at all, so it is not kept in
 * RocksDB: at a checkpoint barrier the subtask serialises every declared
 * state into one file <chk>/<op>-<index>/broadcast (bcast_snapshot), which
 * the manifest names in the subtask's task entry and checksums like every
 * other file. A restore reads the subtask's own copy back before open()
 * (bcast_restore), so the plugin finds its states filled when it declares
 * them. Copies are meant to be equal across subtasks; once a checkpoint
 * completed, the coordinator compares their checksums (bcast_check_copies).
 *
 * File format (integers big-endian): "WBS1", the number of states (4),
 * then per state in name order: name length (1), name, number of entries
 * (4), then per entry in key order: key length (4), key, value length (4),
 * value. Nothing follows the last state.
 *
 * Private to runtime/. Thread: the subtask's thread, except
 * bcast_check_copies(), which reads only a manifest (coordinator thread).
 * Errors: 0 or a negative WEIR_E* code; the services leave their message in
 * t->error (as weir_set_error() would), the others in *errptr.
 */
#ifndef WEIR_HOST_BCAST_H
#define WEIR_HOST_BCAST_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/task.h"

struct ckpt_manifest;

/* A subtask's broadcast states (NULL until one is declared or restored). */
typedef struct bcast_set bcast_set;

/* Whether input port `port` of the task's operator is a broadcast input. */
int bcast_is_input(const task *t, uint32_t port);

/* Calls process_broadcast() for one record of broadcast input `port`, with
 * writes allowed during the call and no current key. Returns the plugin's
 * code (the caller fails the task on a negative one). */
int bcast_process(task *t, const weir_record *rec, uint32_t port);

/* The weir_host_api services (weir.h states their contract). */
int bcast_declare(task *t, const char *name, weir_broadcast_state **out);
int bcast_get(task *t, weir_broadcast_state *st, const void *key,
              size_t key_len, const void **value, size_t *len);
int bcast_put(task *t, weir_broadcast_state *st, const void *key,
              size_t key_len, const void *value, size_t len);
int bcast_delete(task *t, weir_broadcast_state *st, const void *key,
                 size_t key_len);
int bcast_iter(task *t, weir_broadcast_state *st, weir_map_iter_fn fn,
               void *arg);

/* Before open(): when the job restores a checkpoint whose entry for this
 * subtask names a broadcast file, reads and decodes it into t's set, so
 * that declarations find their content. When the operator is restored with
 * another parallelism (keyed state redistributed by key group), subtask i
 * takes the copy of old subtask i % old parallelism: the copies are equal
 * by contract. WEIR_EIO or WEIR_EINVAL with a message naming the file when
 * it cannot be read or decoded. */
int bcast_restore(task *t, char **errptr);

/* After open(): logs and drops every restored state the plugin did not
 * declare. */
void bcast_opened(task *t);

/* Writes every declared state of the subtask to the file `path` (fsync'ed).
 * *wrote is 0, and nothing is written, when the subtask declared none. */
int bcast_snapshot(task *t, const char *path, int *wrote, char **errptr);

/* Frees the subtask's broadcast states (after close()). */
void bcast_free(task *t);

/* Encodes a set in the file format (malloc'ed *data, *len); for
 * bcast_snapshot() and tests. Undeclared (restored) states are left out. */
int bcast_encode(const bcast_set *s, char **data, size_t *len, char **errptr);

/* Decodes the file format into a new set whose states are all undeclared.
 * `what` names the bytes in messages ("<path>"). WEIR_EINVAL for a bad
 * magic, a truncated or overlong file, an invalid or repeated state name,
 * keys out of order or repeated, or keys or values over the limits. */
int bcast_decode(const char *what, const void *data, size_t len,
                 bcast_set **out, char **errptr);
void bcast_set_free(bcast_set *s);

/* The number of states in a set and the number of entries of the one
 * named `name` (-1 when absent); for tests. */
size_t bcast_set_count(const bcast_set *s);
long bcast_set_entries(const bcast_set *s, const char *name);

/*
 * After checkpoint `m` completed (its files listed with checksums): for
 * every operator whose subtasks wrote broadcast files, compares the files'
 * sizes and checksums. Returns the number of operators whose copies differ
 * and names the first of them (operator id and the two subtask indexes) in
 * *errptr.
 */
int bcast_check_copies(const struct ckpt_manifest *m, char **errptr);

#endif
