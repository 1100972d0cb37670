#!/usr/bin/python3
"""Checks the output of the clickrules job against the oracle, exactly.

usage: check.py OUTPUT_JSONL [OUTPUT_JSONL...] [--input CLICKS_JSONL]
                [--late LATE_JSONL]

The output files are what file_sink wrote (one or more, e.g. one per
subtask). Every expected match (oracle.py) must appear exactly once, with
exactly the expected key, time and value, and nothing else may appear.
Line order does not matter (subtasks interleave). With --late, that file
(the records the job found behind its watermark) must be empty or absent:
the input is never more out of order than the watermark allows. Prints the
differences; exit status 0 when the output matches, 1 when it does not, 2
when a file cannot be read.
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
    ap = argparse.ArgumentParser(description="compare the clickrules job's output with the oracle")
    ap.add_argument("output", nargs="+")
    ap.add_argument("--input", default=os.path.join(here, "clickrules.jsonl"))
    ap.add_argument("--late", metavar="LATE_JSONL")
    args = ap.parse_args()
    try:
        want = collections.Counter(canon(m) for m in oracle.expected(args.input))
        got = read_output(args.output)
        late = read_output([args.late]) if args.late and os.path.exists(args.late) else {}
    except (OSError, ValueError, KeyError) as e:
        print("check.py: %s" % e, file=sys.stderr)
        return 2
    missing = want - got
    extra = got - want
    for line in sorted(missing)[:20]:
        print("missing:    %s" % line)
    for line in sorted(extra)[:20]:
        print("unexpected: %s" % line)
    for line in sorted(late)[:20]:
        print("late:       %s" % line)
    if missing or extra or late:
        print("MISMATCH: %d expected matches, %d in the output; %d missing, "
              "%d unexpected" % (sum(want.values()), sum(got.values()),
                                 sum(missing.values()), sum(extra.values())))
        if late:
            print("MISMATCH: %d records were late" % sum(late.values()))
        return 1
    by_rule = collections.Counter(json.loads(m)["value"]["rule"] for m in want.elements())
    print("OK: %d matches match the oracle (%s)" % (
        sum(want.values()), ", ".join("%s %d" % kv for kv in sorted(by_rule.items()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
