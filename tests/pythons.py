"""The interpreters that target processes run on in the tests: every CPython 3.10-3.13 found.

Looked up in pyenv's versions (PYENV_ROOT or ~/.pyenv), then on PATH as python3.X.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")


@cache
def find_pythons() -> dict[str, str | None]:
    """{"3.10": "/path/to/python" or None, ...}"""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found: dict[str, str | None] = {}
    for version in SUPPORTED:
        candidates = sorted(root.glob(f"{version}.*/bin/python{version}"), reverse=True)
        on_path = shutil.which(f"python{version}")
        paths = [str(c) for c in candidates] + ([on_path] if on_path else [])
        found[version] = next((p for p in paths if _runs(p, version)), None)
    return found


def _runs(path: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == version
