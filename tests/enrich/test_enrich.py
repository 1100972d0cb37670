#!/usr/bin/python3
"""The enrich plugin (enrich_redis, enrich_http) against real servers.

Probe: enrich_probe drives the operators through the fake host of
tests/plugins (no runtime): lookups on a real redis-server (populated here
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


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        suite = unittest.defaultTestLoader.loadTestsFromNames(
            sys.argv[1:], sys.modules[__name__])
        ok = unittest.TextTestRunner(verbosity=2).run(suite).wasSuccessful()
        sys.exit(0 if ok else 1)
    unittest.main(verbosity=2)
