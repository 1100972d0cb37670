#!/usr/bin/python3
"""Writes clicks.jsonl: a small deterministic click stream for the clicks example.

Each line is one JSON object {"user": "u17", "page": "/home", "ts": <ms>}:
50 users with a skewed popularity (user u0 clicks most), 8 pages, event
times starting at 2026-01-01T00:00:00Z (1767225600000 ms), about one click
per second with up to 5 s of jitter, so a few lines are out of event-time
order. The generator is its own xorshift64* so the file is identical on
every Python 3 version. Only the standard library is used.

usage: make_clicks.py [OUTPUT] [--lines N]   (default: clicks.jsonl next to
this script, 1000 lines)
"""
import argparse
import json
import os
import sys

START_MS = 1767225600000  # 2026-01-01T00:00:00Z
USERS = 50
PAGES = ["/home", "/search", "/product/1", "/product/2", "/product/3",
         "/cart", "/checkout", "/help"]


class XorShift:
    """xorshift64*: a tiny, fully specified generator."""

    def __init__(self, seed):
        self.s = seed & 0xFFFFFFFFFFFFFFFF or 1

    def next(self):
        s = self.s
        s ^= s >> 12
        s ^= (s << 25) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 27
        self.s = s
        return (s * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        return (self.next() >> 11) % n


def user_for(rng):
    # Skew: the minimum of two draws favours small user numbers.
    return min(rng.below(USERS), rng.below(USERS))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?", default=os.path.join(here, "clicks.jsonl"))
    ap.add_argument("--lines", type=int, default=1000)
    args = ap.parse_args()

    rng = XorShift(20260101)
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        for i in range(args.lines):
            rec = {
                "user": "u%d" % user_for(rng),
                "page": PAGES[rng.below(len(PAGES))],
                "ts": START_MS + i * 1000 + rng.below(5000),
            }
            f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
