"""A program that runs work in other processes, under `loopscope run`: from 3.14 multiprocessing
starts them with forkserver on Linux (before, fork). The program's results are unchanged, and no
worker carries an agent's threads, whichever way it was started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clirun import assert_no_loopscope_traceback, loopscope
from pythons import find_pythons, missing_reason

POOL = """\
import asyncio, concurrent.futures, json, multiprocessing, threading


def work(x):
    return x * x, sorted(t.name for t in threading.enumerate())


async def main():
    loop = asyncio.get_running_loop()
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        for _ in range(5):
            done = await asyncio.gather(*(loop.run_in_executor(pool, work, i) for i in range(8)))
            await asyncio.sleep(0.05)
    print(json.dumps({
        "start_method": multiprocessing.get_start_method(),
        "results": [r for r, _ in done],
        "worker_threads": sorted({name for _, names in done for name in names}),
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
"""


@pytest.mark.parametrize("version", ["3.13", "3.14", "3.15"])
def test_a_process_pool_works_and_its_workers_carry_no_agent(tmp_path: Path, version: str) -> None:
    python = find_pythons().get(version)
    if python is None:
        pytest.skip(missing_reason(version))
    app = tmp_path / "pool.py"
    app.write_text(POOL)
    log = tmp_path / "pool.log"
    # Not following the workers: run attaches to each child it finds, and gives it an agent of
    # its own, whenever the program has run long enough (a second, on a loaded machine) for its
    # next look. What is checked here is that none inherits one.
    out = loopscope(
        "run", "--headless", "--no-children", "--python", python, "--log", str(log), str(app),
        state=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert_no_loopscope_traceback(out.stderr)
    said = json.loads(log.read_text().strip().splitlines()[-1])
    assert said["start_method"] == ("fork" if version == "3.13" else "forkserver")
    assert said["results"] == [i * i for i in range(8)]
    assert said["worker_threads"] == ["MainThread"], said
