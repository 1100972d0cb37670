#!/usr/bin/python3
"""Checks the output of the tickets job against the oracle, exactly.

usage: check.py OUTPUT_JSONL [OUTPUT_JSONL...] [--input TICKETS_JSONL]

The output files are what file_sink wrote (one or more, e.g. one per
subtask). Every expected escalation (oracle.py) must appear exactly once,
with exactly the expected key, time and value, and nothing else may appear.
Line order does not matter (subtasks interleave). Prints the differences;
exit status 0 when the output matches, 1 when it does not, 2 when a file
cannot be read.
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle  # noqa: E402  (next to this script)


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def read_output(paths):
    got = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    got[canon(json.loads(line))] += 1
    return got


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="compare the tickets job's output with the oracle")
    ap.add_argument("output", nargs="+")
    ap.add_argument("--input", default=os.path.join(here, "tickets.jsonl"))
    args = ap.parse_args()
    try:
        want = collections.Counter(canon(oracle.as_record(*e))
                                   for e in oracle.escalations(args.input))
        got = read_output(args.output)
    except (OSError, ValueError, KeyError) as e:
        print("check.py: %s" % e, file=sys.stderr)
        return 2
    missing = want - got
    extra = got - want
    for line in sorted(missing)[:20]:
        print("missing:    %s" % line)
    for line in sorted(extra)[:20]:
        print("unexpected: %s" % line)
    if missing or extra:
        print("MISMATCH: %d expected escalations, %d in the output; %d missing, "
              "%d unexpected" % (sum(want.values()), sum(got.values()),
                                 sum(missing.values()), sum(extra.values())))
        return 1
    print("OK: %d escalations match the oracle" % sum(want.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
