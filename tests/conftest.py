from __future__ import annotations

import signal
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

import capabilities
from pythons import SUPPORTED, find_pythons, missing_reason


@pytest.fixture(params=SUPPORTED, ids=lambda v: f"py{v}")
def target_python(request: pytest.FixtureRequest) -> str:
    """Path of a CPython interpreter of each supported version, for target processes."""
    path = find_pythons()[request.param]
    if path is None:
        pytest.skip(missing_reason(request.param))
    return path


def pytest_configure(config: pytest.Config) -> None:
    # Run in the background of a shell without job control (`make test &`), the suite inherits
    # SIGINT ignored, and so would every program it starts: Python then never raises
    # KeyboardInterrupt, and the tests of Ctrl-C wait in vain. A handler, unlike an ignored
    # signal, goes back to the default in the programs it starts.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "needs(*capabilities): skip unless this machine has them (see tests/capabilities.py)",
    )
    config.addinivalue_line(
        "markers",
        "serial: judges timing (a duration, a cause, a pause, growth): `make test` runs it after "
        "the parallel phase, alone, so that other tests do not take its cores",
    )
    config.addinivalue_line(
        "markers",
        "spread: the module's tests share nothing but programruns.py's runs, which all workers "
        "share: pytest-xdist may run them on different workers",
    )
    if getattr(config.option, "loadgroup", False):  # a worker of pytest-xdist's --dist loadgroup
        config.pluginmanager.register(_ModuleGroups())


class _ModuleGroups:
    """Under pytest-xdist's ``--dist loadgroup``, the tests of one module run in one worker, one
    after the other as without xdist (they may share a module-scoped fixture or a module's cache
    of runs), except in modules marked `spread`."""

    @pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if item.get_closest_marker("spread") is None:
                item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


# What the run covered: the attach routes and target Pythons of the tests selected, and what
# became of each test (ran, or skipped and why), for the summary at the end.


@dataclass
class _Covered:
    tests: dict[str, tuple[set[str], str | None]] = field(default_factory=dict)
    ran: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)


_covered = _Covered()


@pytest.hookimpl(trylast=True)  # after -k and -m deselected what will not run
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip a test that needs what this machine lacks, saying what and why; note the routes
    and target Python of each test for the summary."""
    for item in items:
        needed = [name for mark in item.iter_markers("needs") for name in mark.args]
        lacking = [(name, why) for name in needed if (why := capabilities.missing(name))]
        if lacking:
            name, why = lacking[0]
            item.add_marker(pytest.mark.skip(reason=f"needs {name}: {why}"))
        routes = {name for name in needed if name in capabilities.ROUTES}
        callspec = getattr(item, "callspec", None)
        python = callspec.params.get("target_python") if callspec is not None else None
        if routes or python:
            _covered.tests[item.nodeid] = (routes, python)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # every test's outcome: under pytest-xdist the process that prints the summary learns which
    # tests count (_covered.tests) only when the workers end
    if report.skipped and isinstance(report.longrepr, tuple):
        _covered.skipped[report.nodeid] = report.longrepr[2].removeprefix("Skipped: ")
    elif report.when == "call":
        _covered.ran.add(report.nodeid)
    if report.failed:
        _covered.failed.add(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """In a pytest-xdist worker, hand what it covered and probed to the main process."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["loopscope_covered"] = {
            "tests": {n: (sorted(rs), python) for n, (rs, python) in _covered.tests.items()},
            "found": dict(capabilities.FOUND),
        }


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, in the main process
def pytest_testnodedown(node: Any, error: object) -> None:
    covered = getattr(node, "workeroutput", {}).get("loopscope_covered")
    if covered is None:
        return
    for nodeid, (routes, python) in covered["tests"].items():
        _covered.tests[nodeid] = (set(routes), python)
    for name, why in covered["found"].items():
        # a capability one worker lacked is reported as lacking
        if capabilities.FOUND.get(name) is None:
            capabilities.FOUND[name] = why


def _line(name: str, nodeids: list[str]) -> str:
    ran = [n for n in nodeids if n in _covered.ran]
    failed = [n for n in ran if n in _covered.failed]
    # "needs gdb: why" says why once, in the machine lines above
    skipped = Counter(
        _covered.skipped[n].split(": ", 1)[0]
        if _covered.skipped[n].startswith("needs ")
        else _covered.skipped[n]
        for n in nodeids
        if n in _covered.skipped
    )
    parts = [f"ran {len(ran)}" + (f" ({len(failed)} failed)" if failed else "")]
    parts += [f"skipped {count}: {why}" for why, count in skipped.most_common()]
    return f"  {name:<18} " + "; ".join(parts)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Which attach routes and target Pythons the run exercised, which it skipped, and why."""
    if not _covered.tests and not capabilities.FOUND:
        return
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "what this run covered")
    for name in capabilities.PROBES:
        if name in capabilities.FOUND:
            why = capabilities.FOUND[name]
            write(f"  machine: {name:<13} " + ("yes" if why is None else f"no: {why}"))
    for route in capabilities.ROUTES:
        nodeids = [n for n, (routes, _) in _covered.tests.items() if route in routes]
        if nodeids:
            write(_line(f"route {route}", nodeids))
    for version in SUPPORTED:
        nodeids = [n for n, (_, python) in _covered.tests.items() if python == version]
        if nodeids:
            write(_line(f"target Python {version}", nodeids))
