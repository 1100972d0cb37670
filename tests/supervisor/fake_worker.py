#!/usr/bin/python3
"""A scripted stand-in for `weir run --worker`, run by sup_harness as the
supervisor's worker binary. It appends one JSON line describing how it was
started (argv, parent, process group, blocked signals, parent-death signal,
chosen environment variables) to $FAKE_RECORD, then behaves as
$FAKE_CODES says for its --attempt N (comma-separated, the last repeats):
a number is an exit code, reported first on $WEIR_REPORT_FD as the real
worker does; "quietN" exits with code N without reporting it (a plugin's
exit()); "sigN" kills itself with signal N; "wait" waits for SIGINT/SIGTERM
and exits 0 (reported)."""
import ctypes
import json
import os
import signal
import sys


def blocked_signals():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigBlk:"):
                mask = int(line.split()[1], 16)
                return [s for s in range(1, 65) if mask & (1 << (s - 1))]
    return []


def pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    sig = ctypes.c_int(0)
    PR_GET_PDEATHSIG = 2
    if libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0) != 0:
        return -1
    return sig.value


def report_and_exit(code):
    fd = os.environ.get("WEIR_REPORT_FD")
    if fd is not None:
        os.write(int(fd), b"exit %d\n" % code)
        os.close(int(fd))
    sys.exit(code)


def main():
    argv = sys.argv
    attempt = int(argv[argv.index("--attempt") + 1])
    record = {
        "argv": argv[1:],
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "pgid": os.getpgid(0),
        "blocked": blocked_signals(),
        "pdeathsig": pdeathsig(),
        "env": {k: os.environ.get(k)
                for k in ("WEIR_CRASH_AT", "WEIR_LOG", "FAKE_MARK")},
        "report_fd": os.environ.get("WEIR_REPORT_FD"),
    }
    with open(os.environ["FAKE_RECORD"], "a") as f:
        f.write(json.dumps(record) + "\n")
    codes = os.environ.get("FAKE_CODES", "0").split(",")
    what = codes[min(attempt, len(codes) - 1)]
    sys.stderr.flush()
    if what == "wait":
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        report_and_exit(0)
    if what.startswith("sig"):
        os.kill(os.getpid(), int(what[3:]))
    if what.startswith("quiet"):
        sys.exit(int(what[5:]))
    report_and_exit(int(what))


main()
