"""A program started with Python's opt-out from remote debugging (PYTHON_DISABLE_REMOTE_DEBUG,
-X disable_remote_debug; 3.14 honours them for sys.remote_exec) gets no agent injected by any
route, on any Python version: loopscope says why and what it can do instead."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

import pytest
from attach_targets import SERVICE

from clirun import assert_no_loopscope_traceback, loopscope
from loopscope.attach._ladder import remote_debug_disabled
from pythons import find_pythons, missing_reason


@pytest.mark.parametrize(
    ("options", "env", "said"),
    [
        ((), {"PYTHON_DISABLE_REMOTE_DEBUG": "1"}, "PYTHON_DISABLE_REMOTE_DEBUG set"),
        (("-X", "disable_remote_debug"), {}, "-X disable_remote_debug"),
        (("-u", "-Xdisable_remote_debug"), {}, "-X disable_remote_debug"),
    ],
    ids=["environment", "-X", "-Xjoined"],
)
@pytest.mark.parametrize("version", ["3.12", "3.14"])  # 3.14: sys.remote_exec would be the route
def test_a_program_that_opted_out_gets_no_agent(
    tmp_path: Path, options: tuple[str, ...], env: dict[str, str], said: str, version: str
) -> None:
    python = find_pythons().get(version)
    if python is None:
        pytest.skip(missing_reason(version))
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    proc = subprocess.Popen(
        [python, *options, str(script), "-X", "not-for-python"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**environ, **env},
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert json.loads(proc.stdout.readline()) == {"ready": True}
        assert remote_debug_disabled(proc.pid) == said
        method = ("--method", "remote-exec") if version == "3.14" else ()
        out = loopscope(
            "attach", "--headless", "--duration", "1", *method, str(proc.pid), state=tmp_path
        )  # fmt: skip
        assert out.returncode == 1, out.stderr
        assert_no_loopscope_traceback(out.stderr)
        assert f"process {proc.pid} was started with {said}" in out.stderr
        assert f"loopscope attach --no-inject {proc.pid}" in out.stderr
        proc.stdin.write(b"state\n")
        proc.stdin.flush()
        readable, _, _ = select.select([proc.stdout], [], [], 15)
        assert readable
        state = json.loads(proc.stdout.readline())
        assert state["modules"] == [] and not state["maps"]  # nothing was injected
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_a_script_argument_is_not_an_opt_out(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["sleep", "30", "-X", "disable_remote_debug"],
        env={k: v for k, v in os.environ.items() if k != "PYTHON_DISABLE_REMOTE_DEBUG"},
    )
    try:
        assert remote_debug_disabled(proc.pid) is None
    finally:
        proc.kill()
        proc.wait()
