#!/usr/bin/python3
"""Process tests of the supervisor: the real `weir run` (supervisor and
worker processes) with the bundled plugins and the runtime's test
operators, and the supervisor under a scripted fake worker (sup_harness +
fake_worker.py) for what the real worker cannot produce on demand.

Run one case: test_sup_proc.py Class.test_name (ctest runs each case as
its own test). Configuration comes from the environment: WEIR_BIN,
WEIR_PLUGIN_DIR, WEIR_TESTOPS_DIR, SUP_HARNESS, SUP_FAKE_WORKER. Exit code
77 means every selected case was skipped.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

WEIR = os.environ.get("WEIR_BIN", "")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
TESTOPS = os.environ.get("WEIR_TESTOPS_DIR", "")
HARNESS = os.environ.get("SUP_HARNESS", "")
FAKE = os.environ.get("SUP_FAKE_WORKER", "")

SUP_EXIT_OK, SUP_EXIT_FAILED, SUP_EXIT_USAGE = 0, 1, 2
SUP_EXIT_EXHAUSTED, SUP_EXIT_NO_CHECKPOINT = 3, 4

WAIT = 20.0  # generous: sanitizer builds are slow

START_RE = r"\[supervisor\] worker (\d+) started \(attempt (\d+)\)"
RESTART_RE = r"\[supervisor\] restarting in (\d+) ms \(attempt (\d+)\)"
RECOVERY_RE = (r"\[supervisor\] worker restarted ([\d.]+) ms after the "
               r"failure \(plus ([\d.]+) ms restart delay\)")

# testops' `fail` operator with crash: true raises SIGSEGV; the tests run
# with ASAN_OPTIONS=handle_segv=0, so that a sanitizer build dies by the
# signal too.
CRASH_SIG = "SIGSEGV"

SRC_SINK = """\
  - {id: src, type: gen, config: {count: 0, keys: 100, rate: 5000}}
  - {id: sink, type: discard, inputs: [src]}
"""


def crash_ops(cfg):
    return ("  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
            "  - {id: boom, type: fail, inputs: [src], config: %s}\n" % cfg)


def test_env(**extra):
    env = dict(os.environ)
    env["WEIR_LOG"] = "info"
    env.pop("WEIR_CRASH_AT", None)
    # Let a plugin's segfault kill the worker as in a normal build (ASan
    # would catch it and exit 1 instead).
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "handle_segv=0"
    ubsan = env.get("UBSAN_OPTIONS", "")
    env["UBSAN_OPTIONS"] = (ubsan + ":" if ubsan else "") + "abort_on_error=1"
    env.update(extra)
    return env


def run_dirs(job_dir):
    """The run directories under <checkpoint.dir>/<job> (not the hidden
    .run.lock)."""
    return [d for d in os.listdir(job_dir) if not d.startswith(".")]


def proc_info(pid):
    """(state, ppid, pgid) of a process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[2])


def alive(pid):
    info = proc_info(pid)
    return info is not None and info[0] not in ("Z", "X")


def processes_in_groups(pgids):
    """Live processes whose process group is one of pgids."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        info = proc_info(int(name))
        if info and info[2] in pgids and info[0] not in ("Z", "X"):
            found.append(int(name))
    return found


class Proc:
    """A process whose stderr is collected line by line as it comes."""

    def __init__(self, argv, env, cwd=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, env=env, cwd=cwd,
                                  text=True, errors="replace")
        self.pid = self.p.pid
        self.lines = []
        self.eof = False
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def log(self):
        with self.cond:
            return "\n".join(self.lines)

    def matches(self, pattern):
        with self.cond:
            return [m for m in (re.search(pattern, l) for l in self.lines)
                    if m]

    def wait_for(self, pattern, count=1, timeout=WAIT):
        """Waits until `count` lines match; returns all matches."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in (re.search(pattern, l)
                                     for l in self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    raise AssertionError(
                        "no %d lines matching %r (%s); log:\n%s" %
                        (count, pattern, "exited" if self.eof else "timeout",
                         "\n".join(self.lines)))
                self.cond.wait(left)

    def finish(self, timeout=WAIT):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit; log:\n%s" %
                                 (self.argv, self.log()))
        self.reader.join(5)
        return rc

    def signal(self, sig):
        self.p.send_signal(sig)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


class Base(unittest.TestCase):
    def setUp(self):
        for what, path in (("WEIR_BIN", WEIR), ("WEIR_PLUGIN_DIR", PLUGINS),
                           ("WEIR_TESTOPS_DIR", TESTOPS)):
            if not path or not os.path.exists(path):
                self.fail("%s is not set to an existing path" % what)
        self.tmp = tempfile.mkdtemp(prefix="weir-sup-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def job(self, ops, restart, checkpoint=None, name="t"):
        # With checkpoints (every hour: only the final one is taken in these
        # short runs), so that the run directory exists.
        checkpoint = checkpoint or "{dir: %s/ckpt, interval: 1h}" % self.tmp
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            f.write("job: %s\ncheckpoint: %s\nrestart: %s\noperators:\n%s" %
                    (name, checkpoint, restart, ops))
        return path

    def weir(self, *args, env=None, cwd=None):
        argv = [WEIR, "run", "--dir", PLUGINS, "--dir", TESTOPS] + list(args)
        p = Proc(argv, env or test_env(), cwd)
        self.procs.append(p)
        return p

    def assert_exit(self, p, want):
        rc = p.finish()
        self.assertEqual(rc, want, "exit code %d, want %d; log:\n%s" %
                         (rc, want, p.log()))

    def starts(self, p):
        return [(int(m.group(1)), int(m.group(2)))
                for m in p.matches(START_RE)]


class Crash(Base):
    def test_crash_fixed_delay_exhausted(self):
        path = self.job(crash_ops("{crash: true}"),
                        "{strategy: fixed_delay, attempts: 2, delay: 10ms}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_EXHAUSTED)
        starts = self.starts(p)
        self.assertEqual([a for _, a in starts], [0, 1, 2], p.log())
        killed = p.matches(r"\[supervisor\] worker (\d+) killed by %s "
                           r"after [\d.]+ s" % CRASH_SIG)
        self.assertEqual([int(m.group(1)) for m in killed],
                         [pid for pid, _ in starts], p.log())
        restarts = [(int(m.group(1)), int(m.group(2)))
                    for m in p.matches(RESTART_RE)]
        self.assertEqual(restarts, [(10, 1), (10, 2)], p.log())
        self.assertEqual(len(p.matches(RECOVERY_RE)), 2, p.log())
        self.assertEqual(len(p.matches(
            r"restart strategy fixed_delay gave up after 3 failures")), 1,
            p.log())

    def test_crash_strategy_none(self):
        path = self.job(crash_ops("{crash: true}"), "{strategy: none}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_FAILED)
        self.assertEqual(len(self.starts(p)), 1, p.log())
        self.assertEqual(len(p.matches(r"killed by " + CRASH_SIG)), 1, p.log())
        self.assertEqual(p.matches(RESTART_RE), [], p.log())
        self.assertTrue(p.matches(r"restart strategy none"), p.log())

    def test_plugin_error_cause(self):
        path = self.job(crash_ops("{at: 10}"), "{strategy: none}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_FAILED)
        starts = self.starts(p)
        self.assertEqual(len(starts), 1, p.log())
        self.assertEqual(len(p.matches(
            r"\[supervisor\] worker %d exited with code 10 \(job failed\) "
            r"after [\d.]+ s" % starts[0][0])), 1, p.log())
        self.assertTrue(p.matches(r"deliberate failure"), p.log())

    def test_exponential_delays_then_sigint(self):
        # Each worker fails at its 200th record, about 200 ms after it
        # starts (1000 records/s): a SIGINT right after the fifth failure
        # lands in the restart delay or in a worker that can still stop.
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 10, "
               "rate: 1000}}\n"
               "  - {id: boom, type: fail, inputs: [src], config: {at: 200}}\n")
        path = self.job(ops, "{strategy: exponential_delay, initial_delay: "
                        "10ms, multiplier: 2, max_delay: 40ms, jitter: 0}")
        p = self.weir(path)
        p.wait_for(RESTART_RE, count=5)
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_OK)
        delays = [(int(m.group(1)), int(m.group(2)))
                  for m in p.matches(RESTART_RE)]
        self.assertEqual(delays, [(10, 1), (20, 2), (40, 3), (40, 4),
                                  (40, 5)], p.log())
        self.assertEqual(len(p.matches(r"exited with code 10 \(job failed\)")),
                         5, p.log())

    def test_failure_rate_exhausted(self):
        path = self.job(crash_ops("{at: 1}"),
                        "{strategy: failure_rate, max_failures: 2, "
                        "interval: 10s, delay: 10ms}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_EXHAUSTED)
        self.assertEqual([a for _, a in self.starts(p)], [0, 1, 2], p.log())
        self.assertEqual(len(p.matches(r"exited with code 10 \(job failed\)")),
                         3, p.log())
        self.assertTrue(p.matches(
            r"restart strategy failure_rate gave up after 3 failures"),
            p.log())


class Signals(Base):
    def test_sigkill_worker_restarts(self):
        path = self.job(SRC_SINK,
                        "{strategy: fixed_delay, attempts: 3, delay: 10ms}")
        p = self.weir(path)
        first = int(p.wait_for(START_RE)[0].group(1))
        time.sleep(0.3)
        info = proc_info(first)
        self.assertIsNotNone(info, p.log())
        self.assertEqual(info[1], p.pid, "the worker's parent")
        self.assertEqual(info[2], first, "the worker's process group")
        os.kill(first, signal.SIGKILL)
        p.wait_for(r"\[supervisor\] worker %d killed by SIGKILL after "
                   r"[\d.]+ s" % first)
        p.wait_for(r"restarting in 10 ms \(attempt 1\)")
        m = p.wait_for(START_RE, count=2)[1]
        second = int(m.group(1))
        self.assertEqual(m.group(2), "1")
        p.wait_for(RECOVERY_RE)
        time.sleep(0.3)
        self.assertTrue(alive(second), p.log())
        self.assertFalse(alive(first))
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertTrue(p.matches(r"worker %d exited with code 0" % second),
                        p.log())
        # The second worker processed records before it stopped.
        counts = [int(m.group(1)) for m in
                  p.matches(r"sink#0: (\d+) records in")]
        self.assertEqual(len(counts), 1, p.log())
        self.assertGreater(counts[0], 0, p.log())
        self.assertEqual(processes_in_groups({first, second}), [])

    def test_sigint_stops_worker(self):
        # A relative checkpoint dir is relative to the working directory.
        path = self.job(SRC_SINK,
                        "{strategy: fixed_delay, attempts: 3, delay: 10ms}",
                        checkpoint="{dir: rel-ckpt, interval: 1h}")
        p = self.weir(path, cwd=self.tmp)
        worker = int(p.wait_for(START_RE)[0].group(1))
        time.sleep(0.2)
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertTrue(p.matches(r"\[supervisor\] SIGINT: stopping worker "
                                  r"%d" % worker), p.log())
        self.assertTrue(p.matches(r"\[supervisor\] worker %d exited with "
                                  r"code 0 \(finished\)" % worker), p.log())
        self.assertTrue(p.matches(r"job 't' stopped"), p.log())
        self.assertEqual(len(self.starts(p)), 1, p.log())
        runs = run_dirs(os.path.join(self.tmp, "rel-ckpt", "t"))
        self.assertEqual(len(runs), 1)
        self.assertRegex(runs[0], r"^\d{8}T\d{6}Z-%d$" % p.pid)
        self.assertEqual(processes_in_groups({worker}), [])

    def test_sigint_during_restart_delay(self):
        path = self.job(crash_ops("{at: 1}"),
                        "{strategy: fixed_delay, attempts: 3, delay: 1h}")
        p = self.weir(path)
        p.wait_for(r"restarting in 3600000 ms \(attempt 1\)")
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertTrue(p.matches(r"SIGINT during the restart delay"),
                        p.log())
        self.assertEqual(len(self.starts(p)), 1, p.log())

    def test_supervisor_killed_worker_dies(self):
        path = self.job(SRC_SINK, "{strategy: none}")
        p = self.weir(path)
        worker = int(p.wait_for(START_RE)[0].group(1))
        time.sleep(0.2)
        self.assertTrue(alive(worker))
        p.p.kill()
        p.finish()
        deadline = time.monotonic() + WAIT
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertFalse(alive(worker), "the worker outlived the supervisor")

    def test_second_sigint_kills_worker(self):
        # The sink sleeps 0.5 s per record: a graceful stop would take
        # minutes, so only the second SIGINT ends the worker (chain: false:
        # the records wait in the channel to the sink).
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
               "  - {id: sink, type: slow, inputs: [src], chain: false, "
               "config: {delay_us: 500000}}\n")
        path = self.job(ops, "{strategy: fixed_delay, attempts: 3, "
                        "delay: 10ms}")
        p = self.weir(path)
        worker = int(p.wait_for(START_RE)[0].group(1))
        time.sleep(0.3)
        p.signal(signal.SIGINT)
        p.wait_for(r"SIGINT: stopping worker %d" % worker)
        time.sleep(0.2)
        self.assertTrue(alive(worker), p.log())
        p.signal(signal.SIGTERM)
        self.assert_exit(p, SUP_EXIT_FAILED)
        self.assertTrue(p.matches(r"SIGTERM again: killing worker %d" %
                                  worker), p.log())
        self.assertTrue(p.matches(r"worker %d killed by SIGKILL" % worker),
                        p.log())
        self.assertEqual(len(self.starts(p)), 1, p.log())


class Usage(Base):
    def test_bad_topology_exit_2(self):
        ops = "  - {id: src, type: no_such_operator}\n"
        p = self.weir(self.job(ops, "{strategy: fixed_delay}"))
        self.assert_exit(p, SUP_EXIT_USAGE)
        self.assertEqual(self.starts(p), [], p.log())
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "ckpt")))

    def test_bad_usage_exit_2(self):
        path = self.job(SRC_SINK, "{strategy: none}")
        for args in ([], ["--worker", path], ["--attempt", "1", path],
                     ["--run-dir", self.tmp, path],
                     ["--worker", "--run-dir", self.tmp, "--attempt", "x",
                      path],
                     ["--worker", "--no-supervisor", "--run-dir", self.tmp,
                      path],
                     ["--from"], ["--bogus", path], [path, path]):
            p = self.weir(*args)
            self.assert_exit(p, SUP_EXIT_USAGE)
            self.assertEqual(self.starts(p), [], args)

    def test_no_run_dir_without_checkpoints(self):
        ops = ("  - {id: src, type: gen, config: {count: 100, keys: 10}}\n"
               "  - {id: sink, type: discard, inputs: [src]}\n")
        path = self.job(ops, "{strategy: none}",
                        checkpoint="{dir: %s/nock}" % self.tmp)
        p = self.weir(path)
        self.assert_exit(p, 0)
        # The run directory held only the control endpoints: it is gone,
        # with the directories made for it.
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "nock")))

    def test_no_supervisor(self):
        ops = ("  - {id: src, type: gen, config: {count: 1000, keys: 10}}\n"
               "  - {id: sink, type: discard, inputs: [src]}\n")
        p = self.weir("--no-supervisor", self.job(ops, "{strategy: none}"))
        self.assert_exit(p, 0)
        self.assertEqual(p.matches(r"\[supervisor\]"), [], p.log())
        self.assertEqual(len(run_dirs(os.path.join(self.tmp, "ckpt", "t"))),
                         1)
        p = self.weir("--no-supervisor",
                      self.job(crash_ops("{at: 10}"),
                               "{strategy: fixed_delay}", name="f"))
        self.assert_exit(p, 1)
        self.assertEqual(p.matches(r"\[supervisor\]"), [], p.log())

    def test_worker_mode(self):
        run_dir = os.path.join(self.tmp, "run")
        os.mkdir(run_dir)
        path = self.job(crash_ops("{at: 10}"), "{strategy: fixed_delay}")
        p = self.weir("--worker", "--run-dir", run_dir, "--attempt", "2",
                      path)
        self.assert_exit(p, 10)
        self.assertEqual(p.matches(r"\[supervisor\]"), [], p.log())
        ops = ("  - {id: src, type: gen, config: {count: 1000, keys: 10}}\n"
               "  - {id: sink, type: discard, inputs: [src]}\n")
        p = self.weir("--worker", "--run-dir=" + run_dir,
                      self.job(ops, "{strategy: none}", name="ok"))
        self.assert_exit(p, 0)


class Fake(Base):
    """The supervisor (sup_harness) with fake_worker.py as its worker."""

    def setUp(self):
        super().setUp()
        for what, path in (("SUP_HARNESS", HARNESS),
                           ("SUP_FAKE_WORKER", FAKE)):
            if not path or not os.path.exists(path):
                self.fail("%s is not set to an existing path" % what)
        self.record = os.path.join(self.tmp, "record.jsonl")

    def harness(self, restart, codes, self_bin=None, extra=(), **env):
        path = self.job(SRC_SINK, restart)
        argv = [HARNESS, self_bin or FAKE, path] + list(extra) + [
            "--dir", PLUGINS, "--dir", TESTOPS]
        p = Proc(argv, test_env(FAKE_RECORD=self.record, FAKE_CODES=codes,
                                **env))
        self.procs.append(p)
        return p, path

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(l) for l in f]

    def test_worker_argv_and_environment(self):
        p, path = self.harness(
            "{strategy: fixed_delay, attempts: 5, delay: 0ms}", "10,sig9,0",
            extra=["--from", "/some/chk-7"], WEIR_CRASH_AT="manifest_renamed:2",
            FAKE_MARK="kept")
        self.assert_exit(p, SUP_EXIT_OK)
        recs = self.records()
        self.assertEqual(len(recs), 3, p.log())
        run_dir = recs[0]["argv"][3]
        self.assertTrue(os.path.isdir(run_dir))
        self.assertEqual(os.path.dirname(run_dir),
                         os.path.join(self.tmp, "ckpt", "t"))
        self.assertRegex(os.path.basename(run_dir),
                         r"^\d{8}T\d{6}Z-%d$" % p.pid)
        # "--": a job path may start with a dash.
        tail = ["--dir", PLUGINS, "--dir", TESTOPS, "--", path]
        self.assertEqual(recs[0]["argv"],
                         ["run", "--worker", "--run-dir", run_dir, "--from",
                          "/some/chk-7", "--attempt", "0"] + tail)
        # Restarts get --from too: the run may have no checkpoint yet.
        for n in (1, 2):
            self.assertEqual(recs[n]["argv"],
                             ["run", "--worker", "--run-dir", run_dir,
                              "--from", "/some/chk-7", "--attempt", str(n)] +
                             tail)
        for r in recs:
            self.assertEqual(r["ppid"], p.pid)
            self.assertEqual(r["pgid"], r["pid"])
            self.assertIn(signal.SIGINT, r["blocked"])
            self.assertIn(signal.SIGTERM, r["blocked"])
            self.assertNotIn(signal.SIGCHLD, r["blocked"])
            self.assertEqual(r["pdeathsig"], signal.SIGKILL)
            self.assertRegex(r["report_fd"] or "", r"^\d+$")
            self.assertEqual(r["env"], {"WEIR_CRASH_AT": "manifest_renamed:2",
                                        "WEIR_LOG": "info",
                                        "FAKE_MARK": "kept"})
        self.assertEqual([pid for pid, _ in self.starts(p)],
                         [r["pid"] for r in recs])
        self.assertTrue(p.matches(r"exited with code 10 \(job failed\)"))
        self.assertTrue(p.matches(r"worker %d killed by SIGKILL" %
                                  recs[1]["pid"]), p.log())

    def test_unrecoverable_not_restarted(self):
        p, _ = self.harness("{strategy: fixed_delay, attempts: 3, "
                            "delay: 0ms}", "11")
        self.assert_exit(p, SUP_EXIT_NO_CHECKPOINT)
        self.assertEqual(len(self.records()), 1, p.log())
        self.assertTrue(p.matches(r"exited with code 11 \(unrecoverable\)"),
                        p.log())
        self.assertEqual(p.matches(RESTART_RE), [], p.log())

    def test_exec_failure(self):
        missing = os.path.join(self.tmp, "no-such-weir")
        p, _ = self.harness("{strategy: fixed_delay, attempts: 1, "
                            "delay: 0ms}", "0", self_bin=missing)
        self.assert_exit(p, SUP_EXIT_EXHAUSTED)
        self.assertEqual(len(p.matches(
            r"exited with code 127 \(cannot execute the worker\)")), 2,
            p.log())
        self.assertTrue(p.matches(r"cannot execute %s" % re.escape(missing)),
                        p.log())

    def test_crash_code_restarted(self):
        p, _ = self.harness("{strategy: fixed_delay, attempts: 1, "
                            "delay: 0ms}", "86,0")
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertEqual(len(self.records()), 2, p.log())
        self.assertTrue(p.matches(r"exited with code 86 \(crash point\)"),
                        p.log())
        self.assertTrue(p.matches(r"job 't' finished"), p.log())


class CrashPoint(Base):
    def test_crash_at_passes_through(self):
        """WEIR_CRASH_AT reaches the worker through the supervisor: the
        first worker crashes at its first manifest (crash points fire in
        attempt 0 only), the second one recovers and takes checkpoints.
        Skipped while `weir run` writes no manifest."""
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 100, "
               "rate: 5000}}\n"
               "  - {id: mid, type: relay, inputs: [src]}\n"
               "  - {id: sink, type: discard, inputs: [mid]}\n")
        path = self.job(ops, "{strategy: fixed_delay, attempts: 1, "
                        "delay: 0ms}",
                        checkpoint="{dir: %s/ckpt, interval: 20ms}" %
                        self.tmp)
        p = self.weir(path, env=test_env(WEIR_CRASH_AT="manifest_written"))
        try:
            p.wait_for(r"exited with code 86 \(crash point\)", timeout=5)
        except AssertionError:
            p.signal(signal.SIGINT)
            p.finish()
            self.skipTest("no crash point reachable by `weir run` yet")
        second = int(p.wait_for(START_RE, count=2)[1].group(1))
        # A checkpoint completes after the restart: find one logged after
        # the second start.
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            log = p.log()
            tail = log[log.index("worker %d started" % second):]
            if re.search(r"checkpoint \d+ complete", tail):
                break
            time.sleep(0.02)
        else:
            self.fail("no checkpoint after the restart; log:\n" + p.log())
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertEqual(len(p.matches(r"exited with code 86 \(crash "
                                       r"point\)")), 1, p.log())
        self.assertEqual(len(self.starts(p)), 2, p.log())


# tgkill(2) by machine: a signal to one thread.
TGKILL = {"x86_64": 234, "aarch64": 131, "i686": 270, "armv7l": 268}

# The testops plugin file, as the registry names it (--dir TESTOPS).
TESTOPS_SO = os.path.join(TESTOPS, "testops.so")

# A line of glibc's backtrace_symbols_fd(): "file(symbol+off)[0xaddr]".
BACKTRACE_RE = r"^\S+\(\S*\)\s*\[0x[0-9a-f]+\]$"
# A line of the host's log.
LOG_LINE_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "


class Guard(Base):
    """The worker's watchdog and crash report (runtime/guard.h): a subtask
    stuck in a plugin callback ends the worker, and a signal that kills it
    names the subtask, the operator type, the plugin and the callback."""

    def guard_job(self, ops, restart, runtime="{callback_timeout: 1s}",
                  name="g"):
        path = os.path.join(self.tmp, name + ".yaml")
        with open(path, "w") as f:
            f.write("job: %s\nruntime: %s\nstate: {dir: %s/state}\n"
                    "checkpoint: {dir: %s/ckpt, interval: 1h}\n"
                    "restart: %s\noperators:\n%s" %
                    (name, runtime, self.tmp, self.tmp, restart, ops))
        return path

    def watchdog_re(self, who, op_type, callback):
        """`who` is a regular expression."""
        return (r"ERROR \[watchdog\] %s \(type %s, plugin %s\) has been in "
                r"%s\(\) for ([\d.]+) s, over runtime.callback_timeout "
                r"1\.0 s: ending the worker$" %
                (who, op_type, re.escape(TESTOPS_SO), callback))

    def crash_re(self, sig, who, op_type, callback):
        # A fault the kernel raised (not raise()) adds its address.
        return (r"^weir: worker crashed: %s in %s \(type %s, plugin %s\) in "
                r"%s\(\)( at address 0x[0-9a-f]+)?$" %
                (sig, re.escape(who), op_type, re.escape(TESTOPS_SO),
                 callback))

    def assert_backtrace_after(self, p, pattern, plugin_frame=True):
        """Every line matching `pattern` is followed by a backtrace (log
        lines of other threads may come between), which goes through the
        testops plugin when `plugin_frame`."""
        lines = p.log().split("\n")
        at = [i for i, l in enumerate(lines) if re.search(pattern, l)]
        self.assertTrue(at, p.log())
        for i in at:
            frames = []
            for l in lines[i + 1:]:
                if re.match(LOG_LINE_RE, l):
                    continue
                if not re.search(BACKTRACE_RE, l):
                    break
                frames.append(l)
            self.assertTrue(frames, "no backtrace after line %d; log:\n%s" %
                            (i, p.log()))
            if plugin_frame:
                self.assertTrue(any(l.startswith(TESTOPS_SO + "(")
                                    for l in frames),
                                "no frame of %s after line %d; log:\n%s" %
                                (TESTOPS_SO, i, p.log()))

    def assert_stuck_restarted(self, p, pattern, who, callback):
        """Two workers, each ended by the watchdog (exit code 10) after the
        stuck thread printed its backtrace, one restart between them, then
        the strategy gives up."""
        self.assert_exit(p, SUP_EXIT_EXHAUSTED)
        starts = self.starts(p)
        self.assertEqual([a for _, a in starts], [0, 1], p.log())
        stuck = p.matches(pattern)
        self.assertEqual(len(stuck), 2, p.log())
        for m in stuck:
            self.assertGreaterEqual(float(m.group(1)), 1.0, p.log())
        ended = p.matches(r"\[supervisor\] worker (\d+) exited with code 10 "
                          r"\(job failed\)")
        self.assertEqual([int(m.group(1)) for m in ended],
                         [pid for pid, _ in starts], p.log())
        log = p.log()
        first = re.search(pattern, log, re.M).start()
        self.assertLess(first, log.index("restarting in 10 ms (attempt 1)"),
                        log)
        self.assertTrue(p.matches(
            r"restart strategy fixed_delay gave up after 2 failures"), log)
        dump = (r"^weir: backtrace of the stuck thread in %s \(type hang, "
                r"plugin %s\) in %s\(\):$" %
                (who, re.escape(TESTOPS_SO), callback))
        self.assertEqual(len(p.matches(dump)), 2, log)
        self.assert_backtrace_after(p, dump)

    def test_watchdog_stuck_in_process(self):
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
               "  - {id: stuck, type: hang, inputs: [src], "
               "config: {after: 5}}\n")
        p = self.weir(self.guard_job(
            ops, "{strategy: fixed_delay, attempts: 1, delay: 10ms}"))
        self.assert_stuck_restarted(p, self.watchdog_re(r"stuck#0", "hang",
                                                        "process"),
                                    r"stuck#0", "process")

    def test_watchdog_stuck_in_on_timer(self):
        # A busy loop in on_timer of one of two subtasks: the only key
        # goes to one of them.
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 1}}\n"
               "  - {id: stuck, type: hang, parallelism: 2, "
               "inputs: [{from: src, partition: key}], "
               "config: {in: on_timer, busy: true}}\n")
        p = self.weir(self.guard_job(
            ops, "{strategy: fixed_delay, attempts: 1, delay: 10ms}"))
        pattern = self.watchdog_re(r"stuck#[01]", "hang", "on_timer")
        self.assert_stuck_restarted(p, pattern, r"stuck#[01]", "on_timer")
        # The same subtask both times: the key decides.
        who = {re.search(r"stuck#\d", m.group(0)).group(0)
               for m in p.matches(pattern)}
        self.assertEqual(len(who), 1, p.log())

    def test_backpressure_is_not_stuck(self):
        # gen emits its 300 records in one poll(), each into a full channel
        # to a sink that takes 10 ms per record: poll() lasts about 3 s,
        # over the 1 s limit, but waiting on back pressure is the host's
        # time, not a stuck plugin.
        # chain: false: the sink must wait behind a channel, not be
        # called from gen's thread.
        ops = ("  - {id: src, type: gen, config: {count: 300, keys: 10}}\n"
               "  - {id: sink, type: slow, inputs: [src], chain: false, "
               "config: {delay_us: 10000}}\n")
        path = self.guard_job(ops, "{strategy: none}",
                              runtime="{callback_timeout: 1s, batch_size: 1, "
                              "channel_capacity: 1}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_OK)
        self.assertEqual(p.matches(r"\[watchdog\]"), [], p.log())
        waited = p.matches(r"\[worker\] src#0: 0 records in, 300 out, "
                           r"([\d.]+) ms back-pressured")
        self.assertEqual(len(waited), 1, p.log())
        self.assertGreater(float(waited[0].group(1)), 1000.0, p.log())

    def test_watchdog_disabled(self):
        ops = ("  - {id: src, type: gen, config: {count: 0, keys: 10}}\n"
               "  - {id: stuck, type: hang, inputs: [src]}\n")
        p = self.weir(self.guard_job(ops, "{strategy: none}",
                                     runtime="{callback_timeout: 0s}"))
        worker = int(p.wait_for(START_RE)[0].group(1))
        time.sleep(2.5)
        self.assertTrue(alive(worker), p.log())
        p.signal(signal.SIGINT)
        p.wait_for(r"SIGINT: stopping worker %d" % worker)
        p.signal(signal.SIGINT)
        self.assert_exit(p, SUP_EXIT_FAILED)
        self.assertEqual(p.matches(r"\[watchdog\]"), [], p.log())

    def test_crash_names_the_callback(self):
        path = self.guard_job(crash_ops("{crash: true}"),
                              "{strategy: fixed_delay, attempts: 1, "
                              "delay: 10ms}")
        p = self.weir(path)
        self.assert_exit(p, SUP_EXIT_EXHAUSTED)
        pattern = self.crash_re("SIGSEGV", "boom#0", "fail", "process")
        self.assertEqual(len(p.matches(pattern)), 2, p.log())
        self.assert_backtrace_after(p, pattern)
        starts = self.starts(p)
        killed = p.matches(r"\[supervisor\] worker (\d+) killed by SIGSEGV")
        self.assertEqual([int(m.group(1)) for m in killed],
                         [pid for pid, _ in starts], p.log())
        log = p.log()
        self.assertLess(re.search(pattern, log, re.M).start(),
                        log.index("restarting in 10 ms (attempt 1)"), log)

    def test_crash_signals(self):
        for how, sig in (("SIGFPE", "SIGFPE"), ("SIGABRT", "SIGABRT"),
                         ("stack", "SIGSEGV")):
            with self.subTest(how=how):
                path = self.guard_job(
                    crash_ops("{crash: true, signal: %s, at: 3}" % how),
                    "{strategy: none}", name="c" + how.lower())
                # ASan handles SIGFPE itself (and exits 1) unless told not
                # to; the crash report then passes the signal on to it.
                env = test_env()
                env["ASAN_OPTIONS"] += ":handle_sigfpe=0"
                p = self.weir(path, env=env)
                self.assert_exit(p, SUP_EXIT_FAILED)
                pattern = self.crash_re(sig, "boom#0", "fail", "process")
                self.assertEqual(len(p.matches(pattern)), 1, p.log())
                self.assert_backtrace_after(p, pattern)
                self.assertEqual(len(p.matches(r"killed by %s" % sig)), 1,
                                 p.log())

    def test_crash_in_host_code(self):
        # A SIGSEGV sent to the worker's main thread (tgkill: kill() could
        # pick a subtask thread inside a callback), in no plugin callback.
        nr = TGKILL.get(os.uname().machine)
        if nr is None:
            self.skipTest("tgkill syscall number unknown here")
        path = self.guard_job(SRC_SINK, "{strategy: none}")
        p = self.weir(path)
        worker = int(p.wait_for(START_RE)[0].group(1))
        p.wait_for(r"all \d+ subtasks running")
        libc = ctypes.CDLL(None, use_errno=True)
        self.assertEqual(libc.syscall(nr, worker, worker, signal.SIGSEGV), 0,
                         os.strerror(ctypes.get_errno()))
        self.assert_exit(p, SUP_EXIT_FAILED)
        pattern = r"^weir: worker crashed: SIGSEGV in host code$"
        self.assertEqual(len(p.matches(pattern)), 1, p.log())
        self.assert_backtrace_after(p, pattern, plugin_frame=False)
        self.assertTrue(p.matches(r"worker %d killed by SIGSEGV" % worker),
                        p.log())

    def test_no_supervisor_crash_named(self):
        path = self.guard_job(crash_ops("{crash: true}"), "{strategy: none}")
        p = self.weir("--no-supervisor", path)
        rc = p.finish()
        self.assertEqual(rc, -signal.SIGSEGV, p.log())
        pattern = self.crash_re("SIGSEGV", "boom#0", "fail", "process")
        self.assertEqual(len(p.matches(pattern)), 1, p.log())
        self.assert_backtrace_after(p, pattern)


def main():
    suite = unittest.defaultTestLoader.loadTestsFromNames(
        sys.argv[1:] or ["__main__"], sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if not result.wasSuccessful():
        return 1
    if result.testsRun and len(result.skipped) == result.testsRun:
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())
