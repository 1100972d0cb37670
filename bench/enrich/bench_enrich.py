#!/usr/bin/python3
"""Enrichment throughput with 1 ms of server latency, by async capacity.

Runs `weir run` jobs file_source -> enrich_redis (or enrich_http) ->
discard, parallelism 1, for async capacity 1, 10 and 100, and prints
records/s and the ratio against the synchronous lower bound: one lookup at
a time at 1 ms each is at most 1,000 records/s per subtask.

Latency: Redis answers through a proxy that holds every reply chunk 1 ms
(requests in flight stay concurrent); the HTTP server sleeps 1 ms per
request on a thread per connection. The time of a job is its wall-clock
time minus that of the same job with a 1-record input (start-up and
shutdown). Prints numbers only, asserts nothing.

  bench_enrich.py [--backend redis|http|both] [--scale F]

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR, WEIR_SOURCE_DIR.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("WEIR_SOURCE_DIR", os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "enrich"))
from enrich_servers import DelayProxy, HttpServer, RedisServer  # noqa

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
LATENCY = 0.001


def job_yaml(d, backend, target, capacity):
    if backend == "redis":
        op = ("    type: enrich_redis\n"
              "    config: {address: '%s', key_field: user, "
              "key_prefix: 'user:'}\n" % target)
    else:
        op = ("    type: enrich_http\n"
              "    config: {url: '%s', key_field: user}\n" % target)
    return ("job: bench-enrich\n"
            "operators:\n"
            "  - id: src\n    type: file_source\n"
            "    config: {path: '%s/in.jsonl', key_field: user}\n"
            "  - id: enrich\n%s"
            "    inputs: [{from: src}]\n"
            "    async: {capacity: %d, timeout: 30s}\n"
            "  - id: sink\n    type: discard\n    inputs: [{from: enrich}]\n"
            % (d, op, capacity))


def run(d, backend, target, capacity, n):
    with open(os.path.join(d, "in.jsonl"), "w") as f:
        for i in range(n):
            f.write(json.dumps({"user": "u%d" % (i % 1000), "i": i}) + "\n")
    path = os.path.join(d, "job.yaml")
    with open(path, "w") as f:
        f.write(job_yaml(d, backend, target, capacity))
    t0 = time.monotonic()
    p = subprocess.run([WEIR, "run", "--no-supervisor", "--dir", PLUGINS,
                        path], capture_output=True, text=True, timeout=600)
    t = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit("job failed (%d):\n%s" % (p.returncode, p.stderr[-3000:]))
    return t


def bench(backend, scale):
    d = tempfile.mkdtemp(prefix="weir-bench-enrich-")
    servers = []
    try:
        if backend == "redis":
            r = RedisServer()
            servers.append(r)
            r.pipeline([["HSET", "user:u%d" % k, "name", "n%d" % k, "tier",
                         str(k % 5)] for k in range(1000)])
            proxy = DelayProxy(r.port, delay=LATENCY)
            servers.append(proxy)
            target = "127.0.0.1:%d" % proxy.port
        else:
            h = HttpServer({"u%d" % k: {"name": "n%d" % k} for k in
                            range(1000)}, latency=LATENCY)
            servers.append(h)
            target = "http://127.0.0.1:%d/v/{key}" % h.port
        print("backend %s, server latency %.0f ms, parallelism 1; "
              "synchronous bound 1000 records/s" % (backend, LATENCY * 1000))
        print("%-9s %9s %10s %12s %10s" % ("capacity", "records", "seconds",
                                          "records/s", "x sync"))
        for cap in (1, 10, 100):
            n = int({1: 2000, 10: 10000, 100: 40000}[cap] * scale)
            base = run(d, backend, target, cap, 1)
            t = run(d, backend, target, cap, n)
            rate = n / max(t - base, 1e-3)
            print("%-9d %9d %10.2f %12.0f %10.2f" % (cap, n, t - base, rate,
                                                     rate / 1000.0))
            sys.stdout.flush()
    finally:
        for s in reversed(servers):
            s.close()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="both",
                    choices=["redis", "http", "both"])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the record counts (2000, 10000, 40000)")
    a = ap.parse_args()
    for b in (["redis", "http"] if a.backend == "both" else [a.backend]):
        bench(b, a.scale)


if __name__ == "__main__":
    main()
