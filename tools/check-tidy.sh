#!/usr/bin/env bash
# Runs clang-tidy (the project's .clang-tidy) over every C file of host/,
# sdk/ and plugins/ listed in BUILD/compile_commands.json, two files at a
# time, and fails when it reports anything.
#
#   tools/check-tidy.sh [BUILD]     BUILD defaults to build/
#
# The build tree must exist (cmake writes compile_commands.json at
# configure time; generated headers need a build first). CLANG_TIDY names
# the binary (default: clang-tidy-14, else clang-tidy); TIDY_JOBS the
# parallelism (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${1:-build}
db="$build/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "check-tidy: $db is missing; configure with cmake first" >&2
  exit 2
fi
tidy=${CLANG_TIDY:-}
if [ -z "$tidy" ]; then
  if command -v clang-tidy-14 >/dev/null; then tidy=clang-tidy-14
  elif command -v clang-tidy >/dev/null; then tidy=clang-tidy
  else echo "check-tidy: clang-tidy is not installed (tools/deps.sh)" >&2; exit 2
  fi
fi
jobs=${TIDY_JOBS:-2}

# The translation units of host/, sdk/ and plugins/, each once.
files=$(/usr/bin/python3 - "$db" "$root" <<'PY'
import json, os, sys
db, root = sys.argv[1], sys.argv[2]
seen = set()
for e in json.load(open(db)):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    rel = os.path.relpath(f, root)
    if rel.split(os.sep)[0] in ("host", "sdk", "plugins") and \
            rel.endswith(".c") and rel not in seen:
        seen.add(rel)
        print(rel)
PY
)
if [ -z "$files" ]; then
  echo "check-tidy: no host/, sdk/ or plugins/ files in $db" >&2
  exit 2
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# --quiet drops the "N warnings generated" lines; warnings in system
# headers are not shown (HeaderFilterRegex in .clang-tidy).
status=0
printf '%s\n' $files |
  xargs -P"$jobs" -n4 "$tidy" --quiet -p "$build" >"$out" 2>/dev/null ||
  status=$?
# Findings known and not fixed yet are listed in tools/tidy-baseline.txt as
# "FILE CHECK" (by file and check, not line, so that edits elsewhere in the
# file do not matter); they are printed but do not fail. Anything else
# fails, and so does a baseline line that no longer matches (fixed: remove
# it).
/usr/bin/python3 - "$out" "$root" tools/tidy-baseline.txt "$status" <<'PY'
import os, re, sys
out, root, base_path, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pat = re.compile(r"^(.+?):(\d+):(\d+): (warning|error): (.*) \[([^\]]+)\]$")
found = {}
for line in open(out, errors="replace"):
    m = pat.match(line.rstrip("\n"))
    if not m:
        continue
    path = os.path.relpath(os.path.normpath(m.group(1)), root)
    key = (path, m.group(6))
    found.setdefault(key, set()).add("%s:%s:%s: %s [%s]" % (
        path, m.group(2), m.group(3), m.group(5), m.group(6)))
base = set()
if os.path.exists(base_path):
    for line in open(base_path):
        line = line.split("#", 1)[0].split()
        if len(line) == 2:
            base.add(tuple(line))
new = sorted(k for k in found if k not in base)
known = sorted(k for k in found if k in base)
stale = sorted(base - set(found))
for k in known:
    for f in sorted(found[k]):
        print("known (tools/tidy-baseline.txt): " + f)
for k in new:
    for f in sorted(found[k]):
        print(f)
for k in stale:
    print("fixed, remove from tools/tidy-baseline.txt: %s %s" % k)
if status not in (0, 1) and not found:
    print("check-tidy: clang-tidy failed (exit %d)" % status, file=sys.stderr)
    sys.exit(1)
if new or stale:
    print("check-tidy: %d new finding(s), %d stale baseline line(s)"
          % (sum(len(found[k]) for k in new), len(stale)), file=sys.stderr)
    sys.exit(1)
print("check-tidy: clean (%d known finding(s) in the baseline)"
      % sum(len(found[k]) for k in known))
PY
