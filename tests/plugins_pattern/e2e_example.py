#!/usr/bin/python3
"""End-to-end test of a reference example with the real `weir run`.

usage: e2e_example.py --weir WEIR_BIN --root SOURCE_ROOT [--keep] NAME

NAME is tickets or clickrules. In a fresh temporary directory that links
SOURCE_ROOT/examples as examples/, runs
  WEIR_BIN run examples/NAME/NAME.yaml
exactly as the example's README says (relative paths, output under out/),
then the example's check.py on what the job wrote, which compares it with
the example's oracle exactly. Exit status 0 when both succeed; the
temporary directory is removed unless --keep is given or the test fails.
Only the standard library is used.
"""
import argparse
import os
import shutil
import re
import subprocess
import sys
import tempfile

# The example's check command, relative to the working directory.
CHECKS = {
    "tickets": ["examples/tickets/check.py", "out/escalations.jsonl"],
    "clickrules": ["examples/clickrules/check.py", "out/clickrules.jsonl",
                   "--late", "out/clickrules-late.jsonl"],
}


def rule_counters_match(root, log):
    """The per-rule counters (pattern_matches_total{rule=...}, logged by the
    worker as metrics when the job ends, one per subtask) add up to the
    oracle's number of matches of each rule."""
    sys.path.insert(0, os.path.join(root, "examples", "clickrules"))
    import json
    import collections
    import oracle  # the example's own, independent of weir
    want = collections.Counter(
        m["value"]["rule"] if isinstance(m, dict) else json.loads(m)["value"]["rule"]
        for m in oracle.expected(os.path.join(root, "examples", "clickrules",
                                              "clickrules.jsonl")))
    got = collections.Counter()
    for m in re.finditer(r'metric pattern_matches_total\{[^}]*rule="([^"]+)"'
                         r'\} (\d+)', log):
        got[m.group(1)] += int(m.group(2))
    if got != want:
        print("FAIL: per-rule counters %s, the oracle %s" %
              (dict(got), dict(want)))
        return False
    print("per-rule counters match the oracle: %s" % dict(sorted(got.items())))
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weir", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("name", choices=sorted(CHECKS))
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="weir-e2e-%s-" % args.name)
    os.symlink(os.path.join(os.path.abspath(args.root), "examples"),
               os.path.join(work, "examples"))
    ok = False
    try:
        job = "examples/%s/%s.yaml" % (args.name, args.name)
        print("$ cd %s && %s run %s" % (work, args.weir, job), flush=True)
        run = subprocess.run([os.path.abspath(args.weir), "run", job], cwd=work,
                             timeout=args.timeout, stderr=subprocess.PIPE,
                             text=True)
        sys.stderr.write(run.stderr)
        if run.returncode != 0:
            print("FAIL: weir run exited with %d" % run.returncode)
            return 1
        if args.name == "clickrules" and not rule_counters_match(args.root,
                                                                 run.stderr):
            return 1
        check = [sys.executable] + CHECKS[args.name]
        print("$ " + " ".join(check), flush=True)
        res = subprocess.run(check, cwd=work, timeout=args.timeout)
        if res.returncode != 0:
            print("FAIL: the output differs from the oracle (kept in %s)" % work)
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
