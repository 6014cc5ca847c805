# SPDX-License-Identifier: MIT
"""Shared fixtures: a child interpreter for the tests that need a fresh process."""

import os
import subprocess
import sys
import textwrap

import pytest

MiB = 1 << 20


def run_python(code, env=None, timeout=120):
    """Runs `code` in a fresh /usr/bin/python3 (the same as this one) with this PYTHONPATH; returns stdout."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def child():
    return run_python
