#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Python package's tests (python/tests) against this build directory's
# libebb-prefix.a: builds the extension into BUILD/python, then pytest.
# Skipped (77) when python3-dev, python3-numpy or python3-pytest is missing.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:?usage: python.sh BUILD_DIR}" && pwd)
py=/usr/bin/python3
include=$($py -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
for need in "$include/Python.h:python3-dev" ; do
  [ -f "${need%%:*}" ] || { echo "python: skipped: ${need%%:*} missing (apt-get install ${need##*:})"; exit 77; }
done
for mod in numpy:python3-numpy pytest:python3-pytest setuptools:python3-setuptools; do
  $py -c "import ${mod%%:*}" 2>/dev/null || { echo "python: skipped: no ${mod%%:*} module (apt-get install ${mod##*:})"; exit 77; }
done
cd "$src/python"
EBB_BUILD_DIR="$build" $py setup.py -q build --build-base "$build/python-build" --build-lib "$build/python" >"$build/python-build.log" 2>&1 ||
  { cat "$build/python-build.log"; echo "python: error: the extension did not build"; exit 1; }
cd "$build"
PYTHONPATH="$build/python" exec $py -m pytest -q -s -p no:cacheprovider "$src/python/tests"
