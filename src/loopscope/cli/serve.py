"""``loopscope serve``: its options, and the request it builds."""

from __future__ import annotations

import argparse
from typing import Any

from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS
from loopscope.cli._options import add_command
from loopscope.commands.serve import DEFAULT_LISTEN, ServeRequest


def add_parsers(commands: Any) -> None:
    """Add ``serve`` to the subcommands of the main parser."""
    serve = add_command(
        commands,
        "serve",
        help="watch processes without a UI and export their metrics (Prometheus, OTLP)",
        description=(
            "Attach to the processes given by pid, by a regular expression on their command "
            "lines (looked for again every few seconds), or as the children of a supervisor "
            "(--children), and export each one's event-loop metrics: Prometheus at /metrics, "
            "a health check at /healthz, and OTLP over HTTP with --otlp. SIGTERM or SIGINT "
            "detaches from every process; they keep running."
        ),
        examples=(
            "loopscope serve 4242 4243",
            "loopscope serve --children $(pgrep -o -f 'uvicorn app:app')",
            "loopscope serve --match 'gunicorn.*myapp' --listen 0.0.0.0:9464",
            "loopscope serve --match uvicorn --otlp http://127.0.0.1:4318",
        ),
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


def request(ns: argparse.Namespace) -> ServeRequest:
    return ServeRequest(
        tuple(ns.pids),
        ns.listen,
        ns.children,
        ns.match,
        ns.otlp,
        ns.otlp_interval,
        ns.method,
        ns.timeout,
    )
