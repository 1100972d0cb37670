#!/usr/bin/python3
"""End-to-end test of the window operator with the real `weir run`.

usage: e2e_window.py --weir WEIR_BIN [--keep]

In a fresh temporary directory: writes a deterministic input of sensor
readings (20 sensors, 6000 readings, up to 1.5 s out of event-time order),
a job that feeds it to three window operators (tumbling 10 s sum with 5 s
allowed lateness, sliding 10 s / 5 s max, session with a 3 s gap count,
each with parallelism 2, keyed by sensor) and file sinks for their "out"
and "late" ports, runs `weir run`, and compares every output with what this
script computes directly from the readings: with the source's watermark
2 s behind (more than the disorder), no reading is late, so each window
fires exactly once with its whole aggregate, and the late files are empty.
Exit status 0 when everything matches. Only the standard library is used.
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile

START = 1772409600000  # 2026-03-02T00:00:00Z
SENSORS = 20
READINGS = 6000

JOB = """\
job: window_e2e
state: {dir: state}
operators:
  - id: src
    type: file_source
    config: {path: input.jsonl, key_field: sensor, time_field: ts}
    watermarks: {out_of_orderness: 2s, interval: 50ms, idle_timeout: 0s}
  - id: tumbling
    type: window
    parallelism: 2
    inputs: [{from: src, partition: key}]
    config: {kind: tumbling, size: 10s, aggregate: sum, field: v, allowed_lateness: 5s}
  - id: sliding
    type: window
    parallelism: 2
    inputs: [{from: src, partition: key}]
    config: {kind: sliding, size: 10s, slide: 5s, aggregate: max, field: v}
  - id: session
    type: window
    parallelism: 2
    inputs: [{from: src, partition: key}]
    config: {kind: session, gap: 3s}
"""
SINK = """\
  - id: {op}_{port}
    type: file_sink
    inputs: [{{from: {op}.{port}, partition: rebalance}}]
    config: {{path: out/{op}-{port}.jsonl}}
"""


class XorShift:
    def __init__(self, seed):
        self.s = seed

    def below(self, n):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 7
        s ^= (s << 17) & 0xFFFFFFFFFFFFFFFF
        self.s = s
        return s % n


def readings():
    """[(arrival, seq, sensor, ts, v)] in arrival order."""
    rng = XorShift(0x5EED)
    out = []
    t = START
    for i in range(READINGS):
        # Mostly dense, sometimes a pause longer than the session gap.
        t += rng.below(200) if rng.below(50) else 3000 + rng.below(4000)
        sensor = "s%02d" % rng.below(SENSORS)
        out.append((t + rng.below(1500), i, sensor, t, rng.below(201) - 100))
    out.sort()
    return out


def window(key, start, end, agg, value):
    return {"key": key, "ts": end - 1,
            "value": {"key": key, "start": start, "end": end, agg: value}}


def expected(rows):
    by_key = collections.defaultdict(list)
    for _, _, key, ts, v in rows:
        by_key[key].append((ts, v))
    want = {"tumbling": [], "sliding": [], "session": []}
    for key, recs in by_key.items():
        tumb = collections.defaultdict(int)
        slid = {}
        for ts, v in recs:
            tumb[ts - ts % 10000] += v
            for start in range(ts - ts % 5000 - 5000, ts + 1, 5000):
                if start <= ts < start + 10000:
                    slid[start] = max(slid.get(start, v), v)
        want["tumbling"] += [window(key, s, s + 10000, "sum", v) for s, v in tumb.items()]
        want["sliding"] += [window(key, s, s + 10000, "max", v) for s, v in slid.items()]
        recs.sort()
        first = prev = recs[0][0]
        n = 0
        for ts, _ in recs:
            if ts - prev > 3000:
                want["session"].append(window(key, first, prev + 3000, "count", n))
                first, n = ts, 0
            prev = ts
            n += 1
        want["session"].append(window(key, first, prev + 3000, "count", n))
    return want


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def read_lines(path):
    if not os.path.exists(path):
        return collections.Counter()
    with open(path, encoding="utf-8") as f:
        return collections.Counter(canon(json.loads(l)) for l in f if l.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weir", required=True)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="weir-e2e-window-")
    rows = readings()
    with open(os.path.join(work, "input.jsonl"), "w", encoding="utf-8") as f:
        for _, _, key, ts, v in rows:
            f.write(json.dumps({"sensor": key, "ts": ts, "v": v}) + "\n")
    job = JOB + "".join(SINK.format(op=op, port=port)
                        for op in ("tumbling", "sliding", "session")
                        for port in ("out", "late"))
    with open(os.path.join(work, "job.yaml"), "w", encoding="utf-8") as f:
        f.write(job)
    ok = False
    try:
        run = subprocess.run([os.path.abspath(args.weir), "run", "job.yaml"],
                             cwd=work, timeout=args.timeout)
        if run.returncode != 0:
            print("FAIL: weir run exited with %d (kept in %s)" % (run.returncode, work))
            return 1
        failed = 0
        for op, windows in expected(rows).items():
            want = collections.Counter(canon(w) for w in windows)
            got = read_lines(os.path.join(work, "out", op + "-out.jsonl"))
            late = read_lines(os.path.join(work, "out", op + "-late.jsonl"))
            missing, extra = want - got, got - want
            for line in sorted(missing)[:5]:
                print("%s missing:    %s" % (op, line))
            for line in sorted(extra)[:5]:
                print("%s unexpected: %s" % (op, line))
            for line in sorted(late)[:5]:
                print("%s late:       %s" % (op, line))
            if missing or extra or late:
                failed += 1
                print("%s: MISMATCH: %d windows expected, %d missing, %d "
                      "unexpected, %d late" % (op, sum(want.values()),
                                               sum(missing.values()),
                                               sum(extra.values()),
                                               sum(late.values())))
            else:
                print("%s: OK, %d windows" % (op, sum(want.values())))
        if failed:
            print("FAIL (kept in %s)" % work)
            return 1
        ok = True
        return 0
    except subprocess.TimeoutExpired as e:
        print("FAIL: timed out: %s" % e)
        return 1
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
