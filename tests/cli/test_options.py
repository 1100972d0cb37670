#!/usr/bin/python3
"""Command-line parsing of every `weir` subcommand, and `weir validate`
reporting every error of a file.

Runs the built bin/weir as a real process. The expectations are written by
hand here: which option names exist (the usage texts of host/cli/), the
exact line:column of every mistake planted in the job files below, and the
completion words of tools/completion/weir.bash.

Configuration (environment; ctest sets them, see CMakeLists.txt):
  WEIR_BIN          the weir binary (required)
  WEIR_PLUGIN_DIR   the build's plugin folder (gen, discard, count)
  WEIR_SOURCE_DIR   the repository root (default: two folders up from here)

Run by hand:
  WEIR_BIN=build/bin/weir WEIR_PLUGIN_DIR=build/plugins \\
  /usr/bin/python3 tests/cli/test_options.py -v
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("WEIR_SOURCE_DIR",
                                            os.path.join(HERE, "..", "..")))
WEIR = os.path.abspath(os.environ.get("WEIR_BIN", "build/bin/weir"))
PLUGINS = os.path.abspath(os.environ.get("WEIR_PLUGIN_DIR", "build/plugins"))
COMPLETION = os.path.join(SOURCE_DIR, "tools", "completion", "weir.bash")
TIMEOUT = 60

GOOD_JOB = """\
job: good
operators:
  - {id: src, type: gen, config: {count: 10}}
  - {id: sink, type: discard, inputs: [src]}
"""

# Independent mistakes, each at a position counted by hand (1-based line
# and column of the offending key or value):
#   2:1   bogus_key            unknown top-level key
#   4:3   restart.atempts      unknown key of a host section
#   9:21  count: lots          a parameter of the wrong type (src)
#   9:27  kyes                 an unknown parameter of the same operator
#   12:11 nosuch               an unknown operator type (op `mystery`)
#   16:19 nowhere              an unknown input (sink)
#   17:18 -3                   a parallelism below 1 (sink)
# Checks that depend on a broken part are not reported: mystery's config
# (its type is unknown, so its parameters are not known), and sink's input
# from mystery (no ports are known).
MULTI_JOB = """\
job: multi
bogus_key: 1
restart:
  atempts: 3
operators:
  - id: src
    type: gen
    parallelism: 1
    config: {count: lots, kyes: 5}
  - id: mystery
    parallelism: 1
    type: nosuch
    config: {whatever: 1}
  - id: sink
    type: discard
    inputs: [src, nowhere, mystery]
    parallelism: -3
"""
MULTI_POSITIONS = {(2, 1), (4, 3), (9, 21), (9, 27), (12, 11), (16, 19),
                   (17, 18)}

# One planted mistake only: the collector must not add noise of its own.
ONE_JOB = """\
job: one
operators:
  - {id: src, type: gen, config: {count: 10}}
  - {id: sink, type: discard, inputs: [scr]}
"""
ONE_POSITIONS = {(4, 40)}

POS = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): ", re.M)


class Base(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="weir-opts-")
        # A run writes its checkpoints under the job's checkpoint.dir,
        # relative to the current folder: keep them in the temp folder.
        self.cwd = self.tmp

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def weir(self, *args):
        p = subprocess.run([WEIR] + list(args), cwd=self.cwd,
                           capture_output=True, text=True, timeout=TIMEOUT)
        for s in (p.stdout, p.stderr):
            self.assertNotIn("Sanitizer", s)
            self.assertNotIn("runtime error:", s)
        return p

    def describe(self, p):
        return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout,
                                                     p.stderr)

    def assert_exit(self, p, code):
        self.assertEqual(p.returncode, code, self.describe(p))

    def positions(self, text, path):
        return {(int(m.group("line")), int(m.group("col")))
                for m in POS.finditer(text) if m.group("file") == path}


# Each subcommand (as argv words), the first line its usage starts with,
# and the long options its --help lists (written by hand from the usage
# texts; the hidden worker options are not among them).
COMMANDS = [
    ([], "usage: weir <command>", ["--version", "--help"]),
    (["plugins"], "usage: weir plugins", ["--dir", "--json", "--help"]),
    (["validate"], "usage: weir validate", ["--dir", "--json", "--help"]),
    (["run"], "usage: weir run",
     ["--dir", "--from", "--no-supervisor", "--allow-non-restored-state",
      "--help"]),
    (["state"], "usage: weir state", []),
    (["state", "ls"], "usage: weir state", ["--json", "--exact"]),
    (["state", "dump"], "usage: weir state",
     ["--operator", "--state", "--timers", "--key", "--format",
      "--value-format"]),
    (["state", "bootstrap"], "usage: weir state",
     ["--dir", "--job", "--operator", "--state", "--from", "--out",
      "--parallelism", "--kind", "--value-format", "--expiry-time"]),
    (["ctl"], "usage: weir ctl",
     ["--dir", "--timeout", "--help", "--json", "--watch", "--savepoint",
      "--time", "--prefix", "--older-than", "--all"]),
    (["new-plugin"], "usage: weir new-plugin",
     ["--keyed", "--source", "--out", "--help"]),
]


class Help(Base):

    def test_help_on_every_subcommand(self):
        for words, head, opts in COMMANDS:
            for flag in ("--help", "-h"):
                with self.subTest(cmd=words, flag=flag):
                    p = self.weir(*words, flag)
                    self.assert_exit(p, 0)
                    self.assertTrue(p.stdout.startswith(head),
                                    self.describe(p))
                    self.assertEqual(p.stderr, "")
                    for o in opts:
                        self.assertIn(o, p.stdout, o)

    def test_help_after_operands(self):
        # Options may follow operands (GNU order), --help included.
        p = self.weir("validate", "no-such.yaml", "--help")
        self.assert_exit(p, 0)
        self.assertIn("usage: weir validate", p.stdout)
        p = self.weir("ctl", "somewhere", "status", "--help")
        self.assert_exit(p, 0)
        self.assertIn("usage: weir ctl", p.stdout)

    def test_worker_mode_is_hidden(self):
        for words in (["run"], []):
            p = self.weir(*words, "--help")
            for hidden in ("--worker", "--run-dir", "--attempt"):
                self.assertNotIn(hidden, p.stdout, words)


class Unknown(Base):

    def test_unknown_long_and_short_options(self):
        for words, head, _ in COMMANDS:
            for bad, shown in (("--bogus", "'--bogus'"),
                               ("--bogus=1", "'--bogus'"), ("-Z", "'-Z'")):
                with self.subTest(cmd=words, bad=bad):
                    p = self.weir(*words, bad)
                    self.assert_exit(p, 2)
                    self.assertIn("unknown option " + shown, p.stderr)
                    self.assertIn(head, p.stderr)
                    self.assertEqual(p.stdout, "")

    def test_flag_given_a_value(self):
        p = self.weir("validate", "--json=yes", "x.yaml")
        self.assert_exit(p, 2)
        self.assertIn("option '--json' takes no value", p.stderr)

    def test_missing_values(self):
        cases = [
            (["validate", "--dir"], "--dir needs a directory"),
            (["validate", "-d"], "-d (--dir) needs a directory"),
            (["plugins", "--dir="], "--dir needs a directory"),
            (["run", "--from"], "--from needs a value"),
            (["run", "--from=", "job.yaml"], "--from needs a value"),
            (["state", "dump", "--operator"], "--operator needs a value"),
            (["state", "bootstrap", "--job="], "--job needs a value"),
            (["ctl", "--timeout"], "--timeout needs a value"),
            (["new-plugin", "--out=", "x"], "--out needs a value"),
        ]
        for argv, msg in cases:
            with self.subTest(argv=argv):
                p = self.weir(*argv)
                self.assert_exit(p, 2)
                self.assertIn(msg, p.stderr)

    def test_option_of_another_command(self):
        p = self.weir("ctl", "somewhere", "checkpoint", "--json")
        self.assert_exit(p, 2)
        self.assertIn("'checkpoint' does not take --json", p.stderr)
        p = self.weir("ctl", "somewhere", "state", "stats", "--all")
        self.assert_exit(p, 2)
        self.assertIn("state stats does not take --all", p.stderr)

    def test_bad_values(self):
        p = self.weir("ctl", "--timeout=soon", "somewhere", "status")
        self.assert_exit(p, 2)
        self.assertIn("weir ctl: --timeout:", p.stderr)
        p = self.weir("new-plugin", "--keyed", "--source", "x")
        self.assert_exit(p, 2)
        self.assertIn("exclude each other", p.stderr)
        p = self.weir("run", "a.yaml", "b.yaml")
        self.assert_exit(p, 2)
        self.assertIn("one JOB.yaml at a time", p.stderr)

    def test_unknown_command(self):
        p = self.weir("frobnicate", "--help")
        self.assert_exit(p, 2)
        self.assertIn("unknown command 'frobnicate'", p.stderr)


class Values(Base):

    def test_equals_and_separate_value_are_the_same(self):
        job = self.write("good.yaml", GOOD_JOB)
        outs = []
        for argv in (["--dir", PLUGINS, job], ["--dir=" + PLUGINS, job],
                     ["-d", PLUGINS, job], ["-d" + PLUGINS, job],
                     [job, "--dir", PLUGINS]):
            p = self.weir("validate", *argv)
            self.assert_exit(p, 0)
            outs.append(p.stdout)
        self.assertTrue(outs[0].startswith(job + ": ok (2 operators"),
                        outs[0])
        for o in outs[1:]:
            self.assertEqual(o, outs[0])

    def test_double_dash_ends_the_options(self):
        dashed = self.write("-job.yaml", GOOD_JOB)
        # Without --, "-job.yaml" is an option (-j -o -b ...): refused.
        p = self.weir("validate", "--dir", PLUGINS, "-job.yaml")
        self.assert_exit(p, 2)
        p = self.weir("validate", "--dir", PLUGINS, "--", "-job.yaml")
        self.assert_exit(p, 0)
        self.assertTrue(p.stdout.startswith("-job.yaml: ok"), p.stdout)
        self.assertTrue(os.path.exists(dashed))
        # `--` also ends the options of `plugins`.
        p = self.weir("plugins", "--dir", PLUGINS, "--", "--json")
        self.assert_exit(p, 2)
        self.assertIn("no operator named '--json'", p.stderr)

    def test_supervised_run_of_a_dashed_job_file(self):
        # The supervisor starts the worker with the same job path; it must
        # end the worker's options before a path that starts with '-'.
        self.write("-job.yaml", GOOD_JOB)
        p = self.weir("run", "--dir", PLUGINS, "--", "-job.yaml")
        self.assert_exit(p, 0)
        p = self.weir("run", "--no-supervisor", "--dir", PLUGINS, "--",
                      "-job.yaml")
        self.assert_exit(p, 0)

    def test_abbreviated_long_option(self):
        job = self.write("good.yaml", GOOD_JOB)
        p = self.weir("validate", "--di", PLUGINS, "--js", job)
        self.assert_exit(p, 0)
        self.assertEqual(json.loads(p.stdout)[0]["valid"], True)


class ValidateAll(Base):

    def test_every_independent_error_is_reported(self):
        job = self.write("multi.yaml", MULTI_JOB)
        p = self.weir("validate", "--dir", PLUGINS, job)
        self.assert_exit(p, 2)
        self.assertEqual(self.positions(p.stderr, job), MULTI_POSITIONS,
                         p.stderr)
        self.assertIn("%s: %d errors" % (job, len(MULTI_POSITIONS)),
                      p.stderr)
        # Each message names its field.
        for field in ("bogus_key", "restart.atempts",
                      "operators[0].config.count",
                      "operators[0].config.kyes", "operators[1].type",
                      "operators[2].inputs[1]", "operators[2].parallelism"):
            self.assertRegex(p.stderr, r":\d+:\d+: %s: " % re.escape(field))
        # Nothing about what depends on the unknown type.
        self.assertNotIn("whatever", p.stderr)
        self.assertNotIn("inputs[2]", p.stderr)

    def test_json(self):
        job = self.write("multi.yaml", MULTI_JOB)
        good = self.write("good.yaml", GOOD_JOB)
        p = self.weir("validate", "--dir", PLUGINS, "--json", job, good)
        self.assert_exit(p, 2)
        doc = json.loads(p.stdout)
        self.assertEqual([f["file"] for f in doc], [job, good])
        self.assertFalse(doc[0]["valid"])
        self.assertFalse(doc[0]["truncated"])
        self.assertEqual({(e["line"], e["column"]) for e in doc[0]["errors"]},
                         MULTI_POSITIONS)
        fields = {e["field"] for e in doc[0]["errors"]}
        self.assertIn("operators[0].config.kyes", fields)
        for e in doc[0]["errors"]:
            self.assertTrue(e["text"].startswith(
                "%s:%d:%d: " % (job, e["line"], e["column"])), e)
            self.assertTrue(e["text"].endswith(e["message"]), e)
        self.assertTrue(doc[1]["valid"])
        self.assertEqual(doc[1]["operators"], 2)
        self.assertEqual(doc[1]["errors"], [])

    def test_a_single_mistake_is_reported_once(self):
        job = self.write("one.yaml", ONE_JOB)
        p = self.weir("validate", "--dir", PLUGINS, job)
        self.assert_exit(p, 2)
        self.assertEqual(self.positions(p.stderr, job), ONE_POSITIONS,
                         p.stderr)
        self.assertIn("did you mean 'src'?", p.stderr)

    def test_several_files(self):
        good = self.write("good.yaml", GOOD_JOB)
        one = self.write("one.yaml", ONE_JOB)
        p = self.weir("validate", "--dir", PLUGINS, good, one)
        self.assert_exit(p, 2)
        self.assertIn(good + ": ok", p.stdout)
        self.assertEqual(self.positions(p.stderr, one), ONE_POSITIONS)
        p = self.weir("validate", "--dir", PLUGINS, good, good)
        self.assert_exit(p, 0)
        self.assertEqual(p.stdout.count(good + ": ok"), 2)

    def test_unreadable_and_unparsable_files(self):
        missing = os.path.join(self.tmp, "missing.yaml")
        broken = self.write("broken.yaml", "job: x\noperators: [\n")
        p = self.weir("validate", "--dir", PLUGINS, "--json", missing, broken)
        self.assert_exit(p, 2)
        doc = json.loads(p.stdout)
        self.assertEqual(len(doc[0]["errors"]), 1)
        self.assertIsNone(doc[0]["errors"][0]["line"])
        self.assertIn("cannot open", doc[0]["errors"][0]["message"])
        self.assertEqual(len(doc[1]["errors"]), 1)
        self.assertIsNotNone(doc[1]["errors"][0]["line"])

    def test_errors_are_capped(self):
        # 150 unknown top-level keys: the first 100 (lines 2..101) are
        # reported, then validation stops and says so.
        lines = ["job: many"] + ["k%d: 1" % i for i in range(150)]
        lines += ["operators:", "  - {id: src, type: gen}"]
        job = self.write("many.yaml", "\n".join(lines) + "\n")
        p = self.weir("validate", "--dir", PLUGINS, job)
        self.assert_exit(p, 2)
        self.assertEqual(self.positions(p.stderr, job),
                         {(n, 1) for n in range(2, 102)})
        self.assertIn("%s: stopped after 100 errors" % job, p.stderr)
        p = self.weir("validate", "--dir", PLUGINS, "--json", job)
        self.assertTrue(json.loads(p.stdout)[0]["truncated"])

    def test_run_still_stops_at_the_first_error(self):
        job = self.write("multi.yaml", MULTI_JOB)
        p = self.weir("run", "--dir", PLUGINS, job)
        self.assert_exit(p, 2)
        self.assertEqual(self.positions(p.stderr, job), {(2, 1)}, p.stderr)


class Completion(Base):
    """tools/completion/weir.bash offers every option the usage texts list."""

    def complete(self, *words):
        script = ('source "%s"; COMP_WORDS=(%s); '
                  'COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); '
                  '_weir; printf "%%s\\n" "${COMPREPLY[@]}"'
                  % (COMPLETION, " ".join("'%s'" % w for w in words)))
        p = subprocess.run(["bash", "-c", script], cwd=self.tmp,
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        return set(p.stdout.split())

    def test_every_listed_option_is_completed(self):
        for words, _, opts in COMMANDS:
            if not words or words == ["state"] or words[0] == "ctl":
                continue
            with self.subTest(cmd=words):
                got = self.complete("weir", *words, "--")
                for o in opts:
                    self.assertIn(o, got, "weir %s: %s" % (" ".join(words), o))

    def test_commands_and_ctl(self):
        top = self.complete("weir", "")
        for c in ("plugins", "validate", "run", "state", "ctl", "new-plugin",
                  "--help", "--version"):
            self.assertIn(c, top)
        self.assertEqual(self.complete("weir", "state", ""),
                         {"ls", "dump", "bootstrap"})
        self.assertIn("--timeout", self.complete("weir", "ctl", "--"))
        self.assertIn("--watch", self.complete("weir", "ctl", "d", "status",
                                               "--"))
        self.assertIn("--older-than", self.complete(
            "weir", "ctl", "d", "state", "purge", "--"))


if __name__ == "__main__":
    unittest.main()
