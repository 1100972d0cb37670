/*
 * entry.h - the state store's RocksDB entries as bytes, for the offline
 * state tools: decoding what a checkpoint holds and encoding what a
 * bootstrapped savepoint or a rescaled store must hold. The layout is the
 * one of state/state.h and state/timers.h (built on state/codec.h):
 *
 *   state key:   key group (2) | varint(len) | key | map user key
 *   state value: expiry stamp (8; STAMP_NONE = never) | bytes, where a list
 *                value's bytes are { varint(len) | element }*
 *   index key:   domain (1) | stamp (8, sign bit flipped) | state id (2) |
 *                state key ("__expiry" column family, empty value)
 *   timer key:   domain (1) | ts (8, sign bit flipped) | key group (2) |
 *                varint(len) | key ("__timers" column family, empty value)
 *   metadata:    "weir.state.<name>" -> state id (2) | kind (1)
 *   delta file:  "WSD1", then per entry: state id (2), flags (1: not 0 =
 *                deletion, as the restore reads it), key length (4), key,
 *                and for a value: expiry stamp (8), value length (4), value
 *
 * Parsers take a buffer and its length and return 0, or -1 when the bytes
 * do not have the layout (nothing is read past the buffer); the results
 * point into the buffer. Encoders write into a caller's buffer that holds
 * at least the size the matching *_size() function returns, and return the
 * bytes written. All functions are pure and reentrant.
 */
#ifndef WEIR_HOST_STATETOOL_ENTRY_H
#define WEIR_HOST_STATETOOL_ENTRY_H

#include <stddef.h>
#include <stdint.h>

/* A state key split into its parts. ukey is the rest after the record key:
 * the map user key of map state, empty (ukey_len 0) for the others. */
typedef struct ste_key {
    uint16_t kg;
    const char *key;
    size_t key_len;
    const char *ukey;
    size_t ukey_len;
} ste_key;

int ste_key_parse(const char *k, size_t len, ste_key *out);
size_t ste_key_size(size_t key_len, size_t ukey_len);
size_t ste_key_encode(char *buf, uint16_t kg, const void *key, size_t key_len,
                      const void *ukey, size_t ukey_len);

/* A state value: its expiry stamp and the bytes after it. */
int ste_value_parse(const char *v, size_t len, int64_t *stamp,
                    const char **bytes, size_t *n);

/* Calls fn for each element of a list value's bytes, in order. Returns 0,
 * -1 when the bytes are not a sequence of varint-prefixed elements (fn may
 * have been called for the elements before the damage), or fn's first
 * nonzero return. */
typedef int (*ste_elem_fn)(void *arg, const char *elem, size_t len);
int ste_list_each(const char *bytes, size_t len, ste_elem_fn fn, void *arg);
size_t ste_list_elem_size(size_t len);
size_t ste_list_elem_encode(char *buf, const void *elem, size_t len);

/* A timer key. domain is 0 (processing time) or 1 (event time). */
typedef struct ste_timer {
    int domain;
    int64_t ts;
    uint16_t kg;
    const char *key;
    size_t key_len;
} ste_timer;

int ste_timer_parse(const char *k, size_t len, ste_timer *out);
size_t ste_timer_size(size_t key_len);
size_t ste_timer_encode(char *buf, int domain, int64_t ts, uint16_t kg,
                        const void *key, size_t key_len);

/* An expiry index key; skey is a whole state key (it parses). */
typedef struct ste_index {
    int domain;
    int64_t stamp;
    uint16_t sid;
    const char *skey;
    size_t skey_len;
} ste_index;

int ste_index_parse(const char *k, size_t len, ste_index *out);
size_t ste_index_size(size_t skey_len);
size_t ste_index_encode(char *buf, int domain, int64_t stamp, uint16_t sid,
                        const char *skey, size_t skey_len);

/* The metadata value of a state: its id, kind (weir_state_kind) and format
 * version (0 in records without one). ste_meta_encode() writes
 * META_STATE_LEN bytes. */
int ste_meta_parse(const char *v, size_t len, uint16_t *id, uint8_t *kind,
                   uint32_t *format);
void ste_meta_encode(char *out, uint16_t id, uint8_t kind, uint32_t format);

/* One entry of a delta file. For a deletion, stamp and val are unset. */
typedef struct ste_delta_ent {
    uint16_t sid;
    int del;
    const char *key;
    size_t key_len;
    int64_t stamp;
    const char *val;
    size_t val_len;
} ste_delta_ent;

/*
 * Parses a whole delta file held in memory. Returns 0 with *out (malloc'ed,
 * entries in file order, pointing into data; NULL when there is none) and
 * *n, -1 with *bad_at = the offset of the first byte that does not fit the
 * format (the magic included), or WEIR_ENOMEM.
 */
int ste_delta_parse(const char *data, size_t len, ste_delta_ent **out,
                    size_t *n, size_t *bad_at);

#endif
