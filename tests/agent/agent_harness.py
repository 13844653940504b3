"""Target processes with the agent in them, and a client for the agent's socket."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopscope.events import Event, decode

SRC = str(Path(__file__).resolve().parents[2] / "src")
LAUNCHER = str(Path(SRC) / "loopscope" / "agent" / "_launch.py")
TIMEOUT = 15.0

# A target program driven line by line on stdin; it answers on stdout with JSON lines.
TARGET = r"""
import asyncio, json, os, sys, threading, time, warnings

ORIGINAL_SET_RUNNING_LOOP = getattr(
    asyncio.events, "_c__set_running_loop", asyncio.events._py__set_running_loop
)


def measured(block):
    # Run block, then say how long it took, in wall and in thread CPU seconds.
    def run():
        wall, cpu = time.perf_counter(), time.thread_time()
        block()
        say(took=time.perf_counter() - wall, cpu=time.thread_time() - cpu)
    return run


@measured
def blocking_sleep():
    time.sleep(0.05)


@measured
def cpu_burn():
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass


@measured
def cpu_work():
    # 50 ms of the thread's CPU, as real work is an amount of it: on a machine whose cores are
    # busy it takes longer, rather than doing less (cpu_burn does less).
    end = time.thread_time() + 0.05
    while time.thread_time() < end:
        pass


def my_factory(loop, coro, **kwargs):
    return asyncio.Task(coro, loop=loop, **kwargs)


def my_handler(loop, context):
    loop.default_exception_handler(context)


async def forgotten():
    pass


def drop_a_coroutine():
    forgotten()  # harness: dropped


async def failing():
    await asyncio.sleep(0)
    explode()


def explode():
    raise ValueError("harness failure")  # harness: raised


def say(**message):
    print(json.dumps(message), flush=True)


def worker_thread(ready):
    async def run():
        ready.set_result(asyncio.get_running_loop())
        await asyncio.sleep(3600)
    asyncio.run(run())


async def main():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(my_factory)
    loop.set_exception_handler(my_handler)
    socket_path = os.environ.get("TARGET_INSTALL")
    if socket_path:
        import loopscope.agent
        loopscope.agent.install(socket_path=socket_path)
    worker = None
    if "--thread" in sys.argv:
        import concurrent.futures
        ready = concurrent.futures.Future()
        threading.Thread(target=worker_thread, args=(ready,), name="worker", daemon=True).start()
        worker = ready.result(timeout=10)
    done = loop.create_future()
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
            command(line.decode().strip())

    def command(cmd):
        if cmd == "sleep":
            blocking_sleep()
        elif cmd == "burn":
            cpu_burn()
        elif cmd == "work":
            cpu_work()
        elif cmd == "thread-sleep":
            worker.call_soon_threadsafe(blocking_sleep)
        elif cmd == "drop":
            drop_a_coroutine()
            say(dropped=True)
        elif cmd == "fail":
            loop.create_task(failing())
            say(failing=True)
        elif cmd == "collect":
            import gc
            gc.collect()
            say(collected=True)
        elif cmd == "uninstall":
            import loopscope.agent
            loopscope.agent.uninstall()
        elif cmd == "state":
            say(
                threads=sorted(t.name for t in threading.enumerate()),
                set_running_loop=asyncio.events._set_running_loop is ORIGINAL_SET_RUNNING_LOOP
                and asyncio._set_running_loop is ORIGINAL_SET_RUNNING_LOOP,
                selector="select" not in vars(loop._selector),
                factory=loop.get_task_factory() is my_factory,
                handler=loop.get_exception_handler() is my_handler,
                showwarning=warnings.showwarning is warnings._showwarning_orig
                # CPython's own (the agent's, if any, has another name)
                and warnings._warn_unawaited_coroutine.__name__ == "_warn_unawaited_coroutine",
            )
        elif cmd == "ping":
            async def pong():
                await asyncio.sleep(0.01)
                say(pong=True)
            loop.create_task(pong())
        elif cmd == "exit":
            done.set_result(None)

    loop.add_reader(0, on_stdin)
    say(ready=True)
    await done


asyncio.run(main())
"""


def wait_until(condition: Callable[[], Any], timeout: float = TIMEOUT, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.005)


class Target:
    """A target program, run through the launcher or installing the agent in its own code."""

    def __init__(
        self, python: str, directory: Path, *, in_code: bool = False, args: tuple[str, ...] = ()
    ) -> None:
        self.socket_path = str(directory / "agent.sock")
        script = directory / "target.py"
        script.write_text(TARGET)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        if in_code:
            env["PYTHONPATH"] = SRC
            env["TARGET_INSTALL"] = self.socket_path
            cmd = [python, str(script), *args]
        else:
            # No PYTHONPATH: the launcher must load the agent from its own directory.
            env["LOOPSCOPE_SOCKET"] = self.socket_path
            cmd = [python, LAUNCHER, str(script), *args]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=directory,
        )
        self._stdout = b""
        assert self.read() == {"ready": True}

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next JSON line the target prints."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._stdout:
            left = deadline - time.monotonic()
            if left <= 0 or not _readable(fd, left):
                raise AssertionError(f"target said nothing; stderr: {self._stderr()}")
            data = os.read(fd, 65536)
            if not data:
                raise AssertionError(f"target exited; stderr: {self._stderr()}")
            self._stdout += data
        line, self._stdout = self._stdout.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def state(self) -> dict[str, Any]:
        self.send("state")
        return self.read()

    def finish(self) -> int:
        """Ask the target to exit; its exit code."""
        if self.proc.poll() is None:
            self.send("exit")
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        finally:
            self.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


class Client:
    """A client of the agent's socket that keeps every event it reads."""

    def __init__(self, path: str, timeout: float = TIMEOUT) -> None:
        self.events: list[Event] = []
        self._buffer = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_until(lambda: self._connect(path), timeout, f"the agent socket {path}")
        self.eof = False

    def _connect(self, path: str) -> bool:
        try:
            self._sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        return True

    def send(self, message: dict[str, Any]) -> None:
        self._sock.sendall(json.dumps(message).encode() + b"\n")

    def wait_for(
        self, predicate: Callable[[Event], bool], timeout: float = TIMEOUT, what: str = ""
    ) -> Event:
        """The first event read from now on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self._next(deadline)
            if event is None:
                raise AssertionError(f"no {what or 'matching event'}; got {self.kinds()}")
            if predicate(event):
                return event

    def read_until_eof(self, timeout: float = TIMEOUT) -> list[Event]:
        deadline = time.monotonic() + timeout
        out = []
        while (event := self._next(deadline)) is not None:
            out.append(event)
        if not self.eof:
            raise AssertionError("the agent did not close the connection")
        return out

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def close(self) -> None:
        self._sock.close()

    def _next(self, deadline: float) -> Event | None:
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if self.eof or left <= 0 or not _readable(self._sock.fileno(), left):
                return None
            data = self._sock.recv(1 << 20)
            if not data:
                self.eof = True
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        event = decode(line)
        self.events.append(event)
        return event


def _readable(fd: int, timeout: float) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        return bool(sel.select(timeout))
