#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo/run.sh - `make demo`: how much memory each allocator keeps resident one
# idle second after a program freed it, side by side.
#
#   ./demo/run.sh [BUILD_DIR]          BUILD_DIR defaults to ./build
#
# Builds demo/seed.c (plain gcc -O2, not linked with ebb) into BUILD_DIR/demo/seed
# and runs it once per allocator, one after another (RSS is per process, but on
# a small machine sequential runs keep the idle periods honest); seed runs
# every row in a fresh process of its own:
#   ebb       LD_PRELOAD=BUILD_DIR/libebb.so       (required)
#   glibc     no preload
#   jemalloc, mimalloc, tcmalloc   the Debian libraries, only if installed;
#             this script never installs them.
# Before each run, `seed --which` must name the library that was preloaded
# (libc.so.6 for glibc), so a preload that silently failed is not reported as
# that allocator. Each run takes about 31 idle seconds plus the work.
#
# Output: on stdout, what the experiment does, one table (rows = experiments,
# columns = allocators, cells = MiB retained: RSS after the idle second minus
# RSS before the row), what its marks mean, and a verdict per allocator: in
# how many rows it kept no more than ebb promises (1 MiB; sparse rows 2 x live
# + 4 MiB; seed.c computes it). Progress goes to stderr.
# Exits 0 whether or not ebb keeps its promise (`demo_promise` and
# `demo_output` in ctest check that); non-zero only if the demo itself cannot
# run (no libebb.so, build failure, ebb not taking effect).
#
# Environment:
#   EBB_DEMO_ALLOCATORS   which to run, e.g. "ebb glibc" (default: all five,
#                         those not installed are skipped)
#   EBB_DEMO_ONLY         rows or groups to run, e.g. "round1/80KB pinned"
#                         (default: every row; at most 8 names)
#   EBB_DEMO_IDLE_MS      idle time before each measurement (default 1000)
#   CC                    compiler for seed.c (default gcc)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
ALLOCATORS=${EBB_DEMO_ALLOCATORS:-"ebb glibc jemalloc mimalloc tcmalloc"}
IDLE_MS=${EBB_DEMO_IDLE_MS:-1000}
ONLY=()
for name in ${EBB_DEMO_ONLY:-}; do ONLY+=(--only "$name"); done
SEED=$BUILD/demo/seed
LIBDIR=/usr/lib/x86_64-linux-gnu

declare -A LIB=([ebb]=$BUILD/libebb.so [glibc]=""
                [jemalloc]=$LIBDIR/libjemalloc.so.2 [mimalloc]=$LIBDIR/libmimalloc.so.2
                [tcmalloc]=$LIBDIR/libtcmalloc_minimal.so.4)

WORK=$(mktemp -d /tmp/ebb-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

build_seed() {
    mkdir -p "$BUILD/demo"
    "${CC:-gcc}" -std=gnu11 -O2 -Wall -Wextra -fno-builtin-malloc -fno-builtin-free \
        -o "$SEED" "$ROOT/demo/seed.c" -ldl || die "cannot build $SEED"
}

# Does `seed --which` under this allocator name the library we meant?
preload_ok() {
    local name=$1 lib=${LIB[$1]} got
    got=$(LD_PRELOAD=$lib "$SEED" --which 2>"$WORK/$name.which.err" | cut -f2) || return 1
    if [ -z "$lib" ]; then
        [ "$(basename "$got")" = libc.so.6 ]
    else
        [ "$(readlink -f "$got")" = "$(readlink -f "$lib")" ]
    fi
}

# Run seed under one allocator; its output goes to $WORK/<name>.out, and a
# line about how it ended to $WORK/<name>.status.
run_one() {
    local name=$1 start=$SECONDS rc=0
    note "$name: running, each row in a process of its own ($([ ${#ONLY[@]} -eq 0 ] && echo "~40 s" || echo "~1.3 s a row") on an idle machine)"
    LD_PRELOAD=${LIB[$name]} "$SEED" --idle-ms "$IDLE_MS" "${ONLY[@]}" >"$WORK/$name.out" \
        2>"$WORK/$name.err" || rc=$?
    local secs=$((SECONDS - start))
    if [ "$rc" -ne 0 ] || ! grep -qx "done" "$WORK/$name.out"; then
        local why="exit status $rc"
        [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128))"
        echo "$name: $why after $(grep -c '^row' "$WORK/$name.out") rows;" \
             "$(head -c 200 "$WORK/$name.err" | head -n 1)" >"$WORK/$name.status"
        note "$name: FAILED ($why) after $secs s"
    else
        note "$name: done in $secs s"
    fi
}

# Pick the allocators that exist and really take effect.
select_allocators() {
    local name
    for name in $ALLOCATORS; do
        [ -n "${LIB[$name]+set}" ] || die "unknown allocator '$name' in EBB_DEMO_ALLOCATORS"
        if [ -n "${LIB[$name]}" ] && [ ! -e "${LIB[$name]}" ]; then
            [ "$name" = ebb ] && die "${LIB[ebb]} not found; run 'make' first"
            note "$name: ${LIB[$name]} not installed, skipped"
            continue
        fi
        if ! preload_ok "$name"; then
            [ "$name" = ebb ] && die "LD_PRELOAD=${LIB[ebb]} did not take effect"
            note "$name: LD_PRELOAD=${LIB[$name]} did not take effect, skipped"
            continue
        fi
        echo "$name"
    done
}

# The explanation, the table and the verdicts, from every $WORK/<name>.out,
# columns in the order given.
print_table() {
    awk -F'\t' -v names="$*" -v idle_s="$(awk -v ms="$IDLE_MS" 'BEGIN { printf "%.1f", ms / 1000 }')" \
        -v work="$WORK" -v ebb_lib="${LIB[ebb]}" -f "$ROOT/demo/table.awk"
}

main() {
    build_seed
    local chosen name
    chosen=$(select_allocators | tr '\n' ' ')
    for name in $chosen; do
        run_one "$name"
    done
    echo
    print_table "$chosen"
    for name in $chosen; do
        [ -s "$WORK/$name.status" ] && echo "Failed run: $(cat "$WORK/$name.status")"
    done
    return 0
}

main
