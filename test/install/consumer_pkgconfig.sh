#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/consumer_pkgconfig.sh - programs built with the installed
# ebb.pc and ebb-prefix.pc, the way README shows, run on the installed
# libraries.
#
# Usage: consumer_pkgconfig.sh <work dir of install.sh>
# Skipped (77) without pkg-config (apt-get install pkgconf).
set -euo pipefail
work=$1
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix
fail() { echo "consumer_pkgconfig.sh: $*" >&2; exit 1; }
command -v pkg-config >/dev/null || { echo "consumer_pkgconfig.sh: skipped: no pkg-config (apt-get install pkgconf)"; exit 77; }
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
unset PKG_CONFIG_LIBDIR LD_PRELOAD LD_LIBRARY_PATH

out=$work/pkgconfig-consumer
rm -rf "$out"
mkdir -p "$out"
for pkg in ebb ebb-prefix; do
  version=$(pkg-config --modversion "$pkg") || fail "pkg-config finds no $pkg in $PKG_CONFIG_PATH"
  libdir=$(pkg-config --variable=libdir "$pkg")
  [[ $libdir == "$prefix/lib" ]] || fail "$pkg.pc: libdir=$libdir, expected $prefix/lib"
  if [[ $pkg == ebb ]]; then src=app.c; want="^app: ebb $version serves malloc, from $libdir/libebb.so.0$"; fi
  if [[ $pkg == ebb-prefix ]]; then
    src=app_prefix.c
    want="^app_prefix: ebb $version beside the C library's malloc, from $libdir/libebb-prefix.so.0$"
  fi
  # shellcheck disable=SC2046 # the flags are meant to split
  cc "$here/$src" $(pkg-config --cflags --libs "$pkg") -Wl,-rpath,"$libdir" -o "$out/$pkg-app" ||
    fail "cc $src \$(pkg-config --cflags --libs $pkg) failed"
  line=$("$out/$pkg-app") || fail "the program built with $pkg.pc failed: $line"
  [[ $line =~ $want ]] || fail "the program built with $pkg.pc printed '$line', expected /$want/"
  echo "consumer_pkgconfig.sh: $pkg $version: $line"
done
