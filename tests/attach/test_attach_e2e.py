"""`loopscope attach` end to end: plain target programs on every Python 3.10-3.15 (3.14 and 3.15
in another root, as in a container), no loopscope in their environment; attach, see the block
named, detach, and the program is as it was."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs, route_params
from clirun import assert_no_loopscope_traceback, blocking_functions, loopscope
from loopscope.attach import attach
from loopscope.sources.agent import AgentSource

pytestmark = [pytest.mark.timeout(120), pytest.mark.spread]  # no state shared between its tests


@pytest.fixture
def target(target_python: str, tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(target_python, tmp_path)
    yield t
    t.close()


def _assert_left_as_it_was(target: PlainTarget) -> None:
    state = target.ask("state")
    assert [t for t in state["threads"] if t.startswith("loopscope")] == []
    assert state["main_names"] == []  # the bootstrap defined nothing in __main__
    assert state["maps"] is False  # the injected library was unloaded
    assert state["set_running_loop"] is False
    assert target.ask("ping") == {"pong": True}
    code, stderr = target.finish()
    assert (code, stderr) == (0, "")


def _version(python: str) -> tuple[int, ...]:
    return tuple(int(n) for n in Path(python).name.removeprefix("python").split("."))


def _default_route(python: str) -> str:
    return "remote-exec" if _version(python) >= (3, 14) else "ptrace"


@pytest.mark.parametrize("method", route_params("ptrace", "gdb", "pyinjector", "remote-exec"))
def test_attach_headless_names_the_blocking_function(
    target_python: str, target: PlainTarget, method: str, tmp_path: Path
) -> None:
    if method == "remote-exec" and _version(target_python) < (3, 14):
        pytest.skip("sys.remote_exec is Python 3.14's")
    out = loopscope(
        "attach", "--headless", "--duration", "2.5", "--json", "--method", method,
        str(target.pid), state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    assert f"agent injected with {method}" in out.stderr
    assert "its agent removed itself" in out.stderr
    report = json.loads(out.stdout)
    assert report["target"]["pid"] == target.pid
    assert blocking_functions(report["findings"]) == ["render_report"], report
    (render,) = [f for f in report["findings"] if f["title"].startswith("`render_report`")]
    assert render["location"]["file"].endswith("service.py")
    assert not os.path.exists(f"/tmp/loopscope-{os.getuid()}/{target.pid}.sock")
    _assert_left_as_it_was(target)


@needs("ptrace")
def test_twenty_attach_detach_cycles(target_python: str, target: PlainTarget) -> None:
    for _ in range(20):
        attached = attach(target.pid, timeout=10)
        assert attached.route == _default_route(target_python)
        source = AgentSource(attached.socket_path, connect_timeout=5)
        kinds = []
        detached = False
        for event in source.events():
            kinds.append(event.kind)
            # Events come in batches: more lag samples may follow the one that asked to detach.
            if event.kind == "lag" and not detached:
                assert source.detach()
                detached = True
        assert kinds[:2] == ["source_state", "hello"]
        assert "loop_started" in kinds and kinds[-1] == "source_state"
        _wait_gone(attached.socket_path)
        assert target.ask("ping") == {"pong": True}
    _assert_left_as_it_was(target)


def _wait_gone(path: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} still there"
        time.sleep(0.005)


IDLE = """
import asyncio

async def main():
    print("ready", flush=True)
    await asyncio.Event().wait()  # nothing scheduled: the loop sleeps in epoll_wait for good

asyncio.run(main())
"""


@needs("ptrace")
def test_a_loop_idle_in_its_selector_is_woken(target_python: str, tmp_path: Path) -> None:
    script = tmp_path / "idle.py"
    script.write_text(IDLE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    proc = subprocess.Popen(
        [target_python, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        out = loopscope(
            "attach", "--headless", "--duration", "0.5", "--timeout", "5", str(proc.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert "idle in its event loop's selector" in out.stderr
        assert f"agent injected with {_default_route(target_python)}" in out.stderr
        assert proc.poll() is None
    finally:
        proc.kill()
        _, stderr = proc.communicate()
    assert stderr == b""
