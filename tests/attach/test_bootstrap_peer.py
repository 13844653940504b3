"""The bootstrap's socket answers only the process loopscope injected into, presenting the token
it was given: any other process, or a wrong token, gets nothing (least of all the agent's code)
and loopscope goes on waiting for the real one."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from capabilities import needs
from loopscope.attach._bootstrap import BootstrapServer
from loopscope.attach._errors import AttachError

# Connects with each token read from stdin in turn (one line: path, then tokens), saying what
# it got back for each: "nothing" (closed without a word) or the answer's keys.
PEER = r"""
import json, os, socket, sys
path, *tokens = sys.stdin.readline().split()
for token in tokens:
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    s.settimeout(20)
    try:
        s.sendall(json.dumps({"token": token, "pid": os.getpid(), "python": "3.x",
                              "asyncio": False, "main_loop": False}).encode() + b"\n")
        answer = s.makefile("rb").readline()
    except (BrokenPipeError, ConnectionResetError):  # hung up on before it finished speaking
        answer = b""
    print(json.dumps(sorted(json.loads(answer)) if answer else "nothing"), flush=True)
    s.close()
"""


def _peer() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PEER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(peer: subprocess.Popen[str], line: str) -> list[object]:
    out, err = peer.communicate(line + "\n", timeout=60)
    assert peer.returncode == 0, err
    return [json.loads(x) for x in out.splitlines()]


def test_only_the_target_with_the_token_is_answered() -> None:
    target = _peer()  # the process loopscope "injected into"
    impostor = _peer()
    server = BootstrapServer(target.pid)
    errors: list[AttachError] = []

    def serve() -> None:
        try:
            server.serve(60, lambda: True)
        except AttachError as e:
            errors.append(e)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert stat.S_IMODE(os.stat(Path(server.path).parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
        # Another process, even with the right token: closed without a word.
        assert _run(impostor, f"{server.path} {server.token}") == ["nothing"]
        assert thread.is_alive() and not errors  # still waiting for the target
        # The target with a wrong token, then with the right one: only the second is answered
        # (it says asyncio is not imported, so the answer is "install: false" and no agent).
        wrong = "0" * len(server.token)
        assert _run(target, f"{server.path} {wrong} {server.token}") == ["nothing", ["install"]]
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert [e.reason for e in errors] == ["no-asyncio"]
    finally:
        server.close()
        thread.join(timeout=30)
        for proc in (target, impostor):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert not os.path.exists(Path(server.path).parent)


def test_the_token_is_random_and_not_in_the_socket_name() -> None:
    with BootstrapServer(os.getpid()) as one, BootstrapServer(os.getpid()) as two:
        assert one.token != two.token and len(one.token.replace("-", "")) == 32
        assert one.token not in one.path
        assert one.token in one.code or "base64" in one.code  # it travels only in the bootstrap
        # A constant of the bootstrap's source: one of letters, digits and '_' only would be
        # interned, and kept in the target for good, one per attach.
        assert not all(c.isalnum() or c == "_" for c in one.token)


@needs("other-uid")
def test_another_user_cannot_reach_the_bootstrap_socket() -> None:
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setgroups([]); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except OSError as e:\n"
        "    print(type(e).__name__)\n"
        "else:\n"
        "    print('connected')\n"
    )
    with BootstrapServer(os.getpid()) as server:
        out = subprocess.run(
            [sys.executable, "-c", code, server.path], capture_output=True, text=True, timeout=30
        )
    assert out.stdout.strip() == "PermissionError", out.stderr
