# SPDX-License-Identifier: MIT
"""A test suite under ebb: `python3 -m pytest -p ebb.pytest_plugin ...`.

ebb.install() runs when pytest starts, before any test is collected. After
every test the plugin checks that ebb still serves NumPy's arrays (NumPy's
handler in the main context is ebb's) and CPython's RAW and MEM domains; a
test that left another allocator in place is named on stderr, ebb is
installed again for the tests after it, and the run ends with exit status 1.
The summary says how many tests ran under ebb.
"""

import sys

import ebb

_lost = []      # (test id, what it changed): tests after which ebb no longer served everything
_checked = [0]  # tests checked


def _what_changed():
    """'' while ebb serves NumPy's handler and the RAW and MEM domains, else what does not."""
    state = ebb.state()
    changed = [domain for domain in ("numpy", "raw", "mem") if not state[domain]]
    changed += [domain for domain in ("raw", "mem") if not ebb._ebb.domain_state(domain)["active"]]
    if state["numpy"]:
        from numpy.core.multiarray import get_handler_name
        name = get_handler_name()
        if name != "ebb":
            changed.append(f"NumPy's handler is {name!r}")
    return ", ".join(changed)


def pytest_configure(config):
    ebb.install()
    changed = _what_changed()
    if changed:
        raise SystemExit(f"ebb: error: ebb.install() did not take: {changed}")


def pytest_runtest_logfinish(nodeid, location):
    _checked[0] += 1
    changed = _what_changed()
    if changed:
        _lost.append((nodeid, changed))
        print(f"\nebb: error: after {nodeid}: {changed}; installing ebb again", file=sys.stderr)
        ebb.install()


def pytest_sessionfinish(session, exitstatus):
    if _lost and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    if _lost:
        terminalreporter.write_line(f"ebb: error: {len(_lost)} tests left another allocator in place: "
                                    + "; ".join(f"{test} ({what})" for test, what in _lost))
    else:
        terminalreporter.write_line(f"ebb: installed through all {_checked[0]} tests "
                                    f"({ebb.mode}; {ebb._ebb.numpy_live()} array blocks of ebb's alive)")
