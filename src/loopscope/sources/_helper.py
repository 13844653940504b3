"""A helper process that reads a target from outside with the target's own interpreter (3.14+'s
``_remote_debugging``, or `_unwind` before 3.14), and the part of a source that runs one: the
remote tasks and remote stacks sources each start a helper, read the JSON object it prints a line
at a time, and end it.

The helper reads its stdin only to notice that it ends: closing it (`close_input`) makes the
helper end at once, from any thread, where a signal would not reach it (run through nsenter, the
helper is nsenter's child).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from loopscope.attach._proc import exists as process_exists
from loopscope.events import SourceState

# The start of every helper's code (run by the target's own interpreter, -I -S): ``rd`` is the
# module that reads the target (`REMOTE_DEBUGGING`, or `_unwind`'s code before it), ``line(f)`` a
# frame's line (3.15 gives it as location.lineno, 3.14 and `_unwind` as lineno), and ``fail(e)``
# reports an error as the helper's last line and ends it.
REMOTE_DEBUGGING = "import _remote_debugging as rd\n"
HELPER_PRELUDE = r"""
import json, select, sys, time


def line(f):
    location = getattr(f, "location", None)
    return (getattr(location, "lineno", None) if location is not None
            else getattr(f, "lineno", 0)) or 0


def fail(e):
    print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}), flush=True)
    sys.exit(1)
"""


class HelperSource:
    """A source that reads process ``pid`` through a helper: its `events` starts one with
    `_start`, reads it with `_reports` and ends it with `_stop`. `close` (from any thread) ends
    the helper, and `events` after it. ``live`` is whether the helper has reported; ``reason``
    why it is not or no longer reading."""

    source_name = ""

    def __init__(self, pid: int, alive: Callable[[], bool] | None) -> None:
        self.pid = pid
        self._alive = alive or (lambda: process_exists(pid))
        self._closed = threading.Event()
        self._process: subprocess.Popen[str] | None = None
        self.live = False
        self.reason = ""

    def close(self) -> None:
        """Stop reading: the helper is ended, and `events` ends after it (whichever thread)."""
        self._closed.set()
        close_input(self._process)

    def _start(self, argv: list[str] | None, why: str | None) -> subprocess.Popen[str] | None:
        """Start the helper ``argv``; None, with ``reason`` set, when it is not started (see
        `start_helper`)."""
        started = start_helper(argv, why, self._closed)
        if isinstance(started, str):
            self.reason = started
            return None
        self._process = started
        return started

    def _reports(self, process: subprocess.Popen[str]) -> Iterator[dict[str, Any]]:
        """The helper's reports, until it ends, the source is closed or it reports an error
        (then kept as ``reason``)."""
        for report in helper_lines(process, self._closed):
            if "error" in report:
                self.reason = str(report["error"])
                return
            yield report

    def _stop(self) -> None:
        stop_helper(self._process)

    def _end(self, failed: str) -> SourceState:
        """The last state, once the helper has ended: the state ``failed`` when it ended for a
        ``reason`` other than the program's exit or `close`."""
        if not self._alive():
            return self._state("ended", "the program exited")
        if self.reason and not self._closed.is_set():
            return self._state(failed, self.reason)
        return self._state("ended", "closed")

    def _state(self, state: str, detail: str) -> SourceState:
        return SourceState(t=time.time(), source=self.source_name, state=state, detail=detail)


def start_helper(
    argv: list[str] | None, why: str | None, closed: threading.Event
) -> subprocess.Popen[str] | str:
    """Start a helper that reads the target through the target's own interpreter: the process,
    or why it is not started (``why`` the interpreter cannot, the source closed, no
    interpreter, or it would not start)."""
    if argv is None or closed.is_set():
        return why or ("closed" if closed.is_set() else "no interpreter found")
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except OSError as e:
        return f"cannot run the target's interpreter: {e}"


def helper_lines(
    process: subprocess.Popen[str], closed: threading.Event
) -> Iterator[dict[str, Any]]:
    """A helper's JSON objects, one a line, until it ends or ``closed`` is set; a line that is
    not one is skipped."""
    assert process.stdout is not None
    for line in process.stdout:
        if closed.is_set():
            return
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


def close_input(process: subprocess.Popen[str] | None) -> None:
    """Close a helper's stdin: it ends at once (from any thread), and its output with it."""
    if process is not None and process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


def stop_helper(process: subprocess.Popen[str] | None) -> None:
    """End a helper process (its stdin closed, then terminated, killed if it must be) and
    close its output."""
    if process is None:
        return
    close_input(process)
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
