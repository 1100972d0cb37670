#!/usr/bin/python3
"""A damaged newest checkpoint is reported and the previous one restored.

Runs the worker directly (`weir run --worker --run-dir D`) until it has
completed a few checkpoints, kills it with SIGKILL, damages the newest
checkpoint in one way, and starts the worker again on the same run
directory. It must name the damage, restore the previous checkpoint and
finish. Output is checked for losses only: the damaged checkpoint's
transactions were already committed by the sink, so falling back to an
older checkpoint replays them (as in any system whose newest checkpoint is
lost). When every checkpoint is damaged, the worker refuses to start from
nothing (exit 11) unless checkpoint.allow_fresh_start is set.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

sys_path = os.path.dirname(os.path.abspath(__file__))
import sys  # noqa: E402

sys.path.insert(0, sys_path)
from test_exactly_once import JOB, PLUGINS, SEED, WEIR, committed, write_input  # noqa: E402


def flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x5A]))


def truncate(path):
    os.truncate(path, os.path.getsize(path) // 2)


def biggest_sst(chk):
    ssts = glob.glob(os.path.join(chk, "*", "state", "*.sst"))
    return max(ssts, key=os.path.getsize)


def biggest_own_file(chk):
    """The biggest file of this checkpoint alone: consecutive checkpoints
    hard-link the same SSTs, and damaging the bytes of a shared file damages
    every checkpoint that lists it (deleting one link does not)."""
    own = [p for p in glob.glob(os.path.join(chk, "*", "**"), recursive=True)
           if os.path.isfile(p) and os.stat(p).st_nlink == 1 and
           os.path.getsize(p) > 16]
    return max(own, key=os.path.getsize)


def bad_version(chk):
    path = os.path.join(chk, "MANIFEST.json")
    with open(path) as f:
        m = json.load(f)
    m["format"] = 99
    with open(path, "w") as f:
        json.dump(m, f)


DAMAGE = {
    # name: (how, a regex the worker's message must match)
    "truncated": (lambda chk: truncate(biggest_own_file(chk)), r"size|truncat"),
    "flipped": (lambda chk: flip_byte(biggest_own_file(chk)), r"checksum"),
    "missing_sst": (lambda chk: os.unlink(biggest_sst(chk)),
                    r"missing|No such file|not found"),
    "missing_manifest": (lambda chk: os.unlink(os.path.join(chk, "MANIFEST.json")),
                         r"MANIFEST"),
    "bad_version": (bad_version, r"99"),
}


class Damaged(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-dmg-")
        self.run_dir = os.path.join(self.d, "run")
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), 40000, 200,
                                 SEED)
        self.yaml = os.path.join(self.d, "job.yaml")
        with open(self.yaml, "w") as f:
            f.write(JOB.format(d=self.d, rate=10000, mode="exactly_once",
                               cache=1000))

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def worker(self, attempt, extra=()):
        log = open(os.path.join(self.d, "w%d.txt" % attempt), "w")
        p = subprocess.Popen([WEIR, "run", "--worker", "--run-dir",
                              self.run_dir, "--attempt", str(attempt),
                              "--dir", PLUGINS, *extra, self.yaml],
                             stdout=log, stderr=log)
        return p, log

    def completed(self):
        try:
            with open(os.path.join(self.run_dir, "completed")) as f:
                return [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def first_run(self, want):
        p, log = self.worker(0)
        deadline = time.time() + 30
        while len(self.completed()) < want and time.time() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        log.close()
        ids = self.completed()
        self.assertGreaterEqual(len(ids), want, "too few checkpoints")
        return ids

    def second_run(self, attempt=1):
        p, log = self.worker(attempt)
        rc = p.wait(timeout=60)
        log.close()
        with open(os.path.join(self.d, "w%d.txt" % attempt)) as f:
            return rc, f.read()

    def test_each_damage_falls_back(self):
        for name, (damage, pattern) in DAMAGE.items():
            with self.subTest(damage=name):
                shutil.rmtree(self.run_dir, ignore_errors=True)
                shutil.rmtree(os.path.join(self.d, "out"), ignore_errors=True)
                ids = self.first_run(3)
                newest = ids[-1]
                damage(os.path.join(self.run_dir, "chk-%d" % newest))
                rc, text = self.second_run()
                self.assertEqual(rc, 0, text[-3000:])
                warn = [l for l in text.splitlines()
                        if "checkpoint %d" % newest in l and "WARN" in l]
                self.assertTrue(warn, "damage not reported:\n" + text[-3000:])
                self.assertRegex(warn[0], pattern)
                restored = re.findall(r"restoring checkpoint (\d+)", text)
                self.assertEqual(int(restored[0]), ids[-2], text[-3000:])
                seen = committed(os.path.join(self.d, "out"))
                for k, n in self.tally.items():
                    self.assertTrue(set(range(1, n + 1)) <= set(seen.get(k, [])),
                                    "key %s lost counts" % k)

    def test_all_damaged_refuses_fresh_start(self):
        ids = self.first_run(2)
        for i in ids:
            os.unlink(os.path.join(self.run_dir, "chk-%d" % i, "MANIFEST.json"))
        rc, text = self.second_run()
        self.assertEqual(rc, 11, text[-3000:])
        self.assertIn("no valid checkpoint", text)
        self.assertNotIn("starting with empty state", text)


class FreshStart(Damaged):
    """With checkpoint.allow_fresh_start, a run whose checkpoints are all
    damaged starts from empty state, saying so, instead of refusing."""

    def setUp(self):
        super().setUp()
        with open(self.yaml) as f:
            text = f.read()
        with open(self.yaml, "w") as f:
            f.write(text.replace("mode: exactly_once",
                                 "mode: exactly_once, allow_fresh_start: true"))

    def test_each_damage_falls_back(self):
        pass  # covered by Damaged

    def test_all_damaged_refuses_fresh_start(self):
        ids = self.first_run(2)
        for i in ids:
            os.unlink(os.path.join(self.run_dir, "chk-%d" % i, "MANIFEST.json"))
        rc, text = self.second_run()
        self.assertEqual(rc, 0, text[-3000:])
        self.assertIn("no valid checkpoint to restore", text)
        self.assertIn("starting from empty state as "
                      "checkpoint.allow_fresh_start allows", text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
