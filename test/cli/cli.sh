#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/cli/cli.sh - the ebb command's verbs and error paths, each checked
# for its exit status and its message.
#
# Usage: cli.sh <ebb> <fake_publisher> <static_prog> <build dir>
# fake_publisher writes snapshots exactly as include/ebb_snapshot.h lays
# them out (stats, top, the stale case, and ebb run when the library does
# not publish); static_prog cannot be given ebb by LD_PRELOAD.
set -uo pipefail
ebb=$1 fake=$2 static_prog=$3 build=$(cd "$4" && pwd)
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0 checks=0
problem() { echo "cli.sh: FAIL: $*" >&2; fail=1; }

# expect STATUS PATTERN CMD...: runs CMD, checks its exit status and that
# its stdout+stderr match the extended regex PATTERN.
expect() {
  local want=$1 pattern=$2 out rc
  shift 2
  out=$("$@" 2>&1)
  rc=$?
  checks=$((checks + 1))
  [[ $rc == "$want" ]] || problem "$*: exit status $rc, expected $want; output: $out"
  grep -Eq -- "$pattern" <<<"$out" || problem "$*: output does not match '$pattern': $out"
}

# --help of every verb: usage and the exit statuses.
expect 0 'usage: ebb VERB' "$ebb" --help
for verb in run compare top watch stats explain; do
  want=$verb
  [[ $verb == watch ]] && want=top
  expect 0 "usage: ebb $want.*" "$ebb" "$verb" --help
  expect 0 'Exit status' "$ebb" "$verb" --help
done

# Bad verbs, options and arguments: one line, status 2.
expect 2 "^ebb: error: unknown verb 'frobnicate'" "$ebb" frobnicate
expect 2 'usage: ebb VERB' "$ebb"
expect 2 "^ebb: error: run: -i takes milliseconds from 1 to 60000, not 'abc'" "$ebb" run -i abc -- true
expect 2 'usage: ebb run' "$ebb" run -x -- true
expect 2 '^ebb: error: run: no program given' "$ebb" run
expect 2 '^ebb: error: run: -o out.png: unknown format' "$ebb" run -o out.png -- true
expect 2 "^ebb: error: compare: -r takes a count from 1 to 50, not '0'" "$ebb" compare -r 0 -- true
expect 2 "^ebb: error: compare: --with: 'glib' is not one of" "$ebb" compare --with glib -- true
expect 2 "^ebb: error: explain: '12x' is not a size" "$ebb" explain 12x
expect 2 '^ebb: error: explain: give at least one size' "$ebb" explain

# ebb run: the program's exit status, signals, not found, not executable.
expect 127 '^ebb: error: run: /nonexistent/prog: program not found' "$ebb" run -- /nonexistent/prog
touch "$work/noexec"
expect 126 '^ebb: error: run: .*/noexec: Permission denied' "$ebb" run -- "$work/noexec"
expect 3 'program +exited with status 3' "$ebb" run -- sh -c 'exit 3'
expect 137 'program +killed by signal 9 \(SIGKILL' "$ebb" run -- sh -c 'kill -9 $$'
# The killed program could not remove its snapshot: ebb run does, whether
# it was published (after 0.2 s) or only created (killed at once).
stale_row='stale snapshots +1 left behind by a process that could not remove it \(killed, or ended by _exit\), removed'
expect 137 "$stale_row" "$ebb" run -- sh -c 'sleep 0.2; kill -9 $$'
expect 137 "$stale_row" "$ebb" run -- sh -c 'kill -9 $$'
# dash ends with _exit, which runs no destructor: the same.
expect 3 "$stale_row" "$ebb" run -- sh -c 'exit 3'
expect 143 'killed by signal 15 \(SIGTERM' "$ebb" run -- sh -c 'kill -TERM $$'
# A forked child is named as not followed; an exec is followed (same pid).
expect 0 'children +1 forked \(first pid [0-9]+\) not followed' "$ebb" run -i 20 -- sh -c '/bin/sleep 0.3 & wait'
expect 0 'programs +.*dash, then /usr/bin/sleep \(exec' "$ebb" run -i 20 -- /bin/sh -c 'exec /bin/sleep 0.3'
# A program ebb cannot be preloaded into: no snapshot, said so.
expect 0 'verdict +no ebb snapshot: the program does not use ebb' "$ebb" run -- "$static_prog"

# ebb run on a workload that frees 32 MiB: live, the drop, the verdict.
expect 0 'peak live +32\.0 MiB' "$ebb" run -o "$work/run.json" -- "$fake" workload
out=$("$ebb" run -- "$fake" workload 2>&1)
grep -Eq 'verdict +RSS followed live within [0-9]+ ms \(the slowest of [0-9]+ drops?' <<<"$out" ||
  problem "ebb run: no 'RSS followed live' verdict: $out"
grep -Eq 'returned to the OS +3[0-9]\.[0-9] MiB' <<<"$out" || problem "ebb run: returned bytes missing: $out"
grep -Eq 'system calls +[0-9]+ mmap, [0-9]+ munmap, [0-9]+ madvise' <<<"$out" || problem "ebb run: no system calls: $out"
checks=$((checks + 3))
# Free memory no allocator can give back (one live block per OS page): the
# verdict says it stayed resident far past the purge delay.
expect 0 'verdict +RSS kept free memory: ebb held more than 1 MiB or 5% of live free but resident for [0-9]+ ms' \
  "$ebb" run -- "$fake" sparse

# -o in each format: JSON and CSV hold the series, the SVG parses as XML
# with its legend, an unwritable path fails with status 1.
"$ebb" run -i 20 -o "$work/run.csv" -- "$fake" workload >/dev/null 2>&1
"$ebb" run -i 20 -o "$work/run.svg" -- "$fake" workload >/dev/null 2>&1
"$ebb" run -i 20 -o "$work/run.html" -- "$fake" workload >/dev/null 2>&1
$py - "$work" <<'PY' || problem "ebb run -o files"
import json, sys, csv, xml.etree.ElementTree as ET
w = sys.argv[1]
j = json.load(open(w + "/run.json"))
s = j["samples"]
assert len(s) >= 10, len(s)
assert max(x["rss"] for x in s) > 32 << 20, "RSS never above 32 MiB"
assert any(x["ebb"] and 32 << 20 <= x["ebb"]["live"] < 33 << 20 for x in s), "no sample with 32 MiB live"
assert j["summary"]["drops"] >= 1 and j["exit_code"] == 0
rows = list(csv.DictReader(open(w + "/run.csv")))
assert len(rows) >= 10 and "live" in rows[0] and "rss" in rows[0]
svg = ET.parse(w + "/run.svg").getroot()
ns = "{http://www.w3.org/2000/svg}"
assert len(svg.findall(ns + "polyline")) >= 2
legend = [t.text for t in svg.iter(ns + "text") if t.get("class") == "legend"]
assert "RSS" in legend and "live" in legend, legend
html = open(w + "/run.html").read()
assert "<svg" in html and 'id="summary"' in html and 'id="layers"' in html
assert "http://" not in html.replace("http://www.w3.org/2000/svg", ""), "external resource in the page"
PY
checks=$((checks + 1))
expect 1 '^ebb: error: cannot write /nonexistent/dir/out.json' "$ebb" run -o /nonexistent/dir/out.json -- true

# The terminal chart, when stdout is a terminal.
out=$(script -qec "$ebb run -i 20 -- $fake workload" /dev/null 2>&1)
grep -q '█' <<<"$out" || problem "ebb run on a terminal drew no chart: $out"
checks=$((checks + 1))

# ebb stats and ebb top against a publishing process.
"$fake" serve 3000 &
server=$!
sleep 0.3
expect 0 'live +3\.[0-9]+ MiB' "$ebb" stats "$server"
"$ebb" stats --json "$server" >"$work/stats.json" 2>&1 || problem "ebb stats --json failed"
$py - "$work/stats.json" "$build/libebb-prefix.so" <<'PY' || problem "ebb stats --json: names differ from ebb_stats_json's"
import ctypes, json, sys
mine = json.load(open(sys.argv[1]))
lib = ctypes.CDLL(sys.argv[2])
buf = ctypes.create_string_buffer(8192)
lib.ebb_stats_json(buf, ctypes.c_size_t(8192))
theirs = json.loads(buf.value.decode())
assert list(mine) == list(theirs), (list(mine), list(theirs))
assert mine["live"] >= 3 << 20
PY
checks=$((checks + 1))
out=$("$ebb" top -i 100 -n 3 "$server" 2>&1)
[[ $(grep -c '^ebb fake in' <<<"$out") == 3 ]] || problem "ebb top -n 3 did not print 3 blocks: $out"
checks=$((checks + 1))
expect 0 '^ebb fake in' "$ebb" watch -n 1 "$server"
expect 0 'by layer:.*' "$ebb" top -n 1 "$server"
expect 0 '^  small +[0-9.]+ [KMG]?i?B' "$ebb" top -n 1 "$server"
# On a terminal: refreshed in place, and q quits (long before the server ends).
t0=$(date +%s%N)
out=$( (sleep 0.8; printf q) | script -qec "$ebb top -i 200 $server" /dev/null 2>&1)
t1=$(date +%s%N)
[[ $(grep -c $'\033\[H\033\[J' <<<"$out") -ge 2 ]] || problem "ebb top on a terminal did not redraw in place: $out"
(((t1 - t0) / 1000000 < 2000)) || problem "ebb top did not quit on q ($(((t1 - t0) / 1000000)) ms)"
checks=$((checks + 2))
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -f "/dev/shm/ebb-$server"

# Snapshot errors: a stale one (removed), none, no process, not a pid.
stale=$("$fake" stale)
[[ -e /dev/shm/ebb-$stale ]] || problem "fake_publisher stale left no object"
expect 1 "^ebb: error: the snapshot of $stale is stale: process $stale exited without removing it \(it crashed or was killed\); removed /dev/shm/ebb-$stale" "$ebb" stats "$stale"
[[ ! -e /dev/shm/ebb-$stale ]] || problem "the stale snapshot was not removed"
expect 1 "^ebb: error: process $$ \(.*\) publishes no ebb snapshot" "$ebb" stats $$
expect 1 "^ebb: error: process $$ \(.*\) publishes no ebb snapshot" "$ebb" top -n 1 $$
expect 1 '^ebb: error: no process 2147483646' "$ebb" stats 2147483646
expect 2 "^ebb: error: 'abc' is not a process id" "$ebb" stats abc
expect 2 "^ebb: error: '-5' is not a process id|usage" "$ebb" top -- -5
printf 'not a snapshot' >"/dev/shm/ebb-$$"
expect 1 "^ebb: error: /dev/shm/ebb-$$ is not \(yet\) an ebb snapshot" "$ebb" stats $$
rm -f "/dev/shm/ebb-$$"

# ebb explain asks the library: the class it prints is ebb_malloc_usable_size's,
# and EBB_LARGE_THRESHOLD moves 80k to the large tier.
expect 0 'size class 80\.0 KiB \(81920 bytes' "$ebb" explain 80k
usable=$($py -c "
import ctypes, sys
l = ctypes.CDLL(sys.argv[1]); l.ebb_malloc.restype = ctypes.c_void_p; l.ebb_malloc_usable_size.argtypes = [ctypes.c_void_p]
print(l.ebb_malloc_usable_size(l.ebb_malloc(1000)))" "$build/libebb-prefix.so")
expect 0 "size class .* \($usable bytes" "$ebb" explain 1000
expect 0 'large block of 784 KiB' "$ebb" explain 800000
expect 0 'glibc: mmap \(at or above the 128 KiB threshold\); freed, it is unmapped at once - but' "$ebb" explain 800000
expect 0 'glibc: from the heap' "$ebb" explain 80k
expect 0 'glibc: mmap \(above 32 MiB' "$ebb" explain 64m
# A bigger cached block may serve a smaller large request whole: 2m is freed
# into the large cache and serves the 1m asked next.
expect 0 'up to a quarter or 4 MiB bigger, kept whole' "$ebb" explain 2m 1m
expect 0 'large block of 80\.0 KiB .*EBB_LARGE_THRESHOLD = 64\.0 KiB' env EBB_LARGE_THRESHOLD=64k "$ebb" explain 80k
expect 0 'EBB_PURGE_DELAY_MS = 7 ms' env EBB_PURGE_DELAY_MS=7 "$ebb" explain 100

# The libraries are found next to the command or in its ../lib; without
# them, one line and status 1.
mkdir -p "$work/alone" "$work/inst/bin" "$work/inst/lib"
cp "$ebb" "$work/alone/ebb"
expect 1 '^ebb: error: run: libebb.so not found next to this command or in its ../lib' "$work/alone/ebb" run -- true
expect 1 '^ebb: error: explain: libebb-prefix.so not found' "$work/alone/ebb" explain 1k
cp "$ebb" "$work/inst/bin/ebb"
ln -s "$build/libebb.so" "$build/libebb-prefix.so" "$work/inst/lib/"
expect 0 'peak live' "$work/inst/bin/ebb" run -- "$fake" workload
expect 0 'size class 1\.00 KiB' "$work/inst/bin/ebb" explain 1k

# ebb compare: allocators not found are named, the table has one row each.
expect 2 '^ebb: error: compare: no program given' "$ebb" compare
expect 127 '^ebb: error: compare: /nonexistent: program not found' "$ebb" compare -r 1 --with glibc -- /nonexistent
touch "$work/noexec_cmp"
expect 126 '^ebb: error: compare: .*/noexec_cmp: Permission denied' "$ebb" compare -r 1 --with glibc -- "$work/noexec_cmp"
out=$("$ebb" compare -r 1 --with glibc,ebb -o "$work/cmp.svg" -- "$fake" workload 2>"$work/cmp.err")
grep -Eq '^glibc +[0-9.]+ s +[0-9.]+ MiB' <<<"$out" && grep -Eq '^ebb +[0-9.]+ s +3[0-9]\.[0-9] MiB' <<<"$out" ||
  problem "ebb compare table: $out"
grep -q 'ebb: compare: ebb, run 1 of 1' "$work/cmp.err" || problem "ebb compare: no progress on stderr"
$py -c "import xml.etree.ElementTree as E,sys; E.parse(sys.argv[1])" "$work/cmp.svg" || problem "compare SVG"
checks=$((checks + 4))
# On a terminal, the RSS curves overlaid, one letter per allocator.
out=$(script -qec "$ebb compare -r 1 --with glibc,ebb -- $fake workload" /dev/null 2>&1)
grep -q 'g = glibc, e = ebb' <<<"$out" && grep -Eq '^  \|.*[ge]' <<<"$out" || problem "ebb compare drew no chart: $out"
checks=$((checks + 1))
# RSS after idle: a program that sleeps 700 ms has it, one that does not has "-".
expect 0 '^glibc +[0-9.]+ s +[0-9.]+ [KM]iB\*? +[0-9.]+ [KM]iB +[0-9.]+ [KM]iB$' "$ebb" compare -r 1 --with glibc -- sleep 0.7
# A program that ends before the first sample, or stays smaller than the
# forked copy of ebb, has "-" or a peak marked as a lower bound, never "0 B".
expect 0 '^glibc +[0-9.]+ s +([0-9.]+ [KM]iB\*?|-) +([0-9.]+ [KM]iB|-) +-$' "$ebb" compare -r 1 --with glibc -- true
out=$("$ebb" compare -r 1 --with glibc -- true 2>&1)
grep -q ' 0 B' <<<"$out" && problem "ebb compare printed 0 B for a program it had no figure of: $out"
checks=$((checks + 1))
# Peak RSS is the kernel's high-water mark: a 64 MiB spike freed within a
# sample period is in it. The program writes its own VmHWM at exit; the
# table must show at least that and at most 5% more.
cat >"$work/spike.py" <<'PY'
import sys, time
b = b"x" * (64 << 20)
del b
time.sleep(0.1)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
open(sys.argv[1], "w").write(hwm)
PY
for alloc in glibc ebb; do
  out=$("$ebb" compare -r 1 --with $alloc -- $py "$work/spike.py" "$work/hwm" 2>/dev/null)
  $py - "$work/hwm" "$alloc" "$out" <<'PY' || problem "ebb compare missed the peak under $alloc: $out"
import re, sys
hwm_kib = int(open(sys.argv[1]).read())
m = re.search(r"^%s +[0-9.]+ s +([0-9.]+) ([KM])iB " % sys.argv[2], sys.argv[3], re.M)
shown_kib = float(m.group(1)) * (1024 if m.group(2) == "M" else 1)
assert hwm_kib >= 64 << 10 and hwm_kib * 0.99 <= shown_kib <= hwm_kib * 1.05, (hwm_kib, shown_kib)
PY
  checks=$((checks + 1))
done

((fail == 0)) || exit 1
echo "cli.sh: $checks checks passed"
