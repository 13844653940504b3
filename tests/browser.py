"""A real headless Chromium for the tests of pages loopscope makes (Debian's `chromium`;
`make chromium` installs it). Tests that need it call `chromium_or_skip()`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


def chromium_or_skip() -> str:
    """The path of chromium, or skip the test saying why there is none."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.skip("no chromium on this machine (make chromium installs Debian's package)")


def run(chromium: str, profile: Path, *args: str, timeout: float = 60) -> str:
    """Run chromium headless with a private profile; its stdout."""
    result = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout
