#!/usr/bin/python3
"""Checkpoint cost and recovery time with about a million keys of state.

Runs `weir run` (supervised) on gen -> key -> count (RocksDB state,
parallelism 2, 1M distinct keys uniform) -> discard (one subtask with two
inputs, so barriers are aligned) with checkpoints every 2 s, then
kills the worker with SIGKILL, and reports from the log:
  - per checkpoint: duration, longest synchronous pause, longest alignment,
    size of the checkpoint's files;
  - recovery: SIGKILL -> new worker started, and SIGKILL -> every subtask of
    the new worker running again with its state restored.

usage: bench_recovery.py WEIR PLUGIN_DIR [SECONDS]   (default 12 s before the kill)
"""
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

JOB = """\
job: recovery
checkpoint: {{interval: 2s, dir: '{d}/ckpt', retain: 2}}
restart: {{strategy: fixed_delay, attempts: 3, delay: 0ms}}
state: {{dir: '{d}/state', cache_entries: {cache}}}
operators:
  - {{id: gen, type: gen, config: {{count: 0, keys: 1000000, rate: 1500000}}}}
  - {{id: count, type: count, parallelism: 2,
     inputs: [{{from: gen, partition: key}}]}}
  - {{id: sink, type: discard, inputs: [{{from: count, partition: rebalance}}]}}
"""

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")
CKPT = re.compile(r"checkpoint (\d+) complete: ([\d.]+) ms, (\d+) files, "
                  r"([\d.]+) KiB, longest sync pause ([\d.]+) ms, longest "
                  r"alignment ([\d.]+) ms")


def stamp(line):
    m = STAMP.match(line)
    if not m:
        return None
    t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    weir, plugins = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 12.0
    d = tempfile.mkdtemp(prefix="weir-bench-rec-")
    try:
        with open(os.path.join(d, "job.yaml"), "w") as f:
            f.write(JOB.format(d=d, cache=os.environ.get("CACHE", "200000")))
        log_path = os.path.join(d, "log.txt")
        log = open(log_path, "w")
        p = subprocess.Popen([weir, "run", "--dir", plugins,
                              os.path.join(d, "job.yaml")],
                             stdout=log, stderr=log)
        time.sleep(seconds)
        text = open(log_path).read()
        worker = int(re.findall(r"worker (\d+) started", text)[-1])
        killed_at = time.time()
        os.kill(worker, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            text = open(log_path).read()
            if "from the restored checkpoint" in text:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
        log.close()
        text = open(log_path).read()
        ckpts = [m.groups() for m in CKPT.finditer(text)]
        if not ckpts:
            print("no checkpoint completed:\n" + text[-2000:])
            return 1
        dur = [float(c[1]) for c in ckpts]
        sync = [float(c[4]) for c in ckpts]
        align = [float(c[5]) for c in ckpts]
        size = [float(c[3]) / 1024 for c in ckpts]
        print("checkpoints: %d completed (1M keys uniform, count on RocksDB, "
              "parallelism 2, gen at up to 1.5M records/s, a sink with 2 inputs)" % len(ckpts))
        print("  duration      median %.1f ms, max %.1f ms" %
              (statistics.median(dur), max(dur)))
        print("  sync pause    median %.1f ms, max %.1f ms (per subtask, "
              "longest)" % (statistics.median(sync), max(sync)))
        print("  alignment     median %.2f ms, max %.2f ms" %
              (statistics.median(align), max(align)))
        print("  size          last %.1f MiB (SST files hard-linked: "
              "incremental on disk)" % size[-1])
        lines = text.splitlines()
        restarted = next((stamp(l) for l in lines if "worker restarted" in l
                          and stamp(l) and stamp(l) >= killed_at - 1), None)
        running = next((stamp(l) for l in lines
                        if "from the restored checkpoint" in l), None)
        restored = re.findall(r"restoring checkpoint (\d+)", text)
        if restarted is None or running is None:
            print("recovery: not observed\n" + text[-2000:])
            return 1
        print("recovery after SIGKILL (restored checkpoint %s):" %
              (restored[-1] if restored else "?"))
        print("  new worker started  %.0f ms after the kill" %
              max(0.0, (restarted - killed_at) * 1000))
        print("  all subtasks running with restored state  %.0f ms after "
              "the kill" % max(0.0, (running - killed_at) * 1000))
        return 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
