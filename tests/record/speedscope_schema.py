"""speedscope's file format (tests/data/speedscope/file-format-spec.ts), checked by hand.

Each check names the rule of the spec it enforces, so that an export that speedscope would
refuse fails here with the reason.
"""

from __future__ import annotations

import math
from typing import Any

SCHEMA_URL = "https://www.speedscope.app/file-format-schema.json"
UNITS = {"none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"}


def problems(data: Any) -> list[str]:
    """What in ``data`` breaks the speedscope file format; empty when nothing does."""
    out: list[str] = []
    if not isinstance(data, dict):
        return ["File: not an object"]
    if data.get("$schema") != SCHEMA_URL:
        out.append(f"File.$schema must be {SCHEMA_URL!r}")
    shared = data.get("shared")
    frames = shared.get("frames") if isinstance(shared, dict) else None
    if not isinstance(frames, list):
        out.append("File.shared.frames: required list")
        frames = []
    for i, frame in enumerate(frames):
        out += _frame(i, frame)
    profiles = data.get("profiles")
    if not isinstance(profiles, list):
        return [*out, "File.profiles: required list"]
    for name in ("name", "exporter"):
        if name in data and not isinstance(data[name], str):
            out.append(f"File.{name}: must be a string")
    if "activeProfileIndex" in data and not _number(data["activeProfileIndex"]):
        out.append("File.activeProfileIndex: must be a number")
    for i, profile in enumerate(profiles):
        out += _profile(i, profile, len(frames))
    return out


def _frame(i: int, frame: Any) -> list[str]:
    if not isinstance(frame, dict):
        return [f"Frame {i}: not an object"]
    out = [] if isinstance(frame.get("name"), str) else [f"Frame {i}: name is a required string"]
    if "file" in frame and not isinstance(frame["file"], str):
        out.append(f"Frame {i}: file must be a string")
    for key in ("line", "col"):
        if key in frame and not _number(frame[key]):
            out.append(f"Frame {i}: {key} must be a number")
    extra = set(frame) - {"name", "file", "line", "col"}
    if extra:
        out.append(f"Frame {i}: unknown keys {sorted(extra)}")
    return out


def _profile(i: int, p: Any, n_frames: int) -> list[str]:
    if not isinstance(p, dict):
        return [f"Profile {i}: not an object"]
    out: list[str] = []
    if p.get("type") not in ("sampled", "evented"):
        out.append(f"Profile {i}: type must be 'sampled' or 'evented'")
    if not isinstance(p.get("name"), str):
        out.append(f"Profile {i}: name is a required string")
    if p.get("unit") not in UNITS:
        out.append(f"Profile {i}: unit must be one of {sorted(UNITS)}")
    start, end = p.get("startValue"), p.get("endValue")
    if not (_number(start) and _number(end)):
        out.append(f"Profile {i}: startValue and endValue are required numbers")
    elif end < start:
        out.append(f"Profile {i}: endValue must be >= startValue")
    if p.get("type") == "sampled":
        samples, weights = p.get("samples"), p.get("weights")
        if not isinstance(samples, list) or not isinstance(weights, list):
            return [*out, f"Profile {i}: samples and weights are required lists"]
        if len(samples) != len(weights):
            out.append(f"Profile {i}: weights must have the same length as samples")
        for j, stack in enumerate(samples):
            if not isinstance(stack, list) or not all(
                isinstance(f, int) and 0 <= f < n_frames for f in stack
            ):
                out.append(f"Profile {i}: sample {j} must list indices into shared.frames")
        if not all(_number(w) and w >= 0 for w in weights):
            out.append(f"Profile {i}: weights must be non-negative numbers")
        elif _number(start) and _number(end) and sum(weights) > end - start + 1e-6:
            out.append(f"Profile {i}: the weights exceed endValue - startValue")
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
