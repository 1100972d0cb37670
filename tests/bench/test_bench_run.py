#!/usr/bin/python3
"""bench/run: the table of a quick P1 run is well formed and written to the
results directory; bad options get a clear error. Numbers are not checked."""
import argparse
import collections
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

RUN = os.environ["WEIR_BENCH_RUN"]
BUILD = os.environ["WEIR_BUILD_DIR"]

NUMBER = re.compile(r"^\d+(\.\d+)?[kM]/s$")
RATIO = re.compile(r"^\d+\.\d\dx$")


def bench(*args, out):
    return subprocess.run(["/usr/bin/python3", RUN, "--build", BUILD,
                           "--out", out] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=100)


class Table(unittest.TestCase):
    def test_quick_p1(self):
        with tempfile.TemporaryDirectory() as out:
            r = bench("--quick", "--only", "P1", out=out)
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertTrue(lines[0].startswith("# Weir benchmarks "))
            self.assertIn("- command: `bench/run", r.stdout)
            self.assertRegex(r.stdout, r"- load average \(1/5/15 min\) at "
                             r"start: [\d.]+ [\d.]+ [\d.]+, at end: ")
            self.assertRegex(r.stdout, r"- machine: \d+ cores")
            head = lines.index("| part | what | Weir | baseline / peer "
                               "(same run) | ratio |")
            self.assertEqual(lines[head + 1], "| --- | --- | --- | --- | --- |")
            rows = []
            for l in lines[head + 2:]:
                if not l.startswith("|"):
                    break
                self.assertTrue(l.endswith(" |"), l)
                rows.append([c.strip() for c in l[1:-1].split("|")])
            self.assertEqual(len(rows), 1, rows)
            part, what, weir, base, ratio = rows[0]
            self.assertEqual(part, "P1")
            self.assertIn("p=2", what)
            self.assertRegex(weir, NUMBER)
            self.assertTrue(base.startswith("msgpack pack+unpack, 1 thread: "))
            self.assertRegex(base.split(": ")[1], NUMBER)
            self.assertRegex(ratio, RATIO)
            self.assertNotIn("FAILED", r.stdout)
            files = sorted(os.listdir(out))
            self.assertEqual(len(files), 2, files)
            md, raw = files
            self.assertTrue(md.endswith(".md") and raw.endswith(".raw.txt"))
            with open(os.path.join(out, md)) as f:
                self.assertEqual(f.read(), r.stdout)
            with open(os.path.join(out, raw)) as f:
                self.assertRegex(f.read(), r"^P1 p1 records=500000 "
                                 r"baseline_eps=\d+ weir_eps=\d+\n")


def load_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", RUN)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class P2Verify(unittest.TestCase):
    """P2's oracle agrees with a Counter, and its check of Weir's committed
    output accepts the right totals and rejects a wrong count."""

    def test_verify(self):
        br = load_run()
        ctx = br.Ctx(argparse.Namespace(build=BUILD, quick=True))
        try:
            ev = os.path.join(ctx.tmp, "ev.jsonl")
            with open(ev, "w") as f:
                subprocess.run(["/usr/bin/python3",
                                os.path.join(os.path.dirname(RUN),
                                             "p2_events.py"),
                                "3000", "50", "zipf", "7"], stdout=f,
                               check=True)
            totals = os.path.join(ctx.tmp, "totals.csv")
            br.own_oracle(ev, totals)
            with open(ev) as f:
                c = collections.Counter(json.loads(l)["user"] for l in f)
            want = "user,count\n" + "".join(
                "%s,%d\n" % (u, c[u]) for u in sorted(c))
            with open(totals) as f:
                self.assertEqual(f.read(), want)
            line = br.p2_weir(ctx, ev, totals, 3000, 1)
            self.assertIn(" verify=ok", line)
            self.assertIn(" out_lines=3000 dup_or_lost=0 ", line)
            u = sorted(c)[0]
            with open(totals, "w") as f:
                f.write(want.replace("\n%s,%d\n" % (u, c[u]),
                                     "\n%s,%d\n" % (u, c[u] + 1), 1))
            line = br.p2_weir(ctx, ev, totals, 3000, 2)
            self.assertIn(" verify=FAIL", line)
        finally:
            shutil.rmtree(ctx.tmp, ignore_errors=True)


class Refused(unittest.TestCase):
    def test_bad_options(self):
        with tempfile.TemporaryDirectory() as out:
            for args, msg in (
                    (["--only", "P1,P9"], "--only: unknown part(s) P9"),
                    (["--runs", "0"], "--runs must be at least 1"),
                    (["--p6-seconds", "-3"], "--p6-seconds must be positive"),
                    (["--peers", out], "not a peer kit (no run_redis.sh)"),
                    (["--build", os.path.join(out, "nope")], "not built: ")):
                r = bench(*args, out=out)
                self.assertEqual(r.returncode, 2, (args, r.stderr))
                self.assertIn(msg, r.stderr, args)
            self.assertEqual(os.listdir(out), [])


if __name__ == "__main__":
    unittest.main()
