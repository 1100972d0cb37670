#!/usr/bin/python3
"""Changing a keyed state's format across a savepoint, and restoring damaged
savepoints, through the real weir binary and real supervised processes.

The test plugin mcount (mcount.c) keeps three keyed states, a value
(count per key), a map (count per key and parity of the record's "i") and
a list (the key's first three "i"), every number in its build's format. It
is built from one source as v1 (format_version 1: little-endian uint32), v2
(format 2: msgpack {"n": uint64}, with a migrate_state hook from 1),
v2nohook (format 2, no hook) and v2fail (format 2, a hook that fails for key
"u7"); each build is alone in its own plugin directory under MCOUNT_DIR, so
`--dir` chooses which build the operator type "mcount" means.

Every case first runs the job with v1 at parallelism 2 on a rate-limited
input and stops it with `weir ctl stop --savepoint` half-way. Oracles are
computed here from the input this file writes: the three states from the
input lines in order (for the savepoint: of each key's first n records, n
the highest count the first run committed for it), and the committed
output of both runs together must hold, for every key, the counts 1..n
exactly once. State is read with `weir state dump` and decoded here (v1
bytes from base64, little-endian).

Run one case: test_migrate.py Class.test_name. Environment: WEIR (the weir
binary), WEIR_PLUGIN_DIR (bundled plugins), MCOUNT_DIR (the builds).
"""
import base64
import collections
import glob
import json
import os
import random
import re
import subprocess
import sys
import time
import unittest

PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "common"))
from weirproc import WEIR, Run, RunsTestCase, env, tree_digest, weir  # noqa: E402

MCOUNT = os.environ.get("MCOUNT_DIR", "")
SEED = 20261203
MAXP = 128

JOB = """\
job: {job}
restart: {{strategy: fixed_delay, attempts: 3, delay: 100ms}}
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user{rate}}}
  - id: count
    type: mcount
    parallelism: {p}
    inputs: [{{from: src, partition: key}}]
  - id: sink
    type: file_sink
    parallelism: 2
    inputs: [{{from: count, partition: rebalance}}]
    config: {{path: '{d}/out', commit: checkpoint}}
"""

# A second keyed operator (the bundled count, counting only), for a
# savepoint that holds state of an operator a later job drops.
EXTRA = """\
  - id: extra
    type: count
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
    config: {{emit: none}}
"""


def write_input(path, n, keys, seed, mode="w"):
    """n JSON lines {"user": "u<k>"} with k in [0, keys); the per-key
    tally."""
    rng = random.Random(seed)
    tally = collections.Counter()
    with open(path, mode) as f:
        for i in range(n):
            k = "u%d" % rng.randrange(keys)
            tally[k] += 1
            f.write(json.dumps({"user": k, "i": i}) + "\n")
    return tally


def committed(outdir):
    """key -> every count of the committed part files."""
    seen = collections.defaultdict(list)
    for part in sorted(glob.glob(os.path.join(outdir, "part-*.jsonl"))):
        with open(part) as f:
            for line in f:
                r = json.loads(line)
                seen[r["key"]].append(r["value"]["count"])
    return seen


def flip_byte(path):
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x5A]))


class Base(RunsTestCase):
    job_name = "mig"
    tmp_prefix = "weir-migrate-"

    # --- jobs and runs -----------------------------------------------------

    def job(self, name, p=2, rate="", extra=False, job=None):
        text = JOB.format(d=self.d, p=p, rate=rate, job=job or self.job_name)
        if extra:
            text += EXTRA.format()
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, name, build, *args):
        r = Run(self.d, name, ["--dir", os.path.join(MCOUNT, build), "--dir",
                               PLUGINS] + list(args))
        self.runs.append(r)
        return r

    def run_dirs(self):
        return sorted(glob.glob(os.path.join(self.d, "ckpt", self.job_name,
                                             "2*")))

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

    def ctl(self, *args):
        return subprocess.run([WEIR, "ctl"] + list(args), capture_output=True,
                              text=True, timeout=120, env=env())

    def wait_checkpoints(self, run, before, n):
        """Waits until the run started after `before` has n checkpoints;
        returns its run directory."""
        deadline = time.time() + 60
        while time.time() < deadline:
            self.assertIsNone(run.p.poll(), run.text()[-3000:])
            dirs = [x for x in self.run_dirs() if x not in before]
            if dirs and len(self.completed(dirs[0])) >= n:
                return dirs[0]
            time.sleep(0.02)
        self.fail("fewer than %d checkpoints:\n%s" % (n, run.text()[-3000:]))

    def v1_savepoint(self, extra=False, n=16000, keys=300, sp="sp"):
        """Runs the job with v1 at parallelism 2 and stops it half-way with
        a savepoint (in self.d/sp); returns the savepoint directory.
        self.tally: the per-key counts of the whole input."""
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), n, keys,
                                 SEED)
        job = self.job("v1.yaml", p=2, rate=", rate: 4000, batch: 64",
                       extra=extra)
        r = self.start("v1", "v1", job)
        self.wait_checkpoints(r, self.run_dirs(), 2)
        sp = os.path.join(self.d, sp)
        c = self.ctl(os.path.join(self.d, "ckpt", self.job_name), "stop",
                     "--savepoint", sp)
        self.assertEqual(c.returncode, 0, c.stderr + r.text()[-3000:])
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        self.assertTrue(os.path.exists(os.path.join(sp, "SAVEPOINT.json")))
        with open(os.path.join(sp, "MANIFEST.json")) as f:
            m = json.load(f)
        self.assertIs(m["savepoint"], True)
        self.assertIs(m["final"], False)
        self.first_out = committed(os.path.join(self.d, "out"))
        self.assertLess(sum(len(v) for v in self.first_out.values()),
                        sum(self.tally.values()),
                        "the first run was not stopped half-way")
        return sp

    # --- reading state -----------------------------------------------------

    def dump(self, chk, state, *extra):
        rc, out, err = weir("state", "dump", chk, "--operator", "count",
                            "--state", state, "--format", "jsonl", *extra)
        return [json.loads(line) for line in out.splitlines()]

    def read_states(self, chk, fmt, par=None):
        """The three states of operator count, decoded here: {"count": {key:
        n}, "parity": {(key, "even"|"odd"): n}, "first": {key: [i, ...]}}.
        Format 1 numbers are 4 bytes little-endian (read as base64), format
        2 numbers msgpack {"n": N} (which dump decodes). par: check that
        every entry sits in the subtask of its key group."""
        def num(v):
            if fmt == 2:
                self.assertEqual(list(v), ["n"], v)
                return v["n"]
            raw = base64.b64decode(v["$base64"] if isinstance(v, dict) else v)
            self.assertEqual(len(raw), 4, v)
            return int.from_bytes(raw, "little")

        extra = ("--value-format", "base64") if fmt == 1 else ()
        out = {}
        for state in ("count", "parity", "first"):
            got = out[state] = {}
            for e in self.dump(chk, state, *extra):
                if par:
                    self.assertEqual(e["subtask"],
                                     e["key_group"] * par // MAXP, e)
                k = (e["key"], e["user_key"]) if state == "parity" else e["key"]
                self.assertNotIn(k, got)
                v = e["value"]
                got[k] = [num(x) for x in v] if state == "first" else num(v)
        return out

    def oracle(self, counts=None):
        """The three states computed from the input file: over the whole
        input, or over each key's first counts[key] records."""
        seq = collections.defaultdict(list)
        with open(os.path.join(self.d, "in.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                seq[r["user"]].append(r["i"])
        want = {"count": {}, "parity": collections.Counter(), "first": {}}
        for k, ii in seq.items():
            if counts is not None:
                if k not in counts:
                    continue
                ii = ii[:counts[k]]
            want["count"][k] = len(ii)
            want["first"][k] = ii[:3]
            for i in ii:
                want["parity"][(k, "odd" if i % 2 else "even")] += 1
        want["parity"] = dict(want["parity"])
        return want

    def format_versions(self, chk):
        """state name -> the set of format versions its subtasks record."""
        rc, out, err = weir("state", "ls", "--json", chk)
        doc = json.loads(out)
        (op,) = [o for o in doc["operators"] if o["id"] == "count"]
        got = collections.defaultdict(set)
        for t in op["subtasks"]:
            for st in t["states"]:
                got[st["name"]].add(st["format_version"])
        return dict(got)

    def check_exactly_once(self, tally, text):
        seen = committed(os.path.join(self.d, "out"))
        self.assertEqual(sorted(seen), sorted(tally), text[-3000:])
        for k, n in tally.items():
            self.assertEqual(sorted(seen[k]), list(range(1, n + 1)),
                             "key %s: %s\n%s" % (k, sorted(seen[k])[:20],
                                                 text[-3000:]))

    def check_savepoint_v1(self, sp):
        """The savepoint holds v1 bytes: the counts the first run committed,
        and the map and list states of that many records of each key; it
        says format version 1 for every state. Returns its states."""
        got = self.read_states(sp, 1, par=2)
        counts = {k: max(v) for k, v in self.first_out.items()}
        self.assertEqual(got["count"], counts)
        self.assertEqual(got, self.oracle(counts))
        self.assertEqual(self.format_versions(sp),
                         {"count": {1}, "parity": {1}, "first": {1}})
        return got

    def refusal_leaves_nothing(self, r, before):
        """A refused restore started no fresh state and completed no
        checkpoint; it was not retried by the restart strategy."""
        text = r.text()
        self.assertNotIn("starting with empty state", text)
        self.assertEqual(len(re.findall(r"restoring checkpoint", text)), 1,
                         text[-3000:])
        for rd in [x for x in self.run_dirs() if x not in before]:
            self.assertEqual(self.completed(rd), [], text[-3000:])


class Migrate(Base):
    def migrate(self, p):
        sp = self.v1_savepoint()
        sp_states = self.check_savepoint_v1(sp)
        digest = tree_digest(sp)
        # More input after the savepoint: keys seen before and new ones.
        more = write_input(os.path.join(self.d, "in.jsonl"), 4000, 350,
                           SEED + 1, mode="a")
        tally = self.tally + more
        before = self.run_dirs()
        job = self.job("v2.yaml", p=p)
        r = self.start("v2", "v2", "--from", sp, job)
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        text = r.text()
        self.assertIn("restoring checkpoint", text)
        # Per state and subtask: the entries met and the hook's calls (list
        # state: one per element).
        for state, calls in (("count", len(sp_states["count"])),
                             ("parity", len(sp_states["parity"])),
                             ("first", sum(len(v) for v in
                                           sp_states["first"].values()))):
            moved = [int(x) for x in re.findall(
                r"state '%s': migrating (\d+) entries from format version 1 "
                r"to 2" % state, text)]
            self.assertEqual(len(moved), p, text[-3000:])
            self.assertEqual(sum(moved), len(sp_states[state]), state)
            done = [int(x) for x in re.findall(
                r"state '%s': migrated to format version 2 \((\d+) calls\)"
                % state, text)]
            self.assertEqual(sum(done), calls, state)
        if p != 2:
            self.assertIn("state rescaled from parallelism 2 to %d" % p, text)
        self.check_exactly_once(tally, text)
        chk = self.newest(self.new_run_dir(before))
        got = self.read_states(chk, 2, par=p)
        self.assertEqual(got["count"], dict(tally))
        self.assertEqual(got, self.oracle())
        self.assertEqual(self.format_versions(chk),
                         {"count": {2}, "parity": {2}, "first": {2}})
        rc, out, _ = weir("state", "ls", chk)
        self.assertIn("state 'count' (value, format version 2)", out)
        rc, out, _ = weir("state", "ls", sp)
        self.assertIn("state 'count' (value, format version 1)", out)
        rc, out, _ = weir("state", "ls", "--json", sp)
        self.assertIs(json.loads(out)["savepoint"], True)
        self.assertEqual(tree_digest(sp), digest,
                         "restoring the savepoint changed it")
        return chk

    def test_worker_killed_after_migration(self):
        """The v2 run's worker is SIGKILLed after checkpoints of its own:
        the restart restores the run's newest checkpoint, which says format
        version 2, so nothing is migrated again; counts stay exact."""
        sp = self.v1_savepoint()
        sp_states = self.check_savepoint_v1(sp)
        before = self.run_dirs()
        job = self.job("v2.yaml", rate=", rate: 4000, batch: 64")
        r = self.start("v2", "v2", "--from", sp, job)
        rd = self.wait_checkpoints(r, before, 3)
        st = self.ctl(rd, "status", "--json")
        self.assertEqual(st.returncode, 0, st.stderr)
        os.kill(json.loads(st.stdout)["supervisor"]["worker"], 9)
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        text = r.text()
        restored = re.findall(r"restoring checkpoint (\d+) from (\S+)", text)
        self.assertEqual(len(restored), 2, text[-3000:])
        self.assertEqual(restored[0][1], sp)
        self.assertEqual(os.path.dirname(restored[1][1]), rd)
        moved = re.findall(r"state 'count': migrating (\d+) entries from "
                           r"format version 1 to 2", text)
        self.assertEqual(len(moved), 2, text[-3000:])  # attempt 0 only
        self.assertEqual(sum(int(x) for x in moved), len(sp_states["count"]))
        self.check_exactly_once(self.tally, text)
        self.assertEqual(self.read_states(self.newest(rd), 2, par=2),
                         self.oracle())

    def test_v1_to_v2_same_parallelism(self):
        """... and back: v1, which has no hook, refuses the v2 run's final
        checkpoint (a downgrade needs a hook too)."""
        chk = self.migrate(2)
        digest = tree_digest(chk)
        r = self.start("back", "v1", "--from", chk, self.job("back.yaml"))
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        self.assertRegex(
            r.text(), r"state 'count' of checkpoint \d+ \(%s\) holds "
                      r"entries of format version 2, the plugin declares "
                      r"format version 1, and operator 'count' has no "
                      r"migrate_state hook: cannot restore it; give the "
                      r"operator a migrate_state hook or declare "
                      r"format_version 2" % re.escape(chk))
        self.assertEqual(tree_digest(chk), digest)

    def test_v1_to_v2_rescaled_2_to_3(self):
        self.migrate(3)


class Refused(Base):
    def test_no_hook(self):
        """v2 without migrate_state: exit 4, a message naming operator,
        state and both versions; the savepoint is untouched. The savepoint
        has a long path (about 1000 bytes), which the message names in full
        with everything after it."""
        sp = self.v1_savepoint(sp="/".join(["s" * 200] * 5))
        self.assertGreater(len(sp), 1000)
        digest = tree_digest(sp)
        before = self.run_dirs()
        r = self.start("nohook", "v2nohook", "--from", sp, self.job("v2.yaml"))
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        text = r.text()
        self.assertRegex(
            text, r"operator 'count' \(mcount\) subtask [12]/2: restore "
                  r"refused: state 'count' of checkpoint \d+ \(%s\) holds "
                  r"entries of format version 1, the plugin declares format "
                  r"version 2, and operator 'count' has no migrate_state "
                  r"hook" % re.escape(sp))
        self.refusal_leaves_nothing(r, before)
        self.assertEqual(tree_digest(sp), digest)

    def test_hook_fails(self):
        """A hook that fails for one entry refuses the run with the hook's
        message (exit 4), commits nothing, and leaves the savepoint as it
        was: v2 restores it afterwards with every count exact."""
        sp = self.v1_savepoint()
        self.assertIn("u7", self.check_savepoint_v1(sp)["count"])
        digest = tree_digest(sp)
        before = self.run_dirs()
        job = self.job("v2.yaml")
        r = self.start("fail", "v2fail", "--from", sp, job)
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        text = r.text()
        self.assertRegex(
            text, r"operator 'count' \(mcount\) subtask [12]/2: restore "
                  r"refused: state 'count' of checkpoint \d+ \(%s\): "
                  r"migrate_state from format version 1 to 2 failed: "
                  r".*mcount: refusing to migrate key 'u7'" % re.escape(sp))
        self.refusal_leaves_nothing(r, before)
        self.assertEqual(tree_digest(sp), digest)
        # Nothing of the failed attempt is left behind: the good build
        # restores the same savepoint to exact counts.
        before = self.run_dirs()
        r = self.start("v2", "v2", "--from", sp, job)
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        self.check_exactly_once(self.tally, r.text())
        chk = self.newest(self.new_run_dir(before))
        self.assertEqual(self.read_states(chk, 2, par=2), self.oracle())


class Damaged(Base):
    """`weir run --from` a damaged savepoint refuses (exit 4, naming the
    damage) and never starts from empty state; `weir state ls` and `dump`
    name the damage too (exit 1), without crashing."""

    def refused(self, sp, pattern, job=None, damaged=True):
        before = self.run_dirs()
        r = self.start("from", "v1", "--from", sp,
                       job or self.job("again.yaml"))
        self.assertEqual(r.wait(), 4, r.text()[-3000:])
        text = r.text()
        if damaged:
            self.assertIn("cannot start from %s" % sp, text)
        self.assertRegex(text, pattern)
        self.assertNotIn("starting with empty state", text)
        for rd in [x for x in self.run_dirs() if x not in before]:
            self.assertEqual(self.completed(rd), [])
        self.assertEqual(committed(os.path.join(self.d, "out")),
                         self.first_out, "the refused run committed output")
        return text

    def tools_refuse(self, sp, pattern):
        for args in (["ls", sp], ["dump", sp, "--operator", "count",
                                  "--state", "count"]):
            rc, out, err = weir("state", *args, check=False)
            self.assertEqual(rc, 1, (args, out, err))
            self.assertRegex(err, pattern)
            self.assertNotIn("Traceback", err)

    def state_files(self, sp):
        with open(os.path.join(sp, "MANIFEST.json")) as f:
            m = json.load(f)
        files = [f["path"] for f in m["files"]
                 if f["path"].startswith("count-") and "/state/" in f["path"]
                 and f["size"] > 64]
        self.assertTrue(files, m["files"])
        return files

    def test_flipped_byte(self):
        sp = self.v1_savepoint()
        victim = max(self.state_files(sp),
                     key=lambda p: os.path.getsize(os.path.join(sp, p)))
        flip_byte(os.path.join(sp, victim))
        pat = r"%s: checksum mismatch" % re.escape(victim)
        self.refused(sp, pat)
        self.tools_refuse(sp, pat)

    def test_missing_file(self):
        sp = self.v1_savepoint()
        victim = self.state_files(sp)[0]
        os.unlink(os.path.join(sp, victim))
        pat = r"%s: missing" % re.escape(victim)
        self.refused(sp, pat)
        self.tools_refuse(sp, pat)

    def test_garbled_manifest(self):
        sp = self.v1_savepoint()
        path = os.path.join(sp, "MANIFEST.json")
        with open(path, "r+b") as f:
            text = f.read()
            f.seek(0)
            f.write(text[:len(text) // 2] + b"\x00garbage")
            f.truncate()
        pat = r"MANIFEST\.json: invalid JSON"
        self.refused(sp, pat)
        self.tools_refuse(sp, pat)
        os.unlink(path)
        pat = r"MANIFEST\.json"
        self.refused(sp, pat)
        self.tools_refuse(sp, pat)

    def test_savepoint_json_is_descriptive(self):
        """SAVEPOINT.json only describes the savepoint (job, operators,
        plugin files); the restore reads and verifies MANIFEST.json, whose
        checksums cover every state file. A garbled SAVEPOINT.json does not
        change the restore: counts continue exactly."""
        sp = self.v1_savepoint()
        with open(os.path.join(sp, "SAVEPOINT.json"), "w") as f:
            f.write("{ not json")
        before = self.run_dirs()
        r = self.start("from", "v1", "--from", sp, self.job("again.yaml"))
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        self.check_exactly_once(self.tally, r.text())
        chk = self.newest(self.new_run_dir(before))
        self.assertEqual(self.read_states(chk, 1, par=2), self.oracle())

    def test_other_job(self):
        sp = self.v1_savepoint()
        other = self.job("other.yaml", job="other")
        self.job_name = "other"
        self.refused(sp, r"checkpoint \d+ \(%s\) is of job 'mig', not of "
                         r"job 'other'" % re.escape(sp), other, False)

    def test_removed_operator(self):
        """A savepoint with state of an operator the new job lacks: refused
        without --allow-non-restored-state, accepted with it (the other
        operators' state restored exactly)."""
        sp = self.v1_savepoint(extra=True)
        digest = tree_digest(sp)
        job = self.job("less.yaml")
        pat = (r"holds state of operator 'extra', which the job no longer "
               r"has; start with --allow-non-restored-state to drop it")
        self.refused(sp, pat, job, False)
        self.assertEqual(tree_digest(sp), digest)
        before = self.run_dirs()
        r = self.start("allow", "v1", "--allow-non-restored-state", "--from",
                       sp, job)
        self.assertEqual(r.wait(), 0, r.text()[-3000:])
        self.assertIn("holds state of operator 'extra', which the job no "
                      "longer has; it is dropped", r.text())
        self.check_exactly_once(self.tally, r.text())
        chk = self.newest(self.new_run_dir(before))
        self.assertEqual(self.read_states(chk, 1, par=2), self.oracle())
        rc, out, _ = weir("state", "ls", "--json", chk)
        self.assertEqual(sorted(o["id"] for o in json.loads(out)["operators"]),
                         ["count", "sink", "src"])


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1:], verbosity=2)
