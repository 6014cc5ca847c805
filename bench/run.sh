#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/run.sh - `make bench`: the benchmark suite. Runs every workload under
# glibc, ebb, and Debian's jemalloc, mimalloc and tcmalloc, and writes
# bench/results/latest.md (tables, medians, ratios to mimalloc, geometric
# means, machine and versions) and bench/results/latest.svg (the chart).
#
#   ./bench/run.sh [--quick | --smoke] [options]
#
# Modes:
#   (default)  full run: 5 repetitions, about 10-15 minutes on 2 cores.
#   --quick    smaller parameters, 3 repetitions: under 2 minutes.
#   --smoke    tiny parameters, 1 repetition, glibc and ebb plus whichever
#              other allocators are already installed; installs nothing,
#              writes no file under bench/results (the report goes to stdout)
#              and exits 1 if any run crashes, times out or fails its check.
# Options:
#   --build DIR       build directory with libebb.so and bench/bench_* (./build)
#   --reps N          repetitions instead of the mode's
#   --only "A B"      allocators to run, from: glibc ebb jemalloc mimalloc tcmalloc
#   --workloads "A B" workloads to run (names as in the table below)
#   --out DIR         where latest.md/.svg/-runs.tsv go (default bench/results;
#                     for --smoke: none unless given)
#
# Method. Every allocator is installed with LD_PRELOAD (glibc: none) and first
# checked: `bench_micro --which` must name the allocator's own library as the
# provider of malloc (and of free), or the allocator is reported as FAILED and
# not measured. Runs are interleaved - for each repetition, for each workload,
# every allocator in turn (A B C D E, A B C D E, ...) - so that a slow phase
# of the machine hits all allocators alike. Each run is
#   /usr/bin/time -f '%e %U %S %M' timeout T env LD_PRELOAD=LIB PROGRAM ARGS
# which gives wall time, user and system time and peak RSS; the program's own
# result line (bench/common.h) gives its checksum, check=ok|FAIL, its idle
# pause (subtracted from the wall time) and VmRSS at the end. A run that
# crashes, times out, exits nonzero or prints a checksum that differs from the
# other allocators' is recorded as FAILED; the driver carries on.
# bench/report.py turns the raw runs into the report.
#
# Missing allocator packages (and `time`) are installed with apt-get (root or
# sudo), except in --smoke, which skips missing allocators and, if `time` is
# missing, times the runs with a python3 stand-in (os.wait4).
#
# Environment: EBB_BENCH_KEEP=DIR keeps the raw runs (outputs, time files,
# exit statuses) there; `bench/report.py DIR` redoes the report from them.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=full
BUILD=$ROOT/build
REPS=
ONLY=
WANT_WORKLOADS=
OUT=
ALLOCATORS="glibc ebb jemalloc mimalloc tcmalloc"  # run and table order
PYTHON=/usr/bin/python3                            # the system's, not a pyenv one

die() { echo "run.sh: $*" >&2; exit 2; }
note() { echo "run.sh: $*" >&2; }

while [ $# -gt 0 ]; do
    case $1 in
        --quick) MODE=quick ;;
        --smoke) MODE=smoke ;;
        --full) MODE=full ;;
        --build) BUILD=${2:?--build needs a directory}; shift ;;
        --reps) REPS=${2:?--reps needs a number}; shift ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --workloads) WANT_WORKLOADS=${2:?--workloads needs a list}; shift ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
BUILD=$(cd "$BUILD" && pwd) || die "no build directory"
case $MODE in
    full) REPS=${REPS:-5}; TIMEOUT=120 ;;
    quick) REPS=${REPS:-3}; TIMEOUT=30 ;;
    smoke) REPS=${REPS:-1}; TIMEOUT=30 ;;
esac
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
if [ -z "$OUT" ] && [ "$MODE" != smoke ]; then OUT=$ROOT/bench/results; fi

# ---- workloads ---------------------------------------------------------
# name | program (bench_* in BUILD/bench, or "python") | full args | quick | smoke
# Parameters: a full run of one workload takes ~1-5 s, a quick one ~0.2-1 s
# (2 cores, unloaded: less).
WORKLOADS=$(cat <<'EOF'
micro|bench_micro|--iters 1500000|--iters 300000|--iters 2000
churn|bench_churn|--iters 200000|--iters 50000|--iters 500
server|bench_server|--ops 800000|--ops 40000|--ops 3000 --slots 200
prodcons|bench_prodcons|--count 16000000|--count 800000|--count 20000
waves|bench_waves|--waves 6 --peak-mb 256 --idle-ms 1500|--waves 3 --peak-mb 64 --idle-ms 800|--waves 2 --peak-mb 8 --idle-ms 200
realloc|bench_realloc|--buffers 3000 --vec-max 1048576|--buffers 400 --vec-max 1048576|--buffers 50 --vec-max 65536
bigbuf|bench_bigbuf|--iters 50|--iters 6|--iters 4 --max 4194304
threads|bench_threads|--rounds 600|--rounds 150|--rounds 10 --ops 300
leak|bench_leak|--threads 600|--threads 150|--threads 20 --ops 2000
larson|bench_larson|--ops 20000000|--ops 4000000|--ops 100000 --slots 500 --handover 1000
rbtree|bench_rbtree|--nodes 100000 --steps 300000|--nodes 30000 --steps 100000|--nodes 2000 --steps 5000
bigchurn|bench_bigchurn|--steps 8000|--steps 2000|--steps 100
thp|bench_thp|--live-mb 96 --rounds 40|--live-mb 32 --rounds 10 --idle-ms 1300|--live-mb 4 --rounds 2 --burst 500 --idle-ms 200
python|python|--scale 10|--scale 1|--scale 1
python-malloc|python|--scale 6|--scale 1|--scale 1
EOF
)
# python-malloc: the same script with PYTHONMALLOC=malloc, so that every
# object (not only those over 512 bytes) comes from the allocator under test.

# ---- allocators --------------------------------------------------------
# PKG, LIBNAME, installed, apt_install, package_lib, preload_of,
# expected_of, version_of.
source "$ROOT/bench/allocators.sh"

selected() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }

ensure_packages() {
    local missing=() a
    [ -x /usr/bin/time ] || missing+=(time)
    for a in jemalloc mimalloc tcmalloc; do
        selected "$a" && ! installed "${PKG[$a]}" && missing+=("${PKG[$a]}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$MODE" = smoke ]; then
        return 0  # missing allocators are skipped; a missing `time` is stood in for
    fi
    apt_install "${missing[@]}" || die "could not install: ${missing[*]}"
}

# check_which ALLOC: malloc (and free) must resolve to the allocator's library.
check_which() {
    local alloc=$1 preload want got
    preload=$(preload_of "$alloc") || { echo "library not found"; return 1; }
    want=$(expected_of "$alloc") || { echo "library not found"; return 1; }
    want=$(readlink -f "$want")
    got=$(env ${preload:+LD_PRELOAD="$preload"} "$MICRO" --which 2>&1) ||
        { echo "--which failed: $got"; return 1; }
    [ "$(readlink -f "$got")" = "$want" ] ||
        { echo "malloc resolves to $got, expected $want"; return 1; }
}

# ---- main --------------------------------------------------------------
MICRO=$BUILD/bench/bench_micro
[ -x "$MICRO" ] || die "$MICRO not found: build first (make -C $ROOT)"
ensure_packages
WORK=$(mktemp -d /tmp/ebb-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/runs"

# Allocators: which are measured, and why not the others.
RUN_ALLOCS=()
: >"$WORK/allocators.tsv"
for a in $ALLOCATORS; do
    selected "$a" || continue
    status=ok
    if [ "$a" = ebb ] && [ ! -e "$BUILD/libebb.so" ]; then
        status="not built ($BUILD/libebb.so missing)"
    elif [ "$a" != glibc ] && [ "$a" != ebb ] && ! installed "${PKG[$a]}"; then
        status="not installed (${PKG[$a]})"
    elif ! why=$(check_which "$a"); then
        status="FAILED: LD_PRELOAD did not install it: $why"
    fi
    [ "$status" = ok ] && RUN_ALLOCS+=("$a")
    printf '%s\t%s\t%s\t%s\n' "$a" "$(version_of "$a")" "$(preload_of "$a" 2>/dev/null || true)" \
        "$status" >>"$WORK/allocators.tsv"
    [ "$status" = ok ] || note "$a: $status"
done
[ ${#RUN_ALLOCS[@]} -gt 0 ] || die "no allocator to measure"

# Workloads of this run.
: >"$WORK/workloads.tsv"
while IFS='|' read -r name prog full quick smoke; do
    if [ -n "$WANT_WORKLOADS" ] && [[ " $WANT_WORKLOADS " != *" $name "* ]]; then continue; fi
    case $MODE in full) args=$full ;; quick) args=$quick ;; smoke) args=$smoke ;; esac
    printf '%s\t%s\t%s\n' "$name" "$prog" "$args" >>"$WORK/workloads.tsv"
done <<<"$WORKLOADS"
[ -s "$WORK/workloads.tsv" ] || die "no workload selected"

# Machine and run description, for the report.
{
    printf 'mode\t%s\n' "$MODE"
    printf 'reps\t%s\n' "$REPS"
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'cpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    printf 'cores\t%s\n' "$(nproc)"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'kernel\t%s\n' "$(uname -sr)"
    # shellcheck source=/dev/null
    printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
    printf 'compiler\t%s\n' "$(gcc --version 2>/dev/null | head -n 1)"
    printf 'python\t%s\n' "$($PYTHON --version 2>&1)"
    printf 'load_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$WORK/meta.tsv"

# TIMER: /usr/bin/time, or (only in --smoke, which installs nothing) a stand-in
# with the same output: `%e %U %S %M` and GNU time's line for a signal or a
# nonzero exit status, from os.wait4's resource usage.
TIMER=(/usr/bin/time)
if [ ! -x /usr/bin/time ]; then
    [ "$MODE" = smoke ] || die "/usr/bin/time is missing (apt-get install time)"
    TIMER=("$PYTHON" -c '
import os, sys, time
out, cmd = sys.argv[3], sys.argv[6:]   # argv: -c time -o FILE -f FORMAT CMD...
t0 = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - t0
with open(out, "w") as f:
    if os.WIFSIGNALED(status):
        f.write("Command terminated by signal %d\n" % os.WTERMSIG(status))
    elif os.WEXITSTATUS(status):
        f.write("Command exited with non-zero status %d\n" % os.WEXITSTATUS(status))
    f.write("%.2f %.2f %.2f %d\n" % (wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss))
sys.exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
' time)
    note "/usr/bin/time is missing: timing with a python3 stand-in (apt-get install time)"
fi

run_one() {  # run_one WORKLOAD PROG ARGS ALLOC REP
    local name=$1 prog=$2 args=$3 alloc=$4 rep=$5 preload f cmd=() envs=()
    preload=$(preload_of "$alloc")
    f="$WORK/runs/$name.$alloc.$rep"
    if [ "$prog" = python ]; then
        cmd=("$PYTHON" "$ROOT/bench/py_alloc.py")
        envs=(PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1)
        [ "$name" = python-malloc ] && envs+=(PYTHONMALLOC=malloc)
    else
        cmd=("$BUILD/bench/$prog")
    fi
    local rc=0
    # shellcheck disable=SC2086  # args is a list of words
    "${TIMER[@]}" -o "$f.time" -f '%e %U %S %M' \
        timeout -k 5 "$TIMEOUT" env ${preload:+LD_PRELOAD="$preload"} "${envs[@]}" \
        "${cmd[@]}" $args >"$f.out" 2>"$f.err" </dev/null || rc=$?
    echo "$rc" >"$f.rc"
    if [ "$rc" -ne 0 ]; then
        note "$name under $alloc (rep $rep): exit status $rc; $(tail -n 1 "$f.err" 2>/dev/null)"
    fi
}

START=$(date +%s)
note "$MODE run: $REPS repetition(s) of $(wc -l <"$WORK/workloads.tsv") workloads under ${RUN_ALLOCS[*]}"
for rep in $(seq 1 "$REPS"); do
    while IFS=$'\t' read -r name prog args; do
        [ "$prog" = python ] || [ -x "$BUILD/bench/$prog" ] ||
            die "$BUILD/bench/$prog not found: build first (make -C $ROOT)"
        for alloc in "${RUN_ALLOCS[@]}"; do
            run_one "$name" "$prog" "$args" "$alloc" "$rep"
        done
    done <"$WORK/workloads.tsv"
    note "repetition $rep of $REPS done ($(( $(date +%s) - START )) s)"
done
printf 'load_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$WORK/meta.tsv"
printf 'duration\t%s s\n' "$(( $(date +%s) - START ))" >>"$WORK/meta.tsv"

if [ -n "${EBB_BENCH_KEEP:-}" ]; then
    mkdir -p "$EBB_BENCH_KEEP"
    cp -r "$WORK"/. "$EBB_BENCH_KEEP"/
    note "raw runs kept in $EBB_BENCH_KEEP"
fi

# The report. report.py exits 1 if a run failed that must not (see there).
rc=0
if [ -n "$OUT" ]; then
    mkdir -p "$OUT"
    "$PYTHON" "$ROOT/bench/report.py" "$WORK" --out "$OUT" || rc=$?
    note "report written to $OUT/latest.md and $OUT/latest.svg"
    sed -n '/^## Summary/,/^## Workloads/p' "$OUT/latest.md" | sed '$d'
else
    "$PYTHON" "$ROOT/bench/report.py" "$WORK" || rc=$?
fi
note "done in $(( $(date +%s) - START )) s"
exit "$rc"
