#!/usr/bin/python3
"""Operator chaining with real `weir run` processes.

An operator whose only input is a forward edge from an operator of equal
parallelism, that edge being the producer's only output, runs in the
producer's threads (runtime/plan.h: plan_chainable). These tests check that
a chained job computes what the same job computes with `chain: false` and
with `runtime.chaining: false`, and what this script computes from the
input on its own; that the start log and `weir ctl status` show the chain;
that the jobs the rule excludes are not chained; that watermarks and
event-time timers keep their order through a chain (the window operator);
and that exactly-once holds with a chained two-phase-commit sink under a
SIGKILL loop and at the sink's crash points.

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR, EO_DIR (the folder of
test_exactly_once.py), WINDOW_DIR (the folder of e2e_window.py),
WEIR_ASYNCOP_DIR (the asyncop test plugin's folder).
"""
import collections
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ.get("EO_DIR", ""))
sys.path.insert(0, os.environ.get("WINDOW_DIR", ""))
import test_exactly_once as eo  # noqa: E402
import e2e_window  # noqa: E402

WEIR = os.environ.get("WEIR", "weir")
# The chain log lines are INFO; so are the supervisor's (eo.Job inherits).
os.environ["WEIR_LOG"] = "info"
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
ASYNCOP = os.environ.get("WEIR_ASYNCOP_DIR", "")

# The typical job: count -> sink is chainable (forward, both p=2).
COUNT_JOB = """\
job: ch
{runtime}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user}}
  - id: count
    type: count
    parallelism: 2
    inputs: [{{from: src, partition: key}}]
  - id: sink
    type: file_sink
    parallelism: 2
    inputs: [{{from: count, partition: forward}}]
    config: {{path: '{d}/out/o.jsonl'}}
{sink_extra}
"""


def env():
    e = dict(os.environ)
    e["WEIR_LOG"] = "info"
    e.pop("WEIR_CRASH_AT", None)
    return e


def run(d, yaml_text, timeout=60):
    path = os.path.join(d, "job.yaml")
    with open(path, "w") as f:
        f.write(yaml_text)
    p = subprocess.run([WEIR, "run", "--no-supervisor", "--dir", PLUGINS,
                        path], capture_output=True, text=True,
                       timeout=timeout, env=env(), cwd=d)
    return p.returncode, p.stderr + p.stdout


def chains(text):
    return re.findall(r"chain: (.*?) \(", text)


def out_records(outdir):
    """Every record the sinks wrote, as canonical JSON lines (a multiset)."""
    got = collections.Counter()
    for name in sorted(os.listdir(outdir)):
        if name.startswith(".") or not name.endswith(".jsonl"):
            continue  # the sink's lock file
        with open(os.path.join(outdir, name)) as f:
            for line in f:
                if line.strip():
                    got[json.dumps(json.loads(line), sort_keys=True)] += 1
    return got


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-chain-")

    def tearDown(self):
        shutil.rmtree(self.d, ignore_errors=True)

    def fresh(self, name):
        d = os.path.join(self.d, name)
        os.makedirs(d)
        return d


class CountJob(Base):
    def run_count(self, name, runtime="", sink_extra=""):
        d = self.fresh(name)
        tally = eo.write_input(os.path.join(d, "in.jsonl"), 20000, 150, 11)
        rc, text = run(d, COUNT_JOB.format(d=d, runtime=runtime,
                                           sink_extra=sink_extra))
        self.assertEqual(rc, 0, text[-3000:])
        return tally, out_records(os.path.join(d, "out")), text

    def check_counts(self, tally, got, text):
        """Per key exactly the counts 1..n, n its records in the input."""
        seen = {}
        for line, n in got.items():
            r = json.loads(line)
            seen.setdefault(r["key"], []).extend([r["value"]["count"]] * n)
        self.assertEqual(sorted(seen), sorted(tally), text[-2000:])
        for k, n in tally.items():
            self.assertEqual(sorted(seen[k]), list(range(1, n + 1)), k)

    def test_chained_equals_unchained_and_expectation(self):
        tally, chained, text = self.run_count("chained")
        self.assertEqual(chains(text), ["count -> sink"], text[-3000:])
        self.check_counts(tally, chained, text)
        # Records are still counted per operator and subtask: what each
        # count subtask emitted, its chained sink subtask received.
        ends = dict(re.findall(r"\[worker\] (\w+#\d): (\d+ records in, \d+ "
                               r"out)", text))
        total = 0
        for i in (0, 1):
            c_in, c_out = re.findall(r"\d+", ends["count#%d" % i])
            s_in, s_out = re.findall(r"\d+", ends["sink#%d" % i])
            self.assertEqual(c_in, c_out)
            self.assertEqual(s_in, c_out)
            self.assertEqual(s_out, "0")
            total += int(s_in)
        self.assertEqual(total, sum(tally.values()))
        t2, opted_out, text2 = self.run_count("opt_out",
                                              sink_extra="    chain: false")
        self.assertEqual(chains(text2), [], text2[-3000:])
        self.assertEqual(t2, tally)
        self.assertEqual(chained, opted_out)
        t3, off, text3 = self.run_count("off",
                                        runtime="runtime: {chaining: false}")
        self.assertEqual(chains(text3), [], text3[-3000:])
        self.assertEqual(chained, off)

    def test_upstream_chain_false(self):
        """`chain: false` on the producer keeps its consumer out too."""
        d = self.fresh("up")
        text = COUNT_JOB.format(d=d, runtime="", sink_extra="").replace(
            "    type: count\n", "    type: count\n    chain: false\n")
        eo.write_input(os.path.join(d, "in.jsonl"), 100, 5, 1)
        rc, log = run(d, text)
        self.assertEqual(rc, 0, log[-3000:])
        self.assertEqual(chains(log), [], log[-3000:])


GEN = "{{id: {id}, type: gen, parallelism: {p}, config: {{count: 2000}}}}"
DISCARD = "{{id: {id}, type: discard, parallelism: {p}, inputs: [{ins}]}}"


def gen_job(ops):
    return "job: g\noperators:\n" + "".join("  - %s\n" % o for o in ops)


class Eligibility(Base):
    def chains_of(self, name, ops):
        d = self.fresh(name)
        rc, text = run(d, gen_job(ops))
        self.assertEqual(rc, 0, text[-3000:])
        return chains(text)

    def test_forward_equal_parallelism_chains(self):
        ops = [GEN.format(id="a", p=2),
               DISCARD.format(id="b", p=2, ins="{from: a, partition: forward}")]
        self.assertEqual(self.chains_of("fwd", ops), ["a -> b"])

    def test_three_in_a_row(self):
        ops = [GEN.format(id="a", p=1),
               "{id: m, type: count, inputs: [a]}",
               DISCARD.format(id="b", p=1, ins="m")]
        self.assertEqual(self.chains_of("three", ops), ["a -> m -> b"])

    def test_key_edge_not_chained(self):
        ops = [GEN.format(id="a", p=2),
               DISCARD.format(id="b", p=2, ins="{from: a, partition: key}")]
        self.assertEqual(self.chains_of("key", ops), [])

    def test_rebalance_edge_not_chained(self):
        ops = [GEN.format(id="a", p=2),
               DISCARD.format(id="b", p=2,
                              ins="{from: a, partition: rebalance}")]
        self.assertEqual(self.chains_of("rebalance", ops), [])

    def test_different_parallelism_not_chained(self):
        ops = [GEN.format(id="a", p=1),
               DISCARD.format(id="b", p=2, ins="{from: a, partition: rebalance}")]
        self.assertEqual(self.chains_of("par", ops), [])

    def test_two_inputs_not_chained(self):
        ops = [GEN.format(id="a", p=1), GEN.format(id="c", p=1),
               DISCARD.format(id="b", p=1,
                              ins="{from: a, partition: forward}, "
                                  "{from: c, partition: forward}")]
        self.assertEqual(self.chains_of("two_in", ops), [])

    def test_fan_out_not_chained(self):
        ops = [GEN.format(id="a", p=1),
               DISCARD.format(id="b", p=1, ins="{from: a, partition: forward}"),
               DISCARD.format(id="c", p=1, ins="{from: a, partition: forward}")]
        self.assertEqual(self.chains_of("fan_out", ops), [])

    def test_chain_false_honoured(self):
        ops = [GEN.format(id="a", p=1),
               "{id: b, type: discard, chain: false, inputs: [a]}"]
        self.assertEqual(self.chains_of("opt_out", ops), [])

    def test_async_not_chained(self):
        """An asynchronous operator (async_invoke) chains with neither its
        producer nor its consumer, all forward at parallelism 1."""
        d = self.fresh("async")
        with open(os.path.join(d, "in.jsonl"), "w") as f:
            for i in range(200):
                row = {"k": "k%d" % (i % 7), "t": i, "i": i}
                f.write(json.dumps(row) + "\n")
        path = os.path.join(d, "job.yaml")
        with open(path, "w") as f:
            f.write("job: a\noperators:\n"
                    "  - {id: src, type: file_source, config: {path: in.jsonl,"
                    " key_field: k, time_field: t}}\n"
                    "  - {id: aop, type: asyncop, inputs: [src], async: {}}\n"
                    "  - {id: sink, type: file_sink, inputs: [aop],"
                    " config: {path: out.jsonl}}\n")
        p = subprocess.run([WEIR, "run", "--no-supervisor", "--dir", PLUGINS,
                            "--dir", ASYNCOP, path], capture_output=True,
                           text=True, timeout=60, env=env(), cwd=d)
        text = p.stderr + p.stdout
        self.assertEqual(p.returncode, 0, text[-3000:])
        self.assertEqual(chains(text), [], text[-3000:])
        with open(os.path.join(d, "out.jsonl")) as f:
            self.assertEqual(len(f.readlines()), 200)

    def test_chain_must_be_boolean(self):
        d = self.fresh("bad")
        path = os.path.join(d, "job.yaml")
        with open(path, "w") as f:
            f.write(gen_job([GEN.format(id="a", p=1),
                             "{id: b, type: discard, chain: 3, inputs: [a]}"]))
        p = subprocess.run([WEIR, "validate", "--dir", PLUGINS, path],
                           capture_output=True, text=True, env=env())
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("operators[1].chain", p.stderr + p.stdout)


# The window operator behind a forward edge: src -> win -> out all run in
# one thread, and the window's event-time timers fire as the source's
# watermarks arrive through the chain, after the records before them.
WINDOW_JOB = """\
job: wchain
{runtime}
state: {{dir: state}}
operators:
  - id: src
    type: file_source
    config: {{path: input.jsonl, key_field: sensor, time_field: ts}}
    watermarks: {{out_of_orderness: 2s, interval: 50ms, idle_timeout: 0s}}
  - id: win
    type: window
    inputs: [src]
    config: {{kind: {kind}, {conf}}}
  - id: out
    type: file_sink
    inputs: [win]
    config: {{path: out/w.jsonl}}
"""
KINDS = {
    "tumbling": ("size: 10s, aggregate: sum, field: v, allowed_lateness: 5s"),
    "session": ("gap: 3s"),
}


class WindowChain(Base):
    def run_window(self, name, kind, runtime=""):
        d = self.fresh(name)
        rows = e2e_window.readings()
        with open(os.path.join(d, "input.jsonl"), "w") as f:
            for _, _, key, ts, v in rows:
                f.write(json.dumps({"sensor": key, "ts": ts, "v": v}) + "\n")
        rc, text = run(d, WINDOW_JOB.format(runtime=runtime, kind=kind,
                                            conf=KINDS[kind]))
        self.assertEqual(rc, 0, text[-3000:])
        got = collections.Counter()
        with open(os.path.join(d, "out", "w.jsonl")) as f:
            for line in f:
                got[e2e_window.canon(json.loads(line))] += 1
        want = collections.Counter(e2e_window.canon(w) for w in
                                   e2e_window.expected(rows)[kind])
        return got, want, text

    def test_window_through_chain(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                got, want, text = self.run_window(kind, kind)
                self.assertEqual(chains(text), ["src -> win -> out"],
                                 text[-3000:])
                self.assertEqual(got, want, "missing %s, unexpected %s" %
                                 (list((want - got).items())[:3],
                                  list((got - want).items())[:3]))
                off, _, text2 = self.run_window(kind + "_off", kind,
                                                "runtime: {chaining: false}")
                self.assertEqual(chains(text2), [])
                self.assertEqual(got, off)


class Status(Base):
    def test_ctl_status_shows_chain(self):
        d = self.fresh("ctl")
        eo.write_input(os.path.join(d, "in.jsonl"), 30000, 100, 3)
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(eo.JOB.format(d=d, rate=6000, mode="exactly_once",
                                  cache=100000)
                    .replace("partition: rebalance", "partition: forward"))
        log = open(os.path.join(d, "log.txt"), "w")
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS,
                              os.path.join(d, "job.yaml")], stdout=log,
                             stderr=log, env=env())
        try:
            job_dir = os.path.join(d, "ckpt", "eo")
            st, deadline = None, time.time() + 30
            while time.time() < deadline:
                r = subprocess.run([WEIR, "ctl", job_dir, "status", "--json"],
                                   capture_output=True, text=True, env=env())
                if r.returncode == 0:
                    st = json.loads(r.stdout)
                    sink_in = sum(t["records_in"] for t in st.get("tasks", [])
                                  if t["operator"] == "sink")
                    if sink_in > 0:
                        break
                time.sleep(0.2)
            self.assertIsNotNone(st)
            by = {(t["operator"], t["subtask"]): t for t in st["tasks"]}
            self.assertEqual(sorted(by), [("count", 0), ("count", 1),
                                          ("sink", 0), ("sink", 1),
                                          ("src", 0)])
            for i in (0, 1):
                self.assertEqual(by[("sink", i)]["chained_to"], "count")
                self.assertIsNone(by[("count", i)]["chained_to"])
            self.assertIsNone(by[("src", 0)]["chained_to"])
            # Records are still counted per operator.
            self.assertGreater(sum(by[("sink", i)]["records_in"]
                                   for i in (0, 1)), 0, st)
            r = subprocess.run([WEIR, "ctl", job_dir, "status"],
                               capture_output=True, text=True, env=env())
            self.assertRegex(r.stdout, r"sink#0 .*chained to count")
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        with open(os.path.join(d, "log.txt")) as f:
            self.assertIn("chain: count -> sink", f.read())


# A keyed member with a processing-time TTL in the middle of a chain: its
# expiry sweeps and state samples must be serviced by the chain's thread
# while the job runs, not only at the end.
TTL_JOB = """\
job: ttl
checkpoint: {{interval: 200ms, dir: '{d}/ckpt'}}
state: {{dir: '{d}/state', stats_interval: 100ms}}
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user, rate: 2000, batch: 16}}
  - id: count
    type: count
    inputs: [src]
    config: {{ttl: 200ms}}
  - id: sink
    type: file_sink
    inputs: [count]
    config: {{path: '{d}/out', commit: checkpoint}}
"""


class Ttl(Base):
    def test_ttl_sweep_in_chained_member(self):
        d = self.fresh("ttl")
        n = 8000
        with open(os.path.join(d, "in.jsonl"), "w") as f:
            for i in range(n):  # every key once: expired only by sweep
                f.write(json.dumps({"user": "u%d" % i}) + "\n")
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(TTL_JOB.format(d=d))
        log = open(os.path.join(d, "log.txt"), "w")
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS,
                              os.path.join(d, "job.yaml")], stdout=log,
                             stderr=log, env=env())
        try:
            job_dir = os.path.join(d, "ckpt", "ttl")
            swept, deadline = None, time.time() + 30
            while swept is None and time.time() < deadline:
                r = subprocess.run([WEIR, "ctl", job_dir, "status", "--json"],
                                   capture_output=True, text=True, env=env())
                if r.returncode == 0:
                    st = json.loads(r.stdout)
                    by = {t["operator"]: t for t in st.get("tasks", [])}
                    states = by.get("count", {}).get("states", [])
                    if states and states[0]["expired"] > 0:
                        swept = (by["count"], by["src"]["records_out"])
                time.sleep(0.1)
            self.assertIsNotNone(swept, "no expiry seen while running")
            count, src_out = swept
            self.assertEqual(count["chained_to"], "src")
            self.assertLess(src_out, n, "the sweep was seen only at the end")
            self.assertEqual(p.wait(timeout=60), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
        with open(os.path.join(d, "log.txt")) as f:
            text = f.read()
        self.assertIn("chain: src -> count -> sink", text)
        self.assertRegex(text, r"\[count#0\] state 'count' \(ttl 200 ms\): "
                               r".*expired 0 by read, [1-9]\d* by sweep")


class ChainedExactlyOnce(eo.ExactlyOnce):
    """The exactly-once job of tests/exactly_once with its sink chained to
    count (forward instead of rebalance)."""

    test_at_least_once_mode = None
    test_from_checkpoint = None

    def make_job(self, **kw):
        super().make_job(**kw)
        path = os.path.join(self.d, "job.yaml")
        with open(path) as f:
            text = f.read()
        self.assertIn("partition: rebalance", text)
        with open(path, "w") as f:
            f.write(text.replace("partition: rebalance", "partition: forward"))

    def check_exactly_once(self, job):
        self.assertIn("chain: count -> sink", job.text())
        super().check_exactly_once(job)

    def test_from_checkpoint_unchained(self):
        """A chained run killed midway (supervisor and worker, SIGKILL), then
        a run of the same job with `runtime: {chaining: false}` --from its
        newest checkpoint: the checkpoint does not depend on chaining, and
        the two runs together commit every record exactly once."""
        self.make_job(n=30000, rate=15000)
        job = eo.Job(self.d)
        deadline = time.time() + 30
        while len(eo.completed_ids(self.d)) < 3 and time.time() < deadline:
            time.sleep(0.02)
        worker = job.worker()
        job.p.kill()
        job.wait(timeout=10)
        if worker:
            try:
                os.kill(worker, 9)
            except ProcessLookupError:
                pass
        ids = eo.completed_ids(self.d)
        self.assertGreaterEqual(len(ids), 3, job.text()[-3000:])
        self.assertIn("chain: count -> sink", job.text())
        run_dir = [p for p in glob.glob(os.path.join(self.d, "ckpt", "eo", "*"))
                   if os.path.isdir(p)][0]
        chk = os.path.join(run_dir, "chk-%d" % max(ids))
        path = os.path.join(self.d, "job.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("job: eo\n",
                                 "job: eo\nruntime: {chaining: false}\n"))
        p = subprocess.run([WEIR, "run", "--dir", PLUGINS, "--from", chk, path],
                           capture_output=True, text=True, timeout=120,
                           env=env())
        out = p.stderr + p.stdout
        self.assertEqual(p.returncode, 0, out[-3000:])
        self.assertIn("restoring checkpoint %d" % max(ids), out)
        self.assertNotIn("chain:", out)
        super().check_exactly_once(job)

    def test_crash_points(self):
        points = ["barrier_received", "state_snapshotted", "sink_precommit",
                  "sink_commit"]
        for point in points:
            with self.subTest(point=point):
                shutil.rmtree(self.d, ignore_errors=True)
                os.makedirs(self.d)
                self.make_job(n=12000, rate=12000, cache=0)
                job = eo.Job(self.d, env={"WEIR_CRASH_AT": point + ":3"})
                rc = job.wait(timeout=60)
                text = job.text()
                self.assertEqual(rc, 0, text[-3000:])
                self.assertIn("crash point reached", text)
                self.check_exactly_once(job)


if __name__ == "__main__":
    unittest.main(verbosity=2)
