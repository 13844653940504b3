"""Target processes for attach tests: plain interpreters, no loopscope importable, no
PYTHONPATH. The program serves a small line protocol on stdin/stdout so a test can check it
still answers after loopscope came and went."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path
from typing import Any

# A loaded asyncio program: a ticker that keeps the loop busy, a handler that blocks the loop
# for 40 ms every 250 ms, and commands on stdin.
SERVICE = r"""
import asyncio, json, os, sys, threading, time


def say(**message):
    print(json.dumps(message), flush=True)


def render_report():
    end = time.thread_time() + 0.04  # CPU, not wall time: a loaded machine stretches it
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


async def ticker():
    while True:
        await asyncio.sleep(0.005)


async def blocker():
    while True:
        await asyncio.sleep(0.25)
        render_report()


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    tasks = [asyncio.create_task(ticker()), asyncio.create_task(blocker())]
    buffer = b""

    def on_stdin():
        nonlocal buffer
        data = os.read(0, 4096)
        if not data:
            done.set_result(None)
            loop.remove_reader(0)
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            cmd = line.decode().strip()
            if cmd == "state":
                say(
                    threads=sorted(t.name for t in threading.enumerate()),
                    modules=sorted(m for m in sys.modules if "loopscope" in m),
                    main_names=sorted(n for n in vars(sys.modules["__main__"]) if "loopscope" in n),
                    maps="loopscope" in open("/proc/self/maps").read(),
                    set_running_loop="loopscope" in str(
                        asyncio.events._set_running_loop.__module__
                    ),
                )
            elif cmd == "ping":
                say(pong=True)
            elif cmd == "exit":
                done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done
    for task in tasks:
        task.cancel()


asyncio.run(main())
"""


class PlainTarget:
    """A program started from a plain interpreter, driven on stdin, answering on stdout."""

    def __init__(self, python: str, directory: Path, source: str = SERVICE) -> None:
        script = directory / "service.py"
        script.write_text(source)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        self.proc = subprocess.Popen(
            [python, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=directory,
        )
        self.pid = self.proc.pid
        self._buffer = b""
        if source is SERVICE:
            assert self.read() == {"ready": True}

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            readable, _, _ = select.select([fd], [], [], timeout)
            if not readable:
                raise AssertionError("the target said nothing")
            data = os.read(fd, 65536)
            if not data:
                raise AssertionError(f"the target exited: {self.stderr()}")
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def ask(self, command: str) -> dict[str, Any]:
        self.send(command)
        return self.read()

    def finish(self) -> tuple[int, str]:
        """Ask the program to exit; its exit code and everything it wrote to stderr."""
        self.send("exit")
        code = self.proc.wait(timeout=15)
        return code, self.stderr()

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        if self.proc.poll() is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
