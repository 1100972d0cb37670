/*
 * Write paths on a full file system: a real tmpfs of 8 MiB mounted for the
 * test (root only; otherwise the program exits 77, which ctest reports as
 * skipped), filled to the last byte. Each write path must fail with
 * FS_ENOSPC and "no space left on device: <dir> has N bytes free (of M)",
 * leave no partial file, and keep what was there; a state store must refuse
 * to open or flush there instead of letting RocksDB meet the full disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint/fsutil.h"
#include "checkpoint/manifest.h"
#include "common/fs.h"
#include "state/state.h"

#include "weir/weir.h"

#define MNT_BYTES (8u << 20)

static char mnt[64];  /* the tmpfs */
static char disk[64]; /* a directory on the ordinary file system */

static void write_bytes(const char *path, size_t n, int must)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    while (n > 0) {
        size_t k = n < sizeof buf ? n : sizeof buf;
        ssize_t w = write(fd, buf, k);
        if (w <= 0) {
            assert_false(must);
            break;
        }
        n -= (size_t)w;
    }
    close(fd);
}

/* Fills the tmpfs to the last byte. */
static void fill(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/filler", mnt);
    write_bytes(path, MNT_BYTES, 0);
    uint64_t avail, total;
    assert_int_equal(fs_space(mnt, &avail, &total), 0);
    assert_true(avail < 4096);
    assert_int_equal(total, MNT_BYTES);
}

static void unfill(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/filler", mnt);
    unlink(path);
}

/* The message names a directory under the tmpfs and its space. */
static void assert_nospace_msg(const char *err)
{
    char want[128];
    snprintf(want, sizeof want, "no space left on device: %s", mnt);
    assert_non_null(err);
    assert_non_null(strstr(err, want));
    char of[64];
    snprintf(of, sizeof of, "bytes free (of %u)", MNT_BYTES);
    assert_non_null(strstr(err, of));
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_message(void **state)
{
    (void)state;
    char *err = NULL, path[128];
    snprintf(path, sizeof path, "%s/no/such/file", mnt);
    assert_int_equal(fs_nospace(&err, path, 0), FS_ENOSPC);
    char want[160];
    snprintf(want, sizeof want, "no space left on device: %s has ", mnt);
    assert_memory_equal(err, want, strlen(want));
    free(err);
    err = NULL;
    assert_int_equal(fs_check_space(mnt, UINT64_MAX, &err), FS_ENOSPC);
    assert_non_null(strstr(err, "below the"));
    free(err);
    assert_int_equal(fs_check_space(mnt, 1, NULL), 0);
}

static void test_write_file(void **state)
{
    (void)state;
    char *err = NULL, path[128];
    snprintf(path, sizeof path, "%s/snapshot", mnt);
    fill();
    char data[65536] = {0};
    assert_int_equal(fs_write_file(path, data, sizeof data, &err), FS_ENOSPC);
    assert_nospace_msg(err);
    assert_false(exists(path));
    free(err);
    unfill();
}

static void test_write_atomic(void **state)
{
    (void)state;
    char *err = NULL, path[128], tmp[140];
    snprintf(path, sizeof path, "%s/completed", mnt);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(ckpt_write_atomic(mnt, path, "1\n2\n", 4, NULL, &err), 0);
    fill();
    char data[65536];
    memset(data, '7', sizeof data);
    assert_int_equal(
        ckpt_write_atomic(mnt, path, data, sizeof data, NULL, &err), FS_ENOSPC);
    assert_nospace_msg(err);
    free(err);
    assert_false(exists(tmp));
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(fs_read_file(path, &text, &len, NULL), 0);
    assert_string_equal(text, "1\n2\n"); /* the old content, untouched */
    free(text);
    unfill();
}

static void test_materialize(void **state)
{
    (void)state;
    char *err = NULL, src[128], file[160], dst[128];
    snprintf(src, sizeof src, "%s/state", disk);
    snprintf(file, sizeof file, "%s/MANIFEST-000005", src);
    snprintf(dst, sizeof dst, "%s/work/count/0", mnt);
    assert_int_equal(fs_mkdirs(src, NULL), 0);
    write_bytes(file, 256 << 10, 1);
    fill();
    assert_int_equal(ckpt_materialize(src, dst, &err), FS_ENOSPC);
    assert_nospace_msg(err);
    free(err);
    assert_false(exists(dst));
    unfill();
    assert_int_equal(ckpt_materialize(src, dst, NULL), 0);
    fs_rmtree(dst, NULL);
}

static void test_state_store(void **state)
{
    (void)state;
    state_env *env = NULL;
    state_store *s = NULL;
    char *err = NULL, path[128], ckdir[128], delta[140];
    snprintf(path, sizeof path, "%s/state/job/count/0", mnt);
    snprintf(ckdir, sizeof ckdir, "%s/chk-1", mnt);
    snprintf(delta, sizeof delta, "%s/chk-1.delta", mnt);
    state_env_config ecfg;
    state_env_config_init(&ecfg);
    ecfg.write_buffer_bytes = 2u << 20; /* WAL preallocation of ~1 MiB */
    ecfg.expected_stores = 1;
    assert_int_equal(state_env_new(&ecfg, &env, NULL), 0);
    state_store_config cfg;
    state_store_config_init(&cfg);
    cfg.path = path;
    cfg.name = "count#0";
    cfg.min_free_bytes = 64 << 10;

    /* A full disk: the store refuses to open. */
    fill();
    assert_int_equal(state_store_open(env, &cfg, &s, &err), FS_ENOSPC);
    assert_null(s);
    assert_nospace_msg(err);
    assert_non_null(strstr(err, "state.min_free_space"));
    free(err);
    err = NULL;
    unfill();

    /* Open with room, write, then the disk fills: the checkpoint's flush
     * is refused before RocksDB writes, and closing does not abort. */
    assert_int_equal(state_store_open(env, &cfg, &s, &err), 0);
    weir_state_desc d = {.size = sizeof d,
                         .name = "v",
                         .kind = WEIR_STATE_VALUE,
                         .ttl_ms = WEIR_TTL_NONE};
    weir_state *st = NULL;
    assert_int_equal(state_declare(s, &d, 0, &st, &err), 0);
    for (int i = 0; i < 300000; i++) {
        char k[16], v[32];
        int kl = snprintf(k, sizeof k, "k%d", i);
        int vl = snprintf(v, sizeof v, "value-%d", i);
        assert_int_equal(
            state_set_key(s, (uint16_t)(i % 128), k, (size_t)kl, WEIR_TS_NONE),
            0);
        assert_int_equal(state_value_put(st, v, (size_t)vl, &err), 0);
    }
    state_clear_key(s);
    fill();
    int wrote = 0;
    assert_int_equal(state_checkpoint_delta(s, ckdir, delta, &wrote, &err),
                     FS_ENOSPC);
    assert_nospace_msg(err);
    assert_non_null(strstr(err, "flushing the memtables"));
    free(err);
    err = NULL;
    assert_false(exists(ckdir));
    assert_false(exists(delta));
    assert_true(state_store_close(s, &err) < 0);
    free(err);
    unfill();
    state_env_free(env);
}

static int mount_tmpfs(void)
{
    snprintf(mnt, sizeof mnt, "/tmp/weir-nospace-XXXXXX");
    snprintf(disk, sizeof disk, "/tmp/weir-nospace-disk-XXXXXX");
    if (!mkdtemp(mnt) || !mkdtemp(disk))
        return -1;
    char opts[32];
    snprintf(opts, sizeof opts, "size=%u", MNT_BYTES);
    if (mount("tmpfs", mnt, "tmpfs", 0, opts) != 0) {
        printf("SKIP: mounting a tmpfs is not permitted here: %s\n",
               strerror(errno));
        rmdir(mnt);
        rmdir(disk);
        return -1;
    }
    return 0;
}

int main(void)
{
    if (mount_tmpfs() < 0)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message),      cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_write_atomic), cmocka_unit_test(test_materialize),
        cmocka_unit_test(test_state_store),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    fs_rmtree(disk, NULL);
    return rc;
}
