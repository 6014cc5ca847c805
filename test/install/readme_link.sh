#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/install/readme_link.sh - the link commands README.md gives work as
# written: each ```sh block that follows a line
#     <!-- test/install/readme_link.sh runs this block -->
# is run with bash in a fresh directory holding app.c (test/install/app.c),
# include/ (the tree's) and build/ (the build under test), and must print
# the line of a program that runs on ebb, loaded from build/libebb.so.0.
#
# Usage: readme_link.sh <source dir> <build dir>
# Fails if README.md has no such block: then nothing would be tested.
set -euo pipefail
src=$1
build=$(cd "$2" && pwd)
fail() { echo "readme_link.sh: $*" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset LD_PRELOAD LD_LIBRARY_PATH

# The blocks, each into work/block-N.sh.
awk -v dir="$work" '
  /^<!-- test\/install\/readme_link.sh runs this block -->$/ { want = 1; next }
  want && /^```sh$/ { n++; inside = 1; want = 0; next }
  inside && /^```$/ { inside = 0; next }
  inside { print > (dir "/block-" n ".sh") }
  END { print n + 0 > (dir "/count") }
' "$src/README.md"
count=$(cat "$work/count")
((count > 0)) || fail "README.md has no block marked '<!-- test/install/readme_link.sh runs this block -->'"

want_lib=$(readlink -f "$build/libebb.so.0")
for ((i = 1; i <= count; i++)); do
  dir=$work/run-$i
  mkdir -p "$dir"
  cp "$src/test/install/app.c" "$dir/app.c"
  ln -s "$src/include" "$dir/include"
  ln -s "$build" "$dir/build"
  out=$(cd "$dir" && bash -euo pipefail "$work/block-$i.sh" 2>&1) ||
    fail "README block $i failed:"$'\n'"$(cat "$work/block-$i.sh")"$'\n'"--- its output:"$'\n'"$out"
  line=$(grep '^app: ' <<<"$out") || fail "README block $i ran no program on ebb: $out"
  [[ $line =~ ^app:\ ebb\ [0-9.]+\ serves\ malloc,\ from\ (.*)$ ]] || fail "README block $i: '$line'"
  [[ $(readlink -f "${BASH_REMATCH[1]}") == "$want_lib" ]] ||
    fail "README block $i loaded ${BASH_REMATCH[1]}, not $build/libebb.so.0"
  echo "readme_link.sh: block $i: $(grep -c . "$work/block-$i.sh") commands; $line"
done
