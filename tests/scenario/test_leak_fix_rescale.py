#!/usr/bin/python3
"""The control plane's acceptance scenario, end to end with real processes:
a per-key count that leaks state is fixed while it runs, saved, rescaled
and checked against an oracle that shares no code with weir.

The job: file_source (paced, RATE lines/s) -> key -> count (state 'count'
declared without TTL, parallelism 2) -> exactly-once file_sink. The input
is written here: every 4th line has a "hot" key (h0..h39, drawn with
Python's random, so each hot key comes back within a fraction of a
second), the other lines a "cold" key c<i> used once (the leak). count
carries the line number i into its output, so every output record names
the input line it counts.

  a) the leak warning fires (log line, leak_suspected in status --json);
  b) `weir ctl state ttl count count 5s` makes the key count and the state
     directory's size flat without a restart, with exact output;
  c) `weir ctl savepoint`, `weir ctl stop`, then `weir run --from` the
     savepoint at parallelism 3 with more input, exact to the end;
  d) `weir state dump` of the savepoint equals the per-key counts that
     sqlite computes from the input (GROUP BY key);
  e) after the rescale the 5 s override is in force on all 3 subtasks and
     expiry goes on: a second savepoint, taken once the hot keys have been
     absent for 9 s of input, holds none of them nor anything of the first
     run, and the hot keys count again from 1 when they come back; a run
     from that savepoint at parallelism 1 has the override as well.

What "exact" means with a TTL in processing time: a key restarts from 1
when it was not written for 5 s. The input is built so that no key is
ambiguous: gaps between two lines of a key are either at most AMBIG_LO of
input (hot keys; a hit every ~80 ms on average) or at least AMBIG_HI
(the hot keys' pause in the second run), never in between (checked). The
source is paced, so AMBIG_HI of input takes at least that long to read:
such a gap expires for sure, and the oracle (sqlite, window functions)
starts a new count there; all such gaps are in the second run, where the
override is in force (checked). A short gap never expires unless the job
stalls for longer than the TTL minus AMBIG_LO. The one stall of the
scenario is the pause from the savepoint to the restored run: about 2 s on
the project's 2-core VM, 2.8 s with the sanitizers, 5 s with the sanitizers
next to another test. The TTL runs on in processing time while no job
runs, so the oracle takes the measured pause into account: a hot key whose
idle time (its input around the savepoint plus the pause) is clearly
below the TTL must go on counting, one clearly above must count from 1
again, and only within 0.5 s of the TTL does the output decide.

The state directory is sampled as the sum of its files' sizes. With the
default write-back cache (100000 entries) the leak would stay in memory
and in the checkpoints' deltas for the whole test, so the job has
cache_entries: 1000 and the keys reach RocksDB's files.

The input after the savepoint is replaced: the file is cut at the
savepoint's line and the second run's input appended, as if more had
arrived (the lines the first run read after the savepoint are read again
from the savepoint, and file_sink drops their committed output at the
restore). Environment: WEIR, WEIR_PLUGIN_DIR, CLI_DIR (tests/cli, for the
helpers of test_ctl_state.py).
"""
import datetime
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.environ.get("CLI_DIR", ""))
from test_ctl_state import PLUGINS, WEIR, Base, env  # noqa: E402

RATE = 2000              # input lines per second (file_source rate)
HOT = 40                 # hot keys h0..h39 (and g0..g39 in the second run)
COLD_RATE = RATE * 3 // 4
TTL_S = 5
AMBIG_LO = 2 * RATE      # gaps of at most 2 s of input never expire...
AMBIG_HI = 10 * RATE     # ...gaps of at least 10 s always do
RESET_GAP = TTL_S * RATE  # where the oracle restarts a key's count
# Second run, in seconds of input from the savepoint: h and cold keys,
# then g instead of h (h pauses), then h again.
P3A, P3B, P3C = 3, 13, 4
LINES1 = 120 * RATE      # the first run's file: far more than it reads

JOB = """\
job: e2e
checkpoint: {{interval: 1s, dir: '{d}/ckpt', retain: 2}}
state: {{dir: '{d}/state', leak_samples: 2, stats_interval: 500ms,
         cache_entries: 1000}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: k, rate: {rate}}}
  - id: count
    type: count
    parallelism: {par}
    inputs: [{{from: src, partition: key}}]
    config: {{carry_field: i}}
  - id: out
    type: file_sink
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


def lines_of(start, n, draw, hot_prefix):
    """Input lines start..start+n-1 as (i, key): every 4th a hot key, its
    number from draw()."""
    return [(i, "%s%d" % (hot_prefix, draw()) if i % 4 == 0
             else "c%d" % i) for i in range(start, start + n)]


def write_lines(f, lines):
    """Writes the lines; returns the byte offset of each in f."""
    text = ['{"k": "%s", "i": %d}\n' % (k, i) for i, k in lines]
    offsets, at = [], f.tell()
    for t in text:
        offsets.append(at)
        at += len(t)
    f.write("".join(text))
    return offsets


class Oracle:
    """The expected count of every input line and the expected state after
    a prefix of the input, computed by sqlite from the input alone."""

    def __init__(self, lines, resets=()):
        """lines: (i, key); resets: lines whose key expired before them
        although their gap in the input is short (the pause of a restore)."""
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE TABLE ev (i INTEGER PRIMARY KEY, key TEXT)")
        self.db.executemany("INSERT INTO ev VALUES (?, ?)", lines)
        self.db.execute("CREATE TABLE resets (i INTEGER PRIMARY KEY)")
        self.db.executemany("INSERT INTO resets VALUES (?)",
                            [(i,) for i in resets])
        # gap: lines since the key's previous line; era: how many gaps of
        # more than the TTL (or resets) came before; each starts a count.
        self.db.execute("""
            CREATE TABLE eras AS
            WITH g AS (SELECT i, key, i - LAG(i) OVER
                         (PARTITION BY key ORDER BY i) AS gap FROM ev)
            SELECT i, key, gap, SUM(CASE WHEN gap > ? OR i IN
                                    (SELECT i FROM resets) THEN 1 ELSE 0 END)
                   OVER (PARTITION BY key ORDER BY i) AS era FROM g""",
                        (RESET_GAP,))

    def gaps(self, lo, hi):
        """How many lines come more than lo and less than hi lines after
        their key's previous line."""
        return self.db.execute(
            "SELECT COUNT(*) FROM eras WHERE gap > ? AND gap < ?",
            (lo, hi)).fetchone()[0]

    def counts(self):
        """{i: (key, expected count of line i)}."""
        return {i: (k, n) for i, k, n in self.db.execute(
            "SELECT i, key, COUNT(*) OVER (PARTITION BY key, era ORDER BY i)"
            " FROM eras")}

    def state(self, n):
        """The count state after lines 0..n-1: {key: (count, last line)},
        the count of each key's last era."""
        return {k: (c, last) for k, c, last in self.db.execute("""
            SELECT key, c, last FROM (
              SELECT key, COUNT(*) AS c, MAX(i) AS last, ROW_NUMBER() OVER
                     (PARTITION BY key ORDER BY era DESC) AS newest
              FROM eras WHERE i < ? GROUP BY key, era)
            WHERE newest = 1""", (n,))}


def dir_bytes(path):
    """The sizes of the files under path, summed (what `du -sb` counts,
    without the directories)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass  # RocksDB removed it meanwhile
    return total


class Scenario(Base):
    def setUp(self):
        super().setUp()
        self.files = []

    def tearDown(self):
        super().tearDown()
        for f in self.files:
            f.close()

    def start_run(self, par, *args, log="run1"):
        self.name = "e2e"
        self.job = os.path.join(self.d, "job%d.yaml" % par)
        with open(self.job, "w") as f:
            f.write(JOB.format(d=self.d, rate=RATE, par=par))
        out = open(os.path.join(self.d, log + ".log"), "w")
        self.files.append(out)
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS] + list(args) +
                             [self.job], stdout=out, stderr=out, env=env())
        p.log_path = out.name
        self.procs.append(p)
        self.p = p
        return p

    def state_bytes(self):
        return dir_bytes(os.path.join(self.d, "state", "e2e", "count"))

    def src_out(self):
        st = self.status()
        return st and [t["records_out"] for t in st["tasks"]
                       if t["operator"] == "src"][0]

    def samples(self, seconds, every=0.5):
        """(keys, state bytes) every `every` s for `seconds`."""
        out = []
        for _ in range(int(seconds / every)):
            k = self.keys()
            if k is not None:
                out.append((k, self.state_bytes()))
            time.sleep(every)
        return out

    def committed(self, upto=None):
        """{i: (key, count)} of the committed output, in part files of
        checkpoints <= upto; fails on a line counted twice."""
        seen = {}
        out = os.path.join(self.d, "out")
        for name in os.listdir(out):
            m = re.fullmatch(r"part-(\d+)-(\d+)\.jsonl", name)
            if not m or (upto is not None and int(m.group(2)) > upto):
                continue
            with open(os.path.join(out, name)) as f:
                for line in f:
                    v = json.loads(line)["value"]
                    self.assertNotIn(v["i"], seen, "line %d twice" % v["i"])
                    seen[v["i"]] = (v["key"], v["count"])
        return seen

    def check_output(self, seen, expected, n, what):
        """seen is the output of exactly the lines 0..n-1 with their
        expected counts."""
        self.assertEqual(sorted(seen), list(range(n)),
                         "%s: not the lines 0..%d once each" % (what, n - 1))
        bad = [(i, seen[i], expected[i]) for i in range(n)
               if seen[i] != expected[i]]
        self.assertEqual(bad[:10], [], "%s: %d lines with a wrong count "
                         "(line, seen, expected)" % (what, len(bad)))

    def savepoint(self, path):
        r = self.ctl("savepoint", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(path, "MANIFEST.json")) as f:
            m = json.load(f)
        return m["id"], m["triggered_ms"], m["completed_ms"]

    def dump(self, path):
        r = subprocess.run(
            [WEIR, "state", "dump", path, "--operator", "count", "--state",
             "count", "--format", "jsonl", "--value-format", "int64"],
            capture_output=True, text=True, timeout=60, env=env())
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(x) for x in r.stdout.splitlines()]

    def check_dump(self, entries, oracle, n, ms, subtasks, what):
        """The dump of a savepoint of lines 0..n-1 whose checkpoint was
        triggered and completed at ms = (triggered, completed): every
        entry holds its key's expected count; the hot keys and the keys
        of the last 0.5 s of input are there and live; nothing whose last
        line is more than 10 s of input old is left (expired and swept)."""
        want = oracle.state(n)
        got = {}
        for e in entries:
            self.assertNotIn(e["key"], got, "%s: key twice" % what)
            self.assertIn(e["subtask"], range(subtasks), e)
            got[e["key"]] = e
        wrong = [(k, e["value"], want.get(k)) for k, e in got.items()
                 if k not in want or e["value"] != want[k][0]]
        self.assertEqual(wrong[:10], [], "%s: %d entries differ from the "
                         "oracle (key, value, (count, last line))"
                         % (what, len(wrong)))
        recent = {k for k, (_, last) in want.items() if last >= n - RATE // 2}
        missing = [k for k in recent
                   if k not in got or got[k]["expiry"] <= ms[0]]
        self.assertEqual(missing[:10], [], "%s: recent keys not live" % what)
        stale = [k for k in got if want[k][1] < n - 10 * RATE]
        self.assertEqual(stale[:10], [], "%s: %d entries not seen for 10 s "
                         "of input are still there" % (what, len(stale)))
        for e in got.values():  # written before the savepoint, TTL 5 s
            self.assertLessEqual(e["expiry"], ms[1] + TTL_S * 1000, e)
        return got

    def check_ttl_stats(self, par):
        """`state stats` shows the override on each of the par subtasks."""
        r = self.ctl("state", "stats", "count", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        parts = json.loads(r.stdout)["subtasks"]
        self.assertEqual(sorted(t["subtask"] for t in parts),
                         list(range(par)))
        for t in parts:
            ttl = t["states"][0]["ttl"]
            self.assertEqual(ttl["ms"], TTL_S * 1000, r.stdout)
            self.assertEqual(ttl["time"], "processing", r.stdout)
            self.assertTrue(ttl["override"], r.stdout)
            self.assertIsNone(ttl["declared_ms"], r.stdout)

    def test_leak_fixed_saved_rescaled(self):
        t0 = time.time()
        rng = random.Random(20261203)
        lines = lines_of(0, LINES1, lambda: rng.randrange(HOT), "h")
        # The hot keys of the second run, drawn now so that little is left
        # to do between the savepoint and the restored run.
        draws = iter([rng.randrange(HOT) for _ in range(
            (P3A + P3B + P3C) * RATE)])
        path = os.path.join(self.d, "in.jsonl")
        with open(path, "w") as f:
            offsets = write_lines(f, lines)
        p1 = self.start_run(2)

        # a) The leak: the key count grows and the warning fires.
        self.wait_for("the states", self.keys)
        self.wait_for("the leak warning",
                      lambda: "probable state leak" in self.log())
        st = self.status()
        for s in self.states(st):
            self.assertTrue(s["leak_suspected"], st)
            self.assertIsNone(s["ttl_ms"], st)
        # 6 s of the leak: keys and the state directory grow (the small
        # write-back cache puts the keys into RocksDB's files at once).
        t = time.time()
        before = self.samples(6)
        t = time.time() - t
        self.assertGreater(before[-1][0] - before[0][0], COLD_RATE * 3,
                           "the state should leak before the fix: %s"
                           % before)
        leak_rate = (before[-1][1] - before[0][1]) / t  # bytes/s
        self.assertGreater(leak_rate, 0, before)

        # b) The fix, while it runs.
        r = self.ctl("state", "ttl", "count", "count", "%ds" % TTL_S,
                     "--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["subtasks"]), 2)
        fixed = time.time()
        # Flat: over 12 s of samples, the keys stay within what 5 s of
        # cold keys (plus 3 s for the sweep and the estimate) can make, and
        # the state directory's smallest size (just after a compaction) in
        # the last 6 s is above the one of the first 6 s by less than a
        # third of what the leak added in 6 s.
        bound = (TTL_S + 3) * COLD_RATE + HOT

        window = []

        def flat():
            """Adds a sample; True when the last 12 s of them are flat."""
            window.extend(self.samples(0.5))
            v = window[-24:]
            half = len(v) // 2
            return len(v) == 24 and max(k for k, _ in v) < bound and \
                min(b for _, b in v[half:]) - min(b for _, b in v[:half]) \
                < leak_rate * 6 / 3

        try:
            self.wait_for("a flat key count and state size", flat,
                          timeout=60, every=0)
        except AssertionError:
            print("(keys, state bytes) every 0.5 s: %s" % window,
                  file=sys.stderr)
            raise
        self.flat_samples = window[-24:]
        flat_after = time.time() - fixed
        st = self.status()
        self.assertEqual(st["supervisor"]["restarts"], 0)
        for s in self.states(st):
            self.assertEqual(s["ttl_ms"], TTL_S * 1000)
            self.assertTrue(s["ttl_override"])
            self.assertFalse(s["leak_suspected"], st)

        # c) A savepoint, a stop, more input and a run from the savepoint
        # at parallelism 3, at once: in processing time the TTL runs on
        # while no job runs, and the hot keys must not expire meanwhile.
        sp = os.path.join(self.d, "sp1")
        sp_id, *sp_ms = self.savepoint(sp)
        marks = [("savepoint", time.time())]
        r = self.ctl("stop")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        marks.append(("stop", time.time()))
        self.assertEqual(p1.wait(timeout=60), 0, self.log()[-3000:])
        marks.append(("exit", time.time()))
        seen = self.committed(upto=sp_id)
        n1 = len(seen)
        # More input: the file is cut at the savepoint's line and the
        # second run's lines follow.
        more = (lines_of(n1, P3A * RATE, draws.__next__, "h") +
                lines_of(n1 + P3A * RATE, P3B * RATE, draws.__next__, "g") +
                lines_of(n1 + (P3A + P3B) * RATE, P3C * RATE,
                         draws.__next__, "h"))
        with open(path, "r+") as f:
            f.truncate(offsets[n1])
            f.seek(offsets[n1])
            write_lines(f, more)
        marks.append(("input", time.time()))
        p2 = self.start_run(3, "--from", sp, log="run2")
        self.wait_for("the restored states", self.keys)
        marks.append(("states", time.time()))
        log = self.log()
        self.assertIn("restoring checkpoint %d from %s" % (sp_id, sp), log)
        self.assertIn("operator 'count': state rescaled from parallelism 2 "
                      "to 3", log)
        running = re.search(r"^(\S+) INFO  \[runtime\] all 5 subtasks running "
                            r"from the restored checkpoint", log, re.M)
        gap = datetime.datetime.fromisoformat(running.group(1)).timestamp() \
            - sp_ms[0] / 1000
        # A hot key idles from its last line before the savepoint to its
        # first one after: the input between them, read at RATE, plus the
        # pause. Under TTL_S - 0.5 s it must go on counting, over TTL_S +
        # 0.5 s it must start again from 1 (expired while no job ran), in
        # between either may be right and the output says which it was
        # (once that line is committed); everything else stays exact.
        last = {k: i for i, k in lines[:n1] if k[0] == "h"}
        first = {}
        for i, k in more[:P3A * RATE]:
            first.setdefault(k, i)
        idle = {k: gap + (first[k] - last[k]) / RATE for k in last}
        resets = {first[k] for k in last if idle[k] > TTL_S + 0.5}
        maybe = {first[k] for k in last
                 if TTL_S - 0.5 <= idle[k] <= TTL_S + 0.5}
        marks = " ".join("%s +%.2f s" % (m, t - sp_ms[0] / 1000)
                         for m, t in marks)
        if resets or maybe:
            print("\nthe restore took %.2f s (%s): %d hot keys expired, %d "
                  "may have" % (gap, marks, len(resets), len(maybe)),
                  file=sys.stderr)

        # The first run's output up to the savepoint is exact.
        # (No gap there is longer than AMBIG_LO: the oracle's resets do not
        # apply to the time before the override.)
        oracle = Oracle(lines[:n1])
        self.assertEqual(oracle.gaps(AMBIG_LO, len(lines)), 0)
        self.check_output(seen, oracle.counts(), n1, "first run")

        # d) The savepoint's state against sqlite.
        got = self.check_dump(self.dump(sp), oracle, n1, sp_ms, 2, "sp1")
        self.assertEqual(sum(k[0] == "h" for k in got), HOT)
        lines = lines[:n1] + more

        # e) The override is in force in each new subtask.
        self.assertEqual(log.count("TTL override in force: TTL %d ms"
                                   % (TTL_S * 1000)), 3, log[-3000:])
        self.check_ttl_stats(3)
        # Expiry goes on: once h has been absent for 9 s of input (more
        # than 9 s, the source being paced), a savepoint has none of it,
        # nothing from the first run, and the key count stays bounded.
        keys2 = []

        def h_gone():
            keys2.append(self.keys())
            return (self.src_out() or 0) >= (P3A + 9) * RATE

        self.wait_for("9 s of input without h", h_gone, timeout=60)
        self.assertLess((self.src_out() or 0), (P3A + P3B) * RATE,
                        "too late: h is back")
        sp3 = os.path.join(self.d, "sp3")
        sp3_id, *sp3_ms = self.savepoint(sp3)
        seen = self.committed(upto=sp3_id)
        n3 = len(seen)
        self.assertGreater(n3, n1 + (P3A + 9) * RATE - RATE)
        resets |= {i for i in maybe if seen[i][1] == 1}
        got = self.check_dump(self.dump(sp3), Oracle(lines[:n3], resets),
                              n3, sp3_ms, 3, "sp3")
        self.assertEqual([k for k in got if k[0] == "h"], [])
        self.assertEqual(sum(k[0] == "g" for k in got), HOT)
        self.assertEqual([k for k in got if k[0] == "c" and int(k[1:]) < n1],
                         [])
        self.assertEqual(self.status()["supervisor"]["restarts"], 0)
        late = [k for k in keys2[len(keys2) // 2:] if k is not None]
        self.assertTrue(late and max(late) < bound, keys2)

        # The second run reads to the end of its input and stops; the
        # output of both runs together is exact, h counting from 1 again.
        self.assertEqual(p2.wait(timeout=90), 0, self.log()[-3000:])
        self.assertNotIn("restarting", self.log())
        oracle = Oracle(lines, resets)
        self.assertEqual(oracle.gaps(AMBIG_LO, AMBIG_HI), 0)
        expected = oracle.counts()
        self.check_output(self.committed(), expected, len(lines), "both runs")
        back = [n for i, (k, n) in expected.items()
                if k[0] == "h" and i >= n1 + (P3A + P3B) * RATE]
        self.assertEqual(min(back), 1)

        # The override is stored in the rescaled subtasks' own state: a
        # run from the second savepoint at parallelism 1 has it too.
        p3 = self.start_run(1, "--from", sp3, log="run3")
        self.wait_for("the states of a third run", self.keys)
        log = self.log()
        self.assertIn("operator 'count': state rescaled from parallelism 3 "
                      "to 1", log)
        self.assertEqual(log.count("TTL override in force: TTL %d ms"
                                   % (TTL_S * 1000)), 1, log[-3000:])
        self.check_ttl_stats(1)
        r = self.ctl("cancel")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        p3.wait(timeout=60)
        print("\n(keys, state bytes) every 0.5 s\nleaking: %s\nflat %.1f s "
              "after the fix: %s\nsavepoints after %d and %d lines, "
              "restored %.1f s after the savepoint (%s), run time %.1f s"
              % (before, flat_after, self.flat_samples, n1, n3, gap, marks,
                 time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
