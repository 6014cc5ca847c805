#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/ldconfig.sh - when an install runs ldconfig, and what it says
# (ebb_ldconfig, cmake/EbbLdconfig.cmake).
#
# Usage: ldconfig.sh <source dir> <cmake>
# A fake ldconfig, first on PATH, lists the directories given in
# $FAKE_LDCONFIG_DIRS for `ldconfig -v -N` and records every other call, so
# the real loader cache is never touched. Cases: root and the library
# directory in the loader's path (also through a symbolic link): runs it;
# root and not in the path, DESTDIR set, not root: does not, and says why.
# The not-root case needs setpriv when the test runs as root (else skipped).
set -euo pipefail
src=$1
cmake=$2
fail() { echo "ldconfig.sh: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
mkdir -p "$work/bin" "$work/lib" "$work/other"
ln -s lib "$work/link"
cat >"$work/bin/ldconfig" <<'FAKE'
#!/bin/sh
if [ "$*" = "-v -N" ]; then
  for d in $FAKE_LDCONFIG_DIRS; do echo "$d: (from fake.conf:1)"; echo "	libfake.so.1 -> libfake.so.1.0"; done
  exit 0
fi
echo "ldconfig $*" >>"$FAKE_LDCONFIG_LOG"
FAKE
chmod 755 "$work/bin/ldconfig"
cat >"$work/run.cmake" <<EOF2
include("$src/cmake/EbbLdconfig.cmake")
ebb_ldconfig("\${LIBDIR}")
EOF2

check() { # check NAME LIBDIR EXPECTED-LINE CALLS [env ...]: runs ebb_ldconfig, checks its line and the calls
  local name=$1 libdir=$2 want=$3 calls=$4
  shift 4
  : >"$work/log"
  local out
  out=$(env PATH="$work/bin:$PATH" FAKE_LDCONFIG_LOG="$work/log" FAKE_LDCONFIG_DIRS="/usr/lib $work/lib" "$@" \
    "$cmake" -DLIBDIR="$libdir" -P "$work/run.cmake" 2>&1) || fail "$name: cmake -P failed: $out"
  [[ $out == "-- $want" ]] || fail "$name: printed '$out', expected '-- $want'"
  [[ $(wc -l <"$work/log") == "$calls" ]] || fail "$name: ldconfig ran $(wc -l <"$work/log") times, expected $calls"
  [[ $calls == 0 ]] || [[ $(cat "$work/log") == "ldconfig " ]] || fail "$name: ldconfig was called as '$(cat "$work/log")'"
  echo "ldconfig.sh: $name: $out"
}

if [[ $(id -u) == 0 ]]; then
  check "in the loader's path" "$work/lib" "ebb: ran ldconfig: $work/lib is in the loader's default path" 1
  check "through a link" "$work/link" "ebb: ran ldconfig: $work/link is in the loader's default path" 1
  check "elsewhere" "$work/other" "ebb: not running ldconfig: $work/other is not in the loader's default path (programs find libebb there through an rpath or LD_LIBRARY_PATH: README, Linking)" 0
  check "staged" "$work/lib" "ebb: not running ldconfig: DESTDIR is set (a staged install)" 0 DESTDIR=/tmp/stage
  if command -v setpriv >/dev/null; then
    chmod 666 "$work/log"
    check "not root" "$work/lib" "ebb: not running ldconfig: not root (as root, run ldconfig if $work/lib is in the loader's path)" 0 \
      setpriv --reuid=65534 --regid=65534 --clear-groups
  else
    echo "ldconfig.sh: not-root case skipped: no setpriv"
  fi
else
  check "not root" "$work/lib" "ebb: not running ldconfig: not root (as root, run ldconfig if $work/lib is in the loader's path)" 0
  echo "ldconfig.sh: skipped the root cases: not root"
  exit 77
fi
