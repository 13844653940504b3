"""The agent's server in a program in trouble: out of file descriptors, the agent waits (without
spinning) and serves the client as soon as it can; the program is none the worse."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent_harness import LAUNCHER, Client, wait_until

from loopscope.events import Hello, Lag

# A loop, a low limit on open files, and commands: "hog" opens files until none can be opened,
# "free" closes them, "ping" answers from a task.
PROGRAM = r"""
import asyncio, json, os, resource, sys

resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
hogged = []


def say(**message):
    print(json.dumps(message), flush=True)


async def main():
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def on_stdin():
        for cmd in os.read(0, 4096).decode().split():
            if cmd == "hog":
                while True:
                    try:
                        hogged.append(os.open("/dev/null", os.O_RDONLY))
                    except OSError:
                        break
                say(hogged=len(hogged))
            elif cmd == "free":
                while hogged:
                    os.close(hogged.pop())
                say(freed=True)
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


class _Program:
    def __init__(self, directory: Path) -> None:
        script = directory / "program.py"
        script.write_text(PROGRAM)
        self.socket_path = str(directory / "agent.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOPSCOPE", "PYTHON"))}
        env["LOOPSCOPE_SOCKET"] = self.socket_path
        self.proc = subprocess.Popen(
            [sys.executable, LAUNCHER, str(script)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        self._buffer = b""
        assert self.read() == {"ready": True}

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            readable, _, _ = select.select([fd], [], [], 30)
            assert readable, "the program said nothing"
            data = os.read(fd, 65536)
            assert data, "the program exited"
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_out_of_file_descriptors_the_agent_waits_and_then_serves(tmp_path: Path) -> None:
    program = _Program(tmp_path)
    try:
        first = Client(program.socket_path)
        first.wait_for(lambda e: isinstance(e, Lag))
        first.close()
        assert program.ask("hog")["hogged"] > 0
        # The connection is made (it waits in the listener's backlog) but cannot be accepted.
        waiting = Client(program.socket_path)
        cpu = program.cpu_seconds()
        started = time.monotonic()
        time.sleep(1.0)  # a second in which the agent cannot accept: it must not spin
        used = program.cpu_seconds() - cpu
        elapsed = time.monotonic() - started
        assert used < 0.5 * elapsed, f"{used:.2f} s of CPU in {elapsed:.2f} s"
        assert program.ask("ping") == {"pong": True}  # the program runs on
        assert program.ask("free") == {"freed": True}
        waiting.wait_for(lambda e: isinstance(e, Hello))  # served as soon as it could be
        waiting.wait_for(lambda e: isinstance(e, Lag))
        waiting.send({"op": "detach"})
        waiting.read_until_eof()
        waiting.close()
        wait_until(lambda: not os.path.exists(program.socket_path))
        assert program.ask("ping") == {"pong": True}
        assert program.proc.stdin is not None
        program.proc.stdin.write(b"exit\n")
        program.proc.stdin.flush()
        assert program.proc.wait(timeout=15) == 0
        assert program.proc.stderr is not None
        assert program.proc.stderr.read() == b""
    finally:
        program.close()
