"""``loopscope serve``: a headless daemon that watches processes and exports their metrics."""

from __future__ import annotations

import errno
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from loopscope.attach._ladder import DEFAULT_TIMEOUT

DEFAULT_LISTEN = "127.0.0.1:9464"


@dataclass(frozen=True, slots=True)
class ServeRequest:
    """``serve``: the processes to watch and where to export their metrics."""

    pids: tuple[int, ...] = ()
    listen: str = DEFAULT_LISTEN
    children: bool = False
    match: str | None = None
    otlp: str | None = None
    otlp_interval: float = 10.0
    method: str = "auto"
    timeout: float = DEFAULT_TIMEOUT


def run(request: ServeRequest) -> int:
    """Run ``serve`` until SIGTERM or SIGINT; the exit code."""
    try:
        address = _address(request.listen)
        pattern = re.compile(request.match) if request.match is not None else None
    except ValueError as e:
        return _usage(str(e))
    except re.error as e:
        return _usage(f"serve: --match {request.match!r} is not a regular expression: {e}")
    if not request.pids and pattern is None:
        return _usage("serve: give the PIDs to watch, or --match REGEX")
    if request.otlp is not None and not re.match(r"https?://[^/\s]+", request.otlp):
        return _usage(f"serve: --otlp {request.otlp!r} is not an http:// or https:// URL")
    if not request.otlp_interval > 0 or not request.timeout > 0:
        return _usage("serve: --otlp-interval and --timeout must be positive numbers of seconds")

    from loopscope.fleet._fleet import FAILED, Fleet, Target
    from loopscope.fleet.prometheus import server

    fleet = Fleet(
        Target(tuple(request.pids), pattern, request.children),
        log=_say,
        method=request.method,
        timeout=request.timeout,
    )
    try:
        http = server(address, fleet)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return _usage(f"serve: --listen {request.listen}: the address is already in use")
        return _usage(f"serve: --listen {request.listen}: {e.strerror or e}")
    exporter = None
    stopping = threading.Event()
    previous = _on_signals(stopping)
    try:
        serving = threading.Thread(target=http.serve_forever, name="loopscope-http", daemon=True)
        serving.start()
        host, port = http.server_address[:2]
        _say(f"serving metrics at http://{_host(str(host))}:{port}/metrics (and /healthz)")
        fleet.start()
        members = fleet.members()
        if (
            members
            and pattern is None
            and not request.children
            and all(m.state == FAILED for m in members)
        ):
            _say("none of the given processes can be watched")
            return 1
        if request.otlp is not None:
            from loopscope.fleet.otlp import OtlpExporter

            exporter = OtlpExporter(fleet, request.otlp, interval=request.otlp_interval, log=_say)
            exporter.start()
            _say(f"sending OTLP metrics to {request.otlp} every {request.otlp_interval:g} s")
        while not stopping.wait(0.5):
            pass
        _say("stopping: detaching from every process")
    finally:
        _restore(previous)
        if exporter is not None:
            exporter.close()
        fleet.close()
        http.shutdown()
        http.server_close()
    gone = sum(1 for m in fleet.members() if m.detach_sent)
    _say(f"detached from {gone} process{'es' if gone != 1 else ''}")
    return 0


def _on_signals(stopping: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore(previous: dict[int, Any]) -> None:
    for sig, old in previous.items():
        signal.signal(sig, old)


def _address(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"serve: --listen {listen!r}: give HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host or "127.0.0.1", int(port)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _usage(message: str) -> int:
    print(f"loopscope: {message}", file=sys.stderr, flush=True)
    return 2


def _say(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"loopscope: {stamp} {message}", file=sys.stderr, flush=True)
