"""Every agent hook runs behind a Guard: a hook that raises is disabled and reported once.

Modelled on trio's Instrument handling: the program being observed must never see an exception
that loopscope's code raised.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

from .events import Event, Notice

F = TypeVar("F", bound=Callable[..., Any])


class Guard:
    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self._lock = threading.Lock()
        self.disabled: dict[str, str] = {}  # hook name -> the error that disabled it

    def enabled(self, name: str) -> bool:
        return name not in self.disabled

    def wrap(self, name: str, fn: F, fallback: Any = None) -> F:
        """``fn`` that returns ``fallback`` instead of raising, and does nothing once it raised."""
        disabled = self.disabled

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if name in disabled:
                return fallback
            try:
                return fn(*args, **kwargs)
            except BaseException as e:
                if isinstance(e, (KeyboardInterrupt, SystemExit)):
                    raise
                self.failed(name, e)
                return fallback

        guarded.__name__ = getattr(fn, "__name__", name)
        guarded.__qualname__ = getattr(fn, "__qualname__", name)
        return guarded  # type: ignore[return-value]

    def after_fork(self) -> None:
        """In the child of a fork: another thread may have held the lock at the fork."""
        self._lock = threading.Lock()

    def failed(self, name: str, error: BaseException) -> None:
        """Disable hook ``name`` and report ``error`` (once per hook)."""
        with self._lock:
            if name in self.disabled:
                return
            where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
            at = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            self.disabled[name] = f"{type(error).__name__}: {error}{at}"
        with contextlib.suppress(Exception):
            self._emit(
                Notice(
                    t=time.time(),
                    level="error",
                    message=f"loopscope disabled its {name} hook after an error: "
                    f"{self.disabled[name]}",
                )
            )
