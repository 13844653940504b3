"""Trends of a series of (t, value) points: what the model and the rules both compute."""

from __future__ import annotations

from collections.abc import Sequence


def slope(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of ``value`` over ``t`` (value units per second); 0.0 for fewer
    than two distinct times."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0.0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var
