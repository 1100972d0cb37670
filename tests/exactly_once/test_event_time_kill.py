#!/usr/bin/python3
"""Timers and event-time state across SIGKILL and restore.

The ticket-escalation reference job (examples/tickets: file_source with
watermarks -> key -> pattern, whose absence rule waits on event-time timers
kept in RocksDB state -> file_sink) runs paced, with checkpoints every 100 ms
and a two-phase-commit sink, while its worker is killed with SIGKILL a few
times. The committed escalations must equal the example's oracle exactly:
a timer lost in a restore would drop an escalation, one fired twice would
duplicate it.
"""
import glob
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_exactly_once import PLUGINS, SEED, WEIR, Job  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TICKETS = os.path.join(ROOT, "examples", "tickets")

JOB = """\
job: tickets
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
restart: {{strategy: fixed_delay, attempts: 100, delay: 0ms}}
state: {{dir: '{d}/state'}}
operators:
  - id: events
    type: file_source
    config: {{path: '{tickets}/tickets.jsonl', key_field: ticket, time_field: ts,
             rate: 2000, batch: 32}}
    watermarks: {{out_of_orderness: 10m, interval: 20ms}}
  - id: escalate
    type: pattern
    parallelism: 2
    inputs: [{{from: events, partition: key}}]
    config:
      rules:
        - name: no_agent_reply_24h
          steps:
            - where: {{type: {{in: [created, customer_reply]}}}}
          followed_by_not:
            where: {{type: {{in: [agent_reply, closed]}}}}
          within: 24h
  - id: escalations
    type: file_sink
    inputs: [{{from: escalate.out, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


class EventTimeKill(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-etk-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def test_tickets_survive_kills(self):
        with open(os.path.join(self.d, "job.yaml"), "w") as f:
            f.write(JOB.format(d=self.d, tickets=TICKETS))
        job = Job(self.d)
        rng = random.Random(SEED)
        kills = 0
        while kills < 4 and job.p.poll() is None:
            time.sleep(rng.uniform(0.25, 0.45))
            pid = job.worker()
            if pid is None or job.p.poll() is not None:
                continue
            # Kills before the first checkpoint only replay from the start
            # (on a loaded machine they can be all of them): wait for one.
            if not re.search(r"checkpoint \d+ complete", job.text()):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        rc = job.wait(timeout=120)
        text = job.text()
        self.assertEqual(rc, 0, text[-3000:])
        self.assertGreaterEqual(kills, 3, text[-3000:])
        self.assertTrue(re.search(r"restoring checkpoint \d+", text),
                        text[-3000:])
        parts = sorted(glob.glob(os.path.join(self.d, "out", "part-*.jsonl")))
        self.assertTrue(parts)
        check = subprocess.run(
            ["/usr/bin/python3", os.path.join(TICKETS, "check.py"), *parts],
            capture_output=True, text=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
