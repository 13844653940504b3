"""The terminal dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

    from loopscope.tui.app import Views
    from loopscope.tui.recording import RecordingControl


def make_app(
    session: Views,
    *,
    log_path: str | None = None,
    how: str = "",
    refresh: float = 0.25,
    recording: RecordingControl | None = None,
) -> App[None]:
    """The dashboard for ``session``, which the caller starts and closes.

    ``log_path``: where the program's stdout and stderr go, shown in the header. ``how``: a
    short line on how loopscope is attached. ``refresh``: seconds between views.
    ``recording``: starts and stops recording the session (a key, and a status line).
    """
    # Imported here so that headless commands, which import this package, never load Textual.
    from loopscope.tui.app import LoopscopeApp

    if recording is not None:
        from loopscope.tui.recording import RecordingApp

        return RecordingApp(session, recording, log_path=log_path, how=how, refresh=refresh)
    return LoopscopeApp(session, log_path=log_path, how=how, refresh=refresh)


__all__ = ["make_app"]
