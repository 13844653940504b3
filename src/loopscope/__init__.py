"""loopscope: a live profiler for Python asyncio programs, in the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from loopscope._watch import watch

__all__ = ["watch"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that ``import loopscope`` stays light.
    if name == "watch":
        from loopscope._watch import watch

        return watch
    raise AttributeError(f"module 'loopscope' has no attribute {name!r}")
