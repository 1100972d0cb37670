#!/usr/bin/python3
"""Writes tickets.jsonl: a deterministic stream of support-ticket events.

Each line is one JSON object
  {"ticket": "T0042", "type": "created", "ts": <ms>, "channel": "email"}
with type created, customer_reply, agent_reply or closed. 1000 tickets are
created over 14 days from 2026-03-02T00:00:00Z. A ticket alternates between
waiting for an agent and waiting for the customer: agents usually answer
within hours, sometimes after more than a day (those tickets must
escalate), and a few answer exactly 24 h after the customer's message (in
time: the limit is inclusive) or 24 h + 1 ms after it (late). Customers
sometimes write again before the agent answered (the 24 h restart). Most
tickets end with "closed" (by the agent, or by the customer while still
waiting); nothing follows "closed". Some tickets are still open at the end.

Lines are written in arrival order: each event arrives up to 5 minutes
after its event time, so the file is out of event-time order by at most
5 minutes (the job's watermark allows 10).

The generator is its own xorshift64* so the file is identical on every
Python 3 version. Only the standard library is used.

usage: make_tickets.py [OUTPUT]   (default: tickets.jsonl next to this script)
"""
import json
import os
import sys

START_MS = 1772409600000  # 2026-03-02T00:00:00Z
SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR
TICKETS = 1000
SPAN = 14 * DAY
MAX_ARRIVAL_DELAY = 5 * MIN
CHANNELS = ["email", "chat", "phone", "web"]


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


def agent_delay(rng):
    """Time from the customer's (last) message to the agent's answer."""
    r = rng.below(100)
    if r < 70:
        return rng.between(2 * MIN, 8 * HOUR)
    if r < 85:
        return rng.between(8 * HOUR, 23 * HOUR)
    if r < 90:
        return 24 * HOUR  # exactly at the limit: in time
    if r < 93:
        return 24 * HOUR + 1  # one millisecond late
    return rng.between(25 * HOUR, 60 * HOUR)


def ticket_events(rng, n, created):
    """The events of ticket n, in event-time order, times strictly rising."""
    name = "T%04d" % n
    channel = CHANNELS[rng.below(len(CHANNELS))]
    events = [(created, "created")]
    waiting_since = created  # the customer waits for an agent
    t = created
    for _ in range(rng.between(1, 4)):
        if waiting_since is not None:
            # Sometimes the customer writes again before any answer.
            if rng.below(5) == 0:
                t = waiting_since + rng.between(10 * MIN, 20 * HOUR)
                events.append((t, "customer_reply"))
                waiting_since = t
            # Sometimes the customer gives up and closes the ticket.
            if rng.below(12) == 0:
                t = waiting_since + rng.between(MIN, 30 * HOUR)
                events.append((t, "closed"))
                return name, channel, events
            t = waiting_since + agent_delay(rng)
            events.append((t, "agent_reply"))
            waiting_since = None
        r = rng.below(10)
        if r < 5:  # the customer answers; the agent must reply again
            t += rng.between(MIN, 2 * DAY)
            events.append((t, "customer_reply"))
            waiting_since = t
        elif r < 8:  # solved
            t += rng.between(MIN, 3 * DAY)
            events.append((t, "closed"))
            return name, channel, events
        else:  # the ticket stays open, waiting for the customer
            return name, channel, events
    if waiting_since is not None and rng.below(3) == 0:
        t = waiting_since + agent_delay(rng)
        events.append((t, "agent_reply"))
    return name, channel, events


def generate():
    rng = XorShift(0x71C4E75)
    lines = []  # (arrival, sequence, json text)
    seq = 0
    for n in range(TICKETS):
        created = START_MS + rng.below(SPAN)
        name, channel, events = ticket_events(rng, n, created)
        for ts, typ in events:
            delay = 0 if rng.below(3) == 0 else rng.between(1, MAX_ARRIVAL_DELAY)
            obj = {"ticket": name, "type": typ, "ts": ts, "channel": channel}
            lines.append((ts + delay, seq, json.dumps(obj)))
            seq += 1
    lines.sort()
    return [text for _, _, text in lines]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "tickets.jsonl")
    lines = generate()
    with open(out, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    print("%s: %d events" % (out, len(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
