#!/usr/bin/python3
"""`weir ctl` against real supervised runs: status, checkpoint, savepoint,
stop with a savepoint and a new run from it (exactly-once output, checked
against the oracle of tests/exactly_once), cancel, and endpoints that must
be refused: a stale socket, a foreign server, another user.

Run one case: test_ctl.py Class.test_name. Environment: WEIR,
WEIR_PLUGIN_DIR, EO_DIR (tests/exactly_once, for its job and oracle).
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ.get("EO_DIR", ""))
from test_exactly_once import JOB, committed, write_input  # noqa: E402

WEIR = os.environ.get("WEIR", "weir")
PLUGINS = os.environ.get("WEIR_PLUGIN_DIR", "")


def env():
    e = dict(os.environ)
    e["WEIR_LOG"] = "info"
    e.pop("WEIR_CRASH_AT", None)
    return e


class Base(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.mkdtemp(prefix="weir-ctl-")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.d, ignore_errors=True)

    def make_job(self, n=40000, rate=8000, restart=None):
        self.tally = write_input(os.path.join(self.d, "in.jsonl"), n, 200, 7)
        text = JOB.format(d=self.d, rate=rate, mode="exactly_once",
                          cache=100000)
        if restart:
            text = re.sub(r"(?m)^restart: .*$", "restart: " + restart, text)
        self.job = os.path.join(self.d, "job.yaml")
        with open(self.job, "w") as f:
            f.write(text)
        return self.job

    def run_job(self, *args, name="run"):
        log = open(os.path.join(self.d, name + ".log"), "w")
        p = subprocess.Popen([WEIR, "run", "--dir", PLUGINS] + list(args) +
                             [self.job], stdout=log, stderr=log, env=env())
        p.log_path = log.name
        self.procs.append(p)
        return p

    def log(self, p):
        with open(p.log_path) as f:
            return f.read()

    def ctl(self, *args, timeout=120):
        return subprocess.run([WEIR, "ctl"] + list(args), capture_output=True,
                              text=True, timeout=timeout, env=env())

    def job_dir(self):
        return os.path.join(self.d, "ckpt", "eo")

    def wait_endpoint(self, p):
        deadline = time.time() + 30
        while time.time() < deadline:
            r = self.ctl(self.job_dir(), "status", "--json")
            if r.returncode == 0 and json.loads(r.stdout).get("tasks"):
                return json.loads(r.stdout)
            self.assertIsNone(p.poll(), self.log(p)[-3000:])
            time.sleep(0.1)
        self.fail("no status from the job:\n" + self.log(p)[-3000:])

    def check_exactly_once(self, text):
        seen = committed(os.path.join(self.d, "out"))
        self.assertEqual(sorted(seen), sorted(self.tally), text[-3000:])
        for k, n in self.tally.items():
            self.assertEqual(sorted(seen[k]), list(range(1, n + 1)),
                             "key %s\n%s" % (k, text[-3000:]))


class Commands(Base):
    def test_status(self):
        self.make_job(n=200000)  # runs ~25 s: past the first state sample
        p = self.run_job()
        st = self.wait_endpoint(p)
        self.assertTrue(st["ok"])
        self.assertEqual(st["job"], "eo")
        self.assertEqual(st["supervisor"]["state"], "running")
        self.assertEqual(st["supervisor"]["restarts"], 0)
        ops = sorted({(t["operator"], t["subtask"]) for t in st["tasks"]})
        self.assertEqual(ops, [("count", 0), ("count", 1), ("sink", 0),
                               ("sink", 1), ("src", 0)])
        self.assertIn("completed", st["checkpoints"])
        time.sleep(11)  # states are sampled every 10 s
        st = json.loads(self.ctl(self.job_dir(), "status", "--json").stdout)
        counts = [t for t in st["tasks"] if t["operator"] == "count"]
        keys = sum(s["keys"] for t in counts for s in t["states"])
        self.assertGreater(keys, 0, st)
        self.assertEqual({s["name"] for t in counts for s in t["states"]},
                         {"count"})
        self.assertGreater(sum(t["in_rate"] for t in counts), 0, st)
        text = self.ctl(self.job_dir(), "status")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"job eo: running")
        self.assertRegex(text.stdout, r"state count +\d+ keys")

    def test_status_during_restart_delay(self):
        self.make_job(restart="{strategy: fixed_delay, attempts: 2, "
                      "delay: 5s}")
        p = self.run_job()
        st = self.wait_endpoint(p)
        os.kill(st["supervisor"]["worker"], 9)
        deadline = time.time() + 10
        st = {}
        while time.time() < deadline:
            r = self.ctl(self.job_dir(), "status", "--json")
            if r.returncode == 0:
                st = json.loads(r.stdout)
                if st["supervisor"]["state"] == "restarting":
                    break
            time.sleep(0.05)
        self.assertEqual(st.get("supervisor", {}).get("state"), "restarting",
                         st)
        self.assertRegex(st["supervisor"]["last_failure"], r"SIGKILL")
        r = self.ctl(self.job_dir(), "checkpoint")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no worker is running now (restarting)", r.stderr)

    def test_checkpoint_savepoint_stop_and_resume(self):
        """checkpoint and savepoint while running; stop --savepoint; a new
        run from that savepoint; the committed output of both runs together
        is exactly-once."""
        self.make_job(n=120000)  # ~15 s: the commands land before the end
        p = self.run_job()
        self.wait_endpoint(p)
        r = self.ctl(self.job_dir(), "checkpoint")
        self.assertEqual(r.returncode, 0, r.stderr)
        cid = int(re.match(r"checkpoint (\d+)", r.stdout).group(1))
        runs = [x for x in os.listdir(self.job_dir()) if x[0].isdigit()]
        with open(os.path.join(self.job_dir(), runs[0], "completed")) as f:
            self.assertIn(cid, [int(x) for x in f.read().split()])
        sp1 = os.path.join(self.d, "sp1")
        r = self.ctl(self.job_dir(), "savepoint", sp1)
        self.assertEqual(r.returncode, 0, r.stderr)
        meta = json.load(open(os.path.join(sp1, "SAVEPOINT.json")))
        self.assertEqual(meta["job"], "eo")
        self.assertTrue(os.path.exists(os.path.join(sp1, "MANIFEST.json")))
        self.assertTrue(os.path.exists(os.path.join(sp1, "job.yaml")))
        sp2 = os.path.join(self.d, "sp2")
        r = self.ctl(self.job_dir(), "stop", "--savepoint", sp2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(p.wait(timeout=60), 0, self.log(p)[-3000:])
        self.assertTrue(os.path.exists(os.path.join(sp2, "SAVEPOINT.json")))
        # The first run stopped early: not every record is out yet.
        seen = committed(os.path.join(self.d, "out"))
        self.assertLess(sum(len(v) for v in seen.values()),
                        sum(self.tally.values()))
        q = self.run_job("--from", sp2, name="resume")
        self.assertEqual(q.wait(timeout=120), 0, self.log(q)[-3000:])
        self.assertIn("restoring checkpoint", self.log(q))
        self.check_exactly_once(self.log(q))

    def test_cancel(self):
        self.make_job()
        p = self.run_job()
        self.wait_endpoint(p)
        r = self.ctl(self.job_dir(), "cancel")
        self.assertEqual(r.returncode, 0, r.stderr)
        p.wait(timeout=30)
        r = self.ctl(self.job_dir(), "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)


class Refused(Base):
    def run_dir(self):
        d = os.path.join(self.d, "ckpt", "eo", "20261202T000000Z-1")
        os.makedirs(d)
        return d

    def test_no_job(self):
        r = self.ctl(self.d, "status")
        self.assertEqual(r.returncode, 3)
        self.assertIn("no running job", r.stderr)

    def test_stale_socket(self):
        d = self.run_dir()
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(d, "control.sock"))
        s.close()  # the file stays, nobody serves it
        r = self.ctl(d, "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("stale control socket", r.stderr)

    def test_foreign_server(self):
        """A socket served by something that is not weir: a clear error,
        no crash."""
        d = self.run_dir()
        srv = subprocess.Popen(["/usr/bin/python3", "-c", """
import sys, zmq
s = zmq.Context().socket(zmq.REP)
s.bind("ipc://" + sys.argv[1])
print("ready", flush=True)
s.recv()
s.send(b"\\x00garbage")
""", os.path.join(d, "control.sock")], stdout=subprocess.PIPE, text=True)
        self.procs.append(srv)
        self.assertEqual(srv.stdout.readline().strip(), "ready")
        r = self.ctl(d, "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("bad reply", r.stderr)

    def test_other_user_refused(self):
        """A request from another uid is refused: the run directory is
        private (0700) and the socket 0600."""
        if os.getuid() != 0:
            self.skipTest("needs root to act as another user")
        self.make_job()
        p = self.run_job()
        self.wait_endpoint(p)
        runs = [x for x in os.listdir(self.job_dir()) if x[0].isdigit()]
        run = os.path.join(self.job_dir(), runs[0])
        self.assertEqual(os.stat(run).st_mode & 0o777, 0o700)
        sock = os.path.join(run, "control.sock")
        self.assertEqual(os.stat(sock).st_mode & 0o777, 0o600)
        # Connect as nobody, even with the directory opened up: the socket
        # file's mode refuses it.
        os.chmod(run, 0o755)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.setgid(65534)
                os.setuid(65534)
                c = socket.socket(socket.AF_UNIX)
                c.connect(sock)
                code = 1
            except PermissionError:
                code = 0
            except Exception:
                code = 2
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0,
                         "another user could connect to the control socket")


if __name__ == "__main__":
    unittest.main(verbosity=2)
