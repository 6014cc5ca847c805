#!/usr/bin/env bash
# test/misuse/expect.sh - runs one misuse program and checks how it ended.
#
# Usage: expect.sh <binary> <source.c>
# The source's first lines say what must happen:
#   /* expect: SIGABRT */          or  /* expect: exit 0 */
#   /* stderr: <text> */           stderr must have a line starting with <text>
#   /* env: VAR=value */           optional, may repeat; set for the run
# (The one-line form "/* expect: SIGABRT | <text> */" is accepted too.)
# Prints "ok <name>" or "FAIL <name>: <reason>"; exits 0 only on success.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 <binary> <source.c>" >&2
  exit 2
fi
bin=$1
src=$2
name=$(basename "$src" .c)
header_lines=10   # directives are looked for in this many leading lines

fail() {
  echo "FAIL $name: $*"
  exit 1
}

# The text between "/* key:" and "*/" on each matching leading line.
directive() {
  head -n "$header_lines" "$src" |
    sed -n "s|^[[:space:]]*/\*[[:space:]]*$1:[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*\*/.*|\1|p"
}

expect=$(directive expect | head -n 1)
want_stderr=$(directive stderr | head -n 1)
mapfile -t envs < <(directive env)

if [[ $expect == *" | "* ]]; then   # one-line form
  [[ -z $want_stderr ]] && want_stderr=${expect#* | }
  expect=${expect%% | *}
fi
[[ -n $expect ]] || fail "no '/* expect: ... */' line in the first $header_lines lines of $src"
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

errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT

# No core files from the expected aborts; a hang is a failure, not a stall.
ulimit -c 0
set +e
# The braces' 2>/dev/null hides bash's own "Aborted" job report.
{ env ${envs[@]+"${envs[@]}"} timeout 120 "$bin" >/dev/null 2>"$errfile"; } 2>/dev/null
status=$?
set -e

((status != 124)) || fail "timed out after 120 s"
if ((status != want_status)); then
  first_err=$(head -n 1 "$errfile")
  fail "expected $expect, got $(describe_status "$status")${first_err:+; stderr: $first_err}"
fi
if [[ -n $want_stderr ]]; then
  if ! awk -v t="$want_stderr" 'index($0, t) == 1 { found = 1 } END { exit !found }' "$errfile"; then
    fail "stderr has no line starting with '$want_stderr'; it was: $(head -c 400 "$errfile" | tr '\n' '|')"
  fi
fi
echo "ok   $name ($expect)"
