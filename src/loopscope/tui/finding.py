"""A finding in full, over the dashboard: evidence, the code, the fix, and a key to the
evidence itself (the blocks at its location, or the await site)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from loopscope.model.location import Location
from loopscope.model.snapshot import Snapshot
from loopscope.rules.finding import Finding
from loopscope.tui._details import source_preview
from loopscope.tui._panels import finding_detail


class FindingScreen(ModalScreen[None]):
    CSS_PATH = "finding.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("g", "goto", "Go to evidence"),
    ]

    class OpenEvidence(Message):
        """Asks for the screen that shows the finding's evidence (key g)."""

        def __init__(self, screen: str, key: str) -> None:
            super().__init__()
            self.screen = screen  # "blocks" or "awaits"
            self.key = key  # the `Location.key` of the row to highlight there

    def __init__(self, finding: Finding, snapshot: Snapshot | None) -> None:
        super().__init__()
        self.finding = finding
        self._snapshot = snapshot

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="finding-box") as box:
            box.border_title = f"{self.finding.code} · {self.finding.family}"
            box.border_subtitle = "g goes to the evidence · escape closes"
            yield Static(finding_detail(self.finding, self._snapshot), id="finding-text")
            loc = self.finding.location
            if loc is not None and loc.file:
                yield Static(source_preview(loc.file, loc.line), id="finding-source")

    def evidence(self) -> tuple[str, str] | None:
        """(screen, location key) that shows this finding's evidence, if one does."""
        loc, snapshot = self.finding.location, self._snapshot
        if loc is None or snapshot is None:
            return None
        key = loc.key
        if any(h.file == loc.file and h.line == loc.line for h in snapshot.blocks.hot):
            return "blocks", key
        for site in snapshot.await_sites:
            if site.file == loc.file and site.line == loc.line:
                return "awaits", Location.of(site).key
        if self.finding.family == "blocking":
            return "blocks", key
        return None

    def action_goto(self) -> None:
        target = self.evidence()
        if target is None:
            self.notify("This finding has no blocks or await site to show.", severity="warning")
            return
        self.post_message(self.OpenEvidence(*target))
