"""py-spy refused by the kernel (no ptrace rights over the target): loopscope says why and what
would help, exits with code 1, and the program is untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from attach.attach_targets import PlainTarget
from capabilities import needs
from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.sources.pyspy import find_pyspy
from pythons import find_pythons

pytestmark = [
    pytest.mark.timeout(120),
    needs("py-spy", "other-uid"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is not installed"),
]


def test_pyspy_without_ptrace_rights_is_a_message_not_a_crash(tmp_path: Path) -> None:
    python = find_pythons().get("3.12")
    if python is None:
        pytest.skip("Python 3.12 is not installed")
    pyspy = find_pyspy()
    assert pyspy is not None
    # The real py-spy, run as nobody: the kernel refuses it ptrace over root's program.
    wrapper = tmp_path / "py-spy-as-nobody"
    wrapper.write_text(
        f'#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups {pyspy} "$@"\n'
    )
    wrapper.chmod(0o755)
    target = PlainTarget(python, tmp_path)
    try:
        out = loopscope(
            "attach", "--headless", "--no-inject", "--duration", "5", str(target.pid),
            state=tmp_path / "state", env={"LOOPSCOPE_PYSPY": str(wrapper)},
        )  # fmt: skip
        assert out.returncode == 1, out.stderr
        assert_no_loopscope_traceback(out.stderr)
        assert f"could not observe process {target.pid} with py-spy: " in out.stderr
        assert "py-spy needs ptrace rights" in out.stderr
        assert "CAP_SYS_PTRACE" in out.stderr
        state = target.ask("state")
        assert state["modules"] == [] and not state["maps"]  # nothing was injected
        assert target.ask("ping") == {"pong": True}
        assert target.finish() == (0, "")
    finally:
        target.close()
