#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/cgroup.sh - a memory limit never kills a program that glibc runs.
#
# Usage: cgroup.sh <libebb.so> <limit_waves>
# In a memory cgroup of its own (cgroup v1, nested under this process's
# group), with memory.limit_in_bytes = LIMIT_MB, runs limit_waves (waves of
# LIVE_MB MiB of blocks of one size, all freed before the next size) RUNS
# times under ebb (LD_PRELOAD) and RUNS times under glibc. Passes if no ebb
# run was OOM-killed and ebb's peak usage (memory.max_usage_in_bytes, reset
# before each run) is within 10% of glibc's. Prints both.
#
# The defaults keep the ratio of a 150 MiB live set under a 256 MiB limit at
# a quarter of the size, so that twenty runs take well under a minute where
# a page fault costs tens of microseconds (a VM); LIMIT_MB=256 LIVE_MB=150
# ROUNDS=3 runs the full size. The ebb runs use a 5 s purge delay: a burst
# then always lands within one delay, as the default 100 ms does on a
# machine that faults the next wave in faster than that, so the test does
# not depend on the machine's speed. Without a writable cgroup-v1 memory
# hierarchy the test is skipped (exit 77).
set -uo pipefail

[[ $# -eq 2 ]] || { echo "usage: $0 <libebb.so> <limit_waves>" >&2; exit 2; }
lib=$(readlink -f "$1") waves=$(readlink -f "$2")
limit_mb=${LIMIT_MB:-64} live_mb=${LIVE_MB:-38} rounds=${ROUNDS:-1} runs=${RUNS:-10}
for var in $(compgen -e); do
  [[ $var == EBB_* ]] && unset "$var"
done

# This process's memory cgroup directory: the v1 memory line of
# /proc/self/cgroup joined to the hierarchy's mount point.
own_group() {
  local path mount root
  path=$(awk -F: '$2 ~ /(^|,)memory(,|$)/ { print $3; exit }' /proc/self/cgroup)
  [[ -n $path ]] || return 1
  read -r root mount < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
    if ($(i + 1) == "cgroup" && $(i + 3) ~ /(^|,)memory(,|$)/) { print $4, $5; exit } }' /proc/self/mountinfo)
  [[ -n ${mount:-} ]] || return 1
  [[ $root != / && $path == "$root"* ]] && path=${path#"$root"}
  echo "$mount${path%/}"
}

parent=$(own_group) || { echo "skip: no cgroup-v1 memory hierarchy (cgroup v2 or none)"; exit 77; }
group=$parent/ebb-limit-test-$$
if ! mkdir "$group" 2>/dev/null; then
  echo "skip: cannot create a memory cgroup under $parent (not writable)"
  exit 77
fi
cleanup() {
  # Any process left in the group (none should be) goes back to the parent.
  while read -r pid; do echo "$pid" >"$parent/cgroup.procs" 2>/dev/null; done <"$group/cgroup.procs"
  rmdir "$group" || echo "warning: could not remove $group"
}
trap cleanup EXIT
echo $((limit_mb << 20)) >"$group/memory.limit_in_bytes" || { echo "FAIL: cannot set the limit"; exit 1; }
# With swap the program would swap instead of being killed: limit it too.
[[ -e $group/memory.memsw.limit_in_bytes ]] && echo $((limit_mb << 20)) >"$group/memory.memsw.limit_in_bytes" 2>/dev/null

oom_kills() { awk '$1 == "oom_kill" { print $2 }' "$group/memory.oom_control"; }

# run_in_group LABEL CMD...: runs CMD in the group; prints "status peak_mib ooms".
run_in_group() {
  local before status=0
  echo 0 >"$group/memory.max_usage_in_bytes"
  before=$(oom_kills)
  sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$group" "$@" >/dev/null 2>&1 || status=$?
  echo "$status $(($(cat "$group/memory.max_usage_in_bytes") >> 20)) $(($(oom_kills) - before))"
}

declare -A peak_max=([ebb]=0 [glibc]=0) peak_min=([ebb]=999999 [glibc]=999999) ooms=([ebb]=0 [glibc]=0) bad=([ebb]=0 [glibc]=0)
for ((i = 1; i <= runs; i++)); do
  for who in ebb glibc; do
    if [[ $who == ebb ]]; then
      read -r status peak killed < <(run_in_group env LD_PRELOAD="$lib" EBB_PURGE_DELAY_MS=5000 "$waves" "$live_mb" "$rounds")
    else
      read -r status peak killed < <(run_in_group env -u LD_PRELOAD "$waves" "$live_mb" "$rounds")
    fi
    ((killed > 0)) && ooms[$who]=$((ooms[$who] + killed))
    ((status != 0)) && bad[$who]=$((bad[$who] + 1))
    ((peak > peak_max[$who])) && peak_max[$who]=$peak
    ((peak < peak_min[$who])) && peak_min[$who]=$peak
    echo "run $i $who: exit $status, peak $peak MiB, OOM kills $killed"
  done
done
# EBB_VERBOSE=1 names the limit it found, once.
said=$(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$group" \
  env LD_PRELOAD="$lib" EBB_VERBOSE=1 "$waves" 4 1 2>&1 >/dev/null | grep -c "^ebb: limit: memory cgroup $group (v1): $((limit_mb << 10)) KiB")
failcnt=$(cat "$group/memory.failcnt")
for who in ebb glibc; do
  echo "$who: $runs runs, OOM kills ${ooms[$who]}, failed runs ${bad[$who]}, peak usage ${peak_min[$who]}-${peak_max[$who]} MiB (limit $limit_mb MiB, live $live_mb MiB)"
done
echo "memory.failcnt over all runs: $failcnt"
failed=0
((said == 1)) || { echo "FAIL: EBB_VERBOSE=1 named the group's limit $said times, expected once"; failed=1; }
((ooms[ebb] == 0 && bad[ebb] == 0)) || { echo "FAIL: ebb was OOM-killed or failed ${bad[ebb]} of $runs times"; failed=1; }
((bad[glibc] == 0)) || { echo "FAIL: glibc failed ${bad[glibc]} of $runs times: the workload does not fit the limit"; failed=1; }
if ((peak_max[ebb] * 100 > peak_max[glibc] * 110)); then
  echo "FAIL: ebb's peak usage ${peak_max[ebb]} MiB is more than 10% above glibc's ${peak_max[glibc]} MiB"
  failed=1
fi
((failed == 0)) && echo "cgroup: PASS"
exit $failed
