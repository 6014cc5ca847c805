#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/install.sh - installs the build under test into a fresh
# prefix, for the consumer tests, and checks what landed there.
#
# Usage: install.sh <cmake> <build dir> <work dir>
# Installs with `cmake --install <build> --prefix <work>/prefix`, keeps the
# install's manifest as <work>/manifest (for the uninstall test) and puts
# back the build's own install_manifest.txt, so that `make uninstall` still
# undoes the user's `make install`. The install must not run ldconfig: the
# prefix is not in the loader's default path, and it must say so.
set -euo pipefail
cmake=$1
build=$2
work=$3
prefix=$work/prefix
fail() { echo "install.sh: $*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"
manifest=$build/install_manifest.txt
saved=""
if [[ -e $manifest ]]; then
  saved=$work/user_manifest.txt
  cp -p "$manifest" "$saved"
fi
restore() {
  if [[ -n $saved ]]; then cp -p "$saved" "$manifest"; else rm -f "$manifest"; fi
}
trap restore EXIT
env -u DESTDIR "$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install failed"; }
cp "$manifest" "$work/manifest"

grep -q "^-- ebb: not running ldconfig: .*$prefix/lib" "$work/install.log" ||
  fail "the install did not say why it ran no ldconfig: $(grep ldconfig "$work/install.log" || echo 'no ldconfig line')"
for f in include/ebb.h include/ebb_snapshot.h lib/libebb.so lib/libebb.so.0 lib/libebb.a lib/libebb-prefix.so lib/libebb-prefix.so.0 \
  lib/libebb-prefix.a lib/pkgconfig/ebb.pc lib/pkgconfig/ebb-prefix.pc lib/cmake/ebb/ebbConfig.cmake \
  lib/cmake/ebb/ebbConfigVersion.cmake lib/cmake/ebb/ebbTargets.cmake share/man/man3/ebb.3 share/man/man7/ebb.7; do
  [[ -e $prefix/$f ]] || fail "the install put no $f into the prefix"
  grep -qxF "$prefix/$f" "$work/manifest" || fail "$f is missing from the install manifest"
done
grep -qx "prefix=$prefix" "$prefix/lib/pkgconfig/ebb.pc" ||
  fail "ebb.pc names another prefix: $(grep '^prefix=' "$prefix/lib/pkgconfig/ebb.pc")"
echo "install.sh: $(grep -c "" "$work/manifest") files installed into $prefix"
