#!/usr/bin/env bash
# The README's first command: installs what is missing, builds Weir, runs the
# example job examples/clicks (click events -> count per user, parallelism 2
# -> file) and prints its output.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null

rm -rf out
echo "== weir run examples/clicks/clicks.yaml"
WEIR_LOG=warn build/bin/weir run examples/clicks/clicks.yaml
echo "== final count per user (last line per user of out/clicks-counts.jsonl, top 10):"
/usr/bin/python3 - <<'PY'
import json
final = {}
with open("out/clicks-counts.jsonl") as f:
    for line in f:
        r = json.loads(line)
        final[r["key"]] = max(final.get(r["key"], 0), r["value"]["count"])
for user, n in sorted(final.items(), key=lambda kv: (-kv[1], kv[0]))[:10]:
    print(f"{user:>8} {n}")
print(f"{len(final)} users, {sum(final.values())} clicks")
PY
