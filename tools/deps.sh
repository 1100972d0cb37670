#!/usr/bin/env bash
# Installs the Debian packages Weir needs to build, test and run, when any is
# missing (apt-get; through sudo when not root). Safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang clang-tidy clang-format
  librocksdb-dev libzmq3-dev libmsgpack-dev libyaml-dev libxxhash-dev
  libjansson-dev libmicrohttpd-dev libcmocka-dev librdkafka-dev kcat
  python3 python3-zmq python3-msgpack python3-jsonschema python3-yaml sqlite3
  prometheus
  # plugins/enrich, its tests, and bench/run P2's Redis peer
  libhiredis-dev libcurl4-openssl-dev redis-server
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
