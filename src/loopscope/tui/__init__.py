"""The terminal dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from textual.app import App

    from loopscope.session import Session


def make_app(
    session: Session, *, log_path: str | None = None, how: str = "", refresh: float = 0.25
) -> App[None]:
    """The dashboard for ``session``, which the caller starts and closes.

    ``log_path``: where the program's stdout and stderr go, shown in the header. ``how``: a
    short line on how loopscope is attached. ``refresh``: seconds between views.
    """
    # Imported here so that headless commands, which import this package, never load Textual.
    from loopscope.tui.app import LoopscopeApp

    return LoopscopeApp(session, log_path=log_path, how=how, refresh=refresh)


__all__ = ["make_app"]
