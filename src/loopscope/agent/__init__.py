"""The loopscope agent: runs inside the observed program. Standard library only.

``install()`` inside a running loop (or given a loop) starts observing it and serving on the
agent's Unix socket; ``uninstall()`` restores the program as it was.
"""

from ._core import Agent, current, install, uninstall

__all__ = ["Agent", "current", "install", "uninstall"]
