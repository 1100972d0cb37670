/*
 * kp.h - helpers of the keyed plugin tests: one registry with the bundled
 * plugins and the test operators, a temporary directory, running a job from
 * YAML text in this process, and reading file_sink output.
 */
#ifndef WEIR_TESTS_KP_H
#define WEIR_TESTS_KP_H

#include <stddef.h>

#include <jansson.h>

#include "plugin/registry.h"
#include "runtime/runtime.h"
#include "topology/topology.h"

extern reg_registry *kp_registry;
extern char kp_tmp[256]; /* a fresh directory, removed by kp_teardown() */

/* cmocka group setup/teardown: the registry and kp_tmp. */
int kp_setup(void **unused);
int kp_teardown(void **unused);

/* Loads `yaml` as a job; prints and returns the error like topo_load. */
int kp_load(const char *yaml, topo_job **job, char **err);

/* Loads, starts and waits for the job; returns rt_wait()'s code. */
int kp_run(const char *yaml, char **err);

/* Writes `text` to `path` (fails the test when it cannot). */
void kp_write(const char *path, const char *text);

/* Formats one output record (a file_sink line parsed as JSON) into out. */
typedef void (*kp_fmt_fn)(json_t *rec, char *out, size_t cap);

/* Reads the JSON lines at `path` and writes their summaries (fmt) into buf,
 * separated by single spaces: in file order, or sorted when `sorted`.
 * A missing file reads as no lines. Returns the number of lines. */
int kp_summaries(const char *path, kp_fmt_fn fmt, int sorted, char *buf,
                 size_t cap);

/* Same for the JSON lines a command prints on its standard output; fails
 * the test when the command fails. */
int kp_command_summaries(const char *cmd, kp_fmt_fn fmt, char *buf, size_t cap);

/* "key@ts" of a record. */
void kp_fmt_key_ts(json_t *rec, char *out, size_t cap);

/* "key:events:start-end" of a session record; also checks ts == end. */
void kp_fmt_session(json_t *rec, char *out, size_t cap);

#endif
