"""``loopscope diff``: its options, and the request it builds."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loopscope.cli._options import add_command
from loopscope.commands.diff import DEFAULT_THRESHOLD, DiffRequest


def add_parser(commands: Any) -> None:
    diff = add_command(
        commands,
        "diff",
        help="compare two recordings or reports: findings fixed, new and still there; lag, "
        "busy share and blocked time before and after",
        usage="loopscope diff BEFORE AFTER [--json] [--fail-on-regression] [--threshold PCT]",
        description=(
            "Compare two sessions, e.g. a recording of a program and one of its fixed version "
            "under the same load. Each side is a recording or a 'loopscope report --json' "
            "file. Findings are matched by code and location: fixed, new, and still there with "
            "the change in their evidence. Loop figures (lag p50, p99, max, busy share, blocks "
            "per location) are compared where both sides are recordings."
        ),
        examples=(
            "loopscope diff before.lsrec after.lsrec",
            "loopscope diff main.json branch.lsrec --json --fail-on-regression --threshold 10",
        ),
    )
    diff.add_argument("before", type=Path, metavar="BEFORE")
    diff.add_argument("after", type=Path, metavar="AFTER")
    diff.add_argument("--json", action="store_true", help="print the diff as one JSON object")
    diff.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit with status 1 on a new finding of severity warning or worse, or when lag "
        "p99, a location's or a route's blocked time rose by more than the threshold (for CI)",
    )
    diff.add_argument(
        "--threshold",
        type=float,
        metavar="PCT",
        default=DEFAULT_THRESHOLD,
        help=f"the rise in percent that counts as a regression (default {DEFAULT_THRESHOLD:g})",
    )


def request(ns: argparse.Namespace) -> DiffRequest:
    return DiffRequest(ns.before, ns.after, ns.json, ns.fail_on_regression, ns.threshold)
