"""Keeping what the model tracks bounded."""

from __future__ import annotations

from collections.abc import Callable, Hashable, MutableMapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def keep_latest(tracked: MutableMapping[K, V], limit: int, last: Callable[[V], float]) -> None:
    """Forget all but the ``limit`` entries of ``tracked`` seen last (``last``: when one was)."""
    if len(tracked) > limit:
        ranked = sorted(tracked, key=lambda k: last(tracked[k]), reverse=True)
        for key in ranked[limit:]:
            del tracked[key]
