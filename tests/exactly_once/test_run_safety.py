#!/usr/bin/python3
"""Run safety of `weir run`: what must never lose or wipe committed output,
and faults that must end a run with a clear message instead of a hang.

Real supervised processes, real plugins (the bundled ones, the runtime's
test operators and exitop, which calls exit() from process()), SIGKILL and
SIGSTOP. The exactly-once cases reuse the job and the oracle of
test_exactly_once.py: the committed output holds, for every key, the counts
1..n exactly once, n being the key's number of input records.

Run one case: test_run_safety.py Class.test_name. Environment: WEIR,
WEIR_PLUGIN_DIR, WEIR_TESTOPS_DIR, WEIR_EXITOP_DIR.
"""
import fcntl
import glob
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_exactly_once import JOB, committed, write_input  # noqa: E402

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")
TESTOPS = os.environ.get("WEIR_TESTOPS_DIR", "")
EXITOP = os.environ.get("WEIR_EXITOP_DIR", "")
SEED = 20261202

SUP_EXIT_OK, SUP_EXIT_FAILED, SUP_EXIT_EXHAUSTED = 0, 1, 3
SUP_EXIT_LOCKED = 5


def env(**extra):
    e = dict(os.environ)
    e["WEIR_LOG"] = "info"
    e.pop("WEIR_CRASH_AT", None)
    e.update(extra)
    return e


class Run:
    """A `weir run` in its own session, its log collected in a file."""

    def __init__(self, d, name, args, extra_env=None):
        self.log_path = os.path.join(d, name + ".log")
        self.log = open(self.log_path, "w")
        argv = [WEIR, "run", "--dir", PLUGINS]
        for extra in (TESTOPS, EXITOP):
            if extra:
                argv += ["--dir", extra]
        self.p = subprocess.Popen(argv + list(args), stdout=self.log,
                                  stderr=self.log, env=env(**(extra_env or {})),
                                  start_new_session=True, cwd=d)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_for(self, pattern, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text())
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.01)
        raise AssertionError("no %r in the log:\n%s" % (pattern,
                                                        self.text()[-3000:]))

    def wait(self, timeout=120):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if self.p.poll() is None:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
            self.log.close()

    def workers(self):
        return [int(x) for x in re.findall(r"worker (\d+) started",
                                           self.text())]


def kill_group_and_worker(run):
    """SIGKILL of the supervisor's process group, as a terminal or a
    service manager would send it; the worker (its own group) dies by its
    parent-death signal."""
    workers = run.workers()
    os.killpg(run.p.pid, signal.SIGKILL)
    run.p.wait()
    run.log.close()
    return workers


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-safety-")
        self.runs = []

    def tearDown(self):
        for r in self.runs:
            if r.p.poll() is None:
                os.killpg(r.p.pid, signal.SIGKILL)
                r.p.wait()
        shutil.rmtree(self.d, ignore_errors=True)

    def run_weir(self, name, *args, extra_env=None):
        r = Run(self.d, name, args, extra_env)
        self.runs.append(r)
        return r

    def write(self, name, text):
        path = os.path.join(self.d, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class ExactlyOnceJob(Base):
    """The exactly-once job of test_exactly_once.py."""

    def make_job(self, n=30000, keys=300, rate=15000, restart=None,
                 extra=""):
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), n, keys,
                                 SEED)
        text = JOB.format(d=self.d, rate=rate, mode="exactly_once",
                          cache=100000)
        if restart:
            text = re.sub(r"(?m)^restart: .*$", "restart: " + restart, text)
        return self.write("job.yaml", text + extra)

    def completed(self):
        ids = []
        for path in glob.glob(os.path.join(self.d, "ckpt", "eo", "*",
                                           "completed")):
            with open(path) as f:
                ids += [(int(x), os.path.dirname(path))
                        for x in f.read().split()]
        return sorted(ids)

    def wait_checkpoints(self, run, n):
        deadline = time.time() + 30
        while len(self.completed()) < n and time.time() < deadline:
            self.assertIsNone(run.p.poll(), run.text()[-3000:])
            time.sleep(0.02)
        self.assertGreaterEqual(len(self.completed()), n, run.text()[-3000:])

    def newest_checkpoint(self):
        cid, run_dir = self.completed()[-1]
        return cid, os.path.join(run_dir, "chk-%d" % cid)

    def check_exactly_once(self, text):
        seen = committed(os.path.join(self.d, "out"))
        self.assertEqual(sorted(seen), sorted(self.tally), text[-3000:])
        for k, n in self.tally.items():
            counts = sorted(seen[k])
            self.assertEqual(counts, list(range(1, n + 1)),
                             "key %s: %d records, committed counts %s...\n%s"
                             % (k, n, counts[:20], text[-3000:]))

    def start_and_kill(self):
        """Runs the job until it has 2 checkpoints, then kills the whole
        run; returns the newest checkpoint (id, path)."""
        job = self.make_job()
        first = self.run_weir("first", job)
        self.wait_checkpoints(first, 2)
        kill_group_and_worker(first)
        return job, self.newest_checkpoint()


class FromCheckpoint(ExactlyOnceJob):
    def test_restart_before_first_checkpoint_restores_from(self):
        """`weir run --from CHK` whose first worker dies before the new run's
        first checkpoint: the restart restores CHK again, never empty state
        (which made file_sink delete the committed part files)."""
        job, (cid, chk) = self.start_and_kill()
        r = self.run_weir("from", "--from", chk, job, extra_env={
            "WEIR_CRASH_AT": "barrier_received:1"})
        rc = r.wait()
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_OK, text[-3000:])
        self.assertIn("crash point reached", text)
        self.assertEqual(
            len(re.findall(r"restoring checkpoint %d from %s" %
                           (cid, re.escape(chk)), text)), 2, text[-3000:])
        self.assertNotIn("starting with empty state", text)
        self.assertNotIn("fresh start", text)
        self.check_exactly_once(text)


class ChangedJob(ExactlyOnceJob):
    def test_removed_operator_needs_allow_non_restored_state(self):
        """A checkpoint with state of an operator the new job no longer has
        is refused, naming it, unless --allow-non-restored-state."""
        job, (cid, chk) = self.start_and_kill()
        text = open(job).read()
        text = text.replace(
            "  - id: count\n    type: count\n    parallelism: 2\n"
            "    inputs: [{from: src, partition: key}]\n", "")
        text = text.replace("inputs: [{from: count, partition: rebalance}]",
                            "inputs: [{from: src, partition: rebalance}]")
        self.assertNotIn("type: count", text)
        changed = self.write("changed.yaml", text)
        r = self.run_weir("refused", "--from", chk, changed)
        rc = r.wait(timeout=60)
        self.assertEqual(rc, 4, r.text()[-3000:])
        self.assertIn("holds state of operator 'count', which the job no "
                      "longer has; start with --allow-non-restored-state",
                      r.text())
        r = self.run_weir("allowed", "--allow-non-restored-state", "--from",
                          chk, changed)
        self.assertEqual(r.wait(timeout=120), SUP_EXIT_OK, r.text()[-3000:])
        self.assertIn("it is dropped (--allow-non-restored-state)", r.text())


class Locks(ExactlyOnceJob):
    def test_second_run_refused_during_restart_delay(self):
        """A second `weir run` of the job while the first one's worker is in
        its restart delay is refused (exit 5) and touches nothing; the first
        run then finishes with exactly-once output."""
        job = self.make_job(
            restart="{strategy: fixed_delay, attempts: 3, delay: 3s}")
        first = self.run_weir("first", job, extra_env={
            "WEIR_CRASH_AT": "barrier_received:3"})
        first.wait_for(r"restarting in 3000 ms")
        t0 = time.time()
        second = self.run_weir("second", job)
        rc = second.wait(timeout=30)
        text = second.text()
        self.assertEqual(rc, SUP_EXIT_LOCKED, text)
        self.assertRegex(text, r"is locked by process %d" % first.p.pid)
        self.assertNotIn("worker", re.sub(r"weir process.*", "", text))
        self.assertLess(time.time() - t0, 25)
        self.assertEqual(first.wait(), SUP_EXIT_OK, first.text()[-3000:])
        self.check_exactly_once(first.text())

    def test_other_job_writing_the_same_output_refused(self):
        """Another job (another name, other state and checkpoints) whose
        file_sink writes the running job's output directory is refused with
        exit 5 naming the output; the running job's output stays
        exactly-once."""
        job = self.make_job()
        first = self.run_weir("first", job)
        self.wait_checkpoints(first, 1)
        other = self.write("other.yaml", open(job).read()
                           .replace("job: eo", "job: other")
                           .replace("/ckpt'", "/ckpt2'")
                           .replace("/state'", "/state2'"))
        second = self.run_weir("second", other)
        rc = second.wait(timeout=30)
        text = second.text()
        self.assertEqual(rc, SUP_EXIT_LOCKED, text)
        self.assertRegex(text, r"output \S+/out of operator 'sink' \S+ is "
                         r"locked by process %d" % first.p.pid)
        self.assertEqual(first.wait(), SUP_EXIT_OK, first.text()[-3000:])
        self.check_exactly_once(first.text())

    def test_resume_right_after_group_kill(self):
        """SIGKILL of the supervisor's process group, then `weir run --from`
        at once: the new run waits for the dying worker's locks instead of
        failing, and the output is exactly-once."""
        job, (cid, chk) = self.start_and_kill()
        r = self.run_weir("resume", "--from", chk, job)
        self.assertEqual(r.wait(), SUP_EXIT_OK, r.text()[-3000:])
        self.assertIn("restoring checkpoint %d" % cid, r.text())
        self.check_exactly_once(r.text())

    def hold(self, path, seconds):
        """Holds an flock on `path` (with this pid in it) from a thread."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())

        def release():
            time.sleep(seconds)
            os.close(fd)
        t = threading.Thread(target=release, daemon=True)
        t.start()
        return t

    def test_waits_for_a_state_lock_still_held(self):
        """A state directory lock held for a moment (a killed worker's
        threads still exiting) is waited for: before, the worker failed at
        once with 'in use' and exit code 4."""
        job = self.make_job(n=6000, rate=0)
        t = self.hold(os.path.join(self.d, "state", "eo", "LOCK"), 1.5)
        r = self.run_weir("waits", job)
        self.assertEqual(r.wait(), SUP_EXIT_OK, r.text()[-3000:])
        t.join()
        self.check_exactly_once(r.text())

    def test_lock_held_gives_exit_5(self):
        """Locks held longer than runtime.lock_wait: exit 5, naming the
        directory and the holder, in both modes of weir run."""
        job = self.make_job(n=1000, rate=0,
                            extra="runtime: {lock_wait: 300ms}\n")
        cases = [(os.path.join(self.d, "ckpt", "eo", ".run.lock"), (),
                  "checkpoint directory"),
                 (os.path.join(self.d, "state", "eo", ".run.lock"),
                  ("--no-supervisor",), "state directory"),
                 (os.path.join(self.d, "state", "eo", "LOCK"), (),
                  "state directory")]
        for i, (path, args, what) in enumerate(cases):
            with self.subTest(path=path, args=args):
                t = self.hold(path, 20)
                r = self.run_weir("held%d" % i, *(args + (job,)))
                rc = r.wait(timeout=30)
                text = r.text()
                self.assertEqual(rc, SUP_EXIT_LOCKED, text)
                self.assertRegex(
                    text, r"%s \S+ is locked by process %d \(lock file %s\)"
                    % (what, os.getpid(), re.escape(path)))
                self.assertNotIn("no valid checkpoint", text)
                os.unlink(path)  # the next case starts unlocked
                del t


class PluginExit(Base):
    # LeakSanitizer would turn a plugin's exit() amid running threads into
    # exit code 23; the exit code is what these cases are about.
    def run_weir(self, name, *args, extra_env=None):
        asan = os.environ.get("ASAN_OPTIONS", "")
        e = {"ASAN_OPTIONS": (asan + ":" if asan else "") + "detect_leaks=0"}
        e.update(extra_env or {})
        return super().run_weir(name, *args, extra_env=e)

    def job(self, code, restart):
        return self.write("exit%d.yaml" % code, """\
job: t
checkpoint: {dir: '%s/ckpt', interval: 100ms}
restart: %s
operators:
  - {id: src, type: gen, config: {count: 200000, keys: 100, rate: 100000}}
  - {id: bye, type: exitop, inputs: [src], config: {at: 30000, code: %d}}
  - {id: sink, type: discard, inputs: [bye]}
""" % (self.d, restart, code))

    def test_exit_zero_is_a_failure(self):
        """A plugin's exit(0) is no finished job: before, the supervisor
        reported 'job finished' and exit 0 with 30,000 of 200,000 records."""
        r = self.run_weir("none", self.job(0, "{strategy: none}"))
        rc = r.wait(timeout=60)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_FAILED, text)
        self.assertRegex(text, r"exited with code 0 without reporting it")
        self.assertNotIn("job 't' finished", text)

    def test_exit_codes_restarted_under_the_strategy(self):
        """exit(0) and exit(11) (the worker's own 'unrecoverable' code) from
        a plugin are failures the strategy restarts, then gives up on."""
        for code in (0, 11):
            with self.subTest(code=code):
                r = self.run_weir("fixed%d" % code, self.job(
                    code, "{strategy: fixed_delay, attempts: 1, delay: 0ms}"))
                rc = r.wait(timeout=60)
                text = r.text()
                self.assertEqual(rc, SUP_EXIT_EXHAUSTED, text)
                self.assertEqual(len(r.workers()), 2, text)
                self.assertEqual(len(re.findall(
                    r"exited with code %d without reporting it" % code,
                    text)), 2, text)


class Retry(Base):
    JOB = """\
job: r
runtime: {retry_timeout: %s}
restart: {strategy: none}
operators:
  - {id: src, type: gen, config: {count: 2000, keys: 10}}
  - {id: flaky, type: flaky, inputs: [src], config: {every: 100, times: %d}}
  - {id: sink, type: discard, inputs: [flaky]}
"""

    def test_retried_records_all_arrive(self):
        """WEIR_ERETRY from process(): the record is offered again, and
        every record reaches the sink once. Before, the job failed on the
        first WEIR_ERETRY."""
        r = self.run_weir("ok", self.write("ok.yaml", self.JOB % ("10s", 3)))
        rc = r.wait(timeout=60)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_OK, text[-3000:])
        self.assertRegex(text, r"sink#0: 2000 records in")

    def test_retry_gives_up_after_retry_timeout(self):
        r = self.run_weir("no", self.write("no.yaml",
                                           self.JOB % ("300ms", -1)))
        rc = r.wait(timeout=60)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_FAILED, text[-3000:])
        self.assertRegex(text, r"\[flaky#0\] process\(\) still answered "
                         r"WEIR_ERETRY after \d+ ms \(runtime.retry_timeout\)")
        self.assertIn("flaky: backend unavailable", text)


class Stop(Base):
    SLOW = """\
job: s
runtime: {stop_timeout: 1s}
restart: {strategy: fixed_delay, attempts: 3, delay: 0ms}
operators:
  - {id: src, type: gen, config: {count: 0, keys: 100}}
  - {id: sink, type: slow, inputs: [src], chain: false,
     config: {delay_us: 900000}}
"""

    def test_first_sigterm_ends_a_job_that_cannot_drain(self):
        """A sink that takes ~1 s per record cannot drain its queue: the
        first SIGTERM ends the job after runtime.stop_timeout, not never."""
        r = self.run_weir("slow", self.write("slow.yaml", self.SLOW))
        r.wait_for(r"all \d+ subtasks running")
        time.sleep(0.3)
        t0 = time.time()
        os.kill(r.p.pid, signal.SIGTERM)
        rc = r.wait(timeout=30)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_FAILED, text)
        self.assertLess(time.time() - t0, 20, text)
        self.assertIn("did not stop within runtime.stop_timeout (1000 ms)",
                      text)
        self.assertIn("did not stop cleanly: not restarting", text)

    def test_stopped_worker_is_killed(self):
        """A worker that cannot even end itself (SIGSTOP) is killed by the
        supervisor stop_timeout plus a margin after the first SIGTERM."""
        r = self.run_weir("stopped", self.write("slow.yaml", self.SLOW))
        r.wait_for(r"all \d+ subtasks running")
        worker = r.workers()[-1]
        os.kill(worker, signal.SIGSTOP)
        os.kill(r.p.pid, signal.SIGTERM)
        rc = r.wait(timeout=40)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_FAILED, text)
        self.assertRegex(text, r"worker %d did not stop within [\d.]+ s: "
                         r"killing it" % worker)
        self.assertRegex(text, r"worker %d killed by SIGKILL" % worker)


class FailedCheckpoints(Base):
    def test_tolerable_failed_checkpoints(self):
        """Checkpoints that never complete (a 1 ms timeout behind a slow
        sink) fail the job after tolerable_failed_checkpoints + 1 in a row;
        before, the job ran on without a checkpoint for ever. The sink has
        chain: false so that barriers queue behind records in its channel
        (chained, a barrier reaches it as soon as gen sends it)."""
        path = self.write("ck.yaml", """\
job: c
checkpoint: {dir: '%s/ckpt', interval: 50ms, timeout: 1ms,
             tolerable_failed_checkpoints: 2}
restart: {strategy: none}
operators:
  - {id: src, type: gen, config: {count: 0, keys: 100, rate: 2000}}
  - {id: sink, type: slow, inputs: [src], chain: false,
     config: {delay_us: 2000}}
""" % self.d)
        r = self.run_weir("ck", path)
        rc = r.wait(timeout=60)
        text = r.text()
        self.assertEqual(rc, SUP_EXIT_FAILED, text[-3000:])
        self.assertEqual(len(re.findall(r"checkpoint \d+ aborted", text)), 3,
                         text[-3000:])
        self.assertIn("3 checkpoints in a row failed, more than "
                      "checkpoint.tolerable_failed_checkpoints (2) allows",
                      text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
