"""`_unwind`, the reader of a 3.10-3.13 target's stack from outside: run by each of those
interpreters (pyenv's builds, and the machine's own /usr/bin one, a distribution's build), as
`remote_stacks` runs it, against real target processes of the same interpreter.
Its line tables are checked against the interpreter's own reading of every instruction of
asyncio's code, its stacks against what the target says of itself, and a target it cannot read
gives an error, never a stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from capabilities import needs
from pythons import find_pythons, missing_reason

SOURCES = Path(__file__).resolve().parents[2] / "src" / "loopscope" / "sources"
OLD = ("3.10", "3.11", "3.12", "3.13")

pytestmark = pytest.mark.timeout(60)

# Every instruction of asyncio's and json's code: the line `_unwind` reads from the line table,
# and the line the interpreter gives (co_lines, 3.10+).
LINES = r"""
import sys
sys.path.insert(0, sys.argv[1])
import _unwind, asyncio.base_events, asyncio.tasks, json.decoder, types

old = sys.version_info < (3, 11)
checked = wrong = 0
examples = []


def codes(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from codes(const)


for module in (asyncio.base_events, asyncio.tasks, json.decoder):
    source = open(module.__file__).read()
    for code in codes(compile(source, module.__file__, "exec")):
        for start, end, line in code.co_lines():
            for offset in range(start, end, 2):
                got = _unwind.line_of(code.co_linetable, code.co_firstlineno, offset, old)
                checked += 1
                if got != (line or 0):
                    wrong += 1
                    examples.append([code.co_name, offset, line, got])
print(json.dumps({"checked": checked, "wrong": wrong, "examples": examples[:5]}))
"""

# A target parked at a known place, its names not all ASCII; it prints its own stack (innermost
# first, as `_unwind` reads it) and waits.
TARGET = r"""
import sys, time


def attendre_ü():
    frames = []
    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        frames.append([code.co_filename, frame.f_lineno,
                       getattr(code, "co_qualname", code.co_name)])
        frame = frame.f_back
    print(json.dumps(frames), flush=True)
    time.sleep(60)


class Tâche:
    def lancer(self):
        attendre_ü()


import json
Tâche().lancer()
"""

READ = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import _unwind
try:
    (thread,) = _unwind.RemoteUnwinder(int(sys.argv[2])).get_stack_trace()
except _unwind.UnwindError as e:
    print(json.dumps({"error": str(e)}))
else:
    print(json.dumps({"thread": thread.thread_id,
                      "frames": [[f.filename, f.lineno, f.funcname] for f in thread.frame_info]}))
"""


def _python(version: str) -> str:
    """pyenv's build of ``version``, or ``system``: the machine's own (a distribution's build:
    optimised differently, not position-independent on Debian)."""
    if version == "system":
        system = [f"/usr/bin/python{v}" for v in OLD if os.access(f"/usr/bin/python{v}", os.X_OK)]
        if not system:
            pytest.skip(f"this machine has no /usr/bin/python of {', '.join(OLD)}")
        return system[0]
    found = find_pythons().get(version)
    if found is None:
        pytest.skip(missing_reason(version))
    return found


def _run(python: str, code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [python, "-I", "-S", "-c", code, str(SOURCES), *args],
        capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


Parked = tuple[str, "subprocess.Popen[str]", list[list[Any]]]


@pytest.fixture
def parked(tmp_path: Path) -> Iterator[Callable[[str], Parked]]:
    """Starts a target of a version: (its interpreter, the target, the stack it gave of
    itself)."""
    started: list[subprocess.Popen[str]] = []

    def start(version: str) -> Parked:
        python = _python(version)
        script = tmp_path / "tâche_ü.py"
        script.write_text(TARGET, encoding="utf-8")
        proc = subprocess.Popen([python, str(script)], stdout=subprocess.PIPE, text=True)
        started.append(proc)
        assert proc.stdout is not None
        frames = json.loads(proc.stdout.readline())
        frames[0][1] = TARGET.splitlines().index("    time.sleep(60)") + 1  # where it waits
        return python, proc, frames

    yield start
    for proc in started:
        proc.kill()
        proc.communicate()


@pytest.mark.parametrize("version", OLD)
def test_the_line_tables_are_read_as_the_interpreter_reads_them(version: str) -> None:
    result = _run(_python(version), LINES)
    assert result["checked"] > 5000, result
    assert result["wrong"] == 0, result


@needs("ptrace")  # reading another process's memory takes ptrace rights over it
@pytest.mark.parametrize("version", [*OLD, "system"])
def test_a_targets_stack_is_read_as_it_gives_it(
    version: str, parked: Callable[[str], Parked]
) -> None:
    python, proc, expected = parked(version)
    result = _run(python, READ, str(proc.pid))
    assert result.get("thread") == proc.pid, result
    assert result["frames"] == expected
    assert result["frames"][0][2] == "attendre_ü"
    assert result["frames"][1][2] in ("lancer", "Tâche.lancer")  # (3.10 has no qualified name)


@needs("ptrace")
def test_a_target_of_another_interpreter_is_refused(parked: Callable[[str], Parked]) -> None:
    found = [v for v in OLD if find_pythons().get(v)]
    if len(found) < 2:
        pytest.skip(f"needs two of Python {', '.join(OLD)}; found {', '.join(found) or 'none'}")
    _, proc, _ = parked(found[0])
    result = _run(_python(found[1]), READ, str(proc.pid))
    assert result == {"error": f"process {proc.pid} does not run this interpreter's binary"}


def test_an_interpreter_it_cannot_read_says_so() -> None:
    if sys.version_info < (3, 14):
        python = find_pythons().get("3.14") or find_pythons().get("3.15")
        if python is None:
            pytest.skip(missing_reason("3.14"))
    else:
        python = sys.executable
    result = _run(python, READ, "1")
    assert result["error"].startswith("reads 3.10-3.13 only (this is 3.1"), result
