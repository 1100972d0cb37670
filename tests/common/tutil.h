/*
 * tutil.h - helpers the C tests of plugins share (not a host): temporary
 * directories and files, and an independent msgpack <-> JSON conversion
 * (msgpack-c and jansson) to check what plugins pack and to write their
 * inputs. Failures fail the running cmocka test.
 */
#ifndef WEIR_TESTS_TUTIL_H
#define WEIR_TESTS_TUTIL_H

#include <stddef.h>

#include <jansson.h>

/* A fresh directory under $TMPDIR (malloc'ed), removed by tu_rmtree. */
char *tu_tmpdir(void);
void tu_rmtree(const char *dir);
/* "dir/name", malloc'ed. */
char *tu_path(const char *dir, const char *name);
void tu_write_file(const char *path, const void *data, size_t len);
/* A whole file, NUL-terminated (malloc'ed); *len its size. NULL if absent. */
char *tu_read_file(const char *path, size_t *len);

/* The msgpack value as a jansson value (maps need string keys; integers
 * must fit int64), or NULL when it is not one valid msgpack value. */
json_t *tu_mp_to_json(const void *data, size_t len);
/* JSON text -> msgpack (malloc'ed, *len bytes); a bad text fails the test. */
void *tu_json_to_mp(const char *json, size_t *len);

#endif
