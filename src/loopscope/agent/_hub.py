"""Where `loopscope.watch` and any copy of the agent meet."""

from __future__ import annotations

import collections
import sys
import types

WATCH_HUB = "_loopscope_watch_hub"


def watch_hub() -> types.ModuleType:
    """Where `loopscope.watch` and any copy of the agent meet: a module in ``sys.modules`` (the
    agent may be loaded under a private name, the program imports ``loopscope``). It has
    ``pending``, a bounded deque of reports no agent took yet, and ``sink``, the agent's
    callable or None."""
    hub = sys.modules.get(WATCH_HUB)
    if hub is None:
        fresh = types.ModuleType(WATCH_HUB)
        fresh.pending = collections.deque(maxlen=1000)  # type: ignore[attr-defined]
        fresh.sink = None  # type: ignore[attr-defined]
        hub = sys.modules.setdefault(WATCH_HUB, fresh)
    return hub
