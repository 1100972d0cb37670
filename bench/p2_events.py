#!/usr/bin/python3
"""p2_events.py N K uniform|zipf SEED > events.jsonl

Events for bench/run's P2 when no peer kit is given, one JSON object per line:
  {"user":"u<k>","ts":<ms>,"type":"view|cart|buy","page":"p<n>"}
k in [0, K): uniform, or Zipf with s = 0.99 over ranks 1..K (u0 the most
frequent); ts of event i is 1700000000000 + 5 i minus a uniform jitter in
[0, 2000] ms; type view/cart/buy 80/15/5 %; page p0..p999 uniform. The same
arguments give the same bytes (Python's random.Random(SEED)).
"""
import bisect
import itertools
import random
import sys


def main():
    if len(sys.argv) != 5 or sys.argv[3] not in ("uniform", "zipf"):
        sys.exit(__doc__.splitlines()[0])
    n, k, dist, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], \
        int(sys.argv[4])
    if n < 0 or k < 1:
        sys.exit("N must be >= 0 and K >= 1")
    rnd = random.Random(seed)
    if dist == "zipf":
        cdf = list(itertools.accumulate(1.0 / (r ** 0.99)
                                        for r in range(1, k + 1)))
        total = cdf[-1]
        draw = lambda: min(bisect.bisect_left(cdf, rnd.random() * total),
                           k - 1)
    else:
        draw = lambda: rnd.randrange(k)
    out = sys.stdout
    buf = []
    for i in range(n):
        t = rnd.random()
        typ = "view" if t < 0.80 else "cart" if t < 0.95 else "buy"
        buf.append('{"user":"u%d","ts":%d,"type":"%s","page":"p%d"}\n' % (
            draw(), 1700000000000 + 5 * i - rnd.randint(0, 2000), typ,
            rnd.randrange(1000)))
        if len(buf) >= 10000:
            out.write("".join(buf))
            buf = []
    out.write("".join(buf))


if __name__ == "__main__":
    main()
