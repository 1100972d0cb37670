#!/usr/bin/python3
"""Oracle for the clickrules example: the matches the job must emit.

The three rules of clickrules.yaml, decided here without the job's code:
each user's events are sorted by time (ties in file order) and searched
directly.

  visited_shop_twice      two visits of shop.example at most 7 days apart
  deals_pricing_purchase  a visit of /deals, later one of /pricing, later a
                          purchase, the purchase at most 1 hour after the
                          /deals visit
  viewed_not_carted       a product view with no add_to_cart of the same
                          product within 30 minutes (inclusive) after it

Matching semantics (as documented in plugins/pattern/pattern.c): a
sequence matches at the record that completes it; the reported first_ts is
the latest possible first record; after a match the rule starts over after
that record, so matches of a rule do not share records. An absence rule
starts over after each completed step; a new view of a product restarts
its 30 minutes (the earlier view of that product is dropped), views of
other products wait side by side; the rule fires 30 minutes after the view
when no cart of that product came, also after the end of the input. Records
at one time are decided before waits that end at that time.

usage:
  oracle.py [CLICKS_JSONL]
      prints the expected matches as the job's file_sink writes them, one
      JSON line each, sorted by user, time and rule:
      {"key": "u017", "ts": <ms>, "value": {"rule": ..., "key": "u017",
       "first_ts": <ms>, "last_ts": <ms>, "events": n[, "product": p]}}
Only the standard library is used.
"""
import argparse
import collections
import json
import os
import sys

MIN = 60 * 1000
HOUR = 60 * MIN
DAY = 24 * HOUR


def shop_visit(e):
    return e.get("type") == "visit" and e.get("site") == "shop.example"


def deals(e):
    return e.get("page") == "/deals"


def pricing(e):
    return e.get("page") == "/pricing"


def purchase(e):
    return e.get("type") == "purchase"


def view(e):
    return e.get("type") == "view"


def cart(e):
    return e.get("type") == "add_to_cart"


# name, predicates of the positions, within (ms)
SEQUENCES = [
    ("visited_shop_twice", [shop_visit, shop_visit], 7 * DAY),
    ("deals_pricing_purchase", [deals, pricing, purchase], HOUR),
]
ABSENCE = ("viewed_not_carted", view, cart, "product", 30 * MIN)


def read_events(path):
    """{user: [event, ...]} sorted by (ts, line number)."""
    by_user = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            e = json.loads(line)
            by_user[str(e["user"])].append((e["ts"], no, e))
    return {u: [e for _, _, e in sorted(v, key=lambda x: (x[0], x[1]))]
            for u, v in by_user.items()}


def latest_start(preds, events, lo, j):
    """Index of the latest first record of a subsequence matching preds that
    ends at events[j] and uses only indices > lo; None if there is none."""
    if not preds[-1](events[j]):
        return None
    at = j
    for pred in reversed(preds[:-1]):
        i = at - 1
        while i > lo and not pred(events[i]):
            i -= 1
        if i <= lo:
            return None
        at = i
    return at


def match(user, rule, first, last, events, ts, **extra):
    value = {"rule": rule, "key": user, "first_ts": first, "last_ts": last,
             "events": events}
    value.update(extra)
    return {"key": user, "ts": ts, "value": value}


def sequences(user, events):
    out = []
    for name, preds, within in SEQUENCES:
        reset = -1
        for j, e in enumerate(events):
            s = latest_start(preds, events, reset, j)
            if s is None or e["ts"] - events[s]["ts"] > within:
                continue
            out.append(match(user, name, events[s]["ts"], e["ts"], len(preds),
                             e["ts"]))
            reset = j
    return out


def absences(user, events):
    name, step, neg, same, within = ABSENCE
    out = []
    waiting = {}  # product -> view time

    def fire_before(t):
        for p, since in sorted(waiting.items(), key=lambda x: x[1]):
            if since + within < t:
                out.append(match(user, name, since, since, 1, since + within,
                                 **{same: p}))
                del waiting[p]

    for e in events:
        fire_before(e["ts"])
        if neg(e):
            waiting.pop(e.get(same), None)
        if step(e):
            waiting[e.get(same)] = e["ts"]
    fire_before(float("inf"))
    return out


def expected(path):
    out = []
    for user, events in read_events(path).items():
        out += sequences(user, events) + absences(user, events)
    out.sort(key=lambda m: (m["key"], m["ts"], m["value"]["rule"]))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="expected matches of the clickrules job")
    ap.add_argument("input", nargs="?", default=os.path.join(here, "clickrules.jsonl"))
    args = ap.parse_args()
    for m in expected(args.input):
        print(json.dumps(m, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
