#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/options.sh - the EBB_ environment variables, read once at start-up.
#
# Usage: options.sh <opt_probe binary>
# A bad value must give exactly one stderr line
#   ebb: warning: EBB_<NAME>=<value> is invalid: expected ...; using ...
# and the program must go on (exit 0) with the default. Good values give no
# warning. An EBB_ variable that is not an option gets one warning naming
# the closest option. EBB_STATS=1 prints the statistics at exit,
# EBB_VERBOSE=1 prints the options and a line for each kind of decision
# (rate-limited), ebb_options_print names each value's source, and a value
# that changes behaviour is seen to.
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

# run_mode MODE VAR=value...: runs `probe MODE` with those variables.
run_mode() {
  local mode=$1
  shift
  checked=$((checked + 1))
  env "$@" "$probe" "$mode" >"$out" 2>"$err"
  status=$?
  [[ $status -eq 0 ]] || { fail "$mode $* -> exit $status; stderr: $(head -c 500 "$err")"; return 1; }
}

# The options ebb has: the lines ebb_options_print prints.
option_count=$("$probe" print 2>&1 >/dev/null | grep -c '^ebb:   EBB_')
((option_count >= 14)) || { echo "FAIL: ebb_options_print listed $option_count options"; exit 1; }

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
bad 'EBB_PURGE_DELAY_MS=' # empty: invalid like any other value
bad 'EBB_DIRTY_MAX='
bad 'EBB_MADVISE='

# expect_line VAR=value... -- LINE: stderr is exactly that one line.
expect_line() {
  local assigns=()
  while [[ $1 != -- ]]; do assigns+=("$1"); shift; done
  local want=$2
  run "${assigns[@]}" || return
  [[ $(cat "$err") == "$want" ]] || fail "${assigns[*]} -> expected: $want; got: $(cat "$err")"
}

# ---- what is accepted, in the units typed -------------------------------------
expect_line 'EBB_DIRTY_MAX=2t' -- \
  'ebb: warning: EBB_DIRTY_MAX=2t is invalid: expected a size from 0 to 1t (k, m, g, t suffixes); using 1g'
expect_line 'EBB_LARGE_THRESHOLD=1g' -- \
  'ebb: warning: EBB_LARGE_THRESHOLD=1g is invalid: expected a size from 4k to 512k (k, m, g, t suffixes); using 512k'
expect_line 'EBB_PURGE_THREAD=maybe' -- \
  'ebb: warning: EBB_PURGE_THREAD=maybe is invalid: expected 1, 0, yes, no, on, off, true or false; using 1'
expect_line 'EBB_MADVISE=sometimes' -- \
  'ebb: warning: EBB_MADVISE=sometimes is invalid: expected dontneed or free; using dontneed'
expect_line 'EBB_PURGE_DELAY_MS=' -- \
  'ebb: warning: EBB_PURGE_DELAY_MS= is invalid: expected a number from 0 to 60000; using 100'
expect_line 'EBB_STATS_FILE=' -- \
  'ebb: warning: EBB_STATS_FILE= is invalid: expected a file path (%p: the process id); using (none)'

# ---- EBB_ variables that are not options -----------------------------------------
expect_line 'EBB_PURGE_DELAY=5' -- \
  'ebb: warning: EBB_PURGE_DELAY is not an ebb option (did you mean EBB_PURGE_DELAY_MS?)'
expect_line 'EBB_DIRTYMAX=1g' -- 'ebb: warning: EBB_DIRTYMAX is not an ebb option (did you mean EBB_DIRTY_MAX?)'
expect_line 'EBB_SECURE_MODE=1' -- 'ebb: warning: EBB_SECURE_MODE is not an ebb option (did you mean EBB_SECURE?)'
expect_line 'EBB_VERBSOE=1' -- 'ebb: warning: EBB_VERBSOE is not an ebb option (did you mean EBB_VERBOSE?)'
expect_line 'EBB_UNKNOWN_THING=1' -- 'ebb: warning: EBB_UNKNOWN_THING is not an ebb option (EBB_VERBOSE=1 lists them)'
expect_line 'EBB_DEBUG=3' -- 'ebb: warning: EBB_DEBUG is a build setting (cmake -DEBB_DEBUG=...), not a run-time option'
expect_line 'EBB_PURGE_DELAY=5' 'EBB_PURGE_DELAY=6' -- \
  'ebb: warning: EBB_PURGE_DELAY is not an ebb option (did you mean EBB_PURGE_DELAY_MS?)' # once per variable
# The variables ebb's own tools read are not options, and not mistakes.
good 'EBB_STRESS_SCALE=0.1' 'EBB_STRESS_KEEP_CHILD=1' 'EBB_BENCH_KEEP=/tmp/x' 'EBB_INSTR_N1=5' 'EBB_INSTR_ONLY=ebb' \
  'EBB_DEMO_IDLE_MS=2000' 'EBB_DEMO_ALLOCATORS=ebb glibc'

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
good 'EBB_DIRTY_MAX=1t'
good 'EBB_PURGE_THREAD=yes' 'EBB_SECURE=false' 'EBB_STATS=off'

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
# ---- the options in effect and their sources ------------------------------------
if run_mode print 'EBB_DIRTY_MAX=1024m' 'EBB_MADVISE=free' 'EBB_PURGE_DELAY_MS=abc'; then
  n=$(grep -c '^ebb:   EBB_[A-Z_]* = [^ ]* (\(default\|environment\|mallopt\))$' "$err")
  [[ $n -eq $option_count ]] || fail "ebb_options_print: $n option lines, expected $option_count: $(cat "$err")"
  for want in 'EBB_DIRTY_MAX = 1g (environment)' 'EBB_MADVISE = free (environment)' \
    'EBB_PURGE_DELAY_MS = 100 (default)' 'EBB_LARGE_THRESHOLD = 512k (default)' 'EBB_ON_ERROR = abort (default)'; do
    grep -qxF "ebb:   $want" "$err" || fail "ebb_options_print: no line '$want': $(cat "$err")"
  done
fi
# A path option: printed as typed, and written to at exit (%p: the pid).
stats_dir=$(mktemp -d)
trap 'rm -f "$out" "$err"; rm -rf "$stats_dir"' EXIT
if run_mode print "EBB_STATS_FILE=$stats_dir/stats-%p.txt"; then
  grep -qxF "ebb:   EBB_STATS_FILE = $stats_dir/stats-%p.txt (environment)" "$err" ||
    fail "ebb_options_print: no EBB_STATS_FILE line: $(grep STATS_FILE "$err")"
  compgen -G "$stats_dir/stats-[0-9]*.txt" >/dev/null || fail "EBB_STATS_FILE: no $stats_dir/stats-<pid>.txt written"
fi
if run_mode print; then
  grep -qxF 'ebb:   EBB_STATS_FILE = (none) (default)' "$err" || fail "ebb_options_print: EBB_STATS_FILE unset: $(grep STATS_FILE "$err")"
fi
if run_mode mallopt 'EBB_DIRTY_MAX=64m'; then
  for want in 'EBB_DIRTY_MAX = 8m (mallopt)' 'EBB_LARGE_THRESHOLD = 64k (mallopt)' 'EBB_LARGE_CACHE = 256m (default)'; do
    grep -qxF "ebb:   $want" "$err" || fail "after mallopt: no line '$want': $(cat "$err")"
  done
fi
if run_mode mallopt 'EBB_VERBOSE=1'; then
  grep -qxF 'ebb: mallopt(M_TRIM_THRESHOLD, 8388608): EBB_DIRTY_MAX = 8m' "$err" ||
    fail "EBB_VERBOSE=1: mallopt(M_TRIM_THRESHOLD) not explained: $(grep mallopt "$err")"
fi

# ---- EBB_VERBOSE=1 explains each decision, and never floods ------------------------
if run 'EBB_VERBOSE=1'; then
  n=$(grep -c '^ebb:   EBB_[A-Z_]* = ' "$err")
  [[ $n -eq $option_count ]] || fail "EBB_VERBOSE=1: $n option lines at start, expected $option_count"
fi
if run_mode workload 'EBB_VERBOSE=1'; then
  for kind in 'park: a 64 KiB page of 256 B blocks is sparse (1 of 256 in use): its 63.7 KiB free are offered' \
    'purge: released .* (offered pages .*): the purge delay (EBB_PURGE_DELAY_MS=100) passed' \
    'purge: released .*ebb_collect(true) or malloc_trim(0) asked for everything' \
    'purge: released .*: free memory exceeded the dirty budget' \
    'budget: .* of free memory is over the dirty budget of 1 MiB (EBB_DIRTY_MAX=1m): purging at once' \
    'segment: mapped a fresh 4 MiB segment for 64 KiB pages' \
    'segment cache: unmapped [0-9]* free segments' \
    'large: mapped a 20 MiB block' 'large: unmapped a 300 MiB block at once' \
    'large cache: unmapped 1 freed blocks (20 MiB, of which 8 KiB resident): cached for the purge delay' \
    'quiet thread: thread [0-9]* is blocked in the kernel: its pages were cleaned' \
    'verbose: [0-9]* more park lines left out (at most 10 a second)'; do
    grep -q "^ebb: $kind" "$err" || fail "EBB_VERBOSE=1 workload: no line 'ebb: $kind'"
  done
  # The flood parks thousands of pages within a few seconds.
  parks=$(grep -c '^ebb: park: ' "$err")
  ((parks <= 60)) || fail "EBB_VERBOSE=1 workload: $parks park lines: not rate-limited"
  left=$(sed -n 's/^ebb: verbose: \([0-9]*\) more park lines left out.*/\1/p' "$err" | awk '{s += $1} END {print s + 0}')
  ((left >= 1000)) || fail "EBB_VERBOSE=1 workload: only $left park lines left out, expected a flood of 1000 or more"
  lines=$(wc -l <"$err")
  ((lines <= 300)) || fail "EBB_VERBOSE=1 workload: $lines lines on stderr"
fi
if run_mode workload; then
  [[ ! -s $err ]] || fail "workload without EBB_VERBOSE: stderr not empty: $(head -3 "$err")"
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
