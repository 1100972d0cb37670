#!/usr/bin/env bash
# The SDK as an outside plugin author gets it: `cmake --install` of this
# build into a temporary prefix, then `weir new-plugin` projects of every
# flavour built against the installed package (find_package(Weir)) and
# tested with their own ctest (which runs the example job through the
# installed weir and the installed bundled plugins) and whose unit test runs
# on the installed test harness (Weir::testing); one built against the
# build tree as a package (-DWeir_DIR); one built with pkg-config alone
# (weir, and weir-testing for its unit test).
#   test_sdk_install.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d /tmp/weir-sdk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >/dev/null
weir=$prefix/bin/weir
[ -x "$weir" ] || fail "no installed weir"
"$weir" --version | grep -q "plugin ABI" || fail "weir --version"
# The installed weir finds the installed bundled plugins by default.
"$weir" plugins | grep -q "^  *count" || "$weir" plugins | grep -q "count" ||
  fail "installed weir does not list the bundled plugins"

cd "$tmp"
for flavour in "" --keyed --source; do
  name=op${flavour#--}
  "$weir" new-plugin "$name" $flavour >/dev/null
  cmake -S "$name" -B "$name/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$name/build" >/dev/null || fail "$name does not build"
  ctest --test-dir "$name/build" --output-on-failure >"$name.ctest" 2>&1 ||
    { cat "$name.ctest"; fail "$name: its tests fail"; }
  grep -q "100% tests passed, 0 tests failed out of 2" "$name.ctest" ||
    { cat "$name.ctest"; fail "$name: not both tests ran"; }
  [ -s "$name/build/out.jsonl" ] || fail "$name: the example job wrote nothing"
done

# The build tree as a package.
"$weir" new-plugin tree --keyed >/dev/null
cmake -S tree -B tree/build -DWeir_DIR="$build" >/dev/null
cmake --build tree/build >/dev/null || fail "build tree package"
ctest --test-dir tree/build >/dev/null || fail "build tree package tests"

# pkg-config alone.
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
mkdir pc
cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags weir) \
  -o pc/op.so op/op.c $(pkg-config --libs weir) || fail "pkg-config build"
"$weir" plugins --dir pc op | grep -q "Operator: *op" || fail "pkg-config plugin"
# The generated unit test with pkg-config (weir-testing) against that .so.
cc $(pkg-config --cflags weir-testing) -o pc/test_op op/test_op.c \
  $(pkg-config --libs weir-testing) \
  -Wl,-rpath,"$(pkg-config --variable=libdir weir-testing)" ||
  fail "pkg-config weir-testing build"
pc/test_op pc/op.so | grep -q "op: ok" || fail "pkg-config unit test"
# The harness library exports its API and nothing of the host.
lib=$(ls "$prefix"/lib*/libweir_testing.so)
other=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^weir_test_' || true)
[ -z "$other" ] || fail "libweir_testing exports more than weir_test_*: $other"
[ "$(cd "$(pkg-config --variable=plugindir weir)" && pwd)" = \
  "$(cd "$prefix/lib/weir/plugins" && pwd)" ] || fail "plugindir"

# A bad name and an existing directory are refused.
if "$weir" new-plugin Bad-Name 2>/dev/null; then fail "bad name accepted"; fi
if "$weir" new-plugin op 2>/dev/null; then fail "existing dir overwritten"; fi
echo "sdk install: ok"
