"""weirproc - what the Python end-to-end tests share: the weir command as a
process (a one-shot `weir ARGS`, a supervised `weir run` in its own session
with its log in a file), a temporary directory per test whose runs are
killed at teardown, and a digest of a directory tree (to prove that a
command left it unchanged), and the records of a file_sink's committed part
files.

WEIR names the binary (default: `weir` on PATH). Standard library only."""
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

WEIR = os.environ.get("WEIR", "weir")


def env():
    """The environment of a weir process: info logging, no crash point."""
    e = dict(os.environ)
    e["WEIR_LOG"] = "info"
    e.pop("WEIR_CRASH_AT", None)
    return e


def weir(*args, check=True):
    """Runs `weir ARGS`; returns (exit code, stdout, stderr)."""
    p = subprocess.run([WEIR] + list(args), capture_output=True, text=True,
                       env=env(), timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("weir %s: exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.stdout[-2000:], p.stderr[-3000:]))
    return p.returncode, p.stdout, p.stderr


def committed(outdir):
    """Every record of the committed part files (part-*.jsonl) of a
    file_sink output directory, in file order."""
    recs = []
    for part in sorted(glob.glob(os.path.join(outdir, "part-*.jsonl"))):
        with open(part) as f:
            recs += [json.loads(line) for line in f]
    return recs


def tree_digest(root):
    """Every file and directory under root: size, mtime and sha256."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            h = ""
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns, h)
    return out


class Run:
    """A supervised `weir run ARGS` in its own session, its log in
    d/name.log."""

    def __init__(self, d, name, args):
        self.log_path = os.path.join(d, name + ".log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen([WEIR, "run"] + list(args),
                                  stdout=self.log, stderr=self.log, env=env(),
                                  start_new_session=True)

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def wait(self, timeout=120):
        """The exit code, or None after a timeout; the run is gone after."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()

    def kill(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait()
        self.log.close()


class RunsTestCase(unittest.TestCase):
    """A test with its own temporary directory self.d (prefix: the class's
    `tmp_prefix`) and a list self.runs of Run objects, all killed and the
    directory removed at teardown."""

    tmp_prefix = "weir-test-"

    def setUp(self):
        self.d = tempfile.mkdtemp(prefix=self.tmp_prefix)
        self.runs = []

    def tearDown(self):
        for r in self.runs:
            if r.p.poll() is None:
                os.killpg(r.p.pid, signal.SIGKILL)
                r.p.wait()
        shutil.rmtree(self.d, ignore_errors=True)
