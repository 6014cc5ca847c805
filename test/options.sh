#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/options.sh - the EBB_ environment variables, read once at start-up.
#
# Usage: options.sh <opt_probe binary>
# A bad value must give exactly one stderr line
#   ebb: warning: EBB_<NAME>=<value> is invalid: expected ...; using ...
# and the program must go on (exit 0) with the default. Good values give no
# warning. EBB_STATS=1 prints the statistics at exit, EBB_VERBOSE=1 says
# "ebb: initialised", and a value that changes behaviour is seen to.
# Prints one line per failure and a summary; exits 0 only if all passed.
set -uo pipefail

if [[ $# -ne 1 || ! -x $1 ]]; then
  echo "usage: $0 <opt_probe>" >&2
  exit 2
fi
probe=$1
failed=0
checked=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# The caller's own EBB_ settings would change what the probe prints.
for var in $(compgen -e); do
  [[ $var == EBB_* ]] && unset "$var"
done

fail() {
  echo "FAIL: $*"
  failed=$((failed + 1))
}

# run VAR=value...: runs the probe with those variables; sets $status.
run() {
  checked=$((checked + 1))
  env "$@" "$probe" >"$out" 2>"$err"
  status=$?
  if [[ $status -ne 0 ]]; then
    fail "$* -> exit $status; stderr: $(head -c 500 "$err")"
    return 1
  fi
  if grep -q '^ebb:' "$out"; then
    fail "$* -> ebb wrote to stdout: $(grep '^ebb:' "$out" | head -3)"
  fi
  return 0
}

warnings() { grep -c '^ebb: warning: ' "$err"; }

# bad VAR=value: exactly one warning line, naming the variable and value.
bad() {
  local assign=$1 name=${1%%=*}
  run "$assign" || return
  local n
  n=$(warnings)
  if [[ $n -ne 1 ]]; then
    fail "$assign -> $n warning lines, expected 1: $(cat "$err")"
    return
  fi
  local line
  line=$(grep '^ebb: warning: ' "$err")
  if [[ $line != "ebb: warning: $assign is invalid: expected "*"; using "* ]]; then
    fail "$assign -> unexpected warning: $line"
  fi
  if [[ $(wc -l <"$err") -ne 1 ]]; then
    fail "$assign -> more than the warning on stderr: $(cat "$err")"
  fi
  [[ $line == *"$name="* ]] || fail "$assign -> warning does not name $name"
}

# good VAR=value...: no warning at all.
good() {
  run "$@" || return
  if grep -q 'warning' "$err"; then
    fail "$* -> unexpected warning: $(cat "$err")"
  fi
}

# ---- bad values ------------------------------------------------------------
bad 'EBB_PURGE_DELAY_MS=abc'
bad 'EBB_PURGE_DELAY_MS=-5'
bad 'EBB_PURGE_DELAY_MS=60001'
bad 'EBB_DIRTY_MAX=12q'
bad 'EBB_DIRTY_MAX=k'
bad 'EBB_MADVISE=sometimes'
bad 'EBB_PURGE_THREAD=maybe'
bad 'EBB_LARGE_THRESHOLD=1'
bad 'EBB_LARGE_THRESHOLD=1g'
bad 'EBB_SEGMENT_CACHE=999'
bad 'EBB_SEGMENT_CACHE=4k'
bad 'EBB_ON_ERROR=explode'
bad 'EBB_DIRTY_FRACTION=101'
bad 'EBB_LIMIT_MARGIN=101'
bad 'EBB_LIMIT_MARGIN=10%'
bad 'EBB_SECURE=maybe'
bad 'EBB_LARGE_CACHE=1x'
bad 'EBB_LARGE_CACHE=1.5m'
bad 'EBB_REALLOC_MAP=lots'
bad 'EBB_REALLOC_MAP=-1'
bad 'EBB_REALLOC_MAP=1025g'
bad 'EBB_STATS=2'
bad 'EBB_VERBOSE=yes please'

# Every variable bad at once: one line each.
all_bad=('EBB_PURGE_DELAY_MS=abc' 'EBB_DIRTY_MAX=12q' 'EBB_MADVISE=sometimes' 'EBB_PURGE_THREAD=maybe'
  'EBB_LARGE_THRESHOLD=1' 'EBB_SEGMENT_CACHE=999' 'EBB_ON_ERROR=explode' 'EBB_DIRTY_FRACTION=101'
  'EBB_LARGE_CACHE=1x' 'EBB_STATS=2' 'EBB_VERBOSE=yes please' 'EBB_REALLOC_MAP=lots' 'EBB_LIMIT_MARGIN=200')
if run "${all_bad[@]}"; then
  for assign in "${all_bad[@]}"; do
    n=$(grep -cF "ebb: warning: $assign is invalid" "$err")
    [[ $n -eq 1 ]] || fail "all bad at once: $n warnings for $assign"
  done
  n=$(warnings)
  [[ $n -eq ${#all_bad[@]} ]] || fail "all bad at once: $n warning lines, expected ${#all_bad[@]}"
fi

# ---- good values -------------------------------------------------------------
good 'EBB_DIRTY_MAX=64k'
good 'EBB_DIRTY_MAX=1g'
good 'EBB_DIRTY_MAX=0'
good 'EBB_DIRTY_MAX=16kb'
good 'EBB_LARGE_CACHE=8m'
good 'EBB_LARGE_CACHE=8M'
good 'EBB_LARGE_CACHE=0'
good 'EBB_LARGE_THRESHOLD=64k'
good 'EBB_LARGE_THRESHOLD=4096'
good 'EBB_LARGE_THRESHOLD=512K'
good 'EBB_REALLOC_MAP=0'
good 'EBB_REALLOC_MAP=1m'
good 'EBB_REALLOC_MAP=1024g'
good 'EBB_PURGE_DELAY_MS=0'
good 'EBB_PURGE_DELAY_MS=60000'
good 'EBB_SEGMENT_CACHE=0'
good 'EBB_SEGMENT_CACHE=64'
good 'EBB_DIRTY_FRACTION=0'
good 'EBB_DIRTY_FRACTION=100'
good 'EBB_LIMIT_MARGIN=0'
good 'EBB_LIMIT_MARGIN=100'
good 'EBB_PURGE_THREAD=0'
good 'EBB_PURGE_THREAD=off'
good 'EBB_MADVISE=free'
good 'EBB_MADVISE=DONTNEED'
good 'EBB_ON_ERROR=warn'
good 'EBB_ON_ERROR=abort'
good 'EBB_SECURE=1'
good 'EBB_SECURE=0'
good 'EBB_STATS=0'
good 'EBB_VERBOSE=0'
good 'EBB_VERBOSE=' # empty: unset
good 'EBB_UNKNOWN_THING=1' # not an option: ignored

# ---- options that show ---------------------------------------------------------
if run 'EBB_STATS=1'; then
  grep -q '^ebb: statistics' "$err" || fail "EBB_STATS=1 printed no statistics at exit: $(head -3 "$err")"
fi
if run 'EBB_VERBOSE=1'; then
  grep -q '^ebb: initialised' "$err" || fail "EBB_VERBOSE=1 did not print 'ebb: initialised': $(head -3 "$err")"
fi
if run 'EBB_VERBOSE=yes'; then
  grep -q '^ebb: initialised' "$err" || fail "EBB_VERBOSE=yes did not print 'ebb: initialised'"
fi
# The probe holds a 100 KiB block from malloc and an 80 KiB one grown by
# realloc: by default only the grown one has its own mapping.
if run; then
  [[ ! -s $err ]] || fail "no options: stderr not empty: $(head -3 "$err")"
  grep -q '"large_count": 1' "$out" || fail "defaults: expected only the realloc-grown block large: $(cat "$out")"
fi
if run 'EBB_LARGE_THRESHOLD=64k'; then
  grep -q '"large_count": 2' "$out" || fail "EBB_LARGE_THRESHOLD=64k: the 100 KiB block is not large: $(cat "$out")"
fi
if run 'EBB_LARGE_THRESHOLD=1'; then # invalid: the default applies
  grep -q '"large_count": 1' "$out" || fail "EBB_LARGE_THRESHOLD=1 (invalid) did not fall back to the default"
fi
if run 'EBB_REALLOC_MAP=0'; then
  grep -q '"large_count": 0' "$out" || fail "EBB_REALLOC_MAP=0: the realloc-grown block still has its own mapping"
fi
if run 'EBB_REALLOC_MAP=1m'; then
  grep -q '"large_count": 0' "$out" || fail "EBB_REALLOC_MAP=1m: an 80 KiB realloc was mapped"
fi
if run 'EBB_REALLOC_MAP=lots'; then # invalid: the default applies
  grep -q '"large_count": 1' "$out" || fail "EBB_REALLOC_MAP=lots (invalid) did not fall back to the default"
fi

if [[ $failed -eq 0 ]]; then
  echo "options: $checked runs: PASS"
  exit 0
fi
echo "options: $checked runs, $failed failures: FAIL"
exit 1
