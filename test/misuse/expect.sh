#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/misuse/expect.sh - runs one misuse program and checks how it ended:
# its exit status, and its stderr as whole lines, compared exactly.
#
# Usage: expect.sh <binary> <source.c> [--warn]
#
# --warn runs the program with EBB_ON_ERROR=warn and expects it to report
# the same lines and then go on: it must exit 0 (the double-free programs
# check, after the refused free, that the heap hands out no block twice).
#
# How a test declares what must happen: directives among the source's first
# 10 lines, each a one-line comment of its own:
#   /* expect: SIGABRT */    how it must end: killed by SIG<NAME>, or
#                            "exit N" (exit status N). Exactly one.
#   /* stderr: <line> */     one whole line of stderr, without its newline;
#                            repeat for more lines, in their order. stderr
#                            must be exactly these lines, each ended by a
#                            newline, and nothing else; with no stderr
#                            directive it must be empty.
#   /* env: VAR=value */     set for the run; optional, may repeat.
# Any other "/* word: ... */" line there is an error (a misspelt directive).
#
# The pointer in a message: in a stderr line, <name> (lower-case letters,
# digits, _) stands for the value the program printed on stdout as the line
# "name=value". Before its misuse the program prints the pointer it is about
# to misuse, and flushes (an abort loses what stdio still buffers):
#     printf("ptr=%p\n", p);
#     fflush(stdout);
# ebb prints a pointer as glibc's %p does (0x and lower-case hex), so the
# line is known to the character. stdout must hold only such lines, and a
# <name> with no "name=" line on stdout is an error.
#
# A new test, e.g. test/misuse/double_free_remote.c, opens with:
#   /* expect: SIGABRT */
#   /* stderr: ebb: error: double free of <ptr> */
#   /* double_free_remote.c - what it misuses, and what ebb must do. */
# prints "ptr=%p" before its misuse as above, and after the misuse writes
# "misuse went unnoticed" to stderr and returns 3. test/CMakeLists.txt
# builds every test/misuse/*.c: ctest -R misuse_double_free_remote runs it.
#
# Prints "ok <name>" or "FAIL <name>: <reason>"; exits 0 only on success.
set -euo pipefail

if [[ $# -ne 2 && ( $# -ne 3 || $3 != --warn ) ]]; then
  echo "usage: $0 <binary> <source.c> [--warn]" >&2
  exit 2
fi
bin=$1
src=$2
warn=${3:-}
name=$(basename "$src" .c)
header_lines=10   # directives are looked for in this many leading lines

fail() {
  echo "FAIL $name: $*"
  exit 1
}

# The text between "/* key:" and "*/" on each matching leading line.
directive() {
  head -n "$header_lines" "$src" |
    sed -n "s|^[[:space:]]*/\*[[:space:]]*$1:[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*\*/[[:space:]]*$|\1|p"
}

unknown=$(head -n "$header_lines" "$src" |
  sed -n 's|^[[:space:]]*/\*[[:space:]]*\([a-z]*\):.*\*/[[:space:]]*$|\1|p' | grep -vxE 'expect|stderr|env' || true)
[[ -z $unknown ]] || fail "unknown directive '$(head -n 1 <<<"$unknown"):' (expect, stderr, env)"
mapfile -t expects < <(directive expect)
mapfile -t want_lines < <(directive stderr)
mapfile -t envs < <(directive env)

((${#expects[@]} == 1)) || fail "want exactly one '/* expect: ... */' line in the first $header_lines lines of $src"
expect=${expects[0]}
if [[ -n $warn ]]; then
  expect="exit 0"
  envs+=(EBB_ON_ERROR=warn)
fi
[[ -x $bin ]] || fail "binary $bin not found or not executable"

# What exit status the expectation means: 128+n for a signal, else the code.
if [[ $expect =~ ^SIG[A-Z0-9]+$ ]]; then
  signum=$(kill -l "${expect#SIG}" 2>/dev/null) || fail "unknown signal $expect"
  want_status=$((128 + signum))
elif [[ $expect =~ ^exit[[:space:]]+([0-9]+)$ ]]; then
  want_status=${BASH_REMATCH[1]}
else
  fail "cannot parse expectation '$expect' (want SIGNAME or 'exit N')"
fi

describe_status() {
  if (($1 > 128)); then
    echo "signal SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo "?$(($1 - 128))") (status $1)"
  else
    echo "exit $1"
  fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No core files from the expected aborts; a hang is a failure, not a stall.
ulimit -c 0
set +e
# The braces' 2>/dev/null hides bash's own "Aborted" job report.
{ env ${envs[@]+"${envs[@]}"} timeout 120 "$bin" >"$tmp/out" 2>"$tmp/err"; } 2>/dev/null
status=$?
set -e

((status != 124)) || fail "timed out after 120 s"
if ((status != want_status)); then
  first_err=$(head -n 1 "$tmp/err")
  fail "expected $expect, got $(describe_status "$status")${first_err:+; stderr: $first_err}"
fi

# The values the program printed, by name.
declare -A values=()
while IFS= read -r line || [[ -n $line ]]; do
  [[ $line =~ ^([a-z_][a-z0-9_]*)=(.*)$ ]] || fail "stdout line '$line' is not name=value"
  values[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
done <"$tmp/out"

# The expected stderr, placeholders replaced, one line each.
: >"$tmp/want"
for line in ${want_lines[@]+"${want_lines[@]}"}; do
  for key in "${!values[@]}"; do
    line=${line//"<$key>"/"${values[$key]}"}
  done
  if [[ $line =~ \<([a-z_][a-z0-9_]*)\> ]]; then
    fail "stderr directive has <${BASH_REMATCH[1]}>, but stdout has no '${BASH_REMATCH[1]}=' line"
  fi
  printf '%s\n' "$line" >>"$tmp/want"
done

if ! cmp -s "$tmp/want" "$tmp/err"; then
  fail "stderr is not the expected lines (-expected +actual):"$'\n'"$(diff -u "$tmp/want" "$tmp/err" | tail -n +3)"
fi
echo "ok   $name ($expect, ${#want_lines[@]} stderr lines)"
