"""Small facts about event loops that several collectors need."""

from __future__ import annotations

import asyncio


def on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the caller runs inside ``loop`` (so its handles may be touched directly)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
