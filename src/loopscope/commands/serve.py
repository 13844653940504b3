"""``loopscope serve``: a headless daemon that watches processes and exports their metrics."""

from __future__ import annotations

import argparse
import errno
import re
import signal
import sys
import textwrap
import threading
import time
from types import FrameType
from typing import Any

from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS

COMMANDS = ("serve",)
DEFAULT_LISTEN = "127.0.0.1:9464"


def add_parsers(commands: Any) -> None:
    """Add ``serve`` to the subcommands of the main parser."""
    serve = commands.add_parser(
        "serve",
        help="watch processes without a UI and export their metrics (Prometheus, OTLP)",
        description=textwrap.fill(
            "Attach to the processes given by pid, by a regular expression on their command "
            "lines (looked for again every few seconds), or as the children of a supervisor "
            "(--children), and export each one's event-loop metrics: Prometheus at /metrics, "
            "a health check at /healthz, and OTLP over HTTP with --otlp. SIGTERM or SIGINT "
            "detaches from every process; they keep running.",
            width=78,
        ),
        epilog="examples:\n"
        "  loopscope serve 4242 4243\n"
        "  loopscope serve --children $(pgrep -o -f 'uvicorn app:app')\n"
        "  loopscope serve --match 'gunicorn.*myapp' --listen 0.0.0.0:9464\n"
        "  loopscope serve --match uvicorn --otlp http://127.0.0.1:4318",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("pids", metavar="PID", type=int, nargs="*", help="processes to watch")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"where to serve /metrics and /healthz (default: {DEFAULT_LISTEN})",
    )
    serve.add_argument(
        "--children",
        action="store_true",
        help="also watch the Python children of the given processes (a supervisor's "
        "workers), including those that start later",
    )
    serve.add_argument(
        "--match",
        metavar="REGEX",
        help="watch every process whose command line matches REGEX, including those that "
        "start later",
    )
    serve.add_argument(
        "--otlp",
        metavar="URL",
        help="also send the metrics as OTLP over HTTP to URL (an OpenTelemetry Collector's "
        "http://HOST:4318, or its full /v1/metrics URL)",
    )
    serve.add_argument(
        "--otlp-interval",
        metavar="S",
        type=float,
        default=10.0,
        help="seconds between OTLP exports (default: 10)",
    )
    serve.add_argument(
        "--method",
        choices=METHODS,
        default="auto",
        help="how to inject the agent (as for attach)",
    )
    serve.add_argument(
        "--timeout",
        metavar="S",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="how long each process may take to reach a safe point "
        f"(default: {DEFAULT_TIMEOUT:g} s)",
    )


def run(ns: argparse.Namespace) -> int:
    """Run ``serve`` until SIGTERM or SIGINT; the exit code."""
    try:
        address = _address(ns.listen)
        pattern = re.compile(ns.match) if ns.match is not None else None
    except ValueError as e:
        return _usage(str(e))
    except re.error as e:
        return _usage(f"serve: --match {ns.match!r} is not a regular expression: {e}")
    if not ns.pids and pattern is None:
        return _usage("serve: give the PIDs to watch, or --match REGEX")
    if ns.otlp is not None and not re.match(r"https?://[^/\s]+", ns.otlp):
        return _usage(f"serve: --otlp {ns.otlp!r} is not an http:// or https:// URL")
    if not ns.otlp_interval > 0 or not ns.timeout > 0:
        return _usage("serve: --otlp-interval and --timeout must be positive numbers of seconds")

    from loopscope.fleet._fleet import FAILED, Fleet, Target
    from loopscope.fleet.prometheus import server

    fleet = Fleet(
        Target(tuple(ns.pids), pattern, ns.children),
        log=_say,
        method=ns.method,
        timeout=ns.timeout,
    )
    try:
        http = server(address, fleet)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            return _usage(f"serve: --listen {ns.listen}: the address is already in use")
        return _usage(f"serve: --listen {ns.listen}: {e.strerror or e}")
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
            and not ns.children
            and all(m.state == FAILED for m in members)
        ):
            _say("none of the given processes can be watched")
            return 1
        if ns.otlp is not None:
            from loopscope.fleet.otlp import OtlpExporter

            exporter = OtlpExporter(fleet, ns.otlp, interval=ns.otlp_interval, log=_say)
            exporter.start()
            _say(f"sending OTLP metrics to {ns.otlp} every {ns.otlp_interval:g} s")
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
