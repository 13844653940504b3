"""The launcher runs a program exactly as ``python SCRIPT`` / ``python -m MODULE`` would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from agent_harness import LAUNCHER

pytestmark = pytest.mark.spread  # no state shared between its tests

SHOW = """\
import sys
print(sys.argv)
print(sys.path[0])
print(__name__, __file__, __spec__ and __spec__.name)
print(sys.modules["__main__"].__dict__ is globals())
"""

PROGRAMS = {
    "app/show.py": SHOW,
    "app/exit3.py": "raise SystemExit(3)\n",
    "app/exitmsg.py": "import sys\nsys.exit('bye now')\n",
    "app/raises.py": "def f():\n    raise ValueError('boom')\n\nf()\n",
    "app/bad.py": "x = (\n",
    "app/asyncraise.py": (
        "import asyncio\n\nasync def main():\n    raise KeyError('k')\n\nasyncio.run(main())\n"
    ),
    "pkg/__init__.py": "",
    "pkg/__main__.py": SHOW,
    "pkg/mod.py": SHOW,
}

CASES = {
    "script": ["app/show.py", "a", "--b"],
    "exit-code": ["app/exit3.py"],
    "exit-message": ["app/exitmsg.py"],
    "exception": ["app/raises.py"],
    "async-exception": ["app/asyncraise.py"],
    "syntax-error": ["app/bad.py"],
    "missing-script": ["app/nope.py"],
    "module": ["-m", "pkg.mod", "x"],
    "package": ["-m", "pkg", "y"],
    "missing-module": ["-m", "nope"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_same_as_python(target_python: str, tmp_path: Path, case: str) -> None:
    for name, text in PROGRAMS.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
    args = CASES[case]

    def run(*prefix: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [target_python, *prefix, *args],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    plain = run()
    socket_path = str(tmp_path / "agent.sock")
    launched = run(LAUNCHER, LOOPSCOPE_SOCKET=socket_path)
    assert (launched.returncode, launched.stdout, launched.stderr) == (
        plain.returncode,
        plain.stdout,
        plain.stderr,
    )
    assert not os.path.exists(socket_path)  # removed at exit


def test_usage(target_python: str) -> None:
    out = subprocess.run([target_python, LAUNCHER], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "usage" in out.stderr
    assert "Traceback" not in out.stderr


def test_socket_that_cannot_be_made(target_python: str, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("print('ran')\n")
    out = subprocess.run(
        [target_python, LAUNCHER, "app.py"],
        cwd=tmp_path,
        env={**os.environ, "LOOPSCOPE_SOCKET": str(tmp_path / "missing" / "a.sock")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.startswith("loopscope: cannot serve on ")
    assert "Traceback" not in out.stderr


def test_a_module_is_named_by_its_file_before_it_starts(target_python: str, tmp_path: Path) -> None:
    """The agent's hello may be asked for between the agent's start and runpy's own setting of
    ``sys.argv[0]``: for ``-m`` the launcher sets it first to the file Python will run, so the
    program is named by it (not by ``-m`` and its first argument)."""
    for name, text in PROGRAMS.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    probe = (
        "import os, runpy, sys\n"
        "sys.path.insert(0, os.getcwd())\n"
        f"origin = runpy.run_path({LAUNCHER!r}, run_name='launcher')['_module_origin']\n"
        "for name in ('pkg.mod', 'pkg', 'nope', 'nope.sub'):\n"
        "    print(origin(name))\n"
    )
    out = subprocess.run(
        [target_python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        str(tmp_path / "pkg" / "mod.py"),
        str(tmp_path / "pkg" / "__main__.py"),
        "-m",
        "-m",
    ]
