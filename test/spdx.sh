#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/spdx.sh - every tracked source file carries ebb's licence line.
#
# Usage: spdx.sh <source dir> [--fix]
# Source files: *.c *.h *.cpp *.sh *.py *.cmake *.in, CMakeLists.txt,
# Makefile, the man pages (man/*.[1-8]), and any other file that starts
# with a shebang (.ci/run). Data (test/fuzz/corpus/) and generated results
# (bench/results/) are not source. The line, in the file's comment syntax:
#     /* SPDX-License-Identifier: MIT */     C and C++
#     .\" SPDX-License-Identifier: MIT        man pages
#     # SPDX-License-Identifier: MIT          everything else
# is the first line, or the second after a shebang. Lists every file
# without it and fails; --fix inserts it there instead. Skipped (77)
# outside a git checkout: "tracked" needs git.
set -euo pipefail
src=$1
fix=${2:-}
tag="SPDX-License-Identifier: MIT"

if ! git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "spdx.sh: skipped: $src is not a git checkout"
  exit 77
fi

# The line a file must carry; empty if the file is not source.
expected_line() {
  local path=$1
  case $path in
  test/fuzz/corpus/* | bench/results/*) return ;;
  *.c | *.h | *.cpp) echo "/* $tag */" ;;
  man/*.[1-8]) echo ".\\\" $tag" ;;
  *.sh | *.py | *.cmake | *.in | CMakeLists.txt | */CMakeLists.txt | Makefile | */Makefile) echo "# $tag" ;;
  *) if [[ $(head -c 2 "$src/$path") == '#!' ]]; then echo "# $tag"; fi ;;
  esac
}

# 1 or 2: where the line goes in the file.
line_number() { if [[ $(head -c 2 "$1") == '#!' ]]; then echo 2; else echo 1; fi; }

missing=0
checked=0
while IFS= read -r -d '' path; do
  [[ -f $src/$path ]] || continue # deleted in the work tree, not yet committed
  want=$(expected_line "$path")
  [[ -n $want ]] || continue
  checked=$((checked + 1))
  file=$src/$path
  n=$(line_number "$file")
  [[ $(sed -n "${n}p" "$file") == "$want" ]] && continue
  if [[ $fix == --fix ]]; then
    # the line through the environment: awk -v would read its backslashes as escapes
    SPDX_LINE=$want awk -v n="$n" 'NR == n { print ENVIRON["SPDX_LINE"] } { print } END { if (NR < n) print ENVIRON["SPDX_LINE"] }' "$file" >"$file.spdx"
    cat "$file.spdx" >"$file" # keeps the file's mode
    rm "$file.spdx"
    echo "spdx.sh: added the licence line to $path"
  else
    echo "spdx.sh: $path: line $n is not '$want'" >&2
    missing=$((missing + 1))
  fi
done < <(git -C "$src" ls-files -z)

if ((missing > 0)); then
  echo "spdx.sh: $missing of $checked source files lack the licence line (test/spdx.sh $src --fix adds it)" >&2
  exit 1
fi
echo "spdx.sh: all $checked source files carry '$tag'"
