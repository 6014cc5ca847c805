#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/real/run.sh - real programs run with LD_PRELOAD=libebb.so, their
# output checked against a run without ebb or against known constants.
#
# Usage: run.sh <path/to/libebb.so> <path/to/real_threads_cxx>
# Prints "ok   NAME", "FAIL NAME: reason" or "skip NAME: reason" per program;
# exits 1 if any failed. python3, perl, git, gcc and sort must be installed;
# the optional programs (g++, xz, sqlite3) are skipped when missing.
#
# A preload that silently does not take would make every comparison pass, so
# it is proven three ways: a process under the preload must show libebb in
# /proc/self/maps (checked first, and by the python and perl workloads
# themselves), the dynamic loader must list libebb for each program's binary,
# and no run may print a loader error.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <libebb.so> <real_threads_cxx>" >&2
  exit 2
fi
lib=$(readlink -f "$1")
threads_bin=$(readlink -f "$2")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ebb-real.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0
python=/usr/bin/python3 # the system python, not a pyenv shim

# ---- helpers ---------------------------------------------------------------

with_ebb() { LD_PRELOAD=$lib "$@"; }
without_ebb() { env -u LD_PRELOAD "$@"; }

# Runs a check function; its output is the failure (or skip) reason.
# Status 0: ok, 77: skip, anything else: failure.
run_check() {
  local name=$1 out status=0 start=$SECONDS
  shift
  out=$("$@" 2>&1) || status=$?
  if ((status == 0)); then
    echo "ok   $name ($((SECONDS - start)) s)"
  elif ((status == 77)); then
    echo "skip $name: $out"
  else
    echo "FAIL $name: $(tail -n 8 <<<"$out" | tr '\n' ' ')"
    failures=$((failures + 1))
  fi
}

# The dynamic loader lists libebb among the objects it would load for the
# binary (LD_TRACE_LOADED_OBJECTS is what ldd uses; nothing is run).
preload_takes() {
  local bin listed
  bin=$(command -v "$1") || { echo "$1 not found"; return 1; }
  # Captured first: grep -q in a pipe could end the writer by SIGPIPE, which
  # pipefail would report as a failure.
  listed=$(LD_TRACE_LOADED_OBJECTS=1 LD_PRELOAD=$lib "$bin" 2>&1) || true
  if ! grep -qF "$lib" <<<"$listed"; then
    echo "the loader would not preload $lib into $bin (static or setuid binary?)"
    return 1
  fi
}

# A run under the preload printed no loader error (a preload that fails to
# load is only a warning to ld.so, and the program then runs with glibc).
no_loader_errors() {
  if grep -E "ld\.so|cannot be preloaded|ebb: error" "$1"; then
    echo "error output under the preload (above), in $1"
    return 1
  fi
}

same_output() { # expected actual what
  if ! cmp -s "$1" "$2"; then
    echo "$3: output with ebb differs from without:"
    diff "$1" "$2" | head -n 6
    return 1
  fi
}

require() {
  command -v "$1" >/dev/null || { echo "$1 is required but not installed"; return 1; }
}

optional() {
  command -v "$1" >/dev/null || { echo "$1 is not installed"; return 77; }
}

# ---- 0: the preload takes at all -------------------------------------------

check_preload() {
  [[ -f $lib ]] || { echo "$lib does not exist"; return 1; }
  LD_PRELOAD=$lib /usr/bin/env cat /proc/self/maps >"$tmp/maps" 2>"$tmp/maps.err" || true
  if ! grep -qF "$lib" "$tmp/maps"; then
    echo "libebb is not mapped in a process run with LD_PRELOAD=$lib: $(head -c 300 "$tmp/maps.err")"
    return 1
  fi
}

# ---- a: python --------------------------------------------------------------

write_python_workload() {
  cat >"$1" <<'PY'
# Allocation-heavy, deterministic: each line printed is a digest of one part.
import hashlib, json, os, sys, threading

def require_ebb():
    lib = os.environ.get("EXPECT_EBB")
    if lib:
        with open("/proc/self/maps") as f:
            if lib not in f.read():
                sys.exit(f"{lib} is not mapped: LD_PRELOAD did not take")

def sha(data):
    return hashlib.sha256(data if isinstance(data, bytes) else repr(data).encode()).hexdigest()[:24]

def dicts_and_lists():
    d = {f"key{i}": [i, str(i) * (i % 7), (i, -i)] for i in range(300000)}
    for i in range(0, 300000, 3):
        del d[f"key{i}"]
    rows = sorted(d.values(), key=lambda v: (v[0] * 7919) % 100003)
    return f"{len(rows)} {sha(rows[:2000] + rows[-2000:])}"

def big_strings():
    s = "".join(chr(97 + i % 26) * (i % 50) for i in range(200000))  # ~5 MB
    t = s * 6                                                        # ~30 MB
    u = t.upper().replace("AB", "-")
    parts = u.split("-")
    b = u.encode() + b"|" + t[::-1].encode()
    return f"{len(t)} {len(parts)} {sha(b)}"

def sets():
    a = {i * 3 for i in range(400000)}
    b = {i * 5 for i in range(400000)}
    words = {str(i * 7 % 100003) for i in range(300000)}
    both, either = a & b, a ^ b
    return f"{len(both)} {len(either)} {sum(both)} {len(words)} {sha(sorted(words)[:3000])}"

def json_round_trip():
    doc = {"items": [{"id": i, "name": f"item{i}", "tags": [f"t{j}" for j in range(i % 5)],
                      "price": i * 0.25, "nested": {"a": [i] * (i % 4)}} for i in range(80000)]}
    text = json.dumps(doc, sort_keys=True)
    back = json.loads(text)
    assert back == doc, "json round trip changed the document"
    return f"{len(text)} {sha(text.encode())}"

def thread_work(n, out):
    h = hashlib.sha256()
    for r in range(25):
        objs = [{"n": n, "r": r, "i": i, "s": "x" * (i % 300)} for i in range(4000)]
        h.update(json.dumps(objs[::97]).encode())
        big = bytearray(b"%d" % n) * (200000 + r * 5000)
        h.update(bytes(big[-100:]) + str(len(big)).encode())
        del objs, big
    out[n] = h.hexdigest()[:16]

def threads():
    out = [None] * 4
    ts = [threading.Thread(target=thread_work, args=(n, out)) for n in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return " ".join(out)

require_ebb()
for name, fn in [("dicts_and_lists", dicts_and_lists), ("big_strings", big_strings),
                 ("sets", sets), ("json", json_round_trip), ("threads", threads)]:
    print(name, fn(), flush=True)
PY
}

# Compared with the same script under glibc; run twice under ebb: with
# pymalloc (default) and with PYTHONMALLOC=malloc, which sends every object
# through ebb.
check_python() {
  require "$python" || return 1
  preload_takes "$python" || return 1
  local script=$tmp/work.py status
  write_python_workload "$script"
  PYTHONHASHSEED=0 without_ebb "$python" "$script" >"$tmp/py.want" ||
    { echo "the workload fails even without ebb"; return 1; }
  for mode in pymalloc malloc; do
    status=0
    PYTHONHASHSEED=0 PYTHONMALLOC=$mode EXPECT_EBB=$lib \
      with_ebb "$python" "$script" >"$tmp/py.$mode" 2>"$tmp/py.$mode.err" || status=$?
    ((status == 0)) || { cat "$tmp/py.$mode.err"; echo "PYTHONMALLOC=$mode: exit $status"; return 1; }
    no_loader_errors "$tmp/py.$mode.err" || return 1
    same_output "$tmp/py.want" "$tmp/py.$mode" "PYTHONMALLOC=$mode" || return 1
  done
}

# ---- b: perl ----------------------------------------------------------------

write_perl_workload() {
  cat >"$1" <<'PL'
# Hashes, arrays and big strings; prints digests (hash order is sorted away).
use strict;
use warnings;
use Digest::MD5 qw(md5_hex);

if (my $lib = $ENV{EXPECT_EBB}) {
  open(my $maps, '<', '/proc/self/maps') or die "maps: $!";
  my $text = do { local $/; <$maps> };
  die "$lib is not mapped: LD_PRELOAD did not take\n" unless index($text, $lib) >= 0;
}

my %h;
$h{"key$_"} = ("v" x ($_ % 100)) . $_ for 1 .. 300000;
delete $h{"key$_"} for grep { $_ % 3 == 0 } 1 .. 300000;
my @keys = sort keys %h;
print "hash ", scalar(@keys), " ", md5_hex(join(",", @keys[0 .. 999], map { $h{$_} } @keys[-1000 .. -1])), "\n";

my @rows = map { [$_, "x" x ($_ % 50), { id => $_ }] } 1 .. 200000;
@rows = sort { $a->[0] % 1009 <=> $b->[0] % 1009 or $a->[0] <=> $b->[0] } @rows;
print "array ", scalar(@rows), " ", md5_hex(join(";", map { "$_->[0]:$_->[2]{id}:" . length($_->[1]) } @rows)), "\n";

my $log = "";
$log .= "line $_ " . ("z" x ($_ % 13)) . "\n" for 1 .. 400000;
my $big = "abc" x 5_000_000;            # 15 MB
(my $bigger = $big) =~ s/b/BB/g;        # 20 MB
my @parts = split /\n/, $log;
print "strings ", length($log), " ", length($bigger), " ", scalar(@parts), " ", md5_hex($log . $bigger), "\n";
PL
}

check_perl() {
  require perl || return 1
  preload_takes perl || return 1
  local script=$tmp/work.pl status=0
  write_perl_workload "$script"
  without_ebb perl "$script" >"$tmp/pl.want" || { echo "the workload fails even without ebb"; return 1; }
  EXPECT_EBB=$lib with_ebb perl "$script" >"$tmp/pl.got" 2>"$tmp/pl.err" || status=$?
  ((status == 0)) || { cat "$tmp/pl.err"; echo "exit $status"; return 1; }
  no_loader_errors "$tmp/pl.err" || return 1
  same_output "$tmp/pl.want" "$tmp/pl.got" perl
}

# ---- c: git -----------------------------------------------------------------

# Two commits with fixed identities and dates, so the commit ids are the same
# with and without ebb; then gc (pack-objects, threads) and fsck. Prints the
# commit count, the head commit id and the fsck outcome.
git_workload() { # runner dir
  local run=$1 repo=$2
  export HOME=$repo.home GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=ebb GIT_AUTHOR_EMAIL=ebb@test
  export GIT_COMMITTER_NAME=ebb GIT_COMMITTER_EMAIL=ebb@test
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
  mkdir -p "$HOME" "$repo"
  $run git -C "$repo" init -q -b main || return 1
  make_git_files "$repo" 1
  $run git -C "$repo" add -A && $run git -C "$repo" commit -q -m "first" || return 1
  make_git_files "$repo" 2
  $run git -C "$repo" add -A && $run git -C "$repo" commit -q -m "second" || return 1
  $run git -C "$repo" log --oneline | wc -l
  $run git -C "$repo" rev-parse HEAD
  $run git -C "$repo" gc -q && $run git -C "$repo" fsck --strict --no-progress && echo "fsck ok"
}

make_git_files() { # dir generation
  mkdir -p "$1/src"
  awk -v gen="$2" -v dir="$1/src" 'BEGIN {
    for (f = 0; f < 150; f++) {
      out = sprintf("%s/file%03d.txt", dir, f)
      for (l = 0; l < 40 + f * 3; l++) printf "gen %d file %d line %d %s\n", (f % 4 == 0 ? gen : 1), f, l, substr("abcdefghijklmnopqrstuvwxyz", 1 + (l % 26)) > out
      close(out)
    }
  }'
  seq 1 $((300000 * $2)) >"$1/numbers.txt" # a few MB: zlib and delta work
}

check_git() {
  require git || return 1
  preload_takes git || return 1
  local want got
  want=$(cd "$tmp" && git_workload without_ebb "$tmp/git.plain" 2>"$tmp/git.plain.err") ||
    { cat "$tmp/git.plain.err"; echo "fails even without ebb"; return 1; }
  got=$(cd "$tmp" && git_workload with_ebb "$tmp/git.ebb" 2>"$tmp/git.err") || { cat "$tmp/git.err"; echo "$got"; return 1; }
  no_loader_errors "$tmp/git.err" || return 1
  [[ $(sed -n 1p <<<"$got") == 2 ]] || { echo "git log --oneline | wc -l gave '$(sed -n 1p <<<"$got")', want 2"; return 1; }
  [[ $(sed -n 3p <<<"$got") == "fsck ok" ]] || { echo "git fsck failed: $got"; return 1; }
  [[ $got == "$want" ]] || { echo "commit ids differ with ebb: '$got' vs '$want'"; return 1; }
}

# ---- d: gcc -----------------------------------------------------------------

write_c_program() {
  cat >"$1" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; unsigned long long value; };

static unsigned long long fib(int n) {
  unsigned long long a = 0, b = 1;
  for (int i = 0; i < n; i++) { unsigned long long t = a + b; a = b; b = t; }
  return a;
}

int main(void) {
  enum { N = 100000 };
  char *composite = calloc(N, 1);
  unsigned long long sum = 0, count = 0;
  for (unsigned long i = 2; i < N; i++) {
    if (composite[i]) continue;
    sum += i; count++;
    for (unsigned long j = i * i; j < N; j += i) composite[j] = 1;
  }
  free(composite);
  struct node *list = NULL;
  for (int i = 0; i <= 90; i++) {
    struct node *n = malloc(sizeof *n);
    n->value = fib(i); n->next = list; list = n;
  }
  printf("primes below %d: %llu, sum %llu\nfib(90) = %llu\n", N, count, sum, list->value);
  while (list) { struct node *n = list->next; free(list); list = n; }
  return 0;
}
C
}

# gcc (and cc1, as, ld under it) with ebb: the program it builds runs without
# ebb and prints known figures; the assembly is identical to gcc without ebb.
check_gcc() {
  require gcc || return 1
  preload_takes gcc || return 1
  preload_takes "$(gcc -print-prog-name=cc1)" || return 1
  local src=$tmp/prog.c out status=0
  write_c_program "$src"
  (cd "$tmp" && with_ebb gcc -O2 -Wall -o prog prog.c && with_ebb gcc -O2 -S -o prog.ebb.s prog.c) \
    2>"$tmp/gcc.err" || status=$?
  ((status == 0)) || { cat "$tmp/gcc.err"; echo "gcc with ebb: exit $status"; return 1; }
  no_loader_errors "$tmp/gcc.err" || return 1
  (cd "$tmp" && without_ebb gcc -O2 -S -o prog.plain.s prog.c) || return 1
  same_output "$tmp/prog.plain.s" "$tmp/prog.ebb.s" "gcc -S" || return 1
  out=$(without_ebb "$tmp/prog")
  [[ $out == $'primes below 100000: 9592, sum 454396537\nfib(90) = 2880067194370816120' ]] ||
    { echo "the compiled program printed: $out"; return 1; }
}

# ---- e: sort ----------------------------------------------------------------

# 2 million seeded lines, sorted in memory and with a small buffer (temporary
# files, merge, 2 threads); each compared with sort without ebb.
check_sort() {
  require sort || return 1
  preload_takes sort || return 1
  local input=$tmp/lines.txt status=0
  awk 'BEGIN { srand(42); for (i = 0; i < 2000000; i++)
    printf "%08d %s %d\n", int(rand() * 100000000), substr("qwertyuiopasdfghjklzxcvbnm", 1 + int(rand() * 20)), i }' >"$input"
  for variant in memory small-buffer; do
    local args=()
    [[ $variant == small-buffer ]] && args=(-S 8M --parallel=2 -T "$tmp" "-k2,2" "-k1,1n")
    LC_ALL=C without_ebb sort ${args[@]+"${args[@]}"} "$input" >"$tmp/sort.want"
    LC_ALL=C with_ebb sort ${args[@]+"${args[@]}"} "$input" >"$tmp/sort.got" 2>"$tmp/sort.err" || status=$?
    ((status == 0)) || { cat "$tmp/sort.err"; echo "$variant: exit $status"; return 1; }
    no_loader_errors "$tmp/sort.err" || return 1
    same_output "$tmp/sort.want" "$tmp/sort.got" "sort ($variant)" || return 1
  done
}

# ---- f: the threaded C++ program ----------------------------------------------

check_threads_cxx() {
  [[ -x $threads_bin ]] || { echo "$threads_bin is not an executable"; return 1; }
  preload_takes "$threads_bin" || return 1
  local status=0
  without_ebb "$threads_bin" >"$tmp/cxx.want" || { echo "fails even without ebb"; return 1; }
  with_ebb "$threads_bin" >"$tmp/cxx.got" 2>"$tmp/cxx.err" || status=$?
  ((status == 0)) || { cat "$tmp/cxx.err"; echo "exit $status"; return 1; }
  no_loader_errors "$tmp/cxx.err" || return 1
  same_output "$tmp/cxx.want" "$tmp/cxx.got" real_threads_cxx
}

# ---- g: CPython's own thread tests --------------------------------------------

# CPython's test_threading cases that fork from a thread or end main with a
# thread still running: ebb's purge thread must not keep such a process
# alive (the forked child's last thread returns; glibc then calls exit(0)).
# They need Debian's libpython3.11-testsuite; installed here if it is
# missing and apt-get can, else skipped.
python_tests_dir() { "$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"] + "/test")'; }

check_python_threading() {
  require "$python" || return 1
  local dir status=0
  dir=$(python_tests_dir) || return 1
  if [[ ! -f $dir/test_threading.py ]]; then
    local pkg
    pkg=libpython$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite
    if ! { command -v apt-get >/dev/null && apt-get install -y -q "$pkg" >/dev/null 2>&1; } ||
      [[ ! -f $dir/test_threading.py ]]; then
      echo "$pkg is not installed and could not be installed"
      return 77
    fi
  fi
  # Each case forks; a child that never exits would hang the run, so each
  # has a timeout far above its usual second.
  with_ebb timeout -k 5 120 "$python" -m test test_threading -m 'test_[0-9]_join_*' -m test_daemon_threads_fatal_error \
    >"$tmp/pythr.out" 2>"$tmp/pythr.err" || status=$?
  ((status == 0)) || { tail -n 20 "$tmp/pythr.out"; cat "$tmp/pythr.err"; echo "test_threading: exit $status"; return 1; }
  no_loader_errors "$tmp/pythr.err" || return 1
  grep -q "Tests result: SUCCESS" "$tmp/pythr.out" || { tail -n 20 "$tmp/pythr.out"; return 1; }
}

# ---- optional programs ---------------------------------------------------------

# g++ (cc1plus is a heavy allocator user) compiling threads.cpp; the program
# built with ebb's help must behave like the one CMake built.
check_gxx() {
  optional g++ || return 77
  preload_takes "$(g++ -print-prog-name=cc1plus)" || return 1
  local src
  src=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/threads.cpp
  with_ebb g++ -O1 -pthread -o "$tmp/threads_gxx" "$src" 2>"$tmp/gxx.err" ||
    { cat "$tmp/gxx.err"; echo "g++ with ebb failed"; return 1; }
  no_loader_errors "$tmp/gxx.err" || return 1
  without_ebb "$tmp/threads_gxx" >"$tmp/gxx.got" || return 1
  without_ebb "$threads_bin" >"$tmp/gxx.want" || return 1
  same_output "$tmp/gxx.want" "$tmp/gxx.got" "g++-built threads"
}

# xz with 2 threads, compressing and decompressing under ebb.
check_xz() {
  optional xz || return 77
  preload_takes xz || return 1
  seq 1 1000000 >"$tmp/xz.in"
  with_ebb xz -T2 -3 -c "$tmp/xz.in" 2>"$tmp/xz.err" | with_ebb xz -d -c >"$tmp/xz.out" 2>>"$tmp/xz.err" ||
    { cat "$tmp/xz.err"; return 1; }
  no_loader_errors "$tmp/xz.err" || return 1
  same_output "$tmp/xz.in" "$tmp/xz.out" "xz round trip"
}

# sqlite3: a table, an index, a join and an aggregate; compared without ebb.
check_sqlite() {
  optional sqlite3 || return 77
  preload_takes sqlite3 || return 1
  local sql="
    CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v INTEGER);
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000)
      INSERT INTO t SELECT i, printf('key%d', i % 5003), (i * 7919) % 10007 FROM c;
    CREATE INDEX tk ON t(k);
    SELECT count(*), sum(v), max(k) FROM t;
    SELECT a.k, count(*), sum(b.v) FROM t a JOIN t b ON a.k = b.k AND b.id % 97 = 0
      WHERE a.id % 89 = 0 GROUP BY a.k ORDER BY a.k LIMIT 5;"
  without_ebb sqlite3 ":memory:" "$sql" >"$tmp/sql.want" || return 1
  with_ebb sqlite3 ":memory:" "$sql" >"$tmp/sql.got" 2>"$tmp/sql.err" || { cat "$tmp/sql.err"; return 1; }
  no_loader_errors "$tmp/sql.err" || return 1
  same_output "$tmp/sql.want" "$tmp/sql.got" sqlite3
}

# ---- main -----------------------------------------------------------------------

run_check preload check_preload
if ((failures > 0)); then
  echo "LD_PRELOAD does not take; every other check would be meaningless"
  exit 1
fi
run_check python3 check_python
run_check perl check_perl
run_check git check_git
run_check gcc check_gcc
run_check sort check_sort
run_check real_threads_cxx check_threads_cxx
run_check python3_threading check_python_threading
run_check g++ check_gxx
run_check xz check_xz
run_check sqlite3 check_sqlite

if ((failures > 0)); then
  echo "$failures real-program check(s) failed"
  exit 1
fi
echo "all real-program checks passed"
