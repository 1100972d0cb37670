#!/usr/bin/python3
"""A full disk under state.dir, checkpoint.dir or the sink's output.

The job: gen (many distinct keys, paced) -> key -> count (RocksDB state,
parallelism 2) -> two-phase-commit file_sink, with a checkpoint every 200 ms
and a fixed-delay restart strategy, under the real `weir run` supervisor.
The state directory, the checkpoint directory or the sink's output
directory is on a small tmpfs. Once two checkpoints are complete, the test
fills the tmpfs to the last byte with a filler file. The worker must then
fail with "no space left on device: <dir> has N bytes free (of M)" (never
an abort or a RocksDB assertion), every restart must fail the same way, and
after the test deletes the filler the next restart must restore the last
complete checkpoint and finish with exact output: every key's committed
counts are 1..n, n the number of records gen made for the key, which the
test computes itself from gen's documented key function (splitmix64).

Needs root (mount -t tmpfs); otherwise it exits 77 (ctest SKIP_RETURN_CODE)
saying why. Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR.
Usage: test_disk_full.py [DiskFull.test_state_dir | test_checkpoint_dir |
test_output_dir]
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")

RECORDS = 150000
KEYS = 30000
SEED = 7
RATE = 50000
LEAVE = int(os.environ.get("LEAVE", str(3 << 19)))

JOB = """\
job: df
checkpoint: {{interval: 200ms, dir: '{ckpt}', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 1000, delay: 200ms}}
state: {{dir: '{state}', {state_extra}min_free_space: 64KiB}}
operators:
  - id: src
    type: gen
    config: {{count: {n}, keys: {keys}, seed: {seed}, rate: {rate}}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
  - id: sink
    type: file_sink
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{out}', commit: checkpoint}}
"""

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    """splitmix64's finaliser, as gen.c documents it."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def oracle(n, keys, seed):
    """Records per key of gen's uniform sequence 0..n-1."""
    seed_mix = mix(seed & MASK)
    tally = {}
    for i in range(n):
        draw = mix((mix(seed_mix ^ i) + GOLDEN) & MASK)
        k = "k%d" % ((draw * keys) >> 64)
        tally[k] = tally.get(k, 0) + 1
    return tally


def committed(outdir):
    """Per key, the counts in the committed part files."""
    seen = {}
    for part in sorted(glob.glob(os.path.join(outdir, "part-*.jsonl"))):
        with open(part) as f:
            for line in f:
                r = json.loads(line)
                seen.setdefault(r["key"], []).append(r["value"]["count"])
    return seen


def mount_tmpfs(path, size):
    """Mounts a tmpfs at path; returns None or why it could not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (euid %d)" % os.geteuid()
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                            "tmpfs", path], capture_output=True, text=True,
                           timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "mount failed: %s" % e
    if r.returncode != 0:
        return "mount -t tmpfs is not permitted here: %s" % r.stderr.strip()
    return None


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


MESSAGE = re.compile(r"no space left on device: (\S+) has (\d+) bytes free "
                     r"\(of (\d+)\)")


class DiskFull(unittest.TestCase):

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-df-")
        self.small = os.path.join(self.d, "small")
        os.makedirs(self.small)
        self.mounted = False

    def mount(self, size):
        why = mount_tmpfs(self.small, size)
        if why:
            self.skipTest(why)
        self.mounted = True

    def tearDown(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.small], timeout=20)
        shutil.rmtree(self.d, ignore_errors=True)

    def log(self):
        with open(os.path.join(self.d, "log.txt")) as f:
            return f.read()

    def completed(self):
        ids = []
        for path in glob.glob(os.path.join(self.ckpt, "df", "*", "completed")):
            with open(path) as f:
                ids += [int(x) for x in f.read().split()]
        return ids

    def failures(self):
        """The supervisor's line of each failed attempt so far."""
        return re.findall(r"worker \d+ (?:exited with code [1-9]\d*|killed "
                          r"by SIG\w+) .*", self.log())

    def fill(self, leave=0):
        """Fills the tmpfs with a filler file up to `leave` free bytes (to
        the last byte with 0)."""
        st = os.statvfs(self.small)
        # Never fill anything but the small tmpfs this test mounted.
        self.assertTrue(os.path.ismount(self.small), self.small)
        self.assertLessEqual(st.f_blocks * st.f_frsize, 64 << 20)
        path = os.path.join(self.small, "filler")
        with open(path, "wb", buffering=0) as f:
            for chunk in (1 << 16, 1 << 12, 1):
                try:
                    while free_bytes(self.small) >= leave + chunk:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        return path

    def run_full_disk(self, on_tmpfs, leave_at_start=None, keys=KEYS,
                      size="16m"):
        """Runs the job with `on_tmpfs` ("state", "ckpt" or "out") on a
        tmpfs of `size`, fills it (after two checkpoints, or before the
        start with leave_at_start free bytes), frees it after three failed
        attempts and checks the messages and the output."""
        self.mount(size)
        self.ckpt = os.path.join(self.d if on_tmpfs != "ckpt" else self.small,
                                 "ckpt")
        state = os.path.join(self.d if on_tmpfs != "state" else self.small,
                             "state")
        out = os.path.join(self.d if on_tmpfs != "out" else self.small, "out")
        job_path = os.path.join(self.d, "job.yaml")
        with open(job_path, "w") as f:
            f.write(JOB.format(
                ckpt=self.ckpt, state=state, out=out, n=RECORDS, keys=keys,
                seed=SEED, rate=RATE,
                state_extra="cache_entries: 1000, " +
                ("write_buffer: 2MiB, " if leave_at_start is None else "")))
        if leave_at_start is not None:
            filler = self.fill(leave_at_start)
        log = open(os.path.join(self.d, "log.txt"), "w")
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS, job_path],
                             stdout=log, stderr=log)
        try:
            deadline = time.time() + 30
            while (leave_at_start is None and len(self.completed()) < 2 and
                   time.time() < deadline):
                self.assertIsNone(p.poll(), self.log()[-3000:])
                time.sleep(0.02)
            if leave_at_start is None:
                self.assertGreaterEqual(len(self.completed()), 2,
                                        "no checkpoints\n" +
                                        self.log()[-3000:])
                filler = self.fill()
            # The failure, then restarts failing the same way.
            deadline = time.time() + 40
            while (len(self.failures()) < 3 and p.poll() is None and
                   time.time() < deadline):
                time.sleep(0.05)
            text = self.log()
            self.assertIsNone(p.poll(), "the job ended\n" + text[-3000:])
            failures = self.failures()
            self.assertGreaterEqual(len(failures), 3,
                                    "the worker did not fail 3 times\n" +
                                    text[-4000:])
            for line in failures:
                self.assertIn("exited with code 10 (job failed)", line)
            for line in re.findall(r".* ERROR .*", text):
                self.assertRegex(line, MESSAGE)
            os.unlink(filler)
            rc = p.wait(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        text = self.log()
        self.assertEqual(rc, 0, text[-4000:])
        self.assertNotIn("Assertion", text)
        self.assertNotRegex(text, r"killed by SIG")
        for m in MESSAGE.finditer(text):
            self.assertTrue(m.group(1).startswith(self.small),
                            "message names %s, not the tmpfs %s" %
                            (m.group(1), self.small))
            self.assertLessEqual(int(m.group(2)), int(m.group(3)))
        restored = re.findall(r"restoring checkpoint (\d+)", text)
        self.assertTrue(restored or leave_at_start is not None,
                        "no restart restored a checkpoint\n" + text[-3000:])
        seen = committed(out)
        tally = oracle(RECORDS, keys, SEED)
        self.assertEqual(sorted(seen), sorted(tally), text[-3000:])
        for k, n in tally.items():
            counts = sorted(seen[k])
            self.assertEqual(counts, list(range(1, n + 1)),
                             "key %s: %d records, committed counts %s..." %
                             (k, n, counts[:20]))

    def test_state_dir(self):
        self.run_full_disk("state")

    def test_checkpoint_dir(self):
        self.run_full_disk("ckpt")

    def test_output_dir(self):
        self.run_full_disk("out")

    def test_start_on_full_disk(self):
        """Starts and restarts with the state's tmpfs nearly full, so that
        RocksDB opens its stores there (in RocksDB 7.8 as Debian builds it,
        with the default write buffer, whose WAL preallocation takes more
        than the free space for a moment, such a start aborted on the
        assertion 'sync_without_flush_called_' about every second time)."""
        self.run_full_disk("state", leave_at_start=LEAVE, keys=200000,
                           size="64m")


if __name__ == "__main__":
    probe = tempfile.mkdtemp(prefix="weir-df-probe-")
    why = mount_tmpfs(probe, "1m")
    if not why:
        subprocess.run(["umount", probe], timeout=20)
    os.rmdir(probe)
    if why:
        print("SKIP: %s" % why)
        sys.exit(77)
    unittest.main(verbosity=2)
