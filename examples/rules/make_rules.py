#!/usr/bin/python3
"""Writes the input of the rules example: a click stream (events.jsonl) and
a stream of rule changes (changes.jsonl) whose event times fall between
the clicks', so rules are added, replaced and deleted while the clicks
flow.

events.jsonl, one JSON object per line, e.g.
  {"user": "u07", "type": "visit", "site": "shop.example", "page": "/deals/summer", "ts": <ms>}
  {"user": "u07", "type": "view", "site": "shop.example", "product": "p03", "price": 45, "ts": <ms>}
  {"user": "u07", "type": "add_to_cart", "site": "shop.example", "product": "p03", "ts": <ms>}
  {"user": "u07", "type": "purchase", "site": "shop.example", "product": "p03", "amount": 120, "ts": <ms>}
48 users browse in sessions over 3 days from 2026-03-02T00:00:00Z. Views
are sometimes followed by a cart exactly at the edge of a rule's window
(in time) or 1 ms after it (too late). Lines are in arrival order: an
event arrives up to 3 minutes after its event time (the job's watermark
allows 10).

changes.jsonl: the rule changes of rule service, in time order, e.g.
  {"op": "add", "id": "viewed_not_carted", "version": 1, "ts": <ms>,
   "rule": {"type": "absence", "event": {"type": "view"}, ...}}
including some the operator must refuse (a bad rule, an older version, a
replace of a rule that does not exist) and one repeated change.

The random numbers come from splitmix64, written out here, so the files are
the same on every Python 3. Only the standard library is used.

usage: make_rules.py [DIR]   (default: next to this script)
"""
import json
import os
import sys

T0 = 1772409600000  # 2026-03-02T00:00:00Z
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
USERS = 48
SPAN = 3 * DAY
MAX_DELAY = 3 * MIN
SITES = ["shop.example", "news.example", "blog.example"]
PAGES = ["/", "/deals", "/deals/summer", "/pricing", "/help", "/help/returns",
         "/about"]
PRODUCTS = ["p%02d" % i for i in range(1, 13)]


class SplitMix:
    """splitmix64 (Steele, Lea, Flood 2014)."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def int(self, lo, hi):
        """Uniform in [lo, hi]."""
        return lo + self.u64() % (hi - lo + 1)

    def choice(self, seq):
        return seq[self.u64() % len(seq)]

    def chance(self, percent):
        return self.u64() % 100 < percent


def one_session(rng, user, t):
    events = []

    def emit(at, kind, **fields):
        e = {"user": user, "type": kind}
        e.update(fields)
        e["ts"] = at
        events.append(e)

    seen = []
    for _ in range(rng.int(2, 14)):
        t += rng.int(5 * SEC, 9 * MIN)
        roll = rng.int(0, 99)
        if roll < 30:
            emit(t, "visit", site=rng.choice(SITES), page=rng.choice(PAGES))
        elif roll < 40:  # the deals funnel, sometimes to a purchase
            emit(t, "visit", site="shop.example",
                 page=rng.choice(["/deals", "/deals/summer"]))
            t += rng.int(20 * SEC, 50 * MIN)
            emit(t, "visit", site="shop.example", page="/pricing")
            if rng.chance(60):
                t += rng.int(MIN, 90 * MIN)
                emit(t, "purchase", site="shop.example",
                     product=rng.choice(PRODUCTS), amount=rng.int(10, 180))
        elif roll < 70:
            product = rng.choice(PRODUCTS)
            seen.append(product)
            emit(t, "view", site="shop.example", product=product,
                 price=rng.int(5, 90))
            edge = rng.int(0, 29)
            if edge < 4:  # a cart at the edge of a 20 or 30 minute window
                window = 30 * MIN if edge < 2 else 20 * MIN
                emit(t + window + (edge % 2), "add_to_cart",
                     site="shop.example", product=product)
        elif roll < 85 and seen:
            emit(t, "add_to_cart", site="shop.example",
                 product=rng.choice(seen))
        elif seen:
            emit(t, "purchase", site="shop.example", product=rng.choice(seen),
                 amount=rng.int(10, 180))
    return events


def events(rng):
    arrivals = []
    for n in range(USERS):
        user = "u%02d" % n
        for _ in range(rng.int(2, 9)):
            start = T0 + rng.int(0, SPAN)
            for e in one_session(rng, user, start):
                delay = 0 if rng.chance(30) else rng.int(1, MAX_DELAY)
                arrivals.append((e["ts"] + delay, len(arrivals), e))
    arrivals.sort(key=lambda a: (a[0], a[1]))
    return [e for _, _, e in arrivals]


def changes():
    def c(at, op, rid, version, rule=None):
        d = {"op": op, "id": rid, "version": version, "ts": T0 + at}
        if rule is not None:
            d["rule"] = rule
        return d

    shop_visit = {"type": "visit", "site": "shop.example"}
    return [
        c(-HOUR, "add", "visited_shop_twice", 1,
          {"type": "count", "event": shop_visit, "min": 2, "within": "1d"}),
        c(2 * HOUR, "add", "viewed_not_carted", 1,
          {"type": "absence", "event": {"type": "view"},
           "not_followed_by": {"type": "add_to_cart"}, "same": ["product"],
           "within": "30m"}),
        c(6 * HOUR, "add", "deals_pricing_purchase", 1,
          {"type": "sequence",
           "steps": [{"page": {"prefix": "/deals"}}, {"page": "/pricing"},
                     {"type": "purchase", "amount": {"ge": 50}}],
           "within": "2h"}),
        c(12 * HOUR, "replace", "visited_shop_twice", 2,
          {"type": "count", "event": shop_visit, "min": 3, "within": "2d"}),
        # Refused: not a duration.
        c(18 * HOUR, "add", "broken", 1,
          {"type": "count", "event": shop_visit, "min": 2,
           "within": "forever"}),
        c(20 * HOUR, "delete", "viewed_not_carted", 2),
        c(26 * HOUR, "add", "viewed_not_carted", 3,
          {"type": "absence", "event": {"type": "view", "price": {"gt": 30}},
           "not_followed_by": {"type": {"in": ["add_to_cart", "purchase"]}},
           "same": ["product"], "within": "20m"}),
        c(30 * HOUR, "add", "big_spender", 1,
          {"type": "count",
           "event": {"type": "purchase", "amount": {"ge": 100}},
           "min": 2, "within": "1d"}),
        # Refused: older than version 2.
        c(32 * HOUR, "replace", "visited_shop_twice", 1,
          {"type": "count", "event": shop_visit, "min": 5, "within": "1d"}),
        # Ignored: the same version again (as a replay would deliver it).
        c(36 * HOUR, "add", "big_spender", 1,
          {"type": "count",
           "event": {"type": "purchase", "amount": {"ge": 100}},
           "min": 2, "within": "1d"}),
        c(40 * HOUR, "replace", "deals_pricing_purchase", 2,
          {"type": "sequence",
           "steps": [{"page": {"in": ["/deals", "/deals/summer"]}},
                     {"page": "/pricing"}, {"type": "purchase"}],
           "within": "3h"}),
        # Refused: no such rule.
        c(44 * HOUR, "replace", "no_such_rule", 1,
          {"type": "count", "event": shop_visit, "min": 2, "within": "1h"}),
        c(50 * HOUR, "delete", "big_spender", 2),
        c(60 * HOUR, "add", "help_seekers", 1,
          {"type": "count", "event": {"page": {"prefix": "/help"}}, "min": 3,
           "within": "6h"}),
        # Refused: an unknown operator.
        c(62 * HOUR, "add", "weird", 1,
          {"type": "sequence", "steps": [{"page": {"between": ["/a", "/b"]}}],
           "within": "1h"}),
    ]


def write(path, objs):
    with open(path, "w", encoding="utf-8") as f:
        for o in objs:
            f.write(json.dumps(o) + "\n")
    print("%s: %d lines" % (path, len(objs)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else here
    write(os.path.join(out, "events.jsonl"), events(SplitMix(0x5EED2026)))
    write(os.path.join(out, "changes.jsonl"), changes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
