"""The model: a pure fold of events into state (``Model.apply``), read through immutable
snapshots (``Model.snapshot``)."""

from loopscope.model._blocks import MACHINE_FUNCTION, UNSAMPLED_FUNCTION
from loopscope.model._model import LAG_SERIES_SECONDS, RECENT_SECONDS, Model

__all__ = [
    "LAG_SERIES_SECONDS",
    "MACHINE_FUNCTION",
    "RECENT_SECONDS",
    "UNSAMPLED_FUNCTION",
    "Model",
]
