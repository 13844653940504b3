"""Coroutines never awaited: CPython's "coroutine ... was never awaited" RuntimeWarning.

CPython warns when a coroutine object is freed without having been awaited (or closed). The
warning goes through ``warnings.showwarning``, which this hook chains: it notes the coroutine's
name and where the warning points, then calls the function it replaced, so the program sees (and
prints, or logs) the warning exactly as before.

The warning's location is the Python frame running when the coroutine was freed: for a call
whose result is thrown away (``send(x)`` without ``await``), that is the call's line. The frame
is still on the stack while the warning is shown, which gives its function's name too.

The warnings module's own filters apply first: under the default filter a warning from one line
is shown once, so a line that drops coroutines over and over is reported once.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._guard import Guard
from .events import Event, Frame, NeverAwaited

RATE = 10  # events a second at most; the warnings beyond are counted in the next event
STACK_SEARCH = 30  # frames looked through for the one the warning points at
_NEVER_AWAITED = re.compile(r"coroutine '([^']{1,300})' was never awaited")

ShowWarning = Callable[..., Any]


class UnawaitedHook:
    """Chains ``warnings.showwarning``; emits a `NeverAwaited` per "never awaited" warning."""

    name = "unawaited"

    def __init__(self, emit: Callable[[Event], None], guard: Guard) -> None:
        self._emit = emit
        self._noted = guard.wrap(self.name, self._note)
        self._lock = threading.Lock()
        self._active = False
        self._original: ShowWarning | None = None
        self._second = 0.0  # the start of the current rate-limit second
        self._sent = 0  # events sent in it
        self._dropped = 0  # warnings not sent since the last event
        hook_self = self

        def showwarning(
            message: Any,
            category: Any,
            filename: Any,
            lineno: Any,
            file: Any = None,
            line: Any = None,
        ) -> Any:
            if hook_self._active:
                hook_self._noted(message, category, filename, lineno)
            original = hook_self._original
            if original is None:  # pragma: no cover - only if removed mid-call
                original = warnings._showwarning_orig  # type: ignore[attr-defined]
            return original(message, category, filename, lineno, file, line)

        self._hook: ShowWarning = showwarning

    def install(self) -> None:
        self._original = warnings.showwarning
        warnings.showwarning = self._hook
        self._active = True

    def remove(self) -> None:
        """Put the original back, unless the program has set its own over ours (then ours,
        reached through theirs, passes every call straight on)."""
        self._active = False
        if warnings.showwarning is self._hook:
            warnings.showwarning = self._original  # type: ignore[assignment]

    def _note(self, message: Any, category: Any, filename: Any, lineno: Any) -> None:
        if not (isinstance(category, type) and issubclass(category, RuntimeWarning)):
            return
        match = _NEVER_AWAITED.match(str(message))
        if match is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._second >= 1.0:
                self._second, self._sent = now, 0
            if self._sent >= RATE:
                self._dropped += 1
                return
            self._sent += 1
            dropped, self._dropped = self._dropped, 0
        self._emit(
            NeverAwaited(
                t=time.time(),
                coroutine=match.group(1),
                frame=_frame_at(str(filename), lineno if isinstance(lineno, int) else 0),
                dropped=dropped,
            )
        )


def _frame_at(filename: str, lineno: int) -> Frame | None:
    """The warning's location, with the name of the function there if that frame is on the
    stack (it is when the coroutine was freed by the code the warning points at)."""
    if not filename:
        return None
    function = ""
    frame = sys._getframe(1)
    for _ in range(STACK_SEARCH):
        if frame is None:
            break
        code = frame.f_code
        if code.co_filename == filename and frame.f_lineno == lineno:
            function = getattr(code, "co_qualname", code.co_name)
            break
        frame = frame.f_back  # type: ignore[assignment]
    return Frame(filename, lineno, function)
