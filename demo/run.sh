#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo/run.sh - `make demo`: how much memory each allocator keeps resident one
# idle second after a program freed it, side by side.
#
#   ./demo/run.sh [BUILD_DIR]          BUILD_DIR defaults to ./build
#
# Builds demo/seed.c (plain gcc -O2, not linked with ebb) into BUILD_DIR/demo/seed
# and runs it once per allocator, one after another (RSS is per process, but on
# a small machine sequential runs keep the idle periods honest):
#   ebb       LD_PRELOAD=BUILD_DIR/libebb.so       (required)
#   glibc     no preload
#   jemalloc, mimalloc, tcmalloc   the Debian libraries, only if installed;
#             this script never installs them.
# Before each run, `seed --which` must name the library that was preloaded
# (libc.so.6 for glibc), so a preload that silently failed is not reported as
# that allocator. Each run takes about 25 s of idle time plus the work.
#
# Output: one table on stdout, rows = experiments, columns = allocators,
# cells = MiB retained (RSS above the start) after the idle second; `*` marks
# a cell above the bar of the project's issue. Progress goes to stderr.
# Exits 0 whether or not ebb meets the bar (`demo_bar` in ctest checks it);
# non-zero only if the demo itself cannot run (no libebb.so, build failure,
# ebb not taking effect).
#
# Environment:
#   EBB_DEMO_ALLOCATORS   which to run, e.g. "ebb glibc" (default: all five,
#                         those not installed are skipped)
#   EBB_DEMO_IDLE_MS      idle time before each measurement (default 1000)
#   CC                    compiler for seed.c (default gcc)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
ALLOCATORS=${EBB_DEMO_ALLOCATORS:-"ebb glibc jemalloc mimalloc tcmalloc"}
IDLE_MS=${EBB_DEMO_IDLE_MS:-1000}
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
    note "$name: running (25 idle periods plus the work, ~30 s on an idle machine)"
    LD_PRELOAD=${LIB[$name]} "$SEED" --idle-ms "$IDLE_MS" >"$WORK/$name.out" \
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

# The table, from every $WORK/<name>.out, columns in the order given.
print_table() {
    awk -F'\t' -v names="$*" -v idle_ms="$IDLE_MS" -v work="$WORK" -f /dev/stdin <<'AWK'
function mib(kib) { return sprintf("%.1f", kib / 1024) }
function most(a, sparse) {  # "-" when that allocator has no such row
    if (sparse) return (a in sp_max) ? mib(sp_max[a]) : "-"
    return (a in sz_max) ? mib(sz_max[a]) : "-"
}
function bar(key) { return (kind[key] == "sparse") ? 2 * live[key] + 4096 : 1024 }
BEGIN {
    n = split(names, alloc, " ")
    for (a = 1; a <= n; a++) {
        file = work "/" alloc[a] ".out"
        while ((getline line < file) > 0) {
            split(line, f, "\t")
            if (f[1] != "row") continue
            key = f[2] "/" f[3]
            if (!(key in seen)) { seen[key] = 1; order[++rows] = key; kind[key] = f[2] }
            label[key] = f[3]; live[key] = f[5]; ret[a, key] = f[4]
        }
        close(file)
    }
    for (r = 1; r <= rows; r++) {
        key = order[r]; g = kind[key]
        name = (g ~ /^round/) ? "round " substr(g, 6) "  " label[key] : g " " label[key]
        if (g == "sparse") name = name " (live " mib(live[key]) ")"
        rowname[r] = name
        if (length(name) > w0) w0 = length(name)
    }
    if (w0 < 24) w0 = 24  # "most, size and trap rows"
    w = 10
    for (a = 1; a <= n; a++) if (length(alloc[a]) + 2 > w) w = length(alloc[a]) + 2

    printf "MiB still resident (RSS above the start) %.1f s after the program freed its blocks,\n", idle_ms / 1000
    print "idle (no malloc calls, no malloc_trim). A row allocates ~256 MiB of one block size,"
    print "touches every page, frees all; round 2 repeats round 1; trap: 1 MiB malloc+free, then"
    print "256 x 1 MiB; pinned: as round 1, but one small block allocated after the batch stays"
    print "live (as in a running program); sparse: 100,000 blocks, a random 1% kept live."
    print "* = above the issue's bar."
    print ""
    printf "%-" w0 "s", "experiment"
    for (a = 1; a <= n; a++) printf "%" w "s", alloc[a]
    printf "\n"
    for (r = 1; r <= rows; r++) {
        key = order[r]
        if (r > 1 && kind[key] != kind[order[r - 1]]) printf "\n"
        printf "%-" w0 "s", rowname[r]
        for (a = 1; a <= n; a++) {
            if (!((a, key) in ret)) { printf "%" w "s", "-"; continue }
            v = ret[a, key]
            over = (v > bar(key)) ? "*" : " "
            printf "%" w "s", mib(v) over
            if (kind[key] == "sparse") { if (v > sp_max[a] || !(a in sp_max)) sp_max[a] = v }
            else { if (v > sz_max[a] || !(a in sz_max)) sz_max[a] = v }
            if (alloc[a] == "ebb") { ebb_rows++; if (v <= bar(key)) ebb_ok++ }
        }
        printf "\n"
    }
    printf "\n%-" w0 "s", "most, size and trap rows"
    for (a = 1; a <= n; a++) printf "%" w "s", most(a, 0) " "
    printf "\n%-" w0 "s", "most, sparse rows"
    for (a = 1; a <= n; a++) printf "%" w "s", most(a, 1) " "
    printf "\n\n"
    for (a = 1; a <= n; a++) idx[alloc[a]] = a
    if ("ebb" in idx && "glibc" in idx)
        printf "ebb retained at most %s MiB in a size row and %s MiB in a sparse row; glibc %s and %s.\n",
            most(idx["ebb"], 0), most(idx["ebb"], 1), most(idx["glibc"], 0), most(idx["glibc"], 1)
    if (ebb_rows)
        printf "ebb meets the bar in %d of %d rows (1 MiB; sparse rows 2 x live + 4 MiB).\n", ebb_ok, ebb_rows
}
AWK
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
