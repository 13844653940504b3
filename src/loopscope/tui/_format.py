"""How numbers, durations and paths read on screen: short, in human units, fixed widths."""

from __future__ import annotations

import posixpath

DASH = "\u2013"  # an en dash: "no value"


def duration(seconds: float | None) -> str:
    """``seconds`` in the unit that keeps it short: µs, ms, s, then minutes."""
    if seconds is None or seconds != seconds:  # None or NaN
        return DASH
    if seconds == float("inf"):
        return "∞"
    s = abs(seconds)
    sign = "-" if seconds < 0 else ""
    if s < 1e-3:
        return f"{sign}{s * 1e6:.0f} µs"
    if s < 1:
        ms = s * 1e3
        # 999.6 ms would print as "1000 ms": promote it to seconds instead.
        if ms < 9.95:
            return f"{sign}{ms:.1f} ms"
        if ms < 999.5:
            return f"{sign}{ms:.0f} ms"
        return f"{sign}1.00 s"
    if s < 10:
        return f"{sign}{s:.2f} s"
    if s < 60:
        return f"{sign}{s:.1f} s"
    if s < 3599.5:
        minutes, rest = divmod(round(s), 60)
        return f"{sign}{minutes}m{rest:02d}s"
    hours, minutes = divmod(round(s / 60), 60)
    return f"{sign}{hours}h{minutes:02d}m"


def count(n: int | float) -> str:
    return f"{round(n):,}"


def rate(per_second: float) -> str:
    if per_second >= 1000:
        return f"{per_second / 1000:.1f}k/s"
    if per_second >= 100:
        return f"{per_second:.0f}/s"
    return f"{per_second:.1f}/s"


def percent(share: float | None) -> str:
    return DASH if share is None else f"{share * 100:.0f}%"


def short_path(path: str, cwd: str = "") -> str:
    """``path`` relative to ``cwd`` when it is under it, else its last two parts after ``…/``.

    Pseudo-paths such as ``<string>`` or ``<frozen runpy>`` are returned as they are.
    """
    if not path or path.startswith("<"):
        return path
    # Paths come from the target, which is a POSIX process; normalise without touching the disk.
    norm = posixpath.normpath(path)
    if cwd:
        base = posixpath.normpath(cwd)
        if norm.startswith(base.rstrip("/") + "/"):
            return norm[len(base.rstrip("/")) + 1 :]
    parts = [p for p in norm.split("/") if p]
    if len(parts) <= 2:
        return norm
    return "…/" + "/".join(parts[-2:])


def location(path: str, line: int, cwd: str = "") -> str:
    return f"{short_path(path, cwd)}:{line}"


def clip(text: str, width: int, *, keep: str = "end") -> str:
    """``text`` cut to ``width`` cells with an ellipsis, keeping its ``"start"`` or ``"end"``.

    Qualified names and paths say the most at their end, so that is kept by default.
    """
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width == 1:
        return "…"
    return "…" + text[-(width - 1) :] if keep == "end" else text[: width - 1] + "…"


def loop_class(name: str) -> str:
    """``asyncio.unix_events._UnixSelectorEventLoop`` -> ``_UnixSelectorEventLoop``;
    ``uvloop.Loop`` stays as it is, since ``Loop`` alone says nothing."""
    module, _, cls = name.rpartition(".")
    if not module:
        return name
    if module.split(".")[0] == "asyncio":
        return cls
    return name
