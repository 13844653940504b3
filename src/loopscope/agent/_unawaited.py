"""Coroutines never awaited: CPython's "coroutine ... was never awaited" RuntimeWarning.

CPython warns when a coroutine object is freed without having been awaited (or closed). The
warning goes through ``warnings.showwarning``, which this hook chains: it notes the coroutine's
name and where the warning points, then calls the function it replaced, so the program sees (and
prints, or logs) the warning exactly as before.

The warning's location is the Python frame running when the coroutine was freed: for a call
whose result is thrown away (``send(x)`` without ``await``), that is the call's line. The frame
is still on the stack while the warning is shown, which gives its function's name too.

The warnings module's filters decide whether a warning is *shown*: under the default filter a
warning from one line is shown once, and a program the agent attaches to later may have shown it
already. So the hook also chains ``warnings._warn_unawaited_coroutine``, which CPython (3.8 and
later) looks up on the warnings module and calls for every coroutine freed unawaited, before any
filter: each is noted there (the frame running is the one that freed it), and the same warning
reaching ``showwarning`` is not noted twice.
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
# What CPython calls, from the warnings module, for each coroutine freed without being awaited.
_WARNER = "_warn_unawaited_coroutine"


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
            if hook_self._active and not getattr(hook_self._warning, "on", False):
                hook_self._noted(message, category, filename, lineno)
            original = hook_self._original
            if original is None:  # pragma: no cover - only if removed mid-call
                original = warnings._showwarning_orig  # type: ignore[attr-defined]
            return original(message, category, filename, lineno, file, line)

        self._hook: ShowWarning = showwarning
        self._warner: Callable[[Any], Any] | None = None  # the unawaited hook it replaced
        self._warning = threading.local()  # .on: inside it, on this thread

        def warn_unawaited(coro: Any) -> Any:
            original = hook_self._warner
            if hook_self._active:
                hook_self._noted_coroutine(coro, sys._getframe(1))
            state = hook_self._warning
            state.on = True
            try:
                if original is not None and getattr(original, "__name__", "") != _WARNER:
                    return original(coro)  # the program's own: called as it was
                # CPython's warns at the frame that freed the coroutine (stacklevel=2 from
                # itself); called from here, it would name this one. So its warning is given
                # here, the same, at that frame: from this function, stacklevel=2 is it.
                warnings.warn(
                    _unawaited_message(coro), RuntimeWarning, stacklevel=2, source=coro
                )
                return None
            finally:
                state.on = False

        self._unawaited_hook: Callable[[Any], Any] = warn_unawaited
        self._noted_coroutine = guard.wrap(self.name, self._note_coroutine)

    def install(self) -> None:
        self._original = warnings.showwarning
        warnings.showwarning = self._hook
        warner = getattr(warnings, _WARNER, None)
        if callable(warner):
            self._warner = warner
            setattr(warnings, _WARNER, self._unawaited_hook)
        self._active = True

    def remove(self) -> None:
        """Put the originals back, unless the program has set its own over ours (then ours,
        reached through theirs, passes every call straight on)."""
        self._active = False
        if warnings.showwarning is self._hook:
            warnings.showwarning = self._original  # type: ignore[assignment]
        if self._warner is not None and getattr(warnings, _WARNER, None) is self._unawaited_hook:
            setattr(warnings, _WARNER, self._warner)

    def _note_coroutine(self, coro: Any, frame: Any) -> None:
        name = getattr(coro, "__qualname__", None) or getattr(coro, "__name__", None)
        if not isinstance(name, str):
            return
        code = getattr(frame, "f_code", None)
        where = (
            None
            if code is None
            else Frame(
                code.co_filename, frame.f_lineno or 0, getattr(code, "co_qualname", code.co_name)
            )
        )
        self._send(name[:300], where)

    def _note(self, message: Any, category: Any, filename: Any, lineno: Any) -> None:
        if not (isinstance(category, type) and issubclass(category, RuntimeWarning)):
            return
        match = _NEVER_AWAITED.match(str(message))
        if match is None:
            return
        self._send(
            match.group(1), _frame_at(str(filename), lineno if isinstance(lineno, int) else 0)
        )

    def _send(self, coroutine: str, frame: Frame | None) -> None:
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
            NeverAwaited(t=time.time(), coroutine=coroutine, frame=frame, dropped=dropped)
        )


def _unawaited_message(coro: Any) -> str:
    """CPython's "never awaited" warning text, with where the coroutine was created when
    ``sys.set_coroutine_origin_tracking_depth`` keeps it."""
    lines = [f"coroutine '{coro.__qualname__}' was never awaited\n"]
    origin = getattr(coro, "cr_origin", None)
    if origin is not None:
        import linecache
        import traceback

        lines.append("Coroutine created at (most recent call last)\n")
        lines += traceback.format_list(
            [(f, n, fn, linecache.getline(f, n)) for f, n, fn in reversed(origin)]
        )
    return "".join(lines).rstrip("\n")


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
