"""``--web``: the dashboard served with textual-serve, opened in a real headless Chromium."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import chromium_or_skip
from clirun import assert_no_loopscope_traceback, loopscope
from devtools import CATCH_TERMINAL, SCREEN_TEXT, Browser

BLOCKERS = ("hash_password", "render_report", "load_config", "fetch_partner_rates")


class Served:
    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self.log = log

    def stderr(self) -> str:
        return self.log.read_text()


def _wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _start(args: list[str], state: Path, log: Path) -> subprocess.Popen[str]:
    """``loopscope ARGS`` in the background, its stderr to ``log``."""
    env = dict(os.environ, XDG_STATE_HOME=str(state))
    env.pop("LOOPSCOPE_DEBUG", None)
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "loopscope", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            env=env,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("web")
    log = state / "stderr.txt"
    process = _start(["demo", "blocking", "--web", "--listen", "127.0.0.1:0"], state, log)
    try:
        _wait_for(lambda: "serving the dashboard on" in log.read_text(), 30, "the address")
        match = re.search(r"serving the dashboard on (http://127\.0\.0\.1:\d+/)", log.read_text())
        assert match, log.read_text()
        yield Served(process, match.group(1), log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _descendants(pid: int) -> dict[int, str]:
    """The processes under ``pid``: their command lines by pid."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            commands[int(entry.name)] = (
                (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    out, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = commands.get(child, "")
            todo.append(child)
    return out


def _demos(server: int) -> set[int]:
    """The demo programs under ``server``. A demo's own children are not demos, though a child
    it forks to run its partner service shows the demo's command line until it execs."""
    found = {
        pid for pid, command in _descendants(server).items() if "loopscope.demos.service" in command
    }
    return found.difference(*(_descendants(pid) for pid in found))


async def _open(
    chromium: str, profile: Path, url: str, shot: Path, server: int, demos: set[int]
) -> str:
    """The text on the page's terminal once it names a blocking function; ``demos`` gets the
    pids of the demo programs the server's sessions run meanwhile."""
    browser = Browser(chromium, profile)
    try:
        await browser.connect()
        await browser.send("Page.enable")
        await browser.send("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
        await browser.send("Page.navigate", url=url)
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = await browser.evaluate(SCREEN_TEXT) or ""
            demos.update(_demos(server))
            if "Hot blocking frames" in text and any(name in text for name in BLOCKERS):
                break
            await asyncio.sleep(0.25)
        await browser.screenshot(shot)
        return str(text)
    finally:
        await browser.close()


def test_the_dashboard_in_a_browser_names_the_blocking_function(
    served: Served, tmp_path: Path
) -> None:
    chromium = chromium_or_skip()
    shot = tmp_path / "web.png"
    demos: set[int] = set()
    screen = asyncio.run(
        _open(chromium, tmp_path / "profile", served.url, shot, served.process.pid, demos)
    )
    assert "Loop lag" in screen and "Hot blocking frames" in screen, screen
    assert any(name in screen for name in BLOCKERS), screen
    assert shot.read_bytes().startswith(b"\x89PNG")
    # The page ran its own session, which started the demo; closing the page quit it, and with
    # it the demo.
    assert len(demos) == 1, demos
    (pid,) = demos
    _wait_for(lambda: not _alive(pid), 30, f"the demo (pid {pid}) to stop")
    assert served.process.poll() is None  # the server goes on for the next page


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def test_replay_checks_the_file_before_serving(tmp_path: Path) -> None:
    log = tmp_path / "stderr.txt"
    process = _start(["replay", "missing-is-checked-first.lsrec", "--web"], tmp_path, log)
    assert process.wait(30) == 2
    assert "no such file" in log.read_text()


def test_a_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = loopscope("demo", "--web", "--listen", f"127.0.0.1:{port}", state=tmp_path)
    assert result.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert_no_loopscope_traceback(result.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--listen", "127.0.0.1:8000"], "--listen needs --web"),
        (["demo", "--web", "--headless"], "cannot be --headless"),
        (["demo", "--web", "--listen", "nowhere"], "give HOST:PORT"),
        (["demo", "--web", "--listen", "127.0.0.1:70000"], "give HOST:PORT"),
        (["demo", "nosuch", "--web"], "no demo named 'nosuch'"),
        (["demo", "--web", "--record", "x.lsrec"], "press r in the page"),
        (["run", "--web", "missing.py"], "no such file: missing.py"),
        (["attach", "--web", "999999999"], "no such process"),
    ],
)
def test_bad_input(tmp_path: Path, args: list[str], message: str) -> None:
    result = loopscope(*args, state=tmp_path, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert_no_loopscope_traceback(result.stderr)


def test_ctrl_c_stops_the_server(served: Served) -> None:
    """Last: it ends the module's server."""
    before = _descendants(served.process.pid)
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(20) == 0
    _wait_for(lambda: not any(_alive(pid) for pid in before), 20, f"{before} to end")
