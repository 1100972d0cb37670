#!/usr/bin/python3
"""End-to-end exactly-once tests with real processes and SIGKILL.

The job: file_source (paced) -> key -> count (RocksDB state, parallelism 2)
-> two-phase-commit file_sink (parallelism 2), with checkpoints every 100 ms
and a fixed-delay restart strategy. The input is written here with Python's
own random generator, so the oracle (every key's count, from the input) does
not share code with the runtime. The committed output must hold, for every
key, the counts 1..n exactly once each, with n the key's number of input
records: nothing lost, nothing duplicated, per-key sequences consecutive.

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR. WEIR_SOAK=N makes the
kill loop do N kills instead of the CI default.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
SEED = int(os.environ.get("WEIR_SEED", "20261121"))

JOB = """\
job: eo
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3, mode: {mode}}}
restart: {{strategy: fixed_delay, attempts: 1000, delay: 0ms}}
state: {{dir: '{d}/state', cache_entries: {cache}}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user, rate: {rate}, batch: 64}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
  - id: sink
    type: file_sink
    parallelism: 2
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


def write_input(path, n, keys, seed):
    rng = random.Random(seed)
    tally = {}
    with open(path, "w") as f:
        for i in range(n):
            k = "u%d" % rng.randrange(keys)
            tally[k] = tally.get(k, 0) + 1
            f.write(json.dumps({"user": k, "i": i}) + "\n")
    return tally


def committed(outdir):
    """Per key, the list of counts in the committed part files."""
    seen = {}
    for part in sorted(glob.glob(os.path.join(outdir, "part-*.jsonl"))):
        with open(part) as f:
            for line in f:
                r = json.loads(line)
                seen.setdefault(r["key"], []).append(r["value"]["count"])
    return seen


class Job:
    """A supervised `weir run` whose log is collected in a file."""

    def __init__(self, d, env=None, yaml=None):
        self.d = d
        self.log_path = os.path.join(d, "log.txt")
        self.log = open(self.log_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        args = [WEIR, "run", "--dir", PLUGINS, yaml or os.path.join(d, "job.yaml")]
        self.p = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=e)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def worker(self):
        """The pid of the newest worker, or None."""
        pids = re.findall(r"worker (\d+) started", self.text())
        return int(pids[-1]) if pids else None

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.log.close()


def completed_ids(d):
    ids = []
    for path in glob.glob(os.path.join(d, "ckpt", "eo", "*", "completed")):
        with open(path) as f:
            ids += [int(x) for x in f.read().split()]
    return ids


class ExactlyOnce(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-eo-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def make_job(self, n=30000, keys=300, rate=20000, mode="exactly_once",
                 cache=100000):
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), n, keys,
                                 SEED)
        with open(os.path.join(self.d, "job.yaml"), "w") as f:
            f.write(JOB.format(d=self.d, rate=rate, mode=mode, cache=cache))

    def check_exactly_once(self, job):
        seen = committed(os.path.join(self.d, "out"))
        msg = job.text()[-3000:]
        self.assertEqual(sorted(seen), sorted(self.tally), msg)
        for k, n in self.tally.items():
            counts = sorted(seen[k])
            self.assertEqual(counts, list(range(1, n + 1)),
                             "key %s: %d records, committed counts %s...\n%s"
                             % (k, n, counts[:20], msg))

    def check_at_least_once(self, job):
        seen = committed(os.path.join(self.d, "out"))
        for k, n in self.tally.items():
            self.assertTrue(set(range(1, n + 1)) <= set(seen.get(k, [])),
                            "key %s lost counts\n%s" % (k, job.text()[-3000:]))

    def kill_loop(self, kills, seed):
        """Kills the worker `kills` times at seeded random moments."""
        rng = random.Random(seed)
        job = Job(self.d)
        done = 0
        deadline = time.time() + 60 + kills * 2
        # Kills before the first checkpoint only replay from the start; on
        # a loaded machine that can be all of them. Start after one.
        while not completed_ids(self.d) and time.time() < deadline:
            if job.p.poll() is not None:
                break
            time.sleep(0.01)
        while done < kills and time.time() < deadline:
            time.sleep(rng.uniform(0.1, 0.35))
            if job.p.poll() is not None:
                break
            pid = job.worker()
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                done += 1
            except ProcessLookupError:
                pass
        return job, done

    def test_kill_loop(self):
        kills = int(os.environ.get("WEIR_SOAK", "10"))
        # Long enough to be killed `kills` times mid-run.
        self.make_job(n=max(30000, kills * 3000), rate=15000)
        job, done = self.kill_loop(kills, SEED)
        rc = job.wait(timeout=120)
        self.assertEqual(rc, 0, job.text()[-3000:])
        self.assertGreaterEqual(done, min(kills, 10), "too few kills landed")
        restores = re.findall(r"restoring checkpoint (\d+)", job.text())
        self.assertGreater(len(restores), 0, "no restart restored a checkpoint")
        self.check_exactly_once(job)

    def test_at_least_once_mode(self):
        """Unaligned barriers: duplicates are allowed, losses are not."""
        self.make_job(mode="at_least_once", rate=20000)
        job, _ = self.kill_loop(4, SEED + 1)
        self.assertEqual(job.wait(timeout=120), 0, job.text()[-3000:])
        self.check_at_least_once(job)

    def test_from_checkpoint(self):
        """A run killed midway (supervisor and worker, SIGKILL) and a new run
        started with --from its newest checkpoint together commit every
        record exactly once."""
        self.make_job(n=30000, rate=15000)
        job = Job(self.d)
        deadline = time.time() + 30
        while len(completed_ids(self.d)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        worker = job.worker()
        job.p.kill()
        job.wait(timeout=10)
        if worker:
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ids = completed_ids(self.d)
        self.assertGreaterEqual(len(ids), 3, job.text()[-3000:])
        run_dir = glob.glob(os.path.join(self.d, "ckpt", "eo", "*"))[0]
        chk = os.path.join(run_dir, "chk-%d" % max(ids))
        log = open(os.path.join(self.d, "from.txt"), "w")
        p = subprocess.run([WEIR, "run", "--dir", PLUGINS, "--from", chk,
                            os.path.join(self.d, "job.yaml")],
                           stdout=log, stderr=log, timeout=120)
        log.close()
        with open(os.path.join(self.d, "from.txt")) as f:
            text = f.read()
        self.assertEqual(p.returncode, 0, text[-3000:])
        self.assertIn("restoring checkpoint %d from %s" % (max(ids), chk), text)
        self.check_exactly_once(job)

    def test_crash_points(self):
        points = ["barrier_received", "state_snapshotted", "manifest_written",
                  "manifest_renamed", "before_notify", "sink_precommit",
                  "sink_commit"]
        for point in points:
            with self.subTest(point=point):
                shutil.rmtree(self.d, ignore_errors=True)
                os.makedirs(self.d)
                self.make_job(n=12000, rate=12000, cache=0)
                job = Job(self.d, env={"WEIR_CRASH_AT": point + ":3"})
                rc = job.wait(timeout=60)
                text = job.text()
                self.assertEqual(rc, 0, text[-3000:])
                self.assertIn("crash point reached", text)
                self.assertIn("exited with code 86", text)
                self.check_exactly_once(job)


if __name__ == "__main__":
    unittest.main(verbosity=2)
