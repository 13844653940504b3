"""The loopscope agent: runs inside the observed program. Standard library only.

``install()`` inside a running loop (or given a loop) starts observing it and serving on the
agent's Unix socket; ``uninstall()`` restores the program as it was.

The names below are imported on first use, so that importing one module of the package (the
client imports ``events``) does not load every collector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._core import Agent, current, install, uninstall

__all__ = ["Agent", "current", "install", "uninstall"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("._core", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
