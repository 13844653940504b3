"""What the commands' parsers share: the usage error, the options of a session and their
checks."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loopscope import web


def add_command(
    commands: Any,
    name: str,
    *,
    help: str,
    description: str,
    usage: str | None = None,
    examples: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Add the subcommand ``name`` to ``commands``: its description wrapped at 78 columns, its
    ``examples`` (command lines) listed after the options, both shown as laid out here."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        usage=usage,
        description=textwrap.fill(description, width=78),
        epilog="examples:\n" + "\n".join(f"  {line}" for line in examples) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


class UsageError(Exception):
    """Bad input from the user: the message is printed, the exit code is 2."""


@dataclass(frozen=True, slots=True)
class Option:
    flags: tuple[str, ...]
    kwargs: dict[str, Any]

    @property
    def takes_value(self) -> bool:
        return self.kwargs.get("action") is None


def check_headless(ns: Any) -> None:
    """The options of a session without a dashboard: --duration and --json."""
    if (ns.duration is not None or ns.json) and not ns.headless:
        raise UsageError(f"{ns.command}: --duration and --json need --headless")
    if ns.duration is not None and not ns.duration > 0:
        raise UsageError(f"{ns.command}: --duration must be a positive number of seconds")


def check_terminal(ns: Any) -> None:
    if (
        not ns.headless
        and not (sys.stdin.isatty() and sys.stdout.isatty())
        and not (getattr(ns, "web", False) or web.served())
    ):
        raise UsageError(f"{ns.command}: the dashboard needs a terminal; use --headless")
