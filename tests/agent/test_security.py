"""Only the agent's own user (or root) can talk to it."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import SRC, Client, Target, wait_until

from capabilities import needs
from loopscope.agent import _paths
from loopscope.events import Notice, decode

NOBODY = 65534

# Connects as another user; prints "refused: <error>", or "eof" when the agent closed the
# connection without a word, or "data" when it said something.
_OTHER_USER = r"""
import os, socket, sys
os.setgid(65534)
os.setuid(65534)
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused:", type(e).__name__)
    raise SystemExit
s.settimeout(10)
print("data" if s.recv(4096) else "eof")
"""

pytestmark = needs("other-uid")


def _as_other_user(path: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _OTHER_USER, path], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can enter and write (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="loopscope-test-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_default_socket_is_private(open_dir: Path) -> None:
    runtime = open_dir  # everyone may enter: only loopscope's own directory keeps them out
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), PYTHONPATH=SRC)
    env.pop("LOOPSCOPE_SOCKET", None)
    code = (
        "import asyncio, loopscope.agent, sys\n"
        "async def main():\n"
        "    agent = loopscope.agent.install()\n"
        "    print(agent.socket_path, flush=True)\n"
        "    sys.stdin.readline()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        path = proc.stdout.readline().strip()
        assert path == str(runtime / "loopscope" / f"{proc.pid}.sock")
        assert stat.S_IMODE(os.stat(runtime / "loopscope").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert _as_other_user(path) == "refused: PermissionError"
        client = Client(path)  # the same user can
        client.wait_for(lambda e: e.kind == "hello")
        client.close()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert not os.path.exists(path)


def test_peer_credentials_are_checked(target_python: str, open_dir: Path) -> None:
    target = Target(target_python, open_dir)
    try:
        wait_until(lambda: os.path.exists(target.socket_path))
        os.chmod(target.socket_path, 0o777)  # only SO_PEERCRED stands in the way now
        assert _as_other_user(target.socket_path) == "eof"
        client = Client(target.socket_path)  # and the agent still serves its own user
        client.wait_for(lambda e: e.kind == "hello")
        client.close()
    finally:
        assert target.finish() == 0


def test_refuses_a_shared_socket_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(_paths.UnsafePathError, match="writable by other users"):
        _paths.ensure_private_dir(str(shared))
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, NOBODY, NOBODY)
    with pytest.raises(_paths.UnsafePathError, match="owned by uid"):
        _paths.ensure_private_dir(str(foreign))


def test_default_path_without_runtime_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    path = _paths.default_socket_path(1234)
    assert path == os.path.join(tempfile.gettempdir(), f"loopscope-{os.getuid()}", "1234.sock")


def test_a_second_client_is_closed(tmp_path: Path) -> None:
    # In a subprocess target, so the first client's connection is really held open.
    target = Target(sys.executable, tmp_path)
    first = Client(target.socket_path)
    try:
        first.wait_for(lambda e: e.kind == "loop_started")
        second = socket.socket(socket.AF_UNIX)
        second.connect(target.socket_path)
        second.settimeout(10)
        said = b""
        while data := second.recv(4096):  # one notice saying why, then end of file
            said += data
        second.close()
        notice = decode(said)
        assert isinstance(notice, Notice) and notice.level == "error"
        assert notice.message == (
            f"another client is connected to the loopscope agent in process {target.proc.pid}; "
            "it serves one client at a time"
        )
        target.send("sleep")
        target.read()
        first.wait_for(lambda e: e.kind == "block")  # the first one is still served
    finally:
        first.close()
        assert target.finish() == 0
