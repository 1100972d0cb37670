#!/usr/bin/python3
"""`weir state ls|dump|bootstrap` and rescaling a checkpoint at restore,
through the real weir binary, its plugins and real processes.

Oracles are computed here from the input the test writes (Python's own
random generator, its own JSON): per-key counts, per-key sessions, per-key
tumbling windows. The key group of a key is not recomputed here (Python
has no xxh3); instead the tests check that the placement `dump` reports
follows the plan's rule (subtask = key_group * parallelism //
max_parallelism) and, more to the point, that a job restored from the
state continues every key's count, which fails for a key placed in the
wrong subtask (its count would start again from 1).

Run one case: test_statetool.py Class.test_name. Environment: WEIR (the
weir binary), WEIR_PLUGIN_DIR.
"""
import collections
import glob
import json
import os
import random
import sys
import time
import unittest

PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
from weirproc import (Run, RunsTestCase, committed, tree_digest,  # noqa: E402
                      weir)

SEED = 20261202
MAXP = 128

COUNT_JOB = """\
job: {job}
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user{rate}}}
  - id: count
    type: count
    parallelism: {p}
    inputs: [{{from: src, partition: key}}]
  - id: sink
    type: file_sink
    parallelism: {sinkp}
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""

SESSION_JOB = """\
job: sess
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user}}
  - id: sessions
    type: session
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
    config: {{gap: 1h, time: processing}}
  - id: sink
    type: file_sink
    inputs: [{{from: sessions, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""

WINDOW_JOB = """\
job: win
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user, time_field: ts{rate}}}
    watermarks: {{out_of_orderness: 0ms, interval: 20ms}}
  - id: win
    type: window
    parallelism: {p}
    inputs: [{{from: src, partition: key}}]
    config: {{kind: tumbling, size: 1s, aggregate: count}}
  - id: sink
    type: file_sink
    parallelism: 2
    inputs: [{{from: win, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


def write_input(path, n, keys, seed, ts=False):
    rng = random.Random(seed)
    tally = collections.Counter()
    with open(path, "w") as f:
        for i in range(n):
            k = "u%d" % rng.randrange(keys)
            tally[k] += 1
            rec = {"user": k, "i": i}
            if ts:
                rec["ts"] = 1767225600000 + i * 7
            f.write(json.dumps(rec) + "\n")
    return tally


class Base(RunsTestCase):
    job_name = "st"
    tmp_prefix = "weir-statetool-"

    def write(self, name, text):
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def count_job(self, name, p, rate="", sinkp=2, job=None):
        return self.write(name, COUNT_JOB.format(
            d=self.d, p=p, rate=rate, sinkp=sinkp, job=job or self.job_name))

    def start(self, name, *args):
        r = Run(self.d, name, ["--dir", PLUGINS] + list(args))
        self.runs.append(r)
        return r

    def run_to_end(self, name, *args):
        r = self.start(name, *args)
        rc = r.wait()
        self.assertEqual(rc, 0, r.text()[-3000:])
        return r

    def run_dirs(self):
        return sorted(glob.glob(os.path.join(self.d, "ckpt", self.job_name,
                                             "*")))

    def completed(self, run_dir):
        path = os.path.join(run_dir, "completed")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [int(x) for x in f.read().split()]

    def newest(self, run_dir):
        ids = self.completed(run_dir)
        self.assertTrue(ids, "no checkpoint in %s" % run_dir)
        return os.path.join(run_dir, "chk-%d" % ids[-1])

    def new_run_dir(self, before):
        dirs = [x for x in self.run_dirs() if x not in before]
        self.assertEqual(len(dirs), 1, dirs)
        return dirs[0]

    def wait_checkpoints(self, run, before, n):
        """Waits until the run started after `before` has n checkpoints."""
        deadline = time.time() + 60
        while time.time() < deadline:
            self.assertIsNone(run.p.poll(), run.text()[-3000:])
            dirs = [x for x in self.run_dirs() if x not in before]
            if dirs and len(self.completed(dirs[0])) >= n:
                return dirs[0]
            time.sleep(0.02)
        self.fail("fewer than %d checkpoints:\n%s" % (n, run.text()[-3000:]))

    def dump(self, chk, op, state, *extra):
        rc, out, err = weir("state", "dump", chk, "--operator", op, "--state",
                            state, "--format", "jsonl", *extra)
        return [json.loads(line) for line in out.splitlines()], err

    def ls(self, chk, *extra):
        rc, out, err = weir("state", "ls", "--json", chk, *extra)
        return json.loads(out)

    def check_placement(self, entries, par):
        for e in entries:
            self.assertEqual(e["subtask"], e["key_group"] * par // MAXP, e)
        groups = {}
        for e in entries:
            groups.setdefault(e["key"], set()).add(e["key_group"])
        for k, kgs in groups.items():
            self.assertEqual(len(kgs), 1, (k, kgs))

    def counts_in(self, chk, par=None):
        entries, _ = self.dump(chk, "count", "count", "--value-format",
                               "int64")
        if par:
            self.check_placement(entries, par)
        keys = [e["key"] for e in entries]
        self.assertEqual(len(keys), len(set(keys)), "a key listed twice")
        for e in entries:
            self.assertIsNone(e["expiry"], e)
        return {e["key"]: e["value"] for e in entries}

    def check_exactly_once(self, tally, text, start=None):
        """Committed output: for every key the counts start+1 .. start+n,
        once each (start: the bootstrapped count, default 0)."""
        seen = collections.defaultdict(list)
        for r in committed(os.path.join(self.d, "out")):
            seen[r["key"]].append(r["value"]["count"])
        self.assertEqual(sorted(seen), sorted(tally), text[-3000:])
        for k, n in tally.items():
            base = (start or {}).get(k, 0)
            self.assertEqual(sorted(seen[k]), list(range(base + 1,
                                                         base + n + 1)),
                             "key %s: %s\n%s" % (k, sorted(seen[k])[:20],
                                                 text[-3000:]))


class Dump(Base):
    def finished_count_job(self, n=6000, keys=400):
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), n, keys,
                                 SEED)
        job = self.count_job("job.yaml", 2)
        self.run_to_end("first", job)
        return self.newest(self.run_dirs()[0])

    def test_dump_counts_and_key(self):
        """dump lists every key once, with the oracle's count, placed by key
        group; --key selects one key; the checkpoint is untouched."""
        chk = self.finished_count_job()
        before = tree_digest(chk)
        counts = self.counts_in(chk, par=2)
        self.assertEqual(counts, dict(self.tally))
        k = sorted(self.tally)[7]
        one, err = self.dump(chk, "count", "count", "--key", k,
                             "--value-format", "int64")
        self.assertEqual([(e["key"], e["value"]) for e in one],
                         [(k, self.tally[k])])
        none, err = self.dump(chk, "count", "count", "--key", "nobody")
        self.assertEqual(none, [])
        self.assertIn("0 entries", err)
        # Without --value-format the 8-byte counters are not msgpack.
        raw, _ = self.dump(chk, "count", "count", "--key", k)
        self.assertEqual(list(raw[0]["value"]), ["$base64"])
        rc, text, _ = weir("state", "dump", chk, "--operator", "count",
                           "--state", "count", "--value-format", "int64")
        self.assertEqual(len(text.splitlines()), len(self.tally))
        self.assertEqual(tree_digest(chk), before,
                         "the dump changed the checkpoint")
        # Its checksums still verify (ls verifies every file first).
        weir("state", "ls", chk)

    def test_dump_msgpack_sessions_with_expiry(self):
        """A msgpack value state with a processing-time TTL: values decode
        to JSON, expiry stamps are shown."""
        tally = write_input(os.path.join(self.d, "in.jsonl"), 3000, 150, SEED)
        job = self.write("job.yaml", SESSION_JOB.format(d=self.d))
        self.job_name = "sess"
        t0 = int(time.time() * 1000)
        self.run_to_end("first", job)
        t1 = int(time.time() * 1000)
        chk = self.newest(self.run_dirs()[0])
        before = tree_digest(chk)
        entries, _ = self.dump(chk, "sessions", "session")
        self.check_placement(entries, 2)
        self.assertEqual({e["key"]: e["value"]["count"] for e in entries},
                         dict(tally))
        for e in entries:
            v = e["value"]
            self.assertEqual(sorted(v), ["count", "first_ts", "last_ts"])
            self.assertTrue(t0 <= v["first_ts"] <= v["last_ts"] <= t1, e)
            # Stamped at the last write, one gap (1 h) later.
            self.assertTrue(t0 + 3600000 <= e["expiry"] <= t1 + 3600000, e)
        self.assertEqual(tree_digest(chk), before)

    def test_dump_errors(self):
        chk = self.finished_count_job(n=200, keys=10)
        rc, _, err = weir("state", "dump", chk, "--operator", "nope",
                          "--state", "count", check=False)
        self.assertEqual(rc, 2)
        self.assertIn("no keyed state of operator 'nope'", err)
        self.assertIn("'count'", err)
        rc, _, err = weir("state", "dump", chk, "--operator", "count",
                          "--state", "nope", check=False)
        self.assertEqual(rc, 2)
        self.assertIn("has no state 'nope'", err)
        rc, _, err = weir("state", "dump", chk, "--operator", "count",
                          check=False)
        self.assertEqual(rc, 2)
        self.assertIn("either --state NAME or --timers", err)
        # A damaged checkpoint is refused before anything is read.
        sst = sorted(glob.glob(os.path.join(chk, "count-*", "state",
                                            "*.sst")) +
                     glob.glob(os.path.join(chk, "count-*", "state.delta")))
        self.assertTrue(sst)
        with open(sst[0], "r+b") as f:
            f.seek(10)
            b = f.read(1)
            f.seek(10)
            f.write(bytes([b[0] ^ 0xff]))
        rc, _, err = weir("state", "dump", chk, "--operator", "count",
                          "--state", "count", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("checksum mismatch", err)
        self.assertIn(os.path.relpath(sst[0], chk), err)


class Ls(Base):
    def test_ls_numbers_agree_with_dump(self):
        tally = write_input(os.path.join(self.d, "in.jsonl"), 5000, 300, SEED)
        job = self.count_job("job.yaml", 3)
        self.run_to_end("first", job)
        run_dir = self.run_dirs()[0]
        chk = self.newest(run_dir)
        with open(os.path.join(chk, "MANIFEST.json")) as f:
            manifest = json.load(f)
        doc = self.ls(chk, "--exact")
        self.assertEqual((doc["id"], doc["job"], doc["final"],
                          doc["savepoint"], doc["max_parallelism"],
                          doc["triggered_ms"], doc["completed_ms"]),
                         (manifest["id"], "st", True, False, MAXP,
                          manifest["triggered_ms"], manifest["completed_ms"]))
        # A run directory stands for its newest checkpoint, a job's
        # checkpoint directory for its newest run with checkpoints.
        self.assertEqual(self.ls(run_dir)["id"], manifest["id"])
        job_dir = os.path.dirname(run_dir)
        newer = os.path.join(job_dir, "99991231T000000Z-0")  # no checkpoint
        os.mkdir(newer)
        self.assertEqual(self.ls(job_dir)["id"], manifest["id"])
        self.assertEqual(self.ls(job_dir)["path"], chk)
        os.rmdir(newer)
        ops = {o["id"]: o for o in doc["operators"]}
        self.assertEqual(sorted(ops), ["count", "sink", "src"])
        self.assertEqual(ops["count"]["parallelism"], 3)
        entries, _ = self.dump(chk, "count", "count")
        per_subtask = collections.Counter(e["subtask"] for e in entries)
        total, kg_next = 0, 0
        for t in ops["count"]["subtasks"]:
            first, last = t["key_groups"]
            self.assertEqual(first, kg_next)
            kg_next = last + 1
            (st,) = t["states"]
            self.assertEqual((st["name"], st["kind"]), ("count", "value"))
            self.assertEqual(st["format_version"], 0)  # count declares none
            self.assertEqual(st["entries"], per_subtask[t["index"]])
            self.assertLessEqual(st["entries"],
                                 st["est_entries"] + st["delta_puts"])
            self.assertEqual(t["timers"]["entries"], 0)
            self.assertGreater(t["state_bytes"], 0)
            total += st["entries"]
        self.assertEqual(kg_next, MAXP)
        self.assertEqual(total, len(tally))
        for t in ops["src"]["subtasks"] + ops["sink"]["subtasks"]:
            self.assertNotIn("states", t)
            self.assertGreater(t["snapshot_bytes"], 0)
        rc, text, _ = weir("state", "ls", chk)
        self.assertIn("checkpoint %d of job 'st'" % manifest["id"], text)
        self.assertIn("state 'count' (value, format version 0)", text)


class Bootstrap(Base):
    def bootstrap_and_run(self, sp_par):
        rng = random.Random(SEED + 1)
        start = {"u%d" % i: rng.randrange(1, 1000) for i in range(0, 80)}
        with open(os.path.join(self.d, "boot.jsonl"), "w") as f:
            for k, v in start.items():
                f.write(json.dumps({"key": k, "value": v}) + "\n")
            f.write("\n")
        # The run reads keys u40..u119: half bootstrapped, half new.
        rng = random.Random(SEED + 2)
        tally = collections.Counter()
        with open(os.path.join(self.d, "in.jsonl"), "w") as f:
            for i in range(4000):
                k = "u%d" % rng.randrange(40, 120)
                tally[k] += 1
                f.write(json.dumps({"user": k}) + "\n")
        job = self.count_job("job.yaml", 2)
        sp = os.path.join(self.d, "sp")
        args = ["state", "bootstrap", "--dir", PLUGINS, "--job", job,
                "--operator", "count", "--state", "count", "--from",
                os.path.join(self.d, "boot.jsonl"), "--out", sp,
                "--value-format", "int64"]
        if sp_par:
            args += ["--parallelism", str(sp_par)]
        rc, out, _ = weir(*args)
        self.assertIn("80 keys", out)
        with open(os.path.join(sp, "MANIFEST.json")) as f:
            m = json.load(f)
        self.assertIs(m["savepoint"], True)
        self.assertEqual(m["job"], "st")
        self.assertEqual({t["op"] for t in m["tasks"]}, {"count"})
        self.assertEqual(len(m["tasks"]), sp_par or 2)
        self.assertEqual(self.counts_in(sp, par=sp_par or 2), start)
        self.assertTrue(self.ls(sp)["savepoint"])
        r = self.run_to_end("from", "--from", sp, job)
        self.assertIn("restoring checkpoint 0 from %s" % sp, r.text())
        if sp_par:
            self.assertIn("state rescaled from parallelism %d to 2" % sp_par,
                          r.text())
        self.check_exactly_once(tally, r.text(), start)
        final = dict(start)
        for k, n in tally.items():
            final[k] = final.get(k, 0) + n
        self.assertEqual(self.counts_in(self.newest(self.run_dirs()[0]), 2),
                         final)

    def test_bootstrap_then_run_continues_counts(self):
        self.bootstrap_and_run(None)

    def test_bootstrap_other_parallelism_is_rescaled(self):
        self.bootstrap_and_run(3)

    def test_bootstrap_map_and_list_round_trip(self):
        """Map and list states in msgpack: dump shows what was given."""
        job = self.count_job("job.yaml", 2)
        rows_m = [{"key": "k%d" % (i % 7), "user_key": "f%d" % i,
                   "value": {"n": i, "tags": ["a", None, True, 1.5]},
                   "expiry": None if i % 2 else 1767225600000 + i}
                  for i in range(30)]
        rows_l = [{"key": "k%d" % i, "value": [i, "x", {"$base64": "AP8="}]}
                  for i in range(10)]
        for kind, rows in (("map", rows_m), ("list", rows_l)):
            src = self.write(kind + ".jsonl",
                             "".join(json.dumps(r) + "\n" for r in rows))
            sp = os.path.join(self.d, "sp-" + kind)
            weir("state", "bootstrap", "--dir", PLUGINS, "--job", job,
                 "--operator", "count", "--state", "s" + kind, "--kind",
                 kind, "--from", src, "--out", sp)
            got, _ = self.dump(sp, "count", "s" + kind)
            self.check_placement(got, 2)
            strip = [{k: v for k, v in e.items()
                      if k not in ("subtask", "key_group")} for e in got]
            for r in rows:
                r.setdefault("expiry", None)
            key = (lambda e: (e["key"], e.get("user_key", "")))
            self.assertEqual(sorted(strip, key=key), sorted(rows, key=key))
            doc = self.ls(sp, "--exact")
            idx = sum(t["expiry_index"]["entries"]
                      for t in doc["operators"][0]["subtasks"])
            self.assertEqual(idx, sum(1 for r in rows if r["expiry"]))

    def test_bootstrap_bad_input(self):
        job = self.count_job("job.yaml", 2)
        cases = [
            ('{"key": "a", "value": 1}\n{"key": "a", "value": 2}\n',
             [], "bad.jsonl:2: the same key as on line 1"),
            ('{"key": "a", "value": 1}\n{"key": "b", "valeu": 2}\n',
             [], "bad.jsonl:2: unknown member 'valeu'"),
            ('{"key": "a", "value": 1}\nnot json\n', [],
             "bad.jsonl:2: invalid JSON"),
            ('{"key": 1.5, "value": 1}\n', [], "bad.jsonl:1: \"key\""),
            ('{"key": "a", "value": "x"}\n', ["--value-format", "int64"],
             "bad.jsonl:1: \"value\": an int64 value is a JSON integer"),
            ('{"key": "a", "value": 1}\n', ["--operator", "src"],
             "operator 'src' (file_source) is not keyed"),
            ('{"key": "a", "value": 1}\n', ["--operator", "cnt"],
             "has no operator 'cnt'"),
            ('{"key": "a", "value": 1}\n', ["--kind", "set"],
             "--kind is value, map or list"),
        ]
        for i, (text, extra, msg) in enumerate(cases):
            src = self.write("bad.jsonl", text)
            out = os.path.join(self.d, "sp%d" % i)
            args = ["state", "bootstrap", "--dir", PLUGINS, "--job", job,
                    "--state", "count", "--from", src, "--out", out]
            if "--operator" not in extra:
                args += ["--operator", "count"]
            rc, _, err = weir(*(args + extra), check=False)
            self.assertEqual(rc, 2, (msg, err))
            self.assertIn(msg, err)
            self.assertFalse(os.path.exists(out), "left a partial savepoint")
        # An existing, non-empty output directory is never written into.
        src = self.write("ok.jsonl", '{"key": "a", "value": 1}\n')
        out = os.path.join(self.d, "busy")
        os.makedirs(out)
        self.write("busy/keep", "x")
        rc, _, err = weir("state", "bootstrap", "--dir", PLUGINS, "--job", job,
                          "--operator", "count", "--state", "count", "--from",
                          src, "--out", out, check=False)
        self.assertEqual(rc, 2)
        self.assertIn("is not an empty directory", err)
        self.assertEqual(os.listdir(out), ["keep"])


class Rescale(Base):
    """Restores into another parallelism through `weir run --from`."""

    def test_rescale_2_3_1_after_kills(self):
        """count at parallelism 2, killed after checkpoints; restored at 3,
        killed again; restored at 1, run to the end: every key's committed
        counts are 1..n exactly once and the final state holds n."""
        tally = write_input(os.path.join(self.d, "in.jsonl"), 24000, 300,
                            SEED)
        rate = ", rate: 8000, batch: 64"
        jobs = {p: self.count_job("job%d.yaml" % p, p, rate) for p in (1, 2, 3)}
        before = self.run_dirs()
        r1 = self.start("p2", jobs[2])
        rd1 = self.wait_checkpoints(r1, before, 3)
        r1.kill()
        chk1 = self.newest(rd1)
        before = self.run_dirs()
        r2 = self.start("p3", "--from", chk1, jobs[3])
        rd2 = self.wait_checkpoints(r2, before, 3)
        r2.kill()
        self.assertIn("state rescaled from parallelism 2 to 3", r2.text())
        chk2 = self.newest(rd2)
        part = self.counts_in(chk2, par=3)
        for k, n in part.items():
            self.assertLessEqual(n, tally[k])
        before = self.run_dirs()
        r3 = self.run_to_end("p1", "--from", chk2, jobs[1])
        self.assertIn("state rescaled from parallelism 3 to 1", r3.text())
        rd3 = self.new_run_dir(before)
        text = r1.text() + r2.text() + r3.text()
        self.check_exactly_once(tally, text)
        self.assertEqual(self.counts_in(self.newest(rd3), par=1), dict(tally))

    def test_rescale_finished_job_2_3_1(self):
        """The same through final checkpoints: each restore's own final
        checkpoint holds exactly the oracle's counts."""
        tally = write_input(os.path.join(self.d, "in.jsonl"), 5000, 500, SEED)
        jobs = {p: self.count_job("job%d.yaml" % p, p) for p in (1, 2, 3)}
        self.run_to_end("p2", jobs[2])
        chk = self.newest(self.run_dirs()[0])
        self.assertEqual(self.counts_in(chk, par=2), dict(tally))
        for p in (3, 1):
            before = self.run_dirs()
            r = self.run_to_end("p%d" % p, "--from", chk, jobs[p])
            self.assertIn("rescaled from parallelism", r.text())
            chk = self.newest(self.new_run_dir(before))
            self.assertEqual(self.counts_in(chk, par=p), dict(tally))
        self.check_exactly_once(tally, "")

    def test_rescale_windows_with_timers(self):
        """Event-time windows: their map state and pending timers move to
        the new subtasks; the committed windows equal the oracle's."""
        n = 16000
        write_input(os.path.join(self.d, "in.jsonl"), n, 40, SEED, ts=True)
        self.job_name = "win"
        rate = ", rate: 8000, batch: 64"
        jobs = {p: self.write("win%d.yaml" % p, WINDOW_JOB.format(
            d=self.d, p=p, rate=rate)) for p in (1, 2, 3)}
        want = collections.Counter()
        with open(os.path.join(self.d, "in.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                start = r["ts"] // 1000 * 1000
                want[(r["user"], start, start + 1000)] += 1
        before = self.run_dirs()
        r1 = self.start("p2", jobs[2])
        rd1 = self.wait_checkpoints(r1, before, 3)
        r1.kill()
        chk1 = self.newest(rd1)
        rc, out, _ = weir("state", "dump", chk1, "--operator", "win",
                          "--timers", "--format", "jsonl")
        timers = [json.loads(x) for x in out.splitlines()]
        self.assertTrue(timers, "no pending timer in a mid-run checkpoint")
        self.check_placement(timers, 2)
        self.assertEqual({t["domain"] for t in timers}, {"event"})
        doc = self.ls(chk1, "--exact")
        (win,) = [o for o in doc["operators"] if o["id"] == "win"]
        self.assertEqual(sum(t["timers"]["entries"] for t in win["subtasks"]),
                         len(timers))
        before = self.run_dirs()
        r2 = self.start("p3", "--from", chk1, jobs[3])
        rd2 = self.wait_checkpoints(r2, before, 3)
        r2.kill()
        self.assertRegex(r2.text(), r"rescaled from parallelism 2 to 3 "
                                    r"\(\d+ entries, [1-9]\d* timers")
        r3 = self.run_to_end("p1", "--from", self.newest(rd2), jobs[1])
        got = collections.Counter()
        for r in committed(os.path.join(self.d, "out")):
            v = r["value"]
            got[(v["key"], v["start"], v["end"])] += 1
            self.assertEqual(v["count"], want[(v["key"], v["start"],
                                               v["end"])], v)
        self.assertEqual(set(got), set(want), r3.text()[-2000:])
        self.assertEqual(set(got.values()), {1})


class RestoreErrors(Base):
    def finished(self):
        write_input(os.path.join(self.d, "in.jsonl"), 500, 20, SEED)
        job = self.count_job("job.yaml", 2)
        self.run_to_end("first", job)
        return job, self.newest(self.run_dirs()[0])

    def test_damaged_checkpoint(self):
        job, chk = self.finished()
        victim = sorted(glob.glob(os.path.join(chk, "count-1", "state",
                                               "*")))[0]
        with open(victim, "ab") as f:
            f.write(b"x")
        r = self.start("from", "--from", chk, job)
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        self.assertIn("cannot start from %s" % chk, r.text())
        self.assertIn("%s: size is" % os.path.relpath(victim, chk), r.text())

    def test_checkpoint_of_another_job(self):
        job, chk = self.finished()
        other = self.count_job("other.yaml", 2, job="other")
        r = self.start("from", "--from", chk, other)
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        self.assertIn("is of job 'st', not of job 'other'", r.text())

    def test_snapshot_operator_not_rescaled(self):
        """The sink's plugin snapshots cannot be split: 2 -> 3 refused,
        naming the operator."""
        job, chk = self.finished()
        wide = self.count_job("wide.yaml", 2, sinkp=3)
        r = self.start("from", "--from", chk, wide)
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        self.assertRegex(r.text(), r"operator 'sink' \(file_sink\) with "
                                   r"parallelism 2, the job has 3: its "
                                   r"subtasks' plugin snapshots")


if __name__ == "__main__":
    argv = sys.argv[:1] + sys.argv[1:]
    unittest.main(argv=argv, verbosity=2)
