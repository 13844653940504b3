"""The event types every source produces and the model consumes; see agent/events.py.

They live in the agent package because the agent (standard library only) emits them too: one
definition, one writer, one reader for the wire and the recording. This module re-exports that
module's public names (its ``__all__``), so the client never names the agent's modules.
"""

from loopscope.agent import events as _events
from loopscope.agent.events import *  # noqa: F403

__all__ = list(_events.__all__)
