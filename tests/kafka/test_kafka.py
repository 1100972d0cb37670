#!/usr/bin/python3
"""Kafka connectors end to end, on librdkafka's mock cluster.

Every test starts `kafka_mock serve` (a mock cluster of 3 brokers inside
that helper process), runs a job under the real `weir run` supervisor
against its bootstrap address, and reads the output back with `kafka_mock
consume` or with kcat. The input is deterministic (kafka_mock's formula,
repeated in mock_key() below), so the oracles compute what the output must
be without sharing code with Weir.

Transactions: librdkafka's mock cluster accepts transactional requests but
writes no transaction markers, so a read_committed consumer also sees the
records of aborted transactions (`kafka_mock probe-txn` detects this). On
such a cluster the transactional kill loop checks at-least-once and that
every duplicate is an exact replay; on a cluster that hides aborted
records (KAFKA_BROKERS pointing at a real broker is not wired up here) it
would check exactly-once.

Environment: WEIR, WEIR_PLUGIN_DIR, KAFKA_MOCK, WEIR_SOURCE_DIR.
"""
import collections
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
MOCK = os.environ.get("KAFKA_MOCK", "kafka_mock")
SRC = os.environ.get("WEIR_SOURCE_DIR",
                     os.path.join(os.path.dirname(__file__), "..", ".."))
SEED = int(os.environ.get("WEIR_SEED", "20261121"))
TS0 = 1767225600000


def tail(text):
    """The end of a job log without the metric lines."""
    lines = [l for l in text.splitlines() if "] metric " not in l]
    sup = [l for l in lines if "[supervisor]" in l or "restoring" in l]
    return "\n".join(sup[-20:] + ["..."] + lines[-25:])


def mock_key(i, keys):
    return "u%d" % ((i * 2654435761) % 2**32 % keys)


def tally(n, keys):
    t = collections.Counter()
    for i in range(n):
        t[mock_key(i, keys)] += 1
    return t


class Mock:
    """A running `kafka_mock serve`; the cluster lives until stop()."""

    def __init__(self, topics, produce=None, fail_produce=0):
        args = [MOCK, "serve", "--fail-produce", str(fail_produce)]
        for t in topics:
            args += ["--topic", t]
        if produce:
            args += ["--produce", produce]
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.bootstrap = None
        deadline = time.time() + 60
        while time.time() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("kafka_mock exited")
            if line.startswith("bootstrap="):
                self.bootstrap = line.strip().split("=", 1)[1]
            if line.strip() == "ready":
                return
        raise RuntimeError("kafka_mock not ready")

    def consume(self, topic, read_committed=True):
        args = [MOCK, "consume", self.bootstrap, topic]
        if read_committed:
            args.append("--read-committed")
        out = subprocess.run(args, capture_output=True, text=True, timeout=60,
                             check=True).stdout
        return [json.loads(line) for line in out.splitlines()]

    def committed(self, group, topic):
        out = subprocess.run([MOCK, "committed", self.bootstrap, group, topic],
                             capture_output=True, text=True, timeout=30,
                             check=True).stdout
        return {int(k): v for k, v in json.loads(out).items()}

    def hides_aborted(self, topic):
        out = subprocess.run([MOCK, "probe-txn", self.bootstrap, topic],
                             capture_output=True, text=True, timeout=30,
                             check=True).stdout
        return "hides_aborted=1" in out

    def kcat(self, *args, stdin=None):
        return subprocess.run(["kcat", "-b", self.bootstrap, "-q"] + list(args),
                              input=stdin, capture_output=True, text=True,
                              timeout=60, check=True).stdout

    def stop(self):
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Job:
    """A supervised `weir run` whose log is collected in a file."""

    def __init__(self, d, yaml_text, env=None, name="job"):
        self.path = os.path.join(d, name + ".yaml")
        with open(self.path, "w") as f:
            f.write(yaml_text)
        self.log_path = os.path.join(d, name + ".log")
        self.log = open(self.log_path, "w")
        e = dict(os.environ)
        e.update(env or {})
        self.p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS, self.path],
                                  stdout=self.log, stderr=self.log, env=e)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def worker(self):
        pids = re.findall(r"worker (\d+) started", self.text())
        return int(pids[-1]) if pids else None

    def wait(self, timeout=90):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.log.close()


def header(d, job, interval="200ms"):
    return ("job: %s\n"
            "checkpoint: {interval: %s, dir: '%s/ckpt', retain: 3}\n"
            "restart: {strategy: fixed_delay, attempts: 1000, delay: 0ms}\n"
            "state: {dir: '%s/state'}\n"
            "operators:\n" % (job, interval, d, d))


def source(bs, topics="[in]", par=1, extra=""):
    return ("  - id: src\n    type: kafka_source\n    parallelism: %d\n"
            "    config: {brokers: '%s', topics: %s, start: earliest,"
            " stop: latest%s}\n" % (par, bs, topics, extra))


COUNT = ("  - id: count\n    type: count\n    parallelism: 2\n"
         "    inputs: [{from: src, partition: key}]\n")


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-kafka-")
        self.mock = None

    def tearDown(self):
        if self.mock:
            self.mock.stop()
        shutil.rmtree(self.d, ignore_errors=True)

    def run_job(self, yaml_text, env=None, name="job", timeout=90):
        job = Job(self.d, yaml_text, env, name)
        rc = job.wait(timeout)
        return rc, job.text()

    def kill_loop(self, yaml_text, kills, seed, pause=(0.15, 0.4)):
        rng = random.Random(seed)
        job = Job(self.d, yaml_text)
        done = 0
        deadline = time.time() + 40
        while done < kills and time.time() < deadline:
            time.sleep(rng.uniform(*pause))
            if job.p.poll() is not None:
                break
            pid = job.worker()
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                done += 1
            except ProcessLookupError:
                pass
        rc = job.wait(90)
        return rc, job.text(), done

    def counts_of(self, records):
        seen = collections.defaultdict(list)
        for r in records:
            v = json.loads(r["value"])
            self.assertEqual(v["key"], r["key"], r)
            seen[r["key"]].append(v["count"])
        return seen


class Roundtrip(Base):
    def test_three_partitions_parallelism_two(self):
        """3 partitions read by 2 subtasks (p % 2) and written back by 2
        sink subtasks: kcat reads every input record once, with its key and
        timestamp; the group's committed offsets are the end offsets."""
        n, keys = 3000, 50
        self.mock = Mock(["in:3", "out:3"], "in:%d:%d" % (n, keys))
        bs = self.mock.bootstrap
        y = header(self.d, "rt") + source(bs, par=2, extra=", group_id: rt") + (
            "  - id: sink\n    type: kafka_sink\n    parallelism: 2\n"
            "    inputs: [{from: src, partition: rebalance}]\n"
            "    config: {brokers: '%s', topic: out}\n" % bs)
        rc, text = self.run_job(y)
        self.assertEqual(rc, 0, tail(text))
        self.assertIn("subtask 0 of 2 reads 2 partition(s)", text)
        self.assertIn("subtask 1 of 2 reads 1 partition(s)", text)
        out = self.mock.kcat("-C", "-t", "out", "-e", "-J")
        got = collections.Counter()
        for line in out.splitlines():
            m = json.loads(line)
            v = json.loads(m["payload"])
            self.assertEqual(m["key"], v["user"], line)
            self.assertEqual(m["ts"], v["ts"], line)
            got[(v["i"], v["user"], v["ts"])] += 1
        want = collections.Counter((i, mock_key(i, keys), TS0 + i)
                                   for i in range(n))
        self.assertEqual(got, want)
        self.assertEqual(self.mock.committed("rt", "in"),
                         {0: 1000, 1: 1000, 2: 1000})

    def test_regex_topics_and_msgpack(self):
        """A ^regex picks both topics; format msgpack passes values through
        a msgpack sink and source unchanged; key_field sets the key."""
        n, keys = 600, 7
        self.mock = Mock(["in-a:2", "in-b:1", "mid:2", "out:1", "other:1"],
                         "in-a:%d:%d" % (n, keys))
        bs = self.mock.bootstrap
        self.mock.kcat("-P", "-t", "in-b", "-k", "x",
                       stdin="".join('{"user": "b%d", "i": %d}\n' % (i % 3, i)
                                     for i in range(30)))
        y1 = header(self.d, "re1") + source(
            bs, topics="'^in-.*'", extra=", key_field: user") + (
            "  - id: sink\n    type: kafka_sink\n    inputs: [src]\n"
            "    config: {brokers: '%s', topic: mid, format: msgpack}\n" % bs)
        rc, text = self.run_job(y1, name="re1")
        self.assertEqual(rc, 0, tail(text))
        y2 = header(self.d, "re2") + source(
            bs, topics="[mid]", extra=", format: msgpack") + (
            "  - id: sink\n    type: kafka_sink\n    inputs: [src]\n"
            "    config: {brokers: '%s', topic: out}\n" % bs)
        rc, text = self.run_job(y2, name="re2")
        self.assertEqual(rc, 0, tail(text))
        recs = self.mock.consume("out")
        got = collections.Counter((r["key"], json.loads(r["value"])["i"])
                                  for r in recs)
        want = collections.Counter((mock_key(i, keys), i) for i in range(n))
        want.update(("b%d" % (i % 3), i) for i in range(30))
        self.assertEqual(got, want)


class Start(Base):
    def test_committed_offsets_resume(self):
        """A second run with start=committed and the same group reads only
        what was produced after the first run (kcat as the producer)."""
        self.mock = Mock(["in:2", "out:1"], "in:400:5")
        bs = self.mock.bootstrap

        def job(name):
            return header(self.d, name) + (
                "  - id: src\n    type: kafka_source\n"
                "    config: {brokers: '%s', topics: in, group_id: g1,"
                " start: committed, stop: latest}\n"
                "  - id: sink\n    type: kafka_sink\n    inputs: [src]\n"
                "    config: {brokers: '%s', topic: out}\n" % (bs, bs))
        rc, text = self.run_job(job("c1"), name="c1")
        self.assertEqual(rc, 0, tail(text))
        self.assertEqual(len(self.mock.consume("out")), 400)
        self.assertEqual(self.mock.committed("g1", "in"), {0: 200, 1: 200})
        self.mock.kcat("-P", "-t", "in", "-p", "1",
                       stdin="".join('{"user":"new","i":%d}\n' % (1000 + i)
                                     for i in range(25)))
        rc, text = self.run_job(job("c2"), name="c2")
        self.assertEqual(rc, 0, tail(text))
        recs = self.mock.consume("out")
        self.assertEqual(len(recs), 425)
        new = sorted(json.loads(r["value"])["i"] for r in recs
                     if json.loads(r["value"])["i"] >= 1000)
        self.assertEqual(new, list(range(1000, 1025)))
        self.assertEqual(self.mock.committed("g1", "in"), {0: 200, 1: 225})


class Config(Base):
    def sink_job(self, bs, sink_extra="", topics="[in]"):
        return ("job: cfg\noperators:\n" + source(bs, topics=topics) +
                "  - id: sink\n    type: kafka_sink\n    inputs: [src]\n"
                "    config: {brokers: '%s', topic: out%s}\n" % (bs, sink_extra))

    def test_bad_rdkafka_key(self):
        """An unknown librdkafka property fails open() with a message
        naming the operator and the key; `weir validate` cannot know it."""
        self.mock = Mock(["in:1", "out:1"], "in:10:2")
        y = self.sink_job(self.mock.bootstrap,
                          ", rdkafka: {linger.ms: 5, no.such.property: 1}")
        path = os.path.join(self.d, "v.yaml")
        with open(path, "w") as f:
            f.write(y)
        v = subprocess.run([WEIR, "validate", "--dir", PLUGINS, path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        rc, text = self.run_job(y)
        self.assertEqual(rc, 1, tail(text))
        self.assertIn("kafka_sink: rdkafka.no.such.property:", text)
        self.assertIn("No such configuration property", text)

    def test_reserved_key_and_missing_topic(self):
        self.mock = Mock(["in:1", "out:1"], "in:10:2")
        bs = self.mock.bootstrap
        rc, text = self.run_job(self.sink_job(
            bs, ", rdkafka: {bootstrap.servers: 'x:1'}"), name="r1")
        self.assertEqual(rc, 1, tail(text))
        self.assertIn("kafka_sink: rdkafka.bootstrap.servers: set by the "
                      "connector", text)
        rc, text = self.run_job(self.sink_job(bs, topics="[in, nope]"),
                                name="r2")
        self.assertEqual(rc, 1, tail(text))
        self.assertIn("kafka_source: topics: topic 'nope' does not exist", text)


    def test_undeliverable_records_fail_the_job(self):
        """A record the broker refuses (an injected produce error) fails
        the sink with the partition and the reason, not a silent loss."""
        self.mock = Mock(["in:1", "out:1"], "in:20:2", fail_produce=3)
        bs = self.mock.bootstrap
        rc, text = self.run_job(
            "job: ud\nrestart: {strategy: none}\noperators:\n" + source(bs) +
            "  - id: sink\n    type: kafka_sink\n    inputs: [src]\n"
            "    config: {brokers: '%s', topic: out}\n" % bs)
        self.assertNotEqual(rc, 0, tail(text))
        self.assertIn("message(s) were not delivered; first: out[0]: Broker:"
                      " Message size too large", text,
                      tail(text))


class Restore(Base):
    def test_kill_loop_source_offsets_exact(self):
        """kafka_source -> count -> file_sink(commit: checkpoint) killed with
        SIGKILL: the restored offsets are exact, so every key's committed
        counts are 1..n exactly once."""
        n, keys = 24000, 300
        self.mock = Mock(["in:3"], "in:%d:%d" % (n, keys))
        y = header(self.d, "rs", "100ms") + source(
            self.mock.bootstrap, extra=", rate: 6000, batch: 64") + COUNT + (
            "  - id: sink\n    type: file_sink\n    parallelism: 2\n"
            "    inputs: [{from: count, partition: rebalance}]\n"
            "    config: {path: '%s/out', commit: checkpoint}\n" % self.d)
        rc, text, kills = self.kill_loop(y, 5, SEED, pause=(0.5, 1.2))
        self.assertEqual(rc, 0, tail(text))
        self.assertGreaterEqual(kills, 3, "too few kills landed")
        self.assertTrue(re.search(r"restoring checkpoint \d+", text), tail(text))
        seen = collections.defaultdict(list)
        for part in glob.glob(os.path.join(self.d, "out", "part-*.jsonl")):
            with open(part) as f:
                for line in f:
                    r = json.loads(line)
                    seen[r["key"]].append(r["value"]["count"])
        want = tally(n, keys)
        self.assertEqual(sorted(seen), sorted(want))
        for k, c in want.items():
            self.assertEqual(sorted(seen[k]), list(range(1, c + 1)), k)


class Transactions(Base):
    def job(self, rate):
        return header(self.d, "tx", "100ms") + source(
            self.mock.bootstrap, extra=", rate: %d, batch: 64" % rate) + COUNT + (
            "  - id: sink\n    type: kafka_sink\n    parallelism: 2\n"
            "    inputs: [{from: count, partition: rebalance}]\n"
            "    config: {brokers: '%s', topic: out, commit: checkpoint,"
            " transactional_id_prefix: t1}\n" % self.mock.bootstrap)

    def check(self, n, keys, strict):
        seen = self.counts_of(self.mock.consume("out", read_committed=True))
        want = tally(n, keys)
        self.assertEqual(sorted(seen), sorted(want))
        for k, c in want.items():
            if strict:
                self.assertEqual(sorted(seen[k]), list(range(1, c + 1)), k)
            else:
                # Aborted transactions stay visible on the mock cluster:
                # nothing may be lost and nothing invented.
                self.assertEqual(set(seen[k]), set(range(1, c + 1)), k)

    def test_kill_loop_transactional_sink(self):
        """kafka_source -> count -> kafka_sink(commit: checkpoint) killed
        with SIGKILL, read with isolation.level=read_committed."""
        n, keys = 24000, 300
        self.mock = Mock(["in:3", "out:3", "probe:1"], "in:%d:%d" % (n, keys))
        strict = self.mock.hides_aborted("probe")
        # A transactional worker needs about a second to its first
        # checkpoint (init_transactions for every producer of the pool).
        rc, text, kills = self.kill_loop(self.job(4000), 5, SEED + 1,
                                         pause=(0.6, 1.4))
        self.assertEqual(rc, 0, tail(text))
        self.assertGreaterEqual(kills, 3, "too few kills landed")
        self.assertTrue(re.search(r"restoring checkpoint \d+", text), tail(text))
        self.check(n, keys, strict)

    def test_crash_before_notify(self):
        """A worker that dies after a checkpoint completed and before the
        sink committed its transaction: the restart warns that the pending
        transaction could not be resumed, and the job still finishes."""
        n, keys = 6000, 50
        self.mock = Mock(["in:3", "out:3"], "in:%d:%d" % (n, keys))
        rc, text = self.run_job(self.job(3000),
                                env={"WEIR_CRASH_AT": "before_notify:3"})
        self.assertEqual(rc, 0, tail(text))
        self.assertIn("exited with code 86", text)
        self.assertRegex(text, r"kafka_sink: the transaction of checkpoint 3 "
                               r"\(t1-sink-[01]-\d\) was pending in restored "
                               r"checkpoint 3")
        self.check(n, keys, strict=False)


class Example(Base):
    def test_clicks_example(self):
        """examples/kafka/clicks.yaml with the mock's address: clicks.jsonl
        loaded with kcat, the counts read back with kcat and checked by the
        clicks example's own oracle."""
        self.mock = Mock(["clicks:3", "clicks-counts:2"])
        with open(os.path.join(SRC, "examples", "clicks", "clicks.jsonl")) as f:
            self.mock.kcat("-P", "-t", "clicks", stdin=f.read())
        with open(os.path.join(SRC, "examples", "kafka", "clicks.yaml")) as f:
            y = f.read()
        self.assertIn("localhost:9092", y)
        y = y.replace("localhost:9092", self.mock.bootstrap)
        y = y.replace("./weir-", self.d + "/weir-")
        y = y.replace("stop: never", "stop: latest")
        rc, text = self.run_job(y)
        self.assertEqual(rc, 0, tail(text))
        out = os.path.join(self.d, "counts.jsonl")
        with open(out, "w") as f:
            for line in self.mock.kcat("-C", "-t", "clicks-counts", "-e", "-J",
                                       "-X", "isolation.level=read_committed"
                                       ).splitlines():
                m = json.loads(line)
                f.write(json.dumps({"key": m["key"],
                                    "value": json.loads(m["payload"])}) + "\n")
        chk = subprocess.run(
            [sys.executable, os.path.join(SRC, "examples", "clicks",
                                          "expected.py"),
             os.path.join(SRC, "examples", "clicks", "clicks.jsonl"),
             "--check", out], capture_output=True, text=True, timeout=60)
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
