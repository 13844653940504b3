"""Running the ``loopscope`` command as a user would: in its own process, with a private state
directory so that its logs land where the test can find (and discard) them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any


def loopscope(
    *args: str,
    state: Path,
    cwd: Path | None = None,
    timeout: float = 90,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``env``: variables to set for loopscope on top of the test's own environment."""
    env = dict(os.environ, XDG_STATE_HOME=str(state), COLUMNS="200", **(env or {}))
    env.pop("LOOPSCOPE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def logs(state: Path) -> list[Path]:
    """The program logs loopscope wrote under ``state``."""
    return sorted((state / "loopscope" / "logs").glob("*.log"))


def log_path_from(stderr: str) -> Path:
    """The log file loopscope said it writes the program's output to."""
    match = re.search(r"its output goes to (\S+)", stderr)
    assert match, stderr
    return Path(match.group(1))


def assert_no_loopscope_traceback(stderr: str) -> None:
    """A traceback may only appear indented, as part of the program's log that loopscope shows."""
    for line in stderr.splitlines():
        assert not line.startswith("Traceback"), stderr
    assert "internal error" not in stderr, stderr


def blocking_functions(findings: list[dict[str, Any]]) -> list[str]:
    """The functions that the blocking findings of a JSON report raise (warning or worse). Info
    findings, which a loaded machine can add (blocks with no application code on their stack,
    or none sampled), say where the loop was, not what to fix."""
    return [
        f["location"]["function"]
        for f in findings
        if f["family"] == "blocking" and f["severity"] != "info"
    ]
