#!/usr/bin/python3
"""Hostile /metrics clients cannot hurt the job.

A `weir run --no-supervisor` of gen -> dedupe -> discard with a checkpoint
every 100 ms serves /metrics on 127.0.0.1:0 with the default limits
(metrics.max_connections 32, half of them per client address). The worker
runs with a soft RLIMIT_NOFILE of 1024, the usual default of a login shell.

- Flood: 2,000 idle TCP connections from 127.0.0.2, then 500 each from
  127.0.0.3 and 127.0.0.4 (Linux routes all of 127.0.0.0/8 to lo, so these
  are distinct client addresses), kept open for a few seconds. Checkpoints
  must go on completing with none aborted and no "Too many open files",
  the worker's open descriptors (/proc/PID/fd) must stay below
  max_connections + 200, a scrape from 127.0.0.1 must succeed while only
  127.0.0.2 floods, and once the idle clients are gone a fresh client must
  scrape again.
- Timeout: with metrics.connection_timeout 1s the server closes idle
  connections by itself, and the freed slots serve a new client.
- A metrics.listen on 0.0.0.0 is warned about, naming the address. The test
  holds 127.0.0.1:P listening so that 0.0.0.0:P cannot be bound: the
  warning is printed, the bind fails with its error, nothing listens
  beyond loopback, and the job runs on.
"""
import errno
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

WEIR = os.environ["WEIR"]
PLUGINS = os.environ["WEIR_PLUGIN_DIR"]

JOB = """\
job: flooded
metrics: {{listen: "{listen}"{extra}}}
checkpoint: {{interval: 100ms, dir: '{d}/ckpt'}}
state: {{dir: '{d}/state'}}
operators:
  - {{id: src, type: gen, config: {{count: 0, keys: 20, rate: 5000}}}}
  - {{id: dd, type: dedupe, inputs: [{{from: src, partition: key}}],
     config: {{ttl: 1h}}}}
  - {{id: sink, type: discard, inputs: [dd]}}
"""

MAX_CONNECTIONS = 32  # the default of metrics.max_connections
WORKER_NOFILE = 1024
COMPLETE = re.compile(r"checkpoint (\d+) complete")


def worker_limits():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = WORKER_NOFILE if hard == resource.RLIM_INFINITY else min(
        WORKER_NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def raise_own_nofile(need):
    """Raises this process's soft limit to `need`; False if the hard limit
    is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return True
    if hard != resource.RLIM_INFINITY and hard < need:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return True


class MetricsLimits(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-metrics-limits-")
        self.p = None
        self.idle = []
        self.max_fds = 0

    def tearDown(self):
        self.close_idle()
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        shutil.rmtree(self.d, ignore_errors=True)

    def start(self, listen, extra=""):
        path = os.path.join(self.d, "job.yaml")
        with open(path, "w") as f:
            f.write(JOB.format(d=self.d, listen=listen, extra=extra))
        self.log = os.path.join(self.d, "log.txt")
        with open(self.log, "w") as out:
            self.p = subprocess.Popen(
                [WEIR, "run", "--no-supervisor", "--dir", PLUGINS, path],
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=worker_limits)

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def wait_for(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            self.assertIsNone(self.p.poll(), "the job ended:\n" +
                              self.text()[-3000:])
            time.sleep(0.05)
        self.fail("no %r in the log:\n%s" % (pattern, self.text()[-3000:]))

    def last_checkpoint(self):
        ids = [int(m) for m in COMPLETE.findall(self.text())]
        return max(ids) if ids else 0

    def wait_checkpoints(self, more, timeout=20):
        """Waits until `more` checkpoints past the newest one complete."""
        target = self.last_checkpoint() + more
        deadline = time.time() + timeout
        while time.time() < deadline and self.last_checkpoint() < target:
            self.assertIsNone(self.p.poll(), "the job ended:\n" +
                              self.text()[-3000:])
            self.sample_fds()
            time.sleep(0.05)
        self.assertGreaterEqual(self.last_checkpoint(), target,
                                "checkpoints stalled:\n" +
                                self.text()[-3000:])

    def sample_fds(self):
        try:
            n = len(os.listdir("/proc/%d/fd" % self.p.pid))
        except OSError:
            return
        self.max_fds = max(self.max_fds, n)

    def open_idle(self, source, n, port):
        """n connections from `source` that never send a byte."""
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind((source, 0))
            rc = s.connect_ex(("127.0.0.1", port))
            self.assertIn(rc, (0, errno.EINPROGRESS, errno.ECONNREFUSED,
                               errno.ECONNRESET), os.strerror(rc))
            self.idle.append(s)
            if len(self.idle) % 100 == 0:
                self.sample_fds()

    def count_refused(self):
        """Idle connections the server has closed (EOF or reset)."""
        n = 0
        for s in self.idle:
            try:
                if s.recv(1) == b"":
                    n += 1
            except BlockingIOError:
                pass
            except OSError:
                n += 1
        return n

    def close_idle(self):
        for s in self.idle:
            s.close()
        self.idle = []

    def scrape(self, port, source="127.0.0.1"):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                       source_address=(source, 0))
        try:
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read().decode()
            self.assertEqual(r.status, 200)
            self.assertIn("weir_checkpoints_completed_total", body)
        finally:
            c.close()

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.assertEqual(self.p.wait(timeout=20), 0, self.text()[-3000:])

    def assert_healthy(self):
        t = self.text()
        self.assertNotIn("Too many open files", t)
        self.assertNotRegex(t, r"checkpoint \d+ aborted")
        self.assertNotRegex(t, r"checkpoint \d+ not started")

    def test_idle_flood(self):
        if not raise_own_nofile(4096):
            self.skipTest("RLIMIT_NOFILE hard limit below 4096")
        self.start("127.0.0.1:0")
        port = int(self.wait_for(r"serving /metrics on port (\d+)").group(1))
        self.wait_checkpoints(2)
        self.sample_fds()
        before = self.max_fds
        self.scrape(port)

        # One hostile address: its connections beyond its share are refused,
        # and Prometheus at another address still scrapes.
        self.open_idle("127.0.0.2", 2000, port)
        self.wait_checkpoints(5)
        self.scrape(port)
        # More addresses: every slot is taken; still no descriptors pile up.
        self.open_idle("127.0.0.3", 500, port)
        self.open_idle("127.0.0.4", 500, port)
        held = time.time() + 3
        self.wait_checkpoints(10)
        while time.time() < held:
            self.sample_fds()
            time.sleep(0.05)
        refused = self.count_refused()
        print("worker descriptors: %d before the flood, at most %d during "
              "it; %d of %d idle connections refused" %
              (before, self.max_fds, refused, len(self.idle)))
        self.assert_healthy()
        self.assertLess(self.max_fds, MAX_CONNECTIONS + 200,
                        "the worker held %d descriptors (%d before the "
                        "flood)" % (self.max_fds, before))

        self.close_idle()
        self.scrape(port)
        self.wait_checkpoints(2)
        self.assert_healthy()
        self.assertNotIn("not a loopback address", self.text())
        self.stop()

    def test_idle_connections_time_out(self):
        self.start("127.0.0.1:0", ", max_connections: 4, "
                   "connection_timeout: 1s")
        port = int(self.wait_for(r"serving /metrics on port (\d+)").group(1))
        conns = []
        for source in ("127.0.0.2", "127.0.0.3"):
            for _ in range(2):
                c = socket.create_connection(("127.0.0.1", port), timeout=15,
                                             source_address=(source, 0))
                conns.append(c)
        # The server hangs up on each idle client by itself (EOF).
        for c in conns:
            try:
                self.assertEqual(c.recv(1), b"")
            except ConnectionResetError:
                pass
            c.close()
        self.scrape(port)
        self.wait_checkpoints(2)
        self.assert_healthy()
        self.stop()

    def test_non_loopback_listen_warns(self):
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            hold.bind(("127.0.0.1", 0))
            hold.listen(1)
            port = hold.getsockname()[1]
            listen = "0.0.0.0:%d" % port
            self.start(listen)
            self.wait_for(r"WARN .*metrics\.listen '%s' is not a loopback "
                          r"address" % re.escape(listen))
            self.wait_for(r"metrics\.listen '%s': cannot listen there"
                          % re.escape(listen))
            self.wait_checkpoints(2)  # the job runs on
            self.stop()
        finally:
            hold.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
