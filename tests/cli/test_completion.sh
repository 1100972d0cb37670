#!/usr/bin/env bash
# The bash completion script completes commands, ctl subcommands and options.
set -euo pipefail
source "$1"
complete_line() { # words...
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
    _weir; printf '%s\n' "${COMPREPLY[@]}"
}
complete_line weir "" | grep -qx ctl || { echo "FAIL: no ctl"; exit 1; }
complete_line weir new | grep -qx new-plugin || { echo "FAIL: new-plugin"; exit 1; }
complete_line weir ctl somedir st | grep -qx stop || { echo "FAIL: ctl stop"; exit 1; }
complete_line weir ctl somedir st | grep -qx status || { echo "FAIL: ctl status"; exit 1; }
complete_line weir ctl --dir d somedir status --j | grep -qx -- --json || { echo "FAIL: --json"; exit 1; }
complete_line weir run --n | grep -qx -- --no-supervisor || { echo "FAIL: run opts"; exit 1; }
echo "completion: ok"
