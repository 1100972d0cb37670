#!/usr/bin/python3
"""Oracle for the rules example: the matches the job must emit, decided
here from the two input files without any of the job's code.

The rule changes (changes.jsonl) are applied in file order to a table of
rule versions, each with the time it takes effect. Then each user's clicks
(events.jsonl) are sorted by time (ties in file order) and searched
directly, every click against the rule versions in force at its time.

Changes (semantics of plugins/rules/rules.c):
  - refused: a malformed change or rule, a version not above the newest of
    its id (the same version again is a repetition and ignored), an add of
    a rule that exists, a replace or delete of one that does not;
  - in force from max(its ts, the previous version's): the version for a
    click at time t is the last one in force at or before t; a deletion
    means no rule.
Rules, per user and rule id:
  count N of E within T, sequence S1..Sn within T: a match at a click r
    when clicks e1..en = r, in order, after the previous match of the rule
    and all under the version in force at r, match the positions and
    r.ts - e1.ts <= T; the reported e1 is the latest possible; the rule
    starts over after r.
  absence E, not F, same, within T: a click e matching E at t1 fires at
    t1 + T unless a later click (in order) at or before t1 + T matches F or
    E with the same `same` values, or the version in force at t1 + T is
    not the one at t1.

usage:
  oracle.py [--dir DIR]               prints the expected matches, one JSON
                                      line each, sorted
  oracle.py [--dir DIR] --check OUT.. compares the job's output files with
                                      them exactly (line order aside);
                                      --late FILE must then be empty or
                                      absent
Exit status of --check: 0 same, 1 different, 2 a file cannot be read.
Only the standard library is used.
"""
import argparse
import collections
import json
import os
import re
import sys

UNITS = {"": 1, "ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
LIMIT = (1 << 63) // 4
ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
RESERVED = {"type", "rule", "version", "key", "first_ts", "last_ts", "events"}
OPS = {"eq", "ne", "lt", "le", "gt", "ge", "in", "prefix"}
MAX_WITHIN = 7 * 86400000  # the job's max_within (the default)


class Refused(Exception):
    pass


# ---------------------------------------------------------------- values

def kind(v):
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    return "other"


def equal(a, b):
    ka, kb = kind(a), kind(b)
    if ka != kb or ka == "other":
        return False
    return a == b


def order(a, b):
    """-1, 0, 1, or None when a and b cannot be ordered."""
    ka, kb = kind(a), kind(b)
    if ka != kb or ka not in ("num", "str"):
        return None
    if ka == "str":
        a, b = a.encode("utf-8"), b.encode("utf-8")
    if a < b:
        return -1
    return 1 if a > b else 0


def holds(pred, click):
    for field, cond in pred.items():
        if field not in click:
            return False
        v = click[field]
        if not isinstance(cond, dict):
            cond = {"eq": cond}
        for op, want in cond.items():
            c = order(v, want) if op in ("lt", "le", "gt", "ge") else None
            ok = {
                "eq": lambda: equal(v, want),
                "ne": lambda: not equal(v, want),
                "lt": lambda: c == -1,
                "le": lambda: c in (-1, 0),
                "gt": lambda: c == 1,
                "ge": lambda: c in (0, 1),
                "in": lambda: any(equal(v, w) for w in want),
                "prefix": lambda: isinstance(v, str) and
                v.encode("utf-8").startswith(want.encode("utf-8")),
            }[op]()
            if not ok:
                return False
    return True


# ---------------------------------------------------------------- checking

def duration(v):
    if isinstance(v, bool):
        raise Refused("bad duration")
    if isinstance(v, int):
        if 0 <= v <= LIMIT:
            return v
        raise Refused("bad duration")
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|)", v) if isinstance(v, str) else None
    if not m or int(m.group(1)) * UNITS[m.group(2)] > LIMIT:
        raise Refused("bad duration")
    return int(m.group(1)) * UNITS[m.group(2)]


def check_pred(p):
    if not isinstance(p, dict) or not p:
        raise Refused("predicate")
    for field, cond in p.items():
        if not field:
            raise Refused("empty field")
        if isinstance(cond, dict):
            if not cond:
                raise Refused("no operator")
            for op, want in cond.items():
                if op not in OPS:
                    raise Refused("unknown operator " + op)
                if op == "in":
                    if not isinstance(want, list) or not want or \
                            any(kind(w) == "other" for w in want):
                        raise Refused("in")
                elif op == "prefix":
                    if not isinstance(want, str):
                        raise Refused("prefix")
                elif kind(want) == "other" or (
                        op in ("lt", "le", "gt", "ge") and
                        kind(want) in ("nil", "bool")):
                    raise Refused("value of " + op)
        elif kind(cond) == "other":
            raise Refused("condition")


def check_rule(r):
    """The rule as (kind, positions, within, neg, same)."""
    if not isinstance(r, dict):
        raise Refused("rule")
    t = r.get("type")
    allowed = {"count": {"type", "event", "min", "within"},
               "sequence": {"type", "steps", "within"},
               "absence": {"type", "event", "not_followed_by", "same",
                           "within"}}.get(t)
    if allowed is None or set(r) - allowed:
        raise Refused("keys")
    neg, same = None, []
    if t == "count":
        n = r.get("min")
        if kind(n) != "num" or not isinstance(n, int) or not 1 <= n <= 64:
            raise Refused("min")
        check_pred(r.get("event"))
        positions = [r["event"]] * n
    elif t == "sequence":
        steps = r.get("steps")
        if not isinstance(steps, list) or not 1 <= len(steps) <= 64:
            raise Refused("steps")
        for s in steps:
            check_pred(s)
        positions = steps
    else:
        check_pred(r.get("event"))
        check_pred(r.get("not_followed_by"))
        positions, neg = [r["event"]], r["not_followed_by"]
        same = r.get("same", [])
        if not isinstance(same, list) or len(same) > 8 or \
                len(set(map(str, same))) != len(same) or \
                any(not isinstance(s, str) or not s or s in RESERVED
                    for s in same):
            raise Refused("same")
    if "within" not in r:
        raise Refused("within")
    within = duration(r["within"])
    if not 0 < within <= MAX_WITHIN:
        raise Refused("within")
    return (t, positions, within, neg, same)


# ---------------------------------------------------------------- versions

def rule_table(path):
    """{id: [(effective, version, rule or None)]}, and the tally of
    applied, refused and ignored changes."""
    table = {}
    tally = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            ch = json.loads(line)
            try:
                op, rid, ver = ch.get("op"), ch.get("id"), ch.get("version")
                if op not in ("add", "replace", "delete"):
                    raise Refused("op")
                if not isinstance(rid, str) or not ID_RE.match(rid):
                    raise Refused("id")
                if kind(ver) != "num" or not isinstance(ver, int) or ver < 1:
                    raise Refused("version")
                if (op == "delete") == ("rule" in ch):
                    raise Refused("rule")
                hist = table.get(rid, [])
                if hist and ver == hist[-1][1]:
                    tally["ignored"] += 1
                    continue
                if hist and ver < hist[-1][1]:
                    raise Refused("older")
                exists = bool(hist) and hist[-1][2] is not None
                if (op == "add") == exists:
                    raise Refused("exists" if exists else "no such rule")
                rule = check_rule(ch["rule"]) if op != "delete" else None
                eff = ch["ts"]
                if hist:
                    eff = max(eff, hist[-1][0])
                table.setdefault(rid, []).append((eff, ver, rule))
                tally["applied"] += 1
            except Refused:
                tally["rejected"] += 1
    return table, tally


def in_force(hist, t):
    """(version, rule) in force at t, or (None, None)."""
    best = None
    for eff, ver, rule in hist:
        if eff <= t:
            best = (ver, rule)
    if best is None or best[1] is None:
        return None, None
    return best


# ---------------------------------------------------------------- matching

def record(user, rid, ver, kind_, first, last, n, ts, extra=None):
    v = {"type": kind_, "rule": rid, "version": ver, "key": user,
         "first_ts": first, "last_ts": last, "events": n}
    v.update(extra or {})
    return {"key": user, "ts": ts, "value": v}


def latest_start(positions, clicks, lo, j):
    """Index of the latest first click of a chain matching `positions` that
    ends at clicks[j] and uses indices above lo, or None."""
    if not holds(positions[-1], clicks[j]):
        return None
    at = j
    for pred in reversed(positions[:-1]):
        i = at - 1
        while i > lo and not holds(pred, clicks[i]):
            i -= 1
        if i <= lo:
            return None
        at = i
    return at


def chains(user, rid, hist, clicks):
    out = []
    lo = -1  # clicks at or below lo are used up (a match, another version)
    prev = None
    for j, c in enumerate(clicks):
        ver, rule = in_force(hist, c["ts"])
        if ver != prev:
            lo, prev = j - 1, ver
        if rule is None or rule[0] == "absence":
            continue
        kind_, positions, within = rule[0], rule[1], rule[2]
        s = latest_start(positions, clicks, lo, j)
        if s is None or c["ts"] - clicks[s]["ts"] > within:
            continue
        out.append(record(user, rid, ver, kind_, clicks[s]["ts"], c["ts"],
                          len(positions), c["ts"]))
        lo = j
    return out


def absences(user, rid, hist, clicks):
    out = []
    for i, c in enumerate(clicks):
        ver, rule = in_force(hist, c["ts"])
        if rule is None or rule[0] != "absence" or not holds(rule[1][0], c):
            continue
        _, positions, within, neg, same = rule
        deadline = c["ts"] + within
        values = [c.get(f) for f in same]
        ended = any(
            later["ts"] <= deadline and
            [later.get(f) for f in same] == values and
            (holds(neg, later) or holds(positions[0], later))
            for later in clicks[i + 1:])
        if ended or in_force(hist, deadline)[0] != ver:
            continue
        out.append(record(user, rid, ver, "absence", c["ts"], c["ts"], 1,
                          deadline, dict(zip(same, values))))
    return out


def read_clicks(path):
    users = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f):
            if line.strip():
                c = json.loads(line)
                users[str(c["user"])].append((c["ts"], no, c))
    return {u: [c for _, _, c in sorted(v, key=lambda x: x[:2])]
            for u, v in users.items()}


def expected(directory):
    table, _ = rule_table(os.path.join(directory, "changes.jsonl"))
    out = []
    for user, clicks in sorted(read_clicks(
            os.path.join(directory, "events.jsonl")).items()):
        for rid in sorted(table):
            out += chains(user, rid, table[rid], clicks)
            out += absences(user, rid, table[rid], clicks)
    out.sort(key=lambda m: (m["key"], m["ts"], m["value"]["rule"],
                            m["value"]["first_ts"]))
    return out


# ---------------------------------------------------------------- check

def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def check(directory, outputs, late):
    want = collections.Counter(canon(m) for m in expected(directory))
    got = collections.Counter()
    try:
        for path in outputs:
            with open(path, encoding="utf-8") as f:
                got.update(canon(json.loads(l)) for l in f if l.strip())
        late_lines = 0
        if late and os.path.exists(late):
            with open(late, encoding="utf-8") as f:
                late_lines = sum(1 for l in f if l.strip())
    except OSError as e:
        print("cannot read: %s" % e)
        return 2
    missing, extra = want - got, got - want
    for m in sorted(missing)[:20]:
        print("missing: %s" % m)
    for m in sorted(extra)[:20]:
        print("unexpected: %s" % m)
    if late_lines:
        print("%d records came late; none should" % late_lines)
    if missing or extra or late_lines:
        print("FAIL: %d missing, %d unexpected of %d expected matches" %
              (sum(missing.values()), sum(extra.values()),
               sum(want.values())))
        return 1
    per_rule = collections.Counter(json.loads(m)["value"]["rule"]
                                   for m in want.elements())
    print("OK: %d matches match the oracle (%s)" % (
        sum(want.values()),
        ", ".join("%s %d" % kv for kv in sorted(per_rule.items()))))
    return 0


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="expected matches of the rules "
                                 "example")
    ap.add_argument("--dir", default=here, help="with events.jsonl and "
                    "changes.jsonl")
    ap.add_argument("--check", nargs="+", metavar="OUT")
    ap.add_argument("--late")
    args = ap.parse_args()
    if args.check:
        return check(args.dir, args.check, args.late)
    for m in expected(args.dir):
        print(json.dumps(m, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
