"""What this machine can do that some tests need, each found out once per test run by trying it.

Machines of one kind differ (CPU features, kernel settings, who runs the tests), so a test never
assumes a capability: it declares it, ``@pytest.mark.needs("gdb")`` (or `route_params` for a
test run once per attach route), and tests/conftest.py skips it with the reason when this
machine lacks it. The end of the run lists what was exercised and what was skipped, and why.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable

import pytest

from loopscope.attach._routes import gdb_cannot_call, throwaway_process
from loopscope.sources.pyspy import find_pyspy

# The attach routes the tests inject with, and the outside observer, in the order the end of
# the run lists them. remote-exec needs a 3.14+ target (tests/pythons.py).
ROUTES = ("ptrace", "gdb", "pyinjector", "remote-exec", "py-spy")


def _ptrace() -> str | None:
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return f"the ptrace route is built for Linux on x86-64 (this is {platform.machine()})"
    from loopscope.attach._ptrace import PtraceError, Tracer

    with throwaway_process() as pid:
        try:
            with Tracer(pid):
                pass
        except PtraceError as e:
            return f"cannot ptrace a child process on this machine: {e}"
    return None


def _gdb_installed() -> str | None:
    return None if shutil.which("gdb") else "gdb is not installed"


def _gdb() -> str | None:
    gdb = shutil.which("gdb")
    return "gdb is not installed" if gdb is None else gdb_cannot_call(gdb)


def _pyinjector() -> str | None:
    from loopscope.attach._routes import PyinjectorRoute

    why = PyinjectorRoute().unavailable(None)  # type: ignore[arg-type]  # it reads no info
    return why or missing("ptrace")


def _pyspy() -> str | None:
    pyspy = find_pyspy()
    if pyspy is None:
        return "py-spy is not installed"
    with throwaway_process() as pid:
        try:
            out = subprocess.run(
                [pyspy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"py-spy could not be run: {e}"
    if out.returncode != 0:
        said = [line for line in (out.stderr + out.stdout).splitlines() if line.strip()]
        return f"py-spy cannot read a process on this machine: {(said or ['no output'])[-1]}"
    return None


def _remote_exec() -> str | None:
    from pythons import find_pythons, missing_reason

    found = find_pythons()
    return None if found.get("3.14") or found.get("3.15") else missing_reason("3.14")


def _other_uid() -> str | None:
    return None if os.getuid() == 0 else "needs root to run a process as another user"


PROBES: dict[str, Callable[[], str | None]] = {
    "ptrace": _ptrace,
    "gdb": _gdb,
    "gdb-installed": _gdb_installed,
    "pyinjector": _pyinjector,
    "py-spy": _pyspy,
    "remote-exec": _remote_exec,
    "other-uid": _other_uid,
}


FOUND: dict[str, str | None] = {}  # what the probes tried so far found: name -> why missing


def missing(name: str) -> str | None:
    """Why this machine lacks capability ``name`` (a key of PROBES), or None when it has it.
    Probed on first use, then remembered for the rest of the run."""
    if name not in FOUND:
        FOUND[name] = PROBES[name]()
    return FOUND[name]


def require(*names: str) -> None:
    """Skip the calling test (or fixture) unless the machine has all of ``names``."""
    for name in names:
        why = missing(name)
        if why is not None:
            pytest.skip(f"needs {name}: {why}")


def needs(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.needs(*names)


def route_params(*names: str) -> list[object]:
    """Parameters for a test run once per attach route, each needing its route."""
    return [pytest.param(name, marks=needs(name), id=name) for name in names]
