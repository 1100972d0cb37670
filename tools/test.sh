#!/usr/bin/env bash
# The README's second command: installs what is missing, builds Weir and runs
# the whole test suite with ctest, runs clang-tidy (tools/check-tidy.sh),
# then builds a second tree with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite there too
# (--quick skips the sanitizer run).
set -euo pipefail
cd "$(dirname "$0")/.."

asan=1
for a in "$@"; do
  case "$a" in
    --quick) asan=0 ;;
    *) echo "usage: tools/test.sh [--quick]" >&2; exit 2 ;;
  esac
done

tools/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
# Static checks: clang-format over every tracked C file, clang-tidy over
# host/, sdk/ and plugins/ (build/ has the compile_commands.json).
tools/check-format.sh
TIDY_JOBS="$jobs" tools/check-tidy.sh build

if [ "$asan" = 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWEIR_SANITIZE=ON \
    -DWEIR_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow
fi
