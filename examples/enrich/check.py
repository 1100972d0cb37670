#!/usr/bin/python3
"""Checks the enrich example's output against an oracle computed from the
input files alone: every order of a customer in customers.redis appears in
enriched.jsonl, in input order, with that customer's hash under "profile";
every other order appears in unknown.jsonl with enrich_error "not found".

  check.py EXAMPLE_DIR OUT_DIR
"""
import json
import os
import shlex
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    profiles = {}
    with open(os.path.join(src, "customers.redis")) as f:
        for line in f:
            w = shlex.split(line)
            if w and w[0] == "HSET":
                h = profiles.setdefault(w[1].split(":", 1)[1], {})
                h.update(zip(w[2::2], w[3::2]))
    with open(os.path.join(src, "orders.jsonl")) as f:
        orders = [json.loads(l) for l in f]
    want_ok = [dict(o, profile=profiles[o["customer"]]) for o in orders
               if o["customer"] in profiles]
    want_unknown = [dict(o, enrich_error="not found") for o in orders
                    if o["customer"] not in profiles]

    def read(name):
        with open(os.path.join(out, name)) as f:
            return [json.loads(l)["value"] for l in f]

    got_ok, got_unknown = read("enriched.jsonl"), read("unknown.jsonl")
    bad = 0
    for name, got, want in (("enriched", got_ok, want_ok),
                            ("unknown", got_unknown, want_unknown)):
        if got != want:
            bad += 1
            print("%s: %d records, expected %d" % (name, len(got), len(want)))
            for g, w in zip(got, want):
                if g != w:
                    print("  first difference:\n  got  %s\n  want %s" % (g, w))
                    break
    if bad:
        sys.exit(1)
    print("OK: %d orders enriched, %d with unknown customers, as the oracle "
          "says" % (len(got_ok), len(got_unknown)))


if __name__ == "__main__":
    main()
