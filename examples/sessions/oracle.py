#!/usr/bin/python3
"""Oracle for the sessions example: the sessions the job must emit.

Independent of the job's code. Each user's events are sorted by time and
split where two consecutive events are GAP (30 min) or more apart; every
part is one session, emitted as the job's file_sink writes it:
    {"key": "u07", "ts": <end>, "value": {"key": "u07", "events": <n>,
     "start": <first event time>, "end": <last event time>}}
At the end of the input every session is emitted (the job's final
watermark closes them all).

When this equals the job's output. The session operator works in arrival
order with an event-time TTL: a session closes once the watermark passes its
last event + GAP, and an event that comes GAP or more after the session's
latest event starts a new one. That agrees with sorting when
  (a) no event is late: every event's time is at least the largest time
      read before it minus the source's out_of_orderness (10 s), so the
      watermark never passed an event before it arrived; a late event whose
      user's session had already closed would start a new session;
  (b) per user, with d = how far the user's events are out of order (the
      largest amount by which an event's time is below an earlier event of
      the same user), no two consecutive events of the user are between
      GAP - d (inclusive) and GAP + d (exclusive) apart, so reordering by up
      to d cannot move an event across a session boundary.
The oracle checks both on the input and refuses (exit status 3) when they do
not hold, rather than print sessions the job would not produce.

usage:
  oracle.py [--input SESSIONS_JSONL] [--gap-ms MS] [--ooo-ms MS]
      prints the expected sessions, one JSON line each, sorted by user and
      time;
  oracle.py --check OUTPUT_JSONL [OUTPUT_JSONL...]
      compares the job's output (one or more files; line order does not
      matter) with the expected sessions; exit status 0 when they match
      exactly, 1 when not (the differences are printed), 2 when a file
      cannot be read.
Only the standard library is used.
"""
import argparse
import collections
import json
import os
import sys

GAP_MS = 30 * 60 * 1000
OOO_MS = 10 * 1000


class InputError(Exception):
    """The input breaks a condition under which the oracle is valid."""


def read_events(path, ooo_ms):
    """{user: [ts, ...] in file order}; checks condition (a)."""
    by_user = collections.defaultdict(list)
    top = None
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            ts = obj["ts"]
            if top is not None and ts < top - ooo_ms:
                raise InputError("%s:%d: event at %d is late: %d ms behind the "
                                 "largest time before it, out_of_orderness is "
                                 "%d ms" % (path, no, ts, top - ts, ooo_ms))
            top = ts if top is None else max(top, ts)
            by_user[str(obj["user"])].append(ts)
    return by_user


def disorder(times):
    """How far the times (file order) are out of order: d of condition (b)."""
    d, top = 0, None
    for t in times:
        if top is not None and top - t > d:
            d = top - t
        top = t if top is None else max(top, t)
    return d


def sessions(path, gap_ms=GAP_MS, ooo_ms=OOO_MS):
    """The expected sessions: a list of (user, events, start, end)."""
    out = []
    for user, times in sorted(read_events(path, ooo_ms).items()):
        d = disorder(times)
        ordered = sorted(times)
        start, prev, n = ordered[0], ordered[0], 1
        for t in ordered[1:]:
            if gap_ms - d <= t - prev < gap_ms + d:
                raise InputError("user %s: events at %d and %d are %d ms apart, "
                                 "within %d ms of the gap while the user's events "
                                 "are out of order by up to %d ms"
                                 % (user, prev, t, t - prev, d, d))
            if t - prev >= gap_ms:
                out.append((user, n, start, prev))
                start, n = t, 0
            prev = t
            n += 1
        out.append((user, n, start, prev))
    return out


def as_record(user, events, start, end):
    return {"key": user, "ts": end,
            "value": {"key": user, "events": events, "start": start, "end": end}}


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def check(paths, want):
    got = collections.Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    got[canon(json.loads(line))] += 1
    want = collections.Counter(canon(as_record(*s)) for s in want)
    missing, extra = want - got, got - want
    for line in sorted(missing)[:20]:
        print("missing:    %s" % line)
    for line in sorted(extra)[:20]:
        print("unexpected: %s" % line)
    if missing or extra:
        print("MISMATCH: %d expected sessions, %d in the output; %d missing, "
              "%d unexpected" % (sum(want.values()), sum(got.values()),
                                 sum(missing.values()), sum(extra.values())))
        return 1
    print("OK: %d sessions match the oracle" % sum(want.values()))
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="expected sessions of the sessions example")
    ap.add_argument("--input", default=os.path.join(here, "sessions.jsonl"))
    ap.add_argument("--gap-ms", type=int, default=GAP_MS)
    ap.add_argument("--ooo-ms", type=int, default=OOO_MS)
    ap.add_argument("--check", nargs="+", metavar="OUTPUT_JSONL")
    args = ap.parse_args()
    try:
        want = sessions(args.input, args.gap_ms, args.ooo_ms)
    except InputError as e:
        print("oracle.py: the input does not fit the oracle: %s" % e, file=sys.stderr)
        return 3
    except (OSError, ValueError, KeyError) as e:
        print("oracle.py: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        try:
            return check(args.check, want)
        except (OSError, ValueError) as e:
            print("oracle.py: %s" % e, file=sys.stderr)
            return 2
    for s in want:
        print(canon(as_record(*s)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
