#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/man.sh - the manual pages are complete and render cleanly.
#
# Usage: man.sh <source dir>
# ebb(3) names every function include/ebb.h declares (EBB_API ... ebb_x();
# its synopsis and its description), ebb(7) every option of src/options.c's
# table (as EBB_<NAME>), ebb(1) every verb of the ebb command (a synopsis
# line and a section), and all three render with no warning from man or
# groff (-ww: all of groff's warnings). Skipped (77) without man and groff.
set -euo pipefail
src=$1
page3=$src/man/ebb.3
page7=$src/man/ebb.7
page1=$src/man/ebb.1
fail=0
problem() { echo "man.sh: $*" >&2; fail=1; }

functions=$(sed -n 's/^EBB_API[^(]*[^a-z0-9_]\(ebb_[a-z0-9_]*\)(.*/\1/p' "$src/include/ebb.h")
[[ -n $functions ]] || problem "found no EBB_API function in include/ebb.h"
for f in $functions; do
  grep -q "^\.BI\? \"[^\"]*[ *]$f(" "$page3" || problem "ebb(3) has no synopsis line for $f()"
  grep -q "^\.BR $f ()" "$page3" || grep -q "\.BR $f ()\\\\~" "$page3" ||
    grep -q "\\\\~ $f ()" "$page3" || problem "ebb(3) does not describe $f() (a '.BR $f ()' line)"
done

options=$(sed -n 's/^ *\[EBB_OPT_[A-Z_]*\] *= *{"\([A-Z_]*\)".*/\1/p' "$src/src/options.c")
[[ -n $options ]] || problem "found no option in src/options.c's table"
for o in $options; do
  grep -q "^\.BR EBB_$o \"" "$page7" || problem "ebb(7) has no ENVIRONMENT entry for EBB_$o"
done

for verb in run compare top watch stats explain; do
  grep -q "^\.B ebb $verb\$" "$page1" || problem "ebb(1) has no synopsis line for ebb $verb"
  grep -q "^\.SS .*ebb $verb" "$page1" || problem "ebb(1) does not describe ebb $verb (a .SS line)"
done

if ! command -v man >/dev/null && ! command -v groff >/dev/null; then
  echo "man.sh: skipped: neither man nor groff is installed (apt-get install man-db)"
  exit 77
fi
for page in "$page1" "$page3" "$page7"; do
  if command -v man >/dev/null; then
    out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) || problem "man -l $page failed"
    [[ -z $out ]] || problem "man --warnings -l $page: $out"
  fi
  if command -v groff >/dev/null; then
    out=$(groff -man -ww -z "$page" 2>&1) || problem "groff -man $page failed"
    [[ -z $out ]] || problem "groff -ww $page: $out"
  fi
done
((fail == 0)) || exit 1
echo "man.sh: ebb(1): 6 verbs, ebb(3): $(wc -w <<<"$functions") functions, ebb(7): $(wc -w <<<"$options") options; all render cleanly"
