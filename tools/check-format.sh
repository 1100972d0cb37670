#!/usr/bin/env bash
# Checks that every tracked C file (.c, .h) is formatted as the project's
# .clang-format says (clang-format --dry-run -Werror); prints what differs
# and fails otherwise. `tools/check-format.sh --fix` formats them instead.
# CLANG_FORMAT names the binary (default clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=${CLANG_FORMAT:-clang-format}
if ! command -v "$fmt" >/dev/null; then
  echo "check-format: $fmt is not installed (tools/deps.sh)" >&2
  exit 2
fi
mapfile -t files < <(git ls-files '*.c' '*.h')
if [ "${1:-}" = --fix ]; then
  printf '%s\0' "${files[@]}" | xargs -0 "$fmt" -i
  exit 0
fi
if printf '%s\0' "${files[@]}" | xargs -0 "$fmt" --dry-run -Werror; then
  echo "check-format: ${#files[@]} files formatted"
else
  echo "check-format: files above differ from .clang-format" \
       "(tools/check-format.sh --fix)" >&2
  exit 1
fi
