#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/demo_deadline.sh - "on a deadline", as the README puts it in time.
#
# Usage: demo_deadline.sh <demo_deadline binary>   (run with LD_PRELOAD=libebb.so)
# demo_deadline frees 8 MiB of 64 KiB blocks and polls RSS until it is back.
# Passes only if, in the median trial, the 8 MiB are still resident right
# after the free (at least 7 MiB: ebb waits, glibc would have trimmed them at
# once) and are back between the purge delay and the delay plus the purge
# thread's wake-up step (delay / 2) plus 250 ms for a loaded machine - for the
# default delay (100 ms) and for EBB_PURGE_DELAY_MS=300, which must move it.
# Prints one line per failure; exits 0 only if all passed.
set -uo pipefail

if [[ $# -ne 1 || ! -x $1 ]]; then
  echo "usage: $0 <demo_deadline>" >&2
  exit 2
fi
failed=0

# check_delay <delay ms> <trials>: runs the program with that delay.
check_delay() {
  local delay=$1 out median
  out=$(EBB_PURGE_DELAY_MS=$delay "$prog" --trials "$2" 2>&1)
  median=$(grep '^median of' <<<"$out")
  if [[ -z $median ]]; then
    echo "FAIL: delay $delay ms: no median line; the program said: $(tail -n 2 <<<"$out")"
    failed=1
    return
  fi
  awk -v d="$delay" -v line="$median" 'BEGIN {
    match(line, /[0-9.]+ MiB resident/); resident = substr(line, RSTART, RLENGTH) + 0
    match(line, /back after [0-9]+ ms/); back = substr(line, RSTART + 11, RLENGTH - 14) + 0
    if (resident < 7) { print "FAIL: delay " d " ms: only " resident " MiB resident right after the free"; exit 1 }
    if (back < d || back > d * 1.5 + 250) {
      print "FAIL: delay " d " ms: back after " back " ms, not within [" d ", " d * 1.5 + 250 "]"; exit 1 }
  }' || failed=1
  echo "delay $delay ms: $median"
}

prog=$1
check_delay 100 21
check_delay 300 9
exit $failed
