"""`loopscope ps`, what /proc tells about a process, and the bootstrap's manners."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from clirun import loopscope
from loopscope.attach import inspect
from loopscope.attach._bootstrap import bootstrap_code
from pythons import find_pythons

pytestmark = pytest.mark.timeout(60)

LISTENER = """
import asyncio

async def main():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""

NO_ASYNCIO = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"


def _python() -> str:
    path = find_pythons().get("3.12")
    if path is None:
        pytest.skip("Python 3.12 is not installed")
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(_python(), tmp_path)
    yield t
    t.close()


def _spawn(source: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [_python(), "-c", source], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    proc.first_line = proc.stdout.readline().strip()  # type: ignore[attr-defined]
    return proc


def _rows(tmp_path: Path) -> dict[int, dict[str, object]]:
    out = loopscope("ps", "--json", state=tmp_path / "state")
    assert out.returncode == 0, out.stderr
    return {row["pid"]: row for row in json.loads(out.stdout)}


def test_ps_lists_python_processes_with_what_it_can_tell(
    service: PlainTarget, tmp_path: Path
) -> None:
    listener = _spawn(LISTENER)
    plain = _spawn(NO_ASYNCIO)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        rows = _rows(tmp_path)
        assert rows[service.pid]["python"] == "3.12"
        assert rows[service.pid]["asyncio"] is True
        assert rows[service.pid]["agent_socket"] is None
        assert rows[listener.pid]["ports"] == [int(listener.first_line)]  # type: ignore[attr-defined]
        assert rows[plain.pid]["asyncio"] is False
        assert sleeper.pid not in rows
    finally:
        for proc in (listener, plain, sleeper):
            proc.kill()
            proc.wait()
        for proc in (listener, plain):
            assert proc.stdout is not None
            proc.stdout.close()


@needs("ptrace")
def test_ps_shows_a_listening_agent_and_the_table(service: PlainTarget, tmp_path: Path) -> None:
    out = loopscope(
        "attach", "--headless", "--duration", "0.3", "--keep-agent", str(service.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    socket_path = inspect(service.pid).agent_socket
    assert socket_path is not None and socket_path.endswith(f"/{service.pid}.sock")
    assert _rows(tmp_path)[service.pid]["agent_socket"] == socket_path
    table = loopscope("ps", state=tmp_path / "state")
    assert table.returncode == 0, table.stderr
    line = next(row for row in table.stdout.splitlines() if row.startswith(f"{service.pid} "))
    assert line.split()[1:4] == ["3.12", "yes", "listening"]
    # leave nothing behind: detach through an attach that finds the agent
    again = loopscope(
        "attach", "--headless", "--duration", "0.3", "--no-inject", str(service.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert "its agent removed itself" in again.stderr, again.stderr


def test_a_bootstrap_that_finds_nobody_listening_is_silent(tmp_path: Path) -> None:
    # What happens when a pending call runs after loopscope gave up waiting for it.
    code = bootstrap_code(str(tmp_path / "gone.sock"), "token")
    program = (
        "import __main__, asyncio, threading, time\n"
        f"CODE = {code!r}\n"
        "async def main():\n"
        "    before = set(vars(__main__))\n"
        "    exec(CODE, vars(__main__))\n"
        "    deadline = time.monotonic() + 10\n"
        "    while any(t.name == 'loopscope-bootstrap' for t in threading.enumerate()):\n"
        "        assert time.monotonic() < deadline\n"
        "        await asyncio.sleep(0.01)\n"
        "    print(sorted(set(vars(__main__)) - before))\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "[]\n", "")
