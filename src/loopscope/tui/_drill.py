"""What the drill-down screens of rows share: a table, the highlighted row in full beside it, a
row to select once the view shows it, and the rows as a flame graph on f."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from loopscope.session import View
from loopscope.tui._screen import SubScreen
from loopscope.tui.flame import FlameScreen
from loopscope.tui.widgets import SnapshotTable


class DrillScreen(SubScreen):
    """A screen of rows (``TABLE``) and the highlighted one in full (`_detail`); ``FLAME``: the
    kind of flame graph that shows the same rows (on the key a screen binds to ``flame``: its own
    bindings, not inherited ones, are what the help lists for it)."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    TABLE: ClassVar[type[SnapshotTable]]
    FLAME: ClassVar[str]

    def __init__(self, *, how: str = "", log_path: str | None = None) -> None:
        super().__init__(how=how, log_path=log_path)
        self.select: str | None = None  # the key of a row to highlight once shown
        self._shown: object = None  # what the detail shows, to show it only when it changes

    def action_flame(self) -> None:
        """The rows as a flame graph (key f)."""
        self.open(FlameScreen(self.FLAME, how=self._how, log_path=self._log_path))

    def on_mount(self) -> None:
        self.query_one(self.TABLE).focus()

    def watch_view(self) -> None:
        self.call_after_refresh(self._preselect)
        self._detail()

    def select_row(self, key: str) -> None:
        self.select = key
        self.call_after_refresh(self._preselect)

    def on_screen_resume(self) -> None:
        # (ViewScreen's handler, which brings the view up to date, runs too.)
        self.call_after_refresh(self._preselect)

    def _preselect(self) -> None:
        """Highlight the row ``select`` names, if the table shows it."""
        if self.select is None or self.view is None or not self.query(self.TABLE):
            return
        for i, keys in enumerate(self._row_keys(self.view)):
            if self.select in keys:
                table = self.query_one(self.TABLE)
                if table.is_valid_row_index(i):
                    table.move_cursor(row=i)
                self.select = None
                break
        self._detail()

    def _row_keys(self, view: View) -> Iterator[tuple[str, ...]]:
        """The keys that select each row of the table, in its order."""
        raise NotImplementedError

    def _detail(self) -> None:
        """Show the highlighted row in full."""
        raise NotImplementedError
