#!/usr/bin/python3
"""The modes of everything a job creates: state, checkpoints, output.

Runs a keyed job with checkpoints and two file sinks (one two-phase-commit
directory of part files, one plain file per subtask) under the real
`weir run` supervisor, then walks the state directory (RocksDB's own files
included), the checkpoint directory (run directory, chk- directories,
MANIFEST.json, the completed log, the state deltas, RocksDB checkpoint
files) and both outputs. By default (runtime.file_access: private) no
directory or file may carry a group or other permission bit, whatever the
umask weir was started with (022 here, the usual one). With file_access
world or group, directories must be exactly 0755 / 0750 and files 0644 /
0640, started with umask 077 or 0 so that the modes come from the option.

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR.
"""
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")

JOB = """\
job: modes
runtime: {{{runtime}}}
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 3, delay: 100ms}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: gen
    config: {{count: 60000, keys: 3000, rate: 40000}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
  - id: parts
    type: file_sink
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out/parts', commit: checkpoint}}
  - id: plain
    type: file_sink
    parallelism: 2
    inputs: [{{from: count, partition: forward}}]
    config: {{path: '{d}/out/plain/counts.jsonl'}}
"""


class FileModes(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-modes-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def run_job(self, runtime, umask):
        path = os.path.join(self.d, "job.yaml")
        with open(path, "w") as f:
            f.write(JOB.format(d=self.d, runtime=runtime))
        log = os.path.join(self.d, "log.txt")
        with open(log, "w") as out:
            p = subprocess.run([WEIR, "run", "--dir", PLUGINS, path],
                               stdout=out, stderr=out, timeout=90,
                               preexec_fn=lambda: os.umask(umask))
        with open(log) as f:
            text = f.read()
        self.assertEqual(p.returncode, 0, text[-3000:])

    def walk(self):
        """(path, mode) of every directory and file weir created."""
        found = []
        for top in ("state", "ckpt", "out"):
            root = os.path.join(self.d, top)
            self.assertTrue(os.path.isdir(root), root)
            for base, _, files in os.walk(root):
                for p in [base] + [os.path.join(base, f) for f in files]:
                    found.append((p, os.lstat(p).st_mode))
        names = [os.path.basename(p) for p, _ in found]
        # The kinds of files the test means to cover are there.
        for want in ("MANIFEST.json", "completed", "CURRENT", "LOCK",
                     "snapshot", "counts-0.jsonl"):
            self.assertIn(want, names)
        for suffix in (".sst", ".delta"):
            self.assertTrue([n for n in names if n.endswith(suffix)], suffix)
        self.assertTrue([n for n in names if n.startswith("part-")],
                        "no committed part file")
        return found

    def check_exact(self, dir_mode, file_mode):
        for p, m in self.walk():
            want = dir_mode if stat.S_ISDIR(m) else file_mode
            self.assertTrue(stat.S_ISDIR(m) or stat.S_ISREG(m), p)
            self.assertEqual(oct(stat.S_IMODE(m)), oct(want), p)

    def test_private_by_default(self):
        self.run_job("", 0o022)
        for p, m in self.walk():
            self.assertEqual(stat.S_IMODE(m) & 0o077, 0,
                             "%s is %s" % (p, oct(stat.S_IMODE(m))))

    def test_world(self):
        self.run_job("file_access: world", 0o077)
        self.check_exact(0o755, 0o644)

    def test_group(self):
        self.run_job("file_access: group", 0)
        self.check_exact(0o750, 0o640)


if __name__ == "__main__":
    unittest.main(verbosity=2)
