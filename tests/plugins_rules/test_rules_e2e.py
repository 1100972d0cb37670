#!/usr/bin/python3
"""The rules example (examples/rules) through the real `weir run`.

Example: run exactly as its README says (from a directory that links the
repository's examples/, relative paths, output under out/); the output
must equal the example's oracle exactly, and the per-rule and per-result
counters the worker logs at the end must add up to the oracle's.

KillRestore: the same job paced, with checkpoints every 100 ms and a
two-phase-commit sink, its rule changes trickling in while the clicks
flow. Once a completed checkpoint shows the change stream read to its end,
the changes file is blanked (every byte but the newlines becomes a space,
so the source's restored position is still valid) and the worker is
killed with SIGKILL. The restarted worker can then have the rules only
from the checkpoint's broadcast state, and the committed matches must
still equal the oracle of the original files.

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR, WEIR_SOURCE_ROOT.
"""
import collections
import glob
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
ROOT = os.environ.get("WEIR_SOURCE_ROOT", os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))
EXAMPLE = os.path.join(ROOT, "examples", "rules")

sys.path.insert(0, EXAMPLE)
import oracle  # noqa: E402  (the example's own, independent of weir)


def metric_sums(log, name, label):
    """{label value: sum over subtasks} of a metric the worker logged."""
    out = collections.Counter()
    pat = r'metric %s\{[^}]*%s="([^"]+)"\} (\d+)' % (re.escape(name), label)
    for m in re.finditer(pat, log):
        out[m.group(1)] += int(m.group(2))
    return out


class Example(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="weir-rules-")
        os.symlink(os.path.join(ROOT, "examples"),
                   os.path.join(self.work, "examples"))

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_example_matches_oracle(self):
        run = subprocess.run(
            [WEIR, "run", "--dir", PLUGINS, "examples/rules/rules.yaml"],
            cwd=self.work, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        check = subprocess.run(
            [sys.executable, "examples/rules/oracle.py", "--check",
             "out/rules.jsonl", "--late", "out/rules-late.jsonl"],
            cwd=self.work, capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

        want = collections.Counter(
            m["value"]["rule"] for m in oracle.expected(EXAMPLE))
        got = metric_sums(run.stderr, "rules_matches_total", "rule")
        # Rules with no match have a zero counter, or none at all.
        self.assertEqual(+got, want)
        _, tally = oracle.rule_table(os.path.join(EXAMPLE, "changes.jsonl"))
        changes = metric_sums(run.stderr, "rules_changes_total", "result")
        # Every subtask sees every change.
        self.assertEqual(changes, collections.Counter(
            {k: 2 * v for k, v in tally.items()}))
        self.assertEqual(tally["rejected"], 4)
        self.assertEqual(tally["ignored"], 1)


JOB = """\
job: rulekill
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
restart: {{strategy: fixed_delay, attempts: 20, delay: 0ms}}
state: {{dir: '{d}/state'}}
operators:
  - id: clicks
    type: file_source
    config: {{path: '{d}/in/events.jsonl', key_field: user, time_field: ts,
             rate: 400, batch: 16}}
    watermarks: {{out_of_orderness: 10m, interval: 20ms}}
  - id: changes
    type: file_source
    config: {{path: '{d}/in/changes.jsonl', key_field: id, time_field: ts,
             rate: 10, batch: 1}}
    watermarks: {{interval: 20ms}}
  - id: rules
    type: rules
    parallelism: 2
    inputs:
      - {{from: clicks, port: events, partition: key}}
      - {{from: changes, port: rules, partition: broadcast}}
  - id: matches
    type: file_sink
    inputs: [{{from: rules.out, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


class KillRestore(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-rulekill-")
        os.mkdir(os.path.join(self.d, "in"))
        for f in ("events.jsonl", "changes.jsonl"):
            shutil.copy(os.path.join(EXAMPLE, f), os.path.join(self.d, "in"))
        with open(os.path.join(self.d, "job.yaml"), "w") as f:
            f.write(JOB.format(d=self.d))
        self.log_path = os.path.join(self.d, "log.txt")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def changes_read_in_a_checkpoint(self):
        """Whether the newest completed checkpoint has the change stream's
        source at the end of its file (file_source's snapshot starts with
        its byte offset, u64 little-endian)."""
        size = os.path.getsize(os.path.join(self.d, "in", "changes.jsonl"))
        for log in glob.glob(os.path.join(self.d, "ckpt", "rulekill", "*",
                                          "completed")):
            with open(log) as f:
                ids = f.read().split()
            if not ids:
                continue
            snap = os.path.join(os.path.dirname(log), "chk-" + ids[-1],
                                "changes-0", "snapshot")
            try:
                with open(snap, "rb") as f:
                    return struct.unpack("<Q", f.read(8))[0] == size
            except OSError:
                return False
        return False

    def blank_changes(self):
        path = os.path.join(self.d, "in", "changes.jsonl")
        with open(path, "rb") as f:
            data = f.read()
        blank = bytes(b if b == 0x0A else 0x20 for b in data)
        with open(path, "r+b") as f:
            f.write(blank)

    def test_rules_survive_kill(self):
        out = open(self.log_path, "w")
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS,
                              os.path.join(self.d, "job.yaml")],
                             stdout=out, stderr=out)
        try:
            deadline = time.monotonic() + 60
            while not self.changes_read_in_a_checkpoint():
                self.assertIsNone(p.poll(), self.log()[-3000:])
                self.assertLess(time.monotonic(), deadline,
                                "the change stream was never checkpointed "
                                "at its end: " + self.log()[-3000:])
                time.sleep(0.05)
            self.blank_changes()
            pids = re.findall(r"worker (\d+) started", self.log())
            self.assertIsNone(p.poll(), "the job ended before the kill; "
                              "slow the clicks down")
            os.kill(int(pids[-1]), signal.SIGKILL)
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            out.close()
        text = self.log()
        self.assertEqual(rc, 0, text[-3000:])
        self.assertRegex(text, r"killed by SIGKILL")
        self.assertRegex(text, r"restoring checkpoint \d+")
        parts = sorted(glob.glob(os.path.join(self.d, "out", "part-*.jsonl")))
        self.assertTrue(parts)
        check = subprocess.run(
            [sys.executable, os.path.join(EXAMPLE, "oracle.py"), "--check",
             *parts], capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertRegex(text, r"rule ids restored from the checkpoint")


if __name__ == "__main__":
    unittest.main(verbosity=2)
