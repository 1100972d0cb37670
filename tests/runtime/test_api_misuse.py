#!/usr/bin/python3
"""The host API against a misusing plugin, through the real `weir run
--no-supervisor` process (Python 3, standard library only).

The test operator `abuse` (tests/runtime/testops/abuse.c) misuses a host
service on every record and returns the code it gets; its output goes to a
file_sink, which must never be blamed. Each run must end with exit code 1
and a message naming the operator, the subtask, the callback, the service
and the misuse; never with a crash. Any "Sanitizer" or "runtime error:" on
stderr fails the test, so in a -DWEIR_SANITIZE=ON build this is a sanitizer
check too. Expected messages are written by hand.

Configuration (environment; ctest sets them, see CMakeLists.txt):
  WEIR_BIN          the weir binary
  WEIR_PLUGIN_DIR   the build's plugin folder (gen, file_sink)
  WEIR_TESTOPS_DIR  the folder of the test operators (abuseops.so)
"""
import os
import shutil
import subprocess
import tempfile
import unittest

WEIR = os.path.abspath(os.environ.get("WEIR_BIN", ""))
PLUGIN_DIR = os.path.abspath(os.environ.get("WEIR_PLUGIN_DIR", ""))
TESTOPS_DIR = os.path.abspath(os.environ.get("WEIR_TESTOPS_DIR", ""))
RUN_TIMEOUT = 60.0

JOB = """\
job: misuse
{runtime}
operators:
  - {{id: src, type: gen, config: {{count: 2000, keys: 20}}}}
  - {{id: abuse, type: abuse, parallelism: 2,
     inputs: [{{from: src, partition: key}}],
     config: {{case: {case}, size: {size}}}}}
  - {{id: out, type: file_sink, inputs: [abuse],
     config: {{path: out/misuse.jsonl}}}}
"""


class Misuse(unittest.TestCase):

    def setUp(self):
        for name, path in (("WEIR_BIN", WEIR), ("WEIR_PLUGIN_DIR", PLUGIN_DIR),
                           ("WEIR_TESTOPS_DIR", TESTOPS_DIR)):
            if not os.path.exists(path):
                self.fail("%s is not set or does not exist: %r" % (name, path))
        self.tmp = tempfile.mkdtemp(prefix="weir-misuse-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def run_case(self, case, size="4KiB", runtime=True):
        """Runs the job of `case`; returns (exit code, stderr)."""
        rt = "runtime: {max_record_size: %s}" % size if runtime else ""
        path = os.path.join(self.tmp, case + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(JOB.format(runtime=rt, case=case, size=size))
        with open(os.path.join(self.tmp, case + ".err"), "w+") as err:
            p = subprocess.run(
                [WEIR, "run", "--dir", PLUGIN_DIR, "--dir", TESTOPS_DIR,
                 "--no-supervisor", path],
                cwd=self.tmp, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=err, timeout=RUN_TIMEOUT)
            err.seek(0)
            text = err.read()
        for line in text.splitlines():
            if "Sanitizer" in line or "runtime error:" in line:
                self.fail("sanitizer report:\n" + text)
        return p.returncode, text

    def assert_refused(self, case, what, where="process", **kw):
        rc, err = self.run_case(case, **kw)
        self.assertEqual(rc, 1, "case %s: exit %d\n%s" % (case, rc, err))
        self.assertRegex(err, r"job failed: operator 'abuse' \(abuse\) "
                              r"subtask [12]/2: %s: " % where, err)
        self.assertIn(what, err)
        self.assertNotIn("operator 'out'", err)
        self.assertNotIn("malformed", err)
        return err

    def test_null_value_is_not_blamed_on_the_sink(self):
        self.assert_refused("emit_null_value",
                            "weir_emit: value is NULL but value_len is 5")

    def test_4g_length_does_not_crash(self):
        self.assert_refused("emit_4g",
                            "weir_emit: key_len 1 + value_len 4294967296 "
                            "bytes is above runtime.max_record_size (4096 "
                            "bytes)")

    def test_default_max_record_size(self):
        """Without a runtime section the limit is 16MiB."""
        self.assert_refused("put_too_big",
                            "weir_value_put: value of 16777217 bytes is "
                            "above runtime.max_record_size (16777216 bytes)",
                            size="16MiB", runtime=False)

    def test_foreign_state_handle(self):
        self.assert_refused("foreign_state",
                            "weir_value_put: state handle belongs to another "
                            "subtask (abuse#1)")

    def test_call_from_a_plugin_thread(self):
        """The call cannot carry its message to the subtask; it is logged,
        and the failure names the callback."""
        err = self.assert_refused("other_thread", "invalid argument")
        self.assertRegex(err, r"host API misuse .*weir_emit: called on a "
                              r"thread that is not abuse#[01]'s")

    def test_valid_edges_run_to_the_end(self):
        rc, err = self.run_case("valid")
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
