"""`loopscope.watch`: an exact check for lost updates on values the program names.

Each watched value (an attribute of one object, or each key of a watched dict) has a version,
bumped by every write. Every read remembers, for the task that read, the version it saw and where.
When a task writes after another task wrote since its own read, its write is based on a stale
value: the other task's update is lost. That is reported with both tasks and the three places
(this task's read, the other's write, this task's write).

Reports go to the loopscope agent when one runs in the process (``loopscope run``, ``attach``);
until then the latest 1000 wait in a buffer the agent takes when it starts. Standard library
only, and nothing here ever raises into the program once a value is watched.
"""

from __future__ import annotations

import asyncio
import sys
import time
import types
import warnings
from collections.abc import Hashable
from typing import Any, TypeVar

from loopscope.agent._hub import watch_hub as _hub

T = TypeVar("T")

MAX_READERS = 10_000  # tasks remembered per watched value; beyond this the oldest are forgotten
MAX_KEYS = 10_000  # keys tracked per watched dict; others are not
REPEAT_SECONDS = 1.0  # one report per place and second; the others are counted into the next
_CLASS_MARK = "__loopscope_watched__"

_get_running_loop = asyncio.events._get_running_loop
_current_task = asyncio.current_task


def watch(obj: T, *attrs: str, label: str | None = None) -> T:
    """Watch ``obj`` for lost updates; returns what the program should use from now on.

    - ``watch(obj, "balance", ...)``: the named attributes of this one object (other instances of
      its class are not affected). ``obj`` itself is returned, now of a subclass made for it.
    - ``watch(a_dict)``: every key of the dict. A new dict (a ``dict`` subclass holding the same
      items) is returned: use it in place of the original.

    ``label`` names the value in reports (default: the class name, or ``dict``). An object that
    cannot be watched is returned unchanged, with a ``RuntimeWarning``.
    """
    if isinstance(obj, dict) and not attrs:
        return WatchedDict(obj, label=label)  # type: ignore[return-value]
    if not attrs:
        warnings.warn("loopscope.watch: name the attributes to watch", RuntimeWarning, stacklevel=2)
        return obj
    try:
        _watch_attributes(obj, attrs, label or type(obj).__name__)
    except (TypeError, AttributeError) as e:
        warnings.warn(
            f"loopscope.watch: cannot watch {type(obj).__name__}: {e}", RuntimeWarning, stacklevel=2
        )
    return obj


# -- one watched value ----------------------------------------------------------------------------


class _Value:
    """The version of one watched value, who wrote it last, and what each task read."""

    __slots__ = ("label", "readers", "version", "writer")

    def __init__(self, label: str) -> None:
        self.label = label
        self.version = 0
        self.writer: tuple[Any, types.CodeType, int] | None = None  # (task, code, line)
        # id(task) -> (task, version read, code, line); locations are named only to report
        self.readers: dict[int, tuple[Any, int, types.CodeType, int]] = {}

    def read(self, depth: int) -> None:
        try:
            loop = _get_running_loop()
            task = None if loop is None else _current_task(loop)
            if task is None:
                return
            readers = self.readers
            if len(readers) >= MAX_READERS:
                readers.clear()
            frame = sys._getframe(depth + 1)
            readers[id(task)] = (task, self.version, frame.f_code, frame.f_lineno)
        except Exception:
            pass

    def write(self, depth: int) -> None:
        try:
            loop = _get_running_loop()
            task = None if loop is None else _current_task(loop)
            frame = sys._getframe(depth + 1)
            code, line = frame.f_code, frame.f_lineno
            if task is not None:
                seen = self.readers.pop(id(task), None)
                writer = self.writer
                if (
                    seen is not None
                    and seen[0] is task
                    and seen[1] != self.version
                    and writer is not None
                    and writer[0] is not task
                ):
                    _report(self, task, seen, writer, (code, line))
            self.version += 1
            self.writer = (task, code, line)
        except Exception:
            pass


def _name(task: Any) -> str:
    if task is None:
        return "<no task>"
    try:
        return str(task.get_name())
    except Exception:
        return "<task>"


def _where(code: types.CodeType, line: int) -> tuple[str, int, str]:
    return (code.co_filename, line, getattr(code, "co_qualname", code.co_name))


# -- reporting ----------------------------------------------------------------------------------

_places: dict[tuple[str, tuple[str, int, str], tuple[str, int, str]], list[float]] = {}


def _report(
    value: _Value,
    task: Any,
    seen: tuple[Any, int, types.CodeType, int],
    writer: tuple[Any, types.CodeType, int],
    here: tuple[types.CodeType, int],
) -> None:
    now = time.time()
    read = _where(seen[2], seen[3])
    write = _where(*here)
    place = (value.label, read, write)
    entry = _places.get(place)
    if entry is not None and now - entry[0] < REPEAT_SECONDS:
        entry[1] += 1  # folded into the next report from this place
        return
    repeats = int(entry[1]) if entry is not None else 0
    if len(_places) > 1000:
        _places.clear()
    _places[place] = [now, 0]
    _deliver(
        {
            "v": 1,
            "t": now,
            "target": value.label,
            "task": _name(task),
            "read": read,
            "version_read": seen[1],
            "other_task": _name(writer[0]),
            "other_write": _where(writer[1], writer[2]),
            "write": write,
            "version_now": value.version,
            "repeats": repeats,
        }
    )


def _deliver(record: dict[str, Any]) -> None:
    hub = _hub()
    sink = getattr(hub, "sink", None)
    if sink is not None:
        try:
            sink(record)
            return
        except Exception:
            pass
    hub.pending.append(record)


def pending() -> list[dict[str, Any]]:
    """The reports no agent has taken yet (oldest first), as plain dicts."""
    return list(_hub().pending)


# -- attributes -----------------------------------------------------------------------------------


class _WatchedAttribute:
    """A data descriptor on the watched object's own subclass: reads and writes of the attribute
    go through it, to the instance's ``__dict__`` or to the descriptor it shadows."""

    def __init__(self, name: str, shadowed: Any, value: _Value) -> None:
        self.name = name
        self.shadowed = shadowed
        self.data = hasattr(shadowed, "__set__")  # a slot or property: it holds the value
        self.value = value

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        if obj is None:
            return self
        shadowed = self.shadowed
        if self.data:
            result = shadowed.__get__(obj, cls)
        else:
            namespace = obj.__dict__
            if self.name in namespace:
                result = namespace[self.name]
            elif shadowed is not None:
                result = shadowed.__get__(obj, cls) if hasattr(shadowed, "__get__") else shadowed
            else:
                raise AttributeError(
                    f"{type(obj).__name__!r} object has no attribute {self.name!r}"
                )
        self.value.read(1)
        return result

    def __set__(self, obj: Any, new: Any) -> None:
        if self.data:
            self.shadowed.__set__(obj, new)
        else:
            obj.__dict__[self.name] = new
        self.value.write(1)

    def __delete__(self, obj: Any) -> None:
        shadowed = self.shadowed
        if shadowed is not None and hasattr(shadowed, "__delete__"):
            shadowed.__delete__(obj)
        else:
            try:
                del obj.__dict__[self.name]
            except KeyError:
                raise AttributeError(self.name) from None
        self.value.write(1)


def _watch_attributes(obj: Any, attrs: tuple[str, ...], label: str) -> None:
    cls = type(obj)
    if not getattr(cls, _CLASS_MARK, False) or cls.__dict__.get(_CLASS_MARK) is not True:
        # A subclass of the object's own, for this object alone.
        # No slots of its own: the same layout as the object's class, so __class__ can change.
        namespace = {_CLASS_MARK: True, "__module__": cls.__module__, "__slots__": ()}
        cls = type(cls.__name__, (cls,), namespace)
        cls.__qualname__ = type(obj).__qualname__
        obj.__class__ = cls
    for name in attrs:
        if not isinstance(name, str):
            raise TypeError(f"attribute names are strings, not {type(name).__name__}")
        if isinstance(cls.__dict__.get(name), _WatchedAttribute):
            continue
        shadowed = None
        for base in cls.__mro__[1:]:
            if name in base.__dict__:
                shadowed = base.__dict__[name]
                break
        setattr(cls, name, _WatchedAttribute(name, shadowed, _Value(f"{label}.{name}")))


# -- dicts ----------------------------------------------------------------------------------------


class WatchedDict(dict):  # type: ignore[type-arg]
    """A dict whose keys are each a watched value (see `watch`)."""

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._label = label or "dict"
        self._values: dict[Hashable, _Value] = {}

    def _value(self, key: Hashable) -> _Value | None:
        values = self._values
        value = values.get(key)
        if value is None and len(values) < MAX_KEYS:
            value = values[key] = _Value(f"{self._label}[{_short(key)}]")
        return value

    def _read(self, key: Hashable) -> None:
        value = self._value(key)
        if value is not None:
            value.read(2)  # in the caller of the method that calls this

    def _wrote(self, key: Hashable) -> None:
        value = self._value(key)
        if value is not None:
            value.write(2)  # in the caller of the method that calls this

    def __getitem__(self, key: Any) -> Any:
        result = super().__getitem__(key)
        self._read(key)
        return result

    def get(self, key: Any, default: Any = None) -> Any:
        result = super().get(key, default)
        self._read(key)
        return result

    def __setitem__(self, key: Any, new: Any) -> None:
        super().__setitem__(key, new)
        self._wrote(key)

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._wrote(key)

    def pop(self, key: Any, *default: Any) -> Any:
        result = super().pop(key, *default)
        self._wrote(key)
        return result

    def setdefault(self, key: Any, default: Any = None) -> Any:
        result = super().setdefault(key, default)
        self._read(key)
        return result


def _short(key: Any) -> str:
    try:
        text = repr(key)
    except Exception:
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 40 else text[:39] + "…"
