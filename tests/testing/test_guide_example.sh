#!/usr/bin/env bash
# The complete test of docs/plugin-guide.md ("Testing your plugin"), taken
# out of the guide as it is written, built as a plugin author builds it
# (the harness library and cmocka, nothing of the host) and run against
# the bundled window and session plugins.
#   test_guide_example.sh GUIDE CC SDK_INCLUDE LIBWEIR_TESTING WINDOW_SO SESSION_SO
set -euo pipefail
guide=$1 cc=$2 inc=$3 lib=$4 window=$5 session=$6
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weir-guide-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The first ```c block after the section heading.
/usr/bin/python3 - "$guide" "$tmp/test_ops.c" <<'PY'
import sys
text = open(sys.argv[1]).read()
sec = text.index("## 8. Testing your plugin")
start = text.index("```c\n", sec) + len("```c\n")
end = text.index("```", start)
open(sys.argv[2], "w").write(text[start:end])
PY
grep -q "weir_test_fail_state" "$tmp/test_ops.c" || fail "not the guide's test"
$cc -std=c11 -Wall -Wextra -Werror -I"$inc" -o "$tmp/test_ops" \
  "$tmp/test_ops.c" -L"$(dirname "$lib")" -lweir_testing -lcmocka \
  -Wl,-rpath,"$(dirname "$lib")" || fail "the guide's test does not build"
"$tmp/test_ops" "$window" "$session" >"$tmp/out" 2>&1 ||
  { cat "$tmp/out"; fail "the guide's test fails"; }
grep -q "PASSED  \] 5 test(s)" "$tmp/out" || { cat "$tmp/out"; fail "not 5 tests"; }
echo "guide example: ok"
