/*
 * inspect.h - what a checkpoint or savepoint holds, for `weir state ls`
 * and `weir state dump`.
 *
 * A checkpoint is opened by path: a chk-<id> or savepoint directory (it
 * holds MANIFEST.json), a run directory (it holds a `completed` log),
 * which stands for its newest valid checkpoint, or a job's checkpoint
 * directory (<checkpoint.dir>/<job>), which stands for its newest run
 * directory with a `completed` log. The manifest is loaded and
 * every listed file verified (size and checksum) first, so the tools read
 * only what a restore would accept. Keyed state is then read through
 * statetool/view.h: read-only, with each subtask's delta applied, exactly
 * as a restore sees it. Nothing in the checkpoint is ever written.
 *
 * Ownership: an insp_ckpt is the caller's (insp_close); JSON documents
 * returned are new references; a json_t passed to a callback is borrowed
 * for the call. Thread: one thread per insp_ckpt. Errors: 0 or a negative
 * WEIR_E* code with a one-line message: WEIR_EIO for a damaged checkpoint
 * (naming the file), WEIR_ENOTFOUND for an operator or state it does not
 * have (naming those it has), WEIR_EINVAL for a path that is no
 * checkpoint.
 */
#ifndef WEIR_HOST_STATETOOL_INSPECT_H
#define WEIR_HOST_STATETOOL_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "statetool/mpjson.h"

typedef struct insp_ckpt insp_ckpt;

int insp_open(const char *path, insp_ckpt **out, char **errptr);
void insp_close(insp_ckpt *c);

/* The checkpoint's directory (the chk- directory for a run directory). */
const char *insp_dir(const insp_ckpt *c);

/*
 * The checkpoint as a JSON document: id, job, times, flags, and per
 * operator (in manifest order) its parallelism and subtasks, each with its
 * key groups, snapshot, and for keyed state every state's kind, RocksDB's
 * estimated entries and SST bytes, and the delta's values and deletions,
 * plus the timers and the expiry index. With `exact`, also the exact
 * number of entries (what a dump would list) of every state, of the
 * timers and of the index, which reads every entry. The members are listed
 * in README.md ("State tools and rescaling").
 */
int insp_ls(insp_ckpt *c, int exact, json_t **out, char **errptr);

typedef struct insp_dump_opts {
    const char *op_id;
    const char *state; /* the state to list; NULL with timers */
    int timers;        /* list the timers instead of a state */
    const char *key;   /* only this key (key_len bytes); NULL: every key */
    size_t key_len;
    mpj_format format; /* of the values */
} insp_dump_opts;

/*
 * An entry of the dump, in subtask order, then RocksDB key order (key
 * group, key length, key, user key); for timers, (domain, ts, key). Return
 * 0 to go on or a negative code to stop (insp_dump returns it).
 *   state: {"subtask", "key_group", "key", "user_key" (map state only),
 *           "value" (list state: the array of its elements), "expiry"
 *           (ms since the epoch, or null: never)}
 *   timer: {"subtask", "key_group", "key", "domain" ("processing" or
 *           "event"), "ts"}
 */
typedef int (*insp_entry_fn)(void *arg, json_t *entry);

/* Lists the entries the options select; *count gets their number. */
int insp_dump(insp_ckpt *c, const insp_dump_opts *o, insp_entry_fn fn,
              void *arg, uint64_t *count, char **errptr);

#endif
