#!/usr/bin/python3
"""Writes sessions.jsonl: deterministic user activity for the sessions example.

Each line is one JSON object {"user": "u07", "page": "/cart", "ts": <ms>}.
60 users are active over two days from 2026-03-02T00:00:00Z: each works in
sessions of 1 to 15 events, 0.1 to 3 s apart (bursts, 30%) or 5 s to 20 min
apart, separated by idle gaps of 45 min to 8 h 45 min, so every session
boundary is clear of the 30 min gap.
Two more users sit exactly on the boundary: "edge-join" has events
30 min - 1 ms apart (one session) and "edge-split" exactly 30 min apart
(one session per event).

The file is in arrival order: about 8% of the events (never those of the
edge users) arrive up to 5 s after their event time, so events are out of
event-time order by up to 5 s, also within one user's bursts. The job's watermark allows 10 s, so no event
is late; oracle.py checks that.

The generator is its own xorshift64*, so the file is identical on every
Python 3 version. Only the standard library is used.

usage: make_sessions.py [OUTPUT]   (default: sessions.jsonl next to this script)
"""
import argparse
import json
import os
import sys

START_MS = 1772409600000  # 2026-03-02T00:00:00Z
SPAN_MS = 2 * 24 * 3600 * 1000
USERS = 60
MINUTE = 60 * 1000
GAP_MS = 30 * MINUTE
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


def user_events(rng, user):
    """(ts, user) of one ordinary user, in time order."""
    out = []
    t = START_MS + rng.below(6 * 3600 * 1000)
    while t < START_MS + SPAN_MS:
        for i in range(1 + rng.below(15)):
            if i and rng.below(100) < 30:  # a burst of clicks
                t += 100 + rng.below(2900)
            elif i:
                t += 5000 + rng.below(20 * MINUTE - 5000)
            out.append(t)
        t += 45 * MINUTE + rng.below(8 * 3600 * 1000)
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", nargs="?",
                    default=os.path.join(here, "sessions.jsonl"))
    args = ap.parse_args()

    rng = XorShift(20260302)
    events = []  # (arrival, ts, user, page)
    for u in range(USERS):
        user = "u%02d" % u
        for ts in user_events(rng, user):
            late = rng.below(100) < 8
            delay = 1 + rng.below(5000) if late else 0
            events.append((ts + delay, ts, user, PAGES[rng.below(len(PAGES))]))
    t0 = START_MS + 12 * 3600 * 1000
    for i in range(3):
        events.append((t0 + i * (GAP_MS - 1), t0 + i * (GAP_MS - 1),
                       "edge-join", "/home"))
        events.append((t0 + i * GAP_MS, t0 + i * GAP_MS, "edge-split", "/home"))
    events.sort()
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        for _, ts, user, page in events:
            f.write(json.dumps({"user": user, "page": page, "ts": ts}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
