#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/uninstall.sh - `make uninstall` removes exactly what the
# install put into the prefix (install.sh's tree), and says so.
#
# Usage: uninstall.sh <source dir> <cmake> <work dir of install.sh>
# Runs the Makefile's target with MANIFEST pointing at the install's
# manifest. Afterwards no file of it is left, nor lib/cmake/ebb; a file
# that is not ebb's, put into lib/ beforehand, is still there.
set -euo pipefail
fail() { echo "uninstall.sh: $*" >&2; exit 1; }
src=$1 cmake=$2 work=$3
prefix=$work/prefix
[[ -s $work/manifest ]] || fail "no manifest in $work (install.sh did not run)"

echo "another package's file" >"$prefix/lib/other.txt"
count=$(grep -c "" "$work/manifest") # the manifest has no final newline
make -s -C "$src" uninstall CMAKE="$cmake" MANIFEST="$work/manifest" >"$work/uninstall.log" 2>&1 ||
  { cat "$work/uninstall.log" >&2; fail "make uninstall failed"; }
grep -qx -- "-- ebb: uninstalled: removed $count files listed in $work/manifest (0 already gone)" "$work/uninstall.log" ||
  { cat "$work/uninstall.log" >&2; fail "make uninstall did not say it removed all $count files"; }
while IFS= read -r f; do
  [[ ! -e $f && ! -L $f ]] || fail "$f is still there"
  grep -qxF -- "-- ebb: removed $f" "$work/uninstall.log" || fail "make uninstall did not name $f"
done <"$work/manifest"
[[ ! -e $prefix/lib/cmake/ebb ]] || fail "lib/cmake/ebb is still there"
[[ -e $prefix/lib/other.txt ]] || fail "make uninstall removed a file that is not ebb's"
left=$(find "$prefix" \( -type f -o -type l \) ! -path "$prefix/lib/other.txt")
[[ -z $left ]] || fail "files left in the prefix: $left"

# Once more: nothing left to remove, and it says so.
make -s -C "$src" uninstall CMAKE="$cmake" MANIFEST="$work/manifest" >"$work/uninstall2.log" 2>&1 ||
  fail "a second make uninstall failed"
grep -qx -- "-- ebb: uninstalled: removed 0 files listed in $work/manifest ($count already gone)" "$work/uninstall2.log" ||
  { cat "$work/uninstall2.log" >&2; fail "a second make uninstall did not say all were gone"; }
# No manifest: one line that says what is missing.
if make -s -C "$src" uninstall CMAKE="$cmake" MANIFEST="$work/none.txt" >"$work/uninstall3.log" 2>&1; then
  fail "make uninstall without a manifest succeeded"
fi
grep -qx "ebb: error: $work/none.txt not found: nothing was installed from this build (make install writes it)" "$work/uninstall3.log" ||
  { cat "$work/uninstall3.log" >&2; fail "make uninstall without a manifest gave no clear error"; }
echo "uninstall.sh: removed the $count files of the install, and nothing else"
rm -rf "$work"
