#!/usr/bin/python3
"""End-to-end tests of the `weir` command, run as a real process.

Each test writes its job files into a fresh temporary directory, runs the
built bin/weir there with subprocess (stdout and stderr go to files, so a
chatty run never blocks on a pipe) and a timeout, and checks exit codes,
messages and output files. Expected values come from the job inputs or are
written by hand here, never from an earlier run of weir.

No process may outlive its test: the test process makes itself a child
subreaper (prctl PR_SET_CHILD_SUBREAPER), so anything weir leaves behind
(a worker, a grandchild) is re-parented to it; after every test those are
reaped, and live ones are killed by pid and fail the test.

Any "Sanitizer" or "runtime error:" on weir's stderr fails the test, so the
suite is also a sanitizer check when weir is built with -DWEIR_SANITIZE=ON.

Configuration (environment; ctest sets them, see CMakeLists.txt):
  WEIR_BIN          the weir binary (required)
  WEIR_PLUGIN_DIR   the build's plugin folder (bundled operators; required)
  WEIR_TESTOPS_DIR  the folder of testops.so (fail, slow, relay; required)
  WEIR_SOURCE_DIR   the repository root (default: two folders up from here)

Run by hand:
  WEIR_BIN=build/bin/weir WEIR_PLUGIN_DIR=build/plugins \\
  WEIR_TESTOPS_DIR=build/tests/runtime/testops /usr/bin/python3 \\
  tests/cli/test_cli.py -v
"""
import collections
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("WEIR_SOURCE_DIR",
                                            os.path.join(HERE, "..", "..")))


def env_path(name):
    """An absolute path from the environment (tests run in other folders),
    or "" when unset."""
    v = os.environ.get(name, "")
    return os.path.abspath(v) if v else ""


WEIR = env_path("WEIR_BIN")
PLUGIN_DIR = env_path("WEIR_PLUGIN_DIR")
TESTOPS_DIR = env_path("WEIR_TESTOPS_DIR")
PYTHON = "/usr/bin/python3"

# Longest a run that should finish is given before it counts as hung.
RUN_TIMEOUT = 30.0
# How long weir may take to exit after a stop signal.
STOP_TIMEOUT = 5.0

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Makes orphaned descendants of this process its children."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def proc_stat(pid):
    """(state, ppid) of a process from /proc/PID/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def children_of(parent):
    """Live (non-zombie) children of `parent`, and zombie ones."""
    live, zombies = [], []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[1] == parent:
            (zombies if st[0] == "Z" else live).append(pid)
    return live, zombies


def descendants(root):
    """`root` and every process below it."""
    kids = collections.defaultdict(list)
    for pid in all_pids():
        st = proc_stat(pid)
        if st:
            kids[st[1]].append(pid)
    out, i = [root], 0
    while i < len(out):
        out.extend(kids.get(out[i], []))
        i += 1
    return out


def proc_status_field(pid, name):
    """The text after "NAME:" in /proc/PID/status, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def vm_hwm_kb(pid):
    v = proc_status_field(pid, "VmHWM")
    return int(v.split()[0]) if v else 0


def handles_signal(pid, sig):
    """Whether `pid` blocks, catches or ignores `sig` (so the signal no
    longer kills it by its default action). While a thread waits in
    sigtimedwait() the kernel shows the waited-for signals as unblocked in
    SigBlk, so waiting there counts too."""
    bit = 1 << (sig - 1)
    for field in ("SigBlk", "SigCgt", "SigIgn"):
        v = proc_status_field(pid, field)
        if v and int(v, 16) & bit:
            return True
    try:
        with open("/proc/%d/wchan" % pid) as f:
            return "sigtimedwait" in f.read()
    except OSError:
        return False


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


class Run:
    """One weir process: started in its own session (so a signal can go to
    its process group, like Ctrl-C in a terminal), output in files."""

    def __init__(self, test, args, cwd):
        self.test = test
        self.args = [WEIR] + list(args)
        n = len(test.runs)
        self.out_path = os.path.join(test.tmp, ".weir-%d.out" % n)
        self.err_path = os.path.join(test.tmp, ".weir-%d.err" % n)
        env = dict(os.environ)
        env["WEIR_LOG"] = "info"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, cwd=cwd, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        self.pid = self.proc.pid
        self.peak_kb = 0
        self._sampler = None
        self._sampling = False
        test.runs.append(self)

    # -- reading -------------------------------------------------------------

    @property
    def stdout(self):
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    @property
    def stderr(self):
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def describe(self):
        return "command: %s\nexit: %s\nstderr:\n%s" % (
            " ".join(self.args), self.proc.returncode, self.stderr[-4000:])

    # -- waiting -------------------------------------------------------------

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """Waits for the exit; fails the test (after killing the process
        group) when it takes longer than `timeout` seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.test.fail("weir did not exit within %.1f s\n%s"
                           % (timeout, self.describe()))

    def wait_handles(self, sig, timeout=10.0):
        """Waits until weir no longer dies of `sig` by default (it blocks or
        catches it: the job is being set up or runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                self.test.fail("weir ended before it was stopped\n%s"
                               % self.describe())
            if handles_signal(self.pid, sig):
                return
            time.sleep(0.01)
        self.kill()
        self.test.fail("weir never blocked or caught signal %d\n%s"
                       % (sig, self.describe()))

    def kill(self):
        """SIGKILLs the process group and reaps weir; harmless when done."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.stop_sampling()

    # -- memory --------------------------------------------------------------

    def start_sampling(self, period=0.02):
        """Polls the peak resident set (VmHWM) of weir and every process
        below it (the worker) every `period` seconds into self.peak_kb."""
        self._sampling = True

        def loop():
            while self._sampling and self.proc.poll() is None:
                for pid in descendants(self.pid):
                    self.peak_kb = max(self.peak_kb, vm_hwm_kb(pid))
                time.sleep(period)

        self._sampler = threading.Thread(target=loop, daemon=True)
        self._sampler.start()

    def stop_sampling(self):
        self._sampling = False
        if self._sampler:
            self._sampler.join()
            self._sampler = None


class WeirTest(unittest.TestCase):
    """Base: a temp dir per test, weir runs in it, leftovers are caught."""

    def setUp(self):
        for what, path in (("WEIR_BIN", WEIR), ("WEIR_PLUGIN_DIR", PLUGIN_DIR),
                           ("WEIR_TESTOPS_DIR", TESTOPS_DIR)):
            if not path or not os.path.exists(path):
                self.fail("%s is not set or does not exist: %r" % (what, path))
        self.tmp = tempfile.mkdtemp(prefix="weir-cli-")
        self.runs = []
        # Cleanups run last-in first-out: leftovers are checked after every
        # run was killed and reaped, and the folder goes last.
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.addCleanup(self.check_no_leftovers)
        self.addCleanup(self.kill_runs)

    def kill_runs(self):
        for r in self.runs:
            r.kill()

    def check_no_leftovers(self):
        """Every process weir started must be gone: orphans were re-parented
        to this (subreaper) process. Zombies are reaped; live ones get a
        moment to die (a worker killed by PR_SET_PDEATHSIG), then are
        killed by pid and fail the test."""
        deadline = time.monotonic() + 3.0
        while True:
            live, zombies = children_of(os.getpid())
            for pid in zombies:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not live or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if live:
            names = ["%d: %s" % (pid, cmdline(pid)) for pid in live]
            for pid in live:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
            self.fail("processes left behind:\n  " + "\n  ".join(names))

    # -- helpers -------------------------------------------------------------

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def start(self, *args, cwd=None):
        return Run(self, args, cwd or self.tmp)

    def run_weir(self, *args, cwd=None, timeout=RUN_TIMEOUT):
        """Runs weir to its end; returns the Run (exit code in .rc)."""
        r = self.start(*args, cwd=cwd)
        r.rc = r.wait(timeout)
        self.assert_no_sanitizer_report(r)
        return r

    def dirs(self, testops=False):
        d = ["--dir", PLUGIN_DIR]
        return d + ["--dir", TESTOPS_DIR] if testops else d

    # With allow_crash, the report of the deliberate SIGSEGV that testops'
    # `fail` operator raises, as ASan prints it in a sanitizer build.
    CRASH_REPORTS = (re.compile(r"AddressSanitizer:DEADLYSIGNAL"),
                     re.compile(r"AddressSanitizer: SEGV"),
                     re.compile(r"AddressSanitizer can not provide"))

    def assert_no_sanitizer_report(self, r, allow_crash=False):
        for line in r.stderr.splitlines():
            if "Sanitizer" in line or "runtime error:" in line:
                if allow_crash and any(p.search(line)
                                       for p in self.CRASH_REPORTS):
                    continue
                self.fail("sanitizer report\n" + r.describe())

    def assert_exit(self, r, code):
        self.assertEqual(r.proc.returncode, code, r.describe())

    def assert_in_stderr(self, r, text):
        self.assertIn(text, r.stderr, r.describe())

    def discard_records(self, r):
        """N of every "discard <id>[<i>]: records=N" line on stderr (the
        discard sink's report, format documented in discard.c)."""
        return [int(n) for n in
                re.findall(r"discard \S+\[\d+\]: records=(\d+)", r.stderr)]


# ---------------------------------------------------------------------------
# 1. The example job
# ---------------------------------------------------------------------------

class ExampleJob(WeirTest):

    def test_clicks_example(self):
        """`weir run examples/clicks/clicks.yaml` as the README has it, with
        the default plugin folder, in a folder that looks like the repo."""
        examples = os.path.join(SOURCE_DIR, "examples")
        os.symlink(examples, os.path.join(self.tmp, "examples"))
        r = self.run_weir("run", "examples/clicks/clicks.yaml")
        self.assert_exit(r, 0)
        out = os.path.join(self.tmp, "out", "clicks-counts.jsonl")
        self.assertTrue(os.path.isfile(out), r.describe())

        # The example's own oracle.
        chk = subprocess.run(
            [PYTHON, os.path.join(examples, "clicks", "expected.py"),
             "--check", out], capture_output=True, text=True, timeout=30)
        self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr)
        self.assertIn("OK:", chk.stdout)

        # An independent one: for each user, in input order, the k-th click
        # with event time ts_k must come out as count k with ts_k, in that
        # order (one file_sink subtask; a key always goes through the same
        # count subtask and a channel keeps order).
        want = collections.defaultdict(list)
        with open(os.path.join(examples, "clicks", "clicks.jsonl")) as f:
            for line in f:
                if line.strip():
                    c = json.loads(line)
                    want[c["user"]].append((len(want[c["user"]]) + 1, c["ts"]))
        got = collections.defaultdict(list)
        lines = 0
        with open(out) as f:
            for line in f:
                rec = json.loads(line)
                self.assertEqual(rec["value"]["key"], rec["key"], line)
                got[rec["key"]].append((rec["value"]["count"], rec["ts"]))
                lines += 1
        self.assertEqual(lines, sum(len(v) for v in want.values()))
        self.assertEqual(sorted(got), sorted(want))
        for user in want:
            self.assertEqual(got[user], want[user], "user %s" % user)


# ---------------------------------------------------------------------------
# 2, 3. Failing and crashing operators
# ---------------------------------------------------------------------------

class Failures(WeirTest):

    def test_operator_error_fails_the_job(self):
        job = self.write("boom.yaml", """\
job: boom
operators:
  - {id: src, type: gen, config: {count: 1000, keys: 10}}
  - id: boom
    type: fail
    inputs: [src]
    config: {at: 7, message: 'record seven is bad (xyzzy)'}
""")
        r = self.run_weir("run", *self.dirs(testops=True), job)
        self.assert_exit(r, 1)
        self.assert_in_stderr(
            r, "operator 'boom' (fail) subtask 1/1: process: "
               "record seven is bad (xyzzy)")

    def test_operator_error_in_open(self):
        job = self.write("boom.yaml", """\
operators:
  - {id: src, type: gen, config: {count: 10}}
  - {id: boom, type: fail, inputs: [src],
     config: {in_open: true, message: 'no can open'}}
""")
        r = self.run_weir("run", *self.dirs(testops=True), job)
        self.assert_exit(r, 1)
        self.assert_in_stderr(
            r, "operator 'boom' (fail) subtask 1/1: open: no can open")

    def test_plugin_segfault_ends_the_run(self):
        """A plugin that crashes (raises SIGSEGV). Under the supervisor the
        worker dies and `weir run` exits non-zero (restart strategy none)
        naming the signal; it must end, never hang. In an ASan build ASan
        reports the SEGV and the worker exits 1 instead."""
        job = self.write("crash.yaml", """\
operators:
  - {id: src, type: gen, config: {count: 1000, keys: 10}}
  - {id: boom, type: fail, inputs: [src], config: {at: 5, crash: true}}
""")
        r = self.start("run", *self.dirs(testops=True), job)
        rc = r.wait(20.0)
        self.assert_no_sanitizer_report(r, allow_crash=True)
        self.assertNotEqual(rc, 0, r.describe())
        if rc > 0:
            # Someone outlived the crash and reported it: the supervisor
            # names the signal, or ASan reported the SEGV.
            self.assertIn("SEGV", r.stderr, r.describe())


# ---------------------------------------------------------------------------
# 4. Stopping with signals
# ---------------------------------------------------------------------------

UNBOUNDED = """\
job: forever
operators:
  - {id: src, type: gen, config: {count: 0, keys: 100}}
  - {id: sink, type: discard, inputs: [src]}
"""

# A source far faster than its sink: the channels fill up, so a graceful
# stop (drain everything in flight at 100 ms a record) would take minutes.
# chain: false keeps the channel between them.
SLOW_SINK = """\
job: slow
operators:
  - {id: src, type: gen, config: {count: 0, keys: 100}}
  - {id: sink, type: slow, inputs: [src], chain: false,
     config: {delay_us: 100000}}
"""


class Signals(WeirTest):

    def stop_unbounded(self, sig, to_group, *extra):
        job = self.write("forever.yaml", UNBOUNDED)
        r = self.start("run", *extra, *self.dirs(), job)
        r.wait_handles(sig)
        time.sleep(0.5)  # let records flow
        self.assertTrue(r.running(), r.describe())
        if to_group:
            os.killpg(r.pid, sig)  # as Ctrl-C in a terminal does
        else:
            os.kill(r.pid, sig)  # as kill(1) or a service manager does
        rc = r.wait(STOP_TIMEOUT)
        self.assert_no_sanitizer_report(r)
        self.assertEqual(rc, 0, r.describe())
        self.assertIn("stopping", r.stderr, r.describe())
        counts = self.discard_records(r)
        self.assertEqual(len(counts), 1, r.describe())
        self.assertGreater(counts[0], 0, r.describe())

    def test_sigint_to_group_stops_gracefully(self):
        self.stop_unbounded(signal.SIGINT, True)

    def test_sigint_stops_gracefully(self):
        self.stop_unbounded(signal.SIGINT, False)

    def test_sigterm_stops_gracefully(self):
        self.stop_unbounded(signal.SIGTERM, False)

    def test_sigterm_stops_gracefully_without_supervisor(self):
        self.stop_unbounded(signal.SIGTERM, False, "--no-supervisor")

    def second_sigint(self, *extra):
        job = self.write("slow.yaml", SLOW_SINK)
        r = self.start("run", *extra, *self.dirs(testops=True), job)
        r.wait_handles(signal.SIGINT)
        time.sleep(0.5)
        os.kill(r.pid, signal.SIGINT)
        time.sleep(0.3)
        # Premise: the graceful drain is still going on.
        self.assertTrue(r.running(), "stopped at the first SIGINT\n"
                        + r.describe())
        os.kill(r.pid, signal.SIGINT)
        rc = r.wait(STOP_TIMEOUT)
        self.assert_no_sanitizer_report(r)
        # Any exit status, but an exit of its own (not killed by a signal).
        self.assertGreaterEqual(rc, 0, r.describe())
        return r

    def test_second_sigint_ends_the_run(self):
        """Supervised: the second SIGINT kills the worker."""
        self.second_sigint()

    # The second SIGINT cancels between records, however slow the operator.
    def test_second_sigint_ends_the_run_without_supervisor(self):
        self.second_sigint("--no-supervisor")


# ---------------------------------------------------------------------------
# 5. Usage and bad job files
# ---------------------------------------------------------------------------

GOOD_JOB = """\
job: good
operators:
  - {id: src, type: gen, config: {count: 10}}
  - {id: sink, type: discard, inputs: [src]}
"""

# An unknown operator type: "nosuch" starts at line 4, column 11.
BAD_TYPE = """\
job: bad1
operators:
  - id: src
    type: nosuch
"""

# A parameter of the wrong type: "lots" starts at line 5, column 21.
BAD_PARAM = """\
job: bad2
operators:
  - id: src
    type: gen
    config: {count: lots}
"""


class Usage(WeirTest):

    def test_validate_good_file(self):
        job = self.write("good.yaml", GOOD_JOB)
        r = self.run_weir("validate", *self.dirs(), job)
        self.assert_exit(r, 0)
        self.assertIn("ok", r.stdout, r.describe())

    def test_validate_bad_files(self):
        for name, text, pos in (("bad1.yaml", BAD_TYPE, "4:11"),
                                ("bad2.yaml", BAD_PARAM, "5:21")):
            with self.subTest(name):
                job = self.write(name, text)
                r = self.run_weir("validate", *self.dirs(), job)
                self.assert_exit(r, 2)
                self.assert_in_stderr(r, "%s:%s:" % (job, pos))

    def test_run_bad_file(self):
        job = self.write("bad2.yaml", BAD_PARAM)
        r = self.run_weir("run", *self.dirs(), job)
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "%s:5:21:" % job)

    def test_run_missing_file(self):
        r = self.run_weir("run", *self.dirs(),
                          os.path.join(self.tmp, "nope.yaml"))
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "nope.yaml")

    def test_run_without_arguments(self):
        r = self.run_weir("run")
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "usage: weir run")

    def test_run_unknown_option(self):
        job = self.write("good.yaml", GOOD_JOB)
        r = self.run_weir("run", "--no-such-option", job)
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "usage: weir run")

    def test_unknown_command(self):
        r = self.run_weir("frobnicate")
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "frobnicate")
        self.assert_in_stderr(r, "usage: weir")

    def test_no_command(self):
        r = self.run_weir()
        self.assert_exit(r, 2)
        self.assert_in_stderr(r, "usage: weir")


# ---------------------------------------------------------------------------
# 6. A broken plugin file
# ---------------------------------------------------------------------------

class BrokenPlugin(WeirTest):

    def test_bad_so_warns_and_the_job_runs(self):
        bad_dir = os.path.join(self.tmp, "bad-plugins")
        os.mkdir(bad_dir)
        bad = os.path.join(bad_dir, "bad.so")
        with open(bad, "w") as f:
            f.write("this is not an ELF shared object\n")
        job = self.write("job.yaml", """\
operators:
  - {id: src, type: gen, config: {count: 1000}}
  - {id: sink, type: discard, inputs: [src]}
""")
        r = self.run_weir("run", "--dir", bad_dir, "--dir", PLUGIN_DIR, job)
        self.assert_exit(r, 0)
        warnings = [l for l in r.stderr.splitlines()
                    if "warning" in l.lower() and bad in l]
        self.assertTrue(warnings, "no warning naming %s\n%s"
                        % (bad, r.describe()))
        self.assertEqual(self.discard_records(r), [1000], r.describe())


# ---------------------------------------------------------------------------
# 7. Back pressure, seen from outside as memory
# ---------------------------------------------------------------------------

def slow_job(count, capacity):
    # chain: false: the channel between the two is what these tests measure.
    return """\
job: pressure
runtime: {channel_capacity: %d, batch_size: 16, buffer_timeout: 1ms}
operators:
  - {id: src, type: gen, config: {count: %d, keys: 100}}
  - {id: sink, type: slow, inputs: [src], config: {delay_us: 50},
     chain: false}
""" % (capacity, count)


class BackPressure(WeirTest):

    BOUND_MB = 200
    MARGIN_MB = 64

    def test_bounded_run_finishes_in_bounded_memory(self):
        job = self.write("bounded.yaml", slow_job(20000, 2))
        r = self.start("run", *self.dirs(testops=True), job)
        r.start_sampling()
        rc = r.wait(RUN_TIMEOUT)
        r.stop_sampling()
        self.assert_no_sanitizer_report(r)
        self.assertEqual(rc, 0, r.describe())
        self.assertIn("slow sink received 20000 records", r.stderr,
                      r.describe())
        self.assertGreater(r.peak_kb, 0)
        self.assertLess(r.peak_kb, self.BOUND_MB * 1024, r.describe())

    def test_small_channels_hold_less_than_big_ones(self):
        """The same unbounded gen -> slow sink job twice, side by side (same
        time, same machine load): with 2 batches a channel the source waits
        for the sink; with 100000 it queues records as fast as it makes
        them (about 180 MB a second, measured). Watched for at least 1 s
        and until the big one holds MARGIN_MB more than the small one."""
        small = self.start("run", *self.dirs(testops=True),
                           self.write("small.yaml", slow_job(0, 2)))
        big = self.start("run", *self.dirs(testops=True),
                         self.write("big.yaml", slow_job(0, 100000)))
        for r in (small, big):
            r.wait_handles(signal.SIGINT)
            r.start_sampling()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 8.0:
            if (time.monotonic() - t0 >= 1.0 and
                    big.peak_kb - small.peak_kb > self.MARGIN_MB * 1024):
                break
            time.sleep(0.05)
        for r in (small, big):
            self.assertTrue(r.running(), r.describe())
            r.kill()  # a measurement: how it ends does not matter here
            self.assert_no_sanitizer_report(r)
        msg = "peak RSS %d kB with capacity 2, %d kB with 100000" % (
            small.peak_kb, big.peak_kb)
        self.assertGreater(small.peak_kb, 0, msg)
        self.assertLess(small.peak_kb, self.BOUND_MB * 1024, msg)
        self.assertGreater(big.peak_kb - small.peak_kb,
                           self.MARGIN_MB * 1024, msg)


# ---------------------------------------------------------------------------
# 8. The README's quick start
# ---------------------------------------------------------------------------

class QuickStart(unittest.TestCase):

    def test_readme_quick_start_commands(self):
        with open(os.path.join(SOURCE_DIR, "README.md"),
                  encoding="utf-8") as f:
            readme = f.read()
        m = re.search(r"^## Quick start[^\n]*\n(.*?)^## ", readme,
                      re.S | re.M)
        self.assertIsNotNone(m, "no '## Quick start' section")
        block = re.search(r"^```[a-z]*\n(.*?)^```", m.group(1), re.S | re.M)
        self.assertIsNotNone(block, "no code block in Quick start")
        commands = [l.split("#", 1)[0].strip()
                    for l in block.group(1).splitlines()]
        commands = [c for c in commands if c]
        self.assertEqual(commands, ["tools/quickstart.sh", "tools/test.sh"])
        for c in commands:
            path = os.path.join(SOURCE_DIR, c)
            self.assertTrue(os.path.isfile(path), path)
            self.assertTrue(os.access(path, os.X_OK), path + " not executable")
            with open(path, encoding="utf-8") as f:
                self.assertTrue(f.readline().startswith("#!"),
                                path + " has no #! line")


def setUpModule():
    become_subreaper()


if __name__ == "__main__":
    unittest.main()
