#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench/instr.sh - `make bench-instr`: instructions per malloc+free pair, per
# allocator, counted by valgrind's callgrind (deterministic, unlike time).
#
#   ./bench/instr.sh [BUILD_DIR]        BUILD_DIR defaults to ./build
#
# For each allocator - ebb (BUILD_DIR/libebb.so), glibc (no preload), and the
# Debian packages of jemalloc, mimalloc and tcmalloc - it:
#   1. checks that LD_PRELOAD really installs that allocator: `bench_micro
#      --which` names the object `malloc` resolves to, natively and under
#      valgrind, and it must be the library we preloaded;
#   2. runs bench_micro under callgrind at N1 and N2 rounds and reports
#          (I(N2) - I(N1)) / (pairs(N2) - pairs(N1)),
#      which cancels start-up, the warm-up round and process exit;
#   3. does the same once for `bench_micro --baseline` (stub malloc/free): the
#      harness's own cost per pair, subtracted in the "net" column.
# Callgrind counts every thread, so an allocator's background thread counts.
#
# Output: a markdown table on stdout and, for the standard run (none of the
# EBB_INSTR_* settings below but KEEP), in bench/results/instr.md.
# Missing valgrind or allocator packages are installed with apt-get (root).
#
# Environment:
#   EBB_INSTR_N1, EBB_INSTR_N2  rounds of the two runs (default 2000, 12000;
#                               1M pairs apart at the default batch of 100)
#   EBB_INSTR_ARGS              extra bench_micro arguments, e.g. "--max 1024"
#   EBB_INSTR_ONLY              allocators to run, e.g. "ebb mimalloc"
#   EBB_INSTR_KEEP=DIR          keep the callgrind profiles there, for
#                               `callgrind_annotate DIR/micro.ebb.12000.cg`
#
# Second workload hook: if BUILD_DIR/bench/bench_churn exists (bench/CMakeLists
# builds it when bench/churn.c exists), it is measured the same way. Its
# contract: accept `--iters N`, print `pairs=<n>` (n = the operations the
# figure is "per"), and optionally accept `--baseline` like bench_micro.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
N1=${EBB_INSTR_N1:-2000}
N2=${EBB_INSTR_N2:-12000}
EXTRA_ARGS=${EBB_INSTR_ARGS:-}
ONLY=${EBB_INSTR_ONLY:-}
RESULTS=$ROOT/bench/results/instr.md
ALLOCATORS="ebb ebb-secure glibc mimalloc jemalloc tcmalloc"  # table order
# ebb-secure: libebb.so with EBB_SECURE=1 (every malloc and free checked
# against a bitmap of live blocks).
REFERENCE=mimalloc                                  # the ratio column divides by it

WORK=$(mktemp -d /tmp/ebb-instr.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

die() { echo "instr.sh: $*" >&2; exit 1; }
note() { echo "instr.sh: $*" >&2; }

# ---- tools and allocator packages ----------------------------------------
# PKG, LIBNAME, installed, apt_install, package_lib, preload_of,
# expected_of, version_of.
source "$ROOT/bench/allocators.sh"

ensure_packages() {
    local missing=() p
    for p in valgrind "${PKG[jemalloc]}" "${PKG[mimalloc]}" "${PKG[tcmalloc]}"; do
        installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    apt_install "${missing[@]}" || die "could not install: ${missing[*]}"
}

# ---- measuring -------------------------------------------------------------
# run_cg PRELOAD OUTPREFIX PROGRAM ARGS...: one run under callgrind; leaves
# OUTPREFIX.out (stdout), .err (stderr) and .cg (callgrind's profile).
run_cg() {
    local preload=$1 out=$2
    shift 2
    env ${preload:+LD_PRELOAD="$preload"} ${RUN_ENV:-} valgrind --tool=callgrind \
        --callgrind-out-file="$out.cg" "$@" >"$out.out" 2>"$out.err"
}

# The total instruction count of a profile ("totals:" line; "summary:" in
# older formats).
total_ir() {
    awk '/^totals:/ { t = $2 } /^summary:/ && t == "" { s = $2 }
         END { if (t != "") print t; else if (s != "") print s; else exit 1 }' "$1"
}

pairs_of() {
    sed -n 's/.*pairs=\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1 | grep . || return 1
}

# per_pair PRELOAD TAG PROGRAM ARGS...: instructions per pair, "%.1f".
# Prints nothing and returns 1 (after a note) if either run fails.
per_pair() {
    local preload=$1 tag=$2 prog=$3 n
    shift 3
    local i=() p=() o ir pairs
    for n in "$N1" "$N2"; do
        o="$WORK/$tag.$n"
        if ! run_cg "$preload" "$o" "$prog" --iters "$n" "$@"; then
            note "$tag: $(basename "$prog") --iters $n failed under callgrind:"
            tail -n 8 "$o.err" >&2
            return 1
        fi
        ir=$(total_ir "$o.cg") || { note "$tag: no totals in $o.cg"; return 1; }
        pairs=$(pairs_of "$o.out") || { note "$tag: no pairs= in the output"; return 1; }
        i+=("$ir")
        p+=("$pairs")
    done
    [ "${p[1]}" -gt "${p[0]}" ] || { note "$tag: pairs did not grow with --iters"; return 1; }
    awk -v i1="${i[0]}" -v i2="${i[1]}" -v p1="${p[0]}" -v p2="${p[1]}" \
        'BEGIN { printf "%.1f\n", (i2 - i1) / (p2 - p1) }'
}

# check_which ALLOC PROGRAM: malloc must come from the allocator's library,
# both natively and under valgrind (valgrind adds its own preloads).
check_which() {
    local alloc=$1 prog=$2 preload want got
    preload=$(preload_of "$alloc") || die "${PKG[$alloc]} does not provide ${LIBNAME[$alloc]}"
    want=$(expected_of "$alloc") || die "${PKG[$alloc]} does not provide ${LIBNAME[$alloc]}"
    want=$(readlink -f "$want")
    got=$(env ${preload:+LD_PRELOAD="$preload"} "$prog" --which 2>"$WORK/which.err") ||
        { note "$alloc: --which failed: $(cat "$WORK/which.err")"; return 1; }
    [ "$(readlink -f "$got")" = "$want" ] ||
        { note "$alloc: malloc resolves to $got, expected $want"; return 1; }
    run_cg "$preload" "$WORK/which.$alloc" "$prog" --which ||
        { note "$alloc: --which failed under valgrind"; return 1; }
    got=$(head -n 1 "$WORK/which.$alloc.out")
    [ "$(readlink -f "$got")" = "$want" ] ||
        { note "$alloc: under valgrind malloc resolves to $got, expected $want"; return 1; }
}

# supports_baseline PROGRAM: does it take --baseline?
supports_baseline() { "$1" --baseline --iters 1 >/dev/null 2>&1; }

# measure_workload NAME PROGRAM: one table for one benchmark program.
measure_workload() {
    local name=$1 prog=$2 harness="" alloc
    # shellcheck disable=SC2086  # EXTRA_ARGS is a list of words
    if supports_baseline "$prog"; then
        harness=$(per_pair "" "$name.baseline" "$prog" --baseline $EXTRA_ARGS) || harness=""
    fi
    declare -A gross=() net=() status=()
    for alloc in $ALLOCATORS; do
        if [ -n "$ONLY" ] && [[ " $ONLY " != *" $alloc "* ]]; then continue; fi
        if [[ $alloc == ebb* ]] && [ ! -e "$BUILD/libebb.so" ]; then
            status[$alloc]="not built ($BUILD/libebb.so missing)"; continue
        fi
        if ! check_which "$alloc" "$prog"; then
            status[$alloc]="FAILED: LD_PRELOAD did not install it"; FAILED=1; continue
        fi
        local g
        RUN_ENV=$(env_of "$alloc")
        # shellcheck disable=SC2086
        if ! g=$(per_pair "$(preload_of "$alloc")" "$name.$alloc" "$prog" $EXTRA_ARGS); then
            status[$alloc]="FAILED under callgrind"; FAILED=1; continue
        fi
        gross[$alloc]=$g
        [ -n "$harness" ] && net[$alloc]=$(awk -v g="$g" -v h="$harness" 'BEGIN { printf "%.1f", g - h }')
        note "$name: $alloc ${gross[$alloc]} instructions/pair"
    done

    local ref=${net[$REFERENCE]:-${gross[$REFERENCE]:-}} basis=net
    [ -n "$harness" ] || basis=gross
    echo
    echo "### $name: \`$(basename "$prog") --iters {$N1,$N2}${EXTRA_ARGS:+ $EXTRA_ARGS}\`"
    echo
    if [ -n "$harness" ]; then
        echo "Harness alone (\`--baseline\`: loop, size lookup, byte write, call and return): $harness instructions/pair, subtracted in *net*."
    else
        echo "No \`--baseline\` run for this program: *net* is not available and the ratio uses the gross count."
    fi
    echo
    echo "| allocator | version | instructions/pair | net of harness | ratio to $REFERENCE ($basis) |"
    echo "|---|---|---:|---:|---:|"
    for alloc in $ALLOCATORS; do
        if [ -n "$ONLY" ] && [[ " $ONLY " != *" $alloc "* ]]; then continue; fi
        local ver v ratio
        ver=$(version_of "$alloc")
        if [ -n "${status[$alloc]:-}" ]; then
            echo "| $alloc | $ver | ${status[$alloc]} | | |"; continue
        fi
        v=${net[$alloc]:-${gross[$alloc]}}
        ratio=$(awk -v a="$v" -v r="$ref" 'BEGIN { if (r > 0) printf "%.2f", a / r; else print "-" }')
        echo "| $alloc | $ver | ${gross[$alloc]} | ${net[$alloc]:--} | $ratio |"
    done
}

# ---- main ------------------------------------------------------------------
ensure_packages
MICRO=$BUILD/bench/bench_micro
[ -x "$MICRO" ] || die "$MICRO not found: build it first (make -C $ROOT)"
FAILED=0
START=$(date +%s)

{
    echo "# Instructions per malloc+free pair (callgrind)"
    echo
    echo "Generated by \`make bench-instr\` (\`bench/instr.sh\`) on $(date -u +%Y-%m-%d)," \
         "$(valgrind --version), $(uname -m)," \
         "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)."
    echo "Each figure is (I(N2) - I(N1)) / (pairs(N2) - pairs(N1)) with N1=$N1 and N2=$N2 rounds:"
    echo "start-up and exit cancel. Instruction counts, not time: they do not see cache misses,"
    echo "branch mispredictions or the latency of atomic instructions."
    echo "bench_micro: each round mallocs a batch of objects (default 100, sizes uniform in 8..256"
    echo "from a precomputed table), writes a byte to each, and frees them in allocation order."
    measure_workload micro "$MICRO"
    if [ -x "$BUILD/bench/bench_churn" ]; then
        measure_workload churn "$BUILD/bench/bench_churn"
    fi
} >"$WORK/table.md"

if [ -n "${EBB_INSTR_KEEP:-}" ]; then
    mkdir -p "$EBB_INSTR_KEEP"
    cp "$WORK"/*.cg "$EBB_INSTR_KEEP"/
    note "callgrind profiles kept in $EBB_INSTR_KEEP"
fi
cat "$WORK/table.md"
# Only the standard run replaces the recorded table.
if [ -z "${EBB_INSTR_N1:-}${EBB_INSTR_N2:-}$EXTRA_ARGS$ONLY" ]; then
    mkdir -p "$(dirname "$RESULTS")"
    cp "$WORK/table.md" "$RESULTS"
    note "done in $(( $(date +%s) - START )) s; table written to ${RESULTS#"$ROOT"/}"
else
    note "done in $(( $(date +%s) - START )) s; custom run, ${RESULTS#"$ROOT"/} left alone"
fi
exit "$FAILED"
