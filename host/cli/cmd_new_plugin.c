/*
 * cmd_new_plugin.c - `weir new-plugin NAME [--keyed | --source] [--out DIR]`:
 * writes a buildable out-of-tree plugin project into DIR (default ./NAME):
 *
 *   CMakeLists.txt   find_package(Weir), weir_add_plugin(), two tests
 *   NAME.c           the operator: parameters, callbacks, snapshot
 *   test_NAME.c      unit tests on the real host (weir/testing.h): feeds
 *                    records, checks emits, state, parameter errors and
 *                    a restore from a checkpoint
 *   example.yaml     a job that runs the operator between gen and file_sink
 *   README.md        how to build, test and run it
 *
 * The flavours: a stateless operator that forwards every n-th record
 * (default), a keyed operator counting per key in value state with a TTL
 * and an expiry hook (--keyed), and a replayable source (--source).
 * Exit codes: 0 written, 1 a file could not be written, 2 bad usage or the
 * directory exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/cli_common.h"

typedef enum np_kind { NP_MAP, NP_KEYED, NP_SOURCE } np_kind;

static const char np_cmake[] =
    "cmake_minimum_required(VERSION 3.25)\n"
    "project(@NAME@ LANGUAGES C)\n"
    "\n"
    "# The Weir SDK: an installed Weir (CMAKE_PREFIX_PATH=<prefix>) or a\n"
    "# build tree (-DWeir_DIR=<weir build dir>).\n"
    "find_package(Weir 1.3 REQUIRED)\n"
    "\n"
    "weir_add_plugin(@NAME@ @NAME@.c)\n"
    "\n"
    "enable_testing()\n"
    "# Unit tests on the real host: Weir::testing is weir/testing.h.\n"
    "add_executable(test_@NAME@ test_@NAME@.c)\n"
    "target_link_libraries(test_@NAME@ PRIVATE Weir::testing)\n"
    "add_test(NAME unit COMMAND test_@NAME@ $<TARGET_FILE:@NAME@>)\n"
    "\n"
    "# The example job through the real weir, when one is found.\n"
    "find_program(WEIR_BIN weir HINTS ${WEIR_PLUGIN_DIR}/../../../bin\n"
    "  ${WEIR_PLUGIN_DIR}/../bin)\n"
    "if(WEIR_BIN)\n"
    "  add_test(NAME example_job COMMAND ${WEIR_BIN} run --no-supervisor\n"
    "    --dir ${WEIR_PLUGIN_DIR} --dir $<TARGET_FILE_DIR:@NAME@>\n"
    "    ${CMAKE_CURRENT_SOURCE_DIR}/example.yaml)\n"
    "  set_tests_properties(example_job PROPERTIES\n"
    "    WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})\n"
    "endif()\n";

static const char np_test_head[] =
    "/* test_@NAME@.c - unit tests of the operator on the real Weir host, "
    "with\n"
    " * the harness of weir/testing.h: records in, emitted records and keyed\n"
    " * state out, checkpoints restored into a new instance.\n"
    " *   test_@NAME@ path/to/@NAME@.so */\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "\n"
    "#include \"weir/testing.h\"\n"
    "\n"
    "#define CHECK(c)                                                          "
    "     \\\n"
    "    do {                                                                  "
    "     \\\n"
    "        if (!(c)) {                                                       "
    "     \\\n"
    "            fprintf(stderr, \"%s:%d: %s\\n\", __FILE__, __LINE__, #c);    "
    "       \\\n"
    "            return 1;                                                     "
    "     \\\n"
    "        }                                                                 "
    "     \\\n"
    "    } while (0)\n"
    "\n"
    "static const char *so;\n"
    "\n"
    "/* A new instance with the parameters `yaml`; NULL (and the host's "
    "message\n"
    " * printed) when they are refused or open() fails. */\n"
    "static weir_test *start(const char *yaml, const char *restore_from)\n"
    "{\n"
    "    weir_test_config c;\n"
    "    weir_test_config_init(&c);\n"
    "    c.plugin_path = so;\n"
    "    c.op = \"@NAME@\";\n"
    "    c.params_yaml = yaml;\n"
    "    c.restore_from = restore_from;\n"
    "    weir_test *t = NULL;\n"
    "    if (weir_test_new(&c, &t) < 0) {\n"
    "        fprintf(stderr, \"%s\\n\", weir_test_error(t));\n"
    "        weir_test_free(t);\n"
    "        return NULL;\n"
    "    }\n"
    "    return t;\n"
    "}\n"
    "\n"
    "/* A parameter error names the field, as `weir validate` would. */\n"
    "static int bad_param(const char *yaml, const char *field)\n"
    "{\n"
    "    weir_test_config c;\n"
    "    weir_test_config_init(&c);\n"
    "    c.plugin_path = so;\n"
    "    c.op = \"@NAME@\";\n"
    "    c.params_yaml = yaml;\n"
    "    weir_test *t = NULL;\n"
    "    int rc = weir_test_new(&c, &t);\n"
    "    int ok = rc == WEIR_EINVAL && strstr(weir_test_error(t), field);\n"
    "    if (!ok)\n"
    "        fprintf(stderr, \"'%s': rc %d, '%s'\\n\", yaml, rc, "
    "weir_test_error(t));\n"
    "    weir_test_free(t);\n"
    "    return ok;\n"
    "}\n"
    "\n";

static const char np_test_map[] =
    "int main(int argc, char **argv)\n"
    "{\n"
    "    CHECK(argc == 2);\n"
    "    so = argv[1];\n"
    "    CHECK(bad_param(\"every: 0\", \"config.every\"));\n"
    "    CHECK(bad_param(\"evry: 2\", \"config.evry\"));\n"
    "\n"
    "    weir_test *t = start(\"every: 3\", NULL);\n"
    "    CHECK(t != NULL);\n"
    "    const char *keys[] = {\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", "
    "\"g\"};\n"
    "    for (int i = 0; i < 7; i++)\n"
    "        CHECK(weir_test_process(t, 0, keys[i], 1, 100 + i, \"\\xc0\", 1) "
    "== 0);\n"
    "    /* records 3 and 6 are forwarded, unchanged */\n"
    "    CHECK(weir_test_emitted_count(t, 0) == 2);\n"
    "    const weir_test_record *r = weir_test_emitted(t, 0, 0);\n"
    "    CHECK(r->key_len == 1 && memcmp(r->key, \"c\", 1) == 0 && r->ts == "
    "102);\n"
    "    CHECK(r->value_len == 1 && memcmp(r->value, \"\\xc0\", 1) == 0);\n"
    "    r = weir_test_emitted(t, 0, 1);\n"
    "    CHECK(r->key_len == 1 && memcmp(r->key, \"f\", 1) == 0 && r->ts == "
    "105);\n"
    "    CHECK(weir_test_finish(t) == 0);\n"
    "    weir_test_free(t);\n"
    "    printf(\"@NAME@: ok\\n\");\n"
    "    return 0;\n"
    "}\n";

static const char np_test_keyed[] =
    "/* The count of `key` in the state, or -1 when it has none. */\n"
    "static long count_of(weir_test *t, const char *key)\n"
    "{\n"
    "    const void *v;\n"
    "    size_t len;\n"
    "    if (weir_test_value_get(t, \"count\", key, strlen(key), &v, &len) != "
    "0 ||\n"
    "        len != 8)\n"
    "        return -1;\n"
    "    long n = 0;\n"
    "    for (int i = 0; i < 8; i++)\n"
    "        n = n << 8 | ((const unsigned char *)v)[i];\n"
    "    return n;\n"
    "}\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    CHECK(argc == 2);\n"
    "    so = argv[1];\n"
    "    CHECK(bad_param(\"ttl: 0s\", \"config.ttl\"));\n"
    "    CHECK(bad_param(\"ttl: soon\", \"config.ttl\"));\n"
    "\n"
    "    weir_test *t = start(\"ttl: 10s\", NULL);\n"
    "    CHECK(t != NULL);\n"
    "    const char *keys[] = {\"a\", \"b\", \"a\", \"a\"};\n"
    "    for (int i = 0; i < 4; i++)\n"
    "        CHECK(weir_test_process(t, 0, keys[i], 1, i, \"\\xc0\", 1) == "
    "0);\n"
    "    CHECK(weir_test_emitted_count(t, 0) == 4);\n"
    "    CHECK(count_of(t, \"a\") == 3);\n"
    "    CHECK(count_of(t, \"b\") == 1);\n"
    "    CHECK(count_of(t, \"zz\") == -1);\n"
    "\n"
    "    /* a checkpoint keeps the counts for a restarted instance */\n"
    "    uint64_t id = 0;\n"
    "    CHECK(weir_test_checkpoint(t, &id) == 0);\n"
    "    weir_test *r = start(\"ttl: 10s\", weir_test_checkpoint_dir(t, id));\n"
    "    CHECK(r != NULL);\n"
    "    CHECK(weir_test_process(r, 0, \"b\", 1, 9, \"\\xc0\", 1) == 0);\n"
    "    CHECK(count_of(r, \"b\") == 2);\n"
    "    weir_test_free(r);\n"
    "\n"
    "    /* 10 s of processing time later the keys are forgotten (the TTL) */\n"
    "    CHECK(weir_test_set_time(t, weir_test_time(t) + 10000) == 0);\n"
    "    CHECK(count_of(t, \"a\") == -1);\n"
    "    CHECK(weir_test_process(t, 0, \"a\", 1, 5, \"\\xc0\", 1) == 0);\n"
    "    CHECK(count_of(t, \"a\") == 1);\n"
    "    weir_test_free(t);\n"
    "    printf(\"@NAME@: ok\\n\");\n"
    "    return 0;\n"
    "}\n";

static const char np_test_source[] =
    "int main(int argc, char **argv)\n"
    "{\n"
    "    CHECK(argc == 2);\n"
    "    so = argv[1];\n"
    "    CHECK(bad_param(\"count: -1\", \"config.count\"));\n"
    "\n"
    "    weir_test *t = start(\"count: 100\", NULL);\n"
    "    CHECK(t != NULL);\n"
    "    CHECK(weir_test_poll(t) == WEIR_OK); /* a first batch */\n"
    "    size_t first = weir_test_emitted_count(t, 0);\n"
    "    CHECK(first > 0 && first < 100);\n"
    "    /* a checkpoint after the first batch: a restart resumes after it */\n"
    "    uint64_t id = 0;\n"
    "    CHECK(weir_test_checkpoint(t, &id) == 0);\n"
    "    CHECK(weir_test_drain(t, 1000) == WEIR_EOF);\n"
    "    CHECK(weir_test_emitted_count(t, 0) == 100);\n"
    "    for (size_t i = 0; i < 100; i++)\n"
    "        CHECK(weir_test_emitted(t, 0, i)->ts == (int64_t)i);\n"
    "\n"
    "    weir_test *r = start(\"count: 100\", weir_test_checkpoint_dir(t, "
    "id));\n"
    "    CHECK(r != NULL);\n"
    "    CHECK(weir_test_drain(r, 1000) == WEIR_EOF);\n"
    "    CHECK(weir_test_emitted_count(r, 0) == 100 - first);\n"
    "    CHECK(weir_test_emitted(r, 0, 0)->ts == (int64_t)first);\n"
    "    weir_test_free(r);\n"
    "    weir_test_free(t);\n"
    "    printf(\"@NAME@: ok\\n\");\n"
    "    return 0;\n"
    "}\n";

static const char np_yaml_map[] =
    "job: @NAME@-example\n"
    "operators:\n"
    "  - {id: src, type: gen, config: {count: 1000, keys: 10}}\n"
    "  - {id: op, type: @NAME@, inputs: [src], config: {every: 10}}\n"
    "  - {id: out, type: file_sink, inputs: [op], config: {path: "
    "out.jsonl}}\n";

static const char np_yaml_keyed[] =
    "job: @NAME@-example\n"
    "state: {dir: ./state}\n"
    "operators:\n"
    "  - {id: src, type: gen, config: {count: 1000, keys: 10}}\n"
    "  - id: op\n"
    "    type: @NAME@\n"
    "    inputs: [{from: src, partition: key}]\n"
    "    config: {ttl: 1h}\n"
    "  - {id: out, type: file_sink, inputs: [op], config: {path: "
    "out.jsonl}}\n";

static const char np_yaml_source[] =
    "job: @NAME@-example\n"
    "operators:\n"
    "  - {id: src, type: @NAME@, config: {count: 1000}}\n"
    "  - {id: out, type: file_sink, inputs: [src], config: {path: "
    "out.jsonl}}\n";

static const char np_head[] =
    "/*\n"
    " * @NAME@.c - a Weir operator plugin. Built with weir_add_plugin() (see\n"
    " * CMakeLists.txt); the host loads it from a --dir plugin directory.\n"
    " * Everything it may use of the host is in weir/weir.h.\n"
    " */\n"
    "#include <stdint.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "\n"
    "#include \"weir/msgpack.h\"\n"
    "#include \"weir/weir.h\"\n"
    "\n";

static const char np_body_map[] =
    "static const weir_param_def p_every =\n"
    "    WEIR_PARAM(\"every\", WEIR_PARAM_INT, \"1\", \"forward every n-th "
    "record\",\n"
    "               .flags = WEIR_PARAM_HAS_MIN, .min = 1);\n"
    "static const weir_param_def *const params[] = {&p_every, NULL};\n"
    "\n"
    "typedef struct op {\n"
    "    int64_t every, seen;\n"
    "} op;\n"
    "\n"
    "static int op_open(weir_ctx *ctx, void **self)\n"
    "{\n"
    "    op *o = calloc(1, sizeof *o);\n"
    "    if (!o)\n"
    "        return WEIR_ENOMEM;\n"
    "    weir_param_int(ctx, \"every\", &o->every);\n"
    "    *self = o;\n"
    "    return WEIR_OK;\n"
    "}\n"
    "\n"
    "/* The input record is borrowed; weir_emit copies. */\n"
    "static int op_process(weir_ctx *ctx, void *self, const weir_record "
    "*rec,\n"
    "                      uint32_t port)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)port;\n"
    "    if (++o->seen % o->every != 0)\n"
    "        return WEIR_OK;\n"
    "    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts, "
    "rec->value,\n"
    "                     rec->value_len);\n"
    "}\n"
    "\n"
    "static void op_close(weir_ctx *ctx, void *self)\n"
    "{\n"
    "    (void)ctx;\n"
    "    free(self);\n"
    "}\n"
    "\n"
    "static const weir_operator op_desc = {\n"
    "    .size = sizeof(weir_operator),\n"
    "    .name = \"@NAME@\",\n"
    "    .version = \"0.1.0\",\n"
    "    .description = \"forwards every n-th record\",\n"
    "    .params = params,\n"
    "    .open = op_open,\n"
    "    .process = op_process,\n"
    "    .close = op_close,\n"
    "};\n";

static const char np_body_keyed[] =
    "static const weir_param_def p_ttl = {\n"
    "    .size = sizeof(weir_param_def),\n"
    "    .name = \"ttl\",\n"
    "    .type = WEIR_PARAM_DURATION,\n"
    "    .flags = WEIR_PARAM_HAS_MIN,\n"
    "    .min = 1,\n"
    "    .default_value = \"1h\",\n"
    "    .description = \"a key not seen for this long is forgotten\"};\n"
    "static const weir_param_def *const params[] = {&p_ttl, NULL};\n"
    "\n"
    "typedef struct op {\n"
    "    weir_state *count; /* value state: 8 bytes, big-endian */\n"
    "    weir_mp_writer w;\n"
    "    uint64_t expired;\n"
    "} op;\n"
    "\n"
    "static int op_open(weir_ctx *ctx, void **self)\n"
    "{\n"
    "    op *o = calloc(1, sizeof *o);\n"
    "    int64_t ttl = 0;\n"
    "    if (!o)\n"
    "        return WEIR_ENOMEM;\n"
    "    weir_mp_writer_init(&o->w);\n"
    "    weir_param_int(ctx, \"ttl\", &ttl);\n"
    "    /* Every state states its TTL: state without one grows for ever. */\n"
    "    weir_state_desc d = {.size = sizeof d,\n"
    "                         .kind = WEIR_STATE_VALUE,\n"
    "                         .name = \"count\",\n"
    "                         .ttl_ms = ttl,\n"
    "                         .ttl_update = WEIR_TTL_ON_CREATE_AND_WRITE,\n"
    "                         .ttl_domain = WEIR_TIME_PROCESSING};\n"
    "    int rc = weir_state_declare(ctx, &d, &o->count);\n"
    "    if (rc < 0) {\n"
    "        weir_mp_writer_destroy(&o->w);\n"
    "        free(o);\n"
    "        return rc;\n"
    "    }\n"
    "    *self = o;\n"
    "    return WEIR_OK;\n"
    "}\n"
    "\n"
    "/* Runs for the current record's key: state calls see that key. */\n"
    "static int op_process(weir_ctx *ctx, void *self, const weir_record "
    "*rec,\n"
    "                      uint32_t port)\n"
    "{\n"
    "    op *o = self;\n"
    "    const void *v;\n"
    "    size_t len;\n"
    "    uint64_t n = 0;\n"
    "    (void)port;\n"
    "    int rc = weir_value_get(ctx, o->count, &v, &len);\n"
    "    if (rc == WEIR_OK && len == 8)\n"
    "        for (int i = 0; i < 8; i++)\n"
    "            n = n << 8 | ((const unsigned char *)v)[i];\n"
    "    else if (rc < 0 && rc != WEIR_ENOTFOUND)\n"
    "        return rc;\n"
    "    n++;\n"
    "    unsigned char buf[8];\n"
    "    for (int i = 7; i >= 0; i--)\n"
    "        buf[i] = (unsigned char)(n >> (8 * (7 - i)));\n"
    "    if ((rc = weir_value_put(ctx, o->count, buf, sizeof buf)) < 0)\n"
    "        return rc;\n"
    "    msgpack_packer *pk = &o->w.pk;\n"
    "    weir_mp_writer_reset(&o->w);\n"
    "    if (msgpack_pack_map(pk, 2) || weir_mp_pack_str(pk, \"key\") ||\n"
    "        weir_mp_pack_strn(pk, rec->key, rec->key_len) ||\n"
    "        weir_mp_pack_str(pk, \"count\") ||\n"
    "        msgpack_pack_uint64(pk, n))\n"
    "        return WEIR_ENOMEM;\n"
    "    return weir_emit(ctx, 0, rec->key, rec->key_len, rec->ts,\n"
    "                     o->w.buf.data, o->w.buf.size);\n"
    "}\n"
    "\n"
    "/* The TTL hook: the entry is still readable here, then it goes. */\n"
    "static int op_expired(weir_ctx *ctx, void *self, weir_state *state,\n"
    "                      const void *key, size_t key_len, const void "
    "*ukey,\n"
    "                      size_t ukey_len, const void *value, size_t "
    "value_len)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)ctx, (void)state, (void)key, (void)key_len, (void)ukey;\n"
    "    (void)ukey_len, (void)value, (void)value_len;\n"
    "    o->expired++;\n"
    "    return WEIR_OK;\n"
    "}\n"
    "\n"
    "static void op_close(weir_ctx *ctx, void *self)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)ctx;\n"
    "    if (!o)\n"
    "        return;\n"
    "    weir_mp_writer_destroy(&o->w);\n"
    "    free(o);\n"
    "}\n"
    "\n"
    "static const weir_operator op_desc = {\n"
    "    .size = sizeof(weir_operator),\n"
    "    .flags = WEIR_OP_KEYED,\n"
    "    .name = \"@NAME@\",\n"
    "    .version = \"0.1.0\",\n"
    "    .description = \"counts records per key, forgetting idle keys\",\n"
    "    .params = params,\n"
    "    .open = op_open,\n"
    "    .process = op_process,\n"
    "    .on_state_expired = op_expired,\n"
    "    .close = op_close,\n"
    "};\n";

static const char np_body_source[] =
    "static const weir_param_def p_count = {\n"
    "    .size = sizeof(weir_param_def),\n"
    "    .name = \"count\",\n"
    "    .type = WEIR_PARAM_INT,\n"
    "    .flags = WEIR_PARAM_HAS_MIN,\n"
    "    .min = 0,\n"
    "    .default_value = \"100\",\n"
    "    .description = \"records to emit\"};\n"
    "static const weir_param_def *const params[] = {&p_count, NULL};\n"
    "\n"
    "typedef struct op {\n"
    "    uint64_t count, next; /* next is the position, in the snapshot */\n"
    "    weir_mp_writer w;\n"
    "} op;\n"
    "\n"
    "static int op_open(weir_ctx *ctx, void **self)\n"
    "{\n"
    "    op *o = calloc(1, sizeof *o);\n"
    "    int64_t n = 0;\n"
    "    if (!o)\n"
    "        return WEIR_ENOMEM;\n"
    "    weir_param_int(ctx, \"count\", &n);\n"
    "    o->count = (uint64_t)n;\n"
    "    weir_mp_writer_init(&o->w);\n"
    "    *self = o;\n"
    "    return WEIR_OK;\n"
    "}\n"
    "\n"
    "/* Emits a few records and returns at once; WEIR_EOF at the end. */\n"
    "static int op_poll(weir_ctx *ctx, void *self)\n"
    "{\n"
    "    op *o = self;\n"
    "    for (int i = 0; i < 64 && o->next < o->count; i++, o->next++) {\n"
    "        char key[32];\n"
    "        int klen = snprintf(key, sizeof key, \"k%llu\",\n"
    "                            (unsigned long long)(o->next % 10));\n"
    "        msgpack_packer *pk = &o->w.pk;\n"
    "        weir_mp_writer_reset(&o->w);\n"
    "        if (msgpack_pack_map(pk, 1) || weir_mp_pack_str(pk, \"n\") ||\n"
    "            msgpack_pack_uint64(pk, o->next))\n"
    "            return WEIR_ENOMEM;\n"
    "        int rc = weir_emit(ctx, 0, key, (size_t)klen, (int64_t)o->next,\n"
    "                           o->w.buf.data, o->w.buf.size);\n"
    "        if (rc < 0)\n"
    "            return rc;\n"
    "    }\n"
    "    return o->next < o->count ? WEIR_OK : WEIR_EOF;\n"
    "}\n"
    "\n"
    "/* The position goes into checkpoints, so that a restart replays from\n"
    " * it: exactly once with a two-phase-commit sink. */\n"
    "static int op_snapshot(weir_ctx *ctx, void *self, uint64_t id)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)id;\n"
    "    return weir_snapshot_write(ctx, &o->next, sizeof o->next);\n"
    "}\n"
    "\n"
    "static int op_restore(weir_ctx *ctx, void *self, uint64_t id,\n"
    "                      uint32_t version, const void *data, size_t len)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)id;\n"
    "    if (version != 1 || len != sizeof o->next)\n"
    "        return weir_set_error(ctx, \"@NAME@: snapshot version %u, %zu "
    "bytes\",\n"
    "                              version, len);\n"
    "    memcpy(&o->next, data, len);\n"
    "    return WEIR_OK;\n"
    "}\n"
    "\n"
    "static void op_close(weir_ctx *ctx, void *self)\n"
    "{\n"
    "    op *o = self;\n"
    "    (void)ctx;\n"
    "    if (!o)\n"
    "        return;\n"
    "    weir_mp_writer_destroy(&o->w);\n"
    "    free(o);\n"
    "}\n"
    "\n"
    "static const weir_operator op_desc = {\n"
    "    .size = sizeof(weir_operator),\n"
    "    .flags = WEIR_OP_SOURCE,\n"
    "    .name = \"@NAME@\",\n"
    "    .version = \"0.1.0\",\n"
    "    .description = \"emits count records (replayable)\",\n"
    "    .params = params,\n"
    "    .snapshot_version = 1,\n"
    "    .open = op_open,\n"
    "    .poll = op_poll,\n"
    "    .snapshot = op_snapshot,\n"
    "    .restore = op_restore,\n"
    "    .close = op_close,\n"
    "};\n";

static const char np_tail[] =
    "\n"
    "static const weir_operator *const operators[] = {&op_desc, NULL};\n"
    "\n"
    "static const weir_plugin plugin = {\n"
    "    WEIR_PLUGIN_INIT,\n"
    "    .name = \"@NAME@\",\n"
    "    .version = \"0.1.0\",\n"
    "    .description = \"@NAME@ operator\",\n"
    "    .operators = operators,\n"
    "};\n"
    "\n"
    "/* The one exported symbol, weir_plugin_entry(). A host of another ABI\n"
    " * major gets NULL. */\n"
    "WEIR_PLUGIN_ENTRY(plugin)\n";

static const char np_readme[] =
    "# @NAME@\n"
    "\n"
    "A Weir operator plugin.\n"
    "\n"
    "```sh\n"
    "cmake -S . -B build -DCMAKE_PREFIX_PATH=/usr/local   # or "
    "-DWeir_DIR=<weir build dir>\n"
    "cmake --build build\n"
    "ctest --test-dir build          # the unit tests, and example.yaml "
    "through weir\n"
    "weir plugins --dir build @NAME@  # its parameters\n"
    "weir run --dir build example.yaml\n"
    "```\n";

/* Writes `tmpl` to dir/name with every @NAME@ replaced. */
static int np_write(const char *dir, const char *name, const char *tmpl,
                    const char *op)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wx");
    if (!f) {
        fprintf(stderr, "weir new-plugin: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (const char *p = tmpl; *p;) {
        const char *at = strstr(p, "@NAME@");
        size_t n = at ? (size_t)(at - p) : strlen(p);
        fwrite(p, 1, n, f);
        if (!at)
            break;
        fputs(op, f);
        p = at + 6;
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "weir new-plugin: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int np_valid_name(const char *s)
{
    if (!*s || strlen(s) > 64 || !(*s >= 'a' && *s <= 'z'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

static int np_usage(FILE *f)
{
    fputs("usage: weir new-plugin NAME [--keyed | --source] [--out DIR]\n"
          "  NAME: [a-z][a-z0-9_]*. Writes a plugin project that builds\n"
          "  out of tree against the installed SDK into DIR (default\n"
          "  ./NAME):\n"
          "    CMakeLists.txt  find_package(Weir), weir_add_plugin() and\n"
          "                    two tests for ctest: unit and example_job\n"
          "    NAME.c          the operator: parameters, callbacks, snapshot\n"
          "    test_NAME.c     the unit test: runs NAME.so on the real host\n"
          "                    through the test harness (weir/testing.h,\n"
          "                    linked with Weir::testing): records in,\n"
          "                    emitted records, keyed state and parameter\n"
          "                    errors checked, a restore from a checkpoint\n"
          "    example.yaml    a job running NAME between gen and\n"
          "                    file_sink (example_job runs it with weir)\n"
          "    README.md       how to build, test and run it\n"
          "  The operator forwards every n-th record; with --keyed it\n"
          "  counts per key in value state with a TTL and an expiry hook;\n"
          "  with --source it is a replayable source.\n"
          "  -k, --keyed    an operator with keyed state\n"
          "  -s, --source   a source\n"
          "  -o, --out DIR  the folder to create (default ./NAME)\n"
          "  -h, --help     this text\n",
          f);
    return f == stdout ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int cmd_new_plugin(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"keyed", no_argument, NULL, 'k'},
        {"source", no_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *name = NULL, *out = NULL;
    np_kind kind = NP_MAP;
    int c, kinds = 0;
    cli_getopt_reset();
    while ((c = cli_getopt("weir new-plugin", argc, argv, "kso:h", longopts)) !=
           -1) {
        switch (c) {
        case 'k':
            kind = NP_KEYED;
            kinds++;
            break;
        case 's':
            kind = NP_SOURCE;
            kinds++;
            break;
        case 'o':
            out = optarg;
            if (cli_need_value("weir new-plugin", "out", optarg) < 0)
                return np_usage(stderr);
            break;
        case 'h': return np_usage(stdout);
        default: return np_usage(stderr);
        }
    }
    if (kinds > 1) {
        fprintf(stderr,
                "weir new-plugin: --keyed and --source exclude each other\n");
        return np_usage(stderr);
    }
    if (optind < argc)
        name = argv[optind];
    if (!name || argc - optind > 1) {
        if (name)
            fprintf(stderr, "weir new-plugin: unexpected argument '%s'\n",
                    argv[optind + 1]);
        return np_usage(stderr);
    }
    if (!np_valid_name(name)) {
        fprintf(stderr,
                "weir new-plugin: '%s' is not a valid operator name "
                "([a-z][a-z0-9_]*, at most 64 characters)\n",
                name);
        return CLI_EXIT_USAGE;
    }
    if (!out)
        out = name;
    if (mkdir(out, 0777) < 0) {
        fprintf(stderr, "weir new-plugin: %s: %s\n", out, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    static const char *const bodies[] = {np_body_map, np_body_keyed,
                                         np_body_source};
    static const char *const yamls[] = {np_yaml_map, np_yaml_keyed,
                                        np_yaml_source};
    static const char *const tests[] = {np_test_map, np_test_keyed,
                                        np_test_source};
    char src_name[128], test_name[128], *src = NULL, *test = NULL;
    snprintf(src_name, sizeof src_name, "%s.c", name);
    snprintf(test_name, sizeof test_name, "test_%s.c", name);
    if (asprintf(&src, "%s%s%s", np_head, bodies[kind], np_tail) < 0)
        return CLI_EXIT_FAILED;
    if (asprintf(&test, "%s%s", np_test_head, tests[kind]) < 0) {
        free(src);
        return CLI_EXIT_FAILED;
    }
    int rc = np_write(out, "CMakeLists.txt", np_cmake, name) ||
             np_write(out, src_name, src, name) ||
             np_write(out, test_name, test, name) ||
             np_write(out, "example.yaml", yamls[kind], name) ||
             np_write(out, "README.md", np_readme, name);
    free(src);
    free(test);
    if (rc)
        return CLI_EXIT_FAILED;
    printf("wrote %s/: CMakeLists.txt %s %s example.yaml README.md\n", out,
           src_name, test_name);
    return CLI_EXIT_OK;
}
