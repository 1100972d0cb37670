#!/usr/bin/python3
"""The enrich plugin (enrich_redis, enrich_http) against real servers.

Probe: enrich_probe drives the operators on the test harness in its direct
async mode (no async layer; every completion of every request recorded):
lookups on a real redis-server (populated here
with this file's own Redis client) and on a Python HTTP server, with the
expected merge computed here from the data the test wrote. Also close()
with requests in flight (every request completes exactly once, with
WEIR_ECANCELED) behind a proxy that delays replies.

Job: real `weir run` jobs file_source -> enrich -> file_sink, checked against
the same kind of oracle: a plain job, a slow server (timeouts and retries),
a failing server (HTTP 503 then 200; Redis down, then up), ordered output
with a server whose latency varies per request, and SIGKILLs of the worker
with requests in flight and an exactly-once sink.

Environment: WEIR, WEIR_PLUGIN_DIR, ENRICH_PROBE, WEIR_SOURCE_DIR.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from enrich_servers import DelayProxy, HttpServer, RedisServer, free_port  # noqa

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
PROBE = os.environ.get("ENRICH_PROBE", "enrich_probe")
SEED = int(os.environ.get("WEIR_SEED", "20261202"))

WEIR_ERETRY = -6
WEIR_ETIMEDOUT = -11
WEIR_ECANCELED = -12


def probe(op, params, records, close_after=None, expect_rc=0):
    args = [PROBE, op]
    if close_after is not None:
        args += ["--close-after", str(close_after)]
    args += ["%s=%s" % kv for kv in params.items()]
    inp = "".join(json.dumps(r) + "\n" for r in records)
    p = subprocess.run(args, input=inp, capture_output=True, text=True,
                       timeout=90)
    if p.returncode != expect_rc:
        raise AssertionError("enrich_probe exited %d: %s" %
                             (p.returncode, p.stderr))
    if expect_rc:
        return p.stderr
    return [json.loads(l) for l in p.stdout.splitlines()]


def with_field(rec, field, value):
    """The oracle's merge: the record with `field` set (moved last)."""
    out = {k: v for k, v in rec.items() if k != field}
    out[field] = value
    return out


class Probe(unittest.TestCase):
    def setUp(self):
        self.redis = None
        self.http = None
        self.proxy = None

    def tearDown(self):
        if self.proxy:
            self.proxy.close()
        if self.redis:
            self.redis.close()
        if self.http:
            self.http.close()

    def emits(self, out):
        return [[(e["port"], e["value"]) for e in o["emits"]] for o in out]

    def test_redis_commands_against_oracle(self):
        self.redis = r = RedisServer()
        profiles = {}
        cmds = []
        for i in range(0, 50, 2):
            profiles["u%d" % i] = {"name": "name%d" % i, "tier": str(i % 3)}
            cmds.append(["HSET", "user:u%d" % i, "name", "name%d" % i,
                         "tier", str(i % 3)])
        docs = {"u%d" % i: {"score": i, "tags": ["a", i], "ok": i % 2 == 0,
                            "nested": {"x": None, "f": i + 0.5}}
                for i in range(10)}
        for k, v in docs.items():
            cmds.append(["SET", "js:" + k, json.dumps(v)])
        cmds += [["SET", "js:bad", "not json {"], ["SET", "plain:u1", "héllo"],
                 ["HSET", "plain:h", "a", "b"]]
        r.pipeline(cmds)
        addr = "127.0.0.1:%d" % r.port

        # HGETALL, missing -> error port, a target field that exists.
        recs = [{"user": "u%d" % i, "n": i, "profile": "old"}
                for i in range(50)]
        out = probe("enrich_redis", {"address": addr, "key_field": "user",
                                     "key_prefix": "user:",
                                     "target_field": "profile",
                                     "on_missing": "error"}, recs)
        want = []
        for rec in recs:
            p = profiles.get(rec["user"])
            want.append([(0, with_field(rec, "profile", p))] if p else
                        [(1, with_field(rec, "enrich_error", "not found"))])
        self.assertEqual(self.emits(out), want)
        self.assertTrue(all(o["status"] == 0 and o["rc"] == 0 for o in out))

        # A numeric key field, missing -> emitted unchanged (default).
        recs = [{"id": i} for i in range(6)]
        out = probe("enrich_redis", {"address": addr, "key_field": "id",
                                     "key_prefix": "user:u"}, recs)
        want = [[(0, with_field(rec, "enrichment", profiles["u%d" % rec["id"]])
                  if "u%d" % rec["id"] in profiles else rec)] for rec in recs]
        self.assertEqual(self.emits(out), want)

        # GET_JSON: values parsed; invalid JSON -> error port.
        recs = [{"k": k} for k in sorted(docs)] + [{"k": "bad"}, {"k": "nope"}]
        out = probe("enrich_redis", {"address": addr, "key_field": "k",
                                     "key_prefix": "js:", "command": "get_json",
                                     "on_error": "error",
                                     "on_missing": "drop"}, recs)
        got = self.emits(out)
        for rec, g in zip(recs[:-2], got):
            self.assertEqual(g, [(0, with_field(rec, "enrichment",
                                                docs[rec["k"]]))])
        self.assertEqual(len(got[-2]), 1)
        self.assertEqual(got[-2][0][0], 1)
        self.assertIn("is not JSON", got[-2][0][1]["enrich_error"])
        self.assertEqual(got[-1], [])

        # GET: a string; a hash -> Redis' WRONGTYPE, on_error fail.
        out = probe("enrich_redis", {"address": addr, "key_field": "k",
                                     "key_prefix": "plain:", "command": "get"},
                    [{"k": "u1"}, {"k": "h"}])
        self.assertEqual(self.emits(out)[0],
                         [(0, {"k": "u1", "enrichment": "héllo"})])
        self.assertLess(out[1]["rc"], 0)
        self.assertEqual(out[1]["emits"], [])
        self.assertIn("WRONGTYPE", out[1]["error"])

    def test_redis_down_is_retryable(self):
        port = free_port()
        out = probe("enrich_redis", {"address": "127.0.0.1:%d" % port,
                                     "key_field": "k", "on_error": "error"},
                    [{"k": "a"}, {"k": "b"}])
        for o in out:
            self.assertEqual(o["status"], WEIR_ERETRY, o)
            self.assertEqual(o["emits"][0]["port"], 1)
            self.assertIn("Redis", o["emits"][0]["value"]["enrich_error"])

    def test_redis_close_cancels_in_flight(self):
        self.redis = r = RedisServer()
        r.cmd("HSET", "a", "f", "v")
        self.proxy = DelayProxy(r.port, delay=5.0)
        params = {"address": "127.0.0.1:%d" % self.proxy.port,
                  "key_field": "k"}
        recs = [{"k": "a"}] * 20
        out = probe("enrich_redis", params, recs, close_after=300)
        self.assertEqual(len(out), 20)
        for o in out:
            self.assertEqual(o["completions"], 1, o)
            self.assertEqual(o["status"], WEIR_ECANCELED, o)
        # Without delay everything completes before close.
        self.proxy.delay = 0
        out = probe("enrich_redis", params, recs, close_after=2000)
        self.assertEqual([(o["completions"], o["status"]) for o in out],
                         [(1, 0)] * 20)

    def test_http_statuses(self):
        data = {"a": {"x": 1}, "b c/d%": {"y": [1, 2], "z": "é"}}
        self.http = h = HttpServer(data, big=1000)
        base = "http://127.0.0.1:%d" % h.port

        def run(path, recs, **extra):
            params = {"url": base + path, "key_field": "k",
                      "on_error": "error"}
            params.update(extra)
            return probe("enrich_http", params, recs)

        recs = [{"k": "a"}, {"k": "b c/d%"}, {"k": "zz"}]
        out = run("/v/{key}", recs)
        self.assertEqual(self.emits(out), [
            [(0, with_field(recs[0], "enrichment", data["a"]))],
            [(0, with_field(recs[1], "enrichment", data["b c/d%"]))],
            [(0, recs[2])]])
        self.assertEqual(h.counts.get("/v/b%20c%2Fd%25"), 1, h.counts)

        for code, status in ((503, WEIR_ERETRY), (500, WEIR_ERETRY),
                             (429, WEIR_ERETRY)):
            out = run("/status/%d/{key}" % code, [{"k": "a"}])
            self.assertEqual(out[0]["status"], status, out)
        out = run("/status/400/{key}", [{"k": "a"}])
        self.assertEqual(out[0]["status"], 0)
        self.assertEqual(out[0]["emits"][0]["port"], 1)
        self.assertIn("HTTP 400", out[0]["emits"][0]["value"]["enrich_error"])

        out = run("/big/{key}", [{"k": "a"}], max_response_size="100")
        self.assertIn("max_response_size",
                      out[0]["emits"][0]["value"]["enrich_error"])
        out = run("/big/{key}", [{"k": "a"}], max_response_size="2KiB")
        self.assertEqual(out[0]["emits"][0]["value"]["enrichment"], "x" * 1000)
        out = run("/bad/{key}", [{"k": "a"}])
        self.assertIn("not JSON", out[0]["emits"][0]["value"]["enrich_error"])

        h.latency = 3.0
        out = run("/v/{key}", [{"k": "a"}], request_timeout="200ms")
        self.assertEqual(out[0]["status"], WEIR_ETIMEDOUT, out)
        h.latency = 0
        out = probe("enrich_http", {"url": "http://127.0.0.1:%d/{key}" %
                                    free_port(), "key_field": "k"},
                    [{"k": "a"}])
        self.assertEqual(out[0]["status"], WEIR_ERETRY, out)
        self.assertLess(out[0]["rc"], 0)
        self.assertIn("lookup failed", out[0]["error"])

    def test_http_close_cancels_in_flight(self):
        self.http = h = HttpServer({"a": {"x": 1}}, latency=5.0)
        out = probe("enrich_http", {"url": "http://127.0.0.1:%d/v/{key}" %
                                    h.port, "key_field": "k"},
                    [{"k": "a"}] * 10, close_after=500)
        self.assertEqual(len(out), 10)
        for o in out:
            self.assertEqual((o["completions"], o["status"]),
                             (1, WEIR_ECANCELED), o)

    def test_bad_parameters(self):
        for addr in ("nohost", "host:0", "host:99999", ":80", "host:"):
            err = probe("enrich_redis", {"address": addr}, [], expect_rc=3)
            self.assertIn("address", err)
        for url in ("ftp://x/{key}", "http://x/nokey", "x"):
            err = probe("enrich_http", {"url": url}, [], expect_rc=3)
            self.assertIn("url", err)
        err = probe("enrich_redis", {"target_field": ""}, [], expect_rc=3)
        self.assertIn("target_field", err)

    def test_bad_records(self):
        self.redis = r = RedisServer()
        addr = "127.0.0.1:%d" % r.port
        recs = [{"other": 1}, {"k": {"a": 1}}, {"k": True}]
        out = probe("enrich_redis", {"address": addr, "key_field": "k",
                                     "on_error": "error"}, recs)
        for o, rec in zip(out, recs):
            self.assertEqual(len(o["emits"]), 1)
            self.assertEqual(o["emits"][0]["port"], 1)
            self.assertIn("'k'", o["emits"][0]["value"]["enrich_error"])
        out = probe("enrich_redis", {"address": addr, "key_field": "k"},
                    recs[:1])
        self.assertLess(out[0]["rc"], 0)
        self.assertIn("no field 'k'", out[0]["error"])


# ---------------------------------------------------------------------------
# Jobs under `weir run`
# ---------------------------------------------------------------------------


class Job:
    """A supervised `weir run` whose log is collected in a file."""

    def __init__(self, d, yaml_text, name="job"):
        self.path = os.path.join(d, name + ".yaml")
        with open(self.path, "w") as f:
            f.write(yaml_text)
        self.log_path = os.path.join(d, name + ".log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS, self.path],
                                  stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def worker(self):
        pids = re.findall(r"worker (\d+) started", self.text())
        return int(pids[-1]) if pids else None

    def wait(self, timeout=120):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.log.close()


def tail(text):
    lines = [l for l in text.splitlines() if "] metric " not in l]
    return "\n".join(lines[-40:])


def write_input(path, n, keys, seed):
    rng = random.Random(seed)
    recs = [{"user": "u%d" % rng.randrange(keys), "i": i} for i in range(n)]
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return recs


def read_jsonl(paths):
    out = []
    for p in paths:
        with open(p) as f:
            out += [json.loads(l) for l in f]
    return out


def redis_job(d, addr, capacity=20, mode="ordered", timeout="10s",
              retries=3, backoff="100ms", backoff_max="10s", rate=0,
              commit=False, extra=""):
    rate_cfg = ", rate: %d, batch: 32" % rate if rate else ""
    sink = ("{path: '%s/out', commit: checkpoint}" % d if commit else
            "{path: '%s/out.jsonl'}" % d)
    return """\
job: enr
checkpoint: {interval: 100ms, dir: '%(d)s/ckpt', retain: 3}
restart: {strategy: fixed_delay, attempts: 1000, delay: 0ms}
state: {dir: '%(d)s/state'}
operators:
  - id: src
    type: file_source
    config: {path: '%(d)s/in.jsonl', key_field: user%(rate)s}
  - id: enrich
    type: enrich_redis
    inputs: [{from: src}]
    async: {capacity: %(cap)d, mode: %(mode)s, timeout: %(tmo)s,
            max_retries: %(ret)d, retry_backoff: %(bo)s,
            retry_backoff_max: %(bom)s}
    config: {address: '%(addr)s', key_field: user, key_prefix: 'user:',
             target_field: profile%(extra)s}
  - id: sink
    type: file_sink
    inputs: [{from: enrich}]
    config: %(sink)s
""" % dict(d=d, rate=rate_cfg, cap=capacity, mode=mode, tmo=timeout,
           ret=retries, bo=backoff, bom=backoff_max, addr=addr, extra=extra,
           sink=sink)


def http_job(d, url, capacity=20, mode="ordered", retries=3,
             backoff="100ms", extra=""):
    return """\
job: enrh
operators:
  - id: src
    type: file_source
    config: {path: '%(d)s/in.jsonl', key_field: user}
  - id: enrich
    type: enrich_http
    inputs: [{from: src}]
    async: {capacity: %(cap)d, mode: %(mode)s, max_retries: %(ret)d,
            retry_backoff: %(bo)s, retry_backoff_max: 200ms}
    config: {url: '%(url)s', key_field: user, target_field: profile%(extra)s}
  - id: sink
    type: file_sink
    inputs: [{from: enrich}]
    config: {path: '%(d)s/out.jsonl'}
""" % dict(d=d, cap=capacity, mode=mode, ret=retries, bo=backoff, url=url,
           extra=extra)


class Jobs(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-enrich-")
        self.servers = []

    def tearDown(self):
        for s in reversed(self.servers):
            s.close()
        shutil.rmtree(self.d, ignore_errors=True)

    def serve(self, s):
        self.servers.append(s)
        return s

    def populate(self, keys, seed):
        """A Redis server holding profiles of about 2/3 of the users."""
        r = self.serve(RedisServer())
        rng = random.Random(seed + 1)
        profiles = {}
        for k in range(keys):
            if rng.random() < 0.67:
                profiles["u%d" % k] = {"name": "n%d" % k,
                                       "tier": str(rng.randrange(5))}
        r.pipeline([["HSET", "user:" + u] + [x for kv in p.items() for x in kv]
                    for u, p in profiles.items()])
        return r, profiles

    def oracle(self, recs, profiles):
        return [with_field(r, "profile", profiles[r["user"]])
                if r["user"] in profiles else r for r in recs]

    def run_job(self, y, timeout=120):
        job = Job(self.d, y)
        rc = job.wait(timeout)
        text = job.text()
        self.assertEqual(rc, 0, tail(text))
        return text

    def output(self):
        return [o["value"] for o in read_jsonl([self.d + "/out.jsonl"])]

    def calls(self, r, cmd="hgetall"):
        info = r.cmd("INFO", "commandstats")
        m = re.search(r"cmdstat_%s:calls=(\d+)" % cmd, info)
        return int(m.group(1)) if m else 0

    def test_redis_job_matches_oracle(self):
        recs = write_input(self.d + "/in.jsonl", 3000, 400, SEED)
        r, profiles = self.populate(400, SEED)
        self.run_job(redis_job(self.d, "127.0.0.1:%d" % r.port, capacity=50))
        self.assertEqual(self.output(), self.oracle(recs, profiles))
        self.assertEqual(self.calls(r), len(recs))

    def test_redis_slow_server_times_out_and_retries(self):
        """Replies delayed by 1.5 s against a 300 ms timeout, then fast:
        the requests time out, are retried, and every record is enriched
        once, in order."""
        recs = write_input(self.d + "/in.jsonl", 300, 50, SEED)
        r, profiles = self.populate(50, SEED)
        proxy = self.serve(DelayProxy(r.port, delay=1.5))
        job = Job(self.d, redis_job(self.d, "127.0.0.1:%d" % proxy.port,
                                    capacity=10, timeout="300ms",
                                    retries=1000, backoff="10ms",
                                    backoff_max="100ms"))
        deadline = time.time() + 60
        while self.calls(r) < 30 and time.time() < deadline:
            time.sleep(0.1)
        proxy.delay = 0
        rc = job.wait(120)
        self.assertEqual(rc, 0, tail(job.text()))
        self.assertEqual(self.output(), self.oracle(recs, profiles))
        self.assertGreater(self.calls(r), len(recs))

    def test_redis_down_then_up(self):
        """No server at the address at first (connections refused: the
        lookups are retried), then one: every record is enriched."""
        recs = write_input(self.d + "/in.jsonl", 500, 60, SEED)
        r, profiles = self.populate(60, SEED)
        port = free_port()
        job = Job(self.d, redis_job(self.d, "127.0.0.1:%d" % port,
                                    retries=1000, backoff="20ms",
                                    backoff_max="200ms",
                                    extra=", reconnect_delay: 50ms"))
        deadline = time.time() + 60
        while "worker" not in job.text() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # let some lookups fail first
        self.assertIsNone(job.p.poll(), tail(job.text()))
        self.serve(DelayProxy(r.port, port=port))
        rc = job.wait(120)
        self.assertEqual(rc, 0, tail(job.text()))
        self.assertEqual(self.output(), self.oracle(recs, profiles))

    def test_redis_retries_exhausted_go_to_error_port(self):
        """No server ever: with on_error error every record ends on port
        error with the reason; nothing on out."""
        write_input(self.d + "/in.jsonl", 20, 5, SEED)
        y = redis_job(self.d, "127.0.0.1:%d" % free_port(), retries=2,
                      backoff="5ms", extra=", on_error: error")
        y += ("  - id: errors\n    type: file_sink\n"
              "    inputs: [{from: enrich.error}]\n"
              "    config: {path: '%s/err.jsonl'}\n" % self.d)
        self.run_job(y)
        self.assertEqual(self.output(), [])
        errs = read_jsonl([self.d + "/err.jsonl"])
        self.assertEqual(len(errs), 20)
        for e in errs:
            self.assertIn("lookup failed", e["value"]["enrich_error"])
            self.assertIn("Redis", e["value"]["enrich_error"])

    def test_http_503_then_200(self):
        recs = write_input(self.d + "/in.jsonl", 400, 40, SEED)
        data = {"u%d" % k: {"score": k, "tags": ["t", k]} for k in range(30)}
        h = self.serve(HttpServer(data, fail_first=2))
        self.run_job(http_job(self.d, "http://127.0.0.1:%d/v/{key}" % h.port,
                              retries=10, backoff="5ms"))
        want = [with_field(r, "profile", data[r["user"]])
                if r["user"] in data else r for r in recs]
        self.assertEqual(self.output(), want)
        distinct = len({r["user"] for r in recs})
        self.assertEqual(h.requests("/v/"), len(recs) + 2 * distinct)

    def test_ordered_output_with_varying_latency(self):
        """Latency 0-30 ms per request, 50 in flight: mode ordered emits in
        input order; unordered emits the same records."""
        recs = write_input(self.d + "/in.jsonl", 600, 80, SEED)
        data = {"u%d" % k: {"k": k} for k in range(80)}
        h = self.serve(HttpServer(data, jitter=0.03))
        url = "http://127.0.0.1:%d/v/{key}" % h.port
        want = [with_field(r, "profile", data[r["user"]]) for r in recs]
        self.run_job(http_job(self.d, url, capacity=50, mode="ordered"))
        self.assertEqual(self.output(), want)
        os.unlink(self.d + "/out.jsonl")
        self.run_job(http_job(self.d, url, capacity=50, mode="unordered"))
        got = self.output()
        self.assertEqual(sorted(got, key=lambda v: v["i"]), want)

    def test_kill9_exactly_once(self):
        """SIGKILL of the worker while lookups are in flight (replies
        delayed 5 ms, 20 in flight), exactly-once file_sink: the committed
        output holds every input record once, enriched as the oracle says."""
        recs = write_input(self.d + "/in.jsonl", 4000, 300, SEED)
        r, profiles = self.populate(300, SEED)
        proxy = self.serve(DelayProxy(r.port, delay=0.005))
        job = Job(self.d, redis_job(self.d, "127.0.0.1:%d" % proxy.port,
                                    capacity=20, rate=2000, commit=True))
        rng = random.Random(SEED)
        kills, deadline = 0, time.time() + 40
        while kills < 4 and time.time() < deadline and job.p.poll() is None:
            time.sleep(rng.uniform(0.3, 0.7))
            pid = job.worker()
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass
        rc = job.wait(150)
        text = job.text()
        self.assertEqual(rc, 0, tail(text))
        self.assertGreaterEqual(kills, 2, tail(text))
        self.assertGreaterEqual(len(re.findall(r"worker \d+ started", text)),
                                kills + 1)
        got = [o["value"] for o in
               read_jsonl(sorted(glob.glob(self.d + "/out/part-*.jsonl")))]
        got.sort(key=lambda v: v["i"])
        self.assertEqual(got, self.oracle(recs, profiles))


class Example(unittest.TestCase):
    def test_run_script(self):
        """examples/enrich/run.sh: its own redis-server, the job, and
        check.py's oracle."""
        src = os.environ.get("WEIR_SOURCE_DIR",
                             os.path.join(os.path.dirname(__file__), "..",
                                          ".."))
        p = subprocess.run([os.path.join(src, "examples", "enrich", "run.sh")],
                           env=dict(os.environ, WEIR=WEIR,
                                    WEIR_PLUGIN_DIR=PLUGINS),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("OK: 175 orders enriched, 25", p.stdout)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        suite = unittest.defaultTestLoader.loadTestsFromNames(
            sys.argv[1:], sys.modules[__name__])
        ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
        sys.exit(0 if ok else 1)
    unittest.main(verbosity=2)
