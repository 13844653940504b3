"""The one error attaching raises: a reason code and a message that says what to do."""

from __future__ import annotations


class AttachError(Exception):
    """Attaching failed. ``reason`` is a short stable code: ``"usage"``, ``"no-process"``,
    ``"not-python"``, ``"unsupported"``, ``"permission"``, ``"traced"``, ``"no-agent"``,
    ``"no-route"``, ``"disabled"``, ``"unreachable"``, ``"exited"``, ``"no-safe-point"``,
    ``"no-asyncio"``, ``"failed"``. The message is a paragraph for the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
