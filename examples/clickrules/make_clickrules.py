#!/usr/bin/python3
"""Writes clickrules.jsonl: a deterministic click stream for the clickrules
example (an ad-tech rule service).

Each line is one JSON object, e.g.
  {"user": "u017", "type": "visit", "site": "shop.example", "page": "/deals", "ts": <ms>}
  {"user": "u017", "type": "view", "site": "shop.example", "product": "p07", "ts": <ms>}
  {"user": "u017", "type": "add_to_cart", "site": "shop.example", "product": "p07", "ts": <ms>}
  {"user": "u017", "type": "purchase", "site": "shop.example", "product": "p07", "amount": 42, "ts": <ms>}
160 users browse in sessions over 21 days from 2026-03-02T00:00:00Z. In a
session a user visits pages of three sites, views products of
shop.example, puts some of them in the cart (a few exactly 30 minutes
after viewing them, which is still in time for the "not carted within 30
minutes" rule, or 30 minutes and 1 ms after, which is late) and sometimes
buys. Some sessions go /deals -> /pricing -> purchase.

Lines are written in arrival order: each event arrives up to 5 minutes
after its event time, so the file is out of event-time order by at most
5 minutes (the job's watermark allows 10).

The generator is its own xorshift64* so the file is identical on every
Python 3 version. Only the standard library is used.

usage: make_clickrules.py [OUTPUT]   (default: clickrules.jsonl next to
this script)
"""
import json
import os
import sys

START_MS = 1772409600000  # 2026-03-02T00:00:00Z
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
USERS = 160
SPAN = 21 * DAY
MAX_ARRIVAL_DELAY = 5 * MIN
SITES = ["shop.example", "news.example", "blog.example"]
PAGES = ["/", "/deals", "/pricing", "/docs", "/about"]
PRODUCTS = ["p%02d" % i for i in range(1, 21)]


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
        return self.next() % n

    def between(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def pick(self, seq):
        return seq[self.below(len(seq))]


def session(rng, user, t):
    """The events of one session starting at t: [(ts, obj), ...]."""
    out = []
    viewed = []

    def add(ts, typ, **fields):
        obj = {"user": user, "type": typ}
        obj.update(fields)
        obj["ts"] = ts
        out.append((ts, obj))

    site = rng.pick(SITES)
    for _ in range(rng.between(1, 12)):
        t += rng.between(10 * SEC, 8 * MIN)
        r = rng.below(100)
        if r < 35:
            if rng.below(4) == 0:
                site = rng.pick(SITES)
            add(t, "visit", site=site, page=rng.pick(PAGES))
        elif r < 45:  # the deals funnel
            add(t, "visit", site="shop.example", page="/deals")
            t += rng.between(30 * SEC, 40 * MIN)
            add(t, "visit", site="shop.example", page="/pricing")
            if rng.below(2) == 0:
                t += rng.between(MIN, 40 * MIN)
                add(t, "purchase", site="shop.example", product=rng.pick(PRODUCTS),
                    amount=rng.between(5, 200))
        elif r < 75:
            p = rng.pick(PRODUCTS)
            viewed.append((t, p))
            add(t, "view", site="shop.example", product=p)
            # A cart at the edge of the 30 minutes, in or just out of time.
            edge = rng.below(20)
            if edge == 0:
                add(t + 30 * MIN, "add_to_cart", site="shop.example", product=p)
            elif edge == 1:
                add(t + 30 * MIN + 1, "add_to_cart", site="shop.example", product=p)
        elif r < 90 and viewed:
            _, p = rng.pick(viewed)
            add(t, "add_to_cart", site="shop.example", product=p)
        elif viewed:
            _, p = rng.pick(viewed)
            add(t, "purchase", site="shop.example", product=p,
                amount=rng.between(5, 200))
    return out


def generate():
    rng = XorShift(0xC11C4)
    lines = []  # (arrival, sequence, json text)
    seq = 0
    for n in range(USERS):
        user = "u%03d" % n
        events = []
        for _ in range(rng.between(1, 9)):
            events += session(rng, user, START_MS + rng.below(SPAN))
        for ts, obj in events:
            delay = 0 if rng.below(3) == 0 else rng.between(1, MAX_ARRIVAL_DELAY)
            lines.append((ts + delay, seq, json.dumps(obj)))
            seq += 1
    lines.sort()
    return [text for _, _, text in lines]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "clickrules.jsonl")
    lines = generate()
    with open(out, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    print("%s: %d events" % (out, len(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
