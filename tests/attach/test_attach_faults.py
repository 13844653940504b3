"""`loopscope attach` on bad input and faults: each a clear paragraph, a non-zero exit code, no
traceback; and the ladder's other steps (an agent already listening, a loop that starts later)."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from attach_targets import PlainTarget

from capabilities import needs
from clirun import assert_no_loopscope_traceback, blocking_functions, loopscope
from loopscope.attach import AttachError, attach
from loopscope.attach._proc import tracer
from loopscope.attach._routes import ROUTES
from loopscope.sources.agent import AgentSource
from pythons import find_pythons

pytestmark = pytest.mark.timeout(120)
PY = "3.12"

NO_ASYNCIO = """
import time
while True:
    time.sleep(0.02)
"""

# asyncio imported, but the main thread sits in one long C call: it never reaches a safe point.
STUCK = """
import asyncio, time
print("ready", flush=True)
time.sleep(600)
"""

# A process pool's worker, in shape: asyncio imported, no loop, the main thread blocked in a
# read. It answers each line it reads with the threads started in it so far.
IDLE_WORKER = """
import asyncio, json, sys, threading
started = []
_start = threading.Thread.start


def start(self):
    started.append(self.name)
    _start(self)


threading.Thread.start = start
print("ready", flush=True)
while sys.stdin.readline():
    print(json.dumps({"started": started}), flush=True)
"""

# No loop at first; one starts when the flag file appears.
LATE_LOOP = """
import asyncio, os, time


def render_report():
    end = time.thread_time() + 0.04  # CPU, not wall time: a loaded machine stretches it
    while time.thread_time() < end:
        pass


async def main():
    for _ in range(40):
        await asyncio.sleep(0.1)
        render_report()


while not os.path.exists(FLAG):
    time.sleep(0.02)
asyncio.run(main())
"""


def _python(version: str = PY) -> str:
    path = find_pythons().get(version)
    if path is None:
        pytest.skip(f"Python {version} is not installed")
    return path


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PlainTarget]:
    t = PlainTarget(_python(), tmp_path)
    yield t
    t.close()


def _start(source: str, directory: Path, python: str | None = None) -> subprocess.Popen[bytes]:
    script = directory / "program.py"
    script.write_text(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    return subprocess.Popen(
        [python or _python(), str(script)],
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _wait_for_line(stream: object, text: str, timeout: float = 30.0) -> str:
    """Read ``stream`` (a pipe) until a line contains ``text``; everything read so far."""
    fd = stream.fileno()  # type: ignore[attr-defined]
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {text!r} in {seen.decode(errors='replace')!r}"
        readable, _, _ = select.select([fd], [], [], left)
        if readable:
            data = os.read(fd, 65536)
            assert data, f"closed before {text!r}: {seen.decode(errors='replace')!r}"
            seen += data
    return seen.decode(errors="replace")


def _loopscope_popen(*args: str, state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopscope", *args],
        env=dict(os.environ, XDG_STATE_HOME=str(state)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _fails(out: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert_no_loopscope_traceback(out.stderr)
    for phrase in phrases:
        assert phrase in out.stderr, out.stderr


def test_no_such_process(tmp_path: Path) -> None:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) + 1
    out = loopscope("attach", "--headless", str(pid), state=tmp_path)
    _fails(out, f"there is no process with pid {pid}")


def test_not_a_python_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        out = loopscope("attach", "--headless", str(proc.pid), state=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    _fails(out, "is not a Python process")


def test_unsupported_python(tmp_path: Path) -> None:
    proc = _start(NO_ASYNCIO, tmp_path, _python_39())
    try:
        out = loopscope("attach", "--headless", str(proc.pid), state=tmp_path / "state")
    finally:
        _stop(proc)
    _fails(out, "runs Python 3.9", "supports CPython 3.10 to 3.15")


@pytest.mark.parametrize(
    ("name", "said"),
    [("python3.16", "runs Python 3.16; loopscope's agent supports CPython 3.10 to 3.15"),
     ("pypy3.10", "runs PyPy, not CPython")],
)  # fmt: skip
def test_an_interpreter_loopscope_does_not_know(tmp_path: Path, name: str, said: str) -> None:
    """One line and exit code 1, before anything touches the process: no offsets are guessed."""
    program = tmp_path / name  # a process that the kernel names so; a sleep, in fact
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    # started by a relative path: the message shows the command line whole (up to 80
    # characters), whatever the length of the folder the tests run in
    proc = subprocess.Popen([f"./{name}", "60"], cwd=tmp_path)
    try:
        out = loopscope("attach", "--headless", str(proc.pid), state=tmp_path / "state")
        assert tracer(proc.pid) == 0 and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    _fails(out, f"process {proc.pid} (./{name} 60) {said}")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def _python_39() -> str:
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(root.glob("3.9.*/bin/python3.9"))
    if not found:
        pytest.skip("Python 3.9 is not installed")
    return str(found[-1])


@needs("other-uid")
def test_permission_denied_says_which_rights_are_needed(service: PlainTarget) -> None:
    # Import everything as root, then become nobody and attach to root's process.
    code = (
        "import os, sys\n"
        "import loopscope.cli, loopscope.commands.attach\n"
        "os.setgid(65534); os.setgroups([]); os.setuid(65534)\n"
        f"sys.exit(loopscope.cli.main(['attach', '--headless', '{service.pid}']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    _fails(out, "permission denied", "ptrace_scope", "root", "CAP_SYS_PTRACE")
    assert service.ask("ping") == {"pong": True}


def test_gdb_unavailable_is_said(service: PlainTarget, tmp_path: Path) -> None:
    out = loopscope(
        "attach", "--headless", "--method", "gdb", str(service.pid),
        state=tmp_path / "state", env={"PATH": "/nonexistent"},
    )  # fmt: skip
    _fails(out, "cannot inject with gdb: gdb is not installed")


def test_pyinjector_unavailable_is_said(service: PlainTarget, tmp_path: Path) -> None:
    out = loopscope(
        "attach", "--headless", "--method", "pyinjector", str(service.pid),
        state=tmp_path / "state",
        env={"CC": "/bin/false", "XDG_CACHE_HOME": str(tmp_path / "cache")},
    )  # fmt: skip
    _fails(out, "cannot inject with pyinjector: building", "/bin/false exited with code 1")


@needs("gdb")
def test_auto_falls_back_to_the_next_route_and_says_so(
    service: PlainTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unusable(info: object) -> str:
        return "not on this machine"

    monkeypatch.setattr(ROUTES["ptrace"], "unavailable", unusable)
    said: list[str] = []
    attached = attach(service.pid, progress=said.append)
    try:
        assert attached.route == "gdb"
        assert "not using ptrace: not on this machine" in said
    finally:
        source = AgentSource(attached.socket_path, connect_timeout=5)
        for event in source.events():
            if event.kind == "hello":
                assert source.detach()
    assert service.ask("ping") == {"pong": True}


def test_no_route_at_all(service: PlainTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ROUTES:
        monkeypatch.setattr(ROUTES[name], "unavailable", lambda info, name=name: f"no {name}")
    with pytest.raises(AttachError) as raised:
        attach(service.pid)
    assert raised.value.reason == "no-route"
    assert raised.value.message.startswith(f"no way to inject the agent into process {service.pid}")
    assert "ptrace: no ptrace" in raised.value.message


def test_no_inject_without_an_agent_or_pyspy(service: PlainTarget, tmp_path: Path) -> None:
    # Without an agent --no-inject falls back to py-spy (tests/pyspy); without py-spy either,
    # loopscope says so and injects nothing.
    out = loopscope(
        "attach", "--headless", "--no-inject", str(service.pid),
        state=tmp_path, env={"LOOPSCOPE_PYSPY": str(tmp_path / "no-py-spy")},
    )  # fmt: skip
    _fails(out, "no loopscope agent in process", "--no-inject", "could not observe process")
    assert service.ask("state")["modules"] == []


@needs("ptrace")
def test_asyncio_not_imported(tmp_path: Path) -> None:
    proc = _start(NO_ASYNCIO, tmp_path)
    try:
        out = loopscope("attach", "--headless", str(proc.pid), state=tmp_path / "state")
        assert proc.poll() is None
    finally:
        _stop(proc)
    _fails(out, "has not imported asyncio", "Nothing was installed")


@needs("ptrace")
def test_target_that_never_reaches_a_safe_point(tmp_path: Path) -> None:
    proc = _start(STUCK, tmp_path)
    try:
        _wait_for_line(proc.stdout, "ready")
        out = loopscope(
            "attach", "--headless", "--timeout", "1", str(proc.pid), state=tmp_path / "state"
        )
    finally:
        _stop(proc)
    _fails(out, "did not run the bootstrap within 1 s", "--timeout")


@needs("ptrace")
def test_an_attach_that_gave_up_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    """Its bootstrap stays queued in the process until the main thread next runs Python code,
    after loopscope has gone: it then does nothing, and the process runs on untraced."""
    script = tmp_path / "worker.py"
    script.write_text(IDLE_WORKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    proc = subprocess.Popen(
        [_python(), str(script)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None
        _wait_for_line(proc.stdout, "ready")
        out = loopscope(
            "attach", "--headless", "--timeout", "1", str(proc.pid), state=tmp_path / "state"
        )
        _fails(out, "did not run the bootstrap within 1 s")
        assert tracer(proc.pid) == 0
        proc.stdin.write(b"work\n")
        proc.stdin.flush()
        answer = _wait_for_line(proc.stdout, "]}")
        assert json.loads(answer) == {"started": []}
    finally:
        _stop(proc)
        if proc.stdin is not None:
            proc.stdin.close()


@needs("ptrace")
def test_target_exits_during_attach(tmp_path: Path) -> None:
    proc = _start(STUCK, tmp_path)
    attach = None
    try:
        _wait_for_line(proc.stdout, "ready")
        attach = _loopscope_popen(
            "attach", "--headless", "--timeout", "60", str(proc.pid), state=tmp_path / "state"
        )
        seen = _wait_for_line(attach.stderr, "waiting for process")
        proc.kill()
        _, rest = attach.communicate(timeout=30)
    finally:
        _stop(proc)
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()
    stderr = seen + rest
    assert attach.returncode == 1, stderr
    assert f"process {proc.pid} exited during attach" in stderr
    assert_no_loopscope_traceback(stderr)


@needs("ptrace")
def test_target_that_exits_while_watched_ends_the_session(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    # Runs until the flag file appears, then blocks once more and exits.
    program = (
        "import asyncio, os, time\n"
        "def render_report():\n"
        "    time.sleep(0.15)\n"  # one block past the blocking rule's 100 ms total
        "async def main():\n"
        "    print('ready', flush=True)\n"
        f"    while not os.path.exists({str(flag)!r}):\n"
        "        await asyncio.sleep(0.02)\n"
        "    render_report()\n"
        "    await asyncio.sleep(0.3)\n"
        "asyncio.run(main())\n"
    )
    proc = _start(program, tmp_path)
    attach = None
    try:
        _wait_for_line(proc.stdout, "ready")
        attach = _loopscope_popen(
            "attach", "--headless", "--duration", "60", "--json", str(proc.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        # the first summary line: the agent observes the loop and loopscope reads its events
        seen = _wait_for_line(attach.stderr, "s lag p50")
        flag.touch()
        stdout, rest = attach.communicate(timeout=30)
    finally:
        _stop(proc)
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()
    assert attach.returncode == 0, seen + rest
    assert f"process {proc.pid} exited" in rest
    report = json.loads(stdout)
    assert report["duration_s"] < 30
    functions = blocking_functions(report["findings"])
    assert functions == ["render_report"], report


@needs("ptrace")
def test_loop_that_starts_after_attach_is_observed(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    proc = _start(LATE_LOOP.replace("FLAG", repr(str(flag))), tmp_path)
    attach = None
    try:
        attach = _loopscope_popen(
            "attach", "--headless", "--duration", "4", "--json", str(proc.pid),
            state=tmp_path / "state",
        )  # fmt: skip
        seen = _wait_for_line(attach.stderr, "no asyncio event loop is running")
        flag.touch()
        stdout, rest = attach.communicate(timeout=60)
    finally:
        _stop(proc)
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()
    assert attach.returncode == 0, seen + rest
    report = json.loads(stdout)
    functions = blocking_functions(report["findings"])
    assert functions == ["render_report"], report


@needs("ptrace")
def test_existing_agent_is_used_and_kept(service: PlainTarget, tmp_path: Path) -> None:
    first = loopscope(
        "attach", "--headless", "--duration", "0.5", "--keep-agent", str(service.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "left the agent listening" in first.stderr
    second = loopscope(
        "attach", "--headless", "--duration", "0.5", "--no-inject", str(service.pid),
        state=tmp_path / "state",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert "connected to the agent already listening" in second.stderr
    assert "its agent removed itself" in second.stderr
    assert service.ask("ping") == {"pong": True}
    assert service.finish() == (0, "")
