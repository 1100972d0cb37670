#!/usr/bin/python3
"""Oracle for the clicks example: the final click count per user.

usage:
  expected.py [CLICKS_JSONL]
      prints {"u0": 97, "u1": 84, ...} (sorted by user) for the input
      (default: clicks.jsonl next to this script).
  expected.py [CLICKS_JSONL] --check OUTPUT_JSONL [OUTPUT_JSONL...]
      checks the output of the clicks job (file_sink lines
      {"key": "u17", "ts": ..., "value": {"key": "u17", "count": n}}, from
      one or more files): for every user, the counts emitted must be exactly
      1, 2, ..., final count, once each (nothing lost, nothing duplicated),
      and no other user may appear. Prints what differs; exit status 0 when
      the output matches, 1 when it does not, 2 on unreadable input.

Only the standard library is used. Lines of the input that are empty are
skipped, as file_source does; any other line must be a JSON object with a
string or integer "user".
"""
import argparse
import collections
import json
import os
import sys


def expected_counts(path):
    counts = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            obj = json.loads(line)
            user = obj["user"]
            counts[user if isinstance(user, str) else str(user)] += 1
    return counts


def emitted_counts(paths):
    """{user: [count, ...]} in file order, from file_sink output files."""
    seen = collections.defaultdict(list)
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                obj = json.loads(line)
                if "key" not in obj:
                    raise ValueError("%s:%d: no \"key\" field" % (path, no))
                value = obj.get("value") or {}
                if value.get("key") != obj["key"] or not isinstance(value.get("count"), int):
                    raise ValueError("%s:%d: value is not {key, count}: %s"
                                     % (path, no, line.strip()))
                seen[obj["key"]].append(value["count"])
    return seen


def check(want, got):
    problems = []
    for user in sorted(set(want) | set(got)):
        n = want.get(user, 0)
        counts = sorted(got.get(user, []))
        if counts != list(range(1, n + 1)):
            dup = sorted(c for c, k in collections.Counter(counts).items() if k > 1)
            missing = sorted(set(range(1, n + 1)) - set(counts))
            extra = sorted(c for c in set(counts) if c < 1 or c > n)
            problems.append("%s: want counts 1..%d; duplicated %s, missing %s, unexpected %s"
                            % (user, n, dup[:10], missing[:10], extra[:10]))
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="final click count per user")
    ap.add_argument("input", nargs="?", default=os.path.join(here, "clicks.jsonl"))
    ap.add_argument("--check", nargs="+", metavar="OUTPUT_JSONL")
    args = ap.parse_args()
    try:
        want = expected_counts(args.input)
        if not args.check:
            print(json.dumps(dict(sorted(want.items())), indent=None))
            return 0
        got = emitted_counts(args.check)
    except (OSError, ValueError, KeyError) as e:
        print("expected.py: %s" % e, file=sys.stderr)
        return 2
    problems = check(want, got)
    for p in problems:
        print(p)
    if problems:
        print("MISMATCH: %d of %d users differ" % (len(problems), len(set(want) | set(got))))
        return 1
    print("OK: %d users, %d records" % (len(want), sum(want.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
