#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/real/stats_file.sh - EBB_STATS_FILE with real programs under
# LD_PRELOAD: sort closes stderr before it exits (as all of coreutils do),
# so EBB_STATS=1 shows nothing, and the file must hold the statistics.
#   %p   each process writes its own file, named with its pid
#   a fixed name is appended to: two runs leave two reports
#   a path that cannot be opened gets one line on stderr, and the program's
#   own output and status are unchanged
# Usage: stats_file.sh <path/to/libebb.so>. Exit 0 if all hold, else 1 with
# one line per failure.
set -euo pipefail
lib=$(readlink -f "$1")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ebb-stats-file.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

expected=$(env -u LD_PRELOAD sort /etc/passwd)
out=$(LD_PRELOAD=$lib EBB_STATS_FILE="$tmp/stats.%p" sort /etc/passwd)
[[ "$out" == "$expected" ]] || fail "sort's output changed under EBB_STATS_FILE"
files=("$tmp"/stats.*)
if [[ ${#files[@]} -ne 1 || ! -f ${files[0]} ]]; then
  fail "expected one file stats.<pid>, found: $(ls "$tmp")"
else
  pid=${files[0]##*.}
  [[ "$pid" =~ ^[0-9]+$ ]] || fail "%p did not become a pid: ${files[0]}"
  grep -q "^ebb: statistics (ebb [0-9.]*, pid $pid)\$" "${files[0]}" || fail "no statistics header for pid $pid"
  grep -q "^ebb:   resident [0-9]* KiB" "${files[0]}" || fail "no resident line in ${files[0]}"
  grep -q "^ebb:   free_in_empty_pages [0-9]* KiB" "${files[0]}" || fail "no free_in_empty_pages line"
fi

# EBB_STATS=1 alone: sort closed stderr, nothing arrives (why the option exists).
err=$(LD_PRELOAD=$lib EBB_STATS=1 sort /etc/passwd 2>&1 >/dev/null)
[[ -z "$err" ]] || echo "note: EBB_STATS=1 printed to a closed stderr?"

for _ in 1 2; do LD_PRELOAD=$lib EBB_STATS_FILE="$tmp/both" sort /etc/passwd >/dev/null; done
n=$(grep -c "^ebb: statistics" "$tmp/both" || true)
[[ "$n" == 2 ]] || fail "a fixed name is appended to: expected 2 reports, found $n"

# bash, not coreutils: its stderr is still open at exit.
err=$(LD_PRELOAD=$lib EBB_STATS_FILE="$tmp/no/such/dir/s" bash -c : 2>&1) || fail "bash failed"
[[ "$err" == "ebb: error: EBB_STATS_FILE: cannot open $tmp/no/such/dir/s (errno 2)" ]] ||
  fail "unopenable path: got '$err'"

((failures == 0)) && echo "EBB_STATS_FILE checks passed"
exit $((failures > 0))
