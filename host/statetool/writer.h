/*
 * writer.h - building a new state directory offline: a RocksDB directory
 * laid out as state/state.h describes, which state_store_open() opens as
 * the subtask's store (after a rescale at restore) or which a savepoint
 * lists as a subtask's state_dir (`weir state bootstrap`).
 *
 * stw_create() makes the directory with the column families "default"
 * (holding "weir.format" = "1" and "weir.state.<name>" -> id | kind for
 * every state given), "__expiry", "__timers" and "s.<name>" per state.
 * Entries are put as raw RocksDB keys and values (statetool/entry.h
 * encodes them) into write batches of a few MiB, written with the WAL off;
 * stw_finish() writes the last batch, flushes every column family and
 * closes RocksDB, after which the directory holds every entry. A writer
 * that is freed without stw_finish() leaves an incomplete directory that
 * must be discarded.
 *
 * Thread: a writer belongs to one thread. Errors: 0 or a negative WEIR_E*
 * code with a one-line message in *errptr naming the directory.
 */
#ifndef WEIR_HOST_STATETOOL_WRITER_H
#define WEIR_HOST_STATETOOL_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct stw_db stw_db;

/* A state of the directory being written. */
typedef struct stw_state {
    const char *name;
    uint16_t id;
    uint8_t kind;    /* weir_state_kind */
    uint32_t format; /* format version of its entries */
    /* The TTL override record ("weir.ttl.<name>", codec.h) to write, NULL
     * for none; borrowed. */
    const char *ttl_rec;
    size_t ttl_len;
} stw_state;

/* Where an entry goes: a state (its index in the stw_create() array), the
 * timers or the expiry index. */
#define STW_TIMERS (-1)
#define STW_INDEX  (-2)

/*
 * Creates the directory `dir` (which must not exist; its parents are
 * created) with states[0..n). The names are copied.
 */
int stw_create(const char *dir, const stw_state *states, size_t n, stw_db **out,
               char **errptr);

/* Puts one entry into column family `where` (a state index, STW_TIMERS or
 * STW_INDEX). Bytes are copied. */
int stw_put(stw_db *w, int where, const char *k, size_t klen, const char *v,
            size_t vlen, char **errptr);

/* Writes what is pending, flushes, closes and frees the writer; the writer
 * is freed even when this fails. */
int stw_finish(stw_db *w, char **errptr);

/* Frees a writer without finishing (after an error). NULL is a no-op. */
void stw_abandon(stw_db *w);

/* Entries put so far. */
uint64_t stw_count(const stw_db *w);

#endif
