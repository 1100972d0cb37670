#!/usr/bin/python3
"""Oracle for the tickets example: the escalations the job must emit.

A ticket escalates when no agent reply arrives within 24 h (inclusive) of
its creation or of the customer's latest message (each customer_reply
restarts the clock); an agent_reply or closed event ends the wait, so a
closed ticket never escalates. The escalation happens at the end of the
wait, 24 h after the message: at the end of the input every wait still open
is decided as if time ran on (the job's watermark jumps to the end of time
when the input ends, and every timer fires).

Independent of the job's code: events are grouped by ticket, sorted by time
(ties in file order), and walked through with a plain "waiting since"
variable.

usage:
  oracle.py [TICKETS_JSONL] [--within MS]
      prints the expected escalations as the job's file_sink writes them,
      one JSON line each, sorted by ticket and time:
      {"key": "T0042", "ts": <deadline>, "value": {"rule":
       "no_agent_reply_24h", "key": "T0042", "first_ts": <message time>,
       "last_ts": <message time>, "events": 1}}
Only the standard library is used.
"""
import argparse
import collections
import json
import os
import sys

RULE = "no_agent_reply_24h"
WITHIN_MS = 24 * 3600 * 1000


def read_events(path):
    """{ticket: [(ts, line number, type), ...]} from the JSON lines file."""
    by_ticket = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            by_ticket[str(obj["ticket"])].append((obj["ts"], no, obj["type"]))
    return by_ticket


def escalations(path, within=WITHIN_MS):
    """The expected escalations: a list of (ticket, deadline, since)."""
    out = []
    for ticket, events in read_events(path).items():
        events.sort()
        since = None  # time of the unanswered customer message
        for ts, _, typ in events:
            if since is not None and since + within < ts:
                out.append((ticket, since + within, since))
                since = None
            if typ in ("created", "customer_reply"):
                since = ts
            elif typ in ("agent_reply", "closed"):
                since = None
        if since is not None:
            out.append((ticket, since + within, since))
    out.sort()
    return out


def as_record(ticket, deadline, since):
    return {"key": ticket, "ts": deadline,
            "value": {"rule": RULE, "key": ticket, "first_ts": since,
                      "last_ts": since, "events": 1}}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="expected escalations of the tickets job")
    ap.add_argument("input", nargs="?", default=os.path.join(here, "tickets.jsonl"))
    ap.add_argument("--within", type=int, default=WITHIN_MS, metavar="MS")
    args = ap.parse_args()
    for e in escalations(args.input, args.within):
        print(json.dumps(as_record(*e), separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
