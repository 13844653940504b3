"""The demo service runs aiomonitor on ports the system picks: found from the process's own
listening sockets, its web API answers there, and neither of its default ports is used."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

AIOMONITOR_DEFAULTS = {20101, 20102, 20103}


def listening_ports(pid: int) -> set[int]:
    """TCP ports on which process ``pid`` listens, from /proc (its socket inodes)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if match := re.fullmatch(r"socket:\[(\d+)\]", target):
            inodes.add(match.group(1))
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def task_count(port: int) -> int | None:
    """aiomonitor's live task count on ``port`` (its API reads form-encoded bodies only)."""
    body = urllib.parse.urlencode({"task_type": "running"}).encode()
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/task-count", data=body, timeout=5
        ) as response:
            return int(json.load(response)["value"])
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


def test_aiomonitor_answers_on_the_ports_the_process_listens_on() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "loopscope.demos.service", "race", "--duration", "30"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            listening = re.search(r"127\.0\.0\.1:(\d+)", process.stdout.readline())
            assert listening, "the service did not say where it listens"
            assert "aiomonitor started" in process.stdout.readline()
            service = int(listening.group(1))
            deadline = time.monotonic() + 20
            while len(ports := listening_ports(process.pid) - {service}) < 2:
                assert time.monotonic() < deadline, ports
                time.sleep(0.05)
            assert not ports & AIOMONITOR_DEFAULTS, ports
            counts = {port: task_count(port) for port in ports}
            answered = [count for count in counts.values() if count is not None]
            assert len(answered) == 1, counts  # the web UI; the other is its telnet console
            assert answered[0] >= 1  # the service's own tasks, at least
        finally:
            process.terminate()
            process.wait(30)
