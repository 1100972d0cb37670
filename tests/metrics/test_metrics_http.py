#!/usr/bin/python3
"""/metrics of a running job, scraped with a real HTTP client.

A supervised `weir run` of gen -> dedupe -> discard with checkpoints and
`metrics: {listen: 127.0.0.1:0}` (the worker logs the port it got). The text
must follow the Prometheus exposition format (HELP and TYPE before each
family's samples, `name{labels} value` lines), the host's counters must grow
between two scrapes, checkpoints must be counted, and the plugin's own
counter (dedupe_duplicates_total) must be there.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

WEIR = os.environ["WEIR"]
PLUGINS = os.environ["WEIR_PLUGIN_DIR"]

JOB = """\
job: scraped
metrics: {{listen: "{listen}"}}
checkpoint: {{interval: 100ms, dir: '{d}/ckpt'}}
state: {{dir: '{d}/state'}}
operators:
  - {{id: src, type: gen, config: {{count: 0, keys: 20, rate: 20000}}}}
  - {{id: dd, type: dedupe, inputs: [{{from: src, partition: key}}],
     config: {{ttl: 1h}}}}
  - {{id: sink, type: discard, inputs: [dd]}}
"""

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="'
                    r'(?:[^"\\]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|'
                    r'\\.)*")*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)$')


def parse(text):
    """{(name, labels): value}, checking the format on the way."""
    samples, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram"), line
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        family = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        assert m.group(1) in typed or family in typed, "no TYPE for " + line
        samples[(m.group(1), m.group(3) or "")] = float(m.group(4))
    return samples


def value(samples, name, **labels):
    total, found = 0.0, False
    for (n, l), v in samples.items():
        if n == name and all('%s="%s"' % kv in l for kv in labels.items()):
            total += v
            found = True
    return total if found else None


class MetricsHttp(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-metrics-")
        self.p = None

    def tearDown(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        shutil.rmtree(self.d, ignore_errors=True)

    def start(self, listen):
        path = os.path.join(self.d, "job.yaml")
        with open(path, "w") as f:
            f.write(JOB.format(d=self.d, listen=listen))
        self.log = os.path.join(self.d, "log.txt")
        self.p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS, path],
                                  stdout=open(self.log, "w"),
                                  stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log) as f:
            return f.read()

    def wait_for(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            time.sleep(0.05)
        self.fail("no %r in the log:\n%s" % (pattern, self.text()[-2000:]))

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        self.assertEqual(self.p.wait(timeout=20), 0, self.text()[-2000:])

    def test_scrape(self):
        self.start("127.0.0.1:0")
        port = int(self.wait_for(r"serving /metrics on port (\d+)").group(1))
        url = "http://127.0.0.1:%d/metrics" % port
        time.sleep(0.5)
        with urllib.request.urlopen(url, timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertIn("version=0.0.4", r.headers["Content-Type"])
            first = parse(r.read().decode())
        time.sleep(0.5)
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
            second = parse(text)
        # Prometheus' own linter on the same text.
        lint = subprocess.run(["promtool", "check", "metrics"], input=text,
                              capture_output=True, text=True)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        out1 = value(first, "weir_records_out_total", operator="src")
        out2 = value(second, "weir_records_out_total", operator="src")
        self.assertIsNotNone(out1)
        self.assertGreater(out2, out1)
        self.assertGreater(value(second, "weir_records_in_total",
                                 operator="sink"), 0)
        self.assertGreaterEqual(value(second,
                                      "weir_checkpoints_completed_total"), 1)
        self.assertIsNotNone(value(second, "weir_checkpoint_duration_seconds"))
        # 20 keys: after the first 20 records every record is a duplicate.
        dups = value(second, "dedupe_duplicates_total", operator="dd")
        self.assertIsNotNone(dups, sorted({n for n, _ in second}))
        self.assertGreater(dups, 0)
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % port,
                                   timeout=5)
        self.assertEqual(e.exception.code, 404)
        req = urllib.request.Request(url, data=b"x", method="POST")
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        self.assertEqual(e.exception.code, 405)
        self.stop()

    def test_bad_address_is_reported(self):
        self.start("999.1.1.1:80")
        self.wait_for(r"metrics\.listen '999\.1\.1\.1:80': expected an IPv4 "
                      r"address and a port")
        self.wait_for(r"checkpoint \d+ complete")  # the job runs on
        self.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
