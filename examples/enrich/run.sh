#!/usr/bin/env bash
# Runs the enrich example end to end: starts a redis-server on a free port
# in a temporary folder, loads customers.redis into it, runs enrich.yaml
# with `weir run`, checks the output with check.py, and stops the server.
#   examples/enrich/run.sh [BUILD_DIR]     (default: build)
# WEIR and WEIR_PLUGIN_DIR override the weir binary and the plugin folder.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build}
weir=${WEIR:-$build/bin/weir}
plugins=${WEIR_PLUGIN_DIR:-$build/plugins}
tmp=$(mktemp -d)
rpid=
cleanup() {
  if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" --daemonize no >"$tmp/redis.log" 2>&1 &
rpid=$!
for _ in $(seq 300); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.1
done
redis-cli -p "$port" <"$here/customers.redis" >/dev/null
sed -e "s|@DIR@|$here|g" -e "s|@OUT@|$tmp|g" -e "s|@REDIS@|127.0.0.1:$port|g" \
  "$here/enrich.yaml" >"$tmp/job.yaml"
"$weir" run --dir "$plugins" "$tmp/job.yaml" >"$tmp/job.log" 2>&1 ||
  { tail -20 "$tmp/job.log"; exit 1; }
/usr/bin/python3 "$here/check.py" "$here" "$tmp"
