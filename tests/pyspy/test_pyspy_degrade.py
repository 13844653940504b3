"""When py-spy cannot sample (no binary, no ptrace rights), attaching goes on without it and
says why: "no external sampling", never a crash. Beside the agent, py-spy samples only with
--native (the target's own interpreter samples otherwise, `remote_stacks`)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach.attach_targets import PlainTarget
from capabilities import needs, require
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.model import Model
from loopscope.sources.pyspy import PySpySource, find_pyspy
from loopscope.tui._panels import header
from pythons import find_pythons

pytestmark = [
    pytest.mark.timeout(120),
]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[PlainTarget]:
    python = find_pythons()["3.12"]
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    t = PlainTarget(python, tmp_path)  # the attach tests' service: ready when constructed
    yield t
    t.close()


@pytest.fixture
def unprivileged_pyspy(tmp_path: Path) -> str:
    """The real py-spy, run as user nobody: the kernel denies it ptrace rights over the target."""
    require("py-spy", "other-uid")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is not installed")
    wrapper = tmp_path / "py-spy-as-nobody"
    wrapper.write_text(
        f"#!/bin/sh\nexec {setpriv} --reuid=65534 --regid=65534 --clear-groups "
        f'{find_pyspy()} "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def _attach(target: PlainTarget, tmp_path: Path, pyspy: str, *options: str) -> tuple[int, str]:
    out = loopscope(
        "attach", *options, "--headless", "--duration", "2", "--json", str(target.pid),
        state=tmp_path / "state", env={"LOOPSCOPE_PYSPY": pyspy},
    )  # fmt: skip
    assert_no_loopscope_traceback(out.stderr)
    assert target.proc.poll() is None
    if out.returncode == 0:
        json.loads(out.stdout)  # the findings, as usual
    return out.returncode, out.stderr


@needs("ptrace")
def test_without_a_pyspy_binary_the_agent_goes_on_alone(
    target: PlainTarget, tmp_path: Path
) -> None:
    code, stderr = _attach(target, tmp_path, str(tmp_path / "no-such-py-spy"), "--native")
    assert code == 0, stderr
    assert f"no sampling with py-spy: cannot run {tmp_path / 'no-such-py-spy'}" in stderr


@needs("ptrace")
def test_without_ptrace_rights_the_agent_goes_on_alone(
    target: PlainTarget, tmp_path: Path, unprivileged_pyspy: str
) -> None:
    code, stderr = _attach(target, tmp_path, unprivileged_pyspy, "--native")
    assert code == 0, stderr
    assert "no sampling with py-spy: Permission Denied" in stderr
    assert "py-spy needs ptrace rights" in stderr


def test_without_ptrace_rights_and_without_agent_nothing_observes(
    target: PlainTarget, tmp_path: Path, unprivileged_pyspy: str
) -> None:
    code, stderr = _attach(target, tmp_path, unprivileged_pyspy, "--no-inject")
    assert code == 1, stderr
    assert "could not observe process" in stderr and "py-spy needs ptrace rights" in stderr


def test_the_header_says_why(target: PlainTarget, unprivileged_pyspy: str) -> None:
    model = Model()
    for event in PySpySource(target.pid, binary=unprivileged_pyspy).events():
        model.apply(event)
    (state,) = model.snapshot().sources
    assert (state.name, state.state) == ("py-spy", "unavailable")
    assert "Permission Denied" in state.detail and "ptrace" in state.detail

    line = header(model.snapshot(), paused=False, how="", log_path=None).plain
    assert "py-spy unavailable (Permission Denied" in line
