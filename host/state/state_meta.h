/*
 * state_meta.h - private to host/state: declared states and their
 * persisted metadata.
 *
 * state_meta.c implements state_declare() and the handle functions of
 * state.h (names, kinds, ownership), and keeps the registry of states the
 * store's directory knows: "weir.format" and one "weir.state.<name>" record
 * per state ever declared (state.h, "Layout"), loaded at open into s->meta.
 * The "weir.ttl.<name>" records of TTL overrides belong to state_admin.c,
 * which state_declare() asks for them (state_admin_declared()).
 *
 * Threads: the store's thread; the list of open stores and every change of
 * a store's `states` array are guarded by a process-wide lock. Errors: 0 or
 * a negative WEIR_E* code with a message in *errptr.
 */
#ifndef WEIR_HOST_STATE_META_H
#define WEIR_HOST_STATE_META_H

#include "state/state_internal.h"

/* "value", "map", "list" or "unknown". */
const char *smeta_kind_name(weir_state_kind k);

/* Adds s to, or removes it from, the process-wide list of open stores that
 * state_owner_name() searches (thread-safe). */
void smeta_owners_link(state_store *s);
void smeta_owners_unlink(state_store *s);

/* Reads the format and the known states from the metadata into s->meta
 * (and writes the format of a new directory); at open. */
int smeta_load(state_store *s, char **errptr);

#endif
