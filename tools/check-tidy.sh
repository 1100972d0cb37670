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
if grep -q ': \(warning\|error\): ' "$out"; then
  cat "$out"
  n=$(grep -c ': \(warning\|error\): ' "$out")
  echo "check-tidy: $n finding(s)" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  cat "$out"
  echo "check-tidy: clang-tidy failed (exit $status)" >&2
  exit 1
fi
echo "check-tidy: $(printf '%s\n' $files | wc -l) files clean"
