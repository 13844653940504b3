"""Attaching to a running process: find its agent, or inject one (see docs/attach.md)."""

from loopscope.attach._errors import AttachError
from loopscope.attach._ladder import DEFAULT_TIMEOUT, METHODS, Attached, attach
from loopscope.attach._proc import ProcessInfo, inspect, python_processes

__all__ = [
    "DEFAULT_TIMEOUT",
    "METHODS",
    "AttachError",
    "Attached",
    "ProcessInfo",
    "attach",
    "inspect",
    "python_processes",
]
