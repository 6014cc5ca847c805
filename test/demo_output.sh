#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/demo_output.sh - what `make demo` shows: demo/run.sh on three rows,
# ebb against glibc, each row in a process of its own.
#
# Usage: demo_output.sh <build dir holding libebb.so>
# Passes only if the screen explains its figures (what a cell is, what each
# row and column is, what * means, the verdict), ebb's column shows the memory
# gone back (at most 1 MiB in the round and pinned rows, the promise kept in
# every row) and glibc's shows what it keeps (the pinned row above 100 MiB):
# a demo that stops showing memory going back fails here.
# Prints one line per failure; exits 0 only if all passed.
set -uo pipefail

if [[ $# -ne 1 || ! -e $1/libebb.so ]]; then
  echo "usage: $0 <build dir with libebb.so>" >&2
  exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

EBB_DEMO_ALLOCATORS="ebb glibc" EBB_DEMO_ONLY="round1/80KB pinned/80KB sparse/4KiB" \
  "$root/demo/run.sh" "$1" >"$out" 2>"$err" || fail "run.sh exited with status $?: $(head -n 3 "$err")"

# Every explanation a first-time reader needs is on the screen.
for line in \
  "A cell is MiB still resident: RSS after the sleep minus RSS before the row." \
  "Each row is a fresh process that only calls malloc and free. It allocates about" \
  "  pinned SIZE    as round 2, but one small block allocated after the others stays" \
  "  glibc        the C library's own malloc (nothing preloaded)" \
  "* = more than ebb promises to keep: 1 MiB, or in a sparse row 2 x live + 4 MiB." \
  "most = the largest cell of the column among those rows." \
  "Verdict: in how many rows each allocator kept no more than ebb promises"; do
  grep -qF -- "$line" "$out" || fail "missing line: $line"
done

# The cells: "<row name> <ebb> <glibc>", a mark (*) glued to a figure.
cell() { awk -v row="$1" -v col="$2" 'index($0, row) == 1 { n = split(substr($0, length(row) + 1), f, " "); print f[col] }' "$out"; }
for row in "round 1  80KB" "pinned 80KB"; do
  ebb=$(cell "$row" 1)
  awk -v v="$ebb" 'BEGIN { exit !(v ~ /^-?[0-9]+\.[0-9]$/ && v + 0 <= 1.0) }' ||
    fail "ebb's cell in '$row' is '$ebb', not a figure of at most 1.0 MiB"
done
glibc=$(cell "pinned 80KB" 2)
awk -v v="$glibc" 'BEGIN { exit !(v ~ /^[0-9]+\.[0-9]\*$/ && v + 0 > 100) }' ||
  fail "glibc's cell in 'pinned 80KB' is '$glibc', not above 100 MiB and marked *"
grep -qx "  ebb 3 of 3, glibc [0-2] of 3" "$out" || fail "verdict counts wrong: $(grep -A1 '^Verdict' "$out" | tail -n 1)"
grep -qx "ebb kept its promise in every row: the freed memory went back to the OS within" "$out" ||
  fail "no verdict that ebb kept its promise: $(tail -n 1 "$out")"
# A negative cell is explained where it appears.
if grep -qE ' -[0-9]+\.[0-9]' "$out"; then
  grep -q "^Negative cells (" "$out" || fail "a negative cell without its explanation"
fi
# The build's and run's chatter stays on stderr.
grep -qiE 'cmake|gcc|make\[' "$out" && fail "build output on stdout"

if [[ $failed -ne 0 ]]; then
  echo "--- run.sh stdout:"; cat "$out"; echo "--- stderr:"; cat "$err"
  exit 1
fi
echo "demo_output: ok"
