# SPDX-License-Identifier: MIT
"""Builds the ebb package's extension against an ebb build tree.

The extension links libebb-prefix.a (only ebb_ names, position-independent)
from EBB_BUILD_DIR (default: ../build, where `make release` puts it) and
hides those names from other modules, so importing ebb never replaces the
process's malloc. NumPy's headers are used when NumPy is installed; without
them the package still builds, and ebb.install() skips NumPy.
"""

import os
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("EBB_BUILD_DIR", os.path.join(ROOT, "build")))
ARCHIVE = os.path.join(BUILD, "libebb-prefix.a")
HEADERS = os.path.join(ROOT, "include")

if not os.path.exists(ARCHIVE) and not {"sdist", "egg_info", "dist_info"} & set(sys.argv):
    sys.exit(f"ebb: error: {ARCHIVE} not found: run `make release` in {ROOT} first "
             "(or set EBB_BUILD_DIR to a build directory that has it)")

include_dirs = [HEADERS]
macros = []
try:
    import numpy
    include_dirs.append(numpy.get_include())
    macros.append(("EBB_WITH_NUMPY", "1"))
except ImportError:
    print("ebb: NumPy not found: building without the NumPy handler", file=sys.stderr)

extension = Extension(
    "ebb._ebb",
    sources=["ebb/_ebb.c"],
    include_dirs=include_dirs,
    define_macros=macros,
    extra_compile_args=["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"],
    extra_objects=[ARCHIVE],
    extra_link_args=["-Wl,--exclude-libs,ALL", "-Wl,-z,now", "-pthread"],
    depends=[ARCHIVE, os.path.join(HEADERS, "ebb.h")],
)

setup(
    name="ebb",
    version="0.1.0",
    description="ebb, the malloc that gives memory back, inside CPython and NumPy",
    license="MIT",
    packages=["ebb"],
    ext_modules=[extension],
    python_requires=">=3.8",
)
