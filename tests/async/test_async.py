#!/usr/bin/python3
"""Async I/O end to end: real `weir run` processes with the asyncop test
plugin (tests/async/asyncop), whose own I/O thread completes requests after
a delay taken from the record, fails or refuses the first attempts, or never
completes them.

The input is written here with Python's own random generator; every
expectation (order, sets, attempts, statuses, counter values) is derived
from that input and the topology's settings, not from the runtime.

Environment: WEIR, WEIR_PLUGIN_DIR, WEIR_ASYNCOP_DIR, WEIR_ASYNCBAD_DIR.
Run one case: test_async.py Order.test_ordered_keeps_input_order
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
import urllib.request

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
ASYNCOP = os.environ.get("WEIR_ASYNCOP_DIR", "")
ASYNCBAD = os.environ.get("WEIR_ASYNCBAD_DIR", "")
SEED = int(os.environ.get("WEIR_SEED", "20261202"))
ETIMEDOUT, ERETRY = -11, -6


def argv(*args):
    return [WEIR, args[0], "--dir", PLUGINS, "--dir", ASYNCOP] + list(args[1:])


def write_input(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def read_jsonl(pattern):
    out = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            out += [json.loads(line) for line in f]
    return out


def final_metrics(text):
    """The metric samples the worker logged at the end: name{labels} -> v."""
    m = {}
    for name, labels, v in re.findall(r"metric (\w+)\{([^}]*)\} (\S+)", text):
        m.setdefault(name, []).append((labels, float(v)))
    return m


def metric_sum(m, name, op):
    return sum(v for labels, v in m.get(name, [])
               if 'operator="%s"' % op in labels)


class Run:
    """A supervised `weir run` whose log is collected in a file."""

    def __init__(self, d, yaml, name="log", extra=()):
        self.log_path = os.path.join(d, name + ".txt")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(argv("run", *extra, yaml), stdout=self.log,
                                  stderr=self.log, start_new_session=True)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def worker(self):
        pids = re.findall(r"worker (\d+) started", self.text())
        return int(pids[-1]) if pids else None

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
            self.log.close()

    def kill_all(self):
        """SIGKILL to the supervisor and its worker."""
        w = self.worker()
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if w:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.p.wait()
        self.log.close()


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-async-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def job(self, text, name="job.yaml"):
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(text.format(d=self.d))
        return path

    def run_job(self, yaml, timeout=120):
        r = Run(self.d, yaml)
        rc = r.wait(timeout)
        self.assertEqual(rc, 0, r.text()[-4000:])
        return r.text()

    def results(self):
        return [r for r in read_jsonl(os.path.join(self.d, "out*.jsonl"))]


SIMPLE = """\
job: a
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: k, time_field: t{src}}}
    watermarks: {{interval: 5ms}}
  - id: aop
    type: asyncop
    inputs: [src]
    async: {{{async_}}}
    config: {{emit_watermarks: true}}
  - id: sink
    type: file_sink
    inputs: [aop]
    config: {{path: '{d}/out.jsonl'}}
{extra}"""


def simple(async_, src="", extra=""):
    return SIMPLE.replace("{async_}", async_).replace("{src}", src) \
        .replace("{extra}", extra)


class Order(Base):
    def test_ordered_keeps_input_order(self):
        rng = random.Random(SEED)
        n = 400
        # Random delays complete requests out of order; 0 completes inside
        # async_invoke() on the subtask thread.
        rows = [{"i": i, "k": "k%d" % (i % 13), "t": 1000 + i,
                 "delay": rng.choice([0, 1, 5, 10, 20, 40])} for i in range(n)]
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        self.run_job(self.job(simple("capacity: 20, mode: ordered")))
        out = [r["value"] for r in self.results() if "i" in r["value"]]
        self.assertEqual([r["i"] for r in out], list(range(n)))
        self.assertTrue(all(r["status"] == 0 and r["res"] == 1 for r in out))
        byi = {r["value"]["i"]: r for r in self.results()
               if "i" in r["value"]}
        for row in rows:  # key and time of the input record
            self.assertEqual(byi[row["i"]]["key"], row["k"])
            self.assertEqual(byi[row["i"]]["ts"], row["t"])

    def test_unordered_respects_watermarks(self):
        rng = random.Random(SEED + 1)
        n = 1500
        # Strictly increasing event times: a source watermark w follows
        # exactly the records with t <= w.
        rows = [{"i": i, "k": "k%d" % (i % 7), "t": 10000 + 3 * i,
                 "delay": rng.choice([0, 2, 10, 30, 60])} for i in range(n)]
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        self.run_job(self.job(simple("capacity: 50, mode: unordered",
                                     src=", rate: 3000, batch: 16")))
        out = [r["value"] for r in self.results()]
        recs = [v["i"] for v in out if "i" in v]
        self.assertEqual(sorted(recs), list(range(n)))
        self.assertNotEqual(recs, list(range(n)),
                            "unordered results came in input order")
        ts = {r["i"]: r["t"] for r in rows}
        marks = [(p, v["wm"]) for p, v in enumerate(out) if "wm" in v]
        self.assertGreaterEqual(len(marks), 3, "too few watermarks")
        for p, w in marks:
            before = {v["i"] for v in out[:p] if "i" in v}
            self.assertEqual(before, {i for i in ts if ts[i] <= w},
                             "results around watermark %d" % w)


class Capacity(Base):
    def scrape(self, run, port_box, samples):
        if port_box[0] is None:
            m = re.search(r"serving /metrics on port (\d+)", run.text())
            if not m:
                return
            port_box[0] = int(m.group(1))
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/metrics" % port_box[0],
                    timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return
        for v in re.findall(r'^weir_async_inflight\{[^}]*\} (\S+)$', body,
                            re.M):
            samples.append(float(v))

    def test_capacity_bounds_inflight(self):
        n = 150
        rows = [{"i": i, "k": "k%d" % i, "t": i, "delay": 15}
                for i in range(n)]
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        for cap in (1, 10):
            for f in glob.glob(os.path.join(self.d, "out*")):
                os.remove(f)
            yaml = self.job(simple(
                "capacity: %d" % cap,
                extra="metrics: {{listen: '127.0.0.1:0', interval: 100ms}}\n"),
                "cap%d.yaml" % cap)
            run = Run(self.d, yaml, "cap%d" % cap)
            samples, port = [], [None]
            deadline = time.time() + 120
            while run.p.poll() is None and time.time() < deadline:
                self.scrape(run, port, samples)
                time.sleep(0.02)
            rc = run.wait(30)
            self.assertEqual(rc, 0, run.text()[-3000:])
            out = [r["value"] for r in self.results() if "i" in r["value"]]
            self.assertEqual([v["i"] for v in out], list(range(n)))
            live = max(v["live"] for v in out)
            self.assertLessEqual(live, cap)
            self.assertTrue(samples, "no /metrics sample\n" + run.text())
            self.assertLessEqual(max(samples), cap)
            if cap == 1:
                self.assertEqual(live, 1)
            else:
                # The source is far faster than 15 ms per request.
                self.assertGreater(live, 1)
            print("capacity %d: max live %d, max gauge %g over %d samples"
                  % (cap, live, max(samples), len(samples)), file=sys.stderr)


class Failures(Base):
    def test_timeouts_then_etimedout(self):
        rng = random.Random(SEED + 2)
        n = 120
        kinds = {}
        rows = []
        for i in range(n):
            kind = rng.choice(["ok", "ok", "never", "late"])
            kinds[i] = kind
            r = {"i": i, "k": "k%d" % (i % 5), "t": i}
            if kind == "never":
                r["never"] = True
            elif kind == "late":
                r["delay"] = 400  # completes after the 100 ms timeout
            else:
                r["delay"] = rng.choice([0, 3, 20])
            rows.append(r)
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        text = self.run_job(self.job(simple(
            "capacity: 30, timeout: 100ms, max_retries: 2, "
            "retry_backoff: 5ms")))
        out = {r["value"]["i"]: r["value"] for r in self.results()
               if "i" in r["value"]}
        self.assertEqual(sorted(out), list(range(n)))
        for i, kind in kinds.items():
            if kind == "ok":
                self.assertEqual((out[i]["status"], out[i]["attempts"]),
                                 (0, 1), i)
            else:
                self.assertEqual((out[i]["status"], out[i]["attempts"]),
                                 (ETIMEDOUT, 3), (i, kind))
        bad = sum(1 for k in kinds.values() if k != "ok")
        m = final_metrics(text)
        self.assertEqual(metric_sum(m, "weir_async_timeouts_total", "aop"),
                         3 * bad)
        self.assertEqual(metric_sum(m, "weir_async_retries_total", "aop"),
                         2 * bad)
        self.assertEqual(metric_sum(m, "weir_async_inflight", "aop"), 0)
        self.assertNotIn("neither completed nor abandoned", text)

    def test_retries_succeed_or_give_up(self):
        rng = random.Random(SEED + 3)
        n = 100
        rows, want, retries = [], {}, 0
        for i in range(n):
            r = {"i": i, "k": "k%d" % (i % 5), "t": i,
                 "delay": rng.choice([0, 2, 8])}
            how = rng.choice(["fail", "refuse", None])
            times = rng.randrange(0, 7)
            if how:
                r[how] = times
            else:
                times = 0
            # max_retries 3: 4 attempts at most.
            want[i] = (0, times + 1) if times <= 3 else (ERETRY, 4)
            retries += min(times, 3)
            rows.append(r)
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        text = self.run_job(self.job(simple(
            "capacity: 16, max_retries: 3, retry_backoff: 2ms, "
            "retry_backoff_max: 5ms")))
        out = {r["value"]["i"]: r["value"] for r in self.results()
               if "i" in r["value"]}
        self.assertEqual(sorted(out), list(range(n)))
        for i, (status, attempts) in want.items():
            self.assertEqual((out[i]["status"], out[i]["attempts"]),
                             (status, attempts), rows[i])
            if status == 0:  # the result of the attempt that succeeded
                self.assertEqual(out[i]["res"], attempts)
        m = final_metrics(text)
        self.assertEqual(metric_sum(m, "weir_async_retries_total", "aop"),
                         retries)
        self.assertEqual(metric_sum(m, "weir_async_timeouts_total", "aop"), 0)

    def test_misuse_refused(self):
        """A result over runtime.max_record_size fails the request with
        WEIR_EINVAL; a second completion and a NULL req are refused."""
        rows = [{"i": 0, "k": "a", "t": 0, "big": 100},
                {"i": 1, "k": "b", "t": 1, "big": 5000},
                {"i": 2, "k": "c", "t": 2, "twice": True},
                {"i": 3, "k": "d", "t": 3}]
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        text = self.run_job(self.job(simple(
            "capacity: 4",
            extra="runtime: {{max_record_size: 1KiB}}\n")))
        out = {r["value"]["i"]: r["value"] for r in self.results()
               if "i" in r["value"]}
        einval = -2
        self.assertEqual((out[0]["status"], out[0]["misuse"]), (0, [0]))
        self.assertEqual((out[1]["status"], out[1]["misuse"]),
                         (einval, [einval]))
        self.assertEqual((out[2]["status"], out[2]["misuse"]),
                         (0, [0, einval, einval]))
        self.assertEqual(out[3]["status"], 0)
        self.assertIn("result is over runtime.max_record_size", text)
        self.assertIn("req was completed before", text)
        self.assertIn("req is NULL", text)


BAD = """\
job: bad
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: k}}
  - id: op
    type: %s
    inputs: [src]
    async:
      %s
"""


class Config(Base):
    def test_bad_async_config(self):
        cases = [
            ("asyncop", "capacity: 0", r":10:17: operators\[1\]\.async\."
             r"capacity: 0 is below the minimum 1"),
            ("asyncop", "mode: sideways", r":10:13: operators\[1\]\.async\."
             r"mode: 'sideways' is not one of: ordered, unordered"),
            ("asyncop", "timeout: soon", r":10:16: .*async\.timeout: 'soon' "
             r"is not a duration"),
            ("asyncop", "timeout: 0ms", r":10:16: .*async\.timeout: 0ms is "
             r"below the minimum 1ms"),
            ("asyncop", "max_retries: -1", r":10:20: .*async\.max_retries"),
            ("asyncop", "bogus: 1", r":10:7: .*async\.bogus: unknown key; "
             r"valid: capacity, timeout, mode, max_retries, retry_backoff"),
            ("count", "capacity: 5", r":10:7: operators\[1\]\.async: 'op' "
             r"\(count\) is not an asynchronous operator"),
        ]
        for op, line, want in cases:
            path = self.job(BAD % (op, line), "bad.yaml")
            p = subprocess.run(argv("validate", path), capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(p.returncode, 2, (line, p.stdout, p.stderr))
            self.assertRegex(p.stderr, re.escape(path) + want, line)
        # The same run refuses to start.
        path = self.job(BAD % ("asyncop", "mode: sideways"), "bad.yaml")
        p = subprocess.run(argv("run", path), capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("is not one of: ordered, unordered", p.stderr)

    def test_registry_refuses_missing_on_async_result(self):
        p = subprocess.run([WEIR, "plugins", "--dir", ASYNCBAD],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("operator 'asyncbad': async_invoke is set but the "
                      "required callback on_async_result is NULL", p.stderr)
        self.assertNotRegex(p.stdout, r"(?m)^asyncbad ")


KEYED = """\
job: ak
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
restart: {{strategy: fixed_delay, attempts: 1000, delay: 0ms}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: k, rate: {rate}, batch: 32}}
  - id: aop
    type: asyncop_keyed
    parallelism: {par}
    inputs: [{{from: src, partition: key}}]
    async: {{capacity: 40, mode: {mode}, timeout: 5s}}
  - id: sink
    type: file_sink
    parallelism: 2
    inputs: [{{from: aop, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


def keyed_rows(n, keys, seed, delays=(0, 1, 3, 8, 20)):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append({"i": i, "k": "u%d" % rng.randrange(keys),
                     "delay": rng.choice(delays)})
    return rows


def completed_ids(d):
    ids = []
    for path in glob.glob(os.path.join(d, "ckpt", "ak", "*", "completed")):
        with open(path) as f:
            ids += [int(x) for x in f.read().split()]
    return ids


class Kill(Base):
    def check_exactly_once(self, rows, text):
        out = [r for r in read_jsonl(os.path.join(self.d, "out",
                                                  "part-*.jsonl"))]
        got = sorted(r["value"]["i"] for r in out)
        self.assertEqual(got, list(range(len(rows))),
                         "results not exactly once\n" + text[-3000:])
        per_key = {}
        for r in rows:
            per_key[r["k"]] = per_key.get(r["k"], 0) + 1
        seen = {}
        for r in out:
            self.assertEqual(r["value"]["status"], 0)
            self.assertEqual(r["key"], rows[r["value"]["i"]]["k"])
            seen.setdefault(r["key"], []).append(r["value"]["n"])
        for k, n in per_key.items():
            self.assertEqual(sorted(seen.get(k, [])), list(range(1, n + 1)),
                             "key %s" % k)

    def test_kill_loop_exactly_once(self):
        rows = keyed_rows(20000, 200, SEED + 4)
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        yaml = self.job(KEYED.replace("{rate}", "8000").replace("{par}", "2")
                        .replace("{mode}", "unordered"))
        rng = random.Random(SEED + 5)
        run = Run(self.d, yaml)
        kills, done = 6, 0
        deadline = time.time() + 90
        while not completed_ids(self.d) and time.time() < deadline:
            if run.p.poll() is not None:
                break
            time.sleep(0.01)
        while done < kills and time.time() < deadline:
            time.sleep(rng.uniform(0.15, 0.4))
            if run.p.poll() is not None:
                break
            pid = run.worker()
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                done += 1
            except ProcessLookupError:
                pass
        rc = run.wait(150)
        text = run.text()
        self.assertEqual(rc, 0, text[-3000:])
        self.assertGreaterEqual(done, 3, "too few kills landed")
        restored = [int(x) for x in re.findall(
            r"(\d+) async requests? restored from checkpoint", text)]
        self.assertTrue(restored and max(restored) > 0,
                        "no restore had requests in flight\n" + text[-3000:])
        print("kills %d, restores with in-flight requests %d (up to %d)"
              % (done, len(restored), max(restored)), file=sys.stderr)
        self.check_exactly_once(rows, text)

    def test_rescale_restore(self):
        """A keyed async operator restored with another parallelism: each
        in-flight record goes to the subtask owning its key group."""
        rows = keyed_rows(12000, 150, SEED + 6, delays=[5, 10, 20, 40])
        write_input(os.path.join(self.d, "in.jsonl"), rows)
        yaml2 = self.job(KEYED.replace("{rate}", "4000").replace("{par}", "2")
                         .replace("{mode}", "ordered"), "job2.yaml")
        run = Run(self.d, yaml2, "first")
        deadline = time.time() + 60
        while len(completed_ids(self.d)) < 3 and time.time() < deadline:
            if run.p.poll() is not None:
                break
            time.sleep(0.02)
        run.kill_all()
        text1 = run.text()
        ids = completed_ids(self.d)
        self.assertGreaterEqual(len(ids), 3, text1[-3000:])
        run_dir = glob.glob(os.path.join(self.d, "ckpt", "ak", "*"))[0]
        chk = os.path.join(run_dir, "chk-%d" % max(ids))
        with open(os.path.join(chk, "MANIFEST.json")) as f:
            man = json.load(f)
        held = [t["index"] for t in man["tasks"]
                if t["op"] == "aop" and t.get("async")]
        self.assertTrue(held, "the newest checkpoint holds no request")
        yaml3 = self.job(KEYED.replace("{rate}", "20000").replace("{par}", "3")
                         .replace("{mode}", "ordered"), "job3.yaml")
        run2 = Run(self.d, yaml3, "second", extra=("--from", chk))
        rc = run2.wait(150)
        text2 = run2.text()
        self.assertEqual(rc, 0, text2[-3000:])
        n = sum(int(x) for x in re.findall(
            r"(\d+) async requests? restored from checkpoint", text2))
        self.assertGreater(n, 0, text2[-3000:])
        print("rescale 2 -> 3: %d in-flight requests of old subtasks %s "
              "restored" % (n, held), file=sys.stderr)
        self.check_exactly_once(rows, text1[-1500:] + text2[-1500:])


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        suite = unittest.defaultTestLoader.loadTestsFromName(
            sys.argv[1], sys.modules[__name__])
        res = unittest.TextTestRunner(verbosity=2).run(suite)
        sys.exit(0 if res.wasSuccessful() else 1)
    unittest.main()
