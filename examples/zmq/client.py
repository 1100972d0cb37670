#!/usr/bin/python3
"""The client of examples/zmq/orders.yaml: sends orders as JSON over a REQ
socket and resends an order whose answer does not come within the timeout
(on a new socket, ZeroMQ's "lazy pirate" pattern), then the end message.
The orders are generated from a seed, so that --check can verify the job's
committed output against the same orders: every user's counts must be
1..n exactly once.

  client.py --orders N [--endpoint ipc://weir-orders.sock] [--seed S]
  client.py --orders N --check out/zmq-orders
"""
import argparse
import glob
import json
import os
import random
import sys

import zmq


def orders(n, seed):
    rng = random.Random(seed)
    for i in range(n):
        yield {"order": "o%d" % i, "user": "u%d" % rng.randrange(50),
               "amount": rng.randrange(1, 500)}


def send(endpoint, n, seed, timeout_ms):
    ctx = zmq.Context()
    sock, resent = None, 0

    def connect():
        nonlocal sock
        if sock is not None:
            sock.close(linger=0)
        sock = ctx.socket(zmq.REQ)
        sock.connect(endpoint)

    def request(data, tries=None):
        nonlocal resent
        while tries is None or tries > 0:
            sock.send(data)
            if sock.poll(timeout_ms):
                return sock.recv()
            resent += 1
            connect()
            tries = None if tries is None else tries - 1
        return None

    connect()
    for o in orders(n, seed):
        answer = request(json.dumps(o).encode())
        if answer != b"ok":
            sys.exit("order %s refused: %r" % (o["order"], answer))
    # A job that ended answers no more, so the end is tried a few times.
    request(b"END", tries=5)
    sock.close(linger=0)
    ctx.term()
    print("sent %d orders (%d resent after a timeout)" % (n, resent))


def check(outdir, n, seed):
    want = {}
    for o in orders(n, seed):
        want[o["user"]] = want.get(o["user"], 0) + 1
    got = {}
    for part in glob.glob(os.path.join(outdir, "part-*.jsonl")):
        with open(part) as f:
            for line in f:
                r = json.loads(line)
                got.setdefault(r["key"], []).append(r["value"]["count"])
    bad = [u for u in want if sorted(got.get(u, [])) != list(range(1, want[u] + 1))]
    bad += [u for u in got if u not in want]
    if bad:
        sys.exit("wrong counts for %d user(s), e.g. %s" % (len(bad), bad[:5]))
    print("ok: %d orders of %d users, each counted exactly once"
          % (n, len(want)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--endpoint", default="ipc://weir-orders.sock")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--timeout", type=int, default=1000, help="ms")
    ap.add_argument("--check", metavar="DIR")
    a = ap.parse_args()
    if a.check:
        check(a.check, a.orders, a.seed)
    else:
        send(a.endpoint, a.orders, a.seed, a.timeout)


if __name__ == "__main__":
    main()
