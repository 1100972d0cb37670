#!/usr/bin/python3
"""`weir ctl TARGET state ...` against real supervised runs: a state leak
fixed while the job runs (a TTL override of a state declared without TTL)
that stays fixed after the worker is killed with SIGKILL; purges with exact
counts that stay purged after a restore; a worker that ends while a change
waits for its checkpoint; an expiry hook that crashes after a TTL change;
refused requests.

Key counts come from `weir ctl status --json` (each subtask's sampled
estimate, state.stats_interval 500ms). "Flat" means: over a window of
samples the count grew by less than a third of what the generator's rate
would add to a leaking state; no timing is asserted, only generous
deadlines.

Run one case: test_ctl_state.py Class.test_name. Environment: WEIR,
WEIR_PLUGIN_DIR, WEIR_TESTOPS_DIR (the test operators' directory).
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
from weirproc import committed  # noqa: E402

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
TESTOPS = os.environ.get("WEIR_TESTOPS_DIR", "")

RATE = 3000  # records/s of the leaking generator, each (almost) a new key

LEAK_JOB = """\
job: leak
checkpoint: {{interval: 1s, dir: '{d}/ckpt', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 3, delay: 0ms}}
state: {{dir: '{d}/state', leak_samples: 2, stats_interval: 500ms,
         sweep_batch: 10000}}
operators:
  - id: gen
    type: gen
    config: {{keys: 100000000, rate: {rate}}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: gen, partition: key}}]
  - id: out
    type: file_sink
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""

# a: 100 keys a0..a99, 3000 records, then it ends; b: 50 keys b0..b49 for
# ever. Both count into the same state.
PURGE_JOB = """\
job: purge
checkpoint: {{interval: {interval}, dir: '{d}/ckpt', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 3, delay: 0ms}}
state: {{dir: '{d}/state', stats_interval: 500ms}}
operators:
  - id: a
    type: gen
    config: {{keys: 100, count: 3000, key_prefix: a, seed: 1}}
  - id: b
    type: gen
    config: {{keys: 50, rate: 1000, key_prefix: b, seed: 2}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: a, partition: key}}, {{from: b, partition: key}}]
  - id: out
    type: file_sink
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


# a: 100 keys a0..a99, 3000 records, then idle; b: 50 keys for ever (the
# job runs on). hookcount's expiry hook emits each expired key's count; its
# first call crashes the first worker.
HOOK_JOB = """\
job: hook
checkpoint: {{interval: 1s, dir: '{d}/ckpt', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 3, delay: 0ms}}
state: {{dir: '{d}/state', stats_interval: 500ms}}
operators:
  - id: a
    type: gen
    config: {{keys: 100, count: 3000, key_prefix: a, seed: 1}}
  - id: b
    type: gen
    config: {{keys: 50, rate: 1000, key_prefix: b, seed: 2}}
  - id: hook
    type: hookcount
    parallelism: 2
    inputs: [{{from: a, partition: key}}, {{from: b, partition: key}}]
    config: {{crash_file: '{d}/crashed'}}
  - id: out
    type: file_sink
    inputs: [{{from: hook, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


def env(crash_at=None):
    e = dict(os.environ)
    e["WEIR_LOG"] = "info"
    e.pop("WEIR_CRASH_AT", None)
    e.pop("WEIR_CRASH_ATTEMPT", None)
    if crash_at:
        e["WEIR_CRASH_AT"] = crash_at
    return e


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-ctl-state-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.d, ignore_errors=True)

    def start(self, template, name, crash_at=None, **kw):
        self.name = name
        self.job = os.path.join(self.d, "job.yaml")
        with open(self.job, "w") as f:
            f.write(template.format(d=self.d, **kw))
        log = open(os.path.join(self.d, "run.log"), "w")
        dirs = ["--dir", PLUGINS] + (["--dir", TESTOPS] if TESTOPS else [])
        p = subprocess.Popen([WEIR, "run"] + dirs + [self.job],
                             stdout=log, stderr=log, env=env(crash_at))
        p.log_path = log.name
        self.procs.append(p)
        self.p = p
        return p

    def log(self):
        with open(self.p.log_path) as f:
            return f.read()

    def ctl(self, *args, timeout=120):
        return subprocess.run(
            [WEIR, "ctl", os.path.join(self.d, "ckpt", self.name)] +
            list(args), capture_output=True, text=True, timeout=timeout,
            env=env())

    def status(self):
        r = self.ctl("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_for(self, what, fn, timeout=60, every=0.25):
        """Polls fn() until it returns something true; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            self.assertIsNone(self.p.poll(), self.log()[-3000:])
            time.sleep(every)
        self.fail("timed out waiting for %s\n%s" % (what, self.log()[-3000:]))

    def states(self, st, op="count"):
        """The states of operator op's subtasks in a status, or None until
        every subtask published them."""
        tasks = [t for t in st["tasks"] if t["operator"] == op] if st else []
        if not tasks or not all(t["states"] for t in tasks):
            return None
        return [s for t in tasks for s in t["states"]]

    def keys(self):
        s = self.states(self.status())
        return sum(x["keys"] for x in s) if s else None

    def worker(self):
        st = self.status()
        return st["supervisor"]["worker"] if st else None


class Leak(Base):
    def sample(self, n, every=0.5):
        out = []
        for _ in range(n):
            k = self.keys()
            if k is not None:
                out.append(k)
            time.sleep(every)
        return out

    def flat(self, window=6, every=0.5):
        """Samples keys over `window` samples; True when they grew by less
        than a third of what RATE adds to a leak in that time."""
        v = self.sample(window, every)
        return len(v) >= window // 2 and \
            max(v) - v[0] < RATE * every * len(v) / 3, v

    def test_ttl_fixes_leak_live_and_after_sigkill(self):
        self.start(LEAK_JOB, "leak", rate=RATE)
        self.wait_for("the states", self.keys)
        # The leak: the key count grows and the leak warning fires.
        self.wait_for("the leak warning",
                      lambda: "probable state leak" in self.log())
        ok, v = self.flat()
        self.assertFalse(ok, "the state should leak before the fix: %s" % v)
        self.assertGreater(v[-1], v[0], v)
        before = self.status()
        self.assertIsNone(self.states(before)[0]["ttl_ms"])

        r = self.ctl("state", "ttl", "count", "count", "2s", "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        reply = json.loads(r.stdout)
        self.assertEqual(len(reply["subtasks"]), 2)
        self.assertGreater(reply["rewritten"], 0, reply)
        ck = reply["checkpoint"]
        for part in reply["subtasks"]:
            self.assertLessEqual(part["checkpoint"], ck)
        # No restart, the job goes on, and the key count becomes flat.
        self.wait_for("a flat key count", lambda: self.flat()[0], timeout=60)
        st = self.status()
        self.assertEqual(st["supervisor"]["restarts"], 0)
        for s in self.states(st):
            self.assertEqual(s["ttl_ms"], 2000)
            self.assertTrue(s["ttl_override"])
        ins = sum(t["records_in"] for t in st["tasks"]
                  if t["operator"] == "count")
        self.assertGreater(ins, sum(t["records_in"] for t in before["tasks"]
                                    if t["operator"] == "count"))
        # The override is in the checkpoints, and `weir state ls` shows it.
        runs = glob.glob(os.path.join(self.d, "ckpt", self.name, "*"))
        self.assertEqual(len(runs), 1, runs)
        run = runs[0]
        ls = subprocess.run([WEIR, "state", "ls", "--json", run],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        subs = [t for o in json.loads(ls.stdout)["operators"]
                if o["id"] == "count" for t in o["subtasks"]]
        self.assertEqual(len(subs), 2, ls.stdout)
        for t in subs:
            o = t["states"][0]["ttl_override"]
            self.assertEqual((o["ttl_ms"], o["time"]), (2000, "processing"),
                             ls.stdout)
        ls = subprocess.run([WEIR, "state", "ls", run], capture_output=True,
                            text=True, timeout=60)
        self.assertEqual(ls.returncode, 0, ls.stderr)
        self.assertEqual(ls.stdout.count("TTL override: 2000 ms in processing "
                                         "time, set "), 2, ls.stdout)

        # SIGKILL: the restored worker applies the stored override over the
        # plugin's WEIR_TTL_NONE and says so; the count stays flat.
        self.assertNotIn("TTL override in force", self.log())
        old = self.worker()
        os.kill(old, 9)
        self.wait_for("a new worker",
                      lambda: (self.worker() or old) != old and self.keys())
        r = self.ctl("state", "stats", "count", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        for t in json.loads(r.stdout)["subtasks"]:
            ttl = t["states"][0]["ttl"]
            self.assertEqual(ttl["ms"], 2000, r.stdout)
            self.assertTrue(ttl["override"], r.stdout)
            self.assertIsNone(ttl["declared_ms"], r.stdout)
        self.wait_for("a flat key count after the restart",
                      lambda: self.flat()[0], timeout=60)
        self.assertEqual(self.log().count("TTL override in force"), 2)
        self.assertEqual(self.status()["supervisor"]["restarts"], 1)
        text = self.ctl("state", "stats")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"ttl 2000 ms \(processing time\) "
                         r"\(override; declared: no ttl\)")


class Purge(Base):
    def purge(self, *args):
        r = self.ctl("state", "purge", "count", "count", *args, "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def test_purge_counts_and_restore(self):
        # Checkpoints only on request: a restore can only come from a
        # checkpoint a purge asked for.
        self.start(PURGE_JOB, "purge", interval="1h")
        # a ended (all its 3000 records are counted before the next
        # barrier) and b sent every one of its 50 keys.
        def ready():
            st = self.status()
            if not st or not self.states(st):
                return False
            out = {t["operator"]: t["records_out"] for t in st["tasks"]}
            return out["a"] == 3000 and out["b"] > 2000
        self.wait_for("both sources", ready)
        r = self.purge("--prefix", "a1")  # a1, a10..a19
        self.assertEqual(r["purged"], 11, r)
        self.assertEqual(sum(p["purged"] for p in r["subtasks"]), 11)
        text = self.ctl("state", "purge", "count", "count", "--prefix", "a1")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"^count\.count: 0 entries purged, in "
                         r"checkpoint \d+\n")
        # Everything: a's other 89 keys and b's 50.
        r = self.purge("--all")
        self.assertEqual(r["purged"], 139, r)

        # Kill at once: the restore comes from the checkpoint of --all
        # (there is no other since), and a's keys stay gone.
        old = self.worker()
        os.kill(old, 9)
        self.wait_for("a new worker",
                      lambda: (self.worker() or old) != old and self.keys()
                      is not None)
        self.assertIn("restoring checkpoint %d " % r["checkpoint"],
                      self.log())
        self.assertEqual(self.purge("--prefix", "a")["purged"], 0)
        self.assertEqual(self.status()["supervisor"]["restarts"], 1)


class WorkerEnds(Base):
    """The worker ends while `weir ctl state ttl` waits for the checkpoint
    that carries the change (a crash point in the first worker only;
    checkpoints only on request). The client gets an error that says so;
    after the restart the change is in force exactly when that checkpoint
    completed before the crash."""

    ENDED = (r"the worker ended \(.*\) before it answered; a checkpoint, "
             r"savepoint or state change it waited for counts only if that "
             r"checkpoint completed")

    def crash_during_ttl(self, crash_at):
        self.start(PURGE_JOB, "purge", crash_at=crash_at, interval="1h")
        self.wait_for("the states", self.keys)
        r = self.ctl("checkpoint")  # checkpoint 1 completes
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        old = self.worker()
        r = self.ctl("state", "ttl", "count", "count", "5s")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stderr, self.ENDED)
        self.wait_for("a new worker with its states",
                      lambda: (self.worker() or old) != old and self.keys())
        st = self.status()
        self.assertEqual(st["supervisor"]["restarts"], 1)
        self.assertIn("exited with code 86", self.log())
        return [s["ttl_ms"] for s in self.states(st)]

    def test_checkpoint_not_completed(self):
        # Checkpoint 2 (the change's) is written but not in the log: the
        # restart restores checkpoint 1, without the override.
        ttls = self.crash_during_ttl("manifest_renamed:2")
        self.assertIn("restoring checkpoint 1 ", self.log())
        self.assertEqual(ttls, [None, None])
        # Asked again, it is applied.
        r = self.ctl("state", "ttl", "count", "count", "5s")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual([s["ttl_ms"] for s in self.states(self.status())],
                         [5000, 5000])

    def test_checkpoint_completed(self):
        # Checkpoint 2 completed, the worker ended before it heard so: the
        # restart restores checkpoint 2, with the override.
        ttls = self.crash_during_ttl("before_notify:2")
        self.assertIn("restoring checkpoint 2 ", self.log())
        self.assertEqual(ttls, [5000, 5000])
        self.assertEqual(self.log().count("TTL override in force"), 2)


class HookCrash(Base):
    """A TTL set live on a state declared without one makes the expiry hook
    fire; the hook crashes the worker at its first call. The restarted
    worker restores the override with the checkpoint and the hook fires
    again: every idle key's count is in the committed output exactly
    once."""

    def test_expiry_hook_crash_after_ttl_change(self):
        self.assertTrue(TESTOPS, "WEIR_TESTOPS_DIR must name testops.so's "
                        "directory")
        self.start(HOOK_JOB, "hook")

        def a_counted():
            st = self.status()
            if not st or not self.states(st, "hook"):
                return False
            out = {t["operator"]: t["records_out"] for t in st["tasks"]}
            return out["a"] == 3000 and out["b"] > 0
        self.wait_for("source a's records", a_counted)
        r = self.ctl("state", "ttl", "hook", "n", "1s")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        def a_keys():
            return {x["key"] for x in committed(os.path.join(self.d, "out"))
                    if x["key"].startswith("a")}
        self.wait_for("the idle keys' expiry records",
                      lambda: len(a_keys()) == 100, timeout=90)
        log = self.log()
        self.assertRegex(log, r"worker crashed: SIGSEGV in hook#[01] \(type "
                         r"hookcount, plugin [^)]*\) in on_state_expired\(\)")
        self.assertTrue(os.path.exists(os.path.join(self.d, "crashed")))
        self.assertEqual(self.status()["supervisor"]["restarts"], 1)
        self.assertEqual(log.count("TTL override in force"), 2, log[-3000:])
        time.sleep(1.5)  # a checkpoint more: nothing is committed twice
        recs = [x for x in committed(os.path.join(self.d, "out"))
                if x["key"].startswith("a")]
        keys = [x["key"] for x in recs]
        self.assertEqual(len(keys), len(set(keys)), sorted(keys))
        self.assertEqual(sum(x["value"]["n"] for x in recs), 3000)


class Refused(Base):
    def check(self, args, code, pattern):
        r = self.ctl("state", *args)
        self.assertEqual(r.returncode, code, r.stdout + r.stderr)
        self.assertRegex(r.stderr, pattern)

    def test_errors(self):
        self.start(PURGE_JOB, "purge", interval="1s")
        self.wait_for("the states", self.keys)
        self.check(["ttl", "nope", "count", "5s"], 1,
                   r"no operator 'nope' in job 'purge' \(its operators: a, "
                   r"b, count, out\)")
        self.check(["ttl", "count", "nope", "5s"], 1,
                   r"operator 'count' has no state 'nope' \(its states: "
                   r"count\)")
        self.check(["purge", "out", "count", "--all"], 1,
                   r"operator 'out' \(file_sink\) is not keyed")
        self.check(["stats", "a"], 1, r"operator 'a' \(gen\) is not keyed")
        self.check(["purge", "count", "count", "--older-than", "1s"], 1,
                   r"state 'count' has no TTL")
        self.check(["ttl", "count", "count", "5 parsecs"], 2,
                   r"state ttl: '5 parsecs'")
        self.check(["ttl", "count", "count", "0s"], 2,
                   r"must be positive")
        self.check(["ttl", "count", "count", "5s", "--time", "lunar"], 2,
                   r"--time is event or processing")
        self.check(["purge", "count", "count"], 2, r"needs one of --prefix")
        self.check(["purge", "count", "count", "--all", "--prefix", "x"], 2,
                   r"needs one of --prefix")
        self.check(["purge", "count", "count", "--older-than", "soon"], 2,
                   r"--older-than: 'soon'")
        self.check(["compact"], 2, r"unknown state command 'compact'")
        # Nothing was changed: the job runs on, no override.
        st = self.status()
        self.assertEqual(st["supervisor"]["restarts"], 0)
        self.assertTrue(all(s["ttl_ms"] is None for s in self.states(st)))

    def test_no_checkpoints(self):
        self.start(PURGE_JOB, "purge", interval="0s")
        self.wait_for("the states", self.keys)
        self.check(["purge", "count", "count", "--all"], 1,
                   r"checkpoints are not enabled for this job")


if __name__ == "__main__":
    unittest.main(verbosity=2)
