#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/consumer_cmake.sh - a CMake project outside the tree
# (test/install/consumer) finds the installed package and links each of its
# four targets; the programs run.
#
# Usage: consumer_cmake.sh <cmake> <work dir of install.sh>
# ebb::ebb and ebb::ebb-static must serve malloc (app.c), ebb::ebb-prefix
# and ebb::ebb-prefix-static only the ebb_ names (app_prefix.c); the shared
# ones must load the installed libraries. find_package(ebb 0.2) must fail:
# 0.1.0 does not provide 0.2.
set -euo pipefail
cmake=$1
work=$2
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix
fail() { echo "consumer_cmake.sh: $*" >&2; exit 1; }
command -v "$cmake" >/dev/null || { echo "consumer_cmake.sh: skipped: no cmake"; exit 77; }

out=$work/cmake-consumer
rm -rf "$out" "$out-0.2"
"$cmake" -S "$here/consumer" -B "$out" -DCMAKE_PREFIX_PATH="$prefix" >"$out.log" 2>&1 ||
  { cat "$out.log" >&2; fail "configuring the consumer project failed"; }
"$cmake" --build "$out" >>"$out.log" 2>&1 || { cat "$out.log" >&2; fail "building the consumer project failed"; }

expect_run() { # expect_run PROGRAM PATTERN: runs it, its one line must match
  local line
  line=$(env -u LD_PRELOAD -u LD_LIBRARY_PATH "$out/$1") || fail "$1 failed: $line"
  [[ $line =~ $2 ]] || fail "$1 printed '$line', expected /$2/"
  echo "consumer_cmake.sh: $line"
}
expect_run app_shared "^app: ebb [0-9.]+ serves malloc, from $prefix/lib/libebb.so.0$"
expect_run app_static "^app: ebb [0-9.]+ serves malloc, from .*/app_static$"
expect_run app_prefix_shared "^app_prefix: ebb [0-9.]+ beside the C library's malloc, from $prefix/lib/libebb-prefix.so.0$"
expect_run app_prefix_static "^app_prefix: ebb [0-9.]+ beside the C library's malloc, from .*/app_prefix_static$"

if "$cmake" -S "$here/consumer" -B "$out-0.2" -DCMAKE_PREFIX_PATH="$prefix" -DEBB_WANT_VERSION=0.2 \
  >"$out-0.2.log" 2>&1; then
  fail "find_package(ebb 0.2) accepted version $(sed -n 's/.*PACKAGE_VERSION "\(.*\)".*/\1/p' \
    "$prefix/lib/cmake/ebb/ebbConfigVersion.cmake" | head -1)"
fi
grep -q 'version: 0.1.0' "$out-0.2.log" || { cat "$out-0.2.log" >&2; fail "find_package(ebb 0.2) failed for another reason"; }
echo "consumer_cmake.sh: find_package(ebb 0.2) refuses 0.1.0"
