#!/usr/bin/python3
"""ZeroMQ and stdin connectors end to end: real `weir run` supervisors, real
ZeroMQ peers in Python (Debian's python3-zmq and python3-msgpack), real
SIGKILLs.

Every oracle is computed here, by the client, from what it sent: per key the
number of records (so the committed counts must be 1..n) and the set of ids
(each must be committed exactly once). Nothing is shared with the plugins.

Cases (one ctest entry each, `test_zmq_e2e.py Class.test_name`):
  Push.test_push_count_commit      PUSH client -> zmq_source(pull, msgpack)
                                   -> count -> file_sink(commit: checkpoint);
                                   WEIR_ZMQ_MESSAGES messages (default
                                   200000, 1000000 with WEIR_SOAK), rate
                                   printed
  Push.test_fast_peer_disconnects  the same from a C peer faster than the
                                   job, which disconnects right away
  Spool.test_req_retries_kill      REQ clients that resend on timeout ->
                                   spooled REP source with id_field, worker
                                   killed with SIGKILL in a loop: no loss, no
                                   duplicate; old segments deleted
  Spool.test_router_group_commit   the same through ROUTER with concurrent
                                   clients and spool_sync: batch
  Spool.test_back_pressure         max_spool reached without checkpoints:
                                   the REP client gets no answer
  Sub.test_topic_filters           XPUB client, SUB source subscribed to
                                   two prefixes: exactly their messages
  Sink.test_push_to_pull           file_source -> zmq_sink(push) -> Python
                                   PULL, in json, msgpack and multipart
  Sink.test_pub_topic_field        zmq_sink(pub, topic_field) -> Python SUB
  Stdin.test_pipeline              printf ... | weir run (stdin -> count ->
                                   stdout)
  Stdin.test_file_redirect_kill    weir run < file, worker killed: exactly
                                   once from a regular file
  Stdin.test_pipe_restore_refused  a pipe cannot be replayed: the restore
                                   fails with a clear error
  Example.test_orders_and_pipe     examples/zmq as their comments run them

Environment: WEIR (the weir binary), WEIR_PLUGIN_DIR, ZMQ_BURST (the
zmq_burst peer), WEIR_SEED; WEIR_SOAK=N
sends 1M messages in the PUSH case and kills the worker N times (default 6)
in the spool cases.
"""
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import msgpack
import zmq

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
SEED = int(os.environ.get("WEIR_SEED", "20261202"))
SOAK = bool(os.environ.get("WEIR_SOAK"))
# Kills per kill loop: WEIR_SOAK=N makes N (and more messages).
KILLS = max(6, int(os.environ.get("WEIR_SOAK") or 0))


class Job:
    """A supervised `weir run` whose log is collected in a file."""

    def __init__(self, d, yaml_text, stdin=None, stdout=None, name="job"):
        self.yaml = os.path.join(d, name + ".yaml")
        with open(self.yaml, "w") as f:
            f.write(yaml_text)
        self.log_path = os.path.join(d, name + ".log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(
            [WEIR, "run", "--dir", PLUGINS, self.yaml], stdin=stdin,
            stdout=stdout if stdout is not None else self.log,
            stderr=self.log)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def tail(self):
        return self.text()[-4000:]

    def worker(self):
        pids = re.findall(r"worker (\d+) started", self.text())
        return int(pids[-1]) if pids else None

    def wait_for(self, pattern, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.text()):
                return True
            if self.p.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
            self.log.close()


def committed(outdir):
    """The records of the committed part files of a commit=checkpoint
    file_sink."""
    recs = []
    for part in sorted(glob.glob(os.path.join(outdir, "part-*.jsonl"))):
        with open(part) as f:
            recs += [json.loads(line) for line in f]
    return recs


def counts_by_key(recs):
    seen = {}
    for r in recs:
        seen.setdefault(r["key"], []).append(r["value"]["count"])
    return seen


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-zmq-")
        self.zctx = zmq.Context()

    def tearDown(self):
        self.zctx.destroy(linger=0)
        shutil.rmtree(self.d, ignore_errors=True)

    def ep(self, name):
        return "ipc://%s/%s.sock" % (self.d, name)

    def check_counts(self, outdir, tally, job):
        seen = counts_by_key(committed(outdir))
        self.assertEqual(sorted(seen), sorted(tally), job.tail())
        for k, n in tally.items():
            got = sorted(seen[k])
            self.assertEqual(got, list(range(1, n + 1)),
                             "key %s: %d records, committed counts %s...\n%s"
                             % (k, n, got[:20], job.tail()))


# --------------------------------------------------------------------------
# PUSH -> zmq_source -> count -> file_sink (commit: checkpoint)
# --------------------------------------------------------------------------

PUSH_JOB = """\
job: zpush
checkpoint: {{interval: 200ms, dir: '{d}/ckpt'}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: zmq_source
    config: {{endpoint: '{ep}', bind: true, socket: pull, format: msgpack,
              key_field: k, end_message: END}}
  - {{id: count, type: count, parallelism: 2,
     inputs: [{{from: src, partition: key}}]}}
  - {{id: out, type: file_sink, parallelism: 2,
     inputs: [{{from: count, partition: rebalance}}],
     config: {{path: '{d}/out', commit: checkpoint}}}}
"""


class Push(Base):
    def test_push_count_commit(self):
        n = int(os.environ.get("WEIR_ZMQ_MESSAGES",
                               "1000000" if SOAK else "200000"))
        ep = self.ep("in")
        job = Job(self.d, PUSH_JOB.format(d=self.d, ep=ep))
        self.assertTrue(job.wait_for(r"all \d+ subtasks running"), job.tail())
        rng = random.Random(SEED)
        tally = {}
        push = self.zctx.socket(zmq.PUSH)
        push.connect(ep)
        pack = msgpack.Packer()
        t0 = time.time()
        for i in range(n):
            k = "k%d" % rng.randrange(5000)
            tally[k] = tally.get(k, 0) + 1
            push.send(pack.pack({"k": k, "i": i, "pad": "x" * (i % 17)}))
        push.send(b"END")
        sent = time.time() - t0
        rc = job.wait(timeout=120)
        total = time.time() - t0
        push.close(linger=0)
        self.assertEqual(rc, 0, job.tail())
        self.check_counts(os.path.join(self.d, "out"), tally, job)
        self.assertIn("%d accepted" % n, job.text())
        print("\nzmq_source: %d msgpack messages: client sent in %.2f s "
              "(%.0f msg/s); committed by the job after %.2f s (%.0f msg/s "
              "end to end)" % (n, sent, n / sent, total, n / total),
              file=sys.stderr)


    def test_fast_peer_disconnects(self):
        """A PUSH peer that sends faster than the job reads and disconnects
        right after its last message: nothing it sent may be lost (libzmq
        drops what a full receive queue holds from an ipc peer that went
        away, hence rcvhwm: 0 by default)."""
        n, keys = 1000000, 1000
        ep = self.ep("in")
        job = Job(self.d, PUSH_JOB.format(d=self.d, ep=ep))
        self.assertTrue(job.wait_for(r"all \d+ subtasks running"), job.tail())
        t0 = time.time()
        p = subprocess.run([os.environ["ZMQ_BURST"], ep, str(n), str(keys)],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        rc = job.wait(timeout=40)
        total = time.time() - t0
        self.assertEqual(rc, 0, job.tail())
        tally = {"k%d" % k: n // keys for k in range(keys)}
        self.check_counts(os.path.join(self.d, "out"), tally, job)
        print("\nzmq_burst: %d messages sent in %s s; committed by the job "
              "after %.2f s (%.0f msg/s end to end)"
              % (n, p.stdout.decode().strip(), total, n / total),
              file=sys.stderr)


# --------------------------------------------------------------------------
# Spooled REP/ROUTER with retrying REQ clients and a kill loop
# --------------------------------------------------------------------------

SPOOL_JOB = """\
job: zspool
checkpoint: {{interval: 100ms, dir: '{d}/ckpt', retain: 3}}
restart: {{strategy: fixed_delay, attempts: 1000, delay: 0ms}}
state: {{dir: '{d}/state'}}
operators:
  - id: src
    type: zmq_source
    config: {{endpoint: '{ep}', bind: true, socket: {socket}, format: json,
              key_field: k, id_field: id, spool: '{d}/spool',
              spool_sync: {sync}, spool_segment: 64KiB, end_message: END,
              max_spool: {max_spool}}}
  - {{id: ids, type: file_sink, inputs: [src],
     config: {{path: '{d}/out_ids', commit: checkpoint}}}}
  - {{id: count, type: count, parallelism: 2,
     inputs: [{{from: src, partition: key}}]}}
  - {{id: counts, type: file_sink, parallelism: 2,
     inputs: [{{from: count, partition: rebalance}}],
     config: {{path: '{d}/out_counts', commit: checkpoint}}}}
"""


class ReqClient:
    """A REQ client that resends a request whose answer does not come
    within `timeout` ms on a new socket (ZeroMQ's "lazy pirate")."""

    def __init__(self, zctx, ep, timeout=400):
        self.zctx, self.ep, self.timeout = zctx, ep, timeout
        self.resent = 0
        self.sock = None
        self.connect()

    def connect(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.zctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.ep)

    def request(self, data, give_up=None):
        """Sends until answered; returns the answer, or None once
        give_up() is true."""
        while True:
            self.sock.send(data)
            if self.sock.poll(self.timeout):
                return self.sock.recv()
            self.resent += 1
            self.connect()
            if give_up and give_up():
                return None

    def close(self):
        self.sock.close(linger=0)


def spool_messages(n, seed, keys=40):
    rng = random.Random(seed)
    msgs, tally = [], {}
    for i in range(n):
        k = "k%d" % rng.randrange(keys)
        tally[k] = tally.get(k, 0) + 1
        msgs.append(json.dumps({"id": "m%d" % i, "k": k, "i": i,
                                "pad": "p" * 150}).encode())
    return msgs, tally


class Spool(Base):
    def start(self, socket, sync="always", max_spool="1GiB"):
        self.ep_in = self.ep("in")
        return Job(self.d, SPOOL_JOB.format(d=self.d, ep=self.ep_in,
                                            socket=socket, sync=sync,
                                            max_spool=max_spool))

    def kill_loop(self, job, stop, seed, max_kills):
        """Kills the worker at random moments until stop is set."""
        rng = random.Random(seed)
        killed = set()
        self.kills = 0
        while not stop.is_set() and self.kills < max_kills:
            time.sleep(rng.uniform(0.3, 0.7))
            pid = job.worker()
            if stop.is_set() or pid is None or pid in killed or \
                    job.p.poll() is not None:
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                self.kills += 1
            except ProcessLookupError:
                pass

    def run_clients(self, job, msgs, clients):
        """Sends msgs over `clients` concurrent REQ clients while the worker
        is killed; then the end message. Returns the number of resends."""
        stop = threading.Event()
        self.kills = 0
        killer = threading.Thread(target=self.kill_loop,
                                  args=(job, stop, SEED, KILLS))
        killer.start()
        answers, resent, lock = [], [0], threading.Lock()

        def client(part):
            c = ReqClient(self.zctx, self.ep_in)
            for i, m in enumerate(part):
                # Spread the messages over the kills: a fast job must not
                # take all of them before the killer's first shots.
                need, t0 = i * KILLS // len(part), time.monotonic()
                while self.kills < need and killer.is_alive() and \
                        time.monotonic() - t0 < 10:
                    time.sleep(0.01)
                a = c.request(m)
                with lock:
                    answers.append(a)
            with lock:
                resent[0] += c.resent
            c.close()

        threads = [threading.Thread(target=client, args=(msgs[i::clients],))
                   for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        stop.set()
        killer.join()
        self.assertTrue(all(a == b"ok" for a in answers),
                        set(answers) - {b"ok"})
        self.assertEqual(len(answers), len(msgs))
        # The end: resent until answered or the job ended (its answer may be
        # lost, and a job that ended answers no more).
        c = ReqClient(self.zctx, self.ep_in)
        c.request(b"END", give_up=lambda: job.p.poll() is not None)
        c.close()
        return resent[0]

    def check_exactly_once(self, job, msgs, tally):
        recs = committed(os.path.join(self.d, "out_ids"))
        ids = [r["value"]["id"] for r in recs]
        dups = len(ids) - len(set(ids))
        want = {json.loads(m)["id"] for m in msgs}
        lost = want - set(ids)
        self.assertEqual(dups, 0, "%d duplicate ids\n%s" % (dups, job.tail()))
        self.assertEqual(lost, set(), "%d ids lost\n%s"
                         % (len(lost), job.tail()))
        self.check_counts(os.path.join(self.d, "out_counts"), tally, job)

    def check_spool_bounded(self):
        segs = glob.glob(os.path.join(self.d, "spool", "0", "seg-*.log"))
        # ~100 KiB per 500 messages in 64 KiB segments; a completed final
        # checkpoint leaves the newest one or two.
        self.assertLessEqual(len(segs), 2, sorted(segs))

    def test_req_retries_kill(self):
        msgs, tally = spool_messages(250 * KILLS, SEED)
        job = self.start("rep")
        self.assertTrue(job.wait_for(r"all \d+ subtasks running"), job.tail())
        resent = self.run_clients(job, msgs, 1)
        rc = job.wait(timeout=60)
        self.assertEqual(rc, 0, job.tail())
        self.assertGreaterEqual(self.kills, 3, "too few kills landed")
        self.assertGreater(len(re.findall(r"replaying from segment",
                                          job.text())), 0, job.tail())
        self.check_exactly_once(job, msgs, tally)
        self.check_spool_bounded()
        print("\nREP: %d kills, %d resends, %s" % (
            self.kills, resent,
            re.findall(r"\d+ duplicate\(s\)", job.text())), file=sys.stderr)

    def test_router_group_commit(self):
        msgs, tally = spool_messages(1000 * KILLS, SEED + 1)
        job = self.start("router", sync="batch")
        self.assertTrue(job.wait_for(r"all \d+ subtasks running"), job.tail())
        resent = self.run_clients(job, msgs, 4)
        rc = job.wait(timeout=60)
        self.assertEqual(rc, 0, job.tail())
        self.assertGreaterEqual(self.kills, 3, "too few kills landed")
        self.check_exactly_once(job, msgs, tally)
        self.check_spool_bounded()
        print("\nROUTER: %d kills, %d resends" % (self.kills, resent),
              file=sys.stderr)

    def test_back_pressure(self):
        """Without completed checkpoints the spool fills up to max_spool;
        then requests are not answered until the job is stopped."""
        msgs, _ = spool_messages(2000, SEED + 2)
        text = SPOOL_JOB.format(d=self.d, ep=self.ep("in"), socket="rep",
                                sync="batch", max_spool="64KiB")
        text = text.replace("interval: 100ms", "interval: 0s")
        self.ep_in = self.ep("in")
        job = Job(self.d, text)
        self.assertTrue(job.wait_for(r"all \d+ subtasks running"), job.tail())
        c = ReqClient(self.zctx, self.ep_in, timeout=1500)
        answered = 0
        for m in msgs:
            c.sock.send(m)
            if not c.sock.poll(1500):
                break
            self.assertEqual(c.sock.recv(), b"ok")
            answered += 1
        c.close()
        self.assertLess(answered, len(msgs), "never stopped answering")
        # Each record is ~200 bytes: the spool stopped at about 64 KiB.
        self.assertGreater(answered, 64 * 1024 // 260)
        self.assertLess(answered, 64 * 1024 // 180 + 2)
        self.assertTrue(job.wait_for(r"not receiving until a checkpoint "
                                     r"completes"), job.tail())
        job.p.send_signal(signal.SIGTERM)
        self.assertEqual(job.wait(timeout=30), 0, job.tail())


# --------------------------------------------------------------------------
# SUB with topic filters
# --------------------------------------------------------------------------

SUB_JOB = """\
job: zsub
checkpoint: {{interval: 200ms, dir: '{d}/ckpt'}}
operators:
  - id: src
    type: zmq_source
    config: {{endpoint: '{ep}', socket: sub, subscribe: [alpha, 'ga'],
              format: json, key_field: k, end_message: END}}
  - {{id: out, type: file_sink, inputs: [src],
     config: {{path: '{d}/out', commit: checkpoint}}}}
"""


class Sub(Base):
    def test_topic_filters(self):
        ep = self.ep("pub")
        pub = self.zctx.socket(zmq.XPUB)
        pub.bind(ep)
        job = Job(self.d, SUB_JOB.format(d=self.d, ep=ep))
        # XPUB hears the subscriptions: publish once both arrived.
        subs = set()
        deadline = time.time() + 20
        while len(subs) < 2 and time.time() < deadline:
            if pub.poll(100):
                subs.add(pub.recv())
        self.assertEqual(subs, {b"\x01alpha", b"\x01ga"}, job.tail())
        want = []
        topics = ["alpha", "alphabet", "beta", "gamma", "g", "delta"]
        for i in range(3000):
            t = topics[i % len(topics)]
            body = json.dumps({"k": "k%d" % (i % 7), "i": i, "t": t})
            pub.send_multipart([t.encode(), body.encode()])
            if t.startswith("alpha") or t.startswith("ga"):
                want.append(i)
        pub.send_multipart([b"alpha", b"END"])
        rc = job.wait(timeout=60)
        pub.close(linger=0)
        self.assertEqual(rc, 0, job.tail())
        got = sorted(r["value"]["i"] for r in committed(
            os.path.join(self.d, "out")))
        self.assertEqual(got, want)


# --------------------------------------------------------------------------
# zmq_sink
# --------------------------------------------------------------------------

SINK_JOB = """\
job: zsink
operators:
  - id: src
    type: file_source
    config: {{path: '{d}/in.jsonl', key_field: user, time_field: ts}}
  - id: out
    type: zmq_sink
    inputs: [src]
    config: {{endpoint: '{ep}', socket: {socket}, format: {fmt}{extra}}}
"""


class Sink(Base):
    def write_input(self, n):
        rows = []
        with open(os.path.join(self.d, "in.jsonl"), "w") as f:
            for i in range(n):
                r = {"user": "u%d" % (i % 13), "ts": 1767225600000 + i,
                     "i": i, "x": 0.5 * i, "tag": ["a", "b"][i % 2]}
                rows.append(r)
                f.write(json.dumps(r) + "\n")
        return rows

    def run_sink(self, socket, fmt, sock, extra=""):
        job = Job(self.d, SINK_JOB.format(d=self.d, ep=self.ep("out"),
                                          socket=socket, fmt=fmt,
                                          extra=extra),
                  name="sink-" + fmt)
        frames = []
        while True:
            if not sock.poll(20000):
                break
            frames.append(sock.recv_multipart())
            if len(frames) == self.n:
                break
        self.assertEqual(job.wait(timeout=60), 0, job.tail())
        return frames

    def test_push_to_pull(self):
        self.n = 5000
        rows = self.write_input(self.n)
        for fmt in ("json", "msgpack", "multipart"):
            with self.subTest(fmt=fmt):
                pull = self.zctx.socket(zmq.PULL)
                # A full receive queue drops what is still in flight when
                # the worker disconnects at the end (zsink.c).
                pull.setsockopt(zmq.RCVHWM, 0)
                pull.bind(self.ep("out"))
                frames = self.run_sink("push", fmt, pull)
                pull.close(linger=0)
                self.assertEqual(len(frames), self.n)
                for r, f in zip(rows, frames):
                    if fmt == "json":
                        self.assertEqual(json.loads(f[0]), r)
                    elif fmt == "msgpack":
                        self.assertEqual(msgpack.unpackb(f[0]), r)
                    else:
                        key, ts, val = f
                        self.assertEqual(key.decode(), r["user"])
                        self.assertEqual(struct.unpack(">q", ts)[0], r["ts"])
                        self.assertEqual(msgpack.unpackb(val), r)

    def test_pub_topic_field(self):
        self.n = 2000
        rows = self.write_input(self.n)
        sub = self.zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"b")
        sub.bind(self.ep("out"))
        # PUB drops what is sent before the subscription arrives: the input
        # is held back by a rate so that the first records find it.
        frames = []
        self.n = sum(1 for r in rows if r["tag"] == "b")
        job = Job(self.d, SINK_JOB.format(
            d=self.d, ep=self.ep("out"), socket="pub", fmt="json",
            extra=", topic_field: tag").replace(
                "time_field: ts}", "time_field: ts, rate: 4000}"))
        while len(frames) < self.n and sub.poll(20000):
            frames.append(sub.recv_multipart())
        self.assertEqual(job.wait(timeout=60), 0, job.tail())
        sub.close(linger=0)
        got = [json.loads(f[1]) for f in frames]
        self.assertTrue(all(f[0] == b"b" for f in frames))
        want = [r for r in rows if r["tag"] == "b"]
        # Records sent before the subscription reached PUB are dropped
        # (documented); everything after arrives, in order.
        self.assertGreater(len(got), len(want) * 9 // 10)
        self.assertEqual(got, want[len(want) - len(got):])


# --------------------------------------------------------------------------
# stdin
# --------------------------------------------------------------------------

STDIN_JOB = """\
job: zstdin
checkpoint: {{interval: {interval}, dir: '{d}/ckpt'}}
restart: {{strategy: fixed_delay, attempts: {attempts}, delay: 0ms}}
state: {{dir: '{d}/state'}}
operators:
  - {{id: in, type: stdin, config: {{key_field: user, batch: 64}}}}
  - {{id: count, type: count, inputs: [{{from: in, partition: key}}]}}
  - id: out
    type: {sink}
    inputs: [count]
{sinkcfg}"""


class Stdin(Base):
    def job_text(self, sink="stdout", interval="0s", attempts=0,
                 sinkcfg=""):
        return STDIN_JOB.format(d=self.d, sink=sink, interval=interval,
                                attempts=attempts, sinkcfg=sinkcfg)

    def test_pipeline(self):
        """`printf '...' | weir run job.yaml`: the supervisor's worker reads
        the pipe, and the stdout sink writes to the pipeline's stdout."""
        yaml = os.path.join(self.d, "job.yaml")
        with open(yaml, "w") as f:
            f.write(self.job_text())
        cmd = ("printf '{\"user\":\"a\"}\\n{\"user\":\"b\"}\\n\\n"
               "{\"user\":\"a\",\"n\":1}' | '%s' run --dir '%s' '%s'"
               % (WEIR, PLUGINS, yaml))
        p = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True,
                           timeout=60, cwd=self.d)
        self.assertEqual(p.returncode, 0, p.stderr.decode()[-3000:])
        lines = [json.loads(x) for x in p.stdout.decode().splitlines()]
        self.assertEqual([(r["key"], r["value"]["count"]) for r in lines],
                         [("a", 1), ("b", 1), ("a", 2)])

    def write_input(self, n):
        rng = random.Random(SEED)
        tally = {}
        path = os.path.join(self.d, "in.jsonl")
        with open(path, "w") as f:
            for i in range(n):
                k = "u%d" % rng.randrange(50)
                tally[k] = tally.get(k, 0) + 1
                f.write(json.dumps({"user": k, "i": i}) + "\n")
        return path, tally

    def test_file_redirect_kill(self):
        """stdin from a regular file is replayable: killed workers restore
        the checkpoint's byte offset, and the committed output is exactly
        once."""
        path, tally = self.write_input(400000)
        text = self.job_text(sink="file_sink", interval="50ms",
                             attempts=100,
                             sinkcfg="    config: {path: '%s/out', "
                                     "commit: checkpoint}\n" % self.d)
        with open(path) as f:
            job = Job(self.d, text, stdin=f)
        killed = set()
        deadline = time.time() + 40
        while len(killed) < 3 and job.p.poll() is None and \
                time.time() < deadline:
            time.sleep(0.01)
            log = job.text()
            start = log.rfind("started (attempt")
            pid = job.worker()
            # Each worker is killed once, after it completed a checkpoint.
            if start < 0 or pid in killed or not re.search(
                    r"checkpoint \d+ complete", log[start:]):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        kills = len(killed)
        self.assertEqual(job.wait(timeout=60), 0, job.tail())
        self.assertGreaterEqual(kills, 2, "too few kills landed")
        self.assertGreaterEqual(job.text().count("restoring checkpoint"), 2)
        self.check_counts(os.path.join(self.d, "out"), tally, job)

    def test_pipe_restore_refused(self):
        """A pipe cannot be read again: restoring a checkpoint taken in the
        middle of the input fails, saying why, instead of losing lines."""
        text = self.job_text(sink="file_sink", interval="100ms",
                             attempts=2,
                             sinkcfg="    config: {path: '%s/out', "
                                     "commit: checkpoint}\n" % self.d)
        feeder = subprocess.Popen(["/bin/cat"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE)
        job = Job(self.d, text, stdin=feeder.stdout)
        feeder.stdout.close()
        try:
            feeder.stdin.write(b'{"user":"a"}\n' * 100)
            feeder.stdin.flush()
            self.assertTrue(job.wait_for(r"checkpoint \d+ complete"),
                            job.tail())
            os.kill(job.worker(), signal.SIGKILL)
            rc = job.wait(timeout=60)
        finally:
            feeder.stdin.close()
            feeder.wait()
        self.assertEqual(rc, 3, job.tail())
        self.assertIn("standard input is a pipe or terminal, which cannot be "
                      "read again", job.text())


# --------------------------------------------------------------------------
# examples/zmq, run as its comments say
# --------------------------------------------------------------------------

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "examples")


class Example(Base):
    def test_orders_and_pipe(self):
        os.symlink(EXAMPLES, os.path.join(self.d, "examples"))
        log = open(os.path.join(self.d, "orders.log"), "w")
        job = subprocess.Popen([WEIR, "run", "--dir", PLUGINS,
                                "examples/zmq/orders.yaml"], cwd=self.d,
                               stdout=log, stderr=log)
        client = os.path.join(EXAMPLES, "zmq", "client.py")
        p = subprocess.run(["/usr/bin/python3", client, "--orders", "1500"],
                           cwd=self.d, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(job.wait(timeout=60), 0)
        log.close()
        p = subprocess.run(["/usr/bin/python3", client, "--orders", "1500",
                            "--check", "out/zmq-orders"], cwd=self.d,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = subprocess.run(
            ["/bin/sh", "-c", "printf '{\"user\":\"a\"}\\n{\"user\":\"b\"}"
             "\\n{\"user\":\"a\"}\\n' | '%s' run --dir '%s' "
             "examples/zmq/pipe.yaml" % (WEIR, PLUGINS)],
            cwd=self.d, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        counts = [json.loads(x)["value"]["count"]
                  for x in p.stdout.decode().splitlines()]
        self.assertEqual(counts, [1, 1, 2])


if __name__ == "__main__":
    unittest.main(verbosity=2)
