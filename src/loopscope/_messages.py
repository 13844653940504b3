"""loopscope's one-line messages to the user, on stderr, for every command and layer."""

from __future__ import annotations

import sys


def say(message: str) -> None:
    print(f"loopscope: {message}", file=sys.stderr, flush=True)
